//! The `smtp` adapter over TLS: the real bundled component, through the engine (trigger,
//! render, dispatch, the delivery's record), against an SMTP server written here on tokio and
//! rustls, on 127.0.0.1.
//!
//! The certificates are made when the test runs (rcgen): a test CA, a `localhost` certificate
//! it signs, and an "untrusted" CA nobody configured. The adapter is told to trust the test CA
//! with the host's plugin config key `tls_ca_file` (beside Mozilla's roots); verification itself
//! is never turned off. The server records every message with whether it came over TLS and who
//! logged in, and every handshake it saw fail.

use crate::common;

use crate::common::{Backend, World, world_with};
use belfry::TriggerRequest;
use belfry::host::content::Channel;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

// ---- certificates ------------------------------------------------------------------------

/// A CA and a server certificate for `localhost` it signed, as rustls wants them.
struct Pki {
    ca_pem: String,
    server: Arc<rustls::ServerConfig>,
}

impl Pki {
    /// A CA named `name` and its `localhost` certificate.
    fn new(name: &str) -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose,
        };
        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, name);
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        let issuer = Issuer::new(ca, ca_key);

        let key = KeyPair::generate().unwrap();
        let mut leaf = CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        leaf.distinguished_name
            .push(DnType::CommonName, "localhost");
        leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = leaf.signed_by(&key, &issuer).unwrap();

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(
                vec![cert.der().clone(), ca_cert.der().clone()],
                rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
            )
            .unwrap();
        Pki {
            ca_pem: ca_cert.pem(),
            server: Arc::new(server),
        }
    }
}

// ---- the server --------------------------------------------------------------------------

/// How the server secures its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Security {
    /// Plain at first, offering STARTTLS.
    StartTls,
    /// TLS from the first byte.
    Implicit,
    /// Plain text only; no STARTTLS in its EHLO reply.
    Plain,
}

#[derive(Clone, Debug)]
struct Received {
    mail_from: String,
    rcpt_to: Vec<String>,
    data: String,
    login: Option<String>,
    tls: bool,
}

#[derive(Default)]
struct Log {
    messages: Vec<Received>,
    /// Why each failed TLS handshake failed, as the server saw it.
    handshake_failures: Vec<String>,
    /// How many have failed, for those who wait for one.
    failed: tokio::sync::watch::Sender<usize>,
}

impl Log {
    fn handshake_failed(&mut self, why: String) {
        self.handshake_failures.push(why);
        self.failed.send_replace(self.handshake_failures.len());
    }
}

struct SmtpServer {
    port: u16,
    log: Arc<Mutex<Log>>,
}

