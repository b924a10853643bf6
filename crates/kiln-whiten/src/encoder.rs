//! A pretrained BERT and its tokenizer as a sentence encoder.
//!
//! Sentences are tokenised once, sorted by length and embedded in batches of similar lengths (little
//! padding, as sentence-transformers does), then the vectors are put back in input order. One forward
//! pass serves every requested pooling.

use std::path::Path;

use burn::prelude::*;
use kiln_data::tokenizer::BertTokenizer;
use kiln_layers::AttentionConfig;
use kiln_transformer::bert::convert::load_pretrained;
use kiln_transformer::{Bert, BertConfig, BertInput};

use crate::{SentencePooling, WhitenError};

/// A BERT checkpoint ready to embed sentences.
#[derive(Debug)]
pub struct SentenceEncoder {
    /// The encoder.
    pub model: Bert,
    /// Its `config.json`.
    pub config: BertConfig,
    /// The checkpoint's tokenizer.
    pub tokenizer: BertTokenizer,
    device: Device,
}

impl SentenceEncoder {
    /// Load a checkpoint directory. `max_seq_len` defaults to sentence-transformers'
    /// `sentence_bert_config.json` when present, else the position table (at most 512).
    ///
    /// # Errors
    ///
    /// The checkpoint or tokenizer cannot be loaded, or `max_seq_len` exceeds the position table.
    pub fn load(
        dir: &Path,
        max_seq_len: Option<usize>,
        attention: AttentionConfig,
        device: &Device,
    ) -> Result<Self, WhitenError> {
        let (model, config) = load_pretrained(dir, attention, device)?;
        let positions = config.max_position_embeddings;
        let max_seq_len = match max_seq_len {
            Some(n) => n,
            None => sentence_transformers_max_len(dir).unwrap_or(512).min(positions),
        };
        if max_seq_len > positions {
            return Err(WhitenError::Invalid(format!(
                "max_seq_len {max_seq_len} exceeds the checkpoint's {positions} positions"
            )));
        }
        let tokenizer = BertTokenizer::from_dir(dir, max_seq_len)?;
        tokenizer.check_fits(dir, config.vocab_size)?;
        Ok(Self { model, config, tokenizer, device: device.clone() })
    }

    /// Vector length `d_model`.
    pub fn dim(&self) -> usize {
        self.config.hidden_size
    }

    /// Embed `texts` with each pooling: one row-major `[texts.len(), d_model]` matrix per pooling.
    ///
    /// # Errors
    ///
    /// Tokenisation fails, or a pooling is unavailable (`pooler` without pooler weights).
    pub fn embed<S: AsRef<str>>(
        &self,
        texts: &[S],
        poolings: &[SentencePooling],
        batch_size: usize,
    ) -> Result<Vec<Vec<f32>>, WhitenError> {
        let d = self.dim();
        let encoded = texts.iter().map(|t| self.tokenizer.encode(t.as_ref())).collect::<Result<Vec<_>, _>>()?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encoded[i].ids.len()));
        let mut out = vec![vec![0.0f32; texts.len() * d]; poolings.len()];
        for chunk in order.chunks(batch_size.max(1)) {
            let rows: Vec<_> = chunk.iter().map(|&i| encoded[i].clone()).collect();
            let input = BertInput::from_batch(&self.tokenizer.pad(&rows), &self.device);
            let hidden = self.model.forward_input(&input);
            for (p, pooling) in poolings.iter().enumerate() {
                let v = pooling.pool(&self.model, &hidden, &input.padding)?;
                let v = v.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 vectors");
                for (r, &i) in chunk.iter().enumerate() {
                    out[p][i * d..(i + 1) * d].copy_from_slice(&v[r * d..(r + 1) * d]);
                }
            }
        }
        Ok(out)
    }
}

/// `max_seq_length` from sentence-transformers' `sentence_bert_config.json`.
fn sentence_transformers_max_len(dir: &Path) -> Option<usize> {
    let text = std::fs::read_to_string(dir.join("sentence_bert_config.json")).ok()?;
    let json: serde_json::Value = serde_json::from_str(&text).ok()?;
    json.get("max_seq_length")?.as_u64().map(|n| n as usize)
}
