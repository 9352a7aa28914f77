"""Writers of real pipeline outputs in each pipeline's own on-disk layout, for the tests.

CaImAn: ``caiman.utils.utils.save_dict_to_hdf5`` layout (scalars as 0-d datasets, ``None`` as
the string 'NoneType', sparse ``A`` as a data/indices/indptr/shape group). Minian: one xarray
dataset per variable saved with ``to_zarr`` (zarr format 2, consolidated, as Minian does).
suite2p: ``np.save`` of ``F``, ``Fneu``, ``iscell`` and the ``ops`` dict.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import h5py
import numpy as np
import xarray as xr


def write_caiman(
    path: Path,
    C: np.ndarray,
    *,
    YrA: np.ndarray | None = None,
    idx_components: Any = "NoneType",
    fr: Any = 30.0,
) -> Path:
    n, t = C.shape
    with h5py.File(path, "w") as f:
        f["dims"] = np.array([16, 16])
        f["dview"] = "NoneType"
        f["estimates/C"] = C
        f["estimates/S"] = np.zeros_like(C)
        f["estimates/YrA"] = np.zeros_like(C) if YrA is None else YrA
        f["estimates/idx_components"] = idx_components
        f["estimates/idx_components_bad"] = "NoneType"
        f["estimates/A/data"] = np.ones(n)
        f["estimates/A/indices"] = np.arange(n)
        f["estimates/A/indptr"] = np.arange(n + 1)
        f["estimates/A/shape"] = np.array([256, n])
        f["estimates/b"] = np.ones((256, 1))
        f["params/data/fr"] = fr
        f["params/data/decay_time"] = 0.4
        f["params/data/fnames"] = np.bytes_(["movie.tif"])
    return path


def minian_array(values: np.ndarray, name: str = "C", unit_ids: Any = None) -> xr.DataArray:
    n, t = values.shape
    ids = np.arange(n) * 3 + 1 if unit_ids is None else np.asarray(unit_ids)
    return xr.DataArray(
        values,
        dims=("unit_id", "frame"),
        coords={"unit_id": ids, "frame": np.arange(t), "session": "s1"},
        name=name,
    )


def write_minian_var(folder: Path, da: xr.DataArray, *, zarr_format: int = 2) -> Path:
    """Save one variable as Minian's ``save_minian`` does: ``<name>.zarr`` holding a dataset."""
    store = folder / f"{da.name}.zarr"
    chunks = tuple(1 if d == "unit_id" else da.sizes[d] for d in da.dims)
    ds = da.to_dataset()
    kwargs: dict[str, Any] = {"mode": "w", "encoding": {da.name: {"chunks": chunks}}}
    if zarr_format == 2:
        ds.to_zarr(store, zarr_format=2, **kwargs)
    else:
        # zarr 3 has no stable string dtype: drop the string coordinate.
        ds = ds.drop_vars("session", errors="ignore")
        ds.to_zarr(store, zarr_format=3, consolidated=False, **kwargs)
    return store


def write_suite2p(
    root: Path,
    F: np.ndarray,
    Fneu: np.ndarray,
    iscell: np.ndarray,
    *,
    fs: float | None = 15.0,
    plane: int = 0,
) -> Path:
    """Write ``root/suite2p/plane<N>/``; return the suite2p folder."""
    plane_dir = root / "suite2p" / f"plane{plane}"
    plane_dir.mkdir(parents=True)
    np.save(plane_dir / "F.npy", F.astype(np.float32))
    np.save(plane_dir / "Fneu.npy", Fneu.astype(np.float32))
    np.save(plane_dir / "iscell.npy", iscell)
    np.save(plane_dir / "spks.npy", np.zeros_like(F, dtype=np.float32))
    if fs is not None:
        ops = {"fs": fs, "nplanes": 1, "tau": 1.0, "Ly": 64, "Lx": 64, "save_path": str(plane_dir)}
        np.save(plane_dir / "ops.npy", ops)
    return root / "suite2p"


def iscell_array(flags: list[int]) -> np.ndarray:
    probs = np.linspace(0.2, 0.9, len(flags))
    return np.column_stack([np.asarray(flags, dtype=float), probs])
