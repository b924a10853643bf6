//! Softmax along the last dimension as a Burn backend extension with host loops on flex: one pass
//! over each row forward (maximum, exponentials and sum, normalisation) and one backward,
//!
//! ```text
//! y = softmax(x),   dx = y ⊙ (dy − rowsum(dy ⊙ y))
//! ```
//!
//! split over Rayon's threads. Burn's `softmax` is five backend ops (max, subtract, exp, sum,
//! divide), each a pass over memory on one thread with a scalar `expf` per element on flex, and its
//! autodiff backward differentiates each of them; Nyström attention takes three softmaxes of `[n, m]`,
//! `[m, m]` and `[m, n]` per head, which were most of its single-threaded time at n = 4,096
//! (docs/benchmarks.md).

use burn::backend::TensorMetadata;
use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension};
use burn::prelude::*;
use rayon::prelude::*;

use crate::elementwise::exp_non_positive;
use crate::host::{host_in_place, row_task_len};

/// The backend operations on a float tensor of any rank, along its last dimension.
#[backend_extension(Flex, Autodiff)]
pub trait RowSoftmaxBackend: Backend {
    /// `softmax(x)` along the last dimension; the default is built from backend ops.
    fn kiln_row_softmax(x: FloatTensor<Self>) -> FloatTensor<Self> {
        softmax_by_backend_ops::<Self>(x)
    }

    /// The input gradient `y ⊙ (dy − rowsum(dy ⊙ y))` from the output `y` and its gradient `dy`; the
    /// default is built from backend ops.
    fn kiln_row_softmax_grad(y: FloatTensor<Self>, dy: FloatTensor<Self>) -> FloatTensor<Self> {
        grad_by_backend_ops::<Self>(y, dy)
    }
}

/// [`RowSoftmaxBackend::kiln_row_softmax`] from backend ops (the default, and the reference for
/// flex's host loop).
fn softmax_by_backend_ops<B: Backend>(x: FloatTensor<B>) -> FloatTensor<B> {
    let last = x.shape().num_dims() - 1;
    let max = B::float_max_dim(x.clone(), last);
    let e = B::float_exp(B::float_sub(x, max));
    let sum = B::float_sum_dim(e.clone(), last);
    B::float_div(e, sum)
}

/// [`RowSoftmaxBackend::kiln_row_softmax_grad`] from backend ops (the default, and the reference for
/// flex's host loop).
fn grad_by_backend_ops<B: Backend>(y: FloatTensor<B>, dy: FloatTensor<B>) -> FloatTensor<B> {
    let last = y.shape().num_dims() - 1;
    let dot = B::float_sum_dim(B::float_mul(dy.clone(), y.clone()), last);
    B::float_mul(y, B::float_sub(dy, dot))
}

/// flex: one host pass per row each way, rows grouped into tasks of about `HOST_CHUNK` elements.
impl RowSoftmaxBackend for Flex {
    fn kiln_row_softmax(x: FloatTensor<Self>) -> FloatTensor<Self> {
        let shape = x.shape();
        let m = shape.as_slice().last().copied().unwrap_or(1).max(1);
        host_in_place(x, |values| {
            values.par_chunks_mut(row_task_len(m)).for_each(|rows| {
                normalise_rows(rows, m);
            })
        })
        .0
    }

    fn kiln_row_softmax_grad(y: FloatTensor<Self>, dy: FloatTensor<Self>) -> FloatTensor<Self> {
        let shape = y.shape();
        let m = shape.as_slice().last().copied().unwrap_or(1).max(1);
        let y = y.to_contiguous();
        let y = y.as_slice::<f32>().expect("f32 probabilities");
        let len = row_task_len(m);
        host_in_place(dy, |values| {
            values.par_chunks_mut(len).zip(y.par_chunks(len)).for_each(|(g, y)| {
                grad_rows(g, y, m);
            })
        })
        .0
    }
}

impl<B: RowSoftmaxBackend, C: CheckpointStrategy> RowSoftmaxBackend for Autodiff<B, C> {
    fn kiln_row_softmax(x: FloatTensor<Self>) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct RowSoftmaxBackward;

        impl<B: RowSoftmaxBackend> Backward<B, 1> for RowSoftmaxBackward {
            type State = FloatTensor<B>;

            fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
                let [node] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                if let Some(node) = node {
                    grads.register::<B>(node.id, B::kiln_row_softmax_grad(ops.state, grad));
                }
            }
        }

        match RowSoftmaxBackward.prepare::<C>([x.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let y = B::kiln_row_softmax(x.into_primitive());
                prep.finish(y.clone(), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::kiln_row_softmax(x.into_primitive())),
        }
    }
}

crate::avx512_dispatch! {
    /// [`softmax_in_place`] on each row of `m` elements.
    fn normalise_rows(rows: &mut [f32], m: usize) => normalise_rows_portable
}

#[inline(always)]
fn normalise_rows_portable(rows: &mut [f32], m: usize) {
    rows.chunks_exact_mut(m).for_each(|x| softmax_in_place(x, 1.0));
}

