"""Inline tuning widget for notebooks (JupyterLab, Notebook 7, VS Code), built on anywidget.

The recording stays in the kernel. The page shows a few cells; for each slider position the
kernel solves only those cells on the visible window (plus one kernel length of padding),
warm-started from the previous solution, and sends min/max-downsampled float32 buffers sized to
the plot width. A newer request supersedes an older one (see :mod:`calab.tuning`).
"""

from __future__ import annotations

import datetime as _dt
import logging
from pathlib import Path
from typing import Any

import numpy as np

try:
    import anywidget
    import traitlets
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "calab.TuneWidget needs anywidget; install it with `pip install anywidget`"
    ) from exc

from calab import _protocol as P
from calab._bundle import missing_bundle_error
from calab._validate import shown
from calab.params import DeconvolutionResult
from calab.solve import squeeze
from calab.tuning import TuningEngine, ViewRequest, ViewResult
from calab.tuning.session import Message, StartValues, TuningSession

logger = logging.getLogger(__name__)

_STATIC = Path(__file__).parent / "static"


class StateValueError(traitlets.TraitError, ValueError):
    """A value out of range for a widget trait (nothing was stored)."""


class StateTypeError(traitlets.TraitError, TypeError):
    """A value of the wrong type for a widget trait (nothing was stored)."""


class _Checked(traitlets.Any):
    """Any value, None included, goes through the validators (``traitlets.Any`` lets None by).

    ``traitlets.Any`` allows None (a class attribute that ``allow_none=False`` does not
    reset) and stores it without calling the validators: a ``w.cells = None`` was kept and
    wedged every later change.
    """

    allow_none = False


