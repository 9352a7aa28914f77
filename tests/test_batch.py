"""Batch deconvolution (calab.batch): the chunk loop, ``calab deconvolve`` / ``deconvolve_file``,
locking and resume. Interrupted runs stop at a known chunk through the batch module's test hook
(``CALAB_TEST_PAUSE_AFTER_CHUNKS``), so no test races a signal against the run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _cli_run import CMD, PARAMS, assert_error, digest, files, read_output, run

import calab
from calab.batch import (
    PAUSE_ENV,
    OutputBusyError,
    deconvolve_rows,
    export_params,
    lock_path,
    output_lock,
)

# _big's 3000 cells x 300 frames (many chunks, quickly solved) draw the orientation warning.
pytestmark = pytest.mark.filterwarnings("ignore:the traces have more cells")


# ----------------------------------------------------------------------------- calab deconvolve


def test_deconvolve_npy_matches_the_api(tmp_path, data):
    before = digest(tmp_path / "traces.npy")
    proc = run("deconvolve", "traces.npy", "--params", "params.json", "-o", "act.npy", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["act.npy", "act_info.json"]  # the info file: parameters, ids
    assert proc.stderr == ""  # no progress bar when stderr is not a terminal
    got = np.load(tmp_path / "act.npy")
    want = calab.deconvolve_from_export(data, tmp_path / "params.json")
    np.testing.assert_array_equal(got, want)
    assert digest(tmp_path / "traces.npy") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "act.npy",
        "act_info.json",
        "params.json",
        "traces.npy",
    ]


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


def test_deconvolve_pipeline_files(tmp_path, data):
    files.write_caiman(
        tmp_path / "res.hdf5", data.astype(np.float32), idx_components=np.array([1, 2])
    )
    proc = run("deconvolve", "res.hdf5", "--params", "params.json", "-o", "a.npy",
               "--accepted-only", cwd=tmp_path)  # fmt: skip
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


def test_deconvolve_caiman_default_is_every_row(tmp_path, data):
    """As the CaLab package: every row of estimates/C unless --accepted-only (issue 10)."""
    files.write_caiman(tmp_path / "res.hdf5", data, idx_components=np.array([1, 2]))
    proc = run("deconvolve", "res.hdf5", "-p", "params.json", "-o", "a.npy", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    want = calab.deconvolve_from_export(data, tmp_path / "params.json")
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), want)


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


# ----------------------------------------------------------------------------- interruption


def _big(tmp_path: Path, n: int = 3000) -> np.ndarray:
    traces, _ = calab.simulate(n, 300, 30.0, 0.05, 0.5, seed=5)
    np.save(tmp_path / "big.npy", traces)
    calab.write_export(tmp_path / "params.json", calab.export_dict(**PARAMS), force=True)
    return traces


def _start_deconvolve(tmp_path, *extra, pause_after: int | None = None, out: str = "out.npy"):
    env = dict(os.environ)
    env.pop(PAUSE_ENV, None)
    if pause_after is not None:
        env[PAUSE_ENV] = str(pause_after)
    return subprocess.Popen(
        [*CMD, "deconvolve", "big.npy", "--params", "params.json", "-o", out, "--full",
         *extra],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )  # fmt: skip


def _wait_for_pause(proc: subprocess.Popen) -> None:
    """Block until the run reports (via the test hook) that it paused; no clock involved."""
    assert proc.stderr is not None
    for line in proc.stderr:
        if "test hook: paused" in line:
            return
    raise AssertionError(f"the run ended without pausing: {proc.wait()}")


def _record(tmp_path: Path, out: str = "out.npy") -> dict:
    return json.loads((tmp_path / f".{out}.partial" / "progress.json").read_text())


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL])
def test_deconvolve_interrupted_then_resumed(tmp_path, how):
    traces = _big(tmp_path)
    proc = _start_deconvolve(tmp_path, "--chunk-size", "2", pause_after=3)
    _wait_for_pause(proc)  # the run cannot finish: it waits for the signal after 3 chunks
    proc.send_signal(how)
    out, err = proc.communicate(timeout=60)
    if how == signal.SIGINT:
        assert proc.returncode == 130, err
        assert "Traceback" not in err and "run the same command again to resume" in err
        # one message about what happened (issue 9 item 18): never also "no output written"
        assert "no output written" not in err
        lines = [x for x in err.strip().splitlines() if "more cells (3000) than frames" not in x]
        assert lines == [
            "calab: interrupted; 3 of 1500 chunks are saved in .out.npy.partial: run the same "
            "command again to resume (or delete .out.npy.partial)"
        ]
    assert not (tmp_path / "out.npy").exists()  # nothing half-written under the real name
    before = _record(tmp_path)["done"]
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
    traces = _big(tmp_path)
    proc = _start_deconvolve(tmp_path, "--chunk-size", "2", pause_after=2)
    _wait_for_pause(proc)
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


def test_resume_changes_of_reading_options_start_no_mix(tmp_path, data):
    """CaImAn C vs C+YrA give the same shape; the partial of one must not be reused for the
    other (the read options are part of what resume compares)."""
    yra = np.random.default_rng(0).normal(0, 0.1, data.shape)
    files.write_caiman(tmp_path / "res.hdf5", data, YrA=yra)
    env = {**os.environ, PAUSE_ENV: "1"}
    proc = subprocess.Popen(
        [*CMD, "deconvolve", "res.hdf5", "-p", "params.json", "-o", "o.npy", "--chunk-size", "2"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    _wait_for_pause(proc)
    proc.kill()
    proc.communicate(timeout=60)
    proc2 = run("deconvolve", "res.hdf5", "-p", "params.json", "-o", "o.npy", "--chunk-size", "2",
                "--trace", "C+YrA", cwd=tmp_path)  # fmt: skip
    assert proc2.returncode == 1, proc2.stderr
    last = proc2.stderr.strip().splitlines()[-1]
    assert last.startswith("calab: error: an unfinished run with other inputs or settings"), last


# ----------------------------------------------------------------------------- resume checks


def _paused_then_killed(tmp_path: Path, k: int, *extra: str, out: str = "out.npy") -> None:
    proc = _start_deconvolve(tmp_path, "--chunk-size", "2", *extra, pause_after=k, out=out)
    _wait_for_pause(proc)
    proc.kill()
    proc.communicate(timeout=60)


def test_resume_does_not_trust_a_truncated_partial(tmp_path):
    """Issue 9 item 6: a truncated partial was resumed and its gap filled with zeros."""
    traces = _big(tmp_path, 40)
    _paused_then_killed(tmp_path, 5)
    data = tmp_path / ".out.npy.partial" / "data.npy"
    with open(data, "r+b") as fh:
        fh.truncate(os.path.getsize(data) // 3)
    proc = _start_deconvolve(tmp_path, "--chunk-size", "2")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "damaged" in err and "starting over" in err
    ref = calab.run_deconvolution_full(traces, 30.0, 0.05, 0.5, 0.02)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), ref.activity)


@pytest.mark.parametrize("suffix", [".npy", ".h5", ".zarr"])
def test_resume_redoes_chunks_whose_data_do_not_match_the_record(tmp_path, suffix):
    """A recorded chunk whose rows on disk differ (lost write, zero fill) is solved again."""
    traces = _big(tmp_path, 40)
    out = f"out{suffix}"
    _paused_then_killed(tmp_path, 5, out=out)
    part = tmp_path / f".{out}.partial"
    assert len(_record(tmp_path, out)["done"]) == 5
    if suffix == ".npy":
        arr = np.load(part / "data.npy", mmap_mode="r+")
        arr[2:4] = 0.0  # chunk 1 lost
        arr.flush()
        del arr
    elif suffix == ".h5":
        import h5py

        with h5py.File(part / "data.h5", "r+") as f:
            f["activity"][2:4] = 0.0
    else:
        import zarr

        zarr.open_group(str(part / "data.zarr"), mode="r+")["activity"][2:4] = 0.0
    proc = _start_deconvolve(tmp_path, "--chunk-size", "2", out=out)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "1 recorded chunks" in err and "redone" in err
    assert "resuming" in err and "4 of 20 chunks" in err
    ref = calab.run_deconvolution_full(traces, 30.0, 0.05, 0.5, 0.02)
    src = calab.io.open.open_traces(tmp_path / out) if suffix != ".npy" else None
    got = np.load(tmp_path / out) if src is None else np.asarray(src.data[:])
    if src is not None:
        src.close()
    np.testing.assert_array_equal(got, ref.activity)


def test_resume_refuses_a_partial_folder_that_is_a_link(tmp_path):
    """Issue 9 item 4: nothing is written through a planted link."""
    _big(tmp_path, 10)
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("mine")
    os.symlink(victim, tmp_path / ".out.npy.partial")
    proc = _start_deconvolve(tmp_path)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "not a private folder" in err, err
    assert sorted(p.name for p in victim.iterdir()) == ["keep.txt"]
    assert (victim / "keep.txt").read_text() == "mine"


# ----------------------------------------------------------------------------- locking


def test_a_second_run_on_the_same_output_is_refused(tmp_path):
    """Issue 9 item 5: two runs on one output deleted each other's files."""
    traces = _big(tmp_path, 40)
    first = _start_deconvolve(tmp_path, "--chunk-size", "2", pause_after=2)
    _wait_for_pause(first)
    proc = _start_deconvolve(tmp_path, "--chunk-size", "2")
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1
    assert err.strip().splitlines() == [
        f"calab: error: another calab run (pid {first.pid}) is writing out.npy; wait for it to "
        "finish or choose another output"
    ]
    assert len(_record(tmp_path)["done"]) == 2  # the first run's work is intact
    first.send_signal(signal.SIGINT)
    first.communicate(timeout=60)
    assert first.returncode == 130
    proc = _start_deconvolve(tmp_path, "--chunk-size", "2")
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "resuming" in err, err
    ref = calab.run_deconvolution(traces, 30.0, 0.05, 0.5, 0.02)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), ref)


