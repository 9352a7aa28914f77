"""Batch deconvolution: one chunk loop for arrays and files.

- :func:`iter_chunks` is the chunk loop: it reads a block of cells, checks it, solves it with
  :func:`calab.solve.solve_block` (the one "filter, then solve") and hands the result over.
- :func:`deconvolve_rows` runs the loop over an array (what ``TuneWidget.deconvolve`` and
  :func:`calab.deconvolve_from_export` do).
- :func:`deconvolve_file` runs it from a file to a file, as ``calab deconvolve`` does: it
  streams (bounded memory), takes a lock on the output (:mod:`calab.io.lock`), writes under a
  temporary name and resumes an interrupted run after verifying what it reuses
  (:mod:`calab.io.resume`).
"""

from __future__ import annotations

import errno
import logging
import math
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from calab._validate import traces_2d, warn_implausible
from calab.estimate import estimate_source, estimated_params
from calab.io._common import PathLike
from calab.io.lock import OutputBusyError, lock_path, output_lock
from calab.io.open import ReadOptions, Source, check_chunk_cells, default_chunk, open_rows
from calab.io.resume import Partial, fingerprint
from calab.io.writers import (
    NpyWriter,
    Writer,
    cell_id_array,
    check_outputs,
    dumps_json,
    json_ids,
    remove,
    sidecar_path,
    writer_for,
)
from calab.params import DeconvolutionResult, Params, SolverOptions
from calab.solve import solve_block, squeeze

log = logging.getLogger(__name__)

