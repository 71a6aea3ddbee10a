//! The reverse process's target on a real image: the posterior q(x_{t-1} | x_t, x_0) = N(μ̃_t, β̃_t I), the
//! model's p_θ(x_{t-1} | x_t) = N(μ_θ, σ_t² I), and the KL divergence between them, the variational bound's
//! term L_{t-1} (Ho et al. 2020, eq. 5): how far, at noise level t, the model's step is from the step that
//! knows x_0. Plain f64 arithmetic over one image's values, for pictures and plots.

use super::DdpmVariance;
use super::schedule::NoiseSchedule;

/// μ̃_t = sqrt(ᾱ_{t-1}) β_t / (1 - ᾱ_t) x_0 + sqrt(α_t) (1 - ᾱ_{t-1}) / (1 - ᾱ_t) x_t, timestep `t` 1-based.
pub fn posterior_mean(schedule: &NoiseSchedule, t: usize, x0: &[f32], x_t: &[f32]) -> Vec<f64> {
    let i = t - 1;
    let (c0, ct) = (schedule.posterior_coef_x0[i], schedule.posterior_coef_xt[i]);
    x0.iter().zip(x_t).map(|(a, b)| c0 * *a as f64 + ct * *b as f64).collect()
}

/// x̂_0 = (x_t - sqrt(1 - ᾱ_t) ε̂) / sqrt(ᾱ_t): the clean image the network's ε̂ implies.
pub fn predicted_x0(schedule: &NoiseSchedule, t: usize, x_t: &[f32], eps_hat: &[f32]) -> Vec<f32> {
    let i = t - 1;
    let (signal, noise) = (schedule.sqrt_alpha_bar[i], schedule.sqrt_one_minus_alpha_bar[i]);
    x_t.iter().zip(eps_hat).map(|(x, e)| ((*x as f64 - noise * *e as f64) / signal) as f32).collect()
}

/// μ_θ(x_t) = μ̃_t(x̂_0, x_t) with x̂_0 from ε̂: the model's mean, which equals
/// (x_t - β_t / sqrt(1 - ᾱ_t) ε̂) / sqrt(α_t).
pub fn model_mean(schedule: &NoiseSchedule, t: usize, x_t: &[f32], eps_hat: &[f32]) -> Vec<f64> {
    let i = t - 1;
    let scale = schedule.beta[i] / schedule.sqrt_one_minus_alpha_bar[i];
    let inv_sqrt_alpha = 1.0 / schedule.alpha[i].sqrt();
    x_t.iter().zip(eps_hat).map(|(x, e)| (*x as f64 - scale * *e as f64) * inv_sqrt_alpha).collect()
}

/// μ_θ(x_t) = μ̃_t(clip(x̂_0), x_t): the model's mean with x̂_0 clipped to [-bound, bound] first, as the
/// samplers step and as Ho et al.'s reference code computes the bound (`clip_denoised=True`); an infinite
/// bound is [`model_mean`] itself.
pub fn model_mean_clipped(schedule: &NoiseSchedule, t: usize, x_t: &[f32], eps_hat: &[f32], bound: f64) -> Vec<f64> {
    if bound.is_infinite() {
        return model_mean(schedule, t, x_t, eps_hat);
    }
    let x0: Vec<f32> =
        predicted_x0(schedule, t, x_t, eps_hat).iter().map(|x| (*x as f64).clamp(-bound, bound) as f32).collect();
    posterior_mean(schedule, t, &x0, x_t)
}

/// σ_t², the variance of the model's step: β̃_t or β_t.
pub fn model_variance(schedule: &NoiseSchedule, t: usize, variance: DdpmVariance) -> f64 {
    match variance {
        DdpmVariance::BetaTilde => schedule.beta_tilde[t - 1],
        DdpmVariance::Beta => schedule.beta[t - 1],
    }
}

