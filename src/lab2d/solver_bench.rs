//! The solver bench: every deterministic sampler against the exact answer, and its order of accuracy.
//!
//! The 2-D lab's data are Gaussian mixtures, so the exact ε* = -σ ∇ log q_t of every noised data set is
//! known (`diffusion::mixture`), and with it the exact probability-flow ODE. In DDIM's variables
//! s = σ/α and y = x/α it reads dy/ds = ε*(α(s) y, λ(s)) (`diffusion::ode`); from the same x_T the bench
//!
//! 1. integrates it accurately ([`solve_adaptive`], Dormand–Prince 5(4) in f64, no clipping) from the
//!    first level to the last positive one: the exact reference x*;
//! 2. runs each deterministic sampler (DDIM η = 0, which here is the same update as Euler; Heun; DPM++ 2M)
//!    through the real [`SamplingPlan::step`] with ε* in place of the network, at N = 8 ... 256 steps with
//!    Karras et al.'s σ spacing (ρ = 7: its last positive σ, the schedule's σ at t = 1, is the same for
//!    every N), on f64 tensors (burn's flex backend computes in f64, so f32 rounding does not floor the
//!    errors of many steps), without clipping x̂_0;
//! 3. measures each one's error at the last positive noise level (before the final jump to σ = 0, which is
//!    first order for every method and would flatten the slopes):
//!    `e(N) = sqrt(mean_i |x_i(N) - x*_i|²)`, and fits `log e = log C - p log N` by least squares: p is the
//!    method's order (error ∝ N^{-p}; about 1 for DDIM/Euler, 2 for Heun and DPM++ 2M). Where the data are
//!    many small blobs (the two moons, the Swiss roll) a few particles sit on the watershed between two
//!    blobs, and a first-order method's error still sends them into the other blob at 256 steps: they
//!    dominate the RMS, so the median particle's error is fitted too and the bench says when they differ;
//! 4. runs the stochastic samplers (DDPM, Euler a, DPM++ 2M SDE) beside them, compared in distribution — the
//!    sliced W₂ of their cloud at the same level to the exact ODE's cloud — not fitted (their paths are not
//!    the ODE's);
//! 5. does it all again with the learned network in place of ε* (read as ε̂ through `guided_epsilon`, in
//!    f32 as it was trained), against the same exact reference, beside the network's own ODE solution's
//!    distance to it: where that distance is larger than a solver's error, the network's error dominates.

use burn::prelude::*;
use burn::tensor::{DType, FloatDType};
use serde::{Deserialize, Serialize};

use super::run::{KeepGoing, LabError, always, check, guided_epsilon};
use crate::diffusion::mixture::{GaussianMixture, Point, epsilon_from_score};
use crate::diffusion::ode::{
    OdeError, OdeStats, Tolerance, alpha_from_sigma_over_alpha, log_snr_from_sigma_over_alpha, solve_adaptive,
};
use crate::diffusion::sampler::SamplingPlan;
use crate::diffusion::{BetaSchedule, DdpmVariance, Method, NoiseLevel, NoiseSource, Sampler, Spacing};
use crate::eval::distance::sliced_wasserstein;
use crate::model::ReadbackError;
use crate::model::point_mlp::PointDenoiser;

/// The step counts of the bench by default: doublings from 8 to 256.
pub const BENCH_STEPS: [usize; 6] = [8, 16, 32, 64, 128, 256];

/// The one spacing of every sampler run: Karras et al.'s σ (ρ = 7), whose last positive level is the same
/// for every step count.
pub const BENCH_SPACING: Spacing = Spacing::Karras;

/// The exact reference's tolerance (relative and absolute, per step of the adaptive solver).
pub const REFERENCE_TOLERANCE: Tolerance = Tolerance { relative: 1e-11, absolute: 1e-11 };

/// The tolerance of the learned network's own ODE solution: the network computes in f32, so a tighter one
/// would chase its rounding; its error against the exact reference is orders of magnitude larger.
pub const NETWORK_TOLERANCE: Tolerance = Tolerance { relative: 1e-7, absolute: 1e-7 };

/// What the bench runs on: the schedule (its σ at t = 1 is the last positive level), the step counts, the
/// particles and the seed of their x_T (drawn as `run_particles` draws them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchSettings {
    pub schedule: BetaSchedule,
    pub steps: Vec<usize>,
    pub particles: usize,
    pub seed: u64,
}

