"""TuningSession: apply all-or-nothing, batched views, messages, the newest request wins."""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
import pytest

import calab
from calab import _protocol as P
from calab.tuning import Settings, Superseded, TuningEngine
from calab.tuning import engine as engine_mod
from calab.tuning.session import Message, Reply, TuningSession

FS = 30.0


@pytest.fixture(scope="module")
def traces() -> np.ndarray:
    return calab.simulate(70, 1500, FS, 0.05, 0.5, seed=3)[0]


class Counting:
    """Wraps the solver; records the shape of each call (one call = one crossing into Rust)."""

    def __init__(self) -> None:
        self.shapes: list[tuple[int, ...]] = []

    def __call__(self, y: Any, *args: Any, **kw: Any) -> Any:
        self.shapes.append(np.shape(y))
        return calab.run_deconvolution_full(y, *args, **kw)


def make(traces: np.ndarray, **kw: Any) -> tuple[TuningSession, list[list[Message]], Counting]:
    solver = Counting()
    sent: list[list[Message]] = []
    s = TuningSession(
        TuningEngine(traces, FS, solver=solver), lam=0.02, emit=sent.append, threaded=False, **kw
    )
    return s, sent, solver


def views(sent: list[list[Message]]) -> list[dict]:
    return [h for batch in sent for h, _ in batch if h["type"] == P.MSG_VIEW]


def test_one_solver_call_per_view_with_warm_starts(traces):
    s, sent, solver = make(traces, n_shown=5)
    s.apply({"request_id": 1})
    assert solver.shapes == [(5, solver.shapes[0][1])]  # five cells, one call
    s.apply({"lam": 0.021, "request_id": 2})
    assert len(solver.shapes) == 2
    s.apply({"pinned": {"tau_rise": 0.05, "tau_decay": 0.6, "lam": 0.02}, "request_id": 3})
    assert len(solver.shapes) == 4  # the view and the pinned set: one call each
    s.apply({"lam": 0.022, "request_id": 4})
    assert len(solver.shapes) == 5  # the pinned solves are cached
    assert views(sent)[-1]["states"] == ["fresh"] * 5


def test_batched_warm_solve_equals_cold_single_solves(traces):
    eng = TuningEngine(traces, FS)
    cells, start, stop = [4, 0, 9, 31], 300, 1100
    eng.solve_block(cells, Settings(0.05, 0.5, 0.03), start - 50, stop - 50)  # warm starts
    got = eng.solve_block(cells, Settings(0.05, 0.5, 0.05), start, stop)
    a, b = eng.segment(start, stop, Settings(0.05, 0.5, 0.05))
    w = slice(start - a, stop - a)
    for cell, g in zip(cells, got, strict=True):
        ref = calab.run_deconvolution_full(traces[cell, a:b], FS, 0.05, 0.5, 0.05)
        np.testing.assert_allclose(g["activity"], ref.activity[w], atol=1e-8)
        np.testing.assert_allclose(g["fit"], ref.reconvolution[w], atol=1e-8)
        assert g["baseline"] == pytest.approx(float(ref.baseline), abs=1e-8)


def test_newer_request_is_checked_between_batches(traces, monkeypatch):
    monkeypatch.setattr(engine_mod, "BATCH_CELL_FRAMES", 1)  # two cells per batch
    s, _, solver = make(traces, n_shown=8)
    calls = []

    def check() -> None:
        calls.append(len(solver.shapes))
        if len(solver.shapes) >= 2:
            raise Superseded

    with pytest.raises(Superseded):
        s.engine.view(s.current_request(), check)
    assert solver.shapes[0][0] == 2 and len(solver.shapes) == 2  # stopped after two batches
    assert calls == [0, 1, 2]


def test_apply_stores_all_or_nothing(traces):
    s, sent, _ = make(traces)
    before = s.snapshot()
    with pytest.raises(ValueError, match="seed"):
        s.apply({"lam": 0.5, "cell_mode": "random", "seed": -1})
    assert s.snapshot() == before
    with pytest.raises(ValueError, match="cells must list 1 to 64"):
        s.apply({"cells": list(range(65))})  # the same cap as the bridge had
    assert s.snapshot() == before


def test_cell_mode_changes_choose_cells(traces):
    s, _, _ = make(traces, n_shown=3)
    assert s.state["cells"] == [int(c) for c in s.engine.most_active()[:3]]
    own = s.apply({"cell_mode": "random", "seed": 4})
    assert own["cells"] == s.state["cells"] and len(own["cells"]) == 3
    assert s.apply({"seed": 4}) == {}
    s.apply({"cell_mode": "index", "cells": [7, 2]})
    assert s.apply({"n_shown": 5}) == {} and s.state["cells"] == [7, 2]


def test_bad_parameters_put_every_card_in_error_then_recover(traces):
    s, sent, _ = make(traces)
    s.apply({"tau_rise": 0.7, "request_id": 1})
    v = views(sent)[-1]
    assert v["id"] == 1 and set(v["states"]) == {"error"} and "tau_rise" in v["errors"][0]
    s.apply({"tau_rise": 0.05, "request_id": 2})
    v = views(sent)[-1]
    assert v["id"] == 2 and set(v["states"]) == {"fresh"}


def test_messages(traces):
    s, sent, _ = make(traces)
    out = s.handle({"type": P.MSG_HELLO})
    assert out[0][0]["type"] == P.MSG_STATE and out[0][0]["changes"]["fs"] == FS
    assert [h["type"] for h, _ in sent[-1]] == [P.MSG_OVERVIEW, P.MSG_VIEW]
    (spec,) = s.handle({"type": P.MSG_REQ_SPECTRUM, "cell": 3})
    assert spec[0]["cell"] == 3 and len(spec[1]) == 2
    with pytest.raises(ValueError, match="cell must be in 0..69"):
        s.handle({"type": P.MSG_REQ_SPECTRUM, "cell": -1})
    with pytest.raises(TypeError, match="cell"):
        s.handle({"type": P.MSG_REQ_SPECTRUM, "cell": "3"})
    with pytest.raises(ValueError, match="unknown message type"):
        s.handle({"type": "calab:nope"})


def test_each_deliver_is_called_once(traces):
    """A request with its own reply box always gets an answer: view, nothing, or superseded."""
    solver_gate, entered = threading.Event(), threading.Event()
    s = TuningSession(TuningEngine(traces, FS), lam=0.02)
    real = s.engine._solver

    def held(*a: Any, **k: Any) -> Any:
        entered.set()
        assert solver_gate.wait(10)
        return real(*a, **k)

    s.engine._solver = held
    r1, r2, r3, r4 = Reply(), Reply(), Reply(), Reply()
    s.apply({"lam": 0.03, "request_id": 1}, deliver=r1.put)
    assert entered.wait(10)
    s.apply({"lam": 0.04, "request_id": 2}, deliver=r2.put)  # waits, then replaced
    s.apply({"lam": 0.05, "request_id": 3}, deliver=r3.put)
    assert r2.wait(10) == [({"type": P.MSG_SUPERSEDED}, [])]
    solver_gate.set()
    assert [h["type"] for h, _ in r1.wait(10)] == [P.MSG_SUPERSEDED]
    assert r3.wait(10)[-1][0]["id"] == 3
    s.apply({"columns": 1}, deliver=r4.put)  # same view as before: nothing to solve
    assert r4.wait(10) == []
    s.close(join=True)
