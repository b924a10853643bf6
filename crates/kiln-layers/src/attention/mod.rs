//! Attention kinds: which one a model uses is one TOML line, `[model.attention] kind = "..."`.
//!
//! Every kind maps per-head `q, k, v: [b, h, n, d]` to `[b, h, n, d]`, takes a key-padding mask and
//! an optional [`Rotary`], and is wrapped by [`MultiHeadAttention`](crate::MultiHeadAttention).
//! See `shared/METHODS.md` §2.

mod linear;
mod multi_head;
mod nystrom;
mod performer;
mod redraw;
mod softmax;

use burn::prelude::*;
use serde::{Deserialize, Serialize};

pub use linear::{
    FeatureMap, Features, LINEAR_EPS, LinearAttention, kernelized_attention, kernelized_attention_quadratic,
};
pub use multi_head::{MultiHeadAttention, MultiHeadAttentionConfig};
pub use nystrom::{Nystrom, iterative_pinv};
pub use performer::{PERFORMER_FEATURE_EPS, Performer, default_num_features};
pub use redraw::{REDRAW, RedrawSchedule, orthogonal_gaussian, redraw_features};
pub use softmax::SoftmaxAttention;

use crate::{LayerConfigError, Rotary};

/// Which attention a block uses. TOML: `[model.attention]` with `kind = "performer"` and the
/// variant's keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum AttentionConfig {
    /// Exact `softmax(QKᵀ/√d) V`.
    Softmax {},
    /// Linear attention `φ(Q)(φ(K)ᵀV)` (Katharopoulos et al. 2020).
    Linear {
        /// `"elu+1"` (default) or `"exp"`.
        #[serde(default)]
        feature_map: FeatureMap,
        /// Project q and k to this many features before `φ` (Su recommends `> d_head` with `exp`).
        #[serde(default)]
        feature_dim: Option<usize>,
        /// Chunk length of the causal prefix sums.
        #[serde(default = "default_chunk")]
        chunk_size: usize,
    },
    /// FAVOR+ positive orthogonal random features (Choromanski et al. 2021).
    Performer {
        /// Number of random features; default `d ln d` rounded up to a multiple of 4.
        #[serde(default)]
        num_features: Option<usize>,
        /// Redraw the features before every this-many-th training step (0: never).
        #[serde(default = "default_redraw")]
        redraw_interval: usize,
        /// Seed of the feature draws (each layer mixes in its index).
        #[serde(default)]
        seed: u64,
        /// Chunk length of the causal prefix sums.
        #[serde(default = "default_chunk")]
        chunk_size: usize,
    },
    /// Nyström approximation with segment-mean landmarks (Xiong et al. 2021).
    Nystrom {
        /// Number of landmarks `m`.
        #[serde(default = "default_landmarks")]
        num_landmarks: usize,
        /// Taps of the depthwise convolution residual over V (odd; 0 disables it).
        #[serde(default = "default_conv_kernel")]
        conv_kernel: usize,
        /// Iterations of the pseudo-inverse.
        #[serde(default = "default_pinv_iterations")]
        pinv_iterations: usize,
    },
}

fn default_chunk() -> usize {
    64
}
fn default_redraw() -> usize {
    1000
}
fn default_landmarks() -> usize {
    64
}
fn default_conv_kernel() -> usize {
    33
}
fn default_pinv_iterations() -> usize {
    6
}

impl Default for AttentionConfig {
    fn default() -> Self {
        Self::Softmax {}
    }
}

