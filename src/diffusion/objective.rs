//! What a network predicts — its training target — and how a sampler reads any of them as x̂_0 and ε̂.
//!
//! On the variance-preserving process x_t = α x_0 + σ ε (α = sqrt(ᾱ), σ = sqrt(1 - ᾱ), λ = ln(α² / σ²)):
//! - ε (Ho et al. 2020): ε̂ as predicted, x̂_0 = (x_t - σ ε̂) / α;
//! - x_0: x̂_0 as predicted, ε̂ = (x_t - α x̂_0) / σ (at high λ this divides rounding by a small σ);
//! - v = α ε - σ x_0 (Salimans & Ho 2022): x̂_0 = α x_t - σ v̂, ε̂ = σ x_t + α v̂;
//! - flow matching's velocity u = ε - x_0 on the straight path y_t = (1 - t) x_0 + t ε (Lipman et al. 2022;
//!   Liu et al. 2022). That path is this process scaled: y_t = x_t / (α + σ) with α = (1 - t) / s,
//!   σ = t / s, s = sqrt((1 - t)² + t²), so λ = 2 ln((1 - t) / t) and one network over λ serves it:
//!   x̂_0 = (x_t - σ û) / (α + σ), ε̂ = (x_t + α û) / (α + σ).
//!
//! Every objective's plain squared error is the ε loss times a weight over λ (Kingma & Gao 2023):
//! [`Objective::eps_weight`] is that weight, the factor that puts each recipe's loss in ε units.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// The training target of a network (part of the model: its checkpoint's header says which).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Objective {
    /// The noise ε (Ho et al. 2020): every model trained before objectives existed.
    #[default]
    Eps,
    /// The clean image x_0.
    X0,
    /// v = α ε - σ x_0 (Salimans & Ho 2022).
    V,
    /// Flow matching's velocity ε - x_0 along y_t = (1 - t) x_0 + t ε.
    Flow,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("unknown objective `{0}`: use one of eps, x0, v, flow")]
pub struct UnknownObjective(pub String);

impl Objective {
    pub const ALL: [Objective; 4] = [Objective::Eps, Objective::X0, Objective::V, Objective::Flow];

    /// The name on the command line and in checkpoint headers.
    pub fn name(self) -> &'static str {
        match self {
            Objective::Eps => "eps",
            Objective::X0 => "x0",
            Objective::V => "v",
            Objective::Flow => "flow",
        }
    }

    /// What the network predicts, as a learner reads it.
    pub fn label(self) -> &'static str {
        match self {
            Objective::Eps => "ε (the noise)",
            Objective::X0 => "x₀ (the clean image)",
            Objective::V => "v = α ε - σ x₀",
            Objective::Flow => "flow velocity ε - x₀",
        }
    }

    /// (a, b) with target = a x_0 + b ε at a level of signal `alpha` and noise `sigma` (α² + σ² = 1).
    pub fn target_coefficients(self, alpha: f64, sigma: f64) -> (f64, f64) {
        match self {
            Objective::Eps => (0.0, 1.0),
            Objective::X0 => (1.0, 0.0),
            Objective::V => (-sigma, alpha),
            Objective::Flow => (-1.0, 1.0),
        }
    }

    /// The target the network learns for data `x0`, noise `eps`, at a level (α, σ).
    pub fn target(self, x0: f64, eps: f64, alpha: f64, sigma: f64) -> f64 {
        let (a, b) = self.target_coefficients(alpha, sigma);
        a * x0 + b * eps
    }

    /// The one conversion every sampler reads a prediction through, as its coefficients at (α, σ).
    pub fn conversion(self, alpha: f64, sigma: f64) -> Conversion {
        let (x0, eps) = match self {
            Objective::Eps => ([1.0 / alpha, -sigma / alpha], [0.0, 1.0]),
            Objective::X0 => ([0.0, 1.0], [1.0 / sigma, -alpha / sigma]),
            Objective::V => ([alpha, -sigma], [sigma, alpha]),
            Objective::Flow => {
                let scale = alpha + sigma;
                ([1.0 / scale, -sigma / scale], [1.0 / scale, alpha / scale])
            }
        };
        Conversion { objective: self, x0, eps }
    }

    /// [`Self::conversion`] at log-SNR λ.
    pub fn conversion_at(self, log_snr: f64) -> Conversion {
        let (alpha, sigma) = alpha_sigma_from_log_snr(log_snr);
        self.conversion(alpha, sigma)
    }

    /// (x̂_0, ε̂) from the network's `prediction` at `x_t` of a level (α, σ).
    pub fn x0_and_eps(self, x_t: f64, prediction: f64, alpha: f64, sigma: f64) -> (f64, f64) {
        let c = self.conversion(alpha, sigma);
        (c.x0[0] * x_t + c.x0[1] * prediction, c.eps[0] * x_t + c.eps[1] * prediction)
    }

    /// w(λ) with ||prediction - target||² = w(λ) ||ε̂ - ε||²: 1 for ε, e^{-λ} for x_0, 1 + e^{-λ} for v,
    /// (1 + e^{-λ/2})² for the flow velocity. Dividing a recipe's loss by it gives the ε-equivalent loss.
    pub fn eps_weight(self, log_snr: f64) -> f64 {
        match self {
            Objective::Eps => 1.0,
            Objective::X0 => (-log_snr).exp(),
            Objective::V => 1.0 + (-log_snr).exp(),
            Objective::Flow => (1.0 + (-0.5 * log_snr).exp()).powi(2),
        }
    }
}

