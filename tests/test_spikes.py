"""calab.infer_spikes: counts, rates, the per-cell unit and the calibration flag."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pytest

# The ground-truth score (solver-facts.md: 100 ms bins, lags -1..2) and reader, as scored there.
from test_ground_truth import _averaged, binned_score

import calab
from calab.simulate import INDICATORS


def bursts(
    n_cells: int, seconds: float, fs: float, indicator: str, snr: float, seed: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Traces of bursts of 1-5 spikes (0.3 bursts/s) through an indicator preset's kernel."""
    rng = np.random.default_rng(seed)
    n = int(seconds * fs)
    h = calab.build_kernel(*INDICATORS[indicator], fs)
    spikes = np.zeros((n_cells, n))
    for i in range(n_cells):
        t = np.flatnonzero(rng.random(n) < 0.3 / fs)
        spikes[i, t] = rng.integers(1, 6, size=t.size)
    calcium = np.array([np.convolve(s, h)[:n] for s in spikes])
    return 1.0 + calcium + rng.normal(0, 1 / snr, size=calcium.shape), spikes


def quiet(fn, *args, **kwargs):  # type: ignore[no-untyped-def]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


SIM_SHORT = {
    ("gcamp6s", 15.0, 5.0): "measured: totals 1.01-1.18x the truth (two cells above 1.1)",
    ("gcamp6s", 30.0, 5.0): "measured: totals 1.00-1.13x the truth (two cells above 1.1)",
    ("jgcamp8m", 15.0, 5.0): "measured: totals 0.50-0.88x (the unit lands on a 2-spike mode)",
    ("jgcamp8m", 15.0, 10.0): "measured: one cell of four at 3.28x (unit on a noise mode)",
    ("jgcamp7f", 120.0, 10.0): "measured: two cells of four at 6.8x and 7.1x (unit on a "
    "mode of split events)",
}
"""Simulations where single spikes are resolvable but the counts miss 10 % (strict xfail)."""
SIM_CASES = [
    (ind, fs, snr)
    for ind in ("gcamp6f", "gcamp6s", "jgcamp7f", "jgcamp8m")
    for fs in (15.0, 30.0, 120.0)
    for snr in (5.0, 10.0)
]


@pytest.mark.parametrize(
    ("indicator", "fs", "snr"),
    [pytest.param(*c, marks=pytest.mark.xfail(strict=True, reason=SIM_SHORT[c]))
     if c in SIM_SHORT else c for c in SIM_CASES],
)  # fmt: skip
def test_counts_match_the_truth_where_single_spikes_are_resolvable(
    indicator: str, fs: float, snr: float
) -> None:
    """SNR 5-10, bursts of 1-5 spikes: every cell's total within 10 %, and calibrated."""
    y, spikes = bursts(4, 300, fs, indicator, snr)
    sp = calab.infer_spikes(y, fs)
    ratio = sp.counts.sum(axis=1) / spikes.sum(axis=1)
    assert np.all(np.abs(ratio - 1) <= 0.10), ratio
    assert sp.calibrated.all()


@pytest.mark.xfail(
    strict=True,
    reason="measured: at SNR 2 and 15 Hz single spikes drown but the cells are still flagged "
    "calibrated (the unit lands on a 2-spike mode; totals 0.30-0.50x the truth)",
)
def test_unresolvable_single_spikes_are_flagged() -> None:
    y, _ = bursts(4, 300, 15.0, "gcamp6f", 2.0)
    sp = quiet(calab.infer_spikes, y, 15.0)
    assert not sp.calibrated.any()


def test_a_bright_and_a_dim_cell_with_the_same_spikes_give_the_same_counts() -> None:
    y, spikes = bursts(1, 300, 30.0, "gcamp6f", 10.0)
    dim = y[0]
    bright = 1.0 + 7.0 * (dim - 1.0)  # the same spikes, seven times the response and the noise
    sp = calab.infer_spikes(np.stack([dim, bright]), 30.0)
    np.testing.assert_array_equal(sp.counts[0], sp.counts[1])
    assert sp.unit[1] == pytest.approx(7 * sp.unit[0], rel=1e-3)
    assert abs(sp.counts[0].sum() / spikes.sum() - 1) <= 0.10


