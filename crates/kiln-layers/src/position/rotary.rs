//! Rotary position embeddings applied to per-head query/key tensors, 1-D and 2-D.
//!
//! 1-D (Su et al., *RoFormer*, arXiv:2104.09864, eq. 34): each feature pair `(2i, 2i+1)` of a
//! vector at position `m` is rotated by the angle `m θ_i`, `θ_i = base^(-2i/d)`:
//!
//! ```text
//! x' = x ⊙ [cos mθ0, cos mθ0, cos mθ1, cos mθ1, ...] + [-x1, x0, -x3, x2, ...] ⊙ [sin mθ0, sin mθ0, ...]
//! ```
//!
//! so that `(R_m q)·(R_n k) = q · R_(n-m) k`: scores depend on the offset only.
//! **Convention:** interleaved pairs, as in the paper and the original `bojone/bert4keras` code;
//! the "rotate-half" layout of GPT-NeoX/LLaMA code is a different, non-interchangeable convention
//! and is not what this does.
//!
//! 2-D (Su, "Transformer upgrade path 4: 2-D RoPE", kexue.fm/archives/8397): a position `(x, y)`
//! rotates the first half of the vector with 1-D RoPE at `x` and the second half with 1-D RoPE
//! at `y`, each half with its own ladder `θ_i = base^(-2i/(d/2))`. `R(x,y) = diag(R_x, R_y)`.
//!
//! A [`Rotary`] is made once per forward pass from the token layout and applied to every layer;
//! its cosine/sine tables are computed in `f64` on the host (exact for long sequences) and cached
//! per feature dimension, because linear attention and Performer rotate feature maps whose size
//! differs from the head dimension.

use std::cell::RefCell;

use burn::prelude::*;

/// Rotations for one sequence layout, ready to apply to `[b, h, n, dim]` tensors.
#[derive(Debug)]
pub struct Rotary {
    angles: Angles,
    base: f64,
    device: Device,
    /// `(dim, cos [n, dim], sin [n, dim])` for each dimension used so far.
    cache: RefCell<Vec<(usize, Tensor<2>, Tensor<2>)>>,
    /// `(dim, P [dim, dim])`, the pair swap of each dimension used so far.
    swaps: RefCell<Vec<(usize, Tensor<2>)>>,
}

#[derive(Debug, Clone)]
enum Angles {
    OneD(Vec<f64>),
    TwoD { rows: Vec<f64>, cols: Vec<f64> },
}

impl Rotary {
    /// 1-D RoPE at the given positions (usually `0..n`).
    pub fn one_d(positions: Vec<f64>, base: f64, device: &Device) -> Self {
        Self::new(Angles::OneD(positions), base, device)
    }

    /// 2-D RoPE at grid positions `(rows[i], cols[i])`.
    ///
    /// # Panics
    ///
    /// If `rows` and `cols` differ in length.
    pub fn two_d(rows: Vec<f64>, cols: Vec<f64>, base: f64, device: &Device) -> Self {
        assert_eq!(rows.len(), cols.len(), "rope2d needs one row and one column per token");
        Self::new(Angles::TwoD { rows, cols }, base, device)
    }

    fn new(angles: Angles, base: f64, device: &Device) -> Self {
        Self { angles, base, device: device.clone(), cache: RefCell::new(Vec::new()), swaps: RefCell::new(Vec::new()) }
    }

    /// Number of positions.
    pub fn len(&self) -> usize {
        match &self.angles {
            Angles::OneD(p) => p.len(),
            Angles::TwoD { rows, .. } => rows.len(),
        }
    }

