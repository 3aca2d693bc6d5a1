//! The executor: one pending delivery through claim → build → render → validate → send (or
//! inbox) → attempt row → final status, each step traced with the plugin build that did it.
//!
//! Durability rule: the claim and the rendered content are committed before the provider is
//! called, and the outcome is committed after, in one transaction with its attempt row and
//! trace. The durable queue (leases, retries, crash recovery) replaces the claim next.

use crate::content::{Channel, Recipient};
use crate::inbox;
use crate::plugins::{CallError, OutgoingMessage, PluginRuntime, Registry, SendError};
use crate::store::{self, Db, StoreError};
use crate::traces::{self, NewTrace, kind};
use serde::Serialize;
use sqlx::Row;
use std::time::Instant;

/// Where a delivery ended after one dispatch.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Dispatched {
    pub delivery_id: String,
    pub status: String,
    pub reason: Option<String>,
}

/// Stable status reasons (stored; do not rename).
pub mod reason {
    pub const NOTIFIER_MISSING: &str = "notifier_missing";
    pub const BUILD_FAILED: &str = "build_failed";
    pub const RENDER_FAILED: &str = "render_failed";
    pub const CONTENT_INVALID: &str = "content_invalid";
    pub const NO_ADAPTER: &str = "no_adapter";
    pub const SEND_PERMANENT: &str = "send_permanent";
    /// Until the durable queue retries them, transient failures end the delivery.
    pub const SEND_TRANSIENT: &str = "send_transient";
    pub const SEND_RATE_LIMITED: &str = "send_rate_limited";
    pub const ADAPTER_FAILED: &str = "adapter_failed";
}

struct Claimed {
    id: String,
    tenant: String,
    event_id: String,
    notification_id: String,
    channel: Channel,
    idempotency_key: String,
    attempts: i64,
    notifier_key: String,
    payload: String,
    recipient: Recipient,
}

