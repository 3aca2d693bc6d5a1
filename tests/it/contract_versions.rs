//! Every contract version the host loads, run for real.
//!
//! - **0.x, the whole way**: frozen copies of the first-party plugins as they were before
//!   contract 1.0 (`tests/fixtures/plugins/v0-*`, one per old WIT version: notifiers 0.1.0
//!   `welcome`, 0.2.0 `security-alert`, 0.3.0 `comment`, 0.4.0 `task-assigned`, renderer 0.1.0
//!   `templates` with its own granted templates, adapters 0.1.0 `log` and 0.5.0 `resend`) are
//!   loaded from a `--plugins` directory, with no bundled plugin, and triggered: plan, render,
//!   send, and the delivery is `succeeded`, on SQLite and PostgreSQL. The host calls them all in
//!   1.0's terms (`host/src/plugins/versions.rs`), so this is what proves the `since_v0_*`
//!   conversions.
//! - **1.0 assets**: a 1.0 renderer (`v1-assets`) sees the assets the caller passes for that
//!   call and nothing else, also on a warm instance reused across calls, and a call that reads
//!   more than its budget fails with `output_too_large`.
//! - **Semver**: bindings generated for a test-only copy of the contract at `@1.1.0` with one
//!   more host function (`tests/contract_versions/plugin@1.1`) instantiate and call the real
//!   1.0 component, whose imports and exports are all named `@1.0.0`: what `wit/README.md`'s
//!   1.x rule relies on, checked against wasmtime 48 itself.

use crate::common;

use crate::common::provider::{Answer, Provider};
use crate::common::{Backend, cache_dir, test_db};
use belfry::host::content::{Channel, Content, RenderRequest};
use belfry::host::plugins::assets::Assets;
use belfry::host::plugins::{
    FailureReason, PluginConfig, PluginRuntime, Reuse, RuntimeConfig, WarmConfig,
};
use belfry::{Engine, EngineConfig, TriggerRequest};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn fixture(file: &str) -> PathBuf {
    Path::new(env!("BELFRY_FIXTURE_PLUGINS_DIR")).join(file)
}

/// A `--plugins` directory holding the named fixtures (`NAME.wasm` and `NAME.toml`). The old
/// `templates` renderer's grant points at its templates in the source tree.
fn plugins_dir(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in names {
        std::fs::copy(
            fixture(&format!("{name}.wasm")),
            dir.path().join(format!("{name}.wasm")),
        )
        .unwrap();
        let mut manifest = std::fs::read_to_string(fixture(&format!("{name}.toml"))).unwrap();
        if *name == "v0-1-templates" {
            let templates = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures/plugins/v0-1-templates/templates");
            let grant = r#"source = "templates""#;
            assert!(manifest.contains(grant), "{manifest}");
            manifest = manifest.replace(grant, &format!("source = {:?}", templates.display()));
        }
        std::fs::write(dir.path().join(format!("{name}.toml")), manifest).unwrap();
    }
    dir
}

/// An engine over `backend` that loads only the fixtures `names` (no bundled plugin).
async fn engine(
    backend: Backend,
    names: &[&str],
    tweak: impl FnOnce(&mut EngineConfig),
) -> (Engine, common::TestDb, tempfile::TempDir) {
    let db = test_db(backend).await;
    let dir = plugins_dir(names);
    let mut config = EngineConfig {
        database_url: db.url.clone(),
        bundled: &[],
        plugins_dir: Some(dir.path().to_path_buf()),
        cache_dir: Some(cache_dir()),
        ..Default::default()
    };
    tweak(&mut config);
    let engine = Engine::open(config).await.unwrap();
    let loaded: Vec<String> = engine
        .registry()
        .plugins()
        .iter()
        .map(|p| p.name().to_string())
        .collect();
    for name in names {
        assert!(
            loaded.iter().any(|l| l == name),
            "{name} did not load (loaded: {loaded:?}; broken: {:?})",
            engine.registry().broken()
        );
    }
    (engine, db, dir)
}

