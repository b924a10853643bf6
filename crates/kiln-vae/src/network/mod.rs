//! The encoder and decoder networks, chosen by `[model.network]`: an MLP or a small convolutional
//! pair. The encoder maps a `[b, 28, 28]` image to a `[b, hidden]` feature; the decoder maps a latent
//! `[b, d]` to `[b, 28, 28]` Bernoulli logits.

mod conv;
mod mlp;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

pub use conv::{ConvDecoder, ConvEncoder};
pub use mlp::{MlpDecoder, MlpEncoder};

/// `[model.network]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum NetworkConfig {
    /// Fully connected, ReLU: encoder `784 → hidden[0] → hidden[1] …`, decoder mirrored (Davidson
    /// et al.'s MNIST networks are `[256, 128]`).
    Mlp {
        /// Hidden widths, input side first.
        #[serde(default = "default_hidden")]
        hidden: Vec<usize>,
    },
    /// Two stride-2 4×4 convolutions (`channels`, `2·channels`; 28 → 14 → 7), a linear layer to
    /// `hidden`; the decoder mirrors it with transposed convolutions.
    Conv {
        /// Channels of the first convolution.
        #[serde(default = "default_channels")]
        channels: usize,
        /// Width of the feature between the convolutions and the latent.
        #[serde(default = "default_conv_hidden")]
        hidden: usize,
    },
}

fn default_hidden() -> Vec<usize> {
    vec![256, 128]
}
fn default_channels() -> usize {
    32
}
fn default_conv_hidden() -> usize {
    256
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self::Mlp { hidden: default_hidden() }
    }
}

impl NetworkConfig {
    /// Check the widths.
    ///
    /// # Errors
    ///
    /// An empty or zero width.
    pub fn validate(&self) -> kiln_task::Result<()> {
        match self {
            Self::Mlp { hidden } => {
                kiln_task::ensure!(!hidden.is_empty(), "model.network.hidden must list at least one width");
                kiln_task::ensure!(hidden.iter().all(|&h| h > 0), "model.network.hidden widths must be positive");
            }
            Self::Conv { channels, hidden } => {
                kiln_task::ensure!(*channels > 0 && *hidden > 0, "model.network.channels and hidden must be positive");
            }
        }
        Ok(())
    }

    /// Width of the encoder's output feature.
    pub fn feature_width(&self) -> usize {
        match self {
            Self::Mlp { hidden } => *hidden.last().expect("validated: not empty"),
            Self::Conv { hidden, .. } => *hidden,
        }
    }

    /// The encoder for `side × side` images.
    pub fn init_encoder(&self, side: usize, device: &Device) -> Encoder {
        match self {
            Self::Mlp { hidden } => Encoder::Mlp(MlpEncoder::new(side * side, hidden, device)),
            Self::Conv { channels, hidden } => Encoder::Conv(ConvEncoder::new(side, *channels, *hidden, device)),
        }
    }

    /// The decoder from a `latent`-dimensional code to `side × side` logits.
    pub fn init_decoder(&self, latent: usize, side: usize, device: &Device) -> Decoder {
        match self {
            Self::Mlp { hidden } => Decoder::Mlp(MlpDecoder::new(latent, hidden, side, device)),
            Self::Conv { channels, hidden } => {
                Decoder::Conv(ConvDecoder::new(latent, side, *channels, *hidden, device))
            }
        }
    }
}

/// Image → feature.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Encoder {
    /// Fully connected.
    Mlp(MlpEncoder),
    /// Convolutional.
    Conv(ConvEncoder),
}

impl Encoder {
    /// # Shapes
    ///
    /// - `images`: `[b, side, side]` in `[0, 1]` → `[b, feature_width]`
    pub fn forward(&self, images: Tensor<3>) -> Tensor<2> {
        match self {
            Self::Mlp(m) => m.forward(images),
            Self::Conv(m) => m.forward(images),
        }
    }
}

/// Latent → logits.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Decoder {
    /// Fully connected.
    Mlp(MlpDecoder),
    /// Transposed convolutions.
    Conv(ConvDecoder),
}

impl Decoder {
    /// # Shapes
    ///
    /// - `z`: `[b, d]` → `[b, side, side]` logits
    pub fn forward(&self, z: Tensor<2>) -> Tensor<3> {
        match self {
            Self::Mlp(m) => m.forward(z),
            Self::Conv(m) => m.forward(z),
        }
    }
}
