//! The von Mises-Fisher distribution `vMF(μ, κ)` on the unit sphere `S^{d−1} ⊂ R^d`, with density
//! `C_d(κ) e^{κ μᵀz}` against the surface measure, as a fixed-κ VAE posterior (Su, "VAE part 7";
//! Davidson et al. 2018, arXiv:1804.00891).
//!
//! A sample is `z = w μ + √(1 − w²) ν`: `ν` uniform on the directions orthogonal to `μ`, and `w = μᵀz`
//! with density `∝ e^{κw} (1 − w²)^{(d−3)/2}` on `[−1, 1]`. Because κ is fixed, `w` does not depend on
//! `μ`: it is drawn on the host by either sampler here ([`WoodSampler`], [`InverseCdfTable`]) and the
//! rest is differentiable tensor algebra ([`reparameterise`]), so gradients reach `μ` exactly.
//!
//! - `log C_d(κ) = (d/2 − 1) ln κ − (d/2) ln 2π − ln I_{d/2−1}(κ)`, and `log C_d(0) = ln Γ(d/2) − ln 2 −
//!   (d/2) ln π`, the uniform density (one over the sphere's area);
//! - `A_d(κ) = E[w] = I_{d/2}(κ) / I_{d/2−1}(κ)`;
//! - `KL(vMF(μ, κ) ‖ U(S^{d−1})) = κ A_d(κ) + log C_d(κ) − log C_d(0)`, a constant: the posterior
//!   can never collapse onto the prior.
//!
//! Bessel functions are evaluated in log space ([`crate::bessel`]), finite for `d` up to hundreds and
//! `κ` up to 1e5.

use std::f64::consts::PI;

use burn::prelude::*;
use rand::{Rng, RngExt};
use rand_distr::{Beta, Distribution};

use crate::bessel::{bessel_i_ratio, log_bessel_i_and_ratio};

/// Dimension and concentration of a vMF distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VonMisesFisher {
    /// Ambient dimension `d` (the sphere is `S^{d−1}`), at least 2.
    pub d: usize,
    /// Concentration `κ ≥ 0`.
    pub kappa: f64,
}

impl VonMisesFisher {
    /// A distribution on `S^{d−1}`.
    ///
    /// # Panics
    ///
    /// If `d < 2` or `κ` is negative or not finite.
    pub fn new(d: usize, kappa: f64) -> Self {
        assert!(d >= 2, "vMF needs d >= 2, got {d}");
        assert!(kappa.is_finite() && kappa >= 0.0, "vMF needs a finite kappa >= 0, got {kappa}");
        Self { d, kappa }
    }

    fn half_d(&self) -> f64 {
        self.d as f64 / 2.0
    }

    /// `log C_d(κ)`, the log normaliser (at `κ = 0`, the log uniform density).
    pub fn log_normalizer(&self) -> f64 {
        self.log_normalizer_and_mean_resultant_length().0
    }

    /// [`Self::log_normalizer`] and [`Self::mean_resultant_length`] from one Bessel series.
    fn log_normalizer_and_mean_resultant_length(&self) -> (f64, f64) {
        let h = self.half_d();
        if self.kappa == 0.0 {
            return (libm::lgamma(h) - 2f64.ln() - h * PI.ln(), 0.0);
        }
        let (log_i, ratio) = log_bessel_i_and_ratio(h - 1.0, self.kappa);
        ((h - 1.0) * self.kappa.ln() - h * (2.0 * PI).ln() - log_i, ratio)
    }

    /// `A_d(κ) = E[μᵀz]`, the mean resultant length.
    pub fn mean_resultant_length(&self) -> f64 {
        if self.kappa == 0.0 {
            return 0.0;
        }
        bessel_i_ratio(self.half_d() - 1.0, self.kappa)
    }

    /// `A_d′(κ) = (1 − A_d)(1 + A_d) − (d − 1) A_d/κ`, the derivative of
    /// [`Self::mean_resultant_length`] (from the Bessel recurrences; `κ A_d′` is the KL's derivative,
    /// [`Self::kl_to_uniform_grad`]).
    pub fn mean_resultant_length_grad(&self) -> f64 {
        let a = self.mean_resultant_length();
        (1.0 - a) * (1.0 + a) - (self.d as f64 - 1.0) * a / self.kappa
    }

