//! Digest buckets on SQLite and PostgreSQL, with the bundled `comment` notifier (WIT 0.3.0:
//! in-app at once, email held for digest under the key `thread:<id>`), the `templates`
//! renderer's `digest` template and the `log` email adapter.
//!
//! Windows are real (an hour, aligned to the epoch). Where a test needs a window to have
//! ended, it moves the bucket's window end and its emission job into the past with SQL — the
//! same rows the clock would have reached — rather than waiting an hour; the window maths
//! itself is tested in `host/src/digests/window.rs`.

use crate::common;

use crate::common::{Backend, world};
use belfry::host::content::Channel;
use belfry::host::digests::{BucketFilter, Cadence, Emission, GroupBy, RuleSpec, Window};
use belfry::host::policy::{Cap, SettingsPatch, Severity};
use belfry::{Engine, TriggerRequest};
use chrono::Timelike;
use serde_json::json;

fn comment(thread: &str, author: &str, text: &str, followers: &[&str]) -> serde_json::Value {
    json!({
        "thread": {"id": thread, "title": format!("Thread {thread}")},
        "author": {"name": author},
        "text": text,
        "followers": followers.iter()
            .map(|id| json!({"id": id, "email": format!("{id}@example.com")}))
            .collect::<Vec<_>>(),
    })
}

fn rule(key: &str) -> RuleSpec {
    RuleSpec {
        key: key.into(),
        version: 1,
        channel: Channel::Email,
        notifier_key: Some("comment".into()),
        category: None,
        digest_key: None,
        group_by: GroupBy::DigestKey,
        window: Window::fixed(60).unwrap(),
        max_items: None,
        first_now: false,
    }
}

/// Triggers a comment and returns (in-app delivery id, email delivery id) of `follower`.
async fn post(e: &Engine, req: TriggerRequest, follower: &str) -> (String, String) {
    let o = e.trigger(&req).await.unwrap();
    let n = o
        .notifications
        .iter()
        .find(|n| n.recipient_id == follower)
        .unwrap();
    let id = |c: &str| {
        n.deliveries
            .iter()
            .find(|d| d.channel == c)
            .unwrap()
            .id
            .clone()
    };
    (id("in-app"), id("email"))
}

async fn standing(e: &Engine, id: &str) -> (String, Option<String>) {
    let d = e.delivery(id).await.unwrap().unwrap();
    (d.status, d.status_reason)
}

fn is(status: &str, reason: Option<&str>) -> (String, Option<String>) {
    (status.to_string(), reason.map(str::to_string))
}

async fn bucket_of(e: &Engine, delivery: &str) -> String {
    sqlx::query_scalar::<_, String>("SELECT digest_bucket_id FROM deliveries WHERE id = $1")
        .bind(delivery)
        .fetch_one(e.db())
        .await
        .unwrap()
}

/// Moves a bucket's window end, and its emission job, to a second ago: as if the hour passed.
async fn end_window(e: &Engine, bucket: &str) {
    let past = belfry::host::store::time_text(chrono::Utc::now() - chrono::Duration::seconds(1));
    sqlx::query("UPDATE digest_buckets SET window_end = $1 WHERE id = $2")
        .bind(&past)
        .bind(bucket)
        .execute(e.db())
        .await
        .unwrap();
    sqlx::query("UPDATE jobs SET run_at = $1 WHERE kind = 'digest_emit' AND subject_id = $2")
        .bind(&past)
        .bind(bucket)
        .execute(e.db())
        .await
        .unwrap();
}

async fn digests_of(e: &Engine, bucket: &str) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM deliveries WHERE digest_of = $1")
        .bind(bucket)
        .fetch_one(e.db())
        .await
        .unwrap()
}

