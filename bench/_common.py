"""Shared helpers for the benchmarks: scoring, the CaTune objective, OASIS and upstream runners.

numpy only (OASIS and the upstream CaLab venv are optional and handled by the callers).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCH_DIR = Path(__file__).resolve().parent
REPO_ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
UPSTREAM_VENV = BENCH_DIR / ".venv-upstream"
UPSTREAM_SPEC = "calab==0.3.0"
UPSTREAM_VERSION = "0.3.0"
UPSTREAM_WORKER = BENCH_DIR / "_upstream_worker.py"
MAX_LAG = 3


# --------------------------------------------------------------------------- scoring


def gaussian_smooth(x: np.ndarray, sd: float = 1.0) -> np.ndarray:
    """Smooth each row with a normalised Gaussian (sd in frames, truncated at 4 sd)."""
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    half = max(1, int(np.ceil(4 * sd)))
    k = np.exp(-0.5 * (np.arange(-half, half + 1) / sd) ** 2)
    k /= k.sum()
    return np.array([np.convolve(row, k, mode="same") for row in x])


def _rowwise_pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt((a * a).sum(axis=1) * (b * b).sum(axis=1))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(axis=1) / den
    return np.where(den > 0, r, np.nan)


def lagged_correlation(
    activity: np.ndarray, spikes: np.ndarray, max_lag: int = MAX_LAG, sd: float = 1.0
) -> dict[str, Any]:
    """Pearson r per cell of smoothed activity vs smoothed spikes at the method's best lag.

    The lag (activity delayed by 0..max_lag frames relative to the spikes) is chosen once per
    method, maximising the median r over cells. Cells with no activity count as r = 0.
    """
    a = gaussian_smooth(activity, sd)
    s = gaussian_smooth(spikes, sd)
    n = a.shape[1]
    best: dict[str, Any] | None = None
    for lag in range(max_lag + 1):
        r = _rowwise_pearson(a[:, lag:], s[:, : n - lag])
        r = np.nan_to_num(r, nan=0.0)
        med = float(np.median(r))
        if best is None or med > best["median_r"]:
            best = {"median_r": med, "lag": lag, "r": r}
    assert best is not None
    best["mean_r"] = float(np.mean(best["r"]))
    best["r"] = [round(float(v), 5) for v in best["r"]]
    return best


# --------------------------------------------------------------------------- objective


def catune_objective(y: np.ndarray, s: np.ndarray, kernel: np.ndarray, lam: float) -> np.ndarray:
    """Per-cell CaTune objective ``1/2 ||y - K s - b||^2 + lam * G_dc * sum(s)``.

    ``b = mean(y - K s)`` (the optimal scalar baseline for this ``s``), ``K`` is causal
    convolution with the truncated kernel. Negative activity is clipped to 0 first.
    """
    y = np.atleast_2d(np.asarray(y, dtype=np.float64))
    s = np.maximum(np.atleast_2d(np.asarray(s, dtype=np.float64)), 0.0)
    h = np.asarray(kernel, dtype=np.float64)
    g_dc = float(h.sum())
    n = y.shape[1]
    out = np.empty(y.shape[0])
    for i in range(y.shape[0]):
        resid = y[i] - np.convolve(s[i], h)[:n]
        resid -= resid.mean()
        out[i] = 0.5 * float(resid @ resid) + lam * g_dc * float(s[i].sum())
    return out


def relative_excess(obj: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    """Summary of ``(obj - ref) / |ref|`` over cells (positive: ``obj`` is worse)."""
    rel = (np.asarray(obj) - np.asarray(ref)) / np.abs(np.asarray(ref))
    return {
        "median": float(np.median(rel)),
        "min": float(np.min(rel)),
        "max": float(np.max(rel)),
        "frac_ref_lower_or_equal": float(np.mean(rel >= -1e-9)),
    }


# --------------------------------------------------------------------------- timing


def median_time(fn: Any, repeats: int) -> tuple[float, list[float], Any]:
    """Run ``fn`` ``repeats`` times; return (median seconds, all times, last result)."""
    times = []
    out = None
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times)), times, out


# --------------------------------------------------------------------------- OASIS


def oasis_available() -> tuple[bool, str]:
    try:
        from oasis.oasis_methods import oasisAR1, oasisAR2  # noqa: F401
    except Exception as exc:  # pragma: no cover - depends on the environment
        return False, f"{type(exc).__name__}: {exc}"
    try:
        from importlib.metadata import version

        return True, version("oasis-deconv")
    except Exception:
        return True, "unknown"


def oasis_params(tau_r: float, tau_d: float, fs: float, lam: float, kernel: np.ndarray) -> dict:
    """OASIS AR coefficients and penalties equivalent to the CaTune ``lam``.

    The CaTune penalty is ``lam * G_dc`` per unit of activity whose calcium transient has area
    ``G_dc``: ``lam`` per unit of calcium area. OASIS penalises its ``s`` (the calcium jump) by
    ``lam_o``; one unit of it has area ``1/(1-g)`` (AR(1)) or ``1/(1-g1-g2)`` (AR(2)), so the
    same penalty per area is ``lam_o = lam / (1 - g)`` and ``lam / (1 - g1 - g2)``.
    """
    dt = 1.0 / fs
    d = float(np.exp(-dt / tau_d))
    r = float(np.exp(-dt / tau_r))
    g1, g2 = d + r, -d * r
    return {
        "g": d,
        "g1": g1,
        "g2": g2,
        "lam_ar1": lam / (1.0 - d),
        "lam_ar2": lam / (1.0 - g1 - g2),
        # CaTune activity equivalent to OASIS AR(2) activity: s_catune[t] = s_o[t+1] / h[1].
        "ar2_to_catune": 1.0 / float(kernel[1]),
    }


def oasis_baseline(y: np.ndarray) -> float:
    """Baseline OASIS is given (it has no baseline in its fixed-penalty solvers)."""
    return float(np.percentile(y, 10))


def run_oasis(y: np.ndarray, p: dict, order: int) -> np.ndarray:
    """OASIS with a fixed L1 penalty on one trace, after subtracting a 10th-percentile baseline."""
    from oasis.oasis_methods import oasisAR1, oasisAR2

    yb = np.ascontiguousarray(y, dtype=np.float64) - oasis_baseline(y)
    if order == 1:
        _, s = oasisAR1(yb, p["g"], p["lam_ar1"], 0.0)
    else:
        _, s = oasisAR2(yb, p["g1"], p["g2"], p["lam_ar2"], 0.0)
    return np.asarray(s)


def run_oasis_batch(traces: np.ndarray, p: dict, order: int) -> np.ndarray:
    return np.array([run_oasis(row, p, order) for row in traces])


def oasis_ar2_as_catune(s_o: np.ndarray, p: dict) -> np.ndarray:
    """Map OASIS AR(2) activity onto the CaTune kernel's time base and scale."""
    s_o = np.atleast_2d(s_o)
    out = np.zeros_like(s_o, dtype=np.float64)
    out[:, :-1] = s_o[:, 1:] * p["ar2_to_catune"]
    return out


