//! The position-wise feed-forward network of a transformer block (Vaswani et al. 2017, §3.3):
//! `W2 · dropout(GELU(W1 x + b1)) + b2`, GELU in its exact erf form (Hendrycks & Gimpel 2016,
//! arXiv:1606.08415), as in BERT.

use burn::nn::{Linear, LinearConfig};

use crate::Dropout;
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
            dropout: Dropout::new(dropout),
        }
    }

    /// # Shapes
    ///
    /// - `x`: `[b, n, d_model]` → `[b, n, d_model]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, n, d] = x.dims();
        let x = x.reshape([b * n, d]);
        self.output.forward(self.dropout.forward(gelu(self.hidden.forward(x)))).reshape([b, n, d])
    }
}

/// `linear` applied to `[b, n, d_in]` as one `[b·n, d_in] × [d_in, d_out]` product: Burn's `Linear`
/// on a rank-3 input runs `b` batched products of `n` rows when `n` fills its tiles, and the flat
/// form is faster on flex (docs/benchmarks.md).
///
/// # Shapes
///
/// - `x`: `[b, n, d_in]` → `[b, n, d_out]`
pub fn linear_rows(linear: &Linear, x: Tensor<3>) -> Tensor<3> {
    let [b, n, d] = x.dims();
    let y = linear.forward(x.reshape([b * n, d]));
    let d_out = y.dims()[1];
    y.reshape([b, n, d_out])
}

/// A stack of linear layers with ReLU between them and none after the last (the MLP of the VAE
/// decoder and the WGAN generator), as a function over the layers so that each model keeps its own
/// checkpoint keys.
///
/// # Shapes
///
/// - `x`: `[b, in]` → `[b, out of the last layer]`
pub fn relu_between(layers: &[Linear], x: Tensor<2>) -> Tensor<2> {
    let last = layers.len().saturating_sub(1);
    layers.iter().enumerate().fold(x, |x, (i, layer)| {
        let y = layer.forward(x);
        if i < last { burn::tensor::activation::relu(y) } else { y }
    })
}

#[cfg(test)]
mod relu_between_tests {
    use super::*;

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
