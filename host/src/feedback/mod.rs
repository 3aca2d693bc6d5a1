//! What providers say after the send: their webhooks, verified by the adapter plugin that
//! sent the message, become normalized feedback events in an append-only ledger, each folded
//! into its delivery's projection (status, last event, first delivered/opened/clicked, a
//! terminal latch). A hard bounce, complaint or unsubscribe suppresses the address.
//!
//! Order of a webhook: the adapter verifies the signature over the raw request and parses it;
//! any refusal stores nothing. Then one transaction keeps the raw request (for replay: once
//! per distinct request, credentials redacted), the new events (a provider's repeat of an
//! event id writes nothing; an event without an id is keyed by its content), their
//! projections, suppressions, workflow branches and traces. The caller answers 2xx only after that commit, so a provider that
//! retries after a lost answer repeats nothing.
//!
//! An event whose message is not found yet (the webhook beat the send's own commit) waits in
//! the ledger as an orphan; the dispatch commit that records the attempt with that provider
//! message id claims it ([`claim_orphans`]).

mod ledger;
mod projection;

pub(crate) use ledger::DeliveryRef;
pub use ledger::{LedgerEvent, ReceivedEvent, events_of, kind, orphans};
pub use projection::{Projection, projection};

// The adapter contract's types: feedback is what they are about, but plugins carry them.
use crate::plugins::{CallError, Plugin, PluginKind, PluginRuntime};
pub use crate::plugins::{FeedbackEvent, FeedbackKind, WebhookRejection, WebhookRequest};
use crate::store::{self, Db, StoreError};
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use tracing::Instrument;

#[derive(Debug, thiserror::Error)]
pub enum FeedbackError {
    #[error("no channel adapter named `{0}` is loaded")]
    UnknownAdapter(String),
    #[error("{plugin} refused the webhook: {rejection}")]
    Rejected {
        plugin: String,
        rejection: WebhookRejection,
    },
    #[error(transparent)]
    Plugin(#[from] CallError),
    #[error("webhook receipt `{0}` not found")]
    ReceiptNotFound(String),
    /// The tenant is not a valid name, or belfry has never known it (see
    /// [`crate::tenants::exists`]): its events could be about no delivery.
    #[error("no tenant has the name `{0}`")]
    UnknownTenant(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for FeedbackError {
    fn from(e: sqlx::Error) -> Self {
        FeedbackError::Store(e.into())
    }
}

/// What one webhook request added.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Received {
    /// The stored raw request, for `belfry webhooks replay`.
    pub receipt_id: String,
    pub events: Vec<ReceivedEvent>,
}

/// Verifies and records one provider webhook for `tenant` through `adapter`. Nothing is stored
/// unless the tenant is one belfry knows and the adapter accepts the request.
pub async fn receive(
    db: &Db,
    runtime: &PluginRuntime,
    adapter: &Plugin,
    tenant: &str,
    request: WebhookRequest,
) -> Result<Received, FeedbackError> {
    let span = tracing::info_span!("webhook", tenant, adapter = %adapter.reference());
    async {
        let known = match crate::tenants::TenantId::new(tenant) {
            Ok(id) => crate::tenants::exists(db, &id).await?,
            Err(_) => false,
        };
        if !known {
            return Err(FeedbackError::UnknownTenant(tenant.escape_debug().to_string()));
        }
        let events = verify(runtime, adapter, &request).await?;
        let digest = request_digest(tenant, adapter.name(), &request);
        let headers = serde_json::to_string(&redacted(&request.headers))
            .map_err(|e| StoreError::Corrupt(format!("webhook headers: {e}")))?;
        let mut tx = db.begin().await?;
        let fresh_id = store::new_id();
        let stored = sqlx::query(
            "INSERT INTO webhook_receipts (id, tenant, adapter, plugin, method, url, headers, body, received_at, new_events, request_digest)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $10)
             ON CONFLICT (request_digest) DO NOTHING",
        )
        .bind(&fresh_id)
        .bind(tenant)
        .bind(adapter.name())
        .bind(adapter.reference().to_string())
        .bind(&request.method)
        .bind(&request.url)
        .bind(headers)
        .bind(request.body.clone())
        .bind(store::time_text(request.received_at))
        .bind(&digest)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        // A replay of a request already kept (a provider's retry, or someone who captured
        // it) adds no second raw row: its events, if any are new, point at the first one.
        let receipt_id = if stored {
            fresh_id
        } else {
            let first: String =
                sqlx::query_scalar("SELECT id FROM webhook_receipts WHERE request_digest = $1")
                    .bind(&digest)
                    .fetch_one(&mut *tx)
                    .await?;
            tracing::debug!(receipt = %first, "webhook request repeated; its raw request is already kept");
            first
        };
        let received =
            ledger::record(&mut tx, tenant, adapter.name(), &receipt_id, events, request.received_at).await?;
        let new_events = received.iter().filter(|e| !e.duplicate).count() as i64;
        sqlx::query("UPDATE webhook_receipts SET new_events = new_events + $1 WHERE id = $2")
            .bind(new_events)
            .bind(&receipt_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(receipt = %receipt_id, events = received.len(), new_events, "webhook recorded");
        Ok(Received {
            receipt_id,
            events: received,
        })
    }
    .instrument(span)
    .await
}

/// Re-processes a stored webhook request through the adapter (as loaded now) against the time
/// it was received, so its signature's timestamp still checks out. Events already in the
/// ledger are repeats and write nothing; any that were lost are recorded.
pub async fn replay(
    db: &Db,
    runtime: &PluginRuntime,
    adapters: impl Fn(&str) -> Option<Plugin>,
    receipt_id: &str,
) -> Result<Received, FeedbackError> {
    let row = sqlx::query(
        "SELECT tenant, adapter, method, url, headers, body, received_at FROM webhook_receipts WHERE id = $1",
    )
    .bind(receipt_id)
    .fetch_optional(db)
    .await?
    .ok_or_else(|| FeedbackError::ReceiptNotFound(receipt_id.to_string()))?;
    let tenant: String = row.get("tenant");
    let adapter_name: String = row.get("adapter");
    let adapter = adapters(&adapter_name)
        .filter(|p| p.kind() == PluginKind::ChannelAdapter)
        .ok_or_else(|| FeedbackError::UnknownAdapter(adapter_name.clone()))?;
    let headers: Vec<(String, String)> = serde_json::from_str(&row.get::<String, _>("headers"))
        .map_err(|e| StoreError::Corrupt(format!("webhook receipt {receipt_id} headers: {e}")))?;
    let received_at = store::parse_time(&row.get::<String, _>("received_at"))?;
    let request = WebhookRequest {
        method: row.get("method"),
        url: row.get("url"),
        headers,
        body: row.get("body"),
        received_at,
    };
    let events = verify(runtime, &adapter, &request).await?;
    let mut tx = db.begin().await?;
    let received = ledger::record(
        &mut tx,
        &tenant,
        &adapter_name,
        receipt_id,
        events,
        received_at,
    )
    .await?;
    tx.commit().await?;
    tracing::info!(receipt = %receipt_id, events = received.len(), "webhook replayed");
    Ok(Received {
        receipt_id: receipt_id.to_string(),
        events: received,
    })
}

/// Deletes raw webhook requests received before `before`; the events read from them stay.
pub async fn purge_receipts(db: &Db, before: DateTime<Utc>) -> Result<u64, StoreError> {
    let done = sqlx::query("DELETE FROM webhook_receipts WHERE received_at < $1")
        .bind(store::time_text(before))
        .execute(db)
        .await?;
    Ok(done.rows_affected())
}

/// Request headers whose values are credentials, never stored: the adapters verify a provider
/// by the signature headers it sends, not by these, so a replay verifies without them. Matched
/// without regard to case.
pub const REDACTED_HEADERS: &[&str] = &[
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
    "api-key",
    "x-auth-token",
    "x-access-token",
    "x-amz-security-token",
];

/// What stands in for a redacted header's value.
pub const REDACTED: &str = "[redacted]";

/// The headers as they are stored: the names kept (so the record shows what was sent), the
/// credentials' values replaced.
fn redacted(headers: &[(String, String)]) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let secret = REDACTED_HEADERS
                .iter()
                .any(|h| h.eq_ignore_ascii_case(name.trim()));
            let value = if secret {
                REDACTED.to_string()
            } else {
                value.clone()
            };
            (name.clone(), value)
        })
        .collect()
}

