//! calab's solver: pure-Rust numerics in modules, and (with feature `python`) the thin PyO3
//! wrappers that make up the `calab._solver` extension module.
//!
//! The model (per cell): minimise 1/2 ||y - K s - b||^2 + lambda G_dc sum(s) over s >= 0 and a
//! scalar b, where K convolves with the CaTune kernel h (see `kernel`) and G_dc = sum(h).
//!
//! - `kernel`: the kernel, its AR(2) form and the parameter checks.
//! - `conv`: K s and K^T u as O(n) recursions.
//! - `active_set` (exact, with `banded` for its linear systems) and `fista` (reference).
//! - `solve`: policy for one trace (scaling, baseline refit, lambda continuation).
//! - `batch`: many cells in parallel (rayon), per-cell lambda, thread pools.
//! - `workspace`: per-thread buffers, so no solver allocates while iterating.

pub mod active_set;
pub mod banded;
pub mod batch;
pub mod conv;
pub mod fista;
pub mod kernel;
pub mod solve;
#[cfg(any(test, feature = "testing"))]
pub mod test_util;
pub mod workspace;

#[cfg(feature = "python")]
mod python {
    use numpy::{
        IntoPyArray, PyArray1, PyArray2, PyArrayMethods, PyReadonlyArray1, PyReadonlyArray2,
        PyUntypedArrayMethods,
    };
    use pyo3::exceptions::{PyTypeError, PyValueError};
    use pyo3::prelude::*;

    use crate::batch;
    use crate::kernel::{self, Model};
    use crate::solve::{Method, Options};

    fn model(tau_rise: f64, tau_decay: f64, fs: f64) -> PyResult<Model> {
        Model::checked(tau_rise, tau_decay, fs).map_err(PyValueError::new_err)
    }

    /// One lambda for every cell, or one per cell (a 1-D float64 array).
    #[derive(FromPyObject)]
    enum Lam<'py> {
        Scalar(f64),
        PerCell(PyReadonlyArray1<'py, f64>),
    }

