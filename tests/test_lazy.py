"""Dask arrays and xarray DataArrays through run_deconvolution(_full): lazy, exact, same type."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

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


def test_per_cell_lambda_is_chunked_with_the_cells(data) -> None:
    traces, _ = data
    lam = np.linspace(0.0, 0.2, traces.shape[0])
    args = dict(fs=30.0, tau_r=0.05, tau_d=0.5, lam=lam)
    ref = calab.run_deconvolution_full(traces, **args)
    # Uneven chunks: each chunk must get the lambdas of its own cells.
    arr = da.from_array(traces, chunks=((5, 7, 12), (1500,)))
    res = da.compute(*calab.run_deconvolution_full(arr, **args))
    for got, want in zip(res, ref, strict=True):
        np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(calab.run_deconvolution(arr, **args).compute(), ref.activity)
    xarr = xr.DataArray(traces.T, dims=("frame", "unit_id")).chunk({"unit_id": 5})
    out = calab.run_deconvolution(xarr, **args)
    np.testing.assert_array_equal(out.transpose("unit_id", "frame").values, ref.activity)
    with pytest.raises(ValueError, match=r"^lam has 3 values but the traces have 24 cells"):
        calab.run_deconvolution(arr, fs=30.0, tau_r=0.05, tau_d=0.5, lam=[0.1, 0.2, 0.3])


@pytest.mark.slow
def test_local_cluster_deconvolves_zarr_store(tmp_path, data) -> None:
    distributed = pytest.importorskip("distributed")
    traces, ref = data
    store = tmp_path / "C.zarr"
    xr.DataArray(
        traces, dims=("unit_id", "frame"), coords={"unit_id": np.arange(24)}, name="C"
    ).chunk({"unit_id": 6, "frame": -1}).to_dataset().to_zarr(store, consolidated=False)
    import dask

    # Worker processes import numpy, zarr and calab before they register; on a busy machine
    # that can take longer than distributed's 30 s connect timeout. Wait for them rather than
    # fail: the test is about the result, not start-up speed.
    slow_start = {
        "distributed.comm.timeouts.connect": "600s",
        "distributed.comm.timeouts.tcp": "600s",
    }
    with (
        dask.config.set(slow_start),
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


def _cli(*args: str, cwd: Any) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "calab.cli", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_cli_streams_minian_zarr_to_zarr_and_resumes_after_kill(tmp_path: Any) -> None:
    """Killed mid-run, the same command finishes from its partial output, exactly."""
    import json
    import os
    import signal

    from calab.batch import PAUSE_ENV

    zarr = pytest.importorskip("zarr")
    traces, _ = calab.simulate(n_cells=300, n_frames=600, seed=21)
    xr.DataArray(
        traces.T.astype(np.float32),
        dims=("frame", "unit_id"),  # stored frame-first: must come back by name
        coords={"unit_id": np.arange(300) + 1000, "frame": np.arange(600)},
        name="C",
    ).chunk({"frame": 600, "unit_id": 50}).to_dataset().to_zarr(
        tmp_path / "C.zarr", consolidated=False
    )
    calab.write_export(
        tmp_path / "p.json", calab.export_dict(tau_rise=0.05, tau_decay=0.5, lam=0.02, fs=30.0)
    )
    args = ["deconvolve", "C.zarr", "--format", "minian", "--fs", "30", "--params", "p.json",
            "-o", "out.zarr", "--chunk-size", "1", "--full"]  # fmt: skip
    # The batch module's test hook pauses the run after 5 chunks, so the kill cannot race it.
    proc = subprocess.Popen(
        [sys.executable, "-m", "calab.cli", *args], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True, env={**os.environ, PAUSE_ENV: "5"},
    )  # fmt: skip
    progress = tmp_path / ".out.zarr.partial" / "progress.json"
    assert proc.stderr is not None
    assert any("test hook: paused" in line for line in proc.stderr), proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    done_before = len(json.loads(progress.read_text())["done"])
    assert 5 <= done_before < 300
    proc = _cli(*args, cwd=tmp_path)
    _, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err
    assert f"resuming out.zarr: {done_before} of 300" in err
    ref = calab.run_deconvolution_full(traces.astype(np.float32), 30.0, 0.05, 0.5, 0.02)
    group = zarr.open_group(str(tmp_path / "out.zarr"), mode="r")
    np.testing.assert_array_equal(group["activity"][:], ref.activity)
    np.testing.assert_array_equal(group["baseline"][:], ref.baseline)
    assert not list(tmp_path.glob(".out.zarr.partial*"))


def test_cli_streams_caiman_hdf5_to_hdf5(tmp_path: Any) -> None:
    h5py = pytest.importorskip("h5py")
    traces, _ = calab.simulate(n_cells=40, n_frames=800, seed=22)
    accepted = np.arange(0, 40, 3)
    with h5py.File(tmp_path / "cnm.hdf5", "w") as f:
        f["estimates/C"] = traces
        f["estimates/YrA"] = np.zeros_like(traces)
        f["estimates/idx_components"] = accepted
        f["params/data/fr"] = np.float64(30.0)
    calab.write_export(
        tmp_path / "p.json", calab.export_dict(tau_rise=0.05, tau_decay=0.5, lam=0.02, fs=30.0)
    )
    proc = _cli("deconvolve", "cnm.hdf5", "--params", "p.json", "-o", "act.h5", "--chunk-size",
                "4", "--trace", "C+YrA", "--accepted-only", cwd=tmp_path)  # fmt: skip
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    ref = calab.run_deconvolution(traces[accepted], 30.0, 0.05, 0.5, 0.02)
    with h5py.File(tmp_path / "act.h5", "r") as f:
        np.testing.assert_array_equal(f["activity"][:], ref)


def test_drift_baseline_through_dask_and_xarray(data) -> None:
    traces, _ = data
    args = dict(PARAMS, baseline="drift", baseline_window_s=10.0)
    ref = calab.run_deconvolution_full(traces, **args)
    assert ref.baseline.shape == traces.shape
    # The drift estimate of a cell may differ in the last bits with the chunk it is in (BLAS).
    res = da.compute(*calab.run_deconvolution_full(da.from_array(traces, chunks=(7, -1)), **args))
    for got, want in zip(res, ref, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    xarr = xr.DataArray(traces.T, dims=("frame", "unit_id"))
    full = calab.run_deconvolution_full(xarr, **args)
    assert full.baseline.dims == ("frame", "unit_id")
    np.testing.assert_allclose(
        full.baseline.transpose("unit_id", "frame").values, ref.baseline, rtol=1e-12
    )
