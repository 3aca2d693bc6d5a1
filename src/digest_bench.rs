//! `belfry bench digests`: what holding deliveries for a digest costs on the trigger path, and
//! how late a digest goes out after its window ends, with the bundled `comment` notifier
//! (WIT 0.3.0: in-app sent at once, email held for a digest under the key `thread:<id>`).
//!
//! - **accumulate**: triggers/s of `comment` from 1 and 4 concurrent callers, each trigger one
//!   follower, spread over [`RECIPIENTS`] recipients and [`THREADS`] threads (so
//!   `RECIPIENTS × THREADS` buckets, each joined `size / (RECIPIENTS × THREADS)` times). Held:
//!   the tenant has a rule that takes the email (grouped by digest key, one-hour window), so the
//!   email joins its bucket in the trigger's transaction (the first join also opens the bucket
//!   and writes its `digest_emit` job). Baseline, in the same repetition and database: the same
//!   triggers in a tenant with no rule, where the email goes out on its own (`pending`, reason
//!   `no_digest_rule`, with a `deliver` job). One email per trigger, so held deliveries/s equals
//!   triggers/s. The two sides alternate which goes first between repetitions.
//! - **emission lag**: `min(size, 500)` buckets are opened (one trigger per recipient), their
//!   in-app deliveries sent, then every open bucket's window end and `digest_emit` job are moved
//!   to one instant about a second ahead, and one worker (10 jobs in flight) is started. Per
//!   bucket: window end → emission (`closed_at`), and window end → the digest's send
//!   (`sent_at`): p50, p90, p99 and max.
//!
//! Each figure is the repetitions' median with min, max and coefficient of variation, and
//! every repetition checks its rows (each email held or sent on its own, every bucket emitted
//! once, every digest sent, nothing early).

use crate::queue_bench::{Options, Place, Spread, Worker, count, rate, spread};
use anyhow::{Result, bail, ensure};
use belfry::host::content::Channel;
use belfry::host::digests::{GroupBy, RuleSpec, Window};
use belfry::host::store::{parse_time, time_text};
use belfry::{Engine, TriggerRequest};
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::{Duration, Instant};

/// Recipients the accumulate triggers are spread over.
pub const RECIPIENTS: usize = 25;
/// Threads (digest keys) the accumulate triggers are spread over.
pub const THREADS: usize = 4;
/// The most buckets the emission-lag scenario opens.
pub const MAX_BUCKETS: usize = 500;
/// The tenant with the digest rule, and the one without.
const HELD: &str = "default";
const NO_RULE: &str = "no-rule";

#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub scenario: String,
    pub variant: String,
    pub unit: String,
    /// With digests (held deliveries), or the only figure.
    pub held: Spread,
    /// The same work with no digest rule, in the same repetitions.
    pub no_rule: Option<Spread>,
    /// held / no_rule of the medians (for rates: higher is better).
    pub ratio: Option<f64>,
}

fn row(scenario: &str, variant: &str, unit: &str, held: &[f64], no_rule: Option<&[f64]>) -> Row {
    let held = spread(held);
    let no_rule = no_rule.map(spread);
    let ratio = no_rule.as_ref().map(|n| held.median / n.median);
    Row {
        scenario: scenario.into(),
        variant: variant.into(),
        unit: unit.into(),
        held,
        no_rule,
        ratio,
    }
}

fn rule() -> Result<RuleSpec> {
    Ok(RuleSpec {
        key: "threads-hourly".into(),
        version: 1,
        channel: Channel::Email,
        notifier_key: Some("comment".into()),
        category: None,
        digest_key: None,
        group_by: GroupBy::DigestKey,
        window: Window::fixed(60)?,
        max_items: None,
        first_now: false,
    })
}

/// A comment on `thread` followed by `follower` alone.
fn comment(thread: usize, follower: usize) -> serde_json::Value {
    serde_json::json!({
        "thread": {"id": thread.to_string(), "title": "T"},
        "author": {"name": "Ada"},
        "text": "x",
        "followers": [{"id": format!("u{follower}"), "email": format!("u{follower}@example.com")}],
    })
}

/// Trigger `i` of the accumulate scenario: every (recipient, thread) pair in turn.
fn spread_comment(i: usize) -> serde_json::Value {
    comment((i / RECIPIENTS) % THREADS, i % RECIPIENTS)
}

async fn triggers_per_sec(
    engine: &Engine,
    tenant: &'static str,
    size: usize,
    callers: usize,
) -> Result<f64> {
    let e = engine.clone();
    rate(size, callers, move |i| {
        let e = e.clone();
        async move {
            e.trigger(&TriggerRequest::new("comment", spread_comment(i)).tenant(tenant))
                .await?;
            Ok(())
        }
    })
    .await
}

