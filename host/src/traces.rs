//! The trace log: every decision and transition, appended to `traces` (never updated) with
//! the exact plugin build that made it, and read back in the order it was appended.
//!
//! This is the bottom of the story: it knows the kinds of step there are ([`Kind`]) and
//! nothing of who appends them or what they mean to others. Publishing lifecycle events is
//! done by the writers, through [`crate::endpoints::events::append_all`], in the transaction
//! that appends; the story is told by [`crate::explain`].

use crate::store::Conn;
use crate::store::{self, Db, StoreError};
use crate::vocabulary::stored_vocabulary;
use serde::Serialize;
use sqlx::Row;

stored_vocabulary! {
    /// Every kind of step the log holds: one vocabulary for every writer. Each is stored as
    /// the exact string below; renaming one would orphan stored rows and break the lifecycle
    /// events published for it.
    Kind ("trace kind") {
        EventReceived => "event.received",
        RecipientsPlanned => "recipients.planned",
        NotificationCreated => "notification.created",
        DeliveryPlanned => "delivery.planned",
        DeliveryDispatched => "delivery.dispatched",
        DeliveryBuilt => "delivery.built",
        DeliveryRendered => "delivery.rendered",
        ContentValid => "content.valid",
        Attempt => "attempt",
        InboxWritten => "inbox.written",
        InboxRead => "inbox.read",
        DeliverySucceeded => "delivery.succeeded",
        DeliveryFailed => "delivery.failed",
        DeliveryCancelled => "delivery.cancelled",
        DeliveryDeferred => "delivery.deferred",
        RetryScheduled => "retry.scheduled",
        LeaseLost => "lease.lost",
        PolicyChecked => "policy.checked",
        DeliverySuppressed => "delivery.suppressed",
        /// A delivery joined a digest bucket (or was sent at once as its window's first item).
        DeliveryHeld => "delivery.held",
        /// A held delivery went out inside a digest.
        DeliveryDigested => "delivery.digested",
        /// A bucket closed and its digest delivery was planned.
        DigestEmitted => "digest.emitted",
        /// A workflow run's or digest bucket's pinned build is no longer loaded; the build in
        /// force was used instead.
        PinLost => "plugin.pin_lost",
        /// A provider's word on a delivery (`feedback`); the reason is the normalized kind.
        FeedbackReceived => "feedback.received",
        /// A bounce, complaint or unsubscribe reported by a provider suppressed an address.
        SuppressionAdded => "suppression.added",
        /// A recipient used the one-click unsubscribe link of an email (`unsubscribe`).
        RecipientUnsubscribed => "recipient.unsubscribed",
    }
}

/// The strings of [`Kind`], for the writers that bind them as text.
pub mod kind {
    use super::Kind;

    pub const EVENT_RECEIVED: &str = Kind::EventReceived.as_str();
    pub const RECIPIENTS_PLANNED: &str = Kind::RecipientsPlanned.as_str();
    pub const NOTIFICATION_CREATED: &str = Kind::NotificationCreated.as_str();
    pub const DELIVERY_PLANNED: &str = Kind::DeliveryPlanned.as_str();
    pub const DELIVERY_DISPATCHED: &str = Kind::DeliveryDispatched.as_str();
    pub const DELIVERY_BUILT: &str = Kind::DeliveryBuilt.as_str();
    pub const DELIVERY_RENDERED: &str = Kind::DeliveryRendered.as_str();
    pub const CONTENT_VALID: &str = Kind::ContentValid.as_str();
    pub const ATTEMPT: &str = Kind::Attempt.as_str();
    pub const INBOX_WRITTEN: &str = Kind::InboxWritten.as_str();
    pub const INBOX_READ: &str = Kind::InboxRead.as_str();
    pub const DELIVERY_SUCCEEDED: &str = Kind::DeliverySucceeded.as_str();
    pub const DELIVERY_FAILED: &str = Kind::DeliveryFailed.as_str();
    pub const DELIVERY_CANCELLED: &str = Kind::DeliveryCancelled.as_str();
    pub const DELIVERY_DEFERRED: &str = Kind::DeliveryDeferred.as_str();
    pub const RETRY_SCHEDULED: &str = Kind::RetryScheduled.as_str();
    pub const LEASE_LOST: &str = Kind::LeaseLost.as_str();
    pub const POLICY_CHECKED: &str = Kind::PolicyChecked.as_str();
    pub const DELIVERY_SUPPRESSED: &str = Kind::DeliverySuppressed.as_str();
    pub const DELIVERY_HELD: &str = Kind::DeliveryHeld.as_str();
    pub const DELIVERY_DIGESTED: &str = Kind::DeliveryDigested.as_str();
    pub const DIGEST_EMITTED: &str = Kind::DigestEmitted.as_str();
    pub const PIN_LOST: &str = Kind::PinLost.as_str();
    pub const FEEDBACK: &str = Kind::FeedbackReceived.as_str();
    pub const SUPPRESSION_ADDED: &str = Kind::SuppressionAdded.as_str();
    pub const RECIPIENT_UNSUBSCRIBED: &str = Kind::RecipientUnsubscribed.as_str();
}