async fn content_of(e: &Engine, delivery: &str) -> serde_json::Value {
    let text: String = sqlx::query_scalar("SELECT content FROM deliveries WHERE id = $1")
        .bind(delivery)
        .fetch_one(e.db())
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

fn kinds(x: &belfry::host::explain::Explanation) -> Vec<(String, Option<String>)> {
    x.timeline
        .iter()
        .map(|t| (t.kind.clone(), t.reason.clone()))
        .collect()
}

async fn held_deliveries_collapse_into_one_digest_per_group(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    e.upsert_digest_rule("default", &rule("threads-hourly"))
        .await
        .unwrap();
    // A dry run says where each channel would go, and writes nothing.
    let plan = e
        .dry_run(&TriggerRequest::new(
            "comment",
            comment("42", "Ada", "c", &["u1"]),
        ))
        .await
        .unwrap();
    let channels = &plan.recipients[0].channels;
    let email = channels
        .iter()
        .find(|c| c.channel == Channel::Email)
        .unwrap();
    assert_eq!(email.would, "hold");
    let said = email.digest.as_deref().unwrap();
    assert!(
        said.starts_with("held for digest by rule threads-hourly v1 until"),
        "{said}"
    );
    let in_app = channels
        .iter()
        .find(|c| c.channel == Channel::InApp)
        .unwrap();
    assert_eq!((in_app.would, in_app.digest.as_deref()), ("send", None));
    assert_eq!(common::count(e, "digest_buckets").await, 0);
    let mut thread_42 = Vec::new();
    for (i, author) in ["Ada", "Grace", "Alan", "Edsger"].iter().enumerate() {
        let req = TriggerRequest::new("comment", comment("42", author, &format!("c{i}"), &["u1"]));
        thread_42.push(post(e, req, "u1").await);
    }
    let (_, other) = post(
        e,
        TriggerRequest::new("comment", comment("7", "Ada", "hi", &["u1"])),
        "u1",
    )
    .await;
    // In-app goes at once; every email is held, in one bucket per thread.
    for (_, email) in &thread_42 {
        assert_eq!(
            standing(e, email).await,
            is("held", Some("held_for_digest"))
        );
    }
    let bucket = bucket_of(e, &thread_42[0].1).await;
    for (_, email) in &thread_42 {
        assert_eq!(bucket_of(e, email).await, bucket);
    }
    let other_bucket = bucket_of(e, &other).await;
    assert_ne!(other_bucket, bucket, "thread 7 groups apart from thread 42");
    let b42 = e.digest_bucket("default", &bucket).await.unwrap();
    assert_eq!(
        (b42.status.as_str(), b42.items, b42.group_value.as_str()),
        ("open", 4, "thread:42")
    );
    let sent = e.dispatch_pending().await.unwrap();
    assert_eq!(sent.len(), 5, "the five in-app deliveries, nothing else");
    assert!(sent.iter().all(|d| d.status == "succeeded"));

    // Emitting early says not due and changes nothing.
    let early = e.emit_digest("default", &bucket).await.unwrap();
    assert!(matches!(early, Emission::NotDue { .. }), "{early:?}");
    assert_eq!(e.digest_bucket("default", &bucket).await.unwrap(), b42);
    assert_eq!(digests_of(e, &bucket).await, 0);

    // A held delivery can be cancelled: it leaves its open bucket.
    let (_, dropped) = post(
        e,
        TriggerRequest::new("comment", comment("42", "Linus", "never mind", &["u1"])),
        "u1",
    )
    .await;
    assert_eq!(e.digest_bucket("default", &bucket).await.unwrap().items, 5);
    e.cancel(&dropped, "the comment was deleted").await.unwrap();
    assert_eq!(
        standing(e, &dropped).await,
        is("cancelled", Some("cancelled_by_request"))
    );
    assert_eq!(e.digest_bucket("default", &bucket).await.unwrap(), b42);
    let sent = e.dispatch_pending().await.unwrap();
    assert_eq!(sent.len(), 1, "its in-app delivery only: {sent:?}");

    // The window ends: its job emits the bucket and the digest is sent in the same run.
    end_window(e, &bucket).await;
    let sent = e.dispatch_pending().await.unwrap();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].status, "succeeded");
    let digest_id = sent[0].delivery_id.clone();
    let b42 = e.digest_bucket("default", &bucket).await.unwrap();
    assert_eq!(
        (
            b42.status.as_str(),
            b42.closed_by.as_deref(),
            b42.digest_delivery_id.as_deref()
        ),
        ("emitted", Some("window_end"), Some(digest_id.as_str()))
    );
    for (_, email) in &thread_42 {
        assert_eq!(standing(e, email).await, is("digested", Some("digested")));
    }
    assert_eq!(
        standing(e, &other).await,
        is("held", Some("held_for_digest")),
        "thread 7's window has not ended"
    );
    // The renderer made the digest from the items: the count, the oldest three and the
    // newest one after them, each summarised by its own rendered subject.
    let content = content_of(e, &digest_id).await;
    let subject = content["subject"].as_str().unwrap();
    assert!(subject.contains('4'), "{subject}");
    let text = content["text"].as_str().unwrap();
    for who in ["Ada", "Grace", "Alan", "Edsger"] {
        assert!(
            text.contains(&format!("{who} commented on Thread 42")),
            "{who} missing from {text}"
        );
    }
    assert!(!text.contains("Thread 7"), "{text}");

    // Emitting again returns the same digest delivery.
    let again = e.emit_digest("default", &bucket).await.unwrap();
    assert_eq!(
        again,
        Emission::AlreadyEmitted {
            bucket_id: bucket.clone(),
            status: "emitted".into(),
            digest_delivery_id: Some(digest_id.clone()),
        }
    );
    assert_eq!(digests_of(e, &bucket).await, 1);
    // Once digested, a member cannot be cancelled.
    let err = e.cancel(&thread_42[0].1, "too late").await.unwrap_err();
    assert!(err.to_string().contains("is digested"), "{err}");

    // Both sides explain themselves.
    let member = e.explain(&thread_42[0].1).await.unwrap();
    let k = kinds(&member);
    assert!(k.contains(&("delivery.held".into(), Some("held_for_digest".into()))));
    assert!(k.contains(&("delivery.digested".into(), Some("digested".into()))));
    let digest = e.explain(&digest_id).await.unwrap();
    let emitted = digest
        .timeline
        .iter()
        .find(|t| t.kind == "digest.emitted")
        .unwrap();
    let detail = emitted.detail.as_deref().unwrap();
    assert!(
        detail.contains("4 item(s)") && detail.contains("threads-hourly v1"),
        "{detail}"
    );
    assert!(
        digest
            .timeline
            .iter()
            .any(|t| t.kind == "delivery.succeeded"),
        "{:?}",
        kinds(&digest)
    );
}

