//! A worker: leases due jobs, runs them a few at a time, commits their outcomes in batches
//! (in a task of its own, beside the leasing),
//! and sleeps until there is work (a wake-up, the next scheduled job, or the polling backstop).
//!
//! Any number of workers, in any number of processes sharing the database, can run at once:
//! the lease makes each job one worker's at a time. On shutdown a worker stops leasing, lets
//! in-flight jobs finish for a grace period, commits them, and releases the rest unchanged.

use super::executor::{Dispatched, Executor, Work};
use super::queue::{self, Leased, Scope, Wakeup};
use crate::store::{self, Backend, StoreError};
use std::collections::HashMap;
use std::time::Duration;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;

#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// A name for this worker's leases, shown in `explain` (default: host, pid and a random
    /// suffix).
    pub owner: String,
    /// Jobs in flight at once. As many again may wait leased ahead, already read, so a freed
    /// slot starts its next job at once and leases come in full batches.
    pub concurrency: usize,
    /// How long a lease lasts. A job still running after this may be taken over by another
    /// worker, so it must exceed the longest plugin call (render plus send).
    pub lease_for: Duration,
    /// The polling backstop: how long a worker sleeps at most without a wake-up.
    pub poll: Duration,
    /// How long shutdown waits for in-flight jobs before releasing them.
    pub grace: Duration,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            owner: default_owner(),
            concurrency: 8,
            lease_for: Duration::from_secs(120),
            poll: Duration::from_secs(1),
            grace: Duration::from_secs(10),
        }
    }
}

pub fn default_owner() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "host".into());
    let suffix = &store::new_id()[24..];
    format!("{host}:{}:{suffix}", std::process::id())
}

/// What a worker did before it stopped.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct WorkerReport {
    pub leased: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub retried: u64,
    pub cancelled: u64,
    /// Stopped by the send-time policy (no attempt made).
    pub suppressed: u64,
    /// Put off by the send-time policy (quiet hours) without an attempt.
    pub deferred: u64,
    /// Jobs finished without a delivery outcome (delivery no longer waiting, lease lost).
    pub dropped: u64,
    /// Jobs still running at the end of the grace period, given back to the queue.
    pub released: u64,
    /// Database errors survived (the affected jobs are retried when their leases expire).
    pub errors: u64,
}

impl WorkerReport {
    fn add(&mut self, other: &WorkerReport) {
        self.leased += other.leased;
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        self.retried += other.retried;
        self.cancelled += other.cancelled;
        self.suppressed += other.suppressed;
        self.deferred += other.deferred;
        self.dropped += other.dropped;
        self.released += other.released;
        self.errors += other.errors;
    }

    fn count(&mut self, committed: usize, out: &[Dispatched]) {
        self.dropped += (committed - out.len()) as u64;
        for d in out {
            match d.status.as_str() {
                "succeeded" => self.succeeded += 1,
                "failed" => self.failed += 1,
                "cancelled" => self.cancelled += 1,
                "suppressed" => self.suppressed += 1,
                "deferred" => self.deferred += 1,
                _ => self.retried += 1,
            }
        }
    }
}

