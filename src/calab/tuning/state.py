"""The tuning page's state: one table of keys with their types and ranges, for both transports.

The notebook widget (traitlets) and the browser bridge (HTTP) accept exactly the same values:
:func:`validate_changes` checks a whole set of changes before anything is stored and raises
``ValueError``/``TypeError`` naming the key, the bad value and the allowed range.
:class:`Settings` is what the sliders say, each value checked but not yet together (the page
shows e.g. tau_rise >= tau_decay as an error on the cards); :meth:`Settings.to_params` turns it
into the one checked parameter type, :class:`calab.params.Params`.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from calab._validate import described, real_float, shown
from calab.params import BaselineMode, Params

#: Most cells shown at once (cards on the page).
MAX_SHOWN = 64
#: Most columns of the card grid.
MAX_COLUMNS = 8
#: Widest plot in pixels (an 8K screen is 7,680 pixels wide).
MAX_PLOT_WIDTH = 16_384
#: Largest integer a page can send exactly (JavaScript numbers are doubles).
MAX_JS_INT = 2**53 - 1
#: Cell selection modes.
CELL_MODES = ("active", "random", "index")
#: What the sparsity slider means: one lambda for all cells, or noise SDs of each cell.
LAM_MODES = ("global", "per_cell")
#: Baseline of the model: CaTune's scalar b, or a drift-following baseline (calab.baseline).
BASELINE_MODES = ("constant", "drift")
#: State fixed by the recording: shown on the page, never changed by it.
READ_ONLY = ("fs", "n_cells", "n_frames", "has_truth")


@dataclass(frozen=True)
class Recording:
    """What the ranges depend on: sampling rate (Hz), cells and frames of the recording."""

    fs: float
    n_cells: int
    n_frames: int


@dataclass(frozen=True)
class Settings:
    """What the tuning page's sliders say: unchecked, so the page can show a bad value's error.

    Not a second parameter type: :meth:`to_params` turns the settings into the one checked
    :class:`calab.params.Params`, and every solve, export and deconvolution uses that.

    Attributes
    ----------
    tau_rise, tau_decay : float
        Kernel time constants in seconds.
    lam : float
        Sparsity: the penalty of every cell (``lam_mode="global"``), or noise SDs
        (``lam_mode="per_cell"``: each cell's penalty is ``lam * noise[cell]``).
    filter_enabled : bool
        Band-pass noise filter on.
    lam_mode : {"global", "per_cell"}
    baseline : {"constant", "drift"}
    """

    tau_rise: float
    tau_decay: float
    lam: float
    filter_enabled: bool = False
    lam_mode: str = "global"
    baseline: str = "constant"

    def to_params(self, fs: float, noise: npt.ArrayLike | None = None) -> Params:
        """Return the checked parameters at ``fs`` Hz (raises ValueError/TypeError naming the fix).

        Parameters
        ----------
        fs : float
            Sampling rate in Hz.
        noise : array_like, shape (n_cells,), optional
            Noise SD of each cell; needed in per-cell mode, where the parameters get one
            lambda per cell, ``lam * noise`` (in the order of ``noise``).
        """
        params = Params(
            fs,
            self.tau_rise,
            self.tau_decay,
            self.lam,
            self.filter_enabled,
            cast(BaselineMode, self.baseline),
        )
        if self.lam_mode == "global":
            return params
        if self.lam_mode not in LAM_MODES:
            raise ValueError(f"lam_mode must be 'global' or 'per_cell', got {self.lam_mode!r}")
        if noise is None:
            raise ValueError(
                "lam_mode='per_cell' needs the noise SD of each cell (TuningEngine.noise)"
            )
        return replace(params, lam=params.lam * np.asarray(noise, dtype=np.float64))


Check = Callable[[str, Any, Recording], Any]


def _number(key: str, value: Any) -> float:
    v = real_float(value, key)
    if not math.isfinite(v):
        raise ValueError(f"{key} must be a finite number, got {shown(value)}")
    return v


def _seconds(key: str, value: Any, rec: Recording) -> float:
    v = _number(key, value)
    if v <= 0:
        raise ValueError(f"{key} must be a positive number of seconds, got {shown(value)}")
    return v


def _lam(key: str, value: Any, rec: Recording) -> float:
    v = _number(key, value)
    if v < 0:
        raise ValueError(f"{key} must be a finite number >= 0, got {shown(value)}")
    return v


def _bool(key: str, value: Any, rec: Recording) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{key} must be True or False, got {described(value)}")
    return value


def _int(key: str, value: Any, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{key} must be an integer, got {described(value)}")
    v = int(value)
    if not lo <= v <= hi:
        raise ValueError(f"{key} out of range: must be an integer in {lo}..{hi}, got {shown(v)}")
    return v


def _ranged(lo: int | Callable[[Recording], int], hi: int | Callable[[Recording], int]) -> Check:
    def check(key: str, value: Any, rec: Recording) -> int:
        a = lo(rec) if callable(lo) else lo
        b = hi(rec) if callable(hi) else hi
        return _int(key, value, a, b)

    return check


def _mode(key: str, value: Any, rec: Recording) -> str:
    if value not in CELL_MODES or not isinstance(value, str):
        raise ValueError(
            f"{key} must be one of {', '.join(map(repr, CELL_MODES))}, got {shown(value)}"
        )
    return value


def _choice(options: tuple[str, ...]) -> Check:
    def check(key: str, value: Any, rec: Recording) -> str:
        if not isinstance(value, str) or value not in options:
            raise ValueError(
                f"{key} must be one of {', '.join(map(repr, options))}, got {shown(value)}"
            )
        return value

    return check


def _cells(key: str, value: Any, rec: Recording) -> list[int]:
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{key} must be a list of cell indices, got {type(value).__name__}")
    items = list(value)
    cells = [_int(f"{key}[{i}]", c, 0, rec.n_cells - 1) for i, c in enumerate(items)]
    cells = list(dict.fromkeys(cells))
    if not 1 <= len(cells) <= MAX_SHOWN:
        raise ValueError(f"{key} must list 1 to {MAX_SHOWN} cells, got {len(cells)}")
    return cells


_PIN_KEYS = ("tau_rise", "tau_decay", "lam", "filter_enabled", "lam_mode", "baseline")


def _pinned(key: str, value: Any, rec: Recording) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise TypeError(f"{key} must be None or a dict with {', '.join(_PIN_KEYS)}")
    extra = set(value) - set(_PIN_KEYS)
    missing = {"tau_rise", "tau_decay", "lam"} - set(value)
    if extra or missing:
        raise ValueError(
            f"{key} must be None or a dict with keys tau_rise, tau_decay, lam "
            f"(and optionally filter_enabled, lam_mode, baseline); missing {sorted(missing)}, "
            f"unknown {sorted(extra)}"
        )
    pin: dict[str, Any] = {
        "tau_rise": _seconds(f"{key}['tau_rise']", value["tau_rise"], rec),
        "tau_decay": _seconds(f"{key}['tau_decay']", value["tau_decay"], rec),
        "lam": _lam(f"{key}['lam']", value["lam"], rec),
        "filter_enabled": _bool(
            f"{key}['filter_enabled']", value.get("filter_enabled", False), rec
        ),
    }
    # Optional (default global / constant): kept only when given, as the page sent them.
    for name, options in (("lam_mode", LAM_MODES), ("baseline", BASELINE_MODES)):
        if name in value:
            pin[name] = _choice(options)(f"{key}[{name!r}]", value[name], rec)
    try:  # the values together, as the view will check them (the lambda unit aside)
        Settings(**{**pin, "lam_mode": "global"}).to_params(rec.fs)
    except (ValueError, TypeError) as exc:
        raise type(exc)(f"{key}: {exc}") from None
    return pin


@dataclass(frozen=True)
class Key:
    """One state key: its check (type and range) and whether a change needs a new view."""

    check: Check
    view: bool
    doc: str


#: Every key the page (or Python) may change, in the order of :data:`calab._protocol.STATE_KEYS`
#: (a test keeps the two in sync).
SCHEMA: dict[str, Key] = {
    "tau_rise": Key(_seconds, True, "kernel rise time, seconds > 0"),
    "tau_decay": Key(_seconds, True, "kernel decay time, seconds > 0"),
    "lam": Key(_lam, True, "sparsity: penalty >= 0, or noise SDs of each cell (per_cell)"),
    "filter_enabled": Key(_bool, True, "band-pass noise filter on"),
    "cells": Key(_cells, True, f"shown cell indices, 1 to {MAX_SHOWN}, no repeats"),
    "cell_mode": Key(_mode, False, "how cells are chosen: active, random or index"),
    "n_shown": Key(_ranged(1, MAX_SHOWN), False, f"number of cards, 1..{MAX_SHOWN}"),
    "columns": Key(_ranged(1, MAX_COLUMNS), False, f"card grid columns, 1..{MAX_COLUMNS}"),
    "seed": Key(_ranged(0, MAX_JS_INT), False, "seed of the random cell draw, >= 0"),
    "window_start": Key(_ranged(0, lambda r: r.n_frames), True, "first visible frame"),
    "window_stop": Key(_ranged(0, lambda r: r.n_frames), True, "end of the visible frames"),
    "plot_width": Key(_ranged(1, MAX_PLOT_WIDTH), True, "plot width in pixels"),
    "request_id": Key(_ranged(0, MAX_JS_INT), True, "id of the page's latest request"),
    "pinned": Key(_pinned, True, "pinned parameter set drawn for comparison, or None"),
    "show_truth": Key(_bool, True, "draw the known spikes"),
    "selected_cell": Key(_ranged(-1, lambda r: r.n_cells - 1), False, "cell of the spectrum"),
    "lam_mode": Key(
        _choice(LAM_MODES), True, "lam is one penalty (global) or noise SDs per cell (per_cell)"
    ),
    "baseline": Key(_choice(BASELINE_MODES), True, "constant (CaTune's b) or drift-following"),
}


def validate_changes(changes: Mapping[str, Any], rec: Recording) -> dict[str, Any]:
    """Return a checked, normalized copy of ``changes``; raise on the first bad key.

    Raises
    ------
    TypeError
        ``changes`` is not a mapping, or a value has the wrong type.
    ValueError
        Unknown or read-only key, or a value out of range.
    """
    if not isinstance(changes, Mapping):
        raise TypeError(f"state changes must be a mapping of key to value, got {changes!r:.80}")
    out: dict[str, Any] = {}
    for key, value in changes.items():
        spec = SCHEMA.get(key) if isinstance(key, str) else None
        if spec is None:
            if key in READ_ONLY:
                raise ValueError(
                    f"{key} is fixed by the recording and cannot be changed; "
                    "make a new widget or session for other data"
                )
            raise ValueError(f"unknown state key {key!r:.80}; known keys: {', '.join(SCHEMA)}")
        out[key] = spec.check(key, value, rec)
    return out
