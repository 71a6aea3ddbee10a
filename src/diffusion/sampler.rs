//! The reverse process: every sampler the app offers, as one update over noise levels.
//!
//! A sampler visits noise levels from pure noise down to the clean image. A level is a timestep of the
//! schedule (ᾱ_t) or, for Karras spacing, any σ between the schedule's ends (ᾱ = 1 / (1 + σ²)); the network
//! is conditioned on λ = ln(ᾱ / (1 - ᾱ)), so it can be asked at any level. Every step, planned once in f64,
//! is one update from level s to the next level s' (0 = the clean image):
//!
//!   x̂_0    = (x_s - sqrt(1 - ᾱ_s) ε) / sqrt(ᾱ_s)             (clipped to the data range if asked)
//!   x_{s'} = c_x0 x̂_0 + c_prev x̂_0^prev + c_xt x_s + c_eps ε̂ + σ z,   z ~ N(0, I)
//!
//! where ε̂ is ε recomputed from the clipped x̂_0 and x̂_0^prev is the previous step's prediction.
//! Writing α = sqrt(ᾱ), σ_s = sqrt(1 - ᾱ_s), and Karras et al.'s σ^K = σ_s / α_s (x / α = x_0 + σ^K ε), each
//! method fills in the coefficients in a file of its own: `ddim.rs` (DDPM, DDIM, and Euler and Euler
//! ancestral, which are DDIM at η = 0 and 1), `heun.rs` (Heun's second evaluation, [`Correction`]) and
//! `dpm_solver.rs` (DPM-Solver++(2M) and its SDE variant, which use x̂_0^prev).

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::schedule::NoiseSchedule;
use super::{ddim, dpm_solver, heun};

/// The variance of each DDPM step. Ho et al. found both give similar samples.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DdpmVariance {
    /// σ_t² = β_t: the upper bound, right when x_0 ~ N(0, I).
    Beta,
    /// σ_t² = β̃_t: the lower bound, right when x_0 is a point mass; the posterior variance.
    #[default]
    BetaTilde,
}

/// Which update rule a sampler uses (see the module's documentation for each one's formula).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Method {
    #[serde(rename = "ddpm")]
    Ddpm,
    #[serde(rename = "ddim")]
    Ddim,
    #[serde(rename = "euler")]
    Euler,
    #[serde(rename = "euler-a")]
    EulerAncestral,
    #[serde(rename = "heun")]
    Heun,
    #[serde(rename = "dpmpp-2m")]
    DpmSolver2M,
    #[serde(rename = "dpmpp-2m-sde")]
    DpmSolver2MSde,
}

impl Method {
    pub const ALL: [Method; 7] = [
        Method::Ddpm,
        Method::Ddim,
        Method::Euler,
        Method::EulerAncestral,
        Method::Heun,
        Method::DpmSolver2M,
        Method::DpmSolver2MSde,
    ];

    /// The name on the command line and in saved settings.
    pub fn name(self) -> &'static str {
        match self {
            Method::Ddpm => "ddpm",
            Method::Ddim => "ddim",
            Method::Euler => "euler",
            Method::EulerAncestral => "euler-a",
            Method::Heun => "heun",
            Method::DpmSolver2M => "dpmpp-2m",
            Method::DpmSolver2MSde => "dpmpp-2m-sde",
        }
    }

    /// The name people know from diffusers and AUTOMATIC1111.
    pub fn label(self) -> &'static str {
        match self {
            Method::Ddpm => "DDPM",
            Method::Ddim => "DDIM",
            Method::Euler => "Euler",
            Method::EulerAncestral => "Euler a",
            Method::Heun => "Heun",
            Method::DpmSolver2M => "DPM++ 2M",
            Method::DpmSolver2MSde => "DPM++ 2M SDE",
        }
    }

    /// Whether the number of sampling steps is a choice (DDPM visits every timestep).
    pub fn has_steps(self) -> bool {
        self != Method::Ddpm
    }

    /// Network evaluations (per image, guidance aside) of `steps` steps.
    pub fn evaluations(self, steps: usize) -> usize {
        match self {
            Method::Heun => (2 * steps).saturating_sub(1),
            _ => steps,
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}

impl std::str::FromStr for Method {
    type Err = SamplerError;

    /// A name ("dpmpp-2m") or a label ("DPM++ 2M"), any case, `_` for `-`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace('_', "-");
        Method::ALL
            .into_iter()
            .find(|m| m.name() == wanted || m.label().to_ascii_lowercase() == wanted)
            .ok_or_else(|| SamplerError::UnknownMethod(s.to_owned()))
    }
}

/// Where the sampling steps sit among the schedule's timesteps (as diffusers' `timestep_spacing`), or
/// Karras et al.'s σ spacing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Spacing {
    /// t = T, T - T/N, ..., rounded: the first step starts from pure noise (Lin et al. 2024).
    #[default]
    Trailing,
    /// t = 1 + k ⌊T/N⌋ (k = N-1 .. 0): diffusers' `leading` with `steps_offset` 0 (Stable Diffusion's
    /// configuration sets offset 1, one timestep later); the first step starts below T.
    Leading,
    /// N timesteps evenly from T to 1, rounded.
    Linspace,
    /// σ^K_i = (σ_max^{1/ρ} + i/(N-1) (σ_min^{1/ρ} - σ_max^{1/ρ}))^ρ, ρ = 7, between the schedule's σ^K at
    /// t = T and t = 1 (Karras et al. 2022, eq. 5): more steps at low noise.
    Karras,
}

impl Spacing {
    pub const ALL: [Spacing; 4] = [Spacing::Trailing, Spacing::Leading, Spacing::Linspace, Spacing::Karras];

    pub fn name(self) -> &'static str {
        match self {
            Spacing::Trailing => "trailing",
            Spacing::Leading => "leading",
            Spacing::Linspace => "linspace",
            Spacing::Karras => "karras",
        }
    }
}

impl std::str::FromStr for Spacing {
    type Err = SamplerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Spacing::ALL
            .into_iter()
            .find(|x| x.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| SamplerError::UnknownSpacing(s.to_owned()))
    }
}

/// ρ of Karras et al.'s spacing (their eq. 5; 7 is their and everyone's choice).
pub const KARRAS_RHO: f64 = 7.0;

/// The highest σ^K Karras spacing starts from (Karras et al. 2022 use 80). The cosine schedule reaches
/// σ^K = 2·10⁴ at t = T; spaced from there, half of 10 steps fall where the image is still pure noise and
/// the last ones jump over the details (σ^K 3.6 -> 0.3 -> 0.006). Above 80 the signal is below 1.3 % of
/// x_t, so starting there from pure noise changes nothing but where the steps go.
pub const KARRAS_SIGMA_MAX: f64 = 80.0;

/// A sampler and its settings: the one description of "how to sample" from the command line and the
/// window to the engine, and what a PNG's settings record.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sampler {
    pub method: Method,
    /// Sampling steps (DDPM ignores it: it visits every timestep).
    pub steps: usize,
    #[serde(default)]
    pub spacing: Spacing,
    /// DDIM's η in [0, 1]: 0 deterministic, 1 as noisy as DDPM.
    #[serde(default)]
    pub eta: f64,
    #[serde(default)]
    pub ddpm_variance: DdpmVariance,
    /// Clip x̂_0 to the data range ([-1, 1] for pixels; a latent model widens it with
    /// [`SamplingPlan::with_x0_bound`]).
    pub clip_x0: bool,
}