impl Default for BenchSettings {
    fn default() -> Self {
        Self { schedule: BetaSchedule::cosine(1000), steps: BENCH_STEPS.to_vec(), particles: 500, seed: 0 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("solver bench: {0}")]
    Steps(String),
    #[error("solver bench: at least 1 particle")]
    NoParticles,
    #[error(transparent)]
    Lab(#[from] LabError),
    #[error("solver bench, the reference: {0}")]
    Ode(#[from] OdeError),
}

impl From<ReadbackError> for BenchError {
    fn from(error: ReadbackError) -> Self {
        Self::Lab(LabError::Readback(error))
    }
}

impl From<crate::diffusion::sampler::SamplerError> for BenchError {
    fn from(error: crate::diffusion::sampler::SamplerError) -> Self {
        Self::Lab(LabError::Sampler(error))
    }
}

/// The step counts of `A..B`: A, 2A, 4A, ... up to B (`lab2d --bench-steps`).
pub fn parse_step_range(text: &str) -> Result<Vec<usize>, String> {
    let bad = || format!("--bench-steps `{text}`: write FIRST..LAST, e.g. 8..256 (doublings from FIRST up to LAST)");
    let (a, b) = text.trim().split_once("..").ok_or_else(bad)?;
    let (first, last): (usize, usize) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
    let mut steps = Vec::new();
    let mut n = first;
    while n <= last && n > 0 {
        steps.push(n);
        n = n.saturating_mul(2);
        if n == usize::MAX {
            break;
        }
    }
    Ok(if first == 0 { vec![0] } else { steps })
}

impl BenchSettings {
    /// Step counts from 2 (DPM++ 2M's second-order steps need one before them) to the schedule's T, at
    /// least three distinct ones to fit a slope to, and at least one particle.
    pub fn validate(&self) -> Result<(), BenchError> {
        let big_t = self.schedule.steps;
        let mut sorted = self.steps.clone();
        sorted.sort_unstable();
        sorted.dedup();
        if let Some(bad) = sorted.iter().find(|&&n| n < 2 || n > big_t) {
            return Err(BenchError::Steps(format!("{bad} steps: each step count must be between 2 and T = {big_t}")));
        }
        if sorted.len() < 3 {
            return Err(BenchError::Steps(format!(
                "{} step count(s) ({:?}): at least 3 are needed to fit a slope",
                sorted.len(),
                sorted
            )));
        }
        if self.particles == 0 {
            return Err(BenchError::NoParticles);
        }
        Ok(())
    }
}

/// The deterministic samplers the bench fits an order to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SolverMethod {
    /// DDIM at η = 0: x_{s'} = α_{s'} x̂_0 + σ_{s'} ε̂, which is Euler's step x_{s'}/α_{s'} = x_s/α_s +
    /// (σ^K_{s'} - σ^K_s) ε̂ multiplied out: one method, one line.
    DdimEuler,
    Heun,
    DpmSolver2M,
}

impl SolverMethod {
    pub const ALL: [SolverMethod; 3] = [Self::DdimEuler, Self::Heun, Self::DpmSolver2M];

    /// The name printed and plotted: "ddim/euler", "heun", "dpm++ 2m".
    pub fn name(self) -> &'static str {
        match self {
            Self::DdimEuler => "ddim/euler",
            Self::Heun => "heun",
            Self::DpmSolver2M => "dpm++ 2m",
        }
    }

    /// The order the method's theory gives.
    pub fn expected_order(self) -> f64 {
        match self {
            Self::DdimEuler => 1.0,
            Self::Heun | Self::DpmSolver2M => 2.0,
        }
    }

    /// The sampler of `steps` steps, Karras spacing, x̂_0 unclipped.
    pub fn sampler(self, steps: usize) -> Sampler {
        let sampler = match self {
            Self::DdimEuler => Sampler::ddim(steps, 0.0),
            Self::Heun => Sampler::new(Method::Heun, steps),
            Self::DpmSolver2M => Sampler::new(Method::DpmSolver2M, steps),
        };
        sampler.with_spacing(BENCH_SPACING).with_clip_x0(false)
    }
}

/// The stochastic samplers shown beside them (compared in distribution, not fitted).
pub const STOCHASTIC: [Method; 3] = [Method::Ddpm, Method::EulerAncestral, Method::DpmSolver2MSde];

/// A stochastic sampler of `steps` steps as the bench runs it (DDPM visits every timestep whatever
/// `steps` says).
pub fn stochastic_sampler(method: Method, steps: usize) -> Sampler {
    match method {
        Method::Ddpm => Sampler::ddpm(DdpmVariance::BetaTilde).with_clip_x0(false),
        method => Sampler::new(method, steps).with_spacing(BENCH_SPACING).with_clip_x0(false),
    }
}

/// error ≈ C N^{-p}: the least-squares line through (log N, log e).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PowerLaw {
    /// p, the order: doubling N divides the error by 2^p.
    pub order: f64,
    /// C, the error the line gives at N = 1.
    pub constant: f64,
}

impl PowerLaw {
    /// C N^{-p}.
    pub fn at(&self, steps: f64) -> f64 {
        self.constant * steps.powf(-self.order)
    }
}

/// The least-squares fit of log e = log C - p log N over `(N, e)` pairs (positive e only); `None` with
/// fewer than two distinct N.
pub fn fit_power_law(points: &[(usize, f64)]) -> Option<PowerLaw> {
    let logs: Vec<(f64, f64)> =
        points.iter().filter(|(n, e)| *n > 0 && *e > 0.0).map(|&(n, e)| ((n as f64).ln(), e.ln())).collect();
    let count = logs.len() as f64;
    let mean_x = logs.iter().map(|p| p.0).sum::<f64>() / count;
    let mean_y = logs.iter().map(|p| p.1).sum::<f64>() / count;
    let sxx: f64 = logs.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    if logs.len() < 2 || sxx <= 0.0 {
        return None;
    }
    let slope = logs.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum::<f64>() / sxx;
    Some(PowerLaw { order: -slope, constant: (mean_y - slope * mean_x).exp() })
}

