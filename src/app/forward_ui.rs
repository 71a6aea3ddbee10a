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
    /// The ε that x_t was noised with: pure noise, what sampling starts from (shown beside x_T).
    pub noise: Option<Arc<Vec<f32>>>,
    /// What was last asked of the engine, so a request is sent only when something changed.
    requested: Option<(BetaSchedule, usize, usize)>,
    /// Bumped whenever a new x_0 arrives.
    generation: usize,
    textures: Option<(TextureHandle, TextureHandle, Option<TextureHandle>)>,
    /// The textures show this: (x_0 generation, x_t serial, colour map, mask serial).
    texture_key: Option<(usize, usize, super::state::ColorMap, usize)>,
    /// Bumped whenever an x_t arrives: a schedule edit at the same t brings a new x_t.
    pub frame_serial: usize,
    /// The model x_0 was loaded for (a latent model encodes it), and the file it came from, if any.
    pub model: Option<String>,
    /// Where x_0 came from when it was not a test image (a file, or a frame of the last run), to load it
    /// again for another model.
    pub source: Option<ForwardSource>,
    pub error: Option<String>,
    /// Inpainting's mask over x_0, [height, width]: 255 where the model repaints.
    pub mask: Option<Vec<u8>>,
    pub mask_tool: MaskTool,
    /// The brush's radius in image pixels.
    pub brush: f32,
    /// Where a rectangle being drawn started, in image pixels.
    rectangle_from: Option<(f32, f32)>,
    /// Bumped whenever the mask changes.
    mask_serial: usize,
    /// RePaint's resampling for "Denoise from here" with a mask.
    pub resample: usize,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MaskTool {
    #[default]
    Brush,
    Rectangle,
}

impl ForwardState {
    pub fn new() -> Self {
        Self { t: 500, brush: 3.0, resample: 1, ..Default::default() }
    }

    /// Marks `[x0, x1) x [y0, y1)` (image pixels, clipped) to be repainted.
    fn paint(&mut self, size: usize, cells: impl Fn(usize, usize) -> bool) {
        let mask = self.mask.get_or_insert_with(|| vec![0; size * size]);
        for y in 0..size {
            for x in 0..size {
                if cells(x, y) {
                    mask[y * size + x] = 255;
                }
            }
        }
        self.mask_serial += 1;
    }

    /// Whether any pixel is to be repainted.
    pub fn has_mask(&self) -> bool {
        self.mask.as_ref().is_some_and(|m| m.iter().any(|v| *v != 0))
    }

    /// Whether the pictures on screen show the latest x_0 and x_t in `map`.
    pub fn pictures_are_current(&self, map: super::state::ColorMap) -> bool {
        self.texture_key == Some((self.generation, self.frame_serial, map, self.mask_serial))
    }

