//! The training loss split by noise level: L(λ) = E||ε - ε_θ(x_t, λ)||² over the images whose λ fell in
//! each bin of [-20, 10] (the range the trainer draws λ from). Which levels the network learns first and
//! which stay hard: at low λ, x_t is nearly all noise and ε ≈ x_t is easy to read off; at high λ the noise
//! is a faint layer over the image, hard to tell apart from its texture.

/// The bins' edges: [LOWEST, HIGHEST] in steps of WIDTH.
pub const LOWEST: f64 = -20.0;
pub const HIGHEST: f64 = 10.0;
pub const WIDTH: f64 = 2.0;

/// Bins of [`LOWEST`, `HIGHEST`].
pub const BINS: usize = ((HIGHEST - LOWEST) / WIDTH) as usize;

/// The bin of λ (values outside the range go to the outer bins).
pub fn bin_of(log_snr: f64) -> usize {
    (((log_snr - LOWEST) / WIDTH).floor().max(0.0) as usize).min(BINS - 1)
}

/// The centre of bin `index`.
pub fn bin_centre(index: usize) -> f64 {
    LOWEST + WIDTH * (index as f64 + 0.5)
}

/// Per-bin loss of recent training steps: an exponential moving average over about [`MEMORY`] samples per
/// bin, so that the bars follow the run, and the means of the first [`START_SAMPLES`] samples of each bin,
/// kept as where the run started.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LossByLevel {
    recent: Vec<Option<f64>>,
    start_sums: Vec<(f64, usize)>,
    pub samples: u64,
}

/// Samples a bin's moving average mostly remembers.
pub const MEMORY: f64 = 100.0;

/// Samples per bin that make up "the start".
pub const START_SAMPLES: usize = 20;

impl LossByLevel {
    pub fn new() -> Self {
        Self { recent: vec![None; BINS], start_sums: vec![(0.0, 0); BINS], samples: 0 }
    }

    /// One image's loss ||ε - ε_θ||² (mean over its values) at its λ.
    pub fn add(&mut self, log_snr: f64, loss: f64) {
        if !loss.is_finite() || log_snr.is_nan() {
            return;
        }
        let bin = bin_of(log_snr);
        self.recent[bin] = Some(match self.recent[bin] {
            None => loss,
            Some(mean) => mean + (loss - mean) / MEMORY,
        });
        let (sum, count) = &mut self.start_sums[bin];
        if *count < START_SAMPLES {
            *sum += loss;
            *count += 1;
        }
        self.samples += 1;
    }

    /// The recent loss of bin `index`, once it has a sample.
    pub fn recent(&self, index: usize) -> Option<f64> {
        self.recent.get(index).copied().flatten()
    }

    /// The mean loss of bin `index`'s first samples.
    pub fn at_start(&self, index: usize) -> Option<f64> {
        let (sum, count) = *self.start_sums.get(index)?;
        (count > 0).then(|| sum / count as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_level_goes_to_its_bin_and_the_bars_follow_the_recent_losses() {
        assert_eq!(BINS, 15);
        assert_eq!(bin_of(-20.0), 0);
        assert_eq!(bin_of(-25.0), 0);
        assert_eq!(bin_of(9.99), BINS - 1);
        assert_eq!(bin_of(30.0), BINS - 1);
        assert_eq!(bin_of(0.5), 10);
        assert!((bin_centre(10) - 1.0).abs() < 1e-12);
        let mut levels = LossByLevel::new();
        for _ in 0..START_SAMPLES {
            levels.add(0.5, 1.0);
        }
        for _ in 0..2000 {
            levels.add(0.5, 0.2);
        }
        levels.add(f64::NAN, 3.0);
        levels.add(0.5, f64::INFINITY);
        assert_eq!(levels.at_start(10), Some(1.0));
        assert!((levels.recent(10).unwrap() - 0.2).abs() < 1e-6);
        assert_eq!(levels.recent(3), None);
        assert_eq!(levels.samples, (START_SAMPLES + 2000) as u64);
    }
}
