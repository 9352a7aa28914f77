"""The CaTune calcium kernel: shape, AR(2) form, Lipschitz constant and timing figures."""

from __future__ import annotations

import numpy as np

from calab import _solver
from calab._validate import model_params


def build_kernel(tau_rise: float, tau_decay: float, fs: float) -> np.ndarray:
    """Double-exponential calcium kernel, normalised to peak 1.

    ``h[i] = exp(-i/(fs*tau_decay)) - exp(-i/(fs*tau_rise))`` for ``i = 0..L-1`` divided by its
    maximum, with ``L = max(2, ceil(-ln(1e-6) * tau_decay * fs))``.

    Parameters
    ----------
    tau_rise, tau_decay : float
        Rise and decay time constants in seconds (``tau_rise < tau_decay``).
    fs : float
        Sampling rate in Hz.

    Returns
    -------
    kernel : ndarray, shape (L,)
    """
    tr, td, f = model_params(tau_rise, tau_decay, fs)
    return _solver.build_kernel(tr, td, f)


def tau_to_ar2(tau_rise: float, tau_decay: float, fs: float) -> tuple[float, float, float, float]:
    """AR(2) coefficients of the kernel: ``(g1, g2, d, r)``.

    ``d = exp(-dt/tau_decay)``, ``r = exp(-dt/tau_rise)``, ``g1 = d + r``, ``g2 = -d*r``,
    ``dt = 1/fs``.
    """
    tr, td, f = model_params(tau_rise, tau_decay, fs)
    g1, g2, d, r = _solver.tau_to_ar2(tr, td, f)
    return float(g1), float(g2), float(d), float(r)


def compute_lipschitz(kernel: np.ndarray) -> float:
    """Lipschitz constant of the smooth part of the objective, ``max_w |H(w)|^2``.

    Evaluated on a zero-padded FFT grid (8x the kernel length, at least 1024 points) and at
    ``w = 0`` exactly, so it is exact for the non-negative CaTune kernels (``sum(h)**2``).

    Parameters
    ----------
    kernel : array_like, shape (L,)
    """
    h = np.asarray(kernel, dtype=np.float64)
    if h.ndim != 1 or h.size == 0:
        raise ValueError(f"kernel must be a non-empty 1-D array, got shape {h.shape}")
    if not np.isfinite(h).all():
        raise ValueError("kernel contains NaN or Inf")
    nfft = max(1024, 8 * h.size)
    spectrum = np.abs(np.fft.rfft(h, n=nfft)) ** 2
    return float(max(spectrum.max(), h.sum() ** 2))


def kernel_timing(tau_rise: float, tau_decay: float, fs: float) -> tuple[float, float]:
    """Time to peak and full width at half maximum of the continuous kernel, in seconds.

    These are the ``t_peak_s`` and ``fwhm_s`` fields of the CaTune export JSON (schema 1.2.0).
    """
    tr, td, _ = model_params(tau_rise, tau_decay, fs)
    t_peak = tr * td / (td - tr) * np.log(td / tr)

    def shape(t: np.ndarray) -> np.ndarray:
        return np.exp(-t / td) - np.exp(-t / tr)

    peak = shape(np.array([t_peak]))[0]
    # Bisection for both half-maximum crossings (the curve is unimodal).
    lo_a, hi_a = 0.0, t_peak
    lo_b, hi_b = t_peak, t_peak + 50 * td
    for _ in range(200):
        mid = 0.5 * (lo_a + hi_a)
        if shape(np.array([mid]))[0] < peak / 2:
            lo_a = mid
        else:
            hi_a = mid
        mid = 0.5 * (lo_b + hi_b)
        if shape(np.array([mid]))[0] > peak / 2:
            lo_b = mid
        else:
            hi_b = mid
    return float(t_peak), float(0.5 * (lo_b + hi_b) - 0.5 * (lo_a + hi_a))
