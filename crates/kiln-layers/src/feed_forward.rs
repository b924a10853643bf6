//! The position-wise feed-forward network of a transformer block (Vaswani et al. 2017, §3.3):
//! `W2 · dropout(GELU(W1 x + b1)) + b2`, GELU in its exact erf form (Hendrycks & Gimpel 2016,
//! arXiv:1606.08415), as in BERT.

use burn::nn::{Linear, LinearConfig};

use crate::Dropout;
use burn::prelude::*;
use burn::tensor::DType;
use burn::tensor::activation::gelu;
use rayon::prelude::*;

/// Two linear layers with an erf-GELU between.
#[derive(Module, Debug)]
pub struct FeedForward {
    /// `d_model → d_ff` (checkpoint key `hidden`).
    pub hidden: Linear,
    /// `d_ff → d_model` (checkpoint key `output`).
    pub output: Linear,
    /// Dropout after the activation.
    pub dropout: Dropout,
}

impl FeedForward {
    /// A fresh network.
    pub fn new(d_model: usize, d_ff: usize, dropout: f64, device: &Device) -> Self {
        Self {
            hidden: LinearConfig::new(d_model, d_ff).init(device),
            output: LinearConfig::new(d_ff, d_model).init(device),
            dropout: Dropout::new(dropout),
        }
    }

    /// # Shapes
    ///
    /// - `x`: `[b, n, d_model]` → `[b, n, d_model]`
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let [b, n, d] = x.dims();
        let x = x.reshape([b * n, d]);
        linear_2d(&self.output, gelu_dropout(linear_2d(&self.hidden, x), &self.dropout)).reshape([b, n, d])
    }
}

/// `a × b` over the last two dimensions: on flex (f32, the same batch dimensions) with the product
/// written straight into its output buffer (`crate::matmul`), forward and backward; elsewhere, and
/// for broadcast batches, Burn's `matmul`. The same values either way.
pub(crate) fn matmul<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if crate::host::is_flex(&a.device())
        && a.dtype() == DType::F32
        && b.dtype() == DType::F32
        && a.dims()[..D - 2] == b.dims()[..D - 2]
    {
        return crate::matmul::matmul_flex(a, b);
    }
    a.matmul(b)
}

/// `linear` on rows, `[rows, d_in] → [rows, d_out]`: on flex with the product written straight
/// into its output buffer (`crate::matmul`), elsewhere Burn's `Linear::forward`; the same values.
pub(crate) fn linear_2d(linear: &Linear, x: Tensor<2>) -> Tensor<2> {
    #[cfg(feature = "flex")]
    if crate::host::is_flex(&x.device()) && x.dtype() == DType::F32 {
        return crate::matmul::linear_flex(linear, x);
    }
    linear.forward(x)
}

/// `dropout(gelu_exact(x))`. On an autodiff host device the dropout mask `m` (the one
/// [`Dropout::forward`] would draw, from the same device generator) is folded into [`gelu_exact`]'s
/// linearisation: `y = (a·m)·x + b·m`, one multiplication and one addition for activation and
/// dropout together, forward and backward, instead of a second pass and a mask upload.
///
/// # Shapes
///
/// - `x`: any → same
pub fn gelu_dropout<const D: usize>(x: Tensor<D>, dropout: &Dropout) -> Tensor<D> {
    let device = x.device();
    if x.dtype() != DType::F32 {
        return dropout.forward(gelu_exact(x));
    }
    match dropout.host_mask(x.dims().iter().product(), &device) {
        Some(mask) => gelu_masked(x, &mask),
        None => dropout.forward(gelu_exact(x)),
    }
}

/// `gelu_exact(x) · mask` (elementwise, `mask` row-major) on an autodiff host device with f32 `x`,
/// the mask folded into the linearisation.
fn gelu_masked<const D: usize>(x: Tensor<D>, mask: &[f32]) -> Tensor<D> {
    crate::host::host_blocks(x, HOST_CHUNK, |t, values, slopes| {
        let slopes = slopes.expect("a host mask is drawn in training only");
        linearise_chunk(values, slopes, gelu_linearised);
        for ((v, s), m) in values.iter_mut().zip(slopes.iter_mut()).zip(&mask[t * HOST_CHUNK..]) {
            *v *= m;
            *s *= m;
        }
    })
}

/// The exact (erf) GELU `x · Φ(x)`. On flex and ndarray it is computed on the host with
/// [`gelu_in_place`], since flex's `gelu` (and its backward) call scalar `libm::erff` per element (18%
/// of BERT inference, docs/benchmarks.md). In training (an autodiff device) the host computes the value
/// and the slope together and returns `a·x + b` with the constants `a = GELU'(x)` and
/// `b = GELU(x) − a·x`: the value is GELU's, and the gradient is `a` times the incoming one, one
/// multiplication instead of Burn's scalar-erf backward. GPU backends use Burn's `gelu`.
///
/// # Shapes
///
/// - `x`: any → same
pub fn gelu_exact<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    host_elementwise(x, gelu_value, gelu_linearised, gelu)
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

/// Elements per task when a host loop is split across threads: a task is tens of microseconds, far
/// above Rayon's scheduling cost, and a `[16·128, 1024]` activation still gives 64 of them.
pub const HOST_CHUNK: usize = 1 << 15;

