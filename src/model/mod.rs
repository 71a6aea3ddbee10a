//! burn modules: the noise-prediction UNet and its parts, checkpoints, and the denoising loop.

pub mod attention;
pub mod autoencoder;
pub mod checkpoint;
pub mod classifier;
pub mod denoise;
pub mod embedded;
pub mod embedding;
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
        checkpoint.expect_kind(ModelKind::Unet)?;
        let config: UNetConfig = serde_json::from_value(checkpoint.header.config.clone())
            .map_err(|e| CheckpointError::Header(format!("UNet config: {e}")))?;
        let model = module_from_bytes(config.init(device), checkpoint.section("weights")?, "weights")?;
        Ok(Self { model, config, header: checkpoint.header.clone() })
    }
}
