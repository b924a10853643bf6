//! Fixed sinusoidal positions (Vaswani et al. 2017, "Attention Is All You Need", arXiv:1706.03762 §3.5):
//! `p[k, 2i] = sin(k / 10000^(2i/d))`, `p[k, 2i+1] = cos(k / 10000^(2i/d))`, interleaved
//! (sine at even index, cosine at odd), added to the token embeddings.
//!
//! `<p_m, p_n> = Σ_i cos((m − n) θ_i)` depends only on `m − n` (tested below).

use burn::prelude::*;

/// Adds the fixed sinusoidal table to its input. No parameters.
#[derive(Module, Debug)]
pub struct SinusoidalPosition {
    /// Model width (the table's second dimension).
    pub d_model: usize,
}

/// The `[n, d]` sinusoidal table, computed in `f64`.
///
/// # Panics
///
/// If `d` is zero.
pub fn sinusoidal_table(n: usize, d: usize) -> Vec<f32> {
    assert!(d > 0, "sinusoidal positions need d > 0");
    let mut table = Vec::with_capacity(n * d);
    for k in 0..n {
        for j in 0..d {
            let i = j / 2;
            let angle = k as f64 / 10_000f64.powf(2.0 * i as f64 / d as f64);
            table.push(if j % 2 == 0 { angle.sin() } else { angle.cos() } as f32);
        }
    }
    table
}

impl SinusoidalPosition {
    /// `x + p[0..n]`.
    ///
    /// # Shapes
    ///
    /// - `x`: `[b, n, d_model]` → `[b, n, d_model]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [_, n, d] = x.dims();
        let table = Tensor::<1>::from_floats(sinusoidal_table(n, d).as_slice(), &x.device());
        x + table.reshape([1, n, d])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_values_by_hand() {
        // d = 4: θ0 = 1, θ1 = 10000^(-1/2) = 0.01. Position 2: [sin 2, cos 2, sin .02, cos .02].
        let t = sinusoidal_table(3, 4);
        let expect = [2f64.sin(), 2f64.cos(), 0.02f64.sin(), 0.02f64.cos()];
        for (a, b) in t[8..].iter().zip(expect) {
            assert!((*a as f64 - b).abs() < 1e-6);
        }
        assert_eq!(&t[..4], &[0.0, 1.0, 0.0, 1.0]);
    }

    /// `<p_m, p_n>` depends only on `m − n` and equals `Σ_i cos((m−n) θ_i)`; it is largest at 0.
    #[test]
    fn dot_products_depend_only_on_offset() {
        let (n, d) = (300, 64);
        let t = sinusoidal_table(n, d);
        let dot = |m: usize, k: usize| -> f64 { (0..d).map(|j| t[m * d + j] as f64 * t[k * d + j] as f64).sum() };
        for off in [0usize, 1, 7, 50] {
            let closed: f64 = (0..d / 2).map(|i| (off as f64 / 10_000f64.powf(2.0 * i as f64 / d as f64)).cos()).sum();
            for m in [0usize, 13, 200] {
                assert!((dot(m, m + off) - closed).abs() < 1e-3);
                assert!((dot(m + off, m) - closed).abs() < 1e-3);
            }
        }
        assert!((dot(5, 5) - d as f64 / 2.0).abs() < 1e-4);
        // Decays (noisily): the average over far offsets is below the average over near ones.
        let avg = |r: std::ops::Range<usize>| r.clone().map(|o| dot(0, o)).sum::<f64>() / r.len() as f64;
        assert!(avg(1..10) > avg(100..200));
    }
}
