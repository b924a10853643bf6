#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod config;
mod error;
pub mod lines;
pub mod listops;
pub mod mnist;
pub mod ner;
pub mod sentences;
pub mod text;
pub mod tokenizer;
pub mod toy2d;
pub mod words;

pub use config::DataConfig;
pub use error::DataError;
