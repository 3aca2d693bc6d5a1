//! Plugins in JavaScript and Python, built from source by their SDKs and run end to end, on
//! SQLite and PostgreSQL.
//!
//! `examples/plugins/js-notifier` (the `invoice-due` notifier, componentize-js, with its
//! templates in its own package) and `examples/plugins/python-adapter` (the `mailrelay` email
//! adapter, componentize-py, sending over `wasi:http` and verifying Standard Webhooks) are
//! built with `belfry-build-js` and `belfry-build-py` into directory packages
//! (`NAME/manifest.toml`, `NAME/plugin.wasm`, `NAME/assets/**`) under a temporary `--plugins`
//! directory. Email is routed to `mailrelay`, whose API base is a server on 127.0.0.1 that this
//! test runs. Then: trigger → plan (JS) → render (the default renderer, from the JS package's
//! own templates and translations) → send (Python, over HTTP to the local server) → a signed
//! relay webhook posted to `belfry serve`'s webhook route → feedback on the delivery; a
//! tampered, stale or unsigned one is refused and stores nothing.
//!
//! The toolchains come from `sdk/install-guest-tools.sh`. Without them the tests say they were
//! skipped, unless `BELFRY_REQUIRE_GUEST_TOOLS=1`, when they fail.

use crate::common;

use crate::common::provider::Provider;
use crate::common::{Backend, count, world_with};
use belfry::host::content::Channel;
use belfry::host::feedback::{FeedbackError, FeedbackKind, WebhookRejection, WebhookRequest};
use belfry::{Engine, TriggerRequest};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const TENANT: &str = "acme";
const RELAY_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const RELAY_KEY: &str = "mr_test_key";

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Where `sdk/install-guest-tools.sh` put componentize-py and the WASI WIT.
fn guest_tools() -> PathBuf {
    std::env::var_os("BELFRY_GUEST_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/guest-tools"))
}

/// What is missing of the toolchains, if anything.
fn missing_tools() -> Vec<String> {
    let tools = guest_tools();
    [
        repo().join("sdk/js/node_modules/@bytecodealliance/componentize-js/package.json"),
        tools.join("venv/bin/componentize-py"),
        tools.join("wit/wasi/http.wit"),
    ]
    .into_iter()
    .filter(|p| !p.exists())
    .map(|p| p.display().to_string())
    .collect()
}

/// The built packages, once per test binary: a `--plugins` directory holding `invoice-due/`
/// and `mailrelay/`.
pub struct Built {
    pub plugins: PathBuf,
}

static BUILT: OnceLock<Result<Built, String>> = OnceLock::new();

/// Builds the examples from source, or `None` (and a line saying the test was skipped) when
/// the toolchains are not installed and not required.
fn built() -> Option<&'static Built> {
    let missing = missing_tools();
    if !missing.is_empty() {
        let why = format!(
            "the JavaScript/Python plugin toolchains are not installed (missing: {}); run \
             sdk/install-guest-tools.sh",
            missing.join(", ")
        );
        if std::env::var("BELFRY_REQUIRE_GUEST_TOOLS").as_deref() == Ok("1") {
            panic!("BELFRY_REQUIRE_GUEST_TOOLS=1 but {why}");
        }
        eprintln!("SKIPPED: {why}");
        return None;
    }
    match BUILT.get_or_init(build_examples) {
        Ok(b) => Some(b),
        Err(e) => panic!("{e}"),
    }
}

