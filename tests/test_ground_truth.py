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


# Issue 12's targets for automatic parameters, measured with issue 12's score (below):
# OASIS automatic (oasis.functions.deconvolve(y, g=(None, None), penalty=1)) and the best single
# global calab setting of 8 kernels x 6 lambdas, both measured by bench/accuracy.py.
AUTO_TARGETS = {
    "DS09-GCaMP6f-m-V1.npz": (0.755, 0.778),
    "DS14-GCaMP6s-m-V1.npz": (0.679, 0.838),
    "DS31-GCaMP8m-m-V1.npz": (0.897, 0.891),
}
# Where the estimator does not reach the target yet (strict: a pass is reported, so the mark
# must go when the method improves). Empty since the tail-fitted decay and the first-frame rise:
# bench/accuracy.py measured 0.783 / 0.833 / 0.901 (DS09 / DS14 / DS31).
AUTO_SHORT: dict[str, str] = {}


def binned_score(activity: np.ndarray, spikes: np.ndarray, fs: float) -> float:
    """Median over cells of the best (lag 0, 1, 2 frames) Pearson r of 100 ms bin sums."""
    width = max(1, int(round(0.1 * fs)))
    n = activity.shape[1]
    best = np.full(activity.shape[0], -np.inf)
    for lag in (0, 1, 2):
        a, s = activity[:, lag:], spikes[:, : n - lag]
        m = a.shape[1] // width
        a = a[:, : m * width].reshape(a.shape[0], m, width).sum(axis=2)
        s = s[:, : m * width].reshape(s.shape[0], m, width).sum(axis=2)
        r = [np.corrcoef(x, y)[0, 1] if x.std() > 0 else 0.0 for x, y in zip(a, s, strict=True)]
        best = np.maximum(best, r)
    return float(np.median(best))


@pytest.mark.parametrize(
    "filename",
    [
        pytest.param(f, marks=pytest.mark.xfail(reason=AUTO_SHORT[f], strict=True))
        if f in AUTO_SHORT
        else f
        for f in sorted(AUTO_TARGETS)
    ],
)
def test_automatic_parameters_reach_the_targets(
    filename: str, ground_truth_dir: Path, record_property: Any
) -> None:
    traces, spikes, fs = _load(_path(ground_truth_dir, filename))
    y = traces.astype(np.float64)
    est = calab.estimate_parameters(y, fs)  # no spike data used
    act = calab.run_deconvolution(
        y, fs, est.tau_rise, est.tau_decay, est.lam, baseline=est.baseline
    )
    score = binned_score(act, spikes.astype(np.float64), fs)
    oasis, grid = AUTO_TARGETS[filename]
    record_property("auto_median_r", round(score, 4))
    summary = (
        f"{filename}: automatic {score:.3f} (kernel {est.tau_rise:.4f}/{est.tau_decay:.3f} s, "
        f"{est.baseline}); OASIS automatic {oasis}, best global {grid}"
    )
    assert score >= oasis, summary
    assert score >= grid - 0.01, summary


@pytest.mark.parametrize("filename", sorted(AUTO_TARGETS))
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
@pytest.mark.parametrize("filename", sorted(AUTO_TARGETS))
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


# Lower frame rates: k frames averaged into one (spikes summed), OASIS automatic measured on the
# same data by bench/accuracy.py --rates.
RATE_TARGETS = {
    ("DS09-GCaMP6f-m-V1.npz", 2): 0.715,
    ("DS14-GCaMP6s-m-V1.npz", 2): 0.713,
    ("DS14-GCaMP6s-m-V1.npz", 4): 0.766,
    ("DS31-GCaMP8m-m-V1.npz", 2): 0.913,
    ("DS31-GCaMP8m-m-V1.npz", 4): 0.904,
}
# The CaTune kernel has h[0] = 0 (CONTRACTS.md): a spike shows in the trace one frame after its
# activity frame, so for an indicator that rises within a frame the activity lands one frame
# before the frame the spike is recorded in. The score forgives late activity (lags 0..2), not
# early; at 61 and 30.5 Hz that frame is 16-33 ms and costs jGCaMP8m 0.08-0.22 (OASIS's AR model
# shows a spike in its own frame). Strict: a pass is reported, so the mark goes with a fix.
RATE_SHORT = {
    ("DS31-GCaMP8m-m-V1.npz", 2): "CaTune kernel h[0] = 0: activity one frame early",
    ("DS31-GCaMP8m-m-V1.npz", 4): "CaTune kernel h[0] = 0: activity one frame early",
}


@pytest.mark.parametrize(
    ("filename", "factor"),
    [
        pytest.param(*k, marks=pytest.mark.xfail(reason=RATE_SHORT[k], strict=True))
        if k in RATE_SHORT
        else k
        for k in RATE_TARGETS
    ],
)
def test_automatic_parameters_at_lower_frame_rates(
    filename: str, factor: int, ground_truth_dir: Path
) -> None:
    traces, spikes, fs = _load(_path(ground_truth_dir, filename))
    m = traces.shape[1] // factor
    y = traces[:, : m * factor].reshape(traces.shape[0], m, factor).mean(axis=2)
    s = spikes[:, : m * factor].reshape(spikes.shape[0], m, factor).sum(axis=2)
    score = _auto_score(y, s, fs / factor)
    oasis = RATE_TARGETS[(filename, factor)]
    assert score >= oasis, f"{filename} at {fs / factor:.1f} Hz: {score:.3f}, OASIS {oasis}"
