//! A misbehaving plugin fails its own call, and the failure is recorded on the delivery
//! (reason code, plugin build, function) while the engine keeps working.

use crate::common;

use crate::common::Backend;
use belfry::host::content::{Channel, RenderRequest};
use belfry::host::dispatch::{DispatchConfig, RetryPolicy};
use belfry::host::plugins::{self, PluginRuntime, Reuse, RuntimeConfig};
use belfry::{Engine, EngineConfig, TriggerRequest};
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

/// `renderer`: the default renderer, as an operator's `--renderer` names it (a renderer under
/// test, over the bundled `templates`).
async fn engine(
    db: &common::TestDb,
    plugins: &Path,
    config: plugins::PluginConfig,
    dispatch: DispatchConfig,
    renderer: Option<&str>,
) -> Engine {
    Engine::open(EngineConfig {
        database_url: db.url.clone(),
        bundled: belfry::BUNDLED,
        plugins_dir: Some(plugins.to_path_buf()),
        cache_dir: Some(common::cache_dir()),
        plugin_config: config,
        routes: Default::default(),
        renderer: renderer.map(str::to_string),
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
    let e = engine(&db, dir.path(), config, Default::default(), None).await;
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
    let e = engine(
        &db,
        dir.path(),
        Default::default(),
        dispatch,
        Some("infinite-loop"),
    )
    .await;
    assert_eq!(
        e.registry().renderer().unwrap().name(),
        "infinite-loop",
        "the runaway renderer is the default"
    );
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
    // The bundled templates renderer, loaded with a manifest that grants nothing, sees no
    // template of its own: only the assets a render is handed (the calling notifier's).
    let dir = tempfile::tempdir().unwrap();
    let templates = belfry::BUNDLED
        .iter()
        .find(|b| b.name == "templates")
        .unwrap();
    let wasm: PathBuf = dir.path().join("templates.wasm");
    std::fs::write(&wasm, templates.wasm).unwrap();
    std::fs::write(
        dir.path().join("templates.toml"),
        "name = \"templates\"\nversion = \"0.1.0\"\nkind = \"renderer\"\nwit = \"1.0.0\"\n",
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
    let err = runtime
        .render(
            &plugin,
            &req,
            &plugins::assets::Assets::empty(),
            Reuse::Fresh,
        )
        .await
        .unwrap_err();
    assert_eq!(err.reason.as_str(), "plugin_error");
    assert!(err.message.contains("template not found"), "{err}");

    // The same component, handed the welcome notifier's assets, renders.
    let bundled = plugins::load_all(&runtime, belfry::BUNDLED, None)
        .await
        .unwrap()
        .plugins;
    let welcome = bundled.iter().find(|p| p.name() == "welcome").unwrap();
    runtime
        .render(&plugin, &req, welcome.assets(), Reuse::Fresh)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_warm_renderer_instance_renders_like_a_fresh_one() {
    let runtime = PluginRuntime::new(RuntimeConfig {
        cache_dir: Some(common::cache_dir()),
        ..Default::default()
    })
    .unwrap();
    let bundled = plugins::load_all(&runtime, belfry::BUNDLED, None)
        .await
        .unwrap()
        .plugins;
    let templates = bundled.iter().find(|p| p.name() == "templates").unwrap();
    let welcome = bundled.iter().find(|p| p.name() == "welcome").unwrap();
    let assets = welcome.assets();
    let req = |name: &str| RenderRequest {
        template: "welcome".into(),
        channel: Channel::Email,
        data: json!({"name": name, "app_name": "belfry"}).to_string(),
        locale: None,
    };
    for name in ["Ada", "Grace", "Alan"] {
        let fresh = runtime
            .render(templates, &req(name), assets, Reuse::Fresh)
            .await
            .unwrap();
        let warm = runtime
            .render(templates, &req(name), assets, Reuse::Tenant("t"))
            .await
            .unwrap();
        assert_eq!(fresh, warm);
    }
    // One instance served the three warm calls.
    assert_eq!(runtime.warm_instances(), 1);
    // The renderer's own error (a missing variable) leaves a sound instance: it is kept.
    let bad = RenderRequest {
        data: "{}".into(),
        ..req("x")
    };
    let err = runtime
        .render(templates, &bad, assets, Reuse::Tenant("t"))
        .await
        .unwrap_err();
    assert_eq!(err.reason.as_str(), "plugin_error");
    assert!(
        err.message
            .starts_with("missing variable: undefined variable `app_name`"),
        "{err}"
    );
    let again = runtime
        .render(templates, &req("Linus"), assets, Reuse::Tenant("t"))
        .await
        .unwrap();
    let fresh = runtime
        .render(templates, &req("Linus"), assets, Reuse::Fresh)
        .await
        .unwrap();
    assert_eq!(again, fresh);
    let missing = RenderRequest {
        template: "nope".into(),
        ..req("x")
    };
    let err = runtime
        .render(templates, &missing, assets, Reuse::Fresh)
        .await
        .unwrap_err();
    assert!(err.message.contains("template `nope` not found"), "{err}");
    let no_variant = RenderRequest {
        channel: Channel::Sms,
        ..req("x")
    };
    let err = runtime
        .render(templates, &no_variant, assets, Reuse::Fresh)
        .await
        .unwrap_err();
    assert!(err.message.contains("has no sms variant"), "{err}");
}

/// What the `remember` fixture saw before this call, from what it rendered.
async fn remembered(
    runtime: &PluginRuntime,
    plugin: &plugins::Plugin,
    data: &str,
    reuse: Reuse<'_>,
) -> String {
    let req = RenderRequest {
        template: "x".into(),
        channel: Channel::InApp,
        data: json!(data).to_string(),
        locale: None,
    };
    match runtime
        .render(plugin, &req, &plugins::assets::Assets::empty(), reuse)
        .await
        .unwrap()
    {
        belfry::host::content::Content::InApp { body, .. } => body,
        other => panic!("remember rendered {other:?}"),
    }
}

/// A runtime keeping instances as `warm` says, with the `remember` fixture loaded.
async fn remember_runtime(warm: plugins::WarmConfig) -> (PluginRuntime, plugins::Plugin) {
    let runtime = PluginRuntime::new(RuntimeConfig {
        cache_dir: Some(common::cache_dir()),
        warm,
        ..Default::default()
    })
    .unwrap();
    let remember = load_remember(&runtime).await;
    (runtime, remember)
}

async fn load_remember(runtime: &PluginRuntime) -> plugins::Plugin {
    runtime
        .load_file(&Path::new(belfry::FIXTURE_PLUGINS_DIR).join("remember.wasm"))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_warm_instance_serves_only_its_own_tenant_and_is_retired_after_a_failure_or_its_calls() {
    let (runtime, remember) = remember_runtime(plugins::WarmConfig {
        max_calls: 3,
        ..Default::default()
    })
    .await;

    // Warm for tenant a: the second call sees the first's data, so the instance was kept.
    assert_eq!(
        remembered(&runtime, &remember, "a1", Reuse::Tenant("a")).await,
        ""
    );
    assert_eq!(
        remembered(&runtime, &remember, "a2", Reuse::Tenant("a")).await,
        "a1"
    );
    // Tenant b, and a fresh call, never see what tenant a's instance holds.
    assert_eq!(
        remembered(&runtime, &remember, "b1", Reuse::Tenant("b")).await,
        ""
    );
    assert_eq!(
        remembered(&runtime, &remember, "f1", Reuse::Fresh).await,
        ""
    );
    assert_eq!(
        remembered(&runtime, &remember, "b2", Reuse::Tenant("b")).await,
        "b1"
    );
    // The third call is tenant a's instance's last (max_calls = 3); the next starts afresh.
    assert_eq!(
        remembered(&runtime, &remember, "a3", Reuse::Tenant("a")).await,
        "a1,a2"
    );
    assert_eq!(
        remembered(&runtime, &remember, "a4", Reuse::Tenant("a")).await,
        ""
    );
    assert_eq!(
        remembered(&runtime, &remember, "a5", Reuse::Tenant("a")).await,
        "a4"
    );

    // A plugin's own error leaves the instance sound and kept (and counts as a call).
    assert_eq!(
        remembered(&runtime, &remember, "c1", Reuse::Tenant("c")).await,
        ""
    );
    let refuse = RenderRequest {
        template: "x".into(),
        channel: Channel::InApp,
        data: json!("refuse").to_string(),
        locale: None,
    };
    let err = runtime
        .render(
            &remember,
            &refuse,
            &plugins::assets::Assets::empty(),
            Reuse::Tenant("c"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.reason.as_str(), "plugin_error");
    assert_eq!(
        remembered(&runtime, &remember, "c2", Reuse::Tenant("c")).await,
        "c1"
    );

    // A trap drops it: the next call of the tenant runs on a fresh instance, and the trap's
    // message is this call's stderr alone.
    let panic = RenderRequest {
        data: json!("panic").to_string(),
        ..refuse.clone()
    };
    let err = runtime
        .render(
            &remember,
            &panic,
            &plugins::assets::Assets::empty(),
            Reuse::Tenant("b"),
        )
        .await
        .unwrap_err();
    assert_eq!(err.reason.as_str(), "trap");
    assert!(
        err.message.contains("remember panicked on purpose"),
        "{err}"
    );
    assert_eq!(
        remembered(&runtime, &remember, "b3", Reuse::Tenant("b")).await,
        ""
    );
    let err = runtime
        .render(
            &remember,
            &panic,
            &plugins::assets::Assets::empty(),
            Reuse::Tenant("b"),
        )
        .await
        .unwrap_err();
    assert!(
        err.message.contains("remember panicked on purpose"),
        "{err}"
    );
    // The warm instance had written about b3 to stderr in its earlier call; not this call's.
    assert!(!err.message.contains("rendering b3"), "{err}");

    // A reloaded build is another build: its instances start afresh.
    let reloaded = load_remember(&runtime).await;
    assert_eq!(
        remembered(&runtime, &reloaded, "r1", Reuse::Tenant("a")).await,
        ""
    );

    // With reuse off, every call is fresh.
    let (off, remember) = remember_runtime(plugins::WarmConfig {
        max_calls: 0,
        ..Default::default()
    })
    .await;
    for data in ["x1", "x2"] {
        assert_eq!(
            remembered(&off, &remember, data, Reuse::Tenant("a")).await,
            ""
        );
    }
    assert_eq!(off.warm_instances(), 0);
}

#[tokio::test]
async fn the_warm_pool_keeps_at_most_max_idle_instances_dropping_the_oldest() {
    let (runtime, remember) = remember_runtime(plugins::WarmConfig {
        max_calls: 100,
        max_idle: 2,
    })
    .await;
    for tenant in ["a", "b", "c"] {
        remembered(
            &runtime,
            &remember,
            &format!("{tenant}1"),
            Reuse::Tenant(tenant),
        )
        .await;
    }
    assert_eq!(runtime.warm_instances(), 2);
    // a's was the oldest, so it went; b's and c's wait.
    assert_eq!(
        remembered(&runtime, &remember, "a2", Reuse::Tenant("a")).await,
        ""
    );
    assert_eq!(
        remembered(&runtime, &remember, "c2", Reuse::Tenant("c")).await,
        "c1"
    );
}

on_both_backends!(
    a_denied_adapter_call_is_recorded_on_the_delivery_and_its_attempt,
    a_runaway_renderer_is_retried_as_transient_then_given_up_and_the_next_trigger_still_plans,
);
