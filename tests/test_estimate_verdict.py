"""The verdict that comes with every estimate (est.quality) and what it refuses to hide."""

from __future__ import annotations

import json
import subprocess
import warnings
from pathlib import Path

import numpy as np
import pytest

import calab
from calab.estimate_verdict import (
    FALLBACK_TAU_DECAY,
    FALLBACK_TAU_RISE,
    EstimateQuality,
    UnreliableEstimateWarning,
)
from calab.simulate import INDICATORS

FS = 30.0


def _estimate_warns(traces: np.ndarray, fs: float = FS) -> calab.ParameterEstimate:
    with pytest.warns(UnreliableEstimateWarning, match="cannot be trusted") as rec:
        est = calab.estimate_parameters(traces, fs)
    assert "tau_rise" in str(rec[0].message)  # says what to do
    q = est.quality
    assert isinstance(q, EstimateQuality)
    assert not q.trusted and q.fallback and q.problems
    assert (est.tau_rise, est.tau_decay) == (FALLBACK_TAU_RISE, FALLBACK_TAU_DECAY)
    assert q.summary().startswith("UNRELIABLE")
    return est


def _noise_like(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=shape)


# --------------------------------------------------------------------------- trusted


def test_simulated_recording_is_trusted_and_resolved() -> None:
    traces, _ = calab.simulate(10, 9000, FS, 0.05, 0.5, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est = calab.estimate_parameters(traces, FS)
    q = est.quality
    assert q is not None and q.trusted and not q.fallback
    assert q.rise_resolved and q.decay_resolved and q.noise_resolved
    assert q.transients.all() and not q.near_constant.any()
    assert np.nanmedian(q.r2) > 0.3  # the kernel predicts held-out frames
    assert q.summary().startswith("ok")


def test_repr_is_short_and_carries_the_verdict() -> None:
    traces, _ = calab.simulate(200, 3000, FS, 0.05, 0.5, seed=2)
    est = calab.estimate_parameters(traces, FS)
    text = repr(est)
    assert len(text) < 400 and "200 cells" in text
    assert "verdict: ok" in text or "verdict: usable" in text
    assert "array" not in text


# --------------------------------------------------------------------------- issue 22 item 5


def test_white_noise_is_flagged() -> None:
    _estimate_warns(_noise_like((50, 9000)))


@pytest.mark.slow
def test_large_white_noise_is_flagged() -> None:
    _estimate_warns(_noise_like((400, 30000), seed=5))


def _t(n: int = 9000) -> np.ndarray:
    return np.arange(n) / FS


def test_steps_are_flagged() -> None:
    steps = np.where((_t() // 20) % 2 == 0, 0.0, 5.0)
    _estimate_warns(steps[None, :] + _noise_like((10, 9000)))


def test_sawtooth_drift_is_flagged() -> None:
    saw = (_t() % 20) / 20 * 5
    _estimate_warns(saw[None, :] + _noise_like((10, 9000)))


def test_sine_is_flagged() -> None:
    sine = 3 * np.sin(2 * np.pi * _t() / 3)
    _estimate_warns(sine[None, :] + _noise_like((10, 9000)))


def test_sign_flipped_traces_are_flagged() -> None:
    traces, _ = calab.simulate(10, 9000, FS, 0.05, 0.5, seed=1)
    _estimate_warns(-traces)


def test_slow_drift_alone_is_flagged() -> None:
    drift = 5 * np.sin(2 * np.pi * _t() / 200)
    _estimate_warns(drift[None, :] + _noise_like((10, 9000)))


def test_rise_far_below_a_frame_is_flagged() -> None:
    traces, _ = calab.simulate(10, 3000, 7.5, 0.005, 0.5, seed=2)
    est = calab.estimate_parameters(traces, 7.5)
    q = est.quality
    assert q is not None and not q.rise_resolved and not q.resolved
    assert any("rise" in n and "not resolved" in n for n in q.notes)
    assert "rise" in q.summary()


# --------------------------------------------------------------------------- item 8


def test_dead_rois_do_not_drag_lambda() -> None:
    rng = np.random.default_rng(0)
    real, _ = calab.simulate(1, 9000, FS, 0.05, 0.5, seed=1)
    dead = 1.0 + rng.normal(size=(9, 9000)) * 1e-15
    est = calab.estimate_parameters(np.vstack([dead, real]), FS)
    alone = calab.estimate_parameters(real, FS)
    assert est.params["lambda_"] == pytest.approx(alone.params["lambda_"], rel=0.3)
    q = est.quality
    assert q is not None
    assert q.near_constant.tolist() == [True] * 9 + [False]
    assert est.no_transients[:9].all()
    assert "near-constant" in q.summary()


# --------------------------------------------------------------------------- item 9


@pytest.mark.parametrize("factor", [1e154, 1e-300])
def test_extreme_magnitudes_estimate_like_the_original(factor: float) -> None:
    traces, _ = calab.simulate(10, 9000, FS, 0.05, 0.5, seed=1)
    ref = calab.estimate_parameters(traces, FS)
    est = calab.estimate_parameters(traces * factor, FS)
    assert est.tau_rise == pytest.approx(ref.tau_rise, rel=1e-6)
    assert est.tau_decay == pytest.approx(ref.tau_decay, rel=1e-6)
    np.testing.assert_allclose(est.noise, ref.noise * factor, rtol=1e-6)
    np.testing.assert_allclose(est.lam, ref.lam * factor, rtol=1e-6)


@pytest.mark.parametrize("fs", [0.03, 0.01])
def test_frame_rate_too_low_names_the_cause(fs: float) -> None:
    traces, _ = calab.simulate(5, 400, fs, 0.05, 0.5, seed=1)
    with (
        pytest.warns(UserWarning, match=r"frame period"),  # the units check speaks first
        pytest.raises(ValueError, match=r"fs=.* Hz is one frame every") as info,
    ):
        calab.estimate_parameters(traces, fs)
    assert "white noise" not in str(info.value)


# --------------------------------------------------------------------------- simulated grid


def _check_grid_case(indicator: str, fs: float, snr: float, n_cells: int, seconds: float) -> None:
    traces, _, truth = calab.simulate(
        n_cells, int(seconds * fs), fs, indicator=indicator, snr=snr, drift=1.0, bleach=2.0,
        seed=3, return_truth=True,
    )  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnreliableEstimateWarning)
        est = calab.estimate_parameters(traces, fs)
    q = est.quality
    assert q is not None
    where = f"{indicator} at {fs} Hz, SNR {snr}: {q.summary()}"
    if q.rise_resolved:
        assert est.tau_rise == pytest.approx(truth.tau_rise, rel=0.2), where
    if q.decay_resolved:
        assert est.tau_decay == pytest.approx(truth.tau_decay, rel=0.2), where
    if q.noise_resolved:
        err = np.abs(est.noise / truth.noise_sd - 1.0)
        assert float(np.median(err)) < 0.1, where
    if not (q.rise_resolved and q.decay_resolved and q.noise_resolved):
        assert not q.resolved and q.summary().startswith(("usable", "UNRELIABLE")), where


@pytest.mark.parametrize(
    ("indicator", "fs", "snr"),
    [("gcamp6f", 7.5, 3), ("gcamp6s", 30.0, 1), ("jgcamp8f", 100.0, 10), ("jgcamp7f", 15.0, 3)],
)
def test_grid_sample(indicator: str, fs: float, snr: float) -> None:
    _check_grid_case(indicator, fs, snr, 6, 60.0)


@pytest.mark.slow
@pytest.mark.parametrize("indicator", sorted(INDICATORS))
@pytest.mark.parametrize("fs", [7.5, 15.0, 30.0, 60.0, 100.0, 200.0])
def test_grid(indicator: str, fs: float) -> None:
    """Indicator presets x frame rates x SNR 1-10 with drift and bleaching (about 80 s)."""
    for snr in (1.0, 3.0, 10.0):
        _check_grid_case(indicator, fs, snr, 6, 60.0)


# --------------------------------------------------------------------------- command line


def _run_cli(*args: object) -> subprocess.CompletedProcess:
    from _cli_run import run

    return run(*args)


def test_calab_estimate_prints_the_verdict(tmp_path: Path) -> None:
    traces, _ = calab.simulate(8, 3000, FS, 0.05, 0.5, seed=3)
    calab.save_for_tuning(traces, FS, tmp_path / "rec")
    proc = _run_cli("estimate", tmp_path / "rec.npy")
    assert proc.returncode == 0, proc.stderr
    line = next(x for x in proc.stdout.splitlines() if x.startswith("verdict"))
    assert "cells with transients" in line
    proc = _run_cli("estimate", tmp_path / "rec.npy", "--json")
    verdict = json.loads(proc.stdout)["verdict"]
    assert verdict["trusted"] is True and verdict["summary"]


def test_calab_estimate_on_noise_says_unreliable(tmp_path: Path) -> None:
    calab.save_for_tuning(_noise_like((50, 9000)), FS, tmp_path / "noise")
    proc = _run_cli("estimate", tmp_path / "noise.npy")
    assert proc.returncode == 0
    assert "cannot be trusted" in proc.stderr
    assert "verdict:" in proc.stdout and "UNRELIABLE" in proc.stdout


def test_deconvolve_auto_refuses_an_unreliable_estimate(tmp_path: Path) -> None:
    calab.save_for_tuning(_noise_like((50, 9000)), FS, tmp_path / "noise")
    out = tmp_path / "act.npy"
    proc = _run_cli("deconvolve", tmp_path / "noise.npy", "--auto", "-o", out)
    assert proc.returncode != 0
    assert "--auto: the estimate cannot be trusted" in proc.stderr
    assert "no upward" in proc.stderr or "held-out" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not out.exists() and not list(tmp_path.glob("*.partial"))


# --------------------------------------------------------------------------- tuner (Auto)


def _auto_done(traces: np.ndarray) -> dict:
    from calab import _protocol as P
    from calab.tuning import TuningEngine
    from calab.tuning.session import Reply, TuningSession

    s = TuningSession(TuningEngine(traces, FS), threaded=False, tau_rise=0.1, tau_decay=1.0)
    reply = Reply()
    s.handle({"type": P.MSG_AUTO}, deliver=reply.put)
    done = [h for h, _ in reply.wait(60) if h["type"] == P.MSG_AUTO_DONE]
    assert len(done) == 1 and "error" not in done[0], done
    return done[0]["estimate"]["verdict"]


def test_tuner_auto_sends_the_verdict() -> None:
    traces, _ = calab.simulate(8, 1800, FS, 0.05, 0.5, seed=5)
    verdict = _auto_done(traces)
    assert verdict["trusted"] is True and verdict["summary"].startswith(("ok", "usable"))


@pytest.mark.filterwarnings("ignore::calab.estimate_verdict.UnreliableEstimateWarning")
@pytest.mark.filterwarnings("ignore:too few clear transients")
def test_tuner_auto_on_noise_says_unreliable() -> None:
    verdict = _auto_done(_noise_like((8, 1800)))
    assert verdict["trusted"] is False and verdict["fallback"] is True
    assert verdict["summary"].startswith("UNRELIABLE") and verdict["problems"]


def test_readme_verdict_snippet_runs() -> None:
    from test_readme import blocks_under

    code = blocks_under("### The verdict: can the estimate be trusted?")
    assert code
    namespace: dict[str, object] = {}
    for block in code:
        exec(compile(block, "README.md", "exec"), namespace)  # noqa: S102 - our own docs
    q = namespace["q"]
    assert isinstance(q, EstimateQuality) and q.trusted
