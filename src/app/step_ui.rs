//! [`StepPanel`], "This step": the step that made the frame on screen, taken apart. Its update written in
//! the method's own form with that step's numbers, every term as a picture (hovering one highlights its
//! factor in the equation), the guidance branches, and how much guidance changed ε̂ across the whole run.
//! Everything comes from what the run recorded ([`crate::engine::explain`]): no network runs here.

use eframe::egui::{self, Color32, RichText};
use egui_plot::{Line, Plot, PlotPoints, VLine};

use super::colors;
use super::state::{AttentionPick, ColorMap, Trajectory};
use crate::diffusion::equation::number_text;
use crate::engine::explain::{AttentionInput, StepAttention, StepExplanation, explain_step, guidance_size};

/// The symbol of a picture that is not one of the update's terms (hovering it highlights nothing).
const NONE: &str = "";

/// Mean |ε̂_y - ε̂_Ø| over the batch at each recorded step of run `serial`: the frame the step made -> (λ
/// where the step started, size). Kept up to date frame by frame while a run streams, not recomputed.
#[derive(Default)]
struct GuidanceCurve {
    serial: u64,
    points: std::collections::BTreeMap<usize, [f64; 2]>,
}

impl GuidanceCurve {
    /// Adds the steps recorded since the last call (and forgets frames the memory budget thinned out).
    fn update(&mut self, trajectory: &Trajectory, serial: u64) {
        if self.serial != serial {
            *self = Self { serial, ..Self::default() };
        }
        let batch = trajectory.request.batch;
        // A step's start level is its previous frame's: only steps whose previous frame is kept count.
        for pair in trajectory.frames.windows(2).filter(|p| p[0].index + 1 == p[1].index) {
            if self.points.contains_key(&pair[1].index) {
                continue;
            }
            let Some(parts) = pair[1].parts.as_ref() else { continue };
            let (Some(u), Some(c)) = (parts.unconditional.as_deref(), parts.conditional.as_deref()) else { continue };
            if let Some(size) = guidance_size(u, c, batch) {
                let mean = size.iter().sum::<f32>() as f64 / size.len().max(1) as f64;
                self.points.insert(pair[1].index, [pair[0].log_snr, mean]);
            }
        }
        if self.points.len() >= trajectory.frames.len() {
            let kept: std::collections::BTreeSet<usize> = trajectory.frames.iter().map(|f| f.index).collect();
            self.points.retain(|index, _| kept.contains(index));
        }
    }
}

struct TermPicture {
    label: String,
    /// The term's symbol in the equation, to highlight.
    symbol: &'static str,
    texture: egui::TextureHandle,
}

pub struct StepPanel {
    /// (run serial, frame index) the explanation is of.
    key: Option<(u64, usize)>,
    explained: Option<Result<StepExplanation, String>>,
    /// (run serial, frame index, colour map, image) the pictures are of.
    pictures_key: Option<(u64, usize, ColorMap, Option<usize>)>,
    pictures: Vec<TermPicture>,
    /// The term under the mouse in the last paint.
    hovered: Option<&'static str>,
    /// The image of the batch the pictures show (`None`: the whole batch).
    pub image: Option<usize>,
    /// Mean |ε̂_y - ε̂_Ø| over the batch at each recorded step: (λ of the step, size), for (run, frames).
    curve: GuidanceCurve,
    overlay: colors::TextureCache<(u64, usize, [usize; 4])>,
    /// The cross-attention of run `serial`'s steps.
    attention: Option<(u64, Attention)>,
    /// A hash of the overlay's pixels when it was last made: what tests compare to see it change.
    pub overlay_digest: Option<u64>,
    /// The values the overlay's colours run between (clear to red), for its caption.
    pub overlay_range: Option<(f32, f32)>,
    /// Each token's share of a layer's attention, for (run serial, layer): made once, not every paint.
    token_shares: Option<(ShareKey, Option<Vec<f32>>)>,
    /// "Save step figure…" was pressed: the PNG (figure and settings) waiting for its file dialog.
    pending_figure: Option<Result<Vec<u8>, String>>,
}

