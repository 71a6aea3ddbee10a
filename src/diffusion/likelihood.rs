//! The variational bound on the negative log-likelihood (Ho et al. 2020, eq. 5), in bits per dimension:
//!
//! -log p_θ(x_0) ≤ L = L_T + Σ_{t=2..T} L_{t-1} + L_0, with
//! - L_T = KL(q(x_T | x_0) || N(0, I)): what the prior p(x_T) misses of the noised data (no parameters);
//! - L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p_θ(x_{t-1} | x_t)) ([`super::posterior::l_t_minus_1_bits`]): the
//!   bits one reverse step costs, zero where the network's ε̂ is the true ε;
//! - L_0 = -log p_θ(x_0 | x_1): the decoder. For 8-bit images scaled to [-1, 1] it is Ho et al.'s discretized
//!   Gaussian (section 3.3): the probability of the pixel's bin [x - 1/255, x + 1/255] under N(μ_θ(x_1), σ_1²),
//!   the outer bins open to ±∞. For continuous data (the tests' Gaussian), the Gaussian density itself.
//!
//! σ_t² is β̃_t or β_t ([`DdpmVariance`]); the decoder's σ_1² is β_1 for β, and β̃_2 for β̃ (β̃_1 = 0: the
//! posterior of the last step is a point), as Nichol & Dhariwal's reference code clips it.
//!
//! The per-image terms are plain f64 arithmetic; `eval --nll` batches the network over images at each t and
//! sums them with [`BoundSums`].

use super::DdpmVariance;
use super::posterior::gaussian_kl_bits_per_dim;
use super::schedule::NoiseSchedule;

use std::f64::consts::{LN_2, PI};

/// L_T = KL(N(sqrt(ᾱ_T) x_0, (1 - ᾱ_T) I) || N(0, I)) per dimension, in bits.
pub fn prior_bits(schedule: &NoiseSchedule, x0: &[f32]) -> f64 {
    let i = schedule.steps() - 1;
    let mean: Vec<f64> = x0.iter().map(|x| schedule.sqrt_alpha_bar[i] * f64::from(*x)).collect();
    gaussian_kl_bits_per_dim(&mean, schedule.one_minus_alpha_bar[i], &vec![0.0; mean.len()], 1.0)
}

/// σ_1², the variance of the decoder p_θ(x_0 | x_1): β_1, or β̃_2 in place of β̃_1 = 0.
pub fn decoder_variance(schedule: &NoiseSchedule, variance: DdpmVariance) -> f64 {
    match variance {
        DdpmVariance::Beta => schedule.beta[0],
        DdpmVariance::BetaTilde if schedule.steps() >= 2 => schedule.beta_tilde[1],
        DdpmVariance::BetaTilde => schedule.beta[0],
    }
}

/// Half the width of one of the 256 intensity levels in [-1, 1]: 1/255.
const HALF_BIN: f64 = 1.0 / 255.0;

/// The smallest bin probability counted (a bin the model gives nothing would be an infinite code length):
/// 1e-12, as the reference code clamps it.
const MIN_PROBABILITY: f64 = 1e-12;

/// L_0 = -log₂ p_θ(x_0 | x_1) per dimension for 8-bit data in [-1, 1]: each value's bin probability under
/// N(mean, variance), the bins at -1 and 1 open to -∞ and ∞.
pub fn discretized_decoder_bits(mean: &[f64], variance: f64, x0: &[f32]) -> f64 {
    let sigma = variance.sqrt();
    let bits: f64 = x0
        .iter()
        .zip(mean)
        .map(|(x, m)| {
            let x = f64::from(*x);
            let lower = if x <= -1.0 + 1e-3 { f64::NEG_INFINITY } else { (x - HALF_BIN - m) / sigma };
            let upper = if x >= 1.0 - 1e-3 { f64::INFINITY } else { (x + HALF_BIN - m) / sigma };
            -interval_probability(lower, upper).max(MIN_PROBABILITY).log2()
        })
        .sum();
    bits / x0.len().max(1) as f64
}

/// -log₂ N(x_0; mean, variance) per dimension: the decoder term for continuous data.
pub fn gaussian_decoder_bits(mean: &[f64], variance: f64, x0: &[f32]) -> f64 {
    let nats: f64 = x0
        .iter()
        .zip(mean)
        .map(|(x, m)| 0.5 * ((2.0 * PI * variance).ln() + (f64::from(*x) - m).powi(2) / variance))
        .sum();
    nats / x0.len().max(1) as f64 / LN_2
}

