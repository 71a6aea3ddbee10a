//! Guided particles with every guidance method of `diffusion::guidance` (CFG, CFG + rescale, APG, CFG++,
//! autoguidance) on the 2-D lab's points, from the network or from the exact scores of the data's mixture.
//!
//! A step asks its [`Scorer`] for the branches the method combines at (x_t, λ) — ε̂_∅ and ε̂_y, or for
//! autoguidance ε̂_main,y and ε̂_weak,y — and hands them to the method's math in `diffusion::guidance`. In
//! the lab every method acts on ε̂ (APG on the x̂_0 = (x_t - σ ε̂)/α each branch's ε̂ makes, its result read
//! back as ε̂); rescale's spread of a point is its root-mean-square |ε̂| / sqrt(2) (`Spread::Rms`: the
//! standard deviation of a point's two coordinates says nothing about its size), so rescale gives the guided
//! ε̂ of each point the length of the conditional one, mixed by φ. APG's momentum is a state carried from
//! step to step (and through Heun's second evaluation); CFG++ changes the sampler's update itself (it
//! renoises with ε̂_∅: `SamplingPlan::step_renoised`).
//!
//! With the exact scores in place of the network ([`Scorer::Exact`]), ε*_∅ is the whole mixture's and ε*_y
//! its class's components', both in closed form: CFG at w then follows the score of the tilted density
//! q_t(x|y)^w q_t(x)^{1-w} at every noise level — which is *not* the noising of p(x|y)^w p(x)^{1-w}, so its
//! samples are not draws of that density. Autoguidance has no exact counterpart (the truth has no weaker
//! version of itself).

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::run::{LabError, ParticleRequest, ParticleRun, X0_BOUND, check_class, exact_epsilon, guided_epsilon};
use crate::diffusion::guidance::{
    ApgMomentum, Guidance, GuidanceMethod, GuidanceParams, Spread, apg_on_eps, cfg, cfgpp_supports, rescale,
};
use crate::diffusion::mixture::GaussianMixture;
use crate::diffusion::{NoiseSource, SamplingPlan};
use crate::model::point_mlp::PointDenoiser;

/// What gives the branches' ε̂ at (x, λ).
#[derive(Clone, Copy)]
pub enum Scorer<'a> {
    /// The lab's network (of any objective, read as ε̂), and the weaker network autoguidance guides with.
    Network { model: &'a PointDenoiser, guide: Option<&'a PointDenoiser> },
    /// The exact ε* of the data's mixture: ε*_∅ of all of it, ε*_y of the class's components.
    Exact { mixture: &'a GaussianMixture },
}

/// Particles guided by a method: `particles.guidance` is the method's scale (w, or λ for CFG++), `params`
/// the method and its own parameters (φ, APG's η, β, r).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuidedRequest {
    pub particles: ParticleRequest,
    pub params: GuidanceParams,
}

impl GuidedRequest {
    /// `particles` with classifier-free guidance of w = `particles.guidance`.
    pub fn cfg(particles: ParticleRequest) -> Self {
        Self { particles, params: GuidanceParams::default() }
    }

    /// The guidance a run applies: the method, its parameters and the scale (no interval).
    pub fn guidance(&self) -> Guidance {
        Guidance { scale: self.particles.guidance, interval: None, params: self.params }
    }

    /// Whether the request can run with `scorer`, one error naming what cannot: a value out of range, CFG++
    /// on a sampler it does not change, autoguidance without a guide (or with the exact scores), a method
    /// other than CFG without a class.
    pub fn check(&self, scorer: &Scorer<'_>) -> Result<(), LabError> {
        self.guidance().validate()?;
        let method = self.params.method;
        if method == GuidanceMethod::CfgPlusPlus {
            cfgpp_supports(self.particles.sampler.method)?;
        }
        if method != GuidanceMethod::Cfg && self.particles.class.is_none() {
            return Err(LabError::NoClassToGuide(method.name()));
        }
        match scorer {
            Scorer::Network { model, guide } => {
                check_class(model, self.particles.class)?;
                match guide {
                    Some(guide) => check_class(guide, self.particles.class)?,
                    None if method == GuidanceMethod::Auto => return Err(LabError::NoGuide),
                    None => {}
                }
            }
            Scorer::Exact { .. } if method == GuidanceMethod::Auto => return Err(LabError::NoExactGuide),
            Scorer::Exact { .. } => {}
        }
        Ok(())
    }
}

