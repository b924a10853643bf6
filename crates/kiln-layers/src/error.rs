//! The one error type of this crate: what `validate()` finds wrong with a layer configuration.

/// A layer configuration that cannot be built, with the values that made it invalid.
///
/// Returned by the `validate()` methods of [`AttentionConfig`](crate::AttentionConfig),
/// [`PositionConfig`](crate::PositionConfig), [`MultiHeadAttentionConfig`](crate::MultiHeadAttentionConfig)
/// and [`TransformerConfig`](crate::TransformerConfig). Binaries call `validate()` before `init()`,
/// so a bad config file is one message, never a panic deep inside a forward pass.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LayerConfigError {
    /// `d_model` must split evenly into heads.
    #[error("d_model ({d_model}) is not divisible by n_heads ({n_heads})")]
    HeadsDoNotDivide {
        /// Model width.
        d_model: usize,
        /// Number of heads.
        n_heads: usize,
    },
    /// A size that must be at least one was zero.
    #[error("`{key}` must be at least 1, got 0")]
    Zero {
        /// The config key, e.g. `n_heads`.
        key: &'static str,
    },
    /// Dropout outside `[0, 1)`.
    #[error("`dropout` must be in [0, 1), got {0}")]
    Dropout(f64),
    /// A strictly positive float was not.
    #[error("`{key}` must be a finite number > 0, got {value}")]
    NotPositive {
        /// The config key, e.g. `theta`.
        key: &'static str,
        /// The value given.
        value: f64,
    },
    /// Nyström landmarks are segment means over the whole sequence, future tokens included.
    #[error(
        "nystrom attention cannot be causal: its landmarks average over future tokens; \
         use kind = \"softmax\", \"linear\" or \"performer\" for a causal model"
    )]
    CausalNystrom,
    /// The Nyström depthwise convolution needs an odd kernel to stay centred.
    #[error("nystrom `conv_kernel` ({0}) must be odd (or 0 to disable the convolution residual)")]
    EvenConvKernel(usize),
    /// RoPE rotates feature pairs, so the rotated dimension must be even.
    #[error("rope rotates pairs of features, so {what} must be even, got {dim}")]
    RopeOddDim {
        /// Which dimension (e.g. `d_head`, `performer num_features`).
        what: &'static str,
        /// Its value.
        dim: usize,
    },
    /// 2-D RoPE splits the rotated dimension into two halves of pairs.
    #[error("rope2d rotates two halves of pairs (rows and columns), so {what} must be divisible by 4, got {dim}")]
    Rope2dDim {
        /// Which dimension (e.g. `d_head`).
        what: &'static str,
        /// Its value.
        dim: usize,
    },
    /// The linear-attention feature projection must map to at least one feature.
    #[error("linear `feature_dim` must be at least 1, got 0")]
    ZeroFeatureDim,
}
