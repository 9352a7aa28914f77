//! Convolution with the truncated CaTune kernel and its adjoint, as O(n) recursions.
//!
//! With h[i] = (d^i - r^i) / peak for i < L, the sum over i < L of d^i s[t-i] equals
//! E[t] - d^L E[t-L] where E[t] = d E[t-1] + s[t]. Each pass costs a few operations per frame.

use crate::kernel::Model;

/// out = K s (causal, truncated at L). `work` must have the length of `s`.
pub fn forward(m: &Model, s: &[f64], out: &mut [f64], work: &mut [f64]) {
    let n = s.len();
    debug_assert!(out.len() == n && work.len() == n);
    let (d, r, len) = (m.d, m.r, m.len);
    let dl = d.powi(len as i32);
    let rl = r.powi(len as i32);
    // work holds E_d; E_r is recomputed in the second pass into `out`.
    let mut e = 0.0;
    for t in 0..n {
        e = d * e + s[t];
        work[t] = e;
    }
    // Store E_r in `out`, then combine from the end so the history behind t is still intact.
    let mut er = 0.0;
    for t in 0..n {
        er = r * er + s[t];
        out[t] = er;
    }
    let inv = 1.0 / m.peak;
    for t in (0..n).rev() {
        let (ed_old, er_old) = if t >= len {
            (work[t - len], out[t - len])
        } else {
            (0.0, 0.0)
        };
        out[t] = ((work[t] - dl * ed_old) - (out[t] - rl * er_old)) * inv;
    }
}

/// out = K^T u (the adjoint: correlation with h, truncated at L). `work` as in [`forward`].
pub fn adjoint(m: &Model, u: &[f64], out: &mut [f64], work: &mut [f64]) {
    let n = u.len();
    debug_assert!(out.len() == n && work.len() == n);
    let (d, r, len) = (m.d, m.r, m.len);
    let dl = d.powi(len as i32);
    let rl = r.powi(len as i32);
    let mut f = 0.0;
    for t in (0..n).rev() {
        f = d * f + u[t];
        work[t] = f;
    }
    let mut fr = 0.0;
    for t in (0..n).rev() {
        fr = r * fr + u[t];
        out[t] = fr;
    }
    let inv = 1.0 / m.peak;
    for t in 0..n {
        let (fd_old, fr_old) = if t + len < n {
            (work[t + len], out[t + len])
        } else {
            (0.0, 0.0)
        };
        out[t] = ((work[t] - dl * fd_old) - (out[t] - rl * fr_old)) * inv;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::build_kernel;
    use crate::test_util::Lcg;

    fn direct(h: &[f64], s: &[f64]) -> Vec<f64> {
        (0..s.len())
            .map(|t| (0..h.len().min(t + 1)).map(|i| h[i] * s[t - i]).sum())
            .collect()
    }

    fn pseudo_random(n: usize) -> Vec<f64> {
        let mut rng = Lcg::new(12345);
        (0..n).map(|_| rng.uniform() - 0.3).collect()
    }

    #[test]
    fn forward_matches_direct_convolution() {
        for &(tr, td, fs, n) in &[
            (0.05, 0.5, 30.0, 500),
            (0.01, 0.05, 30.0, 40),
            (0.1, 0.3, 10.0, 7),
        ] {
            let m = Model::new(tr, td, fs);
            let h = build_kernel(tr, td, fs);
            let s = pseudo_random(n);
            let mut out = vec![0.0; n];
            let mut w = vec![0.0; n];
            forward(&m, &s, &mut out, &mut w);
            for (a, b) in out.iter().zip(direct(&h, &s)) {
                assert!((a - b).abs() < 1e-10, "{a} vs {b}");
            }
        }
    }

    #[test]
    fn adjoint_is_the_transpose() {
        let m = Model::new(0.03, 0.2, 30.0);
        let n = 300;
        let s = pseudo_random(n);
        let u: Vec<f64> = pseudo_random(n + 7)[7..].to_vec();
        let (mut ks, mut ktu, mut w) = (vec![0.0; n], vec![0.0; n], vec![0.0; n]);
        forward(&m, &s, &mut ks, &mut w);
        adjoint(&m, &u, &mut ktu, &mut w);
        let lhs: f64 = ks.iter().zip(&u).map(|(a, b)| a * b).sum();
        let rhs: f64 = s.iter().zip(&ktu).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-9 * lhs.abs().max(1.0));
    }
}
