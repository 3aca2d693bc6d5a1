//! Events: trigger a notifier, list recent events, read one event or notification.

use super::auth::Caller;
use super::error::{ApiError, Path};
use super::request::{Body, body, limit, owned};
use super::schemas::{ErrorBody, EventList, KeyErrors};
use super::state::AppState;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use belfry_host::policy::Severity;
use belfry_host::trigger::NotificationSummary;
use belfry_host::{TriggerOutcome, TriggerRequest};
use serde::Deserialize;
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerBody {
    notifier: String,
    #[serde(default)]
    payload: Value,
    /// Also accepted as the `Idempotency-Key` header (the header wins).
    idempotency_key: Option<String>,
    /// RFC 3339; the deliveries are deferred until then.
    deliver_at: Option<chrono::DateTime<chrono::Utc>>,
    severity: Option<Severity>,
}

#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "events",
    summary = "Trigger a notifier",
    request_body = TriggerBody,
    params(("Idempotency-Key" = Option<String>, Header, description = "repeating a key writes nothing and answers the original")),
    responses(
        (status = 201, description = "the event, its notifications and deliveries", body = TriggerOutcome),
        (status = 200, description = "a repeat of an idempotency key: the original ids, nothing written", body = TriggerOutcome),
        KeyErrors,
        (status = 413, description = "the body is over the limit", body = ErrorBody),
        (status = 422, description = "well-formed but wrong: the message and `field` say what", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn trigger(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    b: Body<TriggerBody>,
) -> Result<Response, ApiError> {
    let header_key = match headers.get("idempotency-key") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::bad_request("Idempotency-Key is not ASCII"))?
                .to_string(),
        ),
        None => None,
    };
    let req = request(body(b)?, &caller, header_key)?;
    // At most `trigger::MAX_RECIPIENTS` recipients: the engine refuses a bigger fan-out (422)
    // before writing anything.
    let outcome: TriggerOutcome = state.engine.trigger(&req).await?;
    let status = if outcome.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(outcome)).into_response())
}

/// What a trigger would do, with each delivery's content: `belfry trigger --dry-run --render
/// --json` prints the same.
#[derive(ToSchema)]
#[schema(as = Preview)]
#[allow(dead_code)]
pub struct PreviewDoc {
    notifier: String,
    /// The event an earlier trigger with the same idempotency key created: a real trigger
    /// would write nothing.
    duplicate_of: Option<String>,
    /// Per recipient (`recipient_id`), per channel: what the policy would do (`would`: send,
    /// defer, suppress, hold) and why (`decision`), and for every channel not suppressed the
    /// content it would carry (`rendered`: request, content, rendered_by) or why it could not
    /// be rendered (`render_error`: step, reason, message).
    recipients: Vec<Value>,
}

#[utoipa::path(
    post,
    path = "/v1/events/preview",
    tag = "events",
    summary = "Preview a trigger: plan, policy and rendered content, writing and sending nothing",
    request_body = TriggerBody,
    responses(
        (status = 200, description = "what each delivery would do and carry; nothing was written or sent", body = PreviewDoc),
        KeyErrors,
        (status = 413, description = "the body is over the limit", body = ErrorBody),
        (status = 422, description = "well-formed but wrong: the message and `field` say what", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn preview(
    State(state): State<AppState>,
    caller: Caller,
    b: Body<TriggerBody>,
) -> Result<Json<belfry_host::trigger::DryRun>, ApiError> {
    // The caller's own tenant, as for a trigger: a preview reads that tenant's settings.
    let req = request(body(b)?, &caller, None)?;
    Ok(Json(state.engine.preview(&req).await?))
}

/// The trigger a body asks for, in the caller's tenant; the idempotency key from the header
/// wins over the body's. The engine checks the key by the rule the CLI and embedding programs
/// meet too.
fn request(
    b: TriggerBody,
    caller: &Caller,
    header_key: Option<String>,
) -> Result<TriggerRequest, ApiError> {
    if !b.payload.is_object() {
        return Err(ApiError::invalid(
            "payload",
            "payload must be a JSON object",
        ));
    }
    let mut req = TriggerRequest::new(b.notifier, b.payload).tenant(caller.tenant.clone());
    req.idempotency_key = header_key.or(b.idempotency_key);
    req.deliver_at = b.deliver_at;
    req.severity = b.severity;
    Ok(req)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct EventsQuery {
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "events",
    summary = "Recent events, newest first",
    params(EventsQuery),
    responses(
        (status = 200, description = "", body = EventList),
        KeyErrors,
    ),
    security(("api_key" = [])),
)]
pub async fn events(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<EventList>, ApiError> {
    let q = q?.0;
    let events = state
        .engine
        .recent_events(&caller.tenant, limit(q.limit)?)
        .await?;
    Ok(Json(EventList { events }))
}

#[utoipa::path(
    get,
    path = "/v1/events/{id}",
    tag = "events",
    summary = "An event and what it became",
    params(("id" = String, Path, description = "event id")),
    responses(
        (status = 200, description = "", body = TriggerOutcome),
        KeyErrors,
        (status = 404, description = "no such id in the caller's tenant", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn event(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<TriggerOutcome>, ApiError> {
    owned(&state, &caller, "event", &id).await?;
    let outcome = state.engine.event(&id).await.map_err(|e| match e {
        belfry_host::trigger::TriggerError::Invalid(_) => ApiError::not_found("event", &id),
        e => e.into(),
    })?;
    Ok(Json(outcome))
}

#[utoipa::path(
    get,
    path = "/v1/notifications/{id}",
    tag = "events",
    summary = "A notification and its deliveries",
    params(("id" = String, Path, description = "notification id")),
    responses(
        (status = 200, description = "", body = NotificationSummary),
        KeyErrors,
        (status = 404, description = "no such id in the caller's tenant", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn notification(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    owned(&state, &caller, "notification", &id).await?;
    match state.engine.notification(&id).await? {
        Some(n) => Ok(Json(n).into_response()),
        None => Err(ApiError::not_found("notification", &id)),
    }
}
