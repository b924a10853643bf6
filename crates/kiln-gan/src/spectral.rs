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

/// `v = Wᵀ·u` direction and `σ = ‖W v‖` helpers on detached values.
fn normalise(t: Tensor<1>) -> Tensor<1> {
    let norm = t.clone().powf_scalar(2.0).sum().sqrt().clamp_min(1e-12);
    t / norm
}

impl SpectralLinear {
    /// A layer `d_input → d_output` with a random unit `u`.
    pub fn new(d_input: usize, d_output: usize, device: &Device) -> Self {
        let u = Tensor::<1>::random([d_output], burn::tensor::Distribution::Normal(0.0, 1.0), device);
        Self {
            linear: LinearConfig::new(d_input, d_output).init(device),
            u: Param::from_tensor(normalise(u).detach()).set_require_grad(false),
        }
    }

    /// `v = normalise(W u)` for the current `u` (no gradient).
    fn right_vector(&self) -> Tensor<1> {
        let w = self.linear.weight.val().detach(); // [in, out]
        normalise(w.matmul(self.u.val().detach().unsqueeze_dim::<2>(1)).squeeze_dim::<1>(1))
    }

    /// The current estimate `σ = uᵀ Wᵀ v` (differentiable in `W`).
    pub fn sigma(&self) -> Tensor<1> {
        let v = self.right_vector();
        let w = self.linear.weight.val(); // [in, out]
        // uᵀ Wᵀ v = vᵀ W u
        let wu = w.matmul(self.u.val().detach().unsqueeze_dim::<2>(1)).squeeze_dim::<1>(1); // [in]
        (v * wu).sum()
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

    /// One power-iteration step: `v = normalise(W u)`, `u = normalise(Wᵀ v)`.
    pub fn power_iteration(&mut self) {
        let v = self.right_vector();
        let w = self.linear.weight.val().detach();
        let u = normalise(w.transpose().matmul(v.unsqueeze_dim::<2>(1)).squeeze_dim::<1>(1));
        self.u = Param::from_tensor(u.detach()).set_require_grad(false);
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
