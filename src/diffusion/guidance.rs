//! Guidance methods: how a conditional model's predictions (or, for autoguidance, two models' predictions)
//! become the one prediction a sampler steps with. One place for the math of every method, each as its
//! paper's pseudo-code writes it, on burn tensors of any rank whose first dimension is the batch (images
//! [batch, c, h, w], the 2-D lab's points [batch, 2]). Which branches to evaluate and where each method acts
//! (ε̂, the network's own prediction, x̂_0) is the caller's; the formulas are here.
//!
//! With ε̂_Ø = ε_θ(x_t, Ø), ε̂_y = ε_θ(x_t, y) and w the scale:
//!   cfg      (Ho & Salimans 2022)   ε̂ = ε̂_Ø + w (ε̂_y - ε̂_Ø)
//!   rescale  (Lin et al. 2024)      x_cfg as CFG, x = φ x_cfg σ(x_y)/σ(x_cfg) + (1 - φ) x_cfg, σ per sample
//!   apg      (Sadat et al. 2024)    on x̂_0: Δ = x̂_y - x̂_Ø through momentum and a norm limit, split along x̂_y,
//!                                   x̂ = x̂_y + (w - 1) (Δ_perp + η Δ_par)
//!   cfgpp    (Chung et al. 2024)    x̂_0 from ε̂_Ø + λ (ε̂_y - ε̂_Ø), λ ∈ [0, 1], renoised with ε̂_Ø (the update changes)
//!   auto     (Karras et al. 2024)   ε̂ = ε̂_weak,y + w (ε̂_y - ε̂_weak,y), a weaker model of the same kind guiding

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use super::sampler::Method as SamplerMethod;

/// How the guided prediction is made (see the module's documentation for each formula).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum GuidanceMethod {
    #[default]
    #[serde(rename = "cfg")]
    Cfg,
    #[serde(rename = "rescale")]
    Rescale,
    #[serde(rename = "apg")]
    Apg,
    #[serde(rename = "cfgpp")]
    CfgPlusPlus,
    #[serde(rename = "auto")]
    Auto,
}

impl GuidanceMethod {
    pub const ALL: [GuidanceMethod; 5] = [
        GuidanceMethod::Cfg,
        GuidanceMethod::Rescale,
        GuidanceMethod::Apg,
        GuidanceMethod::CfgPlusPlus,
        GuidanceMethod::Auto,
    ];

    /// The name on the command line and in saved settings.
    pub fn name(self) -> &'static str {
        match self {
            GuidanceMethod::Cfg => "cfg",
            GuidanceMethod::Rescale => "rescale",
            GuidanceMethod::Apg => "apg",
            GuidanceMethod::CfgPlusPlus => "cfgpp",
            GuidanceMethod::Auto => "auto",
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            GuidanceMethod::Cfg => "Classifier-free guidance",
            GuidanceMethod::Rescale => "CFG + rescale",
            GuidanceMethod::Apg => "Adaptive projected guidance",
            GuidanceMethod::CfgPlusPlus => "CFG++",
            GuidanceMethod::Auto => "Autoguidance",
        }
    }

    /// The paper that defines the method.
    pub fn paper(self) -> &'static str {
        match self {
            GuidanceMethod::Cfg => "Ho & Salimans 2022, Classifier-free diffusion guidance",
            GuidanceMethod::Rescale => {
                "Lin et al. 2024, Common diffusion noise schedules and sample steps are flawed (Sec. 3.4, Alg. 2)"
            }
            GuidanceMethod::Apg => {
                "Sadat et al. 2024, Eliminating oversaturation and artifacts of high guidance scales (Alg. 1)"
            }
            GuidanceMethod::CfgPlusPlus => "Chung et al. 2024, CFG++: manifold-constrained classifier free guidance",
            GuidanceMethod::Auto => "Karras et al. 2024, Guiding a diffusion model with a bad version of itself",
        }
    }

    /// The method's formula, as "This step" and `--help` print it.
    pub fn formula(self) -> &'static str {
        match self {
            GuidanceMethod::Cfg => "ε̂ = ε̂_Ø + w (ε̂_y - ε̂_Ø)",
            GuidanceMethod::Rescale => "x = φ x_cfg σ(x_y)/σ(x_cfg) + (1 - φ) x_cfg, x_cfg = x_Ø + w (x_y - x_Ø)",
            GuidanceMethod::Apg => "x̂_0 = x̂_y + (w - 1) (Δ_perp + η Δ_par), Δ = x̂_y - x̂_Ø + β Δ_prev, |Δ| ≤ r",
            GuidanceMethod::CfgPlusPlus => "x̂_0 from ε̂_Ø + λ (ε̂_y - ε̂_Ø), renoised with ε̂_Ø",
            GuidanceMethod::Auto => "ε̂ = ε̂_weak + w (ε̂_y - ε̂_weak)",
        }
    }

    /// The scale used when none is given: the paper's own where it recommends one. CFG keeps the app's
    /// measured default ([`DEFAULT_CFG_SCALE`]): Ho & Salimans trade FID against IS over w and name no one
    /// scale for every model.
    pub fn default_scale(self) -> f64 {
        match self {
            GuidanceMethod::Cfg => DEFAULT_CFG_SCALE,
            // Lin et al. sample Stable Diffusion at w = 7.5 with φ = 0.7.
            GuidanceMethod::Rescale => 7.5,
            // APG is made for the high scales Stable Diffusion is used at (the paper's comparisons).
            GuidanceMethod::Apg => 7.5,
            // Chung et al. set λ = 0.6 where CFG uses 7.5 in their text-to-image comparisons.
            GuidanceMethod::CfgPlusPlus => 0.6,
            // Karras et al.: EDM2-S guided by its XS version at w = 2.25 (FID 1.34 on ImageNet-512).
            GuidanceMethod::Auto => 2.25,
        }
    }

    /// The scales the method accepts: [0, ∞) for w, [0, 1] for CFG++'s λ.
    pub fn scale_range(self) -> (f64, f64) {
        match self {
            GuidanceMethod::CfgPlusPlus => (0.0, 1.0),
            _ => (0.0, f64::INFINITY),
        }
    }

    /// Whether the guidance compares against the unconditional branch (autoguidance compares two models'
    /// conditional predictions instead).
    pub fn uses_unconditional(self) -> bool {
        self != GuidanceMethod::Auto
    }
}

