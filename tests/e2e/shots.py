"""Screenshots of e2e pages into tests/e2e/screenshots/ (git-ignored), for a reviewer to look at."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

SCREENSHOTS = Path(__file__).resolve().parent / "screenshots"
logger = logging.getLogger(__name__)


def save_screenshots(page: Any, name: str) -> None:
    """Save ``page`` as ``<name>.png`` and its first tuning widget as ``<name>-tuner.png``."""
    SCREENSHOTS.mkdir(exist_ok=True)
    safe = re.sub(r"[^\w.-]+", "_", name)
    try:
        page.screenshot(path=str(SCREENSHOTS / f"{safe}.png"))
        tuner = page.locator("[data-testid=calab-tuner]")
        if tuner.count():
            tuner.first.screenshot(path=str(SCREENSHOTS / f"{safe}-tuner.png"), timeout=10_000)
    except Exception as exc:  # noqa: BLE001 - a missing screenshot must not hide the test's result
        logger.warning("screenshot %s failed: %s", safe, exc)
