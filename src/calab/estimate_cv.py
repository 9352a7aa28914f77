"""How well a kernel predicts held-out frames of the recording it was estimated from.

:func:`heldout_score` scores one setting (``tau_rise``, ``tau_decay``, ``lam``, ``baseline``) on
traces without using the frames it is judged on. Short stretches of frames are held out
(:data:`HOLD_FRAMES` frames every :data:`HOLD_PERIOD`, a different offset in each fold); in the
trace that is deconvolved they are replaced by a straight line between the kept frames on either
side, so nothing of their values reaches the fit. The fit's reconvolution (``K s + baseline``) at
those frames is the kernel's prediction of them. With ``iterations > 1`` the held-out frames are
refilled with that prediction and the trace deconvolved again (expectation-maximisation towards
the fit that ignores the held-out frames).

The same straight line is the reference predictor: a kernel earns its keep by predicting the
held-out frames better than the line between their neighbours does. Two figures per cell:

- ``r2``: 1 - (held-out squared error) / (held-out frames' variance about their mean);
- ``gain``: 1 - (kernel's squared error) / (the straight line's squared error), positive when the
  kernel predicts better than interpolation.

A kernel too slow or too fast for the indicator, or a lambda that makes the fit ignore real
transients, predicts held-out frames worse; noise sets the floor (``mse`` cannot fall below the
noise variance). Scores are comparable between settings on the same traces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

HOLD_FRAMES = 1
"""Frames per held-out stretch (default)."""
HOLD_PERIOD = 4
"""One held-out stretch starts every this many frames (default)."""


@dataclass(frozen=True)
class HeldOut:
    """Prediction of held-out frames by a setting, per cell (arrays of shape (n_cells,)).

    Attributes
    ----------
    mse : ndarray
        Mean squared error of the kernel's prediction over the held-out frames.
    mse_line : ndarray
        The same for the straight line between each stretch's kept neighbours.
    var : ndarray
        Variance of the held-out frames about their mean.
    n_heldout : int
        Held-out frames per cell (over all folds).
    activity : ndarray, shape (n_cells, n_frames), or None
        The last fold's activity: a warm start for scoring a nearby setting on the same traces
        (``heldout_score(..., warm_start=)``).
    """

    mse: npt.NDArray[np.float64]
    mse_line: npt.NDArray[np.float64]
    var: npt.NDArray[np.float64]
    n_heldout: int
    activity: npt.NDArray[np.float64] | None = None

    @property
    def r2(self) -> npt.NDArray[np.float64]:
        """Share of the held-out frames' variance the kernel predicts (0 for a constant cell)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.var > 0, 1.0 - self.mse / self.var, 0.0)

    @property
    def gain(self) -> npt.NDArray[np.float64]:
        """1 - mse / mse_line: how much better than interpolation the kernel predicts."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.mse_line > 0, 1.0 - self.mse / self.mse_line, 0.0)


def heldout_mask(n_frames: int, fold: int, hold_frames: int, period: int) -> np.ndarray:
    """Boolean mask of the frames fold ``fold`` holds out (never the first or last frame)."""
    t = np.arange(n_frames)
    mask = (t - fold * hold_frames) % period < hold_frames
    mask[0] = mask[-1] = False
    return mask


def _line_fill(traces: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Each row with its masked frames replaced by the line between the nearest kept frames."""
    t = np.arange(traces.shape[1])
    kept = np.flatnonzero(~mask)
    out: np.ndarray = traces.copy()
    for i in range(traces.shape[0]):
        out[i, mask] = np.interp(t[mask], kept, traces[i, kept])
    return out


