//! Inbox tokens: an API key mints one for an end user, who then reads their inbox with it.

use super::auth::Caller;
use super::error::ApiError;
use super::request::{Body, body};
use super::schemas::{ErrorBody, InboxTokenView, KeyErrors};
use super::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::ToSchema;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    recipient_id: String,
    #[serde(default = "hour")]
    ttl_secs: i64,
}

fn hour() -> i64 {
    3600
}

#[utoipa::path(
    post,
    path = "/v1/inbox/tokens",
    tag = "inbox",
    summary = "Mint an end user's inbox token",
    request_body = TokenBody,
    responses(
        (status = 201, description = "", body = InboxTokenView),
        KeyErrors,
        (status = 413, description = "the body is over the limit", body = ErrorBody),
        (status = 422, description = "well-formed but wrong: the message and `field` say what", body = ErrorBody),
    ),
    security(("api_key" = [])),
)]
pub async fn inbox_token(
    State(state): State<AppState>,
    caller: Caller,
    b: Body<TokenBody>,
) -> Result<Response, ApiError> {
    let b = body(b)?;
    let (token, expires) = state
        .engine
        .mint_inbox_token(&caller.tenant, &b.recipient_id, b.ttl_secs)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(InboxTokenView {
            token,
            recipient_id: b.recipient_id,
            expires_at: belfry_host::store::time_text(expires),
        }),
    )
        .into_response())
}
