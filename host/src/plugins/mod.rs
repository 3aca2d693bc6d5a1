//! The plugin runtime: WebAssembly components (notifiers, renderers, channel adapters) run
//! in wasmtime with no ambient authority.
//!
//! Model (after wasmtime's own embeddings): one `Engine` and one `Linker` per plugin kind for
//! the life of the process; each component compiled once (and cached on disk by content hash
//! and engine build) and pre-instantiated; **one `Store` per instance**. A call runs on a
//! fresh instance, or, when the caller names a tenant ([`Reuse::Tenant`]), on a warm one kept
//! from an earlier clean call of the same build for the same tenant (`warm.rs` says when an
//! instance is retired); so nothing crosses between builds or tenants, and a trapped
//! instance is simply dropped.
//!
//! A call is bounded by CPU time (epoch interruption, plus a wall-clock timeout for time spent
//! waiting on the host), memory (a `ResourceLimiter`) and the size of what it returns. Any
//! failure — trap, panic, timeout, limit, denied capability — fails that one call with a
//! [`CallError`] naming the plugin, its version and hash, the function and a reason code.

pub mod assets;
pub mod capabilities;
mod compile_cache;
mod loading;
pub use loading::{Loaded, load_all};
pub mod limits;
pub mod live;
pub mod manifest;
pub mod package;
pub mod pins;
mod registry;
mod state;
mod tls;
pub(crate) use state::one_line;
pub mod uploads;
mod versions;
mod warm;

pub use manifest::{FileGrant, Manifest, ManifestError, PluginKind};
pub use registry::{
    BrokenPlugin, Choices, Displaced, LiveRegistry, Registry, RegistryError, RendererChoice,
    RendererReason, RouteInfo, RouteReason,
};
pub use warm::{Reuse, WarmConfig};

use crate::content::{Channel, Content, Recipient, RenderRequest};
use crate::feedback;
use crate::policy::Severity;
use sha2::{Digest, Sha256};
use state::PluginState;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;
use versions::v1::{self, AdapterCalls, NotifierCalls, RendererCalls};
use versions::{Instance, Pre};
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};

/// A first-party plugin compiled into the binary by `build.rs`.
pub struct BundledPlugin {
    pub name: &'static str,
    pub manifest: &'static str,
    pub wasm: &'static [u8],
    /// Files under the manifest's granted directories: (path relative to the manifest, bytes).
    pub files: &'static [(&'static str, &'static [u8])],
    /// The package's assets (`plugins/NAME/assets/**`): (path inside `assets/`, bytes).
    pub assets: &'static [(&'static str, &'static [u8])],
}

/// The exact plugin build that did something: recorded on every delivery and trace entry.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub struct PluginRef {
    pub name: String,
    pub version: String,
    /// SHA-256 of the component bytes, hex.
    pub hash: String,
}

impl std::fmt::Display for PluginRef {
    /// `name@version#hash12`, the form stored in traces.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}@{}#{}",
            self.name,
            self.version,
            &self.hash[..12.min(self.hash.len())]
        )
    }
}

/// Why a plugin call failed. The string forms are stable: they are stored and shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureReason {
    /// CPU time or wall-clock limit reached.
    Timeout,
    /// The plugin asked for more memory than its limit.
    MemoryLimit,
    /// The guest trapped or panicked.
    Trap,
    /// The plugin returned its own error (invalid payload, missing template variable, ...).
    PluginError,
    /// The plugin tried something its manifest does not grant.
    CapabilityDenied,
    /// The plugin returned more than its output limit.
    OutputTooLarge,
    /// The component could not be instantiated.
    Instantiate,
}

impl FailureReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Timeout => "timeout",
            FailureReason::MemoryLimit => "memory_limit",
            FailureReason::Trap => "trap",
            FailureReason::PluginError => "plugin_error",
            FailureReason::CapabilityDenied => "capability_denied",
            FailureReason::OutputTooLarge => "output_too_large",
            FailureReason::Instantiate => "instantiate",
        }
    }
}

impl std::fmt::Display for FailureReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One plugin call failed. The host and other plugins are unaffected.
#[derive(Clone, Debug, thiserror::Error, serde::Serialize)]
#[error("plugin {plugin} `{function}` failed ({reason}): {message}")]
pub struct CallError {
    /// `name@version#hash12`.
    pub plugin: String,
    pub function: &'static str,
    pub reason: FailureReason,
    pub message: String,
}

/// A plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("plugin {origin}: {message}")]
    Invalid { origin: String, message: String },
    // The wrapped errors are part of the message (shown whole by the HTTP API), so they are not
    // also a `source`, which a cause chain would print a second time.
    #[error("plugin {origin}: cannot read {path}: {error}")]
    Io {
        origin: String,
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("plugin {origin}: `describe` failed: {error}")]
    Describe { origin: String, error: CallError },
}

