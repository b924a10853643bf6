//! `log Σ eˣ` along the last dimension, computed on the host where tensors live there.
//!
//! Burn's form, `m + log Σ e^(x − m)` with the row maximum `m`, runs flex's `exp`, which is scalar
//! `expf` per element and takes glibc's slow underflow path (it sets `errno`) for every entry far
//! below its row's maximum: exactly the excluded cells (`−1e12`) that the GlobalPointer loss fills
//! most of its rows with. The host loop uses the call-free exponential of the attention kernels,
//! one pass per row. In training it is linearised: with `p = softmax(x)` (the gradient of the
//! log-sum-exp) and `c = lse − p·x` held fixed, the result is `Σ xᵢ pᵢ + c`, whose backward pass is
//! one multiplication.

use burn::prelude::*;
use burn::tensor::TensorData;
use rayon::prelude::*;

use crate::elementwise::exp_non_positive;
use crate::host::row_task_len;

/// [`crate::log_sum_exp`] from Burn's ops: `m + log Σ e^(x − m)` with the row maximum `m`.
pub(crate) fn by_ops<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    // The shift is a constant for the gradient; detaching it keeps autodiff away from `max`.
    let shift = x.clone().detach().max_dim(D - 1);
    (x - shift.clone()).exp().sum_dim(D - 1).log() + shift
}

/// [`crate::log_sum_exp`] as a host loop, for f32 on a host device and rows of at least one value.
pub(crate) fn host<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    let dim = D - 1;
    let dims = x.dims();
    let m = dims[dim];
    let device = x.device();
    let training = device.is_autodiff();
    let mut values = x.clone().into_data().try_into_vec::<f32>().expect("an f32 tensor (host_f32)");
    let rows = values.len() / m;
    let mut out = vec![0.0f32; rows];
    let task = row_task_len(m);
    values.par_chunks_mut(task).zip(out.par_chunks_mut(task / m)).for_each(|(v, o)| lse_rows(v, o, m, training));
    let mut out_dims = dims;
    out_dims[dim] = 1;
    let out = Tensor::<1>::from_data(TensorData::new(out, [rows]), &device).reshape(out_dims);
    if !training {
        return out;
    }
    let p = Tensor::<1>::from_data(TensorData::new(values, [rows * m]), &device).reshape(dims);
    (x * p).sum_dim(dim) + out
}

crate::avx512_dispatch! {
    /// [`lse_rows_portable`], compiled for AVX-512 where the CPU has it.
    fn lse_rows(values: &mut [f32], out: &mut [f32], m: usize, training: bool) => lse_rows_portable
}

/// For each row of `m` values: `out = lse`, or in training `out = lse − p·x` and the row replaced by
/// `p = softmax(x)`. Lane-wise maximum and sums (16 partial results) so that the loops vectorise.
#[inline(always)]
fn lse_rows_portable(values: &mut [f32], out: &mut [f32], m: usize, training: bool) {
    const LANES: usize = 16;
    for (x, o) in values.chunks_exact_mut(m).zip(out.iter_mut()) {
        let mut lanes = [f32::NEG_INFINITY; LANES];
        let mut chunks = x.chunks_exact(LANES);
        for c in &mut chunks {
            for (l, &v) in lanes.iter_mut().zip(c) {
                *l = if v > *l { v } else { *l };
            }
        }
        let max = chunks.remainder().iter().chain(&lanes).fold(f32::NEG_INFINITY, |a, &v| if v > a { v } else { a });
        // Σ e^(x − max) and Σ e^(x − max)·x, the latter for p·x in training.
        let (mut sums, mut dots) = ([0.0f32; LANES], [0.0f32; LANES]);
        let mut chunks = x.chunks_exact_mut(LANES);
        for c in &mut chunks {
            for ((s, d), v) in sums.iter_mut().zip(dots.iter_mut()).zip(c.iter_mut()) {
                let e = exp_non_positive(*v - max);
                *s += e;
                *d += e * *v;
                *v = e;
            }
        }
        let (mut sum, mut dot): (f32, f32) = (sums.iter().sum(), dots.iter().sum());
        for v in chunks.into_remainder() {
            let e = exp_non_positive(*v - max);
            sum += e;
            dot += e * *v;
            *v = e;
        }
        let lse = max + sum.ln();
        if training {
            let inv = 1.0 / sum;
            x.iter_mut().for_each(|v| *v *= inv);
            *o = lse - dot * inv;
        } else {
            *o = lse;
        }
    }
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;
    use crate::testing::*;

    /// Value and gradient equal Burn's form on rows shorter and longer than the 16 lanes, with
    /// large entries and with most entries excluded by `−1e12` (the GlobalPointer loss's rows), in
    /// training and inference.
    #[test]
    fn log_sum_exp_equals_burns_form_with_gradient() {
        let device = dev().autodiff();
        for (dims, fill) in [([2, 3, 7], 0.0), ([3, 2, 40], 60.0), ([2, 5, 101], -1e12)] {
            let mut x = randn(dims, 3.0, 1, &device);
            if fill != 0.0 {
                let mask = randn(dims, 1.0, 5, &device).greater_elem(-0.3);
                x = x.mask_fill(mask, fill);
            }
            let upstream = randn([dims[0], dims[1], 1], 1.0, 3, &device);
            let run = |host: bool| {
                let x = x.clone().detach().require_grad();
                let y = if host { crate::log_sum_exp(x.clone()) } else { by_ops(x.clone()) };
                let grads = (y.clone() * upstream.clone()).sum().backward();
                [to_vec(y), to_vec(x.grad(&grads).unwrap())]
            };
            let (got, want) = (run(true), run(false));
            let scale = want[0].iter().fold(1.0f32, |a, v| a.max(v.abs()));
            assert!(max_abs_diff(&got[0], &want[0]) < 2e-6 * scale, "value, fill {fill}: {:?} {:?}", got[0], want[0]);
            assert!(max_abs_diff(&got[1], &want[1]) < 1e-6, "gradient, fill {fill}");
            assert!(want[1].iter().any(|g| g.abs() > 1e-2), "a gradient to compare");
            let plain = Tensor::<3>::from_data(x.to_data(), &dev());
            let inference = to_vec(crate::log_sum_exp(plain));
            assert!(max_abs_diff(&inference, &want[0]) < 2e-6 * scale, "inference, fill {fill}");
        }
    }
}
