"""Extreme magnitudes and windows (issue 22, items 6, 9 and 16).

A constant offset, a scale near the float range and a drift window out of proportion to the
recording or the kernel: the result is the minimiser of the unshifted, unscaled problem, or a
clear error naming the argument, never silent zeros, NaN or an allocation in the gigabytes.
"""

from __future__ import annotations

import json
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import calab
from calab.params import Params

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the helpers of tests/
from _cli_run import assert_error, run  # noqa: E402

FS, TR, TD, LAM = 30.0, 0.05, 0.5, 0.07


def _sim(n_cells: int = 3, n_frames: int = 3000) -> np.ndarray:
    """Simulated traces rounded to multiples of 2**-6, so that ``+ 1e14`` is exact in float64
    (the offset problem then has exactly the same minimiser as the plain one)."""
    traces, _ = calab.simulate(n_cells, n_frames, FS, TR, TD, seed=3)
    return np.round(traces * 64) / 64


@pytest.mark.parametrize("method", ["active-set", "fista"])
@pytest.mark.parametrize("offset", [1e10, 1e14, -1e14])
def test_a_large_offset_leaves_the_minimiser_unchanged(offset: float, method: str) -> None:
    y = _sim()
    assert np.array_equal((y + offset) - offset, y)  # the offset data are exact
    ref = calab.run_deconvolution_full(y, FS, TR, TD, LAM, method=method)
    got = calab.run_deconvolution_full(y + offset, FS, TR, TD, LAM, method=method)
    assert got.converged.all()
    assert ref.activity.sum() > 10  # there is activity to lose
    tol = 1e-4 if method == "fista" else 1e-7  # FISTA stops at a relative step of 1e-4
    np.testing.assert_allclose(got.activity, ref.activity, atol=tol * ref.activity.max())
    np.testing.assert_allclose(got.baseline - offset, ref.baseline, atol=1e-2)
    np.testing.assert_allclose(got.reconvolution - offset, ref.reconvolution, atol=1e-2)


def test_offset_rows_with_nan_still_name_the_frame() -> None:
    y = _sim() + 1e6
    y[1, 17] = np.nan
    with pytest.raises(ValueError, match=r"cell 1, frame 17"):
        calab.run_deconvolution(y, FS, TR, TD, LAM)


@pytest.mark.parametrize("scale", [1e-300, 1e306])
def test_drift_baseline_is_scale_invariant(scale: float) -> None:
    y, _ = calab.simulate(3, 3000, FS, TR, TD, seed=4, drift=1.0)
    ref = calab.drift_baseline(y, FS)
    got = calab.drift_baseline(y * scale, FS)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got / scale, ref, rtol=1e-10, atol=1e-12)


def test_drift_deconvolution_near_the_float_range() -> None:
    y, _ = calab.simulate(3, 3000, FS, TR, TD, seed=4, drift=1.0)
    ref = calab.run_deconvolution(y, FS, TR, TD, 0.02, baseline="drift")
    got = calab.run_deconvolution(y * 1e305, FS, TR, TD, 0.02e305, baseline="drift")
    np.testing.assert_allclose(got / 1e305, ref, atol=1e-9 * ref.max())


def test_a_constant_offset_under_a_drift_baseline() -> None:
    y = _sim()
    ref = calab.drift_baseline(y, FS)
    np.testing.assert_allclose(calab.drift_baseline(y + 1e14, FS) - 1e14, ref, atol=0.05)


@pytest.mark.parametrize("window", [0.001, 0.5, 0.99])
def test_a_drift_window_shorter_than_the_kernel_is_refused(window: float) -> None:
    with pytest.raises(ValueError, match=r"^baseline_window_s must be at least 2 x tau_decay"):
        Params(FS, TR, TD, LAM, baseline="drift", baseline_window_s=window)
    with pytest.raises(ValueError, match=r"baseline_window_s must be at least"):
        calab.run_deconvolution(_sim(), FS, TR, TD, LAM, baseline="drift", baseline_window_s=window)
    # The constant baseline ignores the window, as documented.
    Params(FS, TR, TD, LAM, baseline="constant", baseline_window_s=window)


def test_the_default_window_is_checked_against_slow_kernels() -> None:
    with pytest.raises(ValueError, match=r"got the default 30 s"):
        Params(2.0, 0.5, 20.0, LAM, baseline="drift")


def test_a_drift_window_longer_than_the_recording_costs_nothing_more() -> None:
    y, _ = calab.simulate(3, 300, FS, TR, TD, seed=5)
    whole = calab.run_deconvolution(y, FS, TR, TD, 0.02, baseline="drift", baseline_window_s=60.0)
    tracemalloc.start()
    try:
        huge = calab.run_deconvolution(y, FS, TR, TD, 0.02, baseline="drift", baseline_window_s=3e5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 5e6, f"{peak / 1e6:.0f} MB for 7 kB of traces"
    # Both windows span the whole 10 s recording from every frame: the same baseline.
    np.testing.assert_array_equal(huge, whole)


def test_cli_names_the_export_field_of_a_short_window(tmp_path: Path) -> None:
    np.save(tmp_path / "t.npy", _sim())
    export = calab.export_dict(tau_rise=TR, tau_decay=TD, lam=LAM, fs=FS, baseline="drift")
    export["calab"]["baseline_window_s"] = 0.001
    (tmp_path / "p.json").write_text(json.dumps(export))
    proc = run("deconvolve", "t.npy", "-p", "p.json", "-o", "out.npy", cwd=tmp_path)
    assert_error(proc, "baseline_window_s must be at least")
    assert not (tmp_path / "out.npy").exists()
