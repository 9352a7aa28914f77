"""Type stub of the Rust extension module calab._solver (rust/src/lib.rs)."""

import numpy as np
import numpy.typing as npt

__all__ = ["build_kernel", "tau_to_ar2", "kernel_info", "deconvolve", "convolve"]

def build_kernel(tau_rise: float, tau_decay: float, fs: float) -> npt.NDArray[np.float64]: ...
def tau_to_ar2(
    tau_rise: float, tau_decay: float, fs: float
) -> tuple[float, float, float, float]: ...
def kernel_info(tau_rise: float, tau_decay: float, fs: float) -> tuple[int, float, float]: ...
def deconvolve(
    traces: npt.NDArray[np.float64] | npt.NDArray[np.float32],
    fs: float,
    tau_rise: float,
    tau_decay: float,
    lam: float | npt.NDArray[np.float64],
    method: str = "active-set",
    max_iters: int = 1000,
    tol: float = 1e-9,
    n_threads: int | None = None,
    init: npt.NDArray[np.float64] | None = None,
    reconvolution: bool = False,
) -> tuple[
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.uint64],
    npt.NDArray[np.bool_],
    npt.NDArray[np.float64] | None,
]: ...
def convolve(
    activity: npt.NDArray[np.float64], tau_rise: float, tau_decay: float, fs: float
) -> npt.NDArray[np.float64]: ...
