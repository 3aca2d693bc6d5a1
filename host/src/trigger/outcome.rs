//! What a trigger returns: the event with its notifications and deliveries, as written or,
//! for a duplicate, as read back.

use super::request::{TriggerError, TriggerRequest};
use crate::deliveries::reads::{self as deliveries, DeliveryRecord};
use crate::store::{Db, StoreError};
use serde::Serialize;
use sqlx::Row;

#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TriggerOutcome {
    pub event_id: String,
    /// True when the idempotency key had been used: nothing was written, these are the
    /// original ids.
    pub duplicate: bool,
    pub notifications: Vec<NotificationSummary>,
}

#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationSummary {
    pub id: String,
    pub recipient_id: String,
    pub deliveries: Vec<DeliveryRecord>,
}

/// The original of a request whose idempotency key turned out to be taken.
pub(super) async fn duplicate_of(
    db: &Db,
    req: &TriggerRequest,
) -> Result<TriggerOutcome, TriggerError> {
    let key = req.idempotency_key.as_deref().unwrap_or_default();
    let existing = find_by_key(db, &req.tenant, key)
        .await?
        .ok_or_else(|| StoreError::Corrupt("idempotency conflict without a row".into()))?;
    summary(db, &existing, true).await
}

pub(super) async fn find_by_key(
    db: &Db,
    tenant: &str,
    key: &str,
) -> Result<Option<String>, TriggerError> {
    Ok(
        sqlx::query("SELECT id FROM events WHERE tenant = $1 AND idempotency_key = $2")
            .bind(tenant)
            .bind(key)
            .fetch_optional(db)
            .await?
            .map(|r| r.get("id")),
    )
}

/// The current state of an event: its notifications and their deliveries.
pub async fn summary(
    db: &Db,
    event_id: &str,
    duplicate: bool,
) -> Result<TriggerOutcome, TriggerError> {
    let rows = sqlx::query(
        "SELECT id, recipient_id FROM notifications WHERE event_id = $1 ORDER BY recipient_id",
    )
    .bind(event_id)
    .fetch_all(db)
    .await?;
    let deliveries = deliveries::deliveries_of_event(db, event_id).await?;
    let notifications = rows
        .iter()
        .map(|r| {
            let id: String = r.get("id");
            NotificationSummary {
                deliveries: deliveries
                    .iter()
                    .filter(|d| d.notification_id == id)
                    .cloned()
                    .collect(),
                recipient_id: r.get("recipient_id"),
                id,
            }
        })
        .collect();
    Ok(TriggerOutcome {
        event_id: event_id.to_string(),
        duplicate,
        notifications,
    })
}
