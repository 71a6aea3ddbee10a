//! The narrow part of the window that every panel shares: [`PanelContext`]. A panel owns its own state
//! and reaches the rest of the window only through this (the engine handle, the settings, the status line,
//! the file dialogs, the loaded models) and through the [`Request`]s it leaves for [`super::LabApp`].

use std::path::PathBuf;

use super::dialogs::Dialogs;
use super::state::Settings;
use crate::engine::{Engine, Frame, GenerateRequest, ModelInfo};
use crate::model::ModelId;

/// A message for the status line; errors stay until the next message.
#[derive(Clone, Debug, PartialEq)]
pub struct StatusMessage {
    pub text: String,
    pub is_error: bool,
    /// The "preparing the GPU" notice, which the model's arrival (or the device's) clears: a kind, so
    /// that nothing has to recognise it by its text.
    pub preparing_gpu: bool,
}

/// What a panel asks of the window beyond itself; [`super::LabApp`] carries it out after the panels drew.
#[derive(Clone, Debug)]
pub enum Request {
    /// Generate with the current settings (one run, A/B, a grid or a strip, as the Compare choice says).
    Generate,
    /// Start this run as the main run (the Forward process panel's "Denoise from here").
    Run(Box<GenerateRequest>),
    Cancel,
    /// Open the Forward process panel at t = T (the Schedule panel's "Show x_T next to pure noise").
    ShowTerminalNoise,
    /// Branch the main run at the frame under the cursor (the timeline's "Continue from here").
    ContinueFromHere,
}

/// A control the Tour's step talks about: drawn with a ring while that step is on screen, so the learner
/// finds it (each control's panel calls [`PanelContext::mark`] after drawing it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Highlight {
    ForwardT,
    Schedule,
    Posterior,
    ThisStep,
    Sampler,
    Attention,
    Guidance,
    Compare,
    Model,
    Quantity,
    Prompt,
    Lab2dTraining,
    Lab2dRecipes,
    Lab2dSolver,
}

/// The ring's colour: warm, unlike any colour the window uses for state.
const HIGHLIGHT_COLOR: eframe::egui::Color32 = eframe::egui::Color32::from_rgb(255, 150, 20);

/// Rings `rect` when `highlight` is `what` (for code that cannot borrow the whole context).
pub fn mark(ui: &eframe::egui::Ui, rect: eframe::egui::Rect, highlight: Option<Highlight>, what: Highlight) {
    if highlight == Some(what) {
        let stroke = eframe::egui::Stroke::new(2.5, HIGHLIGHT_COLOR);
        ui.painter().rect_stroke(rect.expand(3.0), 4.0, stroke, eframe::egui::StrokeKind::Outside);
    }
}

/// The models the engine has loaded, the device it runs on, and a checkpoint being opened.
#[derive(Default)]
pub struct Models {
    pub loaded: Vec<ModelInfo>,
    /// The engine's device once it has opened it ("CPU (flex)", the GPU's name).
    pub device: Option<String>,
    /// A checkpoint being opened and the model selected before it, restored if the file fails to load.
    pub before_open: Option<(ModelId, ModelId)>,
}

impl Models {
    pub fn info(&self, id: &ModelId) -> Option<&ModelInfo> {
        self.loaded.iter().find(|m| m.id == *id)
    }
}

/// Mean and worst time the UI thread spends on a frame of the window, since the last reset: measured
/// while a run streams or training runs, to show that neither makes the window stutter.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PaintTimes {
    pub frames: usize,
    pub total_ms: f64,
    pub max_ms: f64,
}

impl PaintTimes {
    pub fn record(&mut self, ms: f64) {
        self.frames += 1;
        self.total_ms += ms;
        self.max_ms = self.max_ms.max(ms);
    }

    pub fn mean_ms(&self) -> f64 {
        self.total_ms / self.frames.max(1) as f64
    }
}

