//! Training recipes' noise levels and loss weights, each written as what it does to the ELBO: a density
//! p(λ) over the log-SNR the network is trained at, and a weight w(λ) on the ε loss ||ε̂ - ε||² there
//! (Kingma & Gao 2023, "Understanding diffusion objectives as the ELBO with simple data augmentation").
//! p(λ)·w(λ) is then how much each noise level counts, in ε-loss units, for every recipe on one axis.
//!
//! - min-SNR-γ (Hang et al. 2023): the ε loss times min(SNR, γ) / SNR, SNR = e^λ;
//! - EDM (Karras et al. 2022, without its preconditioning): ln σ ~ N(P_mean, P_std²) with σ = e^{-λ/2}
//!   (the σ of x / α = x_0 + σ ε), and the x_0 loss weighted by (σ² + σ_data²) / (σ σ_data)²; since
//!   ||x̂_0 - x_0||² = σ² ||ε̂ - ε||², that is the ε loss times 1 + σ² / σ_data²;
//! - flow matching (Lipman et al. 2022; Esser et al. 2024): the velocity loss at t uniform in [0, 1] or
//!   logit-normal (logit t ~ N(m, s²)); with λ = 2 ln((1 - t) / t), the velocity loss is the ε loss times
//!   (1 + e^{-λ/2})² ([`super::objective::Objective::eps_weight`]).

use serde::{Deserialize, Serialize};

use super::objective::Objective;

/// A recipe's noise-level distribution and loss weight (its target is a separate choice: see
/// [`super::objective::Objective`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", remote = "Self")]
pub enum Weighting {
    /// The objective's own squared error, unweighted, at the trainer's noise levels
    /// (`train::ddpm::LogSnrDistribution`): DDPM's recipe for an ε model, and every model before recipes.
    #[default]
    Plain,
    /// The ε loss with min(SNR, γ) / SNR: noise levels where the image is nearly clean count less.
    MinSnr { gamma: f64 },
    /// EDM's log-normal σ and its weight; σ_data is measured on the data.
    Edm { p_mean: f64, p_std: f64, sigma_data: f64 },
    /// Flow matching with t uniform in [0, 1].
    FlowUniform,
    /// Flow matching with logit t ~ N(mean, std²) (SD3's default: 0, 1).
    FlowLogitNormal { mean: f64, std: f64 },
}

/// The tagged form, written as an option's `Some` (JSON writes it as it is; RON as `Some(…)`) so that
/// reading it back through `deserialize_option` works in every format.
#[derive(Serialize, Deserialize)]
struct Tagged(#[serde(with = "Weighting")] Weighting);

impl Serialize for Weighting {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_some(&Tagged(*self))
    }
}

