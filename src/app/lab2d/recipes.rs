//! [`RecipesPanel`]: training recipes side by side. Pick two to four recipes (what the network predicts and
//! how its noise levels are weighted), train them on the page's data from the same seed (on the engine's
//! thread, one after the other), and compare how straight their particles travel and how close they land
//! to the data at 1, 2, 4, 8 and 20 steps (`lab2d::recipes`): the "Recipes" section of the left column, and
//! the straightness, the step table, the plot and the paths in the middle.

use std::sync::Arc;

use eframe::egui::{self, Color32, Stroke};
use egui_plot::{GridMark, HLine, Legend, Line, LineStyle, Plot, PlotPoints};

use super::plot::{Canvas, color32};
use crate::app::context::PanelContext;
use crate::diffusion::{Objective, Weighting};
use crate::engine::lab2d::Lab2dCommand;
use crate::lab2d::data::PointData;
use crate::lab2d::recipes::{
    ComparisonSettings, MAX_RECIPES, RecipeReport, STEP_COUNTS, STRAIGHTNESS_NAME, STRAIGHTNESS_STEPS, StepSpacing,
};
use crate::lab2d::recipes_figure::recipe_color;
use crate::train::recipe::{Recipe, usual_weighting};

/// Paths drawn in each recipe's small plot.
const PATHS_SHOWN: usize = 120;

/// Recipe `index`'s colour on the page (the files' colours; the exact denoiser's light, for the dark theme).
fn color(index: Option<usize>) -> Color32 {
    index.map_or(Color32::from_gray(175), |i| color32(recipe_color(Some(i))))
}

/// Where the comparison stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecipesPhase {
    Empty,
    Training,
    Stopped,
    /// Every recipe has trained and was measured.
    Done,
}

/// One compared recipe's training and measurement as the page knows them.
#[derive(Clone, Debug, Default)]
pub struct RecipeProgress {
    pub step: u64,
    pub planned: u64,
    pub loss: f64,
    pub report: Option<Arc<RecipeReport>>,
}

pub struct RecipesPanel {
    /// The recipes the next comparison trains (2 to [`MAX_RECIPES`]).
    pub recipes: Vec<Recipe>,
    /// Training steps of each.
    pub steps: u64,
    /// The spacing every recipe is also measured with.
    pub common: StepSpacing,
    pub phase: RecipesPhase,
    /// The comparison on screen: its key, its recipes and settings, each one's progress.
    key: u64,
    pub compared: Vec<(Recipe, RecipeProgress)>,
    settings: ComparisonSettings,
    pub floor: Option<f64>,
    pub exact: Option<Arc<RecipeReport>>,
}

impl Default for RecipesPanel {
    fn default() -> Self {
        Self {
            recipes: vec![Recipe::usual(Objective::Eps), Recipe::usual(Objective::Flow)],
            steps: 1000,
            common: StepSpacing::DEFAULT_COMMON,
            phase: RecipesPhase::Empty,
            key: 0,
            compared: Vec::new(),
            settings: ComparisonSettings::default(),
            floor: None,
            exact: None,
        }
    }
}

/// "eps", and the longer line of the picker: "eps — ε (the noise)".
fn objective_option(objective: Objective) -> String {
    format!("{} — {}", objective.name(), objective.label())
}

impl RecipesPanel {
    /// Whether every compared recipe has been measured.
    pub fn is_done(&self) -> bool {
        self.phase == RecipesPhase::Done
    }

    /// The compared recipes whose networks have trained, as (index, label): the field can show theirs.
    pub fn trained(&self) -> Vec<(usize, String)> {
        let done = |(i, (r, p)): (usize, &(Recipe, RecipeProgress))| p.report.as_ref().map(|_| (i, r.label()));
        self.compared.iter().enumerate().filter_map(done).collect()
    }

    /// The training step recipe `index`'s network reached.
    pub fn step_of(&self, index: usize) -> u64 {
        self.compared.get(index).map_or(0, |(_, p)| p.step)
    }

