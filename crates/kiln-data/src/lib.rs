#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod error;
pub mod lines;
pub mod listops;
pub mod mnist;
pub mod ner;
pub mod text;
pub mod tokenizer;

pub use error::DataError;
