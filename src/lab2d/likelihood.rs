//! Likelihood by the probability-flow ODE in the plane, beside the variational bound and the truth.
//!
//! The probability-flow ODE (Song et al. 2021) carries x_0 to x_T deterministically, so the density of
//! the model it defines follows from the instantaneous change of variables (Chen et al. 2018):
//! d log p_s(y(s)) / ds = -∇_y·f(s, y). In DDIM's variables (`diffusion::ode`: s = σ/α, y = x/α,
//! f = dy/ds = ε̂(α y, λ(s))) and integrating from the data at s = 0 (σ = 0, α = 1, y = x_0) to the top of
//! the schedule s_T:
//!
//!   log p_0(x_0) = log p_T(x_T) + 2 ln α_T + ∫_0^{s_T} ∇_y·f ds,   ∇_y·f = α ∇_x·ε̂(α y, λ(s)),
//!
//! with x_T = α_T y(s_T); 2 ln α_T is the Jacobian of x = α y at the top (d = 2 dimensions), and at the
//! bottom α = 1. In the plane the divergence is exact: from the mixture's closed form for the exact ε*
//! ([`GaussianMixture::score_divergence`]), by autodiff of the network for ε̂ (one backward pass gives both
//! diagonal entries: the batch holds x twice, and the first copy's ε̂_1 and the second's ε̂_2 are summed).
//!
//! - ODE with the exact score: p_T is the exact noised mixture q_T, so the result is the data's true log
//!   density (the test).
//! - ODE with the network: the network's own model, p_T = N(0, I) (the prior it samples from), its λ kept
//!   within its training range (at s = 0, λ = ∞).
//! - The bound: -log p_θ(x_0) ≤ L_T + Σ_{t≥2} L_{t-1} + L_0 (Ho et al. 2020, eq. 5), with the pieces of
//!   `diffusion::likelihood` and `diffusion::posterior`: prior term, KL per step, a Gaussian decoder (points
//!   are continuous). It bounds the likelihood of the reverse SDE's model (the DDPM chain), a different
//!   model from the ODE's, so the two need not be ordered.
//!
//! Bits per dimension: -log₂ p / 2. For continuous data a density can exceed 1, so they can be negative.

use std::f64::consts::LN_2;

use burn::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::Lab;
use super::run::{KeepGoing, LabError, always, check, guided_epsilon};
use crate::diffusion::mixture::{GaussianMixture, Point, epsilon_divergence, epsilon_from_score};
use crate::diffusion::ode::{
    OdeError, OdeStats, Tolerance, alpha_from_sigma_over_alpha, log_snr_from_sigma_over_alpha, solve_adaptive,
};
use crate::diffusion::{BetaSchedule, DdpmVariance, NoiseSchedule, NoiseSource, likelihood, posterior};
use crate::eval::nll::evaluated_steps;
use crate::model::point_mlp::PointDenoiser;
use crate::model::read_f32;

/// Dimensions of a point.
pub const DIMENSIONS: usize = 2;

/// -log₂ p / d: a log-density in nats as bits per dimension.
pub fn bits_per_dim(log_density: f64) -> f64 {
    -log_density / (DIMENSIONS as f64 * LN_2)
}

#[derive(Debug, thiserror::Error)]
pub enum LikelihoodError {
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error("the likelihood's ODE: {0}")]
    Ode(#[from] OdeError),
    #[error("the likelihood needs at least one point")]
    NoPoints,
    #[error("the ODE tolerance must be in (0, 0.1), got {0}")]
    Tolerance(f64),
}

/// How the likelihoods are measured.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LikelihoodSettings {
    pub schedule: BetaSchedule,
    /// Points drawn afresh from the data's distribution (not the training points).
    pub points: usize,
    pub seed: u64,
    /// Relative and absolute tolerance of the network's ODE (f32 network: not much below 1e-5).
    pub network_tolerance: f64,
    /// Relative and absolute tolerance of the exact score's ODE (f64 throughout).
    pub exact_tolerance: f64,
    /// The bound's widest stratum of t ≥ 2 (`eval::nll::evaluated_steps`); 1: every t summed.
    pub bound_stride: usize,
    /// σ_t² of the reverse process the bound is of.
    pub variance: DdpmVariance,
}

