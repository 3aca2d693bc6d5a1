//! The engine façade: one handle over the database, the plugin runtime and the registry.
//!
//! The top of the stack: embedding programs and `src/` call the engine through here. This
//! file holds its set-up; each concern's methods are in their own file (`deliveries`:
//! trigger, queue, changes and reads; `plugins`: runtime loads and provider webhooks;
//! `recipients`; `digests`; `endpoints`; `access`: tenants and keys).

mod access;
mod deliveries;
mod digests;
mod endpoints;
mod plugins;
mod recipients;
mod replay;

use crate::content::Channel;
use crate::dispatch::{self, DispatchConfig, Executor, Wakeup};
use crate::plugins::{
    BundledPlugin, LiveRegistry, LoadError, Plugin, PluginConfig, PluginRuntime, Registry,
    RegistryError, RuntimeConfig, uploads,
};
use crate::store::{self, Db, StoreError};
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
    /// When plugin instances are kept for more calls of the same build and tenant.
    pub warm: crate::plugins::WarmConfig,
    /// Channel → adapter plugin name, overriding the manifests' `channels`.
    pub routes: BTreeMap<Channel, String>,
    /// The default renderer (a plugin name) for notifiers that name none (`--renderer`);
    /// `None`: the one named `templates`, else the only (or last loaded) renderer.
    pub renderer: Option<String>,
    /// Follow plugin changes while the engine runs (`serve`, `worker`): uploads recorded by
    /// other nodes on the same database, and with `watch` the plugin directory. `None` (the
    /// default, as for one-shot commands): the plugins loaded at open, plus this engine's own
    /// uploads.
    pub live: Option<crate::plugins::live::LiveConfig>,
    /// Retries and leases.
    pub dispatch: DispatchConfig,
    /// The base URL `belfry serve` is reached at (`https://belfry.example.com`). When set,
    /// every email carries a signed one-click unsubscribe link under it (RFC 8058); without
    /// it there is nowhere to point the link, and emails carry none.
    pub public_url: Option<String>,
    /// Outbound lifecycle webhooks: reachable networks, disabling, timeouts.
    pub endpoints: crate::endpoints::EndpointsConfig,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            database_url: "sqlite://belfry.db".into(),
            bundled: &[],
            plugins_dir: None,
            cache_dir: None,
            plugin_config: PluginConfig::default(),
            warm: crate::plugins::WarmConfig::default(),
            routes: BTreeMap::new(),
            renderer: None,
            live: None,
            dispatch: DispatchConfig::default(),
            public_url: None,
            endpoints: crate::endpoints::EndpointsConfig::default(),
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
    #[error(transparent)]
    Endpoints(#[from] crate::endpoints::EndpointError),
    #[error("retry policy: {0}")]
    RetryPolicy(#[from] dispatch::retry::RetryPolicyError),
}

/// A running engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    db: Db,
    database_url: String,
    runtime: Arc<PluginRuntime>,
    registry: LiveRegistry,
    /// Kept to rebuild the registry when a plugin is loaded at runtime.
    choices: Arc<crate::plugins::Choices>,
    /// The task following plugin changes elsewhere ([`EngineConfig::live`]); it stops with
    /// the last clone of the engine.
    _live: Option<Arc<crate::plugins::live::Running>>,
    /// One runtime load at a time, so two cannot each replace the registry the other built on.
    loading: Arc<tokio::sync::Mutex<()>>,
    dispatch: DispatchConfig,
    /// Shared by every executor this engine hands out.
    retry: Arc<dispatch::RetryPolicy>,
    wake: Wakeup,
    gate: dispatch::WriteGate,
    /// The lease owner for jobs run in the caller's task ([`Engine::dispatch_pending`]).
    inline_owner: String,
    /// Where one-click unsubscribe links point (see [`EngineConfig::public_url`]).
    unsubscribe_links: Option<crate::unsubscribe::Links>,
    /// The links' signing keys, derived once per tenant (also to verify a click).
    unsubscribe_keys: crate::unsubscribe::Keys,
    /// Posts lifecycle events to endpoints; holds the SSRF policy registration checks too.
    endpoint_sender: crate::endpoints::Sender,
}