/// What one evaluation of the guided model gives a step: the guided ε̂, and (for CFG++) ε̂_∅.
struct Guided {
    eps: Tensor<2>,
    unconditional: Option<Tensor<2>>,
}

/// A run's guidance: the scorer, the method at its scale towards the class, and APG's momentum, carried
/// from one evaluation to the next.
struct Guider<'a> {
    scorer: Scorer<'a>,
    guidance: Guidance,
    class: Option<usize>,
    momentum: ApgMomentum<2>,
}

impl Guider<'_> {
    /// ε̂ of one branch: `label` Some(y) or None (∅), of the main network or the guide (`weak`).
    fn branch(&self, x: Tensor<2>, log_snr: f64, label: Option<usize>, weak: bool) -> Result<Tensor<2>, LabError> {
        match self.scorer {
            Scorer::Network { model, guide } => {
                let network = if weak { guide.ok_or(LabError::NoGuide)? } else { model };
                Ok(guided_epsilon(network, x, log_snr, label, 1.0))
            }
            Scorer::Exact { mixture } => match label {
                Some(y) => exact_epsilon(&mixture.of_class(y)?, x, log_snr),
                None => exact_epsilon(mixture, x, log_snr),
            },
        }
    }

    /// ε̂_∅ and ε̂_y at once (the network's in one batch of both).
    fn pair(&self, x: Tensor<2>, log_snr: f64, y: usize) -> Result<(Tensor<2>, Tensor<2>), LabError> {
        match self.scorer {
            Scorer::Network { model, .. } => {
                let [batch, _] = x.dims();
                let both = guided_epsilon_pair(model, x, log_snr, y);
                Ok((both.clone().slice([0..batch, 0..2]), both.slice([batch..2 * batch, 0..2])))
            }
            Scorer::Exact { .. } => {
                Ok((self.branch(x.clone(), log_snr, None, false)?, self.branch(x, log_snr, Some(y), false)?))
            }
        }
    }

    /// The guided ε̂ at (x, λ) by the method (module docs), APG's momentum updated.
    fn epsilon(&mut self, x: Tensor<2>, log_snr: f64) -> Result<Guided, LabError> {
        let w = self.guidance.scale;
        let Some(y) = self.class else {
            return Ok(Guided { eps: self.branch(x, log_snr, None, false)?, unconditional: None });
        };
        let eps = match self.guidance.params.method {
            GuidanceMethod::Cfg => match self.scorer {
                // The network's CFG as the lab always ran it (one branch alone at w = 0 or 1).
                Scorer::Network { model, .. } => guided_epsilon(model, x, log_snr, Some(y), w),
                Scorer::Exact { .. } => {
                    let (unconditional, conditional) = self.pair(x, log_snr, y)?;
                    cfg(unconditional, conditional, w)
                }
            },
            GuidanceMethod::Rescale => {
                let (unconditional, conditional) = self.pair(x, log_snr, y)?;
                let guided = cfg(unconditional, conditional.clone(), w);
                rescale(conditional, guided, self.guidance.params.rescale_phi, Spread::Rms)
            }
            GuidanceMethod::Apg => {
                let (unconditional, conditional) = self.pair(x.clone(), log_snr, y)?;
                let params = self.guidance.params.apg;
                let previous = self.momentum.running.as_ref();
                let (eps, out) = apg_on_eps(x, conditional, unconditional, log_snr, w, &params, previous);
                self.momentum.running = Some(out.running);
                eps
            }
            GuidanceMethod::CfgPlusPlus => {
                let (unconditional, conditional) = self.pair(x, log_snr, y)?;
                let eps = cfg(unconditional.clone(), conditional, w);
                return Ok(Guided { eps, unconditional: Some(unconditional) });
            }
            GuidanceMethod::Auto => {
                let weak = self.branch(x.clone(), log_snr, Some(y), true)?;
                cfg(weak, self.branch(x, log_snr, Some(y), false)?, w)
            }
        };
        Ok(Guided { eps, unconditional: None })
    }
}

