//! `belfry bench trigger|dispatch|latency|schedule`: the engine's trigger path and job queue
//! measured against the best plain SQL writing or leasing the same rows, in the same run, on
//! the same database.
//!
//! - **trigger**: triggers/s from 1 and 4 concurrent callers, and in bulk (`trigger_many` of
//!   100 from one caller; raw: 100 triggers' rows per transaction). The engine asks the notifier
//!   plugin for recipients and channels, then writes the event, notification, delivery, job and
//!   four traces in one transaction. Raw: the same rows in one transaction per trigger with
//!   native sqlx (no plugin call).
//! - **dispatch**: burn-down of a pre-filled queue of one-delivery jobs by 1, 2 and 4 workers
//!   (each up to 10 jobs in flight, so batches of up to 10). The engine runs the notifier build,
//!   the renderer and the `log` adapter (a no-op send) per job and commits outcomes in batches.
//!   Raw: lease 10 jobs, then delete them, mark their deliveries succeeded and insert their
//!   attempt rows, in batches, with no plugin call. With `--backlog N`, also the engine's rate
//!   over the first `size` jobs of a queue holding N due deliveries (as an outage leaves:
//!   copies of one the engine planned, 100 customers per event, bulk-inserted), beside the
//!   empty-queue rate, and the ratio of the two.
//! - **latency**: trigger → adapter call (from the moment `trigger` is called, so planning is
//!   included: an upper bound on commit → call), open loop at a fixed rate, one worker.
//! - **schedule**: lateness of jobs scheduled over the next second.
//!
//! Each figure is 5 repetitions (median, min, max, coefficient of variation), and every run is
//! checked: each job done once, the row counts right.

use anyhow::{Context, Result, ensure};
use belfry::host::content::Channel;
use belfry::host::dispatch::WorkerConfig;
use belfry::{Engine, EngineConfig, TriggerRequest};
use chrono::Utc;
use serde::Serialize;
use sqlx::Executor;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BenchBackend {
    Sqlite,
    Postgres,
}

#[derive(Clone, Debug)]
pub struct Options {
    pub backend: BenchBackend,
    /// The PostgreSQL server (a fresh schema is made in it and dropped afterwards).
    pub postgres_url: String,
    pub repetitions: usize,
    /// Triggers (or jobs) per repetition.
    pub size: usize,
    pub json: bool,
}

/// Five numbers summarising repetitions.
#[derive(Clone, Debug, Serialize)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Coefficient of variation (standard deviation / mean).
    pub cv: f64,
}

