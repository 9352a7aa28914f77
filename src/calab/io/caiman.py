"""CaImAn HDF5 results (``Estimates.save`` / ``cnmf.save``)."""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

import numpy as np

from calab._validate import warn_rate_override
from calab.io._common import (
    PathLike,
    check_declared_size,
    check_finite_rows,
    make_meta,
    require_file,
    sampling_rate,
)
from calab.io._deps import require

TraceKind = Literal["C", "C+YrA"]
IDX_KEY = "estimates/idx_components"
YRA_KEY = "estimates/YrA"

# h5py reports corrupt files, broken links and unreadable chunks with these.
_H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, AttributeError)


@contextmanager
def _h5(where: str, what: str) -> Iterator[None]:
    """Turn h5py's errors while reading ``what`` into an OSError naming the file and key."""
    try:
        yield
    except _H5_ERRORS as exc:
        raise OSError(
            f"cannot read {what} from {where} ({type(exc).__name__}: {exc}); the file may be "
            "truncated or corrupt, or hold broken links"
        ) from None


def _listing(group: Any) -> str:
    keys = sorted(group.keys())
    shown = ", ".join(keys[:30]) + (f", ... ({len(keys)} in all)" if len(keys) > 30 else "")
    name = group.name.strip("/") or "the file's top level"
    return f"{name} holds: {shown or 'nothing'}"


def _get(h5py: Any, f: Any, key: str, where: str, *, required: bool = True) -> Any:
    """Return the HDF5 object at ``key`` (None if absent and not ``required``).

    Raises KeyError naming the full key and listing what the file holds where the path stops;
    refuses external links (they would read another file) and dangling links.
    """
    node = f
    parts = [p for p in key.split("/") if p]
    if not parts:
        raise ValueError(f"empty HDF5 key {key!r}")
    for i, part in enumerate(parts):
        sub = "/".join(parts[: i + 1])
        with _h5(where, sub):
            is_group = isinstance(node, h5py.Group)
            link = node.get(part, getlink=True) if is_group else None
            hint = _listing(node) if is_group else f"{node.name.strip('/')} is a dataset"
        if link is None:
            if not required:
                return None
            stop = "" if sub == key.strip("/") else f": {sub} not found"
            raise KeyError(
                f"{key} not found in {where}{stop}; {hint}. "
                "Is this a CaImAn results file (saved with cnm.save('....hdf5'))?"
            )
        if isinstance(link, h5py.ExternalLink):
            raise ValueError(
                f"{sub} in {where} is an external link to {link.filename}:{link.path}; calab "
                "reads only data stored in the file itself"
            )
        with _h5(where, sub):
            child = node.get(part)
        if child is None and isinstance(link, h5py.SoftLink):
            raise KeyError(f"{sub} in {where} is a link to the missing object {link.path}")
        if child is None:
            raise OSError(f"cannot read {sub} from {where}: the object is unreadable (corrupt)")
        node = child
    return node


def _dataset(h5py: Any, node: Any, key: str, where: str) -> Any:
    """``node`` if it is a dataset stored in the file (not external, not virtual), else None."""
    if not isinstance(node, h5py.Dataset):
        return None
    with _h5(where, key):
        external = node.external
        virtual = node.is_virtual
    if external or virtual:
        raise ValueError(
            f"{key} in {where} keeps its data in other files "
            f"({'a virtual dataset' if virtual else 'external storage'}); calab reads only "
            "data stored in the file itself"
        )
    return node


def _check_stored(ds: Any, where: str, key: str) -> None:
    """Refuse an uncompressed dataset declaring more bytes than the whole file holds.

    Its shape comes from the header alone; a damaged or crafted header would otherwise make
    the reader allocate (and fill) whatever it claims. A compressed dataset can legitimately
    declare more than its file holds and is not checked here.
    """
    with _h5(where, key):
        declared = math.prod(ds.shape) * ds.dtype.itemsize
        filtered = bool(ds.id.get_create_plist().get_nfilters())
    if not filtered:
        check_declared_size(
            declared,
            os.stat(where).st_size,
            f"{key} in {where}",
            f"shape {tuple(ds.shape)} of {ds.dtype}",
        )


