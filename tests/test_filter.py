"""bandpass_filter against the contract: cut-offs, raised-cosine edges, pass-through cases."""

from __future__ import annotations

import math

import numpy as np
import pytest

import calab
from calab.filter import filter_cutoffs


def ref_cutoffs(tr: float, td: float, fs: float) -> tuple[float, float]:
    return 1 / (2 * math.pi * td * 16), min(4 / (2 * math.pi * tr), fs / 2)


def ref_gain(f: np.ndarray, f_hp: float, f_lp: float) -> np.ndarray:
    f = np.abs(f)
    g = np.ones_like(f)
    lo = f <= 0.5 * f_hp
    mid = (f > 0.5 * f_hp) & (f < 1.5 * f_hp)
    g[lo] = 0.0
    g[mid] *= 0.5 * (1 - np.cos(np.pi * (f[mid] - 0.5 * f_hp) / f_hp))
    hi = f >= 1.5 * f_lp
    mid = (f > 0.5 * f_lp) & (f < 1.5 * f_lp)
    g[hi] = 0.0
    g[mid] *= 0.5 * (1 + np.cos(np.pi * (f[mid] - 0.5 * f_lp) / f_lp))
    return g


def ref_filter(y: np.ndarray, tr: float, td: float, fs: float) -> np.ndarray:
    """Full complex FFT (not rfft), two-sided gain."""
    f_hp, f_lp = ref_cutoffs(tr, td, fs)
    freqs = np.fft.fftfreq(y.size, d=1 / fs)
    return np.fft.ifft(np.fft.fft(y) * ref_gain(freqs, f_hp, f_lp)).real


def sine(freq: float, n: int, fs: float, phase: float = 0.3) -> np.ndarray:
    return np.sin(2 * np.pi * freq * np.arange(n) / fs + phase)


# Parameters that put both cut-offs on FFT bins for fs = 30 Hz and n = 3000 (0.01 Hz bins):
# f_hp = 0.01 Hz, f_lp = 2 Hz.
TD_BIN = 1 / (32 * math.pi * 0.01)
TR_BIN = 4 / (2 * math.pi * 2.0)
FS, N = 30.0, 3000


@pytest.mark.parametrize(
    ("tr", "td", "fs"),
    [(0.05, 0.5, 30.0), (0.01, 0.5, 30.0), (0.2, 1.0, 30.0), (TR_BIN, TD_BIN, FS), (0.1, 2, 7.5)],
)
def test_cutoffs_per_contract(tr: float, td: float, fs: float) -> None:
    assert filter_cutoffs(tr, td, fs) == pytest.approx(ref_cutoffs(tr, td, fs), rel=1e-14)


def test_cutoffs_on_bins_setup() -> None:
    f_hp, f_lp = ref_cutoffs(TR_BIN, TD_BIN, FS)
    assert f_hp == pytest.approx(0.01, rel=1e-12)
    assert f_lp == pytest.approx(2.0, rel=1e-12)


@pytest.mark.parametrize(
    ("freq", "gain"),
    [
        (0.01, 0.5),  # exactly f_hp
        (0.02, 1.0),  # 2 f_hp: fully passed (1.5 f_hp = 0.015)
        (0.5, 1.0),
        (1.0, 1.0),  # 0.5 f_lp
        (1.5, 0.5 + 0.5 * math.cos(math.pi / 4)),  # inside the low-pass edge
        (2.0, 0.5),  # exactly f_lp
        (2.5, 0.5 + 0.5 * math.cos(3 * math.pi / 4)),
        (3.0, 0.0),  # 1.5 f_lp
        (8.0, 0.0),
    ],
)
def test_sinusoid_gain(freq: float, gain: float) -> None:
    x = sine(freq, N, FS)
    out = calab.bandpass_filter(x, TR_BIN, TD_BIN, FS)
    np.testing.assert_allclose(out, gain * x, rtol=0, atol=1e-9)


def test_below_half_highpass_cutoff_is_removed() -> None:
    # f_hp = 0.01 Hz; a 0.004 Hz wave (0.4 f_hp) over exactly 2 periods is removed with the DC.
    n = 15000
    x = 3.0 + sine(0.004, n, FS)
    out = calab.bandpass_filter(x, TR_BIN, TD_BIN, FS)
    np.testing.assert_allclose(out, 0.0, atol=1e-9)


