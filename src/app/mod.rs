//! The eframe window. Reads its state every frame, sends commands to the engine and drains its events;
//! never runs a model itself.

pub mod compare;
pub mod dialogs;
pub mod export;
pub mod forward_ui;
pub mod generate_ui;
pub mod gpu_display;
pub mod schedule_ui;
pub mod state;
pub mod timeline_ui;
pub mod train_ui;
pub mod view;

use std::sync::mpsc::{Receiver, Sender, channel};
use std::time::Instant;

use eframe::egui::{self, TextureHandle};

use crate::engine::{Engine, Event, ModelInfo, ModelSource};
use crate::model::embedded;
use state::{RunState, Settings, Trajectory};

const SETTINGS_KEY: &str = "diffusion-lab-settings";

/// Opens the main window and blocks until it is closed. Renders with wgpu (frames coloured by
/// shaders/display.wgsl); where wgpu cannot open a surface, with OpenGL (frames coloured on the CPU).
pub fn run() -> anyhow::Result<()> {
    // For drivers whose Vulkan misbehaves: DIFFUSION_LAB_RENDERER=glow goes straight to OpenGL.
    if std::env::var("DIFFUSION_LAB_RENDERER").is_ok_and(|r| r.eq_ignore_ascii_case("glow")) {
        return open_window(eframe::Renderer::Glow).map_err(|e| anyhow::anyhow!("could not open the window: {e}"));
    }
    match open_window(eframe::Renderer::Wgpu) {
        Err(wgpu_error) => {
            eprintln!("the wgpu renderer failed ({wgpu_error}); trying OpenGL");
            open_window(eframe::Renderer::Glow)
                .map_err(|e| anyhow::anyhow!("could not open the window: wgpu: {wgpu_error}; OpenGL: {e}"))
        }
        ok => ok.map_err(|e| anyhow::anyhow!("could not open the window: {e}")),
    }
}

fn open_window(renderer: eframe::Renderer) -> Result<(), eframe::Error> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default().with_title("diffusion-lab").with_inner_size([1280.0, 800.0]),
        renderer,
        ..Default::default()
    };
    eframe::run_native(
        "diffusion-lab",
        options,
        Box::new(|cc| {
            let settings: Settings = cc.storage.and_then(|s| eframe::get_value(s, SETTINGS_KEY)).unwrap_or_default();
            let ctx = cc.egui_ctx.clone();
            let engine = Engine::spawn(settings.device, move || ctx.request_repaint());
            let mut app = LabApp::new(engine, settings);
            app.gpu_display = gpu_display::install(cc.wgpu_render_state.as_ref());
            Ok(Box::new(app))
        }),
    )
}

/// A message for the status line; errors stay until the next message.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusMessage {
    pub text: String,
    pub is_error: bool,
}

/// Something a background file dialog or writer reports back to the UI thread.
pub enum FileEvent {
    Saved(String),
    Failed(String),
    SettingsLoaded(Box<crate::engine::GenerateRequest>, String),
    ForwardImagePicked(std::path::PathBuf),
    CheckpointPicked(std::path::PathBuf),
    TrainFolderPicked(train_ui::FolderTarget, std::path::PathBuf),
}

/// The window's two pages.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    Generate,
    Train,
}

