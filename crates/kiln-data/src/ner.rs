//! Named-entity datasets in their publishers' formats, as token sequences with inclusive entity spans.
//! CLUENER and column files are read line by line (never held whole; invalid UTF-8 and lines over
//! [`crate::lines::MAX_LINE_BYTES`] are named by line), CMeEE whole (it may be one JSON array).
//!
//! - **CLUENER** JSON lines: `{"text": ..., "label": {type: {surface: [[start, end], ...]}}}`, character
//!   offsets, `end` inclusive; the test file has no `label`.
//! - **Column files**, one token per line and a blank line (or a `-DOCSTART-` line, [`crate::sentences`])
//!   between sentences: the token in the first
//!   column, the tag in the last (extra columns between are ignored), tab- or space-separated, CRLF or
//!   LF. Character-per-line Chinese files (People's Daily, MSRA, Weibo) and CoNLL-style word-per-line
//!   files are the same format. Tags are BIO, BIOES or BMES (`M` = `I`), read as conlleval does: an
//!   `I-X`/`E-X` that does not continue a chunk of type `X` starts a new one (and is counted as
//!   inconsistent), and a type change ends a chunk. Weibo's characters carry a word-position digit
//!   (`科0`), removed with [`ColumnOptions::strip_digit_suffix`].
//! - **CMeEE** (CBLUE) JSON: an array (or JSON lines) of `{"text", "entities": [{"start_idx", "end_idx",
//!   "type"}]}`, `end_idx` inclusive.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::DataError;
use crate::lines::Lines;
use crate::sentences::column_sentences;
use crate::words::TokenUnit;

/// An entity: a type name and inclusive token span.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Entity {
    /// Entity type.
    pub label: String,
    /// First token.
    pub start: usize,
    /// Last token (inclusive).
    pub end: usize,
}

/// One sentence: its tokens (characters for Chinese files) and entities.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NerExample {
    /// Tokens.
    pub tokens: Vec<String>,
    /// Entities, sorted by `(start, end, label)`.
    pub entities: Vec<Entity>,
}

/// How to read a column file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ColumnOptions {
    /// Drop one trailing ASCII digit from each token (Weibo NER's word-position marks).
    pub strip_digit_suffix: bool,
}

impl ColumnOptions {
    /// The token of a line's first column, its digit suffix dropped when asked.
    pub fn token(&self, column: &str) -> String {
        let mut token = column.to_string();
        if self.strip_digit_suffix && token.chars().count() > 1 && token.ends_with(|c: char| c.is_ascii_digit()) {
            token.pop();
        }
        token
    }
}

/// A dataset read from one file, with the number of tags conlleval would call inconsistent.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NerFile {
    /// Sentences in file order.
    pub examples: Vec<NerExample>,
    /// Tags that conlleval's reading repairs: an `I-`/`E-`/`M-` that starts a chunk (no `B-` of its
    /// type before it, including a type change inside a chunk).
    pub inconsistent_tags: usize,
    /// The line of the first of them.
    pub first_inconsistent_line: Option<usize>,
}

fn sort(mut entities: Vec<Entity>) -> Vec<Entity> {
    entities.sort_by(|a, b| (a.start, a.end, &a.label).cmp(&(b.start, b.end, &b.label)));
    entities.dedup();
    entities
}

/// Read a CLUENER JSON-lines file.
///
/// # Errors
///
/// A line that is not JSON of that shape, or a span outside its text (file and line named).
pub fn read_cluener(path: &Path) -> Result<NerFile, DataError> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    read_cluener_from(file, path)
}

