"""Out-of-core batch deconvolution: `calab deconvolve` on an input larger than its memory.

Writes a Minian-style zarr store (``C`` with dims ``unit_id``, ``frame``) of ``--size-gb``
float32 traces, then runs the installed command on it under a hard address-space limit
(a cgroup memory limit, ``--limit-gb``; needs root and the cgroup v1/v2 memory controller,
otherwise the run is unlimited and only measured), and reports its peak resident memory and
throughput next to the in-memory path (``calab.run_deconvolution`` on a block that fits in
memory), measured in the same run. Usage::

    .venv/bin/python bench/streaming.py                  # 4 GB input, 1 GiB limit
    .venv/bin/python bench/streaming.py --size-gb 0.5    # quick

``--nwb`` compares instead an NWB input with the same traces as a CaImAn-style ``.h5``: the NWB
series is stored frames first, chunked along time with every ROI in each chunk and
gzip-compressed (as NWB converters write it), the ``.h5`` cell-major; it reports for each
``calab deconvolve`` its own peak RSS, the bytes it read (``rchar`` of /proc, which counts
page-cache hits too; minus what starting the command reads) and its cell-frames/s::

    .venv/bin/python bench/streaming.py --nwb --cells 2000 --frames 50000
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
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def workdir(path: str | None, prefix: str) -> Iterator[Path]:
    """``path`` (kept), or a temporary folder removed afterwards."""
    root = Path(path or tempfile.mkdtemp(prefix=prefix))
    root.mkdir(parents=True, exist_ok=True)
    try:
        yield root
    finally:
        if path is None:
            shutil.rmtree(root, ignore_errors=True)


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


def write_h5_and_nwb(root: Path, n_cells: int, n_frames: int) -> tuple[Path, Path]:
    """The same float32 traces as a CaImAn-style .h5 (cell-major, chunks of 64 cells) and as
    an NWB RoiResponseSeries (frames first, chunks of all ROIs x 1000 frames, gzip)."""
    from datetime import datetime, timezone

    import h5py
    import pynwb
    from hdmf.backends.hdf5 import H5DataIO
    from pynwb.ophys import Fluorescence, ImageSegmentation, OpticalChannel

    h5 = root / "rec.h5"
    with h5py.File(h5, "w") as f:
        c = f.create_dataset(
            "estimates/C", (n_cells, n_frames), "f4", chunks=(min(64, n_cells), n_frames)
        )
        f["params/data/fr"] = np.float64(FS)
        for start in range(0, n_cells, 64):
            k = min(64, n_cells - start)
            traces, _ = calab.simulate(k, n_frames, FS, TAU_RISE, TAU_DECAY, seed=start)
            c[start : start + k] = traces.astype(np.float32)
    nwb = pynwb.NWBFile(
        session_description="bench", identifier="bench",
        session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc),
    )  # fmt: skip
    device = nwb.create_device(name="Microscope")
    plane = nwb.create_imaging_plane(
        name="ImagingPlane", imaging_rate=FS, description="plane", device=device,
        optical_channel=OpticalChannel(name="Ch", description="green", emission_lambda=520.0),
        excitation_lambda=920.0, indicator="GCaMP6s", location="V1",
    )  # fmt: skip
    ophys = nwb.create_processing_module(name="ophys", description="optical physiology")
    seg = ImageSegmentation()
    ophys.add(seg)
    ps = seg.create_plane_segmentation(name="PlaneSegmentation", description="ROIs",
                                       imaging_plane=plane)  # fmt: skip
    for i in range(n_cells):  # a one-pixel mask per ROI
        ps.add_roi(pixel_mask=[(i % 512, i // 512, 1.0)], id=i)
    region = ps.create_roi_table_region(region=list(range(n_cells)), description="all ROIs")
    fl = Fluorescence(name="Fluorescence")
    ophys.add(fl)
    chunk_t = min(1000, n_frames)
    data = H5DataIO(shape=(n_frames, n_cells), dtype=np.float32, chunks=(chunk_t, n_cells),
                    compression="gzip")  # fmt: skip
    fl.create_roi_response_series(name="Fluorescence", data=data, rois=region, unit="lumens",
                                  rate=FS)  # fmt: skip
    path = root / "rec.nwb"
    with pynwb.NWBHDF5IO(path, "w") as io:
        io.write(nwb)
    with h5py.File(h5, "r") as src, h5py.File(path, "r+") as dst:
        out = dst["processing/ophys/Fluorescence/Fluorescence/data"]
        for t0 in range(0, n_frames, chunk_t):  # one time slab of every cell at a time
            out[t0 : t0 + chunk_t] = src["estimates/C"][:, t0 : t0 + chunk_t].T
    return h5, path


_CHILD = (
    "import atexit, sys\n"
    "report = sys.argv.pop(1)\n"
    "atexit.register(lambda: open(report, 'w').write(open('/proc/self/io').read()))\n"
    "import h5py, pynwb, calab.cli\n"
    "sys.argv[0] = 'calab'\n"
    "sys.exit(calab.cli.main() if len(sys.argv) > 1 else 0)\n"
)


def measured_run(args: list[str], report: Path, limit: MemoryLimit | None) -> dict[str, float]:
    """Run ``calab ARGS`` in a child; its own peak RSS (wait4), rchar and wall time."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(report), *args], stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL, preexec_fn=limit.enter if limit else None,
    )  # fmt: skip
    assert proc.stderr is not None
    err = proc.stderr.read().decode()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"calab {' '.join(args)} failed:\n{err}")
    io = dict(line.split(": ") for line in report.read_text().splitlines())
    return {"seconds": seconds, "peak_rss_mb": usage.ru_maxrss / 1024, "rchar": int(io["rchar"])}


