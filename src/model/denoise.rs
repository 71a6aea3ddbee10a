//! The reverse process driven by the network: ε_θ with classifier-free guidance, fed to a sampling plan.

use std::ops::ControlFlow;

use burn::prelude::*;

use super::UNet;
use crate::diffusion::{NoiseSource, Sampler, SamplingPlan, edit};

/// What each step hands to the caller (to stream, record or drop).
pub struct StepOutput<'a> {
    /// Position in the plan, 0 = the first (noisiest) step.
    pub index: usize,
    /// The timestep this step started from.
    pub t: usize,
    /// x_{t'}, the step's output.
    pub x_prev: &'a Tensor<4>,
    /// x̂_0 predicted at t.
    pub x0_pred: &'a Tensor<4>,
    /// The guided ε used at t.
    pub eps: &'a Tensor<4>,
    /// Its two branches, ε_θ(x_t, ∅) and ε_θ(x_t, y), where the step evaluated them (one is missing where
    /// w is 0 or 1: only that branch runs); for autoguidance the weaker model's ε̂_y in place of ε̂_∅.
    pub unconditional: Option<&'a Tensor<4>>,
    pub conditional: Option<&'a Tensor<4>>,
    /// The guidance scale w used at this step (1 outside a guidance interval).
    pub guidance: f64,
    /// The guidance method used at this step (CFG outside a guidance interval).
    pub method: GuidanceMethod,
    /// APG's running average before this step (what its momentum continued from).
    pub apg_previous: Option<&'a Tensor<4>>,
    /// The fresh noise z the sampler added (stochastic samplers), as drawn.
    pub noise: Option<&'a Tensor<4>>,
    /// Heun's second (guided) evaluation at the point its Euler step reached.
    pub eps_second: Option<&'a Tensor<4>>,
    /// What the network predicts: every ε̂ above is its prediction read through the objective's
    /// conversion at this step's λ.
    pub objective: crate::diffusion::Objective,
}

/// Guidance as a run applies it: the method (CFG, rescale, APG, CFG++, autoguidance), its scale and
/// parameters, optionally only in a λ interval (Kynkäänniemi et al. 2024). The math is
/// [`crate::diffusion::guidance`]'s; which branches to evaluate and in which space each method acts is here.
pub use crate::diffusion::guidance::Guidance;
use crate::diffusion::guidance::{self, GuidanceMethod};

/// The guided ε and the branches it was made from.
#[derive(Clone, Debug)]
pub struct GuidedEpsilon {
    /// ε̂ as the method makes it (CFG: ε̂ = ε̂_∅ + w (ε̂_y - ε̂_∅)).
    pub guided: Tensor<4>,
    /// ε̂_∅ = ε_θ(x_t, λ, ∅), where it was evaluated (w ≠ 1); for autoguidance the weaker model's ε̂_y,
    /// which takes its place.
    pub unconditional: Option<Tensor<4>>,
    /// ε̂_y = ε_θ(x_t, λ, y), where it was evaluated (w ≠ 0).
    pub conditional: Option<Tensor<4>>,
    pub scale: f64,
    /// The method used at this level (CFG outside a guidance interval).
    pub method: GuidanceMethod,
    /// APG: the momentum's running average after this evaluation (what the next step continues from).
    pub apg_running: Option<Tensor<4>>,
}

/// The guidance w the app and the command line start with: where both built-in models score their lowest
/// Fréchet distance with the default sampler while still at least as sure of their class as real images are
/// (assets/models/README.md, n = 1000; real data: FD 2.61, 91.5 %): pixel w = 1.5 FD 4.36 and 93.0 %
/// (w = 2: 10.71 and 96.6 %), latent w = 1.5 FD 4.69 and 91.8 % (w = 2: 7.23 and 95.5 %). Larger w trades
/// variety for class fidelity: w = 3 reaches 98 % at about 8x the floor.
pub const DEFAULT_GUIDANCE: f64 = crate::diffusion::guidance::DEFAULT_CFG_SCALE;

