//! Training ε_θ on L = E ||ε - ε_θ(x_t, λ, y)||², x_t = sqrt(ᾱ) x_0 + sqrt(1 - ᾱ) ε, ᾱ = sigmoid(λ).
//!
//! λ is drawn to cover every schedule the app offers (see [`LogSnrDistribution`]), so that a schedule edited
//! in the window feeds the network noise levels it has seen. Everything random is derived from (seed, step),
//! so a run resumed from a checkpoint continues exactly as if it had never stopped.

use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::module::Module;
use burn::optim::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamWConfig, GradientsAccumulator, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::defaults::TRAIN_DEFAULTS;
use super::ema::update_ema;
use super::recipe::Recipe;
use crate::data::Dataset;
use crate::diffusion::schedule::alpha_bar_from_log_snr;
use crate::diffusion::{BetaSchedule, NoiseSource, Weighting, q_sample_batch};
use crate::model::checkpoint::{
    Checkpoint, CheckpointError, CheckpointHeader, ModelKind, bytes_from_module, module_from_bytes,
};
use crate::model::{UNet, UNetConfig};

/// The hyperparameters of a training run, saved in its checkpoint. Their defaults are
/// [`TRAIN_DEFAULTS`] (src/train/defaults.rs), which `train`'s flags and the Train view read too.
#[derive(Config, Debug, PartialEq)]
pub struct TrainConfig {
    #[config(default = "TRAIN_DEFAULTS.batch_size")]
    pub batch_size: usize,
    /// Peak learning rate of AdamW, reached after `warmup_steps` and decayed by a half cosine to a tenth.
    #[config(default = "TRAIN_DEFAULTS.learning_rate")]
    pub learning_rate: f64,
    /// Steps of linear warm-up: [`TrainConfig::warmup_for`] the run's steps (`with_run_steps` sets both).
    #[config(default = "TrainConfig::warmup_for(TRAIN_DEFAULTS.steps)")]
    pub warmup_steps: u64,
    #[config(default = "TRAIN_DEFAULTS.weight_decay")]
    pub weight_decay: f64,
    /// Per-parameter gradient norm cap.
    #[config(default = "TRAIN_DEFAULTS.grad_clip")]
    pub grad_clip: f64,
    #[config(default = "TRAIN_DEFAULTS.ema_decay")]
    pub ema_decay: f64,
    /// Share of examples trained with the "no class" label, for classifier-free guidance.
    #[config(default = "TRAIN_DEFAULTS.label_dropout")]
    pub label_dropout: f64,
    /// Optimizer steps of the whole run (the learning-rate decay ends there).
    #[config(default = "TRAIN_DEFAULTS.steps")]
    pub steps: u64,
    #[config(default = "TRAIN_DEFAULTS.seed")]
    pub seed: u64,
    /// λ is kept within [log_snr_min, log_snr_max]: beyond, ε (or x_0) is all there is to predict.
    #[config(default = "TRAIN_DEFAULTS.log_snr_min")]
    pub log_snr_min: f64,
    #[config(default = "TRAIN_DEFAULTS.log_snr_max")]
    pub log_snr_max: f64,
    /// How much each noise level counts (runs from before recipes: plain).
    #[config(default = "Weighting::Plain")]
    pub weighting: Weighting,
}

impl TrainConfig {
    /// The warm-up rule: a run of `steps` warms up over its first tenth, at least one step and at most
    /// [`TRAIN_DEFAULTS`]`.max_warmup_steps` (500 steps of warm-up would be all of a short run).
    pub fn warmup_for(steps: u64) -> u64 {
        (steps / 10).clamp(1, TRAIN_DEFAULTS.max_warmup_steps)
    }

    /// A run of `steps` optimizer steps, with the warm-up [`TrainConfig::warmup_for`] gives it.
    pub fn with_run_steps(self, steps: u64) -> Self {
        self.with_steps(steps).with_warmup_steps(Self::warmup_for(steps))
    }

