#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod attention;
mod block;
pub mod dropout;
mod error;
mod feed_forward;
mod host;
mod layer_norm;
mod log_sum_exp;
pub mod mask;
#[cfg(feature = "flex")]
mod matmul;
mod norm;
pub mod position;
pub mod spin;
mod transformer;

#[cfg(test)]
mod test_util;

pub use attention::{
    Attention, AttentionConfig, FeatureMap, LinearAttention, MultiHeadAttention, MultiHeadAttentionConfig, Nystrom,
    Performer, SoftmaxAttention,
};
pub use block::{NormPosition, TransformerBlock};
pub use dropout::Dropout;
pub use error::LayerConfigError;
pub use feed_forward::{FeedForward, gelu_exact, gelu_in_place, linear_rows, relu_between};
pub use host::is_flex;
pub use layer_norm::LayerNorm;
#[cfg(feature = "flex")]
pub use layer_norm::LayerNormBackend;
pub use log_sum_exp::log_sum_exp;
#[cfg(feature = "flex")]
pub use matmul::MatmulBackend;
pub use norm::{Norm, NormKind};
pub use position::{Position, PositionConfig, Rotary, TokenLayout};
pub use transformer::{Transformer, TransformerConfig};

/// The workspace README's code samples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../../../README.md")]
pub struct WorkspaceReadme;
