//! GroupNorm (+ SiLU) of training (autodiff on the flex CPU backend) as one operation with its own
//! backward pass. burn records GroupNorm as about eight operations and SiLU as two, each with its own
//! backward and a full-size intermediate; here the forward is inference's fused pass and the backward one
//! pass per (image, group) that recomputes the statistics.
//!
//! Per group of N values: x̂ = (x - μ) / σ, y = γ_c x̂ + β_c, z = SiLU(y) = y s with s = sigmoid(y).
//! Backward from ∂L/∂z: ∂L/∂y = ∂L/∂z (s + y s (1 - s)); ∂L/∂β_c = Σ ∂L/∂y; ∂L/∂γ_c = Σ ∂L/∂y x̂;
//! with g = γ_c ∂L/∂y: ∂L/∂x = (g - mean(g) - x̂ mean(g x̂)) / σ.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Flex, TensorMetadata};
use burn::nn::GroupNorm;
use burn::prelude::*;
use burn_flex::FlexTensor;
use rayon::prelude::*;

use super::train_conv::f32_values;

/// One GroupNorm's shape and settings.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    batch: usize,
    channels: usize,
    plane: usize,
    groups: usize,
    epsilon: f32,
    silu: bool,
}

impl Geometry {
    fn per_group(&self) -> usize {
        self.channels / self.groups
    }
}

/// `silu(norm.forward(x))` (or `norm.forward(x)` without `silu`) for an autodiff flex tensor, with this
/// file's backward pass; `Err(x)` hands the input back for burn's operations.
// The Err side hands the input back (it is no error), so its size is the tensor's.
#[allow(clippy::result_large_err)]
pub fn group_norm_autodiff(norm: &GroupNorm, x: Tensor<4>, silu: bool) -> Result<Tensor<4>, Tensor<4>> {
    let device = x.device();
    let [batch, channels, h, w] = x.dims();
    let groups = norm.num_groups;
    let (Some(gamma), Some(beta)) = (&norm.gamma, &norm.beta) else { return Err(x) };
    if !super::kernels_enabled()
        || !device.is_autodiff()
        || x.dtype() != burn::tensor::DType::F32
        || !norm.affine
        || groups == 0
        || channels % groups != 0
        || channels != norm.num_channels
    {
        return Err(x);
    }
    let g = Geometry { batch, channels, plane: h * w, groups, epsilon: norm.epsilon as f32, silu };
    let (gamma, beta) = (gamma.val(), beta.val());
    let y = on_autodiff_flex!(|B, C| {
        let x = x.clone().try_into_primitive::<B>().ok()?;
        let gamma = gamma.clone().try_into_primitive::<B>().ok()?;
        let beta = beta.clone().try_into_primitive::<B>().ok()?;
        Some(Tensor::from_primitive::<B>(record::<C>(x, gamma, beta, g, [batch, channels, h, w])))
    });
    y.ok_or(x)
}

fn record<C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<Flex, C>>,
    gamma: FloatTensor<Autodiff<Flex, C>>,
    beta: FloatTensor<Autodiff<Flex, C>>,
    g: Geometry,
    shape: [usize; 4],
) -> FloatTensor<Autodiff<Flex, C>> {
    let forward = |x: &FlexTensor, gamma: &FlexTensor, beta: &FlexTensor| -> FlexTensor {
        let (gamma, beta, input) = (f32_values(gamma), f32_values(beta), f32_values(x));
        let per_group = g.per_group();
        let values = super::filled_in_parallel(input.len(), per_group * g.plane, |chunk, group| {
            group.copy_from_slice(&input[chunk * per_group * g.plane..][..group.len()]);
            let first = (chunk % g.groups) * per_group;
            let (gamma, beta) = (&gamma[first..first + per_group], &beta[first..first + per_group]);
            super::norm::normalize_group(group, g.plane, gamma, beta, g.epsilon, g.silu);
        });
        FlexTensor::from_data(TensorData::new(values, shape))
    };
    let op = NormBackward { geometry: g };
    match op.prepare::<C>([x.node(), gamma.node(), beta.node()]).compute_bound().stateful() {
        OpsKind::Tracked(mut prep) => {
            let state = (prep.checkpoint(&x), prep.checkpoint(&gamma), prep.checkpoint(&beta));
            let y = forward(x.primitive(), gamma.primitive(), beta.primitive());
            prep.finish(state, y)
        }
        OpsKind::UnTracked(prep) => prep.finish(forward(x.primitive(), gamma.primitive(), beta.primitive())),
    }
}