def test_rate_sums_to_the_counts_and_shapes_follow_the_input() -> None:
    y, _ = bursts(3, 200, 30.0, "gcamp6s", 10.0)
    sp = calab.infer_spikes(y, 30.0)
    assert sp.counts.shape == sp.rate.shape == sp.activity.shape == y.shape
    assert sp.counts.dtype == np.int64
    assert sp.unit.shape == sp.calibrated.shape == (3,)
    assert np.all(sp.counts >= 0) and np.all(sp.rate >= 0)
    np.testing.assert_allclose(sp.rate.sum(axis=1) / 30.0, sp.counts.sum(axis=1), rtol=1e-9)
    one = calab.infer_spikes(y[0], 30.0)
    assert one.counts.shape == (y.shape[1],)
    assert isinstance(one.unit, float) and isinstance(one.calibrated, bool)


def test_estimate_and_tuned_parameters_are_used() -> None:
    y, _ = bursts(3, 200, 30.0, "gcamp6f", 10.0)
    est = calab.estimate_parameters(y, 30.0)
    auto = calab.infer_spikes(y, 30.0)
    reused = calab.infer_spikes(y, 30.0, est=est)
    np.testing.assert_array_equal(auto.counts, reused.counts)
    act = calab.run_deconvolution(y, 30.0, tau_rise=0.02, tau_decay=0.4, lam=0.01)
    tuned = calab.infer_spikes(y, 30.0, tau_rise=0.02, tau_decay=0.4, lam=0.01)
    np.testing.assert_array_equal(tuned.activity, act)
    with pytest.raises(TypeError, match="missing lam"):
        calab.infer_spikes(y, 30.0, tau_rise=0.02, tau_decay=0.4)
    with pytest.raises(TypeError, match="not both"):
        calab.infer_spikes(y, 30.0, est=est, lam=0.01)
    with pytest.raises(ValueError, match="est holds 3 cells but traces have 2"):
        calab.infer_spikes(y[:2], 30.0, est=est)


def test_a_cell_without_events_gives_zero_counts_and_is_not_calibrated() -> None:
    y, _ = bursts(2, 200, 30.0, "gcamp6f", 10.0)
    y[1] = 1.0  # constant: no event at all
    with pytest.warns(UserWarning, match=r"1 of 2 cells \(1\)"):
        sp = calab.infer_spikes(y, 30.0)
    assert sp.counts[1].sum() == 0 and sp.rate[1].sum() == 0
    assert not sp.calibrated[1] and sp.calibrated[0]


BAD = [
    (np.array([[1.0, np.nan, 2.0] * 100]), 30.0),
    (np.zeros((2, 2, 2)), 30.0),
    (np.zeros((1, 0)), 30.0),
    (np.array(["a", "b"]), 30.0),
    (np.ones(400), 0.0),
    (np.ones(400), "30"),
]


@pytest.mark.parametrize(("traces", "fs"), BAD)
def test_bad_input_gets_the_errors_of_run_deconvolution(traces: np.ndarray, fs: object) -> None:
    with pytest.raises((TypeError, ValueError)) as expected:
        calab.run_deconvolution(traces, fs, tau_rise=0.05, tau_decay=0.5, lam=0.01)
    with pytest.raises(expected.type, match=re.escape(str(expected.value))):
        calab.infer_spikes(traces, fs, tau_rise=0.05, tau_decay=0.5, lam=0.01)


# --------------------------------------------------------------------------- ground truth

