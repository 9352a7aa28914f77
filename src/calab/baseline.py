"""Drift-following baselines for calcium traces (maximin over a window in seconds).

The baseline of a trace is estimated as in suite2p's ``maximin`` mode: the trace is smoothed
lightly (a boxcar over ``smooth_s`` seconds, which tames the noise that would otherwise pull a
running minimum down), then a running minimum and a running maximum over ``window_s`` seconds
follow the slow floor under the transients. They run on samples of the smoothed trace taken
every half smoothing window; the result is smoothed (no steps) and interpolated back to every
frame. Near the two ends, where the windows are cut short, the baseline is continued by a line
fitted to the next half window. Running minima and maxima use the van Herk / Gil-Werman block
algorithm, vectorised over cells: O(n_frames) per cell whatever the window.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

import numpy as np

from calab._validate import positive

DEFAULT_WINDOW_S = 30.0
DEFAULT_SMOOTH_S = 0.5


def _running_extreme(x: np.ndarray, width: int, op: Any, fill: float) -> np.ndarray:
    """Centred running ``op`` (np.minimum or np.maximum) over ``width`` frames along axis 1.

    Frames beyond the edges count as ``fill`` (+inf for a minimum, -inf for a maximum), so the
    window shrinks at the edges instead of reflecting the trace.
    """
    n_cells, n = x.shape
    # A centred window of 2n - 1 frames already covers the whole row from every frame: a wider
    # one gives the same result, so the window never costs more memory than the row.
    width = min(width, 2 * n - 1)
    if width <= 1:
        return x.copy()
    left = (width - 1) // 2
    # Pad so that window i covers padded[i : i + width]; then round up to whole blocks.
    total = n + width - 1
    n_blocks = -(-total // width)
    padded = np.full((n_cells, n_blocks * width), fill, dtype=x.dtype)
    padded[:, left : left + n] = x
    blocks = padded.reshape(n_cells, n_blocks, width)
    prefix = op.accumulate(blocks, axis=2).reshape(n_cells, -1)
    # Suffix extremes: prefix extremes of the reversed row, read back reversed (views only).
    rev = padded[:, ::-1].reshape(n_cells, n_blocks, width)
    suffix = op.accumulate(rev, axis=2).reshape(n_cells, -1)[:, ::-1]
    # Window [i, i + width - 1] spans at most two blocks: suffix of the first, prefix of the last.
    return op(suffix[:, :n], prefix[:, width - 1 : width - 1 + n])


def boxcar(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average over ``width`` frames along axis 1, shrinking at the edges."""
    n = x.shape[1]
    if width <= 1:
        return np.array(x, dtype=np.float64, copy=True)
    left = (width - 1) // 2
    right = width - 1 - left
    c = np.zeros((x.shape[0], n + 1), dtype=np.float64)
    np.cumsum(x, axis=1, out=c[:, 1:])
    out = np.empty((x.shape[0], n), dtype=np.float64)
    if n > width:  # interior: whole windows, by slicing (no gathers)
        np.subtract(c[:, width:], c[:, : n + 1 - width], out=out[:, left : n - right])
        out[:, left : n - right] /= width
    idx = np.concatenate((np.arange(min(left, n)), np.arange(max(n - right, min(left, n)), n)))
    if n <= width:
        idx = np.arange(n)
    lo = np.maximum(idx - left, 0)
    hi = np.minimum(idx + right + 1, n)
    out[:, idx] = (c[:, hi] - c[:, lo]) / (hi - lo)
    return out


def _frames(seconds: float, fs: float) -> int:
    """Odd number of frames closest to ``seconds * fs`` (odd: the window is centred exactly)."""
    return 2 * int(round(seconds * fs / 2)) + 1


def _extend_edges(base: np.ndarray, half: int) -> np.ndarray:
    """Replace the first and last ``half`` frames by lines fitted to the next ``half`` frames.

    Near an edge the running windows shrink, so the maximin stops following a trend there
    (after a decreasing start it sits below the truth by the trend's fall over half a window).
    The interior baseline is free of transients, so a line through it continues the trend.
    """
    n = base.shape[1]
    if half < 2 or n < 4 * half:
        return base
    out = base  # modified in place: the caller's array is a fresh one
    frames = np.arange(n, dtype=np.float64)
    for fit, edge in ((slice(half, 2 * half), slice(0, half)),
                      (slice(n - 2 * half, n - half), slice(n - half, n))):  # fmt: skip
        t = frames[fit]
        tc = t - t.mean()
        seg = base[:, fit]
        slope = (seg @ tc) / float(tc @ tc)
        out[:, edge] = seg.mean(axis=1, keepdims=True) + slope[:, None] * (frames[edge] - t.mean())
    return out


