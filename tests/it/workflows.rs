//! Workflows on SQLite and PostgreSQL, with the bundled `task-assigned` notifier (WIT 0.4.0):
//! in-app at once; email an hour after the in-app item was written unless it is read
//! (`notification.read` cancels, `task.escalate` sends at once); delivered or suppressed
//! email stops the run, a permanently failed one goes to sms.
//!
//! Email and sms go through the `log` adapter. Where a test needs the hour to have passed, it
//! moves the run's wait end and its wake job into the past with SQL — the same rows the clock
//! would have reached — rather than waiting an hour.

use crate::common;

use crate::common::{Backend, world};
use belfry::host::policy::{SuppressionReason, SuppressionTarget};
use belfry::host::workflows::{Effect, RunRecord};
use belfry::{Engine, TriggerRequest};
use serde_json::json;

fn task(tenant: &str, assignee: serde_json::Value, title: &str) -> TriggerRequest {
    TriggerRequest::new(
        "task-assigned",
        json!({
            "task": {"id": "T-1", "title": title, "url": "https://tasks.example/T-1"},
            "assignee": assignee,
            "assigned_by": {"name": "Grace"},
        }),
    )
    .tenant(tenant)
}

fn ada(id: &str) -> serde_json::Value {
    json!({"id": id, "email": format!("{id}@example.com"), "phone": "+15550100", "name": "Ada"})
}

/// Triggers and returns (notification id, first delivery id).
async fn start(e: &Engine, req: TriggerRequest) -> (String, String) {
    let o = e.trigger(&req).await.unwrap();
    let n = &o.notifications[0];
    assert_eq!(n.deliveries.len(), 1, "only the first step is planned");
    assert_eq!(n.deliveries[0].channel, "in-app");
    (n.id.clone(), n.deliveries[0].id.clone())
}

async fn run(e: &Engine, notification: &str) -> RunRecord {
    e.workflow_run(notification).await.unwrap().unwrap()
}

fn kinds(r: &RunRecord) -> Vec<&str> {
    r.transitions.iter().map(|t| t.kind.as_str()).collect()
}

/// The notification's deliveries as (channel, status, reason), by channel.
async fn deliveries(e: &Engine, notification: &str) -> Vec<(String, String, Option<String>)> {
    let x = e.explain(notification).await.unwrap();
    let mut out: Vec<_> = x
        .deliveries
        .iter()
        .map(|d| (d.channel.clone(), d.status.clone(), d.status_reason.clone()))
        .collect();
    out.sort();
    out
}

fn row(c: &str, s: &str, r: Option<&str>) -> (String, String, Option<String>) {
    (c.into(), s.into(), r.map(str::to_string))
}

async fn wake_jobs(e: &Engine, run_id: &str) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE kind = 'workflow_wake' AND subject_id = $1")
        .bind(run_id)
        .fetch_one(e.db())
        .await
        .unwrap()
}

/// Moves a waiting run's wait end, and its wake job, to a second ago: as if the hour passed.
async fn end_wait(e: &Engine, run_id: &str) {
    let past = belfry::host::store::time_text(chrono::Utc::now() - chrono::Duration::seconds(1));
    sqlx::query("UPDATE workflow_runs SET wait_until = $1 WHERE id = $2")
        .bind(&past)
        .bind(run_id)
        .execute(e.db())
        .await
        .unwrap();
    sqlx::query("UPDATE jobs SET run_at = $1 WHERE kind = 'workflow_wake' AND subject_id = $2")
        .bind(&past)
        .bind(run_id)
        .execute(e.db())
        .await
        .unwrap();
}

async fn in_app_then_wait(e: &Engine, req: TriggerRequest) -> (String, RunRecord) {
    let (n, in_app) = start(e, req).await;
    let r = run(e, &n).await;
    assert_eq!(
        (r.status.as_str(), r.step_key.as_str()),
        ("running", "inbox")
    );
    assert_eq!(r.step_delivery_id.as_deref(), Some(in_app.as_str()));
    e.dispatch_pending().await.unwrap();
    let r = run(e, &n).await;
    assert_eq!(
        (r.status.as_str(), r.step_key.as_str()),
        ("waiting", "email")
    );
    assert_eq!(r.cancel_on, ["notification.read"]);
    assert_eq!(wake_jobs(e, &r.id).await, 1);
    // Nothing is due for an hour: dispatching again sends nothing.
    e.dispatch_pending().await.unwrap();
    assert_eq!(deliveries(e, &n).await, [row("in-app", "succeeded", None)]);
    (n, r)
}

