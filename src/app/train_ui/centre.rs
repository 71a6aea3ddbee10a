//! What the Train view shows: the run's progress and the data's summary in the left panel, and the centre
//! (the loss curve, the loss by noise level and the quality readings, each with the compared runs drawn
//! over it; the data's first pictures before a run, and the sample grids over training, each scrubbed
//! through its denoising steps in [`TrainPanel::viewer`]).

use eframe::egui::{self, Color32};
use egui_plot::{Legend, Line, Plot, PlotPoints};

use super::{Phase, TrainPanel, duration_text};
use crate::app::colors;
use crate::app::context::PanelContext;
use crate::app::state::Quantity;
use crate::app::viewer::Look;
use crate::engine::train::DataSummary;

/// Points of a loss curve drawn at most (a long run's log is thinned for the plot, not in memory).
const MAX_PLOTTED: usize = 2000;

impl TrainPanel {
    /// Where the run stands: step, speed, ETA, last checkpoint, and the UI's paint times while training.
    pub(super) fn progress_ui(&self, ui: &mut egui::Ui) {
        if self.phase == Phase::Idle && self.losses.is_empty() {
            return;
        }
        let total = self.steps.max(1);
        ui.add(
            egui::ProgressBar::new(self.step as f32 / total as f32)
                .text(format!("step {} of {}", self.step, self.steps)),
        );
        ui.label(format!("{:.2} M parameters, {} training images", self.parameters as f64 / 1e6, self.images));
        if self.images_per_second > 0.0 {
            ui.label(format!("{:.1} images/s", self.images_per_second));
        }
        match self.seconds_per_step() {
            Some(seconds) => {
                let remaining = self.steps.saturating_sub(self.step) as f64 * seconds;
                ui.label(format!(
                    "{seconds:.3} s/step (measured on the first steps); ETA {}",
                    duration_text(remaining)
                ));
            }
            None if self.phase == Phase::Running => {
                ui.label("measuring the speed on the first steps…");
            }
            None => {}
        }
        if let Some(step) = self.last_checkpoint {
            ui.label(format!("last checkpoint: step {step}"));
        }
        if self.paint_times.frames > 0 {
            ui.small(format!(
                "UI frames while training: mean {:.1} ms, worst {:.1} ms",
                self.paint_times.mean_ms(),
                self.paint_times.max_ms
            ));
        }
    }