pub(crate) fn spread(values: &[f64]) -> Spread {
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    let mean = v.iter().sum::<f64>() / v.len() as f64;
    let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / v.len() as f64;
    Spread {
        median: v[v.len() / 2],
        min: v[0],
        max: v[v.len() - 1],
        cv: if mean > 0.0 { var.sqrt() / mean } else { 0.0 },
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub scenario: String,
    pub variant: String,
    pub unit: String,
    pub engine: Spread,
    pub raw: Option<Spread>,
    /// engine / raw of the medians (for rates: higher is better).
    pub ratio: Option<f64>,
    pub target: Option<String>,
    /// What the two sides are called when printed (`engine` and `raw` unless said otherwise).
    #[serde(skip)]
    pub sides: (&'static str, &'static str),
}

/// A database of its own for one measurement: a SQLite file or a PostgreSQL schema.
pub(crate) struct Place {
    url: String,
    _dir: tempfile::TempDir,
    schema: Option<String>,
    admin: Option<String>,
}

impl Place {
    pub(crate) async fn new(o: &Options) -> Result<Place> {
        let dir = tempfile::tempdir()?;
        match o.backend {
            BenchBackend::Sqlite => Ok(Place {
                url: format!("sqlite://{}", dir.path().join("bench.db").display()),
                _dir: dir,
                schema: None,
                admin: None,
            }),
            BenchBackend::Postgres => {
                let schema = format!("belfry_bench_{}", &belfry::host::store::new_id()[24..]);
                let admin = sqlx::PgPool::connect(&o.postgres_url)
                    .await
                    .with_context(|| format!("connecting to {}", o.postgres_url))?;
                admin.execute(&*format!("CREATE SCHEMA {schema}")).await?;
                admin.close().await;
                let sep = if o.postgres_url.contains('?') {
                    '&'
                } else {
                    '?'
                };
                Ok(Place {
                    url: format!("{}{sep}options[search_path]={schema}", o.postgres_url),
                    _dir: dir,
                    schema: Some(schema),
                    admin: Some(o.postgres_url.clone()),
                })
            }
        }
    }

    pub(crate) async fn drop_schema(&self) {
        if let (Some(schema), Some(admin)) = (&self.schema, &self.admin)
            && let Ok(pool) = sqlx::PgPool::connect(admin).await
        {
            let _ = pool
                .execute(&*format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .await;
        }
    }

    pub(crate) async fn engine(&self) -> Result<Engine> {
        Ok(Engine::open(EngineConfig {
            database_url: self.url.clone(),
            bundled: belfry::BUNDLED,
            cache_dir: belfry::config::default_cache_dir(),
            // The `log` adapter is the no-op send: it writes one line to a log nobody reads.
            routes: BTreeMap::from([(Channel::Webhook, "log".to_string())]),
            ..Default::default()
        })
        .await?)
    }
}

fn payload(i: usize) -> serde_json::Value {
    serde_json::json!({"order_id": format!("o-{i}"), "carrier": "c",
                       "tracking_url": "https://t.example.com", "customer": {"id": format!("u-{i}")}})
}

pub(crate) async fn count(e: &Engine, sql: &str) -> Result<i64> {
    Ok(sqlx::query_scalar::<_, i64>(sql).fetch_one(e.db()).await?)
}

/// The raw side talks to the same database with sqlx's native drivers.
enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Raw {
    fn backend(&self) -> belfry::host::store::Backend {
        match self {
            Raw::Sqlite(_) => belfry::host::store::Backend::Sqlite,
            Raw::Postgres(_) => belfry::host::store::Backend::Postgres,
        }
    }
}

macro_rules! on_raw {
    ($raw:expr, $pool:ident => $body:expr) => {
        match $raw {
            Raw::Sqlite($pool) => $body,
            Raw::Postgres($pool) => $body,
        }
    };
}

async fn raw_pool(place: &Place) -> Result<Raw> {
    Ok(if place.url.starts_with("sqlite:") {
        use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
        use std::str::FromStr;
        let o = SqliteConnectOptions::from_str(&place.url)?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10));
        Raw::Sqlite(
            sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(8)
                .test_before_acquire(false)
                .connect_with(o)
                .await?,
        )
    } else {
        Raw::Postgres(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(16)
                // As the engine's pool: no ping before each use.
                .test_before_acquire(false)
                .connect(&place.url)
                .await?,
        )
    })
}

const TRACE_SQL: &str = "INSERT INTO traces (id, tenant, event_id, notification_id, delivery_id, at, kind, detail, plugin)
     VALUES ($1, 'default', $2, $3, $4, $5, $6, 'raw', 'raw')";

/// One trigger's rows, the raw way: one transaction, the same rows the engine writes.
async fn raw_trigger(raw: &Raw, i: usize) -> Result<()> {
    raw_triggers(raw, i, 1).await
}

