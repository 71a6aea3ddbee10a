//! A training recipe: what the network predicts ([`Objective`]) and how much each noise level counts
//! ([`Weighting`]), turned into what a training step needs — the λ it draws, the target it regresses on,
//! and the weight on each example's squared error — for the image trainer and the 2-D lab's alike.
//!
//! Every recipe is the ε loss weighted over λ (Kingma & Gao 2023): a step computes the objective's own
//! squared error ||prediction - target||² = w_O(λ) ||ε̂ - ε||² and multiplies it by w(λ) / w_O(λ), so the
//! gradient is that of w(λ) ||ε̂ - ε||², w the weighting's ε weight. Dividing by w_O(λ) alone gives the
//! error in ε units, the one scale every recipe's loss by noise level is shown on.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::ddpm::LogSnrDistribution;
use crate::diffusion::{Objective, Weighting};

/// What a model is trained to predict and how its noise levels are weighted.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Recipe {
    pub objective: Objective,
    pub weighting: Weighting,
}

impl Recipe {
    /// `objective` with its usual weighting ([`usual_weighting`]).
    pub fn usual(objective: Objective) -> Self {
        Self { objective, weighting: usual_weighting(objective) }
    }

    /// "v · min-SNR-γ, γ = 5" and the like.
    pub fn label(&self) -> String {
        format!("{} · {}", self.objective.name(), self.weighting.label())
    }

    /// The recipe as `train` and `lab2d` take it: `--objective NAME --weighting NAME`.
    pub fn flags(&self) -> String {
        format!("--objective {} --weighting {}", self.objective.name(), self.weighting.name())
    }

    /// The weight on each example's squared error of the objective: w(λ) / w_O(λ) (1 for the plain
    /// weighting).
    pub fn loss_multiplier(&self, log_snr: f64) -> f64 {
        match self.weighting {
            Weighting::Plain => 1.0,
            weighting => weighting.eps_weight(self.objective, log_snr) / self.objective.eps_weight(log_snr),
        }
    }

    /// The factor that turns the objective's squared error into the ε error, 1 / w_O(λ).
    pub fn eps_units(&self, log_snr: f64) -> f64 {
        1.0 / self.objective.eps_weight(log_snr)
    }