def test_a_stale_lock_of_a_dead_process_is_taken_over(tmp_path):
    traces = _big(tmp_path, 10)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (tmp_path / ".out.npy.lock").write_text(f"{dead.pid}\n")
    proc = _start_deconvolve(tmp_path)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert f"taking over the lock of out.npy from pid {dead.pid}" in err
    np.testing.assert_array_equal(
        np.load(tmp_path / "out.npy"), calab.run_deconvolution(traces, 30.0, 0.05, 0.5, 0.02)
    )
    assert not (tmp_path / ".out.npy.lock").exists()


def test_output_lock_in_process(tmp_path):
    out = tmp_path / "a.npy"
    with output_lock(out) as path:
        assert path == lock_path(out) and path.read_text() == f"{os.getpid()}\n"
        with pytest.raises(OutputBusyError, match=f"pid {os.getpid()}"):
            with output_lock(out):
                pass  # pragma: no cover
    assert not lock_path(out).exists()
    os.symlink(tmp_path / "elsewhere", lock_path(out))
    with pytest.raises(ValueError, match="symbolic link"):
        with output_lock(out):
            pass  # pragma: no cover
    assert not (tmp_path / "elsewhere").exists()
    with pytest.raises(FileNotFoundError, match="output folder does not exist"):
        with output_lock(tmp_path / "no" / "a.npy"):
            pass  # pragma: no cover


