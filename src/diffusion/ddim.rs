//! DDPM (Ho et al. 2020) and DDIM (Song et al. 2021) steps, which Euler and Euler ancestral are too.
//!
//! DDPM: every t, x_{t-1} = μ̃_t(x̂_0, x_t) + σ z with σ² = β̃_t or β_t.
//! DDIM: x_{s'} = sqrt(ᾱ_{s'}) x̂_0 + sqrt(1 - ᾱ_{s'} - σ²) ε̂ + σ z,
//!       σ = η sqrt((1 - ᾱ_{s'}) / (1 - ᾱ_s)) sqrt(1 - ᾱ_s / ᾱ_{s'}).
//! Euler (Karras et al. 2022) moves x/α along d = (x/α - x̂_0) / σ^K = ε̂: x_{s'}/α_{s'} = x̂_0 + σ^K_{s'} ε̂,
//! which is DDIM at η = 0. Euler ancestral (k-diffusion) steps to σ_down and adds σ_up z, with
//! σ_up² = σ^K_{s'}² (σ^K_s² - σ^K_{s'}²) / σ^K_s² and σ_down² = σ^K_{s'}² - σ_up²; multiplied out, α_{s'} σ_up is
//! DDIM's σ at η = 1 and α_{s'} σ_down its ε̂ coefficient: DDIM at η = 1.

use super::DdpmVariance;
use super::sampler::{NoiseLevel, PlannedStep};
use super::schedule::NoiseSchedule;

pub(super) fn ddpm_step(schedule: &NoiseSchedule, t: usize, variance: DdpmVariance) -> PlannedStep {
    let i = t - 1;
    // Ho et al. add no noise on the last step (t = 1): the output is the posterior mean.
    let noise_std = match (t, variance) {
        (1, _) => 0.0,
        (_, DdpmVariance::Beta) => schedule.beta[i].sqrt(),
        (_, DdpmVariance::BetaTilde) => schedule.beta_tilde[i].sqrt(),
    };
    PlannedStep {
        coef_x0: schedule.posterior_coef_x0[i],
        coef_xt: schedule.posterior_coef_xt[i],
        noise_std,
        ..PlannedStep::between(NoiseLevel::at(schedule, t), NoiseLevel::at(schedule, t - 1))
    }
}

/// DDIM's step from level `from` to `to` with η (0 deterministic; 1 as noisy as DDPM).
pub fn ddim_step(from: NoiseLevel, to: NoiseLevel, eta: f64) -> PlannedStep {
    // 1 - ᾱ_s / ᾱ_{s'} through logarithms, exact when the two are close.
    let one_minus_ratio = -(from.alpha_bar.ln() - to.alpha_bar.ln()).exp_m1();
    let sigma = eta * (to.one_minus_alpha_bar / from.one_minus_alpha_bar * one_minus_ratio).sqrt();
    PlannedStep {
        coef_x0: to.alpha(),
        coef_eps: (to.one_minus_alpha_bar - sigma * sigma).max(0.0).sqrt(),
        noise_std: sigma,
        ..PlannedStep::between(from, to)
    }
}
