"""Cost of automatic parameters: estimation + deconvolution vs deconvolution at known parameters.

Data: ``calab.simulate`` (GCaMP6f preset by default), 1,000 cells x 9,000 frames at 30 Hz,
per-cell noise (SNR 3-10), slow drift and photobleaching. In the same run, interleaved and
repeated (median reported):

- ``known``: ``run_deconvolution`` with the true kernel, the estimate's baseline mode and a
  per-cell lambda from the true noise (the same rule as the estimator's);
- ``auto``: ``calab.estimate_parameters`` then the same deconvolution with the estimate;
- ``oasis``: OASIS's automatic mode, ``oasis.functions.deconvolve(y, g=(None, None),
  penalty=1)``, one trace at a time (if installed; once, on ``--oasis-cells`` cells, time scaled
  to all cells).

Times are CPU times of the process (``time.process_time``, all threads), so that waiting for a
core on a shared machine does not count. Target (issues 12, 17): auto / known <= 2.

Usage: .venv/bin/python bench/estimate.py [--cells 1000] [--frames 9000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import datetime
from pathlib import Path

import _common as C  # bench/ is on sys.path when run as a script
import numpy as np
from accuracy import deconvolve_auto, oasis_auto, write_results

import calab
from calab.estimate import ParameterEstimate
from calab.estimate_kernel import LAM_NOISE_SDS, lam_scale


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--cells", type=int, default=1000)
    p.add_argument("--frames", type=int, default=9000)
    p.add_argument("--fs", type=float, default=30.0)
    p.add_argument("--indicator", default="GCaMP6f")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--oasis-cells", type=int, default=1000, help="0 skips OASIS")
    p.add_argument("--out", type=Path, default=None)
    a = p.parse_args(argv)

    traces, _, truth = calab.simulate(
        a.cells, a.frames, a.fs, indicator=a.indicator, snr=(3.0, 10.0), rate_hz=0.5,
        drift=0.5, bleach=1.0, seed=0, return_truth=True,
    )  # fmt: skip
    print(f"{a.cells} cells x {a.frames} frames at {a.fs} Hz, {a.indicator}; "
          f"{a.repeats} interleaved repeats; CPU times")  # fmt: skip

    times: dict[str, list[float]] = {"known": [], "estimate": [], "auto": []}
    est = None
    for _ in range(a.repeats):
        t0 = time.process_time()
        est = calab.estimate_parameters(traces, a.fs)
        t1 = time.process_time()
        deconvolve_auto(traces, a.fs, est)
        t2 = time.process_time()
        times["estimate"].append(t1 - t0)
        times["auto"].append(t2 - t0)
        lam = LAM_NOISE_SDS * truth.noise_sd * lam_scale(truth.tau_rise, truth.tau_decay, a.fs)
        known = ParameterEstimate(
            truth.tau_rise, truth.tau_decay, lam, truth.noise_sd, est.baseline,
            np.zeros(a.cells, dtype=bool), a.fs, 0,
        )  # fmt: skip
        t3 = time.process_time()
        deconvolve_auto(traces, a.fs, known)
        times["known"].append(time.process_time() - t3)
    assert est is not None
    med = {k: float(np.median(v)) for k, v in times.items()}
    ratio = med["auto"] / med["known"]
    print(f"  estimate: tau {est.tau_rise:.4f}/{est.tau_decay:.3f} s (true "
          f"{truth.tau_rise}/{truth.tau_decay}), baseline {est.baseline}, median noise error "
          f"{np.median(np.abs(est.noise / truth.noise_sd - 1)):.1%}")  # fmt: skip
    print(f"  deconvolution at known parameters  {med['known']:8.2f} s")
    print(f"  estimation alone                   {med['estimate']:8.2f} s")
    print(f"  estimation + deconvolution         {med['auto']:8.2f} s   "
          f"({ratio:.2f}x known; target <= 2)")  # fmt: skip

    res = {
        "benchmark": "estimate",
        "date": datetime.now().isoformat(timespec="seconds"),
        "config": vars(a) | {"out": str(a.out)},
        "environment": C.environment(),
        "seconds": times,
        "median_s": med,
        "ratio_auto_to_known": ratio,
        "estimate": {"tau_rise": est.tau_rise, "tau_decay": est.tau_decay,
                     "baseline": est.baseline},
    }  # fmt: skip
    n_oasis = min(a.oasis_cells, a.cells)
    if n_oasis > 0 and C.oasis_available()[0]:
        t0 = time.process_time()
        oasis_auto(traces[:n_oasis])
        t_oasis = (time.process_time() - t0) * a.cells / n_oasis
        res["oasis_auto_s"] = t_oasis
        print(f"  OASIS automatic                    {t_oasis:8.2f} s   "
              f"({n_oasis} cells timed, scaled to {a.cells})")  # fmt: skip
    elif n_oasis > 0:
        print("  OASIS automatic: not installed (pip install oasis-deconv)")
    write_results(res, a.out, "estimate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