/// What an adapter's `send` said.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SendError {
    Transient {
        message: String,
    },
    RateLimited {
        retry_after_ms: u64,
        message: String,
    },
    Permanent {
        message: String,
    },
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::Transient { message } => write!(f, "transient: {message}"),
            SendError::RateLimited {
                retry_after_ms,
                message,
            } => write!(
                f,
                "rate-limited (retry after {retry_after_ms} ms): {message}"
            ),
            SendError::Permanent { message } => write!(f, "permanent: {message}"),
        }
    }
}

/// The message handed to an adapter's `send`.
#[derive(Clone, Debug)]
pub struct OutgoingMessage {
    pub delivery_id: String,
    pub notification_id: String,
    pub tenant: String,
    pub idempotency_key: String,
    pub attempt: u32,
    pub channel: Channel,
    pub recipient: Recipient,
    pub content: Content,
    /// Headers the host requires on the message (email: one-click unsubscribe).
    pub headers: Vec<(String, String)>,
}

/// What a notifier says about itself.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct NotifierDescription {
    pub key: String,
    pub version: String,
    pub category: String,
    pub channels: Vec<Channel>,
    pub description: String,
    /// The severity of its notifications when the trigger names none (`normal` before WIT
    /// 0.2.0).
    pub severity: Severity,
    /// Channels sent only if the in-app item is still unread after a while (WIT 0.2.0).
    pub fallbacks: Vec<Fallback>,
    /// Deliveries that quiet hours or a cap would defer may be folded into the recipient's
    /// digest instead (WIT 0.3.0).
    pub fold_deferred: bool,
    /// A journey of steps run once per notification (WIT 0.4.0).
    pub workflow: Option<crate::workflows::Workflow>,
}

/// "Send on `channel` only if the in-app item is unread `after_ms` after planning."
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Fallback {
    pub channel: Channel,
    pub after_ms: u64,
}

/// The longest a fallback may wait.
pub const MAX_FALLBACK_MS: u64 = 30 * 24 * 3600 * 1000;

impl NotifierDescription {
    /// The fallback for `channel`, if it is one.
    pub fn fallback_for(&self, channel: Channel) -> Option<Fallback> {
        self.fallbacks
            .iter()
            .find(|f| f.channel == channel)
            .copied()
    }

    /// What `describe` must satisfy before the notifier is accepted: a load-time check, so a
    /// bad declaration fails the load with its field named, not a trigger later.
    pub fn validate(&self) -> Result<(), String> {
        if self.key.trim().is_empty() {
            return Err("describe().key is empty".into());
        }
        if self.channels.is_empty() {
            return Err("describe().channels is empty".into());
        }
        let mut seen = Vec::new();
        for f in &self.fallbacks {
            let c = f.channel;
            if c == Channel::InApp {
                return Err("describe().fallbacks: in-app cannot be its own fallback".into());
            }
            if !self.channels.contains(&c) {
                return Err(format!(
                    "describe().fallbacks: {c} is not among describe().channels"
                ));
            }
            if !self.channels.contains(&Channel::InApp) {
                return Err(format!(
                    "describe().fallbacks: {c} falls back from in-app, which is not among describe().channels"
                ));
            }
            if f.after_ms == 0 || f.after_ms > MAX_FALLBACK_MS {
                return Err(format!(
                    "describe().fallbacks: {c} after-ms must be 1 to {MAX_FALLBACK_MS} (30 days), got {}",
                    f.after_ms
                ));
            }
            if seen.contains(&c) {
                return Err(format!("describe().fallbacks: {c} appears twice"));
            }
            seen.push(c);
        }
        if let Some(w) = &self.workflow {
            if self.fold_deferred {
                return Err(
                    "describe(): a workflow notifier cannot fold deferred deliveries into digests (its steps wait on each delivery's outcome)"
                        .into(),
                );
            }
            if !self.fallbacks.is_empty() {
                return Err(
                    "describe(): a workflow notifier declares no fallbacks (its steps wait instead)"
                        .into(),
                );
            }
            w.validate(&self.channels)?;
        }
        Ok(())
    }
}

/// What a notifier's `channels` says about one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecipientPlan {
    pub channels: Vec<Channel>,
    /// Raises the notification's severity for this recipient (WIT 0.2.0).
    pub severity: Option<Severity>,
    /// Channels held for digest rather than sent at once (WIT 0.3.0).
    pub held: Vec<Hold>,
}

/// A channel held for digest, and the digest key its items group under.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Hold {
    pub channel: Channel,
    pub digest_key: Option<String>,
}

/// The longest digest key a notifier may give.
pub const MAX_DIGEST_KEY: usize = 200;

/// A loaded, pre-instantiated plugin. Cheap to clone.
#[derive(Clone)]
pub struct Plugin(Arc<LoadedPlugin>);

struct LoadedPlugin {
    reference: PluginRef,
    manifest: Manifest,
    pre: Pre,
    config: Arc<BTreeMap<String, String>>,
    /// The manifest's grants plus the operator's (`allow_http`, `allow_tcp`).
    http: Arc<[capabilities::AuthorityPattern]>,
    tcp: Arc<[capabilities::AuthorityPattern]>,
    description: Option<NotifierDescription>,
    /// The package's read-only files (`assets/`): a notifier's templates and translations.
    assets: Arc<assets::Assets>,
    /// Where the component came from: `bundled` or a path.
    origin: String,
    /// Keeps materialised bundled files alive as long as the plugin.
    _files: Option<Arc<tempfile::TempDir>>,
}

