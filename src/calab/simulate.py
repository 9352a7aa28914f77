"""Synthetic calcium traces with known spikes, for demos, tests and benchmarks.

Beyond Poisson spikes through the CaTune kernel plus white noise, :func:`simulate` can add what
real traces do: slow baseline drift, photobleaching, a different noise level per cell, and
kernels of common indicators (:data:`INDICATORS`).
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import numpy as np

from calab import _solver
from calab._validate import model_params, positive

INDICATORS: dict[str, tuple[float, float]] = {
    # (tau_rise, tau_decay) in seconds.
    # GCaMP6f/6s: the time constants commonly used for these indicators (Chen et al., Nature
    # 499, 2013: 6s several times slower than 6f).
    "gcamp6f": (0.02, 0.4),
    "gcamp6s": (0.05, 1.5),
    # jGCaMP7f and jGCaMP8: the double exponentials whose time to peak and half-decay time
    # match the 1-AP figures of Zhang et al., Nature 615 (2023): 7f 99.5 / 181.9 ms,
    # 8f 24.8 / 67.4 ms, 8m 29.0 / 118.3 ms, 8s 57.0 / 306.7 ms.
    "jgcamp7f": (0.067, 0.158),
    "jgcamp8f": (0.0105, 0.081),
    "jgcamp8m": (0.0098, 0.156),
    "jgcamp8s": (0.017, 0.418),
}


class SimulationTruth(NamedTuple):
    """What :func:`simulate` put into the traces (``return_truth=True``).

    Attributes
    ----------
    baseline : ndarray, shape (n_cells, n_frames)
        Offset plus drift plus photobleaching: the traces minus calcium and noise.
    noise_sd : ndarray, shape (n_cells,)
        Standard deviation of each cell's Gaussian noise.
    tau_rise, tau_decay : float
        Kernel time constants in seconds.
    """

    baseline: np.ndarray
    noise_sd: np.ndarray
    tau_rise: float
    tau_decay: float


def _indicator_taus(indicator: Any) -> tuple[float, float]:
    if not isinstance(indicator, str):
        raise TypeError(f"indicator must be a name such as 'GCaMP6f', got {indicator!r}")
    key = indicator.lower()
    if key not in INDICATORS:
        names = ", ".join(sorted(INDICATORS))
        raise ValueError(f"indicator must be one of {names} (any case), got {indicator!r}")
    return INDICATORS[key]


def _snr_per_cell(snr: Any, n_cells: int, rng: np.random.Generator) -> np.ndarray:
    """Return per-cell SNRs: a number, an (n_cells,) array, or a log-uniform (low, high) range."""
    if isinstance(snr, numbers.Real) and not isinstance(snr, bool):
        return np.full(n_cells, positive(snr, "snr", "spike amplitude over noise sd"))
    if isinstance(snr, tuple) and len(snr) == 2:
        lo = positive(snr[0], "snr", "(low, high) range of spike amplitude over noise sd")
        hi = positive(snr[1], "snr", "(low, high) range of spike amplitude over noise sd")
        if lo > hi:
            raise ValueError(f"snr range must be (low, high) with low <= high, got {snr!r}")
        return np.exp(rng.uniform(np.log(lo), np.log(hi), size=n_cells))
    arr = np.asarray(snr, dtype=np.float64) if not isinstance(snr, (str, bytes)) else None
    if arr is None or arr.shape != (n_cells,) or not np.all(np.isfinite(arr) & (arr > 0)):
        raise ValueError(
            f"snr must be a positive number, a (low, high) tuple or {n_cells} positive values "
            f"(one per cell), got {snr!r}"
        )
    return arr


def _nonnegative(value: Any, name: str, hint: str) -> float:
    """``value`` as a float >= 0, or the TypeError/ValueError of :func:`positive` naming it."""
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and value == 0:
        return 0.0
    return positive(value, name, f"{hint}, or 0")


def simulate(
    n_cells: int = 10,
    n_frames: int = 9000,
    fs: float = 30.0,
    tau_rise: float | None = None,
    tau_decay: float | None = None,
    *,
    rate_hz: float = 1.0,
    snr: Any = 5.0,
    baseline: float = 1.0,
    seed: int | None = 0,
    indicator: str | None = None,
    drift: float = 0.0,
    drift_period_s: float = 300.0,
    bleach: float = 0.0,
    bleach_tau_s: float = 120.0,
    return_truth: bool = False,
) -> Any:
    """Simulate fluorescence traces from Poisson spike trains and the CaTune kernel.

    Each spike adds one copy of :func:`calab.build_kernel` (peak 1) to the calcium; the trace
    is ``baseline + drift + bleaching + calcium + noise`` with Gaussian noise of standard
    deviation ``1 / snr``.

    Parameters
    ----------
    n_cells, n_frames : int
        Output size.
    fs : float
        Sampling rate in Hz.
    tau_rise, tau_decay : float, optional
        Kernel time constants in seconds (default 0.05 and 0.5, GCaMP6f-like). Leave them out
        when giving ``indicator``.
    rate_hz : float
        Mean firing rate per cell in Hz.
    snr : float, (low, high) or array_like of shape (n_cells,)
        Single-spike peak amplitude divided by the noise standard deviation: one value for
        every cell, a range from which each cell's value is drawn (log-uniformly), or one
        value per cell.
    baseline : float
        Constant offset of every trace.
    seed : int or None
        Seed for numpy's random generator (same seed, same data).
    indicator : str, optional
        Kernel of a common indicator, any case: GCaMP6f, GCaMP6s, jGCaMP7f, jGCaMP8f,
        jGCaMP8m, jGCaMP8s (time constants in :data:`INDICATORS`).
    drift : float
        Amplitude of a slow random drift per cell (a sum of three sinusoids with periods
        between ``drift_period_s`` and 4 times that), in units of the single-spike peak.
    drift_period_s : float
        Shortest period of the drift in seconds.
    bleach : float
        Photobleaching: the baseline starts ``bleach`` higher and decays to ``baseline`` with
        time constant ``bleach_tau_s`` seconds.
    bleach_tau_s : float
        Time constant of the photobleaching in seconds.
    return_truth : bool
        Also return a :class:`SimulationTruth` (baseline with drift, noise SD per cell, taus).

    Returns
    -------
    traces : ndarray of float64, shape (n_cells, n_frames)
    spikes : ndarray of float64, shape (n_cells, n_frames)
        True spike counts per frame.
    truth : SimulationTruth
        Only with ``return_truth=True``.
    """
    if indicator is not None:
        if tau_rise is not None or tau_decay is not None:
            raise ValueError(
                "give either indicator or tau_rise/tau_decay, not both; "
                f"indicator={indicator!r} sets the time constants"
            )
        tau_rise, tau_decay = _indicator_taus(indicator)
    tr, td, f = model_params(
        0.05 if tau_rise is None else tau_rise, 0.5 if tau_decay is None else tau_decay, fs
    )
    if int(n_cells) < 1 or int(n_frames) < 1:
        raise ValueError(f"n_cells and n_frames must be >= 1, got {n_cells}, {n_frames}")
    rate = positive(rate_hz, "rate_hz", "mean firing rate in Hz")
    drift_ = _nonnegative(drift, "drift", "drift amplitude in spike peaks")
    bleach_ = _nonnegative(bleach, "bleach", "photobleaching amplitude in spike peaks")
    period = positive(drift_period_s, "drift_period_s", "shortest drift period in seconds")
    btau = positive(bleach_tau_s, "bleach_tau_s", "photobleaching time constant in seconds")
    n_cells, n_frames = int(n_cells), int(n_frames)
    rng = np.random.default_rng(seed)
    if isinstance(snr, numbers.Real) and not isinstance(snr, bool):
        # The original draw order (spikes, then noise), so old seeds give the same data.
        noise_sd = 1.0 / _snr_per_cell(snr, n_cells, rng)
        spikes = rng.poisson(rate / f, size=(n_cells, n_frames)).astype(np.float64)
        noise = rng.normal(0.0, noise_sd[0], size=spikes.shape)
    else:
        spikes = rng.poisson(rate / f, size=(n_cells, n_frames)).astype(np.float64)
        noise_sd = 1.0 / _snr_per_cell(snr, n_cells, rng)
        noise = rng.normal(0.0, 1.0, size=spikes.shape) * noise_sd[:, None]
    calcium = _solver.convolve(spikes, tr, td, f)
    t = np.arange(n_frames) / f
    base = np.full((n_cells, n_frames), float(baseline))
    if drift_ > 0:
        periods = rng.uniform(period, 4 * period, size=(n_cells, 3, 1))
        phases = rng.uniform(0, 2 * np.pi, size=(n_cells, 3, 1))
        waves = np.sin(2 * np.pi * t / periods + phases).sum(axis=1)
        base += drift_ * waves / np.sqrt(1.5)  # unit SD for three unit sinusoids
    if bleach_ > 0:
        base += bleach_ * np.exp(-t / btau)
    traces = base + calcium + noise
    if return_truth:
        return traces, spikes, SimulationTruth(base, noise_sd, tr, td)
    return traces, spikes
