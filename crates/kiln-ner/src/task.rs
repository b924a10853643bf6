//! NER as a Kiln task: the data read and its vocabularies built (or loaded from a run directory),
//! and the task's training steps, evaluation, artifacts and predictions.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use burn::prelude::*;
use kiln_data::ner::{NerDataConfig, NerExample, NerFile};
use kiln_data::words::TokenUnit;
use kiln_layers::{Dropout, Linear};
use kiln_task::Context;
use kiln_task::{EpochSampler, GenerateOptions, Metrics, Split, StepOutput, Task};
use kiln_transformer::embedding::token_embedding;
use serde::{Deserialize, Serialize};

use crate::bert::BertBackbone;
use crate::features::{bigram_vocabulary, type_position};
use crate::{EntityCounts, Lexicon, NerBatch, NerModel, NerModelConfig, Span};

/// The run directory's copy of what prediction needs of the training file ([`SavedVocabulary`]).
pub(crate) const VOCABULARY_FILE: &str = "ner_vocabulary.json";

/// What `kiln predict` needs of the training file, saved with a run ([`Task::save_artifacts`]): the
/// entity types, for a from-scratch encoder the token (character or word) and bigram vocabularies (in
/// id order, from id 2) and the lexicon (each string's training count per type), and what a token is
/// (absent in runs of Kiln before 2026-12-07, which were all read as characters).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SavedVocabulary {
    pub(crate) types: Vec<String>,
    pub(crate) chars: Vec<String>,
    pub(crate) bigrams: Vec<String>,
    pub(crate) lexicon: Option<BTreeMap<String, Vec<usize>>>,
    #[serde(default)]
    pub(crate) tokens: Option<TokenUnit>,
}

/// Named-entity recognition on a dataset.
pub struct NerTask {
    pub(crate) model: NerModelConfig,
    pub(crate) data: NerDataConfig,
    pub(crate) train: Vec<NerExample>,
    /// Characters (tokens) per training sentence, for `group_by_length`.
    pub(crate) train_lengths: Vec<usize>,
    pub(crate) valid: Vec<NerExample>,
    pub(crate) test: Option<Vec<NerExample>>,
    pub(crate) vocab: BTreeMap<String, usize>,
    /// Bigram ids (from 2), keys from [`bigram_key`]; empty without `bigrams`.
    pub(crate) bigram_vocab: HashMap<String, usize>,
    /// The training file's entity strings; `None` without `lexicon`.
    pub(crate) lexicon: Option<Lexicon>,
    pub(crate) bert: Option<BertBackbone>,
    pub(crate) types: Vec<String>,
    /// What a token is, for cutting `kiln predict`'s input.
    pub(crate) tokens: TokenUnit,
    /// Tags repaired as conlleval reads them (train and valid files), and where the first one is.
    pub(crate) inconsistent: usize,
    pub(crate) first_inconsistent: Option<String>,
}