/// Dispatches one delivery if it is still pending; `None` if another dispatcher had it.
#[tracing::instrument(skip(db, runtime, registry))]
pub async fn dispatch(
    db: &Db,
    runtime: &PluginRuntime,
    registry: &Registry,
    delivery_id: &str,
) -> Result<Option<Dispatched>, StoreError> {
    let Some(d) = claim(db, delivery_id).await? else {
        return Ok(None);
    };
    let trace =
        |kind, reason: Option<&'static str>, detail: Option<String>, plugin: Option<String>| {
            NewTrace {
                tenant: &d.tenant,
                event_id: &d.event_id,
                notification_id: Some(&d.notification_id),
                delivery_id: Some(&d.id),
                kind,
                reason,
                detail,
                plugin,
                attempt: None,
            }
        };

    let notifier = match registry.notifier(&d.notifier_key) {
        Ok(n) => n,
        Err(e) => {
            return finish_failed(db, &d, reason::NOTIFIER_MISSING, e.to_string(), None).await;
        }
    };
    let request = match runtime
        .build(notifier, &d.payload, &d.recipient, d.channel)
        .await
    {
        Ok(r) => r,
        Err(e) => return fail_call(db, &d, reason::BUILD_FAILED, e).await,
    };
    let mut conn = db.acquire().await?;
    traces::append(
        &mut conn,
        trace(
            kind::DELIVERY_BUILT,
            None,
            Some(format!(
                "template {} for {}",
                request.template, request.channel
            )),
            Some(notifier.reference().to_string()),
        ),
    )
    .await?;
    drop(conn);

    let renderer = match registry.renderer() {
        Ok(r) => r,
        Err(e) => return finish_failed(db, &d, reason::RENDER_FAILED, e.to_string(), None).await,
    };
    let content = match runtime.render(renderer, &request).await {
        Ok(c) => c,
        Err(e) => return fail_call(db, &d, reason::RENDER_FAILED, e).await,
    };
    let rendered_by = renderer.reference().to_string();
    let mut conn = db.acquire().await?;
    traces::append(
        &mut conn,
        trace(
            kind::DELIVERY_RENDERED,
            None,
            Some(format!(
                "{} content, {} bytes",
                content.channel(),
                content.approx_size()
            )),
            Some(rendered_by.clone()),
        ),
    )
    .await?;
    drop(conn);
    if let Err(invalid) = content.validate(d.channel) {
        return finish_failed(
            db,
            &d,
            reason::CONTENT_INVALID,
            format!("{} {}", invalid.field, invalid.problem),
            Some(rendered_by),
        )
        .await;
    }
    let content_json =
        serde_json::to_string(&content).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    // The rendered content is committed before any provider sees it.
    let mut tx = db.begin().await?;
    sqlx::query(
        "UPDATE deliveries SET content = $1, rendered_by = $2, updated_at = $3 WHERE id = $4",
    )
    .bind(&content_json)
    .bind(&rendered_by)
    .bind(store::time_text(store::now()))
    .bind(&d.id)
    .execute(&mut *tx)
    .await?;
    traces::append(
        &mut tx,
        trace(
            kind::CONTENT_VALID,
            None,
            Some(format!("{} contract satisfied", d.channel)),
            None,
        ),
    )
    .await?;

    if d.channel == Channel::InApp {
        let item = inbox::write(
            &mut tx,
            &d.tenant,
            &d.recipient.id,
            &d.notification_id,
            &d.id,
            &content,
        )
        .await?;
        traces::append(
            &mut tx,
            trace(
                kind::INBOX_WRITTEN,
                None,
                Some(format!("inbox item {item}")),
                None,
            ),
        )
        .await?;
        set_status(&mut tx, &d.id, "succeeded", None, None, None, None).await?;
        traces::append(&mut tx, trace(kind::DELIVERY_SUCCEEDED, None, None, None)).await?;
        tx.commit().await?;
        return Ok(Some(Dispatched {
            delivery_id: d.id,
            status: "succeeded".into(),
            reason: None,
        }));
    }
    tx.commit().await?;

    let Some(adapter) = registry.adapter_for(d.channel) else {
        return finish_failed(
            db,
            &d,
            reason::NO_ADAPTER,
            format!("no channel-adapter plugin serves {}", d.channel),
            None,
        )
        .await;
    };
    let attempt = d.attempts + 1;
    let message = OutgoingMessage {
        delivery_id: d.id.clone(),
        notification_id: d.notification_id.clone(),
        tenant: d.tenant.clone(),
        idempotency_key: d.idempotency_key.clone(),
        attempt: attempt as u32,
        channel: d.channel,
        recipient: d.recipient.clone(),
        content,
    };
    let started_at = store::now();
    let clock = Instant::now();
    let result = runtime.send(adapter, &message).await;
    let duration_ms = clock.elapsed().as_millis() as i64;
    let sent_by = adapter.reference().to_string();

    let (outcome, error, provider_id, status, status_reason) = match &result {
        Ok(Ok(id)) => ("succeeded", None, Some(id.clone()), "succeeded", None),
        Ok(Err(e @ SendError::Transient { .. })) => (
            "transient",
            Some(e.to_string()),
            None,
            "failed",
            Some(reason::SEND_TRANSIENT),
        ),
        Ok(Err(e @ SendError::RateLimited { .. })) => (
            "rate_limited",
            Some(e.to_string()),
            None,
            "failed",
            Some(reason::SEND_RATE_LIMITED),
        ),
        Ok(Err(e @ SendError::Permanent { .. })) => (
            "permanent",
            Some(e.to_string()),
            None,
            "failed",
            Some(reason::SEND_PERMANENT),
        ),
        Err(e) => (
            e.reason.as_str(),
            Some(e.to_string()),
            None,
            "failed",
            Some(reason::ADAPTER_FAILED),
        ),
    };
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO attempts (id, delivery_id, attempt, adapter, started_at, duration_ms, outcome, error, provider_message_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(store::new_id())
    .bind(&d.id)
    .bind(attempt)
    .bind(&sent_by)
    .bind(store::time_text(started_at))
    .bind(duration_ms)
    .bind(outcome)
    .bind(&error)
    .bind(&provider_id)
    .execute(&mut *tx)
    .await?;
    traces::append(
        &mut tx,
        NewTrace {
            attempt: Some(attempt),
            ..trace(
                kind::ATTEMPT,
                Some(outcome_reason(outcome)),
                Some(match (&provider_id, &error) {
                    (Some(id), _) => {
                        format!("{outcome} in {duration_ms} ms, provider message {id}")
                    }
                    (None, Some(e)) => format!("{outcome} in {duration_ms} ms: {e}"),
                    (None, None) => format!("{outcome} in {duration_ms} ms"),
                }),
                Some(sent_by.clone()),
            )
        },
    )
    .await?;
    set_status(
        &mut tx,
        &d.id,
        status,
        status_reason,
        error.as_deref(),
        Some(&sent_by),
        provider_id.as_deref(),
    )
    .await?;
    sqlx::query("UPDATE deliveries SET attempts = $1 WHERE id = $2")
        .bind(attempt)
        .bind(&d.id)
        .execute(&mut *tx)
        .await?;
    let final_kind = if status == "succeeded" {
        kind::DELIVERY_SUCCEEDED
    } else {
        kind::DELIVERY_FAILED
    };
    traces::append(
        &mut tx,
        trace(final_kind, status_reason, error.clone(), None),
    )
    .await?;
    tx.commit().await?;
    Ok(Some(Dispatched {
        delivery_id: d.id,
        status: status.into(),
        reason: status_reason.map(str::to_string),
    }))
}

