//! The run configuration: one TOML file with `[model]`, `[data]`, `[train]`, `[device]` and
//! `[output]`, strict (unknown keys and wrong types are errors naming the file, line and key),
//! overridable with `--set key=value`, and saved resolved next to the checkpoints.

use std::path::{Path, PathBuf};

use std::marker::PhantomData;

use anyhow::{Context, bail};
use kiln_data::DataConfig;
use kiln_task::StepShape;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

pub use crate::models::ModelConfig;

/// A whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// What to train (`kind` picks the model).
    pub model: ModelConfig,
    /// What to train it on (`kind` picks the dataset).
    pub data: DataConfig,
    /// How to train.
    pub train: TrainConfig,
    /// Where to run.
    #[serde(default)]
    pub device: DeviceConfig,
    /// Where results go.
    pub output: OutputConfig,
}

/// Where relative data paths point: `$KILN_DATA_DIR` if set, else the current directory; made
/// absolute so that the resolved config saved with a run works from any directory.
pub fn data_dir() -> PathBuf {
    let dir = match std::env::var_os("KILN_DATA_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from("."),
    };
    std::path::absolute(&dir).unwrap_or(dir)
}

/// `[train]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainConfig {
    /// Examples per micro-batch.
    pub batch_size: usize,
    /// Optimiser steps to run (exactly one of `steps` and `epochs`).
    #[serde(default)]
    pub steps: Option<usize>,
    /// Passes over the training set (tasks with a finite training set only).
    #[serde(default)]
    pub epochs: Option<usize>,
    /// The optimiser and its learning rate.
    pub optimizer: OptimizerConfig,
    /// Learning-rate schedule.
    #[serde(default)]
    pub schedule: ScheduleConfig,
    /// Clip the global gradient norm to this value.
    #[serde(default)]
    pub grad_clip: Option<f64>,
    /// Micro-batches per optimiser step.
    #[serde(default = "one")]
    pub grad_accum: usize,
    /// Evaluate every this many steps (and at the end).
    pub eval_every: usize,
    /// Checkpoint every this many steps (and at the end).
    #[serde(default)]
    pub checkpoint_every: Option<usize>,
    /// Periodic checkpoints to keep (the best one is always kept).
    #[serde(default = "three")]
    pub keep_checkpoints: usize,
    /// Log training loss every this many steps.
    #[serde(default = "ten")]
    pub log_every: usize,
    /// Seed of initialisation, batches and dropout.
    #[serde(default)]
    pub seed: u64,
    /// Metric that picks the best checkpoint and drives early stopping (default: the task's first).
    #[serde(default)]
    pub metric: Option<String>,
    /// Stop when the metric has not improved for `patience` evaluations.
    #[serde(default)]
    pub early_stopping: Option<EarlyStoppingConfig>,
    /// Evaluate, checkpoint and predict with an exponential moving average of the weights.
    #[serde(default)]
    pub ema: Option<crate::ema::EmaConfig>,
}

fn one() -> usize {
    1
}
fn three() -> usize {
    3
}
fn ten() -> usize {
    10
}

/// `[train.early_stopping]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EarlyStoppingConfig {
    /// Evaluations without improvement before stopping.
    pub patience: usize,
    /// Smallest change that counts as an improvement.
    #[serde(default)]
    pub min_delta: f64,
}

/// `[train.optimizer]`: `kind` and its hyperparameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum OptimizerConfig {
    /// AdamW (Loshchilov & Hutter 2019): decoupled weight decay.
    Adamw {
        /// Peak learning rate.
        lr: f64,
        /// `(β1, β2)`.
        #[serde(default = "default_betas")]
        betas: (f64, f64),
        /// `ε`.
        #[serde(default = "default_adam_eps")]
        eps: f64,
        /// Decoupled weight decay.
        #[serde(default = "default_weight_decay")]
        weight_decay: f64,
    },
    /// Adam (Kingma & Ba 2015), optional L2 penalty.
    Adam {
        /// Peak learning rate.
        lr: f64,
        /// `(β1, β2)`.
        #[serde(default = "default_betas")]
        betas: (f64, f64),
        /// `ε`.
        #[serde(default = "default_adam_eps")]
        eps: f64,
        /// L2 penalty added to the gradient.
        #[serde(default)]
        weight_decay: f64,
    },
    /// SGD with optional momentum (PyTorch's convention: no dampening).
    Sgd {
        /// Peak learning rate.
        lr: f64,
        /// Momentum (0: none).
        #[serde(default)]
        momentum: f64,
        /// Nesterov momentum.
        #[serde(default)]
        nesterov: bool,
        /// L2 penalty added to the gradient.
        #[serde(default)]
        weight_decay: f64,
    },
    /// RMSProp (Hinton's lecture 6e) with PyTorch's defaults (`alpha` 0.99, `eps` 1e-8, no momentum):
    /// the original WGAN's optimiser.
    Rmsprop {
        /// Peak learning rate.
        lr: f64,
        /// Smoothing constant of the squared-gradient average.
        #[serde(default = "default_rms_alpha")]
        alpha: f64,
        /// `ε`.
        #[serde(default = "default_adam_eps")]
        eps: f64,
        /// Momentum (0: none).
        #[serde(default)]
        momentum: f64,
    },
}

