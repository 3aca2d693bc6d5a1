//! How dispatch moves a delivery from one status to the next: the reads of deliveries waiting
//! to be sent, the batched updates of their standing and the attempt rows, and the single
//! status changes of a cancel, a deferral or a job belfry failed on.

use super::Status;
use crate::content::{Channel, Recipient};
use crate::store::{self, Conn, StoreError};
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::collections::HashMap;

/// A delivery waiting to be sent, as its job's run reads it. Severity and pins stay as
/// stored: their types belong to the layers above (`policy`, `plugins`), which parse them.
pub struct ToSend {
    pub id: String,
    pub tenant: String,
    pub event_id: String,
    pub notification_id: String,
    pub channel: Channel,
    pub idempotency_key: String,
    pub notifier_key: String,
    pub payload: String,
    pub recipient: Recipient,
    pub category: String,
    pub severity: String,
    pub notification_created_at: DateTime<Utc>,
    /// A fallback's in-app delivery, and when its inbox item was read.
    pub fallback_of: Option<(String, Option<DateTime<Utc>>)>,
    /// A digest delivery's bucket.
    pub digest_of: Option<String>,
    /// A workflow step's delivery: its run and step.
    pub workflow: Option<(String, String)>,
    /// The builds its workflow run or digest bucket began with, as stored (JSON).
    pub pins: Option<String>,
}

/// The deliveries of `delivery_ids` that are still waiting to be sent, by id; a row that
/// cannot be read is an error for its delivery alone.
pub async fn load_to_send(
    conn: &mut Conn,
    delivery_ids: &[&str],
) -> Result<HashMap<String, Result<ToSend, StoreError>>, StoreError> {
    let mut out = HashMap::with_capacity(delivery_ids.len());
    for chunk in delivery_ids.chunks(500) {
        let sql = format!(
            "SELECT d.id, d.tenant, d.event_id, d.notification_id, d.channel, d.idempotency_key,
                    e.notifier_key, e.payload, n.recipient, n.category, n.severity, n.created_at,
                    d.fallback_of, i.read_at, d.digest_of, d.workflow_run_id, d.workflow_step,
                    COALESCE(r.pins, b.pins) AS pins, d.status
             FROM deliveries d JOIN notifications n ON n.id = d.notification_id JOIN events e ON e.id = d.event_id
                  LEFT JOIN inbox_items i ON i.delivery_id = d.fallback_of
                  LEFT JOIN workflow_runs r ON r.id = d.workflow_run_id
                  LEFT JOIN digest_buckets b ON b.id = d.digest_of
             WHERE d.id IN ({})",
            store::placeholders(store::backend_of(conn), chunk.len(), 1)
        );
        let mut q = sqlx::query(&sql);
        for id in chunk {
            q = q.bind(*id);
        }
        // Whether each is still waiting is asked of the rows, not in the WHERE: a status
        // condition there let both planners walk `deliveries_status`, every pending delivery
        // (the whole backlog), instead of looking up these few ids.
        for r in q.fetch_all(&mut *conn).await? {
            if is_waiting(&r.get::<String, _>("status")) {
                out.insert(r.get("id"), to_send_from_row(&r));
            }
        }
    }
    Ok(out)
}

fn to_send_from_row(r: &sqlx::any::AnyRow) -> Result<ToSend, StoreError> {
    let delivery_id: String = r.get("id");
    let channel: String = r.get("channel");
    let recipient: String = r.get("recipient");
    Ok(ToSend {
        id: r.get("id"),
        tenant: r.get("tenant"),
        event_id: r.get("event_id"),
        notification_id: r.get("notification_id"),
        channel: channel
            .parse()
            .map_err(|e: crate::content::UnknownChannel| StoreError::Corrupt(e.to_string()))?,
        idempotency_key: r.get("idempotency_key"),
        notifier_key: r.get("notifier_key"),
        payload: r.get("payload"),
        recipient: serde_json::from_str(&recipient)
            .map_err(|e| StoreError::Corrupt(format!("recipient of {delivery_id}: {e}")))?,
        category: r.get("category"),
        severity: r.get("severity"),
        notification_created_at: store::parse_time(&r.get::<String, _>("created_at"))?,
        fallback_of: match r.get::<Option<String>, _>("fallback_of") {
            None => None,
            Some(id) => {
                let read_at = r
                    .get::<Option<String>, _>("read_at")
                    .map(|t| store::parse_time(&t))
                    .transpose()?;
                Some((id, read_at))
            }
        },
        digest_of: r.get("digest_of"),
        workflow: r
            .get::<Option<String>, _>("workflow_run_id")
            .zip(r.get::<Option<String>, _>("workflow_step")),
        pins: r.get("pins"),
    })
}

/// Whether a stored status still waits for its job (`pending` or `deferred`). A status this
/// build does not know waits for nothing.
pub fn is_waiting(status: &str) -> bool {
    Status::parse(status).is_ok_and(Status::is_waiting)
}

/// A delivery's identity and where it stands, for a single status change.
pub struct Standing {
    pub id: String,
    pub tenant: String,
    pub event_id: String,
    pub notification_id: String,
    /// As stored.
    pub status: String,
    pub workflow_run_id: Option<String>,
    pub workflow_step: Option<String>,
}

