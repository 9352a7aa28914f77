//! The banded solve of the active set's pivots on 9,000 frames (88% in the zero set): one
//! LDL^T chain against the twisted solver's two chains, best of 300 runs.
//!
//! `cargo bench --manifest-path rust/Cargo.toml --features testing --bench banded`

use _solver::banded::{solve_single, solve_twisted, Band, Buffers};
use _solver::test_util::Lcg;

fn main() {
    let (d, r) = ((-1.0f64 / 15.0).exp(), (-1.0f64 / 1.5).exp());
    let (g1, g2) = (d + r, -d * r);
    let mut rng = Lcg::new(5);
    let gidx: Vec<usize> = (0..9000).filter(|_| rng.uniform() < 0.88).collect();
    let kk = gidx.len();
    // Right-hand sides per frame, as the active set hands them over.
    let ra: Vec<f64> = (0..9000).map(|_| rng.uniform()).collect();
    let band = Band::new(&gidx, g1, g2, &ra, &ra);
    let (mut l1, mut l2, mut dd) = (vec![0.0; kk], vec![0.0; kk], vec![0.0; kk]);
    let (mut xa, mut xb) = (vec![0.0; kk], vec![0.0; kk]);
    let (mut best_single, mut best_twisted) = (f64::MAX, f64::MAX);
    for _ in 0..300 {
        for (solver, best) in [
            (
                solve_single as fn(&Band, usize, &mut Buffers),
                &mut best_single,
            ),
            (solve_twisted, &mut best_twisted),
        ] {
            let t = std::time::Instant::now();
            solver(
                &band,
                kk,
                &mut Buffers {
                    l1: &mut l1,
                    l2: &mut l2,
                    dd: &mut dd,
                    xa: &mut xa,
                    xb: &mut xb,
                },
            );
            *best = best.min(t.elapsed().as_secs_f64());
        }
    }
    println!(
        "banded {kk} rows: single chain {:.1} us, twisted {:.1} us",
        best_single * 1e6,
        best_twisted * 1e6
    );
}
