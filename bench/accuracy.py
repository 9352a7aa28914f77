"""Accuracy on real ground truth: calab vs OASIS AR(1)/AR(2) and upstream CaLab (if installed).

Reads Cascade-format ``*.npz`` files (``traces``, ``spike_counts``, ``fs``, ``indicator``) from
``$CALAB_GROUND_TRUTH`` or ``<repo>/../shared/data/ground_truth``; skips when absent.

Kernel time constants are fixed per indicator (table below), the same for every method. The
penalty is set per cell from its noise level so that it means the same as ``lam`` on the
synthetic benchmark: ``lam = lam_ref * (sigma / 0.2) * (||h|| / G_dc) / (||h_ref|| / G_dc_ref)``,
with ``sigma`` from frame-to-frame differences and the reference the GCaMP6f-like kernel at
30 Hz with noise sd 0.2 (``bench/solver.py``'s data). OASIS gets the equivalent penalty.

Usage: .venv/bin/python bench/accuracy.py [--lam-ref 0.01] [--no-upstream]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
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


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--lam-ref", type=float, default=0.01, help="lam on the synthetic reference")
    p.add_argument("--no-upstream", action="store_true")
    p.add_argument("--no-oasis", action="store_true")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)

    root = data_dir()
    files = sorted(root.glob("*.npz")) if root.is_dir() else []
    if not files:
        print(f"SKIPPED: no ground-truth *.npz in {root} (set CALAB_GROUND_TRUTH)")
        return 0
    have_oasis = not a.no_oasis and C.oasis_available()[0]
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
    out = a.out or C.RESULTS_DIR / f"accuracy-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1, default=str))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