impl Default for StepPanel {
    fn default() -> Self {
        Self {
            key: None,
            explained: None,
            pictures_key: None,
            pictures: Vec::new(),
            hovered: None,
            image: Some(0),
            curve: GuidanceCurve::default(),
            overlay: colors::TextureCache::new("step_overlay"),
            attention: None,
            overlay_digest: None,
            pending_figure: None,
            overlay_range: None,
            token_shares: None,
        }
    }
}

/// x̂_0 is clipped to this bound: pixels' [-1, 1], or the latent models' wider range.
fn x0_bound(trajectory: &Trajectory) -> f64 {
    let latent = trajectory.frames.first().is_some_and(|f| f.decoded.is_some());
    if latent { crate::model::autoencoder::LATENT_X0_BOUND } else { 1.0 }
}

impl StepPanel {
    /// The step that made frame `cursor` of `trajectory`, taken apart once per frame.
    pub fn explanation(&mut self, trajectory: &Trajectory, serial: u64, cursor: usize) -> Option<&StepExplanation> {
        let frame = trajectory.frames.get(cursor)?;
        let key = (serial, frame.index);
        if self.key != Some(key) {
            let explained = match cursor.checked_sub(1).and_then(|p| trajectory.frames.get(p)) {
                Some(previous) => explain_step(&trajectory.request, x0_bound(trajectory), previous, frame),
                None => Err(crate::engine::explain::ExplainError::Start),
            };
            self.explained = Some(explained.map_err(|e| e.to_string()));
            self.key = Some(key);
        }
        self.explained.as_ref()?.as_ref().ok()
    }

    /// The heat map of |ε̂_y - ε̂_Ø| for the step that made frame `cursor`, laid out as the picture on screen
    /// (`display`: its [batch, channels, h, w]); `None` where the step did not run both branches.
    pub fn guidance_overlay(
        &mut self,
        ctx: &egui::Context,
        trajectory: &Trajectory,
        serial: u64,
        cursor: usize,
        display: [usize; 4],
    ) -> Option<egui::TextureHandle> {
        let explained = self.explanation(trajectory, serial, cursor)?;
        let (u, c) = (explained.eps_unconditional.clone()?, explained.eps_conditional.clone()?);
        let shape = explained.shape;
        if display[0] != shape[0] {
            return None; // Latent channels shown as tiles: no picture to lay the map over.
        }
        let difference: Vec<f32> = u.iter().zip(c.iter()).map(|(u, c)| (c - u).abs()).collect();
        let key = (serial ^ (1 << 63), explained.step, display);
        self.overlay_range = Some(value_range(&difference));
        let digest = &mut self.overlay_digest;
        self.overlay.get(ctx, key, || Some(digested(heat_overlay(&difference, shape, display), digest)))
    }

