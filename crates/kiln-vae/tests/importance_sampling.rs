//! The importance-sampled log-likelihood that `kiln eval` reports for a VAE, checked against exact
//! marginal likelihoods of linear-Gaussian models: `z ~ p(z)`, `x | z ~ N(W z + b, σ² I)` in `R^3`.
//!
//! - Gaussian latent (`p(z) = N(0, I)`): `p(x) = N(x; b, W Wᵀ + σ² I)` in closed form (Cholesky).
//! - vMF latent (`p(z)` uniform on the circle or the sphere): `p(x)` by quadrature over the sphere, to
//!   far below the tolerances here (trapezoid in the angle, Simpson in `cos θ`).
//!
//! The estimate is built from Kiln's own pieces, as the VAE task builds it: `Posterior::repeat`, the
//! sampler of `w` and `Posterior::sample`, `Posterior::log_ratio` (the Bessel-function normaliser for
//! the vMF), and `log_mean_exp`. Only the decoder `ln p(x|z)` is the test's own.
//!
//! Two checks. Where the proposal is the exact posterior (columns of `W` orthogonal, and of equal
//! length for the vMF, whose posterior is then a vMF), every importance weight equals `p(x)`: each
//! log-weight must match `ln p(x)` to f32 rounding, whatever the sample. Otherwise the estimate is
//! random: with `K` samples its standard deviation is about `sd(w) / (√K · mean(w))` (delta method,
//! estimated from the same weights) and its bias about minus half that squared. The check is
//! `|estimate − ln p(x)| < 4 sd + 1e-4`: under the normal approximation a correct estimator fails it
//! with probability 6e-5 per case (under 1e-3 for the ten cases here; the seeds are fixed, so the
//! outcome does not change between runs). Every case also requires `sd < 0.005` nats (they are
//! 0.0006–0.0023), so that an error of two hundredths of a nat in a normaliser cannot hide inside the
//! tolerance.

use burn::prelude::*;
use kiln_vae::{KappaConfig, LatentConfig, Posterior, SamplerKind, log_mean_exp};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};
use std::f64::consts::PI;

/// A linear-Gaussian decoder `x | z ~ N(W z + b, σ² I)`, `W` given by its columns.
struct Decoder {
    columns: Vec<[f64; 3]>,
    bias: [f64; 3],
    sigma: f64,
}

impl Decoder {
    fn d(&self) -> usize {
        self.columns.len()
    }

    /// `ln N(x; W z + b, σ² I)`.
    fn log_likelihood(&self, x: &[f64; 3], z: &[f64]) -> f64 {
        let mut sq = 0.0;
        for i in 0..3 {
            let mean = self.bias[i] + self.columns.iter().zip(z).map(|(c, zj)| c[i] * zj).sum::<f64>();
            sq += ((x[i] - mean) / self.sigma).powi(2);
        }
        -0.5 * sq - 3.0 * self.sigma.ln() - 1.5 * (2.0 * PI).ln()
    }

    /// `Wᵀ (x − b)`.
    fn back_projection(&self, x: &[f64; 3]) -> Vec<f64> {
        self.columns.iter().map(|c| (0..3).map(|i| c[i] * (x[i] - self.bias[i])).sum()).collect()
    }

    /// `ln p(x)` under a standard normal prior: `ln N(x; b, W Wᵀ + σ² I)`.
    fn gaussian_marginal(&self, x: &[f64; 3]) -> f64 {
        let mut c = [[0.0; 3]; 3];
        for (i, row) in c.iter_mut().enumerate() {
            for (j, cij) in row.iter_mut().enumerate() {
                *cij = self.columns.iter().map(|col| col[i] * col[j]).sum::<f64>();
            }
            row[i] += self.sigma * self.sigma;
        }
        let l = cholesky(&c);
        let r: Vec<f64> = (0..3).map(|i| x[i] - self.bias[i]).collect();
        let y = forward_substitute(&l, &r);
        let log_det: f64 = (0..3).map(|i| 2.0 * l[i][i].ln()).sum();
        -0.5 * y.iter().map(|v| v * v).sum::<f64>() - 0.5 * log_det - 1.5 * (2.0 * PI).ln()
    }