fn build_examples() -> Result<Built, String> {
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("languages");
    let plugins = out.join("plugins");
    let _ = std::fs::remove_dir_all(&plugins);
    std::fs::create_dir_all(&plugins).map_err(|e| format!("{}: {e}", plugins.display()))?;
    // The two builds take seconds each and share nothing: run them side by side.
    let js = {
        let (out, plugins) = (out.clone(), plugins.clone());
        std::thread::spawn(move || {
            run_build(
                Command::new("node")
                    .arg(repo().join("sdk/js/bin/belfry-build-js.mjs"))
                    .arg(repo().join("examples/plugins/js-notifier"))
                    .arg("-o")
                    .arg(out.join("invoice-due.wasm"))
                    .arg("--package")
                    .arg(plugins.join("invoice-due")),
                "belfry-build-js examples/plugins/js-notifier",
            )
        })
    };
    let py = run_build(
        Command::new("bash")
            .arg(repo().join("sdk/python/bin/belfry-build-py"))
            .arg(repo().join("examples/plugins/python-adapter"))
            .arg("-o")
            .arg(out.join("mailrelay.wasm"))
            .arg("--package")
            .arg(plugins.join("mailrelay")),
        "belfry-build-py examples/plugins/python-adapter",
    );
    js.join()
        .map_err(|_| "the JS build thread panicked".to_string())??;
    py?;
    Ok(Built { plugins })
}

fn run_build(cmd: &mut Command, what: &str) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(())
}

async fn engine(
    b: Backend,
    plugins: &Path,
    relay_port: u16,
    public_url: Option<String>,
) -> common::World {
    let w = world_with(b, |c| {
        c.public_url = public_url;
        c.plugins_dir = Some(plugins.to_path_buf());
        c.routes = BTreeMap::from([(Channel::Email, "mailrelay".to_string())]);
        c.plugin_config.insert(
            "mailrelay".into(),
            BTreeMap::from([
                ("api_key".into(), RELAY_KEY.into()),
                ("from".into(), "Acme Billing <billing@acme.test>".into()),
                ("api_base".into(), format!("http://127.0.0.1:{relay_port}")),
                ("allow_http".into(), format!("127.0.0.1:{relay_port}")),
                ("webhook_secret".into(), RELAY_SECRET.into()),
            ]),
        );
    })
    .await;
    w.engine.ensure_tenant(TENANT).await.unwrap();
    w
}

fn invoice(id: &str) -> Value {
    json!({
        "invoice_id": id,
        "amount_cents": 12050,
        "currency": "EUR",
        "due_date": "2026-12-31",
        "pay_url": format!("https://pay.example.com/{id}"),
        "customers": [
            {"id": "zoe", "name": "Zoe", "email": "zoe@example.com"},
            {"id": "jonas", "name": "Jonas", "email": "jonas@example.com", "locale": "de-AT"},
        ]
    })
}

/// A relay webhook as the relay signs it (Standard Webhooks, computed by the `standardwebhooks`
/// crate, not by the SDK under test), `secs_ago` seconds old.
fn relay_hook(event_id: &str, secs_ago: i64, body: &Value) -> WebhookRequest {
    let raw = serde_json::to_vec(body).unwrap();
    let ts = chrono::Utc::now().timestamp() - secs_ago;
    let signature = standardwebhooks::Webhook::new(RELAY_SECRET)
        .unwrap()
        .sign(event_id, ts, &raw)
        .unwrap();
    WebhookRequest {
        method: "POST".into(),
        url: format!("https://belfry.example.com/v1/webhooks/{TENANT}/mailrelay"),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("webhook-id".into(), event_id.into()),
            ("webhook-timestamp".into(), ts.to_string()),
            ("webhook-signature".into(), signature),
        ],
        body: raw,
        received_at: chrono::Utc::now(),
    }
}

