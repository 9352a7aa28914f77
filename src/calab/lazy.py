"""Deconvolution of dask arrays and xarray DataArrays: lazy, chunked over cells.

Nothing here imports dask or xarray unless the input already is one of their objects, so the
in-memory path never pays for them. Each chunk of cells is solved by the same Rust code as an
in-memory array, so results match the in-memory path exactly. :func:`lazy_view` gives a
row-sliceable reader the dask view that :func:`calab.estimate_parameters` reads chunk by chunk.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np

from calab.params import DeconvolutionResult, Params, SolverOptions
from calab.solve import solve_array, solve_block

CELL_DIMS = ("unit_id", "cell", "cells", "roi", "neuron", "component")
FRAME_DIMS = ("frame", "frames", "time", "t")


def is_dask_array(obj: Any) -> bool:
    """Return True for a dask array, decided without importing dask."""
    return type(obj).__module__.startswith("dask.") and hasattr(obj, "chunks")


def is_dataarray(obj: Any) -> bool:
    """Return True for an xarray DataArray, decided without importing xarray."""
    return type(obj).__name__ == "DataArray" and type(obj).__module__.startswith("xarray.")


def is_lazy(obj: Any) -> bool:
    """Return True for a dask array or an xarray DataArray."""
    return is_dask_array(obj) or is_dataarray(obj)


def _require_dask() -> Any:
    try:
        import dask.array as da
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            'deconvolving dask arrays needs dask: pip install "dask[array]" distributed'
        ) from exc
    return da


def _frame_and_cell_dims(arr: Any) -> tuple[str, str | None]:
    dims = tuple(str(d) for d in arr.dims)
    if len(dims) not in (1, 2):
        raise ValueError(f"traces DataArray must have 1 or 2 dimensions, got {len(dims)}: {dims}")
    frame = next((d for d in dims if d in FRAME_DIMS), None)
    if len(dims) == 1:
        return dims[0], None
    cell = next((d for d in dims if d in CELL_DIMS), None)
    if frame is None and cell is not None:
        frame = next(d for d in dims if d != cell)
    if cell is None and frame is not None:
        cell = next(d for d in dims if d != frame)
    if frame is None or cell is None:
        raise ValueError(
            f"cannot tell the cell and frame dimensions of traces with dims {dims}; name them "
            "'unit_id' and 'frame' (as Minian does), e.g. arr.rename({...})"
        )
    return frame, cell


def _params_for(params: Params, block_info: dict[Any, Any] | None, n_cells: int) -> Params:
    """Return the parameters of one chunk of cells: a per-cell lambda sliced to the chunk."""
    if isinstance(params.lam, float):
        return params
    if block_info is None or None not in block_info:  # dask probing with a dummy block
        return replace(params, lam=np.full(n_cells, params.lam[0])) if n_cells else params
    start, stop = block_info[None]["array-location"][0]
    return params.for_cells(int(start), int(stop))


def _solve_packed(
    block: np.ndarray,
    params: Params,
    options: SolverOptions,
    block_info: dict[Any, Any] | None = None,
) -> np.ndarray:
    """Solve one chunk of cells; pack activity, reconvolution, baseline, iterations, converged."""
    n = block.shape[1]
    nb = n if params.baseline == "drift" else 1
    res = solve_block(block, _params_for(params, block_info, block.shape[0]), options, full=True)
    out = np.empty((block.shape[0], 2 * n + nb + 2), dtype=np.float64)
    out[:, :n] = res.activity
    out[:, n : 2 * n] = res.reconvolution
    out[:, 2 * n : 2 * n + nb] = res.baseline.reshape(block.shape[0], nb)
    out[:, 2 * n + nb] = res.iterations
    out[:, 2 * n + nb + 1] = res.converged
    return out


def _solve_activity(
    block: np.ndarray,
    params: Params,
    options: SolverOptions,
    block_info: dict[Any, Any] | None = None,
) -> np.ndarray:
    activity: np.ndarray = solve_block(
        block, _params_for(params, block_info, block.shape[0]), options
    ).activity
    return activity


def deconvolve_dask(arr: Any, params: Params, options: SolverOptions, full: bool) -> Any:
    """Lazy deconvolution of a 1-D or 2-D (n_cells, n_frames) dask array."""
    _require_dask()
    if arr.ndim not in (1, 2):
        raise ValueError(
            f"traces must be 1-D (n_frames,) or 2-D (n_cells, n_frames), got {arr.ndim}-D "
            f"with shape {arr.shape}"
        )
    if arr.dtype.kind not in "iuf":
        raise TypeError(f"traces must hold real numbers, got dtype {arr.dtype}")
    if 0 in arr.shape:
        raise ValueError(f"traces is empty (shape {arr.shape}); pass at least one frame")
    was_1d = arr.ndim == 1
    x = arr[None, :] if was_1d else arr
    params.lam_for(x.shape[0])  # a per-cell lambda must match the cells, checked eagerly
    # Whole traces per chunk: chunk over cells only.
    x = x.rechunk({0: x.chunks[0], 1: -1})
    n = x.shape[1]
    if not full:
        out = x.map_blocks(_solve_activity, params, options, dtype=np.float64)
        return out[0] if was_1d else out
    nb = n if params.baseline == "drift" else 1
    packed = x.map_blocks(
        _solve_packed, params, options, dtype=np.float64, chunks=(x.chunks[0], (2 * n + nb + 2,))
    )
    activity = packed[:, :n]
    reconv = packed[:, n : 2 * n]
    baseline = packed[:, 2 * n : 2 * n + nb] if nb > 1 else packed[:, 2 * n]
    iterations = packed[:, 2 * n + nb].astype(np.int64)
    converged = packed[:, 2 * n + nb + 1].astype(bool)
    if was_1d:
        return DeconvolutionResult(activity[0], baseline[0], reconv[0], iterations[0], converged[0])
    return DeconvolutionResult(activity, baseline, reconv, iterations, converged)


def deconvolve_dataarray(arr: Any, params: Params, options: SolverOptions, full: bool) -> Any:
    """Deconvolve an xarray DataArray; the result keeps its dims (in its order) and coords."""
    import xarray as xr

    frame, cell = _frame_and_cell_dims(arr)
    ordered = arr if cell is None else arr.transpose(cell, frame)
    data = ordered.data
    if is_dask_array(data):
        res = deconvolve_dask(data, params, options, full)
    else:
        res = solve_array(np.asarray(data), params, options, full=full)

    def wrap(values: Any, name: str) -> Any:
        out = xr.DataArray(values, dims=ordered.dims, coords=ordered.coords, name=name)
        # Not the input's storage encoding (a Minian store's zarr v2 compressor on the
        # coordinates): out.to_zarr() writes a new store in the format of the installed zarr.
        return out.transpose(*arr.dims).drop_encoding()

    if not full:
        return wrap(res, "activity")

    def per_cell(values: Any, name: str) -> Any:
        if cell is None:
            return values
        out = xr.DataArray(values, dims=(cell,), coords={cell: ordered[cell]}, name=name)
        return out.drop_encoding()

    drift = params.baseline == "drift"
    return DeconvolutionResult(
        wrap(res.activity, "activity"),
        wrap(res.baseline, "baseline") if drift else per_cell(res.baseline, "baseline"),
        wrap(res.reconvolution, "reconvolution"),
        per_cell(res.iterations, "iterations"),
        per_cell(res.converged, "converged"),
    )


def deconvolve_lazy(traces: Any, params: Params, options: SolverOptions, full: bool) -> Any:
    """Deconvolve a dask array or an xarray DataArray lazily (validated parameters)."""
    if is_dataarray(traces):
        return deconvolve_dataarray(traces, params, options, full)
    return deconvolve_dask(traces, params, options, full)


def lazy_view(rows: Any, chunk_cells: int) -> Any:
    """``rows`` as a dask array of ``chunk_cells`` cells per chunk (read only when computed).

    What :func:`calab.estimate_parameters` reads one chunk at a time. Without dask the rows are
    read into memory whole (with a logged note).
    """
    try:
        import dask.array as da
    except ImportError:
        logging.getLogger(__name__).info(
            'dask is not installed (pip install "dask[array]" distributed): reading every trace '
            "into memory to estimate the parameters"
        )
        return np.asarray(rows[0 : int(rows.shape[0])], dtype=np.float64)
    n, t = int(rows.shape[0]), int(rows.shape[1])
    return da.from_array(  # type: ignore[no-untyped-call]  # dask ships no annotations here
        rows, chunks=(max(1, min(chunk_cells, n)), t), asarray=True, lock=True,
        meta=np.empty((0, 0), dtype=np.float64), name=False,
    )  # fmt: skip
