//! Contract 0.1.0 (`wit/plugin@0.1.0`, frozen), converted up into 1.0.
//!
//! Its `types` interface is 1.0's in all but the package line, so the generated code reuses
//! 1.0's Rust types for it (wasmtime checks component types by structure, not by package
//! version) and contents, recipients and render requests need no conversion. What 0.1.0 lacks
//! is filled in: a notifier's description has `normal` severity, no fallbacks, no folding and no
//! workflow; its `channels` answers a bare list, which becomes a plan with nothing raised or
//! held. An adapter gets no headers or metadata, and a webhook's path and query in place of the
//! absolute URL.

use super::v1::{self, AdapterCalls, NotifierCalls, RendererCalls};
use crate::plugins::state::PluginState;
use wasmtime::Store;

pub const VERSION: &str = "0.1.0";

mod bindings {
    pub mod notifier {
        wasmtime::component::bindgen!({
            world: "notifier",
            path: "../wit/plugin@0.1.0",
            exports: { default: async },
            with: {
                "belfry:plugin/types": crate::plugins::versions::v1::wit,
            },
        });
    }
    pub mod renderer {
        wasmtime::component::bindgen!({
            world: "renderer",
            path: "../wit/plugin@0.1.0",
            exports: { default: async },
            with: {
                "belfry:plugin/types": crate::plugins::versions::v1::wit,
                "belfry:plugin/log": super::notifier::belfry::plugin::log,
                "belfry:plugin/config": super::notifier::belfry::plugin::config,
            },
        });
    }
    pub mod adapter {
        wasmtime::component::bindgen!({
            world: "channel-adapter",
            path: "../wit/plugin@0.1.0",
            exports: { default: async },
            with: {
                "belfry:plugin/types": crate::plugins::versions::v1::wit,
                "belfry:plugin/log": super::notifier::belfry::plugin::log,
                "belfry:plugin/config": super::notifier::belfry::plugin::config,
            },
        });
    }
}

pub use bindings::adapter::{ChannelAdapter, ChannelAdapterPre};
pub use bindings::notifier::belfry::plugin::{config as wit_config, log as wit_log};
pub use bindings::notifier::{Notifier, NotifierPre};
pub use bindings::renderer::{Renderer, RendererPre};

use bindings::adapter::exports::belfry::plugin::delivery as wit_delivery;
use bindings::notifier::exports::belfry::plugin::notifications as wit_notifications;
use bindings::renderer::exports::belfry::plugin::rendering as wit_rendering;

type Up<T> = Result<T, v1::wit_notifications::PlanError>;

fn plan_error_up(e: wit_notifications::PlanError) -> v1::wit_notifications::PlanError {
    use v1::wit_notifications::PlanError as New;
    match e {
        wit_notifications::PlanError::InvalidPayload(m) => New::InvalidPayload(m),
        wit_notifications::PlanError::Failed(m) => New::Failed(m),
    }
}

impl NotifierCalls for Notifier {
    async fn describe(
        &self,
        store: &mut Store<PluginState>,
    ) -> wasmtime::Result<v1::wit_notifications::Description> {
        let d = self
            .belfry_plugin_notifications()
            .call_describe(store)
            .await?;
        Ok(v1::wit_notifications::Description {
            key: d.key,
            version: d.version,
            category: d.category,
            channels: d.channels,
            description: d.description,
            severity: v1::wit_notifications::Severity::Normal,
            fallbacks: Vec::new(),
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
    ) -> wasmtime::Result<Up<v1::wit_notifications::RecipientPlan>> {
        Ok(self
            .belfry_plugin_notifications()
            .call_channels(store, payload, recipient)
            .await?
            .map(|channels| v1::wit_notifications::RecipientPlan {
                channels,
                severity: None,
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

impl RendererCalls for Renderer {
    async fn render(
        &self,
        store: &mut Store<PluginState>,
        request: &v1::wit::RenderRequest,
    ) -> wasmtime::Result<Result<v1::wit::Content, v1::wit_rendering::RenderError>> {
        use v1::wit_rendering::RenderError as New;
        use wit_rendering::RenderError as Old;
        Ok(self
            .belfry_plugin_rendering()
            .call_render(store, request)
            .await?
            .map_err(|e| match e {
                Old::TemplateNotFound(m) => New::TemplateNotFound(m),
                Old::MissingVariable(m) => New::MissingVariable(m),
                Old::Failed(m) => New::Failed(m),
            }))
    }
}

/// The path and query of an absolute URL (`/` when it has none): what a 0.1.0 adapter was
/// given as the webhook's `uri`.
fn path_and_query(url: &str) -> &str {
    url.find("://")
        .and_then(|i| url[i + 3..].find('/').map(|j| i + 3 + j))
        .map_or("/", |start| &url[start..])
}

impl AdapterCalls for ChannelAdapter {
    async fn send(
        &self,
        store: &mut Store<PluginState>,
        m: &v1::wit_delivery::Message,
    ) -> wasmtime::Result<Result<v1::wit_delivery::Receipt, v1::wit_delivery::SendError>> {
        use v1::wit_delivery as new;
        let old = wit_delivery::Message {
            delivery_id: m.delivery_id.clone(),
            notification_id: m.notification_id.clone(),
            tenant: m.tenant.clone(),
            idempotency_key: m.idempotency_key.clone(),
            attempt: m.attempt,
            channel: m.channel,
            recipient: m.recipient.clone(),
            content: m.content.clone(),
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
        request: &v1::wit_delivery::WebhookRequest,
    ) -> wasmtime::Result<
        Result<Vec<v1::wit_delivery::FeedbackEvent>, v1::wit_delivery::WebhookError>,
    > {
        use v1::wit_delivery as new;
        use wit_delivery::{FeedbackKind as K, WebhookError as E};
        let old = wit_delivery::WebhookRequest {
            method: request.method.clone(),
            uri: path_and_query(&request.url).to_string(),
            headers: request.headers.clone(),
            body: request.body.clone(),
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

#[cfg(test)]
mod tests {
    #[test]
    fn a_webhook_url_becomes_its_path_and_query() {
        use super::path_and_query;
        assert_eq!(path_and_query("https://h.example/v1/w?x=1"), "/v1/w?x=1");
        assert_eq!(path_and_query("http://127.0.0.1:8080"), "/");
    }
}
