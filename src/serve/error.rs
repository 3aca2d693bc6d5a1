//! One error shape for every `/v1` answer: `{"error": {"code", "message", "field"?}}`, with
//! the status that says whose fault it is. Bad input is never a 5xx: only the database or an
//! engine fault is, and then the message says so without leaking internals.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use belfry_host::dispatch::ChangeError;
use belfry_host::endpoints::EndpointError;
use belfry_host::explain::ExplainError;
use belfry_host::inbox::InboxError;
use belfry_host::inbox::token::TokenError;
use belfry_host::keys::KeyError;
use belfry_host::plugins::uploads::UploadError;
use belfry_host::policy::PolicyError;
use belfry_host::policy::quiet_hours::QuietHoursError;
use belfry_host::store::StoreError;
use belfry_host::tenants::TenantError;
use belfry_host::trigger::TriggerError;
use belfry_host::workflows::SignalError;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
    /// Seconds, for a 429.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
        }
    }
    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", message).field(field)
    }
    /// Also what another tenant's ids answer: their existence is not disclosed.
    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no {what} has the id `{id}`"),
        )
    }
    pub fn internal(e: impl std::fmt::Display) -> Self {
        // The cause goes to the log; the caller learns only that it was ours.
        tracing::error!(error = %e, "internal error answering a request");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the server failed to answer; the error is in its log",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = serde_json::json!({"code": self.code, "message": self.message});
        if let Some(f) = self.field {
            error["field"] = f.into();
        }
        let mut response = (
            self.status,
            axum::Json(serde_json::json!({ "error": error })),
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// NUL in a request's path or query (`%00`), refused before any handler runs: the one text
/// rule ([`belfry_host::text`]) for every route at once, including the ones that only look
/// up (on PostgreSQL a NUL in a lookup fails the statement: a 500). Bodies are checked by
/// [`super::request::Body`].
pub async fn refuse_nul(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let uri = request.uri();
    // A NUL can reach a path or query only percent-encoded: the HTTP parser refuses a raw one.
    let nul = |text: &str| text.contains("%00");
    let place = if nul(uri.path()) {
        Some("path")
    } else if uri.query().is_some_and(nul) {
        Some("query")
    } else {
        None
    };
    match place {
        Some(place) => ApiError::new(
            StatusCode::BAD_REQUEST,
            if place == "path" {
                "bad_path"
            } else {
                "bad_query"
            },
            format!("the {place} must not contain NUL (%00)"),
        )
        .into_response(),
        None => next.run(request).await,
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            // The caller's own stored settings stop this request; the message says how to
            // set them again. Answering 500 would blame the server for the tenant's data.
            StoreError::OutOfRange(m) => {
                ApiError::new(StatusCode::CONFLICT, "stored_settings_out_of_range", m)
            }
            e => ApiError::internal(e),
        }
    }
}

impl From<TriggerError> for ApiError {
    fn from(e: TriggerError) -> Self {
        match e {
            TriggerError::Invalid(m) => ApiError::invalid("payload", m),
            TriggerError::InvalidField { field, message } => ApiError::invalid(&field, message),
            TriggerError::UnknownNotifier(e) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "unknown_notifier",
                e.to_string(),
            )
            .field("notifier"),
            e @ TriggerError::Plan { .. } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "payload_rejected",
                e.to_string(),
            )
            .field("payload"),
            e @ TriggerError::InBatch { .. } => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string())
            }
            TriggerError::Store(e) => e.into(),
        }
    }
}

impl From<ExplainError> for ApiError {
    fn from(e: ExplainError) -> Self {
        match e {
            ExplainError::NotFound(id) => ApiError::not_found("delivery", &id),
            ExplainError::Store(e) => e.into(),
        }
    }
}

impl From<ChangeError> for ApiError {
    fn from(e: ChangeError) -> Self {
        match e {
            ChangeError::NotFound(id) => ApiError::not_found("delivery", &id),
            ChangeError::Text(e) => ApiError::invalid(&e.field, e.to_string()),
            ChangeError::Store(e) => e.into(),
            e => ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string()),
        }
    }
}

