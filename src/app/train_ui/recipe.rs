//! The recipe of the Train view's run (issue 36): what the network predicts and how much each noise level
//! counts, chosen for a new run and shown, read from its checkpoint, for the run a folder holds (a resumed
//! run keeps its own). Beside the choice, what it does: p(λ)·w(λ) over λ, the weight each noise level gets in
//! ε-loss units, for the chosen recipe and the showcase recipes on one axis.

use eframe::egui::{self, Color32};
use egui_plot::{Line, Plot, PlotPoints};

use super::runs::{short_name, swatch_ui};
use super::{Phase, TrainPanel};
use crate::app::context::PanelContext;
use crate::app::train_settings::TrainSettings;
use crate::diffusion::{Objective, Weighting};
use crate::train::ddpm::LogSnrDistribution;
use crate::train::defaults::TRAIN_DEFAULTS;
use crate::train::recipe::{Recipe, showcase, usual_weighting};

/// σ_data in the plot for EDM's weighting before the data is loaded (the trainer measures it on the data).
const PLOT_SIGMA_DATA: f64 = 0.5;

/// Points of each curve over the trained range of λ.
const CURVE_POINTS: usize = 241;

/// The λ at which the chosen recipe's numbers are written out.
const SHOWN_LEVELS: [f64; 3] = [-10.0, 0.0, 5.0];

/// The curves of the recipe plot, made once per (chosen recipe, σ_data).
#[derive(Default)]
pub struct RecipeCurves {
    key: Option<(Recipe, u64)>,
    /// (legend name, log₁₀ p·w over λ, whether it is the chosen recipe).
    lines: Vec<(String, Vec<[f64; 2]>, bool)>,
}

impl RecipeCurves {
    fn lines(&mut self, chosen: Recipe, sigma_data: f64) -> &[(String, Vec<[f64; 2]>, bool)] {
        let key = (chosen, sigma_data.to_bits());
        if self.key != Some(key) {
            let trainer = trainer_distribution();
            let mut lines = vec![(format!("chosen: {}", short_name(chosen)), log_curve(&trainer, chosen), true)];
            for recipe in showcase().into_iter().map(|r| with_sigma(r, sigma_data)).filter(|r| *r != chosen) {
                lines.push((short_name(recipe), log_curve(&trainer, recipe), false));
            }
            self.key = Some(key);
            self.lines = lines;
        }
        &self.lines
    }
}

/// The trainer's own λ distribution (where a weighting keeps it), over the trained range.
fn trainer_distribution() -> LogSnrDistribution {
    LogSnrDistribution::new(TRAIN_DEFAULTS.log_snr_min, TRAIN_DEFAULTS.log_snr_max)
}

/// EDM's σ_data, where it is still to be measured, set for the plot.
fn with_sigma(recipe: Recipe, sigma_data: f64) -> Recipe {
    Recipe { weighting: recipe.weighting.with_measured_sigma_data(sigma_data), ..recipe }
}

/// (λ, log₁₀ p(λ)·w(λ)) over the trained range, where p·w is above 0.
fn log_curve(trainer: &LogSnrDistribution, recipe: Recipe) -> Vec<[f64; 2]> {
    let (low, high) = (TRAIN_DEFAULTS.log_snr_min, TRAIN_DEFAULTS.log_snr_max);
    // Inside the range: the trainer's density holds point masses at its ends.
    let grid: Vec<f64> =
        (0..CURVE_POINTS).map(|i| low + (high - low) * (i as f64 + 0.5) / CURVE_POINTS as f64).collect();
    let weights = recipe.elbo_weights(trainer, &grid);
    grid.iter().zip(weights).filter(|(_, w)| *w > 0.0 && w.is_finite()).map(|(l, w)| [*l, w.log10()]).collect()
}

/// "eps: ε (the noise)".
fn objective_text(objective: Objective) -> String {
    format!("{}: {}", objective.name(), objective.label())
}

/// The weighting combo's text for `weighting` (`None`: the objective's usual one).
fn weighting_text(weighting: Option<Weighting>, objective: Objective) -> String {
    match weighting {
        Some(w) => w.label(),
        None => format!("usual for {}: {}", objective.name(), usual_weighting(objective).label()),
    }
}

/// The objective and weighting pickers (γ, the logit-normal's mean and std where they apply).
pub(super) fn recipe_settings_ui(ui: &mut egui::Ui, train: &mut TrainSettings) {
    egui::ComboBox::from_label("Objective").selected_text(objective_text(train.objective)).show_ui(ui, |ui| {
        for objective in Objective::ALL {
            ui.selectable_value(&mut train.objective, objective, objective_text(objective));
        }
    });
    let objective = train.objective;
    egui::ComboBox::from_label("Weighting").selected_text(weighting_text(train.weighting, objective)).show_ui(
        ui,
        |ui| {
            ui.selectable_value(&mut train.weighting, None, weighting_text(None, objective));
            for choice in Weighting::CHOICES {
                let same_kind =
                    train.weighting.is_some_and(|w| std::mem::discriminant(&w) == std::mem::discriminant(&choice));
                if ui.selectable_label(same_kind, choice.label()).clicked() && !same_kind {
                    train.weighting = Some(choice);
                }
            }
        },
    );
    match &mut train.weighting {
        Some(Weighting::MinSnr { gamma }) => {
            ui.horizontal(|ui| {
                let label = ui.label("min-SNR γ");
                ui.add(egui::DragValue::new(gamma).range(0.1..=1000.0).speed(0.1)).labelled_by(label.id);
            });
        }
        Some(Weighting::FlowLogitNormal { mean, std }) => {
            ui.horizontal(|ui| {
                let label = ui.label("logit-normal mean");
                ui.add(egui::DragValue::new(mean).range(-5.0..=5.0).speed(0.05)).labelled_by(label.id);
                let label = ui.label("std");
                ui.add(egui::DragValue::new(std).range(0.05..=5.0).speed(0.05)).labelled_by(label.id);
            });
        }
        Some(Weighting::Edm { .. }) => {
            ui.small("σ_data is measured on the training data (pixels or latents) when the run starts.");
        }
        _ => {}
    }
}

