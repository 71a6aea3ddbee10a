//! [`PosteriorPanel`], inside the Forward process panel: the seed's posterior q(x_{t-1} | x_t, x_0) on the
//! panel's own image beside the model's step p_θ(x_{t-1} | x_t), and the KL divergence between them (the
//! variational bound's L_{t-1}) at t and across the noise scale.

use std::sync::Arc;

use eframe::egui::{self, RichText};
use egui_plot::{Line, Plot, PlotPoints, VLine};

use super::colors::{TextureCache, color_image_of};
use super::context::PanelContext;
use super::state::ColorMap;
use crate::diffusion::BetaSchedule;
use crate::diffusion::equation::number_text;
use crate::engine::PosteriorView;
use crate::model::ModelId;

/// What a posterior request was for: schedule, t, the panel's x_0 generation, the model.
type PosteriorKey = (BetaSchedule, usize, usize, ModelId);

pub struct PosteriorPanel {
    pub open: bool,
    pub view: Option<Arc<PosteriorView>>,
    /// The KL across t of the current (schedule, x_0 generation), kept while t moves.
    pub curve: Vec<(usize, f64)>,
    /// Opens the section at the next frame (the Tour's steps about the posterior).
    pub force_open: bool,
    curve_for: Option<(BetaSchedule, usize)>,
    requested: Option<PosteriorKey>,
    /// Whether an answer is still on its way (a newer request waits for it: dragging t sends no backlog).
    waiting: bool,
    textures: [TextureCache<(usize, usize, ColorMap)>; 3],
    /// Bumped whenever a view arrives.
    serial: usize,
}

impl Default for PosteriorPanel {
    fn default() -> Self {
        Self {
            open: false,
            view: None,
            curve: Vec::new(),
            force_open: false,
            curve_for: None,
            requested: None,
            waiting: false,
            textures: [
                TextureCache::new("posterior_mean"),
                TextureCache::new("model_mean"),
                TextureCache::new("mean_difference"),
            ],
            serial: 0,
        }
    }
}

impl PosteriorPanel {
    pub fn on_view(&mut self, view: Arc<PosteriorView>) {
        if !view.curve.is_empty() {
            self.curve = view.curve.clone();
        }
        self.view = Some(view);
        self.waiting = false;
        self.serial += 1;
    }

    /// The engine said the posterior could not be computed (the Forward panel shows why).
    pub fn on_failure(&mut self) {
        self.waiting = false;
    }