/// An error this large puts a particle in another blob of the data than the exact solution's (the presets'
/// blobs are 0.04 to 0.15 wide): what [`MethodCurve::outlier_note`] looks for.
pub const OTHER_BLOB: f64 = 0.05;

/// One sampler at one step count.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorPoint {
    pub steps: usize,
    /// Network evaluations (per particle) to the last positive level.
    pub evaluations: usize,
    /// RMS over particles of |x_sampler - x*| at the last positive level.
    pub error: f64,
    /// The median particle's |x_sampler - x*|: the RMS without the few particles that a sampler's error
    /// sends into another blob of the data than the exact solution reaches.
    pub median: f64,
    /// The largest |x_sampler - x*|.
    pub max: f64,
}

/// A deterministic sampler's errors over the step counts and their fitted power law.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodCurve {
    pub method: SolverMethod,
    pub points: Vec<ErrorPoint>,
    /// The fit of the RMS error: the method's order.
    pub fit: Option<PowerLaw>,
    /// The fit of the median particle's error.
    pub median_fit: Option<PowerLaw>,
}

impl MethodCurve {
    /// When a few particles dominate the RMS error (its order is more than 0.3 below the median
    /// particle's): a line that says so, with both orders and the largest error.
    pub fn outlier_note(&self) -> Option<String> {
        let (rms, median) = (self.fit?.order, self.median_fit?.order);
        // A particle in another blob is off by about a blob's size (the presets' are 0.04 to 0.15 wide),
        // many times the median particle's error: the step count where one stands out most.
        let worst = self
            .points
            .iter()
            .filter(|p| p.max > OTHER_BLOB && p.max > 20.0 * p.median)
            .max_by(|a, b| (a.max / a.median).total_cmp(&(b.max / b.median)))?;
        (median - rms > 0.3).then(|| {
            format!(
                "{}: a few particles end in another blob of the data than the exact solution (at {} steps the worst is \
                 {:.2} off, the median one {:.1e}) and dominate the RMS; the median particle's error falls with order \
                 {median:.2}",
                self.method.name(),
                worst.steps,
                worst.max,
                worst.median
            )
        })
    }
}

/// A stochastic sampler's sliced W₂ to the exact ODE's cloud at the last positive level, per step count
/// (DDPM: one row, at the schedule's T steps).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StochasticRow {
    pub method: Method,
    pub distances: Vec<(usize, f64)>,
}

/// Every sampler with one denoiser (ε* or the network).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchTable {
    pub curves: Vec<MethodCurve>,
    pub stochastic: Vec<StochasticRow>,
}

impl BenchTable {
    pub fn curve(&self, method: SolverMethod) -> Option<&MethodCurve> {
        self.curves.iter().find(|c| c.method == method)
    }

    /// The smallest error any deterministic sampler made.
    pub fn smallest_error(&self) -> f64 {
        self.curves.iter().flat_map(|c| c.points.iter().map(|p| p.error)).fold(f64::INFINITY, f64::min)
    }
}

/// The learned network's part: its samplers against the exact reference, and its own ODE solution's
/// distance to it (the network's error, which no solver removes).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetworkBench {
    pub table: BenchTable,
    /// RMS over particles of |x_network ODE - x*| at the last positive level.
    pub ode_error: f64,
    /// The training step the network had reached.
    pub step: u64,
}

impl NetworkBench {
    /// The fewest steps at which `method`'s error with the exact ε* is already below the network's own ODE
    /// error: from there on the network's error, not the solver's, dominates. `None` if no step count of
    /// the bench gets there.
    pub fn dominated_from(&self, exact: &BenchTable, method: SolverMethod) -> Option<usize> {
        exact.curve(method)?.points.iter().find(|p| p.error < self.ode_error).map(|p| p.steps)
    }
}

/// The exact reference: the ODE's end point and what it cost, and how much it moved when its tolerance
/// was halved (its own error, bounded).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReferenceInfo {
    pub accepted: usize,
    pub rejected: usize,
    pub evaluations: usize,
    pub tolerance: f64,
    /// RMS over particles of |x*(tolerance) - x*(tolerance / 2)|.
    pub change_on_halving: f64,
}

/// The whole bench.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SolverBench {
    pub settings: BenchSettings,
    /// σ^K = σ/α where the runs start and where they are measured (the last positive level).
    pub first_sigma: f64,
    pub last_sigma: f64,
    pub reference: ReferenceInfo,
    /// The sliced W₂ between the exact ODE's cloud and a fresh draw of q at the last level, as many
    /// points: what sample noise alone gives a stochastic sampler's distance.
    pub floor: f64,
    pub exact: BenchTable,
    pub network: Option<NetworkBench>,
}

