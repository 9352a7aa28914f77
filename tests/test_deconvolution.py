"""run_deconvolution / run_deconvolution_full against optimality conditions and a numpy FISTA."""

from __future__ import annotations

import functools

import numpy as np
import pytest
from _reference import (
    KERNELS,
    Solution,
    best_lag_corr,
    conv,
    fista,
    gaussian_smooth,
    kernel,
    kkt,
    objective,
    spike_train,
)

import calab

KKT_TOL = 1e-5  # |grad_i| <= KKT_TOL * G_dc * max|y| (the active set ignores the 1e-6 tail cut)


def synthetic(name: str, n: int, rate: float, noise: float, seed: int) -> np.ndarray:
    """One trace of my own: baseline + K spikes + Gaussian noise."""
    tr, td, fs = KERNELS[name]
    h = kernel(tr, td, fs)
    rng = np.random.default_rng(seed + 1000)
    s = spike_train(n, rate, seed)
    return 0.7 + conv(s, h) + rng.normal(0, noise, n)


# Small cases for the tight reference: (kernel, n_frames, lam, spike rate per frame, noise, seed)
SMALL = {
    "6f-n300": ("6f-30Hz", 300, 0.1, 0.03, 0.2, 1),
    "6s-n400": ("6s-30Hz", 400, 0.05, 0.03, 0.2, 2),
    "8m-n600": ("8m-120Hz", 600, 0.2, 0.01, 0.3, 3),
    "short-n200": ("short", 200, 0.02, 0.1, 0.1, 4),
    "6f-lam0": ("6f-30Hz", 250, 0.0, 0.03, 0.2, 5),
    "6f-biglam": ("6f-30Hz", 300, 2.0, 0.03, 0.2, 6),
}


def _case(case: str) -> tuple[np.ndarray, float, float, float, float]:
    name, n, lam, rate, noise, seed = SMALL[case]
    tr, td, fs = KERNELS[name]
    return synthetic(name, n, rate, noise, seed), tr, td, fs, lam


@functools.cache
def _reference(case: str) -> Solution:
    y, tr, td, fs, lam = _case(case)
    return fista(y, kernel(tr, td, fs), lam)


def assert_kkt(y: np.ndarray, s: np.ndarray, b: float, h: np.ndarray, lam: float) -> None:
    k = kkt(y, s, b, h, lam)
    assert k.negative == 0.0, f"negative activity {k.negative}"
    assert k.worst <= KKT_TOL, f"KKT violated: {k}"
    assert k.baseline <= 1e-9 * y.size * np.abs(y).max(), f"baseline not optimal: {k}"


@pytest.mark.parametrize("case", sorted(SMALL))
def test_reference_solution_is_optimal(case: str) -> None:
    """Guard for the reference itself: it must satisfy KKT far tighter than asked of calab."""
    y, tr, td, fs, lam = _case(case)
    ref = _reference(case)
    k = kkt(y, ref.s, ref.b, kernel(tr, td, fs), lam)
    assert k.worst <= 1e-9 and k.baseline <= 1e-9 * y.size * np.abs(y).max(), k


@pytest.mark.parametrize("case", sorted(SMALL))
def test_active_set_matches_reference_objective(case: str) -> None:
    y, tr, td, fs, lam = _case(case)
    h = kernel(tr, td, fs)
    ref = _reference(case)
    res = calab.run_deconvolution_full(y, fs, tr, td, lam)
    obj = objective(y, res.activity, res.baseline, h, lam)
    assert obj <= ref.objective + 1e-9 * abs(ref.objective), (obj, ref.objective)
    assert_kkt(y, res.activity, res.baseline, h, lam)
    scale = max(ref.s.max(), 1e-3)
    np.testing.assert_allclose(res.activity, ref.s, rtol=0, atol=1e-4 * scale)
    assert res.baseline == pytest.approx(ref.b, abs=1e-5 * np.abs(y).max())
    assert res.converged is True


@pytest.mark.parametrize("case", ["6f-n300", "6s-n400", "short-n200"])
def test_fista_method_reaches_same_objective(case: str) -> None:
    y, tr, td, fs, lam = _case(case)
    h = kernel(tr, td, fs)
    ref = _reference(case)
    res = calab.run_deconvolution_full(
        y, fs, tr, td, lam, method="fista", tol=1e-10, max_iters=50000
    )
    obj = objective(y, res.activity, res.baseline, h, lam)
    assert obj == pytest.approx(ref.objective, rel=1e-8)
    assert np.all(res.activity >= 0)
    np.testing.assert_allclose(res.activity, ref.s, rtol=0, atol=1e-3 * ref.s.max())


