//! The plans of the statements dispatch runs for every job, on SQLite and PostgreSQL, against
//! a database holding a large backlog: none may read a number of rows that grows with the
//! backlog (a full scan of a large table, or a walk of an index on delivery status, whose
//! `pending` entries are the backlog itself).
//!
//! The statements are not copied here: a real worker dispatches real triggers (a plain send
//! under a cooldown and a cap, an in-app workflow step, a digest) while every statement sqlx runs is
//! recorded from its `sqlx::query` log events, and each one recorded is then explained, with
//! the statistics the engine left (none, after a burst) and again after `ANALYZE`.
//!
//! SQLite: `EXPLAIN QUERY PLAN`. PostgreSQL: `EXPLAIN (FORMAT JSON)` of the generic plan
//! (`plan_cache_mode = force_generic_plan`), the one a prepared statement settles on, so the
//! plan cannot hang on the values bound.
//!
//! A binary of its own: it installs the process-wide tracing subscriber and records every
//! statement sqlx runs in the process; other tests' statements would be recorded too.

// The shared set-up of `tests/it`, of which this binary uses a part.
#[path = "it/common/mod.rs"]
#[allow(dead_code)]
mod common;

use belfry::host::content::Channel;
use belfry::host::digests::{GroupBy, RuleSpec, Window};
use belfry::host::dispatch::WorkerConfig;
use belfry::host::policy::{Cap, SettingsPatch};
use belfry::{Engine, TriggerRequest};
use common::{Backend, world};
use serde_json::json;
use sqlx::{Connection, Either, Executor, Row, Statement};
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Pending deliveries (each with its notification, job and trace) already waiting.
const BACKLOG: i64 = 100_000;

/// Tables the backlog fills: a plan may reach their rows only through an index lookup.
const LARGE: [&str; 5] = ["deliveries", "notifications", "jobs", "events", "traces"];

// ---------------------------------------------------------------------------------------------
// Recording the statements sqlx runs.

static RECORDING: AtomicBool = AtomicBool::new(false);
static RECORDED: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// The two backends' tests share the recorder, so they take turns.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

struct Recorder;

#[derive(Default)]
struct Fields {
    summary: String,
    statement: String,
}

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "summary" => self.summary = value.to_string(),
            "db.statement" => self.statement = value.to_string(),
            _ => {}
        }
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "summary" => self.summary = format!("{value:?}"),
            "db.statement" => self.statement = format!("{value:?}"),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Recorder {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        if event.metadata().target() != "sqlx::query" || !RECORDING.load(Ordering::SeqCst) {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        // sqlx logs a short statement whole as its summary, a longer one as `db.statement`.
        let sql = if fields.statement.trim().is_empty() {
            fields.summary
        } else {
            fields.statement
        };
        RECORDED.lock().unwrap().push(sql.trim().to_string());
    }
}

fn install_recorder() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        tracing_subscriber::registry().with(Recorder).init();
    });
}

// ---------------------------------------------------------------------------------------------
// The backlog, written with bulk SQL.

