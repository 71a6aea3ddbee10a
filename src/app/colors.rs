//! Turning a frame's values into colours: the CPU path of the display (the same mapping as
//! shaders/display.wgsl).

use std::sync::Arc;

use eframe::egui::{self, Color32, ColorImage};

use super::state::{ColorMap, Quantity};
use crate::engine::Frame;

/// Pixels between the images of a batch grid.
pub const GRID_GAP: usize = 2;

/// Columns of the grid a batch of `batch` images is shown in (close to square).
pub fn grid_columns(batch: usize) -> usize {
    (batch as f64).sqrt().ceil().max(1.0) as usize
}

/// [width, height] in pixels of the grid a batch of `batch` images of h x w is shown in.
pub fn grid_size(batch: usize, h: usize, w: usize) -> [usize; 2] {
    let columns = grid_columns(batch);
    let rows = batch.div_ceil(columns);
    [columns * w + (columns - 1) * GRID_GAP, rows * h + (rows - 1) * GRID_GAP]
}

/// Where image `b` of that grid starts, (x, y) in pixels.
pub fn cell_origin(b: usize, batch: usize, h: usize, w: usize) -> (usize, usize) {
    let columns = grid_columns(batch);
    ((b % columns) * (w + GRID_GAP), (b / columns) * (h + GRID_GAP))
}

/// The values a view of a frame shows and their [batch, channels, h, w] layout (a shared buffer: cheap to
/// clone into a GPU callback). Tensors whose channels are not an image's (1 or 3: a latent) are shown one
/// tile per channel, which is the same memory read as [batch * channels, 1, h, w].
pub fn frame_values(frame: &Frame, quantity: Quantity) -> (Arc<Vec<f32>>, [usize; 4]) {
    let tiled = |values: &Arc<Vec<f32>>, [b, c, h, w]: [usize; 4]| {
        let shape = if c == 1 || c == 3 { [b, c, h, w] } else { [b * c, 1, h, w] };
        (values.clone(), shape)
    };
    match (quantity, &frame.decoded) {
        (Quantity::Noisy, Some(decoded)) => (decoded.x_t.clone(), decoded.shape),
        (Quantity::PredictedClean, Some(decoded)) => (decoded.x0_pred.clone(), decoded.shape),
        (Quantity::Noisy, None) => tiled(&frame.x_t, frame.shape),
        (Quantity::PredictedClean, None) => tiled(&frame.x0_pred, frame.shape),
        (Quantity::PredictedNoise, _) => tiled(&frame.eps, frame.shape),
        (Quantity::LatentChannels, _) => {
            let [b, c, h, w] = frame.shape;
            (frame.x_t.clone(), [b * c, 1, h, w])
        }
    }
}