    /// `KL(vMF(μ, κ) ‖ uniform on the sphere)`, independent of `μ`.
    pub fn kl_to_uniform(&self) -> f64 {
        self.kl_to_uniform_and_grad().0
    }

    /// [`Self::kl_to_uniform`] and [`Self::kl_to_uniform_grad`] together, from one Bessel series (the
    /// log normaliser and `A_d(κ)` share it; each of the two alone costs one).
    pub fn kl_to_uniform_and_grad(&self) -> (f64, f64) {
        let (log_normalizer, a) = self.log_normalizer_and_mean_resultant_length();
        let uniform = Self { d: self.d, kappa: 0.0 }.log_normalizer();
        let kl = self.kappa * a + log_normalizer - uniform;
        (kl, self.kappa * (1.0 - a) * (1.0 + a) - (self.d as f64 - 1.0) * a)
    }

    /// `∂KL/∂κ = κ A_d′(κ) = κ (1 − A_d²) − (d − 1) A_d`, the derivative of [`Self::kl_to_uniform`]
    /// for a learned concentration. From `∂/∂κ ln I_ν(κ) = A_d + ν/κ` (ν = d/2 − 1), the log
    /// normaliser's derivative is `−A_d`, which cancels the `A_d` of `∂(κ A_d)/∂κ`; and
    /// `A_d′ = 1 − A_d² − (d − 1) A_d / κ` (the Bessel recurrences). At large κ the two terms are near
    /// `d − 1` and their difference near `(d − 1)/(2κ)`, so `A_d`'s own error (a few ulps) grows by
    /// about `4κ²/(d − 1)`: 4e-7 relative at d = 2, κ = 1e4 against a 50-digit reference, 1e-10 or
    /// better for κ ≤ 100 — far inside what an f32 training step resolves.
    pub fn kl_to_uniform_grad(&self) -> f64 {
        self.kl_to_uniform_and_grad().1
    }

    /// `ln` of the unnormalised density of `w = μᵀz` at `w ∈ (−1, 1)`.
    pub fn log_w_density(&self, w: f64) -> f64 {
        self.kappa * w + (self.d as f64 - 3.0) / 2.0 * (1.0 - w * w).ln()
    }
}

/// Wood's (1994) rejection sampler for `w`, in the parameterisation of METHODS.md §4:
/// `b = (d−1) / (2κ + √(4κ² + (d−1)²))` (the conjugate form of `(−2κ + √(4κ²+(d−1)²))/(d−1)`, free of
/// cancellation at large κ), `a = (d − 1 + 2κ + √(4κ² + (d−1)²)) / 4`, `d0 = 4ab/(1+b) − (d−1) ln(d−1)`;
/// draw `e ~ Beta((d−1)/2, (d−1)/2)` and `u ~ U(0, 1)`, set `w = (1 − (1+b)e) / (1 − (1−b)e)` and
/// `t = 2ab / (1 − (1−b)e)`, accept when `(d−1) ln t − t + d0 ≥ ln u`.
#[derive(Debug, Clone)]
pub struct WoodSampler {
    a: f64,
    b: f64,
    /// `√(4κ² + (d−1)²)`.
    root: f64,
    d0: f64,
    m1: f64,
    beta: Beta<f64>,
}

impl WoodSampler {
    /// A sampler for `vmf`'s `w`.
    ///
    /// # Panics
    ///
    /// Never for a valid [`VonMisesFisher`].
    pub fn new(vmf: VonMisesFisher) -> Self {
        let m1 = vmf.d as f64 - 1.0;
        let k = vmf.kappa;
        let root = (4.0 * k * k + m1 * m1).sqrt();
        let b = m1 / (2.0 * k + root);
        let a = (m1 + 2.0 * k + root) / 4.0;
        let d0 = 4.0 * a * b / (1.0 + b) - m1 * m1.ln();
        let beta = Beta::new(m1 / 2.0, m1 / 2.0).expect("positive Beta parameters");
        Self { a, b, root, d0, m1, beta }
    }