#[derive(Debug)]
struct NormBackward {
    geometry: Geometry,
}

impl Backward<Flex, 3> for NormBackward {
    type State = (NodeId, NodeId, NodeId);

    fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, checkpointer: &mut Checkpointer) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = grads.consume::<Flex>(&ops.node);
        let (x_state, gamma_state, beta_state) = ops.state;
        let x = checkpointer.retrieve_node_output::<FlexTensor>(x_state);
        let gamma = checkpointer.retrieve_node_output::<FlexTensor>(gamma_state);
        let beta = checkpointer.retrieve_node_output::<FlexTensor>(beta_state);
        let shape = x.shape();
        let g = self.geometry;
        let (dx, dgamma, dbeta) =
            gradients(&f32_values(&x), &f32_values(&gamma), &f32_values(&beta), &f32_values(&grad), g);
        let tensor = |values: Vec<f32>, shape: Shape| FlexTensor::from_data(TensorData::new(values, shape));
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, tensor(dx, shape));
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, tensor(dgamma, Shape::new([g.channels])));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, tensor(dbeta, Shape::new([g.channels])));
        }
    }
}

/// (∂L/∂x, ∂L/∂γ, ∂L/∂β). Each (image, group) is one task; the per-channel sums over images are added
/// in image order, so the result does not depend on how the tasks ran.
fn gradients(x: &[f32], gamma: &[f32], beta: &[f32], dz: &[f32], g: Geometry) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let per_group = g.per_group();
    let chunk_len = per_group * g.plane;
    let mut dx = vec![0.0f32; x.len()];
    // Per task: (∂L/∂γ, ∂L/∂β) of its channels.
    let partials: Vec<(Vec<f32>, Vec<f32>)> = dx
        .par_chunks_mut(chunk_len)
        .enumerate()
        .map(|(chunk, dx_group)| {
            let first = (chunk % g.groups) * per_group;
            let range = chunk * chunk_len..(chunk + 1) * chunk_len;
            let (x_group, dz_group) = (&x[range.clone()], &dz[range]);
            let (gamma, beta) = (&gamma[first..first + per_group], &beta[first..first + per_group]);
            group_gradient(x_group, dz_group, dx_group, gamma, beta, g)
        })
        .collect();
    let (mut dgamma, mut dbeta) = (vec![0.0f32; g.channels], vec![0.0f32; g.channels]);
    for (chunk, (dg, db)) in partials.into_iter().enumerate() {
        let first = (chunk % g.groups) * per_group;
        for c in 0..per_group {
            dgamma[first + c] += dg[c];
            dbeta[first + c] += db[c];
        }
    }
    debug_assert_eq!(dx.len(), g.batch * g.channels * g.plane);
    (dx, dgamma, dbeta)
}

/// Lanes of the per-channel sums: the sums run in eight independent accumulators so that the loop
/// vectorises (in a fixed order: the result does not depend on the machine's threads).
const LANES: usize = 8;

