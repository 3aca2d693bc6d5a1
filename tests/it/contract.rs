//! Holes in the contract (issue 22), each closed, on SQLite and PostgreSQL where storage is
//! involved:
//! - a workflow's `(key, version)` is immutable once a run used it;
//! - a hard bounce (or a complaint) while a run waits after the bounced step takes the step's
//!   `bounced` branch, end to end: a signed Resend webhook over `belfry serve`;
//! - an empty provider event id is no dedupe key;
//! - a replayed webhook stores its raw request once;
//! - credentials in a webhook's headers are never stored;
//! - a plugin's text cannot forge a line of the host's log;
//! - `explain` tells a delivery's story in the order it happened.
//!
//! Providers are small servers on 127.0.0.1 that answer like Resend's `POST /emails` and
//! Twilio's Messages API; the webhooks are signed as those providers sign them (Svix headers
//! by the `standardwebhooks` crate, Twilio's HMAC-SHA1 over URL and sorted parameters). The
//! workflow is the `bounce-journey` test plugin (tests/fixtures/plugins/bounce-journey):
//! `email` (bounced → goto `sms`, or stop with config `on_bounce = "stop"`), then `inbox`
//! an hour later, then `sms`.

use crate::common;

use crate::common::provider::Provider;
use crate::common::{Backend, TestDb, count};
use base64::Engine as _;
use belfry::host::content::Channel;
use belfry::host::feedback::{FeedbackKind, WebhookRequest};
use belfry::host::plugins::PluginConfig;
use belfry::host::workflows::RunRecord;
use belfry::{Engine, EngineConfig, TriggerRequest};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;

const TENANT: &str = "acme";
const RESEND_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const TWILIO_SID: &str = "AC0123456789abcdef0123456789abcdef";
const TWILIO_TOKEN: &str = "twilio-auth-token-for-tests";

struct Fixture {
    engine: Engine,
    resend: Provider,
    twilio: Provider,
    _plugins: tempfile::TempDir,
}

/// A plugins directory holding the `bounce-journey` test plugin, as a package whose assets
/// are the `task-assigned` templates it renders with (a renderer reads the calling notifier's
/// templates), copied from the first-party `task-assigned` package.
fn plugins_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let package = dir.path().join("bounce-journey");
    let fixtures = Path::new(belfry::FIXTURE_PLUGINS_DIR);
    std::fs::create_dir(&package).unwrap();
    std::fs::copy(
        fixtures.join("bounce-journey.wasm"),
        package.join("plugin.wasm"),
    )
    .unwrap();
    std::fs::copy(
        fixtures.join("bounce-journey.toml"),
        package.join("manifest.toml"),
    )
    .unwrap();
    let templates = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("plugins/task-assigned/assets/templates/task-assigned");
    for channel in std::fs::read_dir(&templates).unwrap() {
        let channel = channel.unwrap();
        let into = package
            .join("assets/templates/task-assigned")
            .join(channel.file_name());
        std::fs::create_dir_all(&into).unwrap();
        for file in std::fs::read_dir(channel.path()).unwrap() {
            let file = file.unwrap();
            std::fs::copy(file.path(), into.join(file.file_name())).unwrap();
        }
    }
    dir
}

