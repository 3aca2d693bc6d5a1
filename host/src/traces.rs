//! Traces and explanations.
//!
//! Every decision and transition is appended to `traces` (never updated), with the exact
//! plugin build that made it. `explain` reads them back for a delivery, notification or
//! event, together with the stored facts, as the ordered story of what happened and why.

use crate::store::Conn;
use crate::store::{self, StoreError};
use serde::Serialize;
use sqlx::Row;
use std::fmt;

/// Stable trace kinds (stored; do not rename).
pub mod kind {
    pub const EVENT_RECEIVED: &str = "event.received";
    pub const RECIPIENTS_PLANNED: &str = "recipients.planned";
    pub const NOTIFICATION_CREATED: &str = "notification.created";
    pub const DELIVERY_PLANNED: &str = "delivery.planned";
    pub const DELIVERY_DISPATCHED: &str = "delivery.dispatched";
    pub const DELIVERY_BUILT: &str = "delivery.built";
    pub const DELIVERY_RENDERED: &str = "delivery.rendered";
    pub const CONTENT_VALID: &str = "content.valid";
    pub const ATTEMPT: &str = "attempt";
    pub const INBOX_WRITTEN: &str = "inbox.written";
    pub const INBOX_READ: &str = "inbox.read";
    pub const DELIVERY_SUCCEEDED: &str = "delivery.succeeded";
    pub const DELIVERY_FAILED: &str = "delivery.failed";
    pub const DELIVERY_CANCELLED: &str = "delivery.cancelled";
    pub const DELIVERY_DEFERRED: &str = "delivery.deferred";
    pub const RETRY_SCHEDULED: &str = "retry.scheduled";
    pub const LEASE_LOST: &str = "lease.lost";
    pub const POLICY_CHECKED: &str = "policy.checked";
    pub const DELIVERY_SUPPRESSED: &str = "delivery.suppressed";
    /// A delivery joined a digest bucket (or was sent at once as its window's first item).
    pub const DELIVERY_HELD: &str = "delivery.held";
    /// A held delivery went out inside a digest.
    pub const DELIVERY_DIGESTED: &str = "delivery.digested";
    /// A bucket closed and its digest delivery was planned.
    pub const DIGEST_EMITTED: &str = "digest.emitted";
    /// A workflow run's or digest bucket's pinned build is no longer loaded; the build in
    /// force was used instead.
    pub const PIN_LOST: &str = "plugin.pin_lost";
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
    pub sent_by: Option<String>,
    pub provider_message_id: Option<String>,
    pub attempts: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// What `explain` was asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Subject {
    Event,
    Notification,
    Delivery,
}

#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Explanation {
    pub subject: Subject,
    pub id: String,
    pub tenant: String,
    pub event_id: String,
    pub notifier_key: String,
    pub notifier_plugin: String,
    pub deliveries: Vec<DeliveryRecord>,
    pub attempts: Vec<AttemptRecord>,
    pub timeline: Vec<TraceEntry>,
    /// The workflow runs in the story: a notification's or a step delivery's run, or every
    /// run of an event.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub workflows: Vec<crate::workflows::RunRecord>,
}

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("no event, notification, delivery or workflow run has the id `{0}`")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for ExplainError {
    fn from(e: sqlx::Error) -> Self {
        ExplainError::Store(e.into())
    }
}

const DELIVERY_COLUMNS: &str =
    "d.id, d.notification_id, d.event_id, d.tenant, n.recipient_id, d.channel, d.status,
    d.status_reason, d.status_detail, d.idempotency_key, d.planned_by, d.rendered_by, d.sent_by,
    d.provider_message_id, d.attempts, d.created_at, d.updated_at";

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

/// The tenant that owns an event, notification, delivery or workflow run, or `None` when no
/// such id exists. Callers acting for one tenant answer "not found" for another's ids.
pub async fn tenant_of(db: &store::Db, id: &str) -> Result<Option<String>, StoreError> {
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

/// An event as listed: what was triggered, and how much it fanned out.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EventListing {
    pub id: String,
    pub tenant: String,
    pub notifier: String,
    pub created_at: String,
    pub notifications: i64,
    pub deliveries: i64,
}

