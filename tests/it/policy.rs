//! Policy at both checkpoints on SQLite and PostgreSQL: preferences (recipient over tenant
//! default, tenant isolation), severity floor and critical bypass, suppressions (address and
//! recipient, expiry), cooldowns, caps, quiet hours (defer, re-checked when due), validation
//! that writes nothing, dry runs, and what `explain` says. The quiet-hours maths itself is
//! tested table-driven in `host/src/policy/quiet_hours.rs`.
//!
//! Real parts only: the bundled plugins, the webhook adapter sending to a receiver on
//! 127.0.0.1, and the `log` adapter for email.

use crate::common;

use belfry::host::content::Channel;
use belfry::host::policy::{
    Cap, PolicyError, PrefScope, SettingsPatch, Severity, SuppressionReason, SuppressionTarget,
};
use belfry::{Engine, TriggerRequest};
use chrono::Timelike;
use common::{Backend, count, world};
use serde_json::json;

/// `order-shipped` plans `email` (the `log` adapter) and `webhook` (the receiver) for a
/// customer with an address.
fn order(order_id: &str, customer: &str) -> serde_json::Value {
    json!({"order_id": order_id, "carrier": "c", "tracking_url": "https://t.example.com",
           "customer": {"id": customer, "email": format!("{customer}@Example.com")}})
}

struct Planned {
    event_id: String,
    email: String,
    webhook: String,
}

async fn trigger(e: &Engine, req: TriggerRequest) -> Planned {
    let o = e.trigger(&req).await.unwrap();
    let ds = &o.notifications[0].deliveries;
    let id = |c: &str| ds.iter().find(|d| d.channel == c).unwrap().id.clone();
    Planned {
        event_id: o.event_id.clone(),
        email: id("email"),
        webhook: id("webhook"),
    }
}

async fn standing(e: &Engine, id: &str) -> (String, Option<String>) {
    let d = e.delivery(id).await.unwrap().unwrap();
    (d.status, d.status_reason)
}

fn is(status: &str, reason: Option<&str>) -> (String, Option<String>) {
    (status.to_string(), reason.map(str::to_string))
}

async fn jobs_for(e: &Engine, delivery: &str) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM jobs WHERE subject_id = $1")
        .bind(delivery)
        .fetch_one(e.db())
        .await
        .unwrap()
}

async fn attempts_for(e: &Engine, delivery: &str) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM attempts WHERE delivery_id = $1")
        .bind(delivery)
        .fetch_one(e.db())
        .await
        .unwrap()
}

