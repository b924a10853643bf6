//! Linear attention (Katharopoulos et al. 2020, "Transformers are RNNs", arXiv:2006.16236, eq. 4-6;
//! reference code `idiap/fast-transformers`):
//!
//! ```text
//! out_i = φ(q_i)ᵀ (Σ_j φ(k_j) v_jᵀ) / (φ(q_i)ᵀ Σ_j φ(k_j) + ε)
//! ```
//!
//! in `O(n · m · d)` for `m` features. Feature maps: `φ = elu + 1` (the paper's) or `φ = exp`
//! after an optional learned projection of q and k to `feature_dim > d` features, the variant
//! Su recommends ("From Performer to linear attention", kexue.fm/archives/8338: `eˣ` is the
//! best map, `elu+1` its first-order Taylor approximation, and the rank is bounded by the feature
//! size, so a larger one helps).
//!
//! **Stabilising `exp`.** `e^{q}` and `e^{k}` overflow for large inputs. We subtract, for each query,
//! the max over its features (a per-query factor, which cancels between numerator and denominator),
//! and for keys one max per `(batch, head)` over all real keys (a common factor, which cancels too).
//! A per-key max would not cancel: it would reweight keys.
//!
//! **Causal** (eq. 8-9): `S_i = Σ_{j≤i} φ(k_j) v_jᵀ`, `z_i = Σ_{j≤i} φ(k_j)`. A naive cumulative sum
//! materialises `[n, m, d]`; instead the sequence is cut into chunks of `C` tokens: inside a chunk the
//! masked `C × C` quadratic form, across chunks a cumulative sum of per-chunk states
//! `[n/C, m, d]` (see [`kernelized_attention`]).
//!
//! **RoPE** (Su, RoFormer §3.3): rotate `φ(q)`, `φ(k)` in the numerator only and keep the plain
//! `φ(q)·Σφ(k)` denominator, which stays positive.
//!
//! **Padding**: `φ(k_j)` of padded keys is zeroed.

use burn::nn::{Linear, LinearConfig};
use burn::prelude::*;

use super::AttentionOptions;
use kiln_kernels::matmul;
use serde::{Deserialize, Serialize};

use crate::Rotary;
use crate::mask::{causal_weights, keep_tokens};

/// The feature map `φ` of linear attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum FeatureMap {
    /// `φ(x) = elu(x) + 1` (Katharopoulos et al.). TOML: `"elu+1"`.
    #[default]
    #[serde(rename = "elu+1", alias = "elu_plus_one")]
    EluPlusOne,
    /// `φ(x) = eˣ`, stabilised (Su). TOML: `"exp"`.
    #[serde(rename = "exp")]
    Exp,
}

/// Denominator guard `ε` (the reference code's `eps = 1e-6`).
pub const LINEAR_EPS: f64 = 1e-6;

/// Linear attention with a choice of feature map and an optional feature projection.
#[derive(Module, Debug)]
pub struct LinearAttention {
    /// Optional shared projection `d → feature_dim` of queries and keys (no bias), applied
    /// before `φ`. Checkpoint key `feature_projection`.
    pub feature_projection: Option<Linear>,
    /// The feature map.
    #[module(skip)]
    pub feature_map: FeatureMap,
    /// Chunk length of the causal form.
    pub chunk_size: usize,
}

impl LinearAttention {
    /// A linear attention over heads of size `d_head`, projecting to `feature_dim` features first
    /// if given.
    pub fn new(
        d_head: usize,
        feature_map: FeatureMap,
        feature_dim: Option<usize>,
        chunk_size: usize,
        device: &Device,
    ) -> Self {
        let feature_projection = feature_dim.map(|m| LinearConfig::new(d_head, m).with_bias(false).init(device));
        Self { feature_projection, feature_map, chunk_size }
    }

    /// `φ(x)` for queries (`is_query`) or keys; padded keys come out zero.
    ///
    /// # Shapes
    ///
    /// - `x`: `[b, h, n, d]` → `[b, h, n, m]`
    pub fn features(&self, x: Tensor<4>, is_query: bool, padding: Option<&Tensor<2, Bool>>) -> Tensor<4> {
        let x = match &self.feature_projection {
            Some(p) => p.forward(x),
            None => x,
        };
        let phi = match self.feature_map {
            FeatureMap::EluPlusOne => kiln_kernels::elu_plus_one(x),
            FeatureMap::Exp => return kiln_kernels::exp_features(x, is_query, padding),
        };
        match (is_query, padding) {
            (false, Some(p)) => phi * keep_tokens(p),
            _ => phi,
        }
    }

    /// Attend.
    ///
    /// # Shapes
    ///
    /// - `q`, `k`, `v`: `[b, h, n, d]` → `[b, h, n, d]`; `options.padding`: `[b, n]`
    pub fn forward(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, options: AttentionOptions) -> Tensor<4> {
        let AttentionOptions { padding, causal, rotary } = options;
        let fq = self.features(q, true, padding);
        let fk = self.features(k, false, padding);
        kernelized_attention(Features::new(fq, fk, rotary), v, causal, self.chunk_size, LINEAR_EPS)
    }
}

