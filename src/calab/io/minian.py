"""Minian output: xarray datasets saved to zarr, one store per variable (``C.zarr``, ...)."""

from __future__ import annotations

import math
import numbers
import os
import stat
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from calab.io._common import (
    PathLike,
    check_finite_rows,
    existing_path,
    file_kind,
    make_meta,
    sampling_rate,
    traces_matrix,
)
from calab.io._deps import require, settle_zarr_tasks

UNIT_DIM = "unit_id"
FRAME_DIM = "frame"
_METADATA = (".zgroup", "zarr.json", ".zmetadata")


def _is_zarr_store(p: Path) -> bool:
    return p.is_dir() and any((p / m).is_file() for m in _METADATA)


def find_store(path: PathLike, variable: str = "C") -> Path:
    """Return the zarr store holding ``variable``: ``path/<variable>.zarr`` or ``path`` itself.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    KeyError
        If ``path`` is a folder without ``<variable>.zarr`` (the message lists its stores).
    ValueError
        If ``path`` is a file, FIFO or device.
    """
    p = existing_path(path, "Minian output")
    candidate = p / f"{variable}.zarr"
    if _is_zarr_store(candidate):
        return candidate
    if _is_zarr_store(p):
        return p
    if not p.is_dir():
        raise ValueError(
            f"{p} is not a Minian output; pass the folder holding {variable}.zarr "
            f"or the {variable}.zarr store itself"
        )
    stores = sorted(q.name for q in p.iterdir() if q.name.endswith(".zarr"))
    listing = ", ".join(stores) if stores else "no .zarr stores"
    raise KeyError(f"no {variable}.zarr in the Minian output folder {p}; it holds: {listing}")


def _check_store_files(store: Path) -> None:
    """Refuse a store holding a FIFO, socket or device (reading one would block)."""
    seen: set[tuple[int, int]] = set()
    pending = [store]
    while pending:
        folder = pending.pop()
        st = folder.stat()
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        with os.scandir(folder) as entries:
            for entry in entries:
                try:
                    mode = entry.stat().st_mode  # follows links
                except FileNotFoundError:
                    continue  # a dangling link reads as a missing chunk, reported later
                if stat.S_ISDIR(mode):
                    pending.append(Path(entry.path))
                elif not stat.S_ISREG(mode):
                    raise ValueError(
                        f"{entry.path} in the zarr store {store} is {file_kind(mode)}, not a "
                        "regular file; refusing to read the store"
                    )


def _block(arr: Any) -> tuple[int, ...]:
    """Shape of one stored chunk (shard) of a zarr array."""
    return tuple(int(c) for c in (getattr(arr, "shards", None) or arr.chunks))


def _grid_positions(grid: tuple[int, ...]) -> Iterator[tuple[int, ...]]:
    """Yield every position of ``grid`` in C order, one at a time.

    itertools.product and np.ndindex both allocate in proportion to the grid first.
    """
    if grid and min(grid) <= 0:
        return
    pos = [0] * len(grid)
    while True:
        yield tuple(pos)
        axis = len(grid) - 1
        while axis >= 0 and pos[axis] == grid[axis] - 1:
            pos[axis] = 0
            axis -= 1
        if axis < 0:
            return
        pos[axis] += 1


def _chunk_keys(arr: Any) -> Iterator[tuple[tuple[int, ...], str]]:
    """Grid position and storage key of each chunk (shard) of a zarr array, one at a time.

    A generator: the grid a header declares can be huge (30 million chunks from a few
    kilobytes of metadata), so keys are made only as far as the caller reads.
    """
    shape = tuple(int(s) for s in arr.shape)
    block = _block(arr)
    grid = tuple(math.ceil(s / c) if c else 0 for s, c in zip(shape, block, strict=True))
    encode = getattr(getattr(arr, "metadata", None), "encode_chunk_key", None)
    prefix = (arr.path + "/") if arr.path else ""
    for c in _grid_positions(grid):
        yield c, (encode(c) if encode is not None else arr._chunk_key(c)[len(prefix) :])


def _codecs(arr: Any) -> list[str]:
    """Names of the codecs of a zarr array (v2 compressor and filters, or v3 codecs)."""
    meta = arr.metadata
    found = [meta.compressor] if getattr(meta, "compressor", None) is not None else []
    found += list(getattr(meta, "filters", None) or []) + list(getattr(meta, "codecs", ()))
    names = []
    for codec in found:
        name = getattr(codec, "codec_id", None) or type(codec).__name__
        names.append(str(name).lower().removesuffix("codec"))
    return names