async fn concurrent_emissions_emit_exactly_once(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    e.upsert_digest_rule("default", &rule("threads-hourly"))
        .await
        .unwrap();
    let mut emails = Vec::new();
    for i in 0..5 {
        let req = TriggerRequest::new("comment", comment("9", "Ada", &format!("c{i}"), &["u1"]));
        emails.push(post(e, req, "u1").await.1);
    }
    let bucket = bucket_of(e, &emails[0]).await;
    end_window(e, &bucket).await;
    // Eight explicit emissions and two engines' worker runs race for the same bucket.
    let second = belfry::Engine::open(common::config_for(&w.db.url, &w.receiver.url()))
        .await
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let e = e.clone();
        let bucket = bucket.clone();
        tasks.spawn(async move { Some(e.emit_digest("default", &bucket).await.unwrap()) });
    }
    for engine in [e.clone(), second.clone()] {
        tasks.spawn(async move {
            engine.dispatch_pending().await.unwrap();
            None
        });
    }
    let mut emitted = Vec::new();
    let mut already = Vec::new();
    while let Some(r) = tasks.join_next().await {
        match r.unwrap() {
            Some(Emission::Emitted {
                digest_delivery_id, ..
            }) => emitted.push(digest_delivery_id),
            Some(Emission::AlreadyEmitted {
                digest_delivery_id, ..
            }) => already.push(digest_delivery_id.unwrap()),
            Some(other) => panic!("{other:?}"),
            None => {}
        }
    }
    e.dispatch_pending().await.unwrap();
    assert_eq!(digests_of(e, &bucket).await, 1, "one digest delivery");
    let digest = e
        .digest_bucket("default", &bucket)
        .await
        .unwrap()
        .digest_delivery_id
        .unwrap();
    assert!(emitted.len() <= 1, "{emitted:?}");
    assert!(
        emitted.iter().chain(&already).all(|d| *d == digest),
        "every emission names the same digest"
    );
    assert_eq!(standing(e, &digest).await, is("succeeded", None));
    let jobs: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM jobs")
        .fetch_one(e.db())
        .await
        .unwrap();
    assert_eq!(jobs, 0, "no emission or delivery job left behind");
    for email in &emails {
        assert_eq!(standing(e, email).await, is("digested", Some("digested")));
    }
}