impl LikelihoodSettings {
    /// What `lab2d --likelihood` measures: 200 points, every t of the bound.
    pub fn full(schedule: BetaSchedule) -> Self {
        Self {
            schedule,
            points: 200,
            seed: 11,
            network_tolerance: 1e-5,
            exact_tolerance: 1e-8,
            bound_stride: 1,
            variance: DdpmVariance::BetaTilde,
        }
    }

    /// The window's quicker reading: 100 points, the bound's sum stratified as `eval --nll` does.
    pub fn quick(schedule: BetaSchedule) -> Self {
        Self { points: 100, bound_stride: 10, ..Self::full(schedule) }
    }

    /// Refuses settings that cannot be measured (no points, a tolerance out of range).
    pub fn check(&self) -> Result<(), LikelihoodError> {
        if self.points == 0 {
            return Err(LikelihoodError::NoPoints);
        }
        for tolerance in [self.network_tolerance, self.exact_tolerance] {
            if !(tolerance > 0.0 && tolerance < 0.1) {
                return Err(LikelihoodError::Tolerance(tolerance));
            }
        }
        Ok(())
    }
}

/// log p_0(x_0) of one point by the ODE, in nats, as its three parts.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct FlowLogDensity {
    /// Where the ODE carried the point: x_T = α_T y(s_T).
    pub x_top: Point,
    /// log p_T(x_T).
    pub log_prior: f64,
    /// 2 ln α_T: the Jacobian of x = α y at the top.
    pub jacobian: f64,
    /// ∫_0^{s_T} ∇_y·f ds.
    pub integral: f64,
}

impl FlowLogDensity {
    /// log p_0(x_0) = log p_T(x_T) + 2 ln α_T + ∫ ∇_y·f ds.
    pub fn log_density(&self) -> f64 {
        self.log_prior + self.jacobian + self.integral
    }
}

/// The field along the ODE: at s, for each x, ε̂(x) and its divergence ∇_x·ε̂(x).
pub type Field<'a> = dyn FnMut(f64, &[Point], &mut [(Point, f64)]) + 'a;

/// s_T = sqrt(1 - ᾱ_T) / sqrt(ᾱ_T): the top of `schedule` in the ODE's time.
pub fn top_of(schedule: &NoiseSchedule) -> f64 {
    let i = schedule.steps() - 1;
    (schedule.one_minus_alpha_bar[i] / schedule.alpha_bar[i]).sqrt()
}

/// log p_0 of each of `points` by the ODE from s = 0 to `s_top`, all points one system of 3 numbers each
/// (y and the integral), with `field` giving ε̂ and ∇_x·ε̂ and `log_prior` the density at the top.
pub fn flow_log_densities(
    points: &[Point],
    s_top: f64,
    tolerance: f64,
    field: &mut Field<'_>,
    log_prior: &dyn Fn(Point) -> f64,
) -> Result<(Vec<FlowLogDensity>, OdeStats), OdeError> {
    let n = points.len();
    // At s = 0, α = 1 and y = x_0; the integral starts at 0.
    let start: Vec<f64> = points.iter().flat_map(|p| [p[0], p[1], 0.0]).collect();
    let mut xs = vec![[0.0; 2]; n];
    let mut values = vec![([0.0; 2], 0.0); n];
    let mut derivative = |s: f64, state: &[f64], d: &mut [f64]| {
        let alpha = alpha_from_sigma_over_alpha(s);
        for (x, y) in xs.iter_mut().zip(state.chunks_exact(3)) {
            *x = [alpha * y[0], alpha * y[1]];
        }
        field(s, &xs, &mut values);
        for (d, (eps, divergence)) in d.chunks_exact_mut(3).zip(&values) {
            // dy/ds = ε̂(α y); d/ds ∫ = ∇_y·f = α ∇_x·ε̂.
            d[0] = eps[0];
            d[1] = eps[1];
            d[2] = alpha * divergence;
        }
    };
    let tolerance = Tolerance { relative: tolerance, absolute: tolerance };
    let (end, stats) = solve_adaptive(&mut derivative, 0.0, s_top, &start, tolerance)?;
    let alpha_top = alpha_from_sigma_over_alpha(s_top);
    let densities = end
        .chunks_exact(3)
        .map(|y| {
            let x_top = [alpha_top * y[0], alpha_top * y[1]];
            FlowLogDensity {
                x_top,
                log_prior: log_prior(x_top),
                jacobian: DIMENSIONS as f64 * alpha_top.ln(),
                integral: y[2],
            }
        })
        .collect();
    Ok((densities, stats))
}

