"""Accuracy on real ground truth: calab vs OASIS AR(1)/AR(2) and upstream CaLab (if installed).

Automatic table (``--auto``, the default): for every dataset at its own frame rate and averaged
to about 30 and 15 Hz (k frames into one, spikes summed): calab automatic
(``calab.estimate_parameters``, no spike data used), OASIS automatic
(``oasis.functions.deconvolve(y, g=(None, None), penalty=1)``), the best single global calab
setting of a grid of 8 kernels x 6 lambdas, the estimated kernel, the estimate's verdict
(``est.quality`` where the estimate has one) and the time of calab automatic (estimate +
deconvolution) and of OASIS automatic, measured in the same run. Score (solver-facts.md): Pearson
r between activity and recorded spike counts, both summed in 100 ms bins, best of lags -1, 0, 1,
2 frames (activity moved one frame later, unchanged, one or two earlier) per cell, median over the
cells of a dataset.

``--fixed``: fixed textbook kernels per indicator, noise-scaled lambda.

Reads Cascade-format ``*.npz`` files (``traces``, ``spike_counts``, ``fs``, ``indicator``) from
``$CALAB_GROUND_TRUTH`` or ``<repo>/../shared/data/ground_truth``; skips when absent.

Kernel time constants are fixed per indicator (table below), the same for every method. The
penalty is set per cell from its noise level so that it means the same as ``lam`` on the
synthetic benchmark: ``lam = lam_ref * (sigma / 0.2) * (||h|| / G_dc) / (||h_ref|| / G_dc_ref)``,
with ``sigma`` from frame-to-frame differences and the reference the GCaMP6f-like kernel at
30 Hz with noise sd 0.2 (``bench/solver.py``'s data). OASIS gets the equivalent penalty.

Usage: .venv/bin/python bench/accuracy.py [--auto] [--no-grid | --grid-from JSON] [--only DS09,DS31]
       [--fixed [--lam-ref 0.01] [--no-upstream]]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import _common as C  # bench/ is on sys.path when run as a script
import numpy as np

import calab

# (tau_rise, tau_decay) in seconds, per indicator; same for every method.
TAUS = {
    "gcamp6f": (0.02, 0.4),
    "gcamp6s": (0.07, 1.5),
    "jgcamp8m": (0.005, 0.25),
}


def data_dir() -> Path:
    env = os.environ.get("CALAB_GROUND_TRUTH")
    return Path(env) if env else C.REPO_ROOT.parent / "shared" / "data" / "ground_truth"


def noise_sd(y: np.ndarray) -> float:
    d = np.diff(y)
    return float(np.median(np.abs(d - np.median(d))) / 0.6745 / np.sqrt(2))


def kernel_scale(tau_r: float, tau_d: float, fs: float) -> float:
    h = calab.build_kernel(tau_r, tau_d, fs)
    return float(np.linalg.norm(h) / h.sum())


# The grid of issue 12: (tau_rise, tau_decay) in seconds x lambda.
GRID_KERNELS = [(0.005, 0.1), (0.01, 0.15), (0.01, 0.25), (0.02, 0.3), (0.02, 0.5), (0.03, 0.6),
                (0.05, 1.0), (0.05, 1.5)]  # fmt: skip
GRID_LAMS = [0.0, 0.003, 0.01, 0.03, 0.1, 0.3]
BIN_S = 0.1
LAGS = (-1, 0, 1, 2)
"""Frames the activity is moved earlier (negative: later) before scoring; the best counts.

-1 is in since 2026-12-07: the files count each spike in its nearest frame, so CaTune's
convention (h[0] = 0: activity at the last frame before the rise) and OASIS's AR convention sit
half a frame off on opposite sides (../shared/notes/solver-facts.md)."""
TARGET_RATES_HZ = (30.0, 15.0)
"""Each dataset is also scored averaged to about these frame rates (k frames into one)."""


def write_results(res: dict[str, Any], out: Path | None, stem: str) -> None:
    """Write a benchmark's results as JSON (default: bench/results/<stem>-<time>.json)."""
    path = out or C.RESULTS_DIR / f"{stem}-{datetime.now():%Y%m%d-%H%M%S}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(res, indent=1, default=str))
    print(f"\nwrote {path}")


def shifted(activity: np.ndarray, spikes: np.ndarray, lag: int) -> tuple[np.ndarray, np.ndarray]:
    """Overlapping parts with ``activity[t + lag]`` set against ``spikes[t]``."""
    n = activity.shape[1]
    if lag >= 0:
        return activity[:, lag:], spikes[:, : n - lag]
    return activity[:, : n + lag], spikes[:, -lag:]


