//! The forward (noising) process in closed form.

use burn::prelude::*;

use super::schedule::NoiseSchedule;

/// x_t = sqrt(ᾱ_t) x_0 + sqrt(1 - ᾱ_t) ε: a draw from q(x_t | x_0) for timestep `t` (1-based), given ε.
pub fn q_sample<const D: usize>(schedule: &NoiseSchedule, x0: Tensor<D>, t: usize, eps: Tensor<D>) -> Tensor<D> {
    let i = t - 1;
    x0.mul_scalar(schedule.sqrt_alpha_bar[i]).add(eps.mul_scalar(schedule.sqrt_one_minus_alpha_bar[i]))
}

/// The same closed form with one noise level per batch item, as training needs it:
/// x_t = sqrt(ᾱ) x_0 + sqrt(1 - ᾱ) ε with `alpha_bar` of shape [batch].
pub fn q_sample_batch(x0: Tensor<4>, alpha_bar: Tensor<1>, eps: Tensor<4>) -> Tensor<4> {
    // [batch] -> [batch, 1, 1, 1] so it broadcasts over channels and pixels.
    let alpha_bar: Tensor<4> = alpha_bar.unsqueeze_dims(&[1, 2, 3]);
    let signal = alpha_bar.clone().sqrt();
    let noise = alpha_bar.neg().add_scalar(1.0).sqrt();
    x0.mul(signal).add(eps.mul(noise))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::noise::NoiseSource;
    use crate::diffusion::schedule::BetaSchedule;

    fn mean_and_variance(t: Tensor<1>) -> (f64, f64) {
        let v: Vec<f32> = t.into_data().try_to_vec().unwrap();
        let n = v.len() as f64;
        let mean = v.iter().map(|x| *x as f64).sum::<f64>() / n;
        let var = v.iter().map(|x| (*x as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0);
        (mean, var)
    }

    /// q(x_t | x_0) in closed form has the mean and variance of t Markov steps
    /// x_s = sqrt(1 - β_s) x_{s-1} + sqrt(β_s) z, checked on many samples.
    #[test]
    fn closed_form_matches_composed_markov_steps() {
        let device = Device::flex();
        let schedule = BetaSchedule::linear(1000).build().unwrap();
        let n = 40_000;
        let x0_value = 0.8;
        let mut noise = NoiseSource::new(11);
        for t in [1, 50, 300, 1000] {
            let mut chain = Tensor::<1>::full([n], x0_value, &device);
            for s in 0..t {
                let beta = schedule.beta[s];
                chain = chain.mul_scalar((1.0 - beta).sqrt()).add(noise.tensor([n], &device).mul_scalar(beta.sqrt()));
            }
            let x0 = Tensor::<1>::full([n], x0_value, &device);
            let closed = q_sample(&schedule, x0, t, noise.tensor([n], &device));

            let expected_mean = schedule.sqrt_alpha_bar[t - 1] * x0_value;
            let expected_var = schedule.one_minus_alpha_bar[t - 1];
            for (name, (mean, var)) in [("markov", mean_and_variance(chain)), ("closed", mean_and_variance(closed))] {
                let mean_tol = 5.0 * (expected_var / n as f64).sqrt();
                assert!((mean - expected_mean).abs() < mean_tol, "{name} t={t}: mean {mean} vs {expected_mean}");
                assert!((var / expected_var - 1.0).abs() < 0.04, "{name} t={t}: var {var} vs {expected_var}");
            }
        }
    }

    #[test]
    fn batch_form_agrees_with_single_step_form() {
        let device = Device::flex();
        let schedule = BetaSchedule::cosine(1000).build().unwrap();
        let mut noise = NoiseSource::new(5);
        let x0 = noise.tensor([2, 1, 2, 2], &device);
        let eps = noise.tensor([2, 1, 2, 2], &device);
        let t = 600;
        let alpha_bar = Tensor::<1>::full([2], schedule.alpha_bar[t - 1], &device);
        let a: Vec<f32> = q_sample_batch(x0.clone(), alpha_bar, eps.clone()).into_data().try_to_vec().unwrap();
        let b: Vec<f32> = q_sample(&schedule, x0, t, eps).into_data().try_to_vec().unwrap();
        for (x, y) in a.iter().zip(&b) {
            assert!((x - y).abs() < 1e-5);
        }
    }
}
