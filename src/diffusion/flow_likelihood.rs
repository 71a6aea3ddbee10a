//! The log-likelihood of data under a diffusion model's probability-flow ODE (Song et al. 2021, "Score-based
//! generative modeling through stochastic differential equations", section 4.3 and appendix D.2), in DDIM's
//! variables s = σ/α = e^{-λ/2} and y = x/α:
//!
//!   dy/ds = f(s, y) = ε̂(α(s) y, λ(s)),   α(s) = 1/sqrt(1 + s²).
//!
//! (With the ideal ε̂ = E[ε | x] this carries the noised data at one level to every other: y = x_0 + s ε
//! moves at ε.) The instantaneous change of variables (Chen et al. 2018) gives d log p_s(y_s)/ds = -div_y f,
//! with div_y f = α tr(∂ε̂/∂x). Run from the data's level s_0 to the prior's s_T:
//!
//!   log p(x) = log N(x_T; 0, I) + D ln α_T − D ln α_0 + ∫_{s_0}^{s_T} div_y f ds,   x_T = α_T y_T,
//!
//! the two D ln α terms being the Jacobians of y = x/α at the two ends (the prior is a density of x_T, the
//! data are x at s_0). The data are taken as x at the schedule's first level s_0, as Song et al. start at
//! t = ε: the network was never trained at σ = 0 (the cosine schedule's σ_0 is 0.0064, under one 8-bit
//! level, 2/255).
//!
//! For 8-bit data the density is of the dequantised values, and the bits are per dimension of the 8-bit image
//! ([`bits_per_dim_8bit`]). The divergence comes from the caller's [`FlowField`] (the exact trace in tests,
//! Hutchinson's estimator for a network: [`hutchinson_trace`]).

use super::ode::{self, OdeError, OdeStats, Tolerance};
use super::schedule::NoiseSchedule;

use std::f64::consts::{LN_2, PI};

/// The flow's two ends as log-SNRs: the data's level (the schedule's first, largest λ) and the prior's (its
/// last).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FlowEnds {
    pub data_log_snr: f64,
    pub prior_log_snr: f64,
}

impl FlowEnds {
    /// The ends of a schedule: its first level (t = 1) and its last (t = T).
    pub fn of_schedule(schedule: &NoiseSchedule) -> Self {
        let last = schedule.log_snr.len().saturating_sub(1);
        Self { data_log_snr: schedule.log_snr[0], prior_log_snr: schedule.log_snr[last] }
    }

    /// s at the data's end and at the prior's.
    pub fn s(&self) -> (f64, f64) {
        (ode::sigma_over_alpha_from_log_snr(self.data_log_snr), ode::sigma_over_alpha_from_log_snr(self.prior_log_snr))
    }
}

/// A batch's probability-flow field: at s, with y holding `images` images of D values one after another,
/// writes dy/ds = ε̂(α(s) y, λ(s)) into `dy` and each image's estimate of div_y f = α tr(∂ε̂/∂x) into
/// `divergence`.
pub trait FlowField {
    type Error;
    fn evaluate(&mut self, s: f64, y: &[f64], dy: &mut [f64], divergence: &mut [f64]) -> Result<(), Self::Error>;
}

/// The flow's far end: y_T per image, each image's ∫ div_y f ds, and how many field evaluations it took.
#[derive(Clone, Debug)]
pub struct FlowEnd {
    pub y_top: Vec<f64>,
    pub divergence_integral: Vec<f64>,
    pub evaluations: usize,
}

/// The s of a grid of `steps` intervals uniform in λ from the data's end to the prior's (geometric in s).
pub fn grid(ends: FlowEnds, steps: usize) -> Vec<f64> {
    let steps = steps.max(1);
    (0..=steps)
        .map(|k| {
            let log_snr = ends.data_log_snr + (ends.prior_log_snr - ends.data_log_snr) * k as f64 / steps as f64;
            ode::sigma_over_alpha_from_log_snr(log_snr)
        })
        .collect()
}

