//! Exact softmax attention on flex, in inference and with its own backward pass in training (a
//! Burn backend extension, `#[backend_extension]`).
//!
//! Burn's autodiff runs attention as its unfused fallback graph (matmul, mask, max, subtract, exp,
//! sum, divide, matmul), keeps the `[b, h, n, m]` score and probability matrices of every layer
//! until the backward pass, and differentiates each of those ops on its own: softmax
//! forward+backward at n = 4,096 needed 2.7 GB and 0.27× PyTorch's time (docs/benchmarks.md). Here the
//! forward pass runs over blocks (`O = softmax(s·Q Kᵀ + mask) V` per block: two GEMMs and a host
//! softmax; faster than flex's attention kernel, whose per-element `expf` is scalar, in inference
//! too: 550–580 → 285–302 ms at n = 4,096) and the backward pass is the FlashAttention recurrence
//! (Dao et al. 2022, arXiv:2205.14135, Alg. 4) over blocks: for each block, recompute
//! `P = softmax(s·Q Kᵀ + mask)`, then
//!
//! ```text
//! dV += Pᵀ dO,   dP = dO Vᵀ,   dS = P ⊙ (dP − rowsum(dO ⊙ O)),   dQ = s·dS K,   dK += s·dSᵀ Q
//! ```
//!
//! so that the backward pass holds one block of `P` at a time (memory linear in `n` beyond the
//! block) and the saved state is `Q, K, V, O` and the padding mask — and `P` itself when all of it
//! fits in one block (`keeps_probs`), which the backward pass then uses instead of recomputing
//! it. The block operations are Burn backend ops on the inner backend (no autodiff graph inside).
//!
//! A block is a group of heads ([`head_groups`]: whole sequences, or heads of one sequence) and,
//! where one head's scores exceed the budget, a run of that head's query rows ([`row_blocks`]).
//! Blocks across all heads of a long sequence would be a few rows each, and each of their GEMMs
//! packs `K` and `V` of every head again: at n = 4,096 (8 heads) blocks of 64 rows spent as long
//! packing as multiplying.

use burn::backend::TensorMetadata;
use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ops::AttentionModuleOptions;
use burn::backend::tensor::{BoolTensor, FloatTensor};
use burn::backend::{Backend, Dispatch, Flex, backend_extension};
use burn::prelude::*;
use burn::tensor::{Shape, Slice};
use rayon::prelude::*;

use crate::host::host_in_place;
use crate::matmul::MatmulBackend;

/// Bytes of one block of scores in the backward pass (the block's query rows follow from it): small
/// enough that a block's probabilities stay in the last-level cache between the steps that use them.
const BLOCK_BYTES: usize = 8 << 20;

/// Fewest query rows of one head per block, where one head's scores exceed [`BLOCK_BYTES`]: each
/// block's GEMMs pack that head's `K` and `V` again, and in the backward pass each block adds its
/// `[m, d]` share into dK and dV, so thin blocks of long sequences spend more on those than on the
/// block itself. One thread, n = 16,384 forward: 128-row blocks (8 MB) 9.9–10.1 s, 256 rows
/// 8.6–9.0 s, 512 rows 8.0 s, 1,024 rows 7.6 s; n = 8,192 forward+backward 6.96–7.12, 6.90–7.09,
/// 6.84–6.85 and 6.48–6.52 s. 512 rows: most of the gain at half the memory of 1,024
/// (a block of scores is `4 · 512 · m` bytes: 32 MiB at m = 16,384).
const MIN_BLOCK_ROWS: usize = 512;

/// The backend operation: attention over `[b, h, n, d]` queries and `[b, h, m, d]` keys and values,
/// with padded keys (`padding` `[b, m]`, `true` = pad) and, when `causal`, future keys masked.
#[backend_extension(Flex, Autodiff)]
pub trait FusedAttentionBackend: MatmulBackend {
    /// `softmax(Q Kᵀ/√d + mask) V`; the default is the backend's own `attention`.
    fn kiln_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        padding: BoolTensor<Self>,
        causal: bool,
    ) -> FloatTensor<Self> {
        backend_attention::<Self>(q, k, v, padding, causal)
    }

    /// A block of the backward pass: `P = softmax(scale·S + mask)` of raw scores `S = Q Kᵀ`
    /// `[b, h, r, m]` for the query rows `row0..row0 + r` of `n`; a row with every key masked gives
    /// zeros (Burn's rule).
    fn kiln_attention_probs(
        scores: FloatTensor<Self>,
        padding: BoolTensor<Self>,
        causal: bool,
        row0: usize,
        n: usize,
        scale: f32,
    ) -> FloatTensor<Self> {
        probs_by_backend_ops::<Self>(scores, padding, causal, row0, n, scale)
    }

    /// A block of the backward pass: `dS = scale · P ⊙ (dP − δ)` with `δ` `[b, h, r, 1]` broadcast
    /// along each row.
    fn kiln_attention_score_grad(
        probs: FloatTensor<Self>,
        grad_probs: FloatTensor<Self>,
        delta: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        score_grad_by_backend_ops::<Self>(probs, grad_probs, delta, scale)
    }
}

