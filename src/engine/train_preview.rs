//! The Train view's sample grids during training: the EMA weights sampled with the window's default
//! sampler from the same x_T each time, one run per class side by side, every frame kept (decoded for a
//! latent model), as Generate's runs are.

use std::sync::Arc;

use burn::prelude::Device;

use super::error::EngineError;
use crate::diffusion::BetaSchedule;
use crate::model::denoise::{DEFAULT_GUIDANCE, DEFAULT_SAMPLER};
use crate::model::{LoadedAutoencoder, LoadedUnet};
use crate::run::generate::{Frame, GenerateRequest, RunHooks, decode_frame, run_generate};

/// The x_T of every sample grid during a run: the same noise each time, so the grids show the model
/// learning, not the noise changing.
pub const PREVIEW_SEED: u64 = 0;

/// Images per sample grid: one per class (at least 8 in all), or 8 unconditional samples.
const PREVIEW_IMAGES: usize = 8;

/// A sample grid of `model` with the window's default sampler: for labelled data one run per class (the same
/// x_T for every class), their frames side by side; else unconditional samples. Latent frames come decoded.
pub(super) fn preview_frames(
    model: &LoadedUnet,
    autoencoder: Option<&LoadedAutoencoder>,
    id: &crate::model::ModelId,
    labelled: bool,
    device: &Device,
) -> Result<(GenerateRequest, Vec<Frame>), EngineError> {
    let classes = model.config.num_classes;
    let per_class = if labelled { PREVIEW_IMAGES.div_ceil(classes).max(1) } else { PREVIEW_IMAGES };
    let runs: Vec<Option<usize>> = if labelled { (0..classes).map(Some).collect() } else { vec![None] };
    let request_for = |class: Option<usize>, batch: usize| GenerateRequest {
        model: id.clone(),
        schedule: model.header.training_schedule.unwrap_or_else(|| BetaSchedule::cosine(1000)),
        sampler: DEFAULT_SAMPLER,
        seed: PREVIEW_SEED,
        batch,
        class,
        prompt: None,
        guidance: DEFAULT_GUIDANCE,
        guidance_interval: None,
        guidance_method: Default::default(),
        init: None,
        interpolate: None,
        branch: None,
    };
    let mut columns: Vec<Vec<Frame>> = Vec::with_capacity(runs.len());
    for class in &runs {
        let mut frames = Vec::new();
        let keep_going = || true;
        let mut emit = |frame: Frame| frames.push(frame);
        let hooks = RunHooks { keep_going: &keep_going, stream: true, emit: &mut emit };
        run_generate(model, autoencoder, &request_for(*class, per_class), device, hooks)?;
        if let Some(ae) = autoencoder {
            for frame in frames.iter_mut().filter(|f| f.decoded.is_none()) {
                frame.decoded = Some(decode_frame(ae, frame, device)?);
            }
        }
        columns.push(frames);
    }
    let frames = concat_batches(&columns);
    let mut request = request_for(None, per_class * runs.len());
    request.class = runs.first().copied().flatten();
    Ok((request, frames))
}

/// The step parts of frame `i` of every run, joined along the batch: each part where every run has it.
fn joined_parts(runs: &[Vec<Frame>], i: usize) -> Option<crate::run::generate::StepParts> {
    let parts: Vec<&crate::run::generate::StepParts> =
        runs.iter().map(|run| run[i].parts.as_ref()).collect::<Option<_>>()?;
    let join = |part: &dyn Fn(&crate::run::generate::StepParts) -> Option<Arc<Vec<f32>>>| -> Option<Arc<Vec<f32>>> {
        let values: Vec<Arc<Vec<f32>>> = parts.iter().map(|p| part(p)).collect::<Option<_>>()?;
        Some(Arc::new(values.iter().flat_map(|v| v.iter().copied()).collect()))
    };
    Some(crate::run::generate::StepParts {
        guidance: parts.first()?.guidance,
        method: parts.first()?.method,
        apg_previous: join(&|p| p.apg_previous.clone()),
        unconditional: join(&|p| p.unconditional.clone()),
        conditional: join(&|p| p.conditional.clone()),
        noise: join(&|p| p.noise.clone()),
        eps_second: join(&|p| p.eps_second.clone()),
        objective: parts.first()?.objective,
    })
}

/// Frames of runs with the same plan, joined along the batch: frame i holds every run's frame i.
pub fn concat_batches(runs: &[Vec<Frame>]) -> Vec<Frame> {
    let Some(first) = runs.first() else { return Vec::new() };
    let joined = |values: &dyn Fn(&Frame) -> Arc<Vec<f32>>, i: usize| -> Arc<Vec<f32>> {
        Arc::new(runs.iter().flat_map(|run| values(&run[i]).iter().copied().collect::<Vec<f32>>()).collect())
    };
    let frames = runs.iter().map(Vec::len).min().unwrap_or(0);
    (0..frames)
        .map(|i| {
            let base = &first[i];
            let batch: usize = runs.iter().map(|run| run[i].shape[0]).sum();
            let [_, c, h, w] = base.shape;
            let decoded = base.decoded.as_ref().and_then(|d| {
                let parts: Option<Vec<&crate::run::generate::Decoded>> =
                    runs.iter().map(|run| run[i].decoded.as_ref()).collect();
                let parts = parts?;
                let [_, dc, dh, dw] = d.shape;
                Some(crate::run::generate::Decoded {
                    shape: [batch, dc, dh, dw],
                    x_t: Arc::new(parts.iter().flat_map(|p| p.x_t.iter().copied()).collect()),
                    x0_pred: Arc::new(parts.iter().flat_map(|p| p.x0_pred.iter().copied()).collect()),
                })
            });
            Frame {
                index: base.index,
                t: base.t,
                log_snr: base.log_snr,
                shape: [batch, c, h, w],
                x_t: joined(&|f| f.x_t.clone(), i),
                x0_pred: joined(&|f| f.x0_pred.clone(), i),
                eps: joined(&|f| f.eps.clone(), i),
                decoded,
                parts: joined_parts(runs, i),
            }
        })
        .collect()
}