impl TrainPanel {
    /// The recipe that is not for the pickers to choose: the running run's, or the one the run folder holds
    /// (read from its checkpoint), which a resumed run keeps.
    fn fixed_recipe(&self, ctx: &PanelContext) -> Option<Recipe> {
        let out = ctx.settings.train.out_dir();
        let folder_recipe =
            self.found.as_ref().filter(|(dir, progress)| *dir == out && progress.is_some()).and(self.found_recipe);
        if self.phase != Phase::Idle { self.recipe.or(folder_recipe) } else { folder_recipe }
    }

    /// The recipe: the pickers for a new run, or the fixed recipe, which the pickers show, locked.
    pub(super) fn recipe_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        match self.fixed_recipe(ctx) {
            Some(recipe) => {
                let mut shown = ctx.settings.train.clone();
                (shown.objective, shown.weighting) = (recipe.objective, Some(recipe.weighting));
                ui.add_enabled_ui(false, |ui| recipe_settings_ui(ui, &mut shown));
                ui.label(format!("This run trains {}: resuming it keeps its recipe.", recipe.label()));
            }
            None => {
                let busy = self.phase != Phase::Idle;
                ui.add_enabled_ui(!busy, |ui| recipe_settings_ui(ui, &mut ctx.settings.train));
            }
        }
    }

    /// "What each recipe weights": the shown recipe's p(λ)·w(λ) over the showcase recipes'.
    pub(super) fn recipe_weights_ui(&mut self, ui: &mut egui::Ui, ctx: &PanelContext) {
        let chosen = self.fixed_recipe(ctx).unwrap_or_else(|| ctx.settings.train.recipe());
        let sigma_data =
            self.data.as_ref().map_or(PLOT_SIGMA_DATA, |d| crate::train::recipe::sigma_data_of(&d.preview).max(1e-3));
        egui::CollapsingHeader::new("What each recipe weights").default_open(true).show(ui, |ui| {
            recipe_plot_ui(ui, &mut self.recipe_curves, with_sigma(chosen, sigma_data), sigma_data);
        });
    }
}

/// p(λ)·w(λ) of the chosen recipe over the showcase recipes', on a log scale, with the formula, the chosen
/// recipe's numbers at a few λ and one plain line.
fn recipe_plot_ui(ui: &mut egui::Ui, curves: &mut RecipeCurves, chosen: Recipe, sigma_data: f64) {
    ui.label("L = E_λ~p(λ) [ w(λ) ||ε - ε_θ(x_t, λ)||² ]: noise level λ counts p(λ)·w(λ), in ε-loss units");
    let trainer = trainer_distribution();
    let numbers: Vec<String> = SHOWN_LEVELS
        .iter()
        .map(|&l| {
            let p = chosen.weighting.log_snr_density(l).unwrap_or_else(|| trainer.density(l));
            let w = chosen.weighting.eps_weight(chosen.objective, l);
            format!("λ = {l}: p = {p:.3}, w = {w:.3}, p·w = {:.3}", p * w)
        })
        .collect();
    ui.small(format!("{}: {}", chosen.label(), numbers.join("; ")));
    let lines = curves.lines(chosen, sigma_data);
    let color_of = |i: usize, is_chosen: bool| if is_chosen { Color32::LIGHT_BLUE } else { super::runs::color(i) };
    Plot::new("recipe weights")
        .height(170.0)
        .x_axis_label("λ = ln(ᾱ / (1 - ᾱ))")
        .y_axis_label("log₁₀ p(λ)·w(λ)")
        .allow_drag(false)
        .allow_zoom(false)
        .allow_scroll(false)
        .show(ui, |plot| {
            for (i, (name, points, is_chosen)) in lines.iter().enumerate() {
                let width = if *is_chosen { 3.0 } else { 1.0 };
                plot.line(
                    Line::new(name.as_str(), PlotPoints::from(points.clone()))
                        .color(color_of(i, *is_chosen))
                        .width(width),
                );
            }
        });
    // The legend beside the plot, not over it: the curves fill the plot.
    ui.horizontal_wrapped(|ui| {
        for (i, (name, _, is_chosen)) in lines.iter().enumerate() {
            swatch_ui(ui, color_of(i, *is_chosen), name);
        }
    });
    ui.small(
        "How much training cares about each noise level, on one scale for every recipe: where the curve is \
         high, the network's errors at that level move its weights most.",
    );
    if chosen.weighting.needs_sigma_data() || matches!(chosen.weighting, Weighting::Edm { .. }) {
        ui.small(format!("EDM drawn with σ_data = {sigma_data:.3} (the loaded data's first images)."));
    }
}
