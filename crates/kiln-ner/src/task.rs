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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::nn::Embedding;
use burn::prelude::*;
use burn::tensor::Distribution;
use kiln_data::ner::{NerDataConfig, NerExample, NerFile};
use kiln_data::tokenizer::BertTokenizer;
use kiln_layers::mask::padding_from_lengths;
use kiln_layers::{AttentionConfig, Dropout, Linear, TokenLayout, Transformer, TransformerConfig};
use kiln_task::{EpochSampler, GenerateOptions, Metrics, Split, StepOutput, Task};
use kiln_transformer::embedding::{check_embedding_std, check_positions_cover, token_embedding};
use kiln_transformer::{Bert, BertConfig};
use serde::{Deserialize, Serialize};

use crate::{Decoding, EntityCounts, Span, SpanHead, SpanHeadConfig};

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
    pub fn validate(&self) -> anyhow::Result<()> {
        match (&self.encoder, &self.bert) {
            (Some(e), None) => e.validate().context("model.encoder")?,
            (None, Some(b)) => b.attention.validate(false).context("model.bert.attention")?,
            (Some(_), Some(_)) => anyhow::bail!("model: give either [model.encoder] or [model.bert], not both"),
            (None, None) => anyhow::bail!(
                "model: give [model.encoder] (a transformer trained from scratch) or [model.bert] (a pretrained BERT)"
            ),
        }
        self.head.validate().context("model.head")?;
        for (key, p) in [("embedding_dropout", self.embedding_dropout), ("token_dropout", self.token_dropout)] {
            anyhow::ensure!(Dropout::valid(p), "model.{key}: {p} is outside [0, 1)");
            anyhow::ensure!(
                p == 0.0 || self.encoder.is_some(),
                "model.{key}: applies to a from-scratch [model.encoder] only (BERT has its own dropout)"
            );
        }
        anyhow::ensure!(
            !self.bigrams || self.encoder.is_some(),
            "model.bigrams: applies to a from-scratch [model.encoder] only (BERT has its own vocabulary)"
        );
        anyhow::ensure!(
            !self.lexicon || self.encoder.is_some(),
            "model.lexicon: applies to a from-scratch [model.encoder] only"
        );
        anyhow::ensure!(
            self.embedding_std.is_none() || self.encoder.is_some(),
            "model.embedding_std: applies to a from-scratch [model.encoder] only (BERT's are pretrained)"
        );
        check_embedding_std(self.embedding_std)?;
        anyhow::ensure!(self.threshold.is_finite(), "model.threshold: {} is not a finite number", self.threshold);
        anyhow::ensure!(
            self.threshold == 0.0 || !matches!(self.head, SpanHeadConfig::Crf { .. }),
            "model.threshold: applies to the GlobalPointer heads only (the CRF head decodes a tag path)"
        );
        anyhow::ensure!(self.bigram_min_count >= 1, "model.bigram_min_count: must be at least 1");
        anyhow::ensure!(self.bigram_dim >= 1, "model.bigram_dim: must be at least 1");
        Ok(())
    }

    /// A from-scratch encoder's learned positions, if any, cover `data.max_len` characters, the
    /// longest sentence a batch keeps (BERT's pieces are cut to its own position table).
    pub fn check_data(&self, data: &NerDataConfig) -> anyhow::Result<()> {
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

/// A span head on character embeddings and a transformer (from scratch), or on a pretrained BERT.
/// Exactly one of the two backbones is present. (Options rather than an enum keep the parameter
/// paths of from-scratch checkpoints stable: `embedding.*`, `encoder.*`, `head.*`.)
#[derive(Module, Debug)]
pub struct NerModel {
    /// Character embeddings (`[PAD]` = 0, `[UNK]` = 1), from scratch.
    pub embedding: Option<Embedding>,
    /// Character-bigram embeddings (`[PAD]` = 0, `[UNK]` = 1), from scratch with `bigrams = true`.
    pub bigram_embedding: Option<Embedding>,
    /// The projection of a character's two bigram embeddings, concatenated, to the model width.
    pub bigram_projection: Option<Linear>,
    /// The projection of a character's lexicon indicators (`4 × types`) to the model width, from
    /// scratch with `lexicon = true`.
    pub lexicon_projection: Option<Linear>,
    /// Dropout on the character embeddings (no parameters).
    pub embedding_dropout: Dropout,
    /// Probability of replacing a character by `[UNK]` in training (see [`drop_tokens`]).
    pub token_dropout: f64,
    /// The encoder, from scratch.
    pub encoder: Option<Transformer>,
    /// The pretrained backbone.
    pub bert: Option<Bert>,
    /// The span head.
    pub head: SpanHead,
}

impl NerModel {
    /// Span scores, invalid cells masked.
    ///
    /// # Shapes
    ///
    /// - `ids`, `padding`: `[b, n]`; `features`: see [`CharFeatures`]; `head_padding`: `[b, m]` →
    ///   `[b, n_types, m, m]`, where `m = n` from scratch and `m = n - 2` with BERT (no `[CLS]`,
    ///   `[SEP]`)
    pub fn forward(
        &self,
        ids: Tensor<2, Int>,
        features: CharFeatures,
        padding: &Tensor<2, Bool>,
        head_padding: &Tensor<2, Bool>,
    ) -> Tensor<4> {
        self.head.forward(self.encode(ids, features, padding), Some(head_padding))
    }

    /// The states the head reads: the encoder's output, or BERT's last layer without `[CLS]`
    /// (first column) and the last column.
    ///
    /// # Shapes
    ///
    /// - `ids`: `[b, n]`, `padding`: `[b, n]` → `[b, m, d_model]`
    /// - `features`: what a from-scratch model with bigrams or a lexicon reads besides the ids
    ///
    /// # Panics
    ///
    /// If the model has neither backbone (it is built with one), or bigram ids or lexicon indicators
    /// are missing for a model that has their projection.
    pub fn encode(&self, ids: Tensor<2, Int>, features: CharFeatures, padding: &Tensor<2, Bool>) -> Tensor<3> {
        match (&self.embedding, &self.encoder, &self.bert) {
            (Some(embedding), Some(encoder), _) => {
                let ids = drop_tokens(ids, padding, self.token_dropout, UNK_ID);
                let mut x = embedding.forward(ids);
                if let (Some(table), Some(projection)) = (&self.bigram_embedding, &self.bigram_projection) {
                    let bigrams = features.bigrams.expect("a model with bigram embeddings is given bigram ids");
                    let n = padding.dims()[1];
                    let both = Tensor::cat(vec![padding.clone(), padding.clone()], 1);
                    let e = table.forward(drop_tokens(bigrams, &both, self.token_dropout, UNK_ID));
                    let pair = Tensor::cat(vec![e.clone().narrow(1, 0, n), e.narrow(1, n, n)], 2);
                    x = x + projection.forward(pair);
                }
                if let Some(projection) = &self.lexicon_projection {
                    let lexicon = features.lexicon.expect("a model with a lexicon is given its indicators");
                    x = x + projection.forward(lexicon);
                }
                let x = self.embedding_dropout.forward(x);
                encoder.forward(x, Some(padding), TokenLayout::Sequence)
            }
            (_, _, Some(bert)) => {
                let n = ids.dims()[1];
                let type_ids = ids.zeros_like();
                bert.forward(ids, type_ids, Some(padding)).last().narrow(1, 1, n - 2)
            }
            _ => panic!("NerModel has no backbone"),
        }
    }
}

/// What a from-scratch model reads besides the character ids (see [`NerModel::encode`]); empty
/// (`Default`) for a model without bigrams or lexicon, and for BERT.
#[derive(Debug, Clone, Default)]
pub struct CharFeatures {
    /// `[b, 2n]`: the ids of each character's bigram with the previous character in columns `0..n`
    /// and with the next one in `n..2n` (with `bigrams = true`).
    pub bigrams: Option<Tensor<2, Int>>,
    /// `[b, n, 4 × types]`: the lexicon indicators of each character, 1 or 0, in blocks of four per
    /// type — begins, inside, ends, single (with `lexicon = true`; see [`Lexicon::indicators`]).
    pub lexicon: Option<Tensor<3>>,
}

/// The training file's entity strings: for each string (tokens joined by `\u{1f}`), the number of
/// training sentences that label it as each type.
#[derive(Debug, Default)]
pub struct Lexicon {
    counts: HashMap<String, Vec<usize>>,
    /// The longest string, in tokens.
    longest: usize,
    n_types: usize,
}

impl Lexicon {
    /// The entities of `examples` within the first `max_len` tokens; `type_index` numbers the types
    /// (entities of other types are left out).
    pub fn new(
        examples: &[NerExample],
        max_len: usize,
        n_types: usize,
        type_index: impl Fn(&str) -> Option<usize>,
    ) -> Self {
        let mut lexicon = Self { n_types, ..Self::default() };
        for x in examples {
            for (key, t) in Self::own(x, max_len, &type_index) {
                lexicon.longest = lexicon.longest.max(Self::tokens_in(&key));
                lexicon.counts.entry(key).or_insert_with(|| vec![0; n_types])[t] += 1;
            }
        }
        lexicon
    }

    /// The number of tokens of a lexicon key (tokens joined by `\u{1f}`).
    fn tokens_in(key: &str) -> usize {
        key.matches('\u{1f}').count() + 1
    }

    /// A lexicon saved with a run: each string's count per type.
    fn from_counts(counts: HashMap<String, Vec<usize>>, n_types: usize) -> Result<Self, String> {
        if let Some((key, c)) = counts.iter().find(|(_, c)| c.len() != n_types) {
            return Err(format!("{key:?} has {} counts for {n_types} types", c.len()));
        }
        let longest = counts.keys().map(|k| Self::tokens_in(k)).max().unwrap_or(0);
        Ok(Self { counts, longest, n_types })
    }

    /// The distinct (string, type) pairs a sentence labels within the cut.
    fn own(x: &NerExample, max_len: usize, type_index: impl Fn(&str) -> Option<usize>) -> BTreeSet<(String, usize)> {
        x.entities
            .iter()
            .filter(|e| e.end < max_len)
            .filter_map(|e| type_index(&e.label).map(|t| (x.tokens[e.start..=e.end].join("\u{1f}"), t)))
            .collect()
    }

    /// Distinct strings in the lexicon.
    pub fn len(&self) -> usize {
        self.counts.len()
    }

    /// Whether the training file labels no entity.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }

    /// The indicators of the first `len` tokens of `tokens`, row-major `[len, 4 × types]`: for every
    /// substring in the lexicon as type `t`, 1 at `4t` (begins) on its first token, `4t + 1`
    /// (inside) on its middle ones, `4t + 2` (ends) on its last, or `4t + 3` (single) on a one-token
    /// string. `leave_out` (a training sentence's own labels, from [`Self::own`]) discounts the
    /// sentence's own count, so that a string only it labels does not light up.
    fn indicators(&self, tokens: &[String], len: usize, leave_out: &BTreeSet<(String, usize)>) -> Vec<f32> {
        let width = 4 * self.n_types;
        let mut out = vec![0.0f32; len * width];
        let mut key = String::new();
        for i in 0..len {
            key.clear();
            for j in i..len.min(i + self.longest) {
                if j > i {
                    key.push('\u{1f}');
                }
                key.push_str(&tokens[j]);
                let Some(counts) = self.counts.get(&key) else { continue };
                for (t, &c) in counts.iter().enumerate() {
                    let own = leave_out.iter().any(|(k, u)| *u == t && *k == key);
                    if c > usize::from(own) {
                        if i == j {
                            out[i * width + 4 * t + 3] = 1.0;
                        } else {
                            out[i * width + 4 * t] = 1.0;
                            (i + 1..j).for_each(|m| out[m * width + 4 * t + 1] = 1.0);
                            out[j * width + 4 * t + 2] = 1.0;
                        }
                    }
                }
            }
        }
        out
    }
}

/// The position of `label` in the sorted type list.
fn type_position(types: &[String], label: &str) -> Option<usize> {
    types.binary_search_by(|t| t.as_str().cmp(label)).ok()
}

/// The key of the bigram of tokens `a` then `b` in [`NerTask`]'s bigram vocabulary; `None` is the
/// sentence boundary (before the first token, after the last).
fn bigram_key(a: Option<&String>, b: Option<&String>) -> String {
    // Control characters that no reader yields inside a token mark the boundary and the join.
    format!("{}\u{1f}{}", a.map_or("\u{2}", String::as_str), b.map_or("\u{3}", String::as_str))
}

/// The bigrams of the training sentences seen at least `min_count` times, numbered from 2 in key
/// order (0 is padding, 1 `[UNK]`), so that the same file gives the same ids.
fn bigram_vocabulary(examples: &[NerExample], min_count: usize) -> HashMap<String, usize> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for x in examples {
        for i in 0..=x.tokens.len() {
            let before = i.checked_sub(1).and_then(|j| x.tokens.get(j));
            *counts.entry(bigram_key(before, x.tokens.get(i))).or_default() += 1;
        }
    }
    let mut kept: Vec<String> = counts.into_iter().filter(|&(_, c)| c >= min_count).map(|(k, _)| k).collect();
    kept.sort_unstable();
    kept.into_iter().enumerate().map(|(i, k)| (k, i + 2)).collect()
}

