//! Capabilities a manifest may request. Deny by default: a plugin reaches a host only if its
//! manifest lists the authority, and a listed *name* that resolves to a private, loopback or
//! link-local address is still refused (only an explicitly listed IP or `localhost` grants
//! those), so a DNS answer cannot turn an allow-listed name into a path to the internal network.
//!
//! Outgoing HTTP is enforced in `WasiHttpHooks::send_request`: the host's own connection does
//! not pass through WASI sockets, so this hook is the one place every request crosses.

use serde::Serialize;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use wasmtime_wasi_http::{Error as HttpError, RequestOptions, WasiBody, WasiHttpHooks};

/// One allow-list entry: `host`, `host:port`, `host:*`, `*.example.com:443`, optionally with
/// a scheme (`https://api.example.com`). Without a port only the scheme's default port is
/// allowed (443 for https, 80 for http).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AuthorityPattern {
    pub scheme: Option<String>,
    /// Lower-case; a leading `*.` matches any subdomain (not the bare domain).
    pub host: String,
    pub port: PortPattern,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum PortPattern {
    Default,
    Exact(u16),
    Any,
}

impl AuthorityPattern {
    pub fn parse(text: &str) -> Result<AuthorityPattern, String> {
        let (scheme, rest) = match text.split_once("://") {
            Some((s, r)) if s == "http" || s == "https" => (Some(s.to_string()), r),
            Some((s, _)) => return Err(format!("`{text}`: scheme `{s}` is not http or https")),
            None => (None, text),
        };
        if rest.is_empty() || rest.contains('/') {
            return Err(format!(
                "`{text}` must be an authority such as `api.example.com:443`, without a path"
            ));
        }
        if rest == "*" || rest.starts_with("*:") {
            return Err(format!(
                "`{text}`: a bare `*` host would allow every host; list them"
            ));
        }
        // IPv6 literals are bracketed: [::1]:8080
        let (host, port) = if let Some(stripped) = rest.strip_prefix('[') {
            let (h, after) = stripped
                .split_once(']')
                .ok_or_else(|| format!("`{text}`: unclosed `[`"))?;
            (h.to_string(), after.strip_prefix(':'))
        } else {
            match rest.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (rest.to_string(), None),
            }
        };
        let port = match port {
            None => PortPattern::Default,
            Some("*") => PortPattern::Any,
            Some(p) => PortPattern::Exact(
                p.parse()
                    .map_err(|_| format!("`{text}`: port `{p}` is not a number or `*`"))?,
            ),
        };
        if host.is_empty() {
            return Err(format!("`{text}`: empty host"));
        }
        Ok(AuthorityPattern {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        if self.scheme.as_deref().is_some_and(|s| s != scheme) {
            return false;
        }
        let host_ok = match self.host.strip_prefix("*.") {
            Some(suffix) => host
                .strip_suffix(suffix)
                .is_some_and(|head| head.ends_with('.') && head.len() > 1),
            None => self.host == host,
        };
        let default_port = if scheme == "https" { 443 } else { 80 };
        let port_ok = match self.port {
            PortPattern::Default => port == default_port,
            PortPattern::Exact(p) => p == port,
            PortPattern::Any => true,
        };
        host_ok && port_ok
    }

    /// TCP grants carry no scheme, so a pattern without a port matches no port at all.
    fn matches_port(&self, port: u16) -> bool {
        match self.port {
            PortPattern::Default => false,
            PortPattern::Exact(p) => p == port,
            PortPattern::Any => true,
        }
    }

    /// A pattern that names an address (or `localhost`) grants it explicitly, private or not.
    fn names_an_address(&self) -> bool {
        self.host == "localhost" || self.host.parse::<IpAddr>().is_ok()
    }
}

impl std::fmt::Display for AuthorityPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(s) = &self.scheme {
            write!(f, "{s}://")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            f.write_str(&self.host)?;
        }
        match self.port {
            PortPattern::Default => Ok(()),
            PortPattern::Exact(p) => write!(f, ":{p}"),
            PortPattern::Any => f.write_str(":*"),
        }
    }
}

/// Addresses a name may not resolve to unless the manifest lists the address itself.
fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64 // CGNAT 100.64/10
        }
        IpAddr::V6(v6) => {
            v6.is_loopback()
                || v6.is_unspecified()
                || (v6.segments()[0] & 0xfe00) == 0xfc00 // unique local
                || (v6.segments()[0] & 0xffc0) == 0xfe80 // link local
                || v6.to_ipv4_mapped().is_some_and(|v4| is_internal(IpAddr::V4(v4)))
        }
    }
}

/// Denials recorded during one call; the runtime turns any into a `capability_denied` error.
pub type Denials = Arc<Mutex<Vec<String>>>;

/// The outgoing-HTTP gate of one plugin call.
pub struct HttpGate {
    /// `name@version`, for messages.
    pub plugin: String,
    pub allow: Arc<[AuthorityPattern]>,
    pub denials: Denials,
}

impl HttpGate {
    fn deny(&self, message: String) {
        tracing::warn!(plugin = %self.plugin, %message, "outgoing HTTP denied");
        self.denials.lock().unwrap().push(message);
    }
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), HttpError>> + Send>,
                ),
                HttpError,
            >,
        > + Send,
>;

