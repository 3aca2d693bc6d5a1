//! No job can stop dispatch (issue 22): a job whose preparation, run or commit fails or
//! panics ends retried, then failed, with the reason `internal_error` that `explain` shows,
//! while the other tenants' deliveries go out; a worker loop that dies gives back its jobs, is
//! restarted, and `belfry serve`'s `/readyz` names it while it is down.
//!
//! The panics are injected through the executor's test hook (`dispatch::Faults`): the real
//! causes (a poisoned setting's overflow) are refused and checked at their source elsewhere,
//! so only a hook still panics where the guards under test must catch it. Everything else is
//! real: the database (both backends), the bundled WASM plugins, and webhooks sent over HTTP
//! to a receiver on 127.0.0.1.

use crate::common;

use crate::common::{Backend, count, world_with};
use belfry::host::dispatch::{self, DispatchConfig, Faults, RetryPolicy, Scope, WorkerConfig};
use belfry::serve::ServeConfig;
use belfry::{Engine, EngineConfig, TriggerRequest};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;
use tokio::sync::watch;

const POISON: &str = "poisoned";

/// Two attempts, 100 ms apart, no jitter: a poisoned job ends failed within a second.
async fn world(b: Backend) -> common::World {
    world_with(b, |c: &mut EngineConfig| {
        c.dispatch = DispatchConfig {
            retry: RetryPolicy {
                max_attempts: 2,
                base: Duration::from_millis(100),
                max_delay: Duration::from_millis(800),
                jitter: 0.0,
            },
            ..Default::default()
        }
    })
    .await
}

/// One `webhook` delivery of `order-shipped` for `tenant`.
async fn trigger_for(e: &Engine, tenant: &str, order: &str) -> String {
    let payload = json!({"order_id": order, "carrier": "c", "tracking_url": "https://t.example.com",
                         "customer": {"id": format!("u-{order}")}});
    let o = e
        .trigger(&TriggerRequest::new("order-shipped", payload).tenant(tenant))
        .await
        .unwrap();
    assert_eq!(o.notifications[0].deliveries.len(), 1);
    o.notifications[0].deliveries[0].id.clone()
}

/// The poisoned tenant's delivery and four of two other tenants', all due now.
async fn deliveries(e: &Engine) -> (String, Vec<String>) {
    let poisoned = trigger_for(e, POISON, "p-1").await;
    let mut others = Vec::new();
    for (tenant, order) in [
        ("acme", "a-1"),
        ("acme", "a-2"),
        ("globex", "g-1"),
        ("globex", "g-2"),
    ] {
        others.push(trigger_for(e, tenant, order).await);
    }
    (poisoned, others)
}

async fn status(e: &Engine, id: &str) -> (String, Option<String>, Option<String>) {
    let d = e.delivery(id).await.unwrap().unwrap();
    (d.status, d.status_reason, d.status_detail)
}

/// Waits (bounded) until `done` holds; panics with `what` otherwise.
async fn wait_for<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..600 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("gave up waiting (15 s) for: {what}");
}

struct Running {
    stop: watch::Sender<bool>,
    handle: tokio::task::JoinHandle<dispatch::WorkerReport>,
}

fn start_worker(e: &Engine, config: WorkerConfig) -> Running {
    let (stop, rx) = watch::channel(false);
    let e = e.clone();
    let handle = tokio::spawn(async move { e.run_worker(config, rx).await });
    Running { stop, handle }
}

impl Running {
    /// Stops the worker; a panic escaping it fails the test here.
    async fn stop(self) -> dispatch::WorkerReport {
        self.stop.send(true).unwrap();
        self.handle
            .await
            .expect("the worker returns instead of panicking")
    }
}

/// One worker, big enough to lease all five jobs as one batch: the poisoned job's panic is
/// a batch's panic first.
fn worker_with(faults: Faults) -> WorkerConfig {
    WorkerConfig {
        concurrency: 8,
        poll: Duration::from_millis(50),
        faults,
        ..Default::default()
    }
}

