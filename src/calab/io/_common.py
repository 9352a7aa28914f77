"""Checks and metadata shared by the loaders, and the safe file primitives they use."""

from __future__ import annotations

import math
import os
import secrets
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from calab._validate import as_real_array, real_float, shown

PathLike = str | os.PathLike[str]

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def file_kind(mode: int) -> str:
    """What an ``st_mode`` describes, in words ("a regular file", "a FIFO (named pipe)", ...)."""
    if stat.S_ISREG(mode):
        return "a regular file"
    for test, name in _KINDS:
        if test(mode):
            return name
    return "not a regular file"


def _stat(p: Path, what: str) -> os.stat_result:
    try:
        return p.stat()  # follows symbolic links: a link to a regular file is fine
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {p}") from None
    except OSError as exc:
        raise OSError(f"cannot access {what} {p}: {exc.strerror}") from None


def require_file(path: PathLike, what: str) -> Path:
    """Return ``path`` as a Path if it is a regular file (or a link to one).

    Nothing is opened: a FIFO, socket or device named like a data file is refused at once
    instead of blocking the reader.

    Raises
    ------
    FileNotFoundError
        If nothing is there.
    IsADirectoryError
        If it is a folder.
    ValueError
        If it is a FIFO, socket or device.
    """
    p = Path(path).expanduser()
    mode = _stat(p, what).st_mode
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(f"{what} {p} is a folder, expected a file")
    if not stat.S_ISREG(mode):
        raise ValueError(
            f"{what} {p} is {file_kind(mode)}, not a regular file; refusing to read it"
        )
    return p


def require_dir(path: PathLike, what: str) -> Path:
    """Return ``path`` as a Path if it is a folder (or a link to one).

    Raises
    ------
    FileNotFoundError
        If nothing is there.
    NotADirectoryError
        If it is anything but a folder (the message says what it is).
    """
    p = Path(path).expanduser()
    mode = _stat(p, what).st_mode
    if not stat.S_ISDIR(mode):
        raise NotADirectoryError(f"{what} {p} is {file_kind(mode)}, expected a folder")
    return p


def is_present(path: Path) -> bool:
    """Whether anything (file, folder, FIFO, dangling link) is at ``path``."""
    return os.path.lexists(path)


def existing_path(path: PathLike, what: str) -> Path:
    """Return ``path`` as a Path if it is a regular file or a folder, else raise.

    Raises FileNotFoundError naming ``what`` if nothing is there, ValueError for a FIFO,
    socket or device (never opened, so never blocks).
    """
    p = Path(path).expanduser()
    mode = _stat(p, what).st_mode
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        raise ValueError(
            f"{what} {p} is {file_kind(mode)}, not a regular file or folder; refusing to read it"
        )
    return p


