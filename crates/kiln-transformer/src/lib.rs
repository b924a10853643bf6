#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod bert;
mod classifier;
pub mod embedding;
mod lm;
mod loss;
mod vit;

pub use bert::{Bert, BertConfig, BertError, BertInput, BertOutput};
pub use classifier::{ClassifierConfig, ListOpsTask, Pooling, SequenceClassifier};
pub use kiln_data::mnist::MnistDataConfig;
pub use lm::{CharLm, CharLmConfig, CharLmTask, TextDataConfig};
pub use loss::{accuracy_counts, cross_entropy};
pub use vit::{MnistTask, Vit, VitConfig};
