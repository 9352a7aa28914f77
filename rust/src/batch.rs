//! Many cells at once: rayon over cells, one workspace per worker, deterministic per cell
//! (each cell's result depends only on its own trace, lambda and warm start, never on the
//! thread count). Thread pools are built once per thread count and reused.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;

use crate::conv;
use crate::kernel::Model;
use crate::solve::{solve_trace, Options};
use crate::workspace::{Outcome, Workspace};

/// Most worker threads a call may ask for (the Python API bounds it further by the cores).
pub const MAX_THREADS: usize = 1024;

/// The pool of `k` threads, built on first use and kept for later calls with the same count.
fn pool(k: usize) -> Result<Arc<rayon::ThreadPool>, String> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    if k == 0 || k > MAX_THREADS {
        return Err(format!(
            "n_threads must be between 1 and {MAX_THREADS} (or None for all cores), got {k}"
        ));
    }
    let mut pools = POOLS
        .get_or_init(|| Mutex::new(HashMap::new()))
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(p) = pools.get(&k) {
        return Ok(Arc::clone(p));
    }
    let p = rayon::ThreadPoolBuilder::new()
        .num_threads(k)
        .build()
        .map_err(|e| format!("could not start {k} threads: {e}"))?;
    let p = Arc::new(p);
    pools.insert(k, Arc::clone(&p));
    Ok(p)
}

/// Runs `f` in the pool of `n_threads` threads (rayon's global pool, all cores, for None).
fn with_pool<R: Send>(n_threads: Option<usize>, f: impl FnOnce() -> R + Send) -> Result<R, String> {
    match n_threads {
        None => Ok(f()),
        Some(k) => Ok(pool(k)?.install(f)),
    }
}

thread_local! {
    /// Each thread's workspace, kept between calls (a tuner's view solves, a chunked batch,
    /// one trace at a time) so that a call allocates and first-touches nothing.
    static WORKSPACE: RefCell<Workspace> = RefCell::new(Workspace::default());
}

/// Longest trace (frames) whose workspace a thread keeps after the call: about 140 bytes per
/// frame (9 MB at this length); longer traces get a workspace of their own for the call.
const KEEP_FRAMES: usize = 1 << 16;

/// Runs `f` with this thread's workspace, grown to `n` frames (see [`KEEP_FRAMES`]).
fn with_workspace<R>(n: usize, f: impl FnOnce(&mut Workspace) -> R) -> R {
    if n > KEEP_FRAMES {
        return f(&mut Workspace::new(n));
    }
    WORKSPACE.with(|cell| {
        let mut ws = cell.borrow_mut();
        ws.ensure(n);
        f(&mut ws)
    })
}

/// First (cell, frame) holding NaN or +-Inf, scanning cells in parallel.
pub fn find_nonfinite<T: Copy + Into<f64> + Sync>(data: &[T], n: usize) -> Option<(usize, usize)> {
    let cell = data
        .par_chunks(n)
        .position_first(|row| row.iter().any(|v| !(*v).into().is_finite()))?;
    let frame = data[cell * n..(cell + 1) * n]
        .iter()
        .position(|v| !(*v).into().is_finite())?;
    Some((cell, frame))
}

/// Solves every row of `data` (n_cells x n, row-major) into `activity` (same shape). `lam`
/// holds one lambda for every cell (length 1) or one per cell (length n_cells).
#[allow(clippy::too_many_arguments)]
pub fn solve_batch<T: Copy + Into<f64> + Sync>(
    m: &Model,
    data: &[T],
    n: usize,
    lam: &[f64],
    opts: &Options,
    init: Option<&[f64]>,
    activity: &mut [f64],
    n_threads: Option<usize>,
) -> Result<Vec<Outcome>, String> {
    let cells = data.len() / n;
    if lam.len() != 1 && lam.len() != cells {
        return Err(format!(
            "lam has {} values but the traces have {cells} cells; pass one lambda per cell or one number",
            lam.len()
        ));
    }
    let lam_of = |i: usize| if lam.len() == 1 { lam[0] } else { lam[i] };
    if cells == 1 {
        let outcome = with_workspace(n, |ws| {
            solve_trace(m, data, lam_of(0), opts, init, activity, ws)
        });
        return Ok(vec![outcome]);
    }
    with_pool(n_threads, || {
        activity
            .par_chunks_mut(n)
            .enumerate()
            .map(|(i, out)| {
                let row = &data[i * n..(i + 1) * n];
                let s0 = init.map(|s| &s[i * n..(i + 1) * n]);
                with_workspace(n, |ws| solve_trace(m, row, lam_of(i), opts, s0, out, ws))
            })
            .collect()
    })
}

