//! The latent distribution, chosen by `[model.latent]`: a von Mises-Fisher posterior with fixed κ and
//! a uniform prior on the sphere, or the Gaussian VAE's diagonal normal posterior and standard normal
//! prior (Kingma & Welling 2014), as the baseline with the same networks.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::vmf::{InverseCdfTable, VonMisesFisher, WSampler, WoodSampler, reparameterise};

/// Which sampler draws `w = μᵀz` for the vMF latent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SamplerKind {
    /// Wood's rejection sampler.
    #[default]
    Wood,
    /// Su's inverse-CDF table.
    Table,
}

/// `[model.latent]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LatentConfig {
    /// `vMF(μ(x), κ)` on `S^{d−1}`, uniform prior.
    Vmf {
        /// Ambient dimension (`d = 3`: a 2-D latent sphere).
        d: usize,
        /// Fixed concentration.
        kappa: f64,
        /// Sampler of `w`.
        #[serde(default)]
        sampler: SamplerKind,
    },
    /// `N(m(x), diag σ²(x))` on `R^d`, standard normal prior.
    Gaussian {
        /// Latent dimension.
        d: usize,
    },
}

impl LatentConfig {
    /// Check the dimension and κ.
    ///
    /// # Errors
    ///
    /// `d` too small or κ out of range.
    pub fn validate(&self) -> kiln_task::Result<()> {
        match self {
            Self::Vmf { d, kappa, .. } => {
                kiln_task::ensure!(*d >= 2, "model.latent.d must be at least 2 for a vMF latent (the sphere S^(d-1))");
                kiln_task::ensure!(
                    kappa.is_finite() && *kappa > 0.0 && *kappa <= 1e5,
                    "model.latent.kappa must be in (0, 1e5], got {kappa}"
                );
            }
            Self::Gaussian { d } => kiln_task::ensure!(*d >= 1, "model.latent.d must be at least 1"),
        }
        Ok(())
    }

    /// The latent dimension.
    pub fn dim(&self) -> usize {
        match self {
            Self::Vmf { d, .. } | Self::Gaussian { d } => *d,
        }
    }

    /// The vMF distribution, for a vMF latent.
    pub fn vmf(&self) -> Option<VonMisesFisher> {
        match self {
            Self::Vmf { d, kappa, .. } => Some(VonMisesFisher::new(*d, *kappa)),
            Self::Gaussian { .. } => None,
        }
    }

    /// The sampler of `w`, for a vMF latent.
    pub fn sampler(&self) -> Option<WSampler> {
        match self {
            Self::Vmf { sampler: SamplerKind::Wood, .. } => self.vmf().map(|v| WSampler::Wood(WoodSampler::new(v))),
            Self::Vmf { sampler: SamplerKind::Table, .. } => {
                self.vmf().map(|v| WSampler::Table(InverseCdfTable::new(v, 1 << 16)))
            }
            Self::Gaussian { .. } => None,
        }
    }

    /// The posterior head on a `feature`-wide encoder output.
    pub fn init(&self, feature: usize, device: &Device) -> Latent {
        match self {
            Self::Vmf { d, .. } => Latent::Vmf(VmfLatent { mean: LinearConfig::new(feature, *d).init(device) }),
            Self::Gaussian { d } => Latent::Gaussian(GaussianLatent {
                mean: LinearConfig::new(feature, *d).init(device),
                log_var: LinearConfig::new(feature, *d).init(device),
            }),
        }
    }
}

/// Encoder feature → posterior parameters.
#[derive(Module, Debug)]
pub enum Latent {
    /// Mean direction.
    Vmf(VmfLatent),
    /// Mean and log-variance.
    Gaussian(GaussianLatent),
}

/// `μ = normalise(W h + b)`.
#[derive(Module, Debug)]
pub struct VmfLatent {
    /// The unnormalised direction.
    pub mean: Linear,
}

/// `m = W_m h + b_m`, `ln σ² = W_v h + b_v`.
#[derive(Module, Debug)]
pub struct GaussianLatent {
    /// Posterior mean.
    pub mean: Linear,
    /// Posterior log-variance.
    pub log_var: Linear,
}

/// Posterior parameters of a batch (a transient value: the size difference of the variants does not
/// matter).
#[derive(Debug, Clone)]
#[allow(clippy::large_enum_variant)]
pub enum Posterior {
    /// Unit mean directions `[b, d]`.
    Vmf {
        /// `μ`.
        mu: Tensor<2>,
    },
    /// Means and log-variances `[b, d]`.
    Gaussian {
        /// `m`.
        mean: Tensor<2>,
        /// `ln σ²`.
        log_var: Tensor<2>,
    },
}

