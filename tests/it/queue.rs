//! The durable job queue on SQLite and PostgreSQL: leases that expire and are taken over
//! without completing twice, deferral on time, cancellation, retries (backoff, retry-after,
//! exhaustion), graceful shutdown, several workers sharing the work, and wake-ups.
//!
//! Workers here are real (`Engine::run_worker` tasks) and send over real HTTP to the receiver
//! on 127.0.0.1. Times are checked as bounds on recorded timestamps, never as test timeouts.

use crate::common;

use crate::common::{Backend, count, world, world_with};
use belfry::host::dispatch::{ChangeError, DispatchConfig, RetryPolicy, WorkerConfig};
use belfry::host::jobs::{self as queue, Scope};
use belfry::receiver::Answer;
use belfry::{Engine, EngineConfig, TriggerRequest};
use chrono::{DateTime, Utc};
use serde_json::json;
use std::path::Path;
use std::time::Duration;
use tokio::sync::watch;

/// A payload the `order-shipped` notifier plans as one `webhook` delivery.
fn one_webhook(id: &str) -> serde_json::Value {
    json!({"order_id": id, "carrier": "c", "tracking_url": "https://t.example.com",
           "customer": {"id": format!("u-{id}")}})
}

async fn trigger_one(e: &Engine, id: &str) -> String {
    let o = e
        .trigger(&TriggerRequest::new("order-shipped", one_webhook(id)))
        .await
        .unwrap();
    assert_eq!(o.notifications[0].deliveries.len(), 1);
    o.notifications[0].deliveries[0].id.clone()
}

struct Running {
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<belfry::host::dispatch::WorkerReport>,
}

fn start_worker(e: &Engine, config: WorkerConfig) -> Running {
    let (stop, rx) = watch::channel(false);
    let e = e.clone();
    let handle = tokio::spawn(async move { e.run_worker(config, rx).await });
    Running { stop, handle }
}

impl Running {
    async fn stop(self) -> belfry::host::dispatch::WorkerReport {
        self.stop.send(true).unwrap();
        self.handle.await.unwrap()
    }
}

fn fast_worker() -> WorkerConfig {
    WorkerConfig {
        concurrency: 4,
        poll: Duration::from_millis(200),
        grace: Duration::from_secs(5),
        ..Default::default()
    }
}

/// Waits (bounded) until `done` holds; panics with `what` otherwise.
async fn wait_for<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("gave up waiting (15 s) for: {what}");
}

async fn status(e: &Engine, id: &str) -> String {
    e.delivery(id).await.unwrap().unwrap().status
}

fn time(text: &str) -> DateTime<Utc> {
    text.parse().unwrap()
}