    /// The panel for the frame under `cursor` of `trajectory` (`serial`: which run it is).
    /// The term pictures take `look`'s colours and zoom (halved for the whole batch, which is a grid).
    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        trajectory: &Trajectory,
        serial: u64,
        cursor: usize,
        look: super::viewer::Look,
    ) {
        let map = look.color_map;
        let zoom = if self.image.is_some() { look.zoom } else { (look.zoom / 2.0).max(1.0) };
        ui.heading("This step");
        ui.label(
            "How the sampler made the picture on screen from the one before: each term below is a picture, and \
             the weighted terms add up to the new x.",
        );
        let batch = trajectory.request.batch;
        ui.horizontal(|ui| {
            let mut all = self.image.is_none();
            ui.checkbox(&mut all, "Whole batch").on_hover_text("Show the term pictures of every image at once");
            if all {
                self.image = None;
            } else {
                let mut image = self.image.unwrap_or(0) + 1;
                ui.add(egui::DragValue::new(&mut image).range(1..=batch.max(1)).prefix("image "))
                    .on_hover_text("Which image of the batch (or point at it in the picture)");
                self.image = Some((image - 1).min(batch.saturating_sub(1)));
            }
        });
        ui.separator();
        self.explanation(trajectory, serial, cursor);
        match &self.explained {
            Some(Err(why)) => {
                ui.label(why.as_str());
            }
            None => {
                ui.label("No frame yet.");
            }
            Some(Ok(_)) => {
                if ui
                    .button("Save step figure…")
                    .on_hover_text("This step as a PNG for slides (as `explain` writes it)")
                    .clicked()
                {
                    self.pending_figure = Some(self.figure_png(trajectory));
                }
                self.explained_ui(ui, map, zoom);
            }
        }
        ui.separator();
        self.guidance_curve_ui(ui, trajectory, serial, cursor);
    }

    fn explained_ui(&mut self, ui: &mut egui::Ui, map: ColorMap, zoom: f32) {
        let Some(Ok(e)) = &self.explained else { return };
        let key = self.key.map(|(serial, index)| (serial, index, map, self.image));
        if self.pictures_key != key {
            self.pictures = term_pictures(ui.ctx(), e, map, self.image);
            self.pictures_key = key;
        }
        let eq = &e.equation;
        ui.label(format!("Step {} of {} ({})", e.step + 1, e.total_steps, eq.form));
        ui.label(RichText::new(eq.meaning).italics());
        egui::Grid::new("step_numbers").num_columns(2).striped(true).show(ui, |ui| {
            for n in eq.levels.iter().chain(&eq.numbers) {
                ui.label(n.text()).on_hover_text(n.definition);
                ui.label(RichText::new(n.described()).weak());
                ui.end_row();
            }
        });
        let level = eq.levels.iter().find(|n| n.name == "ᾱ_t").map_or(f64::NAN, |n| n.value);
        ui.label(format!(
            "{}:   x̂_0 = {} x_t - {} ε̂",
            crate::diffusion::equation::X0_FORM,
            number_text(1.0 / level.sqrt()),
            number_text(((1.0 - level) / level).sqrt())
        ));
        ui.label(format!(
            "Clipping x̂_0 changed {:.1} % of its values (what the network predicted outside the data range).",
            100.0 * e.clipped_share()
        ));
        match e.guidance_size() {
            Some(size) => {
                let mean = size.iter().sum::<f32>() / size.len().max(1) as f32;
                ui.label(format!(
                    "Guidance: ε̂ = ε̂_Ø + w (ε̂_y - ε̂_Ø) with w = {} ; mean |ε̂_y - ε̂_Ø| = {mean:.4}",
                    number_text(e.guidance)
                ));
            }
            None => {
                ui.label(format!(
                    "Guidance: w = {}, so only one branch ran: ε̂ is that branch.",
                    number_text(e.guidance)
                ));
            }
        }
        if let Some(note) = &e.note {
            ui.label(RichText::new(note).color(ui.visuals().warn_fg_color));
        }
        // The update as the sum the pictures show; the hovered term stands out.
        ui.horizontal_wrapped(|ui| {
            ui.label("x_{t'} =");
            let mut hovered = None;
            for (k, term) in e.terms.iter().enumerate() {
                let sign = if k == 0 { "" } else { "+ " };
                let mut text = RichText::new(format!("{sign}{} · {}", number_text(term.coefficient), term.symbol));
                if self.hovered == Some(term.symbol) {
                    text = text
                        .strong()
                        .color(Color32::from_rgb(255, 160, 0))
                        .background_color(ui.visuals().faint_bg_color);
                }
                if ui.label(text).hovered() {
                    hovered = Some(term.symbol);
                }
            }
            if hovered.is_some() {
                self.hovered = hovered;
            }
        });
        let mut hovered = None;
        ui.horizontal_wrapped(|ui| {
            for picture in &self.pictures {
                ui.vertical(|ui| {
                    let mut label = RichText::new(&picture.label).small();
                    if !picture.symbol.is_empty() && self.hovered == Some(picture.symbol) {
                        label = label.strong().color(Color32::from_rgb(255, 160, 0));
                    }
                    ui.label(label);
                    let size = picture.texture.size_vec2() * zoom;
                    let response = ui.add(egui::Image::new((picture.texture.id(), size)).alt_text(&picture.label));
                    if response.hovered() && !picture.symbol.is_empty() {
                        hovered = Some(picture.symbol);
                    }
                });
            }
        });
        if hovered.is_some() || !ui.ui_contains_pointer() {
            self.hovered = hovered;
        }
    }

    /// The step (for the image the panel shows, the first for the whole batch) as a PNG figure with the
    /// run's settings.
    fn figure_png(&self, trajectory: &Trajectory) -> Result<Vec<u8>, String> {
        let Some(Ok(e)) = &self.explained else { return Err("no step to save".into()) };
        let one = e.image(self.image.unwrap_or(0));
        let figure = crate::engine::explain::step_figure(&one, &crate::engine::explain::step_text(&one), 4);
        let extra = serde_json::json!({ "explain_step": e.step + 1 });
        let text = crate::engine::png_settings::settings_text(&trajectory.request, extra);
        crate::images::png_bytes(&figure, &text).map_err(|e| e.to_string())
    }

    /// The figure "Save step figure…" made, for the file dialog.
    pub fn take_figure(&mut self) -> Option<Result<Vec<u8>, String>> {
        self.pending_figure.take()
    }

    /// Mean |ε̂_y - ε̂_Ø| at every recorded step of the run, against λ: at which noise levels the class
    /// changes the network's answer.
    fn guidance_curve_ui(&mut self, ui: &mut egui::Ui, trajectory: &Trajectory, serial: u64, cursor: usize) {
        self.curve.update(trajectory, serial);
        let points: Vec<[f64; 2]> = self.curve.points.values().copied().collect();
        ui.label("Where guidance acts: mean |ε̂_y - ε̂_Ø| at each step, against the step's noise level λ");
        if points.is_empty() {
            ui.label("(no step of this run ran both branches: guidance w was 0 or 1 throughout)");
            return;
        }
        let cursor_level = cursor.checked_sub(1).and_then(|p| trajectory.frames.get(p)).map(|f| f.log_snr);
        Plot::new("guidance_size")
            .height(120.0)
            .x_axis_label("λ (left: noisy, right: clean)")
            .allow_scroll(false)
            .show(ui, |plot| {
                plot.line(Line::new("|ε̂_y - ε̂_Ø|", PlotPoints::from(points)));
                if let Some(level) = cursor_level.filter(|l| l.is_finite()) {
                    plot.vline(VLine::new("this step", level));
                }
            });
    }
}

