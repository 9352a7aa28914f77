"""The recording-wide kernel (tau_rise, tau_decay) from sample traces: step 3 of the estimate.

:func:`estimate_kernel` is called by :func:`calab.estimate_parameters` with a sample of the most
active cells. How it works:

a *detection kernel* from the autocovariance of the drift-free traces (an AR(2) fit to
lags 3.. so that the noise, which only enters lag 0, does not bias it), then the
*response kernel*: the average response to a unit of activity, found by least squares
given the activity that the detection kernel finds at a strict threshold
(:data:`DETECT_NOISE_SDS`); the double exponential with the same time to peak and width at
half maximum as that response is a candidate. When the double exponential fitted to the
autocovariance explains the traces better (lower BIC of the deconvolution) than every
response, the transients follow the model and its kernel is taken; otherwise the response
with the shortest resolved rise is (:func:`_choose_response`: a slower detection kernel
places activity earlier and so measures a slower response, a bias that feeds itself; the
fastest detection kernel's response is the least inflated). Matching timing figures rather
than a least-squares curve keeps real responses, whose decays are not single exponentials,
from being fitted by their slow tails alone. The **decay** then comes from the tails of
isolated transients (the trace after an event's last spike, with nothing detected for
three decay times), pooled over cells: bursts lengthen the average response but not the
decay after the last spike. A rise of a frame or less, below what the time to peak
resolves, is measured by the share of its maximum that the response reaches one frame
after onset; between one and two frames (:data:`RISE_RESOLVED_FRAMES`) the rise moves
continuously from that measure to the timing-based one.

No constant here was fitted to a particular recording: the thresholds are in noise SDs.
"""

from __future__ import annotations

import functools
import logging
import math
import warnings

import numpy as np

from calab.baseline import DEFAULT_WINDOW_S, drift_baseline

logger = logging.getLogger(__name__)

LAM_NOISE_SDS = 2.0
"""Sparsity threshold: matched-filter noise SDs a spike must exceed (sets ``lam``)."""
DETECT_NOISE_SDS = 3.0
"""Stricter threshold for the events that measure the response kernel."""
ESTIMATE_TOL = 1e-4
"""Relative KKT tolerance of the estimate's own deconvolutions (the solver's default is 1e-9).

They detect events, measure responses and compare settings; a solution this close to the
optimum changes none of that, and the active-set solver reaches it in several times fewer
pivots."""
BASELINE_DECAY_TIMES = 40.0
"""The drift window must span this many decay times (else the maximin eats slow calcium)."""