# Every codec zarr stores numbers with (none, blosc, zstd, zlib, gzip, lz4, bz2, lzma) adds at
# most a header and a fraction of a percent to incompressible data.
_OVERHEAD_FRACTION, _OVERHEAD_BYTES = 0.01, 1024
_INFLATE_STEP = 1 << 20


def _zstd_content_size(head: bytes) -> int | None:
    """Return the decoded size a zstd frame's header declares (None if it declares none)."""
    if len(head) < 6 or head[:4] != b"\x28\xb5\x2f\xfd":
        return None
    descriptor = head[4]
    single = (descriptor >> 5) & 1
    pos = 5 + (0 if single else 1) + (0, 1, 2, 4)[descriptor & 3]
    width = (1 if single else 0, 2, 4, 8)[descriptor >> 6]
    if width == 0 or len(head) < pos + width:
        return None
    return int.from_bytes(head[pos : pos + width], "little") + (256 if width == 2 else 0)


def _declared_size(path: Path, codecs: list[str], limit: int) -> int | None:
    """Return what a chunk file decodes to, if that exceeds ``limit`` bytes (else None).

    blosc and zstd declare it in their header (their decoders allocate that much at once);
    a zlib or gzip stream is inflated piecewise and stopped one step past ``limit``.
    """
    if "blosc" in codecs or "zstd" in codecs:
        with open(path, "rb") as fh:
            head = fh.read(32)
        size = _zstd_content_size(head) if "zstd" in codecs else None
        if "blosc" in codecs and len(head) >= 16:
            size = int.from_bytes(head[4:8], "little")
        return size if size is not None and size > limit else None
    if "zlib" in codecs or "gzip" in codecs:
        inflater = zlib.decompressobj(wbits=47)  # zlib or gzip header, told apart by zlib
        total = 0
        with open(path, "rb") as fh:
            while total <= limit and (piece := fh.read(_INFLATE_STEP)):
                while piece and total <= limit:
                    total += len(inflater.decompress(piece, _INFLATE_STEP))
                    piece = inflater.unconsumed_tail
                if inflater.eof:
                    break
        return total if total > limit else None
    return None


def _chunk_problem(path: Path, arr: Any, codecs: list[str]) -> str | None:
    """Why the chunk file at ``path`` holds more than its shape allows (None if it does not)."""
    if getattr(arr, "shards", None) or np.dtype(arr.dtype).kind not in "biuf":
        return None  # a shard (index and many chunks) or strings: sizes not fixed by the shape
    raw = math.prod(_block(arr)) * arr.dtype.itemsize
    size = path.stat().st_size
    if size > raw * (1 + _OVERHEAD_FRACTION) + _OVERHEAD_BYTES:
        return f"holds {size} bytes, more than any codec makes of the {raw} bytes"
    try:
        inflated = _declared_size(path, codecs, raw)
    except (OSError, zlib.error):
        return None  # unreadable: zarr reports it when the chunk is read
    if inflated is not None:
        return f"inflates to more than {inflated} bytes, beyond the {raw} bytes"
    return None


def _check_chunks(store: Path, names: list[str]) -> None:
    """Refuse missing chunk files, and chunk files decoding to more than their shape holds.

    zarr would fill a missing chunk with the fill value without a word; a decompression bomb
    would be decoded whole before zarr checks its size. Stops at the first missing chunk: a
    store holding k chunk files costs at most k + 1 key checks per array, whatever grid its
    metadata declares. A zlib or gzip chunk is inflated once here, a piece at a time, stopped
    past the chunk's size.
    """
    zarr = require("zarr")
    group = zarr.open_group(str(store), mode="r")
    for name in names:
        arr = group[name]
        block = _block(arr)
        codecs = _codecs(arr)
        for c, key in _chunk_keys(arr):
            chunk = store / name / key
            if chunk.is_file():
                problem = _chunk_problem(chunk, arr, codecs)
                if problem is not None:
                    raise OSError(
                        f"chunk {name}/{key} of the zarr store {store} {problem} its shape "
                        f"{block} of {arr.dtype} holds; the store is damaged or crafted, "
                        "refusing to decode it"
                    )
            else:
                where = ", ".join(
                    f"{i * b}..{min((i + 1) * b, s) - 1}"
                    for i, b, s in zip(c, block, arr.shape, strict=True)
                )
                raise OSError(
                    f"the zarr store {store} lacks chunk {name}/{key} of {name} (indices "
                    f"{where}): zarr would fill it with {np.asarray(arr.fill_value).item()!r} "
                    "without a word. The store is incomplete (an interrupted copy or write); "
                    "copy it again, or rewrite it with write_empty_chunks=True"
                )