    #[derive(FromPyObject)]
    enum Traces<'py> {
        F64(PyReadonlyArray2<'py, f64>),
        F32(PyReadonlyArray2<'py, f32>),
    }

    /// Normalised, truncated CaTune kernel (peak 1, h[0] = 0).
    #[pyfunction]
    fn build_kernel<'py>(
        py: Python<'py>,
        tau_rise: f64,
        tau_decay: f64,
        fs: f64,
    ) -> PyResult<Bound<'py, PyArray1<f64>>> {
        model(tau_rise, tau_decay, fs)?;
        Ok(kernel::build_kernel(tau_rise, tau_decay, fs).into_pyarray(py))
    }

    /// (g1, g2, d, r) of the kernel's AR(2) form.
    #[pyfunction]
    fn tau_to_ar2(tau_rise: f64, tau_decay: f64, fs: f64) -> PyResult<(f64, f64, f64, f64)> {
        model(tau_rise, tau_decay, fs)?;
        Ok(kernel::tau_to_ar2(tau_rise, tau_decay, fs))
    }

    /// (length, G_dc, unnormalised peak) of the kernel.
    #[pyfunction]
    fn kernel_info(tau_rise: f64, tau_decay: f64, fs: f64) -> PyResult<(usize, f64, f64)> {
        let m = model(tau_rise, tau_decay, fs)?;
        Ok((m.len, m.g_dc, m.peak))
    }

    fn rows<'a, T: numpy::Element>(
        a: &'a PyReadonlyArray2<'_, T>,
        name: &str,
    ) -> PyResult<(&'a [T], usize, usize)> {
        let shape = a.shape();
        let (cells, frames) = (shape[0], shape[1]);
        if cells == 0 || frames == 0 {
            return Err(PyValueError::new_err(format!(
                "{name} is empty (shape ({cells}, {frames})); pass at least one cell with at least one frame"
            )));
        }
        let data = a.as_slice().map_err(|_| {
            PyTypeError::new_err(format!(
                "{name} must be C-contiguous; use np.ascontiguousarray"
            ))
        })?;
        Ok((data, cells, frames))
    }

    type Solved<'py> = (
        Bound<'py, PyArray2<f64>>,
        Bound<'py, PyArray1<f64>>,
        Bound<'py, PyArray1<u64>>,
        Bound<'py, PyArray1<bool>>,
        Option<Bound<'py, PyArray2<f64>>>,
    );

    /// Deconvolves each row of `traces` (n_cells, n_frames); see calab.run_deconvolution_full.
    ///
    /// The FFI contract (checked here whatever the caller validated; ValueError/TypeError naming
    /// the argument): `traces` C-contiguous float64 or float32, non-empty, finite; the kernel
    /// parameters as `kernel::validate` and a finite normalisation; `lam` a number or a 1-D
    /// float64 array of one value per cell, finite and >= 0; `method` "active-set" or "fista";
    /// `max_iters` >= 1; `tol` finite and > 0; `n_threads` None or 1..=1024; `init` (the warm
    /// start) the shape of `traces`. Returns (activity, baseline, iterations, converged,
    /// reconvolution or None); the GIL is released while solving.
    #[pyfunction]
    #[pyo3(signature = (traces, fs, tau_rise, tau_decay, lam, method="active-set", max_iters=1000, tol=1e-9, n_threads=None, init=None, reconvolution=false))]
    #[allow(clippy::too_many_arguments)]
    fn deconvolve<'py>(
        py: Python<'py>,
        traces: Traces<'py>,
        fs: f64,
        tau_rise: f64,
        tau_decay: f64,
        lam: Lam<'py>,
        method: &str,
        max_iters: i64,
        tol: f64,
        n_threads: Option<i64>,
        init: Option<PyReadonlyArray2<'py, f64>>,
        reconvolution: bool,
    ) -> PyResult<Solved<'py>> {
        let m = model(tau_rise, tau_decay, fs)?;
        let lam_values: Vec<f64> = match &lam {
            Lam::Scalar(v) => vec![*v],
            Lam::PerCell(a) => a
                .as_slice()
                .map(<[f64]>::to_vec)
                .unwrap_or_else(|_| a.as_array().iter().copied().collect()),
        };
        if lam_values.is_empty() {
            return Err(PyValueError::new_err(
                "lam is empty; pass one lambda per cell or one number",
            ));
        }
        if let Some((i, v)) = lam_values
            .iter()
            .enumerate()
            .find(|(_, v)| !v.is_finite() || **v < 0.0)
        {
            return Err(PyValueError::new_err(format!(
                "lam must be a finite number >= 0, got {v} (value {i}); 0 means no sparsity penalty"
            )));
        }
        let method = match method {
            "active-set" => Method::ActiveSet,
            "fista" => Method::Fista,
            other => {
                return Err(PyValueError::new_err(format!(
                    "method must be 'active-set' or 'fista', got {other:?}"
                )))
            }
        };
        if max_iters < 1 {
            return Err(PyValueError::new_err(format!(
                "max_iters must be at least 1, got {max_iters}"
            )));
        }
        if !tol.is_finite() || tol <= 0.0 {
            return Err(PyValueError::new_err(format!(
                "tol must be a positive number, got {tol}"
            )));
        }
        let n_threads = match n_threads {
            None => None,
            Some(k) if k >= 1 && k <= batch::MAX_THREADS as i64 => Some(k as usize),
            Some(k) => {
                return Err(PyValueError::new_err(format!(
                    "n_threads must be between 1 and {} (or None for all cores), got {k}",
                    batch::MAX_THREADS
                )))
            }
        };
        let opts = Options {
            method,
            max_iters: max_iters as usize,
            tol,
        };
        let init_slice = match &init {
            Some(a) => Some(rows(a, "init")?),
            None => None,
        };
        macro_rules! run {
            ($arr:expr) => {{
                let (data, cells, frames) = rows(&$arr, "traces")?;
                if let Some((_, ic, if_)) = init_slice {
                    if (ic, if_) != (cells, frames) {
                        return Err(PyValueError::new_err(format!(
                            "init has shape ({ic}, {if_}) but traces have shape ({cells}, {frames})"
                        )));
                    }
                }
                let init_data = init_slice.map(|(d, _, _)| d);
                py.detach(|| -> Result<_, String> {
                    if let Some((c, f)) = batch::find_nonfinite(data, frames) {
                        return Err(format!(
                            "traces contain NaN or Inf at cell {c}, frame {f}; remove or interpolate those frames first"
                        ));
                    }
                    let mut activity = vec![0.0; cells * frames];
                    let outcomes = batch::solve_batch(
                        &m, data, frames, &lam_values, &opts, init_data, &mut activity, n_threads,
                    )?;
                    let reconv = if reconvolution {
                        let mut r = vec![0.0; cells * frames];
                        let b: Vec<f64> = outcomes.iter().map(|o| o.baseline).collect();
                        batch::reconvolve_batch(&m, &activity, &b, frames, &mut r, n_threads)?;
                        Some(r)
                    } else {
                        None
                    };
                    Ok((activity, outcomes, reconv, cells, frames))
                })
                .map_err(PyValueError::new_err)?
            }};
        }
        let (activity, outcomes, reconv, cells, frames) = match &traces {
            Traces::F64(a) => run!(a),
            Traces::F32(a) => run!(a),
        };
        let shape = [cells, frames];
        let activity = PyArray1::from_vec(py, activity).reshape(shape)?;
        let baseline: Vec<f64> = outcomes.iter().map(|o| o.baseline).collect();
        let iters: Vec<u64> = outcomes.iter().map(|o| o.iterations as u64).collect();
        let conv: Vec<bool> = outcomes.iter().map(|o| o.converged).collect();
        let reconv = match reconv {
            Some(r) => Some(PyArray1::from_vec(py, r).reshape(shape)?),
            None => None,
        };
        Ok((
            activity,
            baseline.into_pyarray(py),
            iters.into_pyarray(py),
            conv.into_pyarray(py),
            reconv,
        ))
    }

    /// K s per row on the truncated kernel (no baseline).
    #[pyfunction]
    fn convolve<'py>(
        py: Python<'py>,
        activity: PyReadonlyArray2<'py, f64>,
        tau_rise: f64,
        tau_decay: f64,
        fs: f64,
    ) -> PyResult<Bound<'py, PyArray2<f64>>> {
        let m = model(tau_rise, tau_decay, fs)?;
        let (data, cells, frames) = rows(&activity, "activity")?;
        let out = py
            .detach(|| {
                let mut out = vec![0.0; cells * frames];
                let zeros = vec![0.0; cells];
                batch::reconvolve_batch(&m, data, &zeros, frames, &mut out, None).map(|_| out)
            })
            .map_err(PyValueError::new_err)?;
        PyArray1::from_vec(py, out).reshape([cells, frames])
    }

    #[pymodule]
    fn _solver(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add_function(wrap_pyfunction!(build_kernel, m)?)?;
        m.add_function(wrap_pyfunction!(tau_to_ar2, m)?)?;
        m.add_function(wrap_pyfunction!(kernel_info, m)?)?;
        m.add_function(wrap_pyfunction!(deconvolve, m)?)?;
        m.add_function(wrap_pyfunction!(convolve, m)?)?;
        Ok(())
    }
}
