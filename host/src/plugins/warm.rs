//! Warm instances: a plugin instance kept after a clean call, for the next call of the same
//! loaded build made for the same tenant.
//!
//! Instantiating is most of a small plugin call's cost (docs/performance.md), so the trigger
//! and dispatch paths ask for a warm instance. What survives between calls is the guest's own
//! memory (a renderer's parsed templates, and anything a guest chooses to keep), so:
//! - an instance only ever serves the tenant it was made for;
//! - it is retired after [`WarmConfig::max_calls`] calls, after any failed call (a trap, a
//!   timeout, a denied capability, refused memory), once it has grown past half its memory
//!   limit or filled half its stderr capture, and when it has sat idle for [`MAX_IDLE_FOR`];
//! - at most [`WarmConfig::max_idle`] instances wait at once, the oldest going first, so the
//!   pooling allocator always has slots for fresh calls.
//!
//! A call made with [`Reuse::Fresh`] never sees a warm instance, and limits (CPU time, wall
//! time, memory, output) are per call either way.

use super::plugin::Plugin;
use super::state::PluginState;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use wasmtime::Store;

/// Whether a plugin call may run on an instance kept from an earlier call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reuse<'a> {
    /// A new instance, dropped after the call.
    Fresh,
    /// A warm instance made for this tenant if one waits, kept afterwards if the call was
    /// clean.
    Tenant(&'a str),
    /// A new instance, dropped after the call, whose logs and peak memory are written into
    /// the observation (`belfry plugin call`).
    Observed(&'a super::observe::Observation),
}

/// How instances are kept; `max_calls = 0` turns reuse off.
#[derive(Clone, Debug)]
pub struct WarmConfig {
    /// Calls one instance serves before it is retired.
    pub max_calls: u32,
    /// Instances waiting at once, across all plugins and tenants.
    pub max_idle: usize,
}

impl Default for WarmConfig {
    fn default() -> Self {
        WarmConfig {
            // Long enough to amortise instantiation; short enough that a slow leak in a
            // guest never grows far.
            max_calls: 1000,
            // Well under the pooling allocator's 256 component instances.
            max_idle: 64,
        }
    }
}

/// An instance left unused this long is dropped: its build may have been replaced, and its
/// pool slot is better given back.
pub const MAX_IDLE_FOR: Duration = Duration::from_secs(60);

/// One kept instance with its store.
pub(super) struct Warm<I> {
    pub store: Store<PluginState>,
    pub instance: I,
    /// Calls served so far.
    pub calls: u32,
    /// Held so the build stays loaded (and its address unique) while the instance waits.
    plugin: Plugin,
    tenant: String,
    idle_since: Instant,
}

pub(super) struct WarmPool<I> {
    config: WarmConfig,
    /// Oldest first. Small (at most `max_idle`), so a scan beats a map here.
    idle: Mutex<Vec<Warm<I>>>,
}

impl<I> WarmPool<I> {
    pub fn new(config: WarmConfig) -> Self {
        WarmPool {
            config,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// The tenant a call may reuse an instance for, if reuse is on.
    pub fn tenant<'a>(&self, reuse: Reuse<'a>) -> Option<&'a str> {
        match reuse {
            Reuse::Tenant(t) if self.config.max_calls > 0 && self.config.max_idle > 0 => Some(t),
            _ => None,
        }
    }

    /// The most recently kept instance of this build for this tenant, if one waits.
    pub fn take(&self, plugin: &Plugin, tenant: &str) -> Option<Warm<I>> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let at = idle
            .iter()
            .rposition(|w| w.plugin.same_build(plugin) && w.tenant == tenant)?;
        let warm = idle.remove(at);
        drop(idle);
        (warm.idle_since.elapsed() < MAX_IDLE_FOR).then_some(warm)
    }

    /// Keeps an instance after a clean call, unless it has served its calls or is no longer
    /// fit to serve another (see the module's rules).
    pub fn put(
        &self,
        plugin: &Plugin,
        tenant: &str,
        store: Store<PluginState>,
        instance: I,
        calls: u32,
    ) {
        if calls >= self.config.max_calls || !store.data().reusable() {
            return;
        }
        let warm = Warm {
            store,
            instance,
            calls,
            plugin: plugin.clone(),
            tenant: tenant.to_string(),
            idle_since: Instant::now(),
        };
        // Retired instances are dropped after the lock is released: dropping a store gives
        // its memory back to the pool, which is not free.
        let mut retired = Vec::new();
        {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            let mut i = 0;
            while i < idle.len() {
                if idle[i].idle_since.elapsed() >= MAX_IDLE_FOR {
                    retired.push(idle.remove(i));
                } else {
                    i += 1;
                }
            }
            while idle.len() >= self.config.max_idle {
                retired.push(idle.remove(0));
            }
            idle.push(warm);
        }
        drop(retired);
    }

    /// Instances waiting now (for tests and metrics).
    pub fn idle(&self) -> usize {
        self.idle.lock().map(|i| i.len()).unwrap_or(0)
    }
}
