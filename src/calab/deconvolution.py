"""Deconvolution of calcium traces with the CaTune model, solved exactly in Rust."""

from __future__ import annotations

import numbers
from typing import Any, Literal, NamedTuple

import numpy as np

from calab import _solver
from calab._validate import check_finite, lam_value, model_params, traces_2d
from calab.lazy import deconvolve_lazy, is_lazy

Method = Literal["active-set", "fista"]

_DEFAULTS: dict[str, tuple[int, float]] = {
    # (max_iters, tol). Active set: pivot cap and relative KKT feasibility tolerance.
    # FISTA: iteration cap and relative step ||s_k - s_k-1|| / ||s_k|| at which it stops.
    "active-set": (1000, 1e-9),
    "fista": (5000, 1e-4),
}


class DeconvolutionResult(NamedTuple):
    """Full output of :func:`run_deconvolution_full`.

    For 2-D input every field has a leading ``n_cells`` axis; for 1-D input ``activity`` and
    ``reconvolution`` are 1-D and the others are scalars.

    Attributes
    ----------
    activity : ndarray, shape (n_cells, n_frames) or (n_frames,)
        Non-negative scaled neural activity ``s``.
    baseline : ndarray, shape (n_cells,) or float
        Fitted scalar baseline ``b`` of each trace.
    reconvolution : ndarray, shape (n_cells, n_frames) or (n_frames,)
        The fit ``K s + b``.
    iterations : ndarray of int, shape (n_cells,) or int
        Solver iterations (pivots for the active-set method).
    converged : ndarray of bool, shape (n_cells,) or bool
        Whether the solver met its stopping rule.
    """

    activity: Any
    baseline: Any
    reconvolution: Any
    iterations: Any
    converged: Any


def _options(
    method: str, max_iters: int | None, tol: float | None, n_threads: int | None
) -> tuple[int, float]:
    if method not in _DEFAULTS:
        raise ValueError(f"method must be 'active-set' or 'fista', got {method!r}")
    default_iters, default_tol = _DEFAULTS[method]
    if max_iters is None:
        max_iters = default_iters
    if isinstance(max_iters, bool) or not isinstance(max_iters, numbers.Integral):
        raise TypeError(f"max_iters must be an integer >= 1, got {max_iters!r}")
    if max_iters < 1:
        raise ValueError(f"max_iters must be at least 1, got {max_iters}")
    if tol is None:
        tol = default_tol
    if not isinstance(tol, numbers.Real) or not np.isfinite(tol) or tol <= 0:
        raise ValueError(f"tol must be a positive number, got {tol!r}")
    if n_threads is not None and (
        isinstance(n_threads, bool) or not isinstance(n_threads, numbers.Integral) or n_threads < 1
    ):
        raise ValueError(
            f"n_threads must be an integer >= 1 or None (all cores), got {n_threads!r}"
        )
    return int(max_iters), float(tol)


def _checked(
    fs: Any,
    tau_r: Any,
    tau_d: Any,
    lam: Any,
    method: str,
    max_iters: int | None,
    tol: float | None,
    n_threads: int | None,
) -> tuple[float, float, float, float, int, float]:
    """Validated (tau_rise, tau_decay, fs, lam, max_iters, tol) shared by both paths."""
    tr, td, f = model_params(tau_r, tau_d, fs)
    lam_ = lam_value(lam)
    iters, tol_ = _options(method, max_iters, tol, n_threads)
    return tr, td, f, lam_, iters, tol_


def _lazy(
    traces: Any,
    fs: float,
    tau_r: float,
    tau_d: float,
    lam: float,
    *,
    max_iters: int | None,
    tol: float | None,
    n_threads: int | None,
    method: str,
    warm_start: Any,
    full: bool,
) -> Any:
    """Validate eagerly, then build the lazy (dask / xarray) computation."""
    tr, td, f, lam_, iters, tol_ = _checked(
        fs, tau_r, tau_d, lam, method, max_iters, tol, n_threads
    )
    if warm_start is not None:
        raise ValueError("warm_start is not supported for dask or xarray input; pass numpy arrays")
    kwargs = dict(
        fs=f,
        tau_r=tr,
        tau_d=td,
        lam=lam_,
        max_iters=iters,
        tol=tol_,
        n_threads=n_threads,
        method=method,
    )
    return deconvolve_lazy(traces, kwargs, full)


