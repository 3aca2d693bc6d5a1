//! Storage: the database pool, its settings and migrations, on SQLite or PostgreSQL.
//!
//! The backend is chosen by the URL scheme: `sqlite://PATH` (the embedded default, WAL) or
//! `postgres://…` (several processes sharing one database). Each concept module owns its tables
//! and SQL; this module only opens the database and applies `migrations/<backend>`.
//!
//! Both backends go through sqlx's `Any` driver so that every module has one copy of its SQL.
//! That SQL is written to the common dialect: `$N` placeholders, text ids (UUIDv7), times as
//! RFC 3339 UTC text with milliseconds (sortable as text, compared as text), 64-bit integers.
//! The few statements that must differ (the job lease's `FOR UPDATE SKIP LOCKED`, `NOTIFY`) ask
//! [`backend`] which one they run on.

use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Executor};
use std::str::FromStr;
use std::time::Duration;

pub type Db = AnyPool;
pub type Conn = sqlx::AnyConnection;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

// The wrapped errors are part of the message (the HTTP API shows `to_string()`), so they are
// not also reported as a `source`: a cause chain would print them twice.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database URL `{url}`: {message}")]
    BadUrl { url: String, message: String },
    #[error(
        "no database at {path}: run `belfry migrate` (or any command that writes) to create it, or point --database-url at the one you meant"
    )]
    Missing { path: String },
    #[error("cannot connect to the database at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("database: {0}")]
    Sql(sqlx::Error),
    #[error("migrations: {0}")]
    Migrate(sqlx::migrate::MigrateError),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// A stored value a caller wrote and can write again (a policy setting saved before its
    /// bound existed, or by hand): the caller's to fix, so not a server fault.
    #[error("{0}")]
    OutOfRange(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Sql(e)
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        StoreError::Migrate(e)
    }
}

/// Whether opening a database may create it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Create {
    /// Commands that write: a missing SQLite file is created.
    IfMissing,
    /// Commands that only read: a missing SQLite file is an error, so that running one in
    /// the wrong folder does not leave an empty database behind.
    Never,
}

/// How long the first connection to a PostgreSQL server may take before opening fails with
/// the reason (a server that is down refuses at once; one that is unreachable never answers).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

impl Backend {
    /// The backend a database URL names, or why the URL is not one we accept.
    pub fn of_url(url: &str) -> Result<Backend, StoreError> {
        let bad = |message: &str| StoreError::BadUrl {
            url: redact(url),
            message: message.to_string(),
        };
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            sqlx::postgres::PgConnectOptions::from_str(url).map_err(|e| bad(&e.to_string()))?;
            Ok(Backend::Postgres)
        } else if url.starts_with("sqlite:") {
            sqlx::sqlite::SqliteConnectOptions::from_str(url).map_err(|e| bad(&e.to_string()))?;
            Ok(Backend::Sqlite)
        } else {
            Err(bad(
                "expected sqlite://PATH (embedded) or postgres://USER@HOST/DATABASE",
            ))
        }
    }
}

/// The backend an open pool talks to.
pub fn backend(db: &Db) -> Backend {
    match db.connect_options().database_url.scheme() {
        "postgres" | "postgresql" => Backend::Postgres,
        _ => Backend::Sqlite,
    }
}

/// The backend a connection (or transaction) talks to, for code that holds no pool.
pub fn backend_of(conn: &Conn) -> Backend {
    if conn.backend_name() == "PostgreSQL" {
        Backend::Postgres
    } else {
        Backend::Sqlite
    }
}

/// Opens (creating if needed) the database at `url` and applies pending migrations.
pub async fn open(url: &str) -> Result<Db, StoreError> {
    open_with(url, Create::IfMissing).await
}

