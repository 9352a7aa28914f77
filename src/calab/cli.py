"""The ``calab`` command: deconvolve, convert and inspect calcium traces.

Commands: ``deconvolve``, ``convert``, ``info`` (``tune`` is registered by the browser
bridge through :func:`add_tune_command`). Errors print one line, ``calab: error: ...``, on
stderr and exit with status 1; Ctrl-C exits with 130 and leaves no partial output.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

PIPELINE_FORMATS = ("caiman", "minian", "suite2p")
OUTPUT_SUFFIXES = (".npy", ".h5", ".hdf5", ".zarr")
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


class CLIError(Exception):
    """An error reported as one line on stderr."""


# ----------------------------------------------------------------------------- input


class Input:
    """Traces opened from a file: ``data`` supports row slicing (a numpy array or memmap)."""

    def __init__(
        self, data: Any, fs: float | None, fmt: str, path: Path, meta: dict[str, Any]
    ) -> None:
        self.data = data
        self.fs = fs
        self.format = fmt
        self.path = path
        self.meta = meta

    @property
    def shape(self) -> tuple[int, int]:
        return int(self.data.shape[0]), int(self.data.shape[1])


def _is_suite2p(p: Path) -> bool:
    return any((c / "F.npy").is_file() for c in (p, p / "plane0", p / "suite2p" / "plane0"))


def _is_minian(p: Path) -> bool:
    if p.name.endswith(".zarr") or (p / ".zgroup").exists() or (p / "zarr.json").exists():
        return True
    return any(q.name.endswith(".zarr") for q in p.iterdir())


def _is_calab_output(path: Path) -> bool:
    """An .h5 or .zarr written by ``calab deconvolve`` (a root ``activity`` array)."""
    try:
        if path.is_dir():
            from calab.io._deps import require

            zarr = require("zarr")
            group = zarr.open_group(str(path), mode="r")
            return "activity" in group and "calab_version" in group.attrs
        from calab.io._deps import require

        h5py = require("h5py")
        if not path.is_file():  # never open a FIFO or device: the loaders refuse it by name
            return False
        with h5py.File(path, "r") as f:
            return "activity" in f and "estimates" not in f
    except (OSError, ValueError, KeyError, TypeError, ImportError):
        return False


def _open_calab_output(path: Path) -> Input:
    """Activity written by ``calab deconvolve`` (.h5 or .zarr), read lazily."""
    from calab.io._deps import require

    if path.is_dir():
        zarr = require("zarr")
        group = zarr.open_group(str(path), mode="r")
        data, attrs = group["activity"], dict(group.attrs)
    else:
        h5py = require("h5py")
        f = h5py.File(path, "r")  # kept open while the command runs
        data, attrs = f["activity"], dict(f.attrs)
    fs = attrs.get("sampling_rate_hz")
    return Input(data, float(fs) if fs else None, "calab", path, {"source": "calab"})


def detect_format(path: Path) -> str:
    """Guess the input format: npy, tuning, caiman, minian, suite2p or calab (our output)."""
    if path.exists() and path.suffix.lower() in (".h5", ".hdf5", ".zarr"):
        if _is_calab_output(path):
            return "calab"
    if path.is_dir():
        if _is_suite2p(path):
            return "suite2p"
        if _is_minian(path):
            return "minian"
        raise CLIError(f"cannot tell what {path} holds; pass --format caiman|minian|suite2p")
    name = path.name
    if name.endswith("_metadata.json"):
        return "tuning"
    if path.suffix.lower() in (".hdf5", ".h5"):
        return "caiman"
    if path.suffix.lower() == ".npy":
        stem = path.with_name(name[: -len(".npy")] + "_metadata.json")
        return "tuning" if stem.is_file() else "npy"
    if not path.exists() and path.with_name(name + ".npy").is_file():
        return "tuning"
    if not path.exists():
        raise CLIError(f"input not found: {path}")
    raise CLIError(
        f"cannot tell the format of {path}; pass --format caiman|minian|suite2p "
        "(or give a .npy file or tuning-file stem)"
    )


def _open_npy(path: Path) -> np.ndarray:
    from calab.io._common import require_file

    require_file(path, "input")  # a FIFO named .npy would block np.load
    try:
        arr = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise CLIError(f"cannot read {path} as .npy: {exc}") from None
    if arr.dtype.kind not in "iuf":
        raise CLIError(f"{path} must hold real numbers, got dtype {arr.dtype}")
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.size == 0:
        raise CLIError(
            f"{path} must hold a 1-D (n_timepoints,) or 2-D (n_cells, n_timepoints) array, "
            f"got shape {arr.shape}"
        )
    return arr


class _LazyRows:
    """Row access to a file that is read chunk by chunk (``data[a:b]`` reads rows a..b)."""

    def __init__(self, shape: tuple[int, int], read: Any, storage_rows: int | None = None):
        self.shape = shape
        self._read = read
        self.storage_rows = storage_rows  # rows per chunk of the file, if it is chunked

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, _ = rows.indices(self.shape[0])
        return np.asarray(self._read(start, stop), dtype=np.float64)


def open_lazy(args: argparse.Namespace) -> Input:
    """Open FILE for streaming: HDF5 and zarr are read a chunk of cells at a time."""
    from calab.io.caiman import CaimanRows
    from calab.io.minian import minian_rows, open_minian, unit_ids

    path = Path(args.file).expanduser()
    fmt = args.format or detect_format(path)
    if fmt == "caiman":
        if not path.exists():
            raise CLIError(f"input not found: {path}")
        src = CaimanRows(path, trace=args.trace, accepted_only=not args.all_components, fs=args.fs)
        meta = {"source": "caiman", "cell_ids": src.cell_ids.tolist(), **src.meta_extra}
        return Input(_LazyRows(src.shape, src.rows), src.fs, fmt, path, meta)
    if fmt == "minian":
        if not path.exists():
            raise CLIError(f"input not found: {path}")
        da, where = open_minian(path, variable=args.variable)

        def read(a: int, b: int) -> Any:
            return minian_rows(da, a, b)  # errors name the store

        meta = {"source": "minian", "cell_ids": unit_ids(da).tolist(), "path": where}
        shape = (int(da.shape[0]), int(da.shape[1]))
        rows = da.attrs.get("_calab_unit_chunk")
        return Input(_LazyRows(shape, read, rows), args.fs, fmt, path, meta)
    return open_input(args)  # .npy and tuning files are memory-mapped; suite2p is small


def open_input(args: argparse.Namespace, *, check: bool = True) -> Input:
    """Open the FILE argument. ``check=False`` skips the loaders' NaN checks (``info``)."""
    from calab.io.caiman import load_caiman, read_caiman
    from calab.io.minian import load_minian, read_minian
    from calab.io.suite2p import load_suite2p, read_suite2p
    from calab.io.tuning import read_tuning_metadata, tuning_paths

    path = Path(args.file).expanduser()
    fmt = args.format or detect_format(path)
    fs = args.fs
    if fmt not in ("tuning",) and not path.exists():
        raise CLIError(f"input not found: {path}")
    if fmt == "npy":
        arr = _open_npy(path)
        return Input(arr, fs, fmt, path, {"source": "npy"})
    if fmt == "calab":
        src = _open_calab_output(path)
        if fs is not None:
            src.fs = fs
        return src
    if fmt == "tuning":
        npy_path, _ = tuning_paths(path)
        if not npy_path.is_file():
            raise CLIError(f"tuning data not found: {npy_path}")
        meta = read_tuning_metadata(path)
        arr = _open_npy(npy_path)
        expected = (meta.get("num_cells"), meta.get("num_timepoints"))
        if None not in expected and arr.shape != expected:
            raise CLIError(f"{npy_path} has shape {arr.shape} but its metadata says {expected}")
        return Input(arr, fs or meta["sampling_rate_hz"], fmt, npy_path, meta)
    if fmt == "caiman":
        reader = load_caiman if check else read_caiman
        traces, meta = reader(path, trace=args.trace, accepted_only=not args.all_components, fs=fs)
    elif fmt == "minian":
        if check and fs is not None:
            traces, meta = load_minian(path, fs, variable=args.variable)
        else:
            traces, meta = read_minian(path, fs, variable=args.variable)
            if check:
                from calab.io._common import check_finite_rows

                check_finite_rows(traces, meta["variable"], meta["path"], meta["cell_ids"])
    elif fmt == "suite2p":
        if check:
            traces, meta = load_suite2p(
                path,
                neuropil_coef=args.neuropil_coef,
                cells_only=not args.all_rois,
                fs=fs,
                plane=args.plane,
            )
        else:
            traces, meta = read_suite2p(
                path,
                neuropil_coef=args.neuropil_coef,
                cells_only=not args.all_rois,
                fs=fs,
                plane=args.plane,
                require_fs=False,
            )
    else:  # pragma: no cover - argparse restricts the choices
        raise CLIError(f"unknown format {fmt!r}")
    return Input(traces, meta["sampling_rate_hz"], fmt, path, meta)


