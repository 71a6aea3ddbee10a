//! The guidance methods against the exact class-conditional density: each method of `diffusion::guidance`
//! at a handful of scales, every run from the same x_T towards one class y, measured against p(x|y) — the
//! class's components of the data's mixture, known exactly:
//!
//! - **distance to p(x|y)**: sliced W₂ and energy distance (`eval::distance`) of the samples to
//!   [`REFERENCE_DRAWS`] fresh draws of the class's mixture, beside the floor (fresh draws of as many points as
//!   the run has, against the same reference: [`super::floor_of`]);
//! - **spread ratio**: the samples' spread over the class's true spread, spread = sqrt(E|x - E x|²)
//!   ([`super::spread`]; the truth's from the mixture in closed form, [`mixture_spread`]): below 1 when
//!   guidance narrows the class (the diversity it costs);
//! - the same with the exact scores in place of the network (`guided::Scorer::Exact`), where the method has
//!   an exact counterpart (not autoguidance).
//!
//! Autoguidance guides with a weaker network of the same kind: [`train_guide`] trains the lab's own
//! architecture and recipe on the same data from the same seed for 1/[`GUIDE_FRACTION`] of the main
//! network's steps — an earlier checkpoint of the same training, as the image models have.

use burn::prelude::Device;
use serde::{Deserialize, Serialize};

use super::data::{DataError, PointData};
use super::guided::{GuidedRequest, Scorer, run_guided};
use super::recipes::recipe_lab;
use super::run::{KeepGoing, LabError, ParticleRequest, always, check};
use super::{Distances, Lab, floor_of, spread};
use crate::diffusion::guidance::{GuidanceMethod, GuidanceParams};
use crate::diffusion::mixture::{GaussianMixture, Point};
use crate::diffusion::{BetaSchedule, Sampler};
use crate::model::point_mlp::PointDenoiser;
use crate::train::recipe::Recipe;

/// Fresh draws of the class's mixture the samples are compared with.
pub const REFERENCE_DRAWS: usize = 2000;

/// The guide trains for 1/GUIDE_FRACTION of the main network's steps (at least [`MIN_GUIDE_STEPS`]).
pub const GUIDE_FRACTION: u64 = 8;
pub const MIN_GUIDE_STEPS: u64 = 100;

/// The guide's training steps for a main network of `main_steps`.
pub fn guide_steps(main_steps: u64) -> u64 {
    (main_steps / GUIDE_FRACTION).max(MIN_GUIDE_STEPS)
}

/// Autoguidance's weaker network: the same architecture and `recipe` on `data` from the same `seed`, trained
/// for `steps` steps (by default [`guide_steps`] of the main network's).
pub fn train_guide(data: &PointData, recipe: Recipe, steps: u64, seed: u64, device: &Device) -> Lab {
    let mut lab = recipe_lab(data.clone(), recipe, steps, seed, device);
    // `always` never stops it.
    let _ = train_to_the_end(&mut lab, &always);
    lab
}

/// Trains `lab` until it has taken all its planned steps, asking `keep_going` before each step. Its
/// network's weights draw from the device's seeded generator at its first step (burn initializes them
/// lazily): the engine takes that step on its own thread, where every other network is seeded, and the
/// rest on the guide's.
pub fn train_to_the_end(lab: &mut Lab, keep_going: KeepGoing<'_>) -> Result<(), LabError> {
    while !lab.trainer.is_done() {
        check(keep_going)?;
        lab.train_step();
    }
    Ok(())
}

