//! Digest buckets: the held deliveries of one recipient, channel, rule, grouping value and
//! window, emitted once as a single digest delivery.
//!
//! - A held delivery [`join`]s the open bucket for its key inside the trigger's transaction,
//!   so it joins exactly once or not at all. The first join of a bucket also writes the
//!   bucket's `digest_emit` job, due when the window ends.
//! - [`emit`] closes a due bucket: one new event, notification and digest delivery (with its
//!   `deliver` job), every held member becomes `digested`. The conditional `open → emitted`
//!   update is the guard: of any number of concurrent or repeated emissions exactly one does
//!   the work, and the others return what it made.
//! - The digest's content is made at send time by the executor from the members (see
//!   [`items_of`]), so a renderer failure is retried and explained like any other.
//!
//! Rows are locked in one order (bucket, then deliveries) by both joins and emissions, so a
//! join that loses the race to an emission opens the next bucket instead of joining a closed
//! one.

use super::rules::{DigestRule, GroupBy};
use crate::content::{Channel, Recipient};
use crate::deliveries::{self, NewDelivery, NewEvent, NewNotification, Status};
use crate::jobs::{self as queue, NewJob};
use crate::policy::Severity;
use crate::store::{self, Conn, Db, StoreError};
use crate::traces::{NewTrace, kind};
use crate::vocabulary::stored_vocabulary;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

stored_vocabulary! {
    /// Where a bucket stands (stored; do not rename).
    BucketStatus ("digest bucket status") {
        Open => "open",
        Emitted => "emitted",
        /// Closed with nothing to send: only a first-now item came in its window.
        Empty => "empty",
    }
}

/// The [`BucketStatus`]es as plain strings.
pub mod status {
    use super::BucketStatus;

    pub const OPEN: &str = BucketStatus::Open.as_str();
    pub const EMITTED: &str = BucketStatus::Emitted.as_str();
    pub const EMPTY: &str = BucketStatus::Empty.as_str();
}

/// Why a bucket closed (stored; do not rename).
pub mod closed_by {
    pub const WINDOW_END: &str = "window_end";
    pub const MAX_ITEMS: &str = "max_items";
}

stored_vocabulary! {
    /// Delivery status reasons of held and digested deliveries (stored; do not rename).
    Reason ("digest reason") {
        HeldForDigest => "held_for_digest",
        /// Quiet hours or a cap would have held it back; it waits in the digest instead.
        FoldedIntoDigest => "folded_into_digest",
        Digested => "digested",
        NoDigestRule => "no_digest_rule",
        /// The first item of a first-now rule's window, sent at once.
        DigestFirstNow => "digest_first_now",
        /// The recipient chose instant delivery for the category: not held.
        CadenceInstant => "cadence_instant",
    }
}

/// The [`Reason`]s as plain strings, for callers that store or compare them as text.
pub mod reason {
    use super::Reason;

    pub const HELD_FOR_DIGEST: &str = Reason::HeldForDigest.as_str();
    pub const FOLDED_INTO_DIGEST: &str = Reason::FoldedIntoDigest.as_str();
    pub const DIGESTED: &str = Reason::Digested.as_str();
    pub const NO_DIGEST_RULE: &str = Reason::NoDigestRule.as_str();
    pub const DIGEST_FIRST_NOW: &str = Reason::DigestFirstNow.as_str();
    pub const CADENCE_INSTANT: &str = Reason::CadenceInstant.as_str();
}

