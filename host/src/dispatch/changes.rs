//! Changes asked of a waiting delivery from outside dispatch: cancel it, or defer it.

use super::Dispatched;
use crate::deliveries::transitions::{self, Standing};
use crate::deliveries::{Status, reason};
use crate::jobs::{self as queue};
use crate::store::{self, Db, StoreError};
use crate::traces::{NewTrace, kind};
use crate::workflows;
use chrono::{DateTime, Utc};

/// Why a delivery could not be cancelled or deferred.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    #[error("no delivery has the id `{0}`")]
    NotFound(String),
    #[error(
        "delivery `{id}` is {status}; only a pending or deferred delivery (or one held for digest, to cancel) can be {verb}"
    )]
    NotWaiting {
        id: String,
        status: String,
        verb: &'static str,
    },
    #[error(
        "delivery `{0}` is being sent right now (or has just been); look again when its attempt ends"
    )]
    InFlight(String),
    #[error("a deferral needs a reason")]
    NoReason,
    /// A deferral more than ten years away (or ago).
    #[error(transparent)]
    Bounds(#[from] crate::time_bounds::BoundsError),
    /// A reason holding NUL (see [`crate::text`]).
    #[error(transparent)]
    Text(#[from] crate::text::TextError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ChangeError {
    fn from(e: sqlx::Error) -> Self {
        ChangeError::Store(e.into())
    }
}

/// Cancels a pending or deferred delivery: its job is removed, nothing is sent.
#[tracing::instrument(skip(db))]
pub async fn cancel(db: &Db, delivery_id: &str, why: &str) -> Result<Dispatched, ChangeError> {
    crate::text::free_text("reason", why)?;
    let Waiting { d, held } = waiting(db, delivery_id, "cancelled").await?;
    let mut tx = db.begin().await?;
    if held {
        // Out of its digest bucket: the bucket first, as joins and emissions lock it, and only
        // while it is open — once emitted, the delivery went out inside the digest.
        if !crate::digests::buckets::leave(&mut tx, &d.id).await? {
            return Err(ChangeError::NotWaiting {
                id: d.id,
                status: "digested".into(),
                verb: "cancelled",
            });
        }
    } else if !queue::remove(&mut tx, queue::job_kind::DELIVER, &d.id).await? {
        // The job goes first: if a worker holds it, the send is under way and cannot be stopped.
        return Err(ChangeError::InFlight(d.id));
    }
    transitions::set_status(&mut tx, &d.id, Status::Cancelled, reason::CANCELLED, why).await?;
    crate::endpoints::events::append(
        &mut tx,
        NewTrace {
            reason: Some(reason::CANCELLED),
            detail: Some(why.to_string()),
            ..trace(&d, kind::DELIVERY_CANCELLED)
        },
    )
    .await?;
    if let Some(run) = &d.workflow_run_id {
        workflows::runs::step_cancelled(&mut tx, run, &d.id, why).await?;
    }
    tx.commit().await?;
    Ok(Dispatched {
        delivery_id: d.id,
        status: Status::Cancelled.as_str().into(),
        reason: Some(reason::CANCELLED.into()),
        retry_at: None,
    })
}

/// Defers a pending or deferred delivery until `until`, with a reason that `explain` shows.
#[tracing::instrument(skip(db))]
pub async fn defer(
    db: &Db,
    delivery_id: &str,
    until: DateTime<Utc>,
    why: &str,
) -> Result<Dispatched, ChangeError> {
    if why.trim().is_empty() {
        return Err(ChangeError::NoReason);
    }
    crate::text::free_text("reason", why)?;
    crate::time_bounds::instant("until", until, store::now())?;
    let Waiting { d, .. } = waiting(db, delivery_id, "deferred").await?;
    let mut tx = db.begin().await?;
    if !queue::defer(&mut tx, queue::job_kind::DELIVER, &d.id, until, why).await? {
        return Err(ChangeError::InFlight(d.id));
    }
    let detail = format!("until {}", store::time_text(until));
    transitions::set_status(&mut tx, &d.id, Status::Deferred, why, &detail).await?;
    crate::endpoints::events::append(
        &mut tx,
        NewTrace {
            reason: Some(why),
            detail: Some(detail),
            ..trace(&d, kind::DELIVERY_DEFERRED)
        },
    )
    .await?;
    queue::announce(&mut tx, store::backend(db)).await?;
    tx.commit().await?;
    Ok(Dispatched {
        delivery_id: d.id,
        status: Status::Deferred.as_str().into(),
        reason: Some(why.to_string()),
        retry_at: Some(store::time_text(until)),
    })
}

/// A delivery that is still waiting to be sent.
struct Waiting {
    d: Standing,
    /// Held in a digest bucket (it has no job; only a cancel applies).
    held: bool,
}

fn trace<'a>(d: &'a Standing, kind: &'static str) -> NewTrace<'a> {
    NewTrace {
        tenant: &d.tenant,
        event_id: &d.event_id,
        notification_id: Some(&d.notification_id),
        delivery_id: Some(&d.id),
        kind,
        ..Default::default()
    }
}

/// The delivery, if it is pending or deferred (or, to cancel, held); why not otherwise.
async fn waiting(db: &Db, delivery_id: &str, verb: &'static str) -> Result<Waiting, ChangeError> {
    let mut conn = db.acquire().await?;
    let d = transitions::standing(&mut conn, delivery_id)
        .await?
        .ok_or_else(|| ChangeError::NotFound(delivery_id.to_string()))?;
    let held = d.status == Status::Held.as_str() && verb == "cancelled";
    if !transitions::is_waiting(&d.status) && !held {
        return Err(ChangeError::NotWaiting {
            id: delivery_id.to_string(),
            status: d.status,
            verb,
        });
    }
    Ok(Waiting { d, held })
}
