//! The worker behind `kiln serve` (feature `distributed`): Burn's remote server on one device of
//! this machine, with Kiln's credential check ([`super::credential`]) as its authorizer.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};

use anyhow::{Context, bail};
use burn::server::{AuthorizationRequest, IrohIdentity, IrohRelays, IrohTransport, RemoteServer, WebSocketTransport};

use super::credential::{self, Token};
use super::serve::{ServeArgs, Transport};

/// Run a worker until Ctrl-C or SIGTERM.
///
/// # Errors
///
/// A bad device name or token file, a non-loopback address without a token, a port in use.
pub(super) fn serve(args: ServeArgs) -> anyhow::Result<i32> {
    if crate::remote::address::is_remote(&args.device) {
        bail!("--device: a worker serves a device of its own machine (flex, ndarray, wgpu, ...)");
    }
    let device = crate::backend::device(&args.device)?;
    let transport = args.transport()?;
    let token = args.token_file.as_deref().map(Token::read).transpose()?;
    log_to_stderr();
    let version = credential::version();
    let guarded = token.is_some();
    let lock = if guarded { "a token" } else { "no token" };
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
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the worker's runtime")?;
    let listen = args.listen;
    let served = runtime.block_on(async {
        // Registered before the name is printed, so a signal never finds the worker without them.
        let stop = stop_signal()?;
        let announce = |name: &str, how: String| {
            println!("{name}");
            eprintln!(
                "[kiln serve] Kiln {version} worker on {} over {how}; list `{name}` in a trainer's [device] devices{}; Ctrl-C stops",
                args.device,
                if guarded { " with the same token file" } else { "" }
            );
        };
        match transport {
            Transport::WebSocket => {
                let listener = TcpListener::bind(listen).with_context(|| format!("--listen {listen}"))?;
                let bound = listener.local_addr()?;
                let at = if bound.ip().is_unspecified() { SocketAddr::new(outward_ip(), bound.port()) } else { bound };
                let open = if listen.ip().is_loopback() { "" } else { ", unencrypted" };
                announce(&format!("remote:ws://{at}"), format!("WebSocket ({lock}{open}) on {bound}"));
                until(server.serve_async(WebSocketTransport::from_listener(listener)), stop).await
            }
            Transport::Iroh if listen.ip().is_unspecified() => {
                let port = free_udp_port(listen)?;
                let transport =
                    IrohTransport::new(identity(&args)?).with_relays(IrohRelays::Disabled).with_port(port);
                let name = format!("remote:iroh:{}@{}", transport.id(), SocketAddr::new(outward_ip(), port));
                announce(&name, format!("Iroh (encrypted, {lock}) on UDP port {port} of every interface"));
                until(server.serve_async(transport), stop).await
            }
            Transport::Iroh => serve_iroh_at(server, identity(&args)?, listen, stop, |name, at| {
                announce(name, format!("Iroh (encrypted, {lock}) on UDP {at}"))
            })
            .await,
        }
    });
    served.with_context(|| format!("worker on {listen}"))?;
    eprintln!("[kiln serve] stopped");
    Ok(0)
}

/// The Iroh identity: kept in `--iroh-key`, or new.
fn identity(args: &ServeArgs) -> anyhow::Result<IrohIdentity> {
    match &args.iroh_key {
        Some(path) => IrohIdentity::load_or_create(path).with_context(|| format!("--iroh-key {}", path.display())),
        None => Ok(IrohIdentity::random()),
    }
}

/// Serve Burn's remote protocol on an Iroh endpoint bound to exactly `listen` (one interface, not
/// all of them as `IrohTransport` does), relays disabled, until `stop`; `announce` gets the name to
/// list and the bound address.
async fn serve_iroh_at(
    server: RemoteServer,
    identity: IrohIdentity,
    listen: SocketAddr,
    stop: Stop,
    announce: impl FnOnce(&str, SocketAddr),
) -> anyhow::Result<()> {
    use burn::server::BURN_REMOTE_ALPN;
    let endpoint = iroh::Endpoint::builder(iroh::endpoint::presets::Minimal)
        .relay_mode(iroh::RelayMode::Disabled)
        .clear_ip_transports()
        .bind_addr(listen.to_string())
        .map_err(|e| anyhow::anyhow!("--listen {listen}: {e}"))?
        .secret_key(iroh::SecretKey::from_bytes(&identity.to_bytes()))
        .alpns(vec![BURN_REMOTE_ALPN.to_vec()])
        .bind()
        .await
        .with_context(|| format!("binding an Iroh endpoint on {listen}"))?;
    let at = endpoint.bound_sockets().into_iter().find(|a| a.ip() == listen.ip()).unwrap_or(listen);
    let name = format!("remote:iroh:{}@{at}", endpoint.id());
    let protocol = server.into_protocol(&endpoint).map_err(|e| anyhow::anyhow!("{e}"))?;
    let router = iroh::protocol::Router::builder(endpoint).accept(BURN_REMOTE_ALPN, protocol).spawn();
    announce(&name, at);
    stop.await;
    // Closes the connections, so that trainers learn at once that the worker is gone.
    router.shutdown().await.map_err(|e| anyhow::anyhow!("closing the Iroh endpoint: {e}"))
}

/// Ctrl-C or SIGTERM.
type Stop = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

/// The stop signal, registered at once (a `tokio::signal::ctrl_c()` future would register only once
/// polled). Must be called on the runtime.
fn stop_signal() -> anyhow::Result<Stop> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt()).context("installing the Ctrl-C handler")?;
        let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
        Ok(Box::pin(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        }))
    }
    #[cfg(not(unix))]
    Ok(Box::pin(async {
        let _ = tokio::signal::ctrl_c().await;
    }))
}

/// Serve until `stop` (then `Ok`) or until serving fails.
async fn until(serving: impl Future<Output = Result<(), burn::server::ServeError>>, stop: Stop) -> anyhow::Result<()> {
    tokio::select! {
        served = serving => served.map_err(|e| anyhow::anyhow!("{e}")),
        () = stop => Ok(()),
    }
}

/// Burn's server events (sessions, refusals) to standard error, at `info` but for the line per
/// tensor transfer that `burn_communication` writes, unless `RUST_LOG` says otherwise. (`serve_async`
/// installs no logger; standard output carries only the device name to list.)
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
