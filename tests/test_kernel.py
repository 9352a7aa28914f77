"""Kernel shape, AR(2) form, Lipschitz constant and timing figures against independent numpy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from _reference import conv_matrix, kernel

import calab

PARAMS = [
    (0.05, 0.5, 30.0),  # GCaMP6f-like
    (0.05, 1.5, 30.0),  # GCaMP6s-like
    (0.01, 0.3, 122.0),  # jGCaMP8m-like, fast sampling
    (0.1, 2.0, 7.5),  # slow indicator, slow sampling
    (0.2, 0.25, 100.0),  # rise close to decay
    (0.001, 0.002, 30.0),  # shorter than a frame: L = 2
]


@pytest.mark.parametrize(("tr", "td", "fs"), PARAMS)
def test_build_kernel_matches_formula(tr: float, td: float, fs: float) -> None:
    h = calab.build_kernel(tr, td, fs)
    ref = kernel(tr, td, fs)
    assert isinstance(h, np.ndarray)
    assert h.dtype == np.float64
    assert h.shape == (max(2, math.ceil(-math.log(1e-6) * td * fs)),)
    np.testing.assert_allclose(h, ref, rtol=1e-12, atol=1e-15)
    assert h[0] == 0.0
    assert h.max() == pytest.approx(1.0, abs=1e-15)
    assert np.all(h >= 0)


def test_very_short_kernel_has_two_samples() -> None:
    h = calab.build_kernel(0.001, 0.002, 30.0)
    np.testing.assert_array_equal(h, [0.0, 1.0])


def test_kernel_length_covers_decay_to_1e6() -> None:
    tr, td, fs = 0.05, 0.5, 30.0
    n = calab.build_kernel(tr, td, fs).size
    # The decay factor has fallen to 1e-6 at n (not yet at n - 1).
    assert math.exp(-n / (fs * td)) <= 1e-6 < math.exp(-(n - 1) / (fs * td))


@pytest.mark.parametrize(("tr", "td", "fs"), PARAMS)
def test_tau_to_ar2_values(tr: float, td: float, fs: float) -> None:
    g1, g2, d, r = calab.tau_to_ar2(tr, td, fs)
    assert all(isinstance(v, float) for v in (g1, g2, d, r))
    assert d == pytest.approx(math.exp(-1 / (fs * td)), rel=1e-14)
    assert r == pytest.approx(math.exp(-1 / (fs * tr)), rel=1e-14, abs=1e-300)
    assert g1 == pytest.approx(d + r, rel=1e-14)
    assert g2 == pytest.approx(-d * r, rel=1e-14, abs=1e-300)


@pytest.mark.parametrize(("tr", "td", "fs"), PARAMS)
def test_ar2_recursion_reproduces_kernel(tr: float, td: float, fs: float) -> None:
    h = calab.build_kernel(tr, td, fs)
    g1, g2, d, r = calab.tau_to_ar2(tr, td, fs)
    # Impulse of height (d - r) at frame 1 through c[t] = g1 c[t-1] + g2 c[t-2] + x[t].
    c = np.zeros(h.size)
    for t in range(1, h.size):
        x = (d - r) if t == 1 else 0.0
        c[t] = g1 * c[t - 1] + (g2 * c[t - 2] if t >= 2 else 0.0) + x
    np.testing.assert_allclose(c / c.max(), h, rtol=1e-9, atol=1e-12)
    # And the kernel itself obeys the homogeneous recursion from i = 2 on.
    np.testing.assert_allclose(h[2:], g1 * h[1:-1] + g2 * h[:-2], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize(("tr", "td", "fs"), PARAMS)
def test_lipschitz_is_sum_squared_for_catune_kernels(tr: float, td: float, fs: float) -> None:
    h = calab.build_kernel(tr, td, fs)
    assert calab.compute_lipschitz(h) == pytest.approx(h.sum() ** 2, rel=1e-12)


def _dtft_max(h: np.ndarray, n_freq: int = 200_001) -> float:
    w = np.linspace(0.0, np.pi, n_freq)
    spectrum = np.exp(-1j * np.outer(w, np.arange(h.size))) @ h
    return float(np.max(np.abs(spectrum) ** 2))


@pytest.mark.parametrize(
    "h",
    [
        np.array([1.0, -1.0]),  # max at w = pi: 4
        np.array([1.0, -2.0, 1.0]),  # 16
        np.array([0.5, 1.0, 0.5]),  # max at DC: 4
        np.random.default_rng(7).normal(size=12),
        np.array([3.0]),
    ],
    ids=["diff", "second-diff", "smooth", "random", "scalar"],
)
def test_lipschitz_general_kernels_vs_fine_dtft(h: np.ndarray) -> None:
    assert calab.compute_lipschitz(h) == pytest.approx(_dtft_max(h, 20_001), rel=1e-3)


def test_lipschitz_known_values() -> None:
    assert calab.compute_lipschitz(np.array([1.0, -1.0])) == pytest.approx(4.0, rel=1e-12)
    assert calab.compute_lipschitz(np.array([1.0, -2.0, 1.0])) == pytest.approx(16.0, rel=1e-12)


def test_lipschitz_bounds_dense_operator_norm() -> None:
    """||K||_2^2 of the n x n convolution matrix rises towards max|H|^2 from below."""
    h = calab.build_kernel(0.1, 0.5, 10.0)
    lip = calab.compute_lipschitz(h)
    norms = []
    for n in (40, 160, 640):
        sigma = np.linalg.norm(conv_matrix(n, h), 2)
        norms.append(sigma**2)
    assert all(v <= lip * (1 + 1e-12) for v in norms)
    assert norms[0] < norms[1] < norms[2]
    assert norms[-1] > 0.99 * lip


def test_lipschitz_bounds_dense_operator_norm_oscillating_kernel() -> None:
    h = np.array([1.0, -1.5, 0.8, -0.2])
    lip = calab.compute_lipschitz(h)
    sigma2 = np.linalg.norm(conv_matrix(400, h), 2) ** 2
    assert sigma2 <= lip * (1 + 1e-9)
    assert sigma2 > 0.995 * lip


@pytest.mark.parametrize(("tr", "td", "fs"), PARAMS)
def test_kernel_timing_vs_fine_grid(tr: float, td: float, fs: float) -> None:
    t_peak, fwhm = calab.kernel_timing(tr, td, fs)
    dt = td * 1e-5
    t = np.arange(0.0, 30 * td, dt)
    y = np.exp(-t / td) - np.exp(-t / tr)
    k = int(np.argmax(y))
    above = np.flatnonzero(y >= y[k] / 2)
    assert t_peak == pytest.approx(t[k], abs=2 * dt)
    assert fwhm == pytest.approx(t[above[-1]] - t[above[0]], abs=3 * dt)


def test_kernel_timing_independent_of_fs() -> None:
    """The figures describe the continuous kernel, so the sampling rate must not matter."""
    a = calab.kernel_timing(0.05, 0.5, 30.0)
    b = calab.kernel_timing(0.05, 0.5, 1000.0)
    assert a == pytest.approx(b, rel=1e-12)