def binned_score(activity: np.ndarray, spikes: np.ndarray, fs: float) -> tuple[float, np.ndarray]:
    """Median over cells of the best-lag (:data:`LAGS`) Pearson r of 100 ms bin sums."""
    width = max(1, int(round(BIN_S * fs)))
    per_lag = []
    for lag in LAGS:
        a, s = shifted(activity, spikes, lag)
        m = a.shape[1] // width
        a = a[:, : m * width].reshape(a.shape[0], m, width).sum(axis=2)
        s = s[:, : m * width].reshape(s.shape[0], m, width).sum(axis=2)
        per_lag.append(np.nan_to_num(C._rowwise_pearson(a, s), nan=0.0))
    r = np.max(per_lag, axis=0)
    return float(np.median(r)), r


def deconvolve_auto(traces: np.ndarray, fs: float, est: Any) -> np.ndarray:
    """Deconvolve with the estimate's kernel, baseline mode and per-cell lambda."""
    return np.asarray(
        calab.run_deconvolution(
            traces, fs, est.tau_rise, est.tau_decay, est.lam, baseline=est.baseline
        )
    )


def oasis_auto(traces: np.ndarray) -> np.ndarray:
    """OASIS's automatic mode: AR(2) coefficients, noise and penalty estimated per trace."""
    import warnings

    from oasis.functions import deconvolve

    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for y in traces:
            rows.append(
                np.asarray(deconvolve(np.ascontiguousarray(y), g=(None, None), penalty=1)[1])
            )
    return np.array(rows)


def verdict_text(est: Any) -> str:
    """The estimate's verdict (``est.quality``) in one short cell; empty where there is none."""
    quality = getattr(est, "quality", None)
    if quality is None:
        return ""
    summary = getattr(quality, "summary", None)
    return str(summary() if callable(summary) else summary if summary is not None else quality)


def rate_factors(fs: float) -> list[int]:
    """1 (the recording's own rate) and the averaging factors that bring it near 30 and 15 Hz."""
    out = [1]
    for target in TARGET_RATES_HZ:
        k = max(1, int(fs / target))
        if k not in out:
            out.append(k)
    return out


