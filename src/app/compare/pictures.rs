//! The middle of the window while comparing: A and B side by side, or the grid / strip filling in.

use eframe::egui;

use super::ComparePanel;
use crate::app::viewer::{Look, TrajectoryViewer};
use crate::engine::GenerateRequest;
use crate::images::Picture;
use crate::run::grid::conditioning_caption;

impl ComparePanel {
    /// The middle of the window in A/B mode: A and B side by side, each labelled with what it is; B shows
    /// the frame nearest in noise level to A's.
    pub fn ab_pictures_ui(&mut self, ui: &mut egui::Ui, viewer_a: &mut TrajectoryViewer, look: Look) {
        let (quantity, map) = (look.quantity, look.color_map);
        let label_of = |request: &GenerateRequest| match &request.branch {
            Some(branch) => format!(
                "continued from A's step {} · {} · {} · w = {} · seed {}",
                branch.at_step,
                conditioning_caption(request),
                request.sampler.label(),
                request.guidance,
                request.seed
            ),
            None => format!(
                "{} · {} · {} · w = {} · {} schedule",
                request.model,
                conditioning_caption(request),
                request.sampler.label(),
                request.guidance,
                request.schedule.kind
            ),
        };
        let a_label = viewer_a.trajectory.as_ref().map(|t| label_of(&t.request)).unwrap_or_default();
        let b_label = self.viewer_b.trajectory.as_ref().map(|t| label_of(&t.request)).unwrap_or_default();
        let a_level = viewer_a.shown_frame(quantity).map(|f| (f.t, f.log_snr));
        if let Some((_, log_snr)) = a_level {
            self.viewer_b.seek_noise_level(log_snr);
        }
        let b_level = self.viewer_b.shown_frame(quantity).map(|f| (f.t, f.log_snr));
        let a_texture = viewer_a.texture(ui.ctx(), quantity, map);
        let b_texture = b_level.and_then(|_| self.viewer_b.texture(ui.ctx(), quantity, map));
        let waiting_b = if self.viewer_b.trajectory.is_some() { "waiting for A to finish…" } else { "not run yet" };
        // Both halves in view: shrink the zoom until two grids fit side by side (never below 1).
        let widest =
            [&a_texture, &b_texture].iter().filter_map(|t| t.as_ref().map(|t| t.size_vec2().x)).fold(1.0f32, f32::max);
        let half = (ui.available_width() - 24.0) / 2.0;
        let zoom = look.zoom.min((half / widest).floor()).max(1.0);
        egui::ScrollArea::both().show(ui, |ui| {
            ui.horizontal_top(|ui| {
                ui.vertical(|ui| {
                    ui.strong(format!("A: {a_label}"));
                    match (a_level, a_texture) {
                        (Some((t, log_snr)), Some(texture)) => {
                            ui.label(format!("t = {t}, λ = {log_snr:.2}"));
                            ui.add(egui::Image::new((texture.id(), texture.size_vec2() * zoom)).alt_text("A images"));
                        }
                        _ => {
                            ui.label("Press Generate: A runs first, then B.");
                        }
                    }
                });
                ui.separator();
                ui.vertical(|ui| {
                    ui.strong(format!("B: {b_label}"));
                    match (b_level, b_texture) {
                        (Some((t, log_snr)), Some(texture)) => {
                            ui.label(format!("t = {t}, λ = {log_snr:.2} (nearest noise level to A's)"));
                            ui.add(egui::Image::new((texture.id(), texture.size_vec2() * zoom)).alt_text("B images"));
                        }
                        _ => {
                            ui.label(waiting_b);
                        }
                    }
                });
            });
        });
    }

    /// The middle of the window in grid mode: the labelled grid, cells appearing as they finish.
    pub fn grid_picture_ui(&mut self, ui: &mut egui::Ui, zoom: f32) {
        let Some(grid) = &self.grid else {
            ui.centered_and_justified(|ui| {
                ui.label("Pick two settings and their values on the left, then press Generate: one image per pair.");
            });
            return;
        };
        let zoom = zoom.round().max(1.0) as usize;
        let texture = self.grid_texture.get(ui.ctx(), grid.serial, || {
            let cells: Vec<Option<Picture>> =
                grid.cells.iter().map(|c| c.as_ref().map(|p| crate::images::scaled(p, zoom))).collect();
            let picture = crate::images::labelled_grid(&cells, &grid.labels(), 4);
            Some(egui_image_from_picture(&picture))
        });
        if let Some(texture) = texture {
            // Fitted to the width (its captions are drawn large enough to stay readable at half size), so a
            // grid with long row captions shows its pictures, not only its captions.
            let size = texture.size_vec2();
            let fit = (ui.available_width() / size.x).clamp(0.5, 1.0);
            egui::ScrollArea::both().show(ui, |ui| {
                ui.add(egui::Image::new((texture.id(), size * fit)).alt_text("X/Y grid"));
            });
        }
    }
}

fn egui_image_from_picture(picture: &Picture) -> egui::ColorImage {
    let pixels = match picture.channels {
        3 => picture.pixels.chunks_exact(3).map(|p| egui::Color32::from_rgb(p[0], p[1], p[2])).collect(),
        _ => picture.pixels.iter().map(|v| egui::Color32::from_gray(*v)).collect(),
    };
    egui::ColorImage::new([picture.width, picture.height], pixels)
}