def test_fista_default_tolerance_is_close() -> None:
    y, tr, td, fs, lam = _case("6f-n300")
    h = kernel(tr, td, fs)
    res = calab.run_deconvolution_full(y, fs, tr, td, lam, method="fista")
    assert 1 <= res.iterations <= 5000
    obj = objective(y, res.activity, res.baseline, h, lam)
    assert obj == pytest.approx(_reference("6f-n300").objective, rel=1e-3)


@pytest.mark.parametrize("name", sorted(KERNELS))
def test_kkt_on_simulated_batch(name: str) -> None:
    tr, td, fs = KERNELS[name]
    y, _ = calab.simulate(4, 3000, fs, tr, td, rate_hz=1.0, snr=5.0, seed=11)
    h = kernel(tr, td, fs)
    lam = 0.05
    res = calab.run_deconvolution_full(y, fs, tr, td, lam)
    assert np.all(res.converged)
    for i in range(y.shape[0]):
        assert_kkt(y[i], res.activity[i], float(res.baseline[i]), h, lam)


@pytest.mark.parametrize("lam", [0.0, 1e-3, 0.5, 50.0])
def test_kkt_across_lambda(lam: float) -> None:
    y = synthetic("6f-30Hz", 1500, 0.03, 0.2, 21)
    tr, td, fs = KERNELS["6f-30Hz"]
    res = calab.run_deconvolution_full(y, fs, tr, td, lam)
    assert_kkt(y, res.activity, res.baseline, kernel(tr, td, fs), lam)


def test_huge_lambda_gives_zero_activity_and_mean_baseline() -> None:
    y = synthetic("6f-30Hz", 500, 0.03, 0.2, 22)
    tr, td, fs = KERNELS["6f-30Hz"]
    res = calab.run_deconvolution_full(y, fs, tr, td, 1e6)
    np.testing.assert_array_equal(res.activity, 0.0)
    assert res.baseline == pytest.approx(y.mean(), rel=1e-12)


def test_last_frame_is_zero_when_lambda_positive() -> None:
    """h[0] = 0, so s[n-1] cannot help the fit and the penalty sends it to 0."""
    y = synthetic("6f-30Hz", 400, 0.03, 0.2, 23)
    y[-1] += 5.0  # a big jump in the last frame
    tr, td, fs = KERNELS["6f-30Hz"]
    s = calab.run_deconvolution(y, fs, tr, td, 0.01)
    assert s[-1] == 0.0


def test_lambda_zero_works() -> None:
    y, _ = calab.simulate(2, 600, seed=3)
    res = calab.run_deconvolution_full(y, 30.0, 0.05, 0.5, 0.0)
    h = kernel(0.05, 0.5, 30.0)
    assert np.all(res.converged)
    for i in range(2):
        assert_kkt(y[i], res.activity[i], float(res.baseline[i]), h, 0.0)


def test_constant_trace_gives_no_activity() -> None:
    res = calab.run_deconvolution_full(np.full(300, 3.25), 30.0, 0.05, 0.5, 0.1)
    np.testing.assert_array_equal(res.activity, 0.0)
    assert res.baseline == pytest.approx(3.25, rel=1e-12)


@pytest.mark.parametrize("n", [1, 2, 3, 8])
def test_very_short_traces(n: int) -> None:
    y = np.linspace(0.0, 1.0, n)
    res = calab.run_deconvolution_full(y, 30.0, 0.05, 0.5, 0.1)
    assert res.activity.shape == (n,)
    h = kernel(0.05, 0.5, 30.0)
    assert_kkt(y, res.activity, res.baseline, h, 0.1)
    assert objective(y, res.activity, res.baseline, h, 0.1) <= objective(
        y, np.zeros(n), float(y.mean()), h, 0.1
    ) + 1e-12 * max(1.0, float(np.abs(y).max()))