async fn an_expired_lease_is_taken_over_and_the_first_holder_cannot_complete(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let id = trigger_one(e, "lease").await;
    let exec = e.executor();

    // Worker A leases for 300 ms and runs the job (it sends), but "hangs" before committing.
    let a = queue::lease(
        e.db(),
        "worker-a",
        10,
        Duration::from_millis(300),
        Scope::All,
    )
    .await
    .unwrap();
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].attempt, 1);
    // While A's lease lives, nobody else gets the job.
    let none = queue::lease(e.db(), "worker-b", 10, Duration::from_secs(60), Scope::All)
        .await
        .unwrap();
    assert!(none.is_empty());
    let (job, prepared) = exec.prepare(a.clone()).await.unwrap().remove(0);
    let a_work = exec.execute(job, prepared).await.unwrap();

    // The lease expires; worker B takes the job over and completes it.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let b_jobs = queue::lease(e.db(), "worker-b", 10, Duration::from_secs(60), Scope::All)
        .await
        .unwrap();
    assert_eq!(b_jobs.len(), 1);
    assert_eq!(b_jobs[0].attempt, 2);
    assert_eq!(b_jobs[0].rescued_from.as_deref(), Some("worker-a"));

    // A wakes up and commits while B holds the job: A's lease is gone, so its outcome is not
    // applied and B's lease is untouched.
    let late = exec.commit(vec![a_work]).await.unwrap();
    assert!(late.is_empty(), "{late:?}");
    assert_eq!(status(e, &id).await, "pending");
    assert_eq!(e.queue_stats().await.unwrap().running, 1);

    let (job, prepared) = exec.prepare(b_jobs).await.unwrap().remove(0);
    let b_work = exec.execute(job, prepared).await.unwrap();
    let done = exec.commit(vec![b_work]).await.unwrap();
    assert_eq!(done[0].status, "succeeded");
    assert_eq!(status(e, &id).await, "succeeded");
    assert_eq!(count(e, "jobs").await, 0);

    // Both sends are on record with the same idempotency key; the receiver dropped the repeat.
    let x = e.explain(&id).await.unwrap();
    let attempts: Vec<i64> = x.attempts.iter().map(|a| a.attempt).collect();
    assert_eq!(attempts, [1, 2]);
    let kinds: Vec<&str> = x.timeline.iter().map(|t| t.kind.as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "delivery.succeeded").count(),
        1
    );
    assert!(kinds.contains(&"lease.lost"), "{kinds:?}");
    let taken_over = x
        .timeline
        .iter()
        .find(|t| t.kind == "delivery.dispatched")
        .unwrap();
    assert!(
        taken_over
            .detail
            .as_deref()
            .unwrap()
            .contains("taken over from worker-a"),
        "{taken_over:?}"
    );
    let got = w.receiver.received();
    assert_eq!(got.len(), 2);
    let key = format!("belfry-{id}");
    assert!(
        got.iter()
            .all(|r| r.verified && r.webhook_id.as_deref() == Some(key.as_str()))
    );
    assert_eq!(got.iter().filter(|r| r.repeat).count(), 1);
}

async fn scheduled_and_deferred_deliveries_run_on_time_never_early(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    // Scheduled at trigger time.
    let at = Utc::now() + chrono::Duration::milliseconds(1500);
    let o = e
        .trigger(&TriggerRequest::new("order-shipped", one_webhook("sched")).deliver_at(at))
        .await
        .unwrap();
    let scheduled = o.notifications[0].deliveries[0].clone();
    assert_eq!(scheduled.status, "deferred");
    assert_eq!(scheduled.status_reason.as_deref(), Some("scheduled"));
    // Deferred after planning, with a reason of the caller's.
    let deferred = trigger_one(e, "later").await;
    let until = Utc::now() + chrono::Duration::milliseconds(1200);
    let d = e.defer(&deferred, until, "quiet_hours").await.unwrap();
    assert_eq!(d.status, "deferred");
    assert_eq!(e.queue_stats().await.unwrap().deferred, 2);

    // A worker whose polling backstop is long: it must sleep until the due time by itself.
    let worker = start_worker(
        e,
        WorkerConfig {
            poll: Duration::from_secs(1),
            ..fast_worker()
        },
    );
    wait_for("both deliveries sent", || async {
        status(e, &scheduled.id).await == "succeeded" && status(e, &deferred).await == "succeeded"
    })
    .await;
    worker.stop().await;

    for (id, due, reason) in [
        (&scheduled.id, at, "scheduled"),
        (&deferred, until, "quiet_hours"),
    ] {
        let x = e.explain(id).await.unwrap();
        let started = time(&x.attempts[0].started_at);
        let late = started - due;
        assert!(
            late >= chrono::Duration::zero(),
            "{reason}: sent {late} early"
        );
        assert!(
            late <= chrono::Duration::milliseconds(1000),
            "{reason}: sent {late} late"
        );
        let dispatched = x
            .timeline
            .iter()
            .find(|t| t.kind == "delivery.dispatched")
            .unwrap();
        assert!(
            dispatched
                .detail
                .as_deref()
                .unwrap()
                .contains(&format!("due after deferral ({reason})")),
            "{dispatched:?}"
        );
    }
    let x = e.explain(&deferred).await.unwrap();
    let deferral = x
        .timeline
        .iter()
        .find(|t| t.kind == "delivery.deferred")
        .unwrap();
    assert_eq!(deferral.reason.as_deref(), Some("quiet_hours"));
}