async fn fill_backlog(e: &Engine, b: Backend) {
    let db = e.db();
    // Ids sort after nothing the test writes: UUIDv7 text starts with a hex digit.
    let statements: Vec<String> = match b {
        Backend::Sqlite => {
            let k = format!(
                "WITH RECURSIVE k(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM k WHERE i < {BACKLOG})"
            );
            vec![
                format!(
                    "{k} INSERT INTO events (id, tenant, notifier_key, notifier_plugin, payload, created_at)
                     SELECT printf('zz-e%09d', i), 'default', 'order-shipped', 'order-shipped@0.1.0', '{{}}',
                            '2026-01-01T00:00:00.000Z' FROM k WHERE i % 10 = 0"
                ),
                format!(
                    "{k} INSERT INTO notifications (id, event_id, tenant, recipient_id, recipient, category, created_at)
                     SELECT printf('zz-n%09d', i), printf('zz-e%09d', ((i - 1) / 10) * 10 + 10), 'default',
                            'cust-' || (i % 5000), '{{\"id\":\"cust\"}}', 'orders', '2026-01-01T00:00:00.000Z' FROM k"
                ),
                format!(
                    "{k} INSERT INTO deliveries (id, notification_id, event_id, tenant, channel, status,
                            idempotency_key, planned_by, created_at, updated_at)
                     SELECT printf('zz-d%09d', i), printf('zz-n%09d', i), printf('zz-e%09d', ((i - 1) / 10) * 10 + 10),
                            'default', 'webhook', 'pending', printf('zz-k%09d', i), 'order-shipped@0.1.0',
                            '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z' FROM k"
                ),
                // Not due: the backlog waits (a deferral, or an outage's retries) beside the work
                // that is, so the worker here runs only what the test triggers.
                format!(
                    "{k} INSERT INTO jobs (id, kind, subject_id, tenant, state, run_at, created_at, updated_at)
                     SELECT printf('zz-j%09d', i), 'deliver', printf('zz-d%09d', i), 'default', 'deferred',
                            '2999-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z' FROM k"
                ),
                format!(
                    "{k} INSERT INTO traces (id, tenant, event_id, notification_id, delivery_id, at, kind)
                     SELECT printf('zz-t%09d', i), 'default', printf('zz-e%09d', ((i - 1) / 10) * 10 + 10),
                            printf('zz-n%09d', i), printf('zz-d%09d', i), '2026-01-01T00:00:00.000Z',
                            'delivery.planned' FROM k"
                ),
            ]
        }
        Backend::Postgres => {
            let id = |p: &str, expr: &str| format!("'{p}' || lpad(({expr})::text, 9, '0')");
            let ev = id("zz-e", "((i - 1) / 10) * 10 + 10");
            let (n, d) = (id("zz-n", "i"), id("zz-d", "i"));
            let series = format!("FROM generate_series(1, {BACKLOG}) AS i");
            vec![
                format!(
                    "INSERT INTO events (id, tenant, notifier_key, notifier_plugin, payload, created_at)
                     SELECT {}, 'default', 'order-shipped', 'order-shipped@0.1.0', '{{}}',
                            '2026-01-01T00:00:00.000Z' FROM generate_series(10, {BACKLOG}, 10) AS i",
                    id("zz-e", "i")
                ),
                format!(
                    "INSERT INTO notifications (id, event_id, tenant, recipient_id, recipient, category, created_at)
                     SELECT {n}, {ev}, 'default', 'cust-' || (i % 5000), '{{\"id\":\"cust\"}}', 'orders',
                            '2026-01-01T00:00:00.000Z' {series}"
                ),
                format!(
                    "INSERT INTO deliveries (id, notification_id, event_id, tenant, channel, status,
                            idempotency_key, planned_by, created_at, updated_at)
                     SELECT {d}, {n}, {ev}, 'default', 'webhook', 'pending', {}, 'order-shipped@0.1.0',
                            '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z' {series}",
                    id("zz-k", "i")
                ),
                format!(
                    "INSERT INTO jobs (id, kind, subject_id, tenant, state, run_at, created_at, updated_at)
                     SELECT {}, 'deliver', {d}, 'default', 'deferred', '2999-01-01T00:00:00.000Z',
                            '2026-01-01T00:00:00.000Z', '2026-01-01T00:00:00.000Z' {series}",
                    id("zz-j", "i")
                ),
                format!(
                    "INSERT INTO traces (id, tenant, event_id, notification_id, delivery_id, at, kind)
                     SELECT {}, 'default', {ev}, {n}, {d}, '2026-01-01T00:00:00.000Z',
                            'delivery.planned' {series}",
                    id("zz-t", "i")
                ),
            ]
        }
    };
    if b == Backend::Postgres {
        // A burst lands faster than autovacuum analyses it: keep it from running here, so the
        // first check sees the planner without statistics for the backlog, every time.
        for table in LARGE {
            sqlx::query(&format!(
                "ALTER TABLE {table} SET (autovacuum_enabled = false)"
            ))
            .execute(db)
            .await
            .unwrap();
        }
    }
    for sql in statements {
        sqlx::query(&sql).execute(db).await.unwrap();
    }
}

