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
use belfry::{Engine, EngineConfig};
use serde::Serialize;
use sqlx::Executor;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

mod dispatch;
mod http;
mod latency;
mod raw;
mod trigger;

pub use dispatch::MAX_BACKLOG;
use dispatch::bench_dispatch;
use http::bench_http;
use latency::{bench_latency, bench_schedule};
use trigger::bench_trigger;

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
