//! belfry's engine: a durable, explainable notification engine extended by sandboxed
//! WebAssembly plugins. One module per concept, each owning its tables, stacked in layers: a
//! module imports only its own layer or those below (`docs/architecture.md` is the rule, and
//! `tools/architecture` checks it). Bottom up:
//!
//! 1. [`text`] (the one rule for identifiers and free text from outside), [`time_bounds`]
//!    (the ten-year bound on durations and instants from outside) and [`vocabulary`] (how a
//!    stored status, reason or kind becomes a type);
//! 2. [`store`]: the database, migrations and the backends' SQL differences;
//! 3. [`content`] (channels and their content contracts), [`tenants`] and [`keys`] (who may
//!    call `belfry serve`), [`traces`] (the append-only log of every step, and nothing else);
//! 4. [`jobs`] (the durable queue, and the contract of a job kind's handler), [`metrics`],
//!    [`deliveries`] (events, notifications, deliveries and attempts: their statuses,
//!    reasons, writes and reads);
//! 5. [`policy`] (preferences, settings, suppressions and the decision) and [`plugins`] (the
//!    wasmtime runtime, manifests, capabilities, limits and the contract's host side);
//! 6. the features: [`endpoints`] (lifecycle webhooks; every trace is appended through
//!    [`endpoints::events`]), [`workflows`], [`feedback`] (what providers' webhooks say after
//!    the send), [`inbox`] (in-app items and end users' tokens), [`unsubscribe`] (one-click
//!    links in email, RFC 8058), [`digests`];
//! 7. [`trigger`] (event → notifications → planned deliveries) and [`dispatch`] (planned
//!    deliveries → rendered, validated, sent);
//! 8. [`explain`]: the story of a delivery, notification or event, read from all of the above;
//!    [`replay`]: recorded events run through a candidate plugin and the build that ran;
//! 9. [`engine`]: the façade embedding programs use.

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
pub mod replay;
pub mod store;
pub mod tenants;
pub mod text;
pub mod time_bounds;
pub mod traces;
pub mod trigger;
pub mod unsubscribe;
pub mod vocabulary;
pub mod workflows;

pub use engine::{Engine, EngineConfig, EngineError};
pub use trigger::{TriggerOutcome, TriggerRequest};