/// Every picture of the step: the guidance branches, ε̂, x̂_0 before and after clipping, each weighted
/// term, and their sum x_{t'}; for one image of the batch or all of it.
fn term_pictures(ctx: &egui::Context, e: &StepExplanation, map: ColorMap, image: Option<usize>) -> Vec<TermPicture> {
    let [batch, c, h, w] = e.shape;
    let per_image = c * h * w;
    let select = |values: &[f32]| -> (Vec<f32>, [usize; 4]) {
        let (values, b) = match image.filter(|i| *i < batch) {
            Some(i) => (values[i * per_image..(i + 1) * per_image].to_vec(), 1),
            None => (values.to_vec(), batch),
        };
        // A latent's channels side by side, one tile each.
        let shape = if c == 1 || c == 3 { [b, c, h, w] } else { [b * c, 1, h, w] };
        (values, shape)
    };
    let mut pictures = Vec::new();
    let mut add = |label: String, symbol: &'static str, values: &[f32]| {
        if values.len() != batch * per_image {
            return;
        }
        let (values, shape) = select(values);
        let texture = ctx.load_texture(
            format!("term {label}"),
            colors::color_image_of(&values, shape, map),
            egui::TextureOptions::NEAREST,
        );
        pictures.push(TermPicture { label, symbol, texture });
    };
    add("x_t (the step's input)".into(), "x_t", &e.x_t);
    if let Some(u) = &e.eps_unconditional {
        add("ε̂_Ø (no class)".into(), NONE, u);
    }
    if let Some(c) = &e.eps_conditional {
        add("ε̂_y (the class)".into(), NONE, c);
    }
    if let Some(added) = &e.guidance_added {
        add(format!("w (ε̂_y - ε̂_Ø), w = {}", number_text(e.guidance)), NONE, added);
    }
    add("ε̂ (guided)".into(), "ε̂", &e.eps);
    add("x̂_0 before clipping".into(), NONE, &e.x0_unclipped);
    add("x̂_0".into(), "x̂_0", &e.x0_pred);
    for term in &e.terms {
        add(format!("{} · {}", number_text(term.coefficient), term.symbol), term.symbol, &term.weighted);
    }
    add("= x_{t'} (the sum)".into(), NONE, &e.x_next);
    pictures
}