fn default_rms_alpha() -> f64 {
    0.99
}

fn default_betas() -> (f64, f64) {
    (0.9, 0.999)
}
fn default_adam_eps() -> f64 {
    1e-8
}
fn default_weight_decay() -> f64 {
    0.01
}

impl OptimizerConfig {
    /// Peak learning rate.
    pub fn lr(&self) -> f64 {
        match self {
            Self::Adamw { lr, .. } | Self::Adam { lr, .. } | Self::Sgd { lr, .. } | Self::Rmsprop { lr, .. } => *lr,
        }
    }
}

/// `[train.schedule]`: linear warm-up from 0, then constant, linear decay or cosine decay to `min_lr`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScheduleConfig {
    /// `"constant"`, `"linear"` or `"cosine"`.
    #[serde(default)]
    pub kind: ScheduleKind,
    /// Steps of linear warm-up.
    #[serde(default)]
    pub warmup_steps: usize,
    /// Learning rate at the end of the decay.
    #[serde(default)]
    pub min_lr: f64,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        Self { kind: ScheduleKind::Constant, warmup_steps: 0, min_lr: 0.0 }
    }
}

/// Decay shapes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// The peak rate after warm-up.
    #[default]
    Constant,
    /// Linear decay to `min_lr` at the last step.
    Linear,
    /// Half-cosine decay to `min_lr` at the last step.
    Cosine,
}

impl ScheduleConfig {
    /// The learning rate of optimiser step `step` (0-based) of `total`.
    pub fn lr(&self, peak: f64, step: usize, total: usize) -> f64 {
        if step < self.warmup_steps {
            return peak * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = total.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
        match self.kind {
            ScheduleKind::Constant => peak,
            ScheduleKind::Linear => peak + (self.min_lr - peak) * progress,
            ScheduleKind::Cosine => {
                self.min_lr + 0.5 * (peak - self.min_lr) * (1.0 + (std::f64::consts::PI * progress).cos())
            }
        }
    }
}

/// `[device]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// `"flex"` (default), `"ndarray"`, `"wgpu"` (default GPU), `"wgpu:N"` (N-th discrete GPU), `"cpu"` (wgpu's CPU adapter).
    #[serde(default = "default_backend")]
    pub backend: String,
    /// Data parallelism: train on every device listed (backend names as above; the first also
    /// evaluates and holds the optimizer), with burn-train's multi-device step. `batch_size` is
    /// per device, as in PyTorch's DDP. Replaces `backend` for `kiln train`. Default: none.
    /// Also `remote:ws://HOST:PORT` or `remote:iroh:ENDPOINT_ID@IP:PORT`: a `kiln serve` worker
    /// on another machine (feature `distributed`, docs/distributed.md).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<String>,
    /// The file whose first line is the token the remote workers in `devices` were started with
    /// (`kiln serve --token-file`). Default: none (workers on 127.0.0.1 without a token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_file: Option<PathBuf>,
    /// With remote workers: end the run with an error when a step's micro-batches, an update, an
    /// evaluation or a checkpoint has waited this many seconds (a worker that froze or whose
    /// network went silent). Must cover the slowest evaluation. Default 300.
    #[serde(default = "default_worker_timeout", skip_serializing_if = "is_default_worker_timeout")]
    pub worker_timeout_s: f64,
}

fn default_worker_timeout() -> f64 {
    300.0
}

fn is_default_worker_timeout(v: &f64) -> bool {
    *v == default_worker_timeout()
}

