//! Training: the diffusion model's trainer and its exponential moving average.

pub mod autoencoder;
pub mod classifier;
pub mod ddpm;
pub mod defaults;
pub mod ema;
pub mod levels;
pub mod points;
pub mod recipe;
pub mod training;

use burn::optim::ModuleOptimizer;
use serde::de::DeserializeOwned;

use crate::model::checkpoint::{Checkpoint, CheckpointError};
use ddpm::TrainRecord;

/// What every trainer's checkpoint header holds: the module's config (`C`), the run record, and the
/// training config (`T`) as it was saved.
pub(crate) fn resume_header<C: DeserializeOwned, T: DeserializeOwned>(
    checkpoint: &Checkpoint,
) -> Result<(C, TrainRecord, T), CheckpointError> {
    let header_error = |e: serde_json::Error| CheckpointError::Header(e.to_string());
    let module_config: C = serde_json::from_value(checkpoint.header.config.clone()).map_err(header_error)?;
    let record: TrainRecord = serde_json::from_value(checkpoint.header.extra.clone()).map_err(header_error)?;
    let train_config: T = serde_json::from_value(record.train_config.clone()).map_err(header_error)?;
    Ok((module_config, record, train_config))
}

/// An optimizer's state (moments, step counts) as the checkpoint section `section`.
pub(crate) fn section_from_optimizer(optimizer: &ModuleOptimizer, section: &str) -> Result<Vec<u8>, CheckpointError> {
    optimizer
        .into_bytes()
        .map(|bytes| bytes.to_vec())
        .map_err(|e| CheckpointError::Weights { section: section.into(), detail: e.to_string() })
}

/// `optimizer` with the state saved in the checkpoint section `section`.
pub(crate) fn optimizer_from_section(
    optimizer: ModuleOptimizer,
    checkpoint: &Checkpoint,
    section: &str,
) -> Result<ModuleOptimizer, CheckpointError> {
    let bytes = burn::tensor::Bytes::from_bytes_vec(checkpoint.section(section)?.to_vec());
    optimizer.from_bytes(bytes).map_err(|e| CheckpointError::Weights { section: section.into(), detail: e.to_string() })
}