impl Plugin {
    /// The same loaded build (not merely the same hash: config and grants come with a load).
    fn same_build(&self, other: &Plugin) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
    pub fn reference(&self) -> &PluginRef {
        &self.0.reference
    }
    pub fn manifest(&self) -> &Manifest {
        &self.0.manifest
    }
    pub fn kind(&self) -> PluginKind {
        self.0.manifest.kind
    }
    pub fn name(&self) -> &str {
        &self.0.manifest.name
    }
    pub fn origin(&self) -> &str {
        &self.0.origin
    }
    /// Notifiers only: what `describe` returned at load time.
    /// The package's assets; empty for a plugin that ships none.
    pub fn assets(&self) -> &Arc<assets::Assets> {
        &self.0.assets
    }

    pub fn description(&self) -> Option<&NotifierDescription> {
        self.0.description.as_ref()
    }
    /// Every authority the plugin may reach over HTTP: its manifest's and the operator's.
    pub fn granted_http(&self) -> &[capabilities::AuthorityPattern] {
        &self.0.http
    }
    /// Every `host:port` the plugin may connect to over TCP.
    pub fn granted_tcp(&self) -> &[capabilities::AuthorityPattern] {
        &self.0.tcp
    }
    /// Config keys the host will answer for this plugin (values are secrets; not exposed).
    pub fn config_keys(&self) -> Vec<String> {
        self.0.config.keys().cloned().collect()
    }
}

impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Plugin({})", self.0.reference)
    }
}

/// Config keys the host reads itself and never shows the plugin: an operator widens a
/// plugin's network grants with them (a self-hosted ntfy server, a regional API host, a local
/// test server) without editing the manifest the plugin's author shipped.
pub const ALLOW_HTTP_KEY: &str = "allow_http";
pub const ALLOW_TCP_KEY: &str = "allow_tcp";

/// One kind of network grant (HTTP authorities or TCP destinations), shared by every call.
type Grants = Arc<[capabilities::AuthorityPattern]>;

/// The manifest's grants plus the operator's, taken out of `config` (comma-separated lists).
fn operator_grants(
    manifest: &Manifest,
    config: &mut BTreeMap<String, String>,
) -> Result<(Grants, Grants), String> {
    let mut http = manifest.http.clone();
    let mut tcp = manifest.tcp.clone();
    for (key, parse, into) in [
        (
            ALLOW_HTTP_KEY,
            capabilities::AuthorityPattern::parse as fn(&str) -> Result<_, String>,
            &mut http,
        ),
        (ALLOW_TCP_KEY, manifest::parse_tcp_grant, &mut tcp),
    ] {
        let Some(list) = config.remove(key) else {
            continue;
        };
        if manifest.kind != PluginKind::ChannelAdapter {
            return Err(format!(
                "config `{key}` grants network access, which only channel adapters may have"
            ));
        }
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            into.push(parse(item).map_err(|e| format!("config `{key}`: {e}"))?);
        }
    }
    Ok((http.into(), tcp.into()))
}

/// Per-plugin configuration (and secrets), keyed by plugin name then key.
pub type PluginConfig = HashMap<String, BTreeMap<String, String>>;

/// How the runtime is set up. Defaults: no on-disk cache, no plugin config.
#[derive(Clone, Debug, Default)]
pub struct RuntimeConfig {
    /// Where compiled components (and bundled plugins' files) are cached. `None` compiles
    /// every start and keeps bundled files in a temporary directory.
    pub cache_dir: Option<PathBuf>,
    pub plugin_config: PluginConfig,
    /// When instances are kept for further calls of the same build and tenant.
    pub warm: WarmConfig,
}

/// The wasmtime engine, linkers and epoch ticker shared by every plugin.
pub struct PluginRuntime {
    engine: Engine,
    /// Notifiers and renderers: WASI without sockets or HTTP.
    linker: Linker<PluginState>,
    /// Channel adapters: the same plus `wasi:http`, gated per plugin.
    adapter_linker: Linker<PluginState>,
    config: RuntimeConfig,
    warm: warm::WarmPool<Instance>,
    _ticker: EpochTicker,
}

