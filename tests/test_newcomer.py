"""A newcomer's first hour (issue 18) and the info files of issue 22 item 27.

The right package, warnings on unit and orientation slips, a warning on drifting traces,
outputs that record how they were made, Minian-style zarr outputs, clear messages, examples
and README that hold, a quiet end on a closed pipe, and both spellings of the time constants.
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from _cli_run import CMD, PARAMS, assert_error, files, run

import calab

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
FS = 30.0


def _section(heading: str) -> str:
    start = README.index(heading)
    nxt = re.search(r"\n#{2,3} ", README[start + len(heading) :])
    return README[start : start + len(heading) + (nxt.start() if nxt else len(README))]


@pytest.fixture
def caiman(tmp_path: Path) -> np.ndarray:
    """Ten GCaMP6f-like cells (100 s at 30 Hz) in CaImAn's layout, 5 of them accepted."""
    traces, _ = calab.simulate(10, 3000, FS, indicator="GCaMP6f", seed=4)
    files.write_caiman(tmp_path / "res.hdf5", traces, fr=FS, idx_components=[1, 3, 5, 7, 9])
    calab.write_export(tmp_path / "params.json", calab.export_dict(**PARAMS))
    return traces


# ----------------------------------------------------------------------------- 1. the package


def test_the_distribution_is_not_the_calab_package_on_pypi() -> None:
    """`pip install calab` gets the CaLab package 0.3.0, another project with this import name."""
    from importlib.metadata import version

    name = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["name"]
    assert name != "calab" and calab.DISTRIBUTION == name
    assert version(name) == calab.__version__
    makefile = (ROOT / "Makefile").read_text()
    assert f"rm -f $(DIST)/{name}-*.whl $(DIST)/{name}-*.tar.gz" in makefile
    proc = run("--version")
    assert proc.returncode == 0 and name in proc.stdout and "not CaLab's" in proc.stdout


def test_readme_installs_this_package_and_only_it() -> None:
    install = _section("## Install")
    commands = re.findall(r"^\s*(pip install .*?)(?:\s+#.*)?$", install, flags=re.M)
    assert commands, "the Install section shows no pip command"
    for command in commands:
        for req in command.split()[2:]:
            if req.startswith("-"):
                continue
            target = req.strip("\"'").split("[")[0]
            # a local path (the clone or a built wheel), never a name looked up on PyPI
            assert target.startswith((".", "/", "dist/")) or target.endswith(".whl"), command
    assert "CaLab package" in install and calab.DISTRIBUTION in install
    assert f"dist/{calab.DISTRIBUTION}-{calab.__version__}-" in install  # the current wheel


# ----------------------------------------------------------------------------- 2. plausibility


@pytest.mark.parametrize(
    ("kwargs", "shape", "said"),
    [
        ({"tau_decay": 400.0}, (2, 900), r"tau_decay = 400 s .* milliseconds, pass 0\.4"),
        ({"tau_rise": 5.0, "tau_decay": 8.0}, (2, 900), r"tau_rise = 5 s .* pass 0\.005"),
        ({"fs": 0.0333}, (2, 900), r"fs = 0\.0333 Hz .* frame period .* 30\.03 Hz"),
        ({}, (900, 2), r"more cells \(900\) than frames \(2\).*traces\.T"),
    ],
)
def test_implausible_values_are_named_with_their_fix(kwargs, shape, said) -> None:
    rng = np.random.default_rng(0)
    traces = 1.0 + 0.1 * rng.standard_normal(shape)
    p = {"fs": FS, "tau_rise": 0.05, "tau_decay": 0.5, **kwargs}
    with pytest.warns(UserWarning, match=said):
        calab.run_deconvolution(
            traces, p["fs"], tau_rise=p["tau_rise"], tau_decay=p["tau_decay"], lam=0.5
        )


def test_plausible_values_draw_no_warning() -> None:
    traces, _ = calab.simulate(4, 900, FS)
    calab.run_deconvolution(traces, FS, 0.05, 0.5, 0.01)  # warnings are errors here


def test_estimate_warns_of_a_frame_period_given_as_fs() -> None:
    traces, _ = calab.simulate(6, 3000, FS, seed=2)
    with pytest.warns(UserWarning, match=r"fs = 0\.0333 Hz"):
        try:
            calab.estimate_parameters(traces, 0.0333)
        except ValueError as exc:  # the kernel may not be measurable at that rate
            assert "frame period" in str(exc)


