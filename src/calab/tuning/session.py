"""What both homes of the tuning UI do with the page's state, whatever the transport.

The notebook widget (traitlets + anywidget messages) and the browser bridge (HTTP) keep the
same small state (see :data:`calab._protocol.STATE_KEYS`), choose cells the same way, and answer
with the same messages: a header dict plus binary float32 buffers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from calab import _protocol as P
from calab.tuning.engine import Params, TuningEngine, ViewRequest, ViewResult

Message = tuple[dict[str, Any], list[bytes]]


def start_values(
    engine: TuningEngine,
    tau_rise: float,
    tau_decay: float,
    lam: float | None,
    filter_enabled: bool,
    n_show: int,
) -> tuple[Params, list[int]]:
    """Validated start parameters and the first cells shown (the most active ones).

    ``lam=None`` starts at 1 % of the lambda that zeroes all activity of those cells.
    """
    start = Params(float(tau_rise), float(tau_decay), 0.0, bool(filter_enabled))
    start.validated(engine.fs)
    first = [int(c) for c in engine.most_active()[: max(1, min(n_show, engine.n_cells))]]
    if lam is None:
        lam = 0.01 * engine.lambda_max(first, start)
    params = Params(start.tau_rise, start.tau_decay, float(lam), start.filter_enabled)
    return params.validated(engine.fs), first


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


def pinned_params(pinned: Mapping[str, Any] | None) -> Params | None:
    """The pinned parameter set from its JSON form (or None)."""
    if not pinned:
        return None
    return Params(
        float(pinned["tau_rise"]),
        float(pinned["tau_decay"]),
        float(pinned["lam"]),
        bool(pinned.get("filter_enabled", False)),
    )


def make_request(state: Mapping[str, Any]) -> ViewRequest:
    """The view request for a state mapping (traitlet values or the bridge's dict)."""
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
        pinned=pinned_params(state.get("pinned")),
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