def test_reconvolution_is_k_s_plus_b() -> None:
    y, _ = calab.simulate(3, 1000, seed=4)
    h = kernel(0.05, 0.5, 30.0)
    for method in ("active-set", "fista"):
        res = calab.run_deconvolution_full(y, 30.0, 0.05, 0.5, 0.05, method=method)
        for i in range(3):
            expected = conv(res.activity[i], h) + res.baseline[i]
            np.testing.assert_allclose(res.reconvolution[i], expected, rtol=0, atol=1e-9)


def test_result_fields_for_1d_input() -> None:
    y, _ = calab.simulate(1, 500, seed=5)
    res = calab.run_deconvolution_full(y[0], 30.0, 0.05, 0.5, 0.05)
    assert isinstance(res, calab.DeconvolutionResult)
    assert res.activity.shape == (500,) and res.activity.dtype == np.float64
    assert res.reconvolution.shape == (500,) and res.reconvolution.dtype == np.float64
    assert type(res.baseline) is float
    assert type(res.iterations) is int and res.iterations >= 1
    assert type(res.converged) is bool
    plain = calab.run_deconvolution(y[0], 30.0, 0.05, 0.5, 0.05)
    assert plain.shape == (500,) and plain.dtype == np.float64
    np.testing.assert_array_equal(plain, res.activity)


def test_result_fields_for_2d_input() -> None:
    y, _ = calab.simulate(3, 500, seed=5)
    res = calab.run_deconvolution_full(y, 30.0, 0.05, 0.5, 0.05)
    assert res.activity.shape == (3, 500) and res.activity.dtype == np.float64
    assert res.reconvolution.shape == (3, 500)
    assert isinstance(res.baseline, np.ndarray) and res.baseline.shape == (3,)
    assert res.baseline.dtype == np.float64
    assert res.iterations.shape == (3,) and np.issubdtype(res.iterations.dtype, np.integer)
    assert res.converged.shape == (3,) and res.converged.dtype == np.bool_
    a, b, rc, it, conv_ = res  # a NamedTuple unpacks in field order
    assert a is res.activity and conv_ is res.converged and rc is res.reconvolution
    np.testing.assert_array_equal(calab.run_deconvolution(y, 30.0, 0.05, 0.5, 0.05), res.activity)


def test_single_row_2d_stays_2d() -> None:
    y, _ = calab.simulate(1, 300, seed=6)
    res = calab.run_deconvolution_full(y, 30.0, 0.05, 0.5, 0.05)
    assert res.activity.shape == (1, 300) and res.baseline.shape == (1,)


@pytest.mark.parametrize("method", ["active-set", "fista"])
def test_1d_and_2d_give_same_rows(method: str) -> None:
    y, _ = calab.simulate(4, 800, seed=7)
    both = calab.run_deconvolution_full(y, 30.0, 0.05, 0.5, 0.05, method=method)
    for i in range(4):
        one = calab.run_deconvolution_full(y[i], 30.0, 0.05, 0.5, 0.05, method=method)
        np.testing.assert_array_equal(one.activity, both.activity[i])
        assert one.baseline == both.baseline[i]
        assert one.iterations == both.iterations[i]


def test_input_dtypes_and_layouts_give_same_result() -> None:
    y, _ = calab.simulate(3, 700, seed=8)
    y = np.round(y * 1000) / 1000  # exactly representable as int16 / 1000 scale below
    base = calab.run_deconvolution(y, 30.0, 0.05, 0.5, 0.05)

    np.testing.assert_array_equal(
        calab.run_deconvolution(np.asfortranarray(y), 30.0, 0.05, 0.5, 0.05), base
    )
    wide = np.zeros((6, 1400))
    wide[::2, ::2] = y
    strided = wide[::2, ::2]
    assert not strided.flags.c_contiguous
    np.testing.assert_array_equal(calab.run_deconvolution(strided, 30.0, 0.05, 0.5, 0.05), base)
    reversed_view = y[:, ::-1].copy()[:, ::-1]  # negative stride view of the same values
    np.testing.assert_array_equal(
        calab.run_deconvolution(reversed_view, 30.0, 0.05, 0.5, 0.05), base
    )
    np.testing.assert_array_equal(calab.run_deconvolution(y.tolist(), 30.0, 0.05, 0.5, 0.05), base)

    # int16 counts: same minimiser as the float64 of the same values (lam scales with y).
    counts = np.round(y * 1000).astype(np.int16)
    a16 = calab.run_deconvolution(counts, 30.0, 0.05, 0.5, 50.0)
    a64 = calab.run_deconvolution(counts.astype(np.float64), 30.0, 0.05, 0.5, 50.0)
    assert a16.dtype == np.float64
    np.testing.assert_array_equal(a16, a64)
    np.testing.assert_allclose(a16 / 1000, base, rtol=0, atol=1e-6 * base.max())

    # float32: activity is float64 and solves the problem for the float32 values.
    y32 = y.astype(np.float32)
    a32 = calab.run_deconvolution(y32, 30.0, 0.05, 0.5, 0.05)
    assert a32.dtype == np.float64
    h = kernel(0.05, 0.5, 30.0)
    full32 = calab.run_deconvolution_full(y32, 30.0, 0.05, 0.5, 0.05)
    for i in range(3):
        yi = y32[i].astype(np.float64)
        k = kkt(yi, full32.activity[i], float(full32.baseline[i]), h, 0.05)
        assert k.worst <= KKT_TOL, k
    np.testing.assert_allclose(a32, base, rtol=0, atol=1e-4 * base.max())


