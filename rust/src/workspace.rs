//! Per-worker buffers, allocated once per thread and reused for every cell it solves.

/// What a solve reports besides the activity.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Outcome {
    pub baseline: f64,
    pub iterations: usize,
    pub converged: bool,
}

/// Buffers for one trace of up to `capacity` frames; solvers never allocate while iterating.
#[derive(Default)]
pub struct Workspace {
    /// The trace as f64.
    pub y: Vec<f64>,
    // Active-set buffers (length n - 1).
    pub dz: Vec<f64>,
    pub d1: Vec<f64>,
    pub free: Vec<bool>,
    pub free2: Vec<bool>,
    pub gidx: Vec<usize>,
    pub gidx2: Vec<usize>,
    /// Position in the zero list of each frame (or of the next zero frame), for both lists.
    pub pos: Vec<usize>,
    pub pos2: Vec<usize>,
    /// Frames that change sides at the next exchange.
    pub flips: Vec<usize>,
    pub l1: Vec<f64>,
    pub l2: Vec<f64>,
    pub dd: Vec<f64>,
    pub uz: Vec<f64>,
    pub u1: Vec<f64>,
    pub nu: Vec<f64>,
    pub tv: Vec<f64>,
    pub sv: Vec<f64>,
    // FISTA buffers (length n).
    pub fa: Vec<f64>,
    pub fb: Vec<f64>,
    pub fc: Vec<f64>,
    pub fd: Vec<f64>,
}

impl Workspace {
    pub fn new(n: usize) -> Workspace {
        let z = || vec![0.0; n];
        Workspace {
            y: z(),
            dz: z(),
            d1: z(),
            free: vec![false; n],
            free2: vec![false; n],
            gidx: vec![0; n],
            gidx2: vec![0; n],
            pos: vec![0; n],
            pos2: vec![0; n],
            flips: vec![0; n],
            l1: z(),
            l2: z(),
            dd: z(),
            uz: z(),
            u1: z(),
            nu: z(),
            tv: z(),
            sv: z(),
            fa: z(),
            fb: z(),
            fc: z(),
            fd: z(),
        }
    }

    /// Grows the buffers if a longer trace arrives (never inside an iteration loop).
    pub fn ensure(&mut self, n: usize) {
        if self.y.len() < n {
            *self = Workspace::new(n);
        }
    }
}
