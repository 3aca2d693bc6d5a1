//! The request a trigger takes, the checks every edge shares, and the trigger's errors.

use crate::plugins::{CallError, RegistryError};
use crate::policy::Severity;
use crate::store::{self, StoreError};

/// The tenant used when none is given.
pub const DEFAULT_TENANT: &str = "default";

#[derive(Clone, Debug)]
pub struct TriggerRequest {
    pub notifier: String,
    pub payload: serde_json::Value,
    pub tenant: String,
    pub idempotency_key: Option<String>,
    /// Send no earlier than this: the deliveries are planned now and deferred until then
    /// (reason `scheduled`). `None` or a past time sends as soon as a worker is free. More than
    /// ten years from now either way is refused ([`crate::time_bounds`]).
    pub deliver_at: Option<chrono::DateTime<chrono::Utc>>,
    /// How much it matters: a recipient's severity floor suppresses what is below it, and
    /// `critical` bypasses preferences, cooldowns, caps and quiet hours. `None` takes the
    /// notifier's declared severity (`normal` for WIT 0.1.0 notifiers); the notifier may still
    /// raise it for a recipient, never lower it.
    pub severity: Option<Severity>,
}

impl TriggerRequest {
    pub fn new(notifier: impl Into<String>, payload: serde_json::Value) -> Self {
        TriggerRequest {
            notifier: notifier.into(),
            payload,
            tenant: DEFAULT_TENANT.to_string(),
            idempotency_key: None,
            deliver_at: None,
            severity: None,
        }
    }
    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = Some(severity);
        self
    }
    pub fn tenant(mut self, tenant: impl Into<String>) -> Self {
        self.tenant = tenant.into();
        self
    }
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
    pub fn deliver_at(mut self, at: chrono::DateTime<chrono::Utc>) -> Self {
        self.deliver_at = Some(at);
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    #[error("invalid trigger: {0}")]
    Invalid(String),
    /// A field of the request breaks the rule for its kind (see [`check_request`]).
    #[error("invalid trigger: {message}")]
    InvalidField { field: String, message: String },
    #[error(transparent)]
    UnknownNotifier(#[from] RegistryError),
    #[error("notifier `{notifier}` rejected the payload: {source}")]
    Plan { notifier: String, source: CallError },
    #[error("request {index} of the batch: {source}")]
    InBatch {
        index: usize,
        source: Box<TriggerError>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<crate::digests::BucketError> for TriggerError {
    fn from(e: crate::digests::BucketError) -> Self {
        match e {
            crate::digests::BucketError::Store(e) => TriggerError::Store(e),
            other => TriggerError::Store(StoreError::Corrupt(other.to_string())),
        }
    }
}

impl From<crate::digests::RuleError> for TriggerError {
    fn from(e: crate::digests::RuleError) -> Self {
        match e {
            crate::digests::RuleError::Store(e) => TriggerError::Store(e),
            other => TriggerError::Store(StoreError::Corrupt(other.to_string())),
        }
    }
}

impl From<sqlx::Error> for TriggerError {
    fn from(e: sqlx::Error) -> Self {
        TriggerError::Store(e.into())
    }
}

impl From<crate::text::TextError> for TriggerError {
    fn from(e: crate::text::TextError) -> Self {
        TriggerError::InvalidField {
            field: e.field.clone(),
            message: e.to_string(),
        }
    }
}

impl From<crate::time_bounds::BoundsError> for TriggerError {
    fn from(e: crate::time_bounds::BoundsError) -> Self {
        TriggerError::InvalidField {
            field: e.field().to_string(),
            message: e.to_string(),
        }
    }
}

impl From<crate::tenants::TenantError> for TriggerError {
    fn from(e: crate::tenants::TenantError) -> Self {
        match e {
            crate::tenants::TenantError::Store(e) => TriggerError::Store(e),
            e => TriggerError::InvalidField {
                field: "tenant".into(),
                message: e.to_string(),
            },
        }
    }
}

/// A request's own fields, by the rules every edge shares: the tenant's name
/// ([`crate::tenants::check_id`]), an idempotency key and the payload's text
/// ([`crate::text`]), and `deliver_at` within ten years of now ([`crate::time_bounds`]).
/// Checked here, where the CLI, the HTTP API and embedding programs all pass, so none of
/// them can store what another refuses.
pub(super) fn check_request(req: &TriggerRequest) -> Result<(), TriggerError> {
    crate::tenants::check_id(&req.tenant)?;
    if !req.payload.is_object() {
        return Err(TriggerError::Invalid(
            "payload must be a JSON object".into(),
        ));
    }
    crate::text::json("payload", &req.payload)?;
    if let Some(key) = &req.idempotency_key {
        crate::text::idempotency_key(key)?;
    }
    // A time is stored as RFC 3339 text and compared as text, which orders times only for
    // four-digit years: `+12026-…` once sorted before today and was sent at once.
    if let Some(at) = req.deliver_at {
        crate::time_bounds::instant("deliver_at", at, store::now())?;
    }
    Ok(())
}