/// [`read_cluener`] from any reader; `path` names it in errors.
///
/// # Errors
///
/// As [`read_cluener`].
pub fn read_cluener_from(reader: impl Read, path: &Path) -> Result<NerFile, DataError> {
    #[derive(Deserialize)]
    struct Line {
        text: String,
        #[serde(default)]
        label: std::collections::BTreeMap<String, std::collections::BTreeMap<String, Vec<Vec<usize>>>>,
    }
    let mut examples = Vec::new();
    for line in Lines::new(BufReader::new(reader), path) {
        let (n, line) = line?;
        if line.trim().is_empty() {
            continue;
        }
        let at = format!("line {n}");
        let parsed: Line = serde_json::from_str(&line).map_err(|e| DataError::format(path, &at, e.to_string()))?;
        let tokens: Vec<String> = parsed.text.chars().map(String::from).collect();
        let mut entities = Vec::new();
        for (label, surfaces) in parsed.label {
            for (surface, spans) in surfaces {
                for span in spans {
                    let &[start, end] = span.as_slice() else {
                        return Err(DataError::format(
                            path,
                            &at,
                            format!("{label} `{surface}` span {span:?} is not [start, end]"),
                        ));
                    };
                    if start > end {
                        return Err(DataError::format(
                            path,
                            &at,
                            format!(
                                "{label} `{surface}` span [{start}, {end}] is reversed: its start is after its end"
                            ),
                        ));
                    }
                    if end >= tokens.len() {
                        return Err(DataError::format(
                            path,
                            &at,
                            format!(
                                "{label} `{surface}` span [{start}, {end}] is outside a text of {} characters",
                                tokens.len()
                            ),
                        ));
                    }
                    let found: String = tokens[start..=end].concat();
                    if found != surface {
                        return Err(DataError::format(
                            path,
                            &at,
                            format!(
                                "{label} span [{start}, {end}] reads `{found}`, the file says `{surface}` (end must be inclusive)"
                            ),
                        ));
                    }
                    entities.push(Entity { label: label.clone(), start, end });
                }
            }
        }
        examples.push(NerExample { tokens, entities: sort(entities) });
    }
    Ok(NerFile { examples, ..NerFile::default() })
}

/// Split `B-PER` into `('B', "PER")`; `O` into `('O', "")`. `M` (BMES) reads as `I`.
fn split_tag(tag: &str) -> Option<(char, &str)> {
    if tag == "O" {
        return Some(('O', ""));
    }
    let (prefix, kind) = tag.split_once('-')?;
    let p = match prefix {
        "B" | "I" | "E" | "S" => prefix.chars().next()?,
        "M" => 'I',
        _ => return None,
    };
    (!kind.is_empty()).then_some((p, kind))
}

/// Chunks of a tag sequence by conlleval's rules; also the positions of the chunks started by `I`/`E`
/// (no `B-` before them, or a type change inside a chunk), which conlleval repairs that way.
///
/// # Errors
///
/// A tag that is not `O` or `{B,I,M,E,S}-TYPE`: its index in the sequence.
pub fn tags_to_entities(tags: &[&str]) -> Result<(Vec<Entity>, Vec<usize>), usize> {
    let mut entities = Vec::new();
    let mut inconsistent = Vec::new();
    let (mut prev, mut prev_kind) = ('O', "");
    let mut open: Option<(usize, &str)> = None;
    for (i, tag) in tags.iter().enumerate() {
        let (cur, kind) = split_tag(tag).ok_or(i)?;
        let ends = matches!(prev, 'E' | 'S')
            || (matches!(prev, 'B' | 'I') && matches!(cur, 'B' | 'S' | 'O'))
            || (prev != 'O' && prev_kind != kind);
        let starts = matches!(cur, 'B' | 'S')
            || (matches!(prev, 'E' | 'S' | 'O') && matches!(cur, 'I' | 'E'))
            || (cur != 'O' && prev_kind != kind);
        if ends && let Some((start, k)) = open.take() {
            entities.push(Entity { label: k.to_string(), start, end: i - 1 });
        }
        if starts && cur != 'O' {
            if matches!(cur, 'I' | 'E') {
                inconsistent.push(i);
            }
            open = Some((i, kind));
        }
        (prev, prev_kind) = (cur, kind);
    }
    if let Some((start, k)) = open {
        entities.push(Entity { label: k.to_string(), start, end: tags.len() - 1 });
    }
    Ok((entities, inconsistent))
}

/// Read a column file (character- or word-per-line, BIO/BIOES/BMES tags in the last column).
///
/// # Errors
///
/// A line with one column or an unknown tag (file and line named).
pub fn read_columns(path: &Path, options: ColumnOptions) -> Result<NerFile, DataError> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    read_columns_from(file, path, options)
}

