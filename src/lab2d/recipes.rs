//! Training recipes side by side: networks of different recipes (what they predict, how their noise
//! levels are weighted: `train::recipe`) trained on the same data with the same seed, then measured the same
//! way — how straight their particles travel and how close they land to the data at few steps.
//!
//! Every measurement runs DDIM with η = 0, x_{s'} = α_{s'} x̂_0 + σ_{s'} ε̂ (x̂_0 and ε̂ read from any
//! objective's prediction through `Objective::conversion`, x̂_0 clipped to the lab's box), from the same
//! x_T ~ N(0, I). On the straight path's coordinates y = x / (α + σ) and time t = σ / (α + σ) that step is
//! exactly flow matching's Euler step y_{t'} = y_t + (t' - t) û (`diffusion::objective`), so one sampler
//! serves every recipe and its paths can be compared in one coordinate system and one time variable:
//!
//! - **straightness** of the paths of [`STRAIGHTNESS_STEPS`] steps uniform in t, in y:
//!   `L / D = Σ_i Σ_k |y_i,k+1 - y_i,k| / Σ_i |y_i,N - y_i,0|` (total path length over total straight
//!   distance: 1 when every particle travels a straight line), and Liu et al.'s (2022, rectified flow)
//!   `S = (1 / t_0) Σ_k Δt_k mean_i |(y_i,k+1 - y_i,k) / Δt_k - (y_i,N - y_i,0) / t_0|²` (0 when every
//!   particle travels its straight line at constant speed; t_0 the first level's t, about 1);
//! - **distance to the data** (sliced W₂, `eval::distance`) at [`STEP_COUNTS`] steps, with each recipe's
//!   usual spacing ([`StepSpacing::usual`]) and with one common spacing, beside the floor (fresh draws of
//!   the data itself, [`super::floor_of`]) and beside the exact denoiser of the data's mixture (ε* in closed
//!   form; uniform in t and the common spacing), which shows what the steps alone cost.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::data::PointData;
use super::run::{LabError, ParticleRun, X0_BOUND, guided_epsilon};
use super::{Lab, floor_of};
use crate::diffusion::ddim::ddim_step;
use crate::diffusion::mixture::{GaussianMixture, Point};
use crate::diffusion::sampler::{SamplerError, SamplingPlan};
use crate::diffusion::{BetaSchedule, NoiseLevel, NoiseSchedule, NoiseSource, Objective, Sampler, Spacing, Weighting};
use crate::eval::distance::sliced_wasserstein;
use crate::model::point_mlp::{PointDenoiser, PointDenoiserConfig};
use crate::train::points::default_point_train_config;
use crate::train::recipe::Recipe;

/// The step counts of the distance table.
pub const STEP_COUNTS: [usize; 5] = [1, 2, 4, 8, 20];

/// Steps of the runs whose paths are measured for straightness (uniform in the straight path's time t).
pub const STRAIGHTNESS_STEPS: usize = 100;

/// At most this many recipes side by side.
pub const MAX_RECIPES: usize = 4;

/// The straightness measure as the page and `lab2d` name it.
pub const STRAIGHTNESS_NAME: &str = "path length / straight distance in y = x/(α+σ)";

/// Where the steps of a comparison's runs sit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum StepSpacing {
    /// A spacing of the sampler over the schedule's timesteps (or Karras's σ).
    Schedule(Spacing),
    /// Uniform in the straight path's time t = σ / (α + σ): t_k = t_0 (1 - k/N), t_0 the schedule's first
    /// level's: flow matching's usual Euler grid.
    FlowTime,
}

impl StepSpacing {
    pub const ALL: [StepSpacing; 5] = [
        StepSpacing::Schedule(Spacing::Trailing),
        StepSpacing::Schedule(Spacing::Leading),
        StepSpacing::Schedule(Spacing::Linspace),
        StepSpacing::Schedule(Spacing::Karras),
        StepSpacing::FlowTime,
    ];

