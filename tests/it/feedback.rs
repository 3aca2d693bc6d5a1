//! What providers say after the send, on SQLite and PostgreSQL, through the real `resend` and
//! `twilio` adapter plugins.
//!
//! Resend and Twilio cannot be reached from here, so each test runs a small server on
//! 127.0.0.1 that speaks the provider's documented API shape (Resend's `POST /emails`,
//! Twilio's `POST /2010-04-01/Accounts/{sid}/Messages.json`), and signs callbacks the way the
//! provider does: Resend's Svix (Standard Webhooks) headers, computed with the
//! `standardwebhooks` crate rather than our own code, and Twilio's `X-Twilio-Signature`
//! (HMAC-SHA1 over the URL and the sorted form parameters).

use crate::common::provider::{Answer, Provider};
use crate::common::{Backend, World, count, world_with};
use axum::http::Method;
use base64::Engine as _;
use belfry::host::content::Channel;
use belfry::host::feedback::{FeedbackError, FeedbackKind, WebhookRejection, WebhookRequest};
use belfry::{Engine, TriggerRequest};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const TENANT: &str = "acme";
const RESEND_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
const TWILIO_SID: &str = "AC0123456789abcdef0123456789abcdef";
const TWILIO_TOKEN: &str = "twilio-auth-token-for-tests";

struct Fixture {
    w: World,
    resend: Provider,
    twilio: Provider,
}

impl Fixture {
    fn engine(&self) -> &Engine {
        &self.w.engine
    }
}

/// An engine whose email goes through `resend` and SMS through `twilio`, each pointed at its
/// local provider server (and allowed to reach it, by the operator's `allow_http`).
async fn fixture(b: Backend) -> Fixture {
    fixture_at(b, None).await
}