def _add_input_options(p: argparse.ArgumentParser, *, format_required: bool = False) -> None:
    p.add_argument(
        "--format",
        choices=PIPELINE_FORMATS,
        required=format_required,
        help="pipeline that wrote FILE (default: guessed from FILE; .npy and tuning stems "
        "need none)",
    )
    p.add_argument(
        "--fs",
        type=float,
        metavar="HZ",
        help="sampling rate in Hz (default: from the file; required for Minian and bare .npy)",
    )
    g = p.add_argument_group("pipeline options")
    g.add_argument(
        "--trace",
        choices=("C", "C+YrA"),
        default="C",
        help="CaImAn: denoised C (default) or C+YrA (keeps the noise)",
    )
    g.add_argument(
        "--all-components",
        action="store_true",
        help="CaImAn: keep rejected components too (default: idx_components only)",
    )
    g.add_argument(
        "--variable", default="C", help="Minian: variable to read (C, S or YrA; default C)"
    )
    g.add_argument(
        "--neuropil-coef",
        type=float,
        default=0.7,
        metavar="K",
        help="suite2p: trace = F - K * Fneu (default 0.7)",
    )
    g.add_argument(
        "--all-rois", action="store_true", help="suite2p: keep ROIs not classified as cells"
    )
    g.add_argument("--plane", type=int, default=0, help="suite2p: plane number (default 0)")