/// Every other delivery sent (and received); the poisoned one failed with `internal_error`,
/// after a retry that `explain` tells with the panic's message.
async fn assert_only_the_poisoned_failed(
    w: &common::World,
    poisoned: &str,
    others: &[String],
    stage: &str,
) {
    let e = &w.engine;
    for id in others {
        assert_eq!(status(e, id).await.0, "succeeded", "{id}");
    }
    let (st, reason, detail) = status(e, poisoned).await;
    assert_eq!(st, "failed");
    assert_eq!(reason.as_deref(), Some("internal_error"));
    let detail = detail.unwrap();
    assert!(detail.starts_with("gave up after 2 attempts"), "{detail}");
    assert!(detail.contains(stage), "{detail}");

    let x = e.explain(poisoned).await.unwrap();
    let retry = x
        .timeline
        .iter()
        .find(|t| t.kind == "retry.scheduled")
        .unwrap_or_else(|| panic!("no retry in {:#?}", x.timeline));
    assert_eq!(retry.reason.as_deref(), Some("internal_error"));
    let said = retry.detail.as_deref().unwrap();
    assert!(said.contains(stage), "{said}");
    assert!(said.contains("attempt 2 of 2"), "{said}");
    let failed = x
        .timeline
        .iter()
        .find(|t| t.kind == "delivery.failed")
        .unwrap();
    assert_eq!(failed.reason.as_deref(), Some("internal_error"));
    let dispatched = x
        .timeline
        .iter()
        .filter(|t| t.kind == "delivery.dispatched")
        .count();
    assert_eq!(dispatched, 2, "{:#?}", x.timeline);

    // Each other delivery reached the receiver; nothing is left in the queue.
    let got = w.receiver.received();
    for id in others {
        let key = format!("belfry-{id}");
        assert!(
            got.iter()
                .any(|r| r.webhook_id.as_deref() == Some(key.as_str())),
            "{id} was not received"
        );
    }
    assert_eq!(count(e, "jobs").await, 0);
}

async fn a_job_whose_preparation_panics_fails_alone(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let (poisoned, others) = deliveries(e).await;
    let worker = start_worker(
        e,
        worker_with(Faults {
            panic_preparing: Some(POISON.into()),
            ..Default::default()
        }),
    );
    wait_for("the others sent and the poisoned one failed", || async {
        let mut done = status(e, &poisoned).await.0 == "failed";
        for id in &others {
            done &= status(e, id).await.0 == "succeeded";
        }
        done
    })
    .await;
    let report = worker.stop().await;
    assert_only_the_poisoned_failed(
        &w,
        &poisoned,
        &others,
        "preparing the job panicked: injected fault: preparing a job of tenant `poisoned`",
    )
    .await;
    // Never built, rendered or sent.
    let x = e.explain(&poisoned).await.unwrap();
    assert!(x.attempts.is_empty(), "{:?}", x.attempts);
    let key = format!("belfry-{poisoned}");
    assert!(
        !w.receiver
            .received()
            .iter()
            .any(|r| r.webhook_id.as_deref() == Some(key.as_str()))
    );
    assert_eq!(report.succeeded, 4, "{report:?}");
    assert_eq!(report.failed, 1, "{report:?}");
    assert_eq!(report.restarts, 0, "{report:?}");
    assert!(report.errors >= 2, "{report:?}");
}

async fn a_job_whose_commit_panics_fails_alone(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let (poisoned, others) = deliveries(e).await;
    let worker = start_worker(
        e,
        worker_with(Faults {
            panic_committing: Some(POISON.into()),
            ..Default::default()
        }),
    );
    wait_for("the others sent and the poisoned one failed", || async {
        let mut done = status(e, &poisoned).await.0 == "failed";
        for id in &others {
            done &= status(e, id).await.0 == "succeeded";
        }
        done
    })
    .await;
    let report = worker.stop().await;
    assert_only_the_poisoned_failed(
        &w,
        &poisoned,
        &others,
        "committing the job's outcome panicked: injected fault: committing a job of tenant `poisoned`",
    )
    .await;
    assert_eq!(report.succeeded, 4, "{report:?}");
    assert_eq!(report.restarts, 0, "{report:?}");
}

/// Real data, no hook: a delivery whose stored notification cannot be read (its recipient is
/// not JSON) is retried and then failed with the reason, instead of staying leased and
/// running again each time its lease expires.
async fn a_delivery_that_cannot_be_read_fails_alone(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let (poisoned, others) = deliveries(e).await;
    sqlx::query(
        "UPDATE notifications SET recipient = 'not json'
         WHERE id = (SELECT notification_id FROM deliveries WHERE id = $1)",
    )
    .bind(&poisoned)
    .execute(e.db())
    .await
    .unwrap();
    let worker = start_worker(e, worker_with(Faults::default()));
    wait_for("the others sent and the unreadable one failed", || async {
        let mut done = status(e, &poisoned).await.0 == "failed";
        for id in &others {
            done &= status(e, id).await.0 == "succeeded";
        }
        done
    })
    .await;
    let report = worker.stop().await;
    assert_only_the_poisoned_failed(
        &w,
        &poisoned,
        &others,
        "preparing the job failed: stored data is corrupt: recipient of",
    )
    .await;
    assert_eq!(report.failed, 1, "{report:?}");
}

