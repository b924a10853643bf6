//! Elementwise functions as host loops on the CPU backends: the exact GELU (alone and with a
//! dropout mask folded in), `elu + 1` and `eˣ`, each one pass over the values split over Rayon's
//! threads and compiled a second time for AVX-512, in training linearised (`a·x + b` with the slope
//! `a`, so that the backward pass is one multiplication). The call-free exponentials the other
//! kernels share live here too.

use burn::prelude::*;
#[cfg(all(test, feature = "flex"))]
use rayon::prelude::*;

use crate::host::{HOST_CHUNK, host_blocks, host_f32};

/// The exact (erf) GELU `x · Φ(x)` on the host ([`crate::gelu`] chooses): flex's `gelu` (and its
/// backward) call scalar `libm::erff` per element (18% of BERT inference, docs/benchmarks.md). In
/// training (an autodiff device) the host computes the value and the slope together and returns
/// `a·x + b` with the constants `a = GELU'(x)` and `b = GELU(x) − a·x`: the value is GELU's, and the
/// gradient is `a` times the incoming one, one multiplication instead of Burn's scalar-erf backward.
pub(crate) fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    host_elementwise(x, gelu_value, gelu_linearised)
}

/// `gelu(x) · mask` (elementwise, `mask` row-major) on an autodiff host device
/// ([`crate::gelu_dropout`] chooses): the mask `m` folded into the linearisation,
/// `y = (a·m)·x + b·m`, one multiplication and one addition for activation and dropout together,
/// forward and backward, instead of a second pass and a mask upload.
pub(crate) fn gelu_masked<const D: usize>(x: Tensor<D>, mask: &[f32]) -> Tensor<D> {
    host_blocks(x, HOST_CHUNK, |t, values, slopes| {
        let slopes = slopes.expect("a host mask is drawn in training only");
        linearise_chunk(values, slopes, gelu_linearised);
        for ((v, s), m) in values.iter_mut().zip(slopes.iter_mut()).zip(&mask[t * HOST_CHUNK..]) {
            *v *= m;
            *s *= m;
        }
    })
}

/// `GELU(x) = x · Φ(x)`.
#[inline(always)]
fn gelu_value(x: f32) -> f32 {
    x * normal_cdf_pdf(x).0
}

/// GELU linearised at `x`: `(a, b)` with the slope `a = GELU'(x) = Φ(x) + x·φ(x)` and
/// `b = GELU(x) − a·x`, so that `a·x + b = GELU(x)`; the same arithmetic as [`gelu_in_place`] (φ
/// shares its exponential).
#[inline(always)]
fn gelu_linearised(x: f32) -> (f32, f32) {
    let (cdf, pdf) = normal_cdf_pdf(x);
    let a = cdf + x * pdf;
    (a, x * cdf - a * x)
}

/// `elu(x) + 1` (`x + 1` for `x > 0`, `eˣ` otherwise) on the host ([`crate::elu_plus_one`]
/// chooses), in training linearised as [`gelu`] is: `a·x + b` with the slope `a` (`1`, or `eˣ`) and
/// `b = 1`, or `eˣ(1 − x)`. Burn's `clamp`s are a compare and a masked fill each, forward and
/// backward (17% of linear attention's forward+backward at n = 4,096).
pub(crate) fn elu_plus_one<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let value = |x: f32| if x > 0.0 { x + 1.0 } else { exp_le0(x) };
    let linearised = |x: f32| {
        if x > 0.0 {
            (1.0, 1.0)
        } else {
            let e = exp_le0(x);
            (e, e * (1.0 - x))
        }
    };
    host_elementwise(x, value, linearised)
}

/// `eˣ` on the host ([`crate::exp`] chooses), where flex's `exp` calls scalar `expf` per element; in
/// training linearised as [`elu_plus_one`] (`a = eˣ`, `b = eˣ(1 − x)`; the value then carries the
/// multiply-add's rounding, about `2·|x|·10⁻⁷` relative, and above `x = 80`, where `a·x` would
/// overflow, the slope is 0: Kiln's callers stabilise their arguments to `x ≤ 0`). Values below
/// `e⁻⁸⁷` are flushed to 0.
pub(crate) fn exp<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    // a·x + b with a = eˣ; above 80 a·x would overflow, so the value is kept in b alone (slope 0).
    let linearised = |x: f32| {
        let e = exp_f32(x);
        if x <= 80.0 { (e, e * (1.0 - x)) } else { (0.0, e) }
    };
    host_elementwise(x, exp_f32, linearised)
}

