//! Running the 2-D lab's network: particles from the Gaussian to the data with every sampler of the image
//! models (the same [`SamplingPlan::step`]), and the field of ε̂, of the score or of the network's own
//! target (ε, x_0, v or the flow velocity) on a grid at one noise level, beside the true one of the data's
//! mixture.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::data::{PointData, VIEW_BOUND};
use crate::diffusion::mixture::{GaussianMixture, NoSuchClass, Point, epsilon_from_score, exact_target};
use crate::diffusion::sampler::SamplerError;
use crate::diffusion::{BetaSchedule, NoiseLevel, NoiseSource, Objective, Sampler, ScheduleError};
use crate::model::ReadbackError;
use crate::model::point_mlp::PointDenoiser;

/// x̂_0 is clipped to this box when the sampler clips (the images' [-1, 1] has no meaning here): the data
/// lie well inside it, so clipping only stops the wild x̂_0 of the noisiest steps.
pub const X0_BOUND: f64 = 2.0;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
    #[error(transparent)]
    Sampler(#[from] SamplerError),
    #[error(transparent)]
    Class(#[from] NoSuchClass),
    #[error(transparent)]
    Data(#[from] super::data::DataError),
    #[error("could not read the network's output: {0}")]
    Readback(#[from] ReadbackError),
    #[error("class {class} is not one of this model's {classes} classes")]
    ModelClass { class: usize, classes: usize },
    #[error("the data has no points of class {class} to compare the samples with")]
    EmptyClass { class: usize },
    #[error("{0}")]
    Checkpoint(#[from] crate::model::checkpoint::CheckpointError),
    #[error(transparent)]
    Guidance(#[from] crate::diffusion::guidance::GuidanceError),
    #[error("autoguidance needs a weaker network to guide with: train the guide first")]
    NoGuide,
    #[error("autoguidance has no exact counterpart: the exact scores have no weaker version of themselves")]
    NoExactGuide,
    #[error("guidance method {0} needs a class to guide towards")]
    NoClassToGuide(&'static str),
    /// A long measurement stopped between two of its pieces because its [`KeepGoing`] said so (a newer
    /// request of the same kind replaced it, or the window closed).
    #[error("stopped before it was done: a newer request replaced it")]
    Cancelled,
}

/// Asked between the pieces of a long measurement (the solver bench's runs, the likelihood's ODE
/// evaluations, the guidance comparison's method × scale): `false` stops it with [`LabError::Cancelled`].
/// The engine runs those measurements on their own threads and says `false` once a newer request of the
/// same kind came; the CLI never stops them ([`always`]).
pub type KeepGoing<'a> = &'a dyn Fn() -> bool;

/// The [`KeepGoing`] of a measurement that runs to its end.
pub fn always() -> bool {
    true
}

/// `Err(Cancelled)` once `keep_going` says stop.
pub fn check(keep_going: KeepGoing<'_>) -> Result<(), LabError> {
    if keep_going() { Ok(()) } else { Err(LabError::Cancelled) }
}

/// ε̂ = ε̂_∅ + w (ε̂_y - ε̂_∅) at `x` ([batch, 2]) and λ = `log_snr`: classifier-free guidance as the image
/// models do it, both branches in one batch. No class (or w = 0): the unconditional network alone; w = 1:
/// the conditional one alone.
pub fn guided_epsilon(model: &PointDenoiser, x: Tensor<2>, log_snr: f64, class: Option<usize>, w: f64) -> Tensor<2> {
    let prediction = guided_prediction(model, x.clone(), log_snr, class, w);
    model.objective().conversion_at(log_snr).eps(x, prediction)
}

/// The guided prediction of the network's own target (ε, x_0, v or the velocity) at `x`: guidance mixes
/// predictions linearly, so reading the mix as ε̂ is [`guided_epsilon`].
pub fn guided_prediction(model: &PointDenoiser, x: Tensor<2>, log_snr: f64, class: Option<usize>, w: f64) -> Tensor<2> {
    let [batch, _] = x.dims();
    let device = x.device();
    let labels = |label: usize, n: usize| Tensor::<1, Int>::full([n], label as i64, &device);
    let levels = |n: usize| Tensor::<1>::full([n], log_snr, &device);
    let null = model.null_class();
    match class {
        None => model.forward(x, levels(batch), labels(null, batch)),
        Some(_) if w == 0.0 => model.forward(x, levels(batch), labels(null, batch)),
        Some(y) if w == 1.0 => model.forward(x, levels(batch), labels(y, batch)),
        Some(y) => {
            let both = model.forward(
                Tensor::cat(vec![x.clone(), x], 0),
                levels(2 * batch),
                Tensor::cat(vec![labels(null, batch), labels(y, batch)], 0),
            );
            let unconditional = both.clone().slice([0..batch, 0..2]);
            let conditional = both.slice([batch..2 * batch, 0..2]);
            unconditional.clone().add(conditional.sub(unconditional).mul_scalar(w))
        }
    }
}

pub(super) fn check_class(model: &PointDenoiser, class: Option<usize>) -> Result<(), LabError> {
    match class {
        Some(class) if class >= model.null_class() => Err(LabError::ModelClass { class, classes: model.null_class() }),
        _ => Ok(()),
    }
}

/// One reverse run of many particles.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ParticleRequest {
    pub schedule: BetaSchedule,
    pub sampler: Sampler,
    /// w of classifier-free guidance (used when `class` is set).
    pub guidance: f64,
    pub class: Option<usize>,
    pub count: usize,
    /// x_T and every fresh z come from it: the same seed, the same paths.
    pub seed: u64,
}

/// Every particle at every step of a run.
#[derive(Clone, Debug, PartialEq)]
pub struct ParticleRun {
    /// `frames[k][i]`: particle i after k steps; `frames[0]` is x_T, the last is x_0.
    pub frames: Vec<Vec<[f32; 2]>>,
    /// The noise level of each frame.
    pub levels: Vec<NoiseLevel>,
    /// Network evaluations per particle (guidance doubles the batch, not this count).
    pub evaluations: usize,
}

impl ParticleRun {
    /// Where the particles ended (x_0), as f64 pairs.
    pub fn samples(&self) -> Vec<Point> {
        self.frames.last().map_or_else(Vec::new, |f| f.iter().map(|p| [f64::from(p[0]), f64::from(p[1])]).collect())
    }
}

pub(super) fn pairs_from_values(values: Vec<f32>) -> Vec<[f32; 2]> {
    values.chunks_exact(2).map(|c| [c[0], c[1]]).collect()
}

/// Runs `request`'s sampler from x_T ~ N(0, I) to x_0 with classifier-free guidance of w =
/// `request.guidance` ([`guided_epsilon`]), recording every particle after every step; the other guidance
/// methods are `super::guided::run_guided`'s, which this is with CFG.
pub fn run_particles(
    model: &PointDenoiser,
    request: &ParticleRequest,
    device: &Device,
) -> Result<ParticleRun, LabError> {
    let guided = super::guided::GuidedRequest::cfg(request.clone());
    super::guided::run_guided(super::guided::Scorer::Network { model, guide: None }, &guided, device)
}

/// ε* = -σ ∇ log q_t(x) of `mixture` at every point of `x` ([batch, 2]) at λ = `log_snr`: what a perfect
/// network would output, computed in f64 in closed form.
pub fn exact_epsilon(mixture: &GaussianMixture, x: Tensor<2>, log_snr: f64) -> Result<Tensor<2>, LabError> {
    let device = x.device();
    let values = crate::model::read_f32(x)?;
    let (alpha, sigma) = crate::diffusion::objective::alpha_sigma_from_log_snr(log_snr);
    let omab = sigma * sigma;
    let noised = mixture.noised(alpha * alpha, omab);
    let eps: Vec<f32> = values
        .chunks_exact(2)
        .flat_map(|p| {
            let e = epsilon_from_score(noised.score([f64::from(p[0]), f64::from(p[1])]), omab);
            [e[0] as f32, e[1] as f32]
        })
        .collect();
    Ok(Tensor::<2>::from_data(TensorData::new(eps, [values.len() / 2, 2]), &device))
}

/// What a field arrow stands for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum FieldQuantity {
    /// ∇ log q_t(x) = -ε / sqrt(1 - ᾱ_t): where density rises; it points towards the data.
    #[default]
    Score,
    /// ε̂ itself: the noise the network sees in x_t; it points away from the data.
    Epsilon,
    /// What the network outputs: its objective's target (ε, x_0, v = α ε - σ x_0 or u = ε - x_0), against
    /// the exact target of the data's mixture ([`exact_target`]).
    Target,
}

impl FieldQuantity {
    pub const ALL: [FieldQuantity; 3] = [Self::Score, Self::Epsilon, Self::Target];

    pub fn label(self) -> &'static str {
        match self {
            Self::Score => "score = -ε̂/σ_t",
            Self::Epsilon => "noise prediction ε̂",
            Self::Target => "the network's own target",
        }
    }

    /// The label in the ASCII of the 5x7 font that writes captions into files.
    pub fn ascii_label(self) -> &'static str {
        match self {
            Self::Score => "score = -eps/sigma_t",
            Self::Epsilon => "noise prediction eps",
            Self::Target => "the network's own target",
        }
    }
}

/// The symbol of what a network of `objective` predicts: ε, x₀, v or u (the flow velocity ε - x₀).
pub fn target_symbol(objective: Objective) -> &'static str {
    match objective {
        Objective::Eps => "ε",
        Objective::X0 => "x₀",
        Objective::V => "v",
        Objective::Flow => "u",
    }
}

/// A field on the grid as ε (ε̂ or ε*) and as the target of one objective (the network's output, or the
/// exact target).
#[derive(Clone, Debug, PartialEq)]
pub struct FieldValues {
    pub eps: Vec<[f32; 2]>,
    pub target: Vec<[f32; 2]>,
}

impl FieldValues {
    /// The vectors the arrows of `quantity` are made of: the target for [`FieldQuantity::Target`], else ε.
    pub fn of(&self, quantity: FieldQuantity) -> &[[f32; 2]] {
        match quantity {
            FieldQuantity::Target => &self.target,
            FieldQuantity::Score | FieldQuantity::Epsilon => &self.eps,
        }
    }
}

/// A field on a square grid over the plot, [-VIEW_BOUND, VIEW_BOUND]², at one noise level.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldRequest {
    pub level: NoiseLevel,
    pub class: Option<usize>,
    pub guidance: f64,
    /// Cells per side.
    pub resolution: usize,
}