async fn fixture_at(b: Backend, public_url: Option<String>) -> Fixture {
    let resend = Provider::issuing_ids("id", "re_").await;
    let twilio = Provider::issuing_ids("sid", "SM").await;
    let (resend_port, twilio_port) = (resend.port(), twilio.port());
    let w = world_with(b, |c| {
        c.routes = BTreeMap::from([
            (Channel::Email, "resend".to_string()),
            (Channel::Sms, "twilio".to_string()),
        ]);
        c.plugin_config.insert(
            "resend".into(),
            BTreeMap::from([
                ("api_key".into(), "re_test_key".into()),
                ("from".into(), "Acme <no-reply@acme.test>".into()),
                ("api_base".into(), format!("http://127.0.0.1:{resend_port}")),
                ("allow_http".into(), format!("127.0.0.1:{resend_port}")),
                ("webhook_secret".into(), RESEND_SECRET.into()),
            ]),
        );
        c.plugin_config.insert(
            "twilio".into(),
            BTreeMap::from([
                ("account_sid".into(), TWILIO_SID.into()),
                ("auth_token".into(), TWILIO_TOKEN.into()),
                ("from".into(), "+15005550006".into()),
                ("api_base".into(), format!("http://127.0.0.1:{twilio_port}")),
                ("allow_http".into(), format!("127.0.0.1:{twilio_port}")),
            ]),
        );
        c.public_url = public_url;
        // Lifecycle webhook endpoints in these tests listen on 127.0.0.1.
        c.endpoints.allow_networks = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    Fixture { w, resend, twilio }
}

fn order(order_id: &str, customer: &str) -> Value {
    json!({
        "order_id": order_id,
        "carrier": "DHL",
        "tracking_url": format!("https://track.example.com/{order_id}"),
        "customers": [
            {"id": customer, "name": "Zoe", "email": format!("{customer}@example.com"), "phone": "+15555550100"}
        ]
    })
}

/// Triggers and dispatches an order for `customer`; returns its (email, sms) deliveries.
async fn ship(f: &Fixture, order_id: &str, customer: &str) -> (Value, Value) {
    let out = f
        .engine()
        .trigger(&TriggerRequest::new("order-shipped", order(order_id, customer)).tenant(TENANT))
        .await
        .unwrap();
    f.engine().dispatch_event(&out.event_id).await.unwrap();
    let after = serde_json::to_value(f.engine().event(&out.event_id).await.unwrap()).unwrap();
    let pick = |channel: &str| {
        after["notifications"][0]["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["channel"] == channel)
            .unwrap_or_else(|| panic!("no {channel} delivery in {after}"))
            .clone()
    };
    (pick("email"), pick("sms"))
}

/// A Resend webhook as Resend sends it: Svix headers over the raw body, signed `secs_ago`.
fn resend_hook(event_id: &str, secs_ago: i64, body: &Value) -> WebhookRequest {
    resend_hook_signed(event_id, secs_ago, body, RESEND_SECRET)
}

fn resend_hook_signed(event_id: &str, secs_ago: i64, body: &Value, secret: &str) -> WebhookRequest {
    let raw = serde_json::to_vec(body).unwrap();
    let ts = chrono::Utc::now().timestamp() - secs_ago;
    let signature = standardwebhooks::Webhook::new(secret)
        .unwrap()
        .sign(event_id, ts, &raw)
        .unwrap();
    WebhookRequest {
        method: "POST".into(),
        url: format!("https://belfry.example.com/v1/webhooks/{TENANT}/resend"),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("svix-id".into(), event_id.into()),
            ("svix-timestamp".into(), ts.to_string()),
            ("svix-signature".into(), signature),
        ],
        body: raw,
        received_at: chrono::Utc::now(),
    }
}

fn resend_event(kind: &str, email_id: &str, at: &str, extra: Value) -> Value {
    let mut data = json!({"email_id": email_id, "created_at": at, "to": ["zoe@example.com"]});
    if let (Some(d), Some(e)) = (data.as_object_mut(), extra.as_object()) {
        d.extend(e.clone());
    }
    json!({"type": kind, "created_at": at, "data": data})
}

/// Twilio's request signature: HMAC-SHA1 with the auth token over the URL followed by every
/// POST parameter, sorted by name, as name then value; base64.
fn twilio_signature(token: &str, url: &str, params: &[(&str, &str)]) -> String {
    let mut sorted = params.to_vec();
    sorted.sort();
    let mut data = url.to_string();
    for (k, v) in sorted {
        data.push_str(k);
        data.push_str(v);
    }
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(token.as_bytes()).unwrap();
    mac.update(data.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn twilio_hook(url: &str, params: &[(&str, &str)], signature: &str) -> WebhookRequest {
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
            ("x-twilio-signature".into(), signature.into()),
        ],
        body: body.into_bytes(),
        received_at: chrono::Utc::now(),
    }
}

async fn ledger_rows(e: &Engine) -> (i64, i64) {
    (
        count(e, "webhook_receipts").await,
        count(e, "feedback_events").await,
    )
}

fn rejection(r: Result<belfry::host::feedback::Received, FeedbackError>) -> WebhookRejection {
    match r {
        Err(FeedbackError::Rejected { rejection, .. }) => rejection,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// Resend: the send carries the provider's request shape; its webhooks are verified (good,
/// bad, expired, replayed), deduplicated, and projected whatever order they come in; a bounce
/// after "delivered" latches, suppresses the address, and is explained.
async fn resend_sends_and_its_webhooks_fold_into_the_delivery(b: Backend) {
    let f = fixture(b).await;
    let e = f.engine();
    let (email, sms) = ship(&f, "A-1", "zoe").await;
    assert_eq!(email["status"], "succeeded", "{email}");
    assert!(
        email["sent_by"]
            .as_str()
            .unwrap()
            .starts_with("resend@0.1.0#")
    );
    let message_id = email["provider_message_id"].as_str().unwrap().to_string();
    assert_eq!(message_id, "re_1");
    assert_eq!(sms["status"], "succeeded", "{sms}");
    assert!(
        sms["sent_by"]
            .as_str()
            .unwrap()
            .starts_with("twilio@0.1.0#")
    );

    // Resend's request: bearer key, the delivery's idempotency key, the JSON body.
    let seen = f.resend.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].path, "/emails");
    assert_eq!(seen[0].headers["authorization"], "Bearer re_test_key");
    assert_eq!(
        seen[0].headers["idempotency-key"].to_str().unwrap(),
        email["idempotency_key"].as_str().unwrap()
    );
    let sent: Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(sent["from"], "Acme <no-reply@acme.test>");
    assert_eq!(sent["to"], json!(["zoe@example.com"]));
    assert!(sent["subject"].as_str().unwrap().contains("A-1"), "{sent}");

    // A wrong secret, an expired timestamp, a missing signature: refused, nothing stored.
    let before = ledger_rows(e).await;
    let delivered = resend_event(
        "email.delivered",
        &message_id,
        "2026-12-02T10:00:05.000Z",
        json!({}),
    );
    let bad = resend_hook_signed(
        "msg_1",
        0,
        &delivered,
        "whsec_b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldA==",
    );
    assert!(matches!(
        rejection(e.receive_webhook(TENANT, "resend", bad).await),
        WebhookRejection::Unauthorized(_)
    ));
    let expired = resend_hook("msg_1", 6 * 60, &delivered);
    assert!(matches!(
        rejection(e.receive_webhook(TENANT, "resend", expired).await),
        WebhookRejection::Unauthorized(_)
    ));
    let mut unsigned = resend_hook("msg_1", 0, &delivered);
    unsigned.headers.retain(|(n, _)| n != "svix-signature");
    assert!(matches!(
        rejection(e.receive_webhook(TENANT, "resend", unsigned).await),
        WebhookRejection::Unauthorized(_)
    ));
    // Signed correctly but tampered with after signing.
    let mut tampered = resend_hook("msg_1", 0, &delivered);
    tampered.body = serde_json::to_vec(&resend_event(
        "email.complained",
        &message_id,
        "2026-12-02T10:00:05.000Z",
        json!({}),
    ))
    .unwrap();
    assert!(matches!(
        rejection(e.receive_webhook(TENANT, "resend", tampered).await),
        WebhookRejection::Unauthorized(_)
    ));
    assert_eq!(
        ledger_rows(e).await,
        before,
        "a refused webhook stores nothing"
    );

    // Opened arrives before delivered (providers do not promise order).
    let opened = resend_event(
        "email.opened",
        &message_id,
        "2026-12-02T10:03:00.000Z",
        json!({}),
    );
    let got = e
        .receive_webhook(TENANT, "resend", resend_hook("msg_2", 0, &opened))
        .await
        .unwrap();
    assert_eq!(got.events.len(), 1);
    assert_eq!(got.events[0].kind, FeedbackKind::Opened);
    assert_eq!(
        got.events[0].delivery_id.as_deref(),
        Some(email["id"].as_str().unwrap())
    );
    let got = e
        .receive_webhook(TENANT, "resend", resend_hook("msg_1", 0, &delivered))
        .await
        .unwrap();
    assert!(!got.events[0].duplicate);
    let (p, _) = e
        .delivery_feedback(TENANT, email["id"].as_str().unwrap())
        .await
        .unwrap();
    let p = p.expect("a projection");
    assert_eq!(p.status, FeedbackKind::Opened);
    assert_eq!(
        p.last_event,
        FeedbackKind::Opened,
        "by the provider's time, not arrival"
    );
    assert_eq!(
        p.first_delivered_at.as_deref(),
        Some("2026-12-02T10:00:05.000Z")
    );
    assert_eq!(
        p.first_opened_at.as_deref(),
        Some("2026-12-02T10:03:00.000Z")
    );
    assert_eq!(p.terminal, None);

    // Resend retries the delivered event (same svix-id): nothing new is written.
    let rows = count(e, "feedback_events").await;
    let again = e
        .receive_webhook(TENANT, "resend", resend_hook("msg_1", 0, &delivered))
        .await
        .unwrap();
    assert!(again.events[0].duplicate);
    assert_eq!(count(e, "feedback_events").await, rows);

    // A hard bounce after delivered wins; a late second "delivered" does not undo it.
    let bounced = resend_event(
        "email.bounced",
        &message_id,
        "2026-12-02T10:05:00.000Z",
        json!({"bounce": {"type": "Permanent", "subType": "General", "message": "mailbox does not exist"}}),
    );
    e.receive_webhook(TENANT, "resend", resend_hook("msg_3", 0, &bounced))
        .await
        .unwrap();
    let late = resend_event(
        "email.delivered",
        &message_id,
        "2026-12-02T10:06:00.000Z",
        json!({}),
    );
    e.receive_webhook(TENANT, "resend", resend_hook("msg_4", 0, &late))
        .await
        .unwrap();
    let (p, events) = e
        .delivery_feedback(TENANT, email["id"].as_str().unwrap())
        .await
        .unwrap();
    let p = p.unwrap();
    assert_eq!(p.status, FeedbackKind::BouncedHard);
    assert_eq!(p.terminal, Some(FeedbackKind::BouncedHard));
    assert_eq!(p.terminal_at.as_deref(), Some("2026-12-02T10:05:00.000Z"));
    assert_eq!(p.last_event, FeedbackKind::Delivered);
    assert_eq!(
        p.first_delivered_at.as_deref(),
        Some("2026-12-02T10:00:05.000Z"),
        "set once"
    );
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            FeedbackKind::Delivered,
            FeedbackKind::Opened,
            FeedbackKind::BouncedHard,
            FeedbackKind::Delivered
        ]
    );

    // The bounce suppressed the address, and the delivery's explanation says so.
    let suppressions = e.suppressions(TENANT, false).await.unwrap();
    let s = suppressions
        .iter()
        .find(|s| s.describe().contains("zoe@example.com"))
        .unwrap_or_else(|| panic!("no suppression of the address in {suppressions:?}"));
    assert_eq!(s.reason, "bounce");
    let explained = e.explain(email["id"].as_str().unwrap()).await.unwrap();
    let timeline: Vec<(String, Option<String>)> = explained
        .timeline
        .iter()
        .filter(|t| t.delivery_id.as_deref() == email["id"].as_str())
        .map(|t| (t.kind.clone(), t.reason.clone()))
        .collect();
    assert!(
        timeline.contains(&("feedback.received".into(), Some("bounced_hard".into()))),
        "{timeline:?}"
    );
    assert!(
        timeline.contains(&("suppression.added".into(), Some("bounce".into()))),
        "{timeline:?}"
    );

    // The next email to that address is suppressed before any send; the SMS still goes.
    let (email2, sms2) = ship(&f, "A-2", "zoe").await;
    assert_eq!(email2["status"], "suppressed", "{email2}");
    assert_eq!(email2["status_reason"], "address_suppressed");
    assert_eq!(sms2["status"], "succeeded");
    assert_eq!(
        f.resend.requests().len(),
        1,
        "no second request reached Resend"
    );

    // Another tenant's webhook cannot touch acme's delivery (a tenant belfry knows: one it
    // does not is refused outright, see tests/it/identifiers.rs).
    e.ensure_tenant("globex").await.unwrap();
    let other = e
        .receive_webhook("globex", "resend", resend_hook("msg_5", 0, &bounced))
        .await
        .unwrap();
    assert_eq!(other.events[0].delivery_id, None);
    assert_eq!(e.feedback_orphans("globex").await.unwrap().len(), 1);
}