pub struct LabApp {
    pub settings: Settings,
    /// Where the Forward process panel finds the Fashion-MNIST test split.
    pub fashion_mnist_dir: std::path::PathBuf,
    /// Whether file dialogs can open here ([`dialogs::file_dialog_available`]); without them exports go
    /// to `export_dir` and the status bar says where.
    pub file_dialogs: bool,
    pub export_dir: std::path::PathBuf,
    /// Memory a run's recorded frames may take ([`crate::engine::generate::TRAJECTORY_BUDGET_BYTES`]).
    pub trajectory_budget: usize,
    pub engine: Engine,
    pub device: Option<String>,
    pub models: Vec<ModelInfo>,
    pub trajectory: Option<Trajectory>,
    pub run: RunState,
    /// Index into the trajectory's frames of the frame on screen.
    pub cursor: usize,
    /// Whether the view follows the newest frame while a run streams.
    pub follow: bool,
    pub playing: bool,
    play_clock: f64,
    texture: Option<TextureHandle>,
    /// What the texture shows: (job, frame index, view, colour map).
    texture_key: Option<(u64, usize, state::View, state::ColorMap)>,
    /// A checkpoint being opened and the model selected before it, restored if the file fails to load.
    model_before_open: Option<(String, String)>,
    /// The (job, frame index) last asked to be decoded first, so that it is asked once.
    decode_requested: Option<(u64, usize)>,
    pub status: Option<StatusMessage>,
    files: (Sender<FileEvent>, Receiver<FileEvent>),
    /// The job id of the run on screen (events of other jobs are stale).
    pub job: u64,
    /// Steps/s of the running job, smoothed.
    pub steps_per_second: f64,
    last_frame_at: Option<Instant>,
    /// The curves of the schedule being edited, recomputed when it changes.
    pub plotted: Option<schedule_ui::Curves>,
    pub forward: forward_ui::ForwardState,
    /// Time the UI thread spends building each frame during the current run.
    pub frame_times: FrameTimes,
    /// Whether frames are coloured on the GPU (wgpu renderer) rather than uploaded as CPU textures.
    pub gpu_display: bool,
    /// A/B runs and X/Y grids.
    pub compare: compare::CompareState,
    pub page: Page,
    /// The Train view: the run's loss curve and samples.
    pub train: train_ui::TrainState,
}

/// Mean and worst UI frame time since the last reset.
/// The model a new window (or one whose chosen model failed) starts with: the first built-in one.
/// "12.3 steps/s, ETA 4 s, 1 s elapsed"; before the second frame there is no rate yet, and no ETA.
pub fn status_rate_text(steps_per_second: f64, remaining_seconds: f64, elapsed: f64) -> String {
    if steps_per_second > 0.0 && remaining_seconds.is_finite() {
        format!("{steps_per_second:.1} steps/s, ETA {remaining_seconds:.0} s, {elapsed:.0} s elapsed")
    } else {
        format!("measuring speed…, {elapsed:.0} s elapsed")
    }
}

/// The status line for settings that were reset to their defaults.
fn reset_message(fixed: &[String]) -> String {
    format!("invalid saved settings reset to their defaults: {}", fixed.join(", "))
}

fn default_model_name() -> String {
    embedded::MODELS.first().map(|m| m.name.to_string()).unwrap_or_default()
}

#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct FrameTimes {
    pub frames: usize,
    pub total_ms: f64,
    pub max_ms: f64,
}

impl FrameTimes {
    pub fn record(&mut self, ms: f64) {
        self.frames += 1;
        self.total_ms += ms;
        self.max_ms = self.max_ms.max(ms);
    }

    pub fn mean_ms(&self) -> f64 {
        self.total_ms / self.frames.max(1) as f64
    }
}

impl LabApp {
    /// A window over `engine`, with the embedded models registered.
    pub fn new(engine: Engine, mut settings: Settings) -> Self {
        for model in embedded::MODELS {
            engine.load_model(
                model.name,
                ModelSource::Embedded(model.unet),
                model.autoencoder.map(ModelSource::Embedded),
            );
        }
        if embedded::model_by_name(&settings.model).is_none() {
            settings.model = default_model_name();
        }
        // Every built-in model knows the ten Fashion-MNIST classes; a loaded model re-checks its own.
        let fixed = settings.sanitize(crate::data::FASHION_MNIST_CLASSES.len());
        let status = (!fixed.is_empty()).then(|| StatusMessage { text: reset_message(&fixed), is_error: true });
        let compare = compare::CompareState::new(&settings);
        Self {
            settings,
            fashion_mnist_dir: crate::data::fashion_mnist_dir(),
            file_dialogs: dialogs::file_dialog_available(),
            export_dir: dialogs::default_export_dir(),
            trajectory_budget: crate::engine::generate::TRAJECTORY_BUDGET_BYTES,
            engine,
            device: None,
            models: Vec::new(),
            trajectory: None,
            run: RunState::Idle,
            cursor: 0,
            follow: true,
            playing: false,
            play_clock: 0.0,
            texture: None,
            texture_key: None,
            decode_requested: None,
            model_before_open: None,
            status,
            files: channel(),
            job: 0,
            steps_per_second: 0.0,
            last_frame_at: None,
            plotted: None,
            forward: forward_ui::ForwardState::new(),
            frame_times: FrameTimes::default(),
            gpu_display: false,
            compare,
            page: Page::Generate,
            train: train_ui::TrainState::default(),
        }
    }

