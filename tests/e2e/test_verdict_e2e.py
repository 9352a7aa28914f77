"""The estimate's verdict badge after Auto on the `calab tune` page (real command, Chromium)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from e2e.test_bridge_e2e import open_tuner, tune_cli  # noqa: F401 - the fixture

pytestmark = pytest.mark.e2e


def _auto_badge(browser: Any, url: str) -> tuple[Any, Any, list[str]]:
    ctx, page, root, errors = open_tuner(browser, url)
    badge = root.locator("[data-testid=auto-verdict]")
    assert badge.is_hidden()  # nothing to judge before Auto
    root.locator("[data-testid=auto]").click()
    page.wait_for_function(
        "el => el.dataset.state === 'done' || el.dataset.state === 'error'",
        arg=root.locator("[data-testid=auto-status]").element_handle(),
        timeout=60_000,
    )
    badge.wait_for(state="visible", timeout=10_000)
    return ctx, root, errors


def test_auto_shows_the_verdict_badge(browser: Any, tune_cli: Any) -> None:  # noqa: F811
    proc, url, _ = tune_cli
    ctx, root, errors = _auto_badge(browser, url)
    badge = root.locator("[data-testid=auto-verdict]")
    assert badge.get_attribute("data-verdict") in ("ok", "usable")
    assert (badge.get_attribute("title") or "").startswith(("ok (", "usable ("))
    assert not errors, errors
    ctx.close()


NOISE = np.random.default_rng(0).normal(size=(8, 3000))


@pytest.mark.parametrize("tune_cli", [NOISE], indirect=True, ids=["white-noise"])
def test_auto_on_noise_shows_an_unreliable_badge(browser: Any, tune_cli: Any) -> None:  # noqa: F811
    proc, url, _ = tune_cli
    ctx, root, errors = _auto_badge(browser, url)
    badge = root.locator("[data-testid=auto-verdict]")
    assert badge.get_attribute("data-verdict") == "unreliable"
    assert badge.inner_text() == "estimate unreliable"
    assert "UNRELIABLE" in (badge.get_attribute("title") or "")
    assert "UNRELIABLE" in root.locator("[data-testid=auto-status]").inner_text()
    assert not errors, errors
    ctx.close()
