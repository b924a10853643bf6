//! The error type of the task contract and of the model crates built on it.
//!
//! Every variant's message is complete on its own (a cause is written into its parent's message, as
//! in `kiln_data::DataError`), so printing the error once says everything: `model.encoder: d_model
//! (30) is not divisible by n_heads (4)`, `reading runs/lm/vocab.txt: No such file or directory`.

use std::error::Error as StdError;

use kiln_data::DataError;

/// What went wrong building, training, evaluating or using a task.
#[derive(Debug, thiserror::Error)]
pub enum TaskError {
    /// Reading or generating the data failed.
    #[error(transparent)]
    Data(#[from] DataError),
    /// A config value, command-line option or input that the model cannot use; the message names
    /// the key or the option.
    #[error("{0}")]
    Invalid(String),
    /// A run directory or checkpoint that cannot be used: locked by another process, corrupt,
    /// missing.
    #[error("{0}")]
    Checkpoint(String),
    /// Burn could not write, read or load a record or a tensor's values.
    #[error("{0}")]
    Backend(String),
    /// An error of a model crate's own (a pretrained checkpoint's, say), as that crate's type: the
    /// model crate gives it a `From` conversion into this variant.
    #[error(transparent)]
    Model(Box<dyn StdError + Send + Sync + 'static>),
    /// A failure with what was being done when it happened (`reading PATH`, `model.encoder`); the
    /// cause is any error (I/O, a layer's config error, a pretrained checkpoint's error, or another
    /// `TaskError`), kept for `downcast_ref`.
    ///
    /// The cause is written into this message and not returned again by `source()` (a field named
    /// `source` would be both), so a chain printer does not say it twice.
    #[error("{context}: {error}")]
    Context {
        /// What was being done, or which key.
        context: String,
        /// Why it failed.
        error: Box<dyn StdError + Send + Sync + 'static>,
    },
}

impl TaskError {
    /// A failure reported by Burn (its record and data errors print with `Debug`).
    pub fn backend(what: impl std::fmt::Display, error: impl std::fmt::Debug) -> Self {
        Self::Backend(format!("{what}: {error:?}"))
    }
}

/// `Result` of the task contract.
pub type Result<T, E = TaskError> = std::result::Result<T, E>;

/// Adds what was being done to an error (`anyhow::Context`'s two methods, giving a [`TaskError`]):
/// on a `Result` with any error, the error becomes the [`TaskError::Context`]'s cause; on an `Option`,
/// `None` becomes [`TaskError::Invalid`] with the message.
pub trait Context<T> {
    /// The error, or `None`, with `context`.
    ///
    /// # Errors
    ///
    /// Where `self` is an error or `None`.
    fn context(self, context: impl std::fmt::Display) -> Result<T>;

    /// As [`Context::context`], the message built only on failure.
    ///
    /// # Errors
    ///
    /// Where `self` is an error or `None`.
    fn with_context<C: std::fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T>;
}

impl<T, E: StdError + Send + Sync + 'static> Context<T> for std::result::Result<T, E> {
    fn context(self, context: impl std::fmt::Display) -> Result<T> {
        self.map_err(|e| TaskError::Context { context: context.to_string(), error: Box::new(e) })
    }

    fn with_context<C: std::fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.map_err(|e| TaskError::Context { context: context().to_string(), error: Box::new(e) })
    }
}

impl<T> Context<T> for Option<T> {
    fn context(self, context: impl std::fmt::Display) -> Result<T> {
        self.ok_or_else(|| TaskError::Invalid(context.to_string()))
    }

    fn with_context<C: std::fmt::Display>(self, context: impl FnOnce() -> C) -> Result<T> {
        self.ok_or_else(|| TaskError::Invalid(context().to_string()))
    }
}

/// Return early with a [`TaskError::Invalid`] built like `format!`.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)+) => {
        return ::core::result::Result::Err($crate::TaskError::Invalid(::std::format!($($arg)+)).into())
    };
}

/// Return early with a [`TaskError::Invalid`] built like `format!` unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($arg:tt)+) => {
        if !$cond {
            $crate::bail!($($arg)+);
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(path: &str) -> Result<String> {
        std::fs::read_to_string(path).with_context(|| format!("reading {path}"))
    }

    fn positive(x: i32) -> Result<i32> {
        crate::ensure!(x > 0, "model.x must be positive, got {x}");
        Ok(x)
    }

    /// The message and each cause in `source()` order, as `anyhow`'s `{:#}` prints an error.
    fn chain(e: &(dyn StdError + 'static)) -> String {
        let mut out = e.to_string();
        let mut next = e.source();
        while let Some(cause) = next {
            out += &format!(": {cause}");
            next = cause.source();
        }
        out
    }

    /// Messages read as one line each, context first, each cause once (also through a chain
    /// printer), and the cause stays reachable by type.
    #[test]
    fn contexts_nest_into_one_message_and_keep_their_cause() {
        let e = read("/nonexistent/kiln/file").context("model.vocab").unwrap_err();
        let message = e.to_string();
        assert!(message.starts_with("model.vocab: reading /nonexistent/kiln/file: "), "{message}");
        assert_eq!(chain(&e), message);
        assert_eq!(message.matches("reading").count(), 1, "{message}");
        assert_eq!(chain(&TaskError::Model(Box::new(e))), message, "transparent");
        let e = read("/nonexistent/kiln/file").context("model.vocab").unwrap_err();
        let TaskError::Context { error, .. } = &e else { panic!("{e:?}") };
        let inner = error.downcast_ref::<TaskError>().expect("the inner TaskError");
        let TaskError::Context { error: io, .. } = inner else { panic!("{inner:?}") };
        assert_eq!(io.downcast_ref::<std::io::Error>().map(|e| e.kind()), Some(std::io::ErrorKind::NotFound));

        assert_eq!(positive(-2).unwrap_err().to_string(), "model.x must be positive, got -2");
        assert!(matches!(positive(-2), Err(TaskError::Invalid(_))));
        assert_eq!(positive(3).unwrap(), 3);
        assert_eq!(
            None::<u8>.context("give the sentence with --text").unwrap_err().to_string(),
            "give the sentence with --text"
        );
    }
}
