"""Windowed, warm-started solves of the shown cells, packed as float32 min/max buffers."""

from __future__ import annotations

import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from calab._validate import check_finite, positive
from calab.filter import bandpass_filter, filter_cutoffs
from calab.kernel import build_kernel, kernel_timing
from calab.params import Params
from calab.solve import solve_full_unchecked
from calab.tuning.downsample import minmax_downsample
from calab.tuning.state import Settings

logger = logging.getLogger(__name__)

#: Fewer frames than this cannot be tuned meaningfully.
MIN_FRAMES = 8
#: Frames used per cell to rank cells by activity (a contiguous block from the start).
RANK_FRAMES = 30_000
#: Cell-frames per batched solver call of a view: a newer request is checked between batches.
BATCH_CELL_FRAMES = 400_000


#: Either record: the per-cell helpers read only tau_rise, tau_decay, filter_enabled, baseline.
Model = Params | Settings


@dataclass(frozen=True)
class ViewRequest:
    """What the page shows: settings, cells, visible frames ``[start, stop)``, plot width (px)."""

    id: int
    settings: Settings
    cells: tuple[int, ...]
    start: int
    stop: int
    width: int
    pinned: Settings | None = None
    show_truth: bool = False


@dataclass
class CellResult:
    """Outcome for one shown cell: state ``"fresh"`` or ``"error"``, series and metrics."""

    cell: int
    state: str
    error: str | None = None
    series: dict[str, np.ndarray] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class ViewResult:
    """Reply to a :class:`ViewRequest`; ``pack()`` gives a JSON header and one binary buffer."""

    request: ViewRequest
    series_names: list[str]
    n_bins: int
    cells: list[CellResult]
    t_peak_s: float
    fwhm_s: float
    f_hp: float
    f_lp: float
    solve_ms: float
    #: The kernel's shape for the UI's kernel plot (see :func:`kernel_curve`); None on bad params.
    kernel: np.ndarray | None = None

    def pack(self) -> tuple[dict[str, Any], list[bytes]]:
        """Header (small JSON) and buffers: float32, C order, shape in the header.

        The first buffer has shape ``(n_cells, n_series, n_bins, 2)``: min and max per pixel bin.
        Series of a cell in the error state are NaN. A second buffer, when the parameters are
        valid, holds the kernel curve: float32, shape ``(KERNEL_POINTS,)``, sampled evenly over
        ``[0, kernel_t_max_s]`` seconds, peak 1.
        """
        req = self.request
        n_s = len(self.series_names)
        data = np.full((len(self.cells), n_s, self.n_bins, 2), np.nan, dtype=np.float32)
        for i, c in enumerate(self.cells):
            for j, name in enumerate(self.series_names):
                s = c.series.get(name)
                if s is not None:
                    data[i, j] = s
        header = {
            "id": req.id,
            "params": asdict(req.settings),
            "pinned": None if req.pinned is None else asdict(req.pinned),
            "cells": [c.cell for c in self.cells],
            "states": [c.state for c in self.cells],
            "errors": [c.error for c in self.cells],
            "metrics": [c.metrics for c in self.cells],
            "start": req.start,
            "stop": req.stop,
            "series": self.series_names,
            "dtype": "float32",
            "shape": list(data.shape),
            "t_peak_s": self.t_peak_s,
            "fwhm_s": self.fwhm_s,
            "f_hp": self.f_hp,
            "f_lp": self.f_lp,
            "solve_ms": self.solve_ms,
        }
        buffers = [data.tobytes()]
        if self.kernel is not None:
            header["kernel_t_max_s"] = KERNEL_SPAN_DECAYS * req.settings.tau_decay
            buffers.append(self.kernel.astype(np.float32).tobytes())
        return header, buffers


#: Points and span (in decay times) of the kernel curve sent to the UI with each view.
KERNEL_POINTS = 256
KERNEL_SPAN_DECAYS = 5.0


