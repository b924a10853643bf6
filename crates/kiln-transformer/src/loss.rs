//! Losses and counts shared by the classification-style models.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

/// Mean cross-entropy `−log softmax(logits)[target]` over rows.
///
/// # Shapes
///
/// - `logits`: `[n, classes]`, `targets`: `[n]` → `[1]`
pub fn cross_entropy(logits: Tensor<2>, targets: Tensor<1, Int>) -> Tensor<1> {
    let n = targets.dims()[0];
    let logp = log_softmax(logits, 1);
    logp.gather(1, targets.reshape([n, 1])).mean().neg()
}

/// `(correct, total)` of the argmax predictions.
pub fn accuracy_counts(logits: Tensor<2>, targets: Tensor<1, Int>) -> (usize, usize) {
    let n = targets.dims()[0];
    let pred = logits.argmax(1).reshape([n]);
    let correct: i64 = pred.equal(targets).int().sum().into_scalar();
    (correct as usize, n)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hand-derived: logits `[0, ln 3]` → probabilities `[1/4, 3/4]`; targets 1 and 0 give
    /// `(−ln 3/4 − ln 1/4) / 2 = (ln 4/3 + ln 4) / 2`.
    #[test]
    fn cross_entropy_by_hand() {
        let device = Device::flex();
        let l3 = 3f32.ln();
        let logits = Tensor::<1>::from_floats([0.0, l3, 0.0, l3], &device).reshape([2, 2]);
        let targets = Tensor::<1, Int>::from_ints([1, 0], &device);
        let got: f32 = cross_entropy(logits.clone(), targets.clone()).into_scalar();
        let want = ((4f32 / 3.0).ln() + 4f32.ln()) / 2.0;
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        assert_eq!(accuracy_counts(logits, targets), (1, 2));
    }
}
