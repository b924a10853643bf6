//! The syntax of a remote worker's device name, checked in every build (so `kiln check` validates a
//! device list without the `distributed` feature and without connecting):
//!
//! - `remote:ws://HOST:PORT`: a `kiln serve` worker over WebSocket (plain; loopback or a trusted
//!   network);
//! - `remote:iroh:ENDPOINT_ID@IP:PORT`: a worker over Iroh (QUIC, authenticated and encrypted),
//!   dialled directly at that address;
//! - `remote:iroh:ENDPOINT_ID`: the same, found through n0's public relays (needs the internet).

use std::fmt;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{Context, bail};

/// The prefix of every remote device name.
pub const PREFIX: &str = "remote:";

/// Where a remote worker is and how to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Address {
    /// `ws://host:port`.
    WebSocket {
        /// The URL as given (`ws://host:port`).
        url: String,
    },
    /// An Iroh endpoint: its id (64 hex digits) and, when given, the address to dial.
    Iroh {
        /// The endpoint id, 64 lowercase hex digits.
        id: String,
        /// Where to dial it; `None`: look it up through the public relays.
        direct: Option<SocketAddr>,
    },
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::WebSocket { url } => write!(f, "{PREFIX}{url}"),
            Self::Iroh { id, direct: Some(at) } => write!(f, "{PREFIX}iroh:{id}@{at}"),
            Self::Iroh { id, direct: None } => write!(f, "{PREFIX}iroh:{id}"),
        }
    }
}

/// Whether `name` names a remote device (starts with `remote:`).
pub fn is_remote(name: &str) -> bool {
    name.starts_with(PREFIX)
}

/// Parse a remote device name (see the module's documentation).
///
/// # Errors
///
/// `name` does not start with `remote:`, or what follows is neither a `ws://host:port` URL nor an
/// Iroh endpoint id (with an optional `@ip:port`).
pub fn parse(name: &str) -> anyhow::Result<Address> {
    const FORMS: &str = "expected remote:ws://HOST:PORT, remote:iroh:ENDPOINT_ID@IP:PORT or remote:iroh:ENDPOINT_ID";
    let Some(rest) = name.strip_prefix(PREFIX) else { bail!("`{name}` is not a remote device; {FORMS}") };
    if let Some(authority) = rest.strip_prefix("ws://") {
        let authority = authority.strip_suffix('/').unwrap_or(authority);
        let (host, port) =
            authority.rsplit_once(':').with_context(|| format!("`{name}`: the URL needs a port (ws://HOST:PORT)"))?;
        let host_ok = !host.is_empty()
            && (host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
                || (host.starts_with('[') && host.ends_with(']')));
        if !host_ok {
            bail!("`{name}`: `{host}` is not a host name or IP address");
        }
        if port.parse::<u16>().map_or(true, |p| p == 0) {
            bail!("`{name}`: `{port}` is not a port (1-65535)");
        }
        return Ok(Address::WebSocket { url: format!("ws://{authority}") });
    }
    if let Some(endpoint) = rest.strip_prefix("iroh:") {
        let (id, direct) = match endpoint.split_once('@') {
            Some((id, at)) => {
                let at = at.parse::<SocketAddr>().map_err(|_| {
                    anyhow::anyhow!(
                        "`{name}`: `{at}` after `@` is not an IP:PORT address (give an IP, not a host name)"
                    )
                })?;
                (id, Some(at))
            }
            None => (endpoint, None),
        };
        if id.len() != 64 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            bail!("`{name}`: `{id}` is not an Iroh endpoint id (64 hex digits, as `kiln serve --token-file` prints)");
        }
        return Ok(Address::Iroh { id: id.to_ascii_lowercase(), direct });
    }
    if rest.starts_with("wss://") || rest.starts_with("http") {
        bail!("`{name}`: workers speak plain WebSocket (ws://) or Iroh; for encryption use Iroh");
    }
    bail!("`{name}`: {FORMS}")
}

/// How long [`answers`] waits to connect and for the first byte.
const ANSWER_LIMIT: Duration = Duration::from_secs(3);

