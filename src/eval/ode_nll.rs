//! `eval --nll --ode`: the log-likelihood of real data under a UNet's probability-flow ODE (the math:
//! `diffusion::flow_likelihood`), beside its variational bound (`nll.rs`).
//!
//! The divergence of dy/ds = ε̂(α y, λ) is Hutchinson's estimate vᵀ(∂f/∂y)v with one Rademacher v per image,
//! fixed through the whole integration as Song et al. do (their appendix D.2): the ODE stays a smooth ODE, and
//! the estimate of each image's log-likelihood is unbiased. vᵀ(∂ε̂/∂x) is one vector–Jacobian product: the
//! network runs on the autodiff device (the training convolution and GroupNorm kernels have their own backward
//! passes), its parameters untracked so that only the input's gradient is computed.

use burn::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::nll::{DataKind, context_of};
use crate::diffusion::flow_likelihood::{self, AdaptiveFlowError, FlowEnds, FlowField};
use crate::diffusion::{NoiseSchedule, ode};
use crate::model::{LoadedUnet, ReadbackError, UNet, read_f32};

/// How the ODE is solved.
#[derive(Clone, Copy, Debug)]
pub enum FlowSolver {
    /// Heun's method on this many steps uniform in λ (two network evaluations each).
    Heun { steps: usize },
    /// Dormand–Prince 5(4) with error control: the reference the step count is chosen by.
    Adaptive(ode::Tolerance),
}

#[derive(Clone, Copy, Debug)]
pub struct OdeNllOptions {
    /// Seeds each image's dequantisation u and probe v (from the image's index: the same per image at any
    /// batch size).
    pub seed: u64,
    /// ε̂ given each image's label; otherwise the null class (a text model: the empty prompt).
    pub conditional: bool,
    pub kind: DataKind,
    /// Images per network evaluation.
    pub batch: usize,
    pub solver: FlowSolver,
}

/// One image's likelihood under the ODE.
#[derive(Clone, Copy, Debug)]
pub struct ImageLikelihood {
    /// Bits per dimension: of the 8-bit image (dequantised, `bits_per_dim_8bit`) or of the latent.
    pub bits: f64,
    /// Network evaluations (each a forward pass and a vector–Jacobian product) its batch took.
    pub evaluations: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum OdeNllError {
    #[error(transparent)]
    Readback(#[from] ReadbackError),
    #[error(transparent)]
    Adaptive(#[from] AdaptiveFlowError<ReadbackError>),
}

/// f(x) and the vector–Jacobian product vᵀ ∂f/∂x of a batch, x and v [n, c, h, w] on an autodiff device: one
/// forward and one backward pass.
pub fn value_and_vjp(
    f: impl FnOnce(Tensor<4>) -> Tensor<4>,
    x: Tensor<4>,
    probe: Tensor<4>,
) -> Result<(Vec<f32>, Vec<f32>), ReadbackError> {
    let x = x.require_grad();
    let value = f(x.clone());
    let grads = value.clone().mul(probe).sum().backward();
    let vjp = x.grad(&grads).ok_or_else(|| ReadbackError("no gradient reached the input".into()))?;
    Ok((read_f32(value.detach())?, read_f32(vjp)?))
}

/// A batch's probability-flow field through the UNet, with each image's fixed Rademacher probe.
pub struct UnetField<'a> {
    pub model: &'a UNet,
    pub context: Tensor<3>,
    /// [n, c, h, w] of ±1.
    pub probes: Vec<f32>,
    pub shape: [usize; 4],
}

impl FlowField for UnetField<'_> {
    type Error = ReadbackError;

    /// dy/ds = ε̂(α y, λ(s)) and div_y f = α vᵀ(∂ε̂/∂x)v.
    fn evaluate(&mut self, s: f64, y: &[f64], dy: &mut [f64], divergence: &mut [f64]) -> Result<(), ReadbackError> {
        let alpha = ode::alpha_from_sigma_over_alpha(s);
        let device = self.context.device();
        let x: Vec<f32> = y.iter().map(|y| (alpha * y) as f32).collect();
        let x = Tensor::<4>::from_data(TensorData::new(x, self.shape), &device);
        let probe = Tensor::<4>::from_data(TensorData::new(self.probes.clone(), self.shape), &device);
        let log_snr = ode::log_snr_from_sigma_over_alpha(s);
        let context = self.context.clone();
        let (eps, vjp) = value_and_vjp(|x| self.model.epsilon_with_context(x, &[log_snr], context), x, probe)?;
        for (d, e) in dy.iter_mut().zip(&eps) {
            *d = f64::from(*e);
        }
        let size = self.shape[1..].iter().product::<usize>().max(1);
        for ((div, v), g) in divergence.iter_mut().zip(self.probes.chunks_exact(size)).zip(vjp.chunks_exact(size)) {
            let v: Vec<f64> = v.iter().map(|v| f64::from(*v)).collect();
            let g: Vec<f64> = g.iter().map(|g| f64::from(*g)).collect();
            *div = alpha * flow_likelihood::hutchinson_trace(&v, &g);
        }
        Ok(())
    }
}

/// Image `index`'s starting point x (dequantised for 8-bit data: u ~ U[0, 1) per value) and its probe v
/// (Rademacher), both from `seed` and the index alone.
pub fn image_draws(seed: u64, index: usize, image: &[f32], kind: DataKind) -> (Vec<f64>, Vec<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ (index as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    let x = image
        .iter()
        .map(|x| match kind {
            DataKind::Pixels8Bit => flow_likelihood::dequantize(*x, rng.random::<f64>()),
            DataKind::Continuous => f64::from(*x),
        })
        .collect();
    let probe = (0..image.len()).map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 }).collect();
    (x, probe)
}

