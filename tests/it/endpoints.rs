//! Outbound lifecycle webhooks on SQLite and PostgreSQL: endpoints registered per tenant get
//! the events they subscribe to, signed per the Standard Webhooks spec (checked here with the
//! `standardwebhooks` crate, and in `python_standardwebhooks_verifies_every_request` with the
//! official Python package), retried on the spec's schedule, disabled after a run of failures
//! and enabled again by hand; the SSRF guard refuses private targets unless allowed.
//!
//! The endpoints are the shared fake server (`common::provider`) on 127.0.0.1, which the tests
//! allow explicitly.

use crate::common;

use crate::common::provider::{Answer, Provider, Request};
use crate::common::{Backend, World, count, world_with};
use axum::http::Method;
use belfry::host::endpoints::{EndpointError, Message, send::SCHEDULE};
use belfry::{Engine, TriggerRequest};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

const TENANT: &str = "default";

/// An endpoint on 127.0.0.1 that records every request and answers from a script (204 when
/// the script is empty).
struct Endpoint {
    server: Provider,
    url: String,
}

impl Endpoint {
    async fn start() -> Endpoint {
        let server = Provider::start(Answer::status(204, "")).await;
        let url = format!("http://{}/hooks", server.authority());
        Endpoint { server, url }
    }

    fn answer_with(&self, codes: &[u16]) {
        for code in codes {
            self.server.then(Answer::status(*code, ""));
        }
    }

    /// The requests so far, each a `POST` to the endpoint's URL.
    fn seen(&self) -> Vec<Request> {
        let seen = self.server.requests();
        for r in &seen {
            assert_eq!((&r.method, r.path.as_str()), (&Method::POST, "/hooks"));
        }
        seen
    }

    /// Waits for the `n`th request (at most 30 s) and returns them all.
    async fn wait_for(&self, n: usize) -> Vec<Request> {
        self.server.wait_for(n).await;
        self.seen()
    }
}

async fn world(backend: Backend, disable_after: u32) -> World {
    world_with(backend, |c| {
        c.endpoints.allow_networks = vec!["127.0.0.1/32".parse().unwrap()];
        c.endpoints.disable_after = disable_after;
    })
    .await
}

/// One in-app delivery (the `welcome` notifier without an email address), run to its end.
async fn welcome(engine: &Engine, user: &str) -> String {
    let out = engine
        .trigger(&TriggerRequest::new(
            "welcome",
            json!({ "user": { "id": user } }),
        ))
        .await
        .unwrap();
    engine.dispatch_pending().await.unwrap();
    let deliveries = &out.notifications[0].deliveries;
    assert_eq!(deliveries.len(), 1, "{deliveries:?}");
    deliveries[0].id.clone()
}

async fn messages(engine: &Engine, endpoint: &str) -> Vec<Message> {
    let mut m = engine
        .endpoint_messages(Some(TENANT), endpoint, 100)
        .await
        .unwrap();
    m.reverse();
    m
}

/// Makes every waiting `endpoint_send` job due now, as if its wait had passed.
async fn time_passes(engine: &Engine) {
    sqlx::query("UPDATE jobs SET run_at = $1 WHERE kind = 'endpoint_send'")
        .bind(belfry::host::store::time_text(belfry::host::store::now()))
        .execute(engine.db())
        .await
        .unwrap();
}

/// The `endpoint_send` job's run-at, in seconds from now.
async fn job_due_in(engine: &Engine) -> i64 {
    let at: String = sqlx::query_scalar("SELECT run_at FROM jobs WHERE kind = 'endpoint_send'")
        .fetch_one(engine.db())
        .await
        .unwrap();
    (belfry::host::store::parse_time(&at).unwrap() - belfry::host::store::now()).num_seconds()
}