impl SmtpServer {
    /// Listens on 127.0.0.1; accepts AUTH PLAIN `belfry`/`s3cret`, over TLS only.
    async fn start(security: Security, pki: &Pki) -> SmtpServer {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Log::default()));
        let acceptor = TlsAcceptor::from(pki.server.clone());
        let server_log = log.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let log = server_log.clone();
                tokio::spawn(async move {
                    let result = match security {
                        Security::Implicit => match acceptor.accept(tcp).await {
                            Ok(tls) => dialogue(tls, true, security, &log).await.map(|_| ()),
                            Err(e) => {
                                log.lock().unwrap().handshake_failed(e.to_string());
                                Ok(())
                            }
                        },
                        _ => match dialogue(tcp, false, security, &log).await {
                            Ok(Some(tcp)) => match acceptor.accept(tcp).await {
                                Ok(tls) => dialogue(tls, true, security, &log).await.map(|_| ()),
                                Err(e) => {
                                    log.lock().unwrap().handshake_failed(e.to_string());
                                    Ok(())
                                }
                            },
                            other => other.map(|_| ()),
                        },
                    };
                    if let Err(e) = result {
                        eprintln!("test SMTP server: {e}");
                    }
                });
            }
        });
        SmtpServer { port, log }
    }

    fn messages(&self) -> Vec<Received> {
        self.log.lock().unwrap().messages.clone()
    }

    fn handshake_failures(&self) -> Vec<String> {
        self.log.lock().unwrap().handshake_failures.clone()
    }

    /// Waits (up to 10 s) until the server has seen `n` handshakes fail: the client's alert
    /// reaches the server's side after the delivery is recorded.
    async fn handshake_failures_reach(&self, n: usize) -> Vec<String> {
        let mut failed = self.log.lock().unwrap().failed.subscribe();
        tokio::time::timeout(
            Duration::from_secs(10),
            failed.wait_for(|count| *count >= n),
        )
        .await
        .expect("the server saw the handshake fail")
        .unwrap();
        self.handshake_failures()
    }

    /// The adapter's config for this server at `host`, granted with `allow_tcp`, trusting
    /// `ca` (a PEM file) with `tls_ca_file`.
    fn config(&self, host: &str, ca: &Path, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut c: BTreeMap<String, String> = [
            ("host", host.to_string()),
            ("port", self.port.to_string()),
            ("from", "Acme Shop <orders@acme.test>".to_string()),
            ("helo_name", "belfry.test".to_string()),
            ("allow_tcp", format!("{host}:{}", self.port)),
            ("tls_ca_file", ca.display().to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in extra {
            c.insert(k.to_string(), v.to_string());
        }
        c
    }
}

/// One SMTP dialogue on `stream`. Returns the stream when the client asked for STARTTLS and
/// the server agreed (nothing may follow in plain text), `None` when the client quit.
async fn dialogue<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    tls: bool,
    security: Security,
    log: &Mutex<Log>,
) -> std::io::Result<Option<S>> {
    let mut io = BufReader::new(stream);
    if !tls || security == Security::Implicit {
        io.write_all(b"220 localhost ESMTP test\r\n").await?;
    }
    let mut login = None;
    let mut mail_from = None;
    let mut rcpt_to = Vec::new();
    loop {
        let mut line = String::new();
        if io.read_line(&mut line).await? == 0 {
            return Ok(None);
        }
        let line = line.trim_end().to_string();
        let upper = line.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            let mut r = String::from("250-localhost\r\n250-SIZE 1000000\r\n");
            if !tls && security == Security::StartTls {
                r.push_str("250-STARTTLS\r\n");
            }
            if tls {
                r.push_str("250-AUTH PLAIN LOGIN\r\n");
            }
            r.push_str("250 8BITMIME");
            r
        } else if upper == "STARTTLS" && !tls && security == Security::StartTls {
            io.write_all(b"220 2.0.0 Ready to start TLS\r\n").await?;
            assert!(io.buffer().is_empty(), "nothing pipelined after STARTTLS");
            return Ok(Some(io.into_inner()));
        } else if let Some(token) = line.strip_prefix("AUTH PLAIN ") {
            use base64::Engine as _;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(token)
                .unwrap_or_default();
            if tls && decoded == b"\0belfry\0s3cret" {
                login = Some("belfry".to_string());
                "235 2.7.0 Authentication successful".to_string()
            } else {
                "535 5.7.8 Authentication credentials invalid".to_string()
            }
        } else if let Some(from) = upper.strip_prefix("MAIL FROM:<") {
            mail_from = Some(line[11..11 + from.find('>').unwrap()].to_string());
            "250 2.1.0 Ok".to_string()
        } else if let Some(to) = upper.strip_prefix("RCPT TO:<") {
            rcpt_to.push(line[9..9 + to.find('>').unwrap()].to_string());
            "250 2.1.5 Ok".to_string()
        } else if upper == "DATA" {
            io.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                .await?;
            let mut data = String::new();
            loop {
                let mut line = String::new();
                if io.read_line(&mut line).await? == 0 {
                    return Ok(None);
                }
                if line == ".\r\n" {
                    break;
                }
                data.push_str(line.strip_prefix('.').unwrap_or(&line));
            }
            log.lock().unwrap().messages.push(Received {
                mail_from: mail_from.take().unwrap_or_default(),
                rcpt_to: std::mem::take(&mut rcpt_to),
                data,
                login: login.clone(),
                tls,
            });
            "250 2.0.0 Ok: queued as TLS1".to_string()
        } else if upper == "QUIT" {
            io.write_all(b"221 2.0.0 Bye\r\n").await?;
            io.flush().await?;
            return Ok(None);
        } else {
            "502 5.5.2 Error: command not recognized".to_string()
        };
        io.write_all(format!("{reply}\r\n").as_bytes()).await?;
        io.flush().await?;
    }
}