/// An elementwise function computed on the host where that is cheaper (flex and ndarray, f32): `value`
/// in inference; in training `linearised` gives `(a, b)` with `a·x + b = f(x)` and `a = f'(x)`, and
/// the result is `x·a + b`, whose backward pass is one multiplication ([`crate::host::host_blocks`]).
/// Elsewhere `ops`, the same function from backend ops.
pub(crate) fn host_elementwise<const D: usize>(
    x: Tensor<D>,
    value: impl Fn(f32) -> f32 + Sync + Copy,
    linearised: impl Fn(f32) -> (f32, f32) + Sync + Copy,
    ops: impl FnOnce(Tensor<D>) -> Tensor<D>,
) -> Tensor<D> {
    if !crate::host::host_f32(&x) {
        return ops(x);
    }
    crate::host::host_blocks(x, HOST_CHUNK, |_, values, slopes| match slopes {
        None => map_chunk(values, value),
        Some(slopes) => linearise_chunk(values, slopes, linearised),
    })
}

/// `x ← f(x)` over a slice, split over Rayon's threads in [`HOST_CHUNK`] blocks, each loop compiled
/// for AVX-512 where the CPU has it (`f` is inlined into it).
pub(crate) fn map_in_place(values: &mut [f32], f: impl Fn(f32) -> f32 + Sync + Copy) {
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
pub fn gelu_in_place(values: &mut [f32]) {
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

/// `linear` applied to `[b, n, d_in]` as one `[b·n, d_in] × [d_in, d_out]` product: Burn's `Linear`
/// on a rank-3 input runs `b` batched products of `n` rows when `n` fills its tiles, and the flat
/// form is faster on flex (docs/benchmarks.md).
///
/// # Shapes
///
/// - `x`: `[b, n, d_in]` → `[b, n, d_out]`
pub fn linear_rows(linear: &Linear, x: Tensor<3>) -> Tensor<3> {
    let [b, n, d] = x.dims();
    let y = linear_2d(linear, x.reshape([b * n, d]));
    let d_out = y.dims()[1];
    y.reshape([b, n, d_out])
}

/// A stack of linear layers with ReLU between them and none after the last (the MLP of the VAE
/// decoder and the WGAN generator), as a function over the layers so that each model keeps its own
/// checkpoint keys.
///
/// # Shapes
///
/// - `x`: `[b, in]` → `[b, out of the last layer]`
pub fn relu_between(layers: &[Linear], x: Tensor<2>) -> Tensor<2> {
    let last = layers.len().saturating_sub(1);
    layers.iter().enumerate().fold(x, |x, (i, layer)| {
        let y = layer.forward(x);
        if i < last { burn::tensor::activation::relu(y) } else { y }
    })
}

#[cfg(test)]
mod relu_between_tests {
    use super::*;

    /// `[1 → 1 → 1]` with weights ±1: ReLU acts between the layers, not after the last.
    #[test]
    fn relu_only_between_layers() {
        let device = Device::flex();
        let mut a = LinearConfig::new(1, 1).init(&device);
        let mut b = LinearConfig::new(1, 1).init(&device);
        a.weight = burn::module::Param::from_tensor(Tensor::from_floats([[1.0]], &device));
        a.bias = Some(burn::module::Param::from_tensor(Tensor::from_floats([0.0], &device)));
        b.weight = burn::module::Param::from_tensor(Tensor::from_floats([[-1.0]], &device));
        b.bias = Some(burn::module::Param::from_tensor(Tensor::from_floats([0.0], &device)));
        let x = Tensor::<2>::from_floats([[2.0], [-3.0]], &device);
        let y: Vec<f32> = relu_between(&[a, b], x).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(y, vec![-2.0, 0.0]);
    }
}

#[cfg(test)]
mod gelu_tests {
    use super::*;
    use crate::test_util::*;

    /// The host GELU against Burn's (libm `erff`) on a fine grid over [−12, 12] and on Gaussian
    /// values: within 4·10⁻⁷ absolute (A&S 7.1.26 bounds erf's absolute error by 1.5·10⁻⁷, times
    /// |x|/2 ≤ 2 where it matters) plus 2·10⁻⁶ relative; exact zeros and signs at the tails.
    #[test]
    fn host_gelu_matches_burns_erf_gelu() {
        let device = dev();
        let grid: Vec<f32> = (-120_000..=120_000).map(|i| i as f32 * 1e-4).collect();
        let x = Tensor::<1>::from_floats(grid.as_slice(), &device);
        let want = to_vec(gelu(x.clone()));
        let got = to_vec(gelu_exact(x));
        for ((x, w), g) in grid.iter().zip(&want).zip(&got) {
            assert!((w - g).abs() <= 4e-7 + 2e-6 * w.abs(), "gelu({x}): burn {w}, host {g}");
        }
        let r = randn([4, 33, 17], 3.0, 5, &device);
        let (w, g) = (to_vec(gelu(r.clone())), to_vec(gelu_exact(r.clone())));
        assert_close(&g, &w, 1e-5);
        assert_eq!(gelu_exact(r).dims(), [4, 33, 17]);
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
            let (want_y, want_g) = value_and_grad(&xs, &device, &|x| gelu(x));
            let (got_y, got_g) = value_and_grad(&xs, &device, &|x| gelu_exact(x));
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
        let grads = gelu_exact(x.clone()).sum().backward();
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

    /// The fused GELU and dropout equal `gelu_exact(x) · mask` with the same mask: the same elements
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
                gelu_exact(x.clone()) * Tensor::<3>::from_data(TensorData::new(mask.clone(), shape), &device)
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
        assert_eq!(to_vec(gelu_dropout(x.clone(), &Dropout::new(0.3))), to_vec(gelu_exact(x)));
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
}
