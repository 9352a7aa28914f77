"""Outputs (calab.io.writers): the .npy/.h5/.zarr writers, atomic commits, JSON without NaN, and
the refusal of unsafe outputs (inside an input, a folder where a file goes, links)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import zarr

import calab
from calab.io.writers import (
    check_outputs,
    commit,
    dumps_json,
    write_json_atomic,
    write_text_atomic,
    writer_for,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the helpers of tests/
from _cli_run import PARAMS, assert_error, digest, files, run  # noqa: E402


@pytest.mark.parametrize("suffix", [".npy", ".h5", ".zarr"])
def test_deconvolve_full(tmp_path, data, suffix):
    out = tmp_path / f"act{suffix}"
    proc = run("deconvolve", "traces.npy", "--params", "params.json", "-o", out.name, "--full",
               "--chunk-size", "4", cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    want = calab.run_deconvolution_full(data, 30.0, 0.05, 0.5, 0.02)
    info_name = "act_info.json" if suffix == ".npy" else f"act_{suffix[1:]}_info.json"
    info = json.loads((tmp_path / info_name).read_text())
    np.testing.assert_allclose(info["baseline"], want.baseline, rtol=0, atol=0)
    assert info["iterations"] == want.iterations.tolist()
    assert info["converged"] == want.converged.tolist()
    assert (info["num_cells"], info["num_timepoints"], info["sampling_rate_hz"]) == (6, 300, 30.0)
    if suffix == ".npy":
        activity = np.load(out)
    elif suffix == ".h5":
        with h5py.File(out, "r") as f:
            activity = f["activity"][()]
            np.testing.assert_array_equal(f["baseline"][()], want.baseline)
            np.testing.assert_array_equal(f["converged"][()], want.converged)
    else:
        group = zarr.open_group(str(out), mode="r")
        activity = group["activity"][:]
        np.testing.assert_array_equal(group["iterations"][:], want.iterations)
    np.testing.assert_array_equal(activity, want.activity)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_writers_round_trip_and_reopen(tmp_path):
    res = calab.run_deconvolution_full(
        calab.simulate(5, 120, 30.0, 0.05, 0.5, seed=2)[0], 30.0, 0.05, 0.5, 0.02
    )
    for suffix in (".npy", ".h5", ".zarr"):
        path = tmp_path / f"w{suffix}"
        cls = writer_for(path)
        w = cls(path, (5, 120), True, {"calab_version": "x", "parameters": {"a": 1}})
        first = type(res)(*(np.asarray(f)[:3] for f in res))
        w.write(0, first)
        w.close()
        again = cls(path, (5, 120), True, {}, True)
        again.check()
        np.testing.assert_array_equal(again.read(0, 3)["activity"], res.activity[:3])
        if suffix != ".npy":
            np.testing.assert_array_equal(again.read(0, 3)["converged"], res.converged[:3])
        again.close()
        with pytest.raises(ValueError, match="shape"):
            bad = cls(path, (6, 120), True, {}, True)
            bad.check()
    with pytest.raises(ValueError, match="must end in .npy, .h5 or .zarr"):
        writer_for(tmp_path / "a.csv")


def test_json_writers_refuse_nan(tmp_path):
    """Issue 9 item 8: ``--full`` wrote NaN into _info.json (invalid JSON)."""
    with pytest.raises(ValueError, match="the info holds NaN or Inf, which JSON cannot store"):
        dumps_json({"baseline": [1.0, float("nan")]}, "the info")
    with pytest.raises(ValueError, match="NaN or Inf"):
        write_json_atomic(tmp_path / "a.json", {"x": float("inf")}, "x")
    assert list(tmp_path.iterdir()) == []
    write_json_atomic(tmp_path / "a.json", {"x": 1.5}, "x")
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": 1.5}


def test_temporary_files_never_follow_planted_links(tmp_path):
    """Issue 9 item 4: a predictable temporary name was written through a planted symlink."""
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    for name in (".a.json.tmp", ".a.json.partial", ".a.json.partial.json.tmp"):
        os.symlink(victim, tmp_path / name)
    write_text_atomic(tmp_path / "a.json", "new")
    assert victim.read_text() == "keep" and (tmp_path / "a.json").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir() if not p.is_symlink()) == [
        "a.json", "victim.txt"
    ]  # fmt: skip


def test_check_outputs_refuses_outputs_inside_inputs(tmp_path):
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    f = folder / "F.npy"
    f.write_bytes(b"x")
    (tmp_path / "out.zarr" / "C.zarr").mkdir(parents=True)
    for out, inputs, msg in (
        (f, [f], "is an input file"),
        (folder, [folder], "is an input folder"),
        (folder / "sub" / "a.npy", [folder], "is inside the input folder"),
        (tmp_path / "out.zarr", [tmp_path / "out.zarr" / "C.zarr"], "is inside"),
    ):
        for force in (False, True):
            with pytest.raises(ValueError, match=msg):
                check_outputs([out], inputs, force)
    link = tmp_path / "link.npy"
    os.symlink(f, link)
    with pytest.raises(ValueError, match="is an input file"):
        check_outputs([link], [f], True)
    hard = tmp_path / "hard.npy"
    os.link(f, hard)
    with pytest.raises(ValueError, match="is an input file"):
        check_outputs([hard], [f], True)
    with pytest.raises(FileNotFoundError, match="output folder does not exist"):
        check_outputs([tmp_path / "no" / "a.npy"], [], True)
    check_outputs([tmp_path / "new.npy"], [f, folder], False)


def test_force_never_replaces_a_folder_with_a_file(tmp_path, data):
    """Issue 9 item 18: ``--force`` onto a folder named d.npy deleted the folder."""
    for name, message in (("d.npy", "d.npy is a folder; calab replaces only a file there"),
                          ("other.zarr", "is not a zarr store written by calab")):  # fmt: skip
        folder = tmp_path / name
        folder.mkdir()
        (folder / "precious.txt").write_text("data")
        proc = run("deconvolve", "traces.npy", "-p", "params.json", "-o", name, "--force",
                   cwd=tmp_path)  # fmt: skip
        assert_error(proc, message)
        assert (folder / "precious.txt").read_text() == "data"
    # a calab output is replaced
    for _ in range(2):
        proc = run("deconvolve", "traces.npy", "-p", "params.json", "-o", "act.zarr", "--force",
                   cwd=tmp_path)  # fmt: skip
        assert proc.returncode == 0, proc.stderr
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_commit_replaces_a_folder_whole(tmp_path):
    final = tmp_path / "a.zarr"
    final.mkdir()
    (final / "old").write_text("old")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    (tmp / "new").write_text("new")
    commit(tmp, final)
    assert sorted(p.name for p in final.iterdir()) == ["new"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zarr"]


def test_outputs_inside_an_input_are_refused_even_with_force(tmp_path, data):
    """Issue 9 item 2: ``-o suite2p/plane0/F.npy --force`` or Minian's own C.zarr replaced the
    input."""
    F = data + 50
    folder = files.write_suite2p(tmp_path, F, F / 4, files.iscell_array([1] * 6), fs=30.0)
    target = folder / "plane0" / "F.npy"
    before = digest(target)
    proc = run("deconvolve", folder, "-p", "params.json", "-o", target, "--force", cwd=tmp_path)
    assert_error(proc, "is inside the input folder")
    assert digest(target) == before
    proc = run("convert", folder, "-o", folder / "plane0" / "F", "--force", cwd=tmp_path)
    assert_error(proc, "is inside the input folder")
    assert digest(target) == before

    mdir = tmp_path / "minian"
    mdir.mkdir()
    store = files.write_minian_var(mdir, files.minian_array(data))
    listing = sorted(str(p.relative_to(store)) for p in store.rglob("*"))
    for given in (mdir, store):
        proc = run("deconvolve", given, "--fs", "30", "-p", "params.json", "-o", store,
                   "--force", cwd=tmp_path)  # fmt: skip
        assert_error(proc, "input")
    assert sorted(str(p.relative_to(store)) for p in store.rglob("*")) == listing
    np.testing.assert_array_equal(calab.load_minian(mdir, 30.0)[0], data)
    # the export passed with -p is an input too
    calab.write_export(tmp_path / "x_info.json", calab.export_dict(**PARAMS))
    proc = run("deconvolve", "traces.npy", "-p", "x_info.json", "-o", "x.npy", "--force",
               "--full", cwd=tmp_path)  # fmt: skip
    assert_error(proc, "x_info.json is an input file")