/// out = K s + b per row (the reconvolution), on the truncated kernel.
pub fn reconvolve_batch(
    m: &Model,
    activity: &[f64],
    baselines: &[f64],
    n: usize,
    out: &mut [f64],
    n_threads: Option<usize>,
) -> Result<(), String> {
    with_pool(n_threads, || {
        out.par_chunks_mut(n)
            .zip(activity.par_chunks(n))
            .zip(baselines.par_iter())
            .for_each_init(
                || vec![0.0; n],
                |work, ((o, s), b)| {
                    conv::forward(m, s, o, work);
                    o.iter_mut().for_each(|v| *v += b);
                },
            )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::solve::Method;
    use crate::test_util::{synthetic, TEST_TRACE as SPEC};
    const OPTS: Options = Options {
        method: Method::ActiveSet,
        max_iters: 200,
        tol: 1e-9,
    };

    fn cells(m: &Model, n: usize, k: u64) -> Vec<f32> {
        (0..k)
            .flat_map(|c| synthetic(m, n, c + 1, SPEC))
            .map(|v| v as f32)
            .collect()
    }

    #[test]
    fn batch_is_deterministic_across_threads() {
        let m = Model::new(0.05, 0.5, 30.0);
        let n = 400;
        let data = cells(&m, n, 6);
        let mut a1 = vec![0.0; data.len()];
        let mut a2 = vec![0.0; data.len()];
        let r1 = solve_batch(&m, &data, n, &[0.01], &OPTS, None, &mut a1, Some(1)).unwrap();
        let r2 = solve_batch(&m, &data, n, &[0.01], &OPTS, None, &mut a2, Some(2)).unwrap();
        assert_eq!(a1, a2);
        assert_eq!(r1, r2);
    }

    #[test]
    fn each_cell_is_solved_at_its_own_lambda() {
        let m = Model::new(0.05, 0.5, 30.0);
        let n = 300;
        let data = cells(&m, n, 4);
        let lam = [0.0, 0.01, 0.1, 1.0];
        let mut act = vec![0.0; data.len()];
        let res = solve_batch(&m, &data, n, &lam, &OPTS, None, &mut act, Some(2)).unwrap();
        let mut ws = Workspace::new(n);
        for (i, &l) in lam.iter().enumerate() {
            let mut s = vec![0.0; n];
            let one = solve_trace(
                &m,
                &data[i * n..(i + 1) * n],
                l,
                &OPTS,
                None,
                &mut s,
                &mut ws,
            );
            assert_eq!(one, res[i]);
            assert_eq!(&s[..], &act[i * n..(i + 1) * n]);
        }
        let err = solve_batch(&m, &data, n, &[0.1, 0.2], &OPTS, None, &mut act, None);
        assert!(err.unwrap_err().contains("lam has 2 values"));
    }

    #[test]
    fn workspaces_are_kept_between_calls() {
        // A call allocates nothing once its threads have solved a trace as long: the single-cell
        // path (a view solve, one trace) reuses the calling thread's workspace.
        let m = Model::new(0.05, 0.5, 30.0);
        let n = 300;
        let data = cells(&m, n, 1);
        let mut act = vec![0.0; n];
        let ptr = || WORKSPACE.with(|w| w.borrow().y.as_ptr());
        solve_batch(&m, &data, n, &[0.01], &OPTS, None, &mut act, None).unwrap();
        let first = ptr();
        assert!(WORKSPACE.with(|w| w.borrow().y.len()) >= n);
        let before = act.clone();
        solve_batch(&m, &data, n, &[0.01], &OPTS, None, &mut act, None).unwrap();
        assert_eq!(ptr(), first);
        assert_eq!(act, before);
        // Traces beyond KEEP_FRAMES are not kept.
        let long = KEEP_FRAMES + 1;
        with_workspace(long, |ws| assert!(ws.y.len() >= long));
        assert!(WORKSPACE.with(|w| w.borrow().y.len()) < long);
    }

    #[test]
    fn pools_are_reused_and_bounded() {
        let a = pool(3).unwrap();
        let b = pool(3).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        assert!(pool(0).is_err());
        assert!(pool(MAX_THREADS + 1).unwrap_err().contains("n_threads"));
    }

    #[test]
    fn nonfinite_is_located() {
        let mut data = vec![0.0f64; 30];
        data[17] = f64::NAN;
        assert_eq!(find_nonfinite(&data, 10), Some((1, 7)));
        assert_eq!(find_nonfinite(&[1.0f32; 10], 5), None);
    }
}