/// P(a < Z < b) for a standard normal Z, from the tail on the side where it is small, so that bins far
/// from the mean keep their digits.
fn interval_probability(a: f64, b: f64) -> f64 {
    if a >= 0.0 {
        upper_tail(a) - upper_tail(b)
    } else if b <= 0.0 {
        upper_tail(-b) - upper_tail(-a)
    } else {
        1.0 - upper_tail(-a) - upper_tail(b)
    }
}

/// P(Z > x) = erfc(x / √2) / 2.
fn upper_tail(x: f64) -> f64 {
    if x == f64::INFINITY {
        return 0.0;
    }
    if x == f64::NEG_INFINITY {
        return 1.0;
    }
    0.5 * erfc(x / std::f64::consts::SQRT_2)
}

/// The complementary error function, with relative error below 1.2e-7 everywhere (Chebyshev fit of
/// Press et al., Numerical Recipes, "erfcc").
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// The bound's terms summed over examples, with the distortion of x̂_0 at each t (Ho et al.'s Figure 5).
#[derive(Clone, Debug)]
pub struct BoundSums {
    /// Σ L_T over examples.
    pub prior: f64,
    /// Σ over examples of the term at t (index t - 1): L_0 at t = 1, L_{t-1} above; only the evaluated t.
    pub terms: Vec<f64>,
    /// Σ over examples of the mean squared error of x̂_0(x_t) at t, in the data's units.
    pub squared_error: Vec<f64>,
    /// Examples summed at each t, and for the prior.
    pub counts: Vec<usize>,
    pub prior_count: usize,
    /// How many timesteps the term at t stands for in the sum (1 where every t is evaluated).
    pub weights: Vec<usize>,
    /// Each example's own bound: its L_T and its terms, each times the timesteps it stands for (their mean
    /// over examples is `total_bits`; their spread gives its standard error).
    pub example_bits: Vec<f64>,
}

impl BoundSums {
    pub fn new(steps: usize) -> Self {
        Self {
            prior: 0.0,
            terms: vec![0.0; steps],
            squared_error: vec![0.0; steps],
            counts: vec![0; steps],
            prior_count: 0,
            weights: vec![1; steps],
            example_bits: Vec::new(),
        }
    }

    /// Adds one example's terms at timestep `t` (1-based): L_0 for t = 1, else L_{t-1}; and its x̂_0 error.
    /// The term stands for `weight` timesteps of the sum (a stratum of t's of which t was drawn).
    pub fn add(&mut self, t: usize, weight: usize, bits: f64, squared_error: f64) {
        self.weights[t - 1] = weight;
        self.terms[t - 1] += bits;
        self.squared_error[t - 1] += squared_error;
        self.counts[t - 1] += 1;
    }

    /// Adds `bits` (L_T, or a term times the timesteps it stands for) to example `index`'s own bound.
    pub fn add_to_example(&mut self, index: usize, bits: f64) {
        if self.example_bits.len() <= index {
            self.example_bits.resize(index + 1, 0.0);
        }
        self.example_bits[index] += bits;
    }

    pub fn add_prior(&mut self, bits: f64) {
        self.prior += bits;
        self.prior_count += 1;
    }

    /// The mean term at t, where it was evaluated.
    pub fn mean_term(&self, t: usize) -> Option<f64> {
        (self.counts[t - 1] > 0).then(|| self.terms[t - 1] / self.counts[t - 1] as f64)
    }

    /// The root mean squared error of x̂_0 at t, where it was evaluated.
    pub fn rmse(&self, t: usize) -> Option<f64> {
        (self.counts[t - 1] > 0).then(|| (self.squared_error[t - 1] / self.counts[t - 1] as f64).sqrt())
    }

    /// Σ_{t > after, t ≥ 2} L_{t-1}, each evaluated term times the timesteps it stands for.
    pub fn sum_of_steps_after(&self, after: usize) -> f64 {
        (after.max(1) + 1..=self.terms.len())
            .filter_map(|t| self.mean_term(t).map(|m| m * self.weights[t - 1] as f64))
            .sum()
    }

    /// The mean L_T.
    pub fn mean_prior(&self) -> Option<f64> {
        (self.prior_count > 0).then(|| self.prior / self.prior_count as f64)
    }

