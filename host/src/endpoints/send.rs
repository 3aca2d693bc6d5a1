//! One attempt to post one message to its endpoint, and what its outcome writes.
//!
//! Like a delivery job, [`Sender::attempt`] writes nothing: it reads the message, signs it
//! and posts it. [`commit`] writes the outcome in the worker's batch transaction, guarded by
//! the job's lease: the attempt row (always, it happened), the message's status, the
//! endpoint's run of failures, and either the next try on the Standard Webhooks schedule or
//! the end of the message.

use super::guard::AddressPolicy;
use super::{EndpointError, EndpointsConfig};
use crate::jobs::{self as queue, Handler, Leased, job_kind, job_state};
use crate::store::{self, Conn, Db, StoreError};
use crate::vocabulary::stored_vocabulary;
use chrono::{DateTime, Utc};
use sqlx::Row;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// When the next try follows a failed one: the Standard Webhooks spec's example schedule.
/// The first try is immediate; after try `n` fails, try `n + 1` waits `SCHEDULE[n - 1]`; after
/// the eighth, the message has failed.
pub const SCHEDULE: [Duration; 7] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// Tries per message: the first, then one per [`SCHEDULE`] step.
pub const MAX_ATTEMPTS: i64 = SCHEDULE.len() as i64 + 1;

/// How much of an endpoint's answer is kept with the attempt, for the operator to read.
const KEEP_RESPONSE: usize = 2048;

stored_vocabulary! {
    /// Where an endpoint message stands (column `endpoint_messages.status`).
    MessageStatus ("endpoint message status") {
        /// Due for a try (the first, the next after a failed one, or anew after recovery).
        Pending => "pending",
        Delivered => "delivered",
        Failed => "failed",
    }
}

stored_vocabulary! {
    /// Why a message has its status (column `endpoint_messages.status_reason`).
    MessageReason ("endpoint message reason") {
        /// Pending after a failed try, with `next_attempt_at`.
        Retrying => "retrying",
        EndpointDisabled => "endpoint_disabled",
        /// Pending again: sent anew after its endpoint was enabled.
        Recovered => "recovered",
        RetriesExhausted => "retries_exhausted",
    }
}

/// Message statuses and reasons as text: the strings of [`MessageStatus`] and
/// [`MessageReason`], for code that compares or binds them as text.
pub mod status {
    use super::{MessageReason, MessageStatus};

    pub const PENDING: &str = MessageStatus::Pending.as_str();
    pub const DELIVERED: &str = MessageStatus::Delivered.as_str();
    pub const FAILED: &str = MessageStatus::Failed.as_str();
    /// Pending after a failed try, with `next_attempt_at`.
    pub const RETRYING: &str = MessageReason::Retrying.as_str();
    pub const ENDPOINT_DISABLED: &str = MessageReason::EndpointDisabled.as_str();
    /// Pending again: sent anew after its endpoint was enabled.
    pub const RECOVERED: &str = MessageReason::Recovered.as_str();
    pub const RETRIES_EXHAUSTED: &str = MessageReason::RetriesExhausted.as_str();
}

/// Posts messages: the TLS roots and the SSRF policy, shared by every attempt. Cheap to clone.
///
/// Each attempt resolves the endpoint's host, keeps the addresses the policy permits, and
/// connects to one of those itself, so no later lookup can swap in another address.
#[derive(Clone)]
pub struct Sender {
    tls: tokio_rustls::TlsConnector,
    policy: Arc<AddressPolicy>,
    disable_after: u32,
    timeout: Duration,
}