    /// Linear warm-up, then a half cosine from the peak to a tenth of it at `steps`.
    pub fn learning_rate_at(&self, step: u64) -> f64 {
        if step < self.warmup_steps {
            return self.learning_rate * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = self.steps.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
        self.learning_rate * (0.1 + 0.9 * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()))
    }
}

/// Draws training noise levels: 45 % from the linear and 45 % from the cosine schedule at T = 1000
/// (t uniform, λ interpolated between neighbouring steps), 10 % uniform over [min, max]. The quadratic and
/// sigmoid schedules' ranges lie inside the union of the first two.
pub struct LogSnrDistribution {
    linear: Vec<f64>,
    cosine: Vec<f64>,
    min: f64,
    max: f64,
}

impl LogSnrDistribution {
    pub fn new(min: f64, max: f64) -> Self {
        let log_snr = |s: BetaSchedule| s.build().map(|n| n.log_snr).unwrap_or_default();
        Self { linear: log_snr(BetaSchedule::linear(1000)), cosine: log_snr(BetaSchedule::cosine(1000)), min, max }
    }

    pub fn sample(&self, rng: &mut impl Rng) -> f64 {
        let choice: f64 = rng.random();
        let table = if choice < 0.45 {
            &self.linear
        } else if choice < 0.9 {
            &self.cosine
        } else {
            return rng.random_range(self.min..=self.max);
        };
        let position = rng.random_range(0.0..(table.len() - 1) as f64);
        let i = position as usize;
        let frac = position - i as f64;
        (table[i] * (1.0 - frac) + table[i + 1] * frac).clamp(self.min, self.max)
    }

    /// The density of [`Self::sample`]'s draws at λ inside (min, max) (the clamped ends hold a little
    /// more, as point masses): each table's position is uniform and λ linear between entries, so a
    /// segment spreads its share 1 / (len - 1) evenly over its λ span.
    pub fn density(&self, log_snr: f64) -> f64 {
        if !(self.min..=self.max).contains(&log_snr) {
            return 0.0;
        }
        let table_density = |table: &[f64]| -> f64 {
            let share = 1.0 / (table.len().max(2) - 1) as f64;
            table
                .windows(2)
                .filter(|w| (w[0].min(w[1])..w[0].max(w[1])).contains(&log_snr))
                .map(|w| share / (w[0] - w[1]).abs())
                .sum()
        };
        0.45 * table_density(&self.linear) + 0.45 * table_density(&self.cosine) + 0.1 / (self.max - self.min)
    }
}

/// What the trainer reports after each step.
#[derive(Clone, Debug)]
pub struct StepReport {
    pub step: u64,
    pub loss: f64,
    pub learning_rate: f64,
    pub images_per_second: f64,
    /// (λ, ||ε - ε_θ||² averaged over the image's values) of every image of the batch: the loss by noise
    /// level ([`super::levels`]).
    pub levels: Vec<[f64; 2]>,
}

/// Where the training data came from, kept in the checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainRecord {
    pub train_config: serde_json::Value,
    pub data: String,
    pub images_seen: u64,
    pub wall_seconds: f64,
    /// For a latent model: the autoencoder whose latents it was trained on.
    #[serde(default)]
    pub autoencoder: Option<String>,
}

pub struct DdpmTrainer {
    /// `Unet` on pixels or `LatentUnet` on an autoencoder's latents.
    pub kind: ModelKind,
    /// For a latent model: the autoencoder it was trained with.
    pub autoencoder: Option<String>,
    pub config: TrainConfig,
    pub unet_config: UNetConfig,
    /// The model being optimised, on the autodiff device.
    model: UNet,
    /// Its moving average, on the plain device: what sampling uses.
    pub ema: UNet,
    optimizer: ModuleOptimizer,
    pub step: u64,
    pub wall_seconds: f64,
    device: Device,
    autodiff: Device,
    log_snr: LogSnrDistribution,
    /// What the run learns from (kept in the checkpoint).
    pub data_description: String,
    /// The current epoch's order, and which epoch it is.
    order: (u64, Vec<usize>),
    /// A text model's captions, one per example of the data it trains on (`None`: a text model reads each
    /// example's class prompt).
    pub captions: Option<crate::text::Captions>,
}

