//! NER as a Kiln task: a span head on either a character-level transformer encoder trained from
//! scratch (vocabulary built from the training file) or a pretrained BERT fine-tuned, on any of the
//! formats `kiln_data::ner` reads.
//!
//! TOML:
//!
//! ```toml
//! [model]
//! kind = "ner"
//! head = { kind = "global_pointer", d_head = 64, rope = true }
//! embedding_dropout = 0.1    # from scratch only; default 0
//! token_dropout = 0.1        # from scratch only: characters -> [UNK] in training; default 0
//! bigrams = true             # from scratch only: add character-bigram embeddings; default false
//! bigram_min_count = 2       # rarer training bigrams map to [UNK]; default 2
//! bigram_dim = 32            # width of the bigram table; default 32
//! lexicon = true             # from scratch only: match the training set's entity strings; default false
//! [model.encoder]            # from scratch: any kiln-layers TransformerConfig
//! d_model = 256
//! n_heads = 4
//! n_layers = 4
//! position = { kind = "rope" }
//! # or, instead of [model.encoder]:
//! # [model.bert]             # a Hugging Face BERT directory; default $KILN_BERT_DIR
//! # dir = "/path/to/all-MiniLM-L6-v2"
//!
//! [data]
//! kind = "ner"
//! format = "cluener"         # cluener | columns | cmeee
//! train = "cluener/train.json"
//! valid = "cluener/dev.json"
//! ```
//!
//! In training, sentences longer than `max_len` characters are cut (entities crossing the cut are
//! dropped). Evaluation and `kiln predict` label every sentence whole, a long one in windows of
//! `max_len` characters that overlap by half, and evaluation scores against all gold entities.
//! Characters unseen in training map to `[UNK]`.
//!
//! With BERT, each character (each token of a column file) is WordPiece-tokenised on its own, as
//! Hugging Face's `is_split_into_words` does: an entity on characters `s..=e` is the span from the first
//! piece of `s` to the last piece of `e`, and a predicted span of pieces maps back to the characters
//! that own its first and last piece. The head sees the pieces only (`[CLS]` and `[SEP]` are cut off).

use std::path::PathBuf;

use kiln_data::ner::NerDataConfig;
use kiln_layers::{AttentionConfig, Dropout, TransformerConfig};
use kiln_task::Context;
use kiln_transformer::embedding::{check_embedding_std, check_positions_cover};
use serde::{Deserialize, Serialize};

use crate::{Decoding, SpanHeadConfig};

