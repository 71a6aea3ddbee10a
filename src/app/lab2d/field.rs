//! [`FieldPanel`]: what the page watches at a noise level, the "Watch" section (the t of the cloud x_t and
//! of the field, which field and what its arrows show), the field the engine computed, and its layers of
//! the plot (the error's heat map and the arrows).

use std::sync::Arc;

use eframe::egui::{self, Color32, Rect, Stroke};

use super::latest::Latest;
use super::plot::{Canvas, faded};
use crate::app::context::PanelContext;
use crate::diffusion::NoiseLevel;
use crate::engine::lab2d::Lab2dCommand;
use crate::lab2d::data::VIEW_BOUND;
use crate::lab2d::figure::{FieldLayer, arrows};
use crate::lab2d::run::{FieldQuantity, FieldRequest, field_error, grid_points};

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
            Self::Error => "error |ε̂ - ε*|",
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

/// A field the engine computed: what was asked, the network's ε̂ and the exact ε* on the grid, and the
/// training step of the network.
pub struct FieldResult {
    pub request: FieldRequest,
    pub learned: Arc<Vec<[f32; 2]>>,
    pub truth: Result<Arc<Vec<[f32; 2]>>, String>,
    pub step: u64,
}

impl FieldResult {
    /// |ε̂ - ε*| per grid cell, when the true field is known.
    fn error(&self) -> Option<Vec<f32>> {
        Some(field_error(&self.learned, self.truth.as_ref().ok()?))
    }
}

pub struct FieldPanel {
    /// The timestep of the cloud and the field.
    pub t: usize,
    pub show_cloud: bool,
    pub view: FieldView,
    pub quantity: FieldQuantity,
    pub branch: Branch,
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

    /// Asks for the field at `level` of the network at training step `step`, for the particles' `class` and
    /// guidance `w`, when what is shown is stale (other settings, or training moved on) and no request is on
    /// its way.
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
        let fresh = self.result.as_ref().is_some_and(|f| f.request == request && f.step == step);
        if !fresh {
            let key = self.pending.send(());
            ctx.engine.lab2d(Lab2dCommand::Field { key, request });
        }
    }

    /// The "Watch" section of the left column (`classes`: the data's, for the choice of guidance's branch).
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &PanelContext, classes: usize) {
        ui.heading("Watch");
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

    /// What the arrows and colours mean, and the network's mean error over the plot.
    fn explanation_ui(&self, ui: &mut egui::Ui) {
        let text = match (self.view, self.quantity) {
            (FieldView::None, _) => "No field shown.".to_string(),
            (_, FieldQuantity::Score) => {
                "Arrows: the score, the direction in which the noised data gets denser; sampling follows it.".into()
            }
            (_, FieldQuantity::Epsilon) => {
                "Arrows: ε̂, the noise the network sees at each point (against the score).".into()
            }
        };
        ui.weak(text);
        match self.view {
            FieldView::Error => {
                ui.weak("Red: |ε̂ - ε*|, the network's error against the exact ε* = -σ_t × (gradient of log q_t) of the mixture.");
            }
            FieldView::True | FieldView::Both => {
                ui.weak("Green: the exact field of the data's mixture, ε* = -σ_t × (gradient of log q_t); gray: the network's.");
            }
            FieldView::None | FieldView::Learned => {}
        }
        if let Some(f) = &self.result
            && let Some(error) = f.error()
        {
            let mean = error.iter().map(|e| f64::from(*e)).sum::<f64>() / error.len().max(1) as f64;
            ui.label(format!("mean |ε̂ - ε*| over the plot = {mean:.3} (network at step {})", f.step));
        }
    }

    /// The ε of the arrows shown (the exact one for "true", else the network's), if a field is shown.
    pub fn shown_eps(&self) -> Option<&[[f32; 2]]> {
        let field = self.result.as_ref().filter(|_| self.view != FieldView::None)?;
        match self.view {
            FieldView::True => field.truth.as_ref().ok().map(|t| t.as_slice()),
            _ => Some(field.learned.as_slice()),
        }
    }

    /// |ε̂ - ε*| per grid cell when the error is shown.
    pub fn shown_error(&self) -> Option<Vec<f32>> {
        self.result.as_ref().filter(|_| self.view == FieldView::Error).and_then(FieldResult::error)
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
        let truth = f.truth.as_ref().ok().map(|t| t.as_slice());
        let learned = Some(f.learned.as_slice());
        let layers = match self.view {
            FieldView::None => vec![],
            FieldView::True => vec![(truth, TRUE_ARROWS)],
            FieldView::Learned | FieldView::Error => vec![(learned, LEARNED_ARROWS)],
            FieldView::Both => vec![(truth, TRUE_ARROWS), (learned, LEARNED_ARROWS)],
        };
        let sigma = f.request.level.sigma();
        for (eps, color) in layers {
            let Some(eps) = eps else { continue };
            let layer = FieldLayer { eps, resolution: FIELD_RESOLUTION, quantity: self.quantity, sigma };
            for (from, delta) in arrows(&layer) {
                let a = canvas.at(from);
                let b = canvas.at([from[0] + delta[0], from[1] + delta[1]]);
                canvas.painter.arrow(a, b - a, Stroke::new(1.0, color));
            }
        }
    }
}