impl WasiHttpHooks for HttpGate {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        fut: Box<dyn Future<Output = Result<(), HttpError>> + Send>,
    ) -> SendFuture {
        let _ = fut;
        let uri = request.uri();
        let scheme = uri.scheme_str().unwrap_or("https").to_string();
        let Some(host) = uri
            .host()
            .map(|h| h.trim_matches(['[', ']']).to_ascii_lowercase())
        else {
            self.deny(format!(
                "plugin {} sent a request without a host: {uri}",
                self.plugin
            ));
            return Box::new(async { Err(HttpError::HttpRequestUriInvalid) });
        };
        let port = uri
            .port_u16()
            .unwrap_or(if scheme == "https" { 443 } else { 80 });
        let shown = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let Some(pattern) = self
            .allow
            .iter()
            .find(|p| p.matches(&scheme, &host, port))
            .cloned()
        else {
            self.deny(format!(
                "plugin {} may not reach {scheme}://{shown}: add \"{shown}\" to [capabilities] http in its manifest",
                self.plugin
            ));
            return Box::new(async { Err(HttpError::HttpRequestDenied) });
        };
        let plugin = self.plugin.clone();
        let denials = self.denials.clone();
        Box::new(async move {
            if !pattern.names_an_address() {
                let addrs: Vec<IpAddr> = tokio::net::lookup_host((host.as_str(), port))
                    .await
                    .map_err(|_| HttpError::DestinationNotFound)?
                    .map(|a| a.ip())
                    .collect();
                if let Some(ip) = addrs.into_iter().find(|ip| is_internal(*ip)) {
                    let message = format!(
                        "plugin {plugin} may not reach {shown}: `{pattern}` resolves to the internal address {ip}; list the address itself to allow it"
                    );
                    tracing::warn!(%plugin, %message, "outgoing HTTP denied");
                    denials.lock().unwrap().push(message);
                    return Err(HttpError::DestinationIpProhibited);
                }
            }
            use http_body_util::BodyExt;
            let (res, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                res.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), HttpError>> + Send>,
            ))
        })
    }
}

/// The socket check of one plugin call: TCP connections only to the manifest's (and the
/// operator's) `tcp` grants, by the same rules as HTTP: a listed name is resolved by the host
/// and a connection must go to one of its addresses, and a name that resolves to an internal
/// address is refused unless the grant lists the address itself. The implicit bind to the
/// wildcard address that precedes every connect is allowed; listening, explicit binds and UDP
/// are not.
pub fn tcp_check(
    plugin: String,
    allow: Arc<[AuthorityPattern]>,
    denials: Denials,
) -> impl Fn(
    std::net::SocketAddr,
    wasmtime_wasi::sockets::SocketAddrUse,
) -> std::pin::Pin<Box<dyn Future<Output = bool> + Send + Sync>>
+ Send
+ Sync
+ 'static {
    use wasmtime_wasi::sockets::SocketAddrUse;
    move |addr, usage| {
        let plugin = plugin.clone();
        let allow = allow.clone();
        let denials = denials.clone();
        Box::pin(async move {
            match usage {
                SocketAddrUse::TcpBind => return addr.ip().is_unspecified() && addr.port() == 0,
                SocketAddrUse::TcpConnect => {}
                _ => {
                    deny_tcp(
                        &plugin,
                        &denials,
                        format!("plugin {plugin} may not use {usage:?} on {addr}"),
                    );
                    return false;
                }
            }
            for pattern in allow.iter().filter(|p| p.matches_port(addr.port())) {
                if pattern.host == "localhost" && addr.ip().is_loopback() {
                    return true;
                }
                if let Ok(ip) = pattern.host.parse::<IpAddr>() {
                    if ip == addr.ip() {
                        return true;
                    }
                    continue;
                }
                if pattern.host.starts_with("*.") {
                    continue; // a wildcard cannot be resolved; TCP grants name hosts
                }
                let Ok(resolved) =
                    tokio::net::lookup_host((pattern.host.as_str(), addr.port())).await
                else {
                    continue;
                };
                if resolved.map(|a| a.ip()).any(|ip| ip == addr.ip()) {
                    if is_internal(addr.ip()) {
                        deny_tcp(
                            &plugin,
                            &denials,
                            format!(
                                "plugin {plugin} may not connect to {addr}: `{pattern}` resolves to an internal address; list the address itself to allow it"
                            ),
                        );
                        return false;
                    }
                    return true;
                }
            }
            deny_tcp(
                &plugin,
                &denials,
                format!(
                    "plugin {plugin} may not connect to {addr}: add its host and port to [capabilities] tcp in its manifest, or grant it in the host's config"
                ),
            );
            false
        })
    }
}

fn deny_tcp(plugin: &str, denials: &Denials, message: String) {
    tracing::warn!(%plugin, %message, "TCP connection denied");
    denials.lock().unwrap().push(message);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_parse_and_match() {
        let p = AuthorityPattern::parse("api.example.com").unwrap();
        assert!(p.matches("https", "api.example.com", 443));
        assert!(!p.matches("https", "api.example.com", 8443));
        assert!(!p.matches("https", "evil.com", 443));
        let p = AuthorityPattern::parse("*.example.com:443").unwrap();
        assert!(p.matches("https", "a.example.com", 443));
        assert!(!p.matches("https", "example.com", 443));
        assert!(!p.matches("https", "aexample.com", 443));
        let p = AuthorityPattern::parse("127.0.0.1:*").unwrap();
        assert!(p.matches("http", "127.0.0.1", 5555));
        assert!(p.names_an_address());
        let p = AuthorityPattern::parse("https://hooks.example.com").unwrap();
        assert!(!p.matches("http", "hooks.example.com", 80));
        assert!(AuthorityPattern::parse("*").is_err());
        assert!(AuthorityPattern::parse("example.com/path").is_err());
        assert!(AuthorityPattern::parse("ftp://example.com").is_err());
    }

    #[test]
    fn internal_addresses_are_recognised() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "192.168.0.1",
            "169.254.169.254",
            "::1",
            "fd00::1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip}");
        }
        assert!(!is_internal("93.184.216.34".parse().unwrap()));
    }
}