async fn events_reach_subscribers_signed_and_explained(b: Backend) {
    let w = world(b, 20).await;
    let all = Endpoint::start().await;
    let reads = Endpoint::start().await;
    let e_all = w
        .engine
        .add_endpoint(TENANT, &all.url, &["delivery.*".into()], Some("everything"))
        .await
        .unwrap();
    assert!(e_all.secret.starts_with("whsec_"), "{}", e_all.secret);
    let e_reads = w
        .engine
        .add_endpoint(TENANT, &reads.url, &["inbox.read".into()], None)
        .await
        .unwrap();
    assert_ne!(
        e_all.secret, e_reads.secret,
        "each endpoint has its own secret"
    );

    let delivery = welcome(&w.engine, "u1").await;
    let seen = all.seen();
    assert_eq!(seen.len(), 1, "one delivery.sent");
    let verifier = standardwebhooks::Webhook::new(&e_all.secret).unwrap();
    verifier.verify(&seen[0].body, &seen[0].headers).unwrap();
    // The other endpoint's secret does not verify it.
    assert!(
        standardwebhooks::Webhook::new(&e_reads.secret)
            .unwrap()
            .verify(&seen[0].body, &seen[0].headers)
            .is_err()
    );
    let body: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(body["type"], "delivery.sent");
    assert_eq!(body["data"]["delivery_id"], delivery.as_str());
    assert_eq!(body["data"]["channel"], "in-app");
    assert_eq!(body["data"]["recipient_id"], "u1");
    assert_eq!(body["data"]["source"], "engine");
    assert!(reads.seen().is_empty(), "not subscribed to delivery.*");

    let m = messages(&w.engine, &e_all.endpoint.id).await;
    assert_eq!(m.len(), 1);
    assert_eq!(m[0].status, "delivered");
    assert_eq!(m[0].tries.len(), 1);
    assert_eq!(m[0].tries[0].status_code, Some(204));
    assert_eq!(
        seen[0].headers["webhook-id"].to_str().unwrap(),
        m[0].id,
        "the webhook-id is the message id"
    );

    // Reading the inbox item reaches the other endpoint only.
    let item = w.engine.inbox(TENANT, "u1").await.unwrap().remove(0);
    w.engine.mark_read(TENANT, "u1", &item.id).await.unwrap();
    // Marking it read again is no new event.
    w.engine.mark_read(TENANT, "u1", &item.id).await.unwrap();
    // Workflows hear of it as two signals, once each.
    let signals: Vec<String> =
        sqlx::query_scalar("SELECT name FROM signals WHERE actor = 'u1' ORDER BY id")
            .fetch_all(w.engine.db())
            .await
            .unwrap();
    assert_eq!(signals, ["notification.read", "notification.seen"]);
    w.engine.dispatch_pending().await.unwrap();
    let seen = reads.seen();
    assert_eq!(seen.len(), 1);
    standardwebhooks::Webhook::new(&e_reads.secret)
        .unwrap()
        .verify(&seen[0].body, &seen[0].headers)
        .unwrap();
    let body: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(body["type"], "inbox.read");
    assert_eq!(body["data"]["source"], "recipient");
    assert_eq!(all.seen().len(), 1);

    // A delivery policy stops is an event too, with the policy's reason.
    w.engine
        .add_suppression(
            TENANT,
            &belfry::host::policy::SuppressionTarget::Recipient {
                id: "u9".into(),
                channel: belfry::host::content::Channel::InApp,
            },
            belfry::host::policy::SuppressionReason::Manual,
            None,
            None,
        )
        .await
        .unwrap();
    let suppressed = welcome(&w.engine, "u9").await;
    let seen = all.seen();
    assert_eq!(seen.len(), 2);
    let body: Value = serde_json::from_slice(&seen[1].body).unwrap();
    assert_eq!(body["type"], "delivery.suppressed", "{body}");
    assert_eq!(body["data"]["delivery_id"], suppressed.as_str());
    assert!(
        body["data"]["reason"]
            .as_str()
            .unwrap()
            .contains("suppress"),
        "{body}"
    );

    // Another tenant's events never reach this tenant's endpoints.
    w.engine
        .trigger(&TriggerRequest::new("welcome", json!({ "user": { "id": "u2" } })).tenant("other"))
        .await
        .unwrap();
    w.engine.dispatch_pending().await.unwrap();
    assert_eq!(all.seen().len(), 2);
}

