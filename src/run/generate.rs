//! One Generate request run to the end (or to its cancellation): the denoising loop with every step
//! handed out as plain f32 data, ready to stream into the window. The request is in `request.rs`, the
//! frames in `frame.rs`; their types are re-exported here, where a run's callers find them.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use burn::prelude::*;

pub use super::frame::{Decoded, Frame, StepParts, TRAJECTORY_BUDGET_BYTES, frame_budget_bytes, push_within_budget};
pub use super::request::{
    Branch, GenerateError, GenerateRequest, InitImage, Interpolate, MAX_BATCH, MAX_BRANCH_DEPTH, MAX_RESAMPLE,
    PromptRequest,
};
use crate::diffusion::guidance::GuidanceMethod;
use crate::diffusion::{NoiseLevel, NoiseSource, SamplingPlan, edit};
use crate::model::denoise::{
    Condition, DenoiseState, Guidance, Inpaint, Networks, PromptCondition, StepOutput, denoise_guided_from,
};
use crate::model::{LoadedAutoencoder, LoadedUnet};

pub fn values_from_tensor(t: &Tensor<4>) -> Result<Vec<f32>, GenerateError> {
    crate::model::read_f32(t.clone()).map_err(|e| GenerateError::Readback(e.0))
}

/// Whether to keep going, asked before every step; `emit` receives every frame.
pub struct RunHooks<'a> {
    pub keep_going: &'a dyn Fn() -> bool,
    /// Stream every step (true) or only x_T and the result (false).
    pub stream: bool,
    pub emit: &'a mut dyn FnMut(Frame),
}

/// The share of a streamed latent run's time that decoding D(z_t) for the window may take. Decoding a
/// batch costs about as much as a denoising step of the built-in latent model, so decoding every step
/// would more than double the run (`bench --model latent`); the frames left undecoded are decoded after the
/// run ([`decode_frame`]), the one on screen first.
pub const DECODE_BUDGET: f64 = 0.03;

/// Decoding time spent so far in a run, against [`DECODE_BUDGET`].
struct DecodeBudget {
    started: Instant,
    spent: f64,
    /// Seconds the last decode took: the estimate for the next.
    last: f64,
}

impl DecodeBudget {
    fn new(started: Instant) -> Self {
        Self { started, spent: 0.0, last: 0.0 }
    }

    /// Whether one more decode keeps decoding within its share of the time elapsed so far.
    fn allows(&self) -> bool {
        self.spent + self.last <= DECODE_BUDGET * self.started.elapsed().as_secs_f64()
    }

    fn decode(
        &mut self,
        ae: &LoadedAutoencoder,
        x_t: &Tensor<4>,
        x0: Option<&Tensor<4>>,
    ) -> Result<Decoded, GenerateError> {
        let started = Instant::now();
        let decoded = decode_latents(ae, x_t, x0)?;
        self.last = started.elapsed().as_secs_f64();
        self.spent += self.last;
        Ok(decoded)
    }
}

/// D(z_t / scale) and D(x̂_0 / scale) of a latent frame, in one decoder call over both batches.
fn decode_latents(ae: &LoadedAutoencoder, x_t: &Tensor<4>, x0: Option<&Tensor<4>>) -> Result<Decoded, GenerateError> {
    let [batch, ..] = x_t.dims();
    let latents = match x0 {
        Some(x0) => Tensor::cat(vec![x_t.clone(), x0.clone()], 0),
        None => x_t.clone(),
    };
    let pixels = ae.decode_scaled(latents);
    let [_, c, h, w] = pixels.dims();
    let shape = [batch, c, h, w];
    let values = values_from_tensor(&pixels)?;
    let (x_t, x0_pred) = match x0 {
        Some(_) => {
            let (first, second) = values.split_at(batch * c * h * w);
            (first.to_vec(), second.to_vec())
        }
        None => (values, vec![0.0; batch * c * h * w]),
    };
    Ok(Decoded { shape, x_t: Arc::new(x_t), x0_pred: Arc::new(x0_pred) })
}

