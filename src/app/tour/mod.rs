//! The Tour: the story of `crate::tour` told in the real window. Each step sets what it needs (model,
//! page, schedule, sampler, the Forward panel's t, the overlay, the Compare mode) on top of the settings the
//! user had before the tour, rings the control it talks about, and leaves the user free to play; Back and
//! Next set their step's state again; leaving restores what the user had. Its tasks are judged from the
//! app's own state (tasks.rs); the panel and presenter mode are drawn in panel.rs.

mod numbers;
mod panel;
mod tasks;

pub use tasks::Outcome;

use super::compare::Mode;
use super::context::Highlight;
use super::state::{Overlay, Quantity, Settings};
use super::{LabApp, Page};
use crate::diffusion::{BetaSchedule, Sampler};
use crate::model::{ModelId, embedded};
use crate::tour::{STEPS, StepId};

/// What the window was before the tour began: put back when the tour is left.
#[derive(Clone, Debug)]
pub struct Before {
    pub settings: Settings,
    pub page: Page,
    pub forward_open: bool,
    pub forward_t: usize,
    pub compare_mode: Mode,
    pub decided_branch_class: Option<usize>,
}

/// The tour's own state: open or not, the step on screen, presenter mode, the last answer to its task.
#[derive(Default)]
pub struct TourPanel {
    pub open: bool,
    /// The step on screen, an index into [`crate::tour::STEPS`].
    pub index: usize,
    /// Larger text, the left column hidden, the arrow keys step through.
    pub presenter: bool,
    pub before: Option<Before>,
    /// The answer to the last "Check" of this step's task.
    pub outcome: Option<Outcome>,
    /// Wrong tries at this step's task (the hint shows after the first).
    pub wrong_tries: usize,
    /// The decided step's answer: a row of "When is it decided?" (0 = the row from x_T).
    pub decided_answer: usize,
}

impl TourPanel {
    pub fn step_id(&self) -> StepId {
        STEPS[self.index.min(STEPS.len() - 1)].id
    }
}

/// The built-in model by its short name (the pixel model if the name were ever missing).
fn built_in(short_name: &str) -> ModelId {
    match embedded::model_by_short_name(short_name) {
        Some(model) => ModelId::BuiltIn(model.name.to_string()),
        None => ModelId::default_built_in(),
    }
}

/// The sampler the sampling-step step explains: DDIM with η = 1 (DDPM's amount of fresh noise) in 20 steps.
pub fn sampling_step_sampler() -> Sampler {
    Sampler::ddim(20, 1.0)
}

/// Where each step starts the Forward process panel's t (of T = 1000).
const FORWARD_T: usize = 100;
const POSTERIOR_T: usize = 500;

impl LabApp {
    /// Opens the tour at its first step, remembering the window as it is.
    pub fn start_tour(&mut self) {
        if !self.tour.open {
            self.tour.before = Some(Before {
                settings: self.ctx.settings.clone(),
                page: self.page,
                forward_open: self.forward.open,
                forward_t: self.forward.t,
                compare_mode: self.compare.mode,
                decided_branch_class: self.compare.decided.branch_class,
            });
        }
        self.tour.open = true;
        self.go_to_tour_step(0);
    }

    /// Leaves the tour: the settings, page and panels the user had before it come back, and the text sizes
    /// presenter mode changed.
    pub fn leave_tour(&mut self, egui_ctx: &eframe::egui::Context) {
        if self.tour.presenter {
            self.set_presenter(egui_ctx, false);
        }
        self.tour.open = false;
        self.ctx.highlight = None;
        if let Some(before) = self.tour.before.take() {
            self.ctx.settings = before.settings;
            self.page = before.page;
            self.forward.open = before.forward_open;
            self.forward.t = before.forward_t;
            self.compare.mode = before.compare_mode;
            self.compare.decided.branch_class = before.decided_branch_class;
        }
    }

