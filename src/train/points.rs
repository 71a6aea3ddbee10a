//! Training the 2-D lab's ε_θ(x_t, λ, y) on a set of points: the image trainer's recipe ([`super::ddpm`])
//! on vectors of two numbers. The same loss L = E||ε - ε_θ(x_t, λ, y)||², the same λ distribution
//! ([`LogSnrDistribution`]), label dropout for classifier-free guidance, AdamW with warm-up and cosine
//! decay ([`TrainConfig::learning_rate_at`]), an EMA of the weights for sampling, and batches in a per-epoch
//! order drawn from (seed, epoch) ([`epoch_order_index`]): the same settings train the same network.

use std::time::Instant;

use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::ddpm::{
    LogSnrDistribution, TrainConfig, epoch_order_index, optimizer_from_config, target_batch, weighted_loss,
};
use super::ema::update_ema;
use super::recipe::Recipe;
use crate::diffusion::NoiseSource;
use crate::diffusion::schedule::alpha_bar_from_log_snr;
use crate::model::point_mlp::{PointDenoiser, PointDenoiserConfig};

/// The image trainer's settings scaled to a network of tens of thousands of weights and data that is
/// a few thousand points: bigger batches, a higher learning rate, a shorter warm-up and EMA.
pub fn default_point_train_config() -> TrainConfig {
    TrainConfig::new()
        .with_batch_size(256)
        .with_learning_rate(3e-3)
        .with_warmup_steps(100)
        .with_ema_decay(0.99)
        .with_label_dropout(0.2)
        .with_steps(2000)
}

/// One step's numbers.
#[derive(Clone, Debug, PartialEq)]
pub struct PointStepReport {
    pub step: u64,
    pub loss: f64,
    pub learning_rate: f64,
    pub seconds: f64,
    /// (λ, the example's error in ε units) of every point of the batch.
    pub levels: Vec<[f64; 2]>,
}

pub struct PointTrainer {
    pub config: TrainConfig,
    pub model_config: PointDenoiserConfig,
    /// On the autodiff device.
    model: PointDenoiser,
    /// The moving average of the weights, on the plain device: what sampling uses.
    pub ema: PointDenoiser,
    optimizer: ModuleOptimizer,
    pub step: u64,
    pub wall_seconds: f64,
    autodiff: Device,
    log_snr: LogSnrDistribution,
    order: (u64, Vec<usize>),
}

impl PointTrainer {
    pub fn new(config: TrainConfig, model_config: PointDenoiserConfig, device: &Device) -> Self {
        let autodiff = device.clone().autodiff();
        let model = crate::model::init_from_seed(&autodiff, config.seed, || model_config.init(&autodiff));
        let ema = model.valid();
        Self {
            log_snr: LogSnrDistribution::new(config.log_snr_min, config.log_snr_max),
            optimizer: optimizer_from_config(&config),
            config,
            model_config,
            model,
            ema,
            step: 0,
            wall_seconds: 0.0,
            autodiff,
            order: (u64::MAX, Vec::new()),
        }
    }

    /// Whether the run has taken all the steps its config plans (the learning rate has reached its floor).
    pub fn is_done(&self) -> bool {
        self.step >= self.config.steps
    }

    /// One optimizer step on the next batch of `points` (with their `classes`: `Some(y)`, or `None` for
    /// points without a class, which train only the "no class" branch).
    pub fn train_step(&mut self, points: &[[f32; 2]], classes: &[Option<usize>]) -> PointStepReport {
        let started = Instant::now();
        let count = points.len().max(1);
        let batch = self.config.batch_size as u64;
        let indices: Vec<usize> = (0..batch)
            .map(|j| epoch_order_index(&mut self.order, count, self.config.seed, self.step * batch + j))
            .filter(|i| *i < points.len())
            .collect();
        let n = indices.len();
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed.wrapping_mul(1_000_003) ^ self.step);
        let null = self.model_config.num_classes;
        let labels: Vec<i64> = indices
            .iter()
            .map(|&i| match classes.get(i).copied().flatten() {
                Some(c) if c < null && rng.random::<f64>() >= self.config.label_dropout => c as i64,
                _ => null as i64,
            })
            .collect();
        let recipe = self.recipe();
        let (min, max) = (self.config.log_snr_min, self.config.log_snr_max);
        let log_snr: Vec<f32> = (0..n).map(|_| recipe.draw_log_snr(&self.log_snr, &mut rng, min, max) as f32).collect();
        let alpha_bar: Vec<f32> = log_snr.iter().map(|l| alpha_bar_from_log_snr(f64::from(*l)) as f32).collect();
        let x0: Vec<f32> = indices.iter().flat_map(|&i| points[i]).collect();
        let mut noise = NoiseSource::new(rng.random());

