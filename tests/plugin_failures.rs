//! A misbehaving plugin fails its own call, and the failure is recorded on the delivery
//! (reason code, plugin build, function) while the engine keeps working.

mod common;

use belfry::host::content::{Channel, RenderRequest};
use belfry::host::dispatch::{DispatchConfig, RetryPolicy};
use belfry::host::plugins::{self, PluginRuntime, RuntimeConfig};
use belfry::{Engine, EngineConfig, TriggerRequest};
use common::Backend;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A plugins directory holding copies of the named hostile fixtures.
fn plugins_dir(cases: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for case in cases {
        for ext in ["wasm", "toml"] {
            std::fs::copy(
                Path::new(belfry::FIXTURE_PLUGINS_DIR).join(format!("{case}.{ext}")),
                dir.path().join(format!("{case}.{ext}")),
            )
            .unwrap();
        }
    }
    dir
}

async fn engine(
    db: &common::TestDb,
    plugins: &Path,
    config: plugins::PluginConfig,
    dispatch: DispatchConfig,
) -> Engine {
    Engine::open(EngineConfig {
        database_url: db.url.clone(),
        bundled: belfry::BUNDLED,
        plugins_dir: Some(plugins.to_path_buf()),
        cache_dir: Some(common::cache_dir()),
        plugin_config: config,
        routes: Default::default(),
        dispatch,
        ..Default::default()
    })
    .await
    .unwrap()
}

async fn a_denied_adapter_call_is_recorded_on_the_delivery_and_its_attempt(b: Backend) {
    let db = common::test_db(b).await;
    // forbidden-host serves the webhook channel; loaded after the bundled webhook adapter, it
    // takes the route.
    let dir = plugins_dir(&["forbidden-host"]);
    let mut config = plugins::PluginConfig::new();
    config.insert(
        "forbidden-host".into(),
        BTreeMap::from([("url".into(), "http://127.0.0.1:9/x".into())]),
    );
    let e = engine(&db, dir.path(), config, Default::default()).await;
    let o = e
        .trigger(&TriggerRequest::new(
            "order-shipped",
            json!({"order_id": "1", "carrier": "c", "tracking_url": "https://t.example.com",
                   "customer": {"id": "only-webhook"}}),
        ))
        .await
        .unwrap();
    e.dispatch_event(&o.event_id).await.unwrap();
    let d = &e.event(&o.event_id).await.unwrap().notifications[0].deliveries[0];
    assert_eq!(d.status, "failed");
    assert_eq!(d.status_reason.as_deref(), Some("adapter_failed"));
    let detail = d.status_detail.as_deref().unwrap();
    assert!(detail.contains("forbidden-host@0.1.0#"), "{detail}");
    assert!(
        detail.contains("`send`") && detail.contains("(capability_denied)"),
        "{detail}"
    );
    assert!(
        detail.contains("add \"127.0.0.1:9\" to [capabilities] http"),
        "{detail}"
    );
    let x = e.explain(&d.id).await.unwrap();
    assert_eq!(x.attempts[0].outcome, "capability_denied");
    assert!(x.attempts[0].adapter.starts_with("forbidden-host@0.1.0#"));
}

async fn a_runaway_renderer_is_retried_as_transient_then_given_up_and_the_next_trigger_still_plans(
    b: Backend,
) {
    let db = common::test_db(b).await;
    let dir = plugins_dir(&["infinite-loop"]);
    // Two attempts with no wait between: `dispatch_event` runs the retry at once.
    let retry = RetryPolicy {
        max_attempts: 2,
        base: Duration::ZERO,
        max_delay: Duration::ZERO,
        jitter: 0.0,
    };
    let dispatch = DispatchConfig {
        retry,
        ..Default::default()
    };
    let e = engine(&db, dir.path(), Default::default(), dispatch).await;
    let o = e
        .trigger(&TriggerRequest::new(
            "welcome",
            json!({"user": {"id": "w", "email": "w@example.com"}}),
        ))
        .await
        .unwrap();
    let ran = e.dispatch_event(&o.event_id).await.unwrap();
    // Each delivery: a timeout (transient, retried), another timeout, then given up.
    assert_eq!(ran.len(), 4, "{ran:?}");
    let after = e.event(&o.event_id).await.unwrap();
    for d in &after.notifications[0].deliveries {
        assert_eq!(d.status, "cancelled");
        assert_eq!(d.status_reason.as_deref(), Some("retries_exhausted"));
        let detail = d.status_detail.as_deref().unwrap();
        assert!(
            detail.contains("after 2 attempts")
                && detail.contains("render_failed")
                && detail.contains("infinite-loop@0.1.0#")
                && detail.contains("(timeout)"),
            "{detail}"
        );
        let x = e.explain(&d.id).await.unwrap();
        let kinds: Vec<&str> = x.timeline.iter().map(|t| t.kind.as_str()).collect();
        assert_eq!(
            kinds.iter().filter(|k| **k == "retry.scheduled").count(),
            1,
            "{kinds:?}"
        );
        assert_eq!(kinds.last(), Some(&"delivery.cancelled"));
    }
    // The notifier plugin and the database are unaffected.
    let next = e
        .trigger(&TriggerRequest::new(
            "welcome",
            json!({"user": {"id": "w2"}}),
        ))
        .await
        .unwrap();
    assert_eq!(next.notifications.len(), 1);
}

