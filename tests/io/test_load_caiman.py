"""load_caiman on HDF5 files in CaImAn's own layout."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from _pipeline_files import write_caiman

import calab


@pytest.fixture
def traces() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.normal(1.0, 0.2, size=(5, 120)).astype(np.float32)


def test_reads_accepted_components_and_frame_rate(tmp_path, traces):
    path = write_caiman(tmp_path / "res.hdf5", traces, idx_components=np.array([3, 0, 4]))
    out, meta = calab.load_caiman(path)
    np.testing.assert_array_equal(out, traces[[0, 3, 4]].astype(np.float64))
    assert out.dtype == np.float64 and out.flags.c_contiguous
    assert meta["source"] == "caiman"
    assert meta["sampling_rate_hz"] == 30.0
    assert (meta["num_cells"], meta["num_timepoints"]) == (3, 120)
    assert meta["cell_ids"] == [0, 3, 4]


def test_all_components_and_c_plus_yra(tmp_path, traces):
    yra = np.full_like(traces, 0.5)
    path = write_caiman(tmp_path / "res.hdf5", traces, YrA=yra, idx_components=np.array([1]))
    out, meta = calab.load_caiman(path, trace="C+YrA", accepted_only=False)
    np.testing.assert_allclose(out, traces.astype(np.float64) + 0.5)
    assert meta["num_cells"] == 5 and meta["cell_ids"] == [0, 1, 2, 3, 4]


def test_unevaluated_components_keep_all(tmp_path, traces):
    # CaImAn stores idx_components=None as the string 'NoneType' before evaluation.
    path = write_caiman(tmp_path / "res.hdf5", traces)
    out, _ = calab.load_caiman(path)
    assert out.shape == (5, 120)


def test_missing_frame_rate_needs_fs(tmp_path, traces):
    path = write_caiman(tmp_path / "res.hdf5", traces, fr="NoneType")
    with pytest.raises(KeyError, match="params/data/fr.*fs="):
        calab.load_caiman(path)
    _, meta = calab.load_caiman(path, fs=20.0)
    assert meta["sampling_rate_hz"] == 20.0


def test_missing_traces_lists_what_is_there(tmp_path):
    import h5py

    path = tmp_path / "res.hdf5"
    with h5py.File(path, "w") as f:
        f["estimates/A/data"] = np.ones(3)
        f["estimates/YrA"] = np.ones((2, 5))
    with pytest.raises(KeyError, match=r"estimates/C not found.*holds: A, YrA"):
        calab.load_caiman(path)
    with h5py.File(path, "w") as f:
        f["other"] = 1
    with pytest.raises(KeyError, match=r"estimates not found.*holds: other"):
        calab.load_caiman(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.hdf5"):
        calab.load_caiman(tmp_path / "nope.hdf5")


def test_truncated_and_non_hdf5_files(tmp_path, traces):
    path = write_caiman(tmp_path / "res.hdf5", np.ones((50, 4000)))
    data = path.read_bytes()
    cut = tmp_path / "cut.hdf5"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(OSError, match="truncated, corrupt"):
        calab.load_caiman(cut)
    text = tmp_path / "notes.hdf5"
    text.write_text("not hdf5")
    with pytest.raises(OSError, match="cannot read .*notes.hdf5 as HDF5"):
        calab.load_caiman(text)


def test_wrong_dimensions(tmp_path):
    path = write_caiman(tmp_path / "res.hdf5", np.ones((2, 3)))
    import h5py

    with h5py.File(path, "a") as f:
        del f["estimates/C"]
        f["estimates/C"] = np.ones(10)
    with pytest.raises(ValueError, match=r"2-D \(n_cells, n_frames\), got 1-D"):
        calab.load_caiman(path)


def test_nan_rows_are_named(tmp_path, traces):
    bad = traces.copy()
    bad[3, 7] = np.nan
    path = write_caiman(tmp_path / "res.hdf5", bad)
    with pytest.raises(ValueError, match=r"NaN or Inf in 1 of 5 cells \(cell ids 3\)"):
        calab.load_caiman(path)


def test_bad_trace_option(tmp_path, traces):
    path = write_caiman(tmp_path / "res.hdf5", traces)
    with pytest.raises(ValueError, match="'C' or 'C\\+YrA'"):
        calab.load_caiman(path, trace="S")  # type: ignore[arg-type]


def test_missing_h5py_names_the_extra(tmp_path, traces, monkeypatch):
    path = write_caiman(tmp_path / "res.hdf5", traces)
    monkeypatch.setitem(sys.modules, "h5py", None)
    with pytest.raises(ImportError, match=r"pip install calab\[loaders\]"):
        calab.load_caiman(path)
