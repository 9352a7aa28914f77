"""Scripts written for the CaLab Python package (v0.2) run unchanged against calab.

Each test is a call form from the CaLab package's README or signatures, on files written the
way the pipelines write them. The forms calab deliberately answers differently are listed in
the README's "Differences from the CaLab package".
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

import calab

_spec = importlib.util.spec_from_file_location(
    "calab_test_pipeline_files", Path(__file__).parents[1] / "io" / "_pipeline_files.py"
)
assert _spec and _spec.loader
files = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(files)

TR, TD, LAM, FS = 0.02, 0.4, 0.01, 30.0


@pytest.fixture
def traces() -> np.ndarray:
    return calab.simulate(4, 300, FS, TR, TD, seed=11)[0]


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    monkeypatch.chdir(tmp_path)  # the README's relative file names
    return tmp_path


def test_readme_caiman_loader(in_tmp, traces):
    files.write_caiman(in_tmp / "caiman_results.hdf5", traces, idx_components=np.array([2, 0]))
    traces_out, meta = calab.load_caiman("caiman_results.hdf5")
    # Every row of estimates/C, as stored (not only idx_components).
    np.testing.assert_allclose(traces_out, traces)
    assert {k: meta[k] for k in ("source", "sampling_rate_hz", "num_cells", "num_timepoints")} == {
        "source": "caiman",
        "sampling_rate_hz": 30.0,
        "num_cells": 4,
        "num_timepoints": 300,
    }


def test_caiman_signature_forms(in_tmp, traces):
    import h5py

    path = str(files.write_caiman(in_tmp / "res.hdf5", traces))
    with h5py.File(path, "a") as f:
        f["my/traces"] = traces[:2]
        f["my/fs"] = 50.0
    out, meta = calab.load_caiman(path, trace_key="my/traces", fs_key="my/fs")
    assert out.shape == (2, 300) and meta["sampling_rate_hz"] == 50.0
    # fs= still wins over the file's rate, now with a warning naming both (issue 18)
    with pytest.warns(UserWarning, match="fs = 100 Hz was given but .* 50 Hz"):
        out, meta = calab.load_caiman(path, "my/traces", "my/fs", 100.0)
    assert meta["sampling_rate_hz"] == 100.0
    with pytest.warns(UserWarning, match="fs = 100 Hz was given but .* 30 Hz"):
        _, meta = calab.load_caiman(path, fs=100.0)
    assert meta["sampling_rate_hz"] == 100.0
    with h5py.File(path, "a") as f:
        del f["params/data/fr"]
        f["one/C"] = traces[0]
    _, meta = calab.load_caiman(path)
    assert meta["sampling_rate_hz"] is None
    out, meta = calab.load_caiman(path, trace_key="one/C")
    assert out.shape == (1, 300) and meta["num_cells"] == 1


def test_caiman_errors(in_tmp):
    import h5py

    with pytest.raises(FileNotFoundError):
        calab.load_caiman(str(in_tmp / "nonexistent.hdf5"))
    with h5py.File(in_tmp / "empty.hdf5", "w") as f:
        f["other/data"] = np.zeros(10)
    with pytest.raises(KeyError, match="estimates/C"):
        calab.load_caiman(str(in_tmp / "empty.hdf5"))


def test_readme_minian_loader(in_tmp, traces):
    out_dir = in_tmp / "minian_output"
    out_dir.mkdir()
    files.write_minian_var(out_dir, files.minian_array(traces))
    files.write_minian_var(out_dir, files.minian_array(traces * 0.5, name="S"))
    got, meta = calab.load_minian("minian_output/", fs=30.0)
    np.testing.assert_array_equal(got, traces)
    assert (meta["source"], meta["sampling_rate_hz"], meta["num_cells"]) == ("minian", 30.0, 4)
    got, meta = calab.load_minian("minian_output/")
    assert meta["sampling_rate_hz"] is None
    for s, _ in (
        calab.load_minian("minian_output", "S"),
        calab.load_minian("minian_output", trace_key="S", fs=25.0),
        calab.load_minian("minian_output", "S", 25.0),
    ):
        np.testing.assert_array_equal(s, traces * 0.5)
    with pytest.raises(FileNotFoundError):
        calab.load_minian(str(in_tmp / "nonexistent"))
    with pytest.raises(KeyError, match="YrA"):
        calab.load_minian("minian_output", "YrA")


def test_readme_tuning_files(in_tmp, traces):
    calab.save_for_tuning(traces, fs=30.0, path="my_recording")
    assert (in_tmp / "my_recording.npy").is_file()
    assert (in_tmp / "my_recording_metadata.json").is_file()
    calab.save_for_tuning(traces, 30.0, "with_meta", metadata={"animal": "m1"})
    meta = json.loads((in_tmp / "with_meta_metadata.json").read_text())
    assert meta["animal"] == "m1" and meta["sampling_rate_hz"] == 30.0
    data, meta = calab.load_tuning_data("my_recording")
    np.testing.assert_array_equal(data, traces)
    assert meta["sampling_rate_hz"] == 30.0 and meta["num_cells"] == 4
    one, meta = calab.load_tuning_data(calab.save_for_tuning(traces[0], 30.0, "one")[0])
    assert one.shape == (1, 300)


def _web_app_export(path: Path) -> None:
    """A CaTune web-app export (schema 1.1.0)."""
    path.write_text(
        json.dumps(
            {
                "schema_version": "1.1.0",
                "catune_version": "0.9.1",
                "export_date": "2025-01-15T10:00:00.000Z",
                "parameters": {
                    "tau_rise_s": TR,
                    "tau_decay_s": TD,
                    "lambda": LAM,
                    "sampling_rate_hz": FS,
                    "filter_enabled": False,
                },
                "ar2_coefficients": {"g1": 1.0, "g2": -0.2, "decayRoot": 0.9, "riseRoot": 0.2},
                "formulation": {"model": "FISTA"},
                "metadata": {"source_filename": "rec.npy"},
            }
        )
    )


def test_readme_export_json(in_tmp, traces):
    _web_app_export(in_tmp / "catune-params-2025-01-15.json")
    params = calab.load_export_params("catune-params-2025-01-15.json")
    assert params == {
        "tau_rise": 0.02,
        "tau_decay": 0.4,
        "lambda_": 0.01,
        "fs": 30.0,
        "filter_enabled": False,
    }
    activity = calab.deconvolve_from_export(traces, "catune-params-2025-01-15.json")
    want = calab.run_deconvolution(traces, fs=30.0, tau_r=TR, tau_d=TD, lam=LAM)
    np.testing.assert_array_equal(activity, want)
    full = calab.deconvolve_from_export(traces, "catune-params-2025-01-15.json", return_full=True)
    np.testing.assert_array_equal(full.activity, want)
    assert full.baseline.shape == (4,) and full.reconvolution.shape == traces.shape


def test_hand_written_export_without_optional_fields(in_tmp):
    (in_tmp / "mine.json").write_text(
        json.dumps(
            {
                "schema_version": "1.1.0",
                "parameters": {
                    "tau_rise_s": TR,
                    "tau_decay_s": TD,
                    "lambda": LAM,
                    "sampling_rate_hz": FS,
                },
            }
        )
    )
    assert calab.load_export_params("mine.json")["filter_enabled"] is False


def test_readme_deconvolution_and_kernel_math(traces):
    activity = calab.run_deconvolution(traces, fs=30.0, tau_r=0.02, tau_d=0.4, lam=0.01)
    assert activity.shape == traces.shape and (activity >= 0).all()
    result = calab.run_deconvolution_full(traces, fs=30.0, tau_r=0.02, tau_d=0.4, lam=0.01)
    assert result.converged.all() and result.baseline.shape == (4,)
    np.testing.assert_array_equal(calab.run_deconvolution(traces, 30.0, 0.02, 0.4, 0.01), activity)
    # max_iters as the sixth positional argument, as the CaLab package allows.
    capped = calab.run_deconvolution_full(traces, 30.0, 0.02, 0.4, 0.01, 1)
    assert capped.iterations.max() <= 1
    np.testing.assert_array_equal(
        calab.run_deconvolution(traces, 30.0, 0.02, 0.4, 0.01, 1000), activity
    )
    filtered = calab.bandpass_filter(traces[0], tau_rise=0.02, tau_decay=0.4, fs=100.0)
    assert filtered.shape == traces[0].shape
    kernel = calab.build_kernel(tau_rise=0.02, tau_decay=0.4, fs=30.0)
    g1, g2, d, r = calab.tau_to_ar2(tau_rise=0.02, tau_decay=0.4, fs=30.0)
    assert g1 == pytest.approx(d + r) and g2 == pytest.approx(-d * r)
    assert calab.compute_lipschitz(kernel) > 0


def test_tune_takes_the_original_positional_order(traces, capsys):
    # The CaLab package: tune(traces, fs=30.0, timeout=None, port=None, app_url=None,
    # open_browser=True). With open_browser=False the URL is printed; nobody opens it, so the
    # call returns None once the timeout has passed.
    assert calab.tune(traces, FS, 0.5, None, None, False) is None
    url = capsys.readouterr().out.strip()
    assert url.startswith("http://127.0.0.1:")
    with pytest.raises(TypeError):
        calab.tune(traces, FS, 0.5, None, None, False, 0.05)  # start values are keywords
