"""CaImAn HDF5 results (``Estimates.save`` / ``cnmf.save``)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from calab.io._common import (
    PathLike,
    check_finite_rows,
    existing_path,
    make_meta,
    sampling_rate,
    traces_matrix,
)
from calab.io._deps import require

TraceKind = Literal["C", "C+YrA"]


def _listing(group: Any) -> str:
    keys = sorted(group.keys())
    shown = ", ".join(keys[:30]) + (f", ... ({len(keys)} in all)" if len(keys) > 30 else "")
    name = group.name.strip("/") or "the file's top level"
    return f"{name} holds: {shown or 'nothing'}"


def _get(f: Any, key: str, where: str) -> Any:
    """Return the HDF5 object at ``key`` or raise KeyError listing what is there."""
    node = f
    parts = key.split("/")
    for i, part in enumerate(parts):
        if not hasattr(node, "keys") or part not in node:
            hint = _listing(node) if hasattr(node, "keys") else f"{node.name} is a dataset"
            raise KeyError(
                f"{'/'.join(parts[: i + 1])} not found in {where}; {hint}. "
                "Is this a CaImAn results file (saved with cnm.save('....hdf5'))?"
            )
        node = node[part]
    return node


def _scalar(ds: Any) -> Any:
    """A CaImAn-saved scalar (0-d dataset); None for CaImAn's 'NoneType' placeholder."""
    value = ds[()]
    if isinstance(value, bytes | str | np.bytes_ | np.str_):
        return None
    arr = np.asarray(value)
    if arr.size != 1:
        return None
    return arr.reshape(()).item()


def read_caiman(
    path: PathLike,
    *,
    trace: TraceKind = "C",
    accepted_only: bool = True,
    fs: float | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Like :func:`load_caiman` but without the finiteness check (used by ``calab info``)."""
    if trace not in ("C", "C+YrA"):
        raise ValueError(f"trace must be 'C' or 'C+YrA', got {trace!r}")
    h5py = require("h5py")
    p = existing_path(path, "CaImAn file")
    if p.is_dir():
        raise IsADirectoryError(f"expected a CaImAn .hdf5 file, got the folder {p}")
    try:
        f = h5py.File(p, "r")
    except OSError as exc:
        raise OSError(
            f"cannot read {p} as HDF5 ({exc}); the file may be truncated, corrupt or "
            "not a CaImAn .hdf5 file"
        ) from None
    try:
        where = str(p)
        c_ds = _get(f, "estimates/C", where)
        if not isinstance(c_ds, h5py.Dataset) or c_ds.dtype.kind not in "iuf":
            raise ValueError(
                f"estimates/C in {where} is not a numeric array (CaImAn stores 'NoneType' "
                "there before the CNMF fit has run); fit and save the model first"
            )
        c = traces_matrix(c_ds[()], "estimates/C", where)
        if trace == "C+YrA":
            yra = _get(f, "estimates/YrA", where)
            if not isinstance(yra, h5py.Dataset) or yra.dtype.kind not in "iuf":
                raise ValueError(f"estimates/YrA in {where} holds no residual traces")
            r = traces_matrix(yra[()], "estimates/YrA", where)
            if r.shape != c.shape:
                raise ValueError(
                    f"estimates/YrA has shape {r.shape} but estimates/C has shape {c.shape} "
                    f"in {where}"
                )
            c = c + r
        if c.shape[0] == 0 or c.shape[1] == 0:
            raise ValueError(f"estimates/C in {where} is empty (shape {c.shape})")
        cell_ids = np.arange(c.shape[0])
        if accepted_only and "idx_components" in f["estimates"]:
            ds = f["estimates/idx_components"]
            idx = np.asarray(ds[()]) if ds.dtype.kind in "iub" else None
            if idx is not None and idx.ndim == 1:
                if idx.dtype.kind == "b":
                    if idx.size != c.shape[0]:
                        raise ValueError(
                            f"estimates/idx_components in {where} is a mask of {idx.size} "
                            f"entries for {c.shape[0]} components"
                        )
                    idx = np.flatnonzero(idx)
                idx = np.asarray(idx, dtype=np.int64)
                if idx.size and (idx.min() < 0 or idx.max() >= c.shape[0]):
                    raise ValueError(
                        f"estimates/idx_components in {where} indexes component {idx.max()} "
                        f"but estimates/C has only {c.shape[0]}"
                    )
                if idx.size == 0:
                    raise ValueError(
                        f"no accepted components in {where} (estimates/idx_components is "
                        "empty); pass accepted_only=False to load all of them"
                    )
                cell_ids = np.sort(idx)
                c = np.ascontiguousarray(c[cell_ids])
        if fs is None:
            fr = None
            if "params" in f and "data" in f["params"] and "fr" in f["params/data"]:
                fr = _scalar(f["params/data/fr"])
            if fr is None:
                raise KeyError(
                    f"{where} stores no frame rate (params/data/fr); pass fs= (--fs on the "
                    "command line) with the sampling rate in Hz"
                )
            fs_ = sampling_rate(fr, f"params/data/fr in {where}")
        else:
            fs_ = sampling_rate(fs, "fs")
    finally:
        f.close()
    meta = make_meta("caiman", fs_, c, cell_ids=cell_ids.tolist(), trace=trace, path=str(p))
    return c, meta


def load_caiman(
    path: PathLike,
    *,
    trace: TraceKind = "C",
    accepted_only: bool = True,
    fs: float | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Load traces from a CaImAn results file (HDF5, as written by ``cnm.save``).

    Parameters
    ----------
    path : str or path-like
        The ``.hdf5`` file.
    trace : {"C", "C+YrA"}
        ``"C"``: the denoised traces ``estimates/C``. ``"C+YrA"``: ``C`` plus the residuals
        ``estimates/YrA``, the raw-like trace that keeps the noise.
    accepted_only : bool
        Keep only the components listed in ``estimates/idx_components`` (the ones accepted by
        ``evaluate_components``). All components are kept when the file has no such list.
    fs : float, optional
        Sampling rate in Hz; by default read from ``params/data/fr``.

    Returns
    -------
    traces : ndarray of float64, shape (n_cells, n_timepoints)
    meta : dict
        ``source`` ("caiman"), ``sampling_rate_hz``, ``num_cells``, ``num_timepoints``,
        ``cell_ids`` (rows of ``estimates/C`` that were kept), ``trace``, ``path``.

    Raises
    ------
    ImportError
        If h5py is missing (``pip install calab[loaders]``).
    KeyError
        If the file lacks ``estimates/C`` (the message lists what it holds) or a frame rate.
    ValueError
        If a trace holds NaN or Inf (the message names the cells).
    """
    traces, meta = read_caiman(path, trace=trace, accepted_only=accepted_only, fs=fs)
    check_finite_rows(traces, f"estimates/{trace}", str(path), meta["cell_ids"])
    return traces, meta
