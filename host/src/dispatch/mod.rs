//! Dispatch: moving planned deliveries to their final status.
//!
//! In this version dispatch runs in-process right after a trigger commits
//! ([`dispatch_pending`]); the durable job queue (leases, retries with backoff, deferral,
//! crash recovery, several worker processes) takes its place in the next version, reusing
//! [`executor::dispatch`] for the work on one delivery.

pub mod executor;

pub use executor::{Dispatched, reason};

use crate::plugins::{PluginRuntime, Registry};
use crate::store::{Db, StoreError};
use sqlx::Row;
use std::sync::Arc;

/// How many deliveries one `dispatch_pending` works on at once. Plugin calls run on fresh
/// instances and mostly wait on providers, so a little concurrency goes a long way; SQLite
/// serialises the writes anyway.
pub const CONCURRENCY: usize = 8;

/// Dispatches every pending delivery (oldest first), `CONCURRENCY` at a time.
pub async fn dispatch_pending(
    db: &Db,
    runtime: &Arc<PluginRuntime>,
    registry: &Arc<Registry>,
) -> Result<Vec<Dispatched>, StoreError> {
    let ids: Vec<String> =
        sqlx::query("SELECT id FROM deliveries WHERE status = 'pending' ORDER BY created_at, id")
            .fetch_all(db)
            .await?
            .iter()
            .map(|r| r.get("id"))
            .collect();
    dispatch_many(db, runtime, registry, ids).await
}

/// Dispatches the given deliveries, `CONCURRENCY` at a time; results in the given order.
pub async fn dispatch_many(
    db: &Db,
    runtime: &Arc<PluginRuntime>,
    registry: &Arc<Registry>,
    ids: Vec<String>,
) -> Result<Vec<Dispatched>, StoreError> {
    let permits = Arc::new(tokio::sync::Semaphore::new(CONCURRENCY));
    let mut tasks = tokio::task::JoinSet::new();
    for (index, id) in ids.into_iter().enumerate() {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore is never closed");
        let (db, runtime, registry) = (db.clone(), runtime.clone(), registry.clone());
        tasks.spawn(async move {
            let _permit = permit;
            (
                index,
                executor::dispatch(&db, &runtime, &registry, &id).await,
            )
        });
    }
    let mut out = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let (index, result) =
            joined.map_err(|e| StoreError::Corrupt(format!("dispatch task: {e}")))?;
        if let Some(d) = result? {
            out.push((index, d));
        }
    }
    out.sort_by_key(|(i, _)| *i);
    Ok(out.into_iter().map(|(_, d)| d).collect())
}
