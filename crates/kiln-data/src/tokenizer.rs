//! WordPiece tokenisation for BERT checkpoints, through the Hugging Face `tokenizers` crate.
//!
//! A checkpoint directory holds `tokenizer.json` (the fast tokenizer: normaliser, pre-tokeniser,
//! WordPiece model, `[CLS] … [SEP]` template) or only `vocab.txt` (then `tokenizer_config.json`'s
//! `do_lower_case`, default `true`, picks the normaliser, as `BertTokenizer` does). Padding and
//! truncation stored in `tokenizer.json` are replaced by ours: sequences are cut to `max_seq_len`
//! tokens (special tokens included) and a batch is padded to its longest sequence only, which is what
//! sentence-transformers does.
//!
//! Offsets are in characters of the input (not bytes), so entity spans of Chinese text map back.

use std::path::{Path, PathBuf};

use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{Model, Tokenizer, TruncationParams};

use crate::DataError;

/// One tokenised text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Token ids, `[CLS]` first and `[SEP]` last.
    pub ids: Vec<u32>,
    /// Segment ids (0 for a single sentence).
    pub type_ids: Vec<u32>,
    /// `(start, end)` character offsets of each token in the text; `(0, 0)` for special tokens.
    pub offsets: Vec<(usize, usize)>,
}

/// Pre-split words tokenised piece by piece (Hugging Face's `is_split_into_words`), with the word
/// each token came from, so that labels on words (characters, for Chinese) map to tokens and back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedWords {
    /// `[CLS]`, the pieces of each kept word, `[SEP]`.
    pub encoded: Encoded,
    /// For each token, the index of its word; `None` for `[CLS]` and `[SEP]`.
    pub word_of_token: Vec<Option<usize>>,
    /// The index of the first token of each kept word.
    pub first_token: Vec<usize>,
    /// The index of the last token of each kept word.
    pub last_token: Vec<usize>,
}

/// A padded batch: row-major `[batch, max_len]` ids with the real length of each row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenBatch {
    /// Token ids, `pad_id` after each row's length.
    pub ids: Vec<u32>,
    /// Segment ids, 0 at padding.
    pub type_ids: Vec<u32>,
    /// Real tokens per row.
    pub lengths: Vec<usize>,
    /// Columns (the longest row).
    pub max_len: usize,
}

/// A BERT WordPiece tokenizer with truncation and padding.
#[derive(Debug, Clone)]
pub struct BertTokenizer {
    inner: Tokenizer,
    max_seq_len: usize,
    pad_id: u32,
}

impl BertTokenizer {
    /// Load from a checkpoint directory: `tokenizer.json`, else `vocab.txt`.
    ///
    /// # Errors
    ///
    /// Neither file exists, or the file does not parse, or it lacks `[PAD]`.
    pub fn from_dir(dir: &Path, max_seq_len: usize) -> Result<Self, DataError> {
        let json = dir.join("tokenizer.json");
        let vocab = dir.join("vocab.txt");
        let mut inner = if json.is_file() {
            Self::from_json(&json)?
        } else if vocab.is_file() {
            Self::from_vocab(&vocab, lower_case(dir)?)?
        } else {
            return Err(DataError::Invalid(format!(
                "{}: neither tokenizer.json nor vocab.txt found (expected a Hugging Face BERT checkpoint directory)",
                dir.display()
            )));
        };
        if max_seq_len < 2 {
            return Err(DataError::Invalid(format!("max_seq_len must be at least 2, got {max_seq_len}")));
        }
        let truncation = TruncationParams { max_length: max_seq_len, ..TruncationParams::default() };
        inner.with_truncation(Some(truncation)).map_err(|e| DataError::Invalid(format!("truncation: {e}")))?;
        inner.with_padding(None);
        let source = if json.is_file() { json } else { vocab };
        let pad_id =
            inner.token_to_id("[PAD]").ok_or_else(|| DataError::format(&source, "vocabulary", "no [PAD] token"))?;
        Ok(Self { inner, max_seq_len, pad_id })
    }