/// A training config saved before weightings existed has no such field (or `null`): plain, what it
/// trained with. (A missing field is deserialized through `deserialize_option`, which gives `None`.)
impl<'de> Deserialize<'de> for Weighting {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let tagged: Option<Tagged> = Option::deserialize(deserializer)?;
        Ok(tagged.map_or(Weighting::Plain, |t| t.0))
    }
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum WeightingError {
    #[error("min-SNR γ must be above 0, got {0}")]
    Gamma(f64),
    #[error("{what} must be above 0, got {value}")]
    Positive { what: &'static str, value: f64 },
    #[error("unknown weighting `{0}`: use one of plain, min-snr[:γ], edm[:σ_data], uniform-t, logit-normal[:mean,std]")]
    Unknown(String),
    #[error("weighting `{0}`: its numbers do not parse")]
    Numbers(String),
}

impl std::str::FromStr for Weighting {
    type Err = WeightingError;

    /// `plain`, `min-snr` (γ = 5) or `min-snr:γ`, `edm` (σ_data measured on the data) or `edm:σ_data`,
    /// `uniform-t`, `logit-normal` (0, 1) or `logit-normal:mean,std`; the result is validated.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim().to_ascii_lowercase();
        let (name, numbers) = match text.split_once([':', '=']) {
            Some((name, numbers)) => (name.trim(), Some(numbers.trim())),
            None => (text.as_str(), None),
        };
        let numbers_error = || WeightingError::Numbers(s.trim().to_owned());
        let parsed: Vec<f64> = match numbers {
            Some(numbers) => numbers
                .split(',')
                .map(|n| n.trim().parse::<f64>().map_err(|_| numbers_error()))
                .collect::<Result<_, _>>()?,
            None => Vec::new(),
        };
        let weighting = match (name, parsed.as_slice()) {
            ("plain" | "ddpm" | "uniform", []) => Weighting::Plain,
            ("min-snr" | "minsnr" | "min_snr", []) => Weighting::MinSnr { gamma: 5.0 },
            ("min-snr" | "minsnr" | "min_snr", [gamma]) => Weighting::MinSnr { gamma: *gamma },
            ("edm", []) => Weighting::Edm { p_mean: -1.2, p_std: 1.2, sigma_data: 0.0 },
            ("edm", [sigma_data]) => Weighting::edm(*sigma_data),
            ("uniform-t" | "flow" | "flow-uniform", []) => Weighting::FlowUniform,
            ("logit-normal" | "logitnormal", []) => Weighting::FlowLogitNormal { mean: 0.0, std: 1.0 },
            ("logit-normal" | "logitnormal", [mean, std]) => Weighting::FlowLogitNormal { mean: *mean, std: *std },
            (
                "plain" | "ddpm" | "uniform" | "min-snr" | "minsnr" | "min_snr" | "edm" | "uniform-t" | "flow"
                | "flow-uniform" | "logit-normal" | "logitnormal",
                _,
            ) => return Err(numbers_error()),
            _ => return Err(WeightingError::Unknown(s.trim().to_owned())),
        };
        if !weighting.needs_sigma_data() {
            weighting.validate()?;
        }
        Ok(weighting)
    }
}

impl Weighting {
    /// Karras et al.'s values (P_mean = -1.2, P_std = 1.2) with the data's σ_data.
    pub fn edm(sigma_data: f64) -> Self {
        Weighting::Edm { p_mean: -1.2, p_std: 1.2, sigma_data }
    }

    pub fn validate(&self) -> Result<(), WeightingError> {
        let positive = |what, value: f64| match value > 0.0 && value.is_finite() {
            true => Ok(()),
            false => Err(WeightingError::Positive { what, value }),
        };
        match *self {
            Weighting::MinSnr { gamma } if !(gamma > 0.0 && gamma.is_finite()) => Err(WeightingError::Gamma(gamma)),
            Weighting::Plain | Weighting::MinSnr { .. } | Weighting::FlowUniform => Ok(()),
            Weighting::Edm { p_std, sigma_data, .. } => {
                positive("EDM's P_std", p_std).and(positive("σ_data", sigma_data))
            }
            Weighting::FlowLogitNormal { std, .. } => positive("the logit-normal's std", std),
        }
    }

    /// The weight w(λ) on ||ε̂ - ε||² at log-SNR λ, for a model of `objective` (which only the plain
    /// weighting depends on: it is the objective's own).
    pub fn eps_weight(&self, objective: Objective, log_snr: f64) -> f64 {
        match *self {
            Weighting::Plain => objective.eps_weight(log_snr),
            Weighting::MinSnr { gamma } => gamma.min(log_snr.exp()) / log_snr.exp(),
            Weighting::Edm { sigma_data, .. } => 1.0 + (-log_snr).exp() / (sigma_data * sigma_data),
            Weighting::FlowUniform | Weighting::FlowLogitNormal { .. } => (1.0 + (-0.5 * log_snr).exp()).powi(2),
        }
    }