fn outcome_reason(outcome: &str) -> &'static str {
    match outcome {
        "succeeded" => "sent",
        "transient" => "transient_error",
        "rate_limited" => "rate_limited",
        "permanent" => "permanent_error",
        _ => "plugin_failed",
    }
}

/// Moves a pending delivery to `dispatched`; only one dispatcher can win.
async fn claim(db: &Db, delivery_id: &str) -> Result<Option<Claimed>, StoreError> {
    let mut tx = db.begin().await?;
    let won = sqlx::query(
        "UPDATE deliveries SET status = 'dispatched', updated_at = $1 WHERE id = $2 AND status = 'pending'",
    )
    .bind(store::time_text(store::now()))
    .bind(delivery_id)
    .execute(&mut *tx)
    .await?;
    if won.rows_affected() == 0 {
        return Ok(None);
    }
    let r = sqlx::query(
        "SELECT d.id, d.tenant, d.event_id, d.notification_id, d.channel, d.idempotency_key, d.attempts,
                e.notifier_key, e.payload, n.recipient
         FROM deliveries d JOIN notifications n ON n.id = d.notification_id JOIN events e ON e.id = d.event_id
         WHERE d.id = $1",
    )
    .bind(delivery_id)
    .fetch_one(&mut *tx)
    .await?;
    let channel: String = r.get("channel");
    let recipient: String = r.get("recipient");
    let claimed = Claimed {
        id: r.get("id"),
        tenant: r.get("tenant"),
        event_id: r.get("event_id"),
        notification_id: r.get("notification_id"),
        channel: channel
            .parse()
            .map_err(|e: crate::content::UnknownChannel| StoreError::Corrupt(e.to_string()))?,
        idempotency_key: r.get("idempotency_key"),
        attempts: r.get("attempts"),
        notifier_key: r.get("notifier_key"),
        payload: r.get("payload"),
        recipient: serde_json::from_str(&recipient)
            .map_err(|e| StoreError::Corrupt(format!("recipient of {delivery_id}: {e}")))?,
    };
    traces::append(
        &mut tx,
        NewTrace {
            tenant: &claimed.tenant,
            event_id: &claimed.event_id,
            notification_id: Some(&claimed.notification_id),
            delivery_id: Some(&claimed.id),
            kind: kind::DELIVERY_DISPATCHED,
            reason: None,
            detail: Some(format!("pending -> dispatched ({})", claimed.channel)),
            plugin: None,
            attempt: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Some(claimed))
}

async fn fail_call(
    db: &Db,
    d: &Claimed,
    reason: &'static str,
    e: CallError,
) -> Result<Option<Dispatched>, StoreError> {
    let plugin = e.plugin.clone();
    finish_failed(db, d, reason, e.to_string(), Some(plugin)).await
}

async fn finish_failed(
    db: &Db,
    d: &Claimed,
    reason: &'static str,
    detail: String,
    plugin: Option<String>,
) -> Result<Option<Dispatched>, StoreError> {
    tracing::info!(delivery_id = %d.id, reason, %detail, "delivery failed");
    let mut tx = db.begin().await?;
    set_status(
        &mut tx,
        &d.id,
        "failed",
        Some(reason),
        Some(&detail),
        None,
        None,
    )
    .await?;
    traces::append(
        &mut tx,
        NewTrace {
            tenant: &d.tenant,
            event_id: &d.event_id,
            notification_id: Some(&d.notification_id),
            delivery_id: Some(&d.id),
            kind: kind::DELIVERY_FAILED,
            reason: Some(reason),
            detail: Some(detail),
            plugin,
            attempt: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(Some(Dispatched {
        delivery_id: d.id.clone(),
        status: "failed".into(),
        reason: Some(reason.into()),
    }))
}

async fn set_status(
    conn: &mut sqlx::SqliteConnection,
    id: &str,
    status: &str,
    reason: Option<&str>,
    detail: Option<&str>,
    sent_by: Option<&str>,
    provider_message_id: Option<&str>,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE deliveries SET status = $1, status_reason = $2, status_detail = $3,
                sent_by = COALESCE($4, sent_by), provider_message_id = COALESCE($5, provider_message_id),
                updated_at = $6
         WHERE id = $7",
    )
    .bind(status)
    .bind(reason)
    .bind(detail)
    .bind(sent_by)
    .bind(provider_message_id)
    .bind(store::time_text(store::now()))
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}
