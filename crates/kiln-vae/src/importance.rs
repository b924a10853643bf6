//! The importance-sampled log-likelihood (Burda et al. 2016; the test metric of the VAE
//! literature): `ln p(x) ≈ ln (1/K) Σ_k w_k`, `w_k = p(x|z_k) p(z_k) / q(z_k|x)`,
//! `z_k ~ q(z|x)`. It is consistent (exact as `K → ∞`) and biased low by about `Var(w) / (2K E[w]²)`.

use burn::prelude::*;

/// `ln (1/K) Σ_k exp(l_k)` per row, computed from the row's maximum so that no weight overflows.
///
/// # Shapes
///
/// - `log_weights`: `[b, K]`, `l_k = ln p(x|z_k) + ln p(z_k) − ln q(z_k|x)` → `[b]`
pub fn log_mean_exp(log_weights: Tensor<2>) -> Tensor<1> {
    let k = log_weights.dims()[1];
    let max = log_weights.clone().max_dim(1);
    let lse = (log_weights - max.clone()).exp().sum_dim(1).log() + max;
    lse.squeeze_dim::<1>(1).sub_scalar((k as f64).ln())
}
