"""Kernel-side tuning engine shared by the notebook widget and the browser bridge.

The engine keeps the recording where it is (in the Python process) and answers view requests:
solve the shown cells on the visible window plus padding, warm-started from the previous
solution, and return min/max-downsampled float32 buffers sized to the plot width.
:class:`LatestOnly` runs requests on a worker thread where a newer request supersedes an
older one. Neither knows about the transport (anywidget messages or HTTP).
"""

from __future__ import annotations

from calab.tuning.downsample import minmax_downsample
from calab.tuning.engine import (
    CellResult,
    Params,
    TuningEngine,
    ViewRequest,
    ViewResult,
    lambda_max,
)
from calab.tuning.scheduler import LatestOnly, Superseded

__all__ = [
    "CellResult",
    "LatestOnly",
    "Params",
    "Superseded",
    "TuningEngine",
    "ViewRequest",
    "ViewResult",
    "lambda_max",
    "minmax_downsample",
]
