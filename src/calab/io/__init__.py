"""Data in and out: pipeline loaders (CaImAn, Minian, suite2p, NWB), tuning files and the CaTune
export JSON."""

from __future__ import annotations

from calab.io.caiman import load_caiman
from calab.io.export import (
    SCHEMA_VERSION,
    deconvolve_from_export,
    export_dict,
    load_export_params,
    params_from_export,
    write_export,
)
from calab.io.minian import load_minian
from calab.io.nwb import load_nwb
from calab.io.suite2p import load_suite2p
from calab.io.tuning import load_tuning_data, save_for_tuning

__all__ = [
    "SCHEMA_VERSION",
    "deconvolve_from_export",
    "export_dict",
    "load_caiman",
    "load_export_params",
    "load_minian",
    "load_nwb",
    "load_suite2p",
    "load_tuning_data",
    "params_from_export",
    "save_for_tuning",
    "write_export",
]