def _fft_size(n: int) -> int:
    """Smallest ``2**a 3**b 5**c >= n``: a fast FFT length (a power of two can be nearly 2n)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


def _autocov(x: np.ndarray, max_lag: int) -> np.ndarray:
    """Autocovariance of each row at lags 0..max_lag (biased estimator, via FFT)."""
    n = x.shape[1]
    xc = x - x.mean(axis=1, keepdims=True)
    nfft = _fft_size(n + max_lag + 1)
    spec = np.fft.rfft(xc, nfft, axis=1)
    return np.fft.irfft(np.abs(spec) ** 2, nfft, axis=1)[:, : max_lag + 1] / n


def _pooled_xcorr(
    a: np.ndarray, b: np.ndarray, weights: np.ndarray, n_lags: int
) -> tuple[np.ndarray, np.ndarray]:
    """Weighted sums over rows of ``sum_t b[i, t] b[i, t - k]`` and ``sum_t a[i, t] b[i, t - k]``.

    For k = 0..n_lags-1: ``(r_bb, r_ab)``. Two forward FFTs of the rows; the sum over rows is
    taken in the frequency domain (the transform is linear), so each inverse is one row.
    """
    n = a.shape[1]
    nfft = _fft_size(n + n_lags)
    fa = np.fft.rfft(a, nfft, axis=1)
    fb = np.fft.rfft(b, nfft, axis=1)
    fbc = np.conj(fb)
    w = weights[:, None]
    r_bb = np.fft.irfft(((fb * fbc).real * w).sum(axis=0), nfft)[:n_lags]
    r_ab = np.fft.irfft((fa * fbc * w).sum(axis=0), nfft)[:n_lags]
    return r_bb, r_ab


def _detection_kernel(acov: np.ndarray, fs: float) -> tuple[float, float] | None:
    """(tau_rise, tau_decay) from an AR(2) fit to the pooled autocovariance at lags >= 1.

    The recursion ``a[k] = g1 a[k-1] + g2 a[k-2]`` holds for the autocovariance of an AR(2)
    process driven by white noise; using k >= 3 keeps lag 0, where the measurement noise
    adds its variance, out of the fit. Falls back to an AR(1) fit; None when neither decays.
    """
    max_lag = acov.size - 1
    k = np.arange(3, max_lag + 1)
    if k.size < 2:
        return None
    design = np.stack([acov[k - 1], acov[k - 2]], axis=1)
    (g1, g2), *_ = np.linalg.lstsq(design, acov[k], rcond=None)
    roots = np.roots([1.0, -g1, -g2])
    real = np.sort(np.real(roots[np.abs(np.imag(roots)) < 1e-9]))[::-1]
    real = real[(real > 0) & (real < 1)]
    if real.size == 0:
        # No decaying AR(2) root (one noisy trace, say): the AR(1) fit of lags 1.. instead.
        k1 = np.arange(2, max_lag + 1)
        den = float(acov[k1 - 1] @ acov[k1 - 1])
        g = float(acov[k1] @ acov[k1 - 1]) / den if den > 0 else 0.0
        if not 0 < g < 1:
            return None
        real = np.array([g])
    td = -1.0 / (fs * math.log(real[0]))
    tr = -1.0 / (fs * math.log(real[1])) if real.size > 1 else 0.25 / fs
    tr = min(tr, td / 5)
    return tr, td


def _fit_rise(acov: np.ndarray, fs: float, tau_decay: float) -> float:
    """Rise time constant that best explains the autocovariance at short lags, decay given.

    For Poisson spikes through ``h[t] = d**t - r**t`` the autocovariance at lag k >= 1 is
    ``A d**k + B r**k`` with ``A = 1/(1-d^2) - 1/(1-dr)`` and ``B = 1/(1-r^2) - 1/(1-dr)``:
    the rise sets how flat the autocovariance is near lag 0. Lags 1..max(3, td*fs/2) are
    fitted (scale and a constant free, the constant absorbing slow residual drift); the rise
    is searched on a log grid below the decay.
    """
    d = math.exp(-1.0 / (fs * tau_decay))
    k_max = int(min(acov.size - 1, max(3, round(0.5 * tau_decay * fs))))
    k = np.arange(1, k_max + 1, dtype=np.float64)
    y = acov[1 : k_max + 1]
    trs = np.geomspace(0.05 / fs, tau_decay / 1.5, 120)
    r = np.exp(-1.0 / (fs * trs))[:, None]  # one row per candidate rise
    model = d**k * (1 / (1 - d * d) - 1 / (1 - d * r)) + r**k * (1 / (1 - r * r) - 1 / (1 - d * r))
    err = _line_fit_error(model, y[None, :])[:, 0]
    if not np.isfinite(err).any():
        return float(tau_decay / 10)
    return float(trs[int(np.nanargmin(err))])


def _line_fit_error(models: np.ndarray, data: np.ndarray) -> np.ndarray:
    """Squared error of ``data[j] ~ a * models[i] + b`` (``a``, ``b`` free) for every pair.

    ``models``: (n_models, L); ``data``: (n_rows, L). Returns (n_models, n_rows), the
    closed-form least-squares residual ``Syy - Smy^2 / Smm`` (sums about the means); inf for
    a constant model.
    """
    mc = models - models.mean(axis=1, keepdims=True)
    dc = data - data.mean(axis=1, keepdims=True)
    smm = np.einsum("ij,ij->i", mc, mc)
    # einsum's own loops, not BLAS: a multithreaded BLAS spins a second core on matrices
    # this small, costing more CPU time than the products.
    smy = np.einsum("ml,rl->mr", mc, dc)
    syy = np.einsum("ij,ij->i", dc, dc)
    with np.errstate(divide="ignore", invalid="ignore"):
        err = syy[None, :] - smy**2 / smm[:, None]
    return np.where(smm[:, None] > 0, np.maximum(err, 0.0), np.inf)


def _response_kernel(
    resid: np.ndarray, activity: np.ndarray, weights: np.ndarray, n_lags: int
) -> np.ndarray:
    """Least-squares response ``h`` (lags 0..n_lags-1) with ``resid ~ activity * h``, pooled.

    Normal equations of the free-form kernel: a Toeplitz system from the activity's
    autocorrelation, right-hand side the trace-activity cross-correlation (rows weighted).
    """
    ac = activity - activity.mean(axis=1, keepdims=True)
    yc = resid - resid.mean(axis=1, keepdims=True)
    r_ss, r_ys = _pooled_xcorr(yc, ac, weights, n_lags)
    first = r_ss.copy()  # first column of the symmetric Toeplitz Gram matrix
    first[0] += 1e-9 * float(r_ss[0]) + 1e-300  # ridge: 1e-9 of the diagonal
    return _solve_toeplitz(first, r_ys)


def _solve_toeplitz(first: np.ndarray, rhs: np.ndarray) -> np.ndarray:
    """Solve ``T x = rhs`` for the symmetric positive definite Toeplitz ``T`` with this column.

    Levinson's recursion (Golub & Van Loan, Matrix Computations, algorithm 4.7.3): O(n^2)
    operations and O(n) memory, where a dense solve needs O(n^3) and an n x n matrix (and, on a
    busy machine, multithreaded LAPACK on a small matrix can cost 100 times its work).
    """
    n = rhs.size
    r = first[1:] / first[0]
    b = rhs / first[0]
    x = np.zeros(n)
    y = np.zeros(n)
    x[0] = b[0]
    if n == 1:
        return x
    y[0] = alpha = -r[0]
    beta = 1.0
    for k in range(1, n):
        beta *= 1.0 - alpha * alpha
        mu = (b[k] - float(r[:k] @ x[k - 1 :: -1])) / beta
        x[:k] = x[:k] + mu * y[k - 1 :: -1]
        x[k] = mu
        if k < n - 1:
            alpha = -(r[k] + float(r[:k] @ y[k - 1 :: -1])) / beta
            y[:k] = y[:k] + alpha * y[k - 1 :: -1]
            y[k] = alpha
    return x


def _peak_and_fwhm(h: np.ndarray, fs: float) -> tuple[float, float] | None:
    """Time to peak (parabolic interpolation) and width at half maximum of a response, s."""
    k = int(np.argmax(h))
    peak = float(h[k])
    if peak <= 0 or k >= h.size - 1:
        return None
    offset = 0.0
    if k > 0:
        a, b, c = h[k - 1], h[k], h[k + 1]
        den = a - 2 * b + c
        if den < 0:
            offset = float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))
    half = 0.5 * peak
    j = k
    while j > 0 and h[j - 1] >= half:
        j -= 1
    left = j - (h[j] - half) / (h[j] - h[j - 1]) if j > 0 else 0.0
    j = k
    while j < h.size - 1 and h[j + 1] >= half:
        j += 1
    if j >= h.size - 1:
        return None
    right = j + (h[j] - half) / (h[j] - h[j + 1])
    return max((k + offset) / fs, 0.25 / fs), (right - left) / fs


@functools.cache
def _timing_table() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Time to peak and FWHM of the continuous double exponential on a log grid of taus."""
    trs = np.geomspace(2e-4, 2.0, 170)
    tds = np.geomspace(5e-3, 20.0, 190)
    tr, td = np.meshgrid(trs, tds, indexing="ij")
    ok = td > 1.05 * tr
    tr, td = tr[ok], td[ok]
    t_peak = tr * td / (td - tr) * np.log(td / tr)

    def shape(t: np.ndarray) -> np.ndarray:
        return np.asarray(np.exp(-t / td) - np.exp(-t / tr))

    half = 0.5 * shape(t_peak)
    lo_a, hi_a = np.zeros_like(t_peak), t_peak.copy()
    lo_b, hi_b = t_peak.copy(), t_peak + 50 * td
    for _ in range(60):  # bisection on both half-maximum crossings at once
        mid = 0.5 * (lo_a + hi_a)
        below = shape(mid) < half
        lo_a, hi_a = np.where(below, mid, lo_a), np.where(below, hi_a, mid)
        mid = 0.5 * (lo_b + hi_b)
        above = shape(mid) > half
        lo_b, hi_b = np.where(above, mid, lo_b), np.where(above, hi_b, mid)
    fwhm = 0.5 * (lo_b + hi_b) - 0.5 * (lo_a + hi_a)
    return tr, td, t_peak, fwhm


