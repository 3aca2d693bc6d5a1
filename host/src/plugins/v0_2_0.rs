//! Bindings for `belfry:plugin@0.2.0`, which changes only the notifier world: a declared
//! severity, a severity per recipient from `channels`, and fallback channels.
//!
//! Its `types` interface is the same as 0.1.0's, so the generated code reuses 0.1.0's Rust
//! types for it (wasmtime checks component types by structure, not by package version) and
//! every content and recipient conversion stays in [`super::v0_1_0`]. Its `log` and `config`
//! imports are linked under their own versioned names and answered by the same host code.

use super::v0_1_0;
use crate::plugins::NotifierDescription;
use crate::policy::Severity;

pub const VERSION: &str = "0.2.0";

mod bindings {
    wasmtime::component::bindgen!({
        world: "notifier",
        path: "../wit/plugin@0.2.0",
        exports: { default: async },
        with: {
            "belfry:plugin/types": crate::plugins::v0_1_0::wit,
        },
    });
}

pub use bindings::belfry::plugin::{config as wit_config, log as wit_log};
pub use bindings::exports::belfry::plugin::notifications as wit_notifications;
pub use bindings::{Notifier, NotifierPre};

pub fn severity_from_wit(s: wit_notifications::Severity) -> Severity {
    use wit_notifications::Severity as W;
    match s {
        W::Low => Severity::Low,
        W::Normal => Severity::Normal,
        W::High => Severity::High,
        W::Critical => Severity::Critical,
    }
}

pub fn level_to_v0_1_0(l: wit_log::Level) -> v0_1_0::wit_log::Level {
    use v0_1_0::wit_log::Level as Old;
    match l {
        wit_log::Level::Trace => Old::Trace,
        wit_log::Level::Debug => Old::Debug,
        wit_log::Level::Info => Old::Info,
        wit_log::Level::Warn => Old::Warn,
        wit_log::Level::Error => Old::Error,
    }
}

pub fn description_from_wit(d: wit_notifications::Description) -> NotifierDescription {
    NotifierDescription {
        key: d.key,
        version: d.version,
        category: d.category,
        channels: d
            .channels
            .into_iter()
            .map(v0_1_0::channel_from_wit)
            .collect(),
        description: d.description,
        severity: severity_from_wit(d.severity),
        fallbacks: d
            .fallbacks
            .into_iter()
            .map(|f| crate::plugins::Fallback {
                channel: v0_1_0::channel_from_wit(f.channel),
                after_ms: f.after_ms,
            })
            .collect(),
        fold_deferred: false,
        workflow: None,
    }
}
