//! Exact scaled dot-product attention (Vaswani et al. 2017, arXiv:1706.03762, eq. 1):
//! `softmax(Q Kᵀ / √d + mask) V`.
//!
//! Padded keys and, when causal, future keys get `-inf` before the softmax; a query row whose keys
//! are all masked returns zeros rather than NaN. The arithmetic is [`kiln_kernels::attention`] (on
//! flex a blockwise kernel with its own backward pass, elsewhere Burn's fused `attention`).

use burn::prelude::*;

use super::AttentionOptions;

/// Exact softmax attention. No parameters.
#[derive(Module, Debug, Default)]
pub struct SoftmaxAttention;

impl SoftmaxAttention {
    /// Attend, after rotating `q` and `k` by `rotary` if given.
    ///
    /// # Shapes
    ///
    /// - `q`: `[b, h, n, d]`, `k`, `v`: `[b, h, m, d]` → `[b, h, n, d]`; `options.padding`: `[b, m]`
    pub fn forward(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, options: AttentionOptions) -> Tensor<4> {
        let AttentionOptions { padding, causal, rotary } = options;
        let (q, k) = match rotary {
            Some(r) => (r.apply(q), r.apply(k)),
            None => (q, k),
        };
        kiln_kernels::attention(q, k, v, padding, causal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::padding_from_lengths;
    use crate::test_util::*;

    /// Hand-derived. d = 4, so scores are `q·k / 2`. All queries are `e0`; keys are
    /// `k0 = 0`, `k1 = 2 ln 3 · e0`, `k2 = 2 ln 4 · e0`, so the scores are `0, ln 3, ln 4` and
    /// `exp(score)` = `1, 3, 4`. Values are `8 e0, 8 e1, 8 e2`.
    /// - no mask: every row is `(8·[1, 3, 4] / 8)` = `[1, 3, 4, 0]`;
    /// - causal: row 0 sees `k0` → `[8, 0, 0, 0]`; row 1 sees `1:3` → `[2, 6, 0, 0]`; row 2 `[1, 3, 4, 0]`;
    /// - key 2 padded: every row is `[2, 6, 0, 0]`.
    #[test]
    fn hand_derived_values_with_masks() {
        let device = dev();
        let q = Tensor::<1>::from_floats([1.0, 0.0, 0.0, 0.0].repeat(3).as_slice(), &device).reshape([1, 1, 3, 4]);
        let (l3, l4) = (2.0 * 3f32.ln(), 2.0 * 4f32.ln());
        let k =
            Tensor::<1>::from_floats([0.0, 0.0, 0.0, 0.0, l3, 0.0, 0.0, 0.0, l4, 0.0, 0.0, 0.0].as_slice(), &device)
                .reshape([1, 1, 3, 4]);
        let v =
            Tensor::<1>::from_floats([8.0, 0.0, 0.0, 0.0, 0.0, 8.0, 0.0, 0.0, 0.0, 0.0, 8.0, 0.0].as_slice(), &device)
                .reshape([1, 1, 3, 4]);
        let attn = SoftmaxAttention;
        let full = to_vec(attn.forward(q.clone(), k.clone(), v.clone(), AttentionOptions::default()));
        assert_close(&full, &[1.0, 3.0, 4.0, 0.0].repeat(3), 1e-5);
        let causal = to_vec(attn.forward(
            q.clone(),
            k.clone(),
            v.clone(),
            AttentionOptions { causal: true, ..Default::default() },
        ));
        assert_close(&causal, &[8.0, 0.0, 0.0, 0.0, 2.0, 6.0, 0.0, 0.0, 1.0, 3.0, 4.0, 0.0], 1e-5);
        let pad = padding_from_lengths(&[2], 3, &device);
        let padded = to_vec(attn.forward(q, k, v, AttentionOptions { padding: Some(&pad), ..Default::default() }));
        assert_close(&padded, &[2.0, 6.0, 0.0, 0.0].repeat(3), 1e-5);
    }
}
