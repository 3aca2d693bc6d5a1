//! The append-only ledger of feedback events, and what each new event does to its delivery:
//! a trace, a fresh projection, and for a hard bounce, complaint or unsubscribe a suppression.

use super::projection;
use crate::content::{Channel, Recipient};
use crate::plugins::{FeedbackEvent, FeedbackKind};
use crate::policy::{self, SuppressionTarget};
use crate::store::{self, Conn, Db, StoreError};
use crate::traces::NewTrace;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;

#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReceivedEvent {
    pub provider_event_id: String,
    pub kind: FeedbackKind,
    /// The delivery it is about; none while it is an orphan (or a repeat of one).
    pub delivery_id: Option<String>,
    /// A repeat of an event already in the ledger: nothing was written for it.
    pub duplicate: bool,
}

/// The trace kinds this module appends to a delivery's explanation (defined with every other
/// kind in [`crate::traces::Kind`]).
pub mod kind {
    pub use crate::traces::kind::{FEEDBACK, SUPPRESSION_ADDED};
}

/// The delivery a provider message belongs to, as much of it as feedback needs.
#[derive(Clone, Debug)]
pub(crate) struct DeliveryRef {
    pub id: String,
    pub tenant: String,
    pub event_id: String,
    pub notification_id: String,
    pub channel: Channel,
    pub recipient: Recipient,
}

/// One row of the ledger.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LedgerEvent {
    pub id: String,
    pub adapter: String,
    pub provider_event_id: String,
    pub provider_message_id: String,
    pub kind: FeedbackKind,
    pub occurred_at: Option<String>,
    pub reason: Option<String>,
    pub received_at: String,
    pub receipt_id: String,
    /// None while the event is an orphan.
    pub delivery_id: Option<String>,
}

const EVENT_COLUMNS: &str = "SELECT id, adapter, provider_event_id, provider_message_id, kind, occurred_at, reason, received_at, receipt_id, delivery_id FROM feedback_events";

fn event_from_row(r: &sqlx::any::AnyRow) -> Result<LedgerEvent, StoreError> {
    let kind: String = r.get("kind");
    Ok(LedgerEvent {
        id: r.get("id"),
        adapter: r.get("adapter"),
        provider_event_id: r.get("provider_event_id"),
        provider_message_id: r.get("provider_message_id"),
        kind: FeedbackKind::parse(&kind)
            .ok_or_else(|| StoreError::Corrupt(format!("feedback kind `{kind}`")))?,
        occurred_at: r.get("occurred_at"),
        reason: r.get("reason"),
        received_at: r.get("received_at"),
        receipt_id: r.get("receipt_id"),
        delivery_id: r.get("delivery_id"),
    })
}

/// A delivery's events, in the order they happened (by the provider's time when it gave one).
pub async fn events_of(
    db: &Db,
    tenant: &str,
    delivery_id: &str,
) -> Result<Vec<LedgerEvent>, StoreError> {
    let rows = sqlx::query(&format!(
        "{EVENT_COLUMNS} WHERE tenant = $1 AND delivery_id = $2 ORDER BY COALESCE(occurred_at, received_at), id"
    ))
    .bind(tenant)
    .bind(delivery_id)
    .fetch_all(db)
    .await?;
    rows.iter().map(event_from_row).collect()
}

/// A tenant's events whose message no delivery claimed yet, oldest first.
pub async fn orphans(db: &Db, tenant: &str) -> Result<Vec<LedgerEvent>, StoreError> {
    let rows = sqlx::query(&format!(
        "{EVENT_COLUMNS} WHERE tenant = $1 AND delivery_id IS NULL ORDER BY received_at, id"
    ))
    .bind(tenant)
    .fetch_all(db)
    .await?;
    rows.iter().map(event_from_row).collect()
}

