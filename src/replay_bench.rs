//! `belfry bench replay`: replay of recorded events against a changed-template candidate, in
//! events per second, beside a plain loop making the same host calls one event at a time.
//!
//! The events are `welcome` triggers (an email and an in-app delivery each, one recipient)
//! recorded without dispatch on a temporary SQLite database; the candidate is the bundled
//! `welcome` package with its in-app headline template changed, so every event differs.

use anyhow::{Context, Result};
use belfry::host::deliveries::reads::{self, EventFilter};
use belfry::host::plugins::{Plugin, Reuse, preview};
use belfry::host::replay::ReplayOptions;
use belfry::{Engine, EngineConfig, TriggerRequest};
use std::path::Path;
use std::time::Instant;

/// Triggers per transaction while recording.
const BATCH: usize = 500;

pub(crate) async fn run(events: usize, json: bool) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let engine = Engine::open(EngineConfig {
        database_url: format!("sqlite://{}", dir.path().join("bench.db").display()),
        bundled: belfry::BUNDLED,
        cache_dir: belfry::config::default_cache_dir(),
        ..Default::default()
    })
    .await?;
    let started = Instant::now();
    record(&engine, events).await?;
    let recorded_s = started.elapsed().as_secs_f64();
    let candidate_dir = write_candidate(dir.path())?;
    let candidate = engine.load_candidate_path(&candidate_dir).await?;

    let started = Instant::now();
    let report = engine
        .replay(
            &candidate,
            &ReplayOptions {
                since: None,
                tenant: None,
                limit: events,
            },
        )
        .await?;
    let replay_s = started.elapsed().as_secs_f64();
    anyhow::ensure!(
        report.events == events && report.changed == events && report.candidate_errors == 0,
        "the replay did not find what was recorded: {} events, {} changed, {} candidate errors",
        report.events,
        report.changed,
        report.candidate_errors
    );

    let started = Instant::now();
    plain_loop(&engine, &candidate, events).await?;
    let loop_s = started.elapsed().as_secs_f64();

    let replay_rate = events as f64 / replay_s;
    let loop_rate = events as f64 / loop_s;
    if json {
        println!(
            "{}",
            serde_json::json!({
                "scenario": "replay",
                "events": events,
                "record_s": recorded_s,
                "replay_events_per_s": replay_rate,
                "plain_loop_events_per_s": loop_rate,
                "ratio": replay_rate / loop_rate,
            })
        );
    } else {
        println!(
            "replay: {events} recorded welcome events (recorded in {recorded_s:.1} s), candidate with a changed template"
        );
        println!(
            "  replay      {replay_rate:>8.0} events/s ({replay_s:.2} s, all {events} changed)"
        );
        println!(
            "  plain loop  {loop_rate:>8.0} events/s ({loop_s:.2} s, the same host calls, one event at a time, nothing compared)"
        );
        println!("  ratio       {:>8.2}", replay_rate / loop_rate);
    }
    Ok(())
}

async fn record(engine: &Engine, events: usize) -> Result<()> {
    let mut i = 0;
    while i < events {
        let reqs: Vec<TriggerRequest> = (i..events.min(i + BATCH))
            .map(|n| {
                TriggerRequest::new(
                    "welcome",
                    serde_json::json!({"user": {"id": format!("u-{n}"),
                        "email": format!("u-{n}@example.com"), "name": format!("User {n}")}}),
                )
            })
            .collect();
        i += reqs.len();
        engine.trigger_many(&reqs).await?;
    }
    Ok(())
}

/// The bundled `welcome` package with its in-app headline changed, as a package folder.
fn write_candidate(parent: &Path) -> Result<std::path::PathBuf> {
    let welcome = belfry::BUNDLED
        .iter()
        .find(|p| p.name == "welcome")
        .context("the bundled `welcome` plugin is missing")?;
    let dir = parent.join("welcome-candidate");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("manifest.toml"), welcome.manifest)?;
    std::fs::write(dir.join("plugin.wasm"), welcome.wasm)?;
    for (path, bytes) in welcome.assets {
        let to = dir.join("assets").join(path);
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mut bytes = bytes.to_vec();
        if *path == "templates/welcome/in-app/headline.j2" {
            bytes.splice(0..0, b"[new] ".iter().copied());
        }
        std::fs::write(to, bytes)?;
    }
    Ok(dir)
}

/// Recipients, channels and each delivery's content for the build that ran and the
/// candidate, event after event: the host calls a replay makes, without its concurrency or
/// its comparison.
async fn plain_loop(engine: &Engine, candidate: &Plugin, events: usize) -> Result<()> {
    let registry = engine.registry();
    let runtime = engine.runtime();
    let recorded = reads::recorded_events(
        engine.db(),
        &EventFilter {
            notifier_keys: vec!["welcome".into()],
            limit: events,
            ..Default::default()
        },
    )
    .await?;
    for event in &recorded {
        let baseline = registry
            .build(&event.notifier_plugin)
            .context("the recorded build is not loaded")?;
        for notifier in [baseline, candidate] {
            let renderer = registry.renderer_for(notifier)?;
            let payload = &event.payload;
            for r in runtime.recipients(notifier, payload, Reuse::Fresh).await? {
                let plan = runtime
                    .channels(notifier, payload, &r, Reuse::Fresh)
                    .await?;
                for channel in plan.channels {
                    preview::render_one(runtime, notifier, renderer, payload, &r, channel).await?;
                }
            }
        }
    }
    Ok(())
}