    /// Whether the engine is busy with a run of ours: A (the main run), B or a grid cell.
    pub fn is_running(&self) -> bool {
        matches!(self.run, RunState::Running { .. }) || self.compare.running.is_some()
    }

    pub fn model_info(&self) -> Option<&ModelInfo> {
        self.models.iter().find(|m| m.name == self.settings.model)
    }

    /// Checks the settings against the selected model once it has loaded; says what was reset.
    fn sanitize_settings(&mut self) {
        let Some(num_classes) = self.model_info().map(|m| m.config.num_classes) else { return };
        let fixed = self.settings.sanitize(num_classes);
        if !fixed.is_empty() {
            self.set_status(reset_message(&fixed), true);
        }
    }

    pub fn set_status(&mut self, text: impl Into<String>, is_error: bool) {
        self.status = Some(StatusMessage { text: text.into(), is_error });
    }

    /// Why Generate cannot run now, if it cannot.
    pub fn generate_blocker(&self) -> Option<String> {
        let Some(model) = self.model_info() else {
            return Some(if self.models.is_empty() { "loading the model…".into() } else { "choose a model".into() });
        };
        let request = self.settings.request();
        // A grid varies the settings: its cells are checked one by one as they run.
        if !matches!(self.compare.mode, compare::Mode::Grid | compare::Mode::Interpolate)
            && let Err(e) = request.validate(model.config.num_classes)
        {
            return Some(e.to_string());
        }
        self.compare_blocker()
    }

    /// Generate: one run, an A/B pair or a grid, as the Compare choice says. What is running is cancelled
    /// and what was queued dropped.
    pub fn start_generate(&mut self) {
        if let Some(reason) = self.generate_blocker() {
            self.set_status(format!("cannot generate: {reason}"), true);
            return;
        }
        self.compare.clear_queue();
        self.compare.running = None;
        match self.compare.mode {
            compare::Mode::Single => self.start_single(),
            compare::Mode::AB => self.start_ab(),
            compare::Mode::Grid => self.start_grid(),
            compare::Mode::Interpolate => self.start_interpolation(),
        }
    }

    /// Starts a run with the current settings; a run in progress is cancelled and its frames dropped.
    fn start_single(&mut self) {
        self.start_request(self.settings.request());
    }

    /// Starts `request` as the main run (Generate, or "Denoise from here"); a run in progress is cancelled
    /// and its frames dropped.
    pub fn start_request(&mut self, request: crate::engine::GenerateRequest) {
        self.compare.clear_queue();
        self.compare.running = None;
        self.job = self.engine.generate(request.clone(), true);
        self.trajectory = Some(Trajectory { budget_bytes: self.trajectory_budget, ..Trajectory::new(request) });
        self.run = RunState::Running { job: self.job, started: Instant::now() };
        self.cursor = 0;
        self.follow = true;
        self.playing = false;
        self.steps_per_second = 0.0;
        self.last_frame_at = None;
        self.status = None;
        self.frame_times = FrameTimes::default();
    }

    pub fn cancel(&mut self) {
        self.compare.clear_queue();
        if self.is_running() {
            self.engine.cancel();
        }
    }