def _index_coordinates(store: Path, names: list[str]) -> list[str]:
    """Return the arrays xarray loads whole on opening: 1-D, with a dimension of their name."""
    zarr = require("zarr")
    group = zarr.open_group(str(store), mode="r")
    out = []
    for name in names:
        arr = group[name]
        dims = getattr(arr.metadata, "dimension_names", None) or arr.attrs.get("_ARRAY_DIMENSIONS")
        if arr.ndim == 1 and dims is not None and list(dims) == [name]:
            out.append(name)
    return out


def _open_dataset(store: Path) -> Any:
    xr = require("xarray")
    require("zarr")
    # chunks=None: lazily indexed arrays read straight from zarr (no dask graph or threads).
    try:
        return xr.open_zarr(store, consolidated=True, chunks=None)
    except Exception:  # no consolidated metadata: read the plain metadata instead
        pass
    try:
        return xr.open_zarr(store, consolidated=False, chunks=None)
    except Exception as exc:
        raise OSError(f"cannot read the zarr store {store}: {exc}") from None


def _group_arrays(store: Path) -> list[str] | None:
    """Names of the arrays in a zarr group, or None if it cannot be read as one."""
    zarr = require("zarr")
    try:
        return sorted(str(k) for k in zarr.open_group(str(store), mode="r").array_keys())
    except Exception:
        return None


def open_minian(path: PathLike, *, variable: str = "C") -> tuple[Any, str]:
    """Open the variable as a lazy xarray DataArray with dims (unit_id, frame), and its store.

    Nothing is read but metadata and the coordinates; read rows with :func:`minian_rows`
    (errors then name the store). Stores holding FIFOs or devices, and arrays with missing
    chunk files, are refused here.
    """
    if not isinstance(variable, str):
        raise TypeError(f"trace_key must be the variable's name (a str), got {variable!r}")
    store = find_store(path, variable)
    where = str(store)
    _check_store_files(store)
    arrays = _group_arrays(store)
    if arrays is not None:  # xarray reads these whole on opening: check them first
        _check_chunks(store, _index_coordinates(store, arrays))
    try:
        ds = _open_dataset(store)
    except OSError:
        if arrays is not None and variable not in arrays:
            raise KeyError(
                f"variable {variable!r} not found in {store}; it holds: "
                f"{', '.join(arrays) or 'nothing'}"
            ) from None
        if arrays is not None:
            raise ValueError(
                f"{variable} in {where} has no dimension names; calab reads Minian's "
                f"variables by their dimensions '{UNIT_DIM}' and '{FRAME_DIM}' (as xarray's "
                "to_zarr writes them), never by position"
            ) from None
        raise
    names = [str(n) for n in ds.data_vars]
    if variable in ds.data_vars:
        da = ds[variable]
    elif len(names) == 1 and store.name != f"{variable}.zarr":
        da = ds[names[0]]
    else:
        raise KeyError(
            f"variable {variable!r} not found in {store}; it holds: {', '.join(names) or 'nothing'}"
        )
    dims = tuple(str(d) for d in da.dims)
    if UNIT_DIM not in dims or FRAME_DIM not in dims:
        raise ValueError(
            f"{da.name} in {where} has dimensions {dims}; Minian traces need the dimensions "
            f"'{UNIT_DIM}' and '{FRAME_DIM}'"
        )
    extra = [d for d in dims if d not in (UNIT_DIM, FRAME_DIM)]
    for d in extra:
        if da.sizes[d] != 1:
            raise ValueError(
                f"{da.name} in {where} has dimensions {dims}; the extra dimension {d!r} has "
                f"size {da.sizes[d]}, select one entry first (e.g. with xarray's .isel)"
            )
    if da.dtype.kind not in "iuf":
        raise ValueError(f"{da.name} in {where} must hold real numbers, got dtype {da.dtype}")
    if arrays is not None:
        _check_chunks(store, [n for n in (str(da.name), *dims) if n in arrays])
    stored = da.encoding.get("chunks")
    if extra:
        da = da.isel({d: 0 for d in extra})
    da = da.transpose(UNIT_DIM, FRAME_DIM)
    if stored is not None and len(stored) == len(dims):
        da.attrs["_calab_unit_chunk"] = int(dict(zip(dims, stored, strict=True))[UNIT_DIM])
    if da.shape[0] == 0 or da.shape[1] == 0:
        raise ValueError(f"{da.name} in {where} is empty (shape {tuple(da.shape)})")
    da.attrs["_calab_store"] = where
    return da, where