/// The sampler the window and `sample` start with, chosen from the quality-per-step table in
/// assets/models/README.md: DPM++ 2M with Karras σ spacing at 20 steps scores FD 7.38 and 94.3 % of the
/// intended class at n = 1000, where DDIM at 50 steps scores 8.66 and 94.3 %: better, in 2.5x fewer network
/// evaluations (trailing spacing at 20 steps: 9.34 and 94.2 %).
pub const DEFAULT_SAMPLER: Sampler = Sampler {
    method: crate::diffusion::Method::DpmSolver2M,
    steps: 20,
    spacing: crate::diffusion::Spacing::Karras,
    eta: 0.0,
    ddpm_variance: crate::diffusion::DdpmVariance::BetaTilde,
    clip_x0: true,
};

/// Inpainting (RePaint, Lugmayr et al. 2022): after every step the region where `keep` is 1 is replaced by
/// the original `x0` noised to the step's level, so at the end it is `x0` exactly; the model repaints the
/// rest in agreement with it. With `resample` > 1 each step is taken that many times, going back up to
/// its level with fresh noise in between, which lets the repainted region follow the known one.
pub struct Inpaint {
    /// The original, [batch, channels, h, w] (a latent model's: its latent).
    pub x0: Tensor<4>,
    /// 1 where the original stays, 0 where the model repaints; broadcast over `x0`.
    pub keep: Tensor<4>,
    pub resample: usize,
}

/// What the network is conditioned on: a class per image (the null class for none), or for class
/// interpolation a mix of two classes' contexts, τ = (1 - u) τ_θ(y) + u τ_θ(y_b); for a text model, a
/// prompt in place of the class.
#[derive(Clone, Debug)]
pub struct Condition {
    /// [batch] labels.
    pub classes: Tensor<1, Int>,
    /// [batch] labels of the second class, and u.
    pub towards: Option<(Tensor<1, Int>, f64)>,
    /// A text model's prompt (a class model ignores it).
    pub prompt: Option<PromptCondition>,
}

/// A text model's prompt as token ids, [batch, tokens] (`TextEncoderConfig::prompt`).
#[derive(Clone, Debug)]
pub struct PromptCondition {
    pub ids: Tensor<2, Int>,
    /// A second prompt and u: τ = (1 - u) τ_θ(prompt) + u τ_θ(second), token by token.
    pub towards: Option<(Tensor<2, Int>, f64)>,
    /// The negative prompt: guidance's ∅ branch reads it instead of the empty prompt.
    pub negative: Option<Tensor<2, Int>>,
}

impl Condition {
    pub fn classes(classes: Tensor<1, Int>) -> Self {
        Self { classes, towards: None, prompt: None }
    }

    /// The context of the conditional branch, [batch, tokens, context_dim].
    pub fn context(&self, model: &UNet) -> Tensor<3> {
        let prompted = self.prompt.as_ref().and_then(|p| {
            let context = model.prompt_context(p.ids.clone())?;
            Some(match &p.towards {
                Some((other, u)) => {
                    let other = model.prompt_context(other.clone())?;
                    context.mul_scalar(1.0 - u).add(other.mul_scalar(*u))
                }
                None => context,
            })
        });
        if let Some(context) = prompted {
            return context;
        }
        let context = model.context(self.classes.clone());
        match &self.towards {
            Some((other, u)) => context.mul_scalar(1.0 - u).add(model.context(other.clone()).mul_scalar(*u)),
            None => context,
        }
    }

    /// The context of guidance's other branch: the null class (a text model: the empty prompt), or the
    /// negative prompt.
    pub fn null_context(&self, model: &UNet, batch: usize, device: &Device) -> Tensor<3> {
        let negative = self.prompt.as_ref().and_then(|p| p.negative.clone()).and_then(|ids| model.prompt_context(ids));
        negative.unwrap_or_else(|| model.context(Tensor::<1, Int>::full([batch], model.null_class() as i64, device)))
    }
}

/// Classifier-free guidance: ε = ε_θ(x, λ, ∅) + w (ε_θ(x, λ, c) - ε_θ(x, λ, ∅)), c the condition.
/// w = 0 is unconditional, w = 1 purely conditional, w > 1 sharpens towards the class. A model of another
/// objective is read as ε̂ first ([`crate::diffusion::objective::Conversion`]); the conversion is affine
/// with the same coefficients for both branches, so this is the same guidance on its own prediction.
pub fn guided_epsilon(model: &UNet, x_t: Tensor<4>, log_snr: f64, condition: &Condition, guidance: f64) -> Tensor<4> {
    guided_epsilon_parts(model, x_t, log_snr, condition, guidance).guided
}

