//! One WGAN training step, written once for every generator and critic (Arjovsky et al. 2017,
//! Algorithm 1; Gulrajani et al. 2017, Algorithm 1): a critic step minimises
//! `E[D(G(z))] − E[D(x)]` (plus the gradient penalty when configured) with the generator's output
//! detached; a generator step minimises `−E[D(G(z))]` with the critic frozen. Which of the two a
//! step is follows from its index ([`crate::WganConfig::is_critic_step`]).

use burn::module::Module;
use burn::prelude::*;
use kiln_task::StepOutput;

use crate::lipschitz::LipschitzConfig;

/// A critic or a generator step's inputs, on data of rank `D` (`[b, 2]` points, `[b, 28, 28]`
/// images). A transient value: the size difference of the variants does not matter.
#[allow(clippy::large_enum_variant)]
pub enum WganBatch<const D: usize> {
    /// Real samples, noise, interpolation weights and random directions.
    Critic {
        /// Real samples, `[b, ..]`.
        real: Tensor<D>,
        /// `[b, noise_dim]`.
        noise: Tensor<2>,
        /// `[b, 1]` in `[0, 1]`: where the penalty is taken between real and fake.
        alpha: Tensor<2>,
        /// `[b, features]` standard normal: the difference penalty's random directions.
        random: Tensor<2>,
    },
    /// Noise.
    Generator {
        /// `[b, noise_dim]`.
        noise: Tensor<2>,
    },
}

/// A generator and a critic on data of rank `D`.
pub trait Adversaries<const D: usize> {
    /// The critic's module (frozen for a generator step).
    type Critic: Module;

    /// The critic.
    fn critic(&self) -> &Self::Critic;

    /// Samples from noise `[b, noise_dim]`.
    fn generate(&self, noise: Tensor<2>) -> Tensor<D>;

    /// The critic's scores `[b]` of samples.
    fn score(critic: &Self::Critic, x: Tensor<D>) -> Tensor<1>;

    /// The gradient penalty of a critic step, where `lipschitz` asks for one.
    fn penalty(
        &self,
        lipschitz: &LipschitzConfig,
        real: Tensor<D>,
        fake: Tensor<D>,
        alpha: Tensor<2>,
        random: Tensor<2>,
    ) -> Option<Tensor<1>>;
}

/// The loss of one critic or generator step.
pub fn wgan_step<const D: usize, M: Adversaries<D>>(
    model: &M,
    batch: WganBatch<D>,
    lipschitz: &LipschitzConfig,
) -> StepOutput {
    match batch {
        WganBatch::Critic { real, noise, alpha, random } => {
            let b = real.dims()[0];
            let fake = model.generate(noise).detach();
            let critic = model.critic();
            let mut loss = M::score(critic, fake.clone()).mean() - M::score(critic, real.clone()).mean();
            if let Some(penalty) = model.penalty(lipschitz, real, fake, alpha, random) {
                loss = loss + penalty;
            }
            StepOutput { loss, items: b }
        }
        WganBatch::Generator { noise } => {
            let b = noise.dims()[0];
            let critic = model.critic().clone().no_grad();
            StepOutput { loss: M::score(&critic, model.generate(noise)).mean().neg(), items: b }
        }
    }
}
