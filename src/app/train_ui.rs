//! The Train view: train a diffusion model on Fashion-MNIST or your own pictures and watch it learn.
//! The run is the engine's ([`crate::engine::train`]): the same trainer, folder and checkpoints as
//! `diffusion-lab train`. This file keeps what the view shows (the loss curve, the sample grids over
//! training) and draws it.

use std::path::PathBuf;
use std::time::Instant;

use eframe::egui::{self, Color32, TextureHandle};
use egui_plot::{Legend, Line, Plot, PlotPoints};
use serde::{Deserialize, Serialize};

use super::state::{Trajectory, View};
use super::{FileEvent, FrameTimes, LabApp};
use crate::engine::train::{DataRequest, DataSummary, TrainCommand, TrainEvent, TrainRequest};
use crate::engine::{Frame, GenerateRequest};
use crate::train::run::{DataSource, RunOptions, RunProgress, default_channels, unet_config_for};

/// Where training images come from, as the view offers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DataKind {
    /// The Debian package's Fashion-MNIST.
    FashionMnist,
    /// A folder holding Fashion-MNIST-style IDX files.
    IdxFolder,
    /// A folder of PNG / JPEG pictures; sub-folders are classes.
    ImageFolder,
}

/// Model sizes offered, by feature channels per level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SizePreset {
    Tiny,
    Small,
    Medium,
    Large,
}

impl SizePreset {
    pub const ALL: [SizePreset; 4] = [SizePreset::Tiny, SizePreset::Small, SizePreset::Medium, SizePreset::Large];

    pub fn name(self) -> &'static str {
        match self {
            SizePreset::Tiny => "Tiny",
            SizePreset::Small => "Small",
            SizePreset::Medium => "Medium",
            SizePreset::Large => "Large",
        }
    }

    /// Medium is what `train` builds by default (the built-in models' size).
    pub fn channels(self, latent: bool) -> Vec<usize> {
        match (self, latent) {
            (SizePreset::Tiny, false) => vec![16, 32],
            (SizePreset::Small, false) => vec![32, 64],
            (SizePreset::Tiny, true) => vec![32, 64],
            (SizePreset::Small, true) => vec![48, 96],
            (SizePreset::Medium, latent) => default_channels(latent),
            (SizePreset::Large, false) => vec![64, 128, 256],
            (SizePreset::Large, true) => vec![128, 256],
        }
    }
}

/// The Train view's choices; saved between launches, so a run can be resumed after a restart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainSettings {
    pub data: DataKind,
    pub idx_dir: String,
    pub image_dir: String,
    /// Size and channels a folder's pictures are converted to.
    pub image_size: usize,
    pub image_channels: usize,
    pub latent: bool,
    /// The autoencoder of a latent model: empty for the built-in one.
    pub autoencoder: String,
    pub preset: SizePreset,
    pub steps: u64,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// The run folder.
    pub out: String,
    pub checkpoint_every: u64,
    pub preview_every: u64,
    pub seed: u64,
}

impl Default for TrainSettings {
    fn default() -> Self {
        Self {
            data: DataKind::FashionMnist,
            idx_dir: crate::data::fashion_mnist_dir().display().to_string(),
            image_dir: String::new(),
            image_size: 28,
            image_channels: 1,
            latent: false,
            autoencoder: String::new(),
            preset: SizePreset::Small,
            steps: 2000,
            batch_size: 64,
            learning_rate: 1e-3,
            out: default_run_dir().display().to_string(),
            checkpoint_every: 100,
            preview_every: 100,
            seed: 1,
        }
    }
}

/// ~/diffusion-lab/runs/my-model (./diffusion-lab-runs/my-model without a home directory).
pub fn default_run_dir() -> PathBuf {
    match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => PathBuf::from(home).join("diffusion-lab").join("runs").join("my-model"),
        _ => PathBuf::from("diffusion-lab-runs").join("my-model"),
    }
}

