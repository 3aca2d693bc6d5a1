//! End-user inbox tokens: short-lived, signed, minted by the application for one recipient.
//!
//! A token is `PAYLOAD.SIGNATURE`, both base64url: the payload is JSON `{"t": tenant,
//! "r": recipient, "exp": unix seconds}`, the signature HMAC-SHA256 over the payload's base64
//! text with the tenant's inbox secret. Short-lived rather than a bare HMAC of tenant and
//! recipient: a token that leaks (a browser history, a log) stops working by itself, and the
//! secret never leaves the server. The application gets one from `POST /v1/inbox/tokens` with
//! its API key.

use crate::store::{Db, StoreError};
use crate::tenants::{self, TenantError};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

/// The longest life a token may be given: a day.
pub const MAX_TTL_SECS: i64 = 86_400;

#[derive(Serialize, Deserialize)]
struct Claims {
    t: String,
    r: String,
    exp: i64,
}

/// Who a valid token speaks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Holder {
    pub tenant: String,
    pub recipient_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error("inbox token: {0}")]
    Invalid(&'static str),
    #[error("inbox token expired")]
    Expired,
    #[error("ttl_secs must be between 1 and {MAX_TTL_SECS}, got {0}")]
    BadTtl(i64),
    /// The recipient id breaks the identifier rule ([`crate::text::identifier`]).
    #[error("recipient id must be 1 to 255 bytes, with no control character or surrounding space")]
    BadRecipient,
    #[error(transparent)]
    Tenant(#[from] TenantError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn sign(secret: &[u8], payload: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(payload.as_bytes());
    mac
}

/// A token for `recipient_id` of `tenant`, valid for `ttl_secs`; and when it expires.
pub async fn mint(
    db: &Db,
    tenant: &str,
    recipient_id: &str,
    ttl_secs: i64,
) -> Result<(String, chrono::DateTime<chrono::Utc>), TokenError> {
    if !(1..=MAX_TTL_SECS).contains(&ttl_secs) {
        return Err(TokenError::BadTtl(ttl_secs));
    }
    if crate::text::identifier("recipient_id", recipient_id).is_err() {
        return Err(TokenError::BadRecipient);
    }
    let secret = tenants::inbox_secret(db, tenant).await?;
    let expires = crate::store::now() + chrono::Duration::seconds(ttl_secs);
    let payload = URL_SAFE_NO_PAD.encode(
        serde_json::to_vec(&Claims {
            t: tenant.to_string(),
            r: recipient_id.to_string(),
            exp: expires.timestamp(),
        })
        .expect("claims serialise"),
    );
    let signature = URL_SAFE_NO_PAD.encode(sign(&secret, &payload).finalize().into_bytes());
    Ok((format!("{payload}.{signature}"), expires))
}

/// The holder of a valid, unexpired token. Which check failed is said, but never anything
/// about the secret.
pub async fn verify(db: &Db, token: &str) -> Result<Holder, TokenError> {
    if token.len() > 2048 {
        return Err(TokenError::Invalid("too long"));
    }
    let (payload, signature) = token
        .split_once('.')
        .ok_or(TokenError::Invalid("not PAYLOAD.SIGNATURE"))?;
    let claims: Claims = URL_SAFE_NO_PAD
        .decode(payload)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(TokenError::Invalid("malformed payload"))?;
    let signature = URL_SAFE_NO_PAD
        .decode(signature)
        .map_err(|_| TokenError::Invalid("malformed signature"))?;
    if tenants::check_id(&claims.t).is_err() {
        return Err(TokenError::Invalid("unknown tenant"));
    }
    let known: Option<String> =
        sqlx::query_scalar("SELECT inbox_secret FROM tenants WHERE id = $1")
            .bind(&claims.t)
            .fetch_optional(db)
            .await
            .map_err(StoreError::from)?;
    let secret = known
        .and_then(|s| hex::decode(s).ok())
        .ok_or(TokenError::Invalid("unknown tenant"))?;
    sign(&secret, payload)
        .verify_slice(&signature)
        .map_err(|_| TokenError::Invalid("bad signature"))?;
    if claims.exp <= crate::store::now().timestamp() {
        return Err(TokenError::Expired);
    }
    Ok(Holder {
        tenant: claims.t,
        recipient_id: claims.r,
    })
}
