//! Training across machines on Burn's remote backend: a `kiln serve` worker runs the tensor
//! operations of a trainer elsewhere, and the trainer lists it in `[device] devices` as one more
//! data-parallel replica (docs/distributed.md).
//!
//! Only the device-name syntax ([`address`]) is compiled without the `distributed` feature, so that
//! every build can validate a device list.

pub mod address;
#[cfg(feature = "distributed")]
pub mod client;
#[cfg(feature = "distributed")]
pub mod credential;
pub mod serve;
#[cfg(feature = "distributed")]
mod worker;

/// A liveness probe for each remote worker among `names` (for [`crate::watchdog::watch`]): a fresh
/// connection to a WebSocket worker that must be answered within 3 s (a dead worker refuses it, a
/// frozen one does not answer). Iroh workers are not probed.
pub fn probes(names: &[String]) -> Vec<(String, crate::watchdog::Probe)> {
    names
        .iter()
        .filter_map(|name| match address::parse(name) {
            Ok(address::Address::WebSocket { url }) => {
                let probe: crate::watchdog::Probe = Box::new(move || address::answers(&url).err());
                Some((name.clone(), probe))
            }
            _ => None,
        })
        .collect()
}