#[tokio::test]
async fn an_empty_grant_blocks_the_file_system() {
    // The bundled templates renderer, loaded with a manifest that grants nothing, cannot see
    // its templates: nothing is reachable unless granted.
    let dir = tempfile::tempdir().unwrap();
    let templates = belfry::BUNDLED
        .iter()
        .find(|b| b.name == "templates")
        .unwrap();
    let wasm: PathBuf = dir.path().join("templates.wasm");
    std::fs::write(&wasm, templates.wasm).unwrap();
    std::fs::write(
        dir.path().join("templates.toml"),
        "name = \"templates\"\nversion = \"0.1.0\"\nkind = \"renderer\"\nwit = \"0.1.0\"\n",
    )
    .unwrap();
    let runtime = PluginRuntime::new(RuntimeConfig::default()).unwrap();
    let plugin = runtime.load_file(&wasm).await.unwrap();
    let req = RenderRequest {
        template: "welcome".into(),
        channel: Channel::InApp,
        data: r#"{"name": "A", "app_name": "b"}"#.into(),
        locale: None,
    };
    let err = runtime.render(&plugin, &req).await.unwrap_err();
    assert_eq!(err.reason.as_str(), "plugin_error");
    assert!(err.message.contains("template not found"), "{err}");

    // The same component with the grant renders.
    let bundled = plugins::load_all(&runtime, belfry::BUNDLED, None)
        .await
        .unwrap();
    let granted = bundled.iter().find(|p| p.name() == "templates").unwrap();
    assert_eq!(granted.reference().hash, plugin.reference().hash);
    runtime.render(granted, &req).await.unwrap();
}

#[tokio::test]
async fn a_reused_renderer_instance_renders_like_a_fresh_one_and_is_dropped_after_a_failure() {
    let runtime = PluginRuntime::new(RuntimeConfig {
        cache_dir: Some(common::cache_dir()),
        plugin_config: Default::default(),
    })
    .unwrap();
    let bundled = plugins::load_all(&runtime, belfry::BUNDLED, None)
        .await
        .unwrap();
    let templates = bundled.iter().find(|p| p.name() == "templates").unwrap();
    let req = |name: &str| RenderRequest {
        template: "welcome".into(),
        channel: Channel::Email,
        data: json!({"name": name, "app_name": "belfry"}).to_string(),
        locale: None,
    };
    let mut session = plugins::RendererSession::new(&runtime, templates);
    for name in ["Ada", "Grace", "Alan"] {
        let fresh = runtime.render(templates, &req(name)).await.unwrap();
        let reused = session.render(&req(name)).await.unwrap();
        assert_eq!(fresh, reused);
    }
    // A failing call (a missing variable) fails alone; the session goes on with a new instance.
    let bad = RenderRequest {
        data: "{}".into(),
        ..req("x")
    };
    let err = session.render(&bad).await.unwrap_err();
    assert_eq!(err.reason.as_str(), "plugin_error");
    assert!(
        err.message
            .starts_with("missing variable: undefined variable `app_name`"),
        "{err}"
    );
    session.render(&req("Linus")).await.unwrap();
    let missing = RenderRequest {
        template: "nope".into(),
        ..req("x")
    };
    let err = runtime.render(templates, &missing).await.unwrap_err();
    assert!(err.message.contains("template `nope` not found"), "{err}");
    let no_variant = RenderRequest {
        channel: Channel::Sms,
        ..req("x")
    };
    let err = runtime.render(templates, &no_variant).await.unwrap_err();
    assert!(err.message.contains("has no sms variant"), "{err}");

    // A panicking renderer traps; its session drops the instance and the next call traps again
    // on a fresh one instead of reporting a dead instance.
    let panic = runtime
        .load_file(&Path::new(belfry::FIXTURE_PLUGINS_DIR).join("panic.wasm"))
        .await
        .unwrap();
    let mut session = plugins::RendererSession::new(&runtime, &panic);
    for _ in 0..2 {
        let err = session.render(&req("x")).await.unwrap_err();
        assert_eq!(err.reason.as_str(), "trap");
        assert!(err.message.contains("panicked on purpose"), "{err}");
    }
}

on_both_backends!(
    a_denied_adapter_call_is_recorded_on_the_delivery_and_its_attempt,
    a_runaway_renderer_is_retried_as_transient_then_given_up_and_the_next_trigger_still_plans,
);
