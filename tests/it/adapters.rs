//! The provider adapters `slack`, `ntfy` and `smtp`, the real bundled components, against
//! real servers on 127.0.0.1: scripted HTTP servers speaking Slack's incoming-webhook and
//! ntfy's JSON publishing formats, and aiosmtpd (from PyPI, installed by
//! `tests/smtp/setup.sh` into a venv under the target dir) running `tests/smtp/server.py`.
//!
//! The answer mapping of slack and ntfy is exercised by calling them through the engine's
//! plugin runtime (`send`, with the engine's routes, config and grants); the whole way —
//! trigger, plan, render, dispatch, the delivery's record — runs for chat and push with the
//! `deploy-finished` notifier, and for email through `smtp`.
//! Without python3 (or when the venv cannot be set up) the SMTP tests print `SKIPPED: …`
//! and pass. Every server is local, every wait bounded.

use crate::common;

use crate::common::provider::{Answer, Provider};
use crate::common::{Backend, World, world_with};
use axum::http::Method;
use belfry::host::content::{Channel, Content, Recipient};
use belfry::host::plugins::{FailureReason, OutgoingMessage, Plugin, Reuse, SendError};
use belfry::{Engine, EngineConfig, TriggerRequest};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

/// An engine on `backend` whose `routes` send `channel` to `adapter`, configured by
/// `config` (its grants included).
async fn routed(
    backend: Backend,
    channel: Channel,
    adapter: &str,
    config: BTreeMap<String, String>,
    tweak: impl FnOnce(&mut EngineConfig),
) -> World {
    world_with(backend, |c| {
        c.routes = BTreeMap::from([(channel, adapter.to_string())]);
        c.plugin_config.insert(adapter.to_string(), config);
        tweak(c);
    })
    .await
}

