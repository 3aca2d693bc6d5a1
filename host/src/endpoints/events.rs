//! The lifecycle events endpoints subscribe to, and how they are published.
//!
//! An event is never made up on the side: it is one of the traces `explain` shows, published
//! by [`append_all`] in the transaction that appends it. So an application hears of exactly
//! what the engine recorded, once per trace, and only if that transaction commits.

use super::EndpointError;
use super::send::MessageStatus;
use crate::jobs as queue;
use crate::store::{self, Conn, StoreError};
use crate::traces::{self, Kind, NewTrace};
use chrono::{DateTime, Utc};
use sqlx::Row;

/// Event types (sent as `type`; do not rename).
pub mod event_type {
    /// The adapter accepted the send (or the inbox item was written).
    pub const DELIVERY_SENT: &str = "delivery.sent";
    /// The send failed for good (`data.source` says whether the engine or the provider said so).
    pub const DELIVERY_FAILED: &str = "delivery.failed";
    /// A try failed and another is scheduled.
    pub const DELIVERY_RETRYING: &str = "delivery.retrying";
    /// Retries were exhausted, or the delivery was cancelled by request.
    pub const DELIVERY_CANCELLED: &str = "delivery.cancelled";
    /// Policy stopped the delivery (preferences, suppressions, caps…).
    pub const DELIVERY_SUPPRESSED: &str = "delivery.suppressed";
    /// The delivery waits (quiet hours, a schedule, a provider's deferral).
    pub const DELIVERY_DEFERRED: &str = "delivery.deferred";
    /// The delivery went out inside a digest.
    pub const DELIVERY_DIGESTED: &str = "delivery.digested";
    pub const DELIVERY_ACCEPTED: &str = "delivery.accepted";
    pub const DELIVERY_DELIVERED: &str = "delivery.delivered";
    /// `data.bounce` is `hard` or `soft`.
    pub const DELIVERY_BOUNCED: &str = "delivery.bounced";
    pub const DELIVERY_COMPLAINED: &str = "delivery.complained";
    pub const DELIVERY_REJECTED: &str = "delivery.rejected";
    pub const DELIVERY_OPENED: &str = "delivery.opened";
    pub const DELIVERY_CLICKED: &str = "delivery.clicked";
    /// The provider reported an unsubscribe from this delivery.
    pub const DELIVERY_UNSUBSCRIBED: &str = "delivery.unsubscribed";
    /// A recipient read an in-app item.
    pub const INBOX_READ: &str = "inbox.read";
    /// A recipient used the one-click unsubscribe link of an email.
    pub const RECIPIENT_UNSUBSCRIBED: &str = "recipient.unsubscribed";
    /// A bounce, complaint or unsubscribe suppressed an address.
    pub const SUPPRESSION_ADDED: &str = "suppression.added";
}

/// Every event type, for validation and documentation.
pub const ALL: &[&str] = &[
    event_type::DELIVERY_SENT,
    event_type::DELIVERY_FAILED,
    event_type::DELIVERY_RETRYING,
    event_type::DELIVERY_CANCELLED,
    event_type::DELIVERY_SUPPRESSED,
    event_type::DELIVERY_DEFERRED,
    event_type::DELIVERY_DIGESTED,
    event_type::DELIVERY_ACCEPTED,
    event_type::DELIVERY_DELIVERED,
    event_type::DELIVERY_BOUNCED,
    event_type::DELIVERY_COMPLAINED,
    event_type::DELIVERY_REJECTED,
    event_type::DELIVERY_OPENED,
    event_type::DELIVERY_CLICKED,
    event_type::DELIVERY_UNSUBSCRIBED,
    event_type::INBOX_READ,
    event_type::RECIPIENT_UNSUBSCRIBED,
    event_type::SUPPRESSION_ADDED,
];

/// Who said it: the engine's own decision, the provider's feedback, or the recipient.
fn source_of(trace_kind: &str) -> &'static str {
    match Kind::parse(trace_kind).ok() {
        Some(Kind::FeedbackReceived) => "provider",
        Some(Kind::InboxRead | Kind::RecipientUnsubscribed) => "recipient",
        _ => "engine",
    }
}