/// [`FusedAttentionBackend::kiln_attention`] by the backend's own `attention` (the default).
fn backend_attention<B: Backend>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    padding: BoolTensor<B>,
    causal: bool,
) -> FloatTensor<B> {
    let [b, h, n, _] = dims4(&q);
    let m = dims4(&k)[2];
    let mask = B::bool_expand(B::bool_reshape(padding, Shape::new([b, 1, 1, m])), Shape::new([b, h, n, m]));
    let options = AttentionModuleOptions { is_causal: causal, ..Default::default() };
    B::attention(q, k, v, Some(mask), None, options)
}

/// [`FusedAttentionBackend::kiln_attention_probs`] from backend ops (the default, and the reference
/// for flex's host loop).
fn probs_by_backend_ops<B: Backend>(
    scores: FloatTensor<B>,
    padding: BoolTensor<B>,
    causal: bool,
    row0: usize,
    n: usize,
    scale: f32,
) -> FloatTensor<B> {
    let [b, h, r, m] = dims4(&scores);
    let device = scores.device();
    let mut mask = B::bool_expand(B::bool_reshape(padding, Shape::new([b, 1, 1, m])), Shape::new([b, h, r, m]));
    if causal {
        let future: Vec<bool> = (row0..row0 + r).flat_map(|i| (0..m).map(move |j| in_future(i, j, n, m))).collect();
        let future = B::bool_from_data(TensorData::new(future, [1, 1, r, m]), &device);
        mask = B::bool_or(mask, B::bool_expand(future, Shape::new([b, h, r, m])));
    }
    let x = B::float_mask_fill(B::float_mul_scalar(scores, scale.into()), mask, f32::NEG_INFINITY.into());
    let max = B::float_clamp_min(B::float_max_dim(x.clone(), 3), f32::MIN.into());
    let e = B::float_exp(B::float_sub(x, max));
    let sum = B::float_clamp_min(B::float_sum_dim(e.clone(), 3), f32::MIN_POSITIVE.into());
    B::float_div(e, sum)
}

/// [`FusedAttentionBackend::kiln_attention_score_grad`] from backend ops (the default, and the
/// reference for flex's host loop).
fn score_grad_by_backend_ops<B: Backend>(
    probs: FloatTensor<B>,
    grad_probs: FloatTensor<B>,
    delta: FloatTensor<B>,
    scale: f32,
) -> FloatTensor<B> {
    B::float_mul_scalar(B::float_mul(probs, B::float_sub(grad_probs, delta)), scale.into())
}

/// A run of heads that the blockwise passes treat as one: heads `h0..h0 + nh` of the sequences
/// `b0..b0 + nb` (every head of whole sequences, or some heads of one sequence).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct HeadGroup {
    b0: usize,
    nb: usize,
    h0: usize,
    nh: usize,
}

impl HeadGroup {
    /// The rows `r0..r0 + r` of the group's heads in a `[b, h, n, width]` tensor.
    fn rows(&self, r0: usize, r: usize, width: usize) -> [Slice; 4] {
        let Self { b0, nb, h0, nh } = *self;
        [Slice::from(b0..b0 + nb), Slice::from(h0..h0 + nh), Slice::from(r0..r0 + r), Slice::from(0..width)]
    }
}

/// The groups of `b × h` heads whose `[n, m]` f32 score matrices together fit in `block_bytes`:
/// whole sequences where every head of one fits, else runs of heads of one sequence, else single
/// heads (whose query rows [`row_blocks`] then splits). A block of one head's rows is as large as
/// the budget allows, so each GEMM of a block packs `K` and `V` of one head for as many query rows as
/// possible (blocks of 64 rows across all 8 heads at n = 4,096 spent as long packing as multiplying).
fn head_groups(b: usize, h: usize, n: usize, m: usize, block_bytes: usize) -> Vec<HeadGroup> {
    let heads = (block_bytes / (4 * n * m).max(1)).max(1);
    if heads >= h {
        let nb = (heads / h.max(1)).clamp(1, b.max(1));
        (0..b).step_by(nb).map(|b0| HeadGroup { b0, nb: nb.min(b - b0), h0: 0, nh: h }).collect()
    } else {
        (0..b)
            .flat_map(|b0| (0..h).step_by(heads).map(move |h0| HeadGroup { b0, nb: 1, h0, nh: heads.min(h - h0) }))
            .collect()
    }
}