async fn failures_retry_on_the_schedule_until_the_last_try(b: Backend) {
    let w = world(b, 100).await;
    let ep = Endpoint::start().await;
    ep.answer_with(&[500; 8]);
    let e = w
        .engine
        .add_endpoint(TENANT, &ep.url, &["delivery.sent".into()], None)
        .await
        .unwrap();
    welcome(&w.engine, "u1").await;
    for (i, delay) in SCHEDULE.iter().enumerate() {
        assert_eq!(ep.seen().len(), i + 1);
        let due = job_due_in(&w.engine).await;
        let want = delay.as_secs() as i64;
        assert!(
            (want - 2..=want).contains(&due),
            "after try {} the next is due in {due} s, not {want} s",
            i + 1
        );
        let m = messages(&w.engine, &e.endpoint.id).await.remove(0);
        assert_eq!((m.status.as_str(), m.attempts), ("pending", i as i64 + 1));
        assert_eq!(m.status_reason.as_deref(), Some("retrying"));
        assert!(m.next_attempt_at.is_some());
        time_passes(&w.engine).await;
        w.engine.dispatch_pending().await.unwrap();
    }
    let seen = ep.seen();
    assert_eq!(seen.len(), 8, "the first try and seven retries");
    // Every try carries the same webhook-id, each signed afresh.
    let ids: Vec<&str> = seen
        .iter()
        .map(|s| s.headers["webhook-id"].to_str().unwrap())
        .collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    for s in &seen {
        standardwebhooks::Webhook::new(&e.secret)
            .unwrap()
            .verify(&s.body, &s.headers)
            .unwrap();
    }
    let m = messages(&w.engine, &e.endpoint.id).await.remove(0);
    assert_eq!(m.status, "failed");
    assert_eq!(m.status_reason.as_deref(), Some("retries_exhausted"));
    assert_eq!(m.tries.len(), 8);
    assert!(m.tries.iter().all(|t| t.status_code == Some(500)));
    assert_eq!(count(&w.engine, "jobs").await, 0);
    // 8 failures are under this endpoint's limit of 100: still enabled.
    let now = w.engine.endpoint(None, &e.endpoint.id).await.unwrap();
    assert!(now.enabled);
    assert_eq!(now.failure_streak, 8);
}

async fn a_run_of_failures_disables_until_enabled_by_hand(b: Backend) {
    let w = world(b, 3).await;
    let ep = Endpoint::start().await;
    ep.answer_with(&[500, 503]);
    let e = w
        .engine
        .add_endpoint(TENANT, &ep.url, &["delivery.sent".into()], None)
        .await
        .unwrap();
    // Two failures, then a success: the run starts over.
    welcome(&w.engine, "u1").await;
    time_passes(&w.engine).await;
    w.engine.dispatch_pending().await.unwrap();
    assert_eq!(
        w.engine
            .endpoint(None, &e.endpoint.id)
            .await
            .unwrap()
            .failure_streak,
        2
    );
    time_passes(&w.engine).await;
    w.engine.dispatch_pending().await.unwrap();
    let now = w.engine.endpoint(None, &e.endpoint.id).await.unwrap();
    assert_eq!((now.enabled, now.failure_streak), (true, 0));
    assert_eq!(
        messages(&w.engine, &e.endpoint.id).await[0].status,
        "delivered"
    );

    // Three failures in a row (over two messages) disable it.
    ep.answer_with(&[500, 500, 500]);
    welcome(&w.engine, "u2").await;
    time_passes(&w.engine).await;
    w.engine.dispatch_pending().await.unwrap();
    welcome(&w.engine, "u3").await;
    // u2's message, waiting for its third try, finds the endpoint disabled.
    time_passes(&w.engine).await;
    w.engine.dispatch_pending().await.unwrap();
    let now = w.engine.endpoint(None, &e.endpoint.id).await.unwrap();
    assert!(!now.enabled, "{now:?}");
    let why = now.disabled_reason.unwrap();
    assert!(
        why.contains("3 failed attempts in a row") && why.contains("500"),
        "{why}"
    );
    let m = messages(&w.engine, &e.endpoint.id).await;
    assert_eq!(m.len(), 3);
    assert_eq!(m[1].status, "failed", "u2's message ends with the endpoint");
    assert_eq!(
        m[2].status, "failed",
        "u3's message was owed to the disabled endpoint"
    );
    assert!(
        m[1..]
            .iter()
            .all(|m| m.status_reason.as_deref() == Some("endpoint_disabled"))
    );
    assert_eq!(m[2].tries.len(), 1);
    assert_eq!(ep.seen().len(), 6);

    // While disabled, new events are not even queued for it.
    welcome(&w.engine, "u4").await;
    assert_eq!(messages(&w.engine, &e.endpoint.id).await.len(), 3);
    assert_eq!(ep.seen().len(), 6);

    // Its missed messages cannot be recovered while it is disabled.
    assert!(matches!(
        w.engine
            .recover_endpoint(Some(TENANT), &e.endpoint.id)
            .await,
        Err(EndpointError::Disabled(_))
    ));

    // Enabled by hand, it gets new events again.
    let now = w
        .engine
        .set_endpoint_enabled(Some(TENANT), &e.endpoint.id, true)
        .await
        .unwrap();
    assert!(now.enabled && now.disabled_reason.is_none() && now.failure_streak == 0);
    welcome(&w.engine, "u5").await;
    assert_eq!(ep.seen().len(), 7);
    let m = messages(&w.engine, &e.endpoint.id).await;
    assert_eq!((m.len(), m[3].status.as_str()), (4, "delivered"));

    // And the two messages it missed are sent again on request, once.
    let recovered = w
        .engine
        .recover_endpoint(Some(TENANT), &e.endpoint.id)
        .await
        .unwrap();
    assert_eq!(recovered, 2);
    w.engine.dispatch_pending().await.unwrap();
    assert_eq!(ep.seen().len(), 9);
    let m = messages(&w.engine, &e.endpoint.id).await;
    assert!(m.iter().all(|m| m.status == "delivered"), "{m:?}");
    assert_eq!(
        m[1].tries.len(),
        3,
        "u2's message resumed after its two failed tries"
    );
    assert_eq!(
        w.engine
            .recover_endpoint(Some(TENANT), &e.endpoint.id)
            .await
            .unwrap(),
        0
    );
}

