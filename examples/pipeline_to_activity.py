"""From a pipeline's output file to deconvolved activity.

    python examples/pipeline_to_activity.py                      # makes a demo CaImAn file
    python examples/pipeline_to_activity.py results.hdf5 params.json

With no arguments it writes a small CaImAn-style HDF5 file (from ``calab.simulate``) and a
CaTune export into a temporary folder, so it runs anywhere. Needs h5py (the ``loaders`` extra).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np

import calab


def make_demo_files(folder: Path) -> tuple[Path, Path]:
    """A CaImAn results file (the layout ``cnm.save`` writes) and a CaTune export JSON."""
    import h5py

    traces, _ = calab.simulate(n_cells=20, n_frames=3000, fs=30.0, tau_rise=0.05, tau_decay=0.5)
    with h5py.File(folder / "caiman_results.hdf5", "w") as f:
        f["estimates/C"] = traces
        f["estimates/YrA"] = np.zeros_like(traces)
        f["estimates/idx_components"] = np.arange(0, 20, 2)  # the accepted components
        f["params/data/fr"] = 30.0
    export = calab.export_dict(tau_rise=0.05, tau_decay=0.5, lam=0.01, fs=30.0)
    calab.write_export(folder / "catune-params.json", export, force=True)
    return folder / "caiman_results.hdf5", folder / "catune-params.json"


def main(results: Path, params: Path) -> None:
    # Every row, as `calab estimate results.hdf5 -o params.json` reads the file: an export with
    # a lambda per cell has one value per row. Or load_minian / load_suite2p.
    traces, _ = calab.load_caiman(results)
    activity = calab.deconvolve_from_export(traces, params)
    _, meta = calab.load_caiman(results, accepted_only=True)  # CaImAn's accepted components
    activity = activity[meta["cell_ids"]]
    print(meta)
    print(f"activity: {activity.shape[0]} cells x {activity.shape[1]} frames, "
          f"{(activity > 0).mean():.1%} of frames active")  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) == 3:
        main(Path(sys.argv[1]), Path(sys.argv[2]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(*make_demo_files(Path(tmp)))
