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
//!   - `difference`: difference quotients, for any critic. Along the interpolation line,
//!     `q = (D(x̂ + h (x_f − x_r)) − D(x̂)) / (h ‖x_f − x_r‖)`, penalised two-sided as `λ E[(q + 1)²]`:
//!     an optimal critic rises with slope 1 from the fake towards the real point (Gulrajani et al.,
//!     Prop. 1), so `q = −1`. The sign matters: `(|q| − 1)²` has a ridge at `q = 0` whose pull (2λ)
//!     outweighs the objective's (1), so a slope that starts with the wrong sign is held there — that
//!     version never converged on 8 Gaussians. Along a random unit direction `ξ` with the same step
//!     length the slope is penalised one-sided, `λ E[max(|q_ξ| − 1, 0)²]` (a 1-Lipschitz critic has
//!     slope at most 1 in every direction; without it the critic is free across the line). An
//!     approximation: finitely many directions and a finite step `h`.

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
    pub fn validate(&self) -> kiln_task::Result<()> {
        match self {
            Self::Clip { c } => kiln_task::ensure!(*c > 0.0, "model.lipschitz.c must be positive, got {c}"),
            Self::SpectralNorm {} => {}
            Self::GradientPenalty { lambda, step, .. } => {
                kiln_task::ensure!(*lambda > 0.0, "model.lipschitz.lambda must be positive, got {lambda}");
                kiln_task::ensure!(*step > 0.0 && *step < 1.0, "model.lipschitz.step must be in (0, 1), got {step}");
            }
        }
        Ok(())
    }

    /// Whether the critic's layers are spectrally normalised.
    pub fn spectral(&self) -> bool {
        matches!(self, Self::SpectralNorm {})
    }

    /// What follows an optimiser step: clip the critic after a critic step (`clip`), advance the
    /// power-iteration vectors after every step (`spectral_norm`).
    pub fn after_step(&self, critic: &mut impl ConstrainedCritic, was_critic_step: bool) {
        match self {
            Self::Clip { c } if was_critic_step => critic.clip(*c),
            Self::SpectralNorm {} => critic.power_iteration(),
            _ => {}
        }
    }
}

/// A critic the constraints act on.
pub trait ConstrainedCritic {
    /// Clamp every parameter to `[−c, c]`.
    fn clip(&mut self, c: f64);
    /// One power-iteration step in every spectrally normalised layer.
    fn power_iteration(&mut self);
}

impl ConstrainedCritic for MlpCritic {
    fn clip(&mut self, c: f64) {
        MlpCritic::clip(self, c);
    }
    fn power_iteration(&mut self) {
        MlpCritic::power_iteration(self);
    }
}

impl ConstrainedCritic for crate::ConvCritic {
    fn clip(&mut self, c: f64) {
        crate::ConvCritic::clip(self, c);
    }
    fn power_iteration(&mut self) {
        crate::ConvCritic::power_iteration(self);
    }
}

/// The gradient penalty on a batch of real and (detached) fake points, `alpha` `[b, 1]` in `[0, 1]`,
/// `random` standard normal (the difference method's random directions).
///
/// # Shapes
///
/// - `real`, `fake`, `random`: `[b, d]`; `alpha`: `[b, 1]` → scalar `[1]`
#[allow(clippy::too_many_arguments)]
pub fn gradient_penalty(
    critic: &MlpCritic,
    real: Tensor<2>,
    fake: Tensor<2>,
    alpha: Tensor<2>,
    random: Tensor<2>,
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
        PenaltyMethod::Difference => {
            return difference_penalty(&|x| critic.forward(x), x_hat, direction, random, lambda, step);
        }
    };
    slopes.sub_scalar(1.0).powf_scalar(2.0).mean().mul_scalar(lambda)
}