/// A webhook can beat the send's own commit: the event waits as an orphan and the attempt
/// that records the message id claims it.
async fn an_orphan_event_is_reconciled_when_the_send_commits(b: Backend) {
    let f = fixture(b).await;
    let e = f.engine();
    // The tenant is known (it has a key) before any of its events exist.
    e.ensure_tenant(TENANT).await.unwrap();
    let early = resend_event(
        "email.delivered",
        "re_early",
        "2026-12-02T10:00:05.000Z",
        json!({}),
    );
    let got = e
        .receive_webhook(TENANT, "resend", resend_hook("msg_early", 0, &early))
        .await
        .unwrap();
    assert_eq!(got.events[0].delivery_id, None);
    let orphans = e.feedback_orphans(TENANT).await.unwrap();
    assert_eq!(orphans.len(), 1);
    assert_eq!(orphans[0].provider_message_id, "re_early");

    f.resend.then(Answer::json(200, json!({"id": "re_early"})));
    let (email, _) = ship(&f, "B-1", "amy").await;
    assert_eq!(email["provider_message_id"], "re_early");
    assert!(e.feedback_orphans(TENANT).await.unwrap().is_empty());
    let (p, events) = e
        .delivery_feedback(TENANT, email["id"].as_str().unwrap())
        .await
        .unwrap();
    assert_eq!(p.unwrap().status, FeedbackKind::Delivered);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].delivery_id.as_deref(), email["id"].as_str());
    let explained = e.explain(email["id"].as_str().unwrap()).await.unwrap();
    assert!(
        explained
            .timeline
            .iter()
            .any(|t| t.kind == "feedback.received" && t.reason.as_deref() == Some("delivered")),
        "{:?}",
        explained.timeline
    );
}

