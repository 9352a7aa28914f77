"""``calab info``: streamed a block of cells at a time, the stored dtype, every export field
(issue 22 item 21, issue 18 item 9)."""

from __future__ import annotations

import json
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import calab
from calab.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the helpers of tests/
from _cli_run import files, run  # noqa: E402


def _info(*args: object) -> dict:
    proc = run("info", *args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_info_streams_a_large_caiman_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """80 MB of float32 traces (160 MB as float64) are counted in blocks of about 32 MB."""
    traces = np.ones((100, 200_000), dtype=np.float32)
    traces[7, 5:9] = np.nan
    path = files.write_caiman(tmp_path / "big.hdf5", traces)
    del traces
    tracemalloc.start()
    try:
        assert main(["info", str(path), "--json"]) == 0
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    info = json.loads(capsys.readouterr().out)
    assert (info["num_cells"], info["num_timepoints"], info["nan_count"]) == (100, 200_000, 4)
    assert info["dtype"] == "float32"
    assert peak < 80e6, f"peak {peak / 1e6:.0f} MB for an 80 MB file"


def test_info_reports_the_stored_dtype(tmp_path: Path) -> None:
    data = np.random.default_rng(3).normal(1.0, 0.1, size=(4, 120))
    mdir = tmp_path / "minian"
    mdir.mkdir()
    files.write_minian_var(mdir, files.minian_array(data.astype(np.float32)))
    info = _info(mdir / "C.zarr", "--fs", "20")
    assert (info["format"], info["dtype"], info["num_cells"]) == ("minian", "float32", 4)
    s2p = files.write_suite2p(tmp_path, data, data / 2, files.iscell_array([1, 0, 1, 1]))
    info = _info(s2p)  # suite2p stores float32
    assert (info["format"], info["dtype"], info["num_cells"]) == ("suite2p", "float32", 3)
    assert info["sampling_rate_hz"] == 15.0


def test_info_on_suite2p_without_a_frame_rate(tmp_path: Path) -> None:
    data = np.random.default_rng(3).normal(1.0, 0.1, size=(3, 50))
    data[2, 4] = np.nan
    s2p = files.write_suite2p(tmp_path, data, data / 2, files.iscell_array([1, 1, 1]), fs=None)
    info = _info(s2p)
    assert info["sampling_rate_hz"] is None and info["nan_count"] == 1


def test_suite2p_streams_the_same_rows_it_loads(tmp_path: Path) -> None:
    data = np.random.default_rng(5).normal(1.0, 0.1, size=(5, 80))
    s2p = files.write_suite2p(tmp_path, data, data / 3, files.iscell_array([1, 0, 1, 1, 0]))
    whole, meta = calab.load_suite2p(s2p)
    from calab.io.open import open_rows

    with open_rows(s2p) as src:
        assert src.shape == whole.shape and src.meta["cell_ids"] == meta["cell_ids"] == [0, 2, 3]
        np.testing.assert_array_equal(src.data[1:3], whole[1:3])


def test_info_shows_an_exports_per_cell_lambda_and_drift_baseline(tmp_path: Path) -> None:
    export = calab.export_dict(
        tau_rise=0.05, tau_decay=0.5, lam=np.array([0.01, 0.04, 0.02]), fs=30.0,
        baseline="drift", baseline_window_s=45.0,
    )  # fmt: skip
    calab.write_export(tmp_path / "p.json", export)
    proc = run("info", tmp_path / "p.json")
    assert proc.returncode == 0, proc.stderr
    assert "one per cell (3 cells): median 0.02, min 0.01, max 0.04" in proc.stdout
    assert "baseline:      drift (window 45 s)" in proc.stdout
    plain = tmp_path / "plain.json"
    calab.write_export(plain, calab.export_dict(tau_rise=0.05, tau_decay=0.5, lam=0.02, fs=30.0))
    proc = run("info", plain)
    assert "lambda:        0.02\n" in proc.stdout and "baseline:      constant" in proc.stdout
