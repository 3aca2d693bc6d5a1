//! The durable job queue: a `jobs` table in the application's own database, in the manner of
//! River and Oban.
//!
//! - A job is written in the same transaction as the rows that need it ([`enqueue`]).
//! - Workers lease due jobs in batches ([`lease`]): PostgreSQL with `FOR UPDATE SKIP LOCKED`,
//!   SQLite in one short write statement. Leasing moves `run_at` to the lease's expiry, so a
//!   job whose worker died or hung becomes due again by the same `run_at <= now` test.
//! - Each lease carries a fresh token; [`finish`] and [`reschedule`] need it, so a worker that
//!   lost its lease to expiry cannot complete the job a second time.
//! - Wake-ups: an in-process [`Wakeup`] always, and on PostgreSQL a `NOTIFY` sent at commit
//!   ([`announce`]) that workers in other processes `LISTEN` for. Polling is the backstop.

use crate::store::{self, Backend, Conn, Db, StoreError};
use crate::vocabulary::stored_vocabulary;
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::sync::Arc;
use std::time::Duration;

/// Job kinds (stored; do not rename).
pub mod job_kind {
    /// Post one lifecycle event to one endpoint; the subject is the message id.
    pub const ENDPOINT_SEND: &str = "endpoint_send";
    /// Send one delivery; the subject is the delivery id.
    pub const DELIVER: &str = "deliver";
    /// Emit a digest bucket when its window ends; the subject is the bucket id.
    pub const DIGEST_EMIT: &str = "digest_emit";
    /// End a workflow run's wait; the subject is the run id.
    pub const WORKFLOW_WAKE: &str = "workflow_wake";
}

stored_vocabulary! {
    /// Where a job stands (column `jobs.state`). A running job whose lease expired stays
    /// `running` until another worker takes it over.
    JobState ("job state") {
        /// Due now (or at `run_at`), never tried.
        Available => "available",
        /// Waiting, by an explicit decision with a reason, until `run_at`.
        Deferred => "deferred",
        /// A try failed transiently; waiting for the next try at `run_at`.
        Retrying => "retrying",
        /// Leased by a worker until `run_at`.
        Running => "running",
    }
}

/// Job states as text: the strings of [`JobState`], for code that compares or binds them as
/// text.
pub mod job_state {
    use super::JobState;

    pub const AVAILABLE: &str = JobState::Available.as_str();
    pub const DEFERRED: &str = JobState::Deferred.as_str();
    pub const RETRYING: &str = JobState::Retrying.as_str();
    pub const RUNNING: &str = JobState::Running.as_str();
}

/// The PostgreSQL notification channel workers listen on.
pub const NOTIFY_CHANNEL: &str = "belfry_jobs";

/// A job to write.
#[derive(Clone, Debug)]
pub(crate) struct NewJob<'a> {
    pub kind: &'a str,
    pub subject_id: &'a str,
    pub tenant: &'a str,
    pub run_at: DateTime<Utc>,
    /// `None` for a job due as soon as possible; `Some(reason)` for a deferred one.
    pub deferred: Option<&'a str>,
}

