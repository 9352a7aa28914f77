"""Shared fixtures for the calab core tests."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "calab",
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow],
    print_blob=True,
)
settings.register_profile("thorough", parent=settings.get_profile("calab"), max_examples=1000)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "calab"))


@pytest.fixture(scope="session")
def ground_truth_dir() -> Path:
    """The shared ground-truth recordings, or skip when they are not available."""
    candidates = [Path(__file__).resolve().parents[2] / "shared" / "data" / "ground_truth"]
    env = os.environ.get("CALAB_GROUND_TRUTH")
    if env:
        candidates.insert(0, Path(env))
    for c in candidates:
        if c.is_dir() and any(c.glob("*.npz")):
            return c
    pytest.skip(
        "ground-truth recordings not found (looked in "
        + ", ".join(str(c) for c in candidates)
        + "); set CALAB_GROUND_TRUTH to the folder holding the *.npz files"
    )


@pytest.fixture
def data(tmp_path: Path) -> np.ndarray:
    """Six simulated traces in ``tmp_path/traces.npy`` and a CaTune export ``params.json``
    (the command-line tests: test_cli, test_batch, io/test_open, io/test_writers)."""
    import calab

    traces, _ = calab.simulate(6, 300, 30.0, 0.05, 0.5, seed=4)
    np.save(tmp_path / "traces.npy", traces)
    calab.write_export(
        tmp_path / "params.json",
        calab.export_dict(tau_rise=0.05, tau_decay=0.5, lam=0.02, fs=30.0),
    )
    return traces