/// A tenant's newest events first; `limit` is clamped to 1..=[`MAX_PAGE`].
pub async fn recent_events(
    db: &store::Db,
    tenant: &str,
    limit: i64,
) -> Result<Vec<EventListing>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT e.id, e.tenant, e.notifier_key, e.created_at,
                (SELECT COUNT(*) FROM notifications n WHERE n.event_id = e.id) AS notifications,
                (SELECT COUNT(*) FROM deliveries d WHERE d.event_id = e.id) AS deliveries
         FROM events e WHERE e.tenant = $1 ORDER BY e.created_at DESC, e.id DESC LIMIT {}",
        limit.clamp(1, MAX_PAGE)
    ))
    .bind(tenant)
    .fetch_all(db)
    .await?;
    Ok(rows
        .iter()
        .map(|r| EventListing {
            id: r.get("id"),
            tenant: r.get("tenant"),
            notifier: r.get("notifier_key"),
            created_at: r.get("created_at"),
            notifications: r.get("notifications"),
            deliveries: r.get("deliveries"),
        })
        .collect())
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

/// Orders a story by when each step happened. Rows are appended in id order, but not always
/// in time order: a job's commit appends steps it took earlier (the send-time policy check, the
/// build, the render, the attempt) with the times they were taken. The sort is stable, so
/// entries of the same instant (one statement's rows share it) keep their append order, the
/// order they were taken in; a time that does not parse keeps the place of the entry before it.
fn in_time_order(timeline: &mut Vec<TraceEntry>) {
    let mut last = None;
    let mut keyed: Vec<(Option<chrono::DateTime<chrono::Utc>>, TraceEntry)> = timeline
        .drain(..)
        .map(|t| {
            if let Ok(at) = store::parse_time(&t.at) {
                last = Some(at);
            }
            (last, t)
        })
        .collect();
    keyed.sort_by_key(|(at, _)| *at);
    timeline.extend(keyed.into_iter().map(|(_, t)| t));
}

