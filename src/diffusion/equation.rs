//! A sampling step written out the way its method's paper writes it, with the numbers of that step: what
//! "This step" shows above the term pictures and what `explain` prints. Every number here is read from the
//! planned step the sampler applies ([`PlannedStep`]: its coefficients, σ, and DPM-Solver's h, r and
//! weight); this file only names and formats them, and hands out each term's coefficient beside the term
//! it multiplies ([`Number::term`]), so that a test can rebuild x_{t'} from what is printed.

use super::sampler::{
    DdpmVariance, EPS, EPS_SECOND, Method, NOISE, PlannedStep, Sampler, SamplingPlan, X_T, X0, X0_PREVIOUS,
};

/// One quantity of a step: its symbol, how it is defined, and its value at this step.
#[derive(Clone, Debug, PartialEq)]
pub struct Number {
    pub name: &'static str,
    pub definition: &'static str,
    pub value: f64,
    /// The term of the update this number multiplies ([`crate::diffusion::sampler::X0`], …), for the
    /// coefficients; `None` for the method's other quantities (h, r, β_t, …).
    pub term: Option<&'static str>,
}

impl Number {
    /// "name = value", as "This step", `explain` and the 2-D lab print it.
    pub fn text(&self) -> String {
        format!("{} = {}", self.name, number_text(self.value))
    }

    /// The definition, led by the term a coefficient multiplies ("× x̂_0: …").
    pub fn described(&self) -> String {
        match self.term {
            Some(term) => format!("× {term}: {}", self.definition),
            None => self.definition.to_string(),
        }
    }
}

/// A step's update in its method's own form, and the numbers that form uses at this step.
#[derive(Clone, Debug, PartialEq)]
pub struct Equation {
    /// The update in symbols, e.g. "x_{t-1} = μ̃_t + σ_t z,   μ̃_t = c₀ x̂_0 + c₁ x_t".
    pub form: &'static str,
    /// The same update in one plain sentence, for a learner.
    pub meaning: &'static str,
    /// Where the step starts and ends on the noise scale: t, ᾱ, σ and λ of both levels (λ_{t'} left out
    /// at the clean image, where it is +∞).
    pub levels: Vec<Number>,
    /// The method's own quantities at this step, then the coefficients of its terms.
    pub numbers: Vec<Number>,
}