/// An engine on `db` whose email goes through `resend` and SMS through `twilio` (each at its
/// local server), with `bounce-journey` configured by `journey`.
async fn fixture(db: &TestDb, journey: &[(&str, &str)], public_url: Option<String>) -> Fixture {
    let resend = Provider::issuing_ids("id", "re_").await;
    let twilio = Provider::issuing_ids("sid", "SM").await;
    let (resend_port, twilio_port) = (resend.port(), twilio.port());
    let plugins = plugins_dir();
    let mut config: PluginConfig = common::webhook_config("http://127.0.0.1:9/unused");
    config.insert(
        "resend".into(),
        BTreeMap::from([
            ("api_key".into(), "re_test_key".into()),
            ("from".into(), "Acme <no-reply@acme.test>".into()),
            ("api_base".into(), format!("http://127.0.0.1:{resend_port}")),
            ("allow_http".into(), format!("127.0.0.1:{resend_port}")),
            ("webhook_secret".into(), RESEND_SECRET.into()),
        ]),
    );
    config.insert(
        "twilio".into(),
        BTreeMap::from([
            ("account_sid".into(), TWILIO_SID.into()),
            ("auth_token".into(), TWILIO_TOKEN.into()),
            ("from".into(), "+15005550006".into()),
            ("api_base".into(), format!("http://127.0.0.1:{twilio_port}")),
            ("allow_http".into(), format!("127.0.0.1:{twilio_port}")),
        ]),
    );
    config.insert(
        "bounce-journey".into(),
        journey
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    let engine = Engine::open(EngineConfig {
        database_url: db.url.clone(),
        bundled: belfry::BUNDLED,
        plugins_dir: Some(plugins.path().to_path_buf()),
        cache_dir: Some(common::cache_dir()),
        plugin_config: config,
        routes: BTreeMap::from([
            (Channel::Email, "resend".to_string()),
            (Channel::Sms, "twilio".to_string()),
        ]),
        public_url,
        ..Default::default()
    })
    .await
    .unwrap();
    engine.ensure_tenant(TENANT).await.unwrap();
    Fixture {
        engine,
        resend,
        twilio,
        _plugins: plugins,
    }
}

fn journey() -> TriggerRequest {
    TriggerRequest::new("bounce-journey", json!({})).tenant(TENANT)
}

/// A Resend webhook as Resend sends it: Svix headers over the raw body, signed now.
fn resend_hook(svix_id: &str, body: &Value) -> WebhookRequest {
    let raw = serde_json::to_vec(body).unwrap();
    let ts = chrono::Utc::now().timestamp();
    let signature = standardwebhooks::Webhook::new(RESEND_SECRET)
        .unwrap()
        .sign(svix_id, ts, &raw)
        .unwrap();
    WebhookRequest {
        method: "POST".into(),
        url: format!("https://belfry.example.com/v1/webhooks/{TENANT}/resend"),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("svix-id".into(), svix_id.into()),
            ("svix-timestamp".into(), ts.to_string()),
            ("svix-signature".into(), signature),
        ],
        body: raw,
        received_at: chrono::Utc::now(),
    }
}

fn resend_event(kind: &str, email_id: &str, at: &str, data: Value) -> Value {
    let mut d = json!({"email_id": email_id, "created_at": at, "to": ["zoe@example.com"]});
    d.as_object_mut()
        .unwrap()
        .extend(data.as_object().unwrap().clone());
    json!({"type": kind, "created_at": at, "data": d})
}

fn hard_bounce(email_id: &str) -> Value {
    resend_event(
        "email.bounced",
        email_id,
        "2026-12-02T10:01:00.000Z",
        json!({"bounce": {"type": "Permanent", "subType": "General", "message": "no such mailbox"}}),
    )
}

