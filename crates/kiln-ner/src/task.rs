//! NER as a Kiln task: a character-level transformer encoder trained from scratch (vocabulary built
//! from the training file) under a span head, on any of the formats `kiln_data::ner` reads.
//!
//! TOML:
//!
//! ```toml
//! [model]
//! kind = "ner"
//! head = { kind = "global_pointer", d_head = 64, rope = true }
//! [model.encoder]            # any kiln-layers TransformerConfig
//! d_model = 256
//! n_heads = 4
//! n_layers = 4
//! position = { kind = "rope" }
//!
//! [data]
//! kind = "ner"
//! format = "cluener"         # cluener | columns | cmeee
//! train = "cluener/train.json"
//! valid = "cluener/dev.json"
//! ```
//!
//! Sentences longer than `max_len` characters are cut (entities crossing the cut are dropped from
//! training; evaluation scores the cut sentences against all their gold entities, so a cut costs
//! recall honestly). Characters unseen in training map to `[UNK]`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use anyhow::Context;
use burn::nn::{Embedding, EmbeddingConfig};
use burn::prelude::*;
use kiln_data::ner::{ColumnOptions, NerExample, NerFile, read_cluener, read_cmeee, read_columns};
use kiln_layers::mask::padding_from_lengths;
use kiln_layers::{TokenLayout, Transformer, TransformerConfig};
use kiln_task::{EpochSampler, GenerateOptions, Metrics, StepOutput, Task};
use serde::{Deserialize, Serialize};

use crate::{EntityCounts, Span, SpanHead, SpanHeadConfig, decode_spans};

/// `[model]` of `kind = "ner"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NerModelConfig {
    /// The encoder over character embeddings.
    pub encoder: TransformerConfig,
    /// The span head.
    #[serde(default)]
    pub head: SpanHeadConfig,
}

impl NerModelConfig {
    /// Encoder and head checks.
    ///
    /// # Errors
    ///
    /// The first invalid value.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.encoder.validate().context("model.encoder")?;
        self.head.validate().context("model.head")?;
        Ok(())
    }
}

/// The file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NerFormat {
    /// CLUENER JSON lines.
    Cluener,
    /// Token-per-line column files (BIO, BIOES, BMES).
    Columns,
    /// CMeEE (CBLUE) JSON.
    Cmeee,
}

/// `[data]` of `kind = "ner"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NerDataConfig {
    /// File format.
    pub format: NerFormat,
    /// Training file.
    pub train: PathBuf,
    /// Validation file.
    pub valid: PathBuf,
    /// Test file with labels, if any (CLUENER's test file has none).
    #[serde(default)]
    pub test: Option<PathBuf>,
    /// Column files: drop a trailing digit from each token (Weibo).
    #[serde(default)]
    pub strip_digit_suffix: bool,
    /// Longest sentence in characters; longer ones are cut.
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// Use only the first `train_limit` training sentences.
    #[serde(default)]
    pub train_limit: Option<usize>,
}

fn default_max_len() -> usize {
    256
}

impl NerDataConfig {
    /// The files this config reads.
    pub fn paths(&self) -> Vec<&Path> {
        let mut v = vec![self.train.as_path(), self.valid.as_path()];
        v.extend(self.test.as_deref());
        v
    }

    /// Make relative paths absolute against `dir`.
    pub fn resolve_paths(&mut self, dir: &Path) {
        for p in [&mut self.train, &mut self.valid].into_iter().chain(self.test.as_mut()) {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
    }

    fn read(&self, path: &Path) -> anyhow::Result<NerFile> {
        let file = match self.format {
            NerFormat::Cluener => read_cluener(path)?,
            NerFormat::Cmeee => read_cmeee(path)?,
            NerFormat::Columns => read_columns(path, ColumnOptions { strip_digit_suffix: self.strip_digit_suffix })?,
        };
        anyhow::ensure!(!file.examples.is_empty(), "{}: no sentences", path.display());
        Ok(file)
    }
}

/// Character embeddings, a transformer encoder and a span head.
#[derive(Module, Debug)]
pub struct NerModel {
    /// Character embeddings (`[PAD]` = 0, `[UNK]` = 1).
    pub embedding: Embedding,
    /// The encoder.
    pub encoder: Transformer,
    /// The span head.
    pub head: SpanHead,
}

impl NerModel {
    /// Span scores, invalid cells masked.
    ///
    /// # Shapes
    ///
    /// - `ids`: `[b, n]`, `padding`: `[b, n]` → `[b, n_types, n, n]`
    pub fn forward(&self, ids: Tensor<2, Int>, padding: &Tensor<2, Bool>) -> Tensor<4> {
        self.head.forward(self.encode(ids, padding), Some(padding))
    }