    /// The density p(λ) of the log-SNR a training step draws; `None` for the plain and min-SNR
    /// weightings, which keep the trainer's own distribution of λ.
    pub fn log_snr_density(&self, log_snr: f64) -> Option<f64> {
        match *self {
            Weighting::Plain | Weighting::MinSnr { .. } => None,
            // λ = -2 ln σ with ln σ ~ N(P_mean, P_std²).
            Weighting::Edm { p_mean, p_std, .. } => Some(normal_density(log_snr, -2.0 * p_mean, 2.0 * p_std)),
            // t = 1 / (1 + e^{λ/2}): |dt/dλ| = t (1 - t) / 2.
            Weighting::FlowUniform => {
                let t = super::objective::flow_time_from_log_snr(log_snr);
                Some(0.5 * t * (1.0 - t))
            }
            // logit t = -λ/2 ~ N(mean, std²).
            Weighting::FlowLogitNormal { mean, std } => Some(normal_density(log_snr, -2.0 * mean, 2.0 * std)),
        }
    }

    /// p(λ)·w(λ): how much the recipe counts noise level λ, in ε-loss units (`None` as for the density).
    pub fn elbo_weight(&self, objective: Objective, log_snr: f64) -> Option<f64> {
        self.log_snr_density(log_snr).map(|p| p * self.eps_weight(objective, log_snr))
    }

    /// A draw of λ from this weighting's own distribution, from one uniform `u` in (0, 1) and one standard
    /// normal `n`; `None` where the trainer's distribution applies.
    pub fn draw_log_snr(&self, u: f64, n: f64) -> Option<f64> {
        match *self {
            Weighting::Plain | Weighting::MinSnr { .. } => None,
            Weighting::Edm { p_mean, p_std, .. } => Some(-2.0 * (p_mean + p_std * n)),
            Weighting::FlowUniform => Some(super::objective::log_snr_from_flow_time(u.clamp(1e-12, 1.0 - 1e-12))),
            Weighting::FlowLogitNormal { mean, std } => Some(-2.0 * (mean + std * n)),
        }
    }

    /// Whether σ_data is still to be measured on the data (`edm` given without a value).
    pub fn needs_sigma_data(&self) -> bool {
        matches!(*self, Weighting::Edm { sigma_data, .. } if sigma_data == 0.0)
    }

    /// This weighting with EDM's σ_data set to `measured` where it was left to be measured.
    pub fn with_measured_sigma_data(self, measured: f64) -> Self {
        match self {
            Weighting::Edm { p_mean, p_std, .. } if self.needs_sigma_data() => {
                Weighting::Edm { p_mean, p_std, sigma_data: measured }
            }
            other => other,
        }
    }

    /// The name on the command line (with its numbers where they are not the defaults').
    pub fn name(&self) -> String {
        match *self {
            Weighting::Plain => "plain".into(),
            Weighting::MinSnr { gamma } => format!("min-snr:{gamma}"),
            Weighting::Edm { sigma_data: 0.0, .. } => "edm".into(),
            Weighting::Edm { sigma_data, .. } => format!("edm:{sigma_data}"),
            Weighting::FlowUniform => "uniform-t".into(),
            Weighting::FlowLogitNormal { mean, std } => format!("logit-normal:{mean},{std}"),
        }
    }

    /// What it does, as a learner reads it.
    pub fn label(&self) -> String {
        match *self {
            Weighting::Plain => "plain (the target's own squared error)".into(),
            Weighting::MinSnr { gamma } => format!("min-SNR-γ, γ = {gamma}"),
            Weighting::Edm { sigma_data: 0.0, .. } => "EDM (σ_data measured on the data)".into(),
            Weighting::Edm { sigma_data, .. } => format!("EDM, σ_data = {sigma_data:.3}"),
            Weighting::FlowUniform => "flow matching, t uniform".into(),
            Weighting::FlowLogitNormal { mean, std } => format!("flow matching, logit-normal t ({mean}, {std})"),
        }
    }

    /// The weightings a learner picks from, with their usual numbers (EDM's σ_data to be measured).
    pub const CHOICES: [Weighting; 5] = [
        Weighting::Plain,
        Weighting::MinSnr { gamma: 5.0 },
        Weighting::Edm { p_mean: -1.2, p_std: 1.2, sigma_data: 0.0 },
        Weighting::FlowUniform,
        Weighting::FlowLogitNormal { mean: 0.0, std: 1.0 },
    ];
}

