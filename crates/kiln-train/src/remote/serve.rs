//! `kiln serve`: a worker that runs the tensor operations of trainers elsewhere on this machine's
//! device, through Burn's remote server (`burn::server::RemoteServer`).
//!
//! On the loopback address (the default, `127.0.0.1:3000`) it serves plain WebSocket, with or
//! without a token. Anywhere else it needs a token file and serves Iroh (QUIC, authenticated and
//! encrypted) on the given UDP port; plain WebSocket off the loopback address, with or without a
//! token, takes `--insecure-websocket`. Every session a trainer opens is logged, refused ones with the reason;
//! Ctrl-C or SIGTERM stops the worker.

use std::net::SocketAddr;
use std::path::PathBuf;

/// `kiln serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// The device whose operations this worker runs: flex, ndarray, wgpu, wgpu:N, cpu.
    #[arg(long, default_value = "flex")]
    pub device: String,
    /// Where to listen. A loopback address serves WebSocket (TCP) unless --iroh; any other serves
    /// Iroh (UDP: on exactly that address, or on every interface for 0.0.0.0) and needs
    /// --token-file. Port 0 picks a free port (printed).
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
    /// A file whose first line is the shared token; trainers present it from `[device] token_file`.
    #[arg(long, value_name = "FILE")]
    pub token_file: Option<PathBuf>,
    /// Keep the Iroh identity (hence the endpoint id trainers dial) in this file across restarts;
    /// created if missing. Default: a new identity at every start.
    #[arg(long, value_name = "FILE")]
    pub iroh_key: Option<PathBuf>,
    /// Serve plain, unencrypted WebSocket on a non-loopback address, with or without a token (a
    /// trusted network only: anyone who can read the traffic sees the token and the tensors, and
    /// without a token anyone who can reach the port is served).
    #[arg(long, conflicts_with = "iroh")]
    pub insecure_websocket: bool,
    /// Serve Iroh (encrypted, authenticated) also on a loopback address.
    #[arg(long)]
    pub iroh: bool,
}

/// The transport a worker serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Plain WebSocket (TCP).
    WebSocket,
    /// Iroh (QUIC over UDP), encrypted, the worker authenticated by its endpoint id.
    Iroh,
}

impl ServeArgs {
    /// The transport these flags ask for: WebSocket on a loopback address, Iroh elsewhere (and with
    /// `--iroh`), plain WebSocket elsewhere only with `--insecure-websocket`.
    ///
    /// # Errors
    ///
    /// A non-loopback address without a token file and without `--insecure-websocket`.
    pub fn transport(&self) -> anyhow::Result<Transport> {
        let loopback = self.listen.ip().is_loopback();
        if self.insecure_websocket || (loopback && !self.iroh) {
            return Ok(Transport::WebSocket);
        }
        if !loopback && self.token_file.is_none() {
            anyhow::bail!(
                "--listen {}: a worker off the loopback address needs --token-file (the same file the trainers' [device] token_file names), or --insecure-websocket to serve anyone who can reach it, unencrypted",
                self.listen
            );
        }
        Ok(Transport::Iroh)
    }
}

/// Run a worker until Ctrl-C or SIGTERM.
///
/// # Errors
///
/// A bad device name or token file, a non-loopback address without a token, a port in use; a build
/// without the `distributed` feature.
pub fn serve(args: ServeArgs) -> anyhow::Result<i32> {
    #[cfg(feature = "distributed")]
    return super::worker::serve(args);
    #[cfg(not(feature = "distributed"))]
    {
        let _ = args;
        anyhow::bail!(
            "`kiln serve` needs the `distributed` feature: rebuild with `cargo build --release --features distributed`"
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn transport(flags: &[&str]) -> anyhow::Result<Transport> {
        Cli::try_parse_from(std::iter::once("serve").chain(flags.iter().copied())).unwrap().serve.transport()
    }

    /// Loopback serves WebSocket unless told Iroh; any other address serves Iroh and needs a token,
    /// unless `--insecure-websocket` says otherwise (with or without a token); the two flags exclude
    /// each other.
    #[test]
    fn the_address_and_the_flags_choose_the_transport() {
        let token = ["--token-file", "t"];
        assert_eq!(transport(&[]).unwrap(), Transport::WebSocket);
        assert_eq!(transport(&["--listen", "127.0.0.1:0", "--iroh"]).unwrap(), Transport::Iroh);
        assert_eq!(transport(&["--listen", "[::1]:9"]).unwrap(), Transport::WebSocket);
        for listen in ["0.0.0.0:3000", "10.1.2.3:3000"] {
            let e = transport(&["--listen", listen]).unwrap_err().to_string();
            assert!(e.contains("needs --token-file") && e.contains(listen), "{e}");
            assert_eq!(transport(&["--listen", listen, token[0], token[1]]).unwrap(), Transport::Iroh);
            assert_eq!(transport(&["--listen", listen, "--insecure-websocket"]).unwrap(), Transport::WebSocket);
            let both = [&["--listen", listen, "--insecure-websocket"][..], &token[..]].concat();
            assert_eq!(transport(&both).unwrap(), Transport::WebSocket);
        }
        assert!(Cli::try_parse_from(["serve", "--iroh", "--insecure-websocket"]).is_err());
    }
}
