//! The raw side of the queue benchmarks: the rows the engine writes, written with native
//! sqlx and no plugin call.

use super::{Place, payload};
use anyhow::{Result, ensure};
use std::time::Duration;

/// The raw side talks to the same database with sqlx's native drivers.
pub(super) enum Raw {
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

pub(super) async fn raw_pool(place: &Place) -> Result<Raw> {
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

pub(super) const TRACE_SQL: &str = "INSERT INTO traces (id, tenant, event_id, notification_id, delivery_id, at, kind, detail, plugin)
     VALUES ($1, 'default', $2, $3, $4, $5, $6, 'raw', 'raw')";

/// One trigger's rows, the raw way: one transaction, the same rows the engine writes.
pub(super) async fn raw_trigger(raw: &Raw, i: usize) -> Result<()> {
    raw_triggers(raw, i, 1).await
}

/// The rows of `n` triggers (numbered from `first`) in one transaction.
pub(super) async fn raw_triggers(raw: &Raw, first: usize, n: usize) -> Result<()> {
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

/// The traces the engine appends to a delivery it sends (kind, detail length, whether a plugin
/// is named), so the raw side writes as many rows of the same sizes.
pub(super) const SENT_TRACES: [(&str, usize, bool); 7] = [
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
pub(super) async fn raw_worker(raw: &Raw, owner: &str) -> Result<usize> {
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
