"""save_for_tuning / load_tuning_data: the .npy + _metadata.json pair."""

from __future__ import annotations

import json

import numpy as np
import pytest

import calab


def test_round_trip_and_file_format(tmp_path):
    traces = np.asfortranarray(np.random.default_rng(0).normal(size=(3, 40)).astype(np.float32))
    npy, meta_path = calab.save_for_tuning(traces, 30.0, tmp_path / "rec", source="caiman")
    assert (npy.name, meta_path.name) == ("rec.npy", "rec_metadata.json")
    with open(npy, "rb") as fh:  # the header as numpy wrote it, read independently
        assert np.lib.format.read_magic(fh) == (1, 0)
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
    assert (shape, fortran, dtype.str) == ((3, 40), False, "<f8")
    meta = json.loads(meta_path.read_text())
    assert meta == {
        "schema_version": "1.0.0",
        "sampling_rate_hz": 30.0,
        "num_cells": 3,
        "num_timepoints": 40,
        "dtype": "<f8",
        "source": "caiman",
    }
    for path in (tmp_path / "rec", npy, str(npy)):
        data, loaded = calab.load_tuning_data(path)
        np.testing.assert_array_equal(data, traces.astype(np.float64))
        assert loaded["sampling_rate_hz"] == 30.0 and loaded["source"] == "caiman"


def test_one_dimensional_input_is_one_row(tmp_path):
    calab.save_for_tuning(np.arange(10.0), 10.0, tmp_path / "one.npy")
    data, meta = calab.load_tuning_data(tmp_path / "one")
    assert data.shape == (1, 10) and meta["num_cells"] == 1


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match=r"got shape \(2, 2, 2\)"):
        calab.save_for_tuning(np.zeros((2, 2, 2)), 30.0, tmp_path / "x")
    with pytest.raises(ValueError, match="positive"):
        calab.save_for_tuning(np.zeros((2, 5)), 0.0, tmp_path / "x")
    with pytest.raises(ValueError, match="set by save_for_tuning"):
        calab.save_for_tuning(np.zeros((2, 5)), 30.0, tmp_path / "x", num_cells=3)
    bad = np.zeros((3, 5))
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match=r"rows 1\)"):
        calab.save_for_tuning(bad, 30.0, tmp_path / "x")
    assert not list(tmp_path.iterdir())


def test_load_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="tuning data not found"):
        calab.load_tuning_data(tmp_path / "none")
    np.save(tmp_path / "bare.npy", np.zeros((2, 5)))
    with pytest.raises(FileNotFoundError, match="bare_metadata.json"):
        calab.load_tuning_data(tmp_path / "bare.npy")
    calab.save_for_tuning(np.zeros((2, 5)), 30.0, tmp_path / "rec")
    np.save(tmp_path / "rec.npy", np.zeros((3, 5)))
    with pytest.raises(ValueError, match="do not belong together"):
        calab.load_tuning_data(tmp_path / "rec")
    (tmp_path / "rec_metadata.json").write_text('{"schema_version": "2.0.0"}')
    with pytest.raises(ValueError, match="schema_version '2.0.0'"):
        calab.load_tuning_data(tmp_path / "rec")


def test_metadata_dict_is_merged_at_the_top_level(tmp_path):
    # Issue 10: the CaLab package's save_for_tuning(traces, fs, path, metadata={...}).
    calab.save_for_tuning(
        np.ones((2, 5)), 30.0, tmp_path / "rec", metadata={"animal": "m1", "day": 3}
    )
    meta = json.loads((tmp_path / "rec_metadata.json").read_text())
    assert meta["animal"] == "m1" and meta["day"] == 3 and "metadata" not in meta
    calab.save_for_tuning(np.ones((2, 5)), 30.0, tmp_path / "kw", {"a": 1}, source="x")
    assert json.loads((tmp_path / "kw_metadata.json").read_text())["a"] == 1
    with pytest.warns(UserWarning, match=r"\['num_cells', 'sampling_rate_hz'\] are set from"):
        calab.save_for_tuning(
            np.ones((2, 5)), 30.0, tmp_path / "r2", {"num_cells": 9, "sampling_rate_hz": 1.0}
        )
    meta = json.loads((tmp_path / "r2_metadata.json").read_text())
    assert (meta["num_cells"], meta["sampling_rate_hz"]) == (2, 30.0)
    with pytest.raises(TypeError, match="metadata must be a dict, got list"):
        calab.save_for_tuning(np.ones((2, 5)), 30.0, tmp_path / "r3", ["a"])  # type: ignore[arg-type]


def test_load_refuses_nan_traces(tmp_path):
    # Issue 9.18: like the pipeline loaders, NaN rows are refused and named.
    calab.save_for_tuning(np.ones((3, 5)), 30.0, tmp_path / "rec")
    bad = np.ones((3, 5))
    bad[2, 1] = np.nan
    np.save(tmp_path / "rec.npy", bad)
    with pytest.raises(ValueError, match=r"rec.npy has NaN or Inf in 1 of 3 cells \(rows 2\)"):
        calab.load_tuning_data(tmp_path / "rec")


def test_masked_arrays_are_refused(tmp_path):
    traces = np.ma.masked_greater(np.array([[1.0, 1e20, 2.0]]), 1e10)
    with pytest.raises(TypeError, match="traces is a masked array"):
        calab.save_for_tuning(traces, 30.0, tmp_path / "rec")
    assert not list(tmp_path.iterdir())
