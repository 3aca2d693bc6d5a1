//! The whole lifecycle on a real SQLite file with the real bundled plugins, sending over
//! real HTTP to a receiver on 127.0.0.1 that verifies signatures with `standardwebhooks`.

use crate::common::{Backend, count, world};
use belfry::TriggerRequest;
use belfry::receiver::Answer;
use serde_json::json;

fn order(order_id: &str) -> serde_json::Value {
    json!({
        "order_id": order_id,
        "carrier": "DHL",
        "tracking_url": format!("https://track.example.com/{order_id}"),
        "customers": [
            {"id": "zoe", "name": "Zoe", "email": "zoe@example.com", "phone": "+15555550100"},
            {"id": "amy", "name": "Amy", "email": "amy@example.com"},
            {"id": "zoe", "name": "Zoe again", "email": "zoe@example.com"}
        ]
    })
}

async fn a_trigger_is_planned_rendered_sent_and_recorded(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let outcome = e
        .trigger(&TriggerRequest::new("order-shipped", order("A-1")).idempotency_key("k1"))
        .await
        .unwrap();
    assert!(!outcome.duplicate);
    // Recipients deduplicated by id and sorted.
    let ids: Vec<_> = outcome
        .notifications
        .iter()
        .map(|n| n.recipient_id.as_str())
        .collect();
    assert_eq!(ids, ["amy", "zoe"]);
    // Channels per recipient: zoe has a phone, amy has not.
    let channels = |i: usize| -> Vec<String> {
        outcome.notifications[i]
            .deliveries
            .iter()
            .map(|d| d.channel.clone())
            .collect()
    };
    assert_eq!(channels(0), ["email", "webhook"]);
    assert_eq!(channels(1), ["email", "sms", "webhook"]);
    assert!(
        outcome
            .notifications
            .iter()
            .flat_map(|n| &n.deliveries)
            .all(|d| d.status == "pending")
    );

    let dispatched = e.dispatch_event(&outcome.event_id).await.unwrap();
    assert_eq!(dispatched.len(), 5);
    let after = e.event(&outcome.event_id).await.unwrap();
    for d in after.notifications.iter().flat_map(|n| &n.deliveries) {
        assert_eq!(d.status, "succeeded", "{d:?}");
        assert_eq!(d.attempts, 1);
        assert!(d.planned_by.starts_with("order-shipped@0.1.0#"));
        assert!(
            d.rendered_by
                .as_deref()
                .unwrap()
                .starts_with("templates@0.1.0#")
        );
        let adapter = if d.channel == "webhook" {
            "webhook@0.1.0#"
        } else {
            "log@0.1.0#"
        };
        assert!(d.sent_by.as_deref().unwrap().starts_with(adapter), "{d:?}");
        assert!(d.provider_message_id.is_some());
    }
    assert_eq!(count(e, "attempts").await, 5);

    // The receiver got both webhooks, signed, with the delivery's idempotency key as id.
    let received = w.receiver.received();
    assert_eq!(received.len(), 2);
    assert!(received.iter().all(|r| r.verified));
    let webhook_deliveries: Vec<_> = after
        .notifications
        .iter()
        .flat_map(|n| &n.deliveries)
        .filter(|d| d.channel == "webhook")
        .collect();
    for d in &webhook_deliveries {
        assert!(
            received
                .iter()
                .any(|r| r.webhook_id.as_deref() == Some(d.idempotency_key.as_str()))
        );
        assert_eq!(d.idempotency_key, format!("belfry-{}", d.id));
        assert!(
            d.provider_message_id
                .as_deref()
                .unwrap()
                .starts_with("rcv-")
        );
    }
    let body = &received[0].body;
    assert_eq!(body["data"]["order_id"], "A-1");
    assert_eq!(body["tenant"], "default");
}

