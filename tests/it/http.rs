//! `belfry serve` over real HTTP on 127.0.0.1, on SQLite and PostgreSQL: every `/v1` endpoint,
//! each error class with its one JSON shape, idempotent triggers, tenant isolation, API keys,
//! the inbox (tokens, cursor paging under concurrent inserts, marks, the live SSE stream),
//! health, readiness and metrics.
//!
//! Most servers here run without embedded workers and the test dispatches with the engine,
//! so what a request sees does not depend on a worker's timing; the live-stream test runs the
//! embedded workers, as `belfry serve` does.

use crate::common;

use crate::common::provider::{Answer, Provider, Request};
use crate::common::{Backend, World, world_with};
use belfry::Engine;
use belfry::host::dispatch::WorkerConfig;
use belfry::serve::{Running, ServeConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::time::Duration;

struct Api {
    base: String,
    http: reqwest::Client,
    server: Option<Running>,
    w: World,
    /// A key of tenant `acme`.
    key: String,
    /// An admin key.
    admin: String,
}

async fn serve(backend: Backend, tweak: impl FnOnce(&mut ServeConfig)) -> Api {
    // Outbound webhook endpoints in these tests listen on 127.0.0.1, which must be allowed.
    let w = world_with(backend, |c| {
        c.endpoints.allow_networks = vec!["127.0.0.1/32".parse().unwrap()];
    })
    .await;
    let mut config = ServeConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: None,
        inbox_poll: Duration::from_millis(100),
        ..Default::default()
    };
    tweak(&mut config);
    let server = belfry::serve::start(w.engine.clone(), config)
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

    fn request(&self, method: Method, path: &str, key: Option<&str>) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match key {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    }

    async fn send(&self, r: reqwest::RequestBuilder) -> (StatusCode, Value) {
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

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.request(Method::GET, path, Some(&self.key)))
            .await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(
            self.request(Method::POST, path, Some(&self.key))
                .json(&body),
        )
        .await
    }

    async fn as_key(
        &self,
        method: Method,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let r = self.request(method, path, Some(key));
        let r = match body {
            Some(b) => r.json(&b),
            None => r,
        };
        self.send(r).await
    }

    /// Triggers `mention` for `recipients` over HTTP and dispatches it with the engine.
    async fn mention(&self, recipients: &[&str]) -> Value {
        let (status, out) = self.post("/v1/events", mention(recipients)).await;
        assert_eq!(status, StatusCode::CREATED, "{out}");
        self.engine()
            .dispatch_event(out["event_id"].as_str().unwrap())
            .await
            .unwrap();
        out
    }

    async fn token(&self, recipient: &str) -> String {
        let (status, t) = self
            .post("/v1/inbox/tokens", json!({"recipient_id": recipient}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{t}");
        t["token"].as_str().unwrap().to_string()
    }

    async fn stop(mut self) {
        self.server.take().unwrap().shutdown().await.unwrap();
    }
}

fn mention(recipients: &[&str]) -> Value {
    let mentioned: Vec<Value> = recipients.iter().map(|id| json!({"id": id})).collect();
    json!({
        "notifier": "mention",
        "payload": {"author": "Grace", "document": "Plan", "mentioned": mentioned},
    })
}

/// Asserts the one error shape, its status and code, and returns the message.
fn error(got: &(StatusCode, Value), status: StatusCode, code: &str) -> String {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["error"]["code"], code, "{}", got.1);
    got.1["error"]["message"].as_str().unwrap().to_string()
}

fn first_delivery(outcome: &Value) -> String {
    outcome["notifications"][0]["deliveries"][0]["id"]
        .as_str()
        .unwrap()
        .to_string()
}

// ---- health, readiness, metrics ----------------------------------------------------------

