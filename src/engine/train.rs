//! Training on the engine's thread, for the window's Train view. The worker runs one optimizer step
//! whenever no command is waiting, so a Generate (with any loaded model, the one being trained included)
//! runs between two steps, and Pause / Stop take effect after the step in progress.
//!
//! The run itself is [`Training`], the same as `diffusion-lab train`: the same folder layout, loss log,
//! checkpoints and resume, and the same quality meter (`eval::quality`) every K steps, into the same
//! quality.csv. The sample grids are made in `train_preview.rs`; what the view compares runs by (a run
//! folder's recipe, logs and loss by noise level) is read in `train_runs.rs`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use burn::prelude::Device;

use super::error::EngineError;
use super::train_preview::preview_frames;
pub use super::train_preview::{PREVIEW_SEED, concat_batches};
pub use super::train_runs::{LEVEL_IMAGES, RunFolderRecord};
use crate::data::Dataset;
use crate::eval::quality::{QualityError, QualityLog, QualityMeter, QualityReading, read_quality_log};
use crate::model::{LoadedAutoencoder, LoadedUnet};
use crate::run::generate::{Frame, GenerateRequest};
use crate::train::recipe::Recipe;
use crate::train::training::{
    DataSource, Training, TrainingData, TrainingOptions, TrainingProgress, load_training_data, read_loss_log,
    training_progress,
};

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
    /// Read a run folder for the view's comparison: its logs, its recipe, and its checkpoint's loss by
    /// noise level measured on images of `levels_on` (the view's data), when given.
    ReadRunFolder {
        dir: PathBuf,
        levels_on: Option<DataRequest>,
    },
    /// List the run folders beside this one (and it), for the view's "add a run to compare".
    ListRunFolders(PathBuf),
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
        /// What the run in the folder trains (its checkpoint's header), which a resumed run keeps.
        recipe: Option<Recipe>,
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
        /// What the run trains (a resumed run's own).
        recipe: Recipe,
        /// For a resumed run: the quality log up to its checkpoint.
        quality: Vec<QualityReading>,
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
    /// A reading of the quality meter (also written to the run folder's quality.csv).
    Quality(QualityReading),
    /// A run folder read for the comparison ([`TrainCommand::ReadRunFolder`]).
    RunFolderRead(Box<RunFolderRecord>),
    /// The run folders beside `dir` ([`TrainCommand::ListRunFolders`]).
    RunFoldersListed {
        dir: PathBuf,
        runs: Vec<PathBuf>,
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
    /// The quality meter, when it is on.
    quality: Option<QualityWatch>,
}

/// The quality meter of a run: read every `every` steps (and at the last) into the run's quality.csv.
struct QualityWatch {
    meter: QualityMeter,
    log: QualityLog,
    every: u64,
}

/// What the worker keeps for training between commands.
pub struct TrainerState {
    pub session: Option<TrainSession>,
    /// The data last inspected, kept so that Start does not load it again.
    data: Option<(DataRequest, TrainingData)>,
    /// Set by the engine's handle when it sends Pause or Stop, cleared here when that command is served:
    /// the quality meter's reading (minutes for thousands of samples) stops early on it, so that Pause and
    /// Stop, served between steps, do not wait for the reading.
    stop: Arc<AtomicBool>,
}

/// A trained model for the worker to register under `name` (Generate's picker shows it at once).
pub type Publish = (crate::model::ModelId, LoadedUnet, Option<LoadedAutoencoder>);

impl TrainerState {
    /// No run yet; `stop` is the flag the engine's handle sets with Pause and Stop.
    pub fn new(stop: Arc<AtomicBool>) -> Self {
        Self { session: None, data: None, stop }
    }

    /// Whether a step is waiting to run.
    pub fn is_training(&self) -> bool {
        self.session.as_ref().is_some_and(|s| !s.paused)
    }

