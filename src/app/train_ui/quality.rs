//! The quality meter in the Train view: its controls (on or off, every K steps, n samples, and what a
//! reading costs) and its curves over training — the Fréchet distance and class accuracy of samples drawn
//! from the same x_T at every reading (`eval`'s numbers), and their nearest training image — each beside
//! real test images' value at the same n, for this run and the runs compared.

use eframe::egui::{self, Color32};
use egui_plot::{Legend, Line, LineStyle, Plot, PlotPoints, Points};

use super::{Phase, TrainPanel, duration_text};
use crate::app::context::PanelContext;
use crate::app::train_settings::DataKind;
use crate::eval::quality::QualityReading;
use crate::model::denoise::DEFAULT_SAMPLER;

/// What the quality plot shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum QualityMeasure {
    #[default]
    FrechetDistance,
    ClassAccuracy,
    NearestTraining,
}

impl QualityMeasure {
    pub const ALL: [QualityMeasure; 3] =
        [QualityMeasure::FrechetDistance, QualityMeasure::ClassAccuracy, QualityMeasure::NearestTraining];

    pub fn label(self) -> &'static str {
        match self {
            QualityMeasure::FrechetDistance => "Fréchet distance",
            QualityMeasure::ClassAccuracy => "class accuracy",
            QualityMeasure::NearestTraining => "nearest training image",
        }
    }

    /// (the samples' value, real test images' value at the same n).
    pub fn of(self, r: &QualityReading) -> (f64, f64) {
        match self {
            QualityMeasure::FrechetDistance => (r.frechet_distance, r.floor_frechet_distance),
            QualityMeasure::ClassAccuracy => (r.class_accuracy, r.floor_class_accuracy),
            QualityMeasure::NearestTraining => (r.nearest_training, r.floor_nearest_training),
        }
    }
}

/// Forward passes of one training image, counted in forward passes (forward + backward ≈ 3).
const PASSES_PER_TRAINING_IMAGE: f64 = 3.0;

