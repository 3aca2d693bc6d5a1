//! `bench dispatch`: burn-down of a pre-filled queue, engine vs raw SQL, and with a backlog
//! of due deliveries.

use super::raw::{raw_pool, raw_trigger, raw_worker};
use super::{Options, Place, Row, Worker, count, o_size_offset, payload, rate, row};
use anyhow::{Result, ensure};
use belfry::{Engine, TriggerRequest};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Fills the queue through the engine (not timed): `n` one-delivery triggers.
pub(super) async fn fill(engine: &Engine, n: usize) -> Result<()> {
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

pub(super) async fn bench_dispatch(o: &Options, backlog: usize) -> Result<Vec<Row>> {
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
pub(super) async fn dispatch_backlog(
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
pub(super) async fn backlog_run(engine: &Engine, size: usize, workers: usize) -> Result<f64> {
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
pub(super) async fn fill_backlog(engine: &Engine, n: usize) -> Result<()> {
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
