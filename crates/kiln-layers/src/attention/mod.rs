//! Attention kinds: which one a model uses is one TOML line, `[model.attention] kind = "..."`.
//!
//! Every kind maps per-head `q, k, v: [b, h, n, d]` to `[b, h, n, d]`, takes a key-padding mask and
//! an optional [`Rotary`], and is wrapped by [`MultiHeadAttention`](crate::MultiHeadAttention).
//! See `shared/METHODS.md` §2.

mod linear;
mod multi_head;
mod nystrom;
mod performer;
mod softmax;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

pub use linear::{
    FeatureMap, Features, LINEAR_EPS, LinearAttention, kernelized_attention, kernelized_attention_quadratic,
};
pub use multi_head::{MultiHeadAttention, MultiHeadAttentionConfig};
pub use nystrom::{Nystrom, iterative_pinv};
pub use performer::{PERFORMER_FEATURE_EPS, Performer, default_num_features, orthogonal_gaussian};
pub use softmax::SoftmaxAttention;

use crate::{LayerConfigError, Rotary};

/// Which attention a block uses. TOML: `[model.attention]` with `kind = "performer"` and the
/// variant's keys.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AttentionConfig {
    /// Exact `softmax(QKᵀ/√d) V`.
    #[default]
    Softmax,
    /// Linear attention `φ(Q)(φ(K)ᵀV)` (Katharopoulos et al. 2020).
    Linear {
        /// `"elu+1"` (default) or `"exp"`.
        #[serde(default)]
        feature_map: FeatureMap,
        /// Project q and k to this many features before `φ` (Su recommends `> d_head` with `exp`).
        #[serde(default)]
        feature_dim: Option<usize>,
        /// Chunk length of the causal prefix sums.
        #[serde(default = "default_chunk")]
        chunk_size: usize,
    },
    /// FAVOR+ positive orthogonal random features (Choromanski et al. 2021).
    Performer {
        /// Number of random features; default `d ln d` rounded up to a multiple of 4.
        #[serde(default)]
        num_features: Option<usize>,
        /// Redraw the features every this many optimiser steps (0: never).
        #[serde(default = "default_redraw")]
        redraw_interval: usize,
        /// Seed of the feature draws (each layer mixes in its index).
        #[serde(default)]
        seed: u64,
        /// Chunk length of the causal prefix sums.
        #[serde(default = "default_chunk")]
        chunk_size: usize,
    },
    /// Nyström approximation with segment-mean landmarks (Xiong et al. 2021).
    Nystrom {
        /// Number of landmarks `m`.
        #[serde(default = "default_landmarks")]
        num_landmarks: usize,
        /// Taps of the depthwise convolution residual over V (odd; 0 disables it).
        #[serde(default = "default_conv_kernel")]
        conv_kernel: usize,
        /// Iterations of the pseudo-inverse.
        #[serde(default = "default_pinv_iterations")]
        pinv_iterations: usize,
    },
}

fn default_chunk() -> usize {
    64
}
fn default_redraw() -> usize {
    1000
}
fn default_landmarks() -> usize {
    64
}
fn default_conv_kernel() -> usize {
    33
}
fn default_pinv_iterations() -> usize {
    6
}

