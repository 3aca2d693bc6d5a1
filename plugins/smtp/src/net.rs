//! The adapter's connection: a TCP socket over `wasi:sockets`, upgraded in place to TLS by the
//! host's `wasi:tls` (for `STARTTLS`, or straight after connecting for implicit TLS).
//!
//! The raw `wasi` bindings rather than std's `TcpStream`: the TLS handshake takes the socket's
//! own `wasi:io` streams, which std keeps to itself. Every wait (name lookup, connect, read,
//! write, handshake) is a poll against a deadline, so a silent server costs a bounded time
//! even before the host's call limit.

use crate::session::{self, LineTransport};
use belfry_plugin_sdk::adapter::SendError;
use std::time::Duration;
use wasi::clocks::monotonic_clock;
use wasi::io::poll::{Pollable, poll};
use wasi::io::streams::{InputStream, OutputStream, StreamError};
use wasi::sockets::instance_network::instance_network;
use wasi::sockets::ip_name_lookup::resolve_addresses;
use wasi::sockets::network::{
    ErrorCode, IpAddress, IpAddressFamily, IpSocketAddress, Ipv4SocketAddress, Ipv6SocketAddress,
};
use wasi::sockets::tcp::TcpSocket;
use wasi::sockets::tcp_create_socket::create_tcp_socket;

mod tls {
    wit_bindgen::generate!({
        world: "tls",
        path: "wit",
        // wasi:tls is `@unstable(feature = tls)` in its WIT; the host links it (tls.rs).
        features: ["tls"],
        with: {
            "wasi:io/error@0.2.4": ::wasi::io::error,
            "wasi:io/poll@0.2.4": ::wasi::io::poll,
            "wasi:io/streams@0.2.4": ::wasi::io::streams,
            "wasi:tls/types@0.2.0-draft": generate,
        },
    });
    pub use self::wasi::tls::types::*;
}

/// Prefixes of the host's handshake errors that no retry will mend (host/src/plugins/tls.rs,
/// `HandshakeFailure`): a refused certificate, a TLS protocol failure, TLS not allowed. A
/// broken connection (`connection failed: …`) is worth another try.
const PERMANENT_HANDSHAKE_FAILURES: [&str; 3] = [
    "certificate refused",
    "handshake refused",
    "tls not allowed",
];

/// The streams in use: the socket's, or the TLS connection's once upgraded. Field order is
/// drop order: the streams are the TLS connection's children and go first.
struct Streams {
    input: InputStream,
    output: OutputStream,
    _tls: Option<tls::ClientConnection>,
}

pub struct Connection {
    /// `host:port`, for messages.
    server: String,
    /// The name the server's certificate must be valid for.
    host: String,
    /// `None` once a handshake took the socket's streams and failed.
    streams: Option<Streams>,
    /// Bytes read past the last line returned.
    buffer: Vec<u8>,
    io_timeout: Duration,
    /// Dropped last: the streams came from it.
    _socket: TcpSocket,
}

impl Connection {
    /// Resolves `host` and connects to the first address that answers.
    pub fn connect(
        host: &str,
        port: u16,
        connect_timeout: Duration,
        io_timeout: Duration,
    ) -> Result<Connection, SendError> {
        let server = format!("{host}:{port}");
        let network = instance_network();
        let deadline = deadline(connect_timeout);
        let addresses = match host.trim_matches(['[', ']']).parse::<std::net::IpAddr>() {
            Ok(ip) => vec![ip_address(ip)],
            Err(_) => {
                let lookup = resolve_addresses(&network, host)
                    .map_err(|e| socket_failure(&server, "resolving", e))?;
                let mut addresses = Vec::new();
                loop {
                    match lookup.resolve_next_address() {
                        Ok(Some(address)) => addresses.push(address),
                        Ok(None) => break,
                        Err(ErrorCode::WouldBlock) => {
                            wait(&lookup.subscribe(), deadline, &server, "resolving")?
                        }
                        Err(e) => return Err(socket_failure(&server, "resolving", e)),
                    }
                }
                addresses
            }
        };
        if addresses.is_empty() {
            return Err(SendError::Transient(format!(
                "{host} resolves to no address"
            )));
        }
        let mut last = None;
        for address in addresses {
            match connect_one(&network, address, port, deadline, &server) {
                Ok((socket, input, output)) => {
                    return Ok(Connection {
                        server,
                        host: host.trim_matches(['[', ']']).to_string(),
                        streams: Some(Streams {
                            input,
                            output,
                            _tls: None,
                        }),
                        buffer: Vec::new(),
                        io_timeout,
                        _socket: socket,
                    });
                }
                Err(failure @ SendError::Permanent(_)) => return Err(failure),
                Err(failure) => last = Some(failure),
            }
        }
        Err(last.expect("at least one address was tried"))
    }

