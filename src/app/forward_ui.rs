//! The forward process beside the reverse run: pick a clean image x_0, scrub t, and see
//! x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε for the schedule being edited.

use std::path::PathBuf;
use std::sync::Arc;

use eframe::egui::{self, TextureHandle, TextureOptions};

use super::view::color_image_of;
use super::{FileEvent, LabApp};
use crate::diffusion::BetaSchedule;
use crate::engine::ForwardSource;

/// Fixed so that scrubbing t shows one noise pattern growing, not a new one each time.
const FORWARD_NOISE_SEED: u64 = 2020;

#[derive(Default)]
pub struct ForwardState {
    pub open: bool,
    /// Index of the Fashion-MNIST test image to load.
    pub test_index: usize,
    pub t: usize,
    pub x0: Option<(Arc<Vec<f32>>, [usize; 4], String)>,
    pub x_t: Option<(usize, Arc<Vec<f32>>, [usize; 4])>,
    /// What was last asked of the engine, so a request is sent only when something changed.
    requested: Option<(BetaSchedule, usize, usize)>,
    /// Bumped whenever a new x_0 arrives.
    generation: usize,
    textures: Option<(TextureHandle, TextureHandle)>,
    /// The textures show this: (x_0 generation, x_t serial, colour map).
    texture_key: Option<(usize, usize, super::state::ColorMap)>,
    /// Bumped whenever an x_t arrives: a schedule edit at the same t brings a new x_t.
    pub frame_serial: usize,
    /// The model x_0 was loaded for (a latent model encodes it), and the file it came from, if any.
    pub model: Option<String>,
    pub file: Option<PathBuf>,
    pub error: Option<String>,
}

impl ForwardState {
    pub fn new() -> Self {
        Self { t: 500, ..Default::default() }
    }

    /// Whether the pictures on screen show the latest x_0 and x_t in `map`.
    pub fn pictures_are_current(&self, map: super::state::ColorMap) -> bool {
        self.texture_key == Some((self.generation, self.frame_serial, map))
    }

    pub fn set_x0(&mut self, x0: Arc<Vec<f32>>, shape: [usize; 4], label: String) {
        self.x0 = Some((x0, shape, label));
        self.x_t = None;
        self.generation += 1;
        self.error = None;
    }
}

fn open_image_in_background(app: &mut LabApp, ctx: egui::Context) {
    if !app.file_dialogs {
        app.set_status(format!("{}: cannot choose an image", super::dialogs::NO_DIALOG), true);
        return;
    }
    let events = app.file_events();
    std::thread::spawn(move || {
        let Some(path): Option<PathBuf> =
            rfd::FileDialog::new().add_filter("Images", &["png", "jpg", "jpeg"]).pick_file()
        else {
            return;
        };
        let _ = events.send(FileEvent::ForwardImagePicked(path));
        ctx.request_repaint();
    });
}

fn model_shape(app: &LabApp) -> (usize, usize) {
    app.model_info().map_or((28, 1), |m| (m.config.image_size, m.config.image_channels))
}

pub fn load_test_image(app: &mut LabApp) {
    let (size, channels) = model_shape(app);
    let source = ForwardSource::TestImage { dir: app.fashion_mnist_dir.clone(), index: app.forward.test_index };
    app.engine.load_forward_image(source, size, channels, Some(app.settings.model.clone()));
    app.forward.model = Some(app.settings.model.clone());
    app.forward.file = None;
}

pub fn load_file_image(app: &mut LabApp, path: PathBuf) {
    let (size, channels) = model_shape(app);
    app.engine.load_forward_image(ForwardSource::File(path.clone()), size, channels, Some(app.settings.model.clone()));
    app.forward.model = Some(app.settings.model.clone());
    app.forward.file = Some(path);
}

pub fn forward_panel_ui(app: &mut LabApp, ui: &mut egui::Ui) {
    ui.heading("Forward process");
    ui.label("x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε");
    ui.horizontal(|ui| {
        ui.add(egui::DragValue::new(&mut app.forward.test_index).range(0..=9999).prefix("Test image "));
        if ui.button("Load").clicked() {
            load_test_image(app);
        }
        if ui.button("Open image…").clicked() {
            open_image_in_background(app, ui.ctx().clone());
        }
    });
    let schedule = app.settings.schedule;
    let steps = schedule.steps.max(1);
    app.forward.t = app.forward.t.clamp(1, steps);
    ui.add(egui::Slider::new(&mut app.forward.t, 1..=steps).text("Forward t"));
    if let Some(error) = &app.forward.error {
        ui.colored_label(ui.visuals().error_fg_color, error);
    }
    // x_0 was loaded for another model (a latent one encodes it): load it again for this one.
    if app.forward.x0.is_some() && app.forward.model.as_ref() != Some(&app.settings.model) && app.model_info().is_some() {
        match app.forward.file.clone() {
            Some(path) => load_file_image(app, path),
            None => load_test_image(app),
        }
    }
    let Some((x0, shape, label)) = app.forward.x0.clone() else {
        ui.weak("Load a test image or open one of yours.");
        return;
    };
    let wanted = (schedule, app.forward.t, app.forward.generation);
    if app.forward.requested != Some(wanted) && schedule.validate().is_ok() {
        app.engine.forward(schedule, app.forward.t, FORWARD_NOISE_SEED);
        app.forward.requested = Some(wanted);
    }
    if let Ok(s) = schedule.build() {
        let i = app.forward.t - 1;
        ui.label(format!("ᾱ_t = {:.4}, log-SNR = {:.2}", s.alpha_bar[i], s.log_snr[i]));
    }
    let map = app.settings.color_map;
    let key = (app.forward.generation, app.forward.frame_serial, map);
    if app.forward.texture_key != Some(key) {
        let clean = color_image_of(&x0, shape, map);
        let noisy = match &app.forward.x_t {
            Some((_, x_t, shape)) => color_image_of(x_t, *shape, map),
            None => color_image_of(&x0, shape, map),
        };
        let ctx = ui.ctx();
        app.forward.textures = Some((
            ctx.load_texture("forward_x0", clean, TextureOptions::NEAREST),
            ctx.load_texture("forward_xt", noisy, TextureOptions::NEAREST),
        ));
        app.forward.texture_key = Some(key);
    }
    if let Some((clean, noisy)) = &app.forward.textures {
        let zoom = app.settings.zoom;
        ui.horizontal(|ui| {
            ui.vertical(|ui| {
                ui.label("x_0");
                ui.add(egui::Image::new((clean.id(), clean.size_vec2() * zoom)).alt_text("clean image x_0"));
            });
            ui.vertical(|ui| {
                let t = app.forward.x_t.as_ref().map_or(0, |(t, ..)| *t);
                ui.label(format!("x_t, t = {t}"));
                ui.add(egui::Image::new((noisy.id(), noisy.size_vec2() * zoom)).alt_text("noised image x_t"));
            });
        });
    }
    ui.weak(label);
}
