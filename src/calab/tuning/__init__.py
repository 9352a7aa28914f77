"""Kernel-side tuning engine shared by the notebook widget and the browser bridge.

The engine keeps the recording where it is (in the Python process) and answers view requests:
solve the shown cells on the visible window plus padding in one batched solver call,
warm-started from the previous solution, and return min/max-downsampled float32 buffers sized
to the plot width. :class:`TuningSession` holds the page's state (checked by the table in
:mod:`calab.tuning.state`; its slider values as :class:`Settings`, which resolve to the one
parameter type :class:`calab.params.Params`) and answers its messages; :class:`LatestOnly`
runs its solves on a worker thread where a newer request supersedes an older one. None of them
knows about the transport (anywidget messages or HTTP).
"""

from __future__ import annotations

from calab.tuning.downsample import minmax_downsample
from calab.tuning.engine import (
    CellResult,
    TuningEngine,
    ViewRequest,
    ViewResult,
    lambda_max,
)
from calab.tuning.scheduler import LatestOnly, Superseded
from calab.tuning.session import StartValues, TuningSession
from calab.tuning.state import Settings

__all__ = [
    "CellResult",
    "LatestOnly",
    "Settings",
    "StartValues",
    "Superseded",
    "TuningEngine",
    "TuningSession",
    "ViewRequest",
    "ViewResult",
    "lambda_max",
    "minmax_downsample",
]
