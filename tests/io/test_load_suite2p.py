"""load_suite2p on folders of real .npy files, as suite2p writes them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from _pipeline_files import iscell_array, write_suite2p

import calab


@pytest.fixture
def planes():
    rng = np.random.default_rng(2)
    F = rng.normal(100, 5, size=(4, 80)).astype(np.float32)
    Fneu = rng.normal(40, 2, size=(4, 80)).astype(np.float32)
    return F, Fneu, iscell_array([1, 0, 1, 1])


def test_suite2p_folder(tmp_path, planes):
    F, Fneu, iscell = planes
    folder = write_suite2p(tmp_path, F, Fneu, iscell, fs=15.0)
    out, meta = calab.load_suite2p(folder)
    expected = F.astype(np.float64) - 0.7 * Fneu.astype(np.float64)
    np.testing.assert_allclose(out, expected[[0, 2, 3]], rtol=1e-12)
    assert out.dtype == np.float64 and out.flags.c_contiguous
    assert meta["source"] == "suite2p"
    assert meta["sampling_rate_hz"] == 15.0
    assert (meta["num_cells"], meta["num_timepoints"]) == (3, 80)
    assert meta["cell_ids"] == [0, 2, 3]


def test_plane_folder_and_parent_folder(tmp_path, planes):
    F, Fneu, iscell = planes
    folder = write_suite2p(tmp_path, F, Fneu, iscell)
    a, _ = calab.load_suite2p(folder / "plane0")
    b, _ = calab.load_suite2p(tmp_path)
    np.testing.assert_array_equal(a, b)


def test_all_rois_without_neuropil(tmp_path, planes):
    F, Fneu, iscell = planes
    folder = write_suite2p(tmp_path, F, Fneu, iscell)
    out, meta = calab.load_suite2p(folder, neuropil_coef=0.0, cells_only=False)
    np.testing.assert_array_equal(out, F.astype(np.float64))
    assert meta["num_cells"] == 4


def test_missing_ops_needs_fs(tmp_path, planes):
    F, Fneu, iscell = planes
    folder = write_suite2p(tmp_path, F, Fneu, iscell, fs=None)
    with pytest.raises(FileNotFoundError, match="ops.npy.*fs="):
        calab.load_suite2p(folder)
    _, meta = calab.load_suite2p(folder, fs=9.0)
    assert meta["sampling_rate_hz"] == 9.0


def test_missing_files(tmp_path, planes):
    F, Fneu, iscell = planes
    folder = write_suite2p(tmp_path, F, Fneu, iscell)
    (folder / "plane0" / "Fneu.npy").unlink()
    with pytest.raises(FileNotFoundError, match="no Fneu.npy.*neuropil_coef=0"):
        calab.load_suite2p(folder)
    (folder / "plane0" / "iscell.npy").unlink()
    with pytest.raises(FileNotFoundError, match="no iscell.npy.*cells_only=False"):
        calab.load_suite2p(folder, neuropil_coef=0)
    with pytest.raises(FileNotFoundError, match="no F.npy .*plane3.*has: plane0"):
        calab.load_suite2p(folder, plane=3)
    with pytest.raises(FileNotFoundError, match="no F.npy"):
        calab.load_suite2p(tmp_path / "suite2p" / "plane0" / "..", plane=1)


def test_not_a_suite2p_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="holds: notes.txt"):
        calab.load_suite2p(tmp_path)
    with pytest.raises(NotADirectoryError):
        calab.load_suite2p(tmp_path / "notes.txt")


def test_mismatched_shapes(tmp_path, planes):
    F, Fneu, _ = planes
    folder = write_suite2p(tmp_path, F, Fneu, iscell_array([1, 1]))
    with pytest.raises(ValueError, match=r"iscell.npy has shape \(2, 2\) but F.npy has 4 ROIs"):
        calab.load_suite2p(folder)


def test_nan_rois_are_named(tmp_path, planes):
    F, Fneu, iscell = planes
    F = F.copy()
    F[2, 10] = np.nan
    folder = write_suite2p(tmp_path, F, Fneu, iscell)
    with pytest.raises(ValueError, match=r"cell ids 2\)"):
        calab.load_suite2p(folder)


class _Planted:
    """What a hostile ops.npy holds: unpickling it would run a command."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_real_ops_npy_is_read_without_pickle_code(tmp_path, planes):
    F, Fneu, iscell = planes
    folder = write_suite2p(tmp_path, F, Fneu, iscell, fs=None)
    # An ops dict as suite2p saves it: np.save of a dict with arrays, numpy scalars, strings,
    # lists, nested dicts, None and bools.
    ops = {
        "fs": np.float64(30.5),
        "nframes": np.int64(80),
        "tau": 1.0,
        "meanImg": np.arange(12, dtype=np.float32).reshape(3, 4),
        "filelist": ["a.tif", "b.tif"],
        "data_path": ["/data"],
        "xrange": np.array([0, 64]),
        "nested": {"snr": (1, 2.5, "x"), "flag": True, "none": None, "c": 1 + 2j},
        "save_path": str(folder / "plane0"),
    }
    np.save(folder / "plane0" / "ops.npy", ops)
    out, meta = calab.load_suite2p(folder)
    assert meta["sampling_rate_hz"] == 30.5
    from calab.io.suite2p import read_ops

    got = read_ops(folder / "plane0" / "ops.npy").item()
    assert got.keys() == ops.keys()
    np.testing.assert_array_equal(got["meanImg"], ops["meanImg"])
    assert got["nested"] == ops["nested"] and got["filelist"] == ops["filelist"]
    assert type(got["nframes"]) is np.int64