        let device = &self.autodiff;
        let x0 = Tensor::<2>::from_data(TensorData::new(x0, [n, 2]), device);
        let eps = noise.tensor([n, 2], device);
        // [n] -> [n, 1], broadcast over the two coordinates.
        let alpha_bar = Tensor::<1>::from_data(TensorData::new(alpha_bar, [n]), device).unsqueeze_dim::<2>(1);
        let x_t = x0.clone().mul(alpha_bar.clone().sqrt()).add(eps.clone().mul(alpha_bar.neg().add_scalar(1.0).sqrt()));
        let target = target_batch(recipe, x0, eps, &log_snr);
        let level_values = log_snr.clone();
        let log_snr = Tensor::<1>::from_data(TensorData::new(log_snr, [n]), device);
        let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), device);

        let squared = self.model.forward(x_t, log_snr, labels).sub(target).powi_scalar(2);
        let (loss, per_point) = weighted_loss(recipe, squared, &level_values);
        let loss_value = f64::from(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &self.model);
        let learning_rate = self.config.learning_rate_at(self.step);
        self.model = self.optimizer.step(learning_rate, self.model.clone(), grads);
        let decay = self.config.ema_decay.min((1 + self.step) as f64 / (10 + self.step) as f64);
        self.ema = update_ema(self.ema.clone(), &self.model.valid(), decay);
        self.step += 1;
        let seconds = started.elapsed().as_secs_f64();
        self.wall_seconds += seconds;
        let levels = recipe.levels_in_eps_units(per_point, &level_values);
        PointStepReport { step: self.step, loss: loss_value, learning_rate, seconds, levels }
    }

    /// What this run trains: its network's objective and the config's weighting.
    pub fn recipe(&self) -> Recipe {
        Recipe { objective: self.model_config.objective, weighting: self.config.weighting }
    }

    /// The network as trained so far (the EMA weights), for sampling and drawing fields.
    pub fn model(&self) -> PointDenoiser {
        self.ema.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two classes of points at (±0.7, 0): the loss falls well below its start (E||ε||² = 1 for a network
    /// that outputs nothing) within a few hundred steps.
    #[test]
    fn training_lowers_the_loss() {
        let device = Device::flex();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let points: Vec<[f32; 2]> = (0..512)
            .map(|i| {
                let side = if i % 2 == 0 { -0.7 } else { 0.7 };
                [side + 0.05 * rng.random::<f32>(), 0.05 * rng.random::<f32>()]
            })
            .collect();
        let classes: Vec<Option<usize>> = (0..512).map(|i| Some(i % 2)).collect();
        let config = default_point_train_config().with_steps(300);
        let mut trainer = PointTrainer::new(config, PointDenoiserConfig::new().with_num_classes(2), &device);
        let losses: Vec<f64> = (0..300).map(|_| trainer.train_step(&points, &classes).loss).collect();
        let early: f64 = losses[..20].iter().sum::<f64>() / 20.0;
        let late: f64 = losses[280..].iter().sum::<f64>() / 20.0;
        assert!(late < 0.7 * early, "loss {early} -> {late}");
        assert_eq!(trainer.step, 300);
    }

    /// The same config and data train the same weights.
    #[test]
    fn training_is_reproducible() {
        let device = Device::flex();
        let points: Vec<[f32; 2]> = (0..64).map(|i| [(i as f32 * 0.37).sin(), (i as f32 * 0.91).cos()]).collect();
        let classes = vec![None; 64];
        let run = || {
            let config = default_point_train_config().with_steps(20).with_batch_size(32);
            let mut trainer = PointTrainer::new(config, PointDenoiserConfig::new().with_hidden(16), &device);
            (0..20).map(|_| trainer.train_step(&points, &classes).loss).collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }
}
