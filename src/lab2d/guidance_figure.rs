//! The guidance comparison as a picture (Karras et al. 2024, Fig. 1, made with the exact truth): one row
//! per guidance method, one cell per scale, each cell the class's true density p(x|y) shaded with its
//! contours and the method's samples as dots, and at the row's end the method's curves over its scale: the
//! distance to p(x|y) and the spread ratio, with the network and with the exact scores.

use super::guidance_bench::{BenchPoint, GuidanceBench, MethodCurve};
use crate::diffusion::mixture::{GaussianMixture, Point};
use crate::images::Picture;
use crate::images::plot::{Canvas, Rgb};

/// The square of the plane a cell shows, [-CELL_BOUND, CELL_BOUND]²: the presets' data lie within ±1.3.
pub const CELL_BOUND: f64 = 1.8;
/// Pixels per side of a density cell of the background.
const DENSITY_PIXELS: usize = 2;
/// The contours drawn: where the density is this fraction of its largest value.
pub const CONTOURS: [f64; 3] = [0.05, 0.25, 0.6];
const BACKGROUND: Rgb = [255, 255, 255];
const DENSITY_COLOR: Rgb = [70, 130, 200];
const CONTOUR_COLOR: Rgb = [30, 70, 140];
const SAMPLE_COLOR: Rgb = [200, 40, 20];
const TEXT: Rgb = [0, 0, 0];
/// Dots per cell (the first of the run's particles).
pub const DOTS: usize = 400;

/// The curves' colours: the distance to p(x|y) and the spread ratio (the window uses the same).
pub const DISTANCE_COLOR: Rgb = [31, 119, 180];
pub const SPREAD_COLOR: Rgb = [230, 110, 0];

/// p(x) on a `resolution`² grid over [-bound, bound]² (row by row from the top), divided by its largest
/// value: the background every cell shares.
pub fn density_grid(mixture: &GaussianMixture, resolution: usize, bound: f64) -> Vec<f64> {
    let cell = 2.0 * bound / resolution as f64;
    let centre = |i: usize| -bound + cell * (i as f64 + 0.5);
    let logs: Vec<f64> = (0..resolution)
        .flat_map(|row| (0..resolution).map(move |col| [centre(col), -centre(row)]))
        .map(|p: Point| mixture.log_density(p))
        .collect();
    let max = logs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    logs.iter().map(|l| (l - max).exp()).collect()
}

/// One cell: the density shaded, its contours (grid cells where it crosses a contour level against a
/// neighbour), the samples as dots, and the caption.
fn cell(density: &[f64], samples: &[[f32; 2]], caption: &[String], size: usize) -> Picture {
    let mut canvas = Canvas::new(size, CELL_BOUND, BACKGROUND);
    let n = density.len().isqrt();
    let step = 2.0 * CELL_BOUND / n as f64;
    let corner = |row: usize, col: usize| [-CELL_BOUND + step * col as f64, CELL_BOUND - step * row as f64];
    for row in 0..n {
        for col in 0..n {
            let d = density[row * n + col];
            let (top_left, next) = (corner(row, col), corner(row + 1, col + 1));
            canvas.fill_cell([top_left[0], next[1]], [next[0], top_left[1]], DENSITY_COLOR, 0.45 * d.sqrt());
            let crosses = |other: f64| CONTOURS.iter().any(|&c| (d - c) * (other - c) < 0.0);
            let right = (col + 1 < n).then(|| density[row * n + col + 1]);
            let below = (row + 1 < n).then(|| density[(row + 1) * n + col]);
            if right.is_some_and(crosses) || below.is_some_and(crosses) {
                let centre = [top_left[0] + step / 2.0, top_left[1] - step / 2.0];
                canvas.dot(centre, 0.6, CONTOUR_COLOR, 0.8);
            }
        }
    }
    for p in samples.iter().take(DOTS) {
        canvas.dot([f64::from(p[0]), f64::from(p[1])], 1.3, SAMPLE_COLOR, 0.8);
    }
    for (i, line) in caption.iter().enumerate() {
        canvas.text(4, 4 + i * 9, line, 1, TEXT, BACKGROUND);
    }
    canvas.picture
}

