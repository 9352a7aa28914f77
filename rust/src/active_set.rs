//! Exact solver: block principal pivoting on the AR(2) (calcium) form of the CaTune model.
//!
//! With c = K s, the kernel's AR(2) recursion c[t] = g1 c[t-1] + g2 c[t-2] + alpha s[t-1]
//! makes s = D c / alpha with D banded (three diagonals). For a guessed support F (frames where
//! s > 0) the optimal c and baseline b follow from one banded (bandwidth 2) Cholesky solve over
//! the zero set G: c = z - D_G^T nu with (D_G D_G^T) nu = D_G z, z = y - b - mu w. The gradient on
//! G is -alpha nu. Block principal pivoting (Kim & Park) swaps the frames that violate s >= 0
//! on F or grad >= 0 on G until none do: then the KKT conditions hold exactly and s is the
//! minimiser. Every free violator leaves F; a zero-set violator enters F only where the gradient
//! is lowest among its neighbours, since a transient makes the gradient negative over a run of
//! frames of which the solution keeps few (the cold start picks its free frames the same way).
//! If the exchanges stop reducing the violations for BACKUP pivots (ill-conditioned
//! cases: a slow kernel fitted to fast transients), a monotone phase takes over: Lawson-Hanson
//! steps from a feasible iterate, adding violating frames in blocks (one at a time after a
//! zero-length step), so the objective never increases and the phase cannot cycle.
//! Each pivot costs O(n); 8-18 pivots from a cold start, 1-3 from a warm one. After an
//! exchange only the blocks of D_G D_G^T that the moved frames touch are solved again (see
//! `resolve_blocks`); the KKT pass checks s = 0 on the zero set, and a full solve replaces a
//! partial one whose residual exceeds the tolerance.
//!
//! The recursion is the untruncated kernel; the contract's kernel stops where it has decayed
//! to 1e-6 of its peak, so the two objectives differ by terms of relative size 1e-6 * 1e-6.

use crate::banded;
use crate::kernel::Model;
use crate::workspace::{Outcome, Workspace};

