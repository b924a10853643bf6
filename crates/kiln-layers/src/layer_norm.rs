//! LayerNorm (Ba et al. 2016, arXiv:1607.06450): `y = (x − μ)/√(σ² + ε) ⊙ γ + β` over the last
//! dimension, with the parameters of Burn's `burn::nn::LayerNorm`; the arithmetic is
//! [`kiln_kernels::layer_norm`] (in training on flex, one pass per row each way).

use burn::module::{Initializer, Param};
use burn::prelude::*;

/// LayerNorm over the last dimension, with a learned scale `gamma` and an optional shift `beta`.
/// The same parameters (and record keys) as Burn's `burn::nn::LayerNorm`.
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

    /// Normalise over the last dimension.
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
        kiln_kernels::layer_norm(x, gamma, self.beta.as_ref().map(|b| b.val()), self.epsilon)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    /// Burn's `LayerNorm` with the same parameters gives the same output and gradients in training.
    #[test]
    fn equals_burns_layer_norm() {
        let device = dev().autodiff();
        let mut burns = burn::nn::LayerNormConfig::new(24).with_epsilon(1e-5).init(&device);
        burns.gamma = Param::from_tensor(randn([24], 0.5, 7, &device).add_scalar(1.0));
        burns.beta = Some(Param::from_tensor(randn([24], 0.5, 8, &device)));
        let ours = LayerNorm { gamma: burns.gamma.clone(), beta: burns.beta.clone(), epsilon: 1e-5 };
        let (x, upstream) = (randn([3, 5, 24], 2.0, 1, &device), randn([3, 5, 24], 1.0, 2, &device));
        let (ga, gb) = assert_same_forward_backward(x, upstream, |x| ours.forward(x), |x| burns.forward(x), 2e-5);
        assert_close(&to_vec(ours.gamma.grad(&ga).unwrap()), &to_vec(burns.gamma.grad(&gb).unwrap()), 2e-5);
    }

    /// A norm without a shift normalises the same way and has no shift gradient to give; inference
    /// equals training.
    #[test]
    fn layer_norm_without_shift_and_in_inference() {
        let train = dev().autodiff();
        let mut norm = LayerNorm::new(24, 1e-6, &train);
        norm.gamma = Param::from_tensor(randn([24], 0.5, 2, &train));
        let x = randn([4, 24], 3.0, 9, &train);
        let with_shift = to_vec(norm.forward(x.clone()));
        norm.beta = None;
        let x = x.require_grad();
        let y = norm.forward(x.clone());
        assert_eq!(to_vec(y.clone()), with_shift, "a zero shift and none agree");
        let grads = (y * randn([4, 24], 1.0, 3, &train)).sum().backward();
        assert!(to_vec(x.grad(&grads).expect("a gradient")).iter().any(|g| g.abs() > 1e-2));
        let inference = LayerNorm { gamma: Param::from_tensor(norm.gamma.val().inner()), beta: None, epsilon: 1e-6 };
        let y = to_vec(inference.forward(randn([4, 24], 3.0, 9, &dev())));
        assert_close(&y, &with_shift, 1e-5);
    }
}
