//! The three ways to keep the critic 1-Lipschitz, chosen by `[model.lipschitz]`.
//!
//! - `clip`: every critic parameter clamped to `[−c, c]` after each critic step (Arjovsky et al.).
//! - `spectral_norm`: every critic layer divides its weight by its largest singular value (Miyato
//!   et al.), estimated by power iteration whose vector is saved state.
//! - `gradient_penalty`: `λ E[(‖∇_x̂ D(x̂)‖ − 1)²]` at `x̂ = x_r + α (x_f − x_r)`, `α ~ U(0, 1)` (Gulrajani
//!   et al.). Burn's autodiff is first-order only, so `method` says how the input gradient is had:
//!   - `exact`: the MLP critic's input gradient written as differentiable tensor operations
//!     ([`crate::MlpCritic::forward_with_input_gradient`]); the penalty and its gradient in the critic's
//!     weights are exactly those of PyTorch's double backward;
//!   - `difference`: a difference quotient along the interpolation line,
//!     `q = (D(x̂ + h (x_f − x_r)) − D(x̂)) / (h ‖x_f − x_r‖)`, penalised as `λ E[(|q| − 1)²]`. It works for
//!     any critic, but it is an approximation twice over: it sees only the directional derivative
//!     along `x_f − x_r` (the direction an optimal critic's gradient takes, but a lower bound on the
//!     gradient's norm elsewhere), and a finite step `h`.

use burn::prelude::*;
use serde::{Deserialize, Serialize};

use crate::MlpCritic;

/// How the gradient penalty obtains the input gradient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PenaltyMethod {
    /// The analytic input gradient of an MLP critic.
    #[default]
    Exact,
    /// A difference quotient along `x_f − x_r`.
    Difference,
}

/// `[model.lipschitz]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum LipschitzConfig {
    /// Weight clipping.
    Clip {
        /// The bound `c`.
        #[serde(default = "default_clip")]
        c: f64,
    },
    /// Spectral normalisation of every critic layer.
    SpectralNorm {},
    /// The two-sided gradient penalty.
    GradientPenalty {
        /// Weight `λ`.
        #[serde(default = "default_lambda")]
        lambda: f64,
        /// How the input gradient is obtained.
        #[serde(default)]
        method: PenaltyMethod,
        /// Relative step of the difference quotient.
        #[serde(default = "default_step")]
        step: f64,
    },
}

fn default_clip() -> f64 {
    0.01
}
fn default_lambda() -> f64 {
    10.0
}
fn default_step() -> f64 {
    0.01
}

impl LipschitzConfig {
    /// Check the constants.
    ///
    /// # Errors
    ///
    /// A non-positive bound, weight or step.
    pub fn validate(&self) -> anyhow::Result<()> {
        match self {
            Self::Clip { c } => anyhow::ensure!(*c > 0.0, "model.lipschitz.c must be positive, got {c}"),
            Self::SpectralNorm {} => {}
            Self::GradientPenalty { lambda, step, .. } => {
                anyhow::ensure!(*lambda > 0.0, "model.lipschitz.lambda must be positive, got {lambda}");
                anyhow::ensure!(*step > 0.0 && *step < 1.0, "model.lipschitz.step must be in (0, 1), got {step}");
            }
        }
        Ok(())
    }

    /// Whether the critic's layers are spectrally normalised.
    pub fn spectral(&self) -> bool {
        matches!(self, Self::SpectralNorm {})
    }
}

/// The gradient penalty on a batch of real and (detached) fake points, `alpha` `[b, 1]` in `[0, 1]`.
///
/// # Shapes
///
/// - `real`, `fake`: `[b, d]`; `alpha`: `[b, 1]` → scalar `[1]`
pub fn gradient_penalty(
    critic: &MlpCritic,
    real: Tensor<2>,
    fake: Tensor<2>,
    alpha: Tensor<2>,
    lambda: f64,
    method: PenaltyMethod,
    step: f64,
) -> Tensor<1> {
    let direction = fake - real.clone();
    let x_hat = real + direction.clone() * alpha;
    let slopes = match method {
        PenaltyMethod::Exact => {
            let (_, g) = critic.forward_with_input_gradient(x_hat, true);
            g.expect("asked for").powf_scalar(2.0).sum_dim(1).add_scalar(1e-12).sqrt().squeeze_dim::<1>(1)
        }
        PenaltyMethod::Difference => return difference_penalty(&|x| critic.forward(x), x_hat, direction, lambda, step),
    };
    slopes.sub_scalar(1.0).powf_scalar(2.0).mean().mul_scalar(lambda)
}

/// The difference-quotient penalty for any critic on flattened inputs: at `x̂` (`[b, d]`), along
/// `direction = x_f − x_r`, `q = (D(x̂ + h·direction) − D(x̂)) / (h ‖direction‖)`, penalised as
/// `λ E[(|q| − 1)²]`.
pub fn difference_penalty(
    critic: &dyn Fn(Tensor<2>) -> Tensor<1>,
    x_hat: Tensor<2>,
    direction: Tensor<2>,
    lambda: f64,
    step: f64,
) -> Tensor<1> {
    let length = direction.clone().powf_scalar(2.0).sum_dim(1).sqrt().squeeze_dim::<1>(1).clamp_min(1e-12);
    let ahead = critic(x_hat.clone() + direction.mul_scalar(step));
    let slopes = ((ahead - critic(x_hat)) / length.mul_scalar(step)).abs();
    slopes.sub_scalar(1.0).powf_scalar(2.0).mean().mul_scalar(lambda)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a linear critic `D(x) = wᵀx + b` every input gradient is `w`, so both penalties equal
    /// `λ (‖w‖ − 1)²` (the difference quotient is exact along any line for a linear function once
    /// `x_f − x_r` is parallel to `w`).
    #[test]
    fn linear_critic_by_hand() {
        let device = Device::flex();
        let critic = MlpCritic::new(2, &[], false, &device);
        let crate::CriticLayer::Plain(l) = &critic.layers[0] else { unreachable!() };
        let w: Vec<f32> = l.weight.val().into_data().try_to_vec::<f32>().unwrap();
        let norm = f64::from(w[0].hypot(w[1]));
        let expected = 10.0 * (norm - 1.0).powi(2);
        let real = Tensor::<2>::from_data(TensorData::new(vec![0.0f32, 0.0, 1.0, 1.0], [2, 2]), &device);
        // Fakes displaced along w from the reals.
        let fake =
            real.clone() + Tensor::<2>::from_data(TensorData::new(vec![w[0], w[1], -w[0], -w[1]], [2, 2]), &device);
        let alpha = Tensor::<2>::from_data(TensorData::new(vec![0.3f32, 0.8], [2, 1]), &device);
        for method in [PenaltyMethod::Exact, PenaltyMethod::Difference] {
            let p = gradient_penalty(&critic, real.clone(), fake.clone(), alpha.clone(), 10.0, method, 0.01);
            let p = f64::from(p.into_scalar::<f32>());
            assert!((p - expected).abs() < 1e-3 * (1.0 + expected), "{method:?}: {p} vs {expected}");
        }
    }
}
