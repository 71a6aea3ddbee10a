//! burn modules: the noise-prediction UNet and its parts, checkpoints, and the denoising loop.

pub mod attention;
pub mod autoencoder;
pub mod checkpoint;
pub mod classifier;
pub mod cost;
pub mod cpu;
pub mod denoise;
pub mod embedded;
pub mod embedding;
pub mod id;
pub mod point_mlp;
pub mod text_encoder;
pub mod unet;

pub use id::ModelId;
pub use unet::{UNet, UNetConfig};

/// A tensor could not be read back from its device (a lost or failed GPU, say): the computation that
/// needed its values fails with this instead of carrying on with none.
#[derive(Debug, thiserror::Error)]
#[error("reading results back from the compute device failed: {0}")]
pub struct ReadbackError(pub String);

/// Seeds `device`'s random generator and builds a network with `init`, its weights drawn there and then
/// with no other seeded init in between: the same seed gives the same weights every time. Both halves
/// are needed. burn keeps one generator per backend for the whole process (tests run in parallel, the
/// window may start a training run while another initializes), and burn's `init` is lazy: each weight
/// is drawn when first read, which without [`DrawWeights`] would be during the first forward pass, long
/// after the seed, interleaved with whatever else the process draws by then.
pub fn init_from_seed<M: burn::module::Module>(device: &Device, seed: u64, init: impl FnOnce() -> M) -> M {
    static SEEDED_INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _only_one = SEEDED_INIT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    device.seed(seed);
    let module = init();
    module.visit(&mut DrawWeights);
    module
}

/// Reads every parameter once, which makes burn draw the ones still lazy.
struct DrawWeights;

impl burn::module::ModuleVisitor for DrawWeights {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        let _drawn = param.val();
    }

    fn visit_int<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D, Int>>) {
        let _drawn = param.val();
    }

    fn visit_bool<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D, Bool>>) {
        let _drawn = param.val();
    }
}

/// The part of a config check both networks share: every level's channels must split into `groups`
/// GroupNorm groups (`channels` non-empty is each config's own check, with its own message).
pub(crate) fn check_group_norm_levels(channels: &[usize], groups: usize) -> Result<(), String> {
    if groups == 0 {
        return Err("`groups` must be at least 1".into());
    }
    match channels.iter().find(|c| **c == 0 || **c % groups != 0) {
        Some(c) => Err(format!("channels {c} cannot be split into {groups} GroupNorm groups")),
        None => Ok(()),
    }
}

/// The largest value a config's size fields may take: far above anything trainable on one machine, so
/// that they never refuse a real model, but low enough that counting a network's parameters cannot
/// overflow. Whether the weights are really there is [`check_weights_fit`]'s question.
pub(crate) const MAX_CONFIG_SIZE: usize = 1 << 16;

/// Errors unless every `(name, value)` is at most [`MAX_CONFIG_SIZE`].
pub(crate) fn check_config_sizes(sizes: &[(&str, usize)]) -> Result<(), String> {
    match sizes.iter().find(|(_, value)| *value > MAX_CONFIG_SIZE) {
        Some((name, value)) => Err(format!("`{name}` is {value}, above the limit of {MAX_CONFIG_SIZE}")),
        None => Ok(()),
    }
}

/// A header whose config needs more parameters than its weights section could hold (2 bytes each, half
/// precision, is the least any checkpoint stores) is damaged: refuse it before `init` allocates them,
/// which for a hostile header could be terabytes.
pub(crate) fn check_weights_fit(parameters: usize, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
    let bytes = checkpoint.section("weights")?.len();
    if parameters.saturating_mul(2) > bytes {
        return Err(CheckpointError::Header(format!(
            "the config describes {parameters} parameters, but the weights section has only {bytes} bytes"
        )));
    }
    Ok(())
}

/// The values of a float tensor, row-major.
pub fn read_f32<const D: usize>(tensor: Tensor<D>) -> Result<Vec<f32>, ReadbackError> {
    tensor.into_data().try_to_vec::<f32>().map_err(|e| ReadbackError(format!("{e:?}")))
}

/// The values of an integer tensor, row-major.
pub fn read_i64<const D: usize>(tensor: Tensor<D, Int>) -> Result<Vec<i64>, ReadbackError> {
    tensor.into_data().convert::<i64>().try_to_vec::<i64>().map_err(|e| ReadbackError(format!("{e:?}")))
}

use burn::prelude::*;
use checkpoint::{Checkpoint, CheckpointError, CheckpointHeader, ModelKind, module_from_bytes};

/// A UNet ready to sample, with what its checkpoint says about it.
#[derive(Clone, Debug)]
pub struct LoadedUnet {
    pub model: UNet,
    pub config: UNetConfig,
    pub header: CheckpointHeader,
    /// Autoguidance's weaker model of the same kind (an earlier checkpoint), where one was given.
    pub guide: Option<Box<UNet>>,
}

impl LoadedUnet {
    /// Builds the UNet a checkpoint describes on `device` and loads its (EMA) weights.
    pub fn from_checkpoint(checkpoint: &Checkpoint, device: &Device) -> Result<Self, CheckpointError> {
        if checkpoint.header.kind != ModelKind::LatentUnet {
            checkpoint.expect_kind(ModelKind::Unet)?;
        }
        let config: UNetConfig = serde_json::from_value(checkpoint.header.config.clone())
            .map_err(|e| CheckpointError::Header(format!("UNet config: {e}")))?;
        config.validate().map_err(|e| CheckpointError::Header(format!("UNet config: {e}")))?;
        check_weights_fit(config.parameter_count(), checkpoint)?;
        let model = module_from_bytes(config.init(device), checkpoint.section("weights")?, "weights")?;
        Ok(Self { model, config, header: checkpoint.header.clone(), guide: None })
    }

