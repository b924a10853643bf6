#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod crf;
mod decode;
mod head;
mod kind;
mod loss;
mod metrics;
mod task;

pub use crf::Crf;
pub use decode::{Decoding, Span, decode_flat_spans, decode_spans, span_labels};
pub use head::{
    CrfTagger, EfficientGlobalPointer, GlobalPointer, MASKED, SpanHead, SpanHeadConfig, bio_to_spans, spans_to_bio,
    valid_spans,
};
pub use kind::NerKind;
pub use loss::multilabel_crossentropy;
pub use metrics::{Counts, EntityCounts};
pub use task::{
    CharFeatures, Lexicon, NerBatch, NerBertConfig, NerModel, NerModelConfig, NerTask, UNK_ID, drop_tokens,
};

/// What went wrong configuring or reading NER data.
#[derive(Debug, thiserror::Error)]
pub enum NerError {
    /// An invalid configuration value.
    #[error("{0}")]
    Config(String),
}