fn default_backend() -> String {
    "flex".into()
}

impl DeviceConfig {
    /// The device a run evaluates, predicts and samples on: the first of `devices`, else `backend`.
    pub fn main(&self) -> &str {
        self.devices.first().unwrap_or(&self.backend)
    }

    /// The names of the devices `kiln train` trains on (`devices` if several, else the main one),
    /// the main one first.
    pub fn training_names(&self) -> Vec<String> {
        if self.devices.len() > 1 { self.devices.clone() } else { vec![self.main().to_string()] }
    }

    /// Whether any device of the run is a remote worker.
    pub fn any_remote(&self) -> bool {
        std::iter::once(&self.backend).chain(&self.devices).any(|d| crate::remote::address::is_remote(d))
    }

    /// Open the device `name` (one of these or a `--device`), presenting `token_file` to a remote
    /// worker.
    pub fn open(&self, name: &str) -> anyhow::Result<burn::prelude::Device> {
        crate::backend::open(name, self.token_file.as_deref())
    }
}

impl Default for DeviceConfig {
    fn default() -> Self {
        Self {
            backend: default_backend(),
            devices: Vec::new(),
            token_file: None,
            worker_timeout_s: default_worker_timeout(),
        }
    }
}

/// `[output]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputConfig {
    /// Parent folder of the runs: each run gets `<dir>/run-NNN`.
    pub dir: PathBuf,
}

impl RunConfig {
    /// Read, override and validate a config file. Errors name the file, the line and the key.
    pub fn load(path: &Path, overrides: &[String]) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        Self::parse(&text, &path.display().to_string(), overrides)
    }

    /// Parse TOML text (named `origin` in errors).
    pub fn parse(text: &str, origin: &str, overrides: &[String]) -> anyhow::Result<Self> {
        let mut table: toml::Table = toml::from_str(text).map_err(|e| toml_error(origin, text, &e))?;
        let (text, origin) = if overrides.is_empty() {
            (text.to_string(), origin.to_string())
        } else {
            for o in overrides {
                apply_override(&mut table, o)?;
            }
            (toml::to_string(&table)?, format!("{origin} (with --set {})", overrides.join(" ")))
        };
        let config = parse_sections(&text, &origin)?;
        config.validate().with_context(|| format!("{origin}: invalid configuration"))?;
        Ok(config)
    }

    /// Checks that need more than one key: kinds that go together, sizes and rates.
    pub fn validate(&self) -> anyhow::Result<()> {
        let (model, data) = (&self.model, &self.data);
        if !model.data_kinds().contains(&data.kind()) {
            return Err(kiln_task::wrong_data(model.kind(), model.data_kinds(), data).into());
        }
        let shape = StepShape { grad_accum: self.train.grad_accum, devices: self.device.devices.len().max(1) };
        model.validate(shape)?;
        data.validate()?;
        model.check_data(data)?;
        crate::backend::known(&self.device.backend).context("device.backend")?;
        for (i, name) in self.device.devices.iter().enumerate() {
            crate::backend::known(name).with_context(|| format!("device.devices[{i}]"))?;
        }
        let timeout = self.device.worker_timeout_s;
        if !(timeout.is_finite() && timeout > 0.0) {
            bail!("device.worker_timeout_s must be a positive number of seconds, not {timeout}");
        }
        let t = &self.train;
        match (t.steps, t.epochs) {
            (Some(0), _) | (_, Some(0)) => bail!("train.steps and train.epochs must be at least 1"),
            (Some(_), Some(_)) => bail!(
                "give train.steps or train.epochs, not both (on the command line, `--set train.epochs=` removes a key)"
            ),
            (None, None) => bail!("give train.steps or train.epochs"),
            _ => {}
        }
        for (key, v) in [
            ("train.batch_size", t.batch_size),
            ("train.grad_accum", t.grad_accum),
            ("train.eval_every", t.eval_every),
            ("train.log_every", t.log_every),
        ] {
            if v == 0 {
                bail!("{key} must be at least 1");
            }
        }
        if t.checkpoint_every == Some(0) {
            bail!("train.checkpoint_every must be at least 1");
        }
        let lr = t.optimizer.lr();
        if !(lr.is_finite() && lr > 0.0) {
            bail!("train.optimizer.lr must be a positive number, got {lr}");
        }
        if let OptimizerConfig::Adamw { betas, .. } | OptimizerConfig::Adam { betas, .. } = &t.optimizer
            && !((0.0..1.0).contains(&betas.0) && (0.0..1.0).contains(&betas.1))
        {
            bail!("train.optimizer.betas must be in [0, 1), got ({}, {})", betas.0, betas.1);
        }
        let (weight_decay, eps, momentum) = match t.optimizer {
            OptimizerConfig::Adamw { eps, weight_decay, .. } | OptimizerConfig::Adam { eps, weight_decay, .. } => {
                (weight_decay, eps, 0.0)
            }
            OptimizerConfig::Sgd { momentum, weight_decay, .. } => (weight_decay, 1.0, momentum),
            OptimizerConfig::Rmsprop { alpha, eps, momentum, .. } => {
                if !(0.0..1.0).contains(&alpha) {
                    bail!("train.optimizer.alpha must be in [0, 1), got {alpha}");
                }
                (0.0, eps, momentum)
            }
        };
        if !(weight_decay.is_finite() && weight_decay >= 0.0) {
            bail!("train.optimizer.weight_decay must be a non-negative number, got {weight_decay}");
        }
        if !(eps.is_finite() && eps > 0.0) {
            bail!("train.optimizer.eps must be a positive number, got {eps}");
        }
        if !(0.0..1.0).contains(&momentum) {
            bail!("train.optimizer.momentum must be in [0, 1), got {momentum}");
        }
        if let Some(c) = t.grad_clip
            && !(c.is_finite() && c > 0.0)
        {
            bail!("train.grad_clip must be a positive number, got {c}");
        }
        if !(t.schedule.min_lr >= 0.0 && t.schedule.min_lr <= lr) {
            bail!("train.schedule.min_lr must be in [0, lr = {lr}], got {}", t.schedule.min_lr);
        }
        if let Some(e) = &t.early_stopping
            && e.patience == 0
        {
            bail!("train.early_stopping.patience must be at least 1");
        }
        if let Some(e) = &t.ema {
            e.validate()?;
        }
        Ok(())
    }
}