/// [`read_columns`] from any reader; `path` names it in errors.
///
/// # Errors
///
/// As [`read_columns`].
pub fn read_columns_from(reader: impl Read, path: &Path, options: ColumnOptions) -> Result<NerFile, DataError> {
    let mut out = NerFile::default();
    for sentence in column_sentences(Lines::new(BufReader::new(reader), path)) {
        let sentence = sentence?;
        let (mut tokens, mut tags) = (Vec::with_capacity(sentence.len()), Vec::with_capacity(sentence.len()));
        for (n, line) in &sentence {
            let cols: Vec<&str> = line.split(['\t', ' ']).filter(|c| !c.is_empty()).collect();
            if cols.len() < 2 {
                return Err(DataError::format(path, format!("line {n}"), format!("`{line}` has no tag column")));
            }
            tokens.push(options.token(cols[0]));
            tags.push(cols[cols.len() - 1]);
        }
        let line_of = |i: usize| format!("line {}", sentence[i].0);
        let (entities, bad) = tags_to_entities(&tags).map_err(|i| {
            DataError::format(path, line_of(i), format!("unknown tag `{}`; expected O or B-/I-/M-/E-/S-TYPE", tags[i]))
        })?;
        if let Some(&first) = bad.first() {
            out.first_inconsistent_line.get_or_insert(sentence[first].0);
        }
        out.inconsistent_tags += bad.len();
        out.examples.push(NerExample { tokens, entities: sort(entities) });
    }
    Ok(out)
}

/// Read a CMeEE (CBLUE) file: a JSON array, or JSON lines, of `{"text", "entities"}`.
///
/// # Errors
///
/// Malformed JSON or a span outside its text.
pub fn read_cmeee(path: &Path) -> Result<NerFile, DataError> {
    parse_cmeee(&crate::lines::read_utf8(path)?, path)
}

/// [`read_cmeee`] of a file's text; `path` names it in errors.
///
/// # Errors
///
/// As [`read_cmeee`].
pub fn parse_cmeee(text: &str, path: &Path) -> Result<NerFile, DataError> {
    #[derive(Deserialize)]
    struct Item {
        text: String,
        #[serde(default)]
        entities: Vec<Span>,
    }
    #[derive(Deserialize)]
    struct Span {
        start_idx: usize,
        end_idx: usize,
        #[serde(rename = "type")]
        kind: String,
    }
    let items: Vec<(usize, Item)> = if text.trim_start().starts_with('[') {
        let items: Vec<Item> = serde_json::from_str(text)
            .map_err(|e| DataError::format(path, format!("line {}", e.line()), e.to_string()))?;
        items.into_iter().map(|i| (0, i)).collect()
    } else {
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(n, l)| {
                serde_json::from_str(l)
                    .map(|i| (n + 1, i))
                    .map_err(|e| DataError::format(path, format!("line {}", n + 1), e.to_string()))
            })
            .collect::<Result<_, _>>()?
    };
    let mut examples = Vec::new();
    for (k, (line, item)) in items.into_iter().enumerate() {
        let tokens: Vec<String> = item.text.chars().map(String::from).collect();
        let mut entities = Vec::new();
        for s in item.entities {
            if s.start_idx > s.end_idx || s.end_idx >= tokens.len() {
                let at = if line > 0 { format!("line {line}") } else { format!("item {k}") };
                return Err(DataError::format(
                    path,
                    at,
                    format!("span [{}, {}] outside {} characters", s.start_idx, s.end_idx, tokens.len()),
                ));
            }
            entities.push(Entity { label: s.kind, start: s.start_idx, end: s.end_idx });
        }
        examples.push(NerExample { tokens, entities: sort(entities) });
    }
    Ok(NerFile { examples, ..NerFile::default() })
}

/// The file formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NerFormat {
    /// CLUENER JSON lines.
    Cluener,
    /// Token-per-line column files (BIO, BIOES, BMES).
    Columns,
    /// CMeEE (CBLUE) JSON.
    Cmeee,
}

