//! The one place that knows which model kinds exist: a `(model, data)` pair becomes a [`Task`],
//! handed to a generic job (train, evaluate, generate). Adding a model is one arm here.

use std::path::Path;

use anyhow::bail;
use kiln_gan::{MnistWganTask, WganTask};
use kiln_ner::NerTask;
use kiln_task::TaskJob;
use kiln_transformer::{CharLmTask, ListOpsTask, MnistTask};
use kiln_vae::VaeTask;

use crate::config::{DataConfig, ModelConfig, RunConfig};

/// Build the task a config describes (reading or generating its data) and run `job` on it.
pub fn with_task<J: TaskJob>(config: &RunConfig, job: J) -> anyhow::Result<J::Output> {
    match (&config.model, &config.data) {
        (ModelConfig::CharLm(m), DataConfig::Text(d)) => job.run(CharLmTask::new(m.clone(), d.clone())?),
        (ModelConfig::Classifier(m), DataConfig::Listops(d)) => job.run(ListOpsTask::new(m.clone(), d)?),
        (ModelConfig::Vit(m), DataConfig::Mnist(d)) => job.run(MnistTask::new(m.clone(), d)?),
        (ModelConfig::Ner(m), DataConfig::Ner(d)) => job.run(NerTask::new(m.clone(), d.clone())?),
        (ModelConfig::Vae(m), DataConfig::Mnist(d)) => job.run(VaeTask::new(m.clone(), d)?),
        (ModelConfig::Wgan(m), DataConfig::Toy2d(d)) => job.run(WganTask::new(m.clone(), d.clone())?),
        (ModelConfig::Wgan(m), DataConfig::Mnist(d)) => job.run(MnistWganTask::new(m.clone(), d)?),
        (m, d) => bail!("model kind `{}` cannot train on data kind `{}`", m.kind(), d.kind()),
    }
}

/// Build the task of a trained run for `predict` and `sample`, and run `job` on it: from what
/// training saved in `run_dir` ([`Task::save_artifacts`]: vocabularies, entity types, the NER
/// lexicon) where that is all the task needs, so that the training data need not be there and
/// ListOps is not generated again; otherwise (images, runs of an older Kiln) as [`with_task`].
pub fn with_trained_task<J: TaskJob>(config: &RunConfig, run_dir: &Path, job: J) -> anyhow::Result<J::Output> {
    match (&config.model, &config.data) {
        (ModelConfig::CharLm(m), DataConfig::Text(d)) => job.run(CharLmTask::from_run(m.clone(), d.clone(), run_dir)?),
        (ModelConfig::Classifier(m), DataConfig::Listops(d)) => job.run(ListOpsTask::without_data(m.clone(), d)),
        (ModelConfig::Ner(m), DataConfig::Ner(d)) => job.run(NerTask::from_run(m.clone(), d.clone(), run_dir)?),
        _ => with_task(config, job),
    }
}