def _scalar(ds: Any, where: str, key: str) -> Any:
    """Read a CaImAn-saved scalar (0-d dataset); None for CaImAn's 'NoneType' placeholder."""
    with _h5(where, key):
        value = ds[()]
    if isinstance(value, bytes | str | np.bytes_ | np.str_):
        return None
    arr = np.asarray(value)
    if arr.size != 1 or arr.dtype.kind not in "iuf":
        return None
    return arr.reshape(()).item()


def _accepted(h5py: Any, f: Any, n_rows: int, where: str) -> np.ndarray | None:
    """Return the rows listed in ``estimates/idx_components`` (sorted, unique).

    None if the file has no list (CaImAn stores 'NoneType' before ``evaluate_components``).
    """
    node = _get(h5py, f, IDX_KEY, where, required=False)
    ds = _dataset(h5py, node, IDX_KEY, where) if node is not None else None
    if ds is None:
        return None
    with _h5(where, IDX_KEY):
        kind, ndim, shape = ds.dtype.kind, ds.ndim, ds.shape
        idx = np.asarray(ds[()]) if kind in "iub" and ndim == 1 else None
    if kind in "SUO" and ndim == 0:  # 'NoneType': not evaluated yet
        return None
    if kind not in "iub":
        raise ValueError(
            f"{IDX_KEY} in {where} has dtype {ds.dtype}; CaImAn stores the accepted "
            "components as integer indices. Fix the file, or pass accepted_only=False to load "
            "every component"
        )
    if idx is None:
        raise ValueError(
            f"{IDX_KEY} in {where} must be 1-D (a list of component indices), got shape "
            f"{shape}; pass accepted_only=False to load every component"
        )
    if kind == "b":
        if idx.size != n_rows:
            raise ValueError(
                f"{IDX_KEY} in {where} is a mask of {idx.size} entries for {n_rows} components"
            )
        idx = np.flatnonzero(idx)
    idx = np.asarray(idx, dtype=np.int64)
    if idx.size == 0:
        raise ValueError(
            f"no accepted components in {where} ({IDX_KEY} is empty); pass accepted_only=False "
            "to load all of them"
        )
    bad = idx[(idx < 0) | (idx >= n_rows)]
    if bad.size:
        raise ValueError(
            f"{IDX_KEY} in {where} holds the index {int(bad[0])}, outside 0..{n_rows - 1} "
            f"(the components of the traces); the file is inconsistent"
        )
    return np.unique(idx)