/// |ε̂_y - ε̂_Ø| (mean over channels) as a translucent heat map laid out like the picture on screen:
/// `display` [batch, channels, h, w], each image's map stretched over it (a latent's 7x7 over 28x28).
fn heat_overlay(difference: &[f32], shape: [usize; 4], display: [usize; 4]) -> egui::ColorImage {
    let [batch, c, h, w] = shape;
    let [_, _, dh, dw] = display;
    let [width, height] = colors::grid_size(batch, dh, dw);
    let plane = h * w;
    let heat: Vec<f32> = (0..batch * plane)
        .map(|k| {
            let (b, p) = (k / plane, k % plane);
            (0..c).map(|ch| difference[(b * c + ch) * plane + p]).sum::<f32>() / c as f32
        })
        .collect();
    // Stretched from the map's least to its most: attention to one token is often nearly even, and its
    // differences are what the picture is for (the range is printed beside the pickers).
    let (low, high) = value_range(&heat);
    let span = (high - low).max(1e-9);
    let mut pixels = vec![Color32::TRANSPARENT; width * height];
    for b in 0..batch {
        let (x0, y0) = colors::cell_origin(b, batch, dh, dw);
        for y in 0..dh {
            for x in 0..dw {
                let v = (heat[b * plane + (y * h / dh) * w + x * w / dw] - low) / span;
                let alpha = (200.0 * v) as u8;
                pixels[(y0 + y) * width + x0 + x] =
                    Color32::from_rgba_unmultiplied(255, (200.0 * (1.0 - v)) as u8, 0, alpha);
            }
        }
    }
    egui::ColorImage::new([width, height], pixels)
}

/// The cross-attention of a run's steps: asked of the engine once the run is complete, then kept.
enum Attention {
    /// Asked for (the inputs go out with the next [`StepPanel::take_attention_request`]).
    Asked(Option<Box<(crate::engine::GenerateRequest, Vec<AttentionInput>)>>),
    Ready(std::sync::Arc<Vec<StepAttention>>),
    Failed(String),
}

/// Steps whose attention is read at most: a 1000-step DDPM run is sampled evenly.
const ATTENTION_STEPS: usize = 60;

impl StepPanel {
    /// The attention map `pick` of the frame under `cursor` (or summed over the steps) as an overlay laid
    /// out like the picture on screen; asks the engine for the run's attention the first time.
    pub fn attention_overlay(
        &mut self,
        ctx: &egui::Context,
        trajectory: &Trajectory,
        serial: u64,
        cursor: usize,
        display: [usize; 4],
        pick: AttentionPick,
    ) -> Option<egui::TextureHandle> {
        let steps = self.attention_for(trajectory, serial)?;
        let batch = trajectory.request.batch;
        if display[0] != batch {
            return None;
        }
        let index = trajectory.frames.get(cursor)?.index;
        let chosen: Vec<&StepAttention> = if pick.summed {
            steps.iter().collect()
        } else {
            steps.iter().filter(|s| s.frame_index == index).collect()
        };
        let first = chosen.first()?.layers.get(pick.layer)?;
        let (h, w, token) = (first.height, first.width, pick.token.min(first.tokens.saturating_sub(1)));
        let mut maps = vec![0.0f32; batch * h * w];
        for step in &chosen {
            let Some(layer) = step.layers.get(pick.layer) else { continue };
            for b in 0..batch {
                for (m, v) in maps[b * h * w..(b + 1) * h * w].iter_mut().zip(layer.map(b, token, pick.head)) {
                    *m += v;
                }
            }
        }
        let key = (serial ^ (pick_code(pick) << 40), if pick.summed { usize::MAX } else { index }, display);
        self.overlay_range = Some(value_range(&maps));
        let digest = &mut self.overlay_digest;
        self.overlay.get(ctx, key, || Some(digested(heat_overlay(&maps, [batch, 1, h, w], display), digest)))
    }

