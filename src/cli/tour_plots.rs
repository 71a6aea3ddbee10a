//! `tour --export`'s plots: sqrt(ᾱ_t) over t for the Schedule step, the line plot the Loss step's L_{t-1}
//! across t is drawn with, and the 2-D lab's three pictures (the lab after a short training, two recipes
//! side by side, the solver bench), each from the lab's own library code on the CPU.

use super::tour::{live_at, window_live};
use super::tour_pictures::{SEED, TourPicture, list};
use super::*;
use diffusion_lab::diffusion::equation::number_text;
use diffusion_lab::images::plot::{Canvas, Rgb};
use diffusion_lab::lab2d::data::PointData;
use diffusion_lab::lab2d::figure::Figure;
use diffusion_lab::lab2d::recipes::{ComparisonSettings, compare, recipe_lab};
use diffusion_lab::lab2d::recipes_figure::comparison_figure;
use diffusion_lab::lab2d::run::ParticleRequest;
use diffusion_lab::lab2d::solver_bench::{BenchSettings, solver_bench};
use diffusion_lab::lab2d::solver_figure::solver_figure;
use diffusion_lab::model::denoise::DEFAULT_SAMPLER;
use diffusion_lab::tour::StepId;

/// The 2-D lab's small training: optimizer steps, particles; the recipes' and the solver bench's sizes.
const LAB_STEPS: u64 = 2000;
const LAB_PARTICLES: usize = 1000;
const RECIPE_STEPS: u64 = 1500;
const RECIPE_PARTICLES: usize = 500;
const BENCH_STEPS: [usize; 6] = [8, 16, 32, 64, 128, 256];
const BENCH_PARTICLES: usize = 500;
/// Pixels per side of the plots.
const PLOT: usize = 480;
const WHITE: Rgb = [255, 255, 255];
const BLACK: Rgb = [0, 0, 0];

/// One line of a plot: its legend, colour and (x, y) points.
pub(super) struct Series {
    pub label: String,
    pub color: Rgb,
    pub points: Vec<(f64, f64)>,
}

/// A plot's vertical axis: the range of y it shows and the labels of its ends.
pub(super) struct YAxis {
    low: f64,
    high: f64,
    labels: [String; 2],
}

impl YAxis {
    /// From 0 to `high`.
    pub fn linear(high: f64) -> Self {
        Self { low: 0.0, high, labels: ["0".into(), format!("{high:.3}")] }
    }

    /// log10 of values from `low` to `high`, whole decades (the points' y must be log10 of the values).
    pub fn log10(low: f64, high: f64) -> Self {
        let low = low.max(1e-12).log10().floor() as i32;
        let high = (high.max(1e-12).log10().ceil() as i32).max(low + 1);
        Self { low: low.into(), high: high.into(), labels: [format!("1e{low}"), format!("1e{high}")] }
    }
}

/// `series` as lines over x from 0 to `x_max` and y over `y`, with axes, ends labelled and a legend.
pub(super) fn line_plot(title: &str, x_label: &str, series: &[Series], x_max: f64, y: &YAxis) -> Picture {
    let mut canvas = Canvas::new(PLOT, 1.0, WHITE);
    let (left, right, bottom, top) = (-0.8, 0.9, -0.75, 0.55);
    let at = |px: f64, py: f64| {
        let share = ((py - y.low) / (y.high - y.low)).clamp(0.0, 1.0);
        [left + px / x_max * (right - left), bottom + share * (top - bottom)]
    };
    canvas.line(at(0.0, y.low), at(x_max, y.low), BLACK, 1.0);
    canvas.line(at(0.0, y.low), at(0.0, y.high), BLACK, 1.0);
    let half_pixel = 0.5 / canvas.scale();
    for s in series {
        for pair in s.points.windows(2) {
            let (a, b) = (at(pair[0].0, pair[0].1), at(pair[1].0, pair[1].1));
            for d in [-half_pixel, 0.0, half_pixel] {
                canvas.line([a[0], a[1] + d], [b[0], b[1] + d], s.color, 1.0);
            }
        }
    }
    let pixel = |p: [f64; 2]| {
        let (x, y) = canvas.pixel_from_point(p);
        (x.max(0.0) as usize, y.max(0.0) as usize)
    };
    let (x0, y0) = pixel(at(0.0, y.low));
    let (x1, y1) = pixel(at(x_max, y.high));
    canvas.text(x0, y0 + 6, "0", 1, BLACK, WHITE);
    canvas.text(x1.saturating_sub(40), y0 + 6, &format!("{x_label} = {x_max}"), 1, BLACK, WHITE);
    canvas.text(4, y1, &y.labels[1], 1, BLACK, WHITE);
    canvas.text(4, y0.saturating_sub(8), &y.labels[0], 1, BLACK, WHITE);
    canvas.text(8, 8, title, 1, BLACK, WHITE);
    for (i, s) in series.iter().enumerate() {
        canvas.text(x0 + 10, 28 + 14 * i, &s.label, 1, s.color, WHITE);
    }
    canvas.picture
}