/// The centres of a `resolution`² grid over the plot, row by row from the top (y falls, x rises).
pub fn grid_points(resolution: usize) -> Vec<Point> {
    let cell = 2.0 * VIEW_BOUND / resolution as f64;
    let centre = |i: usize| -VIEW_BOUND + cell * (i as f64 + 0.5);
    (0..resolution).flat_map(|row| (0..resolution).map(move |col| [centre(col), -centre(row)])).collect()
}

/// The network's guided prediction at every grid point, as ε̂ and as its own target.
pub fn learned_field(model: &PointDenoiser, request: &FieldRequest, device: &Device) -> Result<FieldValues, LabError> {
    check_class(model, request.class)?;
    let points = grid_points(request.resolution);
    let values: Vec<f32> = points.iter().flat_map(|p| [p[0] as f32, p[1] as f32]).collect();
    let x = Tensor::<2>::from_data(TensorData::new(values, [points.len(), 2]), device);
    let log_snr = request.level.log_snr.min(crate::train::ddpm::TrainConfig::new().log_snr_max);
    let prediction = guided_prediction(model, x.clone(), log_snr, request.class, request.guidance);
    let eps = model.objective().conversion_at(log_snr).eps(x, prediction.clone());
    Ok(FieldValues {
        eps: pairs_from_values(crate::model::read_f32(eps)?),
        target: pairs_from_values(crate::model::read_f32(prediction)?),
    })
}