impl Sender {
    pub fn new(config: &EndpointsConfig) -> Result<Sender, EndpointError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        };
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| EndpointError::Client(e.to_string()))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        Ok(Sender {
            tls: tokio_rustls::TlsConnector::from(Arc::new(tls)),
            policy: Arc::new(config.address_policy()),
            disable_after: config.disable_after.max(1),
            timeout: config.timeout,
        })
    }

    pub(crate) fn policy(&self) -> &AddressPolicy {
        &self.policy
    }

    /// Posts the message once, if it and its endpoint still want it. Writes nothing.
    #[tracing::instrument(skip(self, db))]
    pub(crate) async fn attempt(&self, db: &Db, message_id: &str) -> Result<Attempted, StoreError> {
        let row = sqlx::query(
            "SELECT m.payload, m.status, m.attempts, m.endpoint_id, e.url, e.secret, e.enabled
             FROM endpoint_messages m JOIN endpoints e ON e.id = m.endpoint_id
             WHERE m.id = $1",
        )
        .bind(message_id)
        .fetch_optional(db)
        .await?;
        let Some(row) = row else {
            return Ok(Attempted::Gone(
                "the message or its endpoint was deleted".into(),
            ));
        };
        let endpoint_id: String = row.get("endpoint_id");
        if row.get::<String, _>("status") != MessageStatus::Pending.as_str() {
            return Ok(Attempted::Gone("the message is no longer pending".into()));
        }
        if row.get::<i64, _>("enabled") == 0 {
            return Ok(Attempted::Disabled {
                message_id: message_id.to_string(),
            });
        }
        let payload: String = row.get("payload");
        let url: String = row.get("url");
        let secret: String = row.get("secret");
        let attempt = row.get::<i64, _>("attempts") + 1;
        let started_at = store::now();
        let clock = Instant::now();
        let result = self.post(message_id, &url, &secret, &payload).await;
        let duration_ms = clock.elapsed().as_millis() as i64;
        let (status_code, response, error) = match result {
            Ok((code, body)) if (200..300).contains(&code) => (Some(code), Some(body), None),
            Ok((code, body)) => (
                Some(code),
                Some(body),
                Some(format!("the endpoint answered {code}")),
            ),
            Err(e) => (None, None, Some(e)),
        };
        tracing::info!(
            endpoint = %endpoint_id, attempt, status = ?status_code, error = ?error,
            "endpoint attempt"
        );
        Ok(Attempted::Tried(Tried {
            message_id: message_id.to_string(),
            endpoint_id,
            attempt,
            started_at,
            duration_ms,
            status_code,
            response,
            error,
        }))
    }

    /// One signed POST: `webhook-id` is the message id (the same on every try, so a receiver
    /// can drop repeats), `webhook-timestamp` this try's time, `webhook-signature` v1 HMAC.
    /// A redirect is not followed (it could point anywhere); like any non-2xx it is a failure.
    async fn post(
        &self,
        id: &str,
        url: &str,
        secret: &str,
        payload: &str,
    ) -> Result<(i64, String), String> {
        // Registered URLs were checked then; the allow-list may have shrunk since.
        let url = self.policy.check_url(url)?;
        let timestamp = store::now().timestamp();
        let signature = standardwebhooks::Webhook::new(secret)
            .and_then(|w| w.sign(id, timestamp, payload.as_bytes()))
            .map_err(|e| format!("signing failed: {e}"))?;
        let host = match url.host() {
            Some(url::Host::Domain(d)) => d.to_string(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            None => return Err("the URL has no host".into()),
        };
        let port = url.port_or_known_default().unwrap_or(80);
        let authority = match url.port() {
            Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_string(),
        };
        let target = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let request = http::Request::post(target)
            .header(http::header::HOST, authority)
            .header(http::header::CONTENT_TYPE, "application/json")
            .header(
                http::header::USER_AGENT,
                concat!("belfry/", env!("CARGO_PKG_VERSION")),
            )
            .header("webhook-id", id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(http_body_util::Full::new(bytes::Bytes::from(
                payload.to_string(),
            )))
            .map_err(|e| format!("bad request: {e}"))?;
        let https = url.scheme() == "https";
        let attempt = async {
            let addrs = super::guard::resolve(&self.policy, &host, port).await?;
            let stream = connect(&addrs).await?;
            if https {
                let name = rustls::pki_types::ServerName::try_from(host.clone())
                    .map_err(|e| format!("`{host}` is not a TLS server name: {e}"))?;
                let tls = self
                    .tls
                    .connect(name, stream)
                    .await
                    .map_err(|e| format!("TLS with {host} failed: {e}"))?;
                exchange(tls, request).await
            } else {
                exchange(stream, request).await
            }
        };
        tokio::time::timeout(self.timeout, attempt)
            .await
            .map_err(|_| format!("no answer within {} s", self.timeout.as_secs()))?
    }
}

/// Connects to the first address that answers.
async fn connect(addrs: &[std::net::SocketAddr]) -> Result<tokio::net::TcpStream, String> {
    let mut last = String::from("no address to connect to");
    for a in addrs {
        match tokio::net::TcpStream::connect(a).await {
            Ok(s) => return Ok(s),
            Err(e) => last = format!("connecting to {a} failed: {e}"),
        }
    }
    Err(last)
}

/// Sends one HTTP/1.1 request on `io` and reads the status and the start of the body.
async fn exchange<S>(
    io: S,
    request: http::Request<http_body_util::Full<bytes::Bytes>>,
) -> Result<(i64, String), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use http_body_util::BodyExt;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(io))
            .await
            .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    // The connection is driven beside the request and dropped with it.
    let driver = tokio::spawn(connection);
    let result = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| format!("the request failed: {e}"))?;
        let code = response.status().as_u16() as i64;
        let mut body = response.into_body();
        let mut kept = Vec::new();
        while kept.len() < KEEP_RESPONSE {
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        kept.extend_from_slice(data);
                    }
                }
                // The status decided the outcome; a body cut short does not change it.
                Some(Err(_)) | None => break,
            }
        }
        kept.truncate(KEEP_RESPONSE);
        Ok((code, String::from_utf8_lossy(&kept).into_owned()))
    }
    .await;
    driver.abort();
    result
}

