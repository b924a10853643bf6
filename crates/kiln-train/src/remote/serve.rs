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
    /// Where to listen. A loopback address serves WebSocket (TCP); any other serves Iroh (UDP, on
    /// that port) and needs --token-file. Port 0 picks a free port (printed).
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
    #[arg(long)]
    pub insecure_websocket: bool,
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