/// The id of `[UNK]` in a from-scratch vocabulary (`[PAD]` is 0).
pub const UNK_ID: i64 = 1;

/// Token dropout: on an autodiff device (training), each id that is not padding becomes `unk` with
/// probability `prob`, drawn from the device's generator (so the trainer's per-step seed fixes it);
/// elsewhere, and with `prob = 0`, the ids unchanged.
///
/// # Shapes
///
/// - `ids`, `padding`: `[b, n]` → `[b, n]`
pub fn drop_tokens(ids: Tensor<2, Int>, padding: &Tensor<2, Bool>, prob: f64, unk: i64) -> Tensor<2, Int> {
    let device = ids.device();
    if prob == 0.0 || !device.is_autodiff() {
        return ids;
    }
    let draw = Tensor::<2>::random(ids.dims(), Distribution::Bernoulli(prob), &device);
    let drop = draw.equal_elem(1.0).bool_and(padding.clone().bool_not());
    ids.mask_fill(drop, unk)
}

/// A training or evaluation batch.
pub struct NerBatch {
    ids: Tensor<2, Int>,
    /// Bigram ids and lexicon indicators (from scratch; see [`CharFeatures`]).
    features: CharFeatures,
    padding: Tensor<2, Bool>,
    /// Padding of the head's positions (= `padding` from scratch; BERT: pieces only).
    head_padding: Tensor<2, Bool>,
    /// Gold spans in head positions.
    spans: Vec<Vec<Span>>,
    /// For each row, the word (character) of each head position.
    words: Vec<Vec<usize>>,
}

impl NerBatch {
    /// Predicted spans of each row in word (character) positions, from scores over head positions.
    fn to_words(&self, scores: Tensor<4>, decoding: Decoding, threshold: f64) -> Vec<Vec<Span>> {
        decoding
            .decode(scores, threshold as f32)
            .into_iter()
            .zip(&self.words)
            .map(|(spans, words)| {
                let mut out: Vec<Span> = spans
                    .into_iter()
                    .map(|s| Span { kind: s.kind, start: words[s.start], end: words[s.end] })
                    .collect();
                out.sort_by_key(|s| (s.start, s.end, s.kind));
                out.dedup();
                out
            })
            .collect()
    }
}

/// One line of `kiln predict` output.
#[derive(Serialize)]
struct Prediction<'a> {
    text: &'a str,
    entities: Vec<PredictedEntity<'a>>,
}

/// An entity with inclusive character offsets.
#[derive(Serialize)]
struct PredictedEntity<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    start: usize,
    end: usize,
    text: String,
}

/// The pretrained backbone's pieces, loaded once per task.
struct BertBackbone {
    dir: PathBuf,
    attention: AttentionConfig,
    config: BertConfig,
    tokenizer: BertTokenizer,
}

impl BertBackbone {
    fn open(config: &NerBertConfig) -> anyhow::Result<Self> {
        let dir = config.dir.clone().context(
            "model.bert.dir is not set and KILN_BERT_DIR is empty (scripts/download_minilm.sh fetches a checkpoint and prints its directory)",
        )?;
        let mut bert = BertConfig::from_file(&dir.join("config.json"))?;
        bert.attention = config.attention.clone();
        bert.validate()?;
        let tokenizer = BertTokenizer::from_dir(&dir, bert.max_position_embeddings)?;
        tokenizer.check_fits(&dir, bert.vocab_size)?;
        tokenizer.encode_words(&["a"]).with_context(|| format!("{}: the tokenizer", dir.display()))?;
        Ok(Self { dir, attention: config.attention.clone(), config: bert, tokenizer })
    }
}

/// The run directory's copy of what prediction needs of the training file ([`SavedVocabulary`]).
const VOCABULARY_FILE: &str = "ner_vocabulary.json";

/// What `kiln predict` needs of the training file, saved with a run ([`Task::save_artifacts`]): the
/// entity types, and for a from-scratch encoder the character and bigram vocabularies (in id order,
/// from id 2) and the lexicon (each string's training count per type).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SavedVocabulary {
    types: Vec<String>,
    chars: Vec<String>,
    bigrams: Vec<String>,
    lexicon: Option<BTreeMap<String, Vec<usize>>>,
}

