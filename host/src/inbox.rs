//! The in-app inbox. In-app is not a plugin: the host writes validated in-app content here,
//! keyed by delivery (a delivery lands at most once however often it is dispatched).

use crate::content::Content;
use crate::store::Conn;
use crate::store::{self, StoreError};
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
    let rows = sqlx::query(
        "SELECT id, tenant, recipient_id, delivery_id, notification_id, headline, body, action_label,
                action_url, created_at
         FROM inbox_items WHERE tenant = $1 AND recipient_id = $2 ORDER BY created_at DESC, id DESC",
    )
    .bind(tenant)
    .bind(recipient_id)
    .fetch_all(db)
    .await?;
    Ok(rows
        .iter()
        .map(|r| InboxItem {
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
        })
        .collect())
}