/// The difference-quotient penalty for any critic on flattened inputs (see the module docs): at `x̂`
/// (`[b, d]`), the signed slope along `direction = x_f − x_r` penalised two-sided towards −1, and the
/// slope along the unit direction of `random` (same step length `h ‖direction‖`) penalised one-sided.
pub fn difference_penalty(
    critic: &dyn Fn(Tensor<2>) -> Tensor<1>,
    x_hat: Tensor<2>,
    direction: Tensor<2>,
    random: Tensor<2>,
    lambda: f64,
    step: f64,
) -> Tensor<1> {
    let norm = |t: Tensor<2>| t.powf_scalar(2.0).sum_dim(1).sqrt().clamp_min(1e-12); // [b, 1]
    let length = norm(direction.clone());
    let here = critic(x_hat.clone());
    let h = length.clone().mul_scalar(step); // [b, 1]
    let along = critic(x_hat.clone() + direction.mul_scalar(step));
    let transport = (along - here.clone()) / h.clone().squeeze_dim::<1>(1);
    let unit = random.clone() / norm(random);
    let across = critic(x_hat + unit * h.clone());
    let sideways = ((across - here) / h.squeeze_dim::<1>(1)).abs();
    let two_sided = transport.add_scalar(1.0).powf_scalar(2.0).mean();
    let one_sided = sideways.sub_scalar(1.0).clamp_min(0.0).powf_scalar(2.0).mean();
    (two_sided + one_sided).mul_scalar(lambda)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// On a linear critic `D(x) = wᵀx + b` every input gradient is `w`: the exact penalty is
    /// `λ (‖w‖ − 1)²`; the difference quotients are exact for a linear function, so with `x_f − x_r`
    /// along `−w` (the critic rises towards the real point) the difference penalty is that plus the
    /// one-sided term of the random directions. With the wrong sign the transport term is `λ (‖w‖ + 1)²`.
    #[test]
    fn linear_critic_by_hand() {
        let device = Device::flex();
        let critic = MlpCritic::new(2, &[], false, &device);
        let crate::CriticLayer::Plain(l) = &critic.layers[0] else { unreachable!() };
        let w: Vec<f32> = l.weight.val().into_data().try_to_vec::<f32>().unwrap();
        let norm = f64::from(w[0].hypot(w[1]));
        let expected = 10.0 * (norm - 1.0).powi(2);
        let real = Tensor::<2>::from_data(TensorData::new(vec![0.0f32, 0.0, 1.0, 1.0], [2, 2]), &device);
        // Fakes displaced along −w from the reals, by different lengths.
        let fake = real.clone()
            - Tensor::<2>::from_data(TensorData::new(vec![w[0], w[1], 2.0 * w[0], 2.0 * w[1]], [2, 2]), &device);
        let alpha = Tensor::<2>::from_data(TensorData::new(vec![0.3f32, 0.8], [2, 1]), &device);
        // Random directions: the slope along a unit ξ is |w·ξ|; only its excess over 1 is penalised.
        let xi = [[0.6f32, 0.8], [-1.0, 0.0]];
        let random = Tensor::<2>::from_data(TensorData::new(vec![3.0f32, 4.0, -2.0, 0.0], [2, 2]), &device);
        let sideways: f64 =
            xi.iter().map(|u| (f64::from((w[0] * u[0] + w[1] * u[1]).abs()) - 1.0).max(0.0).powi(2)).sum::<f64>() / 2.0;
        for (method, want) in
            [(PenaltyMethod::Exact, expected), (PenaltyMethod::Difference, expected + 10.0 * sideways)]
        {
            let p = gradient_penalty(
                &critic,
                real.clone(),
                fake.clone(),
                alpha.clone(),
                random.clone(),
                10.0,
                method,
                0.01,
            );
            let p = f64::from(p.into_scalar::<f32>());
            assert!((p - want).abs() < 1e-3 * (1.0 + want), "{method:?}: {p} vs {want}");
        }
        // Reals and fakes swapped: the critic now falls towards the real points, slope +‖w‖ along x_f − x_r.
        let wrong = f64::from(
            gradient_penalty(
                &critic,
                fake.clone(),
                real.clone(),
                alpha,
                random.clone(),
                10.0,
                PenaltyMethod::Difference,
                0.01,
            )
            .into_scalar::<f32>(),
        );
        let want = 10.0 * ((norm + 1.0).powi(2) + sideways);
        assert!((wrong - want).abs() < 1e-3 * (1.0 + want), "swapped: {wrong} vs {want}");
        // A steep linear critic (‖w‖ = 5) pays the one-sided term for every direction with |w·ξ| > 1.
        let steep = |x: Tensor<2>| {
            (x * Tensor::<2>::from_data(TensorData::new(vec![3.0f32, 4.0], [1, 2]), &device))
                .sum_dim(1)
                .squeeze_dim::<1>(1)
        };
        let p = difference_penalty(&steep, real.clone(), fake.clone() - real.clone(), random, 1.0, 0.01);
        let sideways: f64 =
            xi.iter().map(|u| ((3.0 * u[0] + 4.0 * u[1]).abs() as f64 - 1.0).max(0.0).powi(2)).sum::<f64>() / 2.0;
        // Signed slopes along x_f − x_r = −w, −2w: −(3, 4)·w/‖w‖ each, penalised towards −1.
        let along: f64 = [[-w[0], -w[1]], [-2.0 * w[0], -2.0 * w[1]]]
            .iter()
            .map(|d| (f64::from((3.0 * d[0] + 4.0 * d[1]) / d[0].hypot(d[1])) + 1.0).powi(2))
            .sum::<f64>()
            / 2.0;
        let p = f64::from(p.into_scalar::<f32>());
        assert!((p - (along + sideways)).abs() < 1e-2 * (1.0 + along + sideways), "{p} vs {}", along + sideways);
    }
}
