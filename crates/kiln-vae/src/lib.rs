#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod bessel;
pub mod concentration;
mod image;
pub mod importance;
pub mod kappa;
mod kind;
pub mod latent;
mod model;
pub mod network;
mod task;
pub mod vmf;

pub use image::{TAB10, write_sphere};
pub use importance::{log_mean_exp, one_decode_estimate};
pub use kind::VaeKind;
pub use latent::{KappaConfig, Latent, LatentConfig, Posterior, SamplerKind};
pub use model::{Vae, VaeConfig, bernoulli_nll};
pub use network::NetworkConfig;
pub use task::{Scores, VaeBatch, VaeTask, slerp};
pub use vmf::{InverseCdfTable, VonMisesFisher, WSampler, WoodSampler, reparameterise};