    /// The common spacing by default: the app's default sampler's.
    pub const DEFAULT_COMMON: StepSpacing = StepSpacing::Schedule(crate::model::denoise::DEFAULT_SAMPLER.spacing);

    /// A recipe's usual spacing: flow matching's uniform t for flow weightings and the velocity, EDM's
    /// Karras σ for EDM, DDIM's trailing timesteps otherwise.
    pub fn usual(recipe: &Recipe) -> Self {
        match (recipe.weighting, recipe.objective) {
            (Weighting::FlowUniform | Weighting::FlowLogitNormal { .. }, _) => StepSpacing::FlowTime,
            (Weighting::Edm { .. }, _) => StepSpacing::Schedule(Spacing::Karras),
            (_, Objective::Flow) => StepSpacing::FlowTime,
            _ => StepSpacing::Schedule(Spacing::Trailing),
        }
    }

    /// The name `lab2d --common-spacing` takes.
    pub fn name(self) -> &'static str {
        match self {
            StepSpacing::Schedule(spacing) => spacing.name(),
            StepSpacing::FlowTime => "uniform-t",
        }
    }

    /// The noise levels of `steps` steps, from the schedule's first level to the clean one.
    pub fn levels(self, schedule: &NoiseSchedule, steps: usize) -> Result<Vec<NoiseLevel>, SamplerError> {
        match self {
            StepSpacing::Schedule(spacing) => Sampler::ddim(steps, 0.0).with_spacing(spacing).levels(schedule),
            StepSpacing::FlowTime => {
                let top = NoiseLevel::at(schedule, schedule.steps());
                let t0 = flow_time(&top);
                let between = (1..steps).map(|k| {
                    let t = t0 * (1.0 - k as f64 / steps as f64);
                    // σ^K = σ / α = t / (1 - t) on the straight path.
                    NoiseLevel::from_karras_sigma(schedule, t / (1.0 - t))
                });
                Ok(std::iter::once(top).chain(between).chain([NoiseLevel::CLEAN]).collect())
            }
        }
    }

    /// DDIM η = 0 over [`Self::levels`], x̂_0 clipped to the lab's box.
    pub fn plan(self, schedule: &NoiseSchedule, steps: usize) -> Result<SamplingPlan, SamplerError> {
        match self {
            StepSpacing::Schedule(spacing) => {
                Ok(Sampler::ddim(steps, 0.0).with_spacing(spacing).plan(schedule)?.with_x0_bound(X0_BOUND))
            }
            StepSpacing::FlowTime => Ok(deterministic_plan(&self.levels(schedule, steps)?)),
        }
    }
}

impl std::fmt::Display for StepSpacing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StepSpacing::Schedule(Spacing::Karras) => f.write_str("Karras σ (ρ = 7)"),
            StepSpacing::Schedule(spacing) => write!(f, "{} timesteps", spacing.name()),
            StepSpacing::FlowTime => f.write_str("uniform in flow time t"),
        }
    }
}

impl std::str::FromStr for StepSpacing {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        StepSpacing::ALL.into_iter().find(|x| x.name() == wanted).ok_or_else(|| {
            let names: Vec<&str> = StepSpacing::ALL.iter().map(|x| x.name()).collect();
            format!("unknown spacing `{s}`: use one of {}", names.join(", "))
        })
    }
}

/// The straight path's time of a level, t = σ / (α + σ) (0 clean, 1 pure noise).
pub fn flow_time(level: &NoiseLevel) -> f64 {
    let (alpha, sigma) = (level.alpha(), level.sigma());
    sigma / (alpha + sigma)
}

