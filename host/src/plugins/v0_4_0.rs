//! Bindings for `belfry:plugin@0.4.0`, which changes only the notifier world: a notifier may
//! declare a workflow (see [`crate::workflows`]).
//!
//! As in [`super::v0_3_0`], its `types` interface is 0.1.0's, reused through bindgen's `with`,
//! and its `log` and `config` imports are linked under their own versioned names and answered
//! by the same host code.

use super::v0_1_0;
use crate::plugins::{Fallback, Hold, NotifierDescription};
use crate::policy::Severity;
use crate::workflows;

pub const VERSION: &str = "0.4.0";

mod bindings {
    wasmtime::component::bindgen!({
        world: "notifier",
        path: "../wit/plugin@0.4.0",
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
            .map(|f| Fallback {
                channel: v0_1_0::channel_from_wit(f.channel),
                after_ms: f.after_ms,
            })
            .collect(),
        fold_deferred: d.fold_deferred,
        workflow: d.workflow.map(workflow_from_wit),
    }
}

pub fn hold_from_wit(h: wit_notifications::Hold) -> Hold {
    Hold {
        channel: v0_1_0::channel_from_wit(h.channel),
        digest_key: h.digest_key,
    }
}

fn workflow_from_wit(w: wit_notifications::Workflow) -> workflows::Workflow {
    use wit_notifications::{StepOutcome as O, StepTarget as T};
    workflows::Workflow {
        key: w.key,
        version: w.version,
        steps: w
            .steps
            .into_iter()
            .map(|s| workflows::Step {
                key: s.key,
                channel: v0_1_0::channel_from_wit(s.channel),
                wait: s.wait.map(|w| workflows::Wait {
                    after_ms: w.after_ms,
                    cancel_on: w.cancel_on,
                    resume_on: w.resume_on,
                }),
                on_outcome: s
                    .on_outcome
                    .into_iter()
                    .map(|b| workflows::Branch {
                        outcome: match b.outcome {
                            O::Delivered => workflows::StepOutcome::Delivered,
                            O::Suppressed => workflows::StepOutcome::Suppressed,
                            O::Failed => workflows::StepOutcome::Failed,
                            O::RetriesExhausted => workflows::StepOutcome::RetriesExhausted,
                            O::PermanentlyFailed => workflows::StepOutcome::PermanentlyFailed,
                            O::Bounced => workflows::StepOutcome::Bounced,
                        },
                        then: match b.then {
                            T::Goto(k) => workflows::Target::Goto(k),
                            T::Stop => workflows::Target::Stop,
                        },
                    })
                    .collect(),
            })
            .collect(),
    }
}
