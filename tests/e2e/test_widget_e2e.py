"""The tuning widget in a real JupyterLab, driven by Debian's headless Chromium."""

from __future__ import annotations

import json
import shutil
from typing import Any

import nbformat
import pytest

from e2e.harness import KERNEL_EXEC, REPO, LabServer, open_and_run, python_notebook

pytestmark = pytest.mark.e2e

TUNER = "[data-testid=calab-tuner]"


def kernel(page: Any, code: str) -> str:
    out = page.evaluate(KERNEL_EXEC, code)
    assert "ERROR" not in out, out
    return str(out)


def kernel_json(page: Any, expr: str) -> Any:
    return json.loads(
        kernel(page, f"import json as _j; _ = w.wait_idle(); print(_j.dumps({expr}))")
    )


def wait_fresh(page: Any, root: Any, min_rev: int = 0) -> int:
    """Wait until every card of ``root`` shows a finished solve with rev >= min_rev."""
    handle = root.element_handle()
    page.wait_for_function(
        """([el, rev]) => {
          const cards = el.querySelectorAll('[data-testid=cell-card]');
          return cards.length > 0 && Number(el.dataset.rev) >= rev &&
            [...cards].every(c => c.dataset.state === 'fresh');
        }""",
        arg=[handle, min_rev],
        timeout=30_000,
    )
    return int(root.get_attribute("data-rev"))


def zoom_pixels(root: Any) -> str:
    return str(root.locator("[data-testid=zoom]").first.evaluate("c => c.toDataURL()"))


def read_value(locator: Any) -> float:
    """The input's ``value`` property as the page sees it (plain lambda for the log slider)."""
    return float(locator.evaluate("el => el.value"))


def set_range(locator: Any, value: float) -> None:
    locator.evaluate(
        "(el, v) => { el.value = String(v);"
        " el.dispatchEvent(new Event('input', {bubbles: true})); }",
        value,
    )


def test_sliders_drive_kernel_and_plots(lab: LabServer, page: Any) -> None:
    shutil.copy(REPO / "examples" / "tune_in_notebook.ipynb", lab.root / "tune.ipynb")
    open_and_run(page, lab, "tune.ipynb")
    root = page.locator(TUNER)
    root.wait_for(timeout=60_000)
    rev = wait_fresh(page, root)
    cards = root.locator("[data-testid=cell-card]")
    assert cards.count() == kernel_json(page, "len(w.cells)")
    assert [int(c.get_attribute("data-cell")) for c in cards.all()] == kernel_json(page, "w.cells")

    # Rise time with the keyboard (real key events; JupyterLab must not steal the arrows).
    rise = root.locator("[data-testid=param-tau-rise]")
    before = zoom_pixels(root)
    rise.focus()
    for _ in range(5):
        page.keyboard.press("ArrowRight")
    shown = read_value(rise)
    assert shown == pytest.approx(0.105)
    rev = wait_fresh(page, root, rev + 1)
    assert kernel_json(page, "w.tau_rise") == pytest.approx(shown)
    assert zoom_pixels(root) != before

    # Decay time and lambda (lambda's slider is log-scaled but its value is plain lambda).
    for testid, trait, value in [
        ("param-tau-decay", "tau_decay", 0.6),
        ("param-lambda", "lam", 0.05),
    ]:
        before = zoom_pixels(root)
        slider = root.locator(f"[data-testid={testid}]")
        set_range(slider, value)
        rev = wait_fresh(page, root, rev + 1)
        got = kernel_json(page, f"w.{trait}")
        assert got == pytest.approx(read_value(slider), rel=1e-9)
        assert got == pytest.approx(value, rel=0.02)
        assert zoom_pixels(root) != before, testid

    # Noise filter toggle: kernel follows, a filtered trace is drawn.
    before = zoom_pixels(root)
    root.locator("[data-testid=toggle-filter]").check()
    rev = wait_fresh(page, root, rev + 1)
    assert kernel_json(page, "w.filter_enabled") is True
    assert zoom_pixels(root) != before

    # Python -> page: assigning a trait moves the slider and redraws.
    before = zoom_pixels(root)
    kernel(page, "w.tau_decay = 0.8")
    page.wait_for_function(
        "el => Math.abs(Number(el.value) - 0.8) < 1e-9",
        arg=root.locator("[data-testid=param-tau-decay]").element_handle(),
        timeout=10_000,
    )
    wait_fresh(page, root, rev)
    page.wait_for_timeout(300)
    assert zoom_pixels(root) != before

    params = kernel_json(page, "w.params")
    assert params == {
        "tau_rise": pytest.approx(0.105),
        "tau_decay": pytest.approx(0.8),
        "lambda_": pytest.approx(read_value(root.locator("[data-testid=param-lambda]"))),
        "fs": 30.0,
        "filter_enabled": True,
    }

    # Pin: dashed pinned series appear (the kernel answers with pin_fit / pin_activity).
    root.locator("[data-testid=pin]").click()
    wait_fresh(page, root, rev + 1)
    names = kernel_json(page, "w.last_view.series_names")
    assert {"pin_fit", "pin_activity"} <= set(names)
    assert kernel_json(page, "w.pinned['tau_decay']") == pytest.approx(0.8)


def test_two_widgets_are_independent(lab: LabServer, page: Any) -> None:
    nb = python_notebook(
        "import calab\n"
        "w = calab.TuneWidget(*calab.simulate(3, 3000, 30.0, seed=1)[:1], fs=30.0, n_shown=2)\n"
        "w",
        "w2 = calab.TuneWidget(calab.simulate(5, 4000, 20.0, seed=2)[0], fs=20.0, n_shown=3,\n"
        "                     tau_rise=0.05, tau_decay=0.5)\nw2",
    )
    nbformat.write(nb, lab.root / "two.ipynb")
    open_and_run(page, lab, "two.ipynb")
    roots = page.locator(TUNER)
    try:
        page.wait_for_function(
            "() => document.querySelectorAll('[data-testid=calab-tuner]').length === 2",
            timeout=60_000,
        )
    except Exception:
        print(page.locator(".jp-OutputArea").all_inner_texts())
        page.screenshot(path=str(lab.root / "two.png"))
        raise
    first, second = roots.nth(0), roots.nth(1)
    rev1 = wait_fresh(page, first)
    rev2 = wait_fresh(page, second)
    assert first.locator("[data-testid=cell-card]").count() == 2
    assert second.locator("[data-testid=cell-card]").count() == 3
    before2 = zoom_pixels(second)
    set_range(first.locator("[data-testid=param-tau-decay]"), 0.9)
    wait_fresh(page, first, rev1 + 1)
    assert kernel_json(page, "[w.tau_decay, w2.tau_decay]") == [pytest.approx(0.9), 0.5]
    assert int(second.get_attribute("data-rev")) == rev2
    assert zoom_pixels(second) == before2
    assert read_value(second.locator("[data-testid=param-tau-decay]")) == 0.5
