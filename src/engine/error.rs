//! Why an engine command failed. The events carry these as text (the window shows it as it is), so each
//! message says what went wrong in words a user can act on.

use std::path::PathBuf;

use crate::data::DataError;
use crate::diffusion::ScheduleError;
use crate::eval::quality::QualityError;
use crate::model::ReadbackError;
use crate::model::checkpoint::CheckpointError;
use crate::train::training::TrainingError;

use crate::run::generate::GenerateError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("a latent model needs its autoencoder")]
    LatentWithoutAutoencoder,
    #[error("model `{0}` is not loaded")]
    ModelNotLoaded(String),
    /// An image file for the forward process.
    #[error(transparent)]
    Image(DataError),
    /// A data set: the Fashion-MNIST test split the forward process takes its images from, or the Train
    /// view's images.
    #[error(transparent)]
    DataSet(DataError),
    #[error(
        "the model works on {channels}x{size}x{size} images, Fashion-MNIST is {}x{}x{}: open an image file instead",
        found[0], found[1], found[2]
    )]
    DataSetShape { channels: usize, size: usize, found: [usize; 3] },
    #[error("{values} values are not a {channels}x{size}x{size} picture")]
    ShapeMismatch { values: usize, channels: usize, size: usize },
    #[error("no image loaded for the forward process")]
    NoForwardImage,
    #[error("invalid schedule: {0}")]
    Schedule(#[from] ScheduleError),
    #[error(transparent)]
    Readback(#[from] ReadbackError),
    /// A run, or a step of one, that failed (its message already says which).
    #[error(transparent)]
    Generate(#[from] GenerateError),
    #[error("decoding step {index}: {source}")]
    Decode { index: usize, source: GenerateError },
    /// A training run that could not be opened, saved or sampled.
    #[error(transparent)]
    Run(#[from] TrainingError),
    /// The quality meter of a training run (Fashion-MNIST only): made, read or logged.
    #[error(transparent)]
    Quality(#[from] QualityError),
    #[error("cannot create {}: {source}", path.display())]
    CreateFolder { path: PathBuf, source: std::io::Error },
    #[error("cannot write {}: {source}", path.display())]
    WriteFile { path: PathBuf, source: std::io::Error },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_is_wrong() {
        let shape = EngineError::ShapeMismatch { values: 10, channels: 1, size: 28 };
        assert_eq!(shape.to_string(), "10 values are not a 1x28x28 picture");
        let data = EngineError::DataSetShape { channels: 3, size: 32, found: [1, 28, 28] };
        assert_eq!(
            data.to_string(),
            "the model works on 3x32x32 images, Fashion-MNIST is 1x28x28: open an image file instead"
        );
        let decode = EngineError::Decode { index: 7, source: GenerateError::NoAutoencoder };
        assert_eq!(
            decode.to_string(),
            "decoding step 7: this latent model has no autoencoder to turn its latents into pixels"
        );
        // The window and the tests look for these words.
        assert!(EngineError::LatentWithoutAutoencoder.to_string().contains("needs its autoencoder"));
        assert_eq!(EngineError::ModelNotLoaded("tiny".into()).to_string(), "model `tiny` is not loaded");
    }

    #[test]
    fn wrapped_errors_keep_their_own_message() {
        let readback = ReadbackError("device lost".into());
        let message = readback.to_string();
        assert_eq!(EngineError::from(readback).to_string(), message);
        let schedule = crate::diffusion::BetaSchedule::linear(0).build().err();
        let schedule = schedule.map(|e| EngineError::from(e).to_string()).unwrap_or_default();
        assert!(schedule.starts_with("invalid schedule: steps must be"), "{schedule}");
    }
}