/// Share of caption words a text model is trained to read as `<unk>`, so that an unknown word in a prompt
/// means "something" to it instead of a token it never saw.
pub const UNKNOWN_WORD_DROPOUT: f64 = 0.02;

pub(crate) fn optimizer_from_config(config: &TrainConfig) -> ModuleOptimizer {
    AdamWConfig::new()
        .with_weight_decay(config.weight_decay as f32)
        .with_grad_clipping(Some(GradientClippingConfig::Norm(config.grad_clip as f32)))
        .init()
}

impl DdpmTrainer {
    pub fn new(config: TrainConfig, unet_config: UNetConfig, device: &Device, data_description: String) -> Self {
        let autodiff = device.clone().autodiff();
        // The initial weights come from the run's seed, so that the same command trains the same model.
        let model = crate::model::init_from_seed(&autodiff, config.seed, || unet_config.init(&autodiff));
        let ema = model.valid();
        Self {
            kind: ModelKind::Unet,
            autoencoder: None,
            log_snr: LogSnrDistribution::new(config.log_snr_min, config.log_snr_max),
            optimizer: optimizer_from_config(&config),
            config,
            unet_config,
            model,
            ema,
            step: 0,
            wall_seconds: 0.0,
            device: device.clone(),
            autodiff,
            data_description,
            order: (u64::MAX, Vec::new()),
            captions: None,
        }
    }

    /// Trains a text model on these captions (one per example of the data, in its order).
    pub fn with_captions(self, captions: crate::text::Captions) -> Self {
        Self { captions: Some(captions), ..self }
    }