/// What gives ε at (x, λ) in the bench: the exact ε* of a mixture, or a trained network.
#[derive(Clone, Copy)]
pub enum BenchDenoiser<'a> {
    Exact(&'a GaussianMixture),
    Network(&'a PointDenoiser),
}

/// ᾱ and 1 - ᾱ at λ, each without cancellation: ᾱ = 1 / (1 + e^{-λ}), 1 - ᾱ = 1 / (1 + e^{λ}).
fn alpha_bars(log_snr: f64) -> (f64, f64) {
    (1.0 / (1.0 + (-log_snr).exp()), 1.0 / (1.0 + log_snr.exp()))
}

impl BenchDenoiser<'_> {
    /// ε at the points `x` (x₀ y₀ x₁ y₁ ...) and λ.
    fn epsilon_values(&self, x: &[f64], log_snr: f64, device: &Device) -> Result<Vec<f64>, BenchError> {
        match self {
            Self::Exact(mixture) => {
                let (alpha_bar, one_minus) = alpha_bars(log_snr);
                let noised = mixture.noised(alpha_bar, one_minus);
                Ok(x.chunks_exact(2).flat_map(|p| epsilon_from_score(noised.score([p[0], p[1]]), one_minus)).collect())
            }
            Self::Network(_) => read_f64(self.epsilon(tensor_f64(x, device), log_snr)?),
        }
    }

    /// ε at the f64 tensor `x` ([n, 2]) and λ, as an f64 tensor: ε* in f64, or the network in f32.
    fn epsilon(&self, x: Tensor<2>, log_snr: f64) -> Result<Tensor<2>, BenchError> {
        match self {
            Self::Exact(_) => {
                let device = x.device();
                let values = self.epsilon_values(&read_f64(x)?, log_snr, &device)?;
                Ok(tensor_f64(&values, &device))
            }
            Self::Network(model) => {
                Ok(guided_epsilon(model, x.cast(FloatDType::F32), log_snr, None, 0.0).cast(FloatDType::F64))
            }
        }
    }
}

/// An f64 tensor of shape [n, 2] from x₀ y₀ x₁ y₁ ...
fn tensor_f64(values: &[f64], device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values.to_vec(), [values.len() / 2, 2]), (device, DType::F64))
}

/// An f64 tensor's values (any float tensor's, converted).
fn read_f64(tensor: Tensor<2>) -> Result<Vec<f64>, BenchError> {
    let data = tensor.cast(FloatDType::F64).into_data();
    Ok(data.try_to_vec::<f64>().map_err(|e| ReadbackError(format!("{e:?}")))?)
}

fn points_of(values: &[f64]) -> Vec<Point> {
    values.chunks_exact(2).map(|p| [p[0], p[1]]).collect()
}

/// RMS over particles of |a_i - b_i|.
pub fn rms_distance(a: &[Point], b: &[Point]) -> f64 {
    let sum: f64 = a.iter().zip(b).map(|(p, q)| (p[0] - q[0]).powi(2) + (p[1] - q[1]).powi(2)).sum();
    (sum / a.len().max(1) as f64).sqrt()
}

/// The RMS, median and largest |x_i - x*_i| of a run at `steps` steps.
fn error_point(steps: usize, evaluations: usize, x: &[Point], reference: &[Point]) -> ErrorPoint {
    let mut each: Vec<f64> = x.iter().zip(reference).map(|(p, q)| (p[0] - q[0]).hypot(p[1] - q[1])).collect();
    each.sort_by(f64::total_cmp);
    let median = match each.len() {
        0 => 0.0,
        n if n % 2 == 1 => each[n / 2],
        n => 0.5 * (each[n / 2 - 1] + each[n / 2]),
    };
    ErrorPoint {
        steps,
        evaluations,
        error: rms_distance(x, reference),
        median,
        max: each.last().copied().unwrap_or(0.0),
    }
}

/// x_T for `count` particles from `seed`, as `run_particles` draws it (then every z from the same source).
pub fn starting_noise(count: usize, seed: u64) -> (Vec<f64>, NoiseSource) {
    let mut noise = NoiseSource::new(seed);
    let x_t = noise.values(2 * count).into_iter().map(f64::from).collect();
    (x_t, noise)
}

/// The probability-flow ODE dy/ds = ε(α(s) y, λ(s)) from level `first` to level `last`, solved adaptively
/// from x = `x_t` (y = x/α): x at `last`, and what it cost. `keep_going` is asked before each evaluation.
pub fn ode_solution(
    denoiser: BenchDenoiser<'_>,
    x_t: &[f64],
    (first, last): (f64, f64),
    tolerance: Tolerance,
    device: &Device,
    keep_going: KeepGoing<'_>,
) -> Result<(Vec<f64>, OdeStats), BenchError> {
    let y0: Vec<f64> = x_t.iter().map(|x| x / alpha_from_sigma_over_alpha(first)).collect();
    let mut failed = None;
    let mut f = |s: f64, y: &[f64], dy: &mut [f64]| {
        let alpha = alpha_from_sigma_over_alpha(s);
        let x: Vec<f64> = y.iter().map(|v| alpha * v).collect();
        let eps = check(keep_going).map_err(BenchError::from);
        match eps.and_then(|_| denoiser.epsilon_values(&x, log_snr_from_sigma_over_alpha(s), device)) {
            Ok(eps) => dy.copy_from_slice(&eps),
            Err(error) => {
                // The solver stops at a non-finite slope; the error is the reason.
                dy.fill(f64::NAN);
                failed = Some(error);
            }
        }
    };
    let solved = solve_adaptive(&mut f, first, last, &y0, tolerance);
    if let Some(error) = failed {
        return Err(error);
    }
    let (y, stats) = solved?;
    let alpha = alpha_from_sigma_over_alpha(last);
    Ok((y.into_iter().map(|v| alpha * v).collect(), stats))
}

