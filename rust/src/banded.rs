//! Solves (D_G D_G^T) x = r for the rows G of the AR(2) operator D, for two right-hand sides.
//!
//! D_G D_G^T is symmetric positive definite with bandwidth 2 (rows of D span three columns).
//! Row p of the system has diagonal `diag(g_p)` and couplings `c1[p]` (to row p-1) and
//! `c2[p]` (to row p-2), which depend only on the gaps between consecutive frames of G.
//!
//! The factorisation is a chain with one division per row, so it is latency bound. The twisted
//! solver runs two independent chains at once, LDL^T from the top over the first half and from
//! the bottom over the second half, then joins them through the 4x4 Schur complement on the two
//! rows either side of the split: exact, and about twice the throughput of one chain.

/// Band entries of D_G D_G^T for the zero set `gidx[..kk]` (frames in increasing order), from
/// the gaps between its frames as the solvers need them (no pass of their own): row p has
/// diagonal `diag(p)`, coupling `c1(p)` to row p-1 and `c2(p)` to row p-2. The rows of D are
/// (..., -g2, -g1, 1) ending on the diagonal.
pub struct Band<'a> {
    gidx: &'a [usize],
    /// The two right-hand sides before gathering: row p's are `ra[gidx[p]]`, `rb[gidx[p]]`.
    ra: &'a [f64],
    rb: &'a [f64],
    g1: f64,
    full: f64,
    /// c1 by the gap to the previous row's frame (1, 2, 3 or more), for frames >= 2.
    c1_of_gap: [f64; 4],
    minus_g2: f64,
}

impl<'a> Band<'a> {
    /// The system for the rows `gidx` of D, with right-hand sides `ra`, `rb` given per frame
    /// (gathered on G as the solve reads them).
    pub fn new(gidx: &'a [usize], g1: f64, g2: f64, ra: &'a [f64], rb: &'a [f64]) -> Band<'a> {
        Band {
            gidx,
            ra,
            rb,
            g1,
            full: 1.0 + g1 * g1 + g2 * g2,
            c1_of_gap: [0.0, -g1 + g1 * g2, -g2, 0.0],
            minus_g2: -g2,
        }
    }

    #[inline(always)]
    fn rhs(&self, p: usize) -> (f64, f64) {
        let g = self.gidx[p];
        (self.ra[g], self.rb[g])
    }

    /// Frames 0 and 1 have shorter rows of D; any later row (p >= 2, so frame >= 2) is full.
    #[inline(always)]
    fn diag(&self, p: usize) -> f64 {
        if p >= 2 {
            return self.full;
        }
        match self.gidx[p] {
            0 => 1.0,
            1 => 1.0 + self.g1 * self.g1,
            _ => self.full,
        }
    }

    /// Coupling of row p (p >= 1) to row p-1. Chosen by table, not by branches: the gaps follow
    /// the free frames, which no branch predictor can guess.
    #[inline(always)]
    fn c1(&self, p: usize) -> f64 {
        let (gp, gq) = (self.gidx[p], self.gidx[p - 1]);
        if gq == 0 && gp == 1 {
            // Row of frame 0 has no -g2 entry.
            return -self.g1;
        }
        self.c1_of_gap[(gp - gq).min(3)]
    }

    /// Coupling of row p (p >= 2) to row p-2.
    #[inline(always)]
    fn c2(&self, p: usize) -> f64 {
        if self.gidx[p] - self.gidx[p - 2] == 2 {
            self.minus_g2
        } else {
            0.0
        }
    }
}

/// Factor and solve buffers, all of length >= kk.
pub struct Buffers<'a> {
    pub l1: &'a mut [f64],
    pub l2: &'a mut [f64],
    pub dd: &'a mut [f64],
    /// Solution 1 (for the right-hand side `ra` of the band).
    pub xa: &'a mut [f64],
    /// Solution 2 (for `rb`).
    pub xb: &'a mut [f64],
}

/// State of one elimination chain: the last two rows' factor values, carried in registers so
/// the division chain never waits on memory.
#[derive(Clone, Copy, Default)]
struct Chain {
    l1: f64,
    dd1: f64,
    dd2: f64,
    xa1: f64,
    xa2: f64,
    xb1: f64,
    xb2: f64,
}

impl Chain {
    /// Eliminates row p with couplings `cc1`, `cc2` to the previous two rows of this chain.
    /// D[p] = (e - l2 cc2) - q^2 / D[p-1] with q = cc1 - cc2 l1[p-1]: one FMA before the division.
    #[inline(always)]
    fn step(&mut self, b: &mut Buffers, band: &Band, p: usize, cc1: f64, cc2: f64, e: f64) {
        let (ra, rb) = band.rhs(p);
        let q = cc1 - cc2 * self.l1;
        let l2 = cc2 * self.dd2;
        let den = (e - l2 * cc2) - (q * q) * self.dd1;
        let dd = 1.0 / den;
        let l1 = q * self.dd1;
        let xa = ra - l1 * self.xa1 - l2 * self.xa2;
        let xb = rb - l1 * self.xb1 - l2 * self.xb2;
        b.l1[p] = l1;
        b.l2[p] = l2;
        b.dd[p] = dd;
        b.xa[p] = xa;
        b.xb[p] = xb;
        *self = Chain {
            l1,
            dd1: dd,
            dd2: self.dd1,
            xa1: xa,
            xa2: self.xa1,
            xb1: xb,
            xb2: self.xb1,
        };
    }
}

