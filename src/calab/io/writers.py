"""Output files: row writers for .npy, .h5 and .zarr, atomic commits, and output safety checks.

Every output is written under a temporary name in its own folder and moved into place only when
complete (:func:`commit`); temporary files are created exclusively (``mkstemp``), so a planted
link is never followed. :func:`check_outputs` refuses outputs that would overwrite or sit inside
an input, existing files without ``force``, and a folder where a file is expected (or the
reverse).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from calab.io._common import write_atomic

OUTPUT_SUFFIXES = (".npy", ".h5", ".hdf5", ".zarr")
FIELDS: dict[str, Any] = {
    "activity": "<f8",
    "baseline": "<f8",
    "iterations": "<i8",
    "converged": bool,
}


# ----------------------------------------------------------------------------- JSON


def dumps_json(obj: Any, what: str, **kwargs: Any) -> str:
    """``json.dumps`` that refuses NaN and Inf (they are not JSON) with a clear message."""
    try:
        return json.dumps(obj, allow_nan=False, **kwargs)
    except ValueError as exc:
        raise ValueError(
            f"{what} holds NaN or Inf, which JSON cannot store ({exc}); nothing was written"
        ) from None


def write_text_atomic(path: Path, text: str, *, sync: bool = True) -> None:
    """Write ``text`` to a fresh temporary file beside ``path``, then rename it into place.

    The file gets the mode of a plain ``open(path, "w")`` (0o666 less the umask), as the other
    outputs do (:func:`calab.io._common.write_atomic`). ``sync`` waits until the data are on
    disk before the rename.
    """
    write_atomic(path, text, overwrite=True, sync=sync)


def write_json_atomic(path: Path, obj: Any, what: str, *, sync: bool = True) -> None:
    """:func:`write_text_atomic` of ``obj`` as JSON; NaN and Inf are refused (ValueError)."""
    write_text_atomic(path, dumps_json(obj, what), sync=sync)


# ----------------------------------------------------------------------------- safety


def _is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def is_calab_zarr(path: Path) -> bool:
    """Tell whether ``path`` is a zarr store from ``calab deconvolve`` (``force`` replaces it)."""
    if not _is_real_dir(path):
        return False
    for meta in (".zattrs", "zarr.json"):
        try:
            text = (path / meta).read_text(encoding="utf-8")
        except OSError:
            continue
        if '"calab_version"' in text:
            return True
    return False


def _inside(child: str, parent: str) -> bool:
    return child == parent or child.startswith(parent.rstrip(os.sep) + os.sep)


def check_outputs(outputs: Sequence[Path], inputs: Sequence[Path], force: bool) -> None:
    """Refuse outputs that are unsafe to write; with ``force`` existing outputs may be replaced.

    Refused, ``force`` or not: an output equal to an input, inside an input folder, or a
    folder holding an input; an output whose folder does not exist; a folder where a file is
    expected (``-o d.npy`` onto a folder ``d.npy``), or a folder that is not a calab ``.zarr``
    output. Without ``force``: any existing output.

    Raises
    ------
    FileExistsError, FileNotFoundError, ValueError
        With one line naming the path and what to do.
    """
    real_inputs = [(p, os.path.realpath(p)) for p in inputs if os.path.lexists(p)]
    for out in outputs:
        real_out = os.path.realpath(out)
        for given, real_in in real_inputs:
            same = real_out == real_in or (
                os.path.exists(out) and os.path.exists(given) and os.path.samefile(out, given)
            )
            if same:
                kind = "folder" if os.path.isdir(real_in) else "file"
                raise ValueError(f"{out} is an input {kind}; choose another output name")
            if _inside(real_out, real_in):
                raise ValueError(
                    f"{out} is inside the input folder {given}; write the output elsewhere"
                )
            if _inside(real_in, real_out):
                raise ValueError(f"the input {given} is inside {out}; choose another output name")
        if not out.parent.is_dir():
            raise FileNotFoundError(f"output folder does not exist: {out.parent}")
        if not os.path.lexists(out):
            continue
        if not force:
            raise FileExistsError(f"{out} already exists; pass --force (force=True) to replace it")
        wants_dir = out.suffix.lower() == ".zarr"
        if _is_real_dir(out) and not wants_dir:
            raise ValueError(
                f"{out} is a folder; calab replaces only a file there (delete or rename the "
                "folder yourself if you mean it)"
            )
        if wants_dir and not is_calab_zarr(out):
            raise ValueError(
                f"{out} is not a zarr store written by calab; it is not replaced (delete or "
                "rename it yourself if you mean it)"
            )


def remove(path: Path) -> None:
    """Delete a file, a link or a folder tree (a link to a folder removes the link only)."""
    if _is_real_dir(path):
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def temp_dir(beside: Path) -> Iterator[Path]:
    """Yield a fresh private folder (``mkdtemp``) in ``beside``'s folder, deleted afterwards.

    Write there, then :func:`commit` the finished files to their final names.
    """
    tmp = Path(tempfile.mkdtemp(prefix=f".{beside.name}.", dir=beside.parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def commit(tmp: Path, final: Path) -> None:
    """Move a finished temporary file or folder into place, replacing ``final``.

    Files are replaced atomically; a replaced folder is first moved aside, then deleted.
    """
    if _is_real_dir(final):
        aside = Path(tempfile.mkdtemp(prefix=f".{final.name}.old-", dir=final.parent))
        os.replace(final, aside / "old")
        os.replace(tmp, final)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.replace(tmp, final)


# ----------------------------------------------------------------------------- writers


class Writer:
    """Writes rows of a deconvolution result to ``path``, fresh or reopened to resume.

    Parameters
    ----------
    path : Path
        Where to write (a temporary name; :func:`commit` moves it into place).
    shape : (int, int)
        ``(n_cells, n_timepoints)`` of the activity.
    full : bool
        Also store ``baseline``, ``iterations`` and ``converged`` (h5/zarr only; .npy holds the
        activity alone).
    attrs : dict
        File attributes (h5/zarr): version, source, parameters; its ``cell_ids`` (one id per
        row, default the row numbers) are stored as the array ``unit_id`` instead.
    resume : bool
        Reopen an existing file instead of creating one; its arrays must have the right shapes.
    drift : bool
        The baseline follows drift: with ``full`` it is stored as (n_cells, n_timepoints) (in
        h5/zarr the ``baseline`` array; beside a .npy the file :func:`sidecar_path`) instead of
        one value per cell.
    """

    suffix = ""

    def __init__(
        self,
        path: Path,
        shape: tuple[int, int],
        full: bool,
        attrs: dict[str, Any],
        resume: bool = False,
        drift: bool = False,
    ) -> None:
        self.drift = drift
        self.path = path
        self.shape = shape
        self.full = full
        self.attrs = {k: v for k, v in attrs.items() if k != "cell_ids"}
        self.cell_ids = cell_id_array(attrs.get("cell_ids"), shape[0])
        self.resume = resume
        self.arrays: dict[str, Any] = {}

    def names(self) -> list[str]:
        """Return the names of the arrays this writer stores."""
        return list(FIELDS) if self.full else ["activity"]

    def chunk_rows(self) -> int:
        """Rows per stored chunk of the activity: about 8 MB."""
        n, t = self.shape
        return max(1, min(n, (1 << 20) // max(t, 1)))

    def layout(self) -> dict[str, tuple[tuple[int, ...], tuple[int, ...], Any]]:
        """``name -> (shape, chunks, dtype)`` of each stored array."""
        n, t = self.shape
        return {
            k: (self.shape, (self.chunk_rows(), t), FIELDS[k])
            if self.per_frame(k)
            else ((n,), (max(1, n),), FIELDS[k])
            for k in self.names()
        }

    def per_frame(self, name: str) -> bool:
        """Whether array ``name`` has one value per frame, shape (n_cells, n_timepoints)."""
        return name == "activity" or (name == "baseline" and self.drift)

    def check(self) -> None:
        """Raise ValueError if a reopened file's arrays do not have the expected shapes."""
        n, t = self.shape
        for name in self.names():
            arr = self.arrays.get(name)
            want = (n, t) if self.per_frame(name) else (n,)
            if arr is None or tuple(arr.shape) != want:
                got = None if arr is None else tuple(arr.shape)
                raise ValueError(f"{self.path}: {name} has shape {got}, expected {want}")

    def write(self, start: int, res: Any) -> None:
        """Store rows ``start..`` of ``res`` (a DeconvolutionResult of a chunk of cells)."""
        stop = start + res.activity.shape[0]
        for name, arr in self.arrays.items():
            arr[start:stop] = getattr(res, name)

    def read(self, start: int, stop: int) -> dict[str, np.ndarray]:
        """Rows ``start..stop`` of every stored array, as written."""
        return {name: np.asarray(arr[start:stop]) for name, arr in self.arrays.items()}

    def flush(self) -> None:
        """Push written rows to the file."""

    def close(self) -> None:
        """Flush and close the file (idempotent)."""