    /// The prompt ids of a batch, [batch * context_tokens]: each example's caption for its epoch, the empty
    /// prompt for the label-dropout share (classifier-free guidance's ∅), a few words read as `<unk>`, and
    /// words past the context cut off.
    fn caption_ids(
        &self,
        captions: &crate::text::Captions,
        text: &crate::model::text_encoder::TextEncoderConfig,
        indices: &[usize],
        count: usize,
    ) -> Vec<i64> {
        use crate::text::tokenizer::{PAD_ID, START_ID, UNKNOWN_ID};
        let vocabulary = text.vocabulary().unwrap_or_else(|_| crate::text::tokenizer::Vocabulary::from_words([]));
        // Its own stream, so that a class model's draws (and runs resumed from before text models) are unchanged.
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed.wrapping_mul(0x2545_F491_4F6C_DD1D) ^ self.step);
        let batch = indices.len() as u64;
        let mut ids = Vec::with_capacity(indices.len() * text.context_tokens);
        for (j, &index) in indices.iter().enumerate() {
            let epoch = (self.step * batch + j as u64) / count.max(1) as u64;
            let dropped = rng.random::<f64>() < self.config.label_dropout;
            let caption = if dropped { String::new() } else { captions.caption(index, self.config.seed, epoch) };
            let words = vocabulary.encode(&caption).ids;
            ids.push(START_ID as i64);
            for id in words.into_iter().take(text.context_tokens - 1) {
                let unknown = rng.random::<f64>() < UNKNOWN_WORD_DROPOUT;
                ids.push((if unknown { UNKNOWN_ID } else { id }) as i64);
            }
            ids.resize((j + 1) * text.context_tokens, PAD_ID as i64);
        }
        ids
    }

    /// Makes this a latent diffusion model, trained on the latents of `autoencoder`.
    pub fn latent(self, autoencoder: String) -> Self {
        Self { kind: ModelKind::LatentUnet, autoencoder: Some(autoencoder), ..self }
    }

    /// Continues from a training checkpoint written by [`DdpmTrainer::checkpoint`]. `steps` may extend the run.
    pub fn resume(checkpoint: &Checkpoint, device: &Device, steps: Option<u64>) -> Result<Self, CheckpointError> {
        if checkpoint.header.kind != ModelKind::LatentUnet {
            checkpoint.expect_kind(ModelKind::Unet)?;
        }
        let (unet_config, record, mut config): (UNetConfig, TrainRecord, TrainConfig) =
            super::resume_header(checkpoint)?;
        unet_config.validate().map_err(|e| CheckpointError::Header(format!("UNet config: {e}")))?;
        if let Some(steps) = steps {
            config.steps = steps;
        }
        let mut trainer = Self::new(config, unet_config, device, record.data);
        trainer.kind = checkpoint.header.kind;
        trainer.autoencoder = record.autoencoder;
        trainer.model = module_from_bytes(trainer.model, checkpoint.section("train_weights")?, "train_weights")?;
        trainer.ema = module_from_bytes(trainer.ema, checkpoint.section("weights")?, "weights")?;
        trainer.optimizer = super::optimizer_from_section(trainer.optimizer, checkpoint, "optimizer")?;
        trainer.step = checkpoint.header.step;
        trainer.wall_seconds = record.wall_seconds;
        Ok(trainer)
    }

    fn batch_indices(&mut self, data: &Dataset) -> Vec<usize> {
        let batch = self.config.batch_size as u64;
        (0..batch)
            .map(|j| epoch_order_index(&mut self.order, data.count, self.config.seed, self.step * batch + j))
            .collect()
    }

    /// One optimizer step on the next batch of `data`.
    pub fn train_step(&mut self, data: &Dataset) -> StepReport {
        let started = Instant::now();
        let indices = self.batch_indices(data);
        let (pixels, labels) = data.gather(&indices);
        let batch = indices.len();
        let shape = [batch, data.channels, data.height, data.width];

        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed.wrapping_mul(1_000_003) ^ self.step);
        let null = self.unet_config.num_classes;
        let classes: Vec<i64> = labels
            .iter()
            .map(|label| match label {
                Some(c) if rng.random::<f64>() >= self.config.label_dropout => *c as i64,
                _ => null as i64,
            })
            .collect();
        let recipe = self.recipe();
        let (min, max) = (self.config.log_snr_min, self.config.log_snr_max);
        let log_snr: Vec<f32> =
            (0..batch).map(|_| recipe.draw_log_snr(&self.log_snr, &mut rng, min, max) as f32).collect();
        let alpha_bar: Vec<f32> = log_snr.iter().map(|l| alpha_bar_from_log_snr(*l as f64) as f32).collect();
        let mut noise = NoiseSource::new(rng.random());

        let device = &self.autodiff;
        let x0 = Tensor::<4>::from_data(TensorData::new(pixels, shape), device);
        let eps = noise.tensor(shape, device);
        let alpha_bar = Tensor::<1>::from_data(TensorData::new(alpha_bar, [batch]), device);
        let x_t = q_sample_batch(x0.clone(), alpha_bar, eps.clone());
        let level_values = log_snr.clone();
        let target = target_batch(recipe, x0, eps, &level_values);
        let log_snr = Tensor::<1>::from_data(TensorData::new(log_snr, [batch]), device);
        let classes = Tensor::<1, Int>::from_data(TensorData::new(classes, [batch]), device);
        let prompts = match (&self.captions, &self.unet_config.text) {
            (Some(captions), Some(text)) => {
                let ids = self.caption_ids(captions, text, &indices, data.count);
                Some(Tensor::<2, Int>::from_data(TensorData::new(ids, [batch, text.context_tokens]), device))
            }
            _ => None,
        };

        let inputs = StepInputs { x_t, target, log_snr, classes, prompts, levels: level_values };
        let (loss_value, grads, per_image) = step_gradients(&self.model, recipe, &inputs);
        let learning_rate = self.config.learning_rate_at(self.step);
        self.model = self.optimizer.step(learning_rate, self.model.clone(), grads);
        self.ema = update_ema(self.ema.clone(), &self.model.valid(), self.ema_decay_at(self.step));
        self.step += 1;

        let seconds = started.elapsed().as_secs_f64();
        self.wall_seconds += seconds;
        // The objective's error in ε units, the scale every recipe shares.
        let levels = recipe.levels_in_eps_units(per_image, &inputs.levels);
        StepReport {
            step: self.step,
            loss: loss_value,
            learning_rate,
            images_per_second: batch as f64 / seconds,
            levels,
        }
    }

    /// What this run trains: its model's objective and its weighting.
    pub fn recipe(&self) -> Recipe {
        Recipe { objective: self.unet_config.objective, weighting: self.config.weighting }
    }

    /// Early on, a long average would remember the random initialisation: warm the decay up
    /// (d = min(decay, (1 + step) / (10 + step)), as in many DDPM codebases).
    fn ema_decay_at(&self, step: u64) -> f64 {
        self.config.ema_decay.min((1 + step) as f64 / (10 + step) as f64)
    }

    fn header(&self, extra: TrainRecord) -> CheckpointHeader {
        CheckpointHeader {
            kind: self.kind,
            config: serde_json::to_value(&self.unet_config).unwrap_or_default(),
            training_schedule: Some(BetaSchedule::cosine(1000)),
            log_snr_range: Some((self.config.log_snr_min, self.config.log_snr_max)),
            step: self.step,
            extra: serde_json::to_value(extra).unwrap_or_default(),
            sections: Vec::new(),
        }
    }

    fn record(&self) -> TrainRecord {
        TrainRecord {
            train_config: serde_json::to_value(&self.config).unwrap_or_default(),
            data: self.data_description.clone(),
            images_seen: self.step * self.config.batch_size as u64,
            wall_seconds: self.wall_seconds,
            autoencoder: self.autoencoder.clone(),
        }
    }

    /// Everything needed to resume exactly: EMA weights, raw weights and optimizer state, all f32.
    pub fn checkpoint(&self) -> Result<Checkpoint, CheckpointError> {
        Ok(Checkpoint::new(self.header(self.record()))
            .with_section("weights", bytes_from_module(&self.ema, false)?)
            .with_section("train_weights", bytes_from_module(&self.model, false)?)
            .with_section("optimizer", super::section_from_optimizer(&self.optimizer, "optimizer")?))
    }

    /// The model to ship: EMA weights only, in f16.
    pub fn export(&self) -> Result<Checkpoint, CheckpointError> {
        Ok(Checkpoint::new(self.header(self.record())).with_section("weights", bytes_from_module(&self.ema, true)?))
    }

    pub fn device(&self) -> &Device {
        &self.device
    }
}