def minian_rows(da: Any, start: int, stop: int) -> np.ndarray:
    """Read rows ``start:stop`` of a DataArray from :func:`open_minian`.

    Returns shape (stop - start, n_frames); a chunk that cannot be decoded raises OSError
    naming the store and variable.
    """
    try:
        return np.asarray(da.isel({UNIT_DIM: slice(start, stop)}).values)
    except MemoryError:
        settle_zarr_tasks()
        raise
    except Exception as exc:
        settle_zarr_tasks()
        raise OSError(
            f"cannot read {da.name} (units {start}..{stop - 1}) from the zarr store "
            f"{da.attrs.get('_calab_store', '?')}: {type(exc).__name__}: {exc}; a chunk is "
            "corrupt or truncated"
        ) from None


def unit_ids(da: Any) -> np.ndarray:
    """Return the unit_id coordinate of a Minian DataArray (or 0..n-1 without one)."""
    if UNIT_DIM in da.coords:
        return np.asarray(da.coords[UNIT_DIM].values)
    return np.arange(da.shape[0])


def read_minian(
    path: PathLike, fs: float | None = None, *, variable: str = "C"
) -> tuple[np.ndarray, dict[str, Any]]:
    """Like :func:`load_minian` but without the finiteness check; ``fs`` may be None."""
    fs_ = None if fs is None else sampling_rate(fs, "fs")
    da, where = open_minian(path, variable=variable)
    traces = traces_matrix(minian_rows(da, 0, da.shape[0]), str(da.name), where)
    meta = make_meta(
        "minian", fs_, traces, cell_ids=unit_ids(da).tolist(), variable=str(da.name), path=where
    )
    return traces, meta


def load_minian(
    path: PathLike,
    trace_key: str = "C",
    fs: float | None = None,
    *,
    variable: str | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Load traces from Minian's output (xarray data saved to zarr).

    Parameters
    ----------
    path : str or path-like
        Minian's output folder (holding ``C.zarr``, ``S.zarr``, ...) or one variable's store.
    trace_key : str
        The variable: ``"C"`` (denoised traces, default), ``"S"`` (Minian's spikes) or
        ``"YrA"`` (raw-like residual traces).
    fs : float, optional
        Sampling rate in Hz. Minian does not store it: without it ``meta["sampling_rate_hz"]``
        is None (deconvolution then needs ``fs``).
    variable : str, optional
        Another name for ``trace_key`` (calab's earlier keyword). calab's earlier positional
        form ``load_minian(path, 30.0)`` is read as ``fs=30.0`` too.

    Returns
    -------
    traces : ndarray of float64, shape (n_cells, n_timepoints)
        Ordered by the dimension names (``unit_id``, ``frame``), whatever the stored order.
    meta : dict
        ``source`` ("minian"), ``sampling_rate_hz`` (float or None), ``num_cells``,
        ``num_timepoints``, ``cell_ids`` (the ``unit_id`` coordinate), ``variable``, ``path``.

    Raises
    ------
    ImportError
        If xarray or zarr is missing (``pip install xarray zarr``).
    FileNotFoundError
        If ``path`` does not exist.
    KeyError
        If the variable is not there (the message lists what is).
    ValueError
        If the dimensions are not ``unit_id`` and ``frame``, or a trace holds NaN or Inf.
    OSError
        If a chunk is missing, corrupt or truncated (the message names the store and chunk).
    """
    if isinstance(trace_key, numbers.Real) and not isinstance(trace_key, bool) and fs is None:
        fs, trace_key = trace_key, "C"  # calab's earlier form load_minian(path, fs)
    if variable is not None:
        if trace_key != "C" and trace_key != variable:
            raise TypeError(
                f"load_minian got trace_key={trace_key!r} and variable={variable!r}; "
                "pass only trace_key"
            )
        trace_key = variable
    if not isinstance(trace_key, str):
        raise TypeError(
            f"trace_key must be the variable's name (a str such as 'C'), got {trace_key!r}; "
            "pass the sampling rate as fs=<Hz>"
        )
    traces, meta = read_minian(path, fs, variable=trace_key)
    check_finite_rows(traces, meta["variable"], meta["path"], meta["cell_ids"])
    return traces, meta