    /// Shows step `index`, setting the window as that step needs it (Back and Next come here).
    pub fn go_to_tour_step(&mut self, index: usize) {
        let index = index.min(STEPS.len() - 1);
        self.tour.index = index;
        self.tour.outcome = None;
        self.tour.wrong_tries = 0;
        self.tour.decided_answer = 1;
        let Some(before) = self.tour.before.clone() else { return };
        let id = STEPS[index].id;
        // Every step starts from the user's own settings, so a step's state never depends on the path to it.
        self.ctx.settings = before.settings;
        self.compare.mode = Mode::Single;
        self.compare.decided.branch_class = before.decided_branch_class;
        let settings = &mut self.ctx.settings;
        settings.this_step = false;
        settings.overlay = Overlay::Off;
        settings.quantity = Quantity::Noisy;
        settings.model = built_in(match id {
            StepId::Latent => "latent",
            StepId::Prompts => "fashion-text",
            _ => "fashion",
        });
        settings.schedule = BetaSchedule::cosine(1000);
        settings.guidance_interval = None;
        settings.guidance_method = Default::default();
        self.page = match id {
            StepId::Lab2d | StepId::Recipes | StepId::ExactAnswers => Page::Lab2d,
            _ => Page::Generate,
        };
        self.forward.open =
            matches!(id, StepId::Forward | StepId::ClosedForm | StepId::Schedule | StepId::Posterior | StepId::Loss);
        self.ctx.highlight = Some(self.set_step_state(id));
        self.presenter_zoom_now();
        if self.forward.open && self.forward.x0.is_none() {
            self.forward.load_test_image(&mut self.ctx);
        }
    }

    /// The settings and panels step `id` changes from the user's own, and the control it rings.
    fn set_step_state(&mut self, id: StepId) -> Highlight {
        let settings = &mut self.ctx.settings;
        match id {
            StepId::Forward => {
                self.forward.t = 1;
                Highlight::ForwardT
            }
            StepId::ClosedForm => {
                self.forward.t = FORWARD_T;
                Highlight::ForwardT
            }
            StepId::Schedule => {
                settings.schedule =
                    BetaSchedule { beta_end: crate::tour::SCHEDULE_START_BETA_END, ..BetaSchedule::linear(1000) };
                self.forward.t = 1000;
                Highlight::Schedule
            }
            StepId::Posterior | StepId::Loss => {
                self.forward.t = POSTERIOR_T;
                self.forward.posterior.force_open = true;
                Highlight::Posterior
            }
            StepId::SamplingStep => {
                settings.sampler = sampling_step_sampler();
                settings.this_step = true;
                Highlight::ThisStep
            }
            StepId::Sampler => {
                settings.sampler = Sampler::ddim(50, 1.0);
                Highlight::Sampler
            }
            StepId::CrossAttention => {
                // Attention to a class needs a class: the user's, else the first.
                settings.class = settings.class.or(Some(0));
                settings.overlay = Overlay::Attention;
                settings.attention.summed = false;
                Highlight::Attention
            }
            StepId::Guidance => {
                settings.class = settings.class.or(Some(0));
                settings.overlay = Overlay::Guidance;
                settings.guidance = 3.0;
                Highlight::Guidance
            }
            StepId::Decided => {
                settings.class = Some(crate::tour::DECIDED_CLASS);
                settings.guidance = 3.0;
                self.compare.mode = Mode::Decided;
                self.compare.decided.branch_class = Some(crate::tour::DECIDED_BRANCH_CLASS);
                Highlight::Compare
            }
            StepId::Latent => Highlight::Quantity,
            StepId::Prompts => {
                settings.prompt.clear();
                settings.negative_prompt.clear();
                Highlight::Prompt
            }
            StepId::Lab2d => Highlight::Lab2dTraining,
            StepId::Recipes => Highlight::Lab2dRecipes,
            StepId::ExactAnswers => Highlight::Lab2dSolver,
        }
    }
}
