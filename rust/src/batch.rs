//! Many cells at once: rayon over cells, one workspace per worker, deterministic per cell.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;

use crate::kernel::Model;
use crate::workspace::{Outcome, Workspace};
use crate::{active_set, conv, fista};

/// Which algorithm solves each trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Exact active set: block principal pivoting, with a monotone phase if pivoting oscillates.
    ActiveSet,
    /// The reference FISTA of CONTRACTS.md.
    Fista,
}

#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub method: Method,
    pub max_iters: usize,
    pub tol: f64,
}

/// Solves one trace into `out` (length n). `init` is a previous activity used as a warm start.
pub fn solve_trace<T: Copy + Into<f64>>(
    m: &Model,
    row: &[T],
    lam: f64,
    opts: &Options,
    init: Option<&[f64]>,
    out: &mut [f64],
    ws: &mut Workspace,
) -> Outcome {
    let n = row.len();
    ws.ensure(n);
    // Solve on y / max|y| (and lam / max|y|): the solution scales back exactly, and no norm
    // in a stopping rule can overflow or underflow whatever the units of the data.
    let mut y = std::mem::take(&mut ws.y);
    let mut scale = 0.0f64;
    for (dst, src) in y[..n].iter_mut().zip(row) {
        *dst = (*src).into();
        scale = scale.max(dst.abs());
    }
    if !(scale > 0.0 && scale.is_finite()) {
        scale = 1.0;
    }
    y[..n].iter_mut().for_each(|v| *v /= scale);
    let lam = lam / scale;
    let result = match opts.method {
        Method::ActiveSet => {
            // Err: the pivot cap was reached; `out` then holds a feasible (non-negative) iterate.
            let mut outcome = solve_active_set(m, &y[..n], lam, opts, init, out, ws);
            // The pivoting used the untruncated AR(2) kernel; re-fit b on the contract's
            // truncated kernel so the baseline optimality condition holds exactly.
            let (ks, work) = (&mut ws.fa[..n], &mut ws.fb[..n]);
            conv::forward(m, out, ks, work);
            outcome.baseline = y[..n]
                .iter()
                .zip(ks.iter())
                .map(|(a, c)| a - c)
                .sum::<f64>()
                / n as f64;
            outcome
        }
        Method::Fista => {
            match init {
                Some(s0) => out
                    .iter_mut()
                    .zip(s0)
                    .for_each(|(o, v)| *o = v.max(0.0) / scale),
                None => out.iter_mut().for_each(|o| *o = 0.0),
            }
            fista::solve(m, &y[..n], lam, opts.max_iters, opts.tol, out, ws)
        }
    };
    ws.y = y;
    out.iter_mut().for_each(|v| *v *= scale);
    let baseline = result.baseline * scale;
    // A degenerate model or data beyond f64 must never pass as a converged solution.
    let finite = baseline.is_finite() && out.iter().all(|v| v.is_finite());
    Outcome {
        baseline,
        converged: result.converged && finite,
        ..result
    }
}

/// Lambda multipliers of the continuation used when the direct solve does not finish.
const CONTINUATION: [f64; 3] = [16.0, 4.0, 1.0];
/// Pivots the direct solve (pivoting, then the monotone phase) gets before the continuation.
const DIRECT_BUDGET: usize = 100;

