"""calab: calcium-imaging deconvolution with the CaTune model.

Exact, fast Rust solver; tuning UI for notebooks and the browser; loaders for CaImAn,
Minian and suite2p; the CaTune export JSON; and the ``calab`` command line.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from calab.baseline import drift_baseline
from calab.batch import deconvolve_file
from calab.bridge import tune
from calab.deconvolution import DeconvolutionResult, run_deconvolution, run_deconvolution_full
from calab.estimate import ParameterEstimate, estimate_parameters
from calab.filter import bandpass_filter
from calab.io import (
    deconvolve_from_export,
    export_dict,
    load_caiman,
    load_export_params,
    load_minian,
    load_nwb,
    load_suite2p,
    load_tuning_data,
    save_for_tuning,
    write_export,
)
from calab.kernel import build_kernel, compute_lipschitz, kernel_timing, tau_to_ar2
from calab.simulate import simulate
from calab.spikes import SpikeResult, infer_spikes

#: The distribution that installs ``import calab`` (``pip show cadeconv``). ``calab`` on PyPI is
#: another project, the CaLab package, with the same import name.
DISTRIBUTION = "cadeconv"


def _source_tree_version(pyproject: Path) -> str | None:
    """The [project] version in a source checkout's pyproject.toml, or None if there is none."""
    if not pyproject.is_file():
        return None
    match = re.search(
        r'^\[project\]\s*$(?:(?!^\[).)*?^version\s*=\s*"([^"]+)"',
        pyproject.read_text(encoding="utf-8"),
        flags=re.M | re.S,
    )
    return match.group(1) if match else None


def _version() -> str:
    # A source checkout (editable install, or src/ on sys.path): its pyproject.toml, which is
    # right even before a reinstall refreshes the recorded metadata. Installed from a wheel
    # (src/calab/ is then site-packages/calab/, with no pyproject.toml two levels up): the
    # version pip recorded.
    found = _source_tree_version(Path(__file__).resolve().parents[2] / "pyproject.toml")
    if found is not None:
        return found
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        return "0+unknown"


__version__ = _version()

__all__ = [
    "DeconvolutionResult",
    "ParameterEstimate",
    "SpikeResult",
    "__version__",
    "bandpass_filter",
    "build_kernel",
    "compute_lipschitz",
    "deconvolve_file",
    "deconvolve_from_export",
    "drift_baseline",
    "estimate_parameters",
    "export_dict",
    "infer_spikes",
    "kernel_timing",
    "load_caiman",
    "load_export_params",
    "load_minian",
    "load_nwb",
    "load_suite2p",
    "load_tuning_data",
    "run_deconvolution",
    "run_deconvolution_full",
    "save_for_tuning",
    "simulate",
    "tau_to_ar2",
    "TuneWidget",
    "tune",
    "write_export",
]


def __getattr__(name: str) -> object:
    # TuneWidget needs the optional anywidget dependency (extra "widget"): import it on use.
    if name == "TuneWidget":
        from calab.widget import TuneWidget

        return TuneWidget
    raise AttributeError(f"module 'calab' has no attribute {name!r}")
