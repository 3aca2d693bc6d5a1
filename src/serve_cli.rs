//! `belfry serve` and `belfry worker`: their options and the long-running processes.

use crate::global::{Global, engine_config, live_config};
use anyhow::{Context, Result, bail};
use belfry::Engine;
use clap::Args;

#[derive(Args)]
pub(crate) struct WorkerArgs {
    /// Jobs in flight at once in this process; 1–1024.
    #[arg(long, env = "BELFRY_WORKER_CONCURRENCY", default_value_t = 8,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    pub(crate) concurrency: usize,
    /// Lease length in seconds: a job whose worker died is taken over after this. It must
    /// exceed the longest render plus send. 1–86400.
    #[arg(long, env = "BELFRY_WORKER_LEASE_SECS", default_value_t = 120.0,
        value_parser = |v: &str| seconds_between(v, 1.0, 86_400.0))]
    pub(crate) lease_secs: f64,
    /// Seconds shutdown waits for in-flight sends before releasing them; 0–3600.
    #[arg(long, env = "BELFRY_WORKER_GRACE_SECS", default_value_t = 10.0,
        value_parser = |v: &str| seconds_between(v, 0.0, 3_600.0))]
    pub(crate) grace_secs: f64,
    /// The polling backstop in milliseconds (wake-ups normally come sooner); 10–60000.
    #[arg(long, env = "BELFRY_WORKER_POLL_MS", default_value_t = 1000,
        value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub(crate) poll_ms: u64,
    #[command(flatten)]
    pub(crate) retry: RetryArgs,
}

#[derive(Args)]
pub(crate) struct ServeArgs {
    /// The address to listen on (port 0 picks a free one, printed at start).
    #[arg(long, env = "BELFRY_LISTEN", default_value = "127.0.0.1:8080")]
    pub(crate) listen: std::net::SocketAddr,
    /// The largest request body in bytes; bigger ones get 413. 1024–1073741824 (1 GiB).
    #[arg(long, env = "BELFRY_MAX_BODY_BYTES", default_value_t = 1 << 20,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..=1 << 30))]
    pub(crate) max_body_bytes: usize,
    /// Requests per second per API key (0: unlimited); over it, 429 with Retry-After.
    /// 0–1000000.
    #[arg(long, env = "BELFRY_RATE_LIMIT_PER_SEC", default_value_t = 0,
        value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub(crate) rate_limit_per_sec: u32,
    /// The most requests a key may make in a burst before the rate applies (a bucket of this
    /// size refilled at the rate); a value below the rate means the rate. 0–1000000.
    #[arg(long, env = "BELFRY_RATE_LIMIT_BURST", default_value_t = 0,
        value_parser = clap::value_parser!(u32).range(0..=1_000_000))]
    pub(crate) rate_limit_burst: u32,
    /// How often an open inbox stream looks for new items, in milliseconds; 10–60000.
    #[arg(long, env = "BELFRY_INBOX_POLL_MS", default_value_t = 250,
        value_parser = clap::value_parser!(u64).range(10..=60_000))]
    pub(crate) inbox_poll_ms: u64,
    /// Days raw provider webhook requests are kept for `belfry webhooks replay` (0: forever);
    /// 0–3653 (ten years).
    #[arg(long, env = "BELFRY_WEBHOOK_RETENTION_DAYS", default_value_t = 30,
        value_parser = clap::value_parser!(u32).range(0..=3_653))]
    pub(crate) webhook_retention_days: u32,
    /// The largest `POST /v1/plugins` body in bytes (a base64 component and its manifest);
    /// 1024–1073741824 (1 GiB).
    #[arg(long, env = "BELFRY_MAX_PLUGIN_BYTES", default_value_t = 64 << 20,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1024..=1 << 30))]
    pub(crate) max_plugin_bytes: usize,
    /// Serve the API only (when `belfry worker` processes do the sending). The variable takes
    /// true/false, 1/0, yes/no, on/off.
    #[arg(long, env = "BELFRY_NO_WORKERS", value_parser = clap::builder::BoolishValueParser::new())]
    pub(crate) no_workers: bool,
    #[command(flatten)]
    pub(crate) worker: WorkerArgs,
}

#[derive(Args, Clone)]
pub(crate) struct RetryArgs {
    /// Attempts per delivery, the first included, before it is cancelled `retries_exhausted`;
    /// 1–100.
    #[arg(long, env = "BELFRY_RETRY_MAX_ATTEMPTS", default_value_t = 8,
        value_parser = clap::value_parser!(u32).range(1..=100))]
    pub(crate) max_attempts: u32,
    /// Seconds to wait after the first failure; doubled after each further one. 1–86400.
    #[arg(long, env = "BELFRY_RETRY_BASE_SECS", default_value_t = 20.0,
        value_parser = |v: &str| seconds_between(v, 1.0, 86_400.0))]
    pub(crate) retry_base_secs: f64,
    /// The longest wait between attempts, in seconds; 1–86400, and at least the base.
    #[arg(long, env = "BELFRY_RETRY_MAX_SECS", default_value_t = 600.0,
        value_parser = |v: &str| seconds_between(v, 1.0, 86_400.0))]
    pub(crate) retry_max_secs: f64,
}

