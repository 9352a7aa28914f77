"""`calab tune` end to end: the real command serves the page, Chromium drives it, Export returns.

Runs the installed CLI in a subprocess (as a user would), opens the URL it prints in headless
Debian Chromium, moves every slider, checks that the plots redraw, clicks Export, and checks
the JSON the command prints and the export file it writes.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import calab
from e2e.test_widget_e2e import read_value, set_range, wait_fresh, zoom_pixels

pytestmark = pytest.mark.e2e


@pytest.fixture
def tune_cli(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[subprocess.Popen[str], str, Path]]:
    """`calab tune` on 8 simulated cells (or the traces given by indirect parametrisation)."""
    traces = getattr(request, "param", None)
    if traces is None:
        traces, _ = calab.simulate(8, 3000, fs=30.0, seed=2)
    src = tmp_path / "traces.npy"
    np.save(src, traces)
    out = tmp_path / "export.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "calab.cli", "tune", str(src), "--fs", "30", "--no-browser",
         "-o", str(out), "--timeout", "120"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    line: list[str] = []  # the URL, on stderr (stdout is for the parameters' JSON)

    def read_url() -> None:  # warnings (e.g. an unreliable start estimate) may come first
        for text in proc.stderr:
            line.append(text)
            if text.startswith("http://127.0.0.1:"):
                return

    reader = threading.Thread(target=read_url, daemon=True)
    reader.start()
    reader.join(60)
    if not line or not line[-1].startswith("http://127.0.0.1:"):
        proc.kill()
        pytest.fail(f"calab tune printed no URL: {line!r} {proc.stdout.read()!r}")
    try:
        yield proc, line[-1].strip(), out
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()


def open_tuner(browser: Any, url: str) -> tuple[Any, Any, Any, list[str]]:
    """A new browser context on ``url``: (context, page, tuner root, page errors)."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    root = page.locator("[data-testid=calab-tuner]")
    root.wait_for(timeout=30_000)
    return ctx, page, root, errors


def test_tune_page_sliders_and_export(browser: Any, tune_cli: Any) -> None:
    proc, url, out = tune_cli
    ctx, page, root, errors = open_tuner(browser, url)
    assert "bridge_secret" not in page.url  # the secret leaves the address bar
    rev = wait_fresh(page, root)
    assert root.locator("[data-testid=cell-card]").count() >= 1
    # calab tune starts from the estimate: sparsity per cell, in noise SDs. One lambda for all
    # cells is what CaTune's export holds.
    assert root.locator("[data-testid=lam-mode]").input_value() == "per_cell"
    root.locator("[data-testid=lam-mode]").select_option("global")
    rev = wait_fresh(page, root, rev + 1)

    for testid, value in (
        ("param-tau-rise", 0.08),
        ("param-tau-decay", 0.9),
        ("param-lambda", 0.05),
    ):
        before = zoom_pixels(root)
        slider = root.locator(f"[data-testid={testid}]")
        set_range(slider, value)
        rev = wait_fresh(page, root, rev + 1)
        assert zoom_pixels(root) != before, f"{testid}: plots did not change"
        assert read_value(slider) == pytest.approx(value, rel=0.02)

    root.locator("[data-testid=toggle-filter]").check()
    rev = wait_fresh(page, root, rev + 1)
    root.locator("[data-testid=export]").click()

    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    params = json.loads(stdout.strip().splitlines()[-1])
    assert params["tau_rise"] == pytest.approx(0.08, rel=0.02)
    assert params["tau_decay"] == pytest.approx(0.9, rel=0.02)
    assert params["lambda_"] == pytest.approx(0.05, rel=0.02)
    assert params["filter_enabled"] is True and params["fs"] == 30.0
    assert calab.load_export_params(out) == params
    assert not errors, errors
    ctx.close()