/// Increments the engine's epoch every [`limits::EPOCH_TICK_MS`]; stops when dropped.
struct EpochTicker {
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

impl PluginRuntime {
    pub fn new(config: RuntimeConfig) -> Result<PluginRuntime, LoadError> {
        let fail = |message: String| LoadError::Invalid {
            origin: "runtime".into(),
            message,
        };
        let mut wt = wasmtime::Config::new();
        wt.wasm_component_model(true);
        wt.epoch_interruption(true);
        // Pooling: instantiation in ~20 µs instead of mmap/munmap per call. The numbers bound
        // concurrent instances; a call that finds the pool full fails like any other call.
        let mut pool = wasmtime::PoolingAllocationConfig::default();
        pool.total_component_instances(256)
            .total_core_instances(2048)
            .total_memories(512)
            .total_tables(512)
            .max_memories_per_component(8)
            .max_memory_size((limits::MAX_MEMORY_MIB << 20) as usize);
        // Resetting a slot for its next instance: with the PAGEMAP_SCAN ioctl (Linux 6.7+;
        // ignored elsewhere) only the pages the last instance touched are reset, by memset up
        // to 1 MiB, instead of an madvise that drops them and faults them back in on the next
        // call. This took fresh calls from about 11 000 to about 16 000 a second (see
        // docs/performance.md). The cost: up to 1 MiB stays resident per idle slot.
        pool.pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(1 << 20)
            .table_keep_resident(1 << 20);
        wt.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&wt).map_err(|e| fail(format!("wasmtime engine: {e:#}")))?;

        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| fail(format!("linking WASI: {e:#}")))?;
        versions::add_to_linker(&mut linker)
            .map_err(|e| fail(format!("linking host imports: {e:#}")))?;
        let mut adapter_linker = linker.clone();
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut adapter_linker)
            .map_err(|e| fail(format!("linking wasi:http: {e:#}")))?;
        tls::add_to_linker(&mut adapter_linker)
            .map_err(|e| fail(format!("linking wasi:tls: {e:#}")))?;

        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        {
            let engine = engine.clone();
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("belfry-epoch".into())
                .spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(limits::EPOCH_TICK_MS));
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| fail(format!("epoch thread: {e}")))?;
        }
        Ok(PluginRuntime {
            engine,
            linker,
            adapter_linker,
            warm: warm::WarmPool::new(config.warm.clone()),
            config,
            _ticker: EpochTicker { stop },
        })
    }

    pub(super) async fn load(
        &self,
        wasm: &[u8],
        manifest: Manifest,
        origin: String,
        keep: Option<Arc<tempfile::TempDir>>,
        assets: Arc<assets::Assets>,
    ) -> Result<Plugin, LoadError> {
        let invalid = |message: String| LoadError::Invalid {
            origin: origin.clone(),
            message,
        };
        let hash = hex::encode(Sha256::digest(wasm));
        let component =
            compile_cache::compile(&self.engine, wasm, &hash, self.config.cache_dir.as_deref())
                .map_err(|e| invalid(format!("not a valid WebAssembly component: {e:#}")))?;
        self.check_exports(&component, &manifest).map_err(invalid)?;
        let linker = match manifest.kind {
            PluginKind::ChannelAdapter => &self.adapter_linker,
            _ => &self.linker,
        };
        let instance_pre = linker.instantiate_pre(&component).map_err(|e| {
            invalid(format!(
                "imports something a {} is not given: {e:#}",
                manifest.kind
            ))
        })?;
        let typed = |e: wasmtime::Error| {
            invalid(format!(
                "exports do not match the {} world of belfry:plugin@{}: {e:#}",
                manifest.kind, manifest.wit
            ))
        };
        let pre = Pre::new(manifest.kind, &manifest.wit, instance_pre).map_err(typed)?;
        let mut config = self
            .config
            .plugin_config
            .get(&manifest.name)
            .cloned()
            .unwrap_or_default();
        let (http, tcp) = operator_grants(&manifest, &mut config).map_err(invalid)?;
        tls::check_config(&manifest, &config).map_err(|e| invalid(e.to_string()))?;
        let config = Arc::new(config);
        let reference = PluginRef {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            hash,
        };
        let mut plugin = LoadedPlugin {
            reference,
            manifest,
            pre,
            config,
            http,
            tcp,
            description: None,
            assets,
            origin: origin.clone(),
            _files: keep,
        };
        if plugin.manifest.kind == PluginKind::Notifier {
            let p = Plugin(Arc::new(plugin));
            let description = self
                .describe(&p)
                .await
                .map_err(|error| LoadError::Describe {
                    origin: origin.clone(),
                    error,
                })?;
            description.validate().map_err(invalid)?;
            plugin = Arc::into_inner(p.0).expect("no other handle to a plugin being loaded");
            plugin.description = Some(description);
        }
        tracing::info!(plugin = %plugin.reference, kind = %plugin.manifest.kind, %origin, "plugin loaded");
        Ok(Plugin(Arc::new(plugin)))
    }

    /// The WIT version is read from the versioned interface name the component exports.
    fn check_exports(&self, component: &Component, manifest: &Manifest) -> Result<(), String> {
        let expected_iface = match manifest.kind {
            PluginKind::Notifier => "notifications",
            PluginKind::Renderer => "rendering",
            PluginKind::ChannelAdapter => "delivery",
        };
        let ty = component.component_type();
        let exports: Vec<String> = ty
            .exports(&self.engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let ours: Vec<&String> = exports
            .iter()
            .filter(|n| n.starts_with("belfry:plugin/"))
            .collect();
        let Some(found) = ours.first() else {
            return Err(format!(
                "exports no belfry:plugin interface (exports: {})",
                exports.join(", ")
            ));
        };
        let (iface, version) = found
            .trim_start_matches("belfry:plugin/")
            .split_once('@')
            .unwrap_or((found.as_str(), ""));
        if iface != expected_iface {
            return Err(format!(
                "manifest says kind = \"{}\" but the component exports {found}",
                manifest.kind
            ));
        }
        if version != manifest.wit {
            return Err(format!(
                "manifest says wit = \"{}\" but the component was built against belfry:plugin@{version}",
                manifest.wit
            ));
        }
        Ok(())
    }

    fn new_store(&self, plugin: &LoadedPlugin) -> Result<Store<PluginState>, CallError> {
        let state = PluginState::new(
            &plugin.reference,
            &plugin.manifest,
            plugin.config.clone(),
            plugin.http.clone(),
            plugin.tcp.clone(),
        )
        .map_err(|message| CallError {
            plugin: plugin.reference.to_string(),
            function: "instantiate",
            reason: FailureReason::Instantiate,
            message,
        })?;
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limiter);
        Ok(store)
    }

    /// Runs `body` on an instance of `plugin` — a warm one kept for this tenant if `reuse`
    /// allows and one waits, else a fresh one, answering `assets` reads from `assets` for this
    /// call only — then `finish` on what it returned (the
    /// plugin's own errors, output limits, conversion), and turns every way it can fail into
    /// a `CallError`. The instance is offered back to the warm pool if the call succeeded or
    /// failed only by the plugin's own verdict; any other failure drops it with its store.
    async fn run<R, T>(
        &self,
        plugin: &Plugin,
        function: &'static str,
        reuse: Reuse<'_>,
        assets: &Arc<assets::Assets>,
        body: impl AsyncFnOnce(&mut Store<PluginState>, &Instance) -> wasmtime::Result<R>,
        finish: impl FnOnce(R) -> Result<T, CallError>,
    ) -> Result<T, CallError> {
        let p = &*plugin.0;
        let tenant = self.warm.tenant(reuse);
        let warm = tenant.and_then(|t| self.warm.take(plugin, t));
        let span = tracing::debug_span!(
            "plugin_call",
            plugin = %p.reference,
            function,
            warm = warm.is_some()
        );
        async {
            let started = std::time::Instant::now();
            let (mut store, instance, calls) = match warm {
                Some(w) => (w.store, Some(w.instance), w.calls),
                None => (self.new_store(p)?, None, 0),
            };
            store
                .data_mut()
                .begin_call(assets.clone(), state::assets_budget(&p.manifest));
            let wall = Duration::from_millis(p.manifest.limits.timeout_ms);
            let computing = Arc::new(std::sync::atomic::AtomicBool::new(false));
            deadline_per_tick(&mut store, wall, computing.clone());
            let outcome = off_the_async_workers(
                &computing,
                tokio::time::timeout(wall, async {
                    let instance = match instance {
                        Some(i) => i,
                        None => p.pre.instantiate(&mut store).await?,
                    };
                    let r = body(&mut store, &instance).await?;
                    Ok((instance, r))
                }),
            )
            .await;
            let result = classify(p, function, &store, outcome.map_err(|_| ()));
            let name = format!("{}@{}", p.manifest.name, p.manifest.version);
            metrics::histogram!(crate::metrics::PLUGIN_CALL_SECONDS, "plugin" => name.clone(), "function" => function)
                .record(started.elapsed().as_secs_f64());
            let (result, instance) = match result {
                Ok((instance, r)) => (finish(r), Some(instance)),
                Err(e) => (Err(e), None),
            };
            let sound = match &result {
                Ok(_) => true,
                Err(e) => e.reason == FailureReason::PluginError,
            };
            if let (Some(t), Some(instance), true) = (tenant, instance, sound) {
                self.warm.put(plugin, t, store, instance, calls + 1);
            }
            if let Err(e) = &result {
                metrics::counter!(crate::metrics::PLUGIN_CALL_FAILURES, "plugin" => name, "function" => function, "reason" => e.reason.as_str())
                    .increment(1);
            }
            result
        }
        .instrument(span)
        .await
    }

    /// Instances waiting in the warm pool now.
    pub fn warm_instances(&self) -> usize {
        self.warm.idle()
    }

    fn plugin_error(plugin: &Plugin, function: &'static str, message: String) -> CallError {
        CallError {
            plugin: plugin.reference().to_string(),
            function,
            reason: FailureReason::PluginError,
            // The guest's own words reach the host's log lines: kept to one line.
            message: state::one_line(&message).into_owned(),
        }
    }

    fn check_output(plugin: &Plugin, function: &'static str, size: usize) -> Result<(), CallError> {
        let limit = plugin.manifest().limits.output_bytes;
        if size > limit {
            return Err(CallError {
                plugin: plugin.reference().to_string(),
                function,
                reason: FailureReason::OutputTooLarge,
                message: format!("returned {size} bytes, the limit is {limit}"),
            });
        }
        Ok(())
    }

    fn wrong_kind(plugin: &Plugin, function: &'static str) -> CallError {
        CallError {
            plugin: plugin.reference().to_string(),
            function,
            reason: FailureReason::Instantiate,
            message: format!("`{function}` called on a {}", plugin.kind()),
        }
    }

    /// Runs `call` on an instance of a notifier, whichever contract it was built against
    /// (`versions.rs` dispatches to it in 1.0's terms), with the notifier's own assets.
    async fn notifier_call<R, T>(
        &self,
        plugin: &Plugin,
        function: &'static str,
        reuse: Reuse<'_>,
        call: impl AsyncFnOnce(
            &mut Store<PluginState>,
            &versions::NotifierInstance,
        ) -> wasmtime::Result<R>,
        finish: impl FnOnce(R) -> Result<T, CallError>,
    ) -> Result<T, CallError> {
        self.run(
            plugin,
            function,
            reuse,
            plugin.assets(),
            async move |store, inst| match inst {
                Instance::Notifier(n) => Ok(Some(call(store, n).await?)),
                _ => Ok(None),
            },
            |r| finish(r.ok_or_else(|| Self::wrong_kind(plugin, function))?),
        )
        .await
    }

    /// Runs `call` on an instance of a channel adapter. An adapter imports no `assets`.
    async fn adapter_call<R, T>(
        &self,
        plugin: &Plugin,
        function: &'static str,
        reuse: Reuse<'_>,
        call: impl AsyncFnOnce(
            &mut Store<PluginState>,
            &versions::AdapterInstance,
        ) -> wasmtime::Result<R>,
        finish: impl FnOnce(R) -> Result<T, CallError>,
    ) -> Result<T, CallError> {
        self.run(
            plugin,
            function,
            reuse,
            &assets::Assets::empty(),
            async move |store, inst| match inst {
                Instance::Adapter(a) => Ok(Some(call(store, a).await?)),
                _ => Ok(None),
            },
            |r| finish(r.ok_or_else(|| Self::wrong_kind(plugin, function))?),
        )
        .await
    }

    pub async fn describe(&self, plugin: &Plugin) -> Result<NotifierDescription, CallError> {
        self.notifier_call(
            plugin,
            "describe",
            Reuse::Fresh,
            async |store, n| n.describe(store).await,
            |d| Ok(v1::description_from_wit(d)),
        )
        .await
    }

    pub async fn recipients(
        &self,
        plugin: &Plugin,
        payload: &str,
        reuse: Reuse<'_>,
    ) -> Result<Vec<Recipient>, CallError> {
        let payload = payload.to_string();
        self.notifier_call(
            plugin,
            "recipients",
            reuse,
            async |store, n| n.recipients(store, &payload).await,
            |r| {
                let r = r.map_err(|e| {
                    Self::plugin_error(plugin, "recipients", v1::plan_error_message(e))
                })?;
                let size = r
                    .iter()
                    .map(|x| x.id.len() + x.data.as_ref().map_or(0, String::len) + 64)
                    .sum();
                Self::check_output(plugin, "recipients", size)?;
                Ok(r.into_iter().map(v1::recipient_from_wit).collect())
            },
        )
        .await
    }

    pub async fn channels(
        &self,
        plugin: &Plugin,
        payload: &str,
        recipient: &Recipient,
        reuse: Reuse<'_>,
    ) -> Result<RecipientPlan, CallError> {
        let wr = v1::recipient_to_wit(recipient);
        let payload = payload.to_string();
        self.notifier_call(
            plugin,
            "channels",
            reuse,
            async |store, n| n.channels(store, &payload, &wr).await,
            |r| {
                let plan = r.map_err(|e| {
                    Self::plugin_error(plugin, "channels", v1::plan_error_message(e))
                })?;
                Ok(v1::plan_from_wit(plan))
            },
        )
        .await
    }

    pub async fn build(
        &self,
        plugin: &Plugin,
        payload: &str,
        recipient: &Recipient,
        channel: Channel,
        reuse: Reuse<'_>,
    ) -> Result<RenderRequest, CallError> {
        let wr = v1::recipient_to_wit(recipient);
        let wc = v1::channel_to_wit(channel);
        let payload = payload.to_string();
        self.notifier_call(
            plugin,
            "build",
            reuse,
            async |store, n| n.build(store, &payload, &wr, wc).await,
            |r| {
                let r =
                    r.map_err(|e| Self::plugin_error(plugin, "build", v1::plan_error_message(e)))?;
                Self::check_output(plugin, "build", r.template.len() + r.data.len())?;
                Ok(v1::render_request_from_wit(r))
            },
        )
        .await
    }

    /// Renders `request` with `renderer`. `assets` are what the renderer reads through the
    /// contract's `assets` interface during this call: the package assets of the notifier
    /// that asked for the render (its templates and translations), and nothing else.
    pub async fn render(
        &self,
        renderer: &Plugin,
        request: &RenderRequest,
        assets: &Arc<assets::Assets>,
        reuse: Reuse<'_>,
    ) -> Result<Content, CallError> {
        let wr = v1::render_request_to_wit(request);
        self.run(
            renderer,
            "render",
            reuse,
            assets,
            async |store, inst| {
                let Instance::Renderer(r) = inst else {
                    return Ok(None);
                };
                Ok(Some(r.render(store, &wr).await?))
            },
            |r| {
                let r = r.ok_or_else(|| Self::wrong_kind(renderer, "render"))?;
                let content = r.map_err(|e| {
                    Self::plugin_error(renderer, "render", v1::render_error_message(e))
                })?;
                let content = v1::content_from_wit(content);
                Self::check_output(renderer, "render", content.approx_size())?;
                Ok(content)
            },
        )
        .await
    }

    /// Sends one message. The outer error is the call failing; the inner one is the
    /// adapter's own verdict (transient, rate-limited, permanent). An adapter built against an
    /// older contract gets what it can carry (a 0.1.0 adapter no `message.headers`).
    pub async fn send(
        &self,
        plugin: &Plugin,
        message: &OutgoingMessage,
        reuse: Reuse<'_>,
    ) -> Result<Result<String, SendError>, CallError> {
        let wm = v1::message_to_wit(message);
        self.adapter_call(
            plugin,
            "send",
            reuse,
            async |store, a| a.send(store, &wm).await,
            |r| {
                let r = v1::send_result_from_wit(r);
                if let Ok(id) = &r {
                    Self::check_output(plugin, "send", id.len())?;
                }
                Ok(r)
            },
        )
        .await
    }

    /// Hands a provider's webhook request to the adapter, which verifies it and turns it into
    /// feedback events. The outer error is the call failing; the inner one the adapter's
    /// refusal. A 0.1.0 adapter is given the path and query instead of the absolute URL.
    pub async fn handle_webhook(
        &self,
        plugin: &Plugin,
        request: &feedback::WebhookRequest,
    ) -> Result<Result<Vec<feedback::FeedbackEvent>, feedback::WebhookRejection>, CallError> {
        let wr = v1::webhook_request_to_wit(request);
        self.adapter_call(
            plugin,
            "handle-webhook",
            Reuse::Fresh,
            async |store, a| a.handle_webhook(store, &wr).await,
            |r| {
                let size: usize = r.as_ref().map_or(0, |events| {
                    events
                        .iter()
                        .map(|e| {
                            e.provider_event_id.len()
                                + e.provider_message_id.len()
                                + e.reason.as_ref().map_or(0, String::len)
                                + 16
                        })
                        .sum()
                });
                Self::check_output(plugin, "handle-webhook", size)?;
                Ok(v1::feedback_from_wit(r))
            },
        )
        .await
    }
}