    /// The run's attention if it has arrived; asks for it (once per run, when the run is complete).
    fn attention_for(&mut self, trajectory: &Trajectory, serial: u64) -> Option<std::sync::Arc<Vec<StepAttention>>> {
        match &self.attention {
            Some((s, Attention::Ready(steps))) if *s == serial => return Some(steps.clone()),
            Some((s, _)) if *s == serial => return None,
            _ => {}
        }
        if !trajectory.is_complete() {
            return None;
        }
        let pairs: Vec<(usize, usize)> = (1..trajectory.frames.len())
            .filter(|k| trajectory.frames[*k - 1].index + 1 == trajectory.frames[*k].index)
            .map(|k| (k - 1, k))
            .collect();
        let every = pairs.len().div_ceil(ATTENTION_STEPS).max(1);
        let inputs = pairs
            .iter()
            .enumerate()
            .filter(|(n, _)| n % every == 0)
            .map(|(_, (before, after))| AttentionInput {
                frame_index: trajectory.frames[*after].index,
                log_snr: trajectory.frames[*before].log_snr,
                x_t: trajectory.frames[*before].x_t.clone(),
            })
            .collect();
        self.attention = Some((serial, Attention::Asked(Some(Box::new((trajectory.request.clone(), inputs))))));
        None
    }

    /// Whether the cross-attention of run `serial` has arrived.
    pub fn attention_ready(&self, serial: u64) -> bool {
        matches!(&self.attention, Some((s, Attention::Ready(_))) if *s == serial)
    }

    /// The attention request waiting to go to the engine, as (run serial, request, inputs).
    pub fn take_attention_request(&mut self) -> Option<(u64, crate::engine::GenerateRequest, Vec<AttentionInput>)> {
        match &mut self.attention {
            Some((serial, Attention::Asked(asked))) => asked.take().map(|asked| (*serial, asked.0, asked.1)),
            _ => None,
        }
    }

    /// The engine's answer for run `key` (ignored when the viewer shows another run by now).
    pub fn on_attention(&mut self, key: u64, attention: Result<std::sync::Arc<Vec<StepAttention>>, String>) {
        if self.attention.as_ref().is_some_and(|(serial, _)| *serial == key) {
            let state = match attention {
                Ok(steps) => Attention::Ready(steps),
                Err(message) => Attention::Failed(message),
            };
            self.attention = Some((key, state));
        }
    }

    /// A text model's prompt as buttons, one per token: the start token, each word, the padding after the
    /// last word. Clicking one shows its attention map; each carries its share of the attention (at the
    /// layer picked, over the run's steps, positions, heads and images), and the shares sum to 1.
    pub fn word_picker_ui(&mut self, ui: &mut egui::Ui, words: &[String], pick: &mut AttentionPick) {
        let shares = self.token_shares(pick.layer).map(<[f32]>::to_vec);
        let share_of = |token: usize| shares.as_ref().and_then(|s| s.get(token)).copied();
        let padding_share = shares.as_ref().map(|s| s.iter().skip(words.len() + 1).sum::<f32>());
        ui.horizontal_wrapped(|ui| {
            ui.label("Click a word:");
            let mut button = |ui: &mut egui::Ui, token: usize, text: &str, share: Option<f32>| {
                let label = match share {
                    Some(share) => format!("{text} {:.0} %", 100.0 * share),
                    None => text.to_string(),
                };
                if ui.selectable_label(pick.token == token, label).clicked() {
                    pick.token = token;
                }
            };
            button(ui, 0, "<start>", share_of(0));
            for (k, word) in words.iter().enumerate() {
                button(ui, k + 1, word, share_of(k + 1));
            }
            button(ui, words.len() + 1, "padding", padding_share);
        });
        ui.label(
            "Each word's share: of all the attention this layer paid, the part that went to that word's token \
             (the start token and the padding after the last word also read the prompt, and take the rest)",
        );
    }

    /// Each token's share of layer `layer`'s attention over the run's steps (mean over images, heads and
    /// positions), once the run's attention has arrived; kept for the run and layer.
    fn token_shares(&mut self, layer: usize) -> Option<&[f32]> {
        let Some((serial, Attention::Ready(steps))) = &self.attention else { return None };
        let key = (*serial, layer);
        if self.token_shares.as_ref().is_none_or(|(k, _)| *k != key) {
            self.token_shares = Some((key, mean_token_shares(steps, layer)));
        }
        self.token_shares.as_ref().and_then(|(_, shares)| shares.as_deref())
    }