/// ε* = ε*_∅ + w (ε*_y - ε*_∅), each ε* = -sqrt(1 - ᾱ) ∇ log q_t of the data's mixture (of the class's
/// components for ε*_y), and `objective`'s exact target made of it ([`exact_target`]; guidance mixes
/// targets as it mixes ε): what a perfect network would output at every grid point.
pub fn true_field(
    mixture: &GaussianMixture,
    request: &FieldRequest,
    objective: Objective,
) -> Result<FieldValues, LabError> {
    let level = request.level;
    let (ab, omab) = (level.alpha_bar, level.one_minus_alpha_bar.max(1e-12));
    let unconditional = mixture.noised(ab, omab);
    let conditional = match request.class {
        Some(class) if request.guidance != 0.0 => Some(mixture.of_class(class)?.noised(ab, omab)),
        _ => None,
    };
    let w = request.guidance;
    let (eps, target) = grid_points(request.resolution)
        .into_iter()
        .map(|x| {
            let e0 = epsilon_from_score(unconditional.score(x), omab);
            let e = match &conditional {
                Some(q) => {
                    let ey = epsilon_from_score(q.score(x), omab);
                    [e0[0] + w * (ey[0] - e0[0]), e0[1] + w * (ey[1] - e0[1])]
                }
                None => e0,
            };
            let t = exact_target(objective, x, e, ab, omab);
            ([e[0] as f32, e[1] as f32], [t[0] as f32, t[1] as f32])
        })
        .unzip();
    Ok(FieldValues { eps, target })
}

/// |learned - true| at every grid point (of ε, or of a target): how far the network's field is from the
/// true one.
pub fn field_error(learned: &[[f32; 2]], truth: &[[f32; 2]]) -> Vec<f32> {
    learned.iter().zip(truth).map(|(a, b)| (a[0] - b[0]).hypot(a[1] - b[1])).collect()
}

