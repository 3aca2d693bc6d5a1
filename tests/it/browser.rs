//! The web pages of `belfry serve` in a real headless Chromium (Debian's `chromium`, driven by
//! playwright-core from Node): the demo inbox receives an item live and marks it read, and the
//! operator console lists the plugins, filters deliveries and explains the delivery, whose
//! timeline shows the read. The scenario is `tests/browser/inbox_console.mjs`.
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
