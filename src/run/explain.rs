//! "This step": a recorded step of a run taken apart into its update's weighted terms, with the guidance
//! branches and the method's equation, from what the run recorded ([`Frame::parts`]). No network runs
//! here: the run recorded every input the step combined, so taking it apart costs a few vector operations
//! (cheap enough for the UI thread) and never slows or waits for a run.

use std::sync::Arc;

use burn::prelude::*;

use super::explain_guidance::{GuidanceExplanation, explain_guidance};
use super::generate::{Frame, GenerateError, GenerateRequest, InitImage, StepParts};
use crate::diffusion::SamplingPlan;
use crate::diffusion::equation::{Equation, equation, number_text};
use crate::diffusion::guidance::GuidanceMethod;
use crate::diffusion::objective::Conversion;
use crate::diffusion::sampler::NOISE;

/// One weighted term of the update: `weighted` = `coefficient` × the symbol's values.
#[derive(Clone, Debug)]
pub struct TermValues {
    pub symbol: &'static str,
    pub coefficient: f64,
    /// [batch, channels, h, w], like x_t.
    pub weighted: Vec<f32>,
}

/// A step of a run, taken apart. All pictures are [batch, channels, h, w] like x_t (a latent model's are
/// latents).
#[derive(Clone, Debug)]
pub struct StepExplanation {
    /// The step's position in its plan (0 = the first) and the plan's length.
    pub step: usize,
    pub total_steps: usize,
    pub equation: Equation,
    pub shape: [usize; 4],
    /// w at this step (1 outside a guidance interval, 0 for an unconditional run).
    pub guidance: f64,
    pub x_t: Arc<Vec<f32>>,
    pub eps_unconditional: Option<Arc<Vec<f32>>>,
    pub eps_conditional: Option<Arc<Vec<f32>>>,
    /// w (ε̂_y - ε̂_Ø): what guidance added to the unconditional ε̂ (where both branches ran).
    pub guidance_added: Option<Vec<f32>>,
    /// The guided ε̂ the step used.
    pub eps: Arc<Vec<f32>>,
    /// x̂_0 before clipping and after: their difference is what clipping removed.
    pub x0_unclipped: Vec<f32>,
    pub x0_pred: Vec<f32>,
    pub terms: Vec<TermValues>,
    /// The sum of the weighted terms: the step's x_{t'}.
    pub x_next: Vec<f32>,
    /// What is special about this step (inpainting, resampling), for the caption.
    pub note: Option<String>,
    /// How the network's prediction was read as ε̂ and x̂_0 at this step's λ: the coefficients the run used.
    pub conversion: Conversion,
    /// The guidance method's formula with this step's numbers, and ε̂ made again from the branches by it.
    pub guidance_explained: GuidanceExplanation,
}

impl StepExplanation {
    /// Share of x̂_0's values that clipping changed.
    pub fn clipped_share(&self) -> f64 {
        let changed = self.x0_unclipped.iter().zip(&self.x0_pred).filter(|(a, b)| a != b).count();
        changed as f64 / self.x0_pred.len().max(1) as f64
    }

    /// The same step for image `b` of the batch alone.
    pub fn image(&self, b: usize) -> StepExplanation {
        let [batch, c, h, w] = self.shape;
        let (b, n) = (b.min(batch.saturating_sub(1)), c * h * w);
        let one = |v: &[f32]| v.get(b * n..(b + 1) * n).map_or_else(Vec::new, <[f32]>::to_vec);
        let shared = |v: &Arc<Vec<f32>>| Arc::new(one(v));
        StepExplanation {
            shape: [1, c, h, w],
            x_t: shared(&self.x_t),
            eps_unconditional: self.eps_unconditional.as_ref().map(shared),
            eps_conditional: self.eps_conditional.as_ref().map(shared),
            guidance_added: self.guidance_added.as_deref().map(one),
            eps: shared(&self.eps),
            x0_unclipped: one(&self.x0_unclipped),
            x0_pred: one(&self.x0_pred),
            terms: self
                .terms
                .iter()
                .map(|t| TermValues { symbol: t.symbol, coefficient: t.coefficient, weighted: one(&t.weighted) })
                .collect(),
            x_next: one(&self.x_next),
            guidance_explained: GuidanceExplanation {
                eps: self.guidance_explained.eps.as_deref().map(one),
                ..self.guidance_explained.clone()
            },
            ..self.clone()
        }
    }

