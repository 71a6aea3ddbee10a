//! [`GuidancePanel`]: the guidance methods against the exact p(x|y) (`lab2d::guidance_bench`). Pick the
//! class, the methods and their parameters, and compare: every method at its handful of scales guides the
//! session's network from the same x_T (and the exact scores beside it); the page shows where each one's
//! samples land over the class's true density, its distance to p(x|y) and how much of the class's spread
//! survives over its scale, and each method's formula with the numbers used and one plain line. The
//! "Guidance methods" section of the left column, and its results in the middle.

use std::sync::Arc;

use eframe::egui::{self, Color32, Pos2, Rect, Sense, Stroke, Vec2};
use egui_plot::{HLine, Legend, Line, LineStyle, Plot, PlotPoints};

use super::plot::color32;
use crate::app::context::PanelContext;
use crate::diffusion::Method;
use crate::diffusion::guidance::{GuidanceMethod, GuidanceParams};
use crate::engine::Measurement;
use crate::engine::lab2d::Lab2dCommand;
use crate::lab2d::guidance_bench::{
    GuidanceBench, GuidanceBenchSettings, MethodCurve, MethodScales, guide_steps, scale_symbol,
};
use crate::lab2d::guidance_figure::{CELL_BOUND, DISTANCE_COLOR, SPREAD_COLOR, density_grid};

/// Pixels per side of a sample cloud.
const CELL: f32 = 120.0;
/// Density cells per side of the background texture.
const DENSITY_RESOLUTION: usize = 60;
/// Dots per cloud (the first of the run's particles).
const DOTS: usize = 300;

/// Where the comparison stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GuidancePhase {
    Empty,
    Running,
    Done,
    Failed,
}

/// One plain line per method: what it does to the samples.
pub fn plain_line(method: GuidanceMethod) -> &'static str {
    match method {
        GuidanceMethod::Cfg => {
            "Steps w times as far from what the model draws without the class: the samples crowd into the class's \
             most typical places, away from the other classes, and its spread shrinks."
        }
        GuidanceMethod::Rescale => {
            "CFG, then each point's guided ε̂ shrunk back towards the length of the conditional ε̂ (φ of the way): \
             it tames the overshoot that over-saturates images; the direction is still CFG's."
        }
        GuidanceMethod::Apg => {
            "CFG's push on the denoised point, split along x̂_y and across it: the part along x̂_y (what \
             over-saturates) is weighted by η, the push limited to length r, and a momentum β < 0 works against \
             the direction of the steps before."
        }
        GuidanceMethod::CfgPlusPlus => {
            "Guides only the denoised estimate x̂_0 (λ ≤ 1: between the unconditional and the conditional one) and \
             renoises with the unconditional ε̂_Ø, so the path stays closer to the data."
        }
        GuidanceMethod::Auto => {
            "Guides away from a weaker version of the same network instead of from the unconditional one: it \
             corrects where the weak network errs most, sharpening the class without crowding it into one place."
        }
    }
}

/// How rescale's σ is defined for a point of the plane (the page says it under the formulas).
pub const RESCALE_IN_2D: &str = "Rescale in 2-D: Lin et al. take σ as the standard deviation of each image's \
    values; the standard deviation of a point's two coordinates, |x₁ - x₂|/2, says nothing about its size, so \
    here σ of a point's ε̂ is its root-mean-square about 0, |ε̂|/√2: rescale gives each point's guided ε̂ the \
    length of its conditional ε̂, mixed by φ.";

pub struct GuidancePanel {
    /// The class y the methods guide towards (0-based).
    pub class: usize,
    /// Which methods the next comparison runs (in `GuidanceMethod::ALL`'s order).
    pub included: [bool; 5],
    /// The method whose parameters are shown for editing.
    pub picked: GuidanceMethod,
    /// φ and APG's η, β, r (the method field unused: each method gets its own).
    pub params: GuidanceParams,
    pub sampler: Method,
    pub particles: usize,
    /// The exact scores run beside the network.
    pub exact: bool,
    pub phase: GuidancePhase,
    key: u64,
    pub bench: Option<Arc<GuidanceBench>>,
    /// The session's training step the comparison's network had.
    pub step: u64,
    density: Option<(u64, egui::TextureHandle)>,
}

impl Default for GuidancePanel {
    fn default() -> Self {
        Self {
            class: 0,
            included: [true; 5],
            picked: GuidanceMethod::Cfg,
            params: GuidanceParams::default(),
            sampler: crate::model::denoise::DEFAULT_SAMPLER.method,
            particles: 500,
            exact: true,
            phase: GuidancePhase::Empty,
            key: 0,
            bench: None,
            step: 0,
            density: None,
        }
    }
}