/// A stored webhook request can be processed again: repeats write nothing, an event that was
/// lost is recorded; old raw requests are purged while their events stay.
async fn a_stored_webhook_is_replayed_and_old_ones_are_purged(b: Backend) {
    let f = fixture(b).await;
    let e = f.engine();
    let (email, _) = ship(&f, "C-1", "zoe").await;
    let message_id = email["provider_message_id"].as_str().unwrap();
    let clicked = resend_event(
        "email.clicked",
        message_id,
        "2026-12-02T11:00:00.000Z",
        json!({"click": {"link": "https://track.example.com/C-1"}}),
    );
    // Received 40 days ago (and signed then): the engine takes the receive time it is given.
    let mut hook = resend_hook("msg_c", 40 * 86_400, &clicked);
    hook.received_at = chrono::Utc::now() - chrono::Duration::days(40);
    let got = e.receive_webhook(TENANT, "resend", hook).await.unwrap();
    // Replayed now, long after the signature's timestamp left its 5-minute tolerance: it is
    // checked against the time the request was received, so it still verifies.
    let replayed = e.replay_webhook(&got.receipt_id).await.unwrap();
    assert!(
        replayed.events.iter().all(|ev| ev.duplicate),
        "{replayed:?}"
    );
    assert_eq!(count(e, "feedback_events").await, 1);

    // Lose the event (as if the ledger had been restored from an older backup): replay
    // records it again from the raw request.
    sqlx::query("DELETE FROM feedback_events")
        .execute(e.db())
        .await
        .unwrap();
    let replayed = e.replay_webhook(&got.receipt_id).await.unwrap();
    assert_eq!(replayed.events.len(), 1);
    assert!(!replayed.events[0].duplicate);
    assert_eq!(replayed.events[0].kind, FeedbackKind::Clicked);
    assert_eq!(
        replayed.events[0].delivery_id.as_deref(),
        email["id"].as_str()
    );
    assert!(matches!(
        e.replay_webhook("no-such-receipt").await,
        Err(FeedbackError::ReceiptNotFound(_))
    ));

    // The receipt is now older than 30 days: purged; the event read from it stays.
    assert_eq!(e.purge_webhook_receipts(30).await.unwrap(), 1);
    assert_eq!(count(e, "webhook_receipts").await, 0);
    assert_eq!(count(e, "feedback_events").await, 1);
}

