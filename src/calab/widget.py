"""Inline tuning widget for notebooks (JupyterLab, Notebook 7, VS Code), built on anywidget.

The recording stays in the kernel. The page shows a few cells; for each slider position the
kernel solves only those cells on the visible window (plus one kernel length of padding),
warm-started from the previous solution, and sends min/max-downsampled float32 buffers sized to
the plot width. A newer request supersedes an older one (see :mod:`calab.tuning`).
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

try:
    import anywidget
    import traitlets
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "calab.TuneWidget needs anywidget; install it with `pip install 'calab[widget]'` "
        "(or `pip install anywidget`)"
    ) from exc

from calab import _protocol as P
from calab._bundle import missing_bundle_error
from calab.deconvolution import DeconvolutionResult, run_deconvolution_full, squeeze
from calab.filter import bandpass_filter
from calab.tuning import LatestOnly, Params, TuningEngine, ViewRequest, ViewResult
from calab.tuning.session import (
    choose_cells,
    export_for,
    first_window,
    make_request,
    overview_message,
    spectrum_message,
    start_values,
    view_message,
)

logger = logging.getLogger(__name__)

_STATIC = Path(__file__).parent / "static"
_VIEW_KEYS = (
    "tau_rise",
    "tau_decay",
    "lam",
    "filter_enabled",
    "cells",
    "window_start",
    "window_stop",
    "plot_width",
    "request_id",
    "pinned",
    "show_truth",
)


def _bundle(name: str) -> Path | str:
    path = _STATIC / name
    if not path.exists():
        if name.endswith(".css"):
            return ""
        raise missing_bundle_error(path)
    return path


class TuneWidget(anywidget.AnyWidget):
    """Tune deconvolution parameters on live plots; the Rust solver runs in this kernel.

    Parameters
    ----------
    traces : array_like, shape (n_cells, n_frames) or (n_frames,)
        Fluorescence traces. Kept by reference; only what is on screen is sent to the page.
    fs : float
        Sampling rate in Hz.
    tau_rise, tau_decay : float
        Starting kernel rise and decay times in seconds.
    lam : float, optional
        Starting sparsity penalty; default 1 % of the value that zeroes all activity of the
        shown cells.
    filter_enabled : bool
        Start with the band-pass noise filter on.
    truth : array_like, shape like ``traces``, optional
        Known spikes (simulated data), drawn when "show true spikes" is ticked.
    n_shown : int
        Number of cell cards (most active cells first).
    columns : int
        Columns of the card grid.
    threaded : bool
        Solve on a worker thread so a newer request supersedes an older one (default). False
        solves synchronously inside each change (scripts, tests).

    Attributes
    ----------
    tau_rise, tau_decay, lam, filter_enabled
        The current parameters; assigning them moves the sliders.
    params : dict
        ``{'tau_rise', 'tau_decay', 'lambda_', 'fs', 'filter_enabled'}`` as
        :func:`calab.load_export_params` returns.

    Raises
    ------
    ValueError, TypeError
        Bad traces (NaN/Inf, fewer than 8 frames, no cells, non-numeric) or bad ``fs`` /
        parameters, before anything is displayed.
    """

    _esm = _bundle("widget.js")
    _css = _bundle("widget.css")

    tau_rise = traitlets.Float(0.05).tag(sync=True)
    tau_decay = traitlets.Float(0.5).tag(sync=True)
    lam = traitlets.Float(0.01).tag(sync=True)
    filter_enabled = traitlets.Bool(False).tag(sync=True)

    fs = traitlets.Float(30.0).tag(sync=True)
    n_cells = traitlets.Int(0).tag(sync=True)
    n_frames = traitlets.Int(0).tag(sync=True)
    has_truth = traitlets.Bool(False).tag(sync=True)

    cells = traitlets.List(traitlets.Int()).tag(sync=True)
    cell_mode = traitlets.Enum(["active", "random", "index"], "active").tag(sync=True)
    n_shown = traitlets.Int(4).tag(sync=True)
    columns = traitlets.Int(2).tag(sync=True)
    seed = traitlets.Int(0).tag(sync=True)
    selected_cell = traitlets.Int(-1).tag(sync=True)

    window_start = traitlets.Int(0).tag(sync=True)
    window_stop = traitlets.Int(0).tag(sync=True)
    plot_width = traitlets.Int(600).tag(sync=True)
    request_id = traitlets.Int(0).tag(sync=True)
    pinned = traitlets.Dict(allow_none=True, default_value=None).tag(sync=True)
    show_truth = traitlets.Bool(False).tag(sync=True)

    def __init__(
        self,
        traces: Any,
        fs: float = 30.0,
        *,
        tau_rise: float = 0.05,
        tau_decay: float = 0.5,
        lam: float | None = None,
        filter_enabled: bool = False,
        truth: Any = None,
        n_shown: int = 4,
        columns: int = 2,
        threaded: bool = True,
        **kwargs: Any,
    ) -> None:
        # Validate everything before the widget exists, so nothing renders on bad input.
        self._ready = False
        engine = TuningEngine(traces, fs, truth=truth)
        if isinstance(n_shown, bool) or not isinstance(n_shown, int) or n_shown < 1:
            raise ValueError(f"n_shown must be an integer >= 1, got {n_shown!r}")
        n_show = min(n_shown, engine.n_cells)
        start, first = start_values(engine, tau_rise, tau_decay, lam, filter_enabled, n_show)
        _, span = first_window(engine)
        self._engine = engine
        self._was_1d = np.ndim(traces) == 1
        self._overview_sent: tuple[tuple[int, ...], int] | None = None
        self.last_view: ViewResult | None = None
        self._scheduler: LatestOnly[ViewRequest] = LatestOnly(self._handle, threaded=threaded)
        super().__init__(
            tau_rise=start.tau_rise,
            tau_decay=start.tau_decay,
            lam=start.lam,
            filter_enabled=start.filter_enabled,
            fs=engine.fs,
            n_cells=engine.n_cells,
            n_frames=engine.n_frames,
            has_truth=engine.truth is not None,
            cells=first,
            n_shown=n_show,
            columns=max(1, min(int(columns), n_show)),
            window_start=0,
            window_stop=span,
            **kwargs,
        )
        self.on_msg(self._on_msg)
        self._ready = True
        self._submit()

    @classmethod
    def demo(
        cls,
        n_cells: int = 20,
        n_frames: int = 9000,
        fs: float = 30.0,
        *,
        seed: int = 0,
        **kwargs: Any,
    ) -> TuneWidget:
        """A widget on simulated GCaMP6f-like data (true tau 0.05 s / 0.5 s) with ground truth.

        Starts from deliberately wrong time constants (0.1 s / 1.2 s); tick "show true spikes"
        to compare the activity with the simulated spikes.
        """
        from calab.simulate import simulate

        traces, spikes = simulate(n_cells, n_frames, fs, 0.05, 0.5, seed=seed)
        kwargs.setdefault("tau_rise", 0.1)
        kwargs.setdefault("tau_decay", 1.2)
        return cls(traces, fs, truth=spikes, **kwargs)

    # ---- validation of values set from either side ---------------------------------------
    @traitlets.validate("tau_rise", "tau_decay")
    def _check_tau(self, proposal: Any) -> float:
        v = float(proposal["value"])
        name = proposal["trait"].name
        if not math.isfinite(v) or v <= 0:
            raise traitlets.TraitError(f"{name} must be a positive number of seconds, got {v!r}")
        return v

    @traitlets.validate("lam")
    def _check_lam(self, proposal: Any) -> float:
        v = float(proposal["value"])
        if not math.isfinite(v) or v < 0:
            raise traitlets.TraitError(f"lam must be a finite number >= 0, got {v!r}")
        return v

    @traitlets.validate("cells")
    def _check_cells(self, proposal: Any) -> list[int]:
        cells = [int(c) for c in proposal["value"]]
        n = self.n_cells if self._ready else self._engine.n_cells
        bad = [c for c in cells if not 0 <= c < n]
        if bad:
            raise traitlets.TraitError(f"cells {bad} out of range: indices must be 0..{n - 1}")
        return list(dict.fromkeys(cells))

    # ---- reactions -------------------------------------------------------------------------
    @traitlets.observe("cell_mode", "n_shown", "seed")
    def _choose_cells(self, change: Any) -> None:
        if not self._ready or self.cell_mode == "index":
            return
        chosen = choose_cells(self._engine, self.cell_mode, self.n_shown, self.seed)
        self.cells = chosen

    @traitlets.observe(*_VIEW_KEYS)
    def _on_view_change(self, change: Any) -> None:
        if self._ready:
            self._submit()

    def current_request(self) -> ViewRequest:
        """The view request for the current state (what the page shows)."""
        return make_request({k: getattr(self, k) for k in _VIEW_KEYS + ("request_id",)})

    def _submit(self, force: bool = False) -> None:
        req = self.current_request()
        if force:
            self._scheduler.resubmit(req)
        else:
            self._scheduler.submit(req)

    def _handle(self, req: ViewRequest, check: Any) -> None:
        """Worker: overview (when the cells changed), then the solved view."""
        ov_key = (req.cells, req.width)
        if ov_key != self._overview_sent:
            self.send(*overview_message(self._engine, req.cells, req.width))
            self._overview_sent = ov_key
        header, buffers, result = view_message(self._engine, req, check)
        self.last_view = result
        check()  # a newer request is waiting: its answer replaces this one
        self.send(header, buffers)

    def _on_msg(self, _widget: Any, content: Any, buffers: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        try:
            if kind == P.MSG_HELLO:
                self._overview_sent = None
                self._submit(force=True)
            elif kind == P.MSG_REQ_SPECTRUM:
                cell = int(content["cell"])
                params = Params(self.tau_rise, self.tau_decay, self.lam, self.filter_enabled)
                self.send(*spectrum_message(self._engine, cell, params))
            elif kind == P.MSG_EXPORT:
                stamp = _dt.datetime.now().strftime("%Y-%m-%d-%H%M%S")
                path = self.export(f"catune-params-{stamp}.json")
                self.send({"type": P.MSG_EXPORTED, "path": str(path)})
        except Exception as exc:  # noqa: BLE001 - reported to the page, the widget keeps going
            logger.exception("calab widget: message %r failed", kind)
            if kind == P.MSG_EXPORT:
                self.send({"type": P.MSG_EXPORTED, "error": str(exc)})

    # ---- public API ---------------------------------------------------------------------------
    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until the pending solve (if any) has been answered; False on timeout."""
        return self._scheduler.wait_idle(timeout)

    @property
    def lam_max(self) -> float:
        """Lambda at which all activity of the shown cells becomes zero (slider maximum)."""
        return self._engine.lambda_max(tuple(self.cells), self._params())

    def _params(self) -> Params:
        return Params(self.tau_rise, self.tau_decay, self.lam, self.filter_enabled).validated(
            self._engine.fs
        )

    def _export_dict(self, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        return export_for(self._engine, self._params(), metadata)

    @property
    def params(self) -> dict[str, Any]:
        """Current parameters as :func:`calab.load_export_params` returns them."""
        from calab.io.export import params_from_export

        return params_from_export(self._export_dict())

    def export(
        self, path: str | Path, *, force: bool = False, metadata: dict[str, Any] | None = None
    ) -> Path:
        """Write the CaTune export JSON (schema 1.2.0) for the current parameters.

        Parameters
        ----------
        path : str or Path
            Output file; an existing file is kept unless ``force=True``.
        metadata : dict, optional
            Extra metadata fields (e.g. ``source_filename``).
        """
        from calab.io.export import write_export

        return write_export(path, self._export_dict(metadata), force=force)

    def deconvolve(
        self, *, chunk_cells: int = 256, progress: bool = True, **solver_kwargs: Any
    ) -> DeconvolutionResult:
        """Deconvolve the whole recording with the current parameters.

        Band-passes each trace first when the noise filter is on. Runs over chunks of cells
        with a tqdm progress bar.

        Parameters
        ----------
        chunk_cells : int
            Cells per solver call.
        progress : bool
            Show the progress bar.
        **solver_kwargs
            Passed to :func:`calab.run_deconvolution_full` (e.g. ``n_threads``).

        Returns
        -------
        DeconvolutionResult
            Fields with a leading ``n_cells`` axis (1-D/scalars if the traces were 1-D).
        """
        from tqdm.auto import tqdm

        p = self._params()
        traces = self._engine.traces
        n = traces.shape[0]
        parts: list[DeconvolutionResult] = []
        starts = range(0, n, max(1, int(chunk_cells)))
        for a in tqdm(starts, desc="deconvolving", unit="chunk", disable=not progress):
            y = traces[a : a + chunk_cells]
            if p.filter_enabled:
                y = bandpass_filter(y, p.tau_rise, p.tau_decay, self._engine.fs)
            parts.append(
                run_deconvolution_full(
                    y, self._engine.fs, p.tau_rise, p.tau_decay, p.lam, **solver_kwargs
                )
            )
        res = DeconvolutionResult(
            *(np.concatenate([getattr(r, f) for r in parts]) for f in DeconvolutionResult._fields)
        )
        if self._was_1d:
            return squeeze(res)
        return res

    def close(self) -> None:
        """Close the widget and stop its solver thread."""
        scheduler = self.__dict__.get("_scheduler")
        if scheduler is not None:
            scheduler.close()
        if self.__dict__.get("_ready"):  # construction may have failed validation
            super().close()