// ---------------------------------------------------------------------------------------------
// The work whose statements are recorded.

fn order(id: &str, customer: &str) -> serde_json::Value {
    json!({"order_id": id, "carrier": "c", "tracking_url": "https://t.example.com",
           "customer": {"id": customer}})
}

fn task(n: usize) -> TriggerRequest {
    TriggerRequest::new(
        "task-assigned",
        json!({
            "task": {"id": format!("T-{n}"), "title": "Review", "url": "https://tasks.example/T"},
            "assignee": {"id": format!("ada-{n}"), "email": "ada@example.com", "name": "Ada"},
            "assigned_by": {"name": "Grace"},
        }),
    )
}

/// Two comments held for an email digest whose window has ended, so the worker emits the
/// bucket and sends the digest; returns the bucket.
async fn held_in_a_due_bucket(e: &Engine, ids: &mut Vec<String>) -> String {
    e.upsert_digest_rule(
        "default",
        &RuleSpec {
            key: "comments".into(),
            version: 1,
            channel: Channel::Email,
            notifier_key: Some("comment".into()),
            category: None,
            digest_key: None,
            group_by: GroupBy::DigestKey,
            window: Window::fixed(60).unwrap(),
            max_items: None,
            first_now: false,
        },
    )
    .await
    .unwrap();
    let mut held = String::new();
    for text in ["first", "second"] {
        let o = e
            .trigger(&TriggerRequest::new(
                "comment",
                json!({
                    "thread": {"id": "42", "title": "Thread 42"},
                    "author": {"name": "Grace"},
                    "text": text,
                    "followers": [{"id": "f1", "email": "f1@example.com"}],
                }),
            ))
            .await
            .unwrap();
        for d in &o.notifications[0].deliveries {
            ids.push(d.id.clone());
            if d.channel == "email" {
                held = d.id.clone();
            }
        }
    }
    let bucket: String =
        sqlx::query_scalar("SELECT digest_bucket_id FROM deliveries WHERE id = $1")
            .bind(&held)
            .fetch_one(e.db())
            .await
            .unwrap();
    // The window ends now rather than in a minute.
    let past = belfry::host::store::time_text(chrono::Utc::now() - chrono::Duration::seconds(1));
    sqlx::query("UPDATE digest_buckets SET window_end = $1 WHERE id = $2")
        .bind(&past)
        .bind(&bucket)
        .execute(e.db())
        .await
        .unwrap();
    sqlx::query("UPDATE jobs SET run_at = $1 WHERE kind = 'digest_emit' AND subject_id = $2")
        .bind(&past)
        .bind(&bucket)
        .execute(e.db())
        .await
        .unwrap();
    bucket
}

