//! Who is calling. Three kinds of caller, each an extractor a handler names in its signature,
//! so a handler cannot forget to check:
//!
//! - [`Caller`]: an API key acting inside one tenant (a tenant key in its own tenant; an admin
//!   key in the tenant its `Belfry-Tenant` header names);
//! - [`Admin`]: an admin key, for operator endpoints (a tenant key gets 403);
//! - [`AnyKey`]: any key, for what every tenant shares (the plugin list);
//! - [`EndUser`]: an end user's inbox token (header, or `?token=` where a browser's
//!   `EventSource` cannot set one) — never an API key.
//!
//! Every API-key call also passes the per-key rate limit, when one is configured.

use super::error::ApiError;
use super::state::AppState;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::http::request::Parts;
use belfry_host::inbox::token::Holder;
use belfry_host::keys::{ApiKey, Role};

/// The header an admin key names its tenant with.
pub const TENANT_HEADER: &str = "belfry-tenant";

pub struct Caller {
    pub tenant: String,
    pub key: ApiKey,
}

pub struct Admin(pub ApiKey);

/// Any valid API key, tenant or admin: for what is the same in every tenant.
pub struct AnyKey(pub ApiKey);

pub struct EndUser(pub Holder);

fn bearer(parts: &Parts) -> Option<&str> {
    let value = parts.headers.get(axum::http::header::AUTHORIZATION)?;
    let text = value.to_str().ok()?;
    let (scheme, token) = text.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn unauthorized(message: &str) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
}

async fn api_key(parts: &Parts, state: &AppState) -> Result<ApiKey, ApiError> {
    let secret = bearer(parts)
        .ok_or_else(|| unauthorized("this endpoint needs `Authorization: Bearer <API key>`"))?;
    let key = state
        .engine
        .authenticate(secret)
        .await?
        .ok_or_else(|| unauthorized("unknown or revoked API key"))?;
    state.limits.check(&key.id)?;
    Ok(key)
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = api_key(parts, state).await?;
        let named = match parts.headers.get(TENANT_HEADER) {
            Some(v) => Some(
                v.to_str()
                    .map_err(|_| ApiError::bad_request("Belfry-Tenant is not ASCII"))?
                    .to_string(),
            ),
            None => None,
        };
        let tenant = match (&key.role, &key.tenant, named) {
            (Role::Tenant, Some(own), None) => own.clone(),
            (Role::Tenant, Some(own), Some(named)) if *own == named => named,
            (Role::Tenant, _, Some(_)) => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "wrong_tenant",
                    "this key acts only in its own tenant",
                ));
            }
            (Role::Admin, _, Some(named)) => {
                belfry_host::tenants::check_id(&named)?;
                named
            }
            (Role::Admin, _, None) | (Role::Tenant, None, None) => {
                return Err(ApiError::bad_request(
                    "an admin key names the tenant it acts in with the Belfry-Tenant header",
                ));
            }
        };
        Ok(Caller { tenant, key })
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let key = api_key(parts, state).await?;
        if key.role != Role::Admin {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "admin_only",
                "this endpoint needs an admin key (belfry keys create --admin)",
            ));
        }
        Ok(Admin(key))
    }
}

impl FromRequestParts<AppState> for AnyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Ok(AnyKey(api_key(parts, state).await?))
    }
}

impl FromRequestParts<AppState> for EndUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let from_query = parts.uri.query().and_then(|q| {
            q.split('&')
                .find_map(|pair| pair.strip_prefix("token="))
                .map(str::to_string)
        });
        let token = match bearer(parts) {
            Some(t) => t.to_string(),
            None => from_query.ok_or_else(|| {
                unauthorized("the inbox needs `Authorization: Bearer <inbox token>` or ?token=")
            })?,
        };
        if token.starts_with(belfry_host::keys::SECRET_PREFIX) {
            // An API key in a browser would hand the whole tenant to whoever reads the page.
            return Err(unauthorized(
                "the inbox takes an end user's inbox token, never an API key (POST /v1/inbox/tokens mints one)",
            ));
        }
        Ok(EndUser(state.engine.verify_inbox_token(&token).await?))
    }
}
