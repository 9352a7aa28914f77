"""The README's self-contained Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks_under(heading: str) -> list[str]:
    text = README.read_text(encoding="utf-8")
    start = text.index(heading)
    nxt = re.search(r"\n#{2,3} ", text[start + len(heading) :])
    section = text[start : start + len(heading) + (nxt.start() if nxt else len(text))]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


@pytest.mark.parametrize("heading", ["## Quick start"])
def test_quick_start_and_kernel_math_run(heading: str) -> None:
    namespace: dict[str, object] = {}
    code = blocks_under(heading) + blocks_under("### Kernel math and the noise filter")
    assert len(code) >= 2
    for block in code:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own docs
    assert namespace["activity"].shape == namespace["traces"].shape  # type: ignore[attr-defined]
    assert namespace["L"] > 0  # type: ignore[operator]
