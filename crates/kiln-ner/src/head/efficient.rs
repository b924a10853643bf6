//! Efficient GlobalPointer (Su, kexue.fm/archives/8877; reference code
//! `bert4keras.layers.EfficientGlobalPointer`): one projection `p = W h + b`, `d_model → 2·d_head`,
//! shared by all types; `q = p[0::2]`, `k = p[1::2]` (then RoPE); a second dense layer on the pre-RoPE
//! `p` gives each type a start and an end bias, `β = (V p + c) / 2`, `2·d_head → 2·n_types`:
//! `s_α(i, j) = q_i · k_j / √d + β_{i, 2α+1} + β_{j, 2α}` (odd outputs at the start `i`, even outputs at
//! the end `j`, as the reference code's `bias[:, 1::2, :, None]` and `bias[:, ::2, None]`). Per type
//! this costs `4·d_head` parameters instead of GlobalPointer's `2·d_model·d_head`.

use burn::prelude::*;
use kiln_layers::Linear;

use super::rope;

/// Efficient GlobalPointer head.
#[derive(Module, Debug)]
pub struct EfficientGlobalPointer {
    /// Shared projection `d_model → 2·d_head`.
    pub dense: Linear,
    /// Per-type start/end biases `2·d_head → 2·n_types`.
    pub bias: Linear,
    /// Entity types.
    pub n_types: usize,
    /// Query/key size.
    pub d_head: usize,
    /// Whether RoPE is applied.
    pub rope: bool,
}

impl EfficientGlobalPointer {
    /// A fresh head.
    pub fn new(d_model: usize, n_types: usize, d_head: usize, rope: bool, device: &Device) -> Self {
        Self {
            dense: Linear::new(d_model, 2 * d_head, true, device),
            bias: Linear::new(2 * d_head, 2 * n_types, true, device),
            n_types,
            d_head,
            rope,
        }
    }

    /// Unmasked span scores.
    ///
    /// # Shapes
    ///
    /// - `h`: `[b, n, d_model]` → `[b, n_types, n, n]`
    pub fn scores(&self, h: Tensor<3>) -> Tensor<4> {
        let [b, n, _] = h.dims();
        let (t, d) = (self.n_types, self.d_head);
        let p = self.dense.forward(h); // [b, n, 2d]
        let pairs = p.clone().reshape([b, 1, n, d, 2]);
        let mut q = pairs.clone().slice(s![.., .., .., .., 0..1]).reshape([b, 1, n, d]);
        let mut k = pairs.slice(s![.., .., .., .., 1..2]).reshape([b, 1, n, d]);
        if self.rope {
            (q, k) = (rope(q), rope(k));
        }
        let shared = q.matmul(k.swap_dims(2, 3)) / (d as f64).sqrt(); // [b, 1, n, n]
        let beta = (self.bias.forward(p) / 2.0).reshape([b, n, t, 2]).swap_dims(1, 2); // [b, t, n, 2]
        let end = beta.clone().slice(s![.., .., .., 0..1]).reshape([b, t, 1, n]); // added at column j
        let start = beta.slice(s![.., .., .., 1..2]).reshape([b, t, n, 1]); // added at row i
        shared + start + end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the formula on the host, RoPE off (the rotation itself is tested with GlobalPointer).
    #[test]
    fn scores_equal_the_formula() {
        let device = Device::flex();
        let (n, dm, t, d) = (3, 5, 3, 4);
        let head = EfficientGlobalPointer::new(dm, t, d, false, &device);
        let hv: Vec<f32> = (0..n * dm).map(|i| ((i * 5 % 13) as f32 - 6.0) / 5.0).collect();
        let h = Tensor::<1>::from_floats(hv.as_slice(), &device).reshape([1, n, dm]);
        let s = head.scores(h.clone()).into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        let p = head.dense.forward(h).into_data().convert::<f32>().try_to_vec::<f32>().unwrap(); // [n, 2d]
        let pt = Tensor::<1>::from_floats(p.as_slice(), &device).reshape([n, 2 * d]);
        let beta = head.bias.forward(pt).into_data().convert::<f32>().try_to_vec::<f32>().unwrap(); // [n, 2t]
        for a in 0..t {
            for i in 0..n {
                for j in 0..n {
                    let qk: f32 = (0..d).map(|c| p[i * 2 * d + 2 * c] * p[j * 2 * d + 2 * c + 1]).sum();
                    let want =
                        qk / (d as f32).sqrt() + beta[i * 2 * t + 2 * a + 1] / 2.0 + beta[j * 2 * t + 2 * a] / 2.0;
                    let got = s[a * n * n + i * n + j];
                    assert!((got - want).abs() < 1e-5, "type {a} ({i}, {j}): {got} vs {want}");
                }
            }
        }
    }
}
