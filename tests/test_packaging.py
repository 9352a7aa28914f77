"""Packaging: one version everywhere, the metadata, and every build route ships a working UI.

The tests marked slow build what users get: `make dist` (the glibc-2.17 abi3 wheel and the
sdist), an sdist and wheels from a clean copy of this checkout through the in-tree build backend
(js/build_backend.py), and they install the wheel in a fresh virtualenv.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest
import trove_classifiers

import calab

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ("widget.js", "widget.css", "bridge.js", "bridge.css")
NO_NPM = {"CALAB_NPM": "calab-test-no-such-npm"}  # the backend's npm, made unfindable


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


VERSION = pyproject()["project"]["version"]
DIST_NAME = pyproject()["project"]["name"]


def run(cmd: list[str], cwd: Path, timeout: float = 900, **env: str) -> subprocess.CompletedProcess:
    # This environment's tools (maturin, as its backend calls it) first, as in an activated venv.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    return subprocess.run(
        cmd,
        cwd=cwd,
        env={**os.environ, "PATH": path, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, (
        f"{' '.join(map(str, proc.args))} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    )
    return proc


# --- one version ------------------------------------------------------------------------------


def test_one_version_in_every_manifest() -> None:
    release = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", VERSION)
    assert release, f"pyproject.toml version {VERSION!r} is not X.Y.Z (Cargo needs semver)"
    assert tuple(map(int, release.groups())) >= (0, 2, 0), "scripts pin calab>=0.2"
    cargo = tomllib.loads((ROOT / "rust" / "Cargo.toml").read_text(encoding="utf-8"))
    assert cargo["package"]["version"] == VERSION
    lock = tomllib.loads((ROOT / "rust" / "Cargo.lock").read_text(encoding="utf-8"))
    ours = [p for p in lock["package"] if p["name"] == cargo["package"]["name"]]
    assert [p["version"] for p in ours] == [VERSION]
    package = json.loads((ROOT / "js" / "package.json").read_text(encoding="utf-8"))
    assert package["version"] == VERSION
    npm_lock = json.loads((ROOT / "js" / "package-lock.json").read_text(encoding="utf-8"))
    assert npm_lock["version"] == VERSION
    assert npm_lock["packages"][""]["version"] == VERSION


def test_version_of_the_imported_calab() -> None:
    from importlib.metadata import version

    assert calab.__version__ == VERSION
    assert version(calab.DISTRIBUTION) == VERSION, "installed metadata is stale: run `make install`"


def test_source_tree_version_reads_the_project_table(tmp_path: Path) -> None:
    toml = tmp_path / "pyproject.toml"
    toml.write_text(
        '[build-system]\nversion = "9.9.9"\n\n[project]\nname = "calab"\n'
        'keywords = ["a", "b"]\nversion = "1.2.3"\n\n[tool.x]\nversion = "7"\n',
        encoding="utf-8",
    )
    assert calab._source_tree_version(toml) == "1.2.3"
    toml.write_text('[project]\nname = "calab"\n\n[tool.x]\nversion = "7"\n', encoding="utf-8")
    assert calab._source_tree_version(toml) is None
    assert calab._source_tree_version(tmp_path / "missing.toml") is None


# --- metadata ---------------------------------------------------------------------------------


def test_license_and_metadata() -> None:
    project = pyproject()["project"]
    assert project["license"] == "MIT"  # an SPDX expression (PEP 639), not {text = ...}
    assert project["license-files"] == ["LICENSE"]
    text = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License") and "Permission is hereby granted" in text
    classifiers = project["classifiers"]
    unknown = [c for c in classifiers if c not in trove_classifiers.classifiers]
    assert not unknown, f"not trove classifiers: {unknown}"
    assert not [c for c in classifiers if c.startswith("License ::")], "PEP 639: no License ::"
    for needed in (
        "Framework :: Jupyter :: JupyterLab",
        "Intended Audience :: Science/Research",
        "Topic :: Scientific/Engineering",
        "Programming Language :: Python :: 3.10",
    ):
        assert needed in classifiers
    assert project["urls"] and all(u.startswith("https://") for u in project["urls"].values())


def test_readme_opens_for_a_pip_user() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    top = text[: text.index("## Quick start")]
    assert "pip install" in top
    assert "make " not in top, "make targets belong in the developer section, further down"
    assert "make dist" in text and "make test" in text


# --- the error when the UI bundle is missing ---------------------------------------------------


def installed_static(tmp_path: Path) -> Path:
    return tmp_path / "lib" / "python3" / "site-packages" / "calab" / "static"


def test_missing_bundle_in_an_installed_calab_does_not_advise_make(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(calab.bridge, "STATIC_DIR", installed_static(tmp_path))
    with pytest.raises(FileNotFoundError, match="reinstall") as err:
        calab.bridge.start(calab.simulate(2, 300, 30.0)[0], 30.0)
    assert "make js" not in str(err.value)
    assert "bridge.js" in str(err.value)

    widget = pytest.importorskip("calab.widget")
    monkeypatch.setattr(widget, "_STATIC", installed_static(tmp_path))
    with pytest.raises(FileNotFoundError, match="reinstall") as err:
        widget._bundle("widget.js")
    assert "make js" not in str(err.value)


def test_missing_bundle_in_a_source_checkout_advises_make_js(tmp_path: Path) -> None:
    from calab._bundle import missing_bundle_error

    (tmp_path / "js").mkdir()
    (tmp_path / "js" / "package.json").write_text("{}", encoding="utf-8")
    err = missing_bundle_error(tmp_path / "src" / "calab" / "static" / "widget.js")
    assert "make js" in str(err) and "widget.js" in str(err)


# --- what the build routes produce ---------------------------------------------------------------


def clean_copy(dest: Path) -> Path:
    """This checkout as a fresh clone of it would hold it (tracked and new, not ignored files)."""
    listed = run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT)
    if listed.returncode != 0:
        pytest.skip(f"{ROOT} is not a git checkout: {listed.stderr.strip()}")
    for name in filter(None, listed.stdout.split("\0")):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    assert not (dest / "src" / "calab" / "static").exists(), "the bundle is git-ignored"
    return dest


def check_wheel(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        metadata = z.read(f"{DIST_NAME}-{VERSION}.dist-info/METADATA").decode()
    for name in BUNDLE:
        assert f"calab/static/{name}" in names, f"{wheel.name} lacks the UI bundle {name}"
    for name in ("calab/_solver.abi3.so", "calab/_solver.pyi", "calab/py.typed"):
        assert name in names, f"{wheel.name} lacks {name}"
    assert f"{DIST_NAME}-{VERSION}.dist-info/licenses/LICENSE" in names
    unwanted = [n for n in names if re.match(r"(tests|bench|js|examples)/|.*node_modules", n)]
    assert not unwanted, f"{wheel.name} carries {unwanted[:5]}"
    assert "License-Expression: MIT" in metadata and f"Version: {VERSION}\n" in metadata
    return names


def check_sdist(sdist: Path) -> list[str]:
    with tarfile.open(sdist) as tar:
        prefix = f"{DIST_NAME}-{VERSION}/"
        names = [m.name.removeprefix(prefix) for m in tar.getmembers() if m.isfile()]
    needed = [f"src/calab/static/{n}" for n in BUNDLE] + [
        "LICENSE",
        "pyproject.toml",
        "rust/Cargo.toml",
        "rust/Cargo.lock",
        "rust/src/lib.rs",
        "src/calab/__init__.py",
        "src/calab/_solver.pyi",
        "src/calab/py.typed",
        "js/build_backend.py",
        "js/package.json",
        "js/package-lock.json",
        "js/build.mjs",
        "js/tsconfig.json",
        "js/src/widget.ts",
        "js/src/bridge.ts",
    ]
    missing = [n for n in needed if n not in names]
    assert not missing, f"{sdist.name} lacks {missing}"
    unwanted = [n for n in names if re.match(r"(tests|bench)/|.*node_modules|.*\.so$", n)]
    assert not unwanted, f"{sdist.name} carries {unwanted[:5]}"
    return names


@pytest.mark.slow
def test_clean_clone_without_npm_stops_naming_what_to_install(tmp_path: Path) -> None:
    clone = clean_copy(tmp_path / "clone")
    proc = pip_wheel(clone, tmp_path / "wheels", **NO_NPM)
    assert proc.returncode != 0, "built a wheel without the UI bundle"
    said = proc.stdout + proc.stderr
    assert "Node.js" in said and "npm was not found" in said, said[-3000:]
    assert not list((tmp_path / "wheels").glob("*.whl"))


def needs_npm() -> None:
    if shutil.which("npm") is None:
        pytest.skip("npm is not installed: the clean-clone build route needs Node.js and npm")


def pip_wheel(source: Path, out: Path, **env: str) -> subprocess.CompletedProcess:
    return run(
        [sys.executable, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps"]
        + ["-w", str(out), str(source)],
        cwd=out.parent,
        # reuse the compiled dependencies of this checkout's build
        CARGO_TARGET_DIR=str(ROOT / "rust" / "target"),
        **env,
    )


@pytest.mark.slow
def test_clean_clone_pip_wheel_builds_the_ui(tmp_path: Path) -> None:
    needs_npm()
    clone = clean_copy(tmp_path / "clone")
    ok(pip_wheel(clone, tmp_path / "wheels"))
    (wheel,) = (tmp_path / "wheels").glob(f"{DIST_NAME}-{VERSION}-*.whl")
    check_wheel(wheel)


@pytest.fixture(scope="module")
def clean_clone_sdist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An sdist built by a PEP 517 frontend from a clean clone: the backend runs npm."""
    needs_npm()
    base = tmp_path_factory.mktemp("sdist-route")
    clone = clean_copy(base / "clone")
    ok(run([sys.executable, "-m", "build", "--sdist", "--no-isolation", str(clone)], cwd=base))
    (sdist,) = (clone / "dist").glob(f"{DIST_NAME}-*.tar.gz")
    return sdist


