#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

use std::path::Path;

pub mod chart;
mod error;
mod kind;
pub mod picture;
pub mod run_dir;

pub use error::{Context, Result, TaskError};
pub use kind::{ModelKind, StepShape, wrong_data};

use burn::module::Module;
use burn::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

/// Named scalar metrics, in the order they should be shown.
pub type Metrics = Vec<(String, f64)>;

/// The loss of one training batch, and what to log about it.
pub struct StepOutput {
    /// Scalar loss `[1]` to differentiate.
    pub loss: Tensor<1>,
    /// Number of items (sequences, images, tokens) in the batch, for weighted averages.
    pub items: usize,
}

/// A held-out split of a task's data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Split {
    /// The validation split: early stopping and the best checkpoint are chosen on it.
    Valid,
    /// The test split, reported by `kiln eval`.
    Test,
}

impl Split {
    /// Both, in the order `kiln eval` reports them.
    pub const ALL: [Split; 2] = [Split::Valid, Split::Test];

    /// `"valid"` or `"test"`, as in `metrics.csv`.
    pub fn name(self) -> &'static str {
        match self {
            Split::Valid => "valid",
            Split::Test => "test",
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Work that runs on any task: the trainer, `eval`, `predict`, `sample`, `check` and the benchmarks
/// are jobs, and a model kind's registration hands its task to them ([`ModelKind`]).
pub trait TaskJob {
    /// What the job returns.
    type Output;
    /// What the job fails with: any error a task's own failures convert into (the `kiln` binary's
    /// jobs use `anyhow::Error`).
    type Error: From<TaskError>;

    /// Run on `task`.
    ///
    /// # Errors
    ///
    /// Whatever the job's work fails with.
    fn run<T: Task>(self, task: T) -> std::result::Result<Self::Output, Self::Error>;
}

/// Whether a larger or smaller value of a metric is better.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    /// Smaller is better (losses, perplexity).
    Minimize,
    /// Larger is better (accuracy, F1).
    Maximize,
}

/// Options of `kiln sample` / `kiln predict` that every task may read.
#[derive(Debug, Clone, Default)]
pub struct GenerateOptions {
    /// A prompt or an input text.
    pub prompt: Option<String>,
    /// How many tokens or items to generate.
    pub max_tokens: usize,
    /// Sampling temperature (1.0: the model's distribution).
    pub temperature: f64,
    /// Seed of the sampler.
    pub seed: u64,
    /// Where to write files the task generates (pictures), if it writes any: the run directory by
    /// default.
    pub out_dir: Option<std::path::PathBuf>,
}

/// One trainable task: a model, its data, its loss and its evaluation.
///
/// `kiln train` calls [`Task::build_model`] (or loads a checkpoint into it), then for each step
/// [`Task::before_train_step`], [`Task::train_batch`] and [`Task::step`], the optimiser, and
/// [`Task::on_optimizer_step`];
/// every evaluation interval [`Task::evaluate`] on a non-autodiff copy of the model.
pub trait Task: Sized + Send + Sync + 'static {
    /// The model trained.
    type Model: Module + burn::module::ModuleDisplay + Clone + core::fmt::Debug + Send + 'static;
    /// One training batch, on the device.
    type Batch;

    /// A human name for logs, e.g. `"char-level language model"`.
    fn describe(&self) -> String;

    /// Build a freshly initialised model (or one loaded from pretrained weights).
    ///
    /// # Errors
    ///
    /// Pretrained weights the model starts from cannot be read.
    fn build_model(&self, device: &Device) -> Result<Self::Model>;

    /// Number of training examples, if the task has a finite training set (epochs then mean
    /// something); `None` for tasks that sample windows.
    fn train_len(&self) -> Option<usize>;

    /// The training batch of `step` (0-based), a pure function of `(seed, step, batch_size)`.
    fn train_batch(&self, step: usize, batch_size: usize, seed: u64, device: &Device) -> Self::Batch;

    /// Forward pass and loss of one batch in training mode.
    fn step(&self, model: &Self::Model, batch: Self::Batch) -> StepOutput;

    /// Called before each training step, with its 0-based index, before its batches run forward.
    /// (The trainer itself redraws Performer features here, in any model: `kiln_layers::redraw_features`.)
    fn before_train_step(&self, _model: &mut Self::Model, _step: usize) {}

    /// Called after each optimiser step with the new step count (weight clipping, power iteration).
    fn on_optimizer_step(&self, _model: &mut Self::Model, _step: usize) {}

    /// Evaluate on a split; no metrics where the data has no such split. The first metric is the one
    /// early stopping and "best checkpoint" use unless configured.
    fn evaluate(&self, model: &Self::Model, split: Split, device: &Device) -> Result<Metrics>;

    /// Whether larger or smaller is better for metric `name`.
    fn goal(&self, name: &str) -> Goal {
        if name.contains("loss") || name.contains("perplexity") { Goal::Minimize } else { Goal::Maximize }
    }

