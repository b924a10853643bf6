//! The product of a linear layer, `x W`, written by the GEMM straight into the output tensor's
//! buffer on flex.
//!
//! flex allocates every matmul output as a zero-filled `Vec<u8>` and hands it to `Bytes`, which
//! checks the vector's *declared* alignment (1) against the 16 bytes flex wants and so always
//! re-allocates and copies it (burn-flex 0.22.1 `FlexTensor::empty`, cubecl-environment
//! `Bytes::from_bytes_vec`; docs/benchmarks.md, Burn limits item 1): 10.6% of the language model's
//! training step in `memmove` (`perf`, 2026-12-01). Here the output is a vector of 16-byte-aligned
//! blocks, which `Bytes` keeps as it is, left uninitialised until the GEMM writes it; the GEMM call
//! itself is flex's (the same `gemm` crate and arguments), so the values are the same to the bit.
//! In training the backward pass's two products (`dy Wᵀ`, `xᵀ dy`) go the same way.

use burn::backend::TensorMetadata;
use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::ops::FloatTensorOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension};
use burn::prelude::*;
use burn::tensor::{Bytes, DType};
use rayon::prelude::*;
use std::mem::MaybeUninit;

/// The product of two matrices as a backend operation.
#[backend_extension(Flex, Autodiff)]
pub trait MatmulBackend: Backend {
    /// `lhs [.., m, k] × rhs [.., k, n] → [.., m, n]`; the default is the backend's own `matmul`.
    fn kiln_matmul(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_matmul(lhs, rhs)
    }
}

/// flex: the GEMM into an aligned, uninitialised buffer (f32 operands with the same batch
/// dimensions whose product has a multiple of 4 elements; anything else goes to flex's `matmul`).
impl MatmulBackend for Flex {
    fn kiln_matmul(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        aligned_matmul(lhs, rhs)
    }
}

