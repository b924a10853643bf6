//! Sequence classification with a transformer encoder: embed tokens, run the stack with a padding
//! mask, mean-pool the real tokens (or take the first), classify with a linear head. The Long Range
//! Arena's ListOps task (Tay et al. 2021, arXiv:2011.04006) is its [`ListOpsTask`].

use std::path::Path;

use burn::nn::{Embedding, Linear, LinearConfig};
use burn::prelude::*;
use kiln_data::listops::{self, Example, ListOps, ListOpsConfig};
use kiln_layers::mask::{masked_mean, padding_from_lengths};
use kiln_layers::{TokenLayout, Transformer, TransformerConfig};
use kiln_task::Context;
use kiln_task::{EpochSampler, GenerateOptions, Metrics, Split, StepOutput, Task};
use serde::{Deserialize, Serialize};

use crate::embedding::{check_embedding_std, check_positions_cover, token_embedding};
use crate::{accuracy_counts, cross_entropy};

/// How token states become one vector per sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// Mean over real (non-padding) tokens.
    #[default]
    Mean,
    /// The first token's state.
    First,
}

/// `[model] kind = "classifier"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassifierConfig {
    /// The encoder stack (`[model.encoder]`).
    pub encoder: TransformerConfig,
    /// Pooling of token states.
    #[serde(default)]
    pub pooling: Pooling,
    /// Standard deviation of the token embeddings' normal initialisation; default Burn's `N(0, 1)`.
    /// The LRA reference code draws them `N(0, 0.02²)`, the scale of its learned positions: with
    /// `N(0, 1)` tokens the positions start 50 times smaller than the tokens they are added to.
    #[serde(default)]
    pub embedding_std: Option<f64>,
}

impl ClassifierConfig {
    /// Check the values serde cannot: the encoder, and a positive finite `embedding_std`.
    pub fn validate(&self) -> kiln_task::Result<()> {
        self.encoder.validate().context("model.encoder")?;
        check_embedding_std(self.embedding_std)
    }

    /// The encoder's learned positions, if any, cover the longest batch `data` gives: trees of up to
    /// `max_len - 1` tokens, or `pad_to` where that is longer.
    pub fn check_data(&self, data: &ListOpsConfig) -> kiln_task::Result<()> {
        let longest = data.max_len.saturating_sub(1);
        match data.pad_to {
            Some(p) if p > longest => {
                check_positions_cover("model.encoder", &self.encoder, p, &format!("data.pad_to = {p}"))
            }
            _ => check_positions_cover(
                "model.encoder",
                &self.encoder,
                longest,
                &format!("data.max_len = {} (trees of up to {longest} tokens)", data.max_len),
            ),
        }
    }

    /// Build for a vocabulary and a number of classes.
    pub fn init(&self, vocab_size: usize, num_classes: usize, device: &Device) -> SequenceClassifier {
        SequenceClassifier {
            embedding: token_embedding(vocab_size, self.encoder.d_model, self.embedding_std, device),
            encoder: self.encoder.init(device),
            head: LinearConfig::new(self.encoder.d_model, num_classes).init(device),
            pooling: self.pooling,
        }
    }
}

/// Token embedding, transformer encoder, pooling, linear head.
#[derive(Module, Debug)]
pub struct SequenceClassifier {
    /// Token embedding.
    pub embedding: Embedding,
    /// The encoder.
    pub encoder: Transformer,
    /// Classification head.
    pub head: Linear,
    /// Pooling.
    #[module(skip)]
    pub pooling: Pooling,
}

impl SequenceClassifier {
    /// Class logits.
    ///
    /// # Shapes
    ///
    /// - `tokens`: `[b, n]`, `padding`: `[b, n]` (`true` = pad) → `[b, classes]`
    pub fn forward(&self, tokens: Tensor<2, Int>, padding: &Tensor<2, Bool>) -> Tensor<2> {
        let b = tokens.dims()[0];
        let h = self.encoder.forward(self.embedding.forward(tokens), Some(padding), TokenLayout::Sequence); // [b, n, d]
        let d = h.dims()[2];
        let pooled = match self.pooling {
            Pooling::Mean => masked_mean(h, padding),
            Pooling::First => h.narrow(1, 0, 1).reshape([b, d]),
        };
        self.head.forward(pooled)
    }
}