/// Active set with a fallback. Pivoting can oscillate on ill-conditioned cases (e.g. a slow
/// kernel fitted to fast transients); the monotone phase then guarantees progress but can be
/// slow. If the direct solve has not finished after `DIRECT_BUDGET` pivots, solve again from a
/// larger lambda down to the target, each stage warm-started from the previous one (pivoting
/// handles sparser problems well, and a warm start from a nearby lambda needs few pivots).
/// `iterations` counts every pivot and never exceeds `max_iters`; `converged` is true only
/// for a KKT point at the requested lambda.
fn solve_active_set(
    m: &Model,
    y: &[f64],
    lam: f64,
    opts: &Options,
    init: Option<&[f64]>,
    out: &mut [f64],
    ws: &mut Workspace,
) -> Outcome {
    let n = y.len();
    let direct_budget = if lam > 0.0 {
        DIRECT_BUDGET.min(opts.max_iters)
    } else {
        opts.max_iters
    };
    let first = active_set::solve(m, y, lam, direct_budget, opts.tol, init, true, out, ws);
    let (Ok(first) | Err(first)) = first;
    if first.converged || first.iterations >= opts.max_iters {
        return first;
    }
    let mut spent = first.iterations;
    let mut outcome = first;
    let mut warm = std::mem::take(&mut ws.fa);
    let mut have_warm = false;
    for (stage, f) in CONTINUATION.into_iter().enumerate() {
        if spent >= opts.max_iters {
            // Out of pivots before the target lambda: `out` is feasible, not the answer.
            outcome.converged = false;
            break;
        }
        let w = if have_warm { Some(&warm[..n]) } else { None };
        let budget = opts.max_iters - spent;
        let r = active_set::solve(m, y, lam * f, budget, opts.tol, w, true, out, ws);
        let (Ok(r) | Err(r)) = r;
        spent += r.iterations;
        let last = stage + 1 == CONTINUATION.len();
        outcome = Outcome {
            iterations: spent,
            converged: r.converged && last,
            ..r
        };
        warm[..n].copy_from_slice(out);
        have_warm = true;
    }
    ws.fa = warm;
    outcome
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

fn with_pool<R: Send>(n_threads: Option<usize>, f: impl FnOnce() -> R + Send) -> Result<R, String> {
    match n_threads {
        None => Ok(f()),
        Some(k) => Ok(pool(k)?.install(f)),
    }
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
        let mut ws = Workspace::new(n);
        return Ok(vec![solve_trace(
            m,
            data,
            lam_of(0),
            opts,
            init,
            activity,
            &mut ws,
        )]);
    }
    with_pool(n_threads, || {
        activity
            .par_chunks_mut(n)
            .enumerate()
            .map_init(
                || Workspace::new(n),
                |ws, (i, out)| {
                    let row = &data[i * n..(i + 1) * n];
                    let s0 = init.map(|s| &s[i * n..(i + 1) * n]);
                    solve_trace(m, row, lam_of(i), opts, s0, out, ws)
                },
            )
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
    use crate::fista::objective;
    use crate::kernel::Model;

    /// A synthetic trace: spikes at fixed frames, kernel response, baseline, noise.
    fn synthetic(m: &Model, n: usize, seed: u64) -> Vec<f64> {
        let mut x = seed;
        let mut rnd = || {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 11) as f64 / (1u64 << 53) as f64
        };
        let s: Vec<f64> = (0..n)
            .map(|_| if rnd() < 0.03 { 1.0 } else { 0.0 })
            .collect();
        let (mut c, mut w) = (vec![0.0; n], vec![0.0; n]);
        conv::forward(m, &s, &mut c, &mut w);
        c.iter()
            .map(|v| v + 0.3 + 0.2 * (rnd() + rnd() + rnd() - 1.5))
            .collect()
    }

    fn opts(method: Method, max_iters: usize, tol: f64) -> Options {
        Options {
            method,
            max_iters,
            tol,
        }
    }

    #[test]
    fn active_set_satisfies_kkt_and_beats_fista() {
        for &(tr, td, lam) in &[(0.05, 0.5, 0.01), (0.05, 1.5, 0.05), (0.02, 0.2, 0.0)] {
            let m = Model::new(tr, td, 30.0);
            let y = synthetic(&m, 600, 7);
            let n = y.len();
            let mut ws = Workspace::new(n);
            let mut s = vec![0.0; n];
            let out = solve_trace(
                &m,
                &y,
                lam,
                &opts(Method::ActiveSet, 200, 1e-9),
                None,
                &mut s,
                &mut ws,
            );
            assert!(out.converged);
            assert!(s.iter().all(|v| *v >= 0.0));
            // KKT on the truncated objective: grad >= 0 where s = 0, grad = 0 where s > 0.
            let (mut r, mut g, mut w) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
            conv::forward(&m, &s, &mut r, &mut w);
            for i in 0..n {
                r[i] += out.baseline - y[i];
            }
            let rsum = r.iter().sum::<f64>();
            assert!(rsum.abs() < 1e-8 * n as f64);
            conv::adjoint(&m, &r, &mut g, &mut w);
            let mu = lam * m.g_dc;
            // Stated tolerance: 1e-6 of the gradient's natural scale G_dc * max|y| (the pivoting
            // runs on the untruncated kernel, whose tail beyond L is 1e-6 of the peak).
            let ymax = y.iter().fold(0.0f64, |a, v| a.max(v.abs()));
            let tol = 1e-6 * m.g_dc * ymax;
            for i in 0..n - 1 {
                let gi = g[i] + mu;
                if s[i] > 0.0 {
                    assert!(gi.abs() < tol, "frame {i}: s {} grad {gi}", s[i]);
                } else {
                    assert!(gi > -tol, "frame {i}: grad {gi}");
                }
            }
            let mut sf = vec![0.0; n];
            let of = solve_trace(
                &m,
                &y,
                lam,
                &opts(Method::Fista, 20000, 1e-12),
                None,
                &mut sf,
                &mut ws,
            );
            let obj_as = objective(&m, &y, &s, out.baseline, lam);
            let obj_f = objective(&m, &y, &sf, of.baseline, lam);
            assert!(
                obj_as <= obj_f + 1e-9 * obj_f.abs(),
                "{obj_as} vs fista {obj_f}"
            );
        }
    }

    #[test]
    fn oscillating_pivots_finish_in_the_monotone_phase() {
        // A slow model kernel (0.1 s / 2 s at 60 Hz) fitted to faster transients: full-exchange
        // pivoting oscillates here; the monotone phase must still reach the KKT point.
        let fast = Model::new(0.05, 0.5, 60.0);
        let m = Model::new(0.1, 2.0, 60.0);
        for seed in 1..12 {
            let y = synthetic(&fast, 250, seed);
            let n = y.len();
            let mut ws = Workspace::new(n);
            let mut s = vec![0.0; n];
            let o = opts(Method::ActiveSet, 1000, 1e-9);
            let out = solve_trace(&m, &y, 1e-3, &o, None, &mut s, &mut ws);
            assert!(out.converged, "seed {seed}: {out:?}");
            let mut sf = vec![0.0; n];
            let of = solve_trace(
                &m,
                &y,
                1e-3,
                &opts(Method::Fista, 50000, 1e-13),
                None,
                &mut sf,
                &mut ws,
            );
            let (a, b) = (
                objective(&m, &y, &s, out.baseline, 1e-3),
                objective(&m, &y, &sf, of.baseline, 1e-3),
            );
            assert!(a <= b + 1e-8 * b.abs(), "seed {seed}: {a} vs fista {b}");
        }
    }

    #[test]
    fn warm_start_needs_few_pivots() {
        let m = Model::new(0.05, 0.5, 30.0);
        let y = synthetic(&m, 3000, 3);
        let mut ws = Workspace::new(y.len());
        let (mut s1, mut s2, mut s3) = (vec![0.0; 3000], vec![0.0; 3000], vec![0.0; 3000]);
        let o = opts(Method::ActiveSet, 200, 1e-9);
        let cold = solve_trace(&m, &y, 0.02, &o, None, &mut s1, &mut ws);
        let warm = solve_trace(&m, &y, 0.022, &o, Some(&s1), &mut s2, &mut ws);
        let ref_cold = solve_trace(&m, &y, 0.022, &o, None, &mut s3, &mut ws);
        assert!(warm.iterations < cold.iterations, "{warm:?} vs {cold:?}");
        for (a, b) in s2.iter().zip(&s3) {
            assert!((a - b).abs() < 1e-8);
        }
        assert!((warm.baseline - ref_cold.baseline).abs() < 1e-10);
    }

    #[test]
    fn batch_is_deterministic_across_threads() {
        let m = Model::new(0.05, 0.5, 30.0);
        let n = 400;
        let data: Vec<f32> = (0..6)
            .flat_map(|c| synthetic(&m, n, c + 1))
            .map(|v| v as f32)
            .collect();
        let o = opts(Method::ActiveSet, 200, 1e-9);
        let mut a1 = vec![0.0; data.len()];
        let mut a2 = vec![0.0; data.len()];
        let r1 = solve_batch(&m, &data, n, &[0.01], &o, None, &mut a1, Some(1)).unwrap();
        let r2 = solve_batch(&m, &data, n, &[0.01], &o, None, &mut a2, Some(2)).unwrap();
        assert_eq!(a1, a2);
        assert_eq!(r1, r2);
    }

    #[test]
    fn nonfinite_is_located() {
        let mut data = vec![0.0f64; 30];
        data[17] = f64::NAN;
        assert_eq!(find_nonfinite(&data, 10), Some((1, 7)));
        assert_eq!(find_nonfinite(&[1.0f32; 10], 5), None);
    }
}

#[cfg(test)]
mod timing {
    use super::*;

    /// `cargo test --release -- --ignored --nocapture timing` prints per-trace solve times.
    #[test]
    #[ignore]
    fn timing_9000_frames() {
        for &td in &[0.5, 1.5] {
            let m = Model::new(0.05, td, 30.0);
            let mut x = 99u64;
            let mut rnd = || {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (x >> 11) as f64 / (1u64 << 53) as f64
            };
            let n = 9000;
            let s: Vec<f64> = (0..n)
                .map(|_| if rnd() < 0.033 { 1.0 } else { 0.0 })
                .collect();
            let (mut c, mut w) = (vec![0.0; n], vec![0.0; n]);
            conv::forward(&m, &s, &mut c, &mut w);
            let y: Vec<f64> = c
                .iter()
                .map(|v| v + 1.0 + 0.35 * (rnd() + rnd() + rnd() - 1.5))
                .collect();
            let o = Options {
                method: Method::ActiveSet,
                max_iters: 200,
                tol: 1e-9,
            };
            let mut ws = Workspace::new(n);
            let mut out = vec![0.0; n];
            let mut it = 0;
            let mut dt = f64::MAX;
            for _ in 0..60 {
                let t = std::time::Instant::now();
                it = solve_trace(&m, &y, 0.01, &o, None, &mut out, &mut ws).iterations;
                dt = dt.min(t.elapsed().as_secs_f64());
            }
            eprintln!(
                "td {td}: {:.3} ms per trace (best of 60), {it} pivots, {:.1} ns/frame/pivot",
                dt * 1e3,
                dt * 1e9 / (n as f64 * it as f64)
            );
        }
    }
}
