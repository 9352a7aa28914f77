"""The CaTune export JSON: writing, reading, validation and deconvolve_from_export."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import stat

import numpy as np
import pytest

import calab
from calab.io.export import SCHEMA_VERSION, params_from_export

PARAMS = {"tau_rise": 0.05, "tau_decay": 0.5, "lam": 0.02, "fs": 30.0}


def web_app_export() -> dict:
    """An export as the CaTune web app writes it (schema 1.1.0, no t_peak_s/fwhm_s)."""
    return {
        "schema_version": "1.1.0",
        "catune_version": "0.9.1",
        "export_date": "2025-01-15T10:00:00.000Z",
        "parameters": {
            "tau_rise_s": 0.02,
            "tau_decay_s": 0.4,
            "lambda": 0.01,
            "sampling_rate_hz": 30.0,
            "filter_enabled": False,
        },
        "ar2_coefficients": {"g1": 1.1, "g2": -0.17, "decayRoot": 0.92, "riseRoot": 0.19},
        "formulation": {"model": "FISTA"},
        "metadata": {"source_filename": "rec.npy", "num_cells": 3},
    }


def test_export_dict_contents():
    exp = calab.export_dict(**PARAMS, filter_enabled=True, metadata={"num_cells": 3})
    assert exp["schema_version"] == SCHEMA_VERSION == "1.2.0"
    assert exp["catune_version"] == f"calab {calab.__version__}"
    assert dt.datetime.fromisoformat(exp["export_date"].replace("Z", "+00:00")).tzinfo
    p = exp["parameters"]
    assert (p["tau_rise_s"], p["tau_decay_s"], p["lambda"], p["sampling_rate_hz"]) == (
        0.05,
        0.5,
        0.02,
        30.0,
    )
    assert p["filter_enabled"] is True
    # Independent: the continuous kernel peaks where its derivative vanishes.
    tr, td = 0.05, 0.5
    assert math.isclose(p["t_peak_s"], tr * td / (td - tr) * math.log(td / tr), rel_tol=1e-12)
    t = np.linspace(0, 5, 500_001)
    h = np.exp(-t / td) - np.exp(-t / tr)
    above = t[h >= h.max() / 2]
    assert math.isclose(p["fwhm_s"], above[-1] - above[0], abs_tol=2e-5)
    ar2 = exp["ar2_coefficients"]
    d, r = math.exp(-1 / (30 * td)), math.exp(-1 / (30 * tr))
    assert math.isclose(ar2["g1"], d + r) and math.isclose(ar2["g2"], -d * r)
    assert (ar2["decayRoot"], ar2["riseRoot"], ar2["dt"]) == pytest.approx((d, r, 1 / 30))
    assert exp["metadata"] == {"num_cells": 3}
    assert isinstance(exp["formulation"], dict)
    json.dumps(exp, allow_nan=False)


def test_round_trip(tmp_path):
    exp = calab.export_dict(**PARAMS)
    path = calab.write_export(tmp_path / "p.json", exp)
    assert calab.load_export_params(path) == {
        "tau_rise": 0.05,
        "tau_decay": 0.5,
        "lambda_": 0.02,
        "fs": 30.0,
        "filter_enabled": False,
    }


def test_write_refuses_to_overwrite(tmp_path):
    path = tmp_path / "p.json"
    path.write_text("keep me")
    exp = calab.export_dict(**PARAMS)
    with pytest.raises(FileExistsError, match="force"):
        calab.write_export(path, exp)
    assert path.read_text() == "keep me"
    calab.write_export(path, exp, force=True)
    assert json.loads(path.read_text())["schema_version"] == "1.2.0"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.json"]


def test_reads_web_app_schema_1_1(tmp_path):
    path = tmp_path / "catune-params-2025-01-15.json"
    path.write_text(json.dumps(web_app_export()))
    assert calab.load_export_params(path) == {
        "tau_rise": 0.02,
        "tau_decay": 0.4,
        "lambda_": 0.01,
        "fs": 30.0,
        "filter_enabled": False,
    }


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda e: e.update(schema_version="2.0.0"),
            "unknown CaTune export schema_version '2.0.0'",
        ),
        (lambda e: e.pop("parameters"), "no 'parameters'"),
        (lambda e: e["parameters"].pop("lambda"), "lacks parameters lambda"),
        (lambda e: e["parameters"].update(lambda_="x", **{"lambda": "x"}), "must be a number"),
        (lambda e: e["parameters"].update(tau_rise_s=0.5), "must be smaller than tau_decay"),
        (lambda e: e["parameters"].update(sampling_rate_hz=0), "fs must be a positive"),
        (lambda e: e["parameters"].update(filter_enabled="yes"), "true or false"),
        (lambda e: e["parameters"].update(**{"lambda": -1.0}), "lam must be"),
    ],
)
def test_invalid_exports(tmp_path, change, message):
    exp = web_app_export()
    change(exp)
    path = tmp_path / "p.json"
    path.write_text(json.dumps(exp))
    with pytest.raises(ValueError, match=message):
        calab.load_export_params(path)


def test_strict_and_lenient_reading(tmp_path):
    # Exports posted by the tuning page are checked strictly ...
    exp = web_app_export()
    exp.pop("schema_version")
    with pytest.raises(ValueError, match="no schema_version"):
        params_from_export(exp)
    exp = web_app_export()
    exp["parameters"].pop("filter_enabled")
    with pytest.raises(ValueError, match="lacks parameters filter_enabled"):
        params_from_export(exp)
    # ... files are read as leniently as the CaLab package (issue 10): no filter_enabled means
    # False, no schema_version is read as 1.1.0 with a warning.
    path = tmp_path / "hand-written.json"
    path.write_text(json.dumps({"parameters": exp["parameters"]}))
    with pytest.warns(UserWarning, match="no schema_version; reading it as 1.1.0"):
        got = calab.load_export_params(path)
    assert got == {
        "tau_rise": 0.02,
        "tau_decay": 0.4,
        "lambda_": 0.01,
        "fs": 30.0,
        "filter_enabled": False,
    }
    path.write_text(json.dumps({"settings": {}}))
    with pytest.raises(ValueError, match="not a CaTune export.*no schema_version"):
        calab.load_export_params(path)


def test_unreadable_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="CaTune export not found"):
        calab.load_export_params(tmp_path / "none.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        calab.load_export_params(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="must be a JSON object"):
        params_from_export([1, 2])  # type: ignore[arg-type]


def test_deconvolve_from_export_matches_run_deconvolution(tmp_path):
    traces, _ = calab.simulate(3, 400, 30.0, 0.05, 0.5, seed=3)
    for enabled in (False, True):
        path = calab.write_export(
            tmp_path / f"p{enabled}.json", calab.export_dict(**PARAMS, filter_enabled=enabled)
        )
        got = calab.deconvolve_from_export(traces, path)
        data = calab.bandpass_filter(traces, 0.05, 0.5, 30.0) if enabled else traces
        want = calab.run_deconvolution(data, 30.0, 0.05, 0.5, 0.02)
        np.testing.assert_array_equal(got, want)
        # An already parsed export works too, and keyword arguments reach the solver.
        fista = calab.deconvolve_from_export(
            traces, json.loads(path.read_text()), method="fista", max_iters=3
        )
        assert fista.shape == traces.shape
    filtered_vs_raw = calab.deconvolve_from_export(traces, tmp_path / "pTrue.json")
    assert not np.array_equal(
        filtered_vs_raw, calab.deconvolve_from_export(traces, path.parent / "pFalse.json")
    )


def test_export_file_mode_follows_the_umask(tmp_path):
    exp = calab.export_dict(**PARAMS)
    old = os.umask(0o027)
    try:
        path = calab.write_export(tmp_path / "a.json", exp)
        os.umask(0o002)
        again = calab.write_export(tmp_path / "b.json", exp)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert stat.S_IMODE(again.stat().st_mode) == 0o664
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.json"]


def test_write_never_follows_a_planted_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / "p.json").symlink_to(victim)
    calab.write_export(tmp_path / "p.json", calab.export_dict(**PARAMS), force=True)
    assert victim.read_text() == "keep me"
    assert not (tmp_path / "p.json").is_symlink()


def test_deconvolve_from_export_return_full(tmp_path):
    traces, _ = calab.simulate(2, 300, 30.0, 0.05, 0.5, seed=5)
    path = calab.write_export(tmp_path / "p.json", calab.export_dict(**PARAMS))
    full = calab.deconvolve_from_export(traces, path, return_full=True)
    want = calab.run_deconvolution_full(traces, 30.0, 0.05, 0.5, 0.02)
    assert isinstance(full, calab.DeconvolutionResult)
    np.testing.assert_array_equal(full.activity, want.activity)
    np.testing.assert_array_equal(full.baseline, want.baseline)
    positional = calab.deconvolve_from_export(traces, str(path), True)
    np.testing.assert_array_equal(positional.activity, want.activity)
    np.testing.assert_array_equal(calab.deconvolve_from_export(traces, path), want.activity)
    with pytest.raises(TypeError, match="return_full must be True or False"):
        calab.deconvolve_from_export(traces, path, "yes")
    with pytest.raises(TypeError, match="traces is a masked array"):
        calab.deconvolve_from_export(np.ma.masked_invalid(traces), path)
