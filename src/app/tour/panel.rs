//! The Tour's panel on the right of every page: the step's title, formula with its live numbers, story,
//! plain line, the control it points at, its task with Check and the answer, Back / Next; and presenter mode
//! (larger text, the left column hidden, Page Down / Page Up or the arrow keys step through).

use eframe::egui;

use super::Outcome;
use crate::app::LabApp;
use crate::tour::{Live, STEPS, StepId, numbers};

/// Text sizes in presenter mode, in points (one point is one pixel at the usual scale): body text 20 or more,
/// readable from the back of a classroom at 1280x720.
pub const PRESENTER_BODY: f32 = 20.0;
const PRESENTER_HEADING: f32 = 26.0;
/// The panel's width: normal and presenter.
const WIDTH: f32 = 340.0;
const PRESENTER_WIDTH: f32 = 600.0;
/// How much larger the pictures are in presenter mode.
const PRESENTER_ZOOM: f32 = 1.5;

impl LabApp {
    /// The tour's numbers now: the settings, the Forward panel's t, and for the sampling step the run on
    /// screen (its own schedule and sampler) and the step that made the frame under the cursor.
    pub fn tour_live(&self) -> Live {
        let settings = &self.ctx.settings;
        let viewer = &self.generate.viewer;
        let run = viewer.trajectory.as_ref().map(|t| (&t.request, viewer.cursor_frame().map(|f| f.index)));
        let (schedule, sampler, run_step) = match run {
            Some((request, index)) => (request.schedule, request.sampler, index.and_then(|i| i.checked_sub(1))),
            None => (settings.schedule, settings.sampler, None),
        };
        let for_step = self.tour.step_id() == StepId::SamplingStep;
        crate::tour::Live {
            schedule: if for_step { schedule } else { settings.schedule },
            t: self.forward.t,
            sampler: if for_step { sampler } else { settings.sampler },
            run_step,
            guidance: crate::diffusion::guidance::Guidance {
                scale: settings.guidance,
                interval: settings.guidance_interval,
                params: settings.guidance_method,
            },
        }
    }

    /// The tab bar's switch: opens the tour at its first step, or leaves it.
    pub(crate) fn tour_toggle_ui(&mut self, ui: &mut egui::Ui) {
        let response = ui.selectable_label(self.tour.open, "Tour").on_hover_text(
            "The story of diffusion in order, one step at a time: each step sets up the window, points at a \
             control and ends with a small task",
        );
        if response.clicked() {
            if self.tour.open { self.leave_tour(ui.ctx()) } else { self.start_tour() }
        }
    }

    /// Presenter mode's keys: Page Down / Right for Next, Page Up / Left for Back, Escape leaves presenter mode.
    pub(crate) fn tour_keys(&mut self, ctx: &egui::Context) {
        if !self.tour.open || !self.tour.presenter || ctx.egui_wants_keyboard_input() {
            return;
        }
        let (next, back, escape) = ctx.input(|i| {
            (
                i.key_pressed(egui::Key::PageDown) || i.key_pressed(egui::Key::ArrowRight),
                i.key_pressed(egui::Key::PageUp) || i.key_pressed(egui::Key::ArrowLeft),
                i.key_pressed(egui::Key::Escape),
            )
        });
        if next && self.tour.index + 1 < STEPS.len() {
            self.go_to_tour_step(self.tour.index + 1);
        }
        if back && self.tour.index > 0 {
            self.go_to_tour_step(self.tour.index - 1);
        }
        if escape {
            self.set_presenter(ctx, false);
        }
    }

    /// Presenter mode on or off: the text sizes of the whole window follow it.
    pub fn set_presenter(&mut self, ctx: &egui::Context, on: bool) {
        self.tour.presenter = on;
        self.presenter_zoom_now();
        ctx.all_styles_mut(|style| {
            let defaults = egui::Style::default();
            for (text_style, font) in style.text_styles.iter_mut() {
                let size = defaults.text_styles.get(text_style).map_or(font.size, |f| f.size);
                font.size = match (on, text_style) {
                    (false, _) => size,
                    (true, egui::TextStyle::Heading) => PRESENTER_HEADING,
                    (true, egui::TextStyle::Small) => PRESENTER_BODY * 0.8,
                    (true, _) => PRESENTER_BODY,
                };
            }
        });
    }

    /// The pictures' zoom: the user's, or larger in presenter mode.
    pub(super) fn presenter_zoom_now(&mut self) {
        if let Some(before) = &self.tour.before {
            self.ctx.settings.zoom = presenter_zoom(before.settings.zoom, self.tour.presenter);
        }
    }

