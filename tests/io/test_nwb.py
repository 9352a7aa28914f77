"""load_nwb, the NWB block reader and the nwb format of open_rows, on files written by pynwb the
way suite2p (``suite2p/io/nwb.py`` save_nwb) and CaImAn (``Estimates.save_NWB``) write them."""

from __future__ import annotations

import json
import os
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import calab
from calab.io.nwb import NwbRows, iter_nwb_blocks
from calab.io.open import default_chunk, detect_format, open_rows, open_traces

pynwb = pytest.importorskip("pynwb")
h5py = pytest.importorskip("h5py")
from hdmf.backends.hdf5 import H5DataIO  # noqa: E402  (after the skip)
from pynwb.ophys import DfOverF, Fluorescence, ImageSegmentation, OpticalChannel  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _cli_run import PARAMS, run  # noqa: E402

FS = 30.0


def _nwbfile(with_plane: bool = True) -> tuple[Any, Any]:
    nwb = pynwb.NWBFile(
        session_description="calab test",
        identifier="calab-test",
        session_start_time=datetime(2024, 1, 1, tzinfo=timezone.utc),
    )
    if not with_plane:
        return nwb, None
    device = nwb.create_device(name="Microscope")
    channel = OpticalChannel(name="OpticalChannel", description="green", emission_lambda=520.0)
    plane = nwb.create_imaging_plane(
        name="ImagingPlane", optical_channel=channel, imaging_rate=FS, description="plane 0",
        device=device, excitation_lambda=920.0, indicator="GCaMP6s", location="V1",
    )  # fmt: skip
    return nwb, plane