# ----------------------------------------------------------------------------- the library


def test_deconvolve_file_is_the_command(tmp_path, data):
    calab.deconvolve_file(tmp_path / "traces.npy", tmp_path / "lib.npy", tmp_path / "params.json",
                          progress=False)  # fmt: skip
    proc = run("deconvolve", "traces.npy", "-p", "params.json", "-o", "cli.npy", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "lib.npy"), np.load(tmp_path / "cli.npy"))
    # params as the load_export_params dict and as a parsed export: same result
    export = json.loads((tmp_path / "params.json").read_text())
    for i, params in enumerate([calab.load_export_params(tmp_path / "params.json"), export]):
        res = calab.deconvolve_file(
            tmp_path / "traces.npy", tmp_path / f"p{i}.h5", params, full=True, chunk_cells=4,
            progress=False,
        )  # fmt: skip
        assert res.output == tmp_path / f"p{i}.h5" and res.info == tmp_path / f"p{i}_h5_info.json"
        assert (res.num_cells, res.num_timepoints, res.not_converged, res.resumed_chunks) == (
            6, 300, 0, 0
        )  # fmt: skip
        with calab.io.open.open_traces(res.output) as src:
            np.testing.assert_array_equal(np.asarray(src.data[:]), np.load(tmp_path / "cli.npy"))
    with pytest.raises(FileExistsError, match="already exists"):
        calab.deconvolve_file(tmp_path / "traces.npy", tmp_path / "lib.npy", export)
    with pytest.raises(ValueError, match="chunk_cells must be an integer >= 1"):
        calab.deconvolve_file(tmp_path / "traces.npy", tmp_path / "x.npy", export, chunk_cells=0)
    assert not (tmp_path / "x.npy").exists()


def test_deconvolve_file_warns_on_another_sampling_rate(tmp_path, data):
    calab.save_for_tuning(data, 20.0, tmp_path / "rec")
    with pytest.warns(UserWarning, match="sampled at 20 Hz but the parameters were tuned at 30"):
        calab.deconvolve_file(tmp_path / "rec", tmp_path / "a.npy", tmp_path / "params.json",
                              progress=False)  # fmt: skip
    want = calab.run_deconvolution(data, 20.0, 0.05, 0.5, 0.02)
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), want)


