//! A UTF-8 text corpus and its character vocabulary, for character-level language models
//! (the setting of Karpathy's char-rnn and nanoGPT's `shakespeare_char`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::DataError;

/// The characters of a corpus, sorted, each with an id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CharVocab {
    chars: Vec<char>,
}

impl CharVocab {
    /// The sorted set of characters in `text`.
    pub fn from_text(text: &str) -> Self {
        let set: BTreeSet<char> = text.chars().collect();
        Self { chars: set.into_iter().collect() }
    }

    /// Rebuild from the characters in id order (as written by [`CharVocab::to_text`]).
    pub fn from_chars(chars: Vec<char>) -> Self {
        Self { chars }
    }

    /// The characters in id order, as one string (saved with a run).
    pub fn to_text(&self) -> String {
        self.chars.iter().collect()
    }

    /// Number of characters.
    pub fn len(&self) -> usize {
        self.chars.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.chars.is_empty()
    }

    /// The id of `c`, if it is in the vocabulary.
    pub fn id(&self, c: char) -> Option<u32> {
        self.chars.binary_search(&c).ok().map(|i| i as u32)
    }

    /// The character of `id`.
    pub fn char(&self, id: u32) -> Option<char> {
        self.chars.get(id as usize).copied()
    }

    /// Encode `text`; characters outside the vocabulary are an error naming the first one.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>, char> {
        text.chars().map(|c| self.id(c).ok_or(c)).collect()
    }

    /// Decode ids (unknown ids become U+FFFD).
    pub fn decode(&self, ids: &[u32]) -> String {
        ids.iter().map(|&i| self.char(i).unwrap_or('\u{FFFD}')).collect()
    }
}

/// A corpus split into training and validation ids (the first `1 − valid_fraction` for training,
/// the rest for validation, as nanoGPT's `prepare.py` does).
#[derive(Debug, Clone)]
pub struct CharCorpus {
    /// The vocabulary of the whole file.
    pub vocab: CharVocab,
    /// Training ids.
    pub train: Vec<u32>,
    /// Validation ids.
    pub valid: Vec<u32>,
}

impl CharCorpus {
    /// Read a UTF-8 file and split it.
    pub fn read(path: &Path, valid_fraction: f64) -> Result<Self, DataError> {
        let text = crate::lines::read_utf8(path)?;
        Self::from_text(&text, valid_fraction).map_err(|m| DataError::format(path, "whole file", m))
    }

    /// Split a text already in memory.
    pub fn from_text(text: &str, valid_fraction: f64) -> Result<Self, String> {
        if !(0.0..1.0).contains(&valid_fraction) {
            return Err(format!("valid_fraction must be in [0, 1), got {valid_fraction}"));
        }
        let vocab = CharVocab::from_text(text);
        let ids = vocab.encode(text).expect("every character is in its own vocabulary");
        let n_train = ((1.0 - valid_fraction) * ids.len() as f64) as usize;
        if n_train < 2 || ids.len() - n_train < 2 {
            return Err(format!("a text of {} characters is too short to split", ids.len()));
        }
        Ok(Self { vocab, train: ids[..n_train].to_vec(), valid: ids[n_train..].to_vec() })
    }
}

/// `[data] kind = "text"`: a UTF-8 file, split into training and validation text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextDataConfig {
    /// The text file (relative paths resolve against the data directory).
    pub path: PathBuf,
    /// The last fraction of the file is validation text.
    #[serde(default = "default_valid_fraction")]
    pub valid_fraction: f64,
    /// Random validation windows per evaluation (fixed across evaluations).
    #[serde(default = "default_eval_batches")]
    pub eval_batches: usize,
    /// Windows per evaluation batch.
    #[serde(default = "default_eval_batch_size")]
    pub eval_batch_size: usize,
}

fn default_valid_fraction() -> f64 {
    0.1
}
fn default_eval_batches() -> usize {
    20
}
fn default_eval_batch_size() -> usize {
    32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_round_trips() {
        let v = CharVocab::from_text("hello, wörld\n");
        assert_eq!(v.to_text(), "\n ,dehlorwö");
        let ids = v.encode("world").unwrap();
        assert_eq!(v.decode(&ids), "world");
        assert_eq!(v.encode("hex"), Err('x'));
        assert_eq!(CharVocab::from_chars(v.to_text().chars().collect()), v);
    }

    #[test]
    fn split_and_invalid_utf8() {
        let c = CharCorpus::from_text("abcdefghij", 0.2).unwrap();
        assert_eq!((c.train.len(), c.valid.len()), (8, 2));
        let dir = std::env::temp_dir().join(format!("kiln-text-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("bad.txt");
        std::fs::write(&p, b"line one\nline \xff two\n").unwrap();
        let err = CharCorpus::read(&p, 0.1).unwrap_err().to_string();
        assert!(err.contains("bad.txt") && err.contains("line 2") && err.contains("invalid UTF-8"), "{err}");
        let err = CharCorpus::read(&dir.join("missing.txt"), 0.1).unwrap_err().to_string();
        assert!(err.contains("missing.txt"), "{err}");
        std::fs::remove_dir_all(&dir).ok();
    }
}
