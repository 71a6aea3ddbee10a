//! Every default of a diffusion UNet's training, in one place. [`TrainConfig`](super::ddpm::TrainConfig)'s
//! fields, `diffusion-lab train`'s flags and the Train view's settings all read [`TRAIN_DEFAULTS`]; where the
//! Train view deliberately differs (a quick run to watch in the window), it reads [`WINDOW_DEFAULTS`], whose
//! overrides are spelled out beside them. tests/defaults.rs checks that `train --help`, the Train view and
//! `TrainConfig` agree.

use serde::{Deserialize, Serialize};

/// A training run's choices that have defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TrainDefaults {
    /// Optimizer steps of the whole run (the learning-rate decay ends there).
    pub steps: u64,
    pub batch_size: usize,
    /// Peak learning rate of AdamW, reached after the warm-up and decayed by a half cosine to a tenth.
    pub learning_rate: f64,
    /// The longest warm-up: a run warms up over its first tenth, at most this many steps
    /// ([`TrainConfig::warmup_for`](super::ddpm::TrainConfig::warmup_for)).
    pub max_warmup_steps: u64,
    pub weight_decay: f64,
    /// Per-parameter gradient norm cap.
    pub grad_clip: f64,
    /// Decay of the exponential moving average of the weights (what sampling uses).
    pub ema_decay: f64,
    /// Share of examples trained with the "no class" label, for classifier-free guidance.
    pub label_dropout: f64,
    /// The seed of the initial weights, the batches and the noise.
    pub seed: u64,
    /// λ is kept within [log_snr_min, log_snr_max]: beyond, ε (or x_0) is all there is to predict.
    pub log_snr_min: f64,
    pub log_snr_max: f64,
    /// The UNet's size (feature channels per level) of a new run.
    pub size: SizePreset,
    /// Steps between checkpoints (and at the last step).
    pub checkpoint_every: u64,
    /// Steps between sample grids (and at the last step).
    pub preview_every: u64,
}

/// The defaults of a training run: `train`'s flags and [`TrainConfig`](super::ddpm::TrainConfig)'s fields.
pub const TRAIN_DEFAULTS: TrainDefaults = TrainDefaults {
    steps: 30_000,
    batch_size: 64,
    learning_rate: 5e-4,
    max_warmup_steps: 500,
    weight_decay: 0.0,
    grad_clip: 1.0,
    ema_decay: 0.999,
    label_dropout: 0.1,
    seed: 1,
    log_snr_min: -20.0,
    log_snr_max: 10.0,
    size: SizePreset::Medium,
    checkpoint_every: 500,
    preview_every: 2000,
};

/// The Train view's defaults: [`TRAIN_DEFAULTS`] with these overrides, for a run that shows something within
/// minutes on a laptop's CPU: a smaller model, fewer steps at a higher learning rate, checkpoints and sample
/// grids every 100 steps.
pub const WINDOW_DEFAULTS: TrainDefaults = TrainDefaults {
    steps: 2000,
    learning_rate: 1e-3,
    size: SizePreset::Small,
    checkpoint_every: 100,
    preview_every: 100,
    ..TRAIN_DEFAULTS
};

/// Model sizes offered, by feature channels per level (saved with the Train view's settings by name).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SizePreset {
    Tiny,
    Small,
    Medium,
    Large,
}

impl SizePreset {
    pub const ALL: [SizePreset; 4] = [SizePreset::Tiny, SizePreset::Small, SizePreset::Medium, SizePreset::Large];

    pub fn name(self) -> &'static str {
        match self {
            SizePreset::Tiny => "Tiny",
            SizePreset::Small => "Small",
            SizePreset::Medium => "Medium",
            SizePreset::Large => "Large",
        }
    }

    /// Feature channels per level, on pixels or on a latent model's latents. Medium is the built-in models'
    /// size.
    pub fn channels(self, latent: bool) -> Vec<usize> {
        match (self, latent) {
            (SizePreset::Tiny, false) => vec![16, 32],
            (SizePreset::Small, false) => vec![32, 64],
            (SizePreset::Medium, false) => vec![32, 64, 128],
            (SizePreset::Large, false) => vec![64, 128, 256],
            (SizePreset::Tiny, true) => vec![32, 64],
            (SizePreset::Small, true) => vec![48, 96],
            (SizePreset::Medium, true) => vec![64, 128],
            (SizePreset::Large, true) => vec![128, 256],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_window_differs_from_train_only_by_its_named_overrides() {
        let overridden = TrainDefaults {
            steps: WINDOW_DEFAULTS.steps,
            learning_rate: WINDOW_DEFAULTS.learning_rate,
            size: WINDOW_DEFAULTS.size,
            checkpoint_every: WINDOW_DEFAULTS.checkpoint_every,
            preview_every: WINDOW_DEFAULTS.preview_every,
            ..TRAIN_DEFAULTS
        };
        assert_eq!(overridden, WINDOW_DEFAULTS);
    }
}
