//! The one insert of each row this module owns: what was asked (`events`), for whom
//! (`notifications`) and what is planned to be sent (`deliveries`). Trigger, digests and
//! workflows all write through these, so a column added later is filled everywhere.

use super::vocab::Status;
use crate::store::{Conn, StoreError};

/// The idempotency key every send of a delivery carries: stable across attempts, so a
/// provider can drop a repeat after a crash between its send and our commit.
pub fn idempotency_key_for(delivery_id: &str) -> String {
    format!("belfry-{delivery_id}")
}

/// An event as asked: by a trigger, or by a digest emission standing in for its members.
pub struct NewEvent<'a> {
    pub id: &'a str,
    pub tenant: &'a str,
    pub notifier_key: &'a str,
    /// The notifier build, `name@version#hash12`.
    pub notifier_plugin: &'a str,
    /// JSON.
    pub payload: &'a str,
    pub idempotency_key: Option<&'a str>,
    pub created_at: &'a str,
}

/// Writes an event. `false` when the tenant's idempotency key was taken (nothing written).
pub async fn insert_event(conn: &mut Conn, e: &NewEvent<'_>) -> Result<bool, StoreError> {
    let inserted = sqlx::query(
        "INSERT INTO events (id, tenant, notifier_key, notifier_plugin, payload, idempotency_key, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING",
    )
    .bind(e.id)
    .bind(e.tenant)
    .bind(e.notifier_key)
    .bind(e.notifier_plugin)
    .bind(e.payload)
    .bind(e.idempotency_key)
    .bind(e.created_at)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from)?;
    Ok(inserted.rows_affected() > 0)
}

/// One recipient of an event.
pub struct NewNotification<'a> {
    pub id: &'a str,
    pub event_id: &'a str,
    pub tenant: &'a str,
    pub recipient_id: &'a str,
    /// The recipient as JSON.
    pub recipient: &'a str,
    pub category: &'a str,
    /// `policy::Severity::as_str`.
    pub severity: &'a str,
    pub created_at: &'a str,
}

pub async fn insert_notification(
    conn: &mut Conn,
    n: &NewNotification<'_>,
) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO notifications (id, event_id, tenant, recipient_id, recipient, category, severity, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(n.id)
    .bind(n.event_id)
    .bind(n.tenant)
    .bind(n.recipient_id)
    .bind(n.recipient)
    .bind(n.category)
    .bind(n.severity)
    .bind(n.created_at)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from)?;
    Ok(())
}

/// A planned delivery. The optional links say where it came from: a fallback of an in-app
/// delivery, a member of a digest bucket, a digest of a bucket, or a workflow step.
#[derive(Default)]
pub struct NewDelivery<'a> {
    pub id: &'a str,
    pub notification_id: &'a str,
    pub event_id: &'a str,
    pub tenant: &'a str,
    /// `content::Channel::as_str`.
    pub channel: &'a str,
    pub status: Status,
    /// Any stored reason: [`super::Reason`], a policy, digest or workflow reason.
    pub reason: Option<&'a str>,
    pub detail: Option<&'a str>,
    /// Who planned it: the notifier build, or belfry for a digest.
    pub planned_by: &'a str,
    pub created_at: &'a str,
    /// The in-app delivery a fallback waits on.
    pub fallback_of: Option<&'a str>,
    pub digest_bucket_id: Option<&'a str>,
    pub digest_key: Option<&'a str>,
    /// The bucket a digest delivery sends.
    pub digest_of: Option<&'a str>,
    pub workflow_run_id: Option<&'a str>,
    pub workflow_step: Option<&'a str>,
}

/// Writes a planned delivery (`updated_at` = `created_at`) and returns its idempotency key.
pub async fn insert_delivery(conn: &mut Conn, d: &NewDelivery<'_>) -> Result<String, StoreError> {
    let idempotency_key = idempotency_key_for(d.id);
    sqlx::query(
        "INSERT INTO deliveries (id, notification_id, event_id, tenant, channel, status, status_reason,
                                 status_detail, idempotency_key, planned_by, created_at, updated_at,
                                 fallback_of, digest_bucket_id, digest_key, digest_of,
                                 workflow_run_id, workflow_step)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(d.id)
    .bind(d.notification_id)
    .bind(d.event_id)
    .bind(d.tenant)
    .bind(d.channel)
    .bind(d.status.as_str())
    .bind(d.reason)
    .bind(d.detail)
    .bind(&idempotency_key)
    .bind(d.planned_by)
    .bind(d.created_at)
    .bind(d.fallback_of)
    .bind(d.digest_bucket_id)
    .bind(d.digest_key)
    .bind(d.digest_of)
    .bind(d.workflow_run_id)
    .bind(d.workflow_step)
    .execute(&mut *conn)
    .await
    .map_err(StoreError::from)?;
    Ok(idempotency_key)
}