/// The `policy.checked` traces of a delivery, as (reason, detail), in order.
async fn policy_traces(e: &Engine, delivery: &str) -> Vec<(String, String)> {
    let x = e.explain(delivery).await.unwrap();
    let v = serde_json::to_value(&x).unwrap();
    v["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "policy.checked" && s["delivery_id"] == delivery)
        .map(|s| {
            (
                s["reason"].as_str().unwrap_or_default().to_string(),
                s["detail"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

async fn preference_disabled_at_plan_time_suppresses_without_a_job(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    e.set_preference(
        "default",
        "u-1",
        &PrefScope::Channel(Channel::Email),
        Some(false),
    )
    .await
    .unwrap();
    let p = trigger(e, TriggerRequest::new("order-shipped", order("o1", "u-1"))).await;
    assert_eq!(
        standing(e, &p.email).await,
        is("suppressed", Some("channel_disabled"))
    );
    assert_eq!(standing(e, &p.webhook).await, is("pending", None));
    assert_eq!(
        jobs_for(e, &p.email).await,
        0,
        "a suppressed delivery has no job"
    );
    e.dispatch_event(&p.event_id).await.unwrap();
    assert_eq!(standing(e, &p.webhook).await, is("succeeded", None));
    assert_eq!(attempts_for(e, &p.email).await, 0);

    // explain names the checkpoint, the rule, the input and where it came from.
    let traces = policy_traces(e, &p.email).await;
    assert_eq!(traces.len(), 1);
    assert_eq!(traces[0].0, "channel_disabled");
    assert!(
        traces[0].1.starts_with("plan checkpoint: suppression")
            && traces[0].1.contains("email: disabled (recipient setting)"),
        "{}",
        traces[0].1
    );
    let text = e.explain(&p.email).await.unwrap().to_string();
    assert!(text.contains("policy.checked"), "{text}");
    assert!(text.contains("delivery.suppressed"), "{text}");
    // The webhook delivery was checked twice (plan and send) and allowed both times.
    let traces = policy_traces(e, &p.webhook).await;
    assert_eq!(
        traces.iter().map(|t| t.0.as_str()).collect::<Vec<_>>(),
        ["allowed", "allowed"]
    );
    assert!(
        traces[1].1.starts_with("send checkpoint:"),
        "{}",
        traces[1].1
    );
}

async fn recipient_setting_overrides_tenant_default_and_tenants_are_isolated(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let orders = PrefScope::Category("orders".into());
    e.set_preference("acme", "*", &orders, Some(false))
        .await
        .unwrap();
    e.set_preference("acme", "u-2", &orders, Some(true))
        .await
        .unwrap();

    let p1 = trigger(
        e,
        TriggerRequest::new("order-shipped", order("o1", "u-1")).tenant("acme"),
    )
    .await;
    assert_eq!(
        standing(e, &p1.webhook).await,
        is("suppressed", Some("category_disabled"))
    );
    let (_, detail) = &policy_traces(e, &p1.webhook).await[0];
    assert!(
        detail.contains("orders: disabled (tenant default)"),
        "{detail}"
    );
    let p2 = trigger(
        e,
        TriggerRequest::new("order-shipped", order("o2", "u-2")).tenant("acme"),
    )
    .await;
    assert_eq!(standing(e, &p2.webhook).await, is("pending", None));
    // The same recipient id in another tenant is not touched by acme's settings.
    let p3 = trigger(
        e,
        TriggerRequest::new("order-shipped", order("o3", "u-1")).tenant("globex"),
    )
    .await;
    assert_eq!(standing(e, &p3.webhook).await, is("pending", None));
    assert_eq!(standing(e, &p3.email).await, is("pending", None));

    // Clearing the override brings the tenant default back.
    e.set_preference("acme", "u-2", &orders, None)
        .await
        .unwrap();
    let p4 = trigger(
        e,
        TriggerRequest::new("order-shipped", order("o4", "u-2")).tenant("acme"),
    )
    .await;
    assert_eq!(
        standing(e, &p4.webhook).await,
        is("suppressed", Some("category_disabled"))
    );
}

async fn a_preference_changed_after_planning_suppresses_at_send_time(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let p = trigger(e, TriggerRequest::new("order-shipped", order("o1", "u-1"))).await;
    assert_eq!(standing(e, &p.webhook).await, is("pending", None));
    e.set_preference(
        "default",
        "u-1",
        &PrefScope::NotifierChannel("order-shipped".into(), Channel::Webhook),
        Some(false),
    )
    .await
    .unwrap();
    e.dispatch_event(&p.event_id).await.unwrap();
    assert_eq!(
        standing(e, &p.webhook).await,
        is("suppressed", Some("notifier_disabled"))
    );
    assert_eq!(attempts_for(e, &p.webhook).await, 0, "no attempt row");
    assert_eq!(w.receiver.received().len(), 0, "the adapter was not called");
    assert_eq!(jobs_for(e, &p.webhook).await, 0);
    assert_eq!(standing(e, &p.email).await, is("succeeded", None));
    let traces = policy_traces(e, &p.webhook).await;
    assert_eq!(traces[0].0, "allowed");
    assert_eq!(traces[1].0, "notifier_disabled");
    assert!(
        traces[1].1.starts_with("send checkpoint:"),
        "{}",
        traces[1].1
    );
}

async fn severity_floor_suppresses_and_critical_bypasses_all_but_suppressions(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    e.set_settings(
        "default",
        "u-1",
        &SettingsPatch {
            severity_floor: Some(Some(Severity::High)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let low = trigger(e, TriggerRequest::new("order-shipped", order("o1", "u-1"))).await;
    assert_eq!(
        standing(e, &low.webhook).await,
        is("suppressed", Some("below_severity"))
    );
    let high = trigger(
        e,
        TriggerRequest::new("order-shipped", order("o2", "u-1")).severity(Severity::High),
    )
    .await;
    assert_eq!(standing(e, &high.webhook).await, is("pending", None));

    // Critical goes through a disabled channel, quiet hours all day long and a cap of one…
    e.set_preference(
        "default",
        "u-1",
        &PrefScope::Channel(Channel::Webhook),
        Some(false),
    )
    .await
    .unwrap();
    let minute = chrono::Utc::now().hour() as i64 * 60 + chrono::Utc::now().minute() as i64;
    e.set_settings(
        "default",
        "u-1",
        &SettingsPatch {
            quiet_hours: Some(Some(((minute + 1380) % 1440, (minute + 60) % 1440))),
            caps: vec![(Channel::Webhook, Some(Cap::new(1, 3600).unwrap()))],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let critical = trigger(
        e,
        TriggerRequest::new("order-shipped", order("o3", "u-1")).severity(Severity::Critical),
    )
    .await;
    assert_eq!(standing(e, &critical.webhook).await, is("pending", None));
    let (_, detail) = &policy_traces(e, &critical.webhook).await[0];
    assert!(detail.contains("bypassed (critical)"), "{detail}");
    e.dispatch_event(&critical.event_id).await.unwrap();
    assert_eq!(standing(e, &critical.webhook).await, is("succeeded", None));

    // …but never through a suppression of the address.
    e.add_suppression(
        "default",
        &SuppressionTarget::Address("U-1@example.com ".into()),
        SuppressionReason::Complaint,
        None,
        None,
    )
    .await
    .unwrap();
    let blocked = trigger(
        e,
        TriggerRequest::new("order-shipped", order("o4", "u-1")).severity(Severity::Critical),
    )
    .await;
    assert_eq!(
        standing(e, &blocked.email).await,
        is("suppressed", Some("address_suppressed"))
    );
    assert_eq!(standing(e, &blocked.webhook).await, is("pending", None));
}

async fn suppressions_by_address_and_recipient_expire_and_can_be_removed(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let by_recipient = e
        .add_suppression(
            "default",
            &SuppressionTarget::Recipient {
                id: "u-1".into(),
                channel: Channel::Webhook,
            },
            SuppressionReason::Unsubscribe,
            Some("asked by mail"),
            None,
        )
        .await
        .unwrap();
    let p = trigger(e, TriggerRequest::new("order-shipped", order("o1", "u-1"))).await;
    assert_eq!(
        standing(e, &p.webhook).await,
        is("suppressed", Some("recipient_suppressed"))
    );
    assert_eq!(standing(e, &p.email).await, is("pending", None));

    // An expired suppression stops applying (and is listed only on request).
    let soon = chrono::Utc::now() + chrono::Duration::hours(1);
    let by_address = e
        .add_suppression(
            "default",
            &SuppressionTarget::Address("u-2@example.com".into()),
            SuppressionReason::Bounce,
            None,
            Some(soon),
        )
        .await
        .unwrap();
    let p2 = trigger(e, TriggerRequest::new("order-shipped", order("o2", "u-2"))).await;
    assert_eq!(
        standing(e, &p2.email).await,
        is("suppressed", Some("address_suppressed"))
    );
    sqlx::query("UPDATE suppressions SET expires_at = '2000-01-01T00:00:00.000Z' WHERE id = $1")
        .bind(&by_address.id)
        .execute(e.db())
        .await
        .unwrap();
    let p3 = trigger(e, TriggerRequest::new("order-shipped", order("o3", "u-2"))).await;
    assert_eq!(standing(e, &p3.email).await, is("pending", None));
    assert_eq!(e.suppressions("default", false).await.unwrap().len(), 1);
    assert_eq!(e.suppressions("default", true).await.unwrap().len(), 2);

    // Removing is tenant-scoped: another tenant cannot remove it.
    assert!(matches!(
        e.remove_suppression("other", &by_recipient.id).await,
        Err(PolicyError::NotFound { .. })
    ));
    e.remove_suppression("default", &by_recipient.id)
        .await
        .unwrap();
    let p4 = trigger(e, TriggerRequest::new("order-shipped", order("o4", "u-1"))).await;
    assert_eq!(standing(e, &p4.webhook).await, is("pending", None));

    // A suppression added while a delivery waits stops it at send time.
    e.add_suppression(
        "default",
        &SuppressionTarget::Address("u-1@example.com".into()),
        SuppressionReason::Manual,
        None,
        None,
    )
    .await
    .unwrap();
    e.dispatch_event(&p4.event_id).await.unwrap();
    assert_eq!(
        standing(e, &p4.email).await,
        is("suppressed", Some("address_suppressed"))
    );
    assert_eq!(attempts_for(e, &p4.email).await, 0);
}

async fn cooldown_drops_repeats_of_a_notifier_to_a_recipient(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    e.set_settings(
        "default",
        "u-1",
        &SettingsPatch {
            cooldowns: vec![("order-shipped".into(), Some(600))],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let first = trigger(e, TriggerRequest::new("order-shipped", order("o1", "u-1"))).await;
    assert_eq!(standing(e, &first.webhook).await, is("pending", None));
    let repeat = trigger(e, TriggerRequest::new("order-shipped", order("o2", "u-1"))).await;
    assert_eq!(
        standing(e, &repeat.webhook).await,
        is("suppressed", Some("cooldown"))
    );
    assert_eq!(
        standing(e, &repeat.email).await,
        is("suppressed", Some("cooldown"))
    );
    // Another recipient is not affected; a critical repeat goes through.
    let other = trigger(e, TriggerRequest::new("order-shipped", order("o3", "u-2"))).await;
    assert_eq!(standing(e, &other.webhook).await, is("pending", None));
    let critical = trigger(
        e,
        TriggerRequest::new("order-shipped", order("o4", "u-1")).severity(Severity::Critical),
    )
    .await;
    assert_eq!(standing(e, &critical.webhook).await, is("pending", None));
    // The first one, re-checked at send time, is not a repeat of the later ones.
    e.dispatch_event(&first.event_id).await.unwrap();
    assert_eq!(standing(e, &first.webhook).await, is("succeeded", None));
}

async fn cap_counts_sent_and_in_flight_deliveries_on_a_channel(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    e.set_settings(
        "default",
        "*",
        &SettingsPatch {
            caps: vec![(Channel::Webhook, Some(Cap::new(2, 3600).unwrap()))],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let a = trigger(e, TriggerRequest::new("order-shipped", order("o1", "u-1"))).await;
    e.dispatch_event(&a.event_id).await.unwrap();
    assert_eq!(standing(e, &a.webhook).await, is("succeeded", None));
    let b2 = trigger(e, TriggerRequest::new("order-shipped", order("o2", "u-1"))).await;
    assert_eq!(standing(e, &b2.webhook).await, is("pending", None));
    // One sent and one in flight: the third is over the cap of two per hour.
    let c = trigger(e, TriggerRequest::new("order-shipped", order("o3", "u-1"))).await;
    assert_eq!(
        standing(e, &c.webhook).await,
        is("suppressed", Some("cap_reached"))
    );
    let (_, detail) = &policy_traces(e, &c.webhook).await[0];
    assert!(
        detail.contains("2 sent or in flight on webhook in the last 3600 s, cap 2"),
        "{detail}"
    );
    // The cap is per channel: email is uncapped.
    assert_eq!(standing(e, &c.email).await, is("pending", None));
    // The in-flight one, re-checked at send time, does not count itself or later ones.
    e.dispatch_event(&b2.event_id).await.unwrap();
    assert_eq!(standing(e, &b2.webhook).await, is("succeeded", None));
    // Suppressed deliveries do not count: another recipient's cap is their own.
    let d = trigger(e, TriggerRequest::new("order-shipped", order("o4", "u-2"))).await;
    assert_eq!(standing(e, &d.webhook).await, is("pending", None));
}

async fn quiet_hours_defer_to_the_window_end_and_are_rechecked_when_due(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    // Quiet from two hours ago to two hours ahead in Kolkata (UTC+5:30, no DST): the end is
    // the first minute after the window, in UTC.
    let now = chrono::Utc::now();
    let local = now.with_timezone(&chrono_tz::Asia::Kolkata);
    let m = (local.hour() * 60 + local.minute()) as i64;
    let (start, end) = ((m + 1440 - 120) % 1440, (m + 120) % 1440);
    e.set_settings(
        "default",
        "u-1",
        &SettingsPatch {
            time_zone: Some(Some("Asia/Kolkata".into())),
            quiet_hours: Some(Some((start, end))),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let p = trigger(e, TriggerRequest::new("order-shipped", order("o1", "u-1"))).await;
    let d = e.delivery(&p.webhook).await.unwrap().unwrap();
    assert_eq!(
        (d.status.as_str(), d.status_reason.as_deref()),
        ("deferred", Some("quiet_hours"))
    );
    // The window ends 121 minutes after the current minute began.
    let minute_start = now
        - chrono::Duration::seconds(now.second() as i64)
        - chrono::Duration::nanoseconds(now.nanosecond() as i64);
    let expected = minute_start + chrono::Duration::minutes(121);
    let until = belfry::host::store::time_text(expected);
    assert_eq!(
        d.status_detail.as_deref(),
        Some(format!("until {until}").as_str())
    );
    let run_at: String = sqlx::query_scalar("SELECT run_at FROM jobs WHERE subject_id = $1")
        .bind(&p.webhook)
        .fetch_one(e.db())
        .await
        .unwrap();
    assert_eq!(run_at, until, "the job waits exactly until the window ends");

    // Pretend the time came while it is still quiet (the recipient moved their window): the
    // send-time checkpoint runs quiet hours again and defers again, without an attempt.
    sqlx::query("UPDATE jobs SET run_at = $1 WHERE subject_id = $2")
        .bind(belfry::host::store::time_text(chrono::Utc::now()))
        .bind(&p.webhook)
        .execute(e.db())
        .await
        .unwrap();
    e.dispatch_event(&p.event_id).await.unwrap();
    assert_eq!(
        standing(e, &p.webhook).await,
        is("deferred", Some("quiet_hours"))
    );
    assert_eq!(attempts_for(e, &p.webhook).await, 0);
    let job_attempt: i64 = sqlx::query_scalar("SELECT attempt FROM jobs WHERE subject_id = $1")
        .bind(&p.webhook)
        .fetch_one(e.db())
        .await
        .unwrap();
    assert_eq!(
        job_attempt, 0,
        "a policy deferral does not use up an attempt"
    );

    // Quiet hours lifted, the job due: it is sent.
    e.set_settings(
        "default",
        "u-1",
        &SettingsPatch {
            quiet_hours: Some(None),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    sqlx::query("UPDATE jobs SET run_at = $1 WHERE subject_id = $2")
        .bind(belfry::host::store::time_text(chrono::Utc::now()))
        .bind(&p.webhook)
        .execute(e.db())
        .await
        .unwrap();
    e.dispatch_event(&p.event_id).await.unwrap();
    assert_eq!(standing(e, &p.webhook).await, is("succeeded", None));
    let reasons: Vec<String> = policy_traces(e, &p.webhook)
        .await
        .into_iter()
        .map(|t| t.0)
        .collect();
    assert_eq!(reasons, ["quiet_hours", "quiet_hours", "allowed"]);
}

async fn invalid_settings_are_rejected_naming_the_field_and_nothing_is_written(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    e.set_settings(
        "default",
        "u-1",
        &SettingsPatch {
            time_zone: Some(Some("Europe/London".into())),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let before = e.settings("default", "u-1").await.unwrap().0;
    let bad = [
        (
            SettingsPatch {
                time_zone: Some(Some("Mars/Olympus".into())),
                severity_floor: Some(Some(Severity::High)),
                ..Default::default()
            },
            "time_zone",
        ),
        (
            SettingsPatch {
                quiet_hours: Some(Some((1320, 1440))),
                severity_floor: Some(Some(Severity::High)),
                ..Default::default()
            },
            "quiet_hours.end",
        ),
        (
            SettingsPatch {
                quiet_hours: Some(Some((-1, 60))),
                ..Default::default()
            },
            "quiet_hours.start",
        ),
        (
            SettingsPatch {
                cooldowns: vec![("order-shipped".into(), Some(0))],
                severity_floor: Some(Some(Severity::High)),
                ..Default::default()
            },
            "cooldown",
        ),
    ];
    for (patch, field) in bad {
        let err = e.set_settings("default", "u-1", &patch).await.unwrap_err();
        assert!(err.to_string().contains(field), "{field}: {err}");
    }
    let cap = Cap::new(0, 3600).unwrap_err().to_string();
    assert!(cap.contains("cap.max"), "{cap}");
    let cap = Cap::new(3, 0).unwrap_err().to_string();
    assert!(cap.contains("cap.window"), "{cap}");
    assert_eq!(e.settings("default", "u-1").await.unwrap().0, before);
    let past = chrono::Utc::now() - chrono::Duration::minutes(1);
    let err = e
        .add_suppression(
            "default",
            &SuppressionTarget::Address("a@example.com".into()),
            SuppressionReason::Manual,
            None,
            Some(past),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("expires_at"), "{err}");
    assert_eq!(count(e, "suppressions").await, 0);
}

async fn dry_run_says_what_would_happen_and_writes_nothing(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    e.set_preference(
        "default",
        "u-1",
        &PrefScope::Channel(Channel::Email),
        Some(false),
    )
    .await
    .unwrap();
    let tables = ["events", "notifications", "deliveries", "jobs", "traces"];
    let mut before = Vec::new();
    for t in tables {
        before.push(count(e, t).await);
    }
    let plan = e
        .dry_run(&TriggerRequest::new("order-shipped", order("o1", "u-1")))
        .await
        .unwrap();
    let mut after = Vec::new();
    for t in tables {
        after.push(count(e, t).await);
    }
    assert_eq!(before, after, "a dry run writes nothing");
    let channels = &plan.recipients[0].channels;
    let would: Vec<(&str, &str)> = channels
        .iter()
        .map(|c| (c.channel.as_str(), c.would))
        .collect();
    assert_eq!(would, [("email", "suppress"), ("webhook", "send")]);
    assert_eq!(channels[0].decision.code(), "channel_disabled");
}

async fn a_bulk_trigger_reads_each_recipients_policy_and_counts_its_own_batch(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    e.set_settings(
        "default",
        "u-1",
        &SettingsPatch {
            caps: vec![(Channel::Webhook, Some(Cap::new(2, 3600).unwrap()))],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    e.add_suppression(
        "default",
        &SuppressionTarget::Address("u-2@example.com".into()),
        SuppressionReason::Bounce,
        None,
        None,
    )
    .await
    .unwrap();
    e.set_preference(
        "other",
        "u-1",
        &PrefScope::Channel(Channel::Webhook),
        Some(false),
    )
    .await
    .unwrap();
    let reqs = vec![
        TriggerRequest::new("order-shipped", order("o1", "u-1")),
        TriggerRequest::new("order-shipped", order("o2", "u-2")),
        TriggerRequest::new("order-shipped", order("o3", "u-1")),
        TriggerRequest::new("order-shipped", order("o4", "u-1")),
        TriggerRequest::new("order-shipped", order("o5", "u-1")).tenant("other"),
    ];
    let outcomes = e.trigger_many(&reqs).await.unwrap();
    let got: Vec<(String, String, Option<String>)> = outcomes
        .iter()
        .flat_map(|o| o.notifications[0].deliveries.iter())
        .map(|d| (d.channel.clone(), d.status.clone(), d.status_reason.clone()))
        .collect();
    let s =
        |c: &str, st: &str, r: Option<&str>| (c.to_string(), st.to_string(), r.map(str::to_string));
    assert_eq!(
        got,
        [
            s("email", "pending", None),
            s("webhook", "pending", None),
            s("email", "suppressed", Some("address_suppressed")),
            s("webhook", "pending", None),
            s("email", "pending", None),
            s("webhook", "pending", None),
            // The cap of two counts the two planned earlier in the same batch.
            s("email", "pending", None),
            s("webhook", "suppressed", Some("cap_reached")),
            // Another tenant: its own preference, not the default tenant's cap.
            s("email", "pending", None),
            s("webhook", "suppressed", Some("channel_disabled")),
        ]
    );
}

async fn concurrent_triggers_for_one_recipient_never_exceed_a_cap(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    e.set_settings(
        "default",
        "u-1",
        &SettingsPatch {
            caps: vec![(Channel::Webhook, Some(Cap::new(2, 3600).unwrap()))],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // Eight callers at once; each must count what the others planned.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let e = e.clone();
        tasks.push(tokio::spawn(async move {
            trigger(
                &e,
                TriggerRequest::new("order-shipped", order(&format!("o{i}"), "u-1")),
            )
            .await
            .webhook
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        let id = t.await.unwrap();
        statuses.push(standing(e, &id).await);
    }
    let pending = statuses.iter().filter(|s| s.0 == "pending").count();
    let capped = statuses
        .iter()
        .filter(|s| s.1.as_deref() == Some("cap_reached"))
        .count();
    assert_eq!((pending, capped), (2, 6), "{statuses:?}");
}

/// Every rule at the send checkpoint: the delivery passed planning, then its input changed
/// while it waited; the worker suppresses (or defers) it without an attempt.
async fn every_rule_applies_again_at_send_time(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let t = "default";
    // (recipient, expected status, expected reason) once its input changed after planning
    let cases: Vec<(&str, &str, &str)> = vec![
        ("u-sup", "suppressed", "recipient_suppressed"),
        ("u-chan", "suppressed", "channel_disabled"),
        ("u-cat", "suppressed", "category_disabled"),
        ("u-notif", "suppressed", "notifier_disabled"),
        ("u-sev", "suppressed", "below_severity"),
        ("u-cool", "suppressed", "cooldown"),
        ("u-cap", "suppressed", "cap_reached"),
        ("u-quiet", "deferred", "quiet_hours"),
    ];
    // Plan everything first (all allowed), twice for the two rules that look at history.
    let mut planned = Vec::new();
    for (who, _, _) in &cases {
        if *who == "u-cool" || *who == "u-cap" {
            trigger(
                e,
                TriggerRequest::new("order-shipped", order(&format!("{who}-0"), who)),
            )
            .await;
        }
        let p = trigger(
            e,
            TriggerRequest::new("order-shipped", order(&format!("{who}-1"), who)),
        )
        .await;
        assert_eq!(standing(e, &p.webhook).await, is("pending", None), "{who}");
        planned.push(p);
    }
    // Then change each recipient's inputs.
    e.add_suppression(
        t,
        &SuppressionTarget::Recipient {
            id: "u-sup".into(),
            channel: Channel::Webhook,
        },
        SuppressionReason::Manual,
        None,
        None,
    )
    .await
    .unwrap();
    e.set_preference(
        t,
        "u-chan",
        &PrefScope::Channel(Channel::Webhook),
        Some(false),
    )
    .await
    .unwrap();
    e.set_preference(
        t,
        "u-cat",
        &PrefScope::Category("orders".into()),
        Some(false),
    )
    .await
    .unwrap();
    e.set_preference(
        t,
        "u-notif",
        &PrefScope::Notifier("order-shipped".into()),
        Some(false),
    )
    .await
    .unwrap();
    let patches = [
        (
            "u-sev",
            SettingsPatch {
                severity_floor: Some(Some(Severity::High)),
                ..Default::default()
            },
        ),
        (
            "u-cool",
            SettingsPatch {
                cooldowns: vec![("*".into(), Some(3600))],
                ..Default::default()
            },
        ),
        (
            "u-cap",
            SettingsPatch {
                caps: vec![(Channel::Webhook, Some(Cap::new(1, 3600).unwrap()))],
                ..Default::default()
            },
        ),
        (
            "u-quiet",
            SettingsPatch {
                quiet_hours: Some(Some((
                    (chrono::Utc::now().hour() as i64 * 60 + 1380) % 1440,
                    (chrono::Utc::now().hour() as i64 * 60 + 120) % 1440,
                ))),
                ..Default::default()
            },
        ),
    ];
    for (who, patch) in &patches {
        e.set_settings(t, who, patch).await.unwrap();
    }
    for ((who, status, reason), p) in cases.iter().zip(&planned) {
        e.dispatch_event(&p.event_id).await.unwrap();
        assert_eq!(
            standing(e, &p.webhook).await,
            is(status, Some(reason)),
            "{who}"
        );
        assert_eq!(attempts_for(e, &p.webhook).await, 0, "{who}: no attempt");
        let traces = policy_traces(e, &p.webhook).await;
        assert_eq!(traces.len(), 2, "{who}: {traces:?}");
        assert_eq!(traces[0].0, "allowed", "{who}");
        assert_eq!(traces[1].0, *reason, "{who}");
        assert!(traces[1].1.starts_with("send checkpoint:"), "{who}");
    }
    // None of them reached the receiver's webhook endpoint.
    assert_eq!(w.receiver.received().len(), 0);
}

/// `security-alert` (WIT 0.2.0) declares its notifications critical: they pass a disabled
/// channel and quiet hours, never a suppression; a trigger that names a severity decides it.
async fn a_notifier_declared_critical_bypasses_all_but_suppressions(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let alert = |id: &str| {
        json!({"user": {"id": "u-1", "email": "u-1@example.com", "phone": "+1 555 0100"},
               "what": format!("a new sign-in ({id})")})
    };
    e.set_preference(
        "default",
        "u-1",
        &PrefScope::Channel(Channel::Email),
        Some(false),
    )
    .await
    .unwrap();
    let minute = chrono::Utc::now().hour() as i64 * 60 + chrono::Utc::now().minute() as i64;
    e.set_settings(
        "default",
        "u-1",
        &SettingsPatch {
            quiet_hours: Some(Some(((minute + 1380) % 1440, (minute + 60) % 1440))),
            severity_floor: Some(Some(Severity::Normal)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    e.add_suppression(
        "default",
        &SuppressionTarget::Address("+1 (555) 0100".into()),
        SuppressionReason::Bounce,
        None,
        None,
    )
    .await
    .unwrap();
    let o = e
        .trigger(&TriggerRequest::new("security-alert", alert("1")))
        .await
        .unwrap();
    let ds = &o.notifications[0].deliveries;
    let by = |c: &str| ds.iter().find(|d| d.channel == c).unwrap().id.clone();
    let (email, sms) = (by("email"), by("sms"));
    assert_eq!(standing(e, &email).await, is("pending", None));
    assert_eq!(
        standing(e, &sms).await,
        is("suppressed", Some("address_suppressed"))
    );
    let x = serde_json::to_value(e.explain(&email).await.unwrap()).unwrap();
    let created = x["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["kind"] == "notification.created")
        .unwrap();
    assert!(
        created["detail"]
            .as_str()
            .unwrap()
            .contains("critical severity, the notifier's default"),
        "{created}"
    );
    assert!(
        policy_traces(e, &email).await[0]
            .1
            .contains("bypassed (critical)")
    );
    e.dispatch_event(&o.event_id).await.unwrap();
    assert_eq!(standing(e, &email).await, is("succeeded", None));
    assert!(
        policy_traces(e, &email).await[1]
            .1
            .starts_with("send checkpoint:")
    );

    // The trigger's own severity wins over the declared one: low is below the floor (with
    // the channel enabled again, since preferences come before the floor).
    e.set_preference("default", "u-1", &PrefScope::Channel(Channel::Email), None)
        .await
        .unwrap();
    let low = e
        .trigger(&TriggerRequest::new("security-alert", alert("2")).severity(Severity::Low))
        .await
        .unwrap();
    let email = &low.notifications[0].deliveries[0];
    assert_eq!(email.channel, "email");
    assert_eq!(
        standing(e, &email.id).await,
        is("suppressed", Some("below_severity"))
    );
}

/// `mention` puts a mentioned person marked urgent at critical for that recipient only.
async fn a_notifier_raises_the_severity_for_one_recipient(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    e.set_preference(
        "default",
        "*",
        &PrefScope::Category("activity".into()),
        Some(false),
    )
    .await
    .unwrap();
    let o = e
        .trigger(&TriggerRequest::new(
            "mention",
            json!({"author": "Ada", "document": "Q3 plan",
                   "mentioned": [{"id": "u-1"}, {"id": "u-2", "urgent": true}]}),
        ))
        .await
        .unwrap();
    let in_app = |i: usize| o.notifications[i].deliveries[0].id.clone();
    assert_eq!(o.notifications[0].recipient_id, "u-1");
    assert_eq!(
        standing(e, &in_app(0)).await,
        is("suppressed", Some("category_disabled"))
    );
    assert_eq!(standing(e, &in_app(1)).await, is("pending", None));
    let severity: String = sqlx::query_scalar("SELECT severity FROM notifications WHERE id = $1")
        .bind(&o.notifications[1].id)
        .fetch_one(e.db())
        .await
        .unwrap();
    assert_eq!(severity, "critical");
    let x = format!("{}", e.explain(&in_app(1)).await.unwrap());
    assert!(
        x.contains("critical severity, raised by the notifier for this recipient"),
        "{x}"
    );
}

/// `mention` sends its email only if the in-app item is still unread 15 minutes later.
async fn a_fallback_is_sent_only_if_the_in_app_item_stays_unread(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let payload = json!({"author": "Ada", "document": "Q3 plan",
        "url": "https://app.example.com/d/42",
        "mentioned": [{"id": "u-1", "email": "u-1@example.com"},
                      {"id": "u-2", "email": "u-2@example.com"}]});
    let dry = e
        .dry_run(&TriggerRequest::new("mention", payload.clone()))
        .await
        .unwrap();
    let would: Vec<(Channel, &str)> = dry.recipients[0]
        .channels
        .iter()
        .map(|c| (c.channel, c.would))
        .collect();
    assert_eq!(would, [(Channel::Email, "defer"), (Channel::InApp, "send")]);
    assert_eq!(
        dry.recipients[0].channels[0].wait_reason,
        Some("fallback_wait")
    );

    let before = chrono::Utc::now();
    let o = e
        .trigger(&TriggerRequest::new("mention", payload))
        .await
        .unwrap();
    let ids = |i: usize| {
        let ds = &o.notifications[i].deliveries;
        (ds[0].id.clone(), ds[1].id.clone())
    };
    let ((email1, in_app1), (email2, in_app2)) = (ids(0), ids(1));
    let d = e.delivery(&email1).await.unwrap().unwrap();
    assert_eq!(
        (d.status.as_str(), d.status_reason.as_deref()),
        ("deferred", Some("fallback_wait"))
    );
    assert!(
        d.status_detail
            .as_deref()
            .unwrap()
            .ends_with(&format!("unless in-app delivery {in_app1} is read by then")),
        "{:?}",
        d.status_detail
    );
    let run_at: String = sqlx::query_scalar("SELECT run_at FROM jobs WHERE subject_id = $1")
        .bind(&email1)
        .fetch_one(e.db())
        .await
        .unwrap();
    let run_at = belfry::host::store::parse_time(&run_at).unwrap();
    // Stored times are whole milliseconds: `before` may be up to 1 ms past the trigger's now.
    let wait = run_at - before + chrono::Duration::milliseconds(1);
    assert!(
        wait >= chrono::Duration::minutes(15) && wait < chrono::Duration::minutes(16),
        "the email waits 15 minutes, not {wait}"
    );

    // The in-app items land now; the emails are not due yet.
    e.dispatch_event(&o.event_id).await.unwrap();
    assert_eq!(standing(e, &in_app1).await, is("succeeded", None));
    assert_eq!(
        standing(e, &email1).await,
        is("deferred", Some("fallback_wait"))
    );

    // u-1 reads their item (reading twice keeps the first time); u-2 does not.
    let item = &e.inbox("default", "u-1").await.unwrap()[0];
    assert_eq!(item.delivery_id, in_app1);
    assert_eq!(item.read_at, None);
    let read = e.mark_read("default", "u-1", &item.id).await.unwrap();
    let again = e.mark_read("default", "u-1", &item.id).await.unwrap();
    assert!(read.read_at.is_some());
    assert_eq!(read.read_at, again.read_at);
    // Someone else's item, or another tenant's, reads as missing and changes nothing.
    for (tenant, who) in [("default", "u-2"), ("other", "u-1")] {
        let err = e.mark_read(tenant, who, &item.id).await.unwrap_err();
        assert!(
            matches!(err, belfry::host::inbox::InboxError::NotFound { .. }),
            "{err}"
        );
    }
    assert_eq!(e.inbox("default", "u-2").await.unwrap()[0].read_at, None);

    // Fifteen minutes later (the jobs made due): u-1's email is dropped, u-2's is sent.
    sqlx::query("UPDATE jobs SET run_at = $1 WHERE subject_id IN ($2, $3)")
        .bind(belfry::host::store::time_text(chrono::Utc::now()))
        .bind(&email1)
        .bind(&email2)
        .execute(e.db())
        .await
        .unwrap();
    e.dispatch_event(&o.event_id).await.unwrap();
    assert_eq!(
        standing(e, &email1).await,
        is("suppressed", Some("already_read"))
    );
    assert_eq!(
        attempts_for(e, &email1).await,
        0,
        "the adapter was not called"
    );
    assert_eq!(standing(e, &email2).await, is("succeeded", None));
    assert_eq!(attempts_for(e, &email2).await, 1);

    let traces = policy_traces(e, &email1).await;
    assert_eq!(traces[1].0, "already_read");
    assert!(
        traces[1].1.starts_with(&format!(
            "send checkpoint: fallback [in-app delivery {in_app1} read at "
        )),
        "{}",
        traces[1].1
    );
    let traces = policy_traces(e, &email2).await;
    assert!(
        traces[1].1.contains(&format!(
            "fallback [in-app delivery {in_app2} not read] → pass"
        )),
        "{}",
        traces[1].1
    );
    // The read itself is part of the in-app delivery's story.
    let x = format!("{}", e.explain(&in_app1).await.unwrap());
    assert!(x.contains("inbox.read"), "{x}");
}

/// No in-app item is coming when the in-app delivery is suppressed, so the fallback does not
/// wait for one.
async fn a_fallback_goes_at_once_when_the_in_app_delivery_is_suppressed(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    e.set_preference(
        "default",
        "u-1",
        &PrefScope::Channel(Channel::InApp),
        Some(false),
    )
    .await
    .unwrap();
    let o = e
        .trigger(&TriggerRequest::new(
            "mention",
            json!({"author": "Ada", "document": "Q3 plan",
                   "mentioned": [{"id": "u-1", "email": "u-1@example.com"},
                                 {"id": "u-2", "email": "u-2@example.com"}]}),
        ))
        .await
        .unwrap();
    let ids = |i: usize| {
        let ds = &o.notifications[i].deliveries;
        (ds[0].id.clone(), ds[1].id.clone())
    };
    let ((email1, in_app1), (email2, _)) = (ids(0), ids(1));
    assert_eq!(
        standing(e, &in_app1).await,
        is("suppressed", Some("channel_disabled"))
    );
    assert_eq!(standing(e, &email1).await, is("pending", None));
    // u-2 still gets the in-app item first and the email as a fallback.
    assert_eq!(
        standing(e, &email2).await,
        is("deferred", Some("fallback_wait"))
    );
    let x = format!("{}", e.explain(&email1).await.unwrap());
    assert!(
        x.contains("a fallback of in-app sent without waiting: the in-app delivery is suppressed"),
        "{x}"
    );
    e.dispatch_event(&o.event_id).await.unwrap();
    assert_eq!(standing(e, &email1).await, is("succeeded", None));
}

on_both_backends!(
    a_fallback_goes_at_once_when_the_in_app_delivery_is_suppressed,
    a_notifier_declared_critical_bypasses_all_but_suppressions,
    a_notifier_raises_the_severity_for_one_recipient,
    a_fallback_is_sent_only_if_the_in_app_item_stays_unread,
    every_rule_applies_again_at_send_time,
    concurrent_triggers_for_one_recipient_never_exceed_a_cap,
    a_bulk_trigger_reads_each_recipients_policy_and_counts_its_own_batch,
    preference_disabled_at_plan_time_suppresses_without_a_job,
    recipient_setting_overrides_tenant_default_and_tenants_are_isolated,
    a_preference_changed_after_planning_suppresses_at_send_time,
    severity_floor_suppresses_and_critical_bypasses_all_but_suppressions,
    suppressions_by_address_and_recipient_expire_and_can_be_removed,
    cooldown_drops_repeats_of_a_notifier_to_a_recipient,
    cap_counts_sent_and_in_flight_deliveries_on_a_channel,
    quiet_hours_defer_to_the_window_end_and_are_rechecked_when_due,
    invalid_settings_are_rejected_naming_the_field_and_nothing_is_written,
    dry_run_says_what_would_happen_and_writes_nothing,
);