impl TrainSettings {
    pub fn data_request(&self) -> DataRequest {
        let source = match self.data {
            DataKind::FashionMnist => DataSource::FashionMnist { dir: crate::data::fashion_mnist_dir() },
            DataKind::IdxFolder => DataSource::FashionMnist { dir: PathBuf::from(self.idx_dir.trim()) },
            DataKind::ImageFolder => DataSource::Folder { dir: PathBuf::from(self.image_dir.trim()) },
        };
        // A latent model sees its autoencoder's images: the built-in one's are Fashion-MNIST's 1x28x28.
        let (image_size, image_channels) = match (self.data, self.latent) {
            (DataKind::ImageFolder, false) => (self.image_size, self.image_channels),
            _ => (28, 1),
        };
        DataRequest { source, image_size, image_channels }
    }

    pub fn channels(&self) -> Vec<usize> {
        self.preset.channels(self.latent)
    }

    pub fn out_dir(&self) -> PathBuf {
        PathBuf::from(self.out.trim())
    }

    /// The name of the trained model in Generate's picker.
    pub fn model_name(&self) -> String {
        let folder = self.out_dir().file_name().map_or_else(|| self.out.clone(), |n| n.to_string_lossy().into_owned());
        format!("trained: {folder}")
    }

    pub fn autoencoder_path(&self) -> PathBuf {
        if self.autoencoder.trim().is_empty() {
            self.out_dir().join(BUILT_IN_AUTOENCODER_FILE)
        } else {
            PathBuf::from(self.autoencoder.trim())
        }
    }

    pub fn run_options(&self) -> RunOptions {
        RunOptions {
            out: self.out_dir(),
            steps: self.steps,
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            channels: Some(self.channels()),
            autoencoder: self.latent.then(|| self.autoencoder_path()),
            seed: self.seed,
            checkpoint_every: self.checkpoint_every.max(1),
            preview_every: self.preview_every.max(1),
            export: None,
        }
    }

    /// Parameters of the UNet a new run would build on `summary`'s data (the latent model's 4x7x7 latents).
    pub fn parameter_count(&self, num_classes: usize) -> Result<usize, String> {
        let (channels, size) =
            if self.latent { (4, 7) } else { (self.data_request().image_channels, self.data_request().image_size) };
        let config = unet_config_for(self.channels(), channels, size, num_classes.max(1));
        config.validate()?;
        Ok(config.parameter_count())
    }
}

/// The built-in autoencoder is copied into the run folder under this name, so that the run (and
/// `sample --model`) finds it like any autoencoder file.
pub const BUILT_IN_AUTOENCODER_FILE: &str = "autoencoder.dlab";

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
}

/// Full trajectories kept for the newest snapshots; older ones keep their final frame only.
const FULL_SNAPSHOTS: usize = 40;

/// Points of a loss curve drawn at most (a long run's log is thinned for the plot, not in memory).
const MAX_PLOTTED: usize = 2000;

pub struct TrainState {
    pub phase: Phase,
    pub data: Option<DataSummary>,
    pub data_error: Option<String>,
    pub loading_data: bool,
    /// The run the chosen folder holds, and where it stands.
    pub found: Option<(PathBuf, Option<RunProgress>)>,
    /// (step, loss) of every step of this run, and the smoothed curve.
    pub losses: Vec<[f64; 2]>,
    pub smoothed: Vec<[f64; 2]>,
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
    /// Which snapshot and which of its frames are on screen; `follow` keeps the newest.
    pub snapshot: usize,
    pub frame: usize,
    pub follow: bool,
    pub view: View,
    texture: Option<TextureHandle>,
    /// What the texture shows: (serial of the data or sample grids, snapshot, frame, view, colours).
    texture_key: Option<(usize, usize, usize, View, super::state::ColorMap)>,
    /// Bumped when data arrives and when a sample grid arrives: the same indices then mean other pictures.
    serial: usize,
    /// UI frame times while training.
    pub frame_times: FrameTimes,
    pub started_at: Option<Instant>,
    /// The model the run hands to Generate's picker.
    pub model_name: Option<String>,
    pub error: Option<String>,
    data_requested: Option<DataRequest>,
    run_requested: Option<PathBuf>,
}

impl Default for TrainState {
    fn default() -> Self {
        Self {
            phase: Phase::Idle,
            data: None,
            data_error: None,
            loading_data: false,
            found: None,
            losses: Vec::new(),
            smoothed: Vec::new(),
            step: 0,
            steps: 0,
            parameters: 0,
            images: 0,
            description: String::new(),
            last_checkpoint: None,
            images_per_second: 0.0,
            first_step_seconds: Vec::new(),
            snapshots: Vec::new(),
            snapshot: 0,
            frame: 0,
            follow: true,
            view: View::Noisy,
            texture: None,
            texture_key: None,
            serial: 0,
            frame_times: FrameTimes::default(),
            started_at: None,
            model_name: None,
            error: None,
            data_requested: None,
            run_requested: None,
        }
    }
}

