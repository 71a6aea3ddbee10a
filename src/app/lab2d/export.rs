//! The page's exports: the plot as a PNG (drawn by the file renderer, with the lab's settings as PNG text)
//! and the particles' run as a GIF.

use eframe::egui;

use super::Lab2dPanel;
use super::field::FIELD_RESOLUTION;
use crate::app::context::PanelContext;
use crate::images::Picture;
use crate::lab2d::LAB2D_CHUNK;
use crate::lab2d::figure::{FieldLayer, Figure};
use crate::lab2d::run::noised_points;

impl Lab2dPanel {
    /// "Save picture…" and "Save animation…".
    pub(super) fn export_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        ui.horizontal(|ui| {
            let has_data = self.data.current().is_some();
            if ui.add_enabled(has_data, egui::Button::new("Save picture…")).clicked() {
                match self.export_picture(ctx) {
                    Some((picture, text)) => {
                        ctx.dialogs.save_in_background(
                            ui.ctx(),
                            "diffusion-lab-2d.png".into(),
                            ("png", "PNG image"),
                            move |path| crate::images::save_png(path, &picture, &text),
                        );
                    }
                    None => ctx.set_status("2-D lab: nothing to save yet", true),
                }
            }
            let has_run = self.particles.run.is_some();
            if ui.add_enabled(has_run, egui::Button::new("Save animation…")).clicked()
                && let Some(frames) = self.export_animation()
            {
                ctx.dialogs.save_in_background(
                    ui.ctx(),
                    "diffusion-lab-2d.gif".into(),
                    ("gif", "GIF animation"),
                    move |path| {
                        crate::images::gif_bytes(&frames)
                            .map_err(|e| e.to_string())
                            .and_then(|bytes| crate::files::write_atomic(path, &bytes).map_err(|e| e.to_string()))
                    },
                );
            }
        });
    }

    /// The plot as the window shows it now, drawn by the file renderer, with its settings as PNG text.
    fn export_picture(&self, ctx: &PanelContext) -> Option<(Picture, Vec<(String, String)>)> {
        let data = self.data.current()?;
        let field = &self.field;
        let level = field.level(ctx)?;
        let cloud = field.show_cloud.then(|| noised_points(data, &level, self.data.seed));
        let error = field.shown_error();
        let particles = self.particles.run.as_ref();
        let mut caption = vec![data.description.clone(), format!("t = {} (lambda {:.2})", field.t, level.log_snr)];
        if let Some(p) = particles {
            caption.push(format!("{}: sliced W2 {:.3}", p.request.sampler.label(), p.distances.sliced_wasserstein));
        }
        let picture = Figure {
            data: Some(data),
            cloud: cloud.as_deref(),
            heat: error.as_deref().map(|e| (e, FIELD_RESOLUTION)),
            field: field.shown_values().map(|values| FieldLayer {
                values,
                resolution: FIELD_RESOLUTION,
                quantity: field.quantity,
                sigma: level.sigma(),
            }),
            particles: particles.map(|p| (p.run.as_ref(), self.particles.frame.round() as usize)),
            paths: self.particles.paths,
            caption,
        }
        .render(640);
        let settings = serde_json::json!({
            "data": data.description,
            "points": data.points.len(),
            "train_steps": self.training.step,
            "seed": self.data.seed,
            "t": field.t,
            "particles": particles.map(|p| &p.request),
        });
        Some((picture, vec![(LAB2D_CHUNK.to_string(), settings.to_string())]))
    }

    /// The particles' run from x_T to x_0, at most about 60 frames, the last held for two seconds.
    fn export_animation(&self) -> Option<Vec<(Picture, u32)>> {
        let p = self.particles.run.as_ref()?;
        let last = p.run.frames.len().saturating_sub(1);
        // At most 60 frames: a DDPM run of 1000 steps is shown every 17th step.
        let stride = last.div_ceil(60).max(1);
        let mut frames: Vec<usize> = (0..last).step_by(stride).collect();
        frames.push(last);
        Some(
            frames
                .into_iter()
                .map(|k| {
                    let picture = Figure {
                        data: self.data.current(),
                        particles: Some((p.run.as_ref(), k)),
                        paths: self.particles.paths,
                        caption: vec![format!("{}  step {k}/{last}", p.request.sampler.label())],
                        ..Figure::default()
                    }
                    .render(400);
                    (picture, if k == last { 2000 } else { 120 })
                })
                .collect(),
        )
    }
}
