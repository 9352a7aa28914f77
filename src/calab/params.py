"""One parameter type for the model and one for the solver.

:class:`Params` holds what a CaTune export describes (kernel, sparsity, filter) plus calab's
extensions (a lambda per cell, the baseline mode); :class:`SolverOptions` holds how to solve.
Both are frozen and validated once, in their constructors, with errors that name the argument.
:mod:`calab.solve` applies them: the single place that filters, detrends and solves.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from calab._validate import lam_value, model_params, real_float, shown

Method = Literal["active-set", "fista"]
BaselineMode = Literal["constant", "drift"]

METHODS: tuple[str, ...] = ("active-set", "fista")
BASELINE_MODES: tuple[str, ...] = ("constant", "drift")

#: (max_iters, tol) per method. Active set: pivot cap and relative KKT feasibility tolerance.
#: FISTA: iteration cap and relative step ||s_k - s_k-1|| / ||s_k|| at which it stops.
DEFAULTS: dict[str, tuple[int, float]] = {
    "active-set": (1000, 1e-9),
    "fista": (5000, 1e-4),
}

#: Largest iteration cap accepted (far beyond any useful value; keeps it a machine integer).
MAX_ITERS_LIMIT = 10**9


def max_threads() -> int:
    """Largest ``n_threads`` accepted: 64 per core, at most 1024."""
    return min(1024, 64 * (os.cpu_count() or 1))


def _integer(value: Any, name: str, hint: str, upper: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer ({hint}), got {value!r}")
    v = int(value)
    if v < 1:
        raise ValueError(f"{name} must be at least 1 ({hint}), got {v}")
    if v > upper:
        raise ValueError(f"{name} must be at most {upper} ({hint}), got {v}")
    return v


@dataclass(frozen=True, init=False)
class SolverOptions:
    """How to solve: algorithm, iteration cap, tolerance and threads (validated on creation).

    Parameters
    ----------
    method : {"active-set", "fista"}
        ``"active-set"`` (default) is exact and fast; ``"fista"`` is the reference algorithm.
    max_iters : int, optional
        Iteration cap, 1 to 10**9 (default 1000 pivots for ``"active-set"``, 5000 iterations
        for ``"fista"``).
    tol : float, optional
        Active set: relative KKT feasibility tolerance (default 1e-9). FISTA: relative step at
        which it stops (default 1e-4).
    n_threads : int, optional
        Worker threads across cells (default: all cores), at most :func:`max_threads`.

    Raises
    ------
    TypeError, ValueError
        A bad value; the message names the argument.
    """

    method: Method
    max_iters: int
    tol: float
    n_threads: int | None

    def __init__(
        self,
        method: Method = "active-set",
        max_iters: int | None = None,
        tol: float | None = None,
        n_threads: int | None = None,
    ) -> None:
        if not isinstance(method, str):
            raise TypeError(f"method must be the string 'active-set' or 'fista', got {method!r}")
        if method not in DEFAULTS:
            raise ValueError(f"method must be 'active-set' or 'fista', got {method!r}")
        default_iters, default_tol = DEFAULTS[method]
        iters = default_iters if max_iters is None else max_iters
        iters = _integer(iters, "max_iters", "the iteration cap", MAX_ITERS_LIMIT)
        if tol is None:
            tol = default_tol
        tol_ = real_float(tol, "tol", "a positive number")
        if not math.isfinite(tol_) or tol_ <= 0:
            raise ValueError(f"tol must be a positive number, got {shown(tol)}")
        threads = None
        if n_threads is not None:
            limit = max_threads()
            if (
                isinstance(n_threads, bool)
                or not isinstance(n_threads, numbers.Integral)
                or not 1 <= n_threads <= limit
            ):
                raise ValueError(
                    f"n_threads must be an integer >= 1 and at most {limit} (64 per core), or "
                    f"None for all cores, got {n_threads!r}"
                )
            threads = int(n_threads)
        object.__setattr__(self, "method", method)
        object.__setattr__(self, "max_iters", iters)
        object.__setattr__(self, "tol", tol_)
        object.__setattr__(self, "n_threads", threads)


def _lam(lam: Any) -> float | npt.NDArray[np.float64]:
    """Return a scalar lambda as float, or a 1-D per-cell lambda as a read-only float64 array."""
    if isinstance(lam, np.ndarray) and lam.ndim == 0:
        return lam_value(lam.item())
    if isinstance(lam, numbers.Real):
        return lam_value(lam)
    if isinstance(lam, (str, bytes, Mapping)) or not hasattr(lam, "__len__"):
        raise TypeError(
            f"lam must be a number >= 0 or a 1-D array of one value per cell, "
            f"got {type(lam).__name__}"
        )
    if np.ma.isMaskedArray(lam):
        raise TypeError("lam must not be a masked array; pass np.ma.filled(lam) or plain values")
    try:
        arr = np.asarray(lam)
    except ValueError as exc:
        raise ValueError(f"lam must be a 1-D array of one value per cell ({exc})") from None
    if arr.dtype == object or arr.dtype.kind not in "iuf":
        raise TypeError(f"lam must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            f"lam must be a number or a 1-D array with one value per cell, got shape {arr.shape}"
        )
    out = np.array(arr, dtype=np.float64)
    bad = ~np.isfinite(out) | (out < 0)
    if bad.any():
        i = int(np.argmax(bad))
        raise ValueError(f"lam must hold finite numbers >= 0, got lam[{i}] = {out[i]!r}")
    out.flags.writeable = False
    return out


#: The drift window must span this many decay times: a shorter one follows the transients
#: themselves and the baseline removes most of the activity (all of it at 0.001 s).
MIN_WINDOW_DECAY_TIMES = 2.0


def check_drift_window(window_s: float | None, tau_decay: float) -> None:
    """Refuse a drift window too short for the kernel (None: the estimator's default).

    A window longer than the recording is allowed: it acts as the whole recording and costs
    no more (:func:`calab.baseline.drift_baseline` bounds it by the trace's length).
    """
    from calab.baseline import DEFAULT_WINDOW_S

    window = DEFAULT_WINDOW_S if window_s is None else window_s
    low = MIN_WINDOW_DECAY_TIMES * tau_decay
    if window < low:
        given = "the default " if window_s is None else ""
        raise ValueError(
            f"baseline_window_s must be at least {MIN_WINDOW_DECAY_TIMES:g} x tau_decay = "
            f"{low:g} s (a shorter drift window follows the transients and removes the "
            f"activity), got {given}{window:g} s; pass a longer window (e.g. 30.0)"
        )


@dataclass(frozen=True, init=False, eq=False)
class Params:
    """Model parameters: kernel, sparsity, filter and baseline mode (validated on creation).

    Parameters
    ----------
    fs : float
        Sampling rate in Hz.
    tau_rise, tau_decay : float
        Kernel rise and decay time constants in seconds (``tau_rise < tau_decay``).
    lam : float or array_like, shape (n_cells,)
        Sparsity penalty (>= 0), the CaTune ``lambda``; one value per cell is allowed.
    filter_enabled : bool
        Band-pass filter (:func:`calab.bandpass_filter`) the traces before solving.
    baseline : {"constant", "drift"}
        ``"constant"``: the scalar baseline ``b`` of the CaTune model (default).
        ``"drift"``: a slowly varying baseline per cell (:func:`calab.baseline.drift_baseline`)
        is removed first and ``b`` is fitted on top of it.
    baseline_window_s : float, optional
        Window of the drift estimate in seconds (None: the estimator's default). Ignored for
        ``baseline="constant"``.

    Raises
    ------
    TypeError, ValueError
        A bad value; the message names the argument.
    """

    fs: float
    tau_rise: float
    tau_decay: float
    lam: float | npt.NDArray[np.float64]
    filter_enabled: bool
    baseline: BaselineMode
    baseline_window_s: float | None

    def __init__(
        self,
        fs: float,
        tau_rise: float,
        tau_decay: float,
        lam: float | npt.ArrayLike,
        filter_enabled: bool = False,
        baseline: BaselineMode = "constant",
        baseline_window_s: float | None = None,
    ) -> None:
        tr, td, f = model_params(tau_rise, tau_decay, fs)
        lam_ = _lam(lam)
        if not isinstance(filter_enabled, (bool, np.bool_)):
            raise TypeError(f"filter_enabled must be True or False, got {filter_enabled!r}")
        if not isinstance(baseline, str):
            raise TypeError(f"baseline must be 'constant' or 'drift', got {baseline!r}")
        if baseline not in BASELINE_MODES:
            raise ValueError(f"baseline must be 'constant' or 'drift', got {baseline!r}")
        window = None
        if baseline_window_s is not None:
            window = real_float(
                baseline_window_s, "baseline_window_s", "a number of seconds or None"
            )
            if not math.isfinite(window) or window <= 0:
                raise ValueError(
                    f"baseline_window_s must be a positive number of seconds (e.g. 30.0) "
                    f"or None, got {shown(baseline_window_s)}"
                )
        if baseline == "drift":
            check_drift_window(window, td)
        object.__setattr__(self, "fs", f)
        object.__setattr__(self, "tau_rise", tr)
        object.__setattr__(self, "tau_decay", td)
        object.__setattr__(self, "lam", lam_)
        object.__setattr__(self, "filter_enabled", bool(filter_enabled))
        object.__setattr__(self, "baseline", baseline)
        object.__setattr__(self, "baseline_window_s", window)

    def _key(self) -> tuple[Any, ...]:
        lam = self.lam if isinstance(self.lam, float) else tuple(self.lam.tolist())
        return (self.fs, self.tau_rise, self.tau_decay, lam, self.filter_enabled,
                self.baseline, self.baseline_window_s)  # fmt: skip

    def __eq__(self, other: object) -> bool:
        """Compare by value (a per-cell lambda element by element)."""
        return isinstance(other, Params) and self._key() == other._key()

    def __hash__(self) -> int:
        """Hash by value, consistent with ``__eq__``."""
        return hash(self._key())

    def lam_for(self, n_cells: int) -> float | npt.NDArray[np.float64]:
        """Return the lambda for a block of ``n_cells`` cells (a per-cell array must match it)."""
        if isinstance(self.lam, float):
            return self.lam
        if self.lam.shape != (n_cells,):
            raise ValueError(
                f"lam has {self.lam.size} values but the traces have {n_cells} cells; pass one "
                "lambda per cell (shape (n_cells,)) or a single number"
            )
        return self.lam

    def for_cells(self, start: int, stop: int) -> Params:
        """Return the parameters of cells ``start:stop`` of a recording (a per-cell lambda sliced).

        For a chunk loop over cells, e.g. ``solve_block(traces[a:b], params.for_cells(a, b))``.
        """
        if isinstance(self.lam, float):
            return self
        if not 0 <= start < stop <= self.lam.size:
            raise ValueError(
                f"cells {start}:{stop} are outside the {self.lam.size} cells that lam has "
                "values for"
            )
        return replace(self, lam=self.lam[start:stop])

    @classmethod
    def from_export(cls, params: Mapping[str, Any]) -> Params:
        """Build from the dict of :func:`calab.load_export_params`.

        Reads ``tau_rise``, ``tau_decay``, ``lambda_``, ``fs``, ``filter_enabled`` and the
        optional calab extras ``lambda_per_cell`` (list, one lambda per cell; replaces
        ``lambda_``), ``baseline`` and ``baseline_window_s``.
        """
        if not isinstance(params, Mapping):
            raise TypeError(
                f"params must be the dict of calab.load_export_params, got {type(params).__name__}"
            )
        missing = [k for k in ("tau_rise", "tau_decay", "lambda_", "fs") if k not in params]
        if missing:
            raise ValueError(
                f"params lacks {', '.join(missing)}; pass the dict of calab.load_export_params"
            )
        per_cell = params.get("lambda_per_cell")
        if per_cell is not None:
            try:
                _lam(per_cell)
            except (TypeError, ValueError) as exc:
                raise type(exc)(
                    f"lambda_per_cell: {exc} (one lambda per cell, as written by "
                    "calab.export_dict(lam=array))"
                ) from None
        return cls(
            fs=params["fs"],
            tau_rise=params["tau_rise"],
            tau_decay=params["tau_decay"],
            lam=params["lambda_"] if per_cell is None else per_cell,
            filter_enabled=params.get("filter_enabled", False),
            baseline=params.get("baseline", "constant"),
            baseline_window_s=params.get("baseline_window_s"),
        )

    def to_export(self) -> dict[str, Any]:
        """Return the dict of :func:`calab.load_export_params`.

        ``lambda_`` is the recording-wide lambda (the median of a per-cell lambda); the calab
        extras ``lambda_per_cell``, ``baseline`` and ``baseline_window_s`` are added only when
        they differ from the CaTune model (so a plain export round-trips to the same dict).
        These are the keys :func:`calab.load_export_params` returns for an export's ``"calab"``
        object (:func:`calab.export_dict` writes it from ``lam``, ``baseline`` and
        ``baseline_window_s``).
        """
        out: dict[str, Any] = {
            "tau_rise": self.tau_rise,
            "tau_decay": self.tau_decay,
            "lambda_": self.lam if isinstance(self.lam, float) else float(np.median(self.lam)),
            "fs": self.fs,
            "filter_enabled": self.filter_enabled,
        }
        if not isinstance(self.lam, float):
            out["lambda_per_cell"] = self.lam.tolist()
        if self.baseline != "constant":
            out["baseline"] = self.baseline
            out["baseline_window_s"] = self.baseline_window_s
        return out


class DeconvolutionResult(NamedTuple):
    """Full output of :func:`calab.run_deconvolution_full`.

    For 2-D input every field has a leading ``n_cells`` axis; for 1-D input ``activity`` and
    ``reconvolution`` are 1-D and the per-cell fields are scalars.

    Attributes
    ----------
    activity : ndarray, shape (n_cells, n_frames) or (n_frames,)
        Non-negative scaled neural activity ``s``.
    baseline : ndarray, shape (n_cells,) or float; (n_cells, n_frames) or (n_frames,) for drift
        Fitted baseline of each trace: the scalar ``b`` (``baseline="constant"``), or the
        drift plus ``b`` per frame (``baseline="drift"``).
    reconvolution : ndarray, shape (n_cells, n_frames) or (n_frames,)
        The fit ``K s + baseline``.
    iterations : ndarray of int, shape (n_cells,) or int
        Solver iterations (pivots for the active-set method).
    converged : ndarray of bool, shape (n_cells,) or bool
        Whether the solver met its stopping rule.
    """

    activity: Any
    baseline: Any
    reconvolution: Any
    iterations: Any
    converged: Any
