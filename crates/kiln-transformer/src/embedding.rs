//! Token embeddings with a configurable initial spread (`[model] embedding_std`), and the check that
//! a learned position table covers the sequences the data gives.

use burn::nn::{Embedding, EmbeddingConfig, Initializer};
use burn::prelude::*;
use kiln_layers::TransformerConfig;

/// A `[vocab_size, d_model]` token embedding drawn `N(0, std²)`, or from Burn's default `N(0, 1)`
/// without `std`. Reference code for the models here (nanoGPT, the LRA transformers, BERT) draws
/// `N(0, 0.02²)`, the scale of its learned positions.
pub fn token_embedding(vocab_size: usize, d_model: usize, std: Option<f64>, device: &Device) -> Embedding {
    let mut config = EmbeddingConfig::new(vocab_size, d_model);
    if let Some(std) = std {
        config = config.with_initializer(Initializer::Normal { mean: 0.0, std });
    }
    config.init(device)
}

/// `model.embedding_std`, when given, must be positive and finite.
pub fn check_embedding_std(std: Option<f64>) -> kiln_task::Result<()> {
    if let Some(std) = std {
        kiln_task::ensure!(std.is_finite() && std > 0.0, "model.embedding_std must be positive, got {std}");
    }
    Ok(())
}

/// The longest sequence a model will see, `n` tokens (`source` says where that length comes from,
/// e.g. `data.max_len = 2000`), must fit the learned position table of `stack` (the config section
/// `key`, e.g. `model.encoder`); positions of the other kinds extend to any length. Learned positions
/// panic on a longer sequence, so configs are checked before a model is built.
pub fn check_positions_cover(key: &str, stack: &TransformerConfig, n: usize, source: &str) -> kiln_task::Result<()> {
    if let Some(max) = stack.position.max_seq_len() {
        kiln_task::ensure!(
            n <= max,
            "{key}.position: the learned positions cover {max} tokens (max_seq_len), but {source} gives sequences of {n}; raise max_seq_len or shorten the sequences"
        );
    }
    Ok(())
}
