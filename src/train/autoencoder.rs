//! Training latent diffusion's autoencoder as the seed describes: reconstruction (L1) + perceptual loss
//! (distance of the project's Fashion-MNIST classifier features: no pretrained VGG can be downloaded) +
//! a light KL term towards N(0, I) + a PatchGAN hinge loss switched on after a warm-up.

use std::time::Instant;

use crate::model::{ReadbackError, read_f32};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::tensor::activation::relu;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::Dataset;
use crate::diffusion::NoiseSource;
use crate::model::autoencoder::{Autoencoder, AutoencoderConfig, Discriminator, DiscriminatorConfig};
use crate::model::checkpoint::{
    Checkpoint, CheckpointError, CheckpointHeader, ModelKind, bytes_from_module, module_from_bytes,
};
use crate::model::classifier::{Classifier, ClassifierConfig};

use super::ddpm::{TrainRecord, epoch_order_index};

#[derive(Config, Debug, PartialEq)]
pub struct AutoencoderTrainConfig {
    #[config(default = 64)]
    pub batch_size: usize,
    #[config(default = 2e-4)]
    pub learning_rate: f64,
    #[config(default = 3000)]
    pub steps: u64,
    #[config(default = 1)]
    pub seed: u64,
    /// Weight of KL(q(z|x) || N(0, I)): light, so the latent stays near the prior without blurring.
    #[config(default = 1e-6)]
    pub kl_weight: f64,
    /// The classifier's feature distance starts near 4 where L1 starts near 0.8: a tenth keeps both in play.
    #[config(default = 0.1)]
    pub perceptual_weight: f64,
    #[config(default = 0.1)]
    pub adversarial_weight: f64,
    /// Steps of reconstruction-only training before the discriminator joins.
    #[config(default = 1000)]
    pub adversarial_start: u64,
}

#[derive(Clone, Debug)]
pub struct AutoencoderStepReport {
    pub step: u64,
    pub reconstruction: f64,
    pub perceptual: f64,
    pub kl: f64,
    /// -E[D(x̂)], 0 before the discriminator starts.
    pub generator: f64,
    /// Hinge loss of the discriminator, 0 before it starts.
    pub discriminator: f64,
    pub images_per_second: f64,
}

pub struct AutoencoderTrainer {
    pub config: AutoencoderTrainConfig,
    pub ae_config: AutoencoderConfig,
    autoencoder: Autoencoder,
    discriminator: Discriminator,
    ae_optimizer: ModuleOptimizer,
    disc_optimizer: ModuleOptimizer,
    /// The frozen classifier whose features define the perceptual loss.
    judge: Classifier,
    pub step: u64,
    pub wall_seconds: f64,
    autodiff: Device,
    data_description: String,
    order: (u64, Vec<usize>),
}

fn optimizer(config: &AutoencoderTrainConfig) -> ModuleOptimizer {
    // β1 = 0.5 as usual for GAN training (Radford et al. 2016; Esser et al. 2021).
    let _ = config;
    AdamConfig::new().with_beta_1(0.5).with_beta_2(0.9).init()
}

/// The judge for the perceptual loss: its weights without dropout (a loss must be deterministic).
fn perceptual_judge(classifier: &Checkpoint, device: &Device) -> Result<Classifier, CheckpointError> {
    classifier.expect_kind(ModelKind::Classifier)?;
    let config: ClassifierConfig = serde_json::from_value(classifier.header.config.clone())
        .map_err(|e| CheckpointError::Header(format!("classifier config: {e}")))?;
    module_from_bytes(config.with_dropout(0.0).init(device), classifier.section("weights")?, "weights")
}

impl AutoencoderTrainer {
    pub fn new(
        config: AutoencoderTrainConfig,
        ae_config: AutoencoderConfig,
        classifier: &Checkpoint,
        device: &Device,
        data_description: String,
    ) -> Result<Self, CheckpointError> {
        let autodiff = device.clone().autodiff();
        // The initial weights come from the run's seed, as the diffusion trainer's do.
        let seed = config.seed;
        let discriminator = DiscriminatorConfig::new().with_image_channels(ae_config.image_channels);
        Ok(Self {
            autoencoder: crate::model::init_from_seed(&autodiff, seed, || ae_config.init(&autodiff)),
            discriminator: crate::model::init_from_seed(&autodiff, seed ^ 1, || discriminator.init(&autodiff)),
            ae_optimizer: optimizer(&config),
            disc_optimizer: optimizer(&config),
            judge: perceptual_judge(classifier, &autodiff)?,
            config,
            ae_config,
            step: 0,
            wall_seconds: 0.0,
            autodiff,
            data_description,
            order: (u64::MAX, Vec::new()),
        })
    }

