"""The resume folder ``.OUT.partial/`` and the lock, tampered with between runs (issue 22 items
1, 7, 14, 24 and 26).

A run is stopped at a known chunk by the test hook and killed; the test then plants a link, a
FIFO, a huge or malformed record, or an edit of the input, and reruns the same command. What must
hold: nothing is read or written through a link, nothing blocks, a damaged partial is started
over with a warning naming the file, changed input is never mixed with old rows, and errors are
one line naming the path and the fix. The permission cases run the command as ``nobody`` when
the suite runs as root (as root every file is writable).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from _cli_run import CMD, PARAMS, files, read_output
from test_batch import (
    PAUSE_ENV,
    _big,
    _paused_then_killed,
    _record,
    _start_deconvolve,
    _wait_for_pause,
)

import calab

REF = (30.0, 0.05, 0.5, 0.02)  # fs, tau_rise, tau_decay, lambda of test_batch._big


def _tree_digest(path: Path) -> str:
    """Digest of a file, or of every file in a folder (names and bytes)."""
    h = hashlib.sha256()
    items = sorted(path.rglob("*")) if path.is_dir() else [path]
    for q in items:
        if q.is_file():
            h.update(str(q.relative_to(path) if path.is_dir() else q.name).encode())
            h.update(q.read_bytes())
    return h.hexdigest()


def _rerun(tmp_path: Path, out: str = "out.npy", timeout: float = 300) -> str:
    """Rerun the command; never wait forever (the FIFO case blocked for good)."""
    proc = _start_deconvolve(tmp_path, "--chunk-size", "2", out=out)
    try:
        _, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"the rerun did not end within {timeout} s") from None
    assert proc.returncode == 0, err
    return err


# ----------------------------------------------------------------------------- item 1: links


@pytest.mark.parametrize(
    ("suffix", "entry"),
    [(".npy", "data.npy"), (".h5", "data.h5"), (".zarr", "data.zarr"), (".npy", "stats.npy")],
)
def test_links_inside_the_partial_are_never_followed(tmp_path, suffix, entry):
    """Item 1: a link in place of a file of the partial was written through, and the output
    became a link to the link's target."""
    traces = _big(tmp_path, 40)
    out = f"out{suffix}"
    _paused_then_killed(tmp_path, 3, out=out)
    part = tmp_path / f".{out}.partial"
    victim = tmp_path / f"victim-{entry}"
    shutil.move(part / entry, victim)  # the valid work, now outside, behind a link
    os.symlink(victim, part / entry)
    before = _tree_digest(victim)
    err = _rerun(tmp_path, out)
    assert "damaged" in err and "symbolic link" in err and "starting over" in err, err
    assert _tree_digest(victim) == before  # never written through the link
    final = tmp_path / out
    assert not final.is_symlink()
    ref = calab.run_deconvolution_full(traces, *REF)
    np.testing.assert_array_equal(read_output(final), ref.activity)
    assert not (tmp_path / f".{out}.partial").exists()


def test_a_link_is_never_committed_as_theread_output(tmp_path):
    """Item 1, the last step: a staged file that is a link is refused, not moved into place."""
    from calab.io.writers import commit

    target = tmp_path / "elsewhere.npy"
    np.save(target, np.zeros(3))
    os.symlink(target, tmp_path / "staged.npy")
    with pytest.raises(ValueError, match="symbolic link"):
        commit(tmp_path / "staged.npy", tmp_path / "out.npy")
    assert not os.path.lexists(tmp_path / "out.npy")


# ------------------------------------------------------------------------ items 14, 24: the record


def test_a_fifo_as_the_progress_record_does_not_block(tmp_path):
    """Item 14: a FIFO at progress.json blocked the rerun forever, holding the output lock."""
    traces = _big(tmp_path, 40)
    _paused_then_killed(tmp_path, 3)
    record = tmp_path / ".out.npy.partial" / "progress.json"
    record.unlink()
    os.mkfifo(record)
    err = _rerun(tmp_path, timeout=120)
    name = ".out.npy.partial/progress.json"
    assert f"{name} is a FIFO (named pipe), not a regular file" in err and "starting over" in err
    ref = calab.run_deconvolution(traces, *REF)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), ref)


