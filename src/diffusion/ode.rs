//! Ordinary differential equations, solved accurately: the reference every ODE sampler and every
//! likelihood by the probability-flow ODE is measured against.
//!
//! The probability-flow ODE (Song et al. 2021) has the same marginals q_t as the forward process. In the
//! variables of DDIM (Song, Meng & Ermon 2021; Karras et al. 2022, eq. 4), s = σ/α = e^{-λ/2} and
//! y = x/α, it is as simple as it gets:
//!
//!   dy/ds = ε̂(α(s) y, λ(s)),   α(s) = 1/sqrt(1 + s²),   λ(s) = -2 ln s,
//!
//! so one Euler step of it from s to s' is exactly DDIM's η = 0 update. [`solve_adaptive`] integrates
//! any dy/dt = f(t, y) in f64 with Dormand–Prince 5(4) and error control; the helpers below convert
//! between s and the schedule's λ.

/// How exact an adaptive integration must be: each step's estimated error e_i of component i stays
/// below `absolute + relative · |y_i|` (in the root-mean-square over components).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tolerance {
    pub relative: f64,
    pub absolute: f64,
}

impl Tolerance {
    /// Both tolerances `factor` times smaller (a convergence check halves them).
    pub fn tighter(self, factor: f64) -> Self {
        Self { relative: self.relative / factor, absolute: self.absolute / factor }
    }
}

/// What an adaptive integration cost.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OdeStats {
    pub accepted: usize,
    pub rejected: usize,
    /// Evaluations of f.
    pub evaluations: usize,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OdeError {
    #[error("the ODE's right-hand side is not finite at t = {at}")]
    NotFinite { at: f64 },
    #[error("the ODE solver's step fell below {step:e} at t = {at}: the tolerance cannot be met there")]
    StepTooSmall { at: f64, step: f64 },
    #[error("the ODE solver took more than {limit} steps (stopped at t = {at})")]
    TooManySteps { at: f64, limit: usize },
    #[error("the ODE's tolerances must be positive and finite (relative {relative}, absolute {absolute})")]
    BadTolerance { relative: f64, absolute: f64 },
}

/// f(t, y, dy) writes dy/dt at (t, y) into dy.
pub type RightHandSide<'a> = dyn FnMut(f64, &[f64], &mut [f64]) + 'a;

/// Steps an integration may take before it gives up.
pub const MAX_STEPS: usize = 1_000_000;

