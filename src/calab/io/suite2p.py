"""suite2p output folders.

A plane folder (``suite2p/plane0/``) holds ``F.npy``, ``Fneu.npy``, ``iscell.npy`` and
``ops.npy``.
"""

from __future__ import annotations

import math
import numbers
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from calab.io._common import (
    PathLike,
    check_finite_rows,
    check_matrix,
    is_present,
    load_npy,
    npy_header,
    require_dir,
    require_file,
    sampling_rate,
)


def find_plane(folder: PathLike, plane: int = 0) -> Path:
    """Return the plane folder holding ``F.npy``.

    That is ``folder`` itself, ``folder/plane<N>`` or ``folder/suite2p/plane<N>``.
    """
    try:
        p = require_dir(folder, "suite2p folder")
    except NotADirectoryError as exc:
        raise NotADirectoryError(
            f"{exc}; pass the suite2p folder (holding plane0/) or a plane folder (holding F.npy)"
        ) from None
    for candidate in (p, p / f"plane{plane}", p / "suite2p" / f"plane{plane}"):
        if is_present(candidate / "F.npy"):
            return candidate
    planes = sorted(q.name for q in p.iterdir() if q.is_dir() and q.name.startswith("plane"))
    if planes:
        raise FileNotFoundError(
            f"no F.npy in {p / f'plane{plane}'}; the suite2p folder {p} has: {', '.join(planes)}"
        )
    listing = ", ".join(sorted(q.name for q in p.iterdir())[:20]) or "nothing"
    raise FileNotFoundError(
        f"no F.npy in {p} (nor in plane{plane}/ under it); it holds: {listing}. "
        "Pass suite2p's output folder"
    )


def _npy(path: Path, *, mmap: bool = False) -> np.ndarray:
    return load_npy(path, path.name, mmap=mmap)