#: Test hook, read only here: after this many chunks are recorded, the run waits for a signal
#: (so tests interrupt it at a known point instead of racing a clock).
PAUSE_ENV = "CALAB_TEST_PAUSE_AFTER_CHUNKS"
#: Keywords of run_deconvolution that belong to the model (Params), not to SolverOptions.
MODEL_KEYWORDS = ("baseline", "baseline_window_s")


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`deconvolve_file`; the message says what was kept and how to resume."""


class RunStopped(OSError):
    """The file system stopped :func:`deconvolve_file` (a full disk, no permission...).

    ``errno`` is the cause's (ENOSPC for a full disk); the message says what happened, that the
    finished work is kept in the partial folder, and to run the same command again to resume
    once fixed.
    """


class BatchResult(NamedTuple):
    """What :func:`deconvolve_file` wrote.

    Attributes
    ----------
    output : Path
        The activity file (.npy, .h5 or .zarr).
    info : Path or None
        The info file (:func:`info_path_for`): parameters, source and cell ids, with
        ``full=True`` also the per-cell results. Always written beside a ``.npy`` output
        (which cannot hold them), with ``full=True`` beside ``.h5``/``.zarr`` ones.
    num_cells, num_timepoints : int
    not_converged : int
        Cells whose solve did not converge.
    resumed_chunks : int
        Chunks reused from an interrupted run.
    baseline : Path or None
        ``<stem>_baseline.npy``, the (n_cells, n_timepoints) drift baseline, written with
        ``full=True`` and ``baseline="drift"`` beside a ``.npy`` output.
    params : dict
        The parameters used (the :func:`export_params` dict; estimated ones with ``"auto"``).
    """

    output: Path
    info: Path | None
    num_cells: int
    num_timepoints: int
    not_converged: int
    resumed_chunks: int
    baseline: Path | None = None
    params: dict[str, Any] | None = None


# ----------------------------------------------------------------------------- parameters


def export_params(params: Any) -> dict[str, Any]:
    """Deconvolution parameters from an export path, an export object or a parameter dict.

    Parameters
    ----------
    params : str, path-like, dict or Params
        A CaTune export JSON file, a parsed export (with ``parameters``), the dict
        :func:`calab.load_export_params` returns (``tau_rise``, ``tau_decay``, ``lambda_``,
        ``fs``, ``filter_enabled``) or a :class:`calab.params.Params`.

    Returns
    -------
    dict
        ``{'tau_rise', 'tau_decay', 'lambda_', 'fs', 'filter_enabled'}`` (seconds, Hz), plus
        calab's extras when set; validated.
    """
    from calab.io.export import load_export_params, params_from_export

    if isinstance(params, Params):
        return params.to_export()
    if not isinstance(params, Mapping):
        if not isinstance(params, str | os.PathLike):
            raise TypeError(
                "params must be a CaTune export path, an export dict or the dict "
                f"load_export_params returns, got {type(params).__name__}"
            )
        return load_export_params(params)
    if "parameters" in params or "schema_version" in params:
        return params_from_export(params)
    return Params.from_export(params).to_export()


def as_params(params: Any, fs: float | None = None, **model: Any) -> Params:
    """:func:`export_params` as a :class:`calab.params.Params`, solved at ``fs`` if given.

    ``model`` overrides the export's ``baseline`` and ``baseline_window_s``.
    """
    if isinstance(params, Params) and fs is None and not model:
        return params
    p = export_params(params)
    return Params.from_export({**p, **({} if fs is None else {"fs": fs}), **model})


# ----------------------------------------------------------------------------- the chunk loop


def _pause_for_tests(finished: int) -> None:
    after = os.environ.get(PAUSE_ENV)
    if after and finished == int(after):
        log.warning("test hook: paused after %d chunks", finished)
        for h in logging.getLogger("calab").handlers:
            h.flush()
        while True:  # only a signal ends this (SIGINT raises KeyboardInterrupt here)
            if hasattr(signal, "pause"):
                signal.pause()
            else:  # pragma: no cover - Windows
                time.sleep(3600)


@contextmanager
def _elapsed(desc: str, show: bool) -> Iterator[None]:
    """Show a progress line counting the seconds while a step without a count of its own runs."""
    if not show:
        yield
        return
    from tqdm.auto import tqdm

    done = threading.Event()
    with tqdm(desc=desc, bar_format="{desc}: {elapsed}", leave=False) as bar:

        def tick() -> None:
            while not done.wait(0.5):
                bar.refresh()

        ticker = threading.Thread(target=tick, daemon=True)
        ticker.start()
        try:
            yield
        finally:
            done.set()
            ticker.join()


def _labels(ids: Any, rows: list[int]) -> str:
    return ", ".join(str(ids[r] if ids is not None else r) for r in rows[:10]) + (
        f" and {len(rows) - 10} more" if len(rows) > 10 else ""
    )


def iter_chunks(
    rows: Any,
    params: Params,
    options: SolverOptions | None = None,
    *,
    chunk_cells: int | None = None,
    skip: frozenset[int] | set[int] = frozenset(),
    ids: Any = None,
    where: str = "traces",
    progress: bool = False,
    dtype: Any = None,
    warm_start: Any = None,
    full: bool = False,
) -> Iterator[tuple[int, int, DeconvolutionResult]]:
    """Solve ``rows`` a block of cells at a time; yield ``(start, stop, result)`` per block.

    Each block is checked for NaN/Inf (naming the cells), then filtered and solved by
    :func:`calab.solve.solve_block`.

    Parameters
    ----------
    rows : row-sliceable, shape (n_cells, n_frames)
        An array, a memmap or a lazy reader (``rows[a:b]`` reads cells ``a..b``).
    params : Params
        Model parameters (a per-cell lambda is sliced per block).
    options : SolverOptions, optional
        Solver settings.
    chunk_cells : int, optional
        Cells per block (default: all at once).
    skip : set of int
        Block starts already done (resume).
    ids : sequence, optional
        Cell ids, to name cells in error messages.
    where : str
        The source, named in error messages.
    progress : bool
        Show a progress bar (tqdm) over cells.
    dtype : dtype, optional
        Convert each block to this dtype before solving.
    warm_start : array_like, shape (n_cells, n_frames), optional
        Activity of a previous solve, sliced per block.
    full : bool
        Also compute the reconvolution.

    Raises
    ------
    ValueError
        If a block holds NaN or Inf (naming the cells), or the solver returns non-finite values.
    """
    from tqdm.auto import tqdm

    n = int(rows.shape[0])
    chunk = check_chunk_cells(chunk_cells) or max(n, 1)
    if not isinstance(params.lam, float):
        params.lam_for(n)
    starts = range(0, n, chunk)
    done_rows = sum(min(chunk, n - s) for s in starts if s in skip)
    finished = 0
    with tqdm(
        total=n,
        initial=done_rows,
        unit="cell",
        desc="deconvolve",
        disable=not progress,
        leave=False,
    ) as bar:
        for start in starts:
            if start in skip:
                continue
            stop = min(n, start + chunk)
            block = np.asarray(rows[start:stop], dtype=dtype)
            finite = np.isfinite(block)
            bad = np.flatnonzero(~finite.all(axis=1))
            if bad.size:
                cells = _labels(ids, [start + int(i) for i in bad])
                frame = int(np.argmin(finite[bad[0]]))
                raise ValueError(
                    f"{where}: traces of cells {cells} hold NaN or Inf (the first at frame "
                    f"{frame}); drop or interpolate them first"
                )
            init = None if warm_start is None else np.asarray(warm_start[start:stop])
            res = solve_block(block, params.for_cells(start, stop), options, init, full)
            base = np.asarray(res.baseline).reshape(stop - start, -1)
            broken = ~(np.isfinite(res.activity).all(axis=1) & np.isfinite(base).all(axis=1))
            if broken.any():
                cells = _labels(ids, [start + int(i) for i in np.flatnonzero(broken)])
                raise ValueError(
                    f"the solver returned NaN or Inf for cells {cells} of {where} with "
                    f"tau_rise={params.tau_rise:g} s, tau_decay={params.tau_decay:g} s, "
                    f"fs={params.fs:g} Hz; the kernel cannot be represented at these values "
                    "(check the time constants and the sampling rate)"
                )
            yield start, stop, res
            bar.update(stop - start)
            finished += 1
            _pause_for_tests(finished)


def deconvolve_rows(
    rows: Any,
    params: Any,
    *,
    fs: float | None = None,
    chunk_cells: int | None = None,
    progress: bool = True,
    full: bool = True,
    ids: Any = None,
    options: SolverOptions | None = None,
    warm_start: Any = None,
    **solver_kwargs: Any,
) -> Any:
    """Deconvolve an array a block of cells at a time (the loop of :func:`deconvolve_file`).

    Parameters
    ----------
    rows : array_like, shape (n_cells, n_frames) or (n_frames,)
        Traces; a dask array or xarray DataArray is solved lazily instead (dask chunks).
    params : str, path-like, dict or Params
        As :func:`export_params` takes.
    fs : float, optional
        Sampling rate of ``rows`` in Hz (default: the parameters' ``fs``).
    chunk_cells : int, optional
        Cells per solver call (default: all at once).
    progress : bool
        Show a progress bar over cells.
    full : bool
        Return a :class:`calab.DeconvolutionResult` with the reconvolution (True) or the
        activity alone.
    ids : sequence, optional
        Cell ids named in error messages.
    options : SolverOptions, optional
        Solver settings (method, max_iters, tol, n_threads).
    warm_start : array_like, same shape as ``rows``, optional
        Activity from a previous solve.
    **solver_kwargs
        Instead of ``options``: :class:`calab.params.SolverOptions` fields (``method``,
        ``max_iters``, ``tol``, ``n_threads``); also ``baseline`` and ``baseline_window_s``
        (model options, as :func:`calab.run_deconvolution` takes them).

    Returns
    -------
    DeconvolutionResult or ndarray
        Shaped like ``rows`` (1-D input gives 1-D/scalar fields).
    """
    from calab.lazy import deconvolve_lazy, is_lazy

    model = {k: solver_kwargs.pop(k) for k in MODEL_KEYWORDS if k in solver_kwargs}
    if options is not None and solver_kwargs:
        raise TypeError("pass either options= or solver keywords, not both")
    opts = options if options is not None else SolverOptions(**solver_kwargs)
    p = as_params(params, fs, **model)
    if is_lazy(rows):
        if warm_start is not None:
            raise ValueError("warm_start is not supported for dask or xarray input")
        return deconvolve_lazy(rows, p, opts, full)
    data, was_1d = traces_2d(rows)
    init = None
    if warm_start is not None:
        if np.shape(warm_start) != np.shape(rows):
            raise ValueError(
                f"warm_start has shape {np.shape(warm_start)} but traces have shape "
                f"{np.shape(rows)}; pass the activity of a previous solve of the same traces"
            )
        init, _ = traces_2d(warm_start, "warm_start")
    n = data.shape[0]
    out: dict[str, Any] = {}
    for start, stop, res in iter_chunks(
        data, p, opts, chunk_cells=chunk_cells, ids=ids, progress=progress, warm_start=init,
        full=full,
    ):  # fmt: skip
        for name in DeconvolutionResult._fields:
            value = getattr(res, name)
            if value is None:
                out[name] = None
                continue
            value = np.asarray(value)
            if name not in out:
                out[name] = np.empty((n, *value.shape[1:]), dtype=value.dtype)
            out[name][start:stop] = value
    result = DeconvolutionResult(*(out[f] for f in DeconvolutionResult._fields))
    if was_1d:
        result = squeeze(result)
    return result if full else result.activity


# ----------------------------------------------------------------------------- files


def default_output(src: Source) -> Path:
    """``<input stem>_activity.npy`` beside the input."""
    name = src.path.name
    for suffix in (".npy", ".hdf5", ".h5", ".zarr"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return src.path.with_name(f"{name or 'traces'}_activity.npy")


def check_cell_count(p: Mapping[str, Any], n_cells: int, where: str) -> None:
    """Refuse a per-cell lambda (``lambda_per_cell``) whose length is not the file's cell count."""
    lam = p.get("lambda_per_cell")
    if lam is not None and len(lam) != n_cells:
        raise ValueError(
            f"the parameters' lambda_per_cell has {len(lam)} values but {where} has {n_cells} "
            "cells; use the export made for this recording (or one without per-cell lambda)"
        )


def baseline_path_for(out: Path) -> Path:
    """``<OUT stem>_baseline.npy``: the (n_cells, n_frames) drift baseline of a ``.npy`` output."""
    return sidecar_path(out)


def info_path_for(out: Path) -> Path:
    """Return the info file beside the output.

    ``<stem>_info.json`` for ``<stem>.npy``, else ``<stem>_<ext>_info.json`` (``r.h5`` ->
    ``r_h5_info.json``), so that ``r.npy``, ``r.h5`` and ``r.zarr`` never share one.
    """
    ext = out.suffix.lower()
    tag = "" if ext == ".npy" else "_" + ext[1:]
    return out.with_name(out.name[: -len(out.suffix)] + tag + "_info.json")


def deconvolve_file(
    path_in: PathLike,
    path_out: PathLike | None,
    params: Any,
    *,
    format: str | None = None,
    fs: float | None = None,
    chunk_cells: int | None = None,
    force: bool = False,
    full: bool = False,
    progress: bool = True,
    n_threads: int | None = None,
    on_estimate: Callable[[Any, Source], None] | None = None,
    **options: Any,
) -> BatchResult:
    """Deconvolve a file of traces into an activity file, streaming, locked and resumable.

    Exactly what ``calab deconvolve`` does: reads ``path_in`` a block of cells at a time
    (about 16 MB), band-passes each block when the export says so, solves it and writes it to
    ``path_out`` under a temporary name; the output appears only when complete. An interrupted
    run (Ctrl-C, a killed job, a reboot, a full disk) is resumed by the same call without
    redoing the finished blocks, after checking each reused block against its recorded digest;
    a run killed while moving its finished files into place is finished by the same call.

    Parameters
    ----------
    path_in : str or path-like
        ``.npy``, a tuning-file stem, a CaImAn ``.hdf5``, a Minian folder or store, a suite2p
        folder, or a ``.h5``/``.zarr`` written by calab.
    path_out : str or path-like or None
        ``.npy``, ``.h5``/``.hdf5`` or ``.zarr`` (default ``<input stem>_activity.npy``).
    params : str, path-like or dict
        A CaTune export JSON path, a parsed export, or the dict of
        :func:`calab.load_export_params`; or ``"auto"``: estimate them from ``path_in``
        first (:func:`calab.estimate_parameters`, read a block of cells at a time) and use the
        per-cell lambda and baseline mode of the estimate. Estimation is deterministic, so a
        resumed ``"auto"`` run finds the same parameters (they are part of the resume check).
    format : {"npy", "tuning", "caiman", "minian", "suite2p", "calab"}, optional
        Input format (default: guessed).
    fs : float, optional
        Sampling rate in Hz (default: the file's, else the export's). Time constants are in
        seconds, so data at another rate than the tuning are solved at their own rate
        (with a warning).
    chunk_cells : int, optional
        Cells per block (default: about 16 MB of traces).
    force : bool
        Replace existing outputs and discard an unfinished run made with other settings.
    full : bool
        Also store the per-cell results (baseline, iterations, converged) in ``.h5``/``.zarr``
        outputs and in the info file (:func:`info_path_for`), which is then written beside
        them too; a ``.npy`` output always has one (parameters, source, cell ids). With
        ``baseline="drift"`` the baseline has one value per frame, shape (n_cells,
        n_timepoints): the ``baseline`` array of a ``.h5``/``.zarr`` output, or
        ``<stem>_baseline.npy`` beside a ``.npy`` one (the info file names it).
    progress : bool
        Show a progress bar.
    n_threads : int, optional
        Solver threads (default: all cores).
    **options
        :class:`calab.io.open.ReadOptions`: ``trace``, ``accepted_only``, ``variable``,
        ``neuropil_coef``, ``cells_only``, ``plane``.
    on_estimate : callable, optional
        With ``params="auto"``: called with the :class:`calab.ParameterEstimate` and the
        opened source once the estimate is done, before the deconvolution (``calab deconvolve
        --auto`` prints it).

    Returns
    -------
    BatchResult

    Raises
    ------
    OutputBusyError
        If another live run is writing the same output.
    RunInterrupted
        On Ctrl-C (a KeyboardInterrupt); the unfinished work is kept for resuming.
    RunStopped
        An OSError (a full disk, no permission...) while writing; the unfinished work is kept
        for resuming once the cause is fixed.
    FileExistsError, FileNotFoundError, ValueError
        Unsafe or existing outputs, bad inputs or parameters (each message names the fix).
    """
    from calab import __version__

    auto = isinstance(params, str) and params == "auto"
    p: dict[str, Any] | None = None if auto else export_params(params)
    chunk_arg = check_chunk_cells(chunk_cells)
    solver = SolverOptions(n_threads=n_threads)
    opts = ReadOptions(**options)
    params_file = None if auto or isinstance(params, Mapping) else Path(params).expanduser()
    with open_rows(path_in, format=format, fs=fs, **options) as src:
        if auto and src.fs is None:
            raise ValueError(
                f"{src.path} stores no sampling rate; pass fs= (--fs HZ) to estimate the parameters"
            )
        rate = src.fs if src.fs is not None else p["fs"]  # type: ignore[index]
        if p is not None:  # (the estimate checks the rate and the shape itself)
            warn_implausible(rate, p["tau_rise"], p["tau_decay"], src.shape, stacklevel=2)
            check_cell_count(p, src.shape[0], str(src.path))
            if not math.isclose(rate, p["fs"], rel_tol=1e-9):
                warnings.warn(
                    f"the data are sampled at {rate:g} Hz but the parameters were tuned at "
                    f"{p['fs']:g} Hz; deconvolving at {rate:g} Hz (time constants are in seconds)",
                    UserWarning,
                    stacklevel=2,
                )
        out = Path(path_out).expanduser() if path_out is not None else default_output(src)
        writer_cls = writer_for(out)
        info_path = info_path_for(out)
        writes_info = info_path in _targets(out, full, p, writer_cls)
        ids = src.meta.get("cell_ids")
        if full:  # before any work: the info file cannot store NaN ids
            ids = json_ids(ids, str(src.path), "or run without --full (full=False)")
        attrs = {
            "calab_version": __version__,
            "source": str(src.path),
            "format": src.format,
            "sampling_rate_hz": rate,
            "parameters": p,
        }
        chunk = chunk_arg or default_chunk(src)
        partial = Partial(
            out,
            fingerprint(src, attrs, chunk, full, opts, auto),
            writer_cls,
            baseline=baseline_path_for(out),
            info=info_path if writes_info else None,
        )
        inputs = [*src.inputs, *([params_file] if params_file else [])]
        # A run killed while moving its finished files into place: finish it (the outputs it
        # already moved exist, and are its own).
        finishing = partial.finishable() is not None
        if finishing:
            p = partial.fingerprint["parameters"]
        check_outputs(_targets(out, full, p, writer_cls), inputs, force or finishing)  # early
        with output_lock(out):
            finishing = finishing and partial.finishable() is not None  # now no other run can
            check_outputs(_targets(out, full, p, writer_cls), inputs, force or finishing)
            if finishing:
                return _finish(partial, src, full)
            if p is None:
                n, t = src.shape
                log.info("estimating the parameters of %d cells x %d frames...", n, t)
                with _elapsed("estimate", progress):
                    est = estimate_source(src, rate, chunk_arg)
                if on_estimate is not None:
                    on_estimate(est, src)
                p = estimated_params(est)
                check_outputs(_targets(out, full, p, writer_cls), inputs, force)
                partial.fingerprint["parameters"] = attrs["parameters"] = p
            partial.drift = p.get("baseline") == "drift"
            return _run(src, p, rate, partial, attrs, ids, chunk, force, full, progress, solver)


def _targets(
    out: Path, full: bool, p: Mapping[str, Any] | None, writer_cls: type[Writer]
) -> list[Path]:
    """Return the files a run writes.

    The output; its info file with ``full`` or beside a ``.npy`` output; with ``full`` the drift
    baseline of a ``.npy`` output.
    """
    targets = [out, info_path_for(out)] if full or writer_cls is NpyWriter else [out]
    if full and p is not None and p.get("baseline") == "drift" and writer_cls is NpyWriter:
        targets.append(baseline_path_for(out))
    return targets


def _stopped(exc: OSError, partial: Partial) -> RunStopped:
    """Return the one error of a run the file system stopped: what happened, what is kept."""
    path = exc.filename2 if exc.filename2 is not None else exc.filename
    why = exc.strerror or str(exc)
    if path is not None and str(os.path.abspath(path)).startswith(str(partial.dir.absolute())):
        path = partial.dir  # never a temporary name inside it
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        what, fix = f"the disk holding {partial.dir.parent} is full ({why})", "free space there"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) and path is not None:
        what, fix = f"cannot write {path} ({why})", "make it writable"
    else:
        what, fix = (f"{path}: {why}" if path is not None else why), "fix this"
    n = int(partial.fingerprint["shape"][0])
    n_chunks = -(-n // int(partial.fingerprint["chunk"]))
    if os.path.isdir(partial.dir):
        kept = (
            f"{len(partial.done)} of {n_chunks} chunks are saved in {partial.dir.name}: {fix}, "
            "then run the same command again to resume"
        )
    else:
        kept = f"nothing was written; {fix} and run the command again"
    return RunStopped(exc.errno or errno.EIO, f"{what}; {kept}")


def _run(
    src: Source,
    p: dict[str, Any],
    rate: float,
    partial: Partial,
    attrs: dict[str, Any],
    ids: Any,
    chunk: int,
    force: bool,
    full: bool,
    progress: bool,
    solver: SolverOptions,
) -> BatchResult:
    n, t = src.shape
    out = partial.finals[partial.data.name]
    cell_ids = cell_id_array(ids, n).tolist()
    try:
        partial.open((n, t), full, {**attrs, "cell_ids": cell_ids}, force)
        resumed = len(partial.done)
        if resumed:
            n_chunks = -(-n // chunk)
            log.info("resuming %s: %d of %d chunks already written", out.name, resumed, n_chunks)
        for start, stop, res in iter_chunks(
            src.data, Params.from_export({**p, "fs": rate}), solver, chunk_cells=chunk,
            skip=set(partial.done), ids=ids, where=str(src.path), progress=progress,
            dtype=np.float64,
        ):  # fmt: skip
            partial.add(start, stop, res)
        info_text = None
        if full or partial.writer_cls is NpyWriter:
            info = dict(attrs)
            info.update(output=str(out), num_cells=n, num_timepoints=t, cell_ids=cell_ids)
        if full:
            stats = partial.results()
            info.update(
                baseline=stats[:, 0].tolist(),
                iterations=stats[:, 1].astype(np.int64).tolist(),
                converged=stats[:, 2].astype(bool).tolist(),
            )
            if partial.drift:  # (n_cells, n_frames): beside a .npy, else the file's baseline array
                npy = partial.writer_cls is NpyWriter
                where = partial.finals[sidecar_path(partial.data).name] if npy else out
                info["baseline"] = {"mode": "drift", "file": str(where), "shape": [n, t]}
        if full or partial.writer_cls is NpyWriter:
            info_text = dumps_json(info, f"the info file {info_path_for(out)}", indent=1) + "\n"
        partial.stage(info_text)
    except KeyboardInterrupt:
        partial.close(quiet=True)
        if not os.path.isdir(partial.dir):
            raise  # before anything was kept: "no output written"
        name = partial.dir.name
        n_chunks = -(-n // chunk)
        raise RunInterrupted(
            f"interrupted; {len(partial.done)} of {n_chunks} chunks are saved in {name}: run "
            f"the same command again to resume (or delete {name})"
        ) from None
    except OSError as exc:
        partial.close(quiet=True)
        if partial.opened or not os.path.lexists(partial.dir):
            raise _stopped(exc, partial) from exc
        raise  # about a partial of another run: its message names it and the fix
    except BaseException:
        partial.close(quiet=True)
        if partial.opened:
            remove(partial.dir, strict=False)
        raise
    return _finish(partial, src, full, resumed)


def _finish(partial: Partial, src: Source, full: bool, resumed: int | None = None) -> BatchResult:
    """Move the staged files of a complete run into place; return what was written."""
    n, t = src.shape
    p = partial.fingerprint["parameters"]
    try:
        converged = partial.results()[:, 2].astype(bool)
        partial.commit()
    except OSError as exc:
        raise _stopped(exc, partial) from exc
    except KeyboardInterrupt:
        raise RunInterrupted(
            f"interrupted while moving the finished files of {partial.dir.name} into place: run "
            "the same command again to finish"
        ) from None
    n_bad = int((~converged).sum())
    if n_bad:
        warnings.warn(f"{n_bad} of {n} cells did not converge", RuntimeWarning, stacklevel=3)
    out = partial.finals[partial.data.name]
    sidecar = partial.finals.get(sidecar_path(partial.data).name)
    staged = partial.complete or {}
    return BatchResult(
        out,
        partial.finals.get("info.json"),
        n,
        t,
        n_bad,
        len(partial.done) if resumed is None else resumed,
        sidecar if sidecar_path(partial.data).name in staged else None,
        p,
    )


__all__ = [
    "BatchResult",
    "OutputBusyError",
    "RunInterrupted",
    "RunStopped",
    "deconvolve_file",
    "deconvolve_rows",
    "export_params",
    "iter_chunks",
    "lock_path",
    "output_lock",
]
