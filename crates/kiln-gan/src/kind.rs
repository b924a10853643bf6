//! `kind = "wgan"` as the `kiln` trainer finds it ([`ModelKind`]): an MLP WGAN on `toy2d` points, or
//! a DCGAN-style WGAN on `mnist` images.

use kiln_data::DataConfig;
use kiln_task::Context;
use kiln_task::{ModelKind, StepShape, TaskJob, wrong_data};

use crate::{MnistWganTask, WganConfig, WganTask};

/// `kind = "wgan"`.
pub struct WganKind;

impl ModelKind for WganKind {
    const KIND: &'static str = "wgan";
    const DATA: &'static [&'static str] = &["toy2d", "mnist"];
    type Config = WganConfig;

    fn validate(model: &WganConfig, shape: StepShape) -> kiln_task::Result<()> {
        model.validate().context("model")?;
        // Each optimizer step is a critic or a generator step, chosen by the batch index: the
        // micro-batches of one step (accumulated, or one per device) would mix the two.
        kiln_task::ensure!(
            shape.grad_accum == 1 && shape.devices <= 1,
            "train.grad_accum and device.devices: a WGAN step is one critic or generator batch; use grad_accum = 1 and one device (a larger batch_size instead)"
        );
        Ok(())
    }

    /// The judge's run directory made absolute.
    fn resolve_paths(model: &mut WganConfig) {
        if let Some(judge) = &mut model.judge {
            *judge = std::path::absolute(&*judge).unwrap_or_else(|_| judge.clone());
        }
    }

    fn run<J: TaskJob>(model: &WganConfig, data: &DataConfig, job: J) -> Result<J::Output, J::Error> {
        match data {
            DataConfig::Toy2d(d) => job.run(WganTask::new(model.clone(), d.clone())?),
            DataConfig::Mnist(d) => job.run(MnistWganTask::new(model.clone(), d)?),
            other => Err(wrong_data(Self::KIND, Self::DATA, other).into()),
        }
    }
}
