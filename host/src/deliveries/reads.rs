//! Reads of the rows this module owns: a delivery as stored (with its notification's
//! recipient), an event's deliveries, a tenant's deliveries page by page, and the provider
//! calls made for a delivery. Explain, trigger's summaries and the API all read through here.

use crate::store::{self, StoreError};
use serde::Serialize;
use sqlx::Row;

/// A delivery as stored.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryRecord {
    pub id: String,
    pub notification_id: String,
    pub event_id: String,
    pub tenant: String,
    pub recipient_id: String,
    pub channel: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub status_detail: Option<String>,
    pub idempotency_key: String,
    pub planned_by: String,
    pub rendered_by: Option<String>,
    /// The content it was rendered to (tagged by `channel`), as stored when it was sent; none
    /// before its render. A stored text that is not JSON is given as that text.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub content: Option<serde_json::Value>,
    pub sent_by: Option<String>,
    pub provider_message_id: Option<String>,
    pub attempts: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// One provider call, as recorded.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AttemptRecord {
    pub delivery_id: String,
    pub attempt: i64,
    pub adapter: String,
    pub started_at: String,
    pub duration_ms: i64,
    pub outcome: String,
    pub error: Option<String>,
    pub provider_message_id: Option<String>,
}

const DELIVERY_COLUMNS: &str =
    "d.id, d.notification_id, d.event_id, d.tenant, n.recipient_id, d.channel, d.status,
    d.status_reason, d.status_detail, d.idempotency_key, d.planned_by, d.rendered_by, d.content,
    d.sent_by, d.provider_message_id, d.attempts, d.created_at, d.updated_at";

pub(crate) fn delivery_from_row(r: &sqlx::any::AnyRow) -> DeliveryRecord {
    DeliveryRecord {
        id: r.get("id"),
        notification_id: r.get("notification_id"),
        event_id: r.get("event_id"),
        tenant: r.get("tenant"),
        recipient_id: r.get("recipient_id"),
        channel: r.get("channel"),
        status: r.get("status"),
        status_reason: r.get("status_reason"),
        status_detail: r.get("status_detail"),
        idempotency_key: r.get("idempotency_key"),
        planned_by: r.get("planned_by"),
        rendered_by: r.get("rendered_by"),
        content: r
            .get::<Option<String>, _>("content")
            .map(|text| serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))),
        sent_by: r.get("sent_by"),
        provider_message_id: r.get("provider_message_id"),
        attempts: r.get("attempts"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    }
}

/// Deliveries of an event, ordered by recipient then channel.
pub(crate) async fn deliveries_of_event(
    db: &store::Db,
    event_id: &str,
) -> Result<Vec<DeliveryRecord>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN notifications n ON n.id = d.notification_id
         WHERE d.event_id = $1 ORDER BY n.recipient_id, d.channel"
    ))
    .bind(event_id)
    .fetch_all(db)
    .await?;
    Ok(rows.iter().map(delivery_from_row).collect())
}

pub(crate) async fn delivery(
    db: &store::Db,
    id: &str,
) -> Result<Option<DeliveryRecord>, StoreError> {
    let row = sqlx::query(&format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN notifications n ON n.id = d.notification_id WHERE d.id = $1"
    ))
    .bind(id)
    .fetch_optional(db)
    .await?;
    Ok(row.as_ref().map(delivery_from_row))
}

/// The provider calls made for a delivery, in the order they were made.
pub(crate) async fn attempts_of(
    db: &store::Db,
    delivery_id: &str,
) -> Result<Vec<AttemptRecord>, StoreError> {
    let rows = sqlx::query(
        "SELECT delivery_id, attempt, adapter, started_at, duration_ms, outcome, error, provider_message_id
         FROM attempts WHERE delivery_id = $1 ORDER BY attempt",
    )
    .bind(delivery_id)
    .fetch_all(db)
    .await?;
    Ok(rows
        .iter()
        .map(|r| AttemptRecord {
            delivery_id: r.get("delivery_id"),
            attempt: r.get("attempt"),
            adapter: r.get("adapter"),
            started_at: r.get("started_at"),
            duration_ms: r.get("duration_ms"),
            outcome: r.get("outcome"),
            error: r.get("error"),
            provider_message_id: r.get("provider_message_id"),
        })
        .collect())
}