impl AttentionConfig {
    /// The TOML `kind` of this config.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Softmax {} => "softmax",
            Self::Linear { .. } => "linear",
            Self::Performer { .. } => "performer",
            Self::Nystrom { .. } => "nystrom",
        }
    }

    /// Check the parameters, and that a causal model does not ask for Nyström.
    pub fn validate(&self, causal: bool) -> Result<(), LayerConfigError> {
        match self {
            Self::Softmax {} => Ok(()),
            Self::Linear { feature_dim, chunk_size, .. } => {
                if *feature_dim == Some(0) {
                    return Err(LayerConfigError::ZeroFeatureDim);
                }
                nonzero("attention.chunk_size", *chunk_size)
            }
            Self::Performer { num_features, chunk_size, .. } => {
                if *num_features == Some(0) {
                    return Err(LayerConfigError::Zero { key: "attention.num_features" });
                }
                nonzero("attention.chunk_size", *chunk_size)
            }
            Self::Nystrom { num_landmarks, conv_kernel, pinv_iterations } => {
                if causal {
                    return Err(LayerConfigError::CausalNystrom);
                }
                nonzero("attention.num_landmarks", *num_landmarks)?;
                nonzero("attention.pinv_iterations", *pinv_iterations)?;
                if *conv_kernel > 0 && conv_kernel % 2 == 0 {
                    return Err(LayerConfigError::EvenConvKernel(*conv_kernel));
                }
                Ok(())
            }
        }
    }

    /// The dimensions a rotary position encoding rotates with this attention: the head dimension,
    /// or for linear attention and Performer the feature size (RoPE acts on `φ(q)`, `φ(k)`).
    pub fn rotated_dims(&self, d_head: usize) -> Vec<(&'static str, usize)> {
        match self {
            Self::Softmax {} | Self::Nystrom { .. } => vec![("d_head", d_head)],
            Self::Linear { feature_dim, .. } => match feature_dim {
                Some(m) => vec![("linear attention feature_dim", *m)],
                None => vec![("d_head", d_head)],
            },
            Self::Performer { num_features, .. } => {
                vec![("performer num_features", num_features.unwrap_or_else(|| default_num_features(d_head)))]
            }
        }
    }

    /// Build the attention for `n_heads` heads of size `d_head`. `layer` is mixed into Performer's
    /// seed so that layers draw different features.
    pub fn init(&self, n_heads: usize, d_head: usize, layer: usize, device: &Device) -> Attention {
        match self {
            Self::Softmax {} => Attention::Softmax(SoftmaxAttention),
            Self::Linear { feature_map, feature_dim, chunk_size } => {
                Attention::Linear(LinearAttention::new(d_head, *feature_map, *feature_dim, *chunk_size, device))
            }
            Self::Performer { num_features, redraw_interval, seed, chunk_size } => {
                let m = num_features.unwrap_or_else(|| default_num_features(d_head));
                let seed = seed.wrapping_add((layer as u64).wrapping_mul(0x2545_F491_4F6C_DD1D));
                Attention::Performer(Performer::new(d_head, m, *redraw_interval, seed, *chunk_size, device))
            }
            Self::Nystrom { num_landmarks, conv_kernel, pinv_iterations } => {
                Attention::Nystrom(Nystrom::new(n_heads, *num_landmarks, *conv_kernel, *pinv_iterations, device))
            }
        }
    }
}

fn nonzero(key: &'static str, value: usize) -> Result<(), LayerConfigError> {
    if value == 0 { Err(LayerConfigError::Zero { key }) } else { Ok(()) }
}

/// The attention of one layer: one variant per [`AttentionConfig`] kind.
#[derive(Module, Debug)]
pub enum Attention {
    /// Exact softmax attention.
    Softmax(SoftmaxAttention),
    /// Linear attention.
    Linear(LinearAttention),
    /// Performer FAVOR+.
    Performer(Performer),
    /// Nyström attention.
    Nystrom(Nystrom),
}

impl Attention {
    /// Attend over per-head tensors.
    ///
    /// # Shapes
    ///
    /// - `q`, `k`, `v`: `[b, h, n, d]` → `[b, h, n, d]`
    ///
    /// # Panics
    ///
    /// Nyström panics when `causal` (configs reject it in `validate()`).
    pub fn forward(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, options: AttentionOptions) -> Tensor<4> {
        match self {
            Self::Softmax(a) => a.forward(q, k, v, options),
            Self::Linear(a) => a.forward(q, k, v, options),
            Self::Performer(a) => a.forward(q, k, v, options),
            Self::Nystrom(a) => a.forward(q, k, v, options),
        }
    }
}

