"""Per-cell lambda (issue 12): each cell solved at its own lambda, checked by the KKT conditions."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from _reference import kernel, kkt

import calab

FS, TR, TD = 30.0, 0.05, 0.5


def test_per_cell_lambda_meets_kkt_at_each_cells_own_lambda() -> None:
    y, _ = calab.simulate(5, 2000, FS, TR, TD, rate_hz=1.0, snr=5.0, seed=8)
    lam = np.array([0.0, 0.003, 0.05, 0.4, 3.0])
    res = calab.run_deconvolution_full(y, FS, TR, TD, lam)
    assert np.all(res.converged)
    h = kernel(TR, TD, FS)
    totals = []
    for i in range(y.shape[0]):
        k = kkt(y[i], res.activity[i], float(res.baseline[i]), h, float(lam[i]))
        assert k.negative == 0.0 and k.worst <= 1e-5, (i, k)
        # ... and not optimal at another lambda (so each cell's own lambda reached it): a larger
        # one for cells with activity, lambda 0 for a cell whose activity is all zero.
        other_lam = float(lam[i]) + 0.05 if res.activity[i].any() else 0.0
        other = kkt(y[i], res.activity[i], float(res.baseline[i]), h, other_lam)
        assert other.worst > 1e-3, (i, other)
        single = calab.run_deconvolution(y[i], FS, TR, TD, float(lam[i]))
        np.testing.assert_allclose(res.activity[i], single, atol=1e-12)
        totals.append(res.activity[i].sum())
    assert totals[-1] < totals[0]


@pytest.mark.parametrize("method", ["active-set", "fista"])
def test_per_cell_lambda_equal_values_match_scalar(method: str) -> None:
    y, _ = calab.simulate(4, 500, FS, TR, TD, seed=2)
    a = calab.run_deconvolution(y, FS, TR, TD, np.full(4, 0.05), method=method, n_threads=2)
    b = calab.run_deconvolution(y, FS, TR, TD, 0.05, method=method, n_threads=1)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("lam", [[0.1, 0.2, 0.3], np.ones((4, 1)), np.ones(5)])
def test_wrong_shaped_lambda_is_refused_naming_lam(lam: Any) -> None:
    y = np.random.default_rng(0).normal(size=(4, 100))
    with pytest.raises(ValueError, match=r"^lam "):
        calab.run_deconvolution(y, FS, TR, TD, lam)


def test_per_cell_lambda_for_one_1d_trace() -> None:
    y, _ = calab.simulate(1, 400, FS, TR, TD, seed=3)
    a = calab.run_deconvolution(y[0], FS, TR, TD, [0.05])
    np.testing.assert_array_equal(a, calab.run_deconvolution(y[0], FS, TR, TD, 0.05))