    /// Mean |ε̂_y - ε̂_Ø| of each image of the batch (`None` where one branch did not run).
    pub fn guidance_size(&self) -> Option<Vec<f32>> {
        guidance_size(self.eps_unconditional.as_deref()?, self.eps_conditional.as_deref()?, self.shape[0])
    }
}

/// Mean |ε̂_y - ε̂_Ø| of each image: how much the class changes the network's answer.
pub fn guidance_size(unconditional: &[f32], conditional: &[f32], batch: usize) -> Option<Vec<f32>> {
    let per_image = unconditional.len() / batch.max(1);
    (per_image > 0 && unconditional.len() == conditional.len()).then(|| {
        unconditional
            .chunks(per_image)
            .zip(conditional.chunks(per_image))
            .map(|(u, c)| u.iter().zip(c).map(|(u, c)| (c - u).abs()).sum::<f32>() / per_image as f32)
            .collect()
    })
}

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("x_T is where the run starts: pure noise z ~ N(0, I); no step made it")]
    Start,
    #[error("the frame before this one was not kept (the run was thinned to fit memory): step to a kept neighbour")]
    Thinned,
    #[error("this run was not streamed, so its steps' parts were not recorded")]
    NotRecorded,
    #[error(transparent)]
    Request(#[from] GenerateError),
}

/// Takes apart the step that made `frame` from `previous` (the frame just before it) of a run of
/// `request`. `x0_bound` is the model's clipping bound ([`crate::model::LoadedUnet::x0_bound`]).
pub fn explain_step(
    request: &GenerateRequest,
    x0_bound: f64,
    previous: &Frame,
    frame: &Frame,
) -> Result<StepExplanation, ExplainError> {
    if frame.index == 0 {
        return Err(ExplainError::Start);
    }
    if previous.index + 1 != frame.index {
        return Err(ExplainError::Thinned);
    }
    let parts = frame.parts.as_ref().ok_or(ExplainError::NotRecorded)?;
    let schedule = request.schedule.build().map_err(GenerateError::from)?;
    let (plan, _) = request.plan(&schedule)?;
    let plan = plan.with_x0_bound(x0_bound);
    let i = previous.index;
    if i >= plan.len() {
        return Err(ExplainError::NotRecorded);
    }
    let taken = recorded_terms(&plan, previous, frame, parts);
    let mut terms = taken.terms;
    let mut note = request.init.as_ref().filter(|init| init.mask.is_some()).map(|init| {
        with_kept_region(init, frame, &mut terms);
        inpainting_note(init.resample)
    });
    let x_next = sum_of(&terms, frame.shape.iter().product());
    if noise_missing(&terms, &plan, i) {
        note = Some("The fresh noise z of this step was not recorded.".into());
    }
    Ok(StepExplanation {
        step: i,
        total_steps: plan.len(),
        equation: equation(&request.sampler, &plan, i),
        shape: frame.shape,
        guidance: parts.guidance,
        x_t: previous.x_t.clone(),
        eps_unconditional: parts.unconditional.clone(),
        eps_conditional: parts.conditional.clone(),
        guidance_added: guidance_added(parts),
        eps: frame.eps.clone(),
        x0_unclipped: taken.x0_unclipped,
        x0_pred: taken.x0_pred,
        terms,
        x_next,
        note,
        conversion: parts.objective.conversion_at(plan.steps[i].log_snr),
        guidance_explained: explain_guidance(request, parts, &previous.x_t, frame.shape, plan.steps[i].log_snr),
    })
}

/// A step's update taken apart, as values: x̂_0 before and after clipping, and the weighted terms.
struct RecordedTerms {
    x0_unclipped: Vec<f32>,
    x0_pred: Vec<f32>,
    terms: Vec<TermValues>,
}

