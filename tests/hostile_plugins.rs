//! Hostile plugins, one folder per case under `tests/fixtures/plugins/` (built from source by
//! `build.rs`), one test per case: each must fail its own call with the expected reason within
//! its limit, and a normal plugin must work right after, in the same process and runtime.
//! `build.rs` lists the folders that hold an `expected.toml`, so a new folder is a new test.
//!
//! A binary of its own: it puts a secret into the process environment (`std::env::set_var`)
//! for the `env-var` case to look for, which is unsound while other threads may read the
//! environment (every PostgreSQL test of `tests/it` reads `BELFRY_TEST_POSTGRES_URL`).

// The shared set-up of `tests/it`, of which this binary uses a part.
#[path = "it/common/mod.rs"]
#[allow(dead_code)]
mod common;

use belfry::host::content::{Channel, Content, Recipient, RenderRequest};
use belfry::host::plugins::{
    self, OutgoingMessage, Plugin, PluginKind, PluginRuntime, Reuse, RuntimeConfig,
};
use common::provider::{Answer, Provider};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

const SECRET_VALUE: &str = "host-secret-must-not-leak";

/// One test per case folder: `hostile_cases!(folder_name = "folder-name", …)`, written by
/// `build.rs`.
macro_rules! hostile_cases {
    ($($test:ident = $folder:literal),* $(,)?) => {
        /// The cases this binary tests, by folder.
        const CASES: &[&str] = &[$($folder),*];
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() {
                hostile_case($folder).await
            }
        )*
    };
}

include!(concat!(env!("OUT_DIR"), "/hostile_cases.rs"));

/// Puts the secret the `env-var` case looks for into the environment, once. Every test of
/// this binary calls it first, so none reads the environment while it is written.
fn secret_in_env() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    // SAFETY: the other tests of this binary wait on `ONCE` before they go on (see above).
    ONCE.call_once(|| unsafe { std::env::set_var("BELFRY_HOSTILE_SECRET", SECRET_VALUE) });
}

#[derive(serde::Deserialize)]
struct Expected {
    kind: String,
    reason: String,
    message_contains: String,
}

fn message() -> OutgoingMessage {
    OutgoingMessage {
        delivery_id: "d".into(),
        notification_id: "n".into(),
        tenant: "t".into(),
        idempotency_key: "belfry-d".into(),
        attempt: 1,
        channel: Channel::Webhook,
        recipient: Recipient {
            id: "r".into(),
            email: None,
            phone: None,
            data: None,
        },
        content: Content::Webhook { body: "{}".into() },
        headers: Vec::new(),
    }
}

/// Every folder with an `expected.toml` is a test above, built, and there is at least one.
#[test]
fn every_case_folder_is_a_test() {
    secret_in_env();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/plugins");
    let mut folders: Vec<String> = std::fs::read_dir(&src)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("expected.toml").is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    folders.sort();
    let mut cases: Vec<&str> = CASES.to_vec();
    cases.sort();
    assert!(!cases.is_empty(), "no hostile cases in {}", src.display());
    assert_eq!(cases, folders, "the cases build.rs listed, and the folders");
    let mut built: Vec<String> = std::fs::read_dir(belfry::FIXTURE_PLUGINS_DIR)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|name| name.strip_suffix(".expected.toml").map(str::to_string))
        .collect();
    built.sort();
    assert_eq!(
        cases, built,
        "the cases build.rs listed, and the cases it built"
    );
}

/// A plugin runtime set up as the engine sets one up, with the bundled plugins a normal
/// render uses, and the server the `forbidden-host` case tries to reach.
struct Host {
    runtime: PluginRuntime,
    bundled: Vec<Plugin>,
    /// The templates are the welcome notifier's package assets, which a render is handed.
    welcome_assets: Arc<plugins::assets::Assets>,
    good_request: RenderRequest,
    hits: Provider,
}

