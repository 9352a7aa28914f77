//! Per-trace solve time of the active set on 9,000-frame synthetic traces (30 Hz,
//! GCaMP6f-like and GCaMP6s-like kernels): best of 60 runs, pivots, ns per frame per pivot.
//!
//! `cargo bench --manifest-path rust/Cargo.toml --features testing --bench solve_trace`

use _solver::kernel::Model;
use _solver::solve::{solve_trace, Method, Options};
use _solver::test_util::{synthetic, Spec};
use _solver::workspace::Workspace;

fn main() {
    let n = 9000;
    let spec = Spec {
        rate: 0.033,
        offset: 1.0,
        noise: 0.35,
    };
    let opts = Options {
        method: Method::ActiveSet,
        max_iters: 200,
        tol: 1e-9,
    };
    for &td in &[0.5, 1.5] {
        let m = Model::new(0.05, td, 30.0);
        let y = synthetic(&m, n, 99, spec);
        let mut ws = Workspace::new(n);
        let mut out = vec![0.0; n];
        let mut pivots = 0;
        let mut best = f64::MAX;
        for _ in 0..60 {
            let t = std::time::Instant::now();
            pivots = solve_trace(&m, &y, 0.01, &opts, None, &mut out, &mut ws).iterations;
            best = best.min(t.elapsed().as_secs_f64());
        }
        println!(
            "tau_decay {td} s: {:.3} ms per trace (best of 60), {pivots} pivots, {:.1} ns/frame/pivot",
            best * 1e3,
            best * 1e9 / (n as f64 * pivots as f64)
        );
    }
}