impl NerTask {
    /// Read the files and build the character vocabulary and the type list from the training file.
    ///
    /// # Errors
    ///
    /// The data keys are invalid ([`NerDataConfig::validate`]), or a file is missing or malformed.
    pub fn new(model: NerModelConfig, data: NerDataConfig) -> kiln_task::Result<Self> {
        data.validate()?;
        model.check_data(&data)?;
        let mut train_file = data.read(&data.train)?;
        if let Some(limit) = data.train_limit {
            train_file.examples.truncate(limit);
        }
        let valid_file = match (&data.valid, data.valid_fraction) {
            (Some(path), _) => data.read(path)?,
            (None, fraction) => {
                let fraction = fraction.context("data.valid_fraction")?; // validate(): one of the two
                let n = train_file.examples.len();
                kiln_task::ensure!(
                    n >= 2,
                    "{}: data.valid_fraction needs at least 2 training sentences, found {n}",
                    data.train.display()
                );
                let held = ((n as f64 * fraction).round() as usize).clamp(1, n - 1);
                NerFile { examples: train_file.examples.split_off(n - held), ..NerFile::default() }
            }
        };
        let test_file = data.test.as_deref().map(|p| data.read(p)).transpose()?;
        let mut vocab = BTreeMap::new();
        let chars: BTreeSet<&str> =
            train_file.examples.iter().flat_map(|x| x.tokens.iter().map(String::as_str)).collect();
        for (i, c) in chars.into_iter().enumerate() {
            vocab.insert(c.to_string(), i + 2);
        }
        let bigram_vocab = if model.bigrams {
            bigram_vocabulary(&train_file.examples, model.bigram_min_count)
        } else {
            HashMap::new()
        };
        let types: Vec<String> = train_file
            .examples
            .iter()
            .flat_map(|x| x.entities.iter().map(|e| e.label.clone()))
            .collect::<BTreeSet<String>>()
            .into_iter()
            .collect();
        kiln_task::ensure!(!types.is_empty(), "{}: no entities in the training file", data.train.display());
        let lexicon = model
            .lexicon
            .then(|| Lexicon::new(&train_file.examples, data.max_len, types.len(), |l| type_position(&types, l)));
        let inconsistent = train_file.inconsistent_tags + valid_file.inconsistent_tags;
        let first_inconsistent = [(&train_file, Some(&data.train)), (&valid_file, data.valid.as_ref())]
            .into_iter()
            .find_map(|(f, path)| Some(format!("{} line {}", path?.display(), f.first_inconsistent_line?)));
        let tokens = data.token_unit(&train_file);
        let bert = model.bert.as_ref().map(BertBackbone::open).transpose()?;
        Ok(Self {
            model,
            data,
            train_lengths: train_file.examples.iter().map(|x| x.tokens.len()).collect(),
            train: train_file.examples,
            valid: valid_file.examples,
            test: test_file.map(|f| f.examples),
            vocab,
            bigram_vocab,
            lexicon,
            bert,
            types,
            tokens,
            inconsistent,
            first_inconsistent,
        })
    }

    /// The task of a trained run, for `kiln predict`: types, vocabularies and lexicon from the run's
    /// `ner_vocabulary.json` (written when it was trained), so the data files need not be there;
    /// without that file (a run of an older Kiln), from the data as [`Self::new`].
    ///
    /// # Errors
    ///
    /// The file cannot be read or does not match the model config; the BERT backbone cannot be
    /// opened; or (without the file) as [`Self::new`].
    pub fn from_run(model: NerModelConfig, data: NerDataConfig, run_dir: &Path) -> kiln_task::Result<Self> {
        let path = run_dir.join(VOCABULARY_FILE);
        if !path.exists() {
            return Self::new(model, data);
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let saved: SavedVocabulary = serde_json::from_str(&text)
            .with_context(|| format!("{}: not a vocabulary written by kiln train", path.display()))?;
        let sorted = |v: &[String]| v.windows(2).all(|w| w[0] < w[1]);
        kiln_task::ensure!(
            !saved.types.is_empty() && sorted(&saved.types) && sorted(&saved.chars),
            "{}: the types and characters must be sorted and distinct, at least one type",
            path.display()
        );
        kiln_task::ensure!(
            saved.lexicon.is_some() == model.lexicon,
            "{}: {} lexicon, but the run's config has lexicon = {}",
            path.display(),
            if saved.lexicon.is_some() { "has a" } else { "has no" },
            model.lexicon
        );
        let ids = |v: Vec<String>| v.into_iter().enumerate().map(|(i, k)| (k, i + 2));
        let lexicon = saved
            .lexicon
            .map(|counts| Lexicon::from_counts(counts.into_iter().collect(), saved.types.len()))
            .transpose()
            .map_err(|e| kiln_task::TaskError::Invalid(format!("{}: lexicon: {e}", path.display())))?;
        let bert = model.bert.as_ref().map(BertBackbone::open).transpose()?;
        // A key given now (`--set data.tokens=...`) wins over the run's record.
        let tokens = data.tokens.or(saved.tokens).unwrap_or(TokenUnit::Characters);
        Ok(Self {
            model,
            data,
            train: vec![],
            train_lengths: vec![],
            valid: vec![],
            test: None,
            vocab: ids(saved.chars).collect(),
            bigram_vocab: ids(saved.bigrams).collect(),
            lexicon,
            bert,
            types: saved.types,
            tokens,
            inconsistent: 0,
            first_inconsistent: None,
        })
    }

    /// Entity type names, in head order.
    pub fn types(&self) -> &[String] {
        &self.types
    }

    pub(crate) fn type_index(&self, label: &str) -> Option<usize> {
        type_position(&self.types, label)
    }

    pub(crate) fn gold_spans(&self, x: &NerExample, kept: usize) -> impl Iterator<Item = Span> {
        x.entities
            .iter()
            .filter(move |e| e.end < kept)
            .filter_map(|e| self.type_index(&e.label).map(|kind| Span { kind, start: e.start, end: e.end }))
    }

    /// The longest text `kiln predict` labels in one window: `data.max_len` tokens, and with a BERT
    /// backbone no more than its position table holds besides `[CLS]` and `[SEP]`: as many characters
    /// (a character is one piece, `[UNK]` included, except for the rare one a normaliser expands), or
    /// a quarter as many words (English words average 1.2–1.5 WordPiece pieces; a window whose words
    /// average more than 4 would lose its last words).
    pub(crate) fn window_len(&self) -> usize {
        match &self.bert {
            Some(bert) => {
                let pieces = bert.tokenizer.max_seq_len().saturating_sub(2);
                let words = if self.tokens == TokenUnit::Words { pieces / 4 } else { pieces };
                self.data.max_len.min(words).max(1)
            }
            None => self.data.max_len,
        }
    }

    pub(crate) fn gold(&self, x: &NerExample) -> Vec<Span> {
        // Unknown types count as gold the model cannot predict (they lower recall).
        x.entities
            .iter()
            .map(|e| Span { kind: self.type_index(&e.label).unwrap_or(usize::MAX), start: e.start, end: e.end })
            .collect()
    }
}

impl Task for NerTask {
    type Model = NerModel;
    type Batch = NerBatch;

