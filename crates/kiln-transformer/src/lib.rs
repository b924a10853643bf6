#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod bert;
mod classifier;
pub mod embedding;
mod kinds;
mod lm;
mod loss;
mod vit;

pub use bert::{Bert, BertConfig, BertError, BertInput, BertOutput};
pub use classifier::{ClassifierConfig, ListOpsTask, Pooling, SequenceClassifier};
pub use kinds::{CharLmKind, ClassifierKind, VitKind};
pub use lm::{CharLm, CharLmConfig, CharLmTask};
pub use loss::{accuracy_counts, cross_entropy};
pub use vit::{MnistTask, Vit, VitConfig};