/// The spread of a mixture in closed form: sqrt(Σ_k π_k (|μ_k - μ|² + 2 s_k²)) with μ = Σ_k π_k μ_k (each
/// isotropic component adds s_k² per coordinate): what [`spread`] of infinitely many draws gives.
pub fn mixture_spread(mixture: &GaussianMixture) -> f64 {
    let total: f64 = mixture.components.iter().map(|c| c.weight).sum();
    if total <= 0.0 {
        return 0.0;
    }
    let mean = mixture
        .components
        .iter()
        .fold([0.0, 0.0], |m, c| [m[0] + c.weight / total * c.mean[0], m[1] + c.weight / total * c.mean[1]]);
    let second: f64 = mixture
        .components
        .iter()
        .map(|c| {
            c.weight / total * ((c.mean[0] - mean[0]).powi(2) + (c.mean[1] - mean[1]).powi(2) + 2.0 * c.std * c.std)
        })
        .sum();
    second.sqrt()
}

/// The scales a method is compared at: from no or little guidance to well past its default, the default
/// among them (`GuidanceMethod::default_scale`: the paper's recommendation, the app's measured w for CFG).
pub fn bench_scales(method: GuidanceMethod) -> Vec<f64> {
    match method {
        GuidanceMethod::Cfg => vec![1.0, 1.5, 3.0, 5.0, 7.5],
        GuidanceMethod::Rescale | GuidanceMethod::Apg => vec![1.0, 3.0, 5.0, 7.5, 10.0],
        GuidanceMethod::CfgPlusPlus => vec![0.2, 0.4, 0.6, 0.8, 1.0],
        GuidanceMethod::Auto => vec![1.0, 1.5, 2.25, 3.0, 4.0],
    }
}

/// One method with its parameters, and the scales it is run at.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MethodScales {
    pub params: GuidanceParams,
    pub scales: Vec<f64>,
}

impl MethodScales {
    /// `params`' method at its [`bench_scales`].
    pub fn of(params: GuidanceParams) -> Self {
        Self { params, scales: bench_scales(params.method) }
    }
}

/// How a comparison runs: the schedule and sampler, the class, the particles (how many, the seed of their
/// x_T), the methods, and whether the exact scores run too.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuidanceBenchSettings {
    pub schedule: BetaSchedule,
    pub sampler: Sampler,
    pub class: usize,
    pub particles: usize,
    pub seed: u64,
    pub methods: Vec<MethodScales>,
    pub exact: bool,
}

/// One run measured.
#[derive(Clone, Debug, PartialEq)]
pub struct BenchPoint {
    pub scale: f64,
    pub distances: Distances,
    /// The samples' spread over the class's true spread.
    pub spread_ratio: f64,
    pub samples: Vec<[f32; 2]>,
}

/// One method over its scales: with the network, and with the exact scores where it has a counterpart.
#[derive(Clone, Debug, PartialEq)]
pub struct MethodCurve {
    pub params: GuidanceParams,
    pub network: Vec<BenchPoint>,
    pub exact: Option<Vec<BenchPoint>>,
}

/// The symbol of a method's scale: w, or λ for CFG++.
pub fn scale_symbol(method: GuidanceMethod) -> &'static str {
    if method == GuidanceMethod::CfgPlusPlus { "λ" } else { "w" }
}

impl MethodCurve {
    pub fn method(&self) -> GuidanceMethod {
        self.params.method
    }

    /// "cfg w = 3", "cfgpp λ = 0.6".
    pub fn scale_label(&self, scale: f64) -> String {
        format!("{} {} = {scale}", self.method().name(), scale_symbol(self.method()))
    }

    /// The same in the ASCII of the files' font: "cfg w=3", "cfgpp lambda=0.6".
    pub fn ascii_scale_label(&self, scale: f64) -> String {
        let symbol = if self.method() == GuidanceMethod::CfgPlusPlus { "lambda" } else { "w" };
        format!("{} {symbol}={scale}", self.method().name())
    }

    /// The method's own parameters as a line ("φ = 0.7", "η = 0, β = -0.75, r = 2.5"); empty for CFG++,
    /// CFG and autoguidance, which have none beyond the scale.
    pub fn parameters(&self) -> String {
        let p = &self.params;
        match p.method {
            GuidanceMethod::Rescale => format!("φ = {}", p.rescale_phi),
            GuidanceMethod::Apg => format!("η = {}, β = {}, r = {}", p.apg.eta, p.apg.momentum, p.apg.threshold),
            _ => String::new(),
        }
    }

