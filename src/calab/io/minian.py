"""Minian output: xarray datasets saved to zarr, one store per variable (``C.zarr``, ...)."""

from __future__ import annotations

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
from calab.io._deps import require

UNIT_DIM = "unit_id"
FRAME_DIM = "frame"


def _is_zarr_store(p: Path) -> bool:
    return p.is_dir() and any((p / m).exists() for m in (".zgroup", "zarr.json", ".zmetadata"))


def find_store(path: PathLike, variable: str) -> Path:
    """The zarr store holding ``variable``: ``path`` itself or ``path/<variable>.zarr``."""
    p = existing_path(path, "Minian output")
    if _is_zarr_store(p):
        return p
    candidate = p / f"{variable}.zarr"
    if _is_zarr_store(candidate):
        return candidate
    if not p.is_dir():
        raise ValueError(
            f"{p} is not a Minian output; pass the folder holding {variable}.zarr "
            f"or the {variable}.zarr store itself"
        )
    stores = sorted(q.name for q in p.iterdir() if q.name.endswith(".zarr"))
    listing = ", ".join(stores) if stores else "no .zarr stores"
    raise FileNotFoundError(
        f"no {variable}.zarr in the Minian output folder {p}; it holds: {listing}"
    )


def _open_dataset(store: Path) -> Any:
    xr = require("xarray")
    require("zarr")
    # chunks=None: lazily indexed arrays read straight from zarr (no dask graph or threads).
    try:
        return xr.open_zarr(store, consolidated=True, chunks=None)
    except Exception:  # no consolidated metadata: read the plain metadata instead
        pass
    try:
        return xr.open_zarr(store, consolidated=False, chunks=None)
    except Exception as exc:
        raise OSError(f"cannot read the zarr store {store}: {exc}") from None


def open_minian(path: PathLike, *, variable: str = "C") -> tuple[Any, str]:
    """The variable as a lazy xarray DataArray with dims (unit_id, frame), and its store.

    Nothing is read but metadata; ``da.isel(unit_id=slice(a, b)).values`` reads rows.
    """
    store = find_store(path, variable)
    ds = _open_dataset(store)
    names = [str(n) for n in ds.data_vars]
    if variable in ds.data_vars:
        da = ds[variable]
    elif len(names) == 1:
        da = ds[names[0]]
    else:
        raise KeyError(
            f"variable {variable!r} not found in {store}; it holds: {', '.join(names) or 'nothing'}"
        )
    where = str(store)
    dims = tuple(str(d) for d in da.dims)
    if UNIT_DIM not in dims or FRAME_DIM not in dims:
        raise ValueError(
            f"{da.name} in {where} has dimensions {dims}; Minian traces need the dimensions "
            f"'{UNIT_DIM}' and '{FRAME_DIM}'"
        )
    extra = [d for d in dims if d not in (UNIT_DIM, FRAME_DIM)]
    for d in extra:
        if da.sizes[d] != 1:
            raise ValueError(
                f"{da.name} in {where} has dimensions {dims}; the extra dimension {d!r} has "
                f"size {da.sizes[d]}, select one entry first (e.g. with xarray's .isel)"
            )
    stored = da.encoding.get("chunks")
    if extra:
        da = da.isel({d: 0 for d in extra})
    da = da.transpose(UNIT_DIM, FRAME_DIM)
    if stored is not None and len(stored) == len(dims):
        da.attrs["_calab_unit_chunk"] = int(dict(zip(dims, stored, strict=True))[UNIT_DIM])
    if da.dtype.kind not in "iuf":
        raise ValueError(f"{da.name} in {where} must hold real numbers, got dtype {da.dtype}")
    if da.shape[0] == 0 or da.shape[1] == 0:
        raise ValueError(f"{da.name} in {where} is empty (shape {tuple(da.shape)})")
    return da, where


def unit_ids(da: Any) -> np.ndarray:
    """The unit_id coordinate of a Minian DataArray (or 0..n-1 without one)."""
    if UNIT_DIM in da.coords:
        return np.asarray(da.coords[UNIT_DIM].values)
    return np.arange(da.shape[0])


def read_minian(
    path: PathLike, fs: float | None, *, variable: str = "C"
) -> tuple[np.ndarray, dict[str, Any]]:
    """Like :func:`load_minian` but without the finiteness check; ``fs`` may be None."""
    da, where = open_minian(path, variable=variable)
    traces = traces_matrix(da.values, str(da.name), where)
    fs_ = None if fs is None else sampling_rate(fs, "fs")
    meta = make_meta(
        "minian", fs_, traces, cell_ids=unit_ids(da).tolist(), variable=str(da.name), path=where
    )
    return traces, meta


def load_minian(
    path: PathLike, fs: float, *, variable: str = "C"
) -> tuple[np.ndarray, dict[str, Any]]:
    """Load traces from Minian's output (xarray data saved to zarr).

    Parameters
    ----------
    path : str or path-like
        Minian's output folder (holding ``C.zarr``, ``S.zarr``, ...) or one variable's store.
    fs : float
        Sampling rate in Hz (Minian does not store it).
    variable : str
        ``"C"`` (denoised traces, default), ``"S"`` (Minian's spikes) or ``"YrA"``
        (raw-like residual traces).

    Returns
    -------
    traces : ndarray of float64, shape (n_cells, n_timepoints)
        Ordered by the dimension names (``unit_id``, ``frame``), whatever the stored order.
    meta : dict
        ``source`` ("minian"), ``sampling_rate_hz``, ``num_cells``, ``num_timepoints``,
        ``cell_ids`` (the ``unit_id`` coordinate), ``variable``, ``path``.

    Raises
    ------
    ImportError
        If xarray or zarr is missing (``pip install calab[loaders]``).
    ValueError
        If the dimensions are not ``unit_id`` and ``frame``, or a trace holds NaN or Inf.
    """
    if fs is None:
        raise ValueError("Minian stores no frame rate: pass fs=<sampling rate in Hz>")
    traces, meta = read_minian(path, fs, variable=variable)
    check_finite_rows(traces, meta["variable"], meta["path"], meta["cell_ids"])
    return traces, meta