/// A cell's caption: the method and scale, then its distance and spread ratio (with the exact scores' when
/// measured).
fn caption_of(curve: &MethodCurve, k: usize) -> Vec<String> {
    let point = &curve.network[k];
    let mut lines = vec![
        curve.ascii_scale_label(point.scale),
        format!("W2 {:.3}  spread x{:.2}", point.distances.sliced_wasserstein, point.spread_ratio),
    ];
    if let Some(exact) = curve.exact.as_ref().and_then(|e| e.get(k)) {
        lines.push(format!("exact W2 {:.3} x{:.2}", exact.distances.sliced_wasserstein, exact.spread_ratio));
    }
    lines
}

/// What a curve plots of a run.
type Measure = fn(&BenchPoint) -> f64;

/// Where (u, v) of a plot's unit square lies on a canvas of bound 1, inside margins.
fn plot_point(u: f64, v: f64) -> [f64; 2] {
    let (left, right, bottom, top) = (0.16, 0.05, 0.12, 0.2);
    [-1.0 + 2.0 * (left + u * (1.0 - left - right)), -1.0 + 2.0 * (bottom + v * (1.0 - bottom - top))]
}

/// One method's curves over its own scales: the sliced W₂ to p(x|y) (solid, floor gray) and the spread
/// ratio (dashed, 1 gray) on one axis from 0; the exact scores' as dots of the same kind, thinner.
fn curves_plot(curve: &MethodCurve, floor: f64, size: usize) -> Picture {
    let mut canvas = Canvas::new(size, 1.0, BACKGROUND);
    let all = curve.network.iter().chain(curve.exact.iter().flatten());
    let top = all
        .flat_map(|p| [p.distances.sliced_wasserstein, p.spread_ratio])
        .filter(|v| v.is_finite())
        .fold(1.0, f64::max)
        * 1.08;
    let (low, high) =
        curve.network.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), p| (l.min(p.scale), h.max(p.scale)));
    let width = (high - low).max(1e-9);
    let at = |scale: f64, v: f64| plot_point((scale - low) / width, (v / top).clamp(0.0, 1.0));
    canvas.line(plot_point(0.0, 0.0), plot_point(1.0, 0.0), TEXT, 1.0);
    canvas.line(plot_point(0.0, 0.0), plot_point(0.0, 1.0), TEXT, 1.0);
    for reference in [floor, 1.0] {
        canvas.line(at(low, reference), at(high, reference), [170, 170, 170], 1.0);
    }
    let measures: [(Measure, Rgb, bool); 2] =
        [(|p| p.distances.sliced_wasserstein, DISTANCE_COLOR, false), (|p| p.spread_ratio, SPREAD_COLOR, true)];
    for (value, color, dashed) in measures {
        for (points, alpha, radius) in [(Some(&curve.network), 1.0, 2.5), (curve.exact.as_ref(), 0.55, 1.6)] {
            let Some(points) = points else { continue };
            for pair in points.windows(2) {
                let (a, b) = (at(pair[0].scale, value(&pair[0])), at(pair[1].scale, value(&pair[1])));
                for k in 0..=24 {
                    let u = f64::from(k) / 24.0;
                    if !dashed || (k / 3) % 2 == 0 {
                        canvas.dot([a[0] + u * (b[0] - a[0]), a[1] + u * (b[1] - a[1])], 0.7, color, alpha);
                    }
                }
            }
            for p in points.iter() {
                canvas.dot(at(p.scale, value(p)), radius, color, alpha);
            }
        }
    }
    let pixel = |canvas: &Canvas, p: [f64; 2]| {
        let (x, y) = canvas.pixel_from_point(p);
        (x.max(0.0) as usize, y.max(0.0) as usize)
    };
    let (x, y) = pixel(&canvas, plot_point(0.0, 1.0));
    canvas.text(x.saturating_sub(26), y, &format!("{top:.1}"), 1, TEXT, BACKGROUND);
    for (scale, u) in [(low, 0.0), (high, 1.0)] {
        let (x, y) = pixel(&canvas, plot_point(u, 0.0));
        canvas.text(x.saturating_sub(8), y + 4, &format!("{scale}"), 1, TEXT, BACKGROUND);
    }
    canvas.text(4, 4, "W2 to p(x|y)", 1, DISTANCE_COLOR, BACKGROUND);
    canvas.text(4, 13, "spread ratio (dashed)", 1, SPREAD_COLOR, BACKGROUND);
    canvas.text(4, 22, "small dots: exact scores", 1, TEXT, BACKGROUND);
    canvas.picture
}