    /// The bound in bits per dimension: mean L_T + L_0 + Σ_{t≥2} L_{t-1}, each evaluated term standing for
    /// its stratum's timesteps (the stratified estimate of the sum). `None` until L_T, L_0 and, for T ≥ 2,
    /// one t ≥ 2 are in.
    pub fn total_bits(&self) -> Option<f64> {
        let steps = self.terms.len();
        let prior = self.mean_prior()?;
        let decoder = self.mean_term(1)?;
        if steps >= 2 && (2..=steps).all(|t| self.counts[t - 1] == 0) {
            return None;
        }
        Some(prior + decoder + self.sum_of_steps_after(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::noise::NoiseSource;
    use crate::diffusion::posterior::{l_t_minus_1_bits, model_mean, predicted_x0};
    use crate::diffusion::schedule::BetaSchedule;

    #[test]
    fn erfc_matches_known_values() {
        // erfc(0) = 1, erfc(1) = 0.157299207050285, erfc(2) = 0.004677734981047, erfc(-1) = 1.842700792949715.
        for (x, expected) in
            [(0.0, 1.0), (1.0, 0.157_299_207_050_285), (2.0, 0.004_677_734_981_047), (-1.0, 1.842_700_792_949_715)]
        {
            assert!((erfc(x) - expected).abs() <= 2e-7 * expected, "erfc({x}) = {} ≠ {expected}", erfc(x));
        }
        // The 256 bins of a value's decoder cover the real line: their probabilities sum to 1.
        let (mean, sigma) = (0.3, 0.05);
        let total: f64 = (0..256)
            .map(|level| {
                let x = level as f64 / 127.5 - 1.0;
                let lower = if level == 0 { f64::NEG_INFINITY } else { (x - HALF_BIN - mean) / sigma };
                let upper = if level == 255 { f64::INFINITY } else { (x + HALF_BIN - mean) / sigma };
                interval_probability(lower, upper)
            })
            .sum();
        assert!((total - 1.0).abs() < 1e-6, "{total}");
    }

    /// Data x_0 ~ N(μ, s²) in every dimension, with the exact ε-prediction E[ε | x_t] (what a perfectly
    /// trained network outputs): q(x_t) = N(sqrt(ᾱ) μ, ᾱ s² + 1 - ᾱ), and
    /// E[ε | x_t] = sqrt(1 - ᾱ) (x_t - sqrt(ᾱ) μ) / (ᾱ s² + 1 - ᾱ).
    struct GaussianData {
        mean: f64,
        std: f64,
    }

    impl GaussianData {
        fn epsilon(&self, schedule: &NoiseSchedule, t: usize, x_t: &[f32]) -> Vec<f32> {
            let i = t - 1;
            let (a, one_minus) = (schedule.alpha_bar[i], schedule.one_minus_alpha_bar[i]);
            let variance = a * self.std * self.std + one_minus;
            x_t.iter().map(|x| (one_minus.sqrt() * (f64::from(*x) - a.sqrt() * self.mean) / variance) as f32).collect()
        }

        /// The exact negative log-likelihood per dimension, in bits: the data's differential entropy
        /// ½ log₂(2πe s²) (the cross-entropy of the true density with itself).
        fn nll_bits(&self) -> f64 {
            0.5 * (2.0 * PI * std::f64::consts::E * self.std * self.std).log2()
        }

        /// The bound with the exact ε̂, by the same per-term functions `eval --nll` uses, over n samples.
        /// Every term is a quadratic form in the data's z = (x_0 - μ) / s and the step's noise ε, so samples
        /// whose empirical moments are exactly N(0, 1)'s (mean 0, variance 1, ε uncorrelated with z) give
        /// each term's expectation exactly: the comparison with the exact NLL is not left to sampling noise
        /// (plain samples of 20 000 were off by ±0.007 bits, more than the gap at T = 1000).
        fn bound_bits(&self, schedule: &NoiseSchedule, n: usize, seed: u64) -> f64 {
            let mut noise = NoiseSource::new(seed);
            let z = exact_moments(noise.values(n), None);
            let x0: Vec<f32> = z.iter().map(|z| (self.mean + self.std * z) as f32).collect();
            let mut sums = BoundSums::new(schedule.steps());
            sums.add_prior(prior_bits(schedule, &x0));
            for t in 1..=schedule.steps() {
                let i = t - 1;
                let eps: Vec<f32> = exact_moments(noise.values(n), Some(&z)).iter().map(|e| *e as f32).collect();
                let x_t: Vec<f32> = x0
                    .iter()
                    .zip(&eps)
                    .map(|(x, e)| {
                        (schedule.sqrt_alpha_bar[i] * f64::from(*x)
                            + schedule.sqrt_one_minus_alpha_bar[i] * f64::from(*e)) as f32
                    })
                    .collect();
                let eps_hat = self.epsilon(schedule, t, &x_t);
                let bits = if t == 1 {
                    let mean = model_mean(schedule, 1, &x_t, &eps_hat);
                    gaussian_decoder_bits(&mean, decoder_variance(schedule, DdpmVariance::Beta), &x0)
                } else {
                    l_t_minus_1_bits(schedule, t, &x0, &x_t, &eps_hat, DdpmVariance::Beta).unwrap()
                };
                let x0_hat = predicted_x0(schedule, t, &x_t, &eps_hat);
                let error = x0.iter().zip(&x0_hat).map(|(a, b)| f64::from(a - b).powi(2)).sum::<f64>() / n as f64;
                sums.add(t, 1, bits, error);
            }
            sums.total_bits().unwrap()
        }
    }

    /// `values` shifted and scaled to mean 0 and variance 1 exactly, and first made uncorrelated with `other`
    /// (itself of mean 0 and variance 1).
    fn exact_moments(values: Vec<f32>, other: Option<&[f64]>) -> Vec<f64> {
        let n = values.len() as f64;
        let mut v: Vec<f64> = values.iter().map(|v| f64::from(*v)).collect();
        let mean = v.iter().sum::<f64>() / n;
        v.iter_mut().for_each(|x| *x -= mean);
        if let Some(other) = other {
            let projection = v.iter().zip(other).map(|(a, b)| a * b).sum::<f64>() / n;
            v.iter_mut().zip(other).for_each(|(a, b)| *a -= projection * b);
        }
        let std = (v.iter().map(|x| x * x).sum::<f64>() / n).sqrt();
        v.iter_mut().for_each(|x| *x /= std);
        v
    }

    /// The bound of Ho et al. with the exact ε̂ on Gaussian data is an upper bound on the exact negative
    /// log-likelihood at every T, and approaches it as T grows.
    #[test]
    fn the_bound_is_above_the_exact_nll_and_closes_in_as_t_grows() {
        let data = GaussianData { mean: 0.3, std: 0.5 };
        let exact = data.nll_bits();
        let mut gaps = Vec::new();
        for steps in [10, 100, 1000] {
            let schedule = BetaSchedule::cosine(steps).build().unwrap();
            let bound = data.bound_bits(&schedule, 20_000, 1);
            gaps.push((steps, bound - exact));
        }
        for (steps, gap) in &gaps {
            assert!(*gap > 0.0, "T = {steps}: the bound is {gap} bits below the exact NLL {exact}");
        }
        assert!(gaps[0].1 > gaps[1].1 && gaps[1].1 > gaps[2].1, "the gap must shrink as T grows: {gaps:?}");
        println!("exact NLL {exact:.4} bits/dim; gaps {gaps:?}");
        // The gaps the README prints (Correctness on a likelihood known exactly): 0.082 bits at T = 10 and
        // 0.0088 at T = 100, each within 20 %; below 0.002 at T = 1000 (0.00088 printed).
        for ((steps, gap), (printed, within)) in gaps.iter().zip([(0.082, 0.2), (0.0088, 0.2)]) {
            assert!(
                (gap - printed).abs() <= within * printed,
                "T = {steps}: the gap is {gap:.5} bits, the README prints {printed} (within {}%)",
                within * 100.0
            );
        }
        assert!(gaps[2].1 < 0.002, "T = 1000: the gap is {:.5} bits, the README prints 0.00088", gaps[2].1);
    }

    /// A decoder whose mean is the data's value pays only the bin's width: the discretized L_0 of a
    /// narrow decoder centred on each value is near 0 bits, a wide one pays about log₂ of its spread.
    #[test]
    fn the_discretized_decoder_costs_the_bins_probability() {
        let x0: Vec<f32> = (0..=255).map(|v| v as f32 / 127.5 - 1.0).collect();
        let mean: Vec<f64> = x0.iter().map(|x| f64::from(*x)).collect();
        assert!(discretized_decoder_bits(&mean, 1e-6, &x0) < 1e-3);
        let wide = discretized_decoder_bits(&mean, 0.1, &x0);
        // About -log₂(bin width × the density at the mean) = log₂(σ √(2π) / bin width) for a bin much
        // narrower than σ centred on the mean.
        let expected = (0.1f64.sqrt() * (2.0 * PI).sqrt() / (2.0 * HALF_BIN)).log2();
        assert!((wide - expected).abs() < 0.3, "{wide} against about {expected}");
    }
}