impl<B: MatmulBackend, C: CheckpointStrategy> MatmulBackend for Autodiff<B, C> {
    fn kiln_matmul(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct MatmulBackward;

        impl<B: MatmulBackend> Backward<B, 2> for MatmulBackward {
            /// Both operands.
            type State = (FloatTensor<B>, FloatTensor<B>);

            fn backward(self, ops: Ops<Self::State, 2>, grads: &mut Gradients, _: &mut Checkpointer) {
                let [node_lhs, node_rhs] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (lhs, rhs) = ops.state;
                // The transposes of the last two dimensions (views; the GEMM reads any strides).
                let rank = lhs.shape().num_dims();
                let t = |x: FloatTensor<B>| B::float_swap_dims(x, rank - 2, rank - 1);
                if let Some(node) = node_lhs {
                    grads.register::<B>(node.id, B::kiln_matmul(grad.clone(), t(rhs)));
                }
                if let Some(node) = node_rhs {
                    grads.register::<B>(node.id, B::kiln_matmul(t(lhs), grad));
                }
            }
        }

        match MatmulBackward.prepare::<C>([lhs.node(), rhs.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (lhs, rhs) = (lhs.into_primitive(), rhs.into_primitive());
                let y = B::kiln_matmul(lhs.clone(), rhs.clone());
                prep.finish((lhs, rhs), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::kiln_matmul(lhs.into_primitive(), rhs.into_primitive())),
        }
    }
}

/// Four f32 values with flex's 16-byte alignment: a vector of these is a buffer `Bytes` keeps.
#[derive(Clone, Copy)]
#[repr(C, align(16))]
struct Aligned([f32; 4]);

// SAFETY: four f32 values fill the 16 bytes; there is no padding.
unsafe impl bytemuck::NoUninit for Aligned {}

/// Products at least this large (`m·n·k`) run on Rayon's threads: flex's threshold.
const PARALLEL_THRESHOLD: usize = 192 * 192 * 192;

/// Batched products at least this large in all run one matrix per task: flex's threshold.
const BATCH_PARALLEL_THRESHOLD: usize = 128 * 128 * 128;

/// `lhs [.., m, k] × rhs [.., k, n]` for f32 operands of any strides and the same batch dimensions,
/// through the GEMM flex calls with flex's choice of threads, into a buffer of [`Aligned`] blocks;
/// other cases (broadcast batches, a product whose size is not a multiple of 4) to flex's `matmul`.
fn aligned_matmul(lhs: FlexTensor, rhs: FlexTensor) -> FlexTensor {
    let (ls, rs) = (lhs.shape(), rhs.shape());
    let rank = ls.num_dims();
    let f32s = lhs.dtype() == DType::F32 && rhs.dtype() == DType::F32;
    if !f32s || rank < 2 || rs.num_dims() != rank || ls[..rank - 2] != rs[..rank - 2] {
        return Flex::float_matmul(lhs, rhs);
    }
    let (m, k, n) = (ls[rank - 2], ls[rank - 1], rs[rank - 1]);
    let batch: usize = ls[..rank - 2].iter().product();
    let len = batch * m * n;
    if len == 0 || k == 0 || !len.is_multiple_of(4) || rs[rank - 2] != k {
        return Flex::float_matmul(lhs, rhs);
    }
    let (l_strides, r_strides) = (lhs.layout().strides(), rhs.layout().strides());
    // The element offset of batch `i` (row-major over the batch dimensions) in each operand.
    let offsets = |strides: &[isize], start: usize| -> Vec<isize> {
        (0..batch)
            .map(|mut i| {
                let mut off = start as isize;
                for d in (0..rank - 2).rev() {
                    off += (i % ls[d]) as isize * strides[d];
                    i /= ls[d];
                }
                off
            })
            .collect()
    };
    let (l_off, r_off) =
        (offsets(l_strides, lhs.layout().start_offset()), offsets(r_strides, rhs.layout().start_offset()));
    let (l_rs, l_cs) = (l_strides[rank - 2], l_strides[rank - 1]);
    let (r_rs, r_cs) = (r_strides[rank - 2], r_strides[rank - 1]);
    let (l_data, r_data) = (lhs.storage::<f32>(), rhs.storage::<f32>());
    let one = |out: *mut f32, i: usize, parallelism: gemm::Parallelism| {
        // SAFETY: `out` has room for one `m × n` matrix in rows of `n`; the offsets and strides
        // address elements of each operand's storage; with `read_dst = false` the GEMM writes every
        // output element without reading any.
        unsafe {
            gemm::gemm(
                m,
                n,
                k,
                out,
                1,
                n as isize,
                false,
                l_data.as_ptr().offset(l_off[i]),
                l_cs,
                l_rs,
                r_data.as_ptr().offset(r_off[i]),
                r_cs,
                r_rs,
                0.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
        }
    };
    let mut out: Vec<Aligned> = Vec::with_capacity(len / 4);
    let matrix = m * n;
    let per_matrix = m.saturating_mul(n).saturating_mul(k);
    let total = batch.saturating_mul(per_matrix);
    let batch_parallel = batch >= 4 && total >= BATCH_PARALLEL_THRESHOLD;
    {
        // The spare capacity as `len` f32 slots, written only through the GEMM's pointer.
        let slots = out.spare_capacity_mut().as_mut_ptr().cast::<MaybeUninit<f32>>();
        // SAFETY: the capacity holds `len / 4` blocks of four f32 slots.
        let slots = unsafe { std::slice::from_raw_parts_mut(slots, len) };
        if per_matrix >= PARALLEL_THRESHOLD && !batch_parallel {
            for (i, c) in slots.chunks_mut(matrix).enumerate() {
                one(c.as_mut_ptr().cast(), i, gemm::Parallelism::Rayon(0));
            }
        } else if total >= BATCH_PARALLEL_THRESHOLD && batch > 1 {
            slots
                .par_chunks_mut(matrix)
                .enumerate()
                .for_each(|(i, c)| one(c.as_mut_ptr().cast(), i, gemm::Parallelism::None));
        } else {
            for (i, c) in slots.chunks_mut(matrix).enumerate() {
                one(c.as_mut_ptr().cast(), i, gemm::Parallelism::None);
            }
        }
    }
    // SAFETY: every one of the `batch` matrices, together all `len` slots, was written above.
    unsafe { out.set_len(len / 4) };
    let mut dims = ls.as_slice().to_vec();
    dims[rank - 1] = n;
    FlexTensor::new(Bytes::from_elems(out), Layout::contiguous(Shape::from(dims)), DType::F32)
}

/// `a × b` through [`MatmulBackend`]; call on flex (f32, the same batch dimensions) only
/// ([`crate::matmul`] chooses).
pub(crate) fn matmul_flex<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as MatmulBackend>::kiln_matmul(a.into_dispatch(), b.into_dispatch()))
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::testing::*;
    use burn::nn::LinearConfig;