/// The whole picture: a row per method — a `cell_size` cell per scale, then its curves over the scale.
pub fn guidance_figure(bench: &GuidanceBench, cell_size: usize) -> Picture {
    let density = density_grid(&bench.class_mixture, (cell_size / DENSITY_PIXELS).max(1), CELL_BOUND);
    let columns = bench.curves.iter().map(|c| c.network.len()).max().unwrap_or(1);
    let rows: Vec<Picture> = bench
        .curves
        .iter()
        .map(|curve| {
            let mut cells: Vec<Picture> = (0..curve.network.len())
                .map(|k| cell(&density, &curve.network[k].samples, &caption_of(curve, k), cell_size))
                .collect();
            cells.resize_with(columns, || Canvas::new(cell_size, 1.0, BACKGROUND).picture);
            cells.push(curves_plot(curve, bench.floor.sliced_wasserstein, cell_size));
            crate::images::grid(&cells, columns + 1, 4)
        })
        .collect();
    stack(&rows, 6)
}

/// Pictures one under the other, left-aligned, `gap` white pixels between them.
fn stack(pictures: &[Picture], gap: usize) -> Picture {
    let width = pictures.iter().map(|p| p.width).max().unwrap_or(1);
    let height = pictures.iter().map(|p| p.height).sum::<usize>() + gap * pictures.len().saturating_sub(1);
    let mut pixels = vec![255u8; width * height * 3];
    let mut top = 0;
    for p in pictures {
        for y in 0..p.height {
            for x in 0..p.width {
                let from = (y * p.width + x) * p.channels;
                let to = ((top + y) * width + x) * 3;
                for c in 0..3 {
                    pixels[to + c] = p.pixels[from + c.min(p.channels - 1)];
                }
            }
        }
        top += p.height + gap;
    }
    Picture { width, height, channels: 3, pixels }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::mixture::Component;

    /// The background is the density relative to its peak: 1 at the component's mean, falling away from it.
    #[test]
    fn the_density_grid_peaks_at_the_mean() {
        let mixture = GaussianMixture::new(vec![Component { mean: [0.0, 0.0], std: 0.3, weight: 1.0, class: 0 }]);
        let grid = density_grid(&mixture, 4, 1.0);
        let max = grid.iter().copied().fold(0.0, f64::max);
        assert!((max - 1.0).abs() < 1e-12);
        // The four centre cells are equally close to the mean; the corners are farther.
        assert!((grid[5] - 1.0).abs() < 1e-12 && grid[0] < grid[5]);
    }

    #[test]
    fn stacked_pictures_keep_their_pixels() {
        let a = Picture { width: 2, height: 1, channels: 3, pixels: vec![1, 2, 3, 4, 5, 6] };
        let b = Picture { width: 1, height: 1, channels: 1, pixels: vec![9] };
        let s = stack(&[a, b], 1);
        assert_eq!((s.width, s.height), (2, 3));
        assert_eq!(&s.pixels[..6], &[1, 2, 3, 4, 5, 6]);
        assert_eq!(&s.pixels[12..15], &[9, 9, 9]);
    }
}