/// The rows of `n` triggers (numbered from `first`) in one transaction.
async fn raw_triggers(raw: &Raw, first: usize, n: usize) -> Result<()> {
    use belfry::host::store::{new_id, now, time_text};
    on_raw!(raw, pool => {
        let mut tx = pool.begin().await?;
        for i in first..first + n {
            let (event, notification, delivery) = (new_id(), new_id(), new_id());
            let now = time_text(now());
            let payload = payload(i).to_string();
            sqlx::query("INSERT INTO events (id, tenant, notifier_key, notifier_plugin, payload, created_at) VALUES ($1, 'default', 'order-shipped', 'raw', $2, $3)")
                .bind(&event).bind(&payload).bind(&now).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO notifications (id, event_id, tenant, recipient_id, recipient, category, created_at) VALUES ($1, $2, 'default', $3, '{}', 'orders', $4)")
                .bind(&notification).bind(&event).bind(format!("u-{i}")).bind(&now).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO deliveries (id, notification_id, event_id, tenant, channel, status, idempotency_key, planned_by, created_at, updated_at) VALUES ($1, $2, $3, 'default', 'webhook', 'pending', $4, 'raw', $5, $5)")
                .bind(&delivery).bind(&notification).bind(&event).bind(format!("belfry-{delivery}")).bind(&now).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO jobs (id, kind, subject_id, tenant, state, run_at, created_at, updated_at) VALUES ($1, 'deliver', $2, 'default', 'available', $3, $3, $3)")
                .bind(new_id()).bind(&delivery).bind(&now).execute(&mut *tx).await?;
            for (kind, n, d) in [("event.received", None, None), ("recipients.planned", None, None),
                                 ("notification.created", Some(&notification), None),
                                 ("delivery.planned", Some(&notification), Some(&delivery))] {
                sqlx::query(TRACE_SQL).bind(new_id()).bind(&event).bind(n).bind(d)
                    .bind(&now).bind(kind).execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
    });
    Ok(())
}

/// Runs `total` calls of `call` from `callers` concurrent tasks; returns calls per second.
pub(crate) async fn rate<F, Fut>(total: usize, callers: usize, call: F) -> Result<f64>
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let call = Arc::new(call);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..callers {
        let call = call.clone();
        tasks.spawn(async move {
            let mut i = c;
            while i < total {
                call(i).await?;
                i += callers;
            }
            Ok::<_, anyhow::Error>(())
        });
    }
    while let Some(r) = tasks.join_next().await {
        r??;
    }
    Ok(total as f64 / start.elapsed().as_secs_f64())
}

/// `order-shipped` triggers per second on `engine`, in-process, from `callers` tasks.
async fn engine_trigger_rate(engine: &Engine, total: usize, callers: usize) -> Result<f64> {
    let e = engine.clone();
    rate(total, callers, move |i| {
        let e = e.clone();
        async move {
            e.trigger(&TriggerRequest::new("order-shipped", payload(i)))
                .await?;
            Ok(())
        }
    })
    .await
}

async fn bench_trigger(o: &Options) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for callers in [1usize, 4] {
        let (mut engine_rates, mut raw_rates) = (Vec::new(), Vec::new());
        for _ in 0..o.repetitions {
            let place = Place::new(o).await?;
            let engine = place.engine().await?;
            engine_rates.push(engine_trigger_rate(&engine, o.size, callers).await?);
            let raw = Arc::new(raw_pool(&place).await?);
            let r = raw.clone();
            raw_rates.push(
                rate(o.size, callers, move |i| {
                    let r = r.clone();
                    async move { raw_trigger(&r, o_size_offset(i)).await }
                })
                .await?,
            );
            // Check: each side wrote one event, delivery and job per call.
            for table in ["events", "deliveries", "jobs"] {
                let n = count(&engine, &format!("SELECT COUNT(*) FROM {table}")).await?;
                ensure!(
                    n == 2 * o.size as i64,
                    "trigger check: {n} {table}, expected {}",
                    2 * o.size
                );
            }
            place.drop_schema().await;
        }
        rows.push(row(
            "trigger",
            &format!("{callers} caller(s)"),
            "triggers/s",
            &engine_rates,
            Some(&raw_rates),
            "≥ 0.8× raw",
        ));
    }
    // Bulk: `trigger_many` of 100 from one caller; raw writes 100 triggers' rows per transaction.
    const BULK: usize = 100;
    let batches = o.size.div_ceil(BULK);
    let (mut engine_rates, mut raw_rates) = (Vec::new(), Vec::new());
    for _ in 0..o.repetitions {
        let place = Place::new(o).await?;
        let engine = place.engine().await?;
        let start = Instant::now();
        for b in 0..batches {
            let reqs: Vec<TriggerRequest> = (b * BULK..(b + 1) * BULK)
                .map(|i| TriggerRequest::new("order-shipped", payload(i)))
                .collect();
            engine.trigger_many(&reqs).await?;
        }
        engine_rates.push((batches * BULK) as f64 / start.elapsed().as_secs_f64());
        let raw = raw_pool(&place).await?;
        let start = Instant::now();
        for b in 0..batches {
            raw_triggers(&raw, o_size_offset(b * BULK), BULK).await?;
        }
        raw_rates.push((batches * BULK) as f64 / start.elapsed().as_secs_f64());
        let n = count(&engine, "SELECT COUNT(*) FROM jobs").await?;
        ensure!(
            n == 2 * (batches * BULK) as i64,
            "bulk trigger check: {n} jobs, expected {}",
            2 * batches * BULK
        );
        place.drop_schema().await;
    }
    rows.push(row(
        "trigger",
        "trigger_many 100",
        "triggers/s",
        &engine_rates,
        Some(&raw_rates),
        "≥ 0.8× raw",
    ));
    Ok(rows)
}