// Dormand & Prince (1980), RK5(4)7M: the nodes, the weights of the fifth-order solution (which also
// form the last stage: "first same as last") and of the embedded fourth-order one.
const C: [f64; 7] = [0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0, 1.0];
const A: [[f64; 6]; 7] = [
    [0.0; 6],
    [1.0 / 5.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [3.0 / 40.0, 9.0 / 40.0, 0.0, 0.0, 0.0, 0.0],
    [44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0, 0.0, 0.0, 0.0],
    [19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0, 0.0, 0.0],
    [9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0, 0.0],
    [35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0],
];
const B5: [f64; 7] = [35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0, 0.0];
const B4: [f64; 7] =
    [5179.0 / 57600.0, 0.0, 7571.0 / 16695.0, 393.0 / 640.0, -92097.0 / 339200.0, 187.0 / 2100.0, 1.0 / 40.0];

/// dy/dt = f(t, y) from `t0` to `t1` (either direction), `f(t, y, dy)` writing dy/dt into `dy`, by
/// Dormand–Prince 5(4) with error control (Hairer, Nørsett & Wanner, "Solving ODEs I", II.4 and II.5:
/// the error norm, the first step size, the step-size controller with safety factor 0.9). Returns
/// y(t1) and what it cost.
pub fn solve_adaptive(
    f: &mut RightHandSide<'_>,
    t0: f64,
    t1: f64,
    y0: &[f64],
    tolerance: Tolerance,
) -> Result<(Vec<f64>, OdeStats), OdeError> {
    let Tolerance { relative, absolute } = tolerance;
    if !(relative > 0.0 && absolute > 0.0 && relative.is_finite() && absolute.is_finite()) {
        return Err(OdeError::BadTolerance { relative, absolute });
    }
    let mut stats = OdeStats::default();
    let mut y = y0.to_vec();
    if t0 == t1 || y.is_empty() {
        return Ok((y, stats));
    }
    let direction = (t1 - t0).signum();
    let n = y.len();
    let mut k: Vec<Vec<f64>> = vec![vec![0.0; n]; 7];
    let mut evaluate = |t: f64, y: &[f64], dy: &mut [f64], stats: &mut OdeStats| {
        f(t, y, dy);
        stats.evaluations += 1;
        if dy.iter().all(|v| v.is_finite()) { Ok(()) } else { Err(OdeError::NotFinite { at: t }) }
    };
    let mut t = t0;
    evaluate(t, &y, &mut k[0], &mut stats)?;
    let scale = |a: f64, b: f64| absolute + relative * a.abs().max(b.abs());
    let mut h = direction * first_step(&y, &k[0], |i| scale(y0[i], y0[i]), (t1 - t0).abs());
    let mut stage = vec![0.0; n];
    let mut y_new = vec![0.0; n];
    while (t1 - t) * direction > 0.0 {
        if stats.accepted + stats.rejected >= MAX_STEPS {
            return Err(OdeError::TooManySteps { at: t, limit: MAX_STEPS });
        }
        if (t + h - t1) * direction > 0.0 {
            h = t1 - t;
        }
        for s in 1..7 {
            for i in 0..n {
                stage[i] = y[i] + h * (0..s).map(|j| A[s][j] * k[j][i]).sum::<f64>();
            }
            evaluate(t + C[s] * h, &stage, &mut k[s], &mut stats)?;
        }
        // The seventh stage was evaluated at the fifth-order solution itself.
        y_new.copy_from_slice(&stage);
        let error = (0..n)
            .map(|i| {
                let e = h * (0..7).map(|j| (B5[j] - B4[j]) * k[j][i]).sum::<f64>();
                (e / scale(y[i], y_new[i])).powi(2)
            })
            .sum::<f64>();
        let error = (error / n as f64).sqrt();
        let factor = if error == 0.0 { 5.0 } else { (0.9 * error.powf(-0.2)).clamp(0.2, 5.0) };
        if error <= 1.0 {
            stats.accepted += 1;
            t = if (t + h - t1) * direction >= 0.0 { t1 } else { t + h };
            y.copy_from_slice(&y_new);
            k.swap(0, 6);
        } else {
            stats.rejected += 1;
        }
        let next = h * if error <= 1.0 { factor } else { factor.min(1.0) };
        if next.abs() <= 1e-14 * t.abs().max(1.0) {
            return Err(OdeError::StepTooSmall { at: t, step: next.abs() });
        }
        h = next;
    }
    Ok((y, stats))
}

/// The first step's size (Hairer, Nørsett & Wanner II.4, "starting step size", without its second
/// evaluation): 1 % of |y| / |f| in the tolerance's norm, at most the whole interval.
fn first_step(y: &[f64], dy: &[f64], scale: impl Fn(usize) -> f64, span: f64) -> f64 {
    let n = y.len() as f64;
    let d0 = (y.iter().enumerate().map(|(i, v)| (v / scale(i)).powi(2)).sum::<f64>() / n).sqrt();
    let d1 = (dy.iter().enumerate().map(|(i, v)| (v / scale(i)).powi(2)).sum::<f64>() / n).sqrt();
    let h = if d0 < 1e-5 || d1 < 1e-5 { 1e-6 * span.max(1e-12) } else { 0.01 * d0 / d1 };
    h.min(span)
}

/// s = σ/α = e^{-λ/2}, the probability-flow ODE's time in DDIM's variables (Karras et al.'s σ).
pub fn sigma_over_alpha_from_log_snr(log_snr: f64) -> f64 {
    (-0.5 * log_snr).exp()
}

/// λ = log(α²/σ²) = -2 ln s.
pub fn log_snr_from_sigma_over_alpha(s: f64) -> f64 {
    -2.0 * s.ln()
}

/// α = 1/sqrt(1 + s²) on the variance-preserving path (α² + σ² = 1).
pub fn alpha_from_sigma_over_alpha(s: f64) -> f64 {
    1.0 / (1.0 + s * s).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIGHT: Tolerance = Tolerance { relative: 1e-10, absolute: 1e-12 };

    #[test]
    fn exponential_decay_backwards_and_forwards() {
        // y' = -2y, y(0) = 1: y(1.5) = e^{-3}; and back from there.
        let mut f = |_t: f64, y: &[f64], dy: &mut [f64]| dy[0] = -2.0 * y[0];
        let (y, stats) = solve_adaptive(&mut f, 0.0, 1.5, &[1.0], TIGHT).unwrap();
        assert!((y[0] - (-3.0f64).exp()).abs() < 1e-10, "{}", y[0]);
        assert!(stats.accepted > 5 && stats.evaluations >= 6 * stats.accepted);
        let (back, _) = solve_adaptive(&mut f, 1.5, 0.0, &y, TIGHT).unwrap();
        assert!((back[0] - 1.0).abs() < 1e-9, "{}", back[0]);
    }

    #[test]
    fn a_rotation_keeps_its_radius_and_lands_on_cos_sin() {
        // (y0, y1)' = (-y1, y0), a unit circle: after t = 2π·1.25 it is at (cos, sin) of that angle.
        let mut f = |_t: f64, y: &[f64], dy: &mut [f64]| {
            dy[0] = -y[1];
            dy[1] = y[0];
        };
        let end = 2.5 * std::f64::consts::PI;
        let (y, _) = solve_adaptive(&mut f, 0.0, end, &[1.0, 0.0], TIGHT).unwrap();
        assert!((y[0] - end.cos()).abs() < 1e-8 && (y[1] - end.sin()).abs() < 1e-8, "{y:?}");
    }

    #[test]
    fn the_error_shrinks_with_the_tolerance_at_about_fifth_order() {
        // y' = y cos t: y = exp(sin t).
        let mut f = |t: f64, y: &[f64], dy: &mut [f64]| dy[0] = y[0] * t.cos();
        let exact = 4.0f64.sin().exp();
        let loose = Tolerance { relative: 1e-4, absolute: 1e-6 };
        let (a, sa) = solve_adaptive(&mut f, 0.0, 4.0, &[1.0], loose).unwrap();
        let (b, sb) = solve_adaptive(&mut f, 0.0, 4.0, &[1.0], loose.tighter(1e4)).unwrap();
        let (ea, eb) = ((a[0] - exact).abs(), (b[0] - exact).abs());
        assert!(eb < ea / 100.0 && eb < 1e-8, "{ea:e} {eb:e}");
        assert!(sb.accepted > sa.accepted);
    }

    #[test]
    fn bad_input_is_refused_with_a_reason() {
        let mut f = |_t: f64, y: &[f64], dy: &mut [f64]| dy[0] = y[0];
        let bad = Tolerance { relative: 0.0, absolute: 1e-9 };
        assert!(matches!(solve_adaptive(&mut f, 0.0, 1.0, &[1.0], bad), Err(OdeError::BadTolerance { .. })));
        // y' = y², y(0) = 1 blows up at t = 1: the solver stops with an error instead of looping.
        let mut blow_up = |_t: f64, y: &[f64], dy: &mut [f64]| dy[0] = y[0] * y[0];
        assert!(solve_adaptive(&mut blow_up, 0.0, 2.0, &[1.0], TIGHT).is_err());
        // Nothing to do: returned unchanged, no evaluation.
        let (y, stats) = solve_adaptive(&mut f, 1.0, 1.0, &[3.0], TIGHT).unwrap();
        assert_eq!((y, stats.evaluations), (vec![3.0], 0));
    }

    #[test]
    fn time_and_log_snr_round_trip_on_the_variance_preserving_path() {
        for log_snr in [-10.0, -1.0, 0.0, 2.5, 12.0] {
            let s = sigma_over_alpha_from_log_snr(log_snr);
            assert!((log_snr_from_sigma_over_alpha(s) - log_snr).abs() < 1e-12);
            let alpha = alpha_from_sigma_over_alpha(s);
            let sigma = s * alpha;
            assert!((alpha * alpha + sigma * sigma - 1.0).abs() < 1e-12);
            assert!(((alpha * alpha / (sigma * sigma)).ln() - log_snr).abs() < 1e-9);
        }
    }
}