/// Back-substitution state: the last two solved values of each right-hand side.
#[derive(Clone, Copy, Default)]
struct Back {
    xa1: f64,
    xa2: f64,
    xb1: f64,
    xb2: f64,
}

impl Back {
    /// Row p, whose later-eliminated neighbours carry factor entries `l1` and `l2`.
    #[inline(always)]
    fn step(&mut self, b: &mut Buffers, p: usize, l1: f64, l2: f64) {
        let xa = b.xa[p] * b.dd[p] - l1 * self.xa1 - l2 * self.xa2;
        let xb = b.xb[p] * b.dd[p] - l1 * self.xb1 - l2 * self.xb2;
        b.xa[p] = xa;
        b.xb[p] = xb;
        *self = Back {
            xa1: xa,
            xa2: self.xa1,
            xb1: xb,
            xb2: self.xb1,
        };
    }
}

/// Plain LDL^T from the top: the reference, and the path for short systems.
pub fn solve_single(band: &Band, kk: usize, b: &mut Buffers) {
    let mut ch = Chain::default();
    for p in 0..kk {
        let cc1 = if p >= 1 { band.c1(p) } else { 0.0 };
        let cc2 = if p >= 2 { band.c2(p) } else { 0.0 };
        ch.step(b, band, p, cc1, cc2, band.diag(p));
    }
    let mut bk = Back::default();
    for p in (0..kk).rev() {
        let l1 = if p + 1 < kk { b.l1[p + 1] } else { 0.0 };
        let l2 = if p + 2 < kk { b.l2[p + 2] } else { 0.0 };
        bk.step(b, p, l1, l2);
    }
}