    /// `w = h(e, κ) = (1 − (1+b)e) / (1 − (1−b)e)` for a Beta draw `e` (accepted or not), and its
    /// derivative in κ with `e` held fixed, `∂h/∂κ = ∂h/∂b · ∂b/∂κ = 4 e (1 − e) b / ((1 − (1−b)e)² √(4κ² + (d−1)²))`
    /// (from `∂h/∂b = −2e(1−e)/(1 − (1−b)e)²` and `∂b/∂κ = −2b/√(4κ² + (d−1)²)`): the reparameterised
    /// gradient of an accepted proposal (Davidson et al. 2018, §3.2; Naesseth et al. 2017), without the
    /// correction term for the acceptance step's own dependence on κ.
    pub fn w_and_grad(&self, e: f64) -> (f64, f64) {
        let denom = 1.0 - (1.0 - self.b) * e;
        let w = (1.0 - (1.0 + self.b) * e) / denom;
        (w, 4.0 * e * (1.0 - e) * self.b / (denom * denom * self.root))
    }

    /// The score of the accepted draw, `∂/∂κ ln π(e | κ)`: the factor of the gradient's correction
    /// term `g_cor = E_π[f(h(e, κ)) ∂/∂κ ln π(e | κ)]` (Naesseth et al. 2017; Davidson et al. 2018,
    /// §3.2), which the training gradient leaves out. An accepted `e` has the density
    /// `π(e | κ) = q(h(e, κ) | κ) |∂h/∂e|` (the sampler is exact and `h` monotone in `e`), with
    /// `q(w | κ) ∝ e^{κw} (1 − w²)^{(d−3)/2} / Z(κ)`, `∂ ln Z/∂κ = A_d(κ)` and
    /// `|∂h/∂e| = 2b / (1 − (1−b)e)²`, so the score is
    /// `w + κ w′ − (d − 3) w w′/(1 − w²) − A_d(κ) − 2/√(4κ² + (d−1)²) + 4be / ((1 − (1−b)e) √(4κ² + (d−1)²))`
    /// with `w′ = ∂h/∂κ`. `vmf` is the distribution this sampler was built for.
    pub fn acceptance_score(&self, vmf: &VonMisesFisher, e: f64) -> f64 {
        let (w, dw) = self.w_and_grad(e);
        let denom = 1.0 - (1.0 - self.b) * e;
        let shape = if vmf.d == 3 { 0.0 } else { (vmf.d as f64 - 3.0) * w * dw / ((1.0 - w) * (1.0 + w)) };
        w + vmf.kappa * dw - shape - vmf.mean_resultant_length() - 2.0 / self.root
            + 4.0 * self.b * e / (denom * self.root)
    }

    /// One accepted Beta draw `e` and the number of proposals it took.
    pub fn sample_accepted_e_counted<R: Rng + ?Sized>(&self, rng: &mut R) -> (f64, usize) {
        let mut proposals = 0;
        loop {
            proposals += 1;
            let e = self.beta.sample(rng);
            let u: f64 = rng.random();
            let t = 2.0 * self.a * self.b / (1.0 - (1.0 - self.b) * e);
            if self.m1 * t.ln() - t + self.d0 >= u.ln() {
                return (e, proposals);
            }
        }
    }

    /// One `w`.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        self.w_and_grad(self.sample_accepted_e(rng)).0
    }

    /// The Beta draw `e` of one accepted proposal (its `w` is [`Self::w_and_grad`]`(e).0`).
    pub fn sample_accepted_e<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        self.sample_accepted_e_counted(rng).0
    }
}

/// Su's inverse-CDF sampler for `w`: the density tabulated on a fine grid, its cumulative sum
/// inverted by interpolation. The grid is uniform in the angle `θ = arccos w` (density
/// `∝ e^{κ cos θ} sin^{d−2} θ`), which resolves the narrow peak near `w = 1` at large κ that a grid
/// uniform in `w` would miss, and has no endpoint singularity at `d = 2`.
#[derive(Debug, Clone)]
pub struct InverseCdfTable {
    theta: Vec<f64>,
    cdf: Vec<f64>,
}