    /// Called after each periodic evaluation during training, with the evaluated (gradient-free)
    /// model and the step: a task may write pictures of its progress (into the run directory it was
    /// given in [`save_artifacts`](Self::save_artifacts)).
    ///
    /// # Errors
    ///
    /// A file cannot be written.
    fn after_evaluation(&self, _model: &Self::Model, _step: usize, _device: &Device) -> Result<()> {
        Ok(())
    }

    /// Metrics of the validation split to draw together on one plot (`plots/<name>.png`), beside
    /// the one plot per metric.
    fn metric_groups(&self) -> Vec<(String, Vec<String>)> {
        vec![]
    }

    /// Write what is needed to rebuild this task without the training data (a vocabulary, label
    /// names) into the run directory.
    fn save_artifacts(&self, _run_dir: &Path) -> Result<()> {
        Ok(())
    }

    /// `kiln sample` / `kiln predict`: produce text from the trained model.
    fn generate(&self, _model: &Self::Model, _options: &GenerateOptions, _device: &Device) -> Result<String> {
        crate::bail!("{} does not generate or predict", self.describe())
    }

    /// Label each of `texts` (`kiln predict`), one line of output per text. The default runs
    /// [`generate`](Self::generate) on each text in turn; tasks that can batch override it.
    ///
    /// # Errors
    ///
    /// As [`generate`](Self::generate), with the input's number and text.
    fn predict(&self, model: &Self::Model, texts: &[String], device: &Device) -> Result<Vec<String>> {
        texts
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let options = GenerateOptions {
                    prompt: Some(t.clone()),
                    max_tokens: 0,
                    temperature: 1.0,
                    seed: 0,
                    out_dir: None,
                };
                self.generate(model, &options, device).with_context(|| format!("input {} `{t}`", i + 1))
            })
            .collect()
    }

    /// Label each line of a `kiln predict --file`, read as already cut into the task's tokens (a NER
    /// run of words splits it at whitespace only). The default is [`predict`](Self::predict).
    ///
    /// # Errors
    ///
    /// As [`predict`](Self::predict).
    fn predict_tokenised(&self, model: &Self::Model, lines: &[String], device: &Device) -> Result<Vec<String>> {
        self.predict(model, lines, device)
    }

    /// `kiln predict --file F --format conll`: label a column file (`text`, read from `source`) and
    /// return it with a predicted-tag column. Only token labelling tasks (NER) have one.
    ///
    /// # Errors
    ///
    /// The task labels no tokens, or the file is not a column file.
    fn predict_columns(
        &self,
        _model: &Self::Model,
        _text: &str,
        source: &Path,
        _device: &Device,
    ) -> Result<Vec<String>> {
        crate::bail!(
            "{}: --format conll needs a model that tags tokens (NER); {} does not",
            source.display(),
            self.describe()
        )
    }
}

/// [`Task::predict`] of a task that only draws pictures (`kiln sample`): an error saying so,
/// rather than running [`Task::generate`] without a directory to write into.
///
/// # Errors
///
/// Always.
pub fn pictures_only(describe: &str) -> Result<Vec<String>> {
    crate::bail!("{describe} takes no inputs to predict; `kiln sample RUN_DIR` draws its pictures")
}

/// A tensor's values as `f32`, row-major (any float element type is converted).
///
/// # Errors
///
/// The tensor's data cannot be read back.
pub fn to_f32_vec<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().map_err(|e| TaskError::backend("reading a tensor", e))
}

/// A reproducible generator for `(seed, stream, index)`: the same three numbers always give the
/// same stream, so batches do not depend on how many were drawn before (resume safety).
pub fn step_rng(seed: u64, stream: u64, index: u64) -> StdRng {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    StdRng::seed_from_u64(z ^ (z >> 31))
}

/// Which examples make the batch of a given step: each epoch is a fresh permutation of the
/// training set drawn from `(seed, epoch)`, cut into batches; the last partial batch of an epoch
/// is dropped so that every batch has the same size.
#[derive(Debug, Clone)]
pub struct EpochSampler {
    len: usize,
    batch_size: usize,
    seed: u64,
}

impl EpochSampler {
    /// A sampler over `len` examples.
    ///
    /// # Panics
    ///
    /// If `batch_size` is zero or larger than `len`.
    pub fn new(len: usize, batch_size: usize, seed: u64) -> Self {
        assert!(batch_size > 0 && batch_size <= len, "batch size {batch_size} must be in 1..={len}");
        Self { len, batch_size, seed }
    }