/// The step `previous` -> `frame` of `plan` taken apart by the sampler itself, from the inputs the run
/// recorded (x_t, ε̂, the noise z, Heun's ε̂').
fn recorded_terms(plan: &SamplingPlan, previous: &Frame, frame: &Frame, parts: &StepParts) -> RecordedTerms {
    let device = Device::flex();
    let shape = frame.shape;
    let tensor = |values: &[f32]| Tensor::<4>::from_data(TensorData::new(values.to_vec(), shape), &device);
    let read = |t: Tensor<4>| t.into_data().try_into_vec::<f32>().unwrap_or_default();
    let x_t = tensor(&previous.x_t);
    let noise = parts.noise.as_ref().map(|z| tensor(z));
    // DPM-Solver++(2M) combines the previous step's x̂_0, which the previous frame holds (a branch's first
    // frame holds its parent's; a run's first step has no such term).
    let previous_x0 = plan.uses_previous_x0().then(|| tensor(&previous.x0_pred));
    let eps_second = parts.eps_second.as_ref().map(|e| tensor(e));
    let mut recorded_second = |x: Tensor<4>, _: f64| eps_second.clone().unwrap_or_else(|| x.zeros_like());
    let eps = tensor(&frame.eps);
    let renoise = parts.unconditional.as_ref().filter(|_| parts.method == GuidanceMethod::CfgPlusPlus);
    let taken = match renoise {
        // CFG++ renoised x̂_0 with the recorded ε̂_∅.
        Some(renoise) => plan.terms_renoised(previous.index, x_t, eps, tensor(renoise), noise, previous_x0.as_ref()),
        None => plan.terms(previous.index, x_t, eps, noise, previous_x0.as_ref(), &mut recorded_second),
    };
    let terms = taken
        .terms
        .iter()
        .map(|t| TermValues {
            symbol: t.symbol,
            coefficient: t.coefficient,
            weighted: read(t.value.clone().mul_scalar(t.coefficient)),
        })
        .collect();
    RecordedTerms { x0_unclipped: read(taken.x0_unclipped), x0_pred: read(taken.x0_pred), terms }
}

/// Inpainting: RePaint replaced the kept region by the original noised to t', so those pixels are the
/// recorded x_{t'} (a term of their own) and the sampler's terms only the others.
fn with_kept_region(init: &InitImage, frame: &Frame, terms: &mut Vec<TermValues>) {
    let keep = super::generate::keep_values(init.mask.as_deref().unwrap_or_default(), init.shape[1], frame.shape);
    for term in terms.iter_mut() {
        for (v, k) in term.weighted.iter_mut().zip(&keep) {
            *v *= 1.0 - k;
        }
    }
    let known: Vec<f32> = frame.x_t.iter().zip(&keep).map(|(x, k)| x * k).collect();
    terms.push(TermValues { symbol: KNOWN, coefficient: 1.0, weighted: known });
}

/// The caption of an inpainting step, taken `resample` times.
fn inpainting_note(resample: usize) -> String {
    if resample > 1 {
        format!(
            "Inpainting with resampling: this step was taken {resample} times; the terms are its last pass from the \
             recorded x_t, so they may not add up to x_{{t'}} exactly."
        )
    } else {
        "Inpainting: the kept region is the original noised to t' (RePaint); the model's terms fill the rest."
            .to_string()
    }
}

/// w (ε̂_y - ε̂_Ø), where both branches ran.
fn guidance_added(parts: &StepParts) -> Option<Vec<f32>> {
    match (&parts.unconditional, &parts.conditional) {
        (Some(u), Some(c)) => Some(u.iter().zip(c.iter()).map(|(u, c)| (parts.guidance as f32) * (c - u)).collect()),
        _ => None,
    }
}

/// The inpainting term: the original, noised to t', where it is kept.
pub const KNOWN: &str = "kept region";

fn noise_missing(terms: &[TermValues], plan: &SamplingPlan, i: usize) -> bool {
    plan.needs_noise(i) && !terms.iter().any(|t| t.symbol == NOISE)
}

fn sum_of(terms: &[TermValues], len: usize) -> Vec<f32> {
    let mut sum = vec![0.0f32; len];
    for term in terms {
        for (s, v) in sum.iter_mut().zip(&term.weighted) {
            *s += v;
        }
    }
    sum
}