impl InverseCdfTable {
    /// Tabulate on `points` angles (at least 2; 2^16 is plenty up to κ = 1e4).
    ///
    /// # Panics
    ///
    /// If `points < 2`.
    pub fn new(vmf: VonMisesFisher, points: usize) -> Self {
        assert!(points >= 2, "the table needs at least 2 points");
        let theta: Vec<f64> = (0..points).map(|i| PI * i as f64 / (points - 1) as f64).collect();
        let log_density: Vec<f64> = theta
            .iter()
            .map(|&t| {
                let s = t.sin();
                if s <= 0.0 && vmf.d > 2 {
                    f64::NEG_INFINITY
                } else {
                    vmf.kappa * t.cos() + (vmf.d as f64 - 2.0) * s.max(f64::MIN_POSITIVE).ln()
                }
            })
            .collect();
        let max = log_density.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let density: Vec<f64> = log_density.iter().map(|&l| (l - max).exp()).collect();
        // Cumulative trapezoid rule, normalised to end at 1.
        let mut cdf = Vec::with_capacity(points);
        cdf.push(0.0);
        for i in 1..points {
            cdf.push(cdf[i - 1] + 0.5 * (density[i - 1] + density[i]));
        }
        let total = cdf[points - 1];
        cdf.iter_mut().for_each(|c| *c /= total);
        Self { theta, cdf }
    }

    /// The `w` at cumulative probability `u ∈ [0, 1]` (in θ, linear between grid points).
    pub fn quantile(&self, u: f64) -> f64 {
        let i = self.cdf.partition_point(|&c| c < u).clamp(1, self.cdf.len() - 1);
        let (c0, c1) = (self.cdf[i - 1], self.cdf[i]);
        let f = if c1 > c0 { ((u - c0) / (c1 - c0)).clamp(0.0, 1.0) } else { 0.0 };
        (self.theta[i - 1] + f * (self.theta[i] - self.theta[i - 1])).cos()
    }

    /// One `w`.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> f64 {
        self.quantile(rng.random())
    }
}

/// Either sampler of `w`, chosen by config.
#[derive(Debug, Clone)]
pub enum WSampler {
    /// Wood's rejection sampler.
    Wood(WoodSampler),
    /// Su's inverse-CDF table.
    Table(InverseCdfTable),
}

impl WSampler {
    /// `n` draws of `w` as `f32`.
    pub fn draw<R: Rng + ?Sized>(&self, n: usize, rng: &mut R) -> Vec<f32> {
        match self {
            Self::Wood(s) => (0..n).map(|_| s.sample(rng) as f32).collect(),
            Self::Table(s) => (0..n).map(|_| s.sample(rng) as f32).collect(),
        }
    }
}

/// Smallest `1 − w²` under the square root of [`reparameterise`].
const SIDE_FLOOR: f32 = 1e-12;

