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
use burn::nn::Linear;
use burn::prelude::*;
use burn::tensor::{Bytes, DType};

/// The product of two matrices as a backend operation.
#[backend_extension(Flex, Autodiff)]
pub trait MatmulBackend: Backend {
    /// `lhs [m, k] × rhs [k, n] → [m, n]`; the default is the backend's own `matmul`.
    fn kiln_matmul(lhs: FloatTensor<Self>, rhs: FloatTensor<Self>) -> FloatTensor<Self> {
        Self::float_matmul(lhs, rhs)
    }
}

/// flex: the GEMM into an aligned, uninitialised buffer (f32 matrices whose product has a multiple
/// of 4 elements; anything else goes to flex's own `matmul`).
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
                if let Some(node) = node_lhs {
                    grads.register::<B>(node.id, B::kiln_matmul(grad.clone(), B::float_swap_dims(rhs, 0, 1)));
                }
                if let Some(node) = node_rhs {
                    grads.register::<B>(node.id, B::kiln_matmul(B::float_swap_dims(lhs, 0, 1), grad));
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

/// `lhs × rhs` for 2-D f32 operands of any strides, through the GEMM flex calls, into a buffer of
/// [`Aligned`] blocks; other cases to flex's `matmul`.
fn aligned_matmul(lhs: FlexTensor, rhs: FlexTensor) -> FlexTensor {
    let (ls, rs) = (lhs.shape(), rhs.shape());
    let f32s = lhs.dtype() == DType::F32 && rhs.dtype() == DType::F32;
    if !f32s || ls.num_dims() != 2 || rs.num_dims() != 2 {
        return Flex::float_matmul(lhs, rhs);
    }
    let (m, k, n) = (ls[0], ls[1], rs[1]);
    let len = m * n;
    if len == 0 || k == 0 || !len.is_multiple_of(4) || rs[0] != k {
        return Flex::float_matmul(lhs, rhs);
    }
    let strides = |t: &FlexTensor| (t.layout().strides()[0], t.layout().strides()[1]);
    let ((l_rs, l_cs), (r_rs, r_cs)) = (strides(&lhs), strides(&rhs));
    // SAFETY: `start_offset` is inside each tensor's storage, and the strides address only its elements.
    let (l_ptr, r_ptr) = unsafe {
        (
            lhs.storage::<f32>().as_ptr().add(lhs.layout().start_offset()),
            rhs.storage::<f32>().as_ptr().add(rhs.layout().start_offset()),
        )
    };
    let parallelism = if m.saturating_mul(n).saturating_mul(k) >= PARALLEL_THRESHOLD {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    let mut out: Vec<Aligned> = Vec::with_capacity(len / 4);
    // SAFETY: the output holds `m·n` f32 values in rows of `n`; with `read_dst = false` the GEMM
    // writes every one of them without reading any, so all are initialised before `set_len`.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr().cast::<f32>(),
            1,
            n as isize,
            false,
            l_ptr,
            l_cs,
            l_rs,
            r_ptr,
            r_cs,
            r_rs,
            0.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
        out.set_len(len / 4);
    }
    FlexTensor::new(Bytes::from_elems(out), Layout::contiguous(Shape::new([m, n])), DType::F32)
}

/// `x W + b` of a linear layer on rows through [`MatmulBackend`]; call on flex (f32) only
/// (`feed_forward::linear_2d` chooses).
///
/// # Shapes
///
/// - `x`: `[rows, d_in]` → `[rows, d_out]`
pub(crate) fn linear_flex(linear: &Linear, x: Tensor<2>) -> Tensor<2> {
    let w = linear.weight.val();
    let y = Tensor::from_dispatch(<Dispatch as MatmulBackend>::kiln_matmul(x.into_dispatch(), w.into_dispatch()));
    match &linear.bias {
        Some(b) => y + b.val().unsqueeze_dim(0),
        None => y,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::*;
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
    }

    /// A linear layer through [`linear_flex`] equals `Linear::forward`, output and the gradients of
    /// the input, weight and bias, to the bit.
    #[test]
    fn linear_2d_equals_burns_linear_with_gradients() {
        let device = dev().autodiff();
        let linear = LinearConfig::new(12, 8).init(&device);
        let x = randn([10, 12], 1.0, 1, &device);
        let upstream = randn([10, 8], 1.0, 2, &device);
        let run = |ours: bool| {
            let x = x.clone().require_grad();
            let y = if ours { linear_flex(&linear, x.clone()) } else { linear.forward(x.clone()) };
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
