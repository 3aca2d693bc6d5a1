//! Shared test set-up: a fresh database per test on SQLite (a temporary file) or PostgreSQL (a
//! schema of its own in `BELFRY_TEST_POSTGRES_URL`), the bundled plugins, a local receiver.
//!
//! `on_both_backends!(test_a, test_b)` turns `async fn test_a(b: Backend)` into the tests
//! `sqlite::test_a` and `postgres::test_a`. Without `BELFRY_TEST_POSTGRES_URL` the PostgreSQL
//! variants print that they were skipped and pass.

pub mod provider;
pub mod serve_process;

use belfry::receiver::Receiver;
use belfry::{Engine, EngineConfig};
use std::collections::BTreeMap;
use std::path::PathBuf;

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name($crate::common::Backend::Sqlite).await
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    if $crate::common::postgres_url().is_none() {
                        return;
                    }
                    super::$name($crate::common::Backend::Postgres).await
                }
            )*
        }
    };
}

/// The PostgreSQL server for tests, or `None` (and a line saying the test was skipped).
pub fn postgres_url() -> Option<String> {
    match std::env::var("BELFRY_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            eprintln!(
                "SKIPPED: BELFRY_TEST_POSTGRES_URL is not set, so this PostgreSQL test did not run"
            );
            None
        }
    }
}

/// A database of its own for one test. On PostgreSQL: a fresh schema, named with the time so
/// that schemas left by killed runs are dropped by later ones after an hour.
pub struct TestDb {
    pub url: String,
    pub dir: tempfile::TempDir,
}

pub async fn test_db(backend: Backend) -> TestDb {
    let dir = tempfile::tempdir().unwrap();
    let url = match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.path().join("test.db").display()),
        Backend::Postgres => {
            let base = postgres_url().expect("the PostgreSQL variant checks the URL first");
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let schema = format!(
                "belfry_t_{now}_{}",
                &uuid::Uuid::now_v7().simple().to_string()[20..]
            );
            let admin = sqlx::PgPool::connect(&base).await.unwrap();
            let old: Vec<String> = sqlx::query_scalar(
                "SELECT nspname::text FROM pg_namespace WHERE nspname LIKE 'belfry_t_%'",
            )
            .fetch_all(&admin)
            .await
            .unwrap();
            for name in old {
                let born: u64 = name
                    .split('_')
                    .nth(2)
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(0);
                if born + 3600 < now {
                    let _ = sqlx::query(&format!("DROP SCHEMA IF EXISTS {name} CASCADE"))
                        .execute(&admin)
                        .await;
                }
            }
            sqlx::query(&format!("CREATE SCHEMA {schema}"))
                .execute(&admin)
                .await
                .unwrap();
            admin.close().await;
            let sep = if base.contains('?') { '&' } else { '?' };
            format!("{base}{sep}options[search_path]={schema}")
        }
    };
    TestDb { url, dir }
}

pub struct World {
    pub engine: Engine,
    pub receiver: Receiver,
    pub db: TestDb,
}

/// A shared compile cache keeps the suite from compiling every component in every test.
pub fn cache_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("belfry-test-cache");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub async fn world(backend: Backend) -> World {
    world_with(backend, |_| {}).await
}

/// A world whose engine configuration `tweak` may change first.
pub async fn world_with(backend: Backend, tweak: impl FnOnce(&mut EngineConfig)) -> World {
    let db = test_db(backend).await;
    let receiver = Receiver::start(SECRET).await.unwrap();
    let mut config = config_for(&db.url, &receiver.url());
    tweak(&mut config);
    let engine = Engine::open(config).await.unwrap();
    World {
        engine,
        receiver,
        db,
    }
}

pub fn webhook_config(webhook_url: &str) -> belfry::host::plugins::PluginConfig {
    let mut plugin_config = belfry::host::plugins::PluginConfig::new();
    plugin_config.insert(
        "webhook".into(),
        BTreeMap::from([
            ("url".into(), webhook_url.to_string()),
            ("secret".into(), SECRET.to_string()),
        ]),
    );
    plugin_config
}

pub fn config_for(database_url: &str, webhook_url: &str) -> EngineConfig {
    EngineConfig {
        database_url: database_url.to_string(),
        bundled: belfry::BUNDLED,
        cache_dir: Some(cache_dir()),
        plugin_config: webhook_config(webhook_url),
        ..Default::default()
    }
}

pub async fn count(engine: &Engine, table: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(engine.db())
        .await
        .unwrap()
}

/// The python of a venv that `tests/<dir>/setup.sh` sets up under the target dir (once per
/// test binary, kept in `cell`), or why there is none.
pub fn python_venv(
    cell: &'static std::sync::OnceLock<Result<PathBuf, String>>,
    dir: &str,
) -> Result<&'static std::path::Path, &'static str> {
    cell.get_or_init(|| {
        let here = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join(dir);
        let venv = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{dir}-venv"));
        let out = std::process::Command::new("bash")
            .arg(here.join("setup.sh"))
            .arg(&venv)
            .output()
            .map_err(|e| format!("cannot run tests/{dir}/setup.sh: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "tests/{dir}/setup.sh failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(venv.join("bin/python"))
    })
    .as_deref()
    .map_err(String::as_str)
}
