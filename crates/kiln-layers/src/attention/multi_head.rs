//! Multi-head attention around any [`Attention`] kind (Vaswani et al. 2017, §3.2.2): project the input
//! to queries, keys and values, split `d_model` into `n_heads` heads of `d_head`, attend per head,
//! merge, project out.
//!
//! Checkpoint keys are `query`, `key`, `value`, `output` (Burn's and BERT's names), and `attention`
//! for the kind's own state (Performer features, Nyström convolution).

use burn::prelude::*;

use super::AttentionOptions;
use serde::{Deserialize, Serialize};

use super::{Attention, AttentionConfig};
use crate::{LayerConfigError, Linear, Rotary};

/// Multi-head attention configuration (a sub-table of the model config).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MultiHeadAttentionConfig {
    /// Model width.
    pub d_model: usize,
    /// Number of heads; must divide `d_model`.
    pub n_heads: usize,
    /// Mask future keys.
    #[serde(default)]
    pub causal: bool,
    /// Which attention.
    #[serde(default)]
    pub attention: AttentionConfig,
}

impl MultiHeadAttentionConfig {
    /// Softmax attention, non-causal.
    pub fn new(d_model: usize, n_heads: usize) -> Self {
        Self { d_model, n_heads, causal: false, attention: AttentionConfig::Softmax {} }
    }

    /// Head dimension `d_model / n_heads`.
    pub fn d_head(&self) -> usize {
        self.d_model / self.n_heads.max(1)
    }

    /// Check the dimensions and the attention kind.
    pub fn validate(&self) -> Result<(), LayerConfigError> {
        if self.n_heads == 0 {
            return Err(LayerConfigError::Zero { key: "n_heads" });
        }
        if self.d_model == 0 {
            return Err(LayerConfigError::Zero { key: "d_model" });
        }
        if !self.d_model.is_multiple_of(self.n_heads) {
            return Err(LayerConfigError::HeadsDoNotDivide { d_model: self.d_model, n_heads: self.n_heads });
        }
        self.attention.validate(self.causal)
    }

    /// Build; `layer` seeds per-layer random state (Performer).
    ///
    /// # Panics
    ///
    /// If the config is invalid; call [`validate`](Self::validate) first.
    pub fn init(&self, layer: usize, device: &Device) -> MultiHeadAttention {
        if let Err(e) = self.validate() {
            panic!("invalid attention config: {e}");
        }
        let proj = || Linear::new(self.d_model, self.d_model, true, device);
        MultiHeadAttention {
            query: proj(),
            key: proj(),
            value: proj(),
            output: proj(),
            attention: self.attention.init(self.n_heads, self.d_head(), layer, device),
            n_heads: self.n_heads,
            causal: self.causal,
        }
    }
}

/// Multi-head attention with a pluggable attention kind.
#[derive(Module, Debug)]
pub struct MultiHeadAttention {
    /// Query projection `d_model → d_model`.
    pub query: Linear,
    /// Key projection.
    pub key: Linear,
    /// Value projection.
    pub value: Linear,
    /// Output projection.
    pub output: Linear,
    /// The attention kind.
    pub attention: Attention,
    /// Number of heads.
    pub n_heads: usize,
    /// Whether future keys are masked.
    pub causal: bool,
}

impl MultiHeadAttention {
    /// Self-attention over `x`.
    ///
    /// # Shapes
    ///
    /// - `x`: `[b, n, d_model]`, `padding`: `[b, n]` (`true` = pad) → `[b, n, d_model]`
    pub fn forward(&self, x: Tensor<3>, padding: Option<&Tensor<2, Bool>>, rotary: Option<&Rotary>) -> Tensor<3> {
        let [b, n, d_model] = x.dims();
        let (h, d) = (self.n_heads, d_model / self.n_heads);
        let heads = |t: Tensor<3>| t.reshape([b, n, h, d]).swap_dims(1, 2); // [b, h, n, d]
        let q = heads(self.query.forward(x.clone()));
        let k = heads(self.key.forward(x.clone()));
        let v = heads(self.value.forward(x));
        let out = self.attention.forward(q, k, v, AttentionOptions { padding, causal: self.causal, rotary }); // [b, h, n, d]
        self.output.forward(out.swap_dims(1, 2).reshape([b, n, d_model]))
    }
}
