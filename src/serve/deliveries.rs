//! Deliveries: the cursor-paged list, one delivery, its explanation, and cancelling it.

use super::auth::Caller;
use super::error::{ApiError, Path};
use super::request::{limit, owned, refuse_nul};
use super::schemas::{DeliveryPage, ErrorBody, KeyErrors};
use super::state::AppState;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use belfry_host::content::Channel;
use belfry_host::deliveries::{DeliveryFilter, DeliveryRecord};
use belfry_host::dispatch::Dispatched;
use belfry_host::explain::Explanation;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ListQuery {
    limit: Option<i64>,
    cursor: Option<String>,
    status: Option<String>,
    channel: Option<Channel>,
    recipient_id: Option<String>,
}

const STATUSES: &[&str] = &[
    "pending",
    "deferred",
    "held",
    "succeeded",
    "failed",
    "cancelled",
    "suppressed",
    "digested",
];

#[utoipa::path(
    get,
    path = "/v1/deliveries",
    tag = "deliveries",
    summary = "Deliveries, newest first, by cursor",
    params(ListQuery),
    responses(
        (status = 200, description = "", body = DeliveryPage),
        KeyErrors,
    ),
    security(("api_key" = [])),
)]
pub async fn deliveries(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<ListQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<DeliveryPage>, ApiError> {
    let q = q?.0;
    if let Some(s) = &q.status
        && !STATUSES.contains(&s.as_str())
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_query",
            format!("status `{s}` is not one of {}", STATUSES.join(", ")),
        )
        .field("status"));
    }
    let cursor = match &q.cursor {
        Some(c) => Some(belfry_host::store::parse_cursor(c).ok_or_else(|| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_cursor",
                format!("cursor `{c}` is not one this list handed out"),
            )
            .field("cursor")
        })?),
        None => None,
    };
    let filter = DeliveryFilter {
        status: q.status,
        channel: q.channel.map(|c| c.as_str().to_string()),
        recipient_id: q.recipient_id,
    };
    let (rows, next) = state
        .engine
        .deliveries(&caller.tenant, &filter, limit(q.limit)?, cursor)
        .await?;
    Ok(Json(DeliveryPage {
        deliveries: rows,
        next_cursor: next,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/deliveries/{id}",
    tag = "deliveries",
    summary = "One delivery",
    params(("id" = String, Path, description = "delivery id")),
    responses(
        (status = 200, description = "", body = DeliveryRecord),
        KeyErrors,
        (status = 404, description = "no such id in the caller's tenant", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn delivery(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    owned(&state, &caller, "delivery", &id).await?;
    match state.engine.delivery(&id).await? {
        Some(d) => Ok(Json(d).into_response()),
        None => Err(ApiError::not_found("delivery", &id)),
    }
}

#[utoipa::path(
    get,
    path = "/v1/deliveries/{id}/explain",
    tag = "deliveries",
    summary = "Why a delivery (notification, event) went as it did",
    params(("id" = String, Path, description = "delivery, notification or event id")),
    responses(
        (status = 200, description = "every decision, render, attempt and transition, in order", body = Explanation),
        KeyErrors,
        (status = 404, description = "no such id in the caller's tenant", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
/// Explains a delivery; also a notification or event id (the console links them all here).
pub async fn explain(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    owned(&state, &caller, "delivery", &id).await?;
    Ok(Json(state.engine.explain(&id).await?).into_response())
}

#[derive(Deserialize, Default, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelBody {
    reason: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/deliveries/{id}/cancel",
    tag = "deliveries",
    summary = "Cancel a pending, deferred or held delivery",
    request_body = CancelBody,
    params(("id" = String, Path, description = "delivery id")),
    responses(
        (status = 200, description = "", body = Dispatched),
        KeyErrors,
        (status = 404, description = "no such id in the caller's tenant", body = ErrorBody),
        (status = 409, description = "the change conflicts with the current state", body = ErrorBody),
        (status = 413, description = "the body is over the limit", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    raw: axum::body::Bytes,
) -> Result<Response, ApiError> {
    // The body is optional: an empty one cancels with a default reason.
    let b: CancelBody = if raw.is_empty() {
        CancelBody::default()
    } else {
        refuse_nul(&raw)?;
        serde_json::from_slice(&raw).map_err(|e| ApiError::bad_request(format!("body: {e}")))?
    };
    owned(&state, &caller, "delivery", &id).await?;
    let why = b
        .reason
        .unwrap_or_else(|| "cancelled over the HTTP API".into());
    let out = state.engine.cancel(&id, &why).await?;
    Ok(Json(out).into_response())
}
