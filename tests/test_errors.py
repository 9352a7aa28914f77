"""Bad input raises ValueError/TypeError with a message that names the argument."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import calab

FS, TR, TD, LAM = 30.0, 0.05, 0.5, 0.1


def _y(n_cells: int = 4, n: int = 50) -> np.ndarray:
    return np.random.default_rng(0).normal(size=(n_cells, n))


def deconvolve(traces: Any = None, **kw: Any) -> Any:
    args = {"fs": FS, "tau_r": TR, "tau_d": TD, "lam": LAM}
    args.update(kw)
    return calab.run_deconvolution(_y() if traces is None else traces, **args)


def deconvolve_full(traces: Any = None, **kw: Any) -> Any:
    args = {"fs": FS, "tau_r": TR, "tau_d": TD, "lam": LAM}
    args.update(kw)
    return calab.run_deconvolution_full(_y() if traces is None else traces, **args)


SOLVERS = [deconvolve, deconvolve_full]


@pytest.mark.parametrize("solve", SOLVERS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_names_cell_and_frame(solve: Any, bad: float) -> None:
    y = _y()
    y[2, 17] = bad
    y[3, 5] = bad  # a later cell: the first bad cell is reported
    with pytest.raises(ValueError, match=r"traces.*cell 2, frame 17"):
        solve(y)


def test_nonfinite_float32_and_1d() -> None:
    y = _y().astype(np.float32)
    y[1, 3] = np.nan
    with pytest.raises(ValueError, match=r"cell 1, frame 3"):
        deconvolve(y)
    with pytest.raises(ValueError, match=r"traces.*frame 3\b"):
        deconvolve(y[1])


@pytest.mark.parametrize("shape", [(0,), (0, 5), (3, 0)])
def test_empty_arrays(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"traces.*empty"):
        deconvolve(np.zeros(shape))


@pytest.mark.parametrize("value", [np.float64(1.0), 3.0, np.zeros((2, 2, 5))])
def test_wrong_dimensions(value: Any) -> None:
    with pytest.raises(ValueError, match=r"traces must be 1-D .* or 2-D"):
        deconvolve(value)


@pytest.mark.parametrize(
    "values",
    [
        np.array(["a", "b", "c"]),
        np.array([1.0, 2.0, 3.0], dtype=object),
        np.array([True, False, True]),
        np.ones(10, dtype=np.complex128),
        np.array(["2020-01-01"] * 3, dtype="datetime64[D]"),
    ],
    ids=["str", "object", "bool", "complex", "datetime"],
)
def test_non_numeric_dtypes(values: np.ndarray) -> None:
    with pytest.raises(TypeError, match=r"traces must hold real numbers"):
        deconvolve(values)


def test_ragged_list_rejected() -> None:
    with pytest.raises(ValueError):
        deconvolve([[1.0, 2.0, 3.0], [1.0]])


@pytest.mark.parametrize(
    ("kw", "exc", "pattern"),
    [
        ({"fs": 0}, ValueError, r"^fs must be a positive"),
        ({"fs": -30.0}, ValueError, r"^fs must be a positive"),
        ({"fs": float("nan")}, ValueError, r"^fs must be a positive"),
        ({"fs": float("inf")}, ValueError, r"^fs must be a positive"),
        ({"fs": "30"}, TypeError, r"^fs must be a number"),
        ({"fs": True}, TypeError, r"^fs must be a number"),
        ({"fs": None}, TypeError, r"^fs must be a number"),
        ({"tau_r": 0.0}, ValueError, r"^tau_rise must be a positive"),
        ({"tau_r": -0.05}, ValueError, r"^tau_rise must be a positive"),
        ({"tau_d": 0.0}, ValueError, r"^tau_decay must be a positive"),
        ({"tau_d": -1.0}, ValueError, r"^tau_decay must be a positive"),
        ({"tau_d": float("nan")}, ValueError, r"^tau_decay must be a positive"),
        ({"tau_r": 0.5, "tau_d": 0.5}, ValueError, r"tau_rise .* smaller than tau_decay"),
        ({"tau_r": 0.5, "tau_d": 0.05}, ValueError, r"tau_rise .* smaller than tau_decay"),
        ({"lam": -0.1}, ValueError, r"^lam must be"),
        ({"lam": float("nan")}, ValueError, r"^lam must be"),
        ({"lam": float("inf")}, ValueError, r"^lam must be"),
        ({"lam": "0.1"}, TypeError, r"^lam must be a number"),
        ({"lam": None}, TypeError, r"^lam must be a number"),
        ({"max_iters": 0}, ValueError, r"^max_iters must be at least 1"),
        ({"max_iters": -5}, ValueError, r"^max_iters must be at least 1"),
        ({"max_iters": 1.5}, TypeError, r"^max_iters must be an integer"),
        ({"method": "admm"}, ValueError, r"^method must be 'active-set' or 'fista'"),
        ({"method": "FISTA"}, ValueError, r"^method must be"),
        ({"n_threads": 0}, ValueError, r"^n_threads must be an integer >= 1"),
        ({"n_threads": -1}, ValueError, r"^n_threads must be"),
        ({"n_threads": 1.5}, ValueError, r"^n_threads must be"),
        ({"tol": 0.0}, ValueError, r"^tol must be a positive"),
        ({"tol": -1e-3}, ValueError, r"^tol must be a positive"),
        ({"tol": float("nan")}, ValueError, r"^tol must be a positive"),
    ],
)
@pytest.mark.parametrize("solve", SOLVERS)
def test_bad_scalar_arguments(solve: Any, kw: dict[str, Any], exc: type, pattern: str) -> None:
    with pytest.raises(exc, match=pattern):
        solve(**kw)


def test_absurd_kernel_length_is_rejected_not_allocated() -> None:
    with pytest.raises(ValueError, match=r"tau_decay \* fs"):
        calab.build_kernel(0.05, 1e9, 30.0)


@pytest.mark.parametrize(
    "shape", [(4, 49), (50,), (3, 50), (4, 50, 1), (50, 4)], ids=lambda s: str(s)
)
def test_warm_start_wrong_shape(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"warm_start"):
        deconvolve(warm_start=np.zeros(shape))


def test_warm_start_wrong_shape_1d_traces() -> None:
    with pytest.raises(ValueError, match=r"warm_start has shape \(49,\) but traces have shape"):
        deconvolve(_y()[0], warm_start=np.zeros(49))


def test_warm_start_wrong_dtype() -> None:
    with pytest.raises(TypeError, match=r"warm_start must hold real numbers"):
        deconvolve(warm_start=np.full((4, 50), "x"))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_warm_start_nonfinite_rejected(bad: float) -> None:
    ws = np.zeros((4, 50))
    ws[1, 7] = bad
    with pytest.raises(ValueError, match=r"warm_start"):
        deconvolve(warm_start=ws, method="fista")


@pytest.mark.parametrize("func", [calab.build_kernel, calab.tau_to_ar2, calab.kernel_timing])
@pytest.mark.parametrize(
    ("args", "exc", "pattern"),
    [
        ((0.05, 0.5, 0.0), ValueError, r"^fs must be"),
        ((0.0, 0.5, 30.0), ValueError, r"^tau_rise must be"),
        ((0.05, -0.5, 30.0), ValueError, r"^tau_decay must be"),
        ((0.5, 0.05, 30.0), ValueError, r"tau_rise .* smaller than tau_decay"),
        (("a", 0.5, 30.0), TypeError, r"^tau_rise must be a number"),
    ],
)
def test_kernel_functions_validate(func: Any, args: tuple, exc: type, pattern: str) -> None:
    with pytest.raises(exc, match=pattern):
        func(*args)


@pytest.mark.parametrize(
    "kernel", [np.zeros((2, 2)), np.zeros(0), np.array([np.nan, 1.0]), np.array([1.0, np.inf])]
)
def test_compute_lipschitz_rejects_bad_kernels(kernel: np.ndarray) -> None:
    with pytest.raises(ValueError, match=r"kernel"):
        calab.compute_lipschitz(kernel)


# bandpass_filter -------------------------------------------------------------------------


def test_bandpass_nonfinite_names_cell_and_frame() -> None:
    y = _y(4, 100)
    y[2, 17] = np.nan
    with pytest.raises(ValueError, match=r"trace.*cell 2, frame 17"):
        calab.bandpass_filter(y, TR, TD, FS)
    with pytest.raises(ValueError, match=r"trace.*frame 17"):
        calab.bandpass_filter(y[2], TR, TD, FS)


@pytest.mark.parametrize("shape", [(0,), (3, 0), (0, 10), (), (2, 2, 20)])
def test_bandpass_bad_shapes(shape: tuple[int, ...]) -> None:
    with pytest.raises(ValueError, match=r"^trace must be a non-empty 1-D"):
        calab.bandpass_filter(np.zeros(shape), TR, TD, FS)


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        ((0.05, 0.5, 0.0), r"^fs must be"),
        ((0.0, 0.5, 30.0), r"^tau_rise must be"),
        ((0.05, 0.0, 30.0), r"^tau_decay must be"),
        ((0.6, 0.5, 30.0), r"tau_rise .* smaller than tau_decay"),
    ],
)
def test_bandpass_bad_parameters(args: tuple, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        calab.bandpass_filter(np.zeros(100), *args)


@pytest.mark.parametrize(
    "values",
    [
        np.array(["a"] * 10),
        np.array([1.0] * 10, dtype=object),
        np.array([True, False] * 5),
        np.ones(10, dtype=np.complex128),
    ],
    ids=["str", "object", "bool", "complex"],
)
def test_bandpass_non_numeric_dtypes(values: np.ndarray) -> None:
    with pytest.raises(TypeError, match=r"trace must hold real numbers"):
        calab.bandpass_filter(values, TR, TD, FS)


@pytest.mark.parametrize(
    ("kw", "exc", "pattern"),
    [
        ({"n_cells": 0}, ValueError, r"n_cells"),
        ({"n_frames": 0}, ValueError, r"n_frames"),
        ({"snr": 0.0}, ValueError, r"^snr must be"),
        ({"rate_hz": -1.0}, ValueError, r"^rate_hz must be"),
        ({"fs": 0.0}, ValueError, r"^fs must be"),
        ({"tau_rise": 1.0}, ValueError, r"tau_rise .* smaller than tau_decay"),
    ],
)
def test_simulate_bad_arguments(kw: dict[str, Any], exc: type, pattern: str) -> None:
    with pytest.raises(exc, match=pattern):
        calab.simulate(**kw)