/// Heun's method in s (the trapezoidal rule with an Euler predictor, Karras et al. 2022's Algorithm 1
/// without noise) on [`grid`]: two field evaluations a step, second order. The divergence integral takes the
/// same two evaluations by the trapezoidal rule in ln s (∫ div ds = ∫ s div d ln s). Both are exact where
/// the noise dominates (ε̂ ≈ x = α y, so y grows linearly in s and s div_y f → D), which the wide steps of a
/// λ-uniform grid meet at large s; the trapezoid in s of div ≈ D/s would lose D (h − sinh h) a step there.
pub fn integrate_heun<F: FlowField>(
    field: &mut F,
    ends: FlowEnds,
    steps: usize,
    y0: &[f64],
    images: usize,
) -> Result<FlowEnd, F::Error> {
    let s = grid(ends, steps);
    let mut y = y0.to_vec();
    let mut integral = vec![0.0; images];
    let (mut slope, mut divergence) = (vec![0.0; y.len()], vec![0.0; images]);
    let (mut slope_end, mut divergence_end) = (vec![0.0; y.len()], vec![0.0; images]);
    let mut predicted = vec![0.0; y.len()];
    for pair in s.windows(2) {
        let h = pair[1] - pair[0];
        field.evaluate(pair[0], &y, &mut slope, &mut divergence)?;
        for ((p, y), f) in predicted.iter_mut().zip(&y).zip(&slope) {
            *p = y + h * f;
        }
        field.evaluate(pair[1], &predicted, &mut slope_end, &mut divergence_end)?;
        for ((y, a), b) in y.iter_mut().zip(&slope).zip(&slope_end) {
            *y += 0.5 * h * (a + b);
        }
        let h_log = (pair[1] / pair[0]).ln();
        for ((sum, a), b) in integral.iter_mut().zip(&divergence).zip(&divergence_end) {
            *sum += 0.5 * h_log * (pair[0] * a + pair[1] * b);
        }
    }
    Ok(FlowEnd { y_top: y, divergence_integral: integral, evaluations: 2 * (s.len() - 1) })
}

/// What can stop the adaptive integration: the solver, or the field.
#[derive(Debug, thiserror::Error)]
pub enum AdaptiveFlowError<E: std::error::Error + 'static> {
    #[error("the adaptive ODE solver: {0}")]
    Solver(#[from] OdeError),
    #[error(transparent)]
    Field(E),
}

/// The same integration by the adaptive Dormand–Prince solver ([`ode::solve_adaptive`]) in u = ln s
/// (dy/du = s f, d∫/du = s div): the reference [`integrate_heun`]'s step count is checked against.
pub fn integrate_adaptive<F: FlowField>(
    field: &mut F,
    ends: FlowEnds,
    y0: &[f64],
    images: usize,
    tolerance: Tolerance,
) -> Result<(FlowEnd, OdeStats), AdaptiveFlowError<F::Error>>
where
    F::Error: std::error::Error + 'static,
{
    let values = y0.len();
    let (s0, s_top) = ends.s();
    let mut state = y0.to_vec();
    state.resize(values + images, 0.0);
    let mut failure = None;
    let mut divergence = vec![0.0; images];
    let mut rhs = |u: f64, z: &[f64], dz: &mut [f64]| {
        let s = u.exp();
        if failure.is_some() {
            dz.fill(0.0);
            return;
        }
        let (dy, dint) = dz.split_at_mut(values);
        match field.evaluate(s, &z[..values], dy, &mut divergence) {
            Ok(()) => {
                dy.iter_mut().for_each(|v| *v *= s);
                dint.iter_mut().zip(&divergence).for_each(|(d, v)| *d = s * v);
            }
            Err(error) => {
                failure = Some(error);
                dz.fill(0.0);
            }
        }
    };
    let result = ode::solve_adaptive(&mut rhs, s0.ln(), s_top.ln(), &state, tolerance);
    if let Some(error) = failure {
        return Err(AdaptiveFlowError::Field(error));
    }
    let (end, stats) = result?;
    let flow = FlowEnd {
        y_top: end[..values].to_vec(),
        divergence_integral: end[values..].to_vec(),
        evaluations: stats.evaluations,
    };
    Ok((flow, stats))
}

/// log p(x) in nats of one image from where its flow ended:
/// log N(α_T y_T; 0, I) + D ln(α_T / α_0) + ∫_{s_0}^{s_T} div_y f ds.
pub fn log_density(ends: FlowEnds, y_top: &[f64], divergence_integral: f64) -> f64 {
    let (s0, s_top) = ends.s();
    let (alpha_0, alpha_top) = (ode::alpha_from_sigma_over_alpha(s0), ode::alpha_from_sigma_over_alpha(s_top));
    let dims = y_top.len() as f64;
    let prior: f64 = y_top.iter().map(|y| -0.5 * (alpha_top * y).powi(2)).sum::<f64>() - 0.5 * dims * (2.0 * PI).ln();
    prior + dims * (alpha_top / alpha_0).ln() + divergence_integral
}

