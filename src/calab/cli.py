"""The ``calab`` command: tune, deconvolve, convert and inspect calcium traces.

Argument parsing and error printing only; the work is done by :mod:`calab.batch`,
:mod:`calab.io.open` and :mod:`calab.io.writers`. Errors print one line, ``calab: error: ...``,
on stderr and exit with status 1 (bad option values: argparse's usage error, status 2); Ctrl-C
exits with 130, and a closed stdout (``calab ... | head``) ends it quietly with 141.
"""

from __future__ import annotations

import argparse
import errno
import json
import logging
import math
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from calab.io.open import PIPELINE_FORMATS
from calab.params import max_threads

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130
#: 128 + SIGPIPE, the status of a shell tool whose reader closed the pipe (``... | head``).
EXIT_BROKEN_PIPE = 141


class CLIError(Exception):
    """An error reported as one line on stderr."""


# ----------------------------------------------------------------------------- option values


def _number(kind: type, what: str, low: float, high: float = math.inf) -> Callable[[str], Any]:
    """Make an argparse type: a finite ``kind`` in ``[low, high]``."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except (ValueError, OverflowError):
            value = None
        if value is None or not math.isfinite(value) or not low <= value <= high:
            bound = f">= {low:g}" if high == math.inf else f"from {low:g} to {high:g}"
            raise argparse.ArgumentTypeError(f"must be {what} {bound}, got {text!r}")
        return value

    return parse


def _positive(what: str) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"must be a positive number of {what}, got {text!r}")
        return value

    return parse


COUNT = _number(int, "an integer", 1)
THREADS = _number(int, "an integer", 1, max_threads())
PORT = _number(int, "a port number", 0, 65535)
PLANE = _number(int, "an integer", 0)
COEF = _number(float, "a number", 0)
HZ = _positive("Hz")
SECONDS = _positive("seconds")


# ----------------------------------------------------------------------------- input options


def _add_input_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "-f",
        "--format",
        choices=PIPELINE_FORMATS,
        help="pipeline that wrote FILE (default: guessed from FILE; .npy and tuning stems "
        "need none)",
    )
    p.add_argument(
        "--fs",
        type=HZ,
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
    rows = g.add_mutually_exclusive_group()
    rows.add_argument(
        "--accepted-only",
        action="store_true",
        help="CaImAn: keep only accepted components (idx_components; default: every row)",
    )
    rows.add_argument("--all-components", action="store_true", help=argparse.SUPPRESS)
    g.add_argument(
        "--variable", default="C", help="Minian: variable to read (C, S or YrA; default C)"
    )
    g.add_argument(
        "--neuropil-coef",
        type=COEF,
        default=0.7,
        metavar="K",
        help="suite2p: trace = F - K * Fneu (default 0.7)",
    )
    g.add_argument(
        "--all-rois", action="store_true", help="suite2p: keep ROIs not classified as cells"
    )
    g.add_argument("--plane", type=PLANE, default=0, help="suite2p: plane number (default 0)")


def _read_options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "trace": args.trace,
        "accepted_only": args.accepted_only,
        "variable": args.variable,
        "neuropil_coef": args.neuropil_coef,
        "cells_only": not args.all_rois,
        "plane": args.plane,
    }


def _open(args: argparse.Namespace) -> Any:
    from calab.io.open import open_traces

    return open_traces(args.file, format=args.format, fs=args.fs, **_read_options(args))


# ----------------------------------------------------------------------------- commands


def _cmd_deconvolve(args: argparse.Namespace) -> int:
    from calab.batch import deconvolve_file
    from calab.estimate_verdict import UnreliableEstimateWarning

    if args.auto == (args.params is not None):
        args.parser.error(
            "choose the parameters: -p/--params EXPORT.json, or --auto to estimate them from FILE"
            if not args.auto
            else "-p/--params and --auto exclude each other (--auto estimates the parameters)"
        )

    def show(est: Any, src: Any) -> None:
        if not args.quiet:
            print_estimate(est, src, file=sys.stderr)
            sys.stderr.flush()

    try:
        with warnings.catch_warnings():
            # --auto writes nothing from an estimate that cannot be trusted (README: the verdict).
            warnings.simplefilter("error", UnreliableEstimateWarning)
            result = deconvolve_file(
                args.file,
                args.output,
                "auto" if args.auto else args.params,
                format=args.format,
                fs=args.fs,
                chunk_cells=args.chunk_size,
                force=args.force,
                full=args.full,
                progress=not args.quiet and sys.stderr.isatty(),
                n_threads=args.threads,
                on_estimate=show,
                **_read_options(args),
            )
    except UnreliableEstimateWarning as exc:
        problems = "; ".join(exc.quality.problems) if exc.quality is not None else str(exc)
        raise CLIError(
            f"--auto: the estimate cannot be trusted ({problems}); nothing written. Check that "
            f"{args.file} holds calcium traces at the right frame rate; to deconvolve anyway, "
            "'calab estimate FILE -o params.json' writes the default kernel it fell back to, "
            "then 'calab deconvolve FILE -p params.json'"
        ) from None
    print(result.output)
    if result.baseline is not None:
        print(result.baseline)
    if result.info is not None:
        print(result.info)
    return 0


def _cmd_convert(args: argparse.Namespace) -> int:
    from calab.io.lock import output_lock
    from calab.io.tuning import save_for_tuning, tuning_paths
    from calab.io.writers import check_outputs, commit, temp_dir

    src = _open(args)
    if src.fs is None:
        raise CLIError(f"{src.path} stores no sampling rate; pass --fs HZ")
    stem = args.output or Path(args.file).expanduser().stem  # the CaLab package's default
    npy_path, meta_path = tuning_paths(stem)
    check_outputs([npy_path, meta_path], src.inputs, args.force)
    extra: dict[str, Any] = {
        "source": src.meta.get("source", src.format),
        "source_path": str(src.path),
    }
    for key in ("cell_ids", "trace", "variable", "neuropil_coef"):
        if key in src.meta:
            extra[key] = src.meta[key]
    with output_lock(npy_path), temp_dir(npy_path) as tmp:
        check_outputs([npy_path, meta_path], src.inputs, args.force)
        tmp_npy, tmp_meta = save_for_tuning(np.asarray(src.data), src.fs, tmp / "t", **extra)
        commit(tmp_npy, npy_path)
        commit(tmp_meta, meta_path)
    print(npy_path)
    print(meta_path)
    return 0


def _cmd_estimate(args: argparse.Namespace) -> int:
    from calab.estimate import estimate_source
    from calab.io.export import export_dict, write_export
    from calab.io.lock import output_lock
    from calab.io.open import open_rows
    from calab.io.writers import check_outputs, commit, json_ids, temp_dir

    output = Path(args.output).expanduser() if args.output else None
    with open_rows(args.file, format=args.format, fs=args.fs, **_read_options(args)) as src:
        if src.fs is None:
            raise CLIError(f"{src.path} stores no sampling rate; pass --fs HZ")
        if output is not None:
            check_outputs([output], src.inputs, args.force)  # before the work
        ids = src.meta.get("cell_ids")
        if args.json:  # before the work: JSON cannot hold NaN ids
            ids = json_ids(ids, str(src.path), "or run without --json")
        est = estimate_source(src, src.fs, args.chunk_size)
        n, t = src.shape
        flagged = [int(i) for i in np.flatnonzero(est.no_transients)]
        if output is not None:
            export = export_dict(
                tau_rise=est.tau_rise,
                tau_decay=est.tau_decay,
                lam=est.lam,
                fs=est.fs,
                baseline=est.baseline,
                metadata={"source_filename": src.path.name, "num_cells": n, "num_timepoints": t},
            )
            with output_lock(output), temp_dir(output) as tmp:
                write_export(tmp / "export.json", export)
                check_outputs([output], src.inputs, args.force)
                commit(tmp / "export.json", output)
    if args.json:
        info = {
            "file": str(src.path),
            "num_cells": n,
            "num_timepoints": t,
            **est.params,
            "baseline": est.baseline,
            "lambda_per_cell": est.lam.tolist(),
            "noise_sd": est.noise.tolist(),
            "no_transients": [ids[i] if ids is not None else i for i in flagged],
            "verdict": est.quality.to_dict() if est.quality is not None else None,
            "output": str(output) if output is not None else None,
        }
        print(json.dumps(info, allow_nan=False))
        return 0
    print_estimate(est, src)
    if output is not None:
        print(output)
    return 0


def print_estimate(est: Any, src: Any, file: Any = None) -> None:
    """Print a :class:`calab.ParameterEstimate` of ``src`` as one short block of fields.

    What ``calab estimate`` prints, and ``calab deconvolve --auto`` (on stderr) before it
    deconvolves.
    """
    n, t = src.shape
    _print_fields(
        ("file", src.path),
        ("shape", f"{n} cells x {t} timepoints"),
        *_estimate_fields(est, src.meta.get("cell_ids")),
        file=file,
    )


def _estimate_fields(est: Any, ids: Any = None) -> list[tuple[str, Any]]:
    """Return the lines that show an estimate (``calab estimate``, ``--auto``), verdict last.

    ``ids``: the cell ids of the rows (for the cells without transients), or None.
    """
    flagged = [int(i) for i in np.flatnonzero(est.no_transients)]
    names = [str(ids[i] if ids is not None else i) for i in flagged]
    shown = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
    lam = est.params["lambda_"]
    fields: list[tuple[str, Any]] = [
        ("sampling rate", f"{est.fs:g} Hz"),
        ("tau_rise", f"{est.tau_rise:g} s"),
        ("tau_decay", f"{est.tau_decay:g} s"),
        ("lambda", f"{lam:g} (median; per cell {np.min(est.lam):g} to {np.max(est.lam):g})"),
        ("noise SD", f"{np.median(est.noise):g} (median)"),
        ("baseline", est.baseline),
        ("no transients", f"{len(flagged)} cells" + (f": {shown}" if names else "")),
    ]
    if est.quality is not None:
        fields.append(("verdict", est.quality.summary()))
    return fields


def _count_nan(data: Any) -> int:
    n = int(data.shape[0])
    step = max(1, 4_000_000 // max(int(data.shape[1]), 1))
    return sum(
        int(np.count_nonzero(np.isnan(np.asarray(data[i : i + step])))) for i in range(0, n, step)
    )


def _info_export(args: argparse.Namespace) -> int:
    from calab.io.export import load_export_params
    from calab.io.open import require_regular

    path = Path(args.file).expanduser()
    require_regular(path, "export")
    params = load_export_params(path)
    try:
        version = json.loads(path.read_text(encoding="utf-8")).get("schema_version")
    except (OSError, ValueError, AttributeError):  # pragma: no cover - read just above
        version = None
    if args.json:
        info = {"file": str(path), "format": "export", "schema_version": version, **params}
        print(json.dumps(info, allow_nan=False))
        return 0
    per_cell = params.get("lambda_per_cell")
    lam = f"{params['lambda_']:g}"
    if per_cell is not None:
        lam = (
            f"one per cell ({len(per_cell)} cells): median {lam}, min {min(per_cell):g}, "
            f"max {max(per_cell):g}"
        )
    baseline = params.get("baseline", "constant")
    if baseline == "drift":
        window = params.get("baseline_window_s")
        from calab.baseline import DEFAULT_WINDOW_S

        baseline += f" (window {DEFAULT_WINDOW_S if window is None else window:g} s)"
    _print_fields(
        ("file", path),
        ("format", f"CaTune export (schema {version})"),
        ("tau_rise", f"{params['tau_rise']:g} s"),
        ("tau_decay", f"{params['tau_decay']:g} s"),
        ("lambda", lam),
        ("sampling rate", f"{params['fs']:g} Hz"),
        ("filter", "on" if params["filter_enabled"] else "off"),
        ("baseline", baseline),
    )
    return 0


def _print_fields(*fields: tuple[str, Any], file: Any = None) -> None:
    """``name:  value`` lines with the values aligned (on stdout, or ``file``)."""
    for name, value in fields:
        print(f"{name + ':':<15}{value}", file=file)


def _cmd_info(args: argparse.Namespace) -> int:
    name = Path(args.file).name.lower()
    if name.endswith(".json") and not name.endswith("_metadata.json") and not args.format:
        return _info_export(args)
    from calab.io.open import open_rows

    # Streamed a block of cells at a time, as deconvolve reads: memory stays bounded by the
    # block, whatever the recording's size; dtype is the stored type, not the float64 read.
    src = open_rows(
        args.file, format=args.format, fs=args.fs, require_fs=False, **_read_options(args)
    )
    with src:
        n, t = src.shape
        fs = src.fs
        info: dict[str, Any] = {
            "file": str(src.path),
            "format": src.format,
            "num_cells": n,
            "num_timepoints": t,
            "dtype": str(src.data.dtype),
            "sampling_rate_hz": fs,
            "duration_s": t / fs if fs else None,
            "nan_count": _count_nan(src.data),
        }
    if args.json:
        print(json.dumps(info, allow_nan=False))
        return 0
    _print_fields(
        ("file", info["file"]),
        ("format", src.format),
        ("shape", f"{n} cells x {t} timepoints"),
        ("dtype", info["dtype"]),
        ("sampling rate", f"{fs:g} Hz" if fs else "unknown (pass --fs)"),
        ("duration", f"{t / fs:.3f} s" if fs else "unknown"),
        ("NaN count", info["nan_count"]),
    )
    return 0


def _cmd_tune(args: argparse.Namespace) -> int:
    from calab.bridge import tune
    from calab.io.lock import output_lock
    from calab.io.writers import check_outputs, commit, temp_dir

    src = _open(args)
    if src.fs is None:
        raise CLIError(f"{src.path} stores no sampling rate; pass --fs HZ")
    output = Path(args.output).expanduser() if args.output else None

    def run(export_to: Path | None) -> Any:
        try:
            return tune(
                np.asarray(src.data),
                src.fs,
                port=args.port,
                open_browser=not args.no_browser,
                # The URL on its own line on stderr: stdout is for the parameters' JSON.
                on_url=(lambda url: print(url, file=sys.stderr, flush=True))
                if args.no_browser
                else None,
                app_url=args.app_url,
                timeout=args.timeout,
                output=export_to,
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CLIError(
                    f"port {args.port} is in use; choose another --port or leave it out for a "
                    "free one"
                ) from None
            raise

    if output is None:
        params = run(None)
    else:
        # The export goes to a fresh temporary folder and replaces OUTPUT only once complete:
        # a timeout or a closed page leaves an existing OUTPUT as it was.
        check_outputs([output], src.inputs, args.force)
        with output_lock(output), temp_dir(output) as tmp:
            params = run(tmp / "export.json")
            if params is not None:
                check_outputs([output], src.inputs, args.force)
                commit(tmp / "export.json", output)
    if params is None:
        raise CLIError("no parameters were exported (timed out, or the page was closed)")
    print(json.dumps(params), flush=True)
    return 0


# ----------------------------------------------------------------------------- parser


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
    p.add_argument(
        "--port", type=PORT, default=None, help="port to listen on (default: a free one)"
    )
    p.add_argument(
        "--no-browser", action="store_true", help="print the page URL instead of opening it"
    )
    p.add_argument("-o", "--output", metavar="EXPORT.json", help="also write the export JSON")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace an existing -o file (only once the new export is complete)",
    )
    p.add_argument("--timeout", type=SECONDS, default=None, help="give up after SECONDS")
    p.add_argument("--app-url", default=None, help="another front end (a hosted CaTune)")
    p.set_defaults(handler=_cmd_tune)


def build_parser() -> argparse.ArgumentParser:
    """Build the ``calab`` argument parser."""
    from calab import DISTRIBUTION, __version__

    parser = argparse.ArgumentParser(
        prog="calab",
        description="Calcium-imaging deconvolution with the CaTune model.",
        epilog="Run 'calab COMMAND --help' for a command's options.",
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"calab {__version__} (the {DISTRIBUTION} package; not CaLab's calab on PyPI)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser(
        "deconvolve",
        help="deconvolve traces with the parameters of a CaTune export (or --auto)",
        description="Deconvolve FILE with the parameters of a CaTune export JSON (or, with "
        "--auto, parameters estimated from FILE) and write "
        "the activity (n_cells, n_timepoints) as .npy, .h5 or .zarr (by OUT's extension). "
        "Streams, takes a lock on OUT, and resumes an interrupted run.",
    )
    p.add_argument("file", metavar="FILE", help=".npy file, tuning-file stem or pipeline output")
    p.add_argument("-p", "--params", metavar="EXPORT.json", help="CaTune export JSON")
    p.add_argument(
        "--auto",
        action="store_true",
        help="estimate the parameters from FILE instead (per-cell lambda, baseline mode; "
        "as 'calab estimate', whose summary it prints on stderr)",
    )
    p.add_argument(
        "-o", "--output", metavar="OUT", help="output file (default: <FILE stem>_activity.npy)"
    )
    p.add_argument(
        "--full",
        action="store_true",
        help="also store baseline, iterations and converged per cell (inside .h5/.zarr "
        "outputs, and in the info file: <OUT stem>_info.json beside a .npy, which always has "
        "one with the parameters and cell ids; <OUT stem>_h5_info.json / _zarr_info.json)",
    )
    p.add_argument("--force", action="store_true", help="replace existing output files")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or notes")
    p.add_argument("--threads", type=THREADS, metavar="N", help="solver threads (default: all)")
    p.add_argument("--chunk-size", type=COUNT, metavar="N", help="cells per solver batch")
    _add_input_options(p)
    p.set_defaults(handler=_cmd_deconvolve, parser=p)

    p = sub.add_parser(
        "estimate",
        help="estimate kernel, per-cell lambda and baseline mode from the traces",
        description="Estimate the parameters from FILE itself (calab.estimate_parameters, read "
        "a block of cells at a time) and print them; with -o also write the export JSON "
        "(per-cell lambda and baseline under its 'calab' key), for 'calab deconvolve -p'.",
    )
    p.add_argument("file", metavar="FILE", help=".npy file, tuning-file stem or pipeline output")
    p.add_argument("-o", "--output", metavar="EXPORT.json", help="write the export JSON")
    p.add_argument("--force", action="store_true", help="replace an existing -o file")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--chunk-size", type=COUNT, metavar="N", help="cells read at a time")
    _add_input_options(p)
    p.set_defaults(handler=_cmd_estimate)

    p = sub.add_parser(
        "convert",
        help="convert a pipeline output to tuning files",
        description="Write the tuning files STEM.npy and STEM_metadata.json from a CaImAn, "
        "Minian or suite2p output.",
    )
    p.add_argument("file", metavar="FILE", help="pipeline output (file or folder)")
    p.add_argument(
        "-o", "--output", metavar="STEM", help="output stem (default: FILE's name, here)"
    )
    p.add_argument("--force", action="store_true", help="replace existing output files")
    _add_input_options(p)
    p.set_defaults(handler=_cmd_convert)

    p = sub.add_parser(
        "info",
        help="show shape, dtype, sampling rate, duration and NaN count (or an export's parameters)",
        description="Describe the traces in FILE (.npy, tuning stem or pipeline output), or "
        "the parameters of a CaTune export JSON.",
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
    if isinstance(exc, OSError) and exc.strerror:  # never "[Errno 13] ..."
        where = exc.filename if exc.filename is not None else ""
        text = f"{where}: {exc.strerror}" if where else exc.strerror
    else:
        text = str(exc).strip() or type(exc).__name__
    return " ".join(text.split())


class _OneLine(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        level = "warning: " if record.levelno >= logging.WARNING else ""
        return f"calab: {level}{' '.join(record.getMessage().split())}"


def _warning_printer(quiet: bool) -> Callable[..., None]:
    """Warnings as one line each; under ``--quiet`` only calab's own (not zarr's, h5py's...)."""

    def show(message: Any, category: Any, filename: str, *args: Any, **kwargs: Any) -> None:
        if quiet and "calab" not in Path(filename).parts:
            return
        print(f"calab: warning: {' '.join(str(message).split())}", file=sys.stderr)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``calab`` command; return the exit status."""
    from calab.batch import RunInterrupted

    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_usage(sys.stderr)
        print("calab: error: choose a command (see calab --help)", file=sys.stderr)
        return 2
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(_OneLine())
    logger = logging.getLogger("calab")
    logger.addHandler(stream)
    quiet = bool(getattr(args, "quiet", False))
    logger.setLevel(logging.WARNING)
    for name in ("calab.batch", "calab.io.resume", "calab.io.lock"):  # resume, stale locks
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.INFO)
    old_show = warnings.showwarning
    warnings.showwarning = _warning_printer(quiet)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            return int(handler(args))
    except BrokenPipeError:
        # The reader of stdout went away (`calab ... --json | head`): stop quietly, as cat does.
        # stdout now points to /dev/null so that Python's flush at exit does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE
    except RunInterrupted as exc:
        print(f"calab: {exc}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        print("calab: interrupted; no output written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # one line, no traceback
        if os.environ.get("CALAB_DEBUG"):
            raise
        print(f"calab: error: {_message(exc)}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        from calab.io._deps import settle_zarr_tasks

        settle_zarr_tasks()  # an interrupted zarr read or write: no asyncio noise at exit
        warnings.showwarning = old_show
        logger.removeHandler(stream)


if __name__ == "__main__":
    sys.exit(main())
