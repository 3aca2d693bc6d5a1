//! Which addresses an endpoint may reach. An endpoint URL is the application's to choose, so
//! without a guard it could make belfry call its own network: the database, a cloud metadata
//! service, an admin port on localhost (SSRF). Private, loopback, link-local and other
//! non-public addresses are refused unless an operator allows their network in config.
//!
//! The check is made twice: on the URL when an endpoint is registered (an IP literal), and on
//! every address a host name resolves to at send time, right before connecting to it, so the
//! connection goes only to an address that was checked (a name that resolves to a public
//! address when registered and to a private one later gets nowhere).

use ipnet::IpNet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The operator's allow-list of networks endpoints may reach despite being non-public.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressPolicy {
    allow: Vec<IpNet>,
}

impl AddressPolicy {
    pub fn new(allow: Vec<IpNet>) -> AddressPolicy {
        AddressPolicy { allow }
    }

    /// Parses `127.0.0.1`, `10.0.0.0/8` or `::1` (a bare address is that one address).
    pub fn parse_net(text: &str) -> Result<IpNet, String> {
        let text = text.trim();
        text.parse::<IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| format!("`{text}` is neither an IP address nor a network like 10.0.0.0/8"))
    }

    /// `Err` names why `ip` may not be reached.
    pub fn permits(&self, ip: IpAddr) -> Result<(), String> {
        match non_public(ip) {
            None => Ok(()),
            Some(_) if self.allow.iter().any(|n| n.contains(&ip)) => Ok(()),
            Some(range) => Err(format!(
                "{ip} is a {range} address, which endpoints may not reach unless its network is \
                 allowed (endpoint_allow_networks)"
            )),
        }
    }

    /// Checks an endpoint URL: http or https, a host, no credentials, and if the host is an IP
    /// address, one this policy permits.
    pub fn check_url(&self, text: &str) -> Result<url::Url, String> {
        let url = url::Url::parse(text.trim()).map_err(|e| format!("not a URL: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "the scheme must be http or https, not `{}`",
                url.scheme()
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(
                "credentials in the URL are not supported; the signature authenticates belfry"
                    .into(),
            );
        }
        match url.host() {
            None => return Err("the URL has no host".into()),
            Some(url::Host::Ipv4(ip)) => self.permits(IpAddr::V4(ip))?,
            Some(url::Host::Ipv6(ip)) => self.permits(IpAddr::V6(ip))?,
            Some(url::Host::Domain(_)) => {}
        }
        Ok(url)
    }
}

/// The kind of non-public range `ip` is in, if any.
fn non_public(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => non_public_v4(v4),
        IpAddr::V6(v6) => {
            // An IPv4 address in IPv6 clothing is judged as itself.
            if let Some(v4) = v6.to_ipv4_mapped() {
                return non_public_v4(v4);
            }
            non_public_v6(v6)
        }
    }
}

fn non_public_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = ip.octets();
    Some(match () {
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_private() => "private",
        _ if ip.is_link_local() => "link-local",
        _ if ip.is_unspecified() || a == 0 => "unspecified",
        _ if ip.is_broadcast() => "broadcast",
        _ if ip.is_multicast() => "multicast",
        _ if ip.is_documentation() => "documentation",
        // 100.64.0.0/10: carrier-grade NAT, shared address space.
        _ if a == 100 && (64..128).contains(&b) => "shared (carrier-grade NAT)",
        // 198.18.0.0/15: benchmarking.
        _ if a == 198 && (b == 18 || b == 19) => "benchmarking",
        // 192.0.0.0/24: IETF protocol assignments.
        _ if a == 192 && b == 0 && ip.octets()[2] == 0 => "protocol-assignment",
        // 240.0.0.0/4: reserved.
        _ if a >= 240 => "reserved",
        _ => return None,
    })
}

fn non_public_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let first = ip.segments()[0];
    Some(match () {
        _ if ip.is_loopback() => "loopback",
        _ if ip.is_unspecified() => "unspecified",
        _ if ip.is_multicast() => "multicast",
        // fc00::/7: unique local.
        _ if first & 0xfe00 == 0xfc00 => "unique-local",
        // fe80::/10: link-local.
        _ if first & 0xffc0 == 0xfe80 => "link-local",
        // 2001:db8::/32: documentation.
        _ if first == 0x2001 && ip.segments()[1] == 0x0db8 => "documentation",
        // ::ffff:0:0/96 is handled by the caller; 64:ff9b::/96 (NAT64) can reach anything.
        _ if first == 0x0064 && ip.segments()[1] == 0xff9b => "NAT64",
        _ => return None,
    })
}

/// The addresses `host` resolves to that `policy` permits, in the resolver's order; none
/// fails the attempt with the reasons. An IP literal is judged as itself.
pub(crate) async fn resolve(
    policy: &AddressPolicy,
    host: &str,
    port: u16,
) -> Result<Vec<SocketAddr>, String> {
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| format!("{host} could not be resolved: {e}"))?
        .collect();
    let mut refused = Vec::new();
    let allowed: Vec<SocketAddr> = found
        .into_iter()
        .filter(|a| match policy.permits(a.ip()) {
            Ok(()) => true,
            Err(why) => {
                refused.push(why);
                false
            }
        })
        .collect();
    if allowed.is_empty() {
        return Err(if refused.is_empty() {
            format!("{host} has no address")
        } else {
            format!(
                "{host} resolves only to refused addresses: {}",
                refused.join("; ")
            )
        });
    }
    Ok(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_addresses_are_refused_unless_allowed() {
        let deny = AddressPolicy::default();
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "0.0.0.0",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "255.255.255.255",
        ] {
            assert!(deny.permits(ip.parse().unwrap()).is_err(), "{ip}");
        }
        for ip in ["93.184.215.14", "2606:4700::1111", "8.8.8.8"] {
            assert!(deny.permits(ip.parse().unwrap()).is_ok(), "{ip}");
        }
        let allow = AddressPolicy::new(vec![AddressPolicy::parse_net("127.0.0.1").unwrap()]);
        assert!(allow.permits("127.0.0.1".parse().unwrap()).is_ok());
        assert!(allow.permits("127.0.0.2".parse().unwrap()).is_err());
        let net = AddressPolicy::new(vec![AddressPolicy::parse_net("10.0.0.0/8").unwrap()]);
        assert!(net.permits("10.9.9.9".parse().unwrap()).is_ok());
        assert!(AddressPolicy::parse_net("ten").is_err());
    }

    #[test]
    fn urls_are_checked_for_scheme_host_credentials_and_literal_addresses() {
        let deny = AddressPolicy::default();
        assert!(deny.check_url("https://hooks.example.com/belfry").is_ok());
        let e = deny.check_url("http://127.0.0.1:8080/x").unwrap_err();
        assert!(e.contains("loopback"), "{e}");
        assert!(
            deny.check_url("http://[::1]/")
                .unwrap_err()
                .contains("loopback")
        );
        assert!(
            deny.check_url("ftp://example.com/")
                .unwrap_err()
                .contains("scheme")
        );
        assert!(
            deny.check_url("https://u:p@example.com/")
                .unwrap_err()
                .contains("credentials")
        );
        assert!(deny.check_url("not a url").is_err());
    }
}