/// The exact ε* = -sqrt(1 - ᾱ) ∇ log q_s and its divergence -sqrt(1 - ᾱ) Δ log q_s, ᾱ = α(s)² and
/// 1 - ᾱ = s² α(s)² (exact at s = 0, where both vanish).
pub fn exact_field(mixture: &GaussianMixture) -> impl FnMut(f64, &[Point], &mut [(Point, f64)]) + '_ {
    move |s, xs, out| {
        let alpha = alpha_from_sigma_over_alpha(s);
        let (alpha_bar, one_minus) = (alpha * alpha, s * s * alpha * alpha);
        let q = mixture.noised(alpha_bar, one_minus);
        for (x, out) in xs.iter().zip(out.iter_mut()) {
            *out = (epsilon_from_score(q.score(*x), one_minus), epsilon_divergence(q.score_divergence(*x), one_minus));
        }
    }
}

/// log p_0 of each point by the ODE with the exact score, each point solved on its own (its own steps),
/// the top's density the exact q_T of the mixture: the data's true log density, to the tolerance.
/// `keep_going` is asked before each point.
pub fn exact_flow_log_densities(
    mixture: &GaussianMixture,
    points: &[Point],
    s_top: f64,
    tolerance: f64,
    keep_going: KeepGoing<'_>,
) -> Result<(Vec<FlowLogDensity>, OdeStats), LikelihoodError> {
    let alpha_top = alpha_from_sigma_over_alpha(s_top);
    let (alpha_bar, one_minus) = (alpha_top * alpha_top, s_top * s_top * alpha_top * alpha_top);
    let top = mixture.noised(alpha_bar, one_minus);
    let prior = |x: Point| top.log_density(x);
    let mut field = exact_field(mixture);
    let mut total = OdeStats::default();
    let mut densities = Vec::with_capacity(points.len());
    for point in points {
        check(keep_going)?;
        let (one, stats) = flow_log_densities(std::slice::from_ref(point), s_top, tolerance, &mut field, &prior)?;
        densities.extend(one);
        total.accepted += stats.accepted;
        total.rejected += stats.rejected;
        total.evaluations += stats.evaluations;
    }
    Ok((densities, total))
}

/// log N(x; 0, I) in the plane.
pub fn standard_normal_log_density(x: Point) -> f64 {
    -0.5 * (x[0] * x[0] + x[1] * x[1]) - (2.0 * std::f64::consts::PI).ln()
}