/// Two chains at once (see the module docs). Falls back to [`solve_single`] below 16 rows.
#[allow(clippy::needless_range_loop)]
pub fn solve_twisted(band: &Band, kk: usize, b: &mut Buffers) {
    if kk < 16 {
        return solve_single(band, kk, b);
    }
    // Top chain: rows 0..s top-down. Bottom chain: rows s..kk, eliminated from kk-1 down to s;
    // there row p's couplings to its predecessors p+1, p+2 are c1[p+1] and c2[p+2].
    let s = kk / 2;
    let last = kk - 1;
    let (mut top, mut bot) = (Chain::default(), Chain::default());
    top.step(b, band, 0, 0.0, 0.0, band.diag(0));
    bot.step(b, band, last, 0.0, 0.0, band.diag(last));
    top.step(b, band, 1, band.c1(1), 0.0, band.diag(1));
    bot.step(b, band, last - 1, band.c1(last), 0.0, band.diag(last - 1));
    let (top_rows, bottom_rows) = (s, kk - s);
    for i in 2..top_rows.min(bottom_rows) {
        top.step(b, band, i, band.c1(i), band.c2(i), band.diag(i));
        let p = last - i;
        bot.step(b, band, p, band.c1(p + 1), band.c2(p + 2), band.diag(p));
    }
    if bottom_rows > top_rows {
        let p = last - top_rows;
        bot.step(b, band, p, band.c1(p + 1), band.c2(p + 2), band.diag(p));
    }
    // Interface unknowns v = (s-2, s-1, s, s+1): 4x4 Schur complement, solved densely.
    let (da, db) = (1.0 / b.dd[s - 2], 1.0 / b.dd[s - 1]);
    let l = b.l1[s - 1];
    let (dc, dd_) = (1.0 / b.dd[s + 1], 1.0 / b.dd[s]);
    let m = b.l1[s];
    let c1s = band.c1(s);
    let c2s = band.c2(s);
    let c2s1 = band.c2(s + 1);
    let mut a = [
        [da, da * l, c2s, 0.0],
        [da * l, da * l * l + db, c1s, c2s1],
        [c2s, c1s, dc * m * m + dd_, dc * m],
        [0.0, c2s1, dc * m, dc],
    ];
    let mut ra = [
        b.xa[s - 2],
        l * b.xa[s - 2] + b.xa[s - 1],
        m * b.xa[s + 1] + b.xa[s],
        b.xa[s + 1],
    ];
    let mut rb = [
        b.xb[s - 2],
        l * b.xb[s - 2] + b.xb[s - 1],
        m * b.xb[s + 1] + b.xb[s],
        b.xb[s + 1],
    ];
    // Gaussian elimination without pivoting (the matrix is symmetric positive definite).
    for k in 0..4 {
        let inv = 1.0 / a[k][k];
        for i in k + 1..4 {
            let f = a[i][k] * inv;
            for j in k..4 {
                a[i][j] -= f * a[k][j];
            }
            ra[i] -= f * ra[k];
            rb[i] -= f * rb[k];
        }
    }
    for k in (0..4).rev() {
        for j in k + 1..4 {
            ra[k] -= a[k][j] * ra[j];
            rb[k] -= a[k][j] * rb[j];
        }
        ra[k] /= a[k][k];
        rb[k] /= a[k][k];
    }
    for (i, p) in (s - 2..s + 2).enumerate() {
        b.xa[p] = ra[i];
        b.xb[p] = rb[i];
    }
    // Interleaved back substitution away from the interface. Top rows p < s-2 see the solved
    // rows p+1, p+2 through l1[p+1], l2[p+2]; bottom rows p > s+1 see p-1, p-2 through
    // l1[p-1], l2[p-2].
    let mut up = Back {
        xa1: ra[0],
        xa2: ra[1],
        xb1: rb[0],
        xb2: rb[1],
    };
    let mut down = Back {
        xa1: ra[3],
        xa2: ra[2],
        xb1: rb[3],
        xb2: rb[2],
    };
    let (n_up, n_down) = (s - 2, kk - (s + 2));
    for i in 0..n_up.min(n_down) {
        let p = s - 3 - i;
        up.step(b, p, b.l1[p + 1], b.l2[p + 2]);
        let q = s + 2 + i;
        down.step(b, q, b.l1[q - 1], b.l2[q - 2]);
    }
    for i in n_down..n_up {
        let p = s - 3 - i;
        up.step(b, p, b.l1[p + 1], b.l2[p + 2]);
    }
    for i in n_up..n_down {
        let q = s + 2 + i;
        down.step(b, q, b.l1[q - 1], b.l2[q - 2]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::Lcg;

    fn dense_check(gidx: &[usize], g1: f64, g2: f64, xa: &[f64], ra: &[f64]) {
        // Rebuild D_G D_G^T densely and check the residual.
        let nm = gidx.last().unwrap() + 1;
        let row = |k: usize| {
            let mut r = vec![0.0; nm];
            r[k] = 1.0;
            if k >= 1 {
                r[k - 1] = -g1;
            }
            if k >= 2 {
                r[k - 2] = -g2;
            }
            r
        };
        let rows: Vec<Vec<f64>> = gidx.iter().map(|&k| row(k)).collect();
        for (i, ri) in rows.iter().enumerate() {
            let mut acc = 0.0;
            for (j, rj) in rows.iter().enumerate() {
                let mij: f64 = ri.iter().zip(rj).map(|(a, b)| a * b).sum();
                acc += mij * xa[j];
            }
            assert!((acc - ra[i]).abs() < 1e-9, "row {i}: {acc} vs {}", ra[i]);
        }
    }

    #[test]
    fn twisted_matches_single_and_dense() {
        let (d, r) = ((-1.0f64 / 15.0).exp(), (-1.0f64 / 1.5).exp());
        let (g1, g2) = (d + r, -d * r);
        let mut rng = Lcg::new(5);
        let mut rnd = || rng.uniform();
        for trial in 0..40 {
            let n = 10 + trial * 7;
            let density = [0.95, 0.7, 0.5, 0.3][trial % 4];
            let gidx: Vec<usize> = (0..n).filter(|_| rnd() < density).collect();
            let kk = gidx.len();
            if kk == 0 {
                continue;
            }
            let ra: Vec<f64> = (0..kk).map(|_| rnd() - 0.5).collect();
            let rb: Vec<f64> = (0..kk).map(|_| rnd() - 0.5).collect();
            // The band reads the right-hand sides per frame (free frames hold junk).
            let (mut fa, mut fb) = (vec![f64::NAN; n], vec![f64::NAN; n]);
            for (q, &g) in gidx.iter().enumerate() {
                fa[g] = ra[q];
                fb[g] = rb[q];
            }
            let band = Band::new(&gidx, g1, g2, &fa, &fb);
            let mut bufs: Vec<Vec<f64>> = vec![vec![0.0; kk]; 3];
            let (mut xa, mut xb) = (vec![0.0; kk], vec![0.0; kk]);
            let (mut ya, mut yb) = (vec![0.0; kk], vec![0.0; kk]);
            {
                let [l1, l2, dd] = &mut bufs[..] else {
                    unreachable!()
                };
                solve_single(
                    &band,
                    kk,
                    &mut Buffers {
                        l1,
                        l2,
                        dd,
                        xa: &mut xa,
                        xb: &mut xb,
                    },
                );
                solve_twisted(
                    &band,
                    kk,
                    &mut Buffers {
                        l1,
                        l2,
                        dd,
                        xa: &mut ya,
                        xb: &mut yb,
                    },
                );
            }
            dense_check(&gidx, g1, g2, &xa, &ra);
            dense_check(&gidx, g1, g2, &ya, &ra);
            dense_check(&gidx, g1, g2, &yb, &rb);
            for i in 0..kk {
                assert!(
                    (xa[i] - ya[i]).abs() < 1e-9 * (1.0 + xa[i].abs()),
                    "trial {trial} row {i}"
                );
                assert!((xb[i] - yb[i]).abs() < 1e-9 * (1.0 + xb[i].abs()));
            }
        }
    }
}
