"""Fixtures shared with the friendly tests: the bridge probes reuse tests/test_bridge.py's."""

from __future__ import annotations

from test_bridge import bridge, traces  # noqa: F401 - re-exported fixtures