# ----------------------------------------------------------------------------- output


def _partial_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial-{os.getpid()}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _commit(tmp: Path, final: Path) -> None:
    """Move a finished temp file or folder into place (replacing ``final``)."""
    if final.is_dir() and not final.is_symlink():
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)


def _resumable_name(path: Path, suffix: str = "") -> Path:
    """Where an unfinished ``calab deconvolve`` keeps its output (same name on every run)."""
    return path.with_name(f".{path.name}.partial{suffix}")


class _Writer:
    """Writes activity rows to a partial file; ``commit`` renames it into place.

    With ``resume`` the partial file of an interrupted run is opened and extended.
    """

    def __init__(
        self,
        path: Path,
        shape: tuple[int, int],
        full: bool,
        attrs: dict[str, Any],
        resume: bool = False,
    ):
        self.path = path
        self.tmp = _resumable_name(path)
        self.shape = shape
        self.full = full
        self.attrs = attrs
        self.resume = resume

    def flush(self) -> None:
        pass

    def write(self, start: int, res: Any) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def commit(self) -> None:
        self.close()
        _commit(self.tmp, self.path)

    def abort(self) -> None:
        try:
            self.close()
        finally:
            _remove(self.tmp)


class _NpyWriter(_Writer):
    def __init__(self, *a: Any) -> None:
        super().__init__(*a)
        self.out: Any = np.lib.format.open_memmap(
            self.tmp,
            mode="r+" if self.resume else "w+",
            dtype=None if self.resume else "<f8",
            shape=None if self.resume else self.shape,
        )

    def flush(self) -> None:
        self.out.flush()

    def write(self, start: int, res: Any) -> None:
        self.out[start : start + res.activity.shape[0]] = res.activity

    def close(self) -> None:
        if self.out is not None:
            self.out.flush()
            self.out = None


_FIELDS = {"activity": "<f8", "baseline": "<f8", "iterations": "<i8", "converged": bool}