/// Twilio: the Messages API request, then status callbacks verified by `X-Twilio-Signature`;
/// a recipient's STOP (error 21610) unsubscribes the number.
async fn twilio_sends_and_its_status_callbacks_are_verified(b: Backend) {
    let f = fixture(b).await;
    let e = f.engine();
    let (_, sms) = ship(&f, "D-1", "zoe").await;
    let sid = sms["provider_message_id"].as_str().unwrap().to_string();
    let seen = f.twilio.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        seen[0].path,
        format!("/2010-04-01/Accounts/{TWILIO_SID}/Messages.json")
    );
    let basic =
        base64::engine::general_purpose::STANDARD.encode(format!("{TWILIO_SID}:{TWILIO_TOKEN}"));
    assert_eq!(
        seen[0].headers["authorization"].to_str().unwrap(),
        format!("Basic {basic}")
    );
    let form: BTreeMap<String, String> =
        form_urlencoded::parse(&seen[0].body).into_owned().collect();
    assert_eq!(form["To"], "+15555550100");
    assert_eq!(form["From"], "+15005550006");
    assert!(form["Body"].contains("D-1"), "{form:?}");

    let url = format!("https://belfry.example.com/v1/webhooks/{TENANT}/twilio");
    let delivered = [
        ("MessageSid", sid.as_str()),
        ("MessageStatus", "delivered"),
        ("AccountSid", TWILIO_SID),
    ];
    // Bad signatures: over another URL, with another token, none at all.
    let before = ledger_rows(e).await;
    for signature in [
        twilio_signature(
            TWILIO_TOKEN,
            "https://elsewhere.example.com/hook",
            &delivered,
        ),
        twilio_signature("another-token", &url, &delivered),
        String::new(),
    ] {
        let r = e
            .receive_webhook(TENANT, "twilio", twilio_hook(&url, &delivered, &signature))
            .await;
        assert!(matches!(rejection(r), WebhookRejection::Unauthorized(_)));
    }
    assert_eq!(ledger_rows(e).await, before);

    let ok = twilio_signature(TWILIO_TOKEN, &url, &delivered);
    let got = e
        .receive_webhook(TENANT, "twilio", twilio_hook(&url, &delivered, &ok))
        .await
        .unwrap();
    assert_eq!(got.events[0].kind, FeedbackKind::Delivered);
    // A replayed callback (same request again) writes nothing new.
    let again = e
        .receive_webhook(TENANT, "twilio", twilio_hook(&url, &delivered, &ok))
        .await
        .unwrap();
    assert!(again.events[0].duplicate);

    let stop = [
        ("MessageSid", sid.as_str()),
        ("MessageStatus", "undelivered"),
        ("ErrorCode", "21610"),
        ("AccountSid", TWILIO_SID),
    ];
    let signature = twilio_signature(TWILIO_TOKEN, &url, &stop);
    let got = e
        .receive_webhook(TENANT, "twilio", twilio_hook(&url, &stop, &signature))
        .await
        .unwrap();
    assert_eq!(got.events[0].kind, FeedbackKind::Unsubscribed);
    let suppressions = e.suppressions(TENANT, false).await.unwrap();
    assert!(
        suppressions
            .iter()
            .any(|s| s.describe().contains("+15555550100") && s.reason == "unsubscribe"),
        "{suppressions:?}"
    );
    let (_, sms2) = ship(&f, "D-2", "zoe").await;
    assert_eq!(sms2["status"], "suppressed");
    assert_eq!(f.twilio.requests().len(), 1);
}

