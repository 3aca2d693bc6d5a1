//! One-click unsubscribe (RFC 8058): every email belfry sends carries `List-Unsubscribe` with a
//! signed link and `List-Unsubscribe-Post: List-Unsubscribe=One-Click`; a POST to the link
//! turns the recipient's preference for the notification's category off, and the delivery the
//! link came from explains it.
//!
//! The link's token is `PAYLOAD.SIGNATURE`, base64url: the payload is JSON `{"t": tenant,
//! "r": recipient, "c": category, "d": delivery}`, the signature HMAC-SHA256 over the payload
//! text with a key derived from the tenant's secret for this purpose only, so an inbox token
//! can never pass as an unsubscribe token or the other way round. The token does not expire:
//! mail clients show the button for as long as the message is kept, and RFC 8058 asks that the
//! link keep working. It names one delivery, so `explain` can tell which message it came from.

use crate::policy::{self, PolicyError, PrefScope};
use crate::store::{Db, StoreError};
use crate::tenants::{self, TenantError};
use crate::traces::{NewTrace, kind};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use sqlx::Row;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tracing::Instrument;

/// The path under the public base URL that takes the POST (and shows a page on GET).
pub const PATH: &str = "/v1/unsubscribe";

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Claims {
    t: String,
    r: String,
    c: String,
    d: String,
}

#[derive(Debug, thiserror::Error)]
pub enum UnsubscribeError {
    #[error("unsubscribe link: {0}")]
    Invalid(&'static str),
    #[error("unsubscribe link: delivery {0} no longer exists")]
    UnknownDelivery(String),
    #[error(transparent)]
    Tenant(#[from] TenantError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for UnsubscribeError {
    fn from(e: sqlx::Error) -> Self {
        UnsubscribeError::Store(e.into())
    }
}

/// What a one-click unsubscribe did.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Unsubscribed {
    pub tenant: String,
    pub recipient_id: String,
    pub category: String,
    /// The delivery whose email carried the link.
    pub delivery_id: String,
    /// False when the category was already off for the recipient (a repeated click).
    pub changed: bool,
}

/// The signing key of each tenant's links, derived once per tenant and process: an email send
/// must not read (or write, as `tenants::inbox_secret` may) the tenants table every time.
/// Tenant secrets are never rotated, so a cached key cannot go stale.
#[derive(Clone, Default)]
pub struct Keys(Arc<Mutex<HashMap<String, Arc<[u8]>>>>);

impl Keys {
    async fn get(&self, db: &Db, tenant: &str) -> Result<Arc<[u8]>, TenantError> {
        if let Some(k) = self.0.lock().unwrap_or_else(|p| p.into_inner()).get(tenant) {
            return Ok(k.clone());
        }
        let secret = tenants::inbox_secret(db, tenant).await?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&secret).expect("HMAC takes any key length");
        mac.update(b"belfry one-click unsubscribe");
        let key: Arc<[u8]> = mac.finalize().into_bytes().to_vec().into();
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(tenant.to_string(), key.clone());
        Ok(key)
    }
}

/// Where links point and how they are signed; an engine has one when it knows its public URL.
#[derive(Clone)]
pub struct Links {
    base_url: Arc<str>,
    keys: Keys,
}

impl Links {
    pub fn new(base_url: &str, keys: Keys) -> Links {
        Links {
            base_url: base_url.trim_end_matches('/').into(),
            keys,
        }
    }

    /// The headers an email of this delivery must carry: the signed link and the one-click
    /// marker.
    pub async fn headers(
        &self,
        db: &Db,
        tenant: &str,
        recipient_id: &str,
        category: &str,
        delivery_id: &str,
    ) -> Result<Vec<(String, String)>, TenantError> {
        let claims = Claims {
            t: tenant.to_string(),
            r: recipient_id.to_string(),
            c: category.to_string(),
            d: delivery_id.to_string(),
        };
        let payload =
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("claims serialize"));
        let key = self.keys.get(db, tenant).await?;
        let sig = URL_SAFE_NO_PAD.encode(signature(&key, &payload).finalize().into_bytes());
        let url = format!("{}{PATH}/{payload}.{sig}", self.base_url);
        Ok(vec![
            ("List-Unsubscribe".to_string(), format!("<{url}>")),
            (
                "List-Unsubscribe-Post".to_string(),
                "List-Unsubscribe=One-Click".to_string(),
            ),
        ])
    }
}