/// How many of the oldest, and of the newest, items a digest shows.
pub const SHOWN_EACH_END: usize = 3;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Bucket {
    pub id: String,
    pub tenant: String,
    pub rule_id: String,
    pub rule_key: String,
    pub rule_version: i64,
    pub recipient_id: String,
    pub channel: String,
    pub group_value: String,
    pub window_start: String,
    pub window_end: String,
    pub status: String,
    /// Held members so far (a first-now item is not one).
    pub items: i64,
    pub first_delivery_id: Option<String>,
    pub digest_delivery_id: Option<String>,
    pub closed_by: Option<String>,
    pub created_at: String,
    pub closed_at: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum BucketError {
    #[error("no digest bucket has the id `{0}`")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for BucketError {
    fn from(e: sqlx::Error) -> Self {
        BucketError::Store(e.into())
    }
}

/// What an emission did.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Emission {
    /// This call emitted the bucket.
    Emitted {
        bucket_id: String,
        digest_delivery_id: String,
        items: i64,
    },
    /// An earlier emission did; `digest_delivery_id` is what it made (`None` when the bucket
    /// closed empty).
    AlreadyEmitted {
        bucket_id: String,
        status: String,
        digest_delivery_id: Option<String>,
    },
    /// Closed with nothing to send (only a first-now item came).
    Empty { bucket_id: String },
    /// The window has not ended and the bucket is not full: nothing changed.
    NotDue {
        bucket_id: String,
        window_end: String,
    },
}

/// The grouping value of a held delivery under `group_by`; empty when it has none.
pub fn group_value(
    group_by: GroupBy,
    notifier_key: &str,
    category: &str,
    digest_key: Option<&str>,
) -> String {
    match group_by {
        GroupBy::Notifier => notifier_key.to_string(),
        GroupBy::Category => category.to_string(),
        GroupBy::DigestKey => digest_key.unwrap_or_default().to_string(),
    }
}

/// A held delivery about to join its bucket.
pub(crate) struct Join<'a> {
    pub tenant: &'a str,
    pub rule: &'a DigestRule,
    pub recipient_id: &'a str,
    pub channel: Channel,
    pub group_value: &'a str,
    /// The rule's window, or the recipient's cadence in its place.
    pub window: &'a super::Window,
    /// When the delivery would be sent: its window is the one containing this time.
    pub at: DateTime<Utc>,
    pub delivery_id: &'a str,
    /// The builds a bucket opened now renders and sends its digest with (JSON of
    /// [`crate::plugins::pins::Pins`]).
    pub pins: Option<&'a str>,
}

/// Where a joining delivery went.
pub(crate) struct Joined {
    pub bucket_id: String,
    pub window_end: DateTime<Utc>,
    /// The first item of a first-now rule's window: send it at once, it is not a member.
    pub first_now: bool,
    /// Members after this one joined.
    pub items: i64,
    /// The bucket reached the rule's max items: emit it once the member is written.
    pub full: bool,
}

