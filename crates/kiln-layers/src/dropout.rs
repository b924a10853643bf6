//! Dropout (Srivastava et al. 2014): during training each element is zeroed with probability `p` and
//! the survivors are scaled by `1 / (1 − p)`; in evaluation it is the identity.
//!
//! Behaves as `burn::nn::Dropout` (active only on an autodiff device, no checkpoint keys); the mask
//! comes from [`kiln_kernels::dropout`], which on the CPU backends draws it on the host from the
//! device's generator (seeded per step by the trainer, so runs stay reproducible).

use burn::prelude::*;

/// Dropout with probability `prob`; no parameters, nothing in checkpoints.
#[derive(Module, Debug)]
pub struct Dropout {
    /// Probability of zeroing an element, in `[0, 1)`.
    pub prob: f64,
}

impl Dropout {
    /// A dropout layer.
    ///
    /// # Panics
    ///
    /// If `prob` is not in `[0, 1)` (configs check this in `validate()`).
    pub fn new(prob: f64) -> Self {
        assert!(Self::valid(prob), "dropout probability {prob} is outside [0, 1)");
        Self { prob }
    }

    /// Whether `prob` is a dropout probability, in `[0, 1)` (NaN is not): the one rule behind
    /// [`Self::new`] and the configs' checks.
    pub fn valid(prob: f64) -> bool {
        (0.0..1.0).contains(&prob)
    }

    /// Zero and rescale at random on an autodiff device; the identity otherwise.
    ///
    /// # Shapes
    ///
    /// - `x`: any → same
    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        kiln_kernels::dropout(x, self.prob)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    #[test]
    fn training_zeroes_and_scales_with_a_seeded_mask_and_evaluation_is_the_identity() {
        let device = dev().autodiff();
        let d = Dropout::new(0.25);
        let x = randn([4, 64, 32], 1.0, 1, &device).require_grad();
        let y = d.forward(x.clone());
        let (xs, ys) = (to_vec(x.clone()), to_vec(y.clone()));
        let zeros = ys.iter().filter(|&&v| v == 0.0).count();
        assert!((zeros as f64 / ys.len() as f64 - 0.25).abs() < 0.04, "{zeros}");
        for (a, b) in xs.iter().zip(&ys) {
            assert!(*b == 0.0 || (b - a / 0.75).abs() < 1e-5, "{a} -> {b}");
        }
        // The gradient is the mask: d(sum y)/dx = 1/0.75 where kept, 0 where dropped.
        let grads = y.sum().backward();
        let g = to_vec(x.grad(&grads).unwrap());
        for (gy, y) in g.iter().zip(&ys) {
            assert!((*gy - if *y == 0.0 { 0.0 } else { 1.0 / 0.75 }).abs() < 1e-6);
        }
        // That the device seed fixes the mask is tests/seeded_dropout.rs: the generator is global.
        // Without autodiff, and with p = 0, the identity.
        let plain = randn([3, 5], 1.0, 2, &dev());
        assert_eq!(to_vec(d.forward(plain.clone())), to_vec(plain));
        assert_eq!(to_vec(Dropout::new(0.0).forward(x.clone())), xs);
    }
}