impl AttentionConfig {
    /// The TOML `kind` of this config.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Softmax => "softmax",
            Self::Linear { .. } => "linear",
            Self::Performer { .. } => "performer",
            Self::Nystrom { .. } => "nystrom",
        }
    }

    /// Check the parameters, and that a causal model does not ask for Nyström.
    pub fn validate(&self, causal: bool) -> Result<(), LayerConfigError> {
        match self {
            Self::Softmax => Ok(()),
            Self::Linear { feature_dim, chunk_size, .. } => {
                if *feature_dim == Some(0) {
                    return Err(LayerConfigError::ZeroFeatureDim);
                }
                nonzero("attention.chunk_size", *chunk_size)
            }
            Self::Performer { num_features, chunk_size, .. } => {
                if *num_features == Some(0) {
                    return Err(LayerConfigError::Zero { key: "attention.num_features" });
                }
                nonzero("attention.chunk_size", *chunk_size)
            }
            Self::Nystrom { num_landmarks, conv_kernel, pinv_iterations } => {
                if causal {
                    return Err(LayerConfigError::CausalNystrom);
                }
                nonzero("attention.num_landmarks", *num_landmarks)?;
                nonzero("attention.pinv_iterations", *pinv_iterations)?;
                if *conv_kernel > 0 && conv_kernel % 2 == 0 {
                    return Err(LayerConfigError::EvenConvKernel(*conv_kernel));
                }
                Ok(())
            }
        }
    }

    /// The dimensions a rotary position encoding rotates with this attention: the head dimension,
    /// or for linear attention and Performer the feature size (RoPE acts on `φ(q)`, `φ(k)`).
    pub fn rotated_dims(&self, d_head: usize) -> Vec<(&'static str, usize)> {
        match self {
            Self::Softmax | Self::Nystrom { .. } => vec![("d_head", d_head)],
            Self::Linear { feature_dim, .. } => match feature_dim {
                Some(m) => vec![("linear attention feature_dim", *m)],
                None => vec![("d_head", d_head)],
            },
            Self::Performer { num_features, .. } => {
                vec![("performer num_features", num_features.unwrap_or_else(|| default_num_features(d_head)))]
            }
        }
    }

    /// Build the attention for `n_heads` heads of size `d_head`. `layer` is mixed into Performer's
    /// seed so that layers draw different features.
    pub fn init(&self, n_heads: usize, d_head: usize, layer: usize, device: &Device) -> Attention {
        match self {
            Self::Softmax => Attention::Softmax(SoftmaxAttention),
            Self::Linear { feature_map, feature_dim, chunk_size } => {
                Attention::Linear(LinearAttention::new(d_head, *feature_map, *feature_dim, *chunk_size, device))
            }
            Self::Performer { num_features, redraw_interval, seed, chunk_size } => {
                let m = num_features.unwrap_or_else(|| default_num_features(d_head));
                let seed = seed.wrapping_add((layer as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
                Attention::Performer(Performer::new(d_head, m, *redraw_interval, seed, *chunk_size, device))
            }
            Self::Nystrom { num_landmarks, conv_kernel, pinv_iterations } => {
                Attention::Nystrom(Nystrom::new(n_heads, *num_landmarks, *conv_kernel, *pinv_iterations, device))
            }
        }
    }
}

fn nonzero(key: &'static str, value: usize) -> Result<(), LayerConfigError> {
    if value == 0 { Err(LayerConfigError::Zero { key }) } else { Ok(()) }
}

/// The attention of one layer: one variant per [`AttentionConfig`] kind.
#[derive(Module, Debug)]
pub enum Attention {
    /// Exact softmax attention.
    Softmax(SoftmaxAttention),
    /// Linear attention.
    Linear(LinearAttention),
    /// Performer FAVOR+.
    Performer(Performer),
    /// Nyström attention.
    Nystrom(Nystrom),
}

impl Attention {
    /// Attend over per-head tensors.
    ///
    /// # Shapes
    ///
    /// - `q`, `k`, `v`: `[b, h, n, d]`, `padding`: `[b, n]` (`true` = pad) → `[b, h, n, d]`
    ///
    /// # Panics
    ///
    /// Nyström panics when `causal` (configs reject it in `validate()`).
    pub fn forward(
        &self,
        q: Tensor<4>,
        k: Tensor<4>,
        v: Tensor<4>,
        padding: Option<&Tensor<2, Bool>>,
        causal: bool,
        rotary: Option<&Rotary>,
    ) -> Tensor<4> {
        match self {
            Self::Softmax(a) => a.forward(q, k, v, padding, causal, rotary),
            Self::Linear(a) => a.forward(q, k, v, padding, causal, rotary),
            Self::Performer(a) => a.forward(q, k, v, padding, causal, rotary),
            Self::Nystrom(a) => {
                assert!(!causal, "{}", LayerConfigError::CausalNystrom);
                a.forward(q, k, v, padding, rotary)
            }
        }
    }

    /// Per-step state updates: Performer redraws its features on schedule; others do nothing.
    pub fn on_step(&mut self, step: usize) {
        if let Self::Performer(p) = self {
            p.redraw(step);
        }
    }
}
