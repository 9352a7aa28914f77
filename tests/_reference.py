"""Independent plain-numpy reference for the CaTune model (no calab code is used here).

Model per cell: minimize 1/2 ||y - K s - b||^2 + lam * G_dc * sum(s), s >= 0, b scalar, where
K is causal convolution with the truncated kernel h and G_dc = sum(h).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np


def kernel(tau_rise: float, tau_decay: float, fs: float) -> np.ndarray:
    """The CaTune kernel straight from the formula: peak 1, h[0] = 0."""
    n = max(2, math.ceil(-math.log(1e-6) * tau_decay * fs))
    i = np.arange(n, dtype=np.float64)
    h = np.exp(-i / (fs * tau_decay)) - np.exp(-i / (fs * tau_rise))
    return h / h.max()


def conv(s: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Truncated causal convolution: out[t] = sum_{i<=min(t, L-1)} h[i] s[t-i]."""
    s = np.asarray(s, dtype=np.float64)
    return np.convolve(s, h)[: s.size]


def adjoint(r: np.ndarray, h: np.ndarray) -> np.ndarray:
    """K^T r: out[j] = sum_i h[i] r[j+i]."""
    r = np.asarray(r, dtype=np.float64)
    return np.convolve(r[::-1], h)[: r.size][::-1]


def conv_matrix(n: int, h: np.ndarray) -> np.ndarray:
    """Dense n x n lower-triangular Toeplitz matrix of K."""
    m = np.zeros((n, n))
    for i in range(min(n, h.size)):
        m += np.diag(np.full(n - i, h[i]), -i)
    return m


def objective(y: np.ndarray, s: np.ndarray, b: float, h: np.ndarray, lam: float) -> float:
    r = np.asarray(y, dtype=np.float64) - conv(s, h) - b
    return float(0.5 * r @ r + lam * h.sum() * np.sum(s))


def gradient(y: np.ndarray, s: np.ndarray, b: float, h: np.ndarray, lam: float) -> np.ndarray:
    """Gradient of the objective with respect to s (including the L1 term for s >= 0)."""
    return adjoint(conv(s, h) + b - np.asarray(y, dtype=np.float64), h) + lam * h.sum()


class KKT(NamedTuple):
    stationarity: float  # max |grad_i| over s_i > 0
    dual: float  # max(-grad_i, 0) over s_i == 0
    negative: float  # max(-s_i, 0)
    baseline: float  # |sum(y - K s - b)|
    scale: float  # G_dc * max|y|, the natural size of a gradient entry

    @property
    def worst(self) -> float:
        """Largest violation of the s-conditions relative to ``scale``."""
        return max(self.stationarity, self.dual, self.negative) / self.scale


def kkt(y: np.ndarray, s: np.ndarray, b: float, h: np.ndarray, lam: float) -> KKT:
    y = np.asarray(y, dtype=np.float64)
    s = np.asarray(s, dtype=np.float64)
    g = gradient(y, s, b, h, lam)
    pos = s > 0
    stat = float(np.abs(g[pos]).max()) if pos.any() else 0.0
    dual = float(np.maximum(-g[~pos], 0).max()) if (~pos).any() else 0.0
    neg = float(np.maximum(-s, 0).max())
    base = float(abs(np.sum(y - conv(s, h) - b)))
    scale = float(h.sum() * max(np.abs(y).max(), 1e-300))
    return KKT(stat, dual, neg, base, scale)


class Solution(NamedTuple):
    s: np.ndarray
    b: float
    objective: float
    iterations: int