/// The network's predictions of ε̂_∅ and ε̂_y in one batch: [∅ rows; y rows], read as ε̂.
fn guided_epsilon_pair(model: &PointDenoiser, x: Tensor<2>, log_snr: f64, y: usize) -> Tensor<2> {
    let [batch, _] = x.dims();
    let device = x.device();
    let labels = Tensor::cat(
        vec![
            Tensor::<1, Int>::full([batch], model.null_class() as i64, &device),
            Tensor::<1, Int>::full([batch], y as i64, &device),
        ],
        0,
    );
    let doubled = Tensor::cat(vec![x.clone(), x], 0);
    let prediction = model.forward(doubled.clone(), Tensor::<1>::full([2 * batch], log_snr, &device), labels);
    model.objective().conversion_at(log_snr).eps(doubled, prediction)
}

/// Runs `request` from x_T ~ N(0, I) (its seed) to x_0 with `scorer`, recording every particle after every
/// step. The same seed gives the same x_T (and z) whatever the method.
pub fn run_guided(scorer: Scorer<'_>, request: &GuidedRequest, device: &Device) -> Result<ParticleRun, LabError> {
    request.check(&scorer)?;
    let particles = &request.particles;
    let schedule = particles.schedule.build()?;
    let plan = particles.sampler.plan(&schedule)?.with_x0_bound(X0_BOUND);
    let n = particles.count.max(1);
    let mut noise = NoiseSource::new(particles.seed);
    let mut x = noise.tensor([n, 2], device);
    let read = |x: &Tensor<2>| crate::model::read_f32(x.clone()).map(super::run::pairs_from_values);
    let mut frames = vec![read(&x)?];
    let mut levels = plan.level_after(0).into_iter().collect::<Vec<_>>();
    let mut guider =
        Guider { scorer, guidance: request.guidance(), class: particles.class, momentum: ApgMomentum::default() };
    let mut previous_x0: Option<Tensor<2>> = None;
    for index in 0..plan.len() {
        let (x_prev, x0_kept) = guided_step(&plan, index, x, &mut guider, &mut noise, previous_x0.as_ref())?;
        frames.push(read(&x_prev)?);
        levels.push(plan.steps[index].level_prev());
        x = x_prev;
        previous_x0 = Some(x0_kept);
    }
    Ok(ParticleRun { frames, levels, evaluations: plan.evaluations() })
}