/// Decodes a recorded latent frame (x_t and x̂_0 as the engine handed them out) for display.
pub fn decode_frame(ae: &LoadedAutoencoder, frame: &Frame, device: &Device) -> Result<Decoded, GenerateError> {
    let x_t = Tensor::<4>::from_data(TensorData::new(frame.x_t.to_vec(), frame.shape), device);
    // x_T's frame has no prediction yet: decode x_t alone, as the run did.
    let x0 =
        (frame.index > 0).then(|| Tensor::<4>::from_data(TensorData::new(frame.x0_pred.to_vec(), frame.shape), device));
    decode_latents(ae, &x_t, x0.as_ref())
}

/// Outcome of a run that was not an error.
#[derive(Clone, Debug, PartialEq)]
pub struct RunSummary {
    pub steps_done: usize,
    pub cancelled: bool,
    pub seconds: f64,
}

/// Runs `request` with `model` on `device`. Same request + device = same pixels: noise comes from the
/// seeded CPU generator.
pub fn run_generate(
    model: &LoadedUnet,
    decoder: Option<&LoadedAutoencoder>,
    request: &GenerateRequest,
    device: &Device,
    hooks: RunHooks<'_>,
) -> Result<RunSummary, GenerateError> {
    check(model, request)?;
    let decoder = latent_decoder(model, decoder)?;
    let started = Instant::now();
    let start = run_start(model, decoder, request, device)?;
    let condition = condition(request, &model.config, device)?;
    let guidance = guidance_of(request, model.config.text.is_some());
    let (summary, _) = run_from(model, decoder, start, &condition, guidance, started, hooks)?;
    Ok(summary)
}

/// Checks `request` against `model`: its settings, and a weaker model to guide with for autoguidance.
pub(super) fn check(model: &LoadedUnet, request: &GenerateRequest) -> Result<(), GenerateError> {
    request.validate(model.config.num_classes)?;
    let mut asked = Some(request);
    while let Some(request) = asked {
        if request.guidance_method.method == GuidanceMethod::Auto && model.guide.is_none() {
            return Err(GenerateError::NoGuide);
        }
        asked = request.branch.as_ref().map(|b| b.parent.as_ref());
    }
    Ok(())
}

/// The networks a run of `model` evaluates: it, and the weaker model that autoguidance guides it with.
fn networks(model: &LoadedUnet) -> Networks<'_> {
    Networks { model: &model.model, guide: model.guide.as_deref() }
}

/// The decoder a run of `model` goes through: a latent model's (an error without one), none for pixels.
pub(super) fn latent_decoder<'a>(
    model: &LoadedUnet,
    decoder: Option<&'a LoadedAutoencoder>,
) -> Result<Option<&'a LoadedAutoencoder>, GenerateError> {
    match (model.is_latent(), decoder) {
        (true, None) => Err(GenerateError::NoAutoencoder),
        (true, decoder) => Ok(decoder),
        (false, _) => Ok(None),
    }
}