async fn a_cancelled_delivery_is_never_sent(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let id = trigger_one(e, "cancel").await;
    let c = e.cancel(&id, "order was refunded").await.unwrap();
    assert_eq!(c.status, "cancelled");
    assert_eq!(count(e, "jobs").await, 0);
    assert!(e.dispatch_pending().await.unwrap().is_empty());
    assert!(w.receiver.received().is_empty());
    let d = e.delivery(&id).await.unwrap().unwrap();
    assert_eq!(d.status_reason.as_deref(), Some("cancelled_by_request"));
    assert_eq!(d.status_detail.as_deref(), Some("order was refunded"));

    // Cancelling again, or a finished delivery, or a deferral of one: refused with the reason.
    match e.cancel(&id, "again").await.unwrap_err() {
        ChangeError::NotWaiting { status, .. } => assert_eq!(status, "cancelled"),
        other => panic!("{other}"),
    }
    let sent = trigger_one(e, "sent").await;
    e.dispatch_pending().await.unwrap();
    let err = e
        .defer(&sent, Utc::now(), "too late")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("is succeeded"), "{err}");
    assert!(matches!(
        e.cancel("no-such-id", "x").await.unwrap_err(),
        ChangeError::NotFound(_)
    ));

    // A job a worker holds cannot be cancelled under it.
    let busy = trigger_one(e, "busy").await;
    let held = queue::lease(e.db(), "holder", 10, Duration::from_secs(60), Scope::All)
        .await
        .unwrap();
    assert_eq!(held.len(), 1);
    assert!(matches!(
        e.cancel(&busy, "x").await.unwrap_err(),
        ChangeError::InFlight(_)
    ));
}

/// A world whose retries wait `base` doubling, without jitter, at most `attempts` times.
async fn retry_world(b: Backend, attempts: u32, base: Duration) -> common::World {
    world_with(b, |c: &mut EngineConfig| {
        c.dispatch = DispatchConfig {
            retry: RetryPolicy {
                max_attempts: attempts,
                base,
                max_delay: base * 8,
                jitter: 0.0,
            },
            ..Default::default()
        }
    })
    .await
}

async fn transient_failures_back_off_then_give_up(b: Backend) {
    let w = retry_world(b, 3, Duration::from_millis(200)).await;
    let e = &w.engine;
    w.receiver.answer_with(Answer::Status(503));
    let id = trigger_one(e, "flaky").await;
    let worker = start_worker(e, fast_worker());
    wait_for("three attempts and a verdict", || async {
        status(e, &id).await == "cancelled"
    })
    .await;
    worker.stop().await;
    let d = e.delivery(&id).await.unwrap().unwrap();
    assert_eq!(d.status_reason.as_deref(), Some("retries_exhausted"));
    assert_eq!(d.attempts, 3);
    let x = e.explain(&id).await.unwrap();
    let starts: Vec<DateTime<Utc>> = x.attempts.iter().map(|a| time(&a.started_at)).collect();
    assert_eq!(starts.len(), 3);
    // 200 ms after the first failure, 400 ms after the second (each attempt's own duration
    // comes on top).
    assert!(starts[1] - starts[0] >= chrono::Duration::milliseconds(200));
    assert!(starts[2] - starts[1] >= chrono::Duration::milliseconds(400));
    assert!(x.attempts.iter().all(|a| a.outcome == "transient"));
    assert_eq!(
        x.timeline
            .iter()
            .filter(|t| t.kind == "retry.scheduled")
            .count(),
        2
    );
    // Every try carried the same idempotency key.
    let key = format!("belfry-{id}");
    let got = w.receiver.received();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|r| r.webhook_id.as_deref() == Some(&*key)));
    assert_eq!(count(e, "jobs").await, 0);
}

