//! GroupNorm followed by SiLU in one pass. burn composes GroupNorm from about eight tensor operations
//! (mean, subtract, square, mean, add, sqrt, divide, scale, shift) and SiLU from two (sigmoid, multiply),
//! each a full pass that allocates its output and runs on one core with a scalar `expf`. Here the
//! statistics take one read, and normalise + affine + SiLU one read and one write, split over the cores by
//! (image, group), with an exponential that vectorises. The result matches burn's to float rounding (see
//! the tests).

use burn::nn::GroupNorm;
use burn::prelude::*;
use burn::tensor::activation::silu;

/// GN(x) then SiLU: `silu(norm.forward(x))`. x: [batch, channels, h, w].
pub fn group_norm_silu(norm: &GroupNorm, x: Tensor<4>) -> Tensor<4> {
    let x = match fused(norm, x, true) {
        Ok(y) => return y,
        Err(x) => x,
    };
    // Training takes [`super::train_norm`], with its own backward pass.
    match super::train_norm::group_norm_autodiff(norm, x, true) {
        Ok(y) => y,
        Err(x) => silu(norm.forward(x)),
    }
}

/// GN(x) alone: `norm.forward(x)`, fused where [`group_norm_silu`] is.
pub fn group_norm(norm: &GroupNorm, x: Tensor<4>) -> Tensor<4> {
    let x = match fused(norm, x, false) {
        Ok(y) => return y,
        Err(x) => x,
    };
    // Training takes [`super::train_norm`], with its own backward pass.
    match super::train_norm::group_norm_autodiff(norm, x, false) {
        Ok(y) => y,
        Err(x) => norm.forward(x),
    }
}

/// The fused path, or `x` back where it does not apply (autodiff, a non-CPU device, an unexpected shape
/// or dtype): the caller then uses burn's operations.
// The Err side hands the input back for burn's own operation (it is no error), so its size is the tensor's.
#[allow(clippy::result_large_err)]
fn fused(norm: &GroupNorm, x: Tensor<4>, with_silu: bool) -> Result<Tensor<4>, Tensor<4>> {
    let device = x.device();
    let [batch, channels, height, width] = x.dims();
    let groups = norm.num_groups;
    if !super::is_plain_cpu(&device) || groups == 0 || channels % groups != 0 || channels != norm.num_channels {
        return Err(x);
    }
    let affine = match (&norm.gamma, &norm.beta) {
        (Some(gamma), Some(beta)) if norm.affine => {
            super::param_values(gamma.val()).zip(super::param_values(beta.val()))
        }
        _ if !norm.affine => Some((vec![1.0; channels], vec![0.0; channels])),
        _ => None,
    };
    let Some((gamma, beta)) = affine else { return Err(x) };
    if x.dtype() != burn::tensor::DType::F32 {
        return Err(x);
    }
    let Some(input) = super::flex_primitive(&x) else { return Err(x) };
    let input = super::train_conv::f32_values(&input);
    let plane = height * width;
    let per_group = channels / groups;
    let epsilon = norm.epsilon as f32;
    // One chunk is one group of one image: contiguous in [batch, channels, h, w].
    let values = super::filled_in_parallel(input.len(), per_group * plane, |chunk, group_values| {
        group_values.copy_from_slice(&input[chunk * per_group * plane..][..group_values.len()]);
        let first_channel = (chunk % groups) * per_group;
        normalize_group(
            group_values,
            plane,
            &gamma[first_channel..first_channel + per_group],
            &beta[first_channel..first_channel + per_group],
            epsilon,
            with_silu,
        );
    });
    debug_assert_eq!(values.len(), batch * channels * plane);
    Ok(Tensor::from_data(TensorData::new(values, [batch, channels, height, width]), &device))
}

/// A group's mean and 1 / sqrt(variance + ε): two passes (as burn's: the mean, then the mean of squared
/// deviations) for accuracy. The training backward pass recomputes them with this same function.
#[inline(always)]
pub(super) fn statistics(values: &[f32], epsilon: f32) -> (f32, f32) {
    let n = values.len() as f32;
    let mean = lane_sum(values, |v| v) / n;
    let variance = lane_sum(values, |v| (v - mean) * (v - mean)) / n;
    (mean, 1.0 / (variance + epsilon).sqrt())
}

