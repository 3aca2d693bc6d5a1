//! The web pages of `belfry serve` in a real headless Chromium (Debian's `chromium`, driven by
//! playwright-core from Node): the demo inbox receives an item live and marks it read, and the
//! operator console lists the plugins, filters deliveries and explains the delivery, whose
//! timeline shows the read. The scenario is `tests/browser/inbox_console.mjs`. And the console
//! shows a delivery's rendered content and runs a replay from the plugin list
//! (`tests/browser/replay_content.mjs`).
//!
//! It runs only with `BELFRY_TEST_BROWSER=1` (which `.ci/run` sets): it then runs
//! `tests/browser/setup.sh` first, which installs Chromium with apt when it is missing and
//! playwright-core with `npm ci`. Without the variable it says it was skipped.
//! `BELFRY_SCREENSHOTS=DIR` keeps a screenshot of each page there (docs/ has the last ones).

use crate::common::{Backend, world};
use belfry::host::dispatch::WorkerConfig;
use belfry::serve::ServeConfig;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbox_and_console_in_chromium() {
    if std::env::var("BELFRY_TEST_BROWSER").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED: BELFRY_TEST_BROWSER is not 1, so the headless Chromium test did not run"
        );
        return;
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let setup = Command::new("bash")
        .arg(here.join("setup.sh"))
        .status()
        .expect("running tests/browser/setup.sh");
    assert!(setup.success(), "tests/browser/setup.sh failed: {setup}");

    let w = world(Backend::Sqlite).await;
    let server = belfry::serve::start(
        w.engine.clone(),
        ServeConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            inbox_poll: Duration::from_millis(100),
            workers: Some(WorkerConfig {
                poll: Duration::from_millis(100),
                ..Default::default()
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (_, key) = w.engine.create_key(Some("acme"), "browser").await.unwrap();

    let base = format!("http://{}", server.addr);
    let mut node = tokio::process::Command::new("node");
    node.arg(here.join("inbox_console.mjs"))
        .env("BELFRY_URL", &base)
        .env("BELFRY_KEY", &key)
        .kill_on_drop(true);
    // The script bounds itself at 60 s; this is the backstop if node itself hangs.
    let out = tokio::time::timeout(Duration::from_secs(120), node.output())
        .await
        .expect("the browser scenario did not finish within 120 s")
        .expect("running node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("browser test passed"),
        "the browser scenario failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    server.shutdown().await.unwrap();
}

/// The console shows an email delivery's rendered content (hostile html only in a sandboxed
/// frame, never in its DOM) and runs a replay from the plugin list: a tenant key's 403 shown,
/// then with an admin key the summary and the differences of a `welcome` whose email subject
/// changed. The scenario is `tests/browser/replay_content.mjs`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_content_and_replay_in_chromium() {
    if std::env::var("BELFRY_TEST_BROWSER").as_deref() != Ok("1") {
        eprintln!(
            "SKIPPED: BELFRY_TEST_BROWSER is not 1, so the headless Chromium test did not run"
        );
        return;
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let setup = Command::new("bash")
        .arg(here.join("setup.sh"))
        .status()
        .expect("running tests/browser/setup.sh");
    assert!(setup.success(), "tests/browser/setup.sh failed: {setup}");

    let w = world(Backend::Sqlite).await;
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
    let (_, key) = w.engine.create_key(Some("acme"), "browser").await.unwrap();
    let (_, admin) = w.engine.create_key(None, "operator").await.unwrap();
    let payload = serde_json::json!({
        "user": {"id": "ana", "email": "ana@example.com", "name": "Ana"},
        "app_name": "Acme",
    });
    let out = w
        .engine
        .trigger(&belfry::TriggerRequest::new("welcome", payload).tenant("acme"))
        .await
        .unwrap();
    // Rendered and sent (to the `log` adapter) here, so the delivery has content.
    w.engine.dispatch_event(&out.event_id).await.unwrap();
    let filter = belfry::host::deliveries::DeliveryFilter {
        channel: Some("email".into()),
        ..Default::default()
    };
    let (rows, _) = w
        .engine
        .deliveries("acme", &filter, 10, None)
        .await
        .unwrap();
    let delivery = rows.first().expect("an email delivery").id.clone();

    let tmp = tempfile::tempdir().unwrap();
    let candidate = tmp.path().join("welcome-candidate.tar.gz");
    std::fs::write(
        &candidate,
        crate::replay_http::welcome_archive(Some("Hello from {{ app_name }}")),
    )
    .unwrap();

    let mut node = tokio::process::Command::new("node");
    node.arg(here.join("replay_content.mjs"))
        .env("BELFRY_URL", format!("http://{}", server.addr))
        .env("BELFRY_KEY", &key)
        .env("BELFRY_ADMIN_KEY", &admin)
        .env("BELFRY_DELIVERY", &delivery)
        .env("BELFRY_CANDIDATE", &candidate)
        .env("BELFRY_PLUGIN", "welcome")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), node.output())
        .await
        .expect("the browser scenario did not finish within 120 s")
        .expect("running node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stdout.contains("replay/content browser test passed"),
        "the browser scenario failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    // Each step's line, for the log of a run that passed too.
    println!("{stdout}");
    server.shutdown().await.unwrap();
}