    fn describe(&self) -> String {
        format!(
            "NER, {} types ({}), {} train / {} valid{} sentences of {}, {}{}",
            self.types.len(),
            self.types.join(", "),
            self.train.len(),
            self.valid.len(),
            self.test.as_ref().map(|t| format!(" / {} test", t.len())).unwrap_or_default(),
            self.tokens.name(),
            match &self.bert {
                Some(b) => format!("BERT backbone {}", b.dir.display()),
                None => {
                    let mut s = format!("{} {}", self.vocab.len(), self.tokens.name());
                    if self.model.bigrams {
                        s += &format!(
                            " and {} bigrams (seen at least {} times)",
                            self.bigram_vocab.len(),
                            self.model.bigram_min_count
                        );
                    }
                    s += " in the vocabulary";
                    if let Some(lexicon) = &self.lexicon {
                        s += &format!(", {} entity strings in the lexicon", lexicon.len());
                    }
                    s
                }
            },
            if self.inconsistent > 0 {
                format!(
                    "; tags repaired the way conlleval reads them (an I- or E- without a B- of its type, or a type change inside a chunk): {}, the first at {}",
                    self.inconsistent,
                    self.first_inconsistent.as_deref().unwrap_or("?")
                )
            } else {
                String::new()
            }
        )
    }

    fn build_model(&self, device: &Device) -> kiln_task::Result<NerModel> {
        let n_types = self.types.len();
        match (&self.model.encoder, &self.bert) {
            (_, Some(b)) => {
                let (bert, _) = kiln_transformer::bert::convert::load_pretrained(&b.dir, b.attention.clone(), device)?;
                Ok(NerModel {
                    embedding: None,
                    bigram_embedding: None,
                    bigram_projection: None,
                    embedding_dropout: Dropout::new(0.0),
                    token_dropout: 0.0,
                    lexicon_projection: None,
                    encoder: None,
                    bert: Some(bert),
                    head: self.model.head.init(b.config.hidden_size, n_types, device),
                })
            }
            (Some(encoder), None) => Ok(NerModel {
                embedding: Some(token_embedding(
                    self.vocab.len() + 2,
                    encoder.d_model,
                    self.model.embedding_std,
                    device,
                )),
                bigram_embedding: self.model.bigrams.then(|| {
                    token_embedding(
                        self.bigram_vocab.len() + 2,
                        self.model.bigram_dim,
                        self.model.embedding_std,
                        device,
                    )
                }),
                bigram_projection: self
                    .model
                    .bigrams
                    .then(|| Linear::new(2 * self.model.bigram_dim, encoder.d_model, false, device)),
                embedding_dropout: Dropout::new(self.model.embedding_dropout),
                token_dropout: self.model.token_dropout,
                lexicon_projection: self
                    .model
                    .lexicon
                    .then(|| Linear::new(4 * n_types, encoder.d_model, false, device)),
                encoder: Some(encoder.init(device)),
                bert: None,
                head: self.model.head.init(encoder.d_model, n_types, device),
            }),
            (None, None) => kiln_task::bail!("model: no backbone (the config was not validated)"),
        }
    }

