//! Multilabel categorical cross-entropy with threshold 0 (Su, kexue.fm/archives/7359), the loss of
//! GlobalPointer: for each example and type, over its valid spans,
//!
//! ```text
//! L = log(1 + Σ_{neg} e^{s}) + log(1 + Σ_{pos} e^{−s})
//! ```
//!
//! pushing positive spans above 0 and negative spans below it, averaged over `batch × types`.
//! Each term is a log-sum-exp over the selected scores with a 0 appended (the `1 +`); cells not in a
//! term are set to `−1e12` before it, so they contribute `e^{−1e12 − m} = 0` with `m ≥ 0` (the appended
//! 0 bounds the maximum), and nothing ever computes `inf − inf`.

use burn::prelude::*;

/// What an excluded cell holds inside the log-sum-exp.
const EXCLUDED: f32 = -1e12;

/// `log Σ e^{x}` over dimension `dim`, kept as size 1, shifted by the maximum for stability.
/// The shift is a constant for the gradient; detaching it keeps autodiff away from `max`.
pub(crate) fn log_sum_exp<const D: usize>(x: Tensor<D>, dim: usize) -> Tensor<D> {
    let m = x.clone().detach().max_dim(dim);
    (x - m.clone()).exp().sum_dim(dim).log() + m
}

/// `log(1 + Σ e^{x})` over the last dimension: a 0 appended, so the maximum is ≥ 0.
///
/// # Shapes
///
/// - `x`: `[b, t, m]` → `[b, t]`
fn log1p_sum_exp(x: Tensor<3>) -> Tensor<2> {
    let [b, t, _] = x.dims();
    let zero = Tensor::zeros([b, t, 1], &x.device());
    // On flex a host loop: Burn's `exp` is scalar there and slow on every excluded cell (underflow).
    kiln_kernels::log_sum_exp(Tensor::cat(vec![x, zero], 2)).reshape([b, t])
}