impl GuidancePanel {
    pub fn is_done(&self) -> bool {
        self.phase == GuidancePhase::Done
    }

    /// The comparison's settings from the panel's choices (`schedule` the page's).
    pub fn settings(&self, schedule: crate::diffusion::BetaSchedule) -> GuidanceBenchSettings {
        let methods = GuidanceMethod::ALL
            .into_iter()
            .zip(self.included)
            .filter(|(_, on)| *on)
            .map(|(method, _)| MethodScales::of(GuidanceParams { method, ..self.params }))
            .collect();
        let sampler = crate::diffusion::Sampler { method: self.sampler, ..crate::model::denoise::DEFAULT_SAMPLER };
        let sampler = if self.sampler == crate::model::denoise::DEFAULT_SAMPLER.method {
            sampler
        } else {
            sampler.with_spacing(crate::diffusion::Spacing::Trailing)
        };
        GuidanceBenchSettings {
            schedule,
            sampler,
            class: self.class,
            particles: self.particles,
            seed: 0,
            methods,
            exact: self.exact,
        }
    }

    /// Asks the engine for a comparison with the session's network (trained `training_steps` steps in all:
    /// the guide trains an eighth of them).
    pub fn start(&mut self, ctx: &mut PanelContext, training_steps: u64) {
        let settings = self.settings(ctx.settings.schedule);
        if settings.methods.is_empty() {
            return ctx.set_status("2-D lab, guidance: pick at least one method to compare".to_string(), true);
        }
        self.key += 1;
        self.phase = GuidancePhase::Running;
        let guide_steps = guide_steps(training_steps);
        ctx.engine.lab2d(Lab2dCommand::GuidanceBench { key: self.key, settings, guide_steps });
    }

    pub fn on_benched(&mut self, ctx: &mut PanelContext, key: u64, bench: Arc<GuidanceBench>, step: u64) {
        if key != self.key {
            return;
        }
        ctx.set_status(
            format!("2-D lab: {} guidance methods compared against the exact p(x|y)", bench.curves.len()),
            false,
        );
        self.bench = Some(bench);
        self.step = step;
        self.phase = GuidancePhase::Done;
        self.density = None;
    }

    /// Stops the running comparison; the last finished one stays on screen.
    fn stop(&mut self, ctx: &mut PanelContext) {
        ctx.engine.lab2d(Lab2dCommand::StopMeasurement(Measurement::Guidance));
        // An answer already on its way belongs to the stopped comparison.
        self.key += 1;
        self.phase = if self.bench.is_some() { GuidancePhase::Done } else { GuidancePhase::Empty };
        ctx.set_status("2-D lab: the guidance comparison was stopped".to_string(), false);
    }

    pub fn on_failed(&mut self, ctx: &mut PanelContext, key: u64, message: &str) {
        if key == self.key {
            self.phase = GuidancePhase::Failed;
            ctx.set_status(format!("2-D lab, guidance: {message}"), true);
        }
    }