    /// A fast tokenizer from `tokenizer.json`. The JSON is parsed here first, so that a syntax error is
    /// reported with its line and column: the tokenizers crate (0.23) panics instead on some of them
    /// (a control character inside the `decoder` object; found by the `tokenizer` fuzz target). Any
    /// other panic inside the crate becomes an error naming the file.
    fn from_json(path: &Path) -> Result<Tokenizer, DataError> {
        let text = crate::lines::read_utf8(path)?;
        let value: serde_json::Value = serde_json::from_str(&text)
            .map_err(|e| DataError::format(path, format!("line {} column {}", e.line(), e.column()), e.to_string()))?;
        let built = std::panic::catch_unwind(|| serde_json::from_value::<Tokenizer>(value));
        match built {
            Ok(Ok(tokenizer)) => Ok(tokenizer),
            Ok(Err(e)) => Err(DataError::format(path, "tokenizer", e.to_string())),
            Err(panic) => {
                let why = panic
                    .downcast_ref::<String>()
                    .map(String::as_str)
                    .or_else(|| panic.downcast_ref::<&str>().copied())
                    .unwrap_or("a panic");
                Err(DataError::format(path, "tokenizer", format!("the tokenizers crate failed on it: {why}")))
            }
        }
    }

    /// The classic `BertTokenizer` pipeline from a `vocab.txt`.
    fn from_vocab(vocab: &Path, lowercase: bool) -> Result<Tokenizer, DataError> {
        let bad = |e: tokenizers::Error| DataError::format(vocab, "vocabulary", e.to_string());
        let path = vocab.to_str().ok_or_else(|| DataError::Invalid(format!("{}: not UTF-8", vocab.display())))?;
        let model = WordPiece::from_file(path).unk_token("[UNK]".into()).build().map_err(bad)?;
        let id = |t: &str| {
            model.token_to_id(t).ok_or_else(|| DataError::format(vocab, "vocabulary", format!("no {t} token")))
        };
        let (cls, sep) = (id("[CLS]")?, id("[SEP]")?);
        let mut tok = Tokenizer::new(model);
        // clean_text, handle_chinese_chars, strip_accents (None: follow lowercase), lowercase.
        tok.with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase))).map_err(bad)?;
        tok.with_pre_tokenizer(Some(BertPreTokenizer));
        tok.with_post_processor(Some(BertProcessing::new(("[SEP]".into(), sep), ("[CLS]".into(), cls))));
        Ok(tok)
    }

    /// Check that every id fits an embedding table of `vocab_size` rows (`config.json`'s `vocab_size`)
    /// of the checkpoint in `dir`.
    ///
    /// # Errors
    ///
    /// The vocabulary is larger: the tokenizer belongs to another checkpoint.
    pub fn check_fits(&self, dir: &Path, vocab_size: usize) -> Result<(), DataError> {
        let n = self.inner.get_vocab_size(true);
        if n > vocab_size {
            let file = if dir.join("tokenizer.json").is_file() { "tokenizer.json" } else { "vocab.txt" };
            return Err(DataError::format(
                dir.join(file),
                "vocabulary",
                format!(
                    "{n} tokens, but config.json's vocab_size (the embedding rows) is {vocab_size}: \
                     the tokenizer belongs to another checkpoint"
                ),
            ));
        }
        Ok(())
    }

    /// Longest sequence produced, special tokens included.
    pub fn max_seq_len(&self) -> usize {
        self.max_seq_len
    }

    /// Id of `[PAD]`.
    pub fn pad_id(&self) -> u32 {
        self.pad_id
    }

    /// Id of a token, if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Tokenise one text (`[CLS] text [SEP]`, truncated).
    ///
    /// # Errors
    ///
    /// The tokenizer fails (it does not on valid UTF-8 with a BERT pipeline).
    pub fn encode(&self, text: &str) -> Result<Encoded, DataError> {
        let e =
            self.inner.encode_char_offsets(text, true).map_err(|e| DataError::Invalid(format!("tokenizer: {e}")))?;
        Ok(Encoded {
            ids: e.get_ids().to_vec(),
            type_ids: e.get_type_ids().to_vec(),
            offsets: e.get_offsets().to_vec(),
        })
    }

    /// Tokenise pre-split words: each word on its own (no special tokens), a word that yields no
    /// piece (a space, a control character) becomes `[UNK]` so that every word owns at least one
    /// token; words are kept while `[CLS]`, their pieces and `[SEP]` fit in `max_seq_len`.
    /// `offsets` are in characters of the words joined without separators.
    ///
    /// # Errors
    ///
    /// The tokenizer fails, or the vocabulary has no `[UNK]`, `[CLS]` or `[SEP]`.
    pub fn encode_words<S: AsRef<str>>(&self, words: &[S]) -> Result<EncodedWords, DataError> {
        let special =
            |t: &str| self.token_id(t).ok_or_else(|| DataError::Invalid(format!("the vocabulary has no {t} token")));
        let (cls, sep, unk) = (special("[CLS]")?, special("[SEP]")?, special("[UNK]")?);
        let mut out = EncodedWords {
            encoded: Encoded { ids: vec![cls], type_ids: vec![0], offsets: vec![(0, 0)] },
            word_of_token: vec![None],
            first_token: Vec::with_capacity(words.len()),
            last_token: Vec::with_capacity(words.len()),
        };
        let mut char_start = 0;
        for (w, word) in words.iter().enumerate() {
            let word = word.as_ref();
            let e = self
                .inner
                .encode_char_offsets(word, false)
                .map_err(|e| DataError::Invalid(format!("tokenizer: {e}")))?;
            let width = word.chars().count();
            let pieces: Vec<(u32, (usize, usize))> = if e.get_ids().is_empty() {
                vec![(unk, (0, width))]
            } else {
                e.get_ids().iter().copied().zip(e.get_offsets().iter().copied()).collect()
            };
            if out.encoded.ids.len() + pieces.len() + 1 > self.max_seq_len {
                break;
            }
            out.first_token.push(out.encoded.ids.len());
            for (id, (a, b)) in pieces {
                out.encoded.ids.push(id);
                out.encoded.type_ids.push(0);
                out.encoded.offsets.push((char_start + a, char_start + b));
                out.word_of_token.push(Some(w));
            }
            out.last_token.push(out.encoded.ids.len() - 1);
            char_start += width;
        }
        out.encoded.ids.push(sep);
        out.encoded.type_ids.push(0);
        out.encoded.offsets.push((0, 0));
        out.word_of_token.push(None);
        Ok(out)
    }

    /// Tokenise texts and pad them to the longest.
    ///
    /// # Errors
    ///
    /// As [`encode`](Self::encode).
    pub fn batch<S: AsRef<str>>(&self, texts: &[S]) -> Result<TokenBatch, DataError> {
        let encoded = texts.iter().map(|t| self.encode(t.as_ref())).collect::<Result<Vec<_>, _>>()?;
        Ok(self.pad(&encoded))
    }

    /// Pad encoded texts to the longest.
    pub fn pad(&self, encoded: &[Encoded]) -> TokenBatch {
        let max_len = encoded.iter().map(|e| e.ids.len()).max().unwrap_or(0);
        let mut batch = TokenBatch {
            ids: Vec::with_capacity(encoded.len() * max_len),
            type_ids: Vec::with_capacity(encoded.len() * max_len),
            lengths: Vec::with_capacity(encoded.len()),
            max_len,
        };
        for e in encoded {
            let pad = max_len - e.ids.len();
            batch.ids.extend(e.ids.iter().copied().chain(std::iter::repeat_n(self.pad_id, pad)));
            batch.type_ids.extend(e.type_ids.iter().copied().chain(std::iter::repeat_n(0, pad)));
            batch.lengths.push(e.ids.len());
        }
        batch
    }
}

