//! A model kind's registration: everything the trainer and the `kiln` commands need to know of a
//! `[model] kind`, written once in the model's crate. The `kiln` binary lists the kinds in one
//! place (`kiln-train/src/models.rs`) and finds everything else here.

use std::path::Path;

use kiln_data::DataConfig;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::{TaskError, TaskJob};

/// How the trainer splits an optimiser step, for the kinds whose step cannot be split
/// (`[train] grad_accum`, `[device] devices`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepShape {
    /// Micro-batches per optimiser step on each device.
    pub grad_accum: usize,
    /// Devices that train (data parallelism).
    pub devices: usize,
}

/// A `[model] kind`: its config section, its checks and how it becomes a [`crate::Task`].
///
/// `kiln train`, `check`, `eval`, `predict`, `sample` and `bench` call these in this order: parse
/// `[model]` into [`Self::Config`]; check the data kind is one of [`Self::DATA`]; [`Self::validate`];
/// the data's own checks; [`Self::check_data`]; [`Self::resolve_paths`]; then [`Self::run`] (or
/// [`Self::run_trained`] for a trained run) hands the task to the command's job.
pub trait ModelKind {
    /// The TOML `kind`, e.g. `"char_lm"`.
    const KIND: &'static str;
    /// The `[data] kind`s it trains on.
    const DATA: &'static [&'static str];
    /// The `[model]` section (without `kind`): a strict serde type.
    type Config: Serialize + DeserializeOwned + Clone + std::fmt::Debug + PartialEq;

    /// Checks of the model keys (and of how the trainer splits a step, where the model cares).
    ///
    /// # Errors
    ///
    /// The first invalid value, naming its key.
    fn validate(model: &Self::Config, shape: StepShape) -> crate::Result<()>;

    /// Checks of the model against its (valid) data: sizes that must agree.
    ///
    /// # Errors
    ///
    /// The first disagreement, naming both keys.
    fn check_data(_model: &Self::Config, _data: &DataConfig) -> crate::Result<()> {
        Ok(())
    }

    /// Fill and absolutise the paths of pretrained weights (from the environment where the config
    /// leaves them out), so that the resolved config works from any directory.
    fn resolve_paths(_model: &mut Self::Config) {}

    /// What the model needs that is not on this machine (a pretrained checkpoint), for `kiln check`
    /// to say instead of building it.
    fn missing(_model: &Self::Config) -> Option<String> {
        None
    }

    /// Build the task (reading or generating the data) and run `job` on it.
    ///
    /// # Errors
    ///
    /// The data cannot be read, the task cannot be built, or the job fails.
    fn run<J: TaskJob>(model: &Self::Config, data: &DataConfig, job: J) -> Result<J::Output, J::Error>;

    /// The task of a trained run (`predict`, `sample`): from what training saved in `run_dir`
    /// ([`crate::Task::save_artifacts`]) where that is all the task needs, so that the training data
    /// need not be there; by default as [`Self::run`].
    ///
    /// # Errors
    ///
    /// As [`Self::run`], or the saved artifacts do not load.
    fn run_trained<J: TaskJob>(
        model: &Self::Config,
        data: &DataConfig,
        _run_dir: &Path,
        job: J,
    ) -> Result<J::Output, J::Error> {
        Self::run(model, data, job)
    }
}

/// The error of a model kind asked to train on a data kind it does not take.
pub fn wrong_data(model: &str, accepted: &[&str], data: &DataConfig) -> TaskError {
    TaskError::Invalid(format!(
        "model kind `{model}` cannot train on data kind `{}` ({model} needs {})",
        data.kind(),
        accepted.join(" or ")
    ))
}
