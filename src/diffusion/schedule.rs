//! The variance schedule of the forward process and every quantity derived from it.
//!
//! Indexing: the paper's timesteps are t = 1..=T; here arrays are indexed `i = t - 1`, so `beta[i]`
//! is β_t. The "previous" value of the first step is the clean image: ᾱ_0 = 1.
//! Everything is computed once, in f64, so that a schedule of 10 000 steps keeps its tiny differences.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Most steps a schedule may have. More makes the trajectory too long to keep or show.
pub const MAX_STEPS: usize = 10_000;

/// The offset `s` of the cosine schedule (Nichol & Dhariwal 2021), which keeps β_1 from being tiny.
pub const COSINE_OFFSET: f64 = 0.008;

/// The cap on β_t of the cosine schedule, which would otherwise reach 1 at t = T.
pub const COSINE_MAX_BETA: f64 = 0.999;

/// Below this terminal ᾱ_T, 1/sqrt(ᾱ_T) (used to turn ε into x̂_0) overflows an f32.
pub const MIN_TERMINAL_ALPHA_BAR: f64 = 1e-70;

/// How β_t grows from `beta_start` to `beta_end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScheduleKind {
    /// β_t linear in t (Ho et al. 2020: 1e-4 .. 0.02, T = 1000).
    Linear,
    /// ᾱ_t = f(t)/f(0), f(t) = cos²((t/T + s)/(1 + s) · π/2) (Nichol & Dhariwal 2021); ignores
    /// `beta_start` and `beta_end`.
    Cosine,
    /// sqrt(β_t) linear in t (diffusers' `scaled_linear`, used by Stable Diffusion).
    Quadratic,
    /// β_t = beta_start + (beta_end - beta_start) · sigmoid(x), x linear in -6 .. 6.
    Sigmoid,
}

impl ScheduleKind {
    pub const ALL: [ScheduleKind; 4] =
        [ScheduleKind::Linear, ScheduleKind::Cosine, ScheduleKind::Quadratic, ScheduleKind::Sigmoid];

    pub fn name(self) -> &'static str {
        match self {
            ScheduleKind::Linear => "linear",
            ScheduleKind::Cosine => "cosine",
            ScheduleKind::Quadratic => "quadratic",
            ScheduleKind::Sigmoid => "sigmoid",
        }
    }

    /// Whether `beta_start` and `beta_end` shape this kind at all.
    pub fn uses_beta_range(self) -> bool {
        self != ScheduleKind::Cosine
    }
}

impl fmt::Display for ScheduleKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for ScheduleKind {
    type Err = ScheduleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ScheduleKind::ALL
            .into_iter()
            .find(|kind| kind.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| ScheduleError::UnknownKind(s.to_owned()))
    }
}

/// Why a schedule cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    #[error("unknown schedule kind `{0}`: expected one of linear, cosine, quadratic, sigmoid")]
    UnknownKind(String),
    #[error("steps must be between 1 and {MAX_STEPS}, got {0}")]
    Steps(usize),
    #[error("{field} must be a finite number, got {value}")]
    NotFinite { field: &'static str, value: f64 },
    #[error("{field} must be in the open interval (0, 1), got {value}")]
    BetaRange { field: &'static str, value: f64 },
    #[error("beta_start ({start}) must not be greater than beta_end ({end})")]
    BetaOrder { start: f64, end: f64 },
    #[error(
        "the terminal alpha_bar of this schedule is {alpha_bar:e} (at most zero signal): epsilon prediction \
         would divide by zero; lower beta_end or the number of steps (alpha_bar_T must be at least \
         {MIN_TERMINAL_ALPHA_BAR:e})"
    )]
    ZeroTerminalSnr { alpha_bar: f64 },
}

/// The user-facing description of a schedule: what the sliders and the CLI flags set.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct BetaSchedule {
    pub kind: ScheduleKind,
    /// T, the number of diffusion steps.
    pub steps: usize,
    pub beta_start: f64,
    pub beta_end: f64,
}

impl Default for BetaSchedule {
    fn default() -> Self {
        Self::linear(1000)
    }
}

impl BetaSchedule {
    /// Ho et al.'s schedule: β linear from 1e-4 to 0.02.
    pub fn linear(steps: usize) -> Self {
        Self { kind: ScheduleKind::Linear, steps, beta_start: 1e-4, beta_end: 0.02 }
    }

    /// Nichol & Dhariwal's cosine schedule.
    pub fn cosine(steps: usize) -> Self {
        Self { kind: ScheduleKind::Cosine, ..Self::linear(steps) }
    }

