//! Trigger: an event goes in, the notifier plugin decides who gets it on which channels, and
//! one transaction writes the event, a notification per distinct recipient and a pending
//! delivery per (notification, channel), with the trace of every decision.
//!
//! Plugin calls happen *before* the transaction: they may take milliseconds, and a write
//! transaction held across them would serialise every trigger behind the slowest plugin.
//! Uniqueness (tenant + idempotency key, event + recipient, notification + channel) is
//! enforced by the database's unique indexes, not by look-ups.
//!
//! The steps, one file each, in the order a trigger takes them:
//! - [`request`]: the request, its checks and the errors;
//! - [`plan`]: the notifier plugin's recipients and channels (no writes);
//! - [`decide`]: the plan-time policy and the digest route of each delivery;
//! - [`write`]: the one transaction that writes it all, and [`outcome`] what it returns;
//! - [`dry_run`]: the same plan and decisions, written nowhere.

mod decide;
mod dry_run;
mod outcome;
mod plan;
mod request;
mod write;

pub use dry_run::{DryRun, DryRunChannel, DryRunRecipient, dry_run};
pub use outcome::{NotificationSummary, TriggerOutcome, summary};
pub use plan::MAX_RECIPIENTS;
pub use request::{DEFAULT_TENANT, TriggerError, TriggerRequest};

use crate::jobs as queue;
use crate::plugins::{PluginRuntime, Registry};
use crate::store::{self, Db};
use decide::{digest_rules, lock_counted_recipients, policy_inputs};
use outcome::duplicate_of;
use plan::{Plan, PlannedEvent, plan};
use write::write;

/// The most requests one [`trigger_many`] takes.
pub const MAX_BATCH: usize = 1000;

/// Plans an event and writes it in one transaction: the event, a notification per distinct
/// recipient, a delivery and its job per (notification, channel), and the traces.
#[tracing::instrument(skip_all, fields(notifier = %req.notifier, tenant = %req.tenant))]
pub async fn trigger(
    db: &Db,
    runtime: &PluginRuntime,
    registry: &Registry,
    gate: &queue::WriteGate,
    req: &TriggerRequest,
) -> Result<TriggerOutcome, TriggerError> {
    let planned = match plan(db, runtime, registry, req).await? {
        Plan::Duplicate(existing) => return summary(db, &existing, true).await,
        Plan::New(p) => p,
    };
    let inputs = policy_inputs(db, &[&planned]).await?;
    let rules = digest_rules(db, &[&planned]).await?;
    // In turn with this process's other writers (the workers' leases and commits), rather than
    // in SQLite's busy handler, which is not first come first served: with a few large triggers
    // and busy workers one writer could wait out the busy timeout ("database is locked").
    let turn = gate.enter(db).await;
    let mut tx = db.begin().await?;
    lock_counted_recipients(&mut tx, store::backend(db), &inputs).await?;
    let written = write(&mut tx, &planned, &inputs, &rules).await?;
    queue::announce(&mut tx, store::backend(db)).await?;
    tx.commit().await?;
    drop(turn);
    match written {
        Some(outcome) => Ok(outcome),
        None => duplicate_of(db, req).await,
    }
}

/// Plans every request, then writes them all in one transaction: all are written or none.
/// A request whose idempotency key was used before (or earlier in the batch) comes back as a
/// duplicate of the original. Any invalid request fails the batch, naming its index.
#[tracing::instrument(skip_all, fields(requests = reqs.len()))]
pub async fn trigger_many(
    db: &Db,
    runtime: &PluginRuntime,
    registry: &Registry,
    gate: &queue::WriteGate,
    reqs: &[TriggerRequest],
) -> Result<Vec<TriggerOutcome>, TriggerError> {
    if reqs.len() > MAX_BATCH {
        return Err(TriggerError::Invalid(format!(
            "a batch holds at most {MAX_BATCH} requests, got {}",
            reqs.len()
        )));
    }
    let mut plans = Vec::with_capacity(reqs.len());
    for (index, req) in reqs.iter().enumerate() {
        let planned =
            plan(db, runtime, registry, req)
                .await
                .map_err(|e| TriggerError::InBatch {
                    index,
                    source: Box::new(e),
                })?;
        plans.push(planned);
    }
    let new: Vec<&PlannedEvent> = plans
        .iter()
        .filter_map(|p| match p {
            Plan::New(p) => Some(p),
            Plan::Duplicate(_) => None,
        })
        .collect();
    let inputs = policy_inputs(db, &new).await?;
    let rules = digest_rules(db, &new).await?;
    // In turn, as in `trigger`.
    let turn = gate.enter(db).await;
    let mut tx = db.begin().await?;
    lock_counted_recipients(&mut tx, store::backend(db), &inputs).await?;
    let mut written = Vec::with_capacity(plans.len());
    for p in &plans {
        written.push(match p {
            Plan::New(p) => write(&mut tx, p, &inputs, &rules).await?,
            Plan::Duplicate(_) => None,
        });
    }
    queue::announce(&mut tx, store::backend(db)).await?;
    tx.commit().await?;
    drop(turn);
    let mut out = Vec::with_capacity(plans.len());
    for ((p, w), req) in plans.iter().zip(written).zip(reqs) {
        out.push(match (p, w) {
            (_, Some(outcome)) => outcome,
            (Plan::Duplicate(existing), None) => summary(db, existing, true).await?,
            (Plan::New(_), None) => duplicate_of(db, req).await?,
        });
    }
    Ok(out)
}