def _segmentation(module: Any, plane: Any, n: int, ids: Any = None) -> Any:
    seg = ImageSegmentation()
    module.add(seg)
    ps = seg.create_plane_segmentation(
        name="PlaneSegmentation", description="ROIs", imaging_plane=plane
    )
    for i in range(n):
        mask = np.zeros((4, 4))
        mask[i % 4, (i // 4) % 4] = 1.0
        ps.add_roi(image_mask=mask, id=None if ids is None else int(ids[i]))
    return ps


def _write(nwb: Any, path: Path) -> Path:
    with pynwb.NWBHDF5IO(path, "w") as io:
        io.write(nwb)
    return path


def write_suite2p_nwb(
    path: Path,
    F: np.ndarray,
    *,
    chunks: Any = None,
    ids: Any = None,
    rate: float = FS,
    compression: str | None = None,
) -> Path:
    """suite2p's save_nwb: F, Fneu and spks as RoiResponseSeries named Fluorescence, Neuropil
    and Deconvolved, each in a Fluorescence container of that name in processing/ophys,
    stored frames first, linked to all ROIs of one PlaneSegmentation."""
    nwb, plane = _nwbfile()
    ophys = nwb.create_processing_module(name="ophys", description="optical physiology")
    ps = _segmentation(ophys, plane, F.shape[0], ids)
    region = ps.create_roi_table_region(region=list(range(F.shape[0])), description="all ROIs")
    for name, values in (("Fluorescence", F), ("Neuropil", F * 0.5), ("Deconvolved", F * 0)):
        container = Fluorescence(name=name)
        ophys.add(container)
        data: Any = values.T
        if chunks is not None:
            data = H5DataIO(data=values.T, chunks=chunks, compression=compression)
        container.create_roi_response_series(
            name=name, data=data, rois=region, unit="lumens", rate=rate
        )
    return _write(nwb, path)


def write_caiman_nwb(
    path: Path, C: np.ndarray, *, timestamps: Any = None, dff: bool = False
) -> Path:
    """CaImAn's save_NWB: one Fluorescence container holding RoiResponseSeries (the neurons)
    and Background_Fluorescence_Response (background components, extra rows of the same
    PlaneSegmentation), both with timestamps; optionally a DfOverF series."""
    n, t = C.shape
    nwb, plane = _nwbfile()
    ophys = nwb.create_processing_module(name="ophys", description="caiman estimates")
    ps = _segmentation(ophys, plane, n + 1)
    rois = ps.create_roi_table_region(region=list(range(n)), description="ROIs")
    background = ps.create_roi_table_region(region=[n], description="Background")
    stamps = np.arange(t) / FS + 5.0 if timestamps is None else timestamps
    fl = Fluorescence()
    ophys.add(fl)
    fl.create_roi_response_series(
        name="RoiResponseSeries", data=C.T, rois=rois, unit="lumens", timestamps=stamps
    )
    fl.create_roi_response_series(
        name="Background_Fluorescence_Response", data=np.ones((t, 1)), rois=background,
        unit="lumens", timestamps=stamps,
    )  # fmt: skip
    if dff:
        d = DfOverF()
        ophys.add(d)
        d.create_roi_response_series(
            name="RoiResponseSeries", data=C.T / 2, rois=rois, unit="n.a.", timestamps=stamps
        )
    return _write(nwb, path)


@pytest.fixture
def traces() -> np.ndarray:
    return np.random.default_rng(3).normal(1.0, 0.2, size=(6, 200)).astype(np.float32)


# ---- reading


def test_suite2p_layout_round_trip(tmp_path, traces):
    path = write_suite2p_nwb(tmp_path / "s2p.nwb", traces, ids=[7, 3, 9, 11, 12, 20])
    out, meta = calab.load_nwb(path)
    np.testing.assert_array_equal(out, traces.astype(np.float64))  # exact, cells as rows
    assert out.dtype == np.float64 and out.flags.c_contiguous
    assert meta["source"] == "nwb"
    assert meta["sampling_rate_hz"] == FS
    assert (meta["num_cells"], meta["num_timepoints"]) == (6, 200)
    assert meta["cell_ids"] == [7, 3, 9, 11, 12, 20]
    assert meta["series"] == "/processing/ophys/Fluorescence/Fluorescence"
    assert meta["path"] == str(path)
    assert meta["nwb_version"].startswith("2.")


def test_series_by_name_or_path_and_fs_override(tmp_path, traces):
    path = write_suite2p_nwb(tmp_path / "s2p.nwb", traces)
    neuropil, meta = calab.load_nwb(path, series="Neuropil", fs=15.0)
    np.testing.assert_array_equal(neuropil, traces.astype(np.float64) * 0.5)
    assert meta["series"] == "/processing/ophys/Neuropil/Neuropil"
    assert meta["sampling_rate_hz"] == 15.0
    spks, _ = calab.load_nwb(path, series="processing/ophys/Deconvolved/Deconvolved")
    assert not spks.any()
    with pytest.raises(KeyError, match=r"series='F' matches no ROI response series.*Neuropil"):
        calab.load_nwb(path, series="F")


def test_caiman_layout_rate_from_timestamps_and_rois_region(tmp_path, traces):
    path = write_caiman_nwb(tmp_path / "cnm.nwb", traces)
    out, meta = calab.load_nwb(path)
    np.testing.assert_array_equal(out, traces.astype(np.float64))
    assert meta["sampling_rate_hz"] == pytest.approx(FS, rel=1e-9)
    assert meta["series"] == "/processing/ophys/Fluorescence/RoiResponseSeries"
    assert meta["cell_ids"] == list(range(6))  # the background row is not a cell of it
    bg, bg_meta = calab.load_nwb(path, series="Background_Fluorescence_Response")
    assert bg.shape == (1, 200) and bg_meta["cell_ids"] == [6]


def test_two_fluorescence_like_series_are_listed(tmp_path, traces):
    path = write_caiman_nwb(tmp_path / "cnm.nwb", traces, dff=True)
    with pytest.raises(ValueError, match="2 fluorescence-like") as err:
        calab.load_nwb(path)
    msg = str(err.value)
    assert str(path) in msg and "series=" in msg
    for series in ("DfOverF/RoiResponseSeries", "Fluorescence/RoiResponseSeries", "Background"):
        assert series in msg
    with pytest.raises(KeyError, match="names several series"):
        calab.load_nwb(path, series="RoiResponseSeries")
    dff, _ = calab.load_nwb(path, series="/processing/ophys/DfOverF/RoiResponseSeries")
    np.testing.assert_array_equal(dff, traces.astype(np.float64) / 2)


def test_irregular_timestamps_are_refused_unless_fs_is_given(tmp_path, traces):
    stamps = np.arange(200) / FS
    stamps[100:] += 0.5  # a gap of half a second
    path = write_caiman_nwb(tmp_path / "gap.nwb", traces, timestamps=stamps)
    with pytest.raises(ValueError, match=r"timestamps in .*gap\.nwb are irregular.*fs="):
        calab.load_nwb(path)
    _, meta = calab.load_nwb(path, fs=FS)
    assert meta["sampling_rate_hz"] == FS


def test_rois_first_orientation_is_transposed(tmp_path, traces):
    path = write_suite2p_nwb(tmp_path / "s2p.nwb", traces)
    with h5py.File(path, "r+") as f:  # a writer that stored (n_rois, n_frames)
        key = "processing/ophys/Fluorescence/Fluorescence/data"
        del f[key]
        f[key] = traces
    out, meta = calab.load_nwb(path)
    np.testing.assert_array_equal(out, traces.astype(np.float64))
    assert (meta["num_cells"], meta["num_timepoints"]) == (6, 200)
    with open_rows(path) as src:
        np.testing.assert_array_equal(src.data[2:5], traces[2:5].astype(np.float64))


def test_single_roi_series_and_nan_named_by_roi_id(tmp_path, traces):
    bad = traces.copy()
    bad[2, 7] = np.nan
    path = write_suite2p_nwb(tmp_path / "nan.nwb", bad, ids=[1, 2, 30, 4, 5, 6])
    with pytest.raises(ValueError, match=r"cell ids 30\b"):
        calab.load_nwb(path)
    info = open_traces(path, check=False)
    assert np.isnan(info.data[2, 7])


# ---- bad files


def _with(path: Path, change: Any) -> Path:
    with h5py.File(path, "r+") as f:
        change(f)
    return path


def test_no_ophys_module(tmp_path):
    nwb, _ = _nwbfile(with_plane=False)
    path = _write(nwb, tmp_path / "empty.nwb")
    with pytest.raises(ValueError, match=r"empty\.nwb holds no ROI response series.*no ophys"):
        calab.load_nwb(path)


def test_empty_series(tmp_path):
    path = write_suite2p_nwb(tmp_path / "s2p.nwb", np.zeros((3, 0), dtype=np.float32))
    with pytest.raises(ValueError, match=r"Fluorescence/data in .*s2p\.nwb is empty"):
        calab.load_nwb(path)


@pytest.mark.parametrize("version", ["3.0.0", "1.0.5", "banana"])
def test_unsupported_schema_version(tmp_path, traces, version):
    path = write_suite2p_nwb(tmp_path / "s2p.nwb", traces)
    _with(path, lambda f: f.attrs.__setitem__("nwb_version", version))
    with pytest.raises(ValueError, match=rf"s2p\.nwb declares NWB schema version '{version}'"):
        calab.load_nwb(path)


def test_nwb_1_file_is_refused(tmp_path):
    path = tmp_path / "old.nwb"
    with h5py.File(path, "w") as f:
        f["nwb_version"] = "NWB-1.0.6"
    with pytest.raises(ValueError, match=r"old\.nwb is an NWB 1\.x file"):
        calab.load_nwb(path)


def test_hdf5_that_is_not_nwb_and_file_that_is_not_hdf5(tmp_path, traces):
    plain = tmp_path / "plain.nwb"
    with h5py.File(plain, "w") as f:
        f["data"] = traces
    with pytest.raises(ValueError, match=r"plain\.nwb is an HDF5 file but not NWB"):
        calab.load_nwb(plain)
    text = tmp_path / "text.nwb"
    text.write_text("not hdf5")
    with pytest.raises(OSError, match=r"text\.nwb as NWB: it is not an HDF5 file"):
        calab.load_nwb(text)


def test_truncated_file(tmp_path, traces):
    path = write_suite2p_nwb(tmp_path / "s2p.nwb", traces)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises((OSError, ValueError), match=r"s2p\.nwb"):
        calab.load_nwb(path)


def test_external_link_is_refused_and_never_followed(tmp_path, traces):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["secret"] = np.arange(3)
    path = write_suite2p_nwb(tmp_path / "s2p.nwb", traces)
    _with(path, lambda f: f.__setitem__("acquisition/ext", h5py.ExternalLink(other, "/secret")))
    other.unlink()  # following the link would fail differently
    with pytest.raises(ValueError, match=r"s2p\.nwb holds external links.*acquisition/ext"):
        calab.load_nwb(path)


def test_declared_size_beyond_the_stored_data(tmp_path, traces):
    path = write_suite2p_nwb(tmp_path / "s2p.nwb", traces)
    key = "processing/ophys/Fluorescence/Fluorescence/data"

    def huge(f: Any) -> None:  # 4 TB declared, one chunk written
        del f[key]
        ds = f.create_dataset(key, shape=(10**9, 6), chunks=(100, 6), dtype="f8")
        ds[:100] = 1.0

    _with(path, huge)
    with pytest.raises(ValueError, match=r"declares shape \(1000000000, 6\).*stores only"):
        calab.load_nwb(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_fifo_named_nwb_is_refused_unopened(tmp_path):
    fifo = tmp_path / "pipe.nwb"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match=r"pipe\.nwb is a FIFO"):
        calab.load_nwb(fifo)  # opening it would block


def test_timestamps_declared_beyond_the_stored_data(tmp_path, traces):
    path = write_caiman_nwb(tmp_path / "cnm.nwb", traces)
    key = "processing/ophys/Fluorescence/RoiResponseSeries/timestamps"

    def sparse(f: Any) -> None:  # 200 times declared, a chunk of 50 written
        del f[key]
        f.create_dataset(key, shape=(200,), chunks=(50,), dtype="f8")[:50] = 1.0

    _with(path, sparse)
    with pytest.raises(ValueError, match=r"timestamps in .*cnm\.nwb declares shape \(200,\)"):
        calab.load_nwb(path)


def test_missing_pynwb_names_the_extra(tmp_path, traces, monkeypatch):
    path = write_suite2p_nwb(tmp_path / "s2p.nwb", traces)
    monkeypatch.setitem(sys.modules, "pynwb", None)
    with pytest.raises(
        ImportError, match=r"pynwb is needed for reading NWB files.*pip install pynwb"
    ):
        calab.load_nwb(path)


# ---- streaming


def _rchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


@pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="needs Linux /proc/self/io")
def test_time_chunked_file_is_read_about_twice_in_blocks(tmp_path):
    # 24 MB: three times HDF5's chunk cache (8 MB), which would hide repeated reads
    traces = np.random.default_rng(5).normal(size=(120, 50_000)).astype(np.float32)
    # every ROI in each chunk, compressed (as NWB converters write): any block of cells
    # decompresses every chunk
    path = write_suite2p_nwb(tmp_path / "big.nwb", traces, chunks=(1000, 120), compression="gzip")
    with h5py.File(path, "r") as f:
        stored = f["processing/ophys/Fluorescence/Fluorescence/data"].id.get_storage_size()
    before = _rchar()
    blocks = list(iter_nwb_blocks(path, 10))
    read = _rchar() - before
    assert [start for start, _ in blocks] == list(range(0, 120, 10))
    np.testing.assert_array_equal(np.vstack([b for _, b in blocks]), traces.astype(np.float64))
    # 12 blocks each decompressing every chunk would read the data 12 times; the series is
    # read once and its cell-major copy once
    assert read < stored + 1.2 * traces.nbytes + 2_000_000, (read, stored, traces.nbytes)


def test_temporary_copy_that_cannot_be_written_is_named(tmp_path, monkeypatch):
    traces = np.random.default_rng(7).normal(size=(8, 300)).astype(np.float32)
    path = write_suite2p_nwb(tmp_path / "s2p.nwb", traces, chunks=(50, 8))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "gone"))  # TMPDIR removed
    with NwbRows(path) as src:
        with pytest.raises(OSError, match=r"cell-major copy of .*s2p\.nwb.*gone.*set TMPDIR"):
            src.rows(0, 1)


