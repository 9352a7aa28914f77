"""Parameters from the data in the tuning UI: the start estimate, Auto, per-cell sparsity and
the drift baseline, in the session, the widget and the bridge alike (no browser)."""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np
import pytest

import calab
from calab import _protocol as P
from calab.bridge import BridgeSession
from calab.estimate import noise_sd
from calab.tuning import Settings, TuningEngine
from calab.tuning import session as session_mod
from calab.tuning.session import Message, Reply, TuningSession

FS = 30.0


@pytest.fixture(scope="module")
def traces() -> np.ndarray:
    # 12 cells x 60 s with drift: enough to estimate, small enough for quick solves.
    return calab.simulate(12, 1800, FS, 0.08, 0.6, seed=5, drift=0.5, drift_period_s=40.0)[0]


@pytest.fixture(scope="module")
def est(traces: np.ndarray) -> Any:
    return calab.estimate_parameters(traces, FS)


def headers(batches: list[list[Message]]) -> list[dict[str, Any]]:
    return [h for batch in batches for h, _ in batch]


def of_type(hs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [h for h in hs if h["type"] == kind]


def make(traces: np.ndarray, **kw: Any) -> tuple[TuningSession, list[list[Message]]]:
    sent: list[list[Message]] = []
    s = TuningSession(TuningEngine(traces, FS), emit=sent.append, threaded=False, **kw)
    return s, sent


# ---- the start ------------------------------------------------------------------------------
def test_no_tau_no_lam_starts_from_the_estimate(traces, est):
    w = calab.TuneWidget(traces, FS, threaded=False)
    try:
        assert w.tau_rise == pytest.approx(est.tau_rise, rel=1e-12)
        assert w.tau_decay == pytest.approx(est.tau_decay, rel=1e-12)
        assert w.lam_mode == "per_cell"
        assert w.baseline == est.baseline
        # Each cell's penalty is the estimate's own lambda for that cell.
        np.testing.assert_allclose(w.lam_per_cell(), est.lam, rtol=1e-9)
        np.testing.assert_allclose(w.params["lambda_per_cell"], est.lam, rtol=1e-9)
        assert w.params["lambda_"] == pytest.approx(float(np.median(est.lam)), rel=1e-9)
    finally:
        w.close()


def test_given_parameters_keep_the_old_start(traces):
    s, _ = make(traces, tau_rise=0.05, tau_decay=0.5)
    assert (s.state["tau_rise"], s.state["tau_decay"]) == (0.05, 0.5)
    assert s.state["lam_mode"] == "global" and s.state["baseline"] == "constant"
    p = Settings(0.05, 0.5, 0.0)
    assert s.state["lam"] == pytest.approx(0.01 * s.engine.lambda_max(s.state["cells"], p))
    assert s.estimate is None
    s2, _ = make(traces, lam=0.3)
    assert (s2.state["tau_rise"], s2.state["tau_decay"], s2.state["lam"]) == (0.05, 0.5, 0.3)


def test_too_short_to_estimate_starts_from_defaults(traces):
    s, _ = make(traces[:, :150])  # 5 s: below what the estimator needs
    assert (s.state["tau_rise"], s.state["tau_decay"]) == (0.05, 0.5)
    assert s.state["lam_mode"] == "global" and s.estimate is None


def test_start_estimate_reads_a_sample_of_a_big_recording(monkeypatch):
    big = calab.simulate(40, 2400, FS, 0.05, 0.5, seed=2)[0]
    monkeypatch.setattr(session_mod, "START_SAMPLE_CELLS", 10)
    monkeypatch.setattr(session_mod, "START_FRAMES", 1000)
    monkeypatch.setattr(session_mod, "START_SECONDS", 1.0)
    seen: list[tuple[int, ...]] = []

    def spy(x: Any, fs: float) -> Any:
        seen.append(np.shape(x))
        return calab.estimate_parameters(x, fs)

    s, _ = make(big, estimator=spy, n_shown=4)
    n = seen[0][0]
    assert seen == [(n, 1000)] and 10 <= n <= 10 + 4  # sample plus the cells shown first
    assert set(s.state["cells"]) <= set(s.estimate_cells.tolist())
    assert s.state["lam_mode"] == "per_cell"


# ---- Auto -----------------------------------------------------------------------------------
def test_auto_moves_the_sliders_to_the_estimate_and_answers_the_bridge_request(traces, est):
    s, _ = make(traces, tau_rise=0.1, tau_decay=1.5, lam=0.02)
    reply = Reply()
    first = s.handle({"type": P.MSG_AUTO}, deliver=reply.put)
    assert first[0][0]["type"] == P.MSG_AUTO_PROGRESS and first[0][0]["running"] is True
    hs = [h for h, _ in reply.wait(60)]
    assert [h["type"] for h in hs[:2]] == [P.MSG_AUTO_DONE, P.MSG_STATE]
    changes = hs[0]["changes"]
    assert changes["tau_rise"] == pytest.approx(est.tau_rise, rel=1e-12)
    assert changes["tau_decay"] == pytest.approx(est.tau_decay, rel=1e-12)
    assert changes["lam_mode"] == "per_cell" and changes["baseline"] == est.baseline
    assert hs[1]["changes"] == changes
    view = of_type(hs, P.MSG_VIEW)[-1]
    assert view["params"]["tau_decay"] == pytest.approx(est.tau_decay)
    assert view["params"]["lam_mode"] == "per_cell"
    assert {k: s.state[k] for k in changes} == changes
    np.testing.assert_allclose(s.cell_lam(), est.lam, rtol=1e-9)
    status = s.handle({"type": P.MSG_AUTO_STATUS})[0][0]
    assert status["running"] is False


def test_auto_in_the_widget_moves_the_traits_and_sends_the_view(traces, est):
    w = calab.TuneWidget(traces, FS, tau_rise=0.1, tau_decay=1.5, lam=0.02, threaded=False)
    sent: list[dict[str, Any]] = []
    w.send = lambda content, buffers=None: sent.append(content)  # type: ignore[method-assign]
    try:
        w._on_msg(w, {"type": P.MSG_AUTO}, [])
        assert w._session.wait_auto(60)
        assert w.tau_decay == pytest.approx(est.tau_decay, rel=1e-12)
        assert w.lam_mode == "per_cell" and w.baseline == est.baseline
        kinds = [m["type"] for m in sent]
        assert P.MSG_AUTO_DONE in kinds and P.MSG_STATE not in kinds  # traitlets carry state
        assert kinds[-1] == P.MSG_VIEW
        assert sent[-1]["params"]["tau_decay"] == pytest.approx(est.tau_decay)
        np.testing.assert_allclose(w.lam_per_cell(), est.lam, rtol=1e-9)
    finally:
        w.close()


def test_auto_failure_is_reported_and_changes_nothing(traces):
    flat = np.ones((3, 1800))
    s, sent = make(flat, tau_rise=0.05, tau_decay=0.5, lam=0.1)
    before = dict(s.state)
    assert s.auto() == {}
    done = of_type(headers(sent), P.MSG_AUTO_DONE)
    assert len(done) == 1 and "constant" in done[0]["error"]
    assert s.state == before

    def broken(x: Any, fs: float) -> Any:
        raise RuntimeError("estimator exploded")

    s2, sent2 = make(traces, tau_rise=0.05, tau_decay=0.5, lam=0.1, estimator=broken)
    reply = Reply()
    s2.handle({"type": P.MSG_AUTO}, deliver=reply.put)
    hs = [h for h, _ in reply.wait(60)]
    assert hs == [{"type": P.MSG_AUTO_DONE, "error": "RuntimeError: estimator exploded"}]
    s2.apply({"lam": 0.2, "request_id": 1})  # the session goes on
    assert of_type(headers(sent2), P.MSG_VIEW)[-1]["id"] == 1


def test_auto_sends_progress_while_the_estimate_runs(traces, monkeypatch):
    monkeypatch.setattr(session_mod, "AUTO_PROGRESS_AFTER_S", 0.0)
    progressed = threading.Event()
    sent: list[list[Message]] = []

    def emit(batch: list[Message]) -> None:
        sent.append(batch)
        if any(h["type"] == P.MSG_AUTO_PROGRESS for h, _ in batch):
            progressed.set()

    calls: list[Any] = []

    def slow(x: Any, fs: float) -> Any:
        assert progressed.wait(30), "no progress message while estimating"
        calls.append(s.handle({"type": P.MSG_AUTO}))  # a second Auto while this one runs
        return calab.estimate_parameters(x, fs)

    s = TuningSession(
        TuningEngine(traces, FS), tau_rise=0.1, tau_decay=1.5, lam=0.02, emit=emit,
        threaded=False, estimator=slow,
    )  # fmt: skip
    s.handle({"type": P.MSG_AUTO})
    assert s.wait_auto(60)
    hs = headers(sent)
    prog = of_type(hs, P.MSG_AUTO_PROGRESS)
    assert prog and prog[0]["running"] is True and "12 cells x 1800 frames" in prog[0]["message"]
    kinds = [h["type"] for h in hs]
    assert kinds.index(P.MSG_AUTO_DONE) > kinds.index(P.MSG_AUTO_PROGRESS)
    # A second Auto while one runs is answered with the status, not started twice.
    assert len(calls) == 1 and calls[0][0][0]["running"] is True
    assert len(of_type(hs, P.MSG_AUTO_DONE)) == 1
    assert s.handle({"type": P.MSG_AUTO_STATUS})[0][0]["running"] is False


def test_auto_on_the_bridge(traces, est):
    b = BridgeSession(TuningEngine(traces, FS), tau_rise=0.1, tau_decay=1.5, lam=0.02)
    try:
        hs = [h for h, _ in b.message({"type": P.MSG_AUTO})]
        assert hs[0]["type"] == P.MSG_AUTO_PROGRESS
        done = of_type(hs, P.MSG_AUTO_DONE)[0]
        assert done["changes"]["tau_rise"] == pytest.approx(est.tau_rise, rel=1e-12)
        assert b.snapshot()["lam_mode"] == "per_cell"
        b.message({"type": P.MSG_EXPORT})
        assert b.result is not None
        np.testing.assert_allclose(b.result["lambda_per_cell"], est.lam, rtol=1e-9)
        assert b.result["tau_decay"] == pytest.approx(est.tau_decay)
    finally:
        b.close()


# ---- per-cell sparsity and the drift baseline -------------------------------------------
def test_per_cell_views_solve_each_cell_at_k_times_its_noise(traces):
    s, sent = make(traces, tau_rise=0.08, tau_decay=0.6, lam=2.0, lam_mode="per_cell", n_shown=3)
    sd = noise_sd(traces, FS)
    e = s.engine
    cells = s.state["cells"]
    got = e.solve_block(cells, s.settings(), 0, 900, slot="a")
    for c, g in zip(cells, got, strict=True):
        one = e.solve_block([c], Settings(0.08, 0.6, 2.0 * float(sd[c])), 0, 900, slot="b")[0]
        np.testing.assert_allclose(g["activity"], one["activity"], atol=1e-6)
    # lam_max is in noise SDs: at it every shown cell is silent, a bit below one is not.
    lmax = s.engine.lambda_max(cells, s.settings())
    at = e.solve_block(cells, Settings(0.08, 0.6, lmax, lam_mode="per_cell"), 0, 1800, slot="c")
    below = e.solve_block(
        cells, Settings(0.08, 0.6, 0.9 * lmax, lam_mode="per_cell"), 0, 1800, slot="d"
    )
    assert max(float(np.max(r["activity"])) for r in at) <= 1e-8
    assert max(float(np.max(r["activity"])) for r in below) > 1e-6


def test_switching_mode_converts_the_slider(traces):
    s, _ = make(traces, tau_rise=0.08, tau_decay=0.6, lam=0.05)
    own = s.apply({"lam_mode": "per_cell", "request_id": 1})
    med = float(np.median(noise_sd(traces[s.state["cells"]], FS)))
    assert own["lam"] == pytest.approx(0.05 / med) and s.state["lam"] == own["lam"]
    back = s.apply({"lam_mode": "global", "request_id": 2})
    assert back["lam"] == pytest.approx(0.05)
    assert s.apply({"lam_mode": "per_cell", "lam": 1.5, "request_id": 3}) == {}
    assert s.state["lam"] == 1.5


def test_widget_deconvolve_params_and_export_honour_per_cell_and_drift(traces, tmp_path):
    w = calab.TuneWidget(
        traces, FS, tau_rise=0.08, tau_decay=0.6, lam=1.5, lam_mode="per_cell",
        baseline="drift", threaded=False,
    )  # fmt: skip
    try:
        lam = 1.5 * noise_sd(traces, FS)
        np.testing.assert_allclose(w.lam_per_cell(), lam, rtol=1e-12)
        res = w.deconvolve(progress=False)
        ref = calab.run_deconvolution_full(traces, FS, 0.08, 0.6, lam, baseline="drift")
        np.testing.assert_allclose(res.activity, ref.activity, atol=1e-9)
        assert res.baseline.shape == traces.shape
        p = w.params
        assert p["baseline"] == "drift"
        np.testing.assert_allclose(p["lambda_per_cell"], lam, rtol=1e-12)
        assert p["lambda_"] == pytest.approx(float(np.median(lam)))
        out = w.export(tmp_path / "p.json")
        saved = json.loads(out.read_text())
        assert saved["parameters"]["lambda"] == pytest.approx(float(np.median(lam)))
        assert saved["calab"]["baseline"] == "drift"
        np.testing.assert_allclose(saved["calab"]["lambda_per_cell"], lam, rtol=1e-12)
        again = calab.deconvolve_from_export(traces, out, return_full=True)
        np.testing.assert_allclose(again.activity, ref.activity, atol=1e-9)
    finally:
        w.close()


def test_drift_views_fit_the_drift(traces):
    s, sent = make(traces, tau_rise=0.08, tau_decay=0.6, lam=0.05, baseline="drift")
    from calab.baseline import drift_baseline

    e = s.engine
    c = s.state["cells"][0]
    np.testing.assert_allclose(
        e.solved_signal(c, s.settings()), traces[c] - drift_baseline(traces[c], FS), atol=1e-12
    )
    sol = e.solve_window(c, s.settings(), 600, 1200)
    # The fit shown over the raw trace includes the drift: the residual has no trend left.
    assert abs(float(np.mean(sol["residual"]))) < 0.5 * float(noise_sd(traces[c], FS))
    s.apply({"request_id": 1})
    assert of_type(headers(sent), P.MSG_VIEW)[-1]["params"]["baseline"] == "drift"


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"lam_mode": "percell"}, "lam_mode must be one of 'global', 'per_cell'"),
        ({"baseline": 3}, "baseline must be one of 'constant', 'drift'"),
        ({"pinned": {"tau_rise": 0.05, "tau_decay": 0.5, "lam": 1, "lam_mode": "x"}}, "lam_mode"),
    ],
)
def test_bad_mode_values_are_refused_naming_the_key(traces, changes, match):
    s, _ = make(traces, tau_rise=0.05, tau_decay=0.5, lam=0.1)
    with pytest.raises(ValueError, match=match):
        s.apply(changes)
    with pytest.raises(ValueError, match="lam_mode"):
        calab.TuneWidget(traces, FS, lam_mode="both", threaded=False)


def test_auto_finishing_after_close_moves_nothing(traces):
    release = threading.Event()

    def held(x: Any, fs: float) -> Any:
        assert release.wait(30)
        return calab.estimate_parameters(x, fs)

    s, sent = make(traces, tau_rise=0.1, tau_decay=1.5, lam=0.02, estimator=held)
    reply = Reply()
    s.handle({"type": P.MSG_AUTO}, deliver=reply.put)
    s.close()
    release.set()
    assert reply.wait(30) == []
    assert s.wait_auto(30)
    assert (s.state["tau_rise"], s.state["tau_decay"], s.state["lam_mode"]) == (0.1, 1.5, "global")
