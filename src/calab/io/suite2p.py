"""suite2p output folders (``suite2p/plane0/`` with ``F.npy``, ``Fneu.npy``, ``iscell.npy``,
``ops.npy``)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from calab.io._common import (
    PathLike,
    check_finite_rows,
    existing_path,
    make_meta,
    sampling_rate,
    traces_matrix,
)


def find_plane(folder: PathLike, plane: int = 0) -> Path:
    """The plane folder holding ``F.npy``: ``folder`` itself, ``folder/plane<N>`` or
    ``folder/suite2p/plane<N>``."""
    p = existing_path(folder, "suite2p folder")
    if not p.is_dir():
        raise NotADirectoryError(
            f"{p} is a file; pass the suite2p folder (holding plane0/) or a plane folder "
            "(holding F.npy)"
        )
    for candidate in (p, p / f"plane{plane}", p / "suite2p" / f"plane{plane}"):
        if (candidate / "F.npy").is_file():
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


def _npy(path: Path) -> np.ndarray:
    try:
        return np.asarray(np.load(path, allow_pickle=False))
    except (ValueError, OSError, EOFError) as exc:
        raise OSError(f"cannot read {path}: {exc}") from None


def _ops(plane: Path) -> dict[str, Any] | None:
    path = plane / "ops.npy"
    if not path.is_file():
        return None
    try:
        ops = np.load(path, allow_pickle=True)
    except (ValueError, OSError, EOFError) as exc:
        raise OSError(f"cannot read {path}: {exc}") from None
    ops = ops.item() if isinstance(ops, np.ndarray) and ops.dtype == object else ops
    if not isinstance(ops, dict):
        raise ValueError(f"{path} does not hold suite2p's ops dict (got {type(ops).__name__})")
    return ops


def read_suite2p(
    folder: PathLike,
    *,
    neuropil_coef: float = 0.7,
    cells_only: bool = True,
    fs: float | None = None,
    plane: int = 0,
    require_fs: bool = True,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Like :func:`load_suite2p` without the finiteness check (used by ``calab info``)."""
    if isinstance(neuropil_coef, bool) or not isinstance(neuropil_coef, int | float):
        raise TypeError(f"neuropil_coef must be a number, got {neuropil_coef!r}")
    if not math.isfinite(neuropil_coef) or neuropil_coef < 0:
        raise ValueError(f"neuropil_coef must be a finite number >= 0, got {neuropil_coef!r}")
    d = find_plane(folder, plane)
    where = str(d)
    f = traces_matrix(_npy(d / "F.npy"), "F.npy", where)
    if neuropil_coef:
        if not (d / "Fneu.npy").is_file():
            raise FileNotFoundError(f"no Fneu.npy in {d}; pass neuropil_coef=0 to use F alone")
        fneu = traces_matrix(_npy(d / "Fneu.npy"), "Fneu.npy", where)
        if fneu.shape != f.shape:
            raise ValueError(f"Fneu.npy has shape {fneu.shape} but F.npy has {f.shape} in {where}")
        traces = f - neuropil_coef * fneu
    else:
        traces = f
    if traces.shape[0] == 0 or traces.shape[1] == 0:
        raise ValueError(f"F.npy in {where} is empty (shape {traces.shape})")
    cell_ids = np.arange(traces.shape[0])
    if cells_only:
        if not (d / "iscell.npy").is_file():
            raise FileNotFoundError(
                f"no iscell.npy in {d}; pass cells_only=False to keep every ROI"
            )
        iscell = _npy(d / "iscell.npy")
        flags = iscell[:, 0] if iscell.ndim == 2 else iscell
        if flags.ndim != 1 or flags.shape[0] != traces.shape[0]:
            raise ValueError(
                f"iscell.npy has shape {iscell.shape} but F.npy has {traces.shape[0]} ROIs "
                f"in {where}"
            )
        cell_ids = np.flatnonzero(flags > 0.5)
        if cell_ids.size == 0:
            raise ValueError(
                f"no ROI is classified as a cell in {d / 'iscell.npy'}; "
                "pass cells_only=False to keep every ROI"
            )
        traces = np.ascontiguousarray(traces[cell_ids])
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
    meta = make_meta(
        "suite2p",
        fs_,
        traces,
        cell_ids=cell_ids.tolist(),
        neuropil_coef=float(neuropil_coef),
        path=where,
    )
    return traces, meta


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
    traces, meta = read_suite2p(
        folder, neuropil_coef=neuropil_coef, cells_only=cells_only, fs=fs, plane=plane
    )
    check_finite_rows(traces, "F - neuropil_coef * Fneu", meta["path"], meta["cell_ids"])
    return traces, meta
