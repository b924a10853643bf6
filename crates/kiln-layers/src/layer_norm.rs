//! LayerNorm (Ba et al. 2016, arXiv:1607.06450) with its own backward pass on flex (a Burn backend
//! extension, `#[backend_extension]`):
//!
//! ```text
//! μ = mean(x),   r = 1/√(mean((x − μ)²) + ε),   x̂ = (x − μ)·r,   y = x̂ ⊙ γ + β
//! g = dy ⊙ γ,    dx = r·(g − mean(g) − x̂ ⊙ mean(g ⊙ x̂)),   dγ = Σ dy ⊙ x̂,   dβ = Σ dy
//! ```
//!
//! (means over the last dimension, sums over every other). Burn's autodiff has no LayerNorm of its
//! own: it runs the decomposition of `ModuleOps::layer_norm` (mean, subtract, square, mean, add,
//! square root, divide, multiply, add) and differentiates each op, about thirty small passes over
//! the activations per norm and step, each a fresh allocation; the small transformers' steps have
//! nine norms. Here the forward pass is one pass per row and the backward pass one more (the row's
//! statistics recomputed from the saved input), the rows split over Rayon's threads (`flex.rs`, with
//! the crate's `flex` feature; without it Burn's `layer_norm` runs everywhere). In inference flex's
//! own fused `layer_norm` runs.

use burn::module::{Initializer, Param};
use burn::prelude::*;

#[cfg(feature = "flex")]
mod flex;
#[cfg(feature = "flex")]
pub use flex::LayerNormBackend;

/// LayerNorm over the last dimension, with a learned scale `gamma` and an optional shift `beta`.
/// The same parameters (and record keys) as Burn's `burn::nn::LayerNorm`; in training on flex it
/// runs [`LayerNormBackend`], elsewhere Burn's `layer_norm`.
#[derive(Module, Debug)]
pub struct LayerNorm {
    /// `[d_model]` scale, initialised to ones.
    pub gamma: Param<Tensor<1>>,
    /// `[d_model]` shift, initialised to zeros; `None` for a norm without one.
    pub beta: Option<Param<Tensor<1>>>,
    /// Added to the variance before the square root.
    pub epsilon: f64,
}

impl LayerNorm {
    /// Scale ones, shift zeros, for width `d_model`.
    pub fn new(d_model: usize, epsilon: f64, device: &Device) -> Self {
        Self {
            gamma: Initializer::Ones.init([d_model], device),
            beta: Some(Initializer::Zeros.init([d_model], device)),
            epsilon,
        }
    }

    /// Normalise over the last dimension; in training on flex through [`LayerNormBackend`].
    ///
    /// # Shapes
    ///
    /// - `x`: `[.., d_model]` → same
    ///
    /// # Panics
    ///
    /// If the last dimension of `x` is not `d_model`.
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        let gamma = self.gamma.val();
        let (width, [d_model]) = (x.dims()[D - 1], gamma.dims());
        assert_eq!(width, d_model, "LayerNorm of width {d_model} applied to rows of {width}");
        let beta = self.beta.as_ref().map(|b| b.val());
        #[cfg(feature = "flex")]
        if crate::host::is_flex_training(&x.device()) && x.dtype() == burn::tensor::DType::F32 {
            let beta = beta.unwrap_or_else(|| gamma.zeros_like());
            return Tensor::from_dispatch(<burn::backend::Dispatch as LayerNormBackend>::kiln_layer_norm(
                x.into_dispatch(),
                gamma.into_dispatch(),
                beta.into_dispatch(),
                self.epsilon,
            ));
        }
        burn::tensor::module::layer_norm(x, gamma, beta, self.epsilon)
    }
}
