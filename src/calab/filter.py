"""The CaTune band-pass ("noise") filter, derived from the kernel time constants."""

from __future__ import annotations

from typing import Any

import numpy as np

from calab._validate import as_real_array, check_finite, model_params


def filter_cutoffs(tau_rise: float, tau_decay: float, fs: float) -> tuple[float, float]:
    """Return the high-pass and low-pass cut-offs in Hz.

    They are ``1/(2 pi tau_decay 16)`` and ``min(4/(2 pi tau_rise), fs/2)``.
    """
    tr, td, f = model_params(tau_rise, tau_decay, fs)
    f_hp = 1.0 / (2 * np.pi * td * 16)
    f_lp = min(4.0 / (2 * np.pi * tr), f / 2)
    return f_hp, f_lp


def filter_gain(freqs: np.ndarray, f_hp: float, f_lp: float) -> np.ndarray:
    """Gain at ``freqs`` (Hz): raised-cosine edges of half-width 0.5 f_c around each cut-off."""
    f = np.abs(np.asarray(freqs, dtype=np.float64))
    # High-pass: 0 below 0.5 f_hp, 1 above 1.5 f_hp.
    x = np.clip((f - 0.5 * f_hp) / f_hp, 0.0, 1.0)
    hp = 0.5 - 0.5 * np.cos(np.pi * x)
    # Low-pass: 1 below 0.5 f_lp, 0 above 1.5 f_lp.
    x = np.clip((f - 0.5 * f_lp) / f_lp, 0.0, 1.0)
    lp = 0.5 + 0.5 * np.cos(np.pi * x)
    return hp * lp


def bandpass_filter(trace: Any, tau_rise: float, tau_decay: float, fs: float) -> np.ndarray:
    """Band-pass filter a trace in the frequency domain, as the CaTune web app does.

    Parameters
    ----------
    trace : array_like, shape (n_frames,) or (n_cells, n_frames)
        Each row is filtered on its own.
    tau_rise, tau_decay : float
        Kernel time constants in seconds; they set the cut-offs (see :func:`filter_cutoffs`).
    fs : float
        Sampling rate in Hz.

    Returns
    -------
    filtered : ndarray of float64, same shape as ``trace``
        A copy; unchanged when ``n_frames < 8`` or the high-pass cut-off is not below the
        low-pass one.
    """
    f_hp, f_lp = filter_cutoffs(tau_rise, tau_decay, fs)
    arr = as_real_array(trace, "trace")
    if arr.dtype == object or arr.dtype.kind not in "iuf":
        raise TypeError(
            f"trace must hold real numbers, got dtype {arr.dtype}; "
            "convert with np.asarray(..., dtype=float)"
        )
    y = np.array(arr, dtype=np.float64, copy=True)
    if y.ndim not in (1, 2) or y.size == 0:
        raise ValueError(
            f"trace must be a non-empty 1-D (n_frames,) or 2-D (n_cells, n_frames) array, "
            f"got shape {y.shape}"
        )
    check_finite(y, "trace")
    n = y.shape[-1]
    if n < 8 or f_hp >= f_lp:
        return y
    spectrum = np.fft.rfft(y, axis=-1)
    spectrum *= filter_gain(np.fft.rfftfreq(n, d=1.0 / fs), f_hp, f_lp)
    return np.fft.irfft(spectrum, n=n, axis=-1)
