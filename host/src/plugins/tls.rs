//! `wasi:tls` (`wasi:tls/types@0.2.0-draft`, wasmtime's `wasmtime-wasi-tls`) for channel
//! adapters: a guest that opened a TCP connection it was granted hands the host the
//! connection's two streams and a server name, and gets TLS streams back. The handshake, the
//! certificate check and the crypto are the host's (rustls on ring, as everywhere in the
//! host), so a guest needs no TLS stack of its own, which a wasm32-wasip2 build could not
//! easily have (`ring` needs clang for wasm; a pure-Rust provider would be a second, slower
//! crypto stack inside every instance).
//!
//! Verification cannot be turned off. The server's certificate must chain to one of Mozilla's
//! roots (`webpki-roots`) or to a certificate in the file the operator names with the plugin
//! config key [`TLS_CA_FILE_KEY`] (a private relay's CA, the test CA in `tests/smtp_tls.rs`),
//! and must be valid for the name the guest asked for.
//!
//! Gated like TCP: only the channel adapters' linker has `wasi:tls`, and a plugin without a
//! TCP grant gets a provider that refuses every handshake.
//!
//! The guest sees a failed handshake as a `wasi:io` error whose text starts with one of
//! [`HandshakeFailure`]'s prefixes, so it can tell a refused certificate (a configuration
//! problem: not worth a retry) from a dropped connection (worth one).

use super::capabilities::AuthorityPattern;
use super::manifest::{Manifest, PluginKind};
use super::reference::PluginRef;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::SystemTime;
use wasmtime::component::Linker;
use wasmtime_wasi_tls::{
    TlsProvider, TlsStream, TlsTransport, WasiTlsCtx, WasiTlsCtxBuilder, WasiTlsView,
};

/// The plugin config key naming a PEM file of extra trusted roots, added to Mozilla's.
pub const TLS_CA_FILE_KEY: &str = "tls_ca_file";

/// At most this many bytes are read from a `tls_ca_file`: a bundle of a few hundred roots.
const MAX_CA_FILE_BYTES: u64 = 1 << 20;

/// Why a `tls_ca_file` cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsConfigError {
    #[error(
        "config `{TLS_CA_FILE_KEY}` is for channel adapters, the only plugins that open connections"
    )]
    NotAnAdapter,
    #[error("config `{TLS_CA_FILE_KEY}`: cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config `{TLS_CA_FILE_KEY}`: {path} is larger than {MAX_CA_FILE_BYTES} bytes")]
    TooLarge { path: PathBuf },
    #[error("config `{TLS_CA_FILE_KEY}`: {path} holds no PEM `CERTIFICATE` block")]
    NoCertificate { path: PathBuf },
    #[error("config `{TLS_CA_FILE_KEY}`: {path}: {reason}")]
    BadCertificate { path: PathBuf, reason: String },
    #[error("TLS client set-up: {0}")]
    Client(String),
}

/// How a handshake failed, as the first words of the error the guest reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandshakeFailure {
    /// The server's certificate is not trusted or not valid for the name.
    Certificate,
    /// The TLS protocol failed otherwise (no common version or cipher, an alert).
    Protocol,
    /// The connection broke during the handshake.
    Connection,
    /// The host gives this plugin no TLS (it has no TCP grant) or the name is not usable.
    Refused,
}

impl HandshakeFailure {
    pub fn prefix(self) -> &'static str {
        match self {
            HandshakeFailure::Certificate => "certificate refused",
            HandshakeFailure::Protocol => "handshake refused",
            HandshakeFailure::Connection => "connection failed",
            HandshakeFailure::Refused => "tls not allowed",
        }
    }
}

/// Links `wasi:tls` into the channel adapters' linker. (The store's state gives the context
/// [`context`] made: `state.rs`.)
pub(super) fn add_to_linker<T: WasiTlsView + 'static>(
    linker: &mut Linker<T>,
) -> wasmtime::Result<()> {
    let mut options = wasmtime_wasi_tls::p2::LinkOptions::default();
    options.tls(true);
    wasmtime_wasi_tls::p2::add_to_linker(linker, &options)
}

/// Checks a plugin's `tls_ca_file` when it is loaded, so a bad one fails the load with the
/// reason instead of every delivery.
pub(super) fn check_config(
    manifest: &Manifest,
    config: &BTreeMap<String, String>,
) -> Result<(), TlsConfigError> {
    let Some(path) = config.get(TLS_CA_FILE_KEY) else {
        return Ok(());
    };
    if manifest.kind != PluginKind::ChannelAdapter {
        return Err(TlsConfigError::NotAnAdapter);
    }
    client_config(Some(Path::new(path))).map(|_| ())
}

/// The `wasi:tls` context of one store: verifying against Mozilla's roots and the plugin's
/// `tls_ca_file`, or refusing every handshake when the plugin has no TCP grant.
pub(super) fn context(
    reference: &PluginRef,
    config: &BTreeMap<String, String>,
    tcp: &[AuthorityPattern],
) -> Result<WasiTlsCtx, String> {
    let plugin = format!("{}@{}", reference.name, reference.version);
    let provider: Box<dyn TlsProvider> = if tcp.is_empty() {
        Box::new(Refusing { plugin })
    } else {
        let roots =
            client_config(config.get(TLS_CA_FILE_KEY).map(Path::new)).map_err(|e| e.to_string())?;
        Box::new(Verifying {
            plugin,
            config: roots,
        })
    };
    Ok(WasiTlsCtxBuilder::new().provider(provider).build())
}