/// Grayscale for the data range [-1, 1]; beyond it, blue (below) or red (above) grows with the excess,
/// so that noise outside the image range is visible rather than clipped.
pub fn gray_color(v: f32) -> Color32 {
    if !v.is_finite() {
        return Color32::from_rgb(255, 0, 255);
    }
    let level = ((v.clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8;
    if v > 1.0 {
        let excess = ((v - 1.0) / 2.0).min(1.0);
        Color32::from_rgb(255, (255.0 * (1.0 - excess)) as u8, (255.0 * (1.0 - excess)) as u8)
    } else if v < -1.0 {
        let excess = ((-1.0 - v) / 2.0).min(1.0);
        Color32::from_rgb(0, 0, (255.0 * excess) as u8)
    } else {
        Color32::from_gray(level)
    }
}

/// Blue (-scale) .. white (0) .. red (+scale).
pub fn diverging_color(v: f32, scale: f32) -> Color32 {
    if !v.is_finite() {
        return Color32::from_rgb(255, 0, 255);
    }
    let x = (v / scale.max(1e-6)).clamp(-1.0, 1.0);
    let fade = (255.0 * (1.0 - x.abs())) as u8;
    if x >= 0.0 { Color32::from_rgb(255, fade, fade) } else { Color32::from_rgb(fade, fade, 255) }
}

/// The whole batch of one frame as one image: a grid, each pixel coloured by `map`.
pub fn color_image(frame: &Frame, quantity: Quantity, map: ColorMap) -> ColorImage {
    let (values, shape) = frame_values(frame, quantity);
    color_image_of(&values, shape, map)
}

/// A batch of values, [batch, channels, h, w], as one grid image coloured by `map`.
pub fn color_image_of(values: &[f32], shape: [usize; 4], map: ColorMap) -> ColorImage {
    let [batch, channels, h, w] = shape;
    let [width, height] = grid_size(batch, h, w);
    let scale = values.iter().fold(0.0f32, |m, v| if v.is_finite() { m.max(v.abs()) } else { m });
    let plane = h * w;
    let mut pixels = vec![Color32::from_gray(24); width * height];
    for b in 0..batch {
        let (x0, y0) = cell_origin(b, batch, h, w);
        let image = &values[b * channels * plane..(b + 1) * channels * plane];
        for y in 0..h {
            for x in 0..w {
                let p = y * w + x;
                let color = if channels == 3 && map == ColorMap::Gray {
                    let c = |k: usize| ((image[k * plane + p].clamp(-1.0, 1.0) + 1.0) * 127.5).round() as u8;
                    Color32::from_rgb(c(0), c(1), c(2))
                } else {
                    // One channel shown; for multi-channel tensors (latents) the first.
                    let v = image[p];
                    match map {
                        ColorMap::Gray => gray_color(v),
                        ColorMap::Diverging => diverging_color(v, scale),
                    }
                };
                pixels[(y0 + y) * width + x0 + x] = color;
            }
        }
    }
    ColorImage::new([width, height], pixels)
}

/// Puts `image` in the texture of `slot`: the texture is updated in place when there is one, else made.
pub fn upload(slot: &mut Option<egui::TextureHandle>, ctx: &egui::Context, name: &str, image: ColorImage) {
    match slot {
        Some(texture) => texture.set(image, egui::TextureOptions::NEAREST),
        None => *slot = Some(ctx.load_texture(name, image, egui::TextureOptions::NEAREST)),
    }
}

/// A texture re-uploaded only when what it shows changes: `key` says what that is (a run's serial, a
/// frame, the quantity and the colour map…).
pub struct TextureCache<K> {
    texture: Option<egui::TextureHandle>,
    key: Option<K>,
    name: &'static str,
}

impl<K: PartialEq> TextureCache<K> {
    pub fn new(name: &'static str) -> Self {
        Self { texture: None, key: None, name }
    }

    /// The texture for `key`, made by `image` only when the key changed (or `image` gives nothing).
    pub fn get(
        &mut self,
        ctx: &egui::Context,
        key: K,
        image: impl FnOnce() -> Option<ColorImage>,
    ) -> Option<egui::TextureHandle> {
        if self.key.as_ref() != Some(&key) || self.texture.is_none() {
            let image = image()?;
            upload(&mut self.texture, ctx, self.name, image);
            self.key = Some(key);
        }
        self.texture.clone()
    }

    /// Whether the texture shows `key`.
    pub fn shows(&self, key: &K) -> bool {
        self.texture.is_some() && self.key.as_ref() == Some(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gray_marks_values_outside_the_image_range() {
        assert_eq!(gray_color(-1.0), Color32::from_gray(0));
        assert_eq!(gray_color(1.0), Color32::from_gray(255));
        assert_eq!(gray_color(3.0), Color32::from_rgb(255, 0, 0));
        assert_eq!(gray_color(-3.0), Color32::from_rgb(0, 0, 255));
        assert_ne!(gray_color(1.5), gray_color(1.0));
    }

    #[test]
    fn grid_lays_out_the_batch() {
        let values: Vec<f32> = (0..5 * 4).map(|i| if i < 4 { 1.0 } else { -1.0 }).collect();
        let frame = Frame {
            index: 0,
            t: 10,
            log_snr: -5.0,
            shape: [5, 1, 2, 2],
            x_t: Arc::new(values.clone()),
            x0_pred: Arc::new(values.clone()),
            eps: Arc::new(values),
            decoded: None,
            parts: None,
        };
        let image = color_image(&frame, Quantity::Noisy, ColorMap::Gray);
        // 5 images -> 3 columns, 2 rows of 2x2 with 2-pixel gaps.
        assert_eq!(image.size, [3 * 2 + 2 * 2, 2 * 2 + 2]);
        assert_eq!(image.pixels[0], Color32::from_gray(255));
        assert_eq!(image.pixels[4], Color32::from_gray(0));
    }
}