def test_deconvolve_rows_in_chunks_equals_one_call(data):
    params = {"tau_rise": 0.05, "tau_decay": 0.5, "lambda_": 0.02, "fs": 30.0,
              "filter_enabled": True}  # fmt: skip
    whole = calab.run_deconvolution_full(
        calab.bandpass_filter(data, 0.05, 0.5, 30.0), 30.0, 0.05, 0.5, 0.02
    )
    got = deconvolve_rows(data, params, chunk_cells=4, progress=False)
    for field in whole._fields:
        np.testing.assert_array_equal(getattr(got, field), getattr(whole, field))
    one = deconvolve_rows(data[2], params, progress=False)
    assert one.activity.shape == (300,) and isinstance(one.converged, bool)
    np.testing.assert_array_equal(one.activity, deconvolve_rows(data[2:3], params).activity[0])
    act = deconvolve_rows(data, params, chunk_cells=5, full=False, progress=False)
    np.testing.assert_array_equal(act, whole.activity)
    fista = deconvolve_rows(data, params, chunk_cells=4, method="fista", max_iters=50)
    want = calab.run_deconvolution_full(
        calab.bandpass_filter(data, 0.05, 0.5, 30.0), 30.0, 0.05, 0.5, 0.02, 50, method="fista"
    )
    np.testing.assert_array_equal(fista.activity, want.activity)
    warm = deconvolve_rows(data, params, chunk_cells=4, warm_start=whole.activity, full=False)
    np.testing.assert_allclose(warm, whole.activity, atol=1e-8)
    with pytest.raises(
        ValueError, match=r"chunk_cells must be an integer >= 1 \(cells per solver call\), got 0"
    ):
        deconvolve_rows(data, params, chunk_cells=0)


def test_params_in_every_form(tmp_path, data):
    from calab.params import Params

    want = calab.load_export_params(tmp_path / "params.json")
    export = json.loads((tmp_path / "params.json").read_text())
    p = Params(30.0, 0.05, 0.5, 0.02)
    for given in (tmp_path / "params.json", str(tmp_path / "params.json"), export, want, p):
        assert export_params(given) == want
    with pytest.raises(ValueError, match="params lacks lambda_"):
        export_params({"tau_rise": 0.05, "tau_decay": 0.5, "fs": 30.0, "filter_enabled": False})
    with pytest.raises(TypeError, match="params must be a CaTune export path"):
        export_params(3)


def test_per_cell_lambda_is_sliced_per_chunk(data):
    from calab.params import Params

    lam = np.linspace(0.01, 0.05, 6)
    try:
        want = calab.run_deconvolution_full(data, 30.0, 0.05, 0.5, lam)
    except TypeError as exc:
        pytest.skip(f"this build's solver takes no per-cell lambda yet ({exc})")
    got = deconvolve_rows(data, Params(30.0, 0.05, 0.5, lam), chunk_cells=4, progress=False)
    np.testing.assert_array_equal(got.activity, want.activity)
    with pytest.raises(ValueError, match="lam has 6 values but the traces have 5 cells"):
        deconvolve_rows(data[:5], Params(30.0, 0.05, 0.5, lam), chunk_cells=2)