class _ArrayWriter(_Writer):
    """Writers of named arrays (``self.arrays``): activity, and with --full the per-cell stats."""

    arrays: dict[str, Any]

    def names(self) -> list[str]:
        return list(_FIELDS) if self.full else ["activity"]

    def activity_rows(self) -> int:
        n, t = self.shape
        return max(1, min(n, (1 << 20) // max(t, 1)))

    def write(self, start: int, res: Any) -> None:
        stop = start + res.activity.shape[0]
        for name, arr in self.arrays.items():
            arr[start:stop] = getattr(res, name)


class _H5Writer(_ArrayWriter):
    def __init__(self, *a: Any) -> None:
        super().__init__(*a)
        from calab.io._deps import require

        h5py = require("h5py")
        n, t = self.shape
        self.f: Any = h5py.File(self.tmp, "a" if self.resume else "w")
        if self.resume:
            self.arrays = {k: self.f[k] for k in self.names()}
            return
        self.arrays = {
            k: self.f.create_dataset(
                k,
                shape=self.shape if k == "activity" else (n,),
                dtype=_FIELDS[k],
                chunks=(self.activity_rows(), t) if k == "activity" else None,
            )
            for k in self.names()
        }
        for k, v in self.attrs.items():
            self.f.attrs[k] = json.dumps(v) if isinstance(v, dict | list) else v

    def flush(self) -> None:
        self.f.flush()

    def close(self) -> None:
        if self.f is not None:
            self.f.close()
            self.f = None


class _ZarrWriter(_ArrayWriter):
    def __init__(self, *a: Any) -> None:
        super().__init__(*a)
        from calab.io._deps import require

        zarr = require("zarr")
        n, t = self.shape
        if self.resume:
            group = zarr.open_group(str(self.tmp), mode="r+")
            self.arrays = {k: group[k] for k in self.names()}
            return
        group = zarr.open_group(str(self.tmp), mode="w")
        make = group.create_array if hasattr(group, "create_array") else group.create_dataset
        self.arrays = {
            k: make(
                k,
                shape=self.shape if k == "activity" else (n,),
                chunks=(self.activity_rows(), t) if k == "activity" else (max(1, n),),
                dtype=_FIELDS[k],
            )
            for k in self.names()
        }
        group.attrs.update(self.attrs)


def _writer_for(path: Path) -> type[_Writer]:
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return _NpyWriter
    if suffix in (".h5", ".hdf5"):
        return _H5Writer
    if suffix == ".zarr":
        return _ZarrWriter
    raise CLIError(f"output {path} must end in .npy, .h5 or .zarr")


def _check_writable(paths: Sequence[Path], force: bool, inputs: Sequence[Path]) -> None:
    resolved_inputs = {p.resolve() for p in inputs if p.exists()}
    for p in paths:
        if p.resolve() in resolved_inputs:
            raise CLIError(f"{p} is an input file; choose another output name")
        if not p.parent.is_dir():
            raise CLIError(f"output folder does not exist: {p.parent}")
        if p.exists() and not force:
            raise CLIError(f"{p} already exists; pass --force to replace it")


# ----------------------------------------------------------------------------- commands


def _progress(total: int, quiet: bool, desc: str) -> Any:
    from tqdm import tqdm

    return tqdm(
        total=total,
        unit="cell",
        desc=desc,
        file=sys.stderr,
        disable=quiet or not sys.stderr.isatty(),
        leave=False,
    )


def _default_output(src: Input) -> Path:
    base = src.path
    name = base.name
    for suffix in (".npy", ".hdf5", ".h5", ".zarr"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return base.with_name(f"{name or 'traces'}_activity.npy")


def _default_chunk(src: Input) -> int:
    """Cells per block: about 16 MB of float64 traces, whole storage chunks where possible."""
    n, t = src.shape
    budget = max(1, 2_000_000 // max(t, 1))
    rows = getattr(src.data, "storage_rows", None)
    if rows and rows <= budget:
        budget = (budget // rows) * rows
    return max(1, min(n, budget))


def _fingerprint(src: Input, attrs: dict[str, Any], chunk: int, full: bool) -> dict[str, Any]:
    """What must match for an interrupted run to be resumed instead of restarted."""
    st = src.path.stat()
    stamp: list[Any] = [st.st_size, st.st_mtime_ns]
    if src.path.is_dir():  # a zarr store: its files change when it is rewritten
        stamp += sorted(
            [str(q.relative_to(src.path)), q.stat().st_size, q.stat().st_mtime_ns]
            for q in src.path.rglob("*")
            if q.is_file()
        )[:10_000]
    return {
        "input": str(src.path.resolve()),
        "stamp": stamp,
        "shape": list(src.shape),
        "chunk": chunk,
        "full": full,
        "parameters": attrs["parameters"],
        "sampling_rate_hz": attrs["sampling_rate_hz"],
        "calab_version": attrs["calab_version"],
    }


def _write_json(path: Path, obj: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj), encoding="utf-8")
    os.replace(tmp, path)


def _cmd_deconvolve(args: argparse.Namespace) -> int:
    from calab import __version__
    from calab.io._common import nan_rows
    from calab.io.export import load_export_params
    from calab.params import Params, SolverOptions, solve_block

    params = load_export_params(args.params)
    src = open_lazy(args)
    fs = src.fs if src.fs is not None else params["fs"]
    if not math.isclose(fs, params["fs"], rel_tol=1e-9):
        print(
            f"calab: warning: the data are sampled at {fs:g} Hz but the parameters were tuned "
            f"at {params['fs']:g} Hz; deconvolving at {fs:g} Hz (time constants are in seconds)",
            file=sys.stderr,
        )
    solve_params = Params.from_export({**params, "fs": fs})
    solve_options = SolverOptions(n_threads=args.threads)
    out = Path(args.output).expanduser() if args.output else _default_output(src)
    writer_cls = _writer_for(out)
    info_path = out.with_name(out.name[: -len(out.suffix)] + "_info.json")
    targets = [out, info_path] if args.full else [out]
    _check_writable(targets, args.force, [src.path, Path(args.params)])
    n, t = src.shape
    chunk = args.chunk_size or _default_chunk(src)
    attrs = {
        "calab_version": __version__,
        "source": str(src.path),
        "format": src.format,
        "sampling_rate_hz": fs,
        "parameters": {
            k: params[k] for k in ("tau_rise", "tau_decay", "lambda_", "fs", "filter_enabled")
        },
    }
    # An interrupted run (Ctrl-C, kill, power loss) leaves its partial output and a progress
    # file; the same command resumes it without redoing the chunks already written.
    progress_path = _resumable_name(out, ".json")
    stats_path = _resumable_name(out, ".stats.npy")
    partial = _resumable_name(out)
    fingerprint = _fingerprint(src, attrs, chunk, args.full)
    done: set[int] = set()
    if progress_path.exists():
        try:
            saved = json.loads(progress_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            saved = {}
        if (
            saved.get("fingerprint") == fingerprint
            and partial.exists()
            and stats_path.exists()
            and not args.force
        ):
            done = {int(x) for x in saved.get("done", [])}
            print(
                f"calab: resuming {out.name}: {len(done)} of {-(-n // chunk)} chunks already "
                "written",
                file=sys.stderr,
            )
        elif not args.force:
            raise CLIError(
                f"an unfinished run with other inputs or settings left {partial}; pass --force "
                "to start over (it is deleted)"
            )
    if not done:
        for p in (partial, progress_path, stats_path):
            _remove(p)
    writer = writer_cls(out, (n, t), args.full, attrs, bool(done))
    stats: Any = np.lib.format.open_memmap(
        stats_path,
        mode="r+" if done else "w+",
        dtype=None if done else "<f8",
        shape=None if done else (n, 3),
    )
    if not done:
        _write_json(progress_path, {"fingerprint": fingerprint, "done": []})
    info_tmp = _partial_name(info_path)
    ids = src.meta.get("cell_ids")
    try:
        with _progress(n, args.quiet, "deconvolve") as bar:
            bar.update(sum(min(chunk, n - s) for s in done))
            for start in range(0, n, chunk):
                if start in done:
                    continue
                stop = min(n, start + chunk)
                block = np.asarray(src.data[start:stop], dtype=np.float64)
                bad = nan_rows(block)
                if bad.size:
                    rows = [start + int(i) for i in bad[:10]]
                    label = ", ".join(str(ids[r] if ids is not None else r) for r in rows)
                    raise CLIError(
                        f"{src.path}: traces of cells {label} hold NaN or Inf; drop or "
                        "interpolate them first"
                    )
                res = solve_block(block, solve_params.for_cells(start, stop), solve_options)
                writer.write(start, res)
                writer.flush()
                stats[start:stop, 0] = res.baseline
                stats[start:stop, 1] = res.iterations
                stats[start:stop, 2] = res.converged
                stats.flush()
                done.add(start)
                _write_json(progress_path, {"fingerprint": fingerprint, "done": sorted(done)})
                bar.update(stop - start)
        baseline = np.array(stats[:, 0])
        iterations = np.array(stats[:, 1]).astype(np.int64)
        converged = np.array(stats[:, 2]).astype(bool)
        if args.full:
            info = dict(attrs)
            info.update(
                output=str(out),
                num_cells=n,
                num_timepoints=t,
                cell_ids=list(ids) if ids is not None else None,
                baseline=baseline.tolist(),
                iterations=iterations.tolist(),
                converged=converged.tolist(),
            )
            info_tmp.write_text(json.dumps(info, indent=1) + "\n", encoding="utf-8")
        writer.commit()
        if args.full:
            os.replace(info_tmp, info_path)
        del stats
        for p in (progress_path, stats_path):
            _remove(p)
    except KeyboardInterrupt:
        writer.close()
        info_tmp.unlink(missing_ok=True)
        print(
            f"calab: interrupted; {len(done)} of {-(-n // chunk)} chunks are saved in "
            f"{partial.name}: run the same command again to resume (or delete the "
            f"{partial.name}* files)",
            file=sys.stderr,
        )
        raise
    except BaseException:
        writer.abort()
        info_tmp.unlink(missing_ok=True)
        for p in (progress_path, stats_path):
            _remove(p)
        raise
    n_bad = int((~converged).sum())
    if n_bad:
        print(f"calab: warning: {n_bad} of {n} cells did not converge", file=sys.stderr)
    for p in targets:
        print(p)
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from calab.io.tuning import save_for_tuning, tuning_paths

    src = open_input(args)
    if src.fs is None:
        raise CLIError(f"{src.path} stores no sampling rate; pass --fs HZ")
    npy_path, meta_path = tuning_paths(args.output)
    _check_writable([npy_path, meta_path], args.force, [src.path])
    extra: dict[str, Any] = {
        "source": src.meta.get("source", src.format),
        "source_path": str(src.path),
    }
    for key in ("cell_ids", "trace", "variable", "neuropil_coef"):
        if key in src.meta:
            extra[key] = src.meta[key]
    tmp_stem = npy_path.with_name(f".{npy_path.name[:-4]}.partial-{os.getpid()}")
    tmp_npy, tmp_meta = tuning_paths(tmp_stem)
    try:
        save_for_tuning(np.asarray(src.data), src.fs, tmp_stem, **extra)
        os.replace(tmp_npy, npy_path)
        os.replace(tmp_meta, meta_path)
    except BaseException:
        tmp_npy.unlink(missing_ok=True)
        tmp_meta.unlink(missing_ok=True)
        raise
    print(npy_path)
    print(meta_path)
    return 0


def _count_nan(data: Any) -> int:
    n = int(data.shape[0])
    step = max(1, 4_000_000 // max(int(data.shape[1]), 1))
    return sum(
        int(np.count_nonzero(np.isnan(np.asarray(data[i : i + step])))) for i in range(0, n, step)
    )


def _cmd_info(args: argparse.Namespace) -> int:
    src = open_input(args, check=False)
    n, t = src.shape
    dtype = str(src.data.dtype)
    fs = src.fs
    info: dict[str, Any] = {
        "file": str(src.path),
        "format": src.format,
        "num_cells": n,
        "num_timepoints": t,
        "dtype": dtype,
        "sampling_rate_hz": fs,
        "duration_s": t / fs if fs else None,
        "nan_count": _count_nan(src.data),
    }
    if args.json:
        print(json.dumps(info))
        return 0
    print(f"file:          {info['file']}")
    print(f"format:        {src.format}")
    print(f"shape:         {n} cells x {t} timepoints")
    print(f"dtype:         {dtype}")
    if fs:
        print(f"sampling rate: {fs:g} Hz")
        print(f"duration:      {t / fs:.3f} s")
    else:
        print("sampling rate: unknown (pass --fs)")
        print("duration:      unknown")
    print(f"NaN count:     {info['nan_count']}")
    return 0


# ----------------------------------------------------------------------------- parser


def _cmd_tune(args: argparse.Namespace) -> int:
    from calab.bridge import tune

    src = open_input(args)
    if src.fs is None:
        raise CLIError(f"{src.path} stores no sampling rate; pass --fs HZ")
    output = Path(args.output) if args.output else None
    if output is not None:
        _check_writable([output], args.force, [src.path])
        if args.force:
            _remove(output)
    params = tune(
        np.asarray(src.data),
        src.fs,
        port=args.port,
        open_browser=not args.no_browser,
        app_url=args.app_url,
        timeout=args.timeout,
        output=output,
    )
    if params is None:
        raise CLIError("no parameters were exported (timed out, or the page was closed)")
    print(json.dumps(params), flush=True)
    return 0


def add_tune_command(subparsers: Any) -> None:
    """Register ``calab tune``: the browser tuning page of :func:`calab.tune`."""
    p = subparsers.add_parser(
        "tune",
        help="tune parameters in the browser (local page, works offline)",
        description="Serve the calab tuning page for FILE on 127.0.0.1 and wait for Export; "
        "then print the parameters as JSON on stdout (and write the CaTune export with -o).",
    )
    p.add_argument("file", metavar="FILE", help=".npy file, tuning-file stem or pipeline output")
    _add_input_options(p)
    p.add_argument("--port", type=int, default=None, help="port to listen on (default: free)")
    p.add_argument(
        "--no-browser", action="store_true", help="print the page URL instead of opening it"
    )
    p.add_argument("-o", "--output", metavar="EXPORT.json", help="also write the export JSON")
    p.add_argument("--force", action="store_true", help="overwrite an existing -o file")
    p.add_argument("--timeout", type=float, default=None, help="give up after SECONDS")
    p.add_argument("--app-url", default=None, help="another front end (a hosted CaTune)")
    p.set_defaults(handler=_cmd_tune)


def build_parser() -> argparse.ArgumentParser:
    from calab import __version__

    parser = argparse.ArgumentParser(
        prog="calab",
        description="Calcium-imaging deconvolution with the CaTune model.",
        epilog="Run 'calab COMMAND --help' for a command's options.",
    )
    parser.add_argument("--version", action="version", version=f"calab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "deconvolve",
        help="deconvolve traces with the parameters of a CaTune export",
        description="Deconvolve FILE with the parameters of a CaTune export JSON and write "
        "the activity (n_cells, n_timepoints) as .npy, .h5 or .zarr (by OUT's extension).",
    )
    p.add_argument("file", metavar="FILE", help=".npy file, tuning-file stem or pipeline output")
    p.add_argument("--params", required=True, metavar="EXPORT.json", help="CaTune export JSON")
    p.add_argument(
        "-o", "--output", metavar="OUT", help="output file (default: <FILE stem>_activity.npy)"
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="also write <OUT stem>_info.json with baseline, iterations and converged "
        "(stored inside .h5/.zarr outputs too)",
    )
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    p.add_argument("--threads", type=int, metavar="N", help="solver threads (default: all cores)")
    p.add_argument("--chunk-size", type=int, metavar="N", help="cells per solver batch")
    _add_input_options(p)
    p.set_defaults(handler=_cmd_deconvolve)

    p = sub.add_parser(
        "convert",
        help="convert a pipeline output to tuning files",
        description="Write the tuning files STEM.npy and STEM_metadata.json from a CaImAn, "
        "Minian or suite2p output.",
    )
    p.add_argument("file", metavar="FILE", help="pipeline output (file or folder)")
    p.add_argument("-o", "--output", required=True, metavar="STEM", help="output stem")
    p.add_argument("--force", action="store_true", help="replace existing output files")
    _add_input_options(p)
    p.set_defaults(handler=_cmd_convert)

    p = sub.add_parser(
        "info",
        help="show shape, dtype, sampling rate, duration and NaN count",
        description="Describe the traces in FILE (.npy, tuning stem or pipeline output).",
    )
    p.add_argument("file", metavar="FILE")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    _add_input_options(p)
    p.set_defaults(handler=_cmd_info)

    add_tune_command(sub)
    return parser


def _message(exc: BaseException) -> str:
    if isinstance(exc, KeyError) and exc.args:
        return str(exc.args[0])
    text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``calab`` command; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_usage(sys.stderr)
        print("calab: error: choose a command (see calab --help)", file=sys.stderr)
        return 2
    try:
        return int(handler(args))
    except KeyboardInterrupt:
        print("calab: interrupted; no output written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # one line, no traceback
        if os.environ.get("CALAB_DEBUG"):
            raise
        print(f"calab: error: {_message(exc)}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
