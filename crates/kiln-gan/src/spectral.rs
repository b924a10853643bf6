//! Spectral normalisation (Miyato et al. 2018): a linear layer whose weight is divided by an estimate
//! of its largest singular value, `W / σ(W)`, with `σ(W) ≈ uᵀ W v` from power iteration.
//!
//! The iteration vector `u` is module state (saved in checkpoints, never trained: it enters the forward
//! pass detached, so it receives no gradient). One power-iteration step runs per optimiser step
//! ([`SpectralLinear::power_iteration`], called from the task's `on_optimizer_step`) — PyTorch's
//! `spectral_norm` runs it at every training-mode forward; with one critic forward per optimiser step
//! the two schedules coincide. As in PyTorch, gradients flow through `σ` with `u`, `v` held constant.

use burn::module::Param;
use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

/// `y = x (W / σ) + b`, `σ = uᵀ Wᵀ v` (Burn stores `W` as `[in, out]`, PyTorch's transpose).
#[derive(Module, Debug)]
pub struct SpectralLinear {
    /// The unnormalised layer.
    pub linear: Linear,
    /// Left singular-vector estimate, `[out]`, unit norm.
    pub u: Param<Tensor<1>>,
}

fn normalise(t: Tensor<1>) -> Tensor<1> {
    let norm = t.clone().powf_scalar(2.0).sum().sqrt().clamp_min(1e-12);
    t / norm
}

fn matvec(m: Tensor<2>, x: Tensor<1>) -> Tensor<1> {
    m.matmul(x.unsqueeze_dim::<2>(1)).squeeze_dim::<1>(1)
}

/// A random unit power-iteration vector of length `n`, as non-trainable state.
pub(crate) fn initial_u(n: usize, device: &Device) -> Param<Tensor<1>> {
    let u = Tensor::<1>::random([n], burn::tensor::Distribution::Normal(0.0, 1.0), device);
    Param::from_tensor(normalise(u).detach()).set_require_grad(false)
}

/// `σ = uᵀ M v` with `v = normalise(Mᵀ u)`, for a weight in PyTorch's `[out, in]` layout;
/// differentiable in `M`, with `u` and `v` held constant.
pub(crate) fn sigma(m: Tensor<2>, u: &Param<Tensor<1>>) -> Tensor<1> {
    let u = u.val().detach();
    let v = normalise(matvec(m.clone().detach().transpose(), u.clone()));
    (matvec(m, v) * u).sum()
}

/// One power-iteration step: `v = normalise(Mᵀ u)`, then the new `u = normalise(M v)`.
pub(crate) fn next_u(m: Tensor<2>, u: &Param<Tensor<1>>) -> Param<Tensor<1>> {
    let m = m.detach();
    let v = normalise(matvec(m.clone().transpose(), u.val().detach()));
    Param::from_tensor(normalise(matvec(m, v)).detach()).set_require_grad(false)
}

impl SpectralLinear {
    /// A layer `d_input → d_output` with a random unit `u`.
    pub fn new(d_input: usize, d_output: usize, device: &Device) -> Self {
        Self { linear: LinearConfig::new(d_input, d_output).init(device), u: initial_u(d_output, device) }
    }

    /// The current estimate `σ = uᵀ Wᵀ v` (differentiable in `W`).
    pub fn sigma(&self) -> Tensor<1> {
        sigma(self.linear.weight.val().transpose(), &self.u)
    }

    /// The normalised weight `W / σ`, `[in, out]`.
    pub fn weight(&self) -> Tensor<2> {
        self.linear.weight.val() / self.sigma().unsqueeze_dim::<2>(0)
    }

    /// # Shapes
    ///
    /// - `x`: `[b, in]` → `[b, out]`
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let y = x.matmul(self.weight());
        match &self.linear.bias {
            Some(b) => y + b.val().unsqueeze_dim(0),
            None => y,
        }
    }

    /// One power-iteration step on `u`.
    pub fn power_iteration(&mut self) {
        self.u = next_u(self.linear.weight.val().transpose(), &self.u);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// After enough power iterations `σ` equals the largest singular value (nalgebra's SVD), and the
    /// normalised weight has spectral norm 1.
    #[test]
    fn sigma_converges_to_the_largest_singular_value() {
        let device = Device::flex();
        let mut layer = SpectralLinear::new(7, 5, &device);
        let w: Vec<f32> = layer.linear.weight.val().into_data().try_to_vec::<f32>().unwrap();
        let m = nalgebra::DMatrix::from_row_slice(7, 5, &w.iter().map(|&x| f64::from(x)).collect::<Vec<_>>());
        let top = m.clone().svd(false, false).singular_values.max();
        for _ in 0..200 {
            layer.power_iteration();
        }
        let sigma = f64::from(layer.sigma().into_scalar::<f32>());
        assert!((sigma - top).abs() < 1e-4 * top, "σ {sigma} vs SVD {top}");
        let wn: Vec<f32> = layer.weight().into_data().try_to_vec::<f32>().unwrap();
        let mn = nalgebra::DMatrix::from_row_slice(7, 5, &wn.iter().map(|&x| f64::from(x)).collect::<Vec<_>>());
        assert!((mn.svd(false, false).singular_values.max() - 1.0).abs() < 1e-4);
    }
}