def test_a_huge_progress_record_is_not_read(tmp_path):
    """Item 14: a 300 MB progress.json was read whole; now its size alone makes it damaged."""
    traces = _big(tmp_path, 40)
    _paused_then_killed(tmp_path, 3)
    record = tmp_path / ".out.npy.partial" / "progress.json"
    with open(record, "r+b") as fh:
        fh.truncate(300 << 20)  # sparse: costs no disk

    def run_to_end(*extra: str) -> tuple[str, int]:
        """Run the deconvolution; return its stderr and its peak RSS in bytes."""
        proc = _start_deconvolve(tmp_path, "--chunk-size", "2", *extra)
        assert proc.stdout is not None and proc.stderr is not None
        with proc.stdout, proc.stderr:
            err = proc.stderr.read()  # until the run ends
            proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)  # with the child's peak memory
        proc.returncode = os.waitstatus_to_exitcode(status)
        assert proc.returncode == 0, err
        return err, usage.ru_maxrss * 1024

    err, peak = run_to_end()
    name = ".out.npy.partial/progress.json"
    assert f"the progress record {name} has {300 << 20} bytes, more than" in err, err
    # The same run from scratch, for the process's own size: reading the record whole would add
    # its 300 MB on top of that.
    _, control = run_to_end("--force")
    assert peak < control + (100 << 20), (
        f"peak RSS {peak >> 20} MiB, without the record {control >> 20}"
    )
    ref = calab.run_deconvolution(traces, *REF)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), ref)


def _nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize(
    "done",
    ['{"../../x": "00"}', '{"1e2": "%s"}' % ("0" * 32), '{"4": 5}', _nested(30_000), "[]"],
    ids=["path", "exponent", "digest", "deep", "list"],
)
def test_a_malformed_progress_record_is_damaged(tmp_path, done):
    """Item 24: keys like "../../x" or "1e2" gave "invalid literal for int()", deep nesting a
    RecursionError, naming no file, and every rerun failed until --force."""
    traces = _big(tmp_path, 40)
    _paused_then_killed(tmp_path, 3)
    record = tmp_path / ".out.npy.partial" / "progress.json"
    fingerprint = json.dumps(_record(tmp_path)["fingerprint"])
    record.write_text(f'{{"fingerprint": {fingerprint}, "done": {done}}}')
    err = _rerun(tmp_path)
    name = ".out.npy.partial/progress.json"
    assert "is damaged" in err and name in err and "starting over" in err, err
    ref = calab.run_deconvolution(traces, *REF)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), ref)


# ----------------------------------------------------------------------------- item 7: the stamp


def test_an_edited_store_of_many_files_is_not_resumed(tmp_path):
    """Item 7: only the first 10,000 files of a folder input were stamped, so a Minian store
    edited in place after an interruption was resumed with its old rows."""
    traces, _ = calab.simulate(20, 300, 30.0, 0.05, 0.5, seed=3)
    store = files.write_minian_var(tmp_path, files.minian_array(traces))
    pad = store / "00pad"  # files sorting before the data, as many as the old stamp looked at
    pad.mkdir()
    for i in range(10_000):
        (pad / f"{i:05d}").touch()
    calab.write_export(tmp_path / "params.json", calab.export_dict(**PARAMS))
    cmd = [*CMD, "deconvolve", "C.zarr", "-p", "params.json", "-o", "o.npy", "--chunk-size", "2"]
    env = {**os.environ, PAUSE_ENV: "3"}
    proc = subprocess.Popen(cmd, cwd=tmp_path, stderr=subprocess.PIPE, text=True, env=env)
    _wait_for_pause(proc)
    proc.kill()
    proc.communicate(timeout=60)
    import zarr

    edited = traces[::-1].copy()
    zarr.open_group(str(store), mode="r+")["C"][:] = edited  # in place: same files, new bytes
    again = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 1, again.stderr
    assert "an unfinished run with other inputs or settings" in again.stderr
    again = subprocess.run([*cmd, "--force"], cwd=tmp_path, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    ref = calab.run_deconvolution(edited, *REF)
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), ref)


# ------------------------------------------------------------------------- item 26: housekeeping


def test_a_fifo_as_the_lock_file_is_named(tmp_path):
    """Item 26: a FIFO at .OUT.lock gave "calab: error: Invalid argument" and no path."""
    _big(tmp_path, 10)
    os.mkfifo(tmp_path / ".out.npy.lock")
    proc = _start_deconvolve(tmp_path)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert err.strip().splitlines() == [
        "calab: error: the lock file .out.npy.lock is a FIFO (named pipe), not a regular file; "
        "calab does not open it; delete it and run again"
    ]


@pytest.fixture
def as_user(tmp_path):
    """A folder and a runner of commands as an unprivileged user.

    As root: the folder belongs to ``nobody`` and commands run as ``nobody`` (setpriv); as
    another user, both are that user's own. Returns ``(folder, wrap)`` where ``wrap(cmd)``
    gives the command line to run.
    """
    if os.geteuid() != 0:
        yield tmp_path, (lambda cmd: cmd)
        return
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("running a command as nobody needs setpriv (util-linux)")
    folder = Path(tempfile.mkdtemp(prefix="calab-nobody-"))
    os.chmod(folder, 0o755)
    os.chown(folder, 65534, 65534)
    try:
        yield folder, (lambda cmd: [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
                                    *cmd])  # fmt: skip
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _own(folder: Path) -> None:
    if os.geteuid() == 0:
        for q in [folder, *folder.rglob("*")]:
            os.lchown(q, 65534, 65534)


