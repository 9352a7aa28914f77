"""The kernel-side tuning engine: windowed warm-started solves, batching, view packing."""

from __future__ import annotations

import numpy as np
import pytest

import calab
from calab.tuning import Settings, TuningEngine, ViewRequest, minmax_downsample
from calab.tuning.engine import kernel_length, lambda_max

FS = 30.0
P = Settings(0.05, 0.5, 0.02)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return calab.simulate(4, 3000, FS, 0.05, 0.5, seed=3)


def test_window_solve_equals_cold_solve_of_padded_segment(data):
    traces, _ = data
    eng = TuningEngine(traces, FS)
    start, stop = 1200, 1800
    a, b = eng.segment(start, stop, P)
    pad = kernel_length(P.tau_decay, FS)
    assert (a, b) == (start - pad, stop + pad)
    # A first solve at other parameters leaves a warm start behind.
    eng.solve_window(1, Settings(0.05, 0.7, 0.05), start - 100, stop - 100)
    got = eng.solve_window(1, P, start, stop)
    ref = calab.run_deconvolution_full(traces[1, a:b], FS, 0.05, 0.5, 0.02)
    w = slice(start - a, stop - a)
    np.testing.assert_allclose(got["activity"], ref.activity[w], atol=1e-8)
    np.testing.assert_allclose(got["fit"], ref.reconvolution[w], atol=1e-8)
    np.testing.assert_allclose(got["residual"], traces[1, start:stop] - ref.reconvolution[w])


def test_padded_window_matches_whole_trace_solve_inside_window(data):
    traces, _ = data
    eng = TuningEngine(traces, FS)
    start, stop = 1000, 2000
    got = eng.solve_window(0, P, start, stop)
    full = calab.run_deconvolution_full(traces[0], FS, 0.05, 0.5, 0.02)
    # One kernel length of padding on each side: the window's fit agrees with the full solve.
    err = np.abs(got["fit"] - full.reconvolution[start:stop]).max()
    assert err < 0.05 * np.ptp(traces[0, start:stop])


def test_warm_start_cuts_solver_work(data):
    traces, _ = data
    calls = []

    def counting(*args, **kw):
        res = calab.run_deconvolution_full(*args, **kw)
        calls.append(int(res.iterations))
        return res

    eng = TuningEngine(traces, FS, solver=counting)
    eng.solve_window(2, P, 0, 3000)
    eng.solve_window(2, Settings(0.05, 0.5, 0.021), 0, 3000)
    assert calls[1] < calls[0]


def test_view_packs_float32_buffer(data):
    traces, spikes = data
    eng = TuningEngine(traces, FS, truth=spikes)
    req = ViewRequest(
        7, P, (3, 0), 100, 1100, 250, pinned=Settings(0.05, 0.6, 0.02), show_truth=True
    )
    header, buffers = eng.view(req).pack()
    assert header["id"] == 7 and header["cells"] == [3, 0]
    assert header["series"] == [
        "raw", "fit", "activity", "residual", "pin_fit", "pin_activity", "truth"
    ]  # fmt: skip
    assert header["shape"] == [2, 7, 250, 2] and header["dtype"] == "float32"
    arr = np.frombuffer(buffers[0], dtype=np.float32).reshape(header["shape"])
    np.testing.assert_allclose(arr[0, 0], minmax_downsample(traces[3, 100:1100], 250))
    assert header["states"] == ["fresh", "fresh"]
    assert 0 <= header["metrics"][0]["sparsity"] <= 1 and header["metrics"][0]["r2"] > 0.5


def test_lambda_max_zeroes_activity(data):
    traces, _ = data
    lm = lambda_max(traces[:2], calab.build_kernel(0.05, 0.5, FS))
    above = calab.run_deconvolution(traces[:2], FS, 0.05, 0.5, lm * 1.01)
    below = calab.run_deconvolution(traces[:2], FS, 0.05, 0.5, lm * 0.9)
    assert np.all(above == 0) and below.max() > 0


def test_bad_params_mark_cells_error(data):
    traces, _ = data
    eng = TuningEngine(traces, FS)
    res = eng.view(ViewRequest(1, Settings(0.6, 0.5, 0.02), (0, 1), 0, 500, 100))
    assert [c.state for c in res.cells] == ["error", "error"]
    assert "tau_rise" in (res.cells[0].error or "")