async fn a_repeated_idempotency_key_returns_the_original_and_writes_nothing(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let first = e
        .trigger(&TriggerRequest::new("order-shipped", order("B-1")).idempotency_key("same"))
        .await
        .unwrap();
    let tables = ["events", "notifications", "deliveries", "traces"];
    let mut before = Vec::new();
    for t in tables {
        before.push(count(e, t).await);
    }
    // Even with a different payload: the key decides.
    let again = e
        .trigger(&TriggerRequest::new("order-shipped", order("B-2")).idempotency_key("same"))
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.event_id, first.event_id);
    let ids = |o: &belfry::TriggerOutcome| -> Vec<String> {
        o.notifications
            .iter()
            .flat_map(|n| n.deliveries.iter().map(|d| d.id.clone()))
            .collect()
    };
    assert_eq!(ids(&again), ids(&first));
    for (t, b) in tables.iter().zip(before) {
        assert_eq!(count(e, t).await, b, "{t} changed");
    }
    // The same key in another tenant is another event.
    let other = e
        .trigger(
            &TriggerRequest::new("order-shipped", order("B-1"))
                .idempotency_key("same")
                .tenant("acme"),
        )
        .await
        .unwrap();
    assert!(!other.duplicate);
    assert_ne!(other.event_id, first.event_id);
}

async fn concurrent_triggers_with_one_key_make_one_event(b: Backend) {
    let w = world(b).await;
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let e = w.engine.clone();
        tasks.push(tokio::spawn(async move {
            e.trigger(&TriggerRequest::new("order-shipped", order("C-1")).idempotency_key("race"))
                .await
                .unwrap()
        }));
    }
    let mut event_ids = Vec::new();
    let mut originals = 0;
    for t in tasks {
        let o = t.await.unwrap();
        if !o.duplicate {
            originals += 1;
        }
        event_ids.push(o.event_id);
    }
    assert_eq!(originals, 1);
    event_ids.dedup();
    assert_eq!(event_ids.len(), 1);
    assert_eq!(count(&w.engine, "events").await, 1);
}

async fn invalid_content_fails_the_delivery_naming_the_field_and_never_reaches_an_adapter(
    b: Backend,
) {
    let w = world(b).await;
    let e = &w.engine;
    let o = e
        .trigger(&TriggerRequest::new(
            "order-shipped",
            json!({"order_id": "X\r\nBcc: all@example.com", "carrier": "UPS",
                   "tracking_url": "https://t.example.com/x",
                   "customer": {"id": "kim", "email": "kim@example.com"}}),
        ))
        .await
        .unwrap();
    e.dispatch_event(&o.event_id).await.unwrap();
    let o = e.event(&o.event_id).await.unwrap();
    let ds = &o.notifications[0].deliveries;
    let email = ds.iter().find(|d| d.channel == "email").unwrap();
    assert_eq!(email.status, "failed");
    assert_eq!(email.status_reason.as_deref(), Some("content_invalid"));
    assert!(
        email
            .status_detail
            .as_deref()
            .unwrap()
            .starts_with("email.subject"),
        "{email:?}"
    );
    assert_eq!(email.attempts, 0);
    assert!(email.sent_by.is_none());
    let attempts: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM attempts WHERE delivery_id = $1")
        .bind(&email.id)
        .fetch_one(e.db())
        .await
        .unwrap();
    assert_eq!(attempts, 0);
    // The sibling webhook delivery is unaffected.
    let hook = ds.iter().find(|d| d.channel == "webhook").unwrap();
    assert_eq!(hook.status, "succeeded");
}

async fn in_app_content_lands_in_the_inbox(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let o = e
        .trigger(&TriggerRequest::new(
            "welcome",
            json!({"user": {"id": "u9", "name": "Nine"}}),
        ))
        .await
        .unwrap();
    // No e-mail address: only in-app.
    assert_eq!(o.notifications[0].deliveries.len(), 1);
    e.dispatch_event(&o.event_id).await.unwrap();
    let items = e.inbox("default", "u9").await.unwrap();
    assert_eq!(items.len(), 1);
    assert!(
        items[0].headline.contains("Nine") || items[0].body.contains("Nine"),
        "{:?}",
        items[0]
    );
    assert_eq!(items[0].delivery_id, o.notifications[0].deliveries[0].id);
    // Dispatching again changes nothing.
    assert!(e.dispatch_event(&o.event_id).await.unwrap().is_empty());
    assert_eq!(e.inbox("default", "u9").await.unwrap().len(), 1);
}

