//! `bench http`: triggers/s over HTTP vs in-process, and the server's answers while slow
//! plugin calls are in flight.

use super::trigger::engine_trigger_rate;
use super::{Options, Place, Row, count, p99, payload, rate, row};
use anyhow::{Context, Result, ensure};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Triggers/s over HTTP (`POST /v1/events` to `belfry serve` on 127.0.0.1, keep-alive, one
/// API key) against the same triggers called in-process on the engine, from 1 and 4 callers,
/// each side on a fresh database. The gap is the HTTP layer: parsing, the key lookup (one
/// indexed read per request), JSON in and out, and the loopback round trip.
pub(super) async fn bench_http(o: &Options) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for callers in [1usize, 4] {
        let (mut http_rates, mut inproc_rates) = (Vec::new(), Vec::new());
        for _ in 0..o.repetitions {
            let place = Place::new(o).await?;
            let engine = place.engine().await?;
            let server = belfry::serve::start(
                engine.clone(),
                belfry::serve::ServeConfig {
                    listen: "127.0.0.1:0".parse()?,
                    workers: None,
                    ..Default::default()
                },
            )
            .await?;
            let (_, key) = engine.create_key(Some("default"), "bench").await?;
            let url = format!("http://{}/v1/events", server.addr);
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(callers)
                .build()?;
            http_rates.push(
                rate(o.size, callers, move |i| {
                    let (client, url, key) = (client.clone(), url.clone(), key.clone());
                    async move {
                        let res = client
                            .post(&url)
                            .bearer_auth(&key)
                            .json(&serde_json::json!({
                                "notifier": "order-shipped", "payload": payload(i)
                            }))
                            .send()
                            .await?;
                        ensure!(
                            res.status() == reqwest::StatusCode::CREATED,
                            "POST /v1/events answered {}: {}",
                            res.status(),
                            res.text().await.unwrap_or_default()
                        );
                        Ok(())
                    }
                })
                .await?,
            );
            let n = count(&engine, "SELECT COUNT(*) FROM events").await?;
            ensure!(
                n == o.size as i64,
                "http check: {n} events, expected {}",
                o.size
            );
            server.shutdown().await?;
            place.drop_schema().await;

            let place = Place::new(o).await?;
            inproc_rates.push(engine_trigger_rate(&place.engine().await?, o.size, callers).await?);
            place.drop_schema().await;
        }
        let mut r = row(
            "http",
            &format!("{callers} caller(s)"),
            "triggers/s",
            &http_rates,
            Some(&inproc_rates),
            "≥ 0.7× in-process",
        );
        r.sides = ("http", "in-process");
        rows.push(r);
    }
    rows.extend(bench_http_busy(o).await?);
    Ok(rows)
}

/// Slow plugin calls in flight while the server answers others: p99 of `/healthz` (a new
/// connection each time, as a probe makes) and of one caller's `order-shipped` triggers, with
/// 16 triggers of the `slow-recipients` test notifier (its `recipients` computes until its
/// 2 s deadline) kept in flight, against the same measured on an idle server.
pub(super) async fn bench_http_busy(o: &Options) -> Result<Vec<Row>> {
    const SLOW: usize = 16;
    const FOR: Duration = Duration::from_secs(5);
    let fixtures = std::path::Path::new(belfry::FIXTURE_PLUGINS_DIR);
    let wasm = std::fs::read(fixtures.join("slow-recipients.wasm")).with_context(|| {
        format!(
            "the busy-server bench loads the `slow-recipients` test plugin from {} (built with \
             the workspace)",
            fixtures.display()
        )
    })?;
    let manifest = std::fs::read_to_string(fixtures.join("slow-recipients.toml"))?;
    let (mut healthz, mut triggers) = ([Vec::new(), Vec::new()], [Vec::new(), Vec::new()]);
    for _ in 0..o.repetitions {
        for (side, busy) in [(0, true), (1, false)] {
            let place = Place::new(o).await?;
            let engine = place.engine().await?;
            engine.load_plugin(&wasm, &manifest, "bench").await?;
            let server = belfry::serve::start(
                engine.clone(),
                belfry::serve::ServeConfig {
                    listen: "127.0.0.1:0".parse()?,
                    workers: None,
                    ..Default::default()
                },
            )
            .await?;
            let (_, key) = engine.create_key(Some("default"), "bench").await?;
            let base = format!("http://{}", server.addr);
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let mut load = slow_load(&base, &key, &stop, if busy { SLOW } else { 0 });
            // Let the slow triggers reach their plugin before measuring.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let probe = probe(&base, FOR)?;
            let took = timed_triggers(&base, &key, FOR).await?;
            healthz[side].push(p99(probe.await??));
            triggers[side].push(p99(took));
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            while let Some(r) = load.join_next().await {
                r??;
            }
            server.shutdown().await?;
            place.drop_schema().await;
        }
    }
    let mut rows = Vec::new();
    for (variant, [busy, idle]) in [("/healthz p99", healthz), ("trigger p99", triggers)] {
        let mut r = row(
            "http",
            variant,
            "ms",
            &busy,
            Some(&idle),
            "/healthz < 100 ms busy",
        );
        r.sides = ("16 slow", "idle");
        rows.push(r);
    }
    Ok(rows)
}

/// `n` callers each triggering the slow notifier again and again until `stop`.
fn slow_load(
    base: &str,
    key: &str,
    stop: &Arc<std::sync::atomic::AtomicBool>,
    n: usize,
) -> tokio::task::JoinSet<Result<()>> {
    let mut load = tokio::task::JoinSet::new();
    for _ in 0..n {
        let (client, url, key, stop) = (
            reqwest::Client::new(),
            format!("{base}/v1/events"),
            key.to_string(),
            stop.clone(),
        );
        load.spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let res = client
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&serde_json::json!({"notifier": "slow-recipients", "payload": {}}))
                    .send()
                    .await?;
                ensure!(
                    res.status() == reqwest::StatusCode::UNPROCESSABLE_ENTITY,
                    "a slow trigger answered {}",
                    res.status()
                );
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    load
}

/// `/healthz` probed every 20 ms for `span`, on a new connection each time: the times taken.
fn probe(base: &str, span: Duration) -> Result<tokio::task::JoinHandle<Result<Vec<f64>>>> {
    let (client, url) = (
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()?,
        format!("{base}/healthz"),
    );
    Ok(tokio::spawn(async move {
        let mut took = Vec::new();
        let end = Instant::now() + span;
        while Instant::now() < end {
            let started = Instant::now();
            let res = client.get(&url).send().await?;
            ensure!(
                res.status().is_success(),
                "/healthz answered {}",
                res.status()
            );
            took.push(started.elapsed().as_secs_f64() * 1e3);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok::<_, anyhow::Error>(took)
    }))
}

/// One caller's `order-shipped` triggers for `span`: the time each took, in ms.
async fn timed_triggers(base: &str, key: &str, span: Duration) -> Result<Vec<f64>> {
    let client = reqwest::Client::new();
    let mut took = Vec::new();
    let end = Instant::now() + span;
    let mut i = 0;
    while Instant::now() < end {
        let started = Instant::now();
        let res = client
            .post(format!("{base}/v1/events"))
            .bearer_auth(key)
            .json(&serde_json::json!({"notifier": "order-shipped", "payload": payload(i)}))
            .send()
            .await?;
        ensure!(
            res.status() == reqwest::StatusCode::CREATED,
            "POST /v1/events answered {}",
            res.status()
        );
        took.push(started.elapsed().as_secs_f64() * 1e3);
        i += 1;
    }
    Ok(took)
}
