//! The commands besides `train` that act on a config or a run directory: `eval`, `predict`,
//! `sample` and `check`, as jobs on the task a config describes, and what `train` needs to set up
//! a run directory.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use burn::module::Module;
use burn::prelude::*;
use kiln_task::run_dir;
use kiln_task::{GenerateOptions, Split, Task, TaskJob};

use crate::config::{self, RunConfig};

/// The resolved config, with a header saying where it came from.
pub fn resolved_toml(c: &RunConfig, source: &Path) -> anyhow::Result<String> {
    Ok(format!("# Resolved from {} by kiln {}\n{}", source.display(), env!("CARGO_PKG_VERSION"), toml::to_string(c)?))
}

/// A run's saved config with `--set` overrides applied for this command (not written back); relative
/// paths an override brings in resolve as in `train` (against `$KILN_DATA_DIR`).
pub fn run_config(run_dir: &Path, overrides: &[String]) -> anyhow::Result<RunConfig> {
    let path = run_dir.join("config.toml");
    anyhow::ensure!(path.is_file(), "{}: not a run directory (no config.toml)", run_dir.display());
    let mut config = RunConfig::load(&path, overrides)?;
    config.data.resolve_paths(&config::data_dir());
    config.model.resolve_paths();
    Ok(config)
}

/// `<parent>/run-NNN`, the first number not taken.
pub fn new_run_dir(parent: &Path) -> anyhow::Result<PathBuf> {
    std::fs::create_dir_all(parent).with_context(|| format!("creating output.dir {}", parent.display()))?;
    for i in 1..100_000 {
        let dir = parent.join(format!("run-{i:03}"));
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
        }
    }
    bail!("{}: no free run-NNN name", parent.display())
}

/// `kiln eval`: a checkpoint's metrics on both splits, with its weights' digest.
pub struct EvalJob {
    /// The run directory.
    pub run_dir: PathBuf,
    /// `best`, `latest` or `step-NNNNNNN`.
    pub pointer: String,
    /// Where to evaluate.
    pub device: Device,
}

impl TaskJob for EvalJob {
    type Output = String;
    type Error = anyhow::Error;
    fn run<T: Task>(self, task: T) -> anyhow::Result<String> {
        let model = task.build_model(&self.device)?;
        let (dir, model) = run_dir::load_evaluated(&self.run_dir, &[self.pointer.as_str()], model)?;
        let mut out = format!(
            "{} ({})\nweights crc32: {:08x}\n",
            task.describe(),
            dir.display(),
            run_dir::weights_digest(&model)
        );
        for split in Split::ALL {
            let metrics = task.evaluate(&model, split, &self.device)?;
            if metrics.is_empty() {
                out.push_str(&format!("{:>5}: none (this run's data has no {split} split)\n", split.name()));
            } else {
                out.push_str(&format!("{:>5}: {}\n", split.name(), crate::metrics::format_metrics(&metrics)));
            }
        }
        Ok(out)
    }
}

/// What `kiln sample` and `kiln predict` do with a trained model.
pub enum Use {
    /// `kiln sample`: what the task generates (text, or pictures written to a directory).
    Generate(GenerateOptions),
    /// `kiln predict --text`: one output line per input.
    Predict(Vec<String>),
    /// `kiln predict --file`: one output line per input line, read as already tokenised.
    PredictTokenised(Vec<String>),
    /// `kiln predict --file F --format conll`: the column file `text` with a predicted-tag column.
    PredictColumns {
        /// The file's text.
        text: String,
        /// Where it came from, for messages.
        source: PathBuf,
    },
}

/// `kiln predict --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PredictFormat {
    /// One JSON line per input.
    Json,
    /// A column file with a predicted BIO tag column (NER).
    Conll,
}

/// `kiln sample` and `kiln predict`: the task's model from the run's best (else latest) checkpoint,
/// put to [`Use`]; the output's lines.
pub struct UseJob {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Sample or predict.
    pub action: Use,
    /// Where to run.
    pub device: Device,
}

impl TaskJob for UseJob {
    type Output = Vec<String>;
    type Error = anyhow::Error;
    fn run<T: Task>(self, task: T) -> anyhow::Result<Vec<String>> {
        let model = task.build_model(&self.device)?;
        let (_, model) = run_dir::load_evaluated(&self.run_dir, &["best", "latest"], model)?;
        match &self.action {
            Use::Generate(options) => Ok(vec![task.generate(&model, options, &self.device)?]),
            Use::Predict(texts) => Ok(task.predict(&model, texts, &self.device)?),
            Use::PredictTokenised(lines) => Ok(task.predict_tokenised(&model, lines, &self.device)?),
            Use::PredictColumns { text, source } => Ok(task.predict_columns(&model, text, source, &self.device)?),
        }
    }
}

/// The non-empty lines of a file (or of standard input for `-`), line endings stripped.
pub fn read_inputs(path: &Path) -> anyhow::Result<Vec<String>> {
    let text = read_text(path)?;
    let lines: Vec<String> =
        text.lines().map(|l| l.trim_end_matches('\r')).filter(|l| !l.trim().is_empty()).map(String::from).collect();
    anyhow::ensure!(!lines.is_empty(), "{}: no input lines", path.display());
    Ok(lines)
}

/// A UTF-8 file (or standard input for `-`), whole.
pub fn read_text(path: &Path) -> anyhow::Result<String> {
    let bytes = if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf).context("reading standard input")?;
        buf
    } else {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))?
    };
    let text = String::from_utf8(bytes).map_err(|e| {
        let line = 1 + e.as_bytes()[..e.utf8_error().valid_up_to()].iter().filter(|&&b| b == b'\n').count();
        anyhow::anyhow!("{}: line {line}: not valid UTF-8", path.display())
    })?;
    Ok(text)
}

/// `kiln sample` and `kiln predict` on the run in `run_dir` (its config with `overrides` for this
/// command), printing the output's lines.
///
/// # Errors
///
/// The run's config or checkpoint does not load, or the task fails.
pub fn use_trained(run_dir: &Path, overrides: &[String], action: Use, device: Option<String>) -> anyhow::Result<i32> {
    let config = run_config(run_dir, overrides)?;
    let device = config.device.open(device.as_deref().unwrap_or(config.device.main()))?;
    let job = UseJob { run_dir: run_dir.to_path_buf(), action, device };
    for line in config.model.with_trained_task(&config.data, run_dir, job)? {
        println!("{line}");
    }
    Ok(0)
}

struct CheckJob;

impl TaskJob for CheckJob {
    type Output = String;
    type Error = anyhow::Error;
    fn run<T: Task>(self, task: T) -> anyhow::Result<String> {
        let model = task.build_model(&Device::default())?;
        Ok(format!("{}, {} parameters", task.describe(), model.num_params()))
    }
}

/// Parse, validate and build. A config whose data is not on this machine is parsed and validated
/// but its model is not built (a character model needs its vocabulary), and the line says so.
pub fn check(path: &Path) -> anyhow::Result<String> {
    let mut config = RunConfig::load(path, &[])?;
    config.data.resolve_paths(&config::data_dir());
    config.model.resolve_paths();
    if let Some(missing) = config.data.paths().into_iter().find(|p| !p.exists()) {
        return Ok(format!(
            "parsed and validated; data not found at {} (set KILN_DATA_DIR), model not built",
            missing.display()
        ));
    }
    if let Some(missing) = config.model.missing() {
        return Ok(format!("parsed and validated; {missing}, model not built"));
    }
    config.model.with_task(&config.data, CheckJob).with_context(|| format!("{}", path.display()))
}
