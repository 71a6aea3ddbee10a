//! Heun's second-order step (Karras et al. 2022, Algorithm 1): the Euler step, then ε̂' at the point it
//! reached and x_{s'}/α_{s'} = x_s/α_s + (σ^K_{s'} - σ^K_s) (ε̂ + ε̂') / 2; a plain Euler step into σ = 0.

use super::ddim::ddim_step;
use super::sampler::{Correction, NoiseLevel, PlannedStep};

/// Heun's correction is left out of a step that divides σ^K by more than this. The trapezoid weighs the
/// slope at the end of the step by (σ - σ') / 2 while the slope's error there grows as 1 / σ': an error δ
/// of x̂_0 at σ' moves x by (σ/σ' - 1) δ / 2. Trailing spacing on the cosine schedule makes its first step
/// from σ^K = 2·10⁴ to 7 (a factor of 3000): corrected, that step ruins the image; as an Euler step it is
/// exactly DDIM's. Karras et al.'s own steps divide σ by less than 2 until the last.
pub const HEUN_MAX_SIGMA_RATIO: f64 = 10.0;

pub(super) fn heun_step(from: NoiseLevel, to: NoiseLevel) -> PlannedStep {
    let euler = ddim_step(from, to, 0.0);
    if to.alpha_bar >= 1.0 || from.karras_sigma() > HEUN_MAX_SIGMA_RATIO * to.karras_sigma() {
        return euler;
    }
    let correction = Correction {
        alpha_bar: to.alpha_bar,
        one_minus_alpha_bar: to.one_minus_alpha_bar,
        log_snr: to.log_snr,
        coef_xt: to.alpha() / from.alpha(),
        coef_eps: 0.5 * to.alpha() * (to.karras_sigma() - from.karras_sigma()),
    };
    PlannedStep { correction: Some(correction), ..euler }
}
