//! Outbound lifecycle webhooks: an application registers endpoints for its tenant, each with
//! its own `whsec_` secret and the event types it wants, and belfry posts every matching
//! lifecycle change to them (delivery sent, delivered, bounced, opened…, inbox read), signed
//! per the Standard Webhooks spec, durably through the job queue.
//!
//! - [`events`]: the event types, the traces they come from, subscription patterns, and
//!   publishing (a message and a job per subscribed endpoint, in the trace's transaction).
//! - [`guard`]: the addresses an endpoint may reach (no private or loopback targets unless the
//!   operator allows their network).
//! - [`send`]: one signed attempt, the retry schedule, runs of failures and disabling.
//!
//! An endpoint disabled by a run of failures stays disabled until someone enables it again
//! ([`set_enabled`]); while disabled it gets no new messages, and its pending ones end as
//! `endpoint_disabled`.

pub mod events;
pub mod guard;
pub mod send;

pub use guard::AddressPolicy;
pub use send::Sender;

use crate::store::{self, Db, StoreError};
use base64::Engine as _;
use serde::Serialize;
use sqlx::Row;
use std::time::Duration;

/// Operator settings for outbound webhooks.
#[derive(Clone, Debug, PartialEq)]
pub struct EndpointsConfig {
    /// Non-public networks endpoints may still reach (`127.0.0.1`, `10.0.0.0/8`).
    pub allow_networks: Vec<ipnet::IpNet>,
    /// Failed attempts in a row (over all of an endpoint's messages) that disable it.
    pub disable_after: u32,
    /// How long one attempt may take, connecting included.
    pub timeout: Duration,
}

impl Default for EndpointsConfig {
    fn default() -> Self {
        EndpointsConfig {
            allow_networks: Vec::new(),
            disable_after: 20,
            timeout: Duration::from_secs(15),
        }
    }
}

impl EndpointsConfig {
    pub fn address_policy(&self) -> AddressPolicy {
        AddressPolicy::new(self.allow_networks.clone())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("endpoint URL `{url}`: {why}")]
    InvalidUrl { url: String, why: String },
    #[error(
        "event pattern `{pattern}` matches no event type; use `*`, a family such as `delivery.*`, or one of: {}",
        events::ALL.join(", ")
    )]
    UnknownEvent { pattern: String },
    #[error("an endpoint needs at least one event pattern, e.g. `delivery.*`")]
    NoEvents,
    #[error("no endpoint has the id `{0}`")]
    NotFound(String),
    #[error("endpoint `{0}` is disabled: enable it before recovering its messages")]
    Disabled(String),
    #[error("the webhook client could not be built: {0}")]
    Client(String),
    /// A field breaks the rule every edge shares (see [`crate::text`]).
    #[error(transparent)]
    Text(#[from] crate::text::TextError),
    #[error(transparent)]
    Tenant(#[from] crate::tenants::TenantError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for EndpointError {
    fn from(e: sqlx::Error) -> Self {
        EndpointError::Store(e.into())
    }
}

/// An endpoint as stored (without its secret).
#[derive(Clone, Debug, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Endpoint {
    pub id: String,
    pub tenant: String,
    pub url: String,
    pub description: Option<String>,
    /// Event patterns: `*`, a family (`delivery.*`) or an event type.
    pub events: Vec<String>,
    pub enabled: bool,
    /// Why it was disabled, while it is.
    pub disabled_reason: Option<String>,
    pub disabled_at: Option<String>,
    /// Failed attempts since the last success.
    pub failure_streak: i64,
    pub created_at: String,
    pub updated_at: String,
}

/// A new endpoint, with the secret its receiver verifies signatures with.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedEndpoint {
    #[serde(flatten)]
    pub endpoint: Endpoint,
    /// `whsec_` and the base64 key, as Standard Webhooks libraries take it.
    pub secret: String,
}

/// One lifecycle event owed to one endpoint, with every try so far.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message {
    /// The `webhook-id` header of every try.
    pub id: String,
    pub endpoint_id: String,
    pub event_type: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: serde_json::Value,
    pub delivery_id: Option<String>,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    /// `retrying`, `retries_exhausted` or `endpoint_disabled`.
    pub status_reason: Option<String>,
    pub attempts: i64,
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub tries: Vec<MessageAttempt>,
}

#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageAttempt {
    pub attempt: i64,
    pub started_at: String,
    pub duration_ms: i64,
    pub status_code: Option<i64>,
    pub error: Option<String>,
    /// The start of the endpoint's answer.
    pub response: Option<String>,
}

