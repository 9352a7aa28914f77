"""``calab estimate``, ``calab deconvolve --auto`` and drift baselines in file outputs (issue 12),
run as a subprocess on files written the way the pipelines write them."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import h5py
import numpy as np
import pytest
from _cli_run import CMD, assert_error, digest, files, run

import calab
from calab.batch import PAUSE_ENV, deconvolve_file, info_path_for
from calab.estimate import estimate_source
from calab.io.open import open_rows

FS = 30.0


@pytest.fixture
def rec(tmp_path: Path) -> np.ndarray:
    """Eight drifting GCaMP6f-like cells (100 s at 30 Hz) in CaImAn's ``res.hdf5`` layout."""
    traces, _ = calab.simulate(8, 3000, FS, indicator="GCaMP6f", drift=2.0, seed=3)
    files.write_caiman(tmp_path / "res.hdf5", traces, fr=FS)
    return traces


def _reference(traces: np.ndarray, **kw) -> calab.DeconvolutionResult:
    est = calab.estimate_parameters(traces, FS)
    return est, calab.run_deconvolution_full(
        traces, FS, est.tau_rise, est.tau_decay, est.lam, baseline=est.baseline, **kw
    )


# ----------------------------------------------------------------------------- calab estimate


def test_estimate_prints_and_writes_the_export(tmp_path, rec):
    est = calab.estimate_parameters(rec, FS)
    before = digest(tmp_path / "res.hdf5")
    proc = run("estimate", "res.hdf5", "-o", "est.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = dict(line.split(":", 1) for line in proc.stdout.splitlines()[:-1])
    assert float(lines["tau_rise"].split()[0]) == pytest.approx(est.tau_rise, rel=1e-5)
    assert float(lines["tau_decay"].split()[0]) == pytest.approx(est.tau_decay, rel=1e-5)
    assert float(lines["lambda"].split()[0]) == pytest.approx(est.params["lambda_"], rel=1e-5)
    assert lines["baseline"].strip() == est.baseline
    assert lines["no transients"].strip() == f"{int(est.no_transients.sum())} cells"
    assert proc.stdout.splitlines()[-1] == "est.json"
    # The export: CaTune's fields, and the per-cell lambda and baseline under "calab".
    p = calab.load_export_params(tmp_path / "est.json")
    np.testing.assert_allclose(p["lambda_per_cell"], est.lam, rtol=1e-12)
    assert p["tau_rise"] == pytest.approx(est.tau_rise, rel=1e-12)
    assert p["fs"] == FS and p.get("baseline", "constant") == est.baseline
    export = json.loads((tmp_path / "est.json").read_text())
    assert export["metadata"]["num_cells"] == 8 and export["metadata"]["num_timepoints"] == 3000
    assert digest(tmp_path / "res.hdf5") == before
    assert sorted(q.name for q in tmp_path.iterdir()) == ["est.json", "res.hdf5"]

    # Machine output: one JSON object with the per-cell values.
    proc = run("estimate", "res.hdf5", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    np.testing.assert_allclose(info["lambda_per_cell"], est.lam, rtol=1e-12)
    np.testing.assert_allclose(info["noise_sd"], est.noise, rtol=1e-12)
    assert info["baseline"] == est.baseline and info["no_transients"] == []
    assert info["num_cells"] == 8 and info["output"] is None


def test_estimate_output_safety(tmp_path, rec):
    (tmp_path / "est.json").write_text("{}")
    proc = run("estimate", "res.hdf5", "-o", "est.json", cwd=tmp_path)
    assert_error(proc, "est.json already exists; pass --force")
    assert (tmp_path / "est.json").read_text() == "{}"
    proc = run("estimate", "res.hdf5", "-o", "est.json", "--force", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "lambda_per_cell" in calab.load_export_params(tmp_path / "est.json")
    proc = run("estimate", "res.hdf5", "-o", "res.hdf5", "--force", cwd=tmp_path)
    assert_error(proc, "is an input file")
    # suite2p: never inside the plane folder read.
    F = rec * 100
    s2p = files.write_suite2p(tmp_path / "s", F, 0.1 * F, files.iscell_array([1] * 8), fs=FS)
    proc = run("estimate", s2p, "-o", s2p / "plane0" / "e.json", cwd=tmp_path)
    assert_error(proc, "inside the input folder")
    proc = run("estimate", s2p, "--neuropil-coef", "0", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    est = calab.estimate_parameters(F.astype(np.float32).astype(np.float64), FS)
    np.testing.assert_allclose(json.loads(proc.stdout)["lambda_per_cell"], est.lam, rtol=1e-6)
    # No sampling rate: the error names --fs.
    np.save(tmp_path / "bare.npy", rec)
    assert_error(run("estimate", "bare.npy", cwd=tmp_path), "pass --fs HZ")
    assert run("estimate", "bare.npy", "--fs", "30", cwd=tmp_path).returncode == 0


def test_estimate_reads_a_block_of_cells_at_a_time(tmp_path, rec):
    """A CaImAn file is read by ``chunk_cells`` rows, never whole, and estimates as in memory."""
    reads: list[tuple[int, int]] = []
    with open_rows(tmp_path / "res.hdf5") as src:
        read = src.data._read

        def spy(a: int, b: int) -> np.ndarray:
            reads.append((a, b))
            return read(a, b)

        src.data._read = spy
        est = estimate_source(src, FS, chunk_cells=3)
    assert reads and max(b - a for a, b in reads) <= 3
    assert sorted(set(reads)) == [(0, 3), (3, 6), (6, 8)]
    ref = calab.estimate_parameters(rec, FS)
    assert est.tau_rise == pytest.approx(ref.tau_rise, rel=1e-9)
    assert est.tau_decay == pytest.approx(ref.tau_decay, rel=1e-9)
    np.testing.assert_allclose(est.lam, ref.lam, rtol=1e-9)
    assert est.baseline == ref.baseline


def test_estimate_a_minian_store(tmp_path, rec):
    files.write_minian_var(tmp_path, files.minian_array(rec))
    proc = run("estimate", tmp_path, "--format", "minian", "--fs", FS, "--json", "--chunk-size",
               "2", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    ref = calab.estimate_parameters(rec, FS)
    np.testing.assert_allclose(json.loads(proc.stdout)["lambda_per_cell"], ref.lam, rtol=1e-9)


# ----------------------------------------------------------------------------- deconvolve --auto


def test_deconvolve_auto_uses_the_estimate(tmp_path, rec):
    est, ref = _reference(rec)
    assert est.baseline == "drift"  # this recording drifts: the drift path is exercised
    proc = run("deconvolve", "res.hdf5", "--auto", "-o", "out.h5", "--full", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["out.h5", "out_h5_info.json"]
    with h5py.File(tmp_path / "out.h5") as f:
        np.testing.assert_allclose(f["activity"][:], ref.activity, rtol=1e-9, atol=1e-12)
        assert f["baseline"].shape == (8, 3000)
        np.testing.assert_allclose(f["baseline"][:], ref.baseline, rtol=1e-9, atol=1e-12)
        used = json.loads(f.attrs["parameters"])
    np.testing.assert_allclose(used["lambda_per_cell"], est.lam, rtol=1e-12)
    assert used["baseline"] == "drift"
    info = json.loads((tmp_path / "out_h5_info.json").read_text())
    assert info["baseline"] == {"mode": "drift", "file": "out.h5",
                                "shape": [8, 3000]}  # fmt: skip

    # The library call does the same.
    res = deconvolve_file(tmp_path / "res.hdf5", tmp_path / "lib.npy", "auto", progress=False)
    np.testing.assert_allclose(np.load(res.output), ref.activity, rtol=1e-9, atol=1e-12)
    assert res.params is not None and res.params["baseline"] == "drift"


def test_deconvolve_auto_usage(tmp_path, rec):
    for args in (["--auto", "-p", "p.json"], []):
        proc = run("deconvolve", "res.hdf5", *args, cwd=tmp_path)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert "--auto" in proc.stderr.strip().splitlines()[-1]
    np.save(tmp_path / "bare.npy", rec)
    assert_error(run("deconvolve", "bare.npy", "--auto", cwd=tmp_path), "--fs HZ")
    assert not (tmp_path / "bare_activity.npy").exists()


def _start_auto(tmp_path: Path, pause_after: int | None = None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != PAUSE_ENV}
    if pause_after is not None:
        env[PAUSE_ENV] = str(pause_after)
    return subprocess.Popen(
        [*CMD, "deconvolve", "big.npy", "--fs", "30", "--auto", "-o", "out.npy", "--full",
         "--chunk-size", "4"],
        cwd=tmp_path, stderr=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip


def test_deconvolve_auto_resumes_with_the_same_parameters(tmp_path):
    traces, _ = calab.simulate(40, 900, FS, indicator="GCaMP6s", drift=1.5, seed=8)
    np.save(tmp_path / "big.npy", traces)
    proc = _start_auto(tmp_path, pause_after=3)
    assert proc.stderr is not None
    for line in proc.stderr:
        if "test hook: paused" in line:
            break
    else:
        raise AssertionError(f"the run ended without pausing: {proc.wait()}")
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    record = json.loads((tmp_path / ".out.npy.partial" / "progress.json").read_text())
    est, ref = _reference(traces)
    saved = record["fingerprint"]["parameters"]
    np.testing.assert_array_equal(saved["lambda_per_cell"], est.lam)  # the estimate is recorded
    assert len(record["done"]) >= 3
    proc = _start_auto(tmp_path)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert f"resuming out.npy: {len(record['done'])} of 10 chunks already written" in err
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), ref.activity, rtol=1e-9, atol=1e-12)
    assert est.baseline == "drift"  # so the drift sidecar is resumed too
    assert out.split() == ["out.npy", "out_baseline.npy", "out_info.json"]
    np.testing.assert_allclose(np.load(tmp_path / "out_baseline.npy"), ref.baseline,
                               rtol=1e-9, atol=1e-12)  # fmt: skip
    assert sorted(q.name for q in tmp_path.iterdir()) == [
        "big.npy", "out.npy", "out_baseline.npy", "out_info.json"
    ]  # fmt: skip


# ----------------------------------------------------------------------------- drift outputs


@pytest.mark.parametrize("suffix", [".npy", ".h5", ".zarr"])
def test_drift_baseline_in_file_outputs(tmp_path, rec, suffix):
    export = calab.export_dict(tau_rise=0.05, tau_decay=0.5, lam=0.05, fs=FS, baseline="drift")
    calab.write_export(tmp_path / "drift.json", export)
    ref = calab.run_deconvolution_full(rec, FS, 0.05, 0.5, 0.05, baseline="drift")
    out = f"out{suffix}"
    proc = run("deconvolve", "res.hdf5", "-p", "drift.json", "-o", out, "--full", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    if suffix == ".npy":
        assert proc.stdout.split() == [out, "out_baseline.npy", "out_info.json"]
        activity = np.load(tmp_path / out)
        baseline = np.load(tmp_path / "out_baseline.npy")
    else:
        if suffix == ".h5":
            with h5py.File(tmp_path / out) as f:
                activity, baseline = f["activity"][:], f["baseline"][:]
        else:
            import zarr

            g = zarr.open_group(str(tmp_path / out), mode="r")
            activity, baseline = g["activity"][:], g["baseline"][:]
    assert baseline.shape == (8, 3000)
    np.testing.assert_allclose(activity, ref.activity, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(baseline, ref.baseline, rtol=1e-9, atol=1e-12)
    info = json.loads((tmp_path / info_path_for(tmp_path / out).name).read_text())
    assert info["baseline"]["mode"] == "drift" and info["baseline"]["shape"] == [8, 3000]

    # Without --full only the activity is written (and beside a .npy the info file with the
    # parameters and cell ids); an existing sidecar is never overwritten.
    proc = run("deconvolve", "res.hdf5", "-p", "drift.json", "-o", f"b{suffix}", cwd=tmp_path)
    alone = ["b_info.json"] if suffix == ".npy" else []
    assert proc.returncode == 0 and proc.stdout.split() == [f"b{suffix}", *alone]
    if suffix == ".npy":
        np.save(tmp_path / "c_baseline.npy", np.zeros(3))
        proc = run("deconvolve", "res.hdf5", "-p", "drift.json", "-o", "c.npy", "--full",
                   cwd=tmp_path)  # fmt: skip
        assert_error(proc, "c_baseline.npy already exists; pass --force")
        assert not (tmp_path / "c.npy").exists()


def test_per_cell_lambda_must_match_the_file(tmp_path, rec):
    export = calab.export_dict(tau_rise=0.05, tau_decay=0.5, lam=[0.02] * 5, fs=FS)
    calab.write_export(tmp_path / "five.json", export)
    proc = run("deconvolve", "res.hdf5", "-p", "five.json", "-o", "o.npy", cwd=tmp_path)
    assert_error(proc, "lambda_per_cell has 5 values but")
    assert "has 8 cells" in proc.stderr
    assert not (tmp_path / "o.npy").exists()