impl Latent {
    /// # Shapes
    ///
    /// - `feature`: `[b, f]` → parameters with `[b, d]` tensors
    pub fn posterior(&self, feature: Tensor<2>) -> Posterior {
        match self {
            Self::Vmf(l) => {
                let m = l.mean.forward(feature);
                let norm = m.clone().powf_scalar(2.0).sum_dim(1).sqrt().clamp_min(1e-12);
                Posterior::Vmf { mu: m / norm }
            }
            Self::Gaussian(l) => Posterior::Gaussian {
                mean: l.mean.forward(feature.clone()),
                log_var: l.log_var.forward(feature).clamp(-30.0, 20.0),
            },
        }
    }
}

impl Posterior {
    /// Batch size.
    pub fn batch(&self) -> usize {
        match self {
            Self::Vmf { mu } => mu.dims()[0],
            Self::Gaussian { mean, .. } => mean.dims()[0],
        }
    }

    /// Repeat each row `k` times (row `i` becomes rows `i·k .. i·k + k`).
    pub fn repeat(&self, k: usize) -> Self {
        let rep = |t: &Tensor<2>| {
            let [b, d] = t.dims();
            t.clone().unsqueeze_dim::<3>(1).expand([b, k, d]).reshape([b * k, d])
        };
        match self {
            Self::Vmf { mu } => Self::Vmf { mu: rep(mu) },
            Self::Gaussian { mean, log_var } => Self::Gaussian { mean: rep(mean), log_var: rep(log_var) },
        }
    }

    /// A reparameterised sample: `z = wμ + √(1−w²)ν` (vMF, `w` `[b, 1]` drawn on the host), or
    /// `z = m + σ ε` (Gaussian, `w` unused). `eps` is standard normal `[b, d]`.
    pub fn sample(&self, w: Option<Tensor<2>>, eps: Tensor<2>) -> Tensor<2> {
        match self {
            Self::Vmf { mu } => reparameterise(mu.clone(), w.expect("a vMF sample needs w"), eps),
            Self::Gaussian { mean, log_var } => mean.clone() + log_var.clone().mul_scalar(0.5).exp() * eps,
        }
    }

    /// The most likely code: `μ`, or `m`.
    pub fn mode(&self) -> Tensor<2> {
        match self {
            Self::Vmf { mu } => mu.clone(),
            Self::Gaussian { mean, .. } => mean.clone(),
        }
    }

    /// `KL(q(z|x) ‖ p(z))` per example `[b]`: the vMF constant of `vmf`, or the Gaussian closed form
    /// `−½ Σ (1 + ln σ² − m² − σ²)`.
    pub fn kl(&self, vmf: Option<VonMisesFisher>) -> Tensor<1> {
        match self {
            Self::Vmf { mu } => {
                let kl = vmf.expect("a vMF posterior needs its distribution").kl_to_uniform();
                Tensor::<1>::full([mu.dims()[0]], kl, &mu.device())
            }
            Self::Gaussian { mean, log_var } => {
                let terms = log_var.clone().add_scalar(1.0) - mean.clone().powf_scalar(2.0) - log_var.clone().exp();
                terms.sum_dim(1).squeeze_dim::<1>(1).mul_scalar(-0.5)
            }
        }
    }

