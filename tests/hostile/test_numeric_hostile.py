"""Hostile numbers into the solver API (issue 9, items 8, 9, 12, 17, 18): a clear error naming
the argument, never NaN reported as converged, never a raw OverflowError or numpy message."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import calab

Y = np.random.default_rng(0).normal(size=(3, 200))


def _solve(**kw: Any) -> Any:
    args: dict[str, Any] = {"traces": Y, "fs": 30.0, "tau_r": 0.05, "tau_d": 0.5, "lam": 0.1}
    args.update(kw)
    return calab.run_deconvolution_full(**args)


# Item 8: kernels that underflow or overflow.
@pytest.mark.parametrize(
    ("fs", "tr", "td"),
    [
        (30.0, 1e-6, 1.0 / 30.0 / 708),  # tau_decay * fs = 1/708: exp(-708) is subnormal
        (30.0, 1e-9, 1e-6),
        (1.0, 1e-5, 1e-4),
        (1e308, 0.05, 0.5),  # kernel length overflows
        (1e300, 1e-310, 1e-305),
        (1e-300, 0.05, 0.5),
    ],
)
def test_degenerate_kernels_are_refused(fs: float, tr: float, td: float) -> None:
    with pytest.raises(ValueError, match=r"tau_decay \* fs|tau_decay|fs"):
        _solve(fs=fs, tau_r=tr, tau_d=td)
    with pytest.raises(ValueError, match=r"tau_decay \* fs|tau_decay|fs"):
        calab.build_kernel(tr, td, fs)


# Extreme values on purpose: the warnings naming implausible units (issue 18) are expected.
@pytest.mark.filterwarnings("ignore:fs = .* Hz is a very low sampling rate:UserWarning")
@pytest.mark.filterwarnings("ignore:tau_(rise|decay) = .* s is far longer:UserWarning")
@given(
    log_fs=st.floats(-3, 6),
    log_td=st.floats(-6, 3),
    ratio=st.floats(1e-6, 0.999999),
    lam=st.floats(0, 10),
)
def test_never_nan_with_converged(log_fs: float, log_td: float, ratio: float, lam: float) -> None:
    fs, td = 10.0**log_fs, 10.0**log_td
    tr = td * ratio
    if td * fs > 5e4:  # long kernels: valid but slow, not what this probes
        return
    try:
        res = _solve(traces=Y[:, :60], fs=fs, tau_r=tr, tau_d=td, lam=lam, max_iters=50)
    except ValueError as exc:
        assert any(w in str(exc) for w in ("tau_decay", "tau_rise", "fs")), exc
        return
    finite = (
        np.isfinite(res.activity).all(axis=1)
        & np.isfinite(res.reconvolution).all(axis=1)
        & np.isfinite(res.baseline)
    )
    assert np.all(finite | ~res.converged), (fs, tr, td, lam, res.converged)
    assert np.all(finite), (fs, tr, td)


# Item 9: masked arrays.
def test_masked_traces_are_refused() -> None:
    y = np.ma.array(Y, mask=np.zeros_like(Y, dtype=bool))
    y[0, 5] = np.ma.masked
    with pytest.raises(TypeError, match=r"^traces is a masked array"):
        _solve(traces=y)
    with pytest.raises(TypeError, match=r"^trace is a masked array"):
        calab.bandpass_filter(y, 0.05, 0.5, 30.0)
    with pytest.raises(TypeError, match=r"^warm_start is a masked array"):
        _solve(warm_start=np.ma.array(np.zeros_like(Y)))


# Item 12: n_threads bound, and thread pools reused.
@pytest.mark.parametrize("n", [5000, 10**6, 2**64])
def test_absurd_thread_counts_are_refused(n: int) -> None:
    with pytest.raises(ValueError, match=r"^n_threads must be an integer >= 1 and at most"):
        _solve(n_threads=n)


def _os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through /proc")
def test_thread_pools_are_reused() -> None:
    calab.run_deconvolution(Y[:2, :20], 30.0, 0.05, 0.5, 0.1, n_threads=7)
    after_first = _os_threads()
    for _ in range(30):
        calab.run_deconvolution(Y[:2, :20], 30.0, 0.05, 0.5, 0.1, n_threads=7)
    # The 7-thread pool is kept and reused: no thread is started or ended by later calls.
    assert _os_threads() == after_first
    # The Rust side refuses what the Python side would never pass.
    from calab import _solver

    with pytest.raises(ValueError, match=r"n_threads"):
        _solver.deconvolve(Y, 30.0, 0.05, 0.5, 0.1, n_threads=10**6)


# Item 17: clear messages.
@pytest.mark.parametrize(
    ("kw", "exc", "pattern"),
    [
        ({"max_iters": 2**64}, ValueError, r"^max_iters must be at most"),
        ({"max_iters": 2**63}, ValueError, r"^max_iters must be at most"),
        ({"n_threads": 2**64}, ValueError, r"^n_threads must be"),
        ({"method": ["fista"]}, TypeError, r"^method must be the string"),
        ({"method": None}, TypeError, r"^method must be the string"),
        ({"tol": True}, TypeError, r"^tol must be a positive number"),  # item 18
        ({"max_iters": True}, TypeError, r"^max_iters must be an integer"),
        ({"tol": "1e-3"}, TypeError, r"^tol must be a positive number"),
    ],
)
def test_clear_messages(kw: dict[str, Any], exc: type, pattern: str) -> None:
    with pytest.raises(exc, match=pattern):
        _solve(**kw)
    with pytest.raises(exc, match=pattern):
        calab.run_deconvolution(Y, 30.0, 0.05, 0.5, 0.1, **kw)


@pytest.mark.parametrize("ragged", [[[1.0, 2.0, 3.0], [1.0]], [[1.0, 2.0], [1.0, [2.0]]]])
def test_ragged_lists_get_calabs_message(ragged: Any) -> None:
    with pytest.raises(ValueError, match=r"^traces is a ragged list"):
        _solve(traces=ragged)
    with pytest.raises(ValueError, match=r"^trace is a ragged list"):
        calab.bandpass_filter(ragged, 0.05, 0.5, 30.0)


def test_huge_but_valid_values_work() -> None:
    res = _solve(max_iters=10**9, n_threads=1, tol=1e-9)
    assert np.all(res.converged) and math.isfinite(float(res.baseline.sum()))