/// One cross-attention layer's weights at one step, read back: from every position of its feature map to
/// each of τ_θ(y)'s tokens, per head.
#[derive(Clone, Debug)]
pub struct LayerAttention {
    /// Where in the UNet: "down 14x14", "middle 7x7", …
    pub layer: String,
    pub height: usize,
    pub width: usize,
    pub heads: usize,
    pub tokens: usize,
    /// [batch, heads, height * width, tokens]; sums to 1 over the tokens.
    pub weights: Vec<f32>,
}

impl LayerAttention {
    /// Image `b`'s map of `token`: per position, head `head`'s weight, or the mean over the heads.
    pub fn map(&self, b: usize, token: usize, head: Option<usize>) -> Vec<f32> {
        let positions = self.height * self.width;
        let at = |h: usize, p: usize| self.weights[((b * self.heads + h) * positions + p) * self.tokens + token];
        (0..positions)
            .map(|p| match head {
                Some(h) => at(h.min(self.heads - 1), p),
                None => (0..self.heads).map(|h| at(h, p)).sum::<f32>() / self.heads as f32,
            })
            .collect()
    }
}

/// The cross-attention of the step that made frame `frame_index`.
#[derive(Clone, Debug)]
pub struct StepAttention {
    pub frame_index: usize,
    pub layers: Vec<LayerAttention>,
}

/// One step's input as the run recorded it: the frame it made, its input's λ and x_t.
#[derive(Clone, Debug)]
pub struct AttentionInput {
    pub frame_index: usize,
    pub log_snr: f64,
    pub x_t: Arc<Vec<f32>>,
}

/// Where the conditional branch ε_θ(x_t, y) of `request`'s run looked at each given step: every
/// cross-attention layer's weights, from the network run again on the recorded x_t (the weights are not
/// kept during a run, so reading them costs nothing unless asked for).
pub fn attention_of_run(
    model: &crate::model::LoadedUnet,
    request: &GenerateRequest,
    inputs: &[AttentionInput],
    device: &Device,
) -> Result<Vec<StepAttention>, GenerateError> {
    let (c, size) = (model.config.image_channels, model.config.image_size);
    let shape = [request.batch, c, size, size];
    // The conditional branch's context as the run had it: the class's, or a text model's prompt.
    let context = super::generate::condition(request, &model.config, device)?.context(&model.model);
    inputs
        .iter()
        .map(|input| {
            let x_t = Tensor::<4>::from_data(TensorData::new(input.x_t.to_vec(), shape), device);
            let lambda = Tensor::<1>::full([request.batch], input.log_snr, device);
            let (_, layers) = model.model.forward_with_attention(x_t, lambda, context.clone());
            let layers = layers
                .into_iter()
                .map(|l| {
                    let [_, heads, _, tokens] = l.weights.dims();
                    Ok(LayerAttention {
                        layer: l.layer,
                        height: l.height,
                        width: l.width,
                        heads,
                        tokens,
                        weights: super::generate::values_from_tensor(&l.weights)?,
                    })
                })
                .collect::<Result<Vec<_>, GenerateError>>()?;
            Ok(StepAttention { frame_index: input.frame_index, layers })
        })
        .collect()
}

/// The step in words and numbers, as the window's "This step" writes it.
pub fn step_text(e: &StepExplanation) -> Vec<String> {
    let eq = &e.equation;
    let mut lines = vec![format!("Step {} of {}: {}", e.step + 1, e.total_steps, eq.form), eq.meaning.to_string()];
    lines.extend(e.conversion.lines());
    let numbers: Vec<String> = eq.levels.iter().chain(&eq.numbers).map(|n| n.text()).collect();
    lines.extend(numbers.chunks(4).map(|chunk| chunk.join("   ")));
    let mut sum = String::new();
    for (k, t) in e.terms.iter().enumerate() {
        let sign = match (k, t.coefficient < 0.0) {
            (0, false) => "",
            (0, true) => "-",
            (_, false) => " + ",
            (_, true) => " - ",
        };
        sum += &format!("{sign}{} · {}", number_text(t.coefficient.abs()), t.symbol);
    }
    lines.push(format!("x_{{t'}} = {sum}"));
    lines.extend(e.guidance_explained.lines.iter().cloned());
    lines.push(format!("clipping changed {:.1} % of x̂_0", 100.0 * e.clipped_share()));
    lines
}