/// Levels of 8-bit data per unit of the model's range: x = k/127.5 − 1 for k = 0..=255.
pub const LEVELS_PER_UNIT: f64 = 127.5;

/// Uniform dequantisation of an 8-bit value x = k/127.5 − 1 with u ~ U[0, 1): x + (u − ½)/127.5, uniform on
/// the level's bin [x − 1/255, x + 1/255), the bin the bound's discretized decoder charges.
pub fn dequantize(x: f32, u: f64) -> f64 {
    f64::from(x) + (u - 0.5) / LEVELS_PER_UNIT
}

/// Bits per dimension of the 8-bit image from the density of its dequantised values in [-1, 1] units:
/// −log₂ p(x)/D + log₂ 127.5. Each value's bin is 1/127.5 wide, so the 8-bit image's probability is
/// P(k) = ∫_bins p = E_u[p(x)] / 127.5^D, and by Jensen over u, E_u[−log₂ p(x)] + D log₂ 127.5 ≥ −log₂ P(k):
/// an upper bound on the code length of the 8-bit image under the discrete model the ODE defines (Song et
/// al. 2021 add 7 = log₂ 128 for their bins of 2/256 of the same range).
pub fn bits_per_dim_8bit(log_density: f64, dims: usize) -> f64 {
    bits_per_dim(log_density, dims) + LEVELS_PER_UNIT.log2()
}

/// −log₂ p(x) / D: bits per dimension of continuous values (a latent model's latents).
pub fn bits_per_dim(log_density: f64, dims: usize) -> f64 {
    -log_density / (dims.max(1) as f64 * LN_2)
}

/// Hutchinson's estimator of tr(J) (Hutchinson 1989): vᵀ J v for a probe v with E[v vᵀ] = I, from the
/// vector–Jacobian product Jᵀv (one backward pass). Unbiased for Rademacher or Gaussian v; Rademacher v
/// (±1) adds no variance from J's diagonal.
pub fn hutchinson_trace(v: &[f64], jacobian_transposed_v: &[f64]) -> f64 {
    v.iter().zip(jacobian_transposed_v).map(|(a, b)| a * b).sum()
}