/// The GlobalPointer loss.
///
/// # Shapes
///
/// - `scores`: `[b, t, n, n]`; `labels`: `[b, t, n, n]`, `true` at gold spans; `valid`: `[b, 1, n, n]`
///   (see [`valid_spans`](crate::valid_spans)) → scalar `[1]`
pub fn multilabel_crossentropy(scores: Tensor<4>, labels: Tensor<4, Bool>, valid: Tensor<4, Bool>) -> Tensor<1> {
    let [b, t, n, _] = scores.dims();
    let valid = valid.expand([b, t, n, n]);
    let pos = labels.clone().bool_and(valid.clone());
    let neg = labels.bool_not().bool_and(valid);
    let flat = |x: Tensor<4>| x.reshape([b, t, n * n]);
    let s = scores.clone().mask_fill(neg.bool_not(), EXCLUDED);
    let minus_s = scores.neg().mask_fill(pos.bool_not(), EXCLUDED);
    (log1p_sum_exp(flat(s)) + log1p_sum_exp(flat(minus_s))).mean()
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;
    use rand::{RngExt, SeedableRng, rngs::StdRng};

    fn scalar(t: Tensor<1>) -> f64 {
        f64::from(t.into_data().convert::<f32>().try_to_vec::<f32>().unwrap()[0])
    }

    fn bools(v: Vec<bool>, shape: [usize; 4], device: &Device) -> Tensor<4, Bool> {
        Tensor::<4, Bool>::from_data(TensorData::new(v, shape), device)
    }

    /// One example, one type, n = 2: spans (0,0) = 2 [gold], (0,1) = −1, (1,1) = 0.5; (1,0) is invalid.
    /// L = log(1 + e^{−1} + e^{0.5}) + log(1 + e^{−2}).
    #[test]
    fn hand_derived_value() {
        let device = Device::flex();
        let scores = Tensor::<1>::from_floats([2.0, -1.0, 99.0, 0.5].as_slice(), &device).reshape([1, 1, 2, 2]);
        let labels = bools(vec![true, false, false, false], [1, 1, 2, 2], &device);
        let valid = bools(vec![true, true, false, true], [1, 1, 2, 2], &device);
        let want = (1.0 + (-1.0f64).exp() + 0.5f64.exp()).ln() + (1.0 + (-2.0f64).exp()).ln();
        let got = scalar(multilabel_crossentropy(scores, labels, valid));
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
    }

    /// Random scores and labels: equals the formula evaluated term by term in f64 on the host.
    #[test]
    fn equals_brute_force_on_random_inputs() {
        let device = Device::flex();
        let mut rng = StdRng::seed_from_u64(7);
        for _ in 0..5 {
            let (b, t, n) = (2, 3, 4);
            let scores = Tensor::<4>::random([b, t, n, n], Distribution::Normal(0.0, 3.0), &device);
            let lab: Vec<bool> = (0..b * t * n * n).map(|_| rng.random_bool(0.2)).collect();
            let val: Vec<bool> = (0..b * n * n).map(|i| (i % (n * n)) / n <= i % n && rng.random_bool(0.9)).collect();
            let got = scalar(multilabel_crossentropy(
                scores.clone(),
                bools(lab.clone(), [b, t, n, n], &device),
                bools(val.clone(), [b, 1, n, n], &device),
            ));
            let s: Vec<f32> = scores.into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
            let mut total = 0.0;
            for e in 0..b {
                for a in 0..t {
                    let (mut neg, mut pos) = (1.0f64, 1.0f64);
                    for c in 0..n * n {
                        let i = (e * t + a) * n * n + c;
                        if val[e * n * n + c] {
                            if lab[i] { pos += (-f64::from(s[i])).exp() } else { neg += f64::from(s[i]).exp() }
                        }
                    }
                    total += neg.ln() + pos.ln();
                }
            }
            let want = total / (b * t) as f64;
            assert!((got - want).abs() < 1e-4 * want.max(1.0), "{got} vs {want}");
        }
    }

    /// Huge scores, no positives, every cell masked: finite values and finite gradients.
    #[test]
    fn stays_finite_at_extremes() {
        let device = Device::flex();
        let scores = Tensor::<1>::from_floats([1e4, -1e4, 3e4, 0.0].as_slice(), &device).reshape([1, 1, 2, 2]);
        let valid = bools(vec![true; 4], [1, 1, 2, 2], &device);
        let none = bools(vec![false; 4], [1, 1, 2, 2], &device);
        let got = scalar(multilabel_crossentropy(scores.clone(), none.clone(), valid.clone()));
        assert!((got - 3e4).abs() / 3e4 < 1e-6, "log(1 + e^1e4 + e^-1e4 + e^3e4 + 1) ≈ 3e4, got {got}");
        let got = scalar(multilabel_crossentropy(scores, none.clone(), none));
        assert!(got.abs() < 1e-12, "nothing valid: log 1 + log 1 = 0, got {got}");
    }

    /// Central differences against autodiff.
    #[test]
    fn gradient_matches_finite_differences() {
        let device = Device::flex().autodiff();
        let (b, t, n) = (1, 2, 3);
        let base: Vec<f32> = (0..b * t * n * n).map(|i| ((i * 7 % 9) as f32 - 4.0) / 2.0).collect();
        let lab: Vec<bool> = (0..b * t * n * n).map(|i| i % 4 == 0).collect();
        let val: Vec<bool> = (0..n * n).map(|c| c / n <= c % n).collect();
        let loss = |v: &[f32]| {
            let s = Tensor::<1>::from_floats(v, &device).reshape([b, t, n, n]);
            multilabel_crossentropy(
                s,
                bools(lab.clone(), [b, t, n, n], &device),
                bools(val.clone(), [b, 1, n, n], &device),
            )
        };
        let s = Tensor::<1>::from_floats(base.as_slice(), &device).reshape([b, t, n, n]).require_grad();
        let l = multilabel_crossentropy(
            s.clone(),
            bools(lab.clone(), [b, t, n, n], &device),
            bools(val.clone(), [b, 1, n, n], &device),
        );
        let grads = l.backward();
        let g: Vec<f32> = s.grad(&grads).unwrap().into_data().convert::<f32>().try_to_vec::<f32>().unwrap();
        let eps = 1e-2f32;
        for i in 0..base.len() {
            let (mut up, mut down) = (base.clone(), base.clone());
            up[i] += eps;
            down[i] -= eps;
            let fd = (scalar(loss(&up)) - scalar(loss(&down))) / (2.0 * f64::from(eps));
            assert!((fd - f64::from(g[i])).abs() < 2e-3, "cell {i}: autodiff {} vs finite difference {fd}", g[i]);
        }
    }
}
