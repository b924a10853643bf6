#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod attention;
mod block;
pub mod dropout;
mod error;
mod feed_forward;
mod layer_norm;
mod linear;
pub mod mask;
mod norm;
pub mod position;
mod transformer;

#[cfg(test)]
mod test_util;

pub use attention::{
    Attention, AttentionConfig, AttentionOptions, FeatureMap, LinearAttention, MultiHeadAttention,
    MultiHeadAttentionConfig, Nystrom, Performer, SoftmaxAttention, redraw_features,
};
pub use block::{NormPosition, TransformerBlock};
pub use dropout::Dropout;
pub use error::LayerConfigError;
pub use feed_forward::{FeedForward, relu_between};
pub use layer_norm::LayerNorm;
pub use linear::Linear;
pub use norm::{Norm, NormKind};
pub use position::{Position, PositionConfig, Rotary, TokenLayout};
pub use transformer::{Transformer, TransformerConfig};

/// The workspace README's code samples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct WorkspaceReadme;