/// DDIM η = 0 between consecutive `levels` (the first the noisiest, the last clean), x_{s'} = α_{s'} x̂_0 +
/// σ_{s'} ε̂, with the sampler's own step (`diffusion::ddim::ddim_step`), over levels no spacing of the
/// sampler makes; x̂_0 clipped to the lab's box.
pub fn deterministic_plan(levels: &[NoiseLevel]) -> SamplingPlan {
    let steps = levels.windows(2).map(|pair| ddim_step(pair[0], pair[1], 0.0)).collect();
    SamplingPlan { steps, clip_x0: true, x0_bound: X0_BOUND }
}

/// What gives ε̂ at (x, λ): a trained network (of any objective, read as ε̂), or the exact ε* of the data's
/// mixture, ε* = -σ ∇ log q_t(x).
#[derive(Clone, Copy)]
pub enum Denoiser<'a> {
    Network(&'a PointDenoiser),
    Exact(&'a GaussianMixture),
}

impl Denoiser<'_> {
    fn epsilon(&self, x: Tensor<2>, log_snr: f64) -> Result<Tensor<2>, LabError> {
        match self {
            Denoiser::Network(model) => Ok(guided_epsilon(model, x, log_snr, None, 0.0)),
            Denoiser::Exact(mixture) => super::run::exact_epsilon(mixture, x, log_snr),
        }
    }
}

/// Runs `plan` from `x_t` with `denoiser`, recording every particle after every step (no noise is drawn).
pub fn deterministic_run(plan: &SamplingPlan, x_t: Tensor<2>, denoiser: Denoiser<'_>) -> Result<ParticleRun, LabError> {
    let read =
        |x: &Tensor<2>| crate::model::read_f32(x.clone()).map(|v| v.chunks_exact(2).map(|c| [c[0], c[1]]).collect());
    let mut frames: Vec<Vec<[f32; 2]>> = vec![read(&x_t)?];
    let mut levels = plan.level_after(0).into_iter().collect::<Vec<_>>();
    let mut x = x_t;
    for (index, step) in plan.steps.iter().enumerate() {
        let eps = denoiser.epsilon(x.clone(), step.log_snr)?;
        // η = 0 steps have no second evaluation; a plan with one would get the network's ε̂ there too.
        let mut failed = None;
        let mut evaluate = |x: Tensor<2>, log_snr: f64| {
            denoiser.epsilon(x.clone(), log_snr).unwrap_or_else(|error| {
                failed = Some(error);
                x
            })
        };
        let out = plan.step(index, x, eps, None, None, &mut evaluate);
        if let Some(error) = failed {
            return Err(error);
        }
        frames.push(read(&out.x_prev)?);
        levels.push(step.level_prev());
        x = out.x_prev;
    }
    Ok(ParticleRun { frames, levels, evaluations: plan.evaluations() })
}

/// How straight a run's particles travel, in y = x / (α + σ) against t = σ / (α + σ) (module docs).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Straightness {
    /// L / D: total path length over total straight distance (1 = straight).
    pub length_ratio: f64,
    /// Liu et al.'s S: the mean squared deviation of the velocity from the straight one (0 = straight).
    pub rectified_flow: f64,
}

/// The run's frames in the straight path's coordinates, y = x / (α + σ) at each frame's level.
pub fn straight_coordinates(run: &ParticleRun) -> Vec<Vec<[f32; 2]>> {
    run.frames
        .iter()
        .zip(&run.levels)
        .map(|(frame, level)| {
            let scale = (1.0 / (level.alpha() + level.sigma())) as f32;
            frame.iter().map(|p| [p[0] * scale, p[1] * scale]).collect()
        })
        .collect()
}

