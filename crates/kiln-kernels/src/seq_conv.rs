//! The depthwise convolution along the sequence of Nyströmformer's residual (one kernel of `taps`
//! taps per head, zero padding `taps / 2`, the reference's `Conv2d(h, h, (taps, 1), groups = h)`) as
//! a Burn backend extension with host loops on flex.
//!
//! Burn's flex `conv2d` and its autodiff backward (a general `conv_transpose3d` for the input
//! gradient, a per-plane accumulation for the weight gradient) were about 30% of Nyström attention's
//! forward+backward at n = 4,096 (docs/benchmarks.md). For an odd number of taps:
//!
//! ```text
//! out[i, c] = Σₜ w[t] · v[i + t − p, c]          (p = taps / 2, v = 0 outside the sequence)
//! dv[j, c]  = Σₜ w[taps − 1 − t] · g[j + t − p, c]   (the same convolution with the kernel reversed)
//! dw[t]     = Σ_{b, i, c} g[i, c] · v[i + t − p, c]
//! ```
//!
//! each a loop over rows that vectorises along the head dimension.

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ConvOptions;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::prelude::*;
use burn::tensor::{Shape, Slice};
use rayon::prelude::*;

use crate::host::host_vec;

/// The backend operation on `v` `[b, h, n, d]` and kernels `w` `[h, 1, taps, 1]` (`taps` odd).
#[backend_extension(Flex, Autodiff)]
pub trait SeqConvBackend: Backend {
    /// The depthwise convolution; the default is the backend's `conv2d`.
    fn kiln_seq_conv(v: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self> {
        let [h, _, taps, _] = w.shape().dims::<4>();
        Self::conv2d(v, w, None, ConvOptions::new([1, 1], [taps / 2, 0], [1, 1], h))
    }

    /// `dw` `[h, 1, taps, 1]` from `v` and the output gradient `g` (both `[b, h, n, d]`); the default
    /// is built from backend ops, one shifted product per tap.
    fn kiln_seq_conv_weight_grad(v: FloatTensor<Self>, g: FloatTensor<Self>, taps: usize) -> FloatTensor<Self> {
        weight_grad_by_backend_ops::<Self>(v, g, taps)
    }
}

/// [`SeqConvBackend::kiln_seq_conv_weight_grad`] from backend ops (the default, and the reference for
/// flex's host loop): `v` zero-padded by `taps / 2` rows each side, tap `t` the sum of `g` times
/// rows `t..t + n` of it.
fn weight_grad_by_backend_ops<B: Backend>(v: FloatTensor<B>, g: FloatTensor<B>, taps: usize) -> FloatTensor<B> {
    let [b, h, n, d] = v.shape().dims::<4>();
    let pad = taps / 2;
    let zeros = || B::float_zeros(Shape::new([b, h, pad, d]), &v.device(), v.dtype().into());
    let padded = B::float_cat(vec![zeros(), v.clone(), zeros()], 2);
    let per_tap: Vec<_> = (0..taps)
        .map(|t| {
            let shifted = B::float_slice(
                padded.clone(),
                &[Slice::from(0..b), Slice::from(0..h), Slice::from(t..t + n), Slice::from(0..d)],
            );
            let product = B::float_mul(g.clone(), shifted);
            let summed = B::float_sum_dim(B::float_sum_dim(B::float_sum_dim(product, 0), 2), 3); // [1, h, 1, 1]
            B::float_reshape(summed, Shape::new([h, 1, 1, 1]))
        })
        .collect();
    B::float_cat(per_tap, 2)
}

impl SeqConvBackend for Flex {
    fn kiln_seq_conv(v: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self> {
        let shape = v.shape().dims::<4>();
        let [_, h, n, d] = shape;
        let w = host_vec(w);
        let taps = w.len() / h.max(1);
        let v = host_vec(v);
        let mut out = vec![0.0f32; v.len()];
        out.par_chunks_mut((n * d).max(1)).zip(v.par_chunks((n * d).max(1))).enumerate().for_each(|(plane, (o, v))| {
            let kernel = &w[(plane % h) * taps..(plane % h + 1) * taps];
            conv_plane(o, v, kernel, n, d);
        });
        FlexTensor::from_data(TensorData::new(out, shape))
    }

    fn kiln_seq_conv_weight_grad(v: FloatTensor<Self>, g: FloatTensor<Self>, taps: usize) -> FloatTensor<Self> {
        let [b, h, n, d] = v.shape().dims::<4>();
        let (v, g) = (host_vec(v), host_vec(g));
        let plane = (n * d).max(1);
        // Per plane (b·h of them) the `taps` correlations, then summed over the batch.
        let per_plane: Vec<Vec<f32>> = v
            .par_chunks(plane)
            .zip(g.par_chunks(plane))
            .map(|(v, g)| (0..taps).map(|t| shifted_dot(g, v, t as isize - (taps / 2) as isize, n, d)).collect())
            .collect();
        let mut dw = vec![0.0f32; h * taps];
        for (i, p) in per_plane.iter().enumerate().take(b * h) {
            let head = i % h;
            for (acc, x) in dw[head * taps..(head + 1) * taps].iter_mut().zip(p) {
                *acc += x;
            }
        }
        FlexTensor::from_data(TensorData::new(dw, [h, 1, taps, 1]))
    }
}

impl<B: SeqConvBackend, C: CheckpointStrategy> SeqConvBackend for Autodiff<B, C> {
    fn kiln_seq_conv(v: FloatTensor<Self>, w: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct SeqConvBackward;

        impl<B: SeqConvBackend> Backward<B, 2> for SeqConvBackward {
            type State = (FloatTensor<B>, FloatTensor<B>);

            fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
                let [node_v, node_w] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (v, w) = ops.state;
                let taps = w.shape().dims::<4>()[2];
                if let Some(node) = node_w {
                    grads.register::<B>(node.id, B::kiln_seq_conv_weight_grad(v, grad.clone(), taps));
                }
                if let Some(node) = node_v {
                    grads.register::<B>(node.id, B::kiln_seq_conv(grad, B::float_flip(w, &[2])));
                }
            }
        }

