"""Checks and metadata shared by the loaders."""

from __future__ import annotations

import math
import numbers
import os
from pathlib import Path
from typing import Any

import numpy as np

PathLike = str | os.PathLike[str]


def existing_path(path: PathLike, what: str) -> Path:
    """Return ``path`` as a Path or raise FileNotFoundError naming ``what``."""
    p = Path(path).expanduser()
    if not p.exists():
        raise FileNotFoundError(f"{what} not found: {p}")
    return p


def sampling_rate(fs: Any, where: str) -> float:
    """Validate a sampling rate in Hz."""
    if isinstance(fs, bool) or not isinstance(fs, numbers.Real):
        raise TypeError(f"fs must be the sampling rate in Hz (a number), got {fs!r} ({where})")
    v = float(fs)
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"sampling rate must be a positive number of Hz, got {fs!r} ({where})")
    return v


def traces_matrix(arr: Any, name: str, where: str) -> np.ndarray:
    """Return ``arr`` as a C-ordered float64 2-D array or raise a clear error."""
    a = np.asarray(arr)
    if a.dtype.kind not in "iuf":
        raise TypeError(f"{name} in {where} must hold real numbers, got dtype {a.dtype}")
    if a.ndim != 2:
        raise ValueError(
            f"{name} in {where} must be 2-D (n_cells, n_frames), got {a.ndim}-D with shape "
            f"{a.shape}"
        )
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
