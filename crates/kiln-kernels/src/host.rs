//! What the host loops that stand in for Burn ops on flex share: a tensor's values as a `Vec`, how many whole rows make one Rayon task, [`host_blocks`] (a function
//! of a tensor computed block by block on the host, linearised in training), and
//! [`avx512_dispatch!`] (`crate::avx512_dispatch`), which compiles a loop a second time for AVX-512.

#[cfg(feature = "flex")]
use burn::backend::flex::FlexTensor;
use burn::prelude::*;
use burn::tensor::{DType, TensorData};
use rayon::prelude::*;

/// Elements per task when a host loop is split across threads: a task is tens of microseconds, far
/// above Rayon's scheduling cost, and a `[16·128, 1024]` activation still gives 64 of them.
pub(crate) const HOST_CHUNK: usize = 1 << 15;

/// Whether [`host_blocks`] can compute a function of `x`: f32 on a host device.
pub(crate) fn host_f32<const D: usize>(x: &Tensor<D>) -> bool {
    x.dtype() == DType::F32 && crate::device::on_host(&x.device())
}

/// `f(x)` computed on the host, `x`'s row-major values cut into blocks of `task` elements split over
/// Rayon's threads: `kernel(t, values, slopes)` rewrites block `t`. In inference (`slopes` is `None`)
/// it writes `f(x)`; in training (an autodiff device) it writes `b` into the values and `a` into the
/// slopes, with `a·x + b = f(x)` and `a = ∂f/∂x` (anything `x`-dependent that `f` holds fixed, such
/// as a stabiliser, treated as a constant), and the result is `x·a + b`, whose backward pass is one
/// multiplication. Only where [`host_f32`] holds.
pub(crate) fn host_blocks<const D: usize>(
    x: Tensor<D>,
    task: usize,
    kernel: impl Fn(usize, &mut [f32], Option<&mut [f32]>) + Sync,
) -> Tensor<D> {
    let (device, dims, task) = (x.device(), x.dims(), task.max(1));
    let tensor = |values: Vec<f32>| {
        let n = values.len();
        Tensor::<1>::from_data(TensorData::new(values, [n]), &device).reshape(dims)
    };
    let host = |x: Tensor<D>| x.into_data().try_into_vec::<f32>().expect("an f32 tensor (host_f32)");
    if !device.is_autodiff() {
        // A copy out of the tensor even when moved (flex's buffer lacks a `Vec<f32>`'s alignment);
        // writing it in place ([`host_in_place`]) made no measurable difference to BERT embedding.
        let mut values = host(x);
        values.par_chunks_mut(task).enumerate().for_each(|(t, v)| kernel(t, v, None));
        return tensor(values);
    }
    let mut values = host(x.clone());
    let mut slopes = vec![0.0f32; values.len()];
    values
        .par_chunks_mut(task)
        .zip(slopes.par_chunks_mut(task))
        .enumerate()
        .for_each(|(t, (v, s))| kernel(t, v, Some(s)));
    x * tensor(slopes) + tensor(values)
}

/// The f32 values of a flex tensor, in row-major order (a copy: the buffer's alignment is not a
/// `Vec<f32>`'s; [`host_in_place`] writes the tensor's own buffer).
#[cfg(feature = "flex")]
pub(crate) fn host_vec(t: FlexTensor) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().expect("an f32 tensor")
}

/// `t` after `f` has rewritten its f32 values (row-major), and what `f` returned: in `t`'s own
/// buffer where `t` owns it contiguously (the result of a matmul or of another host loop), else in
/// a contiguous copy. Saves the copy out of and back into a tensor that [`host_vec`] and
/// `from_data` make (8 MB per block of the attention scores).
#[cfg(feature = "flex")]
pub(crate) fn host_in_place<R>(t: FlexTensor, f: impl FnOnce(&mut [f32]) -> R) -> (FlexTensor, R) {
    // `to_contiguous` shares the buffer when it already is contiguous; taking `t` by value drops
    // the caller's handle first, so the buffer stays uniquely owned and `storage_mut` copies nothing.
    let mut t = owned_contiguous(t);
    let out = f(t.storage_mut::<f32>());
    (t, out)
}