/// Runs a worker until `stop` turns true; then shuts down gracefully.
#[tracing::instrument(skip_all, fields(owner = %config.owner))]
pub async fn run(
    exec: Executor,
    wake: Wakeup,
    database_url: Option<String>,
    config: WorkerConfig,
    mut stop: watch::Receiver<bool>,
) -> WorkerReport {
    let mut report = WorkerReport::default();
    let listener = match (store::backend(&exec.db), database_url) {
        (Backend::Postgres, Some(url)) => Some(tokio::spawn(listen(url, wake.clone()))),
        _ => None,
    };
    let concurrency = config.concurrency.max(1);
    let mut tasks: JoinSet<Result<Work, StoreError>> = JoinSet::new();
    let mut in_flight: HashMap<tokio::task::Id, Leased> = HashMap::new();
    let mut ready: std::collections::VecDeque<(Leased, super::executor::Prepared)> =
        std::collections::VecDeque::new();
    // Outcomes are committed by their own task, so leasing and running go on while a batch
    // commits, and a batch is whatever finished during the previous commit.
    let (finished, outcomes) = mpsc::unbounded_channel::<Work>();
    let committer = tokio::spawn(commit_loop(exec.clone(), outcomes));
    tracing::info!(concurrency, "worker started");

    loop {
        while let Some(joined) = tasks.try_join_next_with_id() {
            collect(joined, &mut in_flight, &finished, &mut report);
        }
        if *stop.borrow() {
            break;
        }
        start(&exec, concurrency, &mut ready, &mut tasks, &mut in_flight);
        // Lease ahead: up to `concurrency` jobs wait, read and ready, beside those running, so a
        // freed slot starts its next job at once (also while a batch commits) and leases come
        // as full batches. A lease is a write, and on SQLite every write waits for the one
        // writer: one lease per finished job would double the writes the commits make.
        let on_hand = tasks.len() + ready.len();
        let room = 2 * concurrency - on_hand;
        let may_lease = room >= concurrency || on_hand == 0;
        let mut leased = 0;
        if may_lease {
            match exec
                .lease(&config.owner, room, config.lease_for, Scope::All)
                .await
            {
                Ok(jobs) => {
                    leased = jobs.len();
                    report.leased += leased as u64;
                    ready.extend(prepare(&exec, jobs, &mut report).await);
                    // What was just leased starts now, before a stop is looked at again.
                    start(&exec, concurrency, &mut ready, &mut tasks, &mut in_flight);
                }
                Err(e) => {
                    report.errors += 1;
                    tracing::error!(error = %e, "leasing failed; trying again after the poll interval");
                }
            }
        }
        if leased > 0 && leased == room {
            // Every place was filled: there may be more due work.
            continue;
        }
        // The queue has nothing more due now: sleep until a wake-up, a job finishing, the next
        // scheduled job, or the polling backstop, whichever comes first.
        let nap = if may_lease {
            until_next_due(&exec, config.poll).await
        } else {
            config.poll
        };
        tokio::select! {
            Some(joined) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                collect(joined, &mut in_flight, &finished, &mut report);
            }
            _ = wake.woken(), if may_lease => {}
            _ = tokio::time::sleep(nap) => {}
            _ = stop.changed() => {}
        }
    }

    tracing::info!(in_flight = tasks.len(), "worker stopping: no more leases");
    let deadline = tokio::time::Instant::now() + config.grace;
    while !tasks.is_empty() {
        match tokio::time::timeout_at(deadline, tasks.join_next_with_id()).await {
            Ok(Some(joined)) => collect(joined, &mut in_flight, &finished, &mut report),
            Ok(None) | Err(_) => break,
        }
    }
    // Jobs still running are left to end on their own (their plugin time limits bound them);
    // what they return is dropped, and their jobs are released below.
    tasks.detach_all();
    // Everything finished is committed before the leftovers are released.
    drop(finished);
    match committer.await {
        Ok(committed) => report.add(&committed),
        Err(e) => {
            report.errors += 1;
            tracing::error!(error = %e, "the commit task failed");
        }
    }
    // Jobs leased ahead never started: they go back as they were, with the unfinished ones.
    let left: Vec<Leased> = in_flight
        .into_values()
        .chain(ready.into_iter().map(|(job, _)| job))
        .collect();
    if !left.is_empty() {
        match queue::release(&exec.db, &left).await {
            Ok(n) => report.released += n as u64,
            Err(e) => {
                report.errors += 1;
                tracing::error!(error = %e, "releasing jobs failed; their leases will expire");
            }
        }
    }
    if let Some(listener) = listener {
        listener.abort();
    }
    tracing::info!(?report, "worker stopped");
    report
}

/// Starts jobs leased ahead, as far as the slots allow. A job runs on a blocking-pool thread
/// of its own: a plugin burning its whole CPU budget must not stall the worker's loop, its
/// timers or the commit task on a shared runtime thread.
fn start(
    exec: &Executor,
    concurrency: usize,
    ready: &mut std::collections::VecDeque<(Leased, super::executor::Prepared)>,
    tasks: &mut JoinSet<Result<Work, StoreError>>,
    in_flight: &mut HashMap<tokio::task::Id, Leased>,
) {
    while tasks.len() < concurrency {
        let Some((job, prepared)) = ready.pop_front() else {
            return;
        };
        let exec = exec.clone();
        let run = job.clone();
        let rt = tokio::runtime::Handle::current();
        let handle = tasks.spawn_blocking(move || rt.block_on(exec.execute(run, prepared)));
        in_flight.insert(handle.id(), job);
    }
}