/// Appends the events of one webhook request; a repeated event id writes nothing.
pub(super) async fn record(
    conn: &mut Conn,
    tenant: &str,
    adapter: &str,
    receipt_id: &str,
    events: Vec<FeedbackEvent>,
    received_at: DateTime<Utc>,
) -> Result<Vec<ReceivedEvent>, StoreError> {
    let mut out = Vec::with_capacity(events.len());
    for mut e in events {
        e.provider_event_id = dedupe_key(&e);
        let id = store::new_id();
        let inserted = sqlx::query(
            "INSERT INTO feedback_events (id, tenant, adapter, provider_event_id, provider_message_id, kind, occurred_at, reason, received_at, receipt_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (tenant, adapter, provider_event_id) DO NOTHING",
        )
        .bind(&id)
        .bind(tenant)
        .bind(adapter)
        .bind(&e.provider_event_id)
        .bind(&e.provider_message_id)
        .bind(e.kind.as_str())
        .bind(e.occurred_at.map(store::time_text))
        .bind(&e.reason)
        .bind(store::time_text(received_at))
        .bind(receipt_id)
        .execute(&mut *conn)
        .await?
        .rows_affected()
            == 1;
        if !inserted {
            tracing::debug!(event = %e.provider_event_id, "feedback event repeated; nothing written");
            out.push(ReceivedEvent {
                provider_event_id: e.provider_event_id,
                kind: e.kind,
                delivery_id: None,
                duplicate: true,
            });
            continue;
        }
        lock_message(conn, tenant, adapter, &e.provider_message_id).await?;
        let delivery = find_delivery(conn, tenant, adapter, &e.provider_message_id).await?;
        if let Some(d) = &delivery {
            attach(conn, d, &[(id, e.clone())]).await?;
        } else {
            tracing::info!(event = %e.provider_event_id, message = %e.provider_message_id, "feedback event kept as an orphan");
        }
        out.push(ReceivedEvent {
            provider_event_id: e.provider_event_id,
            kind: e.kind,
            delivery_id: delivery.map(|d| d.id),
            duplicate: false,
        });
    }
    Ok(out)
}

/// The prefix of the key an event without a provider id is deduplicated by.
pub const CONTENT_KEY_PREFIX: &str = "content:";

