//! GlobalPointer (Su, kexue.fm/archives/8373; reference code `bert4keras.layers.GlobalPointer`):
//! one dense layer maps each token to a query and a key per entity type,
//! `[q_α; k_α] = W_α h + b_α` (the output laid out type by type, query first), RoPE rotates both by the
//! token position, and `s_α(i, j) = q_{i,α} · k_{j,α} / √d`.

use burn::prelude::*;
use kiln_layers::Linear;

use super::rope;

/// GlobalPointer head.
#[derive(Module, Debug)]
pub struct GlobalPointer {
    /// `d_model → n_types · 2 · d_head`.
    pub dense: Linear,
    /// Entity types.
    pub n_types: usize,
    /// Query/key size.
    pub d_head: usize,
    /// Whether RoPE is applied.
    pub rope: bool,
}

impl GlobalPointer {
    /// A fresh head.
    pub fn new(d_model: usize, n_types: usize, d_head: usize, rope: bool, device: &Device) -> Self {
        Self { dense: Linear::new(d_model, n_types * 2 * d_head, true, device), n_types, d_head, rope }
    }

    /// Unmasked span scores.
    ///
    /// # Shapes
    ///
    /// - `h`: `[b, n, d_model]` → `[b, n_types, n, n]`
    pub fn scores(&self, h: Tensor<3>) -> Tensor<4> {
        let [b, n, _] = h.dims();
        let (t, d) = (self.n_types, self.d_head);
        let p = self.dense.forward(h).reshape([b, n, t, 2 * d]).swap_dims(1, 2); // [b, t, n, 2d]
        let mut q = p.clone().slice(s![.., .., .., 0..d]);
        let mut k = p.slice(s![.., .., .., d..2 * d]);
        if self.rope {
            (q, k) = (rope(q), rope(k));
        }
        q.matmul(k.swap_dims(2, 3)) / (d as f64).sqrt() // [b, t, n, n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scores against a direct evaluation of the formula on the host, with RoPE written out.
    #[test]
    fn scores_equal_the_formula() {
        let device = Device::flex();
        let (n, dm, t, d) = (4, 3, 2, 4);
        let gp = GlobalPointer::new(dm, t, d, true, &device);
        let hv: Vec<f32> = (0..n * dm).map(|i| ((i * 7 % 11) as f32 - 5.0) / 4.0).collect();
        let h = Tensor::<1>::from_floats(hv.as_slice(), &device).reshape([1, n, dm]);
        let s = gp.scores(h.clone()).into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        let p = gp.dense.forward(h).into_data().convert::<f32>().try_to_vec::<f32>().unwrap(); // [n, t*2d]
        let rot = |x: &[f32], m: usize| -> Vec<f64> {
            (0..d / 2)
                .flat_map(|i| {
                    let a = m as f64 * 10_000f64.powf(-2.0 * i as f64 / d as f64);
                    let (x0, x1) = (f64::from(x[2 * i]), f64::from(x[2 * i + 1]));
                    [x0 * a.cos() - x1 * a.sin(), x1 * a.cos() + x0 * a.sin()]
                })
                .collect()
        };
        for a in 0..t {
            for i in 0..n {
                for j in 0..n {
                    let base = |tok: usize| tok * t * 2 * d + a * 2 * d;
                    let q = rot(&p[base(i)..base(i) + d], i);
                    let k = rot(&p[base(j) + d..base(j) + 2 * d], j);
                    let want = q.iter().zip(&k).map(|(x, y)| x * y).sum::<f64>() / (d as f64).sqrt();
                    let got = f64::from(s[a * n * n + i * n + j]);
                    assert!((got - want).abs() < 1e-5, "type {a} ({i}, {j}): {got} vs {want}");
                }
            }
        }
    }
}