    fn train_len(&self) -> Option<usize> {
        Some(self.train.len())
    }

    fn train_batch(&self, step: usize, batch_size: usize, seed: u64, device: &Device) -> NerBatch {
        let sampler = EpochSampler::new(self.train.len(), batch_size, seed);
        let idx = if self.data.group_by_length {
            sampler.batch_grouped_by_length(step, &self.train_lengths)
        } else {
            sampler.batch(step)
        };
        let examples: Vec<&NerExample> = idx.iter().map(|&i| &self.train[i]).collect();
        self.batch(&examples, true, device)
    }

    fn step(&self, model: &NerModel, batch: NerBatch) -> StepOutput {
        let b = batch.ids.dims()[0];
        let h = model.encode(batch.ids, batch.features, &batch.padding);
        StepOutput { loss: model.head.loss(h, &batch.head_padding, &batch.spans, self.types.len()), items: b }
    }

    fn evaluate(&self, model: &NerModel, split: Split, device: &Device) -> kiln_task::Result<Metrics> {
        let examples = match split {
            Split::Valid => &self.valid,
            Split::Test => match &self.test {
                Some(t) => t,
                None => return Ok(vec![]), // no labelled test file configured
            },
        };
        let mut counts = EntityCounts::new(self.types.len());
        let mut unknown = 0;
        let sentences: Vec<&[String]> = examples.iter().map(|x| x.tokens.as_slice()).collect();
        for (x, p) in examples.iter().zip(self.find_spans(model, &sentences, device)) {
            let gold = self.gold(x);
            unknown += gold.iter().filter(|g| g.kind == usize::MAX).count();
            let known: Vec<Span> = gold.into_iter().filter(|g| g.kind != usize::MAX).collect();
            counts.add(&p, &known);
        }
        let mut micro = counts.micro();
        micro.gold += unknown;
        let mut metrics: Metrics =
            vec![("f1".into(), micro.f1()), ("precision".into(), micro.precision()), ("recall".into(), micro.recall())];
        for (name, c) in self.types.iter().zip(&counts.per_type) {
            metrics.push((format!("f1_{name}"), c.f1()));
        }
        Ok(metrics)
    }

    fn save_artifacts(&self, run_dir: &Path) -> kiln_task::Result<()> {
        let in_id_order = |map: &mut dyn Iterator<Item = (&String, &usize)>| {
            let mut v: Vec<(usize, String)> = map.map(|(k, &i)| (i, k.clone())).collect();
            v.sort_unstable();
            v.into_iter().map(|(_, k)| k).collect()
        };
        let saved = SavedVocabulary {
            types: self.types.clone(),
            chars: in_id_order(&mut self.vocab.iter()),
            bigrams: in_id_order(&mut self.bigram_vocab.iter()),
            lexicon: self.lexicon.as_ref().map(|l| l.counts.iter().map(|(k, c)| (k.clone(), c.clone())).collect()),
            tokens: Some(self.tokens),
        };
        let path = run_dir.join(VOCABULARY_FILE);
        let json = serde_json::to_string(&saved).context("encoding the vocabularies")?;
        std::fs::write(&path, json).with_context(|| format!("writing {}", path.display()))
    }

    fn generate(&self, model: &NerModel, options: &GenerateOptions, device: &Device) -> kiln_task::Result<String> {
        let text = options.prompt.as_deref().context("give the sentence with --text")?;
        Ok(self.predict(model, &[text.to_string()], device)?.remove(0))
    }