async fn bench_accumulate(o: &Options) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for callers in [1usize, 4] {
        let (mut held_rates, mut plain_rates) = (Vec::new(), Vec::new());
        for rep in 0..o.repetitions {
            let place = Place::new(o).await?;
            let engine = place.engine().await?;
            engine.upsert_digest_rule(HELD, &rule()?).await?;
            // Alternate which side runs first (the second runs on a fuller database).
            let held_first = rep % 2 == 0;
            for held in [held_first, !held_first] {
                if held {
                    held_rates.push(triggers_per_sec(&engine, HELD, o.size, callers).await?);
                } else {
                    plain_rates.push(triggers_per_sec(&engine, NO_RULE, o.size, callers).await?);
                }
            }
            check_accumulated(&engine, o.size).await?;
            place.drop_schema().await;
        }
        rows.push(row(
            "accumulate",
            &format!("{callers} caller(s)"),
            "triggers/s",
            &held_rates,
            Some(&plain_rates),
        ));
    }
    Ok(rows)
}

/// Every held email joined a bucket once, every other email went out on its own.
async fn check_accumulated(engine: &Engine, size: usize) -> Result<()> {
    let n = size as i64;
    let held = count(
        engine,
        &format!(
            "SELECT COUNT(*) FROM deliveries WHERE tenant = '{HELD}' AND channel = 'email'
             AND status = 'held' AND status_reason = 'held_for_digest' AND digest_bucket_id IS NOT NULL"
        ),
    )
    .await?;
    let joined = count(
        engine,
        &format!(
            "SELECT CAST(COALESCE(SUM(items), 0) AS BIGINT) FROM digest_buckets WHERE tenant = '{HELD}'"
        ),
    )
    .await?;
    let buckets = count(engine, "SELECT COUNT(*) FROM digest_buckets").await?;
    let emit_jobs = count(
        engine,
        "SELECT COUNT(*) FROM jobs WHERE kind = 'digest_emit'",
    )
    .await?;
    let alone = count(
        engine,
        &format!(
            "SELECT COUNT(*) FROM deliveries WHERE tenant = '{NO_RULE}' AND channel = 'email'
             AND status = 'pending' AND status_reason = 'no_digest_rule'"
        ),
    )
    .await?;
    let deliver_jobs = count(engine, "SELECT COUNT(*) FROM jobs WHERE kind = 'deliver'").await?;
    // A run that crosses the hour opens the next window's buckets too.
    let least = size.min(RECIPIENTS * THREADS) as i64;
    ensure!(
        held == n && joined == n && alone == n && deliver_jobs == 3 * n,
        "accumulate check: {held} held, {joined} joined, {alone} sent alone, {deliver_jobs} deliver jobs; expected {n}, {n}, {n}, {}",
        3 * n
    );
    ensure!(
        (least..=2 * least).contains(&buckets) && emit_jobs == buckets,
        "accumulate check: {buckets} buckets with {emit_jobs} emission jobs, expected {least} (or up to twice across an hour)"
    );
    Ok(())
}