    /// The attention overlay's pickers (layer, token, head, summed) and what it shows.
    pub fn attention_picker_ui(&mut self, ui: &mut egui::Ui, pick: &mut AttentionPick) {
        let layers: Vec<(String, usize, usize)> = match &self.attention {
            Some((_, Attention::Ready(steps))) => steps
                .first()
                .map(|s| s.layers.iter().map(|l| (l.layer.clone(), l.tokens, l.heads)).collect())
                .unwrap_or_default(),
            Some((_, Attention::Failed(message))) => {
                ui.label(format!("attention: {message}"));
                Vec::new()
            }
            Some((_, Attention::Asked(_))) => {
                ui.label("reading attention…");
                Vec::new()
            }
            None => {
                ui.label("attention is read once the run is complete");
                Vec::new()
            }
        };
        let Some((_, tokens, heads)) = layers.get(pick.layer.min(layers.len().saturating_sub(1))).cloned() else {
            return;
        };
        pick.layer = pick.layer.min(layers.len() - 1);
        egui::ComboBox::from_label("Layer").selected_text(layers[pick.layer].0.clone()).show_ui(ui, |ui| {
            for (k, (name, ..)) in layers.iter().enumerate() {
                ui.selectable_value(&mut pick.layer, k, name);
            }
        });
        let mut token = pick.token.min(tokens - 1) + 1;
        let label = ui.label("Token");
        ui.add(egui::DragValue::new(&mut token).range(1..=tokens).suffix(format!(" of {tokens}")))
            .labelled_by(label.id)
            .on_hover_text("Which of the class's τ_θ(y) tokens: the map shows how much each position attends to it");
        pick.token = token - 1;
        let head_text = |h: Option<usize>| h.map_or("mean of heads".to_string(), |h| format!("head {}", h + 1));
        egui::ComboBox::from_label("Head").selected_text(head_text(pick.head)).show_ui(ui, |ui| {
            ui.selectable_value(&mut pick.head, None, head_text(None));
            for h in 0..heads {
                ui.selectable_value(&mut pick.head, Some(h), head_text(Some(h)));
            }
        });
        ui.checkbox(&mut pick.summed, "Summed over steps")
            .on_hover_text("Add the maps of every step (as DAAM does) instead of the step on screen");
        if let Some((low, high)) = self.overlay_range {
            let what = if pick.summed { "summed over the steps" } else { "at this step" };
            ui.label(format!(
                "colours: {} (clear) to {} (red), {what}",
                number_text(low as f64),
                number_text(high as f64)
            ));
        }
        ui.label("softmax(Q K^T / sqrt(d)): the share of each position's attention that goes to the token")
            .on_hover_text(
                "Q from the image features at this layer, K from τ_θ(y); the shares sum to 1 over the tokens",
            );
    }
}

/// (run serial, layer) of the token shares kept.
type ShareKey = (u64, usize);

/// Each token's mean weight in layer `layer` over `steps`, images, heads and positions.
fn mean_token_shares(steps: &[StepAttention], layer: usize) -> Option<Vec<f32>> {
    let mut shares: Vec<f32> = Vec::new();
    let mut rows = 0usize;
    for step in steps {
        let l = step.layers.get(layer)?;
        shares.resize(l.tokens, 0.0);
        for row in l.weights.chunks_exact(l.tokens.max(1)) {
            shares.iter_mut().zip(row).for_each(|(s, w)| *s += w);
            rows += 1;
        }
    }
    (rows > 0).then(|| shares.iter().map(|s| s / rows as f32).collect())
}

/// A number that tells picks apart in a texture key.
fn pick_code(pick: AttentionPick) -> u64 {
    (pick.layer as u64) << 16
        | (pick.token as u64) << 8
        | pick.head.map_or(255, |h| h as u64)
        | u64::from(pick.summed) << 20
}

/// The least and the most of `values` (finite ones).
fn value_range(values: &[f32]) -> (f32, f32) {
    values
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)))
}

/// `image`, with a hash of its pixels left in `digest`.
fn digested(image: egui::ColorImage, digest: &mut Option<u64>) -> egui::ColorImage {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    image.pixels.hash(&mut hasher);
    *digest = Some(hasher.finish());
    image
}
