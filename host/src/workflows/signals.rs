//! Signals: `signal(tenant, actor, name, payload)` ends or shortens the waits of the actor's
//! runs that listen for `name`.
//!
//! A run listens only while it waits, and only for the names its waiting step lists
//! (`cancel-on`, `resume-on`). A signal reaches the runs of its own tenant whose recipient is
//! the actor; a payload naming a `notification_id` reaches only that notification's run (the
//! host's own `notification.read` does). Every signal is recorded, with how many runs it
//! moved, whether or not any listened.

use super::runs::{self, Effect};
use crate::store::{self, Conn, Db, StoreError};
use serde::Serialize;

/// Signals the host sends itself (stored in run definitions; do not rename).
pub mod name {
    /// An in-app item was read; the payload names its `notification_id` and `delivery_id`.
    pub const NOTIFICATION_READ: &str = "notification.read";
    /// An in-app item was seen (listed as seen, or read) for the first time; payload as above.
    pub const NOTIFICATION_SEEN: &str = "notification.seen";

    /// What a provider reported about a delivery: `delivery.delivered`, `delivery.opened`,
    /// `delivery.bounced` (hard or soft), … — one per new feedback event, its payload naming
    /// the `notification_id`, `delivery_id`, the normalized `kind` and the provider's event id.
    pub fn of_feedback(kind: crate::plugins::FeedbackKind) -> String {
        use crate::plugins::FeedbackKind as K;
        match kind {
            K::BouncedHard | K::BouncedSoft => "delivery.bounced".into(),
            other => format!("delivery.{}", other.as_str()),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignalOutcome {
    pub id: String,
    pub runs: Vec<SignalEffect>,
}

#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignalEffect {
    pub run_id: String,
    pub notification_id: String,
    pub step_key: String,
    pub effect: Effect,
}

#[derive(Debug, thiserror::Error)]
pub enum SignalError {
    #[error("invalid signal: {0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for SignalError {
    fn from(e: sqlx::Error) -> Self {
        SignalError::Store(e.into())
    }
}

/// Records a signal and applies it to every run of `tenant` waiting for `actor` that listens
/// for `name`, in one transaction.
#[tracing::instrument(skip(db, payload))]
pub async fn signal(
    db: &Db,
    tenant: &str,
    actor: &str,
    name: &str,
    payload: &serde_json::Value,
) -> Result<SignalOutcome, SignalError> {
    // The rules every edge shares (see `crate::text`): a NUL once failed the insert on
    // PostgreSQL and was stored on SQLite.
    crate::tenants::check_id(tenant).map_err(|e| SignalError::Invalid(e.to_string()))?;
    crate::text::identifier("actor", actor).map_err(|e| SignalError::Invalid(e.to_string()))?;
    crate::text::identifier("name", name).map_err(|e| SignalError::Invalid(e.to_string()))?;
    crate::text::json("payload", payload).map_err(|e| SignalError::Invalid(e.to_string()))?;
    if name.trim().is_empty() || name.len() > super::definition::MAX_SIGNAL_NAME {
        return Err(SignalError::Invalid(format!(
            "name must be 1 to {} bytes, got {}",
            super::definition::MAX_SIGNAL_NAME,
            name.len()
        )));
    }
    if !(payload.is_object() || payload.is_null()) {
        return Err(SignalError::Invalid("payload must be a JSON object".into()));
    }
    let mut tx = db.begin().await?;
    let (outcome, enqueued) = signal_in(&mut tx, tenant, actor, name, payload).await?;
    if enqueued {
        crate::jobs::announce(&mut tx, store::backend(db)).await?;
    }
    tx.commit().await?;
    Ok(outcome)
}

/// [`signal`] inside the caller's transaction (the inbox sends `notification.read` in the
/// transaction that marks the item read). Returns whether a job was written.
pub(crate) async fn signal_in(
    conn: &mut Conn,
    tenant: &str,
    actor: &str,
    name: &str,
    payload: &serde_json::Value,
) -> Result<(SignalOutcome, bool), StoreError> {
    let id = store::new_id();
    let now = store::time_text(store::now());
    // Written first (with the count fixed up at the end): on SQLite a transaction must write
    // before it reads, or a concurrent writer's commit makes it fail instead of wait.
    sqlx::query(
        "INSERT INTO signals (id, tenant, actor, name, payload, runs_moved, created_at)
         VALUES ($1, $2, $3, $4, $5, 0, $6)",
    )
    .bind(&id)
    .bind(tenant)
    .bind(actor)
    .bind(name)
    .bind(payload.to_string())
    .bind(&now)
    .execute(&mut *conn)
    .await?;
    let mut effects = Vec::new();
    let mut enqueued = false;
    for run in runs::waiting_for(conn, tenant, actor).await? {
        if !reaches(payload, &run.notification_id) {
            continue;
        }
        let effect = if run.cancel_on.iter().any(|n| n == name) {
            Effect::Cancelled
        } else if run.resume_on.iter().any(|n| n == name) {
            Effect::Resumed
        } else {
            continue;
        };
        if let Some(moved) = runs::on_signal(conn, &run, effect, &id, name).await? {
            enqueued |= moved.enqueued;
            effects.push(SignalEffect {
                run_id: run.id.clone(),
                notification_id: run.notification_id.clone(),
                step_key: run.step_key.clone(),
                effect,
            });
        }
    }
    sqlx::query("UPDATE signals SET runs_moved = $2 WHERE id = $1")
        .bind(&id)
        .bind(effects.len() as i64)
        .execute(&mut *conn)
        .await?;
    tracing::info!(signal = %id, name, runs = effects.len(), "signal received");
    Ok((SignalOutcome { id, runs: effects }, enqueued))
}

/// Whether a signal with this payload is meant for a run (kept with the runs, which check it
/// too before a wait begins).
pub(crate) use super::runs::reaches;