/// The labels' font is ASCII: Greek letters and accents spelled out.
fn ascii_from_math(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            'ᾱ' => "abar".to_string(),
            'α' => "alpha".into(),
            'β' => "beta".into(),
            'ε' => "eps".into(),
            'σ' => "sigma".into(),
            'λ' => "lambda".into(),
            'η' => "eta".into(),
            'μ' => "mu".into(),
            'θ' => "theta".into(),
            'τ' => "tau".into(),
            'Δ' => "d".into(),
            'Ø' => "0".into(),
            '\u{302}' => "^".into(),
            '\u{303}' => "~".into(),
            '₀' => "0".into(),
            '₁' => "1".into(),
            '²' => "^2".into(),
            '·' => "*".into(),
            '—' | '–' => "-".into(),
            c if c.is_ascii() => c.to_string(),
            _ => "?".into(),
        })
        .collect()
}

/// The step as a figure for slides (what `explain` and the window's "Save step figure" write): `text`
/// above a row of labelled pictures: x_t, the guidance branches, ε̂, x̂_0 before and after
/// clipping, each weighted term, and their sum.
pub fn step_figure(e: &StepExplanation, text: &[String], zoom: usize) -> crate::images::Picture {
    let [_, c, h, w] = e.shape;
    let picture = |values: &[f32]| -> crate::images::Picture {
        // A latent's channels side by side.
        let tiles = crate::images::pictures_from_batch(
            values,
            if c == 1 || c == 3 { 1 } else { c },
            if c == 3 { 3 } else { 1 },
            h,
            w,
        );
        crate::images::scaled(&crate::images::grid(&tiles, tiles.len(), 1), zoom)
    };
    let mut cells = vec![(picture(&e.x_t), "x_t".to_string())];
    if let Some(u) = &e.eps_unconditional {
        cells.push((picture(u), "eps_null".into()));
    }
    if let Some(y) = &e.eps_conditional {
        cells.push((picture(y), "eps_y".into()));
    }
    if let Some(added) = &e.guidance_added {
        cells.push((picture(added), "w(eps_y-eps_null)".into()));
    }
    cells.push((picture(&e.eps), "eps^ guided".into()));
    cells.push((picture(&e.x0_unclipped), "x0^ unclipped".into()));
    cells.push((picture(&e.x0_pred), "x0^".into()));
    for term in &e.terms {
        let symbol = term.symbol.replace(" of the previous step", ",prev").replace(" at the Euler point", "");
        let label = format!("{}*{symbol}", number_text(term.coefficient));
        cells.push((picture(&term.weighted), ascii_from_math(&label)));
    }
    cells.push((picture(&e.x_next), "= x_t'".into()));
    let labels = crate::images::GridLabels {
        x_title: "the terms (values in [-1, 1] as black to white) add up to x_t'".into(),
        columns: cells.iter().map(|(_, l)| l.clone()).collect(),
        y_title: String::new(),
        rows: vec![String::new()],
    };
    let pictures: Vec<Option<crate::images::Picture>> = cells.into_iter().map(|(p, _)| Some(p)).collect();
    let grid = crate::images::labelled_grid(&pictures, &labels, 6);
    let lines: Vec<String> = text.iter().map(|l| ascii_from_math(l)).collect();
    let line_height = 10;
    let width = lines.iter().map(|l| crate::images::font::text_width(l, 1) + 8).max().unwrap_or(0).max(grid.width);
    let top = lines.len() * line_height + 8;
    let channels = grid.channels;
    let mut figure = crate::images::Picture {
        width,
        height: top + grid.height,
        channels,
        pixels: vec![0; width * (top + grid.height) * channels],
    };
    for (k, line) in lines.iter().enumerate() {
        crate::images::font::draw_text(&mut figure, 4, 4 + k * line_height, line, 1, 255);
    }
    for y in 0..grid.height {
        let from = y * grid.width * channels;
        let to = ((top + y) * width) * channels;
        figure.pixels[to..to + grid.width * channels].copy_from_slice(&grid.pixels[from..from + grid.width * channels]);
    }
    figure
}
