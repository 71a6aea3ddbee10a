//! The 2-D lab: diffusion on points of the plane, where the data is a cloud you can see, x_t is that cloud
//! blurred, and ε̂ (or the score) is a vector field you can draw. The data distributions are Gaussian
//! mixtures (data.rs), so the true score at every noise level is known in closed form
//! (`diffusion::mixture`); the network (`model::point_mlp`) trains with the image models' recipe
//! (`train::points`) with any recipe (`train::recipe`); particles run with the image models' samplers
//! (run.rs); recipes.rs trains several recipes on the same data and measures them side by side; solver_bench.rs
//! measures every sampler against the exact probability-flow ODE (its order of accuracy); figure.rs,
//! recipes_figure.rs and solver_figure.rs draw it to files. [`Lab`] is one session of it, shared by the window's "2-D lab"
//! page (through the engine) and `diffusion-lab lab2d`.

pub mod data;
pub mod figure;
pub mod guidance_bench;
pub mod guidance_figure;
pub mod guided;
pub mod likelihood;
pub mod recipes;
pub mod recipes_figure;
pub mod run;
pub mod solver_bench;
pub mod solver_figure;

use burn::prelude::Device;

use crate::diffusion::Sampler;
use crate::diffusion::mixture::Point;
use crate::eval::distance::{energy_distance, sliced_wasserstein};
use crate::model::point_mlp::{PointDenoiser, PointDenoiserConfig};
use crate::train::ddpm::TrainConfig;
use crate::train::points::{PointStepReport, PointTrainer};
use crate::train::recipe::sigma_data_of;
use data::PointData;
use run::{LabError, ParticleRequest, ParticleRun, run_particles};

/// The PNG text chunk keyword under which the 2-D lab's pictures carry their settings (they are not an
/// image run's, so the Generate page's "Open settings" does not take them).
pub const LAB2D_CHUNK: &str = "diffusion-lab-2d";

/// Fresh draws of the data averaged by [`Lab::floor`].
pub const FLOOR_DRAWS: u64 = 5;

/// How far generated points are from the data, by two measures (eval::distance).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Distances {
    /// Sliced Wasserstein-2, in the plane's units.
    pub sliced_wasserstein: f64,
    /// Energy distance.
    pub energy: f64,
}

impl Distances {
    /// Both distances between `samples` and `reference`; `None` if either is empty.
    pub fn between(samples: &[Point], reference: &[Point]) -> Option<Self> {
        Some(Self {
            sliced_wasserstein: sliced_wasserstein(samples, reference)?,
            energy: energy_distance(samples, reference)?,
        })
    }
}

/// The spread of a cloud: sqrt(mean |p - p̄|²), the root-mean-square distance of its points to their mean.
/// What large guidance shrinks. 0 for an empty cloud.
pub fn spread(points: &[Point]) -> f64 {
    if points.is_empty() {
        return 0.0;
    }
    let n = points.len() as f64;
    let mean = [points.iter().map(|p| p[0]).sum::<f64>() / n, points.iter().map(|p| p[1]).sum::<f64>() / n];
    (points.iter().map(|p| (p[0] - mean[0]).powi(2) + (p[1] - mean[1]).powi(2)).sum::<f64>() / n).sqrt()
}

/// One session: a data set, the network training on it, and what the session measured.
pub struct Lab {
    pub data: PointData,
    pub trainer: PointTrainer,
    /// (step, loss) of every step.
    pub losses: Vec<(u64, f64)>,
    /// (step, distances) of samples to the data, measured during training.
    pub distances: Vec<(u64, Distances)>,
}

impl Lab {
    /// A fresh network of `model`'s objective trained with `config`'s weighting (EDM's σ_data, where it is
    /// to be measured, measured on the data's coordinates).
    pub fn new(data: PointData, config: TrainConfig, model: PointDenoiserConfig, device: &Device) -> Self {
        let model = model.with_num_classes(data.class_count.max(1));
        let coordinates: Vec<f32> = data.points.iter().flatten().copied().collect();
        let weighting = config.weighting.with_measured_sigma_data(sigma_data_of(&coordinates));
        let config = config.with_weighting(weighting);
        Self { trainer: PointTrainer::new(config, model, device), data, losses: Vec::new(), distances: Vec::new() }
    }

