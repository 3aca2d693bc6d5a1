//! `belfry bench`: which measurement, on which database.

use crate::global::Global;
use crate::{bench, digest_bench, queue_bench, replay_bench};
use anyhow::{Result, bail};
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub(crate) enum BenchCommand {
    /// One renderer call on a fresh instance (and on a reused one) vs the same template
    /// rendered natively in Rust.
    Plugins {
        /// Calls per measurement; 1–1000000.
        #[arg(long, default_value_t = 2000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        iterations: u32,
    },
    /// Triggers/s from 1 and 4 callers, engine vs raw SQL writing the same rows.
    Trigger(QueueBenchArgs),
    /// Burn-down of a pre-filled queue by 1, 2 and 4 workers, engine vs raw SQL leasing and
    /// completing the same rows in batches.
    Dispatch(QueueBenchArgs),
    /// Trigger commit → adapter call at 100 triggers/s: p50, p90, p99.
    Latency(QueueBenchArgs),
    /// Lateness of jobs scheduled over the next second.
    Schedule(QueueBenchArgs),
    /// All four queue scenarios.
    Queue(QueueBenchArgs),
    /// Held deliveries accumulated per second, and emission lag after a window ends.
    Digests(QueueBenchArgs),
    /// Triggers/s over HTTP (`belfry serve` on 127.0.0.1) vs the same triggers in-process.
    Http(QueueBenchArgs),
    /// Replay of recorded events against a changed-template candidate, events/s, vs a plain
    /// loop of the same host calls (a temporary SQLite database).
    Replay {
        /// Events recorded, then replayed; 1–100000.
        #[arg(long, default_value_t = 10_000,
            value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=100_000))]
        events: usize,
    },
}

#[derive(Args)]
pub(crate) struct QueueBenchArgs {
    #[arg(long, value_enum, default_value = "sqlite")]
    pub(crate) backend: queue_bench::BenchBackend,
    /// The PostgreSQL server for --backend postgres (a fresh schema is used and dropped).
    #[arg(
        long,
        env = "BELFRY_BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/test"
    )]
    pub(crate) postgres_url: String,
    /// 1–1000.
    #[arg(long, default_value_t = 5,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000))]
    pub(crate) repetitions: usize,
    /// Triggers or jobs per repetition; 1–1000000.
    #[arg(long, default_value_t = 500,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub(crate) size: usize,
    /// dispatch: also measure with this many deliveries already due (bulk-inserted), beside
    /// the empty queue, and print the ratio (0: the empty queue only). 0–10000000.
    #[arg(long, default_value_t = 0,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=10_000_000))]
    pub(crate) backlog: usize,
}

/// Runs one `bench` subcommand; `database_url_given`: whether --database-url was on the
/// command line (see [`bench_url`]).
pub(crate) async fn run(g: &Global, command: BenchCommand, database_url_given: bool) -> Result<()> {
    let given = database_url_given.then_some(g.database_url.as_str());
    match command {
        BenchCommand::Plugins { iterations } => {
            if let Some(url) = given {
                bail!(
                    "bench plugins uses no database, so --database-url {} would be ignored: leave it out",
                    belfry::host::store::redact(url)
                );
            }
            // The per-language rows run even when the render comparison fails.
            let render = bench::plugins(iterations, g.json).await;
            bench::languages(iterations, g.plugins_dir.as_deref(), g.json).await?;
            render
        }
        BenchCommand::Trigger(a) => {
            queue_bench_run(&["trigger"], bench_url(a, given).await?, g.json).await
        }
        BenchCommand::Dispatch(a) => {
            queue_bench_run(&["dispatch"], bench_url(a, given).await?, g.json).await
        }
        BenchCommand::Latency(a) => {
            queue_bench_run(&["latency"], bench_url(a, given).await?, g.json).await
        }
        BenchCommand::Schedule(a) => {
            queue_bench_run(&["schedule"], bench_url(a, given).await?, g.json).await
        }
        BenchCommand::Queue(a) => {
            let scenarios = ["trigger", "dispatch", "latency", "schedule"];
            queue_bench_run(&scenarios, bench_url(a, given).await?, g.json).await
        }
        BenchCommand::Digests(a) => {
            digest_bench::run(options(bench_url(a, given).await?, g.json)?).await
        }
        BenchCommand::Http(a) => {
            queue_bench_run(&["http"], bench_url(a, given).await?, g.json).await
        }
        BenchCommand::Replay { events } => {
            if let Some(url) = given {
                bail!(
                    "bench replay records its events on a temporary SQLite database of its own, \
                     so --database-url {} would be ignored: leave it out",
                    belfry::host::store::redact(url)
                );
            }
            replay_bench::run(events, g.json).await
        }
    }
}

/// The benchmarks run on databases of their own (a temporary SQLite file, or a fresh schema
/// on a PostgreSQL server, dropped afterwards), never on the one belfry serves. So a
/// `--database-url` given on the command line names that PostgreSQL server (it is a server
/// to borrow a schema from, like --postgres-url), and a SQLite one is refused rather than
/// ignored. (A URL from BELFRY_DATABASE_URL or belfry.toml is the deployment's, and unused.)
async fn bench_url(mut a: QueueBenchArgs, given: Option<&str>) -> Result<QueueBenchArgs> {
    if let Some(url) = given {
        bench_server(&mut a, url)?;
    }
    if matches!(a.backend, queue_bench::BenchBackend::Postgres) {
        // The benchmark's own pools would wait out their acquire timeout on a server that is
        // down, and then say only "pool timed out".
        belfry::host::store::check_connect(&a.postgres_url).await?;
    }
    Ok(a)
}

fn bench_server(a: &mut QueueBenchArgs, url: &str) -> Result<()> {
    match belfry::host::store::Backend::of_url(url)? {
        belfry::host::store::Backend::Postgres => {
            a.backend = queue_bench::BenchBackend::Postgres;
            a.postgres_url = url.to_string();
            Ok(())
        }
        belfry::host::store::Backend::Sqlite => bail!(
            "bench runs on a temporary SQLite database of its own, never on {}: leave out \
             --database-url (or give a postgres:// URL to benchmark on that server, in a \
             schema created and dropped for the run)",
            belfry::host::store::redact(url)
        ),
    }
}

async fn queue_bench_run(scenarios: &[&str], a: QueueBenchArgs, json: bool) -> Result<()> {
    let backlog = a.backlog;
    queue_bench::run(scenarios, options(a, json)?, backlog).await
}

/// What every measurement is told: where, how many times, how big.
fn options(a: QueueBenchArgs, json: bool) -> Result<queue_bench::Options> {
    if a.repetitions == 0 || a.size == 0 {
        bail!("--repetitions and --size must be at least 1");
    }
    Ok(queue_bench::Options {
        backend: a.backend,
        postgres_url: a.postgres_url,
        repetitions: a.repetitions,
        size: a.size,
        json,
    })
}