def test_a_kernel_that_underflows_is_an_error_not_nan(tmp_path, data):
    """Issue 9 item 8: NaN results with converged=True were written, and NaN into the JSON."""
    export = calab.export_dict(**PARAMS)  # then edited by hand, as a careless user would
    export["parameters"].update(tau_rise_s=0.0001, tau_decay_s=0.0005, sampling_rate_hz=1.0)
    (tmp_path / "tiny.json").write_text(json.dumps(export))
    proc = run("deconvolve", "traces.npy", "-p", "tiny.json", "-o", "a.npy", "--full",
               "--fs", "1", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("calab: error: ") and ("NaN" in line or "tau_decay" in line), line
    assert not (tmp_path / "a.npy").exists() and not (tmp_path / "a_info.json").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_the_widget_runs_the_chunk_loop(tmp_path, data):
    """TuneWidget.deconvolve runs calab deconvolve's chunk loop: the same checks and results
    (issue 9 item 15: ``deconvolve(chunk_cells=0)`` said "traces is empty")."""
    pytest.importorskip("anywidget")
    w = calab.TuneWidget(data, 30.0, tau_rise=0.05, tau_decay=0.5, lam=0.02, threaded=False)
    try:
        with pytest.raises(ValueError, match="chunk_cells must be an integer >= 1"):
            w.deconvolve(chunk_cells=0, progress=False)
        res = w.deconvolve(chunk_cells=4, progress=False)
    finally:
        w.close()
    want = calab.run_deconvolution_full(data, 30.0, 0.05, 0.5, 0.02)
    np.testing.assert_array_equal(res.activity, want.activity)


# ------------------------------------------------------------------------ commit, ids (issue 22)

#: Runs the calab command, killing it (os._exit: no cleanup, as SIGKILL) right after its n-th
#: move of a file to a final name (os.replace whose target is not in the partial folder).
KILL_AFTER_MOVES = """
import os, sys
from calab.cli import main
limit, count, real = int(sys.argv[1]), 0, os.replace
def replace(src, dst, **kw):
    global count
    real(src, dst, **kw)
    if ".partial" not in os.fspath(dst):
        count += 1
        if count == limit:
            os._exit(137)
os.replace = replace
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize(
    ("out", "drift", "moves"),
    [("out.npy", False, 1), ("out.npy", False, 2), ("out.h5", False, 1), ("out.npy", True, 1),
     ("out.npy", True, 2)],
)  # fmt: skip
def test_a_run_killed_between_its_commit_steps_is_finished_by_the_rerun(
    tmp_path, out, drift, moves
):
    """Issue 22 item 3: a kill between the commit steps (baseline file, activity, info JSON,
    partial removal) left a state the rerun refused ("already exists; pass --force"), and
    --force threw the complete work away."""
    traces = _big(tmp_path, 20)
    p = calab.export_dict(**PARAMS, baseline="drift" if drift else "constant")
    calab.write_export(tmp_path / "params.json", p, force=True)
    argv = ["deconvolve", "big.npy", "-p", "params.json", "-o", out, "--full", "--chunk-size", "4"]
    killed = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_MOVES, str(moves), *argv],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert killed.returncode == 137, killed.stderr
    again = run(*argv, cwd=tmp_path)  # the same command, without --force
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr and "resuming" not in again.stderr  # nothing redone
    stem = out.split(".")[0]
    info_name = calab.batch.info_path_for(tmp_path / out).name  # r_info.json, r_h5_info.json
    ref = calab.run_deconvolution_full(
        traces, 30.0, 0.05, 0.5, 0.02, baseline="drift" if drift else "constant"
    )
    np.testing.assert_array_equal(read_output(tmp_path / out), ref.activity)
    info = json.loads((tmp_path / info_name).read_text())
    assert info["iterations"] == ref.iterations.tolist()
    want = {"big.npy", "params.json", out, info_name}
    if drift:
        np.testing.assert_array_equal(np.load(tmp_path / f"{stem}_baseline.npy"), ref.baseline)
        want.add(f"{stem}_baseline.npy")
    assert {q.name for q in tmp_path.iterdir()} == want


def test_nan_cell_ids_are_refused_before_solving(tmp_path):
    """Issue 22 item 4: with --full, NaN cell ids (a Minian unit_id coordinate) made the info JSON
    fail after every chunk was solved, and everything was deleted; calab estimate --json too."""
    traces, _ = calab.simulate(6, 300, 30.0, 0.05, 0.5, seed=4)
    ids = np.array([1.0, np.nan, 3.0, 4.0, np.inf, 6.0])
    files.write_minian_var(tmp_path, files.minian_array(traces, unit_ids=ids))
    calab.write_export(tmp_path / "params.json", calab.export_dict(**PARAMS))
    proc = run("deconvolve", "C.zarr", "-p", "params.json", "-o", "o.npy", "--full",
               cwd=tmp_path, env={**os.environ, PAUSE_ENV: "1"})  # fmt: skip
    assert_error(proc, "the cell ids of C.zarr hold NaN or Inf (rows 1, 4), which JSON cannot ")
    assert "or run without --full" in proc.stderr
    assert sorted(q.name for q in tmp_path.iterdir()) == ["C.zarr", "params.json"]
    proc = run("estimate", "C.zarr", "--fs", "30", "--json", cwd=tmp_path,
               env={**os.environ, PAUSE_ENV: "1"})  # fmt: skip
    assert_error(proc, "the cell ids of C.zarr hold NaN or Inf (rows 1, 4)")
    assert "or run without --json" in proc.stderr
    # Without --full the ids are only named in messages: the run goes through.
    proc = run("deconvolve", "C.zarr", "-p", "params.json", "-o", "o.npy", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(
        np.load(tmp_path / "o.npy"), calab.run_deconvolution(traces, 30.0, 0.05, 0.5, 0.02)
    )
    # The info file a .npy output always has records non-integer ids as text.
    info = json.loads((tmp_path / "o_info.json").read_text())
    assert info["cell_ids"] == ["1.0", "nan", "3.0", "4.0", "inf", "6.0"]
