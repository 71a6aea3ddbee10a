//! A small rasteriser for plots of the plane (the 2-D lab's pictures as PNG and GIF): dots, lines,
//! arrows, filled cells and text on an RGB [`Picture`], with a fixed square of the plane mapped onto it.
//! The window draws the same things with egui's painter; this is for files, so they look the same on
//! every machine.

use super::Picture;

pub type Rgb = [u8; 3];

/// An RGB picture showing the square [-bound, bound]² of the plane (y up).
pub struct Canvas {
    pub picture: Picture,
    pub bound: f64,
}

impl Canvas {
    pub fn new(size: usize, bound: f64, background: Rgb) -> Self {
        let pixels = background.iter().copied().cycle().take(size * size * 3).collect();
        Self { picture: Picture { width: size, height: size, channels: 3, pixels }, bound }
    }

    /// The plane's (x, y) in pixel coordinates (column, row as floats).
    pub fn pixel_from_point(&self, p: [f64; 2]) -> (f64, f64) {
        let scale = self.picture.width as f64 / (2.0 * self.bound);
        ((p[0] + self.bound) * scale, (self.bound - p[1]) * scale)
    }

    /// Pixels per unit of the plane.
    pub fn scale(&self) -> f64 {
        self.picture.width as f64 / (2.0 * self.bound)
    }

    /// Mixes `color` into pixel (x, y) with opacity `alpha` in [0, 1]; outside the picture: nothing.
    pub fn blend(&mut self, x: i64, y: i64, color: Rgb, alpha: f64) {
        let (w, h) = (self.picture.width as i64, self.picture.height as i64);
        if x < 0 || y < 0 || x >= w || y >= h || alpha <= 0.0 {
            return;
        }
        let at = ((y * w + x) * 3) as usize;
        let a = alpha.min(1.0);
        for (channel, value) in self.picture.pixels[at..at + 3].iter_mut().zip(color) {
            *channel = (f64::from(*channel) * (1.0 - a) + f64::from(value) * a).round() as u8;
        }
    }

    /// A filled disc of `radius` pixels at plane point `p`, its edge anti-aliased.
    pub fn dot(&mut self, p: [f64; 2], radius: f64, color: Rgb, alpha: f64) {
        let (cx, cy) = self.pixel_from_point(p);
        let reach = radius.ceil() as i64 + 1;
        let (px, py) = (cx.floor() as i64, cy.floor() as i64);
        for y in py - reach..=py + reach {
            for x in px - reach..=px + reach {
                let d = ((x as f64 + 0.5 - cx).powi(2) + (y as f64 + 0.5 - cy).powi(2)).sqrt();
                let coverage = (radius + 0.5 - d).clamp(0.0, 1.0);
                self.blend(x, y, color, alpha * coverage);
            }
        }
    }

    /// A line of about one pixel's width from `a` to `b` (plane points), sampled every half pixel.
    pub fn line(&mut self, a: [f64; 2], b: [f64; 2], color: Rgb, alpha: f64) {
        let (ax, ay) = self.pixel_from_point(a);
        let (bx, by) = self.pixel_from_point(b);
        let length = (bx - ax).hypot(by - ay);
        let samples = (length * 2.0).ceil().max(1.0) as usize;
        let mut last = (i64::MIN, i64::MIN);
        for i in 0..=samples {
            let u = i as f64 / samples as f64;
            let (x, y) = ((ax + u * (bx - ax)).floor() as i64, (ay + u * (by - ay)).floor() as i64);
            if (x, y) != last {
                self.blend(x, y, color, alpha);
                last = (x, y);
            }
        }
    }

    /// An arrow from `from` along `delta` (both in plane units), with a head of a third of its length.
    pub fn arrow(&mut self, from: [f64; 2], delta: [f64; 2], color: Rgb, alpha: f64) {
        let to = [from[0] + delta[0], from[1] + delta[1]];
        self.line(from, to, color, alpha);
        let (dx, dy) = (delta[0] * 0.3, delta[1] * 0.3);
        for (c, s) in [(0.94f64, 0.34f64), (0.94, -0.34)] {
            let back = [to[0] - (c * dx - s * dy), to[1] - (s * dx + c * dy)];
            self.line(to, back, color, alpha);
        }
    }

    /// Fills the pixels of the plane's rectangle from corner `min` to corner `max`.
    pub fn fill_cell(&mut self, min: [f64; 2], max: [f64; 2], color: Rgb, alpha: f64) {
        let (x0, y1) = self.pixel_from_point(min);
        let (x1, y0) = self.pixel_from_point(max);
        for y in y0.round() as i64..y1.round() as i64 {
            for x in x0.round() as i64..x1.round() as i64 {
                self.blend(x, y, color, alpha);
            }
        }
    }

    /// Text in the app's 5x7 font at pixel (x, y), in `color`, on a band of the background `under`
    /// (so that it stays legible over the plot).
    pub fn text(&mut self, x: usize, y: usize, text: &str, scale: usize, color: Rgb, under: Rgb) {
        // Draw into a mask, then blend the mask in the colour.
        let width = super::font::text_width(text, scale) + scale;
        let height = super::font::HEIGHT * scale;
        for dy in 0..height + 2 * scale {
            for dx in 0..width + 2 * scale {
                self.blend((x + dx) as i64 - scale as i64, (y + dy) as i64 - scale as i64, under, 0.8);
            }
        }
        let mut mask = Picture { width, height, channels: 1, pixels: vec![0; width * height] };
        super::font::draw_text(&mut mask, 0, 0, text, scale, 255);
        for (i, v) in mask.pixels.iter().enumerate() {
            if *v > 0 {
                self.blend((x + i % width) as i64, (y + i / width) as i64, color, 1.0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_centre_of_the_plane_is_the_centre_of_the_picture() {
        let canvas = Canvas::new(100, 2.0, [0, 0, 0]);
        assert_eq!(canvas.pixel_from_point([0.0, 0.0]), (50.0, 50.0));
        assert_eq!(canvas.pixel_from_point([-2.0, 2.0]), (0.0, 0.0));
    }

    #[test]
    fn a_dot_colours_its_centre_and_not_far_away() {
        let mut canvas = Canvas::new(40, 1.0, [255, 255, 255]);
        canvas.dot([0.0, 0.0], 3.0, [255, 0, 0], 1.0);
        let at = |x: usize, y: usize| &canvas.picture.pixels[(y * 40 + x) * 3..(y * 40 + x) * 3 + 3];
        assert_eq!(at(20, 20), [255, 0, 0]);
        assert_eq!(at(30, 20), [255, 255, 255]);
    }

    #[test]
    fn drawing_outside_the_picture_is_left_out() {
        let mut canvas = Canvas::new(10, 1.0, [0, 0, 0]);
        canvas.line([-5.0, -5.0], [5.0, 5.0], [9, 9, 9], 1.0);
        canvas.dot([30.0, 0.0], 2.0, [9, 9, 9], 1.0);
        canvas.text(8, 8, "xyz", 2, [9, 9, 9], [0, 0, 0]);
        assert_eq!(canvas.picture.pixels.len(), 300);
    }
}
