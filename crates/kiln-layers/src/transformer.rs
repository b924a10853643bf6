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
        if !crate::Dropout::valid(self.dropout) {
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
        if let (Some(norm), Some(last)) = (&self.final_norm, states.last_mut()) {
            *last = norm.forward(last.clone());
        }
        states
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FeatureMap;
    use crate::test_util::*;

    fn parse(extra: &str) -> Result<TransformerConfig, toml::de::Error> {
        toml::from_str(&format!("d_model = 64\nn_heads = 4\nn_layers = 2\n{extra}"))
    }

    #[test]
    fn toml_defaults_and_kinds() {
        let c = parse("").unwrap();
        assert_eq!(c, TransformerConfig::new(64, 4, 2));
        let c = parse("attention = { kind = \"linear\", feature_map = \"exp\", feature_dim = 32 }\nposition = { kind = \"rope2d\" }").unwrap();
        assert_eq!(
            c.attention,
            AttentionConfig::Linear { feature_map: FeatureMap::Exp, feature_dim: Some(32), chunk_size: 64 }
        );
        assert_eq!(c.position, PositionConfig::Rope2d { base: 10_000.0 });
        let c = parse("attention = { kind = \"nystrom\" }").unwrap();
        assert_eq!(c.attention, AttentionConfig::Nystrom { num_landmarks: 64, conv_kernel: 33, pinv_iterations: 6 });
        assert!(c.validate().is_ok());
    }

    /// Unknown keys, misspelt kinds and wrong types are parse errors that name the key.
    #[test]
    fn toml_is_strict() {
        let cases = [
            ("n_haeds = 4", "n_haeds"),
            ("attention = { kind = \"softmax\", num_features = 3 }", "num_features"),
            ("attention = { kind = \"performer\", num_feature = 3 }", "num_feature"),
            ("attention = { kind = \"flash\" }", "flash"),
            ("attention = { kind = \"linear\", feature_map = \"relu\" }", "relu"),
            ("position = { kind = \"rope\", bsae = 10 }", "bsae"),
            ("dropout = \"high\"", "dropout"),
            ("norm_position = \"middle\"", "middle"),
        ];
        for (extra, needle) in cases {
            let err = parse(extra).expect_err(extra).to_string();
            assert!(err.contains(needle), "{extra}: error does not name `{needle}`: {err}");
        }
    }

    /// Every invalid combination gives its own typed error.
    #[test]
    fn invalid_combinations_give_typed_errors() {
        let base = TransformerConfig { dropout: 0.0, ..TransformerConfig::new(64, 4, 2) };
        let with = |f: &dyn Fn(&mut TransformerConfig)| {
            let mut c = base.clone();
            f(&mut c);
            c.validate().expect_err("must be invalid")
        };
        use LayerConfigError as E;
        assert_eq!(with(&|c| c.n_heads = 5), E::HeadsDoNotDivide { d_model: 64, n_heads: 5 });
        assert_eq!(with(&|c| c.n_heads = 0), E::Zero { key: "n_heads" });
        assert_eq!(with(&|c| c.n_layers = 0), E::Zero { key: "n_layers" });
        assert_eq!(with(&|c| c.d_ff = Some(0)), E::Zero { key: "d_ff" });
        assert_eq!(with(&|c| c.dropout = 1.0), E::Dropout(1.0));
        assert_eq!(with(&|c| c.norm_eps = 0.0), E::NotPositive { key: "norm_eps", value: 0.0 });
        assert_eq!(
            with(&|c| {
                c.causal = true;
                c.attention = AttentionConfig::Nystrom { num_landmarks: 8, conv_kernel: 33, pinv_iterations: 6 };
            }),
            E::CausalNystrom
        );
        assert_eq!(
            with(&|c| c.attention = AttentionConfig::Nystrom { num_landmarks: 8, conv_kernel: 32, pinv_iterations: 6 }),
            E::EvenConvKernel(32)
        );
        assert_eq!(
            with(&|c| c.attention = AttentionConfig::Nystrom { num_landmarks: 0, conv_kernel: 33, pinv_iterations: 6 }),
            E::Zero { key: "attention.num_landmarks" }
        );
        // d_head = 12 / 4 = 3: odd for RoPE, not a multiple of 4 for 2-D RoPE.
        assert_eq!(
            with(&|c| {
                c.d_model = 12;
                c.position = PositionConfig::Rope { base: 10_000.0 };
            }),
            E::RopeOddDim { what: "d_head", dim: 3 }
        );
        assert_eq!(
            with(&|c| {
                c.d_model = 24; // d_head 6: even, not divisible by 4
                c.position = PositionConfig::Rope2d { base: 10_000.0 };
            }),
            E::Rope2dDim { what: "d_head", dim: 6 }
        );
        // RoPE rotates the feature maps of linear attention and Performer.
        assert_eq!(
            with(&|c| {
                c.attention =
                    AttentionConfig::Linear { feature_map: FeatureMap::Exp, feature_dim: Some(33), chunk_size: 64 };
                c.position = PositionConfig::Rope { base: 10_000.0 };
            }),
            E::RopeOddDim { what: "linear attention feature_dim", dim: 33 }
        );
        assert_eq!(
            with(&|c| {
                c.attention =
                    AttentionConfig::Performer { num_features: Some(30), redraw_interval: 0, seed: 0, chunk_size: 64 };
                c.position = PositionConfig::Rope2d { base: 10_000.0 };
            }),
            E::Rope2dDim { what: "performer num_features", dim: 30 }
        );
        assert_eq!(
            with(&|c| c.attention =
                AttentionConfig::Linear { feature_map: FeatureMap::Exp, feature_dim: Some(0), chunk_size: 64 }),
            E::ZeroFeatureDim
        );
        assert_eq!(
            with(&|c| c.position = PositionConfig::Learned { max_seq_len: 0 }),
            E::Zero { key: "position.max_seq_len" }
        );
        assert_eq!(
            with(&|c| c.position = PositionConfig::Rope { base: -1.0 }),
            E::NotPositive { key: "position.base", value: -1.0 }
        );
        // The message carries the values.
        assert_eq!(
            E::HeadsDoNotDivide { d_model: 64, n_heads: 5 }.to_string(),
            "d_model (64) is not divisible by n_heads (5)"
        );
    }

    /// Every attention × position combination builds and runs, pre- and post-norm, with padding, and
    /// each stack ends where its norms say: a post-norm block's output and a pre-norm stack's final
    /// output are RMS-normalised rows (unit gain at init, so every token's root mean square is 1),
    /// while a pre-norm block's own output is not; and pre- and post-norm stacks with the same seeds
    /// are not the same function.
    #[test]
    fn every_attention_and_position_builds_and_runs() {
        let device = dev();
        let attentions = [
            "{ kind = \"softmax\" }",
            "{ kind = \"linear\" }",
            "{ kind = \"linear\", feature_map = \"exp\", feature_dim = 32 }",
            "{ kind = \"performer\" }",
            "{ kind = \"nystrom\", num_landmarks = 4 }",
        ];
        let positions = ["\"none\"", "\"learned\", max_seq_len = 16", "\"sinusoidal\"", "\"rope\"", "\"rope2d\""];
        for a in attentions {
            for p in positions {
                let mut outputs = Vec::new();
                for norm in ["pre", "post"] {
                    let c = parse(&format!(
                        "dropout = 0.0\nnorm_position = \"{norm}\"\nnorm = \"rms_norm\"\nattention = {a}\nposition = {{ kind = {p} }}"
                    ))
                    .unwrap_or_else(|e| panic!("{a} {p}: {e}"));
                    c.validate().unwrap_or_else(|e| panic!("{a} {p}: {e}"));
                    let stack = c.init(&device);
                    let x = randn([2, 12, 64], 1.0, 1, &device);
                    let pad = crate::mask::padding_from_lengths(&[12, 7], 12, &device);
                    let states = stack.forward_hidden_states(x, Some(&pad), TokenLayout::Grid { rows: 3, cols: 4 });
                    assert_eq!(states.len(), 2);
                    let rms = |t: &Tensor<3>| -> Vec<f64> {
                        let v = to_vec(t.clone());
                        v.chunks(64).map(|r| (r.iter().map(|x| f64::from(x * x)).sum::<f64>() / 64.0).sqrt()).collect()
                    };
                    let (first, last) = (rms(&states[0]), rms(&states[1]));
                    let off_one = |r: &[f64]| nan_max(r.iter().map(|v| (v - 1.0).abs()));
                    // RMSNorm's eps (1e-5) moves a unit-RMS row by about 5e-6.
                    assert!(off_one(&last) < 1e-4, "{a} {p} {norm}: final rows are not unit RMS: {last:?}");
                    if norm == "post" {
                        assert!(off_one(&first) < 1e-4, "{a} {p}: post-norm block 1 rows not unit RMS: {first:?}");
                    } else {
                        assert!(off_one(&first) > 0.05, "{a} {p}: pre-norm block 1 output looks normalised: {first:?}");
                    }
                    outputs.push(to_vec(states[1].clone()));
                }
                let diff = max_abs_diff(&outputs[0], &outputs[1]);
                assert!(diff > 0.1, "{a} {p}: pre- and post-norm stacks agree to {diff}");
            }
        }
    }
}
