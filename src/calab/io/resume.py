"""Resuming an interrupted run: the unfinished work kept in ``.OUT.partial`` beside the output.

A run writing ``OUT`` keeps its unfinished work in the folder ``.OUT.partial`` (the data, the
per-cell results in ``stats.npy`` and ``progress.json``, which records each finished chunk with
a digest of its rows, written only after that chunk's data is flushed). A later run with the
same :func:`fingerprint` (input, parameters, chunking) reads each recorded chunk back, checks
it against its digest and skips it; a damaged or truncated partial is never trusted.

Nothing in the folder is opened through a link: an entry that is not a regular file (or, in a
``.zarr``, a real folder) makes the partial damaged, as does a ``progress.json`` larger than its
run could write or not of the form calab writes; a damaged partial is started over (a warning
names the file and what is wrong).

When every chunk is done, the finished files (and the info JSON) are *staged* in the folder and
the record says ``complete``, with the identity of each staged file; only then are they moved to
their final names (:meth:`Partial.commit`). A run killed between those moves is finished by the
next one (:meth:`Partial.finishable`) instead of being refused or redone.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from calab.io._common import file_kind
from calab.io.open import ReadOptions, Source
from calab.io.writers import (
    FIELDS,
    NpyFile,
    Writer,
    commit,
    dumps_json,
    read_regular,
    remove,
    sidecar_path,
    write_json_atomic,
    write_text_atomic,
)
from calab.params import DeconvolutionResult

log = logging.getLogger(__name__)

_KEY = re.compile(r"0|[1-9][0-9]{0,18}")
_DIGEST = re.compile(r"[0-9a-f]{32}")


class DamagedPartial(ValueError):
    """The unfinished run cannot be trusted (the message names the file and why); start over."""


def fingerprint(
    src: Source,
    attrs: dict[str, Any],
    chunk: int,
    full: bool,
    options: ReadOptions,
    auto: bool = False,
) -> dict[str, Any]:
    """Return what must match for an interrupted run to be resumed instead of restarted.

    ``auto``: the parameters are estimated from the input (deterministically), so a run
    resumed or finished before estimating them again compares everything else
    (:func:`same_run`).
    """
    return {
        "input": str(src.path.resolve()),
        "format": src.format,
        "options": [options.trace, options.accepted_only, options.variable,
                    options.neuropil_coef, options.cells_only, options.plane],
        "stamp": src.stamp(),
        "shape": list(src.shape),
        "chunk": chunk,
        "full": full,
        "auto": auto,
        "parameters": attrs["parameters"],
        "sampling_rate_hz": attrs["sampling_rate_hz"],
        "calab_version": attrs["calab_version"],
    }  # fmt: skip


def same_run(saved: Any, current: Mapping[str, Any]) -> bool:
    """Whether a saved fingerprint is of the run ``current`` describes.

    With ``current["auto"]`` and ``current["parameters"] is None`` (not estimated yet), the
    parameters of an automatic saved run are not compared.
    """
    if not isinstance(saved, dict):
        return False
    if current.get("auto") and current.get("parameters") is None and saved.get("auto") is True:
        return {**saved, "parameters": None} == dict(current)
    return saved == dict(current)


def _digest(arrays: Mapping[str, Any], stats: np.ndarray) -> str:
    h = hashlib.blake2b(digest_size=16)
    for name in sorted(arrays):
        h.update(np.ascontiguousarray(arrays[name], dtype=FIELDS[name]).tobytes())
    h.update(np.ascontiguousarray(stats, dtype="<f8").tobytes())
    return h.hexdigest()


def _private_dir(path: Path) -> bool:
    """Tell whether ``path`` is a real folder (not a link), ours, writable by no one else."""
    st = os.lstat(path)
    mine = not hasattr(os, "getuid") or st.st_uid == os.getuid()
    return stat.S_ISDIR(st.st_mode) and mine and not st.st_mode & 0o022


def _identity(path: Path) -> list[int] | None:
    """Return the inode, size and modification time of a regular file (inode of a folder).

    A rename keeps them, so a staged file is recognised at its final name. None for anything
    else (missing, a link...).
    """
    try:
        st = os.lstat(path)
    except OSError:
        return None
    if stat.S_ISDIR(st.st_mode):
        return [st.st_ino]
    if stat.S_ISREG(st.st_mode):
        return [st.st_ino, st.st_size, st.st_mtime_ns]
    return None


class Partial:
    """The unfinished work of a run writing ``out``: ``.OUT.partial/`` beside it.

    Parameters
    ----------
    out : Path
        The output.
    fingerprint : dict
        What the run is (:func:`fingerprint`).
    writer_cls : type of Writer
    drift : bool
        The baseline follows drift (a ``.npy`` output with ``full`` stages a baseline file).
    baseline, info : Path, optional
        Final names of the drift baseline of a ``.npy`` output and of the info JSON.
    """

    def __init__(
        self,
        out: Path,
        fingerprint: dict[str, Any],
        writer_cls: type[Writer],
        drift: bool = False,
        *,
        baseline: Path | None = None,
        info: Path | None = None,
    ) -> None:
        self.drift = drift
        self.dir = out.parent / f".{out.name}.partial"
        self.data = self.dir / f"data{writer_cls.suffix}"
        self.stats_path = self.dir / "stats.npy"
        self.record_path = self.dir / "progress.json"
        self.info_path = self.dir / "info.json"
        staged = {sidecar_path(self.data).name: baseline, self.data.name: out, "info.json": info}
        #: staged name -> final path, in commit order
        self.finals = {name: final for name, final in staged.items() if final is not None}
        self.fingerprint = fingerprint
        self.writer_cls = writer_cls
        self.done: dict[int, str] = {}
        self.writer: Writer | None = None
        self.stats: NpyFile | None = None
        self.complete: dict[str, Any] | None = None
        #: whether this run created or reopened the folder (so an error may delete it)
        self.opened = False

    # ---- the record

    def _max_record(self) -> int:
        """Return the most bytes ``progress.json`` of a run of this input can hold.

        One cell per chunk, ``"12345": "<32 hex digits>", `` each; twice the fingerprint, for
        longer paths.
        """
        n = int(self.fingerprint["shape"][0])
        fp = len(dumps_json(self.fingerprint, "the run's fingerprint"))
        return 2 * fp + n * (len(str(n)) + 40) + 65536

    def read_record(self) -> dict[str, Any]:
        """Return the saved ``progress.json`` record: a fingerprint and the finished chunks.

        Raises
        ------
        DamagedPartial
            If it is missing, not a regular file, larger than this run could write, not JSON
            or not of the form calab writes (the message names the file).
        """
        where = self.record_path
        try:
            text = read_regular(where, "the progress record", self._max_record())
        except FileNotFoundError:
            raise DamagedPartial(f"{where} is missing") from None
        except OSError as exc:
            raise DamagedPartial(f"{where} is unreadable: {exc.strerror or exc}") from None
        except ValueError as exc:  # not a regular file, or too large: never read
            raise DamagedPartial(str(exc)) from None
        try:
            saved = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise DamagedPartial(f"{where} is not JSON ({type(exc).__name__}: {exc})") from None
        if not isinstance(saved, dict) or not isinstance(saved.get("fingerprint"), dict):
            raise DamagedPartial(f"{where} is not a progress record of calab")
        if not isinstance(saved.get("done"), dict):
            raise DamagedPartial(f"{where} has no list of finished chunks")
        return saved

    def _recorded_chunks(self, saved: dict[str, Any]) -> dict[int, str]:
        """Return the finished chunks of a record of this run, each checked to be one of its."""
        n, chunk = int(self.fingerprint["shape"][0]), int(self.fingerprint["chunk"])
        done: dict[int, str] = {}
        for key, digest in saved["done"].items():
            if not _KEY.fullmatch(key) or int(key) % chunk or int(key) >= n:
                raise DamagedPartial(f"{self.record_path} names a chunk {key[:40]!r} of no run")
            if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
                raise DamagedPartial(f"{self.record_path} holds a bad digest for chunk {key}")
            done[int(key)] = digest
        return done

    def record(self) -> None:
        """Write ``progress.json``.

        It holds the fingerprint, the digest of each finished chunk and, once staged, the
        identity of each staged file.
        """
        done = {str(k): v for k, v in sorted(self.done.items())}
        record: dict[str, Any] = {"fingerprint": self.fingerprint, "done": done}
        if self.complete is not None:
            record["complete"] = self.complete
        # No fsync while chunks are added: a record that outlives its data on a crash is caught
        # by the digests. The complete record is synced: the moves that follow rely on it.
        what = f"the progress record {self.record_path}"
        write_json_atomic(self.record_path, record, what, sync=self.complete is not None)

    def _check_entries(self) -> None:
        """Raise DamagedPartial if anything in the folder is not a regular file or real folder."""
        folders = [self.dir]
        while folders:
            with os.scandir(folders.pop()) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        folders.append(Path(entry.path))
                    elif not entry.is_file(follow_symlinks=False):
                        kind = (
                            "a symbolic link"
                            if entry.is_symlink()
                            else file_kind(entry.stat(follow_symlinks=False).st_mode)
                        )
                        raise DamagedPartial(f"{entry.path} is {kind}, not a regular file")

    # ---- open, add, close

    def open(self, shape: tuple[int, int], full: bool, attrs: dict[str, Any], force: bool) -> None:
        """Reopen a matching partial (verifying it) or start a fresh one.

        Raises
        ------
        ValueError
            If the folder is not a private folder of ours, or holds the unfinished run of
            other inputs or settings (without ``force``).
        PermissionError
            If the folder of a matching run is not writable.
        OSError
            If a fresh one cannot be created (ENOSPC when the disk cannot hold the output).
        """
        if os.path.lexists(self.dir):
            if not _private_dir(self.dir):
                raise ValueError(
                    f"{self.dir} is not a private folder of yours (a link, or writable by "
                    "others); calab will not use it: delete it"
                )
            if force:
                remove(self.dir)
            else:
                self._reopen(shape, full, attrs)
        if self.writer is None:
            os.mkdir(self.dir, 0o700)
            self.opened = True
            try:
                self.writer = self.writer_cls(self.data, shape, full, attrs, False, self.drift)
                self.stats = NpyFile(self.stats_path, (shape[0], 3), create=True)
                self.record()
            except BaseException:
                self.close(quiet=True)
                remove(self.dir, strict=False)
                raise

    def _reopen(self, shape: tuple[int, int], full: bool, attrs: dict[str, Any]) -> None:
        if not os.access(self.dir, os.W_OK | os.X_OK):
            raise PermissionError(
                errno.EACCES,
                f"cannot write in {self.dir}, the unfinished run of this output; make it "
                "writable (chmod u+rwx) and run the same command again to resume, or delete it",
            )
        try:
            saved = self.read_record()
            if not same_run(saved["fingerprint"], self.fingerprint):
                raise ValueError(
                    f"an unfinished run with other inputs or settings left {self.dir}; pass "
                    "--force (force=True) to start over (it is deleted)"
                )
            self._resume(self._recorded_chunks(saved), shape, full, attrs)
        except DamagedPartial as exc:
            log.warning("the unfinished run in %s is damaged (%s); starting over", self.dir, exc)
            self.close(quiet=True)
            self.done = {}
            remove(self.dir)

    def _resume(
        self, recorded: dict[int, str], shape: tuple[int, int], full: bool, attrs: dict[str, Any]
    ) -> None:
        try:
            self._check_entries()
            self.writer = self.writer_cls(self.data, shape, full, attrs, True, self.drift)
            self.writer.check()
            self.stats = NpyFile(self.stats_path, (shape[0], 3), create=False)
            chunk = int(self.fingerprint["chunk"])
            bad = 0
            for start, digest in recorded.items():
                stop = min(shape[0], start + chunk)
                if _digest(self.writer.read(start, stop), self.stats[start:stop]) == digest:
                    self.done[start] = digest
                else:
                    bad += 1
        except DamagedPartial:
            raise
        except Exception as exc:  # any failure to read it back: never trusted
            raise DamagedPartial(f"{type(exc).__name__}: {exc}") from None
        self.opened = True
        if bad:
            log.warning(
                "%d recorded chunks of %s do not match what is on disk; they are redone",
                bad,
                self.dir,
            )

    def add(self, start: int, stop: int, res: DeconvolutionResult) -> None:
        """Write a finished chunk, flush it, then record it."""
        assert self.writer is not None and self.stats is not None
        self.writer.write(start, res)
        self.writer.flush()
        base = np.asarray(res.baseline, dtype="<f8")
        if base.ndim == 2:  # a drift baseline: its mean per cell here, the rows in the writer
            base = base.mean(axis=1)
        rows = np.column_stack([base, res.iterations, res.converged]).astype("<f8")
        self.stats[start:stop] = rows
        self.stats.flush()
        arrays = {k: getattr(res, k) for k in self.writer.names()}
        self.done[start] = _digest(arrays, rows)
        self.record()

    def results(self) -> np.ndarray:
        """Per-cell results, shape (n_cells, 3): mean baseline, iterations, converged."""
        if self.stats is not None:
            return self.stats[:]
        n = int(self.fingerprint["shape"][0])
        stats = NpyFile(self.stats_path, (n, 3), create=False)
        try:
            return stats[:]
        finally:
            stats.close()

    def close(self, quiet: bool = False) -> None:
        """Close the writer and the per-cell results (the folder is kept).

        ``quiet``: ignore errors (a cleanup after another error).
        """
        writer, self.writer = self.writer, None
        stats, self.stats = self.stats, None
        try:
            try:
                if writer is not None:
                    writer.close()
            finally:
                if stats is not None:
                    try:
                        stats.flush()
                    finally:
                        stats.close()
        except Exception:
            if not quiet:
                raise

    # ---- commit

    def stage(self, info_text: str | None) -> None:
        """Close the finished files, write the info JSON beside them, record the run complete.

        The record holds the identity of each staged file; :meth:`commit` then moves them.
        """
        assert self.writer is not None
        staged = {p.name for p in self.writer.paths()} | {self.info_path.name}
        self.close()
        if info_text is not None:
            write_text_atomic(self.info_path, info_text)
        names = [name for name in self.finals if name in staged and (self.dir / name).exists()]
        self.complete = {name: _identity(self.dir / name) for name in names}
        self.record()

    def finishable(self) -> dict[str, Any] | None:
        """Return the record of a complete run of this fingerprint whose commit was cut short.

        Complete: every staged file is still in the folder or already at its final name,
        unchanged (same inode, size and time). The fingerprint becomes the saved one (with the
        parameters an automatic run estimated). None if there is nothing to finish.
        """
        if not os.path.lexists(self.dir) or not _private_dir(self.dir):
            return None
        try:
            saved = self.read_record()
            self._check_entries()
        except (DamagedPartial, OSError):
            return None
        complete = saved.get("complete")
        if not same_run(saved["fingerprint"], self.fingerprint) or not isinstance(complete, dict):
            return None
        if self.data.name not in complete or not set(complete) <= set(self.finals):
            return None
        for name, identity in complete.items():
            here = self.dir / name
            if _identity(here if os.path.lexists(here) else self.finals[name]) != identity:
                return None
        current = self.fingerprint
        self.fingerprint, self.complete = saved["fingerprint"], complete
        try:
            self.done = self._recorded_chunks(saved)
            self.results()
        except (OSError, ValueError):  # DamagedPartial is a ValueError
            self.fingerprint, self.done, self.complete = current, {}, None
            return None
        return saved

    def commit(self) -> None:
        """Move each staged file to its final name, then delete the folder.

        Files a cut-short commit already moved are skipped, so this finishes one.
        """
        assert self.complete is not None, "stage() first"
        for name in self.finals:
            if name in self.complete and os.path.lexists(self.dir / name):
                commit(self.dir / name, self.finals[name])
        try:
            remove(self.dir)
        except OSError as exc:
            log.warning("%s (the output is complete; the folder holds nothing needed)", exc)


__all__ = ["DamagedPartial", "Partial", "fingerprint", "same_run"]