/// The straightness of a run's paths (module docs: L / D and Liu et al.'s S), in y against t.
pub fn straightness(run: &ParticleRun) -> Straightness {
    let y = straight_coordinates(run);
    let times: Vec<f64> = run.levels.iter().map(flow_time).collect();
    let (Some(first), Some(last)) = (y.first(), y.last()) else {
        return Straightness { length_ratio: 1.0, rectified_flow: 0.0 };
    };
    let t0 = times.first().copied().unwrap_or(1.0).max(1e-12);
    let delta = |a: [f32; 2], b: [f32; 2]| [f64::from(b[0] - a[0]), f64::from(b[1] - a[1])];
    let chords: Vec<[f64; 2]> = first.iter().zip(last).map(|(a, b)| delta(*a, *b)).collect();
    let straight: f64 = chords.iter().map(|c| c[0].hypot(c[1])).sum();
    let (mut length, mut deviation) = (0.0, 0.0);
    let n = first.len().max(1) as f64;
    for k in 0..y.len() - 1 {
        let dt = (times[k] - times[k + 1]).max(1e-12);
        for (i, chord) in chords.iter().enumerate() {
            let d = delta(y[k][i], y[k + 1][i]);
            length += d[0].hypot(d[1]);
            let (u, v) = (d[0] / dt - chord[0] / t0, d[1] / dt - chord[1] / t0);
            deviation += dt * (u * u + v * v) / n;
        }
    }
    Straightness { length_ratio: length / straight.max(1e-12), rectified_flow: deviation / t0 }
}

/// How one comparison is measured: the schedule (its first level, its timesteps), the common spacing, and
/// the particles (how many, and the seed of their x_T).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ComparisonSettings {
    pub schedule: BetaSchedule,
    pub common: StepSpacing,
    pub particles: usize,
    pub seed: u64,
}

impl Default for ComparisonSettings {
    fn default() -> Self {
        Self { schedule: BetaSchedule::cosine(1000), common: StepSpacing::DEFAULT_COMMON, particles: 1000, seed: 0 }
    }
}

/// The sliced W₂ to the data at one step count, with the usual and the common spacing.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepDistances {
    pub steps: usize,
    pub usual: f64,
    pub common: f64,
}

/// One denoiser measured: a recipe's network, or (`recipe` None) the exact ε* of the data's mixture.
#[derive(Clone, Debug, PartialEq)]
pub struct RecipeReport {
    pub recipe: Option<Recipe>,
    /// The spacing of the `usual` column.
    pub usual: StepSpacing,
    pub straightness: Straightness,
    /// The paths of the straightness run, in y = x / (α + σ) (frame k at `levels[k]`).
    pub paths: ParticleRun,
    /// One row per [`STEP_COUNTS`].
    pub distances: Vec<StepDistances>,
    /// The training's mean loss over its last 100 steps, in the recipe's own units (None for the exact one).
    pub final_loss: Option<f64>,
}

impl RecipeReport {
    /// "eps · plain (the target's own squared error)", or "exact ε* (closed form)".
    pub fn label(&self) -> String {
        self.recipe.map_or_else(|| "exact ε* (closed form)".to_string(), |r| r.label())
    }

    /// Short: "eps · plain", "flow · uniform-t", "exact ε*".
    pub fn short_label(&self) -> String {
        self.recipe.map_or_else(|| "exact ε*".to_string(), |r| format!("{} · {}", r.objective, r.weighting.name()))
    }

    /// The same in the ASCII of the files' font: "eps / plain", "exact eps* (closed form)".
    pub fn ascii_label(&self) -> String {
        self.recipe.map_or_else(
            || "exact eps* (closed form)".to_string(),
            |r| format!("{} / {}", r.objective, r.weighting.name()),
        )
    }

    /// The sliced W₂ at `steps` with the usual spacing.
    pub fn usual_at(&self, steps: usize) -> Option<f64> {
        self.distances.iter().find(|d| d.steps == steps).map(|d| d.usual)
    }
}