async fn a_rate_limited_send_waits_for_the_retry_after(b: Backend) {
    // Backoff alone would retry after 50 ms; the provider asks for 2 s.
    let w = retry_world(b, 5, Duration::from_millis(50)).await;
    let e = &w.engine;
    w.receiver.answer_with(Answer::RateLimited(2));
    let id = trigger_one(e, "limited").await;
    let worker = start_worker(e, fast_worker());
    wait_for("the first, rate-limited attempt", || async {
        !w.receiver.received().is_empty()
    })
    .await;
    w.receiver.answer_with(Answer::Ok);
    wait_for("the retry", || async {
        status(e, &id).await == "succeeded"
    })
    .await;
    worker.stop().await;
    let x = e.explain(&id).await.unwrap();
    assert_eq!(x.attempts.len(), 2);
    assert_eq!(x.attempts[0].outcome, "rate_limited");
    let first_end =
        time(&x.attempts[0].started_at) + chrono::Duration::milliseconds(x.attempts[0].duration_ms);
    let gap = time(&x.attempts[1].started_at) - first_end;
    assert!(
        gap >= chrono::Duration::milliseconds(1990),
        "retried after {gap}"
    );
}

fn infinite_loop_plugins() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        Path::new(belfry::FIXTURE_PLUGINS_DIR).join("infinite-loop.wasm"),
        dir.path().join("infinite-loop.wasm"),
    )
    .unwrap();
    // A 3 s limit: long enough that a stop sent once the job is seen running always lands
    // while it still runs.
    let manifest =
        std::fs::read_to_string(Path::new(belfry::FIXTURE_PLUGINS_DIR).join("infinite-loop.toml"))
            .unwrap()
            .replace("timeout_ms = 500", "timeout_ms = 3000");
    assert!(manifest.contains("timeout_ms = 3000"));
    std::fs::write(dir.path().join("infinite-loop.toml"), manifest).unwrap();
    dir
}

async fn shutdown_finishes_what_it_can_and_releases_the_rest(b: Backend) {
    // The infinite-loop renderer makes every job take its whole time limit.
    let plugins = infinite_loop_plugins();
    let dir = plugins.path().to_path_buf();
    // A renderer from --plugins is not the default while the bundled `templates` is loaded:
    // the operator names it.
    let w = world_with(b, move |c| {
        c.plugins_dir = Some(dir);
        c.renderer = Some("infinite-loop".into());
    })
    .await;
    let e = &w.engine;
    let first = trigger_one(e, "slow-1").await;

    // A grace period longer than the job: it finishes, and its outcome is committed.
    let worker = start_worker(e, fast_worker());
    wait_for("the job to be running", || async {
        e.queue_stats().await.unwrap().running == 1
    })
    .await;
    let report = worker.stop().await;
    assert_eq!((report.retried, report.released), (1, 0), "{report:?}");
    assert_eq!(
        e.delivery(&first)
            .await
            .unwrap()
            .unwrap()
            .status_reason
            .as_deref(),
        Some("render_failed")
    );
    e.cancel(&first, "done with it").await.unwrap();

    // A grace period shorter than the job: it is released untouched, due again at once, and
    // the attempt it was leased for does not count.
    let second = trigger_one(e, "slow-2").await;
    let worker = start_worker(
        e,
        WorkerConfig {
            grace: Duration::from_millis(100),
            ..fast_worker()
        },
    );
    wait_for("the job to be running", || async {
        e.queue_stats().await.unwrap().running == 1
    })
    .await;
    let report = worker.stop().await;
    assert_eq!((report.leased, report.released), (1, 1), "{report:?}");
    let stats = e.queue_stats().await.unwrap();
    assert_eq!((stats.available, stats.running), (1, 0), "{stats:?}");
    let d = e.delivery(&second).await.unwrap().unwrap();
    assert_eq!((d.status.as_str(), d.attempts), ("pending", 0));
    let again = queue::lease(e.db(), "next", 10, Duration::from_secs(1), Scope::All)
        .await
        .unwrap();
    assert_eq!(again[0].attempt, 1, "the released lease was not counted");
    queue::release(e.db(), &again).await.unwrap();
    e.cancel(&second, "done with it").await.unwrap();

    // One slot and two jobs: the worker leases both, runs one and keeps the other leased
    // ahead. At shutdown the one running finishes; the one that never started goes back
    // untouched, its lease not counted.
    let (third, fourth) = (
        trigger_one(e, "slow-3").await,
        trigger_one(e, "slow-4").await,
    );
    let worker = start_worker(
        e,
        WorkerConfig {
            concurrency: 1,
            ..fast_worker()
        },
    );
    wait_for("both jobs to be leased", || async {
        e.queue_stats().await.unwrap().running == 2
    })
    .await;
    let report = worker.stop().await;
    assert_eq!(
        (report.leased, report.retried, report.released),
        (2, 1, 1),
        "{report:?}"
    );
    // The one that ran failed its render (and waits for a retry); the other never started.
    let reason = |id: String| async move { e.delivery(&id).await.unwrap().unwrap().status_reason };
    let waited = if reason(third.clone()).await.as_deref() == Some("render_failed") {
        fourth
    } else {
        third
    };
    let d = e.delivery(&waited).await.unwrap().unwrap();
    assert_eq!(
        (d.status.as_str(), d.attempts, d.status_reason.as_deref()),
        ("pending", 0, None)
    );
    let stats = e.queue_stats().await.unwrap();
    assert_eq!(stats.running, 0, "{stats:?}");
    let again = queue::lease(e.db(), "next", 10, Duration::from_secs(1), Scope::All)
        .await
        .unwrap();
    let waited_job = again.iter().find(|j| j.subject_id == waited).unwrap();
    assert_eq!(
        waited_job.attempt, 1,
        "the lease taken ahead was not counted"
    );
}