async fn private_targets_are_refused_unless_allowed(b: Backend) {
    // No allow-list: the defaults an operator starts with.
    let w = world_with(b, |_| {}).await;
    let ep = Endpoint::start().await;
    for url in [
        ep.url.clone(),
        "http://10.0.0.5/hooks".into(),
        "http://169.254.169.254/latest/meta-data".into(),
        "http://[::1]:8080/".into(),
        "http://[::ffff:127.0.0.1]/".into(),
    ] {
        match w
            .engine
            .add_endpoint(TENANT, &url, &["*".into()], None)
            .await
        {
            Err(EndpointError::InvalidUrl { why, .. }) => {
                assert!(why.contains("endpoint_allow_networks"), "{url}: {why}")
            }
            other => panic!("{url}: {other:?}"),
        }
    }
    for (url, events) in [
        ("ftp://example.com/", "*"),
        ("https://hooks.example.com/", "delivery.sentt"),
        ("https://hooks.example.com/", ""),
    ] {
        assert!(
            w.engine
                .add_endpoint(TENANT, url, &[events.into()], None)
                .await
                .is_err()
        );
    }
    assert_eq!(count(&w.engine, "endpoints").await, 0, "nothing stored");

    // A name is checked where it resolves, at send time: `localhost` is loopback.
    let port = ep.url.split(':').nth(2).unwrap().split('/').next().unwrap();
    let e = w
        .engine
        .add_endpoint(
            TENANT,
            &format!("http://localhost:{port}/hooks"),
            &["delivery.sent".into()],
            None,
        )
        .await
        .unwrap();
    welcome(&w.engine, "u1").await;
    assert!(
        ep.seen().is_empty(),
        "the guard let a loopback request through"
    );
    let m = messages(&w.engine, &e.endpoint.id).await.remove(0);
    let error = m.tries[0].error.clone().unwrap();
    assert!(
        error.contains("refused addresses") && error.contains("loopback"),
        "{error}"
    );
    assert_eq!(m.status_reason.as_deref(), Some("retrying"));
}

async fn endpoints_are_managed_per_tenant(b: Backend) {
    let w = world(b, 20).await;
    let ep = Endpoint::start().await;
    let e = w
        .engine
        .add_endpoint("other", &ep.url, &["delivery.*, inbox.read".into()], None)
        .await
        .unwrap();
    assert_eq!(e.endpoint.events, vec!["delivery.*", "inbox.read"]);
    assert!(w.engine.endpoints(Some(TENANT)).await.unwrap().is_empty());
    assert_eq!(w.engine.endpoints(Some("other")).await.unwrap().len(), 1);
    // Another tenant's endpoint is not found, as an unknown one is.
    assert!(matches!(
        w.engine.endpoint(Some(TENANT), &e.endpoint.id).await,
        Err(EndpointError::NotFound(_))
    ));
    assert!(matches!(
        w.engine.remove_endpoint(Some(TENANT), &e.endpoint.id).await,
        Err(EndpointError::NotFound(_))
    ));
    assert_eq!(
        w.engine
            .endpoint_secret(Some("other"), &e.endpoint.id)
            .await
            .unwrap(),
        e.secret
    );
    let off = w
        .engine
        .set_endpoint_enabled(Some("other"), &e.endpoint.id, false)
        .await
        .unwrap();
    assert_eq!(off.disabled_reason.as_deref(), Some("disabled by hand"));
    w.engine
        .remove_endpoint(Some("other"), &e.endpoint.id)
        .await
        .unwrap();
    assert_eq!(count(&w.engine, "endpoints").await, 0);
}

// ---- the official Python package ---------------------------------------------------------

/// The venv's python with `standardwebhooks`, or why there is none (set up once per binary).
fn python() -> Result<&'static Path, &'static str> {
    static PYTHON: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    common::python_venv(&PYTHON, "standardwebhooks")
}

