//! API keys. A key acts inside one tenant, or, as an admin key, on operator endpoints (and in
//! any tenant it names). The secret is shown once; only its SHA-256 is stored, so a leaked
//! database does not leak working keys, and a lookup by hash needs no constant-time compare.

use crate::store::{self, Db, StoreError};
use crate::tenants::{self, TenantError};
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::Row;

/// What every secret starts with, so a leaked one is recognisable (secret scanners, logs).
pub const SECRET_PREFIX: &str = "bfy_";

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Tenant,
    Admin,
}

impl Role {
    fn as_str(&self) -> &'static str {
        match self {
            Role::Tenant => "tenant",
            Role::Admin => "admin",
        }
    }
}

/// A key as listed: never its secret.
#[derive(Clone, Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiKey {
    pub id: String,
    /// `None` for an admin key.
    pub tenant: Option<String>,
    pub name: String,
    pub role: Role,
    /// The secret's first characters.
    pub prefix: String,
    pub created_at: String,
    pub revoked_at: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error(transparent)]
    Tenant(#[from] TenantError),
    #[error("key name: {0}")]
    Invalid(String),
    #[error("no API key has the id `{0}`")]
    NotFound(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for KeyError {
    fn from(e: sqlx::Error) -> Self {
        KeyError::Store(e.into())
    }
}

fn hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

fn from_row(r: &sqlx::any::AnyRow) -> ApiKey {
    let role: String = r.get("role");
    ApiKey {
        id: r.get("id"),
        tenant: r.get("tenant"),
        name: r.get("name"),
        role: if role == "admin" {
            Role::Admin
        } else {
            Role::Tenant
        },
        prefix: r.get("prefix"),
        created_at: r.get("created_at"),
        revoked_at: r.get("revoked_at"),
    }
}

const COLUMNS: &str = "id, tenant, name, role, prefix, created_at, revoked_at";

/// Creates a key for `tenant` (creating the tenant if need be), or an admin key for `None`.
/// Returns the key and its secret, which is never available again.
#[tracing::instrument(skip(db))]
pub async fn create(
    db: &Db,
    tenant: Option<&str>,
    name: &str,
) -> Result<(ApiKey, String), KeyError> {
    if name.trim().is_empty() || name.len() > 100 {
        return Err(KeyError::Invalid(format!(
            "`{name}` must be 1 to 100 characters long"
        )));
    }
    crate::text::free_text("name", name).map_err(|e| KeyError::Invalid(e.to_string()))?;
    if let Some(t) = tenant {
        tenants::ensure(db, t).await?;
    }
    let role = if tenant.is_some() {
        Role::Tenant
    } else {
        Role::Admin
    };
    let random: [u8; 32] = rand::random();
    let secret = format!("{SECRET_PREFIX}{}", hex::encode(random));
    let key = ApiKey {
        id: store::new_id(),
        tenant: tenant.map(str::to_string),
        name: name.to_string(),
        role,
        prefix: secret[..SECRET_PREFIX.len() + 8].to_string(),
        created_at: store::time_text(store::now()),
        revoked_at: None,
    };
    sqlx::query(
        "INSERT INTO api_keys (id, tenant, name, role, secret_hash, prefix, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&key.id)
    .bind(&key.tenant)
    .bind(&key.name)
    .bind(key.role.as_str())
    .bind(hash(&secret))
    .bind(&key.prefix)
    .bind(&key.created_at)
    .execute(db)
    .await?;
    Ok((key, secret))
}

/// Every key, or one tenant's, oldest first; revoked ones included (with their time).
pub async fn list(db: &Db, tenant: Option<&str>) -> Result<Vec<ApiKey>, StoreError> {
    let rows = match tenant {
        Some(t) => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM api_keys WHERE tenant = $1 ORDER BY created_at, id"
            ))
            .bind(t)
            .fetch_all(db)
            .await?
        }
        None => {
            sqlx::query(&format!(
                "SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id"
            ))
            .fetch_all(db)
            .await?
        }
    };
    Ok(rows.iter().map(from_row).collect())
}

/// Revokes a key by id (revoking again keeps the first time). It stops working at once.
#[tracing::instrument(skip(db))]
pub async fn revoke(db: &Db, id: &str) -> Result<ApiKey, KeyError> {
    sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(store::time_text(store::now()))
        .bind(id)
        .execute(db)
        .await?;
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM api_keys WHERE id = $1"))
        .bind(id)
        .fetch_optional(db)
        .await?
        .ok_or_else(|| KeyError::NotFound(id.to_string()))?;
    Ok(from_row(&row))
}

/// The live key whose secret this is, or `None` (unknown, malformed or revoked alike, so a
/// caller learns nothing about which).
pub async fn authenticate(db: &Db, secret: &str) -> Result<Option<ApiKey>, StoreError> {
    if !secret.starts_with(SECRET_PREFIX) || secret.len() > 200 {
        return Ok(None);
    }
    let row = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM api_keys WHERE secret_hash = $1 AND revoked_at IS NULL"
    ))
    .bind(hash(secret))
    .fetch_optional(db)
    .await?;
    Ok(row.as_ref().map(from_row))
}