/// [`Executor::prepare`] for a leased batch. If its reads fail, the batch is given back to the
/// queue at once (rather than left to its leases' expiry) and nothing of it runs.
async fn prepare(
    exec: &Executor,
    jobs: Vec<Leased>,
    report: &mut WorkerReport,
) -> Vec<(Leased, super::executor::Prepared)> {
    match exec.prepare(jobs.clone()).await {
        Ok(prepared) => prepared,
        Err(e) => {
            report.errors += 1;
            tracing::error!(error = %e, jobs = jobs.len(), "reading a leased batch failed; releasing it");
            match queue::release(&exec.db, &jobs).await {
                Ok(n) => report.released += n as u64,
                Err(e) => {
                    tracing::error!(error = %e, "releasing jobs failed; their leases will expire")
                }
            }
            Vec::new()
        }
    }
}

fn collect(
    joined: Result<(tokio::task::Id, Result<Work, StoreError>), tokio::task::JoinError>,
    in_flight: &mut HashMap<tokio::task::Id, Leased>,
    finished: &mpsc::UnboundedSender<Work>,
    report: &mut WorkerReport,
) {
    match joined {
        Ok((id, Ok(work))) => {
            in_flight.remove(&id);
            // The committer lives until this worker drops the sender.
            let _ = finished.send(work);
        }
        Ok((id, Err(e))) => {
            // The job stays leased; its lease expires and another try follows.
            in_flight.remove(&id);
            report.errors += 1;
            tracing::error!(error = %e, "job run failed on the database");
        }
        Err(e) => {
            in_flight.remove(&e.id());
            report.errors += 1;
            tracing::error!(error = %e, "job task panicked or was aborted");
        }
    }
}

/// Commits finished jobs in batches: each batch is everything that finished while the
/// previous one was being written (at most `MAX_BATCH`). Ends when the worker drops its sender.
async fn commit_loop(exec: Executor, mut outcomes: mpsc::UnboundedReceiver<Work>) -> WorkerReport {
    const MAX_BATCH: usize = 100;
    let mut report = WorkerReport::default();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while outcomes.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let n = batch.len();
        match exec.commit(std::mem::take(&mut batch)).await {
            Ok(out) => report.count(n, &out),
            Err(e) => {
                // Nothing of the batch was written; the jobs' leases expire and they run again.
                report.errors += 1;
                tracing::error!(error = %e, jobs = n, "committing a batch failed");
            }
        }
    }
    report
}

/// How long to sleep before the next job not leased becomes due, at most `poll`.
async fn until_next_due(exec: &Executor, poll: Duration) -> Duration {
    // Never zero: a due job we could not lease is held by another worker's open transaction.
    const MIN_NAP: Duration = Duration::from_millis(5);
    match queue::next_due(&exec.db).await {
        Ok(Some(at)) => (at - store::now())
            .to_std()
            .unwrap_or(Duration::ZERO)
            .clamp(MIN_NAP, poll),
        Ok(None) => poll,
        Err(_) => poll,
    }
}

/// Forwards PostgreSQL `NOTIFY`s on the jobs channel to the in-process wake-up.
async fn listen(url: String, wake: Wakeup) {
    loop {
        let listener = async {
            let mut l = sqlx::postgres::PgListener::connect(&url).await?;
            l.listen(queue::NOTIFY_CHANNEL).await?;
            Ok::<_, sqlx::Error>(l)
        }
        .await;
        let mut l = match listener {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(error = %e, "LISTEN failed; polling until it works");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        loop {
            match l.recv().await {
                Ok(_) => wake.wake(),
                Err(e) => {
                    tracing::warn!(error = %e, "LISTEN connection lost; reconnecting");
                    // A wake-up may have been missed while the connection was down.
                    wake.wake();
                    break;
                }
            }
        }
    }
}
