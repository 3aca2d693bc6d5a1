//! The runtime set-up: one wasmtime engine (pooling allocator, epoch interruption) and one
//! linker per kind of plugin, shared by every plugin for the life of the process.

use super::errors::{CallError, FailureReason, LoadError};
use super::limits;
use super::plugin::LoadedPlugin;
use super::state::PluginState;
use super::tls;
use super::versions::{self, Instance};
use super::warm::{self, WarmConfig};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use wasmtime::component::Linker;
use wasmtime::{Engine, Store};

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
    pub(super) engine: Engine,
    /// Notifiers and renderers: WASI without sockets or HTTP.
    pub(super) linker: Linker<PluginState>,
    /// Channel adapters: the same plus `wasi:http`, gated per plugin.
    pub(super) adapter_linker: Linker<PluginState>,
    pub(super) config: RuntimeConfig,
    pub(super) warm: warm::WarmPool<Instance>,
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

    pub(super) fn new_store(&self, plugin: &LoadedPlugin) -> Result<Store<PluginState>, CallError> {
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

    /// Instances waiting in the warm pool now.
    pub fn warm_instances(&self) -> usize {
        self.warm.idle()
    }
}
