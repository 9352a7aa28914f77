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
    with pytest.raises(ImportError, match=r"pip install calab\[loaders\]"):
        calab.load_minian(tmp_path, fs=30.0)