/// The regression target of a batch, [batch, ...] like `x0`: target = a x_0 + b ε with each example's
/// (a, b) at its λ ([`crate::diffusion::Objective::target_coefficients`]); an ε model's is `eps` itself.
pub(crate) fn target_batch<const D: usize>(
    recipe: Recipe,
    x0: Tensor<D>,
    eps: Tensor<D>,
    log_snr: &[f32],
) -> Tensor<D> {
    if recipe.objective == crate::diffusion::Objective::Eps {
        return eps;
    }
    let device = x0.device();
    let mut dims = [1usize; D];
    dims[0] = log_snr.len();
    let coefficients: Vec<(f64, f64)> = log_snr
        .iter()
        .map(|l| {
            let (alpha, sigma) = crate::diffusion::objective::alpha_sigma_from_log_snr(f64::from(*l));
            recipe.objective.target_coefficients(alpha, sigma)
        })
        .collect();
    let column = |values: Vec<f32>| Tensor::<D>::from_data(TensorData::new(values, dims), &device);
    let a = column(coefficients.iter().map(|c| c.0 as f32).collect());
    let b = column(coefficients.iter().map(|c| c.1 as f32).collect());
    x0.mul(a).add(eps.mul(b))
}

/// What a training step feeds the network, on the autodiff device, [batch, ...] each.
#[derive(Clone)]
struct StepInputs {
    x_t: Tensor<4>,
    target: Tensor<4>,
    log_snr: Tensor<1>,
    classes: Tensor<1, Int>,
    /// A text model's captions as ids, [batch, tokens] (a class model reads `classes`). Read by each part's
    /// own model: τ_θ is trained too, and its graph must be the part's.
    prompts: Option<Tensor<2, Int>>,
    levels: Vec<f32>,
}

