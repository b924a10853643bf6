//! Performer's random features: how they are drawn (block-orthogonal Gaussian rows), and their
//! periodic redraws, reached through Burn's module traversal: the trainer calls
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

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

/// Draw an `m × d` block-orthogonal Gaussian matrix from `seed`, row-major.
///
/// Each block of `d` rows is an orthonormalised `d × d` Gaussian matrix (Gram-Schmidt in `f64`, the
/// same distribution as the reference's QR); every row is then scaled to the norm of an independent
/// `d`-dimensional Gaussian vector, so rows are marginally Gaussian but mutually orthogonal within a
/// block (the "regularized" scaling of the reference is not used).
pub fn orthogonal_gaussian(m: usize, d: usize, seed: u64) -> Vec<f32> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut normal = move || -> f64 { StandardNormal.sample(&mut rng) };
    let mut rows: Vec<Vec<f64>> = Vec::with_capacity(m);
    while rows.len() < m {
        let mut block: Vec<Vec<f64>> = Vec::with_capacity(d);
        while block.len() < d {
            let mut v: Vec<f64> = (0..d).map(|_| normal()).collect();
            for u in &block {
                let dot: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(u).for_each(|(a, b)| *a -= dot * b);
            }
            let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
            if norm > 1e-8 {
                v.iter_mut().for_each(|a| *a /= norm);
                block.push(v);
            }
        }
        let take = (m - rows.len()).min(d);
        rows.extend(block.into_iter().take(take));
    }
    let mut out = Vec::with_capacity(m * d);
    for row in rows {
        let scale = (0..d).map(|_| normal().powi(2)).sum::<f64>().sqrt();
        out.extend(row.iter().map(|x| (x * scale) as f32));
    }
    out
}

/// The values of the `draw`-th `[m, d]` projection of a layer seeded `seed`, row-major.
pub(crate) fn draw_values(m: usize, d: usize, seed: u64, draw: u64) -> Vec<f32> {
    orthogonal_gaussian(m, d, mix_seed(seed, draw))
}

/// Mix a layer seed and a draw index into one seed (SplitMix64 finaliser).
fn mix_seed(seed: u64, draw: u64) -> u64 {
    let mut z = seed ^ draw.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

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
