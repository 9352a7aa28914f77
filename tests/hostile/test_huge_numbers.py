"""Issue 22 item 12: integers beyond float range (valid JSON) in every number calab reads.

A 400-digit integer made ``float()`` raise a bare OverflowError: the CLI named no field, the
bridge answered 500 (see test_bridge_slow_and_big.py) and the widget raised OverflowError
(see test_widget_hostile.py). One number reader (:func:`calab._validate.real_float`) turns it
into the clear error of a non-finite value, naming the field, everywhere.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import calab
from calab.cli import main

BIG = 10**400

#: Every number of an export that calab reads, as a path of keys (an int indexes a list).
FIELDS = {
    "parameters.tau_rise_s": ("parameters", "tau_rise_s"),
    "parameters.tau_decay_s": ("parameters", "tau_decay_s"),
    "parameters.lambda": ("parameters", "lambda"),
    "parameters.sampling_rate_hz": ("parameters", "sampling_rate_hz"),
    "calab.lambda_per_cell": ("calab", "lambda_per_cell", 1),
    "calab.baseline_window_s": ("calab", "baseline_window_s"),
    "calab.format": ("calab", "format"),
}


def export_with(field: str, value: object) -> dict:
    export = calab.export_dict(
        tau_rise=0.05, tau_decay=0.5, lam=[0.01, 0.02, 0.03, 0.04], fs=30.0, baseline="drift"
    )
    *parents, leaf = FIELDS[field]
    node = export
    for key in parents:
        node = node[key]
    node[leaf] = value
    return export


@pytest.fixture
def folder(tmp_path, monkeypatch):
    traces, _ = calab.simulate(4, 300, 30.0, 0.05, 0.5, seed=1)
    np.save(tmp_path / "t.npy", traces)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def one_error_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("calab: error: "), err
    assert "Traceback" not in err and "OverflowError" not in err
    return lines[0]


@pytest.mark.parametrize("sign", [1, -1])
@pytest.mark.parametrize("field", FIELDS)
def test_the_export_reader_names_the_field(tmp_path, field, sign):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(export_with(field, sign * BIG)))
    with pytest.raises(ValueError) as info:
        calab.load_export_params(path)
    message = str(info.value)
    assert field in message and "401 digits" in message and str(path) in message
    assert len(message) < 400, message
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        calab.deconvolve_from_export(np.ones((4, 50)), export_with(field, sign * BIG))


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("command", ["deconvolve", "info"])
def test_the_cli_names_the_field_in_one_line(folder, capsys, field, command):
    (folder / "p.json").write_text(json.dumps(export_with(field, BIG)))
    argv = {
        "deconvolve": ["deconvolve", "t.npy", "-p", "p.json", "-o", "out.npy"],
        "info": ["info", "p.json"],
    }[command]
    line = one_error_line(argv, capsys)
    assert field in line and "p.json" in line and "401 digits" in line, line
    assert not (folder / "out.npy").exists()


def test_a_huge_sampling_rate_in_tuning_metadata_is_named(folder, capsys):
    calab.save_for_tuning(np.load("t.npy"), 30.0, "rec")
    meta = json.loads((folder / "rec_metadata.json").read_text())
    meta["sampling_rate_hz"] = BIG
    (folder / "rec_metadata.json").write_text(json.dumps(meta))
    line = one_error_line(["info", "rec"], capsys)
    assert "sampling rate" in line and "401 digits" in line and "rec_metadata.json" in line, line


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda t: calab.run_deconvolution(t, BIG, 0.05, 0.5, 0.1), "fs"),
        (lambda t: calab.run_deconvolution(t, 30.0, BIG, 0.5, 0.1), "tau_rise"),
        (lambda t: calab.run_deconvolution(t, 30.0, 0.05, -BIG, 0.1), "tau_decay"),
        (lambda t: calab.run_deconvolution(t, 30.0, 0.05, 0.5, BIG), "lam"),
        (lambda t: calab.run_deconvolution(t, 30.0, 0.05, 0.5, 0.1, tol=BIG), "tol"),
        (
            lambda t: calab.run_deconvolution(
                t, 30.0, 0.05, 0.5, 0.1, baseline="drift", baseline_window_s=BIG
            ),
            "baseline_window_s",
        ),
        (lambda t: calab.export_dict(tau_rise=0.05, tau_decay=0.5, lam=0.1, fs=BIG), "fs"),
    ],
)
def test_the_python_api_names_the_argument(call, name):
    traces = calab.simulate(2, 300, 30.0, 0.05, 0.5, seed=2)[0]
    with pytest.raises(ValueError) as info:
        call(traces)
    message = str(info.value)
    assert message.startswith(name) and "401 digits" in message, message