/// Waits until `sql` counts zero, at most until `deadline`.
async fn until_none(engine: &Engine, sql: &str, deadline: Instant, what: &str) -> Result<()> {
    while count(engine, sql).await? > 0 {
        if Instant::now() > deadline {
            bail!("emission lag: {what} did not finish in time");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// Milliseconds from `from` to the stored time `to`.
fn ms_after(from: DateTime<Utc>, to: &str) -> Result<f64> {
    Ok((parse_time(to)? - from).num_milliseconds() as f64)
}

/// A bucket as the lag scenario reads it back: id, status, closed at, and its digest
/// delivery's status, sent at and updated at.
type Closed = (
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
);

/// p50, p90, p99 and max of `v`.
fn quantiles(mut v: Vec<f64>) -> [f64; 4] {
    v.sort_by(|a, b| a.total_cmp(b));
    let p = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
    [p(0.5), p(0.9), p(0.99), v[v.len() - 1]]
}

/// Each bucket's lag from `due` (its window's end) to its emission and to its digest's send,
/// in ms; every bucket must have emitted, on time, and its digest been sent.
fn lags(got: &[Closed], due: DateTime<Utc>) -> Result<(Vec<f64>, Vec<f64>)> {
    let (mut to_emit, mut to_send) = (Vec::with_capacity(got.len()), Vec::with_capacity(got.len()));
    for (id, status, closed_at, digest_status, sent_at, updated_at) in got {
        let (Some(closed_at), Some("succeeded")) = (closed_at, digest_status.as_deref()) else {
            bail!("emission lag check: bucket {id} is {status}, its digest {digest_status:?}");
        };
        let emit = ms_after(due, closed_at)?;
        ensure!(
            emit >= 0.0,
            "emission lag check: bucket {id} emitted {emit} ms early"
        );
        to_emit.push(emit);
        let Some(sent_at) = sent_at.as_ref().or(updated_at.as_ref()) else {
            bail!("emission lag check: the digest of bucket {id} has no send time");
        };
        to_send.push(ms_after(due, sent_at)?);
    }
    Ok((to_emit, to_send))
}

async fn bench_lag(o: &Options) -> Result<Vec<Row>> {
    let n = o.size.min(MAX_BUCKETS);
    let (mut emitted, mut sent): (Vec<[f64; 4]>, Vec<[f64; 4]>) = (Vec::new(), Vec::new());
    let (mut emit_rates, mut send_rates) = (Vec::new(), Vec::new());
    for _ in 0..o.repetitions {
        let place = Place::new(o).await?;
        let engine = place.engine().await?;
        engine.upsert_digest_rule(HELD, &rule()?).await?;
        // One bucket per recipient, all on thread 42.
        let e = engine.clone();
        rate(n, 4, move |i| {
            let e = e.clone();
            async move {
                e.trigger(&TriggerRequest::new("comment", comment(42, i)))
                    .await?;
                Ok(())
            }
        })
        .await?;
        let open = count(
            &engine,
            "SELECT COUNT(*) FROM digest_buckets WHERE status = 'open'",
        )
        .await?;
        ensure!(
            open == n as i64,
            "emission lag check: {open} open buckets, expected {n}"
        );
        // The in-app deliveries go first, so that only emissions and digests remain.
        let worker = Worker::start(&engine, "bench-in-app", 10);
        let drained = until_none(
            &engine,
            "SELECT COUNT(*) FROM jobs WHERE kind = 'deliver'",
            Instant::now() + Duration::from_secs(300),
            "the in-app deliveries",
        )
        .await;
        worker.stop().await?;
        drained?;

        // Every window ends at one instant about a second from now (stored to the millisecond).
        let due = parse_time(&time_text(Utc::now() + chrono::Duration::seconds(1)))?;
        let due_text = time_text(due);
        sqlx::query("UPDATE digest_buckets SET window_end = $1 WHERE status = 'open'")
            .bind(&due_text)
            .execute(engine.db())
            .await?;
        let moved = sqlx::query("UPDATE jobs SET run_at = $1 WHERE kind = 'digest_emit'")
            .bind(&due_text)
            .execute(engine.db())
            .await?
            .rows_affected();
        ensure!(
            moved == n as u64,
            "emission lag check: moved {moved} jobs, expected {n}"
        );
        let worker = Worker::start(&engine, "bench", 10);
        let done = until_none(
            &engine,
            "SELECT COUNT(*) FROM jobs",
            Instant::now() + Duration::from_secs(300),
            "the emissions and digests",
        )
        .await;
        worker.stop().await?;
        done?;

        let got: Vec<Closed> = sqlx::query_as(
            "SELECT b.id, b.status, b.closed_at, d.status, d.sent_at, d.updated_at
             FROM digest_buckets b LEFT JOIN deliveries d ON d.digest_of = b.id",
        )
        .fetch_all(engine.db())
        .await?;
        ensure!(
            got.len() == n,
            "emission lag check: {} digests for {n} buckets",
            got.len()
        );
        let (to_emit, to_send) = lags(&got, due)?;
        let (e, s) = (quantiles(to_emit), quantiles(to_send));
        // The last one out over the whole run: how fast emissions and digests drain.
        emit_rates.push(n as f64 / (e[3].max(1.0) / 1000.0));
        send_rates.push(n as f64 / (s[3].max(1.0) / 1000.0));
        emitted.push(e);
        sent.push(s);
        place.drop_schema().await;
    }
    let mut rows = Vec::new();
    for (what, lags) in [
        ("window end → emitted", &emitted),
        ("window end → sent", &sent),
    ] {
        for (k, name) in ["p50", "p90", "p99", "max"].iter().enumerate() {
            let v: Vec<f64> = lags.iter().map(|l| l[k]).collect();
            rows.push(row("lag", &format!("{what} {name}"), "ms", &v, None));
        }
    }
    rows.push(row(
        "lag",
        &format!("{n} buckets emitted"),
        "buckets/s",
        &emit_rates,
        None,
    ));
    rows.push(row(
        "lag",
        &format!("{n} digests sent"),
        "digests/s",
        &send_rates,
        None,
    ));
    Ok(rows)
}

pub async fn run(o: Options) -> Result<()> {
    let mut rows = Vec::new();
    for r in [bench_accumulate(&o).await?, bench_lag(&o).await?] {
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
                "recipients": RECIPIENTS, "threads": THREADS,
                "lag_buckets": o.size.min(MAX_BUCKETS),
                "cpus": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
                "rows": rows,
            }))?
        );
    }
    Ok(())
}

fn print_row(r: &Row) {
    let s = crate::queue_bench::spread_text;
    let label = if r.no_rule.is_some() { "held" } else { "" };
    print!(
        "{:<10} {:<27} {:<10} {label:<4} {}",
        r.scenario,
        r.variant,
        r.unit,
        s(&r.held)
    );
    if let (Some(n), Some(ratio)) = (&r.no_rule, r.ratio) {
        print!("  no rule {}  held/no rule {ratio:.2}", s(n));
    }
    println!();
}