/// Writes a job inside the caller's transaction.
pub(crate) async fn enqueue(conn: &mut Conn, job: NewJob<'_>) -> Result<(), StoreError> {
    let now = store::time_text(store::now());
    let state = if job.deferred.is_some() {
        JobState::Deferred
    } else {
        JobState::Available
    };
    sqlx::query(
        "INSERT INTO jobs (id, kind, subject_id, tenant, state, run_at, reason, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(store::new_id())
    .bind(job.kind)
    .bind(job.subject_id)
    .bind(job.tenant)
    .bind(state.as_str())
    .bind(store::time_text(job.run_at))
    .bind(job.deferred)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Tells workers in other processes, at commit, that jobs were written. Call once per
/// transaction that enqueued or rescheduled something; a no-op on SQLite, where only one
/// process writes and [`Wakeup`] reaches every worker.
pub(crate) async fn announce(conn: &mut Conn, backend: Backend) -> Result<(), StoreError> {
    if backend == Backend::Postgres {
        sqlx::query("SELECT pg_notify($1, '')")
            .bind(NOTIFY_CHANNEL)
            .execute(conn)
            .await?;
    }
    Ok(())
}

/// The in-process wake-up shared by everything that enqueues and every worker of a process.
#[derive(Clone, Default)]
pub struct Wakeup(Arc<tokio::sync::Notify>);

impl Wakeup {
    pub fn new() -> Self {
        Self::default()
    }
    /// Wakes every waiting worker, and leaves a permit for the next one that waits.
    pub fn wake(&self) {
        self.0.notify_waiters();
        self.0.notify_one();
    }
    pub async fn woken(&self) {
        self.0.notified().await
    }
}

/// The queue's writes of one process, one at a time, on SQLite. SQLite has a single writer,
/// and a writer that finds it busy sleeps in SQLite's busy handler (1, 2, 5, 10 ms…) before
/// it tries again: a lease colliding with a commit lost milliseconds each time. Waiting here
/// instead, in turn, wakes each the moment the other is done. Other processes still meet in
/// the busy handler; on PostgreSQL writers do not exclude each other, and this does nothing.
#[derive(Clone, Default)]
pub struct WriteGate(Arc<tokio::sync::Mutex<()>>);

impl WriteGate {
    pub fn new() -> Self {
        Self::default()
    }

    /// Waits for this process's turn to write to `db` (at once on PostgreSQL).
    pub async fn enter(&self, db: &Db) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match store::backend(db) {
            Backend::Sqlite => Some(self.0.lock().await),
            Backend::Postgres => None,
        }
    }
}

/// A leased job.
#[derive(Clone, Debug)]
pub struct Leased {
    pub id: String,
    pub kind: String,
    pub subject_id: String,
    pub tenant: String,
    /// 1 for the first lease; every lease counts, including one lost to a crash.
    pub attempt: i64,
    pub token: String,
    pub owner: String,
    pub leased_at: DateTime<Utc>,
    /// The state the job was in when leased (`available`, `deferred`, `retrying`, `running`).
    pub from_state: String,
    /// The deferral reason, if the job was deferred.
    pub reason: Option<String>,
    /// The worker whose expired lease this one took over.
    pub rescued_from: Option<String>,
}

/// Which due jobs a lease may take.
#[derive(Clone, Copy, Debug)]
pub enum Scope<'a> {
    All,
    /// Only the jobs of one event's deliveries and of the lifecycle webhooks they published (for
    /// running one trigger to completion in-process).
    Event(&'a str),
}

/// Leases up to `limit` due jobs, oldest `run_at` first, for `lease_for`.
#[tracing::instrument(skip(db))]
pub async fn lease(
    db: &Db,
    owner: &str,
    limit: usize,
    lease_for: Duration,
    scope: Scope<'_>,
) -> Result<Vec<Leased>, StoreError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let now = store::now();
    let expires = crate::time_bounds::later(now, lease_for);
    let token = store::new_id();
    let scope_sql = match scope {
        Scope::All => "",
        // Its deliveries, and the lifecycle webhooks their outcomes published.
        Scope::Event(_) => {
            " AND ((kind = 'deliver' AND subject_id IN (SELECT id FROM deliveries WHERE event_id = $6))
                OR (kind = 'endpoint_send' AND subject_id IN (
                    SELECT m.id FROM endpoint_messages m JOIN deliveries d ON d.id = m.delivery_id
                    WHERE d.event_id = $6)))"
        }
    };
    // `leased_from` and `rescued_from` record the row as it was: SET expressions see the old
    // values on both backends.
    let lock = match store::backend(db) {
        // Concurrent leasers skip each other's rows instead of queueing behind them.
        Backend::Postgres => " FOR UPDATE SKIP LOCKED",
        // One statement is one short write transaction: SQLite has a single writer.
        Backend::Sqlite => "",
    };
    // The due set is chosen once (a materialised CTE), then updated.
    let sql = format!(
        "WITH due AS MATERIALIZED (
             SELECT id FROM jobs WHERE run_at <= $3{scope_sql} ORDER BY run_at LIMIT $5{lock})
         UPDATE jobs SET state = 'running', attempt = attempt + 1, lease_owner = $1,
                lease_token = $2, leased_at = $3, run_at = $4, updated_at = $3, leased_from = state,
                rescued_from = CASE WHEN state = 'running' THEN lease_owner ELSE NULL END
         WHERE id IN (SELECT id FROM due)
         RETURNING id, kind, subject_id, tenant, attempt, reason, rescued_from, leased_from"
    );
    let mut q = sqlx::query(&sql)
        .bind(owner)
        .bind(&token)
        .bind(store::time_text(now))
        .bind(store::time_text(expires))
        .bind(limit as i64);
    if let Scope::Event(event_id) = scope {
        q = q.bind(event_id);
    }
    let rows = q.fetch_all(db).await?;
    let mut leased: Vec<Leased> = rows
        .iter()
        .map(|r| Leased {
            id: r.get("id"),
            kind: r.get("kind"),
            subject_id: r.get("subject_id"),
            tenant: r.get("tenant"),
            attempt: r.get("attempt"),
            token: token.clone(),
            owner: owner.to_string(),
            leased_at: now,
            from_state: r.get("leased_from"),
            reason: r.get("reason"),
            rescued_from: r.get("rescued_from"),
        })
        .collect();
    leased.sort_by(|a, b| a.id.cmp(&b.id));
    if !leased.is_empty() {
        tracing::debug!(count = leased.len(), "leased jobs");
    }
    Ok(leased)
}

