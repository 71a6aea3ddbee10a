//! [`TrajectoryViewer`]: the recorded frames of one run with a cursor on them, the timeline that moves
//! the cursor, playback, and the picture of the frame under it. The Generate page's main run, A/B's B and
//! the Train view's sample grids are each one of these.

use std::time::Instant;

use eframe::egui;

use super::colors::{self, TextureCache};
use super::state::{AttentionPick, ColorMap, Overlay, Quantity, Trajectory};
use super::step_ui::StepPanel;
use crate::engine::{Decoded, Frame};

/// How a viewer draws its picture: what the settings say, shared by every viewer on the page.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Look {
    pub quantity: Quantity,
    pub color_map: ColorMap,
    /// Screen pixels per image pixel.
    pub zoom: f32,
    /// Colour on the GPU (shaders/display.wgsl) instead of uploading a CPU texture.
    pub gpu: bool,
    /// "This step" beside the picture.
    pub this_step: bool,
    pub overlay: Overlay,
    pub attention: AttentionPick,
}

pub struct TrajectoryViewer {
    pub trajectory: Option<Trajectory>,
    /// Position in the trajectory's frames of the frame under the cursor.
    pub cursor: usize,
    /// Whether the cursor follows the newest frame while a run streams.
    pub follow: bool,
    pub playing: bool,
    /// Frames of playback owed but not yet shown (fractions of a frame carry over).
    play_clock: f64,
    /// Which run the trajectory is (a job id, or a serial for runs that are not jobs): frames of two runs
    /// with the same index are different pictures.
    pub serial: u64,
    texture: TextureCache<(u64, usize, Quantity, ColorMap)>,
    /// What the picture is called for screen readers and tests.
    alt_text: &'static str,
    /// "This step" for the frame under the cursor, and the guidance overlay.
    pub step: StepPanel,
}

impl TrajectoryViewer {
    pub fn new(texture_name: &'static str, alt_text: &'static str) -> Self {
        Self {
            trajectory: None,
            cursor: 0,
            follow: true,
            playing: false,
            play_clock: 0.0,
            serial: 0,
            texture: TextureCache::new(texture_name),
            alt_text,
            step: StepPanel::default(),
        }
    }

    /// Shows `trajectory` (a new run: empty, or complete as the Train view's samples come) from x_T.
    pub fn show(&mut self, trajectory: Trajectory, serial: u64) {
        self.trajectory = Some(trajectory);
        self.serial = serial;
        self.cursor = 0;
        self.follow = true;
        self.playing = false;
        self.play_clock = 0.0;
    }

    pub fn clear(&mut self) {
        self.trajectory = None;
        self.cursor = 0;
        self.playing = false;
    }

