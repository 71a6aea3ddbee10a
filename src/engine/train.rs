//! Training on the engine's thread, for the window's Train view. The worker runs one optimizer step
//! whenever no command is waiting, so a Generate (with any loaded model, the one being trained included)
//! runs between two steps, and Pause / Stop take effect after the step in progress.
//!
//! The run itself is [`Training`], the same as `diffusion-lab train`: the same folder layout, loss log,
//! checkpoints and resume.

use std::path::PathBuf;
use std::sync::Arc;

use burn::prelude::Device;

use super::error::EngineError;
use crate::data::Dataset;
use crate::diffusion::BetaSchedule;
use crate::model::denoise::{DEFAULT_GUIDANCE, DEFAULT_SAMPLER};
use crate::model::{LoadedAutoencoder, LoadedUnet};
use crate::run::generate::{Frame, GenerateRequest, RunHooks, decode_frame, run_generate};
use crate::train::training::{
    DataSource, Training, TrainingData, TrainingOptions, TrainingProgress, load_training_data, read_loss_log,
    training_progress,
};

/// The x_T of every sample grid during a run: the same noise each time, so the grids show the model
/// learning, not the noise changing.
pub const PREVIEW_SEED: u64 = 0;

/// Images per sample grid: one per class (at least 8 in all), or 8 unconditional samples.
const PREVIEW_IMAGES: usize = 8;

/// Data as the Train view asks for it: where, and the size and channels a folder's images are converted to.
#[derive(Clone, Debug, PartialEq)]
pub struct DataRequest {
    pub source: DataSource,
    pub image_size: usize,
    pub image_channels: usize,
}

/// A new or resumed training run.
#[derive(Clone, Debug)]
pub struct TrainRequest {
    pub data: DataRequest,
    pub options: TrainingOptions,
    /// Continue the run in `options.out` instead of starting one.
    pub resume: bool,
    /// The name the model gets in Generate's model picker.
    pub model: crate::model::ModelId,
    /// For a latent run on the built-in autoencoder: its checkpoint, written to `options.autoencoder`
    /// first (so that the run folder holds everything `sample --model` needs).
    pub built_in_autoencoder: Option<&'static [u8]>,
}

pub enum TrainCommand {
    /// Load the data (kept for the next Start) and describe it.
    Inspect(DataRequest),
    /// Read where the run in a folder stands.
    FindRun(PathBuf),
    Start(Box<TrainRequest>),
    Pause,
    Continue,
    Stop,
}

/// What the Train view shows of a data set.
#[derive(Clone, Debug)]
pub struct DataSummary {
    pub request: DataRequest,
    pub description: String,
    pub count: usize,
    pub shape: [usize; 3],
    /// Class names (sub-folders) and how many images each has; empty for unlabelled images.
    pub classes: Vec<(String, usize)>,
    /// The first images, [n, channels, h, w].
    pub preview: Arc<Vec<f32>>,
    pub preview_count: usize,
    /// Files that could not be used, each with why.
    pub skipped: Vec<(String, String)>,
}

#[derive(Clone, Debug)]
pub enum TrainEvent {
    DataLoaded(DataSummary),
    DataFailed {
        request: DataRequest,
        message: String,
    },
    TrainingFound {
        dir: PathBuf,
        progress: Option<TrainingProgress>,
        error: Option<String>,
    },
    Started {
        step: u64,
        steps: u64,
        parameters: usize,
        images: usize,
        description: String,
        out: PathBuf,
        /// For a resumed run: the loss log up to its checkpoint.
        history: Vec<(u64, f64)>,
    },
    Step {
        step: u64,
        loss: f64,
        smoothed: f64,
        learning_rate: f64,
        images_per_second: f64,
        step_seconds: f64,
        /// (λ, loss) of each image of the step's batch.
        levels: Vec<[f64; 2]>,
    },
    Checkpointed {
        step: u64,
    },
    /// A sample grid of the EMA weights after `step`: every frame of its denoising, as Generate's.
    Samples {
        step: u64,
        request: Box<GenerateRequest>,
        frames: Vec<Frame>,
    },
    Paused {
        step: u64,
    },
    Continued,
    Stopped {
        step: u64,
        finished: bool,
    },
    Failed {
        message: String,
    },
}

/// The run in progress.
pub struct TrainSession {
    pub run: Training,
    pub paused: bool,
    pub model: crate::model::ModelId,
    /// Whether the data has labels: samples are then one per class, guided.
    labelled: bool,
}

/// What the worker keeps for training between commands.
#[derive(Default)]
pub struct TrainerState {
    pub session: Option<TrainSession>,
    /// The data last inspected, kept so that Start does not load it again.
    data: Option<(DataRequest, TrainingData)>,
}

