//! Solver policy for one trace: which algorithm, in which units, and what to do when the
//! direct solve does not finish.
//!
//! - Scaling: each trace is solved as y / max|y| with lambda / max|y| (the minimiser scales back
//!   exactly), so no norm in a stopping rule can overflow or underflow whatever the data's units.
//! - Baseline refit: the active set pivots on the untruncated AR(2) kernel; the scalar baseline
//!   is then re-fitted on the truncated kernel (h[i] for i < L, L where h has decayed to 1e-6 of
//!   its peak), so its optimality condition sum(y - K s - b) = 0 holds exactly for that kernel.
//! - Lambda continuation: if the direct active-set solve has not finished after
//!   `DIRECT_BUDGET` pivots, solve again from 16x, 4x and finally 1x lambda, each stage
//!   warm-started from the previous one.
//! - A result that is not finite is never reported as converged.

use crate::kernel::Model;
use crate::workspace::{Outcome, Workspace};
use crate::{active_set, conv, fista};

/// Which algorithm solves each trace.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Exact active set: block principal pivoting, with a monotone phase if pivoting oscillates.
    ActiveSet,
    /// The reference algorithm: FISTA with step 1/Lipschitz, non-negative soft threshold,
    /// adaptive restart and the baseline re-estimated as mean(y - K s) at every iterate.
    Fista,
}

/// Solver settings shared by every trace of a batch.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub method: Method,
    /// Iteration cap (pivots for the active set, iterations for FISTA).
    pub max_iters: usize,
    /// Active set: relative KKT feasibility tolerance. FISTA: relative step at which it stops.
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
    let mut y = std::mem::take(&mut ws.y);
    let scale = load_scaled(row, &mut y[..n]);
    let lam = lam / scale;
    let result = match opts.method {
        Method::ActiveSet => {
            // A capped solve leaves a feasible (non-negative) iterate in `out`.
            let mut outcome = solve_active_set(m, &y[..n], lam, opts, init, out, ws);
            outcome.baseline = refit_baseline(m, &y[..n], out, ws);
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

/// Copies `row` into `y` divided by max|row|; returns that scale (1 for an all-zero row).
fn load_scaled<T: Copy + Into<f64>>(row: &[T], y: &mut [f64]) -> f64 {
    let mut scale = 0.0f64;
    for (dst, src) in y.iter_mut().zip(row) {
        *dst = (*src).into();
        scale = scale.max(dst.abs());
    }
    if !(scale > 0.0 && scale.is_finite()) {
        scale = 1.0;
    }
    y.iter_mut().for_each(|v| *v /= scale);
    scale
}

/// The optimal scalar baseline for activity `s` on the truncated kernel: mean(y - K s).
fn refit_baseline(m: &Model, y: &[f64], s: &[f64], ws: &mut Workspace) -> f64 {
    let n = y.len();
    let (ks, work) = (&mut ws.fa[..n], &mut ws.fb[..n]);
    conv::forward(m, s, ks, work);
    y.iter().zip(ks.iter()).map(|(a, c)| a - c).sum::<f64>() / n as f64
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
    let (Ok(first) | Err(first)) =
        active_set::solve(m, y, lam, direct_budget, opts.tol, init, out, ws);
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
        let (Ok(r) | Err(r)) = active_set::solve(m, y, lam * f, budget, opts.tol, w, out, ws);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fista::objective;
    use crate::test_util::{synthetic, TEST_TRACE as SPEC};

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
            let y = synthetic(&m, 600, 7, SPEC);
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
            let y = synthetic(&fast, 250, seed, SPEC);
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
        let y = synthetic(&m, 3000, 3, SPEC);
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
    fn cold_start_needs_few_pivots_at_high_frame_rates() {
        // A slow indicator sampled fast (0.06 s / 0.85 s at 158 Hz, like the neuropil-corrected
        // GCaMP6s recordings): a dense cold start with full exchanges oscillated here and fell
        // back to the monotone phase (hundreds of pivots per trace).
        let m = Model::new(0.06, 0.85, 158.0);
        let spec = crate::test_util::Spec {
            rate: 0.006,
            offset: 1.0,
            noise: 0.25,
        };
        let o = opts(Method::ActiveSet, 1000, 1e-9);
        let mut total = 0;
        for seed in 1..5 {
            let y = synthetic(&m, 6000, seed, spec);
            let mut ws = Workspace::new(y.len());
            let mut s = vec![0.0; y.len()];
            let out = solve_trace(&m, &y, 0.01, &o, None, &mut s, &mut ws);
            assert!(out.converged, "seed {seed}: {out:?}");
            total += out.iterations;
        }
        assert!(total <= 4 * 30, "{total} pivots for 4 traces");
    }

    #[test]
    fn nonfinite_data_is_never_converged() {
        let m = Model::new(0.05, 0.5, 30.0);
        let mut y = synthetic(&m, 200, 5, SPEC);
        y[0] = f64::MAX; // finite, but K s and sums overflow
        y[1] = -f64::MAX;
        for method in [Method::ActiveSet, Method::Fista] {
            let mut ws = Workspace::new(y.len());
            let mut s = vec![0.0; y.len()];
            let out = solve_trace(
                &m,
                &y,
                0.01,
                &opts(method, 500, 1e-9),
                None,
                &mut s,
                &mut ws,
            );
            let finite = out.baseline.is_finite() && s.iter().all(|v| v.is_finite());
            assert!(finite || !out.converged, "{method:?}: {out:?}");
        }
    }
}