async fn unread_gets_the_email_after_the_hour_read_does_not(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;

    // Unread: the hour passes, the email goes, and a delivered email stops the run (no sms).
    let (n, r) = in_app_then_wait(e, task("default", ada("u1"), "Review the Q3 plan")).await;
    end_wait(e, &r.id).await;
    e.dispatch_pending().await.unwrap();
    assert_eq!(
        deliveries(e, &n).await,
        [
            row("email", "succeeded", None),
            row("in-app", "succeeded", None)
        ]
    );
    let r = run(e, &n).await;
    assert_eq!(
        (r.status.as_str(), r.status_reason.as_deref()),
        ("stopped", Some("stopped_by_branch"))
    );
    assert_eq!(
        kinds(&r),
        [
            "started",
            "step_activated",
            "progressed",
            "waiting",
            "reactivated",
            "step_activated",
            "progressed",
            "stopped"
        ]
    );
    assert!(r.transitions[6].evidence.contains("delivered → stop"));

    // Read: the in-app item is read during the wait; the run ends for good, and no later
    // sweep can send the email.
    let (n, r) = in_app_then_wait(e, task("default", ada("u2"), "Ship it")).await;
    let item = &e.inbox("default", "u2").await.unwrap()[0];
    e.mark_read("default", "u2", &item.id).await.unwrap();
    let done = run(e, &n).await;
    assert_eq!(
        (done.status.as_str(), done.status_reason.as_deref()),
        ("completed", Some("cancelled_by_signal"))
    );
    assert_eq!(wake_jobs(e, &r.id).await, 0, "the wait's job went with it");
    end_wait(e, &r.id).await;
    e.dispatch_pending().await.unwrap();
    assert!(!e.reconcile_workflow(&r.id).await.unwrap());
    assert_eq!(deliveries(e, &n).await, [row("in-app", "succeeded", None)]);

    // Explaining the in-app delivery tells the whole journey.
    let text = e.explain(&item.delivery_id).await.unwrap().to_string();
    for expected in [
        "workflow run",
        "task-assigned v1",
        "signal_received",
        "notification.read",
        "cancelled_by_signal",
    ] {
        assert!(text.contains(expected), "{expected} missing from:\n{text}");
    }
    // The run's own id explains the same notification.
    let by_run = e.explain(&r.id).await.unwrap();
    assert_eq!(by_run.workflows.len(), 1);
    assert_eq!(by_run.workflows[0].id, r.id);
}

async fn branches_stop_go_to_and_skip(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;

    // A suppressed email stops the run: no sms though the phone is there.
    e.add_suppression(
        "default",
        &SuppressionTarget::Address("u1@example.com".into()),
        SuppressionReason::Manual,
        None,
        None,
    )
    .await
    .unwrap();
    let (n, r) = in_app_then_wait(e, task("default", ada("u1"), "Suppressed")).await;
    end_wait(e, &r.id).await;
    e.dispatch_pending().await.unwrap();
    let d = deliveries(e, &n).await;
    assert_eq!(d.len(), 2, "{d:?}");
    assert_eq!((d[0].0.as_str(), d[0].1.as_str()), ("email", "suppressed"));
    let r = run(e, &n).await;
    assert_eq!(r.status, "stopped");
    assert!(
        r.transitions
            .iter()
            .any(|t| t.kind == "progressed" && t.evidence.contains("suppressed → stop")),
        "{:?}",
        r.transitions
    );

    // A permanently failed email (its subject would carry a line break) goes to sms, the
    // last step: the run completes.
    let (n, r) = in_app_then_wait(e, task("default", ada("u2"), "Line\nbreak")).await;
    end_wait(e, &r.id).await;
    e.dispatch_pending().await.unwrap();
    assert_eq!(
        deliveries(e, &n).await,
        [
            row("email", "failed", Some("content_invalid")),
            row("in-app", "succeeded", None),
            row("sms", "succeeded", None)
        ]
    );
    let r = run(e, &n).await;
    assert_eq!(
        (r.status.as_str(), r.status_reason.as_deref()),
        ("completed", Some("last_step_done"))
    );
    assert!(
        r.transitions
            .iter()
            .any(|t| t.evidence.contains("permanently_failed → goto sms"))
    );

    // No email address: the email step is passed through as suppressed (its channel was not
    // planned), and the suppressed branch stops the run.
    let (n, r) = in_app_then_wait(
        e,
        task(
            "default",
            json!({"id": "u3", "phone": "+15550101"}),
            "No email",
        ),
    )
    .await;
    end_wait(e, &r.id).await;
    e.dispatch_pending().await.unwrap();
    assert_eq!(deliveries(e, &n).await, [row("in-app", "succeeded", None)]);
    let r = run(e, &n).await;
    assert_eq!(r.status, "stopped");
    assert!(
        r.transitions
            .iter()
            .any(|t| t.reason.as_deref() == Some("channel_not_planned"))
    );
}

