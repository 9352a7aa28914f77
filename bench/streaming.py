"""Out-of-core batch deconvolution: `calab deconvolve` on an input larger than its memory.

Writes a Minian-style zarr store (``C`` with dims ``unit_id``, ``frame``) of ``--size-gb``
float32 traces, then runs the installed command on it under a hard address-space limit
(a cgroup memory limit, ``--limit-gb``; needs root and the cgroup v1/v2 memory controller,
otherwise the run is unlimited and only measured), and reports its peak resident memory and
throughput next to the in-memory path (``calab.run_deconvolution`` on a block that fits in
memory), measured in the same run. Usage::

    .venv/bin/python bench/streaming.py                  # 4 GB input, 1 GiB limit
    .venv/bin/python bench/streaming.py --size-gb 0.5    # quick
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import calab

FS, TAU_RISE, TAU_DECAY, LAM = 30.0, 0.05, 0.5, 0.01


def write_store(root: Path, n_cells: int, n_frames: int, block: int) -> Path:
    """A Minian-like zarr store written block by block (never the whole array in memory)."""
    import zarr

    store = root / "C.zarr"
    group = zarr.open_group(str(store), mode="w", zarr_format=2)
    arr = group.create_array("C", shape=(n_cells, n_frames), chunks=(block, n_frames), dtype="f4")
    arr.attrs["_ARRAY_DIMENSIONS"] = ["unit_id", "frame"]
    uid = group.create_array("unit_id", shape=(n_cells,), chunks=(n_cells,), dtype="i8")
    uid.attrs["_ARRAY_DIMENSIONS"] = ["unit_id"]
    uid[:] = np.arange(n_cells)
    fr = group.create_array("frame", shape=(n_frames,), chunks=(n_frames,), dtype="i8")
    fr.attrs["_ARRAY_DIMENSIONS"] = ["frame"]
    fr[:] = np.arange(n_frames)
    for start in range(0, n_cells, block):
        k = min(block, n_cells - start)
        traces, _ = calab.simulate(k, n_frames, FS, TAU_RISE, TAU_DECAY, seed=start)
        arr[start : start + k] = traces.astype(np.float32)
    return store


class MemoryLimit:
    """A cgroup that caps resident memory (v2 memory.max, or v1 memory.limit_in_bytes)."""

    def __init__(self, limit_bytes: int) -> None:
        self.path: Path | None = None
        name = f"calab-bench-{os.getpid()}"
        for root, knob in (
            (Path("/sys/fs/cgroup/unified"), "memory.max"),
            (Path("/sys/fs/cgroup"), "memory.max"),
            (Path("/sys/fs/cgroup/memory"), "memory.limit_in_bytes"),
        ):
            try:
                if not (root / "cgroup.procs").exists() or not (
                    (root / knob).exists()
                    or (root / "cgroup.subtree_control").exists()
                    or knob == "memory.limit_in_bytes"
                ):
                    continue
                path = root / name
                path.mkdir()
                if not (path / knob).exists():
                    path.rmdir()
                    continue
                (path / knob).write_text(str(limit_bytes))
                self.path = path
                return
            except OSError:
                continue

    def enter(self) -> None:
        """preexec_fn: move the child into the cgroup."""
        if self.path is not None:
            (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def close(self) -> None:
        if self.path is not None:
            try:
                self.path.rmdir()
            except OSError:
                pass


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-gb", type=float, default=4.0, help="input size (float32), GB")
    ap.add_argument("--limit-gb", type=float, default=1.0, help="memory limit (cgroup), GiB")
    ap.add_argument("--frames", type=int, default=54_000, help="frames per trace (30 min)")
    ap.add_argument("--workdir", default=None, help="where to write (default: a temp dir)")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()

    n_frames = args.frames
    n_cells = max(1, int(args.size_gb * 1e9 / (4 * n_frames)))
    root = Path(args.workdir or tempfile.mkdtemp(prefix="calab-stream-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        store = write_store(root, n_cells, n_frames, block=64)
        size = sum(p.stat().st_size for p in store.rglob("*") if p.is_file())
        gb = n_cells * n_frames * 4 / 1e9
        took = time.perf_counter() - t0
        print(f"input: {n_cells} cells x {n_frames} frames float32 = {gb:.2f} GB "
              f"({size / 1e9:.2f} GB on disk), written in {took:.0f} s")  # fmt: skip
        calab.write_export(
            root / "params.json",
            calab.export_dict(tau_rise=TAU_RISE, tau_decay=TAU_DECAY, lam=LAM, fs=FS),
        )

        # In-memory path on a block that fits: the reference throughput.
        block, _ = calab.simulate(512, n_frames, FS, TAU_RISE, TAU_DECAY, seed=1)
        calab.run_deconvolution(block[:8], FS, TAU_RISE, TAU_DECAY, LAM)  # warm up
        t0 = time.perf_counter()
        calab.run_deconvolution(block, FS, TAU_RISE, TAU_DECAY, LAM)
        mem_rate = block.size / (time.perf_counter() - t0)
        del block

        limit = MemoryLimit(int(args.limit_gb * 2**30))
        limited = limit.path is not None
        if not limited:
            print("no writable cgroup memory controller here: running without a limit")
        calab_cli = Path(sys.executable).with_name("calab")
        cmd = [str(calab_cli), "deconvolve", str(store), "--format", "minian", "--fs", str(FS),
               "--params", str(root / "params.json"), "-o", str(root / "activity.zarr"),
               "--quiet"]  # fmt: skip
        before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        t0 = time.perf_counter()
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, preexec_fn=limit.enter)
        finally:
            limit.close()
        seconds = time.perf_counter() - t0
        peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        if proc.returncode != 0:
            sys.exit(f"calab deconvolve failed under the limit:\n{proc.stderr}")
        stream_rate = n_cells * n_frames / seconds
        peak_gb = max(peak_kb, before) * 1024 / 1e9
        result = {
            "input_gb": n_cells * n_frames * 4 / 1e9,
            "n_cells": n_cells,
            "n_frames": n_frames,
            "memory_limit_gib": args.limit_gb if limited else None,
            "peak_rss_gb": peak_gb,
            "seconds": seconds,
            "stream_cell_frames_per_s": stream_rate,
            "in_memory_cell_frames_per_s": mem_rate,
        }
        where = f"under a {args.limit_gb:g} GiB memory limit" if limited else "(no limit)"
        print(f"calab deconvolve {where}: "
              f"{seconds:.0f} s, peak RSS {peak_gb:.2f} GB "
              f"({peak_gb / result['input_gb']:.2f}x the input)")  # fmt: skip
        ratio = stream_rate / mem_rate
        print(f"throughput: streaming {stream_rate / 1e6:.2f} M cell-frames/s, in-memory "
              f"{mem_rate / 1e6:.2f} M cell-frames/s (ratio {ratio:.2f})")  # fmt: skip
        if args.out:
            Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    finally:
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