async fn several_workers_share_the_work_and_send_each_delivery_once(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let workers: Vec<Running> = (0..3)
        .map(|i| {
            start_worker(
                e,
                WorkerConfig {
                    owner: format!("w{i}"),
                    ..fast_worker()
                },
            )
        })
        .collect();
    let mut ids = Vec::new();
    for i in 0..150 {
        ids.push(trigger_one(e, &format!("share-{i}")).await);
    }
    wait_for("all 150 sent", || async { count(e, "jobs").await == 0 }).await;
    let mut leased = 0;
    for worker in workers {
        let r = worker.stop().await;
        assert_eq!(r.errors, 0, "{r:?}");
        leased += r.leased;
    }
    assert_eq!(leased, 150, "each job leased once");
    let got = w.receiver.received();
    assert_eq!(got.len(), 150);
    assert!(got.iter().all(|r| !r.repeat));
    for id in &ids {
        assert_eq!(status(e, id).await, "succeeded");
    }
    assert_eq!(count(e, "attempts").await, 150);
}

async fn a_trigger_wakes_an_idle_worker_before_its_poll(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let worker = start_worker(
        e,
        WorkerConfig {
            poll: Duration::from_secs(30),
            ..fast_worker()
        },
    );
    // Let the worker go idle on an empty queue.
    tokio::time::sleep(Duration::from_millis(300)).await;
    // On PostgreSQL trigger through a second engine (as another process would): only the
    // NOTIFY sent at commit can wake the worker. On SQLite the in-process wake-up does it.
    let other;
    let via = match b {
        Backend::Postgres => {
            other = Engine::open(common::config_for(&w.db.url, &w.receiver.url()))
                .await
                .unwrap();
            &other
        }
        Backend::Sqlite => e,
    };
    let id = trigger_one(via, "wake").await;
    wait_for("the woken worker to send", || async {
        status(e, &id).await == "succeeded"
    })
    .await;
    worker.stop().await;
    let x = e.explain(&id).await.unwrap();
    let planned = time(&x.deliveries[0].created_at);
    let sent = time(&x.attempts[0].started_at);
    assert!(
        sent - planned < chrono::Duration::seconds(5),
        "sent {} after planning: no wake-up, only the 30 s poll",
        sent - planned
    );
}

on_both_backends!(
    an_expired_lease_is_taken_over_and_the_first_holder_cannot_complete,
    scheduled_and_deferred_deliveries_run_on_time_never_early,
    a_cancelled_delivery_is_never_sent,
    transient_failures_back_off_then_give_up,
    a_rate_limited_send_waits_for_the_retry_after,
    shutdown_finishes_what_it_can_and_releases_the_rest,
    several_workers_share_the_work_and_send_each_delivery_once,
    a_trigger_wakes_an_idle_worker_before_its_poll,
);
