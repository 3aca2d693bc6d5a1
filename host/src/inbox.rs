//! The in-app inbox. In-app is not a plugin: the host writes validated in-app content here,
//! keyed by delivery (a delivery lands at most once however often it is dispatched).
//!
//! An item is read once: [`mark_read`] keeps the first time. Reading matters to the policy: a
//! fallback delivery (email if the in-app item is unread after a while) is suppressed as
//! `already_read` when its notification's item was read before it came due.

use crate::content::Content;
use crate::store::Conn;
use crate::store::{self, StoreError};
use crate::traces::{self, NewTrace, kind};
use serde::Serialize;
use sqlx::Row;

#[derive(Clone, Debug, Serialize)]
pub struct InboxItem {
    pub id: String,
    pub tenant: String,
    pub recipient_id: String,
    pub delivery_id: String,
    pub notification_id: String,
    pub headline: String,
    pub body: String,
    pub action_label: Option<String>,
    pub action_url: Option<String>,
    pub created_at: String,
    /// When the recipient read it, if they have.
    pub read_at: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum InboxError {
    /// No item with that id belongs to that recipient in that tenant (another tenant's or
    /// recipient's item reads as missing, not as forbidden).
    #[error("recipient `{recipient_id}` of tenant `{tenant}` has no inbox item `{id}`")]
    NotFound {
        tenant: String,
        recipient_id: String,
        id: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for InboxError {
    fn from(e: sqlx::Error) -> Self {
        InboxError::Store(e.into())
    }
}

const COLUMNS: &str =
    "id, tenant, recipient_id, delivery_id, notification_id, headline, body, action_label,
                       action_url, created_at, read_at";

fn item(r: &sqlx::any::AnyRow) -> InboxItem {
    InboxItem {
        id: r.get("id"),
        tenant: r.get("tenant"),
        recipient_id: r.get("recipient_id"),
        delivery_id: r.get("delivery_id"),
        notification_id: r.get("notification_id"),
        headline: r.get("headline"),
        body: r.get("body"),
        action_label: r.get("action_label"),
        action_url: r.get("action_url"),
        created_at: r.get("created_at"),
        read_at: r.get("read_at"),
    }
}

/// Writes the item for an in-app delivery; returns its id (the existing one on a repeat).
pub(crate) async fn write(
    conn: &mut Conn,
    tenant: &str,
    recipient_id: &str,
    notification_id: &str,
    delivery_id: &str,
    content: &Content,
) -> Result<String, StoreError> {
    let Content::InApp {
        headline,
        body,
        primary_action,
    } = content
    else {
        return Err(StoreError::Corrupt(format!(
            "in-app delivery {delivery_id} has {} content",
            content.channel()
        )));
    };
    sqlx::query(
        "INSERT INTO inbox_items (id, tenant, recipient_id, delivery_id, notification_id, headline, body,
                                  action_label, action_url, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (delivery_id) DO NOTHING",
    )
    .bind(store::new_id())
    .bind(tenant)
    .bind(recipient_id)
    .bind(delivery_id)
    .bind(notification_id)
    .bind(headline)
    .bind(body)
    .bind(primary_action.as_ref().map(|a| a.label.as_str()))
    .bind(primary_action.as_ref().map(|a| a.url.as_str()))
    .bind(store::time_text(store::now()))
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query("SELECT id FROM inbox_items WHERE delivery_id = $1")
        .bind(delivery_id)
        .fetch_one(&mut *conn)
        .await?;
    Ok(row.get("id"))
}

/// A recipient's items, newest first.
pub async fn list(
    db: &store::Db,
    tenant: &str,
    recipient_id: &str,
) -> Result<Vec<InboxItem>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM inbox_items WHERE tenant = $1 AND recipient_id = $2
         ORDER BY created_at DESC, id DESC"
    ))
    .bind(tenant)
    .bind(recipient_id)
    .fetch_all(db)
    .await?;
    Ok(rows.iter().map(item).collect())
}

/// Marks one of a recipient's items read (the first read is kept; reading again changes
/// nothing) and tells its delivery's story, so `explain` shows why a fallback was dropped.
#[tracing::instrument(skip(db))]
pub async fn mark_read(
    db: &store::Db,
    tenant: &str,
    recipient_id: &str,
    item_id: &str,
) -> Result<InboxItem, InboxError> {
    let now = store::time_text(store::now());
    let mut tx = db.begin().await?;
    let changed = sqlx::query(
        "UPDATE inbox_items SET read_at = $1
         WHERE id = $2 AND tenant = $3 AND recipient_id = $4 AND read_at IS NULL",
    )
    .bind(&now)
    .bind(item_id)
    .bind(tenant)
    .bind(recipient_id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM inbox_items WHERE id = $1 AND tenant = $2 AND recipient_id = $3"
    ))
    .bind(item_id)
    .bind(tenant)
    .bind(recipient_id)
    .fetch_optional(&mut *tx)
    .await?
    .ok_or_else(|| InboxError::NotFound {
        tenant: tenant.to_string(),
        recipient_id: recipient_id.to_string(),
        id: item_id.to_string(),
    })?;
    let found = item(&row);
    if changed > 0 {
        let event_id: String = sqlx::query("SELECT event_id FROM deliveries WHERE id = $1")
            .bind(&found.delivery_id)
            .fetch_one(&mut *tx)
            .await?
            .get("event_id");
        traces::append(
            &mut tx,
            NewTrace {
                tenant,
                event_id: &event_id,
                notification_id: Some(&found.notification_id),
                delivery_id: Some(&found.delivery_id),
                kind: kind::INBOX_READ,
                detail: Some(format!("inbox item {item_id} read by {recipient_id}")),
                ..Default::default()
            },
        )
        .await?;
        // Workflows waiting on this notification hear of it in the same transaction.
        let (_, enqueued) = crate::workflows::signals::signal_in(
            &mut tx,
            tenant,
            recipient_id,
            crate::workflows::signals::name::NOTIFICATION_READ,
            &serde_json::json!({
                "notification_id": found.notification_id,
                "delivery_id": found.delivery_id,
                "inbox_item_id": item_id,
            }),
        )
        .await?;
        if enqueued {
            crate::dispatch::queue::announce(&mut tx, store::backend(db)).await?;
        }
    }
    tx.commit().await?;
    Ok(found)
}