/// `(first row, rows)` of each block of query rows (of `n`) whose `[heads, rows, m]` f32 scores fit
/// in `block_bytes` (at least one row per block).
fn row_blocks(heads: usize, m: usize, n: usize, block_bytes: usize) -> impl Iterator<Item = (usize, usize)> {
    let rows = (block_bytes / (4 * heads * m).max(1)).clamp(1, n.max(1));
    (0..n).step_by(rows).map(move |r0| (r0, rows.min(n - r0)))
}

/// Runs `pass` on each group of heads and assembles its `K` outputs, `[b, h, rows, width]` of
/// `shapes` (the group's own where there is one group).
fn over_groups<B: Backend, const K: usize>(
    groups: &[HeadGroup],
    shapes: [[usize; 4]; K],
    device: &B::Device,
    dtype: burn::tensor::FloatDType,
    mut pass: impl FnMut(&HeadGroup) -> [FloatTensor<B>; K],
) -> [FloatTensor<B>; K] {
    if let [group] = groups {
        return pass(group);
    }
    // Written in place: each output is uniquely owned between the assignments.
    let mut out = shapes.map(|s| Some(B::float_empty(Shape::new(s), device, dtype)));
    for group in groups {
        for ((slot, part), [_, _, rows, width]) in out.iter_mut().zip(pass(group)).zip(shapes) {
            let whole = slot.take().expect("an output");
            *slot = Some(B::float_slice_assign(whole, &group.rows(0, rows, width), part));
        }
    }
    out.map(|t| t.expect("an output"))
}

/// Whether key `j` is in the future of query `i` (of `n` queries, `m` keys): `j > i + (m − n)`,
/// aligned at the bottom-right corner as Burn's causal mask.
fn in_future(i: usize, j: usize, n: usize, m: usize) -> bool {
    j as i64 > i as i64 + m as i64 - n as i64
}

/// flex: the forward pass blockwise ([`attention_forward_blocks`]: one layer of ListOps' shape,
/// batch 8 × 2 heads × 32 dims, forward+backward at n = 1,024 / 2,048 on one thread: 249–254 →
/// 175–186 ms and 956–1,053 → 829–986 ms against flex's own kernel); the block softmax and the
/// score gradient are one pass over each row on the host, split over Rayon's threads, instead of
/// eight and three separate backend ops.
impl FusedAttentionBackend for Flex {
    fn kiln_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        padding: BoolTensor<Self>,
        causal: bool,
    ) -> FloatTensor<Self> {
        let m = dims4(&k)[2];
        attention_forward_blocks::<Self>(q, k, v, padding, causal, BLOCK_BYTES.max(MIN_BLOCK_ROWS * 4 * m))
    }

    fn kiln_attention_probs(
        scores: FloatTensor<Self>,
        padding: BoolTensor<Self>,
        causal: bool,
        row0: usize,
        n: usize,
        scale: f32,
    ) -> FloatTensor<Self> {
        let [b, h, r, m] = dims4(&scores);
        let padding: Vec<bool> = padding.into_data().iter::<bool>().collect();
        // Each sequence's padding, `None` where it has none (its rows skip the masking pass).
        let padding: Vec<Option<&[bool]>> = padding.chunks(m.max(1)).map(|p| p.contains(&true).then_some(p)).collect();
        debug_assert_eq!(padding.len(), b);
        host_in_place(scores, |values| {
            values.par_chunks_mut(m.max(1)).enumerate().for_each(|(row, x)| {
                let (batch, i) = (row / (h * r), row0 + row % r);
                // Causal: keys j ≤ i + (m − n) are visible, a prefix of the row.
                let visible = if causal { (i + m + 1).saturating_sub(n).min(m) } else { m };
                softmax_row(x, padding[batch], visible, scale);
            })
        })
        .0
    }

    fn kiln_attention_score_grad(
        probs: FloatTensor<Self>,
        grad_probs: FloatTensor<Self>,
        delta: FloatTensor<Self>,
        scale: f32,
    ) -> FloatTensor<Self> {
        let shape = dims4(&probs);
        let m = shape[3].max(1);
        let probs = probs.to_contiguous();
        let delta = delta.to_contiguous();
        let (p, delta) =
            (probs.as_slice::<f32>().expect("f32 probabilities"), delta.as_slice::<f32>().expect("f32 row sums"));
        host_in_place(grad_probs, |values| {
            values.par_chunks_mut(m).zip(p.par_chunks(m)).zip(delta.par_iter()).for_each(|((g, p), &d)| {
                score_grad_row(g, p, d, scale);
            })
        })
        .0
    }
}

crate::avx512_dispatch! {
    /// One row of [`FusedAttentionBackend::kiln_attention_probs`] in place: keys with `padding` set or at
    /// or after `visible` are masked, then the row softmax of [`super::row_softmax`] with `scale`
    /// inside; AVX-512 where the CPU has it.
    fn softmax_row(x: &mut [f32], padding: Option<&[bool]>, visible: usize, scale: f32) => softmax_row_portable
}