impl TrainPanel {
    /// On or off, every K steps, samples per reading, and what a reading costs.
    pub(super) fn quality_settings_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        let busy = self.phase != Phase::Idle;
        let train = &mut ctx.settings.train;
        let fashion = train.data != DataKind::ImageFolder;
        ui.add_enabled_ui(!busy && fashion, |ui| {
            let mut off = false;
            let on = if fashion { &mut train.quality } else { &mut off };
            ui.checkbox(on, "Quality meter on")
                .on_hover_text("score samples every K steps: Fréchet distance, class accuracy, nearest training image")
                .on_disabled_hover_text("the meter scores with the Fashion-MNIST classifier: Fashion-MNIST data only");
        });
        if fashion && train.quality {
            ui.add_enabled_ui(!busy, |ui| {
                egui::Grid::new("quality_settings").num_columns(2).show(ui, |ui| {
                    let label = ui.label("Quality every");
                    ui.add(egui::DragValue::new(&mut train.quality_every).range(1..=100_000).suffix(" steps"))
                        .labelled_by(label.id);
                    ui.end_row();
                    let label = ui.label("Quality samples");
                    ui.add(egui::DragValue::new(&mut train.quality_samples).range(10..=10_000)).labelled_by(label.id);
                    ui.end_row();
                });
            });
        }
        if (fashion && train.quality) || !self.quality.is_empty() {
            ui.small(self.quality_cost_text(train.quality_every.max(1), train.quality_samples, train.batch_size));
        }
    }

    /// What a reading costs: the last one's measured time, else an estimate from the training speed.
    fn quality_cost_text(&self, every: u64, samples: usize, batch: usize) -> String {
        let passes = samples as f64 * DEFAULT_SAMPLER.steps as f64 * 2.0;
        let seconds_per_step = self.seconds_per_step();
        let share = |reading: f64| {
            seconds_per_step.map_or(String::new(), |s| {
                let training = every as f64 * s;
                format!(
                    "; with {every} steps of training ({}) between readings, the meter takes {:.0} % of the time",
                    duration_text(training),
                    100.0 * reading / (reading + training)
                )
            })
        };
        if let Some(last) = self.quality.last() {
            return format!(
                "Cost: the last reading ({} samples) took {:.1} s{}",
                last.samples,
                last.seconds,
                share(last.seconds)
            );
        }
        match seconds_per_step {
            Some(s) => {
                let estimate = passes * s / (batch.max(1) as f64 * PASSES_PER_TRAINING_IMAGE);
                format!(
                    "Cost: ≈ {} per reading, estimated from the training speed ({samples} samples × {} sampler \
                     steps × 2 for guidance, a training image ≈ 3 network passes){}",
                    duration_text(estimate),
                    DEFAULT_SAMPLER.steps,
                    share(estimate)
                )
            }
            None => format!(
                "Cost: a reading samples {samples} images ({} sampler steps × 2 for guidance, as many network \
                 passes as ≈ {:.0} training images) and scores them; the time it took shows after the first",
                DEFAULT_SAMPLER.steps,
                passes / PASSES_PER_TRAINING_IMAGE
            ),
        }
    }

    /// The quality over training of this run and the runs compared, each with real images' value at the
    /// same n as a dashed line.
    pub(super) fn quality_curve_ui(&mut self, ui: &mut egui::Ui, height: f32) {
        ui.horizontal_wrapped(|ui| {
            ui.label("Quality:");
            for measure in QualityMeasure::ALL {
                ui.selectable_value(&mut self.quality_measure, measure, measure.label());
            }
        });
        let measure = self.quality_measure;
        let mut runs: Vec<(String, Color32, &[QualityReading])> = Vec::new();
        if !self.quality.is_empty() {
            runs.push((self.run_name(), Color32::LIGHT_BLUE, &self.quality));
        }
        for (i, run) in self.compare.folders.iter().enumerate() {
            if let Some(record) = run.record.as_ref().filter(|r| !r.quality.is_empty()) {
                runs.push((run.name(), super::runs::color(i), &record.quality));
            }
        }
        Plot::new("quality over training")
            .height(height)
            .legend(Legend::default())
            .x_axis_label("step")
            .y_axis_label(measure.label())
            .include_y(0.0)
            .show(ui, |plot| {
                for (name, color, readings) in &runs {
                    let values: Vec<[f64; 2]> = readings.iter().map(|r| [r.step as f64, measure.of(r).0]).collect();
                    let floor: Vec<[f64; 2]> = readings.iter().map(|r| [r.step as f64, measure.of(r).1]).collect();
                    plot.line(Line::new(name.as_str(), PlotPoints::from(values.clone())).color(*color).width(2.0));
                    // Unnamed: out of the legend (the text below says what the dots and dashes are).
                    plot.points(Points::new("", PlotPoints::from(values)).color(*color).radius(3.0));
                    plot.line(Line::new("", PlotPoints::from(floor)).color(*color).style(LineStyle::dashed_loose()));
                }
            });
        self.quality_text_ui(ui);
    }

    /// The last reading's numbers, the formula and one plain line.
    fn quality_text_ui(&self, ui: &mut egui::Ui) {
        match self.quality.last() {
            Some(r) => {
                ui.label(format!(
                    "last reading: step {}: FD {:.2} (real images {:.2}), {:.1} % of their class (real {:.1} %), \
                     nearest training image {:.3} (real {:.3}); {} readings, n = {}, {:.1} s",
                    r.step,
                    r.frechet_distance,
                    r.floor_frechet_distance,
                    100.0 * r.class_accuracy,
                    100.0 * r.floor_class_accuracy,
                    r.nearest_training,
                    r.floor_nearest_training,
                    self.quality.len(),
                    r.samples,
                    r.seconds
                ));
            }
            None => {
                ui.small("No readings yet: turn the quality meter on (left) and train, or compare runs that have one.");
            }
        }
        ui.small(
            "FD = |μ_s - μ_r|² + Tr(Σ_s + Σ_r - 2 (Σ_s Σ_r)^½) of the classifier's features of the samples (s) \
             and the test set (r); dashed: real test images scored the same way at the same n, the best a \
             reading can show.",
        );
        ui.small(
            "The samples start from the same noise at every reading, so the curve shows the model changing: \
             a flat loss with a falling FD means the samples still improve. A nearest training image well \
             below the real images' means copying.",
        );
    }
}