    /// Continues from a checkpoint written by [`AutoencoderTrainer::checkpoint`].
    pub fn resume(
        checkpoint: &Checkpoint,
        classifier: &Checkpoint,
        device: &Device,
        steps: Option<u64>,
    ) -> Result<Self, CheckpointError> {
        checkpoint.expect_kind(ModelKind::Autoencoder)?;
        let (ae_config, record, mut config): (AutoencoderConfig, TrainRecord, AutoencoderTrainConfig) =
            super::resume_header(checkpoint)?;
        ae_config.validate().map_err(|e| CheckpointError::Header(format!("autoencoder config: {e}")))?;
        if let Some(steps) = steps {
            config.steps = steps;
        }
        let mut trainer = Self::new(config, ae_config, classifier, device, record.data)?;
        trainer.autoencoder = module_from_bytes(trainer.autoencoder, checkpoint.section("weights")?, "weights")?;
        trainer.discriminator =
            module_from_bytes(trainer.discriminator, checkpoint.section("discriminator")?, "discriminator")?;
        trainer.ae_optimizer = super::optimizer_from_section(trainer.ae_optimizer, checkpoint, "optimizer")?;
        trainer.disc_optimizer =
            super::optimizer_from_section(trainer.disc_optimizer, checkpoint, "discriminator_optimizer")?;
        trainer.step = checkpoint.header.step;
        trainer.wall_seconds = record.wall_seconds;
        Ok(trainer)
    }

    pub fn train_step(&mut self, data: &Dataset) -> AutoencoderStepReport {
        let started = Instant::now();
        let batch = self.config.batch_size;
        let indices: Vec<usize> = (0..batch as u64)
            .map(|j| epoch_order_index(&mut self.order, data.count, self.config.seed, self.step * batch as u64 + j))
            .collect();
        let (pixels, _) = data.gather(&indices);
        let shape = [batch, data.channels, data.height, data.width];
        let device = &self.autodiff;
        let x = Tensor::<4>::from_data(TensorData::new(pixels, shape), device);
        let mut rng = ChaCha8Rng::seed_from_u64(self.config.seed.wrapping_mul(7_919) ^ self.step);
        let posterior = self.autoencoder.encode(x.clone());
        let eps = NoiseSource::new(rng.random()).tensor(posterior.mean.dims(), device);
        let x_hat = self.autoencoder.decode(posterior.sample(eps));

        let reconstruction = x.clone().sub(x_hat.clone()).abs().mean();
        let perceptual = self.judge.features(x.clone()).sub(self.judge.features(x_hat.clone())).powi_scalar(2).mean();
        let kl = posterior.kl();
        let adversarial = self.step >= self.config.adversarial_start;
        let generator = adversarial.then(|| self.discriminator.forward(x_hat.clone()).mean().neg());
        let report_value = |t: &Tensor<1>| t.clone().into_scalar::<f32>() as f64;
        let (rec_value, perceptual_value, kl_value) =
            (report_value(&reconstruction), report_value(&perceptual), report_value(&kl));
        let generator_value = generator.as_ref().map_or(0.0, report_value);

        let mut loss = reconstruction
            .add(perceptual.mul_scalar(self.config.perceptual_weight))
            .add(kl.mul_scalar(self.config.kl_weight));
        if let Some(g) = generator {
            loss = loss.add(g.mul_scalar(self.config.adversarial_weight));
        }
        let fake = x_hat.detach();
        let grads = GradientsParams::from_grads(loss.backward(), &self.autoencoder);
        self.autoencoder = self.ae_optimizer.step(self.config.learning_rate, self.autoencoder.clone(), grads);

        let mut discriminator_value = 0.0;
        if adversarial {
            // Hinge loss: E[relu(1 - D(x))] + E[relu(1 + D(x̂))].
            let real = relu(self.discriminator.forward(x).neg().add_scalar(1.0)).mean();
            let generated = relu(self.discriminator.forward(fake).add_scalar(1.0)).mean();
            let loss = real.add(generated);
            discriminator_value = report_value(&loss);
            let grads = GradientsParams::from_grads(loss.backward(), &self.discriminator);
            self.discriminator = self.disc_optimizer.step(self.config.learning_rate, self.discriminator.clone(), grads);
        }
        self.step += 1;
        let seconds = started.elapsed().as_secs_f64();
        self.wall_seconds += seconds;
        AutoencoderStepReport {
            step: self.step,
            reconstruction: rec_value,
            perceptual: perceptual_value,
            kl: kl_value,
            generator: generator_value,
            discriminator: discriminator_value,
            images_per_second: batch as f64 / seconds,
        }
    }

