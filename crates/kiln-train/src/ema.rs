//! An exponential moving average of the weights (`[train.ema]`), Polyak averaging as in TensorFlow's
//! `ExponentialMovingAverage`, timm's `ModelEmaV2` or PyTorch's `AveragedModel` with an EMA average.
//!
//! After every optimiser step `t` (1, 2, …), each trainable float parameter moves as
//! `ema ← d·ema + (1 − d)·θ`, with `d = decay`, or with `warmup = true` (the default)
//! `d = min(decay, (1 + t) / (10 + t))`, TensorFlow's `num_updates` ramp, so that the first averages
//! do not remember the initial weights for thousands of steps. Parameters that are not trained
//! (frozen weights) are copied. The average starts as a copy of the initial weights.
//!
//! The average is a validation copy of the model (no autodiff): the trainer evaluates it, keeps the
//! best checkpoint by its metric, and writes it to every checkpoint as `ema.bpk` beside the trained
//! weights (`model.bpk`, still what a resumed run trains on); `kiln eval`, `predict` and `sample` load
//! `ema.bpk` where a checkpoint has one.

use std::collections::VecDeque;

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// `[train.ema]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmaConfig {
    /// Decay per optimiser step, in (0, 1): the average spans about `1 / (1 − decay)` steps.
    pub decay: f64,
    /// Ramp the decay up as `min(decay, (1 + t) / (10 + t))` over the first steps.
    #[serde(default = "yes")]
    pub warmup: bool,
    /// Also evaluate the trained (not averaged) weights at every evaluation, logged as the split
    /// `valid_raw` of `metrics.csv`: the side-by-side measure of what the average brings.
    #[serde(default)]
    pub eval_raw: bool,
}

fn yes() -> bool {
    true
}

impl EmaConfig {
    /// The decay applied at optimiser step `step` (counted from 1).
    pub fn decay_at(&self, step: usize) -> f64 {
        if self.warmup {
            let t = step as f64;
            self.decay.min((1.0 + t) / (10.0 + t))
        } else {
            self.decay
        }
    }

    /// `decay` must lie in (0, 1).
    ///
    /// # Errors
    ///
    /// Names the key and the value.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.decay > 0.0 && self.decay < 1.0,
            "train.ema.decay must be in (0, 1) (0.999 averages over about 1,000 steps), got {}",
            self.decay
        );
        Ok(())
    }
}

/// The model's float parameters in module order, flattened, with whether each is trained. (In
/// order rather than by parameter id: a task may replace a parameter, as the Performer's redrawn
/// projection is, and the replacement has a new id.)
struct Collect(VecDeque<(Tensor<1>, bool)>);

impl ModuleVisitor for Collect {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let value = param.val();
        let trained = value.is_require_grad();
        let n = value.shape().num_elements();
        self.0.push_back((value.inner().reshape([n]), trained));
    }
}

/// Moves each float parameter of the average towards the model's parameter in the same place.
struct Blend {
    live: VecDeque<(Tensor<1>, bool)>,
    decay: f64,
}

impl ModuleMapper for Blend {
    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let (live, trained) = self.live.pop_front().expect("the average has more parameters than the model");
        let decay = self.decay;
        param.map(|ema| {
            let shape = ema.shape();
            assert_eq!(shape.num_elements(), live.shape().num_elements(), "the average and the model differ in shape");
            let live = live.reshape(shape);
            if trained { ema.mul_scalar(decay).add(live.mul_scalar(1.0 - decay)) } else { live }
        })
    }
}

/// The start of an average: a validation copy of `model`.
pub fn start<M: Module>(model: &M) -> M {
    model.valid()
}

/// One update of the average `ema` towards `model` (the same module structure) with `decay`.
///
/// # Panics
///
/// The two modules have different parameters.
pub fn update<M: Module>(ema: M, model: &M, decay: f64) -> M {
    let mut collect = Collect(VecDeque::new());
    model.visit(&mut collect);
    let mut blend = Blend { live: collect.0, decay };
    let ema = ema.map(&mut blend);
    assert!(blend.live.is_empty(), "the average and the model must have the same parameters");
    ema
}

#[cfg(test)]
mod tests {
    use burn::nn::{Linear, LinearConfig};

    use super::*;

    fn values(m: &Linear) -> Vec<f32> {
        let mut v = m.weight.val().into_data().try_to_vec::<f32>().unwrap();
        v.extend(m.bias.as_ref().unwrap().val().into_data().try_to_vec::<f32>().unwrap());
        v
    }

    fn set(m: Linear, step: usize) -> Linear {
        let device = m.weight.device();
        let fill = |param: Param<Tensor<2>>| {
            param.map(|w| {
                let n = w.shape().num_elements();
                let v: Vec<f32> = (0..n).map(|i| ((step * 7 + i * 3) % 11) as f32 - 5.0).collect();
                Tensor::<1>::from_floats(v.as_slice(), &device).reshape(w.shape()).detach().require_grad()
            })
        };
        Linear {
            weight: fill(m.weight),
            bias: m.bias.map(|b| b.map(|b| b.add_scalar(step as f64).detach().require_grad())),
        }
    }

    /// The average equals the recursion `e ← d·e + (1 − d)·θ` computed in f64 from the same sequence
    /// of weights, with the warm-up ramp.
    #[test]
    fn average_follows_the_recursion() {
        let device = Device::flex().autodiff();
        let config = EmaConfig { decay: 0.9, warmup: true, eval_raw: false };
        let mut model = LinearConfig::new(3, 2).init(&device);
        let mut ema = start(&model);
        let mut expected: Vec<f64> = values(&model).into_iter().map(f64::from).collect();
        for step in 1..=30 {
            model = set(model, step);
            let d = config.decay_at(step);
            ema = update(ema, &model, d);
            for (e, &x) in expected.iter_mut().zip(&values(&model)) {
                *e = d * *e + (1.0 - d) * f64::from(x);
            }
            let got = values(&ema);
            for (g, e) in got.iter().zip(&expected) {
                assert!((f64::from(*g) - e).abs() < 1e-4 * (1.0 + e.abs()), "step {step}: {g} vs {e}");
            }
        }
        assert_eq!(config.decay_at(1), 2.0 / 11.0);
        assert_eq!(config.decay_at(1_000), 0.9);
        assert!(!ema.weight.val().is_require_grad(), "the average is a validation copy");
    }

    /// Parameters that are not trained are copied, not averaged.
    #[test]
    fn frozen_parameters_are_copied() {
        let device = Device::flex().autodiff();
        let model = LinearConfig::new(2, 2).init(&device);
        let ema = start(&model);
        let moved = set(model, 3);
        let frozen = Linear { weight: moved.weight.clone().set_require_grad(false), ..moved.clone() };
        let ema = update(ema, &frozen, 0.5);
        let w = ema.weight.val().into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(w, moved.weight.val().into_data().try_to_vec::<f32>().unwrap());
    }
}
