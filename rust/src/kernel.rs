//! The CaTune calcium kernel and its AR(2) form.
//!
//! h[i] = exp(-i / (fs tau_decay)) - exp(-i / (fs tau_rise)) for i = 0..L-1, divided by its
//! maximum (so the peak is 1 and h[0] = 0), truncated at L = max(2, ceil(-ln(1e-6) tau_decay fs))
//! samples, where it has decayed to 1e-6 of its peak. Its AR(2) form: with d = exp(-dt/tau_decay),
//! r = exp(-dt/tau_rise), dt = 1/fs, the calcium c = h * s obeys
//! c[t] = (d + r) c[t-1] - d r c[t-2] + alpha s[t-1] (untruncated). The same definitions are used
//! by the CaTune web app, so exported parameters mean the same thing.

/// Parameters of the CaTune model, checked once and shared by every solver.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Model {
    /// Decay root d = exp(-dt / tau_decay).
    pub d: f64,
    /// Rise root r = exp(-dt / tau_rise).
    pub r: f64,
    /// Peak of the unnormalised kernel d^i - r^i over i = 0..len.
    pub peak: f64,
    /// Kernel length L (samples), truncation where the kernel has decayed to 1e-6.
    pub len: usize,
    /// Sum of the (normalised, truncated) kernel: the DC gain G_dc.
    pub g_dc: f64,
}

/// Checks the model parameters, returning a message naming the argument and the fix.
pub fn validate(tau_rise: f64, tau_decay: f64, fs: f64) -> Result<(), String> {
    if !fs.is_finite() || fs <= 0.0 {
        return Err(format!(
            "fs must be a positive sampling rate in Hz, got {fs}; pass e.g. fs=30.0"
        ));
    }
    if !tau_rise.is_finite() || tau_rise <= 0.0 {
        return Err(format!(
            "tau_rise must be a positive time in seconds, got {tau_rise}; e.g. 0.05 for GCaMP6f"
        ));
    }
    if !tau_decay.is_finite() || tau_decay <= 0.0 {
        return Err(format!(
            "tau_decay must be a positive time in seconds, got {tau_decay}; e.g. 0.5 for GCaMP6f"
        ));
    }
    if tau_rise >= tau_decay {
        return Err(format!(
            "tau_rise ({tau_rise} s) must be smaller than tau_decay ({tau_decay} s); swap them if they were given in the wrong order"
        ));
    }
    let frames = tau_decay * fs;
    if frames < MIN_DECAY_FRAMES {
        return Err(format!(
            "tau_decay * fs = {frames:e} frames is below 1/700: the kernel would decay to nothing \
             within one frame (exp(-700) is the edge of f64); check the units (seconds and Hz)"
        ));
    }
    let len = -(1e-6f64).ln() * frames;
    if !len.is_finite() || len > MAX_KERNEL_LEN as f64 {
        return Err(format!(
            "tau_decay * fs = {frames:e} gives a kernel of {len:e} samples (at most \
             {MAX_KERNEL_LEN}); check the units (seconds and Hz)"
        ));
    }
    Ok(())
}

/// Smallest tau_decay * fs accepted: below 1/700 frames, exp(-1 / (tau_decay fs)) leaves the
/// normal range of f64 and the kernel's peak (which normalises it) is no longer representable.
pub const MIN_DECAY_FRAMES: f64 = 1.0 / 700.0;
/// Longest kernel accepted (samples): far beyond any recording, and no allocation of it.
pub const MAX_KERNEL_LEN: usize = 50_000_000;

/// L = max(2, ceil(-ln(1e-6) * tau_decay * fs)).
pub fn kernel_len(tau_decay: f64, fs: f64) -> usize {
    let l = (-(1e-6f64).ln() * tau_decay * fs).ceil();
    if l.is_finite() && l > 2.0 {
        l as usize
    } else {
        2
    }
}

/// (g1, g2, d, r): the AR(2) coefficients and the two roots.
pub fn tau_to_ar2(tau_rise: f64, tau_decay: f64, fs: f64) -> (f64, f64, f64, f64) {
    let dt = 1.0 / fs;
    let d = (-dt / tau_decay).exp();
    let r = (-dt / tau_rise).exp();
    (d + r, -d * r, d, r)
}

fn raw(i: usize, tau_rise: f64, tau_decay: f64, fs: f64) -> f64 {
    let t = i as f64;
    (-t / (fs * tau_decay)).exp() - (-t / (fs * tau_rise)).exp()
}

/// h[i] = exp(-i/(fs tau_decay)) - exp(-i/(fs tau_rise)), i = 0..L-1, scaled to peak 1.
pub fn build_kernel(tau_rise: f64, tau_decay: f64, fs: f64) -> Vec<f64> {
    let len = kernel_len(tau_decay, fs);
    let mut h: Vec<f64> = (0..len).map(|i| raw(i, tau_rise, tau_decay, fs)).collect();
    let peak = h.iter().cloned().fold(f64::MIN, f64::max);
    if peak > 0.0 {
        h.iter_mut().for_each(|v| *v /= peak);
    }
    h
}