/// The network's ε̂ (unconditional) and its exact divergence ∇_x·ε̂ at the points `xs`, λ = `log_snr`:
/// the batch holds x twice as two leaves, and one backward pass of Σ ε̂_1(first) + Σ ε̂_2(second) gives
/// ∂ε̂_1/∂x_1 in the first's gradient and ∂ε̂_2/∂x_2 in the second's (the points do not mix in a batch).
pub fn network_divergence(
    model: &PointDenoiser,
    xs: &[Point],
    log_snr: f64,
    device: &Device,
) -> Result<Vec<(Point, f64)>, LabError> {
    let n = xs.len();
    let values: Vec<f32> = xs.iter().flat_map(|p| [p[0] as f32, p[1] as f32]).collect();
    let leaf = || Tensor::<2>::from_data(TensorData::new(values.clone(), [n, 2]), device).require_grad();
    let (first, second) = (leaf(), leaf());
    let eps = guided_epsilon(model, Tensor::cat(vec![first.clone(), second.clone()], 0), log_snr, None, 0.0);
    let picked = eps.clone().slice([0..n, 0..1]).sum().add(eps.clone().slice([n..2 * n, 1..2]).sum());
    let grads = picked.backward();
    let column = |leaf: &Tensor<2>, axis: usize| -> Result<Vec<f32>, LabError> {
        let grad = leaf.grad(&grads).unwrap_or_else(|| Tensor::<2>::zeros([n, 2], device));
        let values = read_f32(grad.without_autodiff())?;
        Ok(values.chunks_exact(2).map(|g| g[axis]).collect())
    };
    let (d1, d2) = (column(&first, 0)?, column(&second, 1)?);
    let eps = read_f32(eps.slice([0..n, 0..2]).without_autodiff())?;
    Ok((0..n)
        .map(|i| ([f64::from(eps[2 * i]), f64::from(eps[2 * i + 1])], f64::from(d1[i]) + f64::from(d2[i])))
        .collect())
}

/// log p_0 of each point under the network's ODE model: p_T = N(0, I), λ(s) kept within the network's
/// training range `log_snr_range`, all points one system. `keep_going` is asked before each evaluation.
pub fn network_flow_log_densities(
    model: &PointDenoiser,
    log_snr_range: (f64, f64),
    points: &[Point],
    s_top: f64,
    tolerance: f64,
    device: &Device,
    keep_going: KeepGoing<'_>,
) -> Result<(Vec<FlowLogDensity>, OdeStats), LikelihoodError> {
    // The network lives on the plain device; on the autodiff one its weights are constants and x a leaf.
    let autodiff = device.clone().autodiff();
    let model = model.clone().to_device(&autodiff);
    let mut failure: Option<LabError> = None;
    let mut field = |s: f64, xs: &[Point], out: &mut [(Point, f64)]| {
        let log_snr = log_snr_from_sigma_over_alpha(s).clamp(log_snr_range.0, log_snr_range.1);
        match check(keep_going).and_then(|_| network_divergence(&model, xs, log_snr, &autodiff)) {
            Ok(values) => out.copy_from_slice(&values),
            Err(error) => {
                failure.get_or_insert(error);
                // Not finite: the solver stops at once.
                out.fill(([f64::NAN; 2], f64::NAN));
            }
        }
    };
    let solved = flow_log_densities(points, s_top, tolerance, &mut field, &standard_normal_log_density);
    if let Some(error) = failure {
        return Err(error.into());
    }
    Ok(solved?)
}