/// Steps whose time estimates the run's speed (after the first, which also builds the graph).
const ESTIMATE_STEPS: usize = 5;

impl TrainState {
    pub fn is_training(&self) -> bool {
        matches!(self.phase, Phase::Running | Phase::Starting)
    }

    /// Seconds per step measured on the first steps, once there are enough.
    pub fn seconds_per_step(&self) -> Option<f64> {
        (self.first_step_seconds.len() > ESTIMATE_STEPS)
            .then(|| self.first_step_seconds[1..].iter().sum::<f64>() / ESTIMATE_STEPS as f64)
    }

    /// The trajectory on screen.
    pub fn shown(&self) -> Option<&Trajectory> {
        self.snapshots.get(self.snapshot).map(|s| &s.trajectory)
    }

    pub fn shown_frame(&self) -> Option<&Frame> {
        let trajectory = self.shown()?;
        trajectory.frames.get(self.frame.min(trajectory.frames.len().saturating_sub(1)))
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
        self.snapshots.retain(|s| s.step != step);
        self.snapshots.push(Snapshot { step, trajectory });
        self.serial += 1;
        if self.follow {
            self.snapshot = self.snapshots.len() - 1;
            self.frame = usize::MAX;
        }
    }

    /// The texture of the frame on screen, made again only when the frame, view or colours change.
    fn texture(&mut self, ctx: &egui::Context, map: super::state::ColorMap) -> Option<TextureHandle> {
        let trajectory = self.shown()?;
        let frame_index = self.frame.min(trajectory.frames.len().saturating_sub(1));
        let frame = trajectory.frames.get(frame_index)?;
        let view = if frame.decoded.is_some() && self.view == View::PredictedNoise { View::Noisy } else { self.view };
        let key = (self.serial, self.snapshot, frame_index, view, map);
        if self.texture_key != Some(key) || self.texture.is_none() {
            let image = super::view::color_image(frame, view, map);
            super::view::upload(&mut self.texture, ctx, "training samples", image);
            self.texture_key = Some(key);
        }
        self.texture.clone()
    }
}

/// Applies an event of the engine's training to the view.
pub fn on_train_event(app: &mut LabApp, event: TrainEvent) {
    let train = &mut app.train;
    match event {
        TrainEvent::DataLoaded(summary) => {
            if train.data_requested.as_ref() == Some(&summary.request) {
                train.loading_data = false;
                train.data_error = None;
                train.data = Some(summary);
                train.serial += 1;
            }
        }
        TrainEvent::DataFailed { request, message } => {
            if train.data_requested.as_ref() == Some(&request) {
                train.loading_data = false;
                train.data = None;
                train.data_error = Some(message);
            }
            if train.phase == Phase::Starting {
                train.phase = Phase::Idle;
            }
        }
        TrainEvent::RunFound { dir, progress, error } => {
            if train.run_requested.as_ref() == Some(&dir) {
                train.found = Some((dir, progress));
                if let Some(error) = error {
                    train.error = Some(format!("the run folder's checkpoint cannot be read: {error}"));
                }
            }
        }
        TrainEvent::Started { step, steps, parameters, images, description, out, history } => {
            train.phase = Phase::Running;
            train.step = step;
            train.steps = steps;
            train.parameters = parameters;
            train.images = images;
            train.description = description;
            train.error = None;
            train.losses = history.iter().map(|(s, l)| [*s as f64, *l]).collect();
            train.smoothed = smooth(&train.losses);
            train.first_step_seconds.clear();
            train.images_per_second = 0.0;
            train.frame_times = FrameTimes::default();
            train.started_at = Some(Instant::now());
            if step == 0 {
                train.snapshots.clear();
            }
            train.found = Some((out, None));
            app.status = None;
        }
        TrainEvent::Step { step, loss, smoothed, images_per_second, step_seconds, .. } => {
            train.on_step(step, loss, smoothed, images_per_second, step_seconds);
        }
        TrainEvent::Checkpointed { step } => train.last_checkpoint = Some(step),
        TrainEvent::Samples { step, request, frames } => train.on_samples(step, request, frames),
        TrainEvent::Paused { step } => {
            train.phase = Phase::Paused;
            report_frame_times(train, "paused");
            app.set_status(
                format!("training paused at step {step}; checkpoint saved; the model is in Generate's picker"),
                false,
            );
        }
        TrainEvent::Continued => {
            train.phase = Phase::Running;
            app.status = None;
        }
        TrainEvent::Stopped { step, finished } => {
            train.phase = Phase::Idle;
            report_frame_times(train, if finished { "finished" } else { "stopped" });
            let what = if finished { "training finished" } else { "training stopped" };
            let name = train.model_name.clone().unwrap_or_default();
            app.set_status(format!("{what} at step {step}; checkpoint saved; `{name}` is in Generate's picker"), false);
            let dir = PathBuf::from(app.settings.train.out.trim());
            find_run(app, dir);
        }
        TrainEvent::Failed { message } => {
            if train.phase == Phase::Starting {
                train.phase = Phase::Idle;
            }
            train.error = Some(message.clone());
            app.set_status(message, true);
        }
    }
}