/// Named-entity recognition on a dataset.
pub struct NerTask {
    model: NerModelConfig,
    data: NerDataConfig,
    train: Vec<NerExample>,
    /// Characters (tokens) per training sentence, for `group_by_length`.
    train_lengths: Vec<usize>,
    valid: Vec<NerExample>,
    test: Option<Vec<NerExample>>,
    vocab: BTreeMap<String, usize>,
    /// Bigram ids (from 2), keys from [`bigram_key`]; empty without `bigrams`.
    bigram_vocab: HashMap<String, usize>,
    /// The training file's entity strings; `None` without `lexicon`.
    lexicon: Option<Lexicon>,
    bert: Option<BertBackbone>,
    types: Vec<String>,
    inconsistent: usize,
}

const EVAL_BATCH: usize = 32;

impl NerTask {
    /// Read the files and build the character vocabulary and the type list from the training file.
    ///
    /// # Errors
    ///
    /// The data keys are invalid ([`NerDataConfig::validate`]), or a file is missing or malformed.
    pub fn new(model: NerModelConfig, data: NerDataConfig) -> anyhow::Result<Self> {
        data.validate()?;
        model.check_data(&data)?;
        let mut train_file = data.read(&data.train)?;
        if let Some(limit) = data.train_limit {
            train_file.examples.truncate(limit);
        }
        let valid_file = match (&data.valid, data.valid_fraction) {
            (Some(path), _) => data.read(path)?,
            (None, fraction) => {
                let fraction = fraction.context("data.valid_fraction")?; // validate(): one of the two
                let n = train_file.examples.len();
                anyhow::ensure!(
                    n >= 2,
                    "{}: data.valid_fraction needs at least 2 training sentences, found {n}",
                    data.train.display()
                );
                let held = ((n as f64 * fraction).round() as usize).clamp(1, n - 1);
                NerFile { examples: train_file.examples.split_off(n - held), inconsistent_tags: 0 }
            }
        };
        let test_file = data.test.as_deref().map(|p| data.read(p)).transpose()?;
        let mut vocab = BTreeMap::new();
        let chars: BTreeSet<&str> =
            train_file.examples.iter().flat_map(|x| x.tokens.iter().map(String::as_str)).collect();
        for (i, c) in chars.into_iter().enumerate() {
            vocab.insert(c.to_string(), i + 2);
        }
        let bigram_vocab = if model.bigrams {
            bigram_vocabulary(&train_file.examples, model.bigram_min_count)
        } else {
            HashMap::new()
        };
        let types: Vec<String> = train_file
            .examples
            .iter()
            .flat_map(|x| x.entities.iter().map(|e| e.label.clone()))
            .collect::<BTreeSet<String>>()
            .into_iter()
            .collect();
        anyhow::ensure!(!types.is_empty(), "{}: no entities in the training file", data.train.display());
        let lexicon = model
            .lexicon
            .then(|| Lexicon::new(&train_file.examples, data.max_len, types.len(), |l| type_position(&types, l)));
        let inconsistent = train_file.inconsistent_tags + valid_file.inconsistent_tags;
        let bert = model.bert.as_ref().map(BertBackbone::open).transpose()?;
        Ok(Self {
            model,
            data,
            train_lengths: train_file.examples.iter().map(|x| x.tokens.len()).collect(),
            train: train_file.examples,
            valid: valid_file.examples,
            test: test_file.map(|f| f.examples),
            vocab,
            bigram_vocab,
            lexicon,
            bert,
            types,
            inconsistent,
        })
    }

    /// The task of a trained run, for `kiln predict`: types, vocabularies and lexicon from the run's
    /// `ner_vocabulary.json` (written when it was trained), so the data files need not be there;
    /// without that file (a run of an older Kiln), from the data as [`Self::new`].
    ///
    /// # Errors
    ///
    /// The file cannot be read or does not match the model config; the BERT backbone cannot be
    /// opened; or (without the file) as [`Self::new`].
    pub fn from_run(model: NerModelConfig, data: NerDataConfig, run_dir: &Path) -> anyhow::Result<Self> {
        let path = run_dir.join(VOCABULARY_FILE);
        if !path.exists() {
            return Self::new(model, data);
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let saved: SavedVocabulary = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a vocabulary written by kiln train", path.display()))?;
        let sorted = |v: &[String]| v.windows(2).all(|w| w[0] < w[1]);
        anyhow::ensure!(
            !saved.types.is_empty() && sorted(&saved.types) && sorted(&saved.chars),
            "{}: the types and characters must be sorted and distinct, at least one type",
            path.display()
        );
        anyhow::ensure!(
            saved.lexicon.is_some() == model.lexicon,
            "{}: {} lexicon, but the run's config has lexicon = {}",
            path.display(),
            if saved.lexicon.is_some() { "has a" } else { "has no" },
            model.lexicon
        );
        let ids = |v: Vec<String>| v.into_iter().enumerate().map(|(i, k)| (k, i + 2));
        let lexicon = saved
            .lexicon
            .map(|counts| Lexicon::from_counts(counts.into_iter().collect(), saved.types.len()))
            .transpose()
            .map_err(|e| anyhow::anyhow!("{}: lexicon: {e}", path.display()))?;
        let bert = model.bert.as_ref().map(BertBackbone::open).transpose()?;
        Ok(Self {
            model,
            data,
            train: vec![],
            train_lengths: vec![],
            valid: vec![],
            test: None,
            vocab: ids(saved.chars).collect(),
            bigram_vocab: ids(saved.bigrams).collect(),
            lexicon,
            bert,
            types: saved.types,
            inconsistent: 0,
        })
    }

    /// Entity type names, in head order.
    pub fn types(&self) -> &[String] {
        &self.types
    }

    fn type_index(&self, label: &str) -> Option<usize> {
        type_position(&self.types, label)
    }

    fn gold_spans(&self, x: &NerExample, kept: usize) -> impl Iterator<Item = Span> {
        x.entities
            .iter()
            .filter(move |e| e.end < kept)
            .filter_map(|e| self.type_index(&e.label).map(|kind| Span { kind, start: e.start, end: e.end }))
    }

    /// The longest text `kiln predict` labels in one window: `data.max_len` characters, and with a
    /// BERT backbone no more than its position table holds besides `[CLS]` and `[SEP]` (a character
    /// is one piece, `[UNK]` included, except for the rare one a normaliser expands).
    fn window_len(&self) -> usize {
        match &self.bert {
            Some(bert) => self.data.max_len.min(bert.tokenizer.max_seq_len().saturating_sub(2)).max(1),
            None => self.data.max_len,
        }
    }

    /// Ids, padding and the gold spans (within the cut, of known types) of some sentences;
    /// `training` for sentences of the training file (their lexicon indicators leave their own
    /// labels out).
    fn batch(&self, examples: &[&NerExample], training: bool, device: &Device) -> NerBatch {
        match &self.bert {
            None => self.char_batch(examples, training, device),
            Some(bert) => self.piece_batch(bert, examples, device),
        }
    }

    /// A BERT batch: each character tokenised on its own, spans moved to piece positions.
    fn piece_batch(&self, bert: &BertBackbone, examples: &[&NerExample], device: &Device) -> NerBatch {
        let max = self.data.max_len;
        let encoded: Vec<_> = examples
            .iter()
            .map(|x| {
                let words = &x.tokens[..x.tokens.len().min(max)];
                bert.tokenizer.encode_words(words).expect("the tokenizer was checked when the task was built")
            })
            .collect();
        // At least one head column, even for a batch of empty sentences.
        let n = encoded.iter().map(|e| e.encoded.ids.len()).max().unwrap_or(2).max(3);
        let mut ids = Vec::with_capacity(examples.len() * n);
        let (mut lengths, mut head_lengths, mut spans, mut words) = (vec![], vec![], vec![], vec![]);
        for (x, e) in examples.iter().zip(&encoded) {
            let len = e.encoded.ids.len();
            ids.extend(e.encoded.ids.iter().map(|&i| i64::from(i)));
            ids.extend(std::iter::repeat_n(i64::from(bert.tokenizer.pad_id()), n - len));
            lengths.push(len);
            head_lengths.push(len - 2);
            let kept = e.first_token.len();
            spans.push(
                self.gold_spans(x, kept)
                    .map(|s| Span { start: e.first_token[s.start] - 1, end: e.last_token[s.end] - 1, ..s })
                    .collect(),
            );
            words.push(e.word_of_token[1..len - 1].iter().map(|w| w.expect("a piece has a word")).collect());
        }
        NerBatch {
            ids: Tensor::<2, Int>::from_data(TensorData::new(ids, [examples.len(), n]), device),
            features: CharFeatures::default(),
            padding: padding_from_lengths(&lengths, n, device),
            head_padding: padding_from_lengths(&head_lengths, n - 2, device),
            spans,
            words,
        }
    }

    /// A from-scratch batch: character ids, and bigram ids and lexicon indicators where the model
    /// has them.
    fn char_batch(&self, examples: &[&NerExample], training: bool, device: &Device) -> NerBatch {
        let max = self.data.max_len;
        let lengths: Vec<usize> = examples.iter().map(|x| x.tokens.len().clamp(1, max)).collect();
        let n = lengths.iter().copied().max().unwrap_or(1);
        let mut ids = Vec::with_capacity(examples.len() * n);
        for (x, &len) in examples.iter().zip(&lengths) {
            ids.extend(x.tokens.iter().take(len).map(|t| self.vocab.get(t).map_or(UNK_ID, |&i| i as i64)));
            ids.extend(std::iter::repeat_n(0i64, n - len.min(x.tokens.len())));
        }
        let spans = examples.iter().zip(&lengths).map(|(x, &len)| self.gold_spans(x, len).collect()).collect();
        let padding = padding_from_lengths(&lengths, n, device);
        let bigrams = self.model.bigrams.then(|| {
            let mut bigrams = vec![0i64; examples.len() * 2 * n];
            for (r, (x, &len)) in examples.iter().zip(&lengths).enumerate() {
                let row = &mut bigrams[r * 2 * n..(r + 1) * 2 * n];
                for i in 0..len.min(x.tokens.len()) {
                    let id = |a: Option<&String>, b: Option<&String>| {
                        self.bigram_vocab.get(&bigram_key(a, b)).map_or(UNK_ID, |&id| id as i64)
                    };
                    let c = x.tokens.get(i);
                    row[i] = id(i.checked_sub(1).and_then(|j| x.tokens.get(j)), c);
                    row[n + i] = id(c, x.tokens.get(i + 1));
                }
            }
            Tensor::<2, Int>::from_data(TensorData::new(bigrams, [examples.len(), 2 * n]), device)
        });
        let lexicon = self.lexicon.as_ref().map(|lexicon| {
            let width = 4 * self.types.len();
            let mut values = vec![0.0f32; examples.len() * n * width];
            for (r, (x, &len)) in examples.iter().zip(&lengths).enumerate() {
                let leave_out = if training {
                    Lexicon::own(x, self.data.max_len, |label| self.type_index(label))
                } else {
                    BTreeSet::new()
                };
                let row = lexicon.indicators(&x.tokens, len.min(x.tokens.len()), &leave_out);
                values[r * n * width..][..row.len()].copy_from_slice(&row);
            }
            Tensor::<3>::from_data(TensorData::new(values, [examples.len(), n, width]), device)
        });
        NerBatch {
            ids: Tensor::<2, Int>::from_data(TensorData::new(ids, [examples.len(), n]), device),
            features: CharFeatures { bigrams, lexicon },
            head_padding: padding.clone(),
            padding,
            spans,
            words: lengths.iter().map(|&len| (0..len).collect()).collect(),
        }
    }

    fn gold(&self, x: &NerExample) -> Vec<Span> {
        // Unknown types count as gold the model cannot predict (they lower recall).
        x.entities
            .iter()
            .map(|e| Span { kind: self.type_index(&e.label).unwrap_or(usize::MAX), start: e.start, end: e.end })
            .collect()
    }
}

impl Task for NerTask {
    type Model = NerModel;
    type Batch = NerBatch;