def nwb_comparison(args: argparse.Namespace) -> None:
    """NWB (time-chunked, gzip) against the same traces as .h5, measured in the same run."""
    n_cells, n_frames = args.cells, args.frames
    with workdir(args.workdir, "calab-stream-nwb-") as root:
        t0 = time.perf_counter()
        h5, nwb = write_h5_and_nwb(root, n_cells, n_frames)
        raw_mb = n_cells * n_frames * 4 / 1e6
        print(f"input: {n_cells} cells x {n_frames} frames float32 = {raw_mb:.0f} MB; "
              f".h5 {h5.stat().st_size / 1e6:.0f} MB, .nwb {nwb.stat().st_size / 1e6:.0f} MB "
              f"(gzip), written in {time.perf_counter() - t0:.0f} s")  # fmt: skip
        calab.write_export(
            root / "params.json",
            calab.export_dict(tau_rise=TAU_RISE, tau_decay=TAU_DECAY, lam=LAM, fs=FS),
        )
        base = measured_run([], root / "io-start.txt", None)["rchar"]
        limit = MemoryLimit(int(args.limit_gb * 2**30)) if args.limit_gb else None
        if limit is not None and limit.path is None:
            print("no writable cgroup memory controller here: running without a limit")
        results = {}
        try:
            for name, src in (("h5", h5), ("nwb", nwb)):
                out = root / f"activity-{name}.h5"
                run = measured_run(["deconvolve", str(src), "--params", str(root / "params.json"),
                                    "-o", str(out), "--quiet"], root / f"io-{name}.txt",
                                   limit)  # fmt: skip
                run["read_mb"] = (run["rchar"] - base) / 1e6
                run["cell_frames_per_s"] = n_cells * n_frames / run["seconds"]
                results[name] = run
        finally:
            if limit is not None:
                limit.close()
        print(f"{'input':6} {'seconds':>8} {'peak RSS MB':>12} {'read MB':>9} {'read/raw':>9} "
              f"{'M cell-frames/s':>16}")  # fmt: skip
        for name, r in results.items():
            print(f"{name:6} {r['seconds']:8.1f} {r['peak_rss_mb']:12.0f} {r['read_mb']:9.0f} "
                  f"{r['read_mb'] / raw_mb:9.2f} {r['cell_frames_per_s'] / 1e6:16.2f}")  # fmt: skip
        if args.out:
            Path(args.out).write_text(json.dumps(results, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-gb", type=float, default=4.0, help="input size (float32), GB")
    ap.add_argument("--limit-gb", type=float, default=1.0, help="memory limit (cgroup), GiB")
    ap.add_argument("--frames", type=int, default=54_000, help="frames per trace (30 min)")
    ap.add_argument("--workdir", default=None, help="where to write (default: a temp dir)")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--nwb", action="store_true", help="compare an NWB input with .h5")
    ap.add_argument("--cells", type=int, default=2000, help="--nwb: ROIs")
    args = ap.parse_args()
    if args.nwb:
        nwb_comparison(args)
        return

    n_frames = args.frames
    n_cells = max(1, int(args.size_gb * 1e9 / (4 * n_frames)))
    with workdir(args.workdir, "calab-stream-") as root:
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


if __name__ == "__main__":
    main()
