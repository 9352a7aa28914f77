"""The kernel curve each view carries for the UI's kernel plot (the UI keeps no kernel maths)."""

from __future__ import annotations

import numpy as np

import calab
from calab.kernel import kernel_timing
from calab.tuning import Settings, TuningEngine, ViewRequest
from calab.tuning.engine import KERNEL_POINTS, KERNEL_SPAN_DECAYS, kernel_curve

FS = 30.0


def test_kernel_curve_matches_the_reported_timing() -> None:
    tr, td = 0.05, 0.5
    curve = kernel_curve(tr, td).astype(np.float64)
    t = np.linspace(0.0, KERNEL_SPAN_DECAYS * td, KERNEL_POINTS)
    assert curve.shape == (KERNEL_POINTS,)
    assert curve[0] == 0.0 and curve.max() == 1.0
    t_peak, fwhm = kernel_timing(tr, td, FS)
    dt = t[1]
    assert abs(t[np.argmax(curve)] - t_peak) <= dt
    above = t[curve >= 0.5]
    assert abs((above[-1] - above[0]) - fwhm) <= 2 * dt
    # Independent of the engine: the double exponential, scaled to its maximum.
    ref = np.exp(-t / td) - np.exp(-t / tr)
    np.testing.assert_allclose(curve, ref / ref.max(), atol=2e-3)


def test_view_sends_the_curve_as_a_second_buffer() -> None:
    traces, _ = calab.simulate(2, 1000, FS, seed=1)
    eng = TuningEngine(traces, FS)
    header, buffers = eng.view(ViewRequest(1, Settings(0.05, 0.4, 0.02), (0,), 0, 500, 100)).pack()
    assert len(buffers) == 2
    assert header["kernel_t_max_s"] == KERNEL_SPAN_DECAYS * 0.4
    sent = np.frombuffer(buffers[1], dtype=np.float32)
    np.testing.assert_array_equal(sent, kernel_curve(0.05, 0.4))


def test_no_curve_for_invalid_parameters() -> None:
    traces, _ = calab.simulate(2, 1000, FS, seed=1)
    eng = TuningEngine(traces, FS)
    header, buffers = eng.view(ViewRequest(1, Settings(0.5, 0.4, 0.02), (0,), 0, 500, 100)).pack()
    assert len(buffers) == 1 and "kernel_t_max_s" not in header
    assert header["states"] == ["error"]
