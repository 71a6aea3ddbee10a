//! `eval --nll`: the variational bound on -log p_θ(x_0) of a trained UNet on real data, in bits per
//! dimension (the terms: `diffusion::likelihood`), with its split over t and the distortion of x̂_0 at each t.
//!
//! The network runs once per (batch of images, evaluated t): all T = 1000 timesteps per image would cost a
//! thousand forward passes, so t ≥ 2 is evaluated once per stratum of timesteps ([`evaluated_steps`]: a
//! stratified estimate of the sum, each evaluated term weighted by its stratum's width), L_0 and L_T always.

use burn::prelude::*;

use crate::diffusion::likelihood::{self, BoundSums};
use crate::diffusion::{DdpmVariance, NoiseSchedule, NoiseSource, posterior};
use crate::model::{LoadedUnet, ReadbackError, read_f32};

/// What the data's values are, which decides the decoder term L_0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataKind {
    /// 8-bit images scaled to [-1, 1]: Ho et al.'s discretized decoder, a likelihood of the image itself.
    Pixels8Bit,
    /// Continuous values (an autoencoder's latents): the Gaussian density, a bound on the latents' density
    /// (not comparable with bits per pixel).
    Continuous,
}

#[derive(Clone, Copy, Debug)]
pub struct NllOptions {
    /// The widest stratum of t ≥ 2 ([`evaluated_steps`]).
    pub stride: usize,
    pub seed: u64,
    /// σ_t² of the reverse process: β̃_t or β_t.
    pub variance: DdpmVariance,
    /// ε̂ given each image's own label (a bound on -log p(x_0 | y)); otherwise without a class.
    pub conditional: bool,
    pub kind: DataKind,
    /// Images per forward pass.
    pub batch: usize,
    /// x̂_0 is clipped to [-b, b] for its distortion, as the samplers clip it (the model's `x0_bound`): at
    /// large t the unclipped x̂_0 = (x_t - sqrt(1 - ᾱ_t) ε̂) / sqrt(ᾱ_t) divides by nearly 0.
    pub x0_bound: f64,
    /// The bound's μ_θ from the same clipped x̂_0 (Ho et al.'s reference computation, `clip_denoised`):
    /// then the bound, the distortion and the samplers use one model. `false`: μ_θ from ε̂ unclipped.
    pub clip_mean: bool,
}