/// `eˣ` for `x ≤ 0` by [`exp_non_positive`] (vectorisable).
#[inline(always)]
pub(crate) fn exp_le0(x: f32) -> f32 {
    exp_non_positive(x.min(0.0))
}

/// An elementwise function computed on the host (where [`host_f32`] holds): `value` in inference;
/// in training `linearised` gives `(a, b)` with `a·x + b = f(x)` and `a = f'(x)`, and the result is
/// `x·a + b`, whose backward pass is one multiplication ([`host_blocks`]).
fn host_elementwise<const D: usize>(
    x: Tensor<D>,
    value: impl Fn(f32) -> f32 + Sync + Copy,
    linearised: impl Fn(f32) -> (f32, f32) + Sync + Copy,
) -> Tensor<D> {
    debug_assert!(host_f32(&x), "a host loop on a tensor outside host memory");
    host_blocks(x, HOST_CHUNK, |_, values, slopes| match slopes {
        None => map_chunk(values, value),
        Some(slopes) => linearise_chunk(values, slopes, linearised),
    })
}

/// `x ← f(x)` over a slice, split over Rayon's threads in [`HOST_CHUNK`] blocks, each loop compiled
/// for AVX-512 where the CPU has it (`f` is inlined into it).
#[cfg(all(test, feature = "flex"))]
fn map_in_place(values: &mut [f32], f: impl Fn(f32) -> f32 + Sync + Copy) {
    values.par_chunks_mut(HOST_CHUNK).for_each(|values| map_chunk(values, f));
}

crate::avx512_dispatch! {
    /// `x ← f(x)` over one block, in a loop compiled for AVX-512 (16 lanes) where the CPU has it.
    fn map_chunk(values: &mut [f32], f: impl Fn(f32) -> f32 + Copy) => map_chunk_portable
}

#[inline(always)]
fn map_chunk_portable(values: &mut [f32], f: impl Fn(f32) -> f32) {
    values.iter_mut().for_each(|v| *v = f(*v));
}

crate::avx512_dispatch! {
    /// `(slope, x) ← f(x)` over one block, dispatched as [`map_chunk`].
    fn linearise_chunk(
        values: &mut [f32],
        slopes: &mut [f32],
        f: impl Fn(f32) -> (f32, f32) + Copy,
    ) => linearise_chunk_portable
}

#[inline(always)]
fn linearise_chunk_portable(values: &mut [f32], slopes: &mut [f32], f: impl Fn(f32) -> (f32, f32)) {
    for (v, s) in values.iter_mut().zip(slopes.iter_mut()) {
        (*s, *v) = f(*v);
    }
}

/// `(Φ(x), φ(x))` of the standard normal, branch-free: erf by Abramowitz & Stegun 7.1.26 (absolute
/// error below 1.5·10⁻⁷), `e^(−x²/2)` by [`exp_non_positive`].
#[inline(always)]
fn normal_cdf_pdf(x: f32) -> (f32, f32) {
    const P: f32 = 0.327_591_1;
    const A: [f32; 5] = [0.254_829_6, -0.284_496_74, 1.421_413_7, -1.453_152_1, 1.061_405_4];
    const INV_SQRT_2PI: f32 = 0.398_942_3;
    let z = (x * std::f32::consts::FRAC_1_SQRT_2).abs();
    let t = 1.0 / (1.0 + P * z);
    let poly = t * (A[0] + t * (A[1] + t * (A[2] + t * (A[3] + t * A[4]))));
    // erfc(|x|/√2) = poly · e^(−z²); 1 + erf(x/√2) is that for x < 0 and 2 minus it otherwise
    // (no cancellation in the left tail).
    let e = exp_non_positive(-z * z);
    let erfc = poly * e;
    let two_cdf = if x < 0.0 { erfc } else { 2.0 - erfc };
    (0.5 * two_cdf, INV_SQRT_2PI * e)
}