/// THE sampling loop: every run of the program goes through it (the window's through the engine, every
/// subcommand's, training previews, the package's icon). From `start`, x_T's frame and then every step's
/// (or, not streaming, the last step's) frame are handed to `hooks`; `keep_going` is asked between steps.
/// Returns the summary and the noise stream where the run left it (the next batch of a longer run draws on).
pub(super) fn run_from(
    model: &LoadedUnet,
    decoder: Option<&LoadedAutoencoder>,
    start: RunStart,
    condition: &Condition,
    guidance: Guidance,
    started: Instant,
    hooks: RunHooks<'_>,
) -> Result<(RunSummary, NoiseSource), GenerateError> {
    let RunStart { plan, level: start, x: x_start, previous_x0, apg, mut noise, inpaint } = start;
    let shape = x_start.dims();
    let mut budget = DecodeBudget::new(started);
    let x_start_decoded = decoder.map(|ae| budget.decode(ae, &x_start, None)).transpose()?;
    let zeros = Arc::new(vec![0.0; shape.iter().product()]);
    // A branch's first frame carries the x̂_0 its first step combines (a multistep solver's previous one),
    // so that "This step" can take that step apart too.
    let x0_carried = previous_x0.as_ref().map(values_from_tensor).transpose()?.map(Arc::new);
    (hooks.emit)(Frame {
        index: 0,
        t: start.t,
        log_snr: start.log_snr,
        shape,
        x_t: Arc::new(values_from_tensor(&x_start)?),
        x0_pred: x0_carried.unwrap_or_else(|| zeros.clone()),
        eps: zeros,
        decoded: x_start_decoded,
        parts: None,
    });

    let mut failure = None;
    let mut steps_done = 0;
    let mut cancelled = false;
    let total = plan.len();
    let emit = hooks.emit;
    let state = DenoiseState { x: x_start, previous_x0, apg };
    denoise_guided_from(networks(model), &plan, state, condition, &guidance, &mut noise, inpaint.as_ref(), |step| {
        steps_done = step.index + 1;
        let last = steps_done == total;
        if hooks.stream || last {
            match step_frame(&step, &plan, shape, decoder, &mut budget, last) {
                Ok(frame) => emit(frame),
                Err(e) => {
                    failure = Some(e);
                    return ControlFlow::Break(());
                }
            }
        }
        if !last && !(hooks.keep_going)() {
            cancelled = true;
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    });
    if let Some(e) = failure {
        return Err(e);
    }
    Ok((RunSummary { steps_done, cancelled, seconds: started.elapsed().as_secs_f64() }, noise))
}

/// Where a run's denoising begins: x at its first level, the plan from there, the noise stream as it
/// stands, what a multistep solver carries into the first step, and inpainting's known region.
pub(super) struct RunStart {
    pub plan: SamplingPlan,
    pub level: NoiseLevel,
    /// [batch, channels, h, w]
    pub x: Tensor<4>,
    pub previous_x0: Option<Tensor<4>>,
    /// APG's momentum where a branch's parent left it.
    pub apg: Option<Tensor<4>>,
    pub noise: NoiseSource,
    pub inpaint: Option<Inpaint>,
}

/// The start of `request`: x_T (or an edit's noised picture) from its seed; for a branch, its parent's
/// run taken up to the step it continues from (see [`Branch`]).
fn run_start(
    model: &LoadedUnet,
    decoder: Option<&LoadedAutoencoder>,
    request: &GenerateRequest,
    device: &Device,
) -> Result<RunStart, GenerateError> {
    let schedule = request.schedule.build()?;
    let (plan, level) = request.plan(&schedule)?;
    let plan = plan.with_x0_bound(model.x0_bound());
    let Some(branch) = &request.branch else {
        let (c, size) = (model.config.image_channels, model.config.image_size);
        let shape = [request.batch, c, size, size];
        let mut noise = NoiseSource::new(request.seed);
        let eps = first_noise(request, &mut noise, shape, device);
        let (x, inpaint) = match &request.init {
            None => (eps, None),
            Some(init) => {
                let x0 = start_picture(init, model, decoder, request.batch, device)?;
                // Strength 1 starts from pure noise, exactly as Generate does.
                let x_start = if init.strength >= 1.0 { eps } else { edit::noised_to(x0.clone(), &level, eps) };
                let inpaint = init.mask.as_ref().map(|mask| Inpaint {
                    keep: keep_mask(mask, init.shape[1], shape, device),
                    x0,
                    resample: init.resample,
                });
                (x_start, inpaint)
            }
        };
        return Ok(RunStart { plan, level, x, previous_x0: None, apg: None, noise, inpaint });
    };
    let parent = &branch.parent;
    let RunStart { plan: parent_plan, x, previous_x0, apg, mut noise, inpaint, .. } =
        run_start(model, decoder, parent, device)?;
    let before = SamplingPlan { steps: parent_plan.steps[..branch.at_step].to_vec(), ..parent_plan };
    let condition = condition(parent, &model.config, device)?;
    let state = DenoiseState { x, previous_x0, apg };
    let parent_guidance = guidance_of(parent, model.config.text.is_some());
    let state = denoise_guided_from(
        networks(model),
        &before,
        state,
        &condition,
        &parent_guidance,
        &mut noise,
        inpaint.as_ref(),
        |_| ControlFlow::Continue(()),
    );
    let same_plan = request.sampler == parent.sampler;
    let noise = if request.seed == parent.seed { noise } else { NoiseSource::new(request.seed) };
    let previous_x0 = state.previous_x0.filter(|_| same_plan);
    // APG's momentum goes on where the parent's run left it, when the branch guides with APG too.
    let apg = state.apg.filter(|_| request.guidance_method.method == GuidanceMethod::Apg);
    Ok(RunStart { plan, level, x: state.x, previous_x0, apg, noise, inpaint })
}

/// Guidance as `request` asks for it: unconditional requests have no conditional branch to guide towards.
pub(super) fn guidance_of(request: &GenerateRequest, text_model: bool) -> Guidance {
    match (request.class, &request.prompt) {
        // The empty prompt is guidance's ∅ itself: one evaluation, the unconditional model.
        (_, Some(p)) if text_model && p.text.trim().is_empty() && p.negative.trim().is_empty() => Guidance::from(0.0),
        (_, Some(_)) if text_model => request.guidance_settings(),
        (Some(_), _) => request.guidance_settings(),
        (None, _) => Guidance::from(0.0),
    }
}

/// The seed's first draw: x_T of a plain run, the noise that image-to-image adds to its picture. Seed
/// interpolation mixes it with seed B's, image by image.
fn first_noise(request: &GenerateRequest, noise: &mut NoiseSource, shape: [usize; 4], device: &Device) -> Tensor<4> {
    match request.interpolate.as_ref().and_then(|i| i.seed_b.map(|b| (b, i.u))) {
        None => noise.tensor(shape, device),
        Some((seed_b, u)) => {
            let (a, b) =
                (noise.values(shape.iter().product()), NoiseSource::new(seed_b).values(shape.iter().product()));
            let per_image = a.len() / request.batch;
            let mixed: Vec<f32> =
                a.chunks(per_image).zip(b.chunks(per_image)).flat_map(|(a, b)| edit::slerp(a, b, u)).collect();
            Tensor::<4>::from_data(TensorData::new(mixed, shape), device)
        }
    }
}

/// `prompt` (and its negative, and `prompt_b` at u for interpolation) as the ids of `batch` images.
pub fn prompt_condition(
    text: &crate::model::text_encoder::TextEncoderConfig,
    prompt: &PromptRequest,
    prompt_b: Option<(&str, f64)>,
    batch: usize,
    device: &Device,
) -> Result<PromptCondition, GenerateError> {
    let ids = |text_of: &str| -> Result<Tensor<2, Int>, GenerateError> {
        let ids = text.prompt(text_of).map_err(|e| GenerateError::Prompt(e.to_string()))?.ids;
        let rows: Vec<i64> = (0..batch).flat_map(|_| ids.iter().map(|id| *id as i64)).collect();
        Ok(Tensor::<2, Int>::from_data(TensorData::new(rows, [batch, ids.len()]), device))
    };
    let towards = match prompt_b {
        Some((b, u)) => Some((ids(b)?, u)),
        None => None,
    };
    let negative = if prompt.negative.trim().is_empty() { None } else { Some(ids(&prompt.negative)?) };
    Ok(PromptCondition { ids: ids(&prompt.text)?, towards, negative })
}

/// The class of every image of the batch (the null class, `num_classes`, for none), and for class
/// interpolation the second class; for a text model with a prompt, the prompt's ids (and the negative
/// prompt's, and for interpolation the second prompt's).
pub(crate) fn condition(
    request: &GenerateRequest,
    config: &crate::model::UNetConfig,
    device: &Device,
) -> Result<Condition, GenerateError> {
    let label = request.class.unwrap_or(config.num_classes) as i64;
    let classes = Tensor::<1, Int>::full([request.batch], label, device);
    let towards = request
        .interpolate
        .as_ref()
        .and_then(|i| i.class_b.map(|b| (Tensor::<1, Int>::full([request.batch], b as i64, device), i.u)));
    let prompt = match (&config.text, &request.prompt) {
        (Some(text), Some(prompt)) => {
            let prompt_b = request.interpolate.as_ref().and_then(|i| i.prompt_b.as_deref().map(|b| (b, i.u)));
            Some(prompt_condition(text, prompt, prompt_b, request.batch, device)?)
        }
        _ => None,
    };
    Ok(Condition { classes, towards, prompt })
}

/// A denoising step read back as a frame; a latent run's (`decoder`) with its pixels when `budget` allows.
fn step_frame(
    step: &StepOutput<'_>,
    plan: &SamplingPlan,
    shape: [usize; 4],
    decoder: Option<&LoadedAutoencoder>,
    budget: &mut DecodeBudget,
    last: bool,
) -> Result<Frame, GenerateError> {
    let x_t = values_from_tensor(step.x_prev)?;
    if x_t.iter().any(|v| !v.is_finite()) {
        return Err(GenerateError::NonFinite { t: step.t });
    }
    // A latent frame is decoded only while decoding stays within its share of the run's time (and always
    // at the end); the others are decoded after the run, on demand. Asked after the read-back above, which
    // waits for the step: the time it took counts.
    let decoded = match decoder {
        Some(ae) if last || budget.allows() => Some(budget.decode(ae, step.x_prev, Some(step.x0_pred))?),
        _ => None,
    };
    Ok(Frame {
        index: step.index + 1,
        t: plan.steps[step.index].t_prev,
        log_snr: plan.steps[step.index].log_snr_prev,
        shape,
        x_t: Arc::new(x_t),
        x0_pred: Arc::new(values_from_tensor(step.x0_pred)?),
        eps: Arc::new(values_from_tensor(step.eps)?),
        decoded,
        parts: Some(step_parts(step)?),
    })
}

/// The parts of a step [`Frame::parts`] keeps, read back.
fn step_parts(step: &StepOutput<'_>) -> Result<StepParts, GenerateError> {
    let read = |t: Option<&Tensor<4>>| t.map(|t| values_from_tensor(t).map(Arc::new)).transpose();
    Ok(StepParts {
        guidance: step.guidance,
        method: step.method,
        apg_previous: read(step.apg_previous)?,
        unconditional: read(step.unconditional)?,
        conditional: read(step.conditional)?,
        noise: read(step.noise)?,
        eps_second: read(step.eps_second)?,
        objective: step.objective,
    })
}

/// The picture of an image-to-image or inpainting run as the diffusion sees it, repeated over the batch:
/// pixels in [-1, 1], or for a latent model the mean of E(x), scaled.
fn start_picture(
    init: &InitImage,
    model: &LoadedUnet,
    decoder: Option<&LoadedAutoencoder>,
    batch: usize,
    device: &Device,
) -> Result<Tensor<4>, GenerateError> {
    let (c, size) = (model.config.image_channels, model.config.image_size);
    let x = match decoder {
        Some(ae) => {
            let [pc, ph, pw] = init.shape;
            init.validate(ae.config.image_channels, ae.config.image_size)?;
            let pixels = Tensor::<4>::from_data(TensorData::new(init.values(), [1, pc, ph, pw]), device);
            ae.encode_scaled(pixels)
        }
        None => {
            init.validate(c, size)?;
            Tensor::<4>::from_data(TensorData::new(init.values(), [1, c, size, size]), device)
        }
    };
    Ok(x.repeat_dim(0, batch))
}

/// Inpainting's `keep` at the diffusion's resolution, [batch, channels, s, s] of `shape`, from a mask of
/// `mask_size` x `mask_size` pixels (nonzero = repaint).
fn keep_mask(mask: &[u8], mask_size: usize, shape: [usize; 4], device: &Device) -> Tensor<4> {
    Tensor::<4>::from_data(TensorData::new(keep_values(mask, mask_size, shape), shape), device)
}

/// [`keep_mask`]'s values: 1 where the original stays, 0 where the model repaints. A latent cell stays only
/// if every pixel it covers stays: the model repaints a little more than was painted rather than less.
pub(crate) fn keep_values(mask: &[u8], mask_size: usize, shape: [usize; 4]) -> Vec<f32> {
    let [batch, channels, s, _] = shape;
    let plane: Vec<f32> = (0..s * s)
        .map(|cell| {
            let (cy, cx) = (cell / s, cell % s);
            let (y0, y1) = (cy * mask_size / s, ((cy + 1) * mask_size).div_ceil(s));
            let (x0, x1) = (cx * mask_size / s, ((cx + 1) * mask_size).div_ceil(s));
            let repaint = (y0..y1).any(|y| (x0..x1).any(|x| mask.get(y * mask_size + x).is_some_and(|m| *m != 0)));
            if repaint { 0.0 } else { 1.0 }
        })
        .collect();
    plane.iter().copied().cycle().take(batch * channels * s * s).collect()
}
