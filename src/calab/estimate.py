"""Parameters from the data: noise, drift, kernel time constants and sparsity of each cell.

:func:`estimate_parameters` needs only the traces and the frame rate. How it works:

1. **Noise** of each cell: the level of the power spectrum above ``fs / 4`` (where calcium
   transients carry little power), averaged in the log domain (robust to the few frequency
   bins that still hold signal) and corrected for the log-mean bias of a periodogram.
2. **Drift**: :func:`calab.drift_baseline` (maximin over 30 s). The estimate picks
   ``baseline="drift"`` when the deconvolution with it predicts held-out stretches of the sample
   cells better than with a constant baseline (:func:`calab.estimate_cv.heldout_score`, median
   cell): a drift that is not there, or the slow calcium of a cell that never rests (which a
   maximin eats), predicts worse.
3. **Kernel** (one for the recording, from a sample of the most active cells): see
   :mod:`calab.estimate_kernel`; the response to detected activity gives the rise, the
   tails of isolated transients the decay.
4. **Sparsity** per cell: ``lam = LAM_NOISE_SDS * noise * ||h|| / sum(h)``. With this
   lambda a candidate spike enters the solution only where the data, filtered with the
   kernel (the matched filter), exceed :data:`LAM_NOISE_SDS` noise SDs of that filter's
   output: the same false-alarm level for every cell, bright or dim, and for any kernel.
5. **Cells with no transients**: the drift-free trace averaged over 0.5 s (the smoothing of
   the drift estimate) never exceeds the level that noise alone reaches about once in as many
   independent samples, ``sqrt(2 ln m)`` SDs of that average (``m`` samples, two per 0.5 s).

No constant here was fitted to a particular recording: the thresholds are in noise SDs.
"""

from __future__ import annotations

import logging
import math
import numbers
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import numpy.typing as npt

from calab._validate import positive
from calab.baseline import DEFAULT_SMOOTH_S, DEFAULT_WINDOW_S
from calab.estimate_kernel import ESTIMATE_TOL, LAM_NOISE_SDS, estimate_kernel, lam_scale

if TYPE_CHECKING:
    from calab.estimate_verdict import EstimateQuality

logger = logging.getLogger(__name__)

MAX_SAMPLE_CELLS = 32
"""At most this many cells (the most active) measure the recording-wide kernel."""
MIN_FRAMES = 200
MIN_SECONDS = 10.0
MAX_KERNEL_FS = 400.0
"""The kernel is measured on the sample averaged down to at most this frame rate (Hz).

Its cost grows with the square of the frames a response spans (a system over the response's
lags); above this rate the fastest indicator presets (jGCaMP8f, rise about 10 ms) still rise over
about four frames, so averaging loses nothing the rise needs and bounds time and memory."""
_EULER_GAMMA = 0.5772156649015329