impl Host {
    async fn new() -> Host {
        secret_in_env();
        let hits = Provider::start(Answer::status(200, "leaked")).await;
        let url = format!("http://{}/steal", hits.authority());
        let mut plugin_config = plugins::PluginConfig::new();
        plugin_config.insert(
            "forbidden-host".into(),
            BTreeMap::from([("url".into(), url)]),
        );
        let runtime = PluginRuntime::new(RuntimeConfig {
            cache_dir: Some(common::cache_dir()),
            plugin_config,
            ..Default::default()
        })
        .unwrap();
        let bundled = plugins::load_all(&runtime, belfry::BUNDLED, None)
            .await
            .unwrap()
            .plugins;
        let welcome_assets = bundled
            .iter()
            .find(|p| p.name() == "welcome")
            .unwrap()
            .assets()
            .clone();
        let good_request = RenderRequest {
            template: "welcome".into(),
            channel: Channel::InApp,
            data: r#"{"name": "Ada", "app_name": "belfry"}"#.into(),
            locale: None,
        };
        Host {
            runtime,
            bundled,
            welcome_assets,
            good_request,
            hits,
        }
    }

    fn templates(&self) -> &Plugin {
        self.bundled
            .iter()
            .find(|p| p.kind() == PluginKind::Renderer)
            .unwrap()
    }
}

/// The case in folder `case`, on a runtime of its own: see [`run_case`].
async fn hostile_case(case: &str) {
    let host = Host::new().await;
    run_case(&host, case).await;
    assert_eq!(host.hits.calls(), 0, "a denied request reached the server");
}

/// Every case in turn on one runtime, as the engine's runtime meets them: each still fails as
/// it should after the others did, and nothing they tried reached the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hostile_plugin_fails_its_own_call_and_the_host_carries_on() {
    let host = Host::new().await;
    let mut cases = CASES.to_vec();
    cases.sort();
    for case in cases {
        run_case(&host, case).await;
    }
    assert_eq!(host.hits.calls(), 0, "a denied request reached the server");
}

/// Case `case`: its call fails as its `expected.toml` says, within its limit, and a normal
/// plugin works right after on the same runtime.
async fn run_case(host: &Host, case: &str) {
    let dir = PathBuf::from(belfry::FIXTURE_PLUGINS_DIR);
    let wasm = dir.join(format!("{case}.wasm"));
    let expected: Expected = toml::from_str(
        &std::fs::read_to_string(dir.join(format!("{case}.expected.toml"))).unwrap(),
    )
    .unwrap();
    if expected.reason == "load" {
        // A declaration the host refuses before anything can use it.
        let err = host.runtime.load_file(&wasm).await.unwrap_err().to_string();
        assert!(err.contains(&expected.message_contains), "{case}: {err}");
        return;
    }
    let plugin = host.runtime.load_file(&wasm).await.unwrap();
    assert_eq!(plugin.kind().as_str(), expected.kind, "{case}");
    let limits = plugin.manifest().limits;
    let warm_before = host.runtime.warm_instances();
    let started = Instant::now();
    let err = match plugin.kind() {
        PluginKind::ChannelAdapter => {
            match host
                .runtime
                .send(&plugin, &message(), Reuse::Tenant("t"))
                .await
            {
                Err(e) => e,
                Ok(r) => panic!("{case}: send did not fail its call: {r:?}"),
            }
        }
        _ => {
            let req = RenderRequest {
                template: "x".into(),
                channel: Channel::Sms,
                data: "{}".into(),
                locale: None,
            };
            match host
                .runtime
                .render(
                    &plugin,
                    &req,
                    &plugins::assets::Assets::empty(),
                    Reuse::Tenant("t"),
                )
                .await
            {
                Err(e) => e,
                Ok(c) => panic!(
                    "{case}: render succeeded and returned {} bytes",
                    c.approx_size()
                ),
            }
        }
    };
    let elapsed = started.elapsed();
    assert_eq!(err.reason.as_str(), expected.reason, "{case}: {err}");
    assert!(
        err.message.contains(&expected.message_contains),
        "{case}: {err}"
    );
    assert!(
        !err.message.contains(SECRET_VALUE),
        "{case} leaked the secret: {err}"
    );
    // The typed error names the plugin, its version and hash, and the function.
    assert!(err.plugin.starts_with(&format!("{case}@")), "{case}: {err}");
    assert!(err.plugin.contains('#'));
    // Within its limit (plus scheduling slack, not a performance assertion).
    assert!(
        elapsed < Duration::from_millis(limits.timeout_ms) + Duration::from_secs(5),
        "{case} took {elapsed:?}"
    );
    // Called as trigger and dispatch call it (warm instances allowed), an instance that
    // trapped, ran out of time or memory, was denied or returned too much is dropped, never
    // kept for the tenant's next call; one that answered its own error is sound and kept.
    let kept = host.runtime.warm_instances() - warm_before;
    let expected_kept = usize::from(expected.reason == "plugin_error");
    assert_eq!(
        kept, expected_kept,
        "{case}: instances kept after its failure"
    );
    // A normal plugin works right after, in the same host.runtime.
    let content = host
        .runtime
        .render(
            host.templates(),
            &host.good_request,
            &host.welcome_assets,
            Reuse::Fresh,
        )
        .await
        .unwrap();
    assert!(matches!(content, Content::InApp { .. }), "{case}");
}

