"""Spike counts on real ground truth: ``calab.infer_spikes`` against recorded spikes.

For every dataset at its own frame rate and averaged to about 30 Hz (k frames into one, spikes
summed), in one run on the same data:

- **count**: per cell, total inferred spikes / recorded spikes; median over the dataset's cells
  and, at the end, the share of all cells within 0.5-2 (cells with very few spikes listed);
- **timing**: Pearson r of 100 ms bin sums, best lag of -1..2 frames, median over cells
  (``bench/accuracy.py``'s score), of the counts and of the activity they came from;
- **F1**: inferred spikes matched one to one to recorded spikes within +-100 ms, median over cells;
- **rate**: the largest relative difference over cells of ``rate.sum() / fs`` and the counts' total;
- context: a naive calibration (each event's activity over the noise floor, the smallest event
  the noise lets through, as the unit) and, if installed, OASIS's automatic mode
  (``deconvolve(y, g=(None, None), penalty=1)``) counted in units of its ``s_min``;
- **added**: what counting adds to the estimate plus deconvolution (``--auto``): the time of
  ``infer_spikes(est=)`` minus that of the deconvolution alone, over estimate + deconvolution.

Usage: .venv/bin/python bench/spikes.py [--only DS09,DS31] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path
from typing import Any

import _common as C  # bench/ is on sys.path when run as a script
import numpy as np
from accuracy import binned_score, data_dir, decimate, write_results

import calab
from calab import spikes as S

FEW_SPIKES = {("DS14", 2), ("DS14", 5), ("DS31", 3), ("DS31", 4)}
"""Cells with very few recorded spikes: their counts must not be inflated by noise."""
TOLERANCE_S = 0.1


def f1_score(counts: np.ndarray, spikes: np.ndarray, fs: float) -> float:
    """F1 of one cell: inferred and recorded spikes matched one to one within +-100 ms."""
    a = np.repeat(np.arange(counts.size), np.maximum(counts, 0).astype(np.int64)) / fs
    b = np.repeat(np.arange(spikes.size), spikes.astype(np.int64)) / fs
    if a.size == 0 or b.size == 0:
        return 0.0
    i = j = hits = 0
    while i < a.size and j < b.size:  # greedy in time order: optimal for interval matching
        if abs(a[i] - b[j]) <= TOLERANCE_S:
            hits, i, j = hits + 1, i + 1, j + 1
        elif a[i] < b[j]:
            i += 1
        else:
            j += 1
    return 2.0 * hits / (a.size + b.size)


def naive_counts(sp: Any, y: np.ndarray, fs: float, est: Any) -> np.ndarray:
    """Each event's activity in units of the noise floor, rounded (the naive calibration)."""
    h = calab.build_kernel(est.tau_rise, est.tau_decay, fs)
    floor = S.FLOOR_NOISE_SDS * est.noise / np.linalg.norm(h)
    gap = max(S.EVENT_GAP_S, calab.kernel_timing(est.tau_rise, est.tau_decay, fs)[0]) * fs
    out = np.zeros_like(sp.counts)
    for i, row in enumerate(sp.activity):
        label, sizes, _ = S.events(row, gap)
        out[i] = S.discretise(row, label, sizes, float(floor[i]))
    return out


def oasis_counts(y: np.ndarray) -> np.ndarray | None:
    """OASIS automatic (AR(2), noise and penalty per trace) in units of its ``s_min``, or None.

    ``s_min`` is OASIS's / CNMF-E's ``choose_smin``: ``sn / ||kernel|| * norminv(0.9999)``, the
    smallest spike that noise alone leaves with probability 1e-4, with OASIS's own ``sn``
    (``GetSn``) and the kernel of its fitted AR coefficients.
    """
    if not C.oasis_available()[0]:
        return None
    from oasis.functions import GetSn, deconvolve

    rows = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for row in y:
            out = deconvolve(np.ascontiguousarray(row), g=(None, None), penalty=1)
            s, g = np.asarray(out[1]), np.atleast_1d(out[3])
            h = np.zeros(1000)
            h[0] = 1.0
            for t in range(1, h.size):
                h[t] = sum(g[j] * h[t - 1 - j] for j in range(g.size) if t - 1 - j >= 0)
            s_min = GetSn(row) / np.linalg.norm(h) * 3.719
            rows.append(np.floor(s / s_min + 0.5).astype(np.int64))
    return np.array(rows)


