#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod device;
mod dropout;
mod elementwise;
mod exp_features;
mod fused_adam;
mod host;
mod log_sum_exp;
// Keeping the workers polling is for flex's kernels; without them only `on_worker` is used.
#[cfg_attr(not(feature = "flex"), allow(dead_code))]
mod spin;

#[cfg(feature = "flex")]
mod attention;
#[cfg(feature = "flex")]
mod layer_norm;
#[cfg(feature = "flex")]
mod matmul;
#[cfg(feature = "flex")]
mod row_softmax;
#[cfg(feature = "flex")]
mod seq_conv;

#[doc(hidden)]
pub mod testing;

pub use dropout::{MASK_CHUNK, scaled_keep_mask};
pub use fused_adam::{FusedAdam, FusedAdamW};
pub use spin::on_worker;

use burn::prelude::*;
#[cfg(feature = "flex")]
use burn::tensor::DType;
use burn::tensor::Distribution;
use burn::tensor::module::conv2d;
use burn::tensor::ops::{AttentionModuleOptions, ConvOptions};

/// Whether `x` is an f32 tensor on flex (Kiln's flex kernels compiled in); on flex, the pool's other
/// workers are kept polling for the kernel that follows ([`spin`]).
#[cfg(feature = "flex")]
fn flex_f32<const D: usize>(x: &Tensor<D>) -> bool {
    let device = x.device();
    let flex = device::is_flex(&device);
    if flex {
        spin::keep_warm(&device);
    }
    flex && x.dtype() == DType::F32
}

/// `a × b` over the last two dimensions (Burn's `matmul`). On flex, for f32 operands with the same
/// batch dimensions, the GEMM flex calls writes straight into an aligned output buffer (flex
/// zero-fills and then copies every matmul output), forward and backward: the same values to the bit.
///
/// # Shapes
///
/// - `a`: `[.., m, k]`, `b`: `[.., k, n]` → `[.., m, n]`
pub fn matmul<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if flex_f32(&a) && b.dtype() == DType::F32 && a.dims()[..D - 2] == b.dims()[..D - 2] {
        return matmul::matmul_flex(a, b);
    }
    a.matmul(b)
}

/// A linear layer, `x W + b`, with Burn's `Linear` layout (`weight` `[d_in, d_out]`), on the rows
/// of `x`: every leading dimension is flattened into one `[rows, d_in] × [d_in, d_out]` product
/// (Burn's `linear` on a rank-3 input runs a batched product per sequence, slower on flex). On flex
/// the product is [`matmul`]'s; elsewhere Burn's `linear`.
///
/// # Shapes
///
/// - `x`: `[.., d_in]`, `weight`: `[d_in, d_out]`, `bias`: `[d_out]` → `[.., d_out]`
pub fn linear<const D: usize>(x: Tensor<D>, weight: Tensor<2>, bias: Option<Tensor<1>>) -> Tensor<D> {
    let dims = x.dims();
    let d_out = weight.dims()[1];
    let rows = x.reshape([dims[..D - 1].iter().product(), dims[D - 1]]);
    #[cfg(feature = "flex")]
    let y = if flex_f32(&rows) {
        let y = matmul::matmul_flex(rows, weight);
        match bias {
            Some(b) => y + b.unsqueeze_dim(0),
            None => y,
        }
    } else {
        burn::tensor::module::linear(rows, weight, bias)
    };
    #[cfg(not(feature = "flex"))]
    let y = burn::tensor::module::linear(rows, weight, bias);
    let mut out = dims;
    out[D - 1] = d_out;
    y.reshape(out)
}

/// The exact (erf) GELU `x · Φ(x)` (Hendrycks & Gimpel 2016, arXiv:1606.08415), as in BERT. On flex
/// and ndarray (f32) a host loop (erf by Abramowitz & Stegun 7.1.26, absolute error below 1.5·10⁻⁷),
/// linearised in training so that its backward pass is one multiplication; elsewhere Burn's `gelu`.
///
/// # Shapes
///
/// - `x`: any → same
pub fn gelu<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if host::host_f32(&x) {
        return elementwise::gelu(x);
    }
    burn::tensor::activation::gelu(x)
}