def test_input_not_modified() -> None:
    y, _ = calab.simulate(2, 400, seed=9)
    y32 = y.astype(np.float32)
    copy64, copy32 = y.copy(), y32.copy()
    calab.run_deconvolution_full(y, 30.0, 0.05, 0.5, 0.05)
    calab.run_deconvolution_full(y32, 30.0, 0.05, 0.5, 0.05, method="fista")
    np.testing.assert_array_equal(y, copy64)
    np.testing.assert_array_equal(y32, copy32)


@pytest.mark.parametrize("method", ["active-set", "fista"])
def test_warm_start_same_answer_fewer_iterations(method: str) -> None:
    y, _ = calab.simulate(3, 2000, seed=10)
    tr, td, fs = 0.05, 0.5, 30.0
    h = kernel(tr, td, fs)
    kw = {"method": method}
    if method == "fista":
        kw.update(tol=1e-8, max_iters=50000)
    prev = calab.run_deconvolution_full(y, fs, tr, td, 0.05, **kw)
    cold = calab.run_deconvolution_full(y, fs, tr, td, 0.055, **kw)
    warm = calab.run_deconvolution_full(y, fs, tr, td, 0.055, warm_start=prev.activity, **kw)
    assert np.all(warm.converged)
    assert np.all(warm.iterations < cold.iterations), (warm.iterations, cold.iterations)
    for i in range(3):
        o_cold = objective(y[i], cold.activity[i], cold.baseline[i], h, 0.055)
        o_warm = objective(y[i], warm.activity[i], warm.baseline[i], h, 0.055)
        assert o_warm == pytest.approx(o_cold, rel=1e-7 if method == "fista" else 1e-12)
    if method == "active-set":
        np.testing.assert_allclose(warm.activity, cold.activity, rtol=0, atol=1e-9)


def test_warm_start_from_exact_solution_is_immediate() -> None:
    y, _ = calab.simulate(2, 1500, seed=12)
    cold = calab.run_deconvolution_full(y, 30.0, 0.05, 0.5, 0.05)
    again = calab.run_deconvolution_full(y, 30.0, 0.05, 0.5, 0.05, warm_start=cold.activity)
    assert np.all(again.iterations <= 2)
    np.testing.assert_allclose(again.activity, cold.activity, rtol=0, atol=1e-12)


def test_warm_start_1d() -> None:
    y, _ = calab.simulate(1, 900, seed=13)
    cold = calab.run_deconvolution_full(y[0], 30.0, 0.05, 0.5, 0.08)
    warm = calab.run_deconvolution_full(y[0], 30.0, 0.05, 0.5, 0.08, warm_start=cold.activity)
    np.testing.assert_allclose(warm.activity, cold.activity, rtol=0, atol=1e-12)


def test_max_iters_cap_reports_not_converged() -> None:
    y, _ = calab.simulate(1, 3000, seed=14)
    full = calab.run_deconvolution_full(y[0], 30.0, 0.05, 0.5, 0.05)
    assert full.iterations > 1
    capped = calab.run_deconvolution_full(y[0], 30.0, 0.05, 0.5, 0.05, max_iters=1)
    assert capped.converged is False
    assert np.all(capped.activity >= 0)
    fista_capped = calab.run_deconvolution_full(
        y[0], 30.0, 0.05, 0.5, 0.05, method="fista", max_iters=3
    )
    assert fista_capped.iterations <= 3
    assert fista_capped.converged is False