/// Whether the process at a `ws://host:port` URL answers: a new TCP connection, a request line,
/// and any reply (an HTTP error or a close) within 3 s. A worker that is gone refuses the
/// connection; one that is frozen (or whose network is silent) does not reply.
///
/// # Errors
///
/// Why it does not answer, in a few words.
pub fn answers(url: &str) -> Result<(), String> {
    let authority = url.trim_start_matches("ws://");
    let targets: Vec<SocketAddr> =
        authority.to_socket_addrs().map_err(|e| format!("cannot resolve {authority}: {e}"))?.collect();
    let mut why = format!("{authority} resolves to no address");
    for target in targets {
        let mut stream = match TcpStream::connect_timeout(&target, ANSWER_LIMIT) {
            Ok(s) => s,
            Err(e) => {
                why = format!("connecting: {e}");
                continue;
            }
        };
        let _ = stream.set_read_timeout(Some(ANSWER_LIMIT));
        let _ = stream.set_write_timeout(Some(ANSWER_LIMIT));
        if let Err(e) = stream.write_all(b"GET / HTTP/1.1\r\nHost: kiln-probe\r\n\r\n") {
            why = format!("writing: {e}");
            continue;
        }
        let mut byte = [0u8; 1];
        match stream.read(&mut byte) {
            Ok(_) => return Ok(()),
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                why = format!("connected, but no reply in {} s", ANSWER_LIMIT.as_secs());
            }
            Err(e) => why = format!("reading: {e}"),
        }
    }
    Err(why)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0f3a6c1e9b2d4f5a6c7e8d9f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d";

    /// Every accepted form parses to the address it names and prints back as given.
    #[test]
    fn accepted_forms_round_trip() {
        for (name, address) in [
            ("remote:ws://127.0.0.1:3000", Address::WebSocket { url: "ws://127.0.0.1:3000".into() }),
            ("remote:ws://gpu-7.lab:41000", Address::WebSocket { url: "ws://gpu-7.lab:41000".into() }),
            ("remote:ws://[::1]:3000", Address::WebSocket { url: "ws://[::1]:3000".into() }),
            (
                &format!("remote:iroh:{ID}@10.0.0.2:3100"),
                Address::Iroh { id: ID.into(), direct: Some("10.0.0.2:3100".parse().unwrap()) },
            ),
            (&format!("remote:iroh:{ID}"), Address::Iroh { id: ID.into(), direct: None }),
        ] {
            let parsed = parse(name).unwrap();
            assert_eq!(parsed, address, "{name}");
            assert_eq!(parsed.to_string(), name);
        }
    }

    /// A listener that replies answers; a closed port and a listener that never replies do not.
    #[test]
    fn answers_tells_live_gone_and_silent_listeners_apart() {
        let live = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let live_url = format!("ws://{}", live.local_addr().unwrap());
        let replier = std::thread::spawn(move || {
            let (mut s, _) = live.accept().unwrap();
            let mut buf = [0u8; 64];
            let _ = s.read(&mut buf);
            s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").unwrap();
        });
        assert_eq!(answers(&live_url), Ok(()));
        replier.join().unwrap();
        let gone = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        assert!(answers(&format!("ws://{gone}")).unwrap_err().contains("connecting"));
        // Accepted by the kernel's backlog but never read: a frozen process.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let why = answers(&format!("ws://{}", silent.local_addr().unwrap())).unwrap_err();
        assert!(why.contains("no reply in 3 s"), "{why}");
    }

    /// Each malformed name is refused with a message that names it and what is wrong.
    #[test]
    fn malformed_names_are_refused_by_name() {
        for (name, says) in [
            ("remote:ws://127.0.0.1", "needs a port"),
            ("remote:ws://127.0.0.1:0", "is not a port"),
            ("remote:ws://127.0.0.1:70000", "is not a port"),
            ("remote:ws://:3000", "is not a host name"),
            ("remote:ws://a b:3000", "is not a host name"),
            ("remote:wss://host:3000", "for encryption use Iroh"),
            ("remote:iroh:abc", "is not an Iroh endpoint id"),
            ("remote:iroh:zz@1.2.3.4:5", "is not an Iroh endpoint id"),
            (&format!("remote:iroh:{ID}@gpu:3000"), "is not an IP:PORT"),
            ("remote:tcp://host:1", "expected remote:ws://"),
            ("flex", "is not a remote device"),
        ] {
            let e = parse(name).unwrap_err().to_string();
            assert!(e.contains(says) && e.contains(name.split('@').next().unwrap()), "{name}: {e}");
        }
    }
}
