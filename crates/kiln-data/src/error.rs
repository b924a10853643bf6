//! The error type of every reader in this crate.

use std::path::PathBuf;

/// What went wrong reading a dataset, with the file and position.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The file could not be opened or read.
    #[error("{}: {error}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        error: std::io::Error,
    },
    /// The content is not what the format says.
    #[error("{}: {location}: {message}", path.display())]
    Format {
        /// The file.
        path: PathBuf,
        /// Where: `line 7`, `byte 16`, ...
        location: String,
        /// What was wrong.
        message: String,
    },
    /// A generator or dataset parameter cannot work.
    #[error("{0}")]
    Invalid(String),
}

impl DataError {
    /// A format error at `location` of `path`.
    pub fn format(path: impl Into<PathBuf>, location: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Format { path: path.into(), location: location.into(), message: message.into() }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io { path: path.into(), error: source }
    }
}
