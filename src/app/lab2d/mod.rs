//! `Lab2dPanel`, the "2-D lab" page: diffusion on points of the plane. Pick a preset or draw points with
//! the mouse (a class per colour), train the point network live on the engine's thread, and watch: the
//! data's cloud x_t at any t, the learned field (ε̂ or the score) beside the exact one and their error,
//! particles flowing from x_T ~ N(0, I) to the data with any sampler, guidance in 2-D, and the distance of
//! the samples to the data over training and across step counts. Any recipe (objective and weighting)
//! trains, and two to four recipes train side by side to be compared.
//!
//! The page is made of parts, each owning its state and drawing its section of the left column and its layer
//! of the plot: [`DataPanel`] (data.rs), [`TrainingPanel`] (training.rs), [`FieldPanel`] (field.rs),
//! [`ParticlesPanel`] (particles.rs), [`LikelihoodPanel`] (likelihood.rs), [`RecipesPanel`] (recipes.rs: its
//! results below the plot), [`SolverPanel`] (solver.rs: the solver bench, its results below the plot too) and
//! [`GuidancePanel`] (guidance.rs: the guidance methods against the exact p(x|y), its results below too).
//! [`Lab2dPanel`] composes them: it hands each engine event to its part and does what spans parts (starting
//! a training, asking for the field). plot.rs draws the plot, export.rs the PNG and GIF, latest.rs keeps the
//! requests on their way to the engine.

use eframe::egui;

use super::context::{Highlight, PaintTimes, PanelContext};
use crate::diffusion::NoiseLevel;
use crate::diffusion::mixture::Point;
use crate::engine::lab2d::{Lab2dEvent, LabNetwork};

mod data;
mod export;
mod field;
mod guidance;
mod latest;
mod likelihood;
mod particles;
mod plot;
mod recipes;
mod solver;
mod training;

pub use data::{DataChoice, DataPanel};
pub use field::{Branch, FieldPanel, FieldView};
pub use guidance::{GuidancePanel, GuidancePhase};
pub use likelihood::{LikelihoodPanel, formula_line as likelihood_formula_line};
pub use particles::ParticlesPanel;
pub use recipes::{RecipeProgress, RecipesPanel, RecipesPhase};
pub use solver::{SolverPanel, SolverPhase};
pub use training::{LabPhase, TrainingPanel};

#[derive(Default)]
pub struct Lab2dPanel {
    pub data: DataPanel,
    pub training: TrainingPanel,
    pub field: FieldPanel,
    pub particles: ParticlesPanel,
    pub recipes: RecipesPanel,
    pub guidance: GuidancePanel,
    pub likelihood: LikelihoodPanel,
    pub solver: SolverPanel,
    /// UI frame times while the lab trains or plays.
    pub paint_times: PaintTimes,
}

/// Rings the section drawn since `top` (its full width) when the Tour's step talks about it.
fn mark_since(ui: &egui::Ui, ctx: &PanelContext, top: egui::Pos2, what: Highlight) {
    let rect = egui::Rect::from_min_max(
        egui::pos2(ui.max_rect().left(), top.y),
        egui::pos2(ui.max_rect().right(), ui.cursor().min.y),
    );
    ctx.mark(ui, rect, what);
}

impl Lab2dPanel {
    pub fn is_training(&self) -> bool {
        self.training.phase == LabPhase::Training
    }

    /// Whether the page is animating (training or particles playing): frames are timed then.
    pub fn is_busy(&self) -> bool {
        self.is_training() || self.particles.playing || self.recipes.phase == RecipesPhase::Training
    }

    /// Whether a learned field has arrived.
    pub fn has_field(&self) -> bool {
        self.field.has_result()
    }

    pub fn has_particles(&self) -> bool {
        self.particles.run.is_some()
    }

    /// Where the last particle run ended (x_0 of every particle).
    pub fn particle_samples(&self) -> Vec<Point> {
        self.particles.run.as_ref().map_or_else(Vec::new, |p| p.run.samples())
    }

    pub fn on_event(&mut self, ctx: &mut PanelContext, event: Lab2dEvent) {
        match event {
            Lab2dEvent::Started { description, parameters, classes } => {
                ctx.set_status(
                    format!("2-D lab: training an MLP of {parameters} weights on {description} ({classes} class(es))"),
                    false,
                );
            }
            Lab2dEvent::Progress { step, planned, losses, distance, steps_per_second } => {
                self.training.on_progress(ctx, step, planned, &losses, distance, steps_per_second);
            }
            Lab2dEvent::Field { key, request, network, objective, learned, truth, step } => {
                self.field.on_field(key, field::FieldResult { request, network, objective, learned, truth, step });
            }
            Lab2dEvent::RecipesStarted { key, floor, exact } => self.recipes.on_started(key, floor, exact),
            Lab2dEvent::RecipeProgress { key, index, step, planned, loss } => {
                self.recipes.on_progress(key, index, step, planned, loss);
            }
            Lab2dEvent::RecipeMeasured { key, index, report } => self.recipes.on_measured(ctx, key, index, report),
            Lab2dEvent::RecipesFailed { key, message } => self.recipes.on_failed(ctx, key, &message),
            Lab2dEvent::SolverBenched { key, bench } => self.solver.on_benched(ctx, key, bench),
            Lab2dEvent::SolverBenchFailed { key, message } => self.solver.on_failed(ctx, key, &message),
            Lab2dEvent::GuidanceBenched { key, bench, step } => self.guidance.on_benched(ctx, key, bench, step),
            Lab2dEvent::GuidanceBenchFailed { key, message } => self.guidance.on_failed(ctx, key, &message),
            Lab2dEvent::Particles { key, run, distances, floor, step } => {
                self.particles.on_particles(key, run, (distances, floor), step, self.data.current());
            }
            Lab2dEvent::Compared { key, rows, step } => self.particles.on_compared(key, rows, step),
            Lab2dEvent::Likelihood { key, report } => self.likelihood.on_likelihood(ctx, key, report),
            Lab2dEvent::LikelihoodFailed { key, message } => self.likelihood.on_failed(ctx, key, &message),
            Lab2dEvent::Failed { message, training_stopped } => {
                self.field.on_failed();
                self.likelihood.on_any_failure();
                if training_stopped {
                    // The engine's training failed: the session's and the comparison's (one panic ends both).
                    self.training.on_stopped();
                    self.recipes.on_stopped();
                }
                ctx.set_status(format!("2-D lab: {message}"), true);
            }
        }
    }