/// x_t = sqrt(ᾱ) x_0 + sqrt(1 - ᾱ) ε for every data point, ε drawn from `seed`: the forward process as a cloud.
pub fn noised_points(data: &PointData, level: &NoiseLevel, seed: u64) -> Vec<[f32; 2]> {
    let mut noise = NoiseSource::new(seed);
    let eps = noise.values(2 * data.points.len());
    let (a, s) = (level.alpha() as f32, level.sigma() as f32);
    data.points.iter().zip(eps.chunks_exact(2)).map(|(p, e)| [a * p[0] + s * e[0], a * p[1] + s * e[1]]).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lab2d::data::Preset;
    use crate::model::point_mlp::PointDenoiserConfig;

    #[test]
    fn grid_runs_row_by_row_from_the_top_left() {
        let grid = grid_points(4);
        assert_eq!(grid.len(), 16);
        assert!(grid[0][0] < 0.0 && grid[0][1] > 0.0);
        assert!(grid[3][0] > 0.0 && grid[3][1] == grid[0][1]);
        assert!(grid[15][1] < 0.0);
    }

    /// On pure noise (ᾱ → 0) q_t is N(0, I), so ε* = x; at the clean end of two Gaussians it points away
    /// from the nearest mean.
    #[test]
    fn true_field_is_x_at_pure_noise() {
        let mixture = Preset::TwoGaussians.mixture();
        let level = NoiseLevel { t: 1000, alpha_bar: 1e-9, one_minus_alpha_bar: 1.0 - 1e-9, log_snr: -20.7 };
        let request = FieldRequest { level, class: Some(1), guidance: 3.0, resolution: 5 };
        for (x, e) in grid_points(5).iter().zip(true_field(&mixture, &request, Objective::Eps).unwrap().eps) {
            assert!((f64::from(e[0]) - x[0]).abs() < 1e-3 && (f64::from(e[1]) - x[1]).abs() < 1e-3);
        }
    }

    /// The learned field's target, read through its objective's conversion, is its ε̂; the exact target,
    /// read back the same way, is the exact ε*.
    #[test]
    fn the_field_as_target_and_as_eps_agree() {
        let device = Device::flex();
        let mixture = Preset::TwoGaussians.mixture();
        let schedule = BetaSchedule::cosine(1000).build().unwrap();
        let level = NoiseLevel::at(&schedule, 300);
        let request = FieldRequest { level, class: None, guidance: 0.0, resolution: 4 };
        let conversion = |objective: Objective| objective.conversion(level.alpha(), level.sigma());
        let as_eps = |objective: Objective, x: f64, target: f32| {
            let c = conversion(objective);
            c.eps[0] * x + c.eps[1] * f64::from(target)
        };
        for objective in Objective::ALL {
            let model = PointDenoiserConfig::new().with_hidden(8).with_objective(objective).init(&device);
            let learned = learned_field(&model, &request, &device).unwrap();
            let truth = true_field(&mixture, &request, objective).unwrap();
            for (k, x) in grid_points(4).iter().enumerate() {
                for (i, coordinate) in x.iter().enumerate() {
                    let (e, t) = (learned.eps[k][i], learned.target[k][i]);
                    assert!((as_eps(objective, *coordinate, t) - f64::from(e)).abs() < 1e-4, "{objective}: learned");
                    let (e, t) = (truth.eps[k][i], truth.target[k][i]);
                    assert!((as_eps(objective, *coordinate, t) - f64::from(e)).abs() < 1e-4, "{objective}: exact");
                }
            }
            assert_eq!(learned.of(FieldQuantity::Target), &learned.target[..]);
            assert_eq!(learned.of(FieldQuantity::Score), &learned.eps[..]);
        }
    }

    /// Same seed, same paths (an ODE sampler draws nothing after x_T; DDPM draws its z from the seed too).
    #[test]
    fn particle_paths_are_reproducible_from_the_seed() {
        let device = Device::flex();
        let model = crate::model::init_from_seed(&device, 3, || {
            PointDenoiserConfig::new().with_hidden(16).with_num_classes(2).init(&device)
        });
        for sampler in [Sampler::ddim(10, 0.0), Sampler::ddim(10, 1.0)] {
            let request = ParticleRequest {
                schedule: BetaSchedule::cosine(1000),
                sampler,
                guidance: 2.0,
                class: Some(1),
                count: 7,
                seed: 42,
            };
            let a = run_particles(&model, &request, &device).unwrap();
            let b = run_particles(&model, &request, &device).unwrap();
            assert_eq!(a, b);
            assert_eq!(a.frames.len(), 11);
            let other = run_particles(&model, &ParticleRequest { seed: 43, ..request }, &device).unwrap();
            assert_ne!(a.frames[0], other.frames[0]);
        }
    }

    #[test]
    fn a_class_the_model_lacks_is_an_error() {
        let device = Device::flex();
        let model = PointDenoiserConfig::new().with_hidden(8).with_num_classes(2).init(&device);
        let request = ParticleRequest {
            schedule: BetaSchedule::cosine(100),
            sampler: Sampler::ddim(5, 0.0),
            guidance: 1.0,
            class: Some(2),
            count: 3,
            seed: 1,
        };
        assert!(matches!(run_particles(&model, &request, &device), Err(LabError::ModelClass { class: 2, .. })));
    }
}