async fn progression_is_duplicate_safe(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let (n, in_app) = start(e, task("default", ada("u1"), "Race")).await;
    let r = run(e, &n).await;
    // The in-app delivery reached its outcome, but the run has not moved yet (as if the
    // process died between the two): any number of concurrent reconciles move it once.
    sqlx::query("UPDATE deliveries SET status = 'succeeded' WHERE id = $1")
        .bind(&in_app)
        .execute(e.db())
        .await
        .unwrap();
    sqlx::query("DELETE FROM jobs WHERE subject_id = $1")
        .bind(&in_app)
        .execute(e.db())
        .await
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let e = e.clone();
        let id = r.id.clone();
        tasks.spawn(async move { e.reconcile_workflow(&id).await.unwrap() });
    }
    let mut moved = 0;
    while let Some(m) = tasks.join_next().await {
        moved += m.unwrap() as usize;
    }
    assert_eq!(moved, 1, "exactly one reconcile moved the run");
    assert_eq!(wake_jobs(e, &r.id).await, 1);
    let r = run(e, &n).await;
    assert_eq!(
        kinds(&r),
        ["started", "step_activated", "progressed", "waiting"]
    );
    // Past the wait, the email is planned once, however often the run is reconciled.
    end_wait(e, &r.id).await;
    e.dispatch_pending().await.unwrap();
    for _ in 0..3 {
        assert!(!e.reconcile_workflow(&r.id).await.unwrap());
    }
    let emails: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM deliveries WHERE notification_id = $1 AND channel = 'email'",
    )
    .bind(&n)
    .fetch_one(e.db())
    .await
    .unwrap();
    assert_eq!(emails, 1);
}

async fn signals_reach_only_their_tenant_and_actor(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let (na, ra) = in_app_then_wait(e, task("a", ada("u1"), "In tenant a")).await;
    let (nb, rb) = in_app_then_wait(e, task("b", ada("u1"), "In tenant b")).await;

    // Another tenant, another actor, a name nobody listens for, another notification: nothing.
    for (tenant, actor, name, payload) in [
        ("c", "u1", "task.escalate", json!({})),
        ("a", "u2", "task.escalate", json!({})),
        ("a", "u1", "task.done", json!({})),
        ("a", "u1", "task.escalate", json!({"notification_id": nb})),
    ] {
        let out = e.signal(tenant, actor, name, &payload).await.unwrap();
        assert!(out.runs.is_empty(), "{tenant}/{actor}/{name} moved {out:?}");
    }
    assert_eq!(run(e, &na).await.status, "waiting");
    assert_eq!(run(e, &nb).await.status, "waiting");

    // Tenant b's escalation sends b's email at once; a's run still waits.
    let out = e
        .signal("b", "u1", "task.escalate", &json!({"why": "urgent"}))
        .await
        .unwrap();
    assert_eq!(out.runs.len(), 1);
    assert_eq!(
        (out.runs[0].run_id.as_str(), out.runs[0].effect),
        (rb.id.as_str(), Effect::Resumed)
    );
    assert_eq!(wake_jobs(e, &rb.id).await, 0);
    e.dispatch_pending().await.unwrap();
    assert_eq!(
        deliveries(e, &nb).await,
        [
            row("email", "succeeded", None),
            row("in-app", "succeeded", None)
        ]
    );
    assert_eq!(run(e, &na).await.status, "waiting");
    assert_eq!(wake_jobs(e, &ra.id).await, 1);
    // A signal to a run no longer waiting changes nothing.
    let again = e
        .signal("b", "u1", "task.escalate", &json!({}))
        .await
        .unwrap();
    assert!(again.runs.is_empty());

    // Every signal is recorded, with what it moved.
    let recorded: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM signals")
        .fetch_one(e.db())
        .await
        .unwrap();
    assert_eq!(recorded, 6);
    for (tenant, actor, name, field) in [
        ("", "u1", "x", "tenant"),
        ("a", " ", "x", "actor"),
        ("a", "u1", "", "name"),
    ] {
        let err = e.signal(tenant, actor, name, &json!({})).await.unwrap_err();
        assert!(err.to_string().contains(field), "{err}");
    }
    let err = e.signal("a", "u1", "x", &json!([1])).await.unwrap_err();
    assert!(err.to_string().contains("payload"), "{err}");
}