    /// Stable Diffusion's `scaled_linear` range.
    pub fn quadratic(steps: usize) -> Self {
        Self { kind: ScheduleKind::Quadratic, steps, beta_start: 0.00085, beta_end: 0.012 }
    }

    /// GeoDiff's sigmoid schedule over Ho et al.'s range.
    pub fn sigmoid(steps: usize) -> Self {
        Self { kind: ScheduleKind::Sigmoid, ..Self::linear(steps) }
    }

    /// The usual range of `beta_start`/`beta_end` for a kind, at `steps` steps.
    pub fn default_for(kind: ScheduleKind, steps: usize) -> Self {
        match kind {
            ScheduleKind::Linear => Self::linear(steps),
            ScheduleKind::Cosine => Self::cosine(steps),
            ScheduleKind::Quadratic => Self::quadratic(steps),
            ScheduleKind::Sigmoid => Self::sigmoid(steps),
        }
    }

    /// Checks the parameters and the schedule they make; the message names the field and its allowed range.
    pub fn validate(&self) -> Result<(), ScheduleError> {
        self.validate_parameters()?;
        let betas = self.betas();
        let log_alpha_bar_t: f64 = betas.iter().map(|beta| (-beta).ln_1p()).sum();
        let alpha_bar_t = log_alpha_bar_t.exp();
        if alpha_bar_t.is_nan() || alpha_bar_t < MIN_TERMINAL_ALPHA_BAR {
            return Err(ScheduleError::ZeroTerminalSnr { alpha_bar: alpha_bar_t });
        }
        Ok(())
    }

    fn validate_parameters(&self) -> Result<(), ScheduleError> {
        if self.steps == 0 || self.steps > MAX_STEPS {
            return Err(ScheduleError::Steps(self.steps));
        }
        for (field, value) in [("beta_start", self.beta_start), ("beta_end", self.beta_end)] {
            if !value.is_finite() {
                return Err(ScheduleError::NotFinite { field, value });
            }
            if self.kind.uses_beta_range() && !(value > 0.0 && value < 1.0) {
                return Err(ScheduleError::BetaRange { field, value });
            }
        }
        if self.kind.uses_beta_range() && self.beta_start > self.beta_end {
            return Err(ScheduleError::BetaOrder { start: self.beta_start, end: self.beta_end });
        }
        Ok(())
    }

    /// β_1 ..= β_T as the kind defines them (no validation).
    pub fn betas(&self) -> Vec<f64> {
        let steps = self.steps;
        // Position of step i in [0, 1]; a single step sits at the start.
        let fraction = |i: usize| if steps > 1 { i as f64 / (steps - 1) as f64 } else { 0.0 };
        let (start, end) = (self.beta_start, self.beta_end);
        match self.kind {
            ScheduleKind::Linear => (0..steps).map(|i| start + (end - start) * fraction(i)).collect(),
            ScheduleKind::Quadratic => (0..steps)
                .map(|i| {
                    let root = start.sqrt() + (end.sqrt() - start.sqrt()) * fraction(i);
                    root * root
                })
                .collect(),
            ScheduleKind::Sigmoid => (0..steps)
                .map(|i| {
                    let x = -6.0 + 12.0 * fraction(i);
                    start + (end - start) / (1.0 + (-x).exp())
                })
                .collect(),
            ScheduleKind::Cosine => {
                let f = |t: f64| {
                    let angle = (t + COSINE_OFFSET) / (1.0 + COSINE_OFFSET) * std::f64::consts::FRAC_PI_2;
                    angle.cos().powi(2)
                };
                (0..steps)
                    .map(|i| {
                        let t1 = i as f64 / steps as f64;
                        let t2 = (i + 1) as f64 / steps as f64;
                        (1.0 - f(t2) / f(t1)).min(COSINE_MAX_BETA)
                    })
                    .collect()
            }
        }
    }

    /// Validates and derives every quantity of the process.
    pub fn build(&self) -> Result<NoiseSchedule, ScheduleError> {
        self.validate()?;
        Ok(NoiseSchedule::from_betas(*self, self.betas()))
    }
}