def kernel_curve(tau_rise: float, tau_decay: float) -> np.ndarray:
    """Return the continuous kernel shape ``exp(-t/tau_decay) - exp(-t/tau_rise)``, max 1.

    Sampled at ``KERNEL_POINTS`` even times over ``[0, KERNEL_SPAN_DECAYS * tau_decay]`` seconds,
    the curve whose ``t_peak_s`` and ``fwhm_s`` :func:`calab.kernel.kernel_timing` reports.

    Returns
    -------
    curve : ndarray, shape (KERNEL_POINTS,), float32
    """
    t = np.linspace(0.0, KERNEL_SPAN_DECAYS * tau_decay, KERNEL_POINTS)
    h = np.exp(-t / tau_decay) - np.exp(-t / tau_rise)
    return (h / h.max()).astype(np.float32)


def kernel_length(tau_decay: float, fs: float) -> int:
    """Return the CaTune kernel length in samples: ``max(2, ceil(-ln(1e-6) * tau_decay * fs))``."""
    return max(2, math.ceil(-math.log(1e-6) * tau_decay * fs))


def lambda_max(y: np.ndarray, kernel: np.ndarray) -> float:
    """Smallest lambda at which every cell's activity is zero (see :func:`lambda_max_rows`)."""
    return float(lambda_max_rows(y, kernel).max())


