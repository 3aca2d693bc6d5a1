//! A worker: leases due jobs, runs them a few at a time, commits their outcomes in batches
//! (in a task of its own, beside the leasing),
//! and sleeps until there is work (a wake-up, the next scheduled job, or the polling backstop).
//!
//! Any number of workers, in any number of processes sharing the database, can run at once:
//! the lease makes each job one worker's at a time. On shutdown a worker stops leasing, lets
//! in-flight jobs finish for a grace period, commits them, and releases the rest unchanged.
//!
//! No job stops a worker: the executor turns a failure or panic of one job into that job's
//! own outcome (see [`Executor::prepare_each`], [`Executor::execute_caught`],
//! [`Executor::commit`]). Should the loop die anyway, [`run`] gives back the jobs it held,
//! reports it down through [`WorkerHealth`] (`/readyz` of `belfry serve`) and restarts it
//! after a backoff.

use super::executor::{Dispatched, Executor};
use super::work::{Prepared, Work};
use super::{Faults, panic_message};
use crate::deliveries::Status;
use crate::jobs::{self as queue, Leased, Scope, Wakeup};
use crate::store::{self, Backend};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
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
    /// Whether the worker is up; keep a clone to ask (`belfry serve`'s `/readyz` does).
    pub health: WorkerHealth,
    #[doc(hidden)]
    pub faults: Faults,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            owner: default_owner(),
            concurrency: 8,
            lease_for: Duration::from_secs(120),
            poll: Duration::from_secs(1),
            grace: Duration::from_secs(10),
            health: WorkerHealth::default(),
            faults: Faults::default(),
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

/// Whether a worker is running. [`run`] marks it down, saying why, from the moment its loop
/// dies until the loop is restarted.
#[derive(Clone, Debug, Default)]
pub struct WorkerHealth(Arc<Mutex<Option<String>>>);

impl WorkerHealth {
    /// Why the worker is down, or `None` while it runs (or before it starts, or after it
    /// stopped on request).
    pub fn down(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn set(&self, down: Option<String>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = down;
    }
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
    /// Database errors survived (the affected jobs are retried when their leases expire),
    /// and jobs that failed inside belfry (reason `internal_error`).
    pub errors: u64,
    /// Times the worker's loop died and was restarted. What a loop counted before it died is
    /// lost, except the outcomes it had handed to the commit task.
    pub restarts: u64,
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
        self.restarts += other.restarts;
    }

    fn count(&mut self, committed: usize, out: &[Dispatched]) {
        self.dropped += (committed - out.len().min(committed)) as u64;
        for d in out {
            if d.reason.as_deref() == Some(super::reason::INTERNAL_ERROR) {
                self.errors += 1;
            }
            match Status::parse(&d.status) {
                Ok(Status::Succeeded) => self.succeeded += 1,
                Ok(Status::Failed) => self.failed += 1,
                Ok(Status::Cancelled) => self.cancelled += 1,
                Ok(Status::Suppressed) => self.suppressed += 1,
                Ok(Status::Deferred) => self.deferred += 1,
                _ => self.retried += 1,
            }
        }
    }
}

/// The first wait before a dead loop is restarted; it doubles with each death in a row, up
/// to [`RESTART_MAX`], and starts over once a loop has lived that long.
const RESTART_MIN: Duration = Duration::from_secs(1);
const RESTART_MAX: Duration = Duration::from_secs(60);

