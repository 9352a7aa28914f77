"""Solver benchmark: calab vs upstream CaLab 0.3.0 (PyPI) vs OASIS, on the same synthetic data.

Measures, per indicator (GCaMP6f-like and GCaMP6s-like kernels):
  * batch throughput (million cell-frames/s, median of repeats) and single-trace latency
    (median over single-trace calls, one trace per call);
  * accuracy: Pearson r of smoothed activity vs smoothed true spikes (best lag 0..3);
  * the CaTune objective reached by calab and by upstream (same model), per cell;
  * one thread each, CPU time: calab's throughput per core against OASIS AR(1) with a fixed
    penalty, pivots per trace and the optimality gap (KKT residual, objective against a long
    FISTA run), also on the real recordings of the ground-truth set (--no-real to skip).

Usage:  .venv/bin/python bench/solver.py [--quick] [--no-upstream] [--no-real] [--lam 0.01]
See bench/README.md. Results are printed and written to bench/results/solver-<date>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from datetime import datetime
from pathlib import Path
from typing import Any

import _common as C  # bench/ is on sys.path when run as a script
import numpy as np

import calab

INDICATORS = [
    {"name": "gcamp6f", "label": "GCaMP6f-like", "tau_r": 0.05, "tau_d": 0.5, "seed": 1},
    {"name": "gcamp6s", "label": "GCaMP6s-like", "tau_r": 0.05, "tau_d": 1.5, "seed": 2},
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--quick", action="store_true", help="small, fast run (20 cells, 1-2 repeats)")
    p.add_argument("--cells", type=int, default=None, help="cells per batch (default 100)")
    p.add_argument("--frames", type=int, default=9000, help="frames per trace (default 9000)")
    p.add_argument("--fs", type=float, default=30.0, help="sampling rate, Hz (default 30)")
    p.add_argument("--snr", type=float, default=5.0, help="spike amplitude / noise sd (5)")
    p.add_argument("--lam", type=float, default=0.01, help="CaTune lambda (default 0.01)")
    p.add_argument("--repeats", type=int, default=None, help="batch repeats, calab (5)")
    p.add_argument("--single", type=int, default=None, help="single-trace calls (30)")
    p.add_argument("--no-upstream", action="store_true", help="skip upstream CaLab 0.3.0")
    p.add_argument("--rebuild-upstream", action="store_true", help="recreate its venv")
    p.add_argument("--no-oasis", action="store_true", help="skip OASIS")
    p.add_argument("--no-real", action="store_true", help="skip the ground-truth recordings")
    p.add_argument("--out", type=Path, default=None, help="JSON path (default bench/results/)")
    a = p.parse_args(argv)
    if a.cells is None:
        a.cells = 20 if a.quick else 100
    if a.repeats is None:
        a.repeats = 2 if a.quick else 5
    if a.single is None:
        a.single = 10 if a.quick else 30
    a.repeats_slow = 1 if a.quick else 3  # OASIS AR(2), calab 1 thread, upstream
    a.fista_cells = 2 if a.quick else 3  # cells checked against a long FISTA run
    a.fista_iters = 20000
    a.single = min(a.single, a.cells)
    return a


def log(msg: str) -> None:
    print(msg, flush=True)


def time_singles(fn: Any, rows: np.ndarray) -> list[float]:
    out = []
    for row in rows:
        row = np.ascontiguousarray(row)
        t0 = time.perf_counter()
        fn(row)
        out.append(time.perf_counter() - t0)
    return out


def cpu_time(fn: Any, repeats: int) -> float:
    """Median CPU seconds of ``fn()`` over ``repeats`` calls (every thread of the process).

    For one-thread figures on a shared machine: time spent waiting for a core is not counted,
    so the ratio of two such figures from the same run is steadier than wall-clock time.
    """
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.process_time()
        fn()
        times.append(time.process_time() - t0)
    return float(np.median(times))


def kkt_gap(
    traces: np.ndarray, activity: np.ndarray, baseline: np.ndarray, kernel: np.ndarray, lam: Any
) -> np.ndarray:
    """Per cell, the largest violation of the KKT conditions of the CaTune objective.

    The gradient g = lam G_dc - K^T (y - K s - b) must be 0 where s > 0 and >= 0 where s = 0;
    the violation is scaled by G_dc * max|y| (the gradient's natural scale), as in the tests.
    The last frame is left out: with h[0] = 0 its activity reaches no frame.
    """
    h = np.asarray(kernel, dtype=np.float64)
    g_dc = float(h.sum())
    n = traces.shape[1]
    lam_c = np.broadcast_to(np.asarray(lam, dtype=np.float64), (traces.shape[0],))
    out = np.empty(traces.shape[0])
    for i, (y, s) in enumerate(zip(traces, activity, strict=True)):
        y = np.asarray(y, dtype=np.float64)
        r = y - np.convolve(s, h)[:n] - baseline[i]
        g = lam_c[i] * g_dc - np.convolve(r[::-1], h)[:n][::-1]
        viol = np.where(s > 0, np.abs(g), np.maximum(-g, 0.0))[: n - 1]
        out[i] = float(viol.max()) / (g_dc * float(np.abs(y).max()))
    return out


def summarize_timing(batch_times: list[float], single_times: list[float], cf: int) -> dict:
    t_batch = float(np.median(batch_times))
    return {
        "batch_times_s": [round(t, 6) for t in batch_times],
        "batch_median_s": t_batch,
        "throughput_mcfs": cf / t_batch / 1e6,
        "single_times_ms": [round(t * 1e3, 4) for t in single_times],
        "single_median_ms": float(np.median(single_times)) * 1e3 if single_times else None,
    }


def bench_calab(traces: np.ndarray, ind: dict, a: argparse.Namespace) -> tuple[dict, np.ndarray]:
    fs, lam, tr, td = a.fs, a.lam, ind["tau_r"], ind["tau_d"]
    cf = traces.size

    def solve(x: np.ndarray, **kw: Any) -> np.ndarray:
        return calab.run_deconvolution(x, fs, tr, td, lam, **kw)

    solve(traces[:2])  # warm-up
    _, bt, activity = C.median_time(lambda: solve(traces), a.repeats)
    _, bt1, _ = C.median_time(lambda: solve(traces, n_threads=1), a.repeats_slow)
    cpu1 = cpu_time(lambda: solve(traces, n_threads=1), a.repeats_slow)
    st = time_singles(solve, traces[: a.single])
    full = calab.run_deconvolution_full(traces, fs, tr, td, lam)
    kernel = calab.build_kernel(tr, td, fs)
    gap = kkt_gap(traces, full.activity, full.baseline, kernel, lam)
    res = {
        "all_cores": summarize_timing(bt, st, cf),
        "one_thread": summarize_timing(bt1, [], cf),
        "one_thread_cpu_mcfs": cf / cpu1 / 1e6,
        "iterations_mean": float(np.mean(full.iterations)),
        "iterations_median": float(np.median(full.iterations)),
        "iterations_max": int(np.max(full.iterations)),
        "converged_fraction": float(np.mean(full.converged)),
        "kkt_gap_max": float(gap.max()),
        "objective_vs_fista": objective_vs_fista(traces[: a.fista_cells], full.activity, ind, a),
        "identical_across_threads": None,
    }
    res["identical_across_threads"] = bool(
        np.array_equal(solve(traces, n_threads=1), np.asarray(activity))
    )
    return res, np.asarray(activity)


def objective_vs_fista(
    traces: np.ndarray, activity: np.ndarray, ind: dict, a: argparse.Namespace
) -> dict[str, float]:
    """Relative objective of calab's activity against FISTA run long to a tight tolerance.

    Negative or zero: calab's objective is at least as low as the reference's.
    """
    if len(traces) == 0:
        return {}
    tr, td = ind["tau_r"], ind["tau_d"]
    ref = calab.run_deconvolution(
        traces, a.fs, tr, td, a.lam, method="fista", max_iters=a.fista_iters, tol=1e-12
    )
    kernel = calab.build_kernel(tr, td, a.fs)
    obj_c = C.catune_objective(traces, activity[: len(traces)], kernel, a.lam)
    obj_f = C.catune_objective(traces, ref, kernel, a.lam)
    return C.relative_excess(obj_c, obj_f)


def bench_oasis(
    traces: np.ndarray, ind: dict, a: argparse.Namespace, kernel: np.ndarray
) -> tuple[dict, dict[int, np.ndarray], dict]:
    p = C.oasis_params(ind["tau_r"], ind["tau_d"], a.fs, a.lam, kernel)
    cf = traces.size
    out: dict[str, Any] = {"params": p}
    acts: dict[int, np.ndarray] = {}
    for order in (1, 2):
        C.run_oasis(traces[0], p, order)  # warm-up
        reps = a.repeats if order == 1 else a.repeats_slow
        _, bt, act = C.median_time(lambda o=order: C.run_oasis_batch(traces, p, o), reps)
        st = time_singles(lambda y, o=order: C.run_oasis(y, p, o), traces[: a.single])
        out[f"ar{order}"] = summarize_timing(bt, st, cf)
        if order == 1:
            cpu = cpu_time(lambda: C.run_oasis_batch(traces, p, 1), a.repeats_slow)
            out["ar1"]["one_thread_cpu_mcfs"] = cf / cpu / 1e6
        acts[order] = act
    return out, acts, p


def upstream_detrended_comparison(
    traces: np.ndarray,
    up_act: np.ndarray,
    up_reconv: np.ndarray,
    kernel: np.ndarray,
    ind: dict,
    a: argparse.Namespace,
) -> dict[str, Any]:
    """Compare solvers on the trace upstream actually solved.

    Upstream subtracts a rolling-percentile baseline before its FISTA solve. Its
    reconvolution is ``K s + baseline(t)``, so ``baseline(t) = reconvolution - K s`` and the
    trace it solved is ``y - baseline(t)`` (up to a constant, which the scalar ``b`` absorbs).
    calab solves that same trace exactly; the objective gap is then the solver's alone.
    """
    n = traces.shape[1]
    ks = np.array([np.convolve(s, kernel)[:n] for s in up_act])
    base = up_reconv - ks
    y_d = traces - base
    calab_d = calab.run_deconvolution(y_d, a.fs, ind["tau_r"], ind["tau_d"], a.lam)
    obj_c = C.catune_objective(y_d, calab_d, kernel, a.lam)
    obj_u = C.catune_objective(y_d, up_act, kernel, a.lam)
    return {
        "upstream_baseline_mean_minus_true": float(np.mean(base) - 1.0),
        "upstream_baseline_time_sd_median": float(np.median(base.std(axis=1))),
        "upstream_excess_own_detrend": C.relative_excess(obj_u, obj_c),
    }


def bench_real(a: argparse.Namespace, have_oasis: bool) -> dict[str, Any]:
    """calab (1 thread) against OASIS AR(1) on each ground-truth recording, CPU time.

    Each recording is solved at calab's own estimate (``calab.estimate_parameters``: kernel and
    lambda, the median over cells if per cell) with the constant baseline; OASIS AR(1) gets the
    decay root and the same penalty per unit of calcium area (see ``_common.oasis_params``).
    """
    from accuracy import data_dir  # bench/ is on sys.path

    root = data_dir()
    files = sorted(root.glob("*.npz")) if root.is_dir() else []
    out: dict[str, Any] = {"dir": str(root), "datasets": {}}
    if not files:
        out["skipped"] = f"no ground-truth *.npz in {root} (set CALAB_GROUND_TRUTH)"
        return out
    for f in files:
        with np.load(f) as d:
            y = np.ascontiguousarray(d["traces"], dtype=np.float64)
            fs = float(d["fs"])
        est = calab.estimate_parameters(y, fs)
        tr, td = float(est.tau_rise), float(est.tau_decay)
        lam = float(np.median(np.atleast_1d(est.lam)))

        def solve(
            y: np.ndarray = y, fs: float = fs, tr: float = tr, td: float = td, lam: float = lam
        ) -> Any:
            return calab.run_deconvolution_full(y, fs, tr, td, lam, n_threads=1)

        full = solve()
        kernel = calab.build_kernel(tr, td, fs)
        row: dict[str, Any] = {
            "cells": y.shape[0],
            "frames": y.shape[1],
            "fs": fs,
            "tau_rise": tr,
            "tau_decay": td,
            "lam": lam,
            "calab_cpu_mcfs": y.size / cpu_time(solve, a.repeats_slow) / 1e6,
            "iterations_mean": float(np.mean(full.iterations)),
            "iterations_max": int(np.max(full.iterations)),
            "converged_fraction": float(np.mean(full.converged)),
            "kkt_gap_max": float(kkt_gap(y, full.activity, full.baseline, kernel, lam).max()),
        }
        if have_oasis:
            p = C.oasis_params(tr, td, fs, lam, kernel)
            C.run_oasis(y[0], p, 1)  # warm-up
            cpu = cpu_time(lambda y=y, p=p: C.run_oasis_batch(y, p, 1), a.repeats_slow)
            row["oasis_ar1_cpu_mcfs"] = y.size / cpu / 1e6
        out["datasets"][f.stem] = row
        log(f"  {f.stem}: {row['iterations_mean']:.1f} pivots per trace")
    return out


def print_real(real: dict[str, Any]) -> None:
    log("")
    if "skipped" in real:
        log(f"Real recordings: SKIPPED: {real['skipped']}")
        return
    log(
        "Real recordings (ground truth), one thread each, CPU time, calab's own estimate "
        "(constant baseline)"
    )
    log(
        f"  {'dataset':<40}{'frames':>7}{'fs':>7}{'calab Mcf/s':>12}{'AR(1) Mcf/s':>12}"
        f"{'ratio':>7}{'pivots':>8}{'max':>5}{'KKT gap':>10}"
    )
    for name, r in real["datasets"].items():
        o = r.get("oasis_ar1_cpu_mcfs")
        log(
            f"  {name:<40}{r['frames']:>7}{r['fs']:>7.1f}{r['calab_cpu_mcfs']:>12.2f}"
            f"{fmt(o, '.2f', 12)}{ratio(r['calab_cpu_mcfs'], o, 2):>7}"
            f"{r['iterations_mean']:>8.1f}{r['iterations_max']:>5}{r['kkt_gap_max']:>10.1e}"
        )


def fmt(v: float | None, spec: str, width: int) -> str:
    s = "n/a" if v is None or not np.isfinite(v) else format(v, spec)
    return s.rjust(width)


def ratio(num: float | None, den: float | None, digits: int = 1) -> str:
    if num is None or den is None or not den:
        return "n/a"
    return f"{num / den:.{digits}f}x"


def print_table(res: dict, a: argparse.Namespace) -> None:
    for ind in INDICATORS:
        r = res["indicators"][ind["name"]]
        log("")
        log(
            f"{ind['label']} (tau_rise {ind['tau_r']} s, tau_decay {ind['tau_d']} s): "
            f"{a.cells} cells x {a.frames} frames @ {a.fs:g} Hz, SNR {a.snr:g}, lam {a.lam:g}"
        )
        head = f"{'method':<31}{'M cell-frames/s':>16}{'1-trace ms':>12}{'median r':>10}{'lag':>5}"
        log("  " + head)
        rows = r["methods"]
        for m in rows.values():
            acc = m.get("accuracy") or {}
            lag = acc.get("lag")
            log(
                f"  {m['label']:<31}{fmt(m.get('throughput_mcfs'), '.3f', 16)}"
                f"{fmt(m.get('single_median_ms'), '.2f', 12)}"
                f"{fmt(acc.get('median_r'), '.3f', 10)}{'' if lag is None else lag:>5}"
            )
        c, c1 = rows["calab"], rows["calab_1t"]
        log("  speed ratios (>1: calab faster)     throughput  1-thread thr.  1-trace latency")
        for key in ("upstream", "oasis_ar1", "oasis_ar2"):
            if key not in rows:
                continue
            o = rows[key]
            log(
                f"    calab / {o['label'].split(' (')[0].replace(' fixed penalty', ''):<26}"
                f"{ratio(c['throughput_mcfs'], o['throughput_mcfs']):>11}"
                f"{ratio(c1['throughput_mcfs'], o['throughput_mcfs']):>15}"
                f"{ratio(o['single_median_ms'], c['single_median_ms']):>17}"
            )
        dg = r["calab_diagnostics"]
        log(
            f"  calab pivots per trace: mean {dg['iterations_mean']:.1f}, median "
            f"{dg['iterations_median']:.0f}, max {dg['iterations_max']}; optimality: largest KKT "
            f"violation {dg['kkt_gap_max']:.1e} (of G_dc max|y|), objective vs FISTA "
            f"({a.fista_iters} iterations, {a.fista_cells} cells): median "
            f"{dg['objective_vs_fista'].get('median', float('nan')):+.1e}"
        )
        if "oasis_ar1" in rows:
            o1, o2 = rows["oasis_ar1"], rows["oasis_ar2"]
            mc, mo = c1["one_thread_cpu_mcfs"], o1["one_thread_cpu_mcfs"]
            log(
                f"  one thread each, CPU time: calab {mc:.2f} vs OASIS AR(1) {mo:.2f} "
                f"M cell-frames/s per core ({ratio(mc, mo, 2)}); "
                f"one trace: calab / OASIS AR(2) time "
                f"{ratio(c['single_median_ms'], o2['single_median_ms'], 2)}"
            )
        obj = r.get("objective", {})
        if "upstream_excess" in obj:
            e = obj["upstream_excess"]
            log(
                "  CaTune objective on the trace, upstream's excess over calab: "
                f"median {e['median']:+.2e} (max {e['max']:+.2e}); "
                f"calab <= upstream in {e['frac_ref_lower_or_equal'] * 100:.0f}% of cells"
            )
        if "upstream_excess_own_detrend" in obj:
            e = obj["upstream_excess_own_detrend"]
            log(
                "  same, on upstream's own detrended trace (solver only):        "
                f"median {e['median']:+.2e} (max {e['max']:+.2e}); "
                f"calab <= upstream in {e['frac_ref_lower_or_equal'] * 100:.0f}% of cells"
            )
        if "oasis_ar2_excess" in obj:
            e = obj["oasis_ar2_excess"]
            log(
                "  OASIS AR(2) (10th-pct baseline) mapped onto the CaTune kernel: "
                f"median excess {e['median']:+.2e}"
            )
    if "real" in res:
        print_real(res["real"])
    for note in res["notes"]:
        log(f"NOTE: {note}")


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    t_start = time.perf_counter()
    env = C.environment()
    res: dict[str, Any] = {
        "benchmark": "solver",
        "date": datetime.now().isoformat(timespec="seconds"),
        "config": {
            "cells": a.cells,
            "frames": a.frames,
            "fs": a.fs,
            "snr": a.snr,
            "lam": a.lam,
            "rate_hz": 1.0,
            "repeats": a.repeats,
            "repeats_slow": a.repeats_slow,
            "single_calls": a.single,
            "quick": a.quick,
            "indicators": INDICATORS,
            "accuracy": "Pearson r, Gaussian-smoothed sd 1 frame, best lag 0..3 per method",
            "oasis_baseline": "10th percentile of the trace, subtracted before solving",
        },
        "environment": env,
        "indicators": {},
        "notes": [],
    }
    log(
        f"calab {env['calab']} solver benchmark: {a.cells} cells x {a.frames} frames, "
        f"lam {a.lam:g}, "
        f"{env['cpu_count']} cores (load avg {' '.join(env.get('loadavg_at_start', []))})"
    )

    have_oasis = False
    if not a.no_oasis:
        have_oasis, oinfo = C.oasis_available()
        env["oasis_deconv"] = oinfo if have_oasis else None
        if not have_oasis:
            res["notes"].append(
                f"OASIS not available ({oinfo}); install with: pip install -e '.[bench]'"
            )

    with tempfile.TemporaryDirectory(prefix="calab-bench-") as tmp:
        work = Path(tmp)
        data: dict[str, dict[str, np.ndarray]] = {}
        for ind in INDICATORS:
            y, s = calab.simulate(
                a.cells, a.frames, a.fs, ind["tau_r"], ind["tau_d"], snr=a.snr, seed=ind["seed"]
            )
            np.save(work / f"traces_{ind['name']}.npy", y)
            np.save(work / f"spikes_{ind['name']}.npy", s)
            # Every method reads the same bytes back from disk.
            data[ind["name"]] = {
                "traces": np.load(work / f"traces_{ind['name']}.npy"),
                "spikes": np.load(work / f"spikes_{ind['name']}.npy"),
            }

        activities: dict[str, dict[str, np.ndarray]] = {ind["name"]: {} for ind in INDICATORS}
        for ind in INDICATORS:
            name, traces = ind["name"], data[ind["name"]]["traces"]
            kernel = calab.build_kernel(ind["tau_r"], ind["tau_d"], a.fs)
            entry: dict[str, Any] = {"methods": {}, "objective": {}}
            res["indicators"][name] = entry
            log(f"[{ind['label']}] calab ...")
            cres, act = bench_calab(traces, ind, a)
            activities[name]["calab"] = act
            entry["calab_diagnostics"] = {
                k: cres[k]
                for k in (
                    "iterations_mean",
                    "iterations_median",
                    "iterations_max",
                    "converged_fraction",
                    "kkt_gap_max",
                    "objective_vs_fista",
                    "identical_across_threads",
                )
            }
            threads = env["cpu_count"]
            entry["methods"]["calab"] = {"label": f"calab ({threads} threads)", **cres["all_cores"]}
            entry["methods"]["calab_1t"] = {
                "label": "calab (1 thread)",
                **cres["one_thread"],
                "one_thread_cpu_mcfs": cres["one_thread_cpu_mcfs"],
            }
            if have_oasis:
                log(f"[{ind['label']}] OASIS AR(1), AR(2) ...")
                ores, oacts, p = bench_oasis(traces, ind, a, kernel)
                entry["oasis_params"] = ores["params"]
                for order in (1, 2):
                    key = f"oasis_ar{order}"
                    label = f"OASIS AR({order}) fixed penalty"
                    entry["methods"][key] = {"label": label, **ores[f"ar{order}"]}
                    activities[name][key] = oacts[order]
                activities[name]["oasis_ar2_catune"] = C.oasis_ar2_as_catune(oacts[2], p)

        if not a.no_real:
            log("real recordings ...")
            res["real"] = bench_real(a, have_oasis)

        upstream_full: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        if not a.no_upstream:
            log(f"upstream {C.UPSTREAM_SPEC} ...")
            py, msg = C.upstream_python(rebuild=a.rebuild_upstream, log=log)
            res["environment"]["upstream_venv"] = msg
            if py is None:
                note = f"UPSTREAM NOT MEASURED: could not set up {C.UPSTREAM_SPEC}: {msg}"
                log(note)
                res["notes"].append(note)
            else:
                job = {
                    "workdir": str(work),
                    "fs": a.fs,
                    "lam": a.lam,
                    "repeats": a.repeats_slow,
                    "n_single": a.single,
                    "diagnostics": True,
                    "indicators": [
                        {**ind, "traces": str(work / f"traces_{ind['name']}.npy")}
                        for ind in INDICATORS
                    ],
                }
                try:
                    up = C.run_upstream_worker(py, job)
                except Exception as exc:
                    note = f"UPSTREAM NOT MEASURED: {exc}"
                    log(note)
                    res["notes"].append(note)
                    up = None
                if up is not None:
                    res["environment"]["upstream"] = {
                        k: up[k] for k in ("version", "file", "signature")
                    }
                    for ind in INDICATORS:
                        name = ind["name"]
                        u = up["indicators"][name]
                        cf = data[name]["traces"].size
                        entry = res["indicators"][name]
                        entry["methods"]["upstream"] = {
                            "label": f"upstream calab {up['version']} (1 core)",
                            **summarize_timing(u["batch_times_s"], u["single_times_s"], cf),
                        }
                        entry["upstream_diagnostics"] = {
                            k: u[k]
                            for k in ("iterations_median", "iterations_max", "converged_fraction")
                            if k in u
                        }
                        activities[name]["upstream"] = np.load(u["activity"])
                        if "full_reconvolution" in u:
                            upstream_full[name] = (
                                np.load(u["full_activity"]),
                                np.load(u["full_reconvolution"]),
                            )

        log("scoring ...")
        for ind in INDICATORS:
            name = ind["name"]
            entry = res["indicators"][name]
            spikes, traces = data[name]["spikes"], data[name]["traces"]
            acts = activities[name]
            for key, m in entry["methods"].items():
                src = "calab" if key == "calab_1t" else key
                if src in acts:
                    m["accuracy"] = C.lagged_correlation(acts[src], spikes)
                    m["activity_over_spikes"] = float(acts[src].sum() / spikes.sum())
            kernel = calab.build_kernel(ind["tau_r"], ind["tau_d"], a.fs)
            obj_c = C.catune_objective(traces, acts["calab"], kernel, a.lam)
            entry["objective"]["calab_median"] = float(np.median(obj_c))
            if "upstream" in acts:
                obj_u = C.catune_objective(traces, acts["upstream"], kernel, a.lam)
                entry["objective"]["upstream_median"] = float(np.median(obj_u))
                entry["objective"]["upstream_excess"] = C.relative_excess(obj_u, obj_c)
                if entry["objective"]["upstream_excess"]["min"] < -1e-7:
                    res["notes"].append(
                        f"{ind['label']}: upstream reached a LOWER CaTune objective than calab on "
                        "some cells (see objective.upstream_excess.min)"
                    )
            if name in upstream_full:
                own = upstream_detrended_comparison(traces, *upstream_full[name], kernel, ind, a)
                entry["objective"].update(own)
            if "oasis_ar2_catune" in acts:
                obj_o = C.catune_objective(traces, acts["oasis_ar2_catune"], kernel, a.lam)
                entry["objective"]["oasis_ar2_excess"] = C.relative_excess(obj_o, obj_c)

    res["elapsed_s"] = time.perf_counter() - t_start
    print_table(res, a)
    out = a.out
    if out is None:
        C.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        out = C.RESULTS_DIR / f"solver-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=str))
    log(f"\nwrote {out} ({res['elapsed_s']:.0f} s)")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception:
        traceback.print_exc()
        sys.exit(1)