def cell_id_array(ids: Any, n: int) -> np.ndarray:
    """One id per row: integer ids as int64, others as text (the row numbers when None)."""
    if ids is None:
        return np.arange(n, dtype=np.int64)
    arr = np.asarray(ids)
    if arr.shape != (n,):
        raise ValueError(f"{arr.size} cell ids for {n} rows of traces")
    return arr.astype(np.int64) if arr.dtype.kind in "iub" else arr.astype(str)


def sidecar_path(path: Path, name: str = "baseline") -> Path:
    """``<stem>_<name>.npy`` beside a ``.npy`` file (the drift baseline of a .npy output)."""
    return path.with_name(path.name[: -len(path.suffix)] + f"_{name}.npy")


def open_npy_exactly(path: Path, shape: tuple[int, ...], dtype: str = "<f8") -> None:
    """Check that a ``.npy`` file holds ``dtype`` of ``shape`` and has exactly that size.

    (numpy's ``open_memmap(mode="r+")`` silently extends a truncated file with zeros.)
    """
    arr = np.lib.format.open_memmap(path, mode="r")  # ValueError if shorter than its header says
    if arr.dtype != np.dtype(dtype) or arr.shape != tuple(shape):
        raise ValueError(
            f"{path} holds {arr.dtype} of shape {arr.shape}, expected {dtype} {tuple(shape)}"
        )
    expected = arr.offset + arr.nbytes
    del arr
    size = os.path.getsize(path)
    if size != expected:
        raise ValueError(f"{path} has {size} bytes, expected {expected}")


