"""Spike inference on real recordings with simultaneous electrophysiology (Cascade ground truth).

For each dataset the traces are deconvolved with textbook indicator time constants (not tuned to
these cells) and lambda scaled by each trace's noise level. The activity and the recorded spike
counts are both Gaussian-smoothed (sd 2 frames) and correlated at the best lag in 0..3 frames.
"""

from __future__ import annotations

import functools
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from _reference import best_lag_corr, gaussian_smooth

import calab

# Real recordings drift: these tests score the constant-baseline model on purpose, which
# run_deconvolution warns about (issue 18).
pytestmark = pytest.mark.filterwarnings("ignore:the traces drift:UserWarning")

# file -> (tau_rise s, tau_decay s, floor for the median r over cells, floor for the worst cell)
# Floors are set about 0.1 below what calab 0.1.0 measured (medians 0.78 / 0.85 / 0.81).
DATASETS = {
    "DS09-GCaMP6f-m-V1.npz": (0.03, 0.5, 0.70, 0.55),
    "DS14-GCaMP6s-m-V1.npz": (0.05, 1.2, 0.75, 0.65),
    "DS31-GCaMP8m-m-V1.npz": (0.01, 0.3, 0.70, 0.65),
}
LAM_PER_NOISE_SD = 0.2
SMOOTH_SD = 2.0
MAX_LAG = 3


@functools.cache
def _load(path: Path) -> tuple[np.ndarray, np.ndarray, float]:
    with np.load(path) as d:
        return d["traces"], d["spike_counts"], float(d["fs"])


@functools.cache
def _solve(path: Path) -> calab.DeconvolutionResult:
    """Each row with its own lambda (LAM_PER_NOISE_SD x its noise SD)."""
    traces, _, fs = _load(path)
    tr, td = DATASETS[path.name][:2]
    sd = noise_sd(traces.astype(np.float64))
    rows = [
        calab.run_deconvolution_full(traces[i], fs, tr, td, LAM_PER_NOISE_SD * sd[i])
        for i in range(traces.shape[0])
    ]
    return calab.DeconvolutionResult(
        np.stack([r.activity for r in rows]),
        np.array([r.baseline for r in rows]),
        np.stack([r.reconvolution for r in rows]),
        np.array([r.iterations for r in rows]),
        np.array([r.converged for r in rows]),
    )


def _path(ground_truth_dir: Path, filename: str) -> Path:
    path = ground_truth_dir / filename
    if not path.exists():
        pytest.skip(f"{filename} not found in {ground_truth_dir}")
    return path


def noise_sd(traces: np.ndarray) -> np.ndarray:
    """Robust per-row noise SD from frame-to-frame differences (MAD)."""
    d = np.diff(traces, axis=-1)
    mad = np.median(np.abs(d - np.median(d, axis=-1, keepdims=True)), axis=-1)
    return mad / 0.6745 / np.sqrt(2)


def naive_activity(traces: np.ndarray) -> np.ndarray:
    """Baseline to beat: the positive part of the next-frame difference of the trace."""
    d = np.diff(traces, axis=-1, append=traces[..., -1:])
    return np.maximum(d, 0)


def correlations(activity: np.ndarray, spikes: np.ndarray) -> list[float]:
    return [
        best_lag_corr(
            gaussian_smooth(activity[i], SMOOTH_SD), gaussian_smooth(spikes[i], SMOOTH_SD), MAX_LAG
        )[0]
        for i in range(activity.shape[0])
    ]


