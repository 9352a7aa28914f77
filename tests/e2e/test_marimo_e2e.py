"""The tuning widget in marimo (``mo.ui.anywidget``): it renders, a slider move reaches the
Python object, and calab's buttons keep their frames under marimo's CSS reset."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from e2e.colors import COMPUTED, contrast, over, rgb
from e2e.harness import free_port
from e2e.test_widget_e2e import TUNER, read_value, set_range, wait_fresh

pytestmark = pytest.mark.e2e

APP = Path(__file__).resolve().parent / "marimo_app.py"


@pytest.fixture
def marimo_url(tmp_path: Path, chromium_ready: None) -> Iterator[str]:
    pytest.importorskip("marimo", reason="marimo is not installed (dev extra)")
    port = free_port()
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    log = tmp_path / "marimo.log"
    cmd = [sys.executable, "-m", "marimo", "run", "--headless", "--host", "127.0.0.1",
           "--port", str(port), "--no-token", str(APP)]  # fmt: skip
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            cmd, cwd=tmp_path, env=env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"marimo exited early:\n{log.read_text()[-3000:]}")
            try:
                urllib.request.urlopen(url, timeout=2).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"marimo did not serve {url} in 60 s:\n{log.read_text()[-3000:]}")
                time.sleep(0.3)
        yield url
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def python_state(page: Any) -> dict[str, float]:
    return dict(json.loads(page.locator("[data-testid=python-state]").inner_text()))


def test_widget_in_marimo(marimo_url: str, browser: Any) -> None:
    ctx = browser.new_context(viewport={"width": 1200, "height": 1000})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(marimo_url)
        root = page.locator(TUNER)
        root.wait_for(timeout=90_000)
        rev = wait_fresh(page, root)
        assert root.locator("[data-testid=cell-card]").count() == 2

        # A slider move reaches the Python object (shown by a cell that re-runs on changes).
        slider = root.locator("[data-testid=param-tau-decay]")
        set_range(slider, 0.7)
        wait_fresh(page, root, rev + 1)
        state = page.locator("[data-testid=python-state]")
        state.filter(has_text='"tau_decay": 0.7').wait_for(timeout=30_000)
        assert python_state(page)["tau_decay"] == pytest.approx(read_value(slider))

        # Buttons and inputs keep a visible frame despite marimo's reset of their CSS.
        c = root.evaluate(COMPUTED)
        bg = c["root"]["background"]
        button_bg = "rgb({:.0f}, {:.0f}, {:.0f})".format(*over(c["button"]["background"], bg))
        assert c["button"]["borderStyle"] == "solid", c
        assert float(c["button"]["borderWidth"][:-2]) >= 1, c
        assert contrast(c["button"]["border"], button_bg) > 1.2, c
        assert contrast(c["button"]["color"], button_bg) >= 4.5, c
        assert c["box"]["borderStyle"] == "solid", c
        assert float(c["box"]["borderWidth"][:-2]) >= 1, c
        assert rgb(c["root"]["background"])[3] == 1.0, c  # an opaque light fallback theme

        # A card's title shows that cell's spectrum.
        first = root.locator("[data-testid=cell-card]").first
        cell = first.get_attribute("data-cell")
        first.locator(".calab-card-title").click()
        root.get_by_text(f"spectrum of cell {cell}").wait_for(timeout=30_000)
        assert root.locator("[data-testid=spectrum] canvas").count() == 1

        # The cards are not squeezed; nothing scrolls sideways.
        sizes = root.evaluate(
            """el => ({card: el.querySelector('[data-testid=cell-card]').clientWidth,
                       scroll: el.scrollWidth, client: el.clientWidth})"""
        )
        assert sizes["card"] >= 200, sizes
        assert sizes["scroll"] <= sizes["client"], sizes
        assert not errors, errors
    finally:
        ctx.close()
