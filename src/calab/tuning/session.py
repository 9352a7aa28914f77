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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from calab import _protocol as P
from calab.tuning.engine import Params, TuningEngine, ViewRequest, ViewResult
from calab.tuning.scheduler import LatestOnly, Superseded
from calab.tuning.state import Recording, validate_changes

logger = logging.getLogger(__name__)

Message = tuple[dict[str, Any], list[bytes]]
#: Receives the messages a request produced (a view, or "superseded"), once per request.
Deliver = Callable[[list[Message]], None]
#: Makes the reply to the page's Export button from the export JSON.
OnExport = Callable[[dict[str, Any]], dict[str, Any]]

SUPERSEDED: Message = ({"type": P.MSG_SUPERSEDED}, [])


def first_window(engine: TuningEngine) -> tuple[int, int]:
    """The frames shown first: 30 s (at least 64 frames), or the whole recording."""
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
    """The CaTune export JSON for parameters ``p`` tuned on ``engine``'s recording."""
    from calab.io.export import export_dict

    meta: dict[str, Any] = {"num_cells": engine.n_cells, "num_timepoints": engine.n_frames}
    meta.update(metadata or {})
    return export_dict(
        tau_rise=p.tau_rise,
        tau_decay=p.tau_decay,
        lam=p.lam,
        fs=engine.fs,
        filter_enabled=p.filter_enabled,
        metadata=meta,
    )