/// The delivery `id`, if there is one.
pub async fn standing(conn: &mut Conn, id: &str) -> Result<Option<Standing>, StoreError> {
    let row = sqlx::query(
        "SELECT id, tenant, event_id, notification_id, status, workflow_run_id, workflow_step
         FROM deliveries WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(row.map(|r| Standing {
        id: r.get("id"),
        tenant: r.get("tenant"),
        event_id: r.get("event_id"),
        notification_id: r.get("notification_id"),
        status: r.get("status"),
        workflow_run_id: r.get("workflow_run_id"),
        workflow_step: r.get("workflow_step"),
    }))
}

/// Sets one delivery's status, reason and detail (a cancel, a deferral, a job belfry failed
/// on); nothing else of it changes.
pub async fn set_status(
    tx: &mut Conn,
    id: &str,
    status: Status,
    reason: &str,
    detail: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE deliveries SET status = $1, status_reason = $2, status_detail = $3, updated_at = $4
         WHERE id = $5",
    )
    .bind(status.as_str())
    .bind(reason)
    .bind(detail)
    .bind(store::time_text(store::now()))
    .bind(id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

/// One call of a channel adapter for a delivery.
pub struct Attempt {
    /// The adapter build, `name@version#hash12`.
    pub adapter: String,
    pub started_at: DateTime<Utc>,
    pub duration_ms: i64,
    /// `succeeded`, `transient`, `rate_limited`, `permanent`, or the plugin failure's reason.
    pub outcome: &'static str,
    pub error: Option<String>,
    pub provider_message_id: Option<String>,
}

impl Attempt {
    /// The reason its trace gives.
    pub fn reason(&self) -> &'static str {
        match self.outcome {
            "succeeded" => "sent",
            "transient" => "transient_error",
            "rate_limited" => "rate_limited",
            "permanent" => "permanent_error",
            _ => "plugin_failed",
        }
    }
}

/// Rows per statement in the batch writes below: far under both backends' parameter limits.
const ROWS_PER_STATEMENT: usize = 200;

/// Writes attempts: (delivery id, attempt number, the attempt).
pub async fn insert_attempts(
    tx: &mut Conn,
    attempts: &[(&str, i64, &Attempt)],
) -> Result<(), StoreError> {
    for chunk in attempts.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "INSERT INTO attempts (id, delivery_id, attempt, adapter, started_at, duration_ms, outcome, error, provider_message_id)
             VALUES {}",
            store::value_rows(store::backend_of(tx), chunk.len(), 9, 1)
        );
        let mut q = sqlx::query(&sql);
        for (delivery_id, attempt, a) in chunk {
            q = q
                .bind(store::new_id())
                .bind(*delivery_id)
                .bind(*attempt)
                .bind(&a.adapter)
                .bind(store::time_text(a.started_at))
                .bind(a.duration_ms)
                .bind(a.outcome)
                .bind(&a.error)
                .bind(&a.provider_message_id);
        }
        q.execute(&mut *tx).await?;
    }
    for (_, _, a) in attempts {
        metrics::counter!(crate::metrics::ATTEMPTS, "outcome" => a.outcome).increment(1);
    }
    Ok(())
}

/// A delivery's new standing after one job run.
pub struct Update<'a> {
    pub id: &'a str,
    pub status: Status,
    pub reason: Option<&'static str>,
    pub detail: Option<String>,
    pub sent_by: Option<&'a str>,
    pub provider_message_id: Option<&'a str>,
    /// 1 when this run made an attempt.
    pub attempted: i64,
    pub content: Option<String>,
    pub rendered_by: Option<&'a str>,
    /// Whether it was sent now (caps count it from `sent_at`).
    pub sent: bool,
}

/// Every delivery's new standing in one statement (per chunk): an `UPDATE … FROM` a table of
/// values, which both SQLite (3.33+) and PostgreSQL take. `attempted` is cast because a
/// VALUES column of parameters is typed only by what the driver binds: as written, the
/// statement is valid (and its plan can be checked, tests/query_plans.rs) without it.
pub async fn update_all(tx: &mut Conn, updates: &[Update<'_>]) -> Result<(), StoreError> {
    let now = store::time_text(store::now());
    for chunk in updates.chunks(ROWS_PER_STATEMENT) {
        let sql = format!(
            "WITH v (id, status, status_reason, status_detail, sent_by, provider_message_id, attempted,
                     content, rendered_by, sent_at, updated_at) AS (VALUES {})
             UPDATE deliveries SET status = v.status, status_reason = v.status_reason,
                    status_detail = v.status_detail,
                    sent_by = COALESCE(v.sent_by, deliveries.sent_by),
                    provider_message_id = COALESCE(v.provider_message_id, deliveries.provider_message_id),
                    attempts = deliveries.attempts + CAST(v.attempted AS BIGINT), updated_at = v.updated_at,
                    content = COALESCE(v.content, deliveries.content),
                    rendered_by = COALESCE(v.rendered_by, deliveries.rendered_by),
                    sent_at = COALESCE(v.sent_at, deliveries.sent_at)
             FROM v WHERE deliveries.id = v.id",
            store::value_rows(store::backend_of(tx), chunk.len(), 11, 1)
        );
        let mut q = sqlx::query(&sql);
        for u in chunk {
            q = q
                .bind(u.id)
                .bind(u.status.as_str())
                .bind(u.reason)
                .bind(&u.detail)
                .bind(u.sent_by)
                .bind(u.provider_message_id)
                .bind(u.attempted)
                .bind(&u.content)
                .bind(u.rendered_by)
                .bind(u.sent.then_some(now.as_str()))
                .bind(&now);
        }
        q.execute(&mut *tx).await?;
    }
    Ok(())
}
