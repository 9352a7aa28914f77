"""Dask arrays and xarray DataArrays through run_deconvolution(_full): lazy, exact, same type."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import calab

da = pytest.importorskip("dask.array", reason="needs calab[dask]")
xr = pytest.importorskip("xarray", reason="needs calab[loaders]")

PARAMS = dict(fs=30.0, tau_r=0.05, tau_d=0.5, lam=0.01)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, calab.DeconvolutionResult]:
    traces, _ = calab.simulate(n_cells=24, n_frames=1500, seed=11)
    return traces, calab.run_deconvolution_full(traces, **PARAMS)


def test_dask_array_is_lazy_and_exact(data) -> None:
    traces, ref = data
    arr = da.from_array(traces, chunks=(5, 400))  # frames chunked too: must be rechunked
    out = calab.run_deconvolution(arr, **PARAMS)
    assert isinstance(out, da.Array)
    assert out.chunks[1] == (traces.shape[1],)
    np.testing.assert_array_equal(out.compute(), ref.activity)


def test_dask_full_result_matches(data) -> None:
    traces, ref = data
    res = calab.run_deconvolution_full(da.from_array(traces, chunks=(7, -1)), **PARAMS)
    activity, baseline, reconv, iters, conv = da.compute(*res)
    np.testing.assert_array_equal(activity, ref.activity)
    np.testing.assert_array_equal(baseline, ref.baseline)
    np.testing.assert_array_equal(reconv, ref.reconvolution)
    np.testing.assert_array_equal(iters, ref.iterations)
    np.testing.assert_array_equal(conv, ref.converged)


def test_dataarray_frame_first_comes_back_in_its_order(data) -> None:
    traces, ref = data
    ids = np.arange(traces.shape[0]) * 3 + 7
    arr = xr.DataArray(
        traces.T, dims=("frame", "unit_id"), coords={"unit_id": ids, "frame": np.arange(1500)}
    )
    out = calab.run_deconvolution(arr, **PARAMS)
    assert out.dims == ("frame", "unit_id")
    np.testing.assert_array_equal(out["unit_id"].values, ids)
    np.testing.assert_array_equal(out.transpose("unit_id", "frame").values, ref.activity)
    full = calab.run_deconvolution_full(arr.chunk({"unit_id": 10}), **PARAMS)
    assert full.baseline.dims == ("unit_id",)
    np.testing.assert_array_equal(full.baseline.sel(unit_id=ids[3]).values, ref.baseline[3])


def test_dataarray_with_unknown_dims_is_refused(data) -> None:
    arr = xr.DataArray(data[0], dims=("a", "b"))
    with pytest.raises(ValueError, match="unit_id"):
        calab.run_deconvolution(arr, **PARAMS)


def test_bad_parameters_fail_before_computing(data) -> None:
    arr = da.from_array(data[0], chunks=(5, -1))
    with pytest.raises(ValueError, match="tau_rise"):
        calab.run_deconvolution(arr, fs=30.0, tau_r=1.0, tau_d=0.5, lam=0.01)
    with pytest.raises(ValueError, match="warm_start"):
        calab.run_deconvolution(arr, **PARAMS, warm_start=data[1].activity)


@pytest.mark.slow
def test_local_cluster_deconvolves_zarr_store(tmp_path, data) -> None:
    distributed = pytest.importorskip("distributed")
    traces, ref = data
    store = tmp_path / "C.zarr"
    xr.DataArray(
        traces, dims=("unit_id", "frame"), coords={"unit_id": np.arange(24)}, name="C"
    ).chunk({"unit_id": 6, "frame": -1}).to_dataset().to_zarr(store, consolidated=False)
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        arr = xr.open_zarr(store, consolidated=False)["C"]
        out = calab.run_deconvolution(arr, **PARAMS).compute()
        assert len(client.scheduler_info()["workers"]) == 2
    np.testing.assert_array_equal(out.values, ref.activity)


def test_in_memory_path_never_imports_dask() -> None:
    code = (
        "import sys, numpy as np, calab\n"
        "calab.run_deconvolution_full(np.random.default_rng(0).normal(size=(3, 200)), 30.0, "
        "0.05, 0.5, 0.01)\n"
        "print('dask' in sys.modules, 'xarray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