@pytest.mark.parametrize("filename", sorted(DATASETS))
def test_activity_correlates_with_recorded_spikes(
    filename: str, ground_truth_dir: Path, record_property: Any
) -> None:
    path = _path(ground_truth_dir, filename)
    tr, td, median_floor, min_floor = DATASETS[filename]
    traces, spikes, _ = _load(path)
    assert traces.dtype == np.float32 and traces.shape == spikes.shape

    activity = _solve(path).activity
    assert activity.shape == traces.shape and np.all(activity >= 0)

    rs = correlations(activity, spikes)
    naive = correlations(naive_activity(traces.astype(np.float64)), spikes)
    median, worst, naive_median = float(np.median(rs)), float(np.min(rs)), float(np.median(naive))
    summary = (
        f"{filename}: tau {tr}/{td} s, lam {LAM_PER_NOISE_SD} x noise sd; "
        f"median r {median:.3f}, min {worst:.3f}, per cell {np.round(rs, 3).tolist()}; "
        f"naive diff baseline median {naive_median:.3f}"
    )
    record_property("median_r", round(median, 4))
    record_property("min_r", round(worst, 4))
    record_property("summary", summary)
    assert median > median_floor, summary
    assert worst > min_floor, summary
    assert median > naive_median + 0.05, summary


def _converged_all(filename: str, ground_truth_dir: Path) -> None:
    res = _solve(_path(ground_truth_dir, filename))
    assert np.all(res.converged), (
        f"{filename}: not converged in rows {np.flatnonzero(~res.converged).tolist()}; "
        f"iterations {res.iterations.tolist()}"
    )


@pytest.mark.parametrize(
    "filename",
    [
        "DS09-GCaMP6f-m-V1.npz",
        "DS14-GCaMP6s-m-V1.npz",
        "DS31-GCaMP8m-m-V1.npz",
    ],
)
def test_solver_converges_on_real_traces(filename: str, ground_truth_dir: Path) -> None:
    _converged_all(filename, ground_truth_dir)


# Targets for automatic parameters (issue 17), per dataset and frame-averaging factor k (k frames
# averaged into one, spikes summed: the recording's own rate, ~30 Hz and ~15 Hz): (OASIS automatic,
# calab's best single global setting of 8 kernels x 6 lambdas), both measured with the score
# below by `bench/accuracy.py --auto` (they do not depend on the estimate). Automatic calab must
# reach OASIS - 0.005 and come within 0.02 of the best global setting.
AUTO_TARGETS: dict[tuple[str, int], tuple[float, float]] = {
    ("DS07-GCaMP6f-zf-dD.npz", 1): (0.198, 0.421),
    ("DS07-GCaMP6f-zf-dD.npz", 2): (0.146, 0.516),
    ("DS09-GCaMP6f-m-V1.npz", 1): (0.755, 0.778),
    ("DS09-GCaMP6f-m-V1.npz", 2): (0.715, 0.758),
    ("DS09-GCaMP6f-m-V1.npz", 4): (0.703, 0.777),
    ("DS10-GCaMP6f-m-V1-neuropil-corrected.npz", 1): (0.676, 0.717),
    ("DS10-GCaMP6f-m-V1-neuropil-corrected.npz", 5): (0.616, 0.693),
    ("DS10-GCaMP6f-m-V1-neuropil-corrected.npz", 10): (0.580, 0.680),
    ("DS13-GCaMP6s-m-V1-neuropil-corrected.npz", 1): (0.598, 0.797),
    ("DS13-GCaMP6s-m-V1-neuropil-corrected.npz", 5): (0.756, 0.788),
    ("DS13-GCaMP6s-m-V1-neuropil-corrected.npz", 10): (0.756, 0.812),
    ("DS14-GCaMP6s-m-V1.npz", 1): (0.679, 0.838),
    ("DS14-GCaMP6s-m-V1.npz", 2): (0.713, 0.844),
    ("DS14-GCaMP6s-m-V1.npz", 4): (0.766, 0.861),
    ("DS29-GCaMP7f-m-V1.npz", 1): (0.853, 0.882),
    ("DS29-GCaMP7f-m-V1.npz", 4): (0.863, 0.868),
    ("DS29-GCaMP7f-m-V1.npz", 8): (0.818, 0.873),
    ("DS31-GCaMP8m-m-V1.npz", 1): (0.897, 0.911),
    ("DS31-GCaMP8m-m-V1.npz", 4): (0.904, 0.888),
    ("DS31-GCaMP8m-m-V1.npz", 8): (0.856, 0.901),
}
# Where the estimate does not reach a target yet, and by how much (bench/accuracy.py --auto).
# Strict: a pass is reported, so a mark goes when the method improves.
AUTO_SHORT: dict[tuple[str, int], str] = {
    ("DS07-GCaMP6f-zf-dD.npz", 1): "0.342, 0.08 below the best global setting",
    ("DS07-GCaMP6f-zf-dD.npz", 2): "0.374, 0.14 below the best global setting",
    ("DS10-GCaMP6f-m-V1-neuropil-corrected.npz", 1): "0.694, 0.023 below the best global",
    ("DS10-GCaMP6f-m-V1-neuropil-corrected.npz", 5): "0.670, 0.023 below the best global",
    ("DS10-GCaMP6f-m-V1-neuropil-corrected.npz", 10): "0.618, 0.06 below the best global",
    ("DS13-GCaMP6s-m-V1-neuropil-corrected.npz", 5): "0.759, 0.03 below the best global",
    ("DS13-GCaMP6s-m-V1-neuropil-corrected.npz", 10): "0.767, 0.045 below the best global",
    ("DS14-GCaMP6s-m-V1.npz", 2): "0.823, 0.021 below the best global",
    ("DS14-GCaMP6s-m-V1.npz", 4): "0.828, 0.03 below the best global",
    ("DS29-GCaMP7f-m-V1.npz", 8): "0.843, 0.03 below the best global",
    ("DS31-GCaMP8m-m-V1.npz", 8): "0.875, 0.026 below the best global",
}
LAGS = (-1, 0, 1, 2)
"""Activity moved one frame later, unchanged, one or two frames earlier: the best counts.

The files count each spike in its nearest frame; CaTune's convention (h[0] = 0, activity at the
last frame before the rise) and OASIS's AR convention each sit half a frame off it on opposite
sides, so the window is symmetric about half a frame (../shared/notes/solver-facts.md)."""