with_avx2! {
    /// Normalises one group in place: y = (x - mean) / sqrt(var + eps) * gamma_c + beta_c, then SiLU.
    /// `values` holds `gamma.len()` channel planes of `plane` values each.
    pub(super) fn normalize_group(
        values: &mut [f32],
        plane: usize,
        gamma: &[f32],
        beta: &[f32],
        epsilon: f32,
        with_silu: bool,
    ) {
        let (mean, inv_std) = statistics(values, epsilon);
        for (c, channel) in values.chunks_exact_mut(plane).enumerate() {
            let scale = inv_std * gamma[c];
            let shift = beta[c] - mean * scale;
            if with_silu {
                for v in channel.iter_mut() {
                    let y = *v * scale + shift;
                    *v = y / (1.0 + exp(-y));
                }
            } else {
                for v in channel.iter_mut() {
                    *v = *v * scale + shift;
                }
            }
        }
    }
}

/// Σ f(v) with eight independent accumulators, so that the loop vectorises.
#[inline(always)]
fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut lanes = [0.0f32; 8];
    let mut chunks = values.chunks_exact(8);
    for chunk in &mut chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *lane += f(*v);
        }
    }
    let tail: f32 = chunks.remainder().iter().map(|v| f(*v)).sum();
    lanes.iter().sum::<f32>() + tail
}

/// e^x for f32 without a libm call, so that loops over it vectorise: x = n ln 2 + r, |r| <= ln 2 / 2,
/// e^r by its degree-6 Taylor polynomial (relative error below 2e-7 on that interval), 2^n put into the
/// exponent bits. Inputs beyond ±87 are clamped (e^-87 ≈ 1.6e-38: SiLU and sigmoid round to their limits).
#[inline(always)]
pub fn exp(x: f32) -> f32 {
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // 1.5 * 2^23: adding and subtracting it rounds to the nearest integer without a rounding instruction.
    const ROUND: f32 = 12_582_912.0;
    let x = x.clamp(-87.0, 87.0);
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // t's low mantissa bits hold n (t = 1.5 * 2^23 + n): integer arithmetic on the bits gives 2^n's
    // exponent field without a float-to-int conversion, which Rust's saturating `as` keeps scalar.
    let scale = f32::from_bits(t.to_bits().wrapping_sub(ROUND.to_bits()).wrapping_add(127) << 23);
    p * scale
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::GroupNormConfig;

    #[test]
    fn exp_matches_std_over_the_range_silu_sees() {
        let mut worst = 0.0f32;
        for i in -87_000..=87_000 {
            let x = i as f32 / 1000.0;
            let relative = ((exp(x) - x.exp()) / x.exp()).abs();
            worst = worst.max(relative);
        }
        assert!(worst < 1e-6, "worst relative error {worst}");
        assert_eq!(exp(-1000.0), exp(-87.0));
        assert!(exp(1000.0).is_finite());
    }

    #[test]
    fn fused_group_norm_silu_matches_burn() {
        let device = Device::flex();
        let norm = {
            let mut norm = GroupNormConfig::new(4, 8).init(&device);
            // Non-trivial affine parameters, so that a channel mix-up would show.
            let gamma = Tensor::<1>::from_floats([0.5, 1.0, 1.5, 2.0, -1.0, 0.7, 1.2, 0.1], &device);
            let beta = Tensor::<1>::from_floats([0.1, -0.2, 0.3, 0.0, 0.5, -0.5, 0.2, 1.0], &device);
            norm.gamma = Some(burn::module::Param::from_tensor(gamma));
            norm.beta = Some(burn::module::Param::from_tensor(beta));
            norm
        };
        let mut noise = crate::diffusion::NoiseSource::new(3);
        // Odd spatial size and an offset, as real activations have.
        let x = noise.tensor([3, 8, 7, 5], &device).mul_scalar(3.0).add_scalar(1.5);
        for with_silu in [false, true] {
            let reference = if with_silu { silu(norm.forward(x.clone())) } else { norm.forward(x.clone()) };
            let ours = fused(&norm, x.clone(), with_silu).expect("flex takes the fused path");
            // A NaN or an infinity the kernel writes fails here, whatever burn gives for that value; and
            // `max_difference` counts a NaN facing a number as an infinite difference (`f32::max` alone
            // would drop it and call the two equal).
            let bad = super::super::tensor_values(ours.clone()).iter().filter(|v| !v.is_finite()).count();
            assert_eq!(bad, 0, "silu {with_silu}: {bad} values are not finite");
            let worst = super::super::max_difference(reference, ours);
            assert!(worst < 1e-5, "silu {with_silu}: worst difference {worst}");
        }
    }

    #[test]
    fn autodiff_tensors_keep_burns_operations() {
        let device = Device::flex().autodiff();
        let norm = GroupNormConfig::new(2, 4).init(&device);
        let x = Tensor::<4>::ones([1, 4, 2, 2], &device);
        assert!(fused(&norm, x.clone(), true).is_err());
        assert_eq!(group_norm_silu(&norm, x).dims(), [1, 4, 2, 2]);
    }
}
