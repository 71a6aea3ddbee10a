//! One Generate request run to the end (or to its cancellation): the denoising loop with every step
//! handed out as plain f32 data, ready to stream into the window.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Instant;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::diffusion::{BetaSchedule, NoiseLevel, NoiseSource, Sampler, SamplingPlan, edit};
use crate::model::denoise::{Condition, DenoiseState, Guidance, Inpaint, PromptCondition, StepOutput, denoise_from};
use crate::model::{LoadedAutoencoder, LoadedUnet};

/// Everything that decides the pixels of a run; saved into PNGs so a run can be restored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerateRequest {
    /// The model's name as the app lists it.
    /// Saved in PNG settings as its label.
    pub model: crate::model::ModelId,
    pub schedule: BetaSchedule,
    #[serde(deserialize_with = "crate::diffusion::sampler::sampler_current_or_legacy")]
    pub sampler: Sampler,
    pub seed: u64,
    /// Images in the batch (1..=64).
    pub batch: usize,
    /// The class to draw, or `None` for any (unconditional).
    pub class: Option<usize>,
    /// A text model's prompt (and negative prompt): what it draws in place of the class. Ignored by a class
    /// model.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt: Option<PromptRequest>,
    /// Classifier-free guidance scale w.
    pub guidance: f64,
    /// Guidance only within this range of noise levels, [lowest λ, highest λ]; w = 1 elsewhere
    /// (see [`crate::model::denoise::Guidance`]). `None`: at every level.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub guidance_interval: Option<[f64; 2]>,
    /// Image-to-image and inpainting: start from a picture instead of pure noise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<InitImage>,
    /// Interpolation towards another seed's noise and/or another class.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interpolate: Option<Interpolate>,
    /// Continue another run from one of its steps with these settings ("Continue from here").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<Branch>,
}

/// A run continued from a recorded step of another (its parent): x at that step is the parent's, exactly
/// (the parent is run again up to it: the same seed gives the same x), and from there this request's own
/// class, guidance, sampler and seed take over. The model, schedule, batch and starting picture are the
/// parent's.
///
/// What carries over: with the parent's sampler and steps, the rest of the parent's plan (and a multistep
/// solver's previous x̂_0), so a branch that changes nothing else reproduces the parent's frames; with
/// another sampler or step count, a plan made afresh from that noise level
/// ([`Sampler::plan_from_level`]). With the parent's seed, the parent's noise stream continues (a
/// stochastic sampler draws what the parent drew); with another seed, the fresh noise comes from that seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Branch {
    /// The run branched from, whole (itself possibly a branch).
    pub parent: Box<GenerateRequest>,
    /// The parent's frame continued from: 0 = its x_T, k = after its k-th step.
    pub at_step: usize,
}

/// A text model's prompt, and the negative prompt whose ε̂ classifier-free guidance steers away from in
/// place of the empty prompt's: ε̂ = ε̂_neg + w (ε̂_prompt - ε̂_neg).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PromptRequest {
    pub text: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub negative: String,
}

impl PromptRequest {
    pub fn new(text: impl Into<String>) -> Self {
        Self { text: text.into(), negative: String::new() }
    }
}

/// One point between two runs: x_T spherically between this seed's noise and `seed_b`'s, and the context
/// between τ_θ(class) and τ_θ(`class_b`) (a text model's: between its prompt's and `prompt_b`'s), at `u`
/// (0 = this run, 1 = the other).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Interpolate {
    pub u: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_b: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_b: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompt_b: Option<String>,
}

/// The picture an image-to-image or inpainting run starts from, kept whole in the request (a 28x28
/// picture is 784 bytes) so that a PNG's settings reproduce the run without the original file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InitImage {
    /// Where it came from, for labels: "test image 17", a file name, "frame t = 400 of the last run".
    pub label: String,
    /// [channels, height, width]: the model's image size.
    pub shape: [usize; 3],
    /// 8-bit values, channel-major (CHW).
    pub pixels: Vec<u8>,
    /// How far into the forward process the picture goes before the reverse process (SDEdit): 0 keeps it
    /// as it is, 1 starts from pure noise, as Generate does.
    pub strength: f64,
    /// Inpainting: [height, width], nonzero where the model repaints; the rest of the picture stays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<Vec<u8>>,
    /// RePaint's resampling: each step taken this many times (1 = once).
    #[serde(default = "one")]
    pub resample: usize,
}

