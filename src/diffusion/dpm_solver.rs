//! DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) and its SDE variant (diffusers' `sde-dpmsolver++`).
//!
//! With λ_D = ln(α/σ), h = λ_D(s') - λ_D(s), r = h_prev / h and D = (1 + 1/(2r)) x̂_0 - 1/(2r) x̂_0^prev:
//!   ODE: x_{s'} = (σ_{s'}/σ_s) x_s - α_{s'} (e^{-h} - 1) D
//!   SDE: x_{s'} = (σ_{s'}/σ_s) e^{-h} x_s + α_{s'} (1 - e^{-2h}) D + σ_{s'} sqrt(1 - e^{-2h}) z
//! First order (D = x̂_0) on the first step and into σ = 0 (where it gives x̂_0), as diffusers does.

use super::sampler::{Multistep, NoiseLevel, PlannedStep};

pub(super) fn dpm_solver_step(
    previous: Option<NoiseLevel>,
    from: NoiseLevel,
    to: NoiseLevel,
    sde: bool,
) -> PlannedStep {
    let step = PlannedStep::between(from, to);
    if to.alpha_bar >= 1.0 {
        // λ' = ∞: the first-order update into σ = 0 is x̂_0 itself.
        return PlannedStep { coef_x0: 1.0, ..step };
    }
    let h = to.half_log_snr() - from.half_log_snr();
    // The weight of D: α' (1 - e^{-h}) for the ODE, α' (1 - e^{-2h}) for the SDE.
    let (coef_xt, weight, noise_std) = if sde {
        let keep = -(-2.0 * h).exp_m1();
        (to.sigma() / from.sigma() * (-h).exp(), to.alpha() * keep, to.sigma() * keep.sqrt())
    } else {
        (to.sigma() / from.sigma(), -to.alpha() * (-h).exp_m1(), 0.0)
    };
    let r = previous.map(|previous| (from.half_log_snr() - previous.half_log_snr()) / h);
    let multistep = Multistep { h, r, weight };
    let coef_x0_prev = r.map_or(0.0, |r| -weight * 0.5 / r);
    PlannedStep {
        coef_x0: weight * multistep.d_scale(),
        coef_x0_prev,
        coef_xt,
        noise_std,
        multistep: Some(multistep),
        ..step
    }
}