/// The bound's parts [L_T, Σ_{t≥2} L_{t-1}, L_0] of each point in bits per dimension, the network's ε̂ at each
/// evaluated t (`stride` 1: every t), one fresh ε per (t, point) from `seed`, μ_θ from ε̂ unclipped (the
/// reverse process as a model, no clipping), λ kept within the training range as the ODE keeps it.
/// `keep_going` is asked before each t.
#[allow(clippy::too_many_arguments)]
pub fn bound_bits(
    model: &PointDenoiser,
    log_snr_range: (f64, f64),
    schedule: &NoiseSchedule,
    points: &[Point],
    stride: usize,
    seed: u64,
    variance: DdpmVariance,
    device: &Device,
    keep_going: KeepGoing<'_>,
) -> Result<Vec<[f64; 3]>, LabError> {
    let n = points.len();
    let x0: Vec<f32> = points.iter().flat_map(|p| [p[0] as f32, p[1] as f32]).collect();
    let mut bits: Vec<[f64; 3]> = x0.chunks_exact(2).map(|p| [likelihood::prior_bits(schedule, p), 0.0, 0.0]).collect();
    for (t, weight) in evaluated_steps(schedule.steps(), stride, seed) {
        check(keep_going)?;
        let i = t - 1;
        let noise = NoiseSource::new(seed ^ (t as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).values(2 * n);
        let (signal, sigma) = (schedule.sqrt_alpha_bar[i], schedule.sqrt_one_minus_alpha_bar[i]);
        let x_t: Vec<f32> =
            x0.iter().zip(&noise).map(|(x, e)| (signal * f64::from(*x) + sigma * f64::from(*e)) as f32).collect();
        let input = Tensor::<2>::from_data(TensorData::new(x_t.clone(), [n, 2]), device);
        let log_snr = schedule.log_snr[i].clamp(log_snr_range.0, log_snr_range.1);
        let eps = read_f32(guided_epsilon(model, input, log_snr, None, 0.0))?;
        for (k, bits) in bits.iter_mut().enumerate() {
            let (x0, x_t, eps) = (&x0[2 * k..2 * k + 2], &x_t[2 * k..2 * k + 2], &eps[2 * k..2 * k + 2]);
            if t == 1 {
                let mean = posterior::model_mean(schedule, 1, x_t, eps);
                let variance = likelihood::decoder_variance(schedule, variance);
                bits[2] = likelihood::gaussian_decoder_bits(&mean, variance, x0);
            } else {
                let term = posterior::l_t_minus_1_bits(schedule, t, x0, x_t, eps, variance).unwrap_or(0.0);
                bits[1] += weight as f64 * term;
            }
        }
    }
    Ok(bits)
}

/// One point's four numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PointLikelihood {
    pub point: Point,
    /// log q_0(x_0) of the data's mixture, in nats.
    pub true_log_density: f64,
    pub exact: FlowLogDensity,
    pub network: FlowLogDensity,
    /// The bound on -log₂ p_θ(x_0) / 2 as its parts [L_T, Σ_{t≥2} L_{t-1}, L_0], bits per dimension.
    pub bound_parts: [f64; 3],
}

/// The four columns of the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    True,
    OdeExact,
    OdeNetwork,
    Bound,
}

impl Column {
    pub const ALL: [Column; 4] = [Self::True, Self::OdeExact, Self::OdeNetwork, Self::Bound];

    pub fn label(self) -> &'static str {
        match self {
            Self::True => "true density",
            Self::OdeExact => "ODE, exact score",
            Self::OdeNetwork => "ODE, network",
            Self::Bound => "bound, network",
        }
    }

    /// The column's name in a CSV header.
    pub fn key(self) -> &'static str {
        match self {
            Self::True => "true",
            Self::OdeExact => "ode_exact",
            Self::OdeNetwork => "ode_network",
            Self::Bound => "bound",
        }
    }

    /// This column of `row`, in bits per dimension.
    pub fn bits(self, row: &PointLikelihood) -> f64 {
        match self {
            Self::True => bits_per_dim(row.true_log_density),
            Self::OdeExact => bits_per_dim(row.exact.log_density()),
            Self::OdeNetwork => bits_per_dim(row.network.log_density()),
            Self::Bound => row.bound_parts.iter().sum(),
        }
    }
}

/// A mean over points and its standard error (the points' standard deviation / sqrt(n)).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mean {
    pub mean: f64,
    pub standard_error: f64,
}

impl Mean {
    pub fn of(values: &[f64]) -> Self {
        let n = values.len().max(1) as f64;
        let mean = values.iter().sum::<f64>() / n;
        let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
        Self { mean, standard_error: (variance / n).sqrt() }
    }
}

