//! Provider webhooks in, and what they taught belfry about a delivery out.
//!
//! `POST /v1/webhooks/{tenant}/{adapter}` takes no API key: the adapter's signature check over
//! the raw request is the authentication. The size limit applies first (413), then the tenant
//! must be a valid name (400) that belfry knows (404), then the adapter verifies and parses;
//! any refusal answers 4xx and stores nothing, and 200 comes only after
//! the events are committed, so a provider that retries a lost answer repeats nothing.

use super::auth::Caller;
use super::error::{ApiError, Path};
use super::schemas::{ErrorBody, FeedbackView, KeyErrors};
use super::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{OriginalUri, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use belfry_host::feedback::{FeedbackError, Received, WebhookRejection, WebhookRequest};
use belfry_host::tenants;

#[utoipa::path(
    post,
    path = "/v1/webhooks/{tenant}/{adapter}",
    tag = "webhooks",
    summary = "A provider's webhook, verified by the adapter that sent the message",
    params(
        ("tenant" = String, Path, description = "the tenant whose deliveries the events are about"),
        ("adapter" = String, Path, description = "the channel adapter plugin's name, e.g. `resend`"),
    ),
    request_body(content = Vec<u8>, description = "the provider's request, exactly as it sends it", content_type = "application/octet-stream"),
    responses(
        (status = 200, description = "verified; every event is durable (repeats are marked `duplicate`)", body = Received),
        (status = 400, description = "verified but unreadable, or a bad tenant id", body = ErrorBody),
        (status = 401, description = "the signature is missing, wrong or outside the 5-minute tolerance", body = ErrorBody),
        (status = 404, description = "no such tenant or adapter, or the adapter receives no webhooks", body = ErrorBody),
        (status = 413, description = "the body is over the limit", body = ErrorBody),
        (status = 503, description = "the adapter failed; nothing was stored, the provider should retry", body = ErrorBody),
    ),
)]
pub async fn receive(
    State(state): State<AppState>,
    Path((tenant, adapter)): Path<(String, String)>,
    method: Method,
    // The whole path: under the `/v1` nest, `Uri` would lose the prefix, and Twilio signs
    // the URL it called.
    OriginalUri(uri): OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    // A name outside the rule is the caller's mistake (400); a valid name belfry does not
    // know is refused by the engine (404), so nothing is stored for it.
    let tenant = tenants::TenantId::new(tenant)
        .map_err(|e| ApiError::bad_request(e.to_string()).field("tenant"))?;
    let request = WebhookRequest {
        method: method.to_string(),
        url: public_url(&state, &headers, &uri),
        headers: headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_string(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
        received_at: belfry_host::store::now(),
    };
    let received = state
        .engine
        .receive_webhook(&tenant, &adapter, request)
        .await
        .map_err(webhook_error)?;
    Ok(Json(received).into_response())
}

/// The URL the provider called, as it saw it: the configured public base URL (belfry behind
/// a proxy), else the request's own Host header over plain HTTP.
fn public_url(state: &AppState, headers: &HeaderMap, uri: &Uri) -> String {
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    match &state.config.public_url {
        Some(base) => format!("{}{path}", base.trim_end_matches('/')),
        None => {
            let host = headers
                .get(axum::http::header::HOST)
                .and_then(|h| h.to_str().ok())
                .map_or_else(|| state.config.listen.to_string(), str::to_string);
            format!("http://{host}{path}")
        }
    }
}

fn webhook_error(e: FeedbackError) -> ApiError {
    match e {
        FeedbackError::UnknownAdapter(name) => ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no channel adapter named `{name}` is loaded"),
        ),
        FeedbackError::Rejected { plugin, rejection } => {
            let (status, code) = match &rejection {
                WebhookRejection::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
                WebhookRejection::Malformed(_) => (StatusCode::BAD_REQUEST, "bad_request"),
                WebhookRejection::Unsupported(_) => (StatusCode::NOT_FOUND, "not_found"),
            };
            ApiError::new(status, code, format!("{plugin}: {rejection}"))
        }
        FeedbackError::Plugin(e) => {
            tracing::warn!(error = %e, "adapter failed on a webhook");
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "plugin_failed",
                format!("{e}; nothing was stored"),
            )
        }
        FeedbackError::ReceiptNotFound(id) => ApiError::not_found("webhook receipt", &id),
        e @ FeedbackError::UnknownTenant(_) => {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", e.to_string()).field("tenant")
        }
        FeedbackError::Store(e) => ApiError::internal(e),
    }
}

#[utoipa::path(
    get,
    path = "/v1/deliveries/{id}/feedback",
    tag = "deliveries",
    summary = "What providers reported about a delivery: its projection and events",
    params(("id" = String, Path, description = "delivery id")),
    responses(
        (status = 200, description = "", body = FeedbackView),
        KeyErrors,
        (status = 404, description = "no such id in the caller's tenant", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn delivery_feedback(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    if state.engine.delivery(&id).await?.is_none()
        || state.engine.tenant_of(&id).await?.as_deref() != Some(caller.tenant.as_str())
    {
        return Err(ApiError::not_found("delivery", &id));
    }
    let (projection, events) = state.engine.delivery_feedback(&caller.tenant, &id).await?;
    Ok(Json(FeedbackView { projection, events }).into_response())
}