/// KL(N(mean_q, var_q I) || N(mean_p, var_p I)) per dimension, in bits:
/// (ln(var_p / var_q) + var_q / var_p + (mean_q - mean_p)² / var_p - 1) / (2 ln 2), averaged over dimensions.
pub fn gaussian_kl_bits_per_dim(mean_q: &[f64], var_q: f64, mean_p: &[f64], var_p: f64) -> f64 {
    let n = mean_q.len().max(1) as f64;
    let squared: f64 = mean_q.iter().zip(mean_p).map(|(q, p)| (q - p) * (q - p)).sum::<f64>() / n;
    ((var_p / var_q).ln() + var_q / var_p + squared / var_p - 1.0) / (2.0 * std::f64::consts::LN_2)
}

/// L_{t-1} = KL(q(x_{t-1} | x_t, x_0) || p_θ(x_{t-1} | x_t)) in bits per dimension for t ≥ 2, with the
/// model's ε̂ at x_t. At t = 1 the posterior is a point (β̃_1 = 0) and the bound uses a decoder term instead:
/// `None`.
pub fn l_t_minus_1_bits(
    schedule: &NoiseSchedule,
    t: usize,
    x0: &[f32],
    x_t: &[f32],
    eps_hat: &[f32],
    variance: DdpmVariance,
) -> Option<f64> {
    l_t_minus_1_bits_clipped(schedule, t, x0, x_t, eps_hat, variance, f64::INFINITY)
}

