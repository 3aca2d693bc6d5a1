//! Suppressions: addresses, or recipients on a channel, that must never be sent to.

use super::auth::Caller;
use super::error::{ApiError, Path};
use super::request::{Body, body};
use super::schemas::{ErrorBody, KeyErrors, SuppressionList};
use super::state::AppState;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use belfry_host::content::Channel;
use belfry_host::policy::{Suppression, SuppressionReason, SuppressionTarget};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SuppressionQuery {
    #[serde(default)]
    include_expired: bool,
}

#[utoipa::path(
    get,
    path = "/v1/suppressions",
    tag = "suppressions",
    summary = "The tenant's suppressions",
    params(SuppressionQuery),
    responses(
        (status = 200, description = "", body = SuppressionList),
        KeyErrors,
    ),
    security(("api_key" = [])),
)]
pub async fn suppressions(
    State(state): State<AppState>,
    caller: Caller,
    q: Result<Query<SuppressionQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<SuppressionList>, ApiError> {
    let q = q?.0;
    let list = state
        .engine
        .suppressions(&caller.tenant, q.include_expired)
        .await?;
    Ok(Json(SuppressionList { suppressions: list }))
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SuppressionBody {
    /// An email address or phone number (every channel that sends to it)…
    address: Option<String>,
    /// …or one recipient on one channel.
    recipient_id: Option<String>,
    channel: Option<Channel>,
    #[serde(default = "manual")]
    reason: SuppressionReason,
    note: Option<String>,
    expires_at: Option<chrono::DateTime<chrono::Utc>>,
}

fn manual() -> SuppressionReason {
    SuppressionReason::Manual
}

#[utoipa::path(
    post,
    path = "/v1/suppressions",
    tag = "suppressions",
    summary = "Suppress an address, or a recipient on a channel",
    request_body = SuppressionBody,
    responses(
        (status = 201, description = "", body = Suppression),
        KeyErrors,
        (status = 413, description = "the body is over the limit", body = ErrorBody),
        (status = 422, description = "well-formed but wrong: the message and `field` say what", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn add_suppression(
    State(state): State<AppState>,
    caller: Caller,
    b: Body<SuppressionBody>,
) -> Result<Response, ApiError> {
    let b = body(b)?;
    let target = match (b.address, b.recipient_id, b.channel) {
        (Some(a), None, None) => SuppressionTarget::Address(a),
        (None, Some(id), Some(channel)) => SuppressionTarget::Recipient { id, channel },
        _ => {
            return Err(ApiError::invalid(
                "address",
                "give either `address`, or `recipient_id` with `channel`",
            ));
        }
    };
    let s = state
        .engine
        .add_suppression(
            &caller.tenant,
            &target,
            b.reason,
            b.note.as_deref(),
            b.expires_at,
        )
        .await?;
    Ok((StatusCode::CREATED, Json(s)).into_response())
}

#[utoipa::path(
    delete,
    path = "/v1/suppressions/{id}",
    tag = "suppressions",
    summary = "Remove a suppression",
    params(("id" = String, Path, description = "suppression id")),
    responses(
        (status = 204, description = "removed"),
        KeyErrors,
        (status = 404, description = "no such id in the caller's tenant", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn remove_suppression(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state.engine.remove_suppression(&caller.tenant, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