/// Every per-step quantity of the forward and reverse process, derived once from a [`BetaSchedule`].
/// Index `i` holds timestep t = i + 1.
#[derive(Clone, Debug, PartialEq)]
pub struct NoiseSchedule {
    pub source: BetaSchedule,
    /// β_t, the variance of q(x_t | x_{t-1}) = N(sqrt(1 - β_t) x_{t-1}, β_t I).
    pub beta: Vec<f64>,
    /// α_t = 1 - β_t.
    pub alpha: Vec<f64>,
    /// ᾱ_t = ∏_{s ≤ t} α_s, so that q(x_t | x_0) = N(sqrt(ᾱ_t) x_0, (1 - ᾱ_t) I).
    pub alpha_bar: Vec<f64>,
    /// ᾱ_{t-1}, with ᾱ_0 = 1.
    pub alpha_bar_prev: Vec<f64>,
    /// 1 - ᾱ_t, kept apart because it is tiny at small t and would lose digits as `1.0 - alpha_bar`.
    pub one_minus_alpha_bar: Vec<f64>,
    /// sqrt(ᾱ_t): the signal coefficient of x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε.
    pub sqrt_alpha_bar: Vec<f64>,
    /// sqrt(1 - ᾱ_t): the noise coefficient of the same closed form.
    pub sqrt_one_minus_alpha_bar: Vec<f64>,
    /// β̃_t = (1 - ᾱ_{t-1}) / (1 - ᾱ_t) · β_t, the variance of the posterior q(x_{t-1} | x_t, x_0).
    pub beta_tilde: Vec<f64>,
    /// The x_0 coefficient of the posterior mean μ̃_t: sqrt(ᾱ_{t-1}) β_t / (1 - ᾱ_t).
    pub posterior_coef_x0: Vec<f64>,
    /// The x_t coefficient of the posterior mean μ̃_t: sqrt(α_t) (1 - ᾱ_{t-1}) / (1 - ᾱ_t).
    pub posterior_coef_xt: Vec<f64>,
    /// λ_t = ln(ᾱ_t / (1 - ᾱ_t)), the log signal-to-noise ratio; what the network is conditioned on.
    pub log_snr: Vec<f64>,
}

impl NoiseSchedule {
    fn from_betas(source: BetaSchedule, beta: Vec<f64>) -> Self {
        let steps = beta.len();
        let alpha: Vec<f64> = beta.iter().map(|b| 1.0 - b).collect();
        // ᾱ_t through its logarithm: ln ᾱ_t = Σ ln(1 - β_s), and 1 - ᾱ_t = -expm1(ln ᾱ_t) keeps full
        // precision where ᾱ_t is close to 1.
        let mut log_alpha_bar = Vec::with_capacity(steps);
        let mut running = 0.0_f64;
        for b in &beta {
            running += (-b).ln_1p();
            log_alpha_bar.push(running);
        }
        let alpha_bar: Vec<f64> = log_alpha_bar.iter().map(|l| l.exp()).collect();
        let one_minus_alpha_bar: Vec<f64> = log_alpha_bar.iter().map(|l| -l.exp_m1()).collect();
        let alpha_bar_prev: Vec<f64> =
            std::iter::once(1.0).chain(alpha_bar.iter().copied().take(steps.saturating_sub(1))).collect();
        let one_minus_alpha_bar_prev: Vec<f64> =
            std::iter::once(0.0).chain(one_minus_alpha_bar.iter().copied().take(steps.saturating_sub(1))).collect();

        let mut beta_tilde = Vec::with_capacity(steps);
        let mut posterior_coef_x0 = Vec::with_capacity(steps);
        let mut posterior_coef_xt = Vec::with_capacity(steps);
        for i in 0..steps {
            beta_tilde.push(one_minus_alpha_bar_prev[i] / one_minus_alpha_bar[i] * beta[i]);
            posterior_coef_x0.push(alpha_bar_prev[i].sqrt() * beta[i] / one_minus_alpha_bar[i]);
            posterior_coef_xt.push(alpha[i].sqrt() * one_minus_alpha_bar_prev[i] / one_minus_alpha_bar[i]);
        }
        let log_snr =
            log_alpha_bar.iter().zip(&one_minus_alpha_bar).map(|(log_ab, one_minus)| log_ab - one_minus.ln()).collect();

        Self {
            source,
            sqrt_alpha_bar: alpha_bar.iter().map(|a| a.sqrt()).collect(),
            sqrt_one_minus_alpha_bar: one_minus_alpha_bar.iter().map(|a| a.sqrt()).collect(),
            beta,
            alpha,
            alpha_bar,
            alpha_bar_prev,
            one_minus_alpha_bar,
            beta_tilde,
            posterior_coef_x0,
            posterior_coef_xt,
            log_snr,
        }
    }

    /// T.
    pub fn steps(&self) -> usize {
        self.beta.len()
    }