    /// (λ, error in ε units) of each example of a step, from its objective's mean squared error
    /// (`per_example`, [batch, 1], off the graph) at `log_snr`. A failed read-back gives none: the step itself
    /// went through, only its points by level are missing.
    pub fn levels_in_eps_units(&self, per_example: burn::prelude::Tensor<2>, log_snr: &[f32]) -> Vec<[f64; 2]> {
        crate::model::read_f32(per_example)
            .map(|errors| {
                log_snr
                    .iter()
                    .zip(errors)
                    .map(|(l, v)| [f64::from(*l), f64::from(v) * self.eps_units(f64::from(*l))])
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Draws a training λ: the weighting's own distribution where it has one, else the trainer's; kept
    /// within [min, max], the range the model is trained on.
    pub fn draw_log_snr(&self, trainer: &LogSnrDistribution, rng: &mut impl Rng, min: f64, max: f64) -> f64 {
        match self.weighting {
            // The same draws as before recipes existed: an ε model trains exactly as it did.
            Weighting::Plain | Weighting::MinSnr { .. } => trainer.sample(rng),
            weighting => {
                let u: f64 = rng.random();
                let n: f64 = rand_distr::Distribution::sample(&rand_distr::StandardNormal, rng);
                weighting.draw_log_snr(u, n).unwrap_or(0.0).clamp(min, max)
            }
        }
    }

    /// p(λ)·w(λ) in ε-loss units at each λ of `grid`: how much the recipe counts each noise level (the
    /// trainer's density where the weighting keeps it).
    pub fn elbo_weights(&self, trainer: &LogSnrDistribution, grid: &[f64]) -> Vec<f64> {
        grid.iter()
            .map(|&l| {
                let density = self.weighting.log_snr_density(l).unwrap_or_else(|| trainer.density(l));
                density * self.weighting.eps_weight(self.objective, l)
            })
            .collect()
    }
}

/// Each objective's usual recipe: its own squared error at the trainer's noise levels, except flow
/// matching, whose papers draw t uniform on the straight path.
pub fn usual_weighting(objective: Objective) -> Weighting {
    match objective {
        Objective::Flow => Weighting::FlowUniform,
        Objective::Eps | Objective::X0 | Objective::V => Weighting::Plain,
    }
}

/// σ_data for EDM's weighting: the standard deviation of the training values.
pub fn sigma_data_of(values: &[f32]) -> f64 {
    let n = values.len().max(1) as f64;
    let mean = values.iter().map(|v| f64::from(*v)).sum::<f64>() / n;
    (values.iter().map(|v| (f64::from(*v) - mean).powi(2)).sum::<f64>() / n).sqrt()
}

/// The recipes the lab shows side by side by default: each objective with its usual weighting, and
/// ε with min-SNR and EDM.
pub fn showcase() -> Vec<Recipe> {
    let mut recipes: Vec<Recipe> = Objective::ALL.into_iter().map(Recipe::usual).collect();
    recipes.push(Recipe { objective: Objective::Eps, weighting: Weighting::MinSnr { gamma: 5.0 } });
    recipes.push(Recipe {
        objective: Objective::Eps,
        weighting: Weighting::Edm { p_mean: -1.2, p_std: 1.2, sigma_data: 0.5 },
    });
    recipes.push(Recipe { objective: Objective::Flow, weighting: Weighting::FlowLogitNormal { mean: 0.0, std: 1.0 } });
    recipes
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The weight on the objective's error times the objective's own weight is the weighting's ε weight.
    #[test]
    fn the_step_weight_makes_every_recipe_its_eps_weighting() {
        for objective in Objective::ALL {
            for weighting in Weighting::CHOICES.map(|w| w.with_measured_sigma_data(0.5)) {
                let recipe = Recipe { objective, weighting };
                for log_snr in [-12.0, -2.0, 0.0, 3.0, 9.0] {
                    let total = recipe.loss_multiplier(log_snr) * objective.eps_weight(log_snr);
                    let expected = weighting.eps_weight(objective, log_snr);
                    assert!((total / expected - 1.0).abs() < 1e-12, "{} at λ = {log_snr}", recipe.label());
                }
            }
        }
    }

    /// The trainer's density integrates to its continuous share (the clamped ends hold the rest) and its
    /// draws fall where it says.
    #[test]
    fn the_trainers_density_matches_its_draws() {
        use rand::SeedableRng;
        let trainer = LogSnrDistribution::new(-20.0, 10.0);
        let h = 0.01;
        let grid: Vec<f64> = (0..3000).map(|i| -20.0 + (i as f64 + 0.5) * h).collect();
        let total: f64 = grid.iter().map(|l| trainer.density(*l) * h).sum();
        assert!(total > 0.97 && total < 1.001, "{total}");
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
        let n = 50_000;
        let below = (0..n).filter(|_| trainer.sample(&mut rng) < 0.0).count() as f64 / n as f64;
        let expected: f64 = grid.iter().filter(|l| **l < 0.0).map(|l| trainer.density(*l) * h).sum();
        assert!((below - expected).abs() < 0.01, "{below} vs {expected}");
    }

    #[test]
    fn flow_draws_stay_in_the_trained_range() {
        use rand::SeedableRng;
        let trainer = LogSnrDistribution::new(-20.0, 10.0);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let recipe = Recipe::usual(Objective::Flow);
        assert_eq!(recipe.weighting, Weighting::FlowUniform);
        let draws: Vec<f64> = (0..10_000).map(|_| recipe.draw_log_snr(&trainer, &mut rng, -20.0, 10.0)).collect();
        assert!(draws.iter().all(|l| (-20.0..=10.0).contains(l)));
        let middle = draws.iter().filter(|l| l.abs() < 2.0).count() as f64 / 10_000.0;
        // t uniform: P(|λ| < 2) = P(|logit t| < 1) = 2 / (1 + e^{-1}) - 1.
        assert!((middle - 0.4621).abs() < 0.02, "{middle}");
    }

    #[test]
    fn sigma_data_is_the_standard_deviation() {
        assert!((sigma_data_of(&[-1.0, 1.0, -1.0, 1.0]) - 1.0).abs() < 1e-12);
        assert_eq!(sigma_data_of(&[0.3; 5]), 0.0);
    }
}
