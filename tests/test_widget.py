"""TuneWidget without a browser: traitlets drive solves, bad input fails early."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

import calab
from calab import _protocol as P

pytest.importorskip("anywidget")

FS = 30.0


@pytest.fixture(scope="module")
def traces() -> np.ndarray:
    return calab.simulate(6, 2000, FS, 0.05, 0.5, seed=5)[0]


class Sent:
    """Captures what the widget sends to the page."""

    def __init__(self, w: calab.TuneWidget):
        self.msgs: list[tuple[dict, list[bytes]]] = []
        w.send = lambda content, buffers=None: self.msgs.append((content, buffers or []))

    def views(self) -> list[dict]:
        return [m for m, _ in self.msgs if m["type"] == P.MSG_VIEW]


def make(traces, **kw) -> calab.TuneWidget:
    return calab.TuneWidget(traces, fs=FS, threaded=False, **kw)


def test_traitlet_changes_trigger_solves(traces):
    w = make(traces, lam=0.02)
    sent = Sent(w)
    w.lam = 0.05
    w.tau_decay = 0.6
    w.filter_enabled = True
    views = sent.views()
    assert [v["params"]["lam"] for v in views] == [0.05, 0.05, 0.05]
    assert [v["params"]["tau_decay"] for v in views] == [0.5, 0.6, 0.6]
    assert views[-1]["params"]["filter_enabled"] is True and "filtered" in views[-1]["series"]
    header, bufs = sent.msgs[-1]
    arr = np.frombuffer(bufs[0], dtype=np.float32)
    assert arr.size == np.prod(header["shape"]) and header["shape"][0] == len(w.cells)
    json.dumps(header)  # the header is small JSON; arrays travel only as buffers


def test_view_covers_only_shown_cells_and_window(traces):
    w = make(traces, n_shown=2)
    sent = Sent(w)
    w.plot_width = 150
    w.window_start, w.window_stop = 500, 1400
    header = sent.views()[-1]
    assert header["cells"] == w.cells and len(w.cells) == 2
    assert (header["start"], header["stop"]) == (500, 1400)
    assert header["shape"][2] == 150  # downsampled to the pixel width


def test_page_request_id_is_echoed(traces):
    w = make(traces)
    sent = Sent(w)
    with w.hold_trait_notifications():
        w.tau_rise = 0.06
        w.request_id = 41
    assert sent.views()[-1]["id"] == 41
    assert len(sent.views()) == 1  # one user action, one solve


def test_cell_selection_modes(traces):
    w = make(traces, n_shown=3)
    assert w.cells == [int(c) for c in w._engine.most_active()[:3]]
    w.cell_mode = "random"
    picks = set()
    for seed in range(6):  # reshuffle
        w.seed = seed
        assert len(set(w.cells)) == 3 and all(0 <= c < 6 for c in w.cells)
        picks.add(tuple(w.cells))
    assert len(picks) > 1
    w.cell_mode = "index"
    w.cells = [5, 0]
    assert w.last_view is not None and w.last_view.request.cells == (5, 0)
    with pytest.raises(Exception, match="out of range"):
        w.cells = [99]


@pytest.mark.parametrize(
    ("bad", "kwargs", "match"),
    [
        (np.array([[1.0, np.nan] * 10]), {}, "NaN"),
        (np.ones((3, 1)), {}, "at least 8"),
        (np.ones((0, 100)), {}, "no cells"),
        (np.ones((2, 100)), {"fs": -1.0}, "fs"),
        (np.ones((2, 100)), {"fs": "30"}, "fs"),
        (np.ones((2, 100)), {"tau_rise": 0.6, "tau_decay": 0.5}, "tau_rise"),
    ],
)
def test_bad_input_raises_before_rendering(bad, kwargs, match):
    kw = {"fs": FS, **kwargs}
    with pytest.raises((ValueError, TypeError), match=match):
        calab.TuneWidget(bad, threaded=False, **kw)


def test_bad_trait_values_are_rejected(traces):
    w = make(traces, tau_rise=0.05, tau_decay=0.5)  # given: no estimate at the start
    with pytest.raises(Exception, match="positive"):
        w.tau_rise = -0.1
    with pytest.raises(Exception, match="lam"):
        w.lam = float("nan")
    assert w.tau_rise == 0.05


def test_solver_exception_sets_error_state_and_widget_keeps_working(traces, caplog):
    w = make(traces, n_shown=3)
    sent = Sent(w)
    bad_cell = w.cells[1]
    real = w._engine._solver

    def flaky(y, *args, **kw):
        # The shown cells are solved in one batched call (2-D y): fail if it holds the bad cell.
        rows = np.atleast_2d(y)
        bad = any(np.array_equal(r, w._engine.traces[bad_cell, : r.size]) for r in rows)
        if bad or flaky.fail_all:
            raise RuntimeError("solver exploded")
        return real(y, *args, **kw)

    flaky.fail_all = False
    w._engine._solver = flaky
    w.window_start, w.window_stop = 0, 600
    with caplog.at_level(logging.ERROR):
        w.lam = 0.03
    header = sent.views()[-1]
    assert header["states"] == ["fresh", "error", "fresh"]
    assert "solver exploded" in header["errors"][1]
    assert "solver exploded" in caplog.text
    w._engine._solver = real
    w.lam = 0.04
    assert sent.views()[-1]["states"] == ["fresh", "fresh", "fresh"]


def test_params_export_and_deconvolve(traces, tmp_path):
    w = make(traces, tau_rise=0.06, tau_decay=0.7, lam=0.03, filter_enabled=True)
    path = w.export(tmp_path / "p.json")
    assert calab.load_export_params(path) == w.params
    assert w.params == {
        "tau_rise": 0.06,
        "tau_decay": 0.7,
        "lambda_": 0.03,
        "fs": FS,
        "filter_enabled": True,
    }
    res = w.deconvolve(chunk_cells=4, progress=False)
    ref = calab.run_deconvolution_full(
        calab.bandpass_filter(traces, 0.06, 0.7, FS), FS, 0.06, 0.7, 0.03
    )
    np.testing.assert_allclose(res.activity, ref.activity)
    assert res.baseline.shape == (traces.shape[0],)


def test_lambda_max_zeroes_shown_cells(traces):
    w = make(traces, n_shown=2)
    top = w.lam_max
    act = calab.run_deconvolution(traces[w.cells], FS, 0.05, 0.5, top * 1.01)
    assert np.all(act == 0)


def test_threaded_widget_answers_latest(traces):
    w = calab.TuneWidget(traces, fs=FS)
    sent = Sent(w)
    for k in range(20):
        w.lam = 0.01 + 0.001 * k
    assert w.wait_idle(10)
    assert sent.views()[-1]["params"]["lam"] == pytest.approx(0.029)
    w.close()


def test_demo_has_truth():
    w = calab.TuneWidget.demo(n_cells=3, n_frames=900, threaded=False)
    w.show_truth = True
    assert w.has_truth and "truth" in w.last_view.series_names
