//! The NER model: a span head on character embeddings and a transformer trained from scratch, or on
//! a pretrained BERT, and what a from-scratch model reads besides the character ids.

use burn::nn::Embedding;
use burn::prelude::*;
use kiln_layers::{Dropout, Linear, TokenLayout, Transformer};
use kiln_transformer::Bert;

use crate::{SpanHead, UNK_ID, drop_tokens};

/// A span head on character embeddings and a transformer (from scratch), or on a pretrained BERT.
/// Exactly one of the two backbones is present. (Options rather than an enum keep the parameter
/// paths of from-scratch checkpoints stable: `embedding.*`, `encoder.*`, `head.*`.)
#[derive(Module, Debug)]
pub struct NerModel {
    /// Character embeddings (`[PAD]` = 0, `[UNK]` = 1), from scratch.
    pub embedding: Option<Embedding>,
    /// Character-bigram embeddings (`[PAD]` = 0, `[UNK]` = 1), from scratch with `bigrams = true`.
    pub bigram_embedding: Option<Embedding>,
    /// The projection of a character's two bigram embeddings, concatenated, to the model width.
    pub bigram_projection: Option<Linear>,
    /// The projection of a character's lexicon indicators (`4 × types`) to the model width, from
    /// scratch with `lexicon = true`.
    pub lexicon_projection: Option<Linear>,
    /// Dropout on the character embeddings (no parameters).
    pub embedding_dropout: Dropout,
    /// Probability of replacing a character by `[UNK]` in training (see [`drop_tokens`]).
    pub token_dropout: f64,
    /// The encoder, from scratch.
    pub encoder: Option<Transformer>,
    /// The pretrained backbone.
    pub bert: Option<Bert>,
    /// The span head.
    pub head: SpanHead,
}

impl NerModel {
    /// Span scores, invalid cells masked.
    ///
    /// # Shapes
    ///
    /// - `ids`, `padding`: `[b, n]`; `features`: see [`CharFeatures`]; `head_padding`: `[b, m]` →
    ///   `[b, n_types, m, m]`, where `m = n` from scratch and `m = n - 2` with BERT (no `[CLS]`,
    ///   `[SEP]`)
    pub fn forward(
        &self,
        ids: Tensor<2, Int>,
        features: CharFeatures,
        padding: &Tensor<2, Bool>,
        head_padding: &Tensor<2, Bool>,
    ) -> Tensor<4> {
        self.head.forward(self.encode(ids, features, padding), Some(head_padding))
    }

    /// The states the head reads: the encoder's output, or BERT's last layer without `[CLS]`
    /// (first column) and the last column.
    ///
    /// # Shapes
    ///
    /// - `ids`: `[b, n]`, `padding`: `[b, n]` → `[b, m, d_model]`
    /// - `features`: what a from-scratch model with bigrams or a lexicon reads besides the ids
    ///
    /// # Panics
    ///
    /// If the model has neither backbone (it is built with one), or bigram ids or lexicon indicators
    /// are missing for a model that has their projection.
    pub fn encode(&self, ids: Tensor<2, Int>, features: CharFeatures, padding: &Tensor<2, Bool>) -> Tensor<3> {
        match (&self.embedding, &self.encoder, &self.bert) {
            (Some(embedding), Some(encoder), _) => {
                let ids = drop_tokens(ids, padding, self.token_dropout, UNK_ID);
                let mut x = embedding.forward(ids);
                if let (Some(table), Some(projection)) = (&self.bigram_embedding, &self.bigram_projection) {
                    let bigrams = features.bigrams.expect("a model with bigram embeddings is given bigram ids");
                    let n = padding.dims()[1];
                    let both = Tensor::cat(vec![padding.clone(), padding.clone()], 1);
                    let e = table.forward(drop_tokens(bigrams, &both, self.token_dropout, UNK_ID));
                    let pair = Tensor::cat(vec![e.clone().narrow(1, 0, n), e.narrow(1, n, n)], 2);
                    x = x + projection.forward(pair);
                }
                if let Some(projection) = &self.lexicon_projection {
                    let lexicon = features.lexicon.expect("a model with a lexicon is given its indicators");
                    x = x + projection.forward(lexicon);
                }
                let x = self.embedding_dropout.forward(x);
                encoder.forward(x, Some(padding), TokenLayout::Sequence)
            }
            (_, _, Some(bert)) => {
                let n = ids.dims()[1];
                let type_ids = ids.zeros_like();
                bert.forward(ids, type_ids, Some(padding)).last().narrow(1, 1, n - 2)
            }
            _ => panic!("NerModel has no backbone"),
        }
    }
}

/// What a from-scratch model reads besides the character ids (see [`NerModel::encode`]); empty
/// (`Default`) for a model without bigrams or lexicon, and for BERT.
#[derive(Debug, Clone, Default)]
pub struct CharFeatures {
    /// `[b, 2n]`: the ids of each character's bigram with the previous character in columns `0..n`
    /// and with the next one in `n..2n` (with `bigrams = true`).
    pub bigrams: Option<Tensor<2, Int>>,
    /// `[b, n, 4 × types]`: the lexicon indicators of each character, 1 or 0, in blocks of four per
    /// type — begins, inside, ends, single (with `lexicon = true`; see [`Lexicon::indicators`]).
    pub lexicon: Option<Tensor<3>>,
}