fn signature(key: &[u8], payload: &str) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(payload.as_bytes());
    mac
}

/// Verifies a token and unsubscribes its recipient from its category, recording why on the
/// delivery the link came from, in one transaction. A repeat changes nothing and says so.
pub async fn unsubscribe(
    db: &Db,
    keys: &Keys,
    token: &str,
) -> Result<Unsubscribed, UnsubscribeError> {
    let (payload, sig) = token
        .split_once('.')
        .ok_or(UnsubscribeError::Invalid("malformed"))?;
    let raw = URL_SAFE_NO_PAD
        .decode(payload)
        .map_err(|_| UnsubscribeError::Invalid("malformed"))?;
    let claims: Claims =
        serde_json::from_slice(&raw).map_err(|_| UnsubscribeError::Invalid("malformed"))?;
    let sig = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| UnsubscribeError::Invalid("malformed"))?;
    if tenants::check_id(&claims.t).is_err() {
        return Err(UnsubscribeError::Invalid("malformed"));
    }
    // The tenant must already exist: a forged tenant id must not create one.
    let known: Option<String> = sqlx::query("SELECT id FROM tenants WHERE id = $1")
        .bind(&claims.t)
        .fetch_optional(db)
        .await?
        .map(|r| r.get("id"));
    if known.is_none() {
        return Err(UnsubscribeError::Invalid("bad signature"));
    }
    signature(&keys.get(db, &claims.t).await?, payload)
        .verify_slice(&sig)
        .map_err(|_| UnsubscribeError::Invalid("bad signature"))?;

    let span = tracing::info_span!("unsubscribe", tenant = %claims.t, recipient = %claims.r, category = %claims.c);
    record(db, claims).instrument(span).await
}

async fn record(db: &Db, claims: Claims) -> Result<Unsubscribed, UnsubscribeError> {
    let mut tx = db.begin().await?;
    let delivery = crate::deliveries::reads::origin(&mut tx, &claims.d, Some(&claims.t))
        .await?
        .ok_or_else(|| UnsubscribeError::UnknownDelivery(claims.d.clone()))?;
    let scope = PrefScope::Category(claims.c.clone());
    let already_off = sqlx::query(
        "SELECT enabled FROM preferences WHERE tenant = $1 AND recipient_id = $2 AND scope = $3 AND target = $4",
    )
    .bind(&claims.t)
    .bind(&claims.r)
    .bind(scope.scope())
    .bind(scope.target())
    .fetch_optional(&mut *tx)
    .await?
    .is_some_and(|r| r.get::<i64, _>("enabled") == 0);
    if !already_off {
        policy::set_preference_in(&mut tx, &claims.t, &claims.r, &scope, Some(false)).await?;
        crate::endpoints::events::append(
            &mut tx,
            NewTrace {
                tenant: &claims.t,
                event_id: &delivery.event_id,
                notification_id: Some(&delivery.notification_id),
                delivery_id: Some(&claims.d),
                kind: kind::RECIPIENT_UNSUBSCRIBED,
                reason: Some("one_click"),
                detail: Some(format!(
                    "recipient {} unsubscribed from category {} with the List-Unsubscribe link of this email (RFC 8058); preference category:{} is now off",
                    claims.r, claims.c, claims.c
                )),
                ..Default::default()
            },
        )
        .await?;
    }
    tx.commit().await?;
    tracing::info!(changed = !already_off, "one-click unsubscribe");
    Ok(Unsubscribed {
        tenant: claims.t,
        recipient_id: claims.r,
        category: claims.c,
        delivery_id: claims.d,
        changed: !already_off,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purposes_get_different_keys() {
        // The unsubscribe key is derived, so a signature made with the raw inbox secret (an
        // inbox token's) does not verify as an unsubscribe signature.
        let secret = b"tenant-secret";
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
        mac.update(b"belfry one-click unsubscribe");
        let derived = mac.finalize().into_bytes().to_vec();
        let a = signature(secret, "payload").finalize().into_bytes();
        let b = signature(&derived, "payload").finalize().into_bytes();
        assert_ne!(a, b);
    }
}