    fn streams(&self) -> Result<&Streams, SendError> {
        self.streams.as_ref().ok_or_else(|| ended(&self.server))
    }

    /// Reads what the server sent next (at least one byte); `false` at the end of the stream.
    fn fill(&mut self) -> Result<bool, SendError> {
        let deadline = deadline(self.io_timeout);
        let Some(streams) = &self.streams else {
            return Err(ended(&self.server));
        };
        loop {
            match streams.input.read(4096) {
                Ok(bytes) if !bytes.is_empty() => {
                    self.buffer.extend_from_slice(&bytes);
                    return Ok(true);
                }
                Ok(_) => wait(
                    &streams.input.subscribe(),
                    deadline,
                    &self.server,
                    "reading",
                )?,
                Err(StreamError::Closed) => return Ok(false),
                Err(StreamError::LastOperationFailed(e)) => {
                    return Err(SendError::Transient(format!(
                        "reading from {} failed: {}",
                        self.server,
                        e.to_debug_string()
                    )));
                }
            }
        }
    }
}

impl LineTransport for Connection {
    fn write_all(&mut self, data: &[u8]) -> Result<(), SendError> {
        let deadline = deadline(self.io_timeout);
        let streams = self.streams()?;
        let failed = |e: StreamError| {
            SendError::Transient(match e {
                StreamError::Closed => format!("{} closed the connection", self.server),
                StreamError::LastOperationFailed(e) => {
                    format!("writing to {} failed: {}", self.server, e.to_debug_string())
                }
            })
        };
        let mut rest = data;
        while !rest.is_empty() {
            let permitted = streams.output.check_write().map_err(failed)?;
            if permitted == 0 {
                wait(
                    &streams.output.subscribe(),
                    deadline,
                    &self.server,
                    "writing",
                )?;
                continue;
            }
            let n = rest.len().min(permitted as usize);
            streams.output.write(&rest[..n]).map_err(failed)?;
            rest = &rest[n..];
        }
        streams.output.flush().map_err(failed)?;
        // The flush is done when the stream accepts writes again.
        while streams.output.check_write().map_err(failed)? == 0 {
            wait(
                &streams.output.subscribe(),
                deadline,
                &self.server,
                "writing",
            )?;
        }
        Ok(())
    }

    fn read_line(&mut self) -> Result<String, SendError> {
        loop {
            if let Some(end) = self.buffer.iter().position(|b| *b == b'\n') {
                let mut line: Vec<u8> = self.buffer.drain(..=end).collect();
                while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                    line.pop();
                }
                return Ok(String::from_utf8_lossy(&line).into_owned());
            }
            if self.buffer.len() >= session::MAX_LINE_BYTES {
                return Err(SendError::Transient(format!(
                    "{} sent a line longer than {} bytes",
                    self.server,
                    session::MAX_LINE_BYTES
                )));
            }
            if !self.fill()? {
                return Err(SendError::Transient(format!(
                    "{} closed the connection",
                    self.server
                )));
            }
        }
    }

    fn start_tls(&mut self) -> Result<(), SendError> {
        if !self.buffer.is_empty() {
            // RFC 3207 5: what arrived before the handshake did not come through TLS, and
            // must not be read as if it had (an injected reply).
            return Err(SendError::Permanent(format!(
                "{} sent data before the TLS handshake; refusing to go on",
                self.server
            )));
        }
        let Some(Streams { input, output, .. }) = self.streams.take() else {
            return Err(ended(&self.server));
        };
        let handshake = tls::ClientHandshake::new(&self.host, input, output);
        let future = tls::ClientHandshake::finish(handshake);
        {
            let ready = future.subscribe();
            wait(
                &ready,
                deadline(self.io_timeout),
                &self.server,
                "the TLS handshake with",
            )?;
        }
        match future.get() {
            Some(Ok(Ok((connection, input, output)))) => {
                self.streams = Some(Streams {
                    input,
                    output,
                    _tls: Some(connection),
                });
                Ok(())
            }
            Some(Ok(Err(error))) => {
                let reason = error.to_debug_string();
                let message = format!("TLS with {} failed: {reason}", self.server);
                Err(
                    if PERMANENT_HANDSHAKE_FAILURES
                        .iter()
                        .any(|p| reason.starts_with(p))
                    {
                        SendError::Permanent(message)
                    } else {
                        SendError::Transient(message)
                    },
                )
            }
            Some(Err(())) | None => Err(SendError::Transient(format!(
                "the TLS handshake with {} gave no result",
                self.server
            ))),
        }
    }
}