/// Measures `denoiser` as the module says: the straightness of its paths, and its sliced W₂ to
/// `reference` at every [`STEP_COUNTS`] with the `usual` and the settings' common spacing, all from the
/// same x_T.
pub fn measure(
    denoiser: Denoiser<'_>,
    usual: StepSpacing,
    reference: &[Point],
    settings: &ComparisonSettings,
    device: &Device,
) -> Result<(Straightness, ParticleRun, Vec<StepDistances>), LabError> {
    let schedule = settings.schedule.build()?;
    let x_t = NoiseSource::new(settings.seed).tensor([settings.particles.max(1), 2], device);
    let paths = deterministic_run(&StepSpacing::FlowTime.plan(&schedule, STRAIGHTNESS_STEPS)?, x_t.clone(), denoiser)?;
    let straightness = straightness(&paths);
    let distance = |spacing: StepSpacing, steps: usize| -> Result<f64, LabError> {
        let run = deterministic_run(&spacing.plan(&schedule, steps)?, x_t.clone(), denoiser)?;
        sliced_wasserstein(&run.samples(), reference).ok_or(LabError::Data(super::data::DataError::NoPoints))
    };
    let mut distances = Vec::with_capacity(STEP_COUNTS.len());
    for steps in STEP_COUNTS {
        let common = distance(settings.common, steps)?;
        let usual = if usual == settings.common { common } else { distance(usual, steps)? };
        distances.push(StepDistances { steps, usual, common });
    }
    let y = ParticleRun { frames: straight_coordinates(&paths), ..paths };
    Ok((straightness, y, distances))
}

/// A session training `recipe` on `data` for `steps` steps from `seed` (the lab's usual settings
/// otherwise): every recipe of a comparison starts from the same weights and sees the same batches.
pub fn recipe_lab(data: PointData, recipe: Recipe, steps: u64, seed: u64, device: &Device) -> Lab {
    let config = default_point_train_config().with_steps(steps).with_seed(seed).with_weighting(recipe.weighting);
    Lab::new(data, config, PointDenoiserConfig::new().with_objective(recipe.objective), device)
}

/// Measures a trained session's network (its recipe's usual spacing).
pub fn report_of(lab: &Lab, settings: &ComparisonSettings, device: &Device) -> Result<RecipeReport, LabError> {
    let recipe = lab.trainer.recipe();
    let usual = StepSpacing::usual(&recipe);
    let model = lab.model();
    let (straightness, paths, distances) =
        measure(Denoiser::Network(&model), usual, &lab.reference(None), settings, device)?;
    let recent: Vec<f64> = lab.losses.iter().rev().take(100).map(|(_, l)| *l).collect();
    let final_loss = (!recent.is_empty()).then(|| recent.iter().sum::<f64>() / recent.len() as f64);
    Ok(RecipeReport { recipe: Some(recipe), usual, straightness, paths, distances, final_loss })
}

/// The exact denoiser of `data`'s mixture measured like a network. It has no usual spacing: its first
/// column is uniform in flow time t (the straightness run's), beside the common one.
pub fn exact_report(
    data: &PointData,
    settings: &ComparisonSettings,
    device: &Device,
) -> Result<RecipeReport, LabError> {
    let usual = StepSpacing::FlowTime;
    let (straightness, paths, distances) =
        measure(Denoiser::Exact(&data.mixture), usual, &data.points_of(None), settings, device)?;
    Ok(RecipeReport { recipe: None, usual, straightness, paths, distances, final_loss: None })
}

/// Every recipe of a comparison measured, beside the exact denoiser and the floor.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    pub settings: ComparisonSettings,
    /// The sliced W₂ of fresh draws of the data against it: where a perfect model lands.
    pub floor: f64,
    pub exact: RecipeReport,
    pub recipes: Vec<RecipeReport>,
}

/// The floor of a comparison: [`floor_of`] the data with the settings' particle count.
pub fn comparison_floor(data: &PointData, settings: &ComparisonSettings) -> Result<f64, LabError> {
    Ok(floor_of(data, settings.particles, settings.seed.wrapping_add(7919), None)?.sliced_wasserstein)
}