def fista(
    y: np.ndarray,
    h: np.ndarray,
    lam: float,
    *,
    tol: float = 1e-13,
    max_iters: int = 200_000,
    polish: bool = True,
) -> Solution:
    """Reference FISTA on the CaTune objective.

    Step 1/(sum h)^2 (the Lipschitz constant of a non-negative kernel), non-negative soft
    threshold, gradient-based adaptive restart (O'Donoghue & Candes), and b = mean(y - K s)
    at every iterate (i.e. FISTA on the objective with b minimised out). Stops when the
    relative step falls below ``tol``. With ``polish`` the result is refined by an exact
    least-squares solve on the support found, kept only if it is feasible and better.
    """
    y = np.asarray(y, dtype=np.float64)
    n = y.size
    g_dc = h.sum()
    step = 1.0 / g_dc**2
    thresh = step * lam * g_dc
    s = np.zeros(n)
    z = s.copy()
    t = 1.0
    it = 0
    for it in range(1, max_iters + 1):  # noqa: B007
        kz = conv(z, h)
        b = np.mean(y - kz)
        grad = adjoint(kz + b - y, h)
        s_new = np.maximum(z - step * grad - thresh, 0.0)
        diff = s_new - s
        if np.dot(z - s_new, diff) > 0:  # restart: momentum points uphill
            t = 1.0
            z = s_new
        else:
            t_new = 0.5 * (1 + math.sqrt(1 + 4 * t * t))
            z = s_new + ((t - 1) / t_new) * diff
            t = t_new
        s = s_new
        norm = np.linalg.norm(s)
        if norm > 0 and np.linalg.norm(diff) <= tol * norm:
            break
        if norm == 0 and np.linalg.norm(diff) == 0 and it > 10:
            break
    b = float(np.mean(y - conv(s, h)))
    best = Solution(s, b, objective(y, s, b, h, lam), it)
    if polish:
        polished = _polish(y, h, lam, s > 0)
        if polished is not None and polished.objective <= best.objective:
            best = polished._replace(iterations=it)
    return best


def _polish(y: np.ndarray, h: np.ndarray, lam: float, support: np.ndarray) -> Solution | None:
    """Exact minimiser with s fixed to 0 off ``support`` and no sign constraint on it."""
    n = y.size
    idx = np.flatnonzero(support)
    k = conv_matrix(n, h)
    a = np.hstack([k[:, idx], np.ones((n, 1))])
    # Normal equations of 1/2||y - A x||^2 + lam G_dc sum(x[:-1]).
    rhs = a.T @ y
    rhs[:-1] -= lam * h.sum()
    try:
        x = np.linalg.solve(a.T @ a, rhs)
    except np.linalg.LinAlgError:
        return None
    if np.any(x[:-1] < 0):
        return None
    s = np.zeros(n)
    s[idx] = x[:-1]
    b = float(x[-1])
    return Solution(s, b, objective(y, s, b, h, lam), 0)


def gaussian_smooth(x: np.ndarray, sd: float) -> np.ndarray:
    """Smooth along the last axis with a normalised Gaussian of ``sd`` samples."""
    half = int(math.ceil(4 * sd))
    t = np.arange(-half, half + 1)
    w = np.exp(-0.5 * (t / sd) ** 2)
    w /= w.sum()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        return np.convolve(x, w, mode="same")
    return np.stack([np.convolve(row, w, mode="same") for row in x])


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64) - np.mean(a)
    b = np.asarray(b, dtype=np.float64) - np.mean(b)
    den = math.sqrt(float(a @ a) * float(b @ b))
    return float(a @ b) / den if den > 0 else 0.0


def best_lag_corr(activity: np.ndarray, spikes: np.ndarray, max_lag: int) -> tuple[float, int]:
    """Max Pearson r of activity[t + lag] vs spikes[t] over lag in 0..max_lag."""
    n = activity.size
    best = (-2.0, 0)
    for lag in range(max_lag + 1):
        r = pearson(activity[lag:], spikes[: n - lag])
        if r > best[0]:
            best = (r, lag)
    return best


# Indicator-like parameter sets: (tau_rise s, tau_decay s, fs Hz).
KERNELS = {
    "6f-30Hz": (0.05, 0.5, 30.0),
    "6s-30Hz": (0.05, 1.5, 30.0),
    "8m-120Hz": (0.01, 0.3, 120.0),
    "short": (0.02, 0.1, 10.0),
}


def spike_train(n: int, rate: float, seed: int) -> np.ndarray:
    """Poisson spike counts per frame, with no spike in the first and last frame."""
    s = np.random.default_rng(seed).poisson(rate, size=n).astype(np.float64)
    s[0] = s[-1] = 0.0
    return s
