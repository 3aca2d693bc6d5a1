//! belfry's engine: a durable, explainable notification engine extended by sandboxed
//! WebAssembly plugins. One module per concept (see DESIGN.md), each owning its tables:
//!
//! - [`store`]: the database and migrations;
//! - [`plugins`]: the wasmtime runtime, manifests, capabilities and limits;
//! - [`content`]: channels and their content contracts;
//! - [`trigger`]: event → notifications → planned deliveries;
//! - [`dispatch`]: planned deliveries → rendered, validated, sent;
//! - [`inbox`]: where in-app deliveries land, and end users' tokens;
//! - [`feedback`]: what providers' webhooks say after the send (ledger, projection);
//! - [`unsubscribe`]: one-click unsubscribe links in email (RFC 8058);
//! - [`tenants`] and [`keys`]: who may call `belfry serve`;
//! - [`traces`]: the append-only trace and `explain`;
//! - [`time_bounds`]: the ten-year bound on durations and instants from outside;
//! - [`text`]: the one rule for identifiers and free text from outside (no NUL, no padding);
//! - [`engine`]: the façade embedding programs use.

pub mod content;
pub mod deliveries;
pub mod digests;
pub mod dispatch;
pub mod endpoints;
pub mod engine;
pub mod explain;
pub mod feedback;
pub mod inbox;
pub mod jobs;
pub mod keys;
pub mod metrics;
pub mod plugins;
pub mod policy;
pub mod store;
pub mod tenants;
pub mod text;
pub mod time_bounds;
pub mod traces;
pub mod trigger;
pub mod unsubscribe;
pub mod workflows;

pub use engine::{Engine, EngineConfig, EngineError};
pub use trigger::{TriggerOutcome, TriggerRequest};