def test_fs_that_disagrees_with_the_file_is_named(tmp_path, caiman) -> None:
    with pytest.warns(UserWarning, match=r"fs = 15 Hz was given but .*res\.hdf5.* 30 Hz"):
        _, meta = calab.load_caiman(tmp_path / "res.hdf5", fs=15.0)
    assert meta["sampling_rate_hz"] == 15.0  # the given rate still wins
    proc = run("estimate", "res.hdf5", "--fs", "15", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "calab: warning: fs = 15 Hz was given but" in proc.stderr
    # The same rate as the file's: no word.
    proc = run("estimate", "res.hdf5", "--fs", "30", cwd=tmp_path)
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stderr


def test_deconvolve_warns_of_a_decay_in_milliseconds(tmp_path, caiman) -> None:
    calab.write_export(
        tmp_path / "ms.json", calab.export_dict(tau_rise=50.0, tau_decay=400.0, lam=0.02, fs=FS)
    )
    proc = run("deconvolve", "res.hdf5", "-p", "ms.json", "-o", "ms.npy", cwd=tmp_path)
    assert "calab: warning: tau_decay = 400 s" in proc.stderr, proc.stderr


# ----------------------------------------------------------------------------- 3. drift


def test_drifting_traces_warn_once_naming_the_drift_baseline() -> None:
    traces, _ = calab.simulate(8, 9000, FS, drift=2.0, seed=1)
    with pytest.warns(UserWarning, match='pass baseline="drift"') as record:
        calab.run_deconvolution(traces, FS, 0.05, 0.5, 0.01)
    assert len(record) == 1
    calab.run_deconvolution(traces, FS, 0.05, 0.5, 0.01, baseline="drift")  # no warning
    steady, _ = calab.simulate(8, 9000, FS, seed=1)
    calab.run_deconvolution(steady, FS, 0.05, 0.5, 0.01)  # no warning


def test_readme_differences_name_the_default_baseline() -> None:
    differences = _section("## Differences from the CaLab package")
    assert "rolling-percentile" in differences and 'baseline="drift"' in differences


# ----------------------------------------------------------------------------- 4. records


def test_auto_prints_its_estimate_and_every_output_records_it(tmp_path, caiman) -> None:
    proc = run("deconvolve", "res.hdf5", "--auto", "--accepted-only", "-o", "a.npy",
               cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "estimating the parameters of 5 cells x 3000 frames" in proc.stderr
    fields = dict(
        line.split(":", 1) for line in proc.stderr.splitlines() if not line.startswith("calab:")
    )
    est = calab.estimate_parameters(caiman[1::2], FS)
    assert float(fields["tau_decay"].split()[0]) == pytest.approx(est.tau_decay, rel=1e-5)
    assert proc.stdout.split() == ["a.npy", "a_info.json"]
    info = json.loads((tmp_path / "a_info.json").read_text())
    assert info["cell_ids"] == [1, 3, 5, 7, 9]
    assert info["parameters"]["tau_decay"] == pytest.approx(est.tau_decay, rel=1e-12)
    assert len(info["parameters"]["lambda_per_cell"]) == 5
    # -q: no notes
    proc = run("deconvolve", "res.hdf5", "--auto", "-o", "q.npy", "-q", cwd=tmp_path)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr


def test_auto_shows_the_seconds_while_it_estimates(capsys) -> None:
    """On a terminal `--auto` showed nothing for the ~7 s of the estimate."""
    import time

    from calab.batch import _elapsed

    with _elapsed("estimate", True):
        time.sleep(1.3)
    assert "estimate: 00:01" in capsys.readouterr().err
    with _elapsed("estimate", False):  # not a terminal, or -q
        time.sleep(0.1)
    assert capsys.readouterr().err == ""


def test_h5_and_zarr_outputs_hold_parameters_and_cell_ids(tmp_path, caiman) -> None:
    xr = pytest.importorskip("xarray")
    for out in ("a.h5", "a.zarr"):
        proc = run("deconvolve", "res.hdf5", "-p", "params.json", "--accepted-only", "-o", out,
                   cwd=tmp_path)  # fmt: skip
        assert proc.returncode == 0 and proc.stdout.split() == [out], proc.stderr
    with h5py.File(tmp_path / "a.h5", "r") as f:
        assert f["unit_id"][:].tolist() == [1, 3, 5, 7, 9]
        assert json.loads(f.attrs["parameters"])["tau_decay"] == 0.5
        h5_activity = f["activity"][:]
    ds = xr.open_zarr(tmp_path / "a.zarr")
    assert ds["activity"].dims == ("unit_id", "frame")
    assert ds["unit_id"].values.tolist() == [1, 3, 5, 7, 9]
    assert ds["frame"].values.tolist() == list(range(3000))
    assert ds.attrs["parameters"]["tau_decay"] == 0.5
    np.testing.assert_array_equal(ds["activity"].values, h5_activity)  # zeros stay zeros


# ----------------------------------------------------------------------------- 5. zarr


def test_zarr_output_is_a_minian_style_store_calab_reads_back(tmp_path, caiman) -> None:
    xr = pytest.importorskip("xarray")
    proc = run("deconvolve", "res.hdf5", "-p", "params.json", "-o", "a.zarr", "--full",
               cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "a.zarr" / ".zmetadata").is_file()  # zarr v2, consolidated, as Minian's
    ds = xr.open_zarr(tmp_path / "a.zarr")
    assert ds["baseline"].dims == ("unit_id",) and ds["converged"].values.all()
    want = calab.run_deconvolution(caiman, FS, 0.05, 0.5, 0.02)
    np.testing.assert_array_equal(ds["activity"].values, want)
    # calab's own loader and commands read it, and so does its lazy path, as a DataArray.
    proc = run("info", "a.zarr", "--json", cwd=tmp_path)
    info = json.loads(proc.stdout)
    assert (info["format"], info["num_cells"], info["sampling_rate_hz"]) == ("calab", 10, FS)
    again = calab.run_deconvolution(ds["activity"], FS, 0.05, 0.5, 0.02)
    assert again.dims == ("unit_id", "frame")


# ----------------------------------------------------------------------------- 7. messages


def test_tuning_metadata_given_as_export_says_what_it_is(tmp_path, caiman) -> None:
    proc = run("convert", "res.hdf5", "-o", "rec", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    proc = run("deconvolve", "rec", "-p", "rec_metadata.json", cwd=tmp_path)
    assert_error(proc, "metadata of tuning files")
    assert "upgrade" not in proc.stderr


def test_auto_with_a_frame_period_names_fs_not_missing_flags(tmp_path) -> None:
    traces, _ = calab.simulate(6, 3000, FS, seed=2)
    np.save(tmp_path / "t.npy", traces)
    proc = run("deconvolve", "t.npy", "--auto", "--fs", "0.033", cwd=tmp_path)
    assert "fs = 0.033 Hz" in proc.stderr and "frame period" in proc.stderr, proc.stderr
    assert "pass tau_rise and tau_decay yourself" not in proc.stderr


def test_install_hints_are_safe_to_paste_in_any_shell() -> None:
    """`pip install calab[loaders]` fails unquoted in zsh, and installs the CaLab package."""
    from calab.io._deps import require

    with pytest.raises(ImportError) as err:
        require("calab_test_no_such_module")
    said = str(err.value)
    assert "pip install calab_test_no_such_module" in said and "[" not in said
    assert "pip install h5py zarr xarray" in said


# ----------------------------------------------------------------------------- 8. docs


def test_pipeline_example_runs_on_the_readme_estimate_export(tmp_path, caiman) -> None:
    proc = run("estimate", "res.hdf5", "-o", "auto.json", cwd=tmp_path)  # every row, as README
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run(
        [sys.executable, "-W", "error", str(ROOT / "examples" / "pipeline_to_activity.py"),
         "res.hdf5", "auto.json"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "activity: 5 cells x 3000 frames" in proc.stdout  # the accepted components


def test_make_dist_names_the_manifest_for_the_sdist() -> None:
    """`maturin sdist` without the manifest path printed `error: manifest path Cargo.toml does
    not exist` (it then found rust/Cargo.toml through pyproject.toml and built the sdist), so
    `make dist` looked like it succeeded despite an error."""
    recipe = subprocess.run(
        ["make", "-n", "dist", "PY=true", "DIST=/nonexistent"], capture_output=True, text=True,
        cwd=ROOT, check=False,
    )  # fmt: skip
    sdist = [line for line in recipe.stdout.splitlines() if "maturin sdist" in line]
    assert sdist and all("rust/Cargo.toml" in line for line in sdist), recipe.stdout


def test_make_demo_installs_only_what_the_demo_needs() -> None:
    recipe = subprocess.run(
        ["make", "-n", "demo"], capture_output=True, text=True, cwd=ROOT, check=False
    ).stdout
    installs = [line for line in recipe.splitlines() if "pip install" in line]
    assert installs and not [line for line in installs if "dev" in line], recipe
    assert all(" -q " not in line for line in installs), "the demo's install shows progress"


def test_readme_test_figures_are_current() -> None:
    said = re.search(r"about ([\d,]+) tests in about (\d+) minutes", README)
    assert said, "the README gives the size and time of the test suite"
    count = int(said.group(1).replace(",", ""))
    collected = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        capture_output=True, text=True, cwd=ROOT, timeout=300, check=False,
    ).stdout  # fmt: skip
    total = int(re.search(r"(\d+) tests? collected", collected).group(1))
    assert abs(total - count) <= 0.15 * total, (count, total)


# ----------------------------------------------------------------------------- 9. bugs


def test_json_into_a_closed_pipe_ends_quietly(tmp_path, caiman) -> None:
    proc = subprocess.Popen(
        [*CMD, "info", "res.hdf5", "--json"], cwd=tmp_path, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # the reader (`| head`) is gone before calab writes
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 141, err
    assert err == ""


def test_demo_explains_its_fitted_baseline() -> None:
    """It printed "baseline fitted 0.859, true 1.000" as if the fit were wrong."""
    text = (ROOT / "examples" / "demo.py").read_text()
    assert "true 1.000" not in text and "not an estimate of F0" in text
    # What the demo says holds: b rises with lambda, below the offset at the demo's 0.01.
    traces, _ = calab.simulate(n_cells=20, n_frames=9000, fs=FS, snr=5.0)
    low, high = (
        float(np.median(calab.run_deconvolution_full(traces, FS, 0.05, 0.5, lam).baseline))
        for lam in (0.01, 0.1)
    )
    assert low < 1.0 < high


# ----------------------------------------------------------------------------- 10. naming


def test_both_spellings_of_the_time_constants() -> None:
    traces, _ = calab.simulate(3, 900, FS)
    short = calab.run_deconvolution(traces, FS, tau_r=0.05, tau_d=0.5, lam=0.01)
    long = calab.run_deconvolution(traces, FS, tau_rise=0.05, tau_decay=0.5, lam=0.01)
    np.testing.assert_array_equal(short, long)
    full = calab.run_deconvolution_full(traces, FS, tau_rise=0.05, tau_decay=0.5, lam=0.01)
    np.testing.assert_array_equal(full.activity, short)
    with pytest.raises(TypeError, match="tau_r and tau_rise are the same parameter"):
        calab.run_deconvolution(traces, FS, 0.05, 0.5, 0.01, tau_rise=0.05)
    with pytest.raises(TypeError, match="missing the argument tau_d"):
        calab.run_deconvolution(traces, FS, tau_rise=0.05, lam=0.01)


# ----------------------------------------------------------------------------- issue 22 item 27


def test_info_files_follow_the_umask_and_never_collide(tmp_path, caiman) -> None:
    old = os.umask(0o022)
    try:
        for out in ("r.npy", "r.h5", "r.zarr"):
            proc = run("deconvolve", "res.hdf5", "-p", "params.json", "-o", out, "--full",
                       cwd=tmp_path)  # fmt: skip
            assert proc.returncode == 0, proc.stderr
    finally:
        os.umask(old)
    infos = {name: json.loads((tmp_path / name).read_text())["output"]
             for name in ("r_info.json", "r_h5_info.json", "r_zarr_info.json")}  # fmt: skip
    assert infos == {"r_info.json": "r.npy", "r_h5_info.json": "r.h5",
                     "r_zarr_info.json": "r.zarr"}  # fmt: skip
    for name in infos:
        mode = stat.S_IMODE((tmp_path / name).stat().st_mode)
        assert mode == stat.S_IMODE((tmp_path / "r.npy").stat().st_mode) == 0o644, oct(mode)
