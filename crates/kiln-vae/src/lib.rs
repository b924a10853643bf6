#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod bessel;
pub mod vmf;

pub use vmf::{InverseCdfTable, VonMisesFisher, WSampler, WoodSampler, reparameterise};
