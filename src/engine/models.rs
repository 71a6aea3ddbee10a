//! The models the engine holds: loading them from checkpoints, describing them to the window, and warming
//! them up on a GPU.

use crate::model::ModelId;
use burn::module::Module;
use burn::prelude::Device;

use super::error::EngineError;
use super::worker::{ModelInfo, ModelSource};
use crate::model::checkpoint::{Checkpoint, CheckpointError};
use crate::model::{LoadedAutoencoder, LoadedUnet};
use crate::run::generate::{Frame, GenerateRequest, RunHooks, run_generate};

/// A UNet under its name, with the autoencoder that decodes its latents (a latent model's).
pub struct LoadedModel {
    pub unet: LoadedUnet,
    pub autoencoder: Option<LoadedAutoencoder>,
}

impl LoadedModel {
    /// Loads the UNet of `source` and its autoencoder: `autoencoder` when given, else the file a latent
    /// checkpoint names (the one it was trained with).
    pub fn load(source: &ModelSource, autoencoder: Option<&ModelSource>, device: &Device) -> Result<Self, EngineError> {
        let unet = LoadedUnet::from_checkpoint(&checkpoint_of(source)?, device)?;
        let recorded = unet
            .header
            .extra
            .get("autoencoder")
            .and_then(|a| a.as_str())
            .map(|path| ModelSource::File(path.into()))
            .filter(|_| unet.is_latent());
        let autoencoder = match autoencoder.cloned().or(recorded) {
            Some(source) => Some(LoadedAutoencoder::from_checkpoint(&checkpoint_of(&source)?, device)?),
            None => None,
        };
        if unet.is_latent() && autoencoder.is_none() {
            return Err(EngineError::LatentWithoutAutoencoder);
        }
        Ok(Self { unet, autoencoder })
    }

    pub fn move_to(&mut self, device: &Device) {
        self.unet.model = self.unet.model.clone().to_device(device);
        if let Some(ae) = &mut self.autoencoder {
            ae.model = ae.model.clone().to_device(device);
        }
    }

    pub fn info(&self, id: &ModelId) -> ModelInfo {
        model_info(id, &self.unet)
    }

    /// Runs a short guided run (and a decode, for a latent model) so that the first Generate on a GPU does
    /// not pay for shader compilation and autotuning. A failure here is not reported: the real run will
    /// report it.
    pub fn warm_up(&self, device: &Device) {
        let request = GenerateRequest {
            model: ModelId::default(),
            schedule: self.unet.header.training_schedule.unwrap_or_default(),
            sampler: crate::diffusion::Sampler::ddim(2, 0.0),
            seed: 0,
            batch: WARM_UP_BATCH,
            class: Some(0),
            prompt: None,
            guidance: crate::model::denoise::DEFAULT_GUIDANCE,
            guidance_interval: None,
            init: None,
            interpolate: None,
            branch: None,
        };
        let keep_going = || true;
        let mut emit = |_frame: Frame| {};
        let hooks = RunHooks { keep_going: &keep_going, stream: true, emit: &mut emit };
        let _ = run_generate(&self.unet, self.autoencoder.as_ref(), &request, device, hooks);
    }
}

/// The batch a Generate click usually runs (the window's default), guided: burn's GPU backend compiles and
/// autotunes its kernels per shape at their first use, which would otherwise stall the first run.
const WARM_UP_BATCH: usize = 16;

pub fn model_info(id: &ModelId, unet: &LoadedUnet) -> ModelInfo {
    ModelInfo {
        id: id.clone(),
        header: unet.header.clone(),
        config: unet.config.clone(),
        parameters: unet.model.parameter_count(),
        is_latent: unet.is_latent(),
    }
}

pub fn checkpoint_of(source: &ModelSource) -> Result<Checkpoint, CheckpointError> {
    match source {
        ModelSource::Embedded(bytes) => Checkpoint::from_bytes(bytes),
        ModelSource::File(path) => Checkpoint::read(path),
    }
}