    /// `ln p(x)` under the uniform prior on the circle (`d = 2`) or the sphere (`d = 3`), by
    /// quadrature: the trapezoid rule in the angle (exact to rounding for a smooth periodic integrand
    /// with this many points) and Simpson's rule in `u = cos θ` for the sphere.
    fn uniform_sphere_marginal(&self, x: &[f64; 3]) -> f64 {
        let angles = if self.d() == 2 { 4096 } else { 1024 };
        let phi = |j: usize| 2.0 * PI * j as f64 / angles as f64;
        let mut terms = Vec::new();
        match self.d() {
            2 => {
                // (1/2π) ∫ f dφ = (1/N) Σ f(φ_j).
                for j in 0..angles {
                    let z = [phi(j).cos(), phi(j).sin()];
                    terms.push(self.log_likelihood(x, &z) - (angles as f64).ln());
                }
            }
            3 => {
                // (1/4π) ∫∫ f du dφ, Simpson in u on 2n intervals, trapezoid in φ.
                let n = 1000;
                let h = 2.0 / (2 * n) as f64;
                for i in 0..=2 * n {
                    let u = -1.0 + h * i as f64;
                    let simpson = if i == 0 || i == 2 * n {
                        1.0
                    } else if i % 2 == 1 {
                        4.0
                    } else {
                        2.0
                    };
                    let weight = (simpson * h / 3.0) * (2.0 * PI / angles as f64) / (4.0 * PI);
                    let s = (1.0 - u * u).max(0.0).sqrt();
                    for j in 0..angles {
                        let z = [s * phi(j).cos(), s * phi(j).sin(), u];
                        terms.push(self.log_likelihood(x, &z) + weight.ln());
                    }
                }
            }
            d => panic!("quadrature for d = {d} is not written"),
        }
        log_sum_exp(&terms)
    }
}

fn cholesky(a: &[[f64; 3]; 3]) -> [[f64; 3]; 3] {
    let mut l = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..=i {
            let s: f64 = (0..j).map(|k| l[i][k] * l[j][k]).sum();
            l[i][j] = if i == j { (a[i][i] - s).sqrt() } else { (a[i][j] - s) / l[j][j] };
        }
    }
    l
}

fn forward_substitute(l: &[[f64; 3]; 3], r: &[f64]) -> Vec<f64> {
    let mut y = vec![0.0; 3];
    for i in 0..3 {
        y[i] = (r[i] - (0..i).map(|k| l[i][k] * y[k]).sum::<f64>()) / l[i][i];
    }
    y
}

/// `A⁻¹ r` for a symmetric positive definite `A`.
fn solve(a: &[[f64; 3]; 3], r: &[f64]) -> Vec<f64> {
    let l = cholesky(a);
    let y = forward_substitute(&l, r);
    let mut x = vec![0.0; 3];
    for i in (0..3).rev() {
        x[i] = (y[i] - (i + 1..3).map(|k| l[k][i] * x[k]).sum::<f64>()) / l[i][i];
    }
    x
}

fn log_sum_exp(v: &[f64]) -> f64 {
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    max + v.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
}

fn row(v: &[f64], device: &Device) -> Tensor<2> {
    let v: Vec<f32> = v.iter().map(|&t| t as f32).collect();
    let d = v.len();
    Tensor::<2>::from_data(TensorData::new(v, [1, d]), device)
}