    /// The panel, on the right of whatever page is open.
    pub(crate) fn tour_panel_ui(&mut self, ui: &mut egui::Ui) {
        let width = if self.tour.presenter { PRESENTER_WIDTH } else { WIDTH };
        egui::Panel::right("tour_panel").resizable(false).exact_size(width).show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| self.tour_contents_ui(ui));
        });
    }

    fn tour_contents_ui(&mut self, ui: &mut egui::Ui) {
        let index = self.tour.index;
        let step = &STEPS[index];
        ui.horizontal_wrapped(|ui| {
            ui.label(format!("Tour: step {} of {}", index + 1, STEPS.len()));
            let mut presenter = self.tour.presenter;
            if ui.toggle_value(&mut presenter, "Presenter mode").clicked() {
                self.set_presenter(ui.ctx(), presenter);
            }
            if ui.button("Leave tour").clicked() {
                self.leave_tour(ui.ctx());
            }
        });
        ui.separator();
        ui.heading(step.title);
        ui.add(egui::Label::new(egui::RichText::new(step.formula).monospace()).wrap());
        let mut lines = numbers(step.id, &self.tour_live());
        lines.extend(self.tour_state_numbers(step.id));
        for line in lines {
            ui.add(egui::Label::new(egui::RichText::new(format!("now: {line}")).monospace()).wrap());
        }
        ui.add(egui::Label::new(step.story).wrap());
        ui.add(egui::Label::new(egui::RichText::new(format!("In plain words: {}", step.plain)).strong()).wrap());
        ui.add(egui::Label::new(format!("Look at: {} (ringed in orange)", step.look_at)).wrap());
        if let Some(task) = step.task {
            ui.separator();
            self.task_ui(ui, task);
        }
        ui.separator();
        self.tour_navigation_ui(ui);
    }

    fn task_ui(&mut self, ui: &mut egui::Ui, task: crate::tour::Task) {
        ui.add(egui::Label::new(format!("Try this: {}", task.ask)).wrap());
        ui.horizontal_wrapped(|ui| {
            if self.tour.step_id() == StepId::Decided {
                let rows = self.compare.decided.last.as_ref().map_or(12, |l| l.rows.len().max(1));
                let label = ui.label("My answer: row");
                ui.add(egui::DragValue::new(&mut self.tour.decided_answer).range(1..=rows)).labelled_by(label.id);
            }
            if self.tour.presenter && self.page == crate::app::Page::Generate {
                // The left column, and its Generate button, is hidden in presenter mode.
                let blocker = self.ctx.generate_blocker.clone();
                let generate = ui.add_enabled(blocker.is_none(), egui::Button::new("Generate"));
                if generate.clicked() {
                    self.ctx.requests.push(crate::app::context::Request::Generate);
                }
            }
            if ui.button("Check").clicked() {
                let outcome = self.check_tour_task();
                if !outcome.is_done() {
                    self.tour.wrong_tries += 1;
                }
                self.tour.outcome = Some(outcome);
            }
        });
        match &self.tour.outcome {
            Some(Outcome::Done(reading)) => {
                ui.add(
                    egui::Label::new(egui::RichText::new(format!("Done. {} ({reading})", task.done)).strong()).wrap(),
                );
            }
            Some(Outcome::NotYet(reading)) => {
                let text = format!("Not yet: {reading}.");
                ui.add(egui::Label::new(egui::RichText::new(text).color(ui.visuals().warn_fg_color)).wrap());
                if self.tour.wrong_tries > 0 {
                    ui.add(egui::Label::new(format!("Hint: {}", task.hint)).wrap());
                }
            }
            None => {}
        }
    }

    fn tour_navigation_ui(&mut self, ui: &mut egui::Ui) {
        let index = self.tour.index;
        ui.horizontal(|ui| {
            if ui.add_enabled(index > 0, egui::Button::new("Back")).clicked() {
                self.go_to_tour_step(index - 1);
            }
            let last = index + 1 == STEPS.len();
            let next = if last { "Finish" } else { "Next" };
            if ui.button(next).clicked() {
                if last {
                    self.leave_tour(ui.ctx());
                } else {
                    self.go_to_tour_step(index + 1);
                }
            }
        });
        if self.tour.presenter {
            ui.weak("Page Down / Page Up: next / back; Esc: leave presenter mode");
        }
    }
}

/// The user's picture zoom `zoom`, made larger in presenter mode (within the zoom slider's range).
fn presenter_zoom(zoom: f32, presenter: bool) -> f32 {
    if presenter { (zoom * PRESENTER_ZOOM).round().clamp(1.0, 16.0) } else { zoom }
}