/// The same through a real `belfry worker` process: it keeps sending, the unreadable delivery
/// ends failed, and on SIGTERM it exits 0 with no job left leased.
async fn a_belfry_worker_process_survives_an_unreadable_delivery(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let (poisoned, others) = deliveries(e).await;
    sqlx::query(
        "UPDATE notifications SET recipient = 'not json'
         WHERE id = (SELECT notification_id FROM deliveries WHERE id = $1)",
    )
    .bind(&poisoned)
    .execute(e.db())
    .await
    .unwrap();
    let log_path = w.db.dir.path().join("worker.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let webhook_url = format!("webhook.url={}", w.receiver.url());
    let webhook_secret = format!("webhook.secret={}", common::SECRET);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_belfry"))
        .args([
            "--database-url",
            &w.db.url,
            "--cache-dir",
            common::cache_dir().to_str().unwrap(),
            "--plugin-config",
            &webhook_url,
            "--plugin-config",
            &webhook_secret,
            "worker",
            "--poll-ms",
            "100",
            "--max-attempts",
            "2",
            "--retry-base-secs",
            "1",
            "--retry-max-secs",
            "1",
        ])
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&log_path).unwrap();
    for _ in 0..600 {
        let mut done = status(e, &poisoned).await.0 == "failed";
        for id in &others {
            done &= status(e, id).await.0 == "succeeded";
        }
        if done {
            break;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "belfry worker exited by itself:\n{}",
            log()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let pid = child.id().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(
        exit.success(),
        "belfry worker exited with {exit}:\n{}",
        log()
    );
    assert!(log().contains("belfry worker stopped"), "{}", log());
    assert_only_the_poisoned_failed(
        &w,
        &poisoned,
        &others,
        "preparing the job failed: stored data is corrupt: recipient of",
    )
    .await;
}

/// `dispatch_pending` (what `belfry trigger --dispatch` and `demo` use) does not fail either:
/// the others are sent and the poisoned job waits for its retry with the reason.
async fn running_due_jobs_inline_survives_a_poisoned_job(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let (poisoned, others) = deliveries(e).await;
    let mut exec = e.executor();
    exec.faults = Faults {
        panic_preparing: Some(POISON.into()),
        ..Default::default()
    };
    let out = dispatch::run_due(&exec, "inline", Duration::from_secs(60), Scope::All)
        .await
        .unwrap();
    assert_eq!(out.len(), 5, "{out:?}");
    for id in &others {
        assert_eq!(status(e, id).await.0, "succeeded");
    }
    let (st, reason, detail) = status(e, &poisoned).await;
    assert_eq!(
        (st.as_str(), reason.as_deref()),
        ("pending", Some("internal_error"))
    );
    assert!(detail.unwrap().contains("preparing the job panicked"));
    assert_eq!(e.queue_stats().await.unwrap().retrying, 1);
}

/// A workflow step's delivery that fails this way is a final outcome like any other: the run
/// is told, with the reason, rather than waiting on it for ever.
async fn a_workflow_step_that_fails_inside_belfry_moves_its_run_on(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let o = e
        .trigger(
            &TriggerRequest::new(
                "task-assigned",
                json!({
                    "task": {"id": "T-1", "title": "Review", "url": "https://tasks.example/T-1"},
                    "assignee": {"id": "ada", "email": "ada@example.com", "name": "Ada"},
                    "assigned_by": {"name": "Grace"},
                }),
            )
            .tenant(POISON),
        )
        .await
        .unwrap();
    let notification = o.notifications[0].id.clone();
    let step = o.notifications[0].deliveries[0].id.clone();
    let mut exec = e.executor();
    exec.faults = Faults {
        panic_preparing: Some(POISON.into()),
        ..Default::default()
    };
    dispatch::run_due(&exec, "inline", Duration::from_secs(60), Scope::All)
        .await
        .unwrap();
    assert_eq!(status(e, &step).await.0, "pending");
    // The retry is 100 ms later; the second attempt is the last.
    wait_for("the step's delivery failed", || async {
        dispatch::run_due(&exec, "inline", Duration::from_secs(60), Scope::All)
            .await
            .unwrap();
        status(e, &step).await.0 == "failed"
    })
    .await;
    let run = e.workflow_run(&notification).await.unwrap().unwrap();
    let told = run
        .transitions
        .iter()
        .find(|t| {
            t.delivery_id.as_deref() == Some(step.as_str()) && t.evidence.contains("internal_error")
        })
        .unwrap_or_else(|| panic!("the run was not told: {:#?}", run.transitions));
    assert!(told.evidence.contains("failed"), "{told:?}");
    assert_ne!(
        run.step_delivery_id.as_deref(),
        Some(step.as_str()),
        "{run:#?}"
    );
}

/// A loop that dies holding leases: its jobs are given back at once (not after their 120 s
/// leases), the loop comes back, and the worker returns its report instead of panicking.
async fn a_dead_worker_loop_gives_back_its_jobs_and_restarts(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let (first, mut ids) = deliveries(e).await;
    ids.push(first);
    let config = worker_with(Faults {
        worker_panics: Arc::new(AtomicUsize::new(1)),
        ..Default::default()
    });
    let health = config.health.clone();
    let worker = start_worker(e, config);
    wait_for("every delivery sent after the restart", || async {
        let mut done = true;
        for id in &ids {
            done &= status(e, id).await.0 == "succeeded";
        }
        done
    })
    .await;
    assert_eq!(health.down(), None);
    let report = worker.stop().await;
    assert_eq!(report.restarts, 1, "{report:?}");
    assert_eq!(report.released, 5, "{report:?}");
    for id in &ids {
        // Given back uncounted: the lease that sent it is attempt 1, taken from nobody.
        let x = e.explain(id).await.unwrap();
        let dispatched: Vec<&str> = x
            .timeline
            .iter()
            .filter(|t| t.kind == "delivery.dispatched")
            .map(|t| t.detail.as_deref().unwrap())
            .collect();
        assert_eq!(dispatched.len(), 1, "{dispatched:?}");
        assert!(
            dispatched[0].starts_with("attempt 1 leased by"),
            "{dispatched:?}"
        );
        assert!(!dispatched[0].contains("taken over"), "{dispatched:?}");
    }
    assert_eq!(count(e, "jobs").await, 0);
}

/// A commit task that dies takes the loop with it (which notices when it hands over the next
/// outcome) and both start again; the outcomes it lost are redone once their leases expire.
async fn a_dead_commit_task_is_replaced(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let (first, mut ids) = deliveries(e).await;
    ids.push(first);
    let worker = start_worker(
        e,
        WorkerConfig {
            lease_for: Duration::from_secs(1),
            ..worker_with(Faults {
                committer_panics: Arc::new(AtomicUsize::new(1)),
                ..Default::default()
            })
        },
    );
    wait_for("every delivery sent by the new commit task", || async {
        let mut done = true;
        for id in &ids {
            done &= status(e, id).await.0 == "succeeded";
        }
        done
    })
    .await;
    let report = worker.stop().await;
    assert_eq!(report.restarts, 1, "{report:?}");
    assert_eq!(count(e, "jobs").await, 0);
}

/// `belfry serve`: while its worker is down, `/readyz` answers 503 naming it and why; once
/// restarted, 200 again, and the delivery goes out.
async fn readyz_names_a_worker_that_is_down(b: Backend) {
    let w = world(b).await;
    let e = &w.engine;
    let owner = "resilience-worker";
    let server = belfry::serve::start(
        e.clone(),
        ServeConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            workers: Some(WorkerConfig {
                owner: owner.into(),
                ..worker_with(Faults {
                    worker_panics: Arc::new(AtomicUsize::new(1)),
                    ..Default::default()
                })
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let url = format!("http://{}/readyz", server.addr);
    let http = reqwest::Client::new();
    let readyz = || async {
        let r = http.get(&url).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json::<serde_json::Value>().await.unwrap())
    };
    assert_eq!(readyz().await.0, 200);

    // The loop dies once it has leased this delivery.
    let id = trigger_for(e, "acme", "r-1").await;
    let mut down = None;
    for _ in 0..600 {
        match readyz().await {
            (503, body) => {
                down = Some(body);
                break;
            }
            _ => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    let body = down.expect("/readyz never reported the worker down (waited 6 s)");
    assert_eq!(body["status"], "not_ready");
    let reason = body["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("worker {owner} is down")),
        "{reason}"
    );
    assert!(
        reason.contains("injected fault: the worker loop panics"),
        "{reason}"
    );
    assert!(reason.contains("restarting in 1 s"), "{reason}");

    wait_for("the delivery sent by the restarted worker", || async {
        status(e, &id).await.0 == "succeeded"
    })
    .await;
    assert_eq!(readyz().await, (200, json!({"status": "ready"})));
    server.shutdown().await.unwrap();
}

on_both_backends!(
    a_job_whose_preparation_panics_fails_alone,
    a_job_whose_commit_panics_fails_alone,
    a_delivery_that_cannot_be_read_fails_alone,
    a_belfry_worker_process_survives_an_unreadable_delivery,
    running_due_jobs_inline_survives_a_poisoned_job,
    a_workflow_step_that_fails_inside_belfry_moves_its_run_on,
    a_dead_worker_loop_gives_back_its_jobs_and_restarts,
    a_dead_commit_task_is_replaced,
    readyz_names_a_worker_that_is_down,
);
