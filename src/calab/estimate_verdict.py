"""The verdict on an estimate: can it be trusted, and which values did the data resolve.

:func:`judge` looks at what :func:`calab.estimate_parameters` found and at the traces that
measured the kernel (the estimate's sample of the most active cells); never at any truth, only
at what the data say. What it checks:

1. **Calcium-like transients.** Calcium transients go up, and they rise faster than they decay.
   Noise, sines, steps and other symmetric signals have neither property; a sign-flipped
   recording or a sawtooth drift has the wrong one. On the drift-free sample traces (averaged
   over 50 ms and over 200 ms, :data:`EVENT_SCALES_S`) two skewnesses are measured: of the
   values (events go up) and of their changes over the same time (rises are steeper than
   decays), each over its standard error under a symmetric process with the trace's own
   autocorrelation (a z score), combined over the cells. One of the two must reach
   :data:`MIN_Z` (a slow indicator's long decay widens the values' null; the changes still
   show its fast rise), and neither may be negative at that level (events that go down, or
   fall faster than they rise); with at least one cell whose peak stands out of its noise
   (``no_transients``), that is "transients found".
2. **Values at a bound** of what a kernel can be: a rise within a factor
   :data:`MAX_RISE_OVER_DECAY` of the decay (the two no longer separate), a decay longer than
   :data:`MAX_DECAY_S` (no calcium indicator decays that slowly: slow drift or steps do), or
   no kernel at all (the kernel estimate's own error).
3. **Held-out prediction** (:func:`calab.estimate_cv.heldout_score`): the share of the variance
   of held-out frames that the kernel predicts, per sample cell (``r2``); its median must
   reach :data:`MIN_R2` (noise alone gives 0; choosing the most active cells of a large
   recording of noise can fake check 1, never this).
4. **Resolution.** The kernel is measured again on each half of the recording (at most
   :data:`SPLIT_CELLS` sample cells, those it predicts best); a time constant is *resolved*
   when both halves agree with it within :data:`SPLIT_TOLERANCE`, the rise only when it spans
   at least :data:`RISE_RESOLVED_FRAMES` frames (a rise shorter than a frame leaves no trace in
   the samples that the time to peak could measure) and the decay only when it spans
   :data:`DECAY_RESOLVED_FRAMES`. The noise SD is resolved when the spectrum it is measured on
   is flat (:data:`NOISE_FLATNESS`, beyond its sampling error): calcium still carrying power
   there inflates it.
5. **Near-constant cells** (dead ROIs): a noise SD below :data:`NEAR_CONSTANT` of the
   recording's largest. They are flagged with ``no_transients`` and left out of the
   recording-wide lambda.

When check 1, 2 or 3 fails the estimate cannot be trusted: the kernel is replaced by the
documented safe choice (:data:`FALLBACK_TAU_RISE`, :data:`FALLBACK_TAU_DECAY`: the tuner's
default, a GCaMP6f-like kernel), lambda is recomputed for it (the same noise-calibrated
threshold), and :func:`calab.estimate_parameters` warns with :class:`UnreliableEstimateWarning`
naming what failed and what to do.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

FALLBACK_TAU_RISE = 0.05
"""Rise (s) used when the estimate cannot be trusted: the tuner's default (GCaMP6f-like)."""
FALLBACK_TAU_DECAY = 0.5
"""Decay (s) used when the estimate cannot be trusted."""
MAX_DECAY_S = 5.0
"""Longest plausible decay in seconds (GCaMP6s decays in about 1.5 s; nuclear indicators in 2-4)."""
MAX_RISE_OVER_DECAY = 0.8
"""A rise longer than this share of the decay: the two time constants no longer separate."""
MIN_Z = 4.0
"""z statistic (skewness over its null standard error) each transient property must reach."""
MIN_R2 = 0.01
"""Median share of held-out frames' variance the kernel must predict in the sample cells."""
EVENT_SCALES_S = (0.05, 0.2)
"""Averaging windows and lags (s, at least a frame) of the transient checks (the best counts)."""
SPLIT_CELLS = 8
"""At most this many sample cells (those the kernel predicts best) are measured again per half."""
SPLIT_TOLERANCE = 0.10
"""Largest relative difference between a half's time constant and the estimate's (resolved)."""
RISE_RESOLVED_FRAMES = 1.0
"""A rise shorter than this many frames is not resolved at the frame rate."""
DECAY_RESOLVED_FRAMES = 2.0
"""A decay shorter than this many frames is not resolved at the frame rate."""
NOISE_FLATNESS = 0.15
"""Noise band [fs/4, fs/2]: excess power at its low end over its high end (share) still flat."""
NEAR_CONSTANT = 1e-6
"""Noise SD below this share of the recording's largest: a near-constant cell (dead ROI)."""