fn normal_density(x: f64, mean: f64, std: f64) -> f64 {
    let z = (x - mean) / std;
    (-0.5 * z * z).exp() / (std * (2.0 * std::f64::consts::PI).sqrt())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ∫ f(λ) dλ over a range that holds every recipe's mass, by the trapezoid rule.
    fn integral(f: impl Fn(f64) -> f64) -> f64 {
        let (low, high, n) = (-60.0, 60.0, 120_000);
        let h = (high - low) / n as f64;
        (0..=n).map(|i| f(low + i as f64 * h) * if i == 0 || i == n { 0.5 } else { 1.0 }).sum::<f64>() * h
    }

    #[test]
    fn every_noise_level_density_integrates_to_one() {
        for weighting in
            [Weighting::edm(0.5), Weighting::FlowUniform, Weighting::FlowLogitNormal { mean: 0.0, std: 1.0 }]
        {
            let total = integral(|l| weighting.log_snr_density(l).unwrap());
            assert!((total - 1.0).abs() < 1e-6, "{weighting:?}: {total}");
        }
    }

    /// Flow matching's uniform t, mapped to λ: the share of draws below λ is 1 - t(λ).
    #[test]
    fn uniform_time_is_the_logistic_density_in_log_snr() {
        let weighting = Weighting::FlowUniform;
        for cut in [-4.0, 0.0, 3.0] {
            let below = integral(|l| if l < cut { weighting.log_snr_density(l).unwrap() } else { 0.0 });
            let expected = 1.0 - super::super::objective::flow_time_from_log_snr(cut);
            assert!((below - expected).abs() < 1e-4, "λ < {cut}: {below} vs {expected}");
        }
    }

    /// EDM's weight on the x_0 loss, (σ² + σ_d²) / (σ σ_d)², is 1 + σ²/σ_d² on the ε loss
    /// (||x̂_0 - x_0||² = σ² ||ε̂ - ε||² with σ = e^{-λ/2}).
    #[test]
    fn edms_weight_in_eps_units() {
        let sigma_data = 0.5;
        let weighting = Weighting::edm(sigma_data);
        for log_snr in [-8.0_f64, 0.0, 5.0] {
            let sigma: f64 = (-0.5 * log_snr).exp();
            let x0_weight = (sigma * sigma + sigma_data * sigma_data) / (sigma * sigma_data).powi(2);
            let expected = x0_weight * sigma * sigma;
            assert!((weighting.eps_weight(Objective::Eps, log_snr) / expected - 1.0).abs() < 1e-12, "λ = {log_snr}");
        }
    }

    #[test]
    fn min_snr_leaves_noisy_levels_alone_and_caps_clean_ones() {
        let weighting = Weighting::MinSnr { gamma: 5.0 };
        assert_eq!(weighting.eps_weight(Objective::Eps, 0.0), 1.0);
        assert_eq!(weighting.eps_weight(Objective::Eps, -10.0), 1.0);
        assert!((weighting.eps_weight(Objective::X0, 5.0_f64.ln() + 2.0) - (-2.0_f64).exp()).abs() < 1e-12);
        assert_eq!(weighting.log_snr_density(1.0), None);
        assert!(Weighting::MinSnr { gamma: 0.0 }.validate().unwrap_err().to_string().contains("γ must be above 0"));
        assert!(Weighting::MinSnr { gamma: -1.0 }.validate().is_err());
        assert!(Weighting::edm(0.0).validate().unwrap_err().to_string().contains("σ_data"));
        assert!(Weighting::FlowLogitNormal { mean: 0.0, std: f64::NAN }.validate().is_err());
    }

    #[test]
    fn weightings_parse_and_bad_ones_are_named() {
        assert_eq!("plain".parse::<Weighting>().unwrap(), Weighting::Plain);
        assert_eq!("min-snr".parse::<Weighting>().unwrap(), Weighting::MinSnr { gamma: 5.0 });
        assert_eq!("min-snr:3".parse::<Weighting>().unwrap(), Weighting::MinSnr { gamma: 3.0 });
        assert!("edm".parse::<Weighting>().unwrap().needs_sigma_data());
        assert_eq!("edm:0.5".parse::<Weighting>().unwrap(), Weighting::edm(0.5));
        assert_eq!(
            "logit-normal:0.5,1".parse::<Weighting>().unwrap(),
            Weighting::FlowLogitNormal { mean: 0.5, std: 1.0 }
        );
        for choice in Weighting::CHOICES {
            assert_eq!(choice.name().parse::<Weighting>().unwrap(), choice, "{}", choice.name());
        }
        let gamma = "min-snr:0".parse::<Weighting>().unwrap_err().to_string();
        assert!(gamma.contains("γ must be above 0"), "{gamma}");
        assert!("min-snr:-2".parse::<Weighting>().is_err());
        let unknown = "snr-ish".parse::<Weighting>().unwrap_err().to_string();
        assert!(unknown.contains("snr-ish") && unknown.contains("min-snr"), "{unknown}");
        assert!("min-snr:x".parse::<Weighting>().unwrap_err().to_string().contains("do not parse"));
        let measured = "edm".parse::<Weighting>().unwrap().with_measured_sigma_data(0.4);
        assert_eq!(measured, Weighting::edm(0.4));
    }

    /// Each weighting's own draws of λ follow its density.
    #[test]
    fn draws_follow_the_density() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for weighting in
            [Weighting::edm(0.5), Weighting::FlowUniform, Weighting::FlowLogitNormal { mean: 0.0, std: 1.0 }]
        {
            let n = 40_000;
            let below = (0..n)
                .filter(|_| {
                    let (u, z): (f64, f64) =
                        (rng.random(), rand_distr::Distribution::sample(&rand_distr::StandardNormal, &mut rng));
                    weighting.draw_log_snr(u, z).unwrap() < 1.0
                })
                .count() as f64
                / n as f64;
            let expected = integral(|l| if l < 1.0 { weighting.log_snr_density(l).unwrap() } else { 0.0 });
            assert!((below - expected).abs() < 0.01, "{weighting:?}: {below} vs {expected}");
        }
    }

    /// Saved configs read back, and one from before weightings (no field, or null) reads as plain.
    #[test]
    fn weightings_round_trip_and_a_missing_one_is_plain() {
        #[derive(Serialize, Deserialize)]
        struct Saved {
            #[allow(dead_code)]
            other: u32,
            weighting: Weighting,
        }
        for weighting in Weighting::CHOICES.map(|w| w.with_measured_sigma_data(0.4)) {
            let json = serde_json::to_string(&Saved { other: 1, weighting }).unwrap();
            assert_eq!(serde_json::from_str::<Saved>(&json).unwrap().weighting, weighting, "{json}");
        }
        assert_eq!(serde_json::from_str::<Saved>(r#"{"other": 1}"#).unwrap().weighting, Weighting::Plain);
        assert_eq!(
            serde_json::from_str::<Saved>(r#"{"other": 1, "weighting": null}"#).unwrap().weighting,
            Weighting::Plain
        );
        assert!(serde_json::from_str::<Saved>(r#"{"other": 1, "weighting": {"kind": "loud"}}"#).is_err());
        // RON (eframe's storage) reads back what it wrote.
        for weighting in Weighting::CHOICES {
            let ron = ron::to_string(&Saved { other: 1, weighting }).unwrap();
            assert_eq!(ron::from_str::<Saved>(&ron).unwrap().weighting, weighting, "{ron}");
        }
    }

    /// The flow recipe's weight is its objective's: the same number from both sides.
    #[test]
    fn the_flow_weight_is_the_velocity_objectives() {
        for log_snr in [-5.0, 0.0, 4.0] {
            let objective = Objective::Flow.eps_weight(log_snr);
            assert_eq!(Weighting::FlowUniform.eps_weight(Objective::Eps, log_snr), objective);
            assert_eq!(Weighting::Plain.eps_weight(Objective::Flow, log_snr), objective);
        }
    }
}