/// Runs `plan`'s first `count` steps from `x_t` with `denoiser` through [`SamplingPlan::step`] on f64
/// tensors, z drawn from `noise` where a step adds noise: the particles after them.
pub fn run_plan(
    plan: &SamplingPlan,
    count: usize,
    x_t: &[f64],
    denoiser: BenchDenoiser<'_>,
    noise: &mut NoiseSource,
    device: &Device,
) -> Result<Vec<Point>, BenchError> {
    let n = x_t.len() / 2;
    let mut x = tensor_f64(x_t, device);
    let mut previous_x0: Option<Tensor<2>> = None;
    for index in 0..count.min(plan.len()) {
        let step = plan.steps[index];
        let eps = denoiser.epsilon(x.clone(), step.log_snr)?;
        let z = plan.needs_noise(index).then(|| {
            let values: Vec<f64> = noise.values(2 * n).into_iter().map(f64::from).collect();
            tensor_f64(&values, device)
        });
        let mut failed = None;
        let mut evaluate = |x: Tensor<2>, log_snr: f64| {
            denoiser.epsilon(x.clone(), log_snr).unwrap_or_else(|error| {
                failed = Some(error);
                x
            })
        };
        let out = plan.step(index, x, eps, z, previous_x0.as_ref(), &mut evaluate);
        if let Some(error) = failed {
            return Err(error);
        }
        x = out.x_prev;
        previous_x0 = Some(out.x0_pred);
    }
    Ok(points_of(&read_f64(x)?))
}

/// What the bench's runs share: the schedule, x_T, the levels, the exact reference, and whether to go on.
struct Setup<'a> {
    settings: &'a BenchSettings,
    schedule: crate::diffusion::NoiseSchedule,
    x_t: Vec<f64>,
    reference: Vec<Point>,
    keep_going: KeepGoing<'a>,
}

impl Setup<'_> {
    /// Every deterministic sampler at every step count against the reference, and every stochastic one's
    /// sliced W₂ to it, with `denoiser`.
    fn table(&self, denoiser: BenchDenoiser<'_>, device: &Device) -> Result<BenchTable, BenchError> {
        let mut curves = Vec::new();
        for method in SolverMethod::ALL {
            let mut points = Vec::new();
            for &steps in &self.settings.steps {
                check(self.keep_going)?;
                let plan = method.sampler(steps).plan(&self.schedule)?;
                let last = plan.len() - 1;
                let mut noise = NoiseSource::new(self.settings.seed);
                let x = run_plan(&plan, last, &self.x_t, denoiser, &mut noise, device)?;
                let evaluations = plan.steps[..last].iter().map(|s| 1 + usize::from(s.correction.is_some())).sum();
                points.push(error_point(steps, evaluations, &x, &self.reference));
            }
            let fit = fit_power_law(&points.iter().map(|p| (p.steps, p.error)).collect::<Vec<_>>());
            let median_fit = fit_power_law(&points.iter().map(|p| (p.steps, p.median)).collect::<Vec<_>>());
            curves.push(MethodCurve { method, points, fit, median_fit });
        }
        let mut stochastic = Vec::new();
        for method in STOCHASTIC {
            let counts = if method == Method::Ddpm { vec![self.schedule.steps()] } else { self.settings.steps.clone() };
            let mut distances = Vec::new();
            for steps in counts {
                check(self.keep_going)?;
                let plan = stochastic_sampler(method, steps).plan(&self.schedule)?;
                // The same x_T, then z from the same source as `run_particles` draws them.
                let (_, mut noise) = starting_noise(self.settings.particles, self.settings.seed);
                let x = run_plan(&plan, plan.len() - 1, &self.x_t, denoiser, &mut noise, device)?;
                let d = sliced_wasserstein(&x, &self.reference).ok_or(BenchError::NoParticles)?;
                distances.push((steps, d));
            }
            stochastic.push(StochasticRow { method, distances });
        }
        Ok(BenchTable { curves, stochastic })
    }
}

/// The first and the last positive level of the bench's spacing (σ^K), the same for every step count.
pub fn bench_levels(schedule: &crate::diffusion::NoiseSchedule) -> Result<(NoiseLevel, NoiseLevel), BenchError> {
    let levels = Sampler::ddim(2, 0.0).with_spacing(BENCH_SPACING).levels(schedule)?;
    Ok((levels[0], levels[levels.len() - 2]))
}

/// Runs the bench (module docs) on `mixture`'s exact ε*, and on `network` (with the training step it
/// reached) when given.
pub fn solver_bench(
    mixture: &GaussianMixture,
    network: Option<(&PointDenoiser, u64)>,
    settings: &BenchSettings,
    device: &Device,
) -> Result<SolverBench, BenchError> {
    solver_bench_until(mixture, network, settings, device, &always)
}