// ---- the engine --------------------------------------------------------------------------

/// An engine routing email to `smtp` with `config`.
async fn routed(backend: Backend, config: BTreeMap<String, String>) -> World {
    world_with(backend, |c| {
        c.routes = BTreeMap::from([(Channel::Email, "smtp".to_string())]);
        c.plugin_config.insert("smtp".to_string(), config);
        c.public_url = Some("https://belfry.test".to_string());
    })
    .await
}

/// Triggers `order-shipped` for one customer and dispatches it; the email delivery as JSON.
async fn ship(world: &World, order_id: &str, email: &str) -> Value {
    let e = &world.engine;
    let payload = json!({
        "order_id": order_id,
        "carrier": "DHL",
        "tracking_url": format!("https://track.example.com/{order_id}"),
        "customers": [{"id": "zoe", "name": "Zoë", "email": email}],
    });
    let out = e
        .trigger(&TriggerRequest::new("order-shipped", payload))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(90), e.dispatch_event(&out.event_id))
        .await
        .expect("dispatch finishes within 90 s")
        .unwrap();
    let after = e.event(&out.event_id).await.unwrap();
    let delivery = after
        .notifications
        .iter()
        .flat_map(|n| &n.deliveries)
        .find(|d| d.channel == "email")
        .expect("an email delivery");
    serde_json::to_value(delivery).unwrap()
}

/// The test CA's PEM in a file that lives as long as the returned directory.
fn ca_file(pki: &Pki) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("test-ca.pem");
    std::fs::write(&path, &pki.ca_pem).unwrap();
    (dir, path)
}

fn header<'a>(data: &'a str, name: &str) -> Option<&'a str> {
    let head = data.split("\r\n\r\n").next().unwrap();
    head.split("\r\n").find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

fn assert_the_order_email(received: &Received) {
    assert_eq!(received.mail_from, "orders@acme.test");
    assert_eq!(received.rcpt_to, ["zoe@example.com"]);
    let data = &received.data;
    assert_eq!(
        header(data, "subject"),
        Some("Your order A-1 has shipped"),
        "{data}"
    );
    let unsubscribe = header(data, "list-unsubscribe").expect("List-Unsubscribe");
    assert!(
        unsubscribe.starts_with("<https://belfry.test/"),
        "{unsubscribe}"
    );
    assert_eq!(
        header(data, "list-unsubscribe-post"),
        Some("List-Unsubscribe=One-Click")
    );
    let body = data.replace("=\r\n", "");
    assert!(
        body.contains("Track it here: https://track.example.com/A-1"),
        "{data}"
    );
}

// ---- the tests ---------------------------------------------------------------------------

/// STARTTLS is the default on a port other than 465: EHLO, STARTTLS, the handshake against the
/// test CA, EHLO again, AUTH over TLS, the message.
async fn starttls_delivers_over_tls_and_authenticates(b: Backend) {
    let pki = Pki::new("belfry test CA");
    let (_dir, ca) = ca_file(&pki);
    let server = SmtpServer::start(Security::StartTls, &pki).await;
    let w = routed(
        b,
        server.config(
            "localhost",
            &ca,
            &[("username", "belfry"), ("password", "s3cret")],
        ),
    )
    .await;
    let adapter = w.engine.registry().adapter_for(Channel::Email).cloned();
    let adapter = adapter.expect("email is routed to smtp");
    assert_eq!(
        (adapter.name(), adapter.manifest().wit.as_str()),
        ("smtp", "1.0.0")
    );
    let d = ship(&w, "A-1", "zoe@example.com").await;
    assert_eq!(d["status"], "succeeded", "{d}");
    assert_eq!(
        d["provider_message_id"],
        format!("<{}@acme.test>", d["idempotency_key"].as_str().unwrap())
    );
    let messages = server.messages();
    assert_eq!(messages.len(), 1, "{:?}", server.handshake_failures());
    assert!(messages[0].tls, "the message came over TLS");
    assert_eq!(messages[0].login.as_deref(), Some("belfry"));
    assert_the_order_email(&messages[0]);

    // Wrong credentials: the server's 535, for good.
    let w = routed(
        b,
        server.config(
            "localhost",
            &ca,
            &[("username", "belfry"), ("password", "wrong")],
        ),
    )
    .await;
    let d = ship(&w, "A-2", "zoe@example.com").await;
    assert_eq!(d["status"], "failed", "{d}");
    assert_eq!(d["status_reason"], "send_permanent");
    assert!(
        d["status_detail"]
            .as_str()
            .unwrap()
            .contains("535 to AUTH PLAIN"),
        "{d}"
    );
    assert_eq!(server.messages().len(), 1);
}

