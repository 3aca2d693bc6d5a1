//! Embedding belfry in a Rust program: open the engine on SQLite with the bundled plugins,
//! trigger an event, dispatch it and print the explanation of what happened.
//!
//! `cargo run --example embed`

use belfry::{Engine, EngineConfig, TriggerRequest};
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let engine = Engine::open(EngineConfig {
        database_url: format!("sqlite://{}", dir.path().join("embed.db").display()),
        bundled: belfry::BUNDLED,
        cache_dir: belfry::config::default_cache_dir(),
        ..Default::default()
    })
    .await?;

    let event = engine
        .trigger(
            &TriggerRequest::new(
                "welcome",
                json!({"user": {"id": "ada", "name": "Ada Lovelace", "email": "ada@example.com"}}),
            )
            .tenant("acme")
            .idempotency_key("signup-ada"),
        )
        .await?;
    for d in engine.dispatch_event(&event.event_id).await? {
        println!("delivery {} -> {}", d.delivery_id, d.status);
    }
    print!("{}", engine.explain(&event.event_id).await?);
    for item in engine.inbox("acme", "ada").await? {
        println!("inbox: {} / {}", item.headline, item.body);
    }
    Ok(())
}