def binned_score(activity: np.ndarray, spikes: np.ndarray, fs: float) -> float:
    """Median over cells of the best (:data:`LAGS`) Pearson r of 100 ms bin sums."""
    width = max(1, int(round(0.1 * fs)))
    n = activity.shape[1]
    best = np.full(activity.shape[0], -np.inf)
    for lag in LAGS:
        if lag >= 0:
            a, s = activity[:, lag:], spikes[:, : n - lag]
        else:
            a, s = activity[:, : n + lag], spikes[:, -lag:]
        m = a.shape[1] // width
        a = a[:, : m * width].reshape(a.shape[0], m, width).sum(axis=2)
        s = s[:, : m * width].reshape(s.shape[0], m, width).sum(axis=2)
        r = [np.corrcoef(x, y)[0, 1] if x.std() > 0 else 0.0 for x, y in zip(a, s, strict=True)]
        best = np.maximum(best, r)
    return float(np.median(best))


def test_score_window_is_symmetric_about_half_a_frame() -> None:
    """Activity one frame early or one frame late scores as well as activity on time."""
    rng = np.random.default_rng(0)
    spikes = (rng.random((3, 6000)) < 0.02).astype(np.float64)
    on_time = binned_score(spikes, spikes, 30.0)
    later = np.roll(spikes, 1, axis=1)
    earlier = np.roll(spikes, -1, axis=1)
    assert on_time == pytest.approx(1.0)
    assert binned_score(later, spikes, 30.0) == pytest.approx(1.0, abs=1e-3)
    assert binned_score(earlier, spikes, 30.0) == pytest.approx(1.0, abs=1e-3)
    # Three frames late is outside the window.
    assert binned_score(np.roll(spikes, 3, axis=1), spikes, 30.0) < 0.9


