//! A BERT-compatible encoder (Devlin et al. 2019, arXiv:1810.04805) built from Kiln layers, so that
//! Hugging Face BERT checkpoints load exactly and can then be fine-tuned or have their attention
//! swapped.
//!
//! The architecture is Hugging Face `transformers`' `BertModel`: [`BertEmbeddings`], then a
//! post-norm [`Transformer`] (LayerNorm with the checkpoint's `layer_norm_eps`, erf-GELU feed-forward,
//! biases everywhere, no positions inside the stack because they were added with the embeddings), then
//! an optional pooler `tanh(W h_[CLS] + b)`. The attention in each block is Kiln's pluggable
//! [`AttentionConfig`]: softmax reproduces the checkpoint; another kind reuses the pretrained
//! projections with a different token mixer (an experiment, not a faithful load).
//!
//! Not reproduced: dropout on the attention probabilities (`attention_probs_dropout_prob`), which
//! Kiln's attention kinds do not have; it only matters when fine-tuning.
//!
//! Weights come from `model.safetensors` through burn-store; the one key-mapping table is in
//! [`convert`].

pub mod convert;
mod embeddings;

use std::path::{Path, PathBuf};

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;
use serde::Deserialize;

pub use embeddings::BertEmbeddings;

use kiln_data::tokenizer::TokenBatch;
use kiln_layers::mask::padding_from_lengths;
use kiln_layers::{
    AttentionConfig, LayerConfigError, NormKind, NormPosition, PositionConfig, TokenLayout, Transformer,
    TransformerConfig,
};

/// What went wrong building or loading a BERT.
#[derive(Debug, thiserror::Error)]
pub enum BertError {
    /// A file could not be read.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// `config.json` does not parse.
    #[error("{}: line {line}: {message}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// Line of the error.
        line: usize,
        /// What was wrong.
        message: String,
    },
    /// `config.json` asks for something this encoder does not implement.
    #[error("config.json: {key} = {value:?} is not supported ({supported})")]
    Unsupported {
        /// The key.
        key: &'static str,
        /// Its value.
        value: String,
        /// What is.
        supported: &'static str,
    },
    /// The encoder built from the config is invalid.
    #[error(transparent)]
    Layer(#[from] LayerConfigError),
    /// The safetensors file is not readable as one.
    #[error("{}: {message}", path.display())]
    Checkpoint {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// Tensors the config needs are absent from the checkpoint.
    #[error("{}: missing tensors: {}", path.display(), names.join(", "))]
    Missing {
        /// The file.
        path: PathBuf,
        /// Checkpoint names of the missing tensors.
        names: Vec<String>,
    },
    /// A tensor has a shape other than the config implies.
    #[error("{}: tensor `{name}` has shape {found:?}, expected {expected:?} from config.json", path.display())]
    Shape {
        /// The file.
        path: PathBuf,
        /// Checkpoint name.
        name: String,
        /// Shape in the file.
        found: Vec<usize>,
        /// Shape the config implies.
        expected: Vec<usize>,
    },
}

/// A task built on a BERT (NER with a pretrained backbone) fails with its [`BertError`] as it is.
impl From<BertError> for kiln_task::TaskError {
    fn from(error: BertError) -> Self {
        kiln_task::TaskError::Model(Box::new(error))
    }
}

/// The fields of a Hugging Face `config.json` this encoder reads (the rest are ignored).
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BertConfig {
    /// WordPiece vocabulary size.
    pub vocab_size: usize,
    /// Model width `d_model`.
    pub hidden_size: usize,
    /// Number of blocks.
    pub num_hidden_layers: usize,
    /// Heads per block.
    pub num_attention_heads: usize,
    /// Feed-forward width `d_ff`.
    pub intermediate_size: usize,
    /// Must be `"gelu"` (the erf form).
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// Rows of the position table.
    pub max_position_embeddings: usize,
    /// Rows of the segment table.
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    /// LayerNorm `ε`.
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    /// Residual and embedding dropout.
    #[serde(default)]
    pub hidden_dropout_prob: f64,
    /// Must be `"absolute"` when present.
    #[serde(default)]
    pub position_embedding_type: Option<String>,
    /// `"bert"` when present.
    #[serde(default)]
    pub model_type: Option<String>,
    /// Kiln's choice, not in `config.json`: the attention kind of every block (default softmax).
    #[serde(skip)]
    pub attention: AttentionConfig,
}

fn default_act() -> String {
    "gelu".into()
}
fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}