fn twilio_hook(url: &str, params: &[(&str, &str)]) -> WebhookRequest {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut data = url.to_string();
    for (k, v) in &sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(TWILIO_TOKEN.as_bytes()).unwrap();
    mac.update(data.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    WebhookRequest {
        method: "POST".into(),
        url: url.into(),
        headers: vec![
            (
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            ),
            ("x-twilio-signature".into(), signature),
        ],
        body: body.into_bytes(),
        received_at: chrono::Utc::now(),
    }
}

async fn run_of(e: &Engine, notification: &str) -> RunRecord {
    e.workflow_run(notification).await.unwrap().unwrap()
}

async fn wake_jobs(e: &Engine, run_id: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE kind = 'workflow_wake' AND subject_id = $1")
        .bind(run_id)
        .fetch_one(e.db())
        .await
        .unwrap()
}

/// The notification's deliveries as (channel, status), by channel.
async fn deliveries(e: &Engine, notification: &str) -> Vec<(String, String)> {
    let mut out: Vec<_> = e
        .explain(notification)
        .await
        .unwrap()
        .deliveries
        .iter()
        .map(|d| (d.channel.clone(), d.status.clone()))
        .collect();
    out.sort();
    out
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

/// Triggers the journey and sends its email: the run then waits an hour before `inbox`.
/// Returns (notification id, the email's provider message id).
async fn emailed_and_waiting(f: &Fixture) -> (String, String) {
    let e = &f.engine;
    let out = e.trigger(&journey()).await.unwrap();
    let n = out.notifications[0].id.clone();
    e.dispatch_event(&out.event_id).await.unwrap();
    let email = e
        .explain(&n)
        .await
        .unwrap()
        .deliveries
        .into_iter()
        .find(|d| d.channel == "email")
        .unwrap();
    assert_eq!(email.status, "succeeded");
    let r = run_of(e, &n).await;
    assert_eq!(
        (r.status.as_str(), r.step_key.as_str()),
        ("waiting", "inbox"),
        "{r}"
    );
    assert_eq!(wake_jobs(e, &r.id).await, 1);
    (n, email.provider_message_id.unwrap())
}

/// The run's transitions as (kind, reason).
fn moves(r: &RunRecord) -> Vec<(String, Option<String>)> {
    r.transitions
        .iter()
        .map(|t| (t.kind.clone(), t.reason.clone()))
        .collect()
}

/// Item: a hard bounce while the run waits takes the step's `bounced` branch (here `goto
/// sms`), end to end over HTTP with Resend's signed webhook; the wait's job goes, the sms is
/// sent, the in-app step never is. A repeat of the webhook changes nothing. Also: the raw
/// request is stored once however often it is replayed, without its credentials.
async fn a_hard_bounce_while_the_run_waits_takes_the_bounced_branch(b: Backend) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let db = common::test_db(b).await;
    let f = fixture(&db, &[], Some(base.clone())).await;
    let e = &f.engine;
    let _server = belfry::serve::start(
        e.clone(),
        belfry::serve::ServeConfig {
            listen: format!("127.0.0.1:{port}").parse().unwrap(),
            workers: None,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (n, message_id) = emailed_and_waiting(&f).await;
    assert_eq!(f.resend.calls(), 1);

    let hook = resend_hook("msg_bounce_1", &hard_bounce(&message_id));
    let http = reqwest::Client::new();
    let post = |extra: &[(&str, &str)]| {
        let mut r = http.post(format!("{base}/v1/webhooks/{TENANT}/resend"));
        for (k, v) in &hook.headers {
            r = r.header(k, v);
        }
        for (k, v) in extra {
            r = r.header(*k, *v);
        }
        r.body(hook.body.clone()).send()
    };
    // Whatever a proxy or a caller adds, credentials are not kept.
    let secrets = [
        ("authorization", "Bearer sk_live_secret"),
        ("cookie", "session=s3cr3t"),
        ("x-api-key", "key-123"),
        ("proxy-authorization", "Basic cHJveHk6cGFzcw=="),
    ];
    let res = post(&secrets).await.unwrap();
    assert_eq!(res.status(), 200);
    let got: Value = res.json().await.unwrap();
    assert_eq!(got["events"][0]["kind"], "bounced_hard", "{got}");

    // The branch `bounced → goto sms` was taken: the wait ended, its job is gone, the sms is
    // planned at once and the in-app step is skipped.
    let r = run_of(e, &n).await;
    assert_eq!(
        (r.status.as_str(), r.step_key.as_str()),
        ("running", "sms"),
        "{r}"
    );
    assert_eq!(wake_jobs(e, &r.id).await, 0);
    let bounced = r
        .transitions
        .iter()
        .find(|t| t.kind == "progressed" && t.reason.as_deref() == Some("bounced"))
        .unwrap_or_else(|| panic!("no bounced progression in {r}"));
    assert_eq!(bounced.step_key.as_deref(), Some("email"));
    assert!(
        bounced
            .evidence
            .contains("on-outcome[0]: bounced → goto sms"),
        "{}",
        bounced.evidence
    );
    assert!(
        bounced.evidence.contains("msg_bounce_1"),
        "{}",
        bounced.evidence
    );
    e.dispatch_pending().await.unwrap();
    assert_eq!(f.twilio.calls(), 1, "the sms was sent");
    assert_eq!(
        deliveries(e, &n).await,
        pairs(&[("email", "succeeded"), ("sms", "succeeded")])
    );
    let r = run_of(e, &n).await;
    assert_eq!(
        (r.status.as_str(), r.status_reason.as_deref()),
        ("completed", Some("last_step_done"))
    );

    // The provider repeats the webhook (and someone replays it, again and again): nothing
    // moves, and the raw request is kept once.
    let transitions = r.transitions.len();
    for _ in 0..20 {
        let res = post(&[]).await.unwrap();
        assert_eq!(res.status(), 200);
        let again: Value = res.json().await.unwrap();
        assert_eq!(again["events"][0]["duplicate"], true, "{again}");
        assert_eq!(again["receipt_id"], got["receipt_id"]);
    }
    assert_eq!(run_of(e, &n).await.transitions.len(), transitions);
    assert_eq!(count(e, "webhook_receipts").await, 1);
    assert_eq!(count(e, "feedback_events").await, 1);

    // The stored request: the names of the credential headers, none of their values.
    let stored: String = sqlx::query_scalar("SELECT headers FROM webhook_receipts")
        .fetch_one(e.db())
        .await
        .unwrap();
    for (name, secret) in secrets {
        assert!(!stored.contains(secret), "{name} kept in clear: {stored}");
    }
    let headers: Vec<(String, String)> = serde_json::from_str(&stored).unwrap();
    let value = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    };
    assert_eq!(value("authorization").as_deref(), Some("[redacted]"));
    assert_eq!(value("cookie").as_deref(), Some("[redacted]"));
    assert_eq!(value("svix-id").as_deref(), Some("msg_bounce_1"));
    // What verifies the request is kept: a replay from the store still verifies.
    let replayed = e
        .replay_webhook(got["receipt_id"].as_str().unwrap())
        .await
        .unwrap();
    assert!(replayed.events.iter().all(|ev| ev.duplicate));
}

/// Item: with `bounced → stop`, a complaint (which a `bounced` branch takes) stops the waiting
/// run: no in-app step, no wake job left. Feedback that is not a bounce (delivered) moves
/// nothing, and a run whose step has no branch for it keeps waiting.
async fn a_complaint_while_the_run_waits_stops_it_by_the_bounced_branch(b: Backend) {
    let db = common::test_db(b).await;
    let f = fixture(&db, &[("on_bounce", "stop")], None).await;
    let e = &f.engine;
    let (n, message_id) = emailed_and_waiting(&f).await;
    let delivered = resend_event(
        "email.delivered",
        &message_id,
        "2026-12-02T10:00:05.000Z",
        json!({}),
    );
    e.receive_webhook(TENANT, "resend", resend_hook("msg_d", &delivered))
        .await
        .unwrap();
    let r = run_of(e, &n).await;
    assert_eq!(r.status, "waiting", "delivered changes nothing: {r}");

    let complained = resend_event(
        "email.complained",
        &message_id,
        "2026-12-02T10:05:00.000Z",
        json!({}),
    );
    let got = e
        .receive_webhook(TENANT, "resend", resend_hook("msg_c", &complained))
        .await
        .unwrap();
    assert_eq!(got.events[0].kind, FeedbackKind::Complained);
    let r = run_of(e, &n).await;
    assert_eq!(
        (r.status.as_str(), r.status_reason.as_deref()),
        ("stopped", Some("stopped_by_branch")),
        "{r}"
    );
    assert_eq!(wake_jobs(e, &r.id).await, 0);
    let last: Vec<_> = moves(&r).into_iter().rev().take(2).collect();
    assert_eq!(
        last,
        [
            ("stopped".to_string(), Some("stopped_by_branch".to_string())),
            ("progressed".to_string(), Some("complained".to_string())),
        ]
    );
    e.dispatch_pending().await.unwrap();
    assert_eq!(
        deliveries(e, &n).await,
        pairs(&[("email", "succeeded")]),
        "the in-app step is never planned"
    );
    assert_eq!(f.twilio.calls(), 0);
}

/// Item: a workflow's `(key, version)` cannot change its steps once a run used it; the same
/// declaration again is fine, and nothing of the refused trigger is stored.
async fn a_workflow_version_cannot_change_its_steps(b: Backend) {
    let db = common::test_db(b).await;
    // v1 with `bounced → goto sms`.
    let first = fixture(&db, &[], None).await;
    first.engine.trigger(&journey()).await.unwrap();
    let (events, runs) = (
        count(&first.engine, "events").await,
        count(&first.engine, "workflow_runs").await,
    );
    assert_eq!(runs, 1);

    // The same plugin declaring other steps under v1 (`bounced → stop`): refused.
    let changed = fixture(&db, &[("on_bounce", "stop")], None).await;
    let err = changed.engine.trigger(&journey()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("workflow `bounce-journey` version 1 is published and cannot change")
            && text.contains("steps[0] (`email`) differs")
            && text.contains("new version"),
        "{text}"
    );
    assert_eq!(count(&changed.engine, "events").await, events);
    assert_eq!(count(&changed.engine, "workflow_runs").await, runs);
    let definitions: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT definition FROM workflow_runs")
            .fetch_all(changed.engine.db())
            .await
            .unwrap();
    assert_eq!(definitions.len(), 1);

    // Loaded at runtime (`POST /v1/plugins`), the changed declaration is refused before it is
    // recorded or put in force.
    let component =
        std::fs::read(Path::new(belfry::FIXTURE_PLUGINS_DIR).join("bounce-journey.wasm")).unwrap();
    let manifest =
        std::fs::read_to_string(Path::new(belfry::FIXTURE_PLUGINS_DIR).join("bounce-journey.toml"))
            .unwrap();
    let uploads = count(&changed.engine, "plugin_uploads").await;
    let err = changed
        .engine
        .load_plugin(&component, &manifest, "test")
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            belfry::host::plugins::uploads::UploadError::Workflow(_)
        ),
        "{err}"
    );
    assert!(err.to_string().contains("cannot change"), "{err}");
    assert_eq!(count(&changed.engine, "plugin_uploads").await, uploads);

    // The identical declaration again: accepted (publishing is idempotent), at runtime too.
    let same = fixture(&db, &[], None).await;
    same.engine.trigger(&journey()).await.unwrap();
    assert_eq!(count(&same.engine, "workflow_runs").await, runs + 1);
    same.engine
        .load_plugin(&component, &manifest, "test")
        .await
        .unwrap();
    same.engine.trigger(&journey()).await.unwrap();
    assert_eq!(count(&same.engine, "workflow_runs").await, runs + 2);
}