impl std::fmt::Display for GuidanceMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for GuidanceMethod {
    type Err = GuidanceError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace("++", "pp");
        GuidanceMethod::ALL
            .into_iter()
            .find(|m| m.name() == wanted)
            .ok_or_else(|| GuidanceError::UnknownMethod(s.to_owned()))
    }
}

/// The classifier-free guidance w the app starts with (measured on the built-in models; see
/// `model::denoise::DEFAULT_GUIDANCE`, which is this value).
pub const DEFAULT_CFG_SCALE: f64 = 1.5;

/// Lin et al.'s φ: how much of the rescaled prediction is mixed in (their Fig. and Alg. 2 use 0.7).
pub const DEFAULT_RESCALE_PHI: f64 = 0.7;

/// APG's parameters: η weighs the parallel part of the update, β the momentum (negative: each step is
/// pushed away from the previous steps' direction), r the largest norm of the update per sample (0: no
/// limit). Defaults as in the authors' released Algorithm 1 code: β = -0.75, η = 0, r = 2.5.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApgParams {
    pub eta: f64,
    pub momentum: f64,
    pub threshold: f64,
}

impl Default for ApgParams {
    fn default() -> Self {
        Self { eta: 0.0, momentum: -0.75, threshold: 2.5 }
    }
}

/// A method and its own parameters (the scale and interval are [`Guidance`]'s, shared by every method).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct GuidanceParams {
    #[serde(default)]
    pub method: GuidanceMethod,
    /// Rescale's φ in [0, 1].
    #[serde(default = "default_phi")]
    pub rescale_phi: f64,
    #[serde(default)]
    pub apg: ApgParams,
}

fn default_phi() -> f64 {
    DEFAULT_RESCALE_PHI
}

impl Default for GuidanceParams {
    fn default() -> Self {
        Self { method: GuidanceMethod::Cfg, rescale_phi: DEFAULT_RESCALE_PHI, apg: ApgParams::default() }
    }
}

impl GuidanceParams {
    pub fn of(method: GuidanceMethod) -> Self {
        Self { method, ..Self::default() }
    }

    /// Plain CFG with every parameter at its default: what settings written before methods existed mean,
    /// left out of saved settings so that they stay as they were.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Guidance as a run applies it: the method and its parameters, the scale (w, or CFG++'s λ), and
/// optionally a λ interval outside which it is off (the conditional model alone, w = 1; Kynkäänniemi et al.
/// 2024, "Applying guidance in a limited interval improves sample and distribution quality").
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Guidance {
    pub scale: f64,
    /// [lowest λ, highest λ] where the method applies.
    pub interval: Option<[f64; 2]>,
    pub params: GuidanceParams,
}

impl From<f64> for Guidance {
    fn from(scale: f64) -> Self {
        Self { scale, interval: None, params: GuidanceParams::default() }
    }
}

impl Guidance {
    /// Whether the method applies at noise level λ = `log_snr` (inside the interval, or no interval).
    pub fn applies_at(&self, log_snr: f64) -> bool {
        match self.interval {
            Some([low, high]) => (low..=high).contains(&log_snr),
            None => true,
        }
    }