def test_auto_moves_the_sliders_to_the_estimate(browser: Any, tune_cli: Any) -> None:
    proc, url, out = tune_cli
    traces = np.load(out.parent / "traces.npy")
    est = calab.estimate_parameters(traces, 30.0)  # what Auto must reach, computed here
    ctx, page, root, errors = open_tuner(browser, url)
    rev = wait_fresh(page, root)
    # Move away from the start (which is the estimate already), in global mode.
    root.locator("[data-testid=lam-mode]").select_option("global")
    rev = wait_fresh(page, root, rev + 1)
    away = (("param-tau-decay", 1.5), ("param-tau-rise", 0.15), ("param-lambda", 0.3))
    for testid, value in away:
        set_range(root.locator(f"[data-testid={testid}]"), value)
        rev = wait_fresh(page, root, rev + 1)

    root.locator("[data-testid=auto]").click()
    page.wait_for_function(
        "el => el.dataset.state === 'done' || el.dataset.state === 'error'",
        arg=root.locator("[data-testid=auto-status]").element_handle(),
        timeout=60_000,
    )
    status = root.locator("[data-testid=auto-status]")
    assert status.get_attribute("data-state") == "done", status.inner_text()
    wait_fresh(page, root, rev)
    k = float(np.median(est.lam / est.noise))
    assert read_value(root.locator("[data-testid=param-tau-rise]")) == pytest.approx(
        est.tau_rise, abs=0.001
    )
    assert read_value(root.locator("[data-testid=param-tau-decay]")) == pytest.approx(
        est.tau_decay, abs=0.005
    )
    assert read_value(root.locator("[data-testid=param-lambda]")) == pytest.approx(k, rel=1e-6)
    assert root.locator("[data-testid=lam-mode]").input_value() == "per_cell"
    assert root.locator("[data-testid=baseline]").input_value() == est.baseline

    root.locator("[data-testid=export]").click()
    stdout, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    params = json.loads(stdout.strip().splitlines()[-1])
    assert params["tau_decay"] == pytest.approx(est.tau_decay, rel=1e-9)
    np.testing.assert_allclose(params["lambda_per_cell"], est.lam, rtol=1e-9)
    assert not errors, errors
    ctx.close()


def test_page_without_the_secret_is_refused(browser: Any, tune_cli: Any) -> None:
    _, url, _ = tune_cli
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(url.split("?")[0])  # the bare page: it cannot read anything without the secret
    page.wait_for_function("() => document.body.textContent.includes('refused')", timeout=30_000)
    assert page.locator("[data-testid=calab-tuner]").count() == 0
    ctx.close()


def wait_cards(page: Any, root: Any, state: str, min_rev: int) -> None:
    page.wait_for_function(
        """([el, state, rev]) => {
          const cards = el.querySelectorAll('[data-testid=cell-card]');
          return cards.length > 0 && Number(el.dataset.rev) >= rev &&
            [...cards].every(c => c.dataset.state === state);
        }""",
        arg=[root.element_handle(), state, min_rev],
        timeout=30_000,
    )


def test_bad_parameters_show_an_error_on_the_cards_and_recover(browser: Any, tune_cli: Any) -> None:
    _, url, _ = tune_cli
    ctx, page, root, errors = open_tuner(browser, url)
    rev = wait_fresh(page, root)

    # tau_decay below tau_rise (about 0.05 s): every card says what is wrong, as in the widget.
    decay = root.locator("[data-testid=param-tau-decay]")
    set_range(decay, 0.02)
    wait_cards(page, root, "error", rev + 1)
    badges = root.locator("[data-testid=badge]")
    assert all("tau_rise" in (b.get_attribute("title") or "") for b in badges.all())
    rev = int(root.get_attribute("data-rev"))
    # The next valid value solves again.
    set_range(decay, 0.6)
    rev = wait_fresh(page, root, rev + 1)

    # A value the server refuses (rise time 0 from the number box): the page takes the
    # server's value back and its cards are answered, not left "solving".
    # The server's value: the start estimate's rise time (calab tune is given no parameters).
    server_rise = read_value(root.locator("[data-testid=param-tau-rise]"))
    box = root.locator("input[aria-label='rise time value']")
    box.fill("0")
    box.dispatch_event("change")
    rev = wait_fresh(page, root, rev + 1)
    assert read_value(root.locator("[data-testid=param-tau-rise]")) == pytest.approx(server_rise)
    assert not errors, errors
    ctx.close()