/// How the adapters map provider errors: Resend's 429 asks for a retry after its
/// Retry-After, a 422 fails for good with Resend's message; Twilio's 400 too.
async fn provider_errors_map_to_retry_semantics(b: Backend) {
    let f = fixture(b).await;
    f.resend.then(Answer::json(
        422,
        json!({"statusCode": 422, "name": "validation_error", "message": "Invalid `to` field"}),
    ));
    f.twilio.then(Answer::json(
        400,
        json!({"code": 21211, "message": "The 'To' number is not a valid phone number.", "status": 400}),
    ));
    let (email, sms) = ship(&f, "E-1", "zoe").await;
    assert_eq!(email["status"], "failed", "{email}");
    assert!(
        email["status_detail"]
            .as_str()
            .unwrap()
            .contains("Invalid `to` field"),
        "{email}"
    );
    assert_eq!(sms["status"], "failed", "{sms}");
    assert!(
        sms["status_detail"].as_str().unwrap().contains("21211"),
        "{sms}"
    );

    f.resend.then(Answer::json(429, json!({"statusCode": 429, "name": "rate_limit_exceeded", "message": "Too many requests"})).header("retry-after", "7"));
    f.twilio
        .then(Answer::json(503, json!({"message": "unavailable"})));
    // Both wait for another attempt: Resend's after the 7 s its Retry-After asked for.
    let (email, sms) = ship(&f, "E-2", "zoe").await;
    assert_eq!(email["status"], "pending", "{email}");
    assert_eq!(email["status_reason"], "send_rate_limited", "{email}");
    assert!(
        email["status_detail"]
            .as_str()
            .unwrap()
            .contains("retry after 7000 ms"),
        "{email}"
    );
    assert_eq!(sms["status"], "pending", "{sms}");
    assert_eq!(sms["status_reason"], "send_transient", "{sms}");
}