        match SeqConvBackward.prepare::<C>([v.node(), w.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (v, w) = (v.into_primitive(), w.into_primitive());
                let out = B::kiln_seq_conv(v.clone(), w.clone());
                prep.finish((v, w), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::kiln_seq_conv(v.into_primitive(), w.into_primitive())),
        }
    }
}

crate::avx512_dispatch! {
    /// One `[n, d]` plane of the convolution, `o += Σₜ kernel[t] · v shifted by t − taps/2 rows`.
    fn conv_plane(o: &mut [f32], v: &[f32], kernel: &[f32], n: usize, d: usize) => conv_plane_portable
}

#[inline(always)]
fn conv_plane_portable(o: &mut [f32], v: &[f32], kernel: &[f32], n: usize, d: usize) {
    let pad = (kernel.len() / 2) as isize;
    for (i, row) in o.chunks_exact_mut(d).enumerate() {
        for (t, &w) in kernel.iter().enumerate() {
            let src = i as isize + t as isize - pad;
            if src < 0 || src >= n as isize {
                continue;
            }
            let src = &v[src as usize * d..(src as usize + 1) * d];
            for (o, &x) in row.iter_mut().zip(src) {
                *o += w * x;
            }
        }
    }
}

/// `Σ_{i, c} g[i, c] · v[i + shift, c]` over the rows where both exist, in 16 lanes.
fn shifted_dot(g: &[f32], v: &[f32], shift: isize, n: usize, d: usize) -> f32 {
    let first = (-shift).max(0) as usize;
    let last = (n as isize - shift).clamp(0, n as isize) as usize;
    if first >= last {
        return 0.0;
    }
    let g = &g[first * d..last * d];
    let v = &v[(first as isize + shift) as usize * d..(last as isize + shift) as usize * d];
    dot(g, v)
}

crate::avx512_dispatch! {
    /// [`dot_portable`], AVX-512 where the CPU has it.
    fn dot(a: &[f32], b: &[f32]) -> f32 => dot_portable
}

/// `Σ aᵢ bᵢ` in 16 partial sums, an order the compiler vectorises.
#[inline(always)]
pub(crate) fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    const LANES: usize = 16;
    let mut lanes = [0.0f32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f32 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for ((l, &x), &y) in lanes.iter_mut().zip(x).zip(y) {
            *l += x * y;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// The depthwise sequence convolution through [`SeqConvBackend`]; call on flex with an odd number
/// of taps only ([`crate::seq_conv`] chooses).
///
/// # Shapes
///
/// - `v`: `[b, h, n, d]`, `w`: `[h, 1, taps, 1]` → `[b, h, n, d]`
pub(crate) fn seq_conv(v: Tensor<4>, w: Tensor<4>) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as SeqConvBackend>::kiln_seq_conv(v.into_dispatch(), w.into_dispatch()))
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::testing::*;
    use burn::tensor::module::conv2d;
    use burn::tensor::ops::ConvOptions;

    /// The extension equals Burn's `conv2d` in output and in the gradients of the values and the
    /// kernels, for sequences shorter and longer than the kernel, and in inference.
    #[test]
    fn seq_conv_equals_burns_depthwise_conv2d_with_gradients() {
        let device = dev().autodiff();
        for ([b, h, n, d], taps) in [([2, 3, 40, 8], 5), ([1, 2, 7, 20], 9), ([2, 2, 50, 64], 33)] {
            let run = |fused: bool| {
                let v = randn([b, h, n, d], 1.0, 1, &device).require_grad();
                let w = randn([h, 1, taps, 1], 0.5, 2, &device).require_grad();
                let upstream = randn([b, h, n, d], 1.0, 3, &device);
                let out = if fused {
                    seq_conv(v.clone(), w.clone())
                } else {
                    conv2d(v.clone(), w.clone(), None, ConvOptions::new([1, 1], [taps / 2, 0], [1, 1], h))
                };
                let grads = (out.clone() * upstream).sum().backward();
                [to_vec(out), to_vec(v.grad(&grads).unwrap()), to_vec(w.grad(&grads).unwrap())]
            };
            let (got, want) = (run(true), run(false));
            for (i, name) in ["output", "dv", "dw"].iter().enumerate() {
                let (g, w) = (&got[i], &want[i]);
                assert!(max_abs_diff(g, w) < 1e-4 * (1.0 + w.iter().fold(0f32, |a, x| a.max(x.abs()))), "{name}");
            }
            assert!(got[2].iter().all(|g| g.abs() > 1e-3), "every tap gets a gradient");
            let v = randn([b, h, n, d], 1.0, 1, &dev());
            let w = randn([h, 1, taps, 1], 0.5, 2, &dev());
            let plain = conv2d(v.clone(), w.clone(), None, ConvOptions::new([1, 1], [taps / 2, 0], [1, 1], h));
            assert!(max_abs_diff(&to_vec(seq_conv(v.clone(), w)), &to_vec(plain)) < 1e-5);
            // flex's host weight gradient equals the one from backend ops.
            let g = randn([b, h, n, d], 1.0, 4, &dev());
            let prim = |t: Tensor<4>| t.try_into_primitive::<Flex>().expect("a flex tensor");
            let host = Flex::kiln_seq_conv_weight_grad(prim(v.clone()), prim(g.clone()), taps);
            let ops = weight_grad_by_backend_ops::<Flex>(prim(v), prim(g), taps);
            let (host, ops) = (Tensor::<4>::from_primitive::<Flex>(host), Tensor::<4>::from_primitive::<Flex>(ops));
            assert_eq!(host.dims(), [h, 1, taps, 1]);
            assert!(max_abs_diff(&to_vec(host), &to_vec(ops)) < 1e-3);
        }
    }
}
