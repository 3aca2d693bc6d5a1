//! The manifest that sits beside every plugin's `.wasm`: who it is, what it implements, what
//! it asks to be granted and how much it may use. Unknown keys are errors (with a "did you
//! mean"), because a misspelt grant that silently grants nothing is a day lost to debugging.

use super::capabilities::AuthorityPattern;
use super::kinds;
pub use super::kinds::PluginKind;
use super::limits::Limits;
use crate::content::Channel;
use serde::Deserialize;
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    name: String,
    version: String,
    kind: PluginKind,
    wit: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    channels: Vec<Channel>,
    default_route: Option<bool>,
    /// Notifiers only: the renderer (by plugin name) this notifier's render requests go to.
    renderer: Option<String>,
    #[serde(default)]
    capabilities: RawCapabilities,
    #[serde(default)]
    limits: RawLimits,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCapabilities {
    #[serde(default)]
    http: Vec<String>,
    #[serde(default)]
    tcp: Vec<String>,
    #[serde(default)]
    files: Vec<RawFileGrant>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFileGrant {
    source: String,
    guest: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawLimits {
    memory_mib: Option<u64>,
    timeout_ms: Option<u64>,
    output_kib: Option<u64>,
}

/// A read-only directory grant: `source` on the host (resolved against the manifest's
/// directory) appears at `guest` inside the sandbox.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct FileGrant {
    pub source: PathBuf,
    pub guest: String,
}

/// A checked manifest.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Manifest {
    pub name: String,
    pub version: String,
    pub kind: PluginKind,
    pub wit: String,
    pub description: String,
    /// Channel adapters only: the channels this adapter serves.
    pub channels: Vec<Channel>,
    /// Channel adapters only: whether the adapter serves its channels without being routed
    /// to them. Provider adapters (resend, twilio, ...) say `false`: loading one must not
    /// take a channel away from the adapter the operator uses until it is configured and
    /// routed (`routes`).
    pub default_route: bool,
    /// Notifiers only: the renderer (a plugin name) this notifier wants; `None` takes the
    /// host's default renderer.
    pub renderer: Option<String>,
    pub http: Vec<AuthorityPattern>,
    /// Channel adapters only: `host:port` destinations reachable over WASI sockets (TCP).
    pub tcp: Vec<AuthorityPattern>,
    pub files: Vec<FileGrant>,
    pub limits: Limits,
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("manifest {path}: {message}")]
    Invalid { path: String, message: String },
}

/// Keys a manifest may have, for "did you mean" hints.
const KNOWN_KEYS: &[&str] = &[
    "name",
    "version",
    "kind",
    "wit",
    "description",
    "channels",
    "default_route",
    "renderer",
    "capabilities",
    "limits",
    "http",
    "tcp",
    "files",
    "source",
    "guest",
    "memory_mib",
    "timeout_ms",
    "output_kib",
];

/// WIT package versions this host can load, newest first.
pub fn supported_wit(kind: PluginKind) -> &'static [&'static str] {
    kinds::supported(kind)
}