/// Trains every recipe on `data` for `steps` steps from `seed`, one after the other, and measures each
/// (`trained(index, lab)` is told when one has trained: how long it took is the caller's to say).
pub fn compare(
    data: &PointData,
    recipes: &[Recipe],
    (steps, seed): (u64, u64),
    settings: &ComparisonSettings,
    device: &Device,
    trained: &mut dyn FnMut(usize, &Lab),
) -> Result<Comparison, LabError> {
    let mut reports = Vec::with_capacity(recipes.len());
    for (index, recipe) in recipes.iter().enumerate() {
        let mut lab = recipe_lab(data.clone(), *recipe, steps, seed, device);
        while !lab.trainer.is_done() {
            lab.train_step();
        }
        trained(index, &lab);
        reports.push(report_of(&lab, settings, device)?);
    }
    Ok(Comparison {
        settings: *settings,
        floor: comparison_floor(data, settings)?,
        exact: exact_report(data, settings, device)?,
        recipes: reports,
    })
}

impl Comparison {
    /// The comparison as lines of text (what `lab2d` prints): the straightness, then the distances.
    pub fn table_lines(&self) -> Vec<String> {
        let all: Vec<&RecipeReport> = self.recipes.iter().chain([&self.exact]).collect();
        let width = all.iter().map(|r| r.label().chars().count()).max().unwrap_or(10).max(6);
        let pad = |s: String| format!("{s}{}", " ".repeat(width.saturating_sub(s.chars().count())));
        let mut lines = vec![
            format!("straightness: {STRAIGHTNESS_NAME}, over flow time t ({STRAIGHTNESS_STEPS} DDIM η = 0 steps uniform in t)"),
            "  L/D = Σ path length / Σ |y_end - y_start| (1 = straight); S = ∫ E|dy/dt - (y_end - y_start)|² dt (Liu et al. 2022; 0 = straight)".into(),
        ];
        for r in &all {
            lines.push(format!(
                "  {}  L/D {:.4}  S {:.4}",
                pad(r.label()),
                r.straightness.length_ratio,
                r.straightness.rectified_flow
            ));
        }
        let header: String = STEP_COUNTS
            .iter()
            .map(|n| format!("{:>16}", format!("{n} step{}", if *n == 1 { "" } else { "s" })))
            .collect();
        lines.push(format!(
            "sliced W₂ to the data, DDIM η = 0 from the same x_T: usual spacing / common spacing ({}); floor {:.4}",
            self.settings.common, self.floor
        ));
        lines.push(format!("  {}  {header}  usual spacing", pad("recipe".into())));
        for r in &all {
            let cells: String =
                r.distances.iter().map(|d| format!("{:>16}", format!("{:.3} / {:.3}", d.usual, d.common))).collect();
            lines.push(format!("  {}  {cells}  {}", pad(r.label()), r.usual));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The deterministic plan over a spacing's levels is the sampler's own DDIM η = 0 plan.
    #[test]
    fn the_deterministic_plan_is_ddims_eta_zero() {
        let schedule = BetaSchedule::cosine(1000).build().unwrap();
        for spacing in [Spacing::Trailing, Spacing::Karras] {
            let sampler = Sampler::ddim(7, 0.0).with_spacing(spacing);
            let levels = sampler.levels(&schedule).unwrap();
            let ours = deterministic_plan(&levels);
            let theirs = sampler.plan(&schedule).unwrap();
            for (a, b) in ours.steps.iter().zip(&theirs.steps) {
                assert_eq!(a.level(), b.level());
                assert!((a.coef_x0 - b.coef_x0).abs() < 1e-12 && (a.coef_eps - b.coef_eps).abs() < 1e-12);
                assert_eq!((a.coef_xt, a.noise_std, b.coef_xt, b.noise_std), (0.0, 0.0, 0.0, 0.0));
            }
        }
    }

    /// Uniform in t: equal steps of the straight path's time, from the schedule's first level to 0.
    #[test]
    fn flow_time_levels_are_uniform_in_t() {
        let schedule = BetaSchedule::cosine(1000).build().unwrap();
        let levels = StepSpacing::FlowTime.levels(&schedule, 4).unwrap();
        assert_eq!(levels.len(), 5);
        let times: Vec<f64> = levels.iter().map(flow_time).collect();
        let t0 = times[0];
        assert!(t0 > 0.999 && t0 < 1.0, "{t0}");
        for (k, t) in times.iter().enumerate() {
            assert!((t - t0 * (1.0 - k as f64 / 4.0)).abs() < 1e-9, "level {k}: t = {t}");
        }
        assert_eq!(levels[4], NoiseLevel::CLEAN);
    }

    /// A particle on a straight line at constant speed in y scores L/D = 1 and S = 0; one that detours
    /// scores more.
    #[test]
    fn straight_paths_score_one_and_detours_more() {
        let schedule = BetaSchedule::cosine(1000).build().unwrap();
        let levels = StepSpacing::FlowTime.levels(&schedule, 10).unwrap();
        let times: Vec<f64> = levels.iter().map(flow_time).collect();
        // y_t = (1 - t/t0) end + (t/t0) start, written back into x = (α + σ) y.
        let (start, end) = ([1.5f64, -0.5], [-0.8f64, 0.4]);
        let path = |bend: f64| -> ParticleRun {
            let frames = levels
                .iter()
                .zip(&times)
                .map(|(level, t)| {
                    let u = t / times[0];
                    let bump = bend * u * (1.0 - u);
                    let y = [(1.0 - u) * end[0] + u * start[0], (1.0 - u) * end[1] + u * start[1] + bump];
                    let s = level.alpha() + level.sigma();
                    vec![[(y[0] * s) as f32, (y[1] * s) as f32]]
                })
                .collect();
            ParticleRun { frames, levels: levels.clone(), evaluations: 10 }
        };
        let straight = straightness(&path(0.0));
        assert!((straight.length_ratio - 1.0).abs() < 1e-5, "{straight:?}");
        assert!(straight.rectified_flow < 1e-8, "{straight:?}");
        let bent = straightness(&path(4.0));
        assert!(bent.length_ratio > 1.1 && bent.rectified_flow > 0.1, "{bent:?}");
    }

    #[test]
    fn spacings_parse_by_name_and_each_recipe_has_its_usual_one() {
        for spacing in StepSpacing::ALL {
            assert_eq!(spacing.name().parse::<StepSpacing>(), Ok(spacing));
        }
        assert!("cubic".parse::<StepSpacing>().unwrap_err().contains("uniform-t"));
        assert_eq!(StepSpacing::usual(&Recipe::usual(Objective::Flow)), StepSpacing::FlowTime);
        assert_eq!(StepSpacing::usual(&Recipe::usual(Objective::Eps)), StepSpacing::Schedule(Spacing::Trailing));
        let edm = Recipe { objective: Objective::Eps, weighting: Weighting::edm(0.5) };
        assert_eq!(StepSpacing::usual(&edm), StepSpacing::Schedule(Spacing::Karras));
    }

    /// The exact denoiser of two Gaussians lands on the data at 20 steps; its paths bend (towards the mean,
    /// then to one of the two), L/D 1.24 here.
    #[test]
    fn the_exact_denoiser_reaches_the_data() {
        let device = Device::flex();
        let data = PointData::from_preset(super::super::data::Preset::TwoGaussians, 2000, 1);
        let settings = ComparisonSettings { particles: 500, ..ComparisonSettings::default() };
        let exact = exact_report(&data, &settings, &device).unwrap();
        let floor = comparison_floor(&data, &settings).unwrap();
        let at_20 = exact.usual_at(20).unwrap();
        assert!(at_20 < 2.0 * floor, "exact at 20 steps: {at_20} (floor {floor})");
        let s = exact.straightness;
        assert!(s.length_ratio > 1.0 && s.length_ratio < 1.5 && s.rectified_flow > 0.0, "{s:?}");
    }
}
