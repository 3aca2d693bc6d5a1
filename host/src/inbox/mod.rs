//! The in-app inbox. In-app is not a plugin: the host writes validated in-app content here,
//! keyed by delivery (a delivery lands at most once however often it is dispatched).
//!
//! End users see, read, unread and archive their items ([`mark`]). Every timestamp is set once:
//! `read_at` is the first read and never changes, because it matters to the policy (a fallback
//! delivery, say an email sent if the in-app item is still unread after a while, is suppressed
//! as `already_read` when the item was read before it came due); whether an item is unread now
//! is `read`, which mark read / mark unread turn over.
//!
//! Pages are newest first, by `(created_at, id)` from an opaque cursor, so items inserted while
//! a client pages never shift the pages it has not read yet. End users authenticate with a
//! short-lived token the application mints ([`token`]).

pub mod token;

use crate::content::Content;
use crate::store::Conn;
use crate::store::{self, StoreError};
use crate::traces::{NewTrace, kind};
use serde::Serialize;
use sqlx::Row;

#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// When the recipient first saw it in a list, if they have.
    pub seen_at: Option<String>,
    /// When the recipient first read it, if they have (set once; see the module docs).
    pub read_at: Option<String>,
    pub archived_at: Option<String>,
    /// Read now: false again after mark unread.
    pub read: bool,
}

/// Which of a recipient's items a page holds. Every filter but `Archived` leaves archived
/// items out.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    #[default]
    All,
    Unread,
    Unseen,
    Archived,
}

impl Filter {
    fn condition(self) -> &'static str {
        match self {
            Filter::All => "archived_at IS NULL",
            Filter::Unread => "archived_at IS NULL AND last_read_at IS NULL",
            Filter::Unseen => "archived_at IS NULL AND seen_at IS NULL",
            Filter::Archived => "archived_at IS NOT NULL",
        }
    }
}

/// What an end user can do to an item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mark {
    Seen,
    /// Also marks it seen.
    Read,
    Unread,
    Archived,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Counts {
    /// Not archived and not read now.
    pub unread: i64,
    /// Not archived and never seen.
    pub unseen: i64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Page {
    pub items: Vec<InboxItem>,
    /// Pass it back for the next (older) page; `None` on the last page.
    pub next_cursor: Option<String>,
}

/// The most items one page holds.
pub const MAX_PAGE: i64 = 100;

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
    #[error("cursor `{0}` is not one this inbox handed out")]
    BadCursor(String),
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
                       action_url, created_at, seen_at, read_at, archived_at, last_read_at";

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
        seen_at: r.get("seen_at"),
        read_at: r.get("read_at"),
        archived_at: r.get("archived_at"),
        read: r.get::<Option<String>, _>("last_read_at").is_some(),
    }
}

fn cursor_of(item: &InboxItem) -> String {
    store::cursor(&item.created_at, &item.id)
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

/// A recipient's items, newest first, archived ones included.
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

/// One page of a recipient's items, newest first, older than `cursor` when one is given.
/// `limit` is clamped to 1..=[`MAX_PAGE`].
pub async fn page(
    db: &store::Db,
    tenant: &str,
    recipient_id: &str,
    filter: Filter,
    limit: i64,
    cursor: Option<&str>,
) -> Result<Page, InboxError> {
    let limit = limit.clamp(1, MAX_PAGE);
    let after = cursor
        .map(|c| store::parse_cursor(c).ok_or_else(|| InboxError::BadCursor(c.to_string())))
        .transpose()?;
    let older = if after.is_some() {
        "AND (created_at < $3 OR (created_at = $3 AND id < $4))"
    } else {
        ""
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM inbox_items WHERE tenant = $1 AND recipient_id = $2
         AND {} {older} ORDER BY created_at DESC, id DESC LIMIT {}",
        filter.condition(),
        limit + 1
    );
    let mut query = sqlx::query(&sql).bind(tenant).bind(recipient_id);
    if let Some((at, id)) = &after {
        query = query.bind(at).bind(id);
    }
    let mut items: Vec<InboxItem> = query.fetch_all(db).await?.iter().map(item).collect();
    let next_cursor = if items.len() as i64 > limit {
        items.truncate(limit as usize);
        items.last().map(cursor_of)
    } else {
        None
    };
    Ok(Page { items, next_cursor })
}

/// A recipient's newest `limit` items in any state, newest first: what a live stream compares
/// with what it has already pushed. Comparing ids, not a `(created_at, id)` watermark, is what
/// lets the stream push an item whose transaction committed after a newer one's (several
/// workers write items concurrently, each stamped at its own start).
pub async fn recent(
    db: &store::Db,
    tenant: &str,
    recipient_id: &str,
    limit: i64,
) -> Result<Vec<InboxItem>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM inbox_items WHERE tenant = $1 AND recipient_id = $2
         ORDER BY created_at DESC, id DESC LIMIT $3"
    );
    let rows = sqlx::query(&sql)
        .bind(tenant)
        .bind(recipient_id)
        .bind(limit.clamp(1, MAX_PAGE))
        .fetch_all(db)
        .await?;
    Ok(rows.iter().map(item).collect())
}

pub async fn counts(
    db: &store::Db,
    tenant: &str,
    recipient_id: &str,
) -> Result<Counts, StoreError> {
    let row = sqlx::query(
        "SELECT COUNT(CASE WHEN last_read_at IS NULL THEN 1 END) AS unread,
                COUNT(CASE WHEN seen_at IS NULL THEN 1 END) AS unseen
         FROM inbox_items WHERE tenant = $1 AND recipient_id = $2 AND archived_at IS NULL",
    )
    .bind(tenant)
    .bind(recipient_id)
    .fetch_one(db)
    .await?;
    Ok(Counts {
        unread: row.get("unread"),
        unseen: row.get("unseen"),
    })
}

