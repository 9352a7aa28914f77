"""Open any supported input as rows of traces: format detection and row sources.

:func:`detect_format` guesses what a path holds; :func:`open_rows` opens it for streaming (HDF5
and zarr are read a block of cells at a time, ``.npy`` files are memory-mapped) and
:func:`open_traces` reads it whole. Both return a :class:`Source`, which also names every file
or folder it reads (``inputs``) so that writers can refuse to put an output inside one.
:func:`default_chunk` sizes the blocks a source is read in.

Only regular files and folders are opened: a FIFO, socket or device is refused before any read
(a FIFO named ``*.hdf5`` would otherwise block forever).
"""

from __future__ import annotations

import hashlib
import numbers
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from calab._validate import warn_rate_override
from calab.io._common import PathLike

PIPELINE_FORMATS = ("caiman", "minian", "suite2p", "nwb")
FORMATS = ("npy", "tuning", "calab", *PIPELINE_FORMATS)


def require_regular(path: Path, what: str = "input") -> Path:
    """Return ``path`` if it is a regular file or a folder (links followed); raise otherwise.

    Raises
    ------
    FileNotFoundError
        If nothing is there.
    ValueError
        If it is a FIFO, socket or device (reading one could block forever).
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise FileNotFoundError(f"{what} not found: {path}") from None
    except OSError as exc:
        raise OSError(f"cannot open {what} {path}: {exc.strerror}") from None
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        kind = (
            "a FIFO (named pipe)"
            if stat.S_ISFIFO(mode)
            else "a socket"
            if stat.S_ISSOCK(mode)
            else "a device"
        )
        raise ValueError(
            f"{what} {path} is {kind}, not a regular file or folder; calab reads files"
        )
    return path


@dataclass(frozen=True)
class ReadOptions:
    """How to read a pipeline output (each option applies to one format).

    Attributes
    ----------
    trace : {"C", "C+YrA"}
        CaImAn: denoised ``C`` or ``C + YrA`` (keeps the noise).
    accepted_only : bool
        CaImAn: keep only ``estimates/idx_components`` (default False: every row, as the
        CaLab package).
    variable : str
        Minian: the variable to read (``C``, ``S`` or ``YrA``).
    neuropil_coef : float
        suite2p: trace = F - neuropil_coef * Fneu.
    cells_only : bool
        suite2p: keep only ROIs classified as cells.
    plane : int
        suite2p: plane number.
    series : str or None
        NWB: the ROI response series to read (name or path; default: the only
        fluorescence-like one).
    """

    trace: Literal["C", "C+YrA"] = "C"
    accepted_only: bool = False
    variable: str = "C"
    neuropil_coef: float = 0.7
    cells_only: bool = True
    plane: int = 0
    series: str | None = None

    def __post_init__(self) -> None:
        """Check the options; raise ValueError/TypeError naming a bad one."""
        if self.trace not in ("C", "C+YrA"):
            raise ValueError(f"trace must be 'C' or 'C+YrA', got {self.trace!r}")
        for name in ("accepted_only", "cells_only"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if not isinstance(self.variable, str) or not self.variable:
            raise TypeError(f"variable must be a variable name such as 'C', got {self.variable!r}")
        k = self.neuropil_coef
        if isinstance(k, bool) or not isinstance(k, numbers.Real) or not np.isfinite(k) or k < 0:
            raise ValueError(f"neuropil_coef must be a finite number >= 0, got {k!r}")
        p = self.plane
        if isinstance(p, bool) or not isinstance(p, numbers.Integral) or p < 0:
            raise ValueError(f"plane must be an integer >= 0, got {p!r}")
        if self.series is not None and not isinstance(self.series, str):
            raise TypeError(f"series must be an NWB series name or path, got {self.series!r}")


@dataclass
class Source:
    """Traces opened from a path; ``data[a:b]`` reads rows ``a..b`` (ndarray, memmap or lazy).

    Attributes
    ----------
    data : row-sliceable, shape (n_cells, n_timepoints)
    fs : float or None
        Sampling rate in Hz, if the file stores one (or ``fs=`` was given).
    format : str
        One of :data:`FORMATS`.
    path : Path
        The file or folder the traces come from.
    meta : dict
        ``source`` and, where known, ``cell_ids`` and the loader's other metadata.
    inputs : tuple of Path
        The files or folders holding the data read (a Minian store, a suite2p plane folder);
        outputs must not be equal to or inside any of them.
    """

    data: Any
    fs: float | None
    format: str
    path: Path
    meta: dict[str, Any]
    inputs: tuple[Path, ...] = ()
    closer: Callable[[], None] | None = field(default=None, repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_cells, n_timepoints)``."""
        return int(self.data.shape[0]), int(self.data.shape[1])

    def stamp(self) -> str:
        """Return a digest of the name, size and modification time of every file read.

        The files are :attr:`inputs`; folders (a Minian store, a suite2p plane) are walked
        whole, however many files they
        hold, so rewriting any chunk changes the stamp.
        """
        h = hashlib.blake2b(digest_size=16)
        for top in sorted({os.path.abspath(p) for p in self.inputs or (self.path,)}):
            if not os.path.isdir(top):
                st = os.stat(top)
                h.update(repr((top, st.st_size, st.st_mtime_ns)).encode())
                continue
            for folder, dirs, names in os.walk(top):  # links to folders are stamped, not walked
                dirs.sort()
                links = [d for d in dirs if os.path.islink(os.path.join(folder, d))]
                for name in sorted(names) + links:
                    q = os.path.join(folder, name)
                    try:
                        st = os.stat(q)
                    except OSError:  # a dangling link
                        st = os.lstat(q)
                    h.update(repr((os.path.relpath(q, top), st.st_size, st.st_mtime_ns)).encode())
        return h.hexdigest()

    def close(self) -> None:
        """Close the file behind a lazy source (nothing to do for arrays)."""
        if self.closer is not None:
            self.closer()
            self.closer = None

    def __enter__(self) -> Source:
        """Return the source itself."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the source."""
        self.close()