/// Triggers/s over HTTP (`POST /v1/events` to `belfry serve` on 127.0.0.1, keep-alive, one
/// API key) against the same triggers called in-process on the engine, from 1 and 4 callers,
/// each side on a fresh database. The gap is the HTTP layer: parsing, the key lookup (one
/// indexed read per request), JSON in and out, and the loopback round trip.
async fn bench_http(o: &Options) -> Result<Vec<Row>> {
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
async fn bench_http_busy(o: &Options) -> Result<Vec<Row>> {
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
            let mut load = tokio::task::JoinSet::new();
            for _ in 0..if busy { SLOW } else { 0 } {
                let (client, url, key, stop) = (
                    reqwest::Client::new(),
                    format!("{base}/v1/events"),
                    key.clone(),
                    stop.clone(),
                );
                load.spawn(async move {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let res = client
                            .post(&url)
                            .bearer_auth(&key)
                            .json(
                                &serde_json::json!({"notifier": "slow-recipients", "payload": {}}),
                            )
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
            // Let the slow triggers reach their plugin before measuring.
            tokio::time::sleep(Duration::from_millis(300)).await;
            let probe = {
                let (client, url) = (
                    reqwest::Client::builder()
                        .pool_max_idle_per_host(0)
                        .build()?,
                    format!("{base}/healthz"),
                );
                tokio::spawn(async move {
                    let mut took = Vec::new();
                    let end = Instant::now() + FOR;
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
                })
            };
            let client = reqwest::Client::new();
            let mut took = Vec::new();
            let end = Instant::now() + FOR;
            let mut i = 0;
            while Instant::now() < end {
                let started = Instant::now();
                let res = client
                    .post(format!("{base}/v1/events"))
                    .bearer_auth(&key)
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

fn p99(mut ms: Vec<f64>) -> f64 {
    ms.sort_by(|a, b| a.total_cmp(b));
    ms[(ms.len() * 99 / 100).min(ms.len().saturating_sub(1))]
}

/// Raw triggers use other order ids than the engine's so that nothing collides.
fn o_size_offset(i: usize) -> usize {
    1_000_000 + i
}

fn row(
    scenario: &str,
    variant: &str,
    unit: &str,
    engine: &[f64],
    raw: Option<&[f64]>,
    target: &str,
) -> Row {
    let engine = spread(engine);
    let raw = raw.map(spread);
    let ratio = raw.as_ref().map(|r| engine.median / r.median);
    Row {
        scenario: scenario.into(),
        variant: variant.into(),
        unit: unit.into(),
        engine,
        raw,
        ratio,
        target: Some(target.into()),
        sides: ("engine", "raw"),
    }
}

/// Fills the queue through the engine (not timed): `n` one-delivery triggers.
async fn fill(engine: &Engine, n: usize) -> Result<()> {
    let e = engine.clone();
    rate(n, 4, move |i| {
        let e = e.clone();
        async move {
            e.trigger(&TriggerRequest::new("order-shipped", payload(i)))
                .await?;
            Ok(())
        }
    })
    .await?;
    Ok(())
}

async fn bench_dispatch(o: &Options, backlog: usize) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    let mut empty = Vec::new();
    for workers in [1usize, 2, 4] {
        let (mut engine_rates, mut raw_rates) = (Vec::new(), Vec::new());
        for _ in 0..o.repetitions {
            let place = Place::new(o).await?;
            let engine = place.engine().await?;
            fill(&engine, o.size).await?;
            let start = belfry::host::store::now();
            let mut running = Vec::new();
            for w in 0..workers {
                running.push(Worker::start(&engine, &format!("bench-{w}"), 10));
            }
            // The burn-down ends with the last delivery's commit, as the database recorded it:
            // looking for the end less often then costs the engine nothing (a poll takes a
            // connection the workers want).
            while count(&engine, "SELECT COUNT(*) FROM jobs").await? > 0 {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let last: String = sqlx::query_scalar("SELECT MAX(updated_at) FROM deliveries")
                .fetch_one(engine.db())
                .await?;
            let took = belfry::host::store::parse_time(&last)? - start;
            let took = took.to_std()?.max(Duration::from_millis(1));
            engine_rates.push(o.size as f64 / took.as_secs_f64());
            let mut leased = 0;
            for worker in running {
                leased += worker.stop().await?.leased;
            }
            let ok = count(
                &engine,
                "SELECT COUNT(*) FROM deliveries WHERE status = 'succeeded'",
            )
            .await?;
            let attempts = count(&engine, "SELECT COUNT(*) FROM attempts").await?;
            ensure!(
                leased as usize == o.size && ok as usize == o.size && attempts as usize == o.size,
                "dispatch check: leased {leased}, succeeded {ok}, attempts {attempts}, expected {}",
                o.size
            );

            // Raw: the same number of jobs, leased and completed in batches of 10.
            let raw = Arc::new(raw_pool(&place).await?);
            sqlx::query("DELETE FROM jobs").execute(engine.db()).await?;
            for i in 0..o.size {
                raw_trigger(&raw, o_size_offset(i)).await?;
            }
            let start = Instant::now();
            let mut tasks = tokio::task::JoinSet::new();
            for w in 0..workers {
                let raw = raw.clone();
                tasks.spawn(async move { raw_worker(&raw, &format!("raw-{w}")).await });
            }
            let mut done = 0;
            while let Some(r) = tasks.join_next().await {
                done += r??;
            }
            raw_rates.push(o.size as f64 / start.elapsed().as_secs_f64());
            ensure!(
                done == o.size,
                "raw dispatch check: {done} jobs, expected {}",
                o.size
            );
            let left = count(&engine, "SELECT COUNT(*) FROM jobs").await?;
            ensure!(left == 0, "raw dispatch check: {left} jobs left");
            place.drop_schema().await;
        }
        rows.push(row(
            "dispatch",
            &format!("{workers} worker(s)"),
            "jobs/s",
            &engine_rates,
            Some(&raw_rates),
            "≥ 0.75× raw",
        ));
        empty.push((workers, engine_rates));
    }
    if backlog > 0 {
        rows.extend(dispatch_backlog(o, backlog, &empty).await?);
    }
    Ok(rows)
}

/// The most `--backlog` takes: far past where a planner's choice shows, and still filled in
/// about a minute.
pub const MAX_BACKLOG: usize = 5_000_000;

/// Dispatch with `backlog` deliveries due: the engine's rate over the first `size` jobs, by 1,
/// 2 and 4 workers (those of `empty`), beside its rate on a queue of only those jobs, measured
/// alike. One database for all backlog runs: each takes `size` jobs off the backlog, which
/// stays far larger.
async fn dispatch_backlog(
    o: &Options,
    backlog: usize,
    empty: &[(usize, Vec<f64>)],
) -> Result<Vec<Row>> {
    let place = Place::new(o).await?;
    let engine = place.engine().await?;
    let filling = Instant::now();
    fill_backlog(&engine, backlog).await?;
    if !o.json {
        eprintln!(
            "dispatch: {backlog} due deliveries written in {:.1} s",
            filling.elapsed().as_secs_f64()
        );
    }
    // One unmeasured run first: the pool opens its connections then, and each new SQLite
    // connection's `PRAGMA optimize` analyses the backlog once (a one-time cost, told here).
    let warm_up = backlog_run(&engine, o.size, 4).await?;
    // The figure beside it: the same engine and measure on a queue holding only the `size`
    // jobs of each run (the rows above open a fresh engine per repetition).
    let empty_place = Place::new(o).await?;
    let empty_engine = empty_place.engine().await?;
    fill(&empty_engine, o.size).await?;
    backlog_run(&empty_engine, o.size, 4).await?;
    if !o.json {
        eprintln!("dispatch: warm-up over the backlog, 4 workers: {warm_up:.1} jobs/s");
    }
    let mut rows = Vec::new();
    for (workers, _) in empty {
        let (mut rates, mut empty_rates) = (Vec::new(), Vec::new());
        for _ in 0..o.repetitions {
            rates.push(backlog_run(&engine, o.size, *workers).await?);
            fill(&empty_engine, o.size).await?;
            empty_rates.push(backlog_run(&empty_engine, o.size, *workers).await?);
        }
        let failed = count(
            &engine,
            "SELECT COUNT(*) FROM attempts WHERE outcome <> 'succeeded'",
        )
        .await?;
        ensure!(failed == 0, "backlog dispatch check: {failed} failed sends");
        let mut r = row(
            "dispatch",
            &format!("{workers} w, {backlog} due"),
            "jobs/s",
            &rates,
            Some(&empty_rates),
            "≥ 0.8× empty",
        );
        r.sides = ("backlog", "empty");
        rows.push(r);
    }
    place.drop_schema().await;
    empty_place.drop_schema().await;
    Ok(rows)
}

/// `workers` workers' rate over the next `size` jobs of the backlog: to the `size`-th commit
/// since they started, as the database recorded it.
async fn backlog_run(engine: &Engine, size: usize, workers: usize) -> Result<f64> {
    let done_before = count(engine, "SELECT COUNT(*) FROM attempts").await?;
    let start = belfry::host::store::now();
    let running: Vec<Worker> = (0..workers)
        .map(|w| Worker::start(engine, &format!("bench-{w}"), 10))
        .collect();
    // `attempts` holds only what was sent, so counting it stays cheap.
    while count(engine, "SELECT COUNT(*) FROM attempts").await? < done_before + size as i64 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for worker in running {
        worker.stop().await?;
    }
    let at: String = sqlx::query_scalar(&format!(
        "SELECT updated_at FROM deliveries WHERE status = 'succeeded' AND updated_at >= $1
         ORDER BY updated_at LIMIT 1 OFFSET {}",
        size - 1
    ))
    .bind(belfry::host::store::time_text(start))
    .fetch_one(engine.db())
    .await?;
    let took = (belfry::host::store::parse_time(&at)? - start)
        .to_std()?
        .max(Duration::from_millis(1));
    Ok(size as f64 / took.as_secs_f64())
}

/// Puts `n` due one-delivery jobs in the queue with bulk SQL (through the engine it would
/// take minutes): one `order-shipped` trigger through the engine, then `n - 1` copies of its
/// rows as from triggers of 100 customers each (event, notification, delivery, job, and the
/// delivery's planning trace), due as it is.
async fn fill_backlog(engine: &Engine, n: usize) -> Result<()> {
    let template = engine
        .trigger(&TriggerRequest::new(
            "order-shipped",
            serde_json::json!({"order_id": "backlog", "carrier": "c",
                               "tracking_url": "https://t.example.com",
                               "customer": {"id": "backlog-template"}}),
        ))
        .await?;
    let event = template.event_id.clone();
    let delivery = template.notifications[0].deliveries[0].id.clone();
    let notification = template.notifications[0].id.clone();
    // Copy i (1..n) belongs to event (i - 1) / 100 and goes to customer i % 100. The
    // recursive count runs on both backends.
    let k = format!(
        "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < {})",
        n.max(2) - 1
    );
    let statements = [
        format!(
            "{k} INSERT INTO events (id, tenant, notifier_key, notifier_plugin, payload, created_at)
             SELECT 'backlog-e' || ((i - 1) / 100), tenant, notifier_key, notifier_plugin, payload,
                    created_at
             FROM events, k WHERE events.id = $1 AND (i - 1) % 100 = 0"
        ),
        format!(
            "{k} INSERT INTO notifications (id, event_id, tenant, recipient_id, recipient, category,
                    severity, created_at)
             SELECT 'backlog-n' || i, 'backlog-e' || ((i - 1) / 100), tenant, 'backlog-c' || (i % 100),
                    REPLACE(recipient, '\"backlog-template\"', '\"backlog-c' || (i % 100) || '\"'),
                    category, severity, created_at
             FROM notifications, k WHERE notifications.id = $1"
        ),
        format!(
            "{k} INSERT INTO deliveries (id, notification_id, event_id, tenant, channel, status,
                    idempotency_key, planned_by, created_at, updated_at)
             SELECT 'backlog-d' || i, 'backlog-n' || i, 'backlog-e' || ((i - 1) / 100), tenant,
                    channel, status, 'backlog-k' || i, planned_by, created_at, updated_at
             FROM deliveries, k WHERE deliveries.id = $1"
        ),
        format!(
            "{k} INSERT INTO jobs (id, kind, subject_id, tenant, state, run_at, created_at, updated_at)
             SELECT 'backlog-j' || i, kind, 'backlog-d' || i, tenant, state, run_at, created_at,
                    updated_at
             FROM jobs, k WHERE jobs.subject_id = $1"
        ),
        format!(
            "{k} INSERT INTO traces (id, tenant, event_id, notification_id, delivery_id, at, kind, detail)
             SELECT 'backlog-t' || i, tenant, 'backlog-e' || ((i - 1) / 100), 'backlog-n' || i,
                    'backlog-d' || i, at, kind, detail
             FROM traces, k WHERE traces.delivery_id = $1 AND traces.kind = 'delivery.planned'"
        ),
    ];
    let ids = [&event, &notification, &delivery, &delivery, &delivery];
    let mut tx = engine.db().begin().await?;
    for (sql, id) in statements.iter().zip(ids) {
        sqlx::query(sql).bind(id).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    let jobs = count(engine, "SELECT COUNT(*) FROM jobs").await?;
    ensure!(
        jobs == n.max(2) as i64,
        "backlog check: {jobs} jobs, expected {n}"
    );
    Ok(())
}

/// The traces the engine appends to a delivery it sends (kind, detail length, whether a plugin
/// is named), so the raw side writes as many rows of the same sizes.
const SENT_TRACES: [(&str, usize, bool); 7] = [
    ("delivery.dispatched", 50, false),
    ("policy.checked", 433, false),
    ("delivery.built", 34, true),
    ("delivery.rendered", 26, true),
    ("content.valid", 26, false),
    ("attempt", 83, true),
    ("delivery.succeeded", 0, false),
];

/// The raw queue, writing the rows the engine writes for a sent delivery: lease 10, read their
/// deliveries' event and notification, then in one transaction delete the jobs, mark the
/// deliveries sent (status, content, plugin builds, provider message id), insert the attempts
/// and the seven traces each, one multi-row statement per table; until nothing is due.
/// Returns the jobs it completed.
async fn raw_worker(raw: &Raw, owner: &str) -> Result<usize> {
    use belfry::host::store::{new_id, placeholders, time_text, value_rows};
    let mut done = 0;
    let lock = match raw {
        Raw::Sqlite(_) => "",
        Raw::Postgres(_) => " FOR UPDATE SKIP LOCKED",
    };
    let lease_sql = format!(
        "WITH due AS MATERIALIZED (SELECT id FROM jobs WHERE run_at <= $1 ORDER BY run_at LIMIT 10{lock})
         UPDATE jobs SET state = 'running', lease_owner = $2, run_at = $3, attempt = attempt + 1
         WHERE id IN (SELECT id FROM due) RETURNING id, subject_id"
    );
    let content = format!("{{\"webhook\":{{\"body\":\"{}\"}}}}", "x".repeat(170));
    let details: Vec<Option<String>> = SENT_TRACES
        .iter()
        .map(|(_, len, _)| (*len > 0).then(|| "x".repeat(*len)))
        .collect();
    loop {
        let now = belfry::host::store::now();
        let later = time_text(now + chrono::Duration::seconds(60));
        let now = time_text(now);
        let leased: Vec<(String, String)> = on_raw!(raw, pool => {
            sqlx::query_as(&lease_sql).bind(&now).bind(owner).bind(&later).fetch_all(pool).await?
        });
        if leased.is_empty() {
            return Ok(done);
        }
        let n = leased.len();
        let b = raw.backend();
        let list = |from: usize| placeholders(b, n, from);
        let read = format!(
            "SELECT id, event_id, notification_id FROM deliveries WHERE id IN ({})",
            list(1)
        );
        let deliveries: Vec<(String, String, String)> = on_raw!(raw, pool => {
            let mut q = sqlx::query_as(&read);
            for (_, d) in &leased { q = q.bind(d); }
            q.fetch_all(pool).await?
        });
        ensure!(
            deliveries.len() == n,
            "raw dispatch: {} of {n} deliveries read",
            deliveries.len()
        );
        let delete = format!("DELETE FROM jobs WHERE id IN ({})", list(1));
        let mark = format!(
            "WITH v (id, content, provider_message_id) AS (VALUES {})
             UPDATE deliveries SET status = 'succeeded', attempts = deliveries.attempts + 1,
                    content = v.content, rendered_by = 'templates@raw', sent_by = 'log@raw',
                    provider_message_id = v.provider_message_id, updated_at = {}, sent_at = {}
             FROM v WHERE deliveries.id = v.id",
            value_rows(b, n, 3, 1),
            placeholders(b, 1, 3 * n + 1),
            placeholders(b, 1, 3 * n + 2),
        );
        let attempts = format!(
            "INSERT INTO attempts (id, delivery_id, attempt, adapter, started_at, duration_ms, outcome, provider_message_id) VALUES {}",
            value_rows(b, n, 8, 1)
        );
        let traces = format!(
            "INSERT INTO traces (id, tenant, event_id, notification_id, delivery_id, at, kind, reason, detail, plugin, attempt) VALUES {}",
            value_rows(b, n * SENT_TRACES.len(), 11, 1)
        );
        on_raw!(raw, pool => {
            let mut tx = pool.begin().await?;
            let mut q = sqlx::query(&delete);
            for (id, _) in &leased { q = q.bind(id); }
            q.execute(&mut *tx).await?;
            let mut q = sqlx::query(&mark);
            for (d, _, _) in &deliveries {
                q = q.bind(d).bind(&content).bind(format!("log-{d}"));
            }
            q.bind(&now).bind(&now).execute(&mut *tx).await?;
            let mut q = sqlx::query(&attempts);
            for (d, _, _) in &deliveries {
                q = q.bind(new_id()).bind(d).bind(1i64).bind("log@raw").bind(&now).bind(0i64)
                    .bind("succeeded").bind(format!("log-{d}"));
            }
            q.execute(&mut *tx).await?;
            let mut q = sqlx::query(&traces);
            for (d, event, notification) in &deliveries {
                for ((kind, _, named), detail) in SENT_TRACES.iter().zip(&details) {
                    q = q.bind(new_id()).bind("default").bind(event).bind(notification).bind(d)
                        .bind(&now).bind(*kind).bind(None::<String>).bind(detail)
                        .bind(named.then_some("raw@0.1.0#000000000000")).bind(1i64);
                }
            }
            q.execute(&mut *tx).await?;
            tx.commit().await?;
        });
        done += n;
    }
}

/// One worker of `concurrency` jobs in flight, in this process.
pub(crate) struct Worker {
    stop: tokio::sync::watch::Sender<bool>,
    handle: tokio::task::JoinHandle<belfry::host::dispatch::WorkerReport>,
}

impl Worker {
    pub(crate) fn start(engine: &Engine, owner: &str, concurrency: usize) -> Worker {
        let (stop, rx) = tokio::sync::watch::channel(false);
        let e = engine.clone();
        let config = WorkerConfig {
            owner: owner.to_string(),
            concurrency,
            ..Default::default()
        };
        let handle = tokio::spawn(async move { e.run_worker(config, rx).await });
        Worker { stop, handle }
    }

    pub(crate) async fn stop(self) -> Result<belfry::host::dispatch::WorkerReport> {
        self.stop.send(true)?;
        Ok(self.handle.await?)
    }
}

/// When each delivery's (first) adapter call started.
async fn started_at(engine: &Engine, id: &str) -> Result<chrono::DateTime<Utc>> {
    let started: String =
        sqlx::query_scalar("SELECT started_at FROM attempts WHERE delivery_id = $1")
            .bind(id)
            .fetch_one(engine.db())
            .await?;
    Ok(started.parse()?)
}

/// Trigger commit → adapter call, open loop at `rate_per_sec`, one worker (concurrency 10).
async fn bench_latency(o: &Options) -> Result<Vec<Row>> {
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
async fn bench_schedule(o: &Options) -> Result<Vec<Row>> {
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

/// Runs `scenarios`; `backlog` (0: none) adds dispatch with that many deliveries due.
pub async fn run(scenarios: &[&str], o: Options, backlog: usize) -> Result<()> {
    ensure!(
        backlog <= MAX_BACKLOG,
        "--backlog must be at most {MAX_BACKLOG}, got {backlog}"
    );
    let mut rows = Vec::new();
    for s in scenarios {
        let r = match *s {
            "trigger" => bench_trigger(&o).await?,
            "dispatch" => bench_dispatch(&o, backlog).await?,
            "latency" => bench_latency(&o).await?,
            "schedule" => bench_schedule(&o).await?,
            "http" => bench_http(&o).await?,
            other => anyhow::bail!("unknown scenario `{other}`"),
        };
        if !o.json {
            for row in &r {
                print_row(row);
            }
        }
        rows.extend(r);
    }
    if o.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "backend": o.backend, "repetitions": o.repetitions, "size": o.size,
                "backlog": backlog,
                "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
                "rows": rows,
            }))?
        );
    }
    Ok(())
}

/// A spread as the tables print it: median, then min, max and coefficient of variation.
pub(crate) fn spread_text(x: &Spread) -> String {
    format!(
        "{:>9.1} (min {:.1}, max {:.1}, cv {:.1}%)",
        x.median,
        x.min,
        x.max,
        x.cv * 100.0
    )
}

fn print_row(r: &Row) {
    let s = spread_text;
    let (a, b) = r.sides;
    print!(
        "{:<9} {:<14} {:<11} {a} {}",
        r.scenario,
        r.variant,
        r.unit,
        s(&r.engine)
    );
    if let (Some(raw), Some(ratio)) = (&r.raw, r.ratio) {
        print!("  {b} {}  {a}/{b} {ratio:.2}", s(raw));
    }
    if let Some(t) = r.target.as_deref().filter(|t| !t.is_empty()) {
        print!("  target {t}");
    }
    println!();
}