    /// The scale used at noise level λ = `log_snr`: 1 (the conditional model alone) outside the interval.
    pub fn scale_at(&self, log_snr: f64) -> f64 {
        if self.applies_at(log_snr) { self.scale } else { 1.0 }
    }

    /// The method at λ: outside the interval every method is plain CFG at w = 1 (the conditional model, its
    /// own update).
    pub fn method_at(&self, log_snr: f64) -> GuidanceMethod {
        if self.applies_at(log_snr) { self.params.method } else { GuidanceMethod::Cfg }
    }

    /// Every value in range, one error naming the first one that is not.
    pub fn validate(&self) -> Result<(), GuidanceError> {
        let method = self.params.method;
        let (low, high) = method.scale_range();
        if !(self.scale.is_finite() && (low..=high).contains(&self.scale)) {
            return Err(match method {
                GuidanceMethod::CfgPlusPlus => GuidanceError::CfgPlusPlusScale(self.scale),
                _ => GuidanceError::Scale(self.scale),
            });
        }
        if let Some([low, high]) = self.interval
            && (low.is_nan() || high.is_nan() || low > high)
        {
            return Err(GuidanceError::Interval(low, high));
        }
        let phi = self.params.rescale_phi;
        if method == GuidanceMethod::Rescale && !(0.0..=1.0).contains(&phi) {
            return Err(GuidanceError::Phi(phi));
        }
        let apg = self.params.apg;
        if method == GuidanceMethod::Apg {
            if !(0.0..=1.0).contains(&apg.eta) {
                return Err(GuidanceError::ApgEta(apg.eta));
            }
            if !(apg.momentum.is_finite() && apg.momentum.abs() < 1.0) {
                return Err(GuidanceError::ApgMomentum(apg.momentum));
            }
            if !(apg.threshold.is_finite() && apg.threshold >= 0.0) {
                return Err(GuidanceError::ApgThreshold(apg.threshold));
            }
        }
        Ok(())
    }
}

/// What can be wrong with a guidance setting: one line each.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GuidanceError {
    #[error("unknown guidance method `{0}`: use one of cfg, rescale, apg, cfgpp, auto")]
    UnknownMethod(String),
    #[error("guidance must be a finite number of at least 0, got {0}")]
    Scale(f64),
    #[error("CFG++'s guidance λ must be in [0, 1], got {0}")]
    CfgPlusPlusScale(f64),
    #[error("the guidance interval must be two noise levels λ from low to high, got {0} to {1}")]
    Interval(f64, f64),
    #[error("guidance rescale φ must be in [0, 1], got {0}")]
    Phi(f64),
    #[error("APG's η (the weight of the parallel part) must be in [0, 1], got {0}")]
    ApgEta(f64),
    #[error("APG's momentum β must be in (-1, 1), got {0}")]
    ApgMomentum(f64),
    #[error("APG's norm threshold r must be a finite number of at least 0 (0: no limit), got {0}")]
    ApgThreshold(f64),
    #[error("CFG++ cannot run on {sampler}: {reason}")]
    CfgPlusPlusSampler { sampler: &'static str, reason: &'static str },
}

/// Whether CFG++ can run on a sampler: its update must renoise x̂_0 with one ε̂ that CFG++ can replace by
/// ε̂_Ø. Chung et al. give DDIM, Euler ancestral and DPM++ 2M; every other sampler is refused with why.
pub fn cfgpp_supports(sampler: SamplerMethod) -> Result<(), GuidanceError> {
    let reason = match sampler {
        SamplerMethod::Ddim | SamplerMethod::EulerAncestral | SamplerMethod::DpmSolver2M => return Ok(()),
        SamplerMethod::Ddpm => {
            "DDPM's step is the posterior mean of x̂_0 and x_t, with no ε̂ that renoises; use ddim, euler-a or dpmpp-2m"
        }
        SamplerMethod::Euler => "Euler is DDIM at η = 0 here; CFG++'s paper gives it as ddim (also euler-a, dpmpp-2m)",
        SamplerMethod::Heun => {
            "Heun's second evaluation averages two slopes and has no single renoising ε̂; use ddim, euler-a or dpmpp-2m"
        }
        SamplerMethod::DpmSolver2MSde => {
            "the paper gives CFG++ for the ODE DPM++ 2M, not its SDE variant; use dpmpp-2m, ddim or euler-a"
        }
    };
    Err(GuidanceError::CfgPlusPlusSampler { sampler: sampler.label(), reason })
}

