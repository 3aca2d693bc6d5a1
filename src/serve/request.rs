//! What the `/v1` handlers share about a request: the JSON body held to the one text rule,
//! the page `limit`, patch fields that tell absent from null, and the tenant check every id a
//! caller names goes through (another tenant's ids answer 404 exactly as unknown ones do, so
//! their existence is not disclosed).

use super::auth::Caller;
use super::error::ApiError;
use super::state::AppState;
use axum::http::StatusCode;
use axum::{Json, extract::rejection::JsonRejection};
use serde::Deserialize;

/// A JSON body, with our error shape for malformed ones, held to the one text rule
/// ([`belfry_host::text`]): a NUL (`\u0000`) anywhere in it is refused (400, naming the
/// field) before it is parsed into the handler's type, for every route that takes a body.
pub struct Body<T>(Result<T, ApiError>);

pub fn body<T>(b: Body<T>) -> Result<T, ApiError> {
    b.0
}

impl<S, T> axum::extract::FromRequest<S> for Body<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = std::convert::Infallible;

    async fn from_request(
        request: axum::extract::Request,
        state: &S,
    ) -> Result<Self, Self::Rejection> {
        let (parts, raw) = request.into_parts();
        // Read once, within the route's body limit; then parsed from the same bytes.
        let bytes = match axum::body::Bytes::from_request(
            axum::extract::Request::from_parts(parts.clone(), raw),
            state,
        )
        .await
        {
            Ok(bytes) => bytes,
            Err(r) if r.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                return Ok(Body(Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    r.body_text(),
                ))));
            }
            Err(r) => return Ok(Body(Err(ApiError::bad_request(r.body_text())))),
        };
        if let Err(e) = refuse_nul(&bytes) {
            return Ok(Body(Err(e)));
        }
        let request = axum::extract::Request::from_parts(parts, axum::body::Body::from(bytes));
        let parsed: Result<Json<T>, JsonRejection> = Json::from_request(request, state).await;
        Ok(Body(parsed.map(|Json(t)| t).map_err(ApiError::from)))
    }
}

/// 400 when JSON text spells a NUL anywhere (see [`belfry_host::text::json_text_has_nul`]).
pub(super) fn refuse_nul(raw: &[u8]) -> Result<(), ApiError> {
    if !belfry_host::text::json_text_has_nul(raw) {
        return Ok(());
    }
    let field = belfry_host::text::json_nul_field(raw);
    let e = ApiError::bad_request(format!(
        "{} must not contain NUL (\\u0000)",
        field.as_deref().unwrap_or("the body")
    ));
    Err(match field {
        Some(f) => e.field(f),
        None => e,
    })
}

/// `Absent` / `null` / a value, for patch bodies: absent leaves a field alone, null clears it.
pub(super) fn double<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(d).map(Some)
}

/// Answers 404 unless `id` is an event, notification, delivery or run of the caller's tenant.
pub(super) async fn owned(
    state: &AppState,
    caller: &Caller,
    what: &str,
    id: &str,
) -> Result<(), ApiError> {
    match state.engine.tenant_of(id).await? {
        Some(t) if t == caller.tenant => Ok(()),
        _ => Err(ApiError::not_found(what, id)),
    }
}

/// A list's page size: 50 unless asked, and 1 to [`belfry_host::deliveries::MAX_PAGE`] when asked
/// (400 naming `limit` otherwise).
pub(super) fn limit(q: Option<i64>) -> Result<i64, ApiError> {
    match q {
        None => Ok(50),
        Some(n) if (1..=belfry_host::deliveries::MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_query",
            format!(
                "limit must be between 1 and {}, got {n}",
                belfry_host::deliveries::MAX_PAGE
            ),
        )
        .field("limit")),
    }
}