/// Guest code is checked at every epoch tick ([`limits::EPOCH_TICK_MS`]): past `limit` since
/// the call began it traps (`Trap::Interrupt`, reported as a timeout, as before). Once the
/// guest has been seen at two ticks, so it has computed for at least one whole tick, it is
/// marked `computing` and yields to the executor at every tick: that yield is where
/// [`off_the_async_workers`] takes the call off the async workers. A quick call that merely
/// straddles one tick stays where it is. The yield is tokio's, which lets the worker poll for
/// I/O before it resumes the call, so on a runtime where the call cannot leave (current-thread)
/// other tasks still take turns with it.
fn deadline_per_tick(
    store: &mut Store<PluginState>,
    limit: Duration,
    computing: Arc<std::sync::atomic::AtomicBool>,
) {
    let began = std::time::Instant::now();
    let mut ticks_seen = 0u32;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if began.elapsed() >= limit {
            return Ok(wasmtime::UpdateDeadline::Interrupt);
        }
        ticks_seen = ticks_seen.saturating_add(1);
        if ticks_seen < 2 {
            return Ok(wasmtime::UpdateDeadline::Continue(1));
        }
        computing.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(wasmtime::UpdateDeadline::YieldCustom(
            1,
            Box::pin(tokio::task::yield_now()),
        ))
    });
}