    /// The "Guidance methods" section of the left column, folded until opened (the column is long); true when
    /// "Compare guidance methods" was pressed (offered when `ready`: the session has a network).
    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext, classes: usize, ready: bool) -> bool {
        let section =
            egui::CollapsingHeader::new("Guidance methods").show(ui, |ui| self.section_ui(ui, ctx, classes, ready));
        section.body_returned.unwrap_or(false)
    }

    fn section_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext, classes: usize, ready: bool) -> bool {
        ui.weak("Each method at a handful of scales, from one x_T, against the class's exact density p(x|y).");
        self.class = self.class.min(classes.saturating_sub(1));
        ui.add(egui::Slider::new(&mut self.class, 0..=classes.saturating_sub(1)).text("Guided class"));
        ui.horizontal_wrapped(|ui| {
            for (method, on) in GuidanceMethod::ALL.into_iter().zip(self.included.iter_mut()) {
                ui.checkbox(on, format!("Compare {}", method.name()));
            }
        });
        egui::ComboBox::from_label("Guidance method").selected_text(self.picked.label()).show_ui(ui, |ui| {
            for method in GuidanceMethod::ALL {
                ui.selectable_value(&mut self.picked, method, format!("{} — {}", method.name(), method.label()));
            }
        });
        ui.weak(self.picked.paper());
        self.parameters_ui(ui);
        egui::ComboBox::from_label("Guidance sampler").selected_text(self.sampler.label()).show_ui(ui, |ui| {
            for method in Method::ALL.into_iter().filter(|m| m.has_steps()) {
                ui.selectable_value(&mut self.sampler, method, method.label());
            }
        });
        ui.checkbox(&mut self.exact, "Also with the exact scores");
        let pressed = ui.add_enabled(ready, egui::Button::new("Compare guidance methods")).clicked();
        if self.phase == GuidancePhase::Running
            && ui.button("Stop guidance comparison").on_hover_text("stop it; the last comparison stays").clicked()
        {
            self.stop(ctx);
        }
        ui.label(match self.phase {
            GuidancePhase::Empty => "not compared yet".to_string(),
            GuidancePhase::Running => "comparing…".to_string(),
            GuidancePhase::Done => format!("compared with the network at step {}", self.step),
            GuidancePhase::Failed => "the comparison failed (see the status line)".to_string(),
        });
        pressed
    }

    /// The picked method's own parameters (the scales are the comparison's).
    fn parameters_ui(&mut self, ui: &mut egui::Ui) {
        let scales = crate::lab2d::guidance_bench::bench_scales(self.picked);
        let scales: Vec<String> = scales.iter().map(f64::to_string).collect();
        ui.label(format!(
            "{} at {} in {{{}}} (default {})",
            self.picked.name(),
            scale_symbol(self.picked),
            scales.join(", "),
            self.picked.default_scale()
        ));
        match self.picked {
            GuidanceMethod::Rescale => {
                ui.add(egui::Slider::new(&mut self.params.rescale_phi, 0.0..=1.0).text("Rescale φ"));
            }
            GuidanceMethod::Apg => {
                let apg = &mut self.params.apg;
                ui.add(egui::Slider::new(&mut apg.eta, 0.0..=1.0).text("APG η"));
                ui.add(egui::Slider::new(&mut apg.momentum, -0.95..=0.95).text("APG momentum β"));
                ui.add(egui::Slider::new(&mut apg.threshold, 0.0..=10.0).text("APG norm limit r"));
            }
            GuidanceMethod::Auto => {
                ui.weak("The guide: this network's architecture, data and seed, trained 1/8 of its steps.");
            }
            GuidanceMethod::Cfg | GuidanceMethod::CfgPlusPlus => {}
        }
    }
}

impl GuidancePanel {
    /// The middle's comparison: per method its formula with the numbers used, one plain line, its sample
    /// clouds over p(x|y) at each scale, and its curves over the scale.
    pub fn results_ui(&mut self, ui: &mut egui::Ui) {
        let Some(bench) = self.bench.clone() else { return };
        ui.separator();
        ui.heading("Guidance methods against the exact p(x|y)");
        let s = &bench.settings;
        ui.label(format!(
            "Class {} with {}, {} particles from one x_T (network at step {}), each against {} fresh draws of the \
             class's mixture: floor sliced W₂ {:.4}; the class's true spread {:.3} (spread ratio 1 = all of it kept). \
             Dots: the samples; blue: p(x|y).",
            s.class,
            s.sampler.label(),
            s.particles,
            self.step,
            crate::lab2d::guidance_bench::REFERENCE_DRAWS,
            bench.floor.sliced_wasserstein,
            bench.true_spread
        ));
        ui.weak(
            "With the exact scores, CFG at w follows the score of q_t(x|y)^w q_t(x)^(1-w) at every noise level — \
             not the noised p(x|y)^w p(x)^(1-w), so its samples are not that tilted density. Autoguidance has no \
             exact counterpart.",
        );
        let texture = self.density_texture(ui.ctx(), &bench);
        for curve in &bench.curves {
            method_ui(ui, curve, &bench, &texture);
        }
        ui.weak(RESCALE_IN_2D);
    }

    /// The class's density as a texture (made once per comparison).
    fn density_texture(&mut self, ctx: &egui::Context, bench: &GuidanceBench) -> egui::TextureHandle {
        if let Some((key, texture)) = &self.density
            && *key == self.key
        {
            return texture.clone();
        }
        let density = density_grid(&bench.class_mixture, DENSITY_RESOLUTION, CELL_BOUND);
        let pixels: Vec<Color32> = density
            .iter()
            .map(|d| {
                let a = (0.45 * d.sqrt()) as f32;
                let mix = |c: u8| (255.0 * (1.0 - a) + f32::from(c) * a) as u8;
                Color32::from_rgb(mix(70), mix(130), mix(200))
            })
            .collect();
        let image = egui::ColorImage::new([DENSITY_RESOLUTION, DENSITY_RESOLUTION], pixels);
        let texture = ctx.load_texture("guidance density", image, egui::TextureOptions::LINEAR);
        self.density = Some((self.key, texture.clone()));
        texture
    }
}