def score(counts: np.ndarray, spikes: np.ndarray, fs: float) -> dict[str, Any]:
    total = spikes.sum(axis=1)
    ratio = counts.sum(axis=1) / np.maximum(total, 1)
    f1 = [f1_score(c, s, fs) for c, s in zip(counts, spikes, strict=True)]
    return {
        "ratio": ratio.round(3).tolist(),
        "median_ratio": float(np.median(ratio)),
        "r": binned_score(counts.astype(np.float64), spikes, fs)[0],
        "f1": float(np.median(f1)),
    }


def run(path: Any, factor: int) -> dict[str, Any]:
    d = np.load(path)
    y, spikes = decimate(d["traces"].astype(np.float64), d["spike_counts"].astype(np.float64),
                         factor)  # fmt: skip
    fs = float(d["fs"]) / factor
    t0 = time.perf_counter()
    est = calab.estimate_parameters(y, fs)
    t1 = time.perf_counter()
    act = calab.run_deconvolution(y, fs, est.tau_rise, est.tau_decay, est.lam,
                                  baseline=est.baseline)  # fmt: skip
    t2 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sp = calab.infer_spikes(y, fs, est=est)
    t3 = time.perf_counter()
    # infer_spikes(est=) = the same deconvolution + counting: what counting adds to --auto.
    added = max(0.0, (t3 - t2) - (t2 - t1)) / (t2 - t0)
    row: dict[str, Any] = {"fs": fs, "n_cells": y.shape[0]}
    row["calab"] = score(sp.counts, spikes, fs)
    row["calab"]["calibrated"] = sp.calibrated.tolist()
    row["activity_r"] = binned_score(np.asarray(act), spikes, fs)[0]
    row["naive"] = score(naive_counts(sp, y, fs, est), spikes, fs)
    oc = oasis_counts(y)
    row["oasis"] = score(oc, spikes, fs) if oc is not None else None
    totals = sp.counts.sum(axis=1)
    rate_err = np.abs(sp.rate.sum(axis=1) / fs - totals) / np.maximum(totals, 1)
    row["rate_err_max"] = float(rate_err.max())
    row["added_cost"] = added
    return row


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--only", default="", help="comma-separated dataset prefixes, e.g. DS09,DS31")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    root = data_dir()
    files = sorted(root.glob("*.npz"))
    if not files:
        print(f"no ground-truth files in {root}; set CALAB_GROUND_TRUTH")
        return 0
    only = [s for s in a.only.split(",") if s]
    res: dict[str, Any] = {"environment": C.environment(), "rows": {}}
    head = f"{'median':>6} {'r cnt':>6} {'r act':>6} {'F1':>5} {'rate':>6} {'added':>5}"
    print(f"{'dataset':8} {'Hz':>6} | {head} | naive {'med':>5} {'F1':>5} | OASIS {'med':>5} "
          f"{'F1':>5}")  # fmt: skip
    ratios, few = [], []
    for path in files:
        name = path.name[:4]
        if only and name not in only:
            continue
        fs = float(np.load(path)["fs"])
        for factor in sorted({1, max(1, int(fs / 30.0))}):
            row = run(path, factor)
            res["rows"][f"{name}@{row['fs']:.1f}"] = row
            c, n, o = row["calab"], row["naive"], row["oasis"]
            ratios += c["ratio"]
            few += [(name, i, row["fs"], c["ratio"][i]) for i in range(row["n_cells"])
                    if (name, i) in FEW_SPIKES]  # fmt: skip
            oasis = f"{o['median_ratio']:5.2f} {o['f1']:5.2f}" if o else "    -     -"
            print(f"{name:8} {row['fs']:6.1f} | {c['median_ratio']:6.2f} {c['r']:6.3f} "
                  f"{row['activity_r']:6.3f} {c['f1']:5.2f} {row['rate_err_max']:6.3f} "
                  f"{row['added_cost']:5.0%} |       {n['median_ratio']:5.2f} {n['f1']:5.2f} |"
                  f"       {oasis}")  # fmt: skip
    r = np.array(ratios)
    share = float(np.mean((r >= 0.5) & (r <= 2.0)))
    res["share_within_half_to_double"] = share
    res["few_spike_cells"] = few
    print(f"\ncells with total inferred / recorded within 0.5-2: {share:.0%} of {r.size}")
    for name, i, fs, ratio in few:
        print(f"  few-spike cell {name} row {i} at {fs:.1f} Hz: ratio {ratio:.2f}")
    write_results(res, None if a.out is None else Path(a.out), "spikes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