/// A trained model for the worker to register under `name` (Generate's picker shows it at once).
pub type Publish = (crate::model::ModelId, LoadedUnet, Option<LoadedAutoencoder>);

impl TrainerState {
    /// Whether a step is waiting to run.
    pub fn is_training(&self) -> bool {
        self.session.as_ref().is_some_and(|s| !s.paused)
    }

    pub fn handle(&mut self, command: TrainCommand, device: &Device, send: &dyn Fn(TrainEvent)) -> Option<Publish> {
        match command {
            TrainCommand::Inspect(request) => {
                match self.load(&request) {
                    Ok(loaded) => send(TrainEvent::DataLoaded(summary(&request, loaded))),
                    Err(e) => send(TrainEvent::DataFailed { request, message: e.to_string() }),
                }
                None
            }
            TrainCommand::FindRun(dir) => {
                let (progress, error) = match training_progress(&dir) {
                    Ok(progress) => (progress, None),
                    Err(e) => (None, Some(e.to_string())),
                };
                send(TrainEvent::TrainingFound { dir, progress, error });
                None
            }
            TrainCommand::Start(request) => {
                if self.session.is_some() {
                    send(TrainEvent::Failed { message: "a training run is already going: stop it first".into() });
                    return None;
                }
                match self.start(*request, device) {
                    Ok(session) => {
                        let run = &session.run;
                        send(TrainEvent::Started {
                            step: run.step_count(),
                            steps: run.total_steps(),
                            parameters: run.trainer.unet_config.parameter_count(),
                            images: run.data.count,
                            description: run.trainer.data_description.clone(),
                            out: run.files.dir.clone(),
                            history: if run.step_count() > 0 {
                                read_loss_log(&run.files.loss_log())
                            } else {
                                Vec::new()
                            },
                        });
                        self.session = Some(session);
                    }
                    Err(e) => send(TrainEvent::Failed { message: e.to_string() }),
                }
                None
            }
            TrainCommand::Pause => {
                let session = self.session.as_mut()?;
                session.paused = true;
                // A paused run is saved: closing the window now loses nothing.
                let publish = session.save(device, send);
                send(TrainEvent::Paused { step: session.run.step_count() });
                publish
            }
            TrainCommand::Continue => {
                let session = self.session.as_mut()?;
                if session.run.is_finished() {
                    send(TrainEvent::Failed {
                        message: "the run has done all its steps: raise Steps and resume it".into(),
                    });
                } else {
                    session.paused = false;
                    send(TrainEvent::Continued);
                }
                None
            }
            TrainCommand::Stop => {
                let mut session = self.session.take()?;
                let publish = session.save(device, send);
                send(TrainEvent::Stopped { step: session.run.step_count(), finished: session.run.is_finished() });
                publish
            }
        }
    }

    /// One optimizer step of the running session, then what falls due: samples, the end of the run.
    pub fn step(&mut self, device: &Device, send: &dyn Fn(TrainEvent)) -> Option<Publish> {
        let session = self.session.as_mut().filter(|s| !s.paused)?;
        let outcome = match session.run.step() {
            Ok(outcome) => outcome,
            Err(e) => {
                // Stop the run but keep its last checkpoint; the message says why.
                send(TrainEvent::Failed {
                    message: format!("training stopped at step {}: {e}", session.run.step_count()),
                });
                self.session = None;
                return None;
            }
        };
        let report = &outcome.report;
        send(TrainEvent::Step {
            step: report.step,
            loss: report.loss,
            smoothed: outcome.smoothed,
            learning_rate: report.learning_rate,
            images_per_second: report.images_per_second,
            step_seconds: session.run.trainer.config.batch_size as f64 / report.images_per_second.max(1e-9),
            levels: report.levels.clone(),
        });
        if outcome.checkpointed {
            send(TrainEvent::Checkpointed { step: report.step });
        }
        let mut publish = None;
        if session.run.preview_due() {
            publish = session.samples(device, send);
        }
        if session.run.is_finished() {
            let step = session.run.step_count();
            self.session = None;
            send(TrainEvent::Stopped { step, finished: true });
        }
        publish
    }

    /// Writes the running session's checkpoint (the window is closing); a failure has no one left to tell.
    pub fn save_on_exit(&mut self) {
        if let Some(session) = self.session.as_mut() {
            let _ = session.run.checkpoint();
        }
    }

    /// The data of `request`, from the cache or loaded (and cached).
    fn load(&mut self, request: &DataRequest) -> Result<&TrainingData, EngineError> {
        let data = self.take_data(request)?;
        Ok(&self.data.insert((request.clone(), data)).1)
    }