def test_active_set_iterations_respect_max_iters() -> None:
    y, _ = calab.simulate(1, 3000, seed=14)
    capped = calab.run_deconvolution_full(y[0], 30.0, 0.05, 0.5, 0.05, max_iters=1)
    assert capped.iterations <= 1


def _stall_case() -> tuple[np.ndarray, float, float, float, float]:
    """Slow model kernel (0.1 s / 2.0 s at 60 Hz) fitted to faster transients (0.05 / 0.5 s)."""
    rng = np.random.default_rng(0)
    fs = 60.0
    y = conv(rng.poisson(0.02, 200).astype(float), kernel(0.05, 0.5, fs))
    y += rng.normal(0, 0.05, 200)
    return y, 0.1, 2.0, fs, 1e-3


def test_active_set_converges_with_default_settings_slow_kernel() -> None:
    y, tr, td, fs, lam = _stall_case()
    h = kernel(tr, td, fs)
    res = calab.run_deconvolution_full(y, fs, tr, td, lam)
    assert res.converged is True, res.iterations
    assert_kkt(y, res.activity, res.baseline, h, lam)


def test_active_set_with_more_pivots_solves_slow_kernel_case() -> None:
    y, tr, td, fs, lam = _stall_case()
    h = kernel(tr, td, fs)
    res = calab.run_deconvolution_full(y, fs, tr, td, lam, max_iters=5000)
    assert res.converged is True
    assert_kkt(y, res.activity, res.baseline, h, lam)
    ref = fista(y, h, lam, tol=1e-8)  # + exact polish on the support: optimal to 1e-15 here
    assert kkt(y, ref.s, ref.b, h, lam).worst <= 1e-9
    assert objective(y, res.activity, res.baseline, h, lam) <= ref.objective * (1 + 1e-9)


@pytest.mark.parametrize("a", [1e-30, 1e30])
@pytest.mark.parametrize("method", ["active-set", "fista"])
def test_extreme_scales(method: str, a: float) -> None:
    y, _ = calab.simulate(1, 500, seed=1)
    base = calab.run_deconvolution_full(y[0], 30.0, 0.05, 0.5, 0.05, method=method)
    res = calab.run_deconvolution_full(a * y[0], 30.0, 0.05, 0.5, a * 0.05, method=method)
    np.testing.assert_allclose(res.activity / a, base.activity, rtol=0, atol=1e-6)
    assert res.iterations == base.iterations


@pytest.mark.parametrize("a", [1e-200, 1e200])
def test_fista_stopping_rule_at_extreme_scales(a: float) -> None:
    y, _ = calab.simulate(1, 500, seed=1)
    base = calab.run_deconvolution_full(y[0], 30.0, 0.05, 0.5, 0.05, method="fista")
    res = calab.run_deconvolution_full(a * y[0], 30.0, 0.05, 0.5, a * 0.05, method="fista")
    np.testing.assert_allclose(res.activity / a, base.activity, rtol=0, atol=1e-6)


def test_recovers_simulated_spikes() -> None:
    """GCaMP6f-like simulation at SNR 5: smoothed activity tracks the true spikes."""
    y, spikes = calab.simulate(5, 3000, 30.0, 0.05, 0.5, snr=5.0, seed=2)
    act = calab.run_deconvolution(y, 30.0, 0.05, 0.5, 0.05)
    rs = [
        best_lag_corr(gaussian_smooth(act[i], 1.0), gaussian_smooth(spikes[i], 1.0), 3)
        for i in range(5)
    ]
    assert min(r for r, _ in rs) > 0.8, rs
    assert all(lag <= 1 for _, lag in rs), rs
    # Total activity is about the spike count (each spike adds one peak-1 kernel).
    ratio = act.sum() / spikes.sum()
    assert 0.7 < ratio < 1.2, ratio


def test_recovers_isolated_spike_amplitudes_noise_free() -> None:
    tr, td, fs = KERNELS["6f-30Hz"]
    h = kernel(tr, td, fs)
    s = np.zeros(600)
    s[[50, 200, 201, 420]] = [1.0, 2.0, 0.5, 3.0]
    y = 2.0 + conv(s, h)
    res = calab.run_deconvolution_full(y, fs, tr, td, 1e-6)
    np.testing.assert_allclose(res.activity, s, rtol=0, atol=1e-4)
    assert res.baseline == pytest.approx(2.0, abs=1e-5)