with_avx2! {
    /// One group's ∂L/∂x into `dx`, and its channels' (∂L/∂γ, ∂L/∂β).
    fn group_gradient(
        x: &[f32],
        dz: &[f32],
        dx: &mut [f32],
        gamma: &[f32],
        beta: &[f32],
        g: Geometry,
    ) -> (Vec<f32>, Vec<f32>) {
        let n = x.len() as f32;
        // The statistics exactly as the forward pass computed them.
        let (mean, inv_std) = super::norm::statistics(x, g.epsilon);
        let per_group = gamma.len();
        let (mut dgamma, mut dbeta) = (vec![0.0f32; per_group], vec![0.0f32; per_group]);
        // First pass, per channel: ∂L/∂y, the parameter gradients, and g = γ ∂L/∂y (kept in dx).
        for c in 0..per_group {
            let span = c * g.plane..(c + 1) * g.plane;
            let (gamma_c, beta_c) = (gamma[c], beta[c]);
            let (mut dg, mut db) = ([0.0f32; LANES], [0.0f32; LANES]);
            let one = |xv: f32, dzv: f32| -> (f32, f32) {
                let x_hat = (xv - mean) * inv_std;
                let dy = if g.silu {
                    let y = gamma_c * x_hat + beta_c;
                    let s = 1.0 / (1.0 + super::exp(-y));
                    dzv * (s + y * s * (1.0 - s))
                } else {
                    dzv
                };
                (dy, x_hat)
            };
            let (x_c, dz_c, dx_c) = (&x[span.clone()], &dz[span.clone()], &mut dx[span]);
            let whole = g.plane / LANES * LANES;
            for ((xs, dzs), outs) in x_c[..whole]
                .chunks_exact(LANES)
                .zip(dz_c[..whole].chunks_exact(LANES))
                .zip(dx_c[..whole].chunks_exact_mut(LANES))
            {
                for l in 0..LANES {
                    let (dy, x_hat) = one(xs[l], dzs[l]);
                    dg[l] += dy * x_hat;
                    db[l] += dy;
                    outs[l] = gamma_c * dy;
                }
            }
            for ((xv, dzv), out) in x_c[whole..].iter().zip(&dz_c[whole..]).zip(&mut dx_c[whole..]) {
                let (dy, x_hat) = one(*xv, *dzv);
                dg[0] += dy * x_hat;
                db[0] += dy;
                *out = gamma_c * dy;
            }
            dgamma[c] = dg.iter().sum();
            dbeta[c] = db.iter().sum();
        }
        // Σ g = Σ_c γ_c Σ ∂L/∂y and Σ g x̂ = Σ_c γ_c Σ ∂L/∂y x̂: the channel sums already hold them.
        let sum_g: f32 = gamma.iter().zip(&dbeta).map(|(a, b)| a * b).sum();
        let sum_g_xhat: f32 = gamma.iter().zip(&dgamma).map(|(a, b)| a * b).sum();
        // Second pass: ∂L/∂x = (g - mean(g) - x̂ mean(g x̂)) / σ.
        let (mean_g, mean_g_xhat) = (sum_g / n, sum_g_xhat / n);
        for (out, xv) in dx.iter_mut().zip(x) {
            let x_hat = (xv - mean) * inv_std;
            *out = (*out - mean_g - x_hat * mean_g_xhat) * inv_std;
        }
        (dgamma, dbeta)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::GroupNormConfig;
    use burn::tensor::activation::silu;

    use super::super::{relative_difference as worst, tensor_values as values};

    /// Values and the three gradients equal burn's GroupNorm (and SiLU) for the models' shapes.
    #[test]
    fn values_and_gradients_match_burns_group_norm() {
        let device = Device::flex().autodiff();
        let mut noise = crate::diffusion::NoiseSource::new(4);
        for (channels, groups, size, batch, with_silu) in
            [(8, 4, 5, 3, true), (8, 4, 5, 3, false), (6, 1, 7, 2, true), (32, 8, 4, 1, true), (4, 4, 3, 5, true)]
        {
            let mut norm = GroupNormConfig::new(groups, channels).init(&device);
            // Parameters away from 1 and 0, so that their gradients are tested as such.
            norm.gamma = norm.gamma.map(|p| p.map(|t| t.add_scalar(0.5).mul_scalar(0.7).detach().require_grad()));
            norm.beta = norm.beta.map(|p| p.map(|t| t.add_scalar(0.3).detach().require_grad()));
            let x = noise
                .tensor::<4>([batch, channels, size, size], &device)
                .mul_scalar(2.0)
                .add_scalar(0.5)
                .require_grad();
            let weights = noise.tensor::<4>([batch, channels, size, size], &device);
            let what =
                format!("{channels} channels in {groups} groups, {size}x{size}, batch {batch}, SiLU {with_silu}");
            let reference = if with_silu { silu(norm.forward(x.clone())) } else { norm.forward(x.clone()) };
            let ours = group_norm_autodiff(&norm, x.clone(), with_silu).unwrap_or_else(|_| panic!("{what}: taken"));
            assert!(worst(&values(ours.clone()), &values(reference.clone())) < 1e-5, "{what}: values");
            let grads_ref = reference.mul(weights.clone()).sum().backward();
            let grads_ours = ours.mul(weights).sum().backward();
            let gamma = norm.gamma.as_ref().unwrap().val();
            let beta = norm.beta.as_ref().unwrap().val();
            for (name, reference, ours) in [
                ("x", x.grad(&grads_ref).map(values), x.grad(&grads_ours).map(values)),
                ("γ", gamma.grad(&grads_ref).map(values), gamma.grad(&grads_ours).map(values)),
                ("β", beta.grad(&grads_ref).map(values), beta.grad(&grads_ours).map(values)),
            ] {
                let (reference, ours) = (reference.unwrap(), ours.unwrap());
                assert!(worst(&ours, &reference) < 1e-4, "{what}: ∂L/∂{name} off by {}", worst(&ours, &reference));
            }
        }
    }
}