#[cfg(feature = "flex")]
fn owned_contiguous(t: FlexTensor) -> FlexTensor {
    t.to_contiguous()
}

/// Elements per task of a row-wise loop: whole rows of `row` elements, about [`HOST_CHUNK`] of them.
pub(crate) fn row_task_len(row: usize) -> usize {
    let row = row.max(1);
    row * (HOST_CHUNK / row).max(1)
}

/// Defines `fn NAME(ARGS) -> RET` that runs `PORTABLE` (an `#[inline(always)]` function of the same
/// arguments) in a copy compiled for AVX-512 when the CPU has it, chosen at run time, and as compiled
/// otherwise. The binary targets baseline x86-64, where the compiler vectorises loops 4 lanes wide
/// (SSE2); the copy runs the same operations 16 lanes wide, which for IEEE additions, multiplications,
/// divisions and square roots gives the same bits (the compiler fuses nothing without being told).
///
/// ```
/// #[inline(always)]
/// fn scale_portable(values: &mut [f32], by: f32) {
///     values.iter_mut().for_each(|v| *v *= by);
/// }
///
/// kiln_kernels::avx512_dispatch! {
///     /// Multiply every value by `by`.
///     fn scale(values: &mut [f32], by: f32) => scale_portable
/// }
///
/// let mut v: Vec<f32> = (0..37).map(|i| i as f32).collect();
/// scale(&mut v, 0.5);
/// assert!(v.iter().enumerate().all(|(i, &x)| x == i as f32 * 0.5));
/// ```
#[macro_export]
#[doc(hidden)]
macro_rules! avx512_dispatch {
    ($(#[$attr:meta])* $vis:vis fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $portable:path) => {
        $(#[$attr])*
        $vis fn $name($($arg: $ty),*) $(-> $ret)? {
            /// # Safety
            ///
            /// The CPU must support AVX-512F.
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f")]
            unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                $portable($($arg),*)
            }
            #[cfg(target_arch = "x86_64")]
            if std::arch::is_x86_feature_detected!("avx512f") {
                // SAFETY: the CPU has AVX-512F, checked just above.
                return unsafe { avx512($($arg),*) };
            }
            $portable($($arg),*)
        }
    };
}

#[cfg(all(test, feature = "flex"))]
mod tests {
    use super::*;

    fn flex(values: Vec<f32>, shape: [usize; 2]) -> FlexTensor {
        FlexTensor::from_data(TensorData::new(values, shape))
    }

    fn values(t: FlexTensor) -> Vec<f32> {
        t.into_data().try_into_vec::<f32>().expect("f32")
    }

    /// `host_in_place` writes an owned tensor's own buffer, copies a shared one (the other handle
    /// keeps its values) and a strided view (only the view's elements, in row-major order).
    #[test]
    fn host_in_place_writes_only_what_it_owns() {
        let t = flex((0..6).map(|i| i as f32).collect(), [2, 3]);
        let before = t.bytes().as_ptr();
        let (t, sum) = host_in_place(t, |x| {
            x.iter_mut().for_each(|v| *v *= 10.0);
            x.iter().sum::<f32>()
        });
        assert_eq!((t.bytes().as_ptr(), sum), (before, 150.0));
        let shared = t.clone();
        let (doubled, _) = host_in_place(t, |x| x.iter_mut().for_each(|v| *v *= 2.0));
        assert_eq!(values(shared), [0.0, 10.0, 20.0, 30.0, 40.0, 50.0]);
        assert_eq!(values(doubled.clone()), [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
        // The transpose [3, 2] and its first column's rows [1, 2] of the [2, 3] tensor.
        let (negated, seen) = host_in_place(doubled.transpose(0, 1).narrow(0, 1, 2), |x| {
            let seen = x.to_vec();
            x.iter_mut().for_each(|v| *v = -*v);
            seen
        });
        assert_eq!(seen, [20.0, 80.0, 40.0, 100.0]);
        assert_eq!(values(negated), [-20.0, -80.0, -40.0, -100.0]);
        assert_eq!(values(doubled), [0.0, 20.0, 40.0, 60.0, 80.0, 100.0]);
    }
}