@dataclass(frozen=True, repr=False)
class ParameterEstimate:
    """Parameters estimated from a recording by :func:`estimate_parameters`.

    Attributes
    ----------
    tau_rise, tau_decay : float
        Kernel time constants in seconds, one kernel for the recording.
    lam : ndarray, shape (n_cells,)
        Sparsity penalty per cell, calibrated to the cell's noise (0 for a constant trace).
    noise : ndarray, shape (n_cells,)
        Noise standard deviation per cell, in the units of the traces.
    baseline : {"constant", "drift"}
        What ``run_deconvolution(..., baseline=)`` should use.
    no_transients : ndarray of bool, shape (n_cells,)
        True for cells in which no transient stands out of the noise.
    fs : float
        Sampling rate in Hz.
    params : dict
        The :func:`calab.load_export_params` dict: ``tau_rise``, ``tau_decay``, ``lambda_``
        (the median of ``lam`` over the cells with transients), ``fs``, ``filter_enabled``.
    n_sample : int
        Number of cells that measured the kernel.
    quality : calab.estimate_verdict.EstimateQuality or None
        The verdict: whether the estimate can be trusted, which values the data resolved,
        per-cell flags (``quality.summary()`` in one line). None for estimates built by hand.
    """

    tau_rise: float
    tau_decay: float
    lam: npt.NDArray[np.float64]
    noise: npt.NDArray[np.float64]
    baseline: str
    no_transients: npt.NDArray[np.bool_]
    fs: float
    n_sample: int
    quality: EstimateQuality | None = None
    params: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        """Fill ``params`` from the estimate (lambda: median over cells with transients)."""
        active = ~self.no_transients
        if not active.any() and self.quality is not None:
            active = ~self.quality.near_constant  # never a dead ROI's lambda
        pool = self.lam[active] if active.any() else self.lam
        object.__setattr__(
            self,
            "params",
            {
                "tau_rise": float(self.tau_rise),
                "tau_decay": float(self.tau_decay),
                "lambda_": float(np.median(pool)),
                "fs": float(self.fs),
                "filter_enabled": False,
            },
        )

    def __repr__(self) -> str:
        """Return a short summary (not the per-cell arrays) with the verdict."""
        n = int(np.size(self.lam))
        verdict = "" if self.quality is None else f", verdict: {self.quality.summary()}"
        noise = float(np.median(self.noise))
        return (
            f"ParameterEstimate(tau_rise={self.tau_rise:.4g} s, tau_decay={self.tau_decay:.4g} s, "
            f"lambda_={self.params['lambda_']:.4g} (median), noise={noise:.4g} "
            f"(median), baseline={self.baseline!r}, fs={self.fs:g} Hz, {n} cells, "
            f"{int(np.count_nonzero(self.no_transients))} without transients{verdict})"
        )


# --------------------------------------------------------------------------- input


def _as_2d(traces: Any) -> tuple[np.ndarray, bool]:
    from calab._validate import check_finite, traces_2d

    data, was_1d = traces_2d(traces)
    check_finite(data[0] if was_1d else data)
    return data.astype(np.float64, copy=False), was_1d


def _check_rate(fs: float) -> None:
    from calab.estimate_verdict import MAX_DECAY_S

    if fs * MAX_DECAY_S < 1.0:
        raise ValueError(
            f"fs={fs:g} Hz is one frame every {1 / fs:.3g} s, longer than calcium transients "
            f"last (the slowest indicators decay within about {MAX_DECAY_S:g} s): no kernel can "
            f"be measured. fs is in Hz: if {fs:g} s is the frame period, pass fs={1 / fs:.4g}"
        )


def _check_length(n_frames: int, fs: float) -> None:
    # In seconds, not frames: MIN_SECONDS * fs overflows an integer for absurd rates (1e308).
    if n_frames < MIN_FRAMES or n_frames / fs < MIN_SECONDS:
        raise ValueError(
            f"traces are too short to estimate parameters: {n_frames} frames at fs={fs:g} Hz "
            f"({n_frames / fs:.3g} s); need at least {MIN_SECONDS:g} s and {MIN_FRAMES} frames "
            "(check that fs is the frame rate in Hz)"
        )


class _Sample(NamedTuple):
    """The sample cells that measure the kernel, averaged to at most :data:`MAX_KERNEL_FS`."""

    traces: np.ndarray  # (n_sample, n_frames at fs)
    noise: np.ndarray  # (n_sample,) their noise SDs at fs
    fs: float


def _kernel_sample(sample: np.ndarray, noise: np.ndarray, fs: float) -> _Sample:
    """Return the sample averaged to at most :data:`MAX_KERNEL_FS` (its noise measured again)."""
    k = int(math.ceil(fs / MAX_KERNEL_FS))
    if k > 1:
        m = sample.shape[1] // k
        sample = sample[:, : m * k].reshape(sample.shape[0], m, k).mean(axis=2)
        fs = fs / k
        noise = _noise(sample, fs)
    return _Sample(sample, noise, fs)


def _measure(sample: _Sample) -> tuple[float, float, str]:
    """Kernel and baseline mode from the sample (:func:`_kernel_sample`).

    The kernel is :func:`estimate_kernel`'s; the baseline mode is the one whose deconvolution
    predicts held-out stretches of the sample better (:func:`_baseline_mode`).
    """
    tr, td = estimate_kernel(*sample)
    return tr, td, _baseline_mode(sample.traces, sample.fs, tr, td)


