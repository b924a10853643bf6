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

/// `kappa` of a vMF latent: a fixed number (Su's vMF-VAE), or `"learned"`: a head on the encoder's
/// feature gives each image its own `κ(x) = softplus(W h + b) + 1` (Davidson et al. 2018's S-VAE, as
/// in their reference code), trained through the KL's and Wood's sampler's κ-gradients
/// ([`crate::kappa`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KappaConfig {
    /// A fixed concentration.
    Fixed(f64),
    /// Learned per image.
    Learned,
}

impl Serialize for KappaConfig {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Fixed(k) => serializer.serialize_f64(*k),
            Self::Learned => serializer.serialize_str("learned"),
        }
    }
}

impl<'de> Deserialize<'de> for KappaConfig {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = KappaConfig;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a number (a fixed concentration) or \"learned\"")
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<KappaConfig, E> {
                Ok(KappaConfig::Fixed(v))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<KappaConfig, E> {
                Ok(KappaConfig::Fixed(v as f64))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<KappaConfig, E> {
                Ok(KappaConfig::Fixed(v as f64))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<KappaConfig, E> {
                match v {
                    "learned" => Ok(KappaConfig::Learned),
                    other => Err(E::invalid_value(serde::de::Unexpected::Str(other), &self)),
                }
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

impl std::fmt::Display for KappaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Fixed(k) => write!(f, "{k}"),
            Self::Learned => f.write_str("learned"),
        }
    }
}

/// `[model.latent]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LatentConfig {
    /// `vMF(μ(x), κ)` on `S^{d−1}`, uniform prior.
    Vmf {
        /// Ambient dimension (`d = 3`: a 2-D latent sphere).
        d: usize,
        /// The concentration: fixed, or learned per image.
        kappa: KappaConfig,
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
            Self::Vmf { d, kappa, sampler } => {
                kiln_task::ensure!(*d >= 2, "model.latent.d must be at least 2 for a vMF latent (the sphere S^(d-1))");
                match kappa {
                    KappaConfig::Fixed(k) => kiln_task::ensure!(
                        k.is_finite() && *k > 0.0 && *k <= 1e5,
                        "model.latent.kappa must be in (0, 1e5] or \"learned\", got {k}"
                    ),
                    KappaConfig::Learned => kiln_task::ensure!(
                        *sampler == SamplerKind::Wood,
                        "model.latent.kappa = \"learned\" needs sampler = \"wood\" (the table sampler is built for one fixed kappa)"
                    ),
                }
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

    /// The vMF distribution, for a vMF latent with a fixed κ.
    pub fn vmf(&self) -> Option<VonMisesFisher> {
        match self {
            Self::Vmf { d, kappa: KappaConfig::Fixed(k), .. } => Some(VonMisesFisher::new(*d, *k)),
            Self::Vmf { kappa: KappaConfig::Learned, .. } | Self::Gaussian { .. } => None,
        }
    }

    /// The sampler of `w`, for a vMF latent with a fixed κ (a learned one draws per row,
    /// [`crate::kappa::wood_w_of_kappa`]).
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
            Self::Vmf { d, kappa, .. } => Latent::Vmf(VmfLatent {
                mean: LinearConfig::new(feature, *d).init(device),
                kappa: matches!(kappa, KappaConfig::Learned).then(|| LinearConfig::new(feature, 1).init(device)),
            }),
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

/// `μ = normalise(W h + b)`, and with a learned concentration `κ = softplus(W_κ h + b_κ) + 1`.
#[derive(Module, Debug)]
pub struct VmfLatent {
    /// The unnormalised direction.
    pub mean: Linear,
    /// The concentration's head (a learned κ only).
    pub kappa: Option<Linear>,
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
    /// Unit mean directions `[b, d]`, and each row's κ `[b]` where it is learned.
    Vmf {
        /// `μ`.
        mu: Tensor<2>,
        /// `κ(x)`, with a learned concentration.
        kappa: Option<Tensor<1>>,
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
                let kappa = l.kappa.as_ref().map(|head| {
                    burn::tensor::activation::softplus(head.forward(feature.clone()), 1.0)
                        .squeeze_dim::<1>(1)
                        .add_scalar(1.0)
                });
                let m = l.mean.forward(feature);
                let norm = m.clone().powf_scalar(2.0).sum_dim(1).sqrt().clamp_min(1e-12);
                Posterior::Vmf { mu: m / norm, kappa }
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
            Self::Vmf { mu, .. } => mu.dims()[0],
            Self::Gaussian { mean, .. } => mean.dims()[0],
        }
    }

    /// The same posterior with every learned `κ(x)` multiplied by `factor` (a fixed κ and a Gaussian
    /// are returned as they are): how far the learned concentrations are from the ELBO's optimum.
    pub fn with_kappa_scaled(self, factor: f64) -> Self {
        match self {
            Self::Vmf { mu, kappa: Some(kappa) } if factor != 1.0 => {
                Self::Vmf { mu, kappa: Some(kappa.mul_scalar(factor as f32)) }
            }
            other => other,
        }
    }

    /// Repeat each row `k` times (row `i` becomes rows `i·k .. i·k + k`).
    pub fn repeat(&self, k: usize) -> Self {
        let rep = |t: &Tensor<2>| {
            let [b, d] = t.dims();
            t.clone().unsqueeze_dim::<3>(1).expand([b, k, d]).reshape([b * k, d])
        };
        match self {
            Self::Vmf { mu, kappa } => Self::Vmf {
                mu: rep(mu),
                kappa: kappa.as_ref().map(|k| rep(&k.clone().unsqueeze_dim::<2>(1)).squeeze_dim::<1>(1)),
            },
            Self::Gaussian { mean, log_var } => Self::Gaussian { mean: rep(mean), log_var: rep(log_var) },
        }
    }

    /// A reparameterised sample: `z = wμ + √(1−w²)ν` (vMF, `w` `[b, 1]` drawn on the host), or
    /// `z = m + σ ε` (Gaussian, `w` unused). `eps` is standard normal `[b, d]`.
    pub fn sample(&self, w: Option<Tensor<2>>, eps: Tensor<2>) -> Tensor<2> {
        match self {
            Self::Vmf { mu, .. } => reparameterise(mu.clone(), w.expect("a vMF sample needs w"), eps),
            Self::Gaussian { mean, log_var } => mean.clone() + log_var.clone().mul_scalar(0.5).exp() * eps,
        }
    }

    /// The most likely code: `μ`, or `m`.
    pub fn mode(&self) -> Tensor<2> {
        match self {
            Self::Vmf { mu, .. } => mu.clone(),
            Self::Gaussian { mean, .. } => mean.clone(),
        }
    }

    /// `KL(q(z|x) ‖ p(z))` per example `[b]`: the vMF constant of `vmf` (fixed κ) or each row's KL
    /// at its learned κ (differentiable in κ), or the Gaussian closed form
    /// `−½ Σ (1 + ln σ² − m² − σ²)`.
    pub fn kl(&self, vmf: Option<VonMisesFisher>) -> Tensor<1> {
        match self {
            Self::Vmf { mu, kappa: Some(kappa) } => crate::kappa::kl_of_kappa(mu.dims()[1], kappa.clone()),
            Self::Vmf { mu, kappa: None } => {
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
            Self::Vmf { mu, kappa: Some(kappa) } => {
                // κ_i μ_iᵀz + ln C_d(κ_i) − ln C_d(0).
                let log_c = crate::kappa::log_normalizer_ratios(mu.dims()[1], kappa);
                (mu.clone() * z).sum_dim(1).squeeze_dim::<1>(1) * kappa.clone() + log_c
            }
            Self::Vmf { mu, kappa: None } => {
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

    /// Scaling multiplies a learned κ and leaves a fixed κ and a Gaussian alone.
    #[test]
    fn kappa_scaling_touches_only_a_learned_kappa() {
        let device = Device::flex();
        let mu = t2(vec![1.0, 0.0, 0.0, 1.0], [2, 2], &device);
        let kappa = Tensor::<1>::from_floats([2.0f32, 5.0], &device);
        let learned = Posterior::Vmf { mu: mu.clone(), kappa: Some(kappa) }.with_kappa_scaled(3.0);
        let Posterior::Vmf { kappa: Some(k), .. } = learned else { panic!("a learned vMF posterior") };
        assert_eq!(vec1(k), vec![6.0, 15.0]);
        let fixed = Posterior::Vmf { mu: mu.clone(), kappa: None }.with_kappa_scaled(3.0);
        assert!(matches!(fixed, Posterior::Vmf { kappa: None, .. }));
        let gaussian = Posterior::Gaussian { mean: mu.clone(), log_var: mu.clone() }.with_kappa_scaled(3.0);
        let Posterior::Gaussian { log_var, .. } = gaussian else { panic!("a Gaussian posterior") };
        assert_eq!(log_var.into_data().try_to_vec::<f32>().unwrap(), vec![1.0, 0.0, 0.0, 1.0]);
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
            LatentConfig::Vmf { d: 5, kappa: KappaConfig::Fixed(10.0), sampler: SamplerKind::Wood },
            LatentConfig::Vmf { d: 3, kappa: KappaConfig::Fixed(50.0), sampler: SamplerKind::Table },
            LatentConfig::Gaussian { d: 4 },
        ] {
            let d = config.dim();
            let posterior = match &config {
                LatentConfig::Vmf { .. } => {
                    let mut mu = vec![0.0f32; d];
                    mu[1] = 1.0;
                    Posterior::Vmf { mu: t2(mu, [1, d], &device), kappa: None }
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

    /// With its κ head frozen at a constant (weights 0, bias `softplus⁻¹(κ − 1)`), the learned-κ latent
    /// is the fixed-κ one: the same κ, KL, `w` draws from the same stream, samples and log-ratios, to
    /// float rounding (κ comes back through f32's softplus as 20 ± a few ulps).
    #[test]
    fn a_frozen_kappa_head_is_the_fixed_kappa_latent() {
        use burn::module::Param;
        let device = Device::flex();
        let (b, f, d, kappa) = (64, 5, 4, 20.0f64);
        let fixed_config = LatentConfig::Vmf { d, kappa: KappaConfig::Fixed(kappa), sampler: SamplerKind::Wood };
        let learned = LatentConfig::Vmf { d, kappa: KappaConfig::Learned, sampler: SamplerKind::Wood }.init(f, &device);
        let Latent::Vmf(v) = learned else { unreachable!() };
        let mut head = v.kappa.clone().unwrap();
        head.weight = Param::from_tensor(Tensor::<2>::zeros([f, 1], &device));
        let bias = ((kappa - 1.0).exp() - 1.0).ln() as f32;
        head.bias = Some(Param::from_tensor(Tensor::<1>::from_floats([bias], &device)));
        let frozen = Latent::Vmf(VmfLatent { mean: v.mean.clone(), kappa: Some(head) });
        let fixed = Latent::Vmf(VmfLatent { mean: v.mean, kappa: None });
        let feature: Vec<f32> = (0..b * f).map(|i| ((i * 7 % 11) as f32 - 5.0) / 5.0).collect();
        let (pl, pf) =
            (frozen.posterior(t2(feature.clone(), [b, f], &device)), fixed.posterior(t2(feature, [b, f], &device)));
        let Posterior::Vmf { kappa: Some(k), .. } = &pl else { unreachable!() };
        assert!(vec1(k.clone()).iter().all(|&x| (f64::from(x) - kappa).abs() < 1e-5), "{:?}", vec1(k.clone()));
        let close = |a: Vec<f32>, b: Vec<f32>, tol: f32, what: &str| {
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(&b) {
                assert!((x - y).abs() <= tol * (1.0 + y.abs()), "{what}: {x} vs {y}");
            }
        };
        close(vec1(pl.kl(None)), vec1(pf.kl(fixed_config.vmf())), 1e-5, "KL");
        let w_learned = crate::kappa::wood_w_of_kappa(d, k.clone(), &mut StdRng::seed_from_u64(7));
        let w_fixed = fixed_config.sampler().unwrap().draw(b, &mut StdRng::seed_from_u64(7));
        close(vec1(w_learned.clone()), w_fixed.clone(), 1e-5, "w");
        let eps = Tensor::<2>::random([b, d], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let z = pl.sample(Some(w_learned.unsqueeze_dim::<2>(1)), eps.clone());
        let zf = pf.sample(Some(t2(w_fixed, [b, 1], &device)), eps);
        let flat = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap();
        close(flat(z.clone()), flat(zf), 1e-5, "z");
        close(vec1(pl.log_ratio(z.clone(), None)), vec1(pf.log_ratio(z, fixed_config.vmf())), 1e-5, "log ratio");
        // And the two configs' text forms: a number and "learned".
        let text = |c: &LatentConfig| toml::to_string(c).unwrap();
        assert!(text(&fixed_config).contains("kappa = 20.0"), "{}", text(&fixed_config));
        let learned_config = LatentConfig::Vmf { d, kappa: KappaConfig::Learned, sampler: SamplerKind::Wood };
        assert!(text(&learned_config).contains("kappa = \"learned\""), "{}", text(&learned_config));
        assert_eq!(toml::from_str::<LatentConfig>(&text(&learned_config)).unwrap(), learned_config);
        let wrong =
            toml::from_str::<LatentConfig>("kind = \"vmf\"\nd = 3\nkappa = \"learnt\"").unwrap_err().to_string();
        assert!(wrong.contains("learnt") && wrong.contains("\"learned\""), "{wrong}");
    }

    /// A learned κ is trained: the gradient of `Σ tᵀz + Σ KL` in the κ head's bias (through the KL's
    /// and Wood's `w`'s κ-gradients and `κ = softplus(·) + 1`) matches central finite differences of
    /// the same loss with the same draws (the same seed: a step of 1e-2 in the bias moves κ by a
    /// fraction of a percent, which leaves every accept/reject decision as it was here).
    #[test]
    fn gradient_reaches_the_kappa_head() {
        use burn::module::Param;
        let device = Device::flex().autodiff();
        let (b, f, d) = (8, 3, 4);
        let latent = LatentConfig::Vmf { d, kappa: KappaConfig::Learned, sampler: SamplerKind::Wood }.init(f, &device);
        let feature: Vec<f32> = (0..b * f).map(|i| ((i * 5 % 9) as f32 - 4.0) / 4.0).collect();
        let eps: Vec<f32> = (0..b * d).map(|i| ((i * 5 % 13) as f32 - 6.0) / 4.0).collect();
        let target: Vec<f32> = (0..b * d).map(|i| ((i * 3 % 7) as f32 - 3.0) / 3.0).collect();
        let loss = |latent: &Latent| {
            let posterior = latent.posterior(t2(feature.clone(), [b, f], &device));
            let Posterior::Vmf { kappa: Some(kappa), .. } = &posterior else { unreachable!() };
            let w = crate::kappa::wood_w_of_kappa(d, kappa.clone(), &mut StdRng::seed_from_u64(11));
            let z = posterior.sample(Some(w.unsqueeze_dim::<2>(1)), t2(eps.clone(), [b, d], &device));
            (z * t2(target.clone(), [b, d], &device)).sum() + posterior.kl(None).sum()
        };
        let grads = loss(&latent).backward();
        let Latent::Vmf(v) = &latent else { unreachable!() };
        let head = v.kappa.as_ref().unwrap();
        let bias = head.bias.as_ref().unwrap();
        let analytic = f64::from(bias.grad(&grads).unwrap().into_scalar::<f32>());
        let at = |delta: f32| {
            let mut moved = latent.clone();
            if let Latent::Vmf(v2) = &mut moved {
                let h = v2.kappa.as_mut().unwrap();
                let b0 = h.bias.as_ref().unwrap().val().into_scalar::<f32>();
                h.bias = Some(Param::from_tensor(Tensor::<1>::from_floats([b0 + delta], &device)));
            }
            f64::from(loss(&moved).into_scalar::<f32>())
        };
        let numeric = (at(1e-2) - at(-1e-2)) / 2e-2;
        assert!(analytic.abs() > 1e-3, "no gradient reaches the kappa head: {analytic}");
        assert!((numeric - analytic).abs() < 2e-2 * (1.0 + numeric.abs()), "kappa head bias: {analytic} vs {numeric}");
    }

    /// The gradient of a loss through `μ = normalise(W h)` and the vMF sample matches central finite
    /// differences in every weight: `w` and `ε` are fixed, so `z` is a smooth function of `μ`.
    #[test]
    fn gradient_reaches_the_mean_direction() {
        let device = Device::flex().autodiff();
        let (b, f, d) = (3, 4, 5);
        let config = LatentConfig::Vmf { d, kappa: KappaConfig::Fixed(15.0), sampler: SamplerKind::Wood };
        let latent = config.init(f, &device);
        let mut rng = StdRng::seed_from_u64(9);
        let w = config.sampler().unwrap().draw(b, &mut rng);
        let feature: Vec<f32> = (0..b * f).map(|i| ((i * 7 % 11) as f32 - 5.0) / 5.0).collect();
        let eps: Vec<f32> = (0..b * d).map(|i| ((i * 5 % 13) as f32 - 6.0) / 4.0).collect();
        let target: Vec<f32> = (0..b * d).map(|i| ((i * 3 % 7) as f32 - 3.0) / 3.0).collect();
        let loss = |latent: &Latent| {
            let Posterior::Vmf { mu, .. } = latent.posterior(t2(feature.clone(), [b, f], &device)) else {
                unreachable!()
            };
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