impl Engine {
    /// Opens the database (applying migrations) and loads every plugin.
    pub async fn open(config: EngineConfig) -> Result<Engine, EngineError> {
        config.dispatch.retry.validate()?;
        let db = store::open(&config.database_url).await?;
        let runtime = PluginRuntime::new(RuntimeConfig {
            cache_dir: config.cache_dir.clone(),
            plugin_config: config.plugin_config.clone(),
            warm: config.warm.clone(),
        })?;
        let loaded =
            crate::plugins::load_all(&runtime, config.bundled, config.plugins_dir.as_deref())
                .await?;
        let recorded = crate::plugins::live::Uploads::load(&db, &runtime).await?;
        let uploaded = recorded.plugins();
        let choices = Arc::new(crate::plugins::Choices {
            routes: config.routes.clone(),
            renderer: config.renderer.clone(),
        });
        // Every recorded upload stays reachable: runs pinned to a replaced build finish on it.
        let registry = Registry::with_choices(
            uploads::apply(loaded.plugins.clone(), uploaded.clone()),
            &choices,
        )?
        .remembering(uploaded)
        .with_broken(loaded.broken.clone());
        let runtime = Arc::new(runtime);
        let registry = LiveRegistry::new(registry);
        let loading = Arc::new(tokio::sync::Mutex::new(()));
        let live = config.live.clone().map(|live| {
            Arc::new(
                crate::plugins::live::Follower {
                    db: db.clone(),
                    database_url: config.database_url.clone(),
                    runtime: runtime.clone(),
                    registry: registry.clone(),
                    choices: choices.clone(),
                    loading: loading.clone(),
                    bundled: config.bundled,
                    plugins_dir: config.plugins_dir.clone(),
                    base: loaded.plugins,
                    broken: loaded.broken,
                    uploads: recorded,
                    config: live,
                }
                .spawn(),
            )
        });
        let unsubscribe_keys = crate::unsubscribe::Keys::default();
        let endpoint_sender = crate::endpoints::Sender::new(&config.endpoints)?;
        Ok(Engine {
            db,
            database_url: config.database_url.clone(),
            runtime,
            registry,
            choices,
            _live: live,
            loading,
            retry: Arc::new(config.dispatch.retry.clone()),
            dispatch: config.dispatch.clone(),
            wake: Wakeup::new(),
            gate: dispatch::WriteGate::new(),
            inline_owner: format!("{} (inline)", dispatch::worker::default_owner()),
            unsubscribe_links: config
                .public_url
                .as_deref()
                .map(|u| crate::unsubscribe::Links::new(u, unsubscribe_keys.clone())),
            unsubscribe_keys,
            endpoint_sender,
        })
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn runtime(&self) -> &PluginRuntime {
        &self.runtime
    }

    /// The plugins in force now.
    pub fn plugins(&self) -> Vec<Plugin> {
        self.registry.current().plugins().to_vec()
    }

    /// The registry in force now (a snapshot: a later runtime load does not change it).
    pub fn registry(&self) -> Arc<Registry> {
        self.registry.current()
    }

    /// What runs jobs: the database, plugins and retry policy of this engine.
    pub fn executor(&self) -> Executor {
        Executor {
            db: self.db.clone(),
            runtime: self.runtime.clone(),
            registry: self.registry.clone(),
            retry: self.retry.clone(),
            unsubscribe: self.unsubscribe_links.clone(),
            endpoints: self.endpoint_sender.clone(),
            handlers: crate::dispatch::handlers(&self.endpoint_sender),
            gate: self.gate.clone(),
            faults: Default::default(),
        }
    }

    /// Hands the database-wide gauges (deliveries by status and channel, queue depth and lag)
    /// to the installed metrics recorder.
    pub async fn observe_metrics(&self) -> Result<(), StoreError> {
        crate::metrics::observe(&self.db).await
    }

    /// Whether the database answers and its schema is current.
    pub async fn ready(&self) -> Result<(), String> {
        store::ready(&self.db).await
    }
}
