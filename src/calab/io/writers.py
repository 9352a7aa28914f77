"""Output files: row writers for .npy, .h5 and .zarr, atomic commits, and output safety checks.

Every output is written under a temporary name in its own folder and moved into place only when
complete (:func:`commit`); temporary files are created exclusively (``mkstemp``), so a planted
link is never followed, and files are reopened only through :func:`open_regular` (no link, no
FIFO). :func:`check_outputs` refuses outputs that would overwrite or sit inside an input,
existing files without ``force``, and a folder where a file is expected (or the reverse).

A full disk is an ``OSError`` from a write, never a crash: ``.npy`` files are written through a
file descriptor (:class:`NpyFile`, no memory map, whose pages would fail with SIGBUS) and HDF5
files have their space allocated when created (a failed HDF5 write would leave the library in a
state that crashes the process); both reserve their size up front, so a disk too small fails
before any work.
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from calab.io._common import write_atomic

OUTPUT_SUFFIXES = (".npy", ".h5", ".hdf5", ".zarr")
FIELDS: dict[str, Any] = {
    "activity": "<f8",
    "baseline": "<f8",
    "iterations": "<i8",
    "converged": bool,
}


# ----------------------------------------------------------------------------- JSON


def dumps_json(obj: Any, what: str, **kwargs: Any) -> str:
    """``json.dumps`` that refuses NaN and Inf (they are not JSON) with a clear message."""
    try:
        return json.dumps(obj, allow_nan=False, **kwargs)
    except ValueError as exc:
        raise ValueError(
            f"{what} holds NaN or Inf, which JSON cannot store ({exc}); nothing was written"
        ) from None


def json_ids(ids: Any, where: str, fix: str) -> list[Any] | None:
    """Cell ids as a list ready for JSON, checked before any work is done.

    Parameters
    ----------
    ids : sequence or None
        Cell ids (a Minian ``unit_id`` coordinate may hold NaN).
    where : str
        The source, named in the message.
    fix : str
        What the user can do besides giving finite ids ("or run without --full").

    Raises
    ------
    ValueError
        If an id is NaN or Inf (JSON cannot store it), naming the rows.
    """
    if ids is None:
        return None
    values = [v.item() if isinstance(v, np.generic) else v for v in ids]
    bad = [i for i, v in enumerate(values) if isinstance(v, float) and not np.isfinite(v)]
    if bad:
        more = f" and {len(bad) - 10} more" if len(bad) > 10 else ""
        rows = ", ".join(map(str, bad[:10])) + more
        raise ValueError(
            f"the cell ids of {where} hold NaN or Inf (rows {rows}), which JSON cannot store; "
            f"give every cell a finite id, {fix}"
        )
    return values


def write_text_atomic(path: Path, text: str, *, sync: bool = True) -> None:
    """Write ``text`` to a fresh temporary file beside ``path``, then rename it into place.

    The file gets the mode of a plain ``open(path, "w")`` (0o666 less the umask), as the other
    outputs do (:func:`calab.io._common.write_atomic`). ``sync`` waits until the data are on
    disk before the rename.
    """
    write_atomic(path, text, overwrite=True, sync=sync)


def write_json_atomic(path: Path, obj: Any, what: str, *, sync: bool = True) -> None:
    """:func:`write_text_atomic` of ``obj`` as JSON; NaN and Inf are refused (ValueError)."""
    write_text_atomic(path, dumps_json(obj, what), sync=sync)


# ----------------------------------------------------------------------------- safety


def _is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _kind(path: Path) -> str:
    """Say what is at ``path`` (links not followed), in words."""
    from calab.io._common import file_kind

    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return "missing"
    return "a symbolic link" if stat.S_ISLNK(mode) else file_kind(mode)


def open_regular(path: Path, flags: int, what: str, mode: int = 0o666) -> int:
    """``os.open`` that opens only a regular file: never through a link, never blocking on a FIFO.

    Parameters
    ----------
    path : Path
    flags : int
        ``os.O_RDONLY``, ``os.O_RDWR``, ``os.O_CREAT | os.O_EXCL``...
    what : str
        What the file is, for the message ("the progress record").
    mode : int
        Permissions of a created file (less the umask).

    Returns
    -------
    int
        A file descriptor of a regular file.

    Raises
    ------
    ValueError
        If ``path`` is a link, a folder, a FIFO, a socket or a device (naming it).
    OSError
        If it cannot be opened otherwise (missing, no permission...).
    """
    flags |= getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags, mode)
    except OSError:
        kind = _kind(path)  # a link (ELOOP), a FIFO without reader (ENXIO), a folder (EISDIR)...
        if kind not in ("a regular file", "missing"):
            raise ValueError(
                f"{what} {path} is {kind}, not a regular file; calab does not open it"
            ) from None
        raise
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ValueError(
            f"{what} {path} is {_kind(path)}, not a regular file; calab does not open it"
        )
    return fd


def read_regular(path: Path, what: str, max_bytes: int) -> bytes:
    """Read a regular file of at most ``max_bytes`` whole (:func:`open_regular`).

    Raises
    ------
    ValueError
        If ``path`` is not a regular file, or is larger than ``max_bytes`` (nothing is read).
    """
    fd = open_regular(path, os.O_RDONLY, what)
    with os.fdopen(fd, "rb") as fh:
        size = os.fstat(fd).st_size
        if size > max_bytes:
            raise ValueError(f"{what} {path} has {size} bytes, more than the {max_bytes} expected")
        return fh.read(max_bytes + 1)


def is_calab_zarr(path: Path) -> bool:
    """Tell whether ``path`` is a zarr store from ``calab deconvolve`` (``force`` replaces it)."""
    if not _is_real_dir(path):
        return False
    for meta in (".zattrs", "zarr.json"):
        try:
            text = (path / meta).read_text(encoding="utf-8")
        except OSError:
            continue
        if '"calab_version"' in text:
            return True
    return False


def _inside(child: str, parent: str) -> bool:
    return child == parent or child.startswith(parent.rstrip(os.sep) + os.sep)


def check_outputs(outputs: Sequence[Path], inputs: Sequence[Path], force: bool) -> None:
    """Refuse outputs that are unsafe to write; with ``force`` existing outputs may be replaced.

    Refused, ``force`` or not: an output equal to an input, inside an input folder, or a
    folder holding an input; an output whose folder does not exist; a folder where a file is
    expected (``-o d.npy`` onto a folder ``d.npy``), or a folder that is not a calab ``.zarr``
    output. Without ``force``: any existing output.

    Raises
    ------
    FileExistsError, FileNotFoundError, ValueError
        With one line naming the path and what to do.
    """
    real_inputs = [(p, os.path.realpath(p)) for p in inputs if os.path.lexists(p)]
    for out in outputs:
        real_out = os.path.realpath(out)
        for given, real_in in real_inputs:
            same = real_out == real_in or (
                os.path.exists(out) and os.path.exists(given) and os.path.samefile(out, given)
            )
            if same:
                kind = "folder" if os.path.isdir(real_in) else "file"
                raise ValueError(f"{out} is an input {kind}; choose another output name")
            if _inside(real_out, real_in):
                raise ValueError(
                    f"{out} is inside the input folder {given}; write the output elsewhere"
                )
            if _inside(real_in, real_out):
                raise ValueError(f"the input {given} is inside {out}; choose another output name")
        if not out.parent.is_dir():
            raise FileNotFoundError(f"output folder does not exist: {out.parent}")
        if not os.path.lexists(out):
            continue
        if not force:
            raise FileExistsError(f"{out} already exists; pass --force (force=True) to replace it")
        wants_dir = out.suffix.lower() == ".zarr"
        if _is_real_dir(out) and not wants_dir:
            raise ValueError(
                f"{out} is a folder; calab replaces only a file there (delete or rename the "
                "folder yourself if you mean it)"
            )
        if wants_dir and not is_calab_zarr(out):
            raise ValueError(
                f"{out} is not a zarr store written by calab; it is not replaced (delete or "
                "rename it yourself if you mean it)"
            )


def _make_deletable(top: Path) -> None:
    """Give the owner write and search permission on every folder of a tree, as deleting needs.

    Links are not followed; folders of other users are left as they are.
    """
    uid = os.getuid() if hasattr(os, "getuid") else None

    def allow(folder: str) -> None:
        try:
            st = os.lstat(folder)
            if stat.S_ISDIR(st.st_mode) and (uid is None or st.st_uid == uid):
                os.chmod(folder, stat.S_IMODE(st.st_mode) | stat.S_IRWXU)
        except OSError:
            pass

    allow(str(top))  # before it is listed: it may be unreadable
    for folder, dirs, _ in os.walk(top, onerror=lambda exc: None):
        for d in dirs:
            allow(os.path.join(folder, d))  # before os.walk lists it


def remove(path: Path, *, strict: bool = True) -> None:
    """Delete a file, a link or a folder tree (a link to a folder removes the link only).

    Read-only folders of one's own inside the tree are made writable first, as ``rm -rf`` by
    their owner would delete them.

    Parameters
    ----------
    path : Path
    strict : bool
        Raise when something cannot be deleted (else leave it, for cleanups after an error).

    Raises
    ------
    OSError
        With ``strict``, naming the first entry that could not be deleted and why.
    """
    errors: list[tuple[str, BaseException]] = []
    try:
        if _is_real_dir(path):
            _make_deletable(path)

            def failed(func: Any, where: str, exc: Any) -> None:
                errors.append((where, exc if isinstance(exc, BaseException) else exc[1]))

            if sys.version_info >= (3, 12):
                shutil.rmtree(path, onexc=failed)
            else:  # pragma: no cover - Python 3.11
                shutil.rmtree(path, onerror=failed)
        else:
            path.unlink(missing_ok=True)
    except OSError as exc:
        errors.append((str(path), exc))
    if strict and errors and os.path.lexists(path):
        where, first = errors[0]
        why = getattr(first, "strerror", None) or str(first)
        raise OSError(
            getattr(first, "errno", None) or errno.EPERM,
            f"cannot delete {path} ({where}: {why}); delete it yourself and run again",
        )


@contextmanager
def temp_dir(beside: Path) -> Iterator[Path]:
    """Yield a fresh private folder (``mkdtemp``) in ``beside``'s folder, deleted afterwards.

    Write there, then :func:`commit` the finished files to their final names.
    """
    tmp = Path(tempfile.mkdtemp(prefix=f".{beside.name}.", dir=beside.parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def commit(tmp: Path, final: Path) -> None:
    """Move a finished temporary file or folder into place, replacing ``final``.

    Files are replaced atomically; a replaced folder is first moved aside, then deleted. A link
    at ``tmp`` is refused (it would become the output).
    """
    if os.path.islink(tmp):
        raise ValueError(f"{tmp} is a symbolic link; calab does not commit it as {final}")
    if _is_real_dir(final):
        aside = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
        os.replace(final, aside / "old")
        os.replace(tmp, final)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(tmp, final)


# ----------------------------------------------------------------------------- writers


class Writer:
    """Writes rows of a deconvolution result to ``path``, fresh or reopened to resume.

    Parameters
    ----------
    path : Path
        Where to write (a temporary name; :func:`commit` moves it into place).
    shape : (int, int)
        ``(n_cells, n_timepoints)`` of the activity.
    full : bool
        Also store ``baseline``, ``iterations`` and ``converged`` (h5/zarr only; .npy holds the
        activity alone).
    attrs : dict
        File attributes (h5/zarr): version, source, parameters; its ``cell_ids`` (one id per
        row, default the row numbers) are stored as the array ``unit_id`` instead.
    resume : bool
        Reopen an existing file instead of creating one; its arrays must have the right shapes.
    drift : bool
        The baseline follows drift: with ``full`` it is stored as (n_cells, n_timepoints) (in
        h5/zarr the ``baseline`` array; beside a .npy the file :func:`sidecar_path`) instead of
        one value per cell.
    """

    suffix = ""

    def __init__(
        self,
        path: Path,
        shape: tuple[int, int],
        full: bool,
        attrs: dict[str, Any],
        resume: bool = False,
        drift: bool = False,
    ) -> None:
        self.drift = drift
        self.path = path
        self.shape = shape
        self.full = full
        self.attrs = {k: v for k, v in attrs.items() if k != "cell_ids"}
        self.cell_ids = cell_id_array(attrs.get("cell_ids"), shape[0])
        self.resume = resume
        self.arrays: dict[str, Any] = {}

    def names(self) -> list[str]:
        """Return the names of the arrays this writer stores."""
        return list(FIELDS) if self.full else ["activity"]

    def paths(self) -> list[Path]:
        """Return the files (or folder) this writer writes."""
        return [self.path]

    def chunk_rows(self) -> int:
        """Rows per stored chunk of the activity: about 8 MB."""
        n, t = self.shape
        return max(1, min(n, (1 << 20) // max(t, 1)))

    def layout(self) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], Any]]:
        """``name -> (shape, chunks, dtype)`` of each stored array."""
        n, t = self.shape
        return {
            k: (self.shape, (self.chunk_rows(), t), FIELDS[k])
            if self.per_frame(k)
            else ((n,), (max(1, n),), FIELDS[k])
            for k in self.names()
        }

    def per_frame(self, name: str) -> bool:
        """Whether array ``name`` has one value per frame, shape (n_cells, n_timepoints)."""
        return name == "activity" or (name == "baseline" and self.drift)

    def check(self) -> None:
        """Raise ValueError if a reopened file's arrays do not have the expected shapes."""
        n, t = self.shape
        for name in self.names():
            arr = self.arrays.get(name)
            want = (n, t) if self.per_frame(name) else (n,)
            if arr is None or tuple(arr.shape) != want:
                got = None if arr is None else tuple(arr.shape)
                raise ValueError(f"{self.path}: {name} has shape {got}, expected {want}")

    def write(self, start: int, res: Any) -> None:
        """Store rows ``start..`` of ``res`` (a DeconvolutionResult of a chunk of cells)."""
        stop = start + res.activity.shape[0]
        for name, arr in self.arrays.items():
            arr[start:stop] = getattr(res, name)

    def read(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Rows ``start..stop`` of every stored array, as written."""
        return {name: np.asarray(arr[start:stop]) for name, arr in self.arrays.items()}

    def flush(self) -> None:
        """Push written rows to the file."""

    def close(self) -> None:
        """Flush and close the file (idempotent)."""


def cell_id_array(ids: Any, n: int) -> np.ndarray:
    """One id per row: integer ids as int64, others as text (the row numbers when None)."""
    if ids is None:
        return np.arange(n, dtype=np.int64)
    arr = np.asarray(ids)
    if arr.shape != (n,):
        raise ValueError(f"{arr.size} cell ids for {n} rows of traces")
    return arr.astype(np.int64) if arr.dtype.kind in "iub" else arr.astype(str)


def sidecar_path(path: Path, name: str = "baseline") -> Path:
    """``<stem>_<name>.npy`` beside a ``.npy`` file (the drift baseline of a .npy output)."""
    return path.with_name(path.name[: -len(path.suffix)] + f"_{name}.npy")


def reserve(fd: int, size: int) -> None:
    """Make the file ``size`` bytes long, reserving its disk space where the file system can.

    With ``posix_fallocate`` a disk too small fails now (OSError ENOSPC), not mid-run.
    """
    if hasattr(os, "posix_fallocate"):
        try:
            os.posix_fallocate(fd, 0, size)
            return
        except OSError as exc:
            if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS):
                raise
    os.ftruncate(fd, size)


def _pwrite(fd: int, data: memoryview, pos: int) -> None:
    while data:
        if hasattr(os, "pwrite"):
            k = os.pwrite(fd, data, pos)
        else:  # pragma: no cover - Windows
            os.lseek(fd, pos, os.SEEK_SET)
            k = os.write(fd, data)
        data, pos = data[k:], pos + k


def _pread(fd: int, size: int, pos: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fd, size, pos)
    os.lseek(fd, pos, os.SEEK_SET)  # pragma: no cover - Windows
    return os.read(fd, size)  # pragma: no cover - Windows


class NpyFile:
    """A 2-D ``.npy`` file read and written by rows through a file descriptor.

    Not memory-mapped: a full disk or a failing device is an OSError from :meth:`__setitem__`
    (a memory map would die of SIGBUS). A new file is created exclusively with its whole size
    reserved (:func:`reserve`); an existing one is opened only if it is a regular file (not a
    link, :func:`open_regular`) holding exactly ``dtype`` of ``shape`` (a truncated or extended
    file is refused, where numpy's ``open_memmap`` would fill a gap with zeros).

    Parameters
    ----------
    path : Path
    shape : (int, int)
    dtype : str
    create : bool
        Create the file (it must not exist) instead of opening it.

    Raises
    ------
    ValueError
        If an existing file is not a regular file or not exactly ``dtype`` of ``shape``.
    OSError
        If it cannot be created or opened (ENOSPC when the disk is too small).
    """

    def __init__(self, path: Path, shape: tuple[int, int], dtype: str = "<f8", *, create: bool):
        self.path = path
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype)
        self.row_bytes = self.shape[1] * self.dtype.itemsize
        flags = os.O_RDWR | (os.O_CREAT | os.O_EXCL if create else 0)
        self.fd: int | None = open_regular(path, flags, "the file")
        try:
            if create:
                head = io.BytesIO()
                descr = np.lib.format.dtype_to_descr(self.dtype)
                header = {"descr": descr, "fortran_order": False, "shape": self.shape}
                np.lib.format.write_array_header_1_0(head, header)
                self.offset = head.tell()
                _pwrite(self.fd, memoryview(head.getvalue()), 0)
                reserve(self.fd, self.offset + self.shape[0] * self.row_bytes)
            else:
                self.offset = self._check_header()
        except BaseException:
            self.close()
            raise

    def _check_header(self) -> int:
        assert self.fd is not None
        fmt = np.lib.format
        with os.fdopen(os.dup(self.fd), "rb") as fh:
            try:
                version = fmt.read_magic(fh)
                read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                shape, fortran, dtype = read(fh)
            except (ValueError, EOFError, SyntaxError) as exc:
                raise ValueError(f"{self.path} is not a readable .npy file ({exc})") from None
            offset = fh.tell()
        if dtype != self.dtype or tuple(shape) != self.shape or fortran:
            raise ValueError(
                f"{self.path} holds {dtype} of shape {shape}, expected {self.dtype.str} "
                f"{self.shape}"
            )
        size, expected = os.fstat(self.fd).st_size, offset + self.shape[0] * self.row_bytes
        if size != expected:
            raise ValueError(f"{self.path} has {size} bytes, expected {expected}")
        return int(offset)

    def _rows(self, key: Any) -> tuple[int, int]:
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError(f"rows of {self.path} are read and written by a slice, got {key!r}")
        start, stop, _ = key.indices(self.shape[0])
        return start, max(start, stop)

    def __getitem__(self, key: slice) -> np.ndarray:
        """Read rows ``a..b`` (``f[a:b]``)."""
        assert self.fd is not None, "closed"
        start, stop = self._rows(key)
        size = (stop - start) * self.row_bytes
        data = _pread(self.fd, size, self.offset + start * self.row_bytes)
        if len(data) != size:
            raise ValueError(f"{self.path} ends before row {stop}")
        rows = np.empty((stop - start, self.shape[1]), dtype=self.dtype)  # writable
        rows.reshape(-1)[:] = np.frombuffer(data, self.dtype)
        return rows

    def __setitem__(self, key: slice, rows: Any) -> None:
        """Write rows ``a..b`` (``f[a:b] = rows``)."""
        assert self.fd is not None, "closed"
        start, stop = self._rows(key)
        data = np.ascontiguousarray(rows, dtype=self.dtype)
        if data.size != (stop - start) * self.shape[1]:
            raise ValueError(f"{data.shape} values do not fit rows {start}:{stop} of {self.path}")
        _pwrite(self.fd, data.data.cast("B"), self.offset + start * self.row_bytes)

    def flush(self) -> None:
        """Wait until the written rows are on disk."""
        if self.fd is not None:
            os.fsync(self.fd)

    def close(self) -> None:
        """Close the file (idempotent)."""
        if self.fd is not None:
            fd, self.fd = self.fd, None
            os.close(fd)


class NpyWriter(Writer):
    """Activity as one ``.npy`` file (:class:`NpyFile`: no memory map, space reserved)."""

    suffix = ".npy"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        paths = {"activity": self.path, "baseline": sidecar_path(self.path)}
        try:
            for name in self.names():
                self.arrays[name] = NpyFile(paths[name], self.shape, create=not self.resume)
        except BaseException:
            self.close()
            raise

    def names(self) -> list[str]:
        """Return the arrays stored: activity; with ``full`` and ``drift`` baseline (own file)."""
        return ["activity", "baseline"] if self.full and self.drift else ["activity"]

    def paths(self) -> list[Path]:
        """Return the files written: the activity, and the drift baseline's :func:`sidecar_path`."""
        return [self.path, sidecar_path(self.path)] if "baseline" in self.names() else [self.path]

    def flush(self) -> None:
        """Wait until the written rows are on disk."""
        for arr in self.arrays.values():
            arr.flush()

    def close(self) -> None:
        """Flush and close the files."""
        try:
            self.flush()
        finally:
            for arr in self.arrays.values():
                arr.close()
            self.arrays = {}


_H5_ERRNO = re.compile(r"errno = (\d+)")


@contextmanager
def _h5_errors(path: Path) -> Iterator[None]:
    """Raise HDF5's report of a failed system call as the OSError it is (ENOSPC: disk full).

    HDF5 quotes the errno in the message of a RuntimeError or ValueError.
    """
    try:
        yield
    except (RuntimeError, ValueError, OSError) as exc:
        found = _H5_ERRNO.search(str(exc))
        if found is None or int(found.group(1)) == 0:
            raise
        code = int(found.group(1))
        raise OSError(code, os.strerror(code), str(path)) from exc


def _h5_allocated_early() -> Any:
    """HDF5 dataset creation properties: all space allocated and written when created.

    Later writes then go to space the file already owns; a write failing mid-run (full disk)
    would leave HDF5 with metadata it cannot flush, and the process crashes (SIGSEGV) at exit.
    """
    import h5py

    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
    dcpl.set_fill_time(h5py.h5d.FILL_TIME_ALLOC)
    return dcpl


class H5Writer(Writer):
    """Activity (and with ``full`` the per-cell results) as datasets of an HDF5 file.

    The datasets' space is allocated when the file is created (:func:`_h5_allocated_early`), so
    a full disk fails there; HDF5 errors quoting an errno are raised as that OSError.
    """

    suffix = ".h5"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        from calab.io._deps import require

        h5py = require("h5py")
        with _h5_errors(self.path):
            self.f: Any = h5py.File(self.path, "r+" if self.resume else "w-")
        if self.resume:
            self.arrays = {k: self.f[k] for k in self.names() if k in self.f}
            return
        try:
            with _h5_errors(self.path):
                self.arrays = {
                    k: self.f.create_dataset(
                        k, shape=shape, dtype=dtype, chunks=chunks, dcpl=_h5_allocated_early()
                    )
                    for k, (shape, chunks, dtype) in self.layout().items()
                }
                ids = self.cell_ids
                self.f.create_dataset(
                    "unit_id",
                    data=ids if ids.dtype.kind != "U" else ids.astype(h5py.string_dtype()),
                )
                for k, v in self.attrs.items():
                    if isinstance(v, dict | list):
                        v = dumps_json(v, f"attribute {k} of {self.path}")
                    self.f.attrs[k] = v
        except BaseException:
            self.close()
            raise

    def write(self, start: int, res: Any) -> None:
        """Store rows ``start..`` of ``res``; a failed system call raises its OSError."""
        with _h5_errors(self.path):
            super().write(start, res)

    def flush(self) -> None:
        """Flush the HDF5 file."""
        if self.f is not None:
            with _h5_errors(self.path):
                self.f.flush()

    def close(self) -> None:
        """Close the HDF5 file."""
        if self.f is not None:
            f, self.f = self.f, None
            self.arrays = {}
            with _h5_errors(self.path):
                f.close()


class ZarrWriter(Writer):
    """Activity (and with ``full`` the per-cell results) as a Minian-style xarray zarr store.

    A zarr v2 group with consolidated metadata, as ``xarray.Dataset.to_zarr`` writes it and
    Minian reads it: each array names its dimensions (``_ARRAY_DIMENSIONS``: ``unit_id``,
    ``frame``), and the coordinates ``unit_id`` (the cell ids) and ``frame`` are arrays of
    their own, so ``xarray.open_zarr(OUT)["activity"]`` is labelled. No fill value is stored
    (xarray would read stored values equal to it, such as zero activity, as missing).
    """

    suffix = ".zarr"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        from calab.io._deps import require

        zarr = require("zarr")
        if self.resume:
            group = zarr.open_group(str(self.path), mode="r+")
            self.arrays = {k: group[k] for k in self.names() if k in group}
            return
        v3 = int(zarr.__version__.split(".")[0]) >= 3
        group = zarr.open_group(str(self.path), mode="w-", **({"zarr_format": 2} if v3 else {}))
        make = group.create_array if v3 else group.create_dataset
        n, t = self.shape
        coords = {"unit_id": self.cell_ids, "frame": np.arange(t, dtype=np.int64)}
        for name, values in coords.items():
            arr = make(name, shape=values.shape, chunks=values.shape, dtype=values.dtype,
                       fill_value=None)  # fmt: skip
            arr[:] = values
            arr.attrs["_ARRAY_DIMENSIONS"] = [name]
        for k, (shape, chunks, dtype) in self.layout().items():
            arr = make(k, shape=shape, chunks=chunks, dtype=dtype, fill_value=None)
            arr.attrs["_ARRAY_DIMENSIONS"] = ["unit_id", "frame"][: len(shape)]
            self.arrays[k] = arr
        group.attrs.update(json.loads(dumps_json(self.attrs, f"attributes of {self.path}")))
        zarr.consolidate_metadata(str(self.path))  # the metadata never change after this


def writer_for(path: Path) -> type[Writer]:
    """Return the writer class for an output path, by its extension (.npy, .h5/.hdf5, .zarr)."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return NpyWriter
    if suffix in (".h5", ".hdf5"):
        return H5Writer
    if suffix == ".zarr":
        return ZarrWriter
    raise ValueError(f"output {path} must end in .npy, .h5 or .zarr")


__all__ = [
    "FIELDS",
    "OUTPUT_SUFFIXES",
    "H5Writer",
    "NpyWriter",
    "Writer",
    "ZarrWriter",
    "cell_id_array",
    "check_outputs",
    "commit",
    "dumps_json",
    "is_calab_zarr",
    "json_ids",
    "NpyFile",
    "open_regular",
    "read_regular",
    "reserve",
    "remove",
    "sidecar_path",
    "temp_dir",
    "write_json_atomic",
    "write_text_atomic",
    "writer_for",
]
