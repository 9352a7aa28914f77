"""NWB (Neurodata Without Borders 2.x, HDF5) files: the ROI response series of optical physiology.

suite2p (``save_nwb``) and CaImAn (``Estimates.save_NWB``) write their traces as
``RoiResponseSeries`` in ``processing/ophys`` (in a ``Fluorescence`` or ``DfOverF`` container),
stored time first ``(n_frames, n_rois)`` and linked to the ROIs of a ``PlaneSegmentation``.
:func:`load_nwb` reads one of them as ``(n_rois, n_frames)``; :class:`NwbRows` reads it a block
of cells at a time for streaming, and :func:`iter_nwb_blocks` yields such blocks.

Which series count as *fluorescence-like* (picked without ``series=``): every
``RoiResponseSeries`` whose name and container name mention none of ``neuropil``,
``background``, ``deconv``, ``spike``, ``spks`` or ``residual``. So suite2p's ``Fluorescence``
is picked over its ``Neuropil`` and ``Deconvolved`` series, and CaImAn's ``RoiResponseSeries``
over its ``Background_Fluorescence_Response``; a file holding two or more such series (raw
fluorescence and dF/F, two planes) must name one.

NWB data are usually chunked along time, with every ROI in each chunk: reading one block of
cells then decompresses the whole file. :class:`NwbRows` reads such a file once, in time slabs
aligned to its chunks, into an unlinked temporary file laid out cell by cell (in the system's
temporary folder, ``TMPDIR``; as large as the traces), and serves blocks of cells from there:
the NWB file is read once and the copy once, with memory bounded by one slab and one block.
"""

from __future__ import annotations

import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from calab.io._common import (
    PathLike,
    check_finite_rows,
    make_meta,
    require_file,
    sampling_rate,
)
from calab.io._deps import require
from calab.io.caiman import _H5_ERRORS, _dataset, _h5

# Names of series that hold no fluorescence (suite2p, CaImAn): never picked by default.
_NOT_FLUORESCENCE = re.compile(r"neuropil|background|deconv|spike|spks|residual", re.IGNORECASE)
# Bytes of stored values per time slab when copying a time-chunked series cell by cell.
SLAB_BYTES = 16_000_000
# Relative spread of the frame intervals below which timestamps count as regular.
TIMESTAMP_RTOL = 1e-3


def _fail(where: str, what: str) -> OSError:
    return OSError(f"cannot read {where} as NWB: {what}")


def _check_nwb_file(h5py: Any, f: Any, where: str) -> str:
    """Refuse a file that is not NWB 2.x or that links to other files; return its version."""
    version = f.attrs.get("nwb_version")
    if version is None:
        legacy = f.get("nwb_version", getclass=True)
        if legacy is not None:  # NWB 1.x kept the version in a dataset
            raise ValueError(
                f"{where} is an NWB 1.x file; calab reads NWB 2.x (convert it with pynwb's "
                "or the NWB 1-to-2 conversion tools)"
            )
        raise ValueError(
            f"{where} is an HDF5 file but not NWB (no nwb_version attribute at its root); "
            "expected an NWB 2.x file such as suite2p's or CaImAn's NWB export"
        )
    if isinstance(version, bytes):
        version = version.decode("utf-8", "replace")
    match = re.match(r"^\s*(?:NWB-)?(\d+)\.(\d+)", str(version))
    if match is None or match.group(1) != "2":
        raise ValueError(
            f"{where} declares NWB schema version {version!r}; calab reads NWB 2.x files"
        )
    external: list[str] = []

    def visit(name: str, link: Any) -> None:
        if isinstance(link, h5py.ExternalLink) and len(external) < 5:
            external.append(f"{name} -> {link.filename}:{link.path}")

    with _h5(where, "the file's links"):
        f.visititems_links(visit)
    if external:
        raise ValueError(
            f"{where} holds external links to other files ({'; '.join(external)}); calab "
            "reads only data stored in the file itself and never follows them"
        )
    return str(version)


def _series_path(obj: Any) -> str:
    """Return the HDF5 path of a series read from a file ("/processing/ophys/Fluorescence/F")."""
    name = getattr(obj.data, "name", None)
    if isinstance(name, str) and name.endswith("/data"):
        return name[: -len("/data")]
    parts = [obj.name]
    node = obj.parent
    while node is not None and node.parent is not None:
        parts.append(node.name)
        node = node.parent
    return "/" + "/".join(reversed(parts))


