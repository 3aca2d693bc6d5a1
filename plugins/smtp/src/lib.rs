//! The `smtp` channel adapter: sends `email` content to an SMTP server (a relay or a
//! provider's submission port) over TCP through WASI sockets, with TLS by the host's
//! `wasi:tls` ([`net`]).
//!
//! Config keys (resolved by the host):
//! - `host` (required) and `port` (default 587): the server. It must be granted as
//!   `host:port`: the manifest's `smtp.example.com:587` is a placeholder, operators grant
//!   theirs with `allow_tcp`.
//! - `tls`: `starttls` (the default, except on port 465), `implicit` (the default on 465) or
//!   `none` (plain text, only when set; then no credentials). The server's certificate is
//!   verified by the host against Mozilla's roots and, for a private CA, the PEM file the
//!   host's config key `tls_ca_file` names; it must be valid for `host`.
//! - `from` (required): the sender, `alerts@example.com` or `Belfry <alerts@example.com>`;
//!   its address is also the envelope sender (`MAIL FROM`).
//! - `username` and `password` (optional, both or neither): `AUTH PLAIN` when the server
//!   offers it, else `AUTH LOGIN`, over TLS only.
//! - `helo_name` (default `belfry.localdomain`): the name in `EHLO`.
//!
//! The message ([`mail`]) carries Date, From, To, Subject, a Message-ID of
//! `<{idempotency_key}@{from's domain}>`, the same for every attempt so a receiver can drop
//! repeats, every header the host requires (`message.headers`: List-Unsubscribe, …), and
//! quoted-printable bodies, `multipart/alternative` with both text and HTML. The receipt is
//! that Message-ID, angle brackets included; the server's queue id, when its reply names one,
//! goes to the log only (it differs per attempt and per relay hop, the Message-ID does not).
//!
//! Replies ([`session`]): 4xx transient, 5xx permanent, naming the command and the server's
//! text. Connection errors and timeouts are transient, except the host refusing the
//! connection (a destination not granted), which is permanent: only the configuration can
//! fix it. So are a server without `STARTTLS` when `tls = starttls`, and a certificate the
//! host refuses (the reason is recorded). SMTP has no delivery callbacks here:
//! `handle-webhook` is unsupported.

pub mod mail;
pub mod net;
pub mod session;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use belfry_plugin_sdk::adapter::{
    FeedbackEvent, Guest, Message, Receipt, SendError, WebhookError, WebhookRequest,
};
use belfry_plugin_sdk::log;
use belfry_plugin_sdk::settings::Config;
use belfry_plugin_sdk::types::Content;
use mail::{Email, Mailbox};
use session::{Envelope, LineTransport, Settings, TlsMode};

const CONFIG: Config = Config::new("smtp");
const DEFAULT_PORT: u16 = 587;
const DEFAULT_HELO: &str = "belfry.localdomain";
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Per read, per write and for the TLS handshake; the host's call limit (the manifest's
/// 60 s) bounds the session.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

struct SmtpAdapter;

impl Guest for SmtpAdapter {
    fn send(message: Message) -> Result<Receipt, SendError> {
        let Content::Email(content) = &message.content else {
            return Err(CONFIG.wrong_content("email"));
        };
        let server = ServerConfig::read(&CONFIG)?;
        let to = message
            .recipient
            .email
            .as_deref()
            .ok_or_else(|| SendError::Permanent("the recipient has no email address".to_string()))
            .and_then(|email| {
                Mailbox::parse(email)
                    .map(|mailbox| Mailbox {
                        display: None,
                        ..mailbox
                    })
                    .map_err(|err| SendError::Permanent(format!("recipient: {err}")))
            })?;
        let message_id = message_id(&message.idempotency_key, &server.from, &server.helo_name);
        let date = mail::rfc5322_date(
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs() as i64),
        );
        let text = mail::build(&Email {
            from: &server.from,
            to: &to,
            subject: &content.subject,
            text: content.text.as_deref(),
            html: content.html.as_deref(),
            message_id: &message_id,
            date: &date,
            headers: &message.headers,
        })
        .map_err(SendError::Permanent)?;

        let authority = format!("{}:{}", server.host, server.port);
        let mut transport =
            net::Connection::connect(&server.host, server.port, CONNECT_TIMEOUT, IO_TIMEOUT)?;
        if server.tls == TlsMode::Implicit {
            transport.start_tls()?;
        }
        let accepted = session::deliver(
            &mut transport,
            &Settings {
                server: &authority,
                helo_name: &server.helo_name,
                credentials: server
                    .credentials
                    .as_ref()
                    .map(|(u, p)| (u.as_str(), p.as_str())),
                tls: server.tls,
            },
            &Envelope {
                from: &server.from.address,
                to: &to.address,
                message: &text,
            },
            &mut |warning| log::warn(&warning),
        )?;
        log::info(&format!(
            "{authority} accepted {message_id} for delivery {}{}",
            message.delivery_id,
            accepted
                .queued_as
                .as_deref()
                .map(|id| format!(", queued as {id}"))
                .unwrap_or_default()
        ));
        Ok(Receipt {
            provider_message_id: message_id,
            metadata: Vec::new(),
        })
    }

    fn handle_webhook(_request: WebhookRequest) -> Result<Vec<FeedbackEvent>, WebhookError> {
        Err(CONFIG.no_webhooks())
    }
}

belfry_plugin_sdk::export_adapter!(SmtpAdapter);

/// The checked configuration.
#[derive(Debug)]
struct ServerConfig {
    host: String,
    port: u16,
    from: Mailbox,
    credentials: Option<(String, String)>,
    helo_name: String,
    tls: TlsMode,
}