impl StepInputs {
    /// The examples of `part`, as new tensors of their own (no node of the batch's tensors' graph).
    fn detached_part(&self, part: std::ops::Range<usize>) -> StepInputs {
        let cut4 = |t: &Tensor<4>| Tensor::from_inner(t.clone().inner().slice(part.clone()));
        StepInputs {
            x_t: cut4(&self.x_t),
            target: cut4(&self.target),
            log_snr: Tensor::from_inner(self.log_snr.clone().inner().slice(part.clone())),
            classes: Tensor::from_inner(self.classes.clone().inner().slice(part.clone())),
            prompts: self.prompts.as_ref().map(|ids| Tensor::from_inner(ids.clone().inner().slice(part.clone()))),
            levels: self.levels[part].to_vec(),
        }
    }
}

/// The step's loss (the batch's mean), its gradients and each example's error: the batch in the parts of
/// `cpu::training_parts`, each part's forward and backward on a core of its own, its loss weighted by its
/// share of the batch so that the parts' losses and gradients add up to the batch's, added in the parts'
/// order.
fn step_gradients(model: &UNet, recipe: Recipe, inputs: &StepInputs) -> (f64, GradientsParams, Tensor<2>) {
    let batch = inputs.levels.len();
    let device = inputs.x_t.device();
    let parts = crate::model::cpu::training_parts(&device, batch);
    if parts.len() == 1 {
        return part_gradients(model, recipe, inputs.clone(), batch);
    }
    // Each part on its own autodiff graph, set up here before the parts run: burn's graphs are not built
    // from two threads at once (two parts sharing the parameters' nodes deadlocked in its graph locator).
    // The fork keeps the parameters' ids, under which the gradients are added; the inputs' slices are
    // detached from the batch's tensors, so that no node is shared.
    let part_inputs: Vec<(UNet, StepInputs)> =
        parts.into_iter().map(|part| (model.clone().fork(&device), inputs.detached_part(part))).collect();
    let answers =
        crate::model::cpu::run_parts(part_inputs, |(model, part)| part_gradients(&model, recipe, part, batch));
    let mut accumulator = GradientsAccumulator::<UNet>::new();
    let (mut loss, mut per_image) = (0.0, Vec::with_capacity(answers.len()));
    for (value, grads, part) in answers {
        loss += value;
        accumulator.accumulate(model, grads);
        per_image.push(part);
    }
    (loss, accumulator.grads(), Tensor::cat(per_image, 0))
}

/// One part's loss (weighted by its share of a batch of `batch`, so that the parts' losses and gradients
/// add up to the batch's), its gradients and each example's error.
fn part_gradients(model: &UNet, recipe: Recipe, part: StepInputs, batch: usize) -> (f64, GradientsParams, Tensor<2>) {
    let size = part.levels.len();
    let context = part.prompts.and_then(|ids| model.prompt_context(ids));
    let predicted = match context {
        Some(context) => model.forward_with_context(part.x_t, part.log_snr, context),
        None => model.forward(part.x_t, part.log_snr, part.classes),
    };
    // [part, c, h, w]
    let squared = predicted.sub(part.target).powi_scalar(2);
    let (loss, per_image) = weighted_loss(recipe, squared, &part.levels);
    let loss = if size == batch { loss } else { loss.mul_scalar(size as f64 / batch as f64) };
    let value = f64::from(loss.clone().into_scalar::<f32>());
    (value, GradientsParams::from_grads(loss.backward(), model), per_image)
}