/// Prints the UI frame times of a training session (the note's measurement, as Generate's runs print theirs).
fn report_frame_times(train: &TrainState, what: &str) {
    let t = train.frame_times;
    eprintln!(
        "training {what} at step {}: {:.1} images/s (smoothed); UI thread {} frames, mean {:.2} ms, worst {:.2} ms",
        train.step,
        train.images_per_second,
        t.frames,
        t.mean_ms(),
        t.max_ms
    );
}

/// A loss curve smoothed as the trainer smooths it.
fn smooth(points: &[[f64; 2]]) -> Vec<[f64; 2]> {
    let mut smoothing = crate::train::run::LossSmoothing::default();
    points.iter().map(|[step, loss]| [*step, smoothing.add(*loss)]).collect()
}

/// Asks the engine to load (and describe) the chosen data.
pub fn load_data(app: &mut LabApp) {
    let request = app.settings.train.data_request();
    app.train.loading_data = true;
    app.train.data_error = None;
    app.train.data_requested = Some(request.clone());
    app.engine.train(TrainCommand::Inspect(request));
}

/// Asks the engine where the run in `dir` stands.
pub fn find_run(app: &mut LabApp, dir: PathBuf) {
    app.train.run_requested = Some(dir.clone());
    app.engine.train(TrainCommand::FindRun(dir));
}

/// Starts a new run, or with `resume` continues the one in the run folder.
pub fn start_training(app: &mut LabApp, resume: bool) {
    let settings = &app.settings.train;
    let mut options = settings.run_options();
    if resume && let Some((_, Some(progress))) = &app.train.found {
        options.steps = resume_total(settings.steps, progress);
    }
    let request = TrainRequest {
        data: settings.data_request(),
        options,
        resume,
        model_name: settings.model_name(),
        built_in_autoencoder: (settings.latent && settings.autoencoder.trim().is_empty())
            .then_some(crate::model::embedded::FASHION_AUTOENCODER),
    };
    app.train.model_name = Some(request.model_name.clone());
    app.train.phase = Phase::Starting;
    app.train.error = None;
    app.train.data_requested = Some(request.data.clone());
    app.engine.train(TrainCommand::Start(request));
}

/// The total a resumed run trains to: the Steps setting where it lies beyond the run's step, else the
/// run's own total.
pub fn resume_total(steps: u64, progress: &RunProgress) -> u64 {
    if steps > progress.step { steps } else { progress.steps }
}

/// Why Start cannot run now, if it cannot.
pub fn start_blocker(app: &LabApp) -> Option<String> {
    let settings = &app.settings.train;
    if settings.out.trim().is_empty() {
        return Some("choose a run folder".into());
    }
    if settings.data == DataKind::ImageFolder && settings.image_dir.trim().is_empty() {
        return Some("choose a folder of images".into());
    }
    let classes = app.train.data.as_ref().map_or(10, |d| d.classes.len());
    if let Err(e) = settings.parameter_count(classes) {
        return Some(format!("this model cannot be built: {e}"));
    }
    if let Some((dir, Some(progress))) = &app.train.found
        && *dir == settings.out_dir()
    {
        return Some(format!(
            "the run folder holds a run (step {} of {}): Resume it, or choose another folder",
            progress.step, progress.steps
        ));
    }
    None
}

