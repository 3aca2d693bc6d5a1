//! One rule for every identifier and time, on both backends (issue 22): tenant names, idempotency
//! keys, NUL in any text a caller sends, instants from outside, and provider webhooks for
//! tenants belfry does not know. Each is tried through every door: the CLI, the HTTP API and
//! the engine an embedding program calls, and what was refused is checked to be absent from
//! the database.

use crate::common::{Backend, World, count, world_with};
use belfry::host::content::Channel;
use belfry::host::dispatch::ChangeError;
use belfry::host::policy::{PrefScope, SuppressionReason, SuppressionTarget};
use belfry::host::trigger::TriggerError;
use belfry::serve::{Running, ServeConfig};
use belfry::{Engine, TriggerRequest};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

on_both_backends!(
    a_tenant_name_has_one_rule_on_every_door,
    idempotency_keys_are_identifiers,
    nul_is_refused_over_http_with_400_and_nothing_is_stored,
    nul_is_refused_by_the_engine_and_the_cli,
    instants_from_outside_are_bounded_and_stored_in_one_form,
    a_webhook_for_an_unknown_tenant_is_404_and_stores_nothing,
);

/// The names `keys create` and HTTP always refused, and `trigger --tenant` took.
const BAD_TENANTS: &[&str] = &["ténant", "../x", "a\nb", " acme ", "", ".", ".."];

fn long_tenant() -> String {
    "t".repeat(65)
}

fn welcome(user: &str) -> Value {
    json!({"user": {"id": user, "name": "Zoe", "email": "zoe@example.com"}})
}

const WEBHOOK_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

struct Api {
    base: String,
    http: reqwest::Client,
    server: Option<Running>,
    w: World,
    /// A key of tenant `acme`.
    key: String,
    admin: String,
}

async fn serve(b: Backend) -> Api {
    let w = world_with(b, |c| {
        c.endpoints.allow_networks = vec!["127.0.0.1/32".parse().unwrap()];
        // Resend receives webhooks (signed with this secret); it never sends here.
        c.routes = BTreeMap::from([(Channel::Email, "resend".to_string())]);
        c.plugin_config.insert(
            "resend".into(),
            BTreeMap::from([
                ("api_key".into(), "re_test_key".into()),
                ("from".into(), "Acme <no-reply@acme.test>".into()),
                ("webhook_secret".into(), WEBHOOK_SECRET.into()),
            ]),
        );
    })
    .await;
    let server = belfry::serve::start(
        w.engine.clone(),
        ServeConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            workers: None,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (_, key) = w.engine.create_key(Some("acme"), "test").await.unwrap();
    let (_, admin) = w.engine.create_key(None, "operator").await.unwrap();
    Api {
        base: format!("http://{}", server.addr),
        http: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        server: Some(server),
        w,
        key,
        admin,
    }
}

impl Api {
    fn engine(&self) -> &Engine {
        &self.w.engine
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        key: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if let Some(k) = key {
            r = r.bearer_auth(k);
        }
        if let Some(b) = body {
            r = r.json(&b);
        }
        let res = r.send().await.unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        let body = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("not JSON ({e}), status {status}: {text}"))
        };
        (status, body)
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call(method, path, Some(&self.key), body).await
    }

    async fn stop(mut self) {
        self.server.take().unwrap().shutdown().await.unwrap();
    }
}