def write_atomic(
    path: PathLike,
    data: bytes | str | Callable[[BinaryIO], object],
    *,
    overwrite: bool,
    sync: bool = True,
) -> Path:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one.

    The data goes to a new file in the destination folder, created exclusively (never through
    an existing file or link) with the mode a plain ``open(path, "w")`` would give (0o666 less
    the umask), flushed to disk, then renamed over ``path``.

    Parameters
    ----------
    path : str or path-like
        Destination file.
    data : bytes, str or callable
        The content (str is written as UTF-8), or a function writing it to the binary file
        object it is given (e.g. ``lambda fh: np.save(fh, arr)``).
    overwrite : bool
        Replace an existing file; without it an existing ``path`` raises FileExistsError.
    sync : bool
        Wait until the data are on disk before the rename (default).

    Returns
    -------
    pathlib.Path
        ``path``.
    """
    p = Path(path).expanduser()
    if p.is_dir():
        raise IsADirectoryError(f"{p} is a folder; refusing to replace it")
    if is_present(p) and not overwrite:
        raise FileExistsError(f"{p} already exists; pass force=True to replace it")
    folder = p.parent
    require_dir(folder, "output folder")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    flags |= getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        tmp = folder / f".{p.name}.{secrets.token_hex(6)}.partial"
        try:
            fd = os.open(tmp, flags, 0o666)  # the kernel applies the umask
            break
        except FileExistsError:
            continue
    else:  # pragma: no cover - 100 collisions of 48 random bits
        raise FileExistsError(f"cannot create a temporary file in {folder}")
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data.encode("utf-8") if isinstance(data, str) else data)
            fh.flush()
            if sync:
                os.fsync(fh.fileno())
        if not overwrite and is_present(p):  # created meanwhile
            raise FileExistsError(f"{p} already exists; pass force=True to replace it")
        os.replace(tmp, p)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return p


def check_declared_size(declared: int, available: int, where: str, what: str) -> None:
    """Refuse data whose header declares more bytes than the file holds (a truncated file, or
    a header crafted to make the reader allocate terabytes), before anything is allocated.

    ``declared`` is the byte count the header (shape times item size) promises, ``available``
    what the file holds for it; ``what`` names the header's claim, e.g. "shape (10, 20) of
    float64".
    """
    if declared > available:
        raise OSError(
            f"{where} declares {what} ({_size(declared)}) but holds only {_size(available)} "
            "for it; the file is truncated or damaged (its header promises data it lacks)"
        )


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n} bytes" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} bytes"  # pragma: no cover - unreachable


def npy_header(fh: BinaryIO, where: str) -> tuple[tuple[int, ...], bool, np.dtype[Any]]:
    """Read the header of the ``.npy`` file open at ``fh`` (positioned at its start).

    Returns ``(shape, fortran_order, dtype)``, leaving ``fh`` at the first data byte. The
    declared size of a plain (not object) array is checked against what the file holds.
    """
    version = np.lib.format.read_magic(fh)
    if version not in ((1, 0), (2, 0), (3, 0)):
        raise ValueError(f"unsupported .npy format version {version}")
    read_header = getattr(np.lib.format, f"read_array_header_{version[0]}_0")
    shape, fortran, dtype = read_header(fh)
    if not dtype.hasobject:
        declared = math.prod(shape) * dtype.itemsize
        available = os.fstat(fh.fileno()).st_size - fh.tell()
        check_declared_size(declared, available, where, f"shape {shape} of {dtype}")
    return tuple(shape), bool(fortran), dtype


def load_npy(path: PathLike, what: str, *, mmap: bool = False) -> np.ndarray:
    """``np.load`` of a regular ``.npy`` file without pickles; any failure to parse it
    (numpy raises SyntaxError, TokenError, EOFError ... on corrupt headers) becomes an OSError
    naming the file, and so does a header declaring more data than the file holds (checked
    before anything is allocated). ``mmap`` maps the file read-only instead of reading it."""
    p = require_file(path, what)
    try:
        with open(p, "rb") as fh:
            npy_header(fh, str(p))
            if not mmap:
                fh.seek(0)
                return np.asarray(np.load(fh, allow_pickle=False))
        mapped: np.ndarray = np.load(p, mmap_mode="r", allow_pickle=False)
        return mapped
    except MemoryError:
        raise
    except OSError as exc:
        if exc.errno is None:  # ours: already names the file
            raise
        raise OSError(f"cannot read {p}: {exc.strerror}") from None
    except Exception as exc:
        raise OSError(f"cannot read {p} as a .npy array ({type(exc).__name__}: {exc})") from None


def sampling_rate(fs: Any, where: str) -> float:
    """Validate a sampling rate in Hz."""
    v = real_float(fs, "fs", f"the sampling rate in Hz (a number) ({where})")
    if not math.isfinite(v) or v <= 0:
        raise ValueError(
            f"sampling rate must be a positive number of Hz, got {shown(fs)} ({where})"
        )
    return v


def check_matrix(a: np.ndarray, name: str, where: str) -> np.ndarray:
    """Return ``a`` unchanged (not copied) if it is a 2-D array of real numbers, else raise."""
    if a.dtype.kind not in "iuf":
        raise TypeError(f"{name} in {where} must hold real numbers, got dtype {a.dtype}")
    if a.ndim != 2:
        raise ValueError(
            f"{name} in {where} must be 2-D (n_cells, n_frames), got {a.ndim}-D with shape "
            f"{a.shape}"
        )
    return a


def traces_matrix(arr: Any, name: str, where: str) -> np.ndarray:
    """Return ``arr`` as a C-ordered float64 2-D array or raise a clear error."""
    a = check_matrix(as_real_array(arr, name), name, where)
    return np.ascontiguousarray(a, dtype=np.float64)


def nan_rows(traces: np.ndarray) -> np.ndarray:
    """Indices of the rows holding NaN or Inf."""
    return np.flatnonzero(~np.isfinite(traces).all(axis=1))


def check_finite_rows(traces: np.ndarray, name: str, where: str, ids: Any = None) -> None:
    """Raise ValueError listing the rows (cells) that hold NaN or Inf."""
    bad = nan_rows(traces)
    if bad.size:
        labels = [str(ids[i]) if ids is not None else str(i) for i in bad[:10]]
        more = f" and {bad.size - 10} more" if bad.size > 10 else ""
        what = "cell ids" if ids is not None else "rows"
        raise ValueError(
            f"{name} in {where} has NaN or Inf in {bad.size} of {traces.shape[0]} cells "
            f"({what} {', '.join(labels)}{more}); drop or interpolate them before deconvolution"
        )


def make_meta(source: str, fs: float | None, traces: np.ndarray, **extra: Any) -> dict[str, Any]:
    """The loaders' metadata dict."""
    meta: dict[str, Any] = {
        "source": source,
        "sampling_rate_hz": fs,
        "num_cells": int(traces.shape[0]),
        "num_timepoints": int(traces.shape[1]),
    }
    meta.update(extra)
    return meta