def _averaged(filename: str, factor: int, ground_truth_dir: Path) -> tuple:
    traces, spikes, fs = _load(_path(ground_truth_dir, filename))
    m = traces.shape[1] // factor
    y = traces[:, : m * factor].reshape(traces.shape[0], m, factor).mean(axis=2)
    s = spikes[:, : m * factor].reshape(spikes.shape[0], m, factor).sum(axis=2)
    return y, s, fs / factor


@pytest.mark.parametrize(
    ("filename", "factor"),
    [
        pytest.param(*k, marks=pytest.mark.xfail(reason=AUTO_SHORT[k], strict=True))
        if k in AUTO_SHORT
        else k
        for k in AUTO_TARGETS
    ],
)
def test_automatic_parameters_reach_the_targets(
    filename: str, factor: int, ground_truth_dir: Path, record_property: Any
) -> None:
    """Every dataset at its own rate, ~30 and ~15 Hz: OASIS automatic - 0.005, grid best - 0.02."""
    y, spikes, fs = _averaged(filename, factor, ground_truth_dir)
    est = calab.estimate_parameters(y.astype(np.float64), fs)  # no spike data used
    act = calab.run_deconvolution(
        y.astype(np.float64), fs, est.tau_rise, est.tau_decay, est.lam, baseline=est.baseline
    )
    score = binned_score(act, spikes.astype(np.float64), fs)
    oasis, grid = AUTO_TARGETS[(filename, factor)]
    record_property("auto_median_r", round(score, 4))
    summary = (
        f"{filename} at {fs:.1f} Hz: automatic {score:.3f} (kernel {est.tau_rise:.4f}/"
        f"{est.tau_decay:.3f} s, {est.baseline}); OASIS automatic {oasis}, best global {grid}"
    )
    assert score >= oasis - 0.005, summary
    assert score >= grid - 0.02, summary


@pytest.mark.parametrize("filename", sorted(DATASETS))
def test_every_single_real_trace_gets_an_estimate(filename: str, ground_truth_dir: Path) -> None:
    """One cell alone is enough: no exception, a kernel in the indicator's range of decays.

    A collapsed kernel is no longer returned silently: the verdict flags it, warns
    (UnreliableEstimateWarning) and returns the documented default kernel instead.
    """
    from calab.estimate_verdict import UnreliableEstimateWarning

    traces, _, fs = _load(_path(ground_truth_dir, filename))
    for row in traces.astype(np.float64):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            est = calab.estimate_parameters(row, fs)
        assert all(w.category is UnreliableEstimateWarning for w in caught), caught
        assert est.quality is not None and est.quality.fallback == bool(caught)
        assert 0 < est.tau_rise < est.tau_decay < 5.0
        assert est.lam.shape == (1,) and est.lam[0] > 0


def _auto_score(traces: np.ndarray, spikes: np.ndarray, fs: float) -> float:
    y = traces.astype(np.float64)
    est = calab.estimate_parameters(y, fs)  # no spike data used
    act = calab.run_deconvolution(
        y, fs, est.tau_rise, est.tau_decay, est.lam, baseline=est.baseline
    )
    return binned_score(act, spikes.astype(np.float64), fs)


@pytest.mark.parametrize("keep", ["first 95%", "last 95%"])
@pytest.mark.parametrize("filename", sorted(DATASETS))
def test_automatic_accuracy_survives_a_trimmed_recording(
    filename: str, keep: str, ground_truth_dir: Path
) -> None:
    """Dropping 5% of the frames must not flip the kernel choice (DS14 once fell 0.83 -> 0.61)."""
    traces, spikes, fs = _load(_path(ground_truth_dir, filename))
    full = _auto_score(traces, spikes, fs)
    n = int(round(0.95 * traces.shape[1]))
    part = slice(0, n) if keep == "first 95%" else slice(traces.shape[1] - n, None)
    score = _auto_score(traces[:, part], spikes[:, part], fs)
    assert score >= full - 0.04, f"{filename}, {keep}: {score:.3f} vs {full:.3f} on all frames"