/// The key the ledger deduplicates an event by: the provider's event id, or for an event
/// without one (empty or blank) a hash of what it says. An empty id is no id: used as a key,
/// it made every later id-less event of the adapter a "repeat" of the first (a hard bounce,
/// and its suppression, were lost that way). Two id-less events that say the same thing about
/// the same message at the same time are one event repeated; any difference keeps both.
fn dedupe_key(e: &FeedbackEvent) -> String {
    if !e.provider_event_id.trim().is_empty() {
        return e.provider_event_id.clone();
    }
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let occurred = e.occurred_at.map(store::time_text).unwrap_or_default();
    for part in [
        e.provider_message_id.as_str(),
        e.kind.as_str(),
        occurred.as_str(),
        e.reason.as_deref().unwrap_or(""),
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    format!("{CONTENT_KEY_PREFIX}{}", hex::encode(h.finalize()))
}

/// Claims the orphans of a batch of sends `(delivery, adapter reference, provider message id)`.
/// Every message is locked first (in one statement, in a fixed order, so two batches cannot
/// deadlock), then one look-up finds the few that have orphans, and only those are claimed.
pub(super) async fn claim_orphans_all(
    conn: &mut Conn,
    sends: &[(DeliveryRef, &str, &str)],
) -> Result<usize, StoreError> {
    if sends.is_empty() {
        return Ok(0);
    }
    let keys: Vec<(&str, &str, &str)> = sends
        .iter()
        .map(|(d, adapter, message)| (d.tenant.as_str(), adapter_name(adapter), *message))
        .collect();
    let mut claimed = 0;
    for chunk in keys.chunks(300) {
        if store::backend_of(conn) == store::Backend::Postgres {
            let mut names: Vec<String> = chunk
                .iter()
                .map(|(tenant, adapter, message)| message_lock(tenant, adapter, message))
                .collect();
            names.sort();
            names.dedup();
            let sql = format!(
                "SELECT pg_advisory_xact_lock(hashtextextended(k, 0))
                 FROM (SELECT column1 AS k FROM (VALUES {}) AS v ORDER BY 1) AS sorted",
                store::value_rows(store::Backend::Postgres, names.len(), 1, 1)
            );
            let mut q = sqlx::query(&sql);
            for name in &names {
                q = q.bind(name);
            }
            q.execute(&mut *conn).await?;
        }
        let sql = format!(
            "SELECT DISTINCT tenant, adapter, provider_message_id FROM feedback_events
             WHERE delivery_id IS NULL AND (tenant, adapter, provider_message_id) IN (VALUES {})",
            store::value_rows(store::backend_of(conn), chunk.len(), 3, 1)
        );
        let mut q = sqlx::query_as::<_, (String, String, String)>(&sql);
        for (tenant, adapter, message) in chunk {
            q = q.bind(*tenant).bind(*adapter).bind(*message);
        }
        let waiting = q.fetch_all(&mut *conn).await?;
        for (tenant, adapter, message) in &waiting {
            for (d, reference, m) in sends {
                if &d.tenant == tenant && adapter_name(reference) == adapter && m == message {
                    claimed += claim_orphans(conn, d, reference, m).await?;
                }
            }
        }
    }
    Ok(claimed)
}

/// Attaches the orphans of `provider_message_id` (sent by `adapter_reference`,
/// `name@version#hash`) to the delivery whose attempt is being committed.
pub(super) async fn claim_orphans(
    conn: &mut Conn,
    delivery: &DeliveryRef,
    adapter_reference: &str,
    provider_message_id: &str,
) -> Result<usize, StoreError> {
    let adapter = adapter_name(adapter_reference);
    lock_message(conn, &delivery.tenant, adapter, provider_message_id).await?;
    let rows = sqlx::query(&format!(
        "{EVENT_COLUMNS} WHERE tenant = $1 AND adapter = $2 AND provider_message_id = $3 AND delivery_id IS NULL"
    ))
    .bind(&delivery.tenant)
    .bind(adapter)
    .bind(provider_message_id)
    .fetch_all(&mut *conn)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut events = Vec::with_capacity(rows.len());
    for r in &rows {
        let e = event_from_row(r)?;
        let occurred_at = e
            .occurred_at
            .as_deref()
            .map(store::parse_time)
            .transpose()?;
        events.push((
            e.id,
            FeedbackEvent {
                kind: e.kind,
                provider_event_id: e.provider_event_id,
                provider_message_id: e.provider_message_id,
                occurred_at,
                reason: e.reason,
            },
        ));
    }
    tracing::info!(delivery = %delivery.id, orphans = events.len(), "orphan feedback reconciled");
    attach(conn, delivery, &events).await?;
    Ok(events.len())
}

/// Serializes the two writers that meet on one provider message: a webhook recording an
/// event, and the dispatch commit recording the attempt that sent the message. Without it, on
/// PostgreSQL each could miss the other's uncommitted row and the event would stay an orphan
/// for good. The second waits for the first's commit and then, reading committed data, sees
/// it. SQLite has a single writer, so the transactions are already serial there.
async fn lock_message(
    conn: &mut Conn,
    tenant: &str,
    adapter: &str,
    provider_message_id: &str,
) -> Result<(), StoreError> {
    if conn.backend_name() != "PostgreSQL" {
        return Ok(());
    }
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(message_lock(tenant, adapter, provider_message_id))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The advisory lock's name for one provider message.
fn message_lock(tenant: &str, adapter: &str, provider_message_id: &str) -> String {
    format!("feedback:{tenant}:{adapter}:{provider_message_id}")
}

fn adapter_name(reference: &str) -> &str {
    reference.split('@').next().unwrap_or(reference)
}

/// The delivery that `adapter` sent as `provider_message_id`, by the attempt that recorded it.
async fn find_delivery(
    conn: &mut Conn,
    tenant: &str,
    adapter: &str,
    provider_message_id: &str,
) -> Result<Option<DeliveryRef>, StoreError> {
    let rows = sqlx::query(
        "SELECT a.adapter, d.id, d.event_id, d.notification_id, d.channel, n.recipient
         FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
         JOIN notifications n ON n.id = d.notification_id
         WHERE a.provider_message_id = $1 AND d.tenant = $2
         ORDER BY a.started_at",
    )
    .bind(provider_message_id)
    .bind(tenant)
    .fetch_all(&mut *conn)
    .await?;
    for r in rows {
        if adapter_name(&r.get::<String, _>("adapter")) != adapter {
            continue;
        }
        return delivery_from_row(tenant, &r).map(Some);
    }
    Ok(None)
}

fn delivery_from_row(tenant: &str, r: &sqlx::any::AnyRow) -> Result<DeliveryRef, StoreError> {
    let channel: String = r.get("channel");
    let recipient: String = r.get("recipient");
    Ok(DeliveryRef {
        id: r.get("id"),
        tenant: tenant.to_string(),
        event_id: r.get("event_id"),
        notification_id: r.get("notification_id"),
        channel: channel
            .parse()
            .map_err(|_| StoreError::Corrupt(format!("delivery channel `{channel}`")))?,
        recipient: serde_json::from_str(&recipient)
            .map_err(|e| StoreError::Corrupt(format!("notification recipient: {e}")))?,
    })
}

/// Gives `events` (already in the ledger) to `delivery`: each is traced, the projection is
/// folded again from the whole ledger, and suppressing kinds suppress the address.
async fn attach(
    conn: &mut Conn,
    delivery: &DeliveryRef,
    events: &[(String, FeedbackEvent)],
) -> Result<(), StoreError> {
    let d = delivery;
    let mut rows = Vec::new();
    for (id, e) in events {
        sqlx::query("UPDATE feedback_events SET delivery_id = $1 WHERE id = $2")
            .bind(&d.id)
            .bind(id)
            .execute(&mut *conn)
            .await?;
        let at = e
            .occurred_at
            .map(|t| format!(" at {}", store::time_text(t)))
            .unwrap_or_default();
        let reason = e
            .reason
            .as_ref()
            .map(|r| format!(": {r}"))
            .unwrap_or_default();
        rows.push(NewTrace {
            tenant: &d.tenant,
            event_id: &d.event_id,
            notification_id: Some(&d.notification_id),
            delivery_id: Some(&d.id),
            kind: kind::FEEDBACK,
            reason: Some(e.kind.as_str()),
            detail: Some(format!(
                "provider event {} on message {}{at}{reason}",
                e.provider_event_id, e.provider_message_id
            )),
            ..Default::default()
        });
    }
    crate::endpoints::events::append_all(conn, rows).await?;
    projection::refresh(conn, &d.tenant, &d.id).await?;
    let mut enqueued = false;
    for (_, e) in events {
        suppress(conn, d, e).await?;
        // A hard bounce or complaint is the step's real outcome when the delivery was a
        // workflow step: its branch for it decides again while the run still waits after it.
        if let Some(outcome) = step_outcome(e.kind) {
            let moved = crate::workflows::runs::on_feedback(
                conn,
                &d.id,
                outcome,
                format!(
                    "provider event {} ({}) on message {} after the step was sent",
                    e.provider_event_id, e.kind, e.provider_message_id
                ),
            )
            .await?;
            enqueued |= moved.enqueued;
        }
        // Workflows waiting on this delivery's fate hear of it in the same transaction.
        let (_, moved) = crate::workflows::signals::signal_in(
            conn,
            &d.tenant,
            &d.recipient.id,
            &crate::workflows::signals::name::of_feedback(e.kind),
            &serde_json::json!({
                "notification_id": d.notification_id,
                "delivery_id": d.id,
                "kind": e.kind.as_str(),
                "provider_event_id": e.provider_event_id,
            }),
        )
        .await?;
        enqueued |= moved;
    }
    if enqueued {
        let backend = store::backend_of(conn);
        crate::jobs::announce(conn, backend).await?;
    }
    Ok(())
}

/// A hard bounce or complaint suppresses the address the delivery went to (email or phone);
/// an unsubscribe too. Channels without an address suppress the recipient on that channel.
async fn suppress(conn: &mut Conn, d: &DeliveryRef, e: &FeedbackEvent) -> Result<(), StoreError> {
    let Some(reason) = suppression_for(e.kind) else {
        return Ok(());
    };
    let address = match d.channel {
        Channel::Email => d.recipient.email.clone(),
        Channel::Sms => d.recipient.phone.clone(),
        _ => None,
    };
    let target = match address {
        Some(a) => SuppressionTarget::Address(a),
        None => SuppressionTarget::Recipient {
            id: d.recipient.id.clone(),
            channel: d.channel,
        },
    };
    let note = format!(
        "{} from provider event {} on delivery {}",
        e.kind, e.provider_event_id, d.id
    );
    let s = policy::add_suppression_in(conn, &d.tenant, &target, reason, Some(&note), None)
        .await
        .map_err(|e| match e {
            policy::PolicyError::Store(s) => s,
            other => StoreError::Corrupt(format!("automatic suppression: {other}")),
        })?;
    crate::endpoints::events::append(
        conn,
        NewTrace {
            tenant: &d.tenant,
            event_id: &d.event_id,
            notification_id: Some(&d.notification_id),
            delivery_id: Some(&d.id),
            kind: kind::SUPPRESSION_ADDED,
            reason: Some(reason.as_str()),
            detail: Some(format!("{} ({note})", s.describe())),
            ..Default::default()
        },
    )
    .await
}

/// The suppression a kind of event adds for the address it was about, if any.
fn suppression_for(kind: FeedbackKind) -> Option<policy::SuppressionReason> {
    use policy::SuppressionReason as R;
    match kind {
        FeedbackKind::BouncedHard => Some(R::Bounce),
        FeedbackKind::Complained => Some(R::Complaint),
        FeedbackKind::Unsubscribed => Some(R::Unsubscribe),
        _ => None,
    }
}

/// The outcome a provider's late word on a delivered workflow step amounts to: a hard bounce
/// or a complaint. Every other kind leaves the step's outcome as it was. (Feedback knows
/// workflows, not the other way round.)
fn step_outcome(kind: FeedbackKind) -> Option<crate::workflows::StepOutcome> {
    use crate::workflows::StepOutcome;
    match kind {
        FeedbackKind::BouncedHard => Some(StepOutcome::Bounced),
        FeedbackKind::Complained => Some(StepOutcome::Complained),
        _ => None,
    }
}
