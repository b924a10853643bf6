//! Performer's periodic feature redraws, reached through Burn's module traversal: the trainer calls
//! [`redraw_features`] on whatever model it trains before each step, and every Performer in it,
//! wherever it sits (an encoder, a decoder, BERT's blocks inside a NER model), draws new features
//! when its schedule says so. No model or task forwards the call.
//!
//! A Performer keeps its schedule as the module [`RedrawSchedule`], placed before its projection.
//! The schedule holds no parameters (checkpoints, devices and parameter counts do not see it); when
//! a [`ModuleMapper`] maps it, it announces itself with `enter_module(seed/interval, REDRAW)`, the
//! one way a module can tell a mapper something. [`FeatureRedraw`] listens for it and replaces the
//! projection that the Performer maps next.

use burn::module::{Content, Devices, Module, ModuleDisplay, ModuleDisplayDefault, ModuleMapper, ModuleVisitor, Param};
use burn::prelude::*;

use super::performer::draw_values;

/// The container type under which a [`RedrawSchedule`] announces itself to mappers.
pub const REDRAW: &str = "Kiln:RedrawSchedule";

/// When a Performer draws new features: before every `interval`-th training step (0: never; never
/// after the last step), the draw a function of `(seed, step / interval)` so that a resumed run
/// redraws as the original did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedrawSchedule {
    /// Steps between draws (0: never).
    pub interval: usize,
    /// Seed of the layer's draws.
    pub seed: u64,
}

impl RedrawSchedule {
    /// The index of the draw to make before training step `step` (0-based), if one is due.
    pub fn due(&self, step: usize) -> Option<u64> {
        (self.interval > 0 && step > 0 && step.is_multiple_of(self.interval)).then(|| (step / self.interval) as u64)
    }

    fn announce(&self) -> String {
        format!("{}/{}", self.seed, self.interval)
    }

    fn parse(name: &str) -> Option<Self> {
        let (seed, interval) = name.split_once('/')?;
        Some(Self { seed: seed.parse().ok()?, interval: interval.parse().ok()? })
    }
}

impl Module for RedrawSchedule {
    fn collect_devices(&self, devices: Devices) -> Devices {
        devices
    }

    fn fork(self, _: &Device) -> Self {
        self
    }

    fn to_device(self, _: &Device) -> Self {
        self
    }

    fn visit<V: ModuleVisitor>(&self, _: &mut V) {}

    fn map<M: ModuleMapper>(self, mapper: &mut M) -> Self {
        let name = self.announce();
        mapper.enter_module(&name, REDRAW);
        mapper.exit_module(&name, REDRAW);
        self
    }

    fn valid(&self) -> Self {
        *self
    }

    fn train(self) -> Self {
        self
    }

    fn materialize(self) -> Self {
        self
    }
}

impl ModuleDisplayDefault for RedrawSchedule {
    fn content(&self, content: Content) -> Option<Content> {
        content.add_formatted(&format!("every {} steps, seed {}", self.interval, self.seed)).optional()
    }
}

impl ModuleDisplay for RedrawSchedule {}

/// Draw new features for every Performer in `model` whose schedule is due before training step
/// `step` (0-based); the rest of the model is returned as it was.
pub fn redraw_features<M: Module>(model: M, step: usize) -> M {
    model.map(&mut FeatureRedraw { step, pending: None })
}

/// The mapper of [`redraw_features`].
struct FeatureRedraw {
    step: usize,
    /// The schedule just announced, for the projection mapped next.
    pending: Option<RedrawSchedule>,
}

impl ModuleMapper for FeatureRedraw {
    fn enter_module(&mut self, name: &str, container_type: &str) {
        if container_type == REDRAW {
            self.pending = RedrawSchedule::parse(name);
        }
    }

    fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
        let Some(draw) = self.pending.take().and_then(|s| s.due(self.step).map(|draw| (s.seed, draw))) else {
            return param;
        };
        // The Performer's `[m, d]` projection.
        let current = param.val();
        let (dims, device) = (current.dims(), current.device());
        let values = draw_values(dims[0], dims[D - 1], draw.0, draw.1);
        Param::from_tensor(Tensor::from_data(TensorData::new(values, dims), &device)).set_require_grad(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;
    use crate::{Attention, TransformerConfig};

    fn performers(stack: &crate::Transformer) -> Vec<(RedrawSchedule, Vec<f32>)> {
        stack
            .blocks
            .iter()
            .map(|b| match &b.attention.attention {
                Attention::Performer(p) => (p.redraw, to_vec(p.projection.val())),
                other => panic!("not a Performer: {other:?}"),
            })
            .collect()
    }

    /// Through a whole stack: at a due step every layer's projection becomes its own draw
    /// `(layer seed, step / interval)` (each layer different), not trainable; between due steps and at
    /// step 0 nothing changes; the other parameters are the same tensors before and after.
    #[test]
    fn redraws_reach_every_performer_of_a_stack() {
        let device = dev();
        let config: TransformerConfig = toml::from_str(
            "d_model = 16\nn_heads = 2\nn_layers = 2\nattention = { kind = \"performer\", num_features = 12, redraw_interval = 3, seed = 5 }",
        )
        .unwrap();
        let stack = config.init(&device);
        let before = performers(&stack);
        let ffn_before = to_vec(stack.blocks[1].feed_forward.hidden.weight.val());
        for step in [0, 1, 2, 4] {
            assert_eq!(performers(&redraw_features(stack.clone(), step)), before, "step {step}");
        }
        let after = redraw_features(stack.clone(), 6);
        let redrawn = performers(&after);
        for ((schedule, old), (_, new)) in before.iter().zip(&redrawn) {
            assert_eq!(schedule.due(6), Some(2));
            assert_eq!(*new, draw_values(12, 8, schedule.seed, 2));
            assert_ne!(new, old);
        }
        assert_ne!(redrawn[0].1, redrawn[1].1, "layers draw from their own seeds");
        assert_eq!(to_vec(after.blocks[1].feed_forward.hidden.weight.val()), ffn_before);
        let Attention::Performer(p) = &after.blocks[0].attention.attention else { unreachable!() };
        assert!(!p.projection.is_require_grad());
    }

    /// A schedule that never redraws, and the name it announces reads back.
    #[test]
    fn schedules_read_back_and_interval_zero_never_redraws() {
        let s = RedrawSchedule { interval: 0, seed: u64::MAX };
        assert_eq!(RedrawSchedule::parse(&s.announce()), Some(s));
        assert!((0..100).all(|step| s.due(step).is_none()));
    }
}
