//! Helpers for tests of Kiln's kernels and layers (random tensors, comparisons, gradients); not part of
//! the door's API.

use burn::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

/// The test device: `flex` on the CPU.
pub fn dev() -> Device {
    Device::flex()
}

/// A reproducible Gaussian tensor with standard deviation `std`.
pub fn randn<const D: usize>(shape: [usize; D], std: f32, seed: u64, device: &Device) -> Tensor<D> {
    let mut rng = StdRng::seed_from_u64(seed);
    let len = shape.iter().product();
    let values: Vec<f32> = (0..len)
        .map(|_| {
            let z: f64 = StandardNormal.sample(&mut rng);
            std * z as f32
        })
        .collect();
    Tensor::<1>::from_floats(values.as_slice(), device).reshape(shape)
}

/// The values of a tensor, row-major.
pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().convert::<f32>().try_to_vec::<f32>().expect("f32 data")
}

/// The largest of non-negative `values` (0 for none), or NaN if any is NaN (`f64::max` would drop a NaN: a comparison folded
/// with it passes on NaN output).
pub fn nan_max(values: impl IntoIterator<Item = f64>) -> f64 {
    values.into_iter().fold(0.0, |m, v| if m.is_nan() || v.is_nan() { f64::NAN } else { m.max(v) })
}

/// Largest absolute difference; NaN where either side has a NaN or an infinity, so that
/// `max_abs_diff(a, b) < tol` and `max_abs_diff(a, b) > tol` both fail on non-finite values.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    let finite = |x: &f32, y: &f32| x.is_finite() && y.is_finite();
    nan_max(a.iter().zip(b).map(|(x, y)| if finite(x, y) { f64::from((x - y).abs()) } else { f64::NAN })) as f32
}

/// `‖a − b‖ / ‖b‖`; NaN where either side has a NaN or an infinity.
pub fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    if a.iter().chain(b).any(|x| !x.is_finite()) {
        return f64::NAN;
    }
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den).sqrt()
}

/// Assert every element is finite and agrees within `tol` (absolute, plus relative for large
/// values).
#[track_caller]
pub fn assert_close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "lengths differ");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(x.is_finite() && y.is_finite(), "element {i}: {x} vs {y} is not finite");
        let bound = tol * (1.0 + y.abs());
        assert!((x - y).abs() <= bound, "element {i}: {x} vs {y} (tol {tol}); max diff {}", max_abs_diff(a, b));
    }
}

/// `f(xs)` and, on an autodiff device, the gradient of its sum with respect to `xs`.
pub fn value_and_grad(xs: &[f32], device: &Device, f: &dyn Fn(Tensor<1>) -> Tensor<1>) -> (Vec<f32>, Option<Vec<f32>>) {
    let x = Tensor::<1>::from_floats(xs, device);
    let x = if device.is_autodiff() { x.require_grad() } else { x };
    let y = f(x.clone());
    let g = device.is_autodiff().then(|| to_vec(x.grad(&y.clone().sum().backward()).unwrap()));
    (to_vec(y), g)
}

/// A padding mask `[lengths.len(), n]` with `true` at the positions `>= lengths[i]` of each row.
pub fn padding_from_lengths(lengths: &[usize], n: usize, device: &Device) -> Tensor<2, Bool> {
    let flags: Vec<bool> = lengths.iter().flat_map(|&l| (0..n).map(move |j| j >= l)).collect();
    Tensor::<1, Bool>::from_bool(TensorData::new(flags, [lengths.len() * n]), device).reshape([lengths.len(), n])
}

/// `ours` and `theirs` applied to `x` agree within `tol` (relative, as [`assert_close`]) in their
/// output and, under the gradient `upstream`, in the gradient of `x`; their two backward passes are
/// returned for the caller to compare parameter gradients.
#[track_caller]
pub fn assert_same_forward_backward<const D: usize, const E: usize>(
    x: Tensor<D>,
    upstream: Tensor<E>,
    ours: impl Fn(Tensor<D>) -> Tensor<E>,
    theirs: impl Fn(Tensor<D>) -> Tensor<E>,
    tol: f32,
) -> (burn::tensor::Gradients, burn::tensor::Gradients) {
    let x = x.require_grad();
    let (a, b) = (ours(x.clone()), theirs(x.clone()));
    assert_close(&to_vec(a.clone()), &to_vec(b.clone()), tol);
    let (ga, gb) = ((a * upstream.clone()).sum().backward(), (b * upstream).sum().backward());
    assert_close(&to_vec(x.grad(&ga).expect("a gradient")), &to_vec(x.grad(&gb).expect("a gradient")), tol);
    (ga, gb)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every comparison fails when either side holds a NaN or an infinity, wherever it is.
    #[test]
    fn comparisons_fail_on_nan_and_infinity() {
        let good = [0.5f32, -1.0, 2.0, 3.0];
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            for at in 0..good.len() {
                let mut b = good;
                b[at] = bad;
                for (x, y) in [(&good, &b), (&b, &good), (&b, &b)] {
                    let d = max_abs_diff(x, y);
                    // NaN: `d < tol` and `d > tol` are then both false.
                    assert!(d.is_nan(), "max_abs_diff {d} with {bad} at {at}");
                    let r = rel_l2(x, y);
                    assert!(r.is_nan(), "rel_l2 {r} with {bad} at {at}");
                    let panicked = std::panic::catch_unwind(|| assert_close(x, y, 1e3)).is_err();
                    assert!(panicked, "assert_close passed with {bad} at {at}");
                }
            }
            let m = nan_max([1.0, f64::from(bad), 2.0]);
            let want = if bad.is_nan() { f64::NAN } else { f64::from(bad).max(2.0) };
            assert!(m.total_cmp(&want).is_eq(), "nan_max {m} with {bad}");
        }
        assert_eq!(max_abs_diff(&good, &[0.5, -1.5, 2.0, 3.25]), 0.5);
        assert_eq!(nan_max([1.0, 3.0, 2.0]), 3.0);
        assert!(rel_l2(&good, &good) == 0.0);
        assert_close(&good, &[0.5, -1.0, 2.0, 3.0 + 1e-7], 1e-6);
    }
}