/// What one `endpoint_send` job found or did.
#[derive(Clone)]
pub enum Attempted {
    /// Nothing to do: the message was deleted or is no longer pending.
    Gone(String),
    /// The endpoint was disabled: nothing was sent, and the message ends.
    Disabled {
        message_id: String,
    },
    Tried(Tried),
}

#[derive(Clone)]
pub struct Tried {
    message_id: String,
    endpoint_id: String,
    attempt: i64,
    started_at: DateTime<Utc>,
    duration_ms: i64,
    status_code: Option<i64>,
    response: Option<String>,
    /// `None` when the endpoint answered 2xx.
    error: Option<String>,
}

/// The `endpoint_send` job's handler: one post of a lifecycle event to one endpoint.
pub struct Post(pub Sender);

impl Handler for Post {
    const KIND: &'static str = job_kind::ENDPOINT_SEND;
    /// The job is finished or rescheduled by [`commit`], by what the attempt did.
    const FINISHED_BY_BATCH: bool = false;
    type Ran = Attempted;

    async fn run(&self, db: &Db, job: &Leased) -> Result<Attempted, StoreError> {
        self.0.attempt(db, &job.subject_id).await
    }

    async fn commit(
        &self,
        tx: &mut Conn,
        job: &Leased,
        ran: &Attempted,
        _held: bool,
    ) -> Result<bool, StoreError> {
        // A copy: should the batch's transaction fail, the outcome is committed again.
        commit(tx, &self.0, job, ran.clone()).await
    }
}

/// Writes what an attempt did (see the module comment). Returns whether the job was put back
/// for a later try.
pub(crate) async fn commit(
    tx: &mut Conn,
    sender: &Sender,
    job: &Leased,
    attempted: Attempted,
) -> Result<bool, StoreError> {
    let now = store::time_text(store::now());
    let t = match attempted {
        Attempted::Gone(why) => {
            queue::finish(tx, job).await?;
            tracing::info!(job = %job.id, %why, "endpoint job dropped");
            return Ok(false);
        }
        Attempted::Disabled { message_id } => {
            if queue::finish(tx, job).await? {
                end_message(
                    tx,
                    &message_id,
                    MessageStatus::Failed,
                    Some(MessageReason::EndpointDisabled),
                    None,
                    &now,
                )
                .await?;
            }
            return Ok(false);
        }
        Attempted::Tried(t) => t,
    };
    // The attempt happened whether or not this worker still holds the job.
    record_attempt(tx, &t).await?;
    let Some(error) = &t.error else {
        sqlx::query("UPDATE endpoints SET failure_streak = 0, updated_at = $1 WHERE id = $2")
            .bind(&now)
            .bind(&t.endpoint_id)
            .execute(&mut *tx)
            .await?;
        if queue::finish(tx, job).await? {
            end_message(
                tx,
                &t.message_id,
                MessageStatus::Delivered,
                None,
                Some(t.attempt),
                &now,
            )
            .await?;
        }
        return Ok(false);
    };
    let disabled = lengthen_streak(tx, sender, &t, error, &now).await?;
    let next = match () {
        _ if disabled => Err(MessageReason::EndpointDisabled),
        _ if t.attempt >= MAX_ATTEMPTS => Err(MessageReason::RetriesExhausted),
        _ => Ok(store::now()
            + chrono::Duration::from_std(SCHEDULE[(t.attempt - 1) as usize])
                .expect("the schedule fits")),
    };
    match next {
        Ok(at) => retry_later(tx, job, &t, error, at, &now).await,
        Err(reason) => {
            if queue::finish(tx, job).await? {
                end_message(
                    tx,
                    &t.message_id,
                    MessageStatus::Failed,
                    Some(reason),
                    Some(t.attempt),
                    &now,
                )
                .await?;
            }
            Ok(false)
        }
    }
}