    /// The section: closed, a header; open, the formula with its numbers, μ̃, μ_θ and their difference as
    /// pictures, L_{t-1} at t and across t.
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext, generation: usize, t: usize) {
        let header = egui::CollapsingHeader::new("Posterior q(x_{t-1} | x_t, x_0) and the model's step")
            .default_open(self.open)
            .open(std::mem::take(&mut self.force_open).then_some(true))
            .show(ui, |ui| self.contents_ui(ui, ctx, generation, t));
        self.open = header.body_returned.is_some();
        ctx.mark(ui, header.header_response.rect, super::context::Highlight::Posterior);
    }

    fn contents_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext, generation: usize, t: usize) {
        formulas_ui(ui);
        self.request_view(ctx, generation, t);
        let Some(view) = self.view.clone() else {
            ui.weak("computing…");
            return;
        };
        numbers_ui(ui, &view);
        self.means_ui(ui, &view, ctx.settings.color_map);
        match view.kl_bits {
            Some(kl) => ui.label(format!("L_{{t-1}} = KL(q || p_θ) = {} bits per dimension", number_text(kl))),
            None => ui.label("At t = 1 the posterior is a point (β̃_1 = 0): the bound has a decoder term instead."),
        };
        self.curve_ui(ui, t);
    }

    /// Asks the engine for the view at `t` of x_0 `generation` when it changed (and for the curve across t
    /// when the schedule or x_0 did); one request at a time.
    fn request_view(&mut self, ctx: &mut PanelContext, generation: usize, t: usize) {
        let schedule = ctx.settings.schedule;
        let model = ctx.settings.model.clone();
        let key = (schedule, t, generation, model.clone());
        if self.requested.as_ref() != Some(&key) && !self.waiting && schedule.validate().is_ok() {
            let curve = self.curve_for != Some((schedule, generation));
            ctx.engine.posterior(model, schedule, t, super::forward_ui::FORWARD_NOISE_SEED, curve);
            if curve {
                self.curve.clear();
                self.curve_for = Some((schedule, generation));
            }
            self.requested = Some(key);
            self.waiting = true;
        }
    }

    /// μ̃_t, μ_θ and their difference as pictures.
    fn means_ui(&mut self, ui: &mut egui::Ui, view: &PosteriorView, map: ColorMap) {
        let [_, c, h, w] = view.shape;
        let shape = if c == 1 || c == 3 { [1, c, h, w] } else { [c, 1, h, w] };
        let difference: Vec<f32> = view.posterior_mean.iter().zip(&view.model_mean).map(|(q, p)| q - p).collect();
        let largest = difference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let difference_label = format!("μ̃_t - μ_θ (blue -, red +; up to ±{})", number_text(largest as f64));
        // The difference is small beside the means: diverging colours scaled to it, whatever the view's map.
        let pictures = [
            ("μ̃_t (knows x_0)", &view.posterior_mean, map),
            ("μ_θ (the model)", &view.model_mean, map),
            (difference_label.as_str(), &difference, ColorMap::Diverging),
        ];
        ui.horizontal_wrapped(|ui| {
            for ((label, values, map), cache) in pictures.iter().zip(&mut self.textures) {
                let key = (self.serial, 0, *map);
                let texture = cache.get(ui.ctx(), key, || Some(color_image_of(values, shape, *map)));
                ui.vertical(|ui| {
                    ui.label(RichText::new(*label).small());
                    if let Some(texture) = texture {
                        ui.add(egui::Image::new((texture.id(), texture.size_vec2() * 3.0)).alt_text(*label));
                    }
                });
            }
        });
    }

    /// L_{t-1} at every t (log scale), with a line at `t`.
    fn curve_ui(&self, ui: &mut egui::Ui, t: usize) {
        ui.label("Where on the noise scale the model is wrong for this image: L_{t-1} at every t (log scale)");
        if self.curve.is_empty() {
            ui.weak("computing the curve…");
            return;
        }
        let points: Vec<[f64; 2]> =
            self.curve.iter().filter(|(_, kl)| *kl > 0.0).map(|(t, kl)| [*t as f64, kl.log10()]).collect();
        Plot::new("posterior_kl")
            .height(140.0)
            .x_axis_label("t")
            .y_axis_label("log10 bits/dim")
            .allow_scroll(false)
            .show(ui, |plot| {
                plot.line(Line::new("L_{t-1}", PlotPoints::from(points)));
                plot.vline(VLine::new("t", t as f64));
            });
    }
}

/// What the section shows, as formulas: the posterior, the model's step, x̂_0.
fn formulas_ui(ui: &mut egui::Ui) {
    ui.label(
        "Knowing x_0, the step back from x_t is a Gaussian we can write down; the model has to guess it \
         from x_t alone. Their gap, the KL below, is the likelihood bound's term L_{t-1}; training minimises \
         the unweighted ε loss instead, which weights these terms differently across t.",
    );
    ui.label("q(x_{t-1} | x_t, x_0) = N(μ̃_t, β̃_t I),   μ̃_t = c₀ x_0 + c₁ x_t");
    ui.label("p_θ(x_{t-1} | x_t) = N(μ_θ, β̃_t I),   μ_θ = c₀ clip(x̂_0) + c₁ x_t");
    ui.label(
        "x̂_0 = (x_t - sqrt(1 - ᾱ_t) ε̂) / sqrt(ᾱ_t), clipped to the data range (±1 for pixels, ±4 for latents) \
         as the samplers and `eval --nll` use it; unclipped, μ_θ = (x_t - β_t / sqrt(1 - ᾱ_t) ε̂) / sqrt(α_t).",
    );
}

/// t and the posterior's coefficients and variance, each with what it is.
fn numbers_ui(ui: &mut egui::Ui, view: &PosteriorView) {
    egui::Grid::new("posterior_numbers").num_columns(2).show(ui, |ui| {
        for (name, value, what) in [
            ("t", view.t as f64, "the level the step starts from"),
            ("c₀", view.coef_x0, "sqrt(ᾱ_{t-1}) β_t / (1 - ᾱ_t): the weight of x_0"),
            ("c₁", view.coef_xt, "sqrt(α_t) (1 - ᾱ_{t-1}) / (1 - ᾱ_t): the weight of x_t"),
            ("β̃_t", view.beta_tilde, "(1 - ᾱ_{t-1}) / (1 - ᾱ_t) β_t: the posterior's variance"),
        ] {
            ui.label(format!("{name} = {}", number_text(value)));
            ui.label(RichText::new(what).weak());
            ui.end_row();
        }
    });
}
