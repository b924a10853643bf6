//! Optimisers from the config (Adam and AdamW fused on flex: [`FusedAdam`], [`FusedAdamW`]), and
//! clipping of the global gradient norm.
//!
//! Burn's own `GradientClipping::Norm` clips each parameter's gradient separately; PyTorch's
//! `clip_grad_norm_` (what configs mean by `grad_clip`) scales all gradients by one factor so that
//! their joint L2 norm is at most the threshold. [`clip_global_norm`] does the latter.

use burn::module::{Module, ModuleVisitor, Param, ParamId};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, RmsPropConfig, SgdConfig};
use burn::prelude::*;

use crate::config::OptimizerConfig;
pub use kiln_kernels::{FusedAdam, FusedAdamW};

/// Build the optimiser (the learning rate is given at each step).
pub fn build(config: &OptimizerConfig) -> ModuleOptimizer {
    match config {
        OptimizerConfig::Adamw { betas, eps, weight_decay, .. } => {
            FusedAdamW::new(betas.0 as f32, betas.1 as f32, *eps as f32, *weight_decay as f32).into()
        }
        OptimizerConfig::Adam { betas, eps, weight_decay, .. } => {
            let penalty = (*weight_decay > 0.0).then_some(*weight_decay as f32);
            FusedAdam::new(betas.0 as f32, betas.1 as f32, *eps as f32, penalty).into()
        }
        OptimizerConfig::Rmsprop { alpha, eps, momentum, .. } => RmsPropConfig::new()
            .with_alpha(*alpha as f32)
            .with_epsilon(*eps as f32)
            .with_momentum(*momentum as f32)
            .init(),
        OptimizerConfig::Sgd { momentum, nesterov, weight_decay, .. } => {
            SgdConfig::new()
                .with_momentum((*momentum > 0.0).then(|| {
                    MomentumConfig::new().with_momentum(*momentum).with_dampening(0.0).with_nesterov(*nesterov)
                }))
                .with_weight_decay((*weight_decay > 0.0).then(|| WeightDecayConfig::new(*weight_decay as f32)))
                .init()
        }
    }
}

/// Sum of squared gradient entries over every float parameter of a module.
struct SquaredNorm<'a> {
    grads: &'a GradientsParams,
    parts: Vec<Tensor<1>>,
}

impl ModuleVisitor for SquaredNorm<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if let Some(g) = self.grads.get::<D>(param.id) {
            self.parts.push(g.powf_scalar(2.0).sum());
        }
    }
}

/// Scales every gradient of a module by one factor.
struct Scale<'a> {
    grads: &'a mut GradientsParams,
    factor: f64,
    seen: Vec<ParamId>,
}

impl ModuleVisitor for Scale<'_> {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        if self.seen.contains(&param.id) {
            return;
        }
        if let Some(g) = self.grads.remove::<D>(param.id) {
            self.grads.register(param.id, g.mul_scalar(self.factor));
            self.seen.push(param.id);
        }
    }
}

/// The global L2 norm of the gradients; if it exceeds `max_norm`, scale them all by
/// `max_norm / (norm + 1e-6)` (PyTorch's `clip_grad_norm_`). Returns the norm before clipping.
pub fn clip_global_norm<M: Module>(module: &M, grads: &mut GradientsParams, max_norm: Option<f64>) -> f64 {
    let mut sq = SquaredNorm { grads, parts: Vec::new() };
    module.visit(&mut sq);
    if sq.parts.is_empty() {
        return 0.0;
    }
    let total: f32 = Tensor::cat(sq.parts, 0).sum().into_scalar();
    let norm = (total as f64).sqrt();
    if let Some(max) = max_norm
        && norm > max
    {
        let mut scale = Scale { grads, factor: max / (norm + 1e-6), seen: Vec::new() };
        module.visit(&mut scale);
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LinearConfig;

    /// Hand-derived: a linear layer `y = x W + b` with loss `Σ y` on input `x = [3, 4]` has
    /// gradients `dW = [[3, 3], [4, 4]]`, `db = [1, 1]`: squared norm 9+9+16+16+1+1 = 52.
    /// Clipping to 1 scales every gradient by `1 / (√52 + 1e-6)`.
    #[test]
    fn global_norm_by_hand() {
        let device = Device::flex().autodiff();
        let layer = LinearConfig::new(2, 2).init(&device);
        let x = Tensor::<1>::from_floats([3.0, 4.0], &device).reshape([1, 2]);
        let grads = GradientsParams::from_grads(layer.forward(x.clone()).sum().backward(), &layer);
        let mut unclipped = grads;
        let norm = clip_global_norm(&layer, &mut unclipped, None);
        assert!((norm - 52f64.sqrt()).abs() < 1e-5, "{norm}");
        let mut clipped = GradientsParams::from_grads(layer.forward(x).sum().backward(), &layer);
        let before = clip_global_norm(&layer, &mut clipped, Some(1.0));
        assert!((before - 52f64.sqrt()).abs() < 1e-5);
        let w: Vec<f32> = clipped.get::<2>(layer.weight.id).unwrap().into_data().convert::<f32>().try_to_vec().unwrap();
        let s = 1.0 / 52f32.sqrt();
        for (g, want) in w.iter().zip([3.0 * s, 3.0 * s, 4.0 * s, 4.0 * s]) {
            assert!((g - want).abs() < 1e-5, "{w:?}");
        }
        // The clipped gradients have norm 1.
        let after = clip_global_norm(&layer, &mut clipped, None);
        assert!((after - 1.0).abs() < 1e-4, "{after}");
    }
}