impl Default for Sampler {
    fn default() -> Self {
        Self::ddpm(DdpmVariance::BetaTilde)
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SamplerError {
    #[error("{method} steps must be between 1 and the schedule's {max} steps, got {steps}")]
    Steps { method: Method, steps: usize, max: usize },
    #[error("DDIM eta must be in [0, 1], got {0}")]
    Eta(f64),
    #[error("unknown sampler `{0}`: use one of ddpm, ddim, euler, euler-a, heun, dpmpp-2m, dpmpp-2m-sde")]
    UnknownMethod(String),
    #[error("unknown timestep spacing `{0}`: use trailing, leading, linspace or karras")]
    UnknownSpacing(String),
    #[error("strength must be in [0, 1], got {0}")]
    Strength(f64),
}

impl Sampler {
    /// `method` over `steps` steps, trailing spacing, x̂_0 clipped.
    pub fn new(method: Method, steps: usize) -> Self {
        Self {
            method,
            steps,
            spacing: Spacing::Trailing,
            eta: 0.0,
            ddpm_variance: DdpmVariance::BetaTilde,
            clip_x0: true,
        }
    }

    pub fn ddpm(variance: DdpmVariance) -> Self {
        Self { ddpm_variance: variance, ..Self::new(Method::Ddpm, 0) }
    }

    pub fn ddim(steps: usize, eta: f64) -> Self {
        Self { eta, ..Self::new(Method::Ddim, steps) }
    }

    pub fn with_clip_x0(self, clip_x0: bool) -> Self {
        Self { clip_x0, ..self }
    }

    pub fn with_spacing(self, spacing: Spacing) -> Self {
        Self { spacing, ..self }
    }

    /// Short human name, e.g. "DDPM (σ² = β̃)", "DDIM 50 steps, η = 0" or "DPM++ 2M 20 steps, karras".
    pub fn label(&self) -> String {
        let spacing = match self.spacing {
            Spacing::Trailing => String::new(),
            other => format!(", {}", other.name()),
        };
        match self.method {
            Method::Ddpm if self.ddpm_variance == DdpmVariance::Beta => "DDPM (σ² = β)".into(),
            Method::Ddpm => "DDPM (σ² = β̃)".into(),
            Method::Ddim => format!("DDIM {} steps, η = {}{spacing}", self.steps, self.eta),
            method => format!("{method} {} steps{spacing}", self.steps),
        }
    }

    /// Network evaluations per image (guidance aside) over a schedule of `schedule_steps`.
    pub fn evaluations(&self, schedule_steps: usize) -> usize {
        match self.method {
            Method::Ddpm => schedule_steps,
            method => method.evaluations(self.steps),
        }
    }

    pub fn validate(&self, schedule_steps: usize) -> Result<(), SamplerError> {
        if self.method.has_steps() && (self.steps == 0 || self.steps > schedule_steps) {
            return Err(SamplerError::Steps { method: self.method, steps: self.steps, max: schedule_steps });
        }
        if self.method == Method::Ddim && !(0.0..=1.0).contains(&self.eta) {
            return Err(SamplerError::Eta(self.eta));
        }
        Ok(())
    }

    /// The noise levels visited, from the noisiest to the clean image (steps + 1 of them).
    pub fn levels(&self, schedule: &NoiseSchedule) -> Result<Vec<NoiseLevel>, SamplerError> {
        self.validate(schedule.steps())?;
        let big_t = schedule.steps();
        if self.method == Method::Ddpm {
            return Ok((0..=big_t).rev().map(|t| NoiseLevel::at(schedule, t)).collect());
        }
        let n = self.steps;
        // As numpy computes them in diffusers (banker's rounding included), so that steps land alike.
        let timesteps: Vec<usize> = match self.spacing {
            Spacing::Trailing => {
                let ratio = big_t as f64 / n as f64;
                (0..n).map(|k| (big_t as f64 - k as f64 * ratio).round_ties_even() as usize).collect()
            }
            Spacing::Leading => (0..n).rev().map(|k| k * (big_t / n) + 1).collect(),
            Spacing::Linspace => {
                let step = if n > 1 { (big_t - 1) as f64 / (n - 1) as f64 } else { 0.0 };
                (0..n).rev().map(|k| (k as f64 * step).round_ties_even() as usize + 1).collect()
            }
            Spacing::Karras => {
                let sigma = |t: usize| NoiseLevel::at(schedule, t).karras_sigma();
                let max = sigma(big_t).min(KARRAS_SIGMA_MAX).powf(1.0 / KARRAS_RHO);
                let min = sigma(1).min(KARRAS_SIGMA_MAX).powf(1.0 / KARRAS_RHO);
                let ramp = |i: usize| if n > 1 { i as f64 / (n - 1) as f64 } else { 0.0 };
                let mut levels: Vec<NoiseLevel> = (0..n)
                    .map(|i| NoiseLevel::from_karras_sigma(schedule, (max + ramp(i) * (min - max)).powf(KARRAS_RHO)))
                    .collect();
                levels.push(NoiseLevel::CLEAN);
                return Ok(levels);
            }
        };
        Ok(timesteps.into_iter().chain([0]).map(|t| NoiseLevel::at(schedule, t)).collect())
    }

    /// The levels visited and the coefficients of each step.
    pub fn plan(&self, schedule: &NoiseSchedule) -> Result<SamplingPlan, SamplerError> {
        Ok(self.plan_over(schedule, &self.levels(schedule)?))
    }

    /// Image-to-image at `strength` in [0, 1] (SDEdit, Meng et al. 2022, as diffusers' img2img counts it):
    /// the last ⌊N · strength⌋ of the N steps, planned afresh from where they start (so a multistep
    /// solver's first step is first order again), and the level they start from. Strength 0 is no step:
    /// the image stays as it is; strength 1 is the whole run.
    pub fn plan_from_strength(
        &self,
        schedule: &NoiseSchedule,
        strength: f64,
    ) -> Result<(SamplingPlan, NoiseLevel), SamplerError> {
        if !(0.0..=1.0).contains(&strength) {
            return Err(SamplerError::Strength(strength));
        }
        let levels = self.levels(schedule)?;
        let n = levels.len() - 1;
        let kept = ((n as f64 * strength).floor() as usize).min(n);
        let levels = &levels[n - kept..];
        Ok((self.plan_over(schedule, levels), levels[0]))
    }

    /// The steps from `from` (a level a run reached, e.g. the step a branch continues from) to the clean
    /// image, planned afresh: `steps` of them (at most one per timestep below `from`), Karras spacing
    /// between `from`'s σ and the schedule's smallest, every other spacing evenly over the timesteps
    /// below `from` (trailing: leading and linspace differ only in where the top step of a whole run sits,
    /// and here the top is `from` itself); DDPM visits every timestep from `from`'s (the nearest one, for a
    /// level between timesteps: DDPM's steps are the schedule's own). A multistep solver's first step
    /// is first order (nothing before it). From the clean image: no step.
    pub fn plan_from_level(&self, schedule: &NoiseSchedule, from: NoiseLevel) -> Result<SamplingPlan, SamplerError> {
        self.validate(schedule.steps())?;
        if from.alpha_bar >= 1.0 || from.t == 0 {
            return Ok(self.plan_over(schedule, &[from]));
        }
        let top = from.t.min(schedule.steps());
        let below: Vec<NoiseLevel> = match (self.method, self.spacing) {
            (Method::Ddpm, _) => (1..top).rev().map(|t| NoiseLevel::at(schedule, t)).collect(),
            (_, Spacing::Karras) => {
                let n = self.steps.min(top);
                let max = from.karras_sigma().min(KARRAS_SIGMA_MAX).powf(1.0 / KARRAS_RHO);
                let min = NoiseLevel::at(schedule, 1).karras_sigma().powf(1.0 / KARRAS_RHO);
                // The ramp's first point is `from` itself; a σ at or above it would be a step backwards.
                (1..n)
                    .map(|i| {
                        NoiseLevel::from_karras_sigma(
                            schedule,
                            (max + i as f64 / (n - 1) as f64 * (min - max)).powf(KARRAS_RHO),
                        )
                    })
                    .filter(|level| level.log_snr > from.log_snr)
                    .collect()
            }
            _ => {
                let n = self.steps.min(top);
                let ratio = top as f64 / n as f64;
                (1..n)
                    .map(|k| NoiseLevel::at(schedule, (top as f64 - k as f64 * ratio).round_ties_even() as usize))
                    .collect()
            }
        };
        let levels: Vec<NoiseLevel> = [from].into_iter().chain(below).chain([NoiseLevel::CLEAN]).collect();
        Ok(self.plan_over(schedule, &levels))
    }

    fn plan_over(&self, schedule: &NoiseSchedule, levels: &[NoiseLevel]) -> SamplingPlan {
        let steps = (0..levels.len() - 1)
            .map(|k| {
                let (from, to) = (levels[k], levels[k + 1]);
                // DPM-Solver's second-order steps need the previous step's length in λ.
                let previous = (k > 0).then(|| levels[k - 1]);
                match self.method {
                    Method::Ddpm => ddim::ddpm_step(schedule, from.t, self.ddpm_variance),
                    Method::Ddim => ddim::ddim_step(from, to, self.eta),
                    Method::Euler => ddim::ddim_step(from, to, 0.0),
                    Method::EulerAncestral => ddim::ddim_step(from, to, 1.0),
                    Method::Heun => heun::heun_step(from, to),
                    Method::DpmSolver2M => dpm_solver::dpm_solver_step(previous, from, to, false),
                    Method::DpmSolver2MSde => dpm_solver::dpm_solver_step(previous, from, to, true),
                }
            })
            .collect();
        SamplingPlan { steps, clip_x0: self.clip_x0, x0_bound: 1.0 }
    }
}

/// Reads a sampler as saved now, or as PNGs of earlier versions saved it
/// (`{"kind": {"sampler": "ddim", "eta": 0, "steps": 50}, "clip_x0": true}`).
pub fn sampler_current_or_legacy<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Sampler, D::Error> {
    #[derive(Deserialize)]
    #[serde(tag = "sampler", rename_all = "snake_case")]
    enum LegacyKind {
        Ddpm { variance: DdpmVariance },
        Ddim { eta: f64, steps: usize },
    }
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum AnySampler {
        Current(Sampler),
        Legacy { kind: LegacyKind, clip_x0: bool },
    }
    Ok(match AnySampler::deserialize(deserializer)? {
        AnySampler::Current(sampler) => sampler,
        AnySampler::Legacy { kind: LegacyKind::Ddpm { variance }, clip_x0 } => {
            Sampler::ddpm(variance).with_clip_x0(clip_x0)
        }
        AnySampler::Legacy { kind: LegacyKind::Ddim { eta, steps }, clip_x0 } => {
            Sampler::ddim(steps, eta).with_clip_x0(clip_x0)
        }
    })
}

/// A point of the reverse process: a timestep of the schedule, or a σ between two (Karras spacing).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NoiseLevel {
    /// The timestep (of the schedule) at or nearest this level, for display: 0 = the clean image.
    pub t: usize,
    pub alpha_bar: f64,
    /// 1 - ᾱ, kept apart for its digits near the clean end.
    pub one_minus_alpha_bar: f64,
    /// λ = ln(ᾱ / (1 - ᾱ)); +∞ for the clean image.
    pub log_snr: f64,
}

impl NoiseLevel {
    pub const CLEAN: NoiseLevel = NoiseLevel { t: 0, alpha_bar: 1.0, one_minus_alpha_bar: 0.0, log_snr: f64::INFINITY };

