//! `kind = "ner"` as the `kiln` trainer finds it ([`ModelKind`]): a span head on a character
//! transformer or a pretrained BERT, on `ner` data.

use std::path::Path;

use kiln_data::DataConfig;
use kiln_task::{ModelKind, StepShape, TaskJob, wrong_data};

use crate::{NerModelConfig, NerTask};

/// `kind = "ner"`.
pub struct NerKind;

impl ModelKind for NerKind {
    const KIND: &'static str = "ner";
    const DATA: &'static [&'static str] = &["ner"];
    type Config = NerModelConfig;

    fn validate(model: &NerModelConfig, _: StepShape) -> kiln_task::Result<()> {
        model.validate()
    }

    fn check_data(model: &NerModelConfig, data: &DataConfig) -> kiln_task::Result<()> {
        let DataConfig::Ner(d) = data else { return Err(wrong_data(Self::KIND, Self::DATA, data)) };
        model.check_data(d)
    }

    fn resolve_paths(model: &mut NerModelConfig) {
        model.resolve_paths();
    }

    fn missing(model: &NerModelConfig) -> Option<String> {
        model
            .bert
            .as_ref()
            .is_some_and(|b| b.dir.as_deref().is_none_or(|d| !d.exists()))
            .then(|| "BERT checkpoint not found (set KILN_BERT_DIR)".to_string())
    }

    fn run<J: TaskJob>(model: &NerModelConfig, data: &DataConfig, job: J) -> Result<J::Output, J::Error> {
        let DataConfig::Ner(d) = data else { return Err(wrong_data(Self::KIND, Self::DATA, data).into()) };
        job.run(NerTask::new(model.clone(), d.clone())?)
    }

    /// Vocabularies, entity types and the lexicon from the run directory: the training files need
    /// not be there.
    fn run_trained<J: TaskJob>(
        model: &NerModelConfig,
        data: &DataConfig,
        run_dir: &Path,
        job: J,
    ) -> Result<J::Output, J::Error> {
        let DataConfig::Ner(d) = data else { return Err(wrong_data(Self::KIND, Self::DATA, data).into()) };
        job.run(NerTask::from_run(model.clone(), d.clone(), run_dir)?)
    }
}