def test_roi_chunked_file_is_read_directly(tmp_path):
    traces = np.random.default_rng(6).normal(size=(40, 300)).astype(np.float32)
    path = write_suite2p_nwb(tmp_path / "roi.nwb", traces, chunks=(300, 8))
    with NwbRows(path) as src:
        assert src.storage_rows == 8
        np.testing.assert_array_equal(src.rows(8, 24), traces[8:24].astype(np.float64))
        assert src._spill is None  # whole chunks of ROIs: no copy needed
        np.testing.assert_array_equal(src.rows(3, 4), traces[3:4].astype(np.float64))
        assert src._spill is not None  # one ROI of an 8-ROI chunk: copied once


def test_open_rows_detects_nwb_and_streams_blocks(tmp_path, traces):
    path = write_suite2p_nwb(tmp_path / "s2p.nwb", traces, chunks=(50, 6))
    assert detect_format(path) == "nwb"
    with open_rows(path) as src:
        assert src.format == "nwb" and src.fs == FS and src.shape == (6, 200)
        assert src.meta["cell_ids"] == list(range(6)) and src.inputs == (path,)
        assert default_chunk(src) == 6
        np.testing.assert_array_equal(src.data[1:4], traces[1:4].astype(np.float64))
        np.testing.assert_array_equal(src.data[[5, 0], 3:9], traces[[5, 0], 3:9])
    with open_rows(path, series="Neuropil", format="nwb") as src:
        np.testing.assert_array_equal(src.data[0:6], traces.astype(np.float64) * 0.5)