/// Kiln's estimate from `k` samples of `posterior` (one row), with the log-weights it averaged and
/// the delta-method standard deviation of the estimate.
fn estimate(
    decoder: &Decoder,
    x: &[f64; 3],
    config: &LatentConfig,
    posterior: &Posterior,
    k: usize,
    seed: u64,
) -> (f64, Vec<f64>, f64) {
    let device = Device::flex();
    let d = config.dim();
    let mut rng = StdRng::seed_from_u64(seed);
    let repeated = posterior.repeat(k);
    let w = config.sampler().map(|s| Tensor::<2>::from_data(TensorData::new(s.draw(k, &mut rng), [k, 1]), &device));
    let eps: Vec<f32> = (0..k * d).map(|_| StandardNormal.sample(&mut rng)).collect();
    let z = repeated.sample(w, Tensor::<2>::from_data(TensorData::new(eps, [k, d]), &device));
    let ratio = repeated.log_ratio(z.clone(), config.vmf()).into_data().try_to_vec::<f32>().unwrap();
    let z = z.into_data().try_to_vec::<f32>().unwrap();
    let log_weights: Vec<f64> = (0..k)
        .map(|i| {
            let zi: Vec<f64> = z[i * d..(i + 1) * d].iter().map(|&t| f64::from(t)).collect();
            decoder.log_likelihood(x, &zi) - f64::from(ratio[i])
        })
        .collect();
    let lw: Vec<f32> = log_weights.iter().map(|&t| t as f32).collect();
    let estimate = log_mean_exp(Tensor::<2>::from_data(TensorData::new(lw, [1, k]), &device));
    let estimate = f64::from(estimate.into_data().try_to_vec::<f32>().unwrap()[0]);
    let max = log_weights.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let r: Vec<f64> = log_weights.iter().map(|l| (l - max).exp()).collect();
    let mean = r.iter().sum::<f64>() / k as f64;
    let var = r.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (k - 1) as f64;
    (estimate, log_weights, var.sqrt() / (mean * (k as f64).sqrt()))
}

fn unit(v: &[f64]) -> Vec<f64> {
    let n = v.iter().map(|t| t * t).sum::<f64>().sqrt();
    v.iter().map(|t| t / n).collect()
}

const XS: [[f64; 3]; 2] = [[1.2, -0.5, 0.4], [-0.3, 0.8, -1.1]];
const BIAS: [f64; 3] = [0.1, -0.2, 0.3];

/// Orthonormal directions in `R^3`.
const Q: [[f64; 3]; 3] = [[0.6, 0.8, 0.0], [0.0, 0.0, 1.0], [0.8, -0.6, 0.0]];

#[test]
fn exact_posterior_gives_the_marginal_in_every_sample() {
    let device = Device::flex();
    // Gaussian: W = Q diag(s); the posterior is N(P⁻¹ Wᵀ(x−b)/σ², P⁻¹), P = I + diag(s²)/σ².
    let scales = [1.5, 0.5, 1.0];
    let columns: Vec<[f64; 3]> = Q.iter().zip(scales).map(|(q, s)| q.map(|t| t * s)).collect();
    let decoder = Decoder { columns, bias: BIAS, sigma: 0.7 };
    for (n, x) in XS.iter().enumerate() {
        let exact = decoder.gaussian_marginal(x);
        let back = decoder.back_projection(x);
        let precision: Vec<f64> = scales.iter().map(|s| 1.0 + s * s / 0.49).collect();
        let mean: Vec<f64> = back.iter().zip(&precision).map(|(b, p)| b / 0.49 / p).collect();
        let log_var: Vec<f64> = precision.iter().map(|p| -p.ln()).collect();
        let posterior = Posterior::Gaussian { mean: row(&mean, &device), log_var: row(&log_var, &device) };
        let config = LatentConfig::Gaussian { d: 3 };
        let (est, log_weights, _) = estimate(&decoder, x, &config, &posterior, 64, 11 + n as u64);
        let worst = log_weights.iter().map(|l| (l - exact).abs()).fold(0.0, f64::max);
        assert!(worst < 2e-4, "Gaussian, x #{n}: a log-weight differs from ln p(x) = {exact} by {worst}");
        assert!((est - exact).abs() < 2e-4, "Gaussian, x #{n}: estimate {est}, exact {exact}");
    }
    // vMF: W = s Q (equal lengths), so p(z|x) ∝ exp(Wᵀ(x−b)·z / σ²) = vMF(Wᵀ(x−b), |Wᵀ(x−b)|/σ²).
    for d in [2, 3] {
        let columns: Vec<[f64; 3]> = Q[..d].iter().map(|q| q.map(|t| t * 1.5)).collect();
        let decoder = Decoder { columns, bias: BIAS, sigma: 0.7 };
        for sampler in [SamplerKind::Wood, SamplerKind::Table] {
            for (n, x) in XS.iter().enumerate() {
                let exact = decoder.uniform_sphere_marginal(x);
                let back = decoder.back_projection(x);
                let kappa = back.iter().map(|t| t * t).sum::<f64>().sqrt() / 0.49;
                let config = LatentConfig::Vmf { d, kappa: KappaConfig::Fixed(kappa), sampler };
                let posterior = Posterior::Vmf { mu: row(&unit(&back), &device), kappa: None };
                let (est, log_weights, _) = estimate(&decoder, x, &config, &posterior, 64, 21 + n as u64);
                let worst = log_weights.iter().map(|l| (l - exact).abs()).fold(0.0, f64::max);
                let case = format!("vMF d = {d} ({sampler:?}, kappa {kappa:.3}), x #{n}");
                assert!(worst < 2e-4, "{case}: a log-weight differs from ln p(x) = {exact} by {worst}");
                assert!((est - exact).abs() < 2e-4, "{case}: estimate {est}, exact {exact}");
            }
        }
    }
}