/// Query and key features for kernelized attention: the denominator's plain `φ(q)`, `φ(k)`, and
/// the numerator's, which RoPE rotates.
#[derive(Debug, Clone)]
pub struct Features {
    /// Numerator query features `[b, h, n, m]`.
    pub num_q: Tensor<4>,
    /// Numerator key features `[b, h, n, m]`.
    pub num_k: Tensor<4>,
    /// Denominator query features `[b, h, n, m]`.
    pub den_q: Tensor<4>,
    /// Denominator key features `[b, h, n, m]`.
    pub den_k: Tensor<4>,
}

impl Features {
    /// Features from `φ(q)`, `φ(k)`, rotated in the numerator when `rotary` is given.
    pub fn new(fq: Tensor<4>, fk: Tensor<4>, rotary: Option<&Rotary>) -> Self {
        match rotary {
            Some(r) => Self { num_q: r.apply(fq.clone()), num_k: r.apply(fk.clone()), den_q: fq, den_k: fk },
            None => Self { num_q: fq.clone(), num_k: fk.clone(), den_q: fq, den_k: fk },
        }
    }
}

/// `out_i = Σ_j (n_q,i · n_k,j) v_j / (Σ_j d_q,i · d_k,j + ε)` over `j` (all keys, or `j ≤ i` when
/// causal), computed without any `n × n` tensor.
///
/// Non-causal: `n_q (n_kᵀ V) / (d_q · Σ_j d_k,j)`. Causal: the sequence is padded to a multiple of
/// `chunk` and reshaped to `[b, h, c, chunk, ·]`; inside a chunk the masked quadratic form, plus the
/// exclusive cumulative sum over chunks of `n_k,cᵀ V_c` (`[b, h, c, m, d]`) and of `Σ d_k,c`.
///
/// # Shapes
///
/// - features `[b, h, n, m]`, `v`: `[b, h, n, d]` → `[b, h, n, d]`
pub fn kernelized_attention(f: Features, v: Tensor<4>, causal: bool, chunk: usize, eps: f64) -> Tensor<4> {
    let [b, h, n, m] = f.num_q.dims();
    let d = v.dims()[3];
    if !causal {
        let kv = matmul(f.num_k.swap_dims(2, 3), v); // [b, h, m, d]
        let num = matmul(f.num_q, kv); // [b, h, n, d]
        let z = f.den_k.sum_dim(2); // [b, h, 1, m]
        let den = (f.den_q * z).sum_dim(3); // [b, h, n, 1]
        return num / guard(den, eps);
    }
    let chunk = chunk.clamp(1, n.max(1));
    let c = n.div_ceil(chunk);
    let pad = c * chunk - n;
    let split = |t: Tensor<4>, w: usize| -> Tensor<5> {
        let t = if pad > 0 {
            let zeros = Tensor::zeros([b, h, pad, w], &t.device());
            Tensor::cat(vec![t, zeros], 2)
        } else {
            t
        };
        t.reshape([b, h, c, chunk, w])
    };
    let (nq, nk, dq, dk, v) = (split(f.num_q, m), split(f.num_k, m), split(f.den_q, m), split(f.den_k, m), split(v, d));
    let tril = causal_weights(chunk, &v.device()).reshape([1, 1, 1, chunk, chunk]);
    // Inside each chunk: the masked quadratic form.
    let a_num = matmul(nq.clone(), nk.clone().swap_dims(3, 4)) * tril.clone(); // [b, h, c, C, C]
    let a_den = matmul(dq.clone(), dk.clone().swap_dims(3, 4)) * tril; // [b, h, c, C, C]
    let intra_num = matmul(a_num, v.clone()); // [b, h, c, C, d]
    let intra_den = a_den.sum_dim(4); // [b, h, c, C, 1]
    // Across chunks: exclusive prefix sums of the chunk states.
    let state = matmul(nk.swap_dims(3, 4), v); // [b, h, c, m, d]
    let state_before = state.clone().cumsum(2) - state;
    let z = dk.sum_dim(3); // [b, h, c, 1, m]
    let z_before = z.clone().cumsum(2) - z;
    let num = intra_num + matmul(nq, state_before); // [b, h, c, C, d]
    let den = intra_den + (dq * z_before).sum_dim(4); // [b, h, c, C, 1]
    let out = (num / guard(den, eps)).reshape([b, h, c * chunk, d]);
    out.narrow(2, 0, n)
}

/// `den + eps`, kept away from zero so that a query with no real key returns zeros, not NaN.
fn guard<const D: usize>(den: Tensor<D>, eps: f64) -> Tensor<D> {
    den.add_scalar(eps).clamp_min(1e-30)
}