async fn bad_triggers_are_rejected_with_a_reason_and_store_nothing(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let err = e
        .trigger(&TriggerRequest::new("no-such-notifier", json!({})))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown notifier `no-such-notifier`"), "{err}");
    assert!(err.contains("welcome"), "lists the known ones: {err}");

    let err = e
        .trigger(&TriggerRequest::new(
            "welcome",
            json!({"user": {"email": "x@example.com"}}),
        ))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("invalid payload") && err.contains("user.id"),
        "{err}"
    );
    assert!(
        err.contains("welcome@0.1.0#"),
        "names the plugin build: {err}"
    );

    let err = e
        .trigger(&TriggerRequest::new("welcome", json!([1, 2])))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("JSON object"), "{err}");
    assert_eq!(count(e, "events").await, 0);
    assert_eq!(count(e, "traces").await, 0);
}

async fn adapter_outcomes_are_recorded_as_attempts(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    for (answer, reason, outcome) in [
        (Answer::Status(503), "send_transient", "transient"),
        (Answer::RateLimited(7), "send_rate_limited", "rate_limited"),
        (Answer::Status(400), "send_permanent", "permanent"),
    ] {
        w.receiver.answer_with(answer);
        let o = e
            .trigger(&TriggerRequest::new(
                "order-shipped",
                json!({"order_id": "R", "carrier": "c", "tracking_url": "https://t.example.com",
                       "customer": {"id": format!("r-{reason}")}}),
            ))
            .await
            .unwrap();
        let before = chrono::Utc::now();
        let ran = e.dispatch_event(&o.event_id).await.unwrap();
        let d = &e.event(&o.event_id).await.unwrap().notifications[0].deliveries[0];
        assert_eq!(d.channel, "webhook");
        assert_eq!(d.status_reason.as_deref(), Some(reason));
        if outcome == "permanent" {
            assert_eq!(d.status, "failed");
            assert_eq!(ran[0].retry_at, None);
        } else {
            // Transient and rate-limited outcomes wait for another try.
            assert_eq!(d.status, "pending");
            let at: chrono::DateTime<chrono::Utc> =
                ran[0].retry_at.as_deref().unwrap().parse().unwrap();
            let floor = if outcome == "rate_limited" { 7 } else { 16 };
            assert!(
                at >= before + chrono::Duration::seconds(floor),
                "{at} vs {before}"
            );
        }
        let x = e.explain(&d.id).await.unwrap();
        assert_eq!(x.attempts.len(), 1);
        assert_eq!(x.attempts[0].outcome, outcome);
        assert!(x.attempts[0].adapter.starts_with("webhook@0.1.0#"));
        if outcome == "rate_limited" {
            assert!(
                x.attempts[0].error.as_deref().unwrap().contains("7000 ms"),
                "{:?}",
                x.attempts[0]
            );
        }
    }
}

