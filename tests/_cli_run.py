"""Helpers for tests that run the ``calab`` command as a subprocess, the way users run it.

Imported by path from tests/io and tests/hostile (see ``load_helpers``)."""

from __future__ import annotations

import hashlib
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

CALAB = Path(sys.executable).with_name("calab")
CMD = [str(CALAB)] if CALAB.exists() else [sys.executable, "-m", "calab.cli"]
PARAMS = {"tau_rise": 0.05, "tau_decay": 0.5, "lam": 0.02, "fs": 30.0}
TESTS = Path(__file__).resolve().parent


def load(path: Path, name: str) -> ModuleType:
    """Import a helper module of the test tree by its path."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


files = load(TESTS / "io" / "_pipeline_files.py", "calab_test_pipeline_files")


def run(
    *args: object, cwd: Path | None = None, cmd: list[str] = CMD, env: dict | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*cmd, *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd, env=env
    )


def assert_error(proc: subprocess.CompletedProcess, fragment: str) -> None:
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("calab: error: "), proc.stderr
    assert fragment in lines[0], lines[0]


def assert_usage_error(proc: subprocess.CompletedProcess, option: str) -> None:
    """argparse's refusal of a bad option value: status 2, naming the option, no traceback."""
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"argument {option}" in proc.stderr.strip().splitlines()[-1], proc.stderr


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def read_output(path: Path):
    """The activity of a ``calab deconvolve`` output (.npy, .h5 or .zarr) as an array."""
    import numpy as np

    from calab.io.open import open_traces

    if path.suffix == ".npy":
        return np.load(path)
    src = open_traces(path)
    try:
        return np.asarray(src.data[:])
    finally:
        src.close()
