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
    Ok((crate::run::generate::values_from_tensor(&x_t)?, noise))
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

/// The Forward panel's posterior at t: q(x_{t-1} | x_t, x_0) = N(μ̃_t, β̃_t I) of the loaded x_0 beside the
/// model's p_θ(x_{t-1} | x_t) = N(μ_θ, β̃_t I) (ε̂ from the unconditional branch), and the variational
/// bound's L_{t-1} between them, at t and (when asked) across the noise scale.
#[derive(Clone, Debug)]
pub struct PosteriorView {
    pub t: usize,
    /// [1, channels, h, w] of the diffusion's space (a latent model's latent).
    pub shape: [usize; 4],
    /// μ̃_t = c₀ x_0 + c₁ x_t.
    pub coef_x0: f64,
    pub coef_xt: f64,
    pub beta_tilde: f64,
    pub posterior_mean: Vec<f32>,
    pub model_mean: Vec<f32>,
    /// L_{t-1} in bits per dimension (`None` at t = 1, where the bound has a decoder term instead).
    pub kl_bits: Option<f64>,
    /// (t, L_{t-1}) at evenly spaced t from 2 to T: empty unless asked for.
    pub curve: Vec<(usize, f64)>,
}

/// Points of [`PosteriorView::curve`].
pub const POSTERIOR_CURVE_POINTS: usize = 50;

/// The network's ε̂ at each of several timesteps (one image each, in one batch).
type EpsilonAt<'a> = dyn Fn(&[usize]) -> Result<Vec<Vec<f32>>, EngineError> + 'a;

/// L_{t-1} at [`POSTERIOR_CURVE_POINTS`] levels of t from 2 to T, the network asked 25 levels at a time:
/// `noised(t)` is x_0 noised to t, `epsilon_at(ts)` the network's ε̂ at each of them.
fn kl_curve(
    schedule: &crate::diffusion::NoiseSchedule,
    x0: &[f32],
    bound: f64,
    noised: &dyn Fn(usize) -> Vec<f32>,
    epsilon_at: &EpsilonAt<'_>,
) -> Result<Vec<(usize, f64)>, EngineError> {
    use crate::diffusion::{DdpmVariance, posterior};
    let steps = schedule.steps();
    let ts: Vec<usize> = (0..POSTERIOR_CURVE_POINTS)
        .map(|k| 2 + k * (steps - 2) / (POSTERIOR_CURVE_POINTS - 1).max(1))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    let mut points = Vec::new();
    for chunk in ts.chunks(25) {
        for (t, eps) in chunk.iter().zip(epsilon_at(chunk)?) {
            let x_t = noised(*t);
            let kl = posterior::l_t_minus_1_bits_clipped(schedule, *t, x0, &x_t, &eps, DdpmVariance::BetaTilde, bound);
            points.extend(kl.map(|kl| (*t, kl)));
        }
    }
    Ok(points)
}

/// Computes the posterior view of `x0` noised to `t` with ε from `seed` (the forward panel's x_t).
pub fn posterior_view(
    x0: &ForwardX0,
    model: &crate::model::LoadedUnet,
    schedule: crate::diffusion::BetaSchedule,
    t: usize,
    seed: u64,
    curve: bool,
    device: &Device,
) -> Result<PosteriorView, EngineError> {
    use crate::diffusion::{DdpmVariance, posterior};
    let schedule = schedule.build()?;
    let steps = schedule.steps();
    let t = t.clamp(1, steps);
    let [_, c, h, w] = x0.shape;
    if [c, h, w] != [model.config.image_channels, model.config.image_size, model.config.image_size] {
        return Err(EngineError::ShapeMismatch {
            values: x0.values.len(),
            channels: model.config.image_channels,
            size: model.config.image_size,
        });
    }
    let noise = crate::diffusion::NoiseSource::new(seed).values(x0.values.len());
    let noised = |t: usize| -> Vec<f32> {
        let (a, s) = (schedule.sqrt_alpha_bar[t - 1], schedule.sqrt_one_minus_alpha_bar[t - 1]);
        x0.values.iter().zip(&noise).map(|(x, e)| (a * *x as f64 + s * *e as f64) as f32).collect()
    };
    // ε̂ at several t in one batch: each image its own λ, all without a class.
    let epsilon_at = |ts: &[usize]| -> Result<Vec<Vec<f32>>, EngineError> {
        let n = ts.len();
        let values: Vec<f32> = ts.iter().flat_map(|t| noised(*t)).collect();
        let x = Tensor::<4>::from_data(TensorData::new(values, [n, c, h, w]), device);
        let lambdas: Vec<f64> = ts.iter().map(|t| schedule.log_snr[t - 1]).collect();
        let null = Tensor::<1, Int>::full([n], model.model.null_class() as i64, device);
        let eps = model.model.epsilon_with_context(x, &lambdas, model.model.context(null));
        let eps = crate::run::generate::values_from_tensor(&eps)?;
        Ok(eps.chunks(c * h * w).map(<[f32]>::to_vec).collect())
    };
    let x_t = noised(t);
    let eps = epsilon_at(&[t])?.remove(0);
    // μ_θ from the clipped x̂_0, as the samplers step and as `eval --nll` computes the bound's terms.
    let bound = model.x0_bound();
    let (posterior_mean, model_mean) = if t >= 2 {
        (
            posterior::posterior_mean(&schedule, t, &x0.values, &x_t).iter().map(|v| *v as f32).collect(),
            posterior::model_mean_clipped(&schedule, t, &x_t, &eps, bound).iter().map(|v| *v as f32).collect(),
        )
    } else {
        (x0.values.clone(), posterior::predicted_x0(&schedule, t, &x_t, &eps))
    };
    let kl_bits =
        posterior::l_t_minus_1_bits_clipped(&schedule, t, &x0.values, &x_t, &eps, DdpmVariance::BetaTilde, bound);
    let points = match curve && steps >= 2 {
        true => kl_curve(&schedule, &x0.values, bound, &noised, &epsilon_at)?,
        false => Vec::new(),
    };
    Ok(PosteriorView {
        t,
        shape: x0.shape,
        coef_x0: schedule.posterior_coef_x0[t - 1],
        coef_xt: schedule.posterior_coef_xt[t - 1],
        beta_tilde: schedule.beta_tilde[t - 1],
        posterior_mean,
        model_mean,
        kl_bits,
        curve: points,
    })
}
