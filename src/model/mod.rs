//! burn modules: the noise-prediction UNet and its parts, checkpoints, and the denoising loop.

pub mod attention;
pub mod autoencoder;
pub mod checkpoint;
pub mod classifier;
pub mod cost;
pub mod denoise;
pub mod embedded;
pub mod embedding;
pub mod cpu;
pub mod unet;

pub use unet::{UNet, UNetConfig};

use burn::prelude::*;
use checkpoint::{Checkpoint, CheckpointError, CheckpointHeader, ModelKind, module_from_bytes};

/// A UNet ready to sample, with what its checkpoint says about it.
#[derive(Clone, Debug)]
pub struct LoadedUnet {
    pub model: UNet,
    pub config: UNetConfig,
    pub header: CheckpointHeader,
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
        let model = module_from_bytes(config.init(device), checkpoint.section("weights")?, "weights")?;
        Ok(Self { model, config, header: checkpoint.header.clone() })
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
        let model = module_from_bytes(config.init(device), checkpoint.section("weights")?, "weights")?;
        Ok(Self { model, config })
    }

    /// D(mean of E(x)) of every image of `data`, labels kept: what the autoencoder keeps of real images,
    /// the ceiling of a latent model's quality.
    pub fn reconstruct(&self, data: &crate::data::Dataset, device: &Device) -> crate::data::Dataset {
        let mut images = Vec::with_capacity(data.images.len());
        let indices: Vec<usize> = (0..data.count).collect();
        for chunk in indices.chunks(250) {
            let (pixels, _) = data.gather(chunk);
            // [chunk, channels, h, w]
            let x = Tensor::<4>::from_data(TensorData::new(pixels, [chunk.len(), data.channels, data.height, data.width]), device);
            let decoded = self.model.decode(self.model.encode(x).mean).clamp(-1.0, 1.0);
            images.extend(decoded.into_data().try_to_vec::<f32>().unwrap_or_default());
        }
        // Built field by field: `..data.clone()` would copy every original pixel only to drop them.
        crate::data::Dataset {
            images,
            count: data.count,
            channels: data.channels,
            height: data.height,
            width: data.width,
            labels: data.labels.clone(),
            class_names: data.class_names.clone(),
        }
    }

    /// D(z / scale): a diffusion latent back to pixels.
    pub fn decode_scaled(&self, z: Tensor<4>) -> Tensor<4> {
        self.model.decode(z.mul_scalar(1.0 / self.config.latent_scale))
    }
}