    /// The method's formula as the lab applies it, with this comparison's numbers at `scale` (and the guide's
    /// training steps for autoguidance), in the glyphs the window's font has (Ø for ∅; APG's Δ_⊥ and Δ_∥ as
    /// Δ_across and Δ_along x̂_y).
    pub fn formula_at(&self, scale: f64, guide_steps: Option<u64>) -> String {
        let p = &self.params;
        match p.method {
            GuidanceMethod::Cfg => format!("ε̂ = ε̂_Ø + {scale} (ε̂_y - ε̂_Ø)"),
            GuidanceMethod::Rescale => format!(
                "ε̂ = {phi} · ε̂_cfg σ(ε̂_y)/σ(ε̂_cfg) + {rest} · ε̂_cfg, ε̂_cfg = ε̂_Ø + {scale} (ε̂_y - ε̂_Ø), σ = |ε̂|/√2",
                phi = p.rescale_phi,
                rest = 1.0 - p.rescale_phi
            ),
            GuidanceMethod::Apg => {
                let limit = if p.apg.threshold > 0.0 {
                    format!("|Δ| ≤ {}", p.apg.threshold)
                } else {
                    "no limit on |Δ|".into()
                };
                format!(
                    "x̂_0 = x̂_y + {} (Δ_across + {} Δ_along), Δ = x̂_y - x̂_Ø + ({}) Δ_prev, {limit}",
                    scale - 1.0,
                    p.apg.eta,
                    p.apg.momentum
                )
            }
            GuidanceMethod::CfgPlusPlus => {
                format!("x̂_0 from ε̂_Ø + {scale} (ε̂_y - ε̂_Ø), then x_t' = α' x̂_0 + σ' ε̂_Ø (renoised with ε̂_Ø)")
            }
            GuidanceMethod::Auto => {
                let steps = guide_steps.map_or_else(|| "not yet trained".to_string(), |s| format!("trained {s} steps"));
                format!("ε̂ = ε̂_weak,y + {scale} (ε̂_y - ε̂_weak,y), the weak network {steps}")
            }
        }
    }

    /// The measured run at the method's default scale, if it was among the scales.
    pub fn at_default(&self) -> Option<&BenchPoint> {
        self.network.iter().find(|p| p.scale == self.method().default_scale())
    }
}

/// The whole comparison.
#[derive(Clone, Debug, PartialEq)]
pub struct GuidanceBench {
    pub settings: GuidanceBenchSettings,
    /// p(x|y): the class's components of the data's mixture.
    pub class_mixture: GaussianMixture,
    /// Fresh draws of it, what every run is compared with.
    pub reference: Vec<Point>,
    /// Fresh draws of as many points as a run has, against the reference (mean of `FLOOR_DRAWS`).
    pub floor: Distances,
    /// The class's true spread ([`mixture_spread`]).
    pub true_spread: f64,
    pub curves: Vec<MethodCurve>,
    /// The guide's training steps, when autoguidance ran.
    pub guide_steps: Option<u64>,
}

/// The networks a comparison runs with: the lab's, and (for autoguidance) the guide with its steps.
pub struct BenchNetworks<'a> {
    pub model: &'a PointDenoiser,
    pub guide: Option<(&'a PointDenoiser, u64)>,
}

/// Runs every method of `settings` at each of its scales from the same x_T, with the network and (when
/// asked) the exact scores of `mixture`, and measures each run against the class's exact density.
pub fn guidance_bench(
    networks: BenchNetworks<'_>,
    mixture: &GaussianMixture,
    settings: &GuidanceBenchSettings,
    device: &Device,
) -> Result<GuidanceBench, LabError> {
    guidance_bench_until(networks, mixture, settings, device, &always)
}