def make_request(state: Mapping[str, Any]) -> ViewRequest:
    """The view request for a (validated) state mapping."""
    pin = state.get("pinned")
    return ViewRequest(
        id=int(state["request_id"]),
        params=Params(
            float(state["tau_rise"]),
            float(state["tau_decay"]),
            float(state["lam"]),
            bool(state["filter_enabled"]),
        ),
        cells=tuple(int(c) for c in state["cells"]),
        start=int(state["window_start"]),
        stop=int(state["window_stop"]),
        width=max(1, int(state["plot_width"])),
        pinned=None if not pin else Params(**pin),
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
        lam_max = engine.lambda_max(req.cells, req.params) if req.cells else math.nan
    except (ValueError, TypeError):
        lam_max = math.nan
    header, buffers = result.pack()
    header.update(type=P.MSG_VIEW, lam_max=lam_max, fs=engine.fs, n_frames=engine.n_frames)
    return header, buffers, result


def spectrum_message(engine: TuningEngine, cell: int, params: Params) -> Message:
    """Power spectrum of one cell with the filter cut-offs."""
    spec = engine.spectrum(cell, params)
    header = {
        "type": P.MSG_SPECTRUM,
        "cell": cell,
        "f_hp": spec["f_hp"],
        "f_lp": spec["f_lp"],
        "n": int(spec["freqs"].size),
    }
    return header, [spec["freqs"].tobytes(), spec["power"].tobytes()]


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
    tau_rise, tau_decay : float
        Start kernel rise and decay times in seconds.
    lam : float, optional
        Start sparsity penalty; default 1 % of the value that zeroes all activity of the cells
        shown first.
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
    metadata : mapping, optional
        Extra metadata fields of the export JSON (e.g. ``source_filename``).
    threaded : bool
        Solve on a worker thread (the newest request wins); False solves inside each change.

    Raises
    ------
    ValueError, TypeError
        A start value of the wrong type or out of range (names the argument).
    """

    def __init__(
        self,
        engine: TuningEngine,
        *,
        tau_rise: Any = 0.05,
        tau_decay: Any = 0.5,
        lam: Any = None,
        filter_enabled: Any = False,
        n_shown: Any = 4,
        columns: Any = 2,
        emit: Deliver | None = None,
        on_export: OnExport | None = None,
        metadata: Mapping[str, Any] | None = None,
        threaded: bool = True,
    ) -> None:
        self.engine = engine
        self.metadata = dict(metadata or {})
        self.recording = Recording(engine.fs, engine.n_cells, engine.n_frames)
        start = {"tau_rise": tau_rise, "tau_decay": tau_decay, "filter_enabled": filter_enabled}
        start.update(n_shown=n_shown, columns=columns)
        if lam is not None:
            start["lam"] = lam
        given = validate_changes(start, self.recording)
        n_show = min(given["n_shown"], engine.n_cells)
        cells = choose_cells(engine, "active", n_show, 0)
        params = Params(given["tau_rise"], given["tau_decay"], 0.0, given["filter_enabled"])
        params.validated(engine.fs)
        if lam is None:
            given["lam"] = 0.01 * engine.lambda_max(cells, params)
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
        }
        self._lock = threading.RLock()
        self._emit = emit
        self._on_export = on_export
        self._overview_sent: tuple[tuple[int, ...], int] | None = None
        self.last_view: ViewResult | None = None
        self._scheduler: LatestOnly[_Job] = LatestOnly(
            self._run, threaded=threaded, on_drop=self._dropped
        )

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
        """The whole state (writable keys and read-only facts), as the page starts from."""
        with self._lock:
            return {**self.info, **self.state}

    def validate(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Checked copy of ``changes`` (see :func:`calab.tuning.state.validate_changes`)."""
        return validate_changes(changes, self.recording)

    def params(self) -> Params:
        """The current parameters, checked together (tau_rise < tau_decay)."""
        with self._lock:
            s = self.state
            p = Params(s["tau_rise"], s["tau_decay"], s["lam"], s["filter_enabled"])
        return p.validated(self.engine.fs)

    def current_request(self) -> ViewRequest:
        """The view request for the current state (what the page shows)."""
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
            self.state.update(valid)
            own: dict[str, Any] = {}
            s = self.state
            if {"cell_mode", "n_shown", "seed"} & valid.keys() and s["cell_mode"] != "index":
                cells = choose_cells(self.engine, s["cell_mode"], s["n_shown"], s["seed"])
                if cells != s["cells"]:
                    s["cells"] = own["cells"] = cells
            job = _Job(make_request(s), deliver=deliver)
        self._submit(job)
        return own

    def handle(self, message: Mapping[str, Any], deliver: Deliver | None = None) -> list[Message]:
        """Answer a message from the page; return the replies that need no solve.

        ``hello`` (the page rendered) returns the state and re-sends overview and view.
        ``get-spectrum`` returns the cell's spectrum; ``export`` returns ``on_export``'s reply.
        When ``deliver`` is given it is called exactly once (with the view, or nothing).

        Raises
        ------
        ValueError, TypeError
            Unknown message type or a bad cell index.
        """
        kind = message.get("type") if isinstance(message, Mapping) else None
        if kind == P.MSG_HELLO:
            self._submit(_Job(self.current_request(), True, deliver), force=True)
            return [({"type": P.MSG_STATE, "changes": self.snapshot()}, [])]
        if deliver is not None:
            deliver([])
        if kind == P.MSG_REQ_SPECTRUM:
            cell = message.get("cell")
            if isinstance(cell, bool) or not isinstance(cell, int):
                raise TypeError(f"cell must be an integer cell index, got {cell!r:.40}")
            if not 0 <= cell < self.engine.n_cells:
                raise ValueError(f"cell must be in 0..{self.engine.n_cells - 1}, got {cell}")
            return [spectrum_message(self.engine, cell, self.params())]
        if kind == P.MSG_EXPORT:
            if self._on_export is None:
                raise ValueError("this session has no export")
            return [(self._on_export(self.export()), [])]
        raise ValueError(f"unknown message type {kind!r:.40}")

    def export(self, metadata: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The CaTune export JSON for the current parameters (extra ``metadata`` fields)."""
        return export_for(self.engine, self.params(), {**self.metadata, **(metadata or {})})

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
        """The delivered messages, or "superseded" when nothing came within ``timeout`` s."""
        if not self._event.wait(timeout):
            return [SUPERSEDED]
        return self._messages