class UnreliableEstimateWarning(UserWarning):
    """The estimate could not be trusted; the safe default kernel was used instead.

    ``quality`` holds the verdict (:class:`EstimateQuality`) that failed.
    """

    def __init__(self, message: str, quality: EstimateQuality | None = None) -> None:
        super().__init__(message)
        self.quality = quality


@dataclass(frozen=True)
class EstimateQuality:
    """How far an estimate can be trusted (``ParameterEstimate.quality``).

    Attributes
    ----------
    trusted : bool
        False when the kernel could not be measured (see ``problems``); the kernel is then
        the safe default (``fallback``) and :func:`calab.estimate_parameters` warned.
    fallback : bool
        The returned kernel is :data:`FALLBACK_TAU_RISE` / :data:`FALLBACK_TAU_DECAY`, not the
        measured one (``measured`` holds that).
    problems : tuple of str
        Why the estimate cannot be trusted (empty when ``trusted``).
    notes : tuple of str
        What the data did not resolve, which does not stop the parameters from being used.
    rise_resolved, decay_resolved, noise_resolved : bool
        Whether the data resolve each value (see the module docstring).
    measured : tuple of float
        (tau_rise, tau_decay) in seconds as measured, before any fallback.
    transients : ndarray of bool, shape (n_cells,)
        Per cell: a transient stands out of the noise (``~no_transients``).
    near_constant : ndarray of bool, shape (n_cells,)
        Per cell: a dead ROI (noise below :data:`NEAR_CONSTANT` of the largest).
    r2 : ndarray, shape (n_cells,)
        Per cell: share of held-out frames' variance the kernel predicts (NaN for cells
        outside the sample that measured the kernel).
    events_z, rise_z : float
        z statistics of "events go up" and "events rise faster than they decay" (check 1).
    split : tuple of float
        Largest relative difference of (rise, decay) between a half and the estimate
        (NaN when the halves could not be measured).
    """

    trusted: bool
    fallback: bool
    problems: tuple[str, ...]
    notes: tuple[str, ...]
    rise_resolved: bool
    decay_resolved: bool
    noise_resolved: bool
    measured: tuple[float, float]
    transients: npt.NDArray[np.bool_]
    near_constant: npt.NDArray[np.bool_]
    r2: npt.NDArray[np.float64]
    events_z: float
    rise_z: float
    split: tuple[float, float]

    @property
    def resolved(self) -> bool:
        """Every value (rise, decay, noise) resolved and the estimate trusted."""
        return self.trusted and self.rise_resolved and self.decay_resolved and self.noise_resolved

    def summary(self) -> str:
        """One line: the verdict, then its reasons."""
        if not self.trusted:
            tr, td = self.measured
            return (
                f"UNRELIABLE: {'; '.join(self.problems)} (measured rise {tr:.3g} s, decay "
                f"{td:.3g} s); default kernel {FALLBACK_TAU_RISE:g}/{FALLBACK_TAU_DECAY:g} s used"
            )
        r2 = self.r2[np.isfinite(self.r2)]
        head = "ok" if self.resolved else "usable"
        pred = f", held-out r2 {float(np.median(r2)):.2f}" if r2.size else ""
        tail = f": {'; '.join(self.notes)}" if self.notes else ""
        cells = f"{int(self.transients.sum())}/{self.transients.size} cells with transients"
        return f"{head} ({cells}{pred}){tail}"

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready summary (the CLI's ``--json``, the tuner's Auto badge)."""
        return {
            "trusted": self.trusted,
            "resolved": self.resolved,
            "fallback": self.fallback,
            "summary": self.summary(),
            "problems": list(self.problems),
            "notes": list(self.notes),
            "rise_resolved": self.rise_resolved,
            "decay_resolved": self.decay_resolved,
            "noise_resolved": self.noise_resolved,
            "n_near_constant": int(self.near_constant.sum()),
        }


def near_constant_cells(noise: np.ndarray) -> npt.NDArray[np.bool_]:
    """Cells whose noise SD is below :data:`NEAR_CONSTANT` of the recording's largest."""
    top = float(np.max(noise)) if noise.size else 0.0
    return np.asarray(noise <= NEAR_CONSTANT * top)


