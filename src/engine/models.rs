//! The models the engine holds: found and loaded by the run library's resolver ([`crate::run::models`]),
//! described to the window here, and warmed up on a GPU there.

use crate::model::ModelId;
use burn::prelude::Device;

use super::error::EngineError;
use super::worker::{ModelInfo, ModelSource};
use crate::model::{LoadedUnet, embedded};
use crate::run::models::{CheckpointSource, ResolveError, ResolvedModel};

pub use crate::run::models::LoadedModel;

impl LoadedModel {
    /// Loads the UNet of `source` and its autoencoder: `autoencoder` when given, else the file a latent
    /// checkpoint names (the one it was trained with); a built-in model with its guide for autoguidance.
    pub fn load(source: &ModelSource, autoencoder: Option<&ModelSource>, device: &Device) -> Result<Self, EngineError> {
        let resolved =
            ResolvedModel::from_sources(ModelId::default(), &source_of(source), autoencoder.map(source_of).as_ref())
                .map_err(engine_error)?;
        let guide = match source {
            ModelSource::Embedded(bytes) => {
                // By content: a const's bytes need not keep one address.
                embedded::MODELS.iter().find(|m| m.unet == *bytes).and_then(|m| m.guide)
            }
            ModelSource::File(_) => None,
        };
        // Without its guide the model still runs; autoguidance is then refused with the reason.
        let resolved = match guide.map(|g| resolved.clone().with_guide(&CheckpointSource::Embedded(g))) {
            Some(Ok(guided)) => guided,
            _ => resolved,
        };
        resolved.load(device).map_err(engine_error)
    }

    pub fn info(&self, id: &ModelId) -> ModelInfo {
        model_info(id, &self.unet)
    }
}

fn source_of(source: &ModelSource) -> CheckpointSource {
    match source {
        ModelSource::Embedded(bytes) => CheckpointSource::Embedded(bytes),
        ModelSource::File(path) => CheckpointSource::File(path.clone()),
    }
}

/// The window reports what was wrong with a checkpoint itself, as it always has: a model given by its
/// source fails on a checkpoint or on a latent model without an autoencoder.
fn engine_error(error: ResolveError) -> EngineError {
    match error.checkpoint_error() {
        Some(cause) => EngineError::Checkpoint(cause),
        None => EngineError::LatentWithoutAutoencoder,
    }
}

fn model_info(id: &ModelId, unet: &LoadedUnet) -> ModelInfo {
    ModelInfo {
        id: id.clone(),
        header: unet.header.clone(),
        config: unet.config.clone(),
        parameters: unet.model.parameter_count(),
        is_latent: unet.is_latent(),
    }
}