class NpyWriter(Writer):
    """Activity as one ``.npy`` file (memory-mapped)."""

    suffix = ".npy"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        paths = {"activity": self.path, "baseline": sidecar_path(self.path)}
        for name in self.names():
            if self.resume:
                open_npy_exactly(paths[name], self.shape)
                arr = np.lib.format.open_memmap(paths[name], mode="r+")
            else:
                arr = np.lib.format.open_memmap(
                    paths[name], mode="w+", dtype="<f8", shape=self.shape
                )
            self.arrays[name] = arr

    def names(self) -> list[str]:
        """Return the arrays stored: activity; with ``full`` and ``drift`` baseline (own file)."""
        return ["activity", "baseline"] if self.full and self.drift else ["activity"]

    def flush(self) -> None:
        """Write the mapped rows to the file."""
        for arr in self.arrays.values():
            arr.flush()

    def close(self) -> None:
        """Flush and drop the memory maps."""
        self.flush()
        self.arrays = {}


class H5Writer(Writer):
    """Activity (and with ``full`` the per-cell results) as datasets of an HDF5 file."""

    suffix = ".h5"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        from calab.io._deps import require

        h5py = require("h5py")
        self.f: Any = h5py.File(self.path, "r+" if self.resume else "w-")
        if self.resume:
            self.arrays = {k: self.f[k] for k in self.names() if k in self.f}
            return
        self.arrays = {
            k: self.f.create_dataset(k, shape=shape, dtype=dtype, chunks=chunks)
            for k, (shape, chunks, dtype) in self.layout().items()
        }
        ids = self.cell_ids
        self.f.create_dataset(
            "unit_id", data=ids if ids.dtype.kind != "U" else ids.astype(h5py.string_dtype())
        )
        for k, v in self.attrs.items():
            if isinstance(v, dict | list):
                v = dumps_json(v, f"attribute {k} of {self.path}")
            self.f.attrs[k] = v

    def flush(self) -> None:
        """Flush the HDF5 file."""
        if self.f is not None:
            self.f.flush()

    def close(self) -> None:
        """Close the HDF5 file."""
        if self.f is not None:
            self.f.close()
            self.f = None
            self.arrays = {}