/// sqrt(ᾱ_t) over t for the Schedule step's start (linear, β_end too small), linear's usual β_end and the
/// window's cosine schedule.
pub(super) fn schedule_picture() -> TourPicture {
    let start = live_at(StepId::Schedule).schedule;
    let candidates =
        [(start, [200, 40, 40]), (BetaSchedule::linear(1000), [40, 90, 200]), (window_live().schedule, [30, 140, 60])];
    let mut series = Vec::new();
    let mut ends = Vec::new();
    for (schedule, color) in candidates {
        let Ok(built) = schedule.build() else { continue };
        let points = (0..built.steps()).step_by(5).map(|i| ((i + 1) as f64, built.sqrt_alpha_bar[i])).collect();
        let last = built.sqrt_alpha_bar[built.steps() - 1];
        let name = match schedule.kind {
            ScheduleKind::Linear => format!("linear, beta_end {}", schedule.beta_end),
            kind => kind.name().to_string(),
        };
        ends.push(format!("{name}: {}", number_text(last)));
        series.push(Series { label: format!("{name}: sqrt(abar_T) = {last:.4}"), color, points });
    }
    TourPicture {
        name: "schedule",
        caption: format!(
            "The signal coefficient sqrt(ᾱ_t) over t for the schedule this step starts from, linear's usual β_end \
             0.02 and the window's cosine schedule; what is left at T, sqrt(ᾱ_T): {}.",
            ends.join("; ")
        ),
        picture: line_plot("sqrt(abar_t): how much of x_0 is left in x_t", "t", &series, 1000.0, &YAxis::linear(1.0)),
    }
}

/// The 2-D lab after a short training on `points`: the particles' paths from x_T and where they land.
pub(super) fn lab2d_picture(points: &PointData) -> anyhow::Result<TourPicture> {
    let device = Device::flex();
    let recipe = super::lab2d::recipe_of("eps", None, ["objective", "weighting"])?;
    let mut lab = recipe_lab(points.clone(), recipe, LAB_STEPS, SEED, &device);
    while !lab.trainer.is_done() {
        lab.train_step();
    }
    let request = ParticleRequest {
        schedule: window_live().schedule,
        sampler: DEFAULT_SAMPLER,
        guidance: 1.0,
        class: None,
        count: LAB_PARTICLES,
        seed: 0,
    };
    let (run, distances) = lab.sample(&request, &device)?;
    let floor = lab.floor(LAB_PARTICLES, SEED.wrapping_add(7919), None)?;
    let caption = vec![
        format!("{} from x_T, after {LAB_STEPS} training steps", DEFAULT_SAMPLER.label()),
        format!("sliced W2 {:.3} (floor {:.3})", distances.sliced_wasserstein, floor.sliced_wasserstein),
    ];
    let figure = Figure {
        data: Some(&lab.data),
        particles: Some((&run, run.frames.len() - 1)),
        paths: true,
        caption,
        ..Figure::default()
    };
    Ok(TourPicture {
        name: "lab2d",
        caption: format!(
            "The 2-D lab as `diffusion-lab lab2d` runs it: a small network trained {LAB_STEPS} steps on the moons \
             ({} points), then {LAB_PARTICLES} particles from the Gaussian blob x_T with {}: their paths and where \
             they land. Sliced W₂ to the data {:.3}; fresh draws of the data itself score {:.3}.",
            points.points.len(),
            DEFAULT_SAMPLER.label(),
            distances.sliced_wasserstein,
            floor.sliced_wasserstein
        ),
        picture: figure.render(PLOT),
    })
}

/// Two recipes (ε and flow matching) trained side by side on `points`, as `lab2d --recipe ... --figure`.
pub(super) fn recipes_picture(points: &PointData) -> anyhow::Result<TourPicture> {
    let device = Device::flex();
    let recipes = [("eps", None), ("flow", None)]
        .map(|(objective, weighting)| super::lab2d::recipe_of(objective, weighting, ["objective", "weighting"]));
    let recipes = recipes.into_iter().collect::<anyhow::Result<Vec<_>>>()?;
    let settings = ComparisonSettings { particles: RECIPE_PARTICLES, ..ComparisonSettings::default() };
    let comparison = compare(points, &recipes, (RECIPE_STEPS, SEED), &settings, &device, &mut |_, _| ())?;
    let labels: Vec<String> = comparison.recipes.iter().map(|r| r.label()).collect();
    Ok(TourPicture {
        name: "recipes",
        caption: format!(
            "Two training recipes side by side on the same moons and seed, {RECIPE_STEPS} steps each, as \
             `diffusion-lab lab2d --recipe eps --recipe flow --figure` draws them: {}; each recipe's particle \
             paths in y = x/(α+σ) beside the exact denoiser's, and the distance to the data against the number \
             of steps ({RECIPE_PARTICLES} particles).",
            labels.join(" and ")
        ),
        picture: comparison_figure(points, &comparison, PLOT * 3 / 4),
    })
}

/// The solver bench with the exact ε* of `points`' mixture, as `lab2d --solver-bench --steps 0 --out`.
pub(super) fn exact_answers_picture(points: &PointData) -> anyhow::Result<TourPicture> {
    let device = Device::flex();
    let settings =
        BenchSettings { steps: BENCH_STEPS.to_vec(), particles: BENCH_PARTICLES, ..BenchSettings::default() };
    let bench = solver_bench(&points.mixture, None, &settings, &device)?;
    Ok(TourPicture {
        name: "exact-answers",
        caption: format!(
            "The solver bench (`diffusion-lab lab2d --solver-bench --steps 0`) on the moons with the exact ε*: \
             each deterministic sampler's error against the exact probability-flow ODE solution at {} Karras \
             steps ({BENCH_PARTICLES} particles), on log-log axes. {}.",
            list(&BENCH_STEPS),
            bench.order_lines().join("; ")
        ),
        picture: solver_figure(&bench, PLOT),
    })
}