/// What makes two webhook requests the same request, as a hex SHA-256: the tenant, adapter,
/// method, URL and body, each length-prefixed so no two tuples hash alike. Headers are left
/// out: a signature and its timestamp say who sent the body, not what it says, and a replayer
/// could vary any other header at will.
fn request_digest(tenant: &str, adapter: &str, request: &WebhookRequest) -> String {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for part in [
        tenant.as_bytes(),
        adapter.as_bytes(),
        request.method.as_bytes(),
        request.url.as_bytes(),
        &request.body,
    ] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part);
    }
    hex::encode(h.finalize())
}

async fn verify(
    runtime: &PluginRuntime,
    adapter: &Plugin,
    request: &WebhookRequest,
) -> Result<Vec<FeedbackEvent>, FeedbackError> {
    runtime
        .handle_webhook(adapter, request)
        .await?
        .map_err(|rejection| {
            // The adapter's words reach the host's log and the caller: one line each.
            let rejection = match rejection {
                WebhookRejection::Unauthorized(m) => {
                    WebhookRejection::Unauthorized(crate::plugins::one_line(&m).into_owned())
                }
                WebhookRejection::Malformed(m) => {
                    WebhookRejection::Malformed(crate::plugins::one_line(&m).into_owned())
                }
                WebhookRejection::Unsupported(m) => {
                    WebhookRejection::Unsupported(crate::plugins::one_line(&m).into_owned())
                }
            };
            tracing::warn!(adapter = %adapter.reference(), %rejection, "webhook refused");
            FeedbackError::Rejected {
                plugin: adapter.reference().to_string(),
                rejection,
            }
        })
}

/// Called by the dispatch commit that records attempts with provider message ids: events that
/// arrived for those messages before this commit are attached to their deliveries now. One
/// look-up finds which messages have orphans waiting (rarely any); only those are claimed.
pub(crate) async fn claim_orphans_all(
    conn: &mut store::Conn,
    sends: &[(ledger::DeliveryRef, &str, &str)],
) -> Result<usize, StoreError> {
    ledger::claim_orphans_all(conn, sends).await
}