HOLDOUT_STRETCH_S = DEFAULT_SMOOTH_S
"""Held-out stretches that choose the baseline mode: as long as the drift estimate's smoothing
(the line between a stretch's neighbours then cannot follow the transients inside it)."""


def _baseline_mode(sample: np.ndarray, fs: float, tau_rise: float, tau_decay: float) -> str:
    """``"drift"`` when the drift-following deconvolution predicts held-out data better.

    Stretches of :data:`HOLDOUT_STRETCH_S` (one in four) are held out of the fit
    (:func:`calab.estimate_cv.heldout_score`); each cell compares its held-out squared error
    with each baseline mode, and the median cell decides. Following a drift that is not there
    (or that is slow calcium of a cell that never rests, which a maximin eats) predicts worse.
    """
    from calab.estimate_cv import heldout_score

    sd, bands, edges = _spectrum(sample, fs)
    noise = _refine_noise(sd, bands, edges, tau_rise, tau_decay, fs)
    lam = LAM_NOISE_SDS * noise * lam_scale(tau_rise, tau_decay, fs)
    hold = max(1, int(round(HOLDOUT_STRETCH_S * fs)))
    err = {
        mode: heldout_score(sample, fs, tau_rise, tau_decay, lam, mode, hold_frames=hold,
                            period=4 * hold, tol=ESTIMATE_TOL).mse
        for mode in ("constant", "drift")
    }  # fmt: skip
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.log(err["drift"] / err["constant"])
    ratio = ratio[np.isfinite(ratio)]
    return "drift" if ratio.size and float(np.median(ratio)) < 0 else "constant"


# --------------------------------------------------------------------------- noise


def noise_sd(traces: Any, fs: float) -> float | np.ndarray:
    """Noise standard deviation of each trace from its power spectrum above ``fs / 4``.

    Parameters
    ----------
    traces : array_like, shape (n_cells, n_frames) or (n_frames,)
    fs : float
        Sampling rate in Hz.

    Returns
    -------
    sd : ndarray, shape (n_cells,) or float for 1-D input
        White-noise SD: for white noise the periodogram's mean is the variance at every
        frequency, and the log-mean of an exponential variable is ``log(mean) - gamma``.
    """
    f = positive(fs, "fs", "sampling rate in Hz, e.g. 30.0")
    data, was_1d = _as_2d(traces)
    out = _noise(data, f)
    return float(out[0]) if was_1d else out


N_BANDS = 16


def _noise(data: np.ndarray, fs: float) -> np.ndarray:
    return _spectrum(data, fs)[0]


