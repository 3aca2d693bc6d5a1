//! Contract 0.5.0 (`wit/plugin@0.5.0`, frozen), converted up into 1.0. It changed only the
//! channel-adapter world (message headers, the webhook request's absolute URL and receive
//! time); 1.0 added `metadata` to the message (dropped here: 1.0 defines no key) and to the
//! receipt (empty from a 0.5.0 adapter).
//!
//! Its `types` interface is 1.0's (reused through bindgen's `with`); its `log` and `config`
//! imports are linked under their own versioned names and answered by 1.0's host code
//! (`versions.rs`).

use super::v1::{self, AdapterCalls};
use crate::plugins::state::PluginState;
use wasmtime::Store;

pub const VERSION: &str = "0.5.0";

mod bindings {
    wasmtime::component::bindgen!({
        world: "channel-adapter",
        path: "../wit/plugin@0.5.0",
        exports: { default: async },
        with: {
            "belfry:plugin/types": crate::plugins::versions::v1::wit,
        },
    });
}

pub use bindings::belfry::plugin::{config as wit_config, log as wit_log};
pub use bindings::{ChannelAdapter, ChannelAdapterPre};

use bindings::exports::belfry::plugin::delivery as wit_delivery;
use v1::wit_delivery as new;

impl AdapterCalls for ChannelAdapter {
    async fn send(
        &self,
        store: &mut Store<PluginState>,
        m: &new::Message,
    ) -> wasmtime::Result<Result<new::Receipt, new::SendError>> {
        let old = wit_delivery::Message {
            delivery_id: m.delivery_id.clone(),
            notification_id: m.notification_id.clone(),
            tenant: m.tenant.clone(),
            idempotency_key: m.idempotency_key.clone(),
            attempt: m.attempt,
            channel: m.channel,
            recipient: m.recipient.clone(),
            content: m.content.clone(),
            headers: m.headers.clone(),
        };
        Ok(self
            .belfry_plugin_delivery()
            .call_send(store, &old)
            .await?
            .map(|r| new::Receipt {
                provider_message_id: r.provider_message_id,
                metadata: Vec::new(),
            })
            .map_err(|e| match e {
                wit_delivery::SendError::Transient(m) => new::SendError::Transient(m),
                wit_delivery::SendError::RateLimited(rl) => {
                    new::SendError::RateLimited(new::RateLimit {
                        retry_after_ms: rl.retry_after_ms,
                        message: rl.message,
                    })
                }
                wit_delivery::SendError::Permanent(m) => new::SendError::Permanent(m),
            }))
    }

    async fn handle_webhook(
        &self,
        store: &mut Store<PluginState>,
        request: &new::WebhookRequest,
    ) -> wasmtime::Result<Result<Vec<new::FeedbackEvent>, new::WebhookError>> {
        use wit_delivery::{FeedbackKind as K, WebhookError as E};
        let old = wit_delivery::WebhookRequest {
            method: request.method.clone(),
            url: request.url.clone(),
            headers: request.headers.clone(),
            body: request.body.clone(),
            received_at_ms: request.received_at_ms,
        };
        let r = self
            .belfry_plugin_delivery()
            .call_handle_webhook(store, &old)
            .await?;
        Ok(r.map_err(|e| match e {
            E::Unauthorized(m) => new::WebhookError::Unauthorized(m),
            E::Malformed(m) => new::WebhookError::Malformed(m),
            E::Unsupported(m) => new::WebhookError::Unsupported(m),
        })
        .map(|events| {
            events
                .into_iter()
                .map(|e| new::FeedbackEvent {
                    kind: match e.kind {
                        K::Accepted => new::FeedbackKind::Accepted,
                        K::Delivered => new::FeedbackKind::Delivered,
                        K::Deferred => new::FeedbackKind::Deferred,
                        K::BouncedHard => new::FeedbackKind::BouncedHard,
                        K::BouncedSoft => new::FeedbackKind::BouncedSoft,
                        K::Complained => new::FeedbackKind::Complained,
                        K::Rejected => new::FeedbackKind::Rejected,
                        K::Failed => new::FeedbackKind::Failed,
                        K::Opened => new::FeedbackKind::Opened,
                        K::Clicked => new::FeedbackKind::Clicked,
                        K::Unsubscribed => new::FeedbackKind::Unsubscribed,
                    },
                    provider_event_id: e.provider_event_id,
                    provider_message_id: e.provider_message_id,
                    occurred_at_ms: e.occurred_at_ms,
                    reason: e.reason,
                })
                .collect()
        }))
    }
}
