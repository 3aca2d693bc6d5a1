//! Shared test set-up: a fresh SQLite file per test, the bundled plugins, a local receiver.
#![allow(dead_code)]

use belfry::receiver::Receiver;
use belfry::{Engine, EngineConfig};
use std::collections::BTreeMap;
use std::path::PathBuf;

pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

pub struct World {
    pub engine: Engine,
    pub receiver: Receiver,
    pub dir: tempfile::TempDir,
}

/// A shared compile cache keeps the suite from compiling every component in every test.
pub fn cache_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("belfry-test-cache");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub async fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(SECRET).await.unwrap();
    let engine = engine_at(&dir, &receiver.url()).await;
    World {
        engine,
        receiver,
        dir,
    }
}

pub async fn engine_at(dir: &tempfile::TempDir, webhook_url: &str) -> Engine {
    let mut plugin_config = belfry::host::plugins::PluginConfig::new();
    plugin_config.insert(
        "webhook".into(),
        BTreeMap::from([
            ("url".into(), webhook_url.to_string()),
            ("secret".into(), SECRET.to_string()),
        ]),
    );
    Engine::open(EngineConfig {
        database_url: format!("sqlite://{}", dir.path().join("test.db").display()),
        bundled: belfry::BUNDLED,
        cache_dir: Some(cache_dir()),
        plugin_config,
        ..Default::default()
    })
    .await
    .unwrap()
}

pub async fn count(engine: &Engine, table: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(&format!("SELECT COUNT(*) FROM {table}"))
        .fetch_one(engine.db())
        .await
        .unwrap()
}
