//! The solver bench as a picture for files: the log-log plot of each deterministic sampler's error
//! against the exact ODE solution over the number of steps, with its fitted order; with the learned
//! network, its samplers' errors dotted and its own ODE solution's error as a gray line.

use super::figure::CLASS_COLORS;
use super::solver_bench::{BenchTable, SolverBench, SolverMethod};
use crate::images::Picture;
use crate::images::plot::{Canvas, Rgb};

const WHITE: Rgb = [255, 255, 255];
const BLACK: Rgb = [0, 0, 0];
const NETWORK_ODE_COLOR: Rgb = [140, 140, 140];
/// Dots per segment of the network's dotted lines.
const DOTS_PER_SEGMENT: usize = 16;

/// A method's colour in the picture (the page uses the same).
pub fn method_color(method: SolverMethod) -> Rgb {
    let index = SolverMethod::ALL.iter().position(|m| *m == method).unwrap_or(0);
    CLASS_COLORS[index % CLASS_COLORS.len()]
}

/// Where (u, v) of the plot's unit square lies on a canvas of bound 1, inside margins for the axes' labels
/// and the legend above.
fn plot_point(u: f64, v: f64) -> [f64; 2] {
    let (left, right, bottom, top) = (0.17, 0.04, 0.12, 0.30);
    [-1.0 + 2.0 * (left + u * (1.0 - left - right)), -1.0 + 2.0 * (bottom + v * (1.0 - bottom - top))]
}

/// The axes' ranges: log₂ N over the step counts, log₁₀ e over every error drawn (whole decades).
struct Axes {
    x: (f64, f64),
    y: (f64, f64),
}

impl Axes {
    fn of(bench: &SolverBench) -> Self {
        let steps = &bench.settings.steps;
        let (first, last) = (steps.iter().copied().min().unwrap_or(1), steps.iter().copied().max().unwrap_or(2));
        let tables = [Some(&bench.exact), bench.network.as_ref().map(|n| &n.table)];
        let errors = tables.into_iter().flatten().flat_map(|t: &BenchTable| {
            t.curves.iter().flat_map(|c| c.points.iter().map(|p| p.error)).collect::<Vec<_>>()
        });
        let extra = bench.network.as_ref().map(|n| n.ode_error);
        let (low, high) = errors
            .chain(extra)
            .filter(|e| *e > 0.0 && e.is_finite())
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), e| (lo.min(e.log10()), hi.max(e.log10())));
        let (low, high) = if low.is_finite() { (low.floor(), high.ceil().max(low.floor() + 1.0)) } else { (-6.0, 0.0) };
        Self { x: ((first as f64).log2(), (last as f64).log2().max((first as f64).log2() + 1.0)), y: (low, high) }
    }

    fn at(&self, steps: usize, error: f64) -> [f64; 2] {
        let u = ((steps as f64).log2() - self.x.0) / (self.x.1 - self.x.0);
        let v = (error.max(1e-300).log10() - self.y.0) / (self.y.1 - self.y.0);
        plot_point(u, v.clamp(0.0, 1.0))
    }
}

fn text_at(canvas: &Canvas, p: [f64; 2]) -> (usize, usize) {
    let (x, y) = canvas.pixel_from_point(p);
    (x.max(0.0) as usize, y.max(0.0) as usize)
}

/// The log-log plot, `size` pixels square.
pub fn solver_figure(bench: &SolverBench, size: usize) -> Picture {
    let mut canvas = Canvas::new(size, 1.0, WHITE);
    let axes = Axes::of(bench);
    let scale = if size >= 480 { 2 } else { 1 };
    canvas.line(plot_point(0.0, 0.0), plot_point(1.0, 0.0), BLACK, 1.0);
    canvas.line(plot_point(0.0, 0.0), plot_point(0.0, 1.0), BLACK, 1.0);
    axis_labels(&mut canvas, bench, &axes, scale);
    for curve in &bench.exact.curves {
        let color = method_color(curve.method);
        for pair in curve.points.windows(2) {
            canvas.line(axes.at(pair[0].steps, pair[0].error), axes.at(pair[1].steps, pair[1].error), color, 1.0);
        }
        for p in &curve.points {
            canvas.dot(axes.at(p.steps, p.error), 2.5, color, 1.0);
        }
    }
    if let Some(network) = &bench.network {
        for curve in &network.table.curves {
            let color = method_color(curve.method);
            for pair in curve.points.windows(2) {
                let (a, b) = (axes.at(pair[0].steps, pair[0].error), axes.at(pair[1].steps, pair[1].error));
                for k in 0..=DOTS_PER_SEGMENT {
                    let u = k as f64 / DOTS_PER_SEGMENT as f64;
                    canvas.dot([a[0] + u * (b[0] - a[0]), a[1] + u * (b[1] - a[1])], 1.0, color, 0.7);
                }
            }
        }
        let (first, last) = (axes.x.0.exp2().round() as usize, axes.x.1.exp2().round() as usize);
        canvas.line(axes.at(first, network.ode_error), axes.at(last, network.ode_error), NETWORK_ODE_COLOR, 1.0);
    }
    legend(&mut canvas, bench, scale);
    canvas.picture
}