/// What every attention kind attends with besides `q`, `k` and `v`.
#[derive(Debug, Clone, Copy, Default)]
pub struct AttentionOptions<'a> {
    /// Key padding `[b, m]`, `true` at padding: padded keys get no weight.
    pub padding: Option<&'a Tensor<2, Bool>>,
    /// Whether query `i` sees keys `j ≤ i` only.
    pub causal: bool,
    /// Rotary positions, applied to `q` and `k` (or to their features) by each kind.
    pub rotary: Option<&'a Rotary>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::padding_from_lengths;
    use crate::test_util::*;

    /// One config per kind, with the non-default options switched on.
    fn kinds() -> Vec<AttentionConfig> {
        vec![
            AttentionConfig::Softmax {},
            AttentionConfig::Linear { feature_map: FeatureMap::EluPlusOne, feature_dim: None, chunk_size: 4 },
            AttentionConfig::Linear { feature_map: FeatureMap::Exp, feature_dim: Some(16), chunk_size: 4 },
            AttentionConfig::Performer { num_features: Some(32), redraw_interval: 0, seed: 1, chunk_size: 4 },
            AttentionConfig::Nystrom { num_landmarks: 3, conv_kernel: 5, pinv_iterations: 6 },
        ]
    }

    fn mha(kind: &AttentionConfig, causal: bool, device: &Device) -> MultiHeadAttention {
        MultiHeadAttentionConfig { d_model: 16, n_heads: 2, causal, attention: kind.clone() }.init(0, device)
    }

    fn rotary(kind: usize, positions: std::ops::Range<usize>, device: &Device) -> Option<Rotary> {
        let p: Vec<f64> = positions.map(|i| i as f64).collect();
        match kind {
            0 => None,
            1 => Some(Rotary::one_d(p, 10_000.0, device)),
            _ => Some(Rotary::two_d(
                p.iter().map(|i| (i / 4.0).floor()).collect(),
                p.iter().map(|i| i % 4.0).collect(),
                10_000.0,
                device,
            )),
        }
    }

    /// Appending padding (with junk values) changes nothing at real positions, for every kind, causal
    /// or not, with and without RoPE.
    #[test]
    fn appended_padding_changes_nothing_at_real_positions() {
        let device = dev();
        let (n, extra) = (9, 4);
        for kind in kinds() {
            for causal in [false, true] {
                if causal && kind.validate(true).is_err() {
                    continue;
                }
                let layer = mha(&kind, causal, &device);
                for rope in [0, 1] {
                    let x = randn([2, n, 16], 1.0, 1, &device);
                    let short_pad = padding_from_lengths(&[9, 6], n, &device);
                    let short = layer.forward(x.clone(), Some(&short_pad), rotary(rope, 0..n, &device).as_ref());
                    let junk = randn([2, extra, 16], 3.0, 2, &device);
                    let long_x = Tensor::cat(vec![x, junk], 1);
                    let long_pad = padding_from_lengths(&[9, 6], n + extra, &device);
                    let long = layer.forward(long_x, Some(&long_pad), rotary(rope, 0..n + extra, &device).as_ref());
                    for (b, len) in [(0, 9), (1, 6)] {
                        let a = to_vec(short.clone().narrow(0, b, 1).narrow(1, 0, len));
                        let c = to_vec(long.clone().narrow(0, b, 1).narrow(1, 0, len));
                        let diff = max_abs_diff(&a, &c);
                        assert!(diff < 1e-4, "{} causal={causal} rope={rope} batch {b}: diff {diff}", kind.kind());
                    }
                }
            }
        }
    }

    /// Causal kinds: changing the tokens after position `i` leaves outputs up to `i` unchanged.
    #[test]
    fn causal_outputs_ignore_the_future() {
        let device = dev();
        for kind in kinds().into_iter().filter(|k| k.validate(true).is_ok()) {
            let layer = mha(&kind, true, &device);
            let x = randn([1, 10, 16], 1.0, 3, &device);
            let changed = Tensor::cat(vec![x.clone().narrow(1, 0, 6), randn([1, 4, 16], 1.0, 4, &device)], 1);
            let rot = rotary(1, 0..10, &device);
            let a = to_vec(layer.forward(x, None, rot.as_ref()).narrow(1, 0, 6));
            let b = to_vec(layer.forward(changed, None, rot.as_ref()).narrow(1, 0, 6));
            let diff = max_abs_diff(&a, &b);
            assert!(diff < 1e-5, "{}: {diff}", kind.kind());
        }
    }

    /// RoPE and 2-D RoPE compose with every kind: scores depend only on offsets, so shifting every
    /// position by the same amount leaves the output unchanged (linear attention and Performer
    /// rotate their features in the numerator; Nyström's landmarks are means of rotated vectors).
    #[test]
    fn rotary_attention_is_translation_invariant() {
        let device = dev();
        let n = 8;
        for kind in kinds() {
            let layer = mha(&kind, false, &device);
            let x = randn([2, n, 16], 1.0, 5, &device);
            let base = to_vec(layer.forward(x.clone(), None, rotary(1, 0..n, &device).as_ref()));
            let shifted = to_vec(layer.forward(x.clone(), None, rotary(1, 37..37 + n, &device).as_ref()));
            assert!(max_abs_diff(&base, &shifted) < 1e-4, "rope {}", kind.kind());
            let p: Vec<f64> = (0..n).map(|i| i as f64).collect();
            let grid = |dr: f64, dc: f64| {
                Rotary::two_d(
                    p.iter().map(|i| (i / 4.0).floor() + dr).collect(),
                    p.iter().map(|i| i % 4.0 + dc).collect(),
                    10_000.0,
                    &device,
                )
            };
            let base = to_vec(layer.forward(x.clone(), None, Some(&grid(0.0, 0.0))));
            let shifted = to_vec(layer.forward(x.clone(), None, Some(&grid(5.0, 11.0))));
            assert!(max_abs_diff(&base, &shifted) < 1e-4, "rope2d {}", kind.kind());
            // And positions matter: a different relative layout changes the output.
            let unrotated = to_vec(layer.forward(x, None, None));
            assert!(max_abs_diff(&base, &unrotated) > 1e-4, "rope2d has no effect on {}", kind.kind());
        }
    }

    /// Central differences against `backward()` for the gradient of `Σ out ⊙ r` with respect to
    /// the input, through the projections, the attention kind (with RoPE), masks and the Nyström
    /// convolution.
    #[test]
    fn input_gradients_match_finite_differences() {
        let device = dev().autodiff();
        for kind in kinds() {
            for causal in [false, true] {
                if causal && kind.validate(true).is_err() {
                    continue;
                }
                let layer = mha(&kind, causal, &device);
                let n = 6;
                let pad = padding_from_lengths(&[6, 4], n, &device);
                let rot = rotary(1, 0..n, &device);
                let r = randn([2, n, 16], 1.0, 8, &device);
                let x0 = to_vec(randn([2, n, 16], 0.7, 9, &device));
                let loss = |x: &[f32]| {
                    let x = Tensor::<1>::from_floats(x, &device).reshape([2, n, 16]);
                    (layer.forward(x, Some(&pad), rot.as_ref()) * r.clone()).sum()
                };
                let x = Tensor::<1>::from_floats(x0.as_slice(), &device).reshape([2, n, 16]).require_grad();
                let grads = (layer.forward(x.clone(), Some(&pad), rot.as_ref()) * r.clone()).sum().backward();
                let analytic = to_vec(x.grad(&grads).expect("input gradient"));
                let h = 1e-2;
                for idx in [0, 17, 40, 95, 100, 150, 191] {
                    let mut plus = x0.clone();
                    plus[idx] += h;
                    let mut minus = x0.clone();
                    minus[idx] -= h;
                    let fd = (to_vec(loss(&plus))[0] - to_vec(loss(&minus))[0]) / (2.0 * h);
                    let ad = analytic[idx];
                    assert!(
                        (fd - ad).abs() <= 2e-2 * (1.0 + ad.abs()),
                        "{} causal={causal} x[{idx}]: finite difference {fd} vs backward {ad}",
                        kind.kind()
                    );
                }
            }
        }
    }
}