/// `tls = implicit`: TLS from the first byte, on any port.
async fn implicit_tls_delivers(b: Backend) {
    let pki = Pki::new("belfry test CA");
    let (_dir, ca) = ca_file(&pki);
    let server = SmtpServer::start(Security::Implicit, &pki).await;
    let w = routed(
        b,
        server.config(
            "localhost",
            &ca,
            &[
                ("tls", "implicit"),
                ("username", "belfry"),
                ("password", "s3cret"),
            ],
        ),
    )
    .await;
    let d = ship(&w, "A-1", "zoe@example.com").await;
    assert_eq!(d["status"], "succeeded", "{d}");
    let messages = server.messages();
    assert_eq!(messages.len(), 1, "{:?}", server.handshake_failures());
    assert!(messages[0].tls);
    assert_eq!(messages[0].login.as_deref(), Some("belfry"));
    assert_the_order_email(&messages[0]);
}

/// A certificate from a CA nobody trusts, or one not valid for the name the adapter
/// connected to, fails the delivery for good with the reason; nothing is sent, no password.
async fn an_untrusted_certificate_fails_the_delivery_for_good(b: Backend) {
    let trusted = Pki::new("belfry test CA");
    let (_dir, ca) = ca_file(&trusted);
    let stranger = Pki::new("nobody's CA");
    for (security, tls) in [
        (Security::StartTls, "starttls"),
        (Security::Implicit, "implicit"),
    ] {
        let server = SmtpServer::start(security, &stranger).await;
        let w = routed(
            b,
            server.config(
                "localhost",
                &ca,
                &[("tls", tls), ("username", "belfry"), ("password", "s3cret")],
            ),
        )
        .await;
        let d = ship(&w, "A-1", "zoe@example.com").await;
        assert_eq!(d["status"], "failed", "{tls}: {d}");
        assert_eq!(d["status_reason"], "send_permanent", "{tls}: {d}");
        assert_eq!(d["attempts"], 1);
        let detail = d["status_detail"].as_str().unwrap();
        assert!(
            detail.contains("certificate refused") && detail.contains("UnknownIssuer"),
            "{tls}: {detail}"
        );
        assert!(detail.contains("tls_ca_file"), "the hint: {detail}");
        assert!(server.messages().is_empty());
        let seen = server.handshake_failures_reach(1).await;
        assert_eq!(seen.len(), 1, "{tls}: {seen:?}");
    }

    // The test CA's certificate is for `localhost`, not for 127.0.0.1.
    let server = SmtpServer::start(Security::StartTls, &trusted).await;
    let w = routed(b, server.config("127.0.0.1", &ca, &[])).await;
    let d = ship(&w, "A-2", "zoe@example.com").await;
    assert_eq!(d["status"], "failed", "{d}");
    assert_eq!(d["status_reason"], "send_permanent");
    let detail = d["status_detail"].as_str().unwrap();
    assert!(
        detail.contains("certificate refused") && detail.contains("not valid for name"),
        "{detail}"
    );
    assert!(server.messages().is_empty());
}

