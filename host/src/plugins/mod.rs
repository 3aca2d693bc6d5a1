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
//!
//! Files, by concern: `runtime.rs` (engine, linkers, pooling), `loading.rs` (where plugins
//! come from, compiled and checked), `calls.rs` (the typed calls) run by `bounded.rs` (limits,
//! failure classification), `errors.rs`, `contract.rs` and `workflow.rs` (the host-side types
//! of the contract), `kinds.rs` (kinds and supported versions), `versions.rs` (the WIT
//! bindings per version; 1.0 does the work), `state.rs` and `host_imports.rs` (a store's data
//! and the host functions a plugin imports). This file only names them.

pub mod assets;
mod bounded;
mod calls;
pub mod capabilities;
mod compile_cache;
pub mod contract;
mod errors;
mod host_imports;
mod kinds;
pub mod limits;
pub mod live;
mod loading;
pub mod manifest;
pub mod observe;
pub mod package;
pub mod pins;
mod plugin;
pub mod preview;
mod reference;
mod registry;
mod runtime;
mod state;
mod tls;
pub mod uploads;
mod versions;
mod warm;
pub mod workflow;

pub use contract::{
    Fallback, FeedbackEvent, FeedbackKind, Hold, MAX_DIGEST_KEY, MAX_FALLBACK_MS,
    NotifierDescription, OutgoingMessage, RecipientPlan, SendError, WebhookRejection,
    WebhookRequest,
};
pub use errors::{CallError, FailureReason, LoadError};
pub use loading::{ALLOW_HTTP_KEY, ALLOW_TCP_KEY, BundledPlugin, Loaded, load_all};
pub use manifest::{FileGrant, Manifest, ManifestError, PluginKind};
pub use observe::{Observation, Observed};
pub use plugin::Plugin;
pub use reference::PluginRef;
pub use registry::{
    BrokenPlugin, Choices, Displaced, LiveRegistry, Registry, RegistryError, RendererChoice,
    RendererReason, RouteInfo, RouteReason,
};
pub use runtime::{PluginConfig, PluginRuntime, RuntimeConfig};
pub(crate) use state::one_line;
pub use warm::{Reuse, WarmConfig};
