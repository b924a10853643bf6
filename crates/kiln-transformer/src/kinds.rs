//! The model kinds of this crate, as the `kiln` trainer finds them ([`ModelKind`]): `char_lm` on
//! `text`, `classifier` on `listops`, `vit` on `mnist`.

use std::path::Path;

use kiln_data::DataConfig;
use kiln_task::Context;
use kiln_task::{ModelKind, StepShape, TaskJob, wrong_data};

use crate::{CharLmConfig, CharLmTask, ClassifierConfig, ListOpsTask, MnistTask, VitConfig};

/// `kind = "char_lm"`: a causal character-level language model on a text file.
pub struct CharLmKind;

impl ModelKind for CharLmKind {
    const KIND: &'static str = "char_lm";
    const DATA: &'static [&'static str] = &["text"];
    type Config = CharLmConfig;

    fn validate(model: &CharLmConfig, _: StepShape) -> kiln_task::Result<()> {
        model.validate()
    }

    fn run<J: TaskJob>(model: &CharLmConfig, data: &DataConfig, job: J) -> Result<J::Output, J::Error> {
        let DataConfig::Text(d) = data else { return Err(wrong_data(Self::KIND, Self::DATA, data).into()) };
        job.run(CharLmTask::new(model.clone(), d.clone())?)
    }

    /// The vocabulary from the run directory: the text need not be there.
    fn run_trained<J: TaskJob>(
        model: &CharLmConfig,
        data: &DataConfig,
        run_dir: &Path,
        job: J,
    ) -> Result<J::Output, J::Error> {
        let DataConfig::Text(d) = data else { return Err(wrong_data(Self::KIND, Self::DATA, data).into()) };
        job.run(CharLmTask::from_run(model.clone(), d.clone(), run_dir)?)
    }
}

/// `kind = "classifier"`: a sequence classifier on ListOps.
pub struct ClassifierKind;

impl ModelKind for ClassifierKind {
    const KIND: &'static str = "classifier";
    const DATA: &'static [&'static str] = &["listops"];
    type Config = ClassifierConfig;

    fn validate(model: &ClassifierConfig, _: StepShape) -> kiln_task::Result<()> {
        model.validate()
    }

    fn check_data(model: &ClassifierConfig, data: &DataConfig) -> kiln_task::Result<()> {
        let DataConfig::Listops(d) = data else { return Err(wrong_data(Self::KIND, Self::DATA, data)) };
        model.check_data(d)
    }

    fn run<J: TaskJob>(model: &ClassifierConfig, data: &DataConfig, job: J) -> Result<J::Output, J::Error> {
        let DataConfig::Listops(d) = data else { return Err(wrong_data(Self::KIND, Self::DATA, data).into()) };
        job.run(ListOpsTask::new(model.clone(), d)?)
    }

    /// No data generated: predictions parse their own expressions.
    fn run_trained<J: TaskJob>(
        model: &ClassifierConfig,
        data: &DataConfig,
        _run_dir: &Path,
        job: J,
    ) -> Result<J::Output, J::Error> {
        let DataConfig::Listops(d) = data else { return Err(wrong_data(Self::KIND, Self::DATA, data).into()) };
        job.run(ListOpsTask::without_data(model.clone(), d))
    }
}

/// `kind = "vit"`: a vision transformer on MNIST.
pub struct VitKind;

impl ModelKind for VitKind {
    const KIND: &'static str = "vit";
    const DATA: &'static [&'static str] = &["mnist"];
    type Config = VitConfig;

    fn validate(model: &VitConfig, _: StepShape) -> kiln_task::Result<()> {
        model.encoder.validate().context("model.encoder")
    }

    fn run<J: TaskJob>(model: &VitConfig, data: &DataConfig, job: J) -> Result<J::Output, J::Error> {
        let DataConfig::Mnist(d) = data else { return Err(wrong_data(Self::KIND, Self::DATA, data).into()) };
        job.run(MnistTask::new(model.clone(), d)?)
    }
}
