//! The 2-D lab's picture as a file: the data, the forward process's cloud, a field as arrows, its error as
//! a heat map, and particles with their paths, drawn with [`crate::images::plot::Canvas`] in the colours
//! the window uses.

use super::data::{PointData, VIEW_BOUND};
use super::run::{FieldQuantity, ParticleRun, grid_points};
use crate::images::Picture;
use crate::images::plot::{Canvas, Rgb};

/// One colour per class (the window's palette), and gray for points without one.
pub const CLASS_COLORS: [Rgb; 4] = [[31, 119, 180], [230, 110, 0], [44, 160, 44], [214, 39, 40]];
pub const NO_CLASS_COLOR: Rgb = [90, 90, 90];
const BACKGROUND: Rgb = [255, 255, 255];
const FIELD_COLOR: Rgb = [40, 40, 40];
const HEAT_COLOR: Rgb = [214, 39, 40];
const PARTICLE_COLOR: Rgb = [20, 20, 20];

pub fn class_color(class: Option<usize>) -> Rgb {
    class.and_then(|c| CLASS_COLORS.get(c).copied()).unwrap_or(NO_CLASS_COLOR)
}

/// A field to draw as arrows: ε̂ (or ε*) on a `resolution`² grid, shown as `quantity` (for
/// [`FieldQuantity::Target`], `values` are the target itself).
pub struct FieldLayer<'a> {
    pub values: &'a [[f32; 2]],
    pub resolution: usize,
    pub quantity: FieldQuantity,
    /// σ_t = sqrt(1 - ᾱ_t), to turn ε into the score -ε / σ_t.
    pub sigma: f64,
}

/// The arrow of each grid cell in plane units: the quantity's direction, its length proportional to its
/// size, the 95th percentile of sizes filling 90 % of a cell (so one huge arrow does not shrink the rest).
pub fn arrows(layer: &FieldLayer<'_>) -> Vec<([f64; 2], [f64; 2])> {
    let sign = match layer.quantity {
        FieldQuantity::Score => -1.0 / layer.sigma.max(1e-6),
        FieldQuantity::Epsilon | FieldQuantity::Target => 1.0,
    };
    let vectors: Vec<[f64; 2]> =
        layer.values.iter().map(|e| [sign * f64::from(e[0]), sign * f64::from(e[1])]).collect();
    let mut sizes: Vec<f64> = vectors.iter().map(|v| v[0].hypot(v[1])).collect();
    sizes.sort_by(f64::total_cmp);
    let reference = sizes.get(sizes.len() * 95 / 100).copied().unwrap_or(1.0).max(1e-12);
    let cell = 2.0 * VIEW_BOUND / layer.resolution as f64;
    grid_points(layer.resolution)
        .into_iter()
        .zip(vectors)
        .map(|(at, v)| {
            let size = v[0].hypot(v[1]);
            let length = 0.9 * cell * (size / reference).min(1.2);
            let scale = if size > 0.0 { length / size } else { 0.0 };
            ([at[0] - 0.5 * v[0] * scale, at[1] - 0.5 * v[1] * scale], [v[0] * scale, v[1] * scale])
        })
        .collect()
}

/// What a figure shows; every layer is optional.
#[derive(Default)]
pub struct Figure<'a> {
    pub data: Option<&'a PointData>,
    /// x_t of the data at the figure's level.
    pub cloud: Option<&'a [[f32; 2]]>,
    /// A heat map on a `resolution`² grid (values ≥ 0, drawn relative to their largest).
    pub heat: Option<(&'a [f32], usize)>,
    pub field: Option<FieldLayer<'a>>,
    /// A run's particles at frame k, with their paths up to there.
    pub particles: Option<(&'a ParticleRun, usize)>,
    pub paths: bool,
    /// Lines of text at the top left.
    pub caption: Vec<String>,
}

impl Figure<'_> {
    pub fn render(&self, size: usize) -> Picture {
        let mut canvas = Canvas::new(size, VIEW_BOUND, BACKGROUND);
        if let Some((values, resolution)) = self.heat {
            let max = values.iter().copied().fold(0f32, f32::max).max(1e-12);
            let cell = 2.0 * VIEW_BOUND / resolution as f64;
            for (centre, v) in grid_points(resolution).into_iter().zip(values) {
                let min = [centre[0] - cell / 2.0, centre[1] - cell / 2.0];
                let max_corner = [centre[0] + cell / 2.0, centre[1] + cell / 2.0];
                canvas.fill_cell(min, max_corner, HEAT_COLOR, 0.85 * f64::from(v / max));
            }
        }
        // Axes through the origin, and the unit circle (one standard deviation of x_T).
        for k in -3..=3 {
            let v = f64::from(k);
            canvas.line([v, -VIEW_BOUND], [v, VIEW_BOUND], [225, 225, 225], 1.0);
            canvas.line([-VIEW_BOUND, v], [VIEW_BOUND, v], [225, 225, 225], 1.0);
        }
        if let Some(data) = self.data {
            for (p, c) in data.points.iter().zip(&data.classes) {
                let alpha = if self.cloud.is_some() || self.particles.is_some() { 0.12 } else { 0.5 };
                canvas.dot([f64::from(p[0]), f64::from(p[1])], 1.6, class_color(*c), alpha);
            }
        }
        if let (Some(cloud), Some(data)) = (self.cloud, self.data) {
            for (p, c) in cloud.iter().zip(&data.classes) {
                canvas.dot([f64::from(p[0]), f64::from(p[1])], 1.6, class_color(*c), 0.55);
            }
        }
        if let Some(layer) = &self.field {
            for (from, delta) in arrows(layer) {
                canvas.arrow(from, delta, FIELD_COLOR, 0.8);
            }
        }
        if let Some((run, frame)) = self.particles {
            let frame = frame.min(run.frames.len().saturating_sub(1));
            if self.paths {
                for k in 1..=frame {
                    for (a, b) in run.frames[k - 1].iter().zip(&run.frames[k]) {
                        let (a, b) = ([f64::from(a[0]), f64::from(a[1])], [f64::from(b[0]), f64::from(b[1])]);
                        canvas.line(a, b, [120, 120, 200], 0.25);
                    }
                }
            }
            if let Some(points) = run.frames.get(frame) {
                for p in points {
                    canvas.dot([f64::from(p[0]), f64::from(p[1])], 1.8, PARTICLE_COLOR, 0.85);
                }
            }
        }
        let scale = if size >= 480 { 2 } else { 1 };
        for (i, line) in self.caption.iter().enumerate() {
            canvas.text(6, 6 + i * 9 * scale, line, scale, [0, 0, 0], BACKGROUND);
        }
        canvas.picture
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The score points towards the data, ε̂ away from it; arrows keep the quantity's direction.
    #[test]
    fn score_arrows_point_against_epsilon() {
        let eps = vec![[1.0f32, 0.0]; 4];
        let score = arrows(&FieldLayer { values: &eps, resolution: 2, quantity: FieldQuantity::Score, sigma: 0.5 });
        let epsilon = arrows(&FieldLayer { values: &eps, resolution: 2, quantity: FieldQuantity::Epsilon, sigma: 0.5 });
        assert!(score[0].1[0] < 0.0 && epsilon[0].1[0] > 0.0);
        // Centred on their cell.
        let cell_centre = grid_points(2)[0];
        assert!((score[0].0[0] + 0.5 * score[0].1[0] - cell_centre[0]).abs() < 1e-12);
    }
}