def _spectrum(data: np.ndarray, fs: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First noise estimate, plus mean periodogram in bands over [fs/8, fs/2] for refining.

    Returns (sd (n_cells,), band_power (n_cells, N_BANDS), band_edges (N_BANDS + 1,) in Hz).
    """
    n = data.shape[1]
    spec = np.fft.rfft(data - data.mean(axis=1, keepdims=True), axis=1)
    freqs = np.fft.rfftfreq(n, 1.0 / fs)
    power = np.abs(spec) ** 2 / n
    band = (freqs >= fs / 4) & (freqs < fs / 2)
    with np.errstate(divide="ignore"):
        mean_log = np.mean(np.log(power[:, band]), axis=1)
    sd = np.sqrt(np.exp(mean_log + _EULER_GAMMA))
    sd = np.where(np.isfinite(sd), sd, 0.0)
    edges = np.linspace(fs / 8, fs / 2, N_BANDS + 1)
    which = np.digitize(freqs, edges) - 1
    bands = np.zeros((data.shape[0], N_BANDS))
    for b in range(N_BANDS):
        sel = which == b
        if sel.any():
            bands[:, b] = power[:, sel].mean(axis=1)
    return sd, bands, edges


def _refine_noise(
    sd: np.ndarray, bands: np.ndarray, edges: np.ndarray, tau_rise: float, tau_decay: float,
    fs: float,
) -> np.ndarray:  # fmt: skip
    """Noise SD with the calcium's share of the high-frequency power taken out.

    A kernel whose rise is shorter than a frame leaves calcium power up to ``fs / 2``; with
    spikes roughly white, the periodogram is ``sigma^2 + S |H(f)|^2``. Fitting that line in
    ``|H|^2`` to the band means (weighted by their relative error) gives ``sigma^2`` as the
    intercept. Cells where the fit fails keep their first estimate.
    """
    d = math.exp(-1.0 / (fs * tau_decay))
    r = math.exp(-1.0 / (fs * tau_rise))
    centres = 0.5 * (edges[:-1] + edges[1:])
    z = np.exp(-2j * np.pi * centres / fs)
    gain = np.abs(d * z / (1 - d * z) - r * z / (1 - r * z)) ** 2
    out = sd.copy()
    design = np.stack([np.ones_like(gain), gain], axis=1)
    for i in range(bands.shape[0]):
        p = bands[i]
        if sd[i] <= 0 or not np.all(p > 0):
            continue
        w = 1.0 / p
        coef, *_ = np.linalg.lstsq(design * w[:, None], p * w, rcond=None)
        if coef[0] > 0 and coef[1] >= 0:
            out[i] = math.sqrt(coef[0])
    return out


# --------------------------------------------------------------------------- detection


# --------------------------------------------------------------------------- public


def estimate_parameters(
    traces: Any, fs: float, *, max_cells: int = MAX_SAMPLE_CELLS
) -> ParameterEstimate:
    """Estimate kernel, noise, sparsity and baseline mode from the recording itself.

    Parameters
    ----------
    traces : array_like, shape (n_cells, n_frames) or (n_frames,)
        Fluorescence traces (no NaN). A dask array or xarray DataArray is read one chunk of
        cells at a time (memory bounded by the chunk size and ``max_cells`` traces).
    fs : float
        Sampling rate in Hz.
    max_cells : int
        At most this many cells (the most active) measure the recording-wide kernel.

    Returns
    -------
    ParameterEstimate
        ``tau_rise``, ``tau_decay`` (s), ``lam`` and ``noise`` per cell, ``baseline``,
        ``no_transients`` per cell and the export ``params`` dict.

    Raises
    ------
    ValueError
        fs <= 0, NaN/Inf in the traces, traces too short (fewer than 200 frames or 10 s),
        or every trace constant.
    TypeError
        Non-numeric traces or fs.

    Examples
    --------
    >>> import calab
    >>> traces, _ = calab.simulate(20, 9000, 30.0, 0.05, 0.5, seed=1)
    >>> est = calab.estimate_parameters(traces, 30.0)
    >>> activity = calab.run_deconvolution(traces, 30.0, est.tau_rise, est.tau_decay,
    ...                                    est.lam, baseline=est.baseline)
    """
    f = positive(fs, "fs", "sampling rate in Hz, e.g. 30.0")
    from calab._validate import warn_implausible
    from calab.lazy import is_dataarray

    warn_implausible(f, shape=None if is_dataarray(traces) else getattr(traces, "shape", None))
    _check_rate(f)
    if isinstance(max_cells, bool) or not isinstance(max_cells, numbers.Integral) or max_cells < 1:
        raise ValueError(f"max_cells must be an integer >= 1, got {max_cells!r}")
    max_cells = int(max_cells)
    from calab.lazy import is_lazy

    if is_lazy(traces):
        return _estimate_lazy(traces, f, max_cells)
    data, _ = _as_2d(traces)
    _check_length(data.shape[1], f)
    data, scale = _unit_scale(data)
    stats = _cell_stats(data, f)
    _check_not_constant(stats.constant)
    sample_idx = _pick_sample(stats, max_cells)
    sample = _kernel_sample(data[sample_idx], stats.noise[sample_idx], f)
    return _finish(stats, _measure_or_why(sample), f, sample, sample_idx, scale)


@dataclass(frozen=True)
class _Stats:
    """Per-cell figures from one pass over the traces (one chunk of cells or all)."""

    noise: np.ndarray  # first estimate, from the spectrum above fs/4
    bands: np.ndarray  # (n_cells, N_BANDS) mean periodogram, to refine the noise
    edges: np.ndarray  # (N_BANDS + 1,) band edges in Hz
    drift_span: np.ndarray  # peak-to-peak span of the drift, in noise SDs
    activity_score: np.ndarray  # variance beyond the noise (smoothed trace), in noise variances
    constant: np.ndarray
    peak: np.ndarray  # largest value of the smoothed drift-free trace, in its noise SDs
    n_samples: int  # samples of the smoothed trace (about two per smoothing window)


def _cell_stats(data: np.ndarray, fs: float, window_s: float = DEFAULT_WINDOW_S) -> _Stats:
    """Figures of each row from its spectrum and its coarse maximin (samples every 0.25 s)."""
    from calab.baseline import DEFAULT_SMOOTH_S, coarse_maximin

    noise, bands, edges = _spectrum(data, fs)
    constant = np.ptp(data, axis=1) == 0
    coarse = coarse_maximin(data, fs, window_s, DEFAULT_SMOOTH_S)
    resid = coarse.smooth - coarse.baseline  # drift-free, smoothed over 0.5 s
    resid -= np.median(resid, axis=1, keepdims=True)
    # Noise SD of the smoothed trace (white noise averaged over n_smooth frames).
    smooth_sd = noise / math.sqrt(coarse.n_smooth)
    with np.errstate(divide="ignore", invalid="ignore"):
        span = np.where(noise > 0, np.ptp(coarse.baseline, axis=1) / noise, 0.0)
        # Variance beyond the noise, in noise variances: how much signal the cell carries.
        var = np.einsum("ij,ij->i", resid, resid) / resid.shape[1]
        activity = np.where(noise > 0, var / smooth_sd**2 - 1.0, -np.inf)
        peak = np.where(noise > 0, resid.max(axis=1) / smooth_sd, 0.0)
    return _Stats(noise, bands, edges, span, activity, constant, peak, resid.shape[1])


def _concat(parts: list[_Stats]) -> _Stats:
    return _Stats(
        np.concatenate([p.noise for p in parts]),
        np.concatenate([p.bands for p in parts]),
        parts[0].edges,
        np.concatenate([p.drift_span for p in parts]),
        np.concatenate([p.activity_score for p in parts]),
        np.concatenate([p.constant for p in parts]),
        np.concatenate([p.peak for p in parts]),
        parts[0].n_samples,
    )


def _check_not_constant(constant: np.ndarray) -> None:
    if constant.all():
        raise ValueError(
            "traces are constant (every row has a single value, e.g. all zero); there is "
            "nothing to estimate: pass real fluorescence traces"
        )


def _pick_sample(stats: _Stats, max_cells: int) -> np.ndarray:
    """Return the indices (sorted) of the most active non-constant cells."""
    from calab.estimate_verdict import near_constant_cells

    order = np.argsort(-stats.activity_score, kind="stable")
    live = ~stats.constant & ~near_constant_cells(stats.noise)  # dead ROIs measure nothing
    order = order[live[order]]
    return np.sort(order[:max_cells])


def _unit_scale(data: np.ndarray) -> tuple[np.ndarray, float]:
    """Traces scaled by a power of two (exact) to a largest magnitude near 1, and the factor.

    Only for magnitudes whose squares would overflow or underflow (beyond about 1e120 or
    below 1e-120); other data are returned as they are, bit for bit.
    """
    top = float(np.max(np.abs(data))) if data.size else 0.0
    if top == 0.0 or 2.0**-400 < top < 2.0**400:
        return data, 1.0
    exponent = math.frexp(top)[1]
    return np.ldexp(data, -exponent), math.ldexp(1.0, exponent)


def _measure_or_why(sample: _Sample) -> tuple[float, float, str] | str:
    """:func:`_measure` of the sample, or why it could not measure a kernel."""
    try:
        return _measure(sample)
    except ValueError as exc:
        return str(exc)


def _finish(
    stats: _Stats,
    measured: tuple[float, float, str] | str,
    fs: float,
    sample: _Sample,
    sample_idx: np.ndarray,
    scale: float = 1.0,
) -> ParameterEstimate:
    """Build the estimate from the figures and the measured kernel, judged (``quality``).

    ``scale``: the factor the traces were divided by (:func:`_unit_scale`).
    """
    from calab import estimate_verdict as verdict

    near_constant = verdict.near_constant_cells(stats.noise) & ~stats.constant
    # Noise alone exceeds sqrt(2 ln m) SDs about once in m independent samples.
    level = math.sqrt(2 * math.log(max(stats.n_samples, 2)))
    no_tr = (stats.peak < level) | stats.constant | near_constant
    kernel = measured if isinstance(measured, str) else measured[:2]
    quality = verdict.judge(
        sample.traces, sample.noise, sample.fs, kernel, fs=fs, noise=stats.noise,
        no_transients=no_tr, near_constant=near_constant, sample_idx=sample_idx,
        bands=stats.bands, edges=stats.edges,
    )  # fmt: skip
    if isinstance(measured, str) or quality.fallback:
        tr, td = verdict.FALLBACK_TAU_RISE, verdict.FALLBACK_TAU_DECAY
        mode = "constant" if isinstance(measured, str) else measured[2]
        verdict.warn_unreliable(quality, stacklevel=3)
    else:
        tr, td, mode = measured
    noise = _refine_noise(stats.noise, stats.bands, stats.edges, tr, td, fs)
    noise = np.where(stats.constant, 0.0, noise) * scale
    lam = LAM_NOISE_SDS * noise * lam_scale(tr, td, fs)
    return ParameterEstimate(tr, td, lam, noise, mode, no_tr, fs, len(sample_idx), quality)


def _lazy_rows(traces: Any) -> Any:
    """Return the (n_cells, n_frames) dask or numpy array behind a dask array or DataArray."""
    from calab.lazy import _frame_and_cell_dims, is_dataarray

    arr = traces
    if is_dataarray(arr):
        frame, cell = _frame_and_cell_dims(arr)
        arr = (arr if cell is None else arr.transpose(cell, frame)).data
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise ValueError(
            f"traces must be 1-D (n_frames,) or 2-D (n_cells, n_frames), got {arr.ndim}-D "
            f"with shape {arr.shape}"
        )
    return arr


def _estimate_lazy(traces: Any, fs: float, max_cells: int) -> ParameterEstimate:
    """One pass over chunks of cells (figures and the sample), then the kernel from the sample.

    Memory holds one chunk of cells plus ``max_cells`` sample traces at a time.
    """
    arr = _lazy_rows(traces)
    _check_length(int(arr.shape[1]), fs)
    parts: list[_Stats] = []
    keep: list[tuple[float, int, np.ndarray]] = []
    for a, b in _chunk_ranges(arr):
        block, _ = _as_2d(np.asarray(arr[a:b]))
        st = _cell_stats(block, fs)
        parts.append(st)
        keep.extend(
            (float(st.activity_score[j]), a + j, block[j])
            for j in range(b - a)
            if not st.constant[j]
        )
        keep.sort(key=lambda t: -t[0])
        del keep[max_cells:]
    stats = _concat(parts)
    _check_not_constant(stats.constant)
    from calab.estimate_verdict import near_constant_cells

    dead = near_constant_cells(stats.noise)
    keep = [k for k in keep if not dead[k[1]]] or keep  # dead ROIs measure nothing
    keep.sort(key=lambda t: t[1])
    idx = np.array([k[1] for k in keep])
    sample = _kernel_sample(np.stack([k[2] for k in keep]), stats.noise[idx], fs)
    return _finish(stats, _measure_or_why(sample), fs, sample, idx)


def _chunk_ranges(arr: Any) -> list[tuple[int, int]]:
    """Row ranges of a dask array's chunks over cells (one range for other arrays)."""
    chunks = getattr(arr, "chunks", None)
    sizes = chunks[0] if isinstance(chunks, tuple) and chunks else (int(arr.shape[0]),)
    bounds = np.concatenate(([0], np.cumsum(sizes))).astype(int)
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


# --------------------------------------------------------------------------- files
# Opened files (calab.io.open.Source), read a block of cells at a time.

if TYPE_CHECKING:
    from calab.io.open import Source


def estimate_source(src: Source, fs: float, chunk_cells: int | None = None) -> Any:
    """:func:`calab.estimate_parameters` of an opened file, read a block of cells at a time.

    Parameters
    ----------
    src : Source
        From :func:`calab.io.open.open_rows`.
    fs : float
        Sampling rate in Hz.
    chunk_cells : int, optional
        Cells per read (default: about 16 MB of traces, as :func:`calab.deconvolve_file`
        reads; :func:`calab.io.open.default_chunk`).

    Returns
    -------
    calab.estimate.ParameterEstimate
    """
    from calab.io.open import check_chunk_cells, default_chunk
    from calab.lazy import lazy_view

    chunk = check_chunk_cells(chunk_cells) or default_chunk(src)
    rows = lazy_view(src.data, chunk)
    if isinstance(rows, np.ndarray):
        return estimate_parameters(rows, fs)
    import dask

    # In this process: the reader holds an open file, which a distributed client cannot ship.
    with dask.config.set(scheduler="synchronous"):
        return estimate_parameters(rows, fs)


# --------------------------------------------------------------------------- drift check

DRIFT_WARN_NOISE_SDS = 5.0
"""Median drift span, in noise SDs, above which a constant-baseline solve is warned about.

Higher than the estimate's :data:`DRIFT_NOISE_SDS`: a busy cell of a slow indicator (GCaMP6s
firing at 1 Hz and more) seldom returns to its baseline, which the measure reads as a few noise
SDs of drift."""


def drift_span(
    traces: np.ndarray, fs: float, tau_decay: float, max_cells: int = MAX_SAMPLE_CELLS
) -> float:
    """Median peak-to-peak span of the drift, in noise SDs, over evenly spaced cells.

    The measure the estimate decides ``baseline`` by, on at most ``max_cells`` rows of the
    (n_cells, n_frames) ``traces``, with a maximin window of at least
    ``BASELINE_DECAY_TIMES * tau_decay`` (so that slow calcium of a busy cell is not taken for
    drift); 0 where it cannot tell (traces shorter than 10 s or 200 frames, non-finite or
    constant rows).
    """
    from calab.estimate_kernel import BASELINE_DECAY_TIMES

    n, t = traces.shape
    if t < max(MIN_FRAMES, MIN_SECONDS * fs):
        return 0.0
    rows = np.unique(np.linspace(0, n - 1, min(n, max_cells)).astype(np.int64))
    sample = np.asarray(traces[rows], dtype=np.float64)
    if not np.isfinite(sample).all():
        return 0.0  # the solve refuses these traces, naming the cells
    # The span in noise SDs does not depend on offset or scale: keep the sums in range.
    sample -= np.median(sample, axis=1, keepdims=True)
    scale = np.abs(sample).max(axis=1, keepdims=True)
    sample /= np.where(scale > 0, scale, 1.0)
    window = max(DEFAULT_WINDOW_S, BASELINE_DECAY_TIMES * tau_decay)
    stats = _cell_stats(sample, fs, window)
    span = stats.drift_span[~stats.constant]
    return float(np.median(span)) if span.size else 0.0


def warn_if_drifting(traces: Any, fs: float, tau_decay: float, *, stacklevel: int = 2) -> None:
    """Warn when in-memory traces drift by more than :data:`DRIFT_WARN_NOISE_SDS` noise SDs.

    For a solve with ``baseline="constant"`` (the CaTune model: one baseline per trace), which
    then reads the drift as activity or its absence. Dask and xarray input are not read here.
    """
    from calab._validate import traces_2d
    from calab.lazy import is_lazy

    if is_lazy(traces):
        return
    data, _ = traces_2d(traces)
    span = drift_span(data, fs, tau_decay)
    if span > DRIFT_WARN_NOISE_SDS:
        import warnings

        warnings.warn(
            f"the traces drift: their running minimum moves by {span:.1f} noise SDs (median "
            "over cells), but baseline='constant' fits one baseline per trace, so the drift "
            'is read as activity (or hides it); pass baseline="drift" to follow it '
            "(calab.estimate_parameters(traces, fs).baseline tells which to use)",
            UserWarning,
            stacklevel=stacklevel + 1,
        )


def estimated_params(est: Any) -> dict[str, Any]:
    """Return the :func:`calab.batch.export_params` dict of a :class:`ParameterEstimate`.

    With its per-cell lambda and baseline mode: what ``calab.deconvolve_file(..., params="auto")``
    solves with.
    """
    from calab.params import Params

    p = Params(est.fs, est.tau_rise, est.tau_decay, np.asarray(est.lam), False, est.baseline)
    return p.to_export()
