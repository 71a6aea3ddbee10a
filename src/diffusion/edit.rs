//! Editing real images with the diffusion process: where image-to-image starts (SDEdit, Meng et al.
//! 2022), how inpainting keeps the known region and resamples (RePaint, Lugmayr et al. 2022), and the
//! spherical interpolation between two noises.

use burn::prelude::*;

use super::sampler::NoiseLevel;

/// Image-to-image's start: x_s = sqrt(ᾱ_s) x_0 + sqrt(1 - ᾱ_s) ε at the level `level` the truncated
/// plan starts from (SDEdit). At the clean level it is x_0 itself.
pub fn noised_to<const D: usize>(x0: Tensor<D>, level: &NoiseLevel, eps: Tensor<D>) -> Tensor<D> {
    x0.mul_scalar(level.alpha()).add(eps.mul_scalar(level.sigma()))
}

/// RePaint's resampling jump back up: a draw from q(x_s | x_{s'}) for s' below s,
/// x_s = sqrt(ᾱ_s / ᾱ_{s'}) x_{s'} + sqrt(1 - ᾱ_s / ᾱ_{s'}) z (the forward process from s' to s).
pub fn renoise<const D: usize>(x: Tensor<D>, from: &NoiseLevel, to: &NoiseLevel, z: Tensor<D>) -> Tensor<D> {
    let ratio = to.alpha_bar / from.alpha_bar;
    // 1 - ᾱ_s / ᾱ_{s'} through logarithms, exact when the two are close.
    let one_minus = -(to.alpha_bar.ln() - from.alpha_bar.ln()).exp_m1();
    x.mul_scalar(ratio.sqrt()).add(z.mul_scalar(one_minus.max(0.0).sqrt()))
}

/// Inpainting's merge (RePaint): the known region from the original noised to the same level, the
/// rest from the model: `keep` ⊙ known + (1 - `keep`) ⊙ x, `keep` 1 where the original stays.
pub fn merge_known<const D: usize>(x: Tensor<D>, known: Tensor<D>, keep: Tensor<D>) -> Tensor<D> {
    let repaint = keep.clone().neg().add_scalar(1.0);
    known.mul(keep).add(x.mul(repaint))
}

/// Spherical interpolation between two noises (Shoemake 1985; as used for diffusion latents since
/// DDIM): slerp(a, b; u) = sin((1 - u) θ) / sin θ · a + sin(u θ) / sin θ · b, θ the angle between a and b.
/// Unlike a straight line it keeps the norm a Gaussian sample has, so every point is a plausible x_T.
/// Nearly parallel vectors fall back to the straight line.
pub fn slerp(a: &[f32], b: &[f32], u: f64) -> Vec<f32> {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let norm = |v: &[f32]| v.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let cos = (dot / (norm(a) * norm(b)).max(f64::MIN_POSITIVE)).clamp(-1.0, 1.0);
    let theta = cos.acos();
    let (wa, wb) = if theta.sin().abs() < 1e-6 {
        (1.0 - u, u)
    } else {
        (((1.0 - u) * theta).sin() / theta.sin(), (u * theta).sin() / theta.sin())
    };
    a.iter().zip(b).map(|(x, y)| (wa * *x as f64 + wb * *y as f64) as f32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::schedule::BetaSchedule;

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn slerp_ends_at_its_inputs_and_keeps_the_norm_between() {
        let a = [1.0, 0.0, 0.0];
        let b = [0.0, 1.0, 0.0];
        assert_eq!(slerp(&a, &b, 0.0), a.to_vec());
        let end = slerp(&a, &b, 1.0);
        assert!((end[0]).abs() < 1e-7 && (end[1] - 1.0).abs() < 1e-7);
        let mid = slerp(&a, &b, 0.5);
        let norm = mid.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-6, "{mid:?}");
        assert!((mid[0] - mid[1]).abs() < 1e-7);
        // Parallel: the straight line.
        assert_eq!(slerp(&a, &a, 0.3), a.to_vec());
    }

    /// Renoising from s' to s after q(x_{s'} | x_0) gives q(x_s | x_0): the same mean and variance.
    #[test]
    fn renoise_composes_with_the_forward_process() {
        let device = Device::flex();
        let schedule = BetaSchedule::cosine(1000).build().unwrap();
        let (low, high) = (NoiseLevel::at(&schedule, 200), NoiseLevel::at(&schedule, 600));
        let mut noise = crate::diffusion::NoiseSource::new(4);
        let n = 50_000;
        let x0 = Tensor::<1>::full([n], 0.7, &device);
        let x_low = noised_to(x0, &low, noise.tensor([n], &device));
        let x_high = values(renoise(x_low, &low, &high, noise.tensor([n], &device)));
        let mean = x_high.iter().map(|x| *x as f64).sum::<f64>() / n as f64;
        let var = x_high.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / n as f64;
        assert!((mean - 0.7 * high.alpha()).abs() < 0.01, "{mean}");
        assert!((var / high.one_minus_alpha_bar - 1.0).abs() < 0.03, "{var}");
    }

    #[test]
    fn merge_keeps_the_known_region_exactly() {
        let device = Device::flex();
        let x = Tensor::<1>::from_floats([1.0, 2.0, 3.0], &device);
        let known = Tensor::<1>::from_floats([-1.0, -2.0, -3.0], &device);
        let keep = Tensor::<1>::from_floats([1.0, 0.0, 1.0], &device);
        assert_eq!(values(merge_known(x, known, keep)), vec![-1.0, 2.0, -3.0]);
        let clean = NoiseLevel::CLEAN;
        let x0 = Tensor::<1>::from_floats([0.25, -0.5], &device);
        assert_eq!(values(noised_to(x0.clone(), &clean, Tensor::<1>::ones([2], &device))), values(x0));
    }
}
