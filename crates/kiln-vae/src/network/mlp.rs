//! Fully connected encoder and decoder with ReLU.

use burn::nn::{Linear, LinearConfig, Relu};
use burn::prelude::*;

/// `side² → hidden[0] → … → hidden[last]`, ReLU after each layer.
#[derive(Module, Debug)]
pub struct MlpEncoder {
    /// The layers.
    pub layers: Vec<Linear>,
    activation: Relu,
}

impl MlpEncoder {
    /// Layers from `input` through `hidden`.
    pub fn new(input: usize, hidden: &[usize], device: &Device) -> Self {
        let widths: Vec<usize> = std::iter::once(input).chain(hidden.iter().copied()).collect();
        let layers = widths.windows(2).map(|w| LinearConfig::new(w[0], w[1]).init(device)).collect();
        Self { layers, activation: Relu::new() }
    }

    /// # Shapes
    ///
    /// - `images`: `[b, h, w]` → `[b, hidden[last]]`
    pub fn forward(&self, images: Tensor<3>) -> Tensor<2> {
        let [b, h, w] = images.dims();
        let mut x = images.reshape([b, h * w]);
        for layer in &self.layers {
            x = self.activation.forward(layer.forward(x));
        }
        x
    }
}

/// `d → hidden[last] → … → hidden[0] → side²` logits, ReLU between layers.
#[derive(Module, Debug)]
pub struct MlpDecoder {
    /// The layers.
    pub layers: Vec<Linear>,
    side: usize,
}

impl MlpDecoder {
    /// The mirror of [`MlpEncoder::new`].
    pub fn new(latent: usize, hidden: &[usize], side: usize, device: &Device) -> Self {
        let widths: Vec<usize> =
            std::iter::once(latent).chain(hidden.iter().rev().copied()).chain(std::iter::once(side * side)).collect();
        let layers = widths.windows(2).map(|w| LinearConfig::new(w[0], w[1]).init(device)).collect();
        Self { layers, side }
    }

    /// # Shapes
    ///
    /// - `z`: `[b, d]` → `[b, side, side]` logits
    pub fn forward(&self, z: Tensor<2>) -> Tensor<3> {
        let b = z.dims()[0];
        kiln_layers::relu_between(&self.layers, z).reshape([b, self.side, self.side])
    }
}