/// Item: an empty provider event id is no dedupe key. Two different id-less events both
/// count (the hard bounce suppresses the address); the same id-less event repeated is one.
async fn events_without_an_id_are_not_one_event(b: Backend) {
    let db = common::test_db(b).await;
    let f = fixture(&db, &[], None).await;
    let e = &f.engine;
    let (_, message_id) = emailed_and_waiting(&f).await;
    let delivered = resend_event(
        "email.delivered",
        &message_id,
        "2026-12-02T10:00:05.000Z",
        json!({}),
    );
    let got = e
        .receive_webhook(TENANT, "resend", resend_hook("", &delivered))
        .await
        .unwrap();
    assert!(!got.events[0].duplicate);
    let got = e
        .receive_webhook(TENANT, "resend", resend_hook("", &hard_bounce(&message_id)))
        .await
        .unwrap();
    assert!(!got.events[0].duplicate, "a different event: {got:?}");
    assert_eq!(got.events[0].kind, FeedbackKind::BouncedHard);
    assert!(
        got.events[0].provider_event_id.starts_with("content:"),
        "{got:?}"
    );
    assert_eq!(count(e, "feedback_events").await, 2);
    let suppressed = e.suppressions(TENANT, false).await.unwrap();
    assert!(
        suppressed.iter().any(|s| serde_json::to_string(s)
            .unwrap()
            .contains("zoe@example.com")),
        "the bounce suppressed the address: {suppressed:?}"
    );
    // Re-signed (a new timestamp, so a new raw request) but the same event: one event.
    let again = e
        .receive_webhook(
            TENANT,
            "resend",
            resend_hook(" ", &hard_bounce(&message_id)),
        )
        .await
        .unwrap();
    assert!(again.events[0].duplicate, "{again:?}");
    assert_eq!(count(e, "feedback_events").await, 2);
}

