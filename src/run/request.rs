//! What decides a run's pixels: the request (`GenerateRequest`, with its branch, prompt, interpolation and
//! starting image), how it is checked, and the plan of steps it runs; and what can go wrong (`GenerateError`).

use serde::{Deserialize, Serialize};

use crate::diffusion::guidance::{Guidance, GuidanceError, GuidanceMethod, GuidanceParams, cfgpp_supports};
use crate::diffusion::{BetaSchedule, NoiseLevel, Sampler, SamplingPlan};

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
    /// The guidance method and its parameters (`guidance` is its scale: w, or CFG++'s λ). Plain CFG, the
    /// default, is left out of saved settings, so settings saved before methods existed read as CFG.
    #[serde(default, skip_serializing_if = "GuidanceParams::is_default")]
    pub guidance_method: GuidanceParams,
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
    #[error(transparent)]
    Guidance(#[from] GuidanceError),
    #[error(
        "autoguidance needs a weaker model of the same kind to guide with: the built-in models bring their own; \
         for a model file pass --guide with an earlier checkpoint of it"
    )]
    NoGuide,
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

    /// The guidance the request asks for: its method and parameters at scale `guidance`, in its interval.
    pub fn guidance_settings(&self) -> Guidance {
        Guidance { scale: self.guidance, interval: self.guidance_interval, params: self.guidance_method }
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
        self.guidance_settings().validate()?;
        if self.guidance_method.method == GuidanceMethod::CfgPlusPlus {
            cfgpp_supports(self.sampler.method)?;
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