    /// Timestep `t` of the schedule (0 = the clean image).
    pub fn at(schedule: &NoiseSchedule, t: usize) -> Self {
        match t {
            0 => Self::CLEAN,
            t => Self {
                t,
                alpha_bar: schedule.alpha_bar[t - 1],
                one_minus_alpha_bar: schedule.one_minus_alpha_bar[t - 1],
                log_snr: schedule.log_snr[t - 1],
            },
        }
    }

    /// The level of Karras et al.'s σ^K = sqrt((1 - ᾱ) / ᾱ), shown as the schedule's timestep nearest in λ.
    pub fn from_karras_sigma(schedule: &NoiseSchedule, sigma: f64) -> Self {
        let log_snr = -2.0 * sigma.ln();
        // λ falls with t: the first timestep at or below λ, or the one before it, is the nearest.
        let after = schedule.log_snr.partition_point(|l| *l > log_snr);
        let nearest = [after.saturating_sub(1), after.min(schedule.steps() - 1)]
            .into_iter()
            .min_by(|a, b| (schedule.log_snr[*a] - log_snr).abs().total_cmp(&(schedule.log_snr[*b] - log_snr).abs()))
            .unwrap_or(0);
        let sigma2 = sigma * sigma;
        Self { t: nearest + 1, alpha_bar: 1.0 / (1.0 + sigma2), one_minus_alpha_bar: sigma2 / (1.0 + sigma2), log_snr }
    }

    /// α = sqrt(ᾱ), the signal's coefficient in x = α x_0 + σ ε.
    pub fn alpha(&self) -> f64 {
        self.alpha_bar.sqrt()
    }

    /// σ = sqrt(1 - ᾱ), the noise's coefficient.
    pub fn sigma(&self) -> f64 {
        self.one_minus_alpha_bar.sqrt()
    }

    /// Karras et al.'s σ^K = σ / α: the noise level of x / α = x_0 + σ^K ε.
    pub fn karras_sigma(&self) -> f64 {
        (self.one_minus_alpha_bar / self.alpha_bar).sqrt()
    }

    /// DPM-Solver's λ = ln(α / σ), half the log-SNR.
    pub(super) fn half_log_snr(&self) -> f64 {
        0.5 * self.log_snr
    }
}

/// One planned update from level `t` to `t_prev` (0 = the clean image).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlannedStep {
    /// Timesteps of the two levels (nearest ones for Karras spacing), for display.
    pub t: usize,
    pub t_prev: usize,
    pub alpha_bar: f64,
    pub one_minus_alpha_bar: f64,
    pub alpha_bar_prev: f64,
    pub one_minus_alpha_bar_prev: f64,
    /// λ at this step's level, what the network is conditioned on.
    pub log_snr: f64,
    /// λ at the level the step ends on (+∞ for the clean image).
    pub log_snr_prev: f64,
    pub coef_x0: f64,
    /// The coefficient of the previous step's x̂_0 (multistep solvers).
    pub coef_x0_prev: f64,
    pub coef_xt: f64,
    pub coef_eps: f64,
    /// σ, the standard deviation of the fresh noise added by this step.
    pub noise_std: f64,
    /// Heun's second evaluation, at the point the first-order update reached.
    pub correction: Option<Correction>,
    /// DPM-Solver++(2M)'s own numbers (h, r, the weight of D), from which `coef_x0` and `coef_x0_prev`
    /// were made; `None` for other methods and for its last step into σ = 0 (x_{t'} = x̂_0).
    pub multistep: Option<Multistep>,
}

/// The numbers of a DPM-Solver++(2M) step, kept beside the coefficients they made so that what "This step"
/// prints is what the step used: c_x0 = w (1 + 1/(2r)), c_prev = -w / (2r), or c_x0 = w on a first-order
/// step (no r).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Multistep {
    /// h = λ_D(t') - λ_D(t), the step's length in half log-SNR λ_D = ln(α/σ).
    pub h: f64,
    /// r = h_prev / h, the previous step's length over this one's; `None` on a first-order step (a plan's
    /// first step, where no x̂_0 came before).
    pub r: Option<f64>,
    /// w, the weight of D: α_{t'} (1 - e^{-h}) for the ODE, α_{t'} (1 - e^{-2h}) for the SDE.
    pub weight: f64,
}

impl Multistep {
    /// 1 + 1/(2r), the factor of this step's x̂_0 in D (1 on a first-order step).
    pub fn d_scale(&self) -> f64 {
        self.r.map_or(1.0, |r| 1.0 + 0.5 / r)
    }
}

/// x_{s'} = c_xt x_s + c_eps (ε̂ + ε̂') / 2, with ε̂' the network's ε at level s' (of ᾱ `alpha_bar`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Correction {
    pub alpha_bar: f64,
    pub one_minus_alpha_bar: f64,
    pub log_snr: f64,
    pub coef_xt: f64,
    pub coef_eps: f64,
}

impl PlannedStep {
    /// The level this step starts from.
    pub fn level(&self) -> NoiseLevel {
        NoiseLevel {
            t: self.t,
            alpha_bar: self.alpha_bar,
            one_minus_alpha_bar: self.one_minus_alpha_bar,
            log_snr: self.log_snr,
        }
    }

    /// The level this step ends on.
    pub fn level_prev(&self) -> NoiseLevel {
        NoiseLevel {
            t: self.t_prev,
            alpha_bar: self.alpha_bar_prev,
            one_minus_alpha_bar: self.one_minus_alpha_bar_prev,
            log_snr: self.log_snr_prev,
        }
    }