/// The loss a step minimises from the squared errors ([batch, ...]), and each example's mean squared error
/// ([batch, 1], off the graph): the mean of all (plain weighting: exactly as before recipes), or each
/// example's error times [`Recipe::loss_multiplier`] at its λ, averaged.
pub(crate) fn weighted_loss<const D: usize>(
    recipe: Recipe,
    squared: Tensor<D>,
    log_snr: &[f32],
) -> (Tensor<1>, Tensor<2>) {
    let batch = log_snr.len();
    let per_example = |t: Tensor<D>| {
        let values = t.dims().iter().skip(1).product::<usize>();
        t.reshape([batch, values]).mean_dim(1)
    };
    if recipe.weighting == Weighting::Plain {
        return (squared.clone().mean(), per_example(squared.detach()));
    }
    let per_image = per_example(squared);
    let device = per_image.device();
    let multipliers: Vec<f32> = log_snr.iter().map(|l| recipe.loss_multiplier(f64::from(*l)) as f32).collect();
    let multipliers = Tensor::<2>::from_data(TensorData::new(multipliers, [batch, 1]), &device);
    (per_image.clone().mul(multipliers).mean(), per_image.detach())
}

/// The data index of example number `global` of a run that goes through `count` examples epoch after
/// epoch, each in a fresh order drawn from (seed, epoch): so a resumed run sees exactly the batches it would
/// have seen. `order` caches the current epoch's order.
pub fn epoch_order_index(order: &mut (u64, Vec<usize>), count: usize, seed: u64, global: u64) -> usize {
    let epoch = global / count as u64;
    if order.0 != epoch {
        *order = (epoch, crate::data::shuffled_indices(count, seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15)));
    }
    order.1[(global % count as u64) as usize]
}

/// Where a run keeps its files.
pub struct TrainingFiles {
    pub dir: PathBuf,
}

