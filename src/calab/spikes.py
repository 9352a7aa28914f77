"""Spike counts and spike rates from the deconvolved activity, calibrated per cell.

:func:`infer_spikes` deconvolves the traces (with :func:`calab.estimate_parameters` unless the
parameters are given), cuts each cell's activity into events, and finds the activity one spike
leaves in that cell (its *unit*) from the distribution of its isolated events' sizes: the
smallest clear mode above what the noise alone can leave, as MLspike and the hybrid method of
Rupprecht et al. (bioRxiv 2025) calibrate each cell from its single spikes. Each event's size in
units (with the penalty's shrinkage added back) is rounded to whole spikes and spread over the
event's frames by its activity; the rate is the counts smoothed.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from calab._validate import check_finite, positive, traces_2d
from calab.deconvolution import run_deconvolution_full
from calab.estimate import ParameterEstimate, estimate_parameters, noise_sd
from calab.kernel import build_kernel, kernel_timing

__all__ = ["SpikeResult", "infer_spikes"]

FLOOR_NOISE_SDS = 4.0
"""An event must be this many SDs of the noise in its size (:func:`size_error`) to be told from
noise: the floor of the unit, and the smallest event :func:`infer_spikes` counts at all."""
EVENT_GAP_S = 0.05
"""Runs of non-zero activity closer than this or than the kernel's time to peak (at least one
frame) form one event: the solver can split one response over neighbouring frames."""
MODE_BANDWIDTH = 0.2
"""Relative width (in log size) with which each event spreads in the density of event sizes:
about 20 %, finer than the factor of two between one and two spikes."""
MODE_MIN_SHARE = 0.25
"""The single-spike mode is the smallest local maximum of that density at least this share of
the highest one (a small bump of noise or of a rare size does not count)."""
MIN_EVENTS = 5
"""Fewer events above the floor cannot show a mode: the cell is not calibrated."""
LOW_TAIL = 0.02275
LOW_TAIL_SDS = 2.0
"""The noise of event sizes is read off the lower tail of the matched-filtered residual: its
``LOW_TAIL`` quantile lies ``LOW_TAIL_SDS`` standard deviations below the median for Gaussian
noise."""
RATE_SD_S = 0.05
"""Standard deviation in seconds of the Gaussian that smooths the counts into the rate."""


@dataclass(frozen=True)
class SpikeResult:
    """Spike counts and rates from :func:`infer_spikes`.

    Attributes
    ----------
    counts : ndarray of int64, shape (n_cells, n_frames)
        Whole spikes per frame.
    rate : ndarray of float64, shape (n_cells, n_frames)
        Expected spikes per second: the counts smoothed by a Gaussian of :data:`RATE_SD_S`;
        ``rate.sum(axis=-1) / fs`` equals the counts' total.
    unit : ndarray of float64, shape (n_cells,)
        The activity one spike leaves in each cell, in the units of the traces (the activity's
        scale: a kernel of peak 1, so about one spike's peak dF/F).
    calibrated : ndarray of bool, shape (n_cells,)
        False where no single events could be resolved: the unit is then the median event above
        the noise floor and the counts are relative only (a warning says which cells).
    activity : ndarray of float64, shape (n_cells, n_frames)
        The deconvolved activity the counts come from.
    fs : float
        Sampling rate in Hz.

    1-D traces give 1-D ``counts``, ``rate``, ``activity`` and scalar ``unit``, ``calibrated``.
    """

    counts: npt.NDArray[np.int64]
    rate: npt.NDArray[np.float64]
    unit: Any
    calibrated: Any
    activity: npt.NDArray[np.float64]
    fs: float


def infer_spikes(
    traces: Any,
    fs: float,
    *,
    est: ParameterEstimate | None = None,
    tau_rise: float | None = None,
    tau_decay: float | None = None,
    lam: float | npt.ArrayLike | None = None,
    baseline: str | None = None,
) -> SpikeResult:
    """Deconvolve calcium traces and turn the activity into spike counts and rates.

    Parameters
    ----------
    traces : array_like, shape (n_cells, n_frames) or (n_frames,)
        Fluorescence traces (no NaN), numpy in and out (dask and xarray are not supported yet:
        compute them first).
    fs : float
        Sampling rate in Hz.
    est : ParameterEstimate, optional
        A previous :func:`calab.estimate_parameters` of these traces, reused.
    tau_rise, tau_decay : float, optional
        Kernel time constants in seconds; with ``lam``, tuned parameters instead of an estimate.
    lam : float or array_like, shape (n_cells,)
        Sparsity penalty (with ``tau_rise`` and ``tau_decay``).
    baseline : {"constant", "drift"}, optional
        Baseline model (default: the estimate's, or ``"constant"`` with tuned parameters).

    Returns
    -------
    SpikeResult
        ``counts``, ``rate``, ``unit``, ``calibrated``, ``activity``, ``fs``.

    Raises
    ------
    ValueError, TypeError
        The errors of :func:`calab.run_deconvolution` (and of :func:`calab.estimate_parameters`
        when it runs) for bad traces or parameters; mixing ``est`` with tuned parameters, or
        giving only some of ``tau_rise``, ``tau_decay``, ``lam``.

    Warns
    -----
    UserWarning
        Naming the cells whose single spikes could not be resolved (``calibrated`` False).

    Examples
    --------
    >>> import calab
    >>> traces, spikes = calab.simulate(5, 9000, 30.0, indicator="GCaMP6f", snr=6, seed=1)
    >>> sp = calab.infer_spikes(traces, 30.0)
    >>> sp.counts.shape
    (5, 9000)
    """
    f = positive(fs, "fs", "sampling rate in Hz, e.g. 30.0")
    from calab.lazy import is_lazy

    if is_lazy(traces):
        raise TypeError(
            "infer_spikes takes numpy arrays; compute a dask array or DataArray first "
            "(e.g. np.asarray(traces))"
        )
    data, was_1d = traces_2d(traces)
    check_finite(data[0] if was_1d else data)
    tuned = (tau_rise, tau_decay, lam)
    if est is not None and any(v is not None for v in tuned):
        raise TypeError(
            "pass either est= (a ParameterEstimate) or tau_rise=, tau_decay= and lam= "
            "(tuned parameters), not both"
        )
    if est is None and all(v is None for v in tuned):
        est = estimate_parameters(data, f)
    tr: Any
    td: Any
    lam_: Any
    mode: Any
    if est is not None:
        if not isinstance(est, ParameterEstimate):
            raise TypeError(f"est must be a ParameterEstimate, got {type(est).__name__}")
        if est.noise.shape != (data.shape[0],):
            raise ValueError(
                f"est holds {est.noise.shape[0]} cells but traces have {data.shape[0]}; "
                "pass the estimate of these traces"
            )
        tr, td, lam_, noise = est.tau_rise, est.tau_decay, est.lam, est.noise
        mode = est.baseline if baseline is None else baseline
    else:
        if any(v is None for v in tuned):
            names = ("tau_rise", "tau_decay", "lam")
            missing = [n for n, v in zip(names, tuned, strict=True) if v is None]
            raise TypeError(
                f"tuned parameters need tau_rise, tau_decay and lam together; missing "
                f"{', '.join(missing)} (or pass none of them to estimate all)"
            )
        tr, td, lam_ = tau_rise, tau_decay, lam
        noise = np.atleast_1d(noise_sd(data, f))
        mode = "constant" if baseline is None else baseline
    res = run_deconvolution_full(data, f, tau_rise=tr, tau_decay=td, lam=lam_, baseline=mode)
    activity = np.asarray(res.activity, dtype=np.float64)
    kernel = build_kernel(tr, td, f)
    floor = FLOOR_NOISE_SDS * size_error(data - res.reconvolution, kernel, noise)
    gap_s = max(EVENT_GAP_S, kernel_timing(tr, td, f)[0])
    # What the penalty takes off an isolated event: lam * G_dc / ||h||^2 (its KKT condition).
    shrink = np.broadcast_to(np.asarray(lam_, dtype=np.float64), floor.shape)
    shrink = shrink * float(kernel.sum()) / float(kernel @ kernel)
    counts, unit, calibrated = count_spikes(activity, floor, shrink, gap_s * f, td * f)
    rate = smooth_rate(counts, f)
    bad = np.flatnonzero(~calibrated)
    if bad.size:
        shown = ", ".join(str(i) for i in bad[:10]) + (", ..." if bad.size > 10 else "")
        warnings.warn(
            f"no single spikes could be resolved in {bad.size} of {data.shape[0]} cells "
            f"({shown}): their counts are relative (about one per event), not calibrated spikes; "
            "see sp.calibrated",
            UserWarning,
            stacklevel=2,
        )
    if was_1d:
        return SpikeResult(counts[0], rate[0], float(unit[0]), bool(calibrated[0]),
                           activity[0], f)  # fmt: skip
    return SpikeResult(counts, rate, unit, calibrated, activity, f)


# --------------------------------------------------------------------------- events


def size_error(residual: np.ndarray, kernel: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Return the standard deviation per cell of the noise in an event's size (its activity).

    An event's size is, to first order, the matched filter's estimate of its amplitude: the
    residual correlated with the kernel over ``||h||^2``. Its robust SD (median absolute
    deviation) over the recording counts the slow, coloured noise of real traces that the white
    noise SD (``noise / ||h||``, the lower bound kept here) misses.
    """
    energy = float(kernel @ kernel)
    out = np.asarray(noise, dtype=np.float64) / math.sqrt(energy)
    n = residual.shape[1]
    spec = np.fft.rfft(residual, n=n + kernel.size, axis=1)
    filt = np.conj(np.fft.rfft(kernel, n=n + kernel.size))
    z = np.fft.irfft(spec * filt, n=n + kernel.size, axis=1)[:, :n] / energy
    # The lower tail: the fit soaks positive excursions of the noise up into events, so the
    # residual's upper side understates it; non-negative activity cannot soak up dips.
    low = (np.median(z, axis=1) - np.quantile(z, LOW_TAIL, axis=1)) / LOW_TAIL_SDS
    return np.maximum(out, low)


def events(
    row: np.ndarray, gap_frames: float, quiet_frames: float = 0.0, min_size: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Events of one cell's activity: label per frame (-1 outside events), size and isolation.

    An event is a run of non-zero activity, runs at most ``gap_frames`` apart merged. It is
    isolated when no event larger than ``min_size`` ended in the ``quiet_frames`` before it (it
    is not in the decay of another, where a kernel that fits the cell's response only roughly
    leaves small events).
    """
    idx = np.flatnonzero(row > 0)
    if idx.size == 0:
        return np.full(row.shape[0], -1, dtype=np.int64), np.zeros(0), np.zeros(0, dtype=bool)
    gap = max(1, int(round(gap_frames)))
    starts = np.concatenate([[True], np.diff(idx) > gap])
    which = np.cumsum(starts) - 1
    sizes = np.bincount(which, weights=row[idx])
    # Frames inside a merged gap belong to the event too (they hold no activity).
    first = idx[starts]
    last = np.append(idx[np.flatnonzero(starts)[1:] - 1], idx[-1])
    # Frames of an event, gaps included: +1 at its first frame, -1 after its last.
    step = np.zeros(row.shape[0] + 1, dtype=np.int64)
    np.add.at(step, first, 1)
    np.add.at(step, last + 1, -1)
    inside = np.cumsum(step[:-1]) > 0
    label = np.where(inside, np.searchsorted(first, np.arange(row.shape[0]), "right") - 1, -1)
    seen = np.flatnonzero(sizes > min_size)  # the events that can hide another in their decay
    prev = np.searchsorted(seen, np.arange(sizes.size)) - 1  # last such event before each
    quiet = first - last[seen[np.maximum(prev, 0)]] if seen.size else np.zeros(sizes.size)
    isolated = (prev < 0) | (quiet > quiet_frames)
    return label, sizes, isolated


def single_spike_unit(sizes: np.ndarray, floor: float) -> tuple[float, bool]:
    """Return the smallest clear mode of the sizes above ``floor``, and whether there is one.

    The density of sizes (each event a Gaussian in log size, :data:`MODE_BANDWIDTH`) over the
    events above the floor; the smallest local maximum holding :data:`MODE_MIN_SHARE` of the
    highest. A maximum at the floor itself is noise leaking over it, not a mode. Without a mode
    (or with fewer than :data:`MIN_EVENTS` events) the unit is the median event above the floor
    (each counts about one spike; the floor without any), and the flag is False.
    """
    big = sizes[sizes > floor]
    if big.size < MIN_EVENTS or floor <= 0:
        return (float(np.median(big)) if big.size else floor), False
    logs = np.log(big)
    lo = math.log(floor)
    grid = np.linspace(lo, logs.max() + 2 * MODE_BANDWIDTH, 400)
    # Each event spreads as a Gaussian in log size (a relative width), read as a density of
    # size: over exp(grid). Equal numbers of 1, 2, ... 5-spike events then give modes of equal
    # height, where a density of log size would favour the crowded larger sizes.
    dens = np.exp(-0.5 * ((grid[:, None] - logs[None, :]) / MODE_BANDWIDTH) ** 2).sum(axis=1)
    dens /= np.exp(grid)
    inner = np.flatnonzero((dens[1:-1] >= dens[:-2]) & (dens[1:-1] > dens[2:])) + 1
    peaks = [i for i in inner if dens[i] >= MODE_MIN_SHARE * dens.max()]
    if not peaks:
        return float(np.median(big)), False
    return float(math.exp(grid[peaks[0]])), True


def discretise(
    row: np.ndarray, label: np.ndarray, sizes: np.ndarray, unit: float, shrink: float = 0.0,
    floor: float = 0.0,
) -> np.ndarray:  # fmt: skip
    """Whole spikes per frame: each event's size in units rounded, placed by its activity.

    The L1 penalty takes ``shrink`` off every event whatever its number of spikes, so an event
    counts ``round((size + shrink) / (unit + shrink))`` spikes (none at or below ``floor``).
    Spike ``k`` (k = 1..n) of an event of ``n`` goes to the frame where its cumulative activity
    passes ``(k - 1/2) / n`` of its total, so every event keeps its rounded total.
    """
    out = np.zeros(row.shape[0], dtype=np.int64)
    inside = label >= 0
    if not inside.any():
        return out
    n = np.where(sizes > floor, np.floor((sizes + shrink) / (unit + shrink) + 0.5), 0.0)
    lab = label[inside]
    act = np.where(row[inside] > 0, row[inside], 0.0)
    cum = np.cumsum(act)
    starts = np.concatenate([[True], lab[1:] != lab[:-1]])
    before = np.where(starts, cum - act, 0.0)
    offset = np.maximum.accumulate(before)  # cumulative activity before each frame's event
    frac = (cum - offset) / sizes[lab]
    frac_prev = (cum - act - offset) / sizes[lab]
    k = n[lab]
    out[inside] = (np.floor(frac * k + 0.5) - np.floor(frac_prev * k + 0.5)).astype(np.int64)
    return out


def count_spikes(
    activity: np.ndarray,
    floor: np.ndarray,
    shrink: np.ndarray,
    gap_frames: float,
    quiet_frames: float,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Return counts, unit and calibration flag per cell of ``activity`` (n_cells, n_frames).

    The unit comes from the isolated events (:func:`events`), the counts from all events.
    """
    counts = np.zeros(activity.shape, dtype=np.int64)
    unit = np.zeros(activity.shape[0])
    calibrated = np.zeros(activity.shape[0], dtype=bool)
    for i, row in enumerate(activity):
        label, sizes, isolated = events(row, gap_frames, quiet_frames, float(floor[i]))
        unit[i], calibrated[i] = single_spike_unit(sizes[isolated], float(floor[i]))
        if unit[i] > 0:
            counts[i] = discretise(row, label, sizes, unit[i], float(shrink[i]), float(floor[i]))
    return counts, unit, calibrated


def smooth_rate(counts: np.ndarray, fs: float) -> npt.NDArray[np.float64]:
    """Spikes per second: the counts smoothed by a Gaussian of :data:`RATE_SD_S`, times ``fs``.

    The ends are reflected, so no spike leaks out and the rate's sum is the counts' total.
    """
    sd = max(1.0, RATE_SD_S * fs)
    half = min(int(math.ceil(4 * sd)), counts.shape[1] - 1)
    x = counts.astype(np.float64)
    if half < 1:
        return x * fs
    taps = np.exp(-0.5 * (np.arange(-half, half + 1) / sd) ** 2)
    taps /= taps.sum()
    padded = np.pad(x, ((0, 0), (half, half)), mode="symmetric")
    out = np.zeros_like(x)
    n = x.shape[1]
    for j, w in enumerate(taps):
        out += w * padded[:, j : j + n]
    return out * fs