/// [`guided_epsilon`] with its branches kept.
pub fn guided_epsilon_parts(
    model: &UNet,
    x_t: Tensor<4>,
    log_snr: f64,
    condition: &Condition,
    scale: f64,
) -> GuidedEpsilon {
    let guidance = scale;
    let [batch, ..] = x_t.dims();
    let device = x_t.device();
    let null = || condition.null_context(model, batch, &device);
    let lambda = |n: usize| Tensor::<1>::full([n], log_snr, &device);
    // Every objective's prediction is read as ε̂ here, the samplers' one currency.
    let conversion = model.objective().conversion_at(log_snr);
    if guidance == 0.0 {
        let eps = conversion.eps(x_t.clone(), model.forward_with_context(x_t, lambda(batch), null()));
        return GuidedEpsilon::of(eps.clone(), Some(eps), None, guidance);
    }
    if guidance == 1.0 {
        let prediction = model.forward_with_context(x_t.clone(), lambda(batch), condition.context(model));
        let eps = conversion.eps(x_t, prediction);
        return GuidedEpsilon::of(eps.clone(), None, Some(eps), guidance);
    }
    let (conditional, unconditional) = both_predictions(model, x_t.clone(), log_snr, condition);
    let conditional = conversion.eps(x_t.clone(), conditional);
    let unconditional = conversion.eps(x_t, unconditional);
    let guided = guidance::cfg(unconditional.clone(), conditional.clone(), guidance);
    GuidedEpsilon::of(guided, Some(unconditional), Some(conditional), guidance)
}

impl GuidedEpsilon {
    fn of(guided: Tensor<4>, unconditional: Option<Tensor<4>>, conditional: Option<Tensor<4>>, scale: f64) -> Self {
        Self { guided, unconditional, conditional, scale, method: GuidanceMethod::Cfg, apg_running: None }
    }
}

/// The networks a guided run evaluates: the model, and for autoguidance the weaker model of the same kind
/// that guides it (`None`: autoguidance falls back to the conditional model alone; the run library refuses
/// such a request before it starts).
#[derive(Clone, Copy)]
pub struct Networks<'a> {
    pub model: &'a UNet,
    pub guide: Option<&'a UNet>,
}

/// The guided ε̂ of any method at noise level λ = `log_snr`. CFG (and every method outside its interval) is
/// [`guided_epsilon_parts`] exactly. Where each method acts:
/// - rescale on the network's own prediction (Lin et al.'s model predicts v; for an ε model it is ε̂, as
///   diffusers applies it), σ per image;
/// - APG on x̂_0 (Sadat et al. guide the denoised output), continuing the momentum from `apg_previous`;
/// - CFG++ and autoguidance on ε̂ (CFG++'s renoising ε̂_∅ is [`GuidedEpsilon::unconditional`]).
pub fn guided_epsilon_with(
    networks: Networks<'_>,
    x_t: Tensor<4>,
    log_snr: f64,
    condition: &Condition,
    guidance: &Guidance,
    apg_previous: Option<&Tensor<4>>,
) -> GuidedEpsilon {
    let (model, w, method) = (networks.model, guidance.scale_at(log_snr), guidance.method_at(log_snr));
    let conditional_only = w == 1.0 && method != GuidanceMethod::CfgPlusPlus;
    let guide = networks.guide.filter(|_| method == GuidanceMethod::Auto);
    if method == GuidanceMethod::Cfg || conditional_only || (method == GuidanceMethod::Auto && guide.is_none()) {
        let scale = if method == GuidanceMethod::Auto { 1.0 } else { w };
        return guided_epsilon_parts(model, x_t, log_snr, condition, scale);
    }
    let conversion = model.objective().conversion_at(log_snr);
    let with_method = |parts: GuidedEpsilon| GuidedEpsilon { method, ..parts };
    if let Some(guide) = guide {
        let lambda = Tensor::<1>::full([x_t.dims()[0]], log_snr, &x_t.device());
        let main = conversion
            .eps(x_t.clone(), model.forward_with_context(x_t.clone(), lambda.clone(), condition.context(model)));
        let weak_conversion = guide.objective().conversion_at(log_snr);
        let weak = weak_conversion.eps(x_t.clone(), guide.forward_with_context(x_t, lambda, condition.context(guide)));
        let guided = guidance::cfg(weak.clone(), main.clone(), w);
        return with_method(GuidedEpsilon::of(guided, Some(weak), Some(main), w));
    }
    let (conditional, unconditional) = both_predictions(model, x_t.clone(), log_snr, condition);
    let eps_of = |prediction: Tensor<4>| conversion.eps(x_t.clone(), prediction);
    let (eps_y, eps_null) = (eps_of(conditional.clone()), eps_of(unconditional.clone()));
    let mut apg_running = None;
    let guided = match method {
        GuidanceMethod::Rescale => {
            let cfg = guidance::cfg(unconditional, conditional.clone(), w);
            eps_of(guidance::rescale(conditional, cfg, guidance.params.rescale_phi, guidance::Spread::Std))
        }
        GuidanceMethod::Apg => {
            let params = &guidance.params.apg;
            let (eps, out) =
                guidance::apg_on_eps(x_t.clone(), eps_y.clone(), eps_null.clone(), log_snr, w, params, apg_previous);
            apg_running = Some(out.running);
            eps
        }
        _ => guidance::cfg(eps_null.clone(), eps_y.clone(), w),
    };
    GuidedEpsilon { apg_running, ..with_method(GuidedEpsilon::of(guided, Some(eps_null), Some(eps_y), w)) }
}