/// [`guidance_bench`], asking `keep_going` before each method × scale (the engine's comparison stops so
/// when a newer one replaces it): the same numbers when it runs to the end.
pub fn guidance_bench_until(
    networks: BenchNetworks<'_>,
    mixture: &GaussianMixture,
    settings: &GuidanceBenchSettings,
    device: &Device,
    keep_going: KeepGoing<'_>,
) -> Result<GuidanceBench, LabError> {
    let class_mixture = mixture.of_class(settings.class)?;
    let reference_seed = settings.seed.wrapping_mul(0x9E37_79B9).wrapping_add(0x0005_EED5);
    let reference_data = PointData::from_mixture(class_mixture.clone(), REFERENCE_DRAWS, reference_seed, String::new());
    let reference = reference_data.points_of(None);
    let floor = floor_of(&reference_data, settings.particles, settings.seed.wrapping_add(1), None)?;
    let true_spread = mixture_spread(&class_mixture);
    let measure = |scorer: Scorer<'_>, params: GuidanceParams, scale: f64| -> Result<BenchPoint, LabError> {
        check(keep_going)?;
        let particles = ParticleRequest {
            schedule: settings.schedule,
            sampler: settings.sampler,
            guidance: scale,
            class: Some(settings.class),
            count: settings.particles,
            seed: settings.seed,
        };
        let run = run_guided(scorer, &GuidedRequest { particles, params }, device)?;
        let samples = run.samples();
        let distances = Distances::between(&samples, &reference).ok_or(LabError::Data(DataError::NoPoints))?;
        let spread_ratio = spread(&samples) / true_spread.max(1e-12);
        Ok(BenchPoint { scale, distances, spread_ratio, samples: run.frames.last().cloned().unwrap_or_default() })
    };
    let guide = networks.guide.map(|(g, _)| g);
    let mut curves = Vec::with_capacity(settings.methods.len());
    for MethodScales { params, scales } in &settings.methods {
        let over_scales = |scorer: Scorer<'_>| -> Result<Vec<BenchPoint>, LabError> {
            scales.iter().map(|&s| measure(scorer, *params, s)).collect()
        };
        let network = over_scales(Scorer::Network { model: networks.model, guide })?;
        // Autoguidance has no exact counterpart: the truth has no weaker version of itself.
        let exact = match settings.exact && params.method != GuidanceMethod::Auto {
            true => Some(over_scales(Scorer::Exact { mixture })?),
            false => None,
        };
        curves.push(MethodCurve { params: *params, network, exact });
    }
    Ok(GuidanceBench {
        settings: settings.clone(),
        class_mixture,
        reference,
        floor,
        true_spread,
        curves,
        guide_steps: networks.guide.map(|(_, steps)| steps),
    })
}

impl GuidanceBench {
    /// The printed table: what is measured, the floor and the true spread, then one line per method ×
    /// scale, `<method> <symbol> = <scale>: sliced W₂ …, energy …, spread ×… (exact: …)`.
    pub fn table_lines(&self) -> Vec<String> {
        let s = &self.settings;
        let mut lines = vec![
            format!(
                "guidance towards class {} with {} ({} particles from one x_T), against p(x|y): {} fresh draws of the class's mixture",
                s.class,
                s.sampler.label(),
                s.particles,
                REFERENCE_DRAWS
            ),
            format!(
                "floor (fresh draws of p(x|y) itself): sliced W₂ {:.4}, energy {:.4}; the class's true spread {:.4}",
                self.floor.sliced_wasserstein, self.floor.energy, self.true_spread
            ),
        ];
        if let Some(steps) = self.guide_steps {
            lines.push(format!("autoguidance's guide: the same network trained {steps} steps"));
        }
        for curve in &self.curves {
            let parameters = curve.parameters();
            let parameters = if parameters.is_empty() { String::new() } else { format!(" ({parameters})") };
            for (k, point) in curve.network.iter().enumerate() {
                let mut line = format!("{}{parameters}: {}", curve.scale_label(point.scale), measures(point));
                if let Some(exact) = curve.exact.as_ref().and_then(|e| e.get(k)) {
                    line.push_str(&format!(" | exact scores: {}", measures(exact)));
                }
                lines.push(line);
            }
        }
        lines
    }