/// The event a trace publishes, if any. Feedback traces carry the normalized kind as reason.
/// Every kind is named here, so a new one cannot be added without deciding whether
/// applications hear of it.
pub(crate) fn of_trace(trace_kind: &str, reason: Option<&str>) -> Option<&'static str> {
    use event_type as e;
    Some(match Kind::parse(trace_kind).ok()? {
        Kind::DeliverySucceeded => e::DELIVERY_SENT,
        Kind::DeliveryFailed => e::DELIVERY_FAILED,
        Kind::RetryScheduled => e::DELIVERY_RETRYING,
        Kind::DeliveryCancelled => e::DELIVERY_CANCELLED,
        Kind::DeliverySuppressed => e::DELIVERY_SUPPRESSED,
        Kind::DeliveryDeferred => e::DELIVERY_DEFERRED,
        Kind::DeliveryDigested => e::DELIVERY_DIGESTED,
        Kind::InboxRead => e::INBOX_READ,
        Kind::RecipientUnsubscribed => e::RECIPIENT_UNSUBSCRIBED,
        Kind::SuppressionAdded => e::SUPPRESSION_ADDED,
        Kind::FeedbackReceived => match reason? {
            "accepted" => e::DELIVERY_ACCEPTED,
            "delivered" => e::DELIVERY_DELIVERED,
            "deferred" => e::DELIVERY_DEFERRED,
            "bounced_hard" | "bounced_soft" => e::DELIVERY_BOUNCED,
            "complained" => e::DELIVERY_COMPLAINED,
            "rejected" => e::DELIVERY_REJECTED,
            "failed" => e::DELIVERY_FAILED,
            "opened" => e::DELIVERY_OPENED,
            "clicked" => e::DELIVERY_CLICKED,
            "unsubscribed" => e::DELIVERY_UNSUBSCRIBED,
            _ => return None,
        },
        Kind::EventReceived
        | Kind::RecipientsPlanned
        | Kind::NotificationCreated
        | Kind::DeliveryPlanned
        | Kind::DeliveryDispatched
        | Kind::DeliveryBuilt
        | Kind::DeliveryRendered
        | Kind::ContentValid
        | Kind::Attempt
        | Kind::InboxWritten
        | Kind::LeaseLost
        | Kind::PolicyChecked
        | Kind::DeliveryHeld
        | Kind::DigestEmitted
        | Kind::PinLost => return None,
    })
}

/// Checks an endpoint's subscription: each pattern is `*`, an event type, or a family
/// (`delivery.*`) that has at least one type. Returns them trimmed, without repeats.
pub(crate) fn validate(patterns: &[String]) -> Result<Vec<String>, EndpointError> {
    let mut out: Vec<String> = Vec::new();
    for p in patterns.iter().flat_map(|p| p.split(',')).map(str::trim) {
        if p.is_empty() {
            continue;
        }
        if !ALL.iter().any(|t| matches(p, t)) {
            return Err(EndpointError::UnknownEvent {
                pattern: p.to_string(),
            });
        }
        if !out.iter().any(|o| o == p) {
            out.push(p.to_string());
        }
    }
    if out.is_empty() {
        return Err(EndpointError::NoEvents);
    }
    Ok(out)
}

/// `*` matches everything, `family.*` every type in the family, anything else itself.
pub fn matches(pattern: &str, event_type: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some("") => true,
        Some(prefix) if prefix.ends_with('.') => event_type.starts_with(prefix),
        Some(_) => false,
        None => pattern == event_type,
    }
}

/// A trace that publishes an event, as [`append_all`] appends it.
pub(crate) struct Lifecycle {
    pub tenant: String,
    pub event_type: &'static str,
    pub trace_kind: String,
    pub at: DateTime<Utc>,
    pub event_id: String,
    pub notification_id: Option<String>,
    pub delivery_id: Option<String>,
    pub reason: Option<String>,
    pub detail: Option<String>,
    pub plugin: Option<String>,
    pub attempt: Option<i64>,
}

