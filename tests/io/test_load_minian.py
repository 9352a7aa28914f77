"""load_minian on zarr stores written by xarray as Minian writes them."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import xarray as xr
from _pipeline_files import minian_array, write_minian_var

import calab


@pytest.fixture
def values() -> np.ndarray:
    return np.random.default_rng(1).normal(size=(4, 50))


def test_output_folder(tmp_path, values):
    write_minian_var(tmp_path, minian_array(values))
    write_minian_var(tmp_path, minian_array(values * 0, name="S"))
    out, meta = calab.load_minian(tmp_path, fs=20.0)
    np.testing.assert_array_equal(out, values)
    assert out.dtype == np.float64 and out.flags.c_contiguous
    assert meta["source"] == "minian"
    assert meta["sampling_rate_hz"] == 20.0
    assert (meta["num_cells"], meta["num_timepoints"]) == (4, 50)
    assert meta["cell_ids"] == [1, 4, 7, 10]
    spikes, meta_s = calab.load_minian(tmp_path, 20.0, variable="S")
    assert not spikes.any() and meta_s["variable"] == "S"


def test_single_store(tmp_path, values):
    store = write_minian_var(tmp_path, minian_array(values))
    out, _ = calab.load_minian(store, fs=30.0)
    np.testing.assert_array_equal(out, values)


def test_frame_first_store_is_ordered_by_dimension_name(tmp_path, values):
    da = minian_array(values).transpose("frame", "unit_id")
    store = write_minian_var(tmp_path, da)
    assert xr.open_zarr(store)["C"].dims == ("frame", "unit_id")
    out, meta = calab.load_minian(tmp_path, fs=30.0)
    assert out.shape == (4, 50)
    np.testing.assert_array_equal(out, values)
    assert out.flags.c_contiguous
    assert meta["cell_ids"] == [1, 4, 7, 10]


def test_zarr_format_3_store(tmp_path, values):
    store = write_minian_var(tmp_path, minian_array(values), zarr_format=3)
    out, _ = calab.load_minian(store, fs=30.0)
    np.testing.assert_array_equal(out, values)


def test_wrong_dimensions(tmp_path, values):
    da = xr.DataArray(values, dims=("cell", "time"), name="C")
    da.to_dataset().to_zarr(tmp_path / "C.zarr", zarr_format=2)
    with pytest.raises(ValueError, match=r"dimensions \('cell', 'time'\).*'unit_id' and 'frame'"):
        calab.load_minian(tmp_path, fs=30.0)


def test_missing_variable_lists_stores(tmp_path, values):
    write_minian_var(tmp_path, minian_array(values, name="A"))
    # Issue 10: a missing variable is a KeyError (as in the CaLab package), listing the stores.
    with pytest.raises(KeyError, match=r"no C.zarr .* holds: A.zarr"):
        calab.load_minian(tmp_path, fs=30.0)
    with pytest.raises(FileNotFoundError):
        calab.load_minian(tmp_path / "missing", fs=30.0)


def test_nan_rows_name_unit_ids(tmp_path, values):
    bad = values.copy()
    bad[2, 5] = np.nan
    write_minian_var(tmp_path, minian_array(bad))
    with pytest.raises(ValueError, match=r"cell ids 7\)"):
        calab.load_minian(tmp_path, fs=30.0)


def test_fs_is_optional_and_checked(tmp_path, values):
    # Issue 10: as in the CaLab package, no fs gives sampling_rate_hz None.
    write_minian_var(tmp_path, minian_array(values))
    out, meta = calab.load_minian(tmp_path)
    assert meta["sampling_rate_hz"] is None
    np.testing.assert_array_equal(out, values)
    with pytest.raises(ValueError, match="positive"):
        calab.load_minian(tmp_path, fs=-1.0)


def test_missing_xarray_names_the_extra(tmp_path, values, monkeypatch):
    write_minian_var(tmp_path, minian_array(values))
    monkeypatch.setitem(sys.modules, "xarray", None)
    with pytest.raises(
        ImportError,
        match=r"pip install (h5py|xarray|zarr) \(every loader package: pip install h5py zarr "
        r"xarray\)",
    ):
        calab.load_minian(tmp_path, fs=30.0)


def _chunk_files(store, name="C"):
    return sorted(
        p
        for p in (store / name).rglob("*")
        if p.is_file() and p.name[0] != "." and p.name != "zarr.json"
    )


@pytest.mark.parametrize("dtype", [np.int32, np.float64])
def test_missing_chunk_is_named(tmp_path, values, dtype):
    # zarr fills a missing chunk with the fill value: zeros for an integer store (silently
    # wrong data), NaN for a float store (then blamed on the data). Both must name the chunk.
    data = (values * 100).astype(dtype)
    store = write_minian_var(tmp_path, minian_array(data))
    chunks = _chunk_files(store)
    assert len(chunks) == 4  # one chunk per unit, as Minian writes them
    chunks[2].unlink()
    with pytest.raises(OSError, match=r"lacks chunk C/2\.0 of C \(indices 2\.\.2, 0\.\.49\)"):
        calab.load_minian(tmp_path, fs=30.0)


def test_missing_chunk_zarr_format_3(tmp_path, values):
    store = write_minian_var(tmp_path, minian_array(values.astype(np.int64)), zarr_format=3)
    chunks = _chunk_files(store)
    assert len(chunks) == 4
    chunks[1].unlink()
    with pytest.raises(OSError, match=r"lacks chunk C/c/1/0 of C"):
        calab.load_minian(store, fs=30.0)


def test_corrupt_compressed_chunk_names_the_store(tmp_path, values):
    from numcodecs import Zstd

    store = tmp_path / "C.zarr"
    da = minian_array(values)
    da.to_dataset().to_zarr(
        store, zarr_format=2, encoding={"C": {"compressors": [Zstd(level=3)], "chunks": (1, 50)}}
    )
    chunk = _chunk_files(store)[0]
    chunk.write_bytes(chunk.read_bytes()[:-7])  # truncated, as by an interrupted copy
    with pytest.raises(
        OSError, match=r"cannot read C \(units 0\.\.3\) from the zarr store .*C\.zarr"
    ):
        calab.load_minian(tmp_path, fs=30.0)


def test_trace_key_forms(tmp_path, values):
    write_minian_var(tmp_path, minian_array(values))
    write_minian_var(tmp_path, minian_array(values * 2, name="S"))
    a, meta_a = calab.load_minian(tmp_path, "S")
    b, _ = calab.load_minian(tmp_path, trace_key="S", fs=10.0)
    c, _ = calab.load_minian(tmp_path, variable="S")
    for got in (a, b, c):
        np.testing.assert_array_equal(got, values * 2)
    assert meta_a["variable"] == "S" and meta_a["sampling_rate_hz"] is None
    with pytest.raises(TypeError, match="pass only trace_key"):
        calab.load_minian(tmp_path, "YrA", variable="S")
    with pytest.raises(KeyError, match=r"no YrA.zarr .* holds: C.zarr, S.zarr"):
        calab.load_minian(tmp_path, "YrA")


def test_unlabelled_group_arrays(tmp_path):
    import zarr

    root = zarr.open_group(str(tmp_path / "out.zarr"), mode="w")
    root.create_array("C", data=np.zeros((2, 5)))
    root.create_array("other", data=np.zeros(10))
    with pytest.raises(
        ValueError, match=r"C in .*out.zarr has no dimension names.*never by position"
    ):
        calab.load_minian(tmp_path / "out.zarr")
    with pytest.raises(KeyError, match=r"variable 'S' not found .*holds: C, other"):
        calab.load_minian(tmp_path / "out.zarr", "S")
