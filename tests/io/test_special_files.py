"""FIFOs, folders and devices where a loader expects a data file are refused before any open.

Reading a FIFO blocks until a writer appears, so each probe runs in a subprocess with a
generous timeout: a regression fails the test instead of hanging the suite.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import calab
from calab.io._common import require_dir, require_file

_spec = importlib.util.spec_from_file_location(
    "calab_test_pipeline_files", Path(__file__).parent / "_pipeline_files.py"
)
assert _spec and _spec.loader
files = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(files)

pytestmark = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")


def probe(code: str) -> tuple[str, str]:
    """Run ``code`` (calab imported) in a subprocess; return the exception's type and text."""
    body = textwrap.indent(textwrap.dedent(code).strip("\n"), "    ")
    script = (
        f"import calab, sys\ntry:\n{body}\nexcept Exception as exc:\n"
        "    print(type(exc).__name__)\n    print(exc)\n    sys.exit(0)\nprint('no error')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    kind, _, message = proc.stdout.partition("\n")
    return kind, message.strip()


def test_require_file_and_dir(tmp_path):
    fifo = tmp_path / "x.hdf5"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"x.hdf5 is a FIFO \(named pipe\), not a regular file"):
        require_file(fifo, "CaImAn file")
    with pytest.raises(IsADirectoryError, match="is a folder, expected a file"):
        require_file(tmp_path, "CaImAn file")
    with pytest.raises(FileNotFoundError, match="CaImAn file not found"):
        require_file(tmp_path / "none.hdf5", "CaImAn file")
    with pytest.raises(NotADirectoryError, match="is a FIFO .*expected a folder"):
        require_dir(fifo, "suite2p folder")
    link = tmp_path / "link.hdf5"
    (tmp_path / "real.hdf5").write_bytes(b"x")
    link.symlink_to(tmp_path / "real.hdf5")
    assert require_file(link, "CaImAn file") == link


def test_caiman_fifo(tmp_path):
    os.mkfifo(tmp_path / "res.hdf5")
    kind, message = probe(f"calab.load_caiman({str(tmp_path / 'res.hdf5')!r})")
    assert kind == "ValueError" and "res.hdf5 is a FIFO" in message


def test_suite2p_fifo_files(tmp_path):
    rng = np.random.default_rng(0)
    f = rng.normal(size=(3, 20))
    folder = files.write_suite2p(tmp_path, f, f, files.iscell_array([1, 1, 1]))
    ops = folder / "plane0" / "ops.npy"
    ops.unlink()
    os.mkfifo(ops)
    kind, message = probe(f"calab.load_suite2p({str(folder)!r})")
    assert kind == "ValueError" and "ops.npy is a FIFO" in message
    (folder / "plane0" / "F.npy").unlink()
    os.mkfifo(folder / "plane0" / "F.npy")
    kind, message = probe(f"calab.load_suite2p({str(folder)!r}, fs=10.0)")
    assert kind == "ValueError" and "F.npy is a FIFO" in message


def test_minian_store_holding_a_fifo(tmp_path):
    store = files.write_minian_var(tmp_path, files.minian_array(np.ones((2, 10))))
    chunk = store / "C" / "0.0"
    chunk.unlink()
    os.mkfifo(chunk)
    kind, message = probe(f"calab.load_minian({str(tmp_path)!r}, fs=30.0)")
    assert kind == "ValueError" and "0.0 in the zarr store" in message and "FIFO" in message
    os.mkfifo(tmp_path / "pipe.zarr")
    kind, message = probe(f"calab.load_minian({str(tmp_path / 'pipe.zarr')!r})")
    assert kind == "ValueError" and "pipe.zarr is a FIFO" in message


def test_tuning_files_fifo(tmp_path):
    calab.save_for_tuning(np.ones((2, 10)), 30.0, tmp_path / "rec")
    (tmp_path / "rec_metadata.json").unlink()
    os.mkfifo(tmp_path / "rec_metadata.json")
    kind, message = probe(f"calab.load_tuning_data({str(tmp_path / 'rec')!r})")
    assert kind == "ValueError" and "rec_metadata.json is a FIFO" in message


def test_export_json_fifo_and_folder(tmp_path):
    os.mkfifo(tmp_path / "params.json")
    kind, message = probe(f"calab.load_export_params({str(tmp_path / 'params.json')!r})")
    assert kind == "ValueError" and "params.json is a FIFO" in message
    (tmp_path / "folder.json").mkdir()
    with pytest.raises(IsADirectoryError, match="folder.json is a folder"):
        calab.load_export_params(tmp_path / "folder.json")
    exp = calab.export_dict(tau_rise=0.05, tau_decay=0.5, lam=0.01, fs=30.0)
    with pytest.raises(IsADirectoryError, match="folder.json is a folder"):
        calab.write_export(tmp_path / "folder.json", exp, force=True)
    # Writing replaces a FIFO by the file (rename), never opens it.
    (tmp_path / "exp.json").write_text(json.dumps(exp))
    kind, message = probe(
        f"""
        import json
        export = json.loads(open({str(tmp_path / "exp.json")!r}).read())
        calab.write_export({str(tmp_path / "params.json")!r}, export, force=True)
        """
    )
    assert kind == "no error"
    assert calab.load_export_params(tmp_path / "params.json")["fs"] == 30.0


def test_save_for_tuning_replaces_a_fifo_without_opening_it(tmp_path):
    os.mkfifo(tmp_path / "rec.npy")
    stem = str(tmp_path / "rec")
    kind, message = probe(
        f"import numpy\ncalab.save_for_tuning(numpy.ones((2, 5)), 30.0, {stem!r})"
    )
    assert kind == "no error", message
    data, meta = calab.load_tuning_data(tmp_path / "rec")
    assert data.shape == (2, 5) and meta["sampling_rate_hz"] == 30.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.npy", "rec_metadata.json"]


@pytest.mark.parametrize("name", ["res.hdf5", "traces.npy"])
@pytest.mark.parametrize("command", ["info", "deconvolve"])
def test_cli_refuses_a_fifo_input(tmp_path, name, command):
    os.mkfifo(tmp_path / name)
    exe = Path(sys.executable).with_name("calab")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "calab.cli"]
    args = [command, str(tmp_path / name), "--fs", "30"]
    if command == "deconvolve":
        exp = calab.export_dict(tau_rise=0.05, tau_decay=0.5, lam=0.01, fs=30.0)
        calab.write_export(tmp_path / "p.json", exp)
        args += ["--params", str(tmp_path / "p.json"), "-o", str(tmp_path / "o.npy")]
    proc = subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert f"{name} is a FIFO (named pipe), not a regular file" in proc.stderr