impl std::fmt::Display for Objective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Objective {
    type Err = UnknownObjective;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase();
        let wanted = match wanted.as_str() {
            "epsilon" | "ε" => "eps",
            "x_0" | "x₀" => "x0",
            "velocity" | "flow-matching" | "rectified-flow" => "flow",
            other => other,
        };
        Objective::ALL.into_iter().find(|o| o.name() == wanted).ok_or_else(|| UnknownObjective(s.to_owned()))
    }
}

/// Read from its name; a config saved before objectives existed has no such field (or `null`) and reads
/// as ε. (burn's `Config` derive passes no `#[serde(default)]` on, but a missing field is deserialized
/// through `deserialize_option`, which gives `None` here.)
/// Written as an option's `Some(name)` (JSON writes the name as it is; RON `Some("v")`), so that reading
/// it back through `deserialize_option` works in every format.
impl Serialize for Objective {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_some(self.name())
    }
}

impl<'de> Deserialize<'de> for Objective {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name: Option<String> = Option::deserialize(deserializer)?;
        name.map_or(Ok(Objective::Eps), |n| n.parse().map_err(serde::de::Error::custom))
    }
}

/// A prediction read as x̂_0 and ε̂: both are affine in x_t and the prediction,
/// x̂_0 = x0[0] x_t + x0[1] prediction and ε̂ = eps[0] x_t + eps[1] prediction. Guidance mixes two
/// predictions linearly with the same coefficients, so guiding ε̂ is guiding the prediction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conversion {
    pub objective: Objective,
    pub x0: [f64; 2],
    pub eps: [f64; 2],
}

impl Conversion {
    /// ε̂ of a prediction tensor. An ε model's prediction is returned as it is (no arithmetic: the same
    /// bits as before objectives existed).
    pub fn eps<const D: usize>(&self, x_t: Tensor<D>, prediction: Tensor<D>) -> Tensor<D> {
        affine(self.eps, x_t, prediction)
    }

    /// x̂_0 of a prediction tensor (unclipped).
    pub fn x0<const D: usize>(&self, x_t: Tensor<D>, prediction: Tensor<D>) -> Tensor<D> {
        affine(self.x0, x_t, prediction)
    }
}