/// The mean of `values` and its standard error s/√n (0 for a single value).
pub fn mean_and_standard_error(values: &[f64]) -> (f64, f64) {
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    if values.len() < 2 {
        return (mean, 0.0);
    }
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0);
    (mean, (variance / n).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::schedule::BetaSchedule;

    /// Data x_0 ~ N(μ_i, c_i²) in each dimension i and the exact ε̂ = E[ε | x]: in y, f = s (y − μ)/(c² + s²)
    /// and div_y f = Σ_i s/(c_i² + s²), so y − μ grows as sqrt(c² + s²) and every level's density is known.
    struct Gaussian {
        mean: Vec<f64>,
        std: Vec<f64>,
        evaluations: usize,
    }

    impl FlowField for Gaussian {
        type Error = std::convert::Infallible;
        fn evaluate(&mut self, s: f64, y: &[f64], dy: &mut [f64], div: &mut [f64]) -> Result<(), Self::Error> {
            self.evaluations += 1;
            let d = self.mean.len();
            for (image, (y, dy)) in y.chunks_exact(d).zip(dy.chunks_exact_mut(d)).enumerate() {
                div[image] = 0.0;
                for i in 0..d {
                    let v = self.std[i].powi(2) + s * s;
                    dy[i] = s * (y[i] - self.mean[i]) / v;
                    div[image] += s / v;
                }
            }
            Ok(())
        }
    }

    impl Gaussian {
        /// log q_s(x) of x at level s: N(α μ, α² c² + σ²) per dimension.
        fn log_q(&self, s: f64, x: &[f64]) -> f64 {
            let alpha = ode::alpha_from_sigma_over_alpha(s);
            let sigma2 = 1.0 - alpha * alpha;
            x.iter()
                .enumerate()
                .map(|(i, x)| {
                    let v = alpha * alpha * self.std[i].powi(2) + sigma2;
                    -0.5 * ((2.0 * PI * v).ln() + (x - alpha * self.mean[i]).powi(2) / v)
                })
                .sum()
        }
    }

    /// With the exact field, the flow carries q_{s_0} to q_{s_T}, so the ODE's density of x is q_{s_0}(x)
    /// corrected by the prior it ends on: log q_{s_0}(x) + log N(x_T; 0, I) − log q_{s_T}(x_T). Both solvers
    /// reproduce it, Jacobians of both ends included.
    #[test]
    fn the_exact_field_gives_the_data_density_by_both_solvers() {
        let schedule = BetaSchedule::cosine(1000).build().unwrap();
        let ends = FlowEnds::of_schedule(&schedule);
        let (s0, s_top) = ends.s();
        let mut field = Gaussian { mean: vec![0.3, -0.5, 0.0], std: vec![0.5, 0.1, 0.02], evaluations: 0 };
        let points = [[0.1, -0.45, 0.03], [0.9, -0.7, -0.01]];
        let x0: Vec<f64> = points.iter().flatten().copied().collect();
        let alpha_0 = ode::alpha_from_sigma_over_alpha(s0);
        let y0: Vec<f64> = x0.iter().map(|x| x / alpha_0).collect();
        let heun = integrate_heun(&mut field, ends, 400, &y0, 2).unwrap();
        let coarse = integrate_heun(&mut field, ends, 200, &y0, 2).unwrap();
        let tolerance = Tolerance { relative: 1e-9, absolute: 1e-9 };
        let (adaptive, stats) = integrate_adaptive(&mut field, ends, &y0, 2, tolerance).unwrap();
        assert!(stats.accepted > 0 && adaptive.evaluations == stats.evaluations);
        assert_eq!(heun.evaluations, 800);
        let alpha_top = ode::alpha_from_sigma_over_alpha(s_top);
        for (k, x) in points.iter().enumerate() {
            let x_top: Vec<f64> = (0..3)
                .map(|i| {
                    let y = field.mean[i]
                        + (y0[3 * k + i] - field.mean[i])
                            * ((field.std[i].powi(2) + s_top * s_top) / (field.std[i].powi(2) + s0 * s0)).sqrt();
                    alpha_top * y
                })
                .collect();
            let prior: f64 = x_top.iter().map(|x| -0.5 * ((2.0 * PI).ln() + x * x)).sum();
            let exact = field.log_q(s0, x) + prior - field.log_q(s_top, &x_top);
            let error = |flow: &FlowEnd| {
                (log_density(ends, &flow.y_top[3 * k..3 * k + 3], flow.divergence_integral[k]) - exact).abs()
            };
            assert!(error(&adaptive) < 1e-6, "adaptive, point {k}: off by {}", error(&adaptive));
            // Second order: twice the steps, a quarter of the error.
            let (e200, e400) = (error(&coarse), error(&heun));
            assert!(e400 < 1e-3 && e200 / e400 > 3.5 && e200 / e400 < 4.5, "point {k}: Heun off by {e200}, {e400}");
        }
    }

    /// Hutchinson's vᵀAv over every Rademacher v of a 3×3 matrix averages to tr A exactly (E[v vᵀ] = I).
    #[test]
    fn hutchinson_is_unbiased_for_a_linear_map() {
        let a = [[2.0, -1.0, 0.5], [3.0, 0.25, -2.0], [0.7, 1.5, -4.0]];
        let mut total = 0.0;
        for signs in 0..8 {
            let v: Vec<f64> = (0..3).map(|i| if signs >> i & 1 == 1 { 1.0 } else { -1.0 }).collect();
            let atv: Vec<f64> = (0..3).map(|j| (0..3).map(|i| a[i][j] * v[i]).sum()).collect();
            total += hutchinson_trace(&v, &atv);
        }
        assert!((total / 8.0 - (2.0 + 0.25 - 4.0)).abs() < 1e-12, "{}", total / 8.0);
    }

    #[test]
    fn bits_per_dim_of_8bit_data_adds_the_bin_width() {
        // A uniform density over [-1 - 1/255, 1 + 1/255) (width 256/127.5) is exactly 8 bits per pixel.
        let dims = 10;
        let log_density = -(dims as f64) * (256.0 / LEVELS_PER_UNIT).ln();
        assert!((bits_per_dim_8bit(log_density, dims) - 8.0).abs() < 1e-12);
        assert_eq!(dequantize(1.0, 0.5), 1.0);
        assert!((dequantize(-1.0, 0.0) + 1.0 + 1.0 / 255.0).abs() < 1e-7);
        let (mean, se) = mean_and_standard_error(&[1.0, 2.0, 3.0, 4.0]);
        assert!((mean - 2.5).abs() < 1e-12 && (se - (5.0f64 / 12.0).sqrt()).abs() < 1e-12);
    }
}