/// Deletes a finished job, if this lease still holds it. `false` means the lease was lost
/// (it expired and another worker took the job, or the job was cancelled): the caller must not
/// record the job's outcome as final.
pub(crate) async fn finish(conn: &mut Conn, job: &Leased) -> Result<bool, StoreError> {
    Ok(finish_all(conn, &[job]).await?.contains(&job.id))
}

/// [`finish`] for many jobs in one statement per few hundred: returns the ids of those this
/// worker still held (and so deleted); the others' leases were lost.
pub(crate) async fn finish_all(
    conn: &mut Conn,
    jobs: &[&Leased],
) -> Result<std::collections::HashSet<String>, StoreError> {
    let mut held = std::collections::HashSet::with_capacity(jobs.len());
    for chunk in jobs.chunks(400) {
        let sql = format!(
            "DELETE FROM jobs WHERE (id, lease_token) IN (VALUES {}) RETURNING id",
            store::value_rows(store::backend_of(conn), chunk.len(), 2, 1)
        );
        let mut q = sqlx::query_scalar::<_, String>(&sql);
        for job in chunk {
            q = q.bind(&job.id).bind(&job.token);
        }
        held.extend(q.fetch_all(&mut *conn).await?);
    }
    Ok(held)
}

/// Releases a job to run again at `run_at` (a retry, or a deferral), if this lease still holds
/// it; `false` as in [`finish`]. `uncount` gives back the attempt the lease took: a deferral
/// by policy tried nothing.
pub(crate) async fn reschedule(
    conn: &mut Conn,
    job: &Leased,
    run_at: DateTime<Utc>,
    state: &str,
    reason: Option<&str>,
    error: Option<&str>,
    uncount: bool,
) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "UPDATE jobs SET state = $1, run_at = $2, reason = $3, last_error = $4,
                lease_owner = NULL, lease_token = NULL, updated_at = $5, attempt = attempt - $8
         WHERE id = $6 AND lease_token = $7",
    )
    .bind(state)
    .bind(store::time_text(run_at))
    .bind(reason)
    .bind(error)
    .bind(store::time_text(store::now()))
    .bind(&job.id)
    .bind(&job.token)
    .bind(uncount as i64)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Gives back leased jobs untouched (graceful shutdown): due again at once, and the attempt
/// they were leased for is not counted.
pub async fn release(db: &Db, jobs: &[Leased]) -> Result<usize, StoreError> {
    let mut released = 0;
    let mut tx = db.begin().await?;
    for job in jobs {
        let done = sqlx::query(
            "UPDATE jobs SET state = $1, run_at = $2, attempt = attempt - 1,
                    lease_owner = NULL, lease_token = NULL, updated_at = $2
             WHERE id = $3 AND lease_token = $4",
        )
        .bind(&job.from_state)
        .bind(store::time_text(store::now()))
        .bind(&job.id)
        .bind(&job.token)
        .execute(&mut *tx)
        .await?;
        released += done.rows_affected() as usize;
    }
    announce(&mut tx, store::backend(db)).await?;
    tx.commit().await?;
    Ok(released)
}

