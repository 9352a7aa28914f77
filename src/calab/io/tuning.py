"""Tuning files: ``<stem>.npy`` plus ``<stem>_metadata.json``, the input of the CaTune tools."""

from __future__ import annotations

import json
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from calab._validate import as_real_array
from calab.io._common import (
    PathLike,
    check_finite_rows,
    is_present,
    load_npy,
    require_file,
    sampling_rate,
    write_atomic,
)

SCHEMA_VERSION = "1.0.0"
_RESERVED = ("schema_version", "sampling_rate_hz", "num_cells", "num_timepoints", "dtype")


def tuning_paths(path: PathLike) -> tuple[Path, Path]:
    """``(<stem>.npy, <stem>_metadata.json)`` for a stem, a ``.npy`` path or a metadata path."""
    p = Path(path).expanduser()
    name = p.name
    if name.endswith("_metadata.json"):
        stem = p.with_name(name[: -len("_metadata.json")])
    elif name.endswith(".npy"):
        stem = p.with_name(name[: -len(".npy")])
    else:
        stem = p
    return stem.with_name(stem.name + ".npy"), stem.with_name(stem.name + "_metadata.json")


def _as_rows(traces: Any) -> np.ndarray:
    arr = as_real_array(traces, "traces")
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"traces must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr[np.newaxis, :]
    if arr.ndim != 2:
        raise ValueError(
            f"traces must be 1-D (n_timepoints,) or 2-D (n_cells, n_timepoints), "
            f"got shape {arr.shape}"
        )
    if arr.size == 0:
        raise ValueError(f"traces are empty (shape {arr.shape})")
    return np.ascontiguousarray(arr, dtype=np.float64)


def save_for_tuning(
    traces: Any,
    fs: float,
    path: PathLike,
    metadata: Mapping[str, Any] | None = None,
    **extra: Any,
) -> tuple[Path, Path]:
    """Save traces for the CaTune tuning tools.

    Parameters
    ----------
    traces : array_like, shape (n_cells, n_timepoints) or (n_timepoints,)
        Finite real values; 1-D input is saved as one row. Masked arrays are refused.
    fs : float
        Sampling rate in Hz.
    path : str or path-like
        The stem: ``"rec"`` writes ``rec.npy`` and ``rec_metadata.json`` (a trailing ``.npy``
        is accepted). Existing files are replaced, each by an atomic rename.
    metadata : dict, optional
        Extra JSON-serialisable keys, merged at the top level of the metadata file (as the
        CaLab package does). Keys that ``save_for_tuning`` sets itself (``schema_version``,
        ``sampling_rate_hz``, ``num_cells``, ``num_timepoints``, ``dtype``) win, with a
        warning.
    **extra
        More keys, e.g. ``source="caiman"``; here a reserved key raises ValueError.

    Returns
    -------
    npy_path, metadata_path : pathlib.Path
    """
    fs_ = sampling_rate(fs, "fs")
    data = _as_rows(traces)
    check_finite_rows(data, "traces", "save_for_tuning")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    clash = sorted(set(extra) & set(_RESERVED))
    if clash:
        raise ValueError(f"metadata keys {clash} are set by save_for_tuning; rename them")
    user = {str(k): v for k, v in (metadata or {}).items()}
    ignored = sorted(set(user) & set(_RESERVED))
    if ignored:
        warnings.warn(
            f"save_for_tuning: metadata keys {ignored} are set from the data and fs; "
            "the values in metadata= are ignored",
            UserWarning,
            stacklevel=2,
        )
    meta: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "sampling_rate_hz": fs_,
        "num_cells": int(data.shape[0]),
        "num_timepoints": int(data.shape[1]),
        "dtype": "<f8",
    }
    meta.update((k, v) for k, v in {**user, **extra}.items() if k not in _RESERVED)
    try:
        text = json.dumps(meta, indent=2, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"metadata must be JSON-serialisable: {exc}") from None
    npy_path, meta_path = tuning_paths(path)
    if npy_path.parent and not npy_path.parent.exists():
        raise FileNotFoundError(f"folder does not exist: {npy_path.parent}")
    # Each file appears whole or not at all (never through a planted link or FIFO).
    write_atomic(npy_path, lambda fh: np.save(fh, data.astype("<f8", copy=False)), overwrite=True)
    write_atomic(meta_path, text + "\n", overwrite=True)
    return npy_path, meta_path


def read_tuning_metadata(path: PathLike) -> dict[str, Any]:
    """Read and check ``<stem>_metadata.json``."""
    _, meta_path = tuning_paths(path)
    if not is_present(meta_path):
        raise FileNotFoundError(
            f"tuning metadata not found: {meta_path} (written by calab.save_for_tuning)"
        )
    require_file(meta_path, "tuning metadata")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{meta_path} is not valid JSON: {exc}") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_path} must hold a JSON object")
    version = str(meta.get("schema_version", ""))
    if version.split(".")[0] != "1":
        raise ValueError(
            f"{meta_path} has schema_version {meta.get('schema_version')!r}; this calab reads "
            f"tuning metadata 1.x (written {SCHEMA_VERSION})"
        )
    if "sampling_rate_hz" not in meta:
        raise KeyError(f"{meta_path} lacks sampling_rate_hz; it holds: {', '.join(sorted(meta))}")
    meta["sampling_rate_hz"] = sampling_rate(meta["sampling_rate_hz"], f"in {meta_path}")
    return meta


def load_tuning_data(path: PathLike) -> tuple[np.ndarray, dict[str, Any]]:
    """Load traces saved by :func:`save_for_tuning`.

    Parameters
    ----------
    path : str or path-like
        The stem, the ``.npy`` file or the ``_metadata.json`` file.

    Returns
    -------
    traces : ndarray of float64, shape (n_cells, n_timepoints)
    meta : dict
        The metadata file's content (``sampling_rate_hz``, ``num_cells``, ...).

    Raises
    ------
    FileNotFoundError
        If either file is missing.
    ValueError
        If the files disagree, the data holds NaN or Inf (the message names the rows), or a
        path is a FIFO or device.
    """
    npy_path, _ = tuning_paths(path)
    if not is_present(npy_path):
        raise FileNotFoundError(f"tuning data not found: {npy_path}")
    meta = read_tuning_metadata(path)
    traces = load_npy(npy_path, "tuning data")
    if traces.ndim != 2 or traces.dtype.kind not in "iuf":
        raise ValueError(
            f"{npy_path} must hold a 2-D numeric array (n_cells, n_timepoints), got "
            f"shape {traces.shape} dtype {traces.dtype}"
        )
    expected = (meta.get("num_cells"), meta.get("num_timepoints"))
    if None not in expected and tuple(traces.shape) != expected:
        raise ValueError(
            f"{npy_path} has shape {traces.shape} but its metadata says {expected}; "
            "the two files do not belong together"
        )
    data = np.ascontiguousarray(traces, dtype=np.float64)
    check_finite_rows(data, "traces", str(npy_path))
    return data, meta


__all__ = ["load_tuning_data", "save_for_tuning", "tuning_paths"]
