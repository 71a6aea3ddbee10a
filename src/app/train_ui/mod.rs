//! The Train view: train a diffusion model on Fashion-MNIST or your own pictures and watch it learn.
//! The run is the engine's ([`crate::engine::train`]): the same trainer, folder, checkpoints and quality
//! meter as `diffusion-lab train`. [`TrainPanel`] keeps what the view shows (the loss curve, the quality
//! readings, the sample grids over training, the runs compared) and where the run stands. This file handles
//! the engine's events and sends the engine its commands; `panel.rs` draws the left panel, `centre.rs` what
//! the view shows (the progress, the data, the loss curves and the samples), `recipe.rs` the recipe's
//! controls and what each recipe weights, `quality.rs` the quality meter's controls and curves, `runs.rs`
//! the runs overlaid, and `settings.rs` the widgets of the choices saved between launches
//! ([`TrainSettings`], plain data in `app/train_settings.rs`).

use std::path::PathBuf;
use std::time::Instant;

use eframe::egui;

use super::colors::TextureCache;
use super::context::{PaintTimes, PanelContext};
use super::dialogs::{FileEvent, Pick};
use super::state::{ColorMap, Quantity, Trajectory};
use super::viewer::TrajectoryViewer;
use crate::engine::train::{DataRequest, DataSummary, TrainCommand, TrainEvent, TrainRequest};
use crate::engine::{Frame, GenerateRequest};
use crate::eval::quality::QualityReading;
use crate::train::recipe::Recipe;
use crate::train::training::TrainingProgress;

mod centre;
mod panel;
mod quality;
mod recipe;
mod runs;
mod settings;

pub use runs::{ComparedFolder, RunFolderComparison};

pub use super::train_settings::{BUILT_IN_AUTOENCODER_FILE, DataKind, SizePreset, TrainSettings, default_run_dir};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Idle,
    /// Start or Resume sent; waiting for the engine.
    Starting,
    Running,
    Paused,
}

/// One sample grid of the EMA weights during training, with every denoising frame.
pub struct Snapshot {
    pub step: u64,
    pub trajectory: Trajectory,
    /// Which grid this is for the viewer's texture (two grids' frames with the same index differ).
    serial: u64,
}

/// Which of the Train view's folders a folder dialog chooses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FolderTarget {
    Idx,
    Images,
    Run,
    /// A run folder to add to the comparison.
    Compare,
}

/// Full trajectories kept for the newest snapshots; older ones keep their final frame only.
const FULL_SNAPSHOTS: usize = 40;

/// Steps whose time estimates the run's speed (after the first, which also builds the graph).
const ESTIMATE_STEPS: usize = 5;

pub struct TrainPanel {
    pub phase: Phase,
    pub data: Option<DataSummary>,
    pub data_error: Option<String>,
    pub loading_data: bool,
    /// The run the chosen folder holds, and where it stands.
    pub found: Option<(PathBuf, Option<TrainingProgress>)>,
    /// What that run trains, read from its checkpoint (a resumed run keeps it).
    pub found_recipe: Option<Recipe>,
    /// What the run of this session trains.
    pub recipe: Option<Recipe>,
    /// The quality meter's readings of this run (a resumed run's from its quality.csv).
    pub quality: Vec<QualityReading>,
    /// Runs drawn over this one's curves.
    pub compare: RunFolderComparison,
    /// What the quality plot shows.
    pub quality_measure: quality::QualityMeasure,
    recipe_curves: recipe::RecipeCurves,
    /// (step, loss) of every step of this run, and the smoothed curve.
    pub losses: Vec<[f64; 2]>,
    pub smoothed: Vec<[f64; 2]>,
    /// This session's loss split by noise level (recent, and at its start).
    pub levels: crate::train::levels::LossByLevel,
    pub step: u64,
    pub steps: u64,
    pub parameters: usize,
    pub images: usize,
    pub description: String,
    pub last_checkpoint: Option<u64>,
    /// Images per second, smoothed.
    pub images_per_second: f64,
    /// Seconds per step of the first steps of this session (the first, which builds the graph, left out).
    pub first_step_seconds: Vec<f64>,
    pub snapshots: Vec<Snapshot>,
    /// Which snapshot is on screen; `follow_newest` moves it to each new one.
    pub selected: usize,
    pub follow_newest: bool,
    /// The selected snapshot's trajectory; its cursor is the denoising step on screen.
    pub viewer: TrajectoryViewer,
    /// What the sample grids show (the Train view's own choice, apart from Generate's).
    pub quantity: Quantity,
    /// The first pictures of the data, before a run has samples.
    data_texture: TextureCache<(u64, ColorMap)>,
    /// Bumped when data arrives and when a sample grid arrives: the same indices then mean other pictures.
    serial: u64,
    /// Time the UI thread spends on each frame of the window while training.
    pub paint_times: PaintTimes,
    pub started_at: Option<Instant>,
    /// The model the run hands to Generate's picker.
    pub model_id: Option<crate::model::ModelId>,
    pub error: Option<String>,
    data_requested: Option<DataRequest>,
    run_requested: Option<PathBuf>,
}