/// [`solver_bench`], asking `keep_going` before each sampler run and each evaluation of the adaptive ODEs
/// (the engine's bench stops so when a newer one replaces it): the same numbers when it runs to the end.
pub fn solver_bench_until(
    mixture: &GaussianMixture,
    network: Option<(&PointDenoiser, u64)>,
    settings: &BenchSettings,
    device: &Device,
    keep_going: KeepGoing<'_>,
) -> Result<SolverBench, BenchError> {
    settings.validate()?;
    let schedule = settings.schedule.build().map_err(LabError::from)?;
    let (first, last) = bench_levels(&schedule)?;
    let sigmas = (first.karras_sigma(), last.karras_sigma());
    let (x_t, _) = starting_noise(settings.particles, settings.seed);
    let exact = BenchDenoiser::Exact(mixture);
    let (reference, stats) = ode_solution(exact, &x_t, sigmas, REFERENCE_TOLERANCE, device, keep_going)?;
    let (halved, _) = ode_solution(exact, &x_t, sigmas, REFERENCE_TOLERANCE.tighter(2.0), device, keep_going)?;
    let (reference, halved) = (points_of(&reference), points_of(&halved));
    let info = ReferenceInfo {
        accepted: stats.accepted,
        rejected: stats.rejected,
        evaluations: stats.evaluations,
        tolerance: REFERENCE_TOLERANCE.relative,
        change_on_halving: rms_distance(&reference, &halved),
    };
    let setup = Setup { settings, schedule, x_t, reference, keep_going };
    let exact_table = setup.table(exact, device)?;
    let floor = fresh_floor(mixture, &last, &setup.reference, settings.seed)?;
    let network = match network {
        Some((model, step)) => {
            let denoiser = BenchDenoiser::Network(model);
            let (ode, _) = ode_solution(denoiser, &setup.x_t, sigmas, NETWORK_TOLERANCE, device, keep_going)?;
            let ode_error = rms_distance(&points_of(&ode), &setup.reference);
            Some(NetworkBench { table: setup.table(denoiser, device)?, ode_error, step })
        }
        None => None,
    };
    Ok(SolverBench {
        settings: settings.clone(),
        first_sigma: sigmas.0,
        last_sigma: sigmas.1,
        reference: info,
        floor,
        exact: exact_table,
        network,
    })
}

/// A table of errors: a header of step counts, then one row per method with its fitted C and p.
fn curve_table(name: &str, table: &BenchTable, steps: &[usize]) -> Vec<String> {
    let header: String = steps.iter().map(|n| format!("{:>10}", format!("N = {n}"))).collect();
    let mut lines = vec![format!("  {:<22}{header}", format!("{name}:"))];
    for c in &table.curves {
        let cells: String = c.points.iter().map(|p| format!("{:>10.2e}", p.error)).collect();
        let fit = c.fit.map_or(String::new(), |f| format!("   C = {:.3}, p = {:.2}", f.constant, f.order));
        lines.push(format!("  {:<22}{cells}{fit}", c.method.name()));
    }
    lines
}

/// The sliced W₂ of a fresh draw of q at `level` (as many points as `cloud`) to `cloud`.
fn fresh_floor(mixture: &GaussianMixture, level: &NoiseLevel, cloud: &[Point], seed: u64) -> Result<f64, BenchError> {
    use rand::SeedableRng;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed ^ 0x5017_BE4C);
    let noised = mixture.noised(level.alpha_bar, level.one_minus_alpha_bar);
    let fresh: Vec<Point> = noised.sample(cloud.len(), &mut rng).into_iter().map(|(p, _)| p).collect();
    sliced_wasserstein(&fresh, cloud).ok_or(BenchError::NoParticles)
}

impl SolverBench {
    /// `<name>: order <p>` per deterministic method with the exact ε* (what `lab2d --solver-bench` prints
    /// first).
    pub fn order_lines(&self) -> Vec<String> {
        self.exact
            .curves
            .iter()
            .map(|c| {
                format!("{}: order {}", c.method.name(), c.fit.map_or("n/a".into(), |f| format!("{:.2}", f.order)))
            })
            .collect()
    }