/// `do_lower_case` from `tokenizer_config.json` (default `true`, as `BertTokenizer`).
fn lower_case(dir: &Path) -> Result<bool, DataError> {
    let path: PathBuf = dir.join("tokenizer_config.json");
    let Ok(text) = std::fs::read_to_string(&path) else { return Ok(true) };
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|e| DataError::format(&path, format!("line {}", e.line()), e.to_string()))?;
    Ok(json.get("do_lower_case").and_then(serde_json::Value::as_bool).unwrap_or(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny vocabulary written to disk: the `vocab.txt` route, checked token by token.
    fn tiny(dir: &Path) -> BertTokenizer {
        let vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "cat", "sat", "on", "mat", "##s", ".", "猫"];
        std::fs::write(dir.join("vocab.txt"), vocab.join("\n")).unwrap();
        BertTokenizer::from_dir(dir, 6).unwrap()
    }

    #[test]
    fn vocab_txt_tokenizes_truncates_and_pads() {
        let dir = std::env::temp_dir().join(format!("kiln-tok-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let tok = tiny(&dir);
        // Lower-cased, "mats" → "mat" "##s", unknown word → [UNK]; [CLS] the mat ##s [UNK] . [SEP] is 7
        // tokens, cut to 6 keeping [SEP].
        let e = tok.encode("The MATS dog.").unwrap();
        assert_eq!(e.ids, vec![2, 4, 8, 9, 1, 3]);
        // CJK characters are split one by one.
        let e = tok.encode("猫 cat").unwrap();
        assert_eq!(e.ids, vec![2, 11, 5, 3]);
        assert_eq!(e.offsets, vec![(0, 0), (0, 1), (2, 5), (0, 0)], "character offsets, not bytes");
        let b = tok.batch(&["the cat", "cat"]).unwrap();
        assert_eq!(b.max_len, 4);
        assert_eq!(b.ids, vec![2, 4, 5, 3, 2, 5, 3, 0]);
        assert_eq!(b.lengths, vec![4, 3]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Words map to their pieces and back; an empty-piece word becomes [UNK]; words that do not fit
    /// are dropped whole.
    #[test]
    fn words_align_to_pieces() {
        let dir = std::env::temp_dir().join(format!("kiln-tok-words-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let tok = tiny(&dir);
        let e = tok.encode_words(&["猫", " ", "mats"]).unwrap();
        assert_eq!(e.encoded.ids, vec![2, 11, 1, 8, 9, 3]);
        assert_eq!(e.word_of_token, vec![None, Some(0), Some(1), Some(2), Some(2), None]);
        assert_eq!((e.first_token, e.last_token), (vec![1, 2, 3], vec![1, 2, 4]));
        assert_eq!(e.encoded.offsets[3..5], [(2, 5), (5, 6)]);
        // max_seq_len 6: [CLS] the cat sat [SEP] fits; "mats" (2 pieces) would make 7.
        let e = tok.encode_words(&["the", "cat", "sat", "mats"]).unwrap();
        assert_eq!(e.encoded.ids, vec![2, 4, 5, 6, 3]);
        assert_eq!(e.first_token.len(), 3);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn tokenizer_json_syntax_errors_name_the_line_and_do_not_panic() {
        // The fuzz target's first finding: a raw control character in a string of the `decoder`
        // object made tokenizers 0.23 panic ("Helper").
        let dir = tempfile::tempdir().unwrap();
        let json = "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":[],\n\
                    \"normalizer\":null,\"pre_tokenizer\":null,\"post_processor\":null,\n\
                    \"decoder\":{\"type\":\"WordPie\u{0}ce\",\"prefix\":\"##\",\"cleanup\":true},\n\
                    \"model\":{\"type\":\"WordPiece\",\"unk_token\":\"[UNK]\",\"continuing_subword_prefix\":\"##\",\"max_input_chars_per_word\":100,\"vocab\":{\"[PAD]\":0,\"[UNK]\":1}}}";
        std::fs::write(dir.path().join("tokenizer.json"), json).unwrap();
        let err = BertTokenizer::from_dir(dir.path(), 8).unwrap_err().to_string();
        assert!(err.contains("tokenizer.json") && err.contains("line 3") && err.contains("control character"), "{err}");
        // The same file without the control character loads.
        std::fs::write(dir.path().join("tokenizer.json"), json.replace('\u{0}', "")).unwrap();
        let tok = BertTokenizer::from_dir(dir.path(), 8).unwrap();
        assert_eq!(tok.pad_id(), 0);
    }

    #[test]
    fn missing_files_are_named() {
        let err = BertTokenizer::from_dir(Path::new("/nonexistent/ckpt"), 128).unwrap_err().to_string();
        assert!(err.contains("/nonexistent/ckpt") && err.contains("vocab.txt"), "{err}");
    }
}
