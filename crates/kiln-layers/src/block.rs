//! One transformer block, pre-norm or post-norm.
//!
//! Post-norm (Vaswani et al. 2017; BERT): `x = norm1(x + drop(attn(x)))`, `x = norm2(x + drop(ff(x)))`.
//! Pre-norm (Xiong et al. 2020, arXiv:2002.04745; GPT-2): `x = x + drop(attn(norm1(x)))`,
//! `x = x + drop(ff(norm2(x)))`, with a final norm after the last block (see
//! [`Transformer`](crate::Transformer)).

use crate::Dropout;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{FeedForward, MultiHeadAttention, Norm, Rotary};

/// Where the norms sit. TOML: `norm_position = "pre"` or `"post"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NormPosition {
    /// Normalise the input of each sub-layer (stable for deep or high-lr training).
    #[default]
    Pre,
    /// Normalise after each residual addition (the original transformer, BERT).
    Post,
}

/// A transformer block: multi-head attention and a feed-forward network with residuals and norms.
#[derive(Module, Debug)]
pub struct TransformerBlock {
    /// Self-attention (checkpoint key `attention`).
    pub attention: MultiHeadAttention,
    /// Norm around attention.
    pub norm1: Norm,
    /// Feed-forward network.
    pub feed_forward: FeedForward,
    /// Norm around the feed-forward network.
    pub norm2: Norm,
    /// Residual dropout.
    pub dropout: Dropout,
    /// Pre- or post-norm.
    #[module(skip)]
    pub norm_position: NormPosition,
}

impl TransformerBlock {
    /// Assemble a block from its parts.
    pub fn new(
        attention: MultiHeadAttention,
        norm1: Norm,
        feed_forward: FeedForward,
        norm2: Norm,
        dropout: f64,
        norm_position: NormPosition,
    ) -> Self {
        Self { attention, norm1, feed_forward, norm2, dropout: Dropout::new(dropout), norm_position }
    }

    /// # Shapes
    ///
    /// - `x`: `[b, n, d_model]`, `padding`: `[b, n]` (`true` = pad) → `[b, n, d_model]`
    pub fn forward(&self, x: Tensor<3>, padding: Option<&Tensor<2, Bool>>, rotary: Option<&Rotary>) -> Tensor<3> {
        match self.norm_position {
            NormPosition::Pre => {
                let a = self.attention.forward(self.norm1.forward(x.clone()), padding, rotary);
                let x = x + self.dropout.forward(a);
                let f = self.feed_forward.forward(self.norm2.forward(x.clone()));
                x + self.dropout.forward(f)
            }
            NormPosition::Post => {
                let a = self.attention.forward(x.clone(), padding, rotary);
                let x = self.norm1.forward(x + self.dropout.forward(a));
                let f = self.feed_forward.forward(x.clone());
                self.norm2.forward(x + self.dropout.forward(f))
            }
        }
    }
}
