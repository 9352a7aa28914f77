"""Opening inputs (calab.io.open): format detection, row sources, refusal of non-regular files,
and ``calab info`` on each kind of input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import calab
from calab.io.open import detect_format, open_rows, open_traces, require_regular

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the helpers of tests/
from _cli_run import CMD, PARAMS, assert_error, files, run  # noqa: E402


def test_info(tmp_path, data):
    bad = data.copy()
    bad[1, :3] = np.nan
    np.save(tmp_path / "bad.npy", bad)
    proc = run("info", "bad.npy", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "6 cells x 300 timepoints" in proc.stdout
    assert "float64" in proc.stdout and "NaN count:     3" in proc.stdout
    assert "unknown (pass --fs)" in proc.stdout

    calab.save_for_tuning(data, 20.0, tmp_path / "rec")
    proc = run("info", "rec", "--json", cwd=tmp_path)
    info = json.loads(proc.stdout)
    assert info["format"] == "tuning"
    assert (info["num_cells"], info["num_timepoints"], info["sampling_rate_hz"]) == (6, 300, 20.0)
    assert info["duration_s"] == pytest.approx(15.0) and info["nan_count"] == 0

    files.write_caiman(tmp_path / "res.hdf5", bad)
    proc = run("info", "res.hdf5", "--json", cwd=tmp_path)
    info = json.loads(proc.stdout)
    assert (info["format"], info["nan_count"], info["duration_s"]) == ("caiman", 3, 10.0)

    proc = run("info", "nothing.npy", cwd=tmp_path)
    assert_error(proc, "not found")


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_info_reads_calabs_own_outputs(tmp_path, suffix):
    traces, _ = calab.simulate(6, 400, 30.0, 0.05, 0.5, seed=9)
    np.save(tmp_path / "t.npy", traces)
    calab.write_export(tmp_path / "params.json", calab.export_dict(**PARAMS))
    out = f"act{suffix}"
    run = subprocess.run(
        [*CMD, "deconvolve", "t.npy", "--params", "params.json", "-o", out],
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    info = subprocess.run(
        [*CMD, "info", out, "--json"], cwd=tmp_path, capture_output=True, text=True
    )
    assert info.returncode == 0, info.stderr
    got = json.loads(info.stdout)
    assert (got["format"], got["num_cells"], got["num_timepoints"]) == ("calab", 6, 400)
    assert got["sampling_rate_hz"] == 30.0 and got["nan_count"] == 0


def test_detect_format_of_each_input(tmp_path, data):
    calab.save_for_tuning(data, 20.0, tmp_path / "rec")
    files.write_caiman(tmp_path / "res.hdf5", data)
    mdir = tmp_path / "minian"
    mdir.mkdir()
    files.write_minian_var(mdir, files.minian_array(data))
    s2p = files.write_suite2p(tmp_path, data, data / 2, files.iscell_array([1] * 6))
    cases = {
        "traces.npy": "npy", "rec": "tuning", "rec.npy": "tuning",
        "rec_metadata.json": "tuning", "res.hdf5": "caiman", "minian": "minian",
        "minian/C.zarr": "minian", str(s2p): "suite2p",
    }  # fmt: skip
    for name, fmt in cases.items():
        assert detect_format(tmp_path / name) == fmt, name
    with pytest.raises(FileNotFoundError, match="input not found"):
        detect_format(tmp_path / "nothing.npy")
    (tmp_path / "x.csv").write_text("1,2")
    with pytest.raises(ValueError, match="cannot tell the format"):
        detect_format(tmp_path / "x.csv")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="cannot tell what"):
        detect_format(tmp_path / "empty")


def test_open_rows_streams_what_open_traces_reads(tmp_path, data):
    files.write_caiman(tmp_path / "res.hdf5", data, idx_components=np.array([0, 3]))
    mdir = tmp_path / "minian"
    mdir.mkdir()
    files.write_minian_var(mdir, files.minian_array(data))
    for name, kw in (("res.hdf5", {}), ("res.hdf5", {"accepted_only": True}),
                     ("minian", {"fs": 30.0}), ("traces.npy", {"fs": 30.0})):  # fmt: skip
        with open_rows(tmp_path / name, **kw) as lazy, open_traces(tmp_path / name, **kw) as whole:
            assert lazy.shape == whole.shape and lazy.format == whole.format
            np.testing.assert_array_equal(np.asarray(lazy.data[1:3]), np.asarray(whole.data[1:3]))
            held = tmp_path / "minian" / "C.zarr" if name == "minian" else tmp_path / name
            assert lazy.inputs == whole.inputs == (held,)
    assert open_rows(tmp_path / "res.hdf5", accepted_only=True).shape == (2, 300)


def test_lazy_rows_take_the_indexes_dask_asks_for(tmp_path, data):
    """A streamed CaImAn file as a dask array (what ``calab estimate`` hands the estimator)."""
    import dask.array as da

    files.write_caiman(tmp_path / "res.hdf5", data)
    with open_rows(tmp_path / "res.hdf5") as src:
        rows = src.data
        assert rows.ndim == 2
        np.testing.assert_array_equal(rows[2:5, 10:20], data[2:5, 10:20])
        np.testing.assert_array_equal(rows[[4, 0], :7], data[[4, 0], :7])
        np.testing.assert_array_equal(rows[np.array([1, 5])], data[[1, 5]])
        lazy = da.from_array(rows, chunks=(2, 300), asarray=True, name=False)
        np.testing.assert_array_equal(lazy[[5, 1, 3]].compute(), data[[5, 1, 3]])
        np.testing.assert_array_equal(lazy[1:4, ::3].compute(), data[1:4, ::3])
        with pytest.raises(IndexError):
            rows[[0, 9]]
    with pytest.raises(ValueError, match="neuropil_coef must be a finite number >= 0"):
        open_rows(tmp_path / "traces.npy", neuropil_coef=float("nan"))
    with pytest.raises(TypeError, match="unexpected keyword argument 'accepted'"):
        open_rows(tmp_path / "traces.npy", accepted=True)


def test_tuning_sources_name_both_files_as_inputs(tmp_path, data):
    calab.save_for_tuning(data, 20.0, tmp_path / "rec")
    with open_traces(tmp_path / "rec") as src:
        assert src.inputs == (tmp_path / "rec.npy", tmp_path / "rec_metadata.json")
        assert src.fs == 20.0


@pytest.mark.parametrize("name", ["res.hdf5", "t.npy", "rec_metadata.json", "x.h5"])
def test_a_fifo_is_refused_not_read(tmp_path, name):
    """Issue 9 item 13: a FIFO named ``*.hdf5`` blocked ``calab info`` forever."""
    fifo = tmp_path / name
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="is a FIFO"):
        detect_format(fifo)
    with pytest.raises(ValueError, match="is a FIFO"):
        require_regular(fifo)
    for fmt in ("caiman", "npy") if name.endswith(".hdf5") else ():
        with pytest.raises(ValueError, match="is a FIFO"):
            open_rows(fifo, format=fmt, fs=30.0)
    # a blocked command would hit the timeout: nothing here may wait on the FIFO
    proc = subprocess.run([*CMD, "info", name], cwd=tmp_path, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert_error(proc, "is a FIFO (named pipe), not a regular file or folder")


def test_a_fifo_as_tuning_data_is_refused(tmp_path, data):
    (tmp_path / "rec_metadata.json").write_text(
        json.dumps({"schema_version": "1.0.0", "sampling_rate_hz": 30.0})
    )
    os.mkfifo(tmp_path / "rec.npy")
    proc = subprocess.run([*CMD, "deconvolve", "rec", "-p", "params.json", "-o", "a.npy"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)  # fmt: skip
    assert_error(proc, "is a FIFO")
    assert not (tmp_path / "a.npy").exists()