/// `dropout(gelu(x), prob)`. In training on flex and ndarray (f32) the dropout mask (the one
/// [`dropout`] would draw, from the same device generator) is folded into the GELU's linearisation:
/// one multiplication and one addition for both, forward and backward.
///
/// # Shapes
///
/// - `x`: any → same
pub fn gelu_dropout<const D: usize>(x: Tensor<D>, prob: f64) -> Tensor<D> {
    let device = x.device();
    if prob > 0.0 && device.is_autodiff() && host::host_f32(&x) {
        let mask = dropout::host_mask(x.dims().iter().product(), 1.0 - prob, &device);
        return elementwise::gelu_masked(x, &mask);
    }
    dropout(gelu(x), prob)
}

/// Dropout (Srivastava et al. 2014) as `burn::nn::Dropout` applies it: on an autodiff device each
/// element is zeroed with probability `prob` and the survivors scaled by `1 / (1 − prob)`; otherwise
/// the identity. On flex and ndarray the scaled mask is drawn on the host from the device's generator
/// (one draw seeds a hash of each element's index) and applied with one multiplication; elsewhere
/// Burn's Bernoulli mask.
///
/// # Shapes
///
/// - `x`: any → same
pub fn dropout<const D: usize>(x: Tensor<D>, prob: f64) -> Tensor<D> {
    let device = x.device();
    if prob == 0.0 || !device.is_autodiff() {
        return x;
    }
    let keep = 1.0 - prob;
    let dims = x.dims();
    let mask = if device::on_host(&device) {
        let values = dropout::host_mask(dims.iter().product(), keep, &device);
        let n = values.len();
        Tensor::<1>::from_data(TensorData::new(values, [n]), &device).reshape(dims)
    } else {
        x.random_like(Distribution::Bernoulli(keep)).mul_scalar(1.0 / keep)
    };
    x * mask
}

/// `elu(x) + 1` (`x + 1` for `x > 0`, `eˣ` otherwise), linear attention's feature map. On flex and
/// ndarray (f32) one host pass, linearised in training; elsewhere `max(x, 0) + exp(min(x, 0))`.
///
/// # Shapes
///
/// - `x`: any → same
pub fn elu_plus_one<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if host::host_f32(&x) {
        return elementwise::elu_plus_one(x);
    }
    x.clone().clamp_min(0.0) + x.clamp_max(0.0).exp()
}

/// `eˣ`. On flex and ndarray (f32) one host pass, linearised in training (flex's `exp` calls scalar
/// `expf` per element); values below `e⁻⁸⁷` flush to 0, and above `x = 80` the training slope is 0:
/// stabilise arguments to `x ≤ 0`. Elsewhere Burn's `exp`.
///
/// # Shapes
///
/// - `x`: any → same
pub fn exp<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if host::host_f32(&x) {
        return elementwise::exp(x);
    }
    x.exp()
}

/// The stabilised `exp` feature map of linear attention: `e^{x − s}` with `s` each query's maximum
/// over its features (`is_query`), or for keys one maximum per `(batch, head)` over the real keys;
/// padded keys give 0. On flex and ndarray (f32) one host pass per query row or per head; elsewhere
/// Burn's ops.
///
/// # Shapes
///
/// - `x`: `[b, h, n, m]`, `padding`: `[b, n]` (`true` = pad) → `[b, h, n, m]`
pub fn exp_features(x: Tensor<4>, is_query: bool, padding: Option<&Tensor<2, Bool>>) -> Tensor<4> {
    if host::host_f32(&x) {
        return exp_features::host(x, is_query, padding);
    }
    exp_features::by_ops(x, is_query, padding)
}

/// Softmax along the last dimension. On flex (f32) one host pass per row each way (Burn's is five
/// ops, each a pass with a scalar `expf`, differentiated one by one); elsewhere Burn's `softmax`.
///
/// # Shapes
///
/// - `x`: any → same
pub fn softmax_rows<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if flex_f32(&x) {
        return row_softmax::row_softmax(x);
    }
    burn::tensor::activation::softmax(x, D - 1)
}