/// Every point's numbers, and what the two ODE solves cost.
#[derive(Clone, Debug, PartialEq)]
pub struct LikelihoodReport {
    pub settings: LikelihoodSettings,
    pub rows: Vec<PointLikelihood>,
    /// The top of the schedule in the ODE's time, s_T, and its ᾱ_T.
    pub s_top: f64,
    pub alpha_bar_top: f64,
    pub exact_stats: OdeStats,
    pub network_stats: OdeStats,
    /// Optimizer steps the network had taken.
    pub train_step: u64,
}

impl LikelihoodReport {
    /// A column's mean over points, in bits per dimension.
    pub fn mean(&self, column: Column) -> Mean {
        Mean::of(&self.rows.iter().map(|r| column.bits(r)).collect::<Vec<_>>())
    }

    /// The mean of a column minus another's, with the standard error of the paired differences.
    pub fn difference(&self, a: Column, b: Column) -> Mean {
        Mean::of(&self.rows.iter().map(|r| a.bits(r) - b.bits(r)).collect::<Vec<_>>())
    }

    /// The mean of each part of an ODE column's log density (nats): log p_T(x_T), 2 ln α_T, ∫ ∇·f ds;
    /// `None` for the columns that are not by the ODE.
    pub fn flow_parts(&self, column: Column) -> Option<[f64; 3]> {
        let flow = |r: &PointLikelihood| match column {
            Column::OdeExact => Some(r.exact),
            Column::OdeNetwork => Some(r.network),
            Column::True | Column::Bound => None,
        };
        let n = self.rows.len().max(1) as f64;
        let mean =
            |f: &dyn Fn(&FlowLogDensity) -> f64| self.rows.iter().filter_map(flow).map(|d| f(&d)).sum::<f64>() / n;
        flow(self.rows.first()?)?;
        Some([mean(&|d| d.log_prior), mean(&|d| d.jacobian), mean(&|d| d.integral)])
    }

    /// The bound's mean parts [L_T, Σ_{t≥2} L_{t-1}, L_0] in bits per dimension.
    pub fn bound_parts(&self) -> [f64; 3] {
        let n = self.rows.len().max(1) as f64;
        let mean = |i: usize| self.rows.iter().map(|r| r.bound_parts[i]).sum::<f64>() / n;
        [mean(0), mean(1), mean(2)]
    }

    /// The table as lines of text: one per column, mean ± standard error in bits per dimension.
    pub fn table_lines(&self) -> Vec<String> {
        let mut lines = vec![format!(
            "likelihood of {} fresh points of the data, bits/dim (-log2 p / 2; negative: density above 1), mean ± s.e.:",
            self.rows.len()
        )];
        for column in Column::ALL {
            let m = self.mean(column);
            lines.push(format!("  {:<18} {:>8.4} ± {:.4}", column.label(), m.mean, m.standard_error));
        }
        lines
    }

    /// One plain line on what the measured gaps mean.
    pub fn gap_line(&self) -> String {
        let bound_gap = self.difference(Column::Bound, Column::OdeNetwork);
        let network_gap = self.difference(Column::OdeNetwork, Column::True);
        let bound = if bound_gap.mean >= 0.0 {
            format!("the bound is {:.3} bits/dim above the network's ODE likelihood (looser)", bound_gap.mean)
        } else {
            format!("the bound is {:.3} bits/dim below the network's ODE likelihood", -bound_gap.mean)
        };
        let network = if network_gap.mean >= 0.0 {
            format!("the network's ODE model costs {:.3} bits/dim more than the true density", network_gap.mean)
        } else {
            format!(
                "the network's ODE model gives these points {:.3} bits/dim more density than the truth (a sample of \
                 points, not every point: its density is higher there and lower elsewhere)",
                -network_gap.mean
            )
        };
        format!("Measured: {bound}; {network}.")
    }

    /// One line per point: x, y and the four columns in bits per dimension.
    pub fn csv(&self) -> String {
        let mut out = String::from("x,y");
        for column in Column::ALL {
            out.push(',');
            out.push_str(column.key());
        }
        out.push('\n');
        for row in &self.rows {
            out.push_str(&format!("{},{}", row.point[0], row.point[1]));
            for column in Column::ALL {
                out.push_str(&format!(",{}", column.bits(row)));
            }
            out.push('\n');
        }
        out
    }
}