    fn describe(&self) -> String {
        format!(
            "NER, {} types ({}), {} train / {} valid{} sentences, {}{}",
            self.types.len(),
            self.types.join(", "),
            self.train.len(),
            self.valid.len(),
            self.test.as_ref().map(|t| format!(" / {} test", t.len())).unwrap_or_default(),
            match &self.bert {
                Some(b) => format!("BERT backbone {}", b.dir.display()),
                None => {
                    let mut s = format!("{} characters", self.vocab.len());
                    if self.model.bigrams {
                        s += &format!(
                            " and {} bigrams (seen at least {} times)",
                            self.bigram_vocab.len(),
                            self.model.bigram_min_count
                        );
                    }
                    s += " in the vocabulary";
                    if let Some(lexicon) = &self.lexicon {
                        s += &format!(", {} entity strings in the lexicon", lexicon.len());
                    }
                    s
                }
            },
            if self.inconsistent > 0 {
                format!(", {} inconsistent tags read as conlleval", self.inconsistent)
            } else {
                String::new()
            }
        )
    }

    fn build_model(&self, device: &Device) -> anyhow::Result<NerModel> {
        let n_types = self.types.len();
        match (&self.model.encoder, &self.bert) {
            (_, Some(b)) => {
                let (bert, _) = kiln_transformer::bert::convert::load_pretrained(&b.dir, b.attention.clone(), device)?;
                Ok(NerModel {
                    embedding: None,
                    bigram_embedding: None,
                    bigram_projection: None,
                    embedding_dropout: Dropout::new(0.0),
                    token_dropout: 0.0,
                    lexicon_projection: None,
                    encoder: None,
                    bert: Some(bert),
                    head: self.model.head.init(b.config.hidden_size, n_types, device),
                })
            }
            (Some(encoder), None) => Ok(NerModel {
                embedding: Some(token_embedding(
                    self.vocab.len() + 2,
                    encoder.d_model,
                    self.model.embedding_std,
                    device,
                )),
                bigram_embedding: self.model.bigrams.then(|| {
                    token_embedding(
                        self.bigram_vocab.len() + 2,
                        self.model.bigram_dim,
                        self.model.embedding_std,
                        device,
                    )
                }),
                bigram_projection: self
                    .model
                    .bigrams
                    .then(|| Linear::new(2 * self.model.bigram_dim, encoder.d_model, false, device)),
                embedding_dropout: Dropout::new(self.model.embedding_dropout),
                token_dropout: self.model.token_dropout,
                lexicon_projection: self
                    .model
                    .lexicon
                    .then(|| Linear::new(4 * n_types, encoder.d_model, false, device)),
                encoder: Some(encoder.init(device)),
                bert: None,
                head: self.model.head.init(encoder.d_model, n_types, device),
            }),
            (None, None) => anyhow::bail!("model: no backbone (the config was not validated)"),
        }
    }

    fn train_len(&self) -> Option<usize> {
        Some(self.train.len())
    }

    fn train_batch(&self, step: usize, batch_size: usize, seed: u64, device: &Device) -> NerBatch {
        let sampler = EpochSampler::new(self.train.len(), batch_size, seed);
        let idx = if self.data.group_by_length {
            sampler.batch_grouped_by_length(step, &self.train_lengths)
        } else {
            sampler.batch(step)
        };
        let examples: Vec<&NerExample> = idx.iter().map(|&i| &self.train[i]).collect();
        self.batch(&examples, true, device)
    }

    fn step(&self, model: &NerModel, batch: NerBatch) -> StepOutput {
        let b = batch.ids.dims()[0];
        let h = model.encode(batch.ids, batch.features, &batch.padding);
        StepOutput { loss: model.head.loss(h, &batch.head_padding, &batch.spans, self.types.len()), items: b }
    }

    fn evaluate(&self, model: &NerModel, split: Split, device: &Device) -> anyhow::Result<Metrics> {
        let examples = match split {
            Split::Valid => &self.valid,
            Split::Test => match &self.test {
                Some(t) => t,
                None => return Ok(vec![]), // no labelled test file configured
            },
        };
        let mut counts = EntityCounts::new(self.types.len());
        let mut unknown = 0;
        let sentences: Vec<&[String]> = examples.iter().map(|x| x.tokens.as_slice()).collect();
        for (x, p) in examples.iter().zip(self.find_spans(model, &sentences, device)) {
            let gold = self.gold(x);
            unknown += gold.iter().filter(|g| g.kind == usize::MAX).count();
            let known: Vec<Span> = gold.into_iter().filter(|g| g.kind != usize::MAX).collect();
            counts.add(&p, &known);
        }
        let mut micro = counts.micro();
        micro.gold += unknown;
        let mut metrics: Metrics =
            vec![("f1".into(), micro.f1()), ("precision".into(), micro.precision()), ("recall".into(), micro.recall())];
        for (name, c) in self.types.iter().zip(&counts.per_type) {
            metrics.push((format!("f1_{name}"), c.f1()));
        }
        Ok(metrics)
    }

    fn save_artifacts(&self, run_dir: &Path) -> anyhow::Result<()> {
        let in_id_order = |map: &mut dyn Iterator<Item = (&String, &usize)>| {
            let mut v: Vec<(usize, String)> = map.map(|(k, &i)| (i, k.clone())).collect();
            v.sort_unstable();
            v.into_iter().map(|(_, k)| k).collect()
        };
        let saved = SavedVocabulary {
            types: self.types.clone(),
            chars: in_id_order(&mut self.vocab.iter()),
            bigrams: in_id_order(&mut self.bigram_vocab.iter()),
            lexicon: self.lexicon.as_ref().map(|l| l.counts.iter().map(|(k, c)| (k.clone(), c.clone())).collect()),
        };
        let path = run_dir.join(VOCABULARY_FILE);
        std::fs::write(&path, serde_json::to_string(&saved)?).with_context(|| format!("writing {}", path.display()))
    }