/// Mozilla's roots alone do not trust the test CA: without `tls_ca_file` the same server is
/// refused. (The setting adds a root; it does not switch anything off.)
async fn without_the_ca_setting_the_test_ca_is_not_trusted(b: Backend) {
    let pki = Pki::new("belfry test CA");
    let (_dir, ca) = ca_file(&pki);
    let server = SmtpServer::start(Security::StartTls, &pki).await;
    let mut config = server.config("localhost", &ca, &[]);
    config.remove("tls_ca_file");
    let w = routed(b, config).await;
    let d = ship(&w, "A-1", "zoe@example.com").await;
    assert_eq!(d["status"], "failed", "{d}");
    assert_eq!(d["status_reason"], "send_permanent");
    assert!(
        d["status_detail"]
            .as_str()
            .unwrap()
            .contains("certificate refused"),
        "{d}"
    );
    assert!(server.messages().is_empty());
}

/// A server without STARTTLS, when TLS is required (the default): a permanent failure that
/// says so, before any credentials or mail.
async fn a_server_without_starttls_fails_clearly(b: Backend) {
    let pki = Pki::new("belfry test CA");
    let (_dir, ca) = ca_file(&pki);
    let server = SmtpServer::start(Security::Plain, &pki).await;
    let w = routed(
        b,
        server.config(
            "localhost",
            &ca,
            &[("username", "belfry"), ("password", "s3cret")],
        ),
    )
    .await;
    let d = ship(&w, "A-1", "zoe@example.com").await;
    assert_eq!(d["status"], "failed", "{d}");
    assert_eq!(d["status_reason"], "send_permanent");
    let detail = d["status_detail"].as_str().unwrap();
    assert!(
        detail.contains("does not offer STARTTLS") && detail.contains("tls = starttls"),
        "{detail}"
    );
    assert!(server.messages().is_empty());
}

/// `tls = none`, said explicitly, still sends in plain text; with credentials it refuses.
async fn plain_text_when_the_operator_says_none(b: Backend) {
    let pki = Pki::new("belfry test CA");
    let (_dir, ca) = ca_file(&pki);
    let server = SmtpServer::start(Security::Plain, &pki).await;
    let w = routed(b, server.config("127.0.0.1", &ca, &[("tls", "none")])).await;
    let d = ship(&w, "A-1", "zoe@example.com").await;
    assert_eq!(d["status"], "succeeded", "{d}");
    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    assert!(!messages[0].tls);
    assert_the_order_email(&messages[0]);

    let w = routed(
        b,
        server.config(
            "127.0.0.1",
            &ca,
            &[
                ("tls", "none"),
                ("username", "belfry"),
                ("password", "s3cret"),
            ],
        ),
    )
    .await;
    let d = ship(&w, "A-2", "zoe@example.com").await;
    assert_eq!(d["status"], "failed", "{d}");
    assert_eq!(d["status_reason"], "send_permanent");
    assert!(
        d["status_detail"].as_str().unwrap().contains("need TLS"),
        "{d}"
    );
    assert_eq!(server.messages().len(), 1);
}

/// A `tls_ca_file` the host cannot use stops the load naming the key, not every delivery.
async fn a_bad_ca_file_fails_the_load_naming_the_key(b: Backend) {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("not-a-ca.pem");
    std::fs::write(&not_pem, "this is no certificate\n").unwrap();
    for (ca, says) in [
        (dir.path().join("missing.pem"), "cannot read"),
        (not_pem, "no PEM `CERTIFICATE`"),
    ] {
        let db = common::test_db(b).await;
        let mut config = common::config_for(&db.url, "http://127.0.0.1:9/unused");
        config.plugin_config.insert(
            "smtp".to_string(),
            BTreeMap::from([
                ("host".to_string(), "localhost".to_string()),
                ("tls_ca_file".to_string(), ca.display().to_string()),
            ]),
        );
        let error = match belfry::Engine::open(config).await {
            Ok(_) => panic!("the engine opened with tls_ca_file = {}", ca.display()),
            Err(e) => e.to_string(),
        };
        assert!(
            error.contains("tls_ca_file") && error.contains(says),
            "{error}"
        );
    }
}

on_both_backends!(
    a_bad_ca_file_fails_the_load_naming_the_key,
    starttls_delivers_over_tls_and_authenticates,
    implicit_tls_delivers,
    an_untrusted_certificate_fails_the_delivery_for_good,
    without_the_ca_setting_the_test_ca_is_not_trusted,
    a_server_without_starttls_fails_clearly,
    plain_text_when_the_operator_says_none,
);
