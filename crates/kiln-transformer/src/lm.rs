//! A causal character-level language model (nanoGPT's `shakespeare_char` setting, Karpathy 2022):
//! token embedding, a causal transformer stack, a linear head over the vocabulary, cross-entropy on
//! every position. Sampling re-runs the stack on the last `context` characters for each new one.

use std::path::Path;

use burn::nn::Embedding;
use burn::prelude::*;
use burn::tensor::activation::softmax;
use kiln_data::text::{CharCorpus, CharVocab, TextDataConfig};
use kiln_layers::{Linear, TokenLayout, Transformer, TransformerConfig};
use kiln_task::Context;
use kiln_task::{GenerateOptions, Metrics, Split, StepOutput, Task, step_rng};
use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::cross_entropy;
use crate::embedding::{check_embedding_std, check_positions_cover, token_embedding};

/// `[model] kind = "char_lm"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CharLmConfig {
    /// Characters of context (nanoGPT's `block_size`).
    pub context: usize,
    /// The decoder stack (`[model.decoder]`); must have `causal = true`.
    pub decoder: TransformerConfig,
    /// Standard deviation of the character embeddings' normal initialisation; default Burn's
    /// `N(0, 1)`. nanoGPT draws them `N(0, 0.02²)`, like its learned positions.
    #[serde(default)]
    pub embedding_std: Option<f64>,
}

impl CharLmConfig {
    /// Check the stack and that it is causal.
    pub fn validate(&self) -> kiln_task::Result<()> {
        self.decoder.validate().context("model.decoder")?;
        kiln_task::ensure!(self.decoder.causal, "model.decoder.causal must be true for a language model");
        kiln_task::ensure!(self.context >= 1, "model.context must be at least 1");
        check_positions_cover(
            "model.decoder",
            &self.decoder,
            self.context,
            &format!("model.context = {}", self.context),
        )?;
        check_embedding_std(self.embedding_std)
    }

    /// Build for a vocabulary.
    pub fn init(&self, vocab_size: usize, device: &Device) -> CharLm {
        CharLm {
            embedding: token_embedding(vocab_size, self.decoder.d_model, self.embedding_std, device),
            decoder: self.decoder.init(device),
            head: Linear::new(self.decoder.d_model, vocab_size, true, device),
        }
    }
}

/// Embedding, causal stack, vocabulary head.
#[derive(Module, Debug)]
pub struct CharLm {
    /// Character embedding.
    pub embedding: Embedding,
    /// The causal stack.
    pub decoder: Transformer,
    /// Next-character logits.
    pub head: Linear,
}

impl CharLm {
    /// Next-character logits at every position.
    ///
    /// # Shapes
    ///
    /// - `tokens`: `[b, n]` → `[b, n, vocab]`
    pub fn forward(&self, tokens: Tensor<2, Int>) -> Tensor<3> {
        self.head.forward(self.decoder.forward(self.embedding.forward(tokens), None, TokenLayout::Sequence))
    }
}

/// Language modelling on one text file.
pub struct CharLmTask {
    model: CharLmConfig,
    data: TextDataConfig,
    corpus: CharCorpus,
}

/// The run directory's copy of the vocabulary: its characters in id order, as one string.
const VOCAB_FILE: &str = "vocab.txt";

/// A batch of windows and their next characters.
pub struct WindowBatch {
    inputs: Tensor<2, Int>,
    targets: Tensor<2, Int>,
}

impl CharLmTask {
    /// Read the corpus (`path` already resolved).
    pub fn new(model: CharLmConfig, data: TextDataConfig) -> kiln_task::Result<Self> {
        model.validate()?;
        kiln_task::ensure!(
            data.eval_batches > 0 && data.eval_batch_size > 0,
            "data.eval_batches and data.eval_batch_size must be at least 1"
        );
        let corpus = CharCorpus::read(&data.path, data.valid_fraction)?;
        for (name, split) in [("training", &corpus.train), ("validation", &corpus.valid)] {
            kiln_task::ensure!(
                split.len() > model.context + 1,
                "{}: the {name} text has {} characters, fewer than model.context + 2 = {}",
                data.path.display(),
                split.len(),
                model.context + 2
            );
        }
        Ok(Self { model, data, corpus })
    }