impl Default for TrainPanel {
    fn default() -> Self {
        Self::new()
    }
}

impl TrainPanel {
    pub fn new() -> Self {
        Self {
            phase: Phase::Idle,
            data: None,
            data_error: None,
            loading_data: false,
            found: None,
            found_recipe: None,
            recipe: None,
            quality: Vec::new(),
            compare: RunFolderComparison::default(),
            quality_measure: quality::QualityMeasure::default(),
            recipe_curves: recipe::RecipeCurves::default(),
            losses: Vec::new(),
            smoothed: Vec::new(),
            levels: crate::train::levels::LossByLevel::new(),
            step: 0,
            steps: 0,
            parameters: 0,
            images: 0,
            description: String::new(),
            last_checkpoint: None,
            images_per_second: 0.0,
            first_step_seconds: Vec::new(),
            snapshots: Vec::new(),
            selected: 0,
            follow_newest: true,
            viewer: TrajectoryViewer::new("training samples", "samples during training"),
            quantity: Quantity::Noisy,
            data_texture: TextureCache::new("training data"),
            serial: 0,
            paint_times: PaintTimes::default(),
            started_at: None,
            model_id: None,
            error: None,
            data_requested: None,
            run_requested: None,
        }
    }

    pub fn is_training(&self) -> bool {
        matches!(self.phase, Phase::Running | Phase::Starting)
    }

    /// Seconds per step measured on the first steps, once there are enough.
    pub fn seconds_per_step(&self) -> Option<f64> {
        (self.first_step_seconds.len() > ESTIMATE_STEPS)
            .then(|| self.first_step_seconds[1..].iter().sum::<f64>() / ESTIMATE_STEPS as f64)
    }

    /// The selected snapshot's trajectory.
    pub fn shown(&self) -> Option<&Trajectory> {
        self.snapshots.get(self.selected).map(|s| &s.trajectory)
    }

    /// The frame under the viewer's cursor.
    pub fn shown_frame(&self) -> Option<&Frame> {
        self.viewer.cursor_frame()
    }

    /// Puts snapshot `index` in the viewer; the cursor stays on the same denoising step where the grid
    /// has it (older grids keep only their last frame), or with `at_end`, goes to the final images.
    fn select(&mut self, index: usize, at_end: bool) {
        let Some(snapshot) = self.snapshots.get(index) else {
            self.viewer.clear();
            return;
        };
        self.selected = index;
        // On the final images, stay on them (also from an older grid that keeps only those).
        let at_end = at_end || self.viewer.cursor + 1 >= self.viewer.len();
        let cursor = if at_end { usize::MAX } else { self.viewer.cursor };
        self.viewer.show(snapshot.trajectory.clone(), snapshot.serial);
        self.viewer.seek(cursor);
    }

    fn bump_serial(&mut self) -> u64 {
        self.serial += 1;
        self.serial
    }