    /// One JSON object per text: `{"text": ..., "entities": [{"type", "start", "end", "text"}]}`,
    /// offsets in characters, `end` inclusive, each text labelled whole ([`find_spans`](NerTask::find_spans)):
    /// an empty text has no entities.
    fn predict(&self, model: &NerModel, texts: &[String], device: &Device) -> kiln_task::Result<Vec<String>> {
        self.predict_texts(model, texts, false, device)
    }

    /// As [`predict`](Task::predict), each line already cut into tokens: at whitespace for a run
    /// of words, into characters for a run of characters.
    fn predict_tokenised(&self, model: &NerModel, lines: &[String], device: &Device) -> kiln_task::Result<Vec<String>> {
        self.predict_texts(model, lines, true, device)
    }

    fn predict_columns(
        &self,
        model: &NerModel,
        text: &str,
        source: &Path,
        device: &Device,
    ) -> kiln_task::Result<Vec<String>> {
        self.label_column_file(model, text, source, device)
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use std::path::{Path, PathBuf};

    /// An empty directory of this test process, named after `what`.
    pub(crate) fn scratch_dir(what: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("kiln-ner-{what}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    pub(crate) fn setup(dir: &Path) -> NerTask {
        setup_with(dir, "")
    }

    /// [`setup`] with extra `[model]` keys.
    pub(crate) fn setup_with(dir: &Path, model_keys: &str) -> NerTask {
        let train = "张 B-PER\n三 I-PER\n去 O\n北 B-LOC\n京 I-LOC\n\n李 B-PER\n四 I-PER\n\n";
        let valid = "张 B-PER\n三 I-PER\n到 O\n上 B-LOC\n海 I-LOC\n\n";
        std::fs::write(dir.join("train.txt"), train).unwrap();
        std::fs::write(dir.join("valid.txt"), valid).unwrap();
        let data: NerDataConfig = toml::from_str(&format!(
            "format = \"columns\"\ntrain = {:?}\nvalid = {:?}\nmax_len = 4",
            dir.join("train.txt"),
            dir.join("valid.txt")
        ))
        .unwrap();
        let model: NerModelConfig = toml::from_str(&format!(
            "head = {{ kind = \"global_pointer\", d_head = 8 }}\n{model_keys}\n[encoder]\nd_model = 16\nn_heads = 2\nn_layers = 1",
        ))
        .unwrap();
        model.validate().unwrap();
        NerTask::new(model, data).unwrap()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{features::*, *};
    use burn::nn::Embedding;

    use kiln_data::ner::{NerDataConfig, NerExample};
    use kiln_task::Task;

    use super::testing::*;

    /// `valid_fraction` holds out the training file's last sentences (after `train_limit`): they are
    /// the validation set, and the vocabulary, types and lexicon come from the rest only.
    #[test]
    fn valid_fraction_holds_out_the_last_training_sentences() {
        let dir = scratch_dir("fraction");
        let sentence = |name: &str, kind: &str| {
            let mut chars = name.chars();
            let first = chars.next().unwrap();
            let rest: String = chars.map(|c| format!("{c} I-{kind}\n")).collect();
            format!("{first} B-{kind}\n{rest}去 O\n\n")
        };
        // Ten sentences; the last two hold the only ORG and the only 王 and 五.
        let mut train: String = ["张三", "李四", "赵六", "钱七", "孙八", "周九", "吴十", "郑一"]
            .iter()
            .map(|n| sentence(n, "PER"))
            .collect();
        train += &sentence("王五", "PER");
        train += &sentence("中华", "ORG");
        train += &sentence("张三", "PER"); // past train_limit: never read
        std::fs::write(dir.join("train.txt"), train).unwrap();
        let data = |keys: &str| -> NerDataConfig {
            toml::from_str(&format!(
                "format = \"columns\"\ntrain = {:?}\ntrain_limit = 10\n{keys}",
                dir.join("train.txt")
            ))
            .unwrap()
        };
        let model: NerModelConfig = toml::from_str(
            "head = { kind = \"global_pointer\", d_head = 8 }\nlexicon = true\n[encoder]\nd_model = 16\nn_heads = 2\nn_layers = 1",
        )
        .unwrap();
        let held = data("valid_fraction = 0.2");
        held.validate().unwrap();
        let task = NerTask::new(model.clone(), held).unwrap();
        let names = |xs: &[NerExample]| xs.iter().map(|x| x.tokens[..2].concat()).collect::<Vec<_>>();
        assert_eq!(names(&task.valid), ["王五", "中华"]);
        assert_eq!(names(&task.train), ["张三", "李四", "赵六", "钱七", "孙八", "周九", "吴十", "郑一"]);
        assert_eq!(task.types(), ["PER"], "ORG is only in the held-out sentences");
        assert!(!task.vocab.contains_key("王") && task.vocab.contains_key("郑"));
        let lexicon = task.lexicon.as_ref().unwrap();
        assert!(lexicon.counts.contains_key("郑\u{1f}一") && !lexicon.counts.contains_key("王\u{1f}五"));
        // A fraction rounds to at least one sentence and leaves at least one to train on.
        let tiny = NerTask::new(model.clone(), data("valid_fraction = 0.01")).unwrap();
        assert_eq!((tiny.train.len(), tiny.valid.len()), (9, 1));
        for (keys, expected) in [
            ("valid_fraction = 1.0", "outside (0, 1)"),
            ("valid_fraction = 0.0", "outside (0, 1)"),
            ("", "data.valid: missing"),
            ("valid_fraction = 0.1\nvalid = \"v.txt\"", "not both"),
        ] {
            let err = data(keys).validate().unwrap_err().to_string();
            assert!(err.contains(expected), "{keys:?}: {err}");
            // The task checks its data keys itself, for callers that skip the config checks.
            let err = NerTask::new(model.clone(), data(keys)).err().expect("invalid keys").to_string();
            assert!(err.contains(expected), "NerTask::new, {keys:?}: {err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Types and vocabulary come from the training file; the cut at `max_len` drops entities that
    /// cross it from the labels; unseen characters map to [UNK].
    #[test]
    fn vocabulary_types_and_truncation() {
        let dir = scratch_dir("task");
        let task = setup(&dir);
        assert_eq!(task.types(), ["LOC", "PER"]);
        assert_eq!(task.vocab.len(), 7); // 张 三 去 北 京 李 四
        let device = Device::flex();
        let batch = task.batch(&[&task.valid[0]], false, &device);
        assert_eq!(batch.ids.dims(), [1, 4], "cut to max_len");
        let ids: Vec<i64> = batch.ids.into_data().convert::<i64>().try_to_vec::<i64>().unwrap();
        assert_eq!(ids[2], 1, "到 is not in the training vocabulary");
        // 上海 spans 3..=4, crossing the cut: only 张三 (PER = type 1) is a label.
        assert_eq!(batch.spans, vec![vec![Span { kind: 1, start: 0, end: 1 }]]);
        // Evaluation still counts both gold entities (recall pays for the cut).
        let model = task.build_model(&device).unwrap();
        let m = task.evaluate(&model, Split::Valid, &device).unwrap();
        assert_eq!(m[0].0, "f1");
        assert!(task.evaluate(&model, Split::Test, &device).unwrap().is_empty(), "no test file configured");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `[model] threshold` is the decision boundary of evaluation: far below every score, every span
    /// of both types in each window is an entity, and the 5-character sentence (max_len 4) is two
    /// windows: 0..4 keeps the 7 spans starting at 0 or 1, 1..5 the 6 starting at 2, 3 or 4, so 26
    /// entities, both gold ones among them (张三 from the first window, 上海 from the second, which a
    /// cut at max_len would lose); far above, none is.
    #[test]
    fn the_threshold_decides_which_spans_are_entities() {
        let dir = scratch_dir("threshold");
        let mut task = setup(&dir);
        let device = Device::flex();
        let model = task.build_model(&device).unwrap();
        let get = |m: &Metrics, key: &str| m.iter().find(|(k, _)| k == key).unwrap().1;
        task.model.threshold = -1e6;
        let all = task.evaluate(&model, Split::Valid, &device).unwrap();
        assert_eq!((get(&all, "precision"), get(&all, "recall")), (2.0 / 26.0, 1.0));
        task.model.threshold = 1e6;
        let none = task.evaluate(&model, Split::Valid, &device).unwrap();
        assert_eq!((get(&none, "precision"), get(&none, "recall")), (0.0, 0.0));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// `embedding_std` sets the spread of the character and bigram embeddings; without it they are
    /// Burn's `N(0, 1)`.
    #[test]
    fn embedding_std_sets_the_character_and_bigram_embedding_scale() {
        let dir = scratch_dir("embedding_std");
        let spreads = |keys: &str| {
            let task = setup_with(&dir, &format!("bigrams = true\nbigram_min_count = 1\n{keys}"));
            let model = task.build_model(&Device::flex()).unwrap();
            let spread = |e: &Embedding| {
                let w: Vec<f32> = e.weight.val().into_data().iter::<f32>().collect();
                let mean = w.iter().sum::<f32>() / w.len() as f32;
                (w.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / w.len() as f32).sqrt()
            };
            (spread(model.embedding.as_ref().unwrap()), spread(model.bigram_embedding.as_ref().unwrap()))
        };
        // 9 x 16 and 16 x 32 values: the sample spread is within 25% of the drawn one.
        let (chars, bigrams) = spreads("embedding_std = 0.02");
        assert!((0.015..0.025).contains(&chars) && (0.015..0.025).contains(&bigrams), "{chars} {bigrams}");
        let (chars, bigrams) = spreads("");
        assert!((0.75..1.25).contains(&chars) && (0.75..1.25).contains(&bigrams), "{chars} {bigrams}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// What a run saves rebuilds the task without the data files: the same ids, bigram ids and
    /// lexicon indicators for a sentence; a damaged file, or one that disagrees with the config, is
    /// an error naming it.
    #[test]
    fn a_run_directory_rebuilds_the_task_without_the_data() {
        let dir = scratch_dir("saved");
        let mut task = setup(&dir);
        task.model.bigrams = true;
        task.model.lexicon = true;
        task.bigram_vocab = bigram_vocabulary(&task.train, 1);
        task.lexicon = Some(Lexicon::new(&task.train, task.data.max_len, 2, |l| task.type_index(l)));
        let run = dir.join("run");
        std::fs::create_dir_all(&run).unwrap();
        task.save_artifacts(&run).unwrap();
        let mut moved = task.data.clone();
        moved.train = dir.join("gone/train.txt");
        moved.valid = Some(dir.join("gone/valid.txt"));
        let rebuilt = NerTask::from_run(task.model.clone(), moved.clone(), &run).unwrap();
        assert!(rebuilt.train.is_empty(), "nothing was read");
        assert_eq!(
            (&rebuilt.vocab, &rebuilt.bigram_vocab, &rebuilt.types),
            (&task.vocab, &task.bigram_vocab, &task.types)
        );
        let device = Device::flex();
        let sentence =
            NerExample { tokens: "到张三去北京".chars().map(String::from).collect(), entities: vec![] };
        let as_data = |t: &NerTask| {
            let b = t.batch(&[&sentence], false, &device);
            let ints = |x: Tensor<2, Int>| x.into_data().convert::<i64>().try_to_vec::<i64>().unwrap();
            let lexicon = b.features.lexicon.unwrap().into_data().try_to_vec::<f32>().unwrap();
            (ints(b.ids), ints(b.features.bigrams.unwrap()), lexicon)
        };
        let (ids, bigrams, lexicon) = as_data(&rebuilt);
        assert_eq!((&ids, &bigrams, &lexicon), (&as_data(&task).0, &as_data(&task).1, &as_data(&task).2));
        assert_eq!((ids.len(), ids[0]), (4, UNK_ID), "cut at max_len 4; 到 is not in the training vocabulary");
        assert_eq!(lexicon.iter().sum::<f32>(), 2.0, "张三 begins and ends; 北京 is cut at max_len 4");

        let mut no_lexicon = task.model.clone();
        no_lexicon.lexicon = false;
        let err = NerTask::from_run(no_lexicon, moved.clone(), &run).err().unwrap().to_string();
        assert!(err.contains("ner_vocabulary.json") && err.contains("lexicon = false"), "{err}");
        std::fs::write(run.join(VOCABULARY_FILE), "{\"types\": [\"PER\"]}").unwrap();
        let err = format!("{:#}", NerTask::from_run(task.model.clone(), moved, &run).err().unwrap());
        assert!(err.contains("ner_vocabulary.json: not a vocabulary written by kiln train"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