    /// `ln q(z|x) − ln p(z)` per row `[b]`, for importance sampling.
    pub fn log_ratio(&self, z: Tensor<2>, vmf: Option<VonMisesFisher>) -> Tensor<1> {
        match self {
            Self::Vmf { mu } => {
                let v = vmf.expect("a vMF posterior needs its distribution");
                let uniform = VonMisesFisher::new(v.d, 0.0).log_normalizer();
                (mu.clone() * z)
                    .sum_dim(1)
                    .squeeze_dim::<1>(1)
                    .mul_scalar(v.kappa)
                    .add_scalar(v.log_normalizer() - uniform)
            }
            Self::Gaussian { mean, log_var } => {
                // ln N(z; m, σ²) − ln N(z; 0, I); the ln 2π terms cancel.
                let q = (z.clone() - mean.clone()).powf_scalar(2.0) / log_var.clone().exp() + log_var.clone();
                let p = z.powf_scalar(2.0);
                (p - q).sum_dim(1).squeeze_dim::<1>(1).mul_scalar(0.5)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution as TensorDistribution;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn t2(v: Vec<f32>, shape: [usize; 2], device: &Device) -> Tensor<2> {
        Tensor::<2>::from_data(TensorData::new(v, shape), device)
    }

    fn vec1(t: Tensor<1>) -> Vec<f32> {
        t.into_data().try_to_vec::<f32>().unwrap()
    }

    /// Gaussian KL by hand: m = (1, 0), ln σ² = (0, ln 2) gives `1 − ln 2 / 2`.
    #[test]
    fn gaussian_kl_by_hand() {
        let device = Device::flex();
        let p = Posterior::Gaussian {
            mean: t2(vec![1.0, 0.0], [1, 2], &device),
            log_var: t2(vec![0.0, 2f32.ln()], [1, 2], &device),
        };
        let kl = vec1(p.kl(None))[0];
        assert!((f64::from(kl) - (1.0 - 2f64.ln() / 2.0)).abs() < 1e-6, "{kl}");
    }

    /// `E_q[ln q(z|x) − ln p(z)] = KL(q ‖ p)`: the Monte Carlo mean of [`Posterior::log_ratio`] over
    /// reparameterised samples equals the closed-form KL, for the vMF (Wood and table samplers) and
    /// the Gaussian. This ties the sampler, the reparameterisation, the normaliser and the KL together.
    #[test]
    fn log_ratio_averages_to_the_kl() {
        let device = Device::flex();
        let n = 20_000;
        let mut rng = StdRng::seed_from_u64(5);
        for config in [
            LatentConfig::Vmf { d: 5, kappa: 10.0, sampler: SamplerKind::Wood },
            LatentConfig::Vmf { d: 3, kappa: 50.0, sampler: SamplerKind::Table },
            LatentConfig::Gaussian { d: 4 },
        ] {
            let d = config.dim();
            let posterior = match &config {
                LatentConfig::Vmf { .. } => {
                    let mut mu = vec![0.0f32; d];
                    mu[1] = 1.0;
                    Posterior::Vmf { mu: t2(mu, [1, d], &device) }
                }
                LatentConfig::Gaussian { .. } => Posterior::Gaussian {
                    mean: t2(vec![0.5, -1.0, 0.0, 2.0], [1, d], &device),
                    log_var: t2(vec![0.0, -1.0, 0.7, -2.0], [1, d], &device),
                },
            }
            .repeat(n);
            let w = config.sampler().map(|s| t2(s.draw(n, &mut rng), [n, 1], &device));
            let eps = Tensor::<2>::random([n, d], TensorDistribution::Normal(0.0, 1.0), &device);
            let z = posterior.sample(w, eps);
            let ratios = vec1(posterior.log_ratio(z, config.vmf()));
            let mean = ratios.iter().map(|&r| f64::from(r)).sum::<f64>() / n as f64;
            let var = ratios.iter().map(|&r| (f64::from(r) - mean).powi(2)).sum::<f64>() / n as f64;
            let kl = f64::from(vec1(posterior.kl(config.vmf()))[0]);
            let se = (var / n as f64).sqrt();
            assert!((mean - kl).abs() < 5.0 * se + 1e-4, "{config:?}: E[log ratio] {mean} vs KL {kl} (se {se})");
        }
    }

    /// The gradient of a loss through `μ = normalise(W h)` and the vMF sample matches central finite
    /// differences in every weight: `w` and `ε` are fixed, so `z` is a smooth function of `μ`.
    #[test]
    fn gradient_reaches_the_mean_direction() {
        let device = Device::flex().autodiff();
        let (b, f, d) = (3, 4, 5);
        let config = LatentConfig::Vmf { d, kappa: 15.0, sampler: SamplerKind::Wood };
        let latent = config.init(f, &device);
        let mut rng = StdRng::seed_from_u64(9);
        let w = config.sampler().unwrap().draw(b, &mut rng);
        let feature: Vec<f32> = (0..b * f).map(|i| ((i * 7 % 11) as f32 - 5.0) / 5.0).collect();
        let eps: Vec<f32> = (0..b * d).map(|i| ((i * 5 % 13) as f32 - 6.0) / 4.0).collect();
        let target: Vec<f32> = (0..b * d).map(|i| ((i * 3 % 7) as f32 - 3.0) / 3.0).collect();
        let loss = |latent: &Latent| {
            let Posterior::Vmf { mu } = latent.posterior(t2(feature.clone(), [b, f], &device)) else { unreachable!() };
            let z = reparameterise(mu, t2(w.clone(), [b, 1], &device), t2(eps.clone(), [b, d], &device));
            (z * t2(target.clone(), [b, d], &device)).sum()
        };
        let grads = loss(&latent).backward();
        let Latent::Vmf(v) = &latent else { unreachable!() };
        let analytic: Vec<f32> = v.mean.weight.grad(&grads).unwrap().into_data().try_to_vec::<f32>().unwrap();
        let weights: Vec<f32> = v.mean.weight.val().into_data().try_to_vec::<f32>().unwrap();
        let h = 1e-2f32;
        for (k, &a) in analytic.iter().enumerate() {
            let at = |delta: f32| {
                let mut w2 = weights.clone();
                w2[k] += delta;
                let mut l2 = latent.clone();
                if let Latent::Vmf(v2) = &mut l2 {
                    v2.mean.weight = burn::module::Param::from_tensor(t2(w2, [f, d], &device));
                }
                f64::from(loss(&l2).into_scalar::<f32>())
            };
            let numeric = (at(h) - at(-h)) / (2.0 * f64::from(h));
            assert!((numeric - f64::from(a)).abs() < 2e-2 * (1.0 + numeric.abs()), "weight {k}: {a} vs {numeric}");
        }
    }
}