fn one() -> usize {
    1
}

/// Most times RePaint may take each step: each costs a whole step.
pub const MAX_RESAMPLE: usize = 20;

impl InitImage {
    /// Checks the picture against a model's images.
    pub fn validate(&self, channels: usize, size: usize) -> Result<(), GenerateError> {
        let bad = |why: String| Err(GenerateError::Init(why));
        if self.shape != [channels, size, size] {
            return bad(format!(
                "the picture is {:?} (channels, height, width), the model makes {channels}x{size}x{size}",
                self.shape
            ));
        }
        if self.pixels.len() != channels * size * size {
            return bad(format!("{} pixel values for a {channels}x{size}x{size} picture", self.pixels.len()));
        }
        if !(0.0..=1.0).contains(&self.strength) {
            return bad(format!("strength must be in [0, 1], got {}", self.strength));
        }
        if self.mask.as_ref().is_some_and(|m| m.len() != size * size) {
            return bad(format!("the mask must be {size}x{size}"));
        }
        if !(1..=MAX_RESAMPLE).contains(&self.resample) {
            return bad(format!("resampling must be between 1 and {MAX_RESAMPLE}, got {}", self.resample));
        }
        Ok(())
    }

    /// The picture as values in [-1, 1], [channels, height, width].
    pub fn values(&self) -> Vec<f32> {
        self.pixels.iter().map(|p| crate::data::unit_from_u8(*p)).collect()
    }
}

pub const MAX_BATCH: usize = 64;

/// One step of a run, copied off the device.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Position in the run, 0 = x_T (before any step), i + 1 = after step i.
    pub index: usize,
    /// The timestep this frame shows: T for x_T, then t' of each step (0 = the final image); for Karras
    /// spacing the schedule's timestep nearest its noise level.
    pub t: usize,
    /// λ = ln(ᾱ / (1 - ᾱ)) of x_t: where a run is, comparable across schedules and samplers (+∞ at the end).
    pub log_snr: f64,
    pub shape: [usize; 4],
    /// x_t, [batch, channels, h, w] row-major.
    pub x_t: Arc<Vec<f32>>,
    /// x̂_0 predicted at this step (x_T's frame has none yet: zeros).
    pub x0_pred: Arc<Vec<f32>>,
    /// The guided ε at this step (zeros for x_T).
    pub eps: Arc<Vec<f32>>,
    /// For a latent model: x_t and x̂_0 decoded to pixels by the autoencoder, D(z / scale).
    pub decoded: Option<Decoded>,
    /// What the step that made this frame combined, beyond x̂_0 and ε̂: recorded while a run streams, so
    /// that "This step" can take the step apart without the network (`None` for x_T's frame).
    pub parts: Option<StepParts>,
}

/// The inputs of a step that a frame does not otherwise keep, all [batch, channels, h, w] like x_t.
#[derive(Clone, Debug, Default)]
pub struct StepParts {
    /// w at this step (1 outside a guidance interval; 0 for an unconditional run).
    pub guidance: f64,
    /// ε̂_∅ = ε_θ(x_t, ∅), where evaluated (w ≠ 1).
    pub unconditional: Option<Arc<Vec<f32>>>,
    /// ε̂_y = ε_θ(x_t, y), where evaluated (w ≠ 0).
    pub conditional: Option<Arc<Vec<f32>>>,
    /// The fresh noise z the sampler drew at this step (stochastic samplers).
    pub noise: Option<Arc<Vec<f32>>>,
    /// Heun's second guided evaluation, at the point its Euler step reached.
    pub eps_second: Option<Arc<Vec<f32>>>,
}

impl StepParts {
    /// Values kept, for the memory budget.
    fn len(&self) -> usize {
        [&self.unconditional, &self.conditional, &self.noise, &self.eps_second]
            .into_iter()
            .flatten()
            .map(|v| v.len())
            .sum()
    }
}

