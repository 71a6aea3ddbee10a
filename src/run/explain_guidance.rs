//! "This step"'s guidance: the method's formula with this step's numbers, and the guided ε̂ made again
//! from the branches the step recorded by the same functions the run used (`diffusion::guidance`), so that
//! what is shown is what was used (tests/guidance_methods.rs compares the two). No network runs here.

use std::sync::Arc;

use burn::prelude::*;

use super::generate::{GenerateRequest, StepParts};
use crate::diffusion::equation::number_text;
use crate::diffusion::guidance::{self, GuidanceMethod, Spread};
use crate::diffusion::objective::alpha_sigma_from_log_snr;

/// A step's guidance explained.
#[derive(Clone, Debug)]
pub struct GuidanceExplanation {
    pub method: GuidanceMethod,
    /// The formula, then its numbers at this step (the first image's where they are per image).
    pub lines: Vec<String>,
    /// ε̂ made again from the recorded branches by the method's formula, [batch, channels, h, w]; `None`
    /// where only one branch ran (ε̂ is that branch).
    pub eps: Option<Vec<f32>>,
}

/// The guidance of the step that `parts` recorded, at x_t (`x_t`, of `shape`) and noise level `log_snr`, with
/// `request`'s method parameters.
pub fn explain_guidance(
    request: &GenerateRequest,
    parts: &StepParts,
    x_t: &[f32],
    shape: [usize; 4],
    log_snr: f64,
) -> GuidanceExplanation {
    let (method, w) = (parts.method, parts.guidance);
    let (Some(unconditional), Some(conditional)) = (&parts.unconditional, &parts.conditional) else {
        let line = format!("Guidance: w = {}, so only one branch ran: ε̂ is that branch.", number_text(w));
        return GuidanceExplanation { method, lines: vec![line], eps: None };
    };
    let device = Device::flex();
    let tensor = |values: &[f32]| Tensor::<4>::from_data(TensorData::new(values.to_vec(), shape), &device);
    let (x, u, c) = (tensor(x_t), tensor(unconditional), tensor(conditional));
    let size = mean_abs_difference(unconditional, conditional);
    let (guided, lines) = match method {
        GuidanceMethod::Rescale => rescale(request, parts, x, u, c, log_snr),
        GuidanceMethod::Apg => apg(request, parts, x, u, c, log_snr),
        GuidanceMethod::CfgPlusPlus => (
            guidance::cfg(u, c, w),
            vec![
                format!(
                    "CFG++ (Chung et al. 2024): x̂_0 from ε̂_λ = ε̂_Ø + λ (ε̂_y - ε̂_Ø), λ = {}; the update renoises x̂_0 \
                     with ε̂_Ø, not with ε̂_λ (its term below)",
                    number_text(w)
                ),
                format!("mean |ε̂_y - ε̂_Ø| = {size:.4}"),
            ],
        ),
        GuidanceMethod::Auto => (
            guidance::cfg(u, c, w),
            vec![
                format!(
                    "Autoguidance (Karras et al. 2024): ε̂ = ε̂_weak + w (ε̂_y - ε̂_weak), w = {}, ε̂_weak the weaker \
                     model's (an earlier checkpoint) for the same class",
                    number_text(w)
                ),
                format!("mean |ε̂_y - ε̂_weak| = {size:.4}"),
            ],
        ),
        GuidanceMethod::Cfg => (
            guidance::cfg(u, c, w),
            vec![format!(
                "Guidance: ε̂ = ε̂_Ø + w (ε̂_y - ε̂_Ø) with w = {} ; mean |ε̂_y - ε̂_Ø| = {size:.4}",
                number_text(w)
            )],
        ),
    };
    GuidanceExplanation { method, lines, eps: Some(read(guided)) }
}