/// `[model]` of `kind = "ner"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NerModelConfig {
    /// A transformer over character embeddings, trained from scratch (exclusive with `bert`).
    #[serde(default)]
    pub encoder: Option<TransformerConfig>,
    /// A pretrained BERT, fine-tuned (exclusive with `encoder`).
    #[serde(default)]
    pub bert: Option<NerBertConfig>,
    /// The span head.
    #[serde(default)]
    pub head: SpanHeadConfig,
    /// From scratch: dropout on the character embeddings, before the encoder (as BERT's and GPT's
    /// embedding dropout). Default 0.
    #[serde(default)]
    pub embedding_dropout: f64,
    /// From scratch: during training, each character (not padding) is replaced by `[UNK]` with this
    /// probability (Lample et al. 2016), so that `[UNK]`, which unseen characters map to, is trained
    /// and the model learns to tag from context. Default 0.
    #[serde(default)]
    pub token_dropout: f64,
    /// From scratch: standard deviation of the character (and bigram) embeddings' normal
    /// initialisation; default Burn's `N(0, 1)`. BERT and GPT draw theirs `N(0, 0.02²)`.
    #[serde(default)]
    pub embedding_std: Option<f64>,
    /// From scratch: add to each character's embedding a projection of the embeddings of its two
    /// bigrams, with the character before and with the one after (sentence ends are boundary
    /// symbols), concatenated; one table built on the training file — the bigram features of Chinese
    /// character taggers (Zhang and Yang 2018, Yan et al. 2019), whose concatenation `[char; left;
    /// right]` feeds a linear layer, as here. With `token_dropout`, bigram ids are replaced by `[UNK]`
    /// at the same rate, independently. Default false.
    #[serde(default)]
    pub bigrams: bool,
    /// Bigrams seen fewer times than this in the training file map to `[UNK]`. Default 2.
    #[serde(default = "default_bigram_min_count")]
    pub bigram_min_count: usize,
    /// Width of the bigram embeddings (the table has a row per bigram, often 10⁵ of them: its dense
    /// gradient and optimizer update cost time in proportion). Default 32.
    #[serde(default = "default_bigram_dim")]
    pub bigram_dim: usize,
    /// From scratch: a lexicon of the training file's entity strings, matched in every sentence.
    /// Each character gets `4 × types` indicators — begins, continues, ends or is a string seen as an
    /// entity of that type — projected onto its embedding (the BMES lexicon features of Chinese
    /// taggers, Ma et al. 2020, with the training set as the lexicon instead of an external word
    /// list). In training, a sentence does not see the strings that only it labels (leave one out),
    /// so the model also learns to find entities the lexicon does not know. Default false.
    #[serde(default)]
    pub lexicon: bool,
    /// How scores become entities: `"nested"` (default; every span with a positive score,
    /// GlobalPointer's decoding) or `"flat"` (for datasets without nested entities: the best-scoring
    /// spans that share no token). The CRF head's entities never overlap either way.
    #[serde(default)]
    pub decode: Decoding,
    /// A span is an entity when its score is above this. Default 0, the decision boundary the
    /// multilabel loss trains for; a negative value trades precision for recall. Chosen on a
    /// validation set, never on the test set. GlobalPointer heads only (the CRF decodes paths).
    #[serde(default)]
    pub threshold: f64,
}

fn default_bigram_min_count() -> usize {
    2
}

fn default_bigram_dim() -> usize {
    32
}

/// `[model.bert]`: the pretrained backbone.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NerBertConfig {
    /// A Hugging Face BERT directory (`config.json`, `model.safetensors`, `tokenizer.json` or
    /// `vocab.txt`); when absent, `$KILN_BERT_DIR` (see [`NerModelConfig::resolve_paths`]).
    #[serde(default)]
    pub dir: Option<PathBuf>,
    /// The attention inside BERT (softmax is the checkpoint's own; others swap it).
    #[serde(default = "softmax")]
    pub attention: AttentionConfig,
}

fn softmax() -> AttentionConfig {
    AttentionConfig::Softmax {}
}

impl NerModelConfig {
    /// Encoder and head checks.
    ///
    /// # Errors
    ///
    /// The first invalid value.
    pub fn validate(&self) -> kiln_task::Result<()> {
        match (&self.encoder, &self.bert) {
            (Some(e), None) => e.validate().context("model.encoder")?,
            (None, Some(b)) => b.attention.validate(false).context("model.bert.attention")?,
            (Some(_), Some(_)) => kiln_task::bail!("model: give either [model.encoder] or [model.bert], not both"),
            (None, None) => kiln_task::bail!(
                "model: give [model.encoder] (a transformer trained from scratch) or [model.bert] (a pretrained BERT)"
            ),
        }
        self.head.validate().context("model.head")?;
        for (key, p) in [("embedding_dropout", self.embedding_dropout), ("token_dropout", self.token_dropout)] {
            kiln_task::ensure!(Dropout::valid(p), "model.{key}: {p} is outside [0, 1)");
            kiln_task::ensure!(
                p == 0.0 || self.encoder.is_some(),
                "model.{key}: applies to a from-scratch [model.encoder] only (BERT has its own dropout)"
            );
        }
        kiln_task::ensure!(
            !self.bigrams || self.encoder.is_some(),
            "model.bigrams: applies to a from-scratch [model.encoder] only (BERT has its own vocabulary)"
        );
        kiln_task::ensure!(
            !self.lexicon || self.encoder.is_some(),
            "model.lexicon: applies to a from-scratch [model.encoder] only"
        );
        kiln_task::ensure!(
            self.embedding_std.is_none() || self.encoder.is_some(),
            "model.embedding_std: applies to a from-scratch [model.encoder] only (BERT's are pretrained)"
        );
        check_embedding_std(self.embedding_std)?;
        kiln_task::ensure!(self.threshold.is_finite(), "model.threshold: {} is not a finite number", self.threshold);
        kiln_task::ensure!(
            self.threshold == 0.0 || !matches!(self.head, SpanHeadConfig::Crf { .. }),
            "model.threshold: applies to the GlobalPointer heads only (the CRF head decodes a tag path)"
        );
        kiln_task::ensure!(self.bigram_min_count >= 1, "model.bigram_min_count: must be at least 1");
        kiln_task::ensure!(self.bigram_dim >= 1, "model.bigram_dim: must be at least 1");
        Ok(())
    }