/// `[data]` of `kind = "ner"`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NerDataConfig {
    /// File format.
    pub format: NerFormat,
    /// Training file.
    pub train: PathBuf,
    /// Validation file (exclusive with `valid_fraction`).
    #[serde(default)]
    pub valid: Option<PathBuf>,
    /// Instead of a validation file: hold out this fraction of the training file's sentences, the
    /// last ones (as Keras' `validation_split`; a contiguous tail keeps whole documents on one side),
    /// after `train_limit`. Vocabularies and the lexicon are built from the rest. For datasets
    /// without a dev split (MSRA), so that checkpoints and decoding thresholds are chosen without
    /// looking at the test file.
    #[serde(default)]
    pub valid_fraction: Option<f64>,
    /// Test file with labels, if any (CLUENER's test file has none).
    #[serde(default)]
    pub test: Option<PathBuf>,
    /// Column files: drop a trailing digit from each token (Weibo).
    #[serde(default)]
    pub strip_digit_suffix: bool,
    /// Longest sentence in characters; longer ones are cut.
    #[serde(default = "default_max_len")]
    pub max_len: usize,
    /// Use only the first `train_limit` training sentences.
    #[serde(default)]
    pub train_limit: Option<usize>,
    /// What a token is, for `kiln predict` to cut raw text the way the training data was cut:
    /// `"characters"` or `"words"`. Default: characters for CLUENER and CMeEE; for column files,
    /// characters when every training token is one character (MSRA, People's Daily), else words
    /// (CoNLL-2003 style). Recorded with the run.
    #[serde(default)]
    pub tokens: Option<TokenUnit>,
    /// Training batches of sentences of similar length (Hugging Face's `group_by_length`; see
    /// `EpochSampler::batch_grouped_by_length`): less padding, faster steps. Default false.
    #[serde(default)]
    pub group_by_length: bool,
}

fn default_max_len() -> usize {
    256
}

impl NerDataConfig {
    /// The files this config reads.
    pub fn paths(&self) -> Vec<&Path> {
        let mut v = vec![self.train.as_path()];
        v.extend(self.valid.as_deref());
        v.extend(self.test.as_deref());
        v
    }

    /// Checks of the data keys.
    ///
    /// # Errors
    ///
    /// The first invalid value.
    pub fn validate(&self) -> Result<(), DataError> {
        let invalid = |m: &str| Err(DataError::Invalid(m.to_string()));
        if self.max_len == 0 {
            return invalid("data.max_len must be positive");
        }
        match (&self.valid, self.valid_fraction) {
            (Some(_), Some(_)) => {
                invalid("data.valid_fraction: give either data.valid (a file) or data.valid_fraction, not both")
            }
            (None, None) => invalid(
                "data.valid: missing; give a validation file, or data.valid_fraction to hold out part of the training file",
            ),
            (None, Some(f)) if !(f > 0.0 && f < 1.0) => invalid(&format!("data.valid_fraction: {f} is outside (0, 1)")),
            _ => Ok(()),
        }
    }

    /// What a token of this data is: `tokens` if given, else as its doc says, from the training file.
    pub fn token_unit(&self, train: &NerFile) -> TokenUnit {
        self.tokens.unwrap_or(match self.format {
            NerFormat::Cluener | NerFormat::Cmeee => TokenUnit::Characters,
            NerFormat::Columns => {
                let one_char = |t: &String| t.chars().nth(1).is_none();
                if train.examples.iter().all(|x| x.tokens.iter().all(one_char)) {
                    TokenUnit::Characters
                } else {
                    TokenUnit::Words
                }
            }
        })
    }

    /// Make relative paths absolute against `dir`.
    pub fn resolve_paths(&mut self, dir: &Path) {
        for p in std::iter::once(&mut self.train).chain(self.valid.as_mut()).chain(self.test.as_mut()) {
            if p.is_relative() {
                *p = dir.join(&*p);
            }
        }
    }

