"""The solve layer: filter, detrend, centre, then solve a block of rows at :class:`Params`.

This module is the only caller of the Rust extension's solver (:mod:`calab._solver`). The
public API (:mod:`calab.deconvolution`), the dask / xarray path (:mod:`calab.lazy`), the batch
engine, the estimate and the tuning engine all solve through :func:`solve_block` (or
:func:`solve_array` for 1-D or 2-D arrays shaped as the public API returns them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from calab import _solver
from calab._validate import check_finite, traces_2d
from calab.params import DeconvolutionResult, Params, SolverOptions


def warm_start_2d(warm_start: Any, shape: tuple[int, ...]) -> npt.NDArray[np.float64]:
    """Validate a warm start against traces of 2-D ``shape``; return it as a C float64 block."""
    init, _ = traces_2d(warm_start, "warm_start")
    init = np.ascontiguousarray(init, dtype=np.float64)
    check_finite(init, "warm_start")
    if init.shape != shape:
        raise ValueError(
            f"warm_start has shape {np.shape(warm_start)} but the traces have shape {shape}; "
            "pass the activity of a previous solve of the same traces"
        )
    return init


def center_rows(data: np.ndarray) -> tuple[np.ndarray, npt.NDArray[np.float64]]:
    """Subtract from each row the middle of its range; return the rows and what was subtracted.

    The scalar baseline ``b`` absorbs any constant, so the minimiser ``s`` is unchanged, while
    the solver (which works in units of max|y|) no longer loses the signal under a large offset
    (``traces + 1e14``). The midrange keeps every value within ``max|y|``, so this never
    overflows. Rows holding NaN or Inf are left as they are (the solver names the frame).

    Parameters
    ----------
    data : ndarray of float32 or float64, shape (n_cells, n_frames), C-contiguous

    Returns
    -------
    centred : ndarray of float64, same shape as ``data`` (float32 rows are centred exactly as
        the same values given as float64)
    offset : ndarray of float64, shape (n_cells,)
        The value subtracted from each row (0 for rows that are not finite).
    """
    with np.errstate(invalid="ignore", over="ignore"):
        mid = 0.5 * data.min(axis=1).astype(np.float64) + 0.5 * data.max(axis=1)
    mid = np.where(np.isfinite(mid), mid, 0.0)
    return np.subtract(data, mid[:, None], dtype=np.float64), mid


def solve_block(
    traces: npt.ArrayLike,
    params: Params,
    options: SolverOptions | None = None,
    warm_start: npt.ArrayLike | None = None,
    full: bool = False,
) -> DeconvolutionResult:
    """Filter (when ``params.filter_enabled``), then solve an in-memory block of traces.

    Parameters
    ----------
    traces : array_like, shape (n_cells, n_frames)
        Fluorescence traces, any real dtype (each row is centred into a float64 copy first).
    params : Params
        Model parameters; a per-cell ``lam`` must have ``n_cells`` values.
    options : SolverOptions, optional
        Solver settings (default ``SolverOptions()``).
    warm_start : array_like, shape (n_cells, n_frames), optional
        Activity from a previous solve of the same traces.
    full : bool
        Also compute the reconvolution.

    Returns
    -------
    DeconvolutionResult
        With 2-D fields (``reconvolution`` is None unless ``full``); ``baseline`` is
        (n_cells,) for ``"constant"`` and (n_cells, n_frames) for ``"drift"``.
    """
    opts = options if options is not None else SolverOptions()
    data, was_1d = traces_2d(traces)
    if was_1d:
        raise ValueError(
            f"traces must be 2-D (n_cells, n_frames) here, got shape {np.shape(traces)}; "
            "use traces[None, :] for one trace"
        )
    lam = params.lam_for(data.shape[0])
    init = None if warm_start is None else warm_start_2d(warm_start, data.shape)
    drift = None
    if params.filter_enabled or params.baseline == "drift":
        check_finite(data)
        y = data.astype(np.float64)
        if params.filter_enabled:
            from calab.filter import bandpass_filter

            y = bandpass_filter(y, params.tau_rise, params.tau_decay, params.fs)
        if params.baseline == "drift":
            from calab.baseline import drift_baseline

            drift = np.asarray(
                drift_baseline(y, params.fs, params.baseline_window_s), dtype=np.float64
            )
            if drift.shape != y.shape or not np.isfinite(drift).all():
                raise RuntimeError(  # pragma: no cover - a defect of the drift estimator
                    f"drift_baseline returned shape {drift.shape} (or NaN) for traces {y.shape}"
                )
            y = y - drift
        data = np.ascontiguousarray(y)
    data, offset = center_rows(data)
    activity, b, iterations, converged, reconv = _solver.deconvolve(
        data,
        params.fs,
        params.tau_rise,
        params.tau_decay,
        lam,
        method=opts.method,
        max_iters=opts.max_iters,
        tol=opts.tol,
        n_threads=opts.n_threads,
        init=init,
        reconvolution=full,
    )
    baseline: npt.NDArray[np.float64] = b + offset
    if reconv is not None:
        reconv += offset[:, None]
    if drift is not None:
        baseline = drift + baseline[:, None]
        if reconv is not None:
            reconv += drift
    return DeconvolutionResult(activity, baseline, reconv, iterations.astype(np.int64), converged)


def squeeze(res: DeconvolutionResult) -> DeconvolutionResult:
    """Return the single row of a one-cell result, with scalar baseline/iterations/converged.

    A drift baseline (one value per frame) becomes its single row.
    """
    base = res.baseline[0]
    return DeconvolutionResult(
        res.activity[0],
        float(base) if np.ndim(base) == 0 else base,
        res.reconvolution[0] if res.reconvolution is not None else None,
        int(res.iterations[0]),
        bool(res.converged[0]),
    )


def solve_array(
    traces: npt.ArrayLike,
    params: Params,
    options: SolverOptions | None = None,
    warm_start: npt.ArrayLike | None = None,
    full: bool = False,
) -> Any:
    """:func:`solve_block` for 1-D or 2-D in-memory traces, shaped as the public API returns.

    Returns
    -------
    ndarray or DeconvolutionResult
        The activity (same shape as ``traces``) or, with ``full``, the result (per-cell fields
        as scalars for 1-D input).
    """
    data, was_1d = traces_2d(traces)
    if was_1d:
        check_finite(data[0])  # names the frame; 2-D input is checked (in parallel) in Rust
    init = None
    if warm_start is not None:
        init, _ = traces_2d(warm_start, "warm_start")
        if np.shape(warm_start) != np.shape(traces):
            raise ValueError(
                f"warm_start has shape {np.shape(warm_start)} but traces have shape "
                f"{np.shape(traces)}; pass the activity of a previous solve of the same traces"
            )
    res = solve_block(data, params, options, warm_start=init, full=full)
    if not full:
        return res.activity[0] if was_1d else res.activity
    return squeeze(res) if was_1d else res


def solve_full_unchecked(
    traces: Any, fs: float, tau_rise: float, tau_decay: float, lam: Any, **options: Any
) -> DeconvolutionResult:
    """:func:`calab.run_deconvolution_full` on arrays without its advisory warnings.

    For calab's own repeated solves of a recording checked where it came in: the tuning views
    and the estimate's sample cells. ``options``: ``warm_start``, ``baseline``,
    ``baseline_window_s`` and the :class:`calab.params.SolverOptions` fields.
    """
    warm = options.pop("warm_start", None)
    model = (options.pop("baseline", "constant"), options.pop("baseline_window_s", None))
    params = Params(fs, tau_rise, tau_decay, lam, False, *model)
    result: DeconvolutionResult = solve_array(traces, params, SolverOptions(**options), warm, True)
    return result
