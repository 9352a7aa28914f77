"""calab.drift_baseline: running extremes against brute force, drift following, errors."""

from __future__ import annotations

import numpy as np
import pytest
from _reference import conv, kernel
from numpy.lib.stride_tricks import sliding_window_view

import calab
from calab.baseline import _running_extreme, boxcar


def _brute(x: np.ndarray, width: int, op: str) -> np.ndarray:
    """Centred running min/max by brute force, the window shrinking at the edges."""
    left = (width - 1) // 2
    fill = np.inf if op == "min" else -np.inf
    padded = np.full((x.shape[0], x.shape[1] + width - 1), fill)
    padded[:, left : left + x.shape[1]] = x
    win = sliding_window_view(padded, width, axis=1)
    return win.min(axis=2) if op == "min" else win.max(axis=2)


@pytest.mark.parametrize("width", [1, 2, 3, 7, 10, 64, 99, 500])
@pytest.mark.parametrize("op", ["min", "max"])
def test_running_extreme_matches_brute_force(width: int, op: str) -> None:
    x = np.random.default_rng(width).normal(size=(3, 257))
    ufunc, fill = (np.minimum, np.inf) if op == "min" else (np.maximum, -np.inf)
    np.testing.assert_array_equal(_running_extreme(x, width, ufunc, fill), _brute(x, width, op))


@pytest.mark.parametrize("width", [1, 4, 5, 300])
def test_boxcar_matches_brute_force(width: int) -> None:
    x = np.random.default_rng(1).normal(size=(2, 101))
    left = (width - 1) // 2
    right = width - 1 - left
    want = np.array(
        [[row[max(0, i - left) : i + right + 1].mean() for i in range(row.size)] for row in x]
    )
    np.testing.assert_allclose(boxcar(x, width), want, atol=1e-12)


def test_constant_trace_is_its_own_baseline() -> None:
    y = np.full((2, 3000), 2.5)
    np.testing.assert_allclose(calab.drift_baseline(y, 30.0), y, atol=1e-12)


def test_linear_ramp_is_followed_exactly_away_from_the_edges() -> None:
    fs, window = 30.0, 10.0
    t = np.arange(9000) / fs
    y = 1.0 + 0.02 * t
    b = calab.drift_baseline(y, fs, window)
    assert b.shape == y.shape
    edge = int(window * fs)
    np.testing.assert_allclose(b[edge:-edge], y[edge:-edge], atol=1e-9)


@pytest.mark.parametrize(
    ("tr", "td", "fs", "rate", "window_s"),
    [(0.02, 0.4, 30.0, 0.2, None), (0.05, 1.5, 60.0, 0.1, 60.0)],
)
def test_follows_bleaching_and_slow_drift_within_the_noise_sd(
    tr: float, td: float, fs: float, rate: float, window_s: float | None
) -> None:
    """The window must hold pauses of a few decay times (else the calcium floor is followed)."""
    rng = np.random.default_rng(7)
    n_cells, n_frames, sd = 6, int(300 * fs), 0.1
    t = np.arange(n_frames) / fs
    drift = 1.0 + 0.5 * np.exp(-t / 60.0) + 0.2 * np.sin(2 * np.pi * t / 400.0)
    spikes = rng.poisson(rate / fs, size=(n_cells, n_frames)).astype(float)
    h = kernel(tr, td, fs)
    y = drift + np.stack([conv(s, h) for s in spikes]) + rng.normal(0, sd, (n_cells, n_frames))
    b = calab.drift_baseline(y, fs, window_s)
    err = np.abs(b - drift)
    # Half a window from each edge the running windows are whole: there the error stays below
    # the noise SD. At the edges the trend is extrapolated from the interior: 2 noise SDs.
    half = int((window_s or 30.0) * fs / 2)
    assert err[:, half:-half].max() < sd, err[:, half:-half].max()
    assert err.max() < 2 * sd, err.max()
    # A flat baseline could not do this: the drift spans 0.9 here, 9 noise SDs.
    assert np.ptp(drift) > 5 * sd


def test_one_row_and_one_dimensional_input_agree() -> None:
    y = np.random.default_rng(2).normal(size=(1, 4000)).cumsum(axis=1)
    two = calab.drift_baseline(y, 20.0, 5.0)
    one = calab.drift_baseline(y[0], 20.0, 5.0)
    assert one.shape == (4000,)
    np.testing.assert_array_equal(one, two[0])


def test_baseline_lies_under_the_transients() -> None:
    fs = 30.0
    spikes = np.zeros(3000)
    spikes[[500, 1500, 2500]] = 5.0
    y = conv(spikes, kernel(0.05, 0.5, fs)) + 0.3
    b = calab.drift_baseline(y, fs, 20.0)
    np.testing.assert_allclose(b, 0.3, atol=1e-9)


@pytest.mark.parametrize(
    ("kwargs", "exc", "match"),
    [
        ({"fs": 0.0}, ValueError, "fs"),
        ({"fs": -30.0}, ValueError, "fs"),
        ({"fs": "30"}, TypeError, "fs"),
        ({"fs": 30.0, "window_s": 0.0}, ValueError, "window_s"),
        ({"fs": 30.0, "window_s": float("nan")}, ValueError, "window_s"),
        ({"fs": 30.0, "smooth_s": -1.0}, ValueError, "smooth_s"),
    ],
)
def test_bad_arguments_are_named(kwargs: dict, exc: type, match: str) -> None:
    with pytest.raises(exc, match=match):
        calab.drift_baseline(np.ones(100), **kwargs)


def test_bad_traces_are_named() -> None:
    y = np.ones((2, 100))
    y[1, 7] = np.nan
    with pytest.raises(ValueError, match="cell 1, frame 7"):
        calab.drift_baseline(y, 30.0)
    with pytest.raises(ValueError, match="traces must be 1-D"):
        calab.drift_baseline(np.ones((2, 2, 2)), 30.0)
    with pytest.raises(TypeError, match="traces must hold real numbers"):
        calab.drift_baseline(np.array(["a", "b"]), 30.0)


@pytest.mark.parametrize(("n", "step"), [(100, 7), (99, 7), (50, 1), (29, 7), (8, 7)])
def test_interpolation_matches_numpy(n: int, step: int) -> None:
    from calab.baseline import _interpolate

    pos = np.arange(0, n, step)
    if pos[-1] != n - 1:
        pos = np.append(pos, n - 1)
    values = np.random.default_rng(n).normal(size=(2, pos.size))
    want = np.array([np.interp(np.arange(n), pos, row) for row in values])
    np.testing.assert_allclose(_interpolate(values, pos, n), want, atol=1e-12)