/// Classifier-free guidance (Ho & Salimans 2022): x_Ø + w (x_y - x_Ø). Autoguidance is the same formula
/// with the weaker model's conditional prediction in x_Ø's place; CFG++ with λ for w.
pub fn cfg<const D: usize>(unconditional: Tensor<D>, conditional: Tensor<D>, w: f64) -> Tensor<D> {
    unconditional.clone().add(conditional.sub(unconditional).mul_scalar(w))
}

/// What "the spread of one sample" means for rescale's σ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Spread {
    /// The standard deviation over every dimension but the batch: an image's (Lin et al.'s `std` per
    /// image). Population or sample standard deviation gives the same ratio σ_y / σ_cfg.
    Std,
    /// The root-mean-square about 0 over every dimension but the batch: a 2-D point's. The standard
    /// deviation of a point's two coordinates, |x₁ - x₂| / 2, says nothing about its size; the RMS,
    /// |x| / sqrt(2), does: rescale then gives the guided point the length of the conditional one.
    Rms,
}

/// A sample's spread as [batch, 1, ..., 1] (broadcasts against x).
pub fn spread<const D: usize>(x: Tensor<D>, kind: Spread) -> Tensor<D> {
    let flat = per_sample(x);
    let centred = match kind {
        Spread::Std => flat.clone().sub(flat.mean_dim(1)),
        Spread::Rms => flat,
    };
    to_rank::<D>(centred.powi_scalar(2).mean_dim(1).sqrt())
}

/// CFG + rescale (Lin et al. 2024, Alg. 2): x_final = φ x_cfg σ_y / σ_cfg + (1 - φ) x_cfg, with σ each
/// sample's spread ([`Spread`]). Whatever space it is given (the engine gives the network's own prediction:
/// Lin et al.'s model predicts v, diffusers applies it to ε̂; for an ε model the two are one).
pub fn rescale<const D: usize>(conditional: Tensor<D>, guided: Tensor<D>, phi: f64, kind: Spread) -> Tensor<D> {
    let ratio = spread(conditional, kind).div(spread(guided.clone(), kind).clamp_min(1e-20));
    let rescaled = guided.clone().mul(ratio);
    rescaled.mul_scalar(phi).add(guided.mul_scalar(1.0 - phi))
}

/// APG's state across steps: the momentum's running average of Δ (none before the first guided step).
/// A run carries it from step to step; a branch continued from step k restores the parent's at k.
#[derive(Clone, Debug)]
pub struct ApgMomentum<const D: usize> {
    pub running: Option<Tensor<D>>,
}

impl<const D: usize> Default for ApgMomentum<D> {
    fn default() -> Self {
        Self { running: None }
    }
}

/// One APG evaluation: the guided x̂_0 and the running average the step leaves for the next.
#[derive(Clone, Debug)]
pub struct ApgOutput<const D: usize> {
    pub guided: Tensor<D>,
    pub running: Tensor<D>,
    /// Δ after the norm limit (what is split along x̂_y).
    pub limited: Tensor<D>,
    /// Δ_par, its part along x̂_y.
    pub parallel: Tensor<D>,
    /// The update Δ_perp + η Δ_par that (w - 1) multiplies.
    pub update: Tensor<D>,
}

/// Adaptive projected guidance (Sadat et al. 2024, Alg. 1) on the denoised predictions x̂_0:
///   Δ = x̂_y - x̂_Ø;  running = Δ + β running_prev;  Δ = running
///   Δ := Δ min(1, r / |Δ|)                   (per sample; r = 0: no limit)
///   Δ_par = (Δ·u) u, u = x̂_y / |x̂_y|;  Δ_perp = Δ - Δ_par
///   x̂_0 = x̂_y + (w - 1) (Δ_perp + η Δ_par)
/// `previous` is the running average before this evaluation (none on the first step).
pub fn apg<const D: usize>(
    x0_conditional: Tensor<D>,
    x0_unconditional: Tensor<D>,
    w: f64,
    params: &ApgParams,
    previous: Option<&Tensor<D>>,
) -> ApgOutput<D> {
    let diff = x0_conditional.clone().sub(x0_unconditional);
    let running = match previous {
        Some(previous) => diff.add(previous.clone().mul_scalar(params.momentum)),
        None => diff,
    };
    let mut diff = running.clone();
    if params.threshold > 0.0 {
        let norm = to_rank::<D>(per_sample(diff.clone()).powi_scalar(2).sum_dim(1).sqrt());
        diff = diff.mul(norm.recip().mul_scalar(params.threshold).clamp_max(1.0));
    }
    let length = to_rank::<D>(per_sample(x0_conditional.clone()).powi_scalar(2).sum_dim(1).sqrt());
    let unit = x0_conditional.clone().div(length.clamp_min(1e-12));
    let along = to_rank::<D>(per_sample(diff.clone().mul(unit.clone())).sum_dim(1));
    let parallel = unit.mul(along);
    let orthogonal = diff.clone().sub(parallel.clone());
    let update = orthogonal.add(parallel.clone().mul_scalar(params.eta));
    let guided = x0_conditional.add(update.clone().mul_scalar(w - 1.0));
    ApgOutput { guided, running, limited: diff, parallel, update }
}