def _drifting(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """GCaMP6f-like traces (baseline 1, noise sd 0.2) plus a known slow drift and bleaching."""
    fs = 30.0
    y, spikes = calab.simulate(6, 9000, fs, 0.05, 0.5, snr=5.0, seed=seed)
    t = np.arange(9000) / fs
    drift = 0.8 * np.sin(2 * np.pi * t / 200.0 + np.arange(6)[:, None]) + 0.5 * np.exp(-t / 100)
    return y + drift, spikes, 1.0 + drift


def test_drift_baseline_follows_a_known_drift() -> None:
    from calab.baseline import drift_baseline

    y, spikes, true_base = _drifting(3)
    tr, td, fs, lam = 0.05, 0.5, 30.0, 0.05
    res = calab.run_deconvolution_full(y, fs, tr, td, lam, baseline="drift")
    with pytest.warns(UserWarning, match='pass baseline="drift"'):  # drift, constant baseline
        const = calab.run_deconvolution_full(y, fs, tr, td, lam)
    assert res.baseline.shape == y.shape and np.all(res.converged)
    # The baseline follows the truth to within the noise sd (0.2) on average.
    assert np.abs(res.baseline - true_base).mean() < 0.2
    h = kernel(tr, td, fs)
    for i in range(y.shape[0]):
        np.testing.assert_allclose(res.reconvolution[i], conv(res.activity[i], h) + res.baseline[i])
    # Independent optimality check: the constant-baseline model holds on y minus the drift.
    drift = drift_baseline(y, fs, None)
    b = res.baseline - drift
    np.testing.assert_allclose(b, b[:, :1] * np.ones_like(b), atol=1e-12)
    for i in range(y.shape[0]):
        assert_kkt(y[i] - drift[i], res.activity[i], float(b[i, 0]), h, lam)

    # And it recovers the spikes better than a constant baseline can under drift.
    def score(act: np.ndarray) -> float:
        return float(np.median([
            best_lag_corr(gaussian_smooth(act[i], 1.0), gaussian_smooth(spikes[i], 1.0), 3)[0]
            for i in range(y.shape[0])
        ]))  # fmt: skip

    assert score(res.activity) > score(const.activity) + 0.05
    assert abs(res.activity.sum() / spikes.sum() - 1) < abs(const.activity.sum() / spikes.sum() - 1)


def test_drift_window_and_1d_and_activity_only() -> None:
    y, _, _ = _drifting(4)
    full = calab.run_deconvolution_full(y, 30.0, 0.05, 0.5, 0.05, baseline="drift")
    act = calab.run_deconvolution(y, 30.0, 0.05, 0.5, 0.05, baseline="drift")
    np.testing.assert_array_equal(act, full.activity)
    one = calab.run_deconvolution_full(y[2], 30.0, 0.05, 0.5, 0.05, baseline="drift")
    assert one.baseline.shape == (9000,) and isinstance(one.converged, bool)
    # The drift estimate of one cell alone may differ from the batch's in the last bits (BLAS).
    np.testing.assert_allclose(one.activity, full.activity[2], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(one.baseline, full.baseline[2], rtol=1e-12)
    short = calab.run_deconvolution_full(
        y, 30.0, 0.05, 0.5, 0.05, baseline="drift", baseline_window_s=5.0
    )
    assert not np.array_equal(short.baseline, full.baseline)


def test_constant_baseline_mode_is_the_default_model() -> None:
    y, _, _ = _drifting(5)
    with pytest.warns(UserWarning, match='pass baseline="drift"'):  # on drifting traces
        default = calab.run_deconvolution_full(y, 30.0, 0.05, 0.5, 0.05)
    with pytest.warns(UserWarning, match='pass baseline="drift"'):
        const = calab.run_deconvolution_full(
            y, 30.0, 0.05, 0.5, 0.05, baseline="constant", baseline_window_s=30.0
        )
    for a, b in zip(default, const, strict=True):
        np.testing.assert_array_equal(a, b)
    assert default.baseline.shape == (6,)
    h = kernel(0.05, 0.5, 30.0)
    for i in range(6):
        assert_kkt(y[i], default.activity[i], float(default.baseline[i]), h, 0.05)