    /// The range of λ this schedule visits, (λ_T, λ_1): the noisiest and the cleanest step.
    pub fn log_snr_range(&self) -> (f64, f64) {
        (self.log_snr[self.steps() - 1], self.log_snr[0])
    }

    /// What x_T = sqrt(ᾱ_T) x_0 + sqrt(1 - ᾱ_T) ε keeps of the image.
    pub fn terminal_signal(&self) -> TerminalSignal {
        let last = self.steps() - 1;
        TerminalSignal { alpha_bar: self.alpha_bar[last], log_snr: self.log_snr[last] }
    }
}

/// The signal left at t = T. Sampling starts from pure noise x_T ~ N(0, I); that is only the distribution
/// of x_T when ᾱ_T ≈ 0. Where the schedule leaves sqrt(ᾱ_T) of the image in x_T, the first step is asked
/// to denoise an input that lacks the signal the model expects at that noise level, and samples lose
/// their class and contrast (Lin et al. 2023, "Common diffusion noise schedules and sample steps are
/// flawed"). How much is measured in [`SCHEDULE_SWEEP`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct TerminalSignal {
    /// ᾱ_T.
    pub alpha_bar: f64,
    /// λ_T = ln(ᾱ_T / (1 - ᾱ_T)).
    pub log_snr: f64,
}

/// Above this ᾱ_T, x_T is measurably not pure noise: samples of the built-in pixel model lose quality
/// (see [`SCHEDULE_SWEEP`]: every schedule with ᾱ_T ≤ 0.0064 scores FD 10.1 to 11.4, ᾱ_T ≈ 0.008 about
/// 12, ᾱ_T = 0.0105 already 13.2 to 13.5, ᾱ_T = 0.017 about 17.5, and it keeps falling from there).
pub const TERMINAL_ALPHA_BAR_LIMIT: f64 = 0.008;

impl TerminalSignal {
    /// sqrt(ᾱ_T): the share of x_0 in x_T.
    pub fn signal(&self) -> f64 {
        self.alpha_bar.sqrt()
    }

    /// Whether x_T is close enough to N(0, I) for sampling to start from pure noise.
    pub fn is_pure_noise(&self) -> bool {
        self.alpha_bar <= TERMINAL_ALPHA_BAR_LIMIT
    }

    /// "sqrt(ᾱ_T) = 0.219 (ᾱ_T = 0.04782), λ_T = -2.99"
    pub fn describe(&self) -> String {
        format!(
            "sqrt(ᾱ_T) = {:.3} (ᾱ_T = {}), λ_T = {:.2}",
            self.signal(),
            alpha_bar_text(self.alpha_bar),
            self.log_snr
        )
    }
}

/// ᾱ as people read it: 0.04782, or 2.43e-9 when tiny.
fn alpha_bar_text(alpha_bar: f64) -> String {
    if alpha_bar >= 1e-3 { format!("{alpha_bar:.4}") } else { format!("{alpha_bar:.2e}") }
}

/// One row of the schedule sweep in assets/models/README.md (`benches/schedule_sweep.sh`): 300 samples of
/// every class from the pixel model built in until 2026-12-02 (5000 training steps; DPM++ 2M, Karras spacing,
/// 20 steps, guidance 2, seed 0) under one schedule, judged by the built-in classifier.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SweepRow {
    pub kind: ScheduleKind,
    pub steps: usize,
    /// `None`: the kind's usual β_end.
    pub beta_end: Option<f64>,
    pub alpha_bar: f64,
    pub frechet_distance: f64,
    /// Per cent of samples the classifier judged the class they were asked for.
    pub accuracy: f64,
}

const fn row(
    kind: ScheduleKind,
    steps: usize,
    beta_end: Option<f64>,
    alpha_bar: f64,
    frechet_distance: f64,
    accuracy: f64,
) -> SweepRow {
    SweepRow { kind, steps, beta_end, alpha_bar, frechet_distance, accuracy }
}