/// Runs a plugin call so that it never holds an async worker for more than a tick or two of
/// the guest computing.
///
/// A call starts where it was made, on the async worker: nearly every call (a render, a plan,
/// a send waiting on its provider) is over in microseconds or waits on I/O without computing,
/// and a hop to another thread for every call would cost more than most calls do. Once the
/// guest has computed for a whole tick (`computing`, set by [`deadline_per_tick`]), the rest of
/// the call runs on this thread as a blocking section (`block_in_place`): the runtime hands
/// its other tasks to another worker and the OS shares the cores between them and the busy
/// plugins, so one slow plugin, or sixteen, cannot hold up `/healthz` or anyone else's
/// request. Chosen over keeping every call on the workers and only yielding at each tick,
/// which made a probe wait behind every busy call's slice in turn: docs/performance.md,
/// "Plugin calls off the async workers". Only a multi-threaded runtime can do this; on a
/// current-thread one the call stays, taking turns with other tasks at every tick.
async fn off_the_async_workers<F: std::future::Future>(
    computing: &std::sync::atomic::AtomicBool,
    call: F,
) -> F::Output {
    let mut call = std::pin::pin!(call);
    std::future::poll_fn(|cx| {
        if let std::task::Poll::Ready(out) = call.as_mut().poll(cx) {
            return std::task::Poll::Ready(out);
        }
        let runtime = tokio::runtime::Handle::try_current()
            .ok()
            .filter(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        match runtime {
            Some(runtime) if computing.load(std::sync::atomic::Ordering::Relaxed) => {
                tracing::debug!("plugin call computing for over a tick: leaving the async workers");
                std::task::Poll::Ready(tokio::task::block_in_place(|| {
                    runtime.block_on(call.as_mut())
                }))
            }
            _ => std::task::Poll::Pending,
        }
    })
    .await
}

/// Turns the way a call ended into its result or a `CallError` with a reason code.
/// `Err(())` is the wall-clock timeout.
fn classify<R>(
    p: &LoadedPlugin,
    function: &'static str,
    store: &Store<PluginState>,
    outcome: Result<wasmtime::Result<R>, ()>,
) -> Result<R, CallError> {
    let err = |reason, message: String| CallError {
        plugin: p.reference.to_string(),
        function,
        reason,
        // A trap's text can quote the guest: kept to one line.
        message: state::one_line(&message).into_owned(),
    };
    let state = store.data();
    let denials = state.gate.denials.lock().unwrap().clone();
    if !denials.is_empty() {
        return Err(err(FailureReason::CapabilityDenied, denials.join("; ")));
    }
    if let Some(message) = &state.assets_exceeded {
        return Err(err(
            FailureReason::OutputTooLarge,
            format!("{message} ({} bytes)", state::assets_budget(&p.manifest)),
        ));
    }
    match outcome {
        Err(()) => Err(err(
            FailureReason::Timeout,
            format!("did not finish within {} ms", p.manifest.limits.timeout_ms),
        )),
        Ok(Ok(r)) => Ok(r),
        Ok(Err(e)) => {
            if state.limiter.memory_refused {
                return Err(err(
                    FailureReason::MemoryLimit,
                    format!(
                        "memory limit of {} MiB reached",
                        p.manifest.limits.memory_bytes >> 20
                    ),
                ));
            }
            if matches!(
                e.downcast_ref::<wasmtime::Trap>(),
                Some(wasmtime::Trap::Interrupt)
            ) {
                return Err(err(
                    FailureReason::Timeout,
                    format!(
                        "CPU time limit of {} ms reached",
                        p.manifest.limits.timeout_ms
                    ),
                ));
            }
            let mut message = match e.downcast_ref::<wasmtime::Trap>() {
                // A trap's own text already starts with "wasm trap: ".
                Some(trap) => trap.to_string(),
                None => format!("{e:#}"),
            };
            let stderr = state.stderr_tail();
            if !stderr.is_empty() {
                message.push_str(&format!("; guest stderr: {stderr}"));
            }
            Err(err(FailureReason::Trap, message))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mention() -> NotifierDescription {
        NotifierDescription {
            key: "mention".into(),
            version: "1".into(),
            category: "activity".into(),
            channels: vec![Channel::Email, Channel::InApp],
            description: String::new(),
            severity: Severity::Normal,
            fallbacks: vec![Fallback {
                channel: Channel::Email,
                after_ms: 900_000,
            }],
            fold_deferred: false,
            workflow: None,
        }
    }

    #[test]
    fn a_description_is_checked_at_load_naming_what_is_wrong() {
        assert_eq!(mention().validate(), Ok(()));
        type Break = fn(&mut NotifierDescription);
        let cases: [(Break, &str); 6] = [
            (|d| d.key = " ".into(), "describe().key is empty"),
            (|d| d.channels.clear(), "describe().channels is empty"),
            (
                |d| d.fallbacks[0].channel = Channel::InApp,
                "in-app cannot be its own fallback",
            ),
            (
                |d| d.fallbacks[0].channel = Channel::Sms,
                "sms is not among describe().channels",
            ),
            (
                |d| d.channels.retain(|c| *c != Channel::InApp),
                "email falls back from in-app, which is not among describe().channels",
            ),
            (|d| d.fallbacks[0].after_ms = 0, "after-ms must be 1 to"),
        ];
        for (break_it, expected) in cases {
            let mut d = mention();
            break_it(&mut d);
            let err = d.validate().unwrap_err();
            assert!(err.contains(expected), "{err} should say {expected}");
        }
        let mut d = mention();
        d.fallbacks[0].after_ms = MAX_FALLBACK_MS + 1;
        assert!(d.validate().unwrap_err().contains("after-ms"));
        d.fallbacks = vec![d.fallbacks[0]; 2];
        d.fallbacks[0].after_ms = 1;
        d.fallbacks[1].after_ms = 1;
        assert!(d.validate().unwrap_err().contains("email appears twice"));
    }
}