def _z_skew(x: np.ndarray) -> np.ndarray:
    """Skewness of each row over its standard error under a symmetric (Gaussian) process.

    For a Gaussian process with autocorrelation ``rho`` the sample skewness of ``m`` values has
    variance about ``6 sum_k rho(k)**3 / m``: slow or periodic signals (a sine, drift) get a
    wide null, white noise the narrowest.
    """
    from calab.estimate_kernel import _autocov

    m = x.shape[1]
    acov = _autocov(x, max(1, m // 4))
    var = acov[:, 0]
    ok = var > 0
    rho = np.where(ok[:, None], acov / np.where(ok, var, 1.0)[:, None], 0.0)
    spread = np.maximum(1.0 + 2.0 * np.sum(rho[:, 1:] ** 3, axis=1), 0.5)
    xc = x - x.mean(axis=1, keepdims=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        g = np.where(ok, np.mean(xc**3, axis=1) / np.where(ok, var, 1.0) ** 1.5, 0.0)
    return np.asarray(g / np.sqrt(6.0 * spread / m))


def transient_shape(sample: np.ndarray, fs: float) -> tuple[float, float, float]:
    """Return z statistics that events go up and rise faster than they decay (check 1).

    ``sample``: drift-free traces (n, n_frames). Returns the largest z of the values'
    skewness, and the largest and smallest z of the changes' skewness, over
    :data:`EVENT_SCALES_S` (each z combines the cells: sum over sqrt(n)).
    """
    zs = [_shape_at(sample, max(1, round(s * fs))) for s in EVENT_SCALES_S]
    return max(z[0] for z in zs), max(z[1] for z in zs), min(z[1] for z in zs)


def _shape_at(sample: np.ndarray, k: int) -> tuple[float, float]:
    """Return z of the skewness of values and of changes, traces averaged over ``k`` frames."""
    if sample.shape[1] < 2 * k + 16:
        return 0.0, 0.0
    if k > 1:
        c = np.cumsum(sample, axis=1)
        smooth = (c[:, k:] - c[:, :-k]) / k
    else:
        smooth = sample
    step = smooth[:, k:] - smooth[:, :-k]
    root = math.sqrt(sample.shape[0])
    return float(_z_skew(smooth).sum() / root), float(_z_skew(step).sum() / root)


def _split_kernels(
    raw: np.ndarray, noise: np.ndarray, fs: float, kernel: tuple[float, float]
) -> tuple[float, float]:
    """Largest relative difference of (rise, decay) between each half's kernel and ``kernel``."""
    from calab.estimate_kernel import estimate_kernel

    half = raw.shape[1] // 2
    diffs = []
    for part in (raw[:, :half], raw[:, half:]):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tr, td = estimate_kernel(np.ascontiguousarray(part), noise, fs)
        except ValueError:
            return math.nan, math.nan
        diffs.append((abs(tr / kernel[0] - 1.0), abs(td / kernel[1] - 1.0)))
    return max(d[0] for d in diffs), max(d[1] for d in diffs)


def _noise_flatness(
    bands: np.ndarray, edges: np.ndarray, noise: np.ndarray, n_frames: int
) -> tuple[float, float]:
    """Excess power at the low end of [fs/4, fs/2] over its high end, pooled, and its SE.

    Periodogram bins of white noise are exponential (relative SD 1): the SE of the ratio of
    two pooled means of ``m`` bins each is about ``sqrt(2 / m)``.
    """
    centres = 0.5 * (edges[:-1] + edges[1:])
    fs = 2.0 * edges[-1]
    upper = np.flatnonzero(centres >= fs / 4)
    ok = noise > 0
    if upper.size < 4 or not ok.any():
        return math.inf, math.inf
    norm = bands[ok][:, upper] / (noise[ok, None] ** 2)
    low = float(norm[:, :2].mean())
    high = float(norm[:, -2:].mean())
    bins = max(1.0, 2 * (edges[1] - edges[0]) * n_frames / fs * int(ok.sum()))
    return (low / high - 1.0 if high > 0 else math.inf), math.sqrt(2.0 / bins)


def judge(
    sample: np.ndarray,
    sample_noise: np.ndarray,
    sample_fs: float,
    kernel: tuple[float, float] | str,
    *,
    fs: float,
    noise: np.ndarray,
    no_transients: np.ndarray,
    near_constant: np.ndarray,
    sample_idx: np.ndarray,
    bands: np.ndarray,
    edges: np.ndarray,
) -> EstimateQuality:
    """Judge a measured kernel (see the module docstring).

    Parameters
    ----------
    sample : ndarray, shape (n_sample, n_sample_frames)
        The sample traces that measured the kernel (drift not removed), at ``sample_fs``.
    sample_noise : ndarray, shape (n_sample,)
        Their noise SDs.
    sample_fs : float
        Their sampling rate in Hz (the recording's, or lower where the estimate averaged
        frames to measure the kernel).
    kernel : (float, float) or str
        Measured (tau_rise, tau_decay) in seconds, or why no kernel could be measured.
    fs : float
        The recording's sampling rate in Hz.
    noise : ndarray, shape (n_cells,)
        Noise SD of every cell (at ``fs``).
    no_transients, near_constant : ndarray of bool, shape (n_cells,)
        Per-cell flags of the estimate.
    sample_idx : ndarray of int, shape (n_sample,)
        Rows of ``sample`` among all cells.
    bands, edges : ndarray
        Mean periodogram of every cell in bands over [fs/8, fs/2] and the band edges (Hz).
    """
    from calab.baseline import drift_baseline
    from calab.estimate_cv import heldout_score
    from calab.estimate_kernel import LAM_NOISE_SDS, lam_scale

    tr, td = (math.nan, math.nan) if isinstance(kernel, str) else kernel
    n_cells = noise.size
    problems: list[str] = []
    notes: list[str] = []
    live = ~near_constant[sample_idx]
    resid = sample[live] - drift_baseline(sample[live], sample_fs) if live.any() else sample[:0]
    events_z, rise_z, fall_z = (
        transient_shape(resid, sample_fs) if resid.shape[0] else (0.0, 0.0, 0.0)
    )
    if np.all(no_transients):
        problems.append("no cell has a transient that stands out of its noise")
    elif max(events_z, rise_z) < MIN_Z:
        problems.append(
            f"no upward, fast-rising transients (z = {events_z:.1f}, {rise_z:.1f}): noise, a "
            "symmetric signal or sign-flipped traces"
        )
    elif events_z <= -MIN_Z or (rise_z < MIN_Z and fall_z <= -MIN_Z):
        problems.append(
            f"events go down or fall faster than they rise (z = {events_z:.1f}, {fall_z:.1f}): "
            "not calcium transients (sign-flipped traces, a sawtooth?)"
        )
    if isinstance(kernel, str):
        problems.append(f"no kernel could be measured ({kernel.split(';')[0]})")
    if tr >= MAX_RISE_OVER_DECAY * td:
        problems.append(f"rise and decay do not separate (rise {tr:.3g} s, decay {td:.3g} s)")
    if td > MAX_DECAY_S:
        problems.append(
            f"decay {td:.3g} s is longer than any calcium indicator's (over {MAX_DECAY_S:g} s): "
            "slow drift or steps"
        )
    r2 = np.full(n_cells, np.nan)
    if not problems:
        lam = LAM_NOISE_SDS * lam_scale(tr, td, sample_fs) * sample_noise
        r2[sample_idx] = heldout_score(sample, sample_fs, tr, td, lam).r2
        r2_sample = float(np.median(r2[sample_idx][live])) if live.any() else 0.0
        if r2_sample < MIN_R2:
            problems.append(
                f"the kernel predicts held-out frames no better than their mean (r2 "
                f"{r2_sample:.3f}): no transients to measure"
            )
    trusted = not problems
    split = (math.nan, math.nan)
    if trusted:
        # The SPLIT_CELLS sample cells the kernel predicts best: bounded cost.
        best = np.sort(np.argsort(-np.nan_to_num(r2[sample_idx], nan=-np.inf))[:SPLIT_CELLS])
        split = _split_kernels(sample[best], sample_noise[best], sample_fs, (tr, td))
    rise_ok = trusted and split[0] <= SPLIT_TOLERANCE and tr * fs >= RISE_RESOLVED_FRAMES
    decay_ok = trusted and split[1] <= SPLIT_TOLERANCE and td * fs >= DECAY_RESOLVED_FRAMES
    n_frames = round(sample.shape[1] * fs / sample_fs)
    flat, flat_se = _noise_flatness(bands[sample_idx], edges, noise[sample_idx], n_frames)
    noise_ok = trusted and flat + 2.0 * flat_se <= NOISE_FLATNESS
    if trusted:
        if rise_z < MIN_Z:
            notes.append(f"rises not clearly faster than decays (z = {rise_z:.1f})")
        if tr * fs < RISE_RESOLVED_FRAMES:
            notes.append(f"rise {tr * fs:.2g} frames, not resolved at {fs:g} Hz")
        elif not rise_ok:
            notes.append(f"rise not resolved (halves differ by {split[0]:.0%})")
        if td * fs < DECAY_RESOLVED_FRAMES:
            notes.append(f"decay {td * fs:.2g} frames, not resolved at {fs:g} Hz")
        elif not decay_ok:
            notes.append(f"decay not resolved (halves differ by {split[1]:.0%})")
        if not noise_ok:
            notes.append("noise SD uncertain (calcium power near fs/4)")
    n_dead = int(near_constant.sum())
    if n_dead:
        notes.append(f"{n_dead} near-constant cells left out of lambda")
    return EstimateQuality(
        trusted=trusted,
        fallback=not trusted,
        problems=tuple(problems),
        notes=tuple(notes),
        rise_resolved=bool(rise_ok),
        decay_resolved=bool(decay_ok),
        noise_resolved=bool(noise_ok),
        measured=(float(tr), float(td)),
        transients=np.asarray(~no_transients),
        near_constant=np.asarray(near_constant),
        r2=r2,
        events_z=float(events_z),
        rise_z=float(rise_z),
        split=(float(split[0]), float(split[1])),
    )


def warn_unreliable(quality: EstimateQuality, stacklevel: int) -> None:
    """Warn that the estimate fell back to the default kernel, naming why and what to do."""
    message = (
        "the estimate cannot be trusted: "
        + "; ".join(quality.problems)
        + f". calab used the default kernel (rise {FALLBACK_TAU_RISE:g} s, decay "
        f"{FALLBACK_TAU_DECAY:g} s) with the noise-calibrated lambda; check that these are "
        "calcium traces (right sign, right frame rate) and pass your indicator's tau_rise and "
        "tau_decay yourself, or tune them with calab.tune()"
    )
    warnings.warn(UnreliableEstimateWarning(message, quality), stacklevel=stacklevel + 1)