fn belfry_on(database_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_belfry"))
        .args(args)
        .env("BELFRY_DATABASE_URL", database_url)
        .env(
            "BELFRY_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("belfry-test-cache"),
        )
        .env_remove("BELFRY_PLUGINS")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// A refusal as the CLI gives one: exit 1 (not a panic's 101), the cause on stderr.
fn refused(o: &Output, says: &str) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(err.contains(says), "expected `{says}` in: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

async fn a_tenant_name_has_one_rule_on_every_door(b: Backend) {
    let w = world_with(b, |_| {}).await;
    let e = &w.engine;
    let mut bad: Vec<String> = BAD_TENANTS.iter().map(|t| t.to_string()).collect();
    bad.push(long_tenant());
    for tenant in &bad {
        let req = TriggerRequest::new("welcome", welcome("u1")).tenant(tenant.as_str());
        match e.trigger(&req).await {
            Err(TriggerError::InvalidField { field, message }) => {
                assert_eq!(field, "tenant", "{message}");
            }
            other => panic!("tenant {tenant:?}: {other:?}"),
        }
        assert!(e.dry_run(&req).await.is_err(), "dry run for {tenant:?}");
        assert!(
            e.signal(tenant, "u1", "stop", &json!({})).await.is_err(),
            "signal for {tenant:?}"
        );
        assert!(
            e.add_suppression(
                tenant,
                &SuppressionTarget::Address("zoe@example.com".into()),
                SuppressionReason::Manual,
                None,
                None,
            )
            .await
            .is_err(),
            "suppression for {tenant:?}"
        );
        assert!(
            e.set_preference(
                tenant,
                "u1",
                &PrefScope::Channel(Channel::Email),
                Some(false)
            )
            .await
            .is_err(),
            "preference for {tenant:?}"
        );
        assert!(
            e.add_endpoint(tenant, "http://127.0.0.1:9/x", &["*".into()], None)
                .await
                .is_err(),
            "endpoint for {tenant:?}"
        );
        assert!(e.create_key(Some(tenant), "k").await.is_err());
    }
    for table in [
        "events",
        "signals",
        "suppressions",
        "preferences",
        "endpoints",
    ] {
        assert_eq!(count(e, table).await, 0, "{table}");
    }
    assert_eq!(count(e, "tenants").await, 0);

    // The CLI says why, on one line, and stores nothing.
    for tenant in &bad {
        let o = belfry_on(
            &w.db.url,
            &[
                "trigger",
                "welcome",
                "--data",
                &welcome("u1").to_string(),
                "--tenant",
                tenant,
            ],
        );
        refused(&o, "tenant");
    }
    assert_eq!(count(e, "events").await, 0);

    // A name within the rule goes through every door.
    let good = "acme.eu-1_x";
    let out = belfry_on(
        &w.db.url,
        &[
            "trigger",
            "welcome",
            "--data",
            &welcome("u1").to_string(),
            "--tenant",
            good,
            "--no-dispatch",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let req = TriggerRequest::new("welcome", welcome("u2")).tenant(good);
    e.trigger(&req).await.unwrap();
    assert_eq!(count(e, "events").await, 2);
}

async fn idempotency_keys_are_identifiers(b: Backend) {
    let api = serve(b).await;
    let e = api.engine();
    let too_long = "k".repeat(belfry::host::text::MAX_IDEMPOTENCY_KEY_BYTES + 1);
    let bad = ["", "  ", " k", "k ", "a\nb", "a\tb", too_long.as_str()];
    for (i, key) in bad.iter().enumerate() {
        // Two unrelated triggers under the same blank key: the second recipient was dropped
        // as a duplicate of the first.
        for user in ["u1", "u2"] {
            let req = TriggerRequest::new("welcome", welcome(user))
                .tenant("acme")
                .idempotency_key(*key);
            match e.trigger(&req).await {
                Err(TriggerError::InvalidField { field, .. }) => {
                    assert_eq!(field, "idempotency_key")
                }
                other => panic!("key {key:?}: {other:?}"),
            }
        }
        let got = api
            .send(
                Method::POST,
                "/v1/events",
                Some(json!({"notifier": "welcome", "payload": welcome(&format!("h{i}")), "idempotency_key": key})),
            )
            .await;
        assert_eq!(
            got.0,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{key:?}: {}",
            got.1
        );
        assert_eq!(got.1["error"]["field"], "idempotency_key", "{}", got.1);
    }
    // The header, too (HTTP trims a header's surrounding space and refuses control bytes:
    // what is left meets the same rule).
    for key in ["  ", too_long.as_str()] {
        let res = api
            .http
            .post(format!("{}/v1/events", api.base))
            .bearer_auth(&api.key)
            .header("Idempotency-Key", key)
            .json(&json!({"notifier": "welcome", "payload": welcome("h")}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{key:?}");
    }
    assert_eq!(count(e, "events").await, 0);

    // Keys within the rule deduplicate what they should, and nothing else.
    let longest = "k".repeat(belfry::host::text::MAX_IDEMPOTENCY_KEY_BYTES);
    for key in ["order 1", longest.as_str()] {
        let mut ids = Vec::new();
        for user in ["u1", "u2"] {
            let req = TriggerRequest::new("welcome", welcome(user))
                .tenant("acme")
                .idempotency_key(key);
            ids.push(e.trigger(&req).await.unwrap());
        }
        assert!(!ids[0].duplicate);
        assert!(ids[1].duplicate, "same key, same event");
        assert_eq!(ids[0].event_id, ids[1].event_id);
    }
    assert_eq!(count(e, "events").await, 2);
    api.stop().await;
}

async fn nul_is_refused_over_http_with_400_and_nothing_is_stored(b: Backend) {
    let api = serve(b).await;
    let e = api.engine();
    let nul = "a\u{0}b";
    let cases: Vec<(Method, String, Option<Value>, bool)> = vec![
        // (method, path, body, as admin)
        (
            Method::POST,
            "/v1/events".into(),
            Some(json!({"notifier": "welcome", "payload": welcome(nul)})),
            false,
        ),
        (
            Method::POST,
            "/v1/events".into(),
            Some(json!({"notifier": "welcome", "payload": welcome("u1"), "idempotency_key": nul})),
            false,
        ),
        (
            Method::POST,
            "/v1/suppressions".into(),
            Some(json!({"address": "zoe\u{0}@example.com"})),
            false,
        ),
        (
            Method::POST,
            "/v1/suppressions".into(),
            Some(json!({"recipient_id": nul, "channel": "email"})),
            false,
        ),
        (
            Method::POST,
            "/v1/suppressions".into(),
            Some(json!({"address": "zoe@example.com", "note": nul})),
            false,
        ),
        (
            Method::POST,
            "/v1/signals".into(),
            Some(json!({"actor": nul, "name": "stop"})),
            false,
        ),
        (
            Method::POST,
            "/v1/endpoints".into(),
            Some(json!({"url": "http://127.0.0.1:9/hook", "events": ["*"], "description": nul})),
            false,
        ),
        (
            Method::PUT,
            "/v1/recipients/u1/preferences".into(),
            Some(json!({"scope": "category", "target": nul, "enabled": false})),
            false,
        ),
        (
            Method::PUT,
            "/v1/recipients/a%00b/preferences".into(),
            Some(json!({"scope": "channel", "target": "email", "enabled": false})),
            false,
        ),
        (
            Method::PATCH,
            "/v1/recipients/u1/settings".into(),
            Some(json!({"cooldowns": serde_json::Map::from_iter([(nul.to_string(), json!(60))])})),
            false,
        ),
        (
            Method::POST,
            "/v1/inbox/tokens".into(),
            Some(json!({"recipient_id": nul})),
            false,
        ),
        (
            Method::POST,
            "/v1/deliveries/d1/cancel".into(),
            Some(json!({"reason": nul})),
            false,
        ),
        (
            Method::GET,
            "/v1/deliveries?recipient_id=a%00b".into(),
            None,
            false,
        ),
        (Method::GET, "/v1/events/a%00b".into(), None, false),
        (
            Method::GET,
            "/v1/recipients/a%00b/settings".into(),
            None,
            false,
        ),
        (
            Method::POST,
            "/v1/keys".into(),
            Some(json!({"tenant": "acme", "name": nul})),
            true,
        ),
        (
            Method::POST,
            "/v1/tenants".into(),
            Some(json!({"id": nul})),
            true,
        ),
    ];
    for (method, path, body, admin) in cases {
        let key = if admin { &api.admin } else { &api.key };
        let got = api
            .call(method.clone(), &path, Some(key), body.clone())
            .await;
        assert_eq!(
            got.0,
            StatusCode::BAD_REQUEST,
            "{method} {path} {body:?}: {}",
            got.1
        );
        let message = got.1["error"]["message"].as_str().unwrap();
        assert!(message.contains("NUL"), "{message}");
    }
    // The field is named where it can be.
    let got = api
        .send(
            Method::POST,
            "/v1/signals",
            Some(json!({"actor": nul, "name": "stop"})),
        )
        .await;
    assert_eq!(got.1["error"]["field"], "actor", "{}", got.1);

    for table in [
        "events",
        "suppressions",
        "signals",
        "endpoints",
        "preferences",
        "recipient_settings",
    ] {
        assert_eq!(count(e, table).await, 0, "{table}");
    }
    assert_eq!(count(e, "api_keys").await, 2, "only the test's own keys");

    // The same requests without the NUL are taken: the refusals above were for it alone.
    let ok = api
        .send(
            Method::POST,
            "/v1/suppressions",
            Some(json!({"address": "zoe@example.com", "note": "a\nb"})),
        )
        .await;
    assert_eq!(ok.0, StatusCode::CREATED, "{}", ok.1);
    let ok = api
        .send(
            Method::POST,
            "/v1/signals",
            Some(json!({"actor": "ab", "name": "stop"})),
        )
        .await;
    assert_eq!(ok.0, StatusCode::OK, "{}", ok.1);
    let ok = api
        .send(Method::GET, "/v1/deliveries?recipient_id=ab", None)
        .await;
    assert_eq!(ok.0, StatusCode::OK, "{}", ok.1);
    // Text that only spells `\u0000` is not a NUL.
    let ok = api
        .send(
            Method::POST,
            "/v1/endpoints",
            Some(json!({"url": "http://127.0.0.1:9/hook", "events": ["*"], "description": "a\\u0000b"})),
        )
        .await;
    assert_eq!(ok.0, StatusCode::CREATED, "{}", ok.1);
    assert_eq!(ok.1["description"], "a\\u0000b", "{}", ok.1);
    api.stop().await;
}

async fn nul_is_refused_by_the_engine_and_the_cli(b: Backend) {
    let w = world_with(b, |c| {
        c.endpoints.allow_networks = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let e = &w.engine;
    let nul = "a\u{0}b";
    let req = TriggerRequest::new("welcome", welcome(nul)).tenant("acme");
    match e.trigger(&req).await {
        Err(TriggerError::InvalidField { field, .. }) => assert_eq!(field, "payload.user.id"),
        other => panic!("{other:?}"),
    }
    // A recipient id the notifier makes from the payload meets the identifier rule.
    let req = TriggerRequest::new("welcome", welcome("a\nb")).tenant("acme");
    let err = e.trigger(&req).await.unwrap_err().to_string();
    assert!(err.contains("recipient id"), "{err}");
    assert!(e.signal("acme", nul, "stop", &json!({})).await.is_err());
    assert!(e.signal("acme", "u1", nul, &json!({})).await.is_err());
    assert!(
        e.signal("acme", "u1", "stop", &json!({"x": nul}))
            .await
            .is_err()
    );
    for target in [
        SuppressionTarget::Address(format!("zoe{nul}@example.com")),
        SuppressionTarget::Recipient {
            id: nul.into(),
            channel: Channel::Email,
        },
    ] {
        assert!(
            e.add_suppression("acme", &target, SuppressionReason::Manual, None, None)
                .await
                .is_err()
        );
    }
    assert!(
        e.add_suppression(
            "acme",
            &SuppressionTarget::Address("zoe@example.com".into()),
            SuppressionReason::Manual,
            Some(nul),
            None,
        )
        .await
        .is_err()
    );
    assert!(
        e.set_preference(
            "acme",
            nul,
            &PrefScope::Channel(Channel::Email),
            Some(false)
        )
        .await
        .is_err()
    );
    assert!(
        e.set_preference("acme", "u1", &PrefScope::Category(nul.into()), Some(false))
            .await
            .is_err()
    );
    assert!(
        e.add_endpoint("acme", "http://127.0.0.1:9/x", &["*".into()], Some(nul))
            .await
            .is_err()
    );
    assert!(e.create_key(Some("acme"), nul).await.is_err());
    assert!(e.mint_inbox_token("acme", nul, 60).await.is_err());
    for table in [
        "events",
        "signals",
        "suppressions",
        "preferences",
        "endpoints",
        "api_keys",
    ] {
        assert_eq!(count(e, table).await, 0, "{table}");
    }

    // On the command line a NUL can only come inside JSON.
    let data = welcome(nul).to_string();
    assert!(data.contains("\\u0000"));
    let o = belfry_on(&w.db.url, &["trigger", "welcome", "--data", &data]);
    refused(&o, "NUL");
    let o = belfry_on(
        &w.db.url,
        &["signal", "u1", "stop", "--payload", r#"{"x": "\u0000"}"#],
    );
    refused(&o, "NUL");
    assert_eq!(count(e, "events").await, 0);
    assert_eq!(count(e, "signals").await, 0);

    // A reason is free text: a line break is fine, a NUL is not, and the delivery stays put.
    let out = e
        .trigger(&TriggerRequest::new("welcome", welcome("u1")).tenant("acme"))
        .await
        .unwrap();
    let delivery = out.notifications[0].deliveries[0].id.clone();
    let later = chrono::Utc::now() + chrono::TimeDelta::hours(1);
    for got in [
        e.cancel(&delivery, nul).await,
        e.defer(&delivery, later, nul).await,
    ] {
        assert!(matches!(got, Err(ChangeError::Text(_))), "{got:?}");
    }
    let d = e.delivery(&delivery).await.unwrap().unwrap();
    assert_eq!(d.status, "pending", "{d:?}");
    e.defer(&delivery, later, "line one\nline two")
        .await
        .unwrap();
}

async fn instants_from_outside_are_bounded_and_stored_in_one_form(b: Backend) {
    let api = serve(b).await;
    let e = api.engine();
    // Past year 9999 the stored text sorts before today: it was sent at once.
    for at in [
        "+12026-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "1900-01-01T00:00:00Z",
    ] {
        let got = api
            .send(
                Method::POST,
                "/v1/events",
                Some(json!({"notifier": "welcome", "payload": welcome("u1"), "deliver_at": at})),
            )
            .await;
        assert_eq!(got.0, StatusCode::UNPROCESSABLE_ENTITY, "{at}: {}", got.1);
        assert_eq!(got.1["error"]["field"], "deliver_at", "{}", got.1);
        let far = chrono::DateTime::parse_from_rfc3339(at.trim_start_matches('+'))
            .map(|t| t.with_timezone(&chrono::Utc))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
        let req = TriggerRequest::new("welcome", welcome("u1"))
            .tenant("acme")
            .deliver_at(far);
        match e.trigger(&req).await {
            Err(TriggerError::InvalidField { field, .. }) => assert_eq!(field, "deliver_at"),
            other => panic!("{at}: {other:?}"),
        }
    }
    let got = api
        .send(
            Method::POST,
            "/v1/suppressions",
            Some(json!({"address": "zoe@example.com", "expires_at": "+12026-01-01T00:00:00Z"})),
        )
        .await;
    assert_eq!(got.0, StatusCode::UNPROCESSABLE_ENTITY, "{}", got.1);
    assert_eq!(count(e, "events").await, 0);
    assert_eq!(count(e, "suppressions").await, 0);

    // A time within the bounds, given with an offset and microseconds, is stored in the one
    // form every stored time has (UTC, milliseconds, `Z`), so it compares as a time.
    let at = (chrono::Utc::now() + chrono::TimeDelta::days(1))
        .with_timezone(&chrono::FixedOffset::east_opt(5 * 3600).unwrap());
    let text = at.to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
    assert!(text.ends_with("+05:00"), "{text}");
    let got = api
        .send(
            Method::POST,
            "/v1/events",
            Some(json!({"notifier": "welcome", "payload": welcome("u1"), "deliver_at": text})),
        )
        .await;
    assert_eq!(got.0, StatusCode::CREATED, "{}", got.1);
    let run_at: Vec<String> = sqlx::query_scalar("SELECT run_at FROM jobs")
        .fetch_all(e.db())
        .await
        .unwrap();
    let canonical = belfry::host::store::time_text(at.with_timezone(&chrono::Utc));
    assert!(!run_at.is_empty());
    for r in &run_at {
        assert_eq!(r, &canonical, "stored as `{r}`");
    }
    // And it waits: nothing is due now.
    e.dispatch_pending().await.unwrap();
    let (status, page) = api.send(Method::GET, "/v1/deliveries", None).await;
    assert_eq!(status, StatusCode::OK);
    for d in page["deliveries"].as_array().unwrap() {
        assert_eq!(d["status"], "deferred", "{d}");
    }
    api.stop().await;
}

/// A Resend webhook as Resend sends it (Svix headers over the raw body).
fn resend_hook(event_id: &str) -> (Vec<(String, String)>, Vec<u8>) {
    let body = json!({
        "type": "email.delivered",
        "created_at": "2026-12-02T10:00:05.000Z",
        "data": {"email_id": "re_unknown", "created_at": "2026-12-02T10:00:05.000Z", "to": ["zoe@example.com"]},
    });
    let raw = serde_json::to_vec(&body).unwrap();
    let ts = chrono::Utc::now().timestamp();
    let signature = standardwebhooks::Webhook::new(WEBHOOK_SECRET)
        .unwrap()
        .sign(event_id, ts, &raw)
        .unwrap();
    (
        vec![
            ("content-type".into(), "application/json".into()),
            ("svix-id".into(), event_id.into()),
            ("svix-timestamp".into(), ts.to_string()),
            ("svix-signature".into(), signature),
        ],
        raw,
    )
}

async fn a_webhook_for_an_unknown_tenant_is_404_and_stores_nothing(b: Backend) {
    let api = serve(b).await;
    let post = |path: String, event_id: &str| {
        let (headers, body) = resend_hook(event_id);
        let mut r = api.http.post(format!("{}{path}", api.base));
        for (k, v) in headers {
            r = r.header(k, v);
        }
        r.body(body).send()
    };
    let receipts = || count(api.engine(), "webhook_receipts");

    // Signed correctly, for a tenant belfry has never seen.
    let res = post("/v1/webhooks/ghost/resend".into(), "msg_1")
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["error"]["code"], "not_found", "{err}");
    assert!(err["error"]["message"].as_str().unwrap().contains("ghost"));
    assert_eq!(receipts().await, 0);
    assert_eq!(count(api.engine(), "feedback_events").await, 0);
    // An embedding program that takes the webhook itself gets the same refusal.
    let (headers, body) = resend_hook("msg_1");
    let request = belfry::host::feedback::WebhookRequest {
        method: "POST".into(),
        url: "https://belfry.example.com/v1/webhooks/ghost/resend".into(),
        headers,
        body,
        received_at: chrono::Utc::now(),
    };
    let got = api
        .engine()
        .receive_webhook("ghost", "resend", request)
        .await;
    assert!(
        matches!(
            got,
            Err(belfry::host::feedback::FeedbackError::UnknownTenant(_))
        ),
        "{got:?}"
    );
    assert_eq!(receipts().await, 0);

    // A name outside the rule is refused as such.
    for bad in ["a%0Ab", "a%00b", "t%C3%A9nant", "%2E%2E"] {
        let res = post(format!("/v1/webhooks/{bad}/resend"), "msg_2")
            .await
            .unwrap();
        assert!(
            res.status() == StatusCode::BAD_REQUEST || res.status() == StatusCode::NOT_FOUND,
            "{bad}: {}",
            res.status()
        );
    }
    assert_eq!(receipts().await, 0);

    // The tenant with a key (and one that has only triggered) is known: the same request
    // is taken.
    let res = post("/v1/webhooks/acme/resend".into(), "msg_3")
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{:?}", res.text().await);
    assert_eq!(receipts().await, 1);
    api.engine()
        .trigger(&TriggerRequest::new("welcome", welcome("u1")).tenant("cli-only"))
        .await
        .unwrap();
    let res = post("/v1/webhooks/cli-only/resend".into(), "msg_4")
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK, "{:?}", res.text().await);
    assert_eq!(receipts().await, 2);
    api.stop().await;
}
