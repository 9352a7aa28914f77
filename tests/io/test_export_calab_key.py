"""calab's extensions in the CaTune export JSON: the "calab" key (per-cell lambda, drift
baseline), read by load_export_params and honoured by deconvolve_from_export, while every
CaTune field stays as CaTune reads it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import calab
from calab.baseline import DEFAULT_WINDOW_S
from calab.io.export import params_from_export
from calab.params import Params

FS, TR, TD = 30.0, 0.05, 0.5
LAMS = np.array([0.004, 0.03, 0.01, 0.2])

# What the CaTune web app requires of an imported export (its import schema, written with
# valibot's `object`, which accepts and drops keys it does not know): field -> JSON type.
CATUNE_IMPORT_SCHEMA: dict[str, Any] = {
    "schema_version": str,
    "catune_version": str,
    "export_date": str,
    "parameters": {
        "tau_rise_s": float,
        "tau_decay_s": float,
        "lambda": float,
        "sampling_rate_hz": float,
        "filter_enabled": bool,
    },
    "ar2_coefficients": {
        "decayRoot": float,
        "riseRoot": float,
        "g1": float,
        "g2": float,
        "dt": float,
    },  # fmt: skip
    "formulation": {
        "model": str,
        "objective": str,
        "kernel": str,
        "ar2_relation": str,
        "lambda_definition": str,
        "convergence": str,
    },  # fmt: skip
    "metadata": {},
}


def catune_import_problems(obj: Any, schema: dict[str, Any], where: str = "") -> list[str]:
    problems = []
    for key, kind in schema.items():
        if key not in obj:
            problems.append(f"missing {where}{key}")
        elif isinstance(kind, dict):
            if not isinstance(obj[key], dict):
                problems.append(f"{where}{key} is not an object")
            else:
                problems += catune_import_problems(obj[key], kind, f"{where}{key}.")
        elif kind is float:
            if isinstance(obj[key], bool) or not isinstance(obj[key], int | float):
                problems.append(f"{where}{key} is not a number")
        elif not isinstance(obj[key], kind):
            problems.append(f"{where}{key} is not {kind.__name__}")
    return problems


@pytest.fixture
def traces() -> np.ndarray:
    y, _ = calab.simulate(4, 900, FS, TR, TD, seed=7)
    drift = 0.8 * np.exp(-np.arange(900) / 400.0) + 0.3 * np.sin(np.arange(900) / 150.0)
    return y + drift * np.array([1.0, 0.5, 2.0, 1.5])[:, None]


def write(tmp_path: Path, name: str, export: dict[str, Any]) -> Path:
    return calab.write_export(tmp_path / name, export)


def per_cell(tmp_path: Path, name: str = "p.json") -> Path:
    """An export with one lambda per cell (LAMS) and the CaTune model otherwise."""
    return write(tmp_path, name, calab.export_dict(tau_rise=TR, tau_decay=TD, lam=LAMS, fs=FS))


WRONG_LENGTH = r"calab.lambda_per_cell in .*p.json has 4 values but the traces have 3 cells"


def test_plain_export_opens_in_catune() -> None:
    # Regression: calab's formulation lacked "convergence", which CaTune's import requires.
    plain = calab.export_dict(tau_rise=TR, tau_decay=TD, lam=0.02, fs=FS)
    assert catune_import_problems(json.loads(json.dumps(plain)), CATUNE_IMPORT_SCHEMA) == []


def test_exports_stay_valid_for_catune() -> None:
    plain = calab.export_dict(tau_rise=TR, tau_decay=TD, lam=0.02, fs=FS)
    extended = calab.export_dict(
        tau_rise=TR, tau_decay=TD, lam=LAMS, fs=FS, baseline="drift", baseline_window_s=12.0
    )
    for export in (plain, extended):
        assert catune_import_problems(json.loads(json.dumps(export)), CATUNE_IMPORT_SCHEMA) == []
    # A plain CaTune model writes no calab key; the extended one only adds that key, and its
    # CaTune fields are those of the recording-wide lambda (the median of the per-cell ones).
    assert "calab" not in plain
    assert set(extended) == set(plain) | {"calab"}
    median = calab.export_dict(tau_rise=TR, tau_decay=TD, lam=float(np.median(LAMS)), fs=FS)
    assert extended["parameters"] == median["parameters"]
    assert extended["parameters"]["lambda"] == 0.02
    for key in ("ar2_coefficients", "formulation", "metadata", "schema_version"):
        assert extended[key] == median[key]
    assert extended["calab"] == {
        "format": 1,
        "lambda_per_cell": LAMS.tolist(),
        "baseline": "drift",
        "baseline_window_s": 12.0,
    }


def test_per_cell_lambda_and_drift_round_trip(tmp_path: Path, traces: np.ndarray) -> None:
    for enabled in (False, True):
        export = calab.export_dict(
            tau_rise=TR, tau_decay=TD, lam=LAMS, fs=FS, filter_enabled=enabled,
            baseline="drift", baseline_window_s=10.0, metadata={"num_cells": 4},
        )  # fmt: skip
        path = write(tmp_path, f"p{enabled}.json", export)
        loaded = calab.load_export_params(path)
        assert loaded == {
            "tau_rise": TR,
            "tau_decay": TD,
            "lambda_": 0.02,
            "fs": FS,
            "filter_enabled": enabled,
            "lambda_per_cell": LAMS.tolist(),
            "baseline": "drift",
            "baseline_window_s": 10.0,
        }
        assert Params.from_export(loaded).to_export() == loaded
        got = calab.deconvolve_from_export(traces, path, return_full=True)
        data = calab.bandpass_filter(traces, TR, TD, FS) if enabled else traces
        want = calab.run_deconvolution_full(
            data, FS, TR, TD, LAMS, baseline="drift", baseline_window_s=10.0
        )
        for g, w in zip(got, want, strict=True):
            np.testing.assert_array_equal(g, w)
        assert got.baseline.shape == traces.shape
        np.testing.assert_array_equal(calab.deconvolve_from_export(traces, path), want.activity)
    # The per-cell values and the drift are used: the recording-wide lambda with a constant
    # baseline (what CaTune would do with this file) gives another answer.
    catune = calab.run_deconvolution(traces, FS, TR, TD, 0.02)
    assert not np.allclose(calab.deconvolve_from_export(traces, tmp_path / "pFalse.json"), catune)


def test_each_extension_alone(tmp_path: Path, traces: np.ndarray) -> None:
    path = write(
        tmp_path, "lam.json", calab.export_dict(tau_rise=TR, tau_decay=TD, lam=LAMS, fs=FS)
    )
    assert calab.load_export_params(path)["lambda_per_cell"] == LAMS.tolist()
    assert "baseline" not in calab.load_export_params(path)
    np.testing.assert_array_equal(
        calab.deconvolve_from_export(traces, path),
        calab.run_deconvolution(traces, FS, TR, TD, LAMS),
    )
    # A drift baseline without a window records the default, so the file does not depend on
    # a later calab's default.
    exp = calab.export_dict(tau_rise=TR, tau_decay=TD, lam=0.02, fs=FS, baseline="drift")
    assert exp["calab"] == {"format": 1, "baseline": "drift", "baseline_window_s": DEFAULT_WINDOW_S}
    path = write(tmp_path, "drift.json", exp)
    assert "lambda_per_cell" not in calab.load_export_params(path)
    np.testing.assert_array_equal(
        calab.deconvolve_from_export(traces, path),
        calab.run_deconvolution(traces, FS, TR, TD, 0.02, baseline="drift"),
    )
    # Keyword arguments override the export's baseline.
    np.testing.assert_array_equal(
        calab.deconvolve_from_export(traces, path, baseline="constant"),
        calab.run_deconvolution(traces, FS, TR, TD, 0.02),
    )
    with pytest.raises(TypeError, match="unexpected keyword argument 'lam'.*baseline_window_s"):
        calab.deconvolve_from_export(traces, path, lam=0.1)


def test_catune_only_export_behaves_as_before(tmp_path: Path, traces: np.ndarray) -> None:
    exp = calab.export_dict(tau_rise=TR, tau_decay=TD, lam=0.02, fs=FS, filter_enabled=True)
    path = write(tmp_path, "p.json", exp)
    assert calab.load_export_params(path) == {
        "tau_rise": TR, "tau_decay": TD, "lambda_": 0.02, "fs": FS, "filter_enabled": True,
    }  # fmt: skip
    full = calab.deconvolve_from_export(traces, path, return_full=True)
    want = calab.run_deconvolution_full(calab.bandpass_filter(traces, TR, TD, FS), FS, TR, TD, 0.02)
    for g, w in zip(full, want, strict=True):
        np.testing.assert_array_equal(g, w)
    assert full.baseline.shape == (4,)
    # An explicit "calab" key saying the CaTune model reads exactly as none.
    exp["calab"] = {"format": 1, "baseline": "constant"}
    assert params_from_export(exp) == calab.load_export_params(path)


def test_per_cell_lambda_through_dask(tmp_path: Path, traces: np.ndarray) -> None:
    da = pytest.importorskip("dask.array")
    path = per_cell(tmp_path)
    lazy = calab.deconvolve_from_export(da.from_array(traces, chunks=(3, -1)), path)
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(
        lazy.compute(), calab.run_deconvolution(traces, FS, TR, TD, LAMS), rtol=1e-10, atol=1e-12
    )
    with pytest.raises(ValueError, match=WRONG_LENGTH):
        calab.deconvolve_from_export(da.from_array(traces[:3]), path)
    xr = pytest.importorskip("xarray")
    frame_first = xr.DataArray(traces.T, dims=("frame", "unit_id"))  # cells counted by name
    got = calab.deconvolve_from_export(frame_first, path)
    assert got.dims == ("frame", "unit_id")
    np.testing.assert_array_equal(got.values.T, calab.run_deconvolution(traces, FS, TR, TD, LAMS))
    with pytest.raises(ValueError, match=WRONG_LENGTH):
        calab.deconvolve_from_export(frame_first[:, :3], path)


def test_wrong_number_of_cells_is_named(tmp_path: Path, traces: np.ndarray) -> None:
    path = per_cell(tmp_path)
    with pytest.raises(ValueError, match=WRONG_LENGTH):
        calab.deconvolve_from_export(traces[:3], path)
    with pytest.raises(ValueError, match="has 4 values but the traces have 1 cells"):
        calab.deconvolve_from_export(traces[0], path)
    with pytest.raises(ValueError, match="calab.lambda_per_cell in the export has 4 values"):
        calab.deconvolve_from_export(traces[:2], json.loads(path.read_text()))
    with pytest.raises(ValueError, match="lam has 4 values but metadata num_cells is 5"):
        calab.export_dict(tau_rise=TR, tau_decay=TD, lam=LAMS, fs=FS, metadata={"num_cells": 5})


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ([0.1], r"'calab' key must be an object"),
        ({"lambda_per_cell": "0.1"}, r"calab.lambda_per_cell must be a non-empty list"),
        ({"lambda_per_cell": []}, r"calab.lambda_per_cell must be a non-empty list"),
        ({"lambda_per_cell": [0.1, -1]}, r"calab.lambda_per_cell\[1\] = -1"),
        ({"lambda_per_cell": [0.1, float("nan")]}, r"calab.lambda_per_cell\[1\] = nan"),
        ({"lambda_per_cell": [0.1, float("inf")]}, r"calab.lambda_per_cell\[1\] = inf"),
        ({"lambda_per_cell": [True]}, r"calab.lambda_per_cell\[0\] = True"),
        ({"lambda_per_cell": [0.1, "0.2"]}, r"calab.lambda_per_cell\[1\] = '0.2'"),
        ({"baseline": "linear"}, r"calab.baseline must be one of 'constant', 'drift'.*'linear'"),
        ({"baseline": "drift", "baseline_window_s": 0}, r"calab.baseline_window_s must be a "),
        ({"baseline": "drift", "baseline_window_s": "30"}, r"calab.baseline_window_s must be"),
        ({"lambdas": [0.1]}, r"unknown field calab.lambdas"),
        ({"format": 2}, r"calab.format 2 .*upgrade calab"),
        ({"format": "1"}, r"calab.format must be a positive integer"),
    ],
)
def test_malformed_calab_key(tmp_path: Path, block: Any, message: str) -> None:
    exp = calab.export_dict(tau_rise=TR, tau_decay=TD, lam=0.1, fs=FS)
    exp["calab"] = block
    path = tmp_path / "hand-written.json"
    path.write_text(json.dumps(exp))
    with pytest.raises(ValueError, match=message):
        calab.load_export_params(path)
    with pytest.raises(ValueError, match=message):
        calab.deconvolve_from_export(np.ones((1, 50)), path)
    with pytest.raises(ValueError, match=message):
        calab.write_export(tmp_path / "out.json", exp)
    assert not (tmp_path / "out.json").exists()


def test_hand_edited_lambda_is_flagged(tmp_path: Path) -> None:
    exp = calab.export_dict(tau_rise=TR, tau_decay=TD, lam=LAMS, fs=FS)
    exp["parameters"]["lambda"] = 0.5  # changed by hand; calab would still use the per-cell ones
    path = tmp_path / "p.json"
    path.write_text(json.dumps(exp))
    with pytest.warns(UserWarning, match=r"parameters.lambda \(0.5\).*outside the range of calab"):
        assert calab.load_export_params(path)["lambda_per_cell"] == LAMS.tolist()
    # Another recording-wide summary than the median (e.g. over the active cells) is fine.
    exp["parameters"]["lambda"] = 0.03
    path.write_text(json.dumps(exp))
    assert calab.load_export_params(path)["lambda_"] == 0.03


def test_params_from_export_names_lambda_per_cell() -> None:
    base = {"tau_rise": TR, "tau_decay": TD, "lambda_": 0.1, "fs": FS}
    with pytest.raises(ValueError, match=r"lambda_per_cell: lam must hold finite numbers >= 0"):
        Params.from_export({**base, "lambda_per_cell": [0.1, -2.0]})
    with pytest.raises(TypeError, match="lambda_per_cell: lam must be a number"):
        Params.from_export({**base, "lambda_per_cell": "0.1"})
    assert Params.from_export({**base, "lambda_per_cell": [0.1, 0.2]}).lam.tolist() == [0.1, 0.2]
