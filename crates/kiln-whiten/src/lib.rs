#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod encoder;
mod evaluate;
pub mod npy;
mod pooling;
pub mod sts;
mod whitening;

use std::path::PathBuf;

pub use encoder::SentenceEncoder;
pub use evaluate::{Column, StsEvalConfig, StsTable, evaluate_sts, sts_spearman};
pub use pooling::SentencePooling;
pub use whitening::{CovarianceAccumulator, Whitening, WhiteningParams};

/// What went wrong embedding, whitening or evaluating.
#[derive(Debug, thiserror::Error)]
pub enum WhitenError {
    /// Loading the checkpoint failed.
    #[error(transparent)]
    Bert(#[from] kiln_transformer::BertError),
    /// Reading data or the tokenizer failed.
    #[error(transparent)]
    Data(#[from] kiln_data::DataError),
    /// A file could not be read or written.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// A file is not in the expected format.
    #[error("{}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// An invalid argument.
    #[error("{0}")]
    Invalid(String),
}
