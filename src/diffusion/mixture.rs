//! A mixture of isotropic Gaussians in the plane, and what the forward process does to it in closed form:
//! the 2-D lab's data distributions, whose noised densities q_t and scores are known exactly.
//!
//! If x_0 ~ Σ_k π_k N(μ_k, s_k² I), then x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε is again a mixture:
//! q_t(x) = Σ_k π_k N(x; sqrt(ᾱ_t) μ_k, (ᾱ_t s_k² + 1 - ᾱ_t) I), so its score ∇ log q_t and the noise a
//! perfect network would predict, ε* = -sqrt(1 - ᾱ_t) ∇ log q_t (Vincent 2011; Song et al. 2021), follow.

use rand::Rng;
use rand_distr::{Distribution, StandardNormal};

/// A point of the plane.
pub type Point = [f64; 2];

/// One Gaussian of a mixture: N(mean, std² I) with weight `weight` (relative: the mixture normalises), and
/// the class its points belong to.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Component {
    pub mean: Point,
    pub std: f64,
    pub weight: f64,
    pub class: usize,
}

/// Σ_k π_k N(μ_k, s_k² I).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GaussianMixture {
    pub components: Vec<Component>,
}

/// Where the mixture has no mass for the class asked for.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("the mixture has no component of class {0}")]
pub struct NoSuchClass(pub usize);

impl GaussianMixture {
    pub fn new(components: Vec<Component>) -> Self {
        Self { components }
    }

    /// The classes present, ascending.
    pub fn classes(&self) -> Vec<usize> {
        let mut classes: Vec<usize> = self.components.iter().map(|c| c.class).collect();
        classes.sort_unstable();
        classes.dedup();
        classes
    }

    /// q(x_0 | y): the components of `class` only (their weights renormalise).
    pub fn of_class(&self, class: usize) -> Result<Self, NoSuchClass> {
        let components: Vec<Component> = self.components.iter().copied().filter(|c| c.class == class).collect();
        if components.is_empty() { Err(NoSuchClass(class)) } else { Ok(Self { components }) }
    }

    /// q_t: the mixture after the forward process to a level of ᾱ = `alpha_bar`, each component
    /// N(sqrt(ᾱ) μ_k, (ᾱ s_k² + 1 - ᾱ) I). `one_minus_alpha_bar` is passed on its own because 1 - ᾱ loses
    /// its digits near ᾱ = 1.
    pub fn noised(&self, alpha_bar: f64, one_minus_alpha_bar: f64) -> Self {
        let signal = alpha_bar.sqrt();
        let components = self
            .components
            .iter()
            .map(|c| Component {
                mean: [signal * c.mean[0], signal * c.mean[1]],
                std: (alpha_bar * c.std * c.std + one_minus_alpha_bar).sqrt(),
                ..*c
            })
            .collect();
        Self { components }
    }

    fn total_weight(&self) -> f64 {
        self.components.iter().map(|c| c.weight).sum()
    }

    /// log N(x; μ_k, s_k² I) + log π_k for every component (π normalised).
    fn log_terms(&self, x: Point) -> Vec<f64> {
        let log_total = self.total_weight().ln();
        self.components
            .iter()
            .map(|c| {
                let variance = c.std * c.std;
                let d2 = (x[0] - c.mean[0]).powi(2) + (x[1] - c.mean[1]).powi(2);
                c.weight.ln() - log_total - d2 / (2.0 * variance) - (2.0 * std::f64::consts::PI * variance).ln()
            })
            .collect()
    }

    /// log q(x), by log-sum-exp so that points far from every component keep their digits.
    pub fn log_density(&self, x: Point) -> f64 {
        let terms = self.log_terms(x);
        let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !max.is_finite() {
            return max;
        }
        max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
    }

    /// ∇_x log q(x) = Σ_k r_k(x) (μ_k - x) / s_k², with r_k the posterior responsibility of component k.
    pub fn score(&self, x: Point) -> Point {
        let terms = self.log_terms(x);
        let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let mut total = 0.0;
        let mut score = [0.0, 0.0];
        for (c, t) in self.components.iter().zip(&terms) {
            let r = (t - max).exp();
            total += r;
            let inv_var = 1.0 / (c.std * c.std);
            score[0] += r * (c.mean[0] - x[0]) * inv_var;
            score[1] += r * (c.mean[1] - x[1]) * inv_var;
        }
        if total > 0.0 { [score[0] / total, score[1] / total] } else { [0.0, 0.0] }
    }

