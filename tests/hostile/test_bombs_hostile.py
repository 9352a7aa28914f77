"""Files whose headers promise far more than they hold (issue 22, items 15, 19, 20 and 23).

Each file is written the way its pipeline writes it (``np.save`` as suite2p, h5py in CaImAn's
layout, xarray's ``to_zarr`` as Minian), then its header is made to claim terabytes, millions of
chunks or a chunk that inflates beyond its shape. Loading must fail at once with an error naming
the file, after allocating little (tracemalloc, or a subprocess with a time limit), and the
command line must print that error as its only line.
"""

from __future__ import annotations

import json
import sys
import time
import tracemalloc
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

import calab

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the helpers of tests/
from _cli_run import assert_error, files, run  # noqa: E402

TRACES = np.random.default_rng(11).normal(1.0, 0.2, size=(6, 200))


@pytest.fixture
def peak() -> Iterator[Callable[[], int]]:
    """Traced allocations: call the fixture's value for the peak so far, in bytes."""
    tracemalloc.start()
    try:
        yield lambda: tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def _bomb_npy(path: Path, shape: tuple[int, ...], dtype: str = "<f4") -> None:
    """A ``.npy`` whose header declares ``shape`` but holds 1 kB of data."""
    with open(path, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": dtype, "fortran_order": False, "shape": shape}
        )
        fh.write(b"\0" * 1024)


def test_suite2p_header_claiming_terabytes(tmp_path: Path, peak: Callable[[], int]) -> None:
    folder = files.write_suite2p(tmp_path, TRACES, TRACES / 2, files.iscell_array([1] * 6))
    f_npy = folder / "plane0" / "F.npy"
    _bomb_npy(f_npy, (1000, 10**9))  # 3.6 TiB of float32
    with pytest.raises(OSError, match=r"F\.npy declares shape \(1000, 1000000000\).*3\.6 TiB"):
        calab.load_suite2p(folder)
    assert peak() < 20e6
    assert_error(run("info", folder), str(f_npy))
    assert_error(run("convert", folder, "-o", tmp_path / "out"), "F.npy declares")


def test_truncated_suite2p_file_names_itself(tmp_path: Path) -> None:
    folder = files.write_suite2p(tmp_path, TRACES, TRACES / 2, files.iscell_array([1] * 6))
    fneu = folder / "plane0" / "Fneu.npy"
    fneu.write_bytes(fneu.read_bytes()[:-8])
    with pytest.raises(OSError, match=r"Fneu\.npy declares shape \(6, 200\) of float32"):
        calab.load_suite2p(folder)


def test_caiman_3d_header_is_refused_from_the_header(
    tmp_path: Path, peak: Callable[[], int]
) -> None:
    path = files.write_caiman(tmp_path / "res.hdf5", TRACES)
    with h5py.File(path, "a") as f:
        del f["estimates/C"]
        f.create_dataset("estimates/C", shape=(2000, 2000, 2000), dtype="f8")  # 59.6 GiB
    with pytest.raises(ValueError, match=r"estimates/C .* must be 2-D .*3-D"):
        calab.load_caiman(path)
    assert peak() < 20e6
    assert_error(run("info", path), "must be 2-D")


def test_caiman_header_claiming_more_than_the_file(tmp_path: Path, peak: Callable[[], int]) -> None:
    path = files.write_caiman(tmp_path / "res.hdf5", TRACES)
    with h5py.File(path, "a") as f:
        del f["estimates/C"]
        f.create_dataset("estimates/C", shape=(1000, 10**8), dtype="f4")  # 373 GiB, never written
    with pytest.raises(OSError, match=r"estimates/C in .*res\.hdf5 declares shape"):
        calab.load_caiman(path)
    assert peak() < 20e6


def _minian_store(folder: Path, chunk: int = 10) -> Path:
    """A Minian store of TRACES in chunks of one unit by ``chunk`` frames (zarr v2)."""
    da = files.minian_array(TRACES)
    store = folder / "C.zarr"
    da.to_dataset().to_zarr(
        store,
        zarr_format=2,
        mode="w",
        encoding={"C": {"chunks": (1, chunk)}, "frame": {"chunks": (chunk,)}},
    )
    return store