# --------------------------------------------------------------------------- upstream venv


def _venv_python(venv: Path) -> Path:
    sub = "Scripts/python.exe" if os.name == "nt" else "bin/python"
    return venv / sub


def upstream_python(rebuild: bool = False, log: Any = print) -> tuple[Path | None, str]:
    """Return the python of a venv with upstream CaLab installed, creating it if needed.

    Returns (path or None, message). Never raises for install problems.
    """
    py = _venv_python(UPSTREAM_VENV)
    check = "import calab, numpy; print(calab.__version__)"
    if py.exists() and not rebuild:
        res = subprocess.run([str(py), "-c", check], capture_output=True, text=True)
        if res.returncode == 0 and res.stdout.strip() == UPSTREAM_VERSION:
            return py, f"cached venv {UPSTREAM_VENV}"
        log(f"  upstream venv at {UPSTREAM_VENV} is unusable; rebuilding")
    if UPSTREAM_VENV.exists():
        shutil.rmtree(UPSTREAM_VENV)
    base = getattr(sys, "_base_executable", None) or sys.executable
    log(f"  creating {UPSTREAM_VENV} and installing {UPSTREAM_SPEC} (one time)...")
    steps = [
        [base, "-m", "venv", str(UPSTREAM_VENV)],
        [str(py), "-m", "pip", "install", "-q", "--disable-pip-version-check", UPSTREAM_SPEC,
         "numpy"],
    ]  # fmt: skip
    for cmd in steps:
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
        except (OSError, subprocess.TimeoutExpired) as exc:
            return None, f"{' '.join(cmd[:3])} failed: {exc}"
        if res.returncode != 0:
            tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
            return None, f"{' '.join(cmd[:4])} failed: {' | '.join(tail)}"
    res = subprocess.run([str(py), "-c", check], capture_output=True, text=True)
    if res.returncode != 0 or res.stdout.strip() != UPSTREAM_VERSION:
        return None, f"installed upstream does not import: {res.stderr.strip()[-300:]}"
    return py, f"new venv {UPSTREAM_VENV}"


def run_upstream_worker(py: Path, job: dict, timeout: float = 1800) -> dict:
    """Run bench/_upstream_worker.py in the upstream venv with ``job``; return its JSON."""
    job_path = Path(job["workdir"]) / "upstream_job.json"
    job_path.write_text(json.dumps(job))
    # Run from the work dir with a clean PYTHONPATH so the repo's calab can never shadow it.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    res = subprocess.run(
        [str(py), str(UPSTREAM_WORKER), str(job_path)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=job["workdir"],
        env=env,
    )
    if res.returncode != 0:
        raise RuntimeError(f"upstream worker failed: {res.stderr.strip()[-800:]}")
    return json.loads((Path(job["workdir"]) / "upstream_result.json").read_text())


# --------------------------------------------------------------------------- environment


def environment() -> dict[str, Any]:
    import calab

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "calab": calab.__version__,
    }
    try:
        info["git_commit"] = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO_ROOT
        ).stdout.strip()
    except OSError:
        info["git_commit"] = None
    try:
        with open("/proc/loadavg") as fh:
            info["loadavg_at_start"] = fh.read().split()[:3]
    except OSError:
        pass
    return info
