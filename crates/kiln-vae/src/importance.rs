//! The importance-sampled log-likelihood (Burda et al. 2016; the test metric of the VAE
//! literature): `ln p(x) ≈ ln (1/K) Σ_k w_k`, `w_k = p(x|z_k) p(z_k) / q(z_k|x)`,
//! `z_k ~ q(z|x)`. It is consistent (exact as `K → ∞`) and biased low by about `Var(w) / (2K E[w]²)`.
//!
//! Beside it, [`one_decode_estimate`]: the figure the S-VAE authors' TensorFlow example computes
//! under the name of the log-likelihood, which is not one (see there).

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

/// `ln p(x|z_0) + ln (1/K) Σ_k p(z_k) / q(z_k|x)` per row: the `log_likelihood` of the S-VAE
/// authors' TensorFlow example (`s-vae-tf`, `examples/mnist.py`), where the decoder term comes from
/// the ELBO's one sample `z_0` and only the prior-to-posterior ratio is averaged over the `K`
/// samples. Its expectation is the ELBO at `K = 1` and rises with `K` towards `E_q[ln p(x|z)]`
/// (the mean of `p(z_k) / q(z_k|x)` tends to 1), whatever `p(x)` is: not an estimate of `ln p(x)`.
/// Kiln reports it only so that its models can be read against published figures computed this
/// way.
///
/// # Shapes
///
/// - `reconstruction`: `[b]`, `−ln p(x|z_0)`
/// - `log_ratios`: `[b, K]`, `ln q(z_k|x) − ln p(z_k)` → `[b]`
pub fn one_decode_estimate(reconstruction: Tensor<1>, log_ratios: Tensor<2>) -> Tensor<1> {
    log_mean_exp(log_ratios.neg()) - reconstruction
}