impl Model {
    /// Builds the model; parameters must have passed [`validate`].
    pub fn new(tau_rise: f64, tau_decay: f64, fs: f64) -> Model {
        let (_, _, d, r) = tau_to_ar2(tau_rise, tau_decay, fs);
        let len = kernel_len(tau_decay, fs);
        // The peak sits near t* = ln(ln r / ln d) / (ln d - ln r) samples; the sum runs over the whole kernel.
        let mut peak = f64::MIN;
        let mut sum = 0.0;
        for i in 0..len {
            let v = raw(i, tau_rise, tau_decay, fs);
            peak = peak.max(v);
            sum += v;
        }
        Model {
            d,
            r,
            peak,
            len,
            g_dc: sum / peak,
        }
    }

    /// [`validate`], then [`Model::new`], refusing a model whose normalisation is not finite
    /// (tau_rise so close to tau_decay that the difference of exponentials cancels to zero).
    pub fn checked(tau_rise: f64, tau_decay: f64, fs: f64) -> Result<Model, String> {
        validate(tau_rise, tau_decay, fs)?;
        let m = Model::new(tau_rise, tau_decay, fs);
        if !(m.peak > 0.0 && m.peak.is_normal() && m.g_dc.is_finite() && m.alpha().is_finite()) {
            return Err(format!(
                "tau_rise ({tau_rise} s) is too close to tau_decay ({tau_decay} s) at fs = {fs} Hz: \
                 the kernel exp(-t/tau_decay) - exp(-t/tau_rise) cancels to zero; make tau_rise smaller"
            ));
        }
        Ok(m)
    }

    /// AR(2) coefficients g1 = d + r, g2 = -d r.
    pub fn ar2(&self) -> (f64, f64) {
        (self.d + self.r, -self.d * self.r)
    }

    /// Gain of the AR(2) recursion: c[t] = g1 c[t-1] + g2 c[t-2] + alpha s[t-1] reproduces K s.
    pub fn alpha(&self) -> f64 {
        (self.d - self.r) / self.peak
    }

    /// Lipschitz constant of the smooth part: max |H(w)|^2 = G_dc^2 (the kernel is non-negative).
    pub fn lipschitz(&self) -> f64 {
        self.g_dc * self.g_dc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_matches_contract() {
        let h = build_kernel(0.02, 0.4, 30.0);
        assert_eq!(
            h.len(),
            (13.815510557964274f64 * 0.4 * 30.0).ceil() as usize
        );
        assert_eq!(h[0], 0.0);
        let max = h.iter().cloned().fold(f64::MIN, f64::max);
        assert!((max - 1.0).abs() < 1e-15);
        let m = Model::new(0.02, 0.4, 30.0);
        assert!((m.g_dc - h.iter().sum::<f64>()).abs() < 1e-12);
        assert_eq!(m.len, h.len());
    }

    #[test]
    fn short_kernel_has_two_samples() {
        assert_eq!(kernel_len(0.001, 10.0), 2);
        let h = build_kernel(0.0001, 0.001, 10.0);
        assert_eq!(h, vec![0.0, 1.0]);
    }

    #[test]
    fn ar2_recursion_reproduces_kernel() {
        let m = Model::new(0.05, 0.5, 30.0);
        let (g1, g2) = m.ar2();
        let h = build_kernel(0.05, 0.5, 30.0);
        let mut c = vec![0.0; h.len()];
        c[1] = m.alpha();
        for t in 2..h.len() {
            c[t] = g1 * c[t - 1] + g2 * c[t - 2];
        }
        for (a, b) in c.iter().zip(&h) {
            assert!((a - b).abs() < 1e-12, "{a} vs {b}");
        }
    }

    #[test]
    fn validation_names_the_argument() {
        assert!(validate(0.05, 0.5, 0.0).unwrap_err().contains("fs"));
        assert!(validate(-1.0, 0.5, 30.0).unwrap_err().contains("tau_rise"));
        assert!(validate(0.05, f64::NAN, 30.0)
            .unwrap_err()
            .contains("tau_decay"));
        assert!(validate(0.5, 0.05, 30.0).unwrap_err().contains("smaller"));
        assert!(validate(0.05, 0.5, 30.0).is_ok());
    }

    #[test]
    fn degenerate_kernels_are_refused() {
        // Underflow: the kernel decays within a frame; overflow: an endless kernel.
        assert!(validate(1e-9, 1.0 / 30.0 / 745.0, 30.0)
            .unwrap_err()
            .contains("tau_decay * fs"));
        assert!(validate(0.05, 0.5, 1e308)
            .unwrap_err()
            .contains("tau_decay * fs"));
        assert!(validate(0.05, 0.5, 1e-300)
            .unwrap_err()
            .contains("tau_decay * fs"));
        // Cancellation (tau_rise one ulp below tau_decay): refused, or a finite normalisation.
        for &fs in &[1.0, 30.0, 1e4, 1e7] {
            let td = 0.5f64;
            let tr = f64::from_bits(td.to_bits() - 1);
            if let Ok(m) = Model::checked(tr, td, fs) {
                assert!(m.g_dc.is_finite() && m.alpha().is_finite() && m.peak > 0.0);
            }
        }
        let m = Model::checked(0.05, 0.5, 30.0).unwrap();
        assert_eq!(m, Model::new(0.05, 0.5, 30.0));
    }
}
