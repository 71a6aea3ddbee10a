//! Any number of images of one request's settings, each with its own class: `sample`, `eval --prompts` and
//! the trainer's preview grids. They are cut into batches that draw on one noise stream, and each batch is
//! run by the one sampling loop ([`super::generate::run_from`], what the window's runs go through).

use std::time::Instant;

use burn::prelude::*;

use super::generate::{GenerateError, GenerateRequest, RunHooks, RunStart, latent_decoder, prompt_condition, run_from};
use crate::diffusion::NoiseSource;
use crate::images::Picture;
use crate::model::denoise::Condition;
use crate::model::{LoadedAutoencoder, LoadedUnet};

/// Images sampled together (twice that through the network with classifier-free guidance): bounded
/// batches keep memory flat for thousands of images.
pub const SAMPLE_BATCH: usize = 100;

/// One picture per entry of `classes` (a class, or the model's `num_classes` for none: unconditional), made
/// with `request`'s model, schedule, sampler, seed, prompt and guidance (its `batch` and `class` are
/// `classes`'; no starting picture, interpolation or branch). In batches of [`SAMPLE_BATCH`], x_T of each
/// drawn from one noise stream after the steps of the one before, so image i is the same whatever the
/// number after it, and the first batch's x_T is the window's for the same seed. `progress` is called
/// after every step of every batch. A latent model's pictures are decoded by `decoder`.
pub fn run_images(
    model: &LoadedUnet,
    decoder: Option<&LoadedAutoencoder>,
    request: &GenerateRequest,
    classes: &[usize],
    device: &Device,
    progress: &dyn Fn(),
) -> Result<Vec<Picture>, GenerateError> {
    let num_classes = model.config.num_classes;
    check(request, classes, num_classes)?;
    super::generate::check(model, &GenerateRequest { batch: 1, class: None, ..request.clone() })?;
    let decoder = latent_decoder(model, decoder)?;
    let schedule = request.schedule.build()?;
    let (plan, level) = request.plan(&schedule)?;
    let plan = plan.with_x0_bound(model.x0_bound());
    let (c, size) = (model.config.image_channels, model.config.image_size);
    // w as asked, for every image: an unconditional image's two branches are both ε̂_∅, so guidance leaves it
    // ε̂_∅ + w·0. (A window run of no class evaluates ε̂_∅ once, which can differ from it in the last bits:
    // `sample` has always guided so, and its images stay what they were.)
    let guidance = request.guidance_settings();
    let mut noise = NoiseSource::new(request.seed);
    let mut pictures = Vec::with_capacity(classes.len());
    for chunk in classes.chunks(SAMPLE_BATCH) {
        let n = chunk.len();
        let x = noise.tensor([n, c, size, size], device);
        let start = RunStart { plan: plan.clone(), level, x, previous_x0: None, apg: None, noise, inpaint: None };
        let condition = batch_condition(request, model, chunk, device)?;
        let keep_going = || {
            progress();
            true
        };
        // Not streamed: x_T's frame, then the last step's, whose pictures are the batch's.
        let mut emit = |frame: super::Frame| {
            if frame.index > 0 {
                progress();
                pictures.extend(frame.pictures());
            }
        };
        let hooks = RunHooks { keep_going: &keep_going, stream: false, emit: &mut emit };
        noise = run_from(model, decoder, start, &condition, guidance, Instant::now(), hooks)?.1;
    }
    Ok(pictures)
}

/// `request` and `classes` as [`run_images`] takes them.
fn check(request: &GenerateRequest, classes: &[usize], num_classes: usize) -> Result<(), GenerateError> {
    if let Some(class) = classes.iter().copied().find(|c| *c > num_classes) {
        return Err(GenerateError::Class { class, classes: num_classes });
    }
    if request.init.is_some() {
        return Err(GenerateError::Init("a run of many images starts from noise: run one batch instead".into()));
    }
    if request.interpolate.is_some() {
        return Err(GenerateError::Interpolate("a run of many images interpolates nothing".into()));
    }
    if request.branch.is_some() {
        return Err(GenerateError::Branch("a branch continues its parent's one batch".into()));
    }
    // The rest of the settings, as one batch of them.
    GenerateRequest { batch: 1, class: None, ..request.clone() }.validate(num_classes)
}

/// Each image's class (`num_classes`: none), and the request's prompt for a text model.
fn batch_condition(
    request: &GenerateRequest,
    model: &LoadedUnet,
    chunk: &[usize],
    device: &Device,
) -> Result<Condition, GenerateError> {
    let n = chunk.len();
    let labels: Vec<i64> = chunk.iter().map(|c| *c as i64).collect();
    let labels = Tensor::<1, Int>::from_data(TensorData::new(labels, [n]), device);
    let prompt = match (&request.prompt, &model.config.text) {
        (Some(prompt), Some(text)) => Some(prompt_condition(text, prompt, None, n, device)?),
        (Some(_), None) => {
            return Err(GenerateError::Prompt("this model is conditioned on classes, not prompts".into()));
        }
        (None, _) => None,
    };
    Ok(Condition { prompt, ..Condition::classes(labels) })
}
