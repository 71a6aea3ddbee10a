//! The window's layout: the page tabs, the Generate page (controls on the left, the timeline below, the
//! Forward process panel on the right, the pictures in the middle), the Train page, and the status bar. Each
//! part is drawn by the panel that owns it; this file only places them.

use std::time::Instant;

use eframe::egui;

use super::compare::Mode;
use super::context::{Highlight, mark};
use super::viewer::Look;
use super::{LabApp, Page, export, state, train_ui};

impl LabApp {
    /// How the Generate page draws frames: the settings' quantity, colours and zoom.
    fn look(&self) -> Look {
        let settings = &self.ctx.settings;
        Look {
            quantity: settings.quantity,
            color_map: settings.color_map,
            zoom: settings.zoom,
            gpu: self.ctx.gpu_display,
            this_step: settings.this_step,
            overlay: settings.overlay,
            attention: settings.attention,
        }
    }

    /// Sends what the viewers' "This step" panels asked for while drawing: attention of the engine, a
    /// step figure to a file.
    fn send_viewer_requests(&mut self, egui_ctx: &egui::Context) {
        for viewer in [&mut self.generate.viewer, &mut self.compare.viewer_b, &mut self.train.viewer] {
            if let Some((key, request, inputs)) = viewer.step.take_attention_request() {
                self.ctx.engine.attention(key, request, inputs);
            }
            match viewer.step.take_figure() {
                Some(Ok(png)) => {
                    let file = ("png", "PNG image");
                    let name = format!("diffusion-lab-step{}.png", viewer.cursor);
                    self.ctx
                        .dialogs
                        .save_in_background(egui_ctx, name, file, move |path| crate::files::write_atomic(path, &png));
                }
                Some(Err(message)) => self.ctx.set_status(format!("cannot save the step figure: {message}"), true),
                None => {}
            }
        }
    }

    /// The whole window (without eframe, as in tests: times only the UI code itself).
    pub fn ui(&mut self, ui: &mut egui::Ui) {
        let started = Instant::now();
        self.ui_contents(ui);
        self.record_paint_time(started.elapsed().as_secs_f64() * 1000.0);
    }

    pub(super) fn record_paint_time(&mut self, ms: f64) {
        if self.is_running() {
            self.generate.paint_times.record(ms);
        }
        if self.train.is_training() {
            self.train.paint_times.record(ms);
        }
        if self.lab2d.is_busy() {
            self.lab2d.paint_times.record(ms);
        }
    }

    pub(super) fn ui_contents(&mut self, ui: &mut egui::Ui) {
        let egui_ctx = ui.ctx().clone();
        self.handle_events();
        self.keyboard(&egui_ctx);
        self.generate.viewer.advance_playback(&egui_ctx, self.ctx.settings.play_speed);
        self.ctx.running = self.is_running();
        self.generate.request_cursor_decode(&self.ctx);
        self.ctx.generate_blocker = self.generate_blocker();
        self.ctx.frame_on_screen = self.generate.viewer.shown_frame(self.ctx.settings.quantity).cloned();

        egui::Panel::top("pages").show(ui, |ui| self.tabs_ui(ui));
        egui::Panel::bottom("status_bar").show(ui, |ui| self.status_bar_ui(ui));
        if self.tour.open {
            self.tour_panel_ui(ui);
        }
        match self.page {
            Page::Train => self.train_page_ui(ui),
            Page::Generate => self.generate_page_ui(ui),
            Page::Lab2d => self.lab2d_page_ui(ui),
        }
        self.send_viewer_requests(&egui_ctx);
        self.handle_requests();
    }