/// Fresh points of `mixture`, seeded.
pub fn fresh_points(mixture: &GaussianMixture, count: usize, seed: u64) -> Vec<Point> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ 0x11CE_11CE_D00D_F00D);
    mixture.sample(count, &mut rng).into_iter().map(|(p, _)| p).collect()
}

/// The four numbers for fresh points of `lab`'s data under its network as trained so far.
pub fn lab_likelihood(
    lab: &Lab,
    settings: &LikelihoodSettings,
    device: &Device,
) -> Result<LikelihoodReport, LikelihoodError> {
    let model = lab.model();
    let network = LikelihoodNetwork::of(lab, &model);
    likelihood_until(&network, &lab.data.mixture, settings, device, &always)
}

/// What the likelihood needs of a session's network: the network (its EMA weights), the λ range it
/// trained on, and the optimizer steps it took.
pub struct LikelihoodNetwork<'a> {
    pub model: &'a PointDenoiser,
    pub log_snr_range: (f64, f64),
    pub step: u64,
}

impl<'a> LikelihoodNetwork<'a> {
    /// `lab`'s, with `model` its network ([`Lab::model`]).
    pub fn of(lab: &Lab, model: &'a PointDenoiser) -> Self {
        let log_snr_range = (lab.trainer.config.log_snr_min, lab.trainer.config.log_snr_max);
        Self { model, log_snr_range, step: lab.trainer.step }
    }
}