impl ServerConfig {
    fn read(config: &Config) -> Result<ServerConfig, SendError> {
        let bad =
            |key: &str, why: String| SendError::Permanent(format!("config key `{key}`: {why}"));
        let host = config.required("host")?;
        if host.contains([' ', '/', '@']) {
            return Err(bad("host", format!("{host:?} is not a host name")));
        }
        let port = match config.optional("port") {
            None => DEFAULT_PORT,
            Some(text) => text
                .parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| bad("port", format!("{text:?} is not a port number")))?,
        };
        let from = Mailbox::parse(&config.required("from")?).map_err(|e| bad("from", e))?;
        let credentials = match (config.optional("username"), config.optional("password")) {
            (Some(user), Some(password)) => Some((user, password)),
            (None, None) => None,
            _ => {
                return Err(SendError::Permanent(
                    "config keys `username` and `password` go together: set both or neither"
                        .to_string(),
                ));
            }
        };
        let helo_name = config
            .optional("helo_name")
            .unwrap_or_else(|| DEFAULT_HELO.to_string());
        if !helo_name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b))
        {
            return Err(bad(
                "helo_name",
                format!("{helo_name:?} is not a host name"),
            ));
        }
        if config.optional("starttls").is_some() {
            // The key of the build without TLS, whose `opportunistic` sent in plain text.
            return Err(bad(
                "starttls",
                "is no longer read: set `tls` to starttls, implicit or none".to_string(),
            ));
        }
        let tls = match config.optional("tls") {
            None => TlsMode::default_for(port),
            Some(text) => TlsMode::parse(&text).ok_or_else(|| {
                bad(
                    "tls",
                    format!("{text:?} is not one of starttls, implicit, none"),
                )
            })?,
        };
        if tls == TlsMode::None && credentials.is_some() {
            return Err(session::no_credentials_in_plain_text());
        }
        Ok(ServerConfig {
            host,
            port,
            from,
            credentials,
            helo_name,
            tls,
        })
    }
}

/// `<{idempotency key}@{domain}>`: the key as a dot-atom (other characters dropped), the
/// sender's domain (the HELO name when that is not ASCII).
fn message_id(idempotency_key: &str, from: &Mailbox, helo_name: &str) -> String {
    let local: String = idempotency_key
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(*c))
        .collect();
    let local = local.trim_matches('.').replace("..", ".");
    let local = if local.is_empty() {
        "belfry".to_string()
    } else {
        local
    };
    let domain = from.domain();
    let domain = if domain.is_ascii() && !domain.starts_with('[') {
        domain
    } else {
        helo_name
    };
    format!("<{local}@{domain}>")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_stable_dot_atoms() {
        let from = Mailbox::parse("Shop <orders@shop.example>").unwrap();
        assert_eq!(
            message_id("belfry-0192f0c4-7e1a", &from, "h"),
            "<belfry-0192f0c4-7e1a@shop.example>"
        );
        assert_eq!(message_id("a b<c>..d.", &from, "h"), "<abc.d@shop.example>");
        assert_eq!(message_id("<>", &from, "h"), "<belfry@shop.example>");
        let utf8 = Mailbox::parse("o@bücher.example").unwrap();
        assert_eq!(message_id("k", &utf8, "relay.local"), "<k@relay.local>");
    }

    fn config(get: fn(&str) -> Option<String>) -> Result<ServerConfig, SendError> {
        ServerConfig::read(&Config::with_source("smtp", get))
    }

    #[test]
    fn config_has_defaults_and_names_bad_keys() {
        let c = config(|k| match k {
            "host" => Some("mail.example".into()),
            "from" => Some("Belfry <a@example.com>".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.port, 587);
        assert_eq!(c.helo_name, "belfry.localdomain");
        assert_eq!(c.tls, TlsMode::StartTls);
        assert!(c.credentials.is_none());
        assert_eq!(c.from.address, "a@example.com");

        let err = |get: fn(&str) -> Option<String>| match config(get) {
            Err(SendError::Permanent(m)) => m,
            other => panic!("{other:?}"),
        };
        assert!(err(|_| None).contains("`host`"));
        assert!(err(|k| (k == "host").then(|| "h".into())).contains("`from`"));
        fn base(k: &str) -> Option<String> {
            match k {
                "host" => Some("h".to_string()),
                "from" => Some("a@b".to_string()),
                _ => None,
            }
        }
        assert!(
            err(|k| if k == "port" {
                Some("70000".into())
            } else {
                base(k)
            })
            .contains("`port`")
        );
        assert!(
            err(|k| if k == "username" {
                Some("u".into())
            } else {
                base(k)
            })
            .contains("set both or neither")
        );
        assert!(
            err(|k| if k == "starttls" {
                Some("required".into())
            } else {
                base(k)
            })
            .contains("set `tls`")
        );
        assert!(
            err(|k| if k == "tls" {
                Some("always".into())
            } else {
                base(k)
            })
            .contains("`tls`")
        );
        assert!(
            err(|k| match k {
                "tls" => Some("none".into()),
                "username" => Some("u".into()),
                "password" => Some("p".into()),
                _ => base(k),
            })
            .contains("need TLS")
        );
        let smtps = config(|k| match k {
            "port" => Some("465".into()),
            _ => base(k),
        })
        .unwrap();
        assert_eq!(smtps.tls, TlsMode::Implicit);
        let plain = config(|k| match k {
            "tls" => Some("none".into()),
            _ => base(k),
        })
        .unwrap();
        assert_eq!(plain.tls, TlsMode::None);
        assert!(
            err(|k| if k == "helo_name" {
                Some("a b".into())
            } else {
                base(k)
            })
            .contains("`helo_name`")
        );
    }
}