    fn tabs_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.page, Page::Generate, "Generate view");
            let training = match self.train.phase {
                train_ui::Phase::Running | train_ui::Phase::Starting => " (training…)",
                train_ui::Phase::Paused => " (paused)",
                train_ui::Phase::Idle => "",
            };
            ui.selectable_value(&mut self.page, Page::Train, "Train view")
                .on_hover_text(format!("Train a model on your own images{training}"));
            ui.selectable_value(&mut self.page, Page::Lab2d, "2-D lab").on_hover_text(
                "Diffusion on points of the plane: draw data, train in seconds, watch the field and the particles",
            );
            ui.separator();
            self.tour_toggle_ui(ui);
            if !training.is_empty() {
                ui.label(format!("training: step {} of {}", self.train.step, self.train.steps));
            }
        });
    }

    fn lab2d_page_ui(&mut self, ui: &mut egui::Ui) {
        if !self.tour.presenter {
            egui::Panel::left("lab2d_panel").resizable(false).default_size(330.0).show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| self.lab2d.panel_ui(ui, &mut self.ctx));
            });
        }
        egui::CentralPanel::default().show(ui, |ui| self.lab2d.centre_ui(ui, &mut self.ctx));
    }

    fn train_page_ui(&mut self, ui: &mut egui::Ui) {
        if !self.tour.presenter {
            egui::Panel::left("train_panel").resizable(false).default_size(320.0).show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| self.train.panel_ui(ui, &mut self.ctx));
            });
        }
        egui::CentralPanel::default().show(ui, |ui| self.train.centre_ui(ui, &mut self.ctx));
    }

    fn generate_page_ui(&mut self, ui: &mut egui::Ui) {
        if !self.tour.presenter {
            self.generate_column_ui(ui);
        }
        self.generate_middle_ui(ui);
    }

    /// The Generate page's left column: the settings, Compare, Generate, export, the schedule.
    fn generate_column_ui(&mut self, ui: &mut egui::Ui) {
        egui::Panel::left("generate_panel").resizable(false).default_size(300.0).show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                self.generate.settings_ui(ui, &mut self.ctx);
                ui.add_space(6.0);
                self.compare.ui(ui, &mut self.ctx);
                ui.add_space(6.0);
                let blocker = self.ctx.generate_blocker.clone();
                self.generate.buttons_ui(ui, &mut self.ctx, blocker);
                ui.add_space(6.0);
                export::export_ui(ui, &mut self.ctx, &self.generate.viewer);
                ui.separator();
                self.schedule.ui(ui, &mut self.ctx);
            });
        });
    }

    /// The Generate page without its left column: the timeline, the Forward panel, the pictures.
    fn generate_middle_ui(&mut self, ui: &mut egui::Ui) {
        egui::Panel::bottom("timeline").show(ui, |ui| {
            self.generate.viewer.timeline_ui(ui, &mut self.ctx.settings.play_speed);
            self.continue_ui(ui);
        });
        if self.forward.open {
            egui::Panel::right("forward_panel").resizable(true).default_size(300.0).show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| self.forward.ui(ui, &mut self.ctx));
            });
        }
        egui::CentralPanel::default().show(ui, |ui| {
            if !matches!(self.compare.mode, Mode::Grid | Mode::Interpolate | Mode::Decided) {
                self.picture_toolbar_ui(ui);
            }
            let look = self.look();
            match self.compare.mode {
                Mode::Single => {
                    let placeholder = "Press Generate to watch noise turn into images.";
                    self.generate.viewer.image_ui(ui, look, placeholder);
                }
                Mode::AB | Mode::Branch => self.compare.ab_pictures_ui(ui, &mut self.generate.viewer, look),
                Mode::Grid | Mode::Interpolate | Mode::Decided => self.compare.grid_picture_ui(ui, look.zoom),
            }
        });
    }

    /// "Continue from here": branch the run on screen at the frame under the cursor.
    fn continue_ui(&mut self, ui: &mut egui::Ui) {
        let blocker = self.continue_blocker();
        let at = self.generate.viewer.cursor_frame().map(|f| (f.index, f.t, f.log_snr));
        ui.horizontal_wrapped(|ui| {
            let button = ui.add_enabled(blocker.is_none(), egui::Button::new("Continue from here")).on_hover_text(
                "Start a new run from this x_t with the settings on the left (class, guidance, sampler and steps, \
                     seed), shown beside this one and scrubbed with it: how much of the image is already decided here?",
            );
            let button = match &blocker {
                Some(reason) => button.on_disabled_hover_text(reason),
                None => button,
            };
            if button.clicked() {
                self.ctx.requests.push(super::context::Request::ContinueFromHere);
            }
            if let (None, Some((index, t, log_snr))) = (&blocker, at) {
                ui.label(format!("from step {index}: t = {t}, λ = {log_snr:.2}"));
            }
        });
    }

    fn status_bar_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.label(self.ctx.models.device.as_deref().unwrap_or("opening the compute device…"));
            ui.separator();
            ui.label(if self.ctx.gpu_display { "display: GPU shader" } else { "display: CPU texture" });
            ui.separator();
            self.generate.progress_ui(ui);
            self.compare.progress_ui(ui);
            if let Some(status) = &self.ctx.status {
                ui.separator();
                if status.is_error {
                    ui.colored_label(ui.visuals().error_fg_color, &status.text);
                } else {
                    ui.label(&status.text);
                }
            }
        });
    }

    /// What the images show, in which colours and how large; and the Forward process panel's switch.
    fn picture_toolbar_ui(&mut self, ui: &mut egui::Ui) {
        let latent = self.ctx.is_latent();
        // Wrapped, so that no control falls off a narrow window.
        ui.horizontal_wrapped(|ui| {
            let settings = &mut self.ctx.settings;
            ui.label("Show:");
            if !settings.quantity.applies(latent) {
                settings.quantity = state::Quantity::Noisy;
            }
            let highlight = self.ctx.highlight;
            let quantities = ui.scope(|ui| {
                ui.horizontal(|ui| {
                    for v in state::Quantity::ALL.into_iter().filter(|v| v.applies(latent)) {
                        ui.selectable_value(&mut settings.quantity, v, v.label(latent));
                    }
                })
            });
            mark(ui, quantities.response.rect, highlight, Highlight::Quantity);
            ui.separator();
            ui.label("Colours:");
            ui.selectable_value(&mut settings.color_map, state::ColorMap::Gray, "gray (out-of-range tinted)");
            ui.selectable_value(&mut settings.color_map, state::ColorMap::Diverging, "diverging");
            ui.separator();
            ui.add(egui::Slider::new(&mut settings.zoom, 1.0..=16.0).step_by(1.0).text("zoom"));
            ui.separator();
            let this_step = ui.toggle_value(&mut settings.this_step, "This step");
            mark(ui, this_step.rect, highlight, Highlight::ThisStep);
            this_step.on_hover_text(
                "Beside the picture: the step that made it, as its equation with this step's numbers and its terms \
                 as pictures",
            );
            ui.label("Overlay:");
            ui.selectable_value(&mut settings.overlay, state::Overlay::Off, "none");
            ui.selectable_value(&mut settings.overlay, state::Overlay::Guidance, "guidance |ε̂_y - ε̂_Ø|")
                .on_hover_text("Where the class changed the network's noise estimate at the step that made this frame");
            let attention = ui.selectable_value(&mut settings.overlay, state::Overlay::Attention, "cross-attention");
            mark(ui, attention.rect, highlight, Highlight::Attention);
            attention.on_hover_text("Where the UNet's cross-attention looked at one of τ_θ(y)'s tokens (a class's, or a word of the prompt)");
            ui.separator();
            self.forward.toggle_ui(ui, &mut self.ctx);
        });
        match self.ctx.settings.overlay {
            state::Overlay::Attention => {
                let viewer = &mut self.generate.viewer;
                let words = viewer
                    .trajectory
                    .as_ref()
                    .and_then(|t| t.request.prompt.as_ref())
                    .filter(|_| self.ctx.text_model())
                    .map(|p| crate::text::tokenizer::words(&p.text));
                if let Some(words) = &words {
                    viewer.step.word_picker_ui(ui, words, &mut self.ctx.settings.attention);
                }
                ui.horizontal_wrapped(|ui| {
                    viewer.step.attention_picker_ui(ui, &mut self.ctx.settings.attention);
                });
            }
            state::Overlay::Guidance => {
                let range = self.generate.viewer.step.overlay_range;
                ui.label(match range {
                    Some((low, high)) => format!(
                        "|ε̂_y - ε̂_Ø| of the step that made this frame: where the class changed the network's noise \
                         estimate; colours {} (clear) to {} (red)",
                        crate::diffusion::equation::number_text(low as f64),
                        crate::diffusion::equation::number_text(high as f64)
                    ),
                    None => "No guidance map for this frame: x_T, or a step where w was 0 or 1 (one branch ran)".into(),
                });
            }
            state::Overlay::Off => {}
        }
        ui.separator();
    }
}