/// [`apg`] from the two branches' ε̂ at noise level λ = `log_snr`: each read as x̂_0 = (x_t - σ ε̂) / α,
/// guided there, and the guided x̂_0 read back as ε̂ = (x_t - α x̂_0) / σ, the samplers' one currency.
/// Returns that ε̂ beside APG's parts (for "This step" and the momentum a run carries).
pub fn apg_on_eps<const D: usize>(
    x_t: Tensor<D>,
    eps_conditional: Tensor<D>,
    eps_unconditional: Tensor<D>,
    log_snr: f64,
    w: f64,
    params: &ApgParams,
    previous: Option<&Tensor<D>>,
) -> (Tensor<D>, ApgOutput<D>) {
    let (alpha, sigma) = super::objective::alpha_sigma_from_log_snr(log_snr);
    let x0 = |eps: Tensor<D>| x_t.clone().sub(eps.mul_scalar(sigma)).mul_scalar(1.0 / alpha);
    let out = apg(x0(eps_conditional), x0(eps_unconditional), w, params, previous);
    let eps = x_t.clone().sub(out.guided.clone().mul_scalar(alpha)).mul_scalar(1.0 / sigma);
    (eps, out)
}

/// Each sample's Euclidean norm, [batch].
pub fn norms<const D: usize>(x: Tensor<D>) -> Tensor<1> {
    let flat = per_sample(x);
    let batch = flat.dims()[0];
    flat.powi_scalar(2).sum_dim(1).sqrt().reshape([batch])
}

/// x as [batch, everything else].
fn per_sample<const D: usize>(x: Tensor<D>) -> Tensor<2> {
    let dims = x.dims();
    let rest = dims[1..].iter().product::<usize>();
    x.reshape([dims[0], rest])
}

