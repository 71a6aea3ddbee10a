//! The reverse process: DDPM ancestral sampling (Ho et al. 2020) and DDIM (Song et al. 2021).
//!
//! Both are written as one update, planned once in f64 for a schedule:
//!
//!   x̂_0     = (x_t - sqrt(1 - ᾱ_t) ε) / sqrt(ᾱ_t)            (clipped to the data range if asked)
//!   x_{t'}  = c_x0 x̂_0 + c_xt x_t + c_eps ε̂ + σ z,  z ~ N(0, I)
//!
//! where t' is the next (smaller) timestep and ε̂ is ε recomputed from the clipped x̂_0.
//! DDPM: t' = t - 1, c_x0 and c_xt are the posterior-mean coefficients of μ̃_t, c_eps = 0, σ² = β̃_t or β_t.
//! DDIM: c_x0 = sqrt(ᾱ_{t'}), c_xt = 0, c_eps = sqrt(1 - ᾱ_{t'} - σ²),
//!       σ = η sqrt((1 - ᾱ_{t'}) / (1 - ᾱ_t)) sqrt(1 - ᾱ_t / ᾱ_{t'}).

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::schedule::NoiseSchedule;

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

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "sampler", rename_all = "snake_case")]
pub enum SamplerKind {
    /// Ancestral sampling through every one of the T steps.
    Ddpm { variance: DdpmVariance },
    /// `steps` evenly spaced steps ("trailing": the first is t = T, pure noise); η = 0 is deterministic,
    /// η = 1 with every step is DDPM with β̃_t.
    Ddim { eta: f64, steps: usize },
}

/// A sampler and whether it clips the predicted x_0 to the data range ([-1, 1] for pixels; a latent model
/// widens it with [`SamplingPlan::with_x0_bound`]).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sampler {
    pub kind: SamplerKind,
    pub clip_x0: bool,
}

