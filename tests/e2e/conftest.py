"""Fixtures for the browser tests: a real JupyterLab server and Debian's headless Chromium.

Every browser context a test opens is screenshotted when it closes (the page, and the first
tuning widget on it) into tests/e2e/screenshots/ (git-ignored), so a reviewer can look.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from e2e.harness import LabServer, ensure_chromium, launch_browser, start_lab
from e2e.shots import save_screenshots

_current_test = {"name": "e2e"}


class _ShotContext:
    """A browser context that screenshots its pages before it closes."""

    def __init__(self, ctx: Any) -> None:
        self._ctx = ctx
        self._name = _current_test["name"]

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._ctx, attr)

    def close(self) -> None:
        pages = [p for p in self._ctx.pages if not p.is_closed()]
        for i, pg in enumerate(pages):
            save_screenshots(pg, self._name if i == 0 else f"{self._name}-{i}")
        self._ctx.close()


class _ShotBrowser:
    def __init__(self, browser: Any) -> None:
        self._browser = browser

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._browser, attr)

    def new_context(self, **kwargs: Any) -> _ShotContext:
        return _ShotContext(self._browser.new_context(**kwargs))


@pytest.fixture(autouse=True)
def _screenshot_name(request: pytest.FixtureRequest) -> None:
    _current_test["name"] = request.node.name


@pytest.fixture(scope="session")
def chromium_ready() -> None:
    reason = ensure_chromium()
    if reason is not None:
        pytest.skip(reason)


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory, chromium_ready: None) -> Iterator[LabServer]:
    server = start_lab(tmp_path_factory.mktemp("jupyterlab"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser(chromium_ready: None) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = launch_browser(pw)
        yield _ShotBrowser(b)
        b.close()


@pytest.fixture
def page(browser: Any, lab: LabServer) -> Iterator[Any]:
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    yield pg
    ctx.close()
    lab.shutdown_kernels()
