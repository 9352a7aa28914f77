"""calab.simulate: shapes, reproducibility, spike statistics and noise level."""

from __future__ import annotations

import numpy as np
import pytest
from _reference import conv, kernel

import calab


def test_default_shapes_and_dtypes() -> None:
    traces, spikes = calab.simulate()
    assert traces.shape == spikes.shape == (10, 9000)
    assert traces.dtype == np.float64 and spikes.dtype == np.float64


@pytest.mark.parametrize(("n_cells", "n_frames"), [(1, 1), (1, 50), (3, 7), (5, 1000)])
def test_requested_shape(n_cells: int, n_frames: int) -> None:
    traces, spikes = calab.simulate(n_cells, n_frames, seed=1)
    assert traces.shape == spikes.shape == (n_cells, n_frames)
    assert np.all(np.isfinite(traces))


def test_same_seed_same_data_different_seed_different_data() -> None:
    a = calab.simulate(3, 500, seed=42)
    b = calab.simulate(3, 500, seed=42)
    c = calab.simulate(3, 500, seed=43)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert not np.array_equal(a[0], c[0])
    assert not np.array_equal(a[1], c[1])


def test_seed_none_is_random() -> None:
    a, _ = calab.simulate(2, 300, seed=None)
    b, _ = calab.simulate(2, 300, seed=None)
    assert not np.array_equal(a, b)


def test_spikes_are_nonnegative_integers() -> None:
    _, spikes = calab.simulate(5, 5000, rate_hz=5.0, seed=3)
    assert np.all(spikes >= 0)
    np.testing.assert_array_equal(spikes, np.round(spikes))
    assert spikes.max() >= 2  # Poisson counts: several spikes can share a frame at 5 Hz / 30 Hz


@pytest.mark.parametrize(("rate", "fs"), [(0.5, 30.0), (2.0, 30.0), (5.0, 100.0)])
def test_rate_as_requested(rate: float, fs: float) -> None:
    n_cells, n_frames = 20, 9000
    _, spikes = calab.simulate(n_cells, n_frames, fs, 0.05, 0.5, rate_hz=rate, seed=4)
    expected = rate * n_cells * n_frames / fs
    # Poisson total: sd = sqrt(expected); allow 5 sd.
    assert abs(spikes.sum() - expected) < 5 * np.sqrt(expected), (spikes.sum(), expected)
    per_cell = spikes.sum(axis=1) / (n_frames / fs)
    assert np.all(np.abs(per_cell - rate) < 0.25 * rate + 0.2)


@pytest.mark.parametrize("snr", [2.0, 5.0, 20.0])
@pytest.mark.parametrize(("tr", "td", "fs"), [(0.05, 0.5, 30.0), (0.05, 1.5, 30.0)])
def test_trace_is_baseline_plus_kernel_spikes_plus_noise(
    snr: float, tr: float, td: float, fs: float
) -> None:
    base = 2.5
    traces, spikes = calab.simulate(8, 6000, fs, tr, td, snr=snr, baseline=base, seed=5)
    h = kernel(tr, td, fs)
    noise = traces - base - np.stack([conv(s, h) for s in spikes])
    n = noise.size
    # The residual is white Gaussian noise with sd 1/snr and mean 0.
    assert noise.std() == pytest.approx(1 / snr, rel=5 / np.sqrt(2 * n))
    assert abs(noise.mean()) < 5 * (1 / snr) / np.sqrt(n)
    lag1 = np.mean(noise[:, 1:] * noise[:, :-1]) / noise.var()
    assert abs(lag1) < 0.02


def test_noise_free_trace_is_kernel_times_spikes() -> None:
    traces, spikes = calab.simulate(4, 3000, snr=1e9, baseline=3.0, seed=6)
    h = kernel(0.05, 0.5, 30.0)
    np.testing.assert_allclose(traces, 3.0 + np.stack([conv(s, h) for s in spikes]), atol=1e-7)
    assert traces[:, 0] == pytest.approx(3.0, abs=1e-7)  # h[0] = 0: frame 0 is the baseline


def test_simulated_data_deconvolve_back() -> None:
    """The generator and the solver share the model: noiseless data invert exactly."""
    traces, spikes = calab.simulate(2, 1500, snr=1e9, baseline=1.0, seed=7)
    spikes[:, -1] = 0  # a spike in the last frame is invisible (h[0] = 0)
    act = calab.run_deconvolution(traces, 30.0, 0.05, 0.5, 1e-7)
    np.testing.assert_allclose(act[:, :-1], spikes[:, :-1], atol=1e-3)
