//! [`StepPanel`], "This step": the step that made the frame on screen, taken apart. Its update written in
//! the method's own form with that step's numbers, every term as a picture (hovering one highlights its
//! factor in the equation), the guidance branches, and how much guidance changed ε̂ across the whole run.
//! Everything comes from what the run recorded ([`crate::run::explain`]): no network runs here.

use std::collections::BTreeMap;

use eframe::egui::{self, Color32, RichText};
use egui_plot::{Line, Plot, PlotPoints, VLine};

use super::colors;
use super::state::{ColorMap, Trajectory};
use crate::diffusion::equation::number_text;
use crate::run::explain::{StepExplanation, explain_step, guidance_size};

mod attention;
mod memo;
mod pictures;

use attention::Attention;
pub use memo::Memo;
use pictures::{TermPicture, digested, heat_overlay, term_pictures, value_range};

/// Mean |ε̂_y - ε̂_Ø| over the batch at each recorded step of a run: the frame the step made -> (λ where the
/// step started, size). Kept up to date frame by frame while a run streams, not recomputed.
type GuidanceCurve = BTreeMap<usize, [f64; 2]>;

/// Adds to `curve` the steps of `trajectory` recorded since the last call (and forgets frames the memory
/// budget thinned out).
fn update_curve(curve: &mut GuidanceCurve, trajectory: &Trajectory) {
    let batch = trajectory.request.batch;
    // A step's start level is its previous frame's: only steps whose previous frame is kept count.
    for pair in trajectory.frames.windows(2).filter(|p| p[0].index + 1 == p[1].index) {
        if curve.contains_key(&pair[1].index) {
            continue;
        }
        let Some(parts) = pair[1].parts.as_ref() else { continue };
        let (Some(u), Some(c)) = (parts.unconditional.as_deref(), parts.conditional.as_deref()) else { continue };
        if let Some(size) = guidance_size(u, c, batch) {
            let mean = size.iter().sum::<f32>() as f64 / size.len().max(1) as f64;
            curve.insert(pair[1].index, [pair[0].log_snr, mean]);
        }
    }
    if curve.len() >= trajectory.frames.len() {
        let kept: std::collections::BTreeSet<usize> = trajectory.frames.iter().map(|f| f.index).collect();
        curve.retain(|index, _| kept.contains(index));
    }
}

pub struct StepPanel {
    /// The step that made the frame, taken apart, for (run serial, frame index).
    explained: Memo<(u64, usize), Result<StepExplanation, String>>,
    /// The term pictures, for (run serial, frame index, colour map, image).
    pictures: Memo<(u64, usize, ColorMap, Option<usize>), Vec<TermPicture>>,
    /// The term under the mouse in the last paint.
    hovered: Option<&'static str>,
    /// The image of the batch the pictures show (`None`: the whole batch).
    pub image: Option<usize>,
    /// Mean |ε̂_y - ε̂_Ø| over the batch at each recorded step, for the run (its serial).
    curve: Memo<u64, GuidanceCurve>,
    overlay: colors::TextureCache<(u64, usize, [usize; 4])>,
    /// The cross-attention of run `serial`'s steps.
    attention: Option<(u64, Attention)>,
    /// A hash of the overlay's pixels when it was last made: what tests compare to see it change.
    pub overlay_digest: Option<u64>,
    /// The values the overlay's colours run between (clear to red), for its caption.
    pub overlay_range: Option<(f32, f32)>,
    /// Each token's share of a layer's attention, for (run serial, layer): made once, not every paint.
    token_shares: Memo<(u64, usize), Option<Vec<f32>>>,
    /// "Save step figure…" was pressed: the PNG (figure and settings) waiting for its file dialog.
    pending_figure: Option<Result<Vec<u8>, String>>,
}