/// The measured sweep, sorted by ᾱ_T; the same numbers as the table in assets/models/README.md (a test
/// checks that they agree).
pub const SCHEDULE_SWEEP: &[SweepRow] = &[
    row(ScheduleKind::Cosine, 1000, None, 2.43e-09, 10.899, 96.0),
    row(ScheduleKind::Cosine, 100, None, 2.43e-07, 11.118, 96.3),
    row(ScheduleKind::Cosine, 50, None, 9.71e-07, 11.310, 96.0),
    row(ScheduleKind::Sigmoid, 1000, None, 3.97e-05, 11.044, 95.7),
    row(ScheduleKind::Linear, 1000, None, 4.04e-05, 11.016, 95.7),
    row(ScheduleKind::Sigmoid, 300, Some(0.04), 0.0022, 10.206, 95.7),
    row(ScheduleKind::Sigmoid, 600, None, 0.00229, 10.089, 95.7),
    row(ScheduleKind::Quadratic, 1000, None, 0.00466, 10.860, 95.7),
    row(ScheduleKind::Linear, 1000, Some(0.01), 0.0063, 11.360, 95.0),
    row(ScheduleKind::Linear, 500, None, 0.00635, 11.399, 95.0),
    row(ScheduleKind::Sigmoid, 480, None, 0.00771, 11.862, 95.0),
    row(ScheduleKind::Linear, 1000, Some(0.0095), 0.0081, 12.081, 94.7),
    row(ScheduleKind::Linear, 475, None, 0.00818, 12.089, 94.0),
    row(ScheduleKind::Linear, 450, None, 0.0105, 13.519, 94.0),
    row(ScheduleKind::Sigmoid, 450, None, 0.0105, 13.247, 94.3),
    row(ScheduleKind::Linear, 1000, Some(0.008), 0.0172, 17.435, 92.0),
    row(ScheduleKind::Sigmoid, 400, None, 0.0174, 17.726, 91.3),
    row(ScheduleKind::Linear, 400, None, 0.0175, 17.811, 91.7),
    row(ScheduleKind::Quadratic, 700, None, 0.0233, 22.408, 88.7),
    row(ScheduleKind::Linear, 1000, Some(0.007), 0.0285, 28.610, 86.7),
    row(ScheduleKind::Linear, 350, None, 0.029, 29.083, 86.7),
    row(ScheduleKind::Quadratic, 600, None, 0.0399, 42.572, 81.7),
    row(ScheduleKind::Sigmoid, 300, None, 0.0478, 56.084, 78.0),
    row(ScheduleKind::Linear, 300, None, 0.0481, 55.353, 78.0),
    row(ScheduleKind::Quadratic, 500, None, 0.0682, 93.651, 70.7),
    row(ScheduleKind::Linear, 1000, Some(0.005), 0.0777, 116.590, 66.0),
    row(ScheduleKind::Linear, 200, None, 0.132, 236.353, 43.3),
    row(ScheduleKind::Quadratic, 300, None, 0.2, 340.477, 23.0),
    row(ScheduleKind::Linear, 100, None, 0.364, 432.114, 11.7),
];

/// The measured row nearest `alpha_bar` (in log ᾱ_T), and the row of the models' own schedule (cosine,
/// T = 1000), for a warning to cite.
pub fn sweep_rows_near(alpha_bar: f64) -> (SweepRow, SweepRow) {
    let distance = |row: &SweepRow| (row.alpha_bar.ln() - alpha_bar.max(1e-300).ln()).abs();
    let own = SCHEDULE_SWEEP
        .iter()
        .copied()
        .find(|r| r.kind == ScheduleKind::Cosine && r.steps == 1000)
        .unwrap_or(SCHEDULE_SWEEP[0]);
    let nearest = SCHEDULE_SWEEP.iter().copied().min_by(|a, b| distance(a).total_cmp(&distance(b))).unwrap_or(own);
    (nearest, own)
}

/// Why the schedule's x_T is not pure noise and what that does to samples, with the measured numbers; `None`
/// when it is.
pub fn terminal_warning(schedule: &NoiseSchedule) -> Option<String> {
    let terminal = schedule.terminal_signal();
    if terminal.is_pure_noise() {
        return None;
    }
    let (near, own) = sweep_rows_near(terminal.alpha_bar);
    let beta_end = near.beta_end.map_or(String::new(), |b| format!(", β_end {b}"));
    Some(format!(
        "x_T still holds {:.0} % of the image (sqrt(ᾱ_T) = {:.3}), but sampling starts from pure noise, so the \
         first steps denoise something the schedule never makes and samples lose class and contrast. Measured \
         (pixel model of 5000 training steps, 300 samples): {} T = {}{beta_end} (ᾱ_T = {}) scores FD {:.1} with \
         {:.1} % judged their class, its own cosine schedule FD {:.1} and {:.1} %; quality falls once ᾱ_T passes \
         about {TERMINAL_ALPHA_BAR_LIMIT}.",
        100.0 * terminal.signal(),
        terminal.signal(),
        near.kind,
        near.steps,
        alpha_bar_text(near.alpha_bar),
        near.frechet_distance,
        near.accuracy,
        own.frechet_distance,
        own.accuracy,
    ))
}