    /// A step from `from` to `to` with no coefficients yet.
    pub(super) fn between(from: NoiseLevel, to: NoiseLevel) -> Self {
        Self {
            t: from.t,
            t_prev: to.t,
            alpha_bar: from.alpha_bar,
            one_minus_alpha_bar: from.one_minus_alpha_bar,
            alpha_bar_prev: to.alpha_bar,
            one_minus_alpha_bar_prev: to.one_minus_alpha_bar,
            log_snr: from.log_snr,
            log_snr_prev: to.log_snr,
            coef_x0: 0.0,
            coef_x0_prev: 0.0,
            coef_xt: 0.0,
            coef_eps: 0.0,
            noise_std: 0.0,
            correction: None,
            multistep: None,
        }
    }
}

/// What one reverse step produces.
#[derive(Clone, Debug)]
pub struct StepOutput<const D: usize> {
    /// x_{t'}, the input of the next step.
    pub x_prev: Tensor<D>,
    /// x̂_0, the clean image the network's ε implies at this step.
    pub x0_pred: Tensor<D>,
    /// Heun's second evaluation as the network returned it, at the point the Euler step reached: what
    /// [`SamplingPlan::terms`] needs to take the step apart again without the network.
    pub eps_second: Option<Tensor<D>>,
}

/// A sampler laid out over a schedule: every step's timestep and coefficients.
#[derive(Clone, Debug, PartialEq)]
pub struct SamplingPlan {
    pub steps: Vec<PlannedStep>,
    pub clip_x0: bool,
    /// Clipping keeps x̂_0 in [-x0_bound, x0_bound]: 1 for pixels; wider for an autoencoder's latents.
    pub x0_bound: f64,
}

