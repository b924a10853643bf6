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

/// Largest absolute difference.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// `‖a − b‖ / ‖b‖`.
pub fn rel_l2(a: &[f32], b: &[f32]) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum();
    let den: f64 = b.iter().map(|y| (*y as f64).powi(2)).sum();
    (num / den).sqrt()
}

/// Assert every element agrees within `tol` (absolute, plus relative for large values).
#[track_caller]
pub fn assert_close(a: &[f32], b: &[f32], tol: f32) {
    assert_eq!(a.len(), b.len(), "lengths differ");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
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
