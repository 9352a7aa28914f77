"""Input checks shared by the public API: clear errors naming the argument and the fix."""

from __future__ import annotations

import math
import numbers
import warnings
from typing import Any

import numpy as np

#: Smallest tau_decay * fs (frames) accepted: below it exp(-1/(tau_decay fs)) leaves float64's
#: normal range and the kernel cannot be normalised (rust/src/kernel.rs has the same bound).
MIN_DECAY_FRAMES = 1.0 / 700.0
#: Longest kernel accepted, in samples (as rust/src/kernel.rs).
MAX_KERNEL_LEN = 50_000_000


def shown(value: Any, limit: int = 60) -> str:
    """Return ``repr(value)`` for an error message, shortened to about ``limit`` characters.

    A huge integer (say 400 digits from a JSON file) is described by its number of digits:
    its repr would flood the message (and beyond 4,300 digits Python refuses to print it).
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 200:
        digits = math.floor(value.bit_length() * math.log10(2)) + 1
        return f"{'a negative' if value < 0 else 'an'} integer of about {digits} digits"
    text = repr(value)
    return text if len(text) <= limit else f"{text[: limit - 3]}..."


def described(value: Any) -> str:
    """Return the type and :func:`shown` value of a wrong-typed value, for an error message."""
    text = shown(value)
    return text if text.endswith(" digits") else f"{type(value).__name__} {text}"


def real_float(value: Any, name: str, expected: str = "a number") -> float:
    """Read a real number as a float, the one number reader of arguments, files and messages.

    Raises TypeError ``"{name} must be {expected}, got ..."`` for anything else (bool,
    str, None). An integer beyond float64's range (a 400-digit JSON integer is valid JSON)
    becomes +-inf, as JSON's ``1e400`` does, instead of ``float()``'s bare OverflowError, so
    the caller's finiteness check refuses it naming ``name``.
    """
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be {expected}, got {described(value)}")
    number: Any = value  # an int or a Fraction beyond float64's range
    try:
        return float(number)
    except OverflowError:
        return math.inf if number > 0 else -math.inf


def positive(value: Any, name: str, hint: str) -> float:
    """Return ``value`` as a positive finite float or raise naming ``name``."""
    v = real_float(value, name, f"a number ({hint})")
    if not math.isfinite(v) or v <= 0:
        raise ValueError(f"{name} must be a positive number ({hint}), got {shown(value)}")
    return v


def model_params(tau_rise: Any, tau_decay: Any, fs: Any) -> tuple[float, float, float]:
    """Validate kernel parameters (seconds, Hz)."""
    fs_ = positive(fs, "fs", "sampling rate in Hz, e.g. 30.0")
    tr = positive(tau_rise, "tau_rise", "rise time in seconds, e.g. 0.05")
    td = positive(tau_decay, "tau_decay", "decay time in seconds, e.g. 0.5")
    if tr >= td:
        raise ValueError(
            f"tau_rise ({tr} s) must be smaller than tau_decay ({td} s); "
            "swap them if they were given in the wrong order"
        )
    frames = td * fs_
    if not frames >= MIN_DECAY_FRAMES:
        raise ValueError(
            f"tau_decay * fs = {frames:.3g} frames is below 1/700: the kernel would decay to "
            "nothing within one frame (beyond the range of float64); check the units "
            "(tau_decay in seconds, fs in Hz)"
        )
    length = -math.log(1e-6) * frames
    if not length <= MAX_KERNEL_LEN:
        raise ValueError(
            f"tau_decay * fs = {frames:.3g} gives a kernel of {length:.3g} samples (at most "
            f"{MAX_KERNEL_LEN}); check the units (tau_decay in seconds, fs in Hz)"
        )
    return tr, td, fs_


def lam_value(lam: Any) -> float:
    """Validate the sparsity penalty lambda (>= 0)."""
    v = real_float(lam, "lam", "a number >= 0")
    if not math.isfinite(v) or v < 0:
        raise ValueError(f"lam must be a finite number >= 0, got {shown(lam)}")
    return v


def as_real_array(values: Any, name: str) -> np.ndarray:
    """``np.asarray(values)``, refusing masked arrays and ragged nested lists by name."""
    if np.ma.isMaskedArray(values):
        raise TypeError(
            f"{name} is a masked array; calab does not honour masks. Fill or interpolate the "
            f"masked frames first (e.g. np.ma.filled({name}, np.nan) then interpolate), "
            f"or pass {name}.data if the mask does not matter"
        )
    try:
        return np.asarray(values)
    except ValueError as exc:
        if "inhomogeneous" not in str(exc) and "sequence" not in str(exc):
            raise
        raise ValueError(
            f"{name} is a ragged list (rows of different lengths); pass a rectangular "
            "(n_cells, n_frames) array, e.g. trimmed or padded to one length"
        ) from None


def traces_2d(traces: Any, name: str = "traces") -> tuple[np.ndarray, bool]:
    """Return (C-contiguous float32/float64 2-D array, was_1d).

    Accepts 1-D (n_frames,) or 2-D (n_cells, n_frames) arrays of any real numeric dtype and
    any memory layout. float32 stays float32 (no copy when contiguous); other types become float64.
    """
    arr = as_real_array(traces, name)
    if arr.dtype == object or arr.dtype.kind not in "iuf":
        raise TypeError(
            f"{name} must hold real numbers, got dtype {arr.dtype}; "
            "convert with np.asarray(..., dtype=float)"
        )
    if arr.ndim not in (1, 2):
        raise ValueError(
            f"{name} must be 1-D (n_frames,) or 2-D (n_cells, n_frames), got {arr.ndim}-D "
            f"with shape {arr.shape}"
        )
    if arr.size == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); pass at least one frame")
    was_1d = arr.ndim == 1
    arr2 = arr[np.newaxis, :] if was_1d else arr
    dtype = np.float32 if arr2.dtype == np.float32 else np.float64
    return np.ascontiguousarray(arr2, dtype=dtype), was_1d


def check_finite(arr: np.ndarray, name: str = "traces") -> None:
    """Raise ValueError naming the first cell and frame holding NaN or Inf."""
    if not np.isfinite(arr).all():
        bad = np.argwhere(~np.isfinite(arr))[0]
        if arr.ndim == 1:
            raise ValueError(
                f"{name} contains NaN or Inf at frame {bad[0]}; remove or interpolate it first"
            )
        raise ValueError(
            f"{name} contain NaN or Inf at cell {bad[0]}, frame {bad[1]}; "
            "remove or interpolate those frames first"
        )


# ----------------------------------------------------------------------------- plausibility
# Valid values that are almost surely a slip of units or orientation: warned about (naming the
# values and the likely fix), never refused. The impossible ones are refused above.

#: No calcium indicator decays this slowly (GCaMP6s and nuclear GCaMPs: a few seconds).
MAX_PLAUSIBLE_DECAY_S = 10.0
#: No calcium indicator rises this slowly (about 0.01-0.3 s).
MAX_PLAUSIBLE_RISE_S = 1.0
#: Imaging runs at a few Hz at least; below this, fs is probably a frame period in seconds.
MIN_PLAUSIBLE_FS = 0.5
#: A (frames, cells) array is suspected when it has more rows than columns and at least this
#: many rows (the frames of the shortest recording the estimate reads).
MIN_SUSPECT_ROWS = 200
#: Relative difference at which a given sampling rate disagrees with the one a file stores.
RATE_TOLERANCE = 1e-3


def implausible(
    fs: float | None = None,
    tau_rise: float | None = None,
    tau_decay: float | None = None,
    shape: tuple[int, ...] | None = None,
) -> list[str]:
    """Return a message for each valid but implausible value (units, orientation)."""
    out: list[str] = []
    if tau_decay is not None and tau_decay > MAX_PLAUSIBLE_DECAY_S:
        out.append(
            f"tau_decay = {tau_decay:g} s is far longer than calcium indicators decay (about "
            f"0.1-3 s); time constants are in seconds: if {tau_decay:g} is in milliseconds, "
            f"pass {tau_decay / 1000:g}"
        )
    if tau_rise is not None and tau_rise > MAX_PLAUSIBLE_RISE_S:
        out.append(
            f"tau_rise = {tau_rise:g} s is far longer than calcium indicators rise (about "
            f"0.01-0.3 s); time constants are in seconds: if {tau_rise:g} is in milliseconds, "
            f"pass {tau_rise / 1000:g}"
        )
    if fs is not None and fs < MIN_PLAUSIBLE_FS:
        out.append(
            f"fs = {fs:g} Hz is a very low sampling rate; fs is in Hz (frames per second): if "
            f"{fs:g} is the frame period in seconds, the rate is {1 / fs:.4g} Hz"
        )
    if shape is not None and len(shape) == 2 and shape[0] > max(shape[1], MIN_SUSPECT_ROWS - 1):
        out.append(
            f"the traces have more cells ({shape[0]}) than frames ({shape[1]}); traces are "
            "(n_cells, n_frames): if yours are (n_frames, n_cells), pass them transposed "
            "(traces.T)"
        )
    return out


def warn_implausible(
    fs: float | None = None,
    tau_rise: float | None = None,
    tau_decay: float | None = None,
    shape: tuple[int, ...] | None = None,
    *,
    stacklevel: int = 2,
) -> bool:
    """Warn (UserWarning) once for each valid but implausible value; see :func:`implausible`.

    Called once per public call (``run_deconvolution``, ``estimate_parameters``,
    ``deconvolve_file``), with the caller's ``stacklevel``. Returns whether it warned.
    """
    messages = implausible(fs, tau_rise, tau_decay, shape)
    for message in messages:
        warnings.warn(message, UserWarning, stacklevel=stacklevel + 1)
    return bool(messages)


def warn_rate_override(given: float, stored: float | None, where: str) -> None:
    """Warn when a given sampling rate (``fs=``, ``--fs``) disagrees with the file's own."""
    if stored is None or math.isclose(given, stored, rel_tol=RATE_TOLERANCE):
        return
    warnings.warn(
        f"fs = {given:g} Hz was given but {where} stores a sampling rate of {stored:g} Hz; "
        f"using {given:g} Hz; if the file is right, every time in seconds (such as estimated "
        f"time constants) comes out scaled by {stored / given:.3g}: leave out fs (--fs) to use "
        "the file's rate",
        UserWarning,
        stacklevel=3,
    )
