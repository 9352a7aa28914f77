"""The lock on an output file: ``.OUT.lock`` beside it, holding the pid of the run.

:func:`output_lock` keeps a second run (``calab deconvolve``, :func:`calab.deconvolve_file`)
off an output another live process is writing; a lock left by a dead process is taken over.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from calab.io.writers import open_regular

log = logging.getLogger(__name__)


class OutputBusyError(RuntimeError):
    """Another live process holds the lock on the output."""


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError:
            return False
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def lock_path(out: Path) -> Path:
    """Return the lock file of an output: ``.OUT.lock`` beside it."""
    return out.parent / f".{out.name}.lock"


@contextmanager
def output_lock(out: Path) -> Iterator[Path]:
    """Hold an exclusive lock on ``out`` while writing it.

    The lock file ``.OUT.lock`` holds the pid of the run. The lock is held by the operating
    system, so a lock left by a dead process (killed, crashed, rebooted) is taken over; a live
    one makes this raise :class:`OutputBusyError`. The lock file is opened only if it is a regular
    file (never through a link, never a FIFO: ValueError naming it).
    """
    path = lock_path(out)
    if not out.parent.is_dir():
        raise FileNotFoundError(f"output folder does not exist: {out.parent}")
    while True:
        try:
            fd = open_regular(path, os.O_RDWR | os.O_CREAT, "the lock file", 0o644)
        except ValueError as exc:  # a link, a FIFO, a folder...: never opened through
            raise ValueError(f"{exc}; delete it and run again") from None
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                why = (exc.strerror or "permission denied").lower()
                raise PermissionError(
                    f"cannot write in {out.parent} ({why}); choose an output folder you can "
                    "write to"
                ) from None
            raise OSError(
                exc.errno, f"cannot create the lock file {path}: {exc.strerror}"
            ) from None
        if not _try_lock(fd):
            pid = _read_pid(fd)
            os.close(fd)
            who = f"pid {pid}" if pid else "another process"
            raise OutputBusyError(
                f"another calab run ({who}) is writing {out}; wait for it to finish or choose "
                "another output"
            )
        try:
            same = os.path.samestat(os.fstat(fd), os.lstat(path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the holder removed the file as we opened it: lock the new one
    try:
        old = _read_pid(fd)
        if old and old != os.getpid():
            log.info("taking over the lock of %s from pid %d, which is no longer running", out, old)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield path
    finally:
        try:
            os.unlink(path)
        finally:
            os.close(fd)


__all__ = ["OutputBusyError", "lock_path", "output_lock"]
