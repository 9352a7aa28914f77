"""CaImAn HDF5 results (``Estimates.save`` / ``cnmf.save``)."""

from __future__ import annotations

from pathlib import Path
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


class CaimanRows:
    """A CaImAn HDF5 file opened for reading rows lazily (bounded memory).

    ``rows(start, stop)`` returns traces ``start:stop`` of the selected components as float64;
    ``shape``, ``fs``, ``cell_ids``, ``meta`` describe the whole selection. Close when done.
    """

    def __init__(
        self,
        path: PathLike,
        *,
        trace: TraceKind = "C",
        accepted_only: bool = True,
        fs: float | None = None,
    ) -> None:
        if trace not in ("C", "C+YrA"):
            raise ValueError(f"trace must be 'C' or 'C+YrA', got {trace!r}")
        h5py = require("h5py")
        p = existing_path(path, "CaImAn file")
        if p.is_dir():
            raise IsADirectoryError(f"expected a CaImAn .hdf5 file, got the folder {p}")
        try:
            self._f: Any = h5py.File(p, "r")
        except OSError as exc:
            raise OSError(
                f"cannot read {p} as HDF5 ({exc}); the file may be truncated, corrupt or "
                "not a CaImAn .hdf5 file"
            ) from None
        try:
            self._open(h5py, p, trace, accepted_only, fs)
        except BaseException:
            self._f.close()
            raise

    def _open(
        self, h5py: Any, p: Path, trace: TraceKind, accepted_only: bool, fs: float | None
    ) -> None:
        f = self._f
        where = str(p)
        c_ds = _get(f, "estimates/C", where)
        if not isinstance(c_ds, h5py.Dataset) or c_ds.dtype.kind not in "iuf":
            raise ValueError(
                f"estimates/C in {where} is not a numeric array (CaImAn stores 'NoneType' "
                "there before the CNMF fit has run); fit and save the model first"
            )
        if c_ds.ndim == 1:
            traces_matrix(c_ds[()], "estimates/C", where)  # same checks and messages as eager
        elif c_ds.ndim != 2:
            traces_matrix(np.empty(c_ds.shape), "estimates/C", where)
        self._c = c_ds
        self._yra = None
        if trace == "C+YrA":
            yra = _get(f, "estimates/YrA", where)
            if not isinstance(yra, h5py.Dataset) or yra.dtype.kind not in "iuf":
                raise ValueError(f"estimates/YrA in {where} holds no residual traces")
            if yra.shape != c_ds.shape:
                raise ValueError(
                    f"estimates/YrA has shape {yra.shape} but estimates/C has shape "
                    f"{c_ds.shape} in {where}"
                )
            self._yra = yra
        shape = (1, c_ds.shape[0]) if c_ds.ndim == 1 else tuple(c_ds.shape)
        if shape[0] == 0 or shape[1] == 0:
            raise ValueError(f"estimates/C in {where} is empty (shape {shape})")
        cell_ids = np.arange(shape[0])
        if accepted_only and "idx_components" in f["estimates"]:
            ds = f["estimates/idx_components"]
            idx = np.asarray(ds[()]) if ds.dtype.kind in "iub" else None
            if idx is not None and idx.ndim == 1:
                if idx.dtype.kind == "b":
                    if idx.size != shape[0]:
                        raise ValueError(
                            f"estimates/idx_components in {where} is a mask of {idx.size} "
                            f"entries for {shape[0]} components"
                        )
                    idx = np.flatnonzero(idx)
                idx = np.asarray(idx, dtype=np.int64)
                if idx.size and (idx.min() < 0 or idx.max() >= shape[0]):
                    raise ValueError(
                        f"estimates/idx_components in {where} indexes component {idx.max()} "
                        f"but estimates/C has only {shape[0]}"
                    )
                if idx.size == 0:
                    raise ValueError(
                        f"no accepted components in {where} (estimates/idx_components is "
                        "empty); pass accepted_only=False to load all of them"
                    )
                cell_ids = np.unique(idx)
        if fs is None:
            fr = None
            if "params" in f and "data" in f["params"] and "fr" in f["params/data"]:
                fr = _scalar(f["params/data/fr"])
            if fr is None:
                raise KeyError(
                    f"{where} stores no frame rate (params/data/fr); pass fs= (--fs on the "
                    "command line) with the sampling rate in Hz"
                )
            self.fs = sampling_rate(fr, f"params/data/fr in {where}")
        else:
            self.fs = sampling_rate(fs, "fs")
        self.cell_ids = cell_ids
        self.shape = (int(cell_ids.size), int(shape[1]))
        self._all = cell_ids.size == shape[0]
        self.meta_extra = {"trace": trace, "path": str(p)}

    def _read(self, ds: Any, start: int, stop: int) -> np.ndarray:
        if ds.ndim == 1:
            return np.asarray(ds[()], dtype=np.float64)[None, :]
        if self._all:
            return np.asarray(ds[start:stop], dtype=np.float64)
        return np.asarray(ds[self.cell_ids[start:stop], :], dtype=np.float64)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Traces of selected components ``start:stop``, shape (stop - start, n_frames)."""
        c = self._read(self._c, start, stop)
        if self._yra is not None:
            c = c + self._read(self._yra, start, stop)
        return c

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> CaimanRows:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_caiman(
    path: PathLike,
    *,
    trace: TraceKind = "C",
    accepted_only: bool = True,
    fs: float | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Like :func:`load_caiman` but without the finiteness check (used by ``calab info``)."""
    with CaimanRows(path, trace=trace, accepted_only=accepted_only, fs=fs) as src:
        c = np.ascontiguousarray(src.rows(0, src.shape[0]))
        meta = make_meta("caiman", src.fs, c, cell_ids=src.cell_ids.tolist(), **src.meta_extra)
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
