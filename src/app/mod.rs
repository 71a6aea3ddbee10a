//! The eframe window: [`LabApp`] keeps the panels and routes to them what arrives (engine events, file
//! dialog results) and what they ask for ([`Request`]s). Each panel is a struct that owns its state and
//! draws with `ui(&mut self, ui, ctx: &mut PanelContext)`; [`PanelContext`] is the narrow part they share.
//! The window never runs a model itself: the engine's thread does.

pub mod colors;
pub mod compare;
pub mod context;
pub mod dialogs;
pub mod export;
pub mod forward_ui;
pub mod generate_ui;
pub mod gpu_display;
pub mod lab2d;
pub mod posterior_ui;
pub mod schedule_ui;
pub mod state;
pub mod step_ui;
pub mod tour;
pub mod train_settings;
pub mod train_ui;
pub mod viewer;

mod pages;
mod routing;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use eframe::egui;

use crate::engine::{Engine, ModelSource};
use crate::model::{ModelId, embedded};
use crate::run::generate::Branch;
use compare::{ComparePanel, MainRun};
use context::{PanelContext, Request, StatusMessage};
use forward_ui::ForwardPanel;
use generate_ui::GeneratePanel;
use schedule_ui::SchedulePanel;
use state::Settings;
use train_ui::TrainPanel;

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

/// The package's 256-pixel icon (assets/packaging/, drawn by `diffusion-lab package-files`), for the
/// window's title bar and task switcher where no desktop entry supplies one; empty (the platform's default)
/// if it cannot be decoded, which tests/packaging.rs rules out.
fn window_icon() -> egui::IconData {
    const PNG: &[u8] =
        include_bytes!("../../assets/packaging/icons/hicolor/256x256/apps/io.github.diffusionlab.DiffusionLab.png");
    match image::load_from_memory(PNG) {
        Ok(picture) => {
            let rgba = picture.to_rgba8();
            egui::IconData { width: rgba.width(), height: rgba.height(), rgba: rgba.into_raw() }
        }
        Err(_) => egui::IconData::default(),
    }
}

fn open_window(renderer: eframe::Renderer) -> Result<(), eframe::Error> {
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("diffusion-lab")
            .with_app_id(crate::APP_ID)
            .with_icon(Arc::new(window_icon()))
            .with_inner_size([1280.0, 800.0]),
        renderer,
        ..Default::default()
    };
    eframe::run_native(
        "diffusion-lab",
        options,
        Box::new(|cc| {
            let settings: Settings = cc.storage.and_then(|s| eframe::get_value(s, SETTINGS_KEY)).unwrap_or_default();
            let ctx = cc.egui_ctx.clone();
            let quiet = Arc::new(AtomicBool::new(false));
            let quiet_events = quiet.clone();
            let engine = Engine::spawn(settings.device, move || {
                if quiet_events.load(Ordering::Relaxed) {
                    ctx.request_repaint_after(QUIET_REPAINT);
                } else {
                    ctx.request_repaint();
                }
            });
            let mut app = LabApp::new(engine, settings);
            app.quiet_repaints = quiet;
            app.ctx.gpu_display = gpu_display::install(cc.wgpu_render_state.as_ref());
            Ok(Box::new(app))
        }),
    )
}

/// The window's pages (their tabs read "Generate view", "Train view" and "2-D lab").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    Generate,
    Train,
    Lab2d,
}

pub struct LabApp {
    /// What every panel shares: engine, settings, status line, dialogs, models.
    pub ctx: PanelContext,
    /// The main run and the Generate controls.
    pub generate: GeneratePanel,
    /// A/B, X/Y grid, interpolation strip.
    pub compare: ComparePanel,
    pub forward: ForwardPanel,
    pub schedule: SchedulePanel,
    pub train: TrainPanel,
    pub lab2d: lab2d::Lab2dPanel,
    /// The guided tour of the story, on the right of every page while it is open.
    pub tour: tour::TourPanel,
    pub page: Page,
    /// Set while training is the only work running: the engine's events (a few per training step) then
    /// repaint at most every [`QUIET_REPAINT`]. Input still repaints at once. On a software renderer
    /// (lavapipe, llvmpipe) each frame costs the CPU the model trains on: at three frames a second the
    /// window trained 16 % slower than `train` (README, Training in the window).
    pub quiet_repaints: Arc<AtomicBool>,
}

