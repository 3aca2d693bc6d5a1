//! Crash recovery of the durable job queue, with real `belfry worker` processes.
//!
//! Workers share one database and send to a local receiver that records every request. While
//! the test triggers deliveries, it kills workers with SIGKILL at random moments and restarts
//! them at once. A worker killed mid-flight leaves its jobs leased: they become due again when
//! the lease (3 s here) expires, and another worker sends them again under the same
//! idempotency key. At the end every delivery must have succeeded, every one must have reached
//! the receiver, every repeat must carry the delivery's key, and the queue must be empty.
//!
//! - PostgreSQL: three worker processes, 2000 deliveries, a kill every 300–700 ms.
//! - SQLite: one worker process running four jobs at a time, 1000 deliveries, a few kills.

use crate::common;

use crate::common::Backend;
use belfry::{Engine, TriggerRequest};
use rand::Rng;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// How long a test may take from the first trigger until every delivery is terminal.
const DEADLINE: Duration = Duration::from_secs(120);
/// Concurrent tasks triggering from the test process.
const TRIGGER_TASKS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_workers_killed_at_random_lose_no_delivery() {
    if common::postgres_url().is_none() {
        return;
    }
    crash_test(Plan {
        backend: Backend::Postgres,
        processes: 3,
        concurrency: 8,
        deliveries: 2000,
        kill_every_ms: 300..700,
        // Kill for as long as work remains (bounded by the deadline).
        max_kills: usize::MAX,
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_worker_killed_a_few_times_loses_no_delivery() {
    crash_test(Plan {
        backend: Backend::Sqlite,
        processes: 1,
        concurrency: 4,
        deliveries: 1000,
        kill_every_ms: 300..900,
        max_kills: 5,
    })
    .await
}

struct Plan {
    backend: Backend,
    /// Worker processes running at once.
    processes: usize,
    /// `--concurrency` of each.
    concurrency: usize,
    deliveries: usize,
    /// The pause before each kill, in milliseconds.
    kill_every_ms: std::ops::Range<u64>,
    /// Kills at most (unless none has caught a worker holding jobs yet).
    max_kills: usize,
}

async fn crash_test(plan: Plan) {
    let db = common::test_db(plan.backend).await;
    let receiver = belfry::receiver::Receiver::start(common::SECRET)
        .await
        .unwrap();
    // The test's own engine migrates the database before any worker starts, and triggers.
    let engine = Engine::open(common::config_for(&db.url, &receiver.url()))
        .await
        .unwrap();
    let mut workers = Workers::new(&db.url, &receiver.url(), db.dir.path(), plan.concurrency);
    for slot in 0..plan.processes {
        workers.start(slot);
    }

    // Trigger while the workers already run, so that kills hit jobs in flight.
    let started = Instant::now();
    let triggering_done = Arc::new(AtomicBool::new(false));
    let triggering = tokio::spawn(trigger_all(
        engine.clone(),
        plan.deliveries,
        triggering_done.clone(),
    ));

    // Chaos: kill a random worker now and then and start it again at once, while deliveries
    // are still being triggered or are not all terminal yet, up to `max_kills` (more if no kill
    // has yet caught a worker holding jobs).
    let mut rng = rand::rng();
    let mut kills = 0;
    let mut orphaned = 0;
    // Kills that came while some deliveries were not yet terminal.
    let mut kills_mid_work = 0;
    while kills < plan.max_kills || orphaned == 0 {
        let pause = rng.random_range(plan.kill_every_ms.clone());
        tokio::time::sleep(Duration::from_millis(pause)).await;
        workers.check_alive();
        let left = unfinished(&engine).await;
        if triggering_done.load(Ordering::SeqCst) && left == 0 {
            break;
        }
        if started.elapsed() > DEADLINE {
            panic!("{left} deliveries still not terminal after {DEADLINE:?} of kills");
        }
        let slot = rng.random_range(0..plan.processes);
        let pid = workers.kill(slot);
        // The dead worker's uncommitted work rolled back with it: the jobs it had leased are
        // still `running` under its name until their leases expire.
        orphaned += leased_by(&engine, pid).await;
        kills += 1;
        if left > 0 {
            kills_mid_work += 1;
        }
        workers.start(slot);
    }
    let delivery_ids = triggering.await.unwrap();
    assert_eq!(delivery_ids.len(), plan.deliveries);
    eprintln!(
        "{kills} kills in {:.1?} ({kills_mid_work} with deliveries unfinished), orphaning \
         {orphaned} leased jobs",
        started.elapsed(),
    );

    // The killing stops. The other workers are stopped gracefully, the one left takes over
    // whatever the killed workers held once their leases expire.
    for slot in 1..plan.processes {
        workers.terminate(slot);
    }
    loop {
        workers.check_alive();
        let left = unfinished(&engine).await;
        if left == 0 {
            break;
        }
        if started.elapsed() > DEADLINE {
            panic!("{left} deliveries still not terminal after {DEADLINE:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let elapsed = started.elapsed();
    workers.terminate(0);

    // Every delivery succeeded, and nothing is left in the queue.
    let statuses: Vec<(String, String, String)> =
        sqlx::query_as("SELECT id, status, idempotency_key FROM deliveries")
            .fetch_all(engine.db())
            .await
            .unwrap();
    assert_eq!(statuses.len(), plan.deliveries);
    for (id, status, key) in &statuses {
        assert_eq!(status, "succeeded", "delivery {id}");
        assert_eq!(key, &format!("belfry-{id}"), "delivery {id}");
    }
    assert_eq!(common::count(&engine, "jobs").await, 0, "jobs left");

    // Every delivery reached the receiver at least once; every request, repeat or not, was
    // signed and carried its delivery's idempotency key.
    let received = receiver.received();
    let mut per_delivery: BTreeMap<String, usize> = BTreeMap::new();
    for r in &received {
        let id = r.body["delivery_id"].as_str().expect("a delivery_id");
        assert!(r.verified, "unverified request for {id}: {r:?}");
        assert_eq!(
            r.webhook_id.as_deref(),
            Some(format!("belfry-{id}").as_str()),
            "request for {id}"
        );
        *per_delivery.entry(id.to_string()).or_default() += 1;
    }
    let expected: BTreeSet<&String> = delivery_ids.iter().collect();
    let seen: BTreeSet<&String> = per_delivery.keys().collect();
    let missing: Vec<_> = expected.difference(&seen).collect();
    assert!(missing.is_empty(), "never received: {missing:?}");
    let unknown: Vec<_> = seen.difference(&expected).collect();
    assert!(
        unknown.is_empty(),
        "received for unknown deliveries: {unknown:?}"
    );
    let repeats = received.len() - per_delivery.len();
    let repeated = per_delivery.values().filter(|&&n| n > 1).count();
    assert_eq!(
        received.iter().filter(|r| r.repeat).count(),
        repeats,
        "the receiver's own count of repeats"
    );
    eprintln!(
        "{} deliveries terminal after {elapsed:.1?}; {} requests received, {repeats} repeats \
         (of {repeated} deliveries); {kills} kills; {} worker errors logged",
        plan.deliveries,
        received.len(),
        workers.logged_errors()
    );

    // The crash path was exercised: a kill came while deliveries were unfinished, and took
    // leased jobs down with it.
    assert!(kills > 0, "no worker was killed");
    assert!(
        kills_mid_work > 0,
        "every kill came when no delivery was unfinished"
    );
    assert!(
        orphaned > 0,
        "no kill caught a worker holding jobs; the crash path was not exercised"
    );
}

/// Triggers `n` `order-shipped` events, each with one customer known only by id, so that each
/// plans exactly one webhook delivery; returns the delivery ids.
async fn trigger_all(engine: Engine, n: usize, done: Arc<AtomicBool>) -> Vec<String> {
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..TRIGGER_TASKS {
        let engine = engine.clone();
        tasks.spawn(async move {
            let mut ids = Vec::new();
            for i in (task..n).step_by(TRIGGER_TASKS) {
                let payload = json!({
                    "order_id": format!("O-{i}"),
                    "carrier": "c",
                    "tracking_url": "https://t.example.com",
                    "customer": {"id": format!("u-{i}")},
                });
                let outcome = engine
                    .trigger(&TriggerRequest::new("order-shipped", payload))
                    .await
                    .unwrap_or_else(|e| panic!("trigger {i}: {e}"));
                let deliveries: Vec<_> = outcome
                    .notifications
                    .iter()
                    .flat_map(|n| &n.deliveries)
                    .collect();
                assert_eq!(deliveries.len(), 1, "trigger {i}: {deliveries:?}");
                assert_eq!(deliveries[0].channel, "webhook");
                ids.push(deliveries[0].id.clone());
            }
            ids
        });
    }
    let mut ids = Vec::with_capacity(n);
    while let Some(joined) = tasks.join_next().await {
        ids.extend(joined.unwrap());
    }
    done.store(true, Ordering::SeqCst);
    ids
}

/// Deliveries not yet in a terminal status.
async fn unfinished(engine: &Engine) -> i64 {
    sqlx::query_scalar(
        "SELECT COUNT(*) FROM deliveries WHERE status NOT IN ('succeeded', 'failed', 'cancelled')",
    )
    .fetch_one(engine.db())
    .await
    .unwrap()
}

/// Jobs leased by the worker process `pid` and not finished. Lease owners are
/// `host:pid:suffix` (see `dispatch::worker::default_owner`).
async fn leased_by(engine: &Engine, pid: u32) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE state = 'running' AND lease_owner LIKE $1")
        .bind(format!("%:{pid}:%"))
        .fetch_one(engine.db())
        .await
        .unwrap()
}

/// The `belfry worker` processes of a test, one per slot; a killed slot is started again with
/// a new process. Each slot appends to its own log file, which is printed if the test fails.
struct Workers {
    args: Vec<String>,
    dir: PathBuf,
    children: BTreeMap<usize, Child>,
}

impl Workers {
    fn new(database_url: &str, webhook_url: &str, dir: &Path, concurrency: usize) -> Workers {
        let args = [
            "--database-url",
            database_url,
            "--cache-dir",
            common::cache_dir().to_str().unwrap(),
            "--plugin-config",
            &format!("webhook.url={webhook_url}"),
            "--plugin-config",
            &format!("webhook.secret={}", common::SECRET),
            "worker",
            "--concurrency",
            &concurrency.to_string(),
            // Short leases so that killed workers' jobs come back quickly.
            "--lease-secs",
            "3",
            "--grace-secs",
            "1",
            "--poll-ms",
            "200",
        ]
        .map(String::from)
        .to_vec();
        Workers {
            args,
            dir: dir.to_path_buf(),
            children: BTreeMap::new(),
        }
    }

    fn log_path(&self, slot: usize) -> PathBuf {
        self.dir.join(format!("worker-{slot}.log"))
    }

    fn start(&mut self, slot: usize) {
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(self.log_path(slot))
            .unwrap();
        writeln!(log, "--- starting worker {slot}").unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_belfry"))
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting belfry worker");
        self.children.insert(slot, child);
    }

    /// SIGKILL: no graceful shutdown, no release of leased jobs. Returns the dead process's id.
    fn kill(&mut self, slot: usize) -> u32 {
        let mut child = self.children.remove(&slot).expect("a running worker");
        let pid = child.id();
        child.kill().unwrap();
        child.wait().unwrap();
        let mut log = File::options()
            .append(true)
            .open(self.log_path(slot))
            .unwrap();
        writeln!(log, "--- worker {slot} (pid {pid}) killed with SIGKILL").unwrap();
        pid
    }

    /// SIGTERM, then waits for the worker to finish its in-flight jobs, release the rest and
    /// exit; it must exit with status 0.
    fn terminate(&mut self, slot: usize) {
        let mut child = self.children.remove(&slot).expect("a running worker");
        let pid = child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("worker {slot} (pid {pid}) did not exit within 15 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(
            status.success(),
            "worker {slot} (pid {pid}) exited with {status} after SIGTERM"
        );
        let log = std::fs::read_to_string(self.log_path(slot)).unwrap();
        if let Some(line) = log.lines().rev().find(|l| l.contains("worker stopped")) {
            eprintln!("worker {slot}: {line}");
        }
    }

    /// Fails the test if a worker exited by itself.
    fn check_alive(&mut self) {
        let exited: Vec<(usize, ExitStatus)> = self
            .children
            .iter_mut()
            .filter_map(|(&slot, c)| c.try_wait().unwrap().map(|s| (slot, s)))
            .collect();
        if let Some((slot, status)) = exited.first() {
            panic!("worker {slot} exited by itself with {status}");
        }
    }

    /// Error lines the workers logged (errors they survived, e.g. a failed commit).
    fn logged_errors(&self) -> usize {
        (0..)
            .map(|slot| self.log_path(slot))
            .take_while(|p| p.exists())
            .map(|p| {
                std::fs::read_to_string(p)
                    .unwrap()
                    .lines()
                    .filter(|l| l.contains("ERROR"))
                    .count()
            })
            .sum()
    }
}

impl Drop for Workers {
    /// Never leaves a worker running; on failure, shows what the workers logged.
    fn drop(&mut self) {
        for child in self.children.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            for slot in 0.. {
                let path = self.log_path(slot);
                let Ok(log) = std::fs::read_to_string(&path) else {
                    break;
                };
                let lines: Vec<&str> = log.lines().collect();
                let tail = &lines[lines.len().saturating_sub(200)..];
                eprintln!(
                    "==== {} (last {} lines) ====\n{}",
                    path.display(),
                    tail.len(),
                    tail.join("\n")
                );
            }
        }
    }
}