/// The step counts under the x axis, the decades beside the y axis.
fn axis_labels(canvas: &mut Canvas, bench: &SolverBench, axes: &Axes, scale: usize) {
    for &steps in &bench.settings.steps {
        let (x, y) = text_at(canvas, axes.at(steps, 10f64.powf(axes.y.0)));
        canvas.text(x.saturating_sub(4 * scale), y + 4 * scale, &steps.to_string(), scale, BLACK, WHITE);
    }
    let mut decade = axes.y.0;
    while decade <= axes.y.1 {
        let (x, y) = text_at(canvas, plot_point(0.0, (decade - axes.y.0) / (axes.y.1 - axes.y.0)));
        canvas.text(
            x.saturating_sub(36 * scale),
            y.saturating_sub(3 * scale),
            &format!("1e{decade:.0}"),
            scale,
            BLACK,
            WHITE,
        );
        decade += 1.0;
    }
    let (x, y) = text_at(canvas, plot_point(0.45, 0.0));
    canvas.text(x, y + 14 * scale, "steps N", scale, BLACK, WHITE);
}

/// The title, what the lines are, and each method's order.
fn legend(canvas: &mut Canvas, bench: &SolverBench, scale: usize) {
    let mut lines: Vec<(String, Rgb)> = vec![
        ("RMS error vs the exact ODE solution".to_string(), BLACK),
        (format!("at sigma/alpha {:.4} (Karras); error ~ C N^-p", bench.last_sigma), BLACK),
    ];
    for curve in &bench.exact.curves {
        let order = curve.fit.map_or("n/a".to_string(), |f| format!("{:.2}", f.order));
        lines.push((format!("{}: order {order} (exact eps*)", curve.method.name()), method_color(curve.method)));
    }
    if let Some(network) = &bench.network {
        lines.push((format!("dotted: learned network; gray: its ODE, {:.1e}", network.ode_error), NETWORK_ODE_COLOR));
    }
    lines.push(("ddim eta=0 and euler: the same update".to_string(), BLACK));
    for (row, (line, color)) in lines.iter().enumerate() {
        canvas.text(6, 6 + row * 9 * scale, line, scale, *color, WHITE);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab2d::solver_bench::{
        BenchSettings, ErrorPoint, MethodCurve, NetworkBench, ReferenceInfo, fit_power_law,
    };

    fn bench() -> SolverBench {
        let curve = |method: SolverMethod, p: f64| {
            let points: Vec<ErrorPoint> = [8usize, 16, 32]
                .iter()
                .map(|&n| {
                    let error = (n as f64).powf(-p);
                    ErrorPoint { steps: n, evaluations: n, error, median: error, max: error }
                })
                .collect();
            let fit = fit_power_law(&points.iter().map(|q| (q.steps, q.error)).collect::<Vec<_>>());
            MethodCurve { method, points, fit, median_fit: fit }
        };
        let table = BenchTable {
            curves: vec![curve(SolverMethod::DdimEuler, 1.0), curve(SolverMethod::Heun, 2.0)],
            stochastic: vec![],
        };
        SolverBench {
            settings: BenchSettings { steps: vec![8, 16, 32], ..BenchSettings::default() },
            first_sigma: 80.0,
            last_sigma: 0.006,
            reference: ReferenceInfo {
                accepted: 1,
                rejected: 0,
                evaluations: 7,
                tolerance: 1e-11,
                change_on_halving: 0.0,
            },
            floor: 0.1,
            exact: table.clone(),
            network: Some(NetworkBench { table, ode_error: 0.01, step: 100 }),
        }
    }

    /// Each method's colour is drawn, the axes span whole decades around every error.
    #[test]
    fn the_plot_draws_every_method_in_its_colour() {
        let bench = bench();
        let axes = Axes::of(&bench);
        assert_eq!(axes.y, (-4.0, 0.0));
        let picture = solver_figure(&bench, 400);
        let has = |c: Rgb| picture.pixels.chunks_exact(3).any(|p| p == c);
        assert!(has(method_color(SolverMethod::DdimEuler)) && has(method_color(SolverMethod::Heun)));
        assert!(has(NETWORK_ODE_COLOR));
    }
}