    /// The left column: data, training, what to watch, particles, export.
    pub fn panel_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        self.data.ensure_made();
        self.data.ui(ui);
        ui.separator();
        let (data, field, particles, paint_times, likelihood) =
            (&mut self.data, &mut self.field, &mut self.particles, &mut self.paint_times, &mut self.likelihood);
        let top = ui.cursor().min;
        self.training.ui(ui, ctx, data.current().is_some(), |training, ctx| {
            // A fresh network on the data made afresh; every part forgets the last network's work.
            data.refresh();
            let Some(points) = data.current().cloned() else {
                let message = data.error().unwrap_or_default();
                return ctx.set_status(format!("2-D lab: {message}"), true);
            };
            particles.clear(points.class_count);
            training.start(ctx, points, data.seed);
            field.clear();
            likelihood.clear();
            *paint_times = PaintTimes::default();
        });
        mark_since(ui, ctx, top, Highlight::Lab2dTraining);
        ui.separator();
        self.field.ui(ui, ctx, self.data.class_count(), &self.recipes.trained());
        ui.separator();
        let ready = self.training.phase != LabPhase::Empty;
        self.particles.ui(ui, ctx, self.data.class_count(), ready);
        ui.separator();
        self.likelihood.ui(ui, ctx, ready);
        ui.separator();
        let top = ui.cursor().min;
        let compare = self.recipes.ui(ui, ctx, self.data.current().is_some());
        mark_since(ui, ctx, top, Highlight::Lab2dRecipes);
        if compare {
            self.start_recipes(ctx);
        }
        ui.separator();
        let top = ui.cursor().min;
        let bench = self.solver.ui(ui, ctx, self.data.current().is_some());
        mark_since(ui, ctx, top, Highlight::Lab2dSolver);
        if bench {
            self.data.refresh();
            match self.data.current().cloned() {
                Some(points) => self.solver.start(ctx, points),
                None => ctx.set_status(format!("2-D lab: {}", self.data.error().unwrap_or_default()), true),
            }
        }
        ui.separator();
        if self.guidance.ui(ui, ctx, self.data.class_count(), self.training.phase != LabPhase::Empty) {
            self.guidance.start(ctx, self.training.steps);
        }
        ui.separator();
        self.export_ui(ui, ctx);
        self.request_field(ctx);
    }

    /// Trains the chosen recipes side by side on the data made afresh; the field of an old comparison's
    /// network is gone with it.
    fn start_recipes(&mut self, ctx: &mut PanelContext) {
        self.data.refresh();
        let Some(points) = self.data.current().cloned() else {
            let message = self.data.error().unwrap_or_default();
            return ctx.set_status(format!("2-D lab: {message}"), true);
        };
        self.field.network = LabNetwork::Session;
        self.recipes.start(ctx, points, self.data.seed);
    }

    /// Asks for the field when there is a network, at the level it is drawn at: the particles' (the level
    /// the step on screen starts from) when it follows them, else the t slider's.
    fn request_field(&mut self, ctx: &PanelContext) {
        let step = match self.field.network {
            LabNetwork::Session if self.training.phase == LabPhase::Empty => return,
            LabNetwork::Session => self.training.step,
            LabNetwork::Recipe(i) => self.recipes.step_of(i),
        };
        let level: Option<NoiseLevel> = match self.particles.followed_level() {
            Some(followed) => followed,
            None => self.field.level(ctx),
        };
        let Some(level) = level else { return };
        let (class, w) = (self.particles.class, self.particles.guidance);
        self.field.request(ctx, level, class, w, step);
    }

    /// The middle: the plot, then the loss and distance curves, the step comparison and the recipes'
    /// comparison (scrolled when they do not fit).
    pub fn centre_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        self.particles.advance_playback(ui.ctx());
        let available = ui.available_size();
        let side = (available.y - 200.0).min(available.x * 0.62).max(200.0);
        egui::ScrollArea::vertical().show(ui, |ui| {
            ui.horizontal_top(|ui| {
                self.plot_ui(ui, ctx, side);
                ui.vertical(|ui| {
                    self.training.curves_ui(ui, side);
                });
            });
            self.particles.compare_ui(ui, self.data.current());
            self.recipes.results_ui(ui, self.data.current());
            self.solver.results_ui(ui);
            self.guidance.results_ui(ui);
        });
    }
}
