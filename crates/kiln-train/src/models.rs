//! The model kinds this binary trains: the one list of them. Each kind is registered in its own crate
//! as a [`ModelKind`] (its `[model]` config, checks, task and trained-run loader); adding a model is
//! that type and one line below. Everything else (`[model]` parsing and its error messages, the
//! resolved config, `kiln train`, `check`, `eval`, `predict`, `sample`, `bench`) finds it here.

use std::path::Path;

use kiln_data::DataConfig;
use kiln_task::{ModelKind, StepShape, TaskJob};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// `models! { Variant => KindType, ... }`: the [`ModelConfig`] enum of the kinds, with each method
/// dispatching to the kind's [`ModelKind`] implementation.
macro_rules! models {
    ($($(#[$doc:meta])* $variant:ident => $kind:ty,)+) => {
        /// `[model]`: which model a run trains, and its keys. TOML: `kind = "..."`.
        #[derive(Debug, Clone, PartialEq)]
        pub enum ModelConfig {
            $($(#[$doc])* $variant(<$kind as ModelKind>::Config),)+
        }

        impl ModelConfig {
            /// Every registered `kind`.
            pub const KINDS: &'static [&'static str] = &[$(<$kind as ModelKind>::KIND),+];

            /// The TOML `kind`.
            pub fn kind(&self) -> &'static str {
                match self {
                    $(Self::$variant(_) => <$kind as ModelKind>::KIND,)+
                }
            }

            /// The `[data] kind`s this model trains on.
            pub fn data_kinds(&self) -> &'static [&'static str] {
                match self {
                    $(Self::$variant(_) => <$kind as ModelKind>::DATA,)+
                }
            }

            /// The variant of `kind`, deserialised from the section's other keys; `None` for an
            /// unknown kind.
            ///
            /// # Errors
            ///
            /// The keys do not fit the kind's config.
            pub fn deserialize_kind<'de, D: Deserializer<'de>>(kind: &str, keys: D) -> Result<Option<Self>, D::Error> {
                $(if kind == <$kind as ModelKind>::KIND {
                    return Ok(Some(Self::$variant(<$kind as ModelKind>::Config::deserialize(keys)?)));
                })+
                Ok(None)
            }

            /// [`ModelKind::validate`].
            ///
            /// # Errors
            ///
            /// The first invalid value.
            pub fn validate(&self, shape: StepShape) -> anyhow::Result<()> {
                match self {
                    $(Self::$variant(m) => Ok(<$kind as ModelKind>::validate(m, shape)?),)+
                }
            }

            /// [`ModelKind::check_data`].
            ///
            /// # Errors
            ///
            /// The model and the data disagree.
            pub fn check_data(&self, data: &DataConfig) -> anyhow::Result<()> {
                match self {
                    $(Self::$variant(m) => Ok(<$kind as ModelKind>::check_data(m, data)?),)+
                }
            }

            /// [`ModelKind::resolve_paths`].
            pub fn resolve_paths(&mut self) {
                match self {
                    $(Self::$variant(m) => <$kind as ModelKind>::resolve_paths(m),)+
                }
            }

            /// [`ModelKind::missing`].
            pub fn missing(&self) -> Option<String> {
                match self {
                    $(Self::$variant(m) => <$kind as ModelKind>::missing(m),)+
                }
            }

            /// Build the task of this model on `data` and run `job` on it ([`ModelKind::run`]).
            ///
            /// # Errors
            ///
            /// The task cannot be built or the job fails.
            pub fn with_task<J: TaskJob>(&self, data: &DataConfig, job: J) -> Result<J::Output, J::Error> {
                match self {
                    $(Self::$variant(m) => <$kind as ModelKind>::run(m, data, job),)+
                }
            }

            /// The task of the trained run in `run_dir` ([`ModelKind::run_trained`]).
            ///
            /// # Errors
            ///
            /// The task cannot be built or the job fails.
            pub fn with_trained_task<J: TaskJob>(&self, data: &DataConfig, run_dir: &Path, job: J) -> Result<J::Output, J::Error> {
                match self {
                    $(Self::$variant(m) => <$kind as ModelKind>::run_trained(m, data, run_dir, job),)+
                }
            }

            /// The config's keys as TOML, without `kind`.
            fn keys(&self) -> Result<toml::Value, toml::ser::Error> {
                match self {
                    $(Self::$variant(m) => toml::Value::try_from(m),)+
                }
            }
        }
    };
}

models! {
    /// Causal character-level language model.
    CharLm => kiln_transformer::CharLmKind,
    /// Sequence classifier (ListOps).
    Classifier => kiln_transformer::ClassifierKind,
    /// Vision transformer (MNIST).
    Vit => kiln_transformer::VitKind,
    /// Named-entity recognition: a span head on a character transformer or a pretrained BERT.
    Ner => kiln_ner::NerKind,
    /// Variational autoencoder, vMF or Gaussian latent.
    Vae => kiln_vae::VaeKind,
    /// Wasserstein GAN.
    Wgan => kiln_gan::WganKind,
}

/// `kind` first, then the kind's keys.
impl Serialize for ModelConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error as _, SerializeMap};
        let keys = self.keys().map_err(S::Error::custom)?;
        let table = keys.as_table().ok_or_else(|| S::Error::custom("a model config is a table"))?;
        let mut map = serializer.serialize_map(Some(table.len() + 1))?;
        map.serialize_entry("kind", self.kind())?;
        for (k, v) in table {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// From a table with `kind` and the kind's keys. (Config files go through
/// [`crate::config::RunConfig::parse`], which reads the section straight from the text so that an
/// error inside it names its line.)
impl<'de> Deserialize<'de> for ModelConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let mut table = toml::Table::deserialize(deserializer)?;
        let kind = match table.remove("kind") {
            Some(toml::Value::String(k)) => k,
            Some(_) => return Err(D::Error::custom("model.kind must be a string")),
            None => return Err(D::Error::missing_field("kind")),
        };
        ModelConfig::deserialize_kind(&kind, toml::Value::Table(table))
            .map_err(D::Error::custom)?
            .ok_or_else(|| D::Error::unknown_variant(&kind, ModelConfig::KINDS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shipped config's `[model]` writes out with its `kind` first and reads back equal
    /// through the table form, and no two kinds share a name.
    #[test]
    fn model_configs_round_trip_and_kinds_are_distinct() {
        let mut kinds = ModelConfig::KINDS.to_vec();
        kinds.sort_unstable();
        kinds.dedup();
        assert_eq!(kinds.len(), ModelConfig::KINDS.len());
        let root = Path::new(&std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo test")).join("../../configs");
        let mut seen = std::collections::BTreeSet::new();
        for dir in
            [root.clone(), root.join("lm"), root.join("ner"), root.join("vae"), root.join("gan"), root.join("vit")]
        {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_none_or(|e| e != "toml") {
                    continue;
                }
                let config = crate::config::RunConfig::load(&path, &[]).unwrap();
                let text = toml::to_string(&config.model).unwrap();
                assert!(text.starts_with(&format!("kind = \"{}\"", config.model.kind())), "{}: {text}", path.display());
                let back: ModelConfig = toml::from_str(&text).unwrap();
                assert_eq!(back, config.model, "{}", path.display());
                seen.insert(config.model.kind());
            }
        }
        assert_eq!(seen.len(), ModelConfig::KINDS.len(), "a shipped config for every kind: {seen:?}");
    }
}