pub struct PanelContext {
    pub engine: Engine,
    /// Everything the user sets, saved between launches.
    pub settings: Settings,
    pub status: Option<StatusMessage>,
    pub dialogs: Dialogs,
    pub models: Models,
    /// Where the Forward process panel and the Train view find Fashion-MNIST.
    pub fashion_mnist_dir: PathBuf,
    /// Memory a run's recorded frames may take ([`crate::run::generate::TRAJECTORY_BUDGET_BYTES`]).
    pub trajectory_budget: usize,
    /// Whether frames are coloured on the GPU (wgpu renderer) rather than uploaded as CPU textures.
    pub gpu_display: bool,
    /// Why Generate (and "Denoise from here") cannot run now, if it cannot; computed once a frame.
    pub generate_blocker: Option<String>,
    /// The Generate page's frame on screen this frame (for "Use the frame on screen").
    pub frame_on_screen: Option<Frame>,
    /// Whether the engine is busy with a run of ours (the main run, B or a grid cell), as the frame began
    /// (like `generate_blocker` and `frame_on_screen`, set by the window before the panels draw).
    pub running: bool,
    /// What the panels asked for this frame, in order.
    pub requests: Vec<Request>,
    /// The control the Tour's step on screen talks about, if the Tour is open.
    pub highlight: Option<Highlight>,
}

impl PanelContext {
    pub fn new(engine: Engine, settings: Settings) -> Self {
        Self {
            engine,
            settings,
            status: None,
            dialogs: Dialogs::new(),
            models: Models::default(),
            fashion_mnist_dir: crate::data::fashion_mnist_dir(),
            trajectory_budget: crate::run::generate::TRAJECTORY_BUDGET_BYTES,
            gpu_display: false,
            generate_blocker: None,
            frame_on_screen: None,
            running: false,
            requests: Vec::new(),
            highlight: None,
        }
    }

    /// Rings `response`'s control when the Tour's step talks about `what`.
    pub fn mark(&self, ui: &eframe::egui::Ui, rect: eframe::egui::Rect, what: Highlight) {
        mark(ui, rect, self.highlight, what);
    }

    pub fn set_status(&mut self, text: impl Into<String>, is_error: bool) {
        self.status = Some(StatusMessage { text: text.into(), is_error, preparing_gpu: false });
    }

    /// Says the GPU is being prepared for a model (until [`Self::clear_preparing_status`]).
    pub fn set_preparing_status(&mut self, text: impl Into<String>) {
        self.status = Some(StatusMessage { text: text.into(), is_error: false, preparing_gpu: true });
    }

    /// Clears the status line if it still says the GPU is being prepared.
    pub fn clear_preparing_status(&mut self) {
        if self.status.as_ref().is_some_and(|s| s.preparing_gpu) {
            self.status = None;
        }
    }

    /// Clears the status line (a new run or training start: what it said no longer applies).
    pub fn clear_status(&mut self) {
        self.status = None;
    }

    /// The selected model, once loaded.
    pub fn model_info(&self) -> Option<&ModelInfo> {
        self.models.info(&self.settings.model)
    }

    /// Whether the selected model reads prompts (a text model), from its config once it has loaded.
    pub fn text_model(&self) -> bool {
        self.model_info().is_some_and(|m| m.config.text.is_some())
    }

    /// The run the settings describe for the selected model (with the prompt where it reads prompts).
    pub fn request(&self) -> GenerateRequest {
        self.settings.request(self.text_model())
    }

    /// Checks the settings against the selected model once it has loaded (a model picked, loaded or
    /// restored may know fewer classes); says what was reset.
    pub fn sanitize_settings(&mut self) {
        let Some(num_classes) = self.model_info().map(|m| m.config.num_classes) else { return };
        let fixed = self.settings.sanitize(num_classes);
        if !fixed.is_empty() {
            self.set_status(super::reset_message(&fixed), true);
        }
    }

    /// The selected model's image size and channels (Fashion-MNIST's before it has loaded).
    pub fn model_shape(&self) -> (usize, usize) {
        self.model_info().map_or((28, 1), |m| (m.config.image_size, m.config.image_channels))
    }

    /// The selected model's classes (Fashion-MNIST's ten before it has loaded).
    pub fn num_classes(&self) -> usize {
        self.model_info().map_or(crate::data::FASHION_MNIST_CLASSES.len(), |m| m.config.num_classes)
    }

    pub fn is_latent(&self) -> bool {
        self.model_info().is_some_and(|m| m.is_latent)
    }

    /// Loads a checkpoint file written by `train` as another model, and selects it once it has loaded.
    pub fn open_checkpoint(&mut self, path: PathBuf) {
        let id = ModelId::File(path.clone());
        self.engine.load_model(id.clone(), crate::engine::ModelSource::File(path), None);
        let previous = std::mem::replace(&mut self.settings.model, id.clone());
        // A file that fails to load must not cost the user the model they had.
        if previous != id {
            self.models.before_open = Some((id, previous));
        }
    }
}