/// Triggers `notifier` with `payload`, dispatches what is due, and returns every delivery as
/// `(recipient, channel, status, sent_by plugin name, rendered_by plugin name)`, sorted.
async fn trigger(engine: &Engine, notifier: &str, payload: Value) -> (String, Vec<[String; 5]>) {
    let out = engine
        .trigger(&TriggerRequest::new(notifier, payload))
        .await
        .unwrap();
    engine.dispatch_event(&out.event_id).await.unwrap();
    (
        out.event_id.clone(),
        deliveries(engine, &out.event_id).await,
    )
}

async fn deliveries(engine: &Engine, event_id: &str) -> Vec<[String; 5]> {
    let after = serde_json::to_value(engine.event(event_id).await.unwrap()).unwrap();
    let name = |v: &Value| {
        v.as_str()
            .map(|s| s.split('@').next().unwrap().to_string())
            .unwrap_or_default()
    };
    let mut rows = Vec::new();
    for n in after["notifications"].as_array().unwrap() {
        for d in n["deliveries"].as_array().unwrap() {
            rows.push([
                n["recipient_id"].as_str().unwrap().to_string(),
                d["channel"].as_str().unwrap().to_string(),
                d["status"].as_str().unwrap().to_string(),
                name(&d["sent_by"]),
                name(&d["rendered_by"]),
            ]);
        }
    }
    rows.sort();
    rows
}

fn row(recipient: &str, channel: &str, status: &str, sent_by: &str) -> [String; 5] {
    [
        recipient.into(),
        channel.into(),
        status.into(),
        sent_by.into(),
        "v0-1-templates".into(),
    ]
}

/// Notifier 0.1.0 (`channels` answers a bare list, no severity) through renderer 0.1.0 and
/// adapter 0.1.0 (no headers).
async fn notifier_0_1_and_adapter_0_1_the_whole_way(b: Backend) {
    // Two renderers: the notifier's manifest names the old one (`renderer = "v0-1-templates"`),
    // although `v1-assets`, loaded last, would be the default.
    let (e, _db, _dir) = engine(
        b,
        &["v0-1-welcome", "v0-1-templates", "v0-1-log", "v1-assets"],
        |_| {},
    )
    .await;
    assert_eq!(e.registry().renderer().unwrap().name(), "v1-assets");
    let (_, rows) = trigger(
        &e,
        "welcome",
        json!({"user": {"id": "ada", "email": "ada@example.com", "name": "Ada"}}),
    )
    .await;
    assert_eq!(
        rows,
        [
            row("ada", "email", "succeeded", "v0-1-log"),
            // In-app items are written by the host, not an adapter.
            row("ada", "in-app", "succeeded", ""),
        ]
    );
}

/// Notifier 0.2.0: a declared severity (`critical`) and a plan per recipient.
async fn notifier_0_2_the_whole_way(b: Backend) {
    let (e, _db, _dir) = engine(
        b,
        &["v0-2-security-alert", "v0-1-templates", "v0-1-log"],
        |_| {},
    )
    .await;
    let description = e
        .registry()
        .notifier("security-alert")
        .unwrap()
        .description()
        .cloned()
        .unwrap();
    assert_eq!(
        description.severity,
        belfry::host::policy::Severity::Critical
    );
    let (_, rows) = trigger(
        &e,
        "security-alert",
        json!({
            "user": {"id": "ada", "email": "ada@example.com", "phone": "+15555550100"},
            "what": "a new sign-in from Firefox on Linux"
        }),
    )
    .await;
    assert_eq!(
        rows,
        [
            row("ada", "email", "succeeded", "v0-1-log"),
            row("ada", "sms", "succeeded", "v0-1-log"),
        ]
    );
}

/// Notifier 0.3.0: email held for a digest (no digest rule, so it goes on its own), in-app at
/// once.
async fn notifier_0_3_the_whole_way(b: Backend) {
    let (e, _db, _dir) = engine(b, &["v0-3-comment", "v0-1-templates", "v0-1-log"], |_| {}).await;
    let description = e
        .registry()
        .notifier("comment")
        .unwrap()
        .description()
        .cloned()
        .unwrap();
    assert!(description.fold_deferred, "0.3.0's fold-deferred came up");
    let (_, rows) = trigger(
        &e,
        "comment",
        json!({
            "thread": {"id": "t1", "title": "Launch plan"},
            "author": {"id": "bob", "name": "Bob"},
            "text": "Ship it",
            "followers": [{"id": "ada", "email": "ada@example.com", "name": "Ada"}]
        }),
    )
    .await;
    assert_eq!(
        rows,
        [
            row("ada", "email", "succeeded", "v0-1-log"),
            row("ada", "in-app", "succeeded", ""),
        ]
    );
}