/// [`lab_likelihood`] of `network` on `mixture`'s fresh points, asking `keep_going` between the pieces
/// (each point of the exact ODE, each evaluation of the network's, each t of the bound): the same numbers
/// when it runs to the end.
pub fn likelihood_until(
    network: &LikelihoodNetwork<'_>,
    mixture: &GaussianMixture,
    settings: &LikelihoodSettings,
    device: &Device,
    keep_going: KeepGoing<'_>,
) -> Result<LikelihoodReport, LikelihoodError> {
    settings.check()?;
    let schedule = settings.schedule.build().map_err(LabError::from)?;
    let s_top = top_of(&schedule);
    let points = fresh_points(mixture, settings.points, settings.seed);
    let (model, range) = (network.model, network.log_snr_range);
    let (exact, exact_stats) = exact_flow_log_densities(mixture, &points, s_top, settings.exact_tolerance, keep_going)?;
    let (network_densities, network_stats) =
        network_flow_log_densities(model, range, &points, s_top, settings.network_tolerance, device, keep_going)?;
    let (stride, seed, variance) = (settings.bound_stride, settings.seed, settings.variance);
    let bound = bound_bits(model, range, &schedule, &points, stride, seed, variance, device, keep_going)?;
    let rows = points
        .iter()
        .zip(exact.into_iter().zip(network_densities))
        .zip(bound)
        .map(|((point, (exact, network)), bound_parts)| PointLikelihood {
            point: *point,
            true_log_density: mixture.log_density(*point),
            exact,
            network,
            bound_parts,
        })
        .collect();
    Ok(LikelihoodReport {
        settings: *settings,
        rows,
        s_top,
        alpha_bar_top: schedule.alpha_bar[schedule.steps() - 1],
        exact_stats,
        network_stats,
        train_step: network.step,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab2d::data::Preset;
    use crate::model::point_mlp::PointDenoiserConfig;

    /// The acceptance test of the likelihood by the ODE: with the exact score and the exact q_T at the top,
    /// log p_0(x_0) is the mixture's true log density, for every preset, at points on and off the data.
    #[test]
    fn exact_score_ode_gives_the_true_density() {
        let schedule = BetaSchedule::cosine(1000).build().unwrap();
        let s_top = top_of(&schedule);
        for preset in Preset::ALL {
            let mixture = preset.mixture();
            let mut points = fresh_points(&mixture, 4, 5);
            points.push([0.05, -0.3]);
            let (densities, stats) = exact_flow_log_densities(&mixture, &points, s_top, 1e-9, &always).unwrap();
            for (point, density) in points.iter().zip(&densities) {
                let truth = mixture.log_density(*point);
                assert!(
                    (density.log_density() - truth).abs() < 1e-5,
                    "{preset}: at {point:?} the ODE gives {} nats, the truth {truth} (parts {density:?})",
                    density.log_density()
                );
            }
            assert!(stats.evaluations > 0);
        }
    }

    /// The top's density matters: with N(0, I) in place of q_T the cosine schedule's ᾱ_T ≈ 2.4e-9 changes
    /// log p by under 1e-6 nats, so the network's prior is the exact q_T there in all but name.
    #[test]
    fn the_prior_at_the_cosine_top_is_standard_normal() {
        let schedule = BetaSchedule::cosine(1000).build().unwrap();
        let s_top = top_of(&schedule);
        let alpha = alpha_from_sigma_over_alpha(s_top);
        let q_top = Preset::Moons.mixture().noised(alpha * alpha, s_top * s_top * alpha * alpha);
        for x in [[0.0, 0.0], [1.0, -0.5], [2.0, 2.0]] {
            assert!((q_top.log_density(x) - standard_normal_log_density(x)).abs() < 1e-6);
        }
    }

    /// The network's divergence by autodiff against central differences of its ε̂ (f32: h = 1e-2).
    #[test]
    fn network_divergence_matches_finite_differences() {
        let device = Device::flex();
        for objective in crate::diffusion::Objective::ALL {
            let config = PointDenoiserConfig::new().with_hidden(32).with_objective(objective);
            let model = crate::model::init_from_seed(&device, 4, || config.init(&device));
            let autodiff = device.clone().autodiff();
            let on_autodiff = model.clone().to_device(&autodiff);
            let xs = [[0.3, -0.2], [-1.1, 0.7], [0.0, 1.5]];
            let log_snr = 1.3;
            let values = network_divergence(&on_autodiff, &xs, log_snr, &autodiff).unwrap();
            let eps_at = |x: Point| {
                let input = Tensor::<2>::from_data(TensorData::new(vec![x[0] as f32, x[1] as f32], [1, 2]), &device);
                read_f32(guided_epsilon(&model, input, log_snr, None, 0.0)).unwrap()
            };
            let h = 1e-2;
            for (x, (eps, divergence)) in xs.iter().zip(&values) {
                let plain = eps_at(*x);
                assert!((f64::from(plain[0]) - eps[0]).abs() < 1e-5, "{objective}: ε̂ as read");
                let mut numeric = 0.0;
                for axis in 0..2 {
                    let (mut plus, mut minus) = (*x, *x);
                    plus[axis] += h;
                    minus[axis] -= h;
                    numeric += f64::from(eps_at(plus)[axis] - eps_at(minus)[axis]) / (2.0 * h);
                }
                assert!(
                    (divergence - numeric).abs() < 1e-2 * (1.0 + numeric.abs()),
                    "{objective} at {x:?}: autodiff {divergence}, differences {numeric}"
                );
            }
        }
    }

    #[test]
    fn bits_per_dimension_and_means() {
        // A density of 1 is 0 bits; of 1/4 over two dimensions, 1 bit per dimension.
        assert_eq!(bits_per_dim(0.0), 0.0);
        assert!((bits_per_dim(0.25f64.ln()) - 1.0).abs() < 1e-12);
        let m = Mean::of(&[1.0, 2.0, 3.0, 4.0]);
        assert!((m.mean - 2.5).abs() < 1e-12);
        // Sample variance 5/3, over n = 4.
        assert!((m.standard_error - (5.0f64 / 3.0 / 4.0).sqrt()).abs() < 1e-12);
    }
}