/// Appends trace rows and, in the same transaction, publishes those that are lifecycle events
/// to the tenant's subscribed endpoints: an application hears of exactly what was recorded.
/// Every writer of the story appends through here, so `traces` stays the bottom log.
pub(crate) async fn append_all(
    conn: &mut Conn,
    mut rows: Vec<NewTrace<'_>>,
) -> Result<(), StoreError> {
    let mut lifecycle = Vec::new();
    for t in rows.iter_mut() {
        let at = *t.at.get_or_insert_with(store::now);
        if let Some(event_type) = of_trace(t.kind, t.reason) {
            lifecycle.push(Lifecycle {
                tenant: t.tenant.to_string(),
                event_type,
                trace_kind: t.kind.to_string(),
                at,
                event_id: t.event_id.to_string(),
                notification_id: t.notification_id.map(str::to_string),
                delivery_id: t.delivery_id.map(str::to_string),
                reason: t.reason.map(str::to_string),
                detail: t.detail.clone(),
                plugin: t.plugin.clone(),
                attempt: t.attempt,
            });
        }
    }
    traces::append_all(conn, rows).await?;
    if !lifecycle.is_empty() {
        publish(conn, lifecycle).await?;
    }
    Ok(())
}

/// [`append_all`] for one row.
pub(crate) async fn append(conn: &mut Conn, t: NewTrace<'_>) -> Result<(), StoreError> {
    append_all(conn, vec![t]).await
}

/// Writes one message (and its `endpoint_send` job, due now) per enabled endpoint of the
/// event's tenant that subscribes to it, in the caller's transaction. Costs one indexed read
/// per tenant when nobody subscribes.
pub(crate) async fn publish(conn: &mut Conn, events: Vec<Lifecycle>) -> Result<(), StoreError> {
    // Each tenant once, however its events interleave with others'.
    let tenants: std::collections::BTreeSet<&str> =
        events.iter().map(|e| e.tenant.as_str()).collect();
    let mut written = 0usize;
    for tenant in tenants {
        let endpoints: Vec<(String, Vec<String>)> =
            sqlx::query("SELECT id, events FROM endpoints WHERE tenant = $1 AND enabled = 1")
                .bind(tenant)
                .fetch_all(&mut *conn)
                .await?
                .iter()
                .map(|r| {
                    let events: String = r.get("events");
                    let patterns = serde_json::from_str(&events).map_err(|e| {
                        StoreError::Corrupt(format!("endpoint events `{events}`: {e}"))
                    })?;
                    Ok((r.get("id"), patterns))
                })
                .collect::<Result<_, StoreError>>()?;
        if endpoints.is_empty() {
            continue;
        }
        for e in events.iter().filter(|e| e.tenant == tenant) {
            let subscribed: Vec<&String> = endpoints
                .iter()
                .filter(|(_, patterns)| patterns.iter().any(|p| matches(p, e.event_type)))
                .map(|(id, _)| id)
                .collect();
            if subscribed.is_empty() {
                continue;
            }
            let payload = payload(conn, e).await?;
            let now = store::time_text(store::now());
            for endpoint_id in subscribed {
                let id = format!("msg_{}", store::new_id());
                sqlx::query(
                    "INSERT INTO endpoint_messages (id, tenant, endpoint_id, event_type, payload, delivery_id,
                         status, attempts, next_attempt_at, created_at, updated_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $8, 0, $7, $7, $7)",
                )
                .bind(&id)
                .bind(tenant)
                .bind(endpoint_id)
                .bind(e.event_type)
                .bind(&payload)
                .bind(&e.delivery_id)
                .bind(&now)
                .bind(MessageStatus::Pending.as_str())
                .execute(&mut *conn)
                .await?;
                queue::enqueue(
                    conn,
                    queue::NewJob {
                        kind: queue::job_kind::ENDPOINT_SEND,
                        subject_id: &id,
                        tenant,
                        run_at: store::now(),
                        deferred: None,
                    },
                )
                .await?;
                written += 1;
            }
        }
    }
    if written > 0 {
        tracing::debug!(messages = written, "lifecycle events published");
        // Workers in other processes hear of the new jobs at commit (PostgreSQL).
        let backend = store::backend_of(conn);
        queue::announce(conn, backend).await?;
    }
    Ok(())
}