# What an ``ops.npy`` (``np.save`` of a dict) needs to be rebuilt: numpy arrays, dtypes and
# scalars. Everything else (dicts, lists, str, numbers, None) is built by the pickle opcodes
# themselves, which run no code.
_SAFE_GLOBALS = {
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {("numpy", "ndarray"), ("numpy", "dtype"), ("builtins", "complex")}


class _Refused(pickle.UnpicklingError):
    """The pickle names a global outside ``_SAFE_GLOBALS``."""


class _OpsUnpickler(pickle.Unpickler):
    """Rebuilds only plain data and numpy arrays; any other global is refused unrun."""

    def __init__(self, file: Any, source: Path) -> None:
        super().__init__(file, encoding="ASCII")
        self._source = source

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return super().find_class(module, name)
        raise _Refused(
            f"{self._source} asks to run {module}.{name} while loading; calab reads only plain "
            "data (dicts, lists, numbers, strings, numpy arrays) from it and runs no code. "
            "Pass fs= (--fs on the command line) with the sampling rate in Hz instead"
        )


def read_ops(path: PathLike) -> Any:
    """Load the object stored in a suite2p ``ops.npy``, read without running code from the file.

    ``np.save`` stores a dict as a pickled object array. Unlike ``np.load(allow_pickle=True)``
    this rebuilds only dicts, lists, tuples, numbers, strings, bools, None and numpy arrays,
    dtypes and scalars; a pickle naming anything else (a function or class, as a planted
    file would) raises ValueError before anything runs. A damaged file raises ValueError
    naming it.
    """
    p = require_file(path, "suite2p ops file")
    hint = "pass fs= (--fs on the command line) with the sampling rate in Hz instead"
    try:
        with open(p, "rb") as fh:
            shape, _, dtype = npy_header(fh, str(p))
            if not dtype.hasobject:
                fh.seek(0)
                return np.load(fh, allow_pickle=False)
            arr = _OpsUnpickler(fh, p).load()
    except _Refused as exc:
        raise ValueError(str(exc)) from None
    except OSError as exc:
        raise OSError(f"cannot read {p}: {exc.strerror or exc}; {hint}") from None
    except Exception as exc:  # damaged header or pickle: numpy and pickle raise many kinds
        raise ValueError(f"cannot read {p} ({type(exc).__name__}: {exc}); {hint}") from None
    if not isinstance(arr, np.ndarray) or arr.shape != tuple(shape):
        raise ValueError(f"cannot read {p}: its data does not match its header; {hint}")
    return arr


def _ops(plane: Path) -> dict[str, Any] | None:
    path = plane / "ops.npy"
    if not is_present(path):
        return None
    ops = read_ops(path)
    if isinstance(ops, np.ndarray) and ops.dtype == object and ops.shape == ():
        ops = ops.item()
    if not isinstance(ops, dict):
        got = (
            f"an array of shape {ops.shape} and dtype {ops.dtype}"
            if isinstance(ops, np.ndarray)
            else type(ops).__name__
        )
        raise ValueError(
            f"{path} does not hold suite2p's ops dict (it holds {got}); pass fs= (--fs on the "
            "command line) with the sampling rate in Hz"
        )
    return ops


class Suite2pRows:
    """A suite2p plane opened for reading rows lazily.

    ``F.npy`` and ``Fneu.npy`` are memory-mapped (their headers checked against their sizes);
    nothing else is read.

    ``rows(start, stop)`` returns the traces ``F - neuropil_coef * Fneu`` of kept ROIs
    ``start:stop`` as float64; ``shape``, ``fs``, ``dtype`` (of ``F.npy``), ``cell_ids`` and
    ``meta`` describe the selection. The arguments are those of :func:`load_suite2p`;
    ``require_fs=False`` leaves ``fs`` None when ``ops.npy`` has no frame rate.
    """

    def __init__(
        self,
        folder: PathLike,
        *,
        neuropil_coef: float = 0.7,
        cells_only: bool = True,
        fs: float | None = None,
        plane: int = 0,
        require_fs: bool = True,
    ) -> None:
        if isinstance(neuropil_coef, bool | np.bool_) or not isinstance(
            neuropil_coef, numbers.Real
        ):
            raise TypeError(f"neuropil_coef must be a number, got {neuropil_coef!r}")
        coef = float(neuropil_coef)
        if not math.isfinite(coef) or coef < 0:
            raise ValueError(f"neuropil_coef must be a finite number >= 0, got {neuropil_coef!r}")
        d = find_plane(folder, plane)
        where = str(d)
        f = check_matrix(_npy(d / "F.npy", mmap=True), "F.npy", where)
        fneu = None
        if coef:
            if not is_present(d / "Fneu.npy"):
                raise FileNotFoundError(f"no Fneu.npy in {d}; pass neuropil_coef=0 to use F alone")
            fneu = check_matrix(_npy(d / "Fneu.npy", mmap=True), "Fneu.npy", where)
            if fneu.shape != f.shape:
                raise ValueError(
                    f"Fneu.npy has shape {fneu.shape} but F.npy has {f.shape} in {where}"
                )
        if f.shape[0] == 0 or f.shape[1] == 0:
            raise ValueError(f"F.npy in {where} is empty (shape {f.shape})")
        cell_ids = np.arange(f.shape[0])
        if cells_only:
            cell_ids = _cells(d, f.shape[0])
        if fs is not None:
            fs_: float | None = sampling_rate(fs, "fs")
        else:
            ops = _ops(d)
            if ops is None or ops.get("fs") is None:
                if require_fs:
                    raise FileNotFoundError(
                        f"no sampling rate: {d} has no ops.npy with 'fs'; pass fs=<Hz>"
                    )
                fs_ = None
            else:
                fs_ = sampling_rate(ops["fs"], f"ops['fs'] in {d / 'ops.npy'}")
        self._f: np.ndarray = f
        self._fneu: np.ndarray | None = fneu
        self._coef: float = coef
        self._all: bool = cell_ids.size == f.shape[0]
        self.cell_ids: np.ndarray = cell_ids
        self.shape: tuple[int, int] = (int(cell_ids.size), int(f.shape[1]))
        self.fs: float | None = fs_
        self.dtype: np.dtype[Any] = f.dtype
        self.meta: dict[str, Any] = {
            "source": "suite2p",
            "sampling_rate_hz": fs_,
            "num_cells": self.shape[0],
            "num_timepoints": self.shape[1],
            "cell_ids": cell_ids.tolist(),
            "neuropil_coef": coef,
            "path": where,
        }

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Traces of kept ROIs ``start:stop``, shape (stop - start, n_frames), float64."""
        pick: Any = slice(start, stop) if self._all else self.cell_ids[start:stop]
        out = np.array(self._f[pick], dtype=np.float64)
        if self._fneu is not None:
            out -= self._coef * np.asarray(self._fneu[pick], dtype=np.float64)
        return out


def _cells(d: Path, n_rois: int) -> np.ndarray:
    """Return the indices of the ROIs that ``iscell.npy`` in plane folder ``d`` calls cells."""
    where = str(d)
    if not is_present(d / "iscell.npy"):
        raise FileNotFoundError(f"no iscell.npy in {d}; pass cells_only=False to keep every ROI")
    iscell = _npy(d / "iscell.npy")
    flags = iscell[:, 0] if iscell.ndim == 2 and iscell.shape[1] else iscell
    if iscell.dtype.kind not in "biuf":
        raise ValueError(f"iscell.npy in {where} must hold numbers, got dtype {iscell.dtype}")
    if flags.ndim != 1 or flags.shape[0] != n_rois:
        raise ValueError(
            f"iscell.npy has shape {iscell.shape} but F.npy has {n_rois} ROIs in {where}"
        )
    cell_ids = np.flatnonzero(flags > 0.5)
    if cell_ids.size == 0:
        raise ValueError(
            f"no ROI is classified as a cell in {d / 'iscell.npy'}; "
            "pass cells_only=False to keep every ROI"
        )
    return cell_ids


def load_suite2p(
    folder: PathLike,
    *,
    neuropil_coef: float = 0.7,
    cells_only: bool = True,
    fs: float | None = None,
    plane: int = 0,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Load neuropil-corrected traces from a suite2p output folder.

    Parameters
    ----------
    folder : str or path-like
        suite2p's output folder (holding ``plane0/``), its parent, or a plane folder
        (holding ``F.npy``).
    neuropil_coef : float
        The trace is ``F - neuropil_coef * Fneu`` (suite2p's usual 0.7; 0 uses ``F`` alone).
    cells_only : bool
        Keep only the ROIs classified as cells (``iscell[:, 0]``).
    fs : float, optional
        Sampling rate in Hz; by default ``ops['fs']`` from ``ops.npy``.
    plane : int
        Which ``plane<N>`` folder to read when given the suite2p folder.

    Returns
    -------
    traces : ndarray of float64, shape (n_cells, n_timepoints)
    meta : dict
        ``source`` ("suite2p"), ``sampling_rate_hz``, ``num_cells``, ``num_timepoints``,
        ``cell_ids`` (ROI indices kept), ``neuropil_coef``, ``path``.
    """
    src = Suite2pRows(
        folder, neuropil_coef=neuropil_coef, cells_only=cells_only, fs=fs, plane=plane
    )
    traces, meta = src.rows(0, src.shape[0]), src.meta
    check_finite_rows(traces, "F - neuropil_coef * Fneu", meta["path"], meta["cell_ids"])
    return traces, meta
