//! API keys (operator, admin key): create (the secret is in that answer only), list, revoke.

use super::auth::Admin;
use super::error::{ApiError, Path};
use super::request::{Body, body};
use super::schemas::{CreatedKey, ErrorBody, KeyErrors, KeyList};
use super::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use belfry_host::keys::ApiKey;
use serde::Deserialize;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyBody {
    /// The tenant the key acts in; absent for an admin key.
    tenant: Option<String>,
    name: String,
}

#[utoipa::path(
    post,
    path = "/v1/keys",
    tag = "operator",
    summary = "Create an API key (admin); the secret is in this answer only",
    request_body = KeyBody,
    responses(
        (status = 201, description = "", body = CreatedKey),
        KeyErrors,
        (status = 413, description = "the body is over the limit", body = ErrorBody),
        (status = 422, description = "well-formed but wrong: the message and `field` say what", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn create_key(
    State(state): State<AppState>,
    _admin: Admin,
    b: Body<KeyBody>,
) -> Result<Response, ApiError> {
    let b = body(b)?;
    let (key, secret) = state
        .engine
        .create_key(b.tenant.as_deref(), &b.name)
        .await?;
    Ok((StatusCode::CREATED, Json(CreatedKey { key, secret })).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/keys",
    tag = "operator",
    summary = "Every API key, never a secret (admin)",
    responses(
        (status = 200, description = "", body = KeyList),
        (status = 401, description = "no API key, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "the key may not do this here", body = ErrorBody),
        (status = 429, description = "over the key's request rate; `Retry-After` says when to retry", body = ErrorBody),
        (status = 500, description = "a fault of the server; the cause is in its log", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn keys(State(state): State<AppState>, _admin: Admin) -> Result<Json<KeyList>, ApiError> {
    Ok(Json(KeyList {
        keys: state.engine.keys(None).await?,
    }))
}

#[utoipa::path(
    post,
    path = "/v1/keys/{id}/revoke",
    tag = "operator",
    summary = "Revoke an API key (admin)",
    params(("id" = String, Path, description = "key id")),
    responses(
        (status = 200, description = "", body = ApiKey),
        (status = 401, description = "no API key, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "the key may not do this here", body = ErrorBody),
        (status = 404, description = "no such id in the caller's tenant", body = ErrorBody),
        (status = 429, description = "over the key's request rate; `Retry-After` says when to retry", body = ErrorBody),
        (status = 500, description = "a fault of the server; the cause is in its log", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn revoke_key(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<ApiKey>, ApiError> {
    Ok(Json(state.engine.revoke_key(&id).await?))
}