/// A batch of token sequences, padded to the longest.
pub struct SequenceBatch {
    tokens: Tensor<2, Int>,
    padding: Tensor<2, Bool>,
    labels: Tensor<1, Int>,
}

/// A batch padded to its longest sequence, or to `pad_to` when given (it holds every sequence: the
/// config's validation sees to that).
fn batch_of(examples: &[&Example], pad_to: Option<usize>, device: &Device) -> SequenceBatch {
    let longest = examples.iter().map(|e| e.tokens.len()).max().unwrap_or(1);
    let n = pad_to.map_or(longest, |p| p.max(longest));
    let mut ids = Vec::with_capacity(examples.len() * n);
    for e in examples {
        ids.extend(e.tokens.iter().map(|&t| t as i64));
        ids.extend(std::iter::repeat_n(listops::PAD as i64, n - e.tokens.len()));
    }
    let lengths: Vec<usize> = examples.iter().map(|e| e.tokens.len()).collect();
    let labels: Vec<i64> = examples.iter().map(|e| e.label as i64).collect();
    SequenceBatch {
        tokens: Tensor::<1, Int>::from_ints(TensorData::new(ids, [examples.len() * n]), device)
            .reshape([examples.len(), n]),
        padding: padding_from_lengths(&lengths, n, device),
        labels: Tensor::<1, Int>::from_ints(TensorData::new(labels, [examples.len()]), device),
    }
}

/// ListOps classification: the expression's value `0-9` from its tokens.
pub struct ListOpsTask {
    model: ClassifierConfig,
    data: ListOps,
    /// The most frequent training label.
    majority: u8,
    /// Pad batches to this length (`[data] pad_to`).
    pad_to: Option<usize>,
    /// The training trees' lengths when batches are grouped by length (`[data] group_by_length`), else empty.
    train_lengths: Vec<usize>,
}

/// Examples per evaluation batch.
const EVAL_BATCH: usize = 64;

impl ListOpsTask {
    /// Generate the data and keep the model config.
    pub fn new(model: ClassifierConfig, data: &ListOpsConfig) -> kiln_task::Result<Self> {
        model.check_data(data)?;
        let generated = data.generate().context("generating ListOps")?;
        let mut counts = [0usize; 10];
        generated.train.iter().for_each(|e| counts[e.label as usize] += 1);
        let majority = (0..10).max_by_key(|&c| counts[c]).unwrap_or(0) as u8;
        let train_lengths =
            if data.group_by_length { generated.train.iter().map(|e| e.tokens.len()).collect() } else { vec![] };
        Ok(Self { model, data: generated, majority, pad_to: data.pad_to, train_lengths })
    }

    /// The task without its splits, for `kiln predict` on a trained run: the vocabulary is fixed,
    /// so nothing has to be generated.
    pub fn without_data(model: ClassifierConfig, data: &ListOpsConfig) -> Self {
        let data_free = ListOps { train: vec![], valid: vec![], test: vec![] };
        Self { model, data: data_free, majority: 0, pad_to: data.pad_to, train_lengths: vec![] }
    }

    /// Accuracy of always answering the most frequent training label (the floor to beat).
    pub fn majority_baseline(&self, split: &[Example]) -> f64 {
        split.iter().filter(|e| e.label == self.majority).count() as f64 / split.len().max(1) as f64
    }
}

impl Task for ListOpsTask {
    type Model = SequenceClassifier;
    type Batch = SequenceBatch;

    fn describe(&self) -> String {
        let max = self.data.train.iter().map(|e| e.tokens.len()).max().unwrap_or(0);
        format!(
            "ListOps classification ({} train / {} valid / {} test sequences, up to {max} tokens)",
            self.data.train.len(),
            self.data.valid.len(),
            self.data.test.len()
        )
    }