/// A run finishes on the builds it started with: a new notifier and adapter loaded while it
/// waits change nothing for it, and everything for a run started afterwards.
async fn a_run_is_pinned_to_the_builds_that_started_it(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let (old_run, r) = in_app_then_wait(e, task("default", ada("u1"), "Pinned")).await;

    // Version 0.9.0 of the notifier and of the email adapter, loaded mid-run.
    let bundled = |name: &str| belfry::BUNDLED.iter().find(|b| b.name == name).unwrap();
    for name in ["task-assigned", "log"] {
        let b = bundled(name);
        let v9 = b
            .manifest
            .replace("version = \"0.1.0\"", "version = \"0.9.0\"");
        assert_ne!(v9, b.manifest, "{name}: the test's manifest edit took");
        // With its package assets: the notifier's templates travel with it.
        let package = belfry::host::plugins::package::Package {
            manifest: v9.clone(),
            component: b.wasm.to_vec(),
            assets: belfry::host::plugins::assets::Assets::from_entries(
                b.assets.iter().map(|(p, x)| (p.to_string(), x.to_vec())),
            )
            .unwrap(),
        };
        let (loaded, replaced) = e.load_package(&package, "test").await.unwrap();
        assert!(
            loaded
                .reference()
                .to_string()
                .starts_with(&format!("{name}@0.9.0"))
        );
        assert!(replaced.is_some());
    }
    let (new_run, r2) = in_app_then_wait(e, task("default", ada("u2"), "Fresh")).await;

    end_wait(e, &r.id).await;
    end_wait(e, &r2.id).await;
    e.dispatch_pending().await.unwrap();
    let email = |n: String| async move {
        let x = e.explain(&n).await.unwrap();
        let d = x
            .deliveries
            .iter()
            .find(|d| d.channel == "email")
            .unwrap()
            .clone();
        let built = x
            .timeline
            .iter()
            .find(|t| t.kind == "delivery.built" && t.delivery_id.as_deref() == Some(&d.id))
            .and_then(|t| t.plugin.clone())
            .unwrap();
        assert!(
            !x.timeline.iter().any(|t| t.kind == "plugin.pin_lost"),
            "{:?}",
            x.timeline
        );
        (d.status, built, d.sent_by.unwrap())
    };
    let (status, built, sent) = email(old_run).await;
    assert_eq!(status, "succeeded");
    assert!(built.starts_with("task-assigned@0.1.0"), "{built}");
    assert!(sent.starts_with("log@0.1.0"), "{sent}");
    let (status, built, sent) = email(new_run).await;
    assert_eq!(status, "succeeded");
    assert!(built.starts_with("task-assigned@0.9.0"), "{built}");
    assert!(sent.starts_with("log@0.9.0"), "{sent}");

    // A restart keeps replaced uploads loadable: a run pinned to one still finishes on it.
    let (pinned_v9, r3) = in_app_then_wait(e, task("default", ada("u3"), "Across")).await;
    let b = bundled("log");
    let v10 = b
        .manifest
        .replace("version = \"0.1.0\"", "version = \"0.10.0\"");
    e.load_plugin(b.wasm, &v10, "test").await.unwrap();
    let reopened = belfry::Engine::open(common::config_for(&w.db.url, &w.receiver.url()))
        .await
        .unwrap();
    end_wait(&reopened, &r3.id).await;
    reopened.dispatch_pending().await.unwrap();
    let x = reopened.explain(&pinned_v9).await.unwrap();
    let d = x.deliveries.iter().find(|d| d.channel == "email").unwrap();
    assert!(
        d.sent_by.as_deref().unwrap().starts_with("log@0.9.0"),
        "{:?}",
        d.sent_by
    );
}

/// A pin whose build is no longer loaded (an older bundled plugin after an upgrade of the
/// binary) falls back to the build in force, and the story says so.
async fn a_lost_pin_falls_back_and_is_explained(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let (n, r) = in_app_then_wait(e, task("default", ada("u1"), "Lost")).await;
    sqlx::query("UPDATE workflow_runs SET pins = $1 WHERE id = $2")
        .bind(r#"{"adapters": {"email": "log@0.0.1#000000000000"}}"#)
        .bind(&r.id)
        .execute(e.db())
        .await
        .unwrap();
    end_wait(e, &r.id).await;
    e.dispatch_pending().await.unwrap();
    let x = e.explain(&n).await.unwrap();
    let d = x.deliveries.iter().find(|d| d.channel == "email").unwrap();
    assert_eq!(d.status, "succeeded");
    assert!(d.sent_by.as_deref().unwrap().starts_with("log@0.1.0"));
    let lost = x
        .timeline
        .iter()
        .find(|t| t.kind == "plugin.pin_lost")
        .unwrap();
    let detail = lost.detail.as_deref().unwrap();
    assert!(
        detail.contains("log@0.0.1#000000000000") && detail.contains("used log@0.1.0"),
        "{detail}"
    );
}

on_both_backends!(
    a_lost_pin_falls_back_and_is_explained,
    a_run_is_pinned_to_the_builds_that_started_it,
    unread_gets_the_email_after_the_hour_read_does_not,
    branches_stop_go_to_and_skip,
    progression_is_duplicate_safe,
    signals_reach_only_their_tenant_and_actor,
);
