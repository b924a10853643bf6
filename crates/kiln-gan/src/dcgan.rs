//! DCGAN-style networks for 28×28 images (Radford et al. 2016, without batch norm, as WGAN critics
//! must be): the generator maps noise through a linear layer to `2c × 7 × 7` and two stride-2
//! transposed convolutions to a `[0, 1]` image; the critic mirrors it with two stride-2 convolutions
//! (LeakyReLU 0.2) and a linear score. With spectral normalisation every critic layer divides its
//! weight by its largest singular value (a convolution's weight `[out, in, k, k]` as the matrix
//! `[out, in·k·k]`, as PyTorch's `spectral_norm` does).

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig};
use burn::nn::{LeakyReluConfig, Linear, LinearConfig, PaddingConfig2d, Relu};
use burn::prelude::*;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;

use crate::spectral::SpectralLinear;

/// Noise → image.
#[derive(Module, Debug)]
pub struct ConvGenerator {
    /// `noise → 2c · 7 · 7`.
    pub linear: Linear,
    /// `2c → c`, 7 → 14.
    pub deconv1: ConvTranspose2d,
    /// `c → 1`, 14 → 28.
    pub deconv2: ConvTranspose2d,
    activation: Relu,
    channels: usize,
}

impl ConvGenerator {
    /// `channels` (`c`) feature maps after the first transposed convolution.
    pub fn new(d_noise: usize, channels: usize, device: &Device) -> Self {
        let up =
            |i, o| ConvTranspose2dConfig::new([i, o], [4, 4]).with_stride([2, 2]).with_padding([1, 1]).init(device);
        Self {
            linear: LinearConfig::new(d_noise, 2 * channels * 49).init(device),
            deconv1: up(2 * channels, channels),
            deconv2: up(channels, 1),
            activation: Relu::new(),
            channels,
        }
    }

    /// # Shapes
    ///
    /// - `z`: `[b, d_noise]` → `[b, 28, 28]` in `[0, 1]`
    pub fn forward(&self, z: Tensor<2>) -> Tensor<3> {
        let b = z.dims()[0];
        let x = self.activation.forward(self.linear.forward(z)).reshape([b, 2 * self.channels, 7, 7]);
        let x = self.activation.forward(self.deconv1.forward(x));
        burn::tensor::activation::sigmoid(self.deconv2.forward(x)).reshape([b, 28, 28])
    }
}

/// A stride-2 4×4 convolution, optionally spectrally normalised.
#[derive(Module, Debug)]
pub struct CriticConv {
    /// The convolution (its weight is normalised at use when `u` is present).
    pub conv: Conv2d,
    /// Power-iteration vector `[out]` when spectrally normalised.
    pub u: Option<Param<Tensor<1>>>,
}