    fn build_model(&self, device: &Device) -> kiln_task::Result<SequenceClassifier> {
        Ok(self.model.init(listops::VOCAB.len(), 10, device))
    }

    fn train_len(&self) -> Option<usize> {
        Some(self.data.train.len())
    }

    fn train_batch(&self, step: usize, batch_size: usize, seed: u64, device: &Device) -> SequenceBatch {
        let sampler = EpochSampler::new(self.data.train.len(), batch_size, seed);
        let idx = if self.train_lengths.is_empty() {
            sampler.batch(step)
        } else {
            sampler.batch_grouped_by_length(step, &self.train_lengths)
        };
        let examples: Vec<&Example> = idx.iter().map(|&i| &self.data.train[i]).collect();
        batch_of(&examples, self.pad_to, device)
    }

    fn step(&self, model: &SequenceClassifier, batch: SequenceBatch) -> StepOutput {
        let items = batch.labels.dims()[0];
        let logits = model.forward(batch.tokens, &batch.padding);
        StepOutput { loss: cross_entropy(logits, batch.labels), items }
    }

    fn evaluate(&self, model: &SequenceClassifier, split: Split, device: &Device) -> kiln_task::Result<Metrics> {
        let examples = match split {
            Split::Valid => &self.data.valid,
            Split::Test => &self.data.test,
        };
        // Batches of similar lengths pad less (a fraction of the work on the full task, and the
        // padding a length-grouped training run saw); the counts do not depend on the order.
        let mut by_length: Vec<&Example> = examples.iter().collect();
        by_length.sort_by_key(|e| e.tokens.len());
        let (mut correct, mut total, mut loss_sum) = (0, 0, 0.0);
        for chunk in by_length.chunks(EVAL_BATCH) {
            let batch = batch_of(chunk, self.pad_to, device);
            let logits = model.forward(batch.tokens, &batch.padding);
            let loss: f32 = cross_entropy(logits.clone(), batch.labels.clone()).into_scalar();
            let (c, t) = accuracy_counts(logits, batch.labels);
            correct += c;
            total += t;
            loss_sum += loss as f64 * t as f64;
        }
        Ok(vec![
            ("accuracy".into(), correct as f64 / total as f64),
            ("loss".into(), loss_sum / total as f64),
            ("majority_baseline".into(), self.majority_baseline(examples)),
        ])
    }

    fn save_artifacts(&self, run_dir: &Path) -> kiln_task::Result<()> {
        let path = run_dir.join("vocab.txt");
        std::fs::write(&path, listops::VOCAB.join("\n") + "\n").with_context(|| format!("writing {}", path.display()))
    }