def _solve(
    traces: Any,
    fs: float,
    tau_r: float,
    tau_d: float,
    lam: float,
    *,
    max_iters: int | None,
    tol: float | None,
    n_threads: int | None,
    method: str,
    warm_start: Any,
    reconvolution: bool,
) -> tuple[DeconvolutionResult, bool]:
    tr, td, f, lam_, iters, tol_ = _checked(
        fs, tau_r, tau_d, lam, method, max_iters, tol, n_threads
    )
    data, was_1d = traces_2d(traces)
    if was_1d:
        check_finite(data[0])  # names the frame; 2-D input is checked (in parallel) in Rust
    init = None
    if warm_start is not None:
        init, _ = traces_2d(warm_start, "warm_start")
        init = np.ascontiguousarray(init, dtype=np.float64)
        check_finite(init, "warm_start")
        if init.shape != data.shape:
            raise ValueError(
                f"warm_start has shape {np.shape(warm_start)} but traces have shape "
                f"{np.shape(traces)}; pass the activity of a previous solve of the same traces"
            )
    activity, baseline, iterations, converged, reconv = _solver.deconvolve(
        data,
        f,
        tr,
        td,
        lam_,
        method=method,
        max_iters=iters,
        tol=tol_,
        n_threads=n_threads,
        init=init,
        reconvolution=reconvolution,
    )
    return (
        DeconvolutionResult(activity, baseline, reconv, iterations.astype(np.int64), converged),
        was_1d,
    )


def run_deconvolution(
    traces: Any,
    fs: float,
    tau_r: float,
    tau_d: float,
    lam: float,
    *,
    max_iters: int | None = None,
    tol: float | None = None,
    n_threads: int | None = None,
    method: Method = "active-set",
    warm_start: Any = None,
) -> np.ndarray:
    """Deconvolve calcium traces; return the non-negative activity.

    Solves, per cell, ``min 1/2 ||y - K s - b||^2 + lam * G_dc * ||s||_1`` subject to
    ``s >= 0``, where ``K`` convolves with :func:`calab.build_kernel` and ``G_dc = sum(kernel)``.

    Parameters
    ----------
    traces : array_like, shape (n_cells, n_frames) or (n_frames,)
        Fluorescence traces, any real dtype and memory layout. A dask array or an xarray
        DataArray (dims named e.g. ``unit_id`` and ``frame``, in either order) gives back the
        same type, computed lazily chunk by chunk over cells (needs ``calab[dask]``).
    fs : float
        Sampling rate in Hz.
    tau_r, tau_d : float
        Kernel rise and decay time constants in seconds.
    lam : float
        Sparsity penalty (>= 0), the CaTune ``lambda``.
    max_iters : int, optional
        Iteration cap (default 1000 pivots for ``"active-set"``, which typically needs 10-40;
        FISTA default 5000). A cell that hits it is reported with ``converged=False`` and a
        feasible, non-optimal activity.
    tol : float, optional
        Active set: relative KKT feasibility tolerance (default 1e-9). FISTA: relative step
        at which it stops (default 1e-4).
    n_threads : int, optional
        Worker threads across cells (default: all cores). Results do not depend on it.
    method : {"active-set", "fista"}
        ``"active-set"`` (default) is exact and fast; ``"fista"`` is the reference algorithm.
    warm_start : array_like, same shape as ``traces``, optional
        Activity from a previous solve (e.g. with slightly different parameters).

    Returns
    -------
    activity : ndarray of float64, same shape as ``traces``
        Scaled neural activity (not spike counts).
    """
    return _run(
        traces, fs, tau_r, tau_d, lam, False,
        max_iters=max_iters, tol=tol, n_threads=n_threads, method=method, warm_start=warm_start,
    )  # fmt: skip


def run_deconvolution_full(
    traces: Any,
    fs: float,
    tau_r: float,
    tau_d: float,
    lam: float,
    *,
    max_iters: int | None = None,
    tol: float | None = None,
    n_threads: int | None = None,
    method: Method = "active-set",
    warm_start: Any = None,
) -> DeconvolutionResult:
    """Deconvolve calcium traces; return activity, baseline, reconvolution and diagnostics.

    Takes the same arguments as :func:`run_deconvolution`.

    Returns
    -------
    DeconvolutionResult
        ``activity``, ``baseline``, ``reconvolution`` (``K s + b``), ``iterations``,
        ``converged``; scalars for 1-D input, arrays over cells for 2-D input.
    """
    return _run(
        traces, fs, tau_r, tau_d, lam, True,
        max_iters=max_iters, tol=tol, n_threads=n_threads, method=method, warm_start=warm_start,
    )  # fmt: skip


def squeeze(res: DeconvolutionResult) -> DeconvolutionResult:
    """The single row of a one-cell result, with scalar baseline/iterations/converged."""
    return DeconvolutionResult(
        res.activity[0],
        float(res.baseline[0]),
        res.reconvolution[0] if res.reconvolution is not None else None,
        int(res.iterations[0]),
        bool(res.converged[0]),
    )


def _run(
    traces: Any,
    fs: float,
    tau_r: float,
    tau_d: float,
    lam: float,
    full: bool,
    **kwargs: Any,
) -> Any:
    """Both public functions: lazy inputs to :mod:`calab.lazy`, arrays to the Rust solver."""
    if is_lazy(traces):
        return _lazy(traces, fs, tau_r, tau_d, lam, full=full, **kwargs)
    res, was_1d = _solve(traces, fs, tau_r, tau_d, lam, reconvolution=full, **kwargs)
    if not full:
        return res.activity[0] if was_1d else res.activity
    return squeeze(res) if was_1d else res