/// The network's two predictions at x_t, (conditional, unconditional): one forward over [conditional;
/// unconditional], the same work in half the calls.
fn both_predictions(model: &UNet, x_t: Tensor<4>, log_snr: f64, condition: &Condition) -> (Tensor<4>, Tensor<4>) {
    let [batch, ..] = x_t.dims();
    let device = x_t.device();
    let contexts = Tensor::cat(vec![condition.context(model), condition.null_context(model, batch, &device)], 0);
    let lambda = Tensor::<1>::full([2 * batch], log_snr, &device);
    let both = model.forward_with_context(Tensor::cat(vec![x_t.clone(), x_t], 0), lambda, contexts);
    (both.clone().narrow(0, 0, batch), both.narrow(0, batch, batch))
}

/// Where a reverse loop stands between two steps: x and, for a multistep solver, the x̂_0 of the step
/// before (which its next step combines).
#[derive(Clone, Debug)]
pub struct DenoiseState {
    /// [batch, channels, h, w]
    pub x: Tensor<4>,
    pub previous_x0: Option<Tensor<4>>,
    /// APG's momentum as the last step left it (none before APG's first guided step).
    pub apg: Option<Tensor<4>>,
}

impl DenoiseState {
    /// A loop's start at x, nothing carried.
    pub fn at(x: Tensor<4>) -> Self {
        Self { x, previous_x0: None, apg: None }
    }
}

