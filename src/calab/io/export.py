"""The CaTune export JSON, the parameter file of the web app, widget, bridge and CLI.

Schema 1.2.0 is written; 1.1.0 and 1.2.0 are read.

calab's own extensions (a lambda per cell, the drift-following baseline) are recorded under
the top-level key ``"calab"``, which CaTune ignores; every CaTune field keeps its meaning.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import numbers
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from calab._validate import as_real_array, lam_value, model_params, real_float, shown
from calab.io._common import PathLike, is_present, require_file, write_atomic
from calab.params import BASELINE_MODES, DEFAULTS, BaselineMode, Params

SCHEMA_VERSION = "1.2.0"
READABLE_SCHEMAS = ("1.1.0", "1.2.0")
ASSUMED_SCHEMA = "1.1.0"  # what a hand-written export without schema_version is read as
_MAX_EXPORT_BYTES = 64 * 2**20  # real exports are a few kB

#: Top-level key of calab's extensions, and the version of its layout this calab writes/reads.
CALAB_KEY = "calab"
CALAB_FORMAT = 1
_CALAB_FIELDS = ("format", "lambda_per_cell", "baseline", "baseline_window_s")

FORMULATION = {
    "model": "Non-negative sparse deconvolution with a scalar baseline, solved exactly "
    "(active-set method; FISTA with adaptive restart as the reference)",
    "objective": "min_{s>=0, b} (1/2)||y - K*s - b||_2^2 + lambda*G_dc*||s||_1, G_dc = sum(h)",
    "kernel": "h(t) = exp(-t/tau_decay) - exp(-t/tau_rise), normalized to unit peak",
    "ar2_relation": "c[t] = g1*c[t-1] + g2*c[t-2] + s[t], where g1 = decayRoot+riseRoot, "
    "g2 = -(decayRoot*riseRoot), decayRoot = exp(-dt/tau_decay), riseRoot = exp(-dt/tau_rise)",
    "lambda_definition": "L1 penalty weight on the activity s, scaled by the kernel's DC gain "
    "G_dc so one lambda means the same sparsity across kernels",
    "convergence": "active set (default): exact, KKT conditions met to relative tolerance "
    f"{DEFAULTS['active-set'][1]:g}, at most {DEFAULTS['active-set'][0]} pivots; FISTA: "
    f"relative step < {DEFAULTS['fista'][1]:g} or at most {DEFAULTS['fista'][0]} iterations",
    "filter": "optional FFT band-pass before deconvolution: high-pass 1/(2*pi*tau_decay*16) Hz, "
    "low-pass min(4/(2*pi*tau_rise), fs/2) Hz, raised-cosine edges",
}


def export_dict(
    *,
    tau_rise: float,
    tau_decay: float,
    lam: float | npt.ArrayLike,
    fs: float,
    filter_enabled: bool = False,
    metadata: dict[str, Any] | None = None,
    baseline: BaselineMode = "constant",
    baseline_window_s: float | None = None,
) -> dict[str, Any]:
    """Build the CaTune export JSON object (schema 1.2.0) for these parameters.

    Parameters
    ----------
    tau_rise, tau_decay : float
        Kernel time constants in seconds.
    lam : float or array_like, shape (n_cells,)
        Sparsity penalty. One number is the export's ``lambda``. One value per cell is recorded
        as ``calab.lambda_per_cell`` and its median becomes ``parameters.lambda`` (what CaTune
        reads).
    fs : float
        Sampling rate in Hz of the data the parameters were tuned on.
    filter_enabled : bool
        Whether the band-pass filter is applied before deconvolution.
    metadata : dict, optional
        ``source_filename``, ``num_cells``, ``num_timepoints`` (other keys are kept too).
        A ``num_cells`` must match a per-cell ``lam``.
    baseline : {"constant", "drift"}
        Baseline mode of :func:`calab.run_deconvolution`; ``"drift"`` is recorded as
        ``calab.baseline`` (CaTune's model is ``"constant"``).
    baseline_window_s : float, optional
        Drift window in seconds (``baseline="drift"`` only; default
        :data:`calab.baseline.DEFAULT_WINDOW_S`, written out so the file does not depend on
        the default of a later calab).

    Returns
    -------
    dict
        JSON-serialisable: ``schema_version``, ``catune_version``, ``export_date``,
        ``parameters``, ``ar2_coefficients``, ``formulation``, ``metadata``, and ``calab``
        when the parameters go beyond the CaTune model (see :func:`calab_extensions`).
    """
    from calab import __version__
    from calab.kernel import kernel_timing, tau_to_ar2

    p = Params(fs, tau_rise, tau_decay, lam, filter_enabled, baseline, baseline_window_s)
    tr, td, f = p.tau_rise, p.tau_decay, p.fs
    lam_ = p.lam if isinstance(p.lam, float) else float(np.median(p.lam))
    if metadata is not None and not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    g1, g2, d, r = tau_to_ar2(tr, td, f)
    t_peak, fwhm = kernel_timing(tr, td, f)
    meta = {str(k): v for k, v in (metadata or {}).items() if v is not None}
    n_meta = meta.get("num_cells")
    if (
        not isinstance(p.lam, float)
        and isinstance(n_meta, numbers.Integral)
        and not isinstance(n_meta, bool)
        and n_meta != p.lam.size
    ):
        raise ValueError(
            f"lam has {p.lam.size} values but metadata num_cells is {n_meta}; pass one lambda "
            "per cell of the recording (or a single number)"
        )
    export = {
        "schema_version": SCHEMA_VERSION,
        "catune_version": f"calab {__version__}",
        "export_date": _dt.datetime.now(_dt.timezone.utc).isoformat().replace("+00:00", "Z"),
        "parameters": {
            "tau_rise_s": tr,
            "tau_decay_s": td,
            "lambda": lam_,
            "sampling_rate_hz": f,
            "filter_enabled": bool(filter_enabled),
            "t_peak_s": float(t_peak),
            "fwhm_s": float(fwhm),
        },
        "ar2_coefficients": {
            "g1": float(g1),
            "g2": float(g2),
            "decayRoot": float(d),
            "riseRoot": float(r),
            "dt": 1.0 / f,
        },
        "formulation": dict(FORMULATION),
        "metadata": meta,
    }
    extensions = calab_extensions(p)
    if extensions is not None:
        export[CALAB_KEY] = extensions
    try:
        json.dumps(export, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"metadata must be JSON-serialisable: {exc}") from None
    return export


def _number(params: Mapping[str, Any], key: str, where: str) -> float:
    value = params[key]
    try:
        v = real_float(value, f"parameters.{key}", f"a number{where}")
    except TypeError as exc:
        raise ValueError(str(exc)) from None
    if not math.isfinite(v):
        raise ValueError(f"parameters.{key} must be finite{where}, got {shown(value)}")
    return v


def calab_extensions(params: Params) -> dict[str, Any] | None:
    """Return the ``"calab"`` object of an export for ``params`` (None for a plain CaTune model).

    Layout (format 1), each field optional on reading::

        "calab": {"format": 1,
                  "lambda_per_cell": [0.011, 0.02, ...],   # one lambda per cell, in row order
                  "baseline": "drift",                     # or "constant" (CaTune's model)
                  "baseline_window_s": 30.0}               # drift window in seconds

    ``parameters.lambda`` stays one number (the median of ``lambda_per_cell``), so CaTune,
    which ignores this key, reads the same kernel and a representative sparsity.
    """
    from calab.baseline import DEFAULT_WINDOW_S

    if isinstance(params.lam, float) and params.baseline == "constant":
        return None
    out: dict[str, Any] = {"format": CALAB_FORMAT}
    if not isinstance(params.lam, float):
        out["lambda_per_cell"] = params.lam.tolist()
    out["baseline"] = params.baseline
    if params.baseline == "drift":
        window = params.baseline_window_s
        out["baseline_window_s"] = DEFAULT_WINDOW_S if window is None else window
    return out


def _calab_extras(block: Any, lam: float, where: str) -> dict[str, Any]:
    """Validate an export's ``"calab"`` object; return the extras of load_export_params."""
    if not isinstance(block, Mapping):
        raise ValueError(
            f"the export's 'calab' key must be an object{where}, got {type(block).__name__}; "
            "remove the key to use the CaTune parameters alone"
        )
    unknown = sorted(str(k) for k in block if k not in _CALAB_FIELDS)
    if unknown:
        raise ValueError(
            f"unknown field calab.{unknown[0]}{where}; calab.* holds "
            f"{', '.join(_CALAB_FIELDS)} (a newer calab's export needs a newer calab)"
        )
    fmt = block.get("format", CALAB_FORMAT)
    if isinstance(fmt, bool) or not isinstance(fmt, int) or fmt < 1:
        raise ValueError(f"calab.format must be a positive integer{where}, got {shown(fmt)}")
    if fmt > CALAB_FORMAT:
        raise ValueError(
            f"calab.format {shown(fmt)}{where} is newer than this calab reads ({CALAB_FORMAT}); "
            "upgrade calab"
        )
    extras: dict[str, Any] = {}
    if "lambda_per_cell" in block:
        values = block["lambda_per_cell"]
        if not isinstance(values, list) or not values:
            raise ValueError(
                f"calab.lambda_per_cell must be a non-empty list of numbers (one lambda per "
                f"cell){where}, got {type(values).__name__}"
            )
        per_cell = []
        for i, v in enumerate(values):
            ok = not isinstance(v, bool) and isinstance(v, numbers.Real)
            x = real_float(v, "lambda") if ok else math.nan
            if not math.isfinite(x) or x < 0:
                raise ValueError(
                    f"calab.lambda_per_cell must hold finite numbers >= 0{where}, "
                    f"got calab.lambda_per_cell[{i}] = {shown(v)}"
                )
            per_cell.append(x)
        if not min(per_cell) <= lam <= max(per_cell):
            # Any recording-wide summary (the median written by export_dict, or one over a
            # subset of cells) lies in this range; outside it, the file was edited by hand.
            warnings.warn(
                f"parameters.lambda ({lam:g}){where} is outside the range of "
                f"calab.lambda_per_cell ({min(per_cell):g} to {max(per_cell):g}); calab uses "
                "the per-cell values, CaTune uses parameters.lambda",
                UserWarning,
                stacklevel=4,
            )
        extras["lambda_per_cell"] = per_cell
    mode = block.get("baseline", "constant")
    if not isinstance(mode, str) or mode not in BASELINE_MODES:
        raise ValueError(
            f"calab.baseline must be one of {', '.join(map(repr, BASELINE_MODES))}{where}, "
            f"got {shown(mode)}"
        )
    window = block.get("baseline_window_s")
    if window is not None:
        ok = not isinstance(window, bool) and isinstance(window, numbers.Real)
        seconds = real_float(window, "baseline_window_s") if ok else math.nan
        if not math.isfinite(seconds) or seconds <= 0:
            raise ValueError(
                f"calab.baseline_window_s must be a positive number of seconds or null{where}, "
                f"got {shown(window)}"
            )
        window = seconds
    if mode != "constant":
        extras["baseline"] = mode
        extras["baseline_window_s"] = window
    return extras


def params_from_export(
    export: Mapping[str, Any], *, source: str = "", lenient: bool = False
) -> dict[str, Any]:
    """Validate a CaTune export object and return its deconvolution parameters.

    Parameters
    ----------
    export : dict
        A parsed export JSON (schema 1.1.0 or 1.2.0).
    source : str
        Where it came from, for error messages.
    lenient : bool
        Read hand-written exports as the CaLab package does: a missing
        ``parameters.filter_enabled`` means False, and a missing ``schema_version`` is read
        as 1.1.0 with a warning. Everything else is checked as strictly.

    Returns
    -------
    dict
        ``{'tau_rise', 'tau_decay', 'lambda_', 'fs', 'filter_enabled'}`` (seconds, Hz), plus
        calab's extras when the export has a ``"calab"`` key (see :func:`calab_extensions`):
        ``'lambda_per_cell'`` (list of float, one per cell) when present, and ``'baseline'``
        and ``'baseline_window_s'`` when the baseline is not ``"constant"``.
        :meth:`calab.params.Params.from_export` reads this dict.

    Raises
    ------
    ValueError
        Unknown schema version, missing fields or bad values (the message names them).
    """
    where = f" in {source}" if source else ""
    if not isinstance(export, Mapping):
        raise ValueError(
            f"a CaTune export must be a JSON object{where}, got {type(export).__name__}"
        )
    version = export.get("schema_version")
    if version is None and lenient and isinstance(export.get("parameters"), Mapping):
        warnings.warn(
            f"CaTune export{where} has no schema_version; reading it as {ASSUMED_SCHEMA}",
            UserWarning,
            stacklevel=3,
        )
        version = ASSUMED_SCHEMA
    if version is None:
        raise ValueError(
            f"not a CaTune export{where}: no schema_version (top-level keys: "
            f"{', '.join(sorted(map(str, export))) or 'none'})"
        )
    if "parameters" not in export and {"sampling_rate_hz", "num_cells"} <= set(export):
        raise ValueError(
            f"not a CaTune export{where}: it is the metadata of tuning files (written by "
            "calab convert / save_for_tuning), which hold traces, not parameters; pass the "
            "export JSON of calab tune -o, calab estimate -o or the CaTune app (or --auto)"
        )
    if version not in READABLE_SCHEMAS:
        raise ValueError(
            f"unknown CaTune export schema_version {shown(version)}{where}; this calab reads "
            f"{' and '.join(READABLE_SCHEMAS)} (upgrade calab for newer exports)"
        )
    params = export.get("parameters")
    if not isinstance(params, Mapping):
        raise ValueError(f"CaTune export{where} has no 'parameters' object")
    if lenient and "filter_enabled" not in params:
        params = {**params, "filter_enabled": False}
    required = ("tau_rise_s", "tau_decay_s", "lambda", "sampling_rate_hz", "filter_enabled")
    missing = [k for k in required if k not in params]
    if missing:
        raise ValueError(
            f"CaTune export{where} lacks parameters {', '.join(missing)} "
            f"(present: {', '.join(sorted(map(str, params))) or 'none'})"
        )
    tr = _number(params, "tau_rise_s", where)
    td = _number(params, "tau_decay_s", where)
    lam = _number(params, "lambda", where)
    fs = _number(params, "sampling_rate_hz", where)
    enabled = params["filter_enabled"]
    if not isinstance(enabled, bool):
        raise ValueError(
            f"parameters.filter_enabled must be true or false{where}, got {shown(enabled)}"
        )
    try:
        tr, td, fs = model_params(tr, td, fs)
        lam = lam_value(lam)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad parameters{where}: {exc}") from None
    out = {"tau_rise": tr, "tau_decay": td, "lambda_": lam, "fs": fs, "filter_enabled": enabled}
    if CALAB_KEY in export:
        out.update(_calab_extras(export[CALAB_KEY], lam, where))
    return out


def write_export(path: PathLike, export: dict[str, Any], *, force: bool = False) -> Path:
    """Write an export object as JSON (validated first).

    Parameters
    ----------
    path : str or path-like
        Destination ``.json`` file.
    export : dict
        From :func:`export_dict` (or the tuning UI).
    force : bool
        Replace an existing file; without it an existing file raises FileExistsError.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    p = Path(path).expanduser()
    params_from_export(export)
    if p.is_dir():
        raise IsADirectoryError(f"{p} is a folder; give the export a file name such as params.json")
    if is_present(p) and not force:
        raise FileExistsError(f"{p} already exists; pass force=True (--force) to replace it")
    if not p.parent.is_dir():
        raise FileNotFoundError(f"folder does not exist: {p.parent}")
    text = json.dumps(export, indent=2, allow_nan=False) + "\n"
    return write_atomic(p, text, overwrite=force)


def load_export_params(path: PathLike) -> dict[str, Any]:
    """Load deconvolution parameters from a CaTune export JSON file.

    Read as leniently as the CaLab package where that is safe: a missing
    ``parameters.filter_enabled`` means False, and a missing ``schema_version`` is read as
    1.1.0 with a warning. Other missing or bad fields raise ValueError naming them.

    Parameters
    ----------
    path : str or path-like
        The export JSON file.

    Returns
    -------
    dict
        ``{'tau_rise', 'tau_decay', 'lambda_', 'fs', 'filter_enabled'}``, e.g.
        ``{'tau_rise': 0.02, 'tau_decay': 0.4, 'lambda_': 0.01, 'fs': 30.0,
        'filter_enabled': False}``; an export with a ``"calab"`` key adds
        ``'lambda_per_cell'`` and/or ``'baseline'`` and ``'baseline_window_s'`` (see
        :func:`params_from_export`).
    """
    p = require_file(path, "CaTune export")
    with open(p, "rb") as fh:
        raw = fh.read(_MAX_EXPORT_BYTES + 1)
    if len(raw) > _MAX_EXPORT_BYTES:
        raise ValueError(f"{p} is larger than 64 MiB; a CaTune export is a few kB of JSON")
    try:
        export = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ValueError(f"{p} is not valid JSON ({exc}); expected a CaTune export") from None
    return params_from_export(export, source=str(p), lenient=True)


_SOLVER_KEYWORDS = ("method", "max_iters", "tol", "n_threads")
_OVERRIDES = ("baseline", "baseline_window_s")


def _n_cells(traces: Any) -> int | None:
    """Cells in 1-D or 2-D traces (numpy, dask or xarray); None for other shapes."""
    from calab.lazy import _frame_and_cell_dims, is_dataarray

    if is_dataarray(traces):
        _, cell = _frame_and_cell_dims(traces)
        return 1 if cell is None else int(traces.sizes[cell])
    shape = np.shape(traces)
    return {1: 1, 2: int(shape[0])}.get(len(shape))


def deconvolve_from_export(
    traces: Any,
    params_path: PathLike | Mapping[str, Any],
    return_full: bool = False,
    **kwargs: Any,
) -> Any:
    """Deconvolve traces with the parameters of a CaTune export.

    Builds :class:`calab.params.Params` from the export (:meth:`Params.from_export`) and
    solves as :func:`calab.run_deconvolution` does, band-pass filtering first when the export
    has ``filter_enabled``. calab's extensions are honoured: ``calab.lambda_per_cell`` (one
    lambda per row of ``traces``, in order) replaces ``parameters.lambda``, and
    ``calab.baseline`` / ``calab.baseline_window_s`` select the drift-following baseline.

    Parameters
    ----------
    traces : array_like, shape (n_cells, n_timepoints) or (n_timepoints,)
        A dask array or xarray DataArray is solved lazily, as by :func:`calab.run_deconvolution`.
    params_path : str, path-like or dict
        The export JSON file, or an already parsed export object.
    return_full : bool
        Return :func:`calab.run_deconvolution_full`'s result (activity, baseline,
        reconvolution, iterations, converged) instead of the activity alone.
    **kwargs
        Solver settings as :func:`calab.run_deconvolution` takes them (``max_iters``, ``tol``,
        ``n_threads``, ``method``, ``warm_start``); ``baseline`` and ``baseline_window_s``
        override the export's.

    Returns
    -------
    activity : ndarray, same shape as ``traces``
        Or, with ``return_full=True``, a :class:`calab.DeconvolutionResult`.

    Raises
    ------
    ValueError
        Bad export fields, or a ``calab.lambda_per_cell`` whose length is not the number of
        cells in ``traces`` (the message gives both).
    """
    from calab.deconvolution import solve
    from calab.lazy import is_lazy
    from calab.params import SolverOptions

    if not isinstance(return_full, bool | np.bool_):
        raise TypeError(f"return_full must be True or False, got {return_full!r}")
    unknown = sorted(set(kwargs) - {*_SOLVER_KEYWORDS, *_OVERRIDES, "warm_start"})
    if unknown:
        raise TypeError(
            f"deconvolve_from_export got an unexpected keyword argument {unknown[0]!r}; it takes "
            f"{', '.join((*_SOLVER_KEYWORDS, 'warm_start', *_OVERRIDES))}"
        )
    if not is_lazy(traces):
        traces = as_real_array(traces, "traces")  # a masked array is refused before any read
    if isinstance(params_path, Mapping):
        source = "the export"
        p = params_from_export(params_path, lenient=True)
    else:
        source = str(params_path)
        p = load_export_params(params_path)
    p.update({k: kwargs[k] for k in _OVERRIDES if k in kwargs})
    params = Params.from_export(p)
    if not isinstance(params.lam, float):
        n = _n_cells(traces)
        if n is not None and n != params.lam.size:
            raise ValueError(
                f"calab.lambda_per_cell in {source} has {params.lam.size} values but the traces "
                f"have {n} cells; deconvolve the recording the parameters were made for (same "
                "cells, same order), or drop the 'calab' key to use parameters.lambda for all"
            )
    options = SolverOptions(**{k: kwargs[k] for k in _SOLVER_KEYWORDS if k in kwargs})
    return solve(traces, params, options, kwargs.get("warm_start"), bool(return_full))