    fn on_step(&mut self, step: u64, loss: f64, smoothed: f64, images_per_second: f64, step_seconds: f64) {
        self.step = step;
        self.losses.push([step as f64, loss]);
        self.smoothed.push([step as f64, smoothed]);
        self.images_per_second = if self.images_per_second == 0.0 {
            images_per_second
        } else {
            0.9 * self.images_per_second + 0.1 * images_per_second
        };
        if self.first_step_seconds.len() <= ESTIMATE_STEPS {
            self.first_step_seconds.push(step_seconds);
        }
    }

    fn on_samples(&mut self, step: u64, request: GenerateRequest, frames: Vec<Frame>) {
        let mut trajectory = Trajectory::new(request);
        trajectory.total_steps = frames.len().saturating_sub(1);
        for frame in frames {
            trajectory.push(frame);
        }
        // Older grids keep their final image: the strip over training stays, the memory does not grow.
        if self.snapshots.len() >= FULL_SNAPSHOTS {
            let old = self.snapshots.len() - FULL_SNAPSHOTS;
            let frames = &mut self.snapshots[old].trajectory.frames;
            if frames.len() > 1 {
                let last = frames.pop();
                frames.clear();
                frames.extend(last);
            }
        }
        let shown_serial = self.snapshots.get(self.selected).map(|s| s.serial);
        self.snapshots.retain(|s| s.step != step);
        let serial = self.bump_serial();
        self.snapshots.push(Snapshot { step, trajectory, serial });
        if self.follow_newest {
            self.select(self.snapshots.len() - 1, true);
        } else {
            // The grid on screen may have moved (a grid of the same step replaced): keep showing it.
            match self.snapshots.iter().position(|s| Some(s.serial) == shown_serial) {
                Some(index) => self.selected = index,
                None => self.select(self.selected.min(self.snapshots.len() - 1), false),
            }
        }
    }

    /// Applies an event of the engine's training to the view.
    pub fn on_event(&mut self, ctx: &mut PanelContext, event: TrainEvent) {
        match event {
            TrainEvent::DataLoaded(..) | TrainEvent::DataFailed { .. } | TrainEvent::TrainingFound { .. } => {
                self.on_found(event)
            }
            TrainEvent::Started { step, steps, parameters, images, description, out, history, recipe, quality } => {
                self.phase = Phase::Running;
                (self.step, self.steps, self.parameters, self.images) = (step, steps, parameters, images);
                self.description = description;
                self.on_started(step, &history);
                (self.recipe, self.quality) = (Some(recipe), quality);
                self.found = Some((out, None));
                ctx.clear_status();
            }
            TrainEvent::Step { step, loss, smoothed, images_per_second, step_seconds, levels, .. } => {
                self.on_step(step, loss, smoothed, images_per_second, step_seconds);
                for [log_snr, loss] in levels {
                    self.levels.add(log_snr, loss);
                }
            }
            TrainEvent::Checkpointed { step } => self.last_checkpoint = Some(step),
            TrainEvent::Quality(reading) => {
                self.quality.retain(|r| r.step != reading.step);
                self.quality.push(reading);
            }
            TrainEvent::RunFolderRead(record) => self.compare.on_read(*record),
            TrainEvent::RunFoldersListed { dir, runs } => self.compare.on_listed(dir, runs),
            TrainEvent::Samples { step, request, frames } => self.on_samples(step, *request, frames),
            TrainEvent::Paused { step } => {
                self.phase = Phase::Paused;
                self.report_paint_times("paused");
                ctx.set_status(
                    format!("training paused at step {step}; checkpoint saved; the model is in Generate's picker"),
                    false,
                );
            }
            TrainEvent::Continued => {
                self.phase = Phase::Running;
                ctx.clear_status();
            }
            TrainEvent::Stopped { step, finished } => self.on_stopped(ctx, step, finished),
            TrainEvent::Failed { message } => {
                if self.phase == Phase::Starting {
                    self.phase = Phase::Idle;
                    // Read the run folder again: a refused resume shows what the folder holds now.
                    self.run_requested = None;
                }
                self.error = Some(message.clone());
                ctx.set_status(message, true);
            }
        }
    }

