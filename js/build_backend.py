"""PEP 517 build backend of calab: maturin's, plus the tuning UI bundle built from js/.

maturin packs ``src/calab/static/`` (the bundle ``npm run build`` writes) into wheels and
sdists but cannot build it. Without this wrapper, ``pip install .`` from a clean clone would
produce a calab whose ``TuneWidget`` and ``calab tune`` fail at first use. Before maturin builds
a wheel, an editable wheel or an sdist, this module makes sure the bundle is there: it is
shipped in the sdist (so building from it needs no Node.js), and in a clean clone it is built
with ``npm ci && npm run build`` in js/. When it can be neither found nor built, the build stops
with an error that says what to install. ``CALAB_NPM`` names the npm to run (default: ``npm``
on PATH).

pyproject.toml names it: ``build-backend = "build_backend"``, ``backend-path = ["js"]``. It lives
in js/ beside the sources it builds (and ships in the sdist with them), keeping the repository's
top level as it is.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import maturin

ROOT = Path(__file__).resolve().parent.parent
JS_DIR = ROOT / "js"
STATIC_DIR = ROOT / "src" / "calab" / "static"
# The entry points js/build.mjs bundles; each comes with a .css beside it.
BUNDLE = ("widget.js", "widget.css", "bridge.js", "bridge.css")

# Hooks maturin answers unchanged (no bundle needed for requirements or metadata).
get_requires_for_build_wheel = maturin.get_requires_for_build_wheel
get_requires_for_build_sdist = maturin.get_requires_for_build_sdist
prepare_metadata_for_build_wheel = maturin.prepare_metadata_for_build_wheel


class BundleError(RuntimeError):
    """The tuning UI bundle is missing and cannot be built here."""


def missing_bundle() -> list[str]:
    """Names of the bundle files not present in src/calab/static/."""
    return [name for name in BUNDLE if not (STATIC_DIR / name).is_file()]


def ensure_bundle() -> None:
    """Build the UI bundle with npm if any of its files is missing; raise BundleError if that fails.

    An existing bundle is kept as it is (`make js` rebuilds it after editing js/src).
    """
    missing = missing_bundle()
    if not missing:
        return
    what = f"calab's tuning UI bundle ({', '.join(missing)} in {STATIC_DIR}) is missing"
    if not (JS_DIR / "package.json").is_file() or not (JS_DIR / "package-lock.json").is_file():
        raise BundleError(
            f"{what}, and so are the sources to build it (js/package.json, js/package-lock.json): "
            "this source tree is incomplete. Build from a git clone or from calab's sdist."
        )
    npm = shutil.which(os.environ.get("CALAB_NPM", "npm"))
    if npm is None:
        raise BundleError(
            f"{what}; building it needs Node.js (18 or newer) with npm, and npm was not found "
            "on PATH. Install Node.js and npm (e.g. `apt install nodejs npm`, "
            "`conda install -c conda-forge nodejs`, or from nodejs.org), then run pip again; "
            "or install calab from its sdist or a wheel, which carry the bundle."
        )
    for args in (["ci"], ["run", "build"]):
        cmd = [npm, *args]
        print(f"calab build: running `{' '.join(['npm', *args])}` in {JS_DIR}", file=sys.stderr)
        done = subprocess.run(cmd, cwd=JS_DIR, stdout=sys.stderr, stderr=sys.stderr, check=False)
        if done.returncode != 0:
            raise BundleError(
                f"{what}; `npm {' '.join(args)}` in {JS_DIR} failed with exit code "
                f"{done.returncode} (its output is above). `npm ci` needs access to the npm "
                "registry and Node.js 18 or newer."
            )
    still = missing_bundle()
    if still:
        raise BundleError(f"`npm run build` in {JS_DIR} did not write {', '.join(still)}")


def _after_ensuring_bundle(hook: Callable[..., str]) -> Callable[..., str]:
    """Wrap maturin's build hook ``hook`` so that it runs once the UI bundle is in place."""

    @functools.wraps(hook)
    def build(*args: Any, **kwargs: Any) -> str:
        ensure_bundle()
        return hook(*args, **kwargs)

    return build


# The hooks that pack src/calab/static/: wheels (also editable ones) and the sdist.
build_wheel = _after_ensuring_bundle(maturin.build_wheel)
build_editable = _after_ensuring_bundle(maturin.build_editable)
build_sdist = _after_ensuring_bundle(maturin.build_sdist)
