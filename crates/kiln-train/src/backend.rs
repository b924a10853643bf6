//! Backends by cargo feature, chosen at run time by name (`[device] backend` or `--device`).

use anyhow::bail;
use burn::prelude::*;

/// The backends compiled into this binary.
pub fn compiled() -> Vec<&'static str> {
    let mut v = Vec::new();
    if cfg!(feature = "flex") {
        v.push("flex");
    }
    if cfg!(feature = "ndarray") {
        v.push("ndarray");
    }
    if cfg!(feature = "wgpu") {
        v.extend(["wgpu", "wgpu:N", "cpu"]);
    }
    v
}

/// Check that `name` is a backend this program knows (compiled in or not).
pub fn known(name: &str) -> anyhow::Result<()> {
    let base =
        name.split_once(':').map_or(name, |(b, i)| if b == "wgpu" && i.parse::<usize>().is_ok() { b } else { name });
    if ["flex", "ndarray", "wgpu", "cpu"].contains(&base) {
        Ok(())
    } else {
        bail!(
            "unknown backend `{name}`; expected flex, ndarray, wgpu, wgpu:N (N-th discrete GPU) or cpu (wgpu on a CPU adapter)"
        )
    }
}

/// The device for a backend name: `flex`, `ndarray`, `wgpu` (the default GPU), `wgpu:N` (the N-th
/// discrete GPU) or `cpu` (wgpu on a CPU adapter such as Mesa's lavapipe).
pub fn device(name: &str) -> anyhow::Result<Device> {
    let (base, index) = match name.split_once(':') {
        Some((b, i)) => match i.parse::<usize>() {
            Ok(i) => (b, Some(i)),
            Err(_) => bail!("backend `{name}`: the part after `:` must be a GPU index"),
        },
        None => (name, None),
    };
    let feature = match base {
        "flex" | "ndarray" => base,
        "wgpu" | "cpu" => "wgpu",
        _ => bail!("unknown backend `{name}`; this binary has: {}", compiled().join(", ")),
    };
    if !compiled().contains(&base) {
        bail!(
            "backend `{name}` was not compiled into this binary (it has: {}); rebuild with `cargo build --release --features {feature}`",
            compiled().join(", ")
        );
    }
    build(base, index)
}

#[allow(unused_variables, unreachable_code)]
fn build(base: &str, index: Option<usize>) -> anyhow::Result<Device> {
    match base {
        #[cfg(feature = "flex")]
        "flex" => return Ok(Device::flex()),
        // Burn 0.22 marks ndarray deprecated in favour of flex; the issue asks for it as an option.
        #[cfg(feature = "ndarray")]
        #[allow(deprecated)]
        "ndarray" => return Ok(Device::ndarray()),
        #[cfg(feature = "wgpu")]
        "wgpu" => {
            use burn::tensor::DeviceKind;
            return Ok(Device::wgpu(match index {
                Some(i) => DeviceKind::DiscreteGpu(i),
                None => DeviceKind::DefaultDevice,
            }));
        }
        #[cfg(feature = "wgpu")]
        "cpu" => return Ok(Device::wgpu(burn::tensor::DeviceKind::Cpu)),
        _ => {}
    }
    bail!("backend `{base}` is not available in this build")
}