def decimate(y: np.ndarray, spikes: np.ndarray, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """A lower frame rate: ``factor`` frames averaged into one, their spikes summed."""
    m = y.shape[1] // factor
    shape = (y.shape[0], m, factor)
    return y[:, : m * factor].reshape(shape).mean(2), spikes[:, : m * factor].reshape(shape).sum(2)


def grid_best(y: np.ndarray, spikes: np.ndarray, fs: float) -> dict[str, Any]:
    """calab's best single global setting of the 48-point grid (scored with the spikes)."""
    best: tuple[float, Any] = (-np.inf, None)
    for tr, td in GRID_KERNELS:
        for lam in GRID_LAMS:
            score = binned_score(np.asarray(calab.run_deconvolution(y, fs, tr, td, lam)), spikes,
                                 fs)[0]  # fmt: skip
            if score > best[0]:
                best = (score, (tr, td, lam))
    return {"median_r": best[0], "setting": best[1]}


def _timed(fn: Any, repeats: int) -> tuple[Any, float]:
    """The result of ``fn()`` and its median time over ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, float(np.median(times))


def auto_row(
    y: np.ndarray,
    spikes: np.ndarray,
    fs: float,
    have_oasis: bool,
    grid: dict[str, Any] | None,
    repeats: int = 1,
) -> dict[str, Any]:
    """One row of the automatic table: calab automatic, OASIS automatic, the grid's best.

    Times are medians over ``repeats`` calls, calab's and OASIS's alternating.
    """
    t_est, t_dec, t_o = [], [], []
    est: Any = None
    act = act_o = np.zeros(0)
    for _ in range(repeats):
        est, t = _timed(lambda: calab.estimate_parameters(y, fs), 1)
        t_est.append(t)
        act, t = _timed(lambda: deconvolve_auto(y, fs, est), 1)  # noqa: B023 - called here
        t_dec.append(t)
        if have_oasis:
            act_o, t = _timed(lambda: oasis_auto(y), 1)
            t_o.append(t)
    med, r = binned_score(act, spikes, fs)
    row: dict[str, Any] = {
        "fs": fs,
        "cells": int(y.shape[0]),
        "auto": {"median_r": med, "r": r.round(4).tolist(), "tau_rise": est.tau_rise,
                 "tau_decay": est.tau_decay, "baseline": est.baseline,
                 "lam": np.asarray(est.lam).tolist(), "noise": est.noise.tolist(),
                 "no_transients": est.no_transients.tolist(), "verdict": verdict_text(est),
                 "estimate_s": float(np.median(t_est)), "deconvolve_s": float(np.median(t_dec)),
                 "total_s": float(np.median(np.add(t_est, t_dec)))},
    }  # fmt: skip
    if have_oasis:
        row["oasis_auto"] = {"median_r": binned_score(act_o, spikes, fs)[0],
                             "seconds": float(np.median(t_o))}  # fmt: skip
    if grid is not None:
        row["grid_best"] = grid
    return row


def auto_table(
    files: list[Path],
    have_oasis: bool,
    grid: bool,
    grid_from: dict[str, Any] | None,
    repeats: int = 1,
) -> dict[str, Any]:
    """calab automatic, OASIS automatic and the grid's best at each set's own rate, ~30 and ~15 Hz.

    ``grid_from``: a previous run's results, whose grid figures are reused (they depend on the
    solver only, not on the estimate).
    """
    out: dict[str, Any] = {}
    for f in files:
        z = np.load(f)
        y0 = np.asarray(z["traces"], dtype=np.float64)
        s0 = np.asarray(z["spike_counts"], dtype=np.float64)
        fs0 = float(z["fs"])
        for k in rate_factors(fs0):
            y, spikes = decimate(y0, s0, k)
            fs = fs0 / k
            key = f"{f.stem}/{k}"
            g = None
            if grid_from is not None and "grid_best" in grid_from.get(key, {}):
                g = grid_from[key]["grid_best"]
            elif grid:
                g = grid_best(y, spikes, fs)
            row = auto_row(y, spikes, fs, have_oasis, g, repeats)
            out[key] = row | {"indicator": str(z["indicator"])}
            print_row(key, out[key])
    return out


def print_header() -> None:
    print("\nmedian r vs recorded spikes (100 ms bins, best lag -1..2 frames per cell); times in s"
          " (calab: estimate + deconvolution; medians of alternating runs)")  # fmt: skip
    print(f"  {'dataset/k':<24}{'Hz':>7}{'calab':>7}{'OASIS':>7}{'grid':>7}{'c-O':>7}"
          f"{'c-g':>7}{'t calab':>9}{'t OASIS':>9}  kernel (s), baseline | verdict")  # fmt: skip


def print_row(key: str, row: dict[str, Any]) -> None:
    a = row["auto"]
    o = row.get("oasis_auto", {}).get("median_r")
    g = row.get("grid_best", {}).get("median_r")

    def cell(v: float | None, w: int = 7) -> str:
        return f"{v:>{w}.3f}" if v is not None else f"{'n/a':>{w}}"

    t_o = row.get("oasis_auto", {}).get("seconds")
    print(f"  {key:<24}{row['fs']:>7.1f}{cell(a['median_r'])}{cell(o)}{cell(g)}"
          f"{cell(None if o is None else a['median_r'] - o)}"
          f"{cell(None if g is None else a['median_r'] - g)}"
          f"{cell(a['total_s'], 9)}{cell(t_o, 9)}"
          f"  {a['tau_rise']:.4f}/{a['tau_decay']:.3f}, {a['baseline']}"
          f" | {a['verdict']}")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument(
        "--auto",
        action="store_true",
        help="the automatic table (the default when --fixed is not given)",
    )
    p.add_argument("--no-grid", action="store_true", help="skip the 48-setting global grid")
    p.add_argument(
        "--grid-from",
        type=Path,
        default=None,
        help="reuse the grid figures of a previous run's JSON (solver unchanged)",
    )
    p.add_argument("--fixed", action="store_true", help="the fixed-kernel table instead")
    p.add_argument("--lam-ref", type=float, default=0.01, help="lam on the synthetic reference")
    p.add_argument("--no-upstream", action="store_true")
    p.add_argument("--no-oasis", action="store_true")
    p.add_argument("--only", default="", help="comma-separated dataset name prefixes")
    p.add_argument("--repeats", type=int, default=3, help="timed runs per row (median)")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)

    root = data_dir()
    files = sorted(root.glob("*.npz")) if root.is_dir() else []
    if a.only:
        files = [f for f in files if any(f.stem.startswith(x) for x in a.only.split(","))]
    if not files:
        print(f"SKIPPED: no ground-truth *.npz in {root} (set CALAB_GROUND_TRUTH)")
        return 0
    have_oasis = not a.no_oasis and C.oasis_available()[0]
    if not have_oasis:
        print("OASIS not installed (pip install oasis-deconv): its columns are n/a")
    if a.auto or not a.fixed:
        grid_from = json.loads(a.grid_from.read_text())["datasets"] if a.grid_from else None
        print_header()
        auto = auto_table(files, have_oasis, not a.no_grid, grid_from, a.repeats)
        res_auto = {"benchmark": "accuracy-auto", "environment": C.environment(), "datasets": auto}
        write_results(res_auto, a.out, "accuracy-auto")
        if not a.fixed:
            return 0
    up_py = None
    if not a.no_upstream:
        py = C.UPSTREAM_VENV / "bin" / "python"
        up_py = py if py.exists() else None
        if up_py is None:
            print(f"upstream skipped: {C.UPSTREAM_VENV} missing (run bench/solver.py once)")
    ref_scale = 0.2 * kernel_scale(0.05, 0.5, 30.0)

    res: dict[str, Any] = {
        "benchmark": "accuracy",
        "date": datetime.now().isoformat(timespec="seconds"),
        "config": {"lam_ref": a.lam_ref, "taus": TAUS, "data_dir": str(root)},
        "environment": C.environment(),
        "datasets": {},
    }
    with tempfile.TemporaryDirectory(prefix="calab-acc-") as tmp:
        work = Path(tmp)
        for f in files:
            z = np.load(f)
            y_all = np.asarray(z["traces"], dtype=np.float64)
            spikes = np.asarray(z["spike_counts"], dtype=np.float64)
            fs = float(z["fs"])
            ind = str(z["indicator"]).lower()
            if ind not in TAUS:
                print(f"{f.name}: unknown indicator {ind!r}, skipped")
                continue
            tr, td = TAUS[ind]
            kernel = calab.build_kernel(tr, td, fs)
            scale = kernel_scale(tr, td, fs)
            lams = [a.lam_ref * noise_sd(y) * scale / ref_scale for y in y_all]
            acts: dict[str, np.ndarray] = {
                "calab": np.array(
                    [
                        calab.run_deconvolution(y, fs, tr, td, lam)
                        for y, lam in zip(y_all, lams, strict=True)
                    ]
                )
            }
            if have_oasis:
                for order in (1, 2):
                    acts[f"oasis_ar{order}"] = np.array(
                        [
                            C.run_oasis(y, C.oasis_params(tr, td, fs, lam, kernel), order)
                            for y, lam in zip(y_all, lams, strict=True)
                        ]
                    )
            if up_py is not None:
                entries = []
                for i, (y, lam) in enumerate(zip(y_all, lams, strict=True)):
                    path = work / f"{f.stem}_{i}.npy"
                    np.save(path, y[None, :])
                    entries.append(
                        {"name": f"{f.stem}_{i}", "tau_r": tr, "tau_d": td, "lam": lam, "fs": fs,
                         "traces": str(path)}
                    )  # fmt: skip
                job = {"workdir": str(work), "fs": fs, "lam": a.lam_ref, "repeats": 1,
                       "n_single": 0, "diagnostics": False, "warmup": False,
                       "indicators": entries}  # fmt: skip
                try:
                    up = C.run_upstream_worker(up_py, job)
                    acts["upstream"] = np.array(
                        [np.load(up["indicators"][e["name"]]["activity"])[0] for e in entries]
                    )
                except Exception as exc:
                    print(f"{f.name}: upstream failed: {exc}")
            ds: dict[str, Any] = {
                "indicator": str(z["indicator"]),
                "fs": fs,
                "shape": list(y_all.shape),
                "tau_r": tr,
                "tau_d": td,
                "lam_per_cell": lams,
                "methods": {},
            }
            for key, act in acts.items():
                ds["methods"][key] = C.lagged_correlation(act, spikes)
            res["datasets"][f.stem] = ds

    methods = ["calab", "oasis_ar1", "oasis_ar2", "upstream"]
    print(f"\nmedian Pearson r vs recorded spikes (smoothed sd 1 frame, best lag 0..{C.MAX_LAG})")
    print(f"  {'dataset':<22}{'cells':>6}" + "".join(f"{m:>14}" for m in methods))
    for name, ds in res["datasets"].items():
        cells = f"{ds['shape'][0]:>6}"
        cols = "".join(
            f"{ds['methods'][m]['median_r']:>9.3f} (l{ds['methods'][m]['lag']})"
            if m in ds["methods"]
            else f"{'n/a':>14}"
            for m in methods
        )
        print(f"  {name:<22}{cells}{cols}")
    write_results(res, a.out, "accuracy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