def test_planted_pickle_does_not_run(tmp_path, planes):
    F, Fneu, iscell = planes
    folder = write_suite2p(tmp_path, F, Fneu, iscell, fs=None)
    marker = tmp_path / "pwned"
    np.save(folder / "plane0" / "ops.npy", {"fs": 30.0, "x": _Planted(marker)})
    with pytest.raises(ValueError, match=r"ops.npy asks to run posix.system.*Pass fs="):
        calab.load_suite2p(folder)
    assert not marker.exists()
    out, meta = calab.load_suite2p(folder, fs=12.0)  # given fs, ops.npy is not read
    assert meta["sampling_rate_hz"] == 12.0
    exe = Path(sys.executable).with_name("calab")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "calab.cli"]
    proc = subprocess.run([*cmd, "info", str(folder)], capture_output=True, text=True, timeout=120)
    assert not marker.exists()
    assert proc.returncode != 0 and "asks to run posix.system" in proc.stderr
    assert "--fs" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([1, 2, 3], r"holds an array of shape \(3,\) and dtype int64"),
        ([{"fs": 1.0}, "x"], r"holds an array of shape \(2,\) and dtype object"),
    ],
)
def test_ops_that_is_not_a_dict(tmp_path, planes, content, message):
    F, Fneu, iscell = planes
    folder = write_suite2p(tmp_path, F, Fneu, iscell, fs=None)
    np.save(
        folder / "plane0" / "ops.npy",
        np.array(content, dtype=object if isinstance(content[0], dict) else None),
    )
    with pytest.raises(ValueError, match=message + r".*pass fs="):
        calab.load_suite2p(folder)


def test_corrupt_ops_names_the_file(tmp_path, planes):
    F, Fneu, iscell = planes
    folder = write_suite2p(tmp_path, F, Fneu, iscell)
    ops = folder / "plane0" / "ops.npy"
    ops.write_bytes(ops.read_bytes()[:-20])
    with pytest.raises(
        ValueError, match=r"cannot read .*ops.npy \(UnpicklingError: .*truncated.*pass fs="
    ):
        calab.load_suite2p(folder)


def test_numpy_scalar_neuropil_coef(tmp_path, planes):
    F, Fneu, iscell = planes
    folder = write_suite2p(tmp_path, F, Fneu, iscell)
    a, meta = calab.load_suite2p(folder, neuropil_coef=np.float32(0.5))
    b, _ = calab.load_suite2p(folder, neuropil_coef=0.5)
    np.testing.assert_array_equal(a, b)
    assert meta["neuropil_coef"] == 0.5
    with pytest.raises(TypeError, match="neuropil_coef must be a number"):
        calab.load_suite2p(folder, neuropil_coef=np.bool_(True))
