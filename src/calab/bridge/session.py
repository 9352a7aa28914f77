"""The browser bridge's side of a tuning session: HTTP requests <-> :class:`TuningSession`.

State, rules and solves live in :class:`calab.tuning.session.TuningSession` (the same as the
notebook widget's). Here: each HTTP request is answered with the messages it produced (the
request waits for its view, or for "superseded" when a newer request replaced it), the
session's end (Export, or a CaTune app posting its JSON), and the page's heartbeats.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

from calab import _protocol as P
from calab.io.export import params_from_export
from calab.tuning import TuningEngine
from calab.tuning.session import Message, Reply, TuningSession

logger = logging.getLogger(__name__)

#: Longest an HTTP request waits for its view before answering "superseded".
REPLY_TIMEOUT_S = 300.0


class BadRequest(ValueError):
    """A request the server answers with 400 and this message."""


class BridgeSession:
    """One ``calab.tune()`` session: the tuning session plus how it ends (see module docs).

    Parameters
    ----------
    engine : TuningEngine
        The recording and its solver.
    metadata : mapping, optional
        Extra fields for the export JSON's metadata.
    **start
        Start values for :class:`TuningSession` (``tau_rise``, ``tau_decay``, ``lam``,
        ``filter_enabled``, ``n_shown``, ``columns``).
    """

    def __init__(
        self,
        engine: TuningEngine,
        *,
        metadata: Mapping[str, Any] | None = None,
        **start: Any,
    ) -> None:
        self.engine = engine
        self.metadata = dict(metadata or {})
        self.tuning = TuningSession(
            engine, on_export=self._on_export, metadata=self.metadata, **start
        )
        self.result: dict[str, Any] | None = None
        self.export: dict[str, Any] | None = None
        self.done = threading.Event()
        self.first_heartbeat: float | None = None
        self.last_heartbeat: float | None = None

    def snapshot(self) -> dict[str, Any]:
        """Return the page's whole state."""
        return self.tuning.snapshot()

    def change(self, changes: Any) -> list[Message]:
        """POST /api/v1/state: apply the changes (all or none), answer with the new view."""
        reply = Reply()
        try:
            own = self.tuning.apply(changes, deliver=reply.put)
        except (ValueError, TypeError) as exc:
            raise BadRequest(str(exc)) from None
        out: list[Message] = []
        if own:
            out.append(({"type": P.MSG_STATE, "changes": own}, []))
        return out + reply.wait(REPLY_TIMEOUT_S)

    def message(self, msg: Any) -> list[Message]:
        """POST /api/v1/message: hello, spectrum request, export, auto, auto-status."""
        reply = Reply()
        try:
            out = self.tuning.handle(msg, deliver=reply.put)
        except (ValueError, TypeError) as exc:
            raise BadRequest(str(exc)) from None
        return out + reply.wait(REPLY_TIMEOUT_S)

    def _on_export(self, export: dict[str, Any]) -> dict[str, Any]:
        self.finish(export)
        note = "parameters returned to Python; you can close this tab"
        return {"type": P.MSG_EXPORTED, "message": note}

    def finish(self, export: Mapping[str, Any]) -> dict[str, Any]:
        """End the session with an export JSON (from our page or a CaTune app)."""
        try:
            params = params_from_export(dict(export), source="the page")
        except (ValueError, TypeError, KeyError) as exc:
            raise BadRequest(f"invalid export JSON: {exc}") from exc
        self.export = dict(export)
        self.result = params
        self.done.set()
        self.tuning.close()
        return params

    def close(self) -> None:
        """End the session without a result and stop its solver (waiting requests answer)."""
        self.done.set()
        self.tuning.close(join=True)

    def heartbeat(self) -> None:
        """Record that the page is alive (the first and the latest heartbeat time)."""
        now = time.monotonic()
        if self.first_heartbeat is None:
            self.first_heartbeat = now
        self.last_heartbeat = now

    def page_gone(self, now: float | None = None) -> bool:
        """Tell whether heartbeats started and then stopped for longer than BRIDGE_GONE_S."""
        if self.last_heartbeat is None:
            return False
        now = time.monotonic() if now is None else now
        return now - self.last_heartbeat > P.BRIDGE_GONE_S
