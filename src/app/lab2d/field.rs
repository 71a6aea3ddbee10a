//! [`FieldPanel`]: what the page watches at a noise level, the "Watch" section (the t of the cloud x_t and
//! of the field, which network's field — the session's or a compared recipe's — and what its arrows show:
//! the score, ε̂, or the network's own target against the exact one), the field the engine computed, and
//! its layers of the plot (the error's heat map and the arrows).

use std::sync::Arc;

use eframe::egui::{self, Color32, Rect, Stroke};

use super::latest::Latest;
use super::plot::{Canvas, faded};
use crate::app::context::PanelContext;
use crate::diffusion::NoiseLevel;
use crate::diffusion::Objective;
use crate::engine::lab2d::{Lab2dCommand, LabNetwork};
use crate::lab2d::data::VIEW_BOUND;
use crate::lab2d::figure::{FieldLayer, arrows};
use crate::lab2d::run::{FieldQuantity, FieldRequest, FieldValues, field_error, grid_points, target_symbol};

/// Cells per side of the field's grid.
pub const FIELD_RESOLUTION: usize = 24;
const TRUE_ARROWS: Color32 = Color32::from_rgb(20, 130, 20);
const LEARNED_ARROWS: Color32 = Color32::from_gray(50);

/// What the plot shows of the field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldView {
    None,
    Learned,
    True,
    /// Both arrow sets, the learned in gray over the true in green.
    Both,
    /// |ε̂ - ε*| as a heat map, with the learned arrows.
    Error,
}

impl FieldView {
    const ALL: [FieldView; 5] = [Self::None, Self::Learned, Self::True, Self::Both, Self::Error];
    fn label(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Learned => "learned (the network)",
            Self::True => "true (closed form)",
            Self::Both => "learned over true",
            Self::Error => "error |learned - true|",
        }
    }
}

/// Which of guidance's fields to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Branch {
    /// ε̂_∅ + w (ε̂_y - ε̂_∅)
    Guided,
    /// ε̂_y (w = 1)
    Class,
    /// ε̂_∅ (w = 0)
    Unconditional,
}

/// A field the engine computed: what was asked of which network, the network's ε̂ and output and the exact
/// ε* and target on the grid, and the training step of the network.
pub struct FieldResult {
    pub request: FieldRequest,
    pub network: LabNetwork,
    pub objective: Objective,
    pub learned: Arc<FieldValues>,
    pub truth: Result<Arc<FieldValues>, String>,
    pub step: u64,
}

impl FieldResult {
    /// |learned - true| per grid cell of `quantity`'s vectors, when the true field is known.
    fn error(&self, quantity: FieldQuantity) -> Option<Vec<f32>> {
        Some(field_error(self.learned.of(quantity), self.truth.as_ref().ok()?.of(quantity)))
    }
}

pub struct FieldPanel {
    /// The timestep of the cloud and the field.
    pub t: usize,
    pub show_cloud: bool,
    pub view: FieldView,
    pub quantity: FieldQuantity,
    pub branch: Branch,
    /// Whose field: the session's network or a compared recipe's.
    pub network: LabNetwork,
    /// The field shown (every answer is: one request is on its way at a time).
    result: Option<FieldResult>,
    /// The request on its way.
    pending: Latest<()>,
}

impl Default for FieldPanel {
    fn default() -> Self {
        Self {
            t: 150,
            show_cloud: true,
            view: FieldView::Learned,
            quantity: FieldQuantity::Score,
            branch: Branch::Guided,
            network: LabNetwork::Session,
            result: None,
            pending: Latest::default(),
        }
    }
}

impl FieldPanel {
    /// Whether a learned field has arrived.
    pub fn has_result(&self) -> bool {
        self.result.is_some()
    }

    /// What the field shown was asked, once one has arrived.
    pub fn shown_request(&self) -> Option<&FieldRequest> {
        self.result.as_ref().map(|f| &f.request)
    }

    /// Whose field is shown and what that network predicts, once one has arrived.
    pub fn shown_network(&self) -> Option<(LabNetwork, Objective)> {
        self.result.as_ref().map(|f| (f.network, f.objective))
    }

    /// Forgets the field shown and the one asked for (a fresh network).
    pub fn clear(&mut self) {
        self.result = None;
        self.pending.forget();
    }

    /// The engine's field arrived.
    pub fn on_field(&mut self, key: u64, result: FieldResult) {
        self.pending.answer(key);
        self.result = Some(result);
    }

    /// A command failed: the field asked for will not come.
    pub fn on_failed(&mut self) {
        self.pending.forget();
    }

    /// The noise level of the t slider in the schedule of the Generate page.
    pub fn level(&self, ctx: &PanelContext) -> Option<NoiseLevel> {
        let schedule = ctx.settings.schedule.build().ok()?;
        Some(NoiseLevel::at(&schedule, self.t.clamp(1, schedule.steps())))
    }