    /// What the engine found of the chosen data or run folder (answers to an older choice are dropped).
    fn on_found(&mut self, event: TrainEvent) {
        match event {
            TrainEvent::DataLoaded(summary) if self.data_requested.as_ref() == Some(&summary.request) => {
                self.loading_data = false;
                self.data_error = None;
                self.data = Some(summary);
                self.bump_serial();
            }
            TrainEvent::DataFailed { request, message } => {
                if self.data_requested.as_ref() == Some(&request) {
                    self.loading_data = false;
                    self.data = None;
                    self.data_error = Some(message);
                }
                if self.phase == Phase::Starting {
                    self.phase = Phase::Idle;
                }
            }
            TrainEvent::TrainingFound { dir, progress, error, recipe } if self.run_requested.as_ref() == Some(&dir) => {
                self.found = Some((dir, progress));
                self.found_recipe = recipe;
                if let Some(error) = error {
                    self.error = Some(format!("the run folder's checkpoint cannot be read: {error}"));
                }
            }
            _ => {}
        }
    }

    /// A session has started at `step` with the loss `history` of the run so far: the curves start from it,
    /// the speed and paint times afresh; a new run (step 0) forgets the sample grids.
    fn on_started(&mut self, step: u64, history: &[(u64, f64)]) {
        self.error = None;
        self.losses = history.iter().map(|(s, l)| [*s as f64, *l]).collect();
        self.smoothed = smooth(&self.losses);
        self.levels = crate::train::levels::LossByLevel::new();
        self.first_step_seconds.clear();
        self.images_per_second = 0.0;
        self.paint_times = PaintTimes::default();
        self.started_at = Some(Instant::now());
        if step == 0 {
            self.quality.clear();
            self.snapshots.clear();
            self.selected = 0;
            self.follow_newest = true;
            self.viewer.clear();
        }
    }

    /// Training stopped or finished at `step`: the checkpoint is saved and the run folder read again.
    fn on_stopped(&mut self, ctx: &mut PanelContext, step: u64, finished: bool) {
        self.phase = Phase::Idle;
        self.report_paint_times(if finished { "finished" } else { "stopped" });
        let what = if finished { "training finished" } else { "training stopped" };
        let name = self.model_id.clone().unwrap_or_default();
        ctx.set_status(format!("{what} at step {step}; checkpoint saved; `{name}` is in Generate's picker"), false);
        let dir = PathBuf::from(ctx.settings.train.out.trim());
        // A compared run that is this one is read again: its curves reach the run's end.
        if self.compare.folders.iter().any(|r| r.dir == dir) {
            self.compare_folder(ctx, dir.clone());
        }
        self.find_run(ctx, dir);
    }

    /// Prints the UI paint times of a training session (the note's measurement, as Generate's runs print
    /// theirs).
    fn report_paint_times(&self, what: &str) {
        let t = self.paint_times;
        eprintln!(
            "training {what} at step {}: {:.1} images/s (smoothed); UI thread {} frames, mean {:.2} ms, worst {:.2} ms",
            self.step,
            self.images_per_second,
            t.frames,
            t.mean_ms(),
            t.max_ms
        );
    }

    /// Asks the engine to load (and describe) the chosen data.
    pub fn load_data(&mut self, ctx: &mut PanelContext) {
        let request = ctx.settings.train.data_request();
        self.loading_data = true;
        self.data_error = None;
        self.data_requested = Some(request.clone());
        ctx.engine.train(TrainCommand::Inspect(request));
    }

    /// Asks the engine where the run in `dir` stands.
    pub fn find_run(&mut self, ctx: &mut PanelContext, dir: PathBuf) {
        self.run_requested = Some(dir.clone());
        ctx.engine.train(TrainCommand::FindRun(dir));
    }

