//! A trainer's side of a remote worker: connect a device on it through Burn's remote backend
//! (`burn::remote`), with the credential Kiln's workers check ([`super::credential`]).

use std::path::Path;

use burn::prelude::Device;
use burn::remote::{ConnectError, EndpointId, IrohHost, IrohRelays, RemoteHost};

use super::address::Address;
use super::credential::{self, Token};

/// Connect the device of the worker at `address`, presenting the token in `token_file` (if any) and
/// this build's Kiln version.
///
/// A WebSocket address is first asked whether it answers ([`super::address::answers`]), so that an
/// address nobody listens on fails at once (Burn's own connect retries for about 16 s).
///
/// # Errors
///
/// The token file cannot be read; nothing listens at the address; the worker refused the token or
/// runs another Kiln version (its log says which); another Burn release on the worker.
pub fn connect(address: &Address, token_file: Option<&Path>) -> anyhow::Result<Device> {
    let token = token_file.map(Token::read).transpose()?;
    let host = match address {
        Address::WebSocket { url } => {
            super::address::answers(url).map_err(|why| {
                anyhow::anyhow!(
                    "worker {address}: nothing answers there ({why}); is `kiln serve` running on that machine and port?"
                )
            })?;
            RemoteHost::websocket(url)
        }
        Address::Iroh { id, direct } => {
            let id: EndpointId = id.parse().map_err(|e| anyhow::anyhow!("{address}: bad endpoint id: {e}"))?;
            let host = match direct {
                Some(at) => IrohHost::new(id).with_relays(IrohRelays::Disabled).with_address(*at),
                None => IrohHost::new(id),
            };
            RemoteHost::iroh(host)
        }
    };
    let host = host.with_credential(credential::present(token.as_ref()));
    Device::remote_options(&host).init().map_err(|e| explain(address, token_file, e))
}

/// One message for a failed connect, naming the worker and what to check.
fn explain(address: &Address, token_file: Option<&Path>, e: ConnectError) -> anyhow::Error {
    let version = credential::version();
    match e {
        ConnectError::Unauthorized => {
            let token = match token_file {
                Some(path) => format!("the token in {} is not the worker's", path.display()),
                None => "this trainer presented no token (set [device] token_file) and the worker wants one".into(),
            };
            anyhow::anyhow!(
                "worker {address} refused this trainer (Kiln {version}): {token}, or the worker runs another Kiln version; the worker's log says which"
            )
        }
        ConnectError::Unreachable { reason } => {
            anyhow::anyhow!(
                "worker {address}: nothing answers there ({reason}); is `kiln serve` running on that machine?"
            )
        }
        ConnectError::IncompatibleProtocol { .. } => {
            anyhow::anyhow!("worker {address}: {e}; build the worker and the trainer from the same Kiln release")
        }
        other => anyhow::anyhow!("worker {address}: {other}"),
    }
}