#[inline(always)]
fn softmax_row_portable(x: &mut [f32], padding: Option<&[bool]>, visible: usize, scale: f32) {
    if let Some(padding) = padding {
        for (v, &p) in x.iter_mut().zip(padding) {
            *v = if p { f32::NEG_INFINITY } else { *v };
        }
    }
    x[visible..].fill(f32::NEG_INFINITY);
    crate::row_softmax::softmax_in_place(x, scale);
}

crate::avx512_dispatch! {
    /// One row of [`FusedAttentionBackend::kiln_attention_score_grad`]: `g ← scale · p ⊙ (g − d)`.
    fn score_grad_row(g: &mut [f32], p: &[f32], d: f32, scale: f32) => score_grad_row_portable
}

#[inline(always)]
fn score_grad_row_portable(g: &mut [f32], p: &[f32], d: f32, scale: f32) {
    for (g, &p) in g.iter_mut().zip(p) {
        *g = scale * p * (*g - d);
    }
}

impl<B: FusedAttentionBackend, C: CheckpointStrategy> FusedAttentionBackend for Autodiff<B, C> {
    fn kiln_attention(
        q: FloatTensor<Self>,
        k: FloatTensor<Self>,
        v: FloatTensor<Self>,
        padding: BoolTensor<Self>,
        causal: bool,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct AttentionBackward;

        impl<B: FusedAttentionBackend> Backward<B, 3> for AttentionBackward {
            type State = Saved<B>;

            fn backward(self, ops: Ops<Self::State, 3>, grads: &mut Gradients, _: &mut Checkpointer) {
                let [node_q, node_k, node_v] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let m = dims4(&ops.state.k)[2];
                let block_bytes = BLOCK_BYTES.max(MIN_BLOCK_ROWS * 4 * m);
                let [dq, dk, dv] = attention_backward::<B>(ops.state, grad, block_bytes);
                for (node, g) in [(node_q, dq), (node_k, dk), (node_v, dv)] {
                    if let Some(node) = node {
                        grads.register::<B>(node.id, g);
                    }
                }
            }
        }

        match AttentionBackward.prepare::<C>([q.node(), k.node(), v.node()]).compute_bound().stateful() {
            OpsKind::Tracked(prep) => {
                let (q, k, v) = (q.into_primitive(), k.into_primitive(), v.into_primitive());
                let [b, h, n, d] = dims4(&q);
                let m = dims4(&k)[2];
                let (out, probs) = if keeps_probs(b * h, n, m) {
                    let k_t = B::float_swap_dims(k.clone(), 2, 3);
                    let (p, out) = forward_block::<B>(q.clone(), k_t, &v, &padding, causal, 0, n, scale_of(d));
                    (out, Some(p))
                } else {
                    (B::kiln_attention(q.clone(), k.clone(), v.clone(), padding.clone(), causal), None)
                };
                prep.finish(Saved { q, k, v, out: out.clone(), padding, causal, probs }, out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::kiln_attention(
                q.into_primitive(),
                k.into_primitive(),
                v.into_primitive(),
                padding,
                causal,
            )),
        }
    }
}

/// What the backward pass keeps from the forward pass.
#[derive(Debug, Clone)]
struct Saved<B: Backend> {
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    out: FloatTensor<B>,
    padding: BoolTensor<B>,
    causal: bool,
    /// The forward pass's `[b, h, n, m]` probabilities where they fit in one block
    /// ([`keeps_probs`]); the backward pass recomputes them otherwise.
    probs: Option<FloatTensor<B>>,
}

/// Whether the forward pass keeps the probabilities for the backward pass: when all `[bh, n, m]`
/// of them fit in [`BLOCK_BYTES`], the size of one block of the backward pass, so that keeping
/// them costs at most one block's memory per layer and saves recomputing `Q Kᵀ` and the softmax
/// (the small models' steps: 12 × 4 × 64² and 64 × 4 × 49² scores per layer).
fn keeps_probs(bh: usize, n: usize, m: usize) -> bool {
    4 * bh * n * m <= BLOCK_BYTES
}

fn dims4<T: TensorMetadata>(t: &T) -> [usize; 4] {
    t.shape().dims::<4>()
}

/// `softmax(Q Kᵀ/√d + mask) V` one block at a time ([`head_groups`], then [`row_blocks`]), each
/// block's scores at most `block_bytes` (at least one row of one head): GEMMs and the block softmax.
fn attention_forward_blocks<B: FusedAttentionBackend>(
    q: FloatTensor<B>,
    k: FloatTensor<B>,
    v: FloatTensor<B>,
    padding: BoolTensor<B>,
    causal: bool,
    block_bytes: usize,
) -> FloatTensor<B> {
    let [b, h, n, d] = dims4(&q);
    let m = dims4(&k)[2];
    let (device, dtype) = (q.device(), q.dtype().into());
    let k_t = B::float_swap_dims(k, 2, 3);
    let groups = head_groups(b, h, n, m, block_bytes);
    let [out] = over_groups::<B, 1>(&groups, [[b, h, n, d]], &device, dtype, |g| {
        let k_t = B::float_slice(k_t.clone(), &g.rows(0, d, m));
        let v = B::float_slice(v.clone(), &g.rows(0, m, d));
        let padding = group_padding::<B>(&padding, g, m);
        let mut out: Vec<_> = row_blocks(g.nb * g.nh, m, n, block_bytes)
            .map(|(r0, r)| {
                let q_b = B::float_slice(q.clone(), &g.rows(r0, r, d));
                forward_block::<B>(q_b, k_t.clone(), &v, &padding, causal, r0, n, scale_of(d)).1
            })
            .collect();
        [if out.len() == 1 { out.pop().expect("one block") } else { B::float_cat(out, 2) }]
    });
    out
}

/// The `[nb, m]` padding of a group's sequences.
fn group_padding<B: Backend>(padding: &BoolTensor<B>, g: &HeadGroup, m: usize) -> BoolTensor<B> {
    B::bool_slice(padding.clone(), &[Slice::from(g.b0..g.b0 + g.nb), Slice::from(0..m)])
}

/// One block of query rows `r0..` (of `n`): its probabilities `P = softmax(scale·Q_b Kᵀ + mask)` and
/// its output rows `P V`.
#[allow(clippy::too_many_arguments)]
fn forward_block<B: FusedAttentionBackend>(
    q_b: FloatTensor<B>,
    k_t: FloatTensor<B>,
    v: &FloatTensor<B>,
    padding: &BoolTensor<B>,
    causal: bool,
    r0: usize,
    n: usize,
    scale: f32,
) -> (FloatTensor<B>, FloatTensor<B>) {
    let p = B::kiln_attention_probs(B::kiln_matmul(q_b, k_t), padding.clone(), causal, r0, n, scale);
    let out = B::kiln_matmul(p.clone(), v.clone());
    (p, out)
}

/// The score scale `1/√d` of heads of size `d`.
fn scale_of(d: usize) -> f32 {
    (1.0 / (d as f64).sqrt()) as f32
}

/// `[dQ, dK, dV]` from the saved forward pass and `dO`, one block at a time ([`head_groups`], then
/// [`row_blocks`]), each block's scores at most `block_bytes` (at least one row of one head).
fn attention_backward<B: FusedAttentionBackend>(
    saved: Saved<B>,
    grad: FloatTensor<B>,
    block_bytes: usize,
) -> [FloatTensor<B>; 3] {
    let Saved { q, k, v, out, padding, causal, mut probs } = saved;
    let [b, h, n, d] = dims4(&q);
    let m = dims4(&k)[2];
    let (device, dtype) = (q.device(), q.dtype().into());
    let scale = scale_of(d);
    // rowsum(dO ⊙ O) = rowsum(dP ⊙ P), [b, h, n, 1].
    let delta = B::float_sum_dim(B::float_mul(grad.clone(), out), 3);
    // The kept probabilities are one block of all heads and rows.
    let groups = match probs {
        Some(_) => vec![HeadGroup { b0: 0, nb: b, h0: 0, nh: h }],
        None => head_groups(b, h, n, m, block_bytes),
    };
    over_groups::<B, 3>(&groups, [[b, h, n, d], [b, h, m, d], [b, h, m, d]], &device, dtype, |g| {
        let (k, v) = (B::float_slice(k.clone(), &g.rows(0, m, d)), B::float_slice(v.clone(), &g.rows(0, m, d)));
        let (k_t, v_t) = (B::float_swap_dims(k.clone(), 2, 3), B::float_swap_dims(v, 2, 3));
        let padding = group_padding::<B>(&padding, g, m);
        let (mut dq, mut dk, mut dv) = (Vec::new(), None, None);
        let add = |acc: Option<FloatTensor<B>>, x: FloatTensor<B>| Some(acc.map_or(x.clone(), |a| B::float_add(a, x)));
        let blocks: Vec<(usize, usize, Option<FloatTensor<B>>)> = match probs.take() {
            Some(p) => vec![(0, n, Some(p))],
            None => row_blocks(g.nb * g.nh, m, n, block_bytes).map(|(r0, r)| (r0, r, None)).collect(),
        };
        for (r0, r, kept) in blocks {
            let block = |t: &FloatTensor<B>, width: usize| B::float_slice(t.clone(), &g.rows(r0, r, width));
            let (q_b, grad_b, delta_b) = (block(&q, d), block(&grad, d), block(&delta, 1));
            let p = kept.unwrap_or_else(|| {
                let scores = B::kiln_matmul(q_b.clone(), k_t.clone());
                B::kiln_attention_probs(scores, padding.clone(), causal, r0, n, scale)
            });
            dv = add(dv, B::kiln_matmul(B::float_swap_dims(p.clone(), 2, 3), grad_b.clone()));
            let dp = B::kiln_matmul(grad_b, v_t.clone());
            let ds = B::kiln_attention_score_grad(p, dp, delta_b, scale);
            dq.push(B::kiln_matmul(ds.clone(), k.clone()));
            dk = add(dk, B::kiln_matmul(B::float_swap_dims(ds, 2, 3), q_b));
        }
        let dq = if dq.len() == 1 { dq.pop().expect("one block") } else { B::float_cat(dq, 2) };
        let zeros = || B::float_zeros(Shape::new([g.nb, g.nh, m, d]), &device, dtype);
        [dq, dk.unwrap_or_else(zeros), dv.unwrap_or_else(zeros)]
    })
}

/// Softmax attention through [`FusedAttentionBackend`]; call on flex (f32) only ([`crate::attention`]
/// chooses: in training and in inference, where the blockwise forward pass is about twice as fast as
/// flex's own attention kernel at n = 4,096; when its blocks spanned all heads it was slower).
///
/// # Shapes
///
/// - `q`: `[b, h, n, d]`, `k`, `v`: `[b, h, m, d]`, `padding`: `[b, m]` (`true` = pad)
/// - output: `[b, h, n, d]`
pub(crate) fn fused_attention(
    q: Tensor<4>,
    k: Tensor<4>,
    v: Tensor<4>,
    padding: Option<&Tensor<2, Bool>>,
    causal: bool,
) -> Tensor<4> {
    let [b, _, _, _] = q.dims();
    let m = k.dims()[2];
    let padding = match padding {
        Some(p) => p.clone(),
        None => Tensor::<2, Bool>::from_data(TensorData::new(vec![false; b * m], [b, m]), &q.device()),
    };
    let out = <Dispatch as FusedAttentionBackend>::kiln_attention(
        q.into_dispatch(),
        k.into_dispatch(),
        v.into_dispatch(),
        padding.into_dispatch(),
        causal,
    );
    Tensor::from_dispatch(out)
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::testing::*;
    use burn::backend::ops::FloatTensorOps;

    /// Burn's own differentiable attention graph (the reference the extension replaces).
    use crate::attention_by_ops as reference;

    /// Output and the gradients of q, k and v (under a random upstream gradient) of `f`.
    fn run(
        f: &dyn Fn(Tensor<4>, Tensor<4>, Tensor<4>) -> Tensor<4>,
        [b, h, n, m, d]: [usize; 5],
        seed: u64,
    ) -> [Vec<f32>; 4] {
        let device = dev().autodiff();
        let q = randn([b, h, n, d], 1.0, seed, &device).require_grad();
        let k = randn([b, h, m, d], 1.0, seed + 1, &device).require_grad();
        let v = randn([b, h, m, d], 1.0, seed + 2, &device).require_grad();
        let upstream = randn([b, h, n, d], 1.0, seed + 3, &device);
        let out = f(q.clone(), k.clone(), v.clone());
        let grads = (out.clone() * upstream).sum().backward();
        [to_vec(out), to_vec(q.grad(&grads).unwrap()), to_vec(k.grad(&grads).unwrap()), to_vec(v.grad(&grads).unwrap())]
    }

    /// The extension equals Burn's autodiff attention in output and in all three gradients: with
    /// padded keys (one sequence fully unpadded, one padded), causal (including keys longer than
    /// queries), and both, with the forward pass's probabilities kept and (one long sequence)
    /// recomputed; and it is what `SoftmaxAttention` runs in training on flex.
    #[test]
    fn fused_attention_equals_burns_attention_graph_with_gradients() {
        let device = dev().autodiff();
        assert!(crate::device::is_flex(&device));
        assert!(keeps_probs(2 * 3, 7, 7) && !keeps_probs(1, 1500, 1500));
        for (shape, lengths, causal) in [
            ([2, 3, 7, 7, 8], Some(vec![7, 4]), false),
            ([2, 3, 7, 7, 8], None, true),
            ([2, 2, 5, 9, 4], Some(vec![9, 6]), true),
            ([1, 2, 33, 33, 16], Some(vec![20]), false),
            // Scores over one backward block: the probabilities recomputed, not kept.
            ([1, 1, 1500, 1500, 8], Some(vec![1400]), true),
        ] {
            let m = shape[3];
            let padding = lengths.as_ref().map(|l| padding_from_lengths(l, m, &device));
            let want = run(&|q, k, v| reference([q, k, v], padding.as_ref(), causal), shape, 3);
            let got = run(&|q, k, v| fused_attention(q, k, v, padding.as_ref(), causal), shape, 3);
            let via_layer = run(&|q, k, v| crate::attention(q, k, v, padding.as_ref(), causal), shape, 3);
            for (i, name) in ["output", "dq", "dk", "dv"].iter().enumerate() {
                assert!(
                    max_abs_diff(&got[i], &want[i]) < 2e-5,
                    "{name} {shape:?}: {}",
                    max_abs_diff(&got[i], &want[i])
                );
                assert_eq!(via_layer[i], got[i], "{name}");
            }
            // Not trivially equal: the gradients are not zero.
            assert!(got[1].iter().any(|g| g.abs() > 1e-3) && got[2].iter().any(|g| g.abs() > 1e-3));
        }
    }

    /// In inference too `SoftmaxAttention` on flex runs the blockwise forward pass, and it equals
    /// Burn's attention (flex's own kernel): in one block, in groups of whole sequences, one head
    /// per group, and one head split into row blocks; padded and causal.
    #[test]
    fn inference_equals_burns_attention() {
        let device = dev();
        assert!(crate::device::is_flex(&device));
        for (shape, lengths, causal) in [
            ([2, 3, 7, 9, 8], Some(vec![9, 4]), true),
            // 4 × 600 × 700 scores per sequence fit in a block: three groups of one sequence each.
            ([3, 4, 600, 700, 8], Some(vec![700, 650, 3]), false),
            // One head's scores (4.8 MB) per group.
            ([1, 3, 1100, 1100, 8], None, true),
            // One head over a block: its rows in two blocks.
            ([1, 1, 1500, 1500, 8], Some(vec![1400]), true),
        ] {
            let [b, h, n, m, d] = shape;
            let padding = lengths.as_ref().map(|l| padding_from_lengths(l, m, &device));
            let (q, k, v) = (
                randn([b, h, n, d], 1.0, 5, &device),
                randn([b, h, m, d], 1.0, 6, &device),
                randn([b, h, m, d], 1.0, 7, &device),
            );
            let want = to_vec(reference([q.clone(), k.clone(), v.clone()], padding.as_ref(), causal));
            let got = to_vec(crate::attention(q, k, v, padding.as_ref(), causal));
            assert!(max_abs_diff(&got, &want) < 2e-5, "{shape:?}: {}", max_abs_diff(&got, &want));
            assert!(got.iter().any(|x| x.abs() > 0.1));
        }
    }

    /// flex's host loops for the two block steps equal the same steps from backend ops: padded and
    /// causal rows (a block starting at row 3, keys longer than queries), a fully masked row, and
    /// scores large enough that an unshifted exponential would overflow.
    #[test]
    fn host_block_steps_equal_backend_ops() {
        let device = dev();
        let prim = |t: Tensor<4>| t.try_into_primitive::<Flex>().expect("a flex tensor");
        let back = |t: burn::backend::flex::FlexTensor| to_vec(Tensor::<4>::from_primitive::<Flex>(t));
        let [b, h, r, m, n] = [2, 3, 5, 11, 9];
        let scores = randn([b, h, r, m], 40.0, 6, &device);
        // Sequence 1 has 2 keys. Causal, 9 queries against 11 keys: query i sees keys j ≤ i + 2.
        let padding = padding_from_lengths(&[11, 2], m, &device).try_into_primitive::<Flex>().unwrap();
        for (causal, row0) in [(false, 0), (true, 3), (true, 0)] {
            let host = Flex::kiln_attention_probs(prim(scores.clone()), padding.clone(), causal, row0, n, 0.3);
            let ops = probs_by_backend_ops::<Flex>(prim(scores.clone()), padding.clone(), causal, row0, n, 0.3);
            let (host, ops) = (back(host), back(ops));
            assert!(max_abs_diff(&host, &ops) < 1e-6, "causal {causal}, row0 {row0}: {}", max_abs_diff(&host, &ops));
            assert!(host.iter().all(|p| p.is_finite() && *p >= 0.0));
        }
        // Every key of row 0 in the future (n = m + 2: row 0 sees keys j ≤ −2): the row is zeros.
        let none_visible = back(Flex::kiln_attention_probs(prim(scores.clone()), padding.clone(), true, 0, m + 2, 0.3));
        assert!(none_visible[..m].iter().all(|&p| p == 0.0));
        let ops = back(probs_by_backend_ops::<Flex>(prim(scores.clone()), padding.clone(), true, 0, m + 2, 0.3));
        assert!(max_abs_diff(&none_visible, &ops) < 1e-6);
        let probs = randn([b, h, r, m], 1.0, 7, &device);
        let grad = randn([b, h, r, m], 1.0, 8, &device);
        // δ as a strided view (a narrow of a wider tensor), as the backward pass passes it.
        let delta = randn([b, h, r + 2, 1], 1.0, 9, &device).narrow(2, 1, r);
        let host = Flex::kiln_attention_score_grad(prim(probs.clone()), prim(grad.clone()), prim(delta.clone()), 0.7);
        let ops = score_grad_by_backend_ops::<Flex>(prim(probs), prim(grad), prim(delta), 0.7);
        assert!(max_abs_diff(&back(host), &back(ops)) < 1e-6);
    }

    /// The head groups cover every head of every sequence once, in order, within the budget
    /// (or one head at a time where one head's scores exceed it).
    #[test]
    fn head_groups_cover_every_head_once() {
        let [n, m] = [10, 12];
        let head = 4 * n * m;
        for (b, h) in [(1, 1), (2, 3), (3, 4)] {
            for budget in [1, head - 1, head, 2 * head, 3 * head, 5 * head, 7 * head, 100 * head] {
                let groups = head_groups(b, h, n, m, budget);
                let covered: Vec<(usize, usize)> = groups
                    .iter()
                    .flat_map(|g| (g.b0..g.b0 + g.nb).flat_map(move |s| (g.h0..g.h0 + g.nh).map(move |i| (s, i))))
                    .collect();
                let all: Vec<(usize, usize)> = (0..b).flat_map(|s| (0..h).map(move |i| (s, i))).collect();
                assert_eq!(covered, all, "b {b}, h {h}, budget {budget}");
                let fits = |g: &HeadGroup| g.nb * g.nh * head <= budget.max(head);
                assert!(groups.iter().all(|g| fits(g) && (g.nb == 1 || g.nh == h)), "{groups:?}");
            }
            assert_eq!(head_groups(b, h, n, m, b * h * head).len(), 1);
        }
    }

    /// The forward and backward passes in blocks equal the one-block passes: groups of whole
    /// sequences, runs of heads within a sequence (one shorter), single heads, and single heads
    /// split into blocks of 1, 3 and 7 of 10 rows (one partial); causal with padding.
    #[test]
    fn blockwise_backward_equals_one_block() {
        let device = dev();
        let [b, h, n, m, d] = [2, 3, 10, 12, 4];
        let prim = |t: Tensor<4>| t.try_into_primitive::<Flex>().expect("a flex tensor");
        let q = randn([b, h, n, d], 1.0, 1, &device);
        let k = randn([b, h, m, d], 1.0, 2, &device);
        let v = randn([b, h, m, d], 1.0, 3, &device);
        let grad = randn([b, h, n, d], 1.0, 4, &device);
        let padding = padding_from_lengths(&[12, 8], m, &device);
        let out = fused_attention(q.clone(), k.clone(), v.clone(), Some(&padding), true);
        let saved = Saved::<Flex> {
            q: prim(q),
            k: prim(k),
            v: prim(v),
            out: prim(out),
            padding: padding.try_into_primitive::<Flex>().expect("a flex tensor"),
            causal: true,
            probs: None,
        };
        // The budget in rows of one head's scores.
        let backward = |rows: usize| {
            attention_backward::<Flex>(saved.clone(), prim(grad.clone()), rows * 4 * m)
                .map(|g| to_vec(Tensor::<4>::from_primitive::<Flex>(g)))
        };
        let forward = |rows: usize| {
            let Saved { q, k, v, padding, .. } = saved.clone();
            let out = attention_forward_blocks::<Flex>(q, k, v, padding, true, rows * 4 * m);
            to_vec(Tensor::<4>::from_primitive::<Flex>(out))
        };
        let all = b * h * n;
        assert_eq!(head_groups(b, h, n, m, all * 4 * m).len(), 1);
        let (whole, whole_out) = (backward(all), forward(all));
        // With the forward pass's probabilities kept (the small-model path) instead of recomputed.
        let Saved { q, k, padding, .. } = saved.clone();
        let scores = Flex::float_matmul(q, Flex::float_swap_dims(k, 2, 3));
        let kept = Saved { probs: Some(Flex::kiln_attention_probs(scores, padding, true, 0, n, 0.5)), ..saved.clone() };
        let with_kept = attention_backward::<Flex>(kept, prim(grad.clone()), 4 * m)
            .map(|g| to_vec(Tensor::<4>::from_primitive::<Flex>(g)));
        for i in 0..3 {
            assert!(max_abs_diff(&with_kept[i], &whole[i]) < 1e-6, "kept probabilities, gradient {i}");
        }
        assert!(max_abs_diff(&whole_out, &to_vec(Tensor::<4>::from_primitive::<Flex>(saved.out.clone()))) < 1e-6);
        // Sequences (3 heads each), runs of 2 heads and 1, single heads, single heads in row blocks.
        for rows in [3 * n, 2 * n, n, 7, 3, 1] {
            let blocks = backward(rows);
            for i in 0..3 {
                assert!(max_abs_diff(&blocks[i], &whole[i]) < 1e-6, "rows {rows}, gradient {i}");
            }
            assert!(max_abs_diff(&forward(rows), &whole_out) < 1e-6, "rows {rows}, output");
        }
    }
}