/// CFG + rescale on the network's own prediction x (read back from the recorded ε̂ through the
/// objective's conversion, which the run applied the other way).
fn rescale(
    request: &GenerateRequest,
    parts: &StepParts,
    x_t: Tensor<4>,
    eps_null: Tensor<4>,
    eps_y: Tensor<4>,
    log_snr: f64,
) -> (Tensor<4>, Vec<String>) {
    let (w, phi) = (parts.guidance, request.guidance_method.rescale_phi);
    let conversion = parts.objective.conversion_at(log_snr);
    let [a, b] = conversion.eps;
    let prediction = |eps: Tensor<4>| eps.sub(x_t.clone().mul_scalar(a)).mul_scalar(1.0 / b);
    let (x_null, x_y) = (prediction(eps_null), prediction(eps_y));
    let x_cfg = guidance::cfg(x_null, x_y.clone(), w);
    let (spread_y, spread_cfg) =
        (first(guidance::spread(x_y.clone(), Spread::Std)), first(guidance::spread(x_cfg.clone(), Spread::Std)));
    let guided = conversion.eps(x_t, guidance::rescale(x_y, x_cfg, phi, Spread::Std));
    let symbol = conversion.prediction_symbol();
    let lines = vec![
        format!(
            "CFG + rescale (Lin et al. 2024) on the network's prediction x = {symbol}: x_cfg = x_Ø + w (x_y - x_Ø), \
             x = φ x_cfg σ(x_y)/σ(x_cfg) + (1 - φ) x_cfg"
        ),
        format!(
            "w = {}, φ = {}; image 1: σ(x_y) = {spread_y:.4}, σ(x_cfg) = {spread_cfg:.4}, σ(x_y)/σ(x_cfg) = {:.4}",
            number_text(w),
            number_text(phi),
            spread_y / spread_cfg.max(f32::MIN_POSITIVE)
        ),
    ];
    (guided, lines)
}

/// APG on x̂_0, continuing the momentum the step recorded.
fn apg(
    request: &GenerateRequest,
    parts: &StepParts,
    x_t: Tensor<4>,
    eps_null: Tensor<4>,
    eps_y: Tensor<4>,
    log_snr: f64,
) -> (Tensor<4>, Vec<String>) {
    let (w, params) = (parts.guidance, request.guidance_method.apg);
    let (alpha, sigma) = alpha_sigma_from_log_snr(log_snr);
    let shape = x_t.dims();
    let device = x_t.device();
    let previous =
        parts.apg_previous.as_deref().map(|v| Tensor::<4>::from_data(TensorData::new(v.clone(), shape), &device));
    // x̂_y - x̂_Ø = -(σ/α) (ε̂_y - ε̂_Ø): the same x_t, so only the ε̂ differ.
    let raw = first(guidance::norms(eps_y.clone().sub(eps_null.clone()))) * (sigma / alpha) as f32;
    let (guided, out) = guidance::apg_on_eps(x_t, eps_y, eps_null, log_snr, w, &params, previous.as_ref());
    let (running, limited) = (first(guidance::norms(out.running.clone())), first(guidance::norms(out.limited.clone())));
    let parallel = first(guidance::norms(out.parallel.clone()));
    let momentum = if previous.is_some() { "β Δ_prev added" } else { "no Δ_prev yet" };
    let lines = vec![
        "Adaptive projected guidance (Sadat et al. 2024) on x̂_0: Δ = x̂_y - x̂_Ø + β Δ_prev, Δ := Δ min(1, r / |Δ|), \
         x̂_0 = x̂_y + (w - 1) (Δ_perp + η Δ_par), split along x̂_y"
            .to_string(),
        format!(
            "w = {}, η = {}, β = {}, r = {}; image 1: |x̂_y - x̂_Ø| = {raw:.4}, |Δ| = {running:.4} ({momentum}), \
             {limited:.4} after the limit, |Δ_par| = {parallel:.4}",
            number_text(w),
            number_text(params.eta),
            number_text(params.momentum),
            number_text(params.threshold)
        ),
    ];
    (guided, lines)
}

fn read(t: Tensor<4>) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().unwrap_or_default()
}

/// The first sample's value of a per-sample quantity.
fn first<const D: usize>(t: Tensor<D>) -> f32 {
    t.into_data().try_into_vec::<f32>().ok().and_then(|v| v.first().copied()).unwrap_or(f32::NAN)
}

fn mean_abs_difference(a: &Arc<Vec<f32>>, b: &Arc<Vec<f32>>) -> f32 {
    a.iter().zip(b.iter()).map(|(a, b)| (b - a).abs()).sum::<f32>() / a.len().max(1) as f32
}