    /// The centre: the loss curve, the data's first pictures before a run, and the samples over training.
    pub fn centre_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        let available = ui.available_height();
        let height = (available * 0.35).clamp(120.0, 320.0);
        ui.columns(3, |columns| {
            self.loss_curve_ui(&mut columns[0], height);
            self.loss_by_level_ui(&mut columns[1], height);
            self.quality_curve_ui(&mut columns[2], height);
        });
        ui.separator();
        if self.snapshots.is_empty() {
            self.data_preview_ui(ui, ctx);
        } else {
            self.samples_ui(ui, ctx);
        }
    }

    /// The loss of every step and its smoothed curve, and the compared runs' smoothed curves.
    fn loss_curve_ui(&self, ui: &mut egui::Ui, height: f32) {
        let recipe = self.recipe.unwrap_or_default();
        ui.label(format!("Loss {} per step", loss_formula(recipe)));
        match self.smoothed.last() {
            Some([step, loss]) => ui.small(format!("now {loss:.4} (smoothed) at step {step}")),
            None => ui.small("the curve starts with the first step"),
        };
        let raw = thinned(&self.losses);
        let smoothed = thinned(&self.smoothed);
        let compared: Vec<(String, Color32, Vec<[f64; 2]>)> = self
            .compare
            .folders
            .iter()
            .enumerate()
            .filter(|(_, run)| !run.smoothed.is_empty())
            .map(|(i, run)| (run.name(), super::runs::color(i), thinned(&run.smoothed)))
            .collect();
        Plot::new("training loss")
            .height(height)
            .legend(Legend::default())
            .x_axis_label("step")
            .y_axis_label("loss")
            .include_y(0.0)
            .show(ui, |plot| {
                plot.line(Line::new("loss", PlotPoints::from(raw)).color(Color32::from_gray(140)));
                plot.line(Line::new("smoothed", PlotPoints::from(smoothed)).color(Color32::LIGHT_BLUE).width(2.0));
                for (name, color, points) in compared {
                    plot.line(Line::new(name, PlotPoints::from(points)).color(color).width(1.5));
                }
            });
        if !self.compare.folders.is_empty() {
            ui.small(
                "Each recipe's loss is in its own units (x₀, v and flow weight the levels differently): \
                      compare recipes by their loss by noise level (ε units) and their quality.",
            );
        }
    }

    /// The same loss split by noise level: a bar per bin of λ, now (recent steps) and at the start.
    fn loss_by_level_ui(&self, ui: &mut egui::Ui, height: f32) {
        use crate::train::levels::{BINS, WIDTH, bin_centre};
        use egui_plot::{Bar, BarChart};
        ui.label(
            "L(λ) = mean ||ε - ε_θ(x_t, λ)||² of the images drawn at noise level λ = ln(ᾱ / (1 - ᾱ)), in ε units \
             for every recipe (ε_θ read from what the model predicts)",
        );
        let bars = |value: &dyn Fn(usize) -> Option<f64>| -> Vec<Bar> {
            (0..BINS).filter_map(|i| value(i).map(|v| Bar::new(bin_centre(i), v).width(WIDTH * 0.8))).collect()
        };
        let now = bars(&|i| self.levels.recent(i));
        let start = bars(&|i| self.levels.at_start(i));
        let hardest =
            (0..BINS).filter_map(|i| self.levels.recent(i).map(|v| (i, v))).max_by(|a, b| a.1.total_cmp(&b.1));
        Plot::new("loss by noise level")
            .height(height)
            .legend(Legend::default())
            .x_axis_label("λ (left: almost pure noise, right: almost clean)")
            .y_axis_label("loss")
            .include_y(0.0)
            .show(ui, |plot| {
                plot.bar_chart(BarChart::new("at the start", start).color(Color32::from_gray(110)));
                plot.bar_chart(BarChart::new("recent steps", now).color(Color32::LIGHT_BLUE));
                for (i, run) in self.compare.folders.iter().enumerate() {
                    if let Some(Ok(levels)) = run.record.as_ref().map(|r| &r.levels) {
                        let line = Line::new(run.name(), PlotPoints::from(levels.clone()));
                        plot.line(line.color(super::runs::color(i)).width(2.0));
                    }
                }
            });
        match hardest {
            Some((i, loss)) => ui.small(format!(
                "Hardest now: λ ≈ {:.0} (loss {loss:.3}). Left, x_t is almost all noise: ε ≈ x_t, easy once \
                 learned, but λ below -10 is drawn rarely (only by the uniform tenth of the λ distribution), so it \
                 is learned last. Right, the noise is a faint layer over the image, hard to tell from its texture: \
                 the loss stays highest there.",
                bin_centre(i)
            )),
            None => ui.small("The bars fill in as training draws images at each noise level."),
        };
    }

    fn data_preview_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        let Some(data) = &self.data else {
            ui.label("Choose the data, then Start training: samples of the model appear here as it learns.");
            return;
        };
        ui.label(format!("The first {} training images ({})", data.preview_count, data.description));
        let [c, h, w] = data.shape;
        let map = ctx.settings.color_map;
        let texture = self.data_texture.get(ui.ctx(), (self.serial, map), || {
            Some(colors::color_image_of(&data.preview, [data.preview_count, c, h, w], map))
        });
        if let Some(texture) = texture {
            let size = texture.size_vec2() * ctx.settings.zoom.min(4.0);
            egui::ScrollArea::both().show(ui, |ui| {
                ui.add(egui::Image::new((texture.id(), size)).alt_text("training images"));
            });
        }
    }

    fn samples_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        let latent = self.shown_frame().is_some_and(|f| f.decoded.is_some());
        ui.horizontal_wrapped(|ui| {
            ui.label("Show:");
            for v in Quantity::ALL.into_iter().filter(|v| v.applies(latent)) {
                ui.selectable_value(&mut self.quantity, v, v.label(latent));
            }
            ui.separator();
            ui.add(egui::Slider::new(&mut ctx.settings.zoom, 1.0..=16.0).step_by(1.0).text("zoom"));
            ui.separator();
            ui.toggle_value(&mut ctx.settings.this_step, "This step")
                .on_hover_text("Beside the samples: the denoising step that made them, as its equation and its terms");
        });
        self.snapshot_slider_ui(ui);
        self.denoising_slider_ui(ui);
        // A latent grid's predicted noise is shown as its decoded x_t, as before the viewer.
        let quantity =
            if latent && self.quantity == Quantity::PredictedNoise { Quantity::Noisy } else { self.quantity };
        let settings = &ctx.settings;
        let look = Look {
            quantity,
            color_map: settings.color_map,
            zoom: settings.zoom,
            gpu: ctx.gpu_display,
            this_step: settings.this_step,
            overlay: settings.overlay,
            attention: settings.attention,
        };
        self.viewer.image_ui(ui, look, "no samples yet");
    }

    /// "Samples over training": which grid is on screen.
    fn snapshot_slider_ui(&mut self, ui: &mut egui::Ui) {
        let count = self.snapshots.len();
        let mut selected = self.selected.min(count - 1);
        let steps: Vec<u64> = self.snapshots.iter().map(|s| s.step).collect();
        ui.horizontal(|ui| {
            let response = ui.add(
                egui::Slider::new(&mut selected, 0..=count - 1)
                    .text("Samples over training")
                    .show_value(false)
                    .custom_formatter(|i, _| format!("step {}", steps.get(i as usize).copied().unwrap_or(0))),
            );
            ui.label(format!("after step {} ({} of {count})", steps[selected], selected + 1));
            if response.changed() {
                self.follow_newest = selected + 1 == count;
                self.select(selected, false);
            }
        });
    }

    /// "Denoising step": the viewer's cursor in the grid's frames.
    fn denoising_slider_ui(&mut self, ui: &mut egui::Ui) {
        let frames = self.viewer.len();
        if frames > 1 {
            let mut cursor = self.viewer.cursor.min(frames - 1);
            let ts: Vec<usize> =
                self.viewer.trajectory.as_ref().map(|t| t.frames.iter().map(|f| f.t).collect()).unwrap_or_default();
            let t_of = |i: usize| ts.get(i).copied().unwrap_or(0);
            ui.horizontal(|ui| {
                let response = ui.add(
                    egui::Slider::new(&mut cursor, 0..=frames - 1)
                        .text("Denoising step")
                        .show_value(false)
                        .custom_formatter(|i, _| format!("t = {}", t_of(i as usize))),
                );
                ui.label(format!("t = {}  (frame {} of {frames})", t_of(cursor), cursor + 1));
                if response.changed() {
                    self.viewer.seek(cursor);
                }
            });
        } else if frames == 1 {
            ui.small("older sample grids keep their final images only");
        }
    }
}