/// Fixes for a schedule whose x_T is not pure noise: the smallest T (same kind and β range) and the smallest
/// β_end (same kind and T; for kinds that use it) that bring ᾱ_T down to [`TERMINAL_ALPHA_BAR_LIMIT`].
/// `None` where no value within the sliders' ranges does.
pub fn terminal_fixes(schedule: &BetaSchedule) -> (Option<usize>, Option<f64>) {
    let pure = |s: BetaSchedule| s.build().is_ok_and(|n| n.terminal_signal().is_pure_noise());
    if pure(*schedule) {
        return (None, None);
    }
    // ᾱ_T falls as T grows (more factors below 1) and as β_end grows: bisect each.
    let steps = pure(BetaSchedule { steps: MAX_STEPS, ..*schedule }).then(|| {
        let (mut low, mut high) = (schedule.steps, MAX_STEPS);
        while high - low > 1 {
            let mid = (low + high) / 2;
            if pure(BetaSchedule { steps: mid, ..*schedule }) { high = mid } else { low = mid }
        }
        high
    });
    const MAX_BETA_END: f64 = 0.999;
    // The upper end of the bisection: the smallest of a few β_end that reaches pure noise (too large a one
    // can leave ᾱ_T below what an f32 can invert, which is not a schedule either).
    let upper = [0.05, 0.1, 0.2, 0.5, MAX_BETA_END]
        .into_iter()
        .filter(|b| *b > schedule.beta_end)
        .find(|b| pure(BetaSchedule { beta_end: *b, ..*schedule }));
    let beta_end = upper.filter(|_| schedule.kind.uses_beta_range()).map(|upper| {
        let (mut low, mut high) = (schedule.beta_end, upper);
        for _ in 0..60 {
            let mid = 0.5 * (low + high);
            if pure(BetaSchedule { beta_end: mid, ..*schedule }) { high = mid } else { low = mid }
        }
        // Rounded up to three significant digits, as the slider shows it, staying on the pure side.
        let scale = 10f64.powi(2 - high.log10().floor() as i32);
        (high * scale).ceil() / scale
    });
    (steps, beta_end)
}