impl Equation {
    /// The coefficient of each term the update adds, as the step used it: x_{t'} = Σ value × term.
    pub fn coefficients(&self) -> impl Iterator<Item = (&'static str, f64)> + '_ {
        self.numbers.iter().filter_map(|n| n.term.map(|term| (term, n.value)))
    }
}

/// x̂_0 = (x_t - sqrt(1 - ᾱ_t) ε̂) / sqrt(ᾱ_t), the prediction every method starts from.
pub const X0_FORM: &str = "x̂_0 = (x_t - sqrt(1 - ᾱ_t) ε̂) / sqrt(ᾱ_t)";

/// Step `i` of `plan` (made by `sampler`) as its method writes it.
pub fn equation(sampler: &Sampler, plan: &SamplingPlan, i: usize) -> Equation {
    let step = plan.steps[i];
    let (from, to) = (step.level(), step.level_prev());
    let n = |name, definition, value| Number { name, definition, value, term: None };
    let c = |name, definition, value, term| Number { name, definition, value, term: Some(term) };
    let mut levels = vec![
        n("t", "the timestep the step starts from", from.t as f64),
        n("ᾱ_t", "signal kept: x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε", from.alpha_bar),
        n("sqrt(1 - ᾱ_t)", "noise in x_t", from.sigma()),
        n("λ_t", "log SNR = ln(ᾱ_t / (1 - ᾱ_t))", from.log_snr),
        n("t'", "the timestep the step ends on (0: the clean image)", to.t as f64),
        n("ᾱ_{t'}", "signal kept at t'", to.alpha_bar),
    ];
    if to.log_snr.is_finite() {
        levels.push(n("λ_{t'}", "log SNR at t'", to.log_snr));
    }
    let (form, meaning, numbers) = match sampler.method {
        Method::Ddpm => {
            let beta = -(from.alpha_bar.ln() - to.alpha_bar.ln()).exp_m1();
            let variance = match (step.noise_std, sampler.ddpm_variance) {
                (0.0, _) => "0 at t = 1 (Ho et al. Alg. 2: the last step adds no noise)",
                (_, DdpmVariance::BetaTilde) => "σ_t² = β̃_t = (1 - ᾱ_{t-1}) / (1 - ᾱ_t) β_t",
                (_, DdpmVariance::Beta) => "σ_t² = β_t",
            };
            (
                "x_{t-1} = μ̃_t + σ_t z,   μ̃_t = c₀ x̂_0 + c₁ x_t",
                "The posterior mean mixes the predicted clean image with the current one; then fresh noise of \
                 the posterior's size is added.",
                vec![
                    n("β_t", "1 - ᾱ_t / ᾱ_{t-1}", beta),
                    c("c₀", "sqrt(ᾱ_{t-1}) β_t / (1 - ᾱ_t)", step.coef_x0, X0),
                    c("c₁", "sqrt(α_t) (1 - ᾱ_{t-1}) / (1 - ᾱ_t)", step.coef_xt, X_T),
                    c("σ_t", variance, step.noise_std, NOISE),
                ],
            )
        }
        Method::Ddim | Method::EulerAncestral => (
            "x_{t'} = sqrt(ᾱ_{t'}) x̂_0 + sqrt(1 - ᾱ_{t'} - σ²) ε̂ + σ z",
            "Put the predicted clean image at the next, lower noise level: keep part of the predicted noise \
             and replace the rest (η) with fresh noise.",
            vec![
                n("η", "how much of the noise is fresh (0: none, 1: as much as DDPM)", sampler_eta(sampler)),
                c("sqrt(ᾱ_{t'})", "signal at t'", step.coef_x0, X0),
                c("sqrt(1 - ᾱ_{t'} - σ²)", "predicted noise kept", step.coef_eps, EPS),
                c("σ", "η sqrt((1 - ᾱ_{t'}) / (1 - ᾱ_t)) sqrt(1 - ᾱ_t / ᾱ_{t'})", step.noise_std, NOISE),
            ],
        ),
        Method::Euler => (
            "x̃_{t'} = x̃_t + (σ_{t'} - σ_t) d,   d = (x̃_t - x̂_0) / σ_t,   x̃ = x / sqrt(ᾱ)",
            "Follow the direction from the clean prediction to the noisy image down to the next noise level: \
             one step of the probability-flow ODE in σ (in x, the same update as DDIM with η = 0).",
            [karras_sigmas(&step), euler_coefficients(&step)].concat(),
        ),
        Method::Heun => match step.correction {
            Some(correction) => (
                "x̃_{t'} = x̃_t + (σ_{t'} - σ_t) (d + d') / 2,   d' = the direction at the Euler step's end",
                "Take an Euler step, ask the network again where it lands, and move by the average of the \
                 two directions (the trapezoidal rule).",
                [
                    karras_sigmas(&step),
                    vec![
                        c("sqrt(ᾱ_{t'} / ᾱ_t)", "x_t carried to t' (x̃ = x / sqrt(ᾱ))", correction.coef_xt, X_T),
                        c("sqrt(ᾱ_{t'}) Δσ / 2", "half the step, for each direction", correction.coef_eps, EPS),
                        c("sqrt(ᾱ_{t'}) Δσ / 2", "the same weight for ε̂'", correction.coef_eps, EPS_SECOND),
                    ],
                ]
                .concat(),
            ),
            None => (
                "x̃_{t'} = x̃_t + (σ_{t'} - σ_t) d,   d = (x̃_t - x̂_0) / σ_t   (Euler only)",
                "This step is a plain Euler step: σ falls too far (or to 0) for the second evaluation to help.",
                [karras_sigmas(&step), euler_coefficients(&step)].concat(),
            ),
        },
        Method::DpmSolver2M | Method::DpmSolver2MSde => dpm_solver(&step, sampler.method == Method::DpmSolver2MSde),
    };
    Equation { form, meaning, levels, numbers }
}

/// Karras et al.'s σ at both ends of a step and its length: the numbers of Euler's and Heun's forms.
fn karras_sigmas(step: &PlannedStep) -> Vec<Number> {
    let (from, to) = (step.level().karras_sigma(), step.level_prev().karras_sigma());
    let n = |name, definition, value| Number { name, definition, value, term: None };
    vec![
        n("σ_t", "sqrt((1 - ᾱ_t) / ᾱ_t)", from),
        n("σ_{t'}", "sqrt((1 - ᾱ_{t'}) / ᾱ_{t'})", to),
        n("Δσ", "σ_{t'} - σ_t", to - from),
    ]
}

/// An Euler step written in x: x_{t'} = sqrt(ᾱ_{t'}) x̂_0 + sqrt(1 - ᾱ_{t'}) ε̂.
fn euler_coefficients(step: &PlannedStep) -> Vec<Number> {
    let c = |name, definition, value, term| Number { name, definition, value, term: Some(term) };
    vec![
        c("sqrt(ᾱ_{t'})", "in x: the clean prediction's weight", step.coef_x0, X0),
        c("sqrt(ᾱ_{t'}) σ_{t'}", "in x: the predicted noise kept, sqrt(1 - ᾱ_{t'})", step.coef_eps, EPS),
    ]
}

/// DPM-Solver++(2M) and its SDE variant: second order where the step has r, first order on a plan's
/// first step, and x_{t'} = x̂_0 into the clean image.
fn dpm_solver(step: &PlannedStep, sde: bool) -> (&'static str, &'static str, Vec<Number>) {
    let n = |name, definition, value| Number { name, definition, value, term: None };
    let c = |name, definition, value, term| Number { name, definition, value, term: Some(term) };
    let Some(m) = step.multistep else {
        return (
            "x_{t'} = x̂_0",
            "The last step lands on the clean image (σ_{t'} = 0, so the step has no length h to extrapolate \
             over): it is first order, and the result is the clean prediction itself.",
            vec![c("weight of x̂_0", "1: the clean image is x̂_0", step.coef_x0, X0)],
        );
    };
    let mut numbers = vec![n("h", "λ'/2 - λ/2, the step's length in half log SNR", m.h)];
    let (form, meaning) = match (m.r, sde) {
        (Some(r), _) => {
            numbers.push(n("r", "h of the previous step / h", r));
            numbers.push(n("1 + 1/(2r)", "this x̂_0's share of D (the previous x̂_0's is -1/(2r))", m.d_scale()));
            if sde {
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
            }
        }
        (None, true) => (
            "x_{t'} = (σ_{t'}/σ_t) e^{-h} x_t + α_{t'} (1 - e^{-2h}) x̂_0 + σ_{t'} sqrt(1 - e^{-2h}) z",
            "The first step has no earlier prediction to extrapolate from: first order (D = x̂_0), with fresh \
             noise (an SDE step).",
        ),
        (None, false) => (
            "x_{t'} = (σ_{t'}/σ_t) x_t - α_{t'} (e^{-h} - 1) x̂_0",
            "The first step has no earlier prediction to extrapolate from: it is first order (D = x̂_0), the ODE \
             solved exactly for a constant clean prediction.",
        ),
    };
    let weight = if sde { "α_{t'} (1 - e^{-2h}), the weight of D" } else { "α_{t'} (1 - e^{-h}), the weight of D" };
    numbers.push(c(if sde { "(σ_{t'}/σ_t) e^{-h}" } else { "σ_{t'}/σ_t" }, "x_t carried to t'", step.coef_xt, X_T));
    match m.r {
        Some(_) => {
            numbers.push(n("w_D", weight, m.weight));
            numbers.push(c("w_D (1 + 1/(2r))", "this step's x̂_0 in the update", step.coef_x0, X0));
            numbers.push(c("-w_D / (2r)", "the previous step's x̂_0 in the update", step.coef_x0_prev, X0_PREVIOUS));
        }
        None => numbers.push(c("w_D", weight, step.coef_x0, X0)),
    }
    if sde {
        numbers.push(c("σ_{t'} sqrt(1 - e^{-2h})", "fresh noise", step.noise_std, NOISE));
    }
    (form, meaning, numbers)
}

/// A number as "This step" and `explain` print it: whole numbers as they are, else 4 decimals, or
/// scientific notation when tiny or huge; "—" for none (NaN).
pub fn number_text(v: f64) -> String {
    if v == 0.0 {
        "0".into()
    } else if v.fract() == 0.0 && v.abs() >= 1.0 && v.abs() < 1e6 {
        format!("{v:.0}")
    } else if v.is_nan() {
        "—".into()
    } else if (1e-3..1e4).contains(&v.abs()) {
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
    use crate::diffusion::noise::NoiseSource;
    use burn::prelude::*;

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
        // Ho et al.'s last step adds no noise, and says so instead of "σ_t² = β_t".
        let last = equation(&Sampler::ddpm(DdpmVariance::Beta), &plan, 999);
        let sigma = last.numbers.iter().find(|n| n.name == "σ_t").unwrap();
        assert_eq!(sigma.value, 0.0);
        assert!(sigma.definition.contains("0 at t = 1"), "{}", sigma.definition);
    }

    #[test]
    fn dpm_solver_weights_reproduce_the_plans_coefficients() {
        let schedule = BetaSchedule::linear(1000).build().unwrap();
        let sampler = Sampler::new(Method::DpmSolver2M, 20);
        let plan = sampler.plan(&schedule).unwrap();
        let i = 10;
        let e = equation(&sampler, &plan, i);
        let step = plan.steps[i];
        let (h, d) = (number(&e, "h"), number(&e, "1 + 1/(2r)"));
        let weight = -step.level_prev().alpha() * (-h).exp_m1();
        assert!((weight - number(&e, "w_D")).abs() < 1e-12);
        assert!((weight * d - step.coef_x0).abs() < 1e-9, "{} vs {}", weight * d, step.coef_x0);
        assert!((number(&e, "σ_{t'}/σ_t") - step.coef_xt).abs() < 1e-12);
        let previous = plan.steps[i - 1];
        let h_previous = 0.5 * (previous.log_snr_prev - previous.log_snr);
        assert!((number(&e, "r") - h_previous / h).abs() < 1e-12);
        // The first step is first order: no r, D = x̂_0.
        let first = equation(&sampler, &plan, 0);
        assert!(first.numbers.iter().all(|n| n.name != "r"));
        assert!(first.form.ends_with("x̂_0") && !first.form.contains('D'), "{}", first.form);
    }

    /// The last step of DPM++ 2M into σ = 0 is x_{t'} = x̂_0, shown with finite numbers (it used to print
    /// h = inf, D = inf under the second-order form).
    #[test]
    fn the_last_step_into_the_clean_image_is_shown_as_it_is_taken() {
        let schedule = BetaSchedule::linear(1000).build().unwrap();
        for method in [Method::DpmSolver2M, Method::DpmSolver2MSde] {
            let sampler = Sampler::new(method, 20).with_spacing(crate::diffusion::Spacing::Karras);
            let plan = sampler.plan(&schedule).unwrap();
            let e = equation(&sampler, &plan, 19);
            assert_eq!(e.form, "x_{t'} = x̂_0");
            assert_eq!(e.coefficients().collect::<Vec<_>>(), [(X0, 1.0)]);
            assert!(e.levels.iter().chain(&e.numbers).all(|n| n.value.is_finite()), "{e:?}");
        }
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

    fn values(t: Tensor<2>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    /// x_{t'} rebuilt from what the equation prints: each coefficient it hands out (the stored value,
    /// not its text) times its term's picture. Panics when a coefficient names a term the step did not add.
    fn rebuilt(e: &Equation, terms: &crate::diffusion::sampler::StepTerms<2>) -> Tensor<2> {
        let mut sum = terms.x0_pred.zeros_like();
        for (symbol, coefficient) in e.coefficients().filter(|(_, c)| *c != 0.0) {
            let term = terms.terms.iter().find(|t| t.symbol == symbol);
            let term = term.unwrap_or_else(|| panic!("{symbol} is printed but not a term of the step"));
            sum = sum.add(term.value.clone().mul_scalar(coefficient));
        }
        sum
    }

    /// What "This step" and `explain` print reproduces the step taken: for every sampler, at its first, a
    /// middle and its last step, and at the first step of a branch that keeps its parent's plan (second
    /// order for DPM++ 2M, with the parent's previous x̂_0), the printed coefficients times the term
    /// pictures give the x_{t'} the sampler computed, and every printed number is finite.
    #[test]
    fn the_printed_coefficients_times_the_terms_give_the_step() {
        let device = Device::flex();
        let schedule = BetaSchedule::cosine(1000).build().unwrap();
        let karras = crate::diffusion::Spacing::Karras;
        let samplers = [
            Sampler::ddpm(DdpmVariance::BetaTilde),
            Sampler::ddpm(DdpmVariance::Beta),
            Sampler::ddim(20, 0.0),
            Sampler::ddim(20, 0.6),
            Sampler::new(Method::Euler, 20),
            Sampler::new(Method::EulerAncestral, 20),
            Sampler::new(Method::Heun, 10),
            Sampler::new(Method::Heun, 10).with_spacing(karras),
            Sampler::new(Method::DpmSolver2M, 20).with_spacing(karras),
            Sampler::new(Method::DpmSolver2M, 20),
            Sampler::new(Method::DpmSolver2MSde, 20).with_spacing(karras),
        ];
        let mut source = NoiseSource::new(5);
        let mut tensor = |scale: f32| {
            let values: Vec<f32> = source.values(2 * 16).into_iter().map(|v| v * scale).collect();
            Tensor::<2>::from_data(TensorData::new(values, [2, 16]), &device)
        };
        let net = |x: Tensor<2>, log_snr: f64| x.mul_scalar(0.3).add_scalar(0.01 * log_snr.clamp(-20.0, 20.0));
        for sampler in samplers {
            let whole = sampler.plan(&schedule).unwrap();
            let middle = whole.len() / 2;
            // A branch from step `middle` that keeps its parent's sampler: the rest of the parent's plan.
            let branch = SamplingPlan { steps: whole.steps[middle..].to_vec(), ..whole.clone() };
            let cases = [(&whole, 0, "first"), (&whole, middle, "middle"), (&whole, whole.len() - 1, "last")];
            for (plan, i, name) in cases.into_iter().chain([(&branch, 0, "a branch's first")]) {
                let (x_t, eps, z, previous) = (tensor(1.0), tensor(1.0), tensor(1.0), tensor(0.5));
                let previous = (i > 0 || name.starts_with('a')).then_some(&previous);
                let taken = plan.step(i, x_t.clone(), eps.clone(), Some(z.clone()), previous, &mut |x, l| net(x, l));
                let terms = plan.terms(i, x_t, eps, Some(z), previous, &mut |x, l| net(x, l));
                let e = equation(&sampler, plan, i);
                let label = format!("{}, {name} step", sampler.label());
                assert!(e.levels.iter().chain(&e.numbers).all(|n| n.value.is_finite()), "{label}: {e:?}");
                let difference = values(rebuilt(&e, &terms).sub(taken.x_prev))
                    .iter()
                    .fold(0.0f32, |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d.abs()) });
                assert!(difference < 1e-4, "{label}: printed coefficients miss the step by {difference}");
                if sampler.method == Method::DpmSolver2M && name.starts_with('a') {
                    let r = e.numbers.iter().find(|n| n.name == "r").map(|n| n.value);
                    assert_eq!(r, whole.steps[middle].multistep.and_then(|m| m.r), "{label}: r of the parent's step");
                }
            }
        }
    }
}
