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
    out, meta = calab.load_caiman(path, accepted_only=True)
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


def test_missing_frame_rate_gives_none(tmp_path, traces):
    # Issue 10: as the CaLab package, no frame rate in the file is sampling_rate_hz None.
    path = write_caiman(tmp_path / "res.hdf5", traces, fr="NoneType")
    out, meta = calab.load_caiman(path)
    assert meta["sampling_rate_hz"] is None and out.shape == (5, 120)
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
        f["estimates/C"] = np.ones((2, 3, 4))
    with pytest.raises(ValueError, match=r"2-D \(n_cells, n_frames\), got 3-D"):
        calab.load_caiman(path)


def test_one_dimensional_traces_are_one_cell(tmp_path):
    # Issue 10: the CaLab package reads a 1-D estimates/C as one cell.
    path = write_caiman(tmp_path / "res.hdf5", np.ones((2, 3)))
    import h5py

    with h5py.File(path, "a") as f:
        del f["estimates/C"]
        f["estimates/C"] = np.arange(10.0)
    out, meta = calab.load_caiman(path)
    np.testing.assert_array_equal(out, np.arange(10.0)[None, :])
    assert (meta["num_cells"], meta["num_timepoints"], meta["cell_ids"]) == (1, 10, [0])


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
    with pytest.raises(
        ImportError,
        match=r"pip install (h5py|xarray|zarr) \(every loader package: pip install h5py zarr "
        r"xarray\)",
    ):
        calab.load_caiman(path)


def test_default_is_every_row_in_stored_order(tmp_path, traces):
    # Issue 10: the CaLab package returns every row of estimates/C; accepted_only is opt-in.
    path = write_caiman(tmp_path / "res.hdf5", traces, idx_components=np.array([3, 0, 4]))
    out, meta = calab.load_caiman(path)
    np.testing.assert_array_equal(out, traces.astype(np.float64))
    assert meta["cell_ids"] == [0, 1, 2, 3, 4] and meta["num_cells"] == 5


def test_custom_trace_and_frame_rate_keys(tmp_path, traces):
    path = write_caiman(tmp_path / "res.hdf5", traces, fr=30.0)
    import h5py

    with h5py.File(path, "a") as f:
        f["estimates/C_on_accepted"] = traces[:2] * 2
        f["params/data/fr2"] = 12.5
    out, meta = calab.load_caiman(path, "estimates/C_on_accepted", "params/data/fr2")
    np.testing.assert_array_equal(out, traces[:2].astype(np.float64) * 2)
    assert meta["sampling_rate_hz"] == 12.5 and meta["trace_key"] == "estimates/C_on_accepted"
    _, meta = calab.load_caiman(path, fs_key="params/data/missing")
    assert meta["sampling_rate_hz"] is None
    with pytest.raises(KeyError, match=r"estimates/S2 not found.*holds: .*C_on_accepted"):
        calab.load_caiman(path, trace_key="estimates/S2")


def test_missing_group_names_the_full_key(tmp_path):
    import h5py

    path = tmp_path / "res.hdf5"
    with h5py.File(path, "w") as f:
        f["other/data"] = np.zeros(10)
    with pytest.raises(KeyError, match=r"estimates/C not found.*holds: other"):
        calab.load_caiman(path)


@pytest.mark.parametrize(
    ("idx", "message"),
    [
        (np.array([0.0, 2.0]), r"idx_components .* has dtype float64; .* integer indices"),
        (np.array([[0, 1], [2, 3]]), r"idx_components .* must be 1-D .* shape \(2, 2\)"),
        (np.array([0, -1, 2]), r"holds the index -1, outside 0\.\.4"),
        (np.array([0, 7]), r"holds the index 7, outside 0\.\.4"),
        (np.array([], dtype=np.int64), "no accepted components"),
    ],
)
def test_bad_idx_components_are_refused(tmp_path, traces, idx, message):
    path = write_caiman(tmp_path / "res.hdf5", traces, idx_components=idx)
    with pytest.raises(ValueError, match=message):
        calab.load_caiman(path, accepted_only=True)
    out, _ = calab.load_caiman(path)  # every row: the list is not used
    assert out.shape == (5, 120)


def test_links_are_followed_or_refused_by_name(tmp_path, traces):
    import h5py

    path = write_caiman(tmp_path / "res.hdf5", traces)
    with h5py.File(path, "a") as f:
        f["estimates/C_link"] = h5py.SoftLink("/estimates/C")
        f["estimates/gone"] = h5py.SoftLink("/estimates/nothing")
        f["estimates/ext"] = h5py.ExternalLink(str(tmp_path / "other.hdf5"), "/C")
        f["loop/a"] = h5py.SoftLink("/loop/b")
        f["loop/b"] = h5py.SoftLink("/loop/a")
        f["loop/self"] = f["loop"]  # a hard-link cycle
    out, _ = calab.load_caiman(path, trace_key="estimates/C_link")
    np.testing.assert_array_equal(out, traces.astype(np.float64))
    with pytest.raises(KeyError, match=r"estimates/gone in .*res.hdf5 is a link to the missing"):
        calab.load_caiman(path, trace_key="estimates/gone")
    with pytest.raises(ValueError, match=r"estimates/ext in .*res.hdf5 is an external link"):
        calab.load_caiman(path, trace_key="estimates/ext")
    with pytest.raises(OSError, match=r"cannot read loop/a from .*res.hdf5"):
        calab.load_caiman(path, trace_key="loop/a")
    with pytest.raises(KeyError, match=r"loop/self/self/C not found.*holds: a, b, self"):
        calab.load_caiman(path, trace_key="loop/self/self/C")


def test_external_storage_is_refused(tmp_path, traces):
    import h5py

    raw = tmp_path / "raw.bin"
    raw.write_bytes(traces.astype("<f4").tobytes())
    path = tmp_path / "res.hdf5"
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "estimates/C", shape=traces.shape, dtype="<f4", external=[(raw, 0, h5py.h5f.UNLIMITED)]
        )
    with pytest.raises(ValueError, match="keeps its data in other files"):
        calab.load_caiman(path)


def test_numpy_scalar_frame_rates(tmp_path, traces):
    path = write_caiman(tmp_path / "res.hdf5", traces, fr=np.float32(15.0))
    with pytest.warns(UserWarning, match="fs = 20 Hz was given but .* 15 Hz"):
        _, meta = calab.load_caiman(path, fs=np.float32(20.0))
    assert meta["sampling_rate_hz"] == 20.0
    _, meta = calab.load_caiman(path)
    assert meta["sampling_rate_hz"] == 15.0
