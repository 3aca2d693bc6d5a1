//! The integration tests, one binary (each file a module; shared set-up in `common`).
//! Kept apart, each for the reason at its top: `blocking`, `hostile_plugins`, `query_plans`.

#[macro_use]
mod common;

mod adapters;
mod bounds;
mod browser;
mod cli;
mod conformance;
mod contract;
mod contract_versions;
mod crash;
mod digest_buckets;
mod digests;
mod endpoints;
mod fake_provider;
mod feedback;
mod first_run;
mod http;
mod identifiers;
mod languages;
mod lifecycle;
mod live_plugins;
mod openapi;
mod packages;
mod plugin_call;
mod plugin_failures;
mod policy;
mod preview;
mod queue;
mod rendering;
mod replay;
mod replay_http;
mod resilience;
mod routes;
mod scaffold;
mod sdk_http;
mod signature;
mod smtp_tls;
mod workflows;