    /// Frames recorded so far.
    pub fn len(&self) -> usize {
        self.trajectory.as_ref().map_or(0, |t| t.frames.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records a streamed frame; the cursor moves with it while following.
    pub fn push(&mut self, frame: Frame, total_steps: usize) {
        if let Some(trajectory) = &mut self.trajectory {
            trajectory.total_steps = total_steps;
            trajectory.push(frame);
            if self.follow {
                self.cursor = trajectory.frames.len() - 1;
            }
        }
    }

    /// Gives frame `index` the pixels the engine decoded for it after the run.
    pub fn set_decoded(&mut self, index: usize, decoded: Decoded) {
        if let Some(trajectory) = &mut self.trajectory {
            trajectory.set_decoded(index, decoded);
        }
    }

    /// The frame under the cursor as recorded (latent frames may still lack their pixels).
    pub fn cursor_frame(&self) -> Option<&Frame> {
        self.trajectory.as_ref()?.frames.get(self.cursor)
    }

    /// The frame on screen for `view`: the cursor's, or while a latent frame waits for its pixels, the
    /// nearest decoded one (see [`Trajectory::display_position`]).
    pub fn shown_frame(&self, quantity: Quantity) -> Option<&Frame> {
        let trajectory = self.trajectory.as_ref()?;
        trajectory.frames.get(trajectory.display_position(self.cursor, quantity))
    }

    /// Moves the cursor to `position` (clamped), as a user does: following stops unless it is the newest.
    pub fn seek(&mut self, position: usize) {
        let frames = self.len();
        if frames == 0 {
            return;
        }
        self.cursor = position.min(frames - 1);
        self.follow = self.cursor + 1 == frames;
    }

    /// Puts the cursor on the frame nearest in noise level to λ = `log_snr` (how B follows A).
    pub fn seek_noise_level(&mut self, log_snr: f64) {
        if let Some(position) = self.trajectory.as_ref().and_then(|t| t.nearest_noise_level(log_snr)) {
            self.cursor = position;
        }
    }

    /// The arrow keys move one frame (frames run from t = T at index 0 to t = 0, so "left" is one t
    /// higher, back towards noise); space plays or pauses.
    pub fn keys(&mut self, left: bool, right: bool, space: bool) {
        let frames = self.len();
        if left && self.cursor > 0 {
            self.cursor -= 1;
            self.follow = false;
        }
        if right && self.cursor + 1 < frames {
            self.seek(self.cursor + 1);
        }
        if space && frames > 1 {
            self.toggle_playing();
        }
    }

    pub fn toggle_playing(&mut self) {
        if !self.playing && self.cursor + 1 >= self.len() {
            self.cursor = 0; // Play again from x_T.
        }
        self.playing = !self.playing;
    }

    /// Moves the cursor on by the frames that `speed` frames per second owe since the last frame.
    pub fn advance_playback(&mut self, ctx: &egui::Context, speed: f32) {
        if !self.playing {
            return;
        }
        let frames = self.len();
        self.play_clock += ctx.input(|i| i.stable_dt) as f64 * speed as f64;
        let advance = self.play_clock.floor() as usize;
        if advance > 0 {
            self.play_clock -= advance as f64;
            self.cursor = (self.cursor + advance).min(frames.saturating_sub(1));
            self.follow = false;
            if self.cursor + 1 >= frames {
                self.playing = false;
            }
        }
        ctx.request_repaint();
    }

    /// The texture of the frame on screen, re-uploaded only when the frame, quantity or colours change.
    pub fn texture(&mut self, ctx: &egui::Context, quantity: Quantity, map: ColorMap) -> Option<egui::TextureHandle> {
        let trajectory = self.trajectory.as_ref()?;
        let frame = trajectory.frames.get(trajectory.display_position(self.cursor, quantity))?;
        let key = (self.serial, frame.index, quantity, map);
        self.texture.get(ctx, key, || Some(colors::color_image(frame, quantity, map)))
    }

    /// The scrubber over every recorded frame, with play / pause and the playback speed.
    pub fn timeline_ui(&mut self, ui: &mut egui::Ui, play_speed: &mut f32) {
        let frames = self.len();
        ui.horizontal(|ui| {
            let play_label = if self.playing { "Pause" } else { "Play" };
            if ui.add_enabled(frames > 1, egui::Button::new(play_label)).on_hover_text("Space").clicked() {
                self.toggle_playing();
            }
            ui.add(egui::Slider::new(play_speed, 1.0..=240.0).logarithmic(true).text("steps/s"));
            ui.separator();
            let Some(trajectory) = self.trajectory.as_ref().filter(|_| frames > 0) else {
                ui.label("Timeline: no run yet");
                return;
            };
            let mut cursor = self.cursor.min(frames - 1);
            let t_of = |i: usize| trajectory.frames.get(i).map_or(0, |f| f.t);
            let response = ui.add(
                egui::Slider::new(&mut cursor, 0..=frames - 1)
                    .text("Timestep")
                    .show_value(false)
                    .custom_formatter(|i, _| format!("t = {}", t_of(i as usize))),
            );
            ui.label(format!("t = {}  (frame {} of {})  (arrow keys: one step)", t_of(cursor), cursor + 1, frames));
            if trajectory.stride > 1 {
                ui.label(format!(
                    "memory budget ({} MB): keeping every {}th step",
                    trajectory.budget_bytes >> 20,
                    trajectory.stride
                ))
                .on_hover_text(
                    "A long run at a large batch would not fit in memory: the recording keeps evenly spaced \
                     steps, x_T and the last one.",
                );
            }
            if response.changed() {
                self.seek(cursor);
                self.playing = false;
            }
        });
    }

    /// The frame on screen at `look`'s zoom and colours (with "This step" beside it when open);
    /// `placeholder` where there is none yet.
    pub fn image_ui(&mut self, ui: &mut egui::Ui, look: Look, placeholder: &str) {
        if !(look.this_step && self.trajectory.is_some()) {
            self.picture_ui(ui, look, placeholder);
            return;
        }
        ui.horizontal_top(|ui| {
            let picture_width = (ui.available_width() * 0.45).max(120.0);
            ui.allocate_ui(egui::vec2(picture_width, ui.available_height()), |ui| {
                self.picture_ui(ui, look, placeholder);
            });
            ui.separator();
            // The panel reads top to bottom (the row around it lays out left to right).
            ui.vertical(|ui| {
                egui::ScrollArea::vertical().id_salt(("this_step", self.alt_text)).show(ui, |ui| {
                    if let Some(trajectory) = &self.trajectory {
                        self.step.ui(ui, trajectory, self.serial, self.cursor, look);
                    }
                });
            });
        });
    }

    /// The picture alone, with the overlay over it.
    fn picture_ui(&mut self, ui: &mut egui::Ui, look: Look, placeholder: &str) {
        if look.gpu
            && let Some(frame) = self.shown_frame(look.quantity)
        {
            let (values, shape) = colors::frame_values(frame, look.quantity);
            let callback = super::gpu_display::DisplayCallback { values, shape, map: look.color_map };
            let [w, h] = callback.grid_size();
            let size = egui::vec2(w as f32, h as f32) * look.zoom;
            let alt_text = self.alt_text;
            egui::ScrollArea::both().show(ui, |ui| {
                let (rect, response) = ui.allocate_exact_size(size, egui::Sense::hover());
                response.widget_info(|| egui::WidgetInfo::labeled(egui::Role::Image, true, alt_text));
                ui.painter().add(eframe::egui_wgpu::Callback::new_paint_callback(rect, callback));
                self.overlay_ui(ui, &response, look, shape);
            });
            return;
        }
        match self.texture(ui.ctx(), look.quantity, look.color_map) {
            Some(texture) => {
                let size = texture.size_vec2() * look.zoom;
                let shape = self.shown_frame(look.quantity).map(|f| colors::frame_values(f, look.quantity).1);
                egui::ScrollArea::both().show(ui, |ui| {
                    let response = ui.add(egui::Image::new((texture.id(), size)).alt_text(self.alt_text));
                    if let Some(shape) = shape {
                        self.overlay_ui(ui, &response, look, shape);
                    }
                });
            }
            None => {
                ui.centered_and_justified(|ui| {
                    ui.label(placeholder);
                });
            }
        }
    }

    /// The overlay over the picture at `response` (showing values of `display` shape), and which image
    /// of the batch "This step" follows: the one under the mouse.
    fn overlay_ui(&mut self, ui: &egui::Ui, response: &egui::Response, look: Look, display: [usize; 4]) {
        let Some(trajectory) = &self.trajectory else { return };
        let [batch, _, h, w] = display;
        if look.this_step
            && batch == trajectory.request.batch
            && let Some(pointer) = response.hover_pos()
        {
            let cell = |offset: f32, size: usize| ((offset / look.zoom) as usize) / (size + colors::GRID_GAP);
            let (column, row) = (cell(pointer.x - response.rect.left(), w), cell(pointer.y - response.rect.top(), h));
            let image = row * colors::grid_columns(batch) + column;
            if image < batch && self.step.image.is_some() {
                self.step.image = Some(image);
            }
        }
        let texture = match look.overlay {
            Overlay::Off => None,
            Overlay::Guidance => self.step.guidance_overlay(ui.ctx(), trajectory, self.serial, self.cursor, display),
            Overlay::Attention => {
                self.step.attention_overlay(ui.ctx(), trajectory, self.serial, self.cursor, display, look.attention)
            }
        };
        if let Some(texture) = texture {
            let uv = egui::Rect::from_min_max(egui::pos2(0.0, 0.0), egui::pos2(1.0, 1.0));
            ui.painter().image(texture.id(), response.rect, uv, egui::Color32::WHITE);
        }
    }
}

/// Steps per second of a streaming run, smoothed, from the times its frames arrive.
#[derive(Clone, Copy, Debug, Default)]
pub struct StepRate {
    pub steps_per_second: f64,
    last_frame_at: Option<Instant>,
}

impl StepRate {
    pub fn frame_arrived(&mut self) {
        let now = Instant::now();
        if let Some(last) = self.last_frame_at {
            let rate = 1.0 / now.duration_since(last).as_secs_f64().max(1e-6);
            self.steps_per_second =
                if self.steps_per_second == 0.0 { rate } else { 0.8 * self.steps_per_second + 0.2 * rate };
        }
        self.last_frame_at = Some(now);
    }
}
