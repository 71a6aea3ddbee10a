//! The pictures of "This step": each term of the update as a texture, and the heat maps laid over the
//! picture on screen (guidance's |ε̂_y - ε̂_Ø|, a cross-attention map).

use eframe::egui::{self, Color32};

use crate::app::colors;
use crate::app::state::ColorMap;
use crate::diffusion::equation::number_text;
use crate::run::explain::StepExplanation;

/// The symbol of a picture that is not one of the update's terms (hovering it highlights nothing).
const NONE: &str = "";

pub(super) struct TermPicture {
    pub label: String,
    /// The term's symbol in the equation, to highlight.
    pub symbol: &'static str,
    pub texture: egui::TextureHandle,
}

/// Every picture of the step: the guidance branches, ε̂, x̂_0 before and after clipping, each weighted
/// term, and their sum x_{t'}; for one image of the batch or all of it.
pub(super) fn term_pictures(
    ctx: &egui::Context,
    e: &StepExplanation,
    map: ColorMap,
    image: Option<usize>,
) -> Vec<TermPicture> {
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
    // Autoguidance's other branch is the weaker model's ε̂_y; every other method's, the unconditional ε̂_Ø.
    let auto = e.guidance_explained.method == crate::diffusion::guidance::GuidanceMethod::Auto;
    if let Some(u) = &e.eps_unconditional {
        add(if auto { "ε̂_weak (the weaker model)" } else { "ε̂_Ø (no class)" }.into(), NONE, u);
    }
    if let Some(c) = &e.eps_conditional {
        add("ε̂_y (the class)".into(), NONE, c);
    }
    if let Some(added) = &e.guidance_added {
        let other = if auto { "ε̂_weak" } else { "ε̂_Ø" };
        add(format!("w (ε̂_y - {other}), w = {}", number_text(e.guidance)), NONE, added);
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
pub(super) fn heat_overlay(difference: &[f32], shape: [usize; 4], display: [usize; 4]) -> egui::ColorImage {
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

/// The least and the most of `values` (finite ones).
pub(super) fn value_range(values: &[f32]) -> (f32, f32) {
    values
        .iter()
        .filter(|v| v.is_finite())
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), v| (lo.min(*v), hi.max(*v)))
}

/// `image`, with a hash of its pixels left in `digest`.
pub(super) fn digested(image: egui::ColorImage, digest: &mut Option<u64>) -> egui::ColorImage {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    image.pixels.hash(&mut hasher);
    *digest = Some(hasher.finish());
    image
}