impl Objective {
    /// ε̂ of a batch of predictions, image i at log-SNR `log_snr[i]` (or all at `log_snr[0]` when it holds
    /// one value): [`Conversion::eps`] with per-image coefficients. An ε model's prediction is returned as
    /// it is.
    pub fn eps_batch<const D: usize>(self, x_t: Tensor<D>, prediction: Tensor<D>, log_snr: &[f64]) -> Tensor<D> {
        if self == Objective::Eps {
            return prediction;
        }
        if let [single] = log_snr {
            return self.conversion_at(*single).eps(x_t, prediction);
        }
        let device = x_t.device();
        let mut dims = [1usize; D];
        dims[0] = log_snr.len();
        let column = |pick: fn(&Conversion) -> f64| {
            let values: Vec<f32> = log_snr.iter().map(|l| pick(&self.conversion_at(*l)) as f32).collect();
            Tensor::<D>::from_data(TensorData::new(values, dims), &device)
        };
        x_t.mul(column(|c| c.eps[0])).add(prediction.mul(column(|c| c.eps[1])))
    }
}

impl Conversion {
    /// The network's output, as the formulas name it.
    pub fn prediction_symbol(&self) -> &'static str {
        match self.objective {
            Objective::Eps => "ε̂_θ",
            Objective::X0 => "x̂_θ",
            Objective::V => "v̂_θ",
            Objective::Flow => "û_θ",
        }
    }

    /// The conversion as a learner reads it: what the network predicts, in one plain line, then ε̂ and x̂_0
    /// as formulas with the numbers this step used.
    pub fn lines(&self) -> [String; 3] {
        let p = self.prediction_symbol();
        let affine_text = |[a, b]: [f64; 2]| match (a, b) {
            (0.0, 1.0) => p.to_string(),
            (0.0, b) => format!("{} · {p}", super::equation::number_text(b)),
            (a, b) => format!(
                "{} · x_t {} {} · {p}",
                super::equation::number_text(a),
                if b < 0.0 { "-" } else { "+" },
                super::equation::number_text(b.abs())
            ),
        };
        let (plain, eps_form, x0_form) = match self.objective {
            Objective::Eps => (
                "The network predicts the noise ε: its output is ε̂, and x̂_0 follows from it.",
                "ε̂ = ε̂_θ",
                "x̂_0 = (x_t - σ ε̂_θ) / α",
            ),
            Objective::X0 => (
                "The network predicts the clean image x_0: its output is x̂_0, and ε̂ follows from it.",
                "ε̂ = (x_t - α x̂_θ) / σ",
                "x̂_0 = x̂_θ",
            ),
            Objective::V => (
                "The network predicts v = α ε - σ x_0 (Salimans & Ho 2022): x̂_0 and ε̂ are both read from it.",
                "ε̂ = σ x_t + α v̂_θ",
                "x̂_0 = α x_t - σ v̂_θ",
            ),
            Objective::Flow => (
                "The network predicts the flow velocity u = ε - x_0 of the straight path y = x/(α+σ): \
                 x̂_0 and ε̂ are read from it.",
                "ε̂ = (x_t + α û_θ) / (α + σ)",
                "x̂_0 = (x_t - σ û_θ) / (α + σ)",
            ),
        };
        let with_numbers = |form: &str, coefficients: [f64; 2]| match coefficients {
            [0.0, 1.0] => format!("{form}: the network's output as it is"),
            coefficients => format!("{form} = {}", affine_text(coefficients)),
        };
        [
            plain.to_string(),
            with_numbers(eps_form, self.eps),
            format!("{} (before clipping)", with_numbers(x0_form, self.x0)),
        ]
    }
}

fn affine<const D: usize>([a, b]: [f64; 2], x_t: Tensor<D>, prediction: Tensor<D>) -> Tensor<D> {
    match (a, b) {
        (0.0, 1.0) => prediction,
        (0.0, b) => prediction.mul_scalar(b),
        (a, b) => x_t.mul_scalar(a).add(prediction.mul_scalar(b)),
    }
}

/// (α, σ) = (sqrt(ᾱ), sqrt(1 - ᾱ)) with ᾱ = sigmoid(λ), each computed without cancellation.
pub fn alpha_sigma_from_log_snr(log_snr: f64) -> (f64, f64) {
    let alpha_bar = 1.0 / (1.0 + (-log_snr).exp());
    let one_minus_alpha_bar = 1.0 / (1.0 + log_snr.exp());
    (alpha_bar.sqrt(), one_minus_alpha_bar.sqrt())
}