class CaimanRows:
    """A CaImAn HDF5 file opened for reading rows lazily (bounded memory).

    ``rows(start, stop)`` returns traces ``start:stop`` of the selected components as float64;
    ``shape``, ``fs`` (None when the file stores no frame rate and none was given),
    ``cell_ids``, ``meta_extra`` describe the whole selection. Close when done. The
    arguments are those of :func:`load_caiman`.
    """

    def __init__(
        self,
        path: PathLike,
        trace_key: str = "estimates/C",
        fs_key: str = "params/data/fr",
        fs: float | None = None,
        *,
        accepted_only: bool = False,
        trace: TraceKind = "C",
    ) -> None:
        if trace not in ("C", "C+YrA"):
            raise ValueError(f"trace must be 'C' or 'C+YrA', got {trace!r}")
        for name, key in (("trace_key", trace_key), ("fs_key", fs_key)):
            if not isinstance(key, str):
                raise TypeError(f"{name} must be an HDF5 key (a str), got {key!r}")
        fs_ = None if fs is None else sampling_rate(fs, "fs")
        h5py = require("h5py")
        p = require_file(path, "CaImAn file")
        where = str(p)
        try:
            self._f: Any = h5py.File(p, "r")
        except _H5_ERRORS as exc:
            raise OSError(
                f"cannot read {p} as HDF5 ({exc}); the file may be truncated, corrupt or "
                "not a CaImAn .hdf5 file"
            ) from None
        try:
            self._open(h5py, where, trace_key, fs_key, fs_, accepted_only, trace)
        except BaseException:
            self._f.close()
            raise

    def _open(
        self,
        h5py: Any,
        where: str,
        trace_key: str,
        fs_key: str,
        fs: float | None,
        accepted_only: bool,
        trace: TraceKind,
    ) -> None:
        f = self._f
        key = trace_key.strip("/")
        c_ds = _dataset(h5py, _get(h5py, f, key, where), key, where)
        with _h5(where, key):
            kind = c_ds.dtype.kind if c_ds is not None else ""
            dims = tuple(c_ds.shape) if c_ds is not None else ()
        if c_ds is None or kind not in "iuf":
            raise ValueError(
                f"{key} in {where} is not a numeric array (CaImAn stores 'NoneType' "
                "there before the CNMF fit has run); fit and save the model first"
            )
        if len(dims) not in (1, 2):  # said from the header: nothing is read
            raise ValueError(
                f"{key} in {where} must be 2-D (n_cells, n_frames), got {len(dims)}-D with "
                f"shape {dims}"
            )
        shape = (1, dims[0]) if len(dims) == 1 else (dims[0], dims[1])
        if shape[0] == 0 or shape[1] == 0:
            raise ValueError(f"{key} in {where} is empty (shape {dims})")
        _check_stored(c_ds, where, key)
        self._c = c_ds
        self._yra = None
        if trace == "C+YrA":
            yra = _dataset(h5py, _get(h5py, f, YRA_KEY, where), YRA_KEY, where)
            with _h5(where, YRA_KEY):
                ok = yra is not None and yra.dtype.kind in "iuf"
                yshape = tuple(yra.shape) if yra is not None else ()
            if not ok:
                raise ValueError(f"{YRA_KEY} in {where} holds no residual traces")
            if yshape != dims:
                raise ValueError(
                    f"{YRA_KEY} has shape {yshape} but {key} has shape {dims} in {where}"
                )
            _check_stored(yra, where, YRA_KEY)
            self._yra = yra
        cell_ids = np.arange(shape[0])
        if accepted_only:
            accepted = _accepted(h5py, f, shape[0], where)
            if accepted is not None:
                cell_ids = accepted
        if fs is None:
            node = _get(h5py, f, fs_key, where, required=False)
            ds = _dataset(h5py, node, fs_key, where) if node is not None else None
            fr = _scalar(ds, where, fs_key) if ds is not None else None
            fs = None if fr is None else sampling_rate(fr, f"{fs_key} in {where}")
        else:  # the given rate wins; a stored one that disagrees is named
            try:
                node = _get(h5py, f, fs_key, where, required=False)
                ds = _dataset(h5py, node, fs_key, where) if node is not None else None
                fr = _scalar(ds, where, fs_key) if ds is not None else None
                stored = None if fr is None else sampling_rate(fr, where)
            except (KeyError, OSError, TypeError, ValueError):  # unreadable: fs= replaces it
                stored = None
            warn_rate_override(fs, stored, f"{where} ({fs_key})")
        self.fs: float | None = fs
        #: The stored type (of ``C``, or of ``C + YrA``); rows are read as float64.
        yra_dtype = self._yra.dtype if self._yra is not None else c_ds.dtype
        self.dtype = np.result_type(c_ds.dtype, yra_dtype)
        self.cell_ids = cell_ids
        self.shape = (int(cell_ids.size), int(shape[1]))
        self._all = cell_ids.size == shape[0]
        self._where = where
        self._key = key
        self.meta_extra = {"trace": trace, "trace_key": key, "path": where}

    def _read(self, ds: Any, start: int, stop: int, key: str) -> np.ndarray:
        with _h5(self._where, key):
            if ds.ndim == 1:
                return np.asarray(ds[()], dtype=np.float64)[None, :]
            if self._all:
                return np.asarray(ds[start:stop], dtype=np.float64)
            return np.asarray(ds[self.cell_ids[start:stop], :], dtype=np.float64)

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Traces of selected components ``start:stop``, shape (stop - start, n_frames)."""
        c = self._read(self._c, start, stop, self._key)
        if self._yra is not None:
            c = c + self._read(self._yra, start, stop, YRA_KEY)
        return c

    def close(self) -> None:
        """Close the HDF5 file."""
        self._f.close()

    def __enter__(self) -> CaimanRows:
        """Return self; the file closes on leaving the ``with`` block."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the HDF5 file."""
        self.close()