/// [`l_t_minus_1_bits`] with the model's mean from x̂_0 clipped to [-bound, bound] ([`model_mean_clipped`]).
pub fn l_t_minus_1_bits_clipped(
    schedule: &NoiseSchedule,
    t: usize,
    x0: &[f32],
    x_t: &[f32],
    eps_hat: &[f32],
    variance: DdpmVariance,
    bound: f64,
) -> Option<f64> {
    if t < 2 || t > schedule.steps() {
        return None;
    }
    let mean_q = posterior_mean(schedule, t, x0, x_t);
    let mean_p = model_mean_clipped(schedule, t, x_t, eps_hat, bound);
    let var_q = schedule.beta_tilde[t - 1];
    Some(gaussian_kl_bits_per_dim(&mean_q, var_q, &mean_p, model_variance(schedule, t, variance)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::diffusion::noise::NoiseSource;
    use crate::diffusion::schedule::BetaSchedule;

    fn close(a: f64, b: f64, tolerance: f64) -> bool {
        (a - b).abs() <= tolerance * a.abs().max(b.abs()).max(1e-300)
    }

    /// μ̃'s coefficients and β̃ against the seed's closed forms, computed here from the betas alone in f64.
    #[test]
    fn posterior_coefficients_are_the_closed_forms() {
        for source in [BetaSchedule::linear(1000), BetaSchedule::cosine(1000), BetaSchedule::sigmoid(300)] {
            let schedule = source.build().unwrap();
            let mut alpha_bar_prev = 1.0_f64;
            for (i, beta) in source.betas().into_iter().enumerate() {
                let alpha = 1.0 - beta;
                let alpha_bar = alpha_bar_prev * alpha;
                let beta_tilde = (1.0 - alpha_bar_prev) / (1.0 - alpha_bar) * beta;
                let c0 = alpha_bar_prev.sqrt() * beta / (1.0 - alpha_bar);
                let ct = alpha.sqrt() * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar);
                let t = i + 1;
                assert!(close(schedule.beta_tilde[i], beta_tilde, 1e-9), "{source:?} t={t}: β̃");
                assert!(close(schedule.posterior_coef_x0[i], c0, 1e-9), "{source:?} t={t}: x_0 coefficient");
                assert!(close(schedule.posterior_coef_xt[i], ct, 1e-9), "{source:?} t={t}: x_t coefficient");
                let mean = posterior_mean(&schedule, t, &[0.5], &[-0.25])[0];
                assert!(close(mean, c0 * 0.5 - ct * 0.25, 1e-9), "{source:?} t={t}: μ̃");
                alpha_bar_prev = alpha_bar;
            }
        }
    }

    /// With ε̂ the true ε and σ_t² = β̃_t the model's step is the posterior: L_{t-1} = 0. A wrong ε̂, or the
    /// other variance, costs bits. The model's mean in its ε form equals μ̃ at the x̂_0 that ε̂ implies.
    #[test]
    fn the_kl_is_zero_for_the_true_noise_and_positive_otherwise() {
        let schedule = BetaSchedule::cosine(1000).build().unwrap();
        let mut source = NoiseSource::new(5);
        let n = 64;
        let x0: Vec<f32> = source.values(n).iter().map(|v| (v * 0.5).tanh()).collect();
        let eps = source.values(n);
        let wrong: Vec<f32> = eps.iter().zip(source.values(n)).map(|(e, d)| e + 0.2 * d).collect();
        for t in [2, 10, 300, 700, 1000] {
            let i = t - 1;
            let x_t: Vec<f32> = x0
                .iter()
                .zip(&eps)
                .map(|(a, e)| {
                    (schedule.sqrt_alpha_bar[i] * *a as f64 + schedule.sqrt_one_minus_alpha_bar[i] * *e as f64) as f32
                })
                .collect();
            let exact = l_t_minus_1_bits(&schedule, t, &x0, &x_t, &eps, DdpmVariance::BetaTilde).unwrap();
            assert!(exact.abs() < 1e-6, "t={t}: {exact} bits for the true ε");
            let off = l_t_minus_1_bits(&schedule, t, &x0, &x_t, &wrong, DdpmVariance::BetaTilde).unwrap();
            assert!(off > 1e-4, "t={t}: a wrong ε̂ must cost bits, got {off}");
            let beta = l_t_minus_1_bits(&schedule, t, &x0, &x_t, &eps, DdpmVariance::Beta).unwrap();
            assert!(beta > 0.0, "t={t}: σ² = β_t ≠ β̃_t must cost bits, got {beta}");
            // μ_θ = μ̃(x̂_0(ε̂), x_t): the two forms of the model's mean agree.
            let x0_hat = predicted_x0(&schedule, t, &x_t, &wrong);
            for (a, b) in model_mean(&schedule, t, &x_t, &wrong).iter().zip(posterior_mean(&schedule, t, &x0_hat, &x_t))
            {
                assert!((a - b).abs() < 1e-4, "t={t}: {a} vs {b}");
            }
        }
        assert_eq!(l_t_minus_1_bits(&schedule, 1, &x0, &x0, &eps, DdpmVariance::BetaTilde), None);
        // Clipping x̂_0 changes nothing where x̂_0 is inside the bound, and pulls μ_θ towards μ̃ where the
        // prediction overshoots the data range.
        let t = 500;
        let x_t: Vec<f32> = x0.iter().map(|v| v * schedule.sqrt_alpha_bar[t - 1] as f32).collect();
        let zero = vec![0.0f32; x0.len()];
        let inside = l_t_minus_1_bits_clipped(&schedule, t, &x0, &x_t, &zero, DdpmVariance::BetaTilde, 1.0);
        let plain = l_t_minus_1_bits(&schedule, t, &x0, &x_t, &zero, DdpmVariance::BetaTilde);
        assert!((inside.unwrap() - plain.unwrap()).abs() < 1e-9, "{inside:?} vs {plain:?}");
        let overshoot: Vec<f32> = zero.iter().map(|_| -3.0).collect();
        let clipped = l_t_minus_1_bits_clipped(&schedule, t, &x0, &x_t, &overshoot, DdpmVariance::BetaTilde, 1.0);
        let unclipped = l_t_minus_1_bits(&schedule, t, &x0, &x_t, &overshoot, DdpmVariance::BetaTilde);
        assert!(clipped.unwrap() < unclipped.unwrap(), "{clipped:?} vs {unclipped:?}");
    }
}