/// Opens the database at `url`, applying pending migrations; `create` says whether a missing
/// SQLite file may be created.
pub async fn open_with(url: &str, create: Create) -> Result<Db, StoreError> {
    sqlx::any::install_default_drivers();
    let backend = Backend::of_url(url)?;
    let pool = match backend {
        Backend::Sqlite => {
            if create == Create::Never {
                require_existing(url)?;
            }
            // `mode=rwc` creates the file, `mode=rw` does not; the pragmas are per connection.
            let mode = match create {
                Create::IfMissing => "mode=rwc",
                Create::Never => "mode=rw",
            };
            let url = if url.contains("mode=") || url.contains(":memory:") {
                url.to_string()
            } else if url.contains('?') {
                format!("{url}&{mode}")
            } else {
                format!("{url}?{mode}")
            };
            let options = AnyConnectOptions::from_str(&url)?;
            AnyPoolOptions::new()
                .max_connections(8)
                // No ping before each use (see PostgreSQL below).
                .test_before_acquire(false)
                // Each new connection refreshes the planner's statistics (below), so replacing
                // connections at this age keeps them current on a long-running process.
                .max_lifetime(STATISTICS_REFRESH)
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        // Writers queue behind each other instead of failing with SQLITE_BUSY;
                        // WAL lets readers run beside the one writer.
                        conn.execute(
                            "PRAGMA busy_timeout = 10000; PRAGMA journal_mode = WAL; \
                             PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;",
                        )
                        .await?;
                        // As SQLite advises for a new long-lived connection (3.46+): analyse,
                        // with a bounded sample, tables never analysed or much grown since, so
                        // a backlog does not leave the planner guessing. Best effort: a file
                        // opened read-only cannot store statistics, and need not.
                        if let Err(e) = conn.execute("PRAGMA optimize = 0x10002;").await {
                            tracing::debug!(error = %e, "PRAGMA optimize skipped");
                        }
                        Ok(())
                    })
                })
                .connect_with(options)
                .await?
        }
        Backend::Postgres => {
            let options = AnyConnectOptions::from_str(url)?;
            // One connection first, with a deadline: the pool retries a failing connect until
            // its acquire timeout and then reports only "pool timed out", never why.
            connect_once(url, &options).await?;
            AnyPoolOptions::new()
                .max_connections(16)
                // No ping before each use: it is a round trip per acquire, and a trigger
                // acquires three or four times. A connection that broke while idle fails the
                // one statement that uses it (the request errs, a job retries) and is dropped.
                .test_before_acquire(false)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(options)
                .await?
        }
    };
    let migrator = match backend {
        Backend::Sqlite => &SQLITE_MIGRATIONS,
        Backend::Postgres => &POSTGRES_MIGRATIONS,
    };
    let before = applied_migrations(&pool).await;
    migrator.run(&pool).await?;
    if applied_migrations(&pool).await != before {
        analyze(&pool, backend).await?;
    }
    if backend == Backend::Postgres {
        warn_without_autovacuum(&pool).await;
    }
    Ok(pool)
}

/// Says so when the server runs without autovacuum: the queue's tables churn (every job is
/// written, leased and deleted), and nothing else would reclaim their dead rows or bring the
/// planner's statistics up to date.
async fn warn_without_autovacuum(db: &Db) {
    let on: Result<String, _> = sqlx::query_scalar("SELECT current_setting('autovacuum')")
        .fetch_one(db)
        .await;
    if let Ok(setting) = on
        && setting != "on"
    {
        tracing::warn!(
            autovacuum = %setting,
            "PostgreSQL autovacuum is off: the job queue's dead rows and the planner's statistics are left to whoever runs VACUUM ANALYZE"
        );
    }
}

/// How long a SQLite connection lives before the pool replaces it (and the new one runs
/// `PRAGMA optimize`).
const STATISTICS_REFRESH: Duration = Duration::from_secs(30 * 60);

/// How many migrations the database has applied (0 before the first).
async fn applied_migrations(db: &Db) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM _sqlx_migrations")
        .fetch_one(db)
        .await
        .unwrap_or(0)
}

/// Fresh planner statistics, after migrations changed tables or indexes. On PostgreSQL
/// autovacuum keeps them current from then on; on SQLite each new connection's
/// `PRAGMA optimize` does. The SQLite sample is bounded, so this stays quick on a large file.
async fn analyze(db: &Db, backend: Backend) -> Result<(), StoreError> {
    match backend {
        Backend::Sqlite => {
            db.execute("PRAGMA analysis_limit = 1000; ANALYZE;").await?;
        }
        Backend::Postgres => {
            // This schema's tables only: a bare ANALYZE would visit every schema of the
            // database, other applications' included.
            let tables: Vec<String> = sqlx::query_scalar(
                "SELECT quote_ident(tablename::text) FROM pg_tables WHERE schemaname = current_schema()",
            )
            .fetch_all(db)
            .await?;
            if !tables.is_empty() {
                db.execute(format!("ANALYZE {}", tables.join(", ")).as_str())
                    .await?;
            }
        }
    }
    Ok(())
}