impl CriticConv {
    fn new(input: usize, output: usize, spectral: bool, device: &Device) -> Self {
        let conv = Conv2dConfig::new([input, output], [4, 4])
            .with_stride([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init(device);
        let u = spectral.then(|| crate::spectral::initial_u(output, device));
        Self { conv, u }
    }

    /// The weight as the matrix `[out, in·k·k]`.
    fn matrix(&self) -> Tensor<2> {
        let [o, i, k1, k2] = self.conv.weight.dims();
        self.conv.weight.val().reshape([o, i * k1 * k2])
    }

    /// `σ = uᵀ M v`, `v = normalise(Mᵀ u)` (differentiable in `M`, `u` and `v` held constant).
    pub fn sigma(&self) -> Option<Tensor<1>> {
        Some(crate::spectral::sigma(self.matrix(), self.u.as_ref()?))
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self.sigma() {
            None => self.conv.forward(x),
            Some(sigma) => {
                let weight = self.conv.weight.val() / sigma.reshape([1, 1, 1, 1]);
                let bias = self.conv.bias.as_ref().map(Param::val);
                conv2d(x, weight, bias, ConvOptions::new([2, 2], [1, 1], [1, 1], 1))
            }
        }
    }

    fn power_iteration(&mut self) {
        if let Some(u) = &self.u {
            self.u = Some(crate::spectral::next_u(self.matrix(), u));
        }
    }
}

/// The score layer: plain or spectrally normalised.
#[derive(Module, Debug)]
pub enum ScoreLayer {
    /// `x W + b`.
    Plain(Linear),
    /// `x W/σ + b`.
    Spectral(SpectralLinear),
}

/// Image → score.
#[derive(Module, Debug)]
pub struct ConvCritic {
    /// `1 → c`, 28 → 14.
    pub conv1: CriticConv,
    /// `c → 2c`, 14 → 7.
    pub conv2: CriticConv,
    /// `2c · 7 · 7 → 1`.
    pub score: ScoreLayer,
    slope: f64,
}

impl ConvCritic {
    /// `channels` (`c`) feature maps in the first convolution.
    pub fn new(channels: usize, spectral: bool, device: &Device) -> Self {
        let width = 2 * channels * 49;
        Self {
            conv1: CriticConv::new(1, channels, spectral, device),
            conv2: CriticConv::new(channels, 2 * channels, spectral, device),
            score: if spectral {
                ScoreLayer::Spectral(SpectralLinear::new(width, 1, device))
            } else {
                ScoreLayer::Plain(LinearConfig::new(width, 1).init(device))
            },
            slope: 0.2,
        }
    }

    /// # Shapes
    ///
    /// - `images`: `[b, 28, 28]` → `[b]`
    pub fn forward(&self, images: Tensor<3>) -> Tensor<1> {
        let leaky = LeakyReluConfig::new().with_negative_slope(self.slope).init();
        let x = images.unsqueeze_dim::<4>(1);
        let x = leaky.forward(self.conv1.forward(x));
        let x = leaky.forward(self.conv2.forward(x));
        let x: Tensor<2> = x.flatten(1, 3);
        let s = match &self.score {
            ScoreLayer::Plain(l) => l.forward(x),
            ScoreLayer::Spectral(l) => l.forward(x),
        };
        s.squeeze_dim::<1>(1)
    }

    /// Clamp every parameter to `[−c, c]`.
    pub fn clip(&mut self, c: f64) {
        for conv in [&mut self.conv1, &mut self.conv2] {
            conv.conv.weight = crate::mlp::clamp_param(conv.conv.weight.clone(), c);
            conv.conv.bias = conv.conv.bias.take().map(|b| crate::mlp::clamp_param(b, c));
        }
        if let ScoreLayer::Plain(l) = &mut self.score {
            l.weight = crate::mlp::clamp_param(l.weight.clone(), c);
            l.bias = l.bias.take().map(|b| crate::mlp::clamp_param(b, c));
        }
    }

    /// One power-iteration step in every spectrally normalised layer.
    pub fn power_iteration(&mut self) {
        self.conv1.power_iteration();
        self.conv2.power_iteration();
        if let ScoreLayer::Spectral(l) = &mut self.score {
            l.power_iteration();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The spectrally normalised convolution equals the plain convolution with its weight divided by
    /// `σ`, and after many power iterations `σ` is the top singular value of the `[out, in·k·k]` matrix.
    #[test]
    fn spectral_conv_divides_by_the_top_singular_value() {
        let device = Device::flex();
        let mut layer = CriticConv::new(2, 3, true, &device);
        for _ in 0..300 {
            layer.power_iteration();
        }
        let m: Vec<f32> = layer.matrix().into_data().try_to_vec::<f32>().unwrap();
        let matrix = nalgebra::DMatrix::from_row_slice(3, 32, &m.iter().map(|&x| f64::from(x)).collect::<Vec<_>>());
        let top = matrix.svd(false, false).singular_values.max();
        let sigma = f64::from(layer.sigma().unwrap().into_scalar::<f32>());
        assert!((sigma - top).abs() < 1e-4 * top, "σ {sigma} vs SVD {top}");
        let x = Tensor::<4>::random([2, 2, 8, 8], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let normalised: Vec<f32> = layer.forward(x.clone()).into_data().try_to_vec::<f32>().unwrap();
        let plain = layer.conv.forward(x);
        let bias = layer.conv.bias.as_ref().unwrap().val().reshape([1, 3, 1, 1]);
        // conv(x, W/σ) + b = (conv(x, W) + b − b)/σ + b
        let expected = (plain - bias.clone()).div_scalar(sigma) + bias;
        let expected: Vec<f32> = expected.into_data().try_to_vec::<f32>().unwrap();
        for (a, b) in normalised.iter().zip(&expected) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }

    /// Generator output is a `[0, 1]` image of 28×28; the critic scores one number per image;
    /// clipping bounds every critic parameter.
    #[test]
    fn shapes_ranges_and_clipping() {
        let device = Device::flex();
        let g = ConvGenerator::new(16, 4, &device);
        let z = Tensor::<2>::random([3, 16], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
        let images = g.forward(z);
        assert_eq!(images.dims(), [3, 28, 28]);
        let v: Vec<f32> = images.clone().into_data().try_to_vec::<f32>().unwrap();
        assert!(v.iter().all(|p| (0.0..=1.0).contains(p)));
        let mut critic = ConvCritic::new(4, false, &device);
        assert_eq!(critic.forward(images).dims(), [3]);
        critic.clip(0.01);
        let w: Vec<f32> = critic.conv2.conv.weight.val().into_data().try_to_vec::<f32>().unwrap();
        assert!(w.iter().all(|x| x.abs() <= 0.01));
    }
}