/// ᾱ from a log-SNR: ᾱ = sigmoid(λ), the inverse of λ = ln(ᾱ / (1 - ᾱ)).
pub fn alpha_bar_from_log_snr(log_snr: f64) -> f64 {
    1.0 / (1.0 + (-log_snr).exp())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * a.abs().max(b.abs()).max(f64::MIN_POSITIVE)
    }

    #[test]
    fn linear_betas_match_ho_et_al() {
        let s = BetaSchedule::linear(1000).build().unwrap();
        assert_eq!(s.steps(), 1000);
        assert!(close(s.beta[0], 1e-4, 1e-12));
        assert!(close(s.beta[999], 0.02, 1e-12));
        assert!(close(s.beta[1] - s.beta[0], (0.02 - 1e-4) / 999.0, 1e-9));
    }

    #[test]
    fn alpha_bar_is_running_product_of_alpha() {
        for kind in ScheduleKind::ALL {
            let s = BetaSchedule::default_for(kind, 1000).build().unwrap();
            let mut product = 1.0_f64;
            for i in 0..s.steps() {
                assert!(close(s.alpha[i], 1.0 - s.beta[i], 1e-15));
                assert!(close(s.alpha_bar_prev[i], product, 1e-12), "{kind} prev at {i}");
                product *= s.alpha[i];
                assert!(close(s.alpha_bar[i], product, 1e-12), "{kind} at {i}");
                assert!(close(s.one_minus_alpha_bar[i], 1.0 - product, 1e-9), "{kind} 1-ab at {i}");
                assert!(close(s.sqrt_alpha_bar[i].powi(2), product, 1e-12));
            }
        }
    }

    #[test]
    fn posterior_quantities_equal_the_seed_formulas() {
        let s = BetaSchedule::cosine(500).build().unwrap();
        for i in 1..s.steps() {
            let (beta, alpha, ab, ab_prev) = (s.beta[i], s.alpha[i], s.alpha_bar[i], s.alpha_bar[i - 1]);
            assert!(close(s.beta_tilde[i], (1.0 - ab_prev) / (1.0 - ab) * beta, 1e-9));
            assert!(close(s.posterior_coef_x0[i], ab_prev.sqrt() * beta / (1.0 - ab), 1e-9));
            assert!(close(s.posterior_coef_xt[i], alpha.sqrt() * (1.0 - ab_prev) / (1.0 - ab), 1e-9));
            assert!(close(s.log_snr[i], (ab / (1.0 - ab)).ln(), 1e-9));
        }
        // At t = 1 the posterior is the clean image itself.
        assert_eq!(s.beta_tilde[0], 0.0);
        assert!(close(s.posterior_coef_x0[0], 1.0, 1e-12));
        assert_eq!(s.posterior_coef_xt[0], 0.0);
    }

    #[test]
    fn posterior_mean_coefficients_match_the_epsilon_form() {
        // μ̃(x_t, x̂_0(ε)) = (x_t - β_t / sqrt(1 - ᾱ_t) ε) / sqrt(α_t) (Ho et al. eq. 11).
        let s = BetaSchedule::linear(1000).build().unwrap();
        for i in [1, 10, 500, 999] {
            let (x_t, eps) = (0.7, -1.3);
            let x0 = (x_t - s.sqrt_one_minus_alpha_bar[i] * eps) / s.sqrt_alpha_bar[i];
            let mean = s.posterior_coef_x0[i] * x0 + s.posterior_coef_xt[i] * x_t;
            let eq11 = (x_t - s.beta[i] / s.sqrt_one_minus_alpha_bar[i] * eps) / s.alpha[i].sqrt();
            assert!(close(mean, eq11, 1e-9), "step {i}: {mean} vs {eq11}");
        }
    }

    #[test]
    fn log_snr_decreases_strictly() {
        for kind in ScheduleKind::ALL {
            for steps in [1, 2, 10, 1000, MAX_STEPS] {
                let s = BetaSchedule::default_for(kind, steps).build().unwrap();
                assert!(s.log_snr.windows(2).all(|w| w[1] < w[0]), "{kind} T={steps}");
                assert!(s.log_snr.iter().all(|l| l.is_finite()));
            }
        }
    }

    #[test]
    fn quadratic_is_linear_in_sqrt_beta() {
        let s = BetaSchedule::quadratic(100).betas();
        let roots: Vec<f64> = s.iter().map(|b| b.sqrt()).collect();
        let step = roots[1] - roots[0];
        assert!(roots.windows(2).all(|w| close(w[1] - w[0], step, 1e-9)));
        assert!(close(s[0], 0.00085, 1e-12) && close(s[99], 0.012, 1e-12));
    }

    #[test]
    fn cosine_matches_its_closed_form_alpha_bar() {
        let steps = 1000;
        let s = BetaSchedule::cosine(steps).build().unwrap();
        let f = |t: f64| ((t + COSINE_OFFSET) / (1.0 + COSINE_OFFSET) * std::f64::consts::FRAC_PI_2).cos().powi(2);
        for i in [0, 100, 500, 900] {
            let expected = f((i + 1) as f64 / steps as f64) / f(0.0);
            assert!(close(s.alpha_bar[i], expected, 1e-9), "at {i}");
        }
        assert!(s.beta.iter().all(|b| *b <= COSINE_MAX_BETA));
        assert_eq!(s.beta[steps - 1], COSINE_MAX_BETA);
    }

    #[test]
    fn sigmoid_is_monotone_between_its_ends() {
        let b = BetaSchedule::sigmoid(1000).betas();
        assert!(b.windows(2).all(|w| w[1] > w[0]));
        assert!(b[0] > 1e-4 && b[999] < 0.02);
    }

    #[test]
    fn validate_names_field_and_range() {
        let bad = |f: fn(&mut BetaSchedule)| {
            let mut s = BetaSchedule::linear(1000);
            f(&mut s);
            s.validate().unwrap_err().to_string()
        };
        assert!(bad(|s| s.steps = 0).contains("steps must be between 1 and 10000"));
        assert!(bad(|s| s.steps = 10_001).contains("steps"));
        assert!(bad(|s| s.beta_start = 0.0).contains("beta_start must be in the open interval (0, 1)"));
        assert!(bad(|s| s.beta_end = 1.0).contains("beta_end must be in the open interval (0, 1)"));
        assert!(bad(|s| s.beta_end = f64::NAN).contains("beta_end must be a finite number"));
        assert!(bad(|s| s.beta_start = f64::INFINITY).contains("beta_start must be a finite number"));
        assert!(
            bad(|s| {
                s.beta_start = 0.5;
                s.beta_end = 0.2
            })
            .contains("beta_start (0.5) must not be greater than beta_end (0.2)")
        );
        let zero_snr = bad(|s| {
            s.steps = 10_000;
            s.beta_start = 0.5;
            s.beta_end = 0.9
        });
        assert!(zero_snr.contains("terminal alpha_bar"), "{zero_snr}");
        // Cosine ignores the beta range, so it is not checked.
        let mut cosine = BetaSchedule::cosine(1000);
        cosine.beta_start = 0.5;
        cosine.beta_end = 0.1;
        assert!(cosine.validate().is_ok());
    }

    #[test]
    fn kind_parses_case_insensitively() {
        assert_eq!("Cosine".parse::<ScheduleKind>().unwrap(), ScheduleKind::Cosine);
        assert!("cubic".parse::<ScheduleKind>().unwrap_err().to_string().contains("linear, cosine"));
    }

    #[test]
    fn alpha_bar_from_log_snr_inverts_log_snr() {
        let s = BetaSchedule::linear(1000).build().unwrap();
        for i in [0, 300, 999] {
            assert!(close(alpha_bar_from_log_snr(s.log_snr[i]), s.alpha_bar[i], 1e-9));
        }
    }

    #[test]
    fn terminal_signal_is_the_last_step() {
        let s = BetaSchedule::default_for(ScheduleKind::Sigmoid, 300).build().unwrap();
        let terminal = s.terminal_signal();
        assert!((terminal.alpha_bar - 0.0478).abs() < 1e-3, "{terminal:?}");
        assert!((terminal.signal() - 0.219).abs() < 1e-3);
        assert!((terminal.log_snr - (terminal.alpha_bar / (1.0 - terminal.alpha_bar)).ln()).abs() < 1e-9);
        assert!(!terminal.is_pure_noise());
        assert!(BetaSchedule::cosine(1000).build().unwrap().terminal_signal().is_pure_noise());
        assert!(BetaSchedule::linear(1000).build().unwrap().terminal_signal().is_pure_noise());
        let warning = terminal_warning(&s).unwrap();
        assert!(
            warning.contains("22 % of the image") && warning.contains("FD 56.1") && warning.contains("78.0 %"),
            "{warning}"
        );
        assert!(terminal_warning(&BetaSchedule::cosine(50).build().unwrap()).is_none());
    }

    #[test]
    fn terminal_fixes_are_the_smallest_that_reach_pure_noise() {
        let schedule = BetaSchedule::default_for(ScheduleKind::Sigmoid, 300);
        let (steps, beta_end) = terminal_fixes(&schedule);
        let steps = steps.unwrap();
        let pure = |s: BetaSchedule| s.build().unwrap().terminal_signal().is_pure_noise();
        assert!(
            pure(BetaSchedule { steps, ..schedule }) && !pure(BetaSchedule { steps: steps - 1, ..schedule }),
            "T = {steps}"
        );
        let beta_end = beta_end.unwrap();
        assert!(pure(BetaSchedule { beta_end, ..schedule }), "β_end = {beta_end}");
        assert!(
            !pure(BetaSchedule { beta_end: beta_end * 0.98, ..schedule }),
            "β_end = {beta_end} is about the smallest"
        );
        // Cosine ignores β_end; a schedule that is already pure noise needs nothing.
        assert_eq!(terminal_fixes(&BetaSchedule { steps: 5, ..BetaSchedule::cosine(5) }).1, None);
        assert_eq!(terminal_fixes(&BetaSchedule::linear(1000)), (None, None));
    }

    #[test]
    fn the_sweep_in_code_is_the_table_in_the_models_readme() {
        let readme = include_str!("../../assets/models/README.md");
        let rows: Vec<Vec<String>> = readme
            .lines()
            .skip_while(|l| !l.starts_with("| kind | T | β_end | ᾱ_T"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|l| l.trim_matches('|').split('|').map(|c| c.trim().to_string()).collect())
            .collect();
        assert_eq!(rows.len(), SCHEDULE_SWEEP.len(), "{rows:?}");
        for (row, measured) in rows.iter().zip(SCHEDULE_SWEEP) {
            let number = |i: usize| row[i].trim_end_matches(" %").parse::<f64>().unwrap();
            assert_eq!(row[0], measured.kind.name(), "{row:?}");
            assert_eq!(number(1) as usize, measured.steps, "{row:?}");
            assert_eq!(row[2].parse::<f64>().ok(), measured.beta_end, "{row:?}");
            assert!((number(3) - measured.alpha_bar).abs() <= 1e-3 * measured.alpha_bar, "{row:?}");
            assert_eq!((number(6), number(7)), (measured.frechet_distance, measured.accuracy), "{row:?}");
        }
    }
}
