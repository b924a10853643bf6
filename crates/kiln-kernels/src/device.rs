//! Which backend a device runs on, told by the type of Burn's dispatch device (the variant of
//! [`DispatchDevice`] under any autodiff wrapper), never by its name. Only the door's operations ask.

use burn::backend::DispatchDevice;
use burn::prelude::Device;

/// The dispatch device that computes, autodiff stripped.
fn compute(device: &Device) -> &DispatchDevice {
    match device.as_dispatch() {
        DispatchDevice::Autodiff(inner) => inner,
        other => other,
    }
}

/// Whether `device` is Burn's flex backend, with or without autodiff, and the `flex` feature compiled
/// Kiln's kernels for it.
pub(crate) fn is_flex(device: &Device) -> bool {
    #[cfg(feature = "flex")]
    if let DispatchDevice::Flex(_) = compute(device) {
        return true;
    }
    let _ = compute(device);
    false
}

/// Whether `device` is Burn's ndarray backend (with the `ndarray` feature).
fn is_ndarray(device: &Device) -> bool {
    #[cfg(feature = "ndarray")]
    if let DispatchDevice::NdArray(_) = compute(device) {
        return true;
    }
    let _ = compute(device);
    false
}

/// Whether `device` computes in host memory with a backend the host loops know (flex, ndarray): a
/// host loop there reads and writes tensor values without a transfer.
pub(crate) fn on_host(device: &Device) -> bool {
    is_flex(device) || is_ndarray(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// flex is recognised with and without autodiff (when the kernels are compiled in), and
    /// autodiff alone is not taken for flex.
    #[test]
    fn flex_is_told_by_type() {
        let flex = Device::flex();
        assert_eq!(is_flex(&flex), cfg!(feature = "flex"));
        assert_eq!(is_flex(&flex.clone().autodiff()), cfg!(feature = "flex"));
        assert_eq!(on_host(&flex), cfg!(feature = "flex"));
    }
}