    /// Whether it denoises an autoencoder's latents rather than pixels.
    pub fn is_latent(&self) -> bool {
        self.header.kind == ModelKind::LatentUnet
    }

    /// The data range x̂_0 is clipped to when the sampler clips: [-1, 1] for pixels, [-b, b] with b =
    /// [`autoencoder::LATENT_X0_BOUND`] for latents.
    pub fn x0_bound(&self) -> f64 {
        if self.is_latent() { autoencoder::LATENT_X0_BOUND } else { 1.0 }
    }
}

/// An autoencoder ready to encode and decode, with its config (latent scale included).
#[derive(Clone, Debug)]
pub struct LoadedAutoencoder {
    pub model: autoencoder::Autoencoder,
    pub config: autoencoder::AutoencoderConfig,
}

impl LoadedAutoencoder {
    pub fn from_checkpoint(checkpoint: &Checkpoint, device: &Device) -> Result<Self, CheckpointError> {
        checkpoint.expect_kind(ModelKind::Autoencoder)?;
        let config: autoencoder::AutoencoderConfig = serde_json::from_value(checkpoint.header.config.clone())
            .map_err(|e| CheckpointError::Header(format!("autoencoder config: {e}")))?;
        config.validate().map_err(|e| CheckpointError::Header(format!("autoencoder config: {e}")))?;
        check_weights_fit(config.encoder_parameters() + config.decoder_cost().parameters, checkpoint)?;
        let model = module_from_bytes(config.init(device), checkpoint.section("weights")?, "weights")?;
        Ok(Self { model, config })
    }

    /// D(mean of E(x)) of every image of `data`, labels kept: what the autoencoder keeps of real images,
    /// the ceiling of a latent model's quality.
    pub fn reconstruct(
        &self,
        data: &crate::data::Dataset,
        device: &Device,
    ) -> Result<crate::data::Dataset, ReadbackError> {
        let mut images = Vec::with_capacity(data.images.len());
        let indices: Vec<usize> = (0..data.count).collect();
        for chunk in indices.chunks(250) {
            let (pixels, _) = data.gather(chunk);
            // [chunk, channels, h, w]
            let x = Tensor::<4>::from_data(
                TensorData::new(pixels, [chunk.len(), data.channels, data.height, data.width]),
                device,
            );
            let decoded = self.model.decode(self.model.encode(x).mean).clamp(-1.0, 1.0);
            images.extend(read_f32(decoded)?);
        }
        // Built field by field: `..data.clone()` would copy every original pixel only to drop them.
        Ok(crate::data::Dataset {
            images,
            count: data.count,
            channels: data.channels,
            height: data.height,
            width: data.width,
            labels: data.labels.clone(),
            class_names: data.class_names.clone(),
        })
    }

    /// scale · mean of E(x): pixels to the latent the diffusion works on.
    pub fn encode_scaled(&self, x: Tensor<4>) -> Tensor<4> {
        self.model.encode(x).mean.mul_scalar(self.config.latent_scale)
    }

    /// D(z / scale): a diffusion latent back to pixels.
    pub fn decode_scaled(&self, z: Tensor<4>) -> Tensor<4> {
        self.model.decode(z.mul_scalar(1.0 / self.config.latent_scale))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A read-back that cannot give f32 values is an error, never an empty vector that would turn into
    /// wrong scores or an index panic later.
    #[test]
    fn a_failed_read_back_is_an_error() {
        let device = Device::flex();
        let values = Tensor::<1>::from_floats([1.0, 2.0], &device);
        assert_eq!(read_f32(values.clone()).unwrap(), vec![1.0, 2.0]);
        let half = values.cast(burn::tensor::DType::F16);
        let error = read_f32(half).unwrap_err();
        assert!(error.to_string().contains("reading results back"), "{error}");
    }

    /// The same seed gives the same weights while another thread seeds and initializes a network of its
    /// own (the parallel tests, a second training run): the regression was an ODE likelihood test that
    /// failed whenever another test ran beside it, its network's lazy weights drawn mid-run.
    #[test]
    fn a_seeded_init_gives_the_same_weights_while_another_thread_draws() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let device = Device::flex();
        let weights = || {
            let linear = init_from_seed(&device, 7, || burn::nn::LinearConfig::new(16, 16).init(&device));
            read_f32(linear.weight.val()).unwrap()
        };
        let alone = weights();
        // Runs until both threads have done 300 inits each, so that they overlap whatever the scheduler does.
        let (other_inits, rounds) = (AtomicUsize::new(0), 300);
        let beside = std::thread::scope(|scope| {
            scope.spawn(|| {
                for _ in 0..rounds {
                    let other = init_from_seed(&device, 9, || burn::nn::LinearConfig::new(64, 64).init(&device));
                    let _ = read_f32(other.weight.val());
                    other_inits.fetch_add(1, Ordering::Relaxed);
                }
            });
            let mut beside = Vec::new();
            while beside.len() < rounds || other_inits.load(Ordering::Relaxed) < rounds {
                beside.push(weights());
            }
            beside
        });
        assert!(alone.iter().any(|w| *w != 0.0));
        assert!(beside.iter().all(|w| *w == alone), "a seeded init drew other weights");
    }
}