fn pick_folder(app: &LabApp, ctx: &egui::Context, target: FolderTarget) {
    let events = app.file_events();
    let ctx = ctx.clone();
    std::thread::spawn(move || {
        let Some(path) = rfd::FileDialog::new().pick_folder() else { return };
        let _ = events.send(FileEvent::TrainFolderPicked(target, path));
        ctx.request_repaint();
    });
}

/// Which of the Train view's folders a folder dialog chooses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FolderTarget {
    Idx,
    Images,
    Run,
}

pub fn on_folder_picked(app: &mut LabApp, target: FolderTarget, path: PathBuf) {
    let text = path.display().to_string();
    match target {
        FolderTarget::Idx => {
            app.settings.train.idx_dir = text;
            load_data(app);
        }
        FolderTarget::Images => {
            app.settings.train.image_dir = text;
            load_data(app);
        }
        FolderTarget::Run => {
            app.settings.train.out = text;
            find_run(app, path);
        }
    }
}

/// The left panel: data, model, run and the Start / Pause / Resume / Stop buttons.
pub fn train_panel_ui(app: &mut LabApp, ui: &mut egui::Ui) {
    let has_folder = !app.settings.train.data_request().source.dir().as_os_str().is_empty();
    if app.train.data.is_none() && app.train.data_requested.is_none() && app.train.data_error.is_none() && has_folder {
        load_data(app);
    }
    let out = app.settings.train.out_dir();
    if app.train.run_requested.as_ref() != Some(&out) && !app.train.is_training() && app.train.phase != Phase::Paused {
        find_run(app, out);
    }
    let busy = app.train.phase != Phase::Idle;
    ui.heading("Data");
    ui.add_enabled_ui(!busy, |ui| data_ui(app, ui));
    ui.separator();
    ui.heading("Model");
    ui.add_enabled_ui(!busy, |ui| model_ui(app, ui));
    ui.separator();
    ui.heading("Run");
    ui.add_enabled_ui(!busy, |ui| run_settings_ui(app, ui));
    ui.separator();
    controls_ui(app, ui);
    progress_ui(app, ui);
}

fn data_ui(app: &mut LabApp, ui: &mut egui::Ui) {
    let before = app.settings.train.data_request();
    let train = &mut app.settings.train;
    ui.radio_value(&mut train.data, DataKind::FashionMnist, "Fashion-MNIST")
        .on_hover_text(crate::data::fashion_mnist_dir().display().to_string());
    ui.radio_value(&mut train.data, DataKind::IdxFolder, "IDX folder");
    ui.radio_value(&mut train.data, DataKind::ImageFolder, "Your images");
    let mut choose = None;
    match train.data {
        DataKind::FashionMnist => {}
        DataKind::IdxFolder => {
            ui.horizontal(|ui| {
                let label = ui.label("IDX folder path");
                ui.add(egui::TextEdit::singleline(&mut train.idx_dir).desired_width(150.0)).labelled_by(label.id);
                if ui.button("Choose…").clicked() {
                    choose = Some(FolderTarget::Idx);
                }
            });
        }
        DataKind::ImageFolder => {
            ui.horizontal(|ui| {
                let label = ui.label("Image folder");
                ui.add(
                    egui::TextEdit::singleline(&mut train.image_dir)
                        .desired_width(150.0)
                        .hint_text("a folder of PNG/JPEG"),
                )
                .labelled_by(label.id);
                if ui.button("Choose…").clicked() {
                    choose = Some(FolderTarget::Images);
                }
            });
            ui.add_enabled_ui(!train.latent, |ui| {
                ui.horizontal(|ui| {
                    ui.add(egui::DragValue::new(&mut train.image_size).range(8..=128).prefix("size ").suffix(" px"));
                    ui.radio_value(&mut train.image_channels, 1, "gray");
                    ui.radio_value(&mut train.image_channels, 3, "RGB");
                });
            });
            ui.small("Sub-folders become classes; pictures are resized to the size above.");
        }
    }
    if let Some(target) = choose {
        if app.file_dialogs {
            pick_folder(app, ui.ctx(), target);
        } else {
            app.set_status(format!("{}: type the folder's path instead", super::dialogs::NO_DIALOG), true);
        }
    }
    let changed = app.settings.train.data_request() != before;
    if ui.button("Load data").clicked() || (changed && app.settings.train.data == DataKind::FashionMnist) {
        load_data(app);
    }
    let train = &app.train;
    if train.loading_data {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.label("loading…");
        });
    } else if let Some(error) = &train.data_error {
        ui.colored_label(ui.visuals().error_fg_color, error);
    } else if let Some(data) = &train.data {
        let [c, h, w] = data.shape;
        ui.label(format!("{} images, {c}x{h}x{w}", data.count));
        if data.classes.is_empty() {
            ui.label("no classes (no sub-folders): the model learns unconditional samples");
        } else {
            let list: Vec<String> = data.classes.iter().map(|(name, n)| format!("{name} ({n})")).collect();
            ui.label(format!("{} classes: {}", data.classes.len(), list.join(", ")));
        }
        if !data.skipped.is_empty() {
            egui::CollapsingHeader::new(format!("{} files skipped", data.skipped.len())).show(ui, |ui| {
                for (file, reason) in data.skipped.iter().take(50) {
                    ui.label(format!("{file}: {reason}")).on_hover_text(reason);
                }
                if data.skipped.len() > 50 {
                    ui.label(format!("… and {} more", data.skipped.len() - 50));
                }
            });
        }
    }
}

