//! The VAE: encoder, posterior head, decoder, and the Bernoulli reconstruction term.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::latent::{Latent, LatentConfig, Posterior};
use crate::network::{Decoder, Encoder, NetworkConfig};

/// `[model]` of `kind = "vae"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VaeConfig {
    /// The latent distribution.
    pub latent: LatentConfig,
    /// Encoder and decoder.
    #[serde(default)]
    pub network: NetworkConfig,
    /// Binarise pixels: training images afresh at every step (`pixel ~ Bernoulli(intensity)`),
    /// evaluation images once with a fixed seed — the binarised MNIST of the published
    /// log-likelihoods. `false`: intensities in `[0, 1]` are the Bernoulli targets.
    #[serde(default)]
    pub binarize: bool,
    /// Samples per image of the importance-sampled log-likelihood on the test split (`0`: skip it).
    #[serde(default = "default_importance_samples")]
    pub importance_samples: usize,
    /// Linear KL warm-up (Bowman et al. 2016; Davidson et al. 2018 warm up over 100 epochs): the
    /// training loss weighs the KL by `min(1, (step + 1) / kl_warmup_steps)`. `0` (the default): no
    /// warm-up. Evaluation always reports the full ELBO.
    #[serde(default)]
    pub kl_warmup_steps: usize,
}

fn default_importance_samples() -> usize {
    500
}

impl VaeConfig {
    /// Check the parts.
    ///
    /// # Errors
    ///
    /// The first invalid value.
    pub fn validate(&self) -> kiln_task::Result<()> {
        self.latent.validate()?;
        self.network.validate()?;
        Ok(())
    }

    /// The KL's weight in the training loss at `step` (0-based): the warm-up's linear ramp, then 1.
    pub fn kl_weight(&self, step: usize) -> f32 {
        if self.kl_warmup_steps == 0 {
            return 1.0;
        }
        ((step + 1) as f64 / self.kl_warmup_steps as f64).min(1.0) as f32
    }

    /// Build for `side × side` images.
    pub fn init(&self, side: usize, device: &Device) -> Vae {
        Vae {
            encoder: self.network.init_encoder(side, device),
            latent: self.latent.init(self.network.feature_width(), device),
            decoder: self.network.init_decoder(self.latent.dim(), side, device),
        }
    }
}

/// Encoder, posterior head, decoder.
#[derive(Module, Debug)]
pub struct Vae {
    /// Image → feature.
    pub encoder: Encoder,
    /// Feature → posterior parameters.
    pub latent: Latent,
    /// Code → pixel logits.
    pub decoder: Decoder,
}

impl Vae {
    /// The posterior `q(z|x)` of each image.
    ///
    /// # Shapes
    ///
    /// - `images`: `[b, side, side]` → parameters with `[b, d]` tensors
    pub fn posterior(&self, images: Tensor<3>) -> Posterior {
        self.latent.posterior(self.encoder.forward(images))
    }

    /// Pixel logits of codes.
    ///
    /// # Shapes
    ///
    /// - `z`: `[b, d]` → `[b, side, side]`
    pub fn decode(&self, z: Tensor<2>) -> Tensor<3> {
        self.decoder.forward(z)
    }
}

/// `−ln p(x|z)` of Bernoulli pixels, summed per image: the binary cross-entropy with logits,
/// `max(l, 0) − l·x + ln(1 + e^{−|l|})`, stable for any logit.
///
/// # Shapes
///
/// - `logits`, `targets`: `[b, h, w]` → `[b]`
pub fn bernoulli_nll(logits: Tensor<3>, targets: Tensor<3>) -> Tensor<1> {
    let b = logits.dims()[0];
    let per_pixel = logits.clone().clamp_min(0.0) - logits.clone() * targets + logits.abs().neg().exp().log1p();
    per_pixel.reshape([b as i64, -1]).sum_dim(1).squeeze_dim::<1>(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The KL's weight ramps linearly to 1 over the warm-up and stays there; without one it is 1.
    #[test]
    fn kl_warmup_ramps_linearly() {
        let config = |steps| -> VaeConfig {
            toml::from_str(&format!("latent = {{ kind = \"gaussian\", d = 2 }}\nkl_warmup_steps = {steps}")).unwrap()
        };
        let (none, four) = (config(0), config(4));
        assert_eq!(none.kl_weight(0), 1.0);
        let ramp: Vec<f32> = (0..6).map(|s| four.kl_weight(s)).collect();
        assert_eq!(ramp, vec![0.25, 0.5, 0.75, 1.0, 1.0, 1.0]);
    }

    /// The stable form equals the textbook `−x ln σ(l) − (1−x) ln(1−σ(l))` where the latter is
    /// finite, and stays finite at logits of ±100.
    #[test]
    fn bernoulli_nll_matches_the_definition() {
        let device = Device::flex();
        let logits = [-100.0f32, -3.0, -0.5, 0.0, 0.7, 4.0, 100.0, 2.0];
        let targets = [0.0f32, 1.0, 0.3, 0.5, 1.0, 0.0, 1.0, 0.9];
        let l = Tensor::<3>::from_data(TensorData::new(logits.to_vec(), [2, 2, 2]), &device);
        let t = Tensor::<3>::from_data(TensorData::new(targets.to_vec(), [2, 2, 2]), &device);
        let got: Vec<f32> = bernoulli_nll(l, t).into_data().try_to_vec::<f32>().unwrap();
        let textbook = |l: f64, x: f64| {
            let s = 1.0 / (1.0 + (-l).exp());
            let (a, b) =
                (if x > 0.0 { -x * s.ln() } else { 0.0 }, if x < 1.0 { -(1.0 - x) * (1.0 - s).ln() } else { 0.0 });
            a + b
        };
        let mut expected = [0.0f64; 2];
        for i in 0..8 {
            let (l, x) = (f64::from(logits[i]), f64::from(targets[i]));
            // At |l| = 100 the textbook form is lost to rounding (σ is 0 or 1 in f64); there the NLL is
            // l·(1−x) for l > 0 and −l·x for l < 0, to within e^{−100}.
            expected[i / 4] +=
                if l.abs() >= 100.0 { if l > 0.0 { (1.0 - x) * l } else { x * -l } } else { textbook(l, x) };
        }
        for (g, e) in got.iter().zip(expected) {
            assert!((f64::from(*g) - e).abs() < 1e-4 * (1.0 + e.abs()), "{g} vs {e}");
        }
    }
}