/// Item: a captured Twilio callback (no timestamp, valid for as long as the token) replayed
/// many times stores one raw request and one event.
async fn a_replayed_callback_is_stored_once(b: Backend) {
    let db = common::test_db(b).await;
    let f = fixture(&db, &[], None).await;
    let e = &f.engine;
    let url = format!("https://belfry.example.com/v1/webhooks/{TENANT}/twilio");
    let params = [
        ("MessageSid", "SM_captured"),
        ("MessageStatus", "delivered"),
    ];
    let mut receipts = std::collections::BTreeSet::new();
    for _ in 0..100 {
        let got = e
            .receive_webhook(TENANT, "twilio", twilio_hook(&url, &params))
            .await
            .unwrap();
        receipts.insert(got.receipt_id);
    }
    assert_eq!(receipts.len(), 1, "one receipt id for every replay");
    assert_eq!(count(e, "webhook_receipts").await, 1);
    assert_eq!(count(e, "feedback_events").await, 1);
    let new_events: i64 = sqlx::query_scalar("SELECT new_events FROM webhook_receipts")
        .fetch_one(e.db())
        .await
        .unwrap();
    assert_eq!(new_events, 1);
    // Another callback is another request.
    let failed = [
        ("MessageSid", "SM_captured"),
        ("MessageStatus", "undelivered"),
        ("ErrorCode", "30003"),
    ];
    e.receive_webhook(TENANT, "twilio", twilio_hook(&url, &failed))
        .await
        .unwrap();
    assert_eq!(count(e, "webhook_receipts").await, 2);
}