/// A fresh `whsec_` secret: 24 random bytes.
fn new_secret() -> String {
    let key: [u8; 24] = rand::random();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

const COLUMNS: &str = "id, tenant, url, description, events, enabled, disabled_reason, disabled_at, failure_streak, created_at, updated_at";

fn endpoint(r: &sqlx::any::AnyRow) -> Result<Endpoint, StoreError> {
    let events: String = r.get("events");
    Ok(Endpoint {
        id: r.get("id"),
        tenant: r.get("tenant"),
        url: r.get("url"),
        description: r.get("description"),
        events: serde_json::from_str(&events)
            .map_err(|e| StoreError::Corrupt(format!("endpoint events `{events}`: {e}")))?,
        enabled: r.get::<i64, _>("enabled") == 1,
        disabled_reason: r.get("disabled_reason"),
        disabled_at: r.get("disabled_at"),
        failure_streak: r.get("failure_streak"),
        created_at: r.get("created_at"),
        updated_at: r.get("updated_at"),
    })
}

/// Registers an endpoint for `tenant` after checking its URL (against `policy`) and its
/// event patterns; nothing is stored if either is wrong.
#[tracing::instrument(skip(db, policy))]
pub async fn create(
    db: &Db,
    policy: &AddressPolicy,
    tenant: &str,
    url: &str,
    patterns: &[String],
    description: Option<&str>,
) -> Result<CreatedEndpoint, EndpointError> {
    crate::tenants::check_id(tenant)?;
    if let Some(d) = description {
        crate::text::free_text("description", d)?;
    }
    let checked = policy
        .check_url(url)
        .map_err(|why| EndpointError::InvalidUrl {
            url: url.to_string(),
            why,
        })?;
    let patterns = events::validate(patterns)?;
    let id = format!("ep_{}", store::new_id());
    let secret = new_secret();
    let now = store::time_text(store::now());
    sqlx::query(
        "INSERT INTO endpoints (id, tenant, url, description, events, secret, enabled, failure_streak, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, 1, 0, $7, $7)",
    )
    .bind(&id)
    .bind(tenant)
    .bind(checked.as_str())
    .bind(description)
    .bind(serde_json::to_string(&patterns).expect("strings serialize"))
    .bind(&secret)
    .bind(&now)
    .execute(db)
    .await?;
    tracing::info!(endpoint = %id, "endpoint registered");
    Ok(CreatedEndpoint {
        endpoint: get(db, Some(tenant), &id).await?,
        secret,
    })
}

/// A tenant's endpoints, oldest first (every tenant's for `None`).
pub async fn list(db: &Db, tenant: Option<&str>) -> Result<Vec<Endpoint>, EndpointError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM endpoints WHERE ($1 IS NULL OR tenant = $1) ORDER BY id"
    ))
    .bind(tenant)
    .fetch_all(db)
    .await?;
    Ok(rows.iter().map(endpoint).collect::<Result<_, _>>()?)
}

/// One endpoint; another tenant's is not found, as an unknown one is.
pub async fn get(db: &Db, tenant: Option<&str>, id: &str) -> Result<Endpoint, EndpointError> {
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM endpoints WHERE id = $1 AND ($2 IS NULL OR tenant = $2)"
    ))
    .bind(id)
    .bind(tenant)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| EndpointError::NotFound(id.to_string()))?;
    Ok(endpoint(&row)?)
}

/// The endpoint's signing secret.
pub async fn secret(db: &Db, tenant: Option<&str>, id: &str) -> Result<String, EndpointError> {
    sqlx::query_scalar("SELECT secret FROM endpoints WHERE id = $1 AND ($2 IS NULL OR tenant = $2)")
        .bind(id)
        .bind(tenant)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| EndpointError::NotFound(id.to_string()))
}

/// Enables (clearing its run of failures and the reason it was disabled) or disables an
/// endpoint by hand.
#[tracing::instrument(skip(db))]
pub async fn set_enabled(
    db: &Db,
    tenant: Option<&str>,
    id: &str,
    enabled: bool,
) -> Result<Endpoint, EndpointError> {
    let now = store::time_text(store::now());
    let sql = if enabled {
        "UPDATE endpoints SET enabled = 1, failure_streak = 0, disabled_reason = NULL, disabled_at = NULL, updated_at = $1
         WHERE id = $2 AND ($3 IS NULL OR tenant = $3)"
    } else {
        "UPDATE endpoints SET enabled = 0, disabled_reason = COALESCE(disabled_reason, 'disabled by hand'),
                disabled_at = COALESCE(disabled_at, $1), updated_at = $1
         WHERE id = $2 AND ($3 IS NULL OR tenant = $3)"
    };
    let done = sqlx::query(sql)
        .bind(&now)
        .bind(id)
        .bind(tenant)
        .execute(db)
        .await?;
    if done.rows_affected() == 0 {
        return Err(EndpointError::NotFound(id.to_string()));
    }
    get(db, tenant, id).await
}

