//! The position-wise feed-forward network of a transformer block (Vaswani et al. 2017, §3.3):
//! `W2 · dropout(GELU(W1 x + b1)) + b2`, GELU in its exact erf form (Hendrycks & Gimpel 2016,
//! arXiv:1606.08415), as in BERT.

use burn::prelude::*;

use crate::{Dropout, Linear};

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
            hidden: Linear::new(d_model, d_ff, true, device),
            output: Linear::new(d_ff, d_model, true, device),
            dropout: Dropout::new(dropout),
        }
    }

    /// # Shapes
    ///
    /// - `x`: `[b, n, d_model]` → `[b, n, d_model]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.output.forward(kiln_kernels::gelu_dropout(self.hidden.forward(x), self.dropout.prob))
    }
}

/// A stack of Burn linear layers with ReLU between them and none after the last (the MLP of the VAE
/// decoder and the WGAN generator), as a function over the layers so that each model keeps its own
/// checkpoint keys.
///
/// # Shapes
///
/// - `x`: `[b, in]` → `[b, out of the last layer]`
pub fn relu_between(layers: &[burn::nn::Linear], x: Tensor<2>) -> Tensor<2> {
    let last = layers.len().saturating_sub(1);
    layers.iter().enumerate().fold(x, |x, (i, layer)| {
        let y = layer.forward(x);
        if i < last { burn::tensor::activation::relu(y) } else { y }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LinearConfig;

    /// `[1 → 1 → 1]` with weights ±1: ReLU acts between the layers, not after the last.
    #[test]
    fn relu_only_between_layers() {
        let device = Device::flex();
        let mut a = LinearConfig::new(1, 1).init(&device);
        let mut b = LinearConfig::new(1, 1).init(&device);
        a.weight = burn::module::Param::from_tensor(Tensor::from_floats([[1.0]], &device));
        a.bias = Some(burn::module::Param::from_tensor(Tensor::from_floats([0.0], &device)));
        b.weight = burn::module::Param::from_tensor(Tensor::from_floats([[-1.0]], &device));
        b.bias = Some(burn::module::Param::from_tensor(Tensor::from_floats([0.0], &device)));
        let x = Tensor::<2>::from_floats([[2.0], [-3.0]], &device);
        let y: Vec<f32> = relu_between(&[a, b], x).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(y, vec![-2.0, 0.0]);
    }
}
