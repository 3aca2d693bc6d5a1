//! `belfry plugin replay` and `Engine::replay`: recorded events run through a candidate and
//! the build that planned them. The candidates are one fixture component
//! (`tests/fixtures/plugins/replay-notifier`) packaged with different assets: a changed
//! template, and a `channels` asset that drops email.

use crate::common::{Backend, count, world};
use belfry::TriggerRequest;
use belfry::host::plugins::package::Package;
use belfry::host::replay::{ReplayError, ReplayOptions, What};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

fn fixture(file: &str) -> PathBuf {
    Path::new(env!("BELFRY_FIXTURE_PLUGINS_DIR")).join(file)
}

/// A package folder of the `note` notifier: its in-app headline template, and its `channels`
/// asset when given.
fn note_package(parent: &Path, name: &str, headline: &str, channels: Option<&str>) -> PathBuf {
    let dir = parent.join(name);
    let templates = dir.join("assets/templates/note");
    std::fs::create_dir_all(templates.join("in-app")).unwrap();
    std::fs::create_dir_all(templates.join("email")).unwrap();
    std::fs::copy(fixture("replay-notifier.wasm"), dir.join("plugin.wasm")).unwrap();
    std::fs::copy(fixture("replay-notifier.toml"), dir.join("manifest.toml")).unwrap();
    std::fs::write(templates.join("in-app/headline.j2"), headline).unwrap();
    std::fs::write(templates.join("in-app/body.j2"), "{{ text }}").unwrap();
    std::fs::write(templates.join("email/subject.j2"), "A note").unwrap();
    std::fs::write(templates.join("email/text.j2"), "{{ text }}").unwrap();
    if let Some(channels) = channels {
        std::fs::write(dir.join("assets/channels"), channels).unwrap();
    }
    dir
}

const TABLES: [&str; 6] = [
    "events",
    "notifications",
    "deliveries",
    "jobs",
    "traces",
    "plugin_uploads",
];

async fn counts(engine: &belfry::Engine) -> Vec<i64> {
    let mut all = Vec::new();
    for table in TABLES {
        all.push(count(engine, table).await);
    }
    all
}

/// Records three events of `note` (two for tenant `acme`, one for `other`), planned by the
/// build in `v1` put in force as an upload.
async fn record(engine: &belfry::Engine, v1: &Path) {
    let package = Package::from_dir(v1).unwrap();
    engine.load_package(&package, "test").await.unwrap();
    for (tenant, text) in [("acme", "first"), ("other", "second"), ("acme", "third")] {
        let payload = json!({
            "to": [{"id": "ana", "email": "ana@example.com"}, {"id": "bo"}],
            "text": text,
        });
        engine
            .trigger(&TriggerRequest::new("note", payload).tenant(tenant))
            .await
            .unwrap();
    }
}

async fn finds_content_and_channel_changes_and_nothing_for_the_same_build(b: Backend) {
    let w = world(b).await;
    let tmp = tempfile::tempdir().unwrap();
    let v1 = note_package(tmp.path(), "v1", "Note: {{ text }}", None);
    record(&w.engine, &v1).await;
    let before = counts(&w.engine).await;
    let all = ReplayOptions::default();

    let same = w.engine.load_candidate_path(&v1).await.unwrap();
    let report = w.engine.replay(&same, &all).await.unwrap();
    assert_eq!(
        (report.events, report.changed, report.candidate_errors),
        (3, 0, 0)
    );
    assert!(report.notes.is_empty(), "{:?}", report.notes);

    let v2 = note_package(tmp.path(), "v2", "New: {{ text }}", None);
    let changed = w.engine.load_candidate_path(&v2).await.unwrap();
    let report = w.engine.replay(&changed, &all).await.unwrap();
    assert_eq!((report.events, report.changed), (3, 3));
    let newest = &report.differences[0];
    assert_eq!(newest.tenant, "acme");
    assert_eq!(newest.baseline, same.reference().to_string());
    // Only the in-app headline differs, for both recipients; the email is unchanged.
    assert_eq!(newest.changes.len(), 2, "{:?}", newest.changes);
    for c in &newest.changes {
        assert_eq!(c.what, What::Content);
        assert_eq!(c.channel.as_deref(), Some("in-app"));
        assert_eq!(c.before["headline"], "Note: third");
        assert_eq!(c.after["headline"], "New: third");
    }

    let v3 = note_package(tmp.path(), "v3", "Note: {{ text }}", Some("in-app"));
    let dropped = w.engine.load_candidate_path(&v3).await.unwrap();
    let report = w.engine.replay(&dropped, &all).await.unwrap();
    assert_eq!((report.events, report.changed), (3, 3));
    let changes = &report.differences[0].changes;
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].what, What::Channels);
    assert_eq!(changes[0].recipient.as_deref(), Some("ana"));
    assert_eq!(changes[0].before, json!(["email", "in-app"]));
    assert_eq!(changes[0].after, json!(["in-app"]));

    // Filters: a tenant, a limit, a time.
    let only = |tenant: Option<&str>, limit: usize, since_secs: Option<i64>| ReplayOptions {
        tenant: tenant.map(String::from),
        limit,
        since: since_secs.map(|s| chrono::Utc::now() - chrono::TimeDelta::seconds(s)),
    };
    let events = async |o: ReplayOptions| w.engine.replay(&changed, &o).await.unwrap().events;
    assert_eq!(events(only(Some("acme"), 1000, None)).await, 2);
    assert_eq!(events(only(Some("nobody"), 1000, None)).await, 0);
    assert_eq!(events(only(None, 1, None)).await, 1);
    assert_eq!(events(only(None, 1000, Some(3600))).await, 3);
    assert_eq!(events(only(None, 1000, Some(-3600))).await, 0);
    let out_of_range = w.engine.replay(&changed, &only(None, 0, None)).await;
    assert!(matches!(out_of_range, Err(ReplayError::Invalid(_))));

    assert_eq!(counts(&w.engine).await, before, "replay wrote something");
}