async fn health_ready_and_metrics(backend: Backend) {
    let api = serve(backend, |_| {}).await;
    let (s, b) = api.send(api.request(Method::GET, "/healthz", None)).await;
    assert_eq!((s, b), (StatusCode::OK, json!({"status": "ok"})));
    let (s, b) = api.send(api.request(Method::GET, "/readyz", None)).await;
    assert_eq!((s, b), (StatusCode::OK, json!({"status": "ready"})));

    // An email (through the `log` adapter) makes an attempt; the in-app item does not.
    let (s, out) = api
        .post(
            "/v1/events",
            json!({"notifier": "welcome",
                   "payload": {"user": {"id": "u-metrics", "name": "M", "email": "m@example.com"}}}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{out}");
    api.engine()
        .dispatch_event(out["event_id"].as_str().unwrap())
        .await
        .unwrap();
    let res = api
        .request(Method::GET, "/metrics", None)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = res.text().await.unwrap();
    // The recorder is process-wide (other tests' servers share it), so look for series, not
    // exact totals, except the gauges this database alone sets.
    for series in [
        "belfry_triggers_total{notifier=\"welcome\"",
        "belfry_plugin_call_duration_seconds_bucket{plugin=\"welcome@",
        "belfry_attempts_total{",
        "belfry_deliveries{status=\"succeeded\",channel=\"in-app\"}",
        "belfry_queue_jobs{state=\"available\"}",
        "belfry_queue_lag_seconds",
    ] {
        assert!(text.contains(series), "/metrics lacks {series}:\n{text}");
    }

    // Not ready: a migration the database has not applied.
    sqlx::query(
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
    )
    .execute(api.engine().db())
    .await
    .unwrap();
    let (s, b) = api.send(api.request(Method::GET, "/readyz", None)).await;
    assert_eq!(s, StatusCode::SERVICE_UNAVAILABLE, "{b}");
    assert_eq!(b["status"], "not_ready");
    api.stop().await;
}

// ---- keys, tenants, isolation ------------------------------------------------------------

async fn keys_tenants_and_isolation(backend: Backend) {
    let api = serve(backend, |_| {}).await;

    // No key, a malformed one, an unknown one, an inbox token: 401, one shape.
    let none = api
        .send(api.request(Method::GET, "/v1/deliveries", None))
        .await;
    error(&none, StatusCode::UNAUTHORIZED, "unauthorized");
    let bad = api
        .as_key(Method::GET, "/v1/deliveries", "bfy_0000", None)
        .await;
    error(&bad, StatusCode::UNAUTHORIZED, "unauthorized");
    let token = api.token("u-1").await;
    let as_token = api
        .as_key(Method::GET, "/v1/deliveries", &token, None)
        .await;
    error(&as_token, StatusCode::UNAUTHORIZED, "unauthorized");

    // Operator endpoints: 403 for a tenant key, open to the admin key.
    let forbidden = api.post("/v1/tenants", json!({"id": "globex"})).await;
    error(&forbidden, StatusCode::FORBIDDEN, "admin_only");
    let created = api
        .as_key(
            Method::POST,
            "/v1/tenants",
            &api.admin,
            Some(json!({"id": "globex"})),
        )
        .await;
    assert_eq!(created.0, StatusCode::CREATED, "{}", created.1);
    let again = api
        .as_key(
            Method::POST,
            "/v1/tenants",
            &api.admin,
            Some(json!({"id": "globex"})),
        )
        .await;
    error(&again, StatusCode::CONFLICT, "conflict");
    let bad_id = api
        .as_key(
            Method::POST,
            "/v1/tenants",
            &api.admin,
            Some(json!({"id": "no spaces"})),
        )
        .await;
    let why = error(&bad_id, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    assert!(why.contains("no spaces"), "{why}");
    let (_, tenants) = api
        .as_key(Method::GET, "/v1/tenants", &api.admin, None)
        .await;
    let ids: Vec<&str> = tenants["tenants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"acme") && ids.contains(&"globex"),
        "{tenants}"
    );
    // The inbox secret never leaves the server.
    assert!(!tenants.to_string().contains("secret"), "{tenants}");

    let (s, globex) = api
        .as_key(
            Method::POST,
            "/v1/keys",
            &api.admin,
            Some(json!({"tenant": "globex", "name": "app"})),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{globex}");
    let globex_key = globex["secret"].as_str().unwrap().to_string();
    let (_, listed) = api.as_key(Method::GET, "/v1/keys", &api.admin, None).await;
    assert!(
        !listed.to_string().contains(&globex_key),
        "a listing never shows a secret"
    );
    let keys_by_tenant = api.get("/v1/keys").await;
    error(&keys_by_tenant, StatusCode::FORBIDDEN, "admin_only");

    // acme's event, delivery and notification are invisible to globex: 404, as unknown ids.
    let out = api.mention(&["u-1"]).await;
    let event = out["event_id"].as_str().unwrap().to_string();
    let delivery = first_delivery(&out);
    let notification = out["notifications"][0]["id"].as_str().unwrap().to_string();
    for path in [
        format!("/v1/events/{event}"),
        format!("/v1/deliveries/{delivery}"),
        format!("/v1/deliveries/{delivery}/explain"),
        format!("/v1/notifications/{notification}"),
    ] {
        let own = api.get(&path).await;
        assert_eq!(own.0, StatusCode::OK, "{path}: {}", own.1);
        let other = api.as_key(Method::GET, &path, &globex_key, None).await;
        error(&other, StatusCode::NOT_FOUND, "not_found");
        let unknown = api
            .get(
                &path
                    .replace(&event, "nope")
                    .replace(&delivery, "nope")
                    .replace(&notification, "nope"),
            )
            .await;
        error(&unknown, StatusCode::NOT_FOUND, "not_found");
    }
    let cancel = api
        .as_key(
            Method::POST,
            &format!("/v1/deliveries/{delivery}/cancel"),
            &globex_key,
            None,
        )
        .await;
    error(&cancel, StatusCode::NOT_FOUND, "not_found");
    let (_, listing) = api
        .as_key(Method::GET, "/v1/deliveries", &globex_key, None)
        .await;
    assert_eq!(listing["deliveries"], json!([]), "{listing}");
    let (_, events) = api
        .as_key(Method::GET, "/v1/events", &globex_key, None)
        .await;
    assert_eq!(events["events"], json!([]), "{events}");

    // A tenant key cannot name another tenant; an admin key must name one.
    let wrong = api
        .send(
            api.request(Method::GET, "/v1/deliveries", Some(&api.key))
                .header("Belfry-Tenant", "globex"),
        )
        .await;
    error(&wrong, StatusCode::FORBIDDEN, "wrong_tenant");
    let unnamed = api
        .as_key(Method::GET, "/v1/deliveries", &api.admin, None)
        .await;
    error(&unnamed, StatusCode::BAD_REQUEST, "bad_request");
    let (s, named) = api
        .send(
            api.request(Method::GET, "/v1/deliveries", Some(&api.admin))
                .header("Belfry-Tenant", "acme"),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(named["deliveries"][0]["id"], delivery.as_str());

    // A revoked key stops at once.
    let id = globex["id"].as_str().unwrap();
    let (s, revoked) = api
        .as_key(
            Method::POST,
            &format!("/v1/keys/{id}/revoke"),
            &api.admin,
            None,
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{revoked}");
    assert!(revoked["revoked_at"].is_string());
    let after = api
        .as_key(Method::GET, "/v1/deliveries", &globex_key, None)
        .await;
    error(&after, StatusCode::UNAUTHORIZED, "unauthorized");
    let unknown_key = api
        .as_key(Method::POST, "/v1/keys/nope/revoke", &api.admin, None)
        .await;
    error(&unknown_key, StatusCode::NOT_FOUND, "not_found");
    api.stop().await;
}

// ---- triggers and bad input --------------------------------------------------------------

async fn triggers_and_bad_input(backend: Backend) {
    let api = serve(backend, |c| c.max_body_bytes = 64 * 1024).await;

    // Idempotency-Key: the repeat answers 200 with the original ids and writes nothing.
    let send = |key: &'static str| {
        api.request(Method::POST, "/v1/events", Some(&api.key))
            .header("Idempotency-Key", key)
            .json(&mention(&["u-1", "u-2"]))
    };
    let (s1, first) = api.send(send("order-1")).await;
    assert_eq!(s1, StatusCode::CREATED, "{first}");
    assert_eq!(first["duplicate"], false);
    assert_eq!(first["notifications"].as_array().unwrap().len(), 2);
    let events = common::count(api.engine(), "events").await;
    let (s2, second) = api.send(send("order-1")).await;
    assert_eq!(s2, StatusCode::OK, "{second}");
    assert_eq!(second["duplicate"], true);
    assert_eq!(second["event_id"], first["event_id"]);
    assert_eq!(common::count(api.engine(), "events").await, events);

    let (s, event) = api
        .get(&format!(
            "/v1/events/{}",
            first["event_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(event["notifications"].as_array().unwrap().len(), 2);
    let (s, listed) = api.get("/v1/events?limit=5").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(listed["events"][0]["id"], first["event_id"]);
    assert_eq!(listed["events"][0]["deliveries"], 2);

    // Malformed JSON, a wrong type, an unknown field: 400.
    let garbled = api
        .send(
            api.request(Method::POST, "/v1/events", Some(&api.key))
                .header("content-type", "application/json")
                .body("{\"notifier\": "),
        )
        .await;
    error(&garbled, StatusCode::BAD_REQUEST, "bad_request");
    let typo = api
        .post("/v1/events", json!({"notifer": "mention", "payload": {}}))
        .await;
    error(&typo, StatusCode::BAD_REQUEST, "bad_request");
    // Semantically wrong: 422 naming the field.
    let unknown = api
        .post("/v1/events", json!({"notifier": "nope", "payload": {}}))
        .await;
    error(
        &unknown,
        StatusCode::UNPROCESSABLE_ENTITY,
        "unknown_notifier",
    );
    assert_eq!(unknown.1["error"]["field"], "notifier");
    let not_object = api
        .post("/v1/events", json!({"notifier": "mention", "payload": [1]}))
        .await;
    error(&not_object, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    let rejected = api
        .post(
            "/v1/events",
            json!({"notifier": "mention", "payload": {"document": "Plan", "mentioned": {"id": "u"}}}),
        )
        .await;
    let why = error(
        &rejected,
        StatusCode::UNPROCESSABLE_ENTITY,
        "payload_rejected",
    );
    assert!(why.contains("author"), "{why}");

    // Up to 1000 recipients in one call; 1001 is refused and writes nothing.
    let many: Vec<String> = (0..1000).map(|i| format!("bulk-{i}")).collect();
    let ids: Vec<&str> = many.iter().map(String::as_str).collect();
    let (s, bulk) = api.post("/v1/events", mention(&ids)).await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(bulk["notifications"].as_array().unwrap().len(), 1000);
    let before = common::count(api.engine(), "deliveries").await;
    let too_many: Vec<String> = (0..1001).map(|i| format!("over-{i}")).collect();
    let ids: Vec<&str> = too_many.iter().map(String::as_str).collect();
    let over = api.post("/v1/events", mention(&ids)).await;
    let why = error(&over, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    assert!(why.contains("1000"), "{why}");
    assert_eq!(common::count(api.engine(), "deliveries").await, before);

    // A body over the limit: 413, nothing written.
    let huge = "x".repeat(70 * 1024);
    let big = api
        .post(
            "/v1/events",
            json!({"notifier": "mention", "payload": {"author": huge, "document": "d", "mentioned": {"id": "u"}}}),
        )
        .await;
    error(&big, StatusCode::PAYLOAD_TOO_LARGE, "too_large");
    assert_eq!(common::count(api.engine(), "deliveries").await, before);

    // Bounded pages and cursors, an unknown route: 400 / 404, the same shape.
    let limit = api.get("/v1/deliveries?limit=100000").await;
    error(&limit, StatusCode::BAD_REQUEST, "bad_query");
    let cursor = api.get("/v1/deliveries?cursor=garbage").await;
    error(&cursor, StatusCode::BAD_REQUEST, "bad_cursor");
    let status = api.get("/v1/deliveries?status=lost").await;
    error(&status, StatusCode::BAD_REQUEST, "bad_query");
    let route = api.get("/v1/nothing-here").await;
    error(&route, StatusCode::NOT_FOUND, "not_found");
    let method = api
        .send(api.request(Method::DELETE, "/v1/events", Some(&api.key)))
        .await;
    error(
        &method,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
    let unreadable = api.get("/v1/deliveries/%FF%FE").await;
    error(&unreadable, StatusCode::BAD_REQUEST, "bad_path");
    let unknown_param = api.get("/v1/events?cursor=zzz").await;
    error(&unknown_param, StatusCode::BAD_REQUEST, "bad_query");
    api.stop().await;
}

// ---- deliveries: list, get, explain, cancel ----------------------------------------------

async fn deliveries_explain_and_cancel(backend: Backend) {
    let api = serve(backend, |_| {}).await;
    for _ in 0..3 {
        api.mention(&["u-list"]).await;
    }
    // A deferred one, to cancel.
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let mut body = mention(&["u-later"]);
    body["deliver_at"] = json!(later.to_rfc3339());
    let (s, deferred) = api.post("/v1/events", body).await;
    assert_eq!(s, StatusCode::CREATED, "{deferred}");
    let pending = first_delivery(&deferred);

    // Paging: newest first, no repeats, the cursor ends.
    let mut seen = Vec::new();
    let mut path = "/v1/deliveries?limit=2".to_string();
    loop {
        let (s, page) = api.get(&path).await;
        assert_eq!(s, StatusCode::OK, "{page}");
        for d in page["deliveries"].as_array().unwrap() {
            seen.push(d["id"].as_str().unwrap().to_string());
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/deliveries?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 4, "{seen:?}");
    assert_eq!(seen[0], pending, "newest first");
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 4);

    // Filters.
    let (_, done) = api
        .get("/v1/deliveries?status=succeeded&channel=in-app&recipient_id=u-list")
        .await;
    assert_eq!(done["deliveries"].as_array().unwrap().len(), 3, "{done}");
    let (_, none) = api.get("/v1/deliveries?channel=email").await;
    assert_eq!(none["deliveries"], json!([]));
    let bad_channel = api.get("/v1/deliveries?channel=pigeon").await;
    error(&bad_channel, StatusCode::BAD_REQUEST, "bad_query");

    let (s, d) = api.get(&format!("/v1/deliveries/{pending}")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(d["status"], "deferred", "{d}");

    // Cancel (a body is optional), then again: 409, the delivery unchanged.
    let (s, c) = api
        .post(
            &format!("/v1/deliveries/{pending}/cancel"),
            json!({"reason": "customer changed their mind"}),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{c}");
    assert_eq!(c["status"], "cancelled");
    let again = api
        .send(api.request(
            Method::POST,
            &format!("/v1/deliveries/{pending}/cancel"),
            Some(&api.key),
        ))
        .await;
    error(&again, StatusCode::CONFLICT, "conflict");
    let bad_body = api
        .send(
            api.request(
                Method::POST,
                &format!("/v1/deliveries/{}/cancel", seen[1]),
                Some(&api.key),
            )
            .body("{not json"),
        )
        .await;
    error(&bad_body, StatusCode::BAD_REQUEST, "bad_request");

    // Explain: the cancel and its reason are in the timeline, with the planning plugin.
    let (s, x) = api.get(&format!("/v1/deliveries/{pending}/explain")).await;
    assert_eq!(s, StatusCode::OK, "{x}");
    let timeline = x["timeline"].as_array().unwrap();
    assert!(
        timeline.iter().any(|e| e["detail"]
            .as_str()
            .unwrap_or("")
            .contains("changed their mind")),
        "{x}"
    );
    assert!(
        x["notifier_plugin"]
            .as_str()
            .unwrap()
            .starts_with("mention@")
    );

    let (s, n) = api
        .get(&format!(
            "/v1/notifications/{}",
            deferred["notifications"][0]["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(n["deliveries"][0]["status"], "cancelled", "{n}");
    api.stop().await;
}

// ---- preferences, settings, suppressions, signals, plugins -------------------------------

async fn policy_endpoints(backend: Backend) {
    let api = serve(backend, |_| {}).await;

    let (s, p) = api
        .send(
            api.request(
                Method::PUT,
                "/v1/recipients/u-1/preferences",
                Some(&api.key),
            )
            .json(&json!({"scope": "channel", "target": "in-app", "enabled": false})),
        )
        .await;
    assert_eq!(s, StatusCode::OK, "{p}");
    assert_eq!(p["preferences"].as_array().unwrap().len(), 1, "{p}");
    let bad_scope = api
        .send(
            api.request(
                Method::PUT,
                "/v1/recipients/u-1/preferences",
                Some(&api.key),
            )
            .json(&json!({"scope": "galaxy", "target": "x", "enabled": true})),
        )
        .await;
    error(&bad_scope, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    assert_eq!(bad_scope.1["error"]["field"], "scope");

    // The preference is policy: u-1's in-app delivery is suppressed, and explain says why.
    let out = api.mention(&["u-1"]).await;
    let (_, d) = api
        .get(&format!("/v1/deliveries/{}", first_delivery(&out)))
        .await;
    assert_eq!(d["status"], "suppressed", "{d}");

    let patch = |body: Value| {
        api.request(Method::PATCH, "/v1/recipients/u-2/settings", Some(&api.key))
            .json(&body)
    };
    let (s, set) = api
        .send(patch(json!({
            "time_zone": "Europe/Paris",
            "quiet_hours": {"start": "22:00", "end": "07:00"},
            "caps": {"email": {"max": 3, "window_secs": 3600}},
        })))
        .await;
    assert_eq!(s, StatusCode::OK, "{set}");
    assert_eq!(set["own"]["time_zone"], "Europe/Paris", "{set}");
    let bad_zone = api.send(patch(json!({"time_zone": "Mars/Olympus"}))).await;
    error(&bad_zone, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    assert_eq!(bad_zone.1["error"]["field"], "time_zone");
    let bad_time = api
        .send(patch(
            json!({"quiet_hours": {"start": "25:00", "end": "07:00"}}),
        ))
        .await;
    error(&bad_time, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    let empty = api.send(patch(json!({}))).await;
    error(&empty, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    // `null` clears, absent keeps: the zone stays, quiet hours go.
    let (_, cleared) = api.send(patch(json!({"quiet_hours": null}))).await;
    assert_eq!(cleared["own"]["time_zone"], "Europe/Paris", "{cleared}");
    let (_, got) = api.get("/v1/recipients/u-2/settings").await;
    assert_eq!(got, cleared);

    let (s, sup) = api
        .post(
            "/v1/suppressions",
            json!({"address": "ada@example.com", "note": "asked by phone"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{sup}");
    let neither = api.post("/v1/suppressions", json!({"note": "?"})).await;
    error(&neither, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    let (_, list) = api.get("/v1/suppressions").await;
    assert_eq!(list["suppressions"].as_array().unwrap().len(), 1);
    let id = sup["id"].as_str().unwrap();
    let (s, _) = api
        .send(api.request(
            Method::DELETE,
            &format!("/v1/suppressions/{id}"),
            Some(&api.key),
        ))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let gone = api
        .send(api.request(
            Method::DELETE,
            &format!("/v1/suppressions/{id}"),
            Some(&api.key),
        ))
        .await;
    error(&gone, StatusCode::NOT_FOUND, "not_found");

    let (s, sig) = api
        .post("/v1/signals", json!({"actor": "u-9", "name": "task.done"}))
        .await;
    assert_eq!(s, StatusCode::OK, "{sig}");
    assert_eq!(sig["runs"], json!([]));
    let bad_signal = api
        .post("/v1/signals", json!({"actor": "u-9", "name": ""}))
        .await;
    error(&bad_signal, StatusCode::UNPROCESSABLE_ENTITY, "invalid");

    let (s, plugins) = api.get("/v1/plugins").await;
    assert_eq!(s, StatusCode::OK);
    let webhook = plugins["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "webhook")
        .expect("the bundled webhook adapter is listed");
    assert_eq!(webhook["kind"], "channel-adapter", "{webhook}");
    assert!(
        !webhook["capabilities"]["http"]
            .as_array()
            .unwrap()
            .is_empty(),
        "{webhook}"
    );
    api.stop().await;
}

// ---- inbox -------------------------------------------------------------------------------

async fn inbox_over_http(backend: Backend) {
    let api = serve(backend, |_| {}).await;
    for _ in 0..3 {
        api.mention(&["u-in", "u-other"]).await;
    }
    let token = api.token("u-in").await;
    let inbox = |method: Method, path: &str| api.request(method, path, Some(&token));

    // The API key never works here; a bad or tampered token neither.
    let with_key = api.get("/v1/inbox").await;
    error(&with_key, StatusCode::UNAUTHORIZED, "unauthorized");
    let mut tampered = token.clone();
    tampered.pop();
    tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
    let forged = api
        .send(api.request(Method::GET, "/v1/inbox", Some(&tampered)))
        .await;
    error(&forged, StatusCode::UNAUTHORIZED, "unauthorized");
    let bad_ttl = api
        .post(
            "/v1/inbox/tokens",
            json!({"recipient_id": "u-in", "ttl_secs": 0}),
        )
        .await;
    error(&bad_ttl, StatusCode::UNPROCESSABLE_ENTITY, "invalid");

    let (s, page) = api.send(inbox(Method::GET, "/v1/inbox")).await;
    assert_eq!(s, StatusCode::OK, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 3);
    assert!(items.iter().all(|i| i["recipient_id"] == "u-in"));
    assert_eq!(page["counts"], json!({"unread": 3, "unseen": 3}));
    let newest = items[0]["id"].as_str().unwrap().to_string();
    let oldest = items[2]["id"].as_str().unwrap().to_string();

    // Query by token in the URL, as EventSource must.
    let (s, by_query) = api
        .send(api.request(
            Method::GET,
            &format!("/v1/inbox/counts?token={token}"),
            None,
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(by_query, json!({"unread": 3, "unseen": 3}));

    // Marks, each timestamp set once.
    let mark =
        |id: &str, action: &str| inbox(Method::POST, &format!("/v1/inbox/items/{id}/{action}"));
    let (s, seen) = api.send(mark(&newest, "seen")).await;
    assert_eq!(s, StatusCode::OK, "{seen}");
    let seen_at = seen["seen_at"].clone();
    assert!(seen_at.is_string());
    let (_, read) = api.send(mark(&newest, "read")).await;
    assert_eq!(read["read"], true);
    let read_at = read["read_at"].clone();
    let (_, unread) = api.send(mark(&newest, "unread")).await;
    assert_eq!(unread["read"], false);
    assert_eq!(unread["read_at"], read_at, "the first read time stays");
    let (_, again) = api.send(mark(&newest, "seen")).await;
    assert_eq!(again["seen_at"], seen_at);
    let (_, counts) = api.send(inbox(Method::GET, "/v1/inbox/counts")).await;
    assert_eq!(counts, json!({"unread": 3, "unseen": 2}));
    let (_, unread_page) = api
        .send(inbox(Method::GET, "/v1/inbox?filter=unseen"))
        .await;
    assert_eq!(unread_page["items"].as_array().unwrap().len(), 2);

    // Reading is visible to policy and explain: the delivery's timeline has the read.
    let delivery = read["delivery_id"].as_str().unwrap();
    let (_, x) = api.get(&format!("/v1/deliveries/{delivery}/explain")).await;
    assert!(
        x["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["kind"] == "inbox.read"),
        "{x}"
    );

    let (_, archived) = api.send(mark(&oldest, "archive")).await;
    assert!(archived["archived_at"].is_string());
    let (_, arch) = api
        .send(inbox(Method::GET, "/v1/inbox?filter=archived"))
        .await;
    assert_eq!(arch["items"].as_array().unwrap().len(), 1);
    let (_, all) = api.send(inbox(Method::GET, "/v1/inbox")).await;
    assert_eq!(
        all["items"].as_array().unwrap().len(),
        2,
        "archived items leave the list"
    );

    // Another recipient's item is not found with this token; an unknown action neither.
    let (_, other) = api
        .send(api.request(Method::GET, "/v1/inbox", Some(&api.token("u-other").await)))
        .await;
    let theirs = other["items"][0]["id"].as_str().unwrap();
    let cross = api.send(mark(theirs, "read")).await;
    error(&cross, StatusCode::NOT_FOUND, "not_found");
    let action = api.send(mark(&newest, "explode")).await;
    error(&action, StatusCode::NOT_FOUND, "not_found");
    let filter = api
        .send(inbox(Method::GET, "/v1/inbox?filter=starred"))
        .await;
    error(&filter, StatusCode::BAD_REQUEST, "bad_query");
    let cursor = api.send(inbox(Method::GET, "/v1/inbox?cursor=zzz")).await;
    error(&cursor, StatusCode::BAD_REQUEST, "bad_cursor");

    let (s, all_read) = api.send(inbox(Method::POST, "/v1/inbox/read-all")).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(all_read["counts"]["unread"], 0, "{all_read}");
    api.stop().await;
}

/// Pages followed by cursor while another task keeps adding items: every item that existed
/// when paging began is seen exactly once, in newest-first order, and none is skipped.
async fn inbox_paging_under_concurrent_inserts(backend: Backend) {
    let api = serve(backend, |_| {}).await;
    for _ in 0..9 {
        api.mention(&["u-page"]).await;
    }
    let token = api.token("u-page").await;
    let (_, all) = api
        .send(api.request(Method::GET, "/v1/inbox?limit=100", Some(&token)))
        .await;
    let before: Vec<String> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(before.len(), 9);

    let engine = api.engine().clone();
    let (wrote, mut written) = tokio::sync::mpsc::unbounded_channel();
    let writer = tokio::spawn(async move {
        for _ in 0..8 {
            let req = belfry::TriggerRequest::new(
                "mention",
                json!({"author": "G", "document": "D", "mentioned": {"id": "u-page"}}),
            )
            .tenant("acme");
            let out = engine.trigger(&req).await.unwrap();
            engine.dispatch_event(&out.event_id).await.unwrap();
            let _ = wrote.send(());
        }
    });
    let mut paged = Vec::new();
    let mut path = "/v1/inbox?limit=2".to_string();
    let mut first_page = true;
    loop {
        let (s, page) = api
            .send(api.request(Method::GET, &path, Some(&token)))
            .await;
        assert_eq!(s, StatusCode::OK, "{page}");
        for i in page["items"].as_array().unwrap() {
            paged.push(i["id"].as_str().unwrap().to_string());
        }
        if first_page {
            // The writer adds an item (at least) between pages.
            first_page = false;
            written.recv().await.expect("the writer wrote an item");
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/inbox?limit=2&cursor={c}"),
            None => break,
        }
    }
    writer.await.unwrap();
    let mut unique = paged.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        paged.len(),
        "an item appeared twice: {paged:?}"
    );
    for id in &before {
        assert!(paged.contains(id), "item {id} was skipped: {paged:?}");
    }
    // Items inserted during paging are newer than any cursor handed out after them, so they
    // can appear only before the pre-existing items, never among them.
    let positions: Vec<usize> = before
        .iter()
        .map(|id| paged.iter().position(|p| p == id).unwrap())
        .collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{paged:?}");
    let (_, total) = api
        .send(api.request(Method::GET, "/v1/inbox?limit=100", Some(&token)))
        .await;
    assert_eq!(total["items"].as_array().unwrap().len(), 17);
    api.stop().await;
}

/// One parsed Server-Sent Event.
#[derive(Debug)]
struct Sse {
    event: String,
    data: Value,
}

/// Reads events off an SSE body; `next` waits at most `within` for one.
struct SseReader {
    response: reqwest::Response,
    buffer: String,
}

impl SseReader {
    async fn next(&mut self, within: Duration) -> Sse {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = String::from("message");
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event:") {
                        event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.trim());
                    }
                }
                if data.is_empty() {
                    continue; // a keep-alive comment
                }
                return Sse {
                    event,
                    data: serde_json::from_str(&data).unwrap(),
                };
            }
            let chunk = tokio::time::timeout_at(deadline, self.response.chunk())
                .await
                .expect("no server-sent event in time")
                .unwrap()
                .expect("the stream ended");
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The next event named `name`, skipping others.
    async fn next_named(&mut self, name: &str, within: Duration) -> Sse {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let e = self.next(left).await;
            if e.event == name {
                return e;
            }
        }
    }
}

/// The live stream with the embedded workers: a trigger over the API reaches a connected
/// client as an `item` event and a `counts` change, and marking it read sends new counts.
async fn inbox_stream_pushes_new_items(backend: Backend) {
    let api = serve(backend, |c| {
        c.workers = Some(WorkerConfig {
            poll: Duration::from_millis(100),
            ..Default::default()
        });
    })
    .await;
    let token = api.token("u-live").await;
    let response = api
        .request(
            Method::GET,
            &format!("/v1/inbox/stream?token={token}"),
            None,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut sse = SseReader {
        response,
        buffer: String::new(),
    };
    // Generous bounds: this proves the push happens, not how fast (the stream polls every
    // `inbox_poll`, 100 ms here; `belfry serve` defaults to 250 ms).
    let wait = Duration::from_secs(10);
    let hello = sse.next(wait).await;
    assert_eq!(hello.event, "counts");
    assert_eq!(hello.data, json!({"unread": 0, "unseen": 0}));

    let (s, out) = api.post("/v1/events", mention(&["u-live"])).await;
    assert_eq!(s, StatusCode::CREATED);
    let item = sse.next_named("item", wait).await;
    assert_eq!(item.data["recipient_id"], "u-live");
    assert_eq!(item.data["delivery_id"], first_delivery(&out).as_str());
    assert!(
        item.data["headline"].as_str().unwrap().contains("Grace"),
        "{:?}",
        item
    );
    let counts = sse.next_named("counts", wait).await;
    assert_eq!(counts.data, json!({"unread": 1, "unseen": 1}));

    // Someone else's item never reaches this stream.
    api.post("/v1/events", mention(&["u-elsewhere"])).await;

    // An item stamped before one already pushed but committed after it (several workers
    // write items concurrently, each stamped when its job began) is still pushed.
    let mut body = mention(&["u-live"]);
    body["deliver_at"] = json!((chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339());
    let (_, held) = api.post("/v1/events", body).await;
    let late = "late-item";
    sqlx::query(
        "INSERT INTO inbox_items (id, tenant, recipient_id, delivery_id, notification_id,
                                  headline, body, created_at)
         VALUES ($1, 'acme', 'u-live', $2, $3, 'Late', 'committed late', $4)",
    )
    .bind(late)
    .bind(first_delivery(&held))
    .bind(held["notifications"][0]["id"].as_str().unwrap())
    .bind(belfry::host::store::time_text(
        chrono::Utc::now() - chrono::Duration::hours(1),
    ))
    .execute(api.engine().db())
    .await
    .unwrap();
    let pushed = sse.next_named("item", wait).await;
    assert_eq!(pushed.data["id"], late);
    let counts = sse.next_named("counts", wait).await;
    assert_eq!(counts.data, json!({"unread": 2, "unseen": 2}));
    let id = item.data["id"].as_str().unwrap();
    let (s, _) = api
        .send(api.request(
            Method::POST,
            &format!("/v1/inbox/items/{id}/read"),
            Some(&token),
        ))
        .await;
    assert_eq!(s, StatusCode::OK);
    let counts = sse.next(wait).await;
    assert_eq!(
        counts.event, "counts",
        "only a count change follows: {counts:?}"
    );
    // Reading an item also sees it.
    assert_eq!(counts.data, json!({"unread": 1, "unseen": 1}));

    let no_token = api
        .send(api.request(Method::GET, "/v1/inbox/stream", None))
        .await;
    error(&no_token, StatusCode::UNAUTHORIZED, "unauthorized");
    // Shutdown ends open streams rather than waiting for their clients to leave.
    tokio::time::timeout(Duration::from_secs(10), api.stop())
        .await
        .expect("shutdown waited on an open inbox stream");
    drop(sse);
}

// ---- rate limits -------------------------------------------------------------------------

async fn rate_limit_answers_429(backend: Backend) {
    let api = serve(backend, |c| {
        c.rate_limit_per_sec = 1;
        c.rate_limit_burst = 2;
    })
    .await;
    let mut limited = None;
    for _ in 0..6 {
        let res = api
            .request(Method::GET, "/v1/plugins", Some(&api.key))
            .send()
            .await
            .unwrap();
        if res.status() == StatusCode::TOO_MANY_REQUESTS {
            limited = Some(res);
            break;
        }
        assert_eq!(res.status(), StatusCode::OK);
    }
    let res = limited.expect("six requests at once exceed 1/s with a burst of 2");
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // Another key has its own budget.
    let (s, _) = api
        .send(
            api.request(Method::GET, "/v1/plugins", Some(&api.admin))
                .header("Belfry-Tenant", "acme"),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    api.stop().await;
}

// ---- plugins loaded at runtime -----------------------------------------------------------

fn bundled(name: &str) -> &'static belfry::host::plugins::BundledPlugin {
    belfry::BUNDLED.iter().find(|b| b.name == name).unwrap()
}

fn upload(wasm: &[u8], manifest: &str) -> Value {
    use base64::Engine as _;
    json!({
        "manifest": manifest,
        "component": base64::engine::general_purpose::STANDARD.encode(wasm),
    })
}

/// `POST /v1/plugins`: admin only; a bad component, a bad manifest, a directory grant or a
/// conflicting notifier key is refused with nothing changed; a good one is in force for the
/// next trigger at once, and still after a restart.
async fn plugins_load_at_runtime(backend: Backend) {
    let api = serve(backend, |_| {}).await;
    let mention = bundled("mention");
    let v9 = mention
        .manifest
        .replace("version = \"0.1.0\"", "version = \"0.9.0\"");
    assert_ne!(v9, mention.manifest, "the test's manifest edit took");

    // A small body: refused before its body is read, a big one may meet a closed connection.
    let as_tenant = api.post("/v1/plugins", upload(b"x", &v9)).await;
    error(&as_tenant, StatusCode::FORBIDDEN, "admin_only");
    let admin_post = |body: Value| {
        api.send(
            api.request(Method::POST, "/v1/plugins", Some(&api.admin))
                .json(&body),
        )
    };
    let not_base64 = admin_post(json!({"manifest": v9, "component": "%%%"})).await;
    error(&not_base64, StatusCode::BAD_REQUEST, "bad_request");
    let garbage = admin_post(upload(b"not a component", &v9)).await;
    let why = error(
        &garbage,
        StatusCode::UNPROCESSABLE_ENTITY,
        "plugin_rejected",
    );
    assert!(why.contains("component"), "{why}");
    let bad_manifest = admin_post(upload(mention.wasm, "name = 3")).await;
    error(
        &bad_manifest,
        StatusCode::UNPROCESSABLE_ENTITY,
        "plugin_rejected",
    );
    let templates = bundled("templates");
    // A directory grant (the bundled renderer reads its templates as assets and has none).
    let granted = format!(
        "{}[capabilities]\nfiles = [{{ source = \"t\", guest = \"/t\" }}]\n",
        templates.manifest
    );
    let with_files = admin_post(upload(templates.wasm, &granted)).await;
    let why = error(
        &with_files,
        StatusCode::UNPROCESSABLE_ENTITY,
        "plugin_rejected",
    );
    assert!(why.contains("capabilities.files"), "{why}");
    // The same notifier under another name: two notifiers would claim `mention`.
    let copy = v9.replace("name = \"mention\"", "name = \"mention-copy\"");
    let conflict = admin_post(upload(mention.wasm, &copy)).await;
    let why = error(&conflict, StatusCode::CONFLICT, "conflict");
    assert!(why.contains("mention"), "{why}");
    assert_eq!(common::count(api.engine(), "plugin_uploads").await, 0);

    let (s, loaded) = admin_post(upload(mention.wasm, &v9)).await;
    assert_eq!(s, StatusCode::CREATED, "{loaded}");
    assert_eq!(loaded["version"], "0.9.0");
    assert!(
        loaded["replaced"]
            .as_str()
            .unwrap()
            .starts_with("mention@0.1.0#"),
        "{loaded}"
    );
    let (_, list) = api.get("/v1/plugins").await;
    let listed: Vec<&Value> = list["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["name"] == "mention")
        .collect();
    assert_eq!(listed.len(), 1, "{list}");
    assert_eq!(listed[0]["version"], "0.9.0");

    // The next trigger is planned by the new version.
    let out = api.mention(&["u-v9"]).await;
    let planned = out["notifications"][0]["deliveries"][0]["planned_by"]
        .as_str()
        .unwrap();
    assert!(planned.starts_with("mention@0.9.0#"), "{planned}");

    // A restart (a new engine on the same database) loads it again.
    let again = Engine::open(common::config_for(&api.w.db.url, &api.w.receiver.url()))
        .await
        .unwrap();
    let reloaded = again
        .plugins()
        .into_iter()
        .find(|p| p.name() == "mention")
        .unwrap();
    assert_eq!(reloaded.manifest().version, "0.9.0");
    api.stop().await;
}

// ---- outbound lifecycle webhooks ---------------------------------------------------------

/// An endpoint on 127.0.0.1 that records each request and answers 204: its URL and server.
async fn recording_endpoint() -> (String, Provider) {
    let hook = Provider::start(Answer::status(204, "")).await;
    (format!("http://{}/hook", hook.authority()), hook)
}

/// What the endpoint received, each a `POST` to its URL.
fn hooks(seen: &Provider) -> Vec<Request> {
    let requests = seen.requests();
    for r in &requests {
        assert_eq!((&r.method, r.path.as_str()), (&Method::POST, "/hook"));
    }
    requests
}

async fn endpoints_over_http(backend: Backend) {
    let api = serve(backend, |_| {}).await;
    let (url, seen) = recording_endpoint().await;

    let (s, created) = api
        .post(
            "/v1/endpoints",
            json!({"url": url, "events": ["delivery.*"], "description": "app"}),
        )
        .await;
    assert_eq!(s, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_string();
    let secret = created["secret"].as_str().unwrap().to_string();
    assert!(secret.starts_with("whsec_"), "{created}");
    assert_eq!(created["tenant"], "acme");
    assert_eq!(created["enabled"], true);

    // Bad input names the field, and stores nothing.
    let private = api
        .post(
            "/v1/endpoints",
            json!({"url": "http://10.1.2.3/x", "events": ["*"]}),
        )
        .await;
    let message = error(&private, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    assert!(message.contains("private"), "{message}");
    assert_eq!(private.1["error"]["field"], "url");
    let unknown = api
        .post(
            "/v1/endpoints",
            json!({"url": url, "events": ["delivery.sennt"]}),
        )
        .await;
    error(&unknown, StatusCode::UNPROCESSABLE_ENTITY, "invalid");
    assert_eq!(unknown.1["error"]["field"], "events");
    let (_, list) = api.get("/v1/endpoints").await;
    assert_eq!(list["endpoints"].as_array().unwrap().len(), 1, "{list}");
    assert!(
        list["endpoints"][0].get("secret").is_none(),
        "lists hide secrets"
    );
    let (s, got) = api.get(&format!("/v1/endpoints/{id}/secret")).await;
    assert_eq!(
        (s, got["secret"].as_str()),
        (StatusCode::OK, Some(secret.as_str()))
    );

    // Another tenant sees none of it.
    let (_, other) = api.engine().create_key(Some("other"), "t").await.unwrap();
    let hidden = api
        .as_key(Method::GET, &format!("/v1/endpoints/{id}"), &other, None)
        .await;
    error(&hidden, StatusCode::NOT_FOUND, "not_found");

    // A delivery's lifecycle reaches the endpoint, signed.
    api.mention(&["u-1"]).await;
    api.engine().dispatch_pending().await.unwrap();
    let requests = hooks(&seen);
    assert_eq!(requests.len(), 1);
    standardwebhooks::Webhook::new(&secret)
        .unwrap()
        .verify(&requests[0].body, &requests[0].headers)
        .unwrap();
    let (s, m) = api
        .get(&format!("/v1/endpoints/{id}/messages?limit=5"))
        .await;
    assert_eq!(s, StatusCode::OK, "{m}");
    assert_eq!(m["messages"][0]["event_type"], "delivery.sent", "{m}");
    assert_eq!(m["messages"][0]["status"], "delivered", "{m}");
    assert_eq!(m["messages"][0]["tries"][0]["status_code"], 204, "{m}");
    let bad_limit = api
        .get(&format!("/v1/endpoints/{id}/messages?limit=0"))
        .await;
    error(&bad_limit, StatusCode::UNPROCESSABLE_ENTITY, "invalid");

    // Disabled by hand: no new messages; enabled again: they flow.
    let (s, off) = api
        .post(&format!("/v1/endpoints/{id}/disable"), json!({}))
        .await;
    assert_eq!(
        (s, off["enabled"].as_bool()),
        (StatusCode::OK, Some(false)),
        "{off}"
    );
    let early = api
        .post(&format!("/v1/endpoints/{id}/recover"), json!({}))
        .await;
    error(&early, StatusCode::CONFLICT, "conflict");
    api.mention(&["u-2"]).await;
    api.engine().dispatch_pending().await.unwrap();
    assert_eq!(hooks(&seen).len(), 1);
    let (_, on) = api
        .post(&format!("/v1/endpoints/{id}/enable"), json!({}))
        .await;
    assert_eq!(on["enabled"], true, "{on}");
    api.mention(&["u-3"]).await;
    api.engine().dispatch_pending().await.unwrap();
    assert_eq!(hooks(&seen).len(), 2);
    // Nothing was owed while it was off (it got no messages), so nothing is recovered.
    let (s, r) = api
        .post(&format!("/v1/endpoints/{id}/recover"), json!({}))
        .await;
    assert_eq!(
        (s, r["recovered"].as_u64()),
        (StatusCode::OK, Some(0)),
        "{r}"
    );

    let (s, _) = api
        .send(api.request(
            Method::DELETE,
            &format!("/v1/endpoints/{id}"),
            Some(&api.key),
        ))
        .await;
    assert_eq!(s, StatusCode::NO_CONTENT);
    let gone = api.get(&format!("/v1/endpoints/{id}")).await;
    error(&gone, StatusCode::NOT_FOUND, "not_found");
    api.stop().await;
}

on_both_backends!(
    endpoints_over_http,
    health_ready_and_metrics,
    keys_tenants_and_isolation,
    triggers_and_bad_input,
    deliveries_explain_and_cancel,
    policy_endpoints,
    inbox_over_http,
    inbox_paging_under_concurrent_inserts,
    inbox_stream_pushes_new_items,
    rate_limit_answers_429,
    plugins_load_at_runtime,
);