/// Each image's likelihood under the ODE of `model` (ε̂ read through its objective), `values` [count, c, h,
/// w] flattened, from the schedule's first level to its last; `progress(done, total)` after each batch.
#[allow(clippy::too_many_arguments)]
pub fn ode_likelihood(
    model: &LoadedUnet,
    schedule: &NoiseSchedule,
    values: &[f32],
    labels: &[Option<usize>],
    [c, h, w]: [usize; 3],
    options: &OdeNllOptions,
    device: &Device,
    mut progress: impl FnMut(usize, usize),
) -> Result<Vec<ImageLikelihood>, OdeNllError> {
    let size = c * h * w;
    let count = values.len() / size.max(1);
    let autodiff = device.clone().autodiff();
    // Parameters untracked: the backward pass computes the input's gradient only.
    let unet = model.model.clone().to_device(&autodiff).no_grad();
    let on_autodiff =
        LoadedUnet { model: unet, config: model.config.clone(), header: model.header.clone(), guide: None };
    let ends = FlowEnds::of_schedule(schedule);
    let alpha_0 = ode::alpha_from_sigma_over_alpha(ends.s().0);
    let batch = options.batch.max(1);
    let mut results = Vec::with_capacity(count);
    for first in (0..count).step_by(batch) {
        let n = batch.min(count - first);
        let (mut y0, mut probes) = (Vec::with_capacity(n * size), Vec::with_capacity(n * size));
        for (k, image) in values[first * size..(first + n) * size].chunks_exact(size).enumerate() {
            let (x, probe) = image_draws(options.seed, first + k, image, options.kind);
            y0.extend(x.iter().map(|x| x / alpha_0));
            probes.extend(probe);
        }
        let labels = &labels[first.min(labels.len())..];
        let context = context_of(&on_autodiff, labels, n, options.conditional, &autodiff);
        let mut field = UnetField { model: &on_autodiff.model, context, probes, shape: [n, c, h, w] };
        let end = match options.solver {
            FlowSolver::Heun { steps } => flow_likelihood::integrate_heun(&mut field, ends, steps, &y0, n)?,
            FlowSolver::Adaptive(tolerance) => {
                flow_likelihood::integrate_adaptive(&mut field, ends, &y0, n, tolerance)?.0
            }
        };
        for k in 0..n {
            let log_density =
                flow_likelihood::log_density(ends, &end.y_top[k * size..(k + 1) * size], end.divergence_integral[k]);
            let bits = match options.kind {
                DataKind::Pixels8Bit => flow_likelihood::bits_per_dim_8bit(log_density, size),
                DataKind::Continuous => flow_likelihood::bits_per_dim(log_density, size),
            };
            results.push(ImageLikelihood { bits, evaluations: end.evaluations });
        }
        progress(first + n, count);
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::BetaSchedule;
    use crate::diffusion::flow_likelihood::mean_and_standard_error;
    use crate::model::UNetConfig;

    fn tiny(device: &Device) -> UNet {
        crate::model::init_from_seed(device, 5, || UNetConfig::tiny().with_image_size(6).init(device).no_grad())
    }

    /// The vector–Jacobian product through burn's autodiff (and the training kernels' backward passes) gives
    /// the exact trace of the real network's Jacobian from basis vectors, and Hutchinson's estimate with
    /// Rademacher probes averages to it: unbiased on the network the ODE uses.
    #[test]
    fn hutchinson_through_the_unet_averages_to_its_exact_trace() {
        let device = Device::flex().autodiff();
        let model = tiny(&device);
        let size = 36;
        let image: Vec<f32> = (0..size).map(|i| ((i * 7 % 11) as f32 / 5.0) - 1.0).collect();
        let log_snr = 0.5;
        // [n, 1, 6, 6]: n copies of the image, each with its own probe (the images do not interact).
        let jtv = |probes: Vec<f32>| {
            let n = probes.len() / size;
            let x = Tensor::<4>::from_data(TensorData::new(image.repeat(n), [n, 1, 6, 6]), &device);
            let v = Tensor::<4>::from_data(TensorData::new(probes, [n, 1, 6, 6]), &device);
            let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![model.null_class() as i64; n], [n]), &device);
            let context = model.context(labels);
            value_and_vjp(|x| model.epsilon_with_context(x, &[log_snr], context), x, v).unwrap().1
        };
        let basis: Vec<f32> = (0..size * size).map(|k| if k / size == k % size { 1.0 } else { 0.0 }).collect();
        let rows = jtv(basis);
        let exact: f64 = (0..size).map(|i| f64::from(rows[i * size + i])).sum();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 400;
        let probes: Vec<f32> = (0..n * size).map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 }).collect();
        let products = jtv(probes.clone());
        let estimates: Vec<f64> = probes
            .chunks_exact(size)
            .zip(products.chunks_exact(size))
            .map(|(v, g)| v.iter().zip(g).map(|(a, b)| f64::from(a * b)).sum())
            .collect();
        let (mean, se) = mean_and_standard_error(&estimates);
        assert!(se > 0.0, "the estimate varies with the probe");
        assert!((mean - exact).abs() < 4.0 * se, "Hutchinson {mean} ± {se} against the exact trace {exact}");
    }

    /// The whole path on a tiny UNet: an image's number does not depend on the batch it is in (its draws
    /// come from its index), and Heun's result closes in on the adaptive solver's as its steps double.
    #[test]
    fn the_ode_likelihood_of_a_tiny_unet_converges_to_the_adaptive_solution() {
        let device = Device::flex();
        let header = crate::model::checkpoint::CheckpointHeader {
            kind: crate::model::checkpoint::ModelKind::Unet,
            config: serde_json::Value::Null,
            training_schedule: None,
            log_snr_range: None,
            step: 0,
            extra: serde_json::Value::Null,
            sections: Vec::new(),
        };
        let config = UNetConfig::tiny().with_image_size(6);
        let model = crate::model::init_from_seed(&device, 5, || config.init(&device));
        let model = LoadedUnet { model, config, header, guide: None };
        let schedule = BetaSchedule::cosine(1000).build().unwrap();
        let values: Vec<f32> = (0..72).map(|i| crate::data::unit_from_u8((i * 37 % 256) as u8)).collect();
        let labels = [None, None];
        let bits = |solver: FlowSolver, batch: usize| {
            let options = OdeNllOptions { seed: 1, conditional: false, kind: DataKind::Pixels8Bit, batch, solver };
            let result = ode_likelihood(&model, &schedule, &values, &labels, [1, 6, 6], &options, &device, |_, _| {});
            result.unwrap().iter().map(|r| r.bits).collect::<Vec<_>>()
        };
        let tolerance = ode::Tolerance { relative: 1e-6, absolute: 1e-6 };
        let reference = bits(FlowSolver::Adaptive(tolerance), 2);
        let alone = bits(FlowSolver::Heun { steps: 20 }, 1);
        let errors: Vec<Vec<f64>> = [20, 40, 80]
            .iter()
            .map(|&steps| {
                let got = bits(FlowSolver::Heun { steps }, 2);
                if steps == 20 {
                    assert!((got[0] - alone[0]).abs() < 1e-4, "batched {} against alone {}", got[0], alone[0]);
                }
                got.iter().zip(&reference).map(|(a, b)| (a - b).abs()).collect()
            })
            .collect();
        for k in 0..2 {
            assert!(reference[k].is_finite(), "{reference:?}");
            let e: Vec<f64> = errors.iter().map(|e| e[k]).collect();
            assert!(e[2] < e[1] && e[1] < e[0] && e[2] < 0.05, "image {k}: Heun's errors at 20, 40, 80 steps {e:?}");
        }
    }
}