impl From<EndpointError> for ApiError {
    fn from(e: EndpointError) -> Self {
        match e {
            EndpointError::InvalidUrl { .. } => ApiError::invalid("url", e.to_string()),
            EndpointError::UnknownEvent { .. } | EndpointError::NoEvents => {
                ApiError::invalid("events", e.to_string())
            }
            EndpointError::NotFound(id) => ApiError::not_found("endpoint", &id),
            EndpointError::Disabled(_) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            EndpointError::Client(_) => ApiError::internal(e),
            EndpointError::Text(e) => ApiError::invalid(&e.field, e.to_string()),
            EndpointError::Tenant(e) => e.into(),
            EndpointError::Store(e) => e.into(),
        }
    }
}

impl From<PolicyError> for ApiError {
    fn from(e: PolicyError) -> Self {
        match e {
            PolicyError::Invalid { field, problem } => {
                ApiError::invalid(&field, format!("{field}: {problem}"))
            }
            PolicyError::QuietHours(e) => {
                let field = match &e {
                    QuietHoursError::UnknownZone(_) => "time_zone",
                    QuietHoursError::MinuteOutOfRange { field, .. } => field,
                    _ => "quiet_hours",
                };
                ApiError::invalid(field, e.to_string())
            }
            PolicyError::NotFound { id, .. } => ApiError::not_found("suppression", &id),
            PolicyError::Store(e) => e.into(),
        }
    }
}

impl From<InboxError> for ApiError {
    fn from(e: InboxError) -> Self {
        match e {
            InboxError::NotFound { id, .. } => ApiError::not_found("inbox item", &id),
            e @ InboxError::BadCursor(_) => {
                ApiError::new(StatusCode::BAD_REQUEST, "bad_cursor", e.to_string()).field("cursor")
            }
            InboxError::Store(e) => e.into(),
        }
    }
}

impl From<TokenError> for ApiError {
    fn from(e: TokenError) -> Self {
        match e {
            e @ (TokenError::Invalid(_) | TokenError::Expired) => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string())
            }
            e @ TokenError::BadTtl(_) => ApiError::invalid("ttl_secs", e.to_string()),
            e @ TokenError::BadRecipient => ApiError::invalid("recipient_id", e.to_string()),
            TokenError::Tenant(e) => e.into(),
            TokenError::Store(e) => e.into(),
        }
    }
}

impl From<TenantError> for ApiError {
    fn from(e: TenantError) -> Self {
        match e {
            e @ TenantError::Invalid(_) => ApiError::invalid("tenant", e.to_string()),
            TenantError::Store(e) => e.into(),
        }
    }
}

impl From<KeyError> for ApiError {
    fn from(e: KeyError) -> Self {
        match e {
            KeyError::Tenant(e) => e.into(),
            e @ KeyError::Invalid(_) => ApiError::invalid("name", e.to_string()),
            KeyError::NotFound(id) => ApiError::not_found("API key", &id),
            KeyError::Store(e) => e.into(),
        }
    }
}

impl From<UploadError> for ApiError {
    fn from(e: UploadError) -> Self {
        match e {
            UploadError::Load(e) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "plugin_rejected",
                e.to_string(),
            ),
            UploadError::Conflict(e) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            UploadError::Workflow(belfry_host::workflows::definition::PublishError::Store(e)) => {
                e.into()
            }
            UploadError::Workflow(e) => {
                ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
            }
            UploadError::Store(e) => e.into(),
        }
    }
}

impl From<SignalError> for ApiError {
    fn from(e: SignalError) -> Self {
        match e {
            e @ SignalError::Invalid(_) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid", e.to_string())
            }
            SignalError::Store(e) => e.into(),
        }
    }
}

/// Malformed JSON, a wrong type or a missing field is the caller's (400); a body over the
/// limit is 413.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", r.body_text());
        }
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", r.body_text())
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_query", r.body_text())
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(r: axum::extract::rejection::PathRejection) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_path", r.body_text())
    }
}

/// `axum::extract::Path` with our error shape for a segment that cannot be read (say, one
/// that is not UTF-8 once percent-decoded). Handlers name it as they would axum's.
pub struct Path<T>(pub T);

impl<S, T> axum::extract::FromRequestParts<S> for Path<T>
where
    T: serde::de::DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        let axum::extract::Path(t) =
            axum::extract::Path::<T>::from_request_parts(parts, state).await?;
        Ok(Path(t))
    }
}