def read_caiman(
    path: PathLike,
    trace_key: str = "estimates/C",
    fs_key: str = "params/data/fr",
    fs: float | None = None,
    *,
    accepted_only: bool = False,
    trace: TraceKind = "C",
) -> tuple[np.ndarray, dict[str, Any]]:
    """Like :func:`load_caiman` but without the finiteness check (used by ``calab info``)."""
    with CaimanRows(path, trace_key, fs_key, fs, accepted_only=accepted_only, trace=trace) as src:
        c = np.ascontiguousarray(src.rows(0, src.shape[0]))
        meta = make_meta("caiman", src.fs, c, cell_ids=src.cell_ids.tolist(), **src.meta_extra)
    return c, meta


def load_caiman(
    path: PathLike,
    trace_key: str = "estimates/C",
    fs_key: str = "params/data/fr",
    fs: float | None = None,
    *,
    accepted_only: bool = False,
    trace: TraceKind = "C",
) -> tuple[np.ndarray, dict[str, Any]]:
    """Load traces from a CaImAn results file (HDF5, as written by ``cnm.save``).

    Parameters
    ----------
    path : str or path-like
        The ``.hdf5`` file.
    trace_key : str
        HDF5 key of the traces, shape (n_cells, n_timepoints) or (n_timepoints,) for one
        cell. Default ``"estimates/C"``, CaImAn's denoised traces.
    fs_key : str
        HDF5 key of the frame rate in Hz. Default ``"params/data/fr"``.
    fs : float, optional
        Sampling rate in Hz; overrides ``fs_key``. When neither gives one,
        ``meta["sampling_rate_hz"]`` is None (deconvolution then needs ``fs``).
    accepted_only : bool
        Keep only the components listed in ``estimates/idx_components`` (the ones accepted by
        ``evaluate_components``), in increasing order. Default False: every row, as stored.
        All rows are kept when the file has no such list.
    trace : {"C", "C+YrA"}
        ``"C+YrA"`` adds the residuals ``estimates/YrA`` to the traces: the raw-like trace
        that keeps the noise.

    Returns
    -------
    traces : ndarray of float64, shape (n_cells, n_timepoints)
    meta : dict
        ``source`` ("caiman"), ``sampling_rate_hz`` (float or None), ``num_cells``,
        ``num_timepoints``, ``cell_ids`` (rows of ``trace_key`` that were kept), ``trace``,
        ``trace_key``, ``path``.

    Raises
    ------
    ImportError
        If h5py is missing (``pip install h5py``).
    FileNotFoundError
        If ``path`` does not exist.
    KeyError
        If the file lacks ``trace_key`` (the message names it and lists what the file holds).
    ValueError
        If a trace holds NaN or Inf (the message names the cells), ``idx_components`` is not
        a list of valid indices, or ``path`` is a FIFO or device.
    OSError
        If the file is not HDF5, is corrupt or truncated (the message names it).
    """
    traces, meta = read_caiman(
        path, trace_key, fs_key, fs, accepted_only=accepted_only, trace=trace
    )
    label = meta["trace_key"] + (" + estimates/YrA" if trace == "C+YrA" else "")
    check_finite_rows(traces, label, meta["path"], meta["cell_ids"])
    return traces, meta
