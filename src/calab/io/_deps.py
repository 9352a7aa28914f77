"""Lazy imports of the optional loader dependencies (the ``loaders`` extra: h5py, zarr, xarray;
the ``nwb`` extra: pynwb)."""

from __future__ import annotations

import importlib
import logging
import os
from types import ModuleType

_PURPOSE = {
    "h5py": "reading CaImAn HDF5 files and writing .h5 outputs",
    "zarr": "reading Minian zarr stores and writing .zarr outputs",
    "xarray": "reading Minian zarr stores",
    "pynwb": "reading NWB files",
}
# Modules of their own extra (``nwb``), installed by name: ``calab`` on PyPI is another project.
_OWN_EXTRA = {"pynwb": "nwb"}
_LOADERS = [name for name in _PURPOSE if name not in _OWN_EXTRA]


_ORPHANED = ("Task exception was never retrieved", "Task was destroyed but it is pending!")


class _ZarrOrphanedTasks(logging.Filter):
    """Drop asyncio's reports about zarr's abandoned read tasks.

    zarr reads the chunks of one request in concurrent tasks; when one fails (a corrupt chunk,
    an unsupported codec) the error reaches calab, which reports it naming the store, and the
    sibling tasks are left to fail or be destroyed unobserved. asyncio then logs each one with
    a traceback (hundreds of lines on stderr, some at exit). Only those records are dropped,
    and only for tasks running zarr's code; ``CALAB_DEBUG=1`` keeps them.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        return not (message.startswith(_ORPHANED) and "zarr" in message)


def _quiet_zarr_tasks() -> None:
    logger = logging.getLogger("asyncio")
    if not os.environ.get("CALAB_DEBUG") and not any(
        isinstance(f, _ZarrOrphanedTasks) for f in logger.filters
    ):
        logger.addFilter(_ZarrOrphanedTasks())


def require(name: str) -> ModuleType:
    """Import and return the optional module ``name``.

    Raises
    ------
    ImportError
        If it is not installed, naming the extra that provides it.
    """
    if name in ("zarr", "xarray"):
        _quiet_zarr_tasks()
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
            f"{name} is needed for {purpose} but is not installed; install it with: "
            f"pip install {name} (every loader package: pip install {' '.join(_LOADERS)})"
        ) from exc


def settle_zarr_tasks() -> None:
    """Wait for zarr's unfinished read tasks after a failed read, collecting their errors.

    zarr reads the chunks of one request in concurrent tasks on its own event loop; when one
    fails, the error reaches the caller while its siblings keep running. Left alone they fail
    unobserved, or are destroyed pending at exit, and asyncio prints a traceback for each.
    Does nothing if zarr was never imported or its loop is not running.
    """
    import asyncio
    import sys

    sync_mod = sys.modules.get("zarr.core.sync")
    loop = getattr(sync_mod, "loop", None) if sync_mod is not None else None
    loop = loop[0] if isinstance(loop, list) else loop
    if sync_mod is None or loop is None or not loop.is_running():
        return

    async def settle() -> None:
        current = asyncio.current_task()
        others = [t for t in asyncio.all_tasks() if t is not current]
        await asyncio.gather(*others, return_exceptions=True)

    try:
        sync_mod.sync(settle(), timeout=30)
    except Exception:  # pragma: no cover - best effort: the read's own error is reported
        pass