/// Solves one trace (already scaled, see `solve.rs`) at penalty `lam`, from the support of
/// `init` (a warm start) or from s = 0. `Ok` when the KKT conditions hold; `Err` with a
/// feasible iterate in `s_out` after `max_iters` pivots.
#[allow(clippy::too_many_arguments)]
pub fn solve(
    m: &Model,
    y: &[f64],
    lam: f64,
    max_iters: usize,
    tol: f64,
    init: Option<&[f64]>,
    s_out: &mut [f64],
    ws: &mut Workspace,
) -> Result<Outcome, Outcome> {
    let n = y.len();
    if n == 1 {
        s_out[0] = 0.0;
        return Ok(Outcome {
            baseline: y[0],
            iterations: 0,
            converged: true,
        });
    }
    let nm = n - 1;
    let mut b = Buffers::new(ws, nm);
    let p = Problem::new(m, y, lam, tol, b.dz, b.d1);
    let mut iterations = 0;
    let mut ninf = nm + 1;
    match init {
        Some(s0) => (0..nm).for_each(|k| b.free[k] = s0[k] > 0.0),
        None => {
            iterations = 1;
            let n_bad = p.cold_start(y, b.free, b.nu);
            if n_bad == 0 || iterations >= max_iters {
                s_out.iter_mut().for_each(|v| *v = 0.0);
                return finish(s_out, nm, p.mean_y, iterations, n_bad == 0);
            }
            ninf = n_bad;
        }
    }
    let mut kk = zero_set(b.free, nm, b.gidx);
    let mut backup = BACKUP;
    let mut mode = Mode::Pivot;
    // After an exchange: how many frames changed sides (only the blocks they touch are solved).
    let mut moved: Option<usize> = None;
    loop {
        iterations += 1;
        let baseline = match moved {
            Some(nf) => b.resolve_blocks(&p, kk, nf),
            None => b.solve_face(&p, kk),
        };
        let Check {
            n_bad,
            kk_next,
            moved: nf,
            residual,
        } = b.check_kkt(&p, baseline);
        if moved.is_some() && residual > p.tol_s {
            // The blocks re-solved did not give the face minimiser (s != 0 on the zero set):
            // solve the whole face instead (not counted as a pivot).
            moved = None;
            iterations -= 1;
            continue;
        }
        match &mut mode {
            Mode::Pivot => {
                if n_bad == 0 || iterations >= max_iters {
                    b.feasible_into(s_out);
                    return finish(s_out, nm, baseline, iterations, n_bad == 0);
                }
                if n_bad < ninf {
                    ninf = n_bad;
                    backup = BACKUP;
                } else if backup >= 1 {
                    backup -= 1;
                } else {
                    // Pivoting oscillates (ill-conditioned: slow kernel, model mismatch):
                    // continue monotonically from the iterate made feasible.
                    mode = Mode::Monotone { single: false };
                    moved = None;
                    b.feasible_into(s_out);
                    (0..nm).for_each(|k| b.free[k] = s_out[k] > 0.0);
                    kk = zero_set(b.free, nm, b.gidx);
                    if iterations >= max_iters {
                        return finish(s_out, nm, baseline, iterations, false);
                    }
                    continue;
                }
                // Exchange: the violating frames chosen by `check_kkt` change sides.
                std::mem::swap(&mut b.free, &mut b.free2);
                std::mem::swap(&mut b.gidx, &mut b.gidx2);
                std::mem::swap(&mut b.pos, &mut b.pos2);
                kk = kk_next;
                moved = Some(nf);
            }
            Mode::Monotone { single } => {
                if b.monotone_step(&p, baseline, s_out, single) {
                    return finish(s_out, nm, baseline, iterations, true);
                }
                if iterations >= max_iters {
                    s_out[..nm].iter_mut().for_each(|v| *v = v.max(0.0));
                    return finish(s_out, nm, baseline, iterations, false);
                }
                kk = zero_set(b.free, nm, b.gidx);
            }
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Block principal pivoting (fast, not monotone).
    Pivot,
    /// Monotone active set; `single` after a zero-length step (add one frame, as Lawson-Hanson).
    Monotone { single: bool },
}

/// Full-exchange pivots allowed without fewer violations before switching to the monotone
/// phase (Kim & Park use 3; real recordings need more patience).
const BACKUP: usize = 10;

/// The scalars of one problem: the AR(2) form, the sums the baseline needs, the tolerances.
struct Problem {
    n: usize,
    nm: usize,
    g1: f64,
    g2: f64,
    alpha: f64,
    inv_alpha: f64,
    /// lam * G_dc.
    mu: f64,
    sum_y: f64,
    /// sum(z0) with z0[k] = y[k+1] - mu w[k].
    sum_z: f64,
    mean_y: f64,
    /// Feasibility tolerances for s (free frames) and the gradient (zero frames).
    tol_s: f64,
    tol_g: f64,
}

impl Problem {
    /// Fills `dz` = D z0 and `d1` = D 1, where z0[k] = y[k+1] - mu w[k] and w = D^T 1 / alpha,
    /// and computes the scalars.
    fn new(m: &Model, y: &[f64], lam: f64, tol: f64, dz: &mut [f64], d1: &mut [f64]) -> Problem {
        let n = y.len();
        let nm = n - 1;
        let (g1, g2) = m.ar2();
        let alpha = m.alpha();
        let mu = lam * m.g_dc;
        let w_mid = (1.0 - g1 - g2) / alpha;
        let wk = |k: usize| {
            if k + 1 == nm {
                1.0 / alpha
            } else if k + 2 == nm {
                (1.0 - g1) / alpha
            } else {
                w_mid
            }
        };
        let mut sum_z = 0.0;
        let (mut zm1, mut zm2) = (0.0, 0.0);
        for k in 0..nm {
            let z = y[k + 1] - mu * wk(k);
            sum_z += z;
            dz[k] = z - g1 * zm1 - g2 * zm2;
            d1[k] = match k {
                0 => 1.0,
                1 => 1.0 - g1,
                _ => 1.0 - g1 - g2,
            };
            zm2 = zm1;
            zm1 = z;
        }
        let sum_y: f64 = y.iter().sum();
        let mean_y = sum_y / n as f64;
        let spread = y.iter().fold(0.0f64, |a, v| a.max((v - mean_y).abs()));
        let scale = spread + 1e-6 * mean_y.abs() + f64::MIN_POSITIVE;
        Problem {
            n,
            nm,
            g1,
            g2,
            alpha,
            inv_alpha: 1.0 / alpha,
            mu,
            sum_y,
            sum_z,
            mean_y,
            tol_s: tol * scale,
            tol_g: tol * scale * m.g_dc.max(1.0),
        }
    }

    /// Cold start from s = 0, where b = mean(y) and the gradient is
    /// g = mu - alpha D^{-T} (y[1..] - b): one backward recursion (into `x`). Frames whose
    /// gradient is negative violate the KKT conditions there; of those, only the frames where
    /// the gradient is lowest within `COLD_WINDOW` frames either side are marked free (a
    /// transient makes the gradient negative over many frames, but its spikes sit near the
    /// minimum; a dense start costs several pivots to thin out). Returns how many frames
    /// violate (0: s = 0 is optimal).
    fn cold_start(&self, y: &[f64], free: &mut [bool], x: &mut [f64]) -> usize {
        let (g1, g2) = (self.g1, self.g2);
        let (mut x1, mut x2) = (0.0, 0.0);
        let mut n_bad = 0;
        for k in (0..self.nm).rev() {
            let xk = (y[k + 1] - self.mean_y) + g1 * x1 + g2 * x2;
            x2 = x1;
            x1 = xk;
            x[k] = xk;
            n_bad += (self.mu - self.alpha * xk < -self.tol_g) as usize;
        }
        let nm = self.nm;
        for k in 0..nm {
            let xk = x[k];
            free[k] = self.mu - self.alpha * xk < -self.tol_g
                && x[k.saturating_sub(COLD_WINDOW)..k].iter().all(|&v| xk >= v)
                && x[k + 1..(k + 1 + COLD_WINDOW).min(nm)]
                    .iter()
                    .all(|&v| xk > v);
        }
        n_bad
    }
}

/// Half-width (frames) of the window in which a cold start's free frame must be the gradient's
/// minimum. Any value gives the same minimiser; 4 took the fewest pivots on simulations
/// (30 Hz) and the real recordings (30-158 Hz).
const COLD_WINDOW: usize = 4;

/// What one KKT pass found.
struct Check {
    /// Frames violating the KKT conditions.
    n_bad: usize,
    /// Size of the zero set after the exchange.
    kk_next: usize,
    /// Frames that change sides at the exchange (listed in `flips`).
    moved: usize,
    /// Largest |s| on the zero set: the face minimiser has s = 0 there, so this is the
    /// residual of the banded solve (rounding only, unless the solution is stale).
    residual: f64,
}

/// Clean rows of the zero list between two blocks to re-solve up to which the two are solved
/// as one system (re-solving a clean block gives the same solution; one longer solve runs
/// two chains at once and costs one call).
const MERGE_ROWS: usize = 64;

/// The active-set buffers of a workspace, borrowed for one solve (length n - 1 each).
struct Buffers<'a> {
    dz: &'a mut [f64],
    d1: &'a mut [f64],
    /// Free (s > 0) frames, and the next free set after the exchange.
    free: &'a mut [bool],
    free2: &'a mut [bool],
    /// Zero-set frames (first `kk` entries), and the next zero set.
    gidx: &'a mut [usize],
    gidx2: &'a mut [usize],
    /// Per frame: its position in the zero list, or the position of the next zero frame
    /// (for `gidx` and `gidx2`).
    pos: &'a mut [usize],
    pos2: &'a mut [usize],
    /// The frames that change sides at the exchange `check_kkt` prepared, in increasing order.
    flips: &'a mut [usize],
    l1: &'a mut [f64],
    l2: &'a mut [f64],
    dd: &'a mut [f64],
    uz: &'a mut [f64],
    u1: &'a mut [f64],
    /// Multipliers on the zero set: the z part and the part multiplying b.
    nu: &'a mut [f64],
    tv: &'a mut [f64],
    /// The face minimiser s.
    sv: &'a mut [f64],
}

impl<'a> Buffers<'a> {
    fn new(ws: &'a mut Workspace, nm: usize) -> Buffers<'a> {
        Buffers {
            dz: &mut ws.dz[..nm],
            d1: &mut ws.d1[..nm],
            free: &mut ws.free,
            free2: &mut ws.free2,
            gidx: &mut ws.gidx,
            gidx2: &mut ws.gidx2,
            pos: &mut ws.pos,
            pos2: &mut ws.pos2,
            flips: &mut ws.flips,
            l1: &mut ws.l1,
            l2: &mut ws.l2,
            dd: &mut ws.dd,
            uz: &mut ws.uz,
            u1: &mut ws.u1,
            nu: &mut ws.nu[..nm],
            tv: &mut ws.tv[..nm],
            sv: &mut ws.sv[..nm],
        }
    }

    /// The minimiser on the face whose zero set is `gidx[..kk]`: solves
    /// (D_G D_G^T) [nu_z, nu_1] = [D z, D 1] on G (two chains, see banded.rs), scatters the
    /// solution to full length (zero on the free frames) and returns the optimal baseline.
    fn solve_face(&mut self, p: &Problem, kk: usize) -> f64 {
        // Zero everywhere, then the solution on G (no branches on the gaps).
        self.nu.fill(0.0);
        self.tv.fill(0.0);
        self.solve_rows(p, 0, kk);
        self.baseline(p)
    }

    /// The face minimiser after an exchange that moved the frames `flips[..nf]` (the previous
    /// face's solution is in `nu`, `tv`), re-solving only the blocks of the zero set they touch.
    /// The rows of D of two zero frames three or more apart share no column, so D_G D_G^T is
    /// block diagonal, a block per run of zero frames at most two apart, and a block's solution
    /// depends only on its own rows: a block with no moved frame within two frames of its ends
    /// has the same rows as before, and keeps its solution exactly.
    fn resolve_blocks(&mut self, p: &Problem, kk: usize, nf: usize) -> f64 {
        // Rows `lo..hi` of the zero list are still to be solved; rows below `hi` are done.
        let (mut lo, mut hi) = (0, 0);
        for i in 0..nf {
            let f = self.flips[i];
            let q = self.pos[f];
            if self.free[f] {
                self.nu[f] = 0.0;
                self.tv[f] = 0.0;
                // The blocks either side, where they reach within two frames of f.
                if q >= 1 && self.gidx[q - 1] + 2 >= f {
                    (lo, hi) = self.add_block(p, q - 1, kk, lo, hi);
                }
                if q < kk && self.gidx[q] <= f + 2 {
                    (lo, hi) = self.add_block(p, q, kk, lo, hi);
                }
            } else {
                (lo, hi) = self.add_block(p, q, kk, lo, hi);
            }
        }
        self.solve_rows(p, lo, hi);
        self.baseline(p)
    }

    /// Adds the block of the zero list containing row `q` to the pending rows `lo..hi` (a union
    /// of whole blocks): unless it lies below `hi` (already added), either extends them over
    /// the clean blocks in between, when they are few rows, or solves them and starts anew.
    /// Returns the pending rows.
    fn add_block(
        &mut self,
        p: &Problem,
        q: usize,
        kk: usize,
        lo: usize,
        hi: usize,
    ) -> (usize, usize) {
        if q < hi {
            return (lo, hi);
        }
        let g = &self.gidx[..kk];
        let mut start = q;
        while start > hi && g[start] - g[start - 1] <= 2 {
            start -= 1;
        }
        let mut end = q + 1;
        while end < kk && g[end] - g[end - 1] <= 2 {
            end += 1;
        }
        if start - hi <= MERGE_ROWS {
            return (lo, end);
        }
        self.solve_rows(p, lo, hi);
        (start, end)
    }

    /// Solves the rows `lo..hi` of the zero list (a union of whole blocks) and scatters the
    /// solution into `nu`, `tv`.
    fn solve_rows(&mut self, p: &Problem, lo: usize, hi: usize) {
        let rows = &self.gidx[lo..hi];
        banded::solve_twisted(
            &banded::Band::new(rows, p.g1, p.g2, self.dz, self.d1),
            hi - lo,
            &mut banded::Buffers {
                l1: &mut self.l1[lo..hi],
                l2: &mut self.l2[lo..hi],
                dd: &mut self.dd[lo..hi],
                xa: &mut self.uz[lo..hi],
                xb: &mut self.u1[lo..hi],
            },
        );
        for (q, &gq) in (lo..hi).zip(rows) {
            self.nu[gq] = self.uz[q];
            self.tv[gq] = self.u1[q];
        }
    }

    /// The optimal baseline given the face solution in `nu`, `tv` (zero on the free frames):
    /// n b = sum(y) - sum(c(b)), with sum(c) = sum(z) - sum_G nu_j (D 1)_j.
    fn baseline(&self, p: &Problem) -> f64 {
        let (mut cz, mut c1) = (0.0, 0.0);
        for ((&xz, &x1), &w) in self.nu.iter().zip(self.tv.iter()).zip(self.d1.iter()) {
            cz += xz * w;
            c1 += x1 * w;
        }
        (p.sum_y - (p.sum_z - cz)) / (p.n as f64 - (p.nm as f64 - c1))
    }

    /// One forward pass: nu = nu_z - b nu_1, s = (D z - b D 1 - D D^T nu) / alpha into `sv`,
    /// the KKT check, and (speculatively) the next free set and zero list after the exchange
    /// (every free violator, and the zero-set violators at a local minimum of the gradient),
    /// with the frames that change sides in `flips`.
    fn check_kkt(&mut self, p: &Problem, baseline: f64) -> Check {
        let (nm, g1, g2) = (p.nm, p.g1, p.g2);
        let (nu, tv) = (&*self.nu, &*self.tv);
        let nu_at = |k: usize| {
            if k < nm {
                nu[k] - baseline * tv[k]
            } else {
                0.0
            }
        };
        let (mut a0, mut a1) = (nu_at(0), nu_at(1));
        let mut a_prev = 0.0;
        let (mut t1, mut t2) = (0.0, 0.0);
        let mut n_bad = 0usize;
        let mut kk2 = 0usize;
        let mut nf = 0usize;
        let mut residual = 0.0f64;
        for k in 0..nm {
            let a2 = nu_at(k + 2);
            let tvk = a0 - g1 * a1 - g2 * a2;
            let dtk = tvk - g1 * t1 - g2 * t2;
            t2 = t1;
            t1 = tvk;
            let s = (self.dz[k] - baseline * self.d1[k] - dtk) * p.inv_alpha;
            self.sv[k] = s;
            let fk = self.free[k];
            let bad = if fk {
                s < -p.tol_s
            } else {
                -p.alpha * a0 < -p.tol_g
            };
            n_bad += bad as usize;
            residual = residual.max(if fk { 0.0 } else { s.abs() });
            // Every free violator leaves the free set; a zero-set violator enters only where
            // its gradient is lowest among its neighbours (one frame per cluster per pivot).
            let flip = bad && (fk || (a0 >= a_prev && a0 > a1));
            let f = fk ^ flip;
            self.free2[k] = f;
            self.gidx2[kk2] = k;
            self.pos2[k] = kk2;
            kk2 += !f as usize;
            self.flips[nf] = k;
            nf += flip as usize;
            a_prev = a0;
            a0 = a1;
            a1 = a2;
        }
        Check {
            n_bad,
            kk_next: kk2,
            moved: nf,
            residual,
        }
    }

    /// `s_out` = the face minimiser clipped to the free frames and to s >= 0.
    fn feasible_into(&self, s_out: &mut [f64]) {
        for (k, o) in s_out[..self.sv.len()].iter_mut().enumerate() {
            *o = if self.free[k] {
                self.sv[k].max(0.0)
            } else {
                0.0
            };
        }
    }

    /// One Lawson-Hanson step with block additions: `s_out` holds a feasible iterate on the
    /// face `free`, `sv` the minimiser on that face. The objective never increases, so the
    /// phase cannot cycle. Returns true when the KKT conditions hold (`s_out` is the answer).
    // Indexing reads best here: each loop walks four arrays in step.
    #[allow(clippy::needless_range_loop)]
    fn monotone_step(
        &mut self,
        p: &Problem,
        baseline: f64,
        s_out: &mut [f64],
        single: &mut bool,
    ) -> bool {
        let nm = p.nm;
        let mut t = f64::INFINITY;
        for k in 0..nm {
            if self.free[k] && self.sv[k] < 0.0 {
                t = t.min(s_out[k] / (s_out[k] - self.sv[k]));
            }
        }
        if t.is_finite() {
            // Step towards the face minimiser until the first frame reaches zero; drop those.
            if t <= 0.0 {
                *single = true;
            }
            for k in 0..nm {
                if self.free[k] {
                    let v = s_out[k] + t * (self.sv[k] - s_out[k]);
                    let hits = self.sv[k] < 0.0 && s_out[k] <= t * (s_out[k] - self.sv[k]);
                    if hits || v <= 0.0 {
                        self.free[k] = false;
                        s_out[k] = 0.0;
                    } else {
                        s_out[k] = v;
                    }
                }
            }
            return false;
        }
        for k in 0..nm {
            s_out[k] = if self.free[k] { self.sv[k] } else { 0.0 };
        }
        // Face minimiser is feasible: add the frames whose gradient is negative.
        let grad = |k: usize| -p.alpha * (self.nu[k] - baseline * self.tv[k]);
        let mut worst = (0.0, usize::MAX);
        let mut n_add = 0;
        for k in 0..nm {
            let g = grad(k);
            if !self.free[k] && g < -p.tol_g {
                n_add += 1;
                if g < worst.0 {
                    worst = (g, k);
                }
            }
        }
        if n_add == 0 {
            return true;
        }
        if *single {
            self.free[worst.1] = true;
            *single = false;
        } else {
            for k in 0..nm {
                if !self.free[k] && grad(k) < -p.tol_g {
                    self.free[k] = true;
                }
            }
        }
        false
    }
}

fn finish(
    s_out: &mut [f64],
    nm: usize,
    baseline: f64,
    iterations: usize,
    converged: bool,
) -> Result<Outcome, Outcome> {
    s_out[nm] = 0.0;
    let out = Outcome {
        baseline,
        iterations,
        converged,
    };
    if converged {
        Ok(out)
    } else {
        Err(out)
    }
}

/// Writes the frames of the zero set (not free) into `gidx`, returning how many there are.
fn zero_set(free: &[bool], nm: usize, gidx: &mut [usize]) -> usize {
    let mut count = 0;
    for (k, &f) in free[..nm].iter().enumerate() {
        gidx[count] = k;
        count += !f as usize;
    }
    count
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{synthetic, Spec};

    const SPEC: Spec = Spec {
        rate: 0.03,
        offset: 1.0,
        noise: 0.3,
    };

    /// Every exchange of a cold solve: the blocks re-solved give the face minimiser and the
    /// baseline of a full solve of the new face, and a stale block shows in the residual.
    #[test]
    fn block_resolve_equals_full_solve() {
        for &(td, n, seed) in &[(0.5, 3000, 3), (1.5, 3000, 4), (0.2, 800, 5)] {
            let m = Model::new(0.05, td, 30.0);
            let y = synthetic(&m, n, seed, SPEC);
            let nm = n - 1;
            let mut ws = Workspace::new(n);
            let mut b = Buffers::new(&mut ws, nm);
            let p = Problem::new(&m, &y, 0.01, 1e-9, b.dz, b.d1);
            p.cold_start(&y, b.free, b.nu);
            let mut kk = zero_set(b.free, nm, b.gidx);
            let mut baseline = b.solve_face(&p, kk);
            let (mut exchanges, mut partial) = (0, 0);
            loop {
                let check = b.check_kkt(&p, baseline);
                assert!(check.residual <= p.tol_s, "residual {:e}", check.residual);
                if check.n_bad == 0 {
                    break;
                }
                std::mem::swap(&mut b.free, &mut b.free2);
                std::mem::swap(&mut b.gidx, &mut b.gidx2);
                std::mem::swap(&mut b.pos, &mut b.pos2);
                kk = check.kk_next;
                // Rows of the zero list not re-solved keep NaN in the solve's output.
                b.uz[..kk].fill(f64::NAN);
                baseline = b.resolve_blocks(&p, kk, check.moved);
                partial += b.uz[..kk].iter().any(|v| v.is_nan()) as usize;
                let (nu, tv) = (b.nu.to_vec(), b.tv.to_vec());
                let full = b.solve_face(&p, kk);
                let scale = nu.iter().fold(1.0f64, |a, v| a.max(v.abs()));
                for k in 0..nm {
                    assert!((nu[k] - b.nu[k]).abs() <= 1e-10 * scale, "nu at {k}");
                    assert!((tv[k] - b.tv[k]).abs() <= 1e-10 * scale, "tv at {k}");
                }
                assert!((baseline - full).abs() <= 1e-10 * (1.0 + full.abs()));
                exchanges += 1;
                assert!(exchanges < 100, "pivoting did not finish");
            }
            assert!(exchanges >= 3, "{exchanges} exchanges");
            assert!(partial >= 1, "no exchange re-solved only part of the face");
            // A block left with the previous face's solution violates s = 0 on the zero set.
            let k = b.gidx[kk / 2];
            b.nu[k] += 1e-3;
            assert!(b.check_kkt(&p, baseline).residual > p.tol_s);
        }
    }
}