fn relay_event(kind: &str, message_id: &str, extra: Value) -> Value {
    let mut data = json!({"message_id": message_id, "occurred_at_ms": 1_796_000_000_000_i64});
    if let (Some(d), Some(e)) = (data.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    json!({"type": kind, "data": data})
}

fn rejection(r: Result<belfry::host::feedback::Received, FeedbackError>) -> WebhookRejection {
    match r {
        Err(FeedbackError::Rejected { rejection, .. }) => rejection,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// The deliveries of an event's notification for `recipient`, by channel.
fn deliveries_of(event: &Value, recipient: &str) -> BTreeMap<String, Value> {
    event["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["recipient_id"] == recipient)
        .flat_map(|n| n["deliveries"].as_array().unwrap().iter().cloned())
        .map(|d| (d["channel"].as_str().unwrap().to_string(), d))
        .collect()
}

async fn ledger_rows(e: &Engine) -> (i64, i64) {
    (
        count(e, "webhook_receipts").await,
        count(e, "feedback_events").await,
    )
}

/// The whole path through a JS notifier and a Python adapter, both built from source here.
async fn js_notifier_and_python_adapter_end_to_end(b: Backend) {
    let Some(built) = built() else { return };
    // A mail relay: `POST /v1/messages` answers `{"id": "mr_N"}`.
    let relay = Provider::issuing_ids("id", "mr_").await;
    let port = relay.port();
    // The relay's webhooks come in over `belfry serve`, whose address emails carry (the
    // one-click unsubscribe link), so its port is chosen before the engine opens.
    let serve_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{serve_port}");
    let w = engine(b, &built.plugins, port, Some(base.clone())).await;
    let e = &w.engine;
    let _server = belfry::serve::start(
        e.clone(),
        belfry::serve::ServeConfig {
            listen: format!("127.0.0.1:{serve_port}").parse().unwrap(),
            workers: None,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(60))
        .build()
        .unwrap();
    let post_hook = |hook: WebhookRequest| {
        let mut r = http.post(format!("{base}/v1/webhooks/{TENANT}/mailrelay"));
        for (k, v) in hook.headers {
            r = r.header(k, v);
        }
        r.body(hook.body).send()
    };

    // Both packages loaded from the --plugins directory, at contract 1.0.
    let loaded: BTreeMap<String, String> = e
        .plugins()
        .iter()
        .map(|p| (p.name().to_string(), p.manifest().wit.clone()))
        .collect();
    for name in ["invoice-due", "mailrelay"] {
        assert_eq!(
            loaded.get(name).map(String::as_str),
            Some("1.0.0"),
            "{name} in {loaded:?}"
        );
    }

    // Trigger → plan in JavaScript → render from the package's templates → send in Python.
    let out = e
        .trigger(&TriggerRequest::new("invoice-due", invoice("INV-7")).tenant(TENANT))
        .await
        .unwrap();
    e.dispatch_event(&out.event_id).await.unwrap();
    let event = serde_json::to_value(e.event(&out.event_id).await.unwrap()).unwrap();
    let zoe = deliveries_of(&event, "zoe");
    let jonas = deliveries_of(&event, "jonas");
    for (who, d) in [("zoe", &zoe), ("jonas", &jonas)] {
        let email = &d["email"];
        assert_eq!(email["status"], "succeeded", "{who}: {email}");
        assert!(
            email["sent_by"]
                .as_str()
                .unwrap()
                .starts_with("mailrelay@1.0.0#"),
            "{email}"
        );
        assert_eq!(d["in-app"]["status"], "succeeded", "{who}: {}", d["in-app"]);
    }

    // What the Python adapter sent: the relay's API shape, a content-length (the SDK's client
    // never streams chunked), and the subject the JS package's templates made — in German
    // for Jonas (locale de-AT falls back to the package's `.de` translation).
    let seen = relay.requests();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let mut by_to = BTreeMap::new();
    for s in &seen {
        assert_eq!(s.path, "/v1/messages");
        assert_eq!(s.headers["authorization"], format!("Bearer {RELAY_KEY}"));
        assert_eq!(
            s.headers["content-length"].to_str().unwrap(),
            s.body.len().to_string()
        );
        assert!(s.headers.get("transfer-encoding").is_none());
        let sent: Value = serde_json::from_slice(&s.body).unwrap();
        assert_eq!(sent["from"], "Acme Billing <billing@acme.test>");
        // Every header the host requires went along (RFC 8058 one-click unsubscribe).
        let headers: BTreeMap<String, String> =
            serde_json::from_value::<Vec<(String, String)>>(sent["headers"].clone())
                .unwrap()
                .into_iter()
                .collect();
        assert_eq!(
            headers.get("List-Unsubscribe-Post").map(String::as_str),
            Some("List-Unsubscribe=One-Click"),
            "{sent}"
        );
        assert!(
            headers["List-Unsubscribe"].starts_with(&format!("<{base}/v1/unsubscribe/")),
            "{sent}"
        );
        by_to.insert(sent["to"].as_str().unwrap().to_string(), sent);
    }
    let to_zoe = &by_to["zoe@example.com"];
    assert_eq!(
        to_zoe["subject"],
        "Invoice INV-7 of 120.50 EUR is due on 2026-12-31"
    );
    assert!(
        to_zoe["text"].as_str().unwrap().starts_with("Hello Zoe,"),
        "{to_zoe}"
    );
    assert!(
        to_zoe["html"]
            .as_str()
            .unwrap()
            .contains("<strong>INV-7</strong>"),
        "{to_zoe}"
    );
    let to_jonas = &by_to["jonas@example.com"];
    assert_eq!(
        to_jonas["subject"],
        "Rechnung INV-7 über 120.50 EUR ist am 2026-12-31 fällig"
    );
    assert!(
        to_jonas["text"]
            .as_str()
            .unwrap()
            .starts_with("Hallo Jonas,"),
        "{to_jonas}"
    );
    // The in-app items, from the package's in-app templates: German for Jonas as well.
    let inbox = e.inbox(TENANT, "jonas").await.unwrap();
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    assert_eq!(inbox[0].headline, "Rechnung INV-7 ist am 2026-12-31 fällig");
    assert_eq!(inbox[0].body, "120.50 EUR.");
    let inbox = e.inbox(TENANT, "zoe").await.unwrap();
    assert_eq!(inbox[0].headline, "Invoice INV-7 is due on 2026-12-31");
    let zoe_email = zoe["email"]["id"].as_str().unwrap().to_string();
    let jonas_email = jonas["email"]["id"].as_str().unwrap().to_string();
    let zoe_message = zoe["email"]["provider_message_id"]
        .as_str()
        .unwrap()
        .to_string();
    let jonas_message = jonas["email"]["provider_message_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(zoe_message.starts_with("mr_"), "{zoe_message}");

    // Refused before anything is stored: tampered after signing (over HTTP: 401, and the
    // adapter's reason through the engine), stale, unsigned.
    let before = ledger_rows(e).await;
    let delivered = relay_event("message.delivered", &zoe_message, json!({}));
    let mut tampered = relay_hook("evt_1", 0, &delivered);
    tampered.body =
        serde_json::to_vec(&relay_event("message.complained", &zoe_message, json!({}))).unwrap();
    let res = post_hook(tampered.clone()).await.unwrap();
    assert_eq!(res.status(), 401);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["code"], "unauthorized", "{err}");
    let refused = rejection(e.receive_webhook(TENANT, "mailrelay", tampered).await);
    assert!(
        matches!(refused, WebhookRejection::Unauthorized(ref m) if m.contains("signature")),
        "{refused:?}"
    );
    let stale = relay_hook("evt_1", 6 * 60, &delivered);
    let refused = rejection(e.receive_webhook(TENANT, "mailrelay", stale).await);
    assert!(
        matches!(refused, WebhookRejection::Unauthorized(ref m) if m.contains("tolerance")),
        "{refused:?}"
    );
    let mut unsigned = relay_hook("evt_1", 0, &delivered);
    unsigned.headers.retain(|(n, _)| n != "webhook-signature");
    assert!(matches!(
        rejection(e.receive_webhook(TENANT, "mailrelay", unsigned).await),
        WebhookRejection::Unauthorized(_)
    ));
    assert_eq!(
        ledger_rows(e).await,
        before,
        "a refused webhook stores nothing"
    );

    // Signed correctly, posted to belfry's webhook route: delivered for Zoe (then a hard
    // bounce for Jonas through the engine).
    let res = post_hook(relay_hook("evt_1", 0, &delivered)).await.unwrap();
    assert_eq!(res.status(), 200);
    let got: Value = res.json().await.unwrap();
    assert_eq!(got["events"].as_array().unwrap().len(), 1, "{got}");
    assert_eq!(got["events"][0]["kind"], "delivered", "{got}");
    assert_eq!(got["events"][0]["delivery_id"], zoe_email.as_str(), "{got}");
    // The relay retries after a lost answer: 200 again, nothing new.
    let res = post_hook(relay_hook("evt_1", 0, &delivered)).await.unwrap();
    assert_eq!(res.status(), 200);
    let again: Value = res.json().await.unwrap();
    assert_eq!(again["events"][0]["duplicate"], true, "{again}");
    let bounced = relay_event(
        "message.bounced",
        &jonas_message,
        json!({"reason": "550 5.1.1 no such mailbox"}),
    );
    let got = e
        .receive_webhook(TENANT, "mailrelay", relay_hook("evt_2", 0, &bounced))
        .await
        .unwrap();
    assert_eq!(got.events[0].kind, FeedbackKind::BouncedHard);
    assert_eq!(
        got.events[0].delivery_id.as_deref(),
        Some(jonas_email.as_str())
    );
    // An event type the adapter does not map is left out, not an error.
    let got = e
        .receive_webhook(
            TENANT,
            "mailrelay",
            relay_hook(
                "evt_3",
                0,
                &relay_event("message.archived", &zoe_message, json!({})),
            ),
        )
        .await
        .unwrap();
    assert!(got.events.is_empty(), "{:?}", got.events);

    let (p, _) = e.delivery_feedback(TENANT, &zoe_email).await.unwrap();
    assert_eq!(p.expect("zoe's projection").status, FeedbackKind::Delivered);
    let (p, _) = e.delivery_feedback(TENANT, &jonas_email).await.unwrap();
    let p = p.expect("jonas's projection");
    assert_eq!(p.status, FeedbackKind::BouncedHard);
    assert_eq!(p.terminal, Some(FeedbackKind::BouncedHard));
    // The bounce suppressed Jonas's address.
    let suppressions = e.suppressions(TENANT, false).await.unwrap();
    assert!(
        suppressions
            .iter()
            .any(|s| s.describe().contains("jonas@example.com")),
        "{suppressions:?}"
    );
}

/// A payload the JS notifier cannot use is refused with its own message, naming the field
/// (the SDK's PayloadError → the contract's `invalid-payload`), and nothing is sent.
async fn the_js_notifier_names_the_bad_field(b: Backend) {
    let Some(built) = built() else { return };
    // A mail relay: `POST /v1/messages` answers `{"id": "mr_N"}`.
    let relay = Provider::issuing_ids("id", "mr_").await;
    let port = relay.port();
    let w = engine(b, &built.plugins, port, None).await;
    let mut bad = invoice("INV-8");
    bad["customers"][1].as_object_mut().unwrap().remove("name");
    let err = w
        .engine
        .trigger(&TriggerRequest::new("invoice-due", bad).tenant(TENANT))
        .await
        .expect_err("a customer without a name is refused");
    let text = err.to_string();
    assert!(
        text.contains("customers.1.name: is missing"),
        "the error names the field: {text}"
    );
    let mut bad = invoice("INV-9");
    bad["amount_cents"] = json!("a lot");
    let err = w
        .engine
        .trigger(&TriggerRequest::new("invoice-due", bad).tenant(TENANT))
        .await
        .expect_err("a string amount is refused");
    assert!(
        err.to_string()
            .contains("amount_cents: expected a number, got a string"),
        "{err}"
    );
    assert!(relay.requests().is_empty());
}

on_both_backends!(
    js_notifier_and_python_adapter_end_to_end,
    the_js_notifier_names_the_bad_field
);