def heldout_score(
    traces: Any,
    fs: float,
    tau_rise: float,
    tau_decay: float,
    lam: float | npt.ArrayLike,
    baseline: str = "constant",
    *,
    folds: int = 1,
    hold_frames: int = HOLD_FRAMES,
    period: int = HOLD_PERIOD,
    iterations: int = 1,
    tol: float | None = None,
    warm_start: npt.ArrayLike | None = None,
) -> HeldOut:
    """Score a setting by how well it predicts frames held out of the fit.

    Parameters
    ----------
    traces : array_like, shape (n_cells, n_frames) or (n_frames,)
    fs : float
        Sampling rate in Hz.
    tau_rise, tau_decay : float
        Kernel time constants in seconds.
    lam : float or array_like, shape (n_cells,)
        Sparsity penalty (one value, or one per cell).
    baseline : {"constant", "drift"}
        Baseline mode of the deconvolution.
    folds : int
        Number of folds, each holding out ``hold_frames`` frames every ``period`` at its own
        offset (at most ``period // hold_frames`` folds; they then cover every frame once).
    hold_frames, period : int
        Length of each held-out stretch and the spacing of their starts, in frames.
    iterations : int
        Deconvolutions per fold; after the first, the held-out frames are refilled with the
        prediction.
    tol : float, optional
        Solver tolerance (:func:`calab.run_deconvolution`'s ``tol``; default the solver's).
    warm_start : array_like, shape (n_cells, n_frames), optional
        Activity of a solve of the same traces with a nearby setting (e.g. another score's
        ``activity``): the solver starts from it (fewer pivots; the score is the same to the
        solver's tolerance). Each later solve starts from the one before.

    Returns
    -------
    HeldOut
        Per-cell ``mse``, ``mse_line``, ``var``, the last fold's ``activity`` and the derived
        ``r2`` and ``gain``.
    """
    y = np.atleast_2d(np.asarray(traces, dtype=np.float64))
    if not 1 <= hold_frames < period:
        raise ValueError(f"need 1 <= hold_frames < period, got {hold_frames}, {period}")
    if not 1 <= folds <= period // hold_frames:
        raise ValueError(f"folds must be 1..{period // hold_frames}, got {folds}")
    if iterations < 1:
        raise ValueError(f"iterations must be >= 1, got {iterations}")
    n_cells, n = y.shape
    sse = np.zeros(n_cells)
    sse_line = np.zeros(n_cells)
    held: list[np.ndarray] = []
    warm = None if warm_start is None else np.asarray(warm_start, dtype=np.float64)
    for fold in range(folds):
        mask = heldout_mask(n, fold, hold_frames, period)
        line = _line_fill(y, mask)
        setting = (fs, tau_rise, tau_decay, lam, baseline)
        pred, warm = _fit_without(y, setting, mask, iterations, tol, warm)
        sse += np.sum((y[:, mask] - pred[:, mask]) ** 2, axis=1)
        sse_line += np.sum((y[:, mask] - line[:, mask]) ** 2, axis=1)
        held.append(y[:, mask])
    values = np.concatenate(held, axis=1)
    count = values.shape[1]
    return HeldOut(sse / count, sse_line / count, values.var(axis=1), count, warm)


def heldout_prediction(
    traces: np.ndarray,
    fs: float,
    tau_rise: float,
    tau_decay: float,
    lam: float | npt.ArrayLike,
    baseline: str,
    mask: np.ndarray,
    iterations: int = 1,
    tol: float | None = None,
) -> np.ndarray:
    """Return the fit's reconvolution (n_cells, n_frames), the ``mask`` frames kept out of it.

    ``traces`` is 2-D float64. The masked frames are first filled with the line between their
    kept neighbours, then (``iterations > 1``) with the previous prediction.
    """
    setting = (fs, tau_rise, tau_decay, lam, baseline)
    return _fit_without(traces, setting, mask, iterations, tol)[0]


def _fit_without(
    traces: np.ndarray,
    setting: tuple[float, float, float, Any, str],
    mask: np.ndarray,
    iterations: int,
    tol: float | None,
    warm: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`heldout_prediction` and the last solve's activity; solves start from ``warm``.

    ``setting``: (fs, tau_rise, tau_decay, lam, baseline).
    """
    from calab.solve import solve_full_unchecked

    fs, tau_rise, tau_decay, lam, baseline = setting
    filled = _line_fill(traces, mask)
    pred = filled
    act = np.zeros_like(traces)
    for _ in range(iterations):
        res = solve_full_unchecked(
            filled, fs, tau_rise, tau_decay, lam, baseline=baseline, tol=tol, warm_start=warm
        )
        warm = act = np.atleast_2d(np.asarray(res.activity, dtype=np.float64))
        pred = np.atleast_2d(np.asarray(res.reconvolution, dtype=np.float64))
        filled = np.where(mask[None, :], pred, traces)
    return pred, act