    /// Encoder states.
    ///
    /// # Shapes
    ///
    /// - `ids`: `[b, n]`, `padding`: `[b, n]` → `[b, n, d_model]`
    pub fn encode(&self, ids: Tensor<2, Int>, padding: &Tensor<2, Bool>) -> Tensor<3> {
        self.encoder.forward(self.embedding.forward(ids), Some(padding), TokenLayout::Sequence)
    }
}

/// A training or evaluation batch.
pub struct NerBatch {
    ids: Tensor<2, Int>,
    padding: Tensor<2, Bool>,
    spans: Vec<Vec<Span>>,
}

/// Named-entity recognition on a dataset.
pub struct NerTask {
    model: NerModelConfig,
    data: NerDataConfig,
    train: Vec<NerExample>,
    valid: Vec<NerExample>,
    test: Option<Vec<NerExample>>,
    vocab: BTreeMap<String, usize>,
    types: Vec<String>,
    inconsistent: usize,
}

const EVAL_BATCH: usize = 32;

impl NerTask {
    /// Read the files and build the character vocabulary and the type list from the training file.
    ///
    /// # Errors
    ///
    /// A file is missing or malformed.
    pub fn new(model: NerModelConfig, data: NerDataConfig) -> anyhow::Result<Self> {
        let mut train_file = data.read(&data.train)?;
        if let Some(limit) = data.train_limit {
            train_file.examples.truncate(limit);
        }
        let valid_file = data.read(&data.valid)?;
        let test_file = data.test.as_deref().map(|p| data.read(p)).transpose()?;
        let mut vocab = BTreeMap::new();
        let chars: BTreeSet<&str> =
            train_file.examples.iter().flat_map(|x| x.tokens.iter().map(String::as_str)).collect();
        for (i, c) in chars.into_iter().enumerate() {
            vocab.insert(c.to_string(), i + 2);
        }
        let types: BTreeSet<String> =
            train_file.examples.iter().flat_map(|x| x.entities.iter().map(|e| e.label.clone())).collect();
        anyhow::ensure!(!types.is_empty(), "{}: no entities in the training file", data.train.display());
        let inconsistent = train_file.inconsistent_tags + valid_file.inconsistent_tags;
        Ok(Self {
            model,
            data,
            train: train_file.examples,
            valid: valid_file.examples,
            test: test_file.map(|f| f.examples),
            vocab,
            types: types.into_iter().collect(),
            inconsistent,
        })
    }

    /// Entity type names, in head order.
    pub fn types(&self) -> &[String] {
        &self.types
    }

    fn type_index(&self, label: &str) -> Option<usize> {
        self.types.binary_search_by(|t| t.as_str().cmp(label)).ok()
    }

    /// Ids, padding and the gold spans (within the cut, of known types) of some sentences.
    fn batch(&self, examples: &[&NerExample], device: &Device) -> NerBatch {
        let max = self.data.max_len;
        let lengths: Vec<usize> = examples.iter().map(|x| x.tokens.len().clamp(1, max)).collect();
        let n = lengths.iter().copied().max().unwrap_or(1);
        let mut ids = Vec::with_capacity(examples.len() * n);
        for (x, &len) in examples.iter().zip(&lengths) {
            ids.extend(x.tokens.iter().take(len).map(|t| self.vocab.get(t).copied().unwrap_or(1) as i64));
            ids.extend(std::iter::repeat_n(0i64, n - len.min(x.tokens.len())));
        }
        let spans = examples
            .iter()
            .zip(&lengths)
            .map(|(x, &len)| {
                x.entities
                    .iter()
                    .filter(|e| e.end < len)
                    .filter_map(|e| self.type_index(&e.label).map(|kind| Span { kind, start: e.start, end: e.end }))
                    .collect()
            })
            .collect();
        NerBatch {
            ids: Tensor::<2, Int>::from_data(TensorData::new(ids, [examples.len(), n]), device),
            padding: padding_from_lengths(&lengths, n, device),
            spans,
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
            "NER, {} types ({}), {} train / {} valid{} sentences, {} characters in the vocabulary{}",
            self.types.len(),
            self.types.join(", "),
            self.train.len(),
            self.valid.len(),
            self.test.as_ref().map(|t| format!(" / {} test", t.len())).unwrap_or_default(),
            self.vocab.len(),
            if self.inconsistent > 0 {
                format!(", {} inconsistent tags read as conlleval", self.inconsistent)
            } else {
                String::new()
            }
        )
    }

    fn build_model(&self, device: &Device) -> NerModel {
        NerModel {
            embedding: EmbeddingConfig::new(self.vocab.len() + 2, self.model.encoder.d_model).init(device),
            encoder: self.model.encoder.init(device),
            head: self.model.head.init(self.model.encoder.d_model, self.types.len(), device),
        }
    }

