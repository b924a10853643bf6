//! `kind = "vae"` as the `kiln` trainer finds it ([`ModelKind`]): a vMF or Gaussian VAE on `mnist`.

use kiln_data::DataConfig;
use kiln_task::Context;
use kiln_task::{ModelKind, StepShape, TaskJob, wrong_data};

use crate::{VaeConfig, VaeTask};

/// `kind = "vae"`.
pub struct VaeKind;

impl ModelKind for VaeKind {
    const KIND: &'static str = "vae";
    const DATA: &'static [&'static str] = &["mnist"];
    type Config = VaeConfig;

    fn validate(model: &VaeConfig, _: StepShape) -> kiln_task::Result<()> {
        model.validate().context("model")
    }

    fn run<J: TaskJob>(model: &VaeConfig, data: &DataConfig, job: J) -> Result<J::Output, J::Error> {
        let DataConfig::Mnist(d) = data else { return Err(wrong_data(Self::KIND, Self::DATA, data).into()) };
        job.run(VaeTask::new(model.clone(), d)?)
    }
}