async fn max_items_closes_the_bucket_early(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    e.upsert_digest_rule(
        "default",
        &RuleSpec {
            max_items: Some(3),
            ..rule("threads-3")
        },
    )
    .await
    .unwrap();
    let mut emails = Vec::new();
    for i in 0..4 {
        let req = TriggerRequest::new("comment", comment("5", "Ada", &format!("c{i}"), &["u1"]));
        emails.push(post(e, req, "u1").await.1);
    }
    let first = bucket_of(e, &emails[0]).await;
    let b1 = e.digest_bucket("default", &first).await.unwrap();
    assert_eq!(
        (b1.status.as_str(), b1.closed_by.as_deref(), b1.items),
        ("emitted", Some("max_items"), 3),
        "the third item filled the bucket and emitted it in its trigger"
    );
    for email in &emails[..3] {
        assert_eq!(standing(e, email).await, is("digested", Some("digested")));
    }
    // The fourth opened the next bucket of the same window.
    let next = bucket_of(e, &emails[3]).await;
    assert_ne!(next, first);
    let b2 = e.digest_bucket("default", &next).await.unwrap();
    assert_eq!(
        (b2.status.as_str(), b2.items, b2.window_start.as_str()),
        ("open", 1, b1.window_start.as_str())
    );
    let sent = e.dispatch_pending().await.unwrap();
    let digest = b1.digest_delivery_id.unwrap();
    assert!(
        sent.iter()
            .any(|d| d.delivery_id == digest && d.status == "succeeded"),
        "{sent:?}"
    );
    let jobs: Vec<String> =
        sqlx::query_scalar("SELECT subject_id FROM jobs WHERE kind = 'digest_emit'")
            .fetch_all(e.db())
            .await
            .unwrap();
    assert_eq!(jobs, [next], "the full bucket's window job went with it");
}

async fn first_now_sends_the_first_item_and_digests_the_rest(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    e.upsert_digest_rule(
        "default",
        &RuleSpec {
            first_now: true,
            ..rule("threads-first-now")
        },
    )
    .await
    .unwrap();
    let mut emails = Vec::new();
    for i in 0..3 {
        let req = TriggerRequest::new("comment", comment("3", "Ada", &format!("c{i}"), &["u1"]));
        emails.push(post(e, req, "u1").await.1);
    }
    assert_eq!(standing(e, &emails[0]).await, is("pending", None));
    let x = e.explain(&emails[0]).await.unwrap();
    assert!(kinds(&x).contains(&("delivery.held".into(), Some("digest_first_now".into()))));
    for email in &emails[1..] {
        assert_eq!(
            standing(e, email).await,
            is("held", Some("held_for_digest"))
        );
    }
    let bucket = bucket_of(e, &emails[1]).await;
    let b1 = e.digest_bucket("default", &bucket).await.unwrap();
    assert_eq!(b1.items, 2);
    assert_eq!(b1.first_delivery_id.as_deref(), Some(emails[0].as_str()));
    end_window(e, &bucket).await;
    let sent = e.dispatch_pending().await.unwrap();
    // Three in-app, the first email, and a digest of the other two.
    assert_eq!(sent.len(), 5, "{sent:?}");
    let digest = e
        .digest_bucket("default", &bucket)
        .await
        .unwrap()
        .digest_delivery_id
        .unwrap();
    let text = content_of(e, &digest).await["text"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.contains('2'), "{text}");

    // A window whose only item went out at once closes empty: nothing more is sent.
    let (_, lone) = post(
        e,
        TriggerRequest::new("comment", comment("4", "Ada", "solo", &["u1"])),
        "u1",
    )
    .await;
    assert_eq!(standing(e, &lone).await, is("pending", None));
    let lone_bucket = bucket_of(e, &lone).await;
    end_window(e, &lone_bucket).await;
    e.dispatch_pending().await.unwrap();
    let lb = e.digest_bucket("default", &lone_bucket).await.unwrap();
    assert_eq!((lb.status.as_str(), lb.digest_delivery_id), ("empty", None));
    assert_eq!(digests_of(e, &lone_bucket).await, 0);
}

