"""The README's self-contained Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from _cli_run import files

import calab

README = Path(__file__).resolve().parents[1] / "README.md"


def _section(heading: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(heading)
    nxt = re.search(r"\n#{2,3} ", text[start + len(heading) :])
    return text[start : start + len(heading) + (nxt.start() if nxt else len(text))]


def blocks_under(heading: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", _section(heading), flags=re.S)


@pytest.mark.parametrize("heading", ["## Quick start"])
def test_quick_start_and_kernel_math_run(heading: str) -> None:
    namespace: dict[str, object] = {}
    code = blocks_under(heading) + blocks_under("### Kernel math and the noise filter")
    assert len(code) >= 2
    for block in code:
        exec(compile(block, str(README), "exec"), namespace)  # noqa: S102 - our own docs
    assert namespace["activity"].shape == namespace["traces"].shape  # type: ignore[attr-defined]
    assert namespace["L"] > 0  # type: ignore[operator]


# Issue 18 item 5: `activity.to_zarr(...)` failed on a Minian zarr v2 store (the input's v2
# compressor followed the result into a zarr 3 store).
def test_readme_dask_snippet_runs_on_a_minian_v2_store(tmp_path, monkeypatch) -> None:
    pytest.importorskip("dask")
    xr = pytest.importorskip("xarray")
    traces, _ = calab.simulate(6, 2000, 30.0, seed=3)
    (tmp_path / "minian_output").mkdir()
    files.write_minian_var(tmp_path / "minian_output", files.minian_array(traces), zarr_format=2)
    monkeypatch.chdir(tmp_path)
    blocks = blocks_under("## Beyond memory")
    namespace: dict[str, object] = {"calab": calab}
    for block in blocks:
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - our own docs
    back = xr.open_zarr(tmp_path / "activity.zarr")["activity"]
    np.testing.assert_array_equal(
        back.transpose("unit_id", "frame").values,
        calab.run_deconvolution(traces, 30.0, 0.05, 0.5, 0.01),
    )


def test_readme_command_line_block_runs(tmp_path: Path) -> None:
    """The commands of "## Command line" on a CaImAn file, a Minian folder and an export
    (``calab tune`` waits for a browser and is left out)."""
    import subprocess

    from _cli_run import CMD

    traces, _ = calab.simulate(6, 2000, 30.0, seed=2)
    files.write_caiman(tmp_path / "caiman_results.hdf5", traces, fr=30.0)
    (tmp_path / "minian_output").mkdir()
    files.write_minian_var(tmp_path / "minian_output", files.minian_array(traces))
    calab.write_export(
        tmp_path / "catune-params.json",
        calab.export_dict(tau_rise=0.05, tau_decay=0.5, lam=0.01, fs=30.0),
    )
    block = re.findall(r"```bash\n(.*?)```", _section("## Command line"), flags=re.S)[0]
    commands = [c.split("#")[0].split() for c in block.replace("\\\n", " ").splitlines()]
    ran = 0
    for words in commands:
        if not words or words[:2] == ["calab", "tune"]:
            continue
        assert words[0] == "calab", words
        proc = subprocess.run(
            [*CMD, *words[1:]], cwd=tmp_path, capture_output=True, text=True, timeout=300
        )
        assert proc.returncode == 0, (words, proc.stderr)
        ran += 1
    assert ran >= 8
