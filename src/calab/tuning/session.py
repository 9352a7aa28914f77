"""One tuning session: the page's state, its rules, and the messages it gets back.

The notebook widget (traitlets <-> :class:`TuningSession`) and the browser bridge
(HTTP <-> :class:`TuningSession`) are thin adapters around this class. Both therefore accept the
same values (the table in :mod:`calab.tuning.state`), choose cells the same way, and answer
with the same messages: a header dict plus binary float32 buffers. Views are solved by one
:class:`~calab.tuning.scheduler.LatestOnly` worker: the newest request wins and an older one
stops at its next check (between solver batches).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np

from calab import _protocol as P
from calab.params import Params
from calab.tuning.engine import TuningEngine, ViewRequest, ViewResult
from calab.tuning.scheduler import LatestOnly, Superseded
from calab.tuning.state import MAX_SHOWN, Recording, Settings, validate_changes

logger = logging.getLogger(__name__)

Message = tuple[dict[str, Any], list[bytes]]
#: Receives the messages a request produced (a view, or "superseded"), once per request.
Deliver = Callable[[list[Message]], None]
#: Makes the reply to the page's Export button from the export JSON.
OnExport = Callable[[dict[str, Any]], dict[str, Any]]
#: Receives state changes the session made on its own, outside a request (Auto).
OnState = Callable[[dict[str, Any]], None]
#: Estimates parameters from traces and fs (:func:`calab.estimate_parameters`).
Estimator = Callable[[Any, float], Any]

#: Auto sends progress messages once the estimate has run this long (seconds), then this often.
AUTO_PROGRESS_AFTER_S = 0.3
AUTO_PROGRESS_EVERY_S = 0.5
#: The estimate a session starts from reads at most this many cells and the first
#: ``max(START_FRAMES, START_SECONDS * fs)`` frames, so a big recording opens quickly
#: (Auto reads the whole recording).
START_SAMPLE_CELLS = 128
START_FRAMES = 30_000
START_SECONDS = 120.0
#: Defaults when neither the caller nor an estimate gives the kernel.
DEFAULT_TAU_RISE = 0.05
DEFAULT_TAU_DECAY = 0.5

SUPERSEDED: Message = ({"type": P.MSG_SUPERSEDED}, [])


def first_window(engine: TuningEngine) -> tuple[int, int]:
    """Return the frames shown first: 30 s (at least 64 frames), or the whole recording."""
    return 0, min(engine.n_frames, max(64, round(30 * engine.fs)))


def choose_cells(engine: TuningEngine, mode: str, n_shown: int, seed: int) -> list[int]:
    """Cells to show: the most active ones, or a seeded random draw."""
    k = max(1, min(int(n_shown), engine.n_cells))
    if mode == "random":
        rng = np.random.default_rng(seed)
        return sorted(int(c) for c in rng.choice(engine.n_cells, k, replace=False))
    return [int(c) for c in engine.most_active()[:k]]


def export_for(
    engine: TuningEngine, p: Params, metadata: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Return the CaTune export JSON for parameters ``p`` tuned on ``engine``'s recording.

    ``p`` as :meth:`TuningEngine.params` gives them for all cells: a per-cell lambda is
    recorded as ``calab.lambda_per_cell`` (``parameters.lambda`` is their median), a drift
    baseline as ``calab.baseline`` (see :mod:`calab.io.export`).
    """
    from calab.io.export import export_dict

    meta: dict[str, Any] = {"num_cells": engine.n_cells, "num_timepoints": engine.n_frames}
    meta.update(metadata or {})
    return export_dict(
        tau_rise=p.tau_rise,
        tau_decay=p.tau_decay,
        lam=p.lam,
        fs=p.fs,
        filter_enabled=p.filter_enabled,
        metadata=meta,
        baseline=p.baseline,
    )