impl SamplingPlan {
    /// The same plan for data in [-bound, bound].
    ///
    /// Why clipping matters: at t = T the schedules leave ᾱ_T tiny (2.4e-9 for the cosine one), so
    /// x̂_0 = (x_T - sqrt(1 - ᾱ_T) ε̂) / sqrt(ᾱ_T) multiplies the network's error by 1 / sqrt(ᾱ_T); without a
    /// bound the first steps throw x̂_0 thousands of units off and later steps cannot bring it back.
    pub fn with_x0_bound(self, bound: f64) -> Self {
        Self { x0_bound: bound, ..self }
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// The level a run of this plan is at after `k` steps (0: where it starts). `None` past the end or
    /// for a plan of no steps.
    pub fn level_after(&self, k: usize) -> Option<NoiseLevel> {
        match k {
            0 => self.steps.first().map(PlannedStep::level),
            k => self.steps.get(k - 1).map(PlannedStep::level_prev),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Whether step `i` adds fresh noise (and so needs a `noise` tensor).
    pub fn needs_noise(&self, i: usize) -> bool {
        self.steps[i].noise_std > 0.0
    }

    /// Whether steps use the previous step's x̂_0 (multistep solvers), which the caller then passes on.
    pub fn uses_previous_x0(&self) -> bool {
        self.steps.iter().any(|s| s.coef_x0_prev != 0.0)
    }

    /// Network evaluations of the whole plan (per image, guidance aside).
    pub fn evaluations(&self) -> usize {
        self.steps.iter().map(|s| 1 + usize::from(s.correction.is_some())).sum()
    }

    /// The predicted clean image x̂_0 = (x_t - sqrt(1 - ᾱ_t) ε) / sqrt(ᾱ_t) at step `i`, clipped if the plan says so.
    pub fn predict_x0<const D: usize>(&self, i: usize, x_t: Tensor<D>, eps: Tensor<D>) -> Tensor<D> {
        let step = &self.steps[i];
        self.x0_at(step.alpha_bar, step.one_minus_alpha_bar, x_t, eps)
    }

    fn x0_at<const D: usize>(
        &self,
        alpha_bar: f64,
        one_minus_alpha_bar: f64,
        x_t: Tensor<D>,
        eps: Tensor<D>,
    ) -> Tensor<D> {
        self.clip(x0_unclipped(alpha_bar, one_minus_alpha_bar, x_t, eps))
    }

    /// x̂_0 clipped to [-bound, bound] when the plan clips.
    fn clip<const D: usize>(&self, x0: Tensor<D>) -> Tensor<D> {
        if self.clip_x0 { x0.clamp(-self.x0_bound, self.x0_bound) } else { x0 }
    }

    /// Heun's ε̂' at the point the Euler step reached (consistent with its clipped x̂_0, as ε̂ is).
    fn second_evaluation<const D: usize>(
        &self,
        c: Correction,
        point: Tensor<D>,
        evaluate: &mut dyn FnMut(Tensor<D>, f64) -> Tensor<D>,
    ) -> Tensor<D> {
        let eps_next = evaluate(point.clone(), c.log_snr);
        let x0_next = self.x0_at(c.alpha_bar, c.one_minus_alpha_bar, point.clone(), eps_next.clone());
        self.eps_at(c.alpha_bar, c.one_minus_alpha_bar, point, &x0_next, eps_next)
    }

    /// ε̂ consistent with the (possibly clipped) x̂_0: ε̂ = (x_t - sqrt(ᾱ_t) x̂_0) / sqrt(1 - ᾱ_t).
    fn eps_at<const D: usize>(
        &self,
        alpha_bar: f64,
        one_minus_alpha_bar: f64,
        x_t: Tensor<D>,
        x0: &Tensor<D>,
        eps: Tensor<D>,
    ) -> Tensor<D> {
        if self.clip_x0 {
            x_t.sub(x0.clone().mul_scalar(alpha_bar.sqrt())).mul_scalar(1.0 / one_minus_alpha_bar.sqrt())
        } else {
            eps
        }
    }

    /// Step `i` of the plan: from x_t and the network's ε to x_{t'}. `noise` is z ~ N(0, I) of x_t's shape
    /// (with `None` the step returns its mean); `previous_x0` is the x̂_0 the step before returned (needed
    /// when [`Self::uses_previous_x0`]); `evaluate(x, λ)` is the network, for Heun's second evaluation.
    pub fn step<const D: usize>(
        &self,
        i: usize,
        x_t: Tensor<D>,
        eps: Tensor<D>,
        noise: Option<Tensor<D>>,
        previous_x0: Option<&Tensor<D>>,
        evaluate: &mut dyn FnMut(Tensor<D>, f64) -> Tensor<D>,
    ) -> StepOutput<D> {
        let step = self.steps[i];
        let x0_pred = self.predict_x0(i, x_t.clone(), eps.clone());
        let mut x_prev = x0_pred.clone().mul_scalar(step.coef_x0);
        if let Some(previous) = previous_x0.filter(|_| step.coef_x0_prev != 0.0) {
            x_prev = x_prev.add(previous.clone().mul_scalar(step.coef_x0_prev));
        }
        if step.coef_xt != 0.0 {
            x_prev = x_prev.add(x_t.clone().mul_scalar(step.coef_xt));
        }
        let needs_eps_hat = step.coef_eps != 0.0 || step.correction.is_some();
        let eps_hat =
            needs_eps_hat.then(|| self.eps_at(step.alpha_bar, step.one_minus_alpha_bar, x_t.clone(), &x0_pred, eps));
        if let Some(eps_hat) = eps_hat.clone().filter(|_| step.coef_eps != 0.0) {
            x_prev = x_prev.add(eps_hat.mul_scalar(step.coef_eps));
        }
        if let Some(z) = noise.filter(|_| step.noise_std > 0.0) {
            x_prev = x_prev.add(z.mul_scalar(step.noise_std));
        }
        let mut eps_second = None;
        if let (Some(c), Some(eps_hat)) = (step.correction, eps_hat) {
            let mut recording = |x: Tensor<D>, log_snr: f64| {
                let eps = evaluate(x, log_snr);
                eps_second = Some(eps.clone());
                eps
            };
            let eps_next = self.second_evaluation(c, x_prev, &mut recording);
            x_prev = x_t.mul_scalar(c.coef_xt).add(eps_hat.add(eps_next).mul_scalar(c.coef_eps));
        }
        StepOutput { x_prev, x0_pred, eps_second }
    }
}

impl SamplingPlan {
    /// Step `i` with CFG++'s renoising (Chung et al. 2024): x̂_0 from the guided `eps` as [`Self::step`]
    /// makes it (clipped if the plan clips), but the ε̂ that renoises it is `renoise` (the unconditional
    /// ε̂_∅), and the x_t the update keeps is the point x̂_0 and ε̂_∅ make, x̃_t = α x̂_0 + σ ε̂_∅:
    ///   DDIM (Euler a: η = 1)  x_{t'} = α' x̂_0 + sqrt(1 - ᾱ' - s²) ε̂_∅ + s z
    ///   DPM++ 2M               x_{t'} = (σ'/σ) x̃_t + c_x0 x̂_0 + c_prev x̂_0^prev
    ///                                 = α' x̂_0 + σ' ε̂_∅ + (α' (1 - e^{-h}) / 2r) (x̂_0 - x̂_0^prev)
    /// where the caller passes as x̂_0^prev the previous step's unconditional x̂_0 (as ComfyUI's
    /// `dpmpp_2m_cfg_pp` does). With `renoise` = the guided ε̂ this is [`Self::step`]'s update. Heun's
    /// correction is not taken: CFG++ refuses Heun ([`super::guidance::cfgpp_supports`]).
    pub fn step_renoised<const D: usize>(
        &self,
        i: usize,
        x_t: Tensor<D>,
        eps: Tensor<D>,
        renoise: Tensor<D>,
        noise: Option<Tensor<D>>,
        previous_x0: Option<&Tensor<D>>,
    ) -> StepOutput<D> {
        let step = self.steps[i];
        let x0_pred = self.predict_x0(i, x_t, eps);
        let mut x_prev = x0_pred.clone().mul_scalar(step.coef_x0);
        if let Some(previous) = previous_x0.filter(|_| step.coef_x0_prev != 0.0) {
            x_prev = x_prev.add(previous.clone().mul_scalar(step.coef_x0_prev));
        }
        if step.coef_xt != 0.0 {
            let x_tilde = x0_pred
                .clone()
                .mul_scalar(step.alpha_bar.sqrt())
                .add(renoise.clone().mul_scalar(step.one_minus_alpha_bar.sqrt()));
            x_prev = x_prev.add(x_tilde.mul_scalar(step.coef_xt));
        }
        if step.coef_eps != 0.0 {
            x_prev = x_prev.add(renoise.mul_scalar(step.coef_eps));
        }
        if let Some(z) = noise.filter(|_| step.noise_std > 0.0) {
            x_prev = x_prev.add(z.mul_scalar(step.noise_std));
        }
        StepOutput { x_prev, x0_pred, eps_second: None }
    }
}

/// x̂_0 = (x_t - sqrt(1 - ᾱ) ε) / sqrt(ᾱ), before any clipping.
fn x0_unclipped<const D: usize>(alpha_bar: f64, one_minus_alpha_bar: f64, x_t: Tensor<D>, eps: Tensor<D>) -> Tensor<D> {
    let inv_sqrt_alpha_bar = 1.0 / alpha_bar.sqrt();
    let noise_to_signal = one_minus_alpha_bar.sqrt() * inv_sqrt_alpha_bar;
    x_t.mul_scalar(inv_sqrt_alpha_bar).sub(eps.mul_scalar(noise_to_signal))
}

/// One weighted term of a step's update: x_{t'} is the sum over the terms of `coefficient` × `value`.
#[derive(Clone, Debug)]
pub struct Term<const D: usize> {
    /// What the update multiplies, as the formula writes it (see [`SamplingPlan::terms`]).
    pub symbol: &'static str,
    pub coefficient: f64,
    pub value: Tensor<D>,
}

/// A step taken apart: x̂_0 before and after clipping, and the weighted terms whose sum is x_{t'}.
#[derive(Clone, Debug)]
pub struct StepTerms<const D: usize> {
    /// (x_t - sqrt(1 - ᾱ_t) ε̂) / sqrt(ᾱ_t) before clipping; its difference to `x0_pred` is what clipping
    /// removed.
    pub x0_unclipped: Tensor<D>,
    pub x0_pred: Tensor<D>,
    pub terms: Vec<Term<D>>,
}

impl<const D: usize> StepTerms<D> {
    /// x_{t'}: the sum of the weighted terms (`None` for a step without any).
    pub fn sum(&self) -> Option<Tensor<D>> {
        self.terms.iter().map(|t| t.value.clone().mul_scalar(t.coefficient)).reduce(|a, b| a.add(b))
    }
}

/// The symbols [`SamplingPlan::terms`] names its terms with.
pub const X0: &str = "x̂_0";
pub const X0_PREVIOUS: &str = "x̂_0 of the previous step";
pub const X_T: &str = "x_t";
pub const EPS: &str = "ε̂";
pub const EPS_SECOND: &str = "ε̂' at the Euler point";
pub const NOISE: &str = "z";

impl SamplingPlan {
    /// Step `i` as a sum of weighted terms, from the same inputs as [`Self::step`], whose result it equals:
    /// DDPM's c₀ x̂_0 + c₁ x_t + σ z; DDIM's (and Euler's) sqrt(ᾱ_{t'}) x̂_0 + sqrt(1 - ᾱ_{t'} - σ²) ε̂ + σ z;
    /// DPM-Solver++(2M)'s two x̂_0 (this step's and the previous one's) beside x_t; Heun's
    /// c x_t + c' ε̂ + c' ε̂', with ε̂' the network at the point the Euler step reached. ε̂ is the one consistent
    /// with the clipped x̂_0. Terms with a zero coefficient are left out.
    pub fn terms<const D: usize>(
        &self,
        i: usize,
        x_t: Tensor<D>,
        eps: Tensor<D>,
        noise: Option<Tensor<D>>,
        previous_x0: Option<&Tensor<D>>,
        evaluate: &mut dyn FnMut(Tensor<D>, f64) -> Tensor<D>,
    ) -> StepTerms<D> {
        let step = self.steps[i];
        let x0_unclipped = x0_unclipped(step.alpha_bar, step.one_minus_alpha_bar, x_t.clone(), eps.clone());
        let x0_pred = self.clip(x0_unclipped.clone());
        let eps_hat = self.eps_at(step.alpha_bar, step.one_minus_alpha_bar, x_t.clone(), &x0_pred, eps);
        let term = |symbol, coefficient, value: &Tensor<D>| Term { symbol, coefficient, value: value.clone() };
        let mut terms = vec![term(X0, step.coef_x0, &x0_pred)];
        if let Some(previous) = previous_x0.filter(|_| step.coef_x0_prev != 0.0) {
            terms.push(term(X0_PREVIOUS, step.coef_x0_prev, previous));
        }
        if step.coef_xt != 0.0 {
            terms.push(term(X_T, step.coef_xt, &x_t));
        }
        if step.coef_eps != 0.0 {
            terms.push(term(EPS, step.coef_eps, &eps_hat));
        }
        if let Some(z) = noise.filter(|_| step.noise_std > 0.0) {
            terms.push(term(NOISE, step.noise_std, &z));
        }
        terms.retain(|t| t.coefficient != 0.0);
        // Heun: the terms above are the Euler step; its end is where the second evaluation looks.
        if let Some(c) = step.correction {
            let euler = StepTerms { x0_unclipped: x0_unclipped.clone(), x0_pred: x0_pred.clone(), terms };
            let point = euler.sum().unwrap_or_else(|| x_t.zeros_like());
            let eps_next = self.second_evaluation(c, point, evaluate);
            terms = vec![
                term(X_T, c.coef_xt, &x_t),
                term(EPS, c.coef_eps, &eps_hat),
                term(EPS_SECOND, c.coef_eps, &eps_next),
            ];
        }
        StepTerms { x0_unclipped, x0_pred, terms }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::noise::NoiseSource;
    use crate::diffusion::schedule::BetaSchedule;

    fn values(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    #[test]
    fn ddpm_visits_every_step_from_t_down() {
        let schedule = BetaSchedule::linear(1000).build().unwrap();
        let plan = Sampler::ddpm(DdpmVariance::BetaTilde).plan(&schedule).unwrap();
        assert_eq!(plan.len(), 1000);
        assert_eq!(plan.steps[0].t, 1000);
        assert_eq!(plan.steps[999].t, 1);
        assert!(!plan.needs_noise(999));
    }

    #[test]
    fn ddim_trailing_spacing_starts_at_pure_noise() {
        let schedule = BetaSchedule::linear(1000).build().unwrap();
        for n in [1, 7, 50, 999, 1000] {
            let plan = Sampler::ddim(n, 0.0).plan(&schedule).unwrap();
            assert_eq!(plan.len(), n);
            assert_eq!(plan.steps[0].t, 1000);
            assert_eq!(plan.steps[n - 1].t_prev, 0);
            assert!(plan.steps.windows(2).all(|w| w[1].t < w[0].t && w[0].t_prev == w[1].t));
        }
        let plan = Sampler::ddim(50, 0.0).plan(&schedule).unwrap();
        assert_eq!(plan.steps[1].t, 980);
        assert_eq!(plan.steps[49].t, 20);
        assert!((0..50).all(|i| !plan.needs_noise(i)));
    }

    #[test]
    fn ddim_rejects_bad_settings() {
        let schedule = BetaSchedule::linear(100).build().unwrap();
        let err = Sampler::ddim(0, 0.0).plan(&schedule).unwrap_err();
        assert_eq!(err.to_string(), "DDIM steps must be between 1 and the schedule's 100 steps, got 0");
        assert!(Sampler::ddim(101, 0.0).plan(&schedule).is_err());
        assert!(Sampler::ddim(10, 1.5).plan(&schedule).unwrap_err().to_string().contains("eta"));
        assert!(Sampler::ddim(10, f64::NAN).plan(&schedule).is_err());
    }

    #[test]
    fn ddim_eta_one_every_step_has_ddpm_variance_and_mean() {
        let schedule = BetaSchedule::cosine(1000).build().unwrap();
        let ddim = Sampler::ddim(1000, 1.0).plan(&schedule).unwrap();
        let ddpm = Sampler::ddpm(DdpmVariance::BetaTilde).plan(&schedule).unwrap();
        for (a, b) in ddim.steps.iter().zip(&ddpm.steps) {
            assert_eq!(a.t, b.t);
            let i = a.t - 1;
            let variance = a.noise_std * a.noise_std;
            assert!(
                (variance - schedule.beta_tilde[i]).abs() <= 1e-9 * schedule.beta_tilde[i].max(1e-300),
                "t={}",
                a.t
            );
            // Same mean for a given x_t and x̂_0: c_x0 x̂_0 + c_eps ε̂ with ε̂ = (x_t - sqrt(ᾱ) x̂_0)/sqrt(1-ᾱ).
            let (x_t, x0) = (0.4, -0.2);
            let eps_hat = (x_t - a.alpha_bar.sqrt() * x0) / (1.0 - a.alpha_bar).sqrt();
            let ddim_mean = a.coef_x0 * x0 + a.coef_eps * eps_hat;
            let ddpm_mean = b.coef_x0 * x0 + b.coef_xt * x_t;
            assert!((ddim_mean - ddpm_mean).abs() < 1e-9, "t={}: {ddim_mean} vs {ddpm_mean}", a.t);
        }
    }

    /// With the true ε of a point mass x_0 = c, every step predicts c, and the chain ends at c.
    #[test]
    fn true_epsilon_of_a_point_mass_is_recovered() {
        let device = Device::flex();
        let schedule = BetaSchedule::linear(1000).build().unwrap();
        let target: Vec<f32> = vec![0.5, -0.25, 0.9, -0.7, 0.0, 0.3];
        let x0 = Tensor::<2>::from_data(TensorData::new(target.clone(), [2, 3]), &device);
        for sampler in [
            Sampler::ddpm(DdpmVariance::BetaTilde),
            Sampler::ddpm(DdpmVariance::Beta),
            Sampler::ddim(50, 0.0),
            Sampler::ddim(100, 1.0),
        ] {
            for clip in [false, true] {
                let plan = sampler.with_clip_x0(clip).plan(&schedule).unwrap();
                let mut noise = NoiseSource::new(7);
                let mut x = noise.tensor([2, 3], &device);
                for i in 0..plan.len() {
                    let s = plan.steps[i];
                    let eps = x
                        .clone()
                        .sub(x0.clone().mul_scalar(s.alpha_bar.sqrt()))
                        .mul_scalar(1.0 / (1.0 - s.alpha_bar).sqrt());
                    let z = plan.needs_noise(i).then(|| noise.tensor([2, 3], &device));
                    let out = plan.step(i, x, eps, z, None, &mut |_, _| unreachable!());
                    if i > 0 {
                        let predicted = values(out.x0_pred.clone());
                        for (p, c) in predicted.iter().zip(&target) {
                            assert!((p - c).abs() < 2e-2, "{} step {i}: x0_pred {p} vs {c}", sampler.label());
                        }
                    }
                    x = out.x_prev;
                }
                for (p, c) in values(x).iter().zip(&target) {
                    assert!((p - c).abs() < 1e-3, "{} clip={clip}: final {p} vs {c}", sampler.label());
                }
            }
        }
    }

    /// The DDPM update written as the plan does it equals Ho et al.'s Algorithm 2 line 4.
    #[test]
    fn ddpm_step_equals_algorithm_2() {
        let device = Device::flex();
        let schedule = BetaSchedule::linear(1000).build().unwrap();
        let plan = Sampler::ddpm(DdpmVariance::Beta).with_clip_x0(false).plan(&schedule).unwrap();
        let mut noise = NoiseSource::new(3);
        let x_t = noise.tensor([1, 4], &device);
        let eps = noise.tensor([1, 4], &device);
        let z = noise.tensor([1, 4], &device);
        for i in [0, 500, 998] {
            let t_index = plan.steps[i].t - 1;
            let out = plan.step(i, x_t.clone(), eps.clone(), Some(z.clone()), None, &mut |_, _| unreachable!());
            let (beta, alpha) = (schedule.beta[t_index], schedule.alpha[t_index]);
            let expected = x_t
                .clone()
                .sub(eps.clone().mul_scalar(beta / schedule.sqrt_one_minus_alpha_bar[t_index]))
                .mul_scalar(1.0 / alpha.sqrt())
                .add(z.clone().mul_scalar(beta.sqrt()));
            let got: Vec<f32> = out.x_prev.into_data().try_to_vec().unwrap();
            let want: Vec<f32> = expected.into_data().try_to_vec().unwrap();
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-4 * (1.0 + w.abs()), "step {i}: {g} vs {w}");
            }
        }
    }

    /// At t = T of the cosine schedule a tiny error in ε becomes a huge error in x̂_0; the bound keeps x̂_0
    /// in the data range, and leaves values inside it alone.
    #[test]
    fn clipping_bounds_x0_to_the_data_range() {
        let device = Device::flex();
        let schedule = BetaSchedule::cosine(1000).build().unwrap();
        let plan = Sampler::ddim(10, 0.0).plan(&schedule).unwrap().with_x0_bound(4.0);
        let x_t = Tensor::<2>::from_floats([[0.5, -0.5]], &device);
        // ε off by 0.01 from the ε that gives x̂_0 = 0.
        let eps = x_t.clone().mul_scalar(1.0 / (1.0 - plan.steps[0].alpha_bar).sqrt()).add_scalar(0.01);
        let unclipped = values(plan.clone().with_x0_bound(f64::INFINITY).predict_x0(0, x_t.clone(), eps.clone()));
        assert!(unclipped.iter().all(|v| v.abs() > 100.0), "{unclipped:?}");
        assert_eq!(values(plan.predict_x0(0, x_t.clone(), eps)), vec![-4.0, -4.0]);
        let inside = values(plan.predict_x0(9, x_t.clone(), Tensor::<2>::zeros([1, 2], &device)));
        let alpha_bar = plan.steps[9].alpha_bar as f32;
        assert!((inside[0] - 0.5 / alpha_bar.sqrt()).abs() < 1e-5 && inside[0].abs() < 4.0, "{inside:?}");
    }

    /// The terms of a step add up to the step's x_{t'}, for every sampler, at its first, a middle and its
    /// last step, with clipping on (ε̂ then differs from the network's ε) and a second evaluation for Heun.
    #[test]
    fn the_terms_of_every_sampler_add_up_to_its_step() {
        let device = Device::flex();
        let schedule = BetaSchedule::cosine(1000).build().unwrap();
        let samplers = [
            Sampler::ddpm(DdpmVariance::BetaTilde),
            Sampler::ddpm(DdpmVariance::Beta),
            Sampler::ddim(20, 0.0),
            Sampler::ddim(20, 1.0),
            Sampler::new(Method::Euler, 20),
            Sampler::new(Method::EulerAncestral, 20),
            Sampler::new(Method::Heun, 10),
            Sampler::new(Method::DpmSolver2M, 20),
            Sampler::new(Method::DpmSolver2MSde, 20),
        ];
        let mut source = NoiseSource::new(11);
        let mut tensor = |scale: f32| {
            let values: Vec<f32> = source.values(2 * 16).into_iter().map(|v| v * scale).collect();
            Tensor::<2>::from_data(burn::tensor::TensorData::new(values, [2, 16]), &device)
        };
        for sampler in samplers {
            let plan = sampler.with_clip_x0(true).plan(&schedule).unwrap();
            let last = plan.len() - 1;
            for i in [0, last / 2, last] {
                let (x_t, eps, z, previous) = (tensor(1.0), tensor(1.0), tensor(1.0), tensor(0.5));
                // A network of the point it is asked about, the same in both calls.
                let net = |x: Tensor<2>, log_snr: f64| x.mul_scalar(0.3).add_scalar(0.01 * log_snr.clamp(-20.0, 20.0));
                let step =
                    plan.step(i, x_t.clone(), eps.clone(), Some(z.clone()), Some(&previous), &mut |x, l| net(x, l));
                let parts = plan.terms(i, x_t, eps, Some(z), Some(&previous), &mut |x, l| net(x, l));
                let difference = values(parts.sum().unwrap().sub(step.x_prev))
                    .iter()
                    .fold(0.0f32, |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d.abs()) });
                assert!(difference < 1e-4, "{}, step {i}: terms differ from the step by {difference}", sampler.label());
                assert_eq!(values(parts.x0_pred), values(step.x0_pred), "{}, step {i}", sampler.label());
                assert!(parts.terms.iter().all(|t| t.coefficient != 0.0 && t.coefficient.is_finite()));
            }
        }
    }

    /// Runs `sampler` over the quadratic schedule (T = 1000) from a fixed x_T, with the k-th network evaluation
    /// returning a fixed ε_k whatever its input, and step i adding a fixed z_i: the inputs of
    /// benches/diffusers_reference.py. Returns x_0 and the number of evaluations.
    fn run_fixed_inputs(sampler: Sampler) -> (Vec<f64>, usize) {
        let device = Device::flex();
        let schedule = BetaSchedule::quadratic(1000).build().unwrap();
        let plan = sampler.plan(&schedule).unwrap();
        let vector = |f: &dyn Fn(usize) -> f64| {
            Tensor::<1>::from_floats((0..4).map(f).map(|v| v as f32).collect::<Vec<_>>().as_slice(), &device)
        };
        let eps = |k: usize| vector(&|j| 0.8 * (0.37 * k as f64 + 0.9 * j as f64).sin() + 0.3 * (1.7 * j as f64).cos());
        let noise = |k: usize| vector(&|j| (0.53 * k as f64 + 1.3 * j as f64).cos());
        let mut x = vector(&|j| 0.9 * (1.0 + 2.1 * j as f64).sin());
        let mut evaluations = 0;
        let mut previous_x0 = None;
        for i in 0..plan.len() {
            let e = eps(evaluations);
            evaluations += 1;
            let mut evaluate = |_: Tensor<1>, _: f64| {
                evaluations += 1;
                eps(evaluations - 1)
            };
            let out = plan.step(i, x, e, Some(noise(i)), previous_x0.as_ref(), &mut evaluate);
            x = out.x_prev;
            previous_x0 = Some(out.x0_pred);
        }
        (x.into_data().convert::<f64>().try_to_vec::<f64>().unwrap(), evaluations)
    }

    /// The same numbers as diffusers 0.35.2's schedulers for the same inputs (their DDIMScheduler,
    /// EulerDiscreteScheduler, EulerAncestralDiscreteScheduler, HeunDiscreteScheduler and
    /// DPMSolverMultistepScheduler with `dpmsolver++` / `sde-dpmsolver++`, order 2, trailing spacing or
    /// Karras σ), printed by benches/diffusers_reference.py. Agreement is to f32 precision (the tensors).
    #[test]
    fn matches_diffusers() {
        let table: &[(&str, usize, [f64; 4])] = &[
            // diffusers 0.35.2, torch 2.15.0
            ("ddim", 10, [2.89969468, -7.54216347, -14.3591731, 9.56905745]),
            ("euler", 10, [2.89969412, -7.5421638, -14.3591705, 9.56905733]),
            ("euler karras", 10, [2.16347415, -8.50827629, -14.8240419, 9.95723321]),
            ("euler-a", 10, [6.83471719, -16.6924252, -27.306501, 6.81542527]),
            ("heun", 19, [2.43811777, -5.77935263, -11.7060345, 11.1046812]),
            ("heun karras", 19, [1.59474849, -5.3197463, -10.2912735, 12.403934]),
            ("dpmpp-2m", 10, [2.19736135, -7.48237838, -13.5825117, 10.4748316]),
            ("dpmpp-2m karras", 10, [0.843045008, -8.5404674, -13.5436343, 11.5812565]),
            ("dpmpp-2m-sde", 10, [6.93760706, -19.5201141, -30.2120951, 7.42910569]),
            ("dpmpp-2m-sde karras", 10, [8.5470175, -23.3037499, -36.1300239, 6.81506283]),
        ];
        for (name, evaluations, expected) in table {
            let (method, spacing) = match name.split_once(' ') {
                Some((method, "karras")) => (method, Spacing::Karras),
                _ => (*name, Spacing::Trailing),
            };
            let sampler = Sampler::new(method.parse().unwrap(), 10).with_spacing(spacing).with_clip_x0(false);
            let (got, count) = run_fixed_inputs(sampler);
            assert_eq!(count, *evaluations, "{name}: network evaluations");
            assert_eq!(sampler.evaluations(1000), *evaluations, "{name}: planned evaluations");
            for (g, e) in got.iter().zip(expected) {
                assert!((g - e).abs() <= 2e-5 * e.abs().max(1.0), "{name}: {got:?} vs diffusers {expected:?}");
            }
        }
    }

    /// Where each spacing puts 7 steps of T = 1000: diffusers' DDIMScheduler timesteps (+ 1, as ours count
    /// from 1) for leading (steps_offset 0), linspace and trailing.
    #[test]
    fn spacings_put_steps_where_diffusers_does() {
        let schedule = BetaSchedule::linear(1000).build().unwrap();
        let timesteps = |spacing| -> Vec<usize> {
            Sampler::ddim(7, 0.0).with_spacing(spacing).levels(&schedule).unwrap().iter().map(|l| l.t).collect()
        };
        assert_eq!(timesteps(Spacing::Leading), [853, 711, 569, 427, 285, 143, 1, 0]);
        assert_eq!(timesteps(Spacing::Linspace), [1000, 833, 667, 501, 334, 167, 1, 0]);
        assert_eq!(timesteps(Spacing::Trailing), [1000, 857, 714, 571, 429, 286, 143, 0]);
        // Karras: σ^K from the schedule's σ at t = T (capped at 80) down to t = 1, in (σ^{1/ρ}) equal steps.
        let levels = Sampler::ddim(7, 0.0).with_spacing(Spacing::Karras).levels(&schedule).unwrap();
        let sigma_max = NoiseLevel::at(&schedule, 1000).karras_sigma().min(KARRAS_SIGMA_MAX);
        assert!((levels[0].karras_sigma() - sigma_max).abs() < 1e-9 * sigma_max);
        assert!((levels[6].karras_sigma() - NoiseLevel::at(&schedule, 1).karras_sigma()).abs() < 1e-12);
        let roots: Vec<f64> = levels[..7].iter().map(|l| l.karras_sigma().powf(1.0 / KARRAS_RHO)).collect();
        assert!(roots.windows(3).all(|w| ((w[0] - w[1]) - (w[1] - w[2])).abs() < 1e-9), "{roots:?}");
        assert_eq!(levels[7], NoiseLevel::CLEAN);
        // Shown at the timestep nearest in λ, falling.
        assert!(levels.windows(2).all(|w| w[0].t >= w[1].t && w[0].log_snr < w[1].log_snr));
    }

    /// With the true ε of a point mass x_0 = c at every level, every sampler, with every spacing, ends at
    /// c: the update rules are consistent (a wrong coefficient anywhere leaves the chain elsewhere).
    #[test]
    fn every_sampler_recovers_a_point_mass() {
        let device = Device::flex();
        let target: Vec<f32> = vec![0.5, -0.25, 0.9, -0.7, 0.0, 0.3];
        let x0 = Tensor::<2>::from_data(TensorData::new(target.clone(), [2, 3]), &device);
        let true_eps = |x: Tensor<2>, log_snr: f64| {
            let alpha_bar = crate::diffusion::schedule::alpha_bar_from_log_snr(log_snr);
            x.sub(x0.clone().mul_scalar(alpha_bar.sqrt())).mul_scalar(1.0 / (1.0 - alpha_bar).sqrt())
        };
        for schedule in [BetaSchedule::linear(1000), BetaSchedule::cosine(1000)] {
            let schedule = schedule.build().unwrap();
            for method in Method::ALL {
                for spacing in Spacing::ALL {
                    let plan = Sampler::new(method, 12).with_spacing(spacing).plan(&schedule).unwrap();
                    let mut noise = NoiseSource::new(7);
                    let mut x = noise.tensor([2, 3], &device);
                    let mut previous = None;
                    for i in 0..plan.len() {
                        let eps = true_eps(x.clone(), plan.steps[i].log_snr);
                        let z = plan.needs_noise(i).then(|| noise.tensor([2, 3], &device));
                        let out = plan.step(i, x, eps, z, previous.as_ref(), &mut |x, l| true_eps(x, l));
                        x = out.x_prev;
                        previous = Some(out.x0_pred);
                    }
                    for (p, c) in values(x).iter().zip(&target) {
                        assert!((p - c).abs() < 2e-3, "{method} {spacing:?}: final {p} vs {c}");
                    }
                }
            }
        }
    }

    #[test]
    fn heun_corrects_every_step_but_the_last_and_huge_ones() {
        let schedule = BetaSchedule::cosine(1000).build().unwrap();
        let plan = Sampler::new(Method::Heun, 10).plan(&schedule).unwrap();
        // Trailing on the cosine schedule: the first step divides σ^K by ~3000, the last ends at σ = 0.
        assert!(plan.steps[0].correction.is_none() && plan.steps[9].correction.is_none());
        assert!(plan.steps[1..9].iter().all(|s| s.correction.is_some()));
        assert_eq!(plan.evaluations(), 18);
        let karras = Sampler::new(Method::Heun, 10).with_spacing(Spacing::Karras).plan(&schedule).unwrap();
        assert_eq!(karras.evaluations(), 19);
    }

    #[test]
    fn names_parse_and_old_settings_still_load() {
        for method in Method::ALL {
            assert_eq!(method.name().parse::<Method>().unwrap(), method);
            assert_eq!(method.label().parse::<Method>().unwrap(), method);
        }
        assert_eq!("DPMPP_2M".parse::<Method>().unwrap(), Method::DpmSolver2M);
        assert!("plms".parse::<Method>().unwrap_err().to_string().contains("dpmpp-2m"));
        assert_eq!("Karras".parse::<Spacing>().unwrap(), Spacing::Karras);
        #[derive(Deserialize)]
        struct Saved {
            #[serde(deserialize_with = "sampler_current_or_legacy")]
            sampler: Sampler,
        }
        let legacy = r#"{"sampler": {"kind": {"sampler": "ddim", "eta": 0.5, "steps": 20}, "clip_x0": false}}"#;
        assert_eq!(serde_json::from_str::<Saved>(legacy).unwrap().sampler, Sampler::ddim(20, 0.5).with_clip_x0(false));
        let legacy = r#"{"sampler": {"kind": {"sampler": "ddpm", "variance": "beta"}, "clip_x0": true}}"#;
        assert_eq!(serde_json::from_str::<Saved>(legacy).unwrap().sampler, Sampler::ddpm(DdpmVariance::Beta));
        let now = Sampler::new(Method::DpmSolver2MSde, 15).with_spacing(Spacing::Karras);
        let text = format!(r#"{{"sampler": {}}}"#, serde_json::to_string(&now).unwrap());
        assert_eq!(serde_json::from_str::<Saved>(&text).unwrap().sampler, now);
    }

    #[test]
    fn strength_keeps_the_last_steps_planned_afresh() {
        let schedule = BetaSchedule::cosine(1000).build().unwrap();
        let sampler = Sampler::new(Method::DpmSolver2M, 10);
        let full = sampler.plan(&schedule).unwrap();
        let (plan, start) = sampler.plan_from_strength(&schedule, 0.6).unwrap();
        assert_eq!(plan.len(), 6);
        assert_eq!(start.t, full.steps[4].t);
        assert_eq!(plan.steps[0].t, full.steps[4].t);
        assert_eq!(plan.steps[0].coef_x0_prev, 0.0, "the first step is first order again");
        assert_eq!(plan.steps[1..], full.steps[5..]);
        let (none, start) = sampler.plan_from_strength(&schedule, 0.0).unwrap();
        assert!(none.is_empty() && start == NoiseLevel::CLEAN);
        assert_eq!(sampler.plan_from_strength(&schedule, 1.0).unwrap().0, full);
        assert!(sampler.plan_from_strength(&schedule, 1.5).unwrap_err().to_string().contains("strength"));
        assert!(sampler.plan_from_strength(&schedule, f64::NAN).is_err());
        // DDPM counts every timestep.
        let (ddpm, start) = Sampler::ddpm(DdpmVariance::BetaTilde).plan_from_strength(&schedule, 0.25).unwrap();
        assert_eq!((ddpm.len(), start.t), (250, 250));
    }

    /// A plan made afresh from a level goes from exactly that level to the clean image in the steps asked
    /// for, its levels falling; from the top of a trailing run it is that run's plan.
    #[test]
    fn a_plan_from_a_level_starts_there_and_takes_the_steps_asked_for() {
        let schedule = BetaSchedule::cosine(1000).build().unwrap();
        let whole = Sampler::ddim(20, 0.0).plan(&schedule).unwrap();
        let top = whole.steps[0].level();
        assert_eq!(Sampler::ddim(20, 0.0).plan_from_level(&schedule, top).unwrap(), whole);
        let karras = Sampler::new(Method::DpmSolver2M, 20).with_spacing(Spacing::Karras);
        let middle = karras.plan(&schedule).unwrap().steps[7].level();
        for sampler in [
            Sampler::ddim(10, 0.0),
            Sampler::new(Method::Heun, 5),
            karras.with_spacing(Spacing::Karras),
            Sampler::new(Method::EulerAncestral, 10).with_spacing(Spacing::Linspace),
            Sampler::ddpm(DdpmVariance::BetaTilde),
        ] {
            let plan = sampler.plan_from_level(&schedule, middle).unwrap();
            let expected = if sampler.method == Method::Ddpm { middle.t } else { sampler.steps };
            assert_eq!(plan.len(), expected, "{}", sampler.label());
            if sampler.method == Method::Ddpm {
                // DDPM's steps are the schedule's own: it starts from the timestep nearest the level.
                assert_eq!(plan.steps[0].t, middle.t);
            } else {
                assert_eq!(plan.steps[0].level(), middle, "{}", sampler.label());
            }
            assert_eq!(plan.steps.last().unwrap().level_prev(), NoiseLevel::CLEAN);
            assert!(plan.steps.iter().all(|s| s.log_snr < s.log_snr_prev), "{}: levels fall", sampler.label());
            assert_eq!(plan.steps[0].coef_x0_prev, 0.0, "nothing before the first step");
        }
        // Near the clean end there are fewer timesteps than steps asked for: one per timestep.
        let low = NoiseLevel::at(&schedule, 3);
        assert_eq!(Sampler::ddim(20, 0.0).plan_from_level(&schedule, low).unwrap().len(), 3);
        assert!(Sampler::ddim(20, 0.0).plan_from_level(&schedule, NoiseLevel::CLEAN).unwrap().is_empty());
    }
}