/// The straight path's time t in [0, 1] (0 = data, 1 = noise) of log-SNR λ: (1 - t) / t = e^{λ/2}.
pub fn flow_time_from_log_snr(log_snr: f64) -> f64 {
    1.0 / (1.0 + (0.5 * log_snr).exp())
}

/// λ = 2 ln((1 - t) / t) of the straight path's time t in (0, 1).
pub fn log_snr_from_flow_time(t: f64) -> f64 {
    2.0 * ((1.0 - t) / t).ln()
}

/// ᾱ = (1 - t)² / ((1 - t)² + t²): the variance-preserving level that the straight path's y_t is a scaled
/// copy of.
pub fn alpha_bar_from_flow_time(t: f64) -> f64 {
    let (a, b) = ((1.0 - t) * (1.0 - t), t * t);
    a / (a + b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(log_snr: f64) -> (f64, f64) {
        let alpha_bar = 1.0 / (1.0 + (-log_snr).exp());
        (alpha_bar.sqrt(), (1.0 - alpha_bar).sqrt())
    }

    /// Each target, read back through the one conversion, gives the x_0 and ε it was made of.
    #[test]
    fn every_objective_reads_back_its_x0_and_eps() {
        for objective in Objective::ALL {
            for log_snr in [-15.0, -3.0, 0.0, 2.5, 9.0] {
                let (alpha, sigma) = level(log_snr);
                for (x0, eps) in [(0.7, -1.2), (-0.9, 0.3), (0.0, 2.0)] {
                    let x_t = alpha * x0 + sigma * eps;
                    let target = objective.target(x0, eps, alpha, sigma);
                    let (x0_hat, eps_hat) = objective.x0_and_eps(x_t, target, alpha, sigma);
                    let tolerance = 1e-9 / alpha.min(sigma);
                    assert!((x0_hat - x0).abs() < tolerance, "{objective} λ = {log_snr}: x̂_0 {x0_hat} vs {x0}");
                    assert!((eps_hat - eps).abs() < tolerance, "{objective} λ = {log_snr}: ε̂ {eps_hat} vs {eps}");
                }
            }
        }
    }

    /// A prediction off by δ costs w(λ) times its ε error: the weight that puts every loss in ε units.
    #[test]
    fn each_objectives_error_is_its_weight_times_the_eps_error() {
        for objective in Objective::ALL {
            for log_snr in [-6.0, -1.0, 0.0, 1.5, 6.0] {
                let (alpha, sigma) = level(log_snr);
                let (x0, eps) = (0.4, -0.8);
                let x_t = alpha * x0 + sigma * eps;
                let delta = 1e-3;
                let prediction = objective.target(x0, eps, alpha, sigma) + delta;
                let (_, eps_hat) = objective.x0_and_eps(x_t, prediction, alpha, sigma);
                let ratio = delta * delta / ((eps_hat - eps) * (eps_hat - eps));
                let weight = objective.eps_weight(log_snr);
                assert!((ratio / weight - 1.0).abs() < 1e-6, "{objective} λ = {log_snr}: {ratio} vs {weight}");
            }
        }
    }

    /// The straight path is the variance-preserving process scaled by 1 / (α + σ), at λ = 2 ln((1 - t) / t).
    #[test]
    fn the_straight_path_is_the_vp_process_scaled() {
        for t in [0.01, 0.2, 0.5, 0.8, 0.99] {
            let log_snr = log_snr_from_flow_time(t);
            assert!((flow_time_from_log_snr(log_snr) - t).abs() < 1e-12);
            let (alpha, sigma) = level(log_snr);
            assert!((alpha * alpha - alpha_bar_from_flow_time(t)).abs() < 1e-12);
            let (x0, eps) = (0.6, -1.1);
            let straight = (1.0 - t) * x0 + t * eps;
            let vp = alpha * x0 + sigma * eps;
            assert!((straight - vp / (alpha + sigma)).abs() < 1e-12, "t = {t}");
        }
    }

    /// Flow matching's Euler step from t to t' (y ← y + (t' - t) û) lands where DDIM's η = 0 step does
    /// (x' = α' x̂_0 + σ' ε̂), read in the same coordinates: the same update, not a new sampler.
    #[test]
    fn the_flow_euler_step_is_the_ddim_step() {
        let (t, t_next) = (0.7, 0.45);
        let (alpha, sigma) = level(log_snr_from_flow_time(t));
        let (alpha_next, sigma_next) = level(log_snr_from_flow_time(t_next));
        let (x_t, u_hat) = (0.35, -0.9);
        let y = x_t / (alpha + sigma);
        let y_next = y + (t_next - t) * u_hat;
        let (x0_hat, eps_hat) = Objective::Flow.x0_and_eps(x_t, u_hat, alpha, sigma);
        let ddim = alpha_next * x0_hat + sigma_next * eps_hat;
        assert!((y_next - ddim / (alpha_next + sigma_next)).abs() < 1e-12, "{y_next} vs {}", ddim);
    }

    /// The tensor conversion (f32, coefficients in f64) against the float64 reference, over the λ range
    /// models train on: exact up to f32 rounding of the values it combines.
    #[test]
    fn the_tensor_conversion_matches_the_float64_reference() {
        let device = Device::flex();
        let (x0, eps) = ([0.7, -0.9, 0.0, 1.0], [-1.2, 0.3, 2.0, -0.4]);
        for objective in Objective::ALL {
            for log_snr in [-20.0, -6.0, 0.0, 4.0, 10.0] {
                let (alpha, sigma) = alpha_sigma_from_log_snr(log_snr);
                let x_t: Vec<f64> = x0.iter().zip(&eps).map(|(x, e)| alpha * x + sigma * e).collect();
                let prediction: Vec<f64> =
                    x0.iter().zip(&eps).map(|(x, e)| objective.target(*x, *e, alpha, sigma)).collect();
                let tensor = |v: &[f64]| {
                    Tensor::<1>::from_data(
                        TensorData::new(v.iter().map(|x| *x as f32).collect::<Vec<_>>(), [4]),
                        &device,
                    )
                };
                let conversion = objective.conversion_at(log_snr);
                let read = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().unwrap();
                let eps_hat = read(conversion.eps(tensor(&x_t), tensor(&prediction)));
                let x0_hat = read(conversion.x0(tensor(&x_t), tensor(&prediction)));
                for i in 0..4 {
                    let (x0_ref, eps_ref) = objective.x0_and_eps(x_t[i], prediction[i], alpha, sigma);
                    assert!((x0_ref - x0[i]).abs() < 1e-6 / alpha.min(sigma), "{objective} float64 x̂_0");
                    assert!((eps_ref - eps[i]).abs() < 1e-6 / alpha.min(sigma), "{objective} float64 ε̂");
                    // Each f32 input carries a relative rounding of 2^-24, which the coefficients scale.
                    let [a, b] = conversion.eps;
                    let eps_tolerance = 1e-6 * (a.abs() * x_t[i].abs() + b.abs() * prediction[i].abs()) + 1e-6;
                    let [c, d] = conversion.x0;
                    let x0_tolerance = 1e-6 * (c.abs() * x_t[i].abs() + d.abs() * prediction[i].abs()) + 1e-6;
                    assert!(
                        (f64::from(eps_hat[i]) - eps_ref).abs() < eps_tolerance,
                        "{objective} λ = {log_snr}: ε̂ {} vs {eps_ref}",
                        eps_hat[i]
                    );
                    assert!(
                        (f64::from(x0_hat[i]) - x0_ref).abs() < x0_tolerance,
                        "{objective} λ = {log_snr}: x̂_0 {} vs {x0_ref}",
                        x0_hat[i]
                    );
                }
            }
        }
    }

    /// Every sampler runs every objective: a network that predicts each objective's exact target for data
    /// that is one point c, read through its conversion, brings every method's plan to c.
    #[test]
    fn every_sampler_reaches_a_point_mass_from_every_objectives_prediction() {
        use crate::diffusion::sampler::{DdpmVariance, Method, Sampler, Spacing};
        let device = Device::flex();
        let schedule = crate::diffusion::BetaSchedule::cosine(1000).build().unwrap();
        let c = [0.4f32, -0.3];
        let target = |objective: Objective, x: &Tensor<1>, log_snr: f64| {
            let (alpha, sigma) = alpha_sigma_from_log_snr(log_snr);
            let x: Vec<f32> = x.clone().into_data().try_to_vec().unwrap();
            let prediction: Vec<f32> = x
                .iter()
                .zip(&c)
                .map(|(x, c)| {
                    let eps = (f64::from(*x) - alpha * f64::from(*c)) / sigma;
                    objective.target(f64::from(*c), eps, alpha, sigma) as f32
                })
                .collect();
            Tensor::<1>::from_data(TensorData::new(prediction, [2]), &device)
        };
        for objective in Objective::ALL {
            for method in Method::ALL {
                let sampler = Sampler {
                    method,
                    steps: 10,
                    spacing: Spacing::Trailing,
                    eta: 0.0,
                    ddpm_variance: DdpmVariance::BetaTilde,
                    clip_x0: true,
                };
                let plan = sampler.plan(&schedule).unwrap().with_x0_bound(1.0);
                let mut noise = crate::diffusion::NoiseSource::new(4);
                let mut x = noise.tensor([2], &device);
                let mut previous_x0 = None;
                let eps_of = |x: Tensor<1>, log_snr: f64| {
                    objective.conversion_at(log_snr).eps(x.clone(), target(objective, &x, log_snr))
                };
                for i in 0..plan.len() {
                    let step = plan.steps[i];
                    let eps = eps_of(x.clone(), step.log_snr);
                    let z = plan.needs_noise(i).then(|| noise.tensor([2], &device));
                    let mut evaluate = |x: Tensor<1>, log_snr: f64| eps_of(x, log_snr);
                    let out = plan.step(i, x, eps, z, previous_x0.as_ref(), &mut evaluate);
                    x = out.x_prev;
                    previous_x0 = Some(out.x0_pred);
                }
                let end: Vec<f32> = x.into_data().try_to_vec().unwrap();
                for (e, c) in end.iter().zip(&c) {
                    assert!((e - c).abs() < 1e-3, "{objective} with {method:?}: ended at {end:?}, not {c:?}");
                }
            }
        }
    }

    #[test]
    fn names_parse_and_unknown_ones_are_named() {
        for objective in Objective::ALL {
            assert_eq!(objective.name().parse::<Objective>().unwrap(), objective);
        }
        assert_eq!("Velocity".parse::<Objective>().unwrap(), Objective::Flow);
        let error = "score".parse::<Objective>().unwrap_err().to_string();
        assert!(error.contains("score") && error.contains("eps, x0, v, flow"), "{error}");
        assert_eq!(Objective::default(), Objective::Eps, "old checkpoints load as ε models");
    }

    #[test]
    fn objectives_round_trip_in_json_and_ron_and_a_missing_one_is_eps() {
        #[derive(Serialize, Deserialize)]
        struct Saved {
            #[allow(dead_code)]
            other: u32,
            objective: Objective,
        }
        for objective in Objective::ALL {
            let json = serde_json::to_string(&Saved { other: 1, objective }).unwrap();
            assert!(json.contains(&format!("\"{}\"", objective.name())), "{json}");
            assert_eq!(serde_json::from_str::<Saved>(&json).unwrap().objective, objective);
            let ron = ron::to_string(&Saved { other: 1, objective }).unwrap();
            assert_eq!(ron::from_str::<Saved>(&ron).unwrap().objective, objective, "{ron}");
        }
        assert_eq!(serde_json::from_str::<Saved>(r#"{"other": 1}"#).unwrap().objective, Objective::Eps);
        assert!(serde_json::from_str::<Saved>(r#"{"other": 1, "objective": "score"}"#).is_err());
    }
}
