"""calab.params: the parameter types (validated once) and solve_block (filter, then solve)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

import calab
from calab.params import Params, SolverOptions, max_threads
from calab.solve import solve_block

FS, TR, TD = 30.0, 0.05, 0.5


def test_params_are_frozen_and_normalised() -> None:
    p = Params(np.float32(30.0), 0.05, 0.5, np.int64(0))
    assert (p.fs, p.tau_rise, p.tau_decay, p.lam) == (30.0, 0.05, 0.5, 0.0)
    assert type(p.fs) is float and type(p.lam) is float
    assert (p.filter_enabled, p.baseline, p.baseline_window_s) == (False, "constant", None)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.lam = 1.0  # type: ignore[misc]
    lam = [0.1, 0.2]
    q = Params(FS, TR, TD, lam)
    assert isinstance(q.lam, np.ndarray) and not q.lam.flags.writeable
    lam[0] = 5.0
    assert q.lam[0] == 0.1  # a copy
    assert q == Params(FS, TR, TD, np.array([0.1, 0.2]))
    assert q != Params(FS, TR, TD, 0.1)
    assert hash(q) == hash(Params(FS, TR, TD, (0.1, 0.2)))


@pytest.mark.parametrize(
    ("kw", "exc", "pattern"),
    [
        ({"fs": 0.0}, ValueError, r"^fs must be a positive"),
        ({"tau_rise": 0.6}, ValueError, r"tau_rise .* smaller than tau_decay"),
        ({"lam": -1.0}, ValueError, r"^lam must be"),
        ({"lam": "0.1"}, TypeError, r"^lam must be a number"),
        ({"lam": [[0.1, 0.2]]}, ValueError, r"^lam must be a number or a 1-D array"),
        ({"lam": []}, ValueError, r"^lam must be a number or a 1-D array"),
        ({"lam": [0.1, -0.2]}, ValueError, r"^lam must hold finite numbers >= 0, got lam\[1\]"),
        ({"lam": [0.1, np.nan]}, ValueError, r"^lam must hold finite numbers"),
        ({"lam": ["a", "b"]}, TypeError, r"^lam must hold real numbers"),
        ({"lam": np.ma.array([0.1, 0.2])}, TypeError, r"^lam must not be a masked array"),
        ({"filter_enabled": "no"}, TypeError, r"^filter_enabled must be True or False"),
        ({"baseline": "linear"}, ValueError, r"^baseline must be 'constant' or 'drift'"),
        ({"baseline": ["drift"]}, TypeError, r"^baseline must be"),
        ({"baseline_window_s": 0.0}, ValueError, r"^baseline_window_s must be a positive"),
        ({"baseline_window_s": True}, TypeError, r"^baseline_window_s must be a number"),
    ],
)
def test_params_validate_naming_the_argument(kw: dict[str, Any], exc: type, pattern: str) -> None:
    args: dict[str, Any] = {"fs": FS, "tau_rise": TR, "tau_decay": TD, "lam": 0.1}
    args.update(kw)
    with pytest.raises(exc, match=pattern):
        Params(**args)


def test_solver_options_defaults_per_method() -> None:
    assert SolverOptions() == SolverOptions("active-set", 1000, 1e-9, None)
    f = SolverOptions("fista")
    assert (f.max_iters, f.tol) == (5000, 1e-4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        f.tol = 1.0  # type: ignore[misc]


def test_export_dict_round_trip(tmp_path: Any) -> None:
    path = tmp_path / "p.json"
    export = calab.export_dict(tau_rise=0.02, tau_decay=0.4, lam=0.01, fs=30.0, filter_enabled=True)
    calab.write_export(path, export)
    d = calab.load_export_params(path)
    p = Params.from_export(d)
    assert p == Params(30.0, 0.02, 0.4, 0.01, filter_enabled=True)
    assert p.to_export() == d
    q = Params(30.0, 0.02, 0.4, [0.01, 0.03, 0.02], baseline="drift", baseline_window_s=20.0)
    e = q.to_export()
    assert e["lambda_"] == 0.02 and e["lambda_per_cell"] == [0.01, 0.03, 0.02]
    assert Params.from_export(e) == q
    with pytest.raises(ValueError, match=r"params lacks lambda_"):
        Params.from_export({"tau_rise": 0.02, "tau_decay": 0.4, "fs": 30.0})


def test_solve_block_filters_when_enabled() -> None:
    y, _ = calab.simulate(3, 600, FS, TR, TD, seed=4)
    p = Params(FS, TR, TD, 0.02, filter_enabled=True)
    res = solve_block(y, p, full=True)
    ref = calab.run_deconvolution_full(calab.bandpass_filter(y, TR, TD, FS), FS, TR, TD, 0.02)
    np.testing.assert_array_equal(res.activity, ref.activity)
    np.testing.assert_array_equal(res.reconvolution, ref.reconvolution)
    with pytest.raises(ValueError, match=r"traces must be 2-D"):
        solve_block(y[0], p)


def test_max_threads_bound() -> None:
    assert 64 <= max_threads() <= 1024


def test_max_iters_is_the_sixth_positional_argument() -> None:
    """As in the CaLab package: run_deconvolution(traces, fs, tau_r, tau_d, lam, max_iters)."""
    y, _ = calab.simulate(2, 3000, FS, 0.1, 2.0, seed=5)
    capped = calab.run_deconvolution_full(y, FS, 0.1, 2.0, 1e-4, 1)
    assert np.all(capped.iterations <= 1)
    np.testing.assert_array_equal(
        calab.run_deconvolution(y, FS, 0.1, 2.0, 1e-4, 1),
        calab.run_deconvolution(y, FS, 0.1, 2.0, 1e-4, max_iters=1),
    )
    with pytest.raises(TypeError):
        calab.run_deconvolution(y, FS, 0.1, 2.0, 1e-4, 1, 1e-9)  # tol is keyword-only


def test_readme_per_cell_and_drift_example_runs() -> None:
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    start = text.index("### Per-cell lambda and drifting baselines")
    section = text[start : start + text[start:].index("\n### Kernel math")]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    traces, _ = calab.simulate(n_cells=50, n_frames=9000, fs=30.0)
    namespace: dict[str, Any] = {"np": np, "calab": calab, "traces": traces}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - our own docs
    assert namespace["result"].baseline.shape == (50, 9000)
    assert namespace["result"].converged.all()


def test_for_cells_slices_a_per_cell_lambda() -> None:
    p = Params(FS, TR, TD, [0.1, 0.2, 0.3, 0.4])
    assert p.for_cells(1, 3) == Params(FS, TR, TD, [0.2, 0.3])
    q = Params(FS, TR, TD, 0.1)
    assert q.for_cells(5, 9) is q
    with pytest.raises(ValueError, match=r"cells 2:6 are outside the 4 cells"):
        p.for_cells(2, 6)