/// `x ← x · Φ(x) = x/2 · (1 + erf(x/√2))` over a slice, in branch-free arithmetic that the compiler
/// vectorises: erf by Abramowitz & Stegun 7.1.26 (absolute error below 1.5·10⁻⁷) with `exp` by range
/// reduction to `[−ln2/2, ln2/2]` and a degree-6 Taylor polynomial (relative error about 10⁻⁷).
/// Split over Rayon's threads in blocks of [`HOST_CHUNK`] elements (elementwise, so the result does
/// not depend on the split).
#[cfg(all(test, feature = "flex"))]
fn gelu_in_place(values: &mut [f32]) {
    map_in_place(values, gelu_value);
}

/// `eʸ` over the whole float range: infinity above 88 (e⁸⁸·⁷² overflows f32), else
/// [`exp_non_positive`]'s arithmetic, which holds up to 88.
#[inline(always)]
pub(crate) fn exp_f32(y: f32) -> f32 {
    let e = exp_non_positive(y.min(88.0));
    if y > 88.0 { f32::INFINITY } else { e }
}

/// `eʸ` for `y ≤ 0` (0 below −87, where it is under 2⁻¹²⁵), without calls: `y = k ln2 + r`,
/// `eʸ = 2ᵏ eʳ`, `k` rounded by the 1.5·2²³ trick, `2ᵏ` built from its exponent bits. The same
/// arithmetic holds for `0 < y ≤ 88` (`k ≤ 127`), which [`exp_f32`] uses.
#[inline(always)]
pub(crate) fn exp_non_positive(y: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2²³
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let small = y < -87.0;
    let y = y.max(-87.0);
    let shifted = y * std::f32::consts::LOG2_E + ROUND;
    let k = shifted - ROUND;
    let r = (y - k * LN2_HI) - k * LN2_LO;
    let p = 1.0 + r * (1.0 + r * (0.5 + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    // k in [−126, 0] is the low bits of `shifted` (= 1.5·2²³ + k exactly): integer arithmetic on the
    // bits, which vectorises, where `k as i32` (saturating, NaN-checked) is scalar code per lane.
    let k_int = shifted.to_bits().wrapping_sub(ROUND.to_bits()) as i32;
    let scale = f32::from_bits(((k_int + 127) as u32) << 23);
    if small { 0.0 } else { p * scale }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::testing::*;
    use burn::tensor::activation;

    /// The host GELU against Burn's (libm `erff`) on a fine grid over [−12, 12] and on Gaussian
    /// values: within 4·10⁻⁷ absolute (A&S 7.1.26 bounds erf's absolute error by 1.5·10⁻⁷, times
    /// |x|/2 ≤ 2 where it matters) plus 2·10⁻⁶ relative; exact zeros and signs at the tails.
    #[test]
    fn host_gelu_matches_burns_erf_gelu() {
        let device = dev();
        let grid: Vec<f32> = (-120_000..=120_000).map(|i| i as f32 * 1e-4).collect();
        let x = Tensor::<1>::from_floats(grid.as_slice(), &device);
        let want = to_vec(activation::gelu(x.clone()));
        let got = to_vec(crate::gelu(x));
        for ((x, w), g) in grid.iter().zip(&want).zip(&got) {
            assert!((w - g).abs() <= 4e-7 + 2e-6 * w.abs(), "gelu({x}): burn {w}, host {g}");
        }
        let r = randn([4, 33, 17], 3.0, 5, &device);
        let (w, g) = (to_vec(activation::gelu(r.clone())), to_vec(crate::gelu(r.clone())));
        assert_close(&g, &w, 1e-5);
        assert_eq!(crate::gelu(r).dims(), [4, 33, 17]);
        let mut tails = [-200.0f32, -30.0, 0.0, 30.0, 200.0];
        gelu_in_place(&mut tails);
        assert_eq!(tails, [-0.0, -0.0, 0.0, 30.0, 200.0]);
        // The run-time dispatched loops (AVX-512 where the CPU has it), split over threads in chunks (the grid
        // is 7 of them), equal the portable ones over the whole slice bit for bit.
        let mut dispatched = grid.clone();
        gelu_in_place(&mut dispatched);
        let portable: Vec<f32> = grid.iter().map(|&x| gelu_value(x)).collect();
        assert_eq!(dispatched, portable);
        let (mut dispatched, mut slopes) = (grid.clone(), vec![0.0; grid.len()]);
        for (v, s) in dispatched.chunks_mut(HOST_CHUNK).zip(slopes.chunks_mut(HOST_CHUNK)) {
            linearise_chunk(v, s, gelu_linearised);
        }
        let (portable_slopes, portable): (Vec<f32>, Vec<f32>) = grid.iter().map(|&x| gelu_linearised(x)).unzip();
        assert_eq!((dispatched, slopes), (portable, portable_slopes));
    }

    /// In training, the linearised host GELU: the value is Burn's GELU and the gradient Burn's GELU
    /// gradient (on a grid over [−12, 12] and Gaussian values), and both match `Φ(x) + x·φ(x)` from
    /// an independent erf at a few points.
    #[test]
    fn training_gelu_has_burns_value_and_gradient() {
        let device = dev().autodiff();
        let grid: Vec<f32> = (-12_000..=12_000).map(|i| i as f32 * 1e-3).collect();
        let r = to_vec(randn([4, 33, 17], 3.0, 5, &device));
        for xs in [grid, r] {
            let (want_y, want_g) = value_and_grad(&xs, &device, &|x| activation::gelu(x));
            let (got_y, got_g) = value_and_grad(&xs, &device, &|x| crate::gelu(x));
            let (want_g, got_g) = (want_g.expect("autodiff"), got_g.expect("autodiff"));
            for (i, x) in xs.iter().enumerate() {
                let (w, g) = (want_y[i], got_y[i]);
                assert!((w - g).abs() <= 5e-7 + 2e-6 * w.abs(), "gelu({x}): burn {w}, host {g}");
                let (w, g) = (want_g[i], got_g[i]);
                assert!((w - g).abs() <= 5e-7 + 2e-6 * w.abs(), "gelu'({x}): burn {w}, host {g}");
            }
        }
        let points = [-1.0f64, 0.0, 0.5, 2.0];
        let x = Tensor::<1>::from_floats(points.map(|p| p as f32).as_slice(), &device).require_grad();
        let grads = crate::gelu(x.clone()).sum().backward();
        let g = to_vec(x.grad(&grads).unwrap());
        // d/dx x·Φ(x) = Φ(x) + x·φ(x)
        let want: Vec<f32> = points
            .iter()
            .map(|&x| {
                let phi = (-x * x / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
                let cdf = 0.5 * (1.0 + erf_series(x / std::f64::consts::SQRT_2));
                (cdf + x * phi) as f32
            })
            .collect();
        assert_close(&g, &want, 1e-6);
    }

    /// The fused GELU and dropout equal `crate::gelu(x) · mask` with the same mask: the same elements
    /// dropped, values and gradients (under a non-uniform upstream gradient) within float rounding,
    /// over several host chunks; in evaluation `gelu_dropout` is the GELU alone. (The mask is given,
    /// not drawn from the shared device generator, which tests running in parallel also draw from.)
    #[test]
    fn fused_gelu_dropout_equals_gelu_then_dropout() {
        let device = dev().autodiff();
        let shape = [3, 50, 700];
        let xs = to_vec(randn(shape, 2.0, 4, &dev()));
        let mask = crate::dropout::scaled_keep_mask(xs.len(), 0.7, 123);
        let upstream = randn(shape, 1.0, 5, &device);
        let run = |fused: bool| {
            let x = Tensor::<3>::from_data(TensorData::new(xs.clone(), shape), &device).require_grad();
            let y = if fused {
                gelu_masked(x.clone(), &mask)
            } else {
                crate::gelu(x.clone()) * Tensor::<3>::from_data(TensorData::new(mask.clone(), shape), &device)
            };
            let grads = (y.clone() * upstream.clone()).sum().backward();
            (to_vec(y), to_vec(x.grad(&grads).unwrap()))
        };
        let ((fused_y, fused_g), (plain_y, plain_g)) = (run(true), run(false));
        let dropped = |y: &[f32]| y.iter().map(|&v| v == 0.0).collect::<Vec<_>>();
        assert!(dropped(&fused_y) == dropped(&plain_y), "the same elements are dropped");
        let share = dropped(&fused_y).iter().filter(|&&d| d).count() as f64 / fused_y.len() as f64;
        assert!((share - 0.3).abs() < 0.01, "{share}");
        assert_close(&fused_y, &plain_y, 1e-6);
        assert_close(&fused_g, &plain_g, 1e-6);
        let x = Tensor::<1>::from_floats(&xs[..1000], &dev());
        assert_eq!(to_vec(crate::gelu_dropout(x.clone(), 0.3)), to_vec(crate::gelu(x)));
    }

    /// erf by its Taylor series (fine for |x| ≤ 2 in f64).
    fn erf_series(x: f64) -> f64 {
        let mut sum = 0.0;
        let mut term = x;
        for n in 0..60 {
            sum += term / (2 * n + 1) as f64;
            term *= -x * x / (n + 1) as f64;
        }
        2.0 / std::f64::consts::PI.sqrt() * sum
    }

    /// The host `exp` equals Burn's in value and gradient on a grid over [−100, 100] (overflow to
    /// infinity above 88, exact zeros far below, no gradient above 80) and on Gaussian values, with
    /// and without autodiff.
    #[test]
    fn host_exp_matches_burns_exp() {
        let mut xs: Vec<f32> = (-10_000..=10_000).map(|i| i as f32 * 1e-2).collect();
        xs.extend(to_vec(randn([70_000], 3.0, 8, &dev())));
        for device in [dev(), dev().autodiff()] {
            let (want_y, want_g) = value_and_grad(&xs, &device, &|x| x.exp());
            let (got_y, got_g) = value_and_grad(&xs, &device, &|x| crate::exp(x));
            for (i, x) in xs.iter().enumerate() {
                let (w, g) = (want_y[i], got_y[i]);
                if *x > 88.0 {
                    // Burn overflows at 88.72; the host already above 88 (e⁸⁸ = 1.7·10³⁸).
                    assert!(g == f32::INFINITY && (w == f32::INFINITY || w > 1.6e38), "exp({x}): {w}, {g}");
                    continue;
                }
                // Relative: the polynomial's 10⁻⁷ and, linearised in training, the rounding of
                // a·x + b (two terms of size |x|·eˣ): about 2·|x|·10⁻⁷. Below e⁻⁸⁷ (1.6·10⁻³⁸) the
                // host flushes to 0.
                let tol = (4e-7 + 2.5e-7 * x.abs()) * w.abs() + 1.7e-38;
                assert!((w - g).abs() <= tol, "exp({x}): burn {w}, host {g}");
                if let (Some(wg), Some(gg)) = (&want_g, &got_g)
                    && *x <= 80.0
                {
                    let (wg, gg) = (wg[i], gg[i]);
                    assert!((wg - gg).abs() <= tol + 2e-6 * wg.abs(), "exp'({x}): burn {wg}, host {gg}");
                }
            }
        }
    }

    /// The host `elu + 1` (threads, AVX-512, linearised in training) equals Burn's
    /// `max(x, 0) + exp(min(x, 0))` in value and gradient on a grid over [−30, 30], at large `x`
    /// (where `a·x + b` must still add the 1) and on Gaussian values, with and without autodiff.
    #[test]
    fn host_elu_plus_one_matches_burns_ops() {
        let mut xs: Vec<f32> = (-30_000..=30_000).map(|i| i as f32 * 1e-3).collect();
        xs.extend([1e6f32, 3.5e7, -1e6, 0.0]);
        xs.extend(to_vec(randn([70_000], 2.0, 9, &dev())));
        let composed = |x: Tensor<1>| x.clone().clamp_min(0.0) + x.clamp_max(0.0).exp();
        for device in [dev(), dev().autodiff()] {
            let (want_y, want_g) = value_and_grad(&xs, &device, &composed);
            let (got_y, got_g) = value_and_grad(&xs, &device, &|x| crate::elu_plus_one(x));
            for (i, x) in xs.iter().enumerate() {
                let (w, g) = (want_y[i], got_y[i]);
                assert!((w - g).abs() <= 1e-6 * (1.0 + w.abs()), "elu+1({x}): burn {w}, host {g}");
            }
            if let (Some(want), Some(got)) = (want_g, got_g) {
                // Both give slope 1 for x > 0 and eˣ for x < 0 (at exactly 0 the clamps' subgradient may differ).
                for (i, x) in xs.iter().enumerate().filter(|(_, x)| **x != 0.0) {
                    assert!((want[i] - got[i]).abs() <= 1e-6 * (1.0 + want[i].abs()), "slope at {x}");
                }
            }
        }
    }
}
