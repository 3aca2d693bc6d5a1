//! The engine façade: one handle over the database, the plugin runtime and the registry.

use crate::content::Channel;
use crate::dispatch::{self, Dispatched};
use crate::inbox::{self, InboxItem};
use crate::plugins::{
    self, BundledPlugin, LoadError, Plugin, PluginConfig, PluginRuntime, Registry, RegistryError,
    RuntimeConfig,
};
use crate::store::{self, Db, StoreError};
use crate::traces::{self, DeliveryRecord, ExplainError, Explanation};
use crate::trigger::{self, TriggerError, TriggerOutcome, TriggerRequest};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Everything the engine needs to start. Defaults: `sqlite://belfry.db`, no plugin
/// directory, no cache, no plugin config, no bundled plugins, default routes.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    pub database_url: String,
    /// Plugins compiled into the embedding binary.
    pub bundled: &'static [BundledPlugin],
    /// A directory of `NAME.wasm` + `NAME.toml` pairs loaded after (and overriding) bundled ones.
    pub plugins_dir: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    pub plugin_config: PluginConfig,
    /// Channel → adapter plugin name, overriding the manifests' `channels`.
    pub routes: BTreeMap<Channel, String>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            database_url: "sqlite://belfry.db".into(),
            bundled: &[],
            plugins_dir: None,
            cache_dir: None,
            plugin_config: PluginConfig::default(),
            routes: BTreeMap::new(),
        }
    }
}

impl std::fmt::Debug for BundledPlugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BundledPlugin({})", self.name)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// A running engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    db: Db,
    runtime: Arc<PluginRuntime>,
    registry: Arc<Registry>,
}

impl Engine {
    /// Opens the database (applying migrations) and loads every plugin.
    pub async fn open(config: EngineConfig) -> Result<Engine, EngineError> {
        let db = store::open(&config.database_url).await?;
        let runtime = PluginRuntime::new(RuntimeConfig {
            cache_dir: config.cache_dir.clone(),
            plugin_config: config.plugin_config.clone(),
        })?;
        let loaded =
            plugins::load_all(&runtime, config.bundled, config.plugins_dir.as_deref()).await?;
        let registry = Registry::new(loaded, &config.routes)?;
        Ok(Engine {
            db,
            runtime: Arc::new(runtime),
            registry: Arc::new(registry),
        })
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn runtime(&self) -> &PluginRuntime {
        &self.runtime
    }

    pub fn plugins(&self) -> &[Plugin] {
        self.registry.plugins()
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Plans an event into notifications and pending deliveries (one transaction).
    pub async fn trigger(&self, req: &TriggerRequest) -> Result<TriggerOutcome, TriggerError> {
        trigger::trigger(&self.db, &self.runtime, &self.registry, req).await
    }

    /// Dispatches every pending delivery to its final status.
    pub async fn dispatch_pending(&self) -> Result<Vec<Dispatched>, StoreError> {
        dispatch::dispatch_pending(&self.db, &self.runtime, &self.registry).await
    }

    /// Dispatches the pending deliveries of one event.
    pub async fn dispatch_event(&self, event_id: &str) -> Result<Vec<Dispatched>, StoreError> {
        let ids = traces::deliveries_of_event(&self.db, event_id)
            .await?
            .into_iter()
            .filter(|d| d.status == "pending")
            .map(|d| d.id)
            .collect();
        dispatch::dispatch_many(&self.db, &self.runtime, &self.registry, ids).await
    }

    /// The current state of an event.
    pub async fn event(&self, event_id: &str) -> Result<TriggerOutcome, TriggerError> {
        trigger::summary(&self.db, event_id, false).await
    }

    pub async fn delivery(&self, id: &str) -> Result<Option<DeliveryRecord>, StoreError> {
        traces::delivery(&self.db, id).await
    }

    /// The ordered story of a delivery, notification or event.
    pub async fn explain(&self, id: &str) -> Result<Explanation, ExplainError> {
        traces::explain(&self.db, id).await
    }

    pub async fn inbox(
        &self,
        tenant: &str,
        recipient_id: &str,
    ) -> Result<Vec<InboxItem>, StoreError> {
        inbox::list(&self.db, tenant, recipient_id).await
    }
}