@pytest.mark.slow
def test_clean_clone_sdist_carries_the_built_ui_and_its_sources(clean_clone_sdist: Path) -> None:
    check_sdist(clean_clone_sdist)


@pytest.mark.slow
def test_wheel_from_the_sdist_builds_without_npm(clean_clone_sdist: Path, tmp_path: Path) -> None:
    ok(pip_wheel(clean_clone_sdist, tmp_path / "wheels", **NO_NPM))
    (wheel,) = (tmp_path / "wheels").glob(f"{DIST_NAME}-{VERSION}-*.whl")
    check_wheel(wheel)


# --- make dist ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    ok(run(["make", "-s", "dist", f"DIST={out}"], cwd=ROOT))
    return out


def glibc_needed(shared_object: Path) -> tuple[int, int]:
    """The newest GLIBC_x.y symbol version the library needs (objdump -T)."""
    symbols = ok(run(["objdump", "-T", str(shared_object)], cwd=shared_object.parent)).stdout
    versions = {tuple(map(int, v)) for v in re.findall(r"GLIBC_(\d+)\.(\d+)", symbols)}
    assert versions, "no GLIBC symbol versions found"
    return max(versions)  # type: ignore[return-value]


@pytest.mark.slow
def test_make_dist_wheel_is_abi3_for_glibc_2_17(dist: Path, tmp_path: Path) -> None:
    (wheel,) = dist.glob(f"{DIST_NAME}-*.whl")
    name, version, python, abi, platform = wheel.stem.split("-")
    assert (name, version, python, abi) == (DIST_NAME, VERSION, "cp310", "abi3")
    assert "manylinux_2_17_x86_64" in platform.split("."), platform
    check_wheel(wheel)
    with zipfile.ZipFile(wheel) as z:
        so = Path(z.extract("calab/_solver.abi3.so", tmp_path))
    assert glibc_needed(so) <= (2, 17)


