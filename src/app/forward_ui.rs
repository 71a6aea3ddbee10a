//! The forward process beside the reverse run: pick a clean image x_0, scrub t, and see
//! x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε for the schedule being edited.

use std::path::PathBuf;
use std::sync::Arc;

use eframe::egui::{self, TextureHandle};

use super::colors::TextureCache;
use super::colors::color_image_of;
use super::context::{PanelContext, Request};
use super::dialogs::{FileEvent, Pick};
use super::state::ColorMap;
use crate::diffusion::BetaSchedule;
use crate::engine::{Event, ForwardSource};

/// Fixed so that scrubbing t shows one noise pattern growing, not a new one each time.
pub const FORWARD_NOISE_SEED: u64 = 2020;

/// x_0, x_t and the pure noise ε as drawn.
type Pictures = (TextureHandle, TextureHandle, Option<TextureHandle>);

/// The panel's three textures, each keyed by what it shows: x_0 by (its generation, colour map, mask), x_t by
/// (x_0's generation, x_t's serial, colour map), ε by (x_t's serial, colour map).
struct ForwardTextures {
    clean: TextureCache<(usize, ColorMap, usize)>,
    noisy: TextureCache<(usize, usize, ColorMap)>,
    noise: TextureCache<(usize, ColorMap)>,
}

impl Default for ForwardTextures {
    fn default() -> Self {
        Self {
            clean: TextureCache::new("forward_x0"),
            noisy: TextureCache::new("forward_xt"),
            noise: TextureCache::new("forward_noise"),
        }
    }
}