/// Over `belfry serve`: the webhook route (no API key; the signature is the authentication,
/// over the raw body, refusals store nothing, 413 before the adapter runs), Twilio's signature
/// over the URL the provider called, and the one-click unsubscribe link every email carries.
async fn webhooks_and_one_click_unsubscribe_over_http(b: Backend) {
    // The public URL must be known before the engine opens (emails carry it), so the port
    // is chosen first.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let base = format!("http://127.0.0.1:{port}");
    let f = fixture_at(b, Some(base.clone())).await;
    let e = f.engine();
    let server = belfry::serve::start(
        e.clone(),
        belfry::serve::ServeConfig {
            listen: format!("127.0.0.1:{port}").parse().unwrap(),
            workers: None,
            max_body_bytes: 64 << 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()
        .unwrap();
    let (email, sms) = ship(&f, "H-1", "zoe").await;

    // The email went out with RFC 8058's two headers, pointing at this server.
    let sent: Value = serde_json::from_slice(&f.resend.requests()[0].body).unwrap();
    assert_eq!(
        sent["headers"]["List-Unsubscribe-Post"],
        "List-Unsubscribe=One-Click"
    );
    let link = sent["headers"]["List-Unsubscribe"].as_str().unwrap();
    let link = link
        .trim_start_matches('<')
        .trim_end_matches('>')
        .to_string();
    assert!(
        link.starts_with(&format!("{base}/v1/unsubscribe/")),
        "{link}"
    );

    let post_hook = |path: String, headers: Vec<(String, String)>, body: Vec<u8>| {
        let mut r = http.post(format!("{base}{path}"));
        for (k, v) in headers {
            r = r.header(k, v);
        }
        r.body(body).send()
    };
    let message_id = email["provider_message_id"].as_str().unwrap();
    let delivered = resend_event(
        "email.delivered",
        message_id,
        "2026-12-02T10:00:05.000Z",
        json!({}),
    );
    let hook = resend_hook("msg_h1", 0, &delivered);
    let before = ledger_rows(e).await;
    // Refused: a signature from another secret (401), an unknown adapter (404), a body over
    // the limit (413); the JSON error shape each time, and nothing stored.
    let bad = resend_hook_signed(
        "msg_h1",
        0,
        &delivered,
        "whsec_b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldA==",
    );
    let res = post_hook(
        format!("/v1/webhooks/{TENANT}/resend"),
        bad.headers,
        bad.body,
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 401);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["code"], "unauthorized", "{err}");
    let res = post_hook(
        format!("/v1/webhooks/{TENANT}/mailgun"),
        hook.headers.clone(),
        hook.body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 404);
    let big = resend_hook(
        "msg_big",
        0,
        &json!({"type": "email.delivered", "pad": "x".repeat(80 << 10)}),
    );
    let res = post_hook(
        format!("/v1/webhooks/{TENANT}/resend"),
        big.headers,
        big.body,
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(ledger_rows(e).await, before);

    let res = post_hook(
        format!("/v1/webhooks/{TENANT}/resend"),
        hook.headers.clone(),
        hook.body.clone(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    let got: Value = res.json().await.unwrap();
    assert_eq!(got["events"][0]["kind"], "delivered", "{got}");
    assert_eq!(got["events"][0]["delivery_id"], email["id"]);
    // The provider retries after a lost answer: 200 again, nothing new.
    let res = post_hook(
        format!("/v1/webhooks/{TENANT}/resend"),
        hook.headers,
        hook.body,
    )
    .await
    .unwrap();
    let again: Value = res.json().await.unwrap();
    assert_eq!(again["events"][0]["duplicate"], true);

    // Twilio signs the URL it called: this server's own, as the Host header gives it.
    let sid = sms["provider_message_id"].as_str().unwrap();
    let params = [("MessageSid", sid), ("MessageStatus", "delivered")];
    let url = format!("{base}/v1/webhooks/{TENANT}/twilio");
    let signed = twilio_hook(
        &url,
        &params,
        &twilio_signature(TWILIO_TOKEN, &url, &params),
    );
    let res = post_hook(
        format!("/v1/webhooks/{TENANT}/twilio"),
        signed.headers,
        signed.body,
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());

    // The delivery's feedback over the API.
    let (_, key) = e.create_key(Some(TENANT), "test").await.unwrap();
    let fb: Value = http
        .get(format!(
            "{base}/v1/deliveries/{}/feedback",
            email["id"].as_str().unwrap()
        ))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(fb["projection"]["status"], "delivered", "{fb}");

    // Opening the link shows a page and changes nothing (scanners follow links).
    let page = http.get(&link).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.text().await.unwrap().contains("method=\"post\""));
    assert!(e.preferences(TENANT, "zoe").await.unwrap().is_empty());
    // A forged token is refused.
    let (payload, _) = link.rsplit_once('.').unwrap();
    let forged = http
        .post(format!("{payload}.AAAA"))
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 400);
    // The one-click POST, as a mail client sends it.
    let res = http
        .post(&link)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let done: Value = res.json().await.unwrap();
    assert_eq!(done["changed"], true, "{done}");
    assert_eq!(done["category"], "orders");
    let prefs = serde_json::to_value(e.preferences(TENANT, "zoe").await.unwrap()).unwrap();
    assert_eq!(prefs[0]["scope"], "category", "{prefs}");
    assert_eq!(prefs[0]["target"], "orders", "{prefs}");
    assert_eq!(prefs[0]["enabled"], false, "{prefs}");
    let again: Value = http
        .post(&link)
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["changed"], false);
    let explained = e.explain(email["id"].as_str().unwrap()).await.unwrap();
    assert_eq!(
        explained
            .timeline
            .iter()
            .filter(|t| t.kind == "recipient.unsubscribed")
            .count(),
        1,
        "{:?}",
        explained.timeline
    );
    // Orders no longer reach zoe on any channel.
    let (email2, sms2) = ship(&f, "H-2", "zoe").await;
    assert_eq!(email2["status"], "suppressed", "{email2}");
    assert_eq!(sms2["status"], "suppressed", "{sms2}");
    server.shutdown().await.unwrap();
}

/// What providers report goes on to the application's endpoints as lifecycle events, once per
/// new ledger event (a provider's repeat publishes nothing), with the suppression it caused.
async fn provider_feedback_reaches_lifecycle_endpoints(b: Backend) {
    let f = fixture(b).await;
    let e = f.engine();
    let hook = Provider::start(Answer::status(204, "")).await;
    let url = format!("http://{}/hook", hook.authority());
    let endpoint = e
        .add_endpoint(
            TENANT,
            &url,
            &["delivery.delivered, delivery.opened, delivery.bounced, suppression.added".into()],
            None,
        )
        .await
        .unwrap();

    let (email, _) = ship(&f, "L-1", "lea").await;
    let message_id = email["provider_message_id"].as_str().unwrap().to_string();
    for (id, kind, extra) in [
        ("msg_l1", "email.delivered", json!({})),
        ("msg_l2", "email.opened", json!({})),
        (
            "msg_l3",
            "email.bounced",
            json!({"bounce": {"type": "Permanent", "subType": "General", "message": "no mailbox"}}),
        ),
    ] {
        let body = resend_event(kind, &message_id, "2026-12-02T10:00:05.000Z", extra);
        e.receive_webhook(TENANT, "resend", resend_hook(id, 0, &body))
            .await
            .unwrap();
    }
    // The provider repeats one: nothing new is published.
    let again = resend_event(
        "email.opened",
        &message_id,
        "2026-12-02T10:00:05.000Z",
        json!({}),
    );
    e.receive_webhook(TENANT, "resend", resend_hook("msg_l2", 0, &again))
        .await
        .unwrap();
    e.dispatch_pending().await.unwrap();

    let got: Vec<Value> = hook
        .requests()
        .iter()
        .map(|r| {
            assert_eq!((&r.method, r.path.as_str()), (&Method::POST, "/hook"));
            standardwebhooks::Webhook::new(&endpoint.secret)
                .unwrap()
                .verify(&r.body, &r.headers)
                .unwrap();
            r.json()
        })
        .collect();
    let mut types: Vec<&str> = got.iter().map(|v| v["type"].as_str().unwrap()).collect();
    types.sort();
    assert_eq!(
        types,
        [
            "delivery.bounced",
            "delivery.delivered",
            "delivery.opened",
            "suppression.added"
        ],
        "{got:?}"
    );
    // Each new event is also a signal to the recipient's waiting workflows, naming the
    // delivery (the provider's repeat signals nothing).
    let signals: Vec<(String, String, String)> =
        sqlx::query_as("SELECT name, actor, payload FROM signals ORDER BY id")
            .fetch_all(e.db())
            .await
            .unwrap();
    let names: Vec<&str> = signals.iter().map(|(n, _, _)| n.as_str()).collect();
    assert_eq!(
        names,
        ["delivery.delivered", "delivery.opened", "delivery.bounced"],
        "{signals:?}"
    );
    for (_, actor, payload) in &signals {
        assert_eq!(actor, "lea");
        let payload: Value = serde_json::from_str(payload).unwrap();
        assert_eq!(payload["delivery_id"], email["id"], "{payload}");
    }
    let bounced = got
        .iter()
        .find(|v| v["type"] == "delivery.bounced")
        .unwrap();
    assert_eq!(bounced["data"]["bounce"], "hard");
    assert_eq!(bounced["data"]["source"], "provider");
    assert_eq!(bounced["data"]["delivery_id"], email["id"]);
    assert_eq!(bounced["data"]["channel"], "email");
}

on_both_backends!(
    provider_feedback_reaches_lifecycle_endpoints,
    webhooks_and_one_click_unsubscribe_over_http,
    resend_sends_and_its_webhooks_fold_into_the_delivery,
    an_orphan_event_is_reconciled_when_the_send_commits,
    a_stored_webhook_is_replayed_and_old_ones_are_purged,
    twilio_sends_and_its_status_callbacks_are_verified,
    provider_errors_map_to_retry_semantics,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_adapter_is_named() {
    let f = fixture(Backend::Sqlite).await;
    let r = f
        .engine()
        .receive_webhook(TENANT, "mailgun", resend_hook("x", 0, &json!({})))
        .await;
    assert!(matches!(r, Err(FeedbackError::UnknownAdapter(n)) if n == "mailgun"));
}