@functools.cache
def _log_timing_table() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """:func:`_timing_table` with the logs of time to peak and FWHM (computed once)."""
    tr, td, t_peak, fwhm = _timing_table()
    return tr, td, np.log(t_peak), np.log(fwhm)


def _taus_from_timing(t_peak: float, fwhm: float) -> tuple[float, float]:
    """Return the double exponential whose time to peak and FWHM are closest (in log) to these."""
    tr, td, log_tp, log_fw = _log_timing_table()
    a = log_tp - math.log(t_peak)
    b = log_fw - math.log(fwhm)
    i = int(np.argmin(a * a + b * b))
    return float(tr[i]), float(td[i])


def lam_scale(tau_rise: float, tau_decay: float, fs: float) -> float:
    """``||h|| / sum(h)``: lam per noise SD that puts the threshold at one matched-filter SD."""
    from calab.kernel import build_kernel

    h = build_kernel(tau_rise, tau_decay, fs)
    return float(np.linalg.norm(h) / h.sum())


def _solve_cells(
    traces: np.ndarray,
    fs: float,
    tau_rise: float,
    tau_decay: float,
    lam: np.ndarray,
    warm: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Activity, scalar baseline and fit of each row, each with its own lambda, in one batch.

    ``warm``: activity of a previous solve of the same rows (a nearby kernel or lambda), from
    which the active-set solver starts: a few pivots instead of a solve from nothing.
    """
    from calab.solve import solve_full_unchecked

    res = solve_full_unchecked(
        traces,
        fs,
        tau_rise,
        tau_decay,
        np.asarray(lam, dtype=np.float64),
        tol=ESTIMATE_TOL,
        warm_start=warm,
    )
    return res.activity, res.baseline, res.reconvolution


Detection = tuple[np.ndarray, np.ndarray]
"""Activity (n_sample, n_frames) and scalar baseline (n_sample,) found by a detection kernel."""


def _detect(sample: np.ndarray, noise: np.ndarray, fs: float, tr0: float, td0: float) -> Detection:
    """Activity and baseline with the kernel (tr0, td0) at the strict threshold."""
    scale = lam_scale(tr0, td0, fs)
    act, base, _ = _solve_cells(sample, fs, tr0, td0, DETECT_NOISE_SDS * noise * scale)
    return act, base


_GIVE_KERNEL = (
    " (at fs = {fs:g} Hz: check that fs is the sampling rate in Hz, not the frame period); or "
    "give the time constants yourself (tau_rise and tau_decay in Python, a CaTune export with "
    "-p on the command line)"
)


def estimate_kernel(raw: np.ndarray, noise: np.ndarray, fs: float) -> tuple[float, float]:
    """Recording-wide (tau_rise, tau_decay) in seconds from sample traces (drift removed here).

    ``raw``: (n_sample, n_frames) traces; ``noise``: (n_sample,) their noise SDs.
    """
    sample = raw - drift_baseline(raw, fs)
    n = sample.shape[1]
    max_lag = int(min(max(10, round(fs)), n // 4))
    acov = _autocov(sample, max_lag)
    usable = acov[:, 1] > 0
    if not usable.any():
        raise ValueError(
            "traces show no temporal correlation at all (white noise?); cannot estimate a kernel"
            + _GIVE_KERNEL.format(fs=fs)
        )
    pooled = (acov[usable] / acov[usable, 1:2]).sum(axis=0)
    det = _detection_kernel(pooled, fs)
    if det is None:
        raise ValueError(
            "the traces' autocovariance does not decay like calcium transients; cannot estimate a "
            "kernel" + _GIVE_KERNEL.format(fs=fs)
        )
    tr_ar, td0 = det
    tr_fit = _fit_rise(pooled, fs, td0)
    window = BASELINE_DECAY_TIMES * td0
    if window > DEFAULT_WINDOW_S:
        # The maximin must see pauses of a few decay times, else it eats slow calcium.
        sample = raw - drift_baseline(raw, fs, window)
    # One detection per kernel: the fitted one also finds the tails of isolated transients.
    # Each starts cold: the activity it finds measures the response, and a warm start (ending
    # elsewhere within the loose ESTIMATE_TOL) would move the estimate, not only its cost.
    detections = {tr0: _detect(sample, noise, fs, tr0, td0) for tr0 in sorted({tr_ar, tr_fit})}
    responses = []
    for detected in detections.values():
        response = _response_taus(sample, noise, fs, detected, td0)
        if response is not None:
            responses.append(response)
    if not responses:
        warnings.warn(
            "too few clear transients to measure the response; using the kernel from the "
            "autocovariance",
            stacklevel=3,
        )
        return tr_fit, td0
    tr, td, first_frame = _choose_response(
        sample, noise, fs, (tr_fit, td0), responses, detections[tr_fit][0]
    )
    td_tail = _tail_decay(sample, noise, fs, detections[tr_fit], (tr_fit, td0), tr)
    logger.debug("decay from isolated transients %s (response kernel %s)", td_tail, td)
    if td_tail is not None and td_tail > 1.5 * tr:
        td = td_tail
    return _subframe_rise(tr, td, first_frame, fs), td


def _choose_response(
    sample: np.ndarray,
    noise: np.ndarray,
    fs: float,
    model: tuple[float, float],
    responses: list[tuple[float, float, float]],
    warm: np.ndarray | None = None,
) -> tuple[float, float, float]:
    """Pick the kernel: the autocovariance model's, or the fastest resolved response.

    ``model`` is the double exponential fitted to the autocovariance; ``responses`` are
    (tau_rise, tau_decay, first-frame share) of the responses measured with each detection
    kernel (:func:`_response_taus`). When the model explains the traces better than every
    response (lower BIC), the transients follow a double exponential and its kernel is taken
    (the first-frame share is then unknown: NaN). Otherwise each response carries the bias of
    the kernel that detected its activity: a slower detection kernel places activity earlier,
    before the fluorescence rises, and the response measured from it rises slower still. The
    response from the fastest detection kernel is the least inflated, so the response with the
    shortest rise is taken, among those whose peak the frames resolve (a response that peaks
    one frame after onset, first-frame share 1, says only that its detection kernel was too
    fast). ``warm``: activity of a solve of the sample with a nearby kernel (the first solve
    starts from it).
    """
    # The model wins only with the lowest BIC (ties to it); the first response below it settles
    # the choice, so the rest need no solve. Each solve starts from the previous one's activity.
    model_bic, warm = _bic(sample, fs, *model, noise, warm)
    scores = [model_bic]
    for tr, td, _ in responses:
        score, warm = _bic(sample, fs, tr, td, noise, warm)
        scores.append(score)
        if score < model_bic:
            break
    logger.debug("kernel candidates %s, BIC %s", [model] + responses, scores)
    if min(scores) == model_bic:
        return model[0], model[1], math.nan
    resolved = [r for r in responses if r[2] < 1.0] or responses
    return min(resolved, key=lambda r: r[0])


RISE_RESOLVED_FRAMES = (1.0, 2.0)
"""Timing-based rise (frames) up to which the first-frame fraction decides it, and from which
the time to peak alone does; in between the two are weighted linearly (in log time)."""


def _subframe_rise(tau_rise: float, tau_decay: float, first_frame: float, fs: float) -> float:
    """Return the timing-based rise, or for a rise near a frame or less, the first-frame measure.

    A rise of a frame or less is below what the time to peak resolves: it is measured by the
    share of its maximum the response reaches one frame after onset
    (:func:`_rise_from_first_frame`), and the shorter of the two is taken (both err long,
    bursts spreading the response). Between :data:`RISE_RESOLVED_FRAMES` the estimate moves
    continuously (log-linear weight) from that to the timing-based rise, so that a rise just
    above or below one frame gives nearly the same kernel.
    """
    lo, hi = RISE_RESOLVED_FRAMES
    frames = tau_rise * fs
    if frames >= hi or not math.isfinite(first_frame):
        return tau_rise
    short = min(tau_rise, _rise_from_first_frame(first_frame, tau_decay, fs))
    w = min(max((frames - lo) / (hi - lo), 0.0), 1.0)
    return float(math.exp((1.0 - w) * math.log(short) + w * math.log(tau_rise)))


def _rise_from_first_frame(frac: float, tau_decay: float, fs: float) -> float:
    """Rise time constant whose kernel reaches ``frac`` of its peak one frame after onset.

    Measures a rise of about a frame or less, which the time to peak, spread by bursts over
    later frames, cannot. Bursts lower ``frac`` (they raise the maximum), so the rise errs
    long. The share falls monotonically as the rise grows: bisection in log time over
    ``[0.02 / fs, tau_decay / 2]`` (the bounds when ``frac`` lies outside what they reach).
    """
    a = 1.0 / (fs * tau_decay)

    def share(tr: float) -> float:
        # h[1] / max(h) of :func:`calab.build_kernel` (h[i] = exp(-a i) - exp(-b i)) without
        # building it: the largest frame is next to the continuous peak ln(b/a) / (b - a).
        b = 1.0 / (fs * tr)
        peak = math.log(b / a) / (b - a)
        top = max(
            math.exp(-a * i) - math.exp(-b * i) for i in (max(1, math.floor(peak)), math.ceil(peak))
        )
        return (math.exp(-a) - math.exp(-b)) / top

    lo, hi = math.log(0.02 / fs), math.log(tau_decay / 2)
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        if share(math.exp(mid)) > frac:
            lo = mid
        else:
            hi = mid
    return math.exp(0.5 * (lo + hi))


TAIL_DECAY_TIMES = 3.0
"""Quiet span after an event, in decay times of the detection kernel, for a tail to count."""
MIN_TAILS = 5
_RISE_SKIP = 4.0
"""Fewest isolated tails that measure the decay (else the response kernel's decay stays)."""
TAIL_SKIP_RISE_TIMES = 2.0
"""Tails start this many rise time constants after the kernel's peak (the rise has faded)."""


def _tail_decay(
    sample: np.ndarray,
    noise: np.ndarray,
    fs: float,
    detected: Detection,
    detector: tuple[float, float],
    tau_rise: float,
) -> float | None:
    """Decay time constant fitted to the tails of isolated transients, pooled over cells.

    ``detected`` is the activity that the kernel ``detector`` = (tr0, td0) finds at the strict
    threshold (:func:`_detect`). A tail is the
    trace after the last active frame of an event, up to the end of a quiet span of
    :data:`TAIL_DECAY_TIMES` decay times in which nothing else is detected. It starts at a
    fixed lag (each tail's own maximum would be a noise peak and shorten the decay): the
    detection kernel's time to peak plus :data:`TAIL_SKIP_RISE_TIMES` rise time constants,
    where the rise has faded. After its last spike every tail decays with the indicator's own
    time constant, whatever the burst before it, so unlike the average response this is not
    lengthened by bursts. The model is the kernel's shape (``tau_rise`` given) at those lags;
    one decay, with amplitude and offset free per tail (in noise SDs; the offset takes up any
    error of the baseline), is fitted to all tails by a log-grid search. None when fewer than
    :data:`MIN_TAILS` tails are found.
    """
    from calab.kernel import build_kernel

    act, base = detected
    tr0, td0 = detector
    n = sample.shape[1]
    span = int(round(TAIL_DECAY_TIMES * td0 * fs))
    start = (
        1
        + int(np.argmax(build_kernel(tr0, td0, fs)))
        + int(round(TAIL_SKIP_RISE_TIMES * tau_rise * fs))
    )
    if span - start < 4:
        return None
    tails = []
    for i in range(sample.shape[0]):
        idx = np.flatnonzero(act[i] > 0)
        if idx.size == 0 or noise[i] <= 0:
            continue
        gaps = np.diff(np.append(idx, n + span + 1))
        for t in idx[(gaps > span) & (idx + span < n)]:
            tails.append((sample[i, t + start : t + 1 + span] - base[i]) / noise[i])
    if len(tails) < MIN_TAILS:
        return None
    tail = np.stack(tails)  # (n_tails, span + 1 - start), all the same length
    steps = np.arange(start, start + tail.shape[1]) / fs  # s after the last active frame's onset
    tds = np.geomspace(td0 / 5, td0 * 3, 200)[:, None]  # one row per candidate decay
    models = np.exp(-steps / tds) - np.exp(-steps / np.minimum(tau_rise, tds / 1.5))
    # Amplitude and offset per tail in closed form, the error summed over tails.
    err = _line_fit_error(models, tail).sum(axis=1)
    if not np.isfinite(err).any():
        return None
    return float(tds[int(np.argmin(err)), 0])


def _response_taus(
    sample: np.ndarray, noise: np.ndarray, fs: float, detected: Detection, td0: float
) -> tuple[float, float, float] | None:
    """Kernel with the timing of the response to ``detected`` activity (:func:`_detect`).

    ``td0`` (the detection kernel's decay) sets how many lags the response spans.

    Returns (tau_rise, tau_decay, the response one frame after onset / its maximum).
    """
    act, base = detected
    if np.count_nonzero(act > 0) < 10:
        return None
    n = sample.shape[1]
    # The half maximum falls about ln(2) decay times after the peak: 4 decay times suffice.
    n_lags = int(min(math.ceil(min(max(4 * td0, 1.0), 10.0) * fs), n // 2))
    h = _response_kernel(sample - base[:, None], act, 1.0 / noise**2, n_lags)
    timing = _peak_and_fwhm(h, fs)
    if timing is None:
        return None
    return (*_taus_from_timing(*timing), float(h[1] / h.max()))


def _bic(
    traces: np.ndarray,
    fs: float,
    tau_rise: float,
    tau_decay: float,
    noise: np.ndarray,
    warm: np.ndarray | None = None,
) -> tuple[float, np.ndarray]:
    """Bayesian information criterion of the deconvolution with this kernel, summed over rows.

    Gaussian likelihood of the residual, one parameter per active frame:
    ``n log(RSS / n) + log(n) * n_active`` per row. Also returns the activity (a warm start
    for the next kernel's solve; ``warm`` is this one's).
    """
    lam = LAM_NOISE_SDS * noise * lam_scale(tau_rise, tau_decay, fs)
    act, _, fit = _solve_cells(traces, fs, tau_rise, tau_decay, lam, warm)
    n = traces.shape[1]
    rss = np.maximum(np.sum((traces - fit) ** 2, axis=1), 1e-300)
    active = np.count_nonzero(act, axis=1)
    return float(np.sum(n * np.log(rss / n) + math.log(n) * active)), act