def drift_baseline(
    traces: Any,
    fs: float,
    window_s: float | None = None,
    *,
    smooth_s: float | None = None,
) -> np.ndarray:
    """Slowly varying baseline under the calcium transients of each trace (maximin filter).

    Parameters
    ----------
    traces : array_like, shape (n_cells, n_frames) or (n_frames,)
        Fluorescence traces (any real dtype); no NaN or Inf.
    fs : float
        Sampling rate in Hz.
    window_s : float, optional
        Length in seconds of the running minimum and maximum (default 30 s). Each window
        should hold a pause in activity of a few decay times (else the baseline rides on the
        calcium that never decays: about 40 decay times, 60 s for GCaMP6s at moderate rates,
        is safe), and drifts faster than the window are not followed.
    smooth_s : float, optional
        Length in seconds of the boxcar that smooths the trace before the minimum and the
        baseline after the maximum (default 0.5 s, capped at a tenth of ``window_s``).

    Returns
    -------
    baseline : ndarray of float64, same shape as ``traces``
        Subtract it from ``traces`` to remove drift and photobleaching.

    Examples
    --------
    >>> import numpy as np, calab
    >>> t = np.arange(6000) / 30.0
    >>> y = 1.0 + 0.01 * t + 0.01 * np.random.default_rng(0).normal(size=t.size)
    >>> b = calab.drift_baseline(y, 30.0)
    >>> bool(np.abs(b - (1.0 + 0.01 * t))[300:-300].max() < 0.03)
    True
    """
    from calab._validate import check_finite, traces_2d

    f = positive(fs, "fs", "sampling rate in Hz, e.g. 30.0")
    window = DEFAULT_WINDOW_S if window_s is None else window_s
    w = positive(window, "window_s", "baseline window in seconds, e.g. 30.0")
    if smooth_s is None:
        sm = min(DEFAULT_SMOOTH_S, w / 10)
    else:
        if isinstance(smooth_s, bool) or not isinstance(smooth_s, numbers.Real):
            raise TypeError(f"smooth_s must be a number of seconds >= 0, got {smooth_s!r}")
        sm = float(smooth_s)
        if not math.isfinite(sm) or sm < 0:
            raise ValueError(f"smooth_s must be a finite number of seconds >= 0, got {smooth_s!r}")
    data, was_1d = traces_2d(traces)
    x = data.astype(np.float64, copy=False)
    check_finite(x if not was_1d else x[0])
    n_win = _frames(w, f)
    # Every step commutes with y -> a * y + c: work on rows scaled to [-1, 1], so that the
    # running sums of the boxcar neither overflow (traces near 1e308) nor lose the signal under
    # a large offset, then scale back.
    lo, hi = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
    mid = 0.5 * lo + 0.5 * hi
    half = 0.5 * hi - 0.5 * lo
    half[half == 0] = 1.0
    coarse = coarse_maximin((x - mid) / half, f, w, sm)
    base = _extend_edges(_interpolate(coarse.baseline, coarse.frames, x.shape[1]), n_win // 2)
    base *= half
    base += mid
    return base[0] if was_1d else base


class CoarseMaximin(NamedTuple):
    """The smoothed traces and their maximin baseline at frames ``frames`` (every half window)."""

    smooth: np.ndarray  # (n_cells, n_samples) boxcar-smoothed traces
    baseline: np.ndarray  # (n_cells, n_samples) maximin of ``smooth``
    frames: np.ndarray  # (n_samples,) frame index of each sample
    n_smooth: int  # boxcar length in frames


def coarse_maximin(x: np.ndarray, fs: float, window_s: float, smooth_s: float) -> CoarseMaximin:
    """Maximin on samples of the smoothed traces (validated 2-D float64 ``x``).

    The smoothed trace varies little within half a smoothing window, so the running minimum
    and maximum run on samples taken every half window: cheap whatever the window.
    """
    n_smooth = _frames(smooth_s, fs) if smooth_s > 0 else 1
    n_win = _frames(window_s, fs)
    smooth = boxcar(x, n_smooth)
    step = max(1, n_smooth // 2)
    n = x.shape[1]
    pos = np.arange(0, n, step)
    if pos[-1] != n - 1:
        pos = np.append(pos, n - 1)
    coarse = smooth[:, pos]
    n_win_coarse = 2 * int(round(n_win / step / 2)) + 1
    lower = _running_extreme(coarse, n_win_coarse, np.minimum, np.inf)
    upper = _running_extreme(lower, n_win_coarse, np.maximum, -np.inf)
    upper = boxcar(upper, 3 if step > 1 else n_smooth)
    return CoarseMaximin(coarse, upper, pos, n_smooth)


def _interpolate(values: np.ndarray, pos: np.ndarray, n: int) -> np.ndarray:
    """Linear interpolation of each row from frames ``pos`` to frames 0..n-1.

    ``pos`` is ``0, step, 2 step, ...`` plus ``n - 1`` at the end if not already there.
    """
    if pos.size == n:
        return np.array(values, dtype=np.float64, copy=True)
    step = int(pos[1] - pos[0])
    n_full = (n - 1) // step  # whole segments between regular samples
    out = np.empty((values.shape[0], n), dtype=np.float64)
    frac = np.arange(step) / step
    left = values[:, :n_full, None]
    right = values[:, 1 : n_full + 1, None]
    body = out[:, : n_full * step].reshape(values.shape[0], n_full, step)  # a view of out
    np.multiply(right - left, frac, out=body)
    body += left
    # The last, shorter segment: from the last regular sample to frame n - 1.
    start = n_full * step
    span = max(n - 1 - start, 1)
    tail = np.arange(n - start) / span
    v0 = values[:, n_full, None]
    v1 = values[:, -1, None]
    out[:, start:] = v0 + (v1 - v0) * tail
    return out