    /// The data of `request`, taken from the cache or loaded; the cache is left empty.
    fn take_data(&mut self, request: &DataRequest) -> Result<TrainingData, EngineError> {
        match self.data.take() {
            Some((cached, data)) if cached == *request => Ok(data),
            _ => load_training_data(&request.source, request.image_size, request.image_channels)
                .map_err(EngineError::DataSet),
        }
    }

    fn start(&mut self, request: TrainRequest, device: &Device) -> Result<TrainSession, EngineError> {
        if let (Some(bytes), Some(path)) = (request.built_in_autoencoder, &request.options.autoencoder)
            && !path.exists()
        {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .map_err(|source| EngineError::CreateFolder { path: dir.to_path_buf(), source })?;
            }
            crate::files::write_atomic(path, bytes)
                .map_err(|source| EngineError::WriteFile { path: path.clone(), source })?;
        }
        // The run takes the images; a later Inspect loads them again.
        let data = self.take_data(&request.data)?;
        let labelled = data.data.labels.is_some();
        let run = Training::open(request.options, data, request.resume, device)?;
        Ok(TrainSession { run, paused: false, model: request.model, labelled })
    }
}

impl TrainSession {
    /// Writes the checkpoint and hands the model to Generate's picker.
    fn save(&mut self, device: &Device, send: &dyn Fn(TrainEvent)) -> Option<Publish> {
        match self.run.checkpoint() {
            Ok(()) => send(TrainEvent::Checkpointed { step: self.run.step_count() }),
            Err(e) => send(TrainEvent::Failed { message: format!("could not save the checkpoint: {e}") }),
        }
        match self.run.model(device) {
            Ok(model) => Some((self.model.clone(), model, self.run.autoencoder.clone())),
            Err(e) => {
                send(TrainEvent::Failed { message: format!("could not prepare the trained model: {e}") });
                None
            }
        }
    }

    /// Samples the EMA weights as shipped (f16), sends every frame, writes the final grid beside the
    /// checkpoint (as `train` does) and hands the model to the picker.
    fn samples(&mut self, device: &Device, send: &dyn Fn(TrainEvent)) -> Option<Publish> {
        let step = self.run.step_count();
        let result = self.run.model(device).map_err(EngineError::from).and_then(|model| {
            let (request, frames) =
                preview_frames(&model, self.run.autoencoder.as_ref(), &self.model, self.labelled, device)?;
            if let Some(last) = frames.last() {
                let pictures = last.pictures();
                let columns = if self.labelled { pictures.len().div_ceil(2).max(1) } else { 4 };
                // A preview that cannot be written is not worth stopping the run for: the window has it.
                let _ = crate::images::save_png(
                    &self.run.files.preview(step),
                    &crate::images::grid(&pictures, columns, 2),
                    &[],
                );
            }
            Ok((model, request, frames))
        });
        match result {
            Ok((model, request, frames)) => {
                send(TrainEvent::Samples { step, request: Box::new(request), frames });
                Some((self.model.clone(), model, self.run.autoencoder.clone()))
            }
            Err(e) => {
                send(TrainEvent::Failed { message: format!("sampling at step {step}: {e}") });
                None
            }
        }
    }
}

/// A sample grid of `model` with the window's default sampler: for labelled data one run per class (the same
/// x_T for every class), their frames side by side; else unconditional samples. Latent frames come decoded.
fn preview_frames(
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
        unconditional: join(&|p| p.unconditional.clone()),
        conditional: join(&|p| p.conditional.clone()),
        noise: join(&|p| p.noise.clone()),
        eps_second: join(&|p| p.eps_second.clone()),
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

/// What the Train view shows of loaded data.
fn summary(request: &DataRequest, loaded: &TrainingData) -> DataSummary {
    let data: &Dataset = &loaded.data;
    let classes = match &data.labels {
        Some(labels) => data
            .class_names
            .iter()
            .enumerate()
            .map(|(c, name)| (name.clone(), labels.iter().filter(|l| **l == c).count()))
            .collect(),
        None => Vec::new(),
    };
    let preview_count = data.count.min(32);
    let preview = (0..preview_count).flat_map(|i| data.image(i).iter().copied()).collect();
    let skipped = loaded.skipped.iter().map(|(path, reason)| (path.display().to_string(), reason.clone())).collect();
    DataSummary {
        request: request.clone(),
        description: loaded.description.clone(),
        count: data.count,
        shape: [data.channels, data.height, data.width],
        classes,
        preview: Arc::new(preview),
        preview_count,
        skipped,
    }
}