async fn a_candidate_failure_is_counted_and_shown(b: Backend) {
    let w = world(b).await;
    let tmp = tempfile::tempdir().unwrap();
    let v1 = note_package(tmp.path(), "v1", "Note: {{ text }}", None);
    record(&w.engine, &v1).await;
    // A template that does not parse fails every in-app render of the candidate.
    let broken = note_package(tmp.path(), "broken", "{% if %}", None);
    let broken = w.engine.load_candidate_path(&broken).await.unwrap();
    let report = w
        .engine
        .replay(&broken, &ReplayOptions::default())
        .await
        .unwrap();
    assert_eq!(
        (
            report.changed,
            report.candidate_errors,
            report.baseline_errors
        ),
        (3, 3, 0)
    );
    let c = &report.differences[0].changes[0];
    assert_eq!(c.what, What::Error);
    assert!(c.before["headline"].is_string(), "{c:?}");
    assert!(c.after["error"].is_string(), "{c:?}");
}

on_both_backends!(
    finds_content_and_channel_changes_and_nothing_for_the_same_build,
    a_candidate_failure_is_counted_and_shown,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adapter_is_refused_with_a_pointer_to_plugin_test() {
    let w = world(Backend::Sqlite).await;
    let webhook = belfry::BUNDLED
        .iter()
        .find(|p| p.name == "webhook")
        .unwrap();
    let package = Package {
        manifest: webhook.manifest.to_string(),
        component: webhook.wasm.to_vec(),
        assets: Default::default(),
    };
    let adapter = w.engine.load_candidate(&package).await.unwrap();
    let err = w
        .engine
        .replay(&adapter, &ReplayOptions::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("plugin test"), "{err}");
}

/// The command: text for people, JSON and an exit code for CI.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_prints_differences_and_fails_on_change_when_asked() {
    let w = world(Backend::Sqlite).await;
    let tmp = tempfile::tempdir().unwrap();
    let v1 = note_package(tmp.path(), "v1", "Note: {{ text }}", None);
    record(&w.engine, &v1).await;
    let v2 = note_package(tmp.path(), "v2", "New: {{ text }}", None);
    let replay = |package: &Path, extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_belfry"))
            .args(["--database-url", &w.db.url, "--cache-dir"])
            .arg(crate::common::cache_dir())
            .args(["plugin", "replay"])
            .arg(package)
            .args(extra)
            .output()
            .unwrap()
    };

    let out = replay(&v2, &["--since", "1h"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(r#"headline: "Note: third" → "New: third""#),
        "{text}"
    );
    assert!(
        text.contains("3 events, 3 changed, 0 errors in the candidate"),
        "{text}"
    );

    let out = replay(&v2, &["--json", "--fail-on-change", "--tenant", "other"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["events"], 1);
    assert_eq!(report["changed"], 1);
    assert_eq!(report["differences"][0]["changes"][0]["what"], "content");

    let out = replay(&v1, &["--json", "--fail-on-change"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["events"].as_u64(), report["changed"].as_u64()),
        (Some(3), Some(0))
    );

    let out = replay(&v1, &["--since", "soon"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--since"));
}

/// A renderer replays the events of the notifiers that render with a renderer of its name;
/// the same build finds nothing, and one no notifier uses has no events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renderer_replays_the_events_of_the_notifiers_using_its_name() {
    let w = world(Backend::Sqlite).await;
    let tmp = tempfile::tempdir().unwrap();
    let v1 = note_package(tmp.path(), "v1", "Note: {{ text }}", None);
    record(&w.engine, &v1).await;
    let templates = belfry::BUNDLED
        .iter()
        .find(|p| p.name == "templates")
        .unwrap();
    let package = Package {
        manifest: templates.manifest.to_string(),
        component: templates.wasm.to_vec(),
        assets: belfry::host::plugins::assets::Assets::from_entries(
            templates
                .assets
                .iter()
                .map(|(path, bytes)| (path.to_string(), bytes.to_vec())),
        )
        .unwrap(),
    };
    let same = w.engine.load_candidate(&package).await.unwrap();
    let report = w
        .engine
        .replay(&same, &ReplayOptions::default())
        .await
        .unwrap();
    assert_eq!((report.events, report.changed), (3, 0), "{report:?}");

    let unused = w
        .engine
        .load_candidate_path(&fixture("v1-assets.wasm"))
        .await
        .unwrap();
    let report = w
        .engine
        .replay(&unused, &ReplayOptions::default())
        .await
        .unwrap();
    assert_eq!(report.events, 0);
}