crate::avx512_dispatch! {
    /// `g ← y ⊙ (g − g·y)` on each row of `m` elements.
    fn grad_rows(g: &mut [f32], y: &[f32], m: usize) => grad_rows_portable
}

#[inline(always)]
fn grad_rows_portable(g: &mut [f32], y: &[f32], m: usize) {
    for (g, y) in g.chunks_exact_mut(m).zip(y.chunks_exact(m)) {
        let dot = crate::seq_conv::dot_portable(g, y);
        for (g, &y) in g.iter_mut().zip(y) {
            *g = y * (*g - dot);
        }
    }
}

const LANES: usize = 16;

/// `x ← softmax(scale · x)` on one row, in place, for `scale > 0`: lane-wise maximum and sum (16
/// partial results) so that the loops vectorise, `exp` without calls, `scale` applied inside the
/// exponential (`exp(scale · (x − max x))`, no pass of its own). A row whose maximum is `−∞` (every
/// entry masked) becomes zeros, Burn's rule for a fully masked attention row.
#[inline(always)]
pub(crate) fn softmax_in_place(x: &mut [f32], scale: f32) {
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for c in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = if v > *l { v } else { *l };
        }
    }
    let max = chunks.remainder().iter().chain(&lanes).fold(f32::NEG_INFINITY, |a, &v| if v > a { v } else { a });
    if max == f32::NEG_INFINITY {
        x.fill(0.0);
        return;
    }
    let mut sums = [0.0f32; LANES];
    let mut chunks = x.chunks_exact_mut(LANES);
    for c in &mut chunks {
        for (s, v) in sums.iter_mut().zip(c.iter_mut()) {
            *v = exp_non_positive(scale * (*v - max));
            *s += *v;
        }
    }
    let mut sum: f32 = sums.iter().sum();
    for v in chunks.into_remainder() {
        *v = exp_non_positive(scale * (*v - max));
        sum += *v;
    }
    let inv = 1.0 / sum;
    x.iter_mut().for_each(|v| *v *= inv);
}

/// Softmax along the last dimension through [`RowSoftmaxBackend`]; call on flex (f32) only
/// ([`crate::softmax_rows`] chooses).
///
/// # Shapes
///
/// - `x`: any → same
pub(crate) fn row_softmax<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    Tensor::from_dispatch(<Dispatch as RowSoftmaxBackend>::kiln_row_softmax(x.into_dispatch()))
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::testing::*;
    use burn::tensor::activation::softmax;

    /// Output and input gradient equal Burn's `softmax` on rows shorter than, equal to and longer
    /// than the 16 lanes, with large and very negative entries (the `-1e9` masks of Nyström), in
    /// training and inference; the backend-op defaults (other backends) agree with flex's loops.
    #[test]
    fn row_softmax_equals_burns_softmax_with_gradient() {
        let device = dev().autodiff();
        for (dims, shift) in [([2, 3, 5, 7], 0.0), ([1, 2, 9, 16], 30.0), ([2, 2, 33, 70], -1e9)] {
            let run = |host: bool| {
                let mut x = randn(dims, 3.0, 1, &device);
                if shift != 0.0 {
                    // Every third entry shifted: masked (-1e9) or dominating (+30) entries in each row.
                    let mask = randn(dims, 1.0, 5, &device).greater_elem(0.4);
                    x = x.mask_fill(mask, shift);
                }
                let x = x.require_grad();
                let upstream = randn(dims, 1.0, 3, &device);
                let y = if host { row_softmax(x.clone()) } else { softmax(x.clone(), 3) };
                let grads = (y.clone() * upstream).sum().backward();
                [to_vec(y), to_vec(x.grad(&grads).unwrap())]
            };
            let (got, want) = (run(true), run(false));
            assert!(max_abs_diff(&got[0], &want[0]) < 1e-6, "output");
            assert!(max_abs_diff(&got[1], &want[1]) < 1e-5, "gradient");
            assert!(want[1].iter().any(|g| g.abs() > 1e-2), "a gradient to compare");
            let x = randn(dims, 3.0, 1, &dev());
            assert!(max_abs_diff(&to_vec(row_softmax(x.clone())), &to_vec(softmax(x.clone(), 3))) < 1e-6);
            let prim = |t: Tensor<4>| t.try_into_primitive::<Flex>().expect("a flex tensor");
            let back = |t: burn::backend::flex::FlexTensor| to_vec(Tensor::<4>::from_primitive::<Flex>(t));
            assert!(
                max_abs_diff(
                    &back(Flex::kiln_row_softmax(prim(x.clone()))),
                    &back(softmax_by_backend_ops::<Flex>(prim(x.clone())))
                ) < 1e-6
            );
            let (y, dy) = (softmax(x, 3), randn(dims, 1.0, 4, &dev()));
            let host = Flex::kiln_row_softmax_grad(prim(y.clone()), prim(dy.clone()));
            assert!(max_abs_diff(&back(host), &back(grad_by_backend_ops::<Flex>(prim(y), prim(dy)))) < 1e-6);
        }
    }
}