    /// Batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        self.len / self.batch_size
    }

    /// The example indices of the batch at `step`.
    pub fn batch(&self, step: usize) -> Vec<usize> {
        let per_epoch = self.batches_per_epoch();
        let (epoch, within) = (step / per_epoch, step % per_epoch);
        let mut order: Vec<usize> = (0..self.len).collect();
        order.shuffle(&mut step_rng(self.seed, 1, epoch as u64));
        order[within * self.batch_size..(within + 1) * self.batch_size].to_vec()
    }

    /// The example indices of the batch at `step`, examples grouped by length (Hugging Face's
    /// `group_by_length`): the epoch's permutation (the same as [`Self::batch`]'s) is cut into groups
    /// of [`LENGTH_GROUP`] batches, each group is sorted by `lengths` (longest first, ties in
    /// permutation order) and cut into batches, and the epoch's batches are shuffled. Every example
    /// still appears at most once per epoch, but a batch holds examples of similar length, so padded
    /// batches waste less work.
    ///
    /// # Panics
    ///
    /// If `lengths` does not have one entry per example.
    pub fn batch_grouped_by_length(&self, step: usize, lengths: &[usize]) -> Vec<usize> {
        assert_eq!(lengths.len(), self.len, "one length per example");
        let per_epoch = self.batches_per_epoch();
        let (epoch, within) = (step / per_epoch, step % per_epoch);
        let mut order: Vec<usize> = (0..self.len).collect();
        order.shuffle(&mut step_rng(self.seed, 1, epoch as u64));
        order.truncate(per_epoch * self.batch_size);
        for group in order.chunks_mut(LENGTH_GROUP * self.batch_size) {
            group.sort_by_key(|&i| std::cmp::Reverse(lengths[i]));
        }
        let mut batches: Vec<usize> = (0..per_epoch).collect();
        batches.shuffle(&mut step_rng(self.seed, 2, epoch as u64));
        let b = batches[within];
        order[b * self.batch_size..(b + 1) * self.batch_size].to_vec()
    }
}

/// Batches per length-sorted group in [`EpochSampler::batch_grouped_by_length`] (Hugging Face's
/// `LengthGroupedSampler` uses 50).
pub const LENGTH_GROUP: usize = 50;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_are_permutations_and_reproducible() {
        let s = EpochSampler::new(10, 3, 7);
        assert_eq!(s.batches_per_epoch(), 3);
        let epoch0: Vec<usize> = (0..3).flat_map(|i| s.batch(i)).collect();
        let mut sorted = epoch0.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 9, "no example twice in an epoch");
        assert_eq!(s.batch(4), EpochSampler::new(10, 3, 7).batch(4));
        assert_ne!(
            (0..3).flat_map(|i| s.batch(i)).collect::<Vec<_>>(),
            (3..6).flat_map(|i| s.batch(i)).collect::<Vec<_>>()
        );
    }

    /// Grouped by length: the same examples per epoch as the plain sampler, each at most once,
    /// reproducible, different across epochs, and batches of similar lengths (the padding a batch
    /// pays, `size · max − sum`, falls several-fold against random batches).
    #[test]
    fn length_grouped_batches_cover_the_epoch_with_little_padding() {
        let (len, size) = (5_000, 16);
        let mut rng = step_rng(9, 0, 0);
        let lengths: Vec<usize> = (0..len).map(|_| rand::RngExt::random_range(&mut rng, 1..200)).collect();
        let s = EpochSampler::new(len, size, 4);
        let per_epoch = s.batches_per_epoch();
        let epoch = |e: usize, grouped: bool| -> Vec<Vec<usize>> {
            (e * per_epoch..(e + 1) * per_epoch)
                .map(|i| if grouped { s.batch_grouped_by_length(i, &lengths) } else { s.batch(i) })
                .collect()
        };
        let (plain, grouped) = (epoch(0, false), epoch(0, true));
        let sorted = |b: &[Vec<usize>]| {
            let mut v: Vec<usize> = b.concat();
            v.sort_unstable();
            v
        };
        assert_eq!(sorted(&grouped), sorted(&plain), "the same examples, each once");
        assert_eq!(sorted(&grouped).windows(2).filter(|w| w[0] == w[1]).count(), 0);
        assert_eq!(
            s.batch_grouped_by_length(7, &lengths),
            EpochSampler::new(len, size, 4).batch_grouped_by_length(7, &lengths)
        );
        assert_ne!(grouped, epoch(1, true), "another epoch, other batches");
        let padding = |batches: &[Vec<usize>]| -> usize {
            batches
                .iter()
                .map(|b| {
                    let max = b.iter().map(|&i| lengths[i]).max().unwrap();
                    b.iter().map(|&i| max - lengths[i]).sum::<usize>()
                })
                .sum()
        };
        let (p, g) = (padding(&plain), padding(&grouped));
        // Random batches of 16 lengths uniform on 1..200 pad about 0.9 · 100 per example; groups of
        // 800 sorted leave about 200/800 · 16/2 = 2 per example.
        assert!(g * 10 < p, "grouped padding {g} against random {p}");
        // The batch order is shuffled: not longest-first through the epoch.
        let firsts: Vec<usize> = grouped.iter().map(|b| lengths[b[0]]).collect();
        assert!(firsts.windows(2).any(|w| w[0] < w[1]) && firsts.windows(2).any(|w| w[0] > w[1]));
    }
}
