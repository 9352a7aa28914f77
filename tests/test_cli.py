"""The ``calab`` command, run as a subprocess the way users run it: parsing, messages, convert,
tune, and the flags of the CaLab package's command (issue 10). Deconvolution runs are tested in
test_batch.py, opening and ``info`` in io/test_open.py, outputs in io/test_writers.py."""

from __future__ import annotations

import errno
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from _cli_run import CMD, assert_error, digest, files, run

import calab


def test_version_and_help():
    proc = run("--version")
    version = f"calab {calab.__version__} (the cadeconv package; not CaLab's calab on PyPI)"
    assert proc.returncode == 0 and proc.stdout.strip() == version
    proc = run("--help")
    assert proc.returncode == 0
    for command in ("deconvolve", "convert", "info"):
        assert command in proc.stdout
    module = run("--version", cmd=[sys.executable, "-m", "calab.cli"])
    assert module.returncode == 0 and module.stdout == f"{version}\n"


def test_no_command_is_a_usage_error():
    proc = run()
    assert proc.returncode == 2 and "choose a command" in proc.stderr


def test_convert_each_pipeline(tmp_path, data):
    files.write_caiman(tmp_path / "res.hdf5", data, idx_components=np.array([0, 5]))
    before = digest(tmp_path / "res.hdf5")
    proc = run("convert", "res.hdf5", "--format", "caiman", "-o", "rec", "--accepted-only",
               cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["rec.npy", "rec_metadata.json"]
    traces, meta = calab.load_tuning_data(tmp_path / "rec")
    np.testing.assert_array_equal(traces, data[[0, 5]])
    assert meta["sampling_rate_hz"] == 30.0 and meta["source"] == "caiman"
    assert meta["cell_ids"] == [0, 5]
    assert digest(tmp_path / "res.hdf5") == before

    stamp = digest(tmp_path / "rec.npy")
    proc = run("convert", "res.hdf5", "--format", "caiman", "--all-components", "-o", "rec",
               cwd=tmp_path)  # fmt: skip
    assert_error(proc, "rec.npy already exists; pass --force")
    assert digest(tmp_path / "rec.npy") == stamp
    proc = run("convert", "res.hdf5", "--format", "caiman", "--all-components", "-o", "rec",
               "--force", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0 and calab.load_tuning_data(tmp_path / "rec")[0].shape == (6, 300)

    mdir = tmp_path / "minian"
    mdir.mkdir()
    files.write_minian_var(mdir, files.minian_array(data).transpose("frame", "unit_id"))
    proc = run("convert", mdir, "--format", "minian", "-o", "m", cwd=tmp_path)
    assert_error(proc, "pass --fs")
    proc = run("convert", mdir, "--format", "minian", "--fs", "30", "-o", "m", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(calab.load_tuning_data(tmp_path / "m")[0], data)

    folder = files.write_suite2p(tmp_path, data, data / 2, files.iscell_array([1, 1, 0, 1, 1, 1]))
    proc = run("convert", folder, "--format", "suite2p", "-o", "s", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    s, smeta = calab.load_tuning_data(tmp_path / "s")
    assert s.shape == (5, 300) and smeta["sampling_rate_hz"] == 15.0


def test_convert_bad_file(tmp_path):
    (tmp_path / "res.hdf5").write_text("garbage")
    proc = run("convert", "res.hdf5", "--format", "caiman", "-o", "rec", cwd=tmp_path)
    assert_error(proc, "cannot read res.hdf5 as HDF5")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res.hdf5"]


# ----------------------------------------------------------------------------- the CaLab flags


def test_short_flags_of_the_calab_package(tmp_path, data):
    """``-p`` for --params and ``-f`` for --format, as the CaLab package's command (issue 10)."""
    proc = run("deconvolve", "traces.npy", "-p", "params.json", "-o", "a.npy", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    want = calab.deconvolve_from_export(data, tmp_path / "params.json")
    np.testing.assert_array_equal(np.load(tmp_path / "a.npy"), want)
    proc = run("deconvolve", "traces.npy", "--params", "params.json", "--output", "b.npy",
               "--full", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0 and proc.stdout.split() == ["b.npy", "b_info.json"], proc.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "b.npy"), want)
    info = json.loads((tmp_path / "b_info.json").read_text())
    assert set(info) >= {"baseline", "iterations", "converged"}
    files.write_caiman(tmp_path / "res.hdf5", data, idx_components=np.array([0, 5]))
    proc = run("convert", "res.hdf5", "-f", "caiman", "--output", "rec", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(calab.load_tuning_data(tmp_path / "rec")[0], data)


def test_convert_default_output_is_the_input_name_here(tmp_path, data):
    """The CaLab package writes ``<input stem>.npy`` in the current folder without ``-o``."""
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    files.write_caiman(tmp_path / "in" / "res.hdf5", data)
    proc = run("convert", "../in/res.hdf5", "--format", "caiman", "--fs", "30.0",
               cwd=tmp_path / "out")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["res.npy", "res_metadata.json"]
    traces, meta = calab.load_tuning_data(tmp_path / "out" / "res")
    np.testing.assert_array_equal(traces, data)  # every row, as the original
    assert meta["sampling_rate_hz"] == 30.0


def test_convert_minian_with_the_original_flags(tmp_path, data):
    mdir = tmp_path / "minian"
    mdir.mkdir()
    files.write_minian_var(mdir, files.minian_array(data))
    proc = run("convert", "minian", "-f", "minian", "--fs", "20", "-o", "m", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    traces, meta = calab.load_tuning_data(tmp_path / "m")
    np.testing.assert_array_equal(traces, data)
    assert meta["sampling_rate_hz"] == 20.0


def test_accepted_only_flag(tmp_path, data):
    files.write_caiman(tmp_path / "res.hdf5", data, idx_components=np.array([4, 1]))
    for extra, rows in (([], [0, 1, 2, 3, 4, 5]), (["--accepted-only"], [1, 4])):
        proc = run("info", "res.hdf5", "--json", *extra, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["num_cells"] == len(rows)
        proc = run("convert", "res.hdf5", "-o", f"r{len(rows)}", *extra, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        traces, meta = calab.load_tuning_data(tmp_path / f"r{len(rows)}")
        np.testing.assert_array_equal(traces, data[rows])
        assert meta["cell_ids"] == rows
    proc = run("info", "res.hdf5", "--accepted-only", "--all-components", cwd=tmp_path)
    assert proc.returncode == 2 and "not allowed with" in proc.stderr


def test_info_of_an_export_prints_its_parameters(tmp_path, data):
    proc = run("info", "params.json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert "format:        CaTune export (schema 1.2.0)" in lines
    for want in ("tau_rise:      0.05 s", "tau_decay:     0.5 s", "lambda:        0.02",
                 "sampling rate: 30 Hz", "filter:        off"):  # fmt: skip
        assert want in lines, proc.stdout
    proc = run("info", "params.json", "--json", cwd=tmp_path)
    got = json.loads(proc.stdout)
    assert got["format"] == "export" and got["schema_version"] == "1.2.0"
    assert {k: got[k] for k in ("tau_rise", "tau_decay", "lambda_", "fs", "filter_enabled")} == (
        calab.load_export_params(tmp_path / "params.json")
    )
    (tmp_path / "other.json").write_text('{"a": 1}')
    assert_error(run("info", "other.json", cwd=tmp_path), "not a CaTune export")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _start_tune(tmp_path: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [*CMD, "tune", "traces.npy", "--fs", "30", "--no-browser", *extra],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stderr is not None
    url = proc.stderr.readline().strip()  # on stderr, once the server listens
    assert url.startswith("http://127.0.0.1:"), (url, proc.communicate())
    return proc, url


def _export(url: str) -> None:
    from calab import _protocol as P

    base = url.split("/?")[0].split("?")[0].rstrip("/")
    base = "/".join(base.split("/")[:3])
    secret = url.split("bridge_secret=")[1].split("&")[0]
    req = urllib.request.Request(
        f"{base}/api/v1/message",
        data=json.dumps({"message": {"type": P.MSG_EXPORT}}).encode(),
        headers={"Content-Type": "application/json", P.BRIDGE_SECRET_HEADER: secret},
        method="POST",
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200


def test_tune_with_the_original_flags_prints_the_parameters(tmp_path, data):
    port = _free_port()
    proc, url = _start_tune(tmp_path, "--port", str(port), "-o", "ex.json")
    assert url.startswith(f"http://127.0.0.1:{port}")
    _export(url)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    params = json.loads(out)  # stdout holds the parameters only (the URL went to stderr)
    assert params == calab.load_export_params(tmp_path / "ex.json")
    assert params["fs"] == 30.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ex.json", "params.json", "traces.npy"]


def test_tune_force_replaces_the_export_only_when_a_new_one_is_complete(tmp_path, data):
    """Issue 9 item 3: ``tune -o X --force`` deleted X before tuning; a timeout left nothing."""
    before = digest(tmp_path / "params.json")
    proc = run("tune", "traces.npy", "--fs", "30", "--no-browser", "--timeout", "0.5",
               "-o", "params.json", "--force", cwd=tmp_path)  # fmt: skip
    url, error = proc.stderr.split("\n", 1)  # the URL's line comes first, on stderr
    assert url.startswith("http://127.0.0.1:") and proc.stdout == ""
    proc.stderr = error
    assert_error(proc, "no parameters were exported")
    assert digest(tmp_path / "params.json") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.json", "traces.npy"]
    proc, url = _start_tune(tmp_path, "-o", "params.json", "--force", "--timeout", "60")
    _export(url)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert digest(tmp_path / "params.json") != before
    assert json.loads(out) == calab.load_export_params(tmp_path / "params.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.json", "traces.npy"]
    proc = run("tune", "traces.npy", "--fs", "30", "--no-browser", "--timeout", "0.5",
               "-o", "params.json", cwd=tmp_path)  # fmt: skip
    assert_error(proc, "params.json already exists; pass --force")


def test_tune_on_a_port_in_use_says_so(tmp_path, data):
    """Issue 9 item 17: ``[Errno 98] Address already in use``."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = run("tune", "traces.npy", "--fs", "30", "--no-browser", "--timeout", "1",
                   "--port", port, cwd=tmp_path)  # fmt: skip
    assert_error(proc, f"port {port} is in use; choose another --port")
    assert "Errno" not in proc.stderr


def _read_only_folder(tmp_path: Path) -> Path:
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        return ro
    for candidate in (Path("/sys"), Path("/proc/sys")):
        try:
            (candidate / ".calab-probe").touch()
        except OSError as exc:
            if exc.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
                return candidate
    pytest.skip("running as root with no read-only folder to write into")


@pytest.mark.parametrize("command", ["deconvolve", "convert"])
def test_a_read_only_output_folder_is_one_clear_line(tmp_path, data, command):
    """Issue 9 item 17: raw ``[Errno 13]`` / ``[Errno 30]`` lines."""
    ro = _read_only_folder(tmp_path)
    args = ["-p", "params.json", "-o", ro / "a.npy"] if command == "deconvolve" else [
        "-o", ro / "a"]  # fmt: skip
    proc = run(command, "traces.npy", "--fs", "30", *args, cwd=tmp_path)
    assert_error(proc, f"cannot write in {ro}")
    assert "Errno" not in proc.stderr


def test_oserrors_never_print_errno(tmp_path):
    from calab.cli import _message

    exc = FileExistsError(errno.EEXIST, "File exists", str(tmp_path / "a"))
    assert _message(exc) == f"{tmp_path / 'a'}: File exists"
    assert _message(OSError(errno.EADDRINUSE, "Address already in use")) == (
        "Address already in use"
    )


def test_quiet_hides_other_libraries_warnings(tmp_path, data, monkeypatch, capsys):
    """Issue 9 item 18: a ZarrUserWarning reached stderr under -q. Under -q only calab's own
    warnings are printed (one line each); without -q every warning is one line."""
    import warnings

    from calab import batch, cli

    real = batch.open_rows

    def noisy(*args, **kwargs):
        warnings.warn_explicit("zarr says something", UserWarning, "/x/zarr/core.py", 1)
        return real(*args, **kwargs)

    monkeypatch.setattr(batch, "open_rows", noisy)
    base = ["deconvolve", str(tmp_path / "traces.npy"), "-p", str(tmp_path / "params.json")]
    assert cli.main([*base, "-o", str(tmp_path / "a.npy"), "-q"]) == 0
    assert capsys.readouterr().err == ""
    assert cli.main([*base, "-o", str(tmp_path / "b.npy")]) == 0
    assert capsys.readouterr().err == "calab: warning: zarr says something\n"


def test_ctrl_c_outside_deconvolve_says_nothing_was_written(tmp_path, data):
    proc, _ = _start_tune(tmp_path)  # waits for an export that never comes
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip().splitlines() == ["calab: interrupted; no output written"]


def test_info_of_a_npy_with_its_metadata_sidecar(tmp_path, data):
    """The CaLab package's ``calab info rec.npy`` reads ``rec_metadata.json`` beside it."""
    calab.save_for_tuning(data, 20.0, tmp_path / "rec")
    proc = run("info", "rec.npy", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "sampling rate: 20 Hz" in proc.stdout.splitlines()
    assert "shape:         6 cells x 300 timepoints" in proc.stdout.splitlines()