/// The client configuration for Mozilla's roots plus `ca_file`'s certificates. Built once per
/// file version (length and modification time) and shared: a store is made per call, and
/// parsing ~150 roots per call would be most of a small call's cost.
fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsConfigError> {
    static MOZILLA: LazyLock<Result<Arc<rustls::ClientConfig>, String>> =
        LazyLock::new(|| build_client_config(&[]).map(Arc::new));
    /// A file's length and modification time: a changed file is read again.
    type Stamp = (u64, Option<SystemTime>);
    type Cache = HashMap<PathBuf, (Stamp, Arc<rustls::ClientConfig>)>;
    static WITH_CA: LazyLock<Mutex<Cache>> = LazyLock::new(Default::default);

    let Some(path) = ca_file else {
        return MOZILLA.clone().map_err(TlsConfigError::Client);
    };
    let read_error = |source| TlsConfigError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_error)?;
    let stamp = (meta.len(), meta.modified().ok());
    if let Some((seen, config)) = WITH_CA
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .get(path)
        && *seen == stamp
    {
        return Ok(config.clone());
    }
    if meta.len() > MAX_CA_FILE_BYTES {
        return Err(TlsConfigError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    let pem = std::fs::read(path).map_err(read_error)?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsConfigError::BadCertificate {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    if certificates.is_empty() {
        return Err(TlsConfigError::NoCertificate {
            path: path.to_path_buf(),
        });
    }
    let config = Arc::new(build_client_config(&certificates).map_err(|reason| {
        TlsConfigError::BadCertificate {
            path: path.to_path_buf(),
            reason,
        }
    })?);
    tracing::info!(
        ca_file = %path.display(),
        roots = certificates.len(),
        "plugin TLS trusts extra roots beside Mozilla's"
    );
    WITH_CA
        .lock()
        // A poisoned lock only means a panic elsewhere while it was held; the map is whole.
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(path.to_path_buf(), (stamp, config.clone()));
    Ok(config)
}

fn build_client_config(extra: &[CertificateDer<'static>]) -> Result<rustls::ClientConfig, String> {
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    for (i, certificate) in extra.iter().enumerate() {
        roots
            .add(certificate.clone())
            .map_err(|e| format!("certificate {} is not a usable root: {e}", i + 1))?;
    }
    // The ring provider named, not the process default: another part of the process may
    // enable a second provider, and then rustls would not pick one by itself.
    Ok(rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| e.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth())
}

type Handshake =
    Pin<Box<dyn Future<Output = Result<Box<dyn TlsStream>, wasmtime_wasi_tls::Error>> + Send>>;

/// Client handshakes that verify the server's certificate and name.
struct Verifying {
    /// `name@version`, for the log.
    plugin: String,
    config: Arc<rustls::ClientConfig>,
}

impl TlsProvider for Verifying {
    fn connect(&self, server_name: String, transport: Box<dyn TlsTransport>) -> Handshake {
        let config = self.config.clone();
        let plugin = self.plugin.clone();
        Box::pin(async move {
            let Ok(name) = ServerName::try_from(server_name.clone()) else {
                return Err(failure(
                    &plugin,
                    &server_name,
                    HandshakeFailure::Refused,
                    format!("{server_name:?} is not a host name or an IP address"),
                ));
            };
            match tokio_rustls::TlsConnector::from(config)
                .connect(name, transport)
                .await
            {
                Ok(stream) => {
                    tracing::debug!(%plugin, server = %server_name, "plugin TLS handshake done");
                    Ok(Box::new(stream) as Box<dyn TlsStream>)
                }
                Err(e) => {
                    let (kind, reason) = match e.get_ref().and_then(|e| e.downcast_ref()) {
                        Some(rustls::Error::InvalidCertificate(c)) => {
                            let hint = if *c == rustls::CertificateError::UnknownIssuer {
                                format!(
                                    " (not signed by a trusted root; an operator trusts a \
                                     private CA with the config key `{TLS_CA_FILE_KEY}`)"
                                )
                            } else {
                                String::new()
                            };
                            (HandshakeFailure::Certificate, format!("{e}{hint}"))
                        }
                        Some(other) => (HandshakeFailure::Protocol, other.to_string()),
                        None => (HandshakeFailure::Connection, e.to_string()),
                    };
                    Err(failure(&plugin, &server_name, kind, reason))
                }
            }
        })
    }
}

/// The provider of a plugin that has no TCP grant.
struct Refusing {
    plugin: String,
}

impl TlsProvider for Refusing {
    fn connect(&self, server_name: String, _transport: Box<dyn TlsTransport>) -> Handshake {
        let error = failure(
            &self.plugin,
            &server_name,
            HandshakeFailure::Refused,
            "the plugin has no TCP grant, and TLS is only for granted connections".to_string(),
        );
        Box::pin(async move { Err(error) })
    }
}

fn failure(
    plugin: &str,
    server: &str,
    kind: HandshakeFailure,
    reason: String,
) -> wasmtime_wasi_tls::Error {
    let message = format!("{}: TLS with {server}: {reason}", kind.prefix());
    tracing::warn!(%plugin, %server, ?kind, "plugin TLS handshake failed: {reason}");
    wasmtime_wasi_tls::Error::msg(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_files_are_read_checked_and_cached() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        assert!(matches!(
            client_config(Some(&missing)),
            Err(TlsConfigError::Read { .. })
        ));
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let err = client_config(Some(&empty)).unwrap_err();
        assert!(matches!(err, TlsConfigError::NoCertificate { .. }), "{err}");
        assert!(err.to_string().contains("tls_ca_file"), "{err}");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(
            &garbage,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        assert!(matches!(
            client_config(Some(&garbage)),
            Err(TlsConfigError::BadCertificate { .. })
        ));
        // Mozilla's roots alone: built once, shared.
        let a = client_config(None).unwrap();
        let b = client_config(None).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
    }
}
