//! The position-wise feed-forward network of a transformer block (Vaswani et al. 2017, §3.3):
//! `W2 · dropout(GELU(W1 x + b1)) + b2`, GELU in its exact erf form (Hendrycks & Gimpel 2016,
//! arXiv:1606.08415), as in BERT.

use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::gelu;

/// Two linear layers with an erf-GELU between.
#[derive(Module, Debug)]
pub struct FeedForward {
    /// `d_model → d_ff` (checkpoint key `hidden`).
    pub hidden: Linear,
    /// `d_ff → d_model` (checkpoint key `output`).
    pub output: Linear,
    /// Dropout after the activation.
    pub dropout: Dropout,
}

impl FeedForward {
    /// A fresh network.
    pub fn new(d_model: usize, d_ff: usize, dropout: f64, device: &Device) -> Self {
        Self {
            hidden: LinearConfig::new(d_model, d_ff).init(device),
            output: LinearConfig::new(d_ff, d_model).init(device),
            dropout: DropoutConfig::new(dropout).init(),
        }
    }

    /// # Shapes
    ///
    /// - `x`: `[b, n, d_model]` → `[b, n, d_model]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.output.forward(self.dropout.forward(gelu(self.hidden.forward(x))))
    }
}