fn config(pairs: &[(&str, String)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect()
}

/// The adapter the engine's registry routes `channel` to.
fn adapter_for(engine: &Engine, channel: Channel) -> Plugin {
    engine
        .registry()
        .adapter_for(channel)
        .cloned()
        .unwrap_or_else(|| panic!("no adapter for {channel:?}"))
}

fn message(n: u32, channel: Channel, recipient: Recipient, content: Content) -> OutgoingMessage {
    OutgoingMessage {
        delivery_id: format!("dlv-{n}"),
        notification_id: format!("ntf-{n}"),
        tenant: "default".to_string(),
        idempotency_key: format!("belfry-dlv-{n}"),
        attempt: 1,
        channel,
        recipient,
        content,
        headers: Vec::new(),
    }
}

fn recipient(id: &str, data: Option<Value>) -> Recipient {
    Recipient {
        id: id.to_string(),
        email: None,
        phone: None,
        data: data.map(|d| d.to_string()),
    }
}

async fn send(engine: &Engine, plugin: &Plugin, m: &OutgoingMessage) -> Result<String, SendError> {
    tokio::time::timeout(
        Duration::from_secs(30),
        engine.runtime().send(plugin, m, Reuse::Fresh),
    )
    .await
    .expect("the adapter answers within 30 s")
    .expect("the call itself succeeds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_posts_text_and_blocks_and_maps_slacks_answers() {
    let slack = Provider::start(Answer::text(200, "ok")).await;
    slack
        .then(Answer::text(200, "ok"))
        .then(Answer::status(429, "rate_limited").header("retry-after", "7"))
        .then(Answer::text(500, "internal_error"))
        .then(Answer::text(400, "invalid_payload"))
        .then(Answer::text(404, "channel_not_found"));
    let w = routed(
        Backend::Sqlite,
        Channel::Chat,
        "slack",
        config(&[
            (
                "webhook_url",
                format!("http://{}/services/T000/B000/XXXX", slack.authority()),
            ),
            ("allow_http", slack.authority()),
        ]),
        |_| {},
    )
    .await;
    let e = &w.engine;
    // `default_route = false`: only the route makes slack the chat adapter.
    let plugin = adapter_for(e, Channel::Chat);
    assert_eq!(plugin.name(), "slack");

    let blocks = json!([{"type": "section", "text": {"type": "mrkdwn", "text": "*Deploy* done"}}]);
    let chat = |n: u32| {
        message(
            n,
            Channel::Chat,
            recipient("ops", None),
            Content::Chat {
                text: format!("Deploy {n} done"),
                blocks: Some(blocks.to_string()),
            },
        )
    };
    assert_eq!(
        send(e, &plugin, &chat(1)).await,
        Ok("slack:belfry-dlv-1".to_string())
    );
    let requests = slack.requests();
    assert_eq!(requests.len(), 1);
    let first = &requests[0];
    assert_eq!(first.method, Method::POST);
    assert_eq!(first.path, "/services/T000/B000/XXXX");
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(
        first.json(),
        json!({"text": "Deploy 1 done", "blocks": blocks})
    );

    assert_eq!(
        send(e, &plugin, &chat(2)).await,
        Err(SendError::RateLimited {
            retry_after_ms: 7000,
            message: "slack answered 429 Too Many Requests: rate_limited".to_string()
        })
    );
    assert!(matches!(
        send(e, &plugin, &chat(3)).await,
        Err(SendError::Transient { message }) if message == "slack answered 500: internal_error"
    ));
    assert_eq!(
        send(e, &plugin, &chat(4)).await,
        Err(SendError::Permanent {
            message: "slack answered 400: invalid_payload".to_string()
        })
    );
    assert!(matches!(
        send(e, &plugin, &chat(5)).await,
        Err(SendError::Permanent { message }) if message.contains("channel_not_found")
    ));
    // Text only: no `blocks` key at all.
    let plain = message(
        6,
        Channel::Chat,
        recipient("ops", None),
        Content::Chat {
            text: "plain".to_string(),
            blocks: None,
        },
    );
    assert!(send(e, &plugin, &plain).await.is_ok());
    assert_eq!(slack.requests()[5].json(), json!({"text": "plain"}));
    assert_eq!(slack.requests().len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_without_a_grant_for_the_url_is_refused_by_the_host() {
    let slack = Provider::start(Answer::text(200, "ok")).await;
    let w = routed(
        Backend::Sqlite,
        Channel::Chat,
        "slack",
        config(&[(
            "webhook_url",
            format!("http://{}/services/T/B/X", slack.authority()),
        )]),
        |_| {},
    )
    .await;
    let plugin = adapter_for(&w.engine, Channel::Chat);
    let m = message(
        1,
        Channel::Chat,
        recipient("ops", None),
        Content::Chat {
            text: "hi".to_string(),
            blocks: None,
        },
    );
    // The host's gate refuses the request and fails the call itself, whatever the adapter
    // makes of the refusal: a capability denial is the operator's to fix.
    let refused = tokio::time::timeout(
        Duration::from_secs(30),
        w.engine.runtime().send(&plugin, &m, Reuse::Fresh),
    )
    .await
    .expect("the adapter answers within 30 s")
    .expect_err("the host fails the call");
    assert_eq!(
        refused.reason,
        FailureReason::CapabilityDenied,
        "{refused:?}"
    );
    assert!(
        refused
            .message
            .contains(&format!("may not reach http://{}", slack.authority())),
        "{refused:?}"
    );
    assert!(slack.requests().is_empty(), "nothing left the sandbox");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ntfy_publishes_json_to_the_recipients_topic_and_maps_its_errors() {
    let ntfy = Provider::start(Answer::json(500, json!({}))).await;
    ntfy.then(Answer::json(
        200,
        json!({"id": "sPs71M8A2T", "time": 1_700_000_000, "expires": 1_700_043_200,
               "event": "message", "topic": "zoe-phone", "message": "Your code is 123"}),
    ))
    .then(
        Answer::json(
            429,
            json!({"code": 42901, "http": 429, "error": "limit reached: too many requests"}),
        )
        .header("retry-after", "12"),
    )
    .then(Answer::json(
        403,
        json!({"code": 40301, "http": 403, "error": "forbidden",
               "link": "https://ntfy.sh/docs/publish/#authentication"}),
    ))
    .then(Answer::json(
        200,
        json!({"id": "second", "event": "message", "topic": "alerts"}),
    ));
    let w = routed(
        Backend::Sqlite,
        Channel::Push,
        "ntfy",
        config(&[
            ("server", format!("http://{}", ntfy.authority())),
            ("topic", "alerts".to_string()),
            ("token", "tk_test".to_string()),
            ("allow_http", ntfy.authority()),
        ]),
        |_| {},
    )
    .await;
    let e = &w.engine;
    let plugin = adapter_for(e, Channel::Push);
    assert_eq!(plugin.name(), "ntfy");
    let push = |n: u32, who: Recipient, data: Option<Value>| {
        message(
            n,
            Channel::Push,
            who,
            Content::Push {
                title: "Sign-in code".to_string(),
                body: "Your code is 123".to_string(),
                data: data.map(|d| d.to_string()),
            },
        )
    };

    let zoe = recipient(
        "zoe",
        Some(json!({"ntfy_topic": "zoe-phone", "name": "Zoe"})),
    );
    let m = push(
        1,
        zoe,
        Some(json!({"click": "https://app.example/codes", "tags": ["lock"], "priority": 4})),
    );
    assert_eq!(send(e, &plugin, &m).await, Ok("sPs71M8A2T".to_string()));
    let first = &ntfy.requests()[0];
    assert_eq!(first.method, Method::POST);
    assert_eq!(first.path, "/");
    assert_eq!(first.header("authorization"), Some("Bearer tk_test"));
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(
        first.json(),
        json!({"topic": "zoe-phone", "title": "Sign-in code", "message": "Your code is 123",
               "click": "https://app.example/codes", "tags": ["lock"], "priority": 4})
    );

    // No topic of its own: the configured one.
    let amy = || recipient("amy", None);
    assert_eq!(
        send(e, &plugin, &push(2, amy(), None)).await,
        Err(SendError::RateLimited {
            retry_after_ms: 12_000,
            message: "ntfy answered 429 Too Many Requests: ntfy error 42901: limit reached: too many requests"
                .to_string()
        })
    );
    assert_eq!(ntfy.requests()[1].json()["topic"], "alerts");
    assert_eq!(
        send(e, &plugin, &push(3, amy(), None)).await,
        Err(SendError::Permanent {
            message: "ntfy answered 403: ntfy error 40301: forbidden".to_string()
        })
    );
    assert_eq!(
        send(e, &plugin, &push(4, amy(), None)).await,
        Ok("second".to_string())
    );
    assert!(matches!(
        send(e, &plugin, &push(5, amy(), None)).await,
        Err(SendError::Transient { message }) if message.starts_with("ntfy answered 500")
    ));
    // A topic ntfy would refuse never leaves the sandbox.
    let bad = recipient("bad", Some(json!({"ntfy_topic": "no/slashes"})));
    assert!(matches!(
        send(e, &plugin, &push(6, bad, None)).await,
        Err(SendError::Permanent { message }) if message.contains("not an ntfy topic")
    ));
    assert_eq!(ntfy.requests().len(), 5);
}

// ---- SMTP --------------------------------------------------------------------------------

/// The venv's python with aiosmtpd, or why there is none (set up once per test binary).
fn smtp_python() -> Result<&'static Path, &'static str> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    common::python_venv(&PYTHON, "smtp")
}

/// `tests/smtp/server.py` on a free port of 127.0.0.1; killed when dropped (and it exits by
/// itself when its stdin closes, should the test die first).
struct SmtpServer {
    port: u16,
    out: tempfile::TempDir,
    _child: tokio::process::Child,
}

impl SmtpServer {
    /// `None` (after printing why) when aiosmtpd cannot be set up here.
    async fn start(auth: Option<&str>) -> Option<SmtpServer> {
        let python = match smtp_python() {
            Ok(python) => python,
            Err(why) => {
                eprintln!("SKIPPED: no SMTP server for this test: {why}");
                return None;
            }
        };
        let out = tempfile::tempdir().unwrap();
        let mut command = tokio::process::Command::new(python);
        command
            .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/smtp/server.py"))
            .arg(out.path());
        if let Some(auth) = auth {
            command.arg("--auth").arg(auth);
        }
        let mut child = command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("starting tests/smtp/server.py");
        use tokio::io::AsyncBufReadExt;
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("the SMTP server starts within 20 s")
            .unwrap()
            .expect("the SMTP server prints READY <port>");
        let port = ready
            .strip_prefix("READY ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line from server.py: {ready}"));
        Some(SmtpServer {
            port,
            out,
            _child: child,
        })
    }

    /// Every message received so far, in order.
    fn messages(&self) -> Vec<Value> {
        let mut files: Vec<_> = std::fs::read_dir(self.out.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        files.sort();
        files
            .iter()
            .map(|p| serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap())
            .collect()
    }

    /// The smtp adapter's config for this server, granted with `allow_tcp`.
    fn config(&self, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut c = config(&[
            ("host", "127.0.0.1".to_string()),
            ("port", self.port.to_string()),
            ("from", "Acme Shop <orders@acme.test>".to_string()),
            ("helo_name", "belfry.test".to_string()),
            ("allow_tcp", format!("127.0.0.1:{}", self.port)),
            // aiosmtpd here speaks plain text; TLS is tests/it/smtp_tls.rs's.
            ("tls", "none".to_string()),
        ]);
        for (k, v) in extra {
            c.insert(k.to_string(), v.to_string());
        }
        c
    }
}

/// A parsed message: unfolded headers (name lowercased) and the raw body.
struct Mail {
    headers: Vec<(String, String)>,
    body: String,
}

impl Mail {
    fn parse(data: &str) -> Mail {
        let (head, body) = data
            .split_once("\r\n\r\n")
            .expect("a blank line after headers");
        assert!(
            !data.replace("\r\n", "").contains('\n'),
            "every line ends in CRLF"
        );
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.split("\r\n") {
            if line.starts_with(' ') || line.starts_with('\t') {
                headers.last_mut().unwrap().1.push_str(line);
            } else {
                let (name, value) = line.split_once(':').expect("name: value");
                headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        Mail {
            headers,
            body: body.to_string(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body with quoted-printable soft breaks and `=XX` escapes undone.
    fn decoded_body(&self) -> String {
        let joined = self.body.replace("=\r\n", "");
        let raw = joined.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < raw.len() {
            let hex = raw
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
            match (raw[i], hex) {
                (b'=', Some(byte)) => {
                    out.push(byte);
                    i += 3;
                }
                (b, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8(out).unwrap()
    }
}

fn order(order_id: &str, customers: &[(&str, &str)]) -> Value {
    json!({
        "order_id": order_id,
        "carrier": "DHL",
        "tracking_url": format!("https://track.example.com/{order_id}"),
        "customers": customers
            .iter()
            .map(|(id, email)| json!({"id": id, "name": "Zoë", "email": email}))
            .collect::<Vec<_>>(),
    })
}

/// Triggers `order-shipped` and dispatches it; returns the email deliveries (as JSON, by
/// recipient id) and what dispatch said about each delivery.
async fn ship(e: &Engine, payload: Value) -> (BTreeMap<String, Value>, Vec<Value>) {
    let out = e
        .trigger(&TriggerRequest::new("order-shipped", payload))
        .await
        .unwrap();
    let dispatched = tokio::time::timeout(Duration::from_secs(90), e.dispatch_event(&out.event_id))
        .await
        .expect("dispatch finishes within 90 s")
        .unwrap();
    let after = e.event(&out.event_id).await.unwrap();
    let emails = after
        .notifications
        .iter()
        .flat_map(|n| &n.deliveries)
        .filter(|d| d.channel == "email")
        .map(|d| (d.recipient_id.clone(), serde_json::to_value(d).unwrap()))
        .collect();
    let dispatched = dispatched
        .iter()
        .map(|d| {
            json!({"delivery_id": d.delivery_id, "status": d.status, "reason": d.reason,
                   "retry_at": d.retry_at})
        })
        .collect();
    (emails, dispatched)
}

async fn smtp_sends_an_order_email_with_every_header(b: Backend) {
    let Some(server) = SmtpServer::start(None).await else {
        return;
    };
    let w = routed(b, Channel::Email, "smtp", server.config(&[]), |c| {
        c.public_url = Some("https://belfry.test".to_string());
    })
    .await;
    assert_eq!(adapter_for(&w.engine, Channel::Email).name(), "smtp");
    let (emails, _) = ship(&w.engine, order("A-1", &[("zoe", "zoe@example.com")])).await;
    let d = &emails["zoe"];
    assert_eq!(d["status"], "succeeded", "{d}");
    assert_eq!(d["attempts"], 1);
    assert!(d["sent_by"].as_str().unwrap().starts_with("smtp@0.1.0#"));
    let key = d["idempotency_key"].as_str().unwrap();
    let message_id = format!("<{key}@acme.test>");
    assert_eq!(d["provider_message_id"], message_id.as_str());

    let messages = server.messages();
    assert_eq!(messages.len(), 1);
    let received = &messages[0];
    assert_eq!(received["mail_from"], "orders@acme.test");
    assert_eq!(received["rcpt_tos"], json!(["zoe@example.com"]));
    assert_eq!(received["login"], Value::Null);
    let mail = Mail::parse(received["data"].as_str().unwrap());
    assert_eq!(mail.header("from"), Some("Acme Shop <orders@acme.test>"));
    assert_eq!(mail.header("to"), Some("zoe@example.com"));
    assert_eq!(mail.header("subject"), Some("Your order A-1 has shipped"));
    assert_eq!(mail.header("message-id"), Some(message_id.as_str()));
    assert_eq!(mail.header("mime-version"), Some("1.0"));
    assert!(mail.header("date").unwrap().ends_with("+0000"));
    // The host's one-click unsubscribe headers (RFC 8058), written as given.
    let unsubscribe = mail.header("list-unsubscribe").expect("List-Unsubscribe");
    assert!(
        unsubscribe.starts_with("<https://belfry.test/"),
        "{unsubscribe}"
    );
    assert_eq!(
        mail.header("list-unsubscribe-post"),
        Some("List-Unsubscribe=One-Click")
    );
    let content_type = mail.header("content-type").unwrap();
    assert!(
        content_type.starts_with("multipart/alternative; boundary="),
        "{content_type}"
    );
    let body = mail.decoded_body();
    assert!(body.contains("Content-Type: text/plain; charset=utf-8"));
    assert!(body.contains("Content-Type: text/html; charset=utf-8"));
    assert!(body.contains("Hi Zoë,"), "UTF-8 survives quoted-printable");
    assert!(body.contains("Track it here: https://track.example.com/A-1"));
    assert!(body.contains("<strong>A-1</strong>"));
}

async fn smtp_rejections_fail_for_good_and_greylisting_is_retried(b: Backend) {
    let Some(server) = SmtpServer::start(None).await else {
        return;
    };
    let w = routed(b, Channel::Email, "smtp", server.config(&[]), |_| {}).await;
    let (emails, dispatched) = ship(
        &w.engine,
        order(
            "B-1",
            &[
                ("rex", "reject@example.com"),
                ("gus", "greylist@example.com"),
            ],
        ),
    )
    .await;
    let rejected = &emails["rex"];
    assert_eq!(rejected["status"], "failed", "{rejected}");
    assert_eq!(rejected["status_reason"], "send_permanent");
    let detail = rejected["status_detail"].as_str().unwrap();
    assert!(
        detail.contains("550 to RCPT TO")
            && detail.contains("Recipient address rejected: User unknown"),
        "{detail}"
    );
    let greylisted = &emails["gus"];
    assert_eq!(greylisted["status"], "pending", "{greylisted}");
    assert_eq!(greylisted["status_reason"], "send_transient");
    assert_eq!(greylisted["attempts"], 1);
    assert!(
        greylisted["status_detail"]
            .as_str()
            .unwrap()
            .contains("451 to RCPT TO: 4.7.1 Greylisted"),
        "{greylisted}"
    );
    let retry = dispatched
        .iter()
        .find(|d| d["delivery_id"] == greylisted["id"])
        .expect("the greylisted delivery was dispatched");
    assert!(
        retry["retry_at"].is_string(),
        "a retry is scheduled: {retry}"
    );
    assert!(server.messages().is_empty());
}

/// AUTH itself (PLAIN over STARTTLS and implicit TLS, wrong credentials) is tested over TLS in
/// tests/it/smtp_tls.rs: the adapter sends credentials over TLS only.
async fn smtp_sends_no_credentials_in_plain_text(b: Backend) {
    let Some(server) = SmtpServer::start(Some("belfry:s3cret")).await else {
        return;
    };
    let plain = routed(
        b,
        Channel::Email,
        "smtp",
        server.config(&[("username", "belfry"), ("password", "s3cret")]),
        |_| {},
    )
    .await;
    let (emails, _) = ship(&plain.engine, order("C-1", &[("zoe", "zoe@example.com")])).await;
    let d = &emails["zoe"];
    assert_eq!(d["status"], "failed", "{d}");
    assert_eq!(d["status_reason"], "send_permanent");
    assert!(
        d["status_detail"].as_str().unwrap().contains("need TLS"),
        "{d}"
    );
    assert!(server.messages().is_empty());

    // Credentials to a server requiring AUTH are not optional: 530 at MAIL FROM.
    let none = routed(b, Channel::Email, "smtp", server.config(&[]), |_| {}).await;
    let (emails, _) = ship(&none.engine, order("C-3", &[("zoe", "zoe@example.com")])).await;
    let d = &emails["zoe"];
    assert_eq!(d["status"], "failed", "{d}");
    assert!(
        d["status_detail"]
            .as_str()
            .unwrap()
            .contains("530 to MAIL FROM"),
        "{d}"
    );
}

async fn smtp_without_a_tcp_grant_is_refused_by_the_host(b: Backend) {
    let Some(server) = SmtpServer::start(None).await else {
        return;
    };
    let mut config = server.config(&[]);
    config.remove("allow_tcp");
    let w = routed(b, Channel::Email, "smtp", config, |_| {}).await;
    let (emails, _) = ship(&w.engine, order("D-1", &[("zoe", "zoe@example.com")])).await;
    let d = &emails["zoe"];
    // The host's socket check refuses the connection and fails the call (not a retry).
    assert_eq!(d["status"], "failed", "{d}");
    assert_eq!(d["status_reason"], "adapter_failed");
    assert_eq!(d["attempts"], 1);
    let detail = d["status_detail"].as_str().unwrap();
    assert!(
        detail.contains(&format!("may not connect to 127.0.0.1:{}", server.port)),
        "{d}"
    );
    assert!(server.messages().is_empty());
}

on_both_backends!(
    chat_and_push_go_the_whole_way_through_slack_and_ntfy,
    smtp_sends_an_order_email_with_every_header,
    smtp_rejections_fail_for_good_and_greylisting_is_retried,
    smtp_sends_no_credentials_in_plain_text,
    smtp_without_a_tcp_grant_is_refused_by_the_host,
);

/// The whole way for chat and push: `deploy-finished` plans a chat message for each watcher
/// and a push for the one with an ntfy topic; the templates render them; slack and ntfy,
/// routed and granted their local servers, send them; the deliveries record the receipts.
async fn chat_and_push_go_the_whole_way_through_slack_and_ntfy(b: Backend) {
    let slack = Provider::start(Answer::text(200, "ok")).await;
    let ntfy = Provider::start(Answer::json(
        200,
        json!({"id": "nt_1", "event": "message", "topic": "ada-phone"}),
    ))
    .await;
    let (slack_auth, ntfy_auth) = (slack.authority(), ntfy.authority());
    let w = world_with(b, |c| {
        c.routes = BTreeMap::from([
            (Channel::Chat, "slack".to_string()),
            (Channel::Push, "ntfy".to_string()),
        ]);
        c.plugin_config.insert(
            "slack".into(),
            config(&[
                (
                    "webhook_url",
                    format!("http://{slack_auth}/services/T0/B0/x"),
                ),
                ("allow_http", slack_auth.clone()),
            ]),
        );
        c.plugin_config.insert(
            "ntfy".into(),
            config(&[
                ("server", format!("http://{ntfy_auth}")),
                ("allow_http", ntfy_auth.clone()),
            ]),
        );
    })
    .await;
    let e = &w.engine;
    let out = e
        .trigger(&TriggerRequest::new(
            "deploy-finished",
            json!({
                "service": "billing",
                "version": "v42",
                "status": "succeeded",
                "url": "https://ci.example.com/runs/42",
                "watchers": [{"id": "ada", "ntfy_topic": "ada-phone"}, {"id": "bob"}]
            }),
        ))
        .await
        .unwrap();
    e.dispatch_event(&out.event_id).await.unwrap();
    let after = serde_json::to_value(e.event(&out.event_id).await.unwrap()).unwrap();
    let mut seen = Vec::new();
    for n in after["notifications"].as_array().unwrap() {
        for d in n["deliveries"].as_array().unwrap() {
            assert_eq!(d["status"], "succeeded", "{d}");
            seen.push((
                n["recipient_id"].as_str().unwrap().to_string(),
                d["channel"].as_str().unwrap().to_string(),
                d["sent_by"]
                    .as_str()
                    .unwrap()
                    .split('@')
                    .next()
                    .unwrap()
                    .to_string(),
                d["provider_message_id"].as_str().unwrap().to_string(),
            ));
        }
    }
    seen.sort();
    let ada_chat = format!(
        "slack:belfry-{}",
        after["notifications"][0]["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["channel"] == "chat")
            .unwrap()["id"]
            .as_str()
            .unwrap()
    );
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert_eq!(seen[0].1, "chat");
    assert_eq!(seen[0].2, "slack");
    assert_eq!(seen[0].3, ada_chat);
    assert_eq!(
        (seen[1].1.as_str(), seen[1].2.as_str(), seen[1].3.as_str()),
        ("push", "ntfy", "nt_1")
    );
    assert_eq!((seen[2].0.as_str(), seen[2].1.as_str()), ("bob", "chat"));

    // What Slack received: text and the rendered Block Kit blocks.
    let posts = slack.requests();
    assert_eq!(posts.len(), 2);
    assert_eq!(posts[0].path, "/services/T0/B0/x");
    let body = posts[0].json();
    assert!(
        body["text"]
            .as_str()
            .unwrap()
            .contains("billing v42 succeeded"),
        "{body}"
    );
    assert_eq!(
        body["blocks"][0]["text"]["text"], "*billing* `v42`: deploy succeeded",
        "{body}"
    );
    // What ntfy received: ada's topic, the title and body, the click URL and tags.
    let published = ntfy.requests();
    assert_eq!(published.len(), 1);
    let body = published[0].json();
    assert_eq!(body["topic"], "ada-phone", "{body}");
    assert_eq!(body["title"], "Deploy succeeded: billing", "{body}");
    assert_eq!(body["click"], "https://ci.example.com/runs/42", "{body}");
    assert_eq!(body["tags"], json!(["white_check_mark"]), "{body}");
}