    /// Starts a comparison of the chosen recipes on `data` from `seed` (what the last one measured is
    /// forgotten).
    pub fn start(&mut self, ctx: &mut PanelContext, data: PointData, seed: u64) {
        self.key += 1;
        self.settings =
            ComparisonSettings { schedule: ctx.settings.schedule, common: self.common, ..Default::default() };
        self.compared = self.recipes.iter().map(|r| (*r, RecipeProgress::default())).collect();
        self.floor = None;
        self.exact = None;
        self.phase = RecipesPhase::Training;
        ctx.engine.lab2d(Lab2dCommand::CompareRecipes {
            key: self.key,
            data,
            recipes: self.recipes.clone(),
            steps: self.steps,
            seed,
            settings: self.settings,
        });
    }

    /// The comparison began: its floor and the exact denoiser's measures.
    pub fn on_started(&mut self, key: u64, floor: f64, exact: Arc<RecipeReport>) {
        if key == self.key {
            self.floor = Some(floor);
            self.exact = Some(exact);
        }
    }

    pub fn on_progress(&mut self, key: u64, index: usize, step: u64, planned: u64, loss: f64) {
        if let Some((_, p)) = self.compared.get_mut(index).filter(|_| key == self.key) {
            (p.step, p.planned, p.loss) = (step, planned, loss);
        }
    }

    /// Recipe `index` was measured (its recipe as trained: EDM's σ_data measured); the comparison is done
    /// when every one was.
    pub fn on_measured(&mut self, ctx: &mut PanelContext, key: u64, index: usize, report: Arc<RecipeReport>) {
        let Some((recipe, p)) = self.compared.get_mut(index).filter(|_| key == self.key) else { return };
        *recipe = report.recipe.unwrap_or(*recipe);
        p.report = Some(report);
        if self.compared.iter().all(|(_, p)| p.report.is_some()) {
            self.phase = RecipesPhase::Done;
            ctx.set_status(format!("2-D lab: {} recipes trained and measured", self.compared.len()), false);
        }
    }

    /// The engine's training stopped (it failed): the comparison will not go on.
    pub fn on_stopped(&mut self) {
        if self.phase == RecipesPhase::Training {
            self.phase = RecipesPhase::Stopped;
        }
    }

    pub fn on_failed(&mut self, ctx: &mut PanelContext, key: u64, message: &str) {
        if key == self.key {
            self.phase = RecipesPhase::Stopped;
            ctx.set_status(format!("2-D lab, recipes: {message}"), true);
        }
    }

    /// The "Recipes side by side" section of the left column; true when "Train side by side" was pressed
    /// (offered when `can_start`: there is data).
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext, can_start: bool) -> bool {
        ui.heading("Recipes side by side");
        ui.weak("Each network trains on this data from the same seed; then all are measured the same way.");
        let mut remove = None;
        for (i, recipe) in self.recipes.iter_mut().enumerate() {
            ui.horizontal(|ui| {
                ui.label(egui::RichText::new(format!("Recipe {}", i + 1)).color(color(Some(i))));
                if ui.small_button(format!("Remove recipe {}", i + 1)).clicked() {
                    remove = Some(i);
                }
            });
            recipe_ui(ui, &format!(" {}", i + 1), recipe);
        }
        if let Some(i) = remove.filter(|_| self.recipes.len() > 2) {
            self.recipes.remove(i);
        }
        if self.recipes.len() < MAX_RECIPES && ui.button("Add recipe").clicked() {
            self.recipes.push(Recipe::usual(Objective::V));
        }
        ui.add(egui::Slider::new(&mut self.steps, 100..=10_000).logarithmic(true).text("Steps per recipe"));
        egui::ComboBox::from_label("Common spacing").selected_text(self.common.to_string()).show_ui(ui, |ui| {
            for spacing in StepSpacing::ALL {
                ui.selectable_value(&mut self.common, spacing, spacing.to_string());
            }
        });
        let start = ui
            .horizontal(|ui| {
                if self.phase == RecipesPhase::Training && ui.button("Stop recipes").clicked() {
                    ctx.engine.lab2d(Lab2dCommand::StopRecipes);
                    self.phase = RecipesPhase::Stopped;
                }
                ui.add_enabled(can_start, egui::Button::new("Train side by side")).clicked()
            })
            .inner;
        for (i, (recipe, p)) in self.compared.iter().enumerate() {
            let state = match &p.report {
                Some(_) => "trained and measured".to_string(),
                None if p.planned == 0 => "waiting".to_string(),
                None => format!("step {} of {}, loss {:.4}", p.step, p.planned, p.loss),
            };
            ui.label(format!("{}. {}: {state}", i + 1, recipe.label()));
        }
        start
    }
}

