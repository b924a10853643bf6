//! A small DCGAN-style convolutional encoder and decoder for 28×28 images: two stride-2 4×4
//! convolutions (28 → 14 → 7) and a linear layer; the decoder mirrors it with transposed
//! convolutions (7 → 14 → 28).

use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::prelude::*;

/// Convolutions then a linear layer to `hidden`, ReLU throughout.
#[derive(Module, Debug)]
pub struct ConvEncoder {
    /// `1 → channels`, 28 → 14.
    pub conv1: Conv2d,
    /// `channels → 2·channels`, 14 → 7.
    pub conv2: Conv2d,
    /// Flattened `2·channels · 7 · 7 → hidden`.
    pub linear: Linear,
    activation: Relu,
}

fn down(input: usize, output: usize, device: &Device) -> Conv2d {
    Conv2dConfig::new([input, output], [4, 4])
        .with_stride([2, 2])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(device)
}

fn up(input: usize, output: usize, device: &Device) -> ConvTranspose2d {
    ConvTranspose2dConfig::new([input, output], [4, 4]).with_stride([2, 2]).with_padding([1, 1]).init(device)
}

impl ConvEncoder {
    /// For `side × side` images (`side` divisible by 4).
    pub fn new(side: usize, channels: usize, hidden: usize, device: &Device) -> Self {
        let quarter = side / 4;
        Self {
            conv1: down(1, channels, device),
            conv2: down(channels, 2 * channels, device),
            linear: LinearConfig::new(2 * channels * quarter * quarter, hidden).init(device),
            activation: Relu::new(),
        }
    }

    /// # Shapes
    ///
    /// - `images`: `[b, side, side]` → `[b, hidden]`
    pub fn forward(&self, images: Tensor<3>) -> Tensor<2> {
        let x = images.unsqueeze_dim::<4>(1);
        let x = self.activation.forward(self.conv1.forward(x));
        let x = self.activation.forward(self.conv2.forward(x));
        let x: Tensor<2> = x.flatten(1, 3);
        self.activation.forward(self.linear.forward(x))
    }
}

/// A linear layer to `2·channels · 7 · 7`, then transposed convolutions to logits.
#[derive(Module, Debug)]
pub struct ConvDecoder {
    /// `d → hidden`.
    pub linear1: Linear,
    /// `hidden → 2·channels · 7 · 7`.
    pub linear2: Linear,
    /// `2·channels → channels`, 7 → 14.
    pub deconv1: ConvTranspose2d,
    /// `channels → 1`, 14 → 28.
    pub deconv2: ConvTranspose2d,
    activation: Relu,
    channels: usize,
    side: usize,
}

impl ConvDecoder {
    /// The mirror of [`ConvEncoder::new`].
    pub fn new(latent: usize, side: usize, channels: usize, hidden: usize, device: &Device) -> Self {
        let quarter = side / 4;
        Self {
            linear1: LinearConfig::new(latent, hidden).init(device),
            linear2: LinearConfig::new(hidden, 2 * channels * quarter * quarter).init(device),
            deconv1: up(2 * channels, channels, device),
            deconv2: up(channels, 1, device),
            activation: Relu::new(),
            channels,
            side,
        }
    }

    /// # Shapes
    ///
    /// - `z`: `[b, d]` → `[b, side, side]` logits
    pub fn forward(&self, z: Tensor<2>) -> Tensor<3> {
        let b = z.dims()[0];
        let quarter = self.side / 4;
        let x = self.activation.forward(self.linear1.forward(z));
        let x = self.activation.forward(self.linear2.forward(x));
        let x = x.reshape([b, 2 * self.channels, quarter, quarter]);
        let x = self.activation.forward(self.deconv1.forward(x));
        self.deconv2.forward(x).reshape([b, self.side, self.side])
    }
}
