//! What the host loops that stand in for Burn ops on flex share: whether a device is flex, a
//! tensor's values as a `Vec`, how many whole rows make one Rayon task, and [`avx512_dispatch!`]
//! (`crate::avx512_dispatch`), which compiles a loop a second time for AVX-512.

use burn::backend::flex::FlexTensor;
use burn::prelude::*;

use crate::feed_forward::HOST_CHUNK;

/// Whether `device` is flex, with or without autodiff.
pub fn is_flex(device: &Device) -> bool {
    format!("{:?}", device.clone().without_autodiff()).contains("Flex")
}

/// Whether `device` is flex with autodiff (training), where the training-only extensions run.
pub(crate) fn is_flex_training(device: &Device) -> bool {
    device.is_autodiff() && is_flex(device)
}

/// The f32 values of a flex tensor, in row-major order (the buffer itself when the tensor owns it).
pub(crate) fn host_vec(t: FlexTensor) -> Vec<f32> {
    t.into_data().try_into_vec::<f32>().expect("an f32 tensor")
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
/// kiln_layers::avx512_dispatch! {
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