    /// ∇·∇ log q(x) = Δ log q(x), the trace of the score's Jacobian (the Hessian of log q):
    /// Σ_k r_k (|g_k|² - d / s_k²) - |∇ log q|², with g_k = (μ_k - x) / s_k² and d = 2. The exact divergence
    /// the change of variables along the probability-flow ODE integrates.
    pub fn score_divergence(&self, x: Point) -> f64 {
        let terms = self.log_terms(x);
        let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let (mut total, mut score, mut second) = (0.0, [0.0, 0.0], 0.0);
        for (c, t) in self.components.iter().zip(&terms) {
            let r = (t - max).exp();
            let inv_var = 1.0 / (c.std * c.std);
            let g = [(c.mean[0] - x[0]) * inv_var, (c.mean[1] - x[1]) * inv_var];
            total += r;
            score[0] += r * g[0];
            score[1] += r * g[1];
            second += r * (g[0] * g[0] + g[1] * g[1] - 2.0 * inv_var);
        }
        if total <= 0.0 {
            return 0.0;
        }
        let score = [score[0] / total, score[1] / total];
        second / total - (score[0] * score[0] + score[1] * score[1])
    }

    /// `n` draws and their classes: a component by weight, then a point from its Gaussian.
    pub fn sample(&self, n: usize, rng: &mut impl Rng) -> Vec<(Point, usize)> {
        let total = self.total_weight();
        (0..n)
            .filter_map(|_| {
                let mut u = rng.random::<f64>() * total;
                let component = self.components.iter().find(|c| {
                    u -= c.weight;
                    u <= 0.0
                });
                let c = component.or(self.components.last())?;
                let (a, b): (f64, f64) = (StandardNormal.sample(rng), StandardNormal.sample(rng));
                Some(([c.mean[0] + c.std * a, c.mean[1] + c.std * b], c.class))
            })
            .collect()
    }
}

/// ε* = -sqrt(1 - ᾱ) ∇ log q_t(x): the noise an ideal ε-prediction network outputs at x_t (Tweedie's formula).
pub fn epsilon_from_score(score: Point, one_minus_alpha_bar: f64) -> Point {
    let sigma = one_minus_alpha_bar.sqrt();
    [-sigma * score[0], -sigma * score[1]]
}

/// ∇·ε* = -sqrt(1 - ᾱ) Δ log q_t(x): the divergence of the ideal network's ε* in x, from the score's
/// ([`GaussianMixture::score_divergence`]).
pub fn epsilon_divergence(score_divergence: f64, one_minus_alpha_bar: f64) -> f64 {
    -one_minus_alpha_bar.sqrt() * score_divergence
}

/// ∇ log q_t(x) = -ε / sqrt(1 - ᾱ): the score a network's ε̂ stands for.
pub fn score_from_epsilon(eps: Point, one_minus_alpha_bar: f64) -> Point {
    let inv_sigma = 1.0 / one_minus_alpha_bar.sqrt();
    [-inv_sigma * eps[0], -inv_sigma * eps[1]]
}