    pub fn handle(&mut self, command: TrainCommand, device: &Device, send: &dyn Fn(TrainEvent)) -> Option<Publish> {
        if matches!(command, TrainCommand::Pause | TrainCommand::Stop) {
            // What the flag was set for has arrived: the next reading runs to its end again.
            self.stop.store(false, Ordering::SeqCst);
        }
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
                let recipe = progress.as_ref().and_then(|_| super::train_runs::run_recipe(&dir));
                send(TrainEvent::TrainingFound { dir, progress, error, recipe });
                None
            }
            TrainCommand::Start(request) => {
                self.start_session(*request, device, send);
                None
            }
            TrainCommand::ReadRunFolder { dir, levels_on } => {
                let images = levels_on.map(|request| {
                    self.load(&request).map(|d| super::train_runs::level_images(&d.data)).map_err(|e| e.to_string())
                });
                send(TrainEvent::RunFolderRead(Box::new(super::train_runs::read_run_folder(&dir, images, device))));
                None
            }
            TrainCommand::ListRunFolders(dir) => {
                let runs = super::train_runs::run_folders_beside(&dir);
                send(TrainEvent::RunFoldersListed { dir, runs });
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

    /// Starts `request`'s run and says so (with the run's history when it resumes), or why it cannot.
    fn start_session(&mut self, request: TrainRequest, device: &Device, send: &dyn Fn(TrainEvent)) {
        if self.session.is_some() {
            send(TrainEvent::Failed { message: "a training run is already going: stop it first".into() });
            return;
        }
        match self.start(request, device) {
            Ok(session) => {
                let run = &session.run;
                let resumed = run.step_count() > 0;
                send(TrainEvent::Started {
                    step: run.step_count(),
                    steps: run.total_steps(),
                    parameters: run.trainer.unet_config.parameter_count(),
                    images: run.data.count,
                    description: run.trainer.data_description.clone(),
                    out: run.files.dir.clone(),
                    history: if resumed { read_loss_log(&run.files.loss_log()) } else { Vec::new() },
                    recipe: run.trainer.recipe(),
                    quality: if resumed { session.quality_history() } else { Vec::new() },
                });
                self.session = Some(session);
            }
            Err(e) => send(TrainEvent::Failed { message: e.to_string() }),
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
        if session.quality_due() {
            session.measure_quality(device, send);
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
        let every = request.options.quality_every;
        // Made before the run opens, as `train` does: a meter that cannot work is refused with nothing written.
        let meter = (every > 0)
            .then(|| {
                QualityMeter::new(&request.data.source, request.options.quality_samples, device, self.stop.clone())
            })
            .transpose()?;
        let run = Training::open(request.options, data, request.resume, device)?;
        let quality = match meter {
            Some(meter) => {
                Some(QualityWatch { meter, log: QualityLog::open(&run.files.dir, run.step_count())?, every })
            }
            None => None,
        };
        Ok(TrainSession { run, paused: false, model: request.model, labelled, quality })
    }
}

impl TrainSession {
    /// The run's quality log up to its checkpoint's step (a killed run's later rows are not its own).
    fn quality_history(&self) -> Vec<QualityReading> {
        let step = self.run.step_count();
        read_quality_log(&self.run.files.dir).into_iter().filter(|r| r.step <= step).collect()
    }

    /// Whether the step just done is one the quality meter reads: every K steps and at the last.
    fn quality_due(&self) -> bool {
        self.quality.as_ref().is_some_and(|q| self.run.step_count().is_multiple_of(q.every) || self.run.is_finished())
    }

    /// A reading of the quality meter, logged and sent; a meter that fails is turned off for the rest of
    /// the run (the run goes on) and says why.
    fn measure_quality(&mut self, device: &Device, send: &dyn Fn(TrainEvent)) {
        let Some(watch) = self.quality.as_mut() else { return };
        let reading = watch.meter.measure_run(&self.run, device).and_then(|r| watch.log.append(&r).map(|()| r));
        match reading {
            Ok(reading) => send(TrainEvent::Quality(reading)),
            // Pause or Stop is on its way: this step has no reading, and the meter stays on.
            Err(QualityError::Stopped) => {}
            Err(e) => {
                self.quality = None;
                send(TrainEvent::Failed {
                    message: format!(
                        "the quality meter at step {} (off for the rest of this run): {e}",
                        self.run.step_count()
                    ),
                });
            }
        }
    }

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