class LazyRows:
    """Row access to a file read block by block: ``rows[a:b]`` reads rows ``a..b`` as float64.

    ``storage_rows`` is the number of rows per stored chunk, when the file is chunked.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        read: Callable[[int, int], Any],
        storage_rows: int | None = None,
        dtype: Any = np.float64,
    ) -> None:
        self.shape = shape
        self._read = read
        self.storage_rows = storage_rows
        self.dtype = np.dtype(dtype)

    @property
    def ndim(self) -> int:
        """2: rows are cells, columns frames."""
        return 2

    def __getitem__(self, key: Any) -> np.ndarray:
        """Read rows: ``rows[a:b]`` reads rows ``a..b``.

        ``rows[a:b, cols]`` and ``rows[[i, j], cols]`` (as dask asks) read those rows, then take
        ``cols``.
        """
        rows, cols = (tuple(key) + (slice(None),))[:2] if isinstance(key, tuple) else (key, None)
        if isinstance(rows, slice) and rows.step in (None, 1):
            start, stop, _ = rows.indices(self.shape[0])
            block = np.asarray(self._read(start, stop), dtype=np.float64)
        else:
            index = np.arange(self.shape[0])[rows]  # IndexError/TypeError as numpy's
            if index.ndim != 1:
                raise TypeError(f"rows are read by a slice or a list of rows, got {key!r}")
            n_cols = int(self.shape[1])
            block = np.empty((index.size, n_cols), dtype=np.float64)
            for j, i in enumerate(index.tolist()):
                block[j] = np.asarray(self._read(i, i + 1), dtype=np.float64).reshape(n_cols)
        return block if cols is None else block[:, cols]


def _is_suite2p(p: Path) -> bool:
    return any((c / "F.npy").is_file() for c in (p, p / "plane0", p / "suite2p" / "plane0"))


def _is_minian(p: Path) -> bool:
    if p.name.endswith(".zarr") or (p / ".zgroup").exists() or (p / "zarr.json").exists():
        return True
    return any(q.name.endswith(".zarr") for q in p.iterdir())


def _is_calab_output(path: Path) -> bool:
    """Tell whether ``path`` is an .h5/.zarr from ``calab deconvolve`` (root ``activity``)."""
    from calab.io._deps import require

    try:
        if path.is_dir():
            zarr = require("zarr")
            group = zarr.open_group(str(path), mode="r")
            return "activity" in group and "calab_version" in group.attrs
        h5py = require("h5py")
        if not path.is_file():  # never open a FIFO or a device
            return False
        with h5py.File(path, "r") as f:
            return "activity" in f and "estimates" not in f
    except (OSError, ValueError, KeyError, TypeError, ImportError):
        return False


def detect_format(path: PathLike) -> str:
    """Guess what ``path`` holds: npy, tuning, caiman, minian, suite2p, nwb or calab (our output).

    Raises
    ------
    FileNotFoundError
        If nothing is at ``path`` (nor a tuning stem ``path.npy``).
    ValueError
        If it is not a regular file or folder, or its format cannot be told.
    """
    path = Path(path).expanduser()
    name = path.name
    if not os.path.lexists(path):
        if os.path.lexists(path.with_name(name + ".npy")):
            return "tuning"
        raise FileNotFoundError(f"input not found: {path}")
    require_regular(path)
    if path.suffix.lower() in (".h5", ".hdf5", ".zarr") and _is_calab_output(path):
        return "calab"
    if path.is_dir():
        if _is_suite2p(path):
            return "suite2p"
        if _is_minian(path):
            return "minian"
        raise ValueError(f"cannot tell what {path} holds; pass --format caiman|minian|suite2p|nwb")
    if name.endswith("_metadata.json"):
        return "tuning"
    if path.suffix.lower() in (".hdf5", ".h5"):
        return "caiman"
    if path.suffix.lower() == ".nwb":
        return "nwb"
    if path.suffix.lower() == ".npy":
        stem = path.with_name(name[: -len(".npy")] + "_metadata.json")
        return "tuning" if stem.is_file() else "npy"
    raise ValueError(
        f"cannot tell the format of {path}; pass --format caiman|minian|suite2p|nwb "
        "(or give a .npy file or tuning-file stem)"
    )


def open_npy(path: Path) -> np.ndarray:
    """Open a ``.npy`` file of traces, memory-mapped, as 2-D ``(n_cells, n_timepoints)``."""
    require_regular(path)
    try:
        arr: np.ndarray = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise ValueError(f"cannot read {path} as .npy: {exc}") from None
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"{path} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.size == 0:
        raise ValueError(
            f"{path} must hold a 1-D (n_timepoints,) or 2-D (n_cells, n_timepoints) array, "
            f"got shape {arr.shape}"
        )
    return arr


def _open_calab_output(path: Path, fs: float | None) -> Source:
    """Activity written by ``calab deconvolve`` (.h5 or .zarr), read lazily."""
    from calab.io._deps import require

    closer = None
    if path.is_dir():
        zarr = require("zarr")
        group = zarr.open_group(str(path), mode="r")
        data, attrs = group["activity"], dict(group.attrs)
    else:
        h5py = require("h5py")
        f = h5py.File(path, "r")
        data, attrs, closer = f["activity"], dict(f.attrs), f.close
    stored = float(attrs["sampling_rate_hz"]) if attrs.get("sampling_rate_hz") else None
    if fs is not None:
        warn_rate_override(fs, stored, str(path))
    fs_ = fs if fs is not None else stored
    return Source(data, fs_, "calab", path, {"source": "calab"}, (path,), closer)


def _open_tuning(path: Path, fs: float | None) -> Source:
    from calab.io.tuning import read_tuning_metadata, tuning_paths

    npy_path, meta_path = tuning_paths(path)
    if not os.path.lexists(npy_path):
        raise FileNotFoundError(f"tuning data not found: {npy_path}")
    require_regular(npy_path, "tuning data")
    require_regular(meta_path, "tuning metadata")
    meta = read_tuning_metadata(path)
    arr = open_npy(npy_path)
    expected = (meta.get("num_cells"), meta.get("num_timepoints"))
    if None not in expected and arr.shape != expected:
        raise ValueError(f"{npy_path} has shape {arr.shape} but its metadata says {expected}")
    if fs is not None:
        warn_rate_override(fs, meta["sampling_rate_hz"], str(meta_path))
    return Source(
        arr, fs or meta["sampling_rate_hz"], "tuning", npy_path, meta, (npy_path, meta_path)
    )


def _resolve(path: PathLike, format: str | None) -> tuple[Path, str]:
    if not os.fspath(path).strip():
        raise FileNotFoundError("input not found: the path is empty; give a file or folder")
    p = Path(path).expanduser()
    if format is not None and format not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {format!r}")
    fmt = format or detect_format(p)
    if fmt != "tuning":
        if not os.path.lexists(p):
            raise FileNotFoundError(f"input not found: {p}")
        require_regular(p)
    return p, fmt


def _check_fs(fs: Any) -> float | None:
    if fs is None:
        return None
    from calab.io._common import sampling_rate

    return sampling_rate(fs, "fs")


def open_rows(
    path: PathLike,
    *,
    format: str | None = None,
    fs: float | None = None,
    require_fs: bool = True,
    **options: Any,
) -> Source:
    """Open ``path`` for streaming: pipeline outputs are read a block of rows at a time.

    Parameters
    ----------
    path : str or path-like
        A ``.npy`` file, a tuning-file stem, a pipeline output, or a ``.h5``/``.zarr`` written
        by ``calab deconvolve``.
    format : str, optional
        One of :data:`FORMATS` (default: :func:`detect_format`).
    fs : float, optional
        Sampling rate in Hz; overrides the file's.
    require_fs : bool
        suite2p: refuse a plane without a frame rate in ``ops.npy`` (as :func:`load_suite2p`)
        unless ``fs`` is given. False leaves ``fs`` None there (``calab info``).
    **options
        :class:`ReadOptions` fields (``trace``, ``accepted_only``, ``variable``,
        ``neuropil_coef``, ``cells_only``, ``plane``, ``series``).

    Returns
    -------
    Source
        Close it when done (or use it as a context manager).
    """
    opts = ReadOptions(**options)
    fs_ = _check_fs(fs)
    p, fmt = _resolve(path, format)
    if fmt == "caiman":
        from calab.io.caiman import CaimanRows

        src = CaimanRows(p, trace=opts.trace, accepted_only=opts.accepted_only, fs=fs_)
        meta = {"source": "caiman", "cell_ids": src.cell_ids.tolist(), **src.meta_extra}
        rows = LazyRows(src.shape, src.rows, dtype=src.dtype)
        return Source(rows, src.fs, fmt, p, meta, (p,), src.close)
    if fmt == "suite2p":
        from calab.io.suite2p import Suite2pRows

        s2p = Suite2pRows(
            p,
            neuropil_coef=opts.neuropil_coef,
            cells_only=opts.cells_only,
            fs=fs_,
            plane=opts.plane,
            require_fs=require_fs,
        )
        rows = LazyRows(s2p.shape, s2p.rows, dtype=s2p.dtype)
        return Source(rows, s2p.fs, fmt, p, s2p.meta, (Path(s2p.meta["path"]),))
    if fmt == "minian":
        from calab.io.minian import minian_rows, open_minian, unit_ids

        da, where = open_minian(p, variable=opts.variable)

        def read(a: int, b: int) -> Any:
            return minian_rows(da, a, b)  # a corrupt chunk names its store

        meta = {"source": "minian", "cell_ids": unit_ids(da).tolist(), "path": where}
        shape = (int(da.shape[0]), int(da.shape[1]))
        rows = LazyRows(shape, read, da.attrs.get("_calab_unit_chunk"), da.dtype)
        return Source(rows, fs_, fmt, p, meta, (Path(where),))
    if fmt == "nwb":
        from calab.io.nwb import NwbRows

        nwb = NwbRows(p, opts.series, fs_)
        meta = {"source": "nwb", "cell_ids": nwb.cell_ids.tolist(), **nwb.meta_extra}
        rows = LazyRows(nwb.shape, nwb.rows, nwb.storage_rows)
        return Source(rows, nwb.fs, fmt, p, meta, (p,), nwb.close)
    return open_traces(p, format=fmt, fs=fs_, **options)


def open_traces(
    path: PathLike,
    *,
    format: str | None = None,
    fs: float | None = None,
    check: bool = True,
    **options: Any,
) -> Source:
    """Open ``path`` whole (``.npy`` and tuning files stay memory-mapped).

    Takes the arguments of :func:`open_rows`; ``check=False`` skips the loaders' NaN checks
    (``calab info`` counts NaNs instead).
    """
    from calab.io.caiman import load_caiman, read_caiman
    from calab.io.minian import load_minian, read_minian
    from calab.io.suite2p import Suite2pRows, load_suite2p

    opts = ReadOptions(**options)
    fs_ = _check_fs(fs)
    p, fmt = _resolve(path, format)
    if fmt == "npy":
        return Source(open_npy(p), fs_, fmt, p, {"source": "npy"}, (p,))
    if fmt == "calab":
        return _open_calab_output(p, fs_)
    if fmt == "tuning":
        return _open_tuning(p, fs_)
    if fmt == "caiman":
        reader = load_caiman if check else read_caiman
        traces, meta = reader(p, trace=opts.trace, accepted_only=opts.accepted_only, fs=fs_)
    elif fmt == "nwb":
        from calab.io.nwb import load_nwb, read_nwb

        traces, meta = (load_nwb if check else read_nwb)(p, opts.series, fs_)
    elif fmt == "minian":
        minian_reader = load_minian if check else read_minian
        traces, meta = minian_reader(p, fs=fs_, variable=opts.variable)
    else:  # suite2p
        kwargs = dict(
            neuropil_coef=opts.neuropil_coef, cells_only=opts.cells_only, fs=fs_, plane=opts.plane
        )
        if check:
            traces, meta = load_suite2p(p, **kwargs)  # type: ignore[arg-type]
        else:
            s2p = Suite2pRows(p, require_fs=False, **kwargs)  # type: ignore[arg-type]
            traces, meta = s2p.rows(0, s2p.shape[0]), s2p.meta
    # Minian and suite2p: the store or plane folder actually read (not the whole output folder)
    held = Path(meta["path"]) if fmt in ("minian", "suite2p") else p
    return Source(traces, meta["sampling_rate_hz"], fmt, p, meta, (held,))


# ---- sizing the reads: cells per block


def check_chunk_cells(chunk_cells: Any) -> int | None:
    """Validate ``chunk_cells`` (cells per solver call): None or an integer >= 1."""
    if chunk_cells is None:
        return None
    if (
        isinstance(chunk_cells, bool)
        or not isinstance(chunk_cells, numbers.Integral)
        or chunk_cells < 1
    ):
        raise ValueError(
            f"chunk_cells must be an integer >= 1 (cells per solver call), got {chunk_cells!r}"
        )
    return int(chunk_cells)


def default_chunk(src: Source) -> int:
    """Cells per block: about 16 MB of float64 traces, whole storage chunks where possible."""
    n, t = src.shape
    budget = max(1, 2_000_000 // max(t, 1))
    rows = getattr(src.data, "storage_rows", None)
    if rows and rows <= budget:
        budget = (budget // rows) * rows
    return max(1, min(n, budget))


__all__ = [
    "FORMATS",
    "PIPELINE_FORMATS",
    "LazyRows",
    "ReadOptions",
    "Source",
    "check_chunk_cells",
    "default_chunk",
    "detect_format",
    "open_npy",
    "open_rows",
    "open_traces",
    "require_regular",
]
