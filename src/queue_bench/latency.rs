//! `bench latency` and `bench schedule`: trigger commit → adapter call, and how late
//! scheduled jobs start.

use super::{BenchBackend, Options, Place, Row, Worker, count, payload, row};
use anyhow::{Result, ensure};
use belfry::{Engine, TriggerRequest};
use chrono::Utc;
use std::time::Duration;

/// When each delivery's (first) adapter call started.
pub(super) async fn started_at(engine: &Engine, id: &str) -> Result<chrono::DateTime<Utc>> {
    let started: String =
        sqlx::query_scalar("SELECT started_at FROM attempts WHERE delivery_id = $1")
            .bind(id)
            .fetch_one(engine.db())
            .await?;
    Ok(started.parse()?)
}

/// Trigger commit → adapter call, open loop at `rate_per_sec`, one worker (concurrency 10).
pub(super) async fn bench_latency(o: &Options) -> Result<Vec<Row>> {
    let rate_per_sec = 100.0;
    let (mut p50s, mut p90s, mut p99s) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..o.repetitions {
        let place = Place::new(o).await?;
        let engine = place.engine().await?;
        let worker = Worker::start(&engine, "bench", 10);
        let n = (rate_per_sec * 2.0) as usize;
        let mut committed = Vec::with_capacity(n);
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate_per_sec));
        let mut triggers = tokio::task::JoinSet::new();
        for i in 0..n {
            tick.tick().await;
            let e = engine.clone();
            triggers.spawn(async move {
                // Timed from the call, not the commit: the commit's own instant is not visible
                // from outside, so this is an upper bound that includes planning.
                let called = Utc::now();
                let out = e
                    .trigger(&TriggerRequest::new("order-shipped", payload(i)))
                    .await?;
                Ok::<_, anyhow::Error>((out.notifications[0].deliveries[0].id.clone(), called))
            });
        }
        while let Some(r) = triggers.join_next().await {
            committed.push(r??);
        }
        while count(&engine, "SELECT COUNT(*) FROM jobs").await? > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        worker.stop().await?;
        let mut lat = Vec::new();
        for (id, at) in &committed {
            let started = started_at(&engine, id).await?;
            // Stored times have millisecond precision: clamp the rounding below zero.
            lat.push(((started - *at).num_microseconds().unwrap_or(0) as f64 / 1000.0).max(0.0));
        }
        ensure!(lat.len() == n, "latency check: {} of {n} sent", lat.len());
        lat.sort_by(|a, b| a.total_cmp(b));
        let p = |q: f64| lat[((lat.len() - 1) as f64 * q).round() as usize];
        p50s.push(p(0.5));
        p90s.push(p(0.9));
        p99s.push(p(0.99));
        place.drop_schema().await;
    }
    let targets = match o.backend {
        BenchBackend::Sqlite => ("≤ 2 ms", "", "≤ 10 ms"),
        BenchBackend::Postgres => ("≤ 5 ms", "", "≤ 15 ms"),
    };
    Ok(vec![
        row("latency", "p50 @100/s", "ms", &p50s, None, targets.0),
        row("latency", "p90 @100/s", "ms", &p90s, None, targets.1),
        row("latency", "p99 @100/s", "ms", &p99s, None, targets.2),
    ])
}

/// Jobs scheduled over the next second: how late each started (never early).
pub(super) async fn bench_schedule(o: &Options) -> Result<Vec<Row>> {
    let (mut p50s, mut maxes) = (Vec::new(), Vec::new());
    for _ in 0..o.repetitions {
        let place = Place::new(o).await?;
        let engine = place.engine().await?;
        let worker = Worker::start(&engine, "bench", 10);
        let n = 50;
        let base = Utc::now() + chrono::Duration::milliseconds(500);
        let mut due = Vec::new();
        for i in 0..n {
            let at = base + chrono::Duration::milliseconds(20 * i as i64);
            let out = engine
                .trigger(&TriggerRequest::new("order-shipped", payload(i)).deliver_at(at))
                .await?;
            due.push((out.notifications[0].deliveries[0].id.clone(), at));
        }
        while count(&engine, "SELECT COUNT(*) FROM jobs").await? > 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        worker.stop().await?;
        let mut late = Vec::new();
        for (id, at) in &due {
            let started = started_at(&engine, id).await?;
            let ms = (started - *at).num_milliseconds() as f64;
            ensure!(ms >= 0.0, "schedule check: delivery {id} ran {ms} ms early");
            late.push(ms);
        }
        late.sort_by(|a, b| a.total_cmp(b));
        p50s.push(late[late.len() / 2]);
        maxes.push(late[late.len() - 1]);
        place.drop_schema().await;
    }
    Ok(vec![
        row("schedule", "lateness p50", "ms", &p50s, None, "never early"),
        row("schedule", "lateness max", "ms", &maxes, None, "≤ ~1000 ms"),
    ])
}