    /// Applies every engine and file event that has arrived; events of stale jobs are dropped.
    pub fn handle_events(&mut self) {
        for event in self.engine.poll() {
            match event {
                Event::Ready { device, .. } => {
                    if self.status.as_ref().is_some_and(|s| s.text.starts_with("preparing the GPU")) {
                        self.status = None;
                    }
                    self.device = Some(device);
                }
                Event::DeviceFailed { message } => self.set_status(format!("could not switch device: {message}"), true),
                Event::Preparing { name } => {
                    self.set_status(
                        format!("preparing the GPU for {name}… (compiling and tuning its kernels, once)"),
                        false,
                    );
                }
                Event::ModelLoaded(info) => {
                    if self.status.as_ref().is_some_and(|s| s.text.starts_with("preparing the GPU")) {
                        self.status = None;
                    }
                    self.models.retain(|m| m.name != info.name);
                    let selected = info.name == self.settings.model;
                    self.models.push(info);
                    if selected {
                        self.sanitize_settings();
                    }
                }
                Event::ModelFailed { name, message } => {
                    self.set_status(format!("could not load {name}: {message}"), true);
                    if self.settings.model == name {
                        self.settings.model = match self.model_before_open.take() {
                            Some((opened, previous))
                                if opened == name && self.models.iter().any(|m| m.name == previous) =>
                            {
                                previous
                            }
                            _ => default_model_name(),
                        };
                    }
                }
                Event::Frame { job, frame, total_steps } if job == self.job => {
                    let now = Instant::now();
                    if let Some(last) = self.last_frame_at {
                        let rate = 1.0 / now.duration_since(last).as_secs_f64().max(1e-6);
                        self.steps_per_second =
                            if self.steps_per_second == 0.0 { rate } else { 0.8 * self.steps_per_second + 0.2 * rate };
                    }
                    self.last_frame_at = Some(now);
                    if let Some(trajectory) = &mut self.trajectory {
                        trajectory.total_steps = total_steps;
                        trajectory.push(frame);
                        if self.follow {
                            self.cursor = trajectory.frames.len() - 1;
                        }
                    }
                }
                Event::Done { job, summary } if job == self.job => {
                    self.run = RunState::Finished { seconds: summary.seconds, cancelled: summary.cancelled };
                    let t = self.frame_times;
                    eprintln!(
                        "run {job}: {} steps in {:.2} s; UI thread {} frames, mean {:.2} ms, worst {:.2} ms",
                        summary.steps_done,
                        summary.seconds,
                        t.frames,
                        t.mean_ms(),
                        t.max_ms
                    );
                    if summary.cancelled {
                        self.set_status(format!("cancelled after {} steps", summary.steps_done), false);
                        self.compare.clear_queue();
                    }
                    self.start_next_queued();
                }
                Event::Failed { job, message } if job == self.job => {
                    self.run = RunState::Failed(message.clone());
                    self.set_status(message, true);
                    self.compare.clear_queue();
                }
                Event::Decoded { job, index, decoded } if job == self.job => {
                    if let Some(trajectory) = &mut self.trajectory {
                        trajectory.set_decoded(index, decoded);
                    }
                }
                Event::Frame { job, frame, total_steps } if self.compare.owns(job) => {
                    self.compare.on_frame(job, frame, total_steps)
                }
                Event::Done { job, summary } if self.compare.owns(job) => {
                    self.compare.running = None;
                    if summary.cancelled {
                        self.set_status(format!("cancelled after {} steps", summary.steps_done), false);
                    }
                    self.start_next_queued();
                }
                Event::Failed { job, message } if self.compare.owns(job) => {
                    if let Some(message) = self.compare.on_failed(job, &message) {
                        self.set_status(message, true);
                    }
                    self.start_next_queued();
                }
                Event::Decoded { job, index, decoded } if self.compare.decodes(job) => {
                    if let Some(trajectory) = &mut self.compare.trajectory_b {
                        trajectory.set_decoded(index, decoded);
                    }
                }
                Event::Frame { .. } | Event::Done { .. } | Event::Failed { .. } | Event::Decoded { .. } => {} // A superseded job.
                Event::ForwardImage { x0, shape, label } => self.forward.set_x0(x0, shape, label),
                Event::ForwardFrame { t, x_t, noise, shape } => {
                    self.forward.x_t = Some((t, x_t, shape));
                    self.forward.noise = Some(noise);
                    self.forward.frame_serial += 1;
                }
                Event::ForwardFailed { message } => self.forward.error = Some(message),
                Event::Train(event) => train_ui::on_train_event(self, event),
            }
        }
        while let Ok(event) = self.files.1.try_recv() {
            match event {
                FileEvent::Saved(path) => self.set_status(format!("saved {path}"), false),
                FileEvent::Failed(message) => self.set_status(message, true),
                FileEvent::ForwardImagePicked(path) => forward_ui::load_file_image(self, path),
                FileEvent::CheckpointPicked(path) => self.open_checkpoint(path),
                FileEvent::TrainFolderPicked(target, path) => train_ui::on_folder_picked(self, target, path),
                FileEvent::SettingsLoaded(request, path) => {
                    self.settings.apply_request(&request);
                    self.set_status(format!("settings restored from {path}"), false);
                    if embedded::model_by_name(&self.settings.model).is_none() && self.model_info().is_none() {
                        let model = std::mem::replace(&mut self.settings.model, default_model_name());
                        self.set_status(
                            format!(
                                "settings restored from {path}, but its model `{model}` is not loaded: using {}",
                                self.settings.model
                            ),
                            true,
                        );
                    }
                    self.sanitize_settings();
                    if let Some(init) = &request.init {
                        forward_ui::restore_init(self, init);
                    }
                    if let Some(interpolate) = &request.interpolate {
                        self.compare.restore_interpolation(interpolate);
                    }
                }
            }
        }
    }