    /// The products equal flex's `matmul` to the bit: plain, transposed (strided) and narrowed
    /// operands, a product with Rayon's threads, and the fallbacks (a size not a multiple of 4, a
    /// 3-D operand); the output keeps its aligned buffer (no copy).
    #[test]
    fn aligned_products_equal_flexs_matmul() {
        let device = dev();
        let prim = |t: Tensor<2>| t.try_into_primitive::<Flex>().expect("a flex tensor");
        let vals = |t: FlexTensor| to_vec(Tensor::<2>::from_primitive::<Flex>(t));
        let cases: Vec<(Tensor<2>, Tensor<2>)> = vec![
            (randn([8, 5], 1.0, 1, &device), randn([5, 12], 1.0, 2, &device)),
            (randn([9, 7], 1.0, 3, &device).transpose(), randn([9, 4], 1.0, 4, &device)),
            (randn([6, 20], 1.0, 5, &device).narrow(1, 3, 11), randn([12, 11], 1.0, 6, &device).transpose()),
            (randn([256, 200], 1.0, 7, &device), randn([200, 260], 1.0, 8, &device)),
            (randn([3, 5], 1.0, 9, &device), randn([5, 3], 1.0, 10, &device)),
        ];
        for (i, (a, b)) in cases.into_iter().enumerate() {
            let want = vals(Flex::float_matmul(prim(a.clone()), prim(b.clone())));
            let got = aligned_matmul(prim(a), prim(b));
            if i < 4 {
                assert_eq!(got.bytes().as_ptr() as usize % 16, 0, "case {i}: aligned");
            }
            assert_eq!(vals(got), want, "case {i}");
        }
        // Batched, as attention's blocks: one thread per product, a task per matrix, threads within
        // each large matrix; a head-split (strided) operand and a transposed one.
        let prim4 = |t: Tensor<4>| t.try_into_primitive::<Flex>().expect("a flex tensor");
        let vals4 = |t: FlexTensor| to_vec(Tensor::<4>::from_primitive::<Flex>(t));
        let batched: Vec<(Tensor<4>, Tensor<4>)> = vec![
            (randn([2, 3, 4, 5], 1.0, 11, &device), randn([2, 3, 5, 6], 1.0, 12, &device)),
            (
                randn([2, 8, 3, 16], 1.0, 13, &device).swap_dims(1, 2),
                randn([2, 3, 8, 16], 1.0, 14, &device).swap_dims(2, 3),
            ),
            (randn([1, 8, 64, 64], 1.0, 15, &device), randn([1, 8, 64, 64], 1.0, 16, &device)),
            (randn([1, 2, 200, 200], 1.0, 17, &device), randn([1, 2, 200, 196], 1.0, 18, &device)),
        ];
        for (i, (a, b)) in batched.into_iter().enumerate() {
            let want = vals4(Flex::float_matmul(prim4(a.clone()), prim4(b.clone())));
            let got = aligned_matmul(prim4(a), prim4(b));
            assert_eq!(got.bytes().as_ptr() as usize % 16, 0, "batched case {i}: aligned");
            assert_eq!(vals4(got), want, "batched case {i}");
        }
    }

    /// Batched products under autodiff equal Burn's `matmul`, output and both gradients, to the bit,
    /// with a head-split (strided) and a transposed operand, as linear attention and Nyström use them.
    #[test]
    fn batched_products_equal_burns_matmul_with_gradients() {
        let device = dev().autodiff();
        let a0 = randn([2, 6, 3, 8], 1.0, 1, &device);
        let b0 = randn([2, 3, 6, 8], 1.0, 2, &device);
        let upstream = randn([2, 3, 6, 6], 1.0, 3, &device);
        let run = |ours: bool| {
            let (a, b) = (a0.clone().require_grad(), b0.clone().require_grad());
            let (x, y) = (a.clone().swap_dims(1, 2), b.clone().swap_dims(2, 3)); // [2, 3, 6, 8] × [2, 3, 8, 6]
            let out = if ours { matmul_flex(x, y) } else { x.matmul(y) };
            let grads = (out.clone() * upstream.clone()).sum().backward();
            [to_vec(out), to_vec(a.grad(&grads).unwrap()), to_vec(b.grad(&grads).unwrap())]
        };
        assert_eq!(run(true), run(false));
    }

    /// A linear layer through [`crate::linear`] equals `Linear::forward`, output and the gradients of
    /// the input, weight and bias, to the bit.
    #[test]
    fn linear_2d_equals_burns_linear_with_gradients() {
        let device = dev().autodiff();
        let linear = LinearConfig::new(12, 8).init(&device);
        let x = randn([10, 12], 1.0, 1, &device);
        let upstream = randn([10, 8], 1.0, 2, &device);
        let run = |ours: bool| {
            let x = x.clone().require_grad();
            let bias = linear.bias.as_ref().map(|b| b.val());
            let y = if ours { crate::linear(x.clone(), linear.weight.val(), bias) } else { linear.forward(x.clone()) };
            let grads = (y.clone() * upstream.clone()).sum().backward();
            let w = linear.weight.grad(&grads).unwrap();
            let b = linear.bias.as_ref().unwrap().grad(&grads).unwrap();
            [to_vec(y), to_vec(x.grad(&grads).unwrap()), to_vec(w), b.into_data().try_to_vec::<f32>().unwrap()]
        };
        let (got, want) = (run(true), run(false));
        for (what, (g, w)) in
            ["output", "input gradient", "weight gradient", "bias gradient"].iter().zip(got.iter().zip(&want))
        {
            assert_eq!(g, w, "{what}");
        }
    }
}