/// Fails with [`StoreError::Missing`] when `url` names a SQLite file that does not exist. A
/// PostgreSQL database is never created by belfry, so there is nothing to check there.
pub fn require_existing(url: &str) -> Result<(), StoreError> {
    if Backend::of_url(url)? != Backend::Sqlite
        || url.contains(":memory:")
        || url.contains("mode=memory")
    {
        return Ok(());
    }
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
    let path = options.get_filename();
    if path.exists() {
        Ok(())
    } else {
        Err(StoreError::Missing {
            path: path.display().to_string(),
        })
    }
}

/// Whether a PostgreSQL server answers at `url`: one connection, opened and closed, or the
/// reason it could not be, within a few seconds (for code that opens pools of its own).
pub async fn check_connect(url: &str) -> Result<(), StoreError> {
    sqlx::any::install_default_drivers();
    Backend::of_url(url)?;
    connect_once(url, &AnyConnectOptions::from_str(url)?).await
}

/// Opens and closes one connection, failing within [`CONNECT_TIMEOUT`] with the reason.
async fn connect_once(url: &str, options: &AnyConnectOptions) -> Result<(), StoreError> {
    use sqlx::Connection;
    let failed = |message: String| StoreError::Connect {
        url: redact(url),
        message,
    };
    match tokio::time::timeout(CONNECT_TIMEOUT, sqlx::AnyConnection::connect_with(options)).await {
        Err(_) => Err(failed(format!(
            "no answer within {} s",
            CONNECT_TIMEOUT.as_secs()
        ))),
        Ok(Err(e)) => Err(failed(e.to_string())),
        Ok(Ok(conn)) => {
            // A failed goodbye does not make the server unreachable.
            let _ = conn.close().await;
            Ok(())
        }
    }
}

/// The URL with any password replaced, for messages.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
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

/// Reads back a stored time.
pub fn parse_time(text: &str) -> Result<chrono::DateTime<chrono::Utc>, StoreError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| StoreError::Corrupt(format!("stored time `{text}`: {e}")))
}

/// `n` placeholders for an `IN (…)` list: `$from, …` on PostgreSQL, `?, …` on SQLite (see
/// [`value_rows`] for why, and for the rule that goes with it).
pub fn placeholders(backend: Backend, n: usize, from: usize) -> String {
    (0..n)
        .map(|i| match backend {
            Backend::Sqlite => "?".to_string(),
            Backend::Postgres => format!("${}", from + i),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Placeholders for a statement that writes or matches many rows at once: `rows` rows of
/// `cols` values each, `($from, …), (…)` on PostgreSQL. On SQLite they are plain `?`s, bound
/// in the order they appear, so the whole statement must use `?`s: SQLite treats `$N` as a
/// name and finds each one by a linear search, so binding `$N`s costs time quadratic in their
/// number (a 30-row trace insert spent more time binding than writing).
pub fn value_rows(backend: Backend, rows: usize, cols: usize, from: usize) -> String {
    (0..rows)
        .map(|r| format!("({})", placeholders(backend, cols, from + r * cols)))
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn new_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

/// An opaque paging cursor for lists ordered by `(created_at, id)`: the last row a page held.
pub fn cursor(created_at: &str, id: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("{created_at}|{id}"))
}

/// The `(created_at, id)` a [`cursor`] names, or `None` for text no list handed out.
pub fn parse_cursor(cursor: &str) -> Option<(String, String)> {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let (at, id) = text.split_once('|')?;
    // In the stored form, whatever a caller put in: the cursor's time is compared as text.
    let at = time_text(parse_time(at).ok()?);
    // Base64 hides a NUL from the checks on paths and queries; PostgreSQL would fail on it.
    crate::text::free_text("cursor", id).ok()?;
    Some((at, id.to_string()))
}

/// Whether the database answers and every migration this build knows is applied: what a
/// readiness probe asks. The error says which part failed.
pub async fn ready(db: &Db) -> Result<(), String> {
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = TRUE")
            .fetch_all(db)
            .await
            .map_err(|e| format!("database unreachable: {e}"))?;
    let migrator = match backend(db) {
        Backend::Sqlite => &SQLITE_MIGRATIONS,
        Backend::Postgres => &POSTGRES_MIGRATIONS,
    };
    let missing: Vec<i64> = migrator
        .iter()
        .map(|m| m.version)
        .filter(|v| !applied.contains(v))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!("migrations not applied: {missing:?}"))
    }
}
