"""Every ``calab`` option with bad values, as a careless or hostile user would type them.

Each bad value ends in one clear line and no files: a usage error (status 2, naming the option)
for values argparse can judge, or ``calab: error: ...`` (status 1) for values only the run can.
Run in-process through ``calab.cli.main`` (the subprocess path is tested in tests/test_cli.py).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import calab
from calab.cli import build_parser, main
from calab.params import max_threads

PARAMS = {"tau_rise": 0.05, "tau_decay": 0.5, "lam": 0.02, "fs": 30.0}

#: option -> (commands that take it, bad values)
NUMERIC = {
    "--chunk-size": (("deconvolve",), ["-5", "0", "1.5", "abc", "", "1e3", "nan"]),
    "--threads": (("deconvolve",), ["0", "-1", "x", "2.0", str(2**64), str(max_threads() + 1)]),
    "--fs": (("deconvolve", "convert", "info", "tune"),
             ["0", "-30", "nan", "inf", "-inf", "1e400", "abc", ""]),
    "--port": (("tune",), ["-1", "65536", "http", "80.5", str(2**70)]),
    "--timeout": (("tune",), ["0", "-1", "nan", "inf", "soon"]),
    "--neuropil-coef": (("deconvolve", "convert", "info", "tune"), ["-0.1", "nan", "inf", "k"]),
    "--plane": (("deconvolve", "convert", "info", "tune"), ["-1", "0.5", "one"]),
}  # fmt: skip
CHOICES = {
    "--format": ("deconvolve", "convert", "info", "tune"),
    "-f": ("deconvolve", "convert", "info", "tune"),
    "--trace": ("deconvolve", "convert", "info", "tune"),
}


@pytest.fixture
def folder(tmp_path, monkeypatch):
    traces, _ = calab.simulate(4, 200, 30.0, 0.05, 0.5, seed=1)
    np.save(tmp_path / "t.npy", traces)
    calab.write_export(tmp_path / "p.json", calab.export_dict(**PARAMS))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _base(command: str) -> list[str]:
    return {
        "deconvolve": ["deconvolve", "t.npy", "-p", "p.json", "-o", "out.npy"],
        "convert": ["convert", "t.npy", "-o", "out"],
        "info": ["info", "t.npy"],
        "tune": ["tune", "t.npy", "--no-browser", "-o", "out.json"],
    }[command]


def _listing(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir())


def _usage_error(argv: list[str], option: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert f"argument {option}" in last, err


@pytest.mark.parametrize(
    "option,command,value",
    [(o, c, v) for o, (cs, vs) in NUMERIC.items() for c in cs for v in vs],
)
def test_bad_numbers_are_usage_errors(folder, capsys, option, command, value):
    """Issue 9 item 7: ``--chunk-size -5`` exited 0 and wrote zeros."""
    before = _listing(folder)
    _usage_error([*_base(command), f"{option}={value}"], option, capsys)
    assert _listing(folder) == before


@pytest.mark.parametrize("option,command", [(o, c) for o, cs in CHOICES.items() for c in cs])
def test_bad_choices_are_usage_errors(folder, capsys, option, command):
    label = "--trace" if option == "--trace" else "-f/--format"
    _usage_error([*_base(command), option, "excel"], label, capsys)


@pytest.mark.parametrize("command", ["deconvolve", "convert", "info", "tune"])
def test_unknown_options_and_missing_arguments(folder, capsys, command):
    with pytest.raises(SystemExit) as exc:
        main([*_base(command), "--no-such-option"])
    assert exc.value.code == 2
    assert "unrecognized arguments: --no-such-option" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main([command])
    assert exc.value.code == 2
    assert "required" in capsys.readouterr().err


def _error(argv: list[str], fragment: str, capsys) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("calab: error: "), err
    assert fragment in lines[0], lines[0]
    assert "Errno" not in lines[0] and "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    "argv,fragment",
    [
        (["deconvolve", "t.npy", "-p", "p.json", "-o", "out.csv"], "must end in .npy, .h5 or"),
        (["deconvolve", "t.npy", "-p", "p.json", "-o", "no/out.npy"], "folder does not exist"),
        (["deconvolve", "t.npy", "-p", "p.json", "-o", ""], "must end in"),
        (["deconvolve", "t.npy", "-p", "p.json", "-o", "t.npy", "--force"], "is an input file"),
        (["deconvolve", "t.npy", "-p", "p.json", "-o", "."], "must end in"),
        (["deconvolve", "t.npy", "-p", "p.json", "-o", "sub.npy", "--force"], "is a folder"),
        (["deconvolve", "t.npy", "-p", "t.npy"], "not valid JSON"),
        (["deconvolve", "t.npy", "-p", "sub.npy"], "export"),
        (["deconvolve", "t.npy", "-p", "nothing.json"], "not found"),
        (["deconvolve", "", "-p", "p.json"], "not found"),
        (["deconvolve", "nothing", "-p", "p.json"], "not found"),
        (["deconvolve", "t.npy", "-p", "p.json", "-o", "exists.npy"], "already exists"),
        (["info", "t.npy", "--variable", ""], "variable"),
        (["convert", "t.npy", "--fs", "30", "-o", "no/x"], "folder does not exist"),
        (["convert", "t.npy", "--fs", "30", "-o", "t"], "is an input file"),
        (["convert", "t.npy", "-o", "x"], "pass --fs"),
        (
            ["tune", "t.npy", "--fs", "30", "--no-browser", "--app-url", "javascript:alert(1)"],
            "app_url",
        ),
        (
            ["tune", "t.npy", "--fs", "30", "--no-browser", "-o", "p.json"],
            "already exists; pass --force",
        ),
        (
            ["tune", "t.npy", "--fs", "30", "--no-browser", "-o", "t.npy", "--force"],
            "is an input file",
        ),
        (["info", "nothing.json"], "not found"),
        (["info", "t.npy", "-f", "caiman"], "HDF5"),
    ],
)
def test_bad_values_only_a_run_can_judge(folder, capsys, argv, fragment):
    (folder / "sub.npy").mkdir()
    (folder / "exists.npy").write_text("")
    before = _listing(folder)
    _error(argv, fragment, capsys)
    assert _listing(folder) == before


def test_fifo_as_params_or_output_folder(folder, capsys):
    os.mkfifo(folder / "p.fifo.json")
    before = _listing(folder)
    # the export reader must not block on a FIFO (it is not a regular file)
    assert main(["deconvolve", "t.npy", "-p", "p.fifo.json", "-o", "o.npy"]) == 1
    assert "calab: error:" in capsys.readouterr().err
    assert _listing(folder) == before


@given(st.text(max_size=12))
def test_numeric_options_accept_only_sane_values(text):
    """Whatever is typed, an accepted value is in range and a refused one is a usage error."""
    parser = build_parser()
    checks = {
        "--chunk-size": lambda v: isinstance(v, int) and v >= 1,
        "--threads": lambda v: isinstance(v, int) and 1 <= v <= max_threads(),
        "--fs": lambda v: math.isfinite(v) and v > 0,
        "--neuropil-coef": lambda v: math.isfinite(v) and v >= 0,
        "--plane": lambda v: isinstance(v, int) and v >= 0,
    }
    for option, ok in checks.items():
        try:
            args = parser.parse_args(["deconvolve", "t.npy", "-p", "p.json", f"{option}={text}"])
        except SystemExit as exc:
            assert exc.code == 2
            continue
        assert ok(getattr(args, option[2:].replace("-", "_"))), (option, text)
    for option, ok in {
        "--port": lambda v: isinstance(v, int) and 0 <= v <= 65535,
        "--timeout": lambda v: math.isfinite(v) and v > 0,
    }.items():
        try:
            args = parser.parse_args(["tune", "t.npy", f"{option}={text}"])
        except SystemExit as exc:
            assert exc.code == 2
            continue
        assert ok(getattr(args, option[2:])), (option, text)