/// One method: its formula and plain line, a cloud per scale, its curves.
fn method_ui(ui: &mut egui::Ui, curve: &MethodCurve, bench: &GuidanceBench, texture: &egui::TextureHandle) {
    let method = curve.method();
    let default = method.default_scale();
    ui.strong(format!("{} ({})", method.label(), method.name()));
    ui.label(format!(
        "at its default {} = {default}: {}",
        scale_symbol(method),
        curve.formula_at(default, bench.guide_steps)
    ));
    if let Some(p) = curve.at_default() {
        ui.label(format!(
            "there: sliced W₂ to p(x|y) {:.3} (floor {:.3}), spread ×{:.2}",
            p.distances.sliced_wasserstein, bench.floor.sliced_wasserstein, p.spread_ratio
        ));
    }
    ui.weak(plain_line(method));
    ui.horizontal_wrapped(|ui| {
        for (k, point) in curve.network.iter().enumerate() {
            ui.vertical(|ui| {
                cloud_ui(ui, texture, &point.samples);
                ui.label(format!("{} = {}", scale_symbol(method), point.scale));
                ui.label(format!("W₂ {:.3}, ×{:.2}", point.distances.sliced_wasserstein, point.spread_ratio));
                if let Some(exact) = curve.exact.as_ref().and_then(|e| e.get(k)) {
                    ui.weak(format!("exact {:.3}, ×{:.2}", exact.distances.sliced_wasserstein, exact.spread_ratio));
                }
            });
        }
        curves_ui(ui, curve, bench.floor.sliced_wasserstein);
    });
}

/// The samples over the density, the square [-CELL_BOUND, CELL_BOUND]².
fn cloud_ui(ui: &mut egui::Ui, texture: &egui::TextureHandle, samples: &[[f32; 2]]) {
    let (rect, _) = ui.allocate_exact_size(Vec2::splat(CELL), Sense::hover());
    let painter = ui.painter_at(rect);
    painter.image(texture.id(), rect, Rect::from_min_max(Pos2::ZERO, Pos2::new(1.0, 1.0)), Color32::WHITE);
    let bound = CELL_BOUND as f32;
    let at = |p: [f32; 2]| {
        Pos2::new(
            rect.left() + (p[0] + bound) / (2.0 * bound) * rect.width(),
            rect.top() + (bound - p[1]) / (2.0 * bound) * rect.height(),
        )
    };
    for p in samples.iter().take(DOTS) {
        painter.circle_filled(at(*p), 1.3, Color32::from_rgba_unmultiplied(200, 40, 20, 200));
    }
    painter.rect_stroke(rect, 0.0, Stroke::new(1.0, Color32::GRAY), egui::StrokeKind::Inside);
}

/// Distance to p(x|y) and spread ratio over the method's scales (the exact scores' dashed), with the floor
/// and 1.
fn curves_ui(ui: &mut egui::Ui, curve: &MethodCurve, floor: f64) {
    let name = curve.method().name();
    let line = |points: &[crate::lab2d::guidance_bench::BenchPoint],
                value: fn(&crate::lab2d::guidance_bench::BenchPoint) -> f64| {
        PlotPoints::from(points.iter().map(|p| [p.scale, value(p)]).collect::<Vec<_>>())
    };
    Plot::new(format!("guidance curves {name}"))
        .width(260.0)
        .height(CELL + 40.0)
        .include_y(0.0)
        .legend(Legend::default())
        .x_axis_label(scale_symbol(curve.method()))
        .show(ui, |plot| {
            let (distance, spread) = (color32(DISTANCE_COLOR), color32(SPREAD_COLOR));
            plot.line(
                Line::new("W₂ to p(x|y)", line(&curve.network, |p| p.distances.sliced_wasserstein)).color(distance),
            );
            plot.line(Line::new("spread ratio", line(&curve.network, |p| p.spread_ratio)).color(spread));
            if let Some(exact) = &curve.exact {
                let dashed = LineStyle::dashed_dense();
                plot.line(
                    Line::new("exact scores", line(exact, |p| p.distances.sliced_wasserstein))
                        .color(distance)
                        .style(dashed),
                );
                plot.line(Line::new("", line(exact, |p| p.spread_ratio)).color(spread).style(dashed));
            }
            plot.hline(HLine::new("floor", floor).color(Color32::GRAY));
            plot.hline(HLine::new("", 1.0).color(Color32::LIGHT_GRAY));
        });
}
