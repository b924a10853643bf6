//! What the host loops that stand in for Burn ops on flex share: whether a device is flex, a
//! tensor's values as a `Vec`, and how many whole rows make one Rayon task.

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
