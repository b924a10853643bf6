//! A stack of transformer blocks with a pluggable attention and position encoding, built from one
//! TOML table:
//!
//! ```toml
//! d_model = 128
//! n_heads = 4
//! n_layers = 4
//! dropout = 0.0
//! norm_position = "pre"
//! causal = true
//! attention = { kind = "performer", num_features = 128 }
//! position = { kind = "rope" }
//! ```
//!
//! The stack adds absolute positions to its input, makes the rotary tables once per forward pass and
//! hands them to every block, and ends with a norm when blocks are pre-norm.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::{
    AttentionConfig, FeedForward, LayerConfigError, MultiHeadAttentionConfig, Norm, NormKind, NormPosition, Position,
    PositionConfig, TokenLayout, TransformerBlock,
};

/// Configuration of a [`Transformer`] stack.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformerConfig {
    /// Model width.
    pub d_model: usize,
    /// Attention heads per block; must divide `d_model`.
    pub n_heads: usize,
    /// Number of blocks.
    pub n_layers: usize,
    /// Feed-forward width; default `4 · d_model`.
    #[serde(default)]
    pub d_ff: Option<usize>,
    /// Residual and feed-forward dropout.
    #[serde(default = "default_dropout")]
    pub dropout: f64,
    /// `"layer_norm"` or `"rms_norm"`.
    #[serde(default)]
    pub norm: NormKind,
    /// `"pre"` or `"post"`.
    #[serde(default)]
    pub norm_position: NormPosition,
    /// Norm `ε`.
    #[serde(default = "default_norm_eps")]
    pub norm_eps: f64,
    /// Mask future tokens (language models).
    #[serde(default)]
    pub causal: bool,
    /// Which attention every block uses.
    #[serde(default)]
    pub attention: AttentionConfig,
    /// Which position encoding.
    #[serde(default)]
    pub position: PositionConfig,
}

fn default_dropout() -> f64 {
    0.1
}
fn default_norm_eps() -> f64 {
    1e-5
}

impl TransformerConfig {
    /// A softmax, pre-norm, LayerNorm stack without positions; set the rest with struct update syntax.
    pub fn new(d_model: usize, n_heads: usize, n_layers: usize) -> Self {
        Self {
            d_model,
            n_heads,
            n_layers,
            d_ff: None,
            dropout: default_dropout(),
            norm: NormKind::default(),
            norm_position: NormPosition::default(),
            norm_eps: default_norm_eps(),
            causal: false,
            attention: AttentionConfig::default(),
            position: PositionConfig::default(),
        }
    }

    /// The attention part of each block.
    pub fn attention_config(&self) -> MultiHeadAttentionConfig {
        MultiHeadAttentionConfig {
            d_model: self.d_model,
            n_heads: self.n_heads,
            causal: self.causal,
            attention: self.attention.clone(),
        }
    }

    /// Feed-forward width.
    pub fn d_ff(&self) -> usize {
        self.d_ff.unwrap_or(4 * self.d_model)
    }

    /// Every check that keeps `init` and `forward` from failing.
    pub fn validate(&self) -> Result<(), LayerConfigError> {
        if self.n_layers == 0 {
            return Err(LayerConfigError::Zero { key: "n_layers" });
        }
        if self.d_ff == Some(0) {
            return Err(LayerConfigError::Zero { key: "d_ff" });
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(LayerConfigError::Dropout(self.dropout));
        }
        if !(self.norm_eps.is_finite() && self.norm_eps > 0.0) {
            return Err(LayerConfigError::NotPositive { key: "norm_eps", value: self.norm_eps });
        }
        let mha = self.attention_config();
        mha.validate()?;
        self.position.validate(&self.attention.rotated_dims(mha.d_head()))
    }

    /// Build the stack.
    ///
    /// # Panics
    ///
    /// If the config is invalid; call [`validate`](Self::validate) first.
    pub fn init(&self, device: &Device) -> Transformer {
        if let Err(e) = self.validate() {
            panic!("invalid transformer config: {e}");
        }
        let mha = self.attention_config();
        let blocks = (0..self.n_layers)
            .map(|layer| {
                TransformerBlock::new(
                    mha.init(layer, device),
                    self.norm.init(self.d_model, self.norm_eps, device),
                    FeedForward::new(self.d_model, self.d_ff(), self.dropout, device),
                    self.norm.init(self.d_model, self.norm_eps, device),
                    self.dropout,
                    self.norm_position,
                )
            })
            .collect();
        let final_norm =
            (self.norm_position == NormPosition::Pre).then(|| self.norm.init(self.d_model, self.norm_eps, device));
        Transformer { position: self.position.init(self.d_model, device), blocks, final_norm }
    }
}

/// A stack of transformer blocks with its position encoding.
#[derive(Module, Debug)]
pub struct Transformer {
    /// Position encoding (checkpoint key `position`).
    pub position: Position,
    /// The blocks (`blocks.0`, `blocks.1`, ...).
    pub blocks: Vec<TransformerBlock>,
    /// Norm after the last block, for pre-norm stacks.
    pub final_norm: Option<Norm>,
}

impl Transformer {
    /// Run the stack.
    ///
    /// # Shapes
    ///
    /// - `x`: `[b, n, d_model]` (embedded tokens), `padding`: `[b, n]` (`true` = pad) → `[b, n, d_model]`
    pub fn forward(&self, x: Tensor<3>, padding: Option<&Tensor<2, Bool>>, layout: TokenLayout) -> Tensor<3> {
        self.forward_hidden_states(x, padding, layout).pop().expect("at least one layer")
    }

    /// Run the stack and keep the output of every block (the last one after the final norm), for
    /// poolings such as BERT's first-last average.
    ///
    /// # Shapes
    ///
    /// - `x`: `[b, n, d_model]` → `n_layers` tensors `[b, n, d_model]`
    pub fn forward_hidden_states(
        &self,
        x: Tensor<3>,
        padding: Option<&Tensor<2, Bool>>,
        layout: TokenLayout,
    ) -> Vec<Tensor<3>> {
        let [_, n, _] = x.dims();
        let rotary = self.position.rotary(n, layout, &x.device());
        let mut x = self.position.add_to_input(x, layout);
        let mut states = Vec::with_capacity(self.blocks.len());
        for block in &self.blocks {
            x = block.forward(x, padding, rotary.as_ref());
            states.push(x.clone());
        }
        if let (Some(norm), Some(last)) = (&self.final_norm, states.pop()) {
            states.push(norm.forward(last));
        }
        states
    }

    /// Per-optimiser-step updates of layer state (Performer feature redraws). Trainers call this
    /// after each step with the global step number.
    pub fn on_step(&mut self, step: usize) {
        for block in &mut self.blocks {
            block.attention.attention.on_step(step);
        }
    }
}