/// Marks one of a recipient's items read; see [`mark`].
pub async fn mark_read(
    db: &store::Db,
    tenant: &str,
    recipient_id: &str,
    item_id: &str,
) -> Result<InboxItem, InboxError> {
    mark(db, tenant, recipient_id, item_id, Mark::Read).await
}

/// Marks one of a recipient's items. Timestamps are set once; the first read also tells the
/// delivery's story (so `explain` shows why a fallback was dropped) and signals
/// `notification.read` to waiting workflows, in the same transaction.
#[tracing::instrument(skip(db))]
pub async fn mark(
    db: &store::Db,
    tenant: &str,
    recipient_id: &str,
    item_id: &str,
    how: Mark,
) -> Result<InboxItem, InboxError> {
    let mut tx = db.begin().await?;
    let found = mark_in(&mut tx, db, tenant, recipient_id, item_id, how).await?;
    tx.commit().await?;
    Ok(found)
}

/// Marks every unread, unarchived item of a recipient read (each as [`mark`] would); returns
/// how many changed.
#[tracing::instrument(skip(db))]
pub async fn mark_all_read(
    db: &store::Db,
    tenant: &str,
    recipient_id: &str,
) -> Result<u64, InboxError> {
    let mut tx = db.begin().await?;
    let ids: Vec<String> = sqlx::query(
        "SELECT id FROM inbox_items WHERE tenant = $1 AND recipient_id = $2
         AND last_read_at IS NULL AND archived_at IS NULL ORDER BY created_at, id",
    )
    .bind(tenant)
    .bind(recipient_id)
    .fetch_all(&mut *tx)
    .await?
    .iter()
    .map(|r| r.get("id"))
    .collect();
    for id in &ids {
        mark_in(&mut tx, db, tenant, recipient_id, id, Mark::Read).await?;
    }
    tx.commit().await?;
    Ok(ids.len() as u64)
}

async fn mark_in(
    conn: &mut Conn,
    db: &store::Db,
    tenant: &str,
    recipient_id: &str,
    item_id: &str,
    how: Mark,
) -> Result<InboxItem, InboxError> {
    let now = store::time_text(store::now());
    let set = match how {
        Mark::Seen => "seen_at = COALESCE(seen_at, $1)",
        Mark::Read => {
            "seen_at = COALESCE(seen_at, $1), read_at = COALESCE(read_at, $1),
             last_read_at = COALESCE(last_read_at, $1)"
        }
        Mark::Unread => "last_read_at = NULL",
        Mark::Archived => "archived_at = COALESCE(archived_at, $1)",
    };
    // Whether this is the first read decides the story and the signal; the row lock taken by
    // the UPDATE below keeps two concurrent first reads from both seeing `read_at` unset.
    let first_read = how == Mark::Read
        && sqlx::query(
            "UPDATE inbox_items SET read_at = $1
             WHERE id = $2 AND tenant = $3 AND recipient_id = $4 AND read_at IS NULL",
        )
        .bind(&now)
        .bind(item_id)
        .bind(tenant)
        .bind(recipient_id)
        .execute(&mut *conn)
        .await?
        .rows_affected()
            > 0;
    // Likewise the first time it is seen (a read sees it too).
    let first_seen = matches!(how, Mark::Seen | Mark::Read)
        && sqlx::query(
            "UPDATE inbox_items SET seen_at = $1
             WHERE id = $2 AND tenant = $3 AND recipient_id = $4 AND seen_at IS NULL",
        )
        .bind(&now)
        .bind(item_id)
        .bind(tenant)
        .bind(recipient_id)
        .execute(&mut *conn)
        .await?
        .rows_affected()
            > 0;
    sqlx::query(&format!(
        "UPDATE inbox_items SET {set} WHERE id = $2 AND tenant = $3 AND recipient_id = $4"
    ))
    .bind(&now)
    .bind(item_id)
    .bind(tenant)
    .bind(recipient_id)
    .execute(&mut *conn)
    .await?;
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM inbox_items WHERE id = $1 AND tenant = $2 AND recipient_id = $3"
    ))
    .bind(item_id)
    .bind(tenant)
    .bind(recipient_id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| InboxError::NotFound {
        tenant: tenant.to_string(),
        recipient_id: recipient_id.to_string(),
        id: item_id.to_string(),
    })?;
    let found = item(&row);
    if first_read {
        // An inbox item's delivery is never deleted while the item stands.
        let event_id = crate::deliveries::reads::origin(conn, &found.delivery_id, None)
            .await?
            .ok_or(StoreError::Sql(sqlx::Error::RowNotFound))?
            .event_id;
        crate::endpoints::events::append(
            conn,
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
        signal(
            conn,
            db,
            &found,
            crate::workflows::signals::name::NOTIFICATION_READ,
        )
        .await?;
    }
    if first_seen {
        signal(
            conn,
            db,
            &found,
            crate::workflows::signals::name::NOTIFICATION_SEEN,
        )
        .await?;
    }
    Ok(found)
}

/// Tells the recipient's waiting workflows that `item` was read or seen.
async fn signal(
    conn: &mut Conn,
    db: &store::Db,
    item: &InboxItem,
    name: &str,
) -> Result<(), InboxError> {
    let (_, enqueued) = crate::workflows::signals::signal_in(
        conn,
        &item.tenant,
        &item.recipient_id,
        name,
        &serde_json::json!({
            "notification_id": item.notification_id,
            "delivery_id": item.delivery_id,
            "inbox_item_id": item.id,
        }),
    )
    .await?;
    if enqueued {
        crate::jobs::announce(conn, store::backend(db)).await?;
    }
    Ok(())
}