/// The attempt row, and its count in the metrics.
async fn record_attempt(tx: &mut Conn, t: &Tried) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO endpoint_attempts (id, message_id, attempt, started_at, duration_ms, status_code, error, response)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(store::new_id())
    .bind(&t.message_id)
    .bind(t.attempt)
    .bind(store::time_text(t.started_at))
    .bind(t.duration_ms)
    .bind(t.status_code)
    .bind(&t.error)
    .bind(&t.response)
    .execute(&mut *tx)
    .await?;
    metrics::counter!(crate::metrics::ENDPOINT_ATTEMPTS, "outcome" => if t.error.is_none() { "delivered" } else { "failed" }).increment(1);
    Ok(())
}

/// A failure lengthens the endpoint's run; a run long enough disables it. Returns whether the
/// endpoint is disabled now.
async fn lengthen_streak(
    tx: &mut Conn,
    sender: &Sender,
    t: &Tried,
    error: &str,
    now: &str,
) -> Result<bool, StoreError> {
    let row = sqlx::query(
        "UPDATE endpoints SET failure_streak = failure_streak + 1, updated_at = $1 WHERE id = $2
         RETURNING failure_streak, enabled",
    )
    .bind(now)
    .bind(&t.endpoint_id)
    .fetch_optional(&mut *tx)
    .await?;
    let (streak, enabled) = row
        .map(|r| {
            (
                r.get::<i64, _>("failure_streak"),
                r.get::<i64, _>("enabled") == 1,
            )
        })
        .unwrap_or((0, false));
    if !enabled {
        return Ok(true);
    }
    if streak < sender.disable_after as i64 {
        return Ok(false);
    }
    let why = format!("disabled after {streak} failed attempts in a row; the last: {error}");
    sqlx::query(
        "UPDATE endpoints SET enabled = 0, disabled_reason = $1, disabled_at = $2 WHERE id = $3",
    )
    .bind(&why)
    .bind(now)
    .bind(&t.endpoint_id)
    .execute(&mut *tx)
    .await?;
    tracing::warn!(endpoint = %t.endpoint_id, streak, "endpoint disabled");
    Ok(true)
}

/// Puts the job back for the next try at `at`, if this worker still holds it; returns whether
/// it did.
async fn retry_later(
    tx: &mut Conn,
    job: &Leased,
    t: &Tried,
    error: &str,
    at: DateTime<Utc>,
    now: &str,
) -> Result<bool, StoreError> {
    if !queue::reschedule(tx, job, at, job_state::RETRYING, None, Some(error), false).await? {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE endpoint_messages SET status_reason = $1, attempts = $2, next_attempt_at = $3, updated_at = $4
         WHERE id = $5",
    )
    .bind(MessageReason::Retrying.as_str())
    .bind(t.attempt)
    .bind(store::time_text(at))
    .bind(now)
    .bind(&t.message_id)
    .execute(&mut *tx)
    .await?;
    Ok(true)
}

async fn end_message(
    tx: &mut Conn,
    id: &str,
    status: MessageStatus,
    reason: Option<MessageReason>,
    attempts: Option<i64>,
    now: &str,
) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE endpoint_messages SET status = $1, status_reason = $2, attempts = COALESCE($3, attempts),
                next_attempt_at = NULL, updated_at = $4
         WHERE id = $5",
    )
    .bind(status.as_str())
    .bind(reason.map(MessageReason::as_str))
    .bind(attempts)
    .bind(now)
    .bind(id)
    .execute(&mut *tx)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_the_specs_example() {
        let secs: Vec<u64> = SCHEDULE.iter().map(|d| d.as_secs()).collect();
        assert_eq!(secs, [5, 300, 1800, 7200, 18000, 36000, 36000]);
        assert_eq!(MAX_ATTEMPTS, 8);
    }

    #[test]
    fn every_message_status_and_reason_round_trips_through_its_distinct_stored_string() {
        crate::vocabulary::check_round_trips(MessageStatus::ALL);
        crate::vocabulary::check_round_trips(MessageReason::ALL);
        assert!(MessageStatus::parse("retrying").is_err());
        assert_eq!(status::ENDPOINT_DISABLED, "endpoint_disabled");
        assert_eq!(status::PENDING, "pending");
    }
}
