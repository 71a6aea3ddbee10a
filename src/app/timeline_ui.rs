//! The timeline: a scrubber over every recorded step of the last run, play / pause and speed.

use eframe::egui;

use super::LabApp;

pub fn timeline_ui(app: &mut LabApp, ui: &mut egui::Ui) {
    let frames = app.trajectory.as_ref().map_or(0, |t| t.frames.len());
    ui.horizontal(|ui| {
        let play_label = if app.playing { "Pause" } else { "Play" };
        if ui.add_enabled(frames > 1, egui::Button::new(play_label)).on_hover_text("Space").clicked() {
            if !app.playing && app.cursor + 1 >= frames {
                app.cursor = 0; // Play again from x_T.
            }
            app.playing = !app.playing;
        }
        ui.add(egui::Slider::new(&mut app.settings.play_speed, 1.0..=240.0).logarithmic(true).text("steps/s"));
        ui.separator();
        if frames == 0 {
            ui.label("Timeline: no run yet");
            return;
        }
        let mut cursor = app.cursor.min(frames - 1);
        let t_of = |i: usize| app.trajectory.as_ref().and_then(|t| t.frames.get(i)).map_or(0, |f| f.t);
        let response = ui.add(
            egui::Slider::new(&mut cursor, 0..=frames - 1)
                .text("Timestep")
                .show_value(false)
                .custom_formatter(|i, _| format!("t = {}", t_of(i as usize))),
        );
        ui.label(format!("t = {}  (frame {} of {})  (arrow keys: one step)", t_of(cursor), cursor + 1, frames));
        if let Some(trajectory) = app.trajectory.as_ref().filter(|t| t.stride > 1) {
            ui.label(format!(
                "memory budget ({} MB): keeping every {}th step",
                trajectory.budget_bytes >> 20,
                trajectory.stride
            ))
            .on_hover_text("A long run at a large batch would not fit in memory: the recording keeps evenly spaced steps, x_T and the last one.");
        }
        if response.changed() {
            app.cursor = cursor;
            app.follow = cursor + 1 == frames;
            app.playing = false;
        }
    });
}