/// [batch, 1] as [batch, 1, ..., 1] of rank D.
fn to_rank<const D: usize>(x: Tensor<2>) -> Tensor<D> {
    let mut shape = [1usize; D];
    shape[0] = x.dims()[0];
    x.reshape(shape)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn points(rows: &[[f32; 2]]) -> Tensor<2> {
        let values: Vec<f32> = rows.iter().flatten().copied().collect();
        Tensor::<2>::from_data(TensorData::new(values, [rows.len(), 2]), &Default::default())
    }

    fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    fn close(got: &[f32], want: &[f64]) {
        assert_eq!(got.len(), want.len(), "{got:?} against {want:?}");
        for (g, w) in got.iter().zip(want) {
            assert!((*g as f64 - w).abs() < 1e-5, "{got:?} against {want:?}");
        }
    }

    #[test]
    fn cfg_is_the_unconditional_plus_w_times_the_difference() {
        // ε̂_Ø = (1, 2), ε̂_y = (3, 1), w = 1.5: (1 + 1.5·2, 2 + 1.5·(-1)) = (4, 0.5).
        close(&values(cfg(points(&[[1.0, 2.0]]), points(&[[3.0, 1.0]]), 1.5)), &[4.0, 0.5]);
        // Autoguidance is the same formula with the weak model's ε̂_y: weak (0, 1), main (1, 1), w = 2.25:
        // (0 + 2.25·1, 1 + 2.25·0) = (2.25, 1).
        close(&values(cfg(points(&[[0.0, 1.0]]), points(&[[1.0, 1.0]]), 2.25)), &[2.25, 1.0]);
    }

    #[test]
    fn rescale_matches_lin_et_al_by_hand() {
        // One image of four values (rank 4, [1, 1, 2, 2]); x_y = (1, 2, 3, 4), x_Ø = (1, 1, 1, 1), w = 3:
        // x_cfg = x_Ø + 3 (x_y - x_Ø) = (1, 4, 7, 10). Population std: x_y's mean 2.5, deviations ±0.5, ±1.5,
        // variance (0.25 + 2.25)·2/4 = 1.25; x_cfg's mean 5.5, deviations ±1.5, ±4.5, variance 11.25.
        // σ_y / σ_cfg = sqrt(1.25 / 11.25) = 1/3. φ = 0.7: 0.7 · x_cfg/3 + 0.3 · x_cfg = (0.7/3 + 0.3) x_cfg
        // = (1.6/3) x_cfg = (0.533333, 2.133333, 3.733333, 5.333333).
        let image =
            |v: [f32; 4]| Tensor::<4>::from_data(TensorData::new(v.to_vec(), [1, 1, 2, 2]), &Default::default());
        let guided = cfg(image([1.0; 4]), image([1.0, 2.0, 3.0, 4.0]), 3.0);
        let x = rescale(image([1.0, 2.0, 3.0, 4.0]), guided, 0.7, Spread::Std);
        let k = 1.6 / 3.0;
        close(&values(x), &[k, 4.0 * k, 7.0 * k, 10.0 * k]);
    }

    #[test]
    fn rescale_of_points_gives_the_guided_point_the_conditional_length_per_point() {
        // Two points (each its own σ). Point 1: x_y = (3, 4), x_Ø = (0, 0), w = 2: x_cfg = (6, 8); RMS
        // 5/sqrt2 against 10/sqrt2, ratio 1/2; φ = 1: (3, 4). Point 2: x_y = (1, 0), x_Ø = (1, 0): x_cfg =
        // (1, 0), ratio 1; φ = 1: (1, 0).
        let guided = cfg(points(&[[0.0, 0.0], [1.0, 0.0]]), points(&[[3.0, 4.0], [1.0, 0.0]]), 2.0);
        let x = rescale(points(&[[3.0, 4.0], [1.0, 0.0]]), guided, 1.0, Spread::Rms);
        close(&values(x), &[3.0, 4.0, 1.0, 0.0]);
        // φ = 0 is CFG itself.
        let guided = cfg(points(&[[0.0, 0.0]]), points(&[[3.0, 4.0]]), 2.0);
        close(&values(rescale(points(&[[3.0, 4.0]]), guided, 0.0, Spread::Rms)), &[6.0, 8.0]);
    }

    #[test]
    fn apg_matches_sadat_et_al_by_hand() {
        // x̂_y = (3, 4), x̂_Ø = (1, 4), w = 3, no momentum yet, r = 0 (no limit), η = 0.5:
        // Δ = (2, 0); u = (0.6, 0.8); Δ·u = 1.2; Δ_par = (0.72, 0.96); Δ_perp = (1.28, -0.96);
        // update = Δ_perp + 0.5 Δ_par = (1.64, -0.48); x̂ = (3, 4) + 2 (1.64, -0.48) = (6.28, 3.04).
        let params = ApgParams { eta: 0.5, momentum: -0.75, threshold: 0.0 };
        let out = apg(points(&[[3.0, 4.0]]), points(&[[1.0, 4.0]]), 3.0, &params, None);
        close(&values(out.guided), &[3.0 + 2.0 * 1.64, 3.04]);
        close(&values(out.running), &[2.0, 0.0]);
        // With r = 1: |Δ| = 2, so Δ = (1, 0); Δ·u = 0.6; Δ_par = (0.36, 0.48); Δ_perp = (0.64, -0.48);
        // update = (0.82, -0.24); x̂ = (3 + 1.64, 4 - 0.48) = (4.64, 3.52). The running average keeps the
        // unlimited Δ (the limit applies to what guides, not to the momentum).
        let limited = ApgParams { threshold: 1.0, ..params };
        let out = apg(points(&[[3.0, 4.0]]), points(&[[1.0, 4.0]]), 3.0, &limited, None);
        close(&values(out.guided), &[4.64, 3.52]);
        close(&values(out.running), &[2.0, 0.0]);
        // η = 1, r = 0, no momentum: the update is Δ itself and APG is CFG on x̂_0: x̂_Ø + w Δ = (7, 4).
        let plain = ApgParams { eta: 1.0, momentum: 0.0, threshold: 0.0 };
        let out = apg(points(&[[3.0, 4.0]]), points(&[[1.0, 4.0]]), 3.0, &plain, None);
        close(&values(out.guided), &[7.0, 4.0]);
    }

    #[test]
    fn apg_momentum_follows_its_recursion_over_three_steps() {
        // β = -0.5, r = 0, η = 1 (the update is the running average), w = 2, x̂_Ø = 0 each step:
        // step 1: Δ = (1, 0), running = (1, 0), x̂ = x̂_y + running = (2, 0).
        // step 2: Δ = (0, 2), running = (0, 2) - 0.5 (1, 0) = (-0.5, 2), x̂ = (0, 2) + (-0.5, 2) = (-0.5, 4).
        // step 3: Δ = (1, 1), running = (1, 1) - 0.5 (-0.5, 2) = (1.25, 0), x̂ = (1, 1) + (1.25, 0) = (2.25, 1).
        let params = ApgParams { eta: 1.0, momentum: -0.5, threshold: 0.0 };
        let mut state = ApgMomentum::<2>::default();
        let steps = [
            ([1.0, 0.0], [2.0, 0.0], [1.0, 0.0]),
            ([0.0, 2.0], [-0.5, 4.0], [-0.5, 2.0]),
            ([1.0, 1.0], [2.25, 1.0], [1.25, 0.0]),
        ];
        for (x0_y, want, want_running) in steps {
            let out = apg(points(&[x0_y]), points(&[[0.0, 0.0]]), 2.0, &params, state.running.as_ref());
            close(&values(out.guided), &want.map(f64::from));
            close(&values(out.running.clone()), &want_running.map(f64::from));
            state.running = Some(out.running);
        }
    }

    #[test]
    fn apg_works_per_image_on_images() {
        // Two images [2, 1, 1, 2], each its own projection: image 1 as the hand example above (η = 0.5,
        // r = 0): (6.28, 3.04); image 2: x̂_y = (0, 2), x̂_Ø = (0, 1): Δ = (0, 1) is parallel to x̂_y, so the
        // update is 0.5 Δ = (0, 0.5) and x̂ = (0, 2) + 2 (0, 0.5) = (0, 3).
        let image =
            |v: [f32; 4]| Tensor::<4>::from_data(TensorData::new(v.to_vec(), [2, 1, 1, 2]), &Default::default());
        let params = ApgParams { eta: 0.5, momentum: 0.0, threshold: 0.0 };
        let out = apg(image([3.0, 4.0, 0.0, 2.0]), image([1.0, 4.0, 0.0, 1.0]), 3.0, &params, None);
        close(&values(out.guided), &[3.0 + 2.0 * 1.64, 3.04, 0.0, 3.0]);
    }

    #[test]
    fn methods_parse_by_name_and_refuse_others_in_one_line() {
        for method in GuidanceMethod::ALL {
            assert_eq!(method.name().parse::<GuidanceMethod>(), Ok(method));
        }
        assert_eq!("CFG++".parse::<GuidanceMethod>(), Ok(GuidanceMethod::CfgPlusPlus));
        let error = "pag".parse::<GuidanceMethod>().unwrap_err().to_string();
        assert_eq!(error, "unknown guidance method `pag`: use one of cfg, rescale, apg, cfgpp, auto");
        // Saved by name; a setting without a method is CFG.
        assert_eq!(serde_json::to_string(&GuidanceMethod::CfgPlusPlus).unwrap(), "\"cfgpp\"");
        let params: GuidanceParams = serde_json::from_str("{}").unwrap();
        assert!(params.is_default());
    }

    #[test]
    fn bad_values_are_refused_one_line_each() {
        let with = |method, scale: f64| Guidance { scale, interval: None, params: GuidanceParams::of(method) };
        let error = |g: Guidance| g.validate().unwrap_err().to_string();
        assert_eq!(error(with(GuidanceMethod::Cfg, -1.0)), "guidance must be a finite number of at least 0, got -1");
        assert_eq!(
            error(with(GuidanceMethod::Apg, f64::NAN)),
            "guidance must be a finite number of at least 0, got NaN"
        );
        assert_eq!(error(with(GuidanceMethod::CfgPlusPlus, 1.5)), "CFG++'s guidance λ must be in [0, 1], got 1.5");
        let mut rescale = with(GuidanceMethod::Rescale, 7.5);
        rescale.params.rescale_phi = 1.2;
        assert_eq!(error(rescale), "guidance rescale φ must be in [0, 1], got 1.2");
        let mut interval = with(GuidanceMethod::Cfg, 2.0);
        interval.interval = Some([2.0, -1.0]);
        assert_eq!(error(interval), "the guidance interval must be two noise levels λ from low to high, got 2 to -1");
        let apg = |apg| Guidance {
            params: GuidanceParams { apg, ..GuidanceParams::of(GuidanceMethod::Apg) },
            ..with(GuidanceMethod::Apg, 7.5)
        };
        let base = ApgParams::default();
        assert!(error(apg(ApgParams { eta: 2.0, ..base })).starts_with("APG's η"));
        assert!(error(apg(ApgParams { momentum: -1.0, ..base })).starts_with("APG's momentum β"));
        assert!(error(apg(ApgParams { threshold: -0.5, ..base })).starts_with("APG's norm threshold r"));
        for method in GuidanceMethod::ALL {
            assert_eq!(with(method, method.default_scale()).validate(), Ok(()), "{method}");
        }
    }

    #[test]
    fn cfgpp_runs_on_its_papers_samplers_and_refuses_the_others_with_the_reason() {
        for sampler in SamplerMethod::ALL {
            let allowed =
                matches!(sampler, SamplerMethod::Ddim | SamplerMethod::EulerAncestral | SamplerMethod::DpmSolver2M);
            assert_eq!(cfgpp_supports(sampler).is_ok(), allowed, "{sampler}");
        }
        let heun = cfgpp_supports(SamplerMethod::Heun).unwrap_err().to_string();
        assert!(heun.starts_with("CFG++ cannot run on Heun: Heun's second evaluation"), "{heun}");
    }

    fn level(alpha_bar: f64) -> crate::diffusion::NoiseLevel {
        let log_snr = (alpha_bar / (1.0 - alpha_bar)).ln();
        crate::diffusion::NoiseLevel { t: 1, alpha_bar, one_minus_alpha_bar: 1.0 - alpha_bar, log_snr }
    }

    #[test]
    fn cfgpp_ddim_step_renoises_with_the_unconditional_eps_by_hand() {
        // DDIM η = 0 from ᾱ = 0.36 (α = 0.6, σ = 0.8) to ᾱ' = 0.64 (α' = 0.8, σ' = 0.6). x_t = (1, 0.2),
        // ε̂_Ø = (0.5, 0), ε̂_y = (1, -0.5), λ = 0.6: ε̂_λ = ε̂_Ø + 0.6 (ε̂_y - ε̂_Ø) = (0.8, -0.3);
        // x̂_0 = (x_t - 0.8 ε̂_λ) / 0.6 = ((1 - 0.64) / 0.6, (0.2 + 0.24) / 0.6) = (0.6, 0.733333);
        // CFG++: x' = 0.8 x̂_0 + 0.6 ε̂_Ø = (0.48 + 0.3, 0.586667 + 0) = (0.78, 0.586667).
        // Plain CFG at the same ε̂_λ would renoise with it: (0.48 + 0.48, 0.586667 - 0.18) = (0.96, 0.406667).
        let step = super::super::ddim::ddim_step(level(0.36), level(0.64), 0.0);
        let plan = crate::diffusion::SamplingPlan { steps: vec![step], clip_x0: false, x0_bound: 1.0 };
        let (x, uncond) = (points(&[[1.0, 0.2]]), points(&[[0.5, 0.0]]));
        let eps = cfg(uncond.clone(), points(&[[1.0, -0.5]]), 0.6);
        let out = plan.step_renoised(0, x.clone(), eps.clone(), uncond, None, None);
        close(&values(out.x0_pred), &[0.6, 0.44 / 0.6]);
        close(&values(out.x_prev), &[0.78, 0.8 * 0.44 / 0.6]);
        let plain = plan.step(0, x, eps, None, None, &mut |x, _| x);
        close(&values(plain.x_prev), &[0.96, 0.8 * 0.44 / 0.6 - 0.18]);
    }

    #[test]
    fn cfgpp_dpm_solver_step_is_the_plain_step_when_renoising_with_the_same_eps() {
        // DPM++ 2M's second-order step written with x̃_t = α x̂_0 + σ ε̂ equals the plain step when ε̂ is the
        // step's own (unclipped plan): the rewriting changes nothing but which ε̂ renoises.
        let (a, b, c) = (level(0.2), level(0.4), level(0.7));
        let step = super::super::dpm_solver::dpm_solver_step(Some(a), b, c, false);
        let plan = crate::diffusion::SamplingPlan { steps: vec![step], clip_x0: false, x0_bound: 1.0 };
        let (x, eps, prev) = (points(&[[0.3, -1.2]]), points(&[[0.7, 0.1]]), points(&[[0.2, -0.4]]));
        let plain = plan.step(0, x.clone(), eps.clone(), None, Some(&prev), &mut |x, _| x);
        let renoised = plan.step_renoised(0, x, eps.clone(), eps, None, Some(&prev));
        close(&values(renoised.x_prev), &values(plain.x_prev).iter().map(|v| *v as f64).collect::<Vec<_>>());
    }

    #[test]
    fn outside_the_interval_every_method_is_the_conditional_model() {
        let g = Guidance { scale: 4.0, interval: Some([-2.0, 2.0]), params: GuidanceParams::of(GuidanceMethod::Apg) };
        assert_eq!((g.scale_at(0.0), g.method_at(0.0)), (4.0, GuidanceMethod::Apg));
        assert_eq!((g.scale_at(5.0), g.method_at(5.0)), (1.0, GuidanceMethod::Cfg));
    }
}