def _is_fluorescence(path: str) -> bool:
    return _NOT_FLUORESCENCE.search(path.rsplit("/", 2)[-2] + "/" + path) is None


def _describe(obj: Any, path: str) -> str:
    shape = getattr(obj.data, "shape", None)
    kind = "fluorescence-like" if _is_fluorescence(path) else "not fluorescence"
    return f"{path} (shape {shape}, {kind})"


def _pick(candidates: list[tuple[str, Any]], series: str | None, where: str) -> tuple[str, Any]:
    listing = "; ".join(_describe(obj, path) for path, obj in candidates)
    if series is not None:
        want = series.strip("/")
        hits = [(p, o) for p, o in candidates if p.strip("/") == want]
        hits = hits or [(p, o) for p, o in candidates if o.name == series]
        if len(hits) == 1:
            return hits[0]
        what = "names several series" if hits else "matches no ROI response series"
        raise KeyError(f"series={series!r} {what} in {where}; give one of these paths: {listing}")
    fluorescent = [(p, o) for p, o in candidates if _is_fluorescence(p)]
    if len(fluorescent) == 1:
        return fluorescent[0]
    why = (
        "none of its ROI response series is fluorescence-like"
        if not fluorescent
        else f"it holds {len(fluorescent)} fluorescence-like ROI response series"
    )
    raise ValueError(
        f"cannot tell which traces to read from {where}: {why}. Pass series= with one of "
        f"these names or paths: {listing}"
    )


def _candidates(pynwb: Any, nwbfile: Any, where: str) -> list[tuple[str, Any]]:
    found = [
        (_series_path(o), o)
        for o in nwbfile.objects.values()
        if isinstance(o, pynwb.ophys.RoiResponseSeries)
    ]
    if not found:
        modules = ", ".join(sorted(nwbfile.processing)) or "none"
        ophys = "ophys" in nwbfile.processing
        raise ValueError(
            f"{where} holds no ROI response series (processing modules: {modules}"
            f"{'' if ophys else '; no ophys module'}); expected a RoiResponseSeries in a "
            "Fluorescence or DfOverF container of processing/ophys, as suite2p and CaImAn "
            "write them"
        )
    return sorted(found, key=lambda item: item[0])