/// `log Σᵢ e^(xᵢ)` over the last dimension, kept as size 1; stable for any finite entries (exclude an
/// entry with a large negative number such as `−1e12`, not `−∞`, which the training form would
/// multiply by its zero weight). On flex and ndarray (f32) one host pass per row, linearised in
/// training; elsewhere Burn's ops; the gradient is the row's softmax either way.
///
/// # Shapes
///
/// - `x`: `[..., m]` → `[..., 1]`
pub fn log_sum_exp<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    if host::host_f32(&x) && x.dims()[D - 1] > 0 {
        return log_sum_exp::host(x);
    }
    log_sum_exp::by_ops(x)
}

/// Exact scaled dot-product attention `softmax(Q Kᵀ / √d + mask) V` (Vaswani et al. 2017, eq. 1):
/// padded keys and, when `causal`, future keys masked; a query row whose keys are all masked returns
/// zeros. On flex (f32) Kiln's blockwise kernel, forward and, in training, the FlashAttention
/// recurrence backward (memory linear in `n` beyond a block); elsewhere Burn's `attention` (fused
/// kernels on GPU backends; in training other autodiff backends run Burn's unfused graph).
///
/// # Shapes
///
/// - `q`: `[b, h, n, d]`, `k`, `v`: `[b, h, m, d]`, `padding`: `[b, m]` (`true` = pad)
/// - output: `[b, h, n, d]`
pub fn attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    padding: Option<&Tensor<2, Bool>>,
    causal: bool,
) -> Tensor<4> {
    #[cfg(feature = "flex")]
    if flex_f32(&q) {
        return attention::fused_attention(q, k, v, padding, causal);
    }
    attention_by_ops([q, k, v], padding, causal)
}

/// [`attention`] as Burn's `attention` module op (and the reference of Kiln's kernel's tests).
pub(crate) fn attention_by_ops(
    [q, k, v]: [Tensor<4>; 3],
    padding: Option<&Tensor<2, Bool>>,
    causal: bool,
) -> Tensor<4> {
    let [b, h, n, _] = q.dims();
    let mask = padding.map(|p| {
        let m = p.dims()[1];
        p.clone().reshape([b, 1, 1, m]).expand([b, h, n, m])
    });
    let options = AttentionModuleOptions { is_causal: causal, ..Default::default() };
    burn::tensor::module::attention(q, k, v, mask, None, options)
}

/// The depthwise convolution along the sequence of Nyströmformer's residual: one kernel of `taps`
/// taps per head, zero padding `taps / 2` (the reference's `Conv2d(h, h, (taps, 1), groups = h)`).
/// On flex, for an odd number of taps, host loops that vectorise along the head dimension (flex's
/// `conv2d` backward is a general transposed 3-D convolution); elsewhere Burn's `conv2d`.
///
/// # Shapes
///
/// - `v`: `[b, h, n, d]`, `w`: `[h, 1, taps, 1]` → `[b, h, n, d]`
pub fn seq_conv(v: Tensor<4>, w: Tensor<4>) -> Tensor<4> {
    let [h, _, taps, _] = w.dims();
    #[cfg(feature = "flex")]
    if taps % 2 == 1 && flex_f32(&v) {
        return seq_conv::seq_conv(v, w);
    }
    conv2d(v, w, None, ConvOptions::new([1, 1], [taps / 2, 0], [1, 1], h))
}

/// LayerNorm over the last dimension (Ba et al. 2016, arXiv:1607.06450) with scale `gamma` and an
/// optional shift `beta`, as Burn's `layer_norm` computes it. In training on flex (f32) one host pass
/// per row forward and one backward (Burn's autodiff differentiates its decomposition op by op);
/// elsewhere, and in inference, Burn's `layer_norm`.
///
/// # Shapes
///
/// - `x`: `[.., d]`, `gamma`, `beta`: `[d]` → `[.., d]`
pub fn layer_norm<const D: usize>(x: Tensor<D>, gamma: Tensor<1>, beta: Option<Tensor<1>>, epsilon: f64) -> Tensor<D> {
    #[cfg(feature = "flex")]
    if x.device().is_autodiff() && flex_f32(&x) {
        let beta = beta.unwrap_or_else(|| gamma.zeros_like());
        return layer_norm::layer_norm_flex(x, gamma, beta, epsilon);
    }
    burn::tensor::module::layer_norm(x, gamma, beta, epsilon)
}