def test_dask_view_of_nwb_rows(tmp_path):
    da = pytest.importorskip("dask.array")
    traces, _ = calab.simulate(n_cells=9, n_frames=600, seed=4)
    path = write_suite2p_nwb(tmp_path / "s2p.nwb", traces.astype(np.float32), chunks=(100, 9))
    args = dict(fs=FS, tau_r=0.05, tau_d=0.5, lam=0.02)
    with open_rows(path) as src:
        lazy = calab.run_deconvolution(da.from_array(src.data, chunks=(4, -1)), **args)
        out = lazy.compute(scheduler="synchronous")
    ref = calab.run_deconvolution(traces.astype(np.float32).astype(np.float64), **args)
    np.testing.assert_array_equal(out, ref)


# ---- the command line


def test_cli_info_and_deconvolve_to_h5(tmp_path):
    traces, _ = calab.simulate(n_cells=12, n_frames=900, seed=8)
    values = traces.astype(np.float32)
    write_suite2p_nwb(tmp_path / "rec.nwb", values, chunks=(128, 12))
    (tmp_path / "export.json").write_text(json.dumps(calab.export_dict(**PARAMS)))
    info = run("info", "rec.nwb", cwd=tmp_path)
    assert info.returncode == 0, info.stderr
    assert "nwb" in info.stdout and "12" in info.stdout and "900" in info.stdout
    proc = run(
        "deconvolve", "rec.nwb", "-p", "export.json", "-o", "out.h5", "--chunk-size", "5",
        cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    ref = calab.run_deconvolution(values.astype(np.float64), 30.0, 0.05, 0.5, 0.02)
    with h5py.File(tmp_path / "out.h5", "r") as f:
        np.testing.assert_array_equal(f["activity"][:], ref)
    forced = run("info", "rec.nwb", "-f", "nwb", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