    /// The task of a trained run, for `kiln sample`: the vocabulary from the run's `vocab.txt` (written
    /// by [`Task::save_artifacts`]), so the text need not be there; without that file (a run of an
    /// older Kiln), from the text as [`Self::new`].
    ///
    /// # Errors
    ///
    /// The vocabulary file cannot be read, or (without it) as [`Self::new`].
    pub fn from_run(model: CharLmConfig, data: TextDataConfig, run_dir: &Path) -> kiln_task::Result<Self> {
        let path = run_dir.join(VOCAB_FILE);
        if !path.exists() {
            return Self::new(model, data);
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let chars: Vec<char> = text.chars().collect();
        kiln_task::ensure!(
            !chars.is_empty() && chars.windows(2).all(|w| w[0] < w[1]),
            "{}: not a vocabulary written by kiln train (its characters, sorted, each once)",
            path.display()
        );
        let vocab = CharVocab::from_chars(chars);
        Ok(Self { model, data, corpus: CharCorpus { vocab, train: vec![], valid: vec![] } })
    }

    fn windows(&self, ids: &[u32], batch_size: usize, mut rng: rand::rngs::StdRng, device: &Device) -> WindowBatch {
        let ctx = self.model.context;
        let (mut x, mut y) = (Vec::with_capacity(batch_size * ctx), Vec::with_capacity(batch_size * ctx));
        for _ in 0..batch_size {
            let start = rng.random_range(0..ids.len() - ctx - 1);
            x.extend(ids[start..start + ctx].iter().map(|&t| t as i64));
            y.extend(ids[start + 1..start + ctx + 1].iter().map(|&t| t as i64));
        }
        let t = |v: Vec<i64>| {
            Tensor::<1, Int>::from_ints(TensorData::new(v, [batch_size * ctx]), device).reshape([batch_size, ctx])
        };
        WindowBatch { inputs: t(x), targets: t(y) }
    }

    fn loss(&self, model: &CharLm, batch: WindowBatch) -> Tensor<1> {
        let [b, n] = batch.inputs.dims();
        let logits = model.forward(batch.inputs); // [b, n, vocab]
        let vocab = logits.dims()[2];
        cross_entropy(logits.reshape([b * n, vocab]), batch.targets.reshape([b * n]))
    }
}

impl Task for CharLmTask {
    type Model = CharLm;
    type Batch = WindowBatch;

    fn describe(&self) -> String {
        format!(
            "character-level language model on {} ({} train / {} valid characters, vocabulary {})",
            self.data.path.display(),
            self.corpus.train.len(),
            self.corpus.valid.len(),
            self.corpus.vocab.len()
        )
    }

    fn build_model(&self, device: &Device) -> kiln_task::Result<CharLm> {
        Ok(self.model.init(self.corpus.vocab.len(), device))
    }

    fn train_len(&self) -> Option<usize> {
        None
    }

    /// Random windows of the training text, like nanoGPT's `get_batch`, drawn from `(seed, step)`.
    fn train_batch(&self, step: usize, batch_size: usize, seed: u64, device: &Device) -> WindowBatch {
        self.windows(&self.corpus.train, batch_size, step_rng(seed, 2, step as u64), device)
    }

    fn step(&self, model: &CharLm, batch: WindowBatch) -> StepOutput {
        let items = batch.inputs.dims()[0];
        StepOutput { loss: self.loss(model, batch), items }
    }

    /// Mean loss over a fixed set of random validation windows (the same at every evaluation); the
    /// text has no test split.
    fn evaluate(&self, model: &CharLm, split: Split, device: &Device) -> kiln_task::Result<Metrics> {
        if split == Split::Test {
            return Ok(vec![]);
        }
        let total: f64 = (0..self.data.eval_batches)
            .map(|i| {
                let batch =
                    self.windows(&self.corpus.valid, self.data.eval_batch_size, step_rng(0, 3, i as u64), device);
                let l: f32 = self.loss(model, batch).into_scalar();
                l as f64
            })
            .sum();
        Ok(vec![("loss".into(), total / self.data.eval_batches as f64)])
    }

    fn save_artifacts(&self, run_dir: &Path) -> kiln_task::Result<()> {
        let path = run_dir.join(VOCAB_FILE);
        std::fs::write(&path, self.corpus.vocab.to_text()).with_context(|| format!("writing {}", path.display()))
    }

    /// Sample `max_tokens` characters after the prompt (default: a newline).
    fn generate(&self, model: &CharLm, options: &GenerateOptions, device: &Device) -> kiln_task::Result<String> {
        let prompt = options.prompt.clone().unwrap_or_else(|| "\n".into());
        let mut ids = self.corpus.vocab.encode(&prompt).map_err(|c| {
            kiln_task::TaskError::Invalid(format!(
                "the prompt contains {c:?}, which is not in the training text's vocabulary"
            ))
        })?;
        kiln_task::ensure!(!ids.is_empty(), "the prompt is empty");
        kiln_task::ensure!(options.temperature > 0.0, "--temperature must be positive");
        let mut rng = step_rng(options.seed, 4, 0);
        for _ in 0..options.max_tokens {
            let window = &ids[ids.len().saturating_sub(self.model.context)..];
            let n = window.len();
            let input = Tensor::<1, Int>::from_ints(
                TensorData::new(window.iter().map(|&t| t as i64).collect::<Vec<_>>(), [n]),
                device,
            )
            .reshape([1, n]);
            let logits = model.forward(input).narrow(1, n - 1, 1).reshape([1, self.corpus.vocab.len()]);
            let probs = softmax(logits.div_scalar(options.temperature), 1).into_data().convert::<f32>();
            let probs =
                probs.as_slice::<f32>().map_err(|e| kiln_task::TaskError::backend("reading the probabilities", e))?;
            let u: f32 = rng.random();
            let mut acc = 0.0;
            let next = probs.iter().position(|p| {
                acc += p;
                acc >= u
            });
            ids.push(next.unwrap_or(probs.len() - 1) as u32);
        }
        Ok(self.corpus.vocab.decode(&ids))
    }
}