/// A recipe's objective and weighting (γ of min-SNR when it is chosen), the pickers labelled "Objective"
/// and "Weighting" followed by `suffix`.
pub(super) fn recipe_ui(ui: &mut egui::Ui, suffix: &str, recipe: &mut Recipe) {
    let before = recipe.objective;
    egui::ComboBox::from_label(format!("Objective{suffix}")).selected_text(recipe.objective.name()).show_ui(ui, |ui| {
        for objective in Objective::ALL {
            ui.selectable_value(&mut recipe.objective, objective, objective_option(objective));
        }
    });
    if recipe.objective != before && recipe.weighting == usual_weighting(before) {
        recipe.weighting = usual_weighting(recipe.objective);
    }
    egui::ComboBox::from_label(format!("Weighting{suffix}")).selected_text(recipe.weighting.name()).show_ui(ui, |ui| {
        for weighting in Weighting::CHOICES {
            let chosen = std::mem::discriminant(&recipe.weighting) == std::mem::discriminant(&weighting);
            if ui.selectable_label(chosen, format!("{} — {}", weighting.name(), weighting.label())).clicked() {
                recipe.weighting = weighting;
            }
        }
    });
    if let Weighting::MinSnr { gamma } = &mut recipe.weighting {
        ui.add(egui::DragValue::new(gamma).range(0.1..=100.0).speed(0.1).prefix("γ = "));
    }
}

impl RecipesPanel {
    /// The middle's comparison: the straightness, the step table, the plot of distance against steps and
    /// each recipe's paths (over the `data`'s points), once a comparison has begun.
    pub fn results_ui(&self, ui: &mut egui::Ui, data: Option<&PointData>) {
        if self.phase == RecipesPhase::Empty {
            return;
        }
        ui.separator();
        ui.heading("Recipes side by side");
        let reports: Vec<(Option<usize>, String, &RecipeReport)> = self
            .compared
            .iter()
            .enumerate()
            .filter_map(|(i, (_, p))| p.report.as_deref().map(|report| (Some(i), report.short_label(), report)))
            .chain(self.exact.as_deref().map(|e| (None, e.short_label(), e)))
            .collect();
        self.straightness_ui(ui, &reports);
        self.table_ui(ui, &reports);
        self.plot_ui(ui, &reports);
        paths_ui(ui, &reports, data);
    }

    fn straightness_ui(&self, ui: &mut egui::Ui, reports: &[(Option<usize>, String, &RecipeReport)]) {
        ui.label(format!(
            "Straightness, {STRAIGHTNESS_NAME}, over flow time t = σ/(α+σ), {STRAIGHTNESS_STEPS} DDIM η = 0 steps \
             uniform in t: L/D = Σ_i Σ_k |y_i,k+1 - y_i,k| / Σ_i |y_i,N - y_i,0|; S = ∫ E|dy/dt - (y_N - y_0)|² dt \
             (Liu et al. 2022)"
        ));
        let numbers: Vec<String> = reports
            .iter()
            .map(|(_, label, r)| {
                format!("{label}: L/D = {:.4}, S = {:.4}", r.straightness.length_ratio, r.straightness.rectified_flow)
            })
            .collect();
        ui.label(numbers.join("; "));
        ui.weak(
            "How far each particle travels on its way from the noise to the data, against the straight line between \
             its ends: 1 (and S = 0) when every particle goes straight. Every recipe with the same noise process \
             learns the same paths; what differs is how well it learned them.",
        );
    }