    /// Read one of the files in this config's format.
    ///
    /// # Errors
    ///
    /// The file cannot be read, is malformed, or holds no sentences.
    pub fn read(&self, path: &Path) -> Result<NerFile, DataError> {
        let file = match self.format {
            NerFormat::Cluener => read_cluener(path)?,
            NerFormat::Cmeee => read_cmeee(path)?,
            NerFormat::Columns => read_columns(path, ColumnOptions { strip_digit_suffix: self.strip_digit_suffix })?,
        };
        if file.examples.is_empty() {
            return Err(DataError::Invalid(format!("{}: no sentences", path.display())));
        }
        Ok(file)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(label: &str, start: usize, end: usize) -> Entity {
        Entity { label: label.into(), start, end }
    }

    #[test]
    fn conlleval_chunking_of_bio_bioes_bmes() {
        let t = |tags: &str| tags_to_entities(&tags.split(' ').collect::<Vec<_>>()).unwrap();
        assert_eq!(t("B-PER I-PER O B-LOC"), (vec![e("PER", 0, 1), e("LOC", 3, 3)], vec![]));
        assert_eq!(t("B-PER B-PER I-PER"), (vec![e("PER", 0, 0), e("PER", 1, 2)], vec![]));
        // I without B starts a chunk (counted); a type change ends one (and an I- of the new type
        // is counted too).
        assert_eq!(t("O I-ORG I-ORG I-LOC"), (vec![e("ORG", 1, 2), e("LOC", 3, 3)], vec![1, 3]));
        assert_eq!(t("B-PER I-LOC B-LOC"), (vec![e("PER", 0, 0), e("LOC", 1, 1), e("LOC", 2, 2)], vec![1]));
        assert_eq!(t("B-NR M-NR E-NR S-NS O"), (vec![e("NR", 0, 2), e("NS", 3, 3)], vec![]));
        assert_eq!(t("B-X E-X E-X"), (vec![e("X", 0, 1), e("X", 2, 2)], vec![2]));
        assert_eq!(tags_to_entities(&["O", "B_PER"]), Err(1));
    }

    #[test]
    fn column_files_with_crlf_tabs_extra_columns_and_digit_suffixes() {
        let msra = "中 B-NS\r\n国 E-NS\r\n人 O\r\n\r\n张 S-NR\r\n";
        let f = read_columns_from(msra.as_bytes(), Path::new("msra.txt"), ColumnOptions::default()).unwrap();
        assert_eq!(f.examples.len(), 2);
        assert_eq!(f.examples[0].tokens, ["中", "国", "人"]);
        assert_eq!(f.examples[0].entities, vec![e("NS", 0, 1)]);
        assert_eq!(f.examples[1].entities, vec![e("NR", 0, 0)]);
        let weibo = "科0\tB-PER.NAM\n比1\tI-PER.NAM\n10\tO\n\n";
        let opts = ColumnOptions { strip_digit_suffix: true };
        let f = read_columns_from(weibo.as_bytes(), Path::new("weibo"), opts).unwrap();
        assert_eq!(f.examples[0].tokens, ["科", "比", "1"], "a lone digit is a token, its suffix goes");
        assert_eq!(f.examples[0].entities, vec![e("PER.NAM", 0, 1)]);
        let conll = "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman JJ B-NP B-MISC\n";
        let f = read_columns_from(conll.as_bytes(), Path::new("conll"), ColumnOptions::default()).unwrap();
        assert_eq!(f.examples[0].entities, vec![e("ORG", 0, 0), e("MISC", 2, 2)]);
        assert_eq!((f.inconsistent_tags, f.first_inconsistent_line), (0, None));
        // Repaired tags are counted, with the line of the first.
        let repaired = "-DOCSTART- -X- O O\n\nEU B-ORG\nsays O\n\nPeter I-PER\nBlack I-PER\nof B-PER\nBonn I-LOC\n";
        let f = read_columns_from(repaired.as_bytes(), Path::new("conll"), ColumnOptions::default()).unwrap();
        assert_eq!((f.inconsistent_tags, f.first_inconsistent_line), (2, Some(6)));
        assert_eq!(f.examples[1].entities, vec![e("PER", 0, 1), e("PER", 2, 2), e("LOC", 3, 3)]);
        let err = read_columns_from("a O\nb\n".as_bytes(), Path::new("bad.txt"), opts).unwrap_err().to_string();
        assert!(err.contains("bad.txt: line 2: `b` has no tag column"), "{err}");
        let err = read_columns_from("a O\nb X-Y\n".as_bytes(), Path::new("bad.txt"), opts).unwrap_err().to_string();
        assert!(err.contains("bad.txt: line 2: unknown tag `X-Y`"), "{err}");
    }

    /// Characters for the character formats and for column files of one-character tokens; words for
    /// a column file with longer tokens; the key wins over both.
    #[test]
    fn token_unit_follows_the_data_unless_given() {
        let config = |format: &str, tokens: &str| -> NerDataConfig {
            toml::from_str(&format!("format = \"{format}\"\ntrain = \"t\"\nvalid = \"v\"\n{tokens}")).unwrap()
        };
        let file = |text: &str| read_columns_from(text.as_bytes(), Path::new("f"), ColumnOptions::default()).unwrap();
        let chars = file("中 B-NS\n国 E-NS\n\n人 O\n");
        let words = file("EU B-ORG\nrejects O\n\nit O\n");
        assert_eq!(config("columns", "").token_unit(&chars), TokenUnit::Characters);
        assert_eq!(config("columns", "").token_unit(&words), TokenUnit::Words);
        assert_eq!(config("cluener", "").token_unit(&words), TokenUnit::Characters);
        assert_eq!(config("columns", "tokens = \"characters\"").token_unit(&words), TokenUnit::Characters);
        assert_eq!(config("cmeee", "tokens = \"words\"").token_unit(&chars), TokenUnit::Words);
    }

    #[test]
    fn cluener_and_cmeee_json() {
        let dir = std::env::temp_dir().join(format!("kiln-ner-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("dev.json");
        std::fs::write(
            &p,
            "{\"text\":\"浙商银行叶老桂\",\"label\":{\"name\":{\"叶老桂\":[[4,6]]},\"company\":{\"浙商银行\":[[0,3]]}}}\n{\"text\":\"无\"}\n",
        )
        .unwrap();
        let f = read_cluener(&p).unwrap();
        assert_eq!(f.examples[0].entities, vec![e("company", 0, 3), e("name", 4, 6)]);
        assert!(f.examples[1].entities.is_empty());
        std::fs::write(&p, "{\"text\":\"浙商银行\",\"label\":{\"company\":{\"浙商银行\":[[0,4]]}}}\n").unwrap();
        let err = read_cluener(&p).unwrap_err().to_string();
        assert!(err.contains("dev.json: line 1:") && err.contains("outside"), "{err}");
        std::fs::write(&p, "{\"text\":\"浙商银行\",\"label\":{\"company\":{\"浙商\":[[0,2]]}}}\n").unwrap();
        assert!(read_cluener(&p).unwrap_err().to_string().contains("inclusive"));
        std::fs::write(&p, "{\"text\":\"浙商银行\",\"label\":{\"company\":{\"浙商\":[[1,0]]}}}\n").unwrap();
        let err = read_cluener(&p).unwrap_err().to_string();
        assert!(err.contains("dev.json: line 1:") && err.contains("[1, 0] is reversed"), "{err}");
        let c = dir.join("CMeEE_dev.json");
        std::fs::write(
            &c,
            r#"[{"text":"患者咳嗽三天","entities":[{"start_idx":2,"end_idx":3,"type":"sym","entity":"咳嗽"}]}]"#,
        )
        .unwrap();
        assert_eq!(read_cmeee(&c).unwrap().examples[0].entities, vec![e("sym", 2, 3)]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The shared datasets: sentence counts from the datasets README, and every entity span inside
    /// its sentence.
    #[test]
    #[ignore = "needs the datasets: set KILN_DATA_DIR (e.g. ../shared/datasets)"]
    fn real_files_read_with_the_published_counts() {
        let root = std::path::PathBuf::from(std::env::var("KILN_DATA_DIR").expect("KILN_DATA_DIR"));
        let plain = ColumnOptions::default();
        let weibo = ColumnOptions { strip_digit_suffix: true };
        let cases: Vec<(&str, NerFile, usize)> = vec![
            ("cluener/train.json", read_cluener(&root.join("cluener/train.json")).unwrap(), 10_748),
            ("cluener/dev.json", read_cluener(&root.join("cluener/dev.json")).unwrap(), 1_343),
            ("peoples_daily/example.dev", read_columns(&root.join("peoples_daily/example.dev"), plain).unwrap(), 2_318),
            (
                "peoples_daily/example.test",
                read_columns(&root.join("peoples_daily/example.test"), plain).unwrap(),
                4_636,
            ),
            ("msra/msra_train.txt", read_columns(&root.join("msra/msra_train.txt"), plain).unwrap(), 50_289),
            ("msra/msra_test.txt", read_columns(&root.join("msra/msra_test.txt"), plain).unwrap(), 5_000),
            ("weibo train", read_columns(&root.join("weibo/weiboNER_2nd_conll.train"), weibo).unwrap(), 1_350),
            ("weibo dev", read_columns(&root.join("weibo/weiboNER_2nd_conll.dev"), weibo).unwrap(), 270),
        ];
        for (name, file, count) in cases {
            let entities: usize = file.examples.iter().map(|x| x.entities.len()).sum();
            eprintln!(
                "{name}: {} sentences, {entities} entities, {} inconsistent tags",
                file.examples.len(),
                file.inconsistent_tags
            );
            assert_eq!(file.examples.len(), count, "{name}");
            assert!(entities > count / 4, "{name}: only {entities} entities");
            for x in &file.examples {
                assert!(x.entities.iter().all(|e| e.end < x.tokens.len()), "{name}");
            }
        }
    }
}