async fn a_held_delivery_with_no_rule_is_sent_on_its_own(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    // A rule for another notifier takes nothing of `comment`.
    e.upsert_digest_rule(
        "default",
        &RuleSpec {
            notifier_key: Some("mention".into()),
            ..rule("mentions")
        },
    )
    .await
    .unwrap();
    let (_, email) = post(
        e,
        TriggerRequest::new("comment", comment("1", "Ada", "hi", &["u1"])),
        "u1",
    )
    .await;
    assert_eq!(
        standing(e, &email).await,
        is("pending", Some("no_digest_rule"))
    );
    let plan = e
        .dry_run(&TriggerRequest::new(
            "comment",
            comment("1", "Ada", "hi", &["u1"]),
        ))
        .await
        .unwrap();
    let c = &plan.recipients[0].channels;
    let dry = c.iter().find(|c| c.channel == Channel::Email).unwrap();
    assert_eq!(dry.would, "send");
    assert!(dry.digest.as_deref().unwrap().contains("no_digest_rule"));
    let d = e.delivery(&email).await.unwrap().unwrap();
    let detail = d.status_detail.unwrap();
    assert!(
        detail.contains("no digest rule") && detail.contains("digest key thread:1"),
        "{detail}"
    );
    let sent = e.dispatch_pending().await.unwrap();
    assert!(
        sent.iter()
            .any(|s| s.delivery_id == email && s.status == "succeeded")
    );
    assert_eq!(common::count(e, "digest_buckets").await, 0);
    let x = e.explain(&email).await.unwrap();
    assert!(kinds(&x).contains(&("delivery.held".into(), Some("no_digest_rule".into()))));
}

async fn critical_notifications_are_never_held(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    e.upsert_digest_rule("default", &rule("threads-hourly"))
        .await
        .unwrap();
    let (_, email) = post(
        e,
        TriggerRequest::new("comment", comment("1", "Ada", "urgent", &["u1"]))
            .severity(Severity::Critical),
        "u1",
    )
    .await;
    assert_eq!(standing(e, &email).await, is("pending", None));
    assert_eq!(common::count(e, "digest_buckets").await, 0);
}