@pytest.mark.slow
def test_make_dist_sdist(dist: Path) -> None:
    (sdist,) = dist.glob(f"{DIST_NAME}-*.tar.gz")
    assert sdist.name == f"{DIST_NAME}-{VERSION}.tar.gz"
    check_sdist(sdist)


INSTALLED_CHECK = """
import subprocess, sys
from pathlib import Path
import calab
assert Path(calab.__file__).is_relative_to(sys.prefix), calab.__file__
assert calab.__version__ == {version!r}, calab.__version__
{quick_start}
w = calab.TuneWidget(traces[:4], fs=30.0)
assert w._esm == (Path(calab.__file__).parent / "static" / "widget.js").read_text()
assert len(w._esm) > 1000 and "calab:view" in w._esm
cli = subprocess.run([Path(sys.executable).parent / "calab", "--version"],
                     capture_output=True, text=True, check=True)
assert {version!r} in cli.stdout, cli.stdout
print("installed calab works")
"""


@pytest.mark.slow
def test_make_dist_wheel_installs_and_runs_in_a_fresh_virtualenv(
    dist: Path, tmp_path: Path
) -> None:
    from test_readme import blocks_under

    (wheel,) = dist.glob(f"{DIST_NAME}-*.whl")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    ok(run([str(python), "-m", "pip", "install", "-q", f"{wheel}[widget]"], cwd=tmp_path))
    quick_start = "\n".join(blocks_under("## Quick start"))
    script = INSTALLED_CHECK.format(version=VERSION, quick_start=quick_start)
    proc = ok(run([str(python), "-I", "-W", "error", "-c", script], cwd=tmp_path))
    assert "installed calab works" in proc.stdout
