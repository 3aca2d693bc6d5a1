//! The executor: what runs jobs (the database, plugins, retry policy), and the three steps
//! of a batch of leased jobs — [`Executor::prepare_each`] reads what they need,
//! [`Executor::execute_caught`] runs each one, [`Executor::commit`] writes their outcomes.
//!
//! Durability rule: running a job writes nothing. It calls the plugins (a `deliver` job, see
//! [`super::pipeline`]) or its kind's [`jobs::Handler`], and returns a [`Work`]: everything
//! that happened and what should follow. The completer ([`super::completer`]) writes a batch
//! of them in one transaction, each only if its job's lease still holds. A crash anywhere
//! before that commit leaves the job leased; the lease expires, another worker repeats the
//! send under the same idempotency key, and the provider drops the repeat.

use super::retry::RetryPolicy;
use super::work::{Preloaded, Verdict};
pub use super::work::{Prepared, Work};
use super::{Caught, caught};
use crate::jobs::{self, Leased, job_kind};
use crate::plugins::{LiveRegistry, PluginRuntime};
use crate::store::{Db, StoreError};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// Cancel and defer, at the path callers have always used.
pub use super::changes::{ChangeError, cancel, defer};

/// Where a delivery stands after one job run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Dispatched {
    pub delivery_id: String,
    pub status: String,
    pub reason: Option<String>,
    /// When the next try is due, for a delivery waiting to be retried.
    pub retry_at: Option<String>,
}

/// Everything a job run needs; cheap to clone into each job's task.
#[derive(Clone)]
pub struct Executor {
    pub db: Db,
    pub runtime: Arc<PluginRuntime>,
    pub registry: LiveRegistry,
    pub retry: Arc<RetryPolicy>,
    /// When the engine knows its public URL, every email carries a one-click unsubscribe
    /// link under it (RFC 8058).
    pub unsubscribe: Option<crate::unsubscribe::Links>,
    /// Posts lifecycle events to the endpoints applications registered.
    pub endpoints: crate::endpoints::Sender,
    /// The handler of every job kind but `deliver`, built once ([`super::handlers`]).
    pub handlers: Arc<jobs::Handlers>,
    /// Leases and commits of this process take turns through it (on SQLite).
    pub gate: jobs::WriteGate,
    #[doc(hidden)]
    pub faults: super::Faults,
}

impl Executor {
    /// Leases up to `limit` due jobs in `scope`, in this process's turn to write.
    pub async fn lease(
        &self,
        owner: &str,
        limit: usize,
        lease_for: Duration,
        scope: jobs::Scope<'_>,
    ) -> Result<Vec<Leased>, StoreError> {
        let _turn = self.gate.enter(&self.db).await;
        jobs::lease(&self.db, owner, limit, lease_for, scope).await
    }

    /// [`Executor::prepare`] that one job cannot break for the others. When the batch fails or panics,
    /// each job is prepared alone, and one that still fails or panics is prepared as a
    /// fault (`internal_error`) with the reason; only a database that cannot be reached at all is an
    /// error (the caller gives the batch back), since then every job would fail alike.
    ///
    /// The batch is awaited under `catch_unwind` in the caller's task rather than in a task of
    /// its own: its jobs are needed again for the one-by-one retry, and a spawned task would
    /// have taken them with it.
    pub async fn prepare_each(
        &self,
        jobs: Vec<Leased>,
    ) -> Result<Vec<(Leased, Prepared)>, StoreError> {
        let why = match caught(self.prepare(jobs.clone())).await {
            Ok(prepared) => return Ok(prepared),
            Err(Caught::Failed(e)) if is_outage(&e) => return Err(e),
            Err(c) => c.describe("preparing the batch"),
        };
        tracing::error!(jobs = jobs.len(), %why, "preparing a batch failed; preparing its jobs one by one");
        let mut out = Vec::with_capacity(jobs.len());
        for job in jobs {
            let detail = match caught(self.prepare(vec![job.clone()])).await {
                Ok(mut one) if one.len() == 1 => {
                    out.push(one.remove(0));
                    continue;
                }
                Ok(_) => "preparing the job lost it".to_string(),
                Err(c) => c.describe("preparing the job"),
            };
            tracing::error!(job = %job.id, tenant = %job.tenant, %detail, "a job could not be prepared");
            out.push((job, Prepared(Preloaded::Fault(detail))));
        }
        Ok(out)
    }

    /// [`Executor::execute`] whose error or panic is the job's own fault (`internal_error`), never the
    /// caller's: the worker goes on with its other jobs and commits this one's failure.
    pub async fn execute_caught(&self, job: Leased, prepared: Prepared) -> Work {
        let leased = job.clone();
        match caught(self.execute(job, prepared)).await {
            Ok(work) => work,
            Err(c) => Work::fault(leased, c.describe("running the job")),
        }
    }