/// The body every endpoint subscribed to `e` gets: `{type, timestamp, data}` as the Standard
/// Webhooks spec suggests, with the ids to look the story up by and the trace's own words.
async fn payload(conn: &mut Conn, e: &Lifecycle) -> Result<String, StoreError> {
    let mut data = serde_json::json!({
        "tenant": e.tenant,
        "source": source_of(&e.trace_kind),
        "event_id": e.event_id,
        "notification_id": e.notification_id,
        "delivery_id": e.delivery_id,
        "reason": e.reason,
        "detail": e.detail,
        "plugin": e.plugin,
        "attempt": e.attempt,
    });
    if let Some(delivery_id) = &e.delivery_id
        && let Some(r) = sqlx::query(
            "SELECT d.channel, n.recipient_id, n.category FROM deliveries d
             JOIN notifications n ON n.id = d.notification_id WHERE d.id = $1",
        )
        .bind(delivery_id)
        .fetch_optional(&mut *conn)
        .await?
    {
        data["channel"] = r.get::<String, _>("channel").into();
        data["recipient_id"] = r.get::<String, _>("recipient_id").into();
        data["category"] = r.get::<String, _>("category").into();
    }
    if e.event_type == event_type::DELIVERY_BOUNCED {
        let hard = e.reason.as_deref() == Some("bounced_hard");
        data["bounce"] = if hard { "hard" } else { "soft" }.into();
    }
    let body = serde_json::json!({
        "type": e.event_type,
        "timestamp": e.at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    });
    Ok(body.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traces::kind;

    #[test]
    fn patterns_match_families_and_exact_types() {
        assert!(matches("*", "inbox.read"));
        assert!(matches("delivery.*", "delivery.sent"));
        assert!(!matches("delivery.*", "inbox.read"));
        assert!(matches("inbox.read", "inbox.read"));
        assert!(!matches("delivery.sen*", "delivery.sent"));
        assert!(!matches("delivery.sent", "delivery.sent.x"));
    }

    #[test]
    fn validation_names_the_unknown_pattern() {
        let ok = validate(&["delivery.*, inbox.read".into(), "delivery.*".into()]).unwrap();
        assert_eq!(ok, vec!["delivery.*", "inbox.read"]);
        match validate(&["delivery.sentt".into()]) {
            Err(EndpointError::UnknownEvent { pattern }) => assert_eq!(pattern, "delivery.sentt"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            validate(&[" ".into()]),
            Err(EndpointError::NoEvents)
        ));
        assert!(validate(&["nothing.*".into()]).is_err());
    }

    #[test]
    fn every_feedback_kind_publishes_an_event() {
        for k in [
            "accepted",
            "delivered",
            "deferred",
            "bounced_hard",
            "bounced_soft",
            "complained",
            "rejected",
            "failed",
            "opened",
            "clicked",
            "unsubscribed",
        ] {
            assert!(of_trace(kind::FEEDBACK, Some(k)).is_some(), "{k}");
        }
        assert_eq!(of_trace(kind::DELIVERY_PLANNED, None), None);
        assert_eq!(of_trace(kind::FEEDBACK, Some("x")), None);
        let engine = [
            (kind::DELIVERY_SUCCEEDED, event_type::DELIVERY_SENT),
            (kind::DELIVERY_FAILED, event_type::DELIVERY_FAILED),
            (kind::DELIVERY_SUPPRESSED, event_type::DELIVERY_SUPPRESSED),
            (kind::DELIVERY_CANCELLED, event_type::DELIVERY_CANCELLED),
            (kind::INBOX_READ, event_type::INBOX_READ),
        ];
        for (trace, event) in engine {
            assert_eq!(of_trace(trace, None), Some(event));
        }
        // Every published type is one an endpoint can subscribe to.
        for t in ALL {
            assert!(validate(&[t.to_string()]).is_ok());
        }
    }
}