GT = {
    "DS07": "DS07-GCaMP6f-zf-dD.npz",
    "DS09": "DS09-GCaMP6f-m-V1.npz",
    "DS10": "DS10-GCaMP6f-m-V1-neuropil-corrected.npz",
    "DS13": "DS13-GCaMP6s-m-V1-neuropil-corrected.npz",
    "DS14": "DS14-GCaMP6s-m-V1.npz",
    "DS29": "DS29-GCaMP7f-m-V1.npz",
    "DS31": "DS31-GCaMP8m-m-V1.npz",
}
ROWS = [(k, 1) for k in GT] + [
    ("DS09", 2), ("DS10", 5), ("DS13", 5), ("DS14", 2), ("DS29", 4), ("DS31", 4)
]  # fmt: skip
"""(dataset, averaging factor): each at its own rate and averaged to about 30 Hz (DS07 is
recorded at 30 Hz)."""
COUNT_SHORT = {
    ("DS09", 2): "measured: median inferred / recorded 1.42",
    ("DS10", 1): "measured: median inferred / recorded 0.62",
    ("DS10", 5): "measured: median inferred / recorded 0.51",
    ("DS13", 1): "measured: median inferred / recorded 0.65",
    ("DS14", 2): "measured: median inferred / recorded 2.65",
}
"""Rows whose median count ratio misses 0.75-1.33 (bench/spikes.py, measured)."""
TIMING_SHORT = {
    ("DS07", 1): "measured: counts r 0.296, activity r 0.342",
    ("DS09", 1): "measured: counts r 0.742, activity r 0.783",
    ("DS09", 2): "measured: counts r 0.741, activity r 0.770",
    ("DS10", 5): "measured: counts r 0.627, activity r 0.670",
    ("DS13", 1): "measured: counts r 0.735, activity r 0.786",
    ("DS13", 5): "measured: counts r 0.701, activity r 0.760",
    ("DS14", 1): "measured: counts r 0.780, activity r 0.833",
    ("DS14", 2): "measured: counts r 0.812, activity r 0.835",
}
"""Rows whose counts correlate with the spikes more than 0.02 below the activity (measured)."""
FEW_SPIKES = {"DS14": (2, 5), "DS31": (3, 4)}
FEW_SHORT = {
    ("DS14", 1): "measured: row 5 (14 spikes) counted 2.71x",
    ("DS14", 2): "measured: rows 2 and 5 counted 1.83x and 3.14x",
}


def _marked(keys: list[tuple[str, int]], short: dict[tuple[str, int], str]) -> list:
    return [pytest.param(*k, marks=pytest.mark.xfail(strict=True, reason=short[k]))
            if k in short else k for k in keys]  # fmt: skip


_CACHE: dict[tuple[str, int], tuple] = {}


def _inferred(ground_truth_dir: Path, key: str, factor: int) -> tuple:
    """(traces, recorded spikes, fs, SpikeResult) of one row, computed once."""
    if (key, factor) not in _CACHE:
        y, s, fs = _averaged(GT[key], factor, ground_truth_dir)
        y, s = y.astype(np.float64), s.astype(np.float64)
        _CACHE[(key, factor)] = (y, s, fs, quiet(calab.infer_spikes, y, fs))
    return _CACHE[(key, factor)]


@pytest.mark.parametrize(("key", "factor"), _marked(ROWS, COUNT_SHORT))
def test_median_count_ratio_on_real_recordings(
    key: str, factor: int, ground_truth_dir: Path
) -> None:
    """Median over cells of inferred / recorded spikes within 0.75-1.33; rate sums to counts."""
    y, s, fs, sp = _inferred(ground_truth_dir, key, factor)
    ratio = sp.counts.sum(axis=1) / s.sum(axis=1)
    np.testing.assert_allclose(sp.rate.sum(axis=1) / fs, sp.counts.sum(axis=1), rtol=0.05)
    assert 0.75 <= float(np.median(ratio)) <= 1.33, np.round(ratio, 2)


@pytest.mark.parametrize(("key", "factor"), _marked(ROWS, TIMING_SHORT))
def test_counts_correlate_as_well_as_the_activity(
    key: str, factor: int, ground_truth_dir: Path
) -> None:
    y, s, fs, sp = _inferred(ground_truth_dir, key, factor)
    counts_r = binned_score(sp.counts.astype(np.float64), s, fs)
    assert counts_r >= binned_score(sp.activity, s, fs) - 0.02


@pytest.mark.parametrize(
    ("key", "factor"), _marked([r for r in ROWS if r[0] in FEW_SPIKES], FEW_SHORT)
)
def test_cells_with_few_spikes_are_not_inflated(
    key: str, factor: int, ground_truth_dir: Path
) -> None:
    """DS14 rows 2 and 5, DS31 rows 3 and 4 (12-21 spikes): at most 1.5x counted."""
    y, s, fs, sp = _inferred(ground_truth_dir, key, factor)
    rows = list(FEW_SPIKES[key])
    assert np.all(sp.counts[rows].sum(axis=1) <= 1.5 * s[rows].sum(axis=1))


@pytest.mark.xfail(strict=True, reason="measured: 67 % of 102 cell-rows within 0.5-2")
def test_most_cells_count_within_half_to_double(ground_truth_dir: Path) -> None:
    ratios = []
    for key, factor in ROWS:
        y, s, fs, sp = _inferred(ground_truth_dir, key, factor)
        ratios += list(sp.counts.sum(axis=1) / s.sum(axis=1))
    r = np.array(ratios)
    assert np.mean((r >= 0.5) & (r <= 2.0)) >= 0.70