/// The loss a recipe's step minimises, as the loss plot's title writes it.
fn loss_formula(recipe: crate::train::recipe::Recipe) -> String {
    use crate::diffusion::{Objective, Weighting};
    let own = match recipe.objective {
        Objective::Eps => "||ε - ε_θ(x_t, t)||²",
        Objective::X0 => "||x₀ - x₀_θ(x_t, t)||²",
        Objective::V => "||v - v_θ(x_t, t)||², v = α ε - σ x₀,",
        Objective::Flow => "||(ε - x₀) - u_θ(x_t, t)||²",
    };
    match (recipe.objective, recipe.weighting) {
        (_, Weighting::Plain) => format!("L = {own}"),
        (Objective::Flow, weighting @ (Weighting::FlowUniform | Weighting::FlowLogitNormal { .. })) => {
            format!("L = {own} ({})", weighting.label())
        }
        (_, weighting) => {
            format!("L = w(λ) ||ε - ε_θ(x_t, t)||² ({}, learned as {})", weighting.label(), recipe.objective.name())
        }
    }
}

/// At most [`MAX_PLOTTED`] points of a curve, evenly spaced, the last one kept.
fn thinned(points: &[[f64; 2]]) -> Vec<[f64; 2]> {
    let stride = points.len().div_ceil(MAX_PLOTTED).max(1);
    let mut kept: Vec<[f64; 2]> = points.iter().step_by(stride).copied().collect();
    if let (Some(last), Some(kept_last)) = (points.last(), kept.last())
        && last != kept_last
    {
        kept.push(*last);
    }
    kept
}

/// What the loaded data holds: count, shape, classes and the files skipped.
pub(super) fn data_summary_ui(ui: &mut egui::Ui, data: &DataSummary) {
    let [c, h, w] = data.shape;
    ui.label(format!("{} images, {c}x{h}x{w}", data.count));
    if data.classes.is_empty() {
        ui.label("no classes (no sub-folders): the model learns unconditional samples");
    } else {
        let list: Vec<String> = data.classes.iter().map(|(name, n)| format!("{name} ({n})")).collect();
        ui.label(format!("{} classes: {}", data.classes.len(), list.join(", ")));
    }
    if !data.skipped.is_empty() {
        egui::CollapsingHeader::new(format!("{} files skipped", data.skipped.len())).show(ui, |ui| {
            for (file, reason) in data.skipped.iter().take(50) {
                ui.label(format!("{file}: {reason}")).on_hover_text(reason);
            }
            if data.skipped.len() > 50 {
                ui.label(format!("… and {} more", data.skipped.len() - 50));
            }
        });
    }
}
