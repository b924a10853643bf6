#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

pub mod assignment;
pub mod dcgan;
mod kind;
pub mod lipschitz;
pub mod mlp;
pub mod mnist;
mod picture;
pub mod spectral;
mod step;
mod task;
pub mod toy;

pub use assignment::{min_cost_assignment, wasserstein1};
pub use dcgan::{ConvCritic, ConvGenerator};
pub use kind::WganKind;
pub use lipschitz::{ConstrainedCritic, LipschitzConfig, PenaltyMethod, difference_penalty, gradient_penalty};
pub use mlp::{CriticLayer, MlpCritic, MlpGenerator};
pub use mnist::{ImageBatch, ImageWgan, MnistWganTask, frechet_distance, load_judge};
pub use picture::write_scatter;
pub use spectral::SpectralLinear;
pub use step::{Adversaries, WganBatch, wgan_step};
pub use task::{GanBatch, Wgan, WganConfig, WganTask};
pub use toy::{MODE_RADIUS, mode_coverage};