async fn explain_tells_the_story_in_order_with_plugin_versions(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let o = e
        .trigger(&TriggerRequest::new(
            "welcome",
            json!({"user": {"id": "ex", "name": "Ex", "email": "ex@example.com"}}),
        ))
        .await
        .unwrap();
    e.dispatch_event(&o.event_id).await.unwrap();
    let email = o.notifications[0]
        .deliveries
        .iter()
        .find(|d| d.channel == "email")
        .unwrap();
    let x = e.explain(&email.id).await.unwrap();
    let kinds: Vec<&str> = x.timeline.iter().map(|t| t.kind.as_str()).collect();
    assert_eq!(
        kinds,
        [
            "event.received",
            "recipients.planned",
            "notification.created",
            "delivery.planned",
            "policy.checked",
            "delivery.dispatched",
            "policy.checked",
            "delivery.built",
            "delivery.rendered",
            "content.valid",
            "attempt",
            "delivery.succeeded"
        ]
    );
    // Only this delivery's entries (the in-app sibling's are not in its story).
    assert!(x.timeline.iter().all(|t| t.delivery_id.is_none() || t.delivery_id.as_deref() == Some(email.id.as_str())));
    let by = |k: &str| {
        x.timeline
            .iter()
            .find(|t| t.kind == k)
            .unwrap()
            .plugin
            .clone()
            .unwrap()
    };
    assert!(by("delivery.built").starts_with("welcome@0.1.0#"));
    assert!(by("delivery.rendered").starts_with("templates@0.1.0#"));
    assert!(by("attempt").starts_with("log@0.1.0#"));
    let text = x.to_string();
    assert!(
        text.contains("delivery.succeeded") && text.contains("log@0.1.0#"),
        "{text}"
    );

    // The event's story has both deliveries; the notification's too.
    let ev = e.explain(&o.event_id).await.unwrap();
    assert_eq!(ev.deliveries.len(), 2);
    assert_eq!(
        ev.timeline
            .iter()
            .filter(|t| t.kind == "delivery.succeeded")
            .count(),
        2
    );
    let n = e.explain(&o.notifications[0].id).await.unwrap();
    assert_eq!(n.deliveries.len(), 2);
    assert!(
        e.explain("nope")
            .await
            .unwrap_err()
            .to_string()
            .contains("`nope`")
    );
}

async fn a_batch_of_triggers_is_written_all_or_nothing(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let welcome = |id: &str| json!({"user": {"id": id, "email": format!("{id}@example.com")}});
    let before = e
        .trigger(&TriggerRequest::new("welcome", welcome("old")).idempotency_key("seen"))
        .await
        .unwrap();

    // One bad request fails the batch, naming it, and nothing of the others is written.
    let events = count(e, "events").await;
    let bad = [
        TriggerRequest::new("welcome", welcome("a1")),
        TriggerRequest::new("welcome", json!({"user": {}})),
    ];
    let err = e.trigger_many(&bad).await.unwrap_err().to_string();
    assert!(
        err.starts_with("request 1 of the batch:") && err.contains("user.id"),
        "{err}"
    );
    assert_eq!(count(e, "events").await, events);
    assert_eq!(count(e, "jobs").await, 2, "only the first trigger's jobs");

    // Keys seen before, and keys repeated within the batch, come back as duplicates.
    let batch = [
        TriggerRequest::new("welcome", welcome("b1")).idempotency_key("k1"),
        TriggerRequest::new("welcome", welcome("b2")).idempotency_key("seen"),
        TriggerRequest::new("welcome", welcome("b3")).idempotency_key("k1"),
        TriggerRequest::new("welcome", welcome("b4")),
    ];
    let out = e.trigger_many(&batch).await.unwrap();
    let dup: Vec<bool> = out.iter().map(|o| o.duplicate).collect();
    assert_eq!(dup, [false, true, true, false]);
    assert_eq!(out[1].event_id, before.event_id);
    assert_eq!(out[2].event_id, out[0].event_id);
    assert_eq!(out[3].notifications[0].recipient_id, "b4");
    assert_eq!(count(e, "events").await, events + 2);
    assert_eq!(count(e, "jobs").await, 2 + 4);
    let sent = e.dispatch_pending().await.unwrap();
    assert_eq!(sent.len(), 6);
    assert!(sent.iter().all(|d| d.status == "succeeded"), "{sent:?}");
    let too_many = vec![TriggerRequest::new("welcome", welcome("x")); 1001];
    let err = e.trigger_many(&too_many).await.unwrap_err().to_string();
    assert!(err.contains("at most 1000"), "{err}");
}

on_both_backends!(
    a_trigger_is_planned_rendered_sent_and_recorded,
    a_repeated_idempotency_key_returns_the_original_and_writes_nothing,
    concurrent_triggers_with_one_key_make_one_event,
    invalid_content_fails_the_delivery_naming_the_field_and_never_reaches_an_adapter,
    in_app_content_lands_in_the_inbox,
    bad_triggers_are_rejected_with_a_reason_and_store_nothing,
    adapter_outcomes_are_recorded_as_attempts,
    explain_tells_the_story_in_order_with_plugin_versions,
    a_batch_of_triggers_is_written_all_or_nothing,
);