    /// One optimizer step.
    pub fn train_step(&mut self) -> PointStepReport {
        let report = self.trainer.train_step(&self.data.points, &self.data.classes);
        self.losses.push((report.step, report.loss));
        report
    }

    pub fn model(&self) -> PointDenoiser {
        self.trainer.model()
    }

    /// The data points a run's samples are compared with: all of them, or those of the run's class
    /// (when guided towards one).
    pub fn reference(&self, class: Option<usize>) -> Vec<Point> {
        self.data.points_of(class)
    }

    /// Runs `request` with the current network and measures its samples against the data (of its class).
    pub fn sample(&self, request: &ParticleRequest, device: &Device) -> Result<(ParticleRun, Distances), LabError> {
        let run = run_particles(&self.model(), request, device)?;
        let reference = self.reference(request.class);
        let empty = || match request.class {
            Some(class) => LabError::EmptyClass { class },
            None => LabError::Data(data::DataError::NoPoints),
        };
        let distances = Distances::between(&run.samples(), &reference).ok_or_else(empty)?;
        Ok((run, distances))
    }

    /// `request` at each of `steps` sampling steps (the same x_T), each measured against the data.
    pub fn compare_steps(
        &self,
        request: &ParticleRequest,
        steps: &[usize],
        device: &Device,
    ) -> Result<Vec<(usize, ParticleRun, Distances)>, LabError> {
        steps
            .iter()
            .map(|&n| {
                let request = ParticleRequest { sampler: Sampler { steps: n, ..request.sampler }, ..request.clone() };
                let (run, distances) = self.sample(&request, device)?;
                Ok((n, run, distances))
            })
            .collect()
    }

    /// Records the distance of a fresh sample at the current step (the curve "distance over training").
    pub fn measure(&mut self, request: &ParticleRequest, device: &Device) -> Result<Distances, LabError> {
        let (_, distances) = self.sample(request, device)?;
        self.distances.push((self.trainer.step, distances));
        Ok(distances)
    }

    /// The distances a perfect model would score: fresh draws of `count` points from the data's own
    /// distribution against the data set, averaged over [`FLOOR_DRAWS`] draws (one draw's distance is itself
    /// noisy). Sample noise alone puts a model this far away.
    pub fn floor(&self, count: usize, seed: u64, class: Option<usize>) -> Result<Distances, LabError> {
        floor_of(&self.data, count, seed, class)
    }
}

/// [`Lab::floor`] of any data: fresh draws of `count` points of `data`'s distribution (of `class`'s
/// components) against its points (of that class), averaged over [`FLOOR_DRAWS`] draws.
pub fn floor_of(data: &PointData, count: usize, seed: u64, class: Option<usize>) -> Result<Distances, LabError> {
    let mixture = match class {
        Some(c) => data.mixture.of_class(c)?,
        None => data.mixture.clone(),
    };
    let reference = data.points_of(class);
    let mut total = Distances { sliced_wasserstein: 0.0, energy: 0.0 };
    for draw in 0..FLOOR_DRAWS {
        // Seeds of their own, so that a fresh draw is never the data's own draw (same seed, same points).
        let seed = (seed ^ draw).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xF100_D5EE_D000_0001;
        let fresh = PointData::from_mixture(mixture.clone(), count, seed, String::new()).points_of(None);
        let d = Distances::between(&fresh, &reference).ok_or(LabError::Data(data::DataError::NoPoints))?;
        total.sliced_wasserstein += d.sliced_wasserstein / FLOOR_DRAWS as f64;
        total.energy += d.energy / FLOOR_DRAWS as f64;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_the_rms_distance_to_the_mean() {
        assert_eq!(spread(&[]), 0.0);
        // Four points at distance 1 from (2, 3).
        let square = [[3.0, 3.0], [1.0, 3.0], [2.0, 4.0], [2.0, 2.0]];
        assert!((spread(&square) - 1.0).abs() < 1e-12);
    }
}
