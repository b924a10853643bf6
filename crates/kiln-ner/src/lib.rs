#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod batch;
mod bert;
mod config;
mod crf;
mod decode;
mod features;
mod head;
mod kind;
mod loss;
mod metrics;
mod model;
mod predict;
mod task;

pub use batch::NerBatch;
pub use config::{NerBertConfig, NerModelConfig};
pub use crf::Crf;
pub use decode::{Decoding, Span, decode_flat_spans, decode_spans, span_labels};
pub use features::{Lexicon, UNK_ID, drop_tokens};
pub use head::{
    CrfTagger, EfficientGlobalPointer, GlobalPointer, MASKED, SpanHead, SpanHeadConfig, bio_to_spans, spans_to_bio,
    valid_spans,
};
pub use kind::NerKind;
pub use loss::multilabel_crossentropy;
pub use metrics::{ColumnScores, Counts, EntityCounts, score_columns};
pub use model::{CharFeatures, NerModel};
pub use task::NerTask;

/// What went wrong configuring or reading NER data.
#[derive(Debug, thiserror::Error)]
pub enum NerError {
    /// An invalid configuration value.
    #[error("{0}")]
    Config(String),
}