/// Joins the open bucket for `j` (opening it, with its emission job, if there is none),
/// inside the caller's transaction. The caller writes the delivery with the returned bucket
/// id, then calls [`emit_in`] if the bucket is full.
pub(crate) async fn join(conn: &mut Conn, j: &Join<'_>) -> Result<Joined, StoreError> {
    let (start, end) = j.window.bucket_at(j.at);
    let (start_text, end_text) = (store::time_text(start), store::time_text(end));
    let now = store::time_text(store::now());
    // Two tries are enough: a retry happens only when an emission closed the bucket between
    // the insert and the update, and the next insert then opens a fresh one.
    for _ in 0..3 {
        let id = store::new_id();
        let opened = sqlx::query(&format!(
            "INSERT INTO digest_buckets (id, tenant, rule_id, recipient_id, channel, group_value,
                                         window_start, window_end, status, items, created_at, pins)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, '{open}', 0, $9, $10)
             ON CONFLICT (tenant, rule_id, recipient_id, channel, group_value, window_start)
                 WHERE status = '{open}' DO NOTHING",
            open = BucketStatus::Open
        ))
        .bind(&id)
        .bind(j.tenant)
        .bind(&j.rule.id)
        .bind(j.recipient_id)
        .bind(j.channel.as_str())
        .bind(j.group_value)
        .bind(&start_text)
        .bind(&end_text)
        .bind(&now)
        .bind(j.pins)
        .execute(&mut *conn)
        .await?;
        if opened.rows_affected() == 1 {
            queue::enqueue(
                conn,
                NewJob {
                    kind: queue::job_kind::DIGEST_EMIT,
                    subject_id: &id,
                    tenant: j.tenant,
                    run_at: end,
                    deferred: Some("digest_window"),
                },
            )
            .await?;
        }
        // The update locks the bucket row; an emission that closed it first makes it miss.
        let row = sqlx::query(&format!(
            "UPDATE digest_buckets
             SET first_delivery_id = CASE WHEN $1 AND first_delivery_id IS NULL THEN $2
                                          ELSE first_delivery_id END,
                 items = items + CASE WHEN $1 AND first_delivery_id IS NULL THEN 0 ELSE 1 END
             WHERE tenant = $3 AND rule_id = $4 AND recipient_id = $5 AND channel = $6
                   AND group_value = $7 AND window_start = $8 AND status = '{open}'
             RETURNING id, items, first_delivery_id",
            open = BucketStatus::Open
        ))
        .bind(j.rule.spec.first_now)
        .bind(j.delivery_id)
        .bind(j.tenant)
        .bind(&j.rule.id)
        .bind(j.recipient_id)
        .bind(j.channel.as_str())
        .bind(j.group_value)
        .bind(&start_text)
        .fetch_optional(&mut *conn)
        .await?;
        let Some(row) = row else { continue };
        let items: i64 = row.get("items");
        let first_now =
            row.get::<Option<String>, _>("first_delivery_id").as_deref() == Some(j.delivery_id);
        return Ok(Joined {
            bucket_id: row.get("id"),
            window_end: end,
            first_now,
            items,
            full: !first_now && j.rule.spec.max_items.is_some_and(|m| items >= m),
        });
    }
    Err(StoreError::Corrupt(format!(
        "digest bucket of rule {} for {} kept closing while a delivery joined it",
        j.rule.spec.key, j.recipient_id
    )))
}

const COLUMNS: &str = "b.id, b.tenant, b.rule_id, r.rule_key, r.version, b.recipient_id, b.channel,
    b.group_value, b.window_start, b.window_end, b.status, b.items, b.first_delivery_id,
    b.digest_delivery_id, b.closed_by, b.created_at, b.closed_at, r.max_items";

fn from_row(r: &sqlx::any::AnyRow) -> Bucket {
    Bucket {
        id: r.get("id"),
        tenant: r.get("tenant"),
        rule_id: r.get("rule_id"),
        rule_key: r.get("rule_key"),
        rule_version: r.get("version"),
        recipient_id: r.get("recipient_id"),
        channel: r.get("channel"),
        group_value: r.get("group_value"),
        window_start: r.get("window_start"),
        window_end: r.get("window_end"),
        status: r.get("status"),
        items: r.get("items"),
        first_delivery_id: r.get("first_delivery_id"),
        digest_delivery_id: r.get("digest_delivery_id"),
        closed_by: r.get("closed_by"),
        created_at: r.get("created_at"),
        closed_at: r.get("closed_at"),
    }
}

async fn load(conn: &mut Conn, id: &str) -> Result<(Bucket, Option<i64>), BucketError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM digest_buckets b JOIN digest_rules r ON r.id = b.rule_id WHERE b.id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    .ok_or_else(|| BucketError::NotFound(id.to_string()))?;
    Ok((from_row(&row), row.get("max_items")))
}

/// One bucket of `tenant`.
pub async fn get(db: &Db, tenant: &str, id: &str) -> Result<Bucket, BucketError> {
    let mut conn = db.acquire().await?;
    match load(&mut conn, id).await? {
        (b, _) if b.tenant == tenant => Ok(b),
        // Another tenant's bucket does not exist for this one.
        _ => Err(BucketError::NotFound(id.to_string())),
    }
}

/// Exact-match filters for [`list`]; `None` filters nothing.
#[derive(Clone, Debug, Default)]
pub struct BucketFilter {
    pub recipient_id: Option<String>,
    pub status: Option<String>,
}

