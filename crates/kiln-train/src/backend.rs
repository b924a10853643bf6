//! Backends by cargo feature, chosen at run time by name (`[device] backend` or `--device`), and
//! remote workers (`remote:…`, feature `distributed`, [`crate::remote`]).

use std::path::Path;

use anyhow::bail;
use burn::prelude::*;

use crate::remote::address;

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
    if cfg!(feature = "distributed") {
        v.push("remote:…");
    }
    v
}

/// Check that `name` is a backend this program knows (compiled in or not), or a well-formed remote
/// worker's name (nothing is connected).
pub fn known(name: &str) -> anyhow::Result<()> {
    if address::is_remote(name) {
        return address::parse(name).map(|_| ());
    }
    let base =
        name.split_once(':').map_or(name, |(b, i)| if b == "wgpu" && i.parse::<usize>().is_ok() { b } else { name });
    if ["flex", "ndarray", "wgpu", "cpu"].contains(&base) {
        Ok(())
    } else {
        bail!(
            "unknown backend `{name}`; expected flex, ndarray, wgpu, wgpu:N (N-th discrete GPU), cpu (wgpu on a CPU adapter) or remote:ws://HOST:PORT (a `kiln serve` worker)"
        )
    }
}

/// The device for a backend name: `flex`, `ndarray`, `wgpu` (the default GPU), `wgpu:N` (the N-th
/// discrete GPU) or `cpu` (wgpu on a CPU adapter such as Mesa's lavapipe); a remote worker's name
/// connects without a token (see [`open`]).
pub fn device(name: &str) -> anyhow::Result<Device> {
    open(name, None)
}

/// [`device`], where a remote worker is connected presenting the token in `token_file`
/// (`[device] token_file`).
pub fn open(name: &str, token_file: Option<&Path>) -> anyhow::Result<Device> {
    if address::is_remote(name) {
        let address = address::parse(name)?;
        #[cfg(feature = "distributed")]
        return crate::remote::client::connect(&address, token_file);
        #[cfg(not(feature = "distributed"))]
        {
            let _ = token_file;
            bail!(
                "device `{address}` is a remote worker, and this binary was built without the `distributed` feature; rebuild with `cargo build --release --features distributed`"
            );
        }
    }
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