fn model_ui(app: &mut LabApp, ui: &mut egui::Ui) {
    let classes = app.train.data.as_ref().map_or(10, |d| d.classes.len());
    let train = &mut app.settings.train;
    ui.horizontal(|ui| {
        ui.radio_value(&mut train.latent, false, "pixel");
        ui.radio_value(&mut train.latent, true, "latent");
    });
    if train.latent {
        ui.horizontal(|ui| {
            let label = ui.label("Autoencoder");
            ui.add(
                egui::TextEdit::singleline(&mut train.autoencoder)
                    .desired_width(150.0)
                    .hint_text("built-in (Fashion-MNIST)"),
            )
            .labelled_by(label.id);
        });
        ui.small("Latent diffusion learns the autoencoder's latents of 28x28 gray pictures.");
    }
    let parameters = |preset: SizePreset, settings: &TrainSettings| {
        let mut s = settings.clone();
        s.preset = preset;
        s.parameter_count(classes)
            .map_or_else(|e| format!("cannot build: {e}"), |p| format!("{:.2} M parameters", p as f64 / 1e6))
    };
    let selected = format!("{} ({})", train.preset.name(), parameters(train.preset, train));
    let snapshot = train.clone();
    egui::ComboBox::from_label("Size").selected_text(selected).show_ui(ui, |ui| {
        for preset in SizePreset::ALL {
            let text =
                format!("{} {:?}: {}", preset.name(), preset.channels(snapshot.latent), parameters(preset, &snapshot));
            ui.selectable_value(&mut train.preset, preset, text);
        }
    });
}

fn run_settings_ui(app: &mut LabApp, ui: &mut egui::Ui) {
    let train = &mut app.settings.train;
    egui::Grid::new("train_settings").num_columns(2).show(ui, |ui| {
        ui.label("Steps");
        ui.add(egui::DragValue::new(&mut train.steps).range(1..=1_000_000).speed(10.0));
        ui.end_row();
        ui.label("Batch size");
        ui.add(egui::DragValue::new(&mut train.batch_size).range(1..=1024));
        ui.end_row();
        ui.label("Learning rate");
        ui.add(egui::DragValue::new(&mut train.learning_rate).range(1e-6..=0.1).speed(1e-5).max_decimals(6));
        ui.end_row();
        ui.label("Checkpoint every");
        ui.add(egui::DragValue::new(&mut train.checkpoint_every).range(1..=100_000).suffix(" steps"));
        ui.end_row();
        ui.label("Samples every");
        ui.add(egui::DragValue::new(&mut train.preview_every).range(1..=100_000).suffix(" steps"));
        ui.end_row();
    });
    let mut choose = false;
    ui.horizontal(|ui| {
        let label = ui.label("Run folder");
        ui.add(egui::TextEdit::singleline(&mut train.out).desired_width(150.0)).labelled_by(label.id);
        choose = ui.button("Choose…").clicked();
    });
    if choose {
        if app.file_dialogs {
            pick_folder(app, ui.ctx(), FolderTarget::Run);
        } else {
            app.set_status(format!("{}: type the folder's path instead", super::dialogs::NO_DIALOG), true);
        }
    }
}

