//! [`DataPanel`]: the data the lab trains on, a preset or points drawn with the mouse (a class per colour),
//! its controls, and its layer of the plot (the points, the noised cloud x_t, the drawn points).

use eframe::egui::{self, Color32, Rect, Stroke};

use super::plot::{Canvas, color32, faded, point_from_screen};
use crate::diffusion::NoiseLevel;
use crate::diffusion::mixture::Point;
use crate::lab2d::data::{DEFAULT_POINTS, MAX_CLASSES, PointData, Preset};
use crate::lab2d::figure::{CLASS_COLORS, class_color};
use crate::lab2d::run::noised_points;

/// Drag distance (plane units) between two drawn points.
const DRAW_SPACING: f64 = 0.06;

/// Where the data comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataChoice {
    Preset(Preset),
    Drawn,
}

impl DataChoice {
    fn label(self) -> &'static str {
        match self {
            Self::Preset(p) => p.label(),
            Self::Drawn => "Draw your own",
        }
    }
}

pub struct DataPanel {
    pub choice: DataChoice,
    pub drawn: Vec<(Point, usize)>,
    /// The class the mouse draws.
    pub draw_class: usize,
    pub points: usize,
    pub seed: u64,
    /// The data shown (and trained on once Train is pressed).
    current: Option<PointData>,
    /// Why there is no data (an empty drawing).
    error: Option<String>,
    /// Where the mouse last added a point during this click or drag.
    last_draw: Option<Point>,
    /// The data noised to level t (the t it was made for).
    cloud: Option<(usize, Vec<[f32; 2]>)>,
}

impl Default for DataPanel {
    fn default() -> Self {
        Self {
            choice: DataChoice::Preset(Preset::Moons),
            drawn: Vec::new(),
            draw_class: 0,
            points: DEFAULT_POINTS,
            seed: 1,
            current: None,
            error: None,
            last_draw: None,
            cloud: None,
        }
    }
}

impl DataPanel {
    /// The data shown, if the choice makes any.
    pub fn current(&self) -> Option<&PointData> {
        self.current.as_ref()
    }

    /// Why the choice makes no data (an empty drawing).
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    /// The classes of the data (1 without data).
    pub fn class_count(&self) -> usize {
        self.current.as_ref().map_or(1, |d| d.class_count)
    }

    /// The data for the current choice, made afresh (a preset's sample, or the drawing's distribution).
    pub fn refresh(&mut self) {
        let made = match self.choice {
            DataChoice::Preset(preset) => Ok(PointData::from_preset(preset, self.points, self.seed)),
            DataChoice::Drawn => PointData::from_drawn(&self.drawn, self.points, self.seed),
        };
        match made {
            Ok(data) => {
                self.current = Some(data);
                self.error = None;
            }
            Err(error) => {
                self.current = None;
                self.error = Some(error.to_string());
            }
        }
        self.cloud = None;
    }

    /// Makes the data the first time the page is drawn.
    pub fn ensure_made(&mut self) {
        if self.current.is_none() && self.error.is_none() {
            self.refresh();
        }
    }

    /// The "Data" section of the left column.
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        ui.heading("Data");
        let before = (self.choice, self.points, self.seed);
        egui::ComboBox::from_label("Data set").selected_text(self.choice.label()).show_ui(ui, |ui| {
            for preset in Preset::ALL {
                ui.selectable_value(&mut self.choice, DataChoice::Preset(preset), preset.label());
            }
            ui.selectable_value(&mut self.choice, DataChoice::Drawn, DataChoice::Drawn.label());
        });
        ui.add(egui::Slider::new(&mut self.points, 100..=10_000).logarithmic(true).text("Points"))
            .on_hover_text("How many points are drawn from the distribution to train on");
        ui.add(egui::DragValue::new(&mut self.seed).prefix("data seed "));
        if self.choice == DataChoice::Drawn {
            self.drawing_ui(ui);
        }
        if before != (self.choice, self.points, self.seed) {
            self.refresh();
        }
        match (&self.current, &self.error) {
            (Some(data), _) => {
                ui.label(format!(
                    "q(x_0) = Σ_k π_k N(μ_k, s_k² I): {} Gaussians, {} class(es); {} points drawn from it.",
                    data.mixture.components.len(),
                    data.class_count,
                    data.points.len()
                ));
                ui.weak("Every data set here is a mixture of Gaussians, so the exact score of its noised versions is known.");
            }
            (None, Some(error)) => {
                ui.colored_label(Color32::from_rgb(200, 120, 0), error);
            }
            (None, None) => {}
        }
    }

    /// The class to draw and the drawing's count and Clear button.
    fn drawing_ui(&mut self, ui: &mut egui::Ui) {
        ui.label("Click or drag on the plot to add points; each colour is a class.");
        ui.horizontal(|ui| {
            for (class, rgb) in CLASS_COLORS.iter().enumerate().take(MAX_CLASSES) {
                let text = egui::RichText::new(format!("Class {}", class + 1)).color(color32(*rgb));
                ui.selectable_value(&mut self.draw_class, class, text);
            }
        });
        ui.horizontal(|ui| {
            ui.label(format!("{} drawn", self.drawn.len()));
            if ui.button("Clear drawing").clicked() {
                self.drawn.clear();
                self.refresh();
            }
        });
    }

    /// While drawing: a click or drag on the plot (`rect`, answering with `response`) adds points of the
    /// class picked, at least [`DRAW_SPACING`] apart along a stroke.
    pub fn draw_with_pointer(&mut self, rect: Rect, response: &egui::Response) {
        if self.choice != DataChoice::Drawn {
            return;
        }
        if let Some(pos) = response.interact_pointer_pos().filter(|p| rect.contains(*p)) {
            let point = point_from_screen(rect, pos);
            let far_enough =
                self.last_draw.is_none_or(|last| (point[0] - last[0]).hypot(point[1] - last[1]) >= DRAW_SPACING);
            if (response.clicked() || response.dragged()) && far_enough {
                self.drawn.push((point, self.draw_class));
                self.last_draw = Some(point);
                self.refresh();
            }
        }
        if response.drag_stopped() || response.clicked() {
            self.last_draw = None;
        }
    }

    /// The data's layer of the plot: its points (faint under a cloud or particles), the cloud x_t when
    /// `cloud` gives its t and level, and the drawn points while drawing.
    pub fn paint(&mut self, canvas: &Canvas, dim: bool, cloud: Option<(usize, NoiseLevel)>) {
        if let Some(data) = &self.current {
            for (p, c) in data.points.iter().zip(&data.classes) {
                canvas.dot(*p, 1.8, faded(class_color(*c), if dim { 0.15 } else { 0.55 }));
            }
            if let Some((t, level)) = cloud {
                if self.cloud.as_ref().is_none_or(|(made_at, _)| *made_at != t) {
                    self.cloud = Some((t, noised_points(data, &level, self.seed)));
                }
                if let Some((_, cloud)) = &self.cloud {
                    for (p, c) in cloud.iter().zip(&data.classes) {
                        canvas.dot(*p, 1.8, faded(class_color(*c), 0.5));
                    }
                }
            }
        }
        for (p, class) in &self.drawn {
            if self.choice == DataChoice::Drawn {
                canvas.painter.circle_stroke(canvas.at(*p), 3.0, Stroke::new(1.0, color32(class_color(Some(*class)))));
            }
        }
    }
}