    /// What `lab2d --solver-bench` prints after the order lines: the reference, the error table (exact ε*
    /// and the network), the stochastic samplers' distances.
    pub fn table_lines(&self) -> Vec<String> {
        let r = &self.reference;
        let mut lines = vec![
            "(DDIM η = 0 and Euler are the same update here, x_{s'}/α_{s'} = x_s/α_s + (σ_{s'} - σ_s) ε̂: one line for both)".to_string(),
            format!(
                "exact reference: the probability-flow ODE with the exact ε*, Dormand–Prince 5(4) in f64, tolerance {:.0e}: \
                 {} steps ({} rejected), {} evaluations; halving the tolerance moves it by {:.2e} (RMS)",
                r.tolerance, r.accepted, r.rejected, r.evaluations, r.change_on_halving
            ),
            format!(
                "RMS error to it at the last positive level σ/α = {:.5} (Karras spacing from σ/α = {:.0}), error ≈ C·N^-p:",
                self.last_sigma, self.first_sigma
            ),
        ];
        lines.extend(curve_table("exact ε*", &self.exact, &self.settings.steps));
        lines.extend(self.exact.curves.iter().filter_map(MethodCurve::outlier_note).map(|n| format!("  {n}")));
        if let Some(network) = &self.network {
            lines.push(format!(
                "learned network (training step {}): its own ODE solution lies {:.3e} (RMS) from the exact one; its samplers:",
                network.step, network.ode_error
            ));
            lines.extend(curve_table("network", &network.table, &self.settings.steps));
            for method in SolverMethod::ALL {
                lines.push(match network.dominated_from(&self.exact, method) {
                    Some(n) => format!(
                        "  {}: from {n} steps the network's error ({:.1e}) is larger than the solver's with ε*",
                        method.name(),
                        network.ode_error
                    ),
                    None => {
                        format!("  {}: the solver's error stays above the network's at every step count", method.name())
                    }
                });
            }
        }
        lines.push(format!(
            "stochastic samplers, sliced W₂ of their cloud to the exact ODE's at the same level (floor, a fresh draw of q there: {:.4}):",
            self.floor
        ));
        let tables = [("exact ε*", Some(&self.exact)), ("network", self.network.as_ref().map(|n| &n.table))];
        for (name, table) in tables {
            for row in table.map_or(&[][..], |t| &t.stochastic[..]) {
                let cells: Vec<String> = row.distances.iter().map(|(n, d)| format!("{n}: {d:.4}")).collect();
                lines.push(format!("  {:<13} {:<9} {}", row.method.label(), name, cells.join("  ")));
            }
        }
        lines
    }