def test_mixture_keeps_only_passband_component() -> None:
    keep = sine(0.5, N, FS, 1.0)
    x = 10.0 + keep + 0.7 * sine(5.0, N, FS) + sine(14.0, N, FS)
    out = calab.bandpass_filter(x, TR_BIN, TD_BIN, FS)
    np.testing.assert_allclose(out, keep, atol=1e-9)


def test_lowpass_cutoff_capped_at_nyquist() -> None:
    # tau_rise 0.01 s gives 4/(2 pi 0.01) = 63.7 Hz; the cap makes f_lp = 15 Hz, so a 10 Hz wave
    # sits in the edge: gain 0.5 + 0.5 cos(pi (10 - 7.5) / 15).
    x = sine(10.0, N, FS)
    out = calab.bandpass_filter(x, 0.01, 0.5, FS)
    gain = 0.5 + 0.5 * math.cos(math.pi * 2.5 / 15)
    np.testing.assert_allclose(out, gain * x, atol=1e-9)


@pytest.mark.parametrize("n", [8, 9, 100, 1001, 4096])
@pytest.mark.parametrize(("tr", "td", "fs"), [(0.05, 0.5, 30.0), (0.01, 0.3, 122.0)])
def test_matches_full_fft_reference_on_noise(n: int, tr: float, td: float, fs: float) -> None:
    y = np.random.default_rng(n).normal(size=n).cumsum()
    out = calab.bandpass_filter(y, tr, td, fs)
    assert out.shape == (n,) and out.dtype == np.float64
    np.testing.assert_allclose(out, ref_filter(y, tr, td, fs), rtol=0, atol=1e-10)


@pytest.mark.parametrize("n", [1, 2, 7])
def test_short_traces_returned_unchanged_as_copy(n: int) -> None:
    y = np.random.default_rng(1).normal(size=n)
    out = calab.bandpass_filter(y, 0.05, 0.5, 30.0)
    np.testing.assert_array_equal(out, y)
    assert out is not y and not np.shares_memory(out, y)
    out[...] = 0
    assert np.any(y != 0)


def test_unchanged_when_highpass_not_below_lowpass() -> None:
    # fs = 0.02 Hz caps f_lp at 0.01 Hz, below f_hp = 1/(2 pi 0.5 16) = 0.0199 Hz.
    y = np.random.default_rng(2).normal(size=(3, 50))
    out = calab.bandpass_filter(y, 0.05, 0.5, 0.02)
    np.testing.assert_array_equal(out, y)
    assert not np.shares_memory(out, y)


def test_2d_filters_each_row_like_1d() -> None:
    y = np.random.default_rng(3).normal(size=(4, 777)).cumsum(axis=1)
    out = calab.bandpass_filter(y, 0.05, 0.5, 30.0)
    assert out.shape == y.shape
    for i in range(4):
        np.testing.assert_allclose(
            out[i], calab.bandpass_filter(y[i], 0.05, 0.5, 30.0), rtol=0, atol=1e-12
        )


def test_input_not_modified_and_dtypes() -> None:
    y = np.random.default_rng(4).normal(size=(2, 300)).cumsum(axis=1)
    y32 = y.astype(np.float32)
    keep, keep32 = y.copy(), y32.copy()
    out = calab.bandpass_filter(y, 0.05, 0.5, 30.0)
    out32 = calab.bandpass_filter(y32, 0.05, 0.5, 30.0)
    np.testing.assert_array_equal(y, keep)
    np.testing.assert_array_equal(y32, keep32)
    assert out32.dtype == np.float64
    np.testing.assert_allclose(
        out32, calab.bandpass_filter(y32.astype(np.float64), 0.05, 0.5, 30.0), atol=1e-12
    )
    counts = np.round(y * 100).astype(np.int16)
    np.testing.assert_allclose(
        calab.bandpass_filter(counts, 0.05, 0.5, 30.0),
        calab.bandpass_filter(counts.astype(np.float64), 0.05, 0.5, 30.0),
        atol=1e-12,
    )
    f_order = np.asfortranarray(y)
    np.testing.assert_allclose(calab.bandpass_filter(f_order, 0.05, 0.5, 30.0), out, atol=1e-12)
    assert np.abs(out).max() > 0.1  # the filter did something


def test_filtered_trace_has_zero_mean() -> None:
    y = 5.0 + np.random.default_rng(5).normal(size=1000)
    out = calab.bandpass_filter(y, 0.05, 0.5, 30.0)
    assert abs(out.mean()) < 1e-12