def _check_stored(ds: Any, key: str, where: str, file_size: int) -> None:
    """Refuse a dataset whose declared size is not backed by data stored in the file."""
    with _h5(where, key):
        nbytes = int(np.prod(ds.shape, dtype=np.float64) * ds.dtype.itemsize)
        stored = int(ds.id.get_storage_size())
        filtered = bool(ds.compression or ds.shuffle or ds.fletcher32 or ds.scaleoffset)
        chunks = ds.chunks
        if chunks is not None:
            need = int(
                np.prod([-(-n // c) for n, c in zip(ds.shape, chunks, strict=True)], dtype=np.int64)
            )
            have = int(ds.id.get_num_chunks())
        else:
            need = have = 0
    short = have < need if chunks is not None else stored < nbytes
    if short or (not filtered and stored < nbytes) or stored > file_size:
        raise ValueError(
            f"{key} in {where} declares shape {ds.shape} ({nbytes} bytes) but the file stores "
            f"only {stored} bytes of it ({where} is {file_size} bytes); the file is truncated, "
            "incompletely written or crafted"
        )


class NwbRows:
    """A ROI response series of an NWB file, opened for reading blocks of cells.

    ``rows(start, stop)`` returns ROIs ``start:stop`` as float64 ``(stop - start, n_frames)``;
    ``shape`` is ``(n_rois, n_frames)``, ``fs`` the rate in Hz (None if the file gives none
    and ``fs`` was not passed), ``cell_ids`` the ROI ids, ``meta_extra`` the series' path and
    the file's NWB version, ``storage_rows`` the ROIs per stored chunk. A series chunked along
    time is first copied cell by cell into a temporary file (see the module's docstring).
    Close when done. The arguments are those of :func:`load_nwb`.
    """

    def __init__(self, path: PathLike, series: str | None = None, fs: float | None = None) -> None:
        if series is not None and not isinstance(series, str):
            raise TypeError(f"series must be a series name or path (a str), got {series!r}")
        fs_ = None if fs is None else sampling_rate(fs, "fs")
        pynwb = require("pynwb")  # first: it brings h5py, so a missing one names pynwb
        h5py = require("h5py")
        p = require_file(path, "NWB file")
        where = str(p)
        self._where = where
        self._spill: Any = None
        if not h5py.is_hdf5(p):
            raise _fail(where, "it is not an HDF5 file; expected an NWB 2.x (.nwb) file")
        try:
            self._f: Any = h5py.File(p, "r")
        except _H5_ERRORS as exc:
            raise _fail(where, f"{exc}; the file may be truncated or corrupt") from None
        self._io: Any = None
        try:
            version = _check_nwb_file(h5py, self._f, where)
            self._open(pynwb, h5py, where, series, fs_, p.stat().st_size)
        except BaseException:
            self.close()
            raise
        self.meta_extra["nwb_version"] = version

    def _open(
        self, pynwb: Any, h5py: Any, where: str, series: str | None, fs: float | None, size: int
    ) -> None:
        try:
            with warnings.catch_warnings():
                # pynwb notes that the file's cached schema differs from the one it ships, and
                # series stored ROI first (read here whatever their orientation)
                warnings.filterwarnings("ignore", message=r".*[Nn]amespace.*", category=UserWarning)
                warnings.filterwarnings("ignore", message=r".*oriented incorrectly.*")
                self._io = pynwb.NWBHDF5IO(file=self._f, mode="r", load_namespaces=True)
                nwbfile = self._io.read()
        except Exception as exc:  # hdmf raises many kinds on malformed files
            reason = str(exc).rpartition("due to: ")[2].rstrip("\"')")  # not hdmf's object dump
            reason = reason if len(reason) <= 400 else reason[:400] + " ..."
            raise _fail(where, f"{type(exc).__name__}: {reason}") from None
        path, obj = _pick(_candidates(pynwb, nwbfile, where), series, where)
        key = path.strip("/") + "/data"
        ds = _dataset(h5py, obj.data, key, where)
        if ds is None:
            raise _fail(where, f"{key} is not an HDF5 dataset")
        with _h5(where, key):
            kind, shape = ds.dtype.kind, tuple(ds.shape)
        if kind not in "iuf":
            raise ValueError(f"{key} in {where} must hold real numbers, got dtype {ds.dtype}")
        if len(shape) not in (1, 2):
            raise ValueError(
                f"{key} in {where} must be 1-D or 2-D (n_frames, n_rois), got shape {shape}"
            )
        if 0 in shape:
            raise ValueError(f"{key} in {where} is empty (shape {shape}); it holds no traces")
        _check_stored(ds, key, where, size)
        self._h5py, self._size = h5py, size
        ids = self._roi_ids(obj, path, where)
        self._time_axis = self._orientation(shape, ids, path, where)
        n_frames = shape[self._time_axis]
        n_rois = 1 if len(shape) == 1 else shape[1 - self._time_axis]
        if ids is None:
            ids = np.arange(n_rois)
        self._ds = ds
        self._key = key
        self.shape = (int(n_rois), int(n_frames))
        self.cell_ids = ids
        self.fs = fs if fs is not None else self._rate(obj, path, where, n_frames)
        chunks = ds.chunks
        if len(shape) == 1:
            self.storage_rows: int | None = 1
        elif chunks is not None:
            self.storage_rows = int(chunks[1 - self._time_axis])
        else:  # contiguous: a time-first row holds every ROI
            self.storage_rows = int(n_rois) if self._time_axis == 0 else 1
        self.meta_extra: dict[str, Any] = {"series": path, "path": where}

    def _small(self, data: Any, key: str, where: str) -> np.ndarray:
        """Read a 1-D dataset whole (ROI ids, timestamps) once its size is checked."""
        ds = _dataset(self._h5py, data, key, where)
        if ds is not None:
            _check_stored(ds, key, where, self._size)
        with _h5(where, key):
            return np.asarray(data[()]).reshape(-1)

    def _roi_ids(self, obj: Any, path: str, where: str) -> np.ndarray | None:
        rois = getattr(obj, "rois", None)
        if rois is None:
            return None
        region = self._small(rois.data, f"{path}/rois", where)
        table_ids = self._small(rois.table.id.data, f"{rois.table.name}/id", where)
        if region.dtype.kind not in "iu":
            raise ValueError(f"{path}/rois in {where} must hold row numbers, got {region.dtype}")
        bad = region[(region < 0) | (region >= table_ids.size)]
        if bad.size:
            raise ValueError(
                f"{path}/rois in {where} points to row {int(bad[0])} of "
                f"{rois.table.name}, which has {table_ids.size} ROIs; the file is inconsistent"
            )
        return np.asarray(table_ids[region])

    @staticmethod
    def _orientation(shape: tuple[int, ...], ids: Any, path: str, where: str) -> int:
        """0 if frames run along the first axis (NWB's order), 1 if stored ROI first."""
        if len(shape) == 1 or ids is None:
            return 0
        n = int(ids.size)
        if shape[1] == n:
            return 0
        if shape[0] == n:
            return 1
        raise ValueError(
            f"{path}/data in {where} has shape {shape} but its rois region lists {n} ROIs; "
            "expected (n_frames, n_rois)"
        )

    def _rate(self, obj: Any, path: str, where: str, n_frames: int) -> float | None:
        rate = getattr(obj, "rate", None)
        if rate is not None:
            return sampling_rate(rate, f"{path}/starting_time rate in {where}")
        stamps = getattr(obj, "timestamps", None)
        if stamps is None:
            return None
        shape = tuple(getattr(stamps, "shape", ()))
        if shape != (n_frames,):
            raise ValueError(
                f"{path}/timestamps in {where} has shape {shape} for {n_frames} frames"
            )
        t = self._small(stamps, f"{path}/timestamps", where).astype(np.float64)
        if t.size < 2:
            return None
        dt = np.diff(t)
        step = float(np.median(dt))
        if (
            not (np.isfinite(dt).all() and step > 0)
            or float(np.max(np.abs(dt - step))) > TIMESTAMP_RTOL * step
        ):
            lo, hi = float(np.min(dt)), float(np.max(dt))
            raise ValueError(
                f"{path}/timestamps in {where} are irregular (frame intervals from {lo:g} to "
                f"{hi:g} s); calab needs a constant frame rate: pass fs= (--fs) to use one"
            )
        return sampling_rate(1.0 / step, f"{path}/timestamps in {where}")

    # ---- reading

    def _read_direct(self, start: int, stop: int) -> np.ndarray:
        with _h5(self._where, self._key):
            if self._ds.ndim == 1:
                block = np.asarray(self._ds[()])[None, :]
            elif self._time_axis == 0:
                block = np.asarray(self._ds[:, start:stop]).T
            else:
                block = np.asarray(self._ds[start:stop, :])
        return np.asarray(block, dtype=np.float64)

    def _direct_is_cheap(self, start: int, stop: int) -> bool:
        """Whether reading cells ``start:stop`` decompresses at most twice their own data."""
        rows = self.storage_rows or 1
        span = (-(-stop // rows) - start // rows) * rows
        return min(span, self.shape[0]) <= 2 * (stop - start)

    def _make_spill(self) -> Any:
        """Copy the series cell by cell into an unlinked temporary file (read once)."""
        n, t = self.shape
        ds = self._ds
        item = ds.dtype.itemsize
        chunk_t = ds.chunks[0] if ds.chunks is not None else 1
        slab = max(chunk_t, (SLAB_BYTES // max(n * item, 1)) // chunk_t * chunk_t)
        with self._spill_errors():
            spill = tempfile.TemporaryFile(prefix="calab-nwb-")
        try:
            fd = spill.fileno()
            for t0 in range(0, t, slab):
                t1 = min(t, t0 + slab)
                with _h5(self._where, self._key):
                    part = np.ascontiguousarray(np.asarray(ds[t0:t1, :]).T)
                with self._spill_errors():
                    for r in range(n):
                        os.pwrite(fd, part[r].tobytes(), (r * t + t0) * item)
        except BaseException:
            spill.close()
            raise
        return spill

    @contextmanager
    def _spill_errors(self) -> Iterator[None]:
        """Turn an OSError writing the temporary copy into one naming it and the fix."""
        try:
            yield
        except OSError as exc:
            n, t = self.shape
            raise OSError(
                f"cannot write the cell-major copy of {self._key} of {self._where} "
                f"({n * t * self._ds.dtype.itemsize} bytes) in {tempfile.gettempdir()}: "
                f"{exc.strerror or exc}; set TMPDIR to a folder with room for it"
            ) from None

    def rows(self, start: int, stop: int) -> np.ndarray:
        """ROIs ``start:stop`` as float64, shape ``(stop - start, n_frames)``."""
        if self._spill is None and (
            self._ds.ndim == 1 or self._time_axis == 1 or self._direct_is_cheap(start, stop)
        ):
            return self._read_direct(start, stop)
        if self._spill is None:
            self._spill = self._make_spill()
        t, dtype = self.shape[1], self._ds.dtype
        count = (stop - start) * t
        raw = os.pread(self._spill.fileno(), count * dtype.itemsize, start * t * dtype.itemsize)
        return (
            np.frombuffer(raw, dtype=dtype, count=count).reshape(stop - start, t).astype(np.float64)
        )

    def close(self) -> None:
        """Close the file and drop the temporary copy."""
        if self._spill is not None:
            self._spill.close()
            self._spill = None
        if self._io is not None:
            self._io.close()
            self._io = None
        self._f.close()

    def __enter__(self) -> NwbRows:
        """Return self; the file closes on leaving the ``with`` block."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the file."""
        self.close()


def iter_nwb_blocks(
    path: PathLike, block_rows: int, series: str | None = None, fs: float | None = None
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(start, traces)`` for consecutive blocks of ``block_rows`` ROIs of a series.

    Memory stays bounded by one block (and one time slab); the file is read at most about
    twice over however it is chunked (see the module's docstring).
    """
    if isinstance(block_rows, bool) or not isinstance(block_rows, int) or block_rows < 1:
        raise ValueError(f"block_rows must be an integer >= 1, got {block_rows!r}")
    with NwbRows(path, series, fs) as src:
        for start in range(0, src.shape[0], block_rows):
            yield start, src.rows(start, min(src.shape[0], start + block_rows))


def read_nwb(
    path: PathLike, series: str | None = None, fs: float | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Like :func:`load_nwb` but without the finiteness check (used by ``calab info``)."""
    with NwbRows(path, series, fs) as src:
        traces = np.ascontiguousarray(src.rows(0, src.shape[0]))
        meta = make_meta("nwb", src.fs, traces, cell_ids=src.cell_ids.tolist(), **src.meta_extra)
    return traces, meta


def load_nwb(
    path: PathLike, series: str | None = None, fs: float | None = None
) -> tuple[np.ndarray, dict[str, Any]]:
    """Load the traces of an ROI response series from an NWB 2.x file.

    Parameters
    ----------
    path : str or path-like
        The ``.nwb`` file (HDF5), e.g. from suite2p's or CaImAn's NWB export.
    series : str, optional
        The series to read, by name (``"Fluorescence"``) or path
        (``"processing/ophys/Fluorescence/Fluorescence"``). Default: the file's only
        fluorescence-like series (not neuropil, background, deconvolved or spikes).
    fs : float, optional
        Sampling rate in Hz; overrides the series' ``rate`` or timestamps.

    Returns
    -------
    traces : ndarray of float64, shape (n_rois, n_frames)
        Whatever the stored orientation (NWB stores frames first).
    meta : dict
        ``source`` ("nwb"), ``sampling_rate_hz`` (from ``rate``, regular timestamps or
        ``fs``; None if none), ``num_cells``, ``num_timepoints``, ``cell_ids`` (ids of the
        ROIs the series' ``rois`` region points to), ``series`` (its path in the file),
        ``path``, ``nwb_version``.

    Raises
    ------
    ImportError
        If pynwb is missing (``pip install pynwb``, the ``nwb`` extra).
    FileNotFoundError
        If ``path`` does not exist.
    KeyError
        If ``series`` names no series (the message lists them).
    ValueError
        If the file is not NWB 2.x, holds no (or several fluorescence-like) ROI response
        series, an empty series, irregular timestamps, external links, data it declares but
        does not store, or NaN/Inf (the message names the cells).
    OSError
        If the file is not HDF5, is corrupt or truncated.
    """
    traces, meta = read_nwb(path, series, fs)
    check_finite_rows(traces, meta["series"], meta["path"], meta["cell_ids"])
    return traces, meta