/// Step `index` of `plan` from `x` with the guider: x_{t'}, and the x̂_0 a multistep solver's next step
/// takes as its previous one (for CFG++ too the step's own x̂_0, as the image models carry it: see
/// [`SamplingPlan::step_renoised`]).
fn guided_step(
    plan: &SamplingPlan,
    index: usize,
    x: Tensor<2>,
    guider: &mut Guider<'_>,
    noise: &mut NoiseSource,
    previous_x0: Option<&Tensor<2>>,
) -> Result<(Tensor<2>, Tensor<2>), LabError> {
    let step = plan.steps[index];
    let [n, _] = x.dims();
    let device = x.device();
    let guided = guider.epsilon(x.clone(), step.log_snr)?;
    let z = plan.needs_noise(index).then(|| noise.tensor([n, 2], &device));
    if let Some(unconditional) = guided.unconditional {
        let out = plan.step_renoised(index, x, guided.eps, unconditional, z, previous_x0);
        return Ok((out.x_prev, out.x0_pred));
    }
    let mut failed = None;
    let mut evaluate = |x: Tensor<2>, log_snr: f64| match guider.epsilon(x.clone(), log_snr) {
        Ok(guided) => guided.eps,
        Err(error) => {
            failed = Some(error);
            x
        }
    };
    let out = plan.step(index, x, guided.eps, z, previous_x0, &mut evaluate);
    match failed {
        Some(error) => Err(error),
        None => Ok((out.x_prev, out.x0_pred)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::guidance::ApgParams;
    use crate::diffusion::{BetaSchedule, Method, Sampler};
    use crate::lab2d::data::Preset;
    use crate::model::point_mlp::PointDenoiserConfig;

    fn network(seed: u64) -> PointDenoiser {
        let device = Device::flex();
        crate::model::init_from_seed(&device, seed, || {
            PointDenoiserConfig::new().with_hidden(16).with_num_classes(2).init(&device)
        })
    }

    fn request(sampler: Sampler, method: GuidanceMethod, scale: f64) -> GuidedRequest {
        let particles = ParticleRequest {
            schedule: BetaSchedule::cosine(1000),
            sampler,
            guidance: scale,
            class: Some(1),
            count: 64,
            seed: 7,
        };
        GuidedRequest { particles, params: GuidanceParams::of(method) }
    }

    fn ends(scorer: Scorer<'_>, request: &GuidedRequest) -> Vec<[f32; 2]> {
        run_guided(scorer, request, &Device::flex()).unwrap().frames.last().cloned().unwrap()
    }

    fn largest_gap(a: &[[f32; 2]], b: &[[f32; 2]]) -> f32 {
        a.iter().zip(b).map(|(p, q)| (p[0] - q[0]).abs().max((p[1] - q[1]).abs())).fold(0.0, f32::max)
    }

    /// APG with η = 1, no norm limit and no momentum is CFG on x̂_0, which (x̂_0 affine in ε̂ at one x_t)
    /// is CFG on ε̂: the same particles, for the network and for the exact scores, on a multistep and on
    /// Heun's two-evaluation sampler. Rescale with φ = 0 is CFG itself.
    #[test]
    fn apg_without_its_parts_and_rescale_at_zero_are_cfg() {
        let model = network(1);
        let mixture = Preset::TwoGaussians.mixture();
        let samplers = [crate::model::denoise::DEFAULT_SAMPLER, Sampler::new(Method::Heun, 8)];
        for scorer in [Scorer::Network { model: &model, guide: None }, Scorer::Exact { mixture: &mixture }] {
            for sampler in samplers {
                let cfg = ends(scorer, &request(sampler, GuidanceMethod::Cfg, 3.0));
                let mut apg = request(sampler, GuidanceMethod::Apg, 3.0);
                apg.params.apg = ApgParams { eta: 1.0, momentum: 0.0, threshold: 0.0 };
                assert!(largest_gap(&ends(scorer, &apg), &cfg) < 1e-3, "APG(η=1, r=0, β=0) against CFG");
                let mut rescale = request(sampler, GuidanceMethod::Rescale, 3.0);
                rescale.params.rescale_phi = 0.0;
                assert!(largest_gap(&ends(scorer, &rescale), &cfg) < 1e-3, "rescale φ=0 against CFG");
                // With their own parts they differ from CFG.
                let apg = ends(scorer, &request(sampler, GuidanceMethod::Apg, 3.0));
                assert!(largest_gap(&apg, &cfg) > 1e-2, "APG with its defaults is not CFG");
                let rescale = ends(scorer, &request(sampler, GuidanceMethod::Rescale, 3.0));
                assert!(largest_gap(&rescale, &cfg) > 1e-2, "rescale φ = 0.7 is not CFG");
            }
        }
    }

    /// CFG++ at λ renoises with ε̂_∅: on DDIM it is not CFG at the same scale (which renoises with the guided
    /// ε̂); at λ = 0 both are the unconditional model alone (without clipping: a clipped x̂_0 makes the plain
    /// step renoise with the ε̂ of the clipped x̂_0, CFG++ with ε̂_∅ as the network gave it).
    #[test]
    fn cfgpp_changes_the_ddim_update() {
        let model = network(2);
        let scorer = Scorer::Network { model: &model, guide: None };
        let ddim = Sampler::ddim(10, 0.0).with_clip_x0(false);
        let cfgpp = ends(scorer, &request(ddim, GuidanceMethod::CfgPlusPlus, 0.6));
        let cfg = ends(scorer, &request(ddim, GuidanceMethod::Cfg, 0.6));
        assert!(largest_gap(&cfgpp, &cfg) > 1e-2, "CFG++ at λ = 0.6 against CFG at w = 0.6");
        let at_zero = ends(scorer, &request(ddim, GuidanceMethod::CfgPlusPlus, 0.0));
        let unconditional = ends(scorer, &request(ddim, GuidanceMethod::Cfg, 0.0));
        assert!(largest_gap(&at_zero, &unconditional) < 1e-4);
        // DPM++ 2M and Euler a run too (their paper's other samplers).
        for sampler in [crate::model::denoise::DEFAULT_SAMPLER, Sampler::new(Method::EulerAncestral, 10)] {
            let run = run_guided(scorer, &request(sampler, GuidanceMethod::CfgPlusPlus, 0.6), &Device::flex());
            assert!(run.is_ok_and(|r| r.samples().iter().all(|p| p[0].is_finite() && p[1].is_finite())));
        }
    }

    /// Autoguidance at w = 1 is the main network's conditional ε̂ alone (CFG at w = 1); above 1 it moves the
    /// particles away from where the guide would take them.
    #[test]
    fn autoguidance_at_one_is_the_conditional_model() {
        let (model, guide) = (network(3), network(4));
        let scorer = Scorer::Network { model: &model, guide: Some(&guide) };
        let sampler = Sampler::ddim(10, 0.0);
        let auto = ends(scorer, &request(sampler, GuidanceMethod::Auto, 1.0));
        let conditional = ends(scorer, &request(sampler, GuidanceMethod::Cfg, 1.0));
        assert!(largest_gap(&auto, &conditional) < 1e-4);
        let guided = ends(scorer, &request(sampler, GuidanceMethod::Auto, 2.5));
        assert!(largest_gap(&guided, &conditional) > 1e-2);
    }

    /// Bad requests: one error each, naming what is wrong.
    #[test]
    fn bad_requests_are_refused_with_the_reason() {
        let model = network(5);
        let mixture = Preset::TwoGaussians.mixture();
        let network = Scorer::Network { model: &model, guide: None };
        let error =
            |scorer, request: GuidedRequest| run_guided(scorer, &request, &Device::flex()).unwrap_err().to_string();
        let heun = request(Sampler::new(Method::Heun, 8), GuidanceMethod::CfgPlusPlus, 0.6);
        assert!(error(network, heun).starts_with("CFG++ cannot run on Heun"));
        let auto = request(Sampler::ddim(10, 0.0), GuidanceMethod::Auto, 2.0);
        assert_eq!(
            error(network, auto.clone()),
            "autoguidance needs a weaker network to guide with: train the guide first"
        );
        assert!(error(Scorer::Exact { mixture: &mixture }, auto).starts_with("autoguidance has no exact counterpart"));
        let mut phi = request(Sampler::ddim(10, 0.0), GuidanceMethod::Rescale, 2.0);
        phi.params.rescale_phi = 1.5;
        assert_eq!(error(network, phi), "guidance rescale φ must be in [0, 1], got 1.5");
        let mut unguided = request(Sampler::ddim(10, 0.0), GuidanceMethod::Apg, 2.0);
        unguided.particles.class = None;
        assert_eq!(error(network, unguided), "guidance method apg needs a class to guide towards");
    }
}