/// Notifier 0.4.0: a workflow, whose first step (in-app) goes at once and whose email step an
/// escalation signal sends.
async fn notifier_0_4_the_whole_way(b: Backend) {
    let (e, _db, _dir) = engine(
        b,
        &["v0-4-task-assigned", "v0-1-templates", "v0-1-log"],
        |_| {},
    )
    .await;
    let description = e
        .registry()
        .notifier("task-assigned")
        .unwrap()
        .description()
        .cloned()
        .unwrap();
    assert_eq!(description.workflow.as_ref().unwrap().steps.len(), 3);
    let (event_id, rows) = trigger(
        &e,
        "task-assigned",
        json!({
            "task": {"id": "T-1", "title": "Review the plan"},
            "assignee": {"id": "ada", "email": "ada@example.com", "name": "Ada"},
            "assigned_by": {"name": "Bob"}
        }),
    )
    .await;
    assert!(
        rows.contains(&row("ada", "in-app", "succeeded", "")),
        "{rows:?}"
    );
    let out = e
        .signal("default", "ada", "task.escalate", &json!({}))
        .await
        .unwrap();
    assert_eq!(out.runs.len(), 1, "{out:?}");
    e.dispatch_pending().await.unwrap();
    let rows = deliveries(&e, &event_id).await;
    assert!(
        rows.contains(&row("ada", "email", "succeeded", "v0-1-log")),
        "{rows:?}"
    );
}