/// Item: `explain` lists a delivery's story in the order it happened: the send-time policy
/// check (taken before any plugin ran) before the build and render it preceded, and every
/// entry's time no earlier than the one before it.
async fn explain_tells_the_story_in_time_order(b: Backend) {
    let w = common::world(b).await;
    let e = &w.engine;
    let out = e
        .trigger(
            &TriggerRequest::new(
                "welcome",
                json!({"user": {"id": "u1", "name": "Ada", "email": "ada@example.com"}}),
            )
            .tenant(TENANT),
        )
        .await
        .unwrap();
    e.dispatch_event(&out.event_id).await.unwrap();
    let mut checked = 0;
    for n in &out.notifications {
        for d in &n.deliveries {
            let x = e.explain(&d.id).await.unwrap();
            let times: Vec<_> = x
                .timeline
                .iter()
                .map(|t| belfry::host::store::parse_time(&t.at).unwrap())
                .collect();
            assert!(
                times.windows(2).all(|w| w[0] <= w[1]),
                "out of time order: {:#?}",
                x.timeline
            );
            let position = |kind: &str| {
                x.timeline
                    .iter()
                    .position(|t| t.kind == kind && t.attempt.is_some())
            };
            if let (Some(policy), Some(built)) =
                (position("policy.checked"), position("delivery.built"))
            {
                assert!(policy < built, "{:#?}", x.timeline);
                checked += 1;
            }
        }
    }
    assert!(checked > 0, "no delivery was built after a send-time check");
}

/// Item: nothing a plugin logs or fails with can forge a line of the host's log: the binary's
/// stderr holds the plugin's text on one line, escaped.
#[test]
fn a_plugin_cannot_forge_a_host_log_line() {
    let dir = tempfile::tempdir().unwrap();
    let plugins = plugins_dir();
    for (data, should_succeed) in [
        (r#"{"note": "forge-log"}"#, true),
        (r#"{"note": "forge-error"}"#, false),
    ] {
        let o = std::process::Command::new(env!("CARGO_BIN_EXE_belfry"))
            .args([
                "--plugins",
                plugins.path().to_str().unwrap(),
                "trigger",
                "bounce-journey",
                "--no-dispatch",
                "--data",
                data,
            ])
            .env(
                "BELFRY_DATABASE_URL",
                format!("sqlite://{}", dir.path().join("cli.db").display()),
            )
            .env(
                "BELFRY_CACHE_DIR",
                Path::new(env!("CARGO_TARGET_TMPDIR")).join("belfry-test-cache"),
            )
            .env_remove("BELFRY_PLUGINS")
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.success(), should_succeed, "{data}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert!(
            lines.iter().any(|l| l.contains("forged by a plugin")),
            "{data}: the plugin's text reached stderr: {stderr}"
        );
        for line in &lines {
            if line.contains("forged by a plugin") {
                assert!(
                    line.contains(
                        r"innocent\nERROR belfry_host::engine: forged by a plugin\r\u{1b}[2K"
                    ),
                    "{data}: not escaped on one line: {line:?}"
                );
            }
            assert!(
                !line
                    .trim_start()
                    .starts_with("ERROR belfry_host::engine: forged"),
                "{data}: a forged line: {stderr}"
            );
            // The host colours its own lines; the plugin's escape and carriage return are not
            // passed through.
            assert!(
                !line.contains('\r') && !line.contains("\u{1b}[2K"),
                "{line:?}"
            );
        }
    }
}

on_both_backends!(
    a_hard_bounce_while_the_run_waits_takes_the_bounced_branch,
    a_complaint_while_the_run_waits_stops_it_by_the_bounced_branch,
    a_workflow_version_cannot_change_its_steps,
    events_without_an_id_are_not_one_event,
    a_replayed_callback_is_stored_once,
    explain_tells_the_story_in_time_order,
);