/// The longest an engine event waits for its repaint while only training runs.
pub const QUIET_REPAINT: std::time::Duration = std::time::Duration::from_secs(1);

/// The status line for settings that were reset to their defaults.
pub(crate) fn reset_message(fixed: &[String]) -> String {
    format!("invalid saved settings reset to their defaults: {}", fixed.join(", "))
}

impl LabApp {
    /// A window over `engine`, with the embedded models registered.
    pub fn new(engine: Engine, mut settings: Settings) -> Self {
        for model in embedded::MODELS {
            let autoencoder = model.autoencoder.map(ModelSource::Embedded);
            engine.load_model(ModelId::BuiltIn(model.name.into()), ModelSource::Embedded(model.unet), autoencoder);
        }
        if !settings.model.is_built_in() {
            settings.model = ModelId::default_built_in();
        }
        // Every built-in model knows the ten Fashion-MNIST classes; a loaded model re-checks its own.
        let fixed = settings.sanitize(crate::data::FASHION_MNIST_CLASSES.len());
        let compare = ComparePanel::new(&settings);
        let mut ctx = PanelContext::new(engine, settings);
        ctx.status = (!fixed.is_empty()).then(|| StatusMessage {
            text: reset_message(&fixed),
            is_error: true,
            preparing_gpu: false,
        });
        Self {
            ctx,
            generate: GeneratePanel::new(),
            compare,
            forward: ForwardPanel::new(),
            schedule: SchedulePanel::default(),
            train: TrainPanel::new(),
            lab2d: lab2d::Lab2dPanel::default(),
            tour: tour::TourPanel::default(),
            page: Page::Generate,
            quiet_repaints: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Whether the engine is busy with a run of ours: A (the main run), B or a grid cell.
    pub fn is_running(&self) -> bool {
        self.generate.is_running() || self.compare.is_running()
    }

    /// The selected model, once loaded.
    pub fn model_info(&self) -> Option<&crate::engine::ModelInfo> {
        self.ctx.model_info()
    }

    /// The Generate page's frame on screen (see [`viewer::TrajectoryViewer::shown_frame`]).
    pub fn current_frame(&self) -> Option<&crate::engine::Frame> {
        self.generate.viewer.shown_frame(self.ctx.settings.quantity)
    }

    /// B's frame on screen: the one nearest in noise level to A's (B's viewer follows A's as it draws).
    pub fn current_frame_b(&self) -> Option<&crate::engine::Frame> {
        self.compare.viewer_b.shown_frame(self.ctx.settings.quantity)
    }

    /// Why Generate cannot run now, if it cannot.
    pub fn generate_blocker(&self) -> Option<String> {
        let Some(model) = self.model_info() else {
            let loading = self.ctx.models.loaded.is_empty();
            return Some(if loading { "loading the model…".into() } else { "choose a model".into() });
        };
        let request = self.ctx.request();
        // A grid varies the settings: its cells are checked one by one as they run.
        if !self.compare.varies_settings()
            && let Err(e) = request.validate(model.config.num_classes)
        {
            return Some(e.to_string());
        }
        self.compare.blocker(&self.ctx)
    }

    /// Generate: one run, an A/B pair, a grid, a strip, a branch or the decided rows, as the Compare choice
    /// answers ([`ComparePanel::launch`]). What is running is cancelled and what was queued dropped.
    pub fn start_generate(&mut self) {
        if let Some(reason) = self.generate_blocker() {
            self.ctx.set_status(format!("cannot generate: {reason}"), true);
            return;
        }
        let main = MainRun {
            request: self.ctx.request(),
            shown: self.generate.viewer.trajectory.as_ref(),
            running: self.generate.is_running(),
            init: self.forward.init_from_panel(&self.ctx),
        };
        let Some(mut launch) = self.compare.launch(main) else { return };
        match launch.main.take() {
            Some(request) => self.start_run(request),
            None => self.cancel(),
        }
        self.compare.begin(&mut self.ctx, launch);
        self.compare.start_next_queued(&mut self.ctx, self.generate.is_running());
    }

    /// "Continue from here": B continues the main run from the frame under the cursor with the settings on
    /// the left, beside it (branch mode).
    pub fn continue_from_here(&mut self) {
        let Some(reason) = self.continue_blocker() else {
            let (Some(trajectory), Some(frame)) =
                (&self.generate.viewer.trajectory, self.generate.viewer.cursor_frame())
            else {
                return;
            };
            let branch = Branch { parent: Box::new(trajectory.request.clone()), at_step: frame.index };
            self.cancel();
            self.compare.queue_branch(&self.ctx, branch);
            if let Some(reason) = self.generate_blocker() {
                self.compare.drop_queued_b();
                self.ctx.set_status(format!("cannot continue: {reason}"), true);
                return;
            }
            self.compare.start_next_queued(&mut self.ctx, self.generate.is_running());
            return;
        };
        self.ctx.set_status(format!("cannot continue from here: {reason}"), true);
    }

    /// Why "Continue from here" cannot start now, if it cannot.
    pub fn continue_blocker(&self) -> Option<String> {
        if self.is_running() {
            return Some("a run is in progress".into());
        }
        let trajectory = self.generate.viewer.trajectory.as_ref().filter(|t| !t.frames.is_empty());
        let Some(trajectory) = trajectory else { return Some("no run yet: press Generate".into()) };
        let frame = self.generate.viewer.cursor_frame()?;
        if frame.index >= trajectory.total_steps {
            return Some("this is the run's last step: scrub back to where the branch should start".into());
        }
        None
    }

    /// Starts `request` as the main run (Generate, or "Denoise from here"); a run in progress is cancelled
    /// and its frames dropped, and so is what was queued.
    pub fn start_run(&mut self, request: crate::engine::GenerateRequest) {
        self.compare.clear_queue();
        self.compare.queue.running = None;
        self.generate.start(&mut self.ctx, request);
    }

    pub fn cancel(&mut self) {
        self.compare.clear_queue();
        if self.is_running() {
            self.ctx.engine.cancel();
        }
    }

    /// Carries out what the panels asked for this frame.
    fn handle_requests(&mut self) {
        for request in std::mem::take(&mut self.ctx.requests) {
            match request {
                Request::Generate => self.start_generate(),
                Request::Run(request) => self.start_run(*request),
                Request::Cancel => self.cancel(),
                Request::ShowTerminalNoise => self.forward.show_terminal_noise(&mut self.ctx),
                Request::ContinueFromHere => self.continue_from_here(),
            }
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
        if self.tour.presenter {
            // Presenter mode's keys step through the tour (app/tour/panel.rs).
            return self.tour_keys(ctx);
        }
        if escape {
            self.cancel();
        }
        if generate && self.generate_blocker().is_none() {
            self.start_generate();
        }
        self.generate.viewer.keys(left, right, space);
    }
}

impl eframe::App for LabApp {
    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        self.ui_contents(ui);
        self.quiet_repaints.store(self.train.is_training() && !self.is_running(), Ordering::Relaxed);
        // eframe's measure of the previous frame: building the UI, tessellating and painting it.
        if let Some(seconds) = frame.info().cpu_usage {
            self.record_paint_time(seconds as f64 * 1000.0);
        }
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, SETTINGS_KEY, &self.ctx.settings);
    }
}
