//! Helpers shared by the unit tests and the benchmarks in `benches/` (compiled for tests, or
//! with the `testing` feature): a seeded pseudo-random generator and synthetic calcium traces.

use crate::conv;
use crate::kernel::Model;

/// A 64-bit linear congruential generator (Knuth's MMIX constants): reproducible uniform
/// numbers without a dependency. Not for statistics beyond test data.
pub struct Lcg(u64);

impl Lcg {
    pub fn new(seed: u64) -> Lcg {
        Lcg(seed)
    }

    /// Uniform in [0, 1) from the top 53 bits of the next state.
    pub fn uniform(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// How [`synthetic`] draws a trace.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    /// Probability of a unit spike per frame.
    pub rate: f64,
    /// Constant baseline added to the calcium.
    pub offset: f64,
    /// Noise amplitude: each frame adds `noise * (u1 + u2 + u3 - 1.5)` (about Gaussian).
    pub noise: f64,
}

/// The traces of the unit tests: a spike every 33 frames on average, offset 0.3, noise 0.2.
pub const TEST_TRACE: Spec = Spec {
    rate: 0.03,
    offset: 0.3,
    noise: 0.2,
};

/// A synthetic trace of `n` frames: unit spikes (drawn first, one number per frame) through the
/// model's kernel, plus the offset and noise (three numbers per frame).
pub fn synthetic(m: &Model, n: usize, seed: u64, spec: Spec) -> Vec<f64> {
    let mut rng = Lcg::new(seed);
    let s: Vec<f64> = (0..n)
        .map(|_| if rng.uniform() < spec.rate { 1.0 } else { 0.0 })
        .collect();
    let (mut c, mut w) = (vec![0.0; n], vec![0.0; n]);
    conv::forward(m, &s, &mut c, &mut w);
    c.iter()
        .map(|v| {
            v + spec.offset + spec.noise * (rng.uniform() + rng.uniform() + rng.uniform() - 1.5)
        })
        .collect()
}
