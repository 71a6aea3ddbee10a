//! A sampling step written out the way its method's paper writes it, with the numbers of that step: what
//! "This step" shows above the term pictures and what `explain` prints. The terms themselves (and their
//! coefficients in x) come from [`SamplingPlan::terms`]; this file only names and evaluates the method's
//! own quantities (DDPM's c₀, c₁ and σ_t, DDIM's σ, Euler's Δσ, DPM-Solver++'s h and r, …).

use super::sampler::{DdpmVariance, Method, Sampler, SamplingPlan};

/// One quantity of a step: its symbol, how it is defined, and its value at this step.
#[derive(Clone, Debug, PartialEq)]
pub struct Number {
    pub name: &'static str,
    pub definition: &'static str,
    pub value: f64,
}

/// A step's update in its method's own form, and the numbers that form uses at this step.
#[derive(Clone, Debug, PartialEq)]
pub struct Equation {
    /// The update in symbols, e.g. "x_{t-1} = μ̃_t + σ_t z,   μ̃_t = c₀ x̂_0 + c₁ x_t".
    pub form: &'static str,
    /// The same update in one plain sentence, for a learner.
    pub meaning: &'static str,
    /// Where the step starts and ends on the noise scale: t, ᾱ, σ and λ of both levels.
    pub levels: Vec<Number>,
    /// The method's own quantities at this step.
    pub numbers: Vec<Number>,
}

/// x̂_0 = (x_t - sqrt(1 - ᾱ_t) ε̂) / sqrt(ᾱ_t), the prediction every method starts from.
pub const X0_FORM: &str = "x̂_0 = (x_t - sqrt(1 - ᾱ_t) ε̂) / sqrt(ᾱ_t)";