/// The ordered story of a delivery, notification or event.
pub async fn explain(db: &store::Db, id: &str) -> Result<Explanation, ExplainError> {
    // A workflow run is explained as its notification, whose story is the run's journey.
    let run_notification: Option<String> =
        sqlx::query_scalar("SELECT notification_id FROM workflow_runs WHERE id = $1")
            .bind(id)
            .fetch_optional(db)
            .await?;
    let (subject, id) = match run_notification {
        Some(n) => (Some(Subject::Notification), n),
        None => (None, id.to_string()),
    };
    let id = id.as_str();
    let (subject, event_id, notification_id) = if let Some(d) = delivery(db, id).await? {
        (Subject::Delivery, d.event_id, Some(d.notification_id))
    } else if let Some(r) = sqlx::query("SELECT event_id FROM notifications WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?
    {
        (
            subject.unwrap_or(Subject::Notification),
            r.get("event_id"),
            Some(id.to_string()),
        )
    } else if sqlx::query("SELECT id FROM events WHERE id = $1")
        .bind(id)
        .fetch_optional(db)
        .await?
        .is_some()
    {
        (Subject::Event, id.to_string(), None)
    } else {
        return Err(ExplainError::NotFound(id.to_string()));
    };
    let event =
        sqlx::query("SELECT tenant, notifier_key, notifier_plugin FROM events WHERE id = $1")
            .bind(&event_id)
            .fetch_one(db)
            .await?;

    let run_ids: Vec<String> = match &notification_id {
        Some(n) => {
            sqlx::query_scalar("SELECT id FROM workflow_runs WHERE notification_id = $1")
                .bind(n)
                .fetch_all(db)
                .await?
        }
        None => {
            sqlx::query_scalar("SELECT id FROM workflow_runs WHERE event_id = $1 ORDER BY id")
                .bind(&event_id)
                .fetch_all(db)
                .await?
        }
    };
    // Every delivery of a workflow's notification is one of its steps: a step delivery is
    // explained with the whole journey.
    let journey = subject == Subject::Delivery && !run_ids.is_empty();
    let mut deliveries = deliveries_of_event(db, &event_id).await?;
    deliveries.retain(|d| match subject {
        Subject::Delivery if journey => Some(&d.notification_id) == notification_id.as_ref(),
        Subject::Delivery => d.id == id,
        Subject::Notification => Some(&d.notification_id) == notification_id.as_ref(),
        Subject::Event => true,
    });
    let mut workflows = Vec::with_capacity(run_ids.len());
    for run in &run_ids {
        workflows.extend(crate::workflows::runs::record(db, run).await?);
    }

    // Event-level entries belong to every story; notification-level ones to their
    // notification's deliveries; delivery-level ones only to their delivery.
    let rows = sqlx::query(
        "SELECT at, kind, reason, detail, plugin, attempt, notification_id, delivery_id
         FROM traces WHERE event_id = $1 ORDER BY id",
    )
    .bind(&event_id)
    .fetch_all(db)
    .await?;
    let mut timeline: Vec<TraceEntry> = rows
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
        .filter(|t| match subject {
            Subject::Event => true,
            Subject::Notification => {
                t.notification_id.is_none() || t.notification_id == notification_id
            }
            Subject::Delivery if journey => {
                t.notification_id.is_none() || t.notification_id == notification_id
            }
            Subject::Delivery => {
                (t.notification_id.is_none() || t.notification_id == notification_id)
                    && (t.delivery_id.is_none() || t.delivery_id.as_deref() == Some(id))
            }
        })
        .collect();
    in_time_order(&mut timeline);

    let mut attempts = Vec::new();
    for d in &deliveries {
        let rows = sqlx::query(
            "SELECT delivery_id, attempt, adapter, started_at, duration_ms, outcome, error, provider_message_id
             FROM attempts WHERE delivery_id = $1 ORDER BY attempt",
        )
        .bind(&d.id)
        .fetch_all(db)
        .await?;
        attempts.extend(rows.iter().map(|r| AttemptRecord {
            delivery_id: r.get("delivery_id"),
            attempt: r.get("attempt"),
            adapter: r.get("adapter"),
            started_at: r.get("started_at"),
            duration_ms: r.get("duration_ms"),
            outcome: r.get("outcome"),
            error: r.get("error"),
            provider_message_id: r.get("provider_message_id"),
        }));
    }

    Ok(Explanation {
        subject,
        id: id.to_string(),
        tenant: event.get("tenant"),
        event_id,
        notifier_key: event.get("notifier_key"),
        notifier_plugin: event.get("notifier_plugin"),
        deliveries,
        attempts,
        timeline,
        workflows,
    })
}

impl fmt::Display for Explanation {
    /// The human form: what it is, where it ended, and the timeline that got it there.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let subject = match self.subject {
            Subject::Event => "event",
            Subject::Notification => "notification",
            Subject::Delivery => "delivery",
        };
        writeln!(f, "{subject} {}", self.id)?;
        writeln!(
            f,
            "  event {} (tenant {}), notifier {} planned by {}",
            self.event_id, self.tenant, self.notifier_key, self.notifier_plugin
        )?;
        for d in &self.deliveries {
            write!(
                f,
                "  delivery {} -> {} via {}: {}",
                d.id, d.recipient_id, d.channel, d.status
            )?;
            if let Some(r) = &d.status_reason {
                write!(f, " ({r})")?;
            }
            writeln!(f)?;
        }
        writeln!(f, "timeline:")?;
        for t in &self.timeline {
            write!(f, "  {}  {:<20}", t.at, t.kind)?;
            if let Some(a) = t.attempt {
                write!(f, " #{a}")?;
            }
            if let Some(r) = &t.reason {
                write!(f, " [{r}]")?;
            }
            match &t.detail {
                // A policy decision lists one rule after another: one line each reads better.
                Some(d) if t.kind == kind::POLICY_CHECKED => {
                    let mut rules = d.split("; ");
                    write!(f, " {}", rules.next().unwrap_or_default())?;
                    for rule in rules {
                        write!(f, "\n{:<50}{rule}", "")?;
                    }
                }
                Some(d) => write!(f, " {d}")?,
                None => {}
            }
            if let Some(p) = &t.plugin {
                write!(f, "  by {p}")?;
            }
            if (self.subject == Subject::Event || !self.workflows.is_empty())
                && let Some(d) = &t.delivery_id
            {
                write!(f, "  (delivery {})", &d[d.len().saturating_sub(12)..])?;
            }
            writeln!(f)?;
        }
        for run in &self.workflows {
            write!(f, "{run}")?;
        }
        Ok(())
    }
}
