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

/// A tenant name: 1–64 characters of letters, digits, `-`, `_` and `.`, so it can sit in a
/// URL path and a token without escaping.
pub fn check_id(id: &str) -> Result<(), TenantError> {
    if id.is_empty() || id.len() > 64 {
        return Err(TenantError::Invalid(format!(
            "`{id}` must be 1 to 64 characters long"
        )));
    }
    if let Some(c) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(TenantError::Invalid(format!(
            "`{id}` may hold only letters, digits, `-`, `_` and `.` (not `{c}`)"
        )));
    }
    Ok(())
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