def _edit_meta(store: Path, edit: Callable[[str, dict[str, Any]], None]) -> None:
    """Apply ``edit(array_name, metadata)`` to each array's .zarray and to .zmetadata."""
    for name in ("C", "frame", "unit_id"):
        p = store / name / ".zarray"
        meta = json.loads(p.read_text())
        edit(name, meta)
        p.write_text(json.dumps(meta))
        zm = store / ".zmetadata"
        if zm.exists():
            consolidated = json.loads(zm.read_text())
            consolidated["metadata"][f"{name}/.zarray"] = meta
            zm.write_text(json.dumps(consolidated))


def test_minian_chunk_key_bomb(tmp_path: Path, peak: Callable[[], int]) -> None:
    store = _minian_store(tmp_path)

    def claim(name: str, meta: dict[str, Any]) -> None:
        if name == "C":
            meta["shape"] = [6, 30_000_000]  # 18 million chunk keys
        elif name == "frame":
            meta["shape"] = [30_000_000]

    _edit_meta(store, claim)
    assert sum(p.stat().st_size for p in store.rglob("*") if p.is_file()) < 200_000
    start = time.perf_counter()
    with pytest.raises(OSError, match=r"lacks chunk frame/20 of frame"):
        calab.load_minian(store, fs=30.0)
    assert time.perf_counter() - start < 20  # main: minutes
    assert peak() < 50e6
    assert_error(run("info", store, "--fs", "30"), "lacks chunk")


def test_minian_chunk_larger_than_its_shape_allows(tmp_path: Path) -> None:
    """A 40 kB zlib chunk for a chunk of 10 values (80 bytes): it would inflate to 40 MiB."""
    store = _minian_store(tmp_path)
    _edit_meta(store, _zlib)
    for key in (store / "C").glob("*.*"):
        if key.name not in (".zarray", ".zattrs"):
            key.write_bytes(zlib.compress(np.ones(10).tobytes()))
    (store / "C" / "0.0").write_bytes(zlib.compress(bytes(40 << 20), 9))
    assert 30_000 < (store / "C" / "0.0").stat().st_size < 60_000
    with pytest.raises(OSError, match=r"chunk C/0\.0 .* holds \d+ bytes, more than .* 80 bytes"):
        calab.load_minian(store, fs=30.0)
    assert_error(run("info", store, "--fs", "30"), "C/0.0")


def _zlib(name: str, meta: dict[str, Any]) -> None:
    if name == "C":
        meta["compressor"] = {"id": "zlib", "level": 9}


def test_minian_chunk_inflating_beyond_its_shape(tmp_path: Path, peak: Callable[[], int]) -> None:
    """Chunks of 40,000 values (320 kB) of which one is a 300 kB zlib stream of 300 MB."""
    da = files.minian_array(np.random.default_rng(1).normal(size=(2, 40_000)))
    store = tmp_path / "C.zarr"
    da.to_dataset().to_zarr(store, zarr_format=2, mode="w", encoding={"C": {"chunks": (1, 40_000)}})
    _edit_meta(store, _zlib)
    (store / "C" / "1.0").write_bytes(zlib.compress(np.ones(40_000).tobytes()))
    bomb = zlib.compressobj(9)
    body = b"".join(bomb.compress(bytes(1 << 20)) for _ in range(300)) + bomb.flush()
    assert len(body) < 320_000
    (store / "C" / "0.0").write_bytes(body)
    with pytest.raises(OSError, match=r"C/0\.0 .* inflates to more than"):
        calab.load_minian(store, fs=30.0)
    assert peak() < 100e6


def test_unreadable_chunks_give_one_line_not_asyncio_tracebacks(tmp_path: Path) -> None:
    store = _minian_store(tmp_path, chunk=20)
    # The chunks are blosc; the metadata says zlib: every chunk fails to decode, concurrently.
    _edit_meta(store, _zlib)
    proc = run("info", store, "--fs", "30")
    assert_error(proc, "a chunk is corrupt or truncated")


def test_long_string_unit_ids_are_not_taken_for_bombs(tmp_path: Path) -> None:
    """Variable-length strings have no size fixed by the shape: their chunks are not bounded."""
    names = np.array([f"cell_{'x' * 3000}{i}" for i in range(6)], dtype=object)
    files.minian_array(TRACES, unit_ids=names).to_dataset().to_zarr(
        tmp_path / "C.zarr", zarr_format=2, mode="w"
    )
    traces, meta = calab.load_minian(tmp_path / "C.zarr", fs=30.0)
    np.testing.assert_array_equal(traces, TRACES)
    assert meta["cell_ids"] == names.tolist()