class ZarrWriter(Writer):
    """Activity (and with ``full`` the per-cell results) as a Minian-style xarray zarr store.

    A zarr v2 group with consolidated metadata, as ``xarray.Dataset.to_zarr`` writes it and
    Minian reads it: each array names its dimensions (``_ARRAY_DIMENSIONS``: ``unit_id``,
    ``frame``), and the coordinates ``unit_id`` (the cell ids) and ``frame`` are arrays of
    their own, so ``xarray.open_zarr(OUT)["activity"]`` is labelled. No fill value is stored
    (xarray would read stored values equal to it, such as zero activity, as missing).
    """

    suffix = ".zarr"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        from calab.io._deps import require

        zarr = require("zarr")
        if self.resume:
            group = zarr.open_group(str(self.path), mode="r+")
            self.arrays = {k: group[k] for k in self.names() if k in group}
            return
        v3 = int(zarr.__version__.split(".")[0]) >= 3
        group = zarr.open_group(str(self.path), mode="w-", **({"zarr_format": 2} if v3 else {}))
        make = group.create_array if v3 else group.create_dataset
        n, t = self.shape
        coords = {"unit_id": self.cell_ids, "frame": np.arange(t, dtype=np.int64)}
        for name, values in coords.items():
            arr = make(name, shape=values.shape, chunks=values.shape, dtype=values.dtype,
                       fill_value=None)  # fmt: skip
            arr[:] = values
            arr.attrs["_ARRAY_DIMENSIONS"] = [name]
        for k, (shape, chunks, dtype) in self.layout().items():
            arr = make(k, shape=shape, chunks=chunks, dtype=dtype, fill_value=None)
            arr.attrs["_ARRAY_DIMENSIONS"] = ["unit_id", "frame"][: len(shape)]
            self.arrays[k] = arr
        group.attrs.update(json.loads(dumps_json(self.attrs, f"attributes of {self.path}")))
        zarr.consolidate_metadata(str(self.path))  # the metadata never change after this


def writer_for(path: Path) -> type[Writer]:
    """Return the writer class for an output path, by its extension (.npy, .h5/.hdf5, .zarr)."""
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return NpyWriter
    if suffix in (".h5", ".hdf5"):
        return H5Writer
    if suffix == ".zarr":
        return ZarrWriter
    raise ValueError(f"output {path} must end in .npy, .h5 or .zarr")


__all__ = [
    "FIELDS",
    "OUTPUT_SUFFIXES",
    "H5Writer",
    "NpyWriter",
    "Writer",
    "ZarrWriter",
    "cell_id_array",
    "check_outputs",
    "commit",
    "dumps_json",
    "is_calab_zarr",
    "open_npy_exactly",
    "remove",
    "sidecar_path",
    "temp_dir",
    "write_json_atomic",
    "write_text_atomic",
    "writer_for",
]
