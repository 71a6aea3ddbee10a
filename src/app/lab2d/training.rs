//! [`TrainingPanel`]: the lab's training on the engine's thread as the page sees it (where it stands, its
//! loss and the samples' distance to the data over the steps), its controls (the recipe among them) and its
//! curves.

use eframe::egui::{self, Color32};
use egui_plot::{Legend, Line, Plot, PlotPoints};

use crate::app::context::PanelContext;
use crate::diffusion::Weighting;
use crate::engine::lab2d::Lab2dCommand;
use crate::lab2d::Distances;
use crate::lab2d::data::PointData;
use crate::lab2d::run::target_symbol;
use crate::model::point_mlp::PointDenoiserConfig;
use crate::train::points::default_point_train_config;
use crate::train::recipe::Recipe;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LabPhase {
    /// No session: nothing trained yet.
    Empty,
    Training,
    Paused,
    /// The planned steps are done.
    Trained,
}

pub struct TrainingPanel {
    /// The steps the next training plans.
    pub steps: u64,
    /// The recipe the next training uses.
    pub recipe: Recipe,
    /// The recipe of the training on screen.
    trained: Recipe,
    pub phase: LabPhase,
    /// The training step reached.
    pub step: u64,
    planned: u64,
    steps_per_second: f64,
    /// (step, loss) of every step.
    pub losses: Vec<[f64; 2]>,
    /// The samples' distance to the data, measured now and then during training.
    pub distances: Vec<(u64, Distances)>,
}

impl Default for TrainingPanel {
    fn default() -> Self {
        Self {
            steps: 2000,
            recipe: Recipe::default(),
            trained: Recipe::default(),
            phase: LabPhase::Empty,
            step: 0,
            planned: 0,
            steps_per_second: 0.0,
            losses: Vec::new(),
            distances: Vec::new(),
        }
    }
}

impl TrainingPanel {
    /// Starts a fresh network on `data` (drawn with `seed`) and forgets the curves of the last one.
    pub fn start(&mut self, ctx: &mut PanelContext, data: PointData, seed: u64) {
        let config =
            default_point_train_config().with_steps(self.steps).with_seed(seed).with_weighting(self.recipe.weighting);
        ctx.engine.lab2d(Lab2dCommand::Start {
            data,
            config,
            model: PointDenoiserConfig::new().with_objective(self.recipe.objective),
            schedule: ctx.settings.schedule,
        });
        self.trained = self.recipe;
        self.phase = LabPhase::Training;
        self.step = 0;
        self.planned = self.steps;
        self.losses.clear();
        self.distances.clear();
    }

    /// Training went on; the status says so when it has reached its planned steps.
    pub fn on_progress(
        &mut self,
        ctx: &mut PanelContext,
        step: u64,
        planned: u64,
        losses: &[(u64, f64)],
        distance: Option<(u64, Distances)>,
        steps_per_second: f64,
    ) {
        self.step = step;
        self.planned = planned;
        // Averaged over bursts: one burst can be a single step.
        self.steps_per_second = if self.steps_per_second > 0.0 {
            0.8 * self.steps_per_second + 0.2 * steps_per_second
        } else {
            steps_per_second
        };
        self.losses.extend(losses.iter().map(|(s, l)| [*s as f64, *l]));
        if let Some(d) = distance {
            self.distances.push(d);
        }
        if step >= planned && self.phase == LabPhase::Training {
            self.phase = LabPhase::Trained;
            ctx.set_status(format!("2-D lab: trained {step} steps"), false);
        }
    }

    /// The engine stopped the training (it failed).
    pub fn on_stopped(&mut self) {
        if self.phase == LabPhase::Training {
            self.phase = LabPhase::Paused;
        }
    }