def start_sample(engine: TuningEngine, n_shown: int) -> np.ndarray:
    """Return the cells the start estimate reads.

    All of them, or about :data:`START_SAMPLE_CELLS` (the ``n_shown`` cells shown first plus
    evenly spaced ones), so a big recording opens quickly.
    """
    n = engine.n_cells
    if n <= START_SAMPLE_CELLS:
        return np.arange(n)
    shown = engine.most_active()[: min(n_shown, MAX_SHOWN)]
    spaced = np.linspace(0, n - 1, START_SAMPLE_CELLS).round().astype(np.intp)
    return np.unique(np.concatenate([shown, spaced]))


def estimate_changes(est: Any) -> dict[str, Any]:
    """State changes that put the sliders on an estimate (per-cell mode, its baseline).

    The sparsity slider gets the estimate's lambda in noise SDs (``lam / noise``, the same for
    every cell with noise), so each cell's penalty is the estimate's ``lam[cell]``.
    """
    tr = float(np.median(np.asarray(est.tau_rise, dtype=np.float64)))
    td = float(np.median(np.asarray(est.tau_decay, dtype=np.float64)))
    lam = np.atleast_1d(np.asarray(est.lam, dtype=np.float64))
    noise = np.atleast_1d(np.asarray(est.noise, dtype=np.float64))
    if lam.shape != noise.shape or lam.ndim != 1:
        raise ValueError(
            f"the estimate has lam of shape {lam.shape} and noise of shape {noise.shape}; "
            "expected one value per cell in each"
        )
    ok = noise > 0
    k = float(np.median(lam[ok] / noise[ok])) if ok.any() else float(est.params["lambda_"])
    return {
        "tau_rise": tr,
        "tau_decay": td,
        "lam": k,
        "lam_mode": "per_cell",
        "baseline": str(est.baseline),
    }


def settings_of(state: Mapping[str, Any]) -> Settings:
    """Return the slider settings of a state mapping (each value checked, not yet together)."""
    return Settings(
        float(state["tau_rise"]),
        float(state["tau_decay"]),
        float(state["lam"]),
        bool(state["filter_enabled"]),
        str(state.get("lam_mode", "global")),
        str(state.get("baseline", "constant")),
    )


def make_request(state: Mapping[str, Any]) -> ViewRequest:
    """Return the view request for a (validated) state mapping."""
    pin = state.get("pinned")
    return ViewRequest(
        id=int(state["request_id"]),
        settings=settings_of(state),
        cells=tuple(int(c) for c in state["cells"]),
        start=int(state["window_start"]),
        stop=int(state["window_stop"]),
        width=max(1, int(state["plot_width"])),
        pinned=None if not pin else Settings(**pin),
        show_truth=bool(state.get("show_truth", False)),
    )


def overview_message(engine: TuningEngine, cells: Sequence[int], width: int) -> Message:
    """Min/max overview of the whole trace of each shown cell."""
    data = engine.overview(cells, width)
    header = {
        "type": P.MSG_OVERVIEW,
        "cells": list(cells),
        "shape": list(data.shape),
        "n_frames": engine.n_frames,
    }
    return header, [data.tobytes()]


def view_message(
    engine: TuningEngine, req: ViewRequest, check: Callable[[], None]
) -> tuple[dict[str, Any], list[bytes], ViewResult]:
    """Solve and pack the visible window; ``check`` raises when a newer request waits."""
    result = engine.view(req, check)
    try:
        lam_max = engine.lambda_max(req.cells, req.settings) if req.cells else math.nan
    except (ValueError, TypeError):
        lam_max = math.nan
    header, buffers = result.pack()
    header.update(type=P.MSG_VIEW, lam_max=lam_max, fs=engine.fs, n_frames=engine.n_frames)
    return header, buffers, result


def spectrum_message(engine: TuningEngine, cell: int, settings: Settings) -> Message:
    """Power spectrum of one cell with the filter cut-offs."""
    spec = engine.spectrum(cell, settings)
    header = {
        "type": P.MSG_SPECTRUM,
        "cell": cell,
        "f_hp": spec["f_hp"],
        "f_lp": spec["f_lp"],
        "n": int(spec["freqs"].size),
    }
    return header, [spec["freqs"].tobytes(), spec["power"].tobytes()]


