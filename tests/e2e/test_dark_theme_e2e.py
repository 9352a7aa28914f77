"""The tuning widget in JupyterLab's dark theme: dark background, readable text and controls,
and it follows the width of its output area (no horizontal scrollbar at 800 px)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import nbformat
import pytest

from e2e.colors import COMPUTED, contrast, luminance, over, rgb
from e2e.harness import LabServer, open_and_run, python_notebook, start_lab
from e2e.shots import save_screenshots
from e2e.test_widget_e2e import TUNER, wait_fresh

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def dark_lab(tmp_path_factory: pytest.TempPathFactory, chromium_ready: None) -> Iterator[LabServer]:
    tmp = tmp_path_factory.mktemp("jupyterlab-dark")
    settings = tmp / "config" / "lab" / "user-settings" / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True)
    (settings / "themes.jupyterlab-settings").write_text(json.dumps({"theme": "JupyterLab Dark"}))
    server = start_lab(tmp)
    yield server
    server.stop()


def test_dark_theme_colours_and_width(dark_lab: LabServer, browser: Any) -> None:
    nb = python_notebook(
        "import calab\n"
        "traces, _ = calab.simulate(4, 3000, 30.0, seed=5)\n"
        "w = calab.TuneWidget(traces, fs=30.0, n_shown=2, columns=2, lam=0.02242)\n"
        "w",
    )
    nbformat.write(nb, dark_lab.root / "dark.ipynb")
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    try:
        open_and_run(page, dark_lab, "dark.ipynb")
        assert page.evaluate("() => document.body.dataset.jpThemeLight") == "false"
        root = page.locator(TUNER)
        root.wait_for(timeout=60_000)
        wait_fresh(page, root)
        c = root.evaluate(COMPUTED)
        lab_bg = page.evaluate(
            "() => getComputedStyle(document.querySelector('.jp-OutputArea-output') ||"
            " document.body).getPropertyValue('--jp-layout-color0').trim()"
        )
        # The widget takes the host's dark background, not a white box.
        assert luminance(rgb(c["root"]["background"])[:3]) < 0.05, c
        assert lab_bg, "JupyterLab's --jp-layout-color0 is not visible inside the output"
        # Text, card titles, buttons and number boxes are readable on it.
        bg = c["root"]["background"]
        assert contrast(c["root"]["color"], bg) >= 7, c
        card_bg = over(c["card"]["background"], bg)
        card_rgb = "rgb({:.0f}, {:.0f}, {:.0f})".format(*card_bg)
        assert contrast(c["title"]["color"], card_rgb) >= 7, c
        button_bg = "rgb({:.0f}, {:.0f}, {:.0f})".format(*over(c["button"]["background"], bg))
        assert luminance(rgb(button_bg)[:3]) < 0.2, c  # a dark button, not a white one
        assert contrast(c["button"]["color"], button_bg) >= 4.5, c
        assert c["button"]["borderStyle"] == "solid" and float(c["button"]["borderWidth"][:-2]) >= 1
        assert contrast(c["button"]["border"], button_bg) > 1.2, c  # the frame can be seen
        box_bg = "rgb({:.0f}, {:.0f}, {:.0f})".format(*over(c["box"]["background"], bg))
        assert luminance(rgb(box_bg)[:3]) < 0.2, c  # dark input, light text
        assert contrast(c["box"]["color"], box_bg) >= 4.5, c
        # The number box shows all of 0.02242.
        assert c["box"]["value"] == "0.02242"
        assert c["box"]["scrollWidth"] <= c["box"]["clientWidth"], c
        # The legend names only the series drawn: no true spikes (none given), nothing pinned.
        legend = root.locator("[data-testid=legend] label").all_inner_texts()
        assert [s.strip() for s in legend] == ["raw", "fit", "activity", "residual"]

        # Hover: a crosshair readout of the time and the values under the cursor.
        box = root.locator("[data-testid=zoom]").first.bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.4)
        readout = root.locator("[data-testid=readout]").first
        readout.wait_for(state="visible", timeout=5_000)
        text = readout.inner_text()
        assert re.search(r"t = [\d.]+ s", text), text
        for name in ("raw", "fit", "activity", "residual"):
            assert re.search(rf"{name} -?[\d.]", text), text
        save_screenshots(page, "test_dark_theme_wide")
        page.mouse.move(0, 0)
        # Narrow window: the widget follows its output area; nothing scrolls sideways.
        wide = root.locator("[data-testid=zoom]").first.evaluate("c => c.clientWidth")
        page.set_viewport_size({"width": 800, "height": 1000})
        page.wait_for_function(
            "([el, w]) => el.querySelector('[data-testid=zoom]').clientWidth < w",
            arg=[root.element_handle(), wide],
            timeout=10_000,
        )
        sizes = root.evaluate(
            """el => {
              const out = el.closest('.jp-OutputArea-output') || el.parentElement;
              const zoom = el.querySelector('[data-testid=zoom]');
              const card = el.querySelector('[data-testid=cell-card]');
              return {rootScroll: el.scrollWidth, rootClient: el.clientWidth,
                      outScroll: out.scrollWidth, outClient: out.clientWidth,
                      zoomRight: zoom.getBoundingClientRect().right,
                      cardRight: card.getBoundingClientRect().right};
            }"""
        )
        assert sizes["rootScroll"] <= sizes["rootClient"], sizes
        assert sizes["outScroll"] <= sizes["outClient"], sizes
        assert sizes["zoomRight"] <= sizes["cardRight"], sizes
    finally:
        ctx.close()
        dark_lab.shutdown_kernels()