/// Moves a waiting job of `kind` for `subject_id` to `run_at`, as deferred with `reason`.
/// `false` when there is no such job or a live lease holds it.
pub(crate) async fn defer(
    conn: &mut Conn,
    kind: &str,
    subject_id: &str,
    run_at: DateTime<Utc>,
    reason: &str,
) -> Result<bool, StoreError> {
    let now = store::time_text(store::now());
    let done = sqlx::query(
        "UPDATE jobs SET state = 'deferred', run_at = $1, reason = $2, lease_owner = NULL,
                lease_token = NULL, updated_at = $3
         WHERE kind = $4 AND subject_id = $5 AND (state <> 'running' OR run_at <= $3)",
    )
    .bind(store::time_text(run_at))
    .bind(reason)
    .bind(&now)
    .bind(kind)
    .bind(subject_id)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Removes the waiting job of `kind` for `subject_id`. `false` when there is none or a live
/// lease holds it (the work is in flight and cannot be taken back).
pub(crate) async fn remove(
    conn: &mut Conn,
    kind: &str,
    subject_id: &str,
) -> Result<bool, StoreError> {
    let now = store::time_text(store::now());
    let done = sqlx::query(
        "DELETE FROM jobs WHERE kind = $1 AND subject_id = $2 AND (state <> 'running' OR run_at <= $3)",
    )
    .bind(kind)
    .bind(subject_id)
    .bind(&now)
    .execute(conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Removes every job of `kind` whose subject is one of `subject_ids`, leased or not: for
/// subjects deleted in the same transaction (an endpoint's messages), whose jobs would find
/// nothing left to do. Returns how many went.
pub(crate) async fn remove_subjects(
    conn: &mut Conn,
    kind: &str,
    subject_ids: &[String],
) -> Result<u64, StoreError> {
    let backend = store::backend_of(conn);
    let mut removed = 0;
    // One statement per 500 ids keeps it far under either backend's parameter limit.
    for chunk in subject_ids.chunks(500) {
        let sql = format!(
            "DELETE FROM jobs WHERE kind = {} AND subject_id IN ({})",
            store::placeholders(backend, 1, 1),
            store::placeholders(backend, chunk.len(), 2)
        );
        let mut q = sqlx::query(&sql).bind(kind);
        for id in chunk {
            q = q.bind(id);
        }
        removed += q.execute(&mut *conn).await?.rows_affected();
    }
    Ok(removed)
}

/// When the next job not currently leased becomes due, if any.
pub async fn next_due(db: &Db) -> Result<Option<DateTime<Utc>>, StoreError> {
    let next: Option<String> = sqlx::query_scalar("SELECT MIN(run_at) FROM jobs")
        .fetch_one(db)
        .await?;
    next.map(|t| store::parse_time(&t)).transpose()
}

/// The queue as a whole, for operators and benchmarks.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct QueueStats {
    pub available: i64,
    pub deferred: i64,
    pub retrying: i64,
    pub running: i64,
}

pub async fn stats(db: &Db) -> Result<QueueStats, StoreError> {
    let mut stats = QueueStats::default();
    for r in sqlx::query("SELECT state, COUNT(*) AS n FROM jobs GROUP BY state")
        .fetch_all(db)
        .await?
    {
        let n: i64 = r.get("n");
        let state: String = r.get("state");
        match JobState::parse(&state) {
            Ok(JobState::Available) => stats.available = n,
            Ok(JobState::Deferred) => stats.deferred = n,
            Ok(JobState::Retrying) => stats.retrying = n,
            Ok(JobState::Running) => stats.running = n,
            Err(_) => return Err(StoreError::Corrupt(format!("job state `{state}`"))),
        }
    }
    Ok(stats)
}

/// A job kind's work, in the manner of River's `Worker`: a feature implements it for its own
/// kind, and the worker runs each leased job through the handler registered for its kind
/// ([`Handlers`]), so features need nothing from dispatch. (`deliver` is dispatch's own: its
/// jobs are read in batches and run through the plugin pipeline.)
///
/// A job runs in two halves, as a delivery does. [`Handler::run`] works outside the
/// transaction and writes nothing (a network call, or nothing at all). [`Handler::commit`] then
/// writes its outcome inside the worker's batch transaction; a crash between the two leaves the
/// job leased, to run again when its lease expires.
pub trait Handler: Send + Sync + 'static {
    /// The kind handled, one of [`job_kind`].
    const KIND: &'static str;
    /// Whether the batch finishes (deletes) the job before [`Handler::commit`], which is then
    /// told whether this worker still held it. `false` for a handler that finishes or
    /// reschedules its job itself, in its commit.
    const FINISHED_BY_BATCH: bool = true;
    /// What `run` found or did, kept for the commit.
    type Ran: Send + Sync + 'static;

    /// Does the job's work outside the database; writes nothing.
    fn run(
        &self,
        db: &Db,
        job: &Leased,
    ) -> impl std::future::Future<Output = Result<Self::Ran, StoreError>> + Send;

    /// Writes what `run` did, in the batch's transaction; returns whether it put a job in the
    /// queue (so other processes are told at commit). `held` is whether the batch finished
    /// the job under this worker's lease (always `false` without [`Self::FINISHED_BY_BATCH`]).
    /// It may be called again with the same `ran` when a batch is retried job by job.
    fn commit(
        &self,
        tx: &mut Conn,
        job: &Leased,
        ran: &Self::Ran,
        held: bool,
    ) -> impl std::future::Future<Output = Result<bool, StoreError>> + Send;
}

/// What a registered handler's `run` returned, its type known only to that handler.
pub struct Ran(Box<dyn std::any::Any + Send + Sync>);

/// A [`Handler`] with its `Ran` type erased, so handlers of every kind sit in one list.
pub trait Registered: Send + Sync {
    fn kind(&self) -> &'static str;
    fn finished_by_batch(&self) -> bool;
    fn run<'a>(&'a self, db: &'a Db, job: &'a Leased) -> BoxFuture<'a, Result<Ran, StoreError>>;
    fn commit<'a>(
        &'a self,
        tx: &'a mut Conn,
        job: &'a Leased,
        ran: &'a Ran,
        held: bool,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;
}