/// Deserialise with exact line numbers. `[model]` and `[data]` are tagged by `kind`; serde buffers
/// internally tagged enums, which loses the position of an error inside them, so when both tables
/// are written as `[model]` / `[data]` sections their `kind` line is read first and blanked, and the
/// section is deserialised straight into the type of that kind.
fn parse_sections(text: &str, origin: &str) -> anyhow::Result<RunConfig> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Rest {
        #[allow(dead_code)]
        model: serde::de::IgnoredAny,
        #[allow(dead_code)]
        data: serde::de::IgnoredAny,
        train: TrainConfig,
        #[serde(default)]
        device: DeviceConfig,
        output: OutputConfig,
    }
    let (Some((model_line, model_kind)), Some((data_line, data_kind))) =
        (kind_line(text, "model"), kind_line(text, "data"))
    else {
        // Inline or dotted forms: the tagged enums, with less precise positions.
        return toml::from_str(text).map_err(|e| toml_error(origin, text, &e));
    };
    let rest: Rest = toml::from_str(text).map_err(|e| toml_error(origin, text, &e))?;
    let lines: Vec<&str> = text.lines().collect();
    let untagged: String = lines
        .iter()
        .enumerate()
        .map(|(i, l)| if i == model_line || i == data_line { "" } else { l })
        .collect::<Vec<_>>()
        .join("\n");
    let unknown = |what: &str, kind: &str, line: usize, known: &[&str]| {
        anyhow::anyhow!(
            "{origin}: line {}: unknown {what} kind `{kind}`, expected one of {}",
            line + 1,
            known.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")
        )
    };
    if !ModelConfig::KINDS.contains(&model_kind.as_str()) {
        return Err(unknown("model", &model_kind, model_line, ModelConfig::KINDS));
    }
    if !DataConfig::KINDS.contains(&data_kind.as_str()) {
        return Err(unknown("data", &data_kind, data_line, &DataConfig::KINDS));
    }
    let model = section::<ModelConfig>(&untagged, origin, &model_kind)?;
    let data = section::<DataConfig>(&untagged, origin, &data_kind)?;
    Ok(RunConfig { model, data, train: rest.train, device: rest.device, output: rest.output })
}