impl TrainingFiles {
    pub fn new(dir: &Path) -> Self {
        Self { dir: dir.to_path_buf() }
    }
    pub fn checkpoint(&self) -> PathBuf {
        self.dir.join("checkpoint.dlab")
    }
    pub fn loss_log(&self) -> PathBuf {
        self.dir.join("loss.csv")
    }
    pub fn preview(&self, step: u64) -> PathBuf {
        self.dir.join(format!("preview-{step:06}.png"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_unet() -> UNetConfig {
        UNetConfig::tiny().with_num_classes(2)
    }

    /// Two classes of 8x8 images: a bright left half or a bright right half.
    fn halves(count: usize) -> Dataset {
        let (h, w) = (8, 8);
        let mut images = Vec::with_capacity(count * h * w);
        let mut labels = Vec::with_capacity(count);
        for i in 0..count {
            let class = i % 2;
            for _ in 0..h {
                for x in 0..w {
                    let bright = (x < w / 2) == (class == 0);
                    images.push(if bright { 0.8 } else { -0.8 });
                }
            }
            labels.push(class);
        }
        Dataset {
            images,
            count,
            channels: 1,
            height: h,
            width: w,
            labels: Some(labels),
            class_names: vec!["left".into(), "right".into()],
        }
    }

    #[test]
    fn learning_rate_warms_up_then_decays_to_a_tenth() {
        let config = TrainConfig::new().with_warmup_steps(10).with_steps(110).with_learning_rate(1.0);
        assert!((config.learning_rate_at(0) - 0.1).abs() < 1e-12);
        assert!((config.learning_rate_at(9) - 1.0).abs() < 1e-12);
        assert!((config.learning_rate_at(10) - 1.0).abs() < 1e-12);
        assert!((config.learning_rate_at(110) - 0.1).abs() < 1e-12);
        assert!((config.learning_rate_at(500) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn log_snr_samples_cover_the_range() {
        let distribution = LogSnrDistribution::new(-20.0, 10.0);
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let samples: Vec<f64> = (0..20_000).map(|_| distribution.sample(&mut rng)).collect();
        assert!(samples.iter().all(|l| (-20.0..=10.0).contains(l)));
        assert!(samples.iter().any(|l| *l < -15.0) && samples.iter().any(|l| *l > 8.0));
        let middle = samples.iter().filter(|l| (-5.0..5.0).contains(*l)).count();
        assert!(middle > 8_000, "most mass where the schedules spend their steps: {middle}");
    }

    #[test]
    fn a_few_steps_lower_the_loss() {
        let device = Device::flex();
        let data = halves(64);
        let config =
            TrainConfig::new().with_batch_size(16).with_warmup_steps(5).with_steps(60).with_learning_rate(3e-3);
        let mut trainer = DdpmTrainer::new(config, tiny_unet(), &device, "halves".into());
        let losses: Vec<f64> = (0..60).map(|_| trainer.train_step(&data).loss).collect();
        let first: f64 = losses[..10].iter().sum::<f64>() / 10.0;
        let last: f64 = losses[50..].iter().sum::<f64>() / 10.0;
        assert!(last < 0.8 * first, "loss {first} -> {last}");
    }

    #[test]
    fn resume_continues_exactly() {
        let device = Device::flex();
        let data = halves(40);
        let config = TrainConfig::new().with_batch_size(8).with_warmup_steps(2).with_steps(10);
        let mut straight = DdpmTrainer::new(config.clone(), tiny_unet(), &device, "halves".into());
        let mut interrupted = DdpmTrainer::new(config, tiny_unet(), &device, "halves".into());
        // Same initial weights for both.
        interrupted = DdpmTrainer::resume(&straight.checkpoint().unwrap(), &device, None).unwrap_or(interrupted);
        let straight_losses: Vec<f64> = (0..6).map(|_| straight.train_step(&data).loss).collect();
        let mut resumed_losses: Vec<f64> = (0..3).map(|_| interrupted.train_step(&data).loss).collect();
        let bytes = interrupted.checkpoint().unwrap().to_bytes();
        drop(interrupted);
        let mut resumed = DdpmTrainer::resume(&Checkpoint::from_bytes(&bytes).unwrap(), &device, None).unwrap();
        assert_eq!(resumed.step, 3);
        resumed_losses.extend((0..3).map(|_| resumed.train_step(&data).loss));
        for (a, b) in straight_losses.iter().zip(&resumed_losses) {
            assert!((a - b).abs() < 1e-5 * (1.0 + a.abs()), "{straight_losses:?} vs {resumed_losses:?}");
        }
    }

    /// A batch of 32 or more trains as two halves side by side (`cpu::training_parts`), their gradients added:
    /// the same losses and weights to the bit on one thread as on two.
    #[test]
    fn a_step_in_two_halves_is_the_same_on_any_number_of_threads() {
        let device = Device::flex();
        let data = halves(80);
        let config = TrainConfig::new().with_batch_size(40).with_warmup_steps(1).with_steps(10);
        assert_eq!(crate::model::cpu::training_parts(&device.clone().autodiff(), 40), [0..20, 20..40]);
        let first = DdpmTrainer::new(config.clone(), tiny_unet(), &device, "halves".into());
        let start = first.checkpoint().unwrap().to_bytes();
        let run = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
            let mut trainer = DdpmTrainer::resume(&Checkpoint::from_bytes(&start).unwrap(), &device, None).unwrap();
            let losses: Vec<f64> = pool.install(|| (0..3).map(|_| trainer.train_step(&data).loss).collect());
            // The weights alone (the checkpoint also records the wall time).
            (losses, bytes_from_module(&trainer.model.valid(), false).unwrap())
        };
        let (one, two) = (run(1), run(2));
        assert_eq!(one.0, two.0);
        assert!(one.1 == two.1, "the weights after three steps differ between one and two threads");
        assert!(one.0.iter().all(|l| l.is_finite() && *l > 0.0), "{:?}", one.0);
    }
}