    /// Whether there are no positions.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The cosine and sine tables for a feature dimension `dim`, each `[n, dim]`, with every
    /// angle repeated for the two features of its pair.
    ///
    /// # Panics
    ///
    /// If `dim` is odd (1-D) or not divisible by 4 (2-D); configs reject both in `validate()`.
    pub fn tables(&self, dim: usize) -> (Tensor<2>, Tensor<2>) {
        if let Some((_, c, s)) = self.cache.borrow().iter().find(|(d, _, _)| *d == dim) {
            return (c.clone(), s.clone());
        }
        let n = self.len();
        let mut cos = Vec::with_capacity(n * dim);
        let mut sin = Vec::with_capacity(n * dim);
        let mut push_pairs = |pos: f64, half_dim: usize| {
            for i in 0..half_dim / 2 {
                let theta = self.base.powf(-2.0 * i as f64 / half_dim as f64);
                let (s, c) = (pos * theta).sin_cos();
                cos.extend([c as f32, c as f32]);
                sin.extend([s as f32, s as f32]);
            }
        };
        match &self.angles {
            Angles::OneD(positions) => {
                assert!(dim.is_multiple_of(2), "rope needs an even dimension, got {dim}");
                for &p in positions {
                    push_pairs(p, dim);
                }
            }
            Angles::TwoD { rows, cols } => {
                assert!(dim.is_multiple_of(4), "rope2d needs a dimension divisible by 4, got {dim}");
                for (&r, &c) in rows.iter().zip(cols) {
                    push_pairs(r, dim / 2);
                    push_pairs(c, dim / 2);
                }
            }
        }
        let cos = Tensor::<1>::from_floats(cos.as_slice(), &self.device).reshape([n, dim]);
        let sin = Tensor::<1>::from_floats(sin.as_slice(), &self.device).reshape([n, dim]);
        self.cache.borrow_mut().push((dim, cos.clone(), sin.clone()));
        (cos, sin)
    }

    /// The `[dim, dim]` matrix `P` with `x P = [-x1, x0, -x3, x2, ...]`, cached like the tables.
    fn pair_swap(&self, dim: usize) -> Tensor<2> {
        if let Some((_, p)) = self.swaps.borrow().iter().find(|(d, _)| *d == dim) {
            return p.clone();
        }
        let mut p = vec![0.0f32; dim * dim];
        for i in (0..dim).step_by(2) {
            p[(i + 1) * dim + i] = -1.0; // column 2i takes -x_(2i+1)
            p[i * dim + i + 1] = 1.0; // column 2i+1 takes x_(2i)
        }
        let p = Tensor::<1>::from_floats(p.as_slice(), &self.device).reshape([dim, dim]);
        self.swaps.borrow_mut().push((dim, p.clone()));
        p
    }

    /// Rotate `x` at these positions.
    ///
    /// # Shapes
    ///
    /// - `x`: `[b, h, n, dim]` → `[b, h, n, dim]`
    ///
    /// # Panics
    ///
    /// If `n` differs from the number of positions, or `dim` is not valid (see [`Rotary::tables`]).
    pub fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, n, dim] = x.dims();
        assert_eq!(n, self.len(), "rotary positions ({}) do not match the sequence length ({n})", self.len());
        let (cos, sin) = self.tables(dim);
        let cos = cos.reshape([1, 1, n, dim]);
        let sin = sin.reshape([1, 1, n, dim]);
        // The pair swap as a product with a signed permutation: one GEMM (and its transpose in the
        // backward pass) instead of slicing every pair apart and back, which on flex walked the
        // tensor one element per block, forward and backward (the rotation doubled a ViT step).
        // Exact: each output is one input times ±1 plus zeros (a non-finite input would spread
        // along its row, where the training loop stops anyway).
        let swapped = x.clone().matmul(self.pair_swap(dim).unsqueeze::<4>());
        x * cos + swapped * sin
    }
}

