//! Tenants that hold secrets. Everything in belfry is scoped by a tenant name; a row here
//! exists once a tenant needs something of its own: API keys (see [`crate::keys`]) and the
//! secret that signs its end users' inbox tokens (see [`crate::inbox::token`]).

use crate::store::{self, Db, StoreError};
use serde::Serialize;
use sqlx::Row;

#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tenant {
    pub id: String,
    pub created_at: String,
}

#[derive(Debug, thiserror::Error)]
pub enum TenantError {
    #[error("tenant: {0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for TenantError {
    fn from(e: sqlx::Error) -> Self {
        TenantError::Store(e.into())
    }
}

/// The longest tenant name, in characters (all ASCII).
pub const MAX_TENANT_LEN: usize = 64;

/// A tenant name: 1–64 characters of ASCII letters, digits, `-`, `_` and `.`, and not `.` or
/// `..`, so it can sit in a URL path (`/v1/webhooks/{tenant}/…`) and a token without escaping.
/// The one rule for tenant names: every host function that takes a tenant from outside checks
/// it (trigger, keys, settings, suppressions, signals, endpoints, webhooks).
pub fn check_id(id: &str) -> Result<(), TenantError> {
    // `escape_debug`, so a name with a newline or NUL is shown as typed, on one line.
    let shown = id.escape_debug();
    if id.is_empty() || id.len() > MAX_TENANT_LEN {
        return Err(TenantError::Invalid(format!(
            "`{shown}` must be 1 to {MAX_TENANT_LEN} characters long"
        )));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(TenantError::Invalid(format!(
            "`{shown}` may hold only letters, digits, `-`, `_` and `.` (not `{}`)",
            c.escape_debug()
        )));
    }
    if id == "." || id == ".." {
        return Err(TenantError::Invalid(format!(
            "`{id}` is a path segment, not a name"
        )));
    }
    Ok(())
}

/// A tenant name that passed [`check_id`]: what a function that must not see another kind
/// can take. Deserializing one checks it, so a path or body field of this type is refused
/// before a handler runs.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantId(String);

impl TenantId {
    pub fn new(id: impl Into<String>) -> Result<TenantId, TenantError> {
        let id = id.into();
        check_id(&id)?;
        Ok(TenantId(id))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantId {
    type Error = TenantError;
    fn try_from(id: String) -> Result<TenantId, TenantError> {
        TenantId::new(id)
    }
}

impl From<TenantId> for String {
    fn from(id: TenantId) -> String {
        id.0
    }
}

impl std::ops::Deref for TenantId {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for TenantId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Whether belfry knows the tenant: it has a row here (keys, an inbox secret) or has
/// triggered an event. A provider webhook for any other tenant can be about no delivery.
pub async fn exists(db: &Db, id: &TenantId) -> Result<bool, StoreError> {
    let found: Option<String> = sqlx::query_scalar(
        "SELECT id FROM tenants WHERE id = $1
         UNION ALL SELECT tenant FROM events WHERE tenant = $1
         LIMIT 1",
    )
    .bind(id.as_str())
    .fetch_optional(db)
    .await?;
    Ok(found.is_some())
}

/// Creates the tenant if it does not exist; returns it and whether it was created now.
#[tracing::instrument(skip(db))]
pub async fn ensure(db: &Db, id: &str) -> Result<(Tenant, bool), TenantError> {
    check_id(id)?;
    let secret: [u8; 32] = rand::random();
    let created = sqlx::query(
        "INSERT INTO tenants (id, inbox_secret, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(hex::encode(secret))
    .bind(store::time_text(store::now()))
    .execute(db)
    .await?
    .rows_affected()
        > 0;
    let row = sqlx::query("SELECT id, created_at FROM tenants WHERE id = $1")
        .bind(id)
        .fetch_one(db)
        .await?;
    Ok((
        Tenant {
            id: row.get("id"),
            created_at: row.get("created_at"),
        },
        created,
    ))
}

pub async fn list(db: &Db) -> Result<Vec<Tenant>, StoreError> {
    let rows = sqlx::query("SELECT id, created_at FROM tenants ORDER BY id")
        .fetch_all(db)
        .await?;
    Ok(rows
        .iter()
        .map(|r| Tenant {
            id: r.get("id"),
            created_at: r.get("created_at"),
        })
        .collect())
}

/// The tenant's inbox-token secret, made on first use.
pub async fn inbox_secret(db: &Db, id: &str) -> Result<Vec<u8>, TenantError> {
    ensure(db, id).await?;
    let text: String = sqlx::query("SELECT inbox_secret FROM tenants WHERE id = $1")
        .bind(id)
        .fetch_one(db)
        .await?
        .get("inbox_secret");
    hex::decode(&text)
        .map_err(|_| StoreError::Corrupt(format!("tenant {id}: inbox secret is not hex")).into())
}
