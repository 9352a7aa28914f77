"""Property-based tests of the solver: feasibility, optimality, determinism and invariances."""

from __future__ import annotations

import numpy as np
import pytest
from _reference import KERNELS, conv, kernel, kkt
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import calab

# Random traces often trend; the advisory drift warning of run_deconvolution (issue 18) is not
# what these properties of the solver are about.
pytestmark = pytest.mark.filterwarnings("ignore:the traces drift:UserWarning")

KKT_TOL = 1e-5

kernel_names = st.sampled_from(sorted(KERNELS))
lams = st.floats(1e-4, 2.0) | st.just(0.0)
methods = st.sampled_from(["active-set", "fista"])


@st.composite
def traces(draw: st.DrawFn, max_cells: int = 3, max_frames: int = 500) -> np.ndarray:
    """Calcium-like traces (random spikes through the kernel, noise, offset) or pure noise."""
    n_cells = draw(st.integers(1, max_cells))
    n = draw(st.integers(2, max_frames))
    seed = draw(st.integers(0, 2**32 - 1))
    kind = draw(st.sampled_from(["calcium", "noise", "ramp"]))
    rng = np.random.default_rng(seed)
    if kind == "noise":
        return rng.normal(draw(st.floats(-5, 5)), draw(st.floats(0.01, 3)), (n_cells, n))
    if kind == "ramp":
        return np.linspace(0, draw(st.floats(-3, 3)), n) + rng.normal(0, 0.05, (n_cells, n))
    h = kernel(0.05, 0.5, 30.0)
    out = np.empty((n_cells, n))
    for i in range(n_cells):
        s = rng.poisson(draw(st.floats(0.005, 0.3)), n).astype(float)
        out[i] = draw(st.floats(-2, 2)) + conv(s, h) + rng.normal(0, draw(st.floats(0.01, 1)), n)
    return out


def _kkt_ok(y: np.ndarray, res: calab.DeconvolutionResult, name: str, lam: float) -> None:
    h = kernel(*KERNELS[name])
    for i in range(y.shape[0]):
        k = kkt(y[i], res.activity[i], float(res.baseline[i]), h, lam)
        assert k.negative == 0.0
        assert k.worst <= KKT_TOL, (i, k)
        assert k.baseline <= 1e-9 * y.shape[1] * max(np.abs(y[i]).max(), 1e-12), (i, k)


@given(y=traces(), name=kernel_names, lam=lams, method=methods)
def test_activity_is_nonnegative_and_finite(
    y: np.ndarray, name: str, lam: float, method: str
) -> None:
    tr, td, fs = KERNELS[name]
    res = calab.run_deconvolution_full(y, fs, tr, td, lam, method=method, max_iters=None)
    assert np.all(np.isfinite(res.activity))
    assert np.all(res.activity >= 0)
    assert np.all(np.isfinite(res.baseline))


@given(y=traces(), name=kernel_names, lam=lams)
def test_kkt_holds_on_random_traces(y: np.ndarray, name: str, lam: float) -> None:
    tr, td, fs = KERNELS[name]
    res = calab.run_deconvolution_full(y, fs, tr, td, lam)
    assert np.all(res.converged)
    _kkt_ok(y, res, name, lam)


@given(
    y=arrays(
        np.float64,
        st.integers(2, 300),
        elements=st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False),
    ),
    lam=lams,
)
def test_kkt_holds_on_arbitrary_arrays(y: np.ndarray, lam: float) -> None:
    tr, td, fs = KERNELS["6f-30Hz"]
    res = calab.run_deconvolution_full(y[np.newaxis], fs, tr, td, lam)
    assert np.all(res.converged)
    _kkt_ok(y[np.newaxis], res, "6f-30Hz", lam)


@given(y=traces(max_cells=6, max_frames=400), name=kernel_names, lam=lams, method=methods)
def test_thread_count_does_not_change_results(
    y: np.ndarray, name: str, lam: float, method: str
) -> None:
    tr, td, fs = KERNELS[name]
    one = calab.run_deconvolution_full(y, fs, tr, td, lam, n_threads=1, method=method)
    two = calab.run_deconvolution_full(y, fs, tr, td, lam, n_threads=2, method=method)
    default = calab.run_deconvolution_full(y, fs, tr, td, lam, method=method)
    for other in (two, default):
        np.testing.assert_array_equal(one.activity, other.activity)
        np.testing.assert_array_equal(one.baseline, other.baseline)
        np.testing.assert_array_equal(one.iterations, other.iterations)
        np.testing.assert_array_equal(one.reconvolution, other.reconvolution)


@given(
    y=traces(),
    name=kernel_names,
    lam=st.floats(1e-3, 1.0),
    a=st.floats(0.01, 100.0),
)
def test_scaling_trace_and_lambda_scales_solution(
    y: np.ndarray, name: str, lam: float, a: float
) -> None:
    tr, td, fs = KERNELS[name]
    base = calab.run_deconvolution_full(y, fs, tr, td, lam)
    scaled = calab.run_deconvolution_full(a * y, fs, tr, td, a * lam)
    for i in range(y.shape[0]):
        size = a * max(np.abs(y[i]).max(), base.activity[i].max())
        np.testing.assert_allclose(
            scaled.activity[i], a * base.activity[i], rtol=1e-6, atol=1e-6 * size
        )
        np.testing.assert_allclose(
            scaled.baseline[i], a * base.baseline[i], rtol=1e-6, atol=1e-6 * size
        )


@given(y=traces(), name=kernel_names, lam=lams, c=st.floats(-100, 100))
def test_adding_a_constant_only_moves_the_baseline(
    y: np.ndarray, name: str, lam: float, c: float
) -> None:
    tr, td, fs = KERNELS[name]
    base = calab.run_deconvolution_full(y, fs, tr, td, lam)
    shifted = calab.run_deconvolution_full(y + c, fs, tr, td, lam)
    size = max(np.abs(y).max(), np.abs(y + c).max(), base.activity.max())
    np.testing.assert_allclose(shifted.activity, base.activity, rtol=0, atol=1e-6 * size)
    np.testing.assert_allclose(shifted.baseline, base.baseline + c, rtol=0, atol=1e-6 * size)


@given(y=traces(max_cells=1), lam1=st.floats(1e-3, 1.0), factor=st.floats(1.1, 10.0))
def test_larger_lambda_gives_less_total_activity(y: np.ndarray, lam1: float, factor: float) -> None:
    tr, td, fs = KERNELS["6f-30Hz"]
    small = calab.run_deconvolution(y, fs, tr, td, lam1)
    big = calab.run_deconvolution(y, fs, tr, td, lam1 * factor)
    # The L1 norm of the solution is non-increasing in lambda (a property of any L1 path).
    assert big.sum() <= small.sum() * (1 + 1e-6) + 1e-9 * max(1.0, np.abs(y).max())