/// The Forward process panel: its x_0 (a test image, a file or a frame of the run), t, the x_t and ε the
/// engine noised it with, and the inpainting mask painted on x_0.
#[derive(Default)]
pub struct ForwardPanel {
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
    textures: ForwardTextures,
    /// Bumped whenever an x_t arrives: a schedule edit at the same t brings a new x_t.
    pub frame_serial: usize,
    /// The model x_0 was loaded for (a latent model encodes it), and the file it came from, if any.
    pub model: Option<crate::model::ModelId>,
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
    /// The posterior at t on this x_0, beside the model's step.
    pub posterior: super::posterior_ui::PosteriorPanel,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MaskTool {
    #[default]
    Brush,
    Rectangle,
}

impl ForwardPanel {
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
    pub fn pictures_are_current(&self, map: ColorMap) -> bool {
        self.textures.clean.shows(&(self.generation, map, self.mask_serial))
            && self.textures.noisy.shows(&(self.generation, self.frame_serial, map))
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

fn open_image_in_background(ctx: &mut PanelContext, egui_ctx: &egui::Context) {
    let pick = Pick::File("Images", &["png", "jpg", "jpeg"]);
    if let Err(message) = ctx.dialogs.pick_in_background(egui_ctx, pick, "an image", FileEvent::ForwardImagePicked) {
        ctx.set_status(message, true);
    }
}

impl ForwardPanel {
    /// The engine's answers to this panel's commands (load an x_0, noise it to t).
    pub fn on_event(&mut self, event: Event) {
        match event {
            Event::ForwardImage { x0, shape, label } => self.set_x0(x0, shape, label),
            Event::ForwardFrame { t, x_t, noise, shape } => {
                self.x_t = Some((t, x_t, shape));
                self.noise = Some(noise);
                self.frame_serial += 1;
            }
            Event::ForwardFailed { message } => {
                self.posterior.on_failure();
                self.error = Some(message);
            }
            Event::Posterior(view) => self.posterior.on_view(view),
            _ => {}
        }
    }

    /// Opens the panel at t = T of the edited schedule, where it shows x_T beside pure noise.
    pub fn show_terminal_noise(&mut self, ctx: &mut PanelContext) {
        self.open = true;
        if self.x0.is_none() {
            self.load_test_image(ctx);
        }
        self.t = ctx.settings.schedule.steps;
    }

    /// Opens or closes the panel; opening it the first time loads a test image.
    pub fn toggle_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        if ui.toggle_value(&mut self.open, "Forward process").clicked() && self.open && self.x0.is_none() {
            self.load_test_image(ctx);
        }
    }

    pub fn load_test_image(&mut self, ctx: &mut PanelContext) {
        let source = ForwardSource::TestImage { dir: ctx.fashion_mnist_dir.clone(), index: self.test_index };
        self.load_image(ctx, source);
        self.source = None;
    }

    pub fn load_file_image(&mut self, ctx: &mut PanelContext, path: PathBuf) {
        self.load_image(ctx, ForwardSource::File(path));
    }

    fn load_image(&mut self, ctx: &mut PanelContext, source: ForwardSource) {
        let (size, channels) = ctx.model_shape();
        ctx.engine.load_forward_image(source.clone(), size, channels, Some(ctx.settings.model.clone()));
        self.model = Some(ctx.settings.model.clone());
        self.source = Some(source);
    }

    /// x_0 from the frame on screen (its first image; decoded for a latent model), for image-to-image on a
    /// result of the last run.
    pub fn use_frame_on_screen(&mut self, ctx: &mut PanelContext) {
        let Some(frame) = ctx.frame_on_screen.clone() else { return };
        let Some(picture) = frame.pictures().into_iter().next() else { return };
        let plane = picture.width * picture.height;
        // HWC bytes -> CHW values in [-1, 1].
        let values: Vec<f32> = (0..picture.channels)
            .flat_map(|c| (0..plane).map(move |p| (c, p)))
            .map(|(c, p)| crate::data::unit_from_u8(picture.pixels[p * picture.channels + c]))
            .collect();
        let label = format!("frame t = {} of the last run", frame.t);
        self.load_image(ctx, ForwardSource::Pixels { values, label });
    }

    /// Puts a restored run's starting picture back in the panel: x_0, the mask, the resampling, and t at its
    /// strength, so that "Denoise from here" runs it again.
    pub fn restore_init(&mut self, ctx: &mut PanelContext, init: &crate::run::generate::InitImage) {
        let values: Vec<f32> = init.values();
        self.load_image(ctx, ForwardSource::Pixels { values, label: init.label.clone() });
        let [_, h, w] = init.shape;
        self.mask = init.mask.clone().filter(|m| m.len() == h * w);
        self.mask_serial += 1;
        self.resample = init.resample;
        self.t = (init.strength * ctx.settings.schedule.steps as f64).round() as usize;
        self.open = true;
    }

    /// "Denoise from here": the reverse process from the forward panel's x_t, i.e. image-to-image from x_0 at
    /// strength t / T, with the painted mask (inpainting) if there is one.
    pub fn denoise_from_here(&mut self, ctx: &mut PanelContext) {
        let Some(init) = self.init_from_panel(ctx) else { return };
        let request = crate::engine::GenerateRequest { init: Some(init), ..ctx.request() };
        ctx.requests.push(Request::Run(Box::new(request)));
    }

    /// The panel's x_0 as a run's starting picture: strength t / T, and the painted mask if there is one.
    pub fn init_from_panel(&self, ctx: &PanelContext) -> Option<crate::run::generate::InitImage> {
        let (x0, shape, label) = self.x0.clone()?;
        let [_, c, h, w] = shape;
        Some(crate::run::generate::InitImage {
            label,
            shape: [c, h, w],
            pixels: x0.iter().map(|v| crate::data::u8_from_unit(*v)).collect(),
            strength: self.t as f64 / ctx.settings.schedule.steps.max(1) as f64,
            mask: self.mask.clone().filter(|_| self.has_mask()),
            resample: self.resample,
        })
    }

    /// x_0 (with the mask tinted), x_t and the pure noise ε as textures, each made again only when what it
    /// shows changed; the noise only once an x_t has come with it.
    fn textures(&mut self, egui_ctx: &egui::Context, x0: &[f32], shape: [usize; 4], map: ColorMap) -> Option<Pictures> {
        let (mask, x_t, noise) = (&self.mask, &self.x_t, &self.noise);
        let clean = self.textures.clean.get(egui_ctx, (self.generation, map, self.mask_serial), || {
            let mut clean = color_image_of(x0, shape, map);
            // The region to repaint, tinted.
            if let Some(mask) = mask.as_ref().filter(|m| m.len() == clean.pixels.len()) {
                for (pixel, m) in clean.pixels.iter_mut().zip(mask) {
                    if *m != 0 {
                        *pixel = egui::Color32::from_rgb(pixel.r() / 2 + 120, pixel.g() / 3, pixel.b() / 3);
                    }
                }
            }
            Some(clean)
        })?;
        let noisy = self.textures.noisy.get(egui_ctx, (self.generation, self.frame_serial, map), || {
            Some(match x_t {
                Some((_, x_t, shape)) => color_image_of(x_t, *shape, map),
                None => color_image_of(x0, shape, map),
            })
        })?;
        let noise = match (x_t, noise) {
            (Some((_, _, shape)), Some(noise)) => {
                self.textures.noise.get(egui_ctx, (self.frame_serial, map), || Some(color_image_of(noise, *shape, map)))
            }
            _ => None,
        };
        Some((clean, noisy, noise))
    }

    /// x_0 (painted on with the mask tools), x_t, and at t = T pure noise beside it with what that means.
    fn pictures_ui(&mut self, ui: &mut egui::Ui, ctx: &PanelContext, size: usize, pictures: Option<Pictures>) {
        let schedule = ctx.settings.schedule;
        let steps = schedule.steps.max(1);
        if let Some((clean, noisy, noise)) = pictures {
            let zoom = ctx.settings.zoom;
            // From the slider, not from the x_t that arrives later: the layout changes in the frame the slider
            // moves, never under the pointer on its way to a button.
            let at_t_max = self.t == steps;
            let noise_is_current = self.x_t.as_ref().is_some_and(|(t, ..)| *t == steps);
            ui.horizontal_wrapped(|ui| {
                ui.vertical(|ui| {
                    ui.label("x_0");
                    let image = egui::Image::new((clean.id(), clean.size_vec2() * zoom))
                        .alt_text("clean image x_0")
                        .sense(egui::Sense::drag());
                    let response = ui.add(image);
                    paint_mask(self, &response, zoom, size);
                });
                ui.vertical(|ui| {
                    let t = self.x_t.as_ref().map_or(0, |(t, ..)| *t);
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
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        ui.heading("Forward process");
        ui.label("x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε");
        ui.horizontal(|ui| {
            ui.add(egui::DragValue::new(&mut self.test_index).range(0..=9999).prefix("Test image "));
            if ui.button("Load").clicked() {
                self.load_test_image(ctx);
            }
            if ui.button("Open image…").clicked() {
                open_image_in_background(ctx, ui.ctx());
            }
        });
        let schedule = ctx.settings.schedule;
        let steps = schedule.steps.max(1);
        self.t = self.t.clamp(1, steps);
        let slider = ui.add(egui::Slider::new(&mut self.t, 1..=steps).text("Forward t"));
        ctx.mark(ui, slider.rect, super::context::Highlight::ForwardT);
        if let Some(error) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        if ui.add_enabled(ctx.frame_on_screen.is_some(), egui::Button::new("Use the frame on screen")).clicked() {
            self.use_frame_on_screen(ctx);
        }
        // x_0 was loaded for another model (a latent one encodes it): load it again for this one.
        if self.x0.is_some() && self.model.as_ref() != Some(&ctx.settings.model) && ctx.model_info().is_some() {
            match self.source.clone() {
                Some(source) => self.load_image(ctx, source),
                None => self.load_test_image(ctx),
            }
        }
        let Some((x0, shape, label)) = self.x0.clone() else {
            ui.weak("Load a test image or open one of yours.");
            return;
        };
        let wanted = (schedule, self.t, self.generation);
        if self.requested != Some(wanted) && schedule.validate().is_ok() {
            ctx.engine.forward(schedule, self.t, FORWARD_NOISE_SEED);
            self.requested = Some(wanted);
        }
        if let Ok(s) = schedule.build() {
            let i = self.t - 1;
            ui.label(format!("ᾱ_t = {:.4}, log-SNR = {:.2}", s.alpha_bar[i], s.log_snr[i]));
        }
        let pictures = self.textures(ui.ctx(), &x0, shape, ctx.settings.color_map);
        self.pictures_ui(ui, ctx, shape[2], pictures);
        ui.weak(label);
        self.posterior.ui(ui, ctx, self.generation, self.t);
        self.editing_ui(ui, ctx);
    }
}

/// Painting on x_0: the brush marks a disc per pointer position, the rectangle tool a box from press to
/// release; both add to the mask.
fn paint_mask(forward: &mut ForwardPanel, response: &egui::Response, zoom: f32, size: usize) {
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

impl ForwardPanel {
    /// Image-to-image and inpainting from the panel's x_0: the mask tools and "Denoise from here".
    fn editing_ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext) {
        ui.separator();
        ui.label("Inpainting mask (paint on x_0):");
        ui.horizontal(|ui| {
            ui.selectable_value(&mut self.mask_tool, MaskTool::Brush, "Brush");
            ui.selectable_value(&mut self.mask_tool, MaskTool::Rectangle, "Rectangle");
            if ui.button("Clear mask").clicked() {
                self.mask = None;
                self.mask_serial += 1;
            }
            if ui.button("Invert mask").clicked()
                && let Some((_, shape, _)) = &self.x0
            {
                let size = shape[2] * shape[3];
                let mask = self.mask.get_or_insert_with(|| vec![0; size]);
                mask.iter_mut().for_each(|m| *m = if *m == 0 { 255 } else { 0 });
                self.mask_serial += 1;
            }
        });
        ui.add(egui::Slider::new(&mut self.brush, 0.5..=8.0).text("Brush size"));
        let has_mask = self.has_mask();
        let resampling =
            egui::Slider::new(&mut self.resample, 1..=crate::run::generate::MAX_RESAMPLE).text("Resampling");
        ui.add_enabled(has_mask, resampling).on_hover_text(
            "RePaint: take each step this many times, going back up with fresh noise in between, so the repainted \
         region fits the rest",
        );
        let steps = ctx.settings.schedule.steps.max(1);
        let strength = self.t as f64 / steps as f64;
        let what = if self.has_mask() { "inpainting" } else { "image-to-image" };
        let denoise = ui
            .add_enabled(ctx.generate_blocker.is_none(), egui::Button::new("Denoise from here"))
            .on_hover_text(format!(
                "{what}: the reverse process from this x_t (strength {strength:.2}), with the sampler, class and \
             guidance on the left"
            ));
        if denoise.clicked() {
            self.denoise_from_here(ctx);
        }
        ui.weak(format!("{what} at strength {strength:.2} (t = {} of {steps})", self.t));
    }
}
