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


@pytest.mark.parametrize(
    "name", ["GCaMP6f", "gcamp6s", "jGCaMP7f", "JGCAMP8F", "jGCaMP8m", "jGCaMP8s"]
)
def test_indicator_presets_set_the_kernel(name: str) -> None:
    from calab.simulate import INDICATORS

    tr, td = INDICATORS[name.lower()]
    traces, spikes, truth = calab.simulate(
        3, 2000, 100.0, indicator=name, snr=1e9, baseline=0.0, seed=1, return_truth=True
    )
    assert (truth.tau_rise, truth.tau_decay) == (tr, td)
    h = kernel(tr, td, 100.0)
    np.testing.assert_allclose(traces, np.stack([conv(s, h) for s in spikes]), atol=1e-7)


def test_jgcamp8_presets_have_the_published_timing() -> None:
    """Time to peak and half-decay (from the peak) of the 1-AP responses, Zhang et al. 2023."""
    from calab.simulate import INDICATORS

    published = {"jgcamp7f": (0.0995, 0.1819), "jgcamp8f": (0.0248, 0.0674),
                 "jgcamp8m": (0.0290, 0.1183), "jgcamp8s": (0.0570, 0.3067)}  # fmt: skip
    t = np.arange(0, 3.0, 1e-5)
    for name, (t_peak, half_decay) in published.items():
        tr, td = INDICATORS[name]
        shape = np.exp(-t / td) - np.exp(-t / tr)
        k = int(np.argmax(shape))
        after = np.flatnonzero(shape[k:] < 0.5 * shape[k])[0]
        assert t[k] == pytest.approx(t_peak, rel=0.03), name
        assert t[after] == pytest.approx(half_decay, rel=0.03), name


def test_truth_baseline_holds_offset_drift_and_bleaching() -> None:
    traces, spikes, truth = calab.simulate(
        4, 18000, 30.0, 0.05, 0.5, snr=1e9, baseline=2.0, drift=0.5, bleach=1.5, seed=3,
        return_truth=True,
    )  # fmt: skip
    h = kernel(0.05, 0.5, 30.0)
    np.testing.assert_allclose(
        traces, truth.baseline + np.stack([conv(s, h) for s in spikes]), atol=1e-7
    )
    t = np.arange(18000) / 30.0
    slow = truth.baseline - 2.0 - 1.5 * np.exp(-t / 120.0)
    # Drift: three sinusoids with periods of 300-1200 s, unit SD before scaling by 0.5.
    assert np.all(np.abs(slow) <= 0.5 * 3 / np.sqrt(1.5) + 1e-9)
    assert np.all(slow.std(axis=1) > 0.05)
    assert (
        np.abs(np.diff(slow, axis=1)).max()
        < 0.5 * 3 * 2 * np.pi / 300.0 / 30.0 / np.sqrt(1.5) + 1e-12
    )
    assert truth.baseline[:, 0] == pytest.approx(2.0 + 1.5 + slow[:, 0])


def test_no_drift_no_bleach_keeps_the_flat_baseline() -> None:
    _, _, truth = calab.simulate(2, 500, seed=1, baseline=1.5, return_truth=True)
    np.testing.assert_array_equal(truth.baseline, 1.5)
    np.testing.assert_array_equal(truth.noise_sd, 0.2)


@pytest.mark.parametrize("snr", [(2.0, 8.0), np.array([2.0, 4.0, 8.0])])
def test_noise_level_per_cell(snr: object) -> None:
    traces, spikes, truth = calab.simulate(
        3, 20000, 30.0, snr=snr, baseline=0.0, seed=8, return_truth=True
    )
    noise = traces - np.stack([conv(s, kernel(0.05, 0.5, 30.0)) for s in spikes])
    np.testing.assert_allclose(noise.std(axis=1), truth.noise_sd, rtol=0.03)
    assert np.all((truth.noise_sd >= 1 / 8.0 - 1e-12) & (truth.noise_sd <= 1 / 2.0 + 1e-12))
    assert np.ptp(truth.noise_sd) > 0


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"indicator": "GCaMP9"}, ValueError, "indicator must be one of"),
        ({"indicator": 6}, TypeError, "indicator"),
        ({"indicator": "GCaMP6f", "tau_rise": 0.05}, ValueError, "either indicator"),
        ({"snr": (5.0, 2.0)}, ValueError, "low <= high"),
        ({"snr": np.array([1.0, 2.0])}, ValueError, "snr must be"),
        ({"snr": (0.0, 2.0)}, ValueError, "snr"),
        ({"drift": -1.0}, ValueError, "drift"),
        ({"bleach": float("nan")}, ValueError, "bleach"),
        ({"drift_period_s": 0.0}, ValueError, "drift_period_s"),
        ({"bleach_tau_s": -5.0}, ValueError, "bleach_tau_s"),
    ],
)
def test_bad_simulation_arguments(kwargs: dict, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        calab.simulate(3, 100, **kwargs)