    /// The trained autoencoder without autodiff.
    pub fn autoencoder(&self) -> Autoencoder {
        self.autoencoder.valid()
    }

    fn header(&self, ae_config: &AutoencoderConfig) -> CheckpointHeader {
        let record = TrainRecord {
            train_config: serde_json::to_value(&self.config).unwrap_or_default(),
            data: self.data_description.clone(),
            images_seen: self.step * self.config.batch_size as u64,
            wall_seconds: self.wall_seconds,
            autoencoder: None,
        };
        CheckpointHeader {
            kind: ModelKind::Autoencoder,
            config: serde_json::to_value(ae_config).unwrap_or_default(),
            training_schedule: None,
            log_snr_range: None,
            step: self.step,
            extra: serde_json::to_value(record).unwrap_or_default(),
            sections: Vec::new(),
        }
    }

    /// Everything needed to resume exactly.
    pub fn checkpoint(&self) -> Result<Checkpoint, CheckpointError> {
        Ok(Checkpoint::new(self.header(&self.ae_config))
            .with_section("weights", bytes_from_module(&self.autoencoder, false)?)
            .with_section("discriminator", bytes_from_module(&self.discriminator, false)?)
            .with_section("optimizer", super::section_from_optimizer(&self.ae_optimizer, "optimizer")?)
            .with_section(
                "discriminator_optimizer",
                super::section_from_optimizer(&self.disc_optimizer, "discriminator_optimizer")?,
            ))
    }

    /// The autoencoder to ship (f16), with the latent scale measured on `data`.
    pub fn export(&self, data: &Dataset) -> Result<Checkpoint, CheckpointError> {
        let autoencoder = self.autoencoder();
        let scale = latent_scale(&autoencoder, data, 2000, &self.autodiff.clone().without_autodiff())
            .map_err(|e| CheckpointError::Weights { section: "latent scale".into(), detail: e.to_string() })?;
        let config = AutoencoderConfig { latent_scale: scale, ..self.ae_config.clone() };
        Ok(Checkpoint::new(self.header(&config)).with_section("weights", bytes_from_module(&autoencoder, true)?))
    }
}

/// `data` encoded: the means of q(z | x), times the autoencoder's latent scale; labels kept.
pub fn latent_dataset(
    autoencoder: &Autoencoder,
    config: &AutoencoderConfig,
    data: &Dataset,
    device: &Device,
) -> Result<Dataset, ReadbackError> {
    let side = config.latent_size();
    let mut images = Vec::with_capacity(data.count * config.latent_channels * side * side);
    let indices: Vec<usize> = (0..data.count).collect();
    for chunk in indices.chunks(500) {
        let (pixels, _) = data.gather(chunk);
        let x = Tensor::<4>::from_data(
            TensorData::new(pixels, [chunk.len(), data.channels, data.height, data.width]),
            device,
        );
        let z = autoencoder.encode(x).mean.mul_scalar(config.latent_scale);
        images.extend(read_f32(z)?);
    }
    Ok(Dataset {
        images,
        count: data.count,
        channels: config.latent_channels,
        height: side,
        width: side,
        labels: data.labels.clone(),
        class_names: data.class_names.clone(),
    })
}

