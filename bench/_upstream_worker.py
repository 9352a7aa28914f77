"""Timing worker run inside bench/.venv-upstream (upstream CaLab from PyPI), not the repo venv.

Usage: python _upstream_worker.py JOB.json. Reads the traces the benchmark saved as .npy,
times ``calab.run_deconvolution`` on the batch and on single traces, saves the batch activity
as .npy and writes ``upstream_result.json`` next to the job file. Standard library + numpy only.
"""

from __future__ import annotations

import inspect
import json
import sys
import time
from pathlib import Path

import numpy as np


def main() -> None:
    job_path = Path(sys.argv[1])
    job = json.loads(job_path.read_text())
    import calab

    out: dict = {
        "version": calab.__version__,
        "file": calab.__file__,
        "signature": str(inspect.signature(calab.run_deconvolution)),
        "indicators": {},
    }
    for ind in job["indicators"]:
        traces = np.load(ind["traces"])
        tr, td = float(ind["tau_r"]), float(ind["tau_d"])
        lam = float(ind.get("lam", job["lam"]))  # per-entry overrides
        fs = float(ind.get("fs", job["fs"]))

        def solve(x: np.ndarray, tr: float = tr, td: float = td, lam: float = lam, fs: float = fs):
            return calab.run_deconvolution(x, fs=fs, tau_r=tr, tau_d=td, lam=lam)

        if job.get("warmup", True):
            solve(traces[0])  # warm-up (imports, allocations)
        batch_times = []
        activity = None
        for _ in range(int(job["repeats"])):
            t0 = time.perf_counter()
            activity = solve(traces)
            batch_times.append(time.perf_counter() - t0)
        single_times = []
        for row in traces[: int(job["n_single"])]:
            row = np.ascontiguousarray(row)
            t0 = time.perf_counter()
            solve(row)
            single_times.append(time.perf_counter() - t0)
        act_path = Path(job["workdir"]) / f"upstream_activity_{ind['name']}.npy"
        np.save(act_path, np.asarray(activity, dtype=np.float64))
        entry = {
            "batch_times_s": batch_times,
            "single_times_s": single_times,
            "activity": str(act_path),
        }
        if job.get("diagnostics", True):
            full = calab.run_deconvolution_full(traces, fs=fs, tau_r=tr, tau_d=td, lam=lam)
            its = np.asarray(full.iterations)
            entry["iterations_median"] = float(np.median(its))
            entry["iterations_max"] = int(np.max(its))
            entry["converged_fraction"] = float(np.mean(np.asarray(full.converged)))
            # The fit K s + (its baseline); lets the caller recover the baseline upstream used.
            for field in ("activity", "reconvolution"):
                path = Path(job["workdir"]) / f"upstream_full_{field}_{ind['name']}.npy"
                np.save(path, np.asarray(getattr(full, field), dtype=np.float64))
                entry[f"full_{field}"] = str(path)
        out["indicators"][ind["name"]] = entry
    (job_path.parent / "upstream_result.json").write_text(json.dumps(out))


if __name__ == "__main__":
    main()