    /// Loads a checkpoint file written by `train` as another model, and selects it once it has loaded.
    pub fn open_checkpoint(&mut self, path: std::path::PathBuf) {
        let name = format!(
            "file: {}",
            path.file_name().map_or_else(|| path.display().to_string(), |n| n.to_string_lossy().into_owned())
        );
        self.engine.load_model(&name, ModelSource::File(path), None);
        let previous = std::mem::replace(&mut self.settings.model, name.clone());
        // A file that fails to load must not cost the user the model they had.
        if previous != name {
            self.model_before_open = Some((name, previous));
        }
    }

    pub fn file_events(&self) -> Sender<FileEvent> {
        self.files.0.clone()
    }

    /// The frame on screen, if any: the cursor's, or while a latent frame waits for its pixels, the
    /// nearest decoded one (see [`Trajectory::display_position`]).
    pub fn current_frame(&self) -> Option<&crate::engine::Frame> {
        let trajectory = self.trajectory.as_ref()?;
        trajectory.frames.get(trajectory.display_position(self.cursor, self.settings.view))
    }

    /// Asks the engine to decode the cursor's latent frame next when it has no pixels yet.
    fn request_cursor_decode(&mut self) {
        let Some(trajectory) = &self.trajectory else { return };
        if self.is_running() || !trajectory.is_latent() {
            return;
        }
        let Some(frame) = trajectory.frames.get(self.cursor).filter(|f| f.decoded.is_none()) else { return };
        let wanted = (self.job, frame.index);
        if self.decode_requested != Some(wanted) {
            self.engine.decode(wanted.0, wanted.1);
            self.decode_requested = Some(wanted);
        }
    }

    fn keyboard(&mut self, ctx: &egui::Context) {
        let (generate, escape, left, right, space) = ctx.input(|i| {
            (
                i.modifiers.command && i.key_pressed(egui::Key::Enter),
                i.key_pressed(egui::Key::Escape),
                i.key_pressed(egui::Key::ArrowLeft),
                i.key_pressed(egui::Key::ArrowRight),
                i.key_pressed(egui::Key::Space),
            )
        });
        if ctx.egui_wants_keyboard_input() {
            return;
        }
        if escape {
            self.cancel();
        }
        if generate && self.generate_blocker().is_none() {
            self.start_generate();
        }
        let frames = self.trajectory.as_ref().map_or(0, |t| t.frames.len());
        // Frames run from t = T (index 0) to t = 0, so "left" is one t higher (back towards noise).
        if left && self.cursor > 0 {
            self.cursor -= 1;
            self.follow = false;
        }
        if right && self.cursor + 1 < frames {
            self.cursor += 1;
            self.follow = self.cursor + 1 == frames;
        }
        if space && frames > 1 {
            self.playing = !self.playing;
        }
    }

    fn advance_playback(&mut self, ctx: &egui::Context) {
        if !self.playing {
            return;
        }
        let frames = self.trajectory.as_ref().map_or(0, |t| t.frames.len());
        let dt = ctx.input(|i| i.stable_dt) as f64;
        self.play_clock += dt * self.settings.play_speed as f64;
        let advance = self.play_clock.floor() as usize;
        if advance > 0 {
            self.play_clock -= advance as f64;
            self.cursor = (self.cursor + advance).min(frames.saturating_sub(1));
            self.follow = false;
            if self.cursor + 1 >= frames {
                self.playing = false;
            }
        }
        ctx.request_repaint();
    }