/// Step `i` of `plan` (made by `sampler`) as its method writes it.
pub fn equation(sampler: &Sampler, plan: &SamplingPlan, i: usize) -> Equation {
    let step = plan.steps[i];
    let (from, to) = (step.level(), step.level_prev());
    let n = |name, definition, value| Number { name, definition, value };
    let levels = vec![
        n("t", "the timestep the step starts from", from.t as f64),
        n("ᾱ_t", "signal kept: x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε", from.alpha_bar),
        n("sqrt(1 - ᾱ_t)", "noise in x_t", from.sigma()),
        n("λ_t", "log SNR = ln(ᾱ_t / (1 - ᾱ_t))", from.log_snr),
        n("t'", "the timestep the step ends on", to.t as f64),
        n("ᾱ_{t'}", "signal kept at t'", to.alpha_bar),
        n("λ_{t'}", "log SNR at t'", to.log_snr),
    ];
    let ddim_sigma = step.noise_std;
    let (form, meaning, numbers) = match sampler.method {
        Method::Ddpm => {
            let beta = -(from.alpha_bar.ln() - to.alpha_bar.ln()).exp_m1();
            let variance = match sampler.ddpm_variance {
                DdpmVariance::BetaTilde => "σ_t² = β̃_t = (1 - ᾱ_{t-1}) / (1 - ᾱ_t) β_t",
                DdpmVariance::Beta => "σ_t² = β_t",
            };
            (
                "x_{t-1} = μ̃_t + σ_t z,   μ̃_t = c₀ x̂_0 + c₁ x_t",
                "The posterior mean mixes the predicted clean image with the current one; then fresh noise of \
                 the posterior's size is added.",
                vec![
                    n("β_t", "1 - ᾱ_t / ᾱ_{t-1}", beta),
                    n("c₀", "sqrt(ᾱ_{t-1}) β_t / (1 - ᾱ_t)", step.coef_x0),
                    n("c₁", "sqrt(α_t) (1 - ᾱ_{t-1}) / (1 - ᾱ_t)", step.coef_xt),
                    n("σ_t", variance, step.noise_std),
                ],
            )
        }
        Method::Ddim | Method::EulerAncestral => (
            "x_{t'} = sqrt(ᾱ_{t'}) x̂_0 + sqrt(1 - ᾱ_{t'} - σ²) ε̂ + σ z",
            "Put the predicted clean image at the next, lower noise level: keep part of the predicted noise \
             and replace the rest (η) with fresh noise.",
            vec![
                n("η", "how much of the noise is fresh (0: none, 1: as much as DDPM)", sampler_eta(sampler)),
                n("sqrt(ᾱ_{t'})", "signal at t'", to.alpha()),
                n("σ", "η sqrt((1 - ᾱ_{t'}) / (1 - ᾱ_t)) sqrt(1 - ᾱ_t / ᾱ_{t'})", ddim_sigma),
                n("sqrt(1 - ᾱ_{t'} - σ²)", "predicted noise kept", step.coef_eps),
            ],
        ),
        Method::Euler => (
            "x̃_{t'} = x̃_t + (σ_{t'} - σ_t) d,   d = (x̃_t - x̂_0) / σ_t,   x̃ = x / sqrt(ᾱ)",
            "Follow the direction from the clean prediction to the noisy image down to the next noise level: \
             one step of the probability-flow ODE in σ.",
            vec![
                n("σ_t", "sqrt((1 - ᾱ_t) / ᾱ_t)", from.karras_sigma()),
                n("σ_{t'}", "sqrt((1 - ᾱ_{t'}) / ᾱ_{t'})", to.karras_sigma()),
                n("Δσ", "σ_{t'} - σ_t", to.karras_sigma() - from.karras_sigma()),
                n("sqrt(ᾱ_{t'})", "back from x̃ to x", to.alpha()),
            ],
        ),
        Method::Heun => {
            let corrected = step.correction.is_some();
            (
                "x̃_{t'} = x̃_t + (σ_{t'} - σ_t) (d + d') / 2,   d' = the direction at the Euler step's end",
                if corrected {
                    "Take an Euler step, ask the network again where it lands, and move by the average of the \
                     two directions (the trapezoidal rule)."
                } else {
                    "This step is a plain Euler step: σ falls too far (or to 0) for the second evaluation to help."
                },
                vec![
                    n("σ_t", "sqrt((1 - ᾱ_t) / ᾱ_t)", from.karras_sigma()),
                    n("σ_{t'}", "sqrt((1 - ᾱ_{t'}) / ᾱ_{t'})", to.karras_sigma()),
                    n("Δσ", "σ_{t'} - σ_t", to.karras_sigma() - from.karras_sigma()),
                    n("second evaluation", "1 = yes, 0 = Euler only", f64::from(u8::from(corrected))),
                ],
            )
        }
        Method::DpmSolver2M | Method::DpmSolver2MSde => {
            let sde = sampler.method == Method::DpmSolver2MSde;
            let h = 0.5 * (to.log_snr - from.log_snr);
            let previous = i.checked_sub(1).map(|k| plan.steps[k].level());
            let r = previous.map_or(f64::NAN, |p| 0.5 * (from.log_snr - p.log_snr) / h);
            let mut numbers = vec![
                n("h", "λ'/2 - λ/2, the step's length in half log SNR", h),
                n("r", "h of the previous step / h (multistep; none at the first step)", r),
                n("D", "weight of this x̂_0: 1 + 1/(2r)", if previous.is_some() { 1.0 + 0.5 / r } else { 1.0 }),
                n("σ_{t'} / σ_t", "sqrt(1 - ᾱ_{t'}) / sqrt(1 - ᾱ_t)", to.sigma() / from.sigma().max(f64::MIN_POSITIVE)),
            ];
            if sde {
                numbers.push(n("σ_{t'} sqrt(1 - e^{-2h})", "fresh noise", step.noise_std));
            }
            let (form, meaning) = if sde {
                (
                    "x_{t'} = (σ_{t'}/σ_t) e^{-h} x_t + α_{t'} (1 - e^{-2h}) D + σ_{t'} sqrt(1 - e^{-2h}) z,   \
                     D = (1 + 1/(2r)) x̂_0 - 1/(2r) x̂_0,prev",
                    "Like DPM++ 2M, but it forgets part of x_t and replaces it with fresh noise (an SDE step).",
                )
            } else {
                (
                    "x_{t'} = (σ_{t'}/σ_t) x_t - α_{t'} (e^{-h} - 1) D,   D = (1 + 1/(2r)) x̂_0 - 1/(2r) x̂_0,prev",
                    "Solve the ODE exactly for a clean prediction that changes linearly in λ, extrapolating from \
                     this step's and the previous step's x̂_0.",
                )
            };
            (form, meaning, numbers)
        }
    };
    Equation { form, meaning, levels, numbers }
}

