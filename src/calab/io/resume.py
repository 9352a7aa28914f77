"""Resuming an interrupted run: the unfinished work kept in ``.OUT.partial`` beside the output.

A run writing ``OUT`` keeps its unfinished work in the folder ``.OUT.partial`` (the data, the
per-cell results in ``stats.npy`` and ``progress.json``, which records each finished chunk with
a digest of its rows, written only after that chunk's data is flushed). A later run with the
same :func:`fingerprint` (input, parameters, chunking) reads each recorded chunk back, checks
it against its digest and skips it; a damaged or truncated partial is never trusted.
"""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from calab.io.open import ReadOptions, Source
from calab.io.writers import FIELDS, Writer, open_npy_exactly, remove, write_json_atomic
from calab.params import DeconvolutionResult

log = logging.getLogger(__name__)


def fingerprint(
    src: Source, attrs: dict[str, Any], chunk: int, full: bool, options: ReadOptions
) -> dict[str, Any]:
    """Return what must match for an interrupted run to be resumed instead of restarted."""
    st = src.path.stat()
    stamp: list[Any] = [st.st_size, st.st_mtime_ns]
    if src.path.is_dir():  # a zarr store or a suite2p folder: its files change when rewritten
        stamp += sorted(
            [str(q.relative_to(src.path)), q.stat().st_size, q.stat().st_mtime_ns]
            for q in src.path.rglob("*")
            if q.is_file()
        )[:10_000]
    return {
        "input": str(src.path.resolve()),
        "format": src.format,
        "options": [options.trace, options.accepted_only, options.variable,
                    options.neuropil_coef, options.cells_only, options.plane],
        "stamp": stamp,
        "shape": list(src.shape),
        "chunk": chunk,
        "full": full,
        "parameters": attrs["parameters"],
        "sampling_rate_hz": attrs["sampling_rate_hz"],
        "calab_version": attrs["calab_version"],
    }  # fmt: skip


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


class Partial:
    """The unfinished work of a run writing ``out``: ``.OUT.partial/`` beside it."""

    def __init__(
        self,
        out: Path,
        fingerprint: dict[str, Any],
        writer_cls: type[Writer],
        drift: bool = False,
    ) -> None:
        self.drift = drift
        self.dir = out.parent / f".{out.name}.partial"
        self.data = self.dir / f"data{writer_cls.suffix}"
        self.stats_path = self.dir / "stats.npy"
        self.record_path = self.dir / "progress.json"
        self.fingerprint = fingerprint
        self.writer_cls = writer_cls
        self.done: dict[int, str] = {}
        self.writer: Writer | None = None
        self.stats: Any = None

    def saved(self) -> dict[str, Any] | None:
        """Return the saved ``progress.json`` record, or None when it is missing or unreadable."""
        import json

        try:
            saved = json.loads(self.record_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return saved if isinstance(saved, dict) else None

    def open(self, shape: tuple[int, int], full: bool, attrs: dict[str, Any], force: bool) -> None:
        """Reopen a matching partial (verifying it) or start a fresh one."""
        if os.path.lexists(self.dir):
            if not _private_dir(self.dir):
                raise ValueError(
                    f"{self.dir} is not a private folder of yours (a link, or writable by "
                    "others); calab will not use it: delete it"
                )
            saved = self.saved()
            if force:
                remove(self.dir)
            elif saved is not None and saved.get("fingerprint") != self.fingerprint:
                raise ValueError(
                    f"an unfinished run with other inputs or settings left {self.dir}; pass "
                    "--force (force=True) to start over (it is deleted)"
                )
            elif not self._resume(saved, shape, full, attrs):
                remove(self.dir)
        if self.writer is None:
            os.mkdir(self.dir, 0o700)
            try:
                self.writer = self.writer_cls(self.data, shape, full, attrs, False, self.drift)
                self.stats = np.lib.format.open_memmap(
                    self.stats_path, mode="w+", dtype="<f8", shape=(shape[0], 3)
                )
                self.record()
            except BaseException:
                self.close()
                remove(self.dir)
                raise

    def _resume(
        self,
        saved: dict[str, Any] | None,
        shape: tuple[int, int],
        full: bool,
        attrs: dict[str, Any],
    ) -> bool:
        if saved is None or not isinstance(saved.get("done"), dict):
            log.warning(
                "the record of the unfinished run in %s is unreadable; starting over", self.dir
            )
            return False
        try:
            writer = self.writer_cls(self.data, shape, full, attrs, True, self.drift)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            log.warning("the unfinished run in %s is damaged (%s); starting over", self.dir, exc)
            return False
        try:
            writer.check()
            open_npy_exactly(self.stats_path, (shape[0], 3))
            stats = np.lib.format.open_memmap(self.stats_path, mode="r+")
        except (OSError, ValueError) as exc:
            writer.close()
            log.warning("the unfinished run in %s is damaged (%s); starting over", self.dir, exc)
            return False
        self.writer, self.stats = writer, stats
        chunk = int(self.fingerprint["chunk"])
        bad = 0
        for key, digest in saved["done"].items():
            start = int(key)
            stop = min(shape[0], start + chunk)
            if start % chunk or not 0 <= start < shape[0]:
                bad += 1
                continue
            if _digest(writer.read(start, stop), np.asarray(stats[start:stop])) == digest:
                self.done[start] = digest
            else:
                bad += 1
        if bad:
            log.warning(
                "%d recorded chunks of %s do not match what is on disk; they are redone",
                bad,
                self.dir,
            )
        return True

    def add(self, start: int, stop: int, res: DeconvolutionResult) -> None:
        """Write a finished chunk, flush it, then record it."""
        assert self.writer is not None
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

    def record(self) -> None:
        """Write ``progress.json``: the fingerprint and the digest of each finished chunk."""
        done = {str(k): v for k, v in sorted(self.done.items())}
        record = {"fingerprint": self.fingerprint, "done": done}
        # No fsync: a record that outlives its data on a crash is caught by the digests.
        what = f"the progress record {self.record_path}"
        write_json_atomic(self.record_path, record, what, sync=False)

    def close(self) -> None:
        """Close the writer and flush the per-cell results (the partial folder is kept)."""
        if self.writer is not None:
            self.writer.close()
        if self.stats is not None:
            self.stats.flush()
            self.stats = None


__all__ = ["Partial", "fingerprint"]