    /// The table as CSV: one row per denoiser, sampler and step count.
    pub fn csv(&self) -> String {
        let mut csv =
            String::from("denoiser,sampler,kind,steps,evaluations,rms_error_to_exact_ode,sliced_w2_to_exact_ode\n");
        let tables = [("exact", Some(&self.exact)), ("network", self.network.as_ref().map(|n| &n.table))];
        for (name, table) in tables {
            let Some(table) = table else { continue };
            for c in &table.curves {
                for p in &c.points {
                    csv.push_str(&format!(
                        "{name},{},deterministic,{},{},{},\n",
                        c.method.name(),
                        p.steps,
                        p.evaluations,
                        p.error
                    ));
                }
            }
            for row in &table.stochastic {
                for (steps, d) in &row.distances {
                    csv.push_str(&format!("{name},{},stochastic,{steps},,,{d}\n", row.method.name()));
                }
            }
        }
        if let Some(network) = &self.network {
            csv.push_str(&format!("network,ode (adaptive),reference,,,{},\n", network.ode_error));
        }
        csv
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab2d::data::Preset;

    #[test]
    fn the_power_law_fit_recovers_a_known_order() {
        let points: Vec<(usize, f64)> =
            [8usize, 16, 32, 64].iter().map(|&n| (n, 3.0 * (n as f64).powf(-1.5))).collect();
        let fit = fit_power_law(&points).unwrap();
        assert!((fit.order - 1.5).abs() < 1e-12 && (fit.constant - 3.0).abs() < 1e-9, "{fit:?}");
        assert!((fit.at(8.0) - points[0].1).abs() < 1e-12);
        assert_eq!(fit_power_law(&[(8, 1.0)]), None);
    }

    #[test]
    fn step_ranges_parse_as_doublings_and_bad_ones_are_refused() {
        assert_eq!(parse_step_range("8..256"), Ok(BENCH_STEPS.to_vec()));
        assert_eq!(parse_step_range("3..20"), Ok(vec![3, 6, 12]));
        assert!(parse_step_range("8-256").unwrap_err().contains("FIRST..LAST"));
        let settings = |steps: Vec<usize>| BenchSettings { steps, ..BenchSettings::default() };
        assert!(
            settings(parse_step_range("256..8").unwrap()).validate().unwrap_err().to_string().contains("at least 3")
        );
        assert!(settings(parse_step_range("0..8").unwrap()).validate().unwrap_err().to_string().contains("between 2"));
        assert!(settings(vec![8, 16, 2000]).validate().unwrap_err().to_string().contains("T = 1000"));
        assert!(settings(BENCH_STEPS.to_vec()).validate().is_ok());
    }

    /// DDIM at η = 0 and Euler plan the same update on the bench's levels, so one line stands for both.
    #[test]
    fn ddim_at_eta_zero_is_eulers_update() {
        let schedule = BetaSchedule::cosine(1000).build().unwrap();
        for steps in [8, 64] {
            let ddim = SolverMethod::DdimEuler.sampler(steps).plan(&schedule).unwrap();
            let euler = Sampler::new(Method::Euler, steps).with_spacing(BENCH_SPACING).with_clip_x0(false);
            assert_eq!(ddim, euler.plan(&schedule).unwrap());
        }
    }

    /// A step on f64 tensors is the f32 step, to f32's digits (the bench runs the samplers' own code in f64).
    #[test]
    fn a_step_on_f64_tensors_is_the_f32_step() {
        let device = Device::flex();
        let schedule = BetaSchedule::cosine(1000).build().unwrap();
        let mixture = Preset::TwoGaussians.mixture();
        let denoiser = BenchDenoiser::Exact(&mixture);
        let (x_t, _) = starting_noise(16, 3);
        for method in SolverMethod::ALL {
            let plan = method.sampler(10).plan(&schedule).unwrap();
            let ours = run_plan(&plan, 5, &x_t, denoiser, &mut NoiseSource::new(0), &device).unwrap();
            // The same five steps on f32 tensors, ε* rounded to f32.
            let mut x =
                Tensor::<2>::from_data(TensorData::new(x_t.iter().map(|v| *v as f32).collect(), [16, 2]), &device);
            let eps32 = |x: Tensor<2>, log_snr: f64| {
                denoiser.epsilon(x.cast(FloatDType::F64), log_snr).unwrap().cast(FloatDType::F32)
            };
            let mut previous: Option<Tensor<2>> = None;
            for index in 0..5 {
                let eps = eps32(x.clone(), plan.steps[index].log_snr);
                let mut evaluate = |x: Tensor<2>, l: f64| eps32(x, l);
                let out = plan.step(index, x, eps, None, previous.as_ref(), &mut evaluate);
                assert_eq!(out.x_prev.dtype(), DType::F32);
                (x, previous) = (out.x_prev, Some(out.x0_pred));
            }
            let theirs = points_of(&crate::model::read_f32(x).unwrap().into_iter().map(f64::from).collect::<Vec<_>>());
            let d = rms_distance(&ours, &theirs);
            assert!(d < 1e-5 && d > 0.0, "{}: f64 vs f32 steps differ by {d}", method.name());
        }
    }

    /// With the exact ε*, the reference converges (halving its tolerance moves it by less than a tenth of
    /// the smallest sampler error it measures) and the fitted orders are DDIM/Euler's 1 and Heun's and
    /// DPM++ 2M's 2, within 0.4; the stochastic samplers land near the floor at many steps.
    #[test]
    fn the_exact_reference_converges_and_the_orders_are_the_theorys() {
        let device = Device::flex();
        let mixture = Preset::TwoGaussians.mixture();
        let settings = BenchSettings { particles: 100, ..BenchSettings::default() };
        let bench = solver_bench(&mixture, None, &settings, &device).unwrap();
        let smallest = bench.exact.smallest_error();
        assert!(
            bench.reference.change_on_halving < 0.1 * smallest,
            "reference moved {} on halving its tolerance; smallest sampler error {smallest}",
            bench.reference.change_on_halving
        );
        for curve in &bench.exact.curves {
            let order = curve.fit.unwrap().order;
            let expected = curve.method.expected_order();
            assert!(
                (order - expected).abs() < 0.4,
                "{}: order {order} (expected {expected}): {:?}",
                curve.method.name(),
                curve.points
            );
        }
        assert!(bench.first_sigma > 79.0 && bench.last_sigma < 0.02, "{} .. {}", bench.first_sigma, bench.last_sigma);
        assert!(bench.exact.curves.iter().all(|c| c.outlier_note().is_none()), "{:?}", bench.exact.curves);
    }

    /// A bench whose `keep_going` says stop ends with `Cancelled`, wherever it is: before its first ODE
    /// evaluation, or in the middle of its sampler runs (after the reference's many evaluations).
    #[test]
    fn a_bench_told_to_stop_ends_cancelled() {
        let device = Device::flex();
        let mixture = Preset::TwoGaussians.mixture();
        let settings = BenchSettings { particles: 20, ..BenchSettings::default() };
        let cancelled = |error: BenchError| matches!(error, BenchError::Lab(LabError::Cancelled));
        let never = solver_bench_until(&mixture, None, &settings, &device, &|| false);
        assert!(never.is_err_and(cancelled));
        let asked = std::cell::Cell::new(0usize);
        let full = solver_bench_until(&mixture, None, &settings, &device, &|| {
            asked.set(asked.get() + 1);
            true
        });
        let whole = asked.get();
        assert_eq!(full.unwrap(), solver_bench(&mixture, None, &settings, &device).unwrap(), "the same numbers");
        asked.set(0);
        let later = solver_bench_until(&mixture, None, &settings, &device, &|| {
            asked.set(asked.get() + 1);
            asked.get() < whole - 5
        });
        assert!(later.is_err_and(cancelled), "stopped {} questions before the end", 5);
    }

    /// On the two moons (24 small blobs per moon), DDIM/Euler's error at 256 steps still sends a few
    /// particles into a neighbouring blob: they dominate its RMS error, the bench says so, and the median
    /// particle's error falls with order 1 all the same.
    #[test]
    fn on_the_moons_a_few_particles_dominate_eulers_rms_error_and_the_bench_says_so() {
        let device = Device::flex();
        let settings = BenchSettings { particles: 200, ..BenchSettings::default() };
        let bench = solver_bench(&Preset::Moons.mixture(), None, &settings, &device).unwrap();
        let euler = bench.exact.curve(SolverMethod::DdimEuler).unwrap();
        let note = euler.outlier_note().expect("a note on the particles that changed blob");
        assert!(note.contains("another blob"), "{note}");
        let median = euler.median_fit.unwrap().order;
        assert!((median - 1.0).abs() < 0.3, "the median particle's order {median}");
        let last = euler.points.last().unwrap();
        assert!(last.max > 20.0 * last.median, "{last:?}");
        assert!(bench.table_lines().iter().any(|l| l.contains(&note)));
    }
}