/// `z = w μ + √(1 − w²) ν`, with `ν` the normalised part of `eps` orthogonal to `μ`; gradients flow
/// through `μ` (and through `ν`'s projection) and, for a learned κ, through `w`. `√` is taken of
/// `max(1 − w², 1e-12)`.
///
/// # Shapes
///
/// - `mu`: `[b, d]`, unit rows; `w`: `[b, 1]`; `eps`: `[b, d]` standard normal → `[b, d]`
pub fn reparameterise(mu: Tensor<2>, w: Tensor<2>, eps: Tensor<2>) -> Tensor<2> {
    let along = (eps.clone() * mu.clone()).sum_dim(1);
    let orthogonal = eps - mu.clone() * along;
    let norm = orthogonal.clone().powf_scalar(2.0).sum_dim(1).sqrt().clamp_min(1e-12);
    let nu = orthogonal / norm;
    // The floor keeps the square root's derivative finite where w rounds to ±1 in f32 (a large
    // learned κ): `clamp_min` passes no gradient there, and 0 · ∞ would be NaN.
    let side = (w.clone().powf_scalar(2.0).neg() + 1.0).clamp_min(SIDE_FLOOR).sqrt();
    mu * w + nu * side
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// `A_d(κ)` against SciPy (`scripts/reference/bessel_reference.py`) and its limits.
    #[test]
    fn mean_resultant_length_matches_scipy() {
        let cases = [
            (3, 1.0, 0.31303528549933124),
            (3, 20.0, 0.9500000000000001),
            (10, 20.0, 0.7955190678654247),
            (256, 1e4, 0.9873306485628389),
            (256, 1.0, 0.0039061908591837306),
            (64, 100.0, 0.7323801940965822),
        ];
        for (d, k, expected) in cases {
            let got = VonMisesFisher::new(d, k).mean_resultant_length();
            assert!((got - expected).abs() < 1e-13, "A_{d}({k}) = {got}, SciPy {expected}");
        }
        // d = 3 closed form: coth κ − 1/κ.
        let k: f64 = 7.0;
        assert!((VonMisesFisher::new(3, k).mean_resultant_length() - (1.0 / k.tanh() - 1.0 / k)).abs() < 1e-14);
    }

    /// Finite everywhere the issue asks: d up to 256, κ up to 1e4, and the KL strictly positive.
    #[test]
    fn finite_and_positive_over_the_range() {
        for d in [2, 3, 5, 10, 20, 64, 128, 256] {
            let mut last = 0.0;
            for k in [1e-3, 0.1, 1.0, 10.0, 100.0, 1e3, 1e4] {
                let v = VonMisesFisher::new(d, k);
                let (c, a, kl) = (v.log_normalizer(), v.mean_resultant_length(), v.kl_to_uniform());
                assert!(c.is_finite() && a.is_finite() && kl.is_finite(), "d {d} κ {k}: {c} {a} {kl}");
                assert!(kl > 0.0, "KL must be > 0 for κ > 0: d {d} κ {k}: {kl}");
                assert!(kl > last, "KL grows with κ: d {d} κ {k}");
                last = kl;
            }
            assert_eq!(VonMisesFisher::new(d, 0.0).kl_to_uniform(), 0.0);
        }
    }

    /// The closed-form KL equals numerical integration: `q/p` depends on `z` only through `w = cos θ`,
    /// so `KL = ∫ f(θ) ln(f(θ)/g(θ)) dθ` with `f ∝ e^{κ cos θ} sin^{d−2} θ` and `g ∝ sin^{d−2} θ`, both
    /// normalised numerically (Simpson's rule on 20,001 points).
    #[test]
    fn kl_equals_numerical_integration() {
        for (d, k) in [(2, 0.5), (3, 1.0), (3, 20.0), (4, 5.0), (5, 10.0), (8, 3.0)] {
            let n = 20_000;
            let h = PI / n as f64;
            let simpson = |f: &dyn Fn(f64) -> f64| {
                (0..=n)
                    .map(|i| {
                        let w = if i == 0 || i == n {
                            1.0
                        } else if i % 2 == 1 {
                            4.0
                        } else {
                            2.0
                        };
                        w * f(i as f64 * h)
                    })
                    .sum::<f64>()
                    * h
                    / 3.0
            };
            let base = |t: f64| t.sin().powi(d as i32 - 2);
            let f_raw = |t: f64| (k * (t.cos() - 1.0)).exp() * base(t);
            let (zf, zg) = (simpson(&f_raw), simpson(&base));
            let integrand = |t: f64| {
                let f = f_raw(t) / zf;
                let g = base(t) / zg;
                if f > 0.0 { f * (f / g).ln() } else { 0.0 }
            };
            let numeric = simpson(&integrand);
            let closed = VonMisesFisher::new(d, k).kl_to_uniform();
            assert!((numeric - closed).abs() < 1e-7, "d {d} κ {k}: numeric {numeric}, closed form {closed}");
        }
    }

    fn draws(sampler: &WSampler, n: usize, seed: u64) -> Vec<f64> {
        let mut rng = StdRng::seed_from_u64(seed);
        sampler.draw(n, &mut rng).into_iter().map(f64::from).collect()
    }

    const CASES: [(usize, f64); 6] = [(2, 1.0), (3, 20.0), (5, 0.5), (10, 50.0), (64, 100.0), (256, 1e4)];

    /// Both samplers: the sample mean of `w` is `A_d(κ)` within 5 standard errors.
    #[test]
    fn sample_mean_is_the_mean_resultant_length() {
        for (d, k) in CASES {
            let v = VonMisesFisher::new(d, k);
            for sampler in [WSampler::Wood(WoodSampler::new(v)), WSampler::Table(InverseCdfTable::new(v, 1 << 16))] {
                let n = 40_000;
                let w = draws(&sampler, n, 11);
                let mean = w.iter().sum::<f64>() / n as f64;
                let var = w.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1) as f64;
                let se = (var / n as f64).sqrt();
                let a = v.mean_resultant_length();
                assert!((mean - a).abs() < 5.0 * se, "{sampler:?} d {d} κ {k}: mean {mean}, A_d {a}, se {se}");
                assert!(w.iter().all(|x| (-1.0..=1.0).contains(x)));
            }
        }
    }

    /// Wood and the table agree in distribution: two-sample Kolmogorov-Smirnov statistic below the
    /// 0.1% critical value `1.95 √(2/n)`.
    #[test]
    fn samplers_agree_kolmogorov_smirnov() {
        for (d, k) in CASES {
            let v = VonMisesFisher::new(d, k);
            let n = 20_000;
            let mut a = draws(&WSampler::Wood(WoodSampler::new(v)), n, 1);
            let mut b = draws(&WSampler::Table(InverseCdfTable::new(v, 1 << 16)), n, 2);
            a.sort_by(f64::total_cmp);
            b.sort_by(f64::total_cmp);
            let (mut i, mut j, mut ks) = (0, 0, 0.0f64);
            while i < n && j < n {
                if a[i] <= b[j] {
                    i += 1;
                } else {
                    j += 1;
                }
                ks = ks.max((i as f64 - j as f64).abs() / n as f64);
            }
            let critical = 1.95 * (2.0 / n as f64).sqrt();
            assert!(ks < critical, "d {d} κ {k}: KS {ks} >= {critical}");
        }
    }

    /// Central difference in f64 of `f` at `x` with step `h`.
    fn central(f: impl Fn(f64) -> f64, x: f64, h: f64) -> f64 {
        (f(x + h) - f(x - h)) / (2.0 * h)
    }

    /// `ln π(e | κ)` up to a constant in κ, written from its definition: the vMF's density of
    /// `w = h(e, κ)` (unnormalised, times `C_d(κ)`) and the Jacobian `|∂h/∂e| = 2b/(1 − (1−b)e)²`.
    fn log_accepted_density(d: usize, kappa: f64, e: f64) -> f64 {
        let vmf = VonMisesFisher::new(d, kappa);
        let sampler = WoodSampler::new(vmf);
        let w = sampler.w_and_grad(e).0;
        let denom = 1.0 - (1.0 - sampler.b) * e;
        vmf.log_w_density(w) + vmf.log_normalizer() + (2.0 * sampler.b).ln() - 2.0 * denom.ln()
    }

    /// The score of the accepted draw against central finite differences of `ln π(e | κ)` in f64,
    /// over d from 2 to 64, κ from 0.5 to 2000 and e across (0, 1).
    #[test]
    fn acceptance_score_matches_finite_differences() {
        for d in [2usize, 3, 5, 11, 21, 64] {
            for kappa in [0.5, 5.0, 50.0, 340.0, 2000.0] {
                let vmf = VonMisesFisher::new(d, kappa);
                let sampler = WoodSampler::new(vmf);
                for e in [0.05, 0.3, 0.5, 0.7, 0.95] {
                    let got = sampler.acceptance_score(&vmf, e);
                    let fd = central(|k| log_accepted_density(d, k, e), kappa, 1e-5 * kappa.max(1.0));
                    assert!(
                        (got - fd).abs() <= 1e-6 * fd.abs().max(1.0),
                        "d {d}, kappa {kappa}, e {e}: score {got}, finite differences {fd}"
                    );
                }
            }
        }
    }

    /// Under the accepted draws the score has mean zero (a score's identity), and the correction term
    /// completes the reparameterised one: for `f(w) = w`, `E[∂h/∂κ] + E[w · score] = A_d′(κ) =
    /// 1 − A_d² − (d − 1) A_d/κ`, within four standard errors of 400,000 draws. At d = 3, κ = 1 the
    /// correction is a fifth of `A_d′` (`examples/wood_correction.rs`) and the reparameterised term
    /// alone misses it by hundreds of standard errors, so the identity tests the correction, not only
    /// the sum.
    #[test]
    fn correction_term_completes_the_gradient_of_the_mean() {
        let mut rng = StdRng::seed_from_u64(11);
        let n = 400_000;
        for (d, kappa) in [(3usize, 1.0), (5, 5.0), (21, 20.0), (21, 340.0)] {
            let vmf = VonMisesFisher::new(d, kappa);
            let sampler = WoodSampler::new(vmf);
            let (mut score, mut rep, mut total) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
            for _ in 0..n {
                let e = sampler.sample_accepted_e(&mut rng);
                let (w, dw) = sampler.w_and_grad(e);
                let s = sampler.acceptance_score(&vmf, e);
                score.push(s);
                rep.push(dw);
                total.push(dw + w * s);
            }
            let mean_se = |v: &[f64]| {
                let m = v.iter().sum::<f64>() / v.len() as f64;
                let var = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (v.len() - 1) as f64;
                (m, (var / v.len() as f64).sqrt())
            };
            let exact = vmf.mean_resultant_length_grad();
            let (s, s_se) = mean_se(&score);
            assert!(s.abs() < 4.0 * s_se, "d {d}, kappa {kappa}: score mean {s} ± {s_se}");
            let (g, g_se) = mean_se(&total);
            assert!((g - exact).abs() < 4.0 * g_se, "d {d}, kappa {kappa}: g_rep + g_cor {g} ± {g_se}, exact {exact}");
            if d == 3 {
                let (r, r_se) = mean_se(&rep);
                assert!(
                    (r - exact).abs() > 20.0 * r_se,
                    "d {d}, kappa {kappa}: g_rep alone {r} ± {r_se}, exact {exact}"
                );
            }
        }
    }

    /// `∂KL/∂κ` against central finite differences of `KL(κ)` itself in f64, for d from 2 to 256 and
    /// κ from 0.05 to 1e4 (step 1e-5 max(κ, 10)), and positive everywhere (the KL grows with κ). The
    /// differences lose digits where the KL is a small difference of large terms (κ = 1e4: the KL's
    /// error over a step of 0.1 is 3e-5 of the derivative), hence the tolerance growing with κ; the
    /// closed form's own accuracy is the next test's.
    #[test]
    fn kl_gradient_in_kappa_matches_finite_differences() {
        for d in [2usize, 3, 5, 10, 20, 64, 256] {
            for kappa in [0.05, 0.5, 1.0, 5.0, 20.0, 100.0, 1e3, 1e4] {
                let kl = |k: f64| VonMisesFisher::new(d, k).kl_to_uniform();
                let fd = central(kl, kappa, 1e-5 * kappa.max(10.0));
                let exact = VonMisesFisher::new(d, kappa).kl_to_uniform_grad();
                let err = (exact - fd).abs() / fd.abs();
                let tolerance = 1e-6 * (kappa / 100.0).max(1.0);
                assert!(
                    err < tolerance,
                    "d {d}, kappa {kappa}: exact {exact}, finite differences {fd}, relative error {err}"
                );
                assert!(exact > 0.0, "d {d}, kappa {kappa}: {exact}");
            }
        }
    }

    /// `∂KL/∂κ` against 50-digit central differences of the KL by mpmath
    /// (`scripts/reference/vmf_kappa_gradients.py`, an implementation independent of this one).
    #[test]
    fn kl_gradient_in_kappa_matches_a_50_digit_reference() {
        const REFERENCE: [(usize, f64, f64); 9] = [
            (2, 0.05, 0.024976578766256043),
            (2, 20.0, 0.025677513106701377),
            (2, 1000.0, 0.0005002503757832876),
            (2, 10000.0, 5.0002500375078145e-5),
            (5, 10000.0, 0.00019997999699959995),
            (10, 20.0, 0.18331664246169056),
            (64, 100.0, 0.22197290142059297),
            (256, 0.05, 0.0001953124778215303),
            (256, 10000.0, 0.012588701313795503),
        ];
        for (d, kappa, want) in REFERENCE {
            let got = VonMisesFisher::new(d, kappa).kl_to_uniform_grad();
            let err = (got - want).abs() / want;
            // Above κ = 100 the cancellation above costs digits: 4.1e-7 at d = 2, κ = 1e4 (the series
            // summed from k = 0 in log space, before the walk from its peak, was at 2.8e-6).
            let tolerance = if kappa <= 100.0 { 1e-10 } else { 1e-6 };
            assert!(err < tolerance, "d {d}, kappa {kappa}: {got} against {want}, relative error {err}");
        }
    }

    /// Wood's `w = h(e, κ)` with `e` fixed: its κ-derivative against central finite differences of the
    /// sampler rebuilt at `κ ± h`, over d from 2 to 256, κ from 0.05 to 1e4 and e across (0, 1); and
    /// the value equals the sampler's own formula.
    #[test]
    fn wood_w_gradient_in_kappa_matches_finite_differences() {
        for d in [2usize, 3, 5, 10, 20, 64, 256] {
            for kappa in [0.05, 0.5, 1.0, 5.0, 20.0, 100.0, 1e3, 1e4] {
                let sampler = WoodSampler::new(VonMisesFisher::new(d, kappa));
                for e in [0.001, 0.1, 0.3, 0.5, 0.7, 0.9, 0.999] {
                    let w_at = |k: f64| WoodSampler::new(VonMisesFisher::new(d, k)).w_and_grad(e).0;
                    let (w, grad) = sampler.w_and_grad(e);
                    let b = sampler.b;
                    assert!((w - (1.0 - (1.0 + b) * e) / (1.0 - (1.0 - b) * e)).abs() < 1e-15);
                    let fd = central(w_at, kappa, kappa * 1e-5);
                    let err = (grad - fd).abs() / fd.abs().max(1e-10);
                    assert!(
                        err < 1e-5 || (grad - fd).abs() < 1e-12,
                        "d {d}, kappa {kappa}, e {e}: exact {grad}, finite differences {fd}, relative error {err}"
                    );
                    assert!(grad >= 0.0, "w grows with kappa: {grad}");
                }
            }
        }
    }

    /// The gradient in `w` (a learned κ's path) is `Σ_j μ_j − w/√(1−w²) Σ_j ν_j` per row, and stays
    /// finite where `w` is ±1 in f32, which a large κ draws (the square root's derivative at 0 once
    /// made the κ head's weights NaN on the circle).
    #[test]
    fn reparameterised_gradient_in_w_is_finite_at_the_poles() {
        let device = Device::flex().autodiff();
        let mu = Tensor::<2>::from_floats([[0.6, 0.8], [1.0, 0.0], [0.0, -1.0]], &device);
        let eps = Tensor::<2>::from_floats([[0.3, -1.2], [0.4, 0.9], [-0.7, 0.2]], &device);
        let w = Tensor::<2>::from_floats([[0.5], [1.0], [-1.0]], &device).require_grad();
        let grads = reparameterise(mu, w.clone(), eps).sum().backward();
        let g: Vec<f32> = w.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
        assert!(g.iter().all(|v| v.is_finite()), "{g:?}");
        // Row 0: ν is the unit part of ε orthogonal to μ = (0.6, 0.8): (0.8, −0.6) up to sign.
        let along: f64 = 0.3 * 0.6 - 1.2 * 0.8;
        let orth = [0.3 - 0.6 * along, -1.2 - 0.8 * along];
        let norm = (orth[0] * orth[0] + orth[1] * orth[1]).sqrt();
        let want = (0.6 + 0.8) - 0.5 / 0.75f64.sqrt() * (orth[0] + orth[1]) / norm;
        assert!((f64::from(g[0]) - want).abs() < 1e-5, "{} vs {want}", g[0]);
    }

    /// Samples have unit norm and `μᵀz = w`.
    #[test]
    fn reparameterised_samples_are_unit_with_the_drawn_w() {
        let device = Device::flex();
        let (b, d) = (64, 10);
        let mut rng = StdRng::seed_from_u64(3);
        let raw: Vec<f32> = (0..b * d).map(|_| rng.random::<f32>() - 0.5).collect();
        let mu = Tensor::<2>::from_data(TensorData::new(raw, [b, d]), &device);
        let mu = mu.clone() / mu.powf_scalar(2.0).sum_dim(1).sqrt();
        let w_values = WSampler::Wood(WoodSampler::new(VonMisesFisher::new(d, 20.0))).draw(b, &mut rng);
        let w = Tensor::<2>::from_data(TensorData::new(w_values.clone(), [b, 1]), &device);
        let eps = Tensor::<2>::random([b, d], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let z = reparameterise(mu.clone(), w, eps);
        let norms: Vec<f32> = z.clone().powf_scalar(2.0).sum_dim(1).sqrt().into_data().try_to_vec::<f32>().unwrap();
        assert!(norms.iter().all(|n| (n - 1.0).abs() < 1e-5), "{norms:?}");
        let dots: Vec<f32> = (z * mu).sum_dim(1).into_data().try_to_vec::<f32>().unwrap();
        for (dot, w) in dots.iter().zip(&w_values) {
            assert!((dot - w).abs() < 1e-5, "μᵀz = {dot}, w = {w}");
        }
    }
}