    /// `kiln predict RUN --text "[MAX 2 9 [MIN 4 7 ] 0 ]"` prints the predicted value.
    fn generate(
        &self,
        model: &SequenceClassifier,
        options: &GenerateOptions,
        device: &Device,
    ) -> kiln_task::Result<String> {
        let text = options.prompt.as_deref().context("give the expression with --text")?;
        let tokens = listops::Tree::parse(text).map_err(kiln_task::TaskError::Invalid)?.tokens();
        if let Some(max) = self.model.encoder.position.max_seq_len() {
            kiln_task::ensure!(
                tokens.len() <= max,
                "the expression has {} tokens; this model's learned positions cover {max} (model.encoder.position.max_seq_len)",
                tokens.len()
            );
        }
        let example = Example { tokens, label: 0 };
        let batch = batch_of(&[&example], self.pad_to, device);
        let pred: i64 = model.forward(batch.tokens, &batch.padding).argmax(1).into_scalar();
        Ok(format!("{pred}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `[data] group_by_length`: an epoch of grouped batches holds exactly the trees of an epoch of
    /// random ones (each once), pads to less than half as many tokens, and a step's batch is the
    /// same when drawn again (resume).
    #[test]
    fn length_grouped_listops_batches_cover_the_epoch_with_less_padding() {
        let device = Device::flex();
        let data: ListOpsConfig =
            toml::from_str("n_train = 640\nn_valid = 10\nn_test = 10\nmin_len = 10\nmax_len = 300")
                .expect("a ListOps config");
        let model = ClassifierConfig {
            encoder: TransformerConfig::new(16, 2, 1),
            pooling: Pooling::default(),
            embedding_std: None,
        };
        let plain = ListOpsTask::new(model.clone(), &data).unwrap();
        let grouped = ListOpsTask::new(model, &ListOpsConfig { group_by_length: true, ..data }).unwrap();
        // The trees of an epoch (tokens without padding, label), sorted, and the padding tokens paid.
        let epoch = |task: &ListOpsTask| {
            let (mut trees, mut padded) = (vec![], 0);
            for step in 0..20 {
                let batch = task.train_batch(step, 32, 3, &device);
                let n = batch.tokens.dims()[1];
                let tokens: Vec<i64> = batch.tokens.into_data().iter::<i64>().collect();
                let labels: Vec<i64> = batch.labels.into_data().iter::<i64>().collect();
                for (row, label) in tokens.chunks(n).zip(labels) {
                    let real: Vec<i64> = row.iter().copied().filter(|&t| t != listops::PAD as i64).collect();
                    padded += n - real.len();
                    trees.push((real, label));
                }
            }
            trees.sort();
            (trees, padded)
        };
        let ((plain_trees, plain_pad), (grouped_trees, grouped_pad)) = (epoch(&plain), epoch(&grouped));
        assert_eq!(plain_trees.len(), 640);
        assert_eq!(plain_trees, grouped_trees, "the same trees per epoch");
        assert!(grouped_pad * 2 < plain_pad, "padding tokens: grouped {grouped_pad}, random {plain_pad}");
        let again = |t: &ListOpsTask| t.train_batch(7, 32, 3, &device).tokens.into_data();
        assert_eq!(again(&grouped), again(&grouped));
        assert_ne!(again(&grouped), again(&plain));
    }

    /// Evaluation batches examples of similar length together; with a model that padding does not
    /// change (softmax attention, masked mean), its accuracy and loss equal scoring each tree alone.
    #[test]
    fn length_sorted_evaluation_equals_scoring_each_tree_alone() {
        let device = Device::flex();
        let data: ListOpsConfig =
            toml::from_str("n_train = 64\nn_valid = 150\nn_test = 10\nmin_len = 5\nmax_len = 120")
                .expect("a ListOps config");
        let encoder = TransformerConfig { dropout: 0.0, ..TransformerConfig::new(16, 2, 1) };
        let model = ClassifierConfig { encoder, pooling: Pooling::Mean, embedding_std: None };
        let task = ListOpsTask::new(model, &data).unwrap();
        let classifier = task.build_model(&device).unwrap();
        let (mut correct, mut loss_sum) = (0usize, 0f64);
        for e in &task.data.valid {
            let batch = batch_of(&[e], None, &device);
            let logits = classifier.forward(batch.tokens, &batch.padding);
            loss_sum += cross_entropy(logits.clone(), batch.labels.clone()).into_scalar::<f32>() as f64;
            correct += accuracy_counts(logits, batch.labels).0;
        }
        let n = task.data.valid.len() as f64;
        let metrics = task.evaluate(&classifier, Split::Valid, &device).unwrap();
        let get = |k: &str| metrics.iter().find(|(name, _)| name == k).unwrap().1;
        assert_eq!(get("accuracy"), correct as f64 / n);
        assert!((get("loss") - loss_sum / n).abs() < 1e-5, "loss {} vs {}", get("loss"), loss_sum / n);
        // The lengths vary, so the batches really were padded (a test of something).
        let lengths = task.data.valid.iter().map(|e| e.tokens.len());
        let (shortest, longest) = (lengths.clone().min().unwrap(), lengths.max().unwrap());
        assert!(longest > shortest + 20, "lengths {shortest}..{longest}");
    }

    /// Learned positions bound the sequences: the task refuses data whose trees (or `pad_to`)
    /// are longer than the table, and `kiln predict` an expression longer than it, with a message
    /// naming the key, where the model would panic; the other kinds take any length. A malformed
    /// expression is refused too.
    #[test]
    fn learned_positions_bound_the_data_and_the_expressions() {
        let device = Device::flex();
        let data: ListOpsConfig =
            toml::from_str("n_train = 8\nn_valid = 2\nn_test = 2\nmin_len = 2\nmax_len = 10").unwrap();
        let model = |max_seq_len: usize| ClassifierConfig {
            encoder: TransformerConfig {
                position: kiln_layers::PositionConfig::Learned { max_seq_len },
                ..TransformerConfig::new(16, 2, 1)
            },
            pooling: Pooling::Mean,
            embedding_std: None,
        };
        let err = ListOpsTask::new(model(8), &data).err().expect("trees of 9 tokens, 8 positions").to_string();
        assert!(err.contains("cover 8 tokens (max_seq_len), but data.max_len = 10 (trees of up to 9 tokens)"), "{err}");
        let padded = ListOpsConfig { pad_to: Some(12), ..data.clone() };
        let err = ListOpsTask::new(model(9), &padded).err().expect("pad_to 12, 9 positions").to_string();
        assert!(err.contains("data.pad_to = 12 gives sequences of 12"), "{err}");
        let task = ListOpsTask::new(model(9), &data).unwrap();
        let classifier = task.build_model(&device).unwrap();
        let predict = |text: &str| {
            let options =
                GenerateOptions { prompt: Some(text.into()), max_tokens: 0, temperature: 1.0, seed: 0, out_dir: None };
            task.generate(&classifier, &options, &device)
        };
        let value: u8 = predict("[MAX 1 2 3 4 5 6 7 ]").unwrap().parse().unwrap();
        assert!(value < 10);
        let err = predict("[MAX 1 2 3 4 5 6 7 8 ]").unwrap_err().to_string();
        assert!(err.contains("the expression has 10 tokens; this model's learned positions cover 9"), "{err}");
        let err = predict("[MAX 1 [MIN 2 ]").unwrap_err().to_string();
        assert_eq!(err, "the operator at token 1 is not closed by `]`");
        let rope = ClassifierConfig {
            encoder: TransformerConfig { position: kiln_layers::PositionConfig::Sinusoidal {}, ..model(1).encoder },
            ..model(1)
        };
        assert!(ListOpsTask::new(rope, &data).is_ok(), "sinusoidal positions take any length");
    }

    /// `embedding_std` sets the token embeddings' spread (the LRA reference's 0.02), for the
    /// classifier and the language model; without it they are Burn's `N(0, 1)`.
    #[test]
    fn embedding_std_sets_the_token_embedding_scale() {
        let device = Device::flex();
        let spread = |w: Tensor<2>| {
            let w: Vec<f32> = w.into_data().iter::<f32>().collect();
            let mean = w.iter().sum::<f32>() / w.len() as f32;
            (w.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / w.len() as f32).sqrt()
        };
        let classifier = |embedding_std: Option<f64>| {
            let config =
                ClassifierConfig { encoder: TransformerConfig::new(64, 2, 1), pooling: Pooling::Mean, embedding_std };
            spread(config.init(200, 10, &device).embedding.weight.val())
        };
        let lm = |embedding_std: Option<f64>| {
            let decoder = TransformerConfig { causal: true, ..TransformerConfig::new(64, 2, 1) };
            let config = crate::CharLmConfig { context: 8, decoder, embedding_std };
            config.validate().unwrap();
            spread(config.init(200, &device).embedding.weight.val())
        };
        for (name, std_of) in [("classifier", &classifier as &dyn Fn(Option<f64>) -> f32), ("char_lm", &lm)] {
            let (reference, default) = (std_of(Some(0.02)), std_of(None));
            assert!((reference - 0.02).abs() < 0.001, "{name}: std {reference}");
            assert!((default - 1.0).abs() < 0.05, "{name}: std {default}");
        }
        let bad = ClassifierConfig {
            embedding_std: Some(0.0),
            ..toml::from_str("[encoder]\nd_model = 8\nn_heads = 2\nn_layers = 1").unwrap()
        };
        assert!(bad.validate().unwrap_err().to_string().contains("model.embedding_std must be positive, got 0"));
    }
}
