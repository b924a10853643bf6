//! BERT's input embeddings (Devlin et al. 2019, arXiv:1810.04805, §3.2): the sum of a WordPiece
//! embedding, a learned absolute position embedding and a segment (token type) embedding, followed by
//! LayerNorm and dropout. Reference: Hugging Face `transformers`, `BertEmbeddings` (position ids
//! `0..n`, no offset; RoBERTa's `padding_idx + 1` offset is not this module).

use burn::nn::{Embedding, EmbeddingConfig};
use burn::prelude::*;
use kiln_layers::{Dropout, LayerNorm};

/// Word + position + token-type embeddings, then LayerNorm.
#[derive(Module, Debug)]
pub struct BertEmbeddings {
    /// `[vocab_size, d_model]` WordPiece embeddings.
    pub word: Embedding,
    /// `[max_position_embeddings, d_model]` learned absolute positions.
    pub position: Embedding,
    /// `[type_vocab_size, d_model]` segment embeddings.
    pub token_type: Embedding,
    /// LayerNorm over the sum.
    pub norm: LayerNorm,
    /// Dropout after the norm.
    pub dropout: Dropout,
}

impl BertEmbeddings {
    /// Fresh (randomly initialised) embeddings.
    pub fn new(
        vocab_size: usize,
        max_positions: usize,
        type_vocab_size: usize,
        d_model: usize,
        eps: f64,
        dropout: f64,
        device: &Device,
    ) -> Self {
        Self {
            word: EmbeddingConfig::new(vocab_size, d_model).init(device),
            position: EmbeddingConfig::new(max_positions, d_model).init(device),
            token_type: EmbeddingConfig::new(type_vocab_size, d_model).init(device),
            norm: LayerNorm::new(d_model, eps, device),
            dropout: Dropout::new(dropout),
        }
    }

    /// Longest sequence the position table covers.
    pub fn max_positions(&self) -> usize {
        self.position.weight.dims()[0]
    }

    /// # Shapes
    ///
    /// - `ids`, `type_ids`: `[b, n]` → `[b, n, d_model]`
    ///
    /// # Panics
    ///
    /// If `n` exceeds [`max_positions`](Self::max_positions).
    pub fn forward(&self, ids: Tensor<2, Int>, type_ids: Tensor<2, Int>) -> Tensor<3> {
        let [_, n] = ids.dims();
        assert!(n <= self.max_positions(), "sequence of {n} tokens exceeds the {} positions", self.max_positions());
        let positions = Tensor::<1, Int>::arange(0..n as i64, &ids.device()).unsqueeze::<2>(); // [1, n]
        let x = self.word.forward(ids) + self.position.forward(positions) + self.token_type.forward(type_ids);
        self.dropout.forward(self.norm.forward(x))
    }
}
