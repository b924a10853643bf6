//! Token embeddings with a configurable initial spread (`[model] embedding_std`).

use burn::nn::{Embedding, EmbeddingConfig, Initializer};
use burn::prelude::*;

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
pub fn check_embedding_std(std: Option<f64>) -> anyhow::Result<()> {
    if let Some(std) = std {
        anyhow::ensure!(std.is_finite() && std > 0.0, "model.embedding_std must be positive, got {std}");
    }
    Ok(())
}