/// A trace row to append.
#[derive(Debug, Default)]
pub(crate) struct NewTrace<'a> {
    pub tenant: &'a str,
    pub event_id: &'a str,
    pub notification_id: Option<&'a str>,
    pub delivery_id: Option<&'a str>,
    pub kind: &'a str,
    pub reason: Option<&'a str>,
    pub detail: Option<String>,
    pub plugin: Option<String>,
    pub attempt: Option<i64>,
    /// When it happened, if not now (steps recorded during a job are written at its commit).
    pub at: Option<chrono::DateTime<chrono::Utc>>,
}

/// Rows per INSERT: 11 bind parameters each keeps a statement under SQLite's 32,766 and
/// PostgreSQL's 65,535 parameters (a 1,000-recipient trigger appends several thousand rows).
const APPEND_CHUNK: usize = 1000;

/// Appends several rows in few statements (one per [`APPEND_CHUNK`] rows), in order: ids are
/// UUIDv7, made here one after another, so `explain` reads them back in the order given.
pub(crate) async fn append_all(conn: &mut Conn, rows: Vec<NewTrace<'_>>) -> Result<(), StoreError> {
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<NewTrace<'_>> = rows.by_ref().take(APPEND_CHUNK).collect();
        append_chunk(conn, chunk).await?;
    }
    Ok(())
}

async fn append_chunk(conn: &mut Conn, rows: Vec<NewTrace<'_>>) -> Result<(), StoreError> {
    let sql = format!(
        "INSERT INTO traces (id, tenant, event_id, notification_id, delivery_id, at, kind, reason, detail, plugin, attempt)
         VALUES {}",
        store::value_rows(store::backend_of(conn), rows.len(), 11, 1)
    );
    let mut q = sqlx::query(&sql);
    for t in rows {
        let at = t.at.unwrap_or_else(store::now);
        q = q
            .bind(store::new_id())
            .bind(t.tenant)
            .bind(t.event_id)
            .bind(t.notification_id)
            .bind(t.delivery_id)
            .bind(store::time_text(at))
            .bind(t.kind)
            .bind(t.reason)
            .bind(t.detail)
            .bind(t.plugin)
            .bind(t.attempt);
    }
    q.execute(&mut *conn).await?;
    Ok(())
}

/// One step of the story.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TraceEntry {
    pub at: String,
    pub kind: String,
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub plugin: Option<String>,
    pub attempt: Option<i64>,
    pub notification_id: Option<String>,
    pub delivery_id: Option<String>,
}

/// Every step of an event's story, in the order it was appended (ids are UUIDv7, made one
/// after another at append).
pub async fn of_event(db: &Db, event_id: &str) -> Result<Vec<TraceEntry>, StoreError> {
    let rows = sqlx::query(
        "SELECT at, kind, reason, detail, plugin, attempt, notification_id, delivery_id
         FROM traces WHERE event_id = $1 ORDER BY id",
    )
    .bind(event_id)
    .fetch_all(db)
    .await?;
    Ok(rows
        .iter()
        .map(|r| TraceEntry {
            at: r.get("at"),
            kind: r.get("kind"),
            reason: r.get("reason"),
            detail: r.get("detail"),
            plugin: r.get("plugin"),
            attempt: r.get("attempt"),
            notification_id: r.get("notification_id"),
            delivery_id: r.get("delivery_id"),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_stored_as_distinct_strings_that_parse_back() {
        crate::vocabulary::check_round_trips(Kind::ALL);
        assert_eq!(kind::FEEDBACK, "feedback.received");
        assert_eq!(kind::RECIPIENT_UNSUBSCRIBED, "recipient.unsubscribed");
        assert!(Kind::parse("nothing").is_err());
    }
}
