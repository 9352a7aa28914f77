"""The error for a missing tuning UI bundle (src/calab/static/), worded for where calab runs."""

from __future__ import annotations

from pathlib import Path


def missing_bundle_error(path: Path) -> FileNotFoundError:
    """A FileNotFoundError for the missing bundle file ``path`` that says how to get it.

    Parameters
    ----------
    path : Path
        The missing file, ``<package>/static/<name>``.

    Returns
    -------
    FileNotFoundError
        In a source checkout (``js/package.json`` beside ``src/``) it names ``make js``; in an
        installed calab it says the installation is incomplete and how to reinstall.
    """
    root = path.parent.parent.parent.parent  # static -> calab -> src -> checkout
    if (root / "js" / "package.json").is_file():
        advice = (
            f"build it with `make js` in {root} (needs Node.js and npm), or reinstall with "
            "`pip install .`, which builds it"
        )
    else:
        advice = (
            "this calab installation was built without its tuning UI; reinstall calab from its "
            "wheel or sdist (both carry the UI), or from source with Node.js and npm installed "
            "(the build then makes the UI)"
        )
    return FileNotFoundError(f"calab's tuning UI bundle {path} is missing; {advice}")
