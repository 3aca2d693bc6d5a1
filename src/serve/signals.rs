//! Signals to an actor's waiting workflow runs.

use super::auth::Caller;
use super::error::ApiError;
use super::request::{Body, body};
use super::schemas::{ErrorBody, KeyErrors};
use super::state::AppState;
use axum::Json;
use axum::extract::State;
use belfry_host::workflows::SignalOutcome;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalBody {
    actor: String,
    name: String,
    #[serde(default = "empty_object")]
    payload: Value,
}

fn empty_object() -> Value {
    json!({})
}

#[utoipa::path(
    post,
    path = "/v1/signals",
    tag = "workflows",
    summary = "Send a signal to an actor's waiting workflow runs",
    request_body = SignalBody,
    responses(
        (status = 200, description = "the runs it moved", body = SignalOutcome),
        KeyErrors,
        (status = 413, description = "the body is over the limit", body = ErrorBody),
        (status = 422, description = "well-formed but wrong: the message and `field` say what", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn signal(
    State(state): State<AppState>,
    caller: Caller,
    b: Body<SignalBody>,
) -> Result<Json<SignalOutcome>, ApiError> {
    let b = body(b)?;
    let out = state
        .engine
        .signal(&caller.tenant, &b.actor, &b.name, &b.payload)
        .await?;
    Ok(Json(out))
}
