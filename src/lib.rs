//! belfry: a durable, explainable notification engine whose extension points are sandboxed
//! WebAssembly components.
//!
//! This crate is the binary and a thin façade: the engine lives in [`belfry_host`], the
//! first-party plugins are compiled from `plugins/` by `build.rs` and bundled here.
//!
//! ```no_run
//! # async fn run() -> anyhow::Result<()> {
//! let engine = belfry::Engine::open(belfry::EngineConfig {
//!     database_url: "sqlite://belfry.db".into(),
//!     bundled: belfry::BUNDLED,
//!     ..Default::default()
//! })
//! .await?;
//! let event = engine
//!     .trigger(&belfry::TriggerRequest::new(
//!         "welcome",
//!         serde_json::json!({"user": {"id": "u1", "email": "ada@example.com", "name": "Ada"}}),
//!     ))
//!     .await?;
//! engine.dispatch_event(&event.event_id).await?;
//! println!("{}", engine.explain(&event.event_id).await?);
//! # Ok(()) }
//! ```

pub mod config;
pub mod receiver;
pub mod serve;

pub use belfry_host as host;
pub use belfry_host::{Engine, EngineConfig, EngineError, TriggerOutcome, TriggerRequest};

mod bundled {
    include!(concat!(env!("OUT_DIR"), "/bundled.rs"));
}

/// The first-party plugins (`plugins/`), compiled from source by `build.rs`.
pub static BUNDLED: &[belfry_host::plugins::BundledPlugin] = bundled::BUNDLED;

/// Where `build.rs` put the hostile test plugins (`tests/fixtures/plugins/`): for tests.
#[doc(hidden)]
pub const FIXTURE_PLUGINS_DIR: &str = env!("BELFRY_FIXTURE_PLUGINS_DIR");