    fn generate(&self, model: &NerModel, options: &GenerateOptions, device: &Device) -> anyhow::Result<String> {
        let text = options.prompt.as_deref().context("give the sentence with --text")?;
        Ok(self.predict(model, &[text.to_string()], device)?.remove(0))
    }

    /// One JSON object per text: `{"text": ..., "entities": [{"type", "start", "end", "text"}]}`,
    /// offsets in characters, `end` inclusive, each text labelled whole ([`find_spans`](NerTask::find_spans)):
    /// an empty text has no entities.
    fn predict(&self, model: &NerModel, texts: &[String], device: &Device) -> anyhow::Result<Vec<String>> {
        let tokens: Vec<Vec<String>> = texts.iter().map(|t| t.chars().map(String::from).collect()).collect();
        let sentences: Vec<&[String]> = tokens.iter().map(Vec::as_slice).collect();
        let found = self.find_spans(model, &sentences, device);
        texts
            .iter()
            .zip(&tokens)
            .zip(found)
            .map(|((text, tokens), spans)| {
                let entities = spans
                    .iter()
                    .map(|s| PredictedEntity {
                        kind: &self.types[s.kind],
                        start: s.start,
                        end: s.end,
                        text: tokens[s.start..=s.end].concat(),
                    })
                    .collect();
                Ok(serde_json::to_string(&Prediction { text, entities })?)
            })
            .collect()
    }
}

impl NerTask {
    /// The entities of each sentence (token positions), sorted by `(start, end, kind)`: what
    /// `kiln eval` scores and `kiln predict` prints. A sentence longer than
    /// [`window_len`](Self::window_len) is labelled whole, in overlapping windows
    /// ([`prediction_windows`]); with flat decoding, a span that overlaps one kept before it (two
    /// windows' spans across their boundary) is dropped. Windows run in batches sorted by length.
    fn find_spans(&self, model: &NerModel, sentences: &[&[String]], device: &Device) -> Vec<Vec<Span>> {
        // (sentence, window, the positions whose spans this window keeps)
        let mut pieces: Vec<(usize, Range<usize>, Range<usize>)> = sentences
            .iter()
            .enumerate()
            .flat_map(|(i, t)| {
                prediction_windows(t.len(), self.window_len()).into_iter().map(move |(w, own)| (i, w, own))
            })
            .collect();
        pieces.sort_by_key(|(_, w, _)| w.len());
        let mut found: Vec<Vec<Span>> = vec![vec![]; sentences.len()];
        for chunk in pieces.chunks(EVAL_BATCH) {
            let examples: Vec<NerExample> = chunk
                .iter()
                .map(|(i, w, _)| NerExample { tokens: sentences[*i][w.clone()].to_vec(), entities: vec![] })
                .collect();
            let refs: Vec<&NerExample> = examples.iter().collect();
            let batch = self.batch(&refs, false, device);
            let predicted = batch.to_words(
                model.forward(batch.ids.clone(), batch.features.clone(), &batch.padding, &batch.head_padding),
                self.model.decode,
                self.model.threshold,
            );
            for ((i, w, own), spans) in chunk.iter().zip(predicted) {
                found[*i].extend(
                    spans
                        .into_iter()
                        .map(|s| Span { start: s.start + w.start, end: s.end + w.start, ..s })
                        .filter(|s| own.contains(&s.start)),
                );
            }
        }
        for spans in &mut found {
            // No duplicates to remove: windows own disjoint start positions.
            spans.sort_by_key(|s| (s.start, s.end, s.kind));
            // The CRF's tag path is flat too.
            if self.model.decode == Decoding::Flat || matches!(self.model.head, SpanHeadConfig::Crf { .. }) {
                let mut free_from = 0;
                spans.retain(|s| {
                    let keep = s.start >= free_from;
                    if keep {
                        free_from = s.end + 1;
                    }
                    keep
                });
            }
        }
        found
    }
}

/// The windows `kiln predict` labels a text of `len` characters in, at most `max` each: pairs of
/// the window and the positions it owns, whose spans it keeps. A text that fits is one window.
/// A longer one is covered by windows that overlap by half their length, the last one flush with
/// the end; the owned ranges split each overlap in the middle and together cover `0..len` once, so
/// an entity cut by one window's edge is taken from its neighbour, which sees it whole (unless it
/// is longer than a quarter window). Spans never cross a window, so a kept span lies inside the
/// window that found it.
fn prediction_windows(len: usize, max: usize) -> Vec<(Range<usize>, Range<usize>)> {
    if len <= max {
        return if len == 0 { vec![] } else { vec![(0..len, 0..len)] };
    }
    let stride = (max / 2).max(1);
    let mut starts = vec![0];
    while starts[starts.len() - 1] + max < len {
        starts.push((starts[starts.len() - 1] + stride).min(len - max));
    }
    let mut out = Vec::with_capacity(starts.len());
    let mut owned_from = 0;
    for (k, &s) in starts.iter().enumerate() {
        let owned_to = starts.get(k + 1).map_or(len, |&next| (next + s + max) / 2);
        out.push((s..s + max, owned_from..owned_to));
        owned_from = owned_to;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty directory of this test process, named after `what`.
    fn scratch_dir(what: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kiln-ner-{what}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn setup(dir: &Path) -> NerTask {
        setup_with(dir, "")
    }

    /// [`setup`] with extra `[model]` keys.
    fn setup_with(dir: &Path, model_keys: &str) -> NerTask {
        let train = "张 B-PER\n三 I-PER\n去 O\n北 B-LOC\n京 I-LOC\n\n李 B-PER\n四 I-PER\n\n";
        let valid = "张 B-PER\n三 I-PER\n到 O\n上 B-LOC\n海 I-LOC\n\n";
        std::fs::write(dir.join("train.txt"), train).unwrap();
        std::fs::write(dir.join("valid.txt"), valid).unwrap();
        let data: NerDataConfig = toml::from_str(&format!(
            "format = \"columns\"\ntrain = {:?}\nvalid = {:?}\nmax_len = 4",
            dir.join("train.txt"),
            dir.join("valid.txt")
        ))
        .unwrap();
        let model: NerModelConfig = toml::from_str(&format!(
            "head = {{ kind = \"global_pointer\", d_head = 8 }}\n{model_keys}\n[encoder]\nd_model = 16\nn_heads = 2\nn_layers = 1",
        ))
        .unwrap();
        model.validate().unwrap();
        NerTask::new(model, data).unwrap()
    }

    /// `valid_fraction` holds out the training file's last sentences (after `train_limit`): they are
    /// the validation set, and the vocabulary, types and lexicon come from the rest only.
    #[test]
    fn valid_fraction_holds_out_the_last_training_sentences() {
        let dir = scratch_dir("fraction");
        let sentence = |name: &str, kind: &str| {
            let mut chars = name.chars();
            let first = chars.next().unwrap();
            let rest: String = chars.map(|c| format!("{c} I-{kind}\n")).collect();
            format!("{first} B-{kind}\n{rest}去 O\n\n")
        };
        // Ten sentences; the last two hold the only ORG and the only 王 and 五.
        let mut train: String = ["张三", "李四", "赵六", "钱七", "孙八", "周九", "吴十", "郑一"]
            .iter()
            .map(|n| sentence(n, "PER"))
            .collect();
        train += &sentence("王五", "PER");
        train += &sentence("中华", "ORG");
        train += &sentence("张三", "PER"); // past train_limit: never read
        std::fs::write(dir.join("train.txt"), train).unwrap();
        let data = |keys: &str| -> NerDataConfig {
            toml::from_str(&format!(
                "format = \"columns\"\ntrain = {:?}\ntrain_limit = 10\n{keys}",
                dir.join("train.txt")
            ))
            .unwrap()
        };
        let model: NerModelConfig = toml::from_str(
            "head = { kind = \"global_pointer\", d_head = 8 }\nlexicon = true\n[encoder]\nd_model = 16\nn_heads = 2\nn_layers = 1",
        )
        .unwrap();
        let held = data("valid_fraction = 0.2");
        held.validate().unwrap();
        let task = NerTask::new(model.clone(), held).unwrap();
        let names = |xs: &[NerExample]| xs.iter().map(|x| x.tokens[..2].concat()).collect::<Vec<_>>();
        assert_eq!(names(&task.valid), ["王五", "中华"]);
        assert_eq!(names(&task.train), ["张三", "李四", "赵六", "钱七", "孙八", "周九", "吴十", "郑一"]);
        assert_eq!(task.types(), ["PER"], "ORG is only in the held-out sentences");
        assert!(!task.vocab.contains_key("王") && task.vocab.contains_key("郑"));
        let lexicon = task.lexicon.as_ref().unwrap();
        assert!(lexicon.counts.contains_key("郑\u{1f}一") && !lexicon.counts.contains_key("王\u{1f}五"));
        // A fraction rounds to at least one sentence and leaves at least one to train on.
        let tiny = NerTask::new(model.clone(), data("valid_fraction = 0.01")).unwrap();
        assert_eq!((tiny.train.len(), tiny.valid.len()), (9, 1));
        for (keys, expected) in [
            ("valid_fraction = 1.0", "outside (0, 1)"),
            ("valid_fraction = 0.0", "outside (0, 1)"),
            ("", "data.valid: missing"),
            ("valid_fraction = 0.1\nvalid = \"v.txt\"", "not both"),
        ] {
            let err = data(keys).validate().unwrap_err().to_string();
            assert!(err.contains(expected), "{keys:?}: {err}");
            // The task checks its data keys itself, for callers that skip the config checks.
            let err = NerTask::new(model.clone(), data(keys)).err().expect("invalid keys").to_string();
            assert!(err.contains(expected), "NerTask::new, {keys:?}: {err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Types and vocabulary come from the training file; the cut at `max_len` drops entities that
    /// cross it from the labels; unseen characters map to [UNK].
    #[test]
    fn vocabulary_types_and_truncation() {
        let dir = scratch_dir("task");
        let task = setup(&dir);
        assert_eq!(task.types(), ["LOC", "PER"]);
        assert_eq!(task.vocab.len(), 7); // 张 三 去 北 京 李 四
        let device = Device::flex();
        let batch = task.batch(&[&task.valid[0]], false, &device);
        assert_eq!(batch.ids.dims(), [1, 4], "cut to max_len");
        let ids: Vec<i64> = batch.ids.into_data().convert::<i64>().try_to_vec::<i64>().unwrap();
        assert_eq!(ids[2], 1, "到 is not in the training vocabulary");
        // 上海 spans 3..=4, crossing the cut: only 张三 (PER = type 1) is a label.
        assert_eq!(batch.spans, vec![vec![Span { kind: 1, start: 0, end: 1 }]]);
        // Evaluation still counts both gold entities (recall pays for the cut).
        let model = task.build_model(&device).unwrap();
        let m = task.evaluate(&model, Split::Valid, &device).unwrap();
        assert_eq!(m[0].0, "f1");
        assert!(task.evaluate(&model, Split::Test, &device).unwrap().is_empty(), "no test file configured");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `[model] threshold` is the decision boundary of evaluation: far below every score, every span
    /// of both types in each window is an entity, and the 5-character sentence (max_len 4) is two
    /// windows: 0..4 keeps the 7 spans starting at 0 or 1, 1..5 the 6 starting at 2, 3 or 4, so 26
    /// entities, both gold ones among them (张三 from the first window, 上海 from the second, which a
    /// cut at max_len would lose); far above, none is.
    #[test]
    fn the_threshold_decides_which_spans_are_entities() {
        let dir = scratch_dir("threshold");
        let mut task = setup(&dir);
        let device = Device::flex();
        let model = task.build_model(&device).unwrap();
        let get = |m: &Metrics, key: &str| m.iter().find(|(k, _)| k == key).unwrap().1;
        task.model.threshold = -1e6;
        let all = task.evaluate(&model, Split::Valid, &device).unwrap();
        assert_eq!((get(&all, "precision"), get(&all, "recall")), (2.0 / 26.0, 1.0));
        task.model.threshold = 1e6;
        let none = task.evaluate(&model, Split::Valid, &device).unwrap();
        assert_eq!((get(&none, "precision"), get(&none, "recall")), (0.0, 0.0));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The prediction windows of a text longer than `max`: each at most `max` long and inside the
    /// text, the owned ranges inside their windows and covering the text once, in order, and every
    /// owned position at least a quarter window from its window's right edge (unless that edge is
    /// the text's end), so a short entity cut by one window is whole in the window that keeps it.
    #[test]
    fn prediction_windows_cover_the_text_once() {
        assert!(prediction_windows(0, 4).is_empty());
        assert_eq!(prediction_windows(3, 4), [(0..3, 0..3)]);
        assert_eq!(prediction_windows(10, 4), [(0..4, 0..3), (2..6, 3..5), (4..8, 5..7), (6..10, 7..10)]);
        for max in 1..12 {
            for len in max + 1..60 {
                let windows = prediction_windows(len, max);
                let mut next = 0;
                for (w, own) in &windows {
                    assert!(w.len() == max && w.end <= len, "len {len}, max {max}: {windows:?}");
                    assert_eq!(own.start, next, "len {len}, max {max}: {windows:?}");
                    assert!(own.start >= w.start && own.end <= w.end && !own.is_empty(), "{len} {max}: {windows:?}");
                    assert!(w.end == len || w.end - (own.end - 1) > max / 4, "len {len}, max {max}: {windows:?}");
                    next = own.end;
                }
                assert_eq!(next, len, "len {len}, max {max}: {windows:?}");
            }
        }
    }

    /// `kiln predict` labels a text longer than `max_len` (4 here) in windows: with the threshold far
    /// below every score each window finds all its spans, and the output holds exactly those that
    /// start in the window's owned positions (10 characters: 25 spans of each of the 2 types, the last
    /// characters included); an empty text has no entities, a short one all of its 6 spans per type.
    #[test]
    fn predict_labels_long_texts_in_windows() {
        let dir = scratch_dir("windows");
        let mut task = setup(&dir);
        let device = Device::flex();
        let model = task.build_model(&device).unwrap();
        task.model.threshold = -1e6;
        let texts = ["张三去北京李四到上海".to_string(), String::new(), "张三去".to_string()];
        let lines = task.predict(&model, &texts, &device).unwrap();
        let spans = |line: &str| -> Vec<(String, u64, u64)> {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            v["entities"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| {
                    (e["type"].as_str().unwrap().to_string(), e["start"].as_u64().unwrap(), e["end"].as_u64().unwrap())
                })
                .collect()
        };
        let mut expected = vec![];
        for (window, own) in [(0..4, 0..3), (2..6, 3..5), (4..8, 5..7), (6..10, 7..10)] {
            for start in own {
                for end in start..window.end {
                    for kind in ["LOC", "PER"] {
                        expected.push((kind.to_string(), start as u64, end as u64));
                    }
                }
            }
        }
        expected.sort_by_key(|(k, s, e)| (*s, *e, k.clone()));
        assert_eq!(expected.len(), 50);
        assert_eq!(spans(&lines[0]), expected);
        assert!(lines[0].contains("\"text\":\"上海\""), "{}", lines[0]);
        assert_eq!(lines[1], r#"{"text":"","entities":[]}"#);
        assert_eq!(spans(&lines[2]).len(), 12);
        // Flat decoding stays flat across window boundaries: no two entities share a character.
        task.model.decode = Decoding::Flat;
        for seed in 0..8 {
            device.seed(seed);
            let model = task.build_model(&device).unwrap();
            let flat = spans(&task.predict(&model, &texts[..1], &device).unwrap()[0]);
            assert!(!flat.is_empty());
            for pair in flat.windows(2) {
                assert!(pair[0].2 < pair[1].1, "seed {seed}: {pair:?} overlap in {flat:?}");
            }
        }
        task.model.threshold = 1e6;
        assert!(task.predict(&model, &texts, &device).unwrap().iter().all(|l| l.ends_with("\"entities\":[]}")));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `embedding_std` sets the spread of the character and bigram embeddings; without it they are
    /// Burn's `N(0, 1)`.
    #[test]
    fn embedding_std_sets_the_character_and_bigram_embedding_scale() {
        let dir = scratch_dir("embedding_std");
        let spreads = |keys: &str| {
            let task = setup_with(&dir, &format!("bigrams = true\nbigram_min_count = 1\n{keys}"));
            let model = task.build_model(&Device::flex()).unwrap();
            let spread = |e: &Embedding| {
                let w: Vec<f32> = e.weight.val().into_data().iter::<f32>().collect();
                let mean = w.iter().sum::<f32>() / w.len() as f32;
                (w.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / w.len() as f32).sqrt()
            };
            (spread(model.embedding.as_ref().unwrap()), spread(model.bigram_embedding.as_ref().unwrap()))
        };
        // 9 x 16 and 16 x 32 values: the sample spread is within 25% of the drawn one.
        let (chars, bigrams) = spreads("embedding_std = 0.02");
        assert!((0.015..0.025).contains(&chars) && (0.015..0.025).contains(&bigrams), "{chars} {bigrams}");
        let (chars, bigrams) = spreads("");
        assert!((0.75..1.25).contains(&chars) && (0.75..1.25).contains(&bigrams), "{chars} {bigrams}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Token dropout replaces a `prob` fraction of the characters, never padding, by `[UNK]`, only
    /// on an autodiff device.
    #[test]
    fn token_dropout_replaces_characters_by_unk_in_training_only() {
        let device = Device::flex().autodiff();
        let (b, n) = (64, 100);
        // Ids 2.. everywhere; the last 30 columns of every row are padding (id 0).
        let ids: Vec<i64> = (0..b * n).map(|i| if i % n < 70 { 2 + (i % 50) as i64 } else { 0 }).collect();
        let lengths = vec![70; b];
        let padding = padding_from_lengths(&lengths, n, &device);
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids.clone(), [b, n]), &device);
        let to_vec = |t: Tensor<2, Int>| t.into_data().convert::<i64>().try_to_vec::<i64>().unwrap();
        let dropped = to_vec(drop_tokens(ids.clone(), &padding, 0.2, UNK_ID));
        let before = to_vec(ids.clone());
        let mut replaced = 0;
        for (i, (&a, &d)) in before.iter().zip(&dropped).enumerate() {
            if i % n >= 70 {
                assert_eq!(d, 0, "padding stays padding");
            } else if d != a {
                assert_eq!(d, UNK_ID);
                replaced += 1;
            }
        }
        // 4,480 characters, p = 0.2: standard deviation 26.8; 5 sigma.
        let expected = 0.2 * (b * 70) as f64;
        assert!((f64::from(replaced) - expected).abs() < 134.0, "{replaced} of {}", b * 70);
        // That the device seed fixes the draw is tests/seeded_token_dropout.rs: the generator is global.
        assert_eq!(to_vec(drop_tokens(ids.clone(), &padding, 0.0, UNK_ID)), before);
        let plain = Device::flex();
        let plain_ids = Tensor::<2, Int>::from_data(TensorData::new(before.clone(), [b, n]), &plain);
        let plain_padding = padding_from_lengths(&lengths, n, &plain);
        assert_eq!(to_vec(drop_tokens(plain_ids, &plain_padding, 0.2, UNK_ID)), before, "evaluation");
    }

    /// The bigram vocabulary keeps what is seen `min_count` times, boundaries included, numbered from
    /// 2 in key order.
    #[test]
    fn bigram_vocabulary_counts_boundaries_and_filters() {
        let ex = |t: &str| NerExample { tokens: t.chars().map(String::from).collect(), entities: vec![] };
        let examples = [ex("ab"), ex("abc")];
        let s = |c: &str| Some(c.to_string());
        let all = bigram_vocabulary(&examples, 1);
        // ^a ab b$ bc c$
        assert_eq!(all.len(), 5);
        let mut ids: Vec<usize> = all.values().copied().collect();
        ids.sort_unstable();
        assert_eq!(ids, vec![2, 3, 4, 5, 6]);
        let two = bigram_vocabulary(&examples, 2);
        assert_eq!(two.len(), 2);
        assert!(two.contains_key(&bigram_key(None, s("a").as_ref())));
        assert!(two.contains_key(&bigram_key(s("a").as_ref(), s("b").as_ref())));
        assert!(!two.contains_key(&bigram_key(s("b").as_ref(), None)), "seen once");
        let mut a = two.values().copied().collect::<Vec<_>>();
        a.sort_unstable();
        assert_eq!(a, vec![2, 3]);
    }

    /// A batch carries each character's bigram with the previous and with the next character (the
    /// next one even past the cut), unseen bigrams as `[UNK]`, padding 0; a model with bigram
    /// embeddings uses them, and with its bigram table zeroed equals the model without one.
    #[test]
    fn bigram_ids_in_batches_and_their_embeddings() {
        let dir = scratch_dir("bigram");
        let mut task = setup(&dir);
        task.model.bigrams = true;
        task.model.bigram_min_count = 1;
        task.bigram_vocab = bigram_vocabulary(&task.train, 1);
        let device = Device::flex();
        // valid[0] = 张三到上海 cut to 4; train[1] = 李四 (padded to 4).
        let batch = task.batch(&[&task.valid[0], &task.train[1]], false, &device);
        let got: Vec<i64> =
            batch.features.bigrams.clone().unwrap().into_data().convert::<i64>().try_to_vec::<i64>().unwrap();
        let id = |a: Option<&str>, b: Option<&str>| {
            let key = bigram_key(a.map(String::from).as_ref(), b.map(String::from).as_ref());
            task.bigram_vocab.get(&key).map_or(UNK_ID, |&i| i as i64)
        };
        let (z, s, d, u, h) = (Some("张"), Some("三"), Some("到"), Some("上"), Some("海"));
        let (l, f) = (Some("李"), Some("四"));
        assert!(id(None, z) > 1 && id(z, s) > 1 && id(l, f) > 1 && id(f, None) > 1);
        assert_eq!(id(s, d), UNK_ID);
        #[rustfmt::skip]
        let expected = vec![
            id(None, z), id(z, s), UNK_ID, UNK_ID, /* right: */ id(z, s), UNK_ID, UNK_ID, id(u, h),
            id(None, l), id(l, f), 0, 0, /* right: */ id(l, f), id(f, None), 0, 0,
        ];
        assert_eq!(got, expected);
        // The model: bigrams change the encoding; a zero table is the model without bigrams.
        let model = task.build_model(&device).unwrap();
        let table = model.bigram_embedding.clone().unwrap();
        let encode = |m: &NerModel, bigrams| {
            m.encode(batch.ids.clone(), CharFeatures { bigrams, lexicon: None }, &batch.padding)
        };
        let with = encode(&model, batch.features.bigrams.clone());
        let other = batch.features.bigrams.clone().unwrap().ones_like() * 2; // every bigram → id 2
        let diff = (with.clone() - encode(&model, Some(other))).abs().max().into_scalar::<f32>();
        assert!(diff > 1e-2, "bigram ids matter: {diff}");
        let mut zeroed = model.clone();
        zeroed.bigram_embedding =
            Some(burn::nn::Embedding { weight: burn::module::Param::from_tensor(table.weight.val().zeros_like()) });
        let mut without = model.clone();
        without.bigram_embedding = None;
        without.bigram_projection = None;
        let a = encode(&zeroed, batch.features.bigrams.clone());
        let b = encode(&without, None);
        let diff = (a - b).abs().max().into_scalar::<f32>();
        assert!(diff < 1e-6, "zero bigram table = no bigrams: {diff}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The lexicon marks every substring labelled in training — nested and overlapping ones too —
    /// as begins / inside / ends / single of its type, and a training sentence does not see the
    /// strings only it labels.
    #[test]
    fn lexicon_indicators_mark_training_entity_strings() {
        use kiln_data::ner::Entity;
        let ex = |text: &str, entities: &[(&str, usize, usize)]| NerExample {
            tokens: text.chars().map(String::from).collect(),
            entities: entities.iter().map(|&(l, start, end)| Entity { label: l.into(), start, end }).collect(),
        };
        let train = [
            ex("张三去北京", &[("PER", 0, 1), ("LOC", 3, 4)]),
            ex("北京的张三", &[("LOC", 0, 1), ("PER", 3, 4)]),
            ex("李四去上海", &[("PER", 0, 1), ("LOC", 3, 4)]),
            ex("张三丰在京", &[("PER", 0, 2), ("LOC", 4, 4)]),
            ex("王五到武汉市", &[("PER", 0, 1), ("LOC", 3, 5)]),
        ];
        let types = ["LOC", "PER"];
        let index = |l: &str| types.iter().position(|t| *t == l);
        // max_len 5 drops 武汉市 (ends at 5) from the lexicon.
        let lexicon = Lexicon::new(&train, 5, 2, index);
        assert_eq!(lexicon.len(), 7, "张三 北京 李四 上海 张三丰 京 王五");
        let tokens = |t: &str| t.chars().map(String::from).collect::<Vec<_>>();
        // Which indicators are on, as (position, type, B/I/E/S).
        let on = |v: Vec<f32>| {
            v.iter()
                .enumerate()
                .filter(|(_, x)| **x == 1.0)
                .map(|(i, _)| (i / 8, ["LOC", "PER"][i % 8 / 4], ["B", "I", "E", "S"][i % 4]))
                .collect::<Vec<_>>()
        };
        let none = BTreeSet::new();
        assert_eq!(
            on(lexicon.indicators(&tokens("李四和张三丰在北京市"), 10, &none)),
            vec![
                (0, "PER", "B"),
                (1, "PER", "E"),
                (3, "PER", "B"), // 张三 and 张三丰 both begin here
                (4, "PER", "I"), // inside 张三丰
                (4, "PER", "E"), // the end of 张三
                (5, "PER", "E"),
                (7, "LOC", "B"),
                (8, "LOC", "E"),
                (8, "LOC", "S"), // 京 alone
            ]
        );
        // Beyond `len` nothing is matched, and 武汉市 (cut from the lexicon) is not there.
        assert_eq!(on(lexicon.indicators(&tokens("李四"), 1, &none)), vec![]);
        assert!(on(lexicon.indicators(&tokens("武汉市"), 3, &none)).is_empty());
        // Leave one out: 李四 and 上海 are labelled by sentence 3 only, 张三 and 北京 twice.
        let own = |x: &NerExample| Lexicon::own(x, 5, index);
        assert!(on(lexicon.indicators(&train[2].tokens, 5, &own(&train[2]))).is_empty());
        assert_eq!(
            on(lexicon.indicators(&train[0].tokens, 5, &own(&train[0]))),
            vec![(0, "PER", "B"), (1, "PER", "E"), (3, "LOC", "B"), (4, "LOC", "E"), (4, "LOC", "S")]
        );
        // An unlabelled occurrence in the sentence itself does not count as its own.
        assert_eq!(on(lexicon.indicators(&train[3].tokens, 5, &own(&train[3]))).len(), 2, "张三 from sentences 1-2");
    }

    /// Training batches leave their own labels out of the lexicon; evaluation batches do not; the
    /// model reads the indicators.
    #[test]
    fn lexicon_in_batches_and_the_model() {
        let dir = scratch_dir("lexicon");
        let mut task = setup(&dir);
        task.model.lexicon = true;
        let lexicon = Lexicon::new(&task.train, task.data.max_len, 2, |l| task.type_index(l));
        task.lexicon = Some(lexicon);
        let device = Device::flex();
        let indicators = |training| {
            let batch = task.batch(&[&task.train[0]], training, &device);
            batch.features.lexicon.unwrap().into_data().try_to_vec::<f32>().unwrap()
        };
        // 张三 (PER, type 1) is labelled by this training sentence only.
        let (eval, train) = (indicators(false), indicators(true));
        assert_eq!(eval.len(), 4 * 8);
        assert_eq!((eval[4], eval[8 + 6]), (1.0, 1.0), "PER begins at 0 and ends at 1");
        assert_eq!(eval.iter().sum::<f32>(), 2.0, "北京 is cut at max_len 4");
        assert_eq!(train.iter().sum::<f32>(), 0.0, "left out in training");
        let model = task.build_model(&device).unwrap();
        let batch = task.batch(&[&task.train[0]], false, &device);
        let zeros = batch.features.lexicon.clone().unwrap().zeros_like();
        let encode = |lexicon| {
            let features = CharFeatures { bigrams: None, lexicon: Some(lexicon) };
            model.encode(batch.ids.clone(), features, &batch.padding)
        };
        let lexicon = batch.features.lexicon.clone().unwrap();
        let diff = (encode(lexicon) - encode(zeros)).abs().max().into_scalar::<f32>();
        assert!(diff > 1e-2, "the indicators matter: {diff}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// What a run saves rebuilds the task without the data files: the same ids, bigram ids and
    /// lexicon indicators for a sentence; a damaged file, or one that disagrees with the config, is
    /// an error naming it.
    #[test]
    fn a_run_directory_rebuilds_the_task_without_the_data() {
        let dir = scratch_dir("saved");
        let mut task = setup(&dir);
        task.model.bigrams = true;
        task.model.lexicon = true;
        task.bigram_vocab = bigram_vocabulary(&task.train, 1);
        task.lexicon = Some(Lexicon::new(&task.train, task.data.max_len, 2, |l| task.type_index(l)));
        let run = dir.join("run");
        std::fs::create_dir_all(&run).unwrap();
        task.save_artifacts(&run).unwrap();
        let mut moved = task.data.clone();
        moved.train = dir.join("gone/train.txt");
        moved.valid = Some(dir.join("gone/valid.txt"));
        let rebuilt = NerTask::from_run(task.model.clone(), moved.clone(), &run).unwrap();
        assert!(rebuilt.train.is_empty(), "nothing was read");
        assert_eq!(
            (&rebuilt.vocab, &rebuilt.bigram_vocab, &rebuilt.types),
            (&task.vocab, &task.bigram_vocab, &task.types)
        );
        let device = Device::flex();
        let sentence =
            NerExample { tokens: "到张三去北京".chars().map(String::from).collect(), entities: vec![] };
        let as_data = |t: &NerTask| {
            let b = t.batch(&[&sentence], false, &device);
            let ints = |x: Tensor<2, Int>| x.into_data().convert::<i64>().try_to_vec::<i64>().unwrap();
            let lexicon = b.features.lexicon.unwrap().into_data().try_to_vec::<f32>().unwrap();
            (ints(b.ids), ints(b.features.bigrams.unwrap()), lexicon)
        };
        let (ids, bigrams, lexicon) = as_data(&rebuilt);
        assert_eq!((&ids, &bigrams, &lexicon), (&as_data(&task).0, &as_data(&task).1, &as_data(&task).2));
        assert_eq!((ids.len(), ids[0]), (4, UNK_ID), "cut at max_len 4; 到 is not in the training vocabulary");
        assert_eq!(lexicon.iter().sum::<f32>(), 2.0, "张三 begins and ends; 北京 is cut at max_len 4");

        let mut no_lexicon = task.model.clone();
        no_lexicon.lexicon = false;
        let err = NerTask::from_run(no_lexicon, moved.clone(), &run).err().unwrap().to_string();
        assert!(err.contains("ner_vocabulary.json") && err.contains("lexicon = false"), "{err}");
        std::fs::write(run.join(VOCABULARY_FILE), "{\"types\": [\"PER\"]}").unwrap();
        let err = format!("{:#}", NerTask::from_run(task.model.clone(), moved, &run).err().unwrap());
        assert!(err.contains("ner_vocabulary.json: not a vocabulary written by kiln train"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A `[model]` of `extra` keys and a backbone section, parsed and validated.
    fn parse(extra: &str, backbone: &str) -> anyhow::Result<()> {
        let model: NerModelConfig = toml::from_str(&format!("{extra}\n{backbone}"))?;
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

    /// BERT backbone: words split into several pieces move gold spans to piece positions (first piece
    /// of the first word, last piece of the last word), and predicted piece spans map back to words.
    #[test]
    fn bert_pieces_align_with_words() {
        let dir = std::env::temp_dir().join(format!("kiln-ner-bert-{}", std::process::id()));
        let ckpt = dir.join("bert");
        let vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "barack", "oba", "##ma", "visited", "paris"];
        kiln_transformer::bert::convert::write_random_checkpoint(&ckpt, &vocab, 16, 1, 2, 7).unwrap();
        std::fs::write(dir.join("train.txt"), "Barack B-PER\nObama I-PER\nvisited O\nParis B-LOC\nnow O\n\n").unwrap();
        let data: NerDataConfig = toml::from_str(&format!(
            "format = \"columns\"\ntrain = {:?}\nvalid = {:?}",
            dir.join("train.txt"),
            dir.join("train.txt")
        ))
        .unwrap();
        let model: NerModelConfig =
            toml::from_str(&format!("head = {{ kind = \"global_pointer\", d_head = 8 }}\n[bert]\ndir = {ckpt:?}"))
                .unwrap();
        model.validate().unwrap();
        let task = NerTask::new(model, data).unwrap();
        let device = Device::flex();
        let batch = task.batch(&[&task.train[0]], true, &device);
        let ids: Vec<i64> = batch.ids.clone().into_data().convert::<i64>().try_to_vec::<i64>().unwrap();
        // [CLS] barack oba ##ma visited paris [UNK]=now [SEP]
        assert_eq!(ids, vec![2, 4, 5, 6, 7, 8, 1, 3]);
        // LOC = 0, PER = 1; head positions exclude [CLS].
        assert_eq!(batch.spans, vec![vec![Span { kind: 1, start: 0, end: 2 }, Span { kind: 0, start: 4, end: 4 }]]);
        assert_eq!(batch.words, vec![vec![0, 1, 1, 2, 3, 4]]);
        // Positive scores at piece spans (PER, 0..=2) and (LOC, 2..=4) → words (0, 1) and (1, 3).
        let mut scores = vec![-1.0f32; 2 * 6 * 6];
        scores[36 + 2] = 1.0; // type 1, row 0, column 2
        scores[2 * 6 + 4] = 1.0; // type 0, row 2, column 4
        let scores = Tensor::<4>::from_data(TensorData::new(scores, [1, 2, 6, 6]), &device);
        let words = batch.to_words(scores, Decoding::Nested, 0.0);
        assert_eq!(words, vec![vec![Span { kind: 1, start: 0, end: 1 }, Span { kind: 0, start: 1, end: 3 }]]);
        // The model runs on it: scores over the 6 pieces, padding masked.
        let model = task.build_model(&device).unwrap();
        let scores = model.forward(batch.ids, CharFeatures::default(), &batch.padding, &batch.head_padding);
        assert_eq!(scores.dims(), [1, 2, 6, 6]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
