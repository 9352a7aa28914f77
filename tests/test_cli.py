"""The ``calab`` command, run as a subprocess the way users run it."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr

import calab

_spec = importlib.util.spec_from_file_location(
    "calab_test_pipeline_files", Path(__file__).parent / "io" / "_pipeline_files.py"
)
assert _spec and _spec.loader
files = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(files)

CALAB = Path(sys.executable).with_name("calab")
CMD = [str(CALAB)] if CALAB.exists() else [sys.executable, "-m", "calab.cli"]
PARAMS = {"tau_rise": 0.05, "tau_decay": 0.5, "lam": 0.02, "fs": 30.0}


def run(
    *args: object, cwd: Path | None = None, cmd: list[str] = CMD
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*cmd, *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd
    )


def assert_error(proc: subprocess.CompletedProcess, fragment: str) -> None:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("calab: error: "), proc.stderr
    assert fragment in lines[0], lines[0]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def data(tmp_path):
    traces, _ = calab.simulate(6, 300, 30.0, 0.05, 0.5, seed=4)
    np.save(tmp_path / "traces.npy", traces)
    calab.write_export(tmp_path / "params.json", calab.export_dict(**PARAMS))
    return traces


def test_version_and_help():
    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"calab {calab.__version__}"
    proc = run("--help")
    assert proc.returncode == 0
    for command in ("deconvolve", "convert", "info"):
        assert command in proc.stdout
    module = run("--version", cmd=[sys.executable, "-m", "calab.cli"])
    assert module.returncode == 0 and module.stdout == f"calab {calab.__version__}\n"


def test_no_command_is_a_usage_error():
    proc = run()
    assert proc.returncode == 2 and "choose a command" in proc.stderr


def test_deconvolve_npy_matches_the_api(tmp_path, data):
    before = digest(tmp_path / "traces.npy")
    proc = run("deconvolve", "traces.npy", "--params", "params.json", "-o", "act.npy", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "act.npy"
    assert proc.stderr == ""  # no progress bar when stderr is not a terminal
    got = np.load(tmp_path / "act.npy")
    want = calab.deconvolve_from_export(data, tmp_path / "params.json")
    np.testing.assert_array_equal(got, want)
    assert digest(tmp_path / "traces.npy") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["act.npy", "params.json", "traces.npy"]


def test_deconvolve_default_output_and_force(tmp_path, data):
    proc = run("deconvolve", "traces.npy", "--params", "params.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "traces_activity.npy"
    first = digest(out)
    np.save(out, np.zeros(3))
    stamp = digest(out)
    proc = run("deconvolve", "traces.npy", "--params", "params.json", cwd=tmp_path)
    assert_error(proc, "already exists; pass --force")
    assert digest(out) == stamp
    proc = run("deconvolve", "traces.npy", "--params", "params.json", "--force", cwd=tmp_path)
    assert proc.returncode == 0 and digest(out) == first
    proc = run("deconvolve", "traces.npy", "--params", "params.json", "-o", "traces.npy",
               "--force", cwd=tmp_path)  # fmt: skip
    assert_error(proc, "is an input file")


@pytest.mark.parametrize("suffix", [".npy", ".h5", ".zarr"])
def test_deconvolve_full(tmp_path, data, suffix):
    out = tmp_path / f"act{suffix}"
    proc = run("deconvolve", "traces.npy", "--params", "params.json", "-o", out.name, "--full",
               "--chunk-size", "4", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    want = calab.run_deconvolution_full(data, 30.0, 0.05, 0.5, 0.02)
    info = json.loads((tmp_path / "act_info.json").read_text())
    np.testing.assert_allclose(info["baseline"], want.baseline, rtol=0, atol=0)
    assert info["iterations"] == want.iterations.tolist()
    assert info["converged"] == want.converged.tolist()
    assert (info["num_cells"], info["num_timepoints"], info["sampling_rate_hz"]) == (6, 300, 30.0)
    if suffix == ".npy":
        activity = np.load(out)
    elif suffix == ".h5":
        with h5py.File(out, "r") as f:
            activity = f["activity"][()]
            np.testing.assert_array_equal(f["baseline"][()], want.baseline)
            np.testing.assert_array_equal(f["converged"][()], want.converged)
    else:
        group = zarr.open_group(str(out), mode="r")
        activity = group["activity"][:]
        np.testing.assert_array_equal(group["iterations"][:], want.iterations)
    np.testing.assert_array_equal(activity, want.activity)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_deconvolve_pipeline_files(tmp_path, data):
    files.write_caiman(
        tmp_path / "res.hdf5", data.astype(np.float32), idx_components=np.array([1, 2])
    )
    proc = run("deconvolve", "res.hdf5", "--params", "params.json", "-o", "a.npy", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    want = calab.deconvolve_from_export(
        data[[1, 2]].astype(np.float32).astype(float), tmp_path / "params.json"
    )
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), want)

    F = data + 50
    folder = files.write_suite2p(
        tmp_path, F, np.zeros_like(F), files.iscell_array([1] * 6), fs=30.0
    )
    proc = run("deconvolve", folder, "--format", "suite2p", "--params", "params.json",
               "-o", "b.npy", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert np.load(tmp_path / "b.npy").shape == (6, 300)


def test_deconvolve_errors(tmp_path, data):
    proc = run("deconvolve", "traces.npy", "--params", "none.json", cwd=tmp_path)
    assert_error(proc, "CaTune export not found")
    (tmp_path / "new.json").write_text(json.dumps({"schema_version": "9.0.0", "parameters": {}}))
    proc = run("deconvolve", "traces.npy", "--params", "new.json", cwd=tmp_path)
    assert_error(proc, "unknown CaTune export schema_version '9.0.0'")
    proc = run("deconvolve", "missing.npy", "--params", "params.json", cwd=tmp_path)
    assert_error(proc, "not found")
    proc = run("deconvolve", "traces.npy", "--params", "params.json", "-o", "a.csv", cwd=tmp_path)
    assert_error(proc, "must end in .npy, .h5 or .zarr")
    bad = data.copy()
    bad[4, 9] = np.nan
    np.save(tmp_path / "bad.npy", bad)
    proc = run("deconvolve", "bad.npy", "--params", "params.json", "-o", "b.npy", cwd=tmp_path)
    assert_error(proc, "cells 4 hold NaN")
    assert not (tmp_path / "b.npy").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def _start_deconvolve(tmp_path, *extra):
    return subprocess.Popen(
        [*CMD, "deconvolve", "big.npy", "--params", "params.json", "-o", "out.npy", "--full",
         *extra],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def _wait_for_chunks(tmp_path, proc, k):
    """Wait until the run has recorded at least k finished chunks."""
    progress = tmp_path / ".out.npy.partial.json"
    deadline = time.monotonic() + 60
    while True:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline
        try:
            if len(json.loads(progress.read_text())["done"]) >= k:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.01)


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_deconvolve_interrupted_then_resumed(tmp_path, how):
    traces, _ = calab.simulate(3000, 300, 30.0, 0.05, 0.5, seed=5)
    np.save(tmp_path / "big.npy", traces)
    calab.write_export(tmp_path / "params.json", calab.export_dict(**PARAMS))
    proc = _start_deconvolve(tmp_path, "--chunk-size", "2")
    _wait_for_chunks(tmp_path, proc, 3)
    proc.send_signal(how)
    out, err = proc.communicate(timeout=60)
    if how == signal.SIGINT:
        assert proc.returncode == 130, err
        assert "Traceback" not in err and "run the same command again to resume" in err
    assert not (tmp_path / "out.npy").exists()  # nothing half-written under the real name
    before = json.loads((tmp_path / ".out.npy.partial.json").read_text())["done"]
    assert 3 <= len(before) < 1500
    # Same command again: resumes where it stopped, and the result is the uninterrupted one.
    proc = _start_deconvolve(tmp_path, "--chunk-size", "2")
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "resuming out.npy" in err
    ref = calab.run_deconvolution_full(traces, 30.0, 0.05, 0.5, 0.02)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), ref.activity)
    info = json.loads((tmp_path / "out_info.json").read_text())
    np.testing.assert_array_equal(info["baseline"], ref.baseline)
    np.testing.assert_array_equal(info["iterations"], ref.iterations)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "big.npy", "out.npy", "out_info.json", "params.json"
    ]  # fmt: skip


def test_deconvolve_refuses_a_stale_partial(tmp_path):
    traces, _ = calab.simulate(3000, 300, 30.0, 0.05, 0.5, seed=5)
    np.save(tmp_path / "big.npy", traces)
    calab.write_export(tmp_path / "params.json", calab.export_dict(**PARAMS))
    proc = _start_deconvolve(tmp_path, "--chunk-size", "2")
    _wait_for_chunks(tmp_path, proc, 2)
    proc.kill()
    proc.communicate(timeout=60)
    # Other parameters: the partial must not be mixed in.
    calab.write_export(
        tmp_path / "params.json", calab.export_dict(**{**PARAMS, "lam": 0.5}), force=True
    )
    proc = _start_deconvolve(tmp_path, "--chunk-size", "2")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1 and "unfinished run" in err and "--force" in err
    proc = _start_deconvolve(tmp_path, "--chunk-size", "500", "--force")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    ref = calab.run_deconvolution(traces, 30.0, 0.05, 0.5, 0.5)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), ref)


def test_convert_each_pipeline(tmp_path, data):
    files.write_caiman(tmp_path / "res.hdf5", data, idx_components=np.array([0, 5]))
    before = digest(tmp_path / "res.hdf5")
    proc = run("convert", "res.hdf5", "--format", "caiman", "-o", "rec", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["rec.npy", "rec_metadata.json"]
    traces, meta = calab.load_tuning_data(tmp_path / "rec")
    np.testing.assert_array_equal(traces, data[[0, 5]])
    assert meta["sampling_rate_hz"] == 30.0 and meta["source"] == "caiman"
    assert meta["cell_ids"] == [0, 5]
    assert digest(tmp_path / "res.hdf5") == before

    stamp = digest(tmp_path / "rec.npy")
    proc = run("convert", "res.hdf5", "--format", "caiman", "--all-components", "-o", "rec",
               cwd=tmp_path)  # fmt: skip
    assert_error(proc, "rec.npy already exists; pass --force")
    assert digest(tmp_path / "rec.npy") == stamp
    proc = run("convert", "res.hdf5", "--format", "caiman", "--all-components", "-o", "rec",
               "--force", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0 and calab.load_tuning_data(tmp_path / "rec")[0].shape == (6, 300)

    mdir = tmp_path / "minian"
    mdir.mkdir()
    files.write_minian_var(mdir, files.minian_array(data).transpose("frame", "unit_id"))
    proc = run("convert", mdir, "--format", "minian", "-o", "m", cwd=tmp_path)
    assert_error(proc, "pass --fs")
    proc = run("convert", mdir, "--format", "minian", "--fs", "30", "-o", "m", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(calab.load_tuning_data(tmp_path / "m")[0], data)

    folder = files.write_suite2p(tmp_path, data, data / 2, files.iscell_array([1, 1, 0, 1, 1, 1]))
    proc = run("convert", folder, "--format", "suite2p", "-o", "s", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    s, smeta = calab.load_tuning_data(tmp_path / "s")
    assert s.shape == (5, 300) and smeta["sampling_rate_hz"] == 15.0


def test_convert_bad_file(tmp_path):
    (tmp_path / "res.hdf5").write_text("garbage")
    proc = run("convert", "res.hdf5", "--format", "caiman", "-o", "rec", cwd=tmp_path)
    assert_error(proc, "cannot read res.hdf5 as HDF5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res.hdf5"]


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