/// Triggers sends that exercise every per-job read (policy inputs, cooldown, cap, an in-app
/// workflow step and its run's move, a digest's emission and send) and dispatches them with a
/// real worker while recording.
async fn record_dispatch(e: &Engine) -> BTreeSet<String> {
    e.set_settings(
        "default",
        "*",
        &SettingsPatch {
            caps: vec![(Channel::Webhook, Some(Cap::new(1000, 3600).unwrap()))],
            cooldowns: vec![("order-shipped".into(), Some(1))],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let mut ids = Vec::new();
    for n in 0..12 {
        let o = e
            .trigger(&TriggerRequest::new(
                "order-shipped",
                order(&format!("o-{n}"), &format!("u-{n}")),
            ))
            .await
            .unwrap();
        ids.extend(o.notifications[0].deliveries.iter().map(|d| d.id.clone()));
    }
    for n in 0..4 {
        let o = e.trigger(&task(n)).await.unwrap();
        ids.extend(o.notifications[0].deliveries.iter().map(|d| d.id.clone()));
    }
    let bucket = held_in_a_due_bucket(e, &mut ids).await;

    RECORDED.lock().unwrap().clear();
    RECORDING.store(true, Ordering::SeqCst);
    let (stop, rx) = tokio::sync::watch::channel(false);
    let worker = {
        let e = e.clone();
        let config = WorkerConfig {
            concurrency: 4,
            poll: Duration::from_millis(100),
            ..Default::default()
        };
        tokio::spawn(async move { e.run_worker(config, rx).await })
    };
    let mut waited = 0;
    loop {
        let mut done = 0;
        for id in &ids {
            let status = e.delivery(id).await.unwrap().unwrap().status;
            done += !["pending", "held"].contains(&status.as_str()) as usize;
        }
        let digest_sent: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM deliveries WHERE digest_of = $1 AND status <> 'pending'",
        )
        .bind(&bucket)
        .fetch_one(e.db())
        .await
        .unwrap();
        if done == ids.len() && digest_sent == 1 {
            break;
        }
        waited += 1;
        assert!(
            waited < 600,
            "the worker did not finish the triggered deliveries in 60 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // One more poll, so the idle worker's own statements (the next due job) are seen too.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.send(true).unwrap();
    worker.await.unwrap();
    RECORDING.store(false, Ordering::SeqCst);
    let recorded = std::mem::take(&mut *RECORDED.lock().unwrap());
    recorded
        .into_iter()
        .filter(|sql| {
            let head = sql
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_ascii_uppercase();
            matches!(
                head.as_str(),
                "SELECT" | "WITH" | "UPDATE" | "DELETE" | "INSERT"
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Reading plans.

/// Table names and aliases of `sql`: `FROM deliveries d` names `d` as `deliveries`.
fn aliases(sql: &str) -> Vec<(String, String)> {
    let words: Vec<String> = sql
        .replace(['(', ')', ',', ';'], " ")
        .split_whitespace()
        .map(str::to_string)
        .collect();
    let mut out = Vec::new();
    for (i, w) in words.iter().enumerate() {
        if !["FROM", "JOIN", "UPDATE", "INTO"].contains(&w.to_ascii_uppercase().as_str()) {
            continue;
        }
        let Some(table) = words.get(i + 1) else {
            continue;
        };
        out.push((table.clone(), table.clone()));
        let mut next = words.get(i + 2);
        if next.is_some_and(|n| n.eq_ignore_ascii_case("AS")) {
            next = words.get(i + 3);
        }
        if let Some(alias) = next
            && alias.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && !is_keyword(alias)
        {
            out.push((alias.clone(), table.clone()));
        }
    }
    out
}

fn is_keyword(w: &str) -> bool {
    [
        "WHERE",
        "JOIN",
        "LEFT",
        "INNER",
        "ON",
        "SET",
        "GROUP",
        "ORDER",
        "LIMIT",
        "VALUES",
        "USING",
        "UNION",
        "RETURNING",
        "AS",
        "SELECT",
        "FOR",
        "WITH",
        "DEFAULT",
        "CROSS",
    ]
    .contains(&w.to_ascii_uppercase().as_str())
}

fn large_table(sql: &str, name: &str) -> Option<&'static str> {
    let table = aliases(sql)
        .into_iter()
        .find(|(alias, _)| alias == name)
        .map(|(_, t)| t)
        .unwrap_or_else(|| name.to_string());
    LARGE.into_iter().find(|t| *t == table)
}

/// What is wrong with a SQLite plan (its `detail` lines), if anything.
fn sqlite_problems(sql: &str, plan: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for line in plan {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.first() == Some(&"SCAN")
            && let Some(name) = words.get(1)
            && let Some(table) = large_table(sql, name)
        {
            out.push(format!("scans all of {table}: `{line}`"));
        }
        if line.contains("INDEX deliveries_status") || line.contains("(tenant=? AND status=?)") {
            out.push(format!(
                "walks the status index (every pending row): `{line}`"
            ));
        }
        // Only the tenant bound: every delivery of the tenant.
        if words.first() == Some(&"SEARCH") && line.ends_with("(tenant=?)") {
            out.push(format!("reads every row of a tenant: `{line}`"));
        }
    }
    out
}

/// What is wrong with a PostgreSQL plan (JSON), if anything.
fn postgres_problems(node: &serde_json::Value, out: &mut Vec<String>) {
    let kind = node["Node Type"].as_str().unwrap_or("");
    let relation = node["Relation Name"].as_str().unwrap_or("");
    if kind == "Seq Scan" && LARGE.contains(&relation) {
        out.push(format!("scans all of {relation} (Seq Scan)"));
    }
    let index = node["Index Name"].as_str().unwrap_or("");
    if index == "deliveries_status" || index == "deliveries_tenant_status" {
        out.push(format!(
            "walks a status index (every pending row): {kind} on {index}"
        ));
    }
    for child in node["Plans"].as_array().into_iter().flatten() {
        postgres_problems(child, out);
    }
}

/// `sql` with each list of `?` (`IN (?, …)`, `VALUES (?, ?), …`) grown to `n` items. SQLite's
/// choice turns on a list's length (the batch read of a 3-delivery batch used the key, of a
/// 12-delivery one the status index), and the batches a test happens to form are small.
fn widened(sql: &str, n: usize) -> String {
    let mut out = String::new();
    let mut rest = sql;
    loop {
        // Where the list starts: after `IN (`, or at the first row after `VALUES `.
        let at = [("IN (?", 4), ("VALUES (?", 7)]
            .iter()
            .filter_map(|(p, skip)| rest.find(p).map(|i| i + skip))
            .min();
        let Some(open) = at else {
            out.push_str(rest);
            return out;
        };
        out.push_str(&rest[..open]);
        rest = &rest[open..];
        if rest.starts_with("(?") {
            // Rows of placeholders: `(?, ?), (?, ?)`.
            let row = &rest[..=rest.find(')').unwrap()];
            let mut len = row.len();
            while rest[len..].starts_with(&format!(", {row}")) {
                len += row.len() + 2;
            }
            out.push_str(&vec![row; n].join(", "));
            rest = &rest[len..];
        } else {
            // A list of placeholders: `?, ?, ?)`.
            let end = rest.find(')').unwrap();
            if rest[..end].chars().all(|c| "?, ".contains(c)) {
                out.push_str(&vec!["?"; n].join(", "));
                rest = &rest[end..];
            }
        }
    }
}

async fn sqlite_plans(url: &str, recorded: &BTreeSet<String>) -> Vec<String> {
    let mut conn = sqlx::SqliteConnection::connect(url).await.unwrap();
    let mut failures = Vec::new();
    let mut statements = recorded.clone();
    for sql in recorded {
        for n in [10, 200] {
            statements.insert(widened(sql, n));
        }
    }
    for sql in &statements {
        let params = match conn.prepare(sql).await.unwrap().parameters() {
            Some(Either::Right(n)) => n,
            Some(Either::Left(types)) => types.len(),
            None => 0,
        };
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut q = sqlx::query(&explain);
        for _ in 0..params {
            q = q.bind(None::<String>);
        }
        let plan: Vec<String> = q
            .fetch_all(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("EXPLAIN QUERY PLAN {sql}: {e}"))
            .iter()
            .map(|r| r.get::<String, _>("detail"))
            .collect();
        eprintln!("{}\n    {}", one_line(sql), plan.join("\n    "));
        let problems = sqlite_problems(sql, &plan);
        if !problems.is_empty() {
            failures.push(format!(
                "{}\n  plan:\n    {}\n  {}",
                one_line(sql),
                plan.join("\n    "),
                problems.join("\n  ")
            ));
        }
    }
    conn.close().await.unwrap();
    failures
}

async fn postgres_plans(url: &str, statements: &BTreeSet<String>) -> Vec<String> {
    let mut conn = sqlx::PgConnection::connect(url).await.unwrap();
    sqlx::raw_sql("SET plan_cache_mode = force_generic_plan")
        .execute(&mut conn)
        .await
        .unwrap();
    let mut failures = Vec::new();
    for (i, sql) in statements.iter().enumerate() {
        let name = format!("belfry_plan_{i}");
        if let Err(e) = sqlx::raw_sql(&format!("PREPARE {name} AS {sql}"))
            .execute(&mut conn)
            .await
        {
            failures.push(format!("{}\n  cannot be explained: {e}", one_line(sql)));
            continue;
        }
        let params: i64 = sqlx::query_scalar(
            "SELECT CAST(cardinality(parameter_types) AS BIGINT) FROM pg_prepared_statements WHERE name = $1",
        )
        .bind(&name)
        .fetch_one(&mut conn)
        .await
        .unwrap();
        let args = vec!["NULL"; params as usize].join(", ");
        let execute = if params == 0 {
            name.clone()
        } else {
            format!("{name}({args})")
        };
        // `json` has no decoder without sqlx's json feature; its binary form is its text.
        let row = sqlx::query(&format!("EXPLAIN (FORMAT JSON) EXECUTE {execute}"))
            .fetch_one(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("EXPLAIN {sql}: {e}"));
        let plan: serde_json::Value =
            serde_json::from_str(&row.try_get_unchecked::<String, _>(0).unwrap()).unwrap();
        eprintln!("{}\n    {plan}", one_line(sql));
        let mut problems = Vec::new();
        postgres_problems(&plan[0]["Plan"], &mut problems);
        if !problems.is_empty() {
            failures.push(format!(
                "{}\n  plan: {}\n  {}",
                one_line(sql),
                plan,
                problems.join("\n  ")
            ));
        }
        sqlx::raw_sql(&format!("DEALLOCATE {name}"))
            .execute(&mut conn)
            .await
            .unwrap();
    }
    conn.close().await.unwrap();
    failures
}

fn one_line(sql: &str) -> String {
    sql.split_whitespace().collect::<Vec<_>>().join(" ")
}

async fn check(b: Backend, url: &str, statements: &BTreeSet<String>) -> Vec<String> {
    match b {
        Backend::Sqlite => sqlite_plans(url, statements).await,
        Backend::Postgres => postgres_plans(url, statements).await,
    }
}

// ---------------------------------------------------------------------------------------------

async fn dispatch_reads_no_more_rows_with_a_backlog(b: Backend) {
    let _turn = ONE_AT_A_TIME.lock().await;
    install_recorder();
    let w = world(b).await;
    let e = &w.engine;
    fill_backlog(e, b).await;
    let statements = record_dispatch(e).await;
    // The recording saw the statements this test is about (else it checked nothing).
    let seen = |needle: &str| statements.iter().any(|s| s.contains(needle));
    for needle in [
        "UPDATE jobs SET state = 'running'",
        "DELETE FROM jobs",
        "LEFT JOIN workflow_runs r",
        "UPDATE deliveries SET status",
        "MIN(run_at)",
        "workflow_runs",
        "UPDATE digest_buckets SET status = 'emitted'",
        "digest_of",
    ] {
        assert!(seen(needle), "no statement with `{needle}` was recorded");
    }

    let mut failures = check(b, &w.db.url, &statements).await;
    // Statistics present (as `ANALYZE` after migrations and the engine's periodic optimize
    // leave them) must not lead the planner astray either.
    sqlx::query("ANALYZE").execute(e.db()).await.unwrap();
    for f in check(b, &w.db.url, &statements).await {
        failures.push(format!("after ANALYZE: {f}"));
    }
    assert!(
        failures.is_empty(),
        "{} of {} statements dispatch ran read rows in proportion to the backlog:\n\n{}",
        failures.len(),
        statements.len(),
        failures.join("\n\n")
    );
}

on_both_backends!(dispatch_reads_no_more_rows_with_a_backlog);

#[test]
fn lists_of_placeholders_are_widened() {
    assert_eq!(
        widened(
            "DELETE FROM jobs WHERE id IN (?, ?) AND (id, t) IN (VALUES (?, ?), (?, ?)) RETURNING id",
            3
        ),
        "DELETE FROM jobs WHERE id IN (?, ?, ?) AND (id, t) IN (VALUES (?, ?), (?, ?), (?, ?)) RETURNING id"
    );
    assert_eq!(
        widened("SELECT 1 FROM t WHERE a IN ('*', ?, ?) AND b = ?", 3),
        "SELECT 1 FROM t WHERE a IN ('*', ?, ?) AND b = ?"
    );
}