fn connect_one(
    network: &wasi::sockets::network::Network,
    address: IpAddress,
    port: u16,
    deadline: monotonic_clock::Instant,
    server: &str,
) -> Result<(TcpSocket, InputStream, OutputStream), SendError> {
    let (family, remote) = match address {
        IpAddress::Ipv4(ip) => (
            IpAddressFamily::Ipv4,
            IpSocketAddress::Ipv4(Ipv4SocketAddress { port, address: ip }),
        ),
        IpAddress::Ipv6(ip) => (
            IpAddressFamily::Ipv6,
            IpSocketAddress::Ipv6(Ipv6SocketAddress {
                port,
                address: ip,
                flow_info: 0,
                scope_id: 0,
            }),
        ),
    };
    let shown = show(&remote);
    let doing = format!("connecting to {shown} for");
    let socket = create_tcp_socket(family).map_err(|e| socket_failure(server, &doing, e))?;
    socket
        .start_connect(network, remote)
        .map_err(|e| socket_failure(server, &doing, e))?;
    loop {
        match socket.finish_connect() {
            Ok((input, output)) => return Ok((socket, input, output)),
            Err(ErrorCode::WouldBlock) => wait(&socket.subscribe(), deadline, server, &doing)?,
            Err(e) => return Err(socket_failure(server, &doing, e)),
        }
    }
}

/// The connection after a failed handshake: its streams went into the handshake.
fn ended(server: &str) -> SendError {
    SendError::Transient(format!(
        "the connection to {server} ended with its TLS handshake"
    ))
}

/// Waits for `ready` until `deadline`; past it, a transient timeout.
fn wait(
    ready: &Pollable,
    deadline: monotonic_clock::Instant,
    server: &str,
    doing: &str,
) -> Result<(), SendError> {
    let timeout = monotonic_clock::subscribe_instant(deadline);
    if poll(&[ready, &timeout]).contains(&0) {
        Ok(())
    } else {
        Err(SendError::Transient(format!("{doing} {server} timed out")))
    }
}

fn deadline(after: Duration) -> monotonic_clock::Instant {
    monotonic_clock::now().saturating_add(after.as_nanos().min(u64::MAX as u128) as u64)
}

/// A socket error as a failure: the host's refusal is permanent (a grant is missing), every
/// other error transient.
fn socket_failure(server: &str, doing: &str, error: ErrorCode) -> SendError {
    match error {
        ErrorCode::AccessDenied => SendError::Permanent(format!(
            "{doing} {server} was denied by the host: grant `{server}` with the config key \
             `allow_tcp` ({error:?})"
        )),
        ErrorCode::Timeout => SendError::Transient(format!("{doing} {server} timed out")),
        _ => SendError::Transient(format!("{doing} {server} failed: {error:?}")),
    }
}

fn ip_address(ip: std::net::IpAddr) -> IpAddress {
    match ip {
        std::net::IpAddr::V4(v4) => IpAddress::Ipv4(v4.octets().into()),
        std::net::IpAddr::V6(v6) => IpAddress::Ipv6(v6.segments().into()),
    }
}

fn show(address: &IpSocketAddress) -> String {
    match address {
        IpSocketAddress::Ipv4(a) => {
            let (a0, a1, a2, a3) = a.address;
            format!("{a0}.{a1}.{a2}.{a3}:{}", a.port)
        }
        IpSocketAddress::Ipv6(a) => {
            let (a0, a1, a2, a3, a4, a5, a6, a7) = a.address;
            let ip = std::net::Ipv6Addr::new(a0, a1, a2, a3, a4, a5, a6, a7);
            format!("[{ip}]:{}", a.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_errors_classify() {
        assert!(matches!(
            socket_failure("h:25", "connecting to 1.2.3.4:25 for", ErrorCode::AccessDenied),
            SendError::Permanent(m) if m.contains("allow_tcp")
        ));
        assert!(matches!(
            socket_failure("h:25", "connecting to", ErrorCode::ConnectionRefused),
            SendError::Transient(_)
        ));
        assert!(matches!(
            socket_failure("h:25", "reading", ErrorCode::Timeout),
            SendError::Transient(m) if m.contains("timed out")
        ));
    }

    #[test]
    fn addresses_show_as_socket_addresses() {
        let v4 = IpSocketAddress::Ipv4(Ipv4SocketAddress {
            port: 587,
            address: (127, 0, 0, 1),
        });
        assert_eq!(show(&v4), "127.0.0.1:587");
        let IpAddress::Ipv6(v6) = ip_address("::1".parse().unwrap()) else {
            panic!("an IPv6 address");
        };
        let v6 = IpSocketAddress::Ipv6(Ipv6SocketAddress {
            port: 465,
            address: v6,
            flow_info: 0,
            scope_id: 0,
        });
        assert_eq!(show(&v6), "[::1]:465");
    }
}