/// `[x0, x1, x2, x3, ...] -> [-x1, x0, -x3, x2, ...]` by slicing: the reference the product with
/// [`Rotary::pair_swap`] is tested against.
#[cfg(test)]
fn rotate_pairs(x: Tensor<4>, [b, h, n, dim]: [usize; 4]) -> Tensor<4> {
    let pairs = x.reshape([b, h, n, dim / 2, 2]);
    let even = pairs.clone().narrow(4, 0, 1);
    let odd = pairs.narrow(4, 1, 1);
    Tensor::cat(vec![odd.neg(), even], 4).reshape([b, h, n, dim])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;

    /// Hand-derived: d = 2, position 1, base 10000 → θ0 = 1, so (1, 0) rotates to (cos 1, sin 1).
    #[test]
    fn rotates_a_pair_by_position_times_theta() {
        let device = dev();
        let rot = Rotary::one_d(vec![0.0, 1.0, 2.0], 10_000.0, &device);
        let x = Tensor::<1>::from_floats([1.0, 0.0, 1.0, 0.0, 0.0, 1.0], &device).reshape([1, 1, 3, 2]);
        let y = to_vec(rot.apply(x));
        let (s1, c1) = 1f64.sin_cos();
        let (s2, c2) = 2f64.sin_cos();
        let expected = [1.0, 0.0, c1, s1, -s2, c2];
        assert_close(&y, &expected.map(|v| v as f32), 1e-6);
    }

    /// The pair swap as a product with `P` equals slicing the pairs apart, on a head-split
    /// (strided) input, values and gradient (through a weighted sum).
    #[test]
    fn pair_swap_product_equals_slicing() {
        let device = dev().autodiff();
        let x = randn([2, 5, 3, 8], 1.0, 11, &device).swap_dims(1, 2).require_grad(); // [2, 3, 5, 8], strided
        let w = randn([2, 3, 5, 8], 1.0, 12, &device);
        let rot = Rotary::one_d((0..5).map(|i| i as f64).collect(), 10_000.0, &device);
        let by_product = x.clone().matmul(rot.pair_swap(8).unsqueeze::<4>());
        let by_slicing = rotate_pairs(x.clone(), [2, 3, 5, 8]);
        assert_eq!(to_vec(by_product.clone()), to_vec(by_slicing.clone()));
        let grad = |y: Tensor<4>| to_vec(x.grad(&(y * w.clone()).sum().backward()).unwrap().reshape([240]));
        assert_eq!(grad(by_product), grad(by_slicing));
    }

    #[test]
    fn preserves_norms() {
        let device = dev();
        let x = randn([2, 3, 17, 8], 1.0, 7, &device);
        let norms = |t: Tensor<4>| to_vec(t.powf_scalar(2.0).sum_dim(3));
        let rot1 = Rotary::one_d((0..17).map(|i| i as f64 * 3.0).collect(), 10_000.0, &device);
        assert_close(&norms(rot1.apply(x.clone())), &norms(x.clone()), 1e-4);
        let rows = (0..17).map(|i| (i / 5) as f64).collect();
        let cols = (0..17).map(|i| (i % 5) as f64).collect();
        let rot2 = Rotary::two_d(rows, cols, 10_000.0, &device);
        assert_close(&norms(rot2.apply(x.clone())), &norms(x), 1e-4);
    }

    /// `(R_m q)·(R_n k)` depends only on `n - m`: shifting both positions changes nothing.
    #[test]
    fn one_d_scores_depend_only_on_offset() {
        let device = dev();
        let q = randn([1, 1, 1, 16], 1.0, 1, &device);
        let k = randn([1, 1, 1, 16], 1.0, 2, &device);
        let score = |m: f64, n: f64| {
            let rq = Rotary::one_d(vec![m], 10_000.0, &device).apply(q.clone());
            let rk = Rotary::one_d(vec![n], 10_000.0, &device).apply(k.clone());
            to_vec((rq * rk).sum())[0]
        };
        for (m, n) in [(0.0, 5.0), (3.0, -4.0), (100.0, 101.0)] {
            for shift in [1.0, 17.0, 1000.0] {
                let a = score(m, n);
                let b = score(m + shift, n + shift);
                assert!((a - b).abs() < 1e-4, "offset {}: {a} vs {b} after shift {shift}", n - m);
            }
        }
        // And it does depend on the offset.
        assert!((score(0.0, 1.0) - score(0.0, 7.0)).abs() > 1e-3);
    }

    /// `R(x1,y1)ᵀ R(x2,y2) = R(x2-x1, y2-y1)`: 2-D scores depend only on the 2-D offset,
    /// and a step right differs from a step down.
    #[test]
    fn two_d_scores_depend_only_on_grid_offset() {
        let device = dev();
        let q = randn([1, 1, 1, 16], 1.0, 3, &device);
        let k = randn([1, 1, 1, 16], 1.0, 4, &device);
        let at = |x: &Tensor<4>, r: f64, c: f64| Rotary::two_d(vec![r], vec![c], 10_000.0, &device).apply(x.clone());
        let score = |(r1, c1): (f64, f64), (r2, c2): (f64, f64)| to_vec((at(&q, r1, c1) * at(&k, r2, c2)).sum())[0];
        for (p, o) in [((0.0, 0.0), (1.0, 2.0)), ((4.0, 1.0), (-3.0, 5.0))] {
            let base = score(p, (p.0 + o.0, p.1 + o.1));
            for s in [(1.0, 0.0), (0.0, 9.0), (6.0, 13.0)] {
                let shifted = score((p.0 + s.0, p.1 + s.1), (p.0 + s.0 + o.0, p.1 + s.1 + o.1));
                assert!((base - shifted).abs() < 1e-4, "{base} vs {shifted}");
            }
        }
        let right = score((0.0, 0.0), (0.0, 1.0));
        let down = score((0.0, 0.0), (1.0, 0.0));
        assert!((right - down).abs() > 1e-3, "a step right and a step down must differ");
    }

    /// On row 0 the first half is not rotated and the second half is 1-D RoPE (dimension d/2)
    /// at the column; on column 0 the first half is 1-D RoPE at the row.
    #[test]
    fn two_d_on_an_axis_is_one_d_on_a_half() {
        let device = dev();
        let n = 6;
        let x = randn([1, 2, n, 16], 1.0, 5, &device);
        let idx: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let zeros = vec![0.0; n];
        let row0 = Rotary::two_d(zeros.clone(), idx.clone(), 10_000.0, &device).apply(x.clone());
        let col0 = Rotary::two_d(idx.clone(), zeros, 10_000.0, &device).apply(x.clone());
        let one_d = Rotary::one_d(idx, 10_000.0, &device);
        let first = |t: Tensor<4>| t.narrow(3, 0, 8);
        let second = |t: Tensor<4>| t.narrow(3, 8, 8);
        assert_close(&to_vec(first(row0.clone())), &to_vec(first(x.clone())), 1e-6);
        assert_close(&to_vec(second(row0)), &to_vec(one_d.apply(second(x.clone()))), 1e-6);
        assert_close(&to_vec(first(col0.clone())), &to_vec(one_d.apply(first(x.clone()))), 1e-6);
        assert_close(&to_vec(second(col0)), &to_vec(second(x)), 1e-6);
    }

    /// `(x, y)` is recoverable: the rotation angles of the two halves give back row and column.
    #[test]
    fn two_d_position_is_recoverable() {
        let device = dev();
        let rot = Rotary::two_d(vec![3.0], vec![-2.0], 10_000.0, &device);
        let (cos, sin) = rot.tables(8);
        let (c, s) = (to_vec(cos), to_vec(sin));
        // θ0 = 1 in each half: the angle of pair 0 is the row, the angle of pair 2 the column.
        let row = (s[0] as f64).atan2(c[0] as f64);
        let col = (s[4] as f64).atan2(c[4] as f64);
        assert!((row - 3.0).abs() < 1e-5 && (col + 2.0).abs() < 1e-5, "{row} {col}");
    }
}
