//! The recipe comparison as a picture: one panel per recipe (and the exact denoiser) with its particles'
//! paths in the straight path's coordinates y = x / (α + σ), captioned with its straightness and distance,
//! and a plot of the sliced W₂ to the data against the number of steps for every recipe.

use super::data::PointData;
use super::figure::{CLASS_COLORS, Figure};
use super::recipes::{Comparison, RecipeReport, STEP_COUNTS};
use super::run::ParticleRun;
use crate::images::Picture;
use crate::images::plot::{Canvas, Rgb};

/// Paths drawn per panel (the first particles of the run).
pub const PATHS_DRAWN: usize = 200;

const EXACT_COLOR: Rgb = [20, 20, 20];
/// Dots per segment of the common spacing's dotted line.
const DOTS_PER_SEGMENT: usize = 14;
const FLOOR_COLOR: Rgb = [150, 150, 150];

/// The colour of recipe `index` in the comparison's plot (the exact denoiser's: `None`).
pub fn recipe_color(index: Option<usize>) -> Rgb {
    index.map_or(EXACT_COLOR, |i| CLASS_COLORS[i % CLASS_COLORS.len()])
}

/// The first [`PATHS_DRAWN`] particles of `run`, every frame.
fn thinned(run: &ParticleRun) -> ParticleRun {
    let frames = run.frames.iter().map(|f| f.iter().take(PATHS_DRAWN).copied().collect()).collect();
    ParticleRun { frames, ..run.clone() }
}

/// One recipe's panel: the data faint, its paths in y and where they ended.
fn paths_panel(data: &PointData, report: &RecipeReport, size: usize) -> Picture {
    let run = thinned(&report.paths);
    let at_20 = report.usual_at(20).unwrap_or(f64::NAN);
    let spacing = report.usual.name();
    Figure {
        data: Some(data),
        particles: Some((&run, run.frames.len().saturating_sub(1))),
        paths: true,
        caption: vec![
            report.ascii_label(),
            format!("L/D {:.3}  S {:.3}", report.straightness.length_ratio, report.straightness.rectified_flow),
            format!("W2 at 20 steps {at_20:.3} ({spacing})"),
        ],
        ..Figure::default()
    }
    .render(size)
}

/// Where (u, v) of the plot's unit square lies on a canvas of bound 1, inside margins.
fn plot_point(u: f64, v: f64) -> [f64; 2] {
    let (left, right, bottom, top) = (0.16, 0.04, 0.14, 0.26);
    [-1.0 + 2.0 * (left + u * (1.0 - left - right)), -1.0 + 2.0 * (bottom + v * (1.0 - bottom - top))]
}

/// The plot: sliced W₂ (vertical, from 0) against log₂ steps, each recipe's usual spacing as a solid line
/// and the common spacing as dots, the floor as a gray line.
fn distance_plot(comparison: &Comparison, size: usize) -> Picture {
    let mut canvas = Canvas::new(size, 1.0, [255, 255, 255]);
    let all: Vec<(Option<usize>, &RecipeReport)> =
        comparison.recipes.iter().enumerate().map(|(i, r)| (Some(i), r)).chain([(None, &comparison.exact)]).collect();
    let top = all
        .iter()
        .flat_map(|(_, r)| r.distances.iter().flat_map(|d| [d.usual, d.common]))
        .filter(|d| d.is_finite())
        .fold(comparison.floor, f64::max)
        .max(1e-6)
        * 1.05;
    let max_x = (*STEP_COUNTS.last().unwrap_or(&1) as f64).log2().max(1.0);
    let at = |steps: usize, w2: f64| plot_point((steps as f64).log2() / max_x, (w2 / top).min(1.0));
    canvas.line(plot_point(0.0, 0.0), plot_point(1.0, 0.0), [0, 0, 0], 1.0);
    canvas.line(plot_point(0.0, 0.0), plot_point(0.0, 1.0), [0, 0, 0], 1.0);
    canvas.line(at(1, comparison.floor), at(*STEP_COUNTS.last().unwrap_or(&1), comparison.floor), FLOOR_COLOR, 1.0);
    for (index, report) in &all {
        let color = recipe_color(*index);
        for pair in report.distances.windows(2) {
            canvas.line(at(pair[0].steps, pair[0].usual), at(pair[1].steps, pair[1].usual), color, 1.0);
        }
        for d in &report.distances {
            canvas.dot(at(d.steps, d.usual), 2.5, color, 1.0);
        }
        // The common spacing dotted.
        for pair in report.distances.windows(2) {
            let (a, b) = (at(pair[0].steps, pair[0].common), at(pair[1].steps, pair[1].common));
            for k in 0..=DOTS_PER_SEGMENT {
                let u = k as f64 / DOTS_PER_SEGMENT as f64;
                canvas.dot([a[0] + u * (b[0] - a[0]), a[1] + u * (b[1] - a[1])], 1.0, color, 0.6);
            }
        }
    }
    let scale = if size >= 480 { 2 } else { 1 };
    let text_at = |canvas: &Canvas, p: [f64; 2]| {
        let (x, y) = canvas.pixel_from_point(p);
        (x.max(0.0) as usize, y.max(0.0) as usize)
    };
    for steps in STEP_COUNTS {
        let (x, y) = text_at(&canvas, at(steps, 0.0));
        canvas.text(x.saturating_sub(3 * scale), y + 4 * scale, &steps.to_string(), scale, [0, 0, 0], [255, 255, 255]);
    }
    let (x, y) = text_at(&canvas, plot_point(0.0, 1.0));
    canvas.text(x.saturating_sub(30 * scale), y, &format!("{top:.2}"), scale, [0, 0, 0], [255, 255, 255]);
    let (x, y) = text_at(&canvas, plot_point(0.0, 0.0));
    canvas.text(x.saturating_sub(12 * scale), y.saturating_sub(4 * scale), "0", scale, [0, 0, 0], [255, 255, 255]);
    let lines = [
        "sliced W2 to the data vs DDIM eta=0 steps".to_string(),
        format!("solid: usual spacing; dotted: {}", comparison.settings.common.name()),
        format!("gray: floor {:.3}", comparison.floor),
    ];
    for (i, line) in lines.iter().enumerate() {
        canvas.text(6, 6 + i * 9 * scale, line, scale, [0, 0, 0], [255, 255, 255]);
    }
    // The legend, inside the plot's upper right (where the curves of many steps, near the floor, are not).
    let (x, y) = text_at(&canvas, plot_point(0.42, 1.0));
    for (row, (index, report)) in all.iter().enumerate() {
        canvas.text(x, y + 2 + row * 9 * scale, &report.ascii_label(), scale, recipe_color(*index), [255, 255, 255]);
    }
    canvas.picture
}

/// The whole picture: a panel per recipe, the exact denoiser's, and the plot, `size` pixels each, three to
/// a row.
pub fn comparison_figure(data: &PointData, comparison: &Comparison, size: usize) -> Picture {
    let mut panels: Vec<Picture> = comparison.recipes.iter().map(|r| paths_panel(data, r, size)).collect();
    panels.push(paths_panel(data, &comparison.exact, size));
    panels.push(distance_plot(comparison, size));
    crate::images::grid(&panels, 3, 4)
}
