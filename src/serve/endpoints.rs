//! `/v1/endpoints`: the caller's tenant registers, reads, enables, disables and removes the
//! endpoints belfry posts lifecycle events to, and reads what was posted to each.

use super::auth::Caller;
use super::error::{ApiError, Path};
use super::request::{Body, body};
use super::schemas::{EndpointList, EndpointSecret, ErrorBody, KeyErrors, MessageList, Recovered};
use super::state::AppState;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use belfry_host::endpoints::{CreatedEndpoint, Endpoint};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EndpointBody {
    /// Where to post: http or https; private and loopback addresses only where the operator
    /// allows their network.
    url: String,
    /// Event patterns: `*`, a family (`delivery.*`) or an event type (`inbox.read`).
    events: Vec<String>,
    description: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/endpoints",
    tag = "endpoints",
    summary = "Register an endpoint for lifecycle events; the answer holds its `whsec_` secret",
    request_body = EndpointBody,
    responses(
        (status = 201, description = "registered", body = CreatedEndpoint),
        KeyErrors,
        (status = 413, description = "the body is over the limit", body = ErrorBody),
        (status = 422, description = "a bad URL or event pattern: the message and `field` say which", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    b: Body<EndpointBody>,
) -> Result<Response, ApiError> {
    let b = body(b)?;
    let created = state
        .engine
        .add_endpoint(&caller.tenant, &b.url, &b.events, b.description.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/endpoints",
    tag = "endpoints",
    summary = "The tenant's endpoints",
    responses((status = 200, description = "", body = EndpointList), KeyErrors),
    security(("api_key" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<EndpointList>, ApiError> {
    let endpoints = state.engine.endpoints(Some(&caller.tenant)).await?;
    Ok(Json(EndpointList { endpoints }))
}

#[utoipa::path(
    get,
    path = "/v1/endpoints/{id}",
    tag = "endpoints",
    summary = "One endpoint",
    params(("id" = String, Path, description = "endpoint id")),
    responses(
        (status = 200, description = "", body = Endpoint),
        KeyErrors,
        (status = 404, description = "no such id in the caller's tenant", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn get(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Endpoint>, ApiError> {
    Ok(Json(
        state.engine.endpoint(Some(&caller.tenant), &id).await?,
    ))
}

#[utoipa::path(
    get,
    path = "/v1/endpoints/{id}/secret",
    tag = "endpoints",
    summary = "The endpoint's signing secret",
    params(("id" = String, Path, description = "endpoint id")),
    responses(
        (status = 200, description = "", body = EndpointSecret),
        KeyErrors,
        (status = 404, description = "no such id in the caller's tenant", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn secret(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<EndpointSecret>, ApiError> {
    let secret = state
        .engine
        .endpoint_secret(Some(&caller.tenant), &id)
        .await?;
    Ok(Json(EndpointSecret { id, secret }))
}

#[utoipa::path(
    post,
    path = "/v1/endpoints/{id}/enable",
    tag = "endpoints",
    summary = "Enable an endpoint again: its run of failures starts over and new events reach it",
    params(("id" = String, Path, description = "endpoint id")),
    responses(
        (status = 200, description = "the endpoint as it is now", body = Endpoint),
        KeyErrors,
        (status = 404, description = "no such id in the caller's tenant", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn enable(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Endpoint>, ApiError> {
    switch(state, caller, id, true).await
}

#[utoipa::path(
    post,
    path = "/v1/endpoints/{id}/disable",
    tag = "endpoints",
    summary = "Stop posting to an endpoint until it is enabled again",
    params(("id" = String, Path, description = "endpoint id")),
    responses(
        (status = 200, description = "the endpoint as it is now", body = Endpoint),
        KeyErrors,
        (status = 404, description = "no such id in the caller's tenant", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn disable(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Endpoint>, ApiError> {
    switch(state, caller, id, false).await
}

#[utoipa::path(
    post,
    path = "/v1/endpoints/{id}/recover",
    tag = "endpoints",
    summary = "Send again the messages an endpoint missed while it was disabled",
    params(("id" = String, Path, description = "endpoint id")),
    responses(
        (status = 200, description = "how many messages were queued again", body = Recovered),
        KeyErrors,
        (status = 404, description = "no such id in the caller's tenant", body = ErrorBody),
        (status = 409, description = "the endpoint is disabled: enable it first", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn recover(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Recovered>, ApiError> {
    let recovered = state
        .engine
        .recover_endpoint(Some(&caller.tenant), &id)
        .await?;
    Ok(Json(Recovered { id, recovered }))
}

async fn switch(
    state: AppState,
    caller: Caller,
    id: String,
    enabled: bool,
) -> Result<Json<Endpoint>, ApiError> {
    Ok(Json(
        state
            .engine
            .set_endpoint_enabled(Some(&caller.tenant), &id, enabled)
            .await?,
    ))
}

#[utoipa::path(
    delete,
    path = "/v1/endpoints/{id}",
    tag = "endpoints",
    summary = "Remove an endpoint with its messages",
    params(("id" = String, Path, description = "endpoint id")),
    responses(
        (status = 204, description = "removed"),
        KeyErrors,
        (status = 404, description = "no such id in the caller's tenant", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn remove(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    state
        .engine
        .remove_endpoint(Some(&caller.tenant), &id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct MessageQuery {
    /// At most this many, newest first (1 to 100).
    #[param(minimum = 1, maximum = 100)]
    limit: Option<u32>,
}

#[utoipa::path(
    get,
    path = "/v1/endpoints/{id}/messages",
    tag = "endpoints",
    summary = "The newest messages posted (or owed) to an endpoint, with every try",
    params(("id" = String, Path, description = "endpoint id"), MessageQuery),
    responses(
        (status = 200, description = "", body = MessageList),
        KeyErrors,
        (status = 404, description = "no such id in the caller's tenant", body = ErrorBody),
        (status = 422, description = "a bad limit", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn messages(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    q: Result<Query<MessageQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<MessageList>, ApiError> {
    let limit = q?.0.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid("limit", "limit: must be from 1 to 100"));
    }
    let messages = state
        .engine
        .endpoint_messages(Some(&caller.tenant), &id, limit)
        .await?;
    Ok(Json(MessageList { messages }))
}