@dataclass(frozen=True)
class StartValues:
    """The start values a tuning page is opened with, as ``TuneWidget`` and ``calab.tune`` take.

    The fields are in the order of those public signatures; None leaves the value to the
    session (from :func:`calab.estimate_parameters`, else the defaults). Built once by each
    front end and handed on with :meth:`keywords`.

    Attributes
    ----------
    tau_rise, tau_decay : float or None
        Kernel rise and decay times in seconds.
    lam : float or None
        Sparsity: a penalty, or noise SDs per cell when ``lam_mode="per_cell"``.
    lam_mode : {"global", "per_cell"} or None
    baseline : {"constant", "drift"} or None
    filter_enabled : bool
        Start with the band-pass noise filter on.
    """

    tau_rise: float | None = None
    tau_decay: float | None = None
    lam: float | None = None
    lam_mode: str | None = None
    baseline: str | None = None
    filter_enabled: bool = False

    def keywords(self) -> dict[str, Any]:
        """Return the values as keyword arguments of :class:`TuningSession`."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class _Job:
    """One view to solve. Equal jobs (same request) are solved once."""

    request: ViewRequest
    overview: bool = False
    deliver: Deliver | None = field(default=None, compare=False)


class TuningSession:
    """State, rules and solves of one tuning page, whatever carries the messages.

    Parameters
    ----------
    engine : TuningEngine
        The recording and its solver.
    tau_rise, tau_decay : float, optional
        Start kernel rise and decay times in seconds.
    lam : float, optional
        Start sparsity: a penalty (``lam_mode="global"``) or noise SDs per cell
        (``"per_cell"``); default 1 % of the value that zeroes all activity of the cells shown
        first. When none of ``tau_rise``, ``tau_decay``, ``lam`` is given, the session starts
        from :func:`calab.estimate_parameters` (per-cell mode, the estimate's baseline); when
        the recording is too short to estimate, from 0.05 s / 0.5 s and the default lambda.
    lam_mode : {"global", "per_cell"}, optional
        What ``lam`` means (default "global", or "per_cell" when starting from the estimate).
    baseline : {"constant", "drift"}, optional
        Baseline of the model (default "constant", or the estimate's).
    filter_enabled : bool
        Start with the band-pass noise filter on.
    n_shown : int
        Cards shown (most active cells first); at most the number of cells.
    columns : int
        Columns of the card grid (at most ``n_shown``).
    emit : callable, optional
        Default destination of view messages (the widget's ``send``); a request can name its
        own (the bridge's HTTP reply).
    on_export : callable, optional
        Turns the export JSON into the reply to the page's Export button.
    on_state : callable, optional
        Receives the state changes Auto made (the widget mirrors them into its traitlets).
    metadata : mapping, optional
        Extra metadata fields of the export JSON (e.g. ``source_filename``).
    threaded : bool
        Solve on a worker thread (the newest request wins); False solves inside each change.
    estimator : callable, optional
        ``estimator(traces, fs)`` replacing :func:`calab.estimate_parameters` (tests).

    Raises
    ------
    ValueError, TypeError
        A start value of the wrong type or out of range (names the argument).
    """

    def __init__(
        self,
        engine: TuningEngine,
        *,
        tau_rise: Any = None,
        tau_decay: Any = None,
        lam: Any = None,
        lam_mode: Any = None,
        baseline: Any = None,
        filter_enabled: Any = False,
        n_shown: Any = 4,
        columns: Any = 2,
        emit: Deliver | None = None,
        on_export: OnExport | None = None,
        on_state: OnState | None = None,
        metadata: Mapping[str, Any] | None = None,
        threaded: bool = True,
        estimator: Estimator | None = None,
    ) -> None:
        self.engine = engine
        self.metadata = dict(metadata or {})
        self.recording = Recording(engine.fs, engine.n_cells, engine.n_frames)
        self._estimator = estimator
        #: The last parameter estimate (Auto: of every cell; the start: of
        #: :func:`start_sample`'s cells, listed in ``estimate_cells``), or None.
        self.estimate: Any = None
        self.estimate_cells: np.ndarray | None = None
        start: dict[str, Any] = {"filter_enabled": filter_enabled}
        start.update(n_shown=n_shown, columns=columns)
        for key, value in (
            ("tau_rise", tau_rise),
            ("tau_decay", tau_decay),
            ("lam", lam),
            ("lam_mode", lam_mode),
            ("baseline", baseline),
        ):
            if value is not None:
                start[key] = value
        given = validate_changes(start, self.recording)
        if tau_rise is None and tau_decay is None and lam is None:
            est = self._start_estimate(given["n_shown"])
            if est is not None:
                auto = estimate_changes(est)
                if lam_mode is not None and given["lam_mode"] == "global":
                    auto.update(lam=float(est.params["lambda_"]), lam_mode="global")
                if baseline is not None:
                    auto.pop("baseline")
                given.update(validate_changes(auto, self.recording))
        given.setdefault("tau_rise", DEFAULT_TAU_RISE)
        given.setdefault("tau_decay", DEFAULT_TAU_DECAY)
        given.setdefault("lam_mode", "global")
        given.setdefault("baseline", "constant")
        n_show = min(given["n_shown"], engine.n_cells)
        cells = choose_cells(engine, "active", n_show, 0)
        settings = settings_of({**given, "lam": 0.0})
        engine.params(settings, cells)  # the start values, checked together
        if "lam" not in given:
            given["lam"] = 0.01 * engine.lambda_max(cells, settings)
        stop = first_window(engine)[1]
        self.state: dict[str, Any] = {
            "tau_rise": given["tau_rise"],
            "tau_decay": given["tau_decay"],
            "lam": given["lam"],
            "filter_enabled": given["filter_enabled"],
            "cells": cells,
            "cell_mode": "active",
            "n_shown": n_show,
            "columns": min(given["columns"], n_show),
            "seed": 0,
            "window_start": 0,
            "window_stop": stop,
            "plot_width": 600,
            "request_id": 0,
            "pinned": None,
            "show_truth": False,
            "selected_cell": -1,
            "lam_mode": given["lam_mode"],
            "baseline": given["baseline"],
        }
        self._lock = threading.RLock()
        self._emit = emit
        self._on_export = on_export
        self._on_state = on_state
        self._overview_sent: tuple[tuple[int, ...], int] | None = None
        self.last_view: ViewResult | None = None
        self._auto_thread: threading.Thread | None = None
        self._auto_status: dict[str, Any] = {"type": P.MSG_AUTO_PROGRESS, "running": False}
        self._closed = False
        self._scheduler: LatestOnly[_Job] = LatestOnly(
            self._run, threaded=threaded, on_drop=self._dropped
        )

    def _estimate(self, cells: np.ndarray | None = None, frames: int | None = None) -> Any:
        """Run the estimator on the recording (or ``cells`` and the first ``frames`` of it).

        Keeps its noise per cell.
        """
        traces = self.engine.traces if cells is None else self.engine.traces[cells]
        if frames is not None and frames < traces.shape[1]:
            traces = traces[:, :frames]
        if self._estimator is not None:
            est = self._estimator(traces, self.engine.fs)
        else:
            from calab.estimate import estimate_parameters

            est = estimate_parameters(traces, self.engine.fs)
        estimate_changes(est)  # checks the fields before anything is kept
        noise = np.atleast_1d(np.asarray(est.noise, dtype=np.float64))
        if noise.shape != (traces.shape[0],):
            raise ValueError(
                f"the estimate has {noise.size} noise values for {traces.shape[0]} cells"
            )
        self.engine.set_noise(noise, cells)
        self.estimate = est
        self.estimate_cells = np.arange(traces.shape[0]) if cells is None else np.asarray(cells)
        return est

    def _start_estimate(self, n_shown: int) -> Any:
        """Return the estimate to start from, or None (logged) if the recording cannot give one."""
        try:
            frames = max(START_FRAMES, math.ceil(START_SECONDS * self.engine.fs))
            return self._estimate(start_sample(self.engine, n_shown), frames)
        except (ValueError, TypeError) as exc:
            logger.info("calab tuning: starting from default parameters (%s)", exc)
            return None

    # ---- state -----------------------------------------------------------------------------
    @property
    def info(self) -> dict[str, Any]:
        """Read-only facts about the recording the page shows."""
        e = self.engine
        return {
            "fs": e.fs,
            "n_cells": e.n_cells,
            "n_frames": e.n_frames,
            "has_truth": e.truth is not None,
        }

    def snapshot(self) -> dict[str, Any]:
        """Return the whole state (writable keys and read-only facts), as the page starts from."""
        with self._lock:
            return {**self.info, **self.state}

    def validate(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Return a checked copy of ``changes`` (:func:`calab.tuning.state.validate_changes`)."""
        return validate_changes(changes, self.recording)

    def settings(self) -> Settings:
        """Return what the sliders say now (not checked together: see :meth:`params`)."""
        with self._lock:
            return settings_of(self.state)

    def params(self) -> Params:
        """Return the current parameters, checked (:meth:`TuningEngine.params`, all cells)."""
        return self.engine.params(self.settings())

    def cell_lam(self) -> float | np.ndarray:
        """Return the current penalty: one number (global mode) or shape (n_cells,) (per-cell)."""
        lam = self.params().lam
        return lam if isinstance(lam, float) else lam.copy()

    def params_dict(self) -> dict[str, Any]:
        """Return the current parameters as :func:`calab.load_export_params` returns them.

        Per-cell mode adds ``lambda_per_cell`` (list, one penalty per cell) and a drift
        baseline ``baseline="drift"`` (with ``baseline_window_s``).
        """
        from calab.io.export import params_from_export

        return params_from_export(self.export())

    def current_request(self) -> ViewRequest:
        """Return the view request for the current state (what the page shows)."""
        with self._lock:
            return make_request(self.state)

    def apply(self, changes: Mapping[str, Any], deliver: Deliver | None = None) -> dict[str, Any]:
        """Check every change, then store them all and ask for the view they lead to.

        A bad value raises ``ValueError``/``TypeError`` naming its key and nothing is stored.
        A new cell mode, count or seed makes the session choose the cells itself.

        Returns
        -------
        dict
            The changes the session made itself (e.g. ``cells``), for the page to mirror.
        """
        valid = self.validate(changes)
        with self._lock:
            own: dict[str, Any] = {}
            s = self.state
            mode = valid.get("lam_mode", s["lam_mode"])
            if mode != s["lam_mode"] and "lam" not in valid:
                valid["lam"] = own["lam"] = self._convert_lam(mode)
            self.state.update(valid)
            if {"cell_mode", "n_shown", "seed"} & valid.keys() and s["cell_mode"] != "index":
                cells = choose_cells(self.engine, s["cell_mode"], s["n_shown"], s["seed"])
                if cells != s["cells"]:
                    s["cells"] = own["cells"] = cells
            job = _Job(make_request(s), deliver=deliver)
        self._submit(job)
        return own

    def _convert_lam(self, mode: str) -> float:
        """Return the current sparsity in ``mode``'s units (median noise SD of the shown cells)."""
        sd = self.engine.noise(self.state["cells"])
        sd = sd[sd > 0]
        scale = float(np.median(sd)) if sd.size else 1.0
        lam = float(self.state["lam"])
        return lam / scale if mode == "per_cell" else lam * scale

    def handle(self, message: Mapping[str, Any], deliver: Deliver | None = None) -> list[Message]:
        """Answer a message from the page; return the replies that need no solve.

        ``hello`` (the page rendered) returns the state and re-sends overview and view.
        ``get-spectrum`` returns the cell's spectrum; ``export`` returns ``on_export``'s reply.
        ``auto`` starts :meth:`auto` on a thread and returns its first progress message; its
        outcome (``auto-done``, the state changes, the new view) goes to ``deliver`` (the
        bridge's reply) or to ``emit``/``on_state`` (the widget). ``auto-status`` returns the
        latest progress message. When ``deliver`` is given it is called exactly once (with the
        view, or nothing).

        Raises
        ------
        ValueError, TypeError
            Unknown message type or a bad cell index.
        """
        kind = message.get("type") if isinstance(message, Mapping) else None
        if kind == P.MSG_HELLO:
            self._submit(_Job(self.current_request(), True, deliver), force=True)
            return [({"type": P.MSG_STATE, "changes": self.snapshot()}, [])]
        if kind == P.MSG_AUTO:
            return [self.start_auto(deliver)]
        if deliver is not None:
            deliver([])
        if kind == P.MSG_AUTO_STATUS:
            with self._lock:
                return [(dict(self._auto_status), [])]
        if kind == P.MSG_REQ_SPECTRUM:
            cell = message.get("cell")
            if isinstance(cell, bool) or not isinstance(cell, int):
                raise TypeError(f"cell must be an integer cell index, got {cell!r:.40}")
            if not 0 <= cell < self.engine.n_cells:
                raise ValueError(f"cell must be in 0..{self.engine.n_cells - 1}, got {cell}")
            return [spectrum_message(self.engine, cell, self.settings())]
        if kind == P.MSG_EXPORT:
            if self._on_export is None:
                raise ValueError("this session has no export")
            return [(self._on_export(self.export()), [])]
        raise ValueError(f"unknown message type {kind!r:.40}")

    def export(self, metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Return the CaTune export JSON for the current parameters (extra ``metadata`` fields)."""
        return export_for(self.engine, self.params(), {**self.metadata, **(metadata or {})})

    # ---- Auto ----------------------------------------------------------------------------
    def start_auto(self, deliver: Deliver | None = None) -> Message:
        """Start :meth:`auto` on a thread (one at a time); return the progress message now."""
        with self._lock:
            running = self._auto_thread is not None and self._auto_thread.is_alive()
            if running or self._closed:
                if deliver is not None:
                    deliver([])
                status = dict(self._auto_status)
                if self._closed:
                    status.update(running=False, message="the session is closed")
                return status, []
            self._auto_status = self._progress(0.0, "estimating parameters")
            thread = threading.Thread(
                target=self.auto, kwargs={"deliver": deliver}, name="calab-auto", daemon=True
            )
            self._auto_thread = thread
            status = dict(self._auto_status)
        thread.start()
        return status, []

    def _progress(self, elapsed: float, message: str, running: bool = True) -> dict[str, Any]:
        e = self.engine
        return {
            "type": P.MSG_AUTO_PROGRESS,
            "running": running,
            "elapsed_s": round(elapsed, 3),
            "message": f"{message} ({e.n_cells} cells x {e.n_frames} frames)",
        }

    def auto(self, deliver: Deliver | None = None) -> dict[str, Any]:
        """Estimate the parameters from the recording, then move the sliders to them.

        Progress messages (``auto-progress``) go to ``emit`` while the estimate takes longer
        than :data:`AUTO_PROGRESS_AFTER_S`. Then ``auto-done`` with the changes (or the error:
        the state is then unchanged) and the view of the new state go to ``deliver`` (or
        ``emit``, with the changes to ``on_state``). Never raises.

        Returns
        -------
        dict
            The state changes made (empty on error).
        """
        done = threading.Event()
        t0 = time.monotonic()

        def tick() -> None:
            wait = AUTO_PROGRESS_AFTER_S
            while not done.wait(wait):
                msg = self._progress(time.monotonic() - t0, "estimating parameters")
                with self._lock:
                    if done.is_set():
                        return
                    self._auto_status = msg
                self._send([(msg, [])])
                wait = AUTO_PROGRESS_EVERY_S

        ticker = threading.Thread(target=tick, name="calab-auto-progress", daemon=True)
        ticker.start()
        changes: dict[str, Any] = {}
        error: str | None = None
        try:
            est = self._estimate()
            changes = validate_changes(estimate_changes(est), self.recording)
        except Exception as exc:  # noqa: BLE001 - shown on the page, the session goes on
            logger.warning("calab tuning: Auto failed: %s", exc)
            error = f"{type(exc).__name__}: {exc}"
        finally:
            with self._lock:
                done.set()
        ticker.join()
        elapsed = time.monotonic() - t0
        with self._lock:
            self._auto_status = self._progress(elapsed, "done", running=False)
        if error is not None:
            reply: Message = ({"type": P.MSG_AUTO_DONE, "error": error}, [])
            if deliver is not None:
                deliver([reply])
            else:
                self._send([reply])
            return {}
        summary = {
            "tau_rise": float(np.median(np.asarray(est.tau_rise))),
            "tau_decay": float(np.median(np.asarray(est.tau_decay))),
            "lambda_": float(est.params["lambda_"]),
            "baseline": str(est.baseline),
            "n_no_transients": int(np.count_nonzero(est.no_transients)),
            "elapsed_s": round(elapsed, 3),
        }
        quality = getattr(est, "quality", None)
        if quality is not None:  # the page's verdict badge
            summary["verdict"] = quality.to_dict()
        head: list[Message] = [
            ({"type": P.MSG_AUTO_DONE, "changes": changes, "estimate": summary}, []),
            ({"type": P.MSG_STATE, "changes": changes}, []),
        ]
        with self._lock:
            if self._closed:  # the page went away while estimating: nothing to move
                if deliver is not None:
                    deliver([])
                return {}
            self.state.update(changes)
            job = _Job(
                make_request(self.state),
                deliver=None if deliver is None else (lambda msgs: deliver(head + msgs)),
            )
        if deliver is None:
            if self._on_state is not None:
                self._on_state(dict(changes))
            self._send(head)
        self._submit(job)
        return dict(changes)

    def _send(self, messages: list[Message]) -> None:
        if self._emit is not None:
            self._emit(messages)

    def wait_auto(self, timeout: float = 60.0) -> bool:
        """Block until a running Auto has finished (its view may still be solving)."""
        with self._lock:
            thread = self._auto_thread
        if thread is not None:
            thread.join(timeout)
            return not thread.is_alive()
        return True

    # ---- solving ---------------------------------------------------------------------------
    def _submit(self, job: _Job, force: bool = False) -> None:
        queued = self._scheduler.resubmit(job) if force else self._scheduler.submit(job)
        if not queued and job.deliver is not None:
            job.deliver([])  # the same view as the last request (or closed): nothing to send

    def _run(self, job: _Job, check: Callable[[], None]) -> None:
        try:
            self._solve(job, check)
        except Superseded:
            raise
        except Exception as exc:
            if job.deliver is not None:  # the page must not wait for an answer that never comes
                job.deliver([({"type": P.MSG_SUPERSEDED, "error": str(exc)}, [])])
            raise

    def _solve(self, job: _Job, check: Callable[[], None]) -> None:
        req = job.request
        key = (req.cells, req.width)
        messages: list[Message] = []
        overview = job.overview or key != self._overview_sent
        if overview:
            messages.append(overview_message(self.engine, req.cells, req.width))
        header, buffers, result = view_message(self.engine, req, check)
        check()  # a newer request is waiting: its answer replaces this one
        messages.append((header, buffers))
        self.last_view = result
        if overview:
            self._overview_sent = key
        self._deliver(job, messages)

    def _dropped(self, job: _Job) -> None:
        if job.deliver is not None:
            job.deliver([SUPERSEDED])

    def _deliver(self, job: _Job, messages: list[Message]) -> None:
        target = job.deliver or self._emit
        if target is not None:
            target(messages)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until the pending solve (if any) has been answered; False on timeout."""
        return self._scheduler.wait_idle(timeout)

    def close(self, *, join: bool = False) -> None:
        """Stop the solver worker (requests still waiting are answered "superseded")."""
        with self._lock:
            self._closed = True
        self._scheduler.close(join=join)


class Reply:
    """A one-shot box for the messages of one request (the bridge waits on it)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._messages: list[Message] = []

    def put(self, messages: list[Message]) -> None:
        """Deliver the messages (the first delivery wins)."""
        if not self._event.is_set():
            self._messages = list(messages)
            self._event.set()

    def wait(self, timeout: float | None = None) -> list[Message]:
        """Return the delivered messages, or "superseded" when nothing came within ``timeout`` s."""
        if not self._event.wait(timeout):
            return [SUPERSEDED]
        return self._messages
