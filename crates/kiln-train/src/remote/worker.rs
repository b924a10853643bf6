//! The worker behind `kiln serve` (feature `distributed`): Burn's remote server on one device of
//! this machine, with Kiln's credential check ([`super::credential`]) as its authorizer.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};

use anyhow::{Context, bail};
use burn::server::{AuthorizationRequest, IrohIdentity, IrohRelays, IrohTransport, RemoteServer, WebSocketTransport};

use super::credential::{self, Token};
use super::serve::ServeArgs;

/// Run a worker until Ctrl-C or SIGTERM.
///
/// # Errors
///
/// A bad device name or token file, a non-loopback address without a token, a port in use.
pub(super) fn serve(args: ServeArgs) -> anyhow::Result<i32> {
    let device = crate::backend::device(&args.device)?;
    if crate::remote::address::is_remote(&args.device) {
        bail!("--device: a worker serves a device of its own machine (flex, ndarray, wgpu, ...)");
    }
    let token = args.token_file.as_deref().map(Token::read).transpose()?;
    let loopback = args.listen.ip().is_loopback();
    let websocket = loopback || args.insecure_websocket;
    if !loopback && token.is_none() && !args.insecure_websocket {
        bail!(
            "--listen {}: a worker off the loopback address needs --token-file (the same file the trainers' [device] token_file names), or --insecure-websocket to serve anyone who can reach it, unencrypted",
            args.listen
        );
    }
    log_to_stderr();
    let version = credential::version();
    let guarded = token.is_some();
    let server = RemoteServer::new([device]).with_authorizer(move |request: AuthorizationRequest<'_>| {
        let client = request.client;
        match credential::check(request.credential.as_bytes(), token.as_ref()) {
            None => {
                eprintln!("[kiln serve] trainer {client} connected (device {})", request.device_index);
                Ok(())
            }
            Some(why) => {
                eprintln!("[kiln serve] refused trainer {client}: {why}");
                Err(why)
            }
        }
    });
    let lock = if guarded { "a token" } else { "no token" };
    let served = if websocket {
        let listener = TcpListener::bind(args.listen).with_context(|| format!("--listen {}", args.listen))?;
        let bound = listener.local_addr()?;
        let at = if bound.ip().is_unspecified() { SocketAddr::new(outward_ip(), bound.port()) } else { bound };
        run(server.serve_async(WebSocketTransport::from_listener(listener)), &format!("remote:ws://{at}"), || {
            eprintln!(
                "[kiln serve] Kiln {version} worker on {} over WebSocket ({lock}{}) on {bound}; list `remote:ws://{at}` in a trainer's [device] devices; Ctrl-C stops",
                args.device,
                if loopback { "" } else { ", unencrypted" },
            )
        })
    } else {
        let identity = match &args.iroh_key {
            Some(path) => {
                IrohIdentity::load_or_create(path).with_context(|| format!("--iroh-key {}", path.display()))?
            }
            None => IrohIdentity::random(),
        };
        let port = free_udp_port(args.listen)?;
        let transport = IrohTransport::new(identity).with_relays(IrohRelays::Disabled).with_port(port);
        let shown = if args.listen.ip().is_unspecified() { outward_ip() } else { args.listen.ip() };
        let name = format!("remote:iroh:{}@{}", transport.id(), SocketAddr::new(shown, port));
        run(server.serve_async(transport), &name, || {
            eprintln!(
                "[kiln serve] Kiln {version} worker on {} over Iroh (encrypted, {lock}), UDP port {port} on every interface; list `{name}` in a trainer's [device] devices with the same token file; Ctrl-C stops",
                args.device
            )
        })
    };
    served.with_context(|| format!("worker on {}", args.listen))?;
    eprintln!("[kiln serve] stopped");
    Ok(0)
}

/// Serve until Ctrl-C or SIGTERM, on a runtime of its own: the signal handlers are in place before
/// the worker prints `name` (the line a trainer or a script waits for) and `announce`s itself, so a
/// signal never finds the process without them.
fn run(
    serving: impl Future<Output = Result<(), burn::server::ServeError>> + Send + 'static,
    name: &str,
    announce: impl FnOnce(),
) -> anyhow::Result<()> {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the worker's runtime")?;
    runtime.block_on(async {
        // Registered here, before the name is printed (a `ctrl_c()` future would register only once
        // polled).
        #[cfg(unix)]
        let (mut interrupt, mut terminate) = {
            use tokio::signal::unix::{SignalKind, signal};
            let interrupt = signal(SignalKind::interrupt()).context("installing the Ctrl-C handler")?;
            (interrupt, signal(SignalKind::terminate()).context("installing the SIGTERM handler")?)
        };
        #[cfg(unix)]
        let stop = async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        };
        #[cfg(not(unix))]
        let stop = async {
            let _ = tokio::signal::ctrl_c().await;
        };
        println!("{name}");
        announce();
        tokio::select! {
            served = serving => served.map_err(|e| anyhow::anyhow!("{e}")),
            () = stop => Ok(()),
        }
    })
}

/// Burn's server events (sessions, refusals) to standard error, at `info` but for the line per
/// tensor transfer that `burn_communication` writes, unless `RUST_LOG` says otherwise, before `serve` would install its own logger on standard output, which
/// carries only the device name to list.
fn log_to_stderr() {
    use tracing_subscriber::EnvFilter;
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,burn_communication=warn,wgpu=warn"));
    let _ = tracing_subscriber::fmt().with_writer(std::io::stderr).with_env_filter(filter).try_init();
}

/// The UDP port to serve Iroh on: the given one, or a free one for port 0.
fn free_udp_port(listen: SocketAddr) -> anyhow::Result<u16> {
    if listen.port() != 0 {
        return Ok(listen.port());
    }
    let socket = UdpSocket::bind(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0))?;
    Ok(socket.local_addr()?.port())
}

/// The address other machines most likely reach this one at: the source address of a route to a
/// documentation address (no packet is sent). Loopback if there is no route.
fn outward_ip() -> IpAddr {
    UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").and_then(|()| s.local_addr()))
        .map_or(IpAddr::V4(Ipv4Addr::LOCALHOST), |a| a.ip())
}
