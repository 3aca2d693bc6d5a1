//! Storage: the database pool, its settings and migrations.
//!
//! SQLite (WAL) is the embedded default. Each concept module owns its tables and SQL; this
//! module only opens the database and applies `migrations/`. SQL is written portably (`$N`
//! placeholders, text ids, RFC 3339 UTC times) for the PostgreSQL backend to come.

use sqlx::SqlitePool;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use std::str::FromStr;
use std::time::Duration;

pub type Db = SqlitePool;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL `{url}`: {message}")]
    BadUrl { url: String, message: String },
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

/// Opens (creating if needed) the database at `url` and applies pending migrations.
pub async fn open(url: &str) -> Result<Db, StoreError> {
    let bad = |message: &str| StoreError::BadUrl {
        url: url.to_string(),
        message: message.to_string(),
    };
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Err(bad(
            "PostgreSQL is not supported by this version yet; use sqlite://PATH",
        ));
    }
    if !url.starts_with("sqlite:") {
        return Err(bad("expected sqlite://PATH (or sqlite::memory:)"));
    }
    let options = SqliteConnectOptions::from_str(url)
        .map_err(|e| bad(&e.to_string()))?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        // Writers queue behind each other instead of failing with SQLITE_BUSY.
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(8)
        .connect_with(options)
        .await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

/// Now, in UTC, at millisecond precision: the form every stored time takes.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound;
    chrono::Utc::now().trunc_subsecs(3)
}

/// The stored text form of a time (RFC 3339, milliseconds, `Z`), sortable as text.
pub fn time_text(t: chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}