impl Default for StepPanel {
    fn default() -> Self {
        Self {
            explained: Memo::default(),
            pictures: Memo::default(),
            hovered: None,
            image: Some(0),
            curve: Memo::default(),
            overlay: colors::TextureCache::new("step_overlay"),
            attention: None,
            overlay_digest: None,
            pending_figure: None,
            overlay_range: None,
            token_shares: Memo::default(),
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
        let explained = self.explained.get((serial, frame.index), |_| {
            let explained = match cursor.checked_sub(1).and_then(|p| trajectory.frames.get(p)) {
                Some(previous) => explain_step(&trajectory.request, x0_bound(trajectory), previous, frame),
                None => Err(crate::run::explain::ExplainError::Start),
            };
            explained.map_err(|e| e.to_string())
        });
        explained.as_ref().ok()
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
        match self.explained.value() {
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

    /// The step taken apart: its numbers, its update as a sum, and each term as a picture; hovering a term
    /// in either highlights it in both.
    fn explained_ui(&mut self, ui: &mut egui::Ui, map: ColorMap, zoom: f32) {
        let (Some(Ok(e)), Some(&(serial, index))) = (self.explained.value(), self.explained.key()) else { return };
        let image = self.image;
        let pictures = self.pictures.get((serial, index, map, image), |_| term_pictures(ui.ctx(), e, map, image));
        numbers_ui(ui, e);
        sum_ui(ui, e, &mut self.hovered);
        pictures_ui(ui, pictures, zoom, &mut self.hovered);
    }

    /// The step (for the image the panel shows, the first for the whole batch) as a PNG figure with the
    /// run's settings.
    fn figure_png(&self, trajectory: &Trajectory) -> Result<Vec<u8>, String> {
        let Some(Ok(e)) = self.explained.value() else { return Err("no step to save".into()) };
        let one = e.image(self.image.unwrap_or(0));
        let figure = crate::run::explain::step_figure(&one, &crate::run::explain::step_text(&one), 4);
        let extra = serde_json::json!({ "explain_step": e.step + 1 });
        let text = crate::run::png_settings::settings_text(&trajectory.request, extra);
        crate::images::png_bytes(&figure, &text).map_err(|e| e.to_string())
    }

    /// The figure "Save step figure…" made, for the file dialog.
    pub fn take_figure(&mut self) -> Option<Result<Vec<u8>, String>> {
        self.pending_figure.take()
    }

    /// Mean |ε̂_y - ε̂_Ø| at every recorded step of the run, against λ: at which noise levels the class
    /// changes the network's answer.
    fn guidance_curve_ui(&mut self, ui: &mut egui::Ui, trajectory: &Trajectory, serial: u64, cursor: usize) {
        let curve = self.curve.get_mut(serial, |_| GuidanceCurve::new());
        update_curve(curve, trajectory);
        let points: Vec<[f64; 2]> = curve.values().copied().collect();
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

/// The step's numbers (its levels and coefficients, each with its definition), x̂_0's form, how much
/// clipping changed, what guidance did, and the method's note.
fn numbers_ui(ui: &mut egui::Ui, e: &StepExplanation) {
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
    // How the network's output became ε̂ and x̂_0: the coefficients the run used at this step's λ.
    let [plain, eps_line, x0_line] = e.conversion.lines();
    ui.label(RichText::new(plain).italics());
    ui.label(eps_line);
    ui.label(format!("{}:   {x0_line}", crate::diffusion::equation::X0_FORM));
    ui.label(format!(
        "Clipping x̂_0 changed {:.1} % of its values (what the network predicted outside the data range).",
        100.0 * e.clipped_share()
    ));
    // The guidance method's formula with this step's numbers (its ε̂ made again from the branches).
    for line in &e.guidance_explained.lines {
        ui.label(line);
    }
    if let Some(note) = &e.note {
        ui.label(RichText::new(note).color(ui.visuals().warn_fg_color));
    }
}

/// The colour of the term under the mouse, in the sum and above its picture.
const HIGHLIGHT: Color32 = Color32::from_rgb(255, 160, 0);

/// The update as the sum the pictures show; the `hovered` term stands out (and hovering one sets it).
fn sum_ui(ui: &mut egui::Ui, e: &StepExplanation, hovered: &mut Option<&'static str>) {
    ui.horizontal_wrapped(|ui| {
        ui.label("x_{t'} =");
        let mut now = None;
        for (k, term) in e.terms.iter().enumerate() {
            let sign = if k == 0 { "" } else { "+ " };
            let mut text = RichText::new(format!("{sign}{} · {}", number_text(term.coefficient), term.symbol));
            if *hovered == Some(term.symbol) {
                text = text.strong().color(HIGHLIGHT).background_color(ui.visuals().faint_bg_color);
            }
            if ui.label(text).hovered() {
                now = Some(term.symbol);
            }
        }
        if now.is_some() {
            *hovered = now;
        }
    });
}

/// Each term's picture, labelled (the `hovered` term's label stands out; hovering a picture sets it).
fn pictures_ui(ui: &mut egui::Ui, pictures: &[TermPicture], zoom: f32, hovered: &mut Option<&'static str>) {
    let mut now = None;
    ui.horizontal_wrapped(|ui| {
        for picture in pictures {
            ui.vertical(|ui| {
                let mut label = RichText::new(&picture.label).small();
                if !picture.symbol.is_empty() && *hovered == Some(picture.symbol) {
                    label = label.strong().color(HIGHLIGHT);
                }
                ui.label(label);
                let size = picture.texture.size_vec2() * zoom;
                let response = ui.add(egui::Image::new((picture.texture.id(), size)).alt_text(&picture.label));
                if response.hovered() && !picture.symbol.is_empty() {
                    now = Some(picture.symbol);
                }
            });
        }
    });
    if now.is_some() || !ui.ui_contains_pointer() {
        *hovered = now;
    }
}