async fn quiet_hours_fold_into_the_digest_when_the_notifier_allows(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    // A digest of in-app items: `comment` sends in-app at once, but lets a deferred one fold.
    e.upsert_digest_rule(
        "default",
        &RuleSpec {
            channel: Channel::InApp,
            group_by: GroupBy::Notifier,
            ..rule("in-app-hourly")
        },
    )
    .await
    .unwrap();
    let now = chrono::Utc::now();
    let m = (now.hour() * 60 + now.minute()) as i64;
    e.set_settings(
        "default",
        "u1",
        &SettingsPatch {
            time_zone: Some(Some("UTC".into())),
            quiet_hours: Some(Some(((m + 1440 - 60) % 1440, (m + 120) % 1440))),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (in_app, email) = post(
        e,
        TriggerRequest::new("comment", comment("8", "Ada", "late", &["u1"])),
        "u1",
    )
    .await;
    assert_eq!(
        standing(e, &in_app).await,
        is("held", Some("folded_into_digest"))
    );
    let d = e.delivery(&in_app).await.unwrap().unwrap();
    assert!(
        d.status_detail
            .as_deref()
            .unwrap()
            .contains("instead of: quiet_hours"),
        "{:?}",
        d.status_detail
    );
    // The email (held by the notifier, no email rule here) still goes on its own, deferred
    // by quiet hours like anything else.
    assert_eq!(
        standing(e, &email).await,
        is("deferred", Some("quiet_hours"))
    );
    // Without a matching rule nothing is folded: another recipient's tenant has none.
    let (in_app_t2, _) = post(
        e,
        TriggerRequest::new("comment", comment("8", "Ada", "late", &["u1"])).tenant("t2"),
        "u1",
    )
    .await;
    assert_eq!(standing(e, &in_app_t2).await, is("pending", None));
}

async fn a_capped_delivery_folds_into_the_digest_instead_of_being_dropped(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    e.upsert_digest_rule(
        "default",
        &RuleSpec {
            channel: Channel::InApp,
            group_by: GroupBy::Category,
            ..rule("in-app-hourly")
        },
    )
    .await
    .unwrap();
    e.set_settings(
        "default",
        "u1",
        &SettingsPatch {
            caps: vec![(Channel::InApp, Some(Cap::new(1, 3600).unwrap()))],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (first, _) = post(
        e,
        TriggerRequest::new("comment", comment("2", "Ada", "one", &["u1"])),
        "u1",
    )
    .await;
    assert_eq!(standing(e, &first).await, is("pending", None));
    // The cap of one in-app item an hour is reached: the second folds into the digest.
    let (second, _) = post(
        e,
        TriggerRequest::new("comment", comment("2", "Grace", "two", &["u1"])),
        "u1",
    )
    .await;
    assert_eq!(
        standing(e, &second).await,
        is("held", Some("folded_into_digest"))
    );
    let detail = e
        .delivery(&second)
        .await
        .unwrap()
        .unwrap()
        .status_detail
        .unwrap();
    assert!(detail.contains("instead of: cap_reached"), "{detail}");
}

async fn buckets_are_tenant_scoped(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    e.upsert_digest_rule("default", &rule("threads-hourly"))
        .await
        .unwrap();
    let (_, email) = post(
        e,
        TriggerRequest::new("comment", comment("1", "Ada", "hi", &["u1"])),
        "u1",
    )
    .await;
    let bucket = bucket_of(e, &email).await;
    end_window(e, &bucket).await;
    // Another tenant can neither see nor emit it.
    assert!(e.digest_bucket("t2", &bucket).await.is_err());
    let err = e.emit_digest("t2", &bucket).await.unwrap_err();
    assert!(err.to_string().contains("no digest bucket"), "{err}");
    assert!(
        e.digest_buckets("t2", &BucketFilter::default(), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        e.digest_bucket("default", &bucket).await.unwrap().status,
        "open"
    );
    let listed = e
        .digest_buckets(
            "default",
            &BucketFilter {
                recipient_id: Some("u1".into()),
                status: Some("open".into()),
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, bucket);
}

async fn a_recipient_cadence_replaces_the_rule_window(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    e.upsert_digest_rule("default", &rule("threads-hourly"))
        .await
        .unwrap();
    e.set_settings(
        "default",
        "u1",
        &SettingsPatch {
            time_zone: Some(Some("Asia/Kolkata".into())),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let set = |r: &'static str, c: Cadence| {
        let e = e.clone();
        async move {
            e.set_digest_cadence("default", r, "activity", c)
                .await
                .unwrap()
        }
    };
    set("u1", Cadence::parse("daily", Some(9 * 60), None).unwrap()).await;
    set("u2", Cadence::Instant).await;
    set(
        "u3",
        Cadence::parse("weekly", Some(8 * 60), Some("mon")).unwrap(),
    )
    .await;
    // A cadence for another category changes nothing here.
    e.set_digest_cadence("default", "u4", "billing", Cadence::Instant)
        .await
        .unwrap();
    let req = TriggerRequest::new(
        "comment",
        comment("6", "Ada", "hi", &["u1", "u2", "u3", "u4"]),
    );
    let o = e.trigger(&req).await.unwrap();
    let now = chrono::Utc::now();
    let email = |r: &str| {
        o.notifications
            .iter()
            .find(|n| n.recipient_id == r)
            .unwrap()
            .deliveries
            .iter()
            .find(|d| d.channel == "email")
            .unwrap()
            .id
            .clone()
    };
    let window_of = async |r: &str| {
        let bucket = e
            .digest_bucket("default", &bucket_of(e, &email(r)).await)
            .await
            .unwrap();
        (
            belfry::host::store::parse_time(&bucket.window_start).unwrap(),
            belfry::host::store::parse_time(&bucket.window_end).unwrap(),
        )
    };
    // u1: daily from 09:00 in their own zone.
    let daily = Window::boundary(9 * 60, "Asia/Kolkata")
        .unwrap()
        .bucket_at(now);
    assert_eq!(window_of("u1").await, daily);
    // u2 chose instant: not held, and the trace says why.
    assert_eq!(standing(e, &email("u2")).await, is("pending", None));
    let x = e.explain(&email("u2")).await.unwrap();
    assert!(kinds(&x).contains(&("delivery.held".into(), Some("cadence_instant".into()))));
    // u3: weekly from Monday 08:00, UTC (no zone of their own).
    let (start, end) = window_of("u3").await;
    assert_eq!(end - start, chrono::Duration::days(7));
    assert_eq!(start.format("%a %H:%M").to_string(), "Mon 08:00");
    // u4: the rule's hourly window.
    let (start, end) = window_of("u4").await;
    assert_eq!(
        (end - start, start.minute()),
        (chrono::Duration::hours(1), 0)
    );
    let detail = e
        .delivery(&email("u1"))
        .await
        .unwrap()
        .unwrap()
        .status_detail
        .unwrap();
    assert!(detail.contains("the recipient's daily cadence"), "{detail}");

    // Listing, clearing, and what a bad cadence says.
    let listed = e.digest_cadences("default", "u3").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert!(
        e.clear_digest_cadence("default", "u2", "activity")
            .await
            .unwrap()
    );
    assert!(
        !e.clear_digest_cadence("default", "u2", "activity")
            .await
            .unwrap()
    );
    let (_, again) = post(
        e,
        TriggerRequest::new("comment", comment("6", "Ada", "again", &["u2"])),
        "u2",
    )
    .await;
    assert_eq!(
        standing(e, &again).await,
        is("held", Some("held_for_digest"))
    );
    for (kind, at, day, field) in [
        ("daily", None, None, "cadence.at"),
        ("weekly", Some(60), None, "cadence.day"),
        ("weekly", Some(60), Some("someday"), "cadence.day"),
        ("hourly", Some(60), None, "cadence.at"),
        ("daily", Some(1440), None, "cadence.at"),
        ("monthly", None, None, "cadence must be"),
    ] {
        let err = Cadence::parse(kind, at, day).unwrap_err().to_string();
        assert!(err.contains(field), "{kind}: {err}");
    }
}

/// An open bucket's digest goes out through the builds in force when the bucket opened, even
/// when a new version was loaded while it filled; a bucket opened afterwards uses the new one.
async fn an_open_bucket_is_pinned_to_the_builds_it_opened_with(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    e.upsert_digest_rule("default", &rule("threads"))
        .await
        .unwrap();
    let req = TriggerRequest::new("comment", comment("P", "Ada", "before", &["u1"]));
    let (_, held) = post(e, req, "u1").await;
    let first = bucket_of(e, &held).await;

    let log = belfry::BUNDLED.iter().find(|b| b.name == "log").unwrap();
    let v9 = log
        .manifest
        .replace("version = \"0.1.0\"", "version = \"0.9.0\"");
    e.load_plugin(log.wasm, &v9, "test").await.unwrap();

    end_window(e, &first).await;
    e.dispatch_pending().await.unwrap();
    let digest = e
        .digest_bucket("default", &first)
        .await
        .unwrap()
        .digest_delivery_id
        .unwrap();
    let d = e.delivery(&digest).await.unwrap().unwrap();
    assert_eq!(d.status, "succeeded");
    assert!(
        d.sent_by.as_deref().unwrap().starts_with("log@0.1.0"),
        "{:?}",
        d.sent_by
    );

    let req = TriggerRequest::new("comment", comment("P", "Ada", "after", &["u1"]));
    let (_, held) = post(e, req, "u1").await;
    let second = bucket_of(e, &held).await;
    assert_ne!(second, first);
    end_window(e, &second).await;
    e.dispatch_pending().await.unwrap();
    let digest = e
        .digest_bucket("default", &second)
        .await
        .unwrap()
        .digest_delivery_id
        .unwrap();
    let d = e.delivery(&digest).await.unwrap().unwrap();
    assert!(
        d.sent_by.as_deref().unwrap().starts_with("log@0.9.0"),
        "{:?}",
        d.sent_by
    );
}

on_both_backends!(
    an_open_bucket_is_pinned_to_the_builds_it_opened_with,
    a_recipient_cadence_replaces_the_rule_window,
    held_deliveries_collapse_into_one_digest_per_group,
    concurrent_emissions_emit_exactly_once,
    max_items_closes_the_bucket_early,
    first_now_sends_the_first_item_and_digests_the_rest,
    a_held_delivery_with_no_rule_is_sent_on_its_own,
    critical_notifications_are_never_held,
    quiet_hours_fold_into_the_digest_when_the_notifier_allows,
    a_capped_delivery_folds_into_the_digest_instead_of_being_dropped,
    buckets_are_tenant_scoped,
);