/// An enum whose variant a `kind` key picks: `[model]` and `[data]`.
trait Kinded: Sized {
    /// The section's name.
    const SECTION: &'static str;
    /// The variant of `kind` from the section's other keys.
    fn from_kind<'de, D: Deserializer<'de>>(kind: &str, keys: D) -> Result<Option<Self>, D::Error>;
}

impl Kinded for ModelConfig {
    const SECTION: &'static str = "model";
    fn from_kind<'de, D: Deserializer<'de>>(kind: &str, keys: D) -> Result<Option<Self>, D::Error> {
        ModelConfig::deserialize_kind(kind, keys)
    }
}

impl Kinded for DataConfig {
    const SECTION: &'static str = "data";
    fn from_kind<'de, D: Deserializer<'de>>(kind: &str, keys: D) -> Result<Option<Self>, D::Error> {
        DataConfig::deserialize_kind(kind, keys)
    }
}

/// The `T::SECTION` table of the document `text` (its `kind` line blanked) as the variant of `kind`,
/// read by TOML's own deserialiser so that an error inside it names its line.
fn section<T: Kinded>(text: &str, origin: &str, kind: &str) -> anyhow::Result<T> {
    let document = toml::de::Deserializer::parse(text).map_err(|e| toml_error(origin, text, &e))?;
    let found = Pick::<T> { kind, whole: true, section: PhantomData }
        .deserialize(document)
        .map_err(|e| toml_error(origin, text, &e))?;
    found.with_context(|| format!("{origin}: no [{}] section", T::SECTION))
}

/// Reads the `T::SECTION` table as the variant of `kind`: from the whole document (`whole`), of
/// which only that section is read, or from the section itself.
struct Pick<'k, T> {
    kind: &'k str,
    whole: bool,
    section: PhantomData<T>,
}

impl<'de, T: Kinded> DeserializeSeed<'de> for Pick<'_, T> {
    type Value = Option<T>;
    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Option<T>, D::Error> {
        if self.whole { deserializer.deserialize_map(self) } else { T::from_kind(self.kind, deserializer) }
    }
}

impl<'de, T: Kinded> Visitor<'de> for Pick<'_, T> {
    type Value = Option<T>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(f, "a config with a [{}] section", T::SECTION)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<T>, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<String>()? {
            if key == T::SECTION {
                found = map.next_value_seed(Pick::<T> { whole: false, ..self })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// The 0-based line and value of `kind = "..."` directly in the `[table]` section, if written so.
fn kind_line(text: &str, table: &str) -> Option<(usize, String)> {
    let mut current = String::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            current = t.trim_start_matches('[').split(']').next().unwrap_or("").trim().to_string();
            continue;
        }
        if current == table
            && let Some(rest) = t.strip_prefix("kind")
            && let Some(value) = rest.trim_start().strip_prefix('=')
        {
            let parsed: toml::Table = toml::from_str(&format!("v = {}", value.trim())).ok()?;
            return parsed.get("v")?.as_str().map(|k| (i, k.to_string()));
        }
    }
    None
}

/// `file: line L: message` from a TOML error.
fn toml_error(origin: &str, text: &str, e: &toml::de::Error) -> anyhow::Error {
    let message = e.message().trim();
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            let snippet = text.lines().nth(line - 1).unwrap_or("").trim();
            anyhow::anyhow!("{origin}: line {line}: {message}\n    {line} | {snippet}")
        }
        None => anyhow::anyhow!("{origin}: {message}"),
    }
}

