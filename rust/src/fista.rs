//! Reference FISTA on the truncated-kernel objective 1/2 ||y - K s - b||^2 + lambda G_dc sum(s),
//! s >= 0: step 1/L with L = G_dc^2 (the Lipschitz constant of the smooth part for a
//! non-negative kernel), non-negative soft threshold, adaptive (gradient) restart
//! (O'Donoghue & Candes), baseline re-estimated as mean(y - K s) at every iterate.

use crate::conv;
use crate::kernel::Model;
use crate::workspace::{Outcome, Workspace};

/// Runs FISTA from the activity already in `s` (a warm start; zeros for a cold one).
/// Stops when ||s_k - s_{k-1}|| <= tol * ||s_k|| or after `max_iters` iterations.
pub fn solve(
    m: &Model,
    y: &[f64],
    lam: f64,
    max_iters: usize,
    tol: f64,
    s: &mut [f64],
    ws: &mut Workspace,
) -> Outcome {
    let n = y.len();
    let mu = lam * m.g_dc;
    let step = 1.0 / m.lipschitz();
    let nf = n as f64;
    let Workspace { fa, fb, fc, fd, .. } = ws;
    let (x, ks, grad, work) = (&mut fa[..n], &mut fb[..n], &mut fc[..n], &mut fd[..n]);
    x.copy_from_slice(s);
    let mut t = 1.0f64;
    let mut iterations = 0;
    let mut converged = false;
    while iterations < max_iters {
        iterations += 1;
        conv::forward(m, x, ks, work);
        let b = y.iter().zip(ks.iter()).map(|(a, c)| a - c).sum::<f64>() / nf;
        for i in 0..n {
            ks[i] += b - y[i];
        }
        conv::adjoint(m, ks, grad, work);
        let t_next = 0.5 * (1.0 + (1.0 + 4.0 * t * t).sqrt());
        let (mut restart_dot, mut diff2, mut norm2) = (0.0, 0.0, 0.0);
        for i in 0..n {
            let s_new = (x[i] - step * (grad[i] + mu)).max(0.0);
            let delta = s_new - s[i];
            restart_dot += (x[i] - s_new) * delta;
            diff2 += delta * delta;
            norm2 += s_new * s_new;
            grad[i] = s_new; // grad now holds the new iterate
        }
        let momentum = if restart_dot > 0.0 {
            t = 1.0;
            0.0
        } else {
            let beta = (t - 1.0) / t_next;
            t = t_next;
            beta
        };
        for i in 0..n {
            let s_new = grad[i];
            x[i] = s_new + momentum * (s_new - s[i]);
            s[i] = s_new;
        }
        if diff2 <= tol * tol * norm2.max(f64::MIN_POSITIVE) {
            converged = true;
            break;
        }
    }
    conv::forward(m, s, ks, work);
    let b = y.iter().zip(ks.iter()).map(|(a, c)| a - c).sum::<f64>() / nf;
    Outcome {
        baseline: b,
        iterations,
        converged,
    }
}

/// The CaTune objective 1/2 ||y - K s - b||^2 + lam * G_dc * sum(s) on the truncated kernel.
pub fn objective(m: &Model, y: &[f64], s: &[f64], b: f64, lam: f64) -> f64 {
    let n = y.len();
    let (mut ks, mut work) = (vec![0.0; n], vec![0.0; n]);
    conv::forward(m, s, &mut ks, &mut work);
    let fit: f64 = (0..n).map(|i| (y[i] - ks[i] - b).powi(2)).sum();
    0.5 * fit + lam * m.g_dc * s.iter().sum::<f64>()
}