    /// The texture of the frame on screen, re-uploaded only when the frame, view or colour map change.
    fn frame_texture(&mut self, ctx: &egui::Context) -> Option<TextureHandle> {
        let frame = self.current_frame()?;
        let key = (self.job, frame.index, self.settings.view, self.settings.color_map);
        if self.texture_key != Some(key) || self.texture.is_none() {
            let image = view::color_image(frame, self.settings.view, self.settings.color_map);
            view::upload(&mut self.texture, ctx, "frame", image);
            self.texture_key = Some(key);
        }
        self.texture.clone()
    }

    /// The whole window.
    /// The whole window (without eframe, as in tests: times only the UI code itself).
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        let started = Instant::now();
        self.ui_contents(ui);
        let ms = started.elapsed().as_secs_f64() * 1000.0;
        if self.is_running() {
            self.frame_times.record(ms);
        }
        if self.train.is_training() {
            self.train.frame_times.record(ms);
        }
    }

    fn ui_contents(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.handle_events();
        self.keyboard(&ctx);
        self.advance_playback(&ctx);
        self.request_cursor_decode();

        egui::Panel::top("pages").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.selectable_value(&mut self.page, Page::Generate, "Generate view");
                let training = match self.train.phase {
                    train_ui::Phase::Running | train_ui::Phase::Starting => " (training…)",
                    train_ui::Phase::Paused => " (paused)",
                    train_ui::Phase::Idle => "",
                };
                ui.selectable_value(&mut self.page, Page::Train, "Train view")
                    .on_hover_text(format!("Train a model on your own images{training}"));
                if !training.is_empty() {
                    ui.label(format!("training: step {} of {}", self.train.step, self.train.steps));
                }
            });
        });
        egui::Panel::bottom("status_bar").show(ui, |ui| self.status_bar_ui(ui));
        if self.page == Page::Train {
            egui::Panel::left("train_panel").resizable(false).default_size(320.0).show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| train_ui::train_panel_ui(self, ui));
            });
            egui::CentralPanel::default().show(ui, |ui| train_ui::train_view_ui(self, ui));
            return;
        }
        egui::Panel::left("generate_panel").resizable(false).default_size(300.0).show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                generate_ui::generate_panel_ui(self, ui);
                ui.separator();
                schedule_ui::schedule_panel_ui(self, ui);
            });
        });
        egui::Panel::bottom("timeline").show(ui, |ui| timeline_ui::timeline_ui(self, ui));
        if self.forward.open {
            egui::Panel::right("forward_panel").resizable(true).default_size(300.0).show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| forward_ui::forward_panel_ui(self, ui));
            });
        }
        egui::CentralPanel::default().show(ui, |ui| match self.compare.mode {
            compare::Mode::Single => self.image_ui(ui),
            compare::Mode::AB => {
                self.view_toolbar_ui(ui);
                compare::ab_view_ui(self, ui);
            }
            compare::Mode::Grid | compare::Mode::Interpolate => compare::grid_view_ui(self, ui),
        });
    }

    fn status_bar_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.label(self.device.as_deref().unwrap_or("opening the compute device…"));
            ui.separator();
            ui.label(if self.gpu_display { "display: GPU shader" } else { "display: CPU texture" });
            ui.separator();
            if let (RunState::Running { started, .. }, Some(t)) = (&self.run, &self.trajectory) {
                let done = t.frames.len().saturating_sub(1);
                let total = t.total_steps.max(1);
                let remaining = total.saturating_sub(done) as f64 / self.steps_per_second.max(1e-9);
                ui.add(
                    egui::ProgressBar::new(done as f32 / total as f32)
                        .desired_width(220.0)
                        .text(format!("t = {}  ({done}/{total})", t.frames.last().map_or(0, |f| f.t))),
                );
                ui.label(status_rate_text(self.steps_per_second, remaining, started.elapsed().as_secs_f64()));
            } else if let RunState::Finished { seconds, cancelled: false } = self.run {
                ui.label(format!(
                    "done in {seconds:.1} s (UI frames: mean {:.1} ms, worst {:.1} ms)",
                    self.frame_times.mean_ms(),
                    self.frame_times.max_ms
                ));
            }
            match (self.compare.running, &self.compare.grid) {
                (Some((_, compare::Target::B)), _) => {
                    let done = self.compare.trajectory_b.as_ref().map_or(0, |t| t.frames.len().saturating_sub(1));
                    let total = self.compare.trajectory_b.as_ref().map_or(0, |t| t.total_steps);
                    ui.label(format!("running B: step {done} of {total}"));
                }
                (Some((_, compare::Target::Cell(i))), Some(grid)) => {
                    ui.add(
                        egui::ProgressBar::new(grid.finished_cells() as f32 / grid.cells.len().max(1) as f32)
                            .desired_width(220.0)
                            .text(format!("grid: cell {} of {}", i + 1, grid.cells.len())),
                    );
                }
                _ => {}
            }
            if let Some(status) = &self.status {
                ui.separator();
                if status.is_error {
                    ui.colored_label(ui.visuals().error_fg_color, &status.text);
                } else {
                    ui.label(&status.text);
                }
            }
        });
    }

    fn image_ui(&mut self, ui: &mut egui::Ui) {
        self.view_toolbar_ui(ui);
        self.frames_ui(ui);
    }

    /// What the images show, in which colours and how large; and the Forward process panel's switch.
    fn view_toolbar_ui(&mut self, ui: &mut egui::Ui) {
        // Wrapped, so that no control falls off a narrow window.
        ui.horizontal_wrapped(|ui| {
            ui.label("Show:");
            let latent = self.model_info().is_some_and(|m| m.is_latent);
            if !self.settings.view.applies(latent) {
                self.settings.view = state::View::Noisy;
            }
            for v in state::View::ALL.into_iter().filter(|v| v.applies(latent)) {
                ui.selectable_value(&mut self.settings.view, v, v.label(latent));
            }
            ui.separator();
            ui.label("Colours:");
            ui.selectable_value(&mut self.settings.color_map, state::ColorMap::Gray, "gray (out-of-range tinted)");
            ui.selectable_value(&mut self.settings.color_map, state::ColorMap::Diverging, "diverging");
            ui.separator();
            ui.add(egui::Slider::new(&mut self.settings.zoom, 1.0..=16.0).step_by(1.0).text("zoom"));
            ui.separator();
            if ui.toggle_value(&mut self.forward.open, "Forward process").clicked()
                && self.forward.open
                && self.forward.x0.is_none()
            {
                forward_ui::load_test_image(self);
            }
        });
        ui.separator();
    }

    fn frames_ui(&mut self, ui: &mut egui::Ui) {
        if self.gpu_display {
            if let Some(frame) = self.current_frame() {
                let (values, shape) = view::frame_values(frame, self.settings.view);
                let callback = gpu_display::DisplayCallback { values, shape, map: self.settings.color_map };
                let [w, h] = callback.grid_size();
                let size = egui::vec2(w as f32, h as f32) * self.settings.zoom;
                egui::ScrollArea::both().show(ui, |ui| {
                    let (rect, response) = ui.allocate_exact_size(size, egui::Sense::hover());
                    response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, "generated images"));
                    ui.painter().add(eframe::egui_wgpu::Callback::new_paint_callback(rect, callback));
                });
                return;
            }
        }
        match self.frame_texture(ui.ctx()) {
            Some(texture) => {
                let size = texture.size_vec2() * self.settings.zoom;
                egui::ScrollArea::both().show(ui, |ui| {
                    ui.add(egui::Image::new((texture.id(), size)).alt_text("generated images"));
                });
            }
            None => {
                ui.centered_and_justified(|ui| {
                    ui.label("Press Generate to watch noise turn into images.");
                });
            }
        }
    }
}

impl eframe::App for LabApp {
    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        self.ui_contents(ui);
        // eframe's measure of the previous frame: building the UI, tessellating and painting it.
        if let Some(seconds) = frame.info().cpu_usage {
            if self.is_running() {
                self.frame_times.record(seconds as f64 * 1000.0);
            }
            if self.train.is_training() {
                self.train.frame_times.record(seconds as f64 * 1000.0);
            }
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, SETTINGS_KEY, &self.settings);
    }
}

#[cfg(test)]
mod rate_tests {
    use super::status_rate_text;

    #[test]
    fn no_eta_before_the_rate_is_known() {
        assert_eq!(status_rate_text(0.0, f64::INFINITY, 0.4), "measuring speed…, 0 s elapsed");
        assert!(!status_rate_text(0.0, f64::NAN, 2.0).contains("NaN"));
        assert_eq!(status_rate_text(10.0, 4.2, 1.0), "10.0 steps/s, ETA 4 s, 1 s elapsed");
    }
}
