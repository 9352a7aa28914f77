"""The widget in Jupyter Notebook 7 (not only JupyterLab): renders, sliders drive the kernel."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from e2e.harness import REPO, LabServer, open_and_run, start_lab
from e2e.test_widget_e2e import TUNER, kernel_json, read_value, set_range, wait_fresh, zoom_pixels

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def nb7(tmp_path_factory: pytest.TempPathFactory, chromium_ready: None) -> Iterator[LabServer]:
    pytest.importorskip("notebook", reason="Notebook 7 is not installed (dev extra)")
    server = start_lab(tmp_path_factory.mktemp("notebook7"), app="notebook")
    yield server
    server.stop()


def test_widget_in_notebook7(nb7: LabServer, browser: Any) -> None:
    shutil.copy(REPO / "examples" / "tune_in_notebook.ipynb", nb7.root / "tune.ipynb")
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = ctx.new_page()
    try:
        open_and_run(page, nb7, "tune.ipynb", app="notebook")
        root = page.locator(TUNER)
        root.wait_for(timeout=60_000)
        rev = wait_fresh(page, root)
        before = zoom_pixels(root)
        slider = root.locator("[data-testid=param-lambda]")
        set_range(slider, 0.05)
        wait_fresh(page, root, rev + 1)
        assert kernel_json(page, "w.lam") == pytest.approx(read_value(slider), rel=1e-9)
        assert zoom_pixels(root) != before
    finally:
        ctx.close()
        nb7.shutdown_kernels()