async fn python_standardwebhooks_verifies_every_request(b: Backend) {
    let python = match python() {
        Ok(p) => p,
        // `.ci/run` sets BELFRY_TEST_PYTHON=1: there a missing package is a failure.
        Err(why) if std::env::var("BELFRY_TEST_PYTHON").as_deref() != Ok("1") => {
            eprintln!("SKIPPED: the standardwebhooks Python package is not available: {why}");
            return;
        }
        Err(why) => panic!("{why}"),
    };
    let secret_file = tempfile::NamedTempFile::new().unwrap();
    let mut child = tokio::process::Command::new(python)
        .arg(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/standardwebhooks/receiver.py"))
        .arg(secret_file.path())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("starting tests/standardwebhooks/receiver.py");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = async || {
        tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("receiver.py answers within 20 s")
            .unwrap()
            .expect("receiver.py is running")
    };
    let ready = next().await;
    let port: u16 = ready
        .strip_prefix("READY ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line from receiver.py: {ready}"));

    let w = world(b, 20).await;
    let e = w
        .engine
        .add_endpoint(
            TENANT,
            &format!("http://127.0.0.1:{port}/"),
            &["*".into()],
            None,
        )
        .await
        .unwrap();
    std::fs::write(secret_file.path(), &e.secret).unwrap();
    welcome(&w.engine, "u1").await;
    let item = w.engine.inbox(TENANT, "u1").await.unwrap().remove(0);
    w.engine.mark_read(TENANT, "u1", &item.id).await.unwrap();
    w.engine.dispatch_pending().await.unwrap();
    let mut verified = Vec::new();
    for _ in 0..2 {
        let report: Value = serde_json::from_str(&next().await).unwrap();
        assert_eq!(
            report["ok"], true,
            "the official package refused it: {report}"
        );
        verified.push((
            report["type"].as_str().unwrap().to_string(),
            report["id"].clone(),
        ));
    }
    let m = messages(&w.engine, &e.endpoint.id).await;
    let expect: Vec<(String, Value)> = m
        .iter()
        .map(|m| (m.event_type.clone(), Value::from(m.id.clone())))
        .collect();
    assert_eq!(verified, expect);
    assert_eq!(expect[0].0, "delivery.sent");
    assert_eq!(expect[1].0, "inbox.read");
    assert!(m.iter().all(|m| m.status == "delivered"));

    // The check can fail: under another secret the package refuses belfry's signature, and
    // the refusal (400) is a failed try to be retried.
    std::fs::write(secret_file.path(), "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    welcome(&w.engine, "u2").await;
    let report: Value = serde_json::from_str(&next().await).unwrap();
    assert_eq!(report["ok"], false, "{report}");
    assert!(
        report["error"].as_str().unwrap().contains("signature"),
        "{report}"
    );
    let last = messages(&w.engine, &e.endpoint.id).await.pop().unwrap();
    assert_eq!(last.status_reason.as_deref(), Some("retrying"));
    assert_eq!(last.tries[0].status_code, Some(400));
    drop(child.stdin.take());
}

/// A background worker (the path `belfry worker` and `belfry serve` take) posts the events of
/// deliveries it sends itself.
async fn a_worker_posts_what_it_publishes(b: Backend) {
    let w = world(b, 20).await;
    let ep = Endpoint::start().await;
    let e = w
        .engine
        .add_endpoint(TENANT, &ep.url, &["delivery.sent".into()], None)
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let engine = w.engine.clone();
    let worker = tokio::spawn(async move {
        engine
            .run_worker(
                belfry::host::dispatch::WorkerConfig {
                    poll: Duration::from_millis(50),
                    ..Default::default()
                },
                stopped,
            )
            .await
    });
    for user in ["u1", "u2", "u3"] {
        w.engine
            .trigger(&TriggerRequest::new(
                "welcome",
                json!({ "user": { "id": user } }),
            ))
            .await
            .unwrap();
    }
    ep.wait_for(3).await;
    stop.send(true).unwrap();
    let report = worker.await.unwrap();
    assert_eq!(ep.seen().len(), 3, "{report:?}");
    let m = messages(&w.engine, &e.endpoint.id).await;
    assert!(m.iter().all(|m| m.status == "delivered"), "{m:?}");
}

on_both_backends!(
    a_worker_posts_what_it_publishes,
    python_standardwebhooks_verifies_every_request,
    events_reach_subscribers_signed_and_explained,
    failures_retry_on_the_schedule_until_the_last_try,
    a_run_of_failures_disables_until_enabled_by_hand,
    private_targets_are_refused_unless_allowed,
    endpoints_are_managed_per_tenant,
);
