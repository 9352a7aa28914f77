"""Hostile files: corrupt bytes fed to every loader.

Each probe starts from a file written the way the pipeline writes it, overwrites bytes and
truncates it as hypothesis chooses, and loads it. The loader either reads it (corruption in
unused bytes is harmless) or raises ValueError, OSError or KeyError whose message names the
file; never another exception, never code from the file.
"""

from __future__ import annotations

import importlib.util
import json
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import calab

_spec = importlib.util.spec_from_file_location(
    "calab_test_pipeline_files", Path(__file__).parents[1] / "io" / "_pipeline_files.py"
)
assert _spec and _spec.loader
files = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(files)

CLEAR = (ValueError, OSError, KeyError)
# Deterministic examples; how many comes from the profile (HYPOTHESIS_PROFILE=thorough: 1000).
FUZZ = settings(
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

TRACES = np.random.default_rng(7).normal(1.0, 0.2, size=(3, 40))


@st.composite
def corruption(draw: Callable, size: int) -> tuple[list[tuple[int, int]], int]:
    """Byte overwrites (position, value) and the length to truncate to."""
    edits = draw(
        st.lists(st.tuples(st.integers(0, size - 1), st.integers(0, 255)), min_size=1, max_size=12)
    )
    keep = draw(st.one_of(st.just(size), st.integers(0, size)))
    return edits, keep


def corrupt(path: Path, edits: list[tuple[int, int]], keep: int) -> None:
    raw = bytearray(path.read_bytes())
    for pos, value in edits:
        if pos < len(raw):
            raw[pos] = value
    path.write_bytes(bytes(raw[:keep]))


def check(load: Callable[[], object], *names: str) -> None:
    """``load()`` succeeds or raises a clear error naming one of ``names``."""
    try:
        with warnings.catch_warnings():
            # Reading a damaged export as a hand-written one warns (no schema_version).
            warnings.simplefilter("ignore", UserWarning)
            load()
    except CLEAR as exc:
        message = str(exc)
        assert any(n in message for n in names), f"{type(exc).__name__} names no file: {message}"


def _template(write: Callable[[Path], Path]) -> tuple[bytes, str]:
    with tempfile.TemporaryDirectory() as d:
        p = write(Path(d))
        return p.read_bytes(), p.name


CAIMAN, _ = _template(
    lambda d: files.write_caiman(d / "res.hdf5", TRACES, idx_components=np.arange(2))
)


def load_damaged(template: bytes, name: str, damage, *loads: Callable[[Path], object]) -> None:
    """Write ``template`` as ``name``, damage it, and check each loader on it."""
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / name
        path.write_bytes(template)
        corrupt(path, *damage)
        for load in loads:
            check(lambda load=load: load(path), str(path))


@FUZZ
@given(corruption(len(CAIMAN)))
def test_caiman(damage):
    load_damaged(
        CAIMAN,
        "res.hdf5",
        damage,
        lambda p: calab.load_caiman(p, accepted_only=True),
        lambda p: calab.load_caiman(p, trace="C+YrA"),
    )


def _suite2p(root: Path) -> Path:
    return files.write_suite2p(root, TRACES, TRACES * 0.5, files.iscell_array([1, 0, 1]))


@FUZZ
@given(st.sampled_from(["F.npy", "Fneu.npy", "iscell.npy", "ops.npy"]), st.data())
def test_suite2p(name, data):
    with tempfile.TemporaryDirectory() as d:
        folder = _suite2p(Path(d))
        path = folder / "plane0" / name
        damage = data.draw(corruption(path.stat().st_size))
        corrupt(path, *damage)
        check(lambda: calab.load_suite2p(folder), str(path), str(path.parent))


@FUZZ
@given(st.data())
def test_minian(data):
    with tempfile.TemporaryDirectory() as d:
        store = files.write_minian_var(Path(d), files.minian_array(TRACES))
        members = sorted(p for p in store.rglob("*") if p.is_file())
        path = data.draw(st.sampled_from(members))
        damage = data.draw(corruption(max(path.stat().st_size, 1)))
        corrupt(path, *damage)
        check(lambda: calab.load_minian(d, fs=30.0), str(store))


@FUZZ
@given(st.sampled_from(["rec.npy", "rec_metadata.json"]), st.data())
def test_tuning_files(name, data):
    with tempfile.TemporaryDirectory() as d:
        calab.save_for_tuning(TRACES, 30.0, Path(d) / "rec")
        path = Path(d) / name
        damage = data.draw(corruption(path.stat().st_size))
        corrupt(path, *damage)
        check(lambda: calab.load_tuning_data(Path(d) / "rec"), str(path), "rec.npy", "rec_meta")


EXPORT = json.dumps(calab.export_dict(tau_rise=0.05, tau_decay=0.5, lam=0.01, fs=30.0)).encode()


@FUZZ
@given(corruption(len(EXPORT)))
def test_export_json(damage):
    load_damaged(EXPORT, "params.json", damage, calab.load_export_params)


@pytest.mark.parametrize("depth", [10_000, 200_000])
def test_deeply_nested_export_json(tmp_path, depth):
    path = tmp_path / "params.json"
    path.write_text("[" * depth + "]" * depth)
    with pytest.raises(ValueError, match="params.json"):
        calab.load_export_params(path)


def test_cli_names_the_store_of_a_corrupt_chunk(tmp_path):
    import subprocess
    import sys

    from numcodecs import Zstd

    store = tmp_path / "C.zarr"
    files.minian_array(TRACES).to_dataset().to_zarr(
        store, zarr_format=2, encoding={"C": {"compressors": [Zstd(level=3)], "chunks": (1, 40)}}
    )
    chunk = store / "C" / "1.0"
    chunk.write_bytes(chunk.read_bytes()[:-5])
    calab.write_export(
        tmp_path / "p.json", calab.export_dict(tau_rise=0.05, tau_decay=0.5, lam=0.01, fs=30.0)
    )
    exe = Path(sys.executable).with_name("calab")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "calab.cli"]
    args = ["deconvolve", str(tmp_path), "--format", "minian", "--fs", "30"]
    args += ["--params", str(tmp_path / "p.json"), "-o", str(tmp_path / "out.npy"), "--quiet"]
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert f"from the zarr store {store}" in proc.stderr, proc.stderr