/// 1 / std of the encoder's means over (at most) `count` images: multiplies z so diffusion sees unit variance.
pub fn latent_scale(
    autoencoder: &Autoencoder,
    data: &Dataset,
    count: usize,
    device: &Device,
) -> Result<f64, ReadbackError> {
    let count = count.min(data.count);
    let mut values: Vec<f32> = Vec::new();
    let indices: Vec<usize> = (0..count).collect();
    for chunk in indices.chunks(250) {
        let (pixels, _) = data.gather(chunk);
        let x = Tensor::<4>::from_data(
            TensorData::new(pixels, [chunk.len(), data.channels, data.height, data.width]),
            device,
        );
        values.extend(read_f32(autoencoder.encode(x).mean)?);
    }
    let n = values.len().max(2) as f64;
    let mean = values.iter().map(|v| *v as f64).sum::<f64>() / n;
    let variance = values.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0);
    Ok(if variance > 0.0 { 1.0 / variance.sqrt() } else { 1.0 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::train::classifier::classifier_checkpoint;

    /// 8x8 images: a bright square at one of four corners.
    fn corners(count: usize) -> Dataset {
        let mut images = Vec::with_capacity(count * 64);
        for i in 0..count {
            let (cx, cy) = ((i % 2) * 4, ((i / 2) % 2) * 4);
            for y in 0..8 {
                for x in 0..8 {
                    let inside = (cx..cx + 4).contains(&x) && (cy..cy + 4).contains(&y);
                    images.push(if inside { 0.9 } else { -0.9 });
                }
            }
        }
        Dataset { images, count, channels: 1, height: 8, width: 8, labels: None, class_names: Vec::new() }
    }

    fn setup(steps: u64, adversarial_start: u64) -> (AutoencoderTrainConfig, AutoencoderConfig, Checkpoint) {
        let device = Device::flex();
        let classifier_config = ClassifierConfig::new().with_image_size(8).with_feature_dim(16);
        let classifier = classifier_checkpoint(&classifier_config.init(&device), &classifier_config, 0.0).unwrap();
        let config = AutoencoderTrainConfig::new()
            .with_batch_size(8)
            .with_steps(steps)
            .with_learning_rate(2e-3)
            .with_adversarial_start(adversarial_start);
        let ae = AutoencoderConfig::new()
            .with_image_size(8)
            .with_channels(vec![8, 16])
            .with_groups(4)
            .with_latent_channels(2);
        (config, ae, classifier)
    }

    #[test]
    fn a_few_steps_lower_the_reconstruction_loss_and_the_discriminator_joins() {
        let device = Device::flex();
        let data = corners(32);
        let (config, ae, classifier) = setup(40, 30);
        let mut trainer = AutoencoderTrainer::new(config, ae, &classifier, &device, "corners".into()).unwrap();
        let reports: Vec<AutoencoderStepReport> = (0..40).map(|_| trainer.train_step(&data)).collect();
        let first = reports[..5].iter().map(|r| r.reconstruction).sum::<f64>() / 5.0;
        let last = reports[35..].iter().map(|r| r.reconstruction).sum::<f64>() / 5.0;
        assert!(last < 0.7 * first, "reconstruction {first} -> {last}");
        assert!(reports[..30].iter().all(|r| r.discriminator == 0.0));
        assert!(reports[30..].iter().all(|r| r.discriminator > 0.0));
        let exported = trainer.export(&data).unwrap();
        let config: AutoencoderConfig = serde_json::from_value(exported.header.config.clone()).unwrap();
        assert!(config.latent_scale.is_finite() && config.latent_scale > 0.0);
    }

    #[test]
    fn resume_continues_exactly() {
        let device = Device::flex();
        let data = corners(16);
        let (config, ae, classifier) = setup(6, 2);
        let mut straight =
            AutoencoderTrainer::new(config.clone(), ae.clone(), &classifier, &device, "c".into()).unwrap();
        let mut first =
            AutoencoderTrainer::resume(&straight.checkpoint().unwrap(), &classifier, &device, None).unwrap();
        let expected: Vec<f64> = (0..6).map(|_| straight.train_step(&data).reconstruction).collect();
        let mut got: Vec<f64> = (0..3).map(|_| first.train_step(&data).reconstruction).collect();
        let bytes = first.checkpoint().unwrap().to_bytes();
        let mut resumed =
            AutoencoderTrainer::resume(&Checkpoint::from_bytes(&bytes).unwrap(), &classifier, &device, None).unwrap();
        got.extend((0..3).map(|_| resumed.train_step(&data).reconstruction));
        for (a, b) in expected.iter().zip(&got) {
            assert!((a - b).abs() < 1e-5 * (1.0 + a.abs()), "{expected:?} vs {got:?}");
        }
    }
}