def _state_trait(default: Any) -> Any:
    """Return a synced trait whose values are checked by the widget's validators."""
    return _Checked(default).tag(sync=True)


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
    tau_rise, tau_decay : float, optional
        Starting kernel rise and decay times in seconds.
    lam : float, optional
        Starting sparsity: a penalty, or noise SDs of each cell when ``lam_mode="per_cell"``;
        default 1 % of the value that zeroes all activity of the shown cells. Given none of
        ``tau_rise``, ``tau_decay``, ``lam``, the widget starts from
        :func:`calab.estimate_parameters` (per-cell mode and the estimate's baseline); a
        recording too short to estimate starts from 0.05 s / 0.5 s.
    lam_mode : {"global", "per_cell"}, optional
        ``"global"``: one penalty for every cell. ``"per_cell"``: the sparsity slider is in
        noise SDs and cell ``i`` gets ``lam * noise[i]``.
    baseline : {"constant", "drift"}, optional
        CaTune's scalar baseline, or a drift-following one (:func:`calab.baseline.drift_baseline`).
    filter_enabled : bool
        Start with the band-pass noise filter on.
    truth : array_like, shape like ``traces``, optional
        Known spikes (simulated data), drawn when "show true spikes" is ticked.
    n_shown : int
        Number of cell cards (most active cells first), 1 to 64.
    columns : int
        Columns of the card grid, 1 to 8.
    threaded : bool
        Solve on a worker thread so a newer request supersedes an older one (default). False
        solves synchronously inside each change (scripts, tests).

    Attributes
    ----------
    tau_rise, tau_decay, lam, filter_enabled, lam_mode, baseline
        The current parameters; assigning them moves the sliders. Every state trait is checked
        by the same rules as the browser page of :func:`calab.tune` (see
        :mod:`calab.tuning.state`): a bad value raises ``ValueError``/``TypeError`` naming it
        and the old value stays. ``fs``, ``n_cells``, ``n_frames`` are fixed by the data.
    params : dict
        ``{'tau_rise', 'tau_decay', 'lambda_', 'fs', 'filter_enabled'}`` as
        :func:`calab.load_export_params` returns, plus ``lambda_per_cell`` (per-cell mode) and
        ``baseline`` (drift).
    estimate : ParameterEstimate or None
        The last estimate (at the start or from Auto).

    Raises
    ------
    ValueError, TypeError
        Bad traces (NaN/Inf, fewer than 8 frames, no cells, non-numeric) or bad ``fs`` /
        start values (types and ranges), before anything is displayed.
    """

    _esm = _bundle("widget.js")
    _css = _bundle("widget.css")

    # The page's state: checked by the session's table (calab.tuning.state), the same rules as
    # the browser bridge; traitlets only carry the values (None included: see _state_trait).
    tau_rise = _state_trait(0.05)
    tau_decay = _state_trait(0.5)
    lam = _state_trait(0.01)
    filter_enabled = _state_trait(False)
    cells = _state_trait([])
    cell_mode = _state_trait("active")
    n_shown = _state_trait(4)
    columns = _state_trait(2)
    seed = _state_trait(0)
    window_start = _state_trait(0)
    window_stop = _state_trait(0)
    plot_width = _state_trait(600)
    request_id = _state_trait(0)
    pinned = _state_trait(None)
    show_truth = _state_trait(False)
    selected_cell = _state_trait(-1)
    lam_mode = _state_trait("global")
    baseline = _state_trait("constant")

    # Facts about the recording (read-only: _check_fixed refuses every change).
    fs = _state_trait(30.0)
    n_cells = _state_trait(0)
    n_frames = _state_trait(0)
    has_truth = _state_trait(False)

    def __init__(
        self,
        traces: Any,
        fs: float = 30.0,
        *,
        tau_rise: float | None = None,
        tau_decay: float | None = None,
        lam: float | None = None,
        lam_mode: str | None = None,
        baseline: str | None = None,
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
        start = StartValues(tau_rise, tau_decay, lam, lam_mode, baseline, filter_enabled)
        self._session = TuningSession(
            engine,
            **start.keywords(),
            n_shown=n_shown,
            columns=columns,
            emit=self._emit,
            on_export=self._export_reply,
            on_state=self._mirror,
            threaded=threaded,
        )
        self._was_1d = np.ndim(traces) == 1
        super().__init__(**{**self._session.snapshot(), **kwargs})
        self.on_msg(self._on_msg)
        self._ready = True
        self._session.apply({k: getattr(self, k) for k in P.STATE_KEYS})

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
        """Make a widget on simulated GCaMP6f-like data (true tau 0.05 s / 0.5 s) with ground truth.

        Starts from deliberately wrong time constants (0.1 s / 1.2 s); tick "show true spikes"
        to compare the activity with the simulated spikes.
        """
        from calab.simulate import simulate

        traces, spikes = simulate(n_cells, n_frames, fs, 0.05, 0.5, seed=seed)
        kwargs.setdefault("tau_rise", 0.1)
        kwargs.setdefault("tau_decay", 1.2)
        return cls(traces, fs, truth=spikes, **kwargs)

    # ---- traitlets <-> session ------------------------------------------------------------
    @traitlets.validate(*P.STATE_KEYS)
    def _check_state(self, proposal: Any) -> Any:
        name = proposal["trait"].name
        try:
            return self._session.validate({name: proposal["value"]})[name]
        except TypeError as exc:
            raise StateTypeError(str(exc)) from None
        except ValueError as exc:
            raise StateValueError(str(exc)) from None

    @traitlets.validate("fs", "n_cells", "n_frames", "has_truth")
    def _check_fixed(self, proposal: Any) -> Any:
        name, value = proposal["trait"].name, proposal["value"]
        if not self._ready:
            return value
        current = getattr(self, name)
        try:
            same = isinstance(value, bool) == isinstance(current, bool) and bool(value == current)
        except (ValueError, TypeError):  # e.g. an array
            same = False
        if not same:
            raise StateValueError(
                f"{name} is fixed by the recording ({current!r}) and cannot be "
                f"set to {shown(value)}; make a new TuneWidget for other data"
            )
        return current

    @traitlets.observe(*P.STATE_KEYS)
    def _on_state(self, change: Any) -> None:
        if not self._ready or self.__dict__.get("_mirroring"):
            return
        state = self._session.state
        diff = {k: getattr(self, k) for k in P.STATE_KEYS if getattr(self, k) != state[k]}
        if not diff:
            return
        try:
            own = self._session.apply(diff)
        except (ValueError, TypeError):
            # Nothing was stored: the traits take the session's values back, so one refused
            # value never stays behind to fail every later change.
            self._mirror({k: state[k] for k in diff})
            raise
        for key, value in own.items():
            setattr(self, key, value)  # the session chose cells: mirror them

    def _mirror(self, changes: dict[str, Any]) -> None:
        """Show state changes the session made itself (Auto) in the traitlets and the page."""
        self._mirroring = True  # the session has these values already: no apply per trait
        try:
            with self.hold_sync():
                for key, value in changes.items():
                    setattr(self, key, value)
        finally:
            self._mirroring = False

    def set_state(self, sync_data: dict[str, Any]) -> None:
        """Take the page's changes; a refused set is logged, undone on the page and answered."""
        try:
            super().set_state(sync_data)
        except (ValueError, TypeError) as exc:  # nothing was stored (traitlets rolled back)
            logger.warning("calab widget: the page sent a value that was refused: %s", exc)
            self.send_state([k for k in sync_data if k in P.STATE_KEYS])
            rid = sync_data.get("request_id")
            if isinstance(rid, int) and not isinstance(rid, bool) and 0 <= rid <= 2**53:
                self.request_id = rid  # the page's cards get a view of the last valid state

    def _emit(self, messages: list[Message]) -> None:
        for header, buffers in messages:
            if header["type"] not in (P.MSG_STATE, P.MSG_SUPERSEDED):  # HTTP-only messages
                self.send(header, buffers)

    def _export_reply(self, export: dict[str, Any]) -> dict[str, Any]:
        from calab.io.export import write_export

        stamp = _dt.datetime.now().strftime("%Y-%m-%d-%H%M%S")
        try:
            path = write_export(f"catune-params-{stamp}.json", export)
        except (OSError, ValueError) as exc:
            logger.warning("calab widget: export failed: %s", exc)
            return {"type": P.MSG_EXPORTED, "error": str(exc)}
        return {"type": P.MSG_EXPORTED, "path": str(path)}

    def _on_msg(self, _widget: Any, content: Any, buffers: Any) -> None:
        try:
            self._emit(self._session.handle(content))
        except (ValueError, TypeError) as exc:
            logger.warning("calab widget: message refused: %s", exc)

    @property
    def _engine(self) -> TuningEngine:
        return self._session.engine

    @property
    def last_view(self) -> ViewResult | None:
        """The latest solved view (what the page shows), or None before the first."""
        return self._session.last_view

    def current_request(self) -> ViewRequest:
        """Return the view request for the current state (what the page shows)."""
        return self._session.current_request()

    # ---- public API ---------------------------------------------------------------------------
    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until the pending solve (if any) has been answered; False on timeout."""
        return self._session.wait_idle(timeout)

    @property
    def lam_max(self) -> float:
        """Lambda at which all activity of the shown cells becomes zero (slider maximum).

        In the slider's units: a penalty, or noise SDs in per-cell mode.
        """
        return self._engine.lambda_max(tuple(self.cells), self._session.settings())

    @property
    def estimate(self) -> Any:
        """The last :class:`calab.estimate.ParameterEstimate` (start or Auto), or None."""
        return self._session.estimate

    def auto(self) -> dict[str, Any]:
        """Estimate the parameters from the recording and move the sliders there (Auto button).

        Returns the state changes; on failure a warning, no change, empty dict.

        Examples
        --------
        >>> w.auto()  # doctest: +SKIP
        {'tau_rise': 0.048, 'tau_decay': 0.51, 'lam': 1.3, 'lam_mode': 'per_cell', ...}
        """
        changes = self._session.auto()
        if not changes:
            status = self._session.handle({"type": P.MSG_AUTO_STATUS})
            logger.warning("calab widget: Auto made no change (%s)", status[0][0].get("message"))
        return changes

    def lam_per_cell(self) -> float | np.ndarray:
        """Return the penalty in use: one number (global mode) or shape (n_cells,) (per-cell)."""
        return self._session.cell_lam()

    def _export_dict(self, metadata: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._session.export(metadata)

    @property
    def params(self) -> dict[str, Any]:
        """Current parameters as :func:`calab.load_export_params` returns them."""
        return self._session.params_dict()

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

        Band-passes each trace first when the noise filter is on; uses each cell's own lambda
        in per-cell mode and the drift baseline when chosen. Runs over chunks of cells with a
        tqdm progress bar.

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
        from calab.batch import deconvolve_rows

        params = self._session.params()  # one lambda, or one per cell in per-cell mode
        res: DeconvolutionResult = deconvolve_rows(
            self._engine.traces, params, chunk_cells=chunk_cells, progress=progress, **solver_kwargs
        )
        if self._was_1d:
            return squeeze(res)
        return res

    def close(self) -> None:
        """Close the widget and stop its solver thread."""
        session = self.__dict__.get("_session")
        if session is not None:
            session.close()
        if self.__dict__.get("_ready"):  # construction may have failed validation
            super().close()
