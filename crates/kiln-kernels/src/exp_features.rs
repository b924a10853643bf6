//! The `exp` feature map of linear attention with its stabiliser, as one host pass per query row or
//! per head (Su's `exp` map, kexue.fm/archives/8338; `kiln_layers::LinearAttention`'s module docs say
//! why queries take their own maximum and keys one per head).

use burn::prelude::*;

use crate::elementwise::exp_le0;
use crate::host::{host_blocks, row_task_len};

/// [`crate::exp_features`] on the host: one pass per query row or per head, the max, then the
/// exponential of an argument `≤ 0`, written once, where the ops are a reduction, a broadcast
/// subtraction, the exponential and for padded keys a mask and a multiplication, each a pass over
/// `[b, h, n, m]`. In training linearised as the host `exp` is (`a = φ`, `b = φ (1 − x)`; `s` is a
/// constant, so `∂φ/∂x = φ`).
pub(crate) fn host(x: Tensor<4>, is_query: bool, padding: Option<&Tensor<2, Bool>>) -> Tensor<4> {
    let [_, h, n, m] = x.dims();
    let keep: Option<Vec<bool>> = match (is_query, padding) {
        (false, Some(p)) => Some(p.clone().into_data().iter::<bool>().map(|pad| !pad).collect()),
        _ => None,
    };
    // Queries: tasks of whole rows; keys: one task per (batch, head) plane, `t / h` its batch.
    let task = if is_query { row_task_len(m) } else { n * m };
    let keep_of = |t: usize| keep.as_deref().map(|k| &k[(t / h) * n..(t / h + 1) * n]);
    host_blocks(x, task, |t, values, slopes| exp_task(values, slopes, m, is_query, keep_of(t)))
}

crate::avx512_dispatch! {
    /// One task of [`host`]: rows of `m` queries, or one head's `n` keys (`keep`: which are
    /// real). With `slopes`, linearised: `slopes ← φ`, `values ← φ (1 − x)`; else `values ← φ`.
    fn exp_task(
        values: &mut [f32],
        slopes: Option<&mut [f32]>,
        m: usize,
        is_query: bool,
        keep: Option<&[bool]>,
    ) => exp_task_portable
}

#[inline(always)]
fn exp_task_portable(
    values: &mut [f32],
    mut slopes: Option<&mut [f32]>,
    m: usize,
    is_query: bool,
    keep: Option<&[bool]>,
) {
    let real = |j: usize| keep.is_none_or(|k| k[j]);
    let shift = if is_query {
        None
    } else {
        Some(
            values
                .chunks(m)
                .enumerate()
                .filter(|&(j, _)| real(j))
                .map(|(_, row)| row_max(row))
                .fold(f32::MIN, f32::max),
        )
    };
    for (j, row) in values.chunks_mut(m).enumerate() {
        let slope_row = slopes.as_deref_mut().map(|s| &mut s[j * m..(j + 1) * m]);
        if !real(j) {
            row.fill(0.0);
            continue; // slopes are zero already
        }
        let shift = shift.unwrap_or_else(|| row_max(row));
        match slope_row {
            None => row.iter_mut().for_each(|v| *v = exp_le0(*v - shift)),
            Some(s) => {
                for (v, a) in row.iter_mut().zip(s) {
                    let e = exp_le0(*v - shift);
                    (*a, *v) = (e, e * (1.0 - *v));
                }
            }
        }
    }
}

/// The largest of `row` (`f32::MIN` if empty), 16 lanes at a time so that it vectorises.
#[inline(always)]
fn row_max(row: &[f32]) -> f32 {
    let mut lanes = [f32::MIN; 16];
    let chunks = row.chunks_exact(16);
    let rest = chunks.remainder().iter().fold(f32::MIN, |a, &x| a.max(x));
    for c in chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l = l.max(x);
        }
    }
    lanes.iter().fold(rest, |a, &x| a.max(x))
}

/// [`crate::exp_features`] from Burn's ops: the stabiliser by `max_dim` (padded keys excluded by a fill
/// with `f32::MIN`), subtracted detached, [`crate::exp`], padded keys filled with 0.
pub(crate) fn by_ops(x: Tensor<4>, is_query: bool, padding: Option<&Tensor<2, Bool>>) -> Tensor<4> {
    let [b, h, n, m] = x.dims();
    let pad = match (is_query, padding) {
        (false, Some(p)) => Some(p.clone().reshape([b, 1, n, 1]).expand([b, h, n, m])),
        _ => None,
    };
    let stab = if is_query {
        x.clone().max_dim(3) // [b, h, n, 1]: cancels per query
    } else {
        let masked = match &pad {
            Some(pad) => x.clone().mask_fill(pad.clone(), f32::MIN),
            None => x.clone(),
        };
        masked.max_dim(3).max_dim(2) // [b, h, 1, 1]: cancels for all keys
    };
    let phi = crate::exp(x - stab.detach());
    // A fill, not a multiplication by 0: a sequence of padding alone has an infinite φ (its
    // stabiliser is `f32::MIN`).
    match pad {
        Some(pad) => phi.mask_fill(pad, 0.0),
        None => phi,
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::testing::*;

    /// The host `exp` features equal the ops form in value and gradient, for queries and keys, with
    /// and without padding (one sequence all padding: zero features, no NaN), on a head-split view (not
    /// contiguous, as multi-head attention passes it), offset inputs and rows of 5 and 37 features
    /// (the 16-lane max's remainder), with and without autodiff.
    #[test]
    fn host_exp_features_match_ops() {
        let (b, h, n) = (2, 3, 11);
        for m in [5, 37] {
            for device in [dev(), dev().autodiff()] {
                // [b, n, h·m] split into heads, as MultiHeadAttention does: a strided [b, h, n, m] view.
                let raw = randn([b, n, h * m], 2.0, 40 + m as u64, &device).add_scalar(3.0);
                let pad: Vec<bool> = (0..b * n).map(|i| i >= n || i % 4 == 3).collect();
                let pad = Tensor::<1, Bool>::from_data(TensorData::new(pad, [b * n]), &device).reshape([b, n]);
                let w = randn([b, h, n, m], 1.0, 7, &device);
                for is_query in [true, false] {
                    for padding in [None, Some(&pad)] {
                        let run = |f: &dyn Fn(Tensor<4>) -> Tensor<4>| {
                            let x = if device.is_autodiff() { raw.clone().require_grad() } else { raw.clone() };
                            let y = f(x.clone().reshape([b, n, h, m]).swap_dims(1, 2));
                            let grad = device
                                .is_autodiff()
                                .then(|| to_vec(x.grad(&(y.clone() * w.clone()).sum().backward()).unwrap()));
                            (to_vec(y), grad)
                        };
                        let (want, want_g) = run(&|x| by_ops(x, is_query, padding));
                        let (got, got_g) = run(&|x| host(x, is_query, padding));
                        assert!(want.iter().any(|v| *v > 0.5) && want.iter().all(|v| v.is_finite()));
                        assert_close(&got, &want, 2e-6);
                        if let (Some(g), Some(w)) = (got_g, want_g) {
                            assert_close(&g, &w, 2e-6);
                        }
                    }
                }
            }
        }
    }
}