    /// Starts a new run, or with `resume` continues the one in the run folder.
    pub fn start_training(&mut self, ctx: &mut PanelContext, resume: bool) {
        let settings = &ctx.settings.train;
        let mut options = settings.run_options();
        if resume && let Some((_, Some(progress))) = &self.found {
            options.steps = resume_total(settings.steps, progress);
            // A resumed run keeps its recipe: the one its checkpoint recorded when the folder was read (the
            // engine refuses it, saying why, if the folder has since come to hold another run).
            options.objective = self.found_recipe.map(|r| r.objective);
            options.weighting = self.found_recipe.map(|r| r.weighting);
        }
        let request = TrainRequest {
            data: settings.data_request(),
            options,
            resume,
            model: settings.model_id(),
            built_in_autoencoder: (settings.latent && settings.autoencoder.trim().is_empty())
                .then_some(crate::model::embedded::FASHION_AUTOENCODER),
        };
        self.model_id = Some(request.model.clone());
        self.phase = Phase::Starting;
        self.error = None;
        self.data_requested = Some(request.data.clone());
        ctx.engine.train(TrainCommand::Start(Box::new(request)));
    }

    /// Why Start cannot run now, if it cannot.
    pub fn start_blocker(&self, ctx: &PanelContext) -> Option<String> {
        let settings = &ctx.settings.train;
        if settings.out.trim().is_empty() {
            return Some("choose a run folder".into());
        }
        if settings.data == DataKind::ImageFolder && settings.image_dir.trim().is_empty() {
            return Some("choose a folder of images".into());
        }
        if let Err(e) = settings.parameter_count(self.num_classes()) {
            return Some(format!("this model cannot be built: {e}"));
        }
        if let Some((dir, Some(progress))) = &self.found
            && *dir == settings.out_dir()
        {
            return Some(format!(
                "the run folder holds a run (step {} of {}): Resume it, or choose another folder",
                progress.step, progress.steps
            ));
        }
        None
    }

    /// The classes of the loaded data (Fashion-MNIST's ten before it has loaded).
    fn num_classes(&self) -> usize {
        self.data.as_ref().map_or(10, |d| d.classes.len())
    }

    /// Opens a folder dialog for `target`; where none can open, the status line says to type the path.
    fn pick_folder(ctx: &mut PanelContext, egui_ctx: &egui::Context, target: FolderTarget) {
        let picked =
            ctx.dialogs.pick_in_background(egui_ctx, Pick::Folder, "a folder: type its path instead", move |path| {
                FileEvent::TrainFolderPicked(target, path)
            });
        if let Err(message) = picked {
            ctx.set_status(message, true);
        }
    }

    /// A folder chosen in a dialog: it goes in its setting, and the data or run there is read.
    pub fn on_folder_picked(&mut self, ctx: &mut PanelContext, target: FolderTarget, path: PathBuf) {
        let text = path.display().to_string();
        match target {
            FolderTarget::Idx => {
                ctx.settings.train.idx_dir = text;
                self.load_data(ctx);
            }
            FolderTarget::Images => {
                ctx.settings.train.image_dir = text;
                self.load_data(ctx);
            }
            FolderTarget::Run => {
                ctx.settings.train.out = text;
                self.find_run(ctx, path);
            }
            FolderTarget::Compare => self.compare_folder(ctx, path),
        }
    }
}

/// A loss curve smoothed as the trainer smooths it.
fn smooth(points: &[[f64; 2]]) -> Vec<[f64; 2]> {
    let mut smoothing = crate::train::training::LossSmoothing::default();
    points.iter().map(|[step, loss]| [*step, smoothing.add(*loss)]).collect()
}

/// The total a resumed run trains to: the Steps setting where it lies beyond the run's step, else the
/// run's own total.
pub fn resume_total(steps: u64, progress: &TrainingProgress) -> u64 {
    if steps > progress.step { steps } else { progress.steps }
}

/// "42 s", "3 min 20 s", "2 h 5 min".
pub fn duration_text(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, (s % 3600) / 60),
    }
}
