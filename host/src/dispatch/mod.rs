//! Dispatch: moving planned deliveries to their final status through the durable job queue.
//!
//! - [`queue`]: the `jobs` table: enqueue in the planning transaction, lease, complete,
//!   reschedule, defer, remove, wake-ups.
//! - [`executor`]: one job run (build → render → validate → send) and the batch commit of
//!   outcomes, guarded by the lease.
//! - [`retry`]: backoff with jitter, retry-after, exhaustion.
//! - [`worker`]: the long-running loop `belfry worker` (and later `belfry serve`) runs.
//!
//! [`run_due`] runs what is due right now in the calling task, through the same lease and
//! commit path: it is how `belfry demo`, `belfry trigger --dispatch` and the tests drive
//! dispatch without a background worker.

pub mod executor;
pub mod queue;
pub mod retry;
pub mod worker;

pub use executor::{ChangeError, Dispatched, Executor, reason};
pub use queue::{QueueStats, Scope, Wakeup, WriteGate};
pub use retry::RetryPolicy;
pub use worker::{WorkerConfig, WorkerReport};

use crate::store::StoreError;
use std::time::Duration;

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
        for (index, (job, prepared)) in exec.prepare(jobs).await?.into_iter().enumerate() {
            let exec = exec.clone();
            tasks.spawn(async move { (index, exec.execute(job, prepared).await) });
        }
        let mut works = Vec::new();
        while let Some(joined) = tasks.join_next().await {
            let (index, work) =
                joined.map_err(|e| StoreError::Corrupt(format!("dispatch task: {e}")))?;
            works.push((index, work?));
        }
        works.sort_by_key(|(i, _)| *i);
        out.extend(
            exec.commit(works.into_iter().map(|(_, w)| w).collect())
                .await?,
        );
    }
}