#[test]
fn importance_sampling_converges_to_the_marginal() {
    let device = Device::flex();
    let k = 100_000;
    let columns = vec![[1.0, 0.2, -0.6], [0.4, -0.8, 0.3], [-0.3, 0.5, 0.9]];
    let mut cases = 0;
    // Gaussian: against a correlated posterior N(P⁻¹ Wᵀ(x−b)/σ², P⁻¹), P = I + WᵀW/σ², a diagonal
    // proposal with a shifted mean and 1.3 times the posterior's marginal variances.
    let decoder = Decoder { columns: columns.clone(), bias: BIAS, sigma: 0.7 };
    let mut precision = [[0.0; 3]; 3];
    for (i, row) in precision.iter_mut().enumerate() {
        for (j, p) in row.iter_mut().enumerate() {
            *p = (0..3).map(|k| columns[i][k] * columns[j][k]).sum::<f64>() / 0.49 + f64::from(u8::from(i == j));
        }
    }
    let variance: Vec<f64> = (0..3)
        .map(|i| solve(&precision, &(0..3).map(|j| f64::from(u8::from(i == j))).collect::<Vec<_>>())[i])
        .collect();
    for (n, x) in XS.iter().enumerate() {
        let exact = decoder.gaussian_marginal(x);
        let back: Vec<f64> = decoder.back_projection(x).iter().map(|b| b / 0.49).collect();
        let mean: Vec<f64> = solve(&precision, &back).iter().map(|m| m + 0.15).collect();
        let log_var: Vec<f64> = variance.iter().map(|v| (1.3 * v).ln()).collect();
        let posterior = Posterior::Gaussian { mean: row(&mean, &device), log_var: row(&log_var, &device) };
        let (est, _, sd) = estimate(&decoder, x, &LatentConfig::Gaussian { d: 3 }, &posterior, k, 31 + n as u64);
        check(&format!("Gaussian, x #{n}"), est, exact, sd);
        cases += 1;
    }
    // vMF: the proposal's direction is Wᵀ(x−b), its κ fixed, against a posterior that is not a vMF.
    for d in [2, 3] {
        let decoder = Decoder { columns: columns[..d].to_vec(), bias: BIAS, sigma: 0.7 };
        for sampler in [SamplerKind::Wood, SamplerKind::Table] {
            for (n, x) in XS.iter().enumerate() {
                let exact = decoder.uniform_sphere_marginal(x);
                let config = LatentConfig::Vmf { d, kappa: KappaConfig::Fixed(2.0), sampler };
                let posterior = Posterior::Vmf { mu: row(&unit(&decoder.back_projection(x)), &device), kappa: None };
                let (est, _, sd) = estimate(&decoder, x, &config, &posterior, k, 41 + n as u64);
                check(&format!("vMF d = {d} ({sampler:?}), x #{n}"), est, exact, sd);
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 10);
}

fn check(case: &str, estimate: f64, exact: f64, sd: f64) {
    assert!(sd < 0.005, "{case}: the estimate's sd {sd} is too wide for the check to mean anything");
    let bound = 4.0 * sd + 1e-4;
    eprintln!("{case}: estimate {estimate:.5}, exact {exact:.5}, sd {sd:.5}");
    assert!(
        (estimate - exact).abs() < bound,
        "{case}: importance-sampled ln p(x) = {estimate}, exact {exact}, difference {} > {bound} (sd {sd})",
        (estimate - exact).abs()
    );
}