    /// The "Train" section of the left column. "Start training" is offered when `can_start` (there is data)
    /// and calls `start`, which starts a fresh network (the page's other parts forget the last one too).
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        ctx: &mut PanelContext,
        can_start: bool,
        start: impl FnOnce(&mut Self, &mut PanelContext),
    ) {
        ui.heading("Train");
        ui.add(egui::Slider::new(&mut self.steps, 200..=20_000).logarithmic(true).text("Training steps"))
            .on_hover_text("Optimizer steps, each on 256 points (AdamW, warm-up, cosine decay, EMA: the image recipe)");
        super::recipes::recipe_ui(ui, "", &mut self.recipe);
        ui.horizontal(|ui| {
            if ui
                .add_enabled(can_start, egui::Button::new("Start training"))
                .on_hover_text("Train a fresh network on this data")
                .clicked()
            {
                start(self, ctx);
            }
            self.pause_ui(ui, ctx);
        });
        self.progress_ui(ui);
    }

    /// Pause or Continue, while there is a training.
    fn pause_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        match self.phase {
            LabPhase::Training => {
                if ui.button("Pause training").clicked() {
                    ctx.engine.lab2d(Lab2dCommand::SetTraining(false));
                    self.phase = LabPhase::Paused;
                }
            }
            LabPhase::Paused => {
                if ui.button("Continue training").clicked() {
                    ctx.engine.lab2d(Lab2dCommand::SetTraining(true));
                    self.phase = LabPhase::Training;
                }
            }
            LabPhase::Empty | LabPhase::Trained => {}
        }
    }

    /// The step reached, the speed and the recent loss.
    fn progress_ui(&self, ui: &mut egui::Ui) {
        if self.phase == LabPhase::Empty {
            return;
        }
        ui.label(format!("step {} of {} ({:.0} steps/s)", self.step, self.planned, self.steps_per_second));
        let recent: Vec<f64> = self.losses.iter().rev().take(50).map(|p| p[1]).collect();
        if !recent.is_empty() {
            let mean = recent.iter().sum::<f64>() / recent.len() as f64;
            let s = target_symbol(self.trained.objective);
            let weight = match self.trained.weighting {
                Weighting::Plain => String::new(),
                w => format!(" × w(λ)/w_O(λ), {}", w.label()),
            };
            ui.label(format!("L = E||{s} - {s}_θ(x_t, λ, y)||²{weight} = {mean:.4} (last {} steps)", recent.len()));
            ui.weak(format!(
                "How far the network's guess of {} is from the truth, averaged over noise levels.",
                self.trained.objective.label()
            ));
        }
    }

    /// The loss and distance curves beside the plot (`side` its size).
    pub fn curves_ui(&self, ui: &mut egui::Ui, side: f32) {
        let height = (side / 2.0 - 30.0).max(80.0);
        ui.label("Loss L per step");
        Plot::new("lab2d loss")
            .height(height)
            .width(ui.available_width().max(200.0))
            .include_y(0.0)
            .x_axis_label("step")
            .show(ui, |plot| {
                plot.line(Line::new("loss", PlotPoints::from(thinned(&self.losses))).color(Color32::from_gray(120)));
            });
        ui.label("Distance of samples to the data over training");
        let sw: Vec<[f64; 2]> = self.distances.iter().map(|(s, d)| [*s as f64, d.sliced_wasserstein]).collect();
        Plot::new("lab2d distance")
            .height(height)
            .width(ui.available_width().max(200.0))
            .include_y(0.0)
            .legend(Legend::default())
            .x_axis_label("step")
            .show(ui, |plot| {
                plot.line(
                    Line::new("sliced W₂ (DPM++ 20, 500 points)", PlotPoints::from(sw))
                        .color(Color32::LIGHT_BLUE)
                        .width(2.0),
                );
            });
    }
}

/// At most about 2000 points of a curve (every k-th), so long runs plot quickly.
fn thinned(points: &[[f64; 2]]) -> Vec<[f64; 2]> {
    let stride = points.len().div_ceil(2000).max(1);
    points.iter().step_by(stride).copied().collect()
}

#[cfg(test)]
mod tests {
    use super::thinned;

    #[test]
    fn a_long_curve_is_thinned_to_about_2000_points_and_a_short_one_kept() {
        let short: Vec<[f64; 2]> = (0..1500).map(|i| [f64::from(i), 0.0]).collect();
        assert_eq!(thinned(&short), short);
        let long: Vec<[f64; 2]> = (0..20_001).map(|i| [f64::from(i), 0.0]).collect();
        let kept = thinned(&long);
        assert!(kept.len() <= 2000 && kept.len() > 1500, "{} kept", kept.len());
        assert_eq!(kept[0], long[0]);
    }
}