/// A number as "This step" and `explain` print it: whole numbers as they are, else 4 decimals, or
/// scientific notation when tiny or huge; "—" for none (NaN).
pub fn number_text(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() >= 1.0 && v.abs() < 1e6 {
        format!("{v:.0}")
    } else if v.is_nan() {
        "—".into()
    } else if v == 0.0 || (1e-3..1e4).contains(&v.abs()) {
        format!("{v:.4}")
    } else {
        format!("{v:.3e}")
    }
}

fn sampler_eta(sampler: &Sampler) -> f64 {
    match sampler.method {
        Method::EulerAncestral => 1.0,
        _ => sampler.eta,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::BetaSchedule;

    fn number(equation: &Equation, name: &str) -> f64 {
        equation.levels.iter().chain(&equation.numbers).find(|n| n.name == name).map(|n| n.value).unwrap()
    }

    #[test]
    fn ddpm_shows_the_schedules_posterior_coefficients() {
        let schedule = BetaSchedule::linear(1000).build().unwrap();
        let sampler = Sampler::ddpm(DdpmVariance::BetaTilde);
        let plan = sampler.plan(&schedule).unwrap();
        let i = 400; // t = 600
        let e = equation(&sampler, &plan, i);
        let t = 600;
        assert_eq!(number(&e, "t"), t as f64);
        assert_eq!(number(&e, "ᾱ_t"), schedule.alpha_bar[t - 1]);
        assert_eq!(number(&e, "c₀"), schedule.posterior_coef_x0[t - 1]);
        assert_eq!(number(&e, "c₁"), schedule.posterior_coef_xt[t - 1]);
        assert!((number(&e, "σ_t").powi(2) - schedule.beta_tilde[t - 1]).abs() < 1e-12);
        assert!((number(&e, "β_t") - schedule.beta[t - 1]).abs() < 1e-9);
    }

    #[test]
    fn dpm_solver_weights_reproduce_the_plans_coefficients() {
        let schedule = BetaSchedule::linear(1000).build().unwrap();
        let sampler = Sampler::new(Method::DpmSolver2M, 20);
        let plan = sampler.plan(&schedule).unwrap();
        let i = 10;
        let e = equation(&sampler, &plan, i);
        let step = plan.steps[i];
        let (h, d) = (number(&e, "h"), number(&e, "D"));
        let weight = -step.level_prev().alpha() * (-h).exp_m1();
        assert!((weight * d - step.coef_x0).abs() < 1e-9, "{} vs {}", weight * d, step.coef_x0);
        assert!((number(&e, "σ_{t'} / σ_t") - step.coef_xt).abs() < 1e-12);
        assert!(number(&e, "r") > 0.0);
        assert!(equation(&sampler, &plan, 0).numbers.iter().any(|n| n.name == "r" && n.value.is_nan()));
    }

    #[test]
    fn every_method_has_its_form() {
        let schedule = BetaSchedule::linear(1000).build().unwrap();
        for method in Method::ALL {
            let sampler = Sampler::new(method, 10);
            let plan = sampler.plan(&schedule).unwrap();
            for i in [0, plan.len() / 2, plan.len() - 1] {
                let e = equation(&sampler, &plan, i);
                assert!(!e.form.is_empty() && !e.meaning.is_empty() && !e.numbers.is_empty(), "{method:?}");
                assert_eq!(number(&e, "ᾱ_t"), plan.steps[i].alpha_bar);
            }
        }
    }
}