#[tokio::test]
async fn a_component_whose_manifest_lies_about_its_kind_is_refused() {
    secret_in_env();
    let dir = tempfile::tempdir().unwrap();
    let src = PathBuf::from(belfry::FIXTURE_PLUGINS_DIR);
    std::fs::copy(src.join("panic.wasm"), dir.path().join("liar.wasm")).unwrap();
    std::fs::write(
        dir.path().join("liar.toml"),
        "name = \"liar\"\nversion = \"1.0.0\"\nkind = \"notifier\"\nwit = \"0.1.0\"\n",
    )
    .unwrap();
    let runtime = PluginRuntime::new(RuntimeConfig::default()).unwrap();
    let err = runtime
        .load_file(&dir.path().join("liar.wasm"))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("kind = \"notifier\"") && err.contains("rendering"),
        "{err}"
    );

    // Missing manifest, and bytes that are not a component, are load errors too.
    std::fs::write(dir.path().join("junk.wasm"), b"not wasm").unwrap();
    let err = runtime
        .load_file(&dir.path().join("junk.wasm"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("junk.toml"), "{err}");
    std::fs::write(
        dir.path().join("junk.toml"),
        "name = \"junk\"\nversion = \"1.0.0\"\nkind = \"renderer\"\nwit = \"0.1.0\"\n",
    )
    .unwrap();
    let err = runtime
        .load_file(&dir.path().join("junk.wasm"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("not a valid WebAssembly component"), "{err}");
}

#[tokio::test]
async fn compiled_components_are_cached_on_disk_by_content_hash() {
    secret_in_env();
    let cache = tempfile::tempdir().unwrap();
    let config = RuntimeConfig {
        cache_dir: Some(cache.path().to_path_buf()),
        ..Default::default()
    };
    let runtime = PluginRuntime::new(config.clone()).unwrap();
    let first = plugins::load_all(&runtime, belfry::BUNDLED, None)
        .await
        .unwrap()
        .plugins;
    let compiled: Vec<_> = std::fs::read_dir(cache.path().join("compiled"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(compiled.len(), first.len());
    for p in &first {
        // By the component's hash: a package's reference hash also covers its assets.
        let wasm = belfry::BUNDLED
            .iter()
            .find(|b| b.name == p.name())
            .unwrap()
            .wasm;
        let hash: String = <sha2::Sha256 as sha2::Digest>::digest(wasm)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert!(compiled.iter().any(|f| f.starts_with(&hash)), "{p:?}");
    }
    let modified = |name: &str| {
        std::fs::metadata(cache.path().join("compiled").join(name))
            .unwrap()
            .modified()
            .unwrap()
    };
    let before: Vec<_> = compiled.iter().map(|f| modified(f)).collect();
    // A restart (a new runtime on the same cache) loads them without recompiling.
    let runtime = PluginRuntime::new(config).unwrap();
    let second = plugins::load_all(&runtime, belfry::BUNDLED, None)
        .await
        .unwrap()
        .plugins;
    assert_eq!(second.len(), first.len());
    let after: Vec<_> = compiled.iter().map(|f| modified(f)).collect();
    assert_eq!(before, after);
}