    /// The step table: sliced W₂ at each step count, the usual spacing's and the common one's.
    fn table_ui(&self, ui: &mut egui::Ui, reports: &[(Option<usize>, String, &RecipeReport)]) {
        let floor = self.floor.unwrap_or(f64::NAN);
        ui.label(format!(
            "Sliced W₂ to the data, DDIM η = 0 from the same x_T, usual spacing / common spacing ({}): \
             SW₂(P, Q)² = mean over 64 directions θ of W₂(θ·P, θ·Q)²; floor (fresh draws of the data) = {floor:.4}",
            self.settings.common
        ));
        egui::Grid::new("recipes step table").striped(true).show(ui, |ui| {
            ui.strong("recipe");
            ui.strong("usual spacing");
            for steps in STEP_COUNTS {
                ui.strong(format!("{steps} step{}", if steps == 1 { "" } else { "s" }));
            }
            ui.end_row();
            for (index, label, report) in reports {
                ui.label(egui::RichText::new(label).color(color(*index)));
                ui.label(report.usual.to_string());
                for d in &report.distances {
                    ui.label(format!("{:.3} / {:.3}", d.usual, d.common));
                }
                ui.end_row();
            }
        });
        ui.weak(
            "How far the samples land from the data, in the plane's units, after that many steps: at the floor they \
             are as close as another draw of the data itself. Few steps cost the most where the paths bend.",
        );
    }

    /// Distance against log₂ steps, a line per recipe (the usual spacing solid, the common one dashed and
    /// left out of the legend) and the floor.
    fn plot_ui(&self, ui: &mut egui::Ui, reports: &[(Option<usize>, String, &RecipeReport)]) {
        let x = |steps: usize| (steps as f64).log2();
        ui.label(format!(
            "Sliced W₂ against steps: solid, each recipe's usual spacing; dashed, the common one ({}); gray, the floor",
            self.settings.common
        ));
        Plot::new("recipes distance by steps")
            .width(ui.available_width().clamp(300.0, 560.0))
            .height(240.0)
            .include_y(0.0)
            .legend(Legend::default())
            .x_axis_label("steps")
            .y_axis_label("sliced W₂")
            .x_grid_spacer(move |_| STEP_COUNTS.iter().map(|&n| GridMark { value: x(n), step_size: 1.0 }).collect())
            .x_axis_formatter(|mark, _| format!("{:.0}", mark.value.exp2()))
            .show(ui, |plot| {
                for (index, label, report) in reports {
                    let color = color(*index);
                    let usual: Vec<[f64; 2]> = report.distances.iter().map(|d| [x(d.steps), d.usual]).collect();
                    let common: Vec<[f64; 2]> = report.distances.iter().map(|d| [x(d.steps), d.common]).collect();
                    plot.line(Line::new(label.clone(), PlotPoints::from(usual)).color(color).width(2.0));
                    plot.line(Line::new("", PlotPoints::from(common)).color(color).style(LineStyle::dashed_dense()));
                }
                if let Some(floor) = self.floor {
                    plot.hline(HLine::new("floor", floor).color(Color32::GRAY));
                }
            });
    }
}

/// Each recipe's paths in y = x/(α+σ) over the data, a small plot each.
fn paths_ui(ui: &mut egui::Ui, reports: &[(Option<usize>, String, &RecipeReport)], data: Option<&PointData>) {
    ui.horizontal_wrapped(|ui| {
        for (index, label, report) in reports {
            ui.vertical(|ui| {
                let canvas = Canvas::small(ui, 150.0, data);
                let frames = &report.paths.frames;
                let stroke = Stroke::new(0.6, color(*index).gamma_multiply(0.35));
                for i in 0..frames.first().map_or(0, |f| f.len().min(PATHS_SHOWN)) {
                    let points: Vec<_> =
                        frames.iter().step_by(4).chain(frames.last()).map(|f| canvas.at32(f[i])).collect();
                    canvas.painter.add(egui::Shape::line(points, stroke));
                }
                canvas.border();
                ui.label(format!("{label}: L/D {:.3}", report.straightness.length_ratio));
            });
        }
    });
}
