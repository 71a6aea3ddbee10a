//! The Fréchet distance between two Gaussians fitted to feature vectors (the "FID" recipe, with the
//! project's own Fashion-MNIST classifier in place of Inception):
//!
//!   FD = ||μ_1 - μ_2||² + Tr(Σ_1 + Σ_2 - 2 (Σ_1 Σ_2)^{1/2})
//!
//! Tr((Σ_1 Σ_2)^{1/2}) is computed as Σ_i sqrt(λ_i) over the eigenvalues λ_i of the symmetric matrix
//! Σ_1^{1/2} Σ_2 Σ_1^{1/2}, which has the same spectrum and is safe to diagonalise.

/// Mean and covariance (divided by n - 1) of `n` row vectors of length `dim`.
#[derive(Clone, Debug, PartialEq)]
pub struct Gaussian {
    pub mean: Vec<f64>,
    /// Row-major dim x dim.
    pub covariance: Vec<f64>,
    pub dim: usize,
    pub count: usize,
}

impl Gaussian {
    pub fn fit(features: &[f32], dim: usize) -> Self {
        let count = features.len() / dim;
        let mut mean = vec![0.0; dim];
        for row in features.chunks_exact(dim) {
            for (m, x) in mean.iter_mut().zip(row) {
                *m += *x as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= count.max(1) as f64);
        let mut covariance = vec![0.0; dim * dim];
        for row in features.chunks_exact(dim) {
            let centered: Vec<f64> = row.iter().zip(&mean).map(|(x, m)| *x as f64 - m).collect();
            for i in 0..dim {
                let ci = centered[i];
                for j in i..dim {
                    covariance[i * dim + j] += ci * centered[j];
                }
            }
        }
        let denominator = (count.max(2) - 1) as f64;
        for i in 0..dim {
            for j in i..dim {
                let v = covariance[i * dim + j] / denominator;
                covariance[i * dim + j] = v;
                covariance[j * dim + i] = v;
            }
        }
        Self { mean, covariance, dim, count }
    }
}

/// FD = ||μ_a - μ_b||² + Tr(Σ_a + Σ_b - 2 (Σ_a Σ_b)^{1/2}), at least 0: a distance. Between a Gaussian and
/// itself the two traces cancel only up to rounding (the quality meter's floor printed -2.3e-11 when the
/// real samples were its reference set), so the sum is clamped at 0.
pub fn frechet_distance(a: &Gaussian, b: &Gaussian) -> f64 {
    let dim = a.dim;
    let mean_term: f64 = a.mean.iter().zip(&b.mean).map(|(x, y)| (x - y).powi(2)).sum();
    let trace = |m: &[f64]| (0..dim).map(|i| m[i * dim + i]).sum::<f64>();
    let sqrt_a = symmetric_sqrt(&a.covariance, dim);
    let inner = matmul(&matmul(&sqrt_a, &b.covariance, dim), &sqrt_a, dim);
    let (eigenvalues, _) = symmetric_eigen(&inner, dim);
    let trace_sqrt: f64 = eigenvalues.iter().map(|l| l.max(0.0).sqrt()).sum();
    (mean_term + trace(&a.covariance) + trace(&b.covariance) - 2.0 * trace_sqrt).max(0.0)
}

fn matmul(a: &[f64], b: &[f64], n: usize) -> Vec<f64> {
    let mut out = vec![0.0; n * n];
    for i in 0..n {
        for k in 0..n {
            let aik = a[i * n + k];
            if aik == 0.0 {
                continue;
            }
            for j in 0..n {
                out[i * n + j] += aik * b[k * n + j];
            }
        }
    }
    out
}

/// The principal square root of a symmetric positive semi-definite matrix (negative eigenvalues from
/// rounding are treated as 0).
fn symmetric_sqrt(m: &[f64], n: usize) -> Vec<f64> {
    let (values, vectors) = symmetric_eigen(m, n);
    let mut out = vec![0.0; n * n];
    for (k, value) in values.iter().enumerate() {
        let root = value.max(0.0).sqrt();
        for i in 0..n {
            let vik = vectors[i * n + k] * root;
            for j in 0..n {
                out[i * n + j] += vik * vectors[j * n + k];
            }
        }
    }
    out
}

/// Eigenvalues and eigenvectors (columns, row-major) of a symmetric matrix by cyclic Jacobi rotations.
fn symmetric_eigen(m: &[f64], n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut a = m.to_vec();
    let mut v = vec![0.0; n * n];
    (0..n).for_each(|i| v[i * n + i] = 1.0);
    let norm: f64 = a.iter().map(|x| x * x).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
    for _sweep in 0..100 {
        let off: f64 = (0..n)
            .flat_map(|i| (0..n).filter(move |j| *j != i).map(move |j| (i, j)))
            .map(|(i, j)| a[i * n + j].powi(2))
            .sum();
        if off.sqrt() <= 1e-14 * norm {
            break;
        }
        for p in 0..n {
            for q in p + 1..n {
                let apq = a[p * n + q];
                if apq.abs() <= 1e-300 {
                    continue;
                }
                let theta = (a[q * n + q] - a[p * n + p]) / (2.0 * apq);
                let t = theta.signum() / (theta.abs() + (theta * theta + 1.0).sqrt());
                let t = if theta == 0.0 { 1.0 } else { t };
                let c = 1.0 / (t * t + 1.0).sqrt();
                let s = t * c;
                for k in 0..n {
                    let (akp, akq) = (a[k * n + p], a[k * n + q]);
                    a[k * n + p] = c * akp - s * akq;
                    a[k * n + q] = s * akp + c * akq;
                }
                for k in 0..n {
                    let (apk, aqk) = (a[p * n + k], a[q * n + k]);
                    a[p * n + k] = c * apk - s * aqk;
                    a[q * n + k] = s * apk + c * aqk;
                }
                for k in 0..n {
                    let (vkp, vkq) = (v[k * n + p], v[k * n + q]);
                    v[k * n + p] = c * vkp - s * vkq;
                    v[k * n + q] = s * vkp + c * vkq;
                }
            }
        }
    }
    ((0..n).map(|i| a[i * n + i]).collect(), v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};

    #[test]
    fn eigen_decomposition_reconstructs_the_matrix() {
        let m = vec![4.0, 1.0, 0.5, 1.0, 3.0, 0.2, 0.5, 0.2, 2.0];
        let root = symmetric_sqrt(&m, 3);
        let square = matmul(&root, &root, 3);
        for (x, y) in square.iter().zip(&m) {
            assert!((x - y).abs() < 1e-10, "{square:?}");
        }
    }

    #[test]
    fn distance_of_known_gaussians() {
        // Diagonal covariances: FD = |Δμ|² + Σ (sqrt(a_i) - sqrt(b_i))².
        let a = Gaussian { mean: vec![0.0, 0.0], covariance: vec![4.0, 0.0, 0.0, 1.0], dim: 2, count: 10 };
        let b = Gaussian { mean: vec![3.0, 4.0], covariance: vec![1.0, 0.0, 0.0, 9.0], dim: 2, count: 10 };
        let expected = 25.0 + (2.0f64 - 1.0).powi(2) + (1.0f64 - 3.0).powi(2);
        assert!((frechet_distance(&a, &b) - expected).abs() < 1e-9);
        assert!(frechet_distance(&a, &a).abs() < 1e-9);
    }

    #[test]
    fn samples_of_one_distribution_are_close_and_a_shift_is_seen() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let mut draw = |n: usize, shift: f32| -> Vec<f32> {
            (0..n * 4).map(|_| StandardNormal.sample(&mut rng)).map(|x: f32| x + shift).collect()
        };
        let (x, y, z) = (draw(5000, 0.0), draw(5000, 0.0), draw(5000, 1.0));
        let (gx, gy, gz) = (Gaussian::fit(&x, 4), Gaussian::fit(&y, 4), Gaussian::fit(&z, 4));
        assert!(frechet_distance(&gx, &gy) < 0.02);
        assert!((frechet_distance(&gx, &gz) - 4.0).abs() < 0.2);
    }

    /// A Gaussian's distance to itself is 0, never a rounding residue below it (which printed as -2.3e-11).
    #[test]
    fn distance_to_itself_is_never_negative() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for dim in [3, 8, 16, 32] {
            let features: Vec<f32> = (0..200 * dim).map(|_| StandardNormal.sample(&mut rng)).collect();
            let g = Gaussian::fit(&features, dim);
            let d = frechet_distance(&g, &g);
            assert!((0.0..1e-9).contains(&d), "dim {dim}: {d}");
        }
    }
}
