"""The CaTune export JSON: the parameter file shared by the web app, the widget, the bridge
and the command line (schema 1.2.0 written; 1.1.0 and 1.2.0 read)."""

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

from calab._validate import as_real_array, lam_value, model_params
from calab.io._common import PathLike, is_present, require_file, write_atomic

SCHEMA_VERSION = "1.2.0"
READABLE_SCHEMAS = ("1.1.0", "1.2.0")
ASSUMED_SCHEMA = "1.1.0"  # what a hand-written export without schema_version is read as
_MAX_EXPORT_BYTES = 64 * 2**20  # real exports are a few kB

FORMULATION = {
    "model": "Non-negative sparse deconvolution with a scalar baseline, solved exactly "
    "(active-set method; FISTA with adaptive restart as the reference)",
    "objective": "min_{s>=0, b} (1/2)||y - K*s - b||_2^2 + lambda*G_dc*||s||_1, G_dc = sum(h)",
    "kernel": "h(t) = exp(-t/tau_decay) - exp(-t/tau_rise), normalized to unit peak",
    "ar2_relation": "c[t] = g1*c[t-1] + g2*c[t-2] + s[t], where g1 = decayRoot+riseRoot, "
    "g2 = -(decayRoot*riseRoot), decayRoot = exp(-dt/tau_decay), riseRoot = exp(-dt/tau_rise)",
    "lambda_definition": "L1 penalty weight on the activity s, scaled by the kernel's DC gain "
    "G_dc so one lambda means the same sparsity across kernels",
    "filter": "optional FFT band-pass before deconvolution: high-pass 1/(2*pi*tau_decay*16) Hz, "
    "low-pass min(4/(2*pi*tau_rise), fs/2) Hz, raised-cosine edges",
}


def export_dict(
    *,
    tau_rise: float,
    tau_decay: float,
    lam: float,
    fs: float,
    filter_enabled: bool = False,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the CaTune export JSON object (schema 1.2.0) for these parameters.

    Parameters
    ----------
    tau_rise, tau_decay : float
        Kernel time constants in seconds.
    lam : float
        Sparsity penalty (the export's ``lambda``).
    fs : float
        Sampling rate in Hz of the data the parameters were tuned on.
    filter_enabled : bool
        Whether the band-pass filter is applied before deconvolution.
    metadata : dict, optional
        ``source_filename``, ``num_cells``, ``num_timepoints`` (other keys are kept too).

    Returns
    -------
    dict
        JSON-serialisable: ``schema_version``, ``catune_version``, ``export_date``,
        ``parameters``, ``ar2_coefficients``, ``formulation``, ``metadata``.
    """
    from calab import __version__
    from calab.kernel import kernel_timing, tau_to_ar2

    tr, td, f = model_params(tau_rise, tau_decay, fs)
    lam_ = lam_value(lam)
    if not isinstance(filter_enabled, bool | np.bool_):
        raise TypeError(f"filter_enabled must be True or False, got {filter_enabled!r}")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a dict, got {type(metadata).__name__}")
    g1, g2, d, r = tau_to_ar2(tr, td, f)
    t_peak, fwhm = kernel_timing(tr, td, f)
    meta = {str(k): v for k, v in (metadata or {}).items() if v is not None}
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
    try:
        json.dumps(export, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"metadata must be JSON-serialisable: {exc}") from None
    return export


def _number(params: Mapping[str, Any], key: str, where: str) -> float:
    value = params[key]
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"parameters.{key} must be a number{where}, got {value!r}")
    v = float(value)
    if not math.isfinite(v):
        raise ValueError(f"parameters.{key} must be finite{where}, got {value!r}")
    return v


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
        ``{'tau_rise', 'tau_decay', 'lambda_', 'fs', 'filter_enabled'}`` (seconds, Hz).

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
    if version not in READABLE_SCHEMAS:
        raise ValueError(
            f"unknown CaTune export schema_version {version!r}{where}; this calab reads "
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
        raise ValueError(f"parameters.filter_enabled must be true or false{where}, got {enabled!r}")
    try:
        tr, td, fs = model_params(tr, td, fs)
        lam = lam_value(lam)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad parameters{where}: {exc}") from None
    return {"tau_rise": tr, "tau_decay": td, "lambda_": lam, "fs": fs, "filter_enabled": enabled}


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
        'filter_enabled': False}``.
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


def deconvolve_from_export(
    traces: Any,
    params_path: PathLike | Mapping[str, Any],
    return_full: bool = False,
    **kwargs: Any,
) -> Any:
    """Deconvolve traces with the parameters of a CaTune export.

    Applies :func:`calab.bandpass_filter` first when the export has ``filter_enabled``, then
    :func:`calab.run_deconvolution` with the export's kernel, lambda and sampling rate.

    Parameters
    ----------
    traces : array_like, shape (n_cells, n_timepoints) or (n_timepoints,)
    params_path : str, path-like or dict
        The export JSON file, or an already parsed export object.
    return_full : bool
        Return :func:`calab.run_deconvolution_full`'s result (activity, baseline,
        reconvolution, iterations, converged) instead of the activity alone.
    **kwargs
        Passed to :func:`calab.run_deconvolution` (``max_iters``, ``tol``, ``n_threads``,
        ``method``, ``warm_start``).

    Returns
    -------
    activity : ndarray, same shape as ``traces``
        Or, with ``return_full=True``, a :class:`calab.DeconvolutionResult`.
    """
    from calab.deconvolution import run_deconvolution, run_deconvolution_full
    from calab.filter import bandpass_filter

    if not isinstance(return_full, bool | np.bool_):
        raise TypeError(f"return_full must be True or False, got {return_full!r}")
    as_real_array(traces, "traces")  # a masked array is refused before any file is read
    if isinstance(params_path, Mapping):
        p = params_from_export(params_path, lenient=True)
    else:
        p = load_export_params(params_path)
    data = traces
    if p["filter_enabled"]:
        data = bandpass_filter(traces, p["tau_rise"], p["tau_decay"], p["fs"])
    solve = run_deconvolution_full if return_full else run_deconvolution
    return solve(data, p["fs"], p["tau_rise"], p["tau_decay"], p["lambda_"], **kwargs)