    /// One row per method × scale × scorer (network, exact).
    pub fn csv(&self) -> String {
        let mut csv = String::from("method,scale,parameters,scores,sliced_wasserstein,energy_distance,spread_ratio\n");
        for curve in &self.curves {
            let rows = curve.network.iter().map(|p| ("network", p));
            let exact = curve.exact.iter().flatten().map(|p| ("exact", p));
            for (scores, p) in rows.chain(exact) {
                csv.push_str(&format!(
                    "{},{},\"{}\",{scores},{},{},{}\n",
                    curve.method().name(),
                    p.scale,
                    curve.parameters(),
                    p.distances.sliced_wasserstein,
                    p.distances.energy,
                    p.spread_ratio
                ));
            }
        }
        csv
    }
}

fn measures(point: &BenchPoint) -> String {
    format!(
        "sliced W₂ {:.4}, energy {:.4}, spread ×{:.3}",
        point.distances.sliced_wasserstein, point.distances.energy, point.spread_ratio
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab2d::data::Preset;
    use rand::SeedableRng;

    /// The closed-form spread is what many draws measure.
    #[test]
    fn the_mixture_spread_is_that_of_its_draws() {
        for preset in [Preset::TwoGaussians, Preset::Moons, Preset::Ring] {
            let mixture = preset.mixture();
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
            let draws: Vec<Point> = mixture.sample(40_000, &mut rng).into_iter().map(|(p, _)| p).collect();
            let (exact, measured) = (mixture_spread(&mixture), spread(&draws));
            assert!((exact - measured).abs() < 0.01 * exact, "{preset}: {exact} vs {measured}");
        }
    }

    /// The formula shows the numbers the run used: the scale, φ and 1 - φ, APG's η, β and r.
    #[test]
    fn the_formula_carries_the_numbers_used() {
        let mut params = GuidanceParams::of(GuidanceMethod::Rescale);
        params.rescale_phi = 0.25;
        let curve = MethodCurve { params, network: Vec::new(), exact: None };
        assert_eq!(
            curve.formula_at(3.0, None),
            "ε̂ = 0.25 · ε̂_cfg σ(ε̂_y)/σ(ε̂_cfg) + 0.75 · ε̂_cfg, ε̂_cfg = ε̂_Ø + 3 (ε̂_y - ε̂_Ø), σ = |ε̂|/√2"
        );
        params.method = GuidanceMethod::Apg;
        params.apg = crate::diffusion::guidance::ApgParams { eta: 0.5, momentum: -0.25, threshold: 0.0 };
        let curve = MethodCurve { params, network: Vec::new(), exact: None };
        assert_eq!(
            curve.formula_at(5.0, None),
            "x̂_0 = x̂_y + 4 (Δ_across + 0.5 Δ_along), Δ = x̂_y - x̂_Ø + (-0.25) Δ_prev, no limit on |Δ|"
        );
        let curve = MethodCurve { params: GuidanceParams::of(GuidanceMethod::Auto), network: Vec::new(), exact: None };
        assert!(
            curve.formula_at(2.25, Some(250)).contains("2.25 (ε̂_y - ε̂_weak,y), the weak network trained 250 steps")
        );
    }

    #[test]
    fn the_guide_trains_an_eighth_of_the_steps() {
        assert_eq!(guide_steps(2000), 250);
        assert_eq!(guide_steps(80), MIN_GUIDE_STEPS);
    }
}
