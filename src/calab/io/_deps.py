"""Lazy imports of the optional loader dependencies (``pip install calab[loaders]``, and
pynwb for NWB files)."""

from __future__ import annotations

import importlib
from types import ModuleType

_PURPOSE = {
    "h5py": "reading CaImAn HDF5 files and writing .h5 outputs",
    "zarr": "reading Minian zarr stores and writing .zarr outputs",
    "xarray": "reading Minian zarr stores",
    "pynwb": "reading NWB files",
}
# Modules of their own extra (``nwb``), installed by name: ``calab`` on PyPI is another project.
_OWN_EXTRA = {"pynwb": "nwb"}


def require(name: str) -> ModuleType:
    """Import and return the optional module ``name``.

    Raises
    ------
    ImportError
        If it is not installed, naming the extra that provides it.
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        purpose = _PURPOSE.get(name, "this feature")
        if name in _OWN_EXTRA:
            raise ImportError(
                f"{name} is needed for {purpose} but is not installed; install it with: "
                f"pip install {name} (the {_OWN_EXTRA[name]!r} extra)"
            ) from exc
        raise ImportError(
            f"{name} is needed for {purpose} but is not installed; "
            "install it with: pip install calab[loaders]"
        ) from exc
