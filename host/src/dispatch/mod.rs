//! Dispatch: moving planned deliveries to their final status through the durable job queue
//! ([`crate::jobs`]).
//!
//! - [`executor`]: what runs jobs, and the three steps of a leased batch: prepare, execute,
//!   commit. A job runs by its kind: `deliver` through the [`pipeline`], any other through the
//!   [`jobs::Handler`] its feature registered ([`handlers`]).
//! - [`pipeline`]: one delivery's reads, send-time policy and plugin calls
//!   (build → render → validate → send); it writes nothing.
//! - [`completer`]: the batch commit of outcomes, guarded by each job's lease.
//! - [`changes`]: cancel and defer a waiting delivery.
//! - [`retry`]: backoff with jitter, retry-after, exhaustion.
//! - [`worker`]: the long-running loop `belfry worker` (and `belfry serve`) runs.
//!
//! [`run_due`] runs what is due right now in the calling task, through the same lease and
//! commit path: it is how `belfry demo`, `belfry trigger --dispatch` and the tests drive
//! dispatch without a background worker.
//!
//! No job can stop dispatch: a failure or panic while preparing, running or committing one job
//! (or one batch) retries that job with the reason `internal_error` recorded where `explain`
//! shows it, a batch step that fails is repeated job by job so only the poisoned job is held
//! back, and a worker whose loop dies anyway is restarted ([`worker::run`]).

pub mod changes;
pub mod completer;
pub mod executor;
pub mod pipeline;
pub mod retry;
mod work;
pub mod worker;

pub use crate::deliveries::reason;
pub use crate::jobs::{QueueStats, Scope, Wakeup, WriteGate};
pub use executor::{ChangeError, Dispatched, Executor};
pub use retry::RetryPolicy;
pub use work::{Prepared, Work};
pub use worker::{WorkerConfig, WorkerHealth, WorkerReport};

use crate::jobs;
use crate::store::StoreError;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Failures injected on purpose, so tests can prove that one job cannot stop a worker. Never
/// set outside tests: every field's default injects nothing.
#[doc(hidden)]
#[derive(Clone, Debug, Default)]
pub struct Faults {
    /// Preparing a job of this tenant panics (in the batch, and again when tried alone).
    pub panic_preparing: Option<String>,
    /// Committing the outcome of a job of this tenant panics (its fault record does not).
    pub panic_committing: Option<String>,
    /// The worker's loop panics this many more times, each time just after it leased and
    /// prepared a batch (so it dies holding leases).
    pub worker_panics: Arc<AtomicUsize>,
    /// The worker's commit task panics this many more times, each time before it writes a
    /// batch (whose outcomes are lost with it).
    pub committer_panics: Arc<AtomicUsize>,
}

impl Faults {
    pub(crate) fn check_preparing(&self, tenant: &str) {
        if self.panic_preparing.as_deref() == Some(tenant) {
            panic!("injected fault: preparing a job of tenant `{tenant}`");
        }
    }

    pub(crate) fn check_committing(&self, tenant: &str) {
        if self.panic_committing.as_deref() == Some(tenant) {
            panic!("injected fault: committing a job of tenant `{tenant}`");
        }
    }

    pub(crate) fn check_worker(&self) {
        if take_one(&self.worker_panics) {
            panic!("injected fault: the worker loop panics");
        }
    }

    pub(crate) fn check_committer(&self) {
        if take_one(&self.committer_panics) {
            panic!("injected fault: the commit task panics");
        }
    }
}

/// Counts one down, if any is left.
fn take_one(left: &AtomicUsize) -> bool {
    left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// The message a panic carried (`panic!` gives a `&str` or a `String`).
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// How a dispatch step run by [`caught`] went wrong.
pub(crate) enum Caught<E> {
    /// It returned an error.
    Failed(E),
    /// It panicked, with this message.
    Panicked(String),
}

impl<E: std::fmt::Display> Caught<E> {
    /// The reason recorded for a job: `"{doing} failed: …"` or `"{doing} panicked: …"`.
    pub(crate) fn describe(&self, doing: &str) -> String {
        match self {
            Caught::Failed(e) => format!("{doing} failed: {e}"),
            Caught::Panicked(m) => format!("{doing} panicked: {m}"),
        }
    }
}

/// Runs one step of dispatch (preparing, running or committing jobs) so that neither its
/// error nor its panic escapes: one job must never stop a worker. The step is awaited in the
/// caller's task, not a task of its own, because the caller still needs its jobs to retry
/// them one by one; a panic drops whatever transaction the step held, which rolls it back.
pub(crate) async fn caught<T, E>(
    step: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, Caught<E>> {
    use futures_util::FutureExt;
    match std::panic::AssertUnwindSafe(step).catch_unwind().await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(Caught::Failed(e)),
        Err(panic) => Err(Caught::Panicked(panic_message(&*panic))),
    }
}

/// The handler of every job kind but `deliver` (the pipeline's own), each from its feature:
/// what a worker is registered to run. The endpoint post needs the engine's sender.
pub fn handlers(endpoints: &crate::endpoints::Sender) -> Arc<jobs::Handlers> {
    Arc::new(
        jobs::Handlers::default()
            .register(crate::digests::emit::Emit)
            .register(crate::workflows::wake::Wake)
            .register(crate::endpoints::send::Post(endpoints.clone())),
    )
}

/// Dispatch settings shared by every worker of an engine.
#[derive(Clone, Debug, PartialEq)]
pub struct DispatchConfig {
    pub retry: RetryPolicy,
    /// The lease taken by [`run_due`]; workers have their own in [`WorkerConfig`].
    pub lease_for: Duration,
}

impl Default for DispatchConfig {
    fn default() -> Self {
        DispatchConfig {
            retry: RetryPolicy::default(),
            lease_for: Duration::from_secs(120),
        }
    }
}

/// How many jobs [`run_due`] runs at once. Plugin calls mostly wait on providers, so a little
/// concurrency goes a long way; the database serialises the writes anyway.
pub const CONCURRENCY: usize = 8;

/// Leases and runs every job in `scope` that is due now, `CONCURRENCY` at a time, until none
/// is left; returns where each delivery ended, in lease order. Retries scheduled for later are
/// not waited for.
pub async fn run_due(
    exec: &Executor,
    owner: &str,
    lease_for: Duration,
    scope: Scope<'_>,
) -> Result<Vec<Dispatched>, StoreError> {
    let mut out = Vec::new();
    loop {
        let jobs = exec.lease(owner, CONCURRENCY, lease_for, scope).await?;
        if jobs.is_empty() {
            return Ok(out);
        }
        let mut tasks = tokio::task::JoinSet::new();
        for (index, (job, prepared)) in exec.prepare_each(jobs).await?.into_iter().enumerate() {
            let exec = exec.clone();
            tasks.spawn(async move { (index, exec.execute_caught(job, prepared).await) });
        }
        let mut works = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            // `execute_caught` turns a panic into the job's own failure; a task that still
            // fails to join was cancelled with the runtime, and so is this call.
            let (index, work) =
                joined.map_err(|e| StoreError::Corrupt(format!("dispatch task: {e}")))?;
            works.push((index, work));
        }
        works.sort_by_key(|(i, _)| *i);
        out.extend(
            exec.commit(works.into_iter().map(|(_, w)| w).collect())
                .await?,
        );
    }
}