/// The tenant's buckets that pass `filter`, newest first, at most `limit`.
pub async fn list(
    db: &Db,
    tenant: &str,
    filter: &BucketFilter,
    limit: i64,
) -> Result<Vec<Bucket>, BucketError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM digest_buckets b JOIN digest_rules r ON r.id = b.rule_id
         WHERE b.tenant = $1 AND ($2 IS NULL OR b.recipient_id = $2) AND ($3 IS NULL OR b.status = $3)
         ORDER BY b.created_at DESC, b.id DESC LIMIT $4"
    ))
    .bind(tenant)
    .bind(filter.recipient_id.as_deref())
    .bind(filter.status.as_deref())
    .bind(limit)
    .fetch_all(db)
    .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// Emits bucket `id` of `tenant` if it is due, in its own transaction. See [`emit_in`].
#[tracing::instrument(skip(db))]
pub async fn emit(db: &Db, tenant: &str, id: &str) -> Result<Emission, BucketError> {
    let mut tx = db.begin().await?;
    // Write first: on SQLite a transaction that reads before it writes cannot upgrade its
    // lock while another writer waits (SQLITE_BUSY at once); on PostgreSQL this takes the
    // bucket's row lock, so concurrent emissions queue here.
    sqlx::query("UPDATE digest_buckets SET items = items WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    let (bucket, _) = load(&mut tx, id).await?;
    if bucket.tenant != tenant {
        return Err(BucketError::NotFound(id.to_string()));
    }
    let emission = emit_in(&mut tx, id, store::now(), None).await?;
    if matches!(emission, Emission::Emitted { .. }) {
        queue::announce(&mut tx, store::backend(db)).await?;
    }
    tx.commit().await?;
    Ok(emission)
}

/// One held member, as a digest shows it.
struct Member {
    delivery_id: String,
    notification_id: String,
    event_id: String,
    notifier_key: String,
    notifier_plugin: String,
    category: String,
    severity: Severity,
    recipient: String,
}

/// Emits bucket `id` inside the caller's transaction if it is due at `now` (its window has
/// ended or it is full), or unconditionally when `closing` names why it closes early. Exactly
/// one of any number of emissions of a bucket does the work; the rest return what it made.
pub(crate) async fn emit_in(
    conn: &mut Conn,
    id: &str,
    now: DateTime<Utc>,
    closing: Option<&'static str>,
) -> Result<Emission, BucketError> {
    let (bucket, max_items) = load(conn, id).await?;
    if bucket.status != BucketStatus::Open.as_str() {
        return Ok(Emission::AlreadyEmitted {
            bucket_id: bucket.id,
            status: bucket.status,
            digest_delivery_id: bucket.digest_delivery_id,
        });
    }
    let window_end = store::parse_time(&bucket.window_end)?;
    let full = max_items.is_some_and(|m| bucket.items >= m);
    let closed_by = match closing {
        Some(why) => why,
        None if now >= window_end => closed_by::WINDOW_END,
        None if full => closed_by::MAX_ITEMS,
        None => {
            return Ok(Emission::NotDue {
                bucket_id: bucket.id,
                window_end: bucket.window_end,
            });
        }
    };
    let now_text = store::time_text(now);
    // The guard: only the emission that moves the bucket out of `open` goes on.
    let closed = sqlx::query(&format!(
        "UPDATE digest_buckets SET status = '{emitted}', closed_by = $1, closed_at = $2
         WHERE id = $3 AND status = '{open}'",
        emitted = BucketStatus::Emitted,
        open = BucketStatus::Open
    ))
    .bind(closed_by)
    .bind(&now_text)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    if closed.rows_affected() == 0 {
        let (b, _) = load(conn, id).await?;
        return Ok(Emission::AlreadyEmitted {
            bucket_id: b.id,
            status: b.status,
            digest_delivery_id: b.digest_delivery_id,
        });
    }
    // An explicit or early emission leaves the window's job behind; a job that is running
    // right now (this emission's own) is finished by its worker.
    queue::remove(conn, queue::job_kind::DIGEST_EMIT, id).await?;

    let members = members(conn, id).await?;
    let Some(first) = members.first() else {
        sqlx::query("UPDATE digest_buckets SET status = $1 WHERE id = $2")
            .bind(BucketStatus::Empty.as_str())
            .bind(id)
            .execute(&mut *conn)
            .await?;
        tracing::info!(bucket = %id, "digest bucket closed empty");
        return Ok(Emission::Empty {
            bucket_id: id.to_string(),
        });
    };
    let digest = plan_digest(conn, &bucket, first, &members, now).await?;
    mark_digested(conn, &bucket, &members, &digest, closed_by, &now_text).await?;
    tracing::info!(bucket = %id, digest = %digest.delivery_id, items = members.len(), closed_by, "digest emitted");
    Ok(Emission::Emitted {
        bucket_id: id.to_string(),
        digest_delivery_id: digest.delivery_id,
        items: members.len() as i64,
    })
}

/// The rows of a digest: a notification of its own, with its event and its delivery.
struct Digest {
    event_id: String,
    notification_id: String,
    delivery_id: String,
}

/// Writes the digest of an emitted bucket, and the job that sends it now. Its event records
/// which bucket it came from, and it takes the first member's notifier key and category,
/// which preferences and explanations go by (one rule groups one notifier or category in the
/// common case).
async fn plan_digest(
    conn: &mut Conn,
    bucket: &Bucket,
    first: &Member,
    members: &[Member],
    now: DateTime<Utc>,
) -> Result<Digest, BucketError> {
    let (id, now_text) = (&bucket.id, store::time_text(now));
    let last = members.last().unwrap_or(first);
    let severity = members.iter().map(|m| m.severity).max().unwrap_or_default();
    let digest = Digest {
        event_id: store::new_id(),
        notification_id: store::new_id(),
        delivery_id: store::new_id(),
    };
    let payload = serde_json::json!({
        "digest_bucket": id,
        "rule": bucket.rule_key,
        "rule_version": bucket.rule_version,
        "items": members.len(),
    })
    .to_string();
    let inserted = deliveries::insert_event(
        conn,
        &NewEvent {
            id: &digest.event_id,
            tenant: &bucket.tenant,
            notifier_key: &first.notifier_key,
            notifier_plugin: &first.notifier_plugin,
            payload: &payload,
            idempotency_key: None,
            created_at: &now_text,
        },
    )
    .await?;
    if !inserted {
        // A fresh id and no idempotency key: only a corrupt table can refuse it.
        let why = format!("digest event {} exists already", digest.event_id);
        return Err(StoreError::Corrupt(why).into());
    }
    deliveries::insert_notification(
        conn,
        &NewNotification {
            id: &digest.notification_id,
            event_id: &digest.event_id,
            tenant: &bucket.tenant,
            recipient_id: &bucket.recipient_id,
            // The newest member's copy: the freshest address the application gave.
            recipient: &last.recipient,
            category: &first.category,
            severity: severity.as_str(),
            created_at: &now_text,
        },
    )
    .await?;
    let planned_by = format!(
        "belfry digests (rule {} v{})",
        bucket.rule_key, bucket.rule_version
    );
    deliveries::insert_delivery(
        conn,
        &NewDelivery {
            id: &digest.delivery_id,
            notification_id: &digest.notification_id,
            event_id: &digest.event_id,
            tenant: &bucket.tenant,
            channel: &bucket.channel,
            status: Status::Pending,
            planned_by: &planned_by,
            created_at: &now_text,
            digest_of: Some(id),
            ..Default::default()
        },
    )
    .await?;
    queue::enqueue(
        conn,
        NewJob {
            kind: queue::job_kind::DELIVER,
            subject_id: &digest.delivery_id,
            tenant: &bucket.tenant,
            run_at: now,
            deferred: None,
        },
    )
    .await?;
    Ok(digest)
}

/// Links the bucket to its digest, moves its held members to `digested`, and traces both.
async fn mark_digested(
    conn: &mut Conn,
    bucket: &Bucket,
    members: &[Member],
    digest: &Digest,
    closed_by: &str,
    now_text: &str,
) -> Result<(), BucketError> {
    let (id, delivery_id) = (&bucket.id, &digest.delivery_id);
    sqlx::query("UPDATE digest_buckets SET digest_delivery_id = $1 WHERE id = $2")
        .bind(delivery_id)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let detail = format!("into digest delivery {delivery_id} (bucket {id})");
    deliveries::mark_bucket_digested(conn, id, Reason::Digested.as_str(), &detail, now_text)
        .await?;

    let rule = format!("{} v{}", bucket.rule_key, bucket.rule_version);
    let window = format!("[{}, {})", bucket.window_start, bucket.window_end);
    let group = if bucket.group_value.is_empty() {
        String::new()
    } else {
        format!(", group {}", bucket.group_value)
    };
    let mut story: Vec<NewTrace> = members
        .iter()
        .map(|m| NewTrace {
            tenant: &bucket.tenant,
            event_id: &m.event_id,
            notification_id: Some(&m.notification_id),
            delivery_id: Some(&m.delivery_id),
            kind: kind::DELIVERY_DIGESTED,
            reason: Some(Reason::Digested.as_str()),
            detail: Some(detail.clone()),
            ..Default::default()
        })
        .collect();
    story.push(NewTrace {
        tenant: &bucket.tenant,
        event_id: &digest.event_id,
        notification_id: Some(&digest.notification_id),
        delivery_id: Some(delivery_id),
        kind: kind::DIGEST_EMITTED,
        reason: Some(closed_by),
        detail: Some(format!(
            "{} item(s) of bucket {id} for recipient {} on {} (rule {rule}{group}, window {window}), closed by {}",
            members.len(),
            bucket.recipient_id,
            bucket.channel,
            closed_by.replace('_', " ")
        )),
        ..Default::default()
    });
    crate::endpoints::events::append_all(conn, story).await?;
    Ok(())
}

/// The held members of a bucket, oldest first.
async fn members(conn: &mut Conn, bucket_id: &str) -> Result<Vec<Member>, StoreError> {
    let rows = sqlx::query(
        "SELECT d.id, d.notification_id, d.event_id, e.notifier_key, e.notifier_plugin,
                n.category, n.severity, n.recipient
         FROM deliveries d JOIN notifications n ON n.id = d.notification_id JOIN events e ON e.id = d.event_id
         WHERE d.digest_bucket_id = $1 AND d.status = $2
         ORDER BY d.created_at, d.id",
    )
    .bind(bucket_id)
    .bind(Status::Held.as_str())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Member {
                delivery_id: r.get("id"),
                notification_id: r.get("notification_id"),
                event_id: r.get("event_id"),
                notifier_key: r.get("notifier_key"),
                notifier_plugin: r.get("notifier_plugin"),
                category: r.get("category"),
                severity: r.get::<String, _>("severity").parse().map_err(
                    |e: crate::policy::UnknownSeverity| StoreError::Corrupt(e.to_string()),
                )?,
                recipient: r.get("recipient"),
            })
        })
        .collect()
}