fn controls_ui(app: &mut LabApp, ui: &mut egui::Ui) {
    let phase = app.train.phase;
    let found = app.train.found.clone().filter(|(dir, _)| *dir == app.settings.train.out_dir()).and_then(|(_, p)| p);
    ui.horizontal_wrapped(|ui| match phase {
        Phase::Idle => {
            let blocker = start_blocker(app);
            let start = ui.add_enabled(blocker.is_none(), egui::Button::new("Start training"));
            let start = match &blocker {
                Some(reason) => start.on_disabled_hover_text(reason),
                None => start,
            };
            if start.clicked() {
                start_training(app, false);
            }
            if let Some(progress) = &found {
                let total = resume_total(app.settings.train.steps, progress);
                let text = format!("Resume training (step {} of {total})", progress.step);
                if ui.button(text).on_hover_text("continue from the folder's last checkpoint").clicked() {
                    start_training(app, true);
                }
            }
        }
        Phase::Starting => {
            ui.spinner();
            ui.label("starting…");
        }
        Phase::Running => {
            if ui.button("Pause training").clicked() {
                app.engine.train(TrainCommand::Pause);
            }
            if ui.button("Stop training").clicked() {
                app.engine.train(TrainCommand::Stop);
            }
        }
        Phase::Paused => {
            if ui.button("Resume training").clicked() {
                app.engine.train(TrainCommand::Continue);
            }
            if ui.button("Stop training").clicked() {
                app.engine.train(TrainCommand::Stop);
            }
        }
    });
    if phase == Phase::Idle
        && let Some(reason) = start_blocker(app)
    {
        ui.small(reason);
    }
    if let Some(error) = &app.train.error {
        ui.colored_label(ui.visuals().error_fg_color, error);
    }
}