type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

impl<H: Handler> Registered for H {
    fn kind(&self) -> &'static str {
        H::KIND
    }

    fn finished_by_batch(&self) -> bool {
        H::FINISHED_BY_BATCH
    }

    fn run<'a>(&'a self, db: &'a Db, job: &'a Leased) -> BoxFuture<'a, Result<Ran, StoreError>> {
        Box::pin(async move { Ok(Ran(Box::new(Handler::run(self, db, job).await?))) })
    }

    fn commit<'a>(
        &'a self,
        tx: &'a mut Conn,
        job: &'a Leased,
        ran: &'a Ran,
        held: bool,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            // Only this handler's own `run` makes its `Ran`.
            let ran = ran.0.downcast_ref::<H::Ran>().ok_or_else(|| {
                StoreError::Corrupt(format!("a `{}` job's outcome is of another kind", H::KIND))
            })?;
            Handler::commit(self, tx, job, ran, held).await
        })
    }
}

/// The handlers a worker runs jobs with, one per kind.
#[derive(Clone, Default)]
pub struct Handlers(Vec<Arc<dyn Registered>>);

impl Handlers {
    /// Adds the handler of its kind (replacing one registered before for the same kind).
    pub fn register<H: Handler>(mut self, handler: H) -> Self {
        self.0.retain(|h| h.kind() != H::KIND);
        self.0.push(Arc::new(handler));
        self
    }

    /// The handler of `kind`, if one is registered.
    pub fn get(&self, kind: &str) -> Option<Arc<dyn Registered>> {
        self.0.iter().find(|h| h.kind() == kind).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A handler whose commit says which registration it was.
    struct Marked(bool);

    impl Handler for Marked {
        const KIND: &'static str = job_kind::WORKFLOW_WAKE;
        type Ran = ();

        async fn run(&self, _db: &Db, _job: &Leased) -> Result<(), StoreError> {
            Ok(())
        }

        async fn commit(
            &self,
            _tx: &mut Conn,
            _job: &Leased,
            _ran: &(),
            _held: bool,
        ) -> Result<bool, StoreError> {
            Ok(self.0)
        }
    }

    #[tokio::test]
    async fn a_kind_has_one_handler_the_last_registered_and_its_outcome_reaches_it() {
        let handlers = Handlers::default()
            .register(Marked(false))
            .register(Marked(true));
        assert!(handlers.get(job_kind::DELIVER).is_none());
        let h = handlers.get(job_kind::WORKFLOW_WAKE).expect("registered");
        assert_eq!(h.kind(), job_kind::WORKFLOW_WAKE);
        assert!(h.finished_by_batch());

        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("t.db").display());
        sqlx::any::install_default_drivers();
        let mut conn = <Conn as sqlx::Connection>::connect(&url).await.unwrap();
        let job = Leased {
            id: "j".into(),
            kind: job_kind::WORKFLOW_WAKE.into(),
            subject_id: "s".into(),
            tenant: "t".into(),
            attempt: 1,
            token: "k".into(),
            owner: "o".into(),
            leased_at: store::now(),
            from_state: JobState::Available.as_str().into(),
            reason: None,
            rescued_from: None,
        };
        // The later registration replaced the earlier one.
        assert!(
            h.commit(&mut conn, &job, &Ran(Box::new(())), true)
                .await
                .unwrap()
        );
        // An outcome of another type is refused, not misread.
        let wrong = h.commit(&mut conn, &job, &Ran(Box::new(1_u8)), true).await;
        assert!(matches!(wrong, Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn every_job_state_round_trips_through_its_distinct_stored_string() {
        crate::vocabulary::check_round_trips(JobState::ALL);
        assert!(JobState::parse("leased").is_err());
        assert_eq!(job_state::RUNNING, "running");
        assert_eq!(job_state::DEFERRED, "deferred");
    }
}
