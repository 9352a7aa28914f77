"""load_suite2p on folders of real .npy files, as suite2p writes them."""

from __future__ import annotations

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