fn progress_ui(app: &mut LabApp, ui: &mut egui::Ui) {
    let train = &app.train;
    if train.phase == Phase::Idle && train.losses.is_empty() {
        return;
    }
    let total = train.steps.max(1);
    ui.add(
        egui::ProgressBar::new(train.step as f32 / total as f32)
            .text(format!("step {} of {}", train.step, train.steps)),
    );
    ui.label(format!("{:.2} M parameters, {} training images", train.parameters as f64 / 1e6, train.images));
    if train.images_per_second > 0.0 {
        ui.label(format!("{:.1} images/s", train.images_per_second));
    }
    match train.seconds_per_step() {
        Some(seconds) => {
            let remaining = train.steps.saturating_sub(train.step) as f64 * seconds;
            ui.label(format!("{seconds:.3} s/step (measured on the first steps); ETA {}", duration_text(remaining)));
        }
        None if train.phase == Phase::Running => {
            ui.label("measuring the speed on the first steps…");
        }
        None => {}
    }
    if let Some(step) = train.last_checkpoint {
        ui.label(format!("last checkpoint: step {step}"));
    }
    if train.frame_times.frames > 0 {
        ui.small(format!(
            "UI frames while training: mean {:.1} ms, worst {:.1} ms",
            train.frame_times.mean_ms(),
            train.frame_times.max_ms
        ));
    }
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

/// The centre: the loss curve, the data's first pictures before a run, and the samples over training.
pub fn train_view_ui(app: &mut LabApp, ui: &mut egui::Ui) {
    let train = &app.train;
    let available = ui.available_height();
    ui.label("Loss L = ||ε - ε_θ(x_t, t)||² per step");
    let raw = thinned(&train.losses);
    let smoothed = thinned(&train.smoothed);
    Plot::new("training loss")
        .height((available * 0.35).clamp(120.0, 320.0))
        .legend(Legend::default())
        .x_axis_label("step")
        .y_axis_label("loss")
        .include_y(0.0)
        .show(ui, |plot| {
            plot.line(Line::new("loss", PlotPoints::from(raw)).color(Color32::from_gray(140)));
            plot.line(Line::new("smoothed", PlotPoints::from(smoothed)).color(Color32::LIGHT_BLUE).width(2.0));
        });
    ui.separator();
    if app.train.snapshots.is_empty() {
        data_preview_ui(app, ui);
    } else {
        samples_ui(app, ui);
    }
}

/// At most [`MAX_PLOTTED`] points of a curve, evenly spaced, the last one kept.
fn thinned(points: &[[f64; 2]]) -> Vec<[f64; 2]> {
    let stride = points.len().div_ceil(MAX_PLOTTED).max(1);
    let mut kept: Vec<[f64; 2]> = points.iter().step_by(stride).copied().collect();
    if let (Some(last), Some(kept_last)) = (points.last(), kept.last())
        && last != kept_last
    {
        kept.push(*last);
    }
    kept
}

fn data_preview_ui(app: &mut LabApp, ui: &mut egui::Ui) {
    let Some(data) = &app.train.data else {
        ui.label("Choose the data, then Start training: samples of the model appear here as it learns.");
        return;
    };
    ui.label(format!("The first {} training images ({})", data.preview_count, data.description));
    let [c, h, w] = data.shape;
    let key = (app.train.serial, usize::MAX, data.preview_count, View::Noisy, app.settings.color_map);
    if app.train.texture_key != Some(key) {
        let image = super::view::color_image_of(&data.preview, [data.preview_count, c, h, w], app.settings.color_map);
        super::view::upload(&mut app.train.texture, ui.ctx(), "training data", image);
        app.train.texture_key = Some(key);
    }
    if let Some(texture) = &app.train.texture {
        let size = texture.size_vec2() * app.settings.zoom.min(4.0);
        egui::ScrollArea::both().show(ui, |ui| {
            ui.add(egui::Image::new((texture.id(), size)).alt_text("training images"));
        });
    }
}

fn samples_ui(app: &mut LabApp, ui: &mut egui::Ui) {
    let latent = app.train.shown_frame().is_some_and(|f| f.decoded.is_some());
    ui.horizontal_wrapped(|ui| {
        ui.label("Show:");
        for v in View::ALL.into_iter().filter(|v| v.applies(latent)) {
            ui.selectable_value(&mut app.train.view, v, v.label(latent));
        }
        ui.separator();
        ui.add(egui::Slider::new(&mut app.settings.zoom, 1.0..=16.0).step_by(1.0).text("zoom"));
    });
    let count = app.train.snapshots.len();
    let mut snapshot = app.train.snapshot.min(count - 1);
    let steps: Vec<u64> = app.train.snapshots.iter().map(|s| s.step).collect();
    ui.horizontal(|ui| {
        let response = ui.add(
            egui::Slider::new(&mut snapshot, 0..=count - 1)
                .text("Samples over training")
                .show_value(false)
                .custom_formatter(|i, _| format!("step {}", steps.get(i as usize).copied().unwrap_or(0))),
        );
        ui.label(format!("after step {} ({} of {count})", steps[snapshot], snapshot + 1));
        if response.changed() {
            app.train.snapshot = snapshot;
            app.train.follow = snapshot + 1 == count;
        }
    });
    let frames = app.train.shown().map_or(0, |t| t.frames.len());
    if frames > 1 {
        let mut frame = app.train.frame.min(frames - 1);
        let ts: Vec<usize> = app.train.shown().map(|t| t.frames.iter().map(|f| f.t).collect()).unwrap_or_default();
        let t_of = |i: usize| ts.get(i).copied().unwrap_or(0);
        ui.horizontal(|ui| {
            let response = ui.add(
                egui::Slider::new(&mut frame, 0..=frames - 1)
                    .text("Denoising step")
                    .show_value(false)
                    .custom_formatter(|i, _| format!("t = {}", t_of(i as usize))),
            );
            ui.label(format!("t = {}  (frame {} of {frames})", t_of(frame), frame + 1));
            if response.changed() {
                app.train.frame = frame;
            }
        });
    } else if frames == 1 {
        ui.small("older sample grids keep their final images only");
    }
    let zoom = app.settings.zoom;
    if let Some(texture) = app.train.texture(ui.ctx(), app.settings.color_map) {
        let size = texture.size_vec2() * zoom;
        egui::ScrollArea::both().show(ui, |ui| {
            ui.add(egui::Image::new((texture.id(), size)).alt_text("samples during training"));
        });
    }
}