impl Manifest {
    /// Parses manifest text; `origin` names it in errors and `base_dir` anchors file grants.
    pub fn parse(text: &str, origin: &str, base_dir: &Path) -> Result<Manifest, ManifestError> {
        let invalid = |message: String| ManifestError::Invalid {
            path: origin.to_string(),
            message,
        };
        let raw: RawManifest = toml::from_str(text).map_err(|e| {
            let mut message = e.message().to_string();
            if let Some(unknown) = message
                .strip_prefix("unknown field `")
                .and_then(|s| s.split('`').next())
                && let Some(best) = did_you_mean(unknown)
            {
                message.push_str(&format!(" (did you mean `{best}`?)"));
            }
            invalid(message)
        })?;
        check_fields(&raw).map_err(invalid)?;
        let http = raw
            .capabilities
            .http
            .iter()
            .map(|p| {
                AuthorityPattern::parse(p).map_err(|e| invalid(format!("capabilities.http: {e}")))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let tcp = raw
            .capabilities
            .tcp
            .iter()
            .map(|p| parse_tcp_grant(p).map_err(|e| invalid(format!("capabilities.tcp: {e}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let files = raw
            .capabilities
            .files
            .into_iter()
            .map(|g| {
                if !g.guest.starts_with('/') {
                    return Err(invalid(format!(
                        "capabilities.files: guest path `{}` must be absolute",
                        g.guest
                    )));
                }
                Ok(FileGrant {
                    source: base_dir.join(&g.source),
                    guest: g.guest,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let limits = Limits::from_manifest(
            raw.limits.memory_mib,
            raw.limits.timeout_ms,
            raw.limits.output_kib,
        )
        .map_err(|e| invalid(format!("limits.{e}")))?;
        Ok(Manifest {
            name: raw.name,
            version: raw.version,
            kind: raw.kind,
            wit: raw.wit,
            description: raw.description,
            channels: raw.channels,
            default_route: raw.default_route.unwrap_or(true),
            renderer: raw.renderer,
            http,
            tcp,
            files,
            limits,
        })
    }
}

/// What a parsed manifest must satisfy field by field, before its grants are read: the first
/// failure, named.
fn check_fields(raw: &RawManifest) -> Result<(), String> {
    if raw.name.is_empty()
        || !raw
            .name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(format!(
            "name `{}` must be non-empty ASCII letters, digits, `-` or `_`",
            raw.name
        ));
    }
    let supported = supported_wit(raw.kind);
    if !kinds::accepts(raw.kind, &raw.wit) {
        return Err(format!(
            "wit version `{}` is not supported by this host for a {} (supported: {})",
            raw.wit,
            raw.kind,
            supported.join(", ")
        ));
    }
    if raw.kind != PluginKind::ChannelAdapter && !raw.channels.is_empty() {
        return Err("`channels` is only meaningful for kind = \"channel-adapter\"".into());
    }
    if raw.kind != PluginKind::ChannelAdapter && raw.default_route.is_some() {
        return Err("`default_route` is only meaningful for kind = \"channel-adapter\"".into());
    }
    if raw.kind != PluginKind::Notifier && raw.renderer.is_some() {
        return Err("`renderer` is only meaningful for kind = \"notifier\"".into());
    }
    if let Some(r) = &raw.renderer
        && let Err(e) = crate::text::identifier("renderer", r)
    {
        return Err(format!("`renderer` must name a plugin: {e}"));
    }
    if raw.kind == PluginKind::ChannelAdapter && raw.channels.contains(&Channel::InApp) {
        return Err("in-app is delivered by the host's inbox, not by an adapter".into());
    }
    for (name, list) in [
        ("http", &raw.capabilities.http),
        ("tcp", &raw.capabilities.tcp),
    ] {
        if raw.kind != PluginKind::ChannelAdapter && !list.is_empty() {
            return Err(format!(
                "capabilities.{name} is only available to channel adapters, not to a {}",
                raw.kind
            ));
        }
    }
    Ok(())
}

/// A TCP grant is `host:port` or `host:*`: no scheme, and a port is required because TCP has
/// no default one.
pub fn parse_tcp_grant(text: &str) -> Result<AuthorityPattern, String> {
    let pattern = AuthorityPattern::parse(text)?;
    if pattern.scheme.is_some() {
        return Err(format!(
            "`{text}`: a TCP grant has no scheme, write `host:port`"
        ));
    }
    if pattern.port == super::capabilities::PortPattern::Default {
        return Err(format!(
            "`{text}`: a TCP grant needs a port, for example `{text}:587`"
        ));
    }
    Ok(pattern)
}

fn did_you_mean(unknown: &str) -> Option<&'static str> {
    KNOWN_KEYS
        .iter()
        .map(|k| (strsim(unknown, k), *k))
        .filter(|(d, _)| *d <= 3)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Levenshtein distance; manifests are tiny, so the quadratic version is fine.
fn strsim(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
name = "x"
version = "0.1.0"
kind = "renderer"
wit = "0.1.0"
"#;

    #[test]
    fn empty_grant_grants_nothing() {
        let m = Manifest::parse(BASE, "x.toml", Path::new("/p")).unwrap();
        assert!(m.http.is_empty());
        assert!(m.files.is_empty());
        assert_eq!(m.limits, Limits::default());
    }

    #[test]
    fn misspelt_key_is_an_error_with_a_hint() {
        let text = format!("{BASE}\n[limits]\nmemory_mb = 10\n");
        let err = Manifest::parse(&text, "x.toml", Path::new("/p")).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("memory_mb"), "{msg}");
        assert!(msg.contains("did you mean `memory_mib`"), "{msg}");
    }

    #[test]
    fn limits_above_the_host_maximum_are_refused() {
        let text = format!("{BASE}\n[limits]\nmemory_mib = 100000\n");
        let err = Manifest::parse(&text, "x.toml", Path::new("/p")).unwrap_err();
        assert!(err.to_string().contains("memory_mib"), "{err}");
    }

    #[test]
    fn tcp_grants_need_a_port_and_an_adapter() {
        let adapter =
            "name = \"x\"\nversion = \"0.1.0\"\nkind = \"channel-adapter\"\nwit = \"0.5.0\"\n";
        let ok = format!("{adapter}\n[capabilities]\ntcp = [\"smtp.example.com:587\"]\n");
        let m = Manifest::parse(&ok, "x.toml", Path::new("/p")).unwrap();
        assert_eq!(m.tcp[0].to_string(), "smtp.example.com:587");
        let no_port = format!("{adapter}\n[capabilities]\ntcp = [\"smtp.example.com\"]\n");
        let err = Manifest::parse(&no_port, "x.toml", Path::new("/p")).unwrap_err();
        assert!(err.to_string().contains("needs a port"), "{err}");
        let renderer = format!("{BASE}\n[capabilities]\ntcp = [\"a.example.com:25\"]\n");
        let err = Manifest::parse(&renderer, "x.toml", Path::new("/p")).unwrap_err();
        assert!(err.to_string().contains("capabilities.tcp"), "{err}");
    }

    #[test]
    fn http_is_for_adapters_only() {
        let text = format!("{BASE}\n[capabilities]\nhttp = [\"example.com\"]\n");
        assert!(Manifest::parse(&text, "x.toml", Path::new("/p")).is_err());
    }
}