/// Apply `a.b.c=value`: the value is read as TOML (`4`, `1e-3`, `true`, `"x"`, `[1, 2]`), or taken as
/// a string if it does not parse; an empty value removes the key (`--set train.epochs=`). Only keys whose parent tables exist can be set, so a typo in a
/// table name is an error here and a typo in a leaf key is an error when the result is read.
pub fn apply_override(table: &mut toml::Table, assignment: &str) -> anyhow::Result<()> {
    let (key, value) = assignment
        .split_once('=')
        .with_context(|| format!("--set {assignment}: expected key=value, e.g. --set train.steps=100"))?;
    let key = key.trim();
    let remove = value.trim().is_empty();
    let value: toml::Value = match toml::from_str::<toml::Table>(&format!("v = {}", value.trim())) {
        Ok(mut t) => t.remove("v").expect("parsed key"),
        Err(_) => toml::Value::String(value.trim().to_string()),
    };
    let parts: Vec<&str> = key.split('.').collect();
    if parts.iter().any(|p| p.is_empty()) {
        bail!("--set {assignment}: `{key}` is not a dotted key path");
    }
    let mut current = table;
    for (i, part) in parts[..parts.len() - 1].iter().enumerate() {
        let prefix = parts[..=i].join(".");
        current = match current.entry(part.to_string()).or_insert_with(|| toml::Value::Table(toml::Table::new())) {
            toml::Value::Table(t) => t,
            _ => bail!("--set {assignment}: `{prefix}` is a value, not a table"),
        };
    }
    let leaf = parts[parts.len() - 1].to_string();
    if remove {
        if current.remove(&leaf).is_none() {
            bail!("--set {assignment}: there is no `{key}` to remove");
        }
    } else {
        current.insert(leaf, value);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-derived: peak 1.0, 10 warm-up steps, 100 decay steps (110 in all) down to 0.1.
    #[test]
    fn schedules_by_hand() {
        let s = |kind| ScheduleConfig { kind, warmup_steps: 10, min_lr: 0.1 };
        for kind in [ScheduleKind::Constant, ScheduleKind::Linear, ScheduleKind::Cosine] {
            assert!((s(kind).lr(1.0, 0, 110) - 0.1).abs() < 1e-12, "warm-up starts at peak/10");
            assert!((s(kind).lr(1.0, 9, 110) - 1.0).abs() < 1e-12, "warm-up ends at the peak");
        }
        assert_eq!(s(ScheduleKind::Constant).lr(1.0, 60, 110), 1.0);
        // Half-way through the decay (step 60): linear 0.55; cosine 0.1 + 0.45 (1 + cos(π/2)) = 0.55.
        assert!((s(ScheduleKind::Linear).lr(1.0, 60, 110) - 0.55).abs() < 1e-12);
        assert!((s(ScheduleKind::Cosine).lr(1.0, 60, 110) - 0.55).abs() < 1e-12);
        // A quarter of the way (step 35): linear 1 − 0.9/4 = 0.775; cosine 0.1 + 0.45 (1 + cos(π/4)).
        assert!((s(ScheduleKind::Linear).lr(1.0, 35, 110) - 0.775).abs() < 1e-12);
        let cos = 0.1 + 0.45 * (1.0 + (std::f64::consts::PI / 4.0).cos());
        assert!((s(ScheduleKind::Cosine).lr(1.0, 35, 110) - cos).abs() < 1e-12);
        // The end reaches min_lr.
        assert!((s(ScheduleKind::Cosine).lr(1.0, 110, 110) - 0.1).abs() < 1e-12);
        assert!((s(ScheduleKind::Linear).lr(1.0, 110, 110) - 0.1).abs() < 1e-12);
    }

    #[test]
    fn overrides_are_typed_and_can_remove_keys() {
        let mut t: toml::Table = toml::from_str("[train]\nsteps = 10\nepochs = 2\n[model]\nkind = \"vit\"").unwrap();
        apply_override(&mut t, "train.steps=100").unwrap();
        apply_override(&mut t, "train.optimizer.lr=1e-3").unwrap();
        apply_override(&mut t, "model.kind=classifier").unwrap();
        apply_override(&mut t, "train.epochs=").unwrap();
        assert_eq!(t["train"]["steps"].as_integer(), Some(100));
        assert_eq!(t["train"]["optimizer"]["lr"].as_float(), Some(1e-3));
        assert_eq!(t["model"]["kind"].as_str(), Some("classifier"));
        assert!(t["train"].get("epochs").is_none());
        assert!(apply_override(&mut t, "train.steps").unwrap_err().to_string().contains("key=value"));
        assert!(apply_override(&mut t, "train.steps.x=1").unwrap_err().to_string().contains("is a value"));
        assert!(apply_override(&mut t, "train.nothing=").unwrap_err().to_string().contains("no `train.nothing`"));
    }

    #[test]
    fn kind_lines_are_found_in_their_section_only() {
        let text =
            "[train]\nkind = \"x\"\n[model]\n# a comment\nkind = \"vit\" # trailing\n[model.encoder]\nkind = \"y\"\n";
        assert_eq!(kind_line(text, "model"), Some((4, "vit".into())));
        assert_eq!(kind_line(text, "data"), None);
        assert_eq!(kind_line("model = { kind = \"vit\" }", "model"), None);
    }
}