impl BertConfig {
    /// Read `config.json`.
    ///
    /// # Errors
    ///
    /// The file is missing or not a BERT config.
    pub fn from_file(path: &Path) -> Result<Self, BertError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| BertError::Io { path: path.into(), error: source })?;
        Self::parse(&text, path)
    }

    /// Parse and validate the text of a `config.json`; `path` names it in errors.
    ///
    /// # Errors
    ///
    /// As [`BertConfig::from_file`].
    pub fn parse(text: &str, path: &Path) -> Result<Self, BertError> {
        let config: Self = serde_json::from_str(text).map_err(|e| BertError::Config {
            path: path.into(),
            line: e.line(),
            message: e.to_string(),
        })?;
        config.validate().map_err(|e| match e {
            // Say it in config.json's own names.
            BertError::Layer(e) => BertError::Checkpoint {
                path: path.into(),
                message: e
                    .to_string()
                    .replace("d_model", "hidden_size")
                    .replace("n_heads", "num_attention_heads")
                    .replace("n_layers", "num_hidden_layers")
                    .replace("d_ff", "intermediate_size"),
            },
            e => e,
        })?;
        Ok(config)
    }

    /// Reject what the encoder does not implement, and invalid dimensions.
    ///
    /// # Errors
    ///
    /// The first problem found.
    pub fn validate(&self) -> Result<(), BertError> {
        if self.hidden_act != "gelu" {
            return Err(BertError::Unsupported {
                key: "hidden_act",
                value: self.hidden_act.clone(),
                supported: "\"gelu\", the erf form",
            });
        }
        if let Some(p) = self.position_embedding_type.as_deref().filter(|p| *p != "absolute") {
            return Err(BertError::Unsupported {
                key: "position_embedding_type",
                value: p.into(),
                supported: "\"absolute\"",
            });
        }
        if let Some(m) = self.model_type.as_deref().filter(|m| *m != "bert") {
            return Err(BertError::Unsupported { key: "model_type", value: m.into(), supported: "\"bert\"" });
        }
        for (key, value) in [
            ("vocab_size", self.vocab_size),
            ("max_position_embeddings", self.max_position_embeddings),
            ("type_vocab_size", self.type_vocab_size),
        ] {
            if value == 0 {
                return Err(LayerConfigError::Zero { key }.into());
            }
        }
        self.encoder_config().validate()?;
        Ok(())
    }

    /// The post-norm transformer stack inside.
    pub fn encoder_config(&self) -> TransformerConfig {
        TransformerConfig {
            d_ff: Some(self.intermediate_size),
            dropout: self.hidden_dropout_prob,
            norm: NormKind::LayerNorm,
            norm_position: NormPosition::Post,
            norm_eps: self.layer_norm_eps,
            causal: false,
            attention: self.attention.clone(),
            position: PositionConfig::None {},
            ..TransformerConfig::new(self.hidden_size, self.num_attention_heads, self.num_hidden_layers)
        }
    }

    /// Build with random weights; `pooler` adds the `[CLS]` pooler.
    ///
    /// # Panics
    ///
    /// If the config is invalid; call [`validate`](Self::validate) first.
    pub fn init(&self, pooler: bool, device: &Device) -> Bert {
        let d = self.hidden_size;
        Bert {
            embeddings: BertEmbeddings::new(
                self.vocab_size,
                self.max_position_embeddings,
                self.type_vocab_size,
                d,
                self.layer_norm_eps,
                self.hidden_dropout_prob,
                device,
            ),
            encoder: self.encoder_config().init(device),
            pooler: pooler.then(|| LinearConfig::new(d, d).init(device)),
        }
    }
}

/// A padded batch of token ids as tensors.
#[derive(Debug, Clone)]
pub struct BertInput {
    /// `[b, n]` token ids.
    pub ids: Tensor<2, Int>,
    /// `[b, n]` segment ids.
    pub type_ids: Tensor<2, Int>,
    /// `[b, n]`, `true` at padding.
    pub padding: Tensor<2, Bool>,
}

impl BertInput {
    /// Move a tokenised batch to `device`.
    pub fn from_batch(batch: &TokenBatch, device: &Device) -> Self {
        let (b, n) = (batch.lengths.len(), batch.max_len);
        let int = |v: &[u32]| {
            Tensor::<2, Int>::from_data(
                TensorData::new(v.iter().map(|&x| i64::from(x)).collect::<Vec<_>>(), [b, n]),
                device,
            )
        };
        Self {
            ids: int(&batch.ids),
            type_ids: int(&batch.type_ids),
            padding: padding_from_lengths(&batch.lengths, n, device),
        }
    }
}

/// The outputs of a forward pass.
#[derive(Debug, Clone)]
pub struct BertOutput {
    /// Embedding layer output `[b, n, d_model]`.
    pub embeddings: Tensor<3>,
    /// Output of every block, first to last, each `[b, n, d_model]`.
    pub layers: Vec<Tensor<3>>,
}

impl BertOutput {
    /// The last block's output (Hugging Face's `last_hidden_state`).
    pub fn last(&self) -> Tensor<3> {
        self.layers.last().expect("at least one layer").clone()
    }
}

/// A BERT encoder.
#[derive(Module, Debug)]
pub struct Bert {
    /// Input embeddings.
    pub embeddings: BertEmbeddings,
    /// The post-norm block stack.
    pub encoder: Transformer,
    /// `[CLS]` pooler, when the checkpoint has one.
    pub pooler: Option<Linear>,
}

impl Bert {
    /// Run the encoder.
    ///
    /// # Shapes
    ///
    /// - `ids`, `type_ids`: `[b, n]`; `padding`: `[b, n]` (`true` = pad) → [`BertOutput`]
    ///
    /// # Panics
    ///
    /// If `n` exceeds the position table.
    pub fn forward(
        &self,
        ids: Tensor<2, Int>,
        type_ids: Tensor<2, Int>,
        padding: Option<&Tensor<2, Bool>>,
    ) -> BertOutput {
        let embeddings = self.embeddings.forward(ids, type_ids);
        let layers = self.encoder.forward_hidden_states(embeddings.clone(), padding, TokenLayout::Sequence);
        BertOutput { embeddings, layers }
    }

    /// Run the encoder on a [`BertInput`].
    ///
    /// # Panics
    ///
    /// If the sequence is longer than the position table.
    pub fn forward_input(&self, input: &BertInput) -> BertOutput {
        self.forward(input.ids.clone(), input.type_ids.clone(), Some(&input.padding))
    }

    /// The pooler output `tanh(W h_[CLS] + b)`, if the model has a pooler.
    ///
    /// # Shapes
    ///
    /// - `last`: `[b, n, d_model]` → `[b, d_model]`
    pub fn pool(&self, last: Tensor<3>) -> Option<Tensor<2>> {
        let pooler = self.pooler.as_ref()?;
        let [b, _, d] = last.dims();
        let cls = last.slice(s![.., 0..1, ..]).reshape([b, d]);
        Some(pooler.forward(cls).tanh())
    }
}