    /// Asks for the field at `level` of the chosen network, at training step `step`, for the particles'
    /// `class` and guidance `w`, when what is shown is stale (other settings, or training moved on) and no
    /// request is on its way.
    pub fn request(&mut self, ctx: &PanelContext, level: NoiseLevel, class: Option<usize>, w: f64, step: u64) {
        if self.view == FieldView::None || self.pending.is_waiting() {
            return;
        }
        let class = class.filter(|_| self.branch != Branch::Unconditional);
        let guidance = match self.branch {
            Branch::Guided => w,
            Branch::Class => 1.0,
            Branch::Unconditional => 0.0,
        };
        let request = FieldRequest { level, class, guidance, resolution: FIELD_RESOLUTION };
        let network = self.network;
        let fresh =
            self.result.as_ref().is_some_and(|f| f.request == request && f.step == step && f.network == network);
        if !fresh {
            let key = self.pending.send(());
            ctx.engine.lab2d(Lab2dCommand::Field { key, request, network });
        }
    }

    /// The "Watch" section of the left column (`classes`: the data's, for the choice of guidance's branch;
    /// `recipes`: the labels of the compared recipes whose networks have trained).
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &PanelContext, classes: usize, recipes: &[(usize, String)]) {
        ui.heading("Watch");
        self.network_ui(ui, recipes);
        let steps = ctx.settings.schedule.steps.max(1);
        ui.add(egui::Slider::new(&mut self.t, 1..=steps).text("t (noise level)")).on_hover_text(
            "The timestep of the schedule (Generate page's Schedule panel) at which the cloud and the field are shown",
        );
        if let Some(level) = self.level(ctx) {
            ui.label(format!(
                "x_t = √ᾱ_t x_0 + √(1-ᾱ_t) ε: ᾱ_t = {:.4}, √ᾱ_t = {:.3}, σ_t = √(1-ᾱ_t) = {:.3}, λ = {:.2}",
                level.alpha_bar,
                level.alpha(),
                level.sigma(),
                level.log_snr
            ));
        }
        ui.checkbox(&mut self.show_cloud, "Show the cloud x_t")
            .on_hover_text("Every data point noised to level t: the forward process");
        egui::ComboBox::from_label("Field").selected_text(self.view.label()).show_ui(ui, |ui| {
            for view in FieldView::ALL {
                ui.selectable_value(&mut self.view, view, view.label());
            }
        });
        egui::ComboBox::from_label("Arrows show").selected_text(self.quantity.label()).show_ui(ui, |ui| {
            for quantity in FieldQuantity::ALL {
                ui.selectable_value(&mut self.quantity, quantity, quantity.label());
            }
        });
        if classes > 1 {
            ui.horizontal(|ui| {
                ui.label("Field of:");
                ui.selectable_value(&mut self.branch, Branch::Guided, "guided");
                ui.selectable_value(&mut self.branch, Branch::Class, "class y");
                ui.selectable_value(&mut self.branch, Branch::Unconditional, "unconditional Ø");
            });
        }
        self.explanation_ui(ui);
    }

    /// Which network's field: the session's, or a compared recipe's (`recipes`: index and label of those
    /// that have trained). Offered once there is a recipe to pick.
    fn network_ui(&mut self, ui: &mut egui::Ui, recipes: &[(usize, String)]) {
        if recipes.is_empty() {
            self.network = LabNetwork::Session;
            return;
        }
        let label = |network: LabNetwork| match network {
            LabNetwork::Session => "the network of Train".to_string(),
            LabNetwork::Recipe(i) => recipes
                .iter()
                .find(|(j, _)| *j == i)
                .map_or_else(|| format!("recipe {}", i + 1), |(_, l)| format!("recipe {}: {l}", i + 1)),
        };
        egui::ComboBox::from_label("Field of network").selected_text(label(self.network)).show_ui(ui, |ui| {
            ui.selectable_value(&mut self.network, LabNetwork::Session, label(LabNetwork::Session));
            for (i, _) in recipes {
                let network = LabNetwork::Recipe(*i);
                ui.selectable_value(&mut self.network, network, label(network));
            }
        });
    }

    /// What the arrows and colours mean, the formula of the target shown, and the network's mean error over
    /// the plot.
    fn explanation_ui(&self, ui: &mut egui::Ui) {
        let objective = self.result.as_ref().map(|f| f.objective);
        let text = match (self.view, self.quantity) {
            (FieldView::None, _) => "No field shown.".to_string(),
            (_, FieldQuantity::Score) => {
                "Arrows: the score, the direction in which the noised data gets denser; sampling follows it.".into()
            }
            (_, FieldQuantity::Epsilon) => {
                "Arrows: ε̂, the noise the network sees at each point (against the score).".into()
            }
            (_, FieldQuantity::Target) => format!(
                "Arrows: what the network outputs, its target {}.",
                objective.map_or("(no network yet)", |o| o.label())
            ),
        };
        ui.weak(text);
        if let (FieldQuantity::Target, Some(f)) = (self.quantity, &self.result) {
            target_formula_ui(ui, f);
        }
        let (truth, error) = match self.quantity {
            FieldQuantity::Target => {
                let symbol = objective.map_or("target", target_symbol);
                (
                    format!("the exact {symbol}* of the mixture, made of E[x₀ | x_t] and ε*"),
                    format!("|{symbol}_θ - {symbol}*|"),
                )
            }
            _ => ("the exact ε* = -σ_t × (gradient of log q_t) of the mixture".to_string(), "|ε̂ - ε*|".to_string()),
        };
        match self.view {
            FieldView::Error => {
                ui.weak(format!("Red: {error}, the network's error against {truth}."));
            }
            FieldView::True | FieldView::Both => {
                ui.weak(format!("Green: {truth}; gray: the network's."));
            }
            FieldView::None | FieldView::Learned => {}
        }
        if let Some(f) = &self.result
            && let Some(values) = f.error(self.quantity)
        {
            let mean = values.iter().map(|e| f64::from(*e)).sum::<f64>() / values.len().max(1) as f64;
            ui.label(format!("mean {error} over the plot = {mean:.3} (network at step {})", f.step));
        }
    }

    /// The vectors of the arrows shown (the exact ones for "true", else the network's), if a field is shown.
    pub fn shown_values(&self) -> Option<&[[f32; 2]]> {
        let field = self.result.as_ref().filter(|_| self.view != FieldView::None)?;
        match self.view {
            FieldView::True => field.truth.as_ref().ok().map(|t| t.of(self.quantity)),
            _ => Some(field.learned.of(self.quantity)),
        }
    }

    /// |learned - true| per grid cell when the error is shown.
    pub fn shown_error(&self) -> Option<Vec<f32>> {
        self.result.as_ref().filter(|_| self.view == FieldView::Error).and_then(|f| f.error(self.quantity))
    }

    /// The plot's caption once there is a network: t, and the field's t when it is drawn at another.
    pub fn caption(&self) -> String {
        match &self.result {
            Some(f) if f.request.level.t != self.t && self.view != FieldView::None => {
                format!("cloud at t = {}, field at t = {}", self.t, f.request.level.t)
            }
            _ => format!("t = {}", self.t),
        }
    }

    /// The error's heat map on the plot, under everything else.
    pub fn paint_heat(&self, canvas: &Canvas) {
        let Some(error) = self.shown_error() else { return };
        let max = error.iter().copied().fold(0f32, f32::max).max(1e-12);
        let cell = 2.0 * VIEW_BOUND / FIELD_RESOLUTION as f64;
        for (centre, e) in grid_points(FIELD_RESOLUTION).into_iter().zip(error) {
            let a = canvas.at([centre[0] - cell / 2.0, centre[1] + cell / 2.0]);
            let b = canvas.at([centre[0] + cell / 2.0, centre[1] - cell / 2.0]);
            canvas.painter.rect_filled(Rect::from_two_pos(a, b), 0.0, faded([214, 39, 40], 0.85 * e / max));
        }
    }

    /// The field's arrows on the plot: the exact ones, the network's, or the network's over the exact ones.
    pub fn paint_arrows(&self, canvas: &Canvas) {
        let Some(f) = &self.result else { return };
        let truth = f.truth.as_ref().ok().map(|t| t.of(self.quantity));
        let learned = Some(f.learned.of(self.quantity));
        let layers = match self.view {
            FieldView::None => vec![],
            FieldView::True => vec![(truth, TRUE_ARROWS)],
            FieldView::Learned | FieldView::Error => vec![(learned, LEARNED_ARROWS)],
            FieldView::Both => vec![(truth, TRUE_ARROWS), (learned, LEARNED_ARROWS)],
        };
        let sigma = f.request.level.sigma();
        for (values, color) in layers {
            let Some(values) = values else { continue };
            let layer = FieldLayer { values, resolution: FIELD_RESOLUTION, quantity: self.quantity, sigma };
            for (from, delta) in arrows(&layer) {
                let a = canvas.at(from);
                let b = canvas.at([from[0] + delta[0], from[1] + delta[1]]);
                canvas.painter.arrow(a, b - a, Stroke::new(1.0, color));
            }
        }
    }
}

/// The target's formula with the field's numbers: target = a x₀ + b ε at the field's level (α, σ), and the
/// exact target made of E[x₀ | x_t] = (x_t - σ ε*) / α.
fn target_formula_ui(ui: &mut egui::Ui, f: &FieldResult) {
    let level = f.request.level;
    let (alpha, sigma) = (level.alpha(), level.sigma());
    let (a, b) = f.objective.target_coefficients(alpha, sigma);
    let symbol = target_symbol(f.objective);
    ui.label(format!(
        "{symbol} = a x₀ + b ε with a = {a:.3}, b = {b:.3} (α = {alpha:.3}, σ = {sigma:.3}); {symbol}* = a (x_t - σ ε*)/α + b ε*"
    ));
    ui.weak("The exact target is the average of what the network is trained towards, over every x₀ and ε that could have made x_t.");
}