/// The timesteps evaluated, each with the number of timesteps it stands for: t = 1 (the decoder L_0), then
/// one t drawn (seeded) from each stratum of t ≥ 2. Strata are one step wide within 20 steps of either end
/// and widen away from them up to `stride` (width: a tenth of the distance to the nearer end). The terms
/// change fastest at the ends: L_{t-1} falls from 0.09 bits at t = 6 to 0.017 at t = 26 for the built-in
/// pixel model, and the cosine schedule's last step (β_T capped at 0.999) alone costs 0.43 bits, its
/// neighbours a hundredth of that; evenly strided t made the sum depend on where the stride landed (1.9 to
/// 7.2 bits per pixel).
pub fn evaluated_steps(steps: usize, stride: usize, seed: u64) -> Vec<(usize, usize)> {
    let stride = stride.max(1);
    let mut chosen = vec![(1, 1)];
    let mut start = 2;
    while start <= steps {
        let width = (start.min(steps - start) / 10).clamp(1, stride).min(steps - start + 1);
        let draw = (seed ^ (start as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        chosen.push((start + (draw >> 33) as usize % width, width));
        start += width;
    }
    chosen
}

/// The bound's sums over `count` examples of `values` ([count, c, h, w] flattened), labels for
/// `conditional`; `progress(done, total)` after each forward pass.
#[allow(clippy::too_many_arguments)]
pub fn bound(
    model: &LoadedUnet,
    schedule: &NoiseSchedule,
    values: &[f32],
    labels: &[Option<usize>],
    [c, h, w]: [usize; 3],
    options: &NllOptions,
    device: &Device,
    mut progress: impl FnMut(usize, usize),
) -> Result<BoundSums, ReadbackError> {
    let size = c * h * w;
    let count = values.len() / size.max(1);
    let steps = evaluated_steps(schedule.steps(), options.stride, options.seed);
    let batch = options.batch.max(1);
    let total = count.div_ceil(batch) * steps.len();
    let mut sums = BoundSums::new(schedule.steps());
    // μ_θ from x̂_0 clipped to this bound (infinite: from ε̂ as given).
    let mean_bound = if options.clip_mean { options.x0_bound } else { f64::INFINITY };
    let mut done = 0;
    for (index, first) in (0..count).step_by(batch).enumerate() {
        let n = batch.min(count - first);
        let x0 = &values[first * size..(first + n) * size];
        for (k, image) in x0.chunks_exact(size).enumerate() {
            let prior = likelihood::prior_bits(schedule, image);
            sums.add_prior(prior);
            sums.add_to_example(first + k, prior);
        }
        // [n, tokens, d]: the same context at every t.
        let context = context_of(model, &labels[first.min(labels.len())..], n, options.conditional, device);
        for &(t, weight) in &steps {
            let i = t - 1;
            // Fresh noise per (batch, t), reproducible from the seed.
            let noise = NoiseSource::new(options.seed ^ ((index as u64) << 32 | t as u64)).values(n * size);
            let x_t: Vec<f32> = x0
                .iter()
                .zip(&noise)
                .map(|(x, e)| {
                    (schedule.sqrt_alpha_bar[i] * f64::from(*x) + schedule.sqrt_one_minus_alpha_bar[i] * f64::from(*e))
                        as f32
                })
                .collect();
            // [n, c, h, w]
            let input = Tensor::<4>::from_data(TensorData::new(x_t.clone(), [n, c, h, w]), device);
            let eps_hat = read_f32(model.model.epsilon_with_context(input, &[schedule.log_snr[i]], context.clone()))?;
            let images = x0.chunks_exact(size).zip(x_t.chunks_exact(size)).zip(eps_hat.chunks_exact(size));
            for (k, ((x0, x_t), eps)) in images.enumerate() {
                let bits = if t == 1 {
                    let mean = posterior::model_mean_clipped(schedule, 1, x_t, eps, mean_bound);
                    let variance = likelihood::decoder_variance(schedule, options.variance);
                    match options.kind {
                        DataKind::Pixels8Bit => likelihood::discretized_decoder_bits(&mean, variance, x0),
                        DataKind::Continuous => likelihood::gaussian_decoder_bits(&mean, variance, x0),
                    }
                } else {
                    posterior::l_t_minus_1_bits_clipped(schedule, t, x0, x_t, eps, options.variance, mean_bound)
                        .unwrap_or(0.0)
                };
                let x0_hat = posterior::predicted_x0(schedule, t, x_t, eps);
                let bound = options.x0_bound;
                let error =
                    x0.iter().zip(&x0_hat).map(|(a, b)| (f64::from(*a) - f64::from(*b).clamp(-bound, bound)).powi(2));
                let error = error.sum::<f64>() / size as f64;
                sums.add(t, weight, bits, error);
                sums.add_to_example(first + k, weight as f64 * bits);
            }
            done += 1;
            progress(done, total);
        }
    }
    Ok(sums)
}

/// τ_θ of `n` examples: each one's label from `labels` where `conditional` (and it has one), else the
/// "no class" token. [n, tokens, d]
pub(crate) fn context_of(
    model: &LoadedUnet,
    labels: &[Option<usize>],
    n: usize,
    conditional: bool,
    device: &Device,
) -> Tensor<3> {
    let classes: Vec<i64> = (0..n)
        .map(|i| match (conditional, labels.get(i).copied().flatten()) {
            (true, Some(label)) => label as i64,
            _ => model.model.null_class() as i64,
        })
        .collect();
    model.model.context(Tensor::<1, Int>::from_data(TensorData::new(classes, [n]), device))
}

/// The training loss ||ε - ε_θ(x_t, λ)||² (mean over values and examples) at the centre of every noise-level
/// bin of `train::levels`, on `values` ([count, c, h, w] flattened): what the finished model learned at
/// each level, on data it was not trained on. The same noise for every level (seeded).
#[allow(clippy::too_many_arguments)]
pub fn loss_by_level(
    model: &LoadedUnet,
    values: &[f32],
    labels: &[Option<usize>],
    [c, h, w]: [usize; 3],
    conditional: bool,
    seed: u64,
    device: &Device,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<(f64, f64)>, ReadbackError> {
    use crate::train::levels::{BINS, bin_centre};
    let size = c * h * w;
    let count = values.len() / size.max(1);
    let batch = 50;
    let total = count.div_ceil(batch) * BINS;
    let mut sums = vec![0.0f64; BINS];
    let mut done = 0;
    for (index, first) in (0..count).step_by(batch).enumerate() {
        let n = batch.min(count - first);
        let x0 = &values[first * size..(first + n) * size];
        let noise = NoiseSource::new(seed ^ (index as u64) << 32).values(n * size);
        let context = context_of(model, &labels[first.min(labels.len())..], n, conditional, device);
        for (bin, sum) in sums.iter_mut().enumerate() {
            let log_snr = bin_centre(bin);
            let alpha_bar = crate::diffusion::schedule::alpha_bar_from_log_snr(log_snr);
            let (signal, noise_scale) = (alpha_bar.sqrt(), (1.0 - alpha_bar).sqrt());
            let x_t: Vec<f32> = x0
                .iter()
                .zip(&noise)
                .map(|(x, e)| (signal * f64::from(*x) + noise_scale * f64::from(*e)) as f32)
                .collect();
            // [n, c, h, w]
            let input = Tensor::<4>::from_data(TensorData::new(x_t, [n, c, h, w]), device);
            let eps_hat = read_f32(model.model.epsilon_with_context(input, &[log_snr], context.clone()))?;
            *sum += eps_hat.iter().zip(&noise).map(|(a, b)| f64::from(a - b).powi(2)).sum::<f64>();
            done += 1;
            progress(done, total);
        }
    }
    let values_seen = (count * size).max(1) as f64;
    Ok(sums.into_iter().enumerate().map(|(bin, sum)| (bin_centre(bin), sum / values_seen)).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_timestep_is_in_one_stratum_and_the_first_ones_alone() {
        assert_eq!(evaluated_steps(10, 1, 3), (1..=10).map(|t| (t, 1)).collect::<Vec<_>>());
        for seed in 0..20 {
            let steps = evaluated_steps(1000, 10, seed);
            assert_eq!(steps[0], (1, 1));
            // The strata tile 2..=1000: each drawn t lies in its own, and their widths add up to T - 1.
            let mut start = 2;
            for &(t, width) in &steps[1..] {
                assert!(t >= start && t < start + width, "seed {seed}: {t} outside {start}..{}", start + width);
                start += width;
            }
            assert_eq!(start, 1001);
            assert!(steps[1..19].iter().enumerate().all(|(k, s)| *s == (k + 2, 1)), "{steps:?}");
            assert!(steps[steps.len() - 10..].iter().all(|(_, w)| *w == 1), "{steps:?}");
            assert_eq!(steps.last(), Some(&(1000, 1)));
            assert!(steps.iter().all(|(_, w)| *w <= 10));
            assert!(steps.len() < 170, "{} evaluations", steps.len());
        }
        assert_eq!(evaluated_steps(1, 10, 0), vec![(1, 1)]);
    }
}
