//! `kind = "vae"` as the `kiln` trainer finds it ([`ModelKind`]): a vMF or Gaussian VAE on `mnist`.

use anyhow::Context;
use kiln_data::DataConfig;
use kiln_task::{ModelKind, StepShape, TaskJob, wrong_data};

use crate::{VaeConfig, VaeTask};

/// `kind = "vae"`.
pub struct VaeKind;

impl ModelKind for VaeKind {
    const KIND: &'static str = "vae";
    const DATA: &'static [&'static str] = &["mnist"];
    type Config = VaeConfig;

    fn validate(model: &VaeConfig, _: StepShape) -> anyhow::Result<()> {
        model.validate().context("model")
    }

    fn run<J: TaskJob>(model: &VaeConfig, data: &DataConfig, job: J) -> anyhow::Result<J::Output> {
        let DataConfig::Mnist(d) = data else { return Err(wrong_data(Self::KIND, Self::DATA, data)) };
        job.run(VaeTask::new(model.clone(), d)?)
    }
}