def lambda_max_rows(y: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Smallest lambda at which each cell's activity is zero, shape (n_cells,).

    With ``s = 0`` the optimal baseline is ``mean(y)``; zero is optimal while
    ``K^T (y - mean y) <= lambda * G_dc`` elementwise, so
    ``lambda_max = max_i [K^T (y - mean y)]_i / G_dc`` for each row.

    Parameters
    ----------
    y : ndarray, shape (n_cells, n_frames)
    kernel : ndarray, shape (L,)
    """
    y2 = np.atleast_2d(np.asarray(y, dtype=np.float64))
    r = y2 - y2.mean(axis=1, keepdims=True)
    n, m = r.shape[1], kernel.size
    nfft = 1 << (n + m - 1).bit_length()
    corr = np.fft.irfft(np.fft.rfft(r, nfft, axis=1) * np.conj(np.fft.rfft(kernel, nfft)), nfft)
    return np.asarray(np.maximum(corr[:, :n].max(axis=1), 0.0) / kernel.sum())


def noise_sd(y: np.ndarray) -> np.ndarray:
    """Robust noise standard deviation per row: MAD of first differences / (0.6745 sqrt 2)."""
    d = np.diff(np.atleast_2d(y), axis=-1)
    mad = np.median(np.abs(d - np.median(d, axis=-1, keepdims=True)), axis=-1)
    return np.asarray(mad / (0.6745 * math.sqrt(2.0)))


def activity_snr(y: np.ndarray) -> np.ndarray:
    """(99th percentile - median) / noise sd, per row: how far transients rise above noise."""
    y2 = np.atleast_2d(y)
    p50, p99 = np.percentile(y2, [50, 99], axis=-1)
    sd = noise_sd(y2)
    return np.asarray(np.where(sd > 0, (p99 - p50) / np.where(sd > 0, sd, 1.0), 0.0))


class _LRU(OrderedDict[Any, Any]):
    def __init__(self, size: int):
        super().__init__()
        self.size = size

    def put(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


Solver = Callable[..., Any]


class TuningEngine:
    """Answers view requests for one recording; the recording is never copied or sent whole.

    Parameters
    ----------
    traces : ndarray, shape (n_cells, n_frames) or (n_frames,)
        Fluorescence traces; kept by reference (float32/float64 C-contiguous arrays are not
        copied).
    fs : float
        Sampling rate in Hz.
    truth : ndarray, shape like ``traces``, optional
        Known spikes (simulated data) drawn on demand.
    solver : callable, optional
        Replacement for :func:`calab.run_deconvolution_full` (tests inject failures here).

    Raises
    ------
    ValueError, TypeError
        Bad traces (NaN/Inf, fewer than 8 frames, no cells, not numeric) or a bad ``fs``.
    """

    def __init__(
        self,
        traces: Any,
        fs: float,
        *,
        truth: Any = None,
        solver: Solver | None = None,
    ) -> None:
        self.fs = positive(fs, "fs", "sampling rate in Hz, e.g. 30.0")
        arr = np.asarray(traces)
        if arr.dtype == object or arr.dtype.kind not in "iuf":
            raise TypeError(
                f"traces must hold real numbers, got dtype {arr.dtype}; "
                "convert with np.asarray(traces, dtype=float)"
            )
        if arr.ndim == 1:
            arr = arr[np.newaxis, :]
        if arr.ndim != 2:
            raise ValueError(
                f"traces must be 1-D (n_frames,) or 2-D (n_cells, n_frames), got shape {arr.shape}"
            )
        if arr.shape[0] == 0:
            raise ValueError(f"traces hold no cells (shape {arr.shape}); pass at least one cell")
        if arr.shape[1] < MIN_FRAMES:
            raise ValueError(
                f"traces have {arr.shape[1]} frame(s) per cell (shape {arr.shape}); tuning needs "
                f"at least {MIN_FRAMES}. If cells are columns, pass traces.T"
            )
        dtype = np.float32 if arr.dtype == np.float32 else np.float64
        arr = np.ascontiguousarray(arr, dtype=dtype)
        check_finite(arr, "traces")
        self.traces = arr
        self.truth: np.ndarray | None = None
        if truth is not None:
            t = np.asarray(truth, dtype=np.float64)
            if t.ndim == 1:
                t = t[np.newaxis, :]
            if t.shape != arr.shape:
                raise ValueError(f"truth has shape {t.shape}, traces have shape {arr.shape}")
            self.truth = t
        self._solver: Solver = solver or solve_full_unchecked
        self._filtered: _LRU = _LRU(64)
        self._warm: dict[tuple[int, str], tuple[int, int, np.ndarray]] = {}
        self._pin_cache: _LRU = _LRU(256)
        self._snr: _LRU = _LRU(4096)  # SNR of a window's signal: independent of lambda
        self._overview: _LRU = _LRU(256)
        self._lam_max: _LRU = _LRU(64)
        self._timing: _LRU = _LRU(64)
        self._rank: np.ndarray | None = None
        self._drift: _LRU = _LRU(64)
        self._noise = np.full(self.n_cells, np.nan)

    @property
    def n_cells(self) -> int:
        """Number of cells (rows of ``traces``)."""
        return int(self.traces.shape[0])

    @property
    def n_frames(self) -> int:
        """Number of frames (columns of ``traces``)."""
        return int(self.traces.shape[1])

    # ---- per-cell data -------------------------------------------------------------------
    def signal(self, cell: int, params: Model) -> np.ndarray:
        """Return the trace the solver sees for ``cell``: raw, or band-passed with the filter on."""
        raw = self.traces[cell]
        if not params.filter_enabled:
            return raw
        key = (cell, params.tau_rise, params.tau_decay)
        y = self._filtered.get(key)
        if y is None:
            y = bandpass_filter(raw, params.tau_rise, params.tau_decay, self.fs)
            self._filtered.put(key, y)
        return y

    def drift(self, cell: int, params: Model) -> np.ndarray:
        """Drift baseline (:func:`calab.baseline.drift_baseline`) of the cell's whole signal."""
        from calab.baseline import drift_baseline

        key = (cell, params.filter_enabled) + (
            (params.tau_rise, params.tau_decay) if params.filter_enabled else ()
        )
        d = self._drift.get(key)
        if d is None:
            d = np.asarray(drift_baseline(self.signal(cell, params), self.fs), dtype=np.float64)
            self._drift.put(key, d)
        return d

    def solved_signal(self, cell: int, params: Model) -> np.ndarray:
        """Return what the solver fits with a constant baseline: the signal minus any drift."""
        y = self.signal(cell, params)
        return y - self.drift(cell, params) if params.baseline == "drift" else y

    # ---- noise and per-cell sparsity -----------------------------------------------------
    def set_noise(self, noise: Any, cells: Sequence[int] | np.ndarray | None = None) -> None:
        """Use these noise SDs (e.g. an estimate's ``noise``) for ``cells`` (default all).

        The other cells keep theirs; when ``cells`` is None every cell gets a new value.
        """
        idx = np.arange(self.n_cells) if cells is None else np.asarray(cells, dtype=np.intp)
        arr = np.asarray(noise, dtype=np.float64)
        if arr.shape != idx.shape:
            raise ValueError(f"noise must have shape {idx.shape}, got {arr.shape}")
        if not (np.isfinite(arr).all() and (arr >= 0).all()):
            raise ValueError("noise must hold finite values >= 0 (noise SD per cell)")
        self._noise[idx] = arr
        self._lam_max.clear()  # per-cell units changed
        self._pin_cache.clear()

    def noise(self, cells: Sequence[int] | None = None) -> np.ndarray:
        """Noise SD of each of ``cells`` (all cells when None), shape (len(cells),).

        From the last :meth:`set_noise` (the parameter estimate), else measured on demand by
        :func:`calab.estimate.noise_sd` (power spectrum above fs / 4) and kept.
        """
        from calab.estimate import noise_sd as spectral_noise_sd

        idx = np.arange(self.n_cells) if cells is None else np.asarray(cells, dtype=np.intp)
        todo = idx[np.isnan(self._noise[idx])]
        for k in range(0, todo.size, 256):
            part = todo[k : k + 256]
            self._noise[part] = spectral_noise_sd(self.traces[part], self.fs)
        return np.asarray(self._noise[idx], dtype=np.float64)

    def params(self, settings: Settings, cells: Sequence[int] | None = None) -> Params:
        """Return the checked parameters of ``settings`` for ``cells`` (all cells when None).

        In per-cell mode the lambda has one value per cell of ``cells``, in their order:
        ``lam * noise`` (:meth:`noise`). Raises ValueError/TypeError on bad settings.
        """
        noise = self.noise(cells) if settings.lam_mode == "per_cell" else None
        return settings.to_params(self.fs, noise)

    def padding(self, params: Model) -> int:
        """Frames solved on each side of the visible window: one kernel length."""
        return kernel_length(params.tau_decay, self.fs)

    def segment(self, start: int, stop: int, params: Model) -> tuple[int, int]:
        """Return the padded solve range ``[a, b)`` around the visible frames ``[start, stop)``."""
        pad = self.padding(params)
        return max(0, start - pad), min(self.n_frames, stop + pad)

    def solve_window(
        self, cell: int, settings: Settings, start: int, stop: int, *, slot: str = "current"
    ) -> dict[str, Any]:
        """Solve ``cell`` on the padded window, warm-started; return full-resolution window data.

        Returns
        -------
        dict
            ``y`` (solved signal), ``fit`` (K s + b), ``activity``, ``residual``: arrays of
            shape (stop - start,); ``baseline``, ``iterations``, ``segment`` (a, b).
        """
        return self.solve_block([cell], settings, start, stop, slot=slot)[0]

    def solve_block(
        self,
        cells: Sequence[int],
        settings: Settings,
        start: int,
        stop: int,
        *,
        slot: str = "current",
    ) -> list[dict[str, Any]]:
        """Solve several cells on the same padded window in one solver call (all cores).

        Each cell is warm-started from its previous solution in ``slot`` (where the windows
        overlap; zeros elsewhere). Returns one dict per cell as :meth:`solve_window` does.
        """
        return self._solve_block(cells, self.params(settings, cells), start, stop, slot)

    def _solve_block(
        self, cells: Sequence[int], params: Params, start: int, stop: int, slot: str
    ) -> list[dict[str, Any]]:
        """:meth:`solve_block` with checked parameters (a per-cell lambda in ``cells``' order)."""
        a, b = self.segment(start, stop, params)
        ys = np.stack([self.solved_signal(c, params)[a:b] for c in cells])
        drifts = (
            np.stack([self.drift(c, params)[a:b] for c in cells])
            if params.baseline == "drift"
            else np.zeros((len(cells), 1))
        )
        lam = params.lam_for(len(cells))
        warm = [self._warm_start(c, slot, a, b) for c in cells]
        init: np.ndarray | None = None
        if any(w is not None for w in warm):
            init = np.stack([np.zeros(b - a) if w is None else w for w in warm])
        one = len(cells) == 1
        res = self._solver(
            ys[0] if one else ys,
            self.fs,
            params.tau_rise,
            params.tau_decay,
            lam[0] if one and not isinstance(lam, float) else lam,
            warm_start=init[0] if one and init is not None else init,
            n_threads=1 if one else None,
        )
        acts = np.atleast_2d(np.asarray(res.activity))
        fits = np.atleast_2d(np.asarray(res.reconvolution))
        baselines = np.atleast_1d(np.asarray(res.baseline, dtype=np.float64))
        iterations = np.atleast_1d(np.asarray(res.iterations))
        w = slice(start - a, stop - a)
        out = []
        for i, cell in enumerate(cells):
            self._warm[(cell, slot)] = (a, b, acts[i])
            y = ys[i] + drifts[i]  # the drift is part of the fit
            fit = fits[i] + drifts[i]
            out.append(
                {
                    "y": y[w],
                    "fit": fit[w],
                    "activity": acts[i, w],
                    "residual": y[w] - fit[w],
                    "baseline": float(baselines[i]),
                    "iterations": int(iterations[i]),
                    "segment": (a, b),
                }
            )
        return out

    def solve_cells(
        self,
        cells: Sequence[int],
        params: Params,
        start: int,
        stop: int,
        check: Callable[[], None],
        *,
        slot: str = "current",
    ) -> dict[int, dict[str, Any] | Exception]:
        """Solve ``cells`` in batches of one solver call each; ``check()`` runs between batches.

        ``params`` are :meth:`params` of ``cells`` (a per-cell lambda in their order). A batch
        that fails is solved again cell by cell, so one bad cell does not take the others
        down: its entry is then the exception (logged).
        """
        a, b = self.segment(start, stop, params)
        size = max(2, BATCH_CELL_FRAMES // max(1, b - a))
        out: dict[int, dict[str, Any] | Exception] = {}
        for k in range(0, len(cells), size):
            check()
            batch = list(cells[k : k + size])
            try:
                solved = self._solve_block(
                    batch, params.for_cells(k, k + len(batch)), start, stop, slot
                )
                out.update(zip(batch, solved, strict=True))
                continue
            except Exception as exc:  # noqa: BLE001 - isolated below, cell by cell
                if len(batch) == 1:
                    logger.exception("solve failed for cell %d", batch[0])
                    out[batch[0]] = exc
                    continue
            for i, cell in enumerate(batch, start=k):
                try:
                    one = params.for_cells(i, i + 1)
                    out[cell] = self._solve_block([cell], one, start, stop, slot)[0]
                except Exception as exc:  # noqa: BLE001 - reported on the card and logged
                    logger.exception("solve failed for cell %d", cell)
                    out[cell] = exc
        return out

    def _warm_start(self, cell: int, slot: str, a: int, b: int) -> np.ndarray | None:
        prev = self._warm.get((cell, slot))
        if prev is None:
            return None
        pa, pb, act = prev
        lo, hi = max(a, pa), min(b, pb)
        if hi <= lo:
            return None
        ws = np.zeros(b - a)
        ws[lo - a : hi - a] = act[lo - pa : hi - pa]
        return ws

    # ---- views ---------------------------------------------------------------------------
    def clamp_window(self, start: int, stop: int) -> tuple[int, int]:
        """Keep ``[start, stop)`` inside the recording and at least ``MIN_FRAMES`` long."""
        n = self.n_frames
        span = min(n, max(MIN_FRAMES, int(stop) - int(start)))
        start = min(max(0, int(start)), n - span)
        return start, start + span

    def view(self, req: ViewRequest, check: Callable[[], None] = lambda: None) -> ViewResult:
        """Solve and downsample every shown cell; ``check()`` runs between cells (supersede).

        A failing cell gets state ``"error"`` with the message; the other cells still solve.
        Parameter errors (e.g. tau_rise >= tau_decay) put every cell in the error state.
        """
        t0 = time.perf_counter()
        p = req.settings
        start, stop = self.clamp_window(req.start, req.stop)
        n_bins = min(stop - start, max(1, int(req.width)))
        names = ["raw"]
        if p.filter_enabled:
            names.append("filtered")
        names += ["fit", "activity", "residual"]
        if req.pinned is not None:
            names += ["pin_fit", "pin_activity"]
        if req.show_truth and self.truth is not None:
            names.append("truth")
        valid = [c for c in req.cells if 0 <= c < self.n_cells]
        try:
            params = self.params(p, valid)
            t_peak, fwhm = self.timing(params)
            f_hp, f_lp = filter_cutoffs(params.tau_rise, params.tau_decay, self.fs)
            kernel: np.ndarray | None = kernel_curve(params.tau_rise, params.tau_decay)
        except (ValueError, TypeError) as exc:
            t_peak = fwhm = f_hp = f_lp = float("nan")
            kernel = None
            check()
            cells = [CellResult(cell, "error", str(exc)) for cell in req.cells]
        else:
            cells = self._cell_views(req, valid, params, start, stop, n_bins, check)
        full_req = ViewRequest(
            req.id, p, req.cells, start, stop, req.width, req.pinned, req.show_truth
        )
        return ViewResult(
            full_req,
            names,
            n_bins,
            cells,
            t_peak,
            fwhm,
            f_hp,
            f_lp,
            (time.perf_counter() - t0) * 1e3,
            kernel,
        )

    def _cell_views(
        self,
        req: ViewRequest,
        valid: list[int],
        params: Params,
        start: int,
        stop: int,
        n_bins: int,
        check: Callable[[], None],
    ) -> list[CellResult]:
        """Solve the ``valid`` shown cells (one batched call) and the pinned set, then pack.

        ``params`` are :meth:`params` of the settings for ``valid``.
        """
        sols = self.solve_cells(valid, params, start, stop, check)
        pins: dict[int, dict[str, Any] | Exception] = {}
        todo = []
        for c in valid if req.pinned is not None else ():
            hit = self._pin_cache.get((c, req.pinned, start, stop))
            if hit is None:
                todo.append(c)
            else:
                pins[c] = hit
        if todo and req.pinned is not None:
            try:
                pin_p = self.params(req.pinned, todo)
            except (ValueError, TypeError) as exc:
                pins.update(dict.fromkeys(todo, exc))
            else:
                fresh = self.solve_cells(todo, pin_p, start, stop, check, slot="pin")
                for c, pin in fresh.items():
                    if not isinstance(pin, Exception):
                        self._pin_cache.put((c, req.pinned, start, stop), pin)
                pins.update(fresh)
        out = []
        for cell in req.cells:
            sol = sols.get(cell)
            if sol is None:
                err: Exception = IndexError(f"cell {cell} out of range 0..{self.n_cells - 1}")
            elif isinstance(sol, Exception):
                err = sol
            elif isinstance(pins.get(cell), Exception):
                err = pins[cell]  # type: ignore[assignment]
            else:
                out.append(self._cell_view(cell, req, start, stop, n_bins, sol, pins.get(cell)))
                continue
            out.append(CellResult(cell, "error", f"{type(err).__name__}: {err}"))
        return out

    def _cell_view(
        self,
        cell: int,
        req: ViewRequest,
        start: int,
        stop: int,
        n_bins: int,
        sol: dict[str, Any],
        pin: dict[str, Any] | Exception | None,
    ) -> CellResult:
        p = req.settings
        raw = np.asarray(self.traces[cell, start:stop], dtype=np.float64)
        series: dict[str, np.ndarray] = {"raw": minmax_downsample(raw, n_bins)}
        offset = float(self.traces[cell].mean()) if p.filter_enabled else 0.0
        if p.filter_enabled:
            series["filtered"] = minmax_downsample(sol["y"] + offset, n_bins)
        series["fit"] = minmax_downsample(sol["fit"] + offset, n_bins)
        series["activity"] = minmax_downsample(sol["activity"], n_bins)
        series["residual"] = minmax_downsample(sol["residual"], n_bins)
        if req.pinned is not None and isinstance(pin, dict):
            pin_off = float(self.traces[cell].mean()) if req.pinned.filter_enabled else 0.0
            series["pin_fit"] = minmax_downsample(pin["fit"] + pin_off, n_bins)
            series["pin_activity"] = minmax_downsample(pin["activity"], n_bins)
        if req.show_truth and self.truth is not None:
            series["truth"] = minmax_downsample(self.truth[cell, start:stop], n_bins)
        y, resid, act = sol["y"], sol["residual"], sol["activity"]
        ss_tot = float(np.sum((y - y.mean()) ** 2))
        r2 = 1.0 - float(np.sum(resid**2)) / ss_tot if ss_tot > 0 else 0.0
        peak = float(act.max()) if act.size else 0.0
        sparsity = float(np.mean(act <= 1e-9 * max(peak, 1e-300)))
        snr_key = (cell, start, stop, p.filter_enabled) + (
            (p.tau_rise, p.tau_decay) if p.filter_enabled else ()
        )
        snr = self._snr.get(snr_key)
        if snr is None:
            snr = float(activity_snr(y)[0])
            self._snr.put(snr_key, snr)
        metrics = {
            "snr": snr,
            "r2": r2,
            "sparsity": sparsity,
            "baseline": sol["baseline"],
            "iterations": float(sol["iterations"]),
        }
        return CellResult(cell, "fresh", None, series, metrics)

    # ---- cached helpers ------------------------------------------------------------------
    def timing(self, p: Params) -> tuple[float, float]:
        """Return the kernel's ``(t_peak_s, fwhm_s)`` for ``p``'s time constants (cached)."""
        key = (p.tau_rise, p.tau_decay)
        t = self._timing.get(key)
        if t is None:
            t = kernel_timing(p.tau_rise, p.tau_decay, self.fs)
            self._timing.put(key, t)
        return t

    def overview(self, cells: Sequence[int], width: int) -> np.ndarray:
        """Whole-trace min/max overview per cell: float32, shape (n_cells, n_bins, 2)."""
        n_bins = min(self.n_frames, max(1, int(width)))
        out = np.empty((len(cells), n_bins, 2), dtype=np.float32)
        for i, c in enumerate(cells):
            key = (c, n_bins)
            o = self._overview.get(key)
            if o is None:
                o = minmax_downsample(self.traces[c], n_bins)
                self._overview.put(key, o)
            out[i] = o
        return out

    def lambda_max(self, cells: Sequence[int], settings: Settings) -> float:
        """Lambda that zeroes all activity of ``cells`` with the settings' kernel (module fn).

        In the settings' units: a penalty (global mode) or noise SDs (per-cell mode). Raises
        ValueError/TypeError on bad settings.
        """
        p = settings
        key = (tuple(cells), p.tau_rise, p.tau_decay, p.filter_enabled, p.baseline, p.lam_mode)
        v = self._lam_max.get(key)
        if v is None:
            q = self.params(settings, cells)
            y = np.stack([self.solved_signal(c, q) for c in cells])
            rows = lambda_max_rows(y, build_kernel(q.tau_rise, q.tau_decay, self.fs))
            if p.lam_mode == "per_cell":
                sd = self.noise(cells)
                rows = np.where(sd > 0, rows / np.where(sd > 0, sd, 1.0), 0.0)
            v = float(rows.max())
            self._lam_max.put(key, v)
        return v

    def most_active(self) -> np.ndarray:
        """Cell indices ordered by :func:`activity_snr` (first block of frames), highest first."""
        if self._rank is None:
            block = self.traces[:, : min(self.n_frames, RANK_FRAMES)]
            scores = np.concatenate(
                [activity_snr(block[i : i + 256]) for i in range(0, self.n_cells, 256)]
            )
            self._rank = np.argsort(-scores, kind="stable")
        return self._rank

    def spectrum(self, cell: int, settings: Settings, n_fft: int = 1024) -> dict[str, Any]:
        """Welch power spectrum (Hann, 50% overlap) of the cell's raw trace, with filter cut-offs.

        Returns
        -------
        dict
            ``freqs`` (Hz) and ``power`` (float32 arrays, shape (n_fft // 2 + 1,) or less),
            ``f_hp``, ``f_lp`` (Hz).

        Raises
        ------
        ValueError, TypeError
            Bad settings (e.g. tau_rise >= tau_decay).
        """
        p = self.params(settings, [cell])
        x = np.asarray(self.traces[cell], dtype=np.float64)
        x = x - x.mean()
        nseg = min(n_fft, x.size)
        win = np.hanning(nseg)
        step = max(1, nseg // 2)
        starts = range(0, x.size - nseg + 1, step)
        # At most 64 segments: enough averaging, bounded cost on 100,000-frame traces.
        starts_l = list(starts)
        if len(starts_l) > 64:
            idx = np.linspace(0, len(starts_l) - 1, 64).astype(int)
            starts_l = [starts_l[i] for i in idx]
        segs = np.stack([x[s : s + nseg] * win for s in starts_l])
        power = (np.abs(np.fft.rfft(segs, axis=1)) ** 2).mean(axis=0) / (self.fs * (win**2).sum())
        freqs = np.fft.rfftfreq(nseg, 1.0 / self.fs)
        f_hp, f_lp = filter_cutoffs(p.tau_rise, p.tau_decay, self.fs)
        return {
            "freqs": freqs.astype(np.float32),
            "power": power.astype(np.float32),
            "f_hp": f_hp,
            "f_lp": f_lp,
        }
