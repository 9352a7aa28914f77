"""A full disk under ``calab deconvolve`` (issue 22 items 2 and 10), on a real small file system.

Each test mounts its own small tmpfs (root only; skipped with the reason elsewhere) and fills it
at a known point: before the run, or after a run stopped by the test hook
(``CALAB_TEST_PAUSE_AFTER_CHUNKS``) and killed, so nothing races a clock. What must hold: one
line on stderr and exit status 1 (never SIGBUS or SIGSEGV), the finished work kept, and the same
command resuming it once there is space again, ending with the uninterrupted run's output.
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from _cli_run import read_output
from test_batch import _big, _start_deconvolve, _wait_for_pause

import calab

REF = (30.0, 0.05, 0.5, 0.02)  # fs, tau_rise, tau_decay, lambda of test_batch._big


@pytest.fixture
def small_disk(tmp_path):
    """Mount a tmpfs at ``tmp_path/disk``; return a function that sets its size (bytes)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs to fill needs root (mount -t tmpfs)")
    mount = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m,mode=0755", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
    )
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.strip()}")

    def resize(size: int) -> Path:
        subprocess.run(
            ["mount", "-o", f"remount,size={size}", str(disk)], check=True, capture_output=True
        )
        return disk

    try:
        yield resize
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill(disk: Path) -> Path:
    """Write a file until the disk is full; return it."""
    filler = disk / "filler"
    block = b"\1" * 4096
    with open(filler, "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(block)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def _error_line(proc: subprocess.Popen, err: str) -> str:
    """The run ended with exit status 1 and one error line (after its info lines)."""
    assert proc.returncode == 1, (proc.returncode, err)  # not -7 (SIGBUS) nor -11 (SIGSEGV)
    assert "Traceback" not in err and err.count("calab: error: ") == 1, err
    line = err.strip().splitlines()[-1]
    assert line.startswith("calab: error: "), err
    return line


@pytest.mark.parametrize("suffix", [".npy", ".h5", ".zarr"])
def test_a_disk_full_mid_run_keeps_the_work_and_resumes(tmp_path, small_disk, suffix):
    """Items 2 and 10: SIGBUS (.npy), SIGSEGV (.h5) or the finished work deleted (.zarr)."""
    traces = _big(tmp_path, 40)
    disk = small_disk(8 << 20)
    out = f"disk/out{suffix}"
    part = disk / f".out{suffix}.partial"
    proc = _start_deconvolve(tmp_path, "--chunk-size", "2", pause_after=3, out=out)
    _wait_for_pause(proc)
    proc.kill()
    proc.communicate(timeout=60)
    filler = _fill(disk)  # the disk fills up while the run is away
    proc = _start_deconvolve(tmp_path, "--chunk-size", "2", out=out)
    _, err = proc.communicate(timeout=300)
    line = _error_line(proc, err)
    assert "the disk holding disk is full (No space left on device)" in line, line
    assert f"chunks are saved in .out{suffix}.partial: free space there, then run the same " in line
    assert part.is_dir() and not (disk / f"out{suffix}").exists()
    filler.unlink()
    proc = _start_deconvolve(tmp_path, "--chunk-size", "2", out=out)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert "resuming" in err
    ref = calab.run_deconvolution_full(traces, *REF)
    np.testing.assert_array_equal(read_output(disk / f"out{suffix}"), ref.activity)
    info = calab.batch.info_path_for(disk / f"out{suffix}").name  # out_h5_info.json for .h5
    assert sorted(p.name for p in disk.iterdir()) == sorted([f"out{suffix}", info])


@pytest.mark.parametrize("suffix", [".npy", ".h5"])
def test_a_disk_too_small_fails_before_any_work(tmp_path, small_disk, suffix):
    """Item 10: the output's space is reserved when it is created, so a disk that cannot hold it
    fails at once with one line (it died of SIGBUS/SIGSEGV after solving what fitted)."""
    _big(tmp_path, 400)  # 400 x 300 float64: about 1 MB of activity
    disk = small_disk(512 << 10)
    proc = _start_deconvolve(tmp_path, "--chunk-size", "50", out=f"disk/out{suffix}")
    _, err = proc.communicate(timeout=300)
    line = _error_line(proc, err)
    assert "the disk holding disk is full" in line and "nothing was written" in line, line
    assert list(disk.iterdir()) == []
