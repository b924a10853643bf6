//! Normalisation layers a block can use: LayerNorm (Ba et al. 2016, arXiv:1607.06450) or RMSNorm
//! (Zhang & Sennrich 2019, arXiv:1910.07467): Kiln's [`LayerNorm`] (Burn's parameters, its own
//! backward pass in training on flex) and Burn's `RmsNorm`.

use burn::nn::{RmsNorm, RmsNormConfig};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::LayerNorm;

/// Which normalisation. TOML: `norm = "layer_norm"` or `"rms_norm"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormKind {
    /// `(x − mean) / √(var + ε) · γ + β`.
    #[default]
    LayerNorm,
    /// `x / √(mean(x²) + ε) · γ`.
    RmsNorm,
}

impl NormKind {
    /// Build for width `d_model` with `eps`.
    pub fn init(self, d_model: usize, eps: f64, device: &Device) -> Norm {
        match self {
            Self::LayerNorm => Norm::LayerNorm(LayerNorm::new(d_model, eps, device)),
            Self::RmsNorm => Norm::RmsNorm(RmsNormConfig::new(d_model).with_epsilon(eps).init(device)),
        }
    }
}

/// A normalisation layer.
#[derive(Module, Debug)]
pub enum Norm {
    /// LayerNorm.
    LayerNorm(LayerNorm),
    /// RMSNorm.
    RmsNorm(RmsNorm),
}

impl Norm {
    /// Normalise over the last dimension.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Self::LayerNorm(n) => n.forward(x),
            Self::RmsNorm(n) => n.forward(x),
        }
    }
}