    /// Runs one leased job with what [`Executor::prepare`] read for it: a `deliver` job through
    /// the plugin pipeline, any other through the handler registered for its kind
    /// ([`super::handlers`]). Writes nothing.
    #[tracing::instrument(skip_all, fields(job = %job.id, delivery = %job.subject_id, attempt = job.attempt))]
    pub async fn execute(&self, job: Leased, prepared: Prepared) -> Result<Work, StoreError> {
        if job.kind == job_kind::DELIVER {
            return Ok(self
                .deliver(Work::new(job, Verdict::Succeeded), prepared)
                .await);
        }
        let Some(handler) = self.handlers.get(&job.kind) else {
            let why = format!("unknown job kind `{}`", job.kind);
            return Ok(Work::new(job, Verdict::Skip(why)));
        };
        let ran = handler.run(&self.db, &job).await?;
        Ok(Work::new(job, Verdict::Handled { handler, ran }))
    }

    /// Writes a batch of job outcomes in one transaction; returns where each delivery stands,
    /// in the order given.
    ///
    /// A batch costs a handful of statements, not a handful per job (see
    /// [`super::completer`]).
    ///
    /// One outcome that cannot be written (an error, a panic) does not hold back the others:
    /// the batch is then written job by job, and a job whose outcome still cannot be written
    /// is retried as a fault (`internal_error`) naming why. Only a database that cannot be
    /// reached is an error: nothing was written, and the jobs run again when their leases expire.
    ///
    /// `catch_unwind` (rather than a task of its own) keeps the outcomes here for the
    /// one-by-one retry; a panic drops the batch's transaction, which rolls it back.
    #[tracing::instrument(skip_all, fields(jobs = works.len()))]
    pub async fn commit(&self, mut works: Vec<Work>) -> Result<Vec<Dispatched>, StoreError> {
        if works.is_empty() {
            return Ok(Vec::new());
        }
        let why = match caught(self.commit_batch(&mut works)).await {
            Ok(out) => return Ok(out),
            Err(Caught::Failed(e)) if is_outage(&e) => return Err(e),
            Err(c) => c.describe("committing the batch"),
        };
        tracing::error!(jobs = works.len(), %why, "committing a batch failed; committing its jobs one by one");
        let mut out = Vec::with_capacity(works.len());
        for work in works {
            let mut one = [work];
            let detail = match caught(self.commit_batch(&mut one)).await {
                Ok(dispatched) => {
                    out.extend(dispatched);
                    continue;
                }
                Err(c) => c.describe("committing the job's outcome"),
            };
            let [work] = one;
            let job = work.job.id.clone();
            tracing::error!(%job, %detail, "a job's outcome could not be written; recording the failure instead");
            let mut fault = [Work::fault(work.job, detail)];
            if let Err(c) = caught(self.commit_batch(&mut fault)).await {
                let why = c.describe("recording the job's failure");
                tracing::error!(%job, %why, "a job's failure could not be recorded; it runs again when its lease expires");
            }
        }
        Ok(out)
    }
}

/// Whether an error says the database cannot be reached or is held by another writer, rather
/// than that one job's rows or statements failed: then trying the jobs one by one would only
/// fail as many times, each after its own wait.
fn is_outage(e: &StoreError) -> bool {
    match e {
        StoreError::Sql(
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed,
        ) => true,
        StoreError::Sql(sqlx::Error::Database(db)) => {
            let code = db.code().unwrap_or_default();
            // SQLite's codes are numbers (SQLITE_BUSY 5 and SQLITE_LOCKED 6, under any extended
            // code); PostgreSQL's are five-character SQLSTATEs: connection exceptions (08…) and
            // shutdowns (57P01–57P03).
            match code.parse::<i32>() {
                Ok(c) if code.len() < 5 => matches!(c & 0xff, 5 | 6),
                _ => code.starts_with("08") || code.starts_with("57P"),
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::ConnectOptions;
    use std::str::FromStr;

    /// A database held by another writer (SQLite's SQLITE_BUSY) or out of reach is not one
    /// job's fault, so a failed batch is not retried job by job; a statement one job's rows
    /// break is.
    #[tokio::test]
    async fn a_busy_or_unreachable_database_is_an_outage_and_a_broken_row_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        let options = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
            .unwrap()
            .busy_timeout(Duration::ZERO);
        let mut a = options.connect().await.unwrap();
        let mut b = options.connect().await.unwrap();
        sqlx::query("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .execute(&mut a)
            .await
            .unwrap();
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut a)
            .await
            .unwrap();
        let busy = sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut b)
            .await
            .unwrap_err();
        assert!(is_outage(&StoreError::Sql(busy)));
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut a)
            .await
            .unwrap();
        let duplicate = sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut a)
            .await
            .unwrap_err();
        assert!(!is_outage(&StoreError::Sql(duplicate)));
        assert!(!is_outage(&StoreError::Corrupt("recipient".into())));
        assert!(is_outage(&StoreError::Sql(sqlx::Error::PoolTimedOut)));
    }
}
