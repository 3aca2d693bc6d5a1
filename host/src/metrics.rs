//! What the engine reports to a metrics recorder (the `metrics` facade; `belfry serve` installs
//! a Prometheus one). Every name is here, so a dashboard author reads one file.
//!
//! Two sorts: counters and histograms the engine records as things happen in this process
//! (triggers, attempts, plugin calls), and gauges read from the database when scraped
//! ([`observe`]), which therefore cover every process sharing the database.

use crate::store::{self, Db, StoreError};
use sqlx::Row;

/// Counter: events triggered in this process, by notifier (`duplicate` = "true" for an
/// idempotent repeat, which wrote nothing).
pub const TRIGGERS: &str = "belfry_triggers_total";
/// Counter: provider send attempts recorded by this process, by outcome
/// (succeeded, transient, rate_limited, permanent). An attempt written by a commit that then
/// rolled back (its lease was lost) is counted too: rare, and never hidden.
pub const ATTEMPTS: &str = "belfry_attempts_total";
/// Counter: outbound lifecycle webhook attempts recorded by this process, by outcome
/// (delivered, failed).
pub const ENDPOINT_ATTEMPTS: &str = "belfry_endpoint_attempts_total";
/// Histogram: seconds per plugin call, by plugin (`name@version`) and function.
pub const PLUGIN_CALL_SECONDS: &str = "belfry_plugin_call_duration_seconds";
/// Counter: plugin calls that failed (trap, timeout, memory limit, bad output…), by plugin,
/// function and reason.
pub const PLUGIN_CALL_FAILURES: &str = "belfry_plugin_call_failures_total";
/// Gauge: deliveries now, by status and channel (the whole database).
pub const DELIVERIES: &str = "belfry_deliveries";
/// Gauge: jobs now, by state (available, deferred, retrying, running).
pub const QUEUE_DEPTH: &str = "belfry_queue_jobs";
/// Gauge: seconds the oldest due, unleased job has waited past its run-at time (0 if none).
pub const QUEUE_LAG_SECONDS: &str = "belfry_queue_lag_seconds";

/// Reads the gauges from the database and hands them to the recorder.
pub async fn observe(db: &Db) -> Result<(), StoreError> {
    let rows = sqlx::query(
        "SELECT status, channel, COUNT(*) AS n FROM deliveries GROUP BY status, channel",
    )
    .fetch_all(db)
    .await?;
    // A pair that no longer has deliveries must read 0, not its last count: remember every
    // pair ever set and zero those this reading did not find.
    static SEEN: std::sync::Mutex<std::collections::BTreeSet<(String, String)>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut now_seen = std::collections::BTreeSet::new();
    for r in &rows {
        let (status, channel): (String, String) = (r.get("status"), r.get("channel"));
        let n: i64 = r.get("n");
        metrics::gauge!(DELIVERIES, "status" => status.clone(), "channel" => channel.clone())
            .set(n as f64);
        now_seen.insert((status, channel));
    }
    {
        let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
        for (status, channel) in seen.difference(&now_seen) {
            metrics::gauge!(DELIVERIES, "status" => status.clone(), "channel" => channel.clone())
                .set(0.0);
        }
        seen.extend(now_seen);
    }
    let stats = crate::jobs::stats(db).await?;
    for (state, n) in [
        ("available", stats.available),
        ("deferred", stats.deferred),
        ("retrying", stats.retrying),
        ("running", stats.running),
    ] {
        metrics::gauge!(QUEUE_DEPTH, "state" => state).set(n as f64);
    }
    let now = store::now();
    let oldest: Option<String> = sqlx::query_scalar(
        "SELECT MIN(run_at) FROM jobs WHERE state <> 'running' AND run_at <= $1",
    )
    .bind(store::time_text(now))
    .fetch_one(db)
    .await?;
    let lag = match oldest {
        Some(at) => (now - store::parse_time(&at)?).num_milliseconds().max(0) as f64 / 1000.0,
        None => 0.0,
    };
    metrics::gauge!(QUEUE_LAG_SECONDS).set(lag);
    Ok(())
}