/// One digested item, as the executor renders it into the digest.
pub(crate) struct Item {
    pub delivery_id: String,
    pub notifier_key: String,
    pub category: String,
    pub digest_key: Option<String>,
    pub payload: String,
    pub recipient: Recipient,
    pub created_at: String,
}

/// What the executor needs to render a digest delivery: the bucket, its item count, the
/// oldest [`SHOWN_EACH_END`] items and the newest ones after those.
pub(crate) struct DigestItems {
    pub bucket: Bucket,
    pub count: i64,
    pub first: Vec<Item>,
    pub last: Vec<Item>,
}

/// The items of the digest delivered for bucket `bucket_id`.
pub(crate) async fn items_of(conn: &mut Conn, bucket_id: &str) -> Result<DigestItems, BucketError> {
    let (bucket, _) = load(conn, bucket_id).await?;
    let count: i64 = sqlx::query(
        "SELECT COUNT(*) AS n FROM deliveries WHERE digest_bucket_id = $1 AND status = $2",
    )
    .bind(bucket_id)
    .bind(Status::Digested.as_str())
    .fetch_one(&mut *conn)
    .await?
    .get("n");
    let each = SHOWN_EACH_END as i64;
    let newest = (count - each).clamp(0, each);
    let select = |order: &str| {
        format!(
            "SELECT d.id, e.notifier_key, n.category, d.digest_key, e.payload, n.recipient, d.created_at
             FROM deliveries d JOIN notifications n ON n.id = d.notification_id JOIN events e ON e.id = d.event_id
             WHERE d.digest_bucket_id = $1 AND d.status = '{digested}'
             ORDER BY d.created_at {order}, d.id {order} LIMIT $2",
            digested = Status::Digested
        )
    };
    let mut out = Vec::new();
    for (order, limit) in [("ASC", each), ("DESC", newest)] {
        let rows = sqlx::query(&select(order))
            .bind(bucket_id)
            .bind(limit)
            .fetch_all(&mut *conn)
            .await?;
        let mut items = rows
            .iter()
            .map(|r| {
                let recipient: String = r.get("recipient");
                Ok(Item {
                    delivery_id: r.get("id"),
                    notifier_key: r.get("notifier_key"),
                    category: r.get("category"),
                    digest_key: r.get("digest_key"),
                    payload: r.get("payload"),
                    recipient: serde_json::from_str(&recipient)
                        .map_err(|e| StoreError::Corrupt(format!("recipient: {e}")))?,
                    created_at: r.get("created_at"),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        items.sort_by(|a, b| (&a.created_at, &a.delivery_id).cmp(&(&b.created_at, &b.delivery_id)));
        out.push(items);
    }
    let last = out.pop().unwrap_or_default();
    let first = out.pop().unwrap_or_default();
    Ok(DigestItems {
        bucket,
        count,
        first,
        last,
    })
}

/// Takes a held delivery out of its bucket (a cancel), only while the bucket is open: once
/// emitted, the delivery went out inside the digest. `false` when it was not open.
pub(crate) async fn leave(conn: &mut Conn, delivery_id: &str) -> Result<bool, StoreError> {
    let left = sqlx::query(&format!(
        "UPDATE digest_buckets SET items = items - 1
         WHERE id = (SELECT digest_bucket_id FROM deliveries WHERE id = $1) AND status = '{open}'",
        open = BucketStatus::Open
    ))
    .bind(delivery_id)
    .execute(&mut *conn)
    .await?;
    Ok(left.rows_affected() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bucket_status_round_trips_and_keeps_its_stored_string() {
        crate::vocabulary::check_round_trips(BucketStatus::ALL);
        let stored = [
            (status::OPEN, "open"),
            (status::EMITTED, "emitted"),
            (status::EMPTY, "empty"),
        ];
        assert_eq!(stored.len(), BucketStatus::ALL.len());
        for (code, text) in stored {
            assert_eq!(code, text);
        }
        assert!(BucketStatus::parse("closed").is_err());
    }

    #[test]
    fn every_reason_round_trips_and_keeps_its_stored_string() {
        crate::vocabulary::check_round_trips(Reason::ALL);
        let stored = [
            (reason::HELD_FOR_DIGEST, "held_for_digest"),
            (reason::FOLDED_INTO_DIGEST, "folded_into_digest"),
            (reason::DIGESTED, "digested"),
            (reason::NO_DIGEST_RULE, "no_digest_rule"),
            (reason::DIGEST_FIRST_NOW, "digest_first_now"),
            (reason::CADENCE_INSTANT, "cadence_instant"),
        ];
        assert_eq!(stored.len(), Reason::ALL.len());
        for (code, text) in stored {
            assert_eq!(code, text);
        }
        assert!(Reason::parse("held").is_err());
    }
}