/// Sends again every message of an enabled endpoint that ended because the endpoint was
/// disabled: each resumes its retry schedule where it was cut off (a message with tries left
/// gets them; one with none left gets one). Returns how many were queued.
#[tracing::instrument(skip(db))]
pub async fn recover(db: &Db, tenant: Option<&str>, id: &str) -> Result<u64, EndpointError> {
    let endpoint = get(db, tenant, id).await?;
    if !endpoint.enabled {
        return Err(EndpointError::Disabled(id.to_string()));
    }
    let mut tx = db.begin().await?;
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM endpoint_messages WHERE endpoint_id = $1 AND status = $2 AND status_reason = $3
         ORDER BY id",
    )
    .bind(id)
    .bind(send::MessageStatus::Failed.as_str())
    .bind(send::MessageReason::EndpointDisabled.as_str())
    .fetch_all(&mut *tx)
    .await?;
    let now = store::now();
    for message in &ids {
        // A message whose tries were all spent gets one more: its count steps back one.
        sqlx::query(
            "UPDATE endpoint_messages SET status = $1, status_reason = $2, next_attempt_at = $3,
                    attempts = CASE WHEN attempts >= $4 THEN $4 - 1 ELSE attempts END, updated_at = $3
             WHERE id = $5",
        )
        .bind(send::MessageStatus::Pending.as_str())
        .bind(send::MessageReason::Recovered.as_str())
        .bind(store::time_text(now))
        .bind(send::MAX_ATTEMPTS)
        .bind(message)
        .execute(&mut *tx)
        .await?;
        crate::jobs::enqueue(
            &mut tx,
            crate::jobs::NewJob {
                kind: crate::jobs::job_kind::ENDPOINT_SEND,
                subject_id: message,
                tenant: &endpoint.tenant,
                run_at: now,
                deferred: None,
            },
        )
        .await?;
    }
    if !ids.is_empty() {
        crate::jobs::announce(&mut tx, store::backend(db)).await?;
    }
    tx.commit().await?;
    tracing::info!(endpoint = %id, messages = ids.len(), "endpoint messages recovered");
    Ok(ids.len() as u64)
}

/// Deletes an endpoint with its messages, their tries and their jobs.
#[tracing::instrument(skip(db))]
pub async fn remove(db: &Db, tenant: Option<&str>, id: &str) -> Result<(), EndpointError> {
    let mut tx = db.begin().await?;
    let done = sqlx::query("DELETE FROM endpoints WHERE id = $1 AND ($2 IS NULL OR tenant = $2)")
        .bind(id)
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
    if done.rows_affected() == 0 {
        return Err(EndpointError::NotFound(id.to_string()));
    }
    let messages: Vec<String> =
        sqlx::query_scalar("SELECT id FROM endpoint_messages WHERE endpoint_id = $1")
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
    crate::jobs::remove_subjects(&mut tx, crate::jobs::job_kind::ENDPOINT_SEND, &messages).await?;
    for sql in [
        "DELETE FROM endpoint_attempts WHERE message_id IN (SELECT id FROM endpoint_messages WHERE endpoint_id = $1)",
        "DELETE FROM endpoint_messages WHERE endpoint_id = $1",
    ] {
        sqlx::query(sql).bind(id).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// An endpoint's messages, newest first, at most `limit`, each with its tries.
pub async fn messages(
    db: &Db,
    tenant: Option<&str>,
    endpoint_id: &str,
    limit: u32,
) -> Result<Vec<Message>, EndpointError> {
    get(db, tenant, endpoint_id).await?;
    let rows = sqlx::query(
        "SELECT id, endpoint_id, event_type, payload, delivery_id, status, status_reason, attempts,
                next_attempt_at, created_at
         FROM endpoint_messages WHERE endpoint_id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(endpoint_id)
    .bind(limit as i64)
    .fetch_all(db)
    .await?;
    // Every try of the listed messages in one read, grouped by message.
    let mut tries: std::collections::HashMap<String, Vec<MessageAttempt>> = Default::default();
    for a in sqlx::query(
        "SELECT message_id, attempt, started_at, duration_ms, status_code, error, response
         FROM endpoint_attempts WHERE message_id IN (
             SELECT id FROM endpoint_messages WHERE endpoint_id = $1 ORDER BY id DESC LIMIT $2)
         ORDER BY attempt, started_at",
    )
    .bind(endpoint_id)
    .bind(limit as i64)
    .fetch_all(db)
    .await?
    {
        tries
            .entry(a.get("message_id"))
            .or_default()
            .push(MessageAttempt {
                attempt: a.get("attempt"),
                started_at: a.get("started_at"),
                duration_ms: a.get("duration_ms"),
                status_code: a.get("status_code"),
                error: a.get("error"),
                response: a.get("response"),
            });
    }
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id: String = r.get("id");
        let payload: String = r.get("payload");
        out.push(Message {
            payload: serde_json::from_str(&payload)
                .map_err(|e| StoreError::Corrupt(format!("message {id} payload: {e}")))?,
            tries: tries.remove(&id).unwrap_or_default(),
            id,
            endpoint_id: r.get("endpoint_id"),
            event_type: r.get("event_type"),
            delivery_id: r.get("delivery_id"),
            status: r.get("status"),
            status_reason: r.get("status_reason"),
            attempts: r.get("attempts"),
            next_attempt_at: r.get("next_attempt_at"),
            created_at: r.get("created_at"),
        });
    }
    Ok(out)
}