/// The `O(n²)` definition that [`kernelized_attention`] computes fast: the full `[n, n]` matrices
/// `A = n_q n_kᵀ` and `D = d_q d_kᵀ`, lower-triangular when causal, and `A V / (rowsum D + ε)`.
/// For tests and benchmarks.
pub fn kernelized_attention_quadratic(f: Features, v: Tensor<4>, causal: bool, eps: f64) -> Tensor<4> {
    let n = f.num_q.dims()[2];
    let mut a = f.num_q.matmul(f.num_k.swap_dims(2, 3)); // [b, h, n, n]
    let mut dd = f.den_q.matmul(f.den_k.swap_dims(2, 3)); // [b, h, n, n]
    if causal {
        let tril = causal_weights(n, &v.device()).reshape([1, 1, n, n]);
        a = a * tril.clone();
        dd = dd * tril;
    }
    a.matmul(v) / guard(dd.sum_dim(3), eps)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    fn features_for(map: FeatureMap, feature_dim: Option<usize>, rope: bool, seed: u64) -> (Features, Tensor<4>) {
        let device = dev();
        let (b, h, n, d) = (2, 3, 37, 8);
        let attn = LinearAttention::new(d, map, feature_dim, 8, &device);
        let q = randn([b, h, n, d], 1.0, seed, &device);
        let k = randn([b, h, n, d], 1.0, seed + 1, &device);
        let v = randn([b, h, n, d], 1.0, seed + 2, &device);
        let rot = rope.then(|| Rotary::one_d((0..n).map(|i| i as f64).collect(), 10_000.0, &device));
        let f = Features::new(attn.features(q, true, None), attn.features(k, false, None), rot.as_ref());
        (f, v)
    }

    #[test]
    fn fast_form_equals_quadratic_form() {
        for map in [FeatureMap::EluPlusOne, FeatureMap::Exp] {
            for feature_dim in [None, Some(24)] {
                for rope in [false, true] {
                    let (f, v) = features_for(map, feature_dim, rope, 10);
                    let fast = to_vec(kernelized_attention(f.clone(), v.clone(), false, 8, LINEAR_EPS));
                    let slow = to_vec(kernelized_attention_quadratic(f, v, false, LINEAR_EPS));
                    assert_close(&fast, &slow, 1e-4);
                }
            }
        }
    }

    /// Chunked prefix sums = masked quadratic form, for chunk sizes that divide `n` and that do
    /// not (37 tokens), and the degenerate chunk of one token.
    #[test]
    fn causal_chunked_prefix_sums_equal_masked_quadratic_form() {
        for map in [FeatureMap::EluPlusOne, FeatureMap::Exp] {
            for rope in [false, true] {
                let (f, v) = features_for(map, Some(16), rope, 20);
                let slow = to_vec(kernelized_attention_quadratic(f.clone(), v.clone(), true, LINEAR_EPS));
                for chunk in [1, 5, 8, 37, 64] {
                    let fast = to_vec(kernelized_attention(f.clone(), v.clone(), true, chunk, LINEAR_EPS));
                    assert_close(&fast, &slow, 1e-4);
                }
            }
        }
    }

    /// Hand-derived: with `φ` constant (all-zero q, k and `elu+1`: φ = 1) every key gets the same
    /// weight, so the non-causal output is the mean of V and the causal output the running mean.
    #[test]
    fn constant_features_give_means() {
        let device = dev();
        let attn = LinearAttention::new(2, FeatureMap::EluPlusOne, None, 2, &device);
        let z = Tensor::<4>::zeros([1, 1, 3, 2], &device);
        let v = Tensor::<1>::from_floats([3.0, 0.0, 0.0, 3.0, 6.0, 6.0].as_slice(), &device).reshape([1, 1, 3, 2]);
        let full = to_vec(attn.forward(z.clone(), z.clone(), v.clone(), AttentionOptions::default()));
        assert_close(&full, &[3.0, 3.0].repeat(3), 1e-5);
        let causal = to_vec(attn.forward(z.clone(), z, v, AttentionOptions { causal: true, ..Default::default() }));
        assert_close(&causal, &[3.0, 0.0, 1.5, 1.5, 3.0, 3.0], 1e-5);
    }

    /// `exp` features stay finite for inputs whose plain exponential overflows `f32`.
    #[test]
    fn exp_map_is_stable_for_large_inputs() {
        let device = dev();
        let attn = LinearAttention::new(4, FeatureMap::Exp, None, 4, &device);
        let q = randn([1, 1, 6, 4], 1.0, 3, &device).add_scalar(200.0);
        let k = randn([1, 1, 6, 4], 1.0, 4, &device).add_scalar(200.0);
        let v = randn([1, 1, 6, 4], 1.0, 5, &device);
        for causal in [false, true] {
            let out = to_vec(attn.forward(
                q.clone(),
                k.clone(),
                v.clone(),
                AttentionOptions { causal, ..Default::default() },
            ));
            assert!(out.iter().all(|x| x.is_finite()));
        }
    }
}