impl RetryArgs {
    fn policy(&self) -> Result<belfry::host::dispatch::RetryPolicy> {
        let policy = belfry::host::dispatch::RetryPolicy {
            max_attempts: self.max_attempts,
            base: secs("retry-base-secs", self.retry_base_secs)?,
            max_delay: secs("retry-max-secs", self.retry_max_secs)?,
            ..Default::default()
        };
        policy.validate()?;
        Ok(policy)
    }
}

/// `belfry serve`: the HTTP server and its workers until SIGTERM/SIGINT, then a graceful
/// stop (open requests finish, in-flight sends get their grace) and exit 0.
pub(crate) async fn serve(g: &Global, args: ServeArgs) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    if args.max_body_bytes < 1024 {
        bail!("--max-body-bytes must be at least 1024");
    }
    let workers = if args.no_workers {
        None
    } else {
        Some(worker_config(&args.worker)?)
    };
    let mut engine_config = engine_config(g)?;
    engine_config.dispatch.retry = args.worker.retry.policy()?;
    engine_config.live = Some(live_config(g)?);
    let engine = Engine::open(engine_config).await?;
    let config = belfry::serve::ServeConfig {
        listen: args.listen,
        max_body_bytes: args.max_body_bytes,
        max_plugin_bytes: args.max_plugin_bytes,
        rate_limit_per_sec: args.rate_limit_per_sec,
        rate_limit_burst: args.rate_limit_burst,
        inbox_poll: std::time::Duration::from_millis(args.inbox_poll_ms.max(10)),
        workers,
        public_url: g.public_url.clone(),
        webhook_retention_days: args.webhook_retention_days,
    };
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let running = belfry::serve::start(engine, config.clone())
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    // The address goes to stdout so a script (or a test) that asked for port 0 can read it.
    println!("belfry serve listening on http://{}", running.addr);
    eprintln!(
        "belfry serve on {}: workers {}",
        belfry::host::store::redact(&g.database_url),
        match &config.workers {
            Some(w) => format!("{} ({})", w.concurrency, w.owner),
            None => "none (--no-workers)".to_string(),
        }
    );
    let mut running = running;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        served = running.until_stopped() => {
            return served.context("serving stopped on its own");
        }
    }
    tracing::info!("signal received: stopping");
    running.shutdown().await.context("serving")?;
    eprintln!("belfry serve stopped");
    Ok(())
}

pub(crate) fn worker_config(args: &WorkerArgs) -> Result<belfry::host::dispatch::WorkerConfig> {
    if args.concurrency == 0 {
        bail!("--concurrency must be at least 1");
    }
    Ok(belfry::host::dispatch::WorkerConfig {
        concurrency: args.concurrency,
        lease_for: secs("lease-secs", args.lease_secs)?,
        grace: secs("grace-secs", args.grace_secs)?,
        poll: std::time::Duration::from_millis(args.poll_ms.max(1)),
        ..Default::default()
    })
}

/// `belfry worker`: workers until SIGTERM/SIGINT, then a graceful stop and exit 0.
pub(crate) async fn worker(g: &Global, args: WorkerArgs) -> Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let config = worker_config(&args)?;
    let mut engine_config = engine_config(g)?;
    engine_config.dispatch.retry = args.retry.policy()?;
    engine_config.live = Some(live_config(g)?);
    let engine = Engine::open(engine_config).await?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("signal received: stopping");
        let _ = stop_tx.send(true);
    });
    eprintln!(
        "belfry worker {} on {}: concurrency {}",
        config.owner,
        belfry::host::store::redact(&g.database_url),
        config.concurrency
    );
    let report = engine.run_worker(config, stop_rx).await;
    if g.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        eprintln!(
            "belfry worker stopped: {} leased, {} succeeded, {} failed, {} to retry, {} cancelled, {} suppressed, {} deferred, {} dropped, {} released, {} errors, {} restarts",
            report.leased,
            report.succeeded,
            report.failed,
            report.retried,
            report.cancelled,
            report.suppressed,
            report.deferred,
            report.dropped,
            report.released,
            report.errors,
            report.restarts
        );
    }
    Ok(())
}

/// A number of seconds from `min` to `max` (a flag's documented range; clap names the flag).
fn seconds_between(v: &str, min: f64, max: f64) -> std::result::Result<f64, String> {
    let n: f64 = v
        .trim()
        .parse()
        .map_err(|_| format!("`{v}` is not a number of seconds"))?;
    if !(min..=max).contains(&n) {
        return Err(format!("{v} is not in {min}..={max} seconds"));
    }
    Ok(n)
}

/// A `--NAME` option given in seconds.
fn secs(name: &str, v: f64) -> Result<std::time::Duration> {
    std::time::Duration::try_from_secs_f64(v)
        .map_err(|_| anyhow::anyhow!("--{name} must be a number of seconds ≥ 0, got {v}"))
}