/// The tenant that owns an event, notification, delivery or workflow run, or `None` when no
/// such id exists. Callers acting for one tenant answer "not found" for another's ids.
pub async fn tenant_of(db: &store::Db, id: &str) -> Result<Option<String>, StoreError> {
    // `workflow_runs` is read by name only: a run's id is one a caller may hold, and
    // importing `workflows` (a higher layer) for one column would invert the layers.
    for table in ["deliveries", "notifications", "events", "workflow_runs"] {
        let tenant: Option<String> =
            sqlx::query_scalar(&format!("SELECT tenant FROM {table} WHERE id = $1"))
                .bind(id)
                .fetch_optional(db)
                .await?;
        if tenant.is_some() {
            return Ok(tenant);
        }
    }
    Ok(None)
}

/// The most rows one listing page holds.
pub const MAX_PAGE: i64 = 100;

/// Which deliveries a listing holds: exact matches, each optional.
#[derive(Clone, Debug, Default)]
pub struct DeliveryFilter {
    pub status: Option<String>,
    pub channel: Option<String>,
    pub recipient_id: Option<String>,
}

/// A tenant's deliveries, newest first, older than `cursor` when given; and the cursor of
/// the next page. `None` for a cursor this listing did not hand out is the caller's error.
pub async fn deliveries_page(
    db: &store::Db,
    tenant: &str,
    filter: &DeliveryFilter,
    limit: i64,
    cursor: Option<(String, String)>,
) -> Result<(Vec<DeliveryRecord>, Option<String>), StoreError> {
    let limit = limit.clamp(1, MAX_PAGE);
    let mut binds: Vec<String> = vec![tenant.to_string()];
    let mut sql = format!(
        "SELECT {DELIVERY_COLUMNS} FROM deliveries d JOIN notifications n ON n.id = d.notification_id
         WHERE d.tenant = $1"
    );
    for (column, value) in [
        ("d.status", &filter.status),
        ("d.channel", &filter.channel),
        ("n.recipient_id", &filter.recipient_id),
    ] {
        if let Some(v) = value {
            binds.push(v.clone());
            sql.push_str(&format!(" AND {column} = ${}", binds.len()));
        }
    }
    if let Some((at, id)) = cursor {
        binds.push(at);
        binds.push(id);
        let (a, i) = (binds.len() - 1, binds.len());
        sql.push_str(&format!(
            " AND (d.created_at < ${a} OR (d.created_at = ${a} AND d.id < ${i}))"
        ));
    }
    sql.push_str(&format!(
        " ORDER BY d.created_at DESC, d.id DESC LIMIT {}",
        limit + 1
    ));
    let mut query = sqlx::query(&sql);
    for b in &binds {
        query = query.bind(b);
    }
    let mut rows: Vec<DeliveryRecord> = query
        .fetch_all(db)
        .await?
        .iter()
        .map(delivery_from_row)
        .collect();
    let next = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|d| store::cursor(&d.created_at, &d.id))
    } else {
        None
    };
    Ok((rows, next))
}

/// Where a delivery belongs: its event, notification and, for a workflow step's delivery, the
/// run and step that planned it.
#[derive(Clone, Debug)]
pub(crate) struct Origin {
    pub event_id: String,
    pub notification_id: String,
    pub workflow_run_id: Option<String>,
    pub workflow_step: Option<String>,
}