/// The exact target of `objective` at x_t = `x` (what an ideal network of that objective outputs there),
/// from the exact ε* at x: every target is linear in (x_0, ε), so its conditional mean is the target of
/// E[x_0 | x_t] = (x - sqrt(1 - ᾱ) ε*) / sqrt(ᾱ) and ε* (for ε, ε* itself).
pub fn exact_target(
    objective: super::objective::Objective,
    x: Point,
    eps_star: Point,
    alpha_bar: f64,
    one_minus_alpha_bar: f64,
) -> Point {
    let (alpha, sigma) = (alpha_bar.sqrt(), one_minus_alpha_bar.sqrt());
    let one = |i: usize| objective.target((x[i] - sigma * eps_star[i]) / alpha, eps_star[i], alpha, sigma);
    [one(0), one(1)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn three_blobs() -> GaussianMixture {
        GaussianMixture::new(vec![
            Component { mean: [-0.7, 0.1], std: 0.1, weight: 1.0, class: 0 },
            Component { mean: [0.6, -0.4], std: 0.2, weight: 2.0, class: 1 },
            Component { mean: [0.2, 0.8], std: 0.05, weight: 0.5, class: 1 },
        ])
    }

    /// The closed-form score of q_t against central finite differences of its log-density, at every noise
    /// level from nearly clean to nearly pure noise, near and far from the data.
    #[test]
    fn score_matches_finite_differences_of_the_log_density() {
        let mixture = three_blobs();
        let h = 1e-5;
        for alpha_bar in [0.9999f64, 0.99, 0.7, 0.3, 0.01] {
            let q_t = mixture.noised(alpha_bar, 1.0 - alpha_bar);
            for x in [[0.0, 0.0], [-0.69, 0.12], [0.55, -0.3], [2.5, -1.7], [0.21, 0.79]] {
                let score = q_t.score(x);
                for axis in 0..2 {
                    let (mut plus, mut minus) = (x, x);
                    plus[axis] += h;
                    minus[axis] -= h;
                    let numeric = (q_t.log_density(plus) - q_t.log_density(minus)) / (2.0 * h);
                    let tolerance = 1e-5 * (1.0 + numeric.abs());
                    assert!(
                        (score[axis] - numeric).abs() < tolerance,
                        "ᾱ {alpha_bar}, x {x:?}, axis {axis}: closed form {} vs differences {numeric}",
                        score[axis]
                    );
                }
            }
        }
    }

    /// The divergence of the score (the Laplacian of log q_t) against central differences of the closed-form
    /// score, and ε*'s divergence against differences of ε*, at every noise level, near and far from the data.
    #[test]
    fn score_divergence_matches_finite_differences() {
        let mixture = three_blobs();
        let h = 1e-6;
        for alpha_bar in [1.0f64, 0.9999, 0.99, 0.7, 0.3, 0.01] {
            let q_t = mixture.noised(alpha_bar, 1.0 - alpha_bar);
            for x in [[0.0, 0.0], [-0.69, 0.12], [0.55, -0.3], [2.5, -1.7], [0.21, 0.79], [-0.1, 0.45]] {
                let mut numeric = 0.0;
                let mut numeric_eps = 0.0;
                for axis in 0..2 {
                    let (mut plus, mut minus) = (x, x);
                    plus[axis] += h;
                    minus[axis] -= h;
                    numeric += (q_t.score(plus)[axis] - q_t.score(minus)[axis]) / (2.0 * h);
                    let eps = |p: Point| epsilon_from_score(q_t.score(p), 1.0 - alpha_bar)[axis];
                    numeric_eps += (eps(plus) - eps(minus)) / (2.0 * h);
                }
                let exact = q_t.score_divergence(x);
                let tolerance = 1e-5 * (1.0 + numeric.abs());
                assert!(
                    (exact - numeric).abs() < tolerance,
                    "ᾱ {alpha_bar}, x {x:?}: {exact} vs differences {numeric}"
                );
                let exact_eps = epsilon_divergence(exact, 1.0 - alpha_bar);
                assert!((exact_eps - numeric_eps).abs() < tolerance, "ᾱ {alpha_bar}, x {x:?}: ∇·ε* {exact_eps}");
            }
        }
        // One Gaussian N(m, s² I): Δ log q = -2 / s² everywhere.
        let one = GaussianMixture::new(vec![Component { mean: [0.3, -0.2], std: 0.5, weight: 1.0, class: 0 }]);
        assert!((one.score_divergence([1.0, 2.0]) + 8.0).abs() < 1e-12);
    }

    /// The density integrates to one (a grid sum over a wide square), clean and noised.
    #[test]
    fn density_integrates_to_one() {
        let mixture = three_blobs();
        for alpha_bar in [1.0, 0.5] {
            let q_t = mixture.noised(alpha_bar, 1.0 - alpha_bar);
            let step = 0.005;
            let mut total = 0.0;
            for i in 0..1600 {
                for j in 0..1600 {
                    let x = [-4.0 + step * i as f64, -4.0 + step * j as f64];
                    total += q_t.log_density(x).exp() * step * step;
                }
            }
            assert!((total - 1.0).abs() < 1e-3, "ᾱ {alpha_bar}: ∫ q = {total}");
        }
    }

    /// Noising a mixture's samples gives samples of the noised mixture: compare means and spreads.
    #[test]
    fn noised_mixture_is_the_law_of_noised_samples() {
        let mixture = three_blobs();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let alpha_bar: f64 = 0.4;
        let n = 200_000;
        let noised: Vec<Point> = mixture
            .sample(n, &mut rng)
            .into_iter()
            .map(|(p, _)| {
                let (a, b): (f64, f64) = (StandardNormal.sample(&mut rng), StandardNormal.sample(&mut rng));
                let s = (1.0 - alpha_bar).sqrt();
                [alpha_bar.sqrt() * p[0] + s * a, alpha_bar.sqrt() * p[1] + s * b]
            })
            .collect();
        let direct: Vec<Point> =
            mixture.noised(alpha_bar, 1.0 - alpha_bar).sample(n, &mut rng).into_iter().map(|(p, _)| p).collect();
        let moments = |points: &[Point]| {
            let m = |f: &dyn Fn(&Point) -> f64| points.iter().map(f).sum::<f64>() / points.len() as f64;
            [m(&|p| p[0]), m(&|p| p[1]), m(&|p| p[0] * p[0]), m(&|p| p[1] * p[1]), m(&|p| p[0] * p[1])]
        };
        for (a, b) in moments(&noised).iter().zip(moments(&direct)) {
            assert!((a - b).abs() < 0.01, "moment {a} vs {b}");
        }
    }

    #[test]
    fn epsilon_and_score_convert_both_ways() {
        let eps = [0.3, -1.2];
        let back = epsilon_from_score(score_from_epsilon(eps, 0.25), 0.25);
        assert!((back[0] - eps[0]).abs() < 1e-12 && (back[1] - eps[1]).abs() < 1e-12);
    }

    /// For one Gaussian N(m, s² I), E[x_0 | x_t] = m + α s² / (α² s² + σ²) (x - α m): the exact x_0 target
    /// read from the mixture's ε* is that, and the other targets are their definitions of it.
    #[test]
    fn exact_targets_of_one_gaussian_are_its_posterior_mean() {
        use super::super::objective::Objective;
        let (m, s) = ([0.3, -0.5], 0.4);
        let one = GaussianMixture::new(vec![Component { mean: m, std: s, weight: 1.0, class: 0 }]);
        for alpha_bar in [0.02, 0.5, 0.97] {
            let (alpha, sigma) = (f64::sqrt(alpha_bar), f64::sqrt(1.0 - alpha_bar));
            let x = [0.8, 0.1];
            let eps = epsilon_from_score(one.noised(alpha_bar, 1.0 - alpha_bar).score(x), 1.0 - alpha_bar);
            let x0 = exact_target(Objective::X0, x, eps, alpha_bar, 1.0 - alpha_bar);
            for i in 0..2 {
                let expected = m[i] + alpha * s * s / (alpha * alpha * s * s + sigma * sigma) * (x[i] - alpha * m[i]);
                assert!((x0[i] - expected).abs() < 1e-9, "ᾱ = {alpha_bar}: {} vs {expected}", x0[i]);
            }
            assert_eq!(exact_target(Objective::Eps, x, eps, alpha_bar, 1.0 - alpha_bar), eps);
            let v = exact_target(Objective::V, x, eps, alpha_bar, 1.0 - alpha_bar);
            let flow = exact_target(Objective::Flow, x, eps, alpha_bar, 1.0 - alpha_bar);
            for i in 0..2 {
                assert!((v[i] - (alpha * eps[i] - sigma * x0[i])).abs() < 1e-12);
                assert!((flow[i] - (eps[i] - x0[i])).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn class_filter_keeps_only_that_class() {
        let mixture = three_blobs();
        assert_eq!(mixture.classes(), vec![0, 1]);
        assert_eq!(mixture.of_class(1).map(|m| m.components.len()), Ok(2));
        assert_eq!(mixture.of_class(4), Err(NoSuchClass(4)));
    }
}
