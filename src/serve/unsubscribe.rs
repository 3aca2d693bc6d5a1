//! One-click unsubscribe (RFC 8058) over HTTP: the link in every email's `List-Unsubscribe`.
//!
//! A mail client's one-click button POSTs `List-Unsubscribe=One-Click` to the link, with no
//! cookie or key: the signed token in the path is the authority. A GET (a person opening the
//! link, or a mail scanner following it) only shows a page with a button, because RFC 8058
//! forbids unsubscribing on GET: scanners prefetch links.

use super::error::{ApiError, Path};
use super::schemas::ErrorBody;
use super::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use belfry_host::unsubscribe::{UnsubscribeError, Unsubscribed};

#[utoipa::path(
    post,
    path = "/v1/unsubscribe/{token}",
    tag = "unsubscribe",
    summary = "One-click unsubscribe from the category of the email that carried the link",
    params(("token" = String, Path, description = "the signed token of the List-Unsubscribe link")),
    request_body(content = String, description = "`List-Unsubscribe=One-Click` (any body is accepted)", content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "unsubscribed (or already was: `changed` is false)", body = Unsubscribed),
        (status = 400, description = "the token is malformed or its signature is wrong", body = ErrorBody),
        (status = 404, description = "the delivery the link names no longer exists", body = ErrorBody),
    ),
)]
pub async fn one_click(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, ApiError> {
    let done = state.engine.unsubscribe(&token).await.map_err(error)?;
    Ok(Json(done).into_response())
}

#[utoipa::path(
    get,
    path = "/v1/unsubscribe/{token}",
    tag = "unsubscribe",
    summary = "A page with one button that POSTs the one-click form (a GET changes nothing)",
    params(("token" = String, Path, description = "the signed token of the List-Unsubscribe link")),
    responses(
        (status = 200, description = "the page", body = String, content_type = "text/html"),
        (status = 400, description = "the token has characters no token has", body = ErrorBody),
    ),
)]
/// The page a person sees when opening the link: one button that POSTs the one-click form.
pub async fn page(Path(token): Path<String>) -> Response {
    // The token is base64url and a dot, so it is safe in an attribute; anything else is
    // refused rather than escaped.
    if !token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
    {
        return error(UnsubscribeError::Invalid("malformed")).into_response();
    }
    let body = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Unsubscribe</title></head>\
         <body><h1>Unsubscribe</h1><p>Stop receiving emails like the one that brought you here?</p>\
         <form method=\"post\" action=\"{}/{token}\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">\
         <button type=\"submit\">Unsubscribe</button></form></body></html>",
        belfry_host::unsubscribe::PATH
    );
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; form-action 'self'",
            ),
        ],
        body,
    )
        .into_response()
}

fn error(e: UnsubscribeError) -> ApiError {
    match e {
        UnsubscribeError::Invalid(why) => ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("unsubscribe link: {why}"),
        ),
        UnsubscribeError::UnknownDelivery(id) => ApiError::not_found("delivery", &id),
        UnsubscribeError::Tenant(e) => e.into(),
        UnsubscribeError::Policy(e) => e.into(),
        UnsubscribeError::Store(e) => e.into(),
    }
}
