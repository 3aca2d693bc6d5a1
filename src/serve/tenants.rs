//! Tenants (operator, admin key).

use super::auth::Admin;
use super::error::ApiError;
use super::request::{Body, body};
use super::schemas::{ErrorBody, KeyErrors, TenantList};
use super::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use belfry_host::tenants::Tenant;
use serde::Deserialize;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TenantBody {
    id: String,
}

#[utoipa::path(
    post,
    path = "/v1/tenants",
    tag = "operator",
    summary = "Create a tenant (admin)",
    request_body = TenantBody,
    responses(
        (status = 201, description = "", body = Tenant),
        KeyErrors,
        (status = 409, description = "the change conflicts with the current state", body = ErrorBody),
        (status = 413, description = "the body is over the limit", body = ErrorBody),
        (status = 422, description = "well-formed but wrong: the message and `field` say what", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn create_tenant(
    State(state): State<AppState>,
    _admin: Admin,
    b: Body<TenantBody>,
) -> Result<Response, ApiError> {
    let b = body(b)?;
    let (tenant, created) = state.engine.ensure_tenant(&b.id).await?;
    if !created {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "conflict",
            format!("tenant `{}` already exists", b.id),
        )
        .field("id"));
    }
    Ok((StatusCode::CREATED, Json(tenant)).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/tenants",
    tag = "operator",
    summary = "Every tenant (admin)",
    responses(
        (status = 200, description = "", body = TenantList),
        (status = 401, description = "no API key, or an unknown or revoked one", body = ErrorBody),
        (status = 403, description = "the key may not do this here", body = ErrorBody),
        (status = 429, description = "over the key's request rate; `Retry-After` says when to retry", body = ErrorBody),
        (status = 500, description = "a fault of the server; the cause is in its log", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn tenants(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<TenantList>, ApiError> {
    Ok(Json(TenantList {
        tenants: state.engine.tenants().await?,
    }))
}