/// Runs `plan` from `x_start` (x_T), calling `on_step` after every step; stops early when it breaks.
/// Returns the last x (x_0 when the plan ran to the end). `inpaint` keeps a known region.
#[allow(clippy::too_many_arguments)]
pub fn denoise(
    model: &UNet,
    plan: &SamplingPlan,
    x_start: Tensor<4>,
    condition: &Condition,
    guidance: impl Into<Guidance>,
    noise: &mut NoiseSource,
    inpaint: Option<&Inpaint>,
    on_step: impl FnMut(StepOutput<'_>) -> ControlFlow<()>,
) -> Tensor<4> {
    denoise_from(model, plan, DenoiseState::at(x_start), condition, guidance, noise, inpaint, on_step).x
}

/// [`denoise`] from a state a loop reached (a branch continues its parent's run from one of its steps),
/// returning the state it ends in.
#[allow(clippy::too_many_arguments)]
pub fn denoise_from(
    model: &UNet,
    plan: &SamplingPlan,
    start: DenoiseState,
    condition: &Condition,
    guidance: impl Into<Guidance>,
    noise: &mut NoiseSource,
    inpaint: Option<&Inpaint>,
    on_step: impl FnMut(StepOutput<'_>) -> ControlFlow<()>,
) -> DenoiseState {
    let networks = Networks { model, guide: None };
    denoise_guided_from(networks, plan, start, condition, &guidance.into(), noise, inpaint, on_step)
}

/// [`denoise_from`] with any guidance method (and autoguidance's weaker model in `networks`).
///
/// APG's momentum advances once per step: Heun's second evaluation and RePaint's resampling rounds guide
/// with the momentum as it stood before the step (the step's own evaluations are one gradient-ascent step in
/// Sadat et al.'s reading) and do not store theirs; where guidance is off (outside the interval) it stays.
/// CFG++ steps through [`SamplingPlan::step_renoised`], renoising with ε̂_∅ (a multistep solver carries
/// the step's guided x̂_0, as without CFG++).
#[allow(clippy::too_many_arguments)]
pub fn denoise_guided_from(
    networks: Networks<'_>,
    plan: &SamplingPlan,
    start: DenoiseState,
    condition: &Condition,
    guidance: &Guidance,
    noise: &mut NoiseSource,
    inpaint: Option<&Inpaint>,
    mut on_step: impl FnMut(StepOutput<'_>) -> ControlFlow<()>,
) -> DenoiseState {
    let shape = start.x.dims();
    let device = start.x.device();
    let DenoiseState { mut x, mut previous_x0, mut apg } = start;
    let keep_x0 = plan.uses_previous_x0();
    let resample = inpaint.map_or(1, |i| i.resample.max(1));
    for index in 0..plan.len() {
        let step = plan.steps[index];
        let mut round = 0;
        let (out, eps, z) = loop {
            let eps = guided_epsilon_with(networks, x.clone(), step.log_snr, condition, guidance, apg.as_ref());
            let z = plan.needs_noise(index).then(|| noise.tensor(shape, &device));
            let mut out = guided_step(
                networks,
                plan,
                index,
                &x,
                &eps,
                z.clone(),
                previous_x0.as_ref(),
                condition,
                guidance,
                apg.as_ref(),
            );
            let Some(inpaint) = inpaint else { break (out, eps, z) };
            let to = step.level_prev();
            let known = edit::noised_to(inpaint.x0.clone(), &to, noise.tensor(shape, &device));
            out.x_prev = edit::merge_known(out.x_prev, known, inpaint.keep.clone());
            round += 1;
            if round >= resample || to.alpha_bar >= 1.0 {
                break (out, eps, z);
            }
            x = edit::renoise(out.x_prev, &to, &step.level(), noise.tensor(shape, &device));
        };
        let flow = on_step(StepOutput {
            index,
            t: step.t,
            x_prev: &out.x_prev,
            x0_pred: &out.x0_pred,
            eps: &eps.guided,
            unconditional: eps.unconditional.as_ref(),
            conditional: eps.conditional.as_ref(),
            guidance: eps.scale,
            method: eps.method,
            apg_previous: apg.as_ref().filter(|_| eps.method == GuidanceMethod::Apg),
            noise: z.as_ref(),
            eps_second: out.eps_second.as_ref(),
            objective: networks.model.objective(),
        });
        x = out.x_prev;
        previous_x0 = keep_x0.then_some(out.x0_pred);
        apg = eps.apg_running.or(apg);
        if flow.is_break() {
            break;
        }
    }
    DenoiseState { x, previous_x0, apg }
}

/// Step `index` of `plan` from x with the guided ε̂: the plain update, or CFG++'s renoised one.
#[allow(clippy::too_many_arguments)]
fn guided_step(
    networks: Networks<'_>,
    plan: &SamplingPlan,
    index: usize,
    x: &Tensor<4>,
    eps: &GuidedEpsilon,
    z: Option<Tensor<4>>,
    previous_x0: Option<&Tensor<4>>,
    condition: &Condition,
    guidance: &Guidance,
    apg: Option<&Tensor<4>>,
) -> crate::diffusion::StepOutput<4> {
    if let (GuidanceMethod::CfgPlusPlus, Some(unconditional)) = (eps.method, eps.unconditional.as_ref()) {
        return plan.step_renoised(index, x.clone(), eps.guided.clone(), unconditional.clone(), z, previous_x0);
    }
    let mut evaluate =
        |x: Tensor<4>, log_snr: f64| guided_epsilon_with(networks, x, log_snr, condition, guidance, apg).guided;
    plan.step(index, x.clone(), eps.guided.clone(), z, previous_x0, &mut evaluate)
}