def _interrupted_as(folder: Path, wrap, *extra: str) -> list[str]:
    traces, _ = calab.simulate(40, 300, 30.0, 0.05, 0.5, seed=5)
    np.save(folder / "big.npy", traces)
    calab.write_export(folder / "params.json", calab.export_dict(**PARAMS))
    _own(folder)
    cmd = [*CMD, "deconvolve", "big.npy", "-p", "params.json", "-o", "out.npy", "--chunk-size",
           "2", *extra]  # fmt: skip
    env = {**os.environ, PAUSE_ENV: "3", "HOME": str(folder)}
    proc = subprocess.Popen(wrap(cmd), cwd=folder, stderr=subprocess.PIPE, text=True, env=env)
    _wait_for_pause(proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    return cmd


def _run_as(folder: Path, wrap, cmd: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(folder)}
    return subprocess.run(wrap(cmd), cwd=folder, capture_output=True, text=True, env=env,
                          timeout=300)  # fmt: skip


def test_force_deletes_a_read_only_folder_inside_the_partial(as_user):
    """Item 26: as a non-root user, a read-only folder inside the partial made --force fail with
    "File exists"; one's own folders are made writable and deleted, as rm -rf does."""
    folder, wrap = as_user
    cmd = _interrupted_as(folder, wrap)
    junk = folder / ".out.npy.partial" / "junk"
    junk.mkdir()
    (junk / "f").write_text("x")
    _own(folder)
    junk.chmod(0o500)
    done = _run_as(folder, wrap, [*cmd, "--force"])
    assert done.returncode == 0, done.stderr
    traces = np.load(folder / "big.npy")
    ref = calab.run_deconvolution(traces, *REF)
    np.testing.assert_array_equal(np.load(folder / "out.npy"), ref)
    assert not (folder / ".out.npy.partial").exists()


def test_an_undeletable_partial_is_named(as_user):
    """Item 26: what cannot be deleted (another user's folder inside the partial) is named."""
    if os.geteuid() != 0:
        pytest.skip("a folder of another user inside one's partial can only be made by root")
    folder, wrap = as_user
    cmd = _interrupted_as(folder, wrap)
    junk = folder / ".out.npy.partial" / "junk"
    junk.mkdir()  # root's
    (junk / "f").write_text("x")
    done = _run_as(folder, wrap, [*cmd, "--force"])
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1:] == [
        "calab: error: cannot delete .out.npy.partial (.out.npy.partial/junk/f: Permission "
        "denied); delete it yourself and run again"
    ]


def test_an_unwritable_partial_is_named(as_user):
    """Item 26: an unwritable partial reported only the name of a temporary file in it."""
    folder, wrap = as_user
    cmd = _interrupted_as(folder, wrap)
    part = folder / ".out.npy.partial"
    part.chmod(0o500)
    done = _run_as(folder, wrap, cmd)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        "calab: error: cannot write in .out.npy.partial, the unfinished run of this output; make "
        "it writable (chmod u+rwx) and run the same command again to resume, or delete it"
    )
    part.chmod(0o700)
    done = _run_as(folder, wrap, cmd)
    assert done.returncode == 0 and "resuming" in done.stderr, done.stderr


# ----------------------------------------------------------------------------- item 10: damaged


@pytest.mark.parametrize("suffix", [".h5", ".zarr"])
def test_a_partial_that_cannot_be_read_back_is_started_over(tmp_path, suffix):
    """Item 10: a damaged partial (after a crash) made the resume fail with the storage
    library's error; any failure to read the partial back now makes it damaged (a warning says
    so) and the run starts over."""
    traces = _big(tmp_path, 40)
    out = f"out{suffix}"
    _paused_then_killed(tmp_path, 3, out=out)
    data = tmp_path / f".{out}.partial" / f"data{suffix}"
    if suffix == ".h5":  # garbage over HDF5's object headers
        with open(data, "r+b") as fh:
            fh.seek(800)
            fh.write(b"\xff" * 4096)
    else:  # a stored chunk of the activity that no longer decodes
        chunk = next(q for q in sorted((data / "activity").rglob("*")) if q.is_file()
                     and not q.name.startswith(".") and q.name != "zarr.json")  # fmt: skip
        chunk.write_bytes(b"\xff" * 64)
    err = _rerun(tmp_path, out)
    assert f"the unfinished run in .{out}.partial is damaged" in err and "starting over" in err
    ref = calab.run_deconvolution_full(traces, *REF)
    np.testing.assert_array_equal(read_output(tmp_path / out), ref.activity)
