//! The page's plot of the plane: [`Canvas`] (a painter over a square that shows [-VIEW_BOUND, VIEW_BOUND]²)
//! and `Lab2dPanel::plot_ui`, which lays the parts' layers on it (the field's heat map, the axes, the data
//! and its cloud, the field's arrows, the particles) and takes the mouse's drawing.

use eframe::egui::{self, Color32, Pos2, Rect, Sense, Stroke, Vec2};

use super::Lab2dPanel;
use super::data::DataChoice;
use super::training::LabPhase;
use crate::app::context::PanelContext;
use crate::diffusion::mixture::Point;
use crate::lab2d::data::{PointData, VIEW_BOUND};

/// The colour of points without a class in the step comparison.
pub const NO_CLASS: [u8; 3] = [120, 120, 120];

pub fn color32(rgb: [u8; 3]) -> Color32 {
    Color32::from_rgb(rgb[0], rgb[1], rgb[2])
}

pub fn faded(rgb: [u8; 3], alpha: f32) -> Color32 {
    Color32::from_rgba_unmultiplied(rgb[0], rgb[1], rgb[2], (alpha * 255.0) as u8)
}

/// Where plane point `p` is drawn in `rect`, which shows [-VIEW_BOUND, VIEW_BOUND]² (y up).
pub fn screen_from_point(rect: Rect, p: [f64; 2]) -> Pos2 {
    let u = ((p[0] + VIEW_BOUND) / (2.0 * VIEW_BOUND)) as f32;
    let v = ((VIEW_BOUND - p[1]) / (2.0 * VIEW_BOUND)) as f32;
    rect.min + Vec2::new(u * rect.width(), v * rect.height())
}

/// The plane point drawn at `pos` in `rect` (the inverse of [`screen_from_point`]).
pub fn point_from_screen(rect: Rect, pos: Pos2) -> Point {
    let u = f64::from((pos.x - rect.min.x) / rect.width());
    let v = f64::from((pos.y - rect.min.y) / rect.height());
    [-VIEW_BOUND + 2.0 * VIEW_BOUND * u, VIEW_BOUND - 2.0 * VIEW_BOUND * v]
}

/// A painter over `rect`, which shows the plane from -VIEW_BOUND to VIEW_BOUND on both axes (y up).
pub struct Canvas {
    pub painter: egui::Painter,
    pub rect: Rect,
}

impl Canvas {
    pub fn new(painter: egui::Painter, rect: Rect) -> Self {
        Self { painter, rect }
    }

    /// Where plane point `p` is on the screen.
    pub fn at(&self, p: [f64; 2]) -> Pos2 {
        screen_from_point(self.rect, p)
    }

    pub fn at32(&self, q: [f32; 2]) -> Pos2 {
        self.at([f64::from(q[0]), f64::from(q[1])])
    }

    /// A filled dot at plane point `q`.
    pub fn dot(&self, q: [f32; 2], radius: f32, color: Color32) {
        self.painter.circle_filled(self.at32(q), radius, color);
    }

    /// The frame around the canvas.
    pub fn border(&self) {
        self.painter.rect_stroke(self.rect, 0.0, Stroke::new(1.0, Color32::from_gray(160)), egui::StrokeKind::Inside);
    }

    /// A small square plot of `side` points, white, with `data`'s points faint on it (the step comparison's
    /// and the recipes' little plots draw their particles over it).
    pub fn small(ui: &mut egui::Ui, side: f32, data: Option<&PointData>) -> Self {
        let (rect, _) = ui.allocate_exact_size(Vec2::splat(side), Sense::hover());
        let canvas = Canvas::new(ui.painter_at(rect), rect);
        canvas.painter.rect_filled(rect, 0.0, Color32::WHITE);
        for p in data.map_or(&[][..], |d| &d.points) {
            canvas.dot(*p, 1.0, faded(NO_CLASS, 0.25));
        }
        canvas
    }

    /// Grid lines at the integers, the axes a little stronger.
    fn axes(&self) {
        for k in -3..=3 {
            let v = f64::from(k);
            let stroke = Stroke::new(if k == 0 { 1.2 } else { 0.6 }, Color32::from_gray(215));
            self.painter.line_segment([self.at([v, -VIEW_BOUND]), self.at([v, VIEW_BOUND])], stroke);
            self.painter.line_segment([self.at([-VIEW_BOUND, v]), self.at([VIEW_BOUND, v])], stroke);
        }
    }
}

impl Lab2dPanel {
    /// The plot, `side` points square: a click or drag on it draws points while drawing.
    pub(super) fn plot_ui(&mut self, ui: &mut egui::Ui, ctx: &PanelContext, side: f32) {
        let (rect, response) = ui.allocate_exact_size(Vec2::splat(side), Sense::click_and_drag());
        let response = response.on_hover_text(if self.data.choice == DataChoice::Drawn {
            "Click or drag to add points of the selected class"
        } else {
            "The plane from -3 to 3: the data, its noised cloud, the field and the particles"
        });
        response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Canvas, true, "2-D plot"));
        self.data.draw_with_pointer(rect, &response);
        let canvas = Canvas::new(ui.painter_at(rect), rect);
        canvas.painter.rect_filled(rect, 0.0, Color32::WHITE);
        self.field.paint_heat(&canvas);
        canvas.axes();
        let dim = self.field.show_cloud || self.particles.run.is_some();
        let cloud = self.field.level(ctx).filter(|_| self.field.show_cloud).map(|level| (self.field.t, level));
        self.data.paint(&canvas, dim, cloud);
        self.field.paint_arrows(&canvas);
        self.particles.paint(&canvas);
        canvas.border();
        canvas.painter.text(
            rect.min + Vec2::new(6.0, 4.0),
            egui::Align2::LEFT_TOP,
            self.caption(),
            egui::FontId::proportional(13.0),
            Color32::BLACK,
        );
    }

    /// The plot's caption: what to do first, else the t shown.
    fn caption(&self) -> String {
        match (self.data.current(), self.training.phase) {
            (None, _) => "Draw points: click or drag here".to_string(),
            (Some(_), LabPhase::Empty) => "Press Start training to fit ε_θ to this data".to_string(),
            _ => self.field.caption(),
        }
    }
}

#[cfg(test)]
mod tests {
    use eframe::egui::{Rect, pos2};

    use super::{point_from_screen, screen_from_point};
    use crate::lab2d::data::VIEW_BOUND;

    #[test]
    fn the_plane_maps_onto_the_square_with_y_up_and_back() {
        let rect = Rect::from_min_max(pos2(10.0, 20.0), pos2(310.0, 320.0));
        assert_eq!(screen_from_point(rect, [-VIEW_BOUND, VIEW_BOUND]), rect.min);
        assert_eq!(screen_from_point(rect, [VIEW_BOUND, -VIEW_BOUND]), rect.max);
        assert_eq!(screen_from_point(rect, [0.0, 0.0]), rect.center());
        for p in [[0.5, -1.25], [-2.0, 2.75], [0.0, 0.0]] {
            let back = point_from_screen(rect, screen_from_point(rect, p));
            assert!((back[0] - p[0]).abs() < 1e-4 && (back[1] - p[1]).abs() < 1e-4, "{p:?} -> {back:?}");
        }
    }
}
