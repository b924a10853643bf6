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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TransformerConfig;
    use crate::test_util::*;

    /// Each norm position computes its paper's formula, composed here from the block's own parts:
    /// pre-norm `y = x + attn(norm1(x))`, `y + ff(norm2(y))`; post-norm `y = norm1(x + attn(x))`,
    /// `norm2(y + ff(y))`. The same weights wired the other way give a different output.
    #[test]
    fn norm_positions_follow_their_formulas() {
        let device = dev();
        let config = TransformerConfig { dropout: 0.0, ..TransformerConfig::new(32, 4, 1) };
        let mut block = config.init(&device).blocks.remove(0);
        let x = randn([2, 5, 32], 1.0, 3, &device);
        let pad = padding_from_lengths(&[5, 3], 5, &device);
        let attn = |x: Tensor<3>| block.attention.forward(x, Some(&pad), None);
        let pre_expected = {
            let y = x.clone() + attn(block.norm1.forward(x.clone()));
            y.clone() + block.feed_forward.forward(block.norm2.forward(y))
        };
        let post_expected = {
            let y = block.norm1.forward(x.clone() + attn(x.clone()));
            block.norm2.forward(y.clone() + block.feed_forward.forward(y))
        };
        block.norm_position = NormPosition::Pre;
        let pre = to_vec(block.forward(x.clone(), Some(&pad), None));
        block.norm_position = NormPosition::Post;
        let post = to_vec(block.forward(x, Some(&pad), None));
        assert_close(&pre, &to_vec(pre_expected), 1e-6);
        assert_close(&post, &to_vec(post_expected), 1e-6);
        let diff = max_abs_diff(&pre, &post);
        assert!(diff > 0.1, "pre- and post-norm agree to {diff}");
    }
}