/// Adapter 0.5.0 (message headers, the webhook's absolute URL) sending to a real server on
/// 127.0.0.1; the notifier is 0.1.0's `welcome`.
async fn adapter_0_5_the_whole_way(b: Backend) {
    // A local "Resend": any request answers a fresh id.
    let received =
        Provider::start_with(|n, _| Answer::json(200, json!({"id": format!("re_{n}")}))).await;
    let authority = received.authority();
    let (e, _db, _dir) = engine(b, &["v0-1-welcome", "v0-1-templates", "v0-5-resend"], |c| {
        c.routes = BTreeMap::from([(Channel::Email, "v0-5-resend".to_string())]);
        let mut config = PluginConfig::new();
        config.insert(
            "v0-5-resend".into(),
            BTreeMap::from([
                ("api_key".into(), "re_test".into()),
                ("from".into(), "Acme <no-reply@acme.test>".into()),
                ("api_base".into(), format!("http://{authority}")),
                ("allow_http".into(), authority.clone()),
            ]),
        );
        c.plugin_config = config;
    })
    .await;
    let (event_id, rows) = trigger(
        &e,
        "welcome",
        json!({"user": {"id": "ada", "email": "ada@example.com", "name": "Ada"}}),
    )
    .await;
    assert_eq!(
        rows,
        [
            row("ada", "email", "succeeded", "v0-5-resend"),
            row("ada", "in-app", "succeeded", ""),
        ]
    );
    let posts = received.requests();
    assert_eq!(posts.len(), 1);
    let (path, headers, body) = (&posts[0].path, &posts[0].headers, &posts[0].body);
    assert_eq!(path, "/emails");
    assert_eq!(
        headers.get("authorization").unwrap().to_str().unwrap(),
        "Bearer re_test"
    );
    let body: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(body["to"], json!(["ada@example.com"]), "{body}");
    assert!(
        body["subject"].as_str().unwrap().contains("Ada")
            || body["text"].as_str().unwrap_or_default().contains("Ada"),
        "{body}"
    );
    let after = serde_json::to_value(e.event(&event_id).await.unwrap()).unwrap();
    let email = after["notifications"][0]["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["channel"] == "email")
        .unwrap()
        .clone();
    assert_eq!(email["provider_message_id"], "re_1", "{email}");
}

on_both_backends!(
    notifier_0_1_and_adapter_0_1_the_whole_way,
    notifier_0_2_the_whole_way,
    notifier_0_3_the_whole_way,
    notifier_0_4_the_whole_way,
    adapter_0_5_the_whole_way,
);

// ---- 1.0: assets, per call -----------------------------------------------------------------

fn runtime() -> PluginRuntime {
    let mut plugin_config = PluginConfig::new();
    plugin_config.insert(
        "v1-assets".into(),
        BTreeMap::from([("greeting".into(), "hi".into())]),
    );
    PluginRuntime::new(RuntimeConfig {
        cache_dir: Some(cache_dir()),
        plugin_config,
        warm: WarmConfig::default(),
    })
    .unwrap()
}

fn assets(files: &[(&str, &str)]) -> Arc<Assets> {
    Arc::new(
        Assets::from_entries(
            files
                .iter()
                .map(|(p, b)| (p.to_string(), b.as_bytes().to_vec())),
        )
        .unwrap(),
    )
}

fn read_request(data: Value) -> RenderRequest {
    RenderRequest {
        template: "probe".into(),
        channel: Channel::InApp,
        data: data.to_string(),
        locale: None,
    }
}

fn in_app(content: Content) -> (String, String) {
    match content {
        Content::InApp { headline, body, .. } => (headline, body),
        other => panic!("v1-assets rendered {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_0_renderer_reads_only_the_assets_of_the_call_it_serves() {
    let runtime = runtime();
    let renderer = runtime.load_file(&fixture("v1-assets.wasm")).await.unwrap();
    assert_eq!(renderer.manifest().wit, "1.0.0");
    let welcome = assets(&[
        ("templates/welcome/in-app/body.j2", "Hello {{ name }}"),
        ("templates/welcome/in-app/headline.j2", "Welcome"),
    ]);
    let mention = assets(&[("templates/mention/in-app/body.j2", "You were mentioned")]);
    let ask = read_request(json!({
        "list": "templates/",
        "read": ["templates/welcome/in-app/body.j2", "templates/mention/in-app/body.j2",
                 "../templates/welcome/in-app/body.j2"]
    }));

    // The same warm instance, for one tenant, serving two notifiers in turn: each call sees
    // its own notifier's assets only.
    let (listed, body) = in_app(
        runtime
            .render(&renderer, &ask, &welcome, Reuse::Tenant("t"))
            .await
            .unwrap(),
    );
    assert_eq!(
        listed,
        "templates/welcome/in-app/body.j2,templates/welcome/in-app/headline.j2"
    );
    assert_eq!(
        body,
        "templates/welcome/in-app/body.j2=Hello {{ name }};\
         templates/mention/in-app/body.j2=<none>;\
         ../templates/welcome/in-app/body.j2=<none>;greeting=hi"
    );
    assert_eq!(runtime.warm_instances(), 1);
    let (listed, body) = in_app(
        runtime
            .render(&renderer, &ask, &mention, Reuse::Tenant("t"))
            .await
            .unwrap(),
    );
    assert_eq!(runtime.warm_instances(), 1, "the warm instance served it");
    assert_eq!(listed, "templates/mention/in-app/body.j2");
    assert!(
        body.starts_with(
            "templates/welcome/in-app/body.j2=<none>;\
             templates/mention/in-app/body.j2=You were mentioned;"
        ),
        "{body}"
    );
    // No assets at all: nothing to list or read.
    let (listed, body) = in_app(
        runtime
            .render(&renderer, &ask, &Assets::empty(), Reuse::Fresh)
            .await
            .unwrap(),
    );
    assert_eq!(listed, "");
    assert!(body.starts_with("templates/welcome/in-app/body.j2=<none>;"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_assets_is_bounded_per_call() {
    let runtime = runtime();
    let renderer = runtime.load_file(&fixture("v1-assets.wasm")).await.unwrap();
    // v1-assets' output limit is 16 KiB: 64 KiB of assets may be read per call.
    let limit = renderer.manifest().limits.output_bytes;
    assert_eq!(limit, 16 << 10);
    let big = "x".repeat(10 << 10);
    let files = assets(&[("big.txt", big.as_str())]);
    // Six reads (60 KiB) fit; the budget starts again with every call, warm or not.
    for _ in 0..3 {
        runtime
            .render(
                &renderer,
                &read_request(json!({"read": ["big.txt"], "repeat": 5})),
                &files,
                Reuse::Tenant("t"),
            )
            .await
            .unwrap();
    }
    let err = runtime
        .render(
            &renderer,
            &read_request(json!({"read": ["big.txt"], "repeat": 1000})),
            &files,
            Reuse::Tenant("t"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.reason, FailureReason::OutputTooLarge, "{err}");
    assert!(err.message.contains("reading assets"), "{err}");
    assert!(err.message.contains(&(4 * limit).to_string()), "{err}");
    // The failed instance is not kept; the next call works.
    runtime
        .render(
            &renderer,
            &read_request(json!({"read": ["big.txt"]})),
            &files,
            Reuse::Tenant("t"),
        )
        .await
        .unwrap();
}

// ---- semver: a 1.0 component on bindings for 1.1 -------------------------------------------

mod v1_1 {
    wasmtime::component::bindgen!({
        world: "renderer",
        path: "tests/contract_versions/plugin@1.1",
        exports: { default: async },
    });
}

/// A host at contract 1.1: the test copy adds `config.keys`, which the 1.0 component never
/// imports.
struct Host11 {
    wasi: wasmtime_wasi::WasiCtx,
    table: wasmtime::component::ResourceTable,
    calls: Vec<String>,
}

impl wasmtime_wasi::WasiView for Host11 {
    fn ctx(&mut self) -> wasmtime_wasi::WasiCtxView<'_> {
        wasmtime_wasi::WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl v1_1::belfry::plugin::types::Host for Host11 {}

impl v1_1::belfry::plugin::log::Host for Host11 {
    fn log(&mut self, _level: v1_1::belfry::plugin::log::Level, message: String) {
        self.calls.push(format!("log: {message}"));
    }
}

impl v1_1::belfry::plugin::config::Host for Host11 {
    fn get(&mut self, key: String) -> Option<String> {
        self.calls.push(format!("config.get {key}"));
        Some("from the 1.1 host".into())
    }
    fn keys(&mut self) -> Vec<String> {
        vec!["greeting".into()]
    }
}

impl v1_1::belfry::plugin::assets::Host for Host11 {
    fn read(&mut self, path: String) -> Option<Vec<u8>> {
        self.calls.push(format!("assets.read {path}"));
        (path == "a.txt").then(|| b"A".to_vec())
    }
    fn list(&mut self, prefix: String) -> Vec<String> {
        self.calls.push(format!("assets.list {prefix}"));
        vec!["a.txt".into()]
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_1_0_component_runs_on_bindings_for_1_1() {
    use wasmtime::component::{Component, HasSelf, Linker};
    let engine = wasmtime::Engine::default();
    let component = Component::from_file(&engine, fixture("v1-assets.wasm")).unwrap();
    // Built against 1.0: every belfry name it imports or exports is `@1.0.0`.
    let ty = component.component_type();
    let names: Vec<String> = ty
        .imports(&engine)
        .map(|(n, _)| n.to_string())
        .chain(ty.exports(&engine).map(|(n, _)| n.to_string()))
        .filter(|n| n.starts_with("belfry:"))
        .collect();
    assert!(
        names.contains(&"belfry:plugin/assets@1.0.0".to_string())
            && names.contains(&"belfry:plugin/rendering@1.0.0".to_string())
            && names.iter().all(|n| n.ends_with("@1.0.0")),
        "{names:?}"
    );

    let mut linker: Linker<Host11> = Linker::new(&engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut linker).unwrap();
    // Defines `belfry:plugin/{log,config,assets}@1.1.0` only.
    v1_1::Renderer::add_to_linker::<Host11, HasSelf<Host11>>(&mut linker, |s| s).unwrap();
    // Imports: wasmtime's linker resolves `@1.0.0` to the `@1.1.0` definitions. Exports: the
    // 1.1 bindings find `rendering@1.1.0` as the component's `rendering@1.0.0`.
    let pre = v1_1::RendererPre::new(linker.instantiate_pre(&component).unwrap()).unwrap();
    let mut store = wasmtime::Store::new(
        &engine,
        Host11 {
            wasi: wasmtime_wasi::WasiCtxBuilder::new().build(),
            table: Default::default(),
            calls: Vec::new(),
        },
    );
    let renderer = pre.instantiate_async(&mut store).await.unwrap();
    let request = v1_1::belfry::plugin::types::RenderRequest {
        template: "probe".into(),
        channel: v1_1::belfry::plugin::types::Channel::InApp,
        data: json!({"list": "", "read": ["a.txt", "b.txt"]}).to_string(),
        locale: None,
    };
    let content = renderer
        .belfry_plugin_rendering()
        .call_render(&mut store, &request)
        .await
        .unwrap()
        .unwrap();
    let v1_1::belfry::plugin::types::Content::InApp(content) = content else {
        panic!("{content:?}");
    };
    assert_eq!(content.headline, "a.txt");
    assert_eq!(
        content.body,
        "a.txt=A;b.txt=<none>;greeting=from the 1.1 host"
    );
    assert_eq!(
        store.data().calls,
        [
            "assets.list ",
            "assets.read a.txt",
            "assets.read b.txt",
            "config.get greeting",
            "log: v1-assets rendered probe",
        ]
    );
}

// ---- old adapters' webhooks, in 1.0's terms ------------------------------------------------

const RESEND_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";

/// A Resend (Svix-signed) webhook request for `body`, signed with `secret`.
fn resend_hook(secret: &str, body: &Value) -> belfry::host::feedback::WebhookRequest {
    let raw = serde_json::to_vec(body).unwrap();
    let ts = chrono::Utc::now().timestamp();
    let signature = standardwebhooks::Webhook::new(secret)
        .unwrap()
        .sign("msg_1", ts, &raw)
        .unwrap();
    belfry::host::feedback::WebhookRequest {
        method: "POST".into(),
        url: "https://belfry.example.com/v1/webhooks/default/v0-5-resend?x=1".into(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("svix-id".into(), "msg_1".into()),
            ("svix-timestamp".into(), ts.to_string()),
            ("svix-signature".into(), signature),
        ],
        body: raw,
        received_at: chrono::Utc::now(),
    }
}

/// A 0.1.0 adapter (its `uri` is the path, it has no receive time) and a 0.5.0 one answer
/// `handle-webhook` through the host's 1.0 call: the rejection and the events come up intact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_adapters_answer_webhooks_in_1_0_terms() {
    use belfry::host::feedback::{FeedbackKind, WebhookRejection};
    let mut plugin_config = PluginConfig::new();
    plugin_config.insert(
        "v0-5-resend".into(),
        BTreeMap::from([("webhook_secret".into(), RESEND_SECRET.into())]),
    );
    let runtime = PluginRuntime::new(RuntimeConfig {
        cache_dir: Some(cache_dir()),
        plugin_config,
        warm: WarmConfig::default(),
    })
    .unwrap();
    let log = runtime.load_file(&fixture("v0-1-log.wasm")).await.unwrap();
    let resend = runtime
        .load_file(&fixture("v0-5-resend.wasm"))
        .await
        .unwrap();
    let delivered = json!({
        "type": "email.delivered",
        "created_at": "2026-12-04T10:00:00.000Z",
        "data": {"email_id": "re_1", "created_at": "2026-12-04T10:00:00.000Z",
                 "to": ["ada@example.com"]}
    });

    let answer = runtime
        .handle_webhook(&log, &resend_hook(RESEND_SECRET, &delivered))
        .await
        .unwrap();
    assert!(
        matches!(&answer, Err(WebhookRejection::Unsupported(m)) if m.contains("log adapter")),
        "{answer:?}"
    );

    let events = runtime
        .handle_webhook(&resend, &resend_hook(RESEND_SECRET, &delivered))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].kind, FeedbackKind::Delivered);
    assert_eq!(events[0].provider_event_id, "msg_1");
    assert_eq!(events[0].provider_message_id, "re_1");
    assert_eq!(
        events[0].occurred_at.map(|t| t.to_rfc3339()),
        Some("2026-12-04T10:00:00+00:00".to_string())
    );

    let forged = runtime
        .handle_webhook(
            &resend,
            &resend_hook("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", &delivered),
        )
        .await
        .unwrap();
    assert!(
        matches!(forged, Err(WebhookRejection::Unauthorized(_))),
        "{forged:?}"
    );
}