    pub fn set_x0(&mut self, x0: Arc<Vec<f32>>, shape: [usize; 4], label: String) {
        // A mask of another size cannot apply to this picture.
        if self.mask.as_ref().is_some_and(|m| m.len() != shape[2] * shape[3]) {
            self.mask = None;
            self.mask_serial += 1;
        }
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
    let source = ForwardSource::TestImage { dir: app.fashion_mnist_dir.clone(), index: app.forward.test_index };
    load_image(app, source);
    app.forward.source = None;
}

pub fn load_file_image(app: &mut LabApp, path: PathBuf) {
    load_image(app, ForwardSource::File(path));
}

fn load_image(app: &mut LabApp, source: ForwardSource) {
    let (size, channels) = model_shape(app);
    app.engine.load_forward_image(source.clone(), size, channels, Some(app.settings.model.clone()));
    app.forward.model = Some(app.settings.model.clone());
    app.forward.source = Some(source);
}

/// x_0 from the frame on screen (its first image; decoded for a latent model), for image-to-image on a
/// result of the last run.
pub fn use_frame_on_screen(app: &mut LabApp) {
    let Some(frame) = app.current_frame() else { return };
    let Some(picture) = frame.pictures().into_iter().next() else { return };
    let plane = picture.width * picture.height;
    // HWC bytes -> CHW values in [-1, 1].
    let values: Vec<f32> = (0..picture.channels)
        .flat_map(|c| (0..plane).map(move |p| (c, p)))
        .map(|(c, p)| crate::data::unit_from_u8(picture.pixels[p * picture.channels + c]))
        .collect();
    let label = format!("frame t = {} of the last run", frame.t);
    load_image(app, ForwardSource::Pixels { values, label });
}

/// Puts a restored run's starting picture back in the panel: x_0, the mask, the resampling, and t at its
/// strength, so that "Denoise from here" runs it again.
pub fn restore_init(app: &mut LabApp, init: &crate::engine::generate::InitImage) {
    let values: Vec<f32> = init.values();
    load_image(app, ForwardSource::Pixels { values, label: init.label.clone() });
    let [_, h, w] = init.shape;
    app.forward.mask = init.mask.clone().filter(|m| m.len() == h * w);
    app.forward.mask_serial += 1;
    app.forward.resample = init.resample;
    app.forward.t = (init.strength * app.settings.schedule.steps as f64).round() as usize;
    app.forward.open = true;
}

/// "Denoise from here": the reverse process from the forward panel's x_t, i.e. image-to-image from x_0 at
/// strength t / T, with the painted mask (inpainting) if there is one.
pub fn denoise_from_here(app: &mut LabApp) {
    let Some(init) = init_from_panel(app) else { return };
    let request = crate::engine::GenerateRequest { init: Some(init), ..app.settings.request() };
    app.start_request(request);
}

/// The panel's x_0 as a run's starting picture: strength t / T, and the painted mask if there is one.
pub fn init_from_panel(app: &LabApp) -> Option<crate::engine::generate::InitImage> {
    let (x0, shape, label) = app.forward.x0.clone()?;
    let [_, c, h, w] = shape;
    Some(crate::engine::generate::InitImage {
        label,
        shape: [c, h, w],
        pixels: x0.iter().map(|v| crate::data::u8_from_unit(*v)).collect(),
        strength: app.forward.t as f64 / app.settings.schedule.steps.max(1) as f64,
        mask: app.forward.mask.clone().filter(|_| app.forward.has_mask()),
        resample: app.forward.resample,
    })
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
    if ui.add_enabled(app.current_frame().is_some(), egui::Button::new("Use the frame on screen")).clicked() {
        use_frame_on_screen(app);
    }
    // x_0 was loaded for another model (a latent one encodes it): load it again for this one.
    if app.forward.x0.is_some() && app.forward.model.as_ref() != Some(&app.settings.model) && app.model_info().is_some()
    {
        match app.forward.source.clone() {
            Some(source) => load_image(app, source),
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
    let key = (app.forward.generation, app.forward.frame_serial, map, app.forward.mask_serial);
    if app.forward.texture_key != Some(key) {
        let mut clean = color_image_of(&x0, shape, map);
        // The region to repaint, tinted.
        if let Some(mask) = app.forward.mask.as_ref().filter(|m| m.len() == clean.pixels.len()) {
            for (pixel, m) in clean.pixels.iter_mut().zip(mask) {
                if *m != 0 {
                    *pixel = egui::Color32::from_rgb(pixel.r() / 2 + 120, pixel.g() / 3, pixel.b() / 3);
                }
            }
        }
        let noisy = match &app.forward.x_t {
            Some((_, x_t, shape)) => color_image_of(x_t, *shape, map),
            None => color_image_of(&x0, shape, map),
        };
        let ctx = ui.ctx();
        let noise = match (&app.forward.x_t, &app.forward.noise) {
            (Some((_, _, shape)), Some(noise)) => {
                Some(ctx.load_texture("forward_noise", color_image_of(noise, *shape, map), TextureOptions::NEAREST))
            }
            _ => None,
        };
        app.forward.textures = Some((
            ctx.load_texture("forward_x0", clean, TextureOptions::NEAREST),
            ctx.load_texture("forward_xt", noisy, TextureOptions::NEAREST),
            noise,
        ));
        app.forward.texture_key = Some(key);
    }
    if let Some((clean, noisy, noise)) = app.forward.textures.clone() {
        let zoom = app.settings.zoom;
        // From the slider, not from the x_t that arrives later: the layout changes in the frame the slider
        // moves, never under the pointer on its way to a button.
        let at_t_max = app.forward.t == steps;
        let noise_is_current = app.forward.x_t.as_ref().is_some_and(|(t, ..)| *t == steps);
        ui.horizontal_wrapped(|ui| {
            ui.vertical(|ui| {
                ui.label("x_0");
                let image = egui::Image::new((clean.id(), clean.size_vec2() * zoom))
                    .alt_text("clean image x_0")
                    .sense(egui::Sense::drag());
                let response = ui.add(image);
                paint_mask(&mut app.forward, &response, zoom, shape[2]);
            });
            ui.vertical(|ui| {
                let t = app.forward.x_t.as_ref().map_or(0, |(t, ..)| *t);
                ui.label(format!("x_t, t = {t}"));
                ui.add(egui::Image::new((noisy.id(), noisy.size_vec2() * zoom)).alt_text("noised image x_t"));
            });
            // At t = T: x_T beside pure noise, which is what sampling starts from.
            if at_t_max {
                ui.vertical(|ui| {
                    ui.label("pure noise ε");
                    match noise.filter(|_| noise_is_current) {
                        Some(noise) => {
                            ui.add(egui::Image::new((noise.id(), noise.size_vec2() * zoom)).alt_text("pure noise"));
                        }
                        None => {
                            ui.allocate_space(noisy.size_vec2() * zoom);
                        }
                    }
                });
            }
        });
        if at_t_max {
            match schedule.build().map(|s| s.terminal_signal()) {
                Ok(terminal) if !terminal.is_pure_noise() => {
                    ui.colored_label(
                        ui.visuals().warn_fg_color,
                        format!(
                            "x_T still shows the image ({:.0} % of it): sampling starts from pure noise instead.",
                            100.0 * terminal.signal()
                        ),
                    );
                }
                Ok(_) => {
                    ui.weak("x_T is indistinguishable from pure noise: sampling can start there.");
                }
                Err(_) => {}
            }
        }
    }
    ui.weak(label);
    editing_ui(app, ui);
}

/// Painting on x_0: the brush marks a disc per pointer position, the rectangle tool a box from press to
/// release; both add to the mask.
fn paint_mask(forward: &mut ForwardState, response: &egui::Response, zoom: f32, size: usize) {
    let Some(pointer) = response.interact_pointer_pos() else {
        forward.rectangle_from = None;
        return;
    };
    let at = (pointer - response.rect.min) / zoom;
    let (px, py) = (at.x, at.y);
    match forward.mask_tool {
        MaskTool::Brush if response.dragged() || response.drag_started() => {
            let r = forward.brush;
            forward.paint(size, |x, y| (x as f32 + 0.5 - px).powi(2) + (y as f32 + 0.5 - py).powi(2) <= r * r);
        }
        MaskTool::Rectangle if response.drag_started() => forward.rectangle_from = Some((px, py)),
        MaskTool::Rectangle if response.drag_stopped() => {
            if let Some((x0, y0)) = forward.rectangle_from.take() {
                let (xa, xb) = (x0.min(px), x0.max(px));
                let (ya, yb) = (y0.min(py), y0.max(py));
                forward
                    .paint(size, |x, y| (xa..=xb).contains(&(x as f32 + 0.5)) && (ya..=yb).contains(&(y as f32 + 0.5)));
            }
        }
        _ => {}
    }
}

/// Image-to-image and inpainting from the panel's x_0: the mask tools and "Denoise from here".
fn editing_ui(app: &mut LabApp, ui: &mut egui::Ui) {
    ui.separator();
    ui.label("Inpainting mask (paint on x_0):");
    ui.horizontal(|ui| {
        ui.selectable_value(&mut app.forward.mask_tool, MaskTool::Brush, "Brush");
        ui.selectable_value(&mut app.forward.mask_tool, MaskTool::Rectangle, "Rectangle");
        if ui.button("Clear mask").clicked() {
            app.forward.mask = None;
            app.forward.mask_serial += 1;
        }
        if ui.button("Invert mask").clicked()
            && let Some((_, shape, _)) = &app.forward.x0
        {
            let size = shape[2] * shape[3];
            let mask = app.forward.mask.get_or_insert_with(|| vec![0; size]);
            mask.iter_mut().for_each(|m| *m = if *m == 0 { 255 } else { 0 });
            app.forward.mask_serial += 1;
        }
    });
    ui.add(egui::Slider::new(&mut app.forward.brush, 0.5..=8.0).text("Brush size"));
    ui.add_enabled(app.forward.has_mask(), egui::Slider::new(&mut app.forward.resample, 1..=crate::engine::generate::MAX_RESAMPLE).text("Resampling"))
        .on_hover_text("RePaint: take each step this many times, going back up with fresh noise in between, so the repainted region fits the rest");
    let steps = app.settings.schedule.steps.max(1);
    let strength = app.forward.t as f64 / steps as f64;
    let what = if app.forward.has_mask() { "inpainting" } else { "image-to-image" };
    let denoise = ui
        .add_enabled(app.generate_blocker().is_none(), egui::Button::new("Denoise from here"))
        .on_hover_text(format!("{what}: the reverse process from this x_t (strength {strength:.2}), with the sampler, class and guidance on the left"));
    if denoise.clicked() {
        denoise_from_here(app);
    }
    ui.weak(format!("{what} at strength {strength:.2} (t = {} of {steps})", app.forward.t));
}