impl Default for Sampler {
    fn default() -> Self {
        Self::ddpm(DdpmVariance::BetaTilde)
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SamplerError {
    #[error("DDIM steps must be between 1 and the schedule's {max} steps, got {steps}")]
    Steps { steps: usize, max: usize },
    #[error("DDIM eta must be in [0, 1], got {0}")]
    Eta(f64),
}

impl Sampler {
    pub fn ddpm(variance: DdpmVariance) -> Self {
        Self { kind: SamplerKind::Ddpm { variance }, clip_x0: true }
    }

    pub fn ddim(steps: usize, eta: f64) -> Self {
        Self { kind: SamplerKind::Ddim { eta, steps }, clip_x0: true }
    }

    pub fn with_clip_x0(self, clip_x0: bool) -> Self {
        Self { clip_x0, ..self }
    }

    /// Short human name, e.g. "DDPM (β̃)" or "DDIM 50 steps, η = 0".
    pub fn label(&self) -> String {
        match self.kind {
            SamplerKind::Ddpm { variance: DdpmVariance::Beta } => "DDPM (σ² = β)".into(),
            SamplerKind::Ddpm { variance: DdpmVariance::BetaTilde } => "DDPM (σ² = β̃)".into(),
            SamplerKind::Ddim { eta, steps } => format!("DDIM {steps} steps, η = {eta}"),
        }
    }

    pub fn validate(&self, schedule_steps: usize) -> Result<(), SamplerError> {
        if let SamplerKind::Ddim { eta, steps } = self.kind {
            if steps == 0 || steps > schedule_steps {
                return Err(SamplerError::Steps { steps, max: schedule_steps });
            }
            if !(0.0..=1.0).contains(&eta) {
                return Err(SamplerError::Eta(eta));
            }
        }
        Ok(())
    }

    /// The timesteps visited, from T down, and the coefficients of each step.
    pub fn plan(&self, schedule: &NoiseSchedule) -> Result<SamplingPlan, SamplerError> {
        self.validate(schedule.steps())?;
        let big_t = schedule.steps();
        let steps = match self.kind {
            SamplerKind::Ddpm { variance } => (1..=big_t).rev().map(|t| ddpm_step(schedule, t, variance)).collect(),
            SamplerKind::Ddim { eta, steps } => {
                let timestep = |k: usize| ((steps - k) as f64 * big_t as f64 / steps as f64).round() as usize;
                (0..steps).map(|k| ddim_step(schedule, timestep(k), timestep(k + 1), eta)).collect()
            }
        };
        Ok(SamplingPlan { steps, clip_x0: self.clip_x0, x0_bound: 1.0 })
    }
}

/// One planned update from timestep `t` to `t_prev` (0 = the clean image).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PlannedStep {
    pub t: usize,
    pub t_prev: usize,
    pub alpha_bar: f64,
    pub alpha_bar_prev: f64,
    /// λ_t, what the network is conditioned on at this step.
    pub log_snr: f64,
    pub coef_x0: f64,
    pub coef_xt: f64,
    pub coef_eps: f64,
    /// σ, the standard deviation of the fresh noise added by this step.
    pub noise_std: f64,
}

fn ddpm_step(schedule: &NoiseSchedule, t: usize, variance: DdpmVariance) -> PlannedStep {
    let i = t - 1;
    // Ho et al. add no noise on the last step (t = 1): the output is the posterior mean.
    let noise_std = match (t, variance) {
        (1, _) => 0.0,
        (_, DdpmVariance::Beta) => schedule.beta[i].sqrt(),
        (_, DdpmVariance::BetaTilde) => schedule.beta_tilde[i].sqrt(),
    };
    PlannedStep {
        t,
        t_prev: t - 1,
        alpha_bar: schedule.alpha_bar[i],
        alpha_bar_prev: schedule.alpha_bar_prev[i],
        log_snr: schedule.log_snr[i],
        coef_x0: schedule.posterior_coef_x0[i],
        coef_xt: schedule.posterior_coef_xt[i],
        coef_eps: 0.0,
        noise_std,
    }
}

fn ddim_step(schedule: &NoiseSchedule, t: usize, t_prev: usize, eta: f64) -> PlannedStep {
    let i = t - 1;
    let alpha_bar = schedule.alpha_bar[i];
    let one_minus_alpha_bar = schedule.one_minus_alpha_bar[i];
    let (alpha_bar_prev, one_minus_alpha_bar_prev) = match t_prev {
        0 => (1.0, 0.0),
        p => (schedule.alpha_bar[p - 1], schedule.one_minus_alpha_bar[p - 1]),
    };
    // 1 - ᾱ_t / ᾱ_{t'} through logarithms, exact when the two are close.
    let one_minus_ratio = -(alpha_bar.ln() - alpha_bar_prev.ln()).exp_m1();
    let sigma = eta * (one_minus_alpha_bar_prev / one_minus_alpha_bar * one_minus_ratio).sqrt();
    PlannedStep {
        t,
        t_prev,
        alpha_bar,
        alpha_bar_prev,
        log_snr: schedule.log_snr[i],
        coef_x0: alpha_bar_prev.sqrt(),
        coef_xt: 0.0,
        coef_eps: (one_minus_alpha_bar_prev - sigma * sigma).max(0.0).sqrt(),
        noise_std: sigma,
    }
}

/// What one reverse step produces.
#[derive(Clone, Debug)]
pub struct StepOutput<const D: usize> {
    /// x_{t'}, the input of the next step.
    pub x_prev: Tensor<D>,
    /// x̂_0, the clean image the network's ε implies at this step.
    pub x0_pred: Tensor<D>,
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
    /// Why clipping matters: at t = T the schedules leave ᾱ_T tiny (1e-8 for the cosine one), so
    /// x̂_0 = (x_T - sqrt(1 - ᾱ_T) ε̂) / sqrt(ᾱ_T) multiplies the network's error by 1 / sqrt(ᾱ_T); without a
    /// bound the first steps throw x̂_0 thousands of units off and later steps cannot bring it back.
    pub fn with_x0_bound(self, bound: f64) -> Self {
        Self { x0_bound: bound, ..self }
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Whether step `i` adds fresh noise (and so needs a `noise` tensor).
    pub fn needs_noise(&self, i: usize) -> bool {
        self.steps[i].noise_std > 0.0
    }

    /// The predicted clean image x̂_0 = (x_t - sqrt(1 - ᾱ_t) ε) / sqrt(ᾱ_t) at step `i`, clipped if the plan says so.
    pub fn predict_x0<const D: usize>(&self, i: usize, x_t: Tensor<D>, eps: Tensor<D>) -> Tensor<D> {
        let step = &self.steps[i];
        let inv_sqrt_alpha_bar = 1.0 / step.alpha_bar.sqrt();
        let noise_to_signal = (1.0 - step.alpha_bar).sqrt() * inv_sqrt_alpha_bar;
        let x0 = x_t.mul_scalar(inv_sqrt_alpha_bar).sub(eps.mul_scalar(noise_to_signal));
        if self.clip_x0 { x0.clamp(-self.x0_bound, self.x0_bound) } else { x0 }
    }

    /// Step `i` of the plan: from x_t and the network's ε to x_{t'}. `noise` is z ~ N(0, I) of x_t's shape;
    /// with `None` the step returns its mean.
    pub fn step<const D: usize>(
        &self,
        i: usize,
        x_t: Tensor<D>,
        eps: Tensor<D>,
        noise: Option<Tensor<D>>,
    ) -> StepOutput<D> {
        let step = self.steps[i];
        let x0_pred = self.predict_x0(i, x_t.clone(), eps.clone());
        let mut x_prev = x0_pred.clone().mul_scalar(step.coef_x0);
        if step.coef_xt != 0.0 {
            x_prev = x_prev.add(x_t.clone().mul_scalar(step.coef_xt));
        }
        if step.coef_eps != 0.0 {
            // ε̂ consistent with the (possibly clipped) x̂_0: ε̂ = (x_t - sqrt(ᾱ_t) x̂_0) / sqrt(1 - ᾱ_t).
            let eps_hat = if self.clip_x0 {
                x_t.sub(x0_pred.clone().mul_scalar(step.alpha_bar.sqrt()))
                    .mul_scalar(1.0 / (1.0 - step.alpha_bar).sqrt())
            } else {
                eps
            };
            x_prev = x_prev.add(eps_hat.mul_scalar(step.coef_eps));
        }
        if let Some(z) = noise.filter(|_| step.noise_std > 0.0) {
            x_prev = x_prev.add(z.mul_scalar(step.noise_std));
        }
        StepOutput { x_prev, x0_pred }
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
        let plan = Sampler::default().plan(&schedule).unwrap();
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
            assert!((variance - schedule.beta_tilde[i]).abs() <= 1e-9 * schedule.beta_tilde[i].max(1e-300), "t={}", a.t);
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
                    let eps = x.clone().sub(x0.clone().mul_scalar(s.alpha_bar.sqrt())).mul_scalar(1.0 / (1.0 - s.alpha_bar).sqrt());
                    let z = plan.needs_noise(i).then(|| noise.tensor([2, 3], &device));
                    let out = plan.step(i, x, eps, z);
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
            let out = plan.step(i, x_t.clone(), eps.clone(), Some(z.clone()));
            let (beta, alpha) = (schedule.beta[t_index], schedule.alpha[t_index]);
            let expected = x_t.clone()
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
}