/// The bytes a frame of a run counts for against the budget: its values, and for a latent run the pixels
/// every frame ends up with (x_T's frame, `first`, always comes decoded and shows their size). The window
/// and the engine's backlog count the same, so they thin a run alike.
pub fn frame_budget_bytes(frame: &Frame, first: Option<&Frame>) -> usize {
    let pixels = first.unwrap_or(frame).decoded.as_ref().or(frame.decoded.as_ref()).map_or(0, |d| 2 * d.x_t.len());
    let parts = frame.parts.as_ref().map_or(0, StepParts::len);
    4 * (3 * frame.x_t.len() + pixels + parts)
}

/// How much memory the frames of one run may take, in the window and in the engine's decoding backlog.
/// DDPM over T = 10 000 at batch 64 would otherwise keep about 6 GB.
pub const TRAJECTORY_BUDGET_BYTES: usize = 768 << 20;

/// Appends `frame` to a run's `frames`, keeping them within `budget` bytes: every step while they fit, then
/// every 2nd step, then every 4th... (`stride`, doubled as needed), always with x_T and the newest frame
/// (the one on screen while a run streams). A frame before the newest that is off the stride is dropped
/// when the next one arrives.
pub fn push_within_budget(
    frames: &mut Vec<Frame>,
    frame: Frame,
    stride: &mut usize,
    budget: usize,
    frame_bytes: usize,
) {
    let stride_now = (*stride).max(1);
    if frames.len() > 1 && frames.last().is_some_and(|last| last.index % stride_now != 0) {
        frames.pop();
    }
    frames.push(frame);
    while frames.len() > 2 && frames.len() * frame_bytes > budget {
        *stride = (*stride).max(1) * 2;
        let (stride, newest) = (*stride, frames.len() - 1);
        let mut position = 0;
        frames.retain(|f| {
            let keep = f.index % stride == 0 || position == newest;
            position += 1;
            keep
        });
    }
}

impl Frame {
    /// The frame's x_t as pictures, one per image of the batch: decoded pixels for a latent run.
    pub fn pictures(&self) -> Vec<crate::images::Picture> {
        let (values, [batch, c, h, w]) = match &self.decoded {
            Some(decoded) => (&decoded.x_t, decoded.shape),
            None => (&self.x_t, self.shape),
        };
        crate::images::pictures_from_batch(values, batch, c, h, w)
    }
}

/// Pixels of a latent frame.
#[derive(Clone, Debug)]
pub struct Decoded {
    /// [batch, channels, h, w] of the pixel images.
    pub shape: [usize; 4],
    pub x_t: Arc<Vec<f32>>,
    pub x0_pred: Arc<Vec<f32>>,
}

#[cfg(test)]
mod budget_tests {
    use super::*;

    fn frame(index: usize) -> Frame {
        let values = Arc::new(vec![0.0; 10]);
        let log_snr = index as f64;
        Frame {
            index,
            t: 1000 - index,
            log_snr,
            shape: [1, 1, 2, 5],
            x_t: values.clone(),
            x0_pred: values.clone(),
            eps: values,
            decoded: None,
            parts: None,
        }
    }

