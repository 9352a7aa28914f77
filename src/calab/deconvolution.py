"""Deconvolution of calcium traces with the CaTune model, solved exactly in Rust.

The public functions validate their arguments into :class:`calab.params.Params` and
:class:`calab.params.SolverOptions`, then hand in-memory arrays to
:func:`calab.solve.solve_block` and dask / xarray input to :mod:`calab.lazy`.
"""

from __future__ import annotations

from typing import Any

import numpy.typing as npt

from calab._validate import warn_implausible
from calab.estimate import warn_if_drifting
from calab.lazy import deconvolve_lazy, is_dataarray, is_lazy
from calab.params import BaselineMode, DeconvolutionResult, Method, Params, SolverOptions
from calab.solve import solve_array, squeeze

__all__ = [
    "DeconvolutionResult",
    "run_deconvolution",
    "run_deconvolution_full",
    "squeeze",
]


def run_deconvolution(
    traces: Any,
    fs: float,
    tau_r: float | None = None,
    tau_d: float | None = None,
    lam: float | npt.ArrayLike | None = None,
    max_iters: int | None = None,
    *,
    tau_rise: float | None = None,
    tau_decay: float | None = None,
    tol: float | None = None,
    n_threads: int | None = None,
    method: Method = "active-set",
    warm_start: Any = None,
    baseline: BaselineMode = "constant",
    baseline_window_s: float | None = None,
) -> Any:
    """Deconvolve calcium traces; return the non-negative activity.

    Solves, per cell, ``min 1/2 ||y - K s - b||^2 + lam * G_dc * ||s||_1`` subject to
    ``s >= 0``, where ``K`` convolves with :func:`calab.build_kernel` and ``G_dc = sum(kernel)``.

    Parameters
    ----------
    traces : array_like, shape (n_cells, n_frames) or (n_frames,)
        Fluorescence traces, any real dtype and memory layout. A dask array or an xarray
        DataArray (dims named e.g. ``unit_id`` and ``frame``, in either order) gives back the
        same type, computed lazily chunk by chunk over cells (needs dask:
        ``pip install "dask[array]"``).
    fs : float
        Sampling rate in Hz.
    tau_r, tau_d : float
        Kernel rise and decay time constants in seconds (the CaLab package's names).
        ``tau_rise=`` and ``tau_decay=`` (the names used everywhere else in calab) are
        accepted as keywords instead.
    lam : float or array_like, shape (n_cells,)
        Sparsity penalty (>= 0), the CaTune ``lambda``: one value, or one per cell.
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
    baseline : {"constant", "drift"}
        ``"constant"`` (default): the scalar baseline of the CaTune model. ``"drift"``: a
        slowly varying baseline per cell is removed before solving.
    baseline_window_s : float, optional
        Window in seconds of the drift estimate (``baseline="drift"`` only).

    Returns
    -------
    activity : ndarray of float64, same shape as ``traces``
        Scaled neural activity (not spike counts).
    """
    return _run(
        traces, fs, tau_r, tau_d, lam, max_iters, False,
        tau_rise=tau_rise, tau_decay=tau_decay, tol=tol, n_threads=n_threads, method=method,
        warm_start=warm_start, baseline=baseline, baseline_window_s=baseline_window_s,
    )  # fmt: skip


def run_deconvolution_full(
    traces: Any,
    fs: float,
    tau_r: float | None = None,
    tau_d: float | None = None,
    lam: float | npt.ArrayLike | None = None,
    max_iters: int | None = None,
    *,
    tau_rise: float | None = None,
    tau_decay: float | None = None,
    tol: float | None = None,
    n_threads: int | None = None,
    method: Method = "active-set",
    warm_start: Any = None,
    baseline: BaselineMode = "constant",
    baseline_window_s: float | None = None,
) -> DeconvolutionResult:
    """Deconvolve calcium traces; return activity, baseline, reconvolution and diagnostics.

    Takes the same arguments as :func:`run_deconvolution`.

    Returns
    -------
    DeconvolutionResult
        ``activity``, ``baseline``, ``reconvolution`` (``K s + baseline``), ``iterations``,
        ``converged``; scalars for 1-D input, arrays over cells for 2-D input. With
        ``baseline="drift"`` the baseline has the shape of ``traces``.
    """
    result: DeconvolutionResult = _run(
        traces, fs, tau_r, tau_d, lam, max_iters, True,
        tau_rise=tau_rise, tau_decay=tau_decay, tol=tol, n_threads=n_threads, method=method,
        warm_start=warm_start, baseline=baseline, baseline_window_s=baseline_window_s,
    )  # fmt: skip
    return result


def _run(
    traces: Any,
    fs: Any,
    tau_r: Any,
    tau_d: Any,
    lam: Any,
    max_iters: Any,
    full: bool,
    *,
    tau_rise: Any,
    tau_decay: Any,
    tol: Any,
    n_threads: Any,
    method: Any,
    warm_start: Any,
    baseline: Any,
    baseline_window_s: Any,
) -> Any:
    """Validate once for both public functions, then solve.

    Lazy input goes to :mod:`calab.lazy`, arrays to :func:`calab.solve.solve_block`.
    """
    rise = _one_of(tau_r, tau_rise, "tau_r", "tau_rise", "rise time in seconds, e.g. 0.05")
    decay = _one_of(tau_d, tau_decay, "tau_d", "tau_decay", "decay time in seconds, e.g. 0.5")
    if lam is None:  # left out (it has a default only so that tau_rise= can be a keyword)
        raise TypeError("lam must be a number >= 0 (the sparsity penalty, e.g. lam=0.01), got None")
    params = Params(fs, rise, decay, lam, False, baseline, baseline_window_s)
    options = SolverOptions(method, max_iters, tol, n_threads)
    shape = None if is_dataarray(traces) else getattr(traces, "shape", None)  # named dims: as named
    slip = warn_implausible(params.fs, params.tau_rise, params.tau_decay, shape, stacklevel=3)
    if params.baseline == "constant" and not slip:  # (the drift check assumes sound units)
        warn_if_drifting(traces, params.fs, params.tau_decay, stacklevel=3)
    return solve(traces, params, options, warm_start, full)


def _one_of(short: Any, long: Any, short_name: str, long_name: str, hint: str) -> Any:
    """Return the value of a parameter with two spellings (``tau_r``, ``tau_rise``): one only."""
    if short is not None and long is not None:
        raise TypeError(
            f"{short_name} and {long_name} are the same parameter ({hint}); pass only one"
        )
    if short is None and long is None:
        raise TypeError(f"missing the argument {short_name} (or {long_name}): the {hint}")
    return long if short is None else short


def solve(
    traces: Any,
    params: Params,
    options: SolverOptions,
    warm_start: Any = None,
    full: bool = False,
) -> Any:
    """Apply validated parameters to any traces.

    Dask / xarray input goes to :mod:`calab.lazy`, arrays to :func:`calab.solve.solve_array`
    (both filter first when ``filter_enabled``).
    """
    if is_lazy(traces):
        if warm_start is not None:
            raise ValueError(
                "warm_start is not supported for dask or xarray input; pass numpy arrays"
            )
        return deconvolve_lazy(traces, params, options, full)
    return solve_array(traces, params, options, warm_start, full)
