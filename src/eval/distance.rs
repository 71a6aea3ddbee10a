//! Distances between two clouds of points in the plane: how far the 2-D lab's samples are from its data.
//!
//! - The sliced Wasserstein-2 distance (Rabin et al. 2011; Bonneel et al. 2015):
//!   SW₂(P, Q)² = ∫ W₂(θ·P, θ·Q)² dθ over directions θ of the half circle, where in one dimension W₂ is the
//!   distance between the sorted samples (their quantile functions). Its unit is the data's: "the typical
//!   distance a point has to move".
//! - The energy distance (Székely & Rizzo 2013): E(P, Q) = 2 E|X - Y| - E|X - X'| - E|Y - Y'|, zero exactly
//!   when P = Q.

/// Directions of the half circle used by [`sliced_wasserstein`]: evenly spaced, so that the mean of
/// (θ·d)² over them is exactly |d|² / 2, as the integral's.
pub const SLICES: usize = 64;

/// The empirical quantile function of `sorted` at level u in (0, 1) (linear between order statistics).
fn quantile(sorted: &[f64], u: f64) -> f64 {
    let position = u * sorted.len() as f64 - 0.5;
    if position <= 0.0 {
        return sorted[0];
    }
    let below = position.floor() as usize;
    if below + 1 >= sorted.len() {
        return sorted[sorted.len() - 1];
    }
    let frac = position - below as f64;
    sorted[below] * (1.0 - frac) + sorted[below + 1] * frac
}

/// SW₂ between the empirical distributions of `a` and `b` over [`SLICES`] directions. Sets of one size
/// pair their sorted projections one to one; otherwise both quantile functions are compared at
/// max(|a|, |b|) levels. `None` if either set is empty.
pub fn sliced_wasserstein(a: &[[f64; 2]], b: &[[f64; 2]]) -> Option<f64> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    let levels = a.len().max(b.len());
    let mut total = 0.0;
    for k in 0..SLICES {
        let angle = std::f64::consts::PI * k as f64 / SLICES as f64;
        let (c, s) = (angle.cos(), angle.sin());
        let project = |points: &[[f64; 2]]| {
            let mut p: Vec<f64> = points.iter().map(|x| c * x[0] + s * x[1]).collect();
            p.sort_by(f64::total_cmp);
            p
        };
        let (pa, pb) = (project(a), project(b));
        let squared: f64 = if pa.len() == pb.len() {
            pa.iter().zip(&pb).map(|(x, y)| (x - y).powi(2)).sum()
        } else {
            (0..levels)
                .map(|i| {
                    let u = (i as f64 + 0.5) / levels as f64;
                    (quantile(&pa, u) - quantile(&pb, u)).powi(2)
                })
                .sum()
        };
        total += squared / levels as f64;
    }
    Some((total / SLICES as f64).sqrt())
}

fn mean_distance(a: &[[f64; 2]], b: &[[f64; 2]]) -> f64 {
    let sum: f64 = a.iter().map(|x| b.iter().map(|y| (x[0] - y[0]).hypot(x[1] - y[1])).sum::<f64>()).sum();
    sum / (a.len() * b.len()) as f64
}

/// The energy distance 2 E|X - Y| - E|X - X'| - E|Y - Y'| of the two empirical distributions (the
/// V-statistic: every pair, a point with itself included). `None` if either set is empty.
pub fn energy_distance(a: &[[f64; 2]], b: &[[f64; 2]]) -> Option<f64> {
    if a.is_empty() || b.is_empty() {
        return None;
    }
    Some((2.0 * mean_distance(a, b) - mean_distance(a, a) - mean_distance(b, b)).max(0.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;
    use rand_distr::{Distribution, StandardNormal};

    fn gaussian_cloud(n: usize, seed: u64, shift: [f64; 2]) -> Vec<[f64; 2]> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let (x, y): (f64, f64) = (StandardNormal.sample(&mut rng), StandardNormal.sample(&mut rng));
                [x + shift[0], y + shift[1]]
            })
            .collect()
    }

    #[test]
    fn identical_sets_are_at_distance_zero() {
        let a = gaussian_cloud(300, 1, [0.0, 0.0]);
        assert!(sliced_wasserstein(&a, &a).unwrap() < 1e-12);
        assert!(energy_distance(&a, &a).unwrap() < 1e-12);
    }

    /// A shifted copy: every projection moves by θ·d, so SW₂² = mean (θ·d)² = |d|² / 2 exactly.
    #[test]
    fn a_shift_by_d_is_at_sliced_distance_d_over_root_two() {
        let a = gaussian_cloud(500, 2, [0.0, 0.0]);
        let d = [0.6, -0.8];
        let b: Vec<[f64; 2]> = a.iter().map(|p| [p[0] + d[0], p[1] + d[1]]).collect();
        let expected = 1.0 / 2f64.sqrt();
        assert!((sliced_wasserstein(&a, &b).unwrap() - expected).abs() < 1e-9);
    }

    /// Two point masses a distance r apart: E = 2r.
    #[test]
    fn energy_distance_of_two_points_is_twice_their_distance() {
        let e = energy_distance(&[[0.0, 0.0]], &[[3.0, 4.0]]).unwrap();
        assert!((e - 10.0).abs() < 1e-12);
    }

    /// Samples of one distribution are close; of a shifted one, far; and both measures grow with the shift.
    #[test]
    fn distances_grow_with_the_difference_between_distributions() {
        let data = gaussian_cloud(800, 3, [0.0, 0.0]);
        let mut last = (0.0, 0.0);
        for (seed, shift) in [(4, 0.0), (5, 0.5), (6, 1.5)] {
            let other = gaussian_cloud(600, seed, [shift, 0.0]);
            let sw = sliced_wasserstein(&data, &other).unwrap();
            let e = energy_distance(&data, &other).unwrap();
            assert!(sw > last.0 && e >= last.1, "shift {shift}: SW {sw}, energy {e} after {last:?}");
            if shift == 0.0 {
                assert!(sw < 0.1 && e < 0.02, "same law: SW {sw}, energy {e}");
            }
            last = (sw, e);
        }
    }

    #[test]
    fn empty_sets_have_no_distance() {
        assert_eq!(sliced_wasserstein(&[], &[[0.0, 0.0]]), None);
        assert_eq!(energy_distance(&[[0.0, 0.0]], &[]), None);
    }
}