    #[test]
    fn frames_are_thinned_to_the_budget_keeping_x_t_and_the_newest() {
        let (mut frames, mut stride) = (Vec::new(), 1);
        let bytes = frame_budget_bytes(&frame(0), None);
        assert_eq!(bytes, 120);
        for index in 0..=1000 {
            push_within_budget(&mut frames, frame(index), &mut stride, 100 * bytes, bytes);
            assert!(frames.len() <= 100, "{} frames at step {index}", frames.len());
            assert_eq!(frames.last().unwrap().index, index, "the newest frame is kept");
        }
        assert_eq!(frames[0].index, 0, "x_T is kept");
        assert_eq!(stride, 16);
        assert!(frames.windows(2).all(|w| w[0].index < w[1].index));
        assert!(frames[..frames.len() - 1].iter().all(|f| f.index % 16 == 0), "evenly thinned");
        assert!(frames.len() >= 50, "the budget is used: {}", frames.len());
        // Within the budget nothing is dropped.
        let (mut frames, mut stride) = (Vec::new(), 1);
        for index in 0..50 {
            push_within_budget(&mut frames, frame(index), &mut stride, 100 * bytes, bytes);
        }
        assert_eq!((frames.len(), stride), (50, 1));
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("invalid schedule: {0}")]
    Schedule(#[from] crate::diffusion::ScheduleError),
    #[error("invalid sampler: {0}")]
    Sampler(#[from] crate::diffusion::sampler::SamplerError),
    #[error("batch must be between 1 and {MAX_BATCH}, got {0}")]
    Batch(usize),
    #[error("class {class} does not exist: the model knows {classes} classes")]
    Class { class: usize, classes: usize },
    #[error("{0}")]
    Prompt(String),
    #[error("guidance must be a finite number of at least 0, got {0}")]
    Guidance(f64),
    #[error("the guidance interval must be two noise levels λ from low to high, got {0} to {1}")]
    GuidanceInterval(f64, f64),
    #[error("the sampler produced non-finite values at t = {t}: the schedule or guidance is too extreme")]
    NonFinite { t: usize },
    #[error("reading a step back from the device failed: {0}")]
    Readback(String),
    #[error("this latent model has no autoencoder to turn its latents into pixels")]
    NoAutoencoder,
    #[error("the starting picture cannot be used: {0}")]
    Init(String),
    #[error("cannot interpolate: {0}")]
    Interpolate(String),
    #[error("cannot continue from that step: {0}")]
    Branch(String),
}

/// How many branches of branches a request may stack: each level runs its parent again up to its step.
pub const MAX_BRANCH_DEPTH: usize = 16;

impl GenerateRequest {
    /// How many branches deep this request is: 0 for a run of its own.
    pub fn branch_depth(&self) -> usize {
        let mut depth = 0;
        let mut request = self;
        while let Some(branch) = &request.branch {
            depth += 1;
            request = &branch.parent;
        }
        depth
    }

    /// Checks the request against a model that knows `num_classes` classes.
    pub fn validate(&self, num_classes: usize) -> Result<(), GenerateError> {
        let schedule = self.schedule.build()?;
        self.sampler.validate(schedule.steps())?;
        if self.batch == 0 || self.batch > MAX_BATCH {
            return Err(GenerateError::Batch(self.batch));
        }
        if let Some(class) = self.class.filter(|c| *c >= num_classes) {
            return Err(GenerateError::Class { class, classes: num_classes });
        }
        if !(self.guidance.is_finite() && self.guidance >= 0.0) {
            return Err(GenerateError::Guidance(self.guidance));
        }
        if let Some([low, high]) = self.guidance_interval
            && (low.is_nan() || high.is_nan() || low > high)
        {
            return Err(GenerateError::GuidanceInterval(low, high));
        }
        if let Some(i) = &self.interpolate {
            if !(0.0..=1.0).contains(&i.u) {
                return Err(GenerateError::Interpolate(format!("u must be in [0, 1], got {}", i.u)));
            }
            match (i.class_b, self.class) {
                (Some(b), _) if b >= num_classes => {
                    return Err(GenerateError::Class { class: b, classes: num_classes });
                }
                (Some(_), None) => {
                    return Err(GenerateError::Interpolate(
                        "a class to start from is needed to interpolate classes".into(),
                    ));
                }
                _ => {}
            }
        }
        if let Some(branch) = &self.branch {
            let parent = &branch.parent;
            if self.branch_depth() > MAX_BRANCH_DEPTH {
                return Err(GenerateError::Branch(format!("branches nest at most {MAX_BRANCH_DEPTH} deep")));
            }
            parent.validate(num_classes)?;
            let same = self.model == parent.model
                && self.schedule == parent.schedule
                && self.batch == parent.batch
                && self.init == parent.init;
            if !same {
                return Err(GenerateError::Branch(
                    "a branch keeps its parent's model, schedule, batch and starting picture".into(),
                ));
            }
            self.plan(&schedule)?;
        }
        Ok(())
    }

    /// The steps this request takes and the level it starts from: the whole plan from pure noise, or for
    /// image-to-image the last steps, from the picture noised to where they start; for a branch, the rest
    /// of its parent's plan or a plan made afresh from the step it continues from (see [`Branch`]).
    pub fn plan(
        &self,
        schedule: &crate::diffusion::NoiseSchedule,
    ) -> Result<(SamplingPlan, NoiseLevel), GenerateError> {
        if let Some(branch) = &self.branch {
            let (parent_plan, parent_start) = branch.parent.plan(schedule)?;
            let k = branch.at_step;
            if k >= parent_plan.len() {
                return Err(GenerateError::Branch(format!(
                    "step {k} is not before the end of its run, which has {} steps",
                    parent_plan.len()
                )));
            }
            let level = if k == 0 { parent_start } else { parent_plan.steps[k - 1].level_prev() };
            if self.sampler == branch.parent.sampler {
                return Ok((SamplingPlan { steps: parent_plan.steps[k..].to_vec(), ..parent_plan }, level));
            }
            return Ok((self.sampler.plan_from_level(schedule, level)?, level));
        }
        match &self.init {
            Some(init) => Ok(self.sampler.plan_from_strength(schedule, init.strength)?),
            None => {
                let plan = self.sampler.plan(schedule)?;
                let start = plan.steps.first().map_or(NoiseLevel::CLEAN, |s| s.level());
                Ok((plan, start))
            }
        }
    }
}

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
    request.validate(model.config.num_classes)?;
    let decoder = latent_decoder(model, decoder)?;
    let started = Instant::now();
    let start = run_start(model, decoder, request, device)?;
    let condition = condition(request, &model.config, device)?;
    let guidance = guidance_of(request, model.config.text.is_some());
    let (summary, _) = run_from(model, decoder, start, &condition, guidance, started, hooks)?;
    Ok(summary)
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
    let RunStart { plan, level: start, x: x_start, previous_x0, mut noise, inpaint } = start;
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
    let state = DenoiseState { x: x_start, previous_x0 };
    denoise_from(&model.model, &plan, state, condition, guidance, &mut noise, inpaint.as_ref(), |step| {
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
        return Ok(RunStart { plan, level, x, previous_x0: None, noise, inpaint });
    };
    let parent = &branch.parent;
    let RunStart { plan: parent_plan, x, previous_x0, mut noise, inpaint, .. } =
        run_start(model, decoder, parent, device)?;
    let before = SamplingPlan { steps: parent_plan.steps[..branch.at_step].to_vec(), ..parent_plan };
    let condition = condition(parent, &model.config, device)?;
    let state = DenoiseState { x, previous_x0 };
    let state = denoise_from(
        &model.model,
        &before,
        state,
        &condition,
        guidance_of(parent, model.config.text.is_some()),
        &mut noise,
        inpaint.as_ref(),
        |_| ControlFlow::Continue(()),
    );
    let same_plan = request.sampler == parent.sampler;
    let noise = if request.seed == parent.seed { noise } else { NoiseSource::new(request.seed) };
    let previous_x0 = state.previous_x0.filter(|_| same_plan);
    Ok(RunStart { plan, level, x: state.x, previous_x0, noise, inpaint })
}

/// Classifier-free guidance as `request` asks for it: unconditional requests have no conditional branch
/// to guide towards.
fn guidance_of(request: &GenerateRequest, text_model: bool) -> Guidance {
    match (request.class, &request.prompt) {
        // The empty prompt is guidance's ∅ itself: one evaluation, the unconditional model.
        (_, Some(p)) if text_model && p.text.trim().is_empty() && p.negative.trim().is_empty() => Guidance::from(0.0),
        (_, Some(_)) if text_model => Guidance { scale: request.guidance, interval: request.guidance_interval },
        (Some(_), _) => Guidance { scale: request.guidance, interval: request.guidance_interval },
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
        unconditional: read(step.unconditional)?,
        conditional: read(step.conditional)?,
        noise: read(step.noise)?,
        eps_second: read(step.eps_second)?,
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