/// Runs a worker until `stop` turns true; then shuts down gracefully. A loop that dies (a
/// panic no job-level guard caught) gives back the jobs it held, is reported down in
/// `config.health`, and is restarted after a backoff; this never panics itself.
#[tracing::instrument(skip_all, fields(owner = %config.owner))]
pub async fn run(
    exec: Executor,
    wake: Wakeup,
    database_url: Option<String>,
    config: WorkerConfig,
    mut stop: watch::Receiver<bool>,
) -> WorkerReport {
    let exec = Executor {
        faults: config.faults.clone(),
        ..exec
    };
    let mut report = WorkerReport::default();
    // Aborted when this returns; it lives across restarts of the loop.
    let listener = match (store::backend(&exec.db), database_url) {
        (Backend::Postgres, Some(url)) => Some(tokio::spawn(listen(url, wake.clone()))),
        _ => None,
    };
    // Outcomes are committed by their own task, so leasing and running go on while a batch
    // commits, and a batch is whatever finished during the previous commit. It outlives a
    // loop that dies, so what that loop finished is still written.
    let (mut finished, outcomes) = mpsc::unbounded_channel::<Work>();
    let mut committer = tokio::spawn(commit_loop(exec.clone(), outcomes));
    let mut backoff = RESTART_MIN;
    loop {
        if committer.is_finished() {
            // It ends only when every sender is gone, which cannot be yet: it died, and the
            // loop that found it so died too (see `collect`). A new one takes its place.
            report.errors += 1;
            match (&mut committer).await {
                Ok(committed) => report.add(&committed),
                Err(e) => tracing::error!(error = %e, "the commit task died; starting another"),
            }
            let (sender, outcomes) = mpsc::unbounded_channel::<Work>();
            finished = sender;
            committer = tokio::spawn(commit_loop(exec.clone(), outcomes));
        }
        let on_hand = OnHand::default();
        let born = tokio::time::Instant::now();
        config.health.set(None);
        // A task of its own, so that a panic ends only it (`JoinError::is_panic`); its state
        // dies with it, except `on_hand`, which is shared for this reason.
        let died = match tokio::spawn(work(
            exec.clone(),
            wake.clone(),
            config.clone(),
            stop.clone(),
            finished.clone(),
            on_hand.clone(),
        ))
        .await
        {
            Ok(stopped) => {
                report.add(&stopped);
                break;
            }
            Err(e) if e.is_panic() => {
                format!("its loop panicked: {}", panic_message(&*e.into_panic()))
            }
            Err(e) => format!("its loop ended: {e}"),
        };
        report.errors += 1;
        report.restarts += 1;
        if born.elapsed() >= RESTART_MAX {
            backoff = RESTART_MIN;
        }
        tracing::error!(why = %died, restart_in = ?backoff, "worker down; restarting it");
        config.health.set(Some(format!(
            "{died}; restarting in {} s",
            backoff.as_secs()
        )));
        // Jobs it held would otherwise wait for their leases to expire. One whose send was
        // still running on its blocking thread may be sent again by its next lease, under the
        // same idempotency key, as after a lease taken over.
        let left = on_hand.take();
        if !left.is_empty() {
            match queue::release(&exec.db, &left).await {
                Ok(n) => report.released += n as u64,
                Err(e) => {
                    report.errors += 1;
                    tracing::error!(error = %e, "releasing a dead loop's jobs failed; their leases will expire");
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = stop.wait_for(|s| *s) => break,
        }
        backoff = (backoff * 2).min(RESTART_MAX);
    }
    config.health.set(None);
    // Everything finished is committed before this returns.
    drop(finished);
    match committer.await {
        Ok(committed) => report.add(&committed),
        Err(e) => {
            report.errors += 1;
            tracing::error!(error = %e, "the commit task failed");
        }
    }
    if let Some(listener) = listener {
        listener.abort();
    }
    tracing::info!(?report, "worker stopped");
    report
}

/// The jobs a loop holds leases on and has not handed to the commit task: what [`run`] gives
/// back when the loop dies.
#[derive(Clone, Default)]
struct OnHand(Arc<Mutex<HashMap<String, Leased>>>);

impl OnHand {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Leased>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn hold(&self, jobs: &[Leased]) {
        let mut held = self.lock();
        for job in jobs {
            held.insert(job.id.clone(), job.clone());
        }
    }
    fn drop_job(&self, job: &Leased) {
        self.lock().remove(&job.id);
    }
    fn take(&self) -> Vec<Leased> {
        self.lock().drain().map(|(_, job)| job).collect()
    }
}

/// One life of a worker's loop (see [`run`]).
async fn work(
    exec: Executor,
    wake: Wakeup,
    config: WorkerConfig,
    mut stop: watch::Receiver<bool>,
    finished: mpsc::UnboundedSender<Work>,
    on_hand: OnHand,
) -> WorkerReport {
    let mut report = WorkerReport::default();
    let concurrency = config.concurrency.max(1);
    let mut tasks: JoinSet<Work> = JoinSet::new();
    let mut in_flight: HashMap<tokio::task::Id, Leased> = HashMap::new();
    let mut ready: std::collections::VecDeque<(Leased, Prepared)> =
        std::collections::VecDeque::new();
    tracing::info!(concurrency, "worker started");

    loop {
        while let Some(joined) = tasks.try_join_next_with_id() {
            collect(joined, &mut in_flight, &on_hand, &finished, &mut report);
        }
        if *stop.borrow() {
            break;
        }
        start(&exec, concurrency, &mut ready, &mut tasks, &mut in_flight);
        // Lease ahead: up to `concurrency` jobs wait, read and ready, beside those running, so a
        // freed slot starts its next job at once (also while a batch commits) and leases come
        // as full batches. A lease is a write, and on SQLite every write waits for the one
        // writer: one lease per finished job would double the writes the commits make.
        let on_hand_now = tasks.len() + ready.len();
        let room = (2 * concurrency).saturating_sub(on_hand_now);
        let may_lease = room >= concurrency || on_hand_now == 0;
        let mut leased = 0;
        if may_lease {
            match exec
                .lease(&config.owner, room, config.lease_for, Scope::All)
                .await
            {
                Ok(jobs) => {
                    leased = jobs.len();
                    report.leased += leased as u64;
                    on_hand.hold(&jobs);
                    ready.extend(prepare(&exec, jobs, &on_hand, &mut report).await);
                    if leased > 0 {
                        config.faults.check_worker();
                    }
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
                collect(joined, &mut in_flight, &on_hand, &finished, &mut report);
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
            Ok(Some(joined)) => collect(joined, &mut in_flight, &on_hand, &finished, &mut report),
            Ok(None) | Err(_) => break,
        }
    }
    // Jobs still running are left to end on their own (their plugin time limits bound them);
    // what they return is dropped, and their jobs are released below.
    tasks.detach_all();
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
    on_hand.take();
    report
}

/// Starts jobs leased ahead, as far as the slots allow. A job runs on a blocking-pool thread
/// of its own: a plugin burning its whole CPU budget must not stall the worker's loop, its
/// timers or the commit task on a shared runtime thread.
fn start(
    exec: &Executor,
    concurrency: usize,
    ready: &mut std::collections::VecDeque<(Leased, Prepared)>,
    tasks: &mut JoinSet<Work>,
    in_flight: &mut HashMap<tokio::task::Id, Leased>,
) {
    while tasks.len() < concurrency {
        let Some((job, prepared)) = ready.pop_front() else {
            return;
        };
        let exec = exec.clone();
        let run = job.clone();
        let rt = tokio::runtime::Handle::current();
        let handle = tasks.spawn_blocking(move || rt.block_on(exec.execute_caught(run, prepared)));
        in_flight.insert(handle.id(), job);
    }
}

/// [`Executor::prepare_each`] for a leased batch. If the database cannot be reached, the batch
/// is given back to the queue at once (rather than left to its leases' expiry) and nothing of
/// it runs.
async fn prepare(
    exec: &Executor,
    jobs: Vec<Leased>,
    on_hand: &OnHand,
    report: &mut WorkerReport,
) -> Vec<(Leased, Prepared)> {
    match exec.prepare_each(jobs.clone()).await {
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
            for job in &jobs {
                on_hand.drop_job(job);
            }
            Vec::new()
        }
    }
}

/// Hands a finished job to the commit task. A job's task that failed to join (a panic past
/// `execute_caught`, or a cancellation) becomes that job's fault, so it is still committed.
fn collect(
    joined: Result<(tokio::task::Id, Work), tokio::task::JoinError>,
    in_flight: &mut HashMap<tokio::task::Id, Leased>,
    on_hand: &OnHand,
    finished: &mpsc::UnboundedSender<Work>,
    report: &mut WorkerReport,
) {
    let (job, work) = match joined {
        Ok((id, work)) => (in_flight.remove(&id), work),
        Err(e) => {
            report.errors += 1;
            tracing::error!(error = %e, "job task panicked or was aborted");
            let Some(job) = in_flight.remove(&e.id()) else {
                return;
            };
            let detail = match e.try_into_panic() {
                Ok(panic) => format!("running the job panicked: {}", panic_message(&*panic)),
                Err(e) => format!("running the job failed: {e}"),
            };
            (Some(job.clone()), Work::fault(job, detail))
        }
    };
    // The committer lives until the worker's `run` drops the last sender; if it is gone
    // anyway, this loop dies with the job still on hand, to be given back, and `run` starts
    // both again.
    if finished.send(work).is_err() {
        panic!("the commit task is gone");
    }
    if let Some(job) = job {
        on_hand.drop_job(&job);
    }
}

/// Commits finished jobs in batches: each batch is everything that finished while the
/// previous one was being written (at most `MAX_BATCH`). Ends when the worker drops its sender.
async fn commit_loop(exec: Executor, mut outcomes: mpsc::UnboundedReceiver<Work>) -> WorkerReport {
    const MAX_BATCH: usize = 100;
    let mut report = WorkerReport::default();
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while outcomes.recv_many(&mut batch, MAX_BATCH).await > 0 {
        exec.faults.check_committer();
        let n = batch.len();
        // `commit` isolates a job whose outcome cannot be written; an error here means the
        // database could not be reached at all.
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
            .clamp(MIN_NAP, poll.max(MIN_NAP)),
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