    /// A from-scratch encoder's learned positions, if any, cover `data.max_len` characters, the
    /// longest sentence a batch keeps (BERT's pieces are cut to its own position table).
    pub fn check_data(&self, data: &NerDataConfig) -> kiln_task::Result<()> {
        match &self.encoder {
            Some(e) => {
                check_positions_cover("model.encoder", e, data.max_len, &format!("data.max_len = {}", data.max_len))
            }
            None => Ok(()),
        }
    }

    /// Fill `model.bert.dir` from `$KILN_BERT_DIR` when absent, and make it absolute, so that the
    /// resolved config saved with a run finds the checkpoint from any directory.
    pub fn resolve_paths(&mut self) {
        if let Some(bert) = &mut self.bert {
            if bert.dir.is_none() {
                bert.dir = std::env::var_os("KILN_BERT_DIR").filter(|d| !d.is_empty()).map(PathBuf::from);
            }
            if let Some(dir) = &mut bert.dir {
                *dir = std::path::absolute(&*dir).unwrap_or_else(|_| dir.clone());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `[model]` of `extra` keys and a backbone section, parsed and validated.
    fn parse(extra: &str, backbone: &str) -> kiln_task::Result<()> {
        let model: NerModelConfig = toml::from_str(&format!("{extra}\n{backbone}")).context("[model]")?;
        model.validate()
    }

    const SCRATCH: &str = "[encoder]\nd_model = 16\nn_heads = 2\nn_layers = 1";

    #[test]
    fn bigram_options_are_checked() {
        parse("bigrams = true\nbigram_min_count = 3\nbigram_dim = 16", SCRATCH).unwrap();
        let err = parse("bigram_dim = 0", SCRATCH).unwrap_err().to_string();
        assert!(err.contains("model.bigram_dim: must be at least 1"), "{err}");
        let err = parse("bigram_min_count = 0", SCRATCH).unwrap_err().to_string();
        assert!(err.contains("model.bigram_min_count: must be at least 1"), "{err}");
        let err = parse("bigrams = true", "[bert]\ndir = \"/x\"").unwrap_err().to_string();
        assert!(err.contains("model.bigrams: applies to a from-scratch"), "{err}");
        parse("lexicon = true", SCRATCH).unwrap();
        let err = parse("lexicon = true", "[bert]\ndir = \"/x\"").unwrap_err().to_string();
        assert!(err.contains("model.lexicon: applies to a from-scratch"), "{err}");
    }

    #[test]
    fn embedding_and_token_dropout_are_checked() {
        parse("embedding_dropout = 0.1\ntoken_dropout = 0.05", SCRATCH).unwrap();
        let err = parse("token_dropout = 1.0", SCRATCH).unwrap_err().to_string();
        assert!(err.contains("model.token_dropout: 1 is outside [0, 1)"), "{err}");
        let err = parse("embedding_dropout = -0.1", SCRATCH).unwrap_err().to_string();
        assert!(err.contains("model.embedding_dropout"), "{err}");
        let err = parse("token_dropout = 0.1", "[bert]\ndir = \"/x\"").unwrap_err().to_string();
        assert!(err.contains("from-scratch [model.encoder] only"), "{err}");
    }
}