    fn train_len(&self) -> Option<usize> {
        Some(self.train.len())
    }

    fn train_batch(&self, step: usize, batch_size: usize, seed: u64, device: &Device) -> NerBatch {
        let idx = EpochSampler::new(self.train.len(), batch_size, seed).batch(step);
        let examples: Vec<&NerExample> = idx.iter().map(|&i| &self.train[i]).collect();
        self.batch(&examples, device)
    }

    fn step(&self, model: &NerModel, batch: NerBatch) -> StepOutput {
        let b = batch.ids.dims()[0];
        let h = model.encode(batch.ids, &batch.padding);
        StepOutput { loss: model.head.loss(h, &batch.padding, &batch.spans, self.types.len()), items: b }
    }

    fn on_optimizer_step(&self, model: &mut NerModel, step: usize) {
        model.encoder.on_step(step);
    }

    fn evaluate(&self, model: &NerModel, split: &str, device: &Device) -> anyhow::Result<Metrics> {
        let examples = match split {
            "valid" => &self.valid,
            "test" => match &self.test {
                Some(t) => t,
                None => return Ok(vec![]), // no labelled test file configured
            },
            other => anyhow::bail!("unknown split `{other}` (expected valid or test)"),
        };
        let mut counts = EntityCounts::new(self.types.len());
        let mut unknown = 0;
        for chunk in examples.chunks(EVAL_BATCH) {
            let refs: Vec<&NerExample> = chunk.iter().collect();
            let batch = self.batch(&refs, device);
            let predicted = decode_spans(model.forward(batch.ids, &batch.padding), 0.0);
            for (x, p) in chunk.iter().zip(&predicted) {
                let gold = self.gold(x);
                unknown += gold.iter().filter(|g| g.kind == usize::MAX).count();
                let known: Vec<Span> = gold.into_iter().filter(|g| g.kind != usize::MAX).collect();
                counts.add(p, &known);
            }
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
        let path = run_dir.join("entity_types.txt");
        std::fs::write(&path, self.types.join("\n") + "\n").with_context(|| format!("writing {}", path.display()))
    }

    fn generate(&self, model: &NerModel, options: &GenerateOptions, device: &Device) -> anyhow::Result<String> {
        let text = options.prompt.as_deref().context("give the sentence with --text")?;
        let chars: Vec<String> = text.chars().map(String::from).collect();
        anyhow::ensure!(!chars.is_empty(), "the text is empty");
        let example = NerExample { tokens: chars.clone(), entities: vec![] };
        let batch = self.batch(&[&example], device);
        let spans = decode_spans(model.forward(batch.ids, &batch.padding), 0.0).remove(0);
        let entities: Vec<serde_json::Value> = spans
            .iter()
            .map(|s| {
                let surface: String = chars[s.start..=s.end].concat();
                serde_json::json!({"type": self.types[s.kind], "start": s.start, "end": s.end, "text": surface})
            })
            .collect();
        Ok(serde_json::to_string(&entities)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(dir: &Path) -> NerTask {
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
        let model: NerModelConfig = toml::from_str(
            "head = { kind = \"global_pointer\", d_head = 8 }\n[encoder]\nd_model = 16\nn_heads = 2\nn_layers = 1",
        )
        .unwrap();
        NerTask::new(model, data).unwrap()
    }

    /// Types and vocabulary come from the training file; the cut at `max_len` drops entities that
    /// cross it from the labels; unseen characters map to [UNK].
    #[test]
    fn vocabulary_types_and_truncation() {
        let dir = std::env::temp_dir().join(format!("kiln-ner-task-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let task = setup(&dir);
        assert_eq!(task.types(), ["LOC", "PER"]);
        assert_eq!(task.vocab.len(), 7); // 张 三 去 北 京 李 四
        let device = Device::flex();
        let batch = task.batch(&[&task.valid[0]], &device);
        assert_eq!(batch.ids.dims(), [1, 4], "cut to max_len");
        let ids: Vec<i64> = batch.ids.into_data().convert::<i64>().try_to_vec::<i64>().unwrap();
        assert_eq!(ids[2], 1, "到 is not in the training vocabulary");
        // 上海 spans 3..=4, crossing the cut: only 张三 (PER = type 1) is a label.
        assert_eq!(batch.spans, vec![vec![Span { kind: 1, start: 0, end: 1 }]]);
        // Evaluation still counts both gold entities (recall pays for the cut).
        let model = task.build_model(&device);
        let m = task.evaluate(&model, "valid", &device).unwrap();
        assert_eq!(m[0].0, "f1");
        assert!(task.evaluate(&model, "test", &device).unwrap().is_empty(), "no test file configured");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
