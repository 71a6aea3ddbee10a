//! The forward-process panel: a clean image x_0 loaded once, then noised to any t, q(x_t | x_0).
//! For a latent model the process runs on the latent z_0 = E(x_0) and every z_t comes back decoded.

use std::path::{Path, PathBuf};

use burn::prelude::*;

use super::error::EngineError;
use super::worker::ForwardSource;
use crate::data::{Dataset, FASHION_MNIST_CLASSES, Split, folder::load_image};
use crate::model::LoadedAutoencoder;

/// The forward process's clean x_0: pixels, or for a latent model the scaled latent E(x_0) of `latent_model`.
pub struct ForwardX0 {
    pub values: Vec<f32>,
    pub shape: [usize; 4],
    pub latent_model: Option<crate::model::ModelId>,
}

/// The Fashion-MNIST test split last read, kept so that stepping through its images reads it once.
#[derive(Default)]
pub struct TestSetCache {
    loaded: Option<(PathBuf, Dataset)>,
}

impl TestSetCache {
    /// The test split in `dir`, read unless it is the one already held.
    pub fn get(&mut self, dir: &Path) -> Result<&Dataset, EngineError> {
        let data = match self.loaded.take() {
            Some((loaded, data)) if loaded == dir => data,
            _ => Dataset::fashion_mnist(dir, Split::Test).map_err(EngineError::DataSet)?,
        };
        Ok(&self.loaded.insert((dir.to_path_buf(), data)).1)
    }
}

/// x_0 for the forward process as `channels` x `size` x `size` pixels, and a label saying what it is.
pub fn forward_image(
    source: &ForwardSource,
    size: usize,
    channels: usize,
    test_set: &mut TestSetCache,
) -> Result<(Vec<f32>, String), EngineError> {
    match source {
        ForwardSource::Pixels { values, label } if values.len() == channels * size * size => {
            Ok((values.clone(), label.clone()))
        }
        ForwardSource::Pixels { values, .. } => {
            Err(EngineError::ShapeMismatch { values: values.len(), channels, size })
        }
        ForwardSource::File(path) => {
            let x0 = load_image(path, size, size, channels).map_err(EngineError::Image)?;
            Ok((x0, path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())))
        }
        ForwardSource::TestImage { dir, index } => {
            let data = test_set.get(dir)?;
            if data.channels != channels || data.height != size || data.width != size {
                let found = [data.channels, data.height, data.width];
                return Err(EngineError::DataSetShape { channels, size, found });
            }
            let index = (*index).min(data.count.saturating_sub(1));
            let label = data.label(index).and_then(|l| FASHION_MNIST_CLASSES.get(l)).copied().unwrap_or("unlabelled");
            Ok((data.image(index).to_vec(), format!("test image {index} ({label})")))
        }
    }
}

/// x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε, and ε (drawn from `seed`). `t` is clamped to the schedule.
pub fn forward_step(
    x0: &[f32],
    shape: [usize; 4],
    schedule: crate::diffusion::BetaSchedule,
    t: usize,
    seed: u64,
    device: &Device,
) -> Result<(Vec<f32>, Vec<f32>), EngineError> {
    let schedule = schedule.build()?;
    let t = t.clamp(1, schedule.steps());
    let x0 = Tensor::<4>::from_data(TensorData::new(x0.to_vec(), shape), device);
    let noise = crate::diffusion::NoiseSource::new(seed).values(shape.iter().product());
    let eps = Tensor::<4>::from_data(TensorData::new(noise.clone(), shape), device);
    let x_t = crate::diffusion::q_sample(&schedule, x0, t, eps);
    Ok((super::generate::values_from_tensor(&x_t)?, noise))
}

/// x_t and the ε it was noised with, as the panel shows them.
pub struct NoisedFrame {
    pub x_t: Vec<f32>,
    pub noise: Vec<f32>,
    /// Of both: pixels, [1, channels, h, w].
    pub shape: [usize; 4],
}

/// x_t and ε of `x0` at `t`, decoded to pixels when x_0 is a latent (`autoencoder` is then its model's).
pub fn forward_frame(
    x0: &ForwardX0,
    autoencoder: Option<&LoadedAutoencoder>,
    schedule: crate::diffusion::BetaSchedule,
    t: usize,
    seed: u64,
    device: &Device,
) -> Result<NoisedFrame, EngineError> {
    let (x_t, noise) = forward_step(&x0.values, x0.shape, schedule, t, seed, device)?;
    match autoencoder {
        Some(ae) => {
            let (x_t, shape) = decode_scaled_values(ae, x_t, x0.shape, device)?;
            let (noise, _) = decode_scaled_values(ae, noise, x0.shape, device)?;
            Ok(NoisedFrame { x_t, noise, shape })
        }
        None => Ok(NoisedFrame { x_t, noise, shape: x0.shape }),
    }
}

/// E(x) · scale: an image to the latent a latent model diffuses.
pub fn encode_scaled(
    ae: &LoadedAutoencoder,
    x: &[f32],
    shape: [usize; 4],
    device: &Device,
) -> Result<(Vec<f32>, [usize; 4]), EngineError> {
    let z = ae.encode_scaled(Tensor::<4>::from_data(TensorData::new(x.to_vec(), shape), device));
    let z_shape = z.dims();
    Ok((crate::model::read_f32(z)?, z_shape))
}

/// D(z / scale): a latent back to pixels.
pub fn decode_scaled_values(
    ae: &LoadedAutoencoder,
    z: Vec<f32>,
    shape: [usize; 4],
    device: &Device,
) -> Result<(Vec<f32>, [usize; 4]), EngineError> {
    let pixels = ae.decode_scaled(Tensor::<4>::from_data(TensorData::new(z, shape), device));
    let pixel_shape = pixels.dims();
    Ok((crate::model::read_f32(pixels)?, pixel_shape))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pixels_of_the_wrong_size_are_refused_with_their_count() {
        let source = ForwardSource::Pixels { values: vec![0.0; 10], label: "frame".into() };
        let refused = forward_image(&source, 4, 1, &mut TestSetCache::default()).err().map(|e| e.to_string());
        assert_eq!(refused.as_deref(), Some("10 values are not a 1x4x4 picture"));
        let source = ForwardSource::Pixels { values: vec![0.5; 16], label: "frame".into() };
        let loaded = forward_image(&source, 4, 1, &mut TestSetCache::default()).ok();
        assert_eq!(loaded, Some((vec![0.5; 16], "frame".to_owned())));
    }

    #[test]
    fn a_missing_test_set_says_so_and_is_not_cached() {
        let dir = tempfile::tempdir().unwrap();
        let dir = dir.path().join("none");
        let mut cache = TestSetCache::default();
        let failed = cache.get(&dir).err();
        assert!(matches!(failed, Some(EngineError::DataSet(_))), "{failed:?}");
        assert!(cache.loaded.is_none());
    }

    #[test]
    fn a_step_of_a_bad_schedule_fails_as_a_schedule_error() {
        let device = Device::flex();
        let stepped = forward_step(&[0.0; 4], [1, 1, 2, 2], crate::diffusion::BetaSchedule::linear(0), 1, 0, &device);
        assert!(matches!(stepped, Err(EngineError::Schedule(_))));
        let (x_t, noise) =
            forward_step(&[0.0; 4], [1, 1, 2, 2], crate::diffusion::BetaSchedule::linear(10), 10, 7, &device).unwrap();
        assert_eq!((x_t.len(), noise.len()), (4, 4));
    }
}
