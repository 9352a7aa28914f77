"""One tuning session behind the browser bridge: the page's state, solves, and the result.

The notebook widget keeps this state in traitlets; here it is a dict updated by HTTP requests.
Each state change is answered synchronously with the messages it produced. Solves run one at a
time; a newer request makes an older solve stop at its next check (between cells) and answer
"superseded", so the page never waits for a slider position the person has already left.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Mapping
from typing import Any

from calab import _protocol as P
from calab.io.export import params_from_export
from calab.tuning import Params, Superseded, TuningEngine
from calab.tuning.session import (
    Message,
    choose_cells,
    export_for,
    first_window,
    make_request,
    overview_message,
    spectrum_message,
    view_message,
)

logger = logging.getLogger(__name__)

#: State the page may change, with the type each value must have.
_WRITABLE: dict[str, type] = {
    "tau_rise": float,
    "tau_decay": float,
    "lam": float,
    "filter_enabled": bool,
    "cells": list,
    "cell_mode": str,
    "n_shown": int,
    "columns": int,
    "seed": int,
    "window_start": int,
    "window_stop": int,
    "plot_width": int,
    "request_id": int,
    "pinned": dict,
    "show_truth": bool,
    "selected_cell": int,
}


class BadRequest(ValueError):
    """A request the server answers with 400 and this message."""


class BridgeSession:
    """State and solver of one ``calab.tune()`` session (see module docs)."""

    def __init__(
        self,
        engine: TuningEngine,
        *,
        tau_rise: float,
        tau_decay: float,
        lam: float,
        filter_enabled: bool,
        n_shown: int = 4,
        columns: int = 2,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self.engine = engine
        self.metadata = dict(metadata or {})
        n_show = max(1, min(int(n_shown), engine.n_cells))
        self.state: dict[str, Any] = {
            "tau_rise": float(tau_rise),
            "tau_decay": float(tau_decay),
            "lam": float(lam),
            "filter_enabled": bool(filter_enabled),
            "fs": engine.fs,
            "n_cells": engine.n_cells,
            "n_frames": engine.n_frames,
            "has_truth": engine.truth is not None,
            "cells": choose_cells(engine, "active", n_show, 0),
            "cell_mode": "active",
            "n_shown": n_show,
            "columns": max(1, min(int(columns), n_show)),
            "seed": 0,
            "selected_cell": -1,
            "window_start": first_window(engine)[0],
            "window_stop": first_window(engine)[1],
            "plot_width": 600,
            "request_id": 0,
            "pinned": None,
            "show_truth": False,
        }
        self._state_lock = threading.Lock()
        self._solve_lock = threading.Lock()
        self._latest = 0  # sequence number of the newest view request
        self._overview_key: tuple[Any, ...] | None = None
        self.result: dict[str, Any] | None = None
        self.export: dict[str, Any] | None = None
        self.done = threading.Event()
        self.first_heartbeat: float | None = None
        self.last_heartbeat: float | None = None

    # ---- state -------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        with self._state_lock:
            return dict(self.state)

    def _validated(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        if not isinstance(changes, Mapping):
            raise BadRequest("'changes' must be a JSON object")
        out: dict[str, Any] = {}
        for key, value in changes.items():
            kind = _WRITABLE.get(key)
            if kind is None:
                raise BadRequest(f"unknown or read-only state key {key!r}")
            if kind is float:
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    raise BadRequest(f"{key} must be a number")
                value = float(value)
                if not math.isfinite(value) or value < 0 or (key != "lam" and value == 0):
                    raise BadRequest(f"{key} out of range: {value!r}")
            elif kind is int:
                if isinstance(value, bool) or not isinstance(value, int):
                    raise BadRequest(f"{key} must be an integer")
            elif kind is bool:
                if not isinstance(value, bool):
                    raise BadRequest(f"{key} must be true or false")
            elif kind is str:
                if value not in ("active", "random", "index"):
                    raise BadRequest(f"{key} must be 'active', 'random' or 'index'")
            elif kind is list:
                if not isinstance(value, list) or not all(
                    isinstance(c, int) and not isinstance(c, bool) for c in value
                ):
                    raise BadRequest(f"{key} must be a list of cell indices")
                bad = [c for c in value if not 0 <= c < self.engine.n_cells]
                if bad or len(value) > 64:
                    raise BadRequest(f"cells out of range or too many: {value[:8]!r}")
                value = list(dict.fromkeys(value))
            elif kind is dict:
                if value is not None and not (
                    isinstance(value, dict)
                    and all(k in value for k in ("tau_rise", "tau_decay", "lam"))
                ):
                    raise BadRequest("pinned must be null or {tau_rise, tau_decay, lam, ...}")
            out[key] = value
        return out

    def apply(self, changes: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
        """Apply the page's changes; return the changes the server made itself and a ticket."""
        valid = self._validated(changes)
        with self._state_lock:
            self.state.update(valid)
            server_changes: dict[str, Any] = {}
            if {"cell_mode", "n_shown", "seed"} & valid.keys() and self.state["cell_mode"] != (
                "index"
            ):
                cells = choose_cells(
                    self.engine, self.state["cell_mode"], self.state["n_shown"], self.state["seed"]
                )
                if cells != self.state["cells"]:
                    self.state["cells"] = cells
                    server_changes["cells"] = cells
            self._latest += 1
            return server_changes, self._latest

    # ---- solving -----------------------------------------------------------------------------
    def view(self, ticket: int, *, force_overview: bool = False) -> list[Message]:
        """Solve the current view, unless a newer request arrives first."""

        def check() -> None:
            if self._latest != ticket or self.done.is_set():
                raise Superseded

        messages: list[Message] = []
        try:
            with self._solve_lock:
                check()
                state = self.snapshot()
                req = make_request(state)
                Params(req.params.tau_rise, req.params.tau_decay, req.params.lam).validated(
                    self.engine.fs
                )
                key = (req.cells, req.width)
                if force_overview or key != self._overview_key:
                    messages.append(overview_message(self.engine, req.cells, req.width))
                    self._overview_key = key
                header, buffers, _ = view_message(self.engine, req, check)
                check()
                messages.append((header, buffers))
        except Superseded:
            messages = [({"type": P.MSG_SUPERSEDED}, [])]
        except (ValueError, TypeError) as exc:
            # Bad parameters (e.g. tau_rise >= tau_decay while dragging): tell the page.
            messages = [({"type": P.MSG_SUPERSEDED, "error": str(exc)}, [])]
        return messages

    def change(self, changes: Mapping[str, Any]) -> list[Message]:
        """POST /api/v1/state: apply changes, answer with the new view."""
        server_changes, ticket = self.apply(changes)
        out: list[Message] = []
        if server_changes:
            out.append(({"type": P.MSG_STATE, "changes": server_changes}, []))
        return out + self.view(ticket)

    def message(self, msg: Mapping[str, Any]) -> list[Message]:
        """POST /api/v1/message: hello, spectrum request, export."""
        kind = msg.get("type") if isinstance(msg, Mapping) else None
        if kind == P.MSG_HELLO:
            with self._state_lock:
                self._latest += 1
                ticket = self._latest
            return [({"type": P.MSG_STATE, "changes": self.snapshot()}, [])] + self.view(
                ticket, force_overview=True
            )
        if kind == P.MSG_REQ_SPECTRUM:
            cell = msg.get("cell")
            if isinstance(cell, bool) or not isinstance(cell, int):
                raise BadRequest("cell must be an integer")
            if not 0 <= cell < self.engine.n_cells:
                raise BadRequest(f"cell {cell} out of range")
            return [spectrum_message(self.engine, cell, self.params_now())]
        if kind == P.MSG_EXPORT:
            self.finish(self.export_now())
            note = "parameters returned to Python; you can close this tab"
            return [({"type": P.MSG_EXPORTED, "message": note}, [])]
        raise BadRequest(f"unknown message type {kind!r}")

    # ---- results -----------------------------------------------------------------------------
    def params_now(self) -> Params:
        s = self.snapshot()
        return Params(s["tau_rise"], s["tau_decay"], s["lam"], s["filter_enabled"]).validated(
            self.engine.fs
        )

    def export_now(self) -> dict[str, Any]:
        return export_for(self.engine, self.params_now(), self.metadata)

    def finish(self, export: Mapping[str, Any]) -> dict[str, Any]:
        """End the session with an export JSON (from our page or a CaTune app)."""
        try:
            params = params_from_export(dict(export), source="the page")
        except (ValueError, TypeError, KeyError) as exc:
            raise BadRequest(f"invalid export JSON: {exc}") from exc
        self.export = dict(export)
        self.result = params
        self.done.set()
        return params

    def heartbeat(self) -> None:
        now = time.monotonic()
        if self.first_heartbeat is None:
            self.first_heartbeat = now
        self.last_heartbeat = now

    def page_gone(self, now: float | None = None) -> bool:
        """True when heartbeats started and then stopped for longer than BRIDGE_GONE_S."""
        if self.last_heartbeat is None:
            return False
        now = time.monotonic() if now is None else now
        return now - self.last_heartbeat > P.BRIDGE_GONE_S
