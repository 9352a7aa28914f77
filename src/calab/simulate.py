"""Synthetic calcium traces with known spikes, for demos, tests and benchmarks."""

from __future__ import annotations

import numpy as np

from calab import _solver
from calab._validate import model_params, positive


def simulate(
    n_cells: int = 10,
    n_frames: int = 9000,
    fs: float = 30.0,
    tau_rise: float = 0.05,
    tau_decay: float = 0.5,
    *,
    rate_hz: float = 1.0,
    snr: float = 5.0,
    baseline: float = 1.0,
    seed: int | None = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate fluorescence traces from Poisson spike trains and the CaTune kernel.

    Each spike adds one copy of :func:`calab.build_kernel` (peak 1) to the calcium; the trace
    is ``baseline + calcium + noise`` with Gaussian noise of standard deviation ``1 / snr``.

    Parameters
    ----------
    n_cells, n_frames : int
        Output size.
    fs : float
        Sampling rate in Hz.
    tau_rise, tau_decay : float
        Kernel time constants in seconds (GCaMP6f-like defaults; GCaMP6s: 0.05, 1.5).
    rate_hz : float
        Mean firing rate per cell in Hz.
    snr : float
        Single-spike peak amplitude divided by the noise standard deviation.
    baseline : float
        Constant offset of every trace.
    seed : int or None
        Seed for numpy's random generator (same seed, same data).

    Returns
    -------
    traces : ndarray of float64, shape (n_cells, n_frames)
    spikes : ndarray of float64, shape (n_cells, n_frames)
        True spike counts per frame.
    """
    tr, td, f = model_params(tau_rise, tau_decay, fs)
    if int(n_cells) < 1 or int(n_frames) < 1:
        raise ValueError(f"n_cells and n_frames must be >= 1, got {n_cells}, {n_frames}")
    rate = positive(rate_hz, "rate_hz", "mean firing rate in Hz")
    noise_sd = 1.0 / positive(snr, "snr", "spike amplitude over noise sd")
    rng = np.random.default_rng(seed)
    spikes = rng.poisson(rate / f, size=(int(n_cells), int(n_frames))).astype(np.float64)
    calcium = _solver.convolve(spikes, tr, td, f)
    traces = baseline + calcium + rng.normal(0.0, noise_sd, size=spikes.shape)
    return traces, spikes