/// The [`Origin`] of delivery `id`, in `tenant` when one is given; `None` when there is no
/// such delivery (there).
pub(crate) async fn origin(
    conn: &mut store::Conn,
    id: &str,
    tenant: Option<&str>,
) -> Result<Option<Origin>, StoreError> {
    let row = sqlx::query(
        "SELECT event_id, notification_id, workflow_run_id, workflow_step FROM deliveries
         WHERE id = $1 AND ($2 IS NULL OR tenant = $2)",
    )
    .bind(id)
    .bind(tenant)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| Origin {
        event_id: r.get("event_id"),
        notification_id: r.get("notification_id"),
        workflow_run_id: r.get("workflow_run_id"),
        workflow_step: r.get("workflow_step"),
    }))
}

/// The newest delivery a workflow run planned (step deliveries have time-ordered ids).
pub(crate) async fn newest_of_run(
    conn: &mut store::Conn,
    run_id: &str,
) -> Result<Option<String>, StoreError> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM deliveries WHERE workflow_run_id = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(run_id)
    .fetch_optional(&mut *conn)
    .await?)
}

/// A delivery's stored status and its reason, as text (what a workflow step reads to decide
/// where its run goes). An error when there is no such delivery.
pub(crate) async fn status_of(
    conn: &mut store::Conn,
    id: &str,
) -> Result<(String, Option<String>), StoreError> {
    let row = sqlx::query("SELECT status, status_reason FROM deliveries WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *conn)
        .await?;
    Ok((row.get("status"), row.get("status_reason")))
}

/// An event as recorded: what a replay runs again.
#[derive(Clone, Debug, Serialize)]
pub struct RecordedEvent {
    pub id: String,
    pub tenant: String,
    pub notifier_key: String,
    /// The notifier build that planned it, `name@version#hash`.
    pub notifier_plugin: String,
    pub payload: String,
    pub created_at: String,
}

/// Which recorded events to read: those of any of `notifier_keys`, optionally of one tenant
/// and from `since` on, newest first, at most `limit`.
#[derive(Clone, Debug, Default)]
pub struct EventFilter {
    pub notifier_keys: Vec<String>,
    pub tenant: Option<String>,
    pub since: Option<chrono::DateTime<chrono::Utc>>,
    pub limit: usize,
}

/// The events `filter` selects, newest first (`created_at`, then id).
pub async fn recorded_events(
    db: &store::Db,
    filter: &EventFilter,
) -> Result<Vec<RecordedEvent>, StoreError> {
    if filter.notifier_keys.is_empty() || filter.limit == 0 {
        return Ok(Vec::new());
    }
    let backend = store::backend(db);
    let keys = store::placeholders(backend, filter.notifier_keys.len(), 1);
    let mut next = filter.notifier_keys.len() + 1;
    let mut sql = format!(
        "SELECT id, tenant, notifier_key, notifier_plugin, payload, created_at FROM events
         WHERE notifier_key IN ({keys})"
    );
    for (column, given) in [
        ("tenant =", filter.tenant.is_some()),
        ("created_at >=", filter.since.is_some()),
    ] {
        if given {
            sql.push_str(&format!(
                " AND {column} {}",
                store::placeholders(backend, 1, next)
            ));
            next += 1;
        }
    }
    sql.push_str(&format!(
        " ORDER BY created_at DESC, id DESC LIMIT {}",
        filter.limit
    ));
    let mut query = sqlx::query(&sql);
    for key in &filter.notifier_keys {
        query = query.bind(key.as_str());
    }
    if let Some(tenant) = &filter.tenant {
        query = query.bind(tenant.as_str());
    }
    if let Some(since) = filter.since {
        query = query.bind(store::time_text(since));
    }
    let rows = query.fetch_all(db).await?;
    Ok(rows
        .iter()
        .map(|r| RecordedEvent {
            id: r.get("id"),
            tenant: r.get("tenant"),
            notifier_key: r.get("notifier_key"),
            notifier_plugin: r.get("notifier_plugin"),
            payload: r.get("payload"),
            created_at: r.get("created_at"),
        })
        .collect())
}
