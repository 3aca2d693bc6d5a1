//! Contract 0.2.0 (`wit/plugin@0.2.0`, frozen), converted up into 1.0. It changed only the notifier world (a declared severity, a severity per recipient,
//! fallback channels); digest holds, folding and workflows it lacks are empty.
//!
//! Its `types` interface is 1.0's (reused through bindgen's `with`); its `log` and `config`
//! imports are linked under their own versioned names and answered by 1.0's host code
//! (`versions.rs`).

use super::v1::{self, NotifierCalls};
use crate::plugins::state::PluginState;
use wasmtime::Store;

pub const VERSION: &str = "0.2.0";

mod bindings {
    wasmtime::component::bindgen!({
        world: "notifier",
        path: "../wit/plugin@0.2.0",
        exports: { default: async },
        with: {
            "belfry:plugin/types": crate::plugins::versions::v1::wit,
        },
    });
}

pub use bindings::belfry::plugin::{config as wit_config, log as wit_log};
pub use bindings::{Notifier, NotifierPre};

use bindings::exports::belfry::plugin::notifications as wit_notifications;
use v1::wit_notifications as new;

type Up<T> = Result<T, new::PlanError>;

fn plan_error_up(e: wit_notifications::PlanError) -> new::PlanError {
    match e {
        wit_notifications::PlanError::InvalidPayload(m) => new::PlanError::InvalidPayload(m),
        wit_notifications::PlanError::Failed(m) => new::PlanError::Failed(m),
    }
}

fn severity_up(s: wit_notifications::Severity) -> new::Severity {
    use wit_notifications::Severity as Old;
    match s {
        Old::Low => new::Severity::Low,
        Old::Normal => new::Severity::Normal,
        Old::High => new::Severity::High,
        Old::Critical => new::Severity::Critical,
    }
}

impl NotifierCalls for Notifier {
    async fn describe(&self, store: &mut Store<PluginState>) -> wasmtime::Result<new::Description> {
        let d = self
            .belfry_plugin_notifications()
            .call_describe(store)
            .await?;
        Ok(new::Description {
            key: d.key,
            version: d.version,
            category: d.category,
            channels: d.channels,
            description: d.description,
            severity: severity_up(d.severity),
            fallbacks: d
                .fallbacks
                .into_iter()
                .map(|f| new::Fallback {
                    channel: f.channel,
                    after_ms: f.after_ms,
                })
                .collect(),
            fold_deferred: false,
            workflow: None,
        })
    }
    async fn recipients(
        &self,
        store: &mut Store<PluginState>,
        payload: &String,
    ) -> wasmtime::Result<Up<Vec<v1::wit::Recipient>>> {
        Ok(self
            .belfry_plugin_notifications()
            .call_recipients(store, payload)
            .await?
            .map_err(plan_error_up))
    }
    async fn channels(
        &self,
        store: &mut Store<PluginState>,
        payload: &String,
        recipient: &v1::wit::Recipient,
    ) -> wasmtime::Result<Up<new::RecipientPlan>> {
        Ok(self
            .belfry_plugin_notifications()
            .call_channels(store, payload, recipient)
            .await?
            .map(|p| new::RecipientPlan {
                channels: p.channels,
                severity: p.severity.map(severity_up),
                held: Vec::new(),
            })
            .map_err(plan_error_up))
    }
    async fn build(
        &self,
        store: &mut Store<PluginState>,
        payload: &String,
        recipient: &v1::wit::Recipient,
        channel: v1::wit::Channel,
    ) -> wasmtime::Result<Up<v1::wit::RenderRequest>> {
        Ok(self
            .belfry_plugin_notifications()
            .call_build(store, payload, recipient, channel)
            .await?
            .map_err(plan_error_up))
    }
}
