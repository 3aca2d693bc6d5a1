//! Bindings for contract 1.0 (`wit/plugin@1`, package `belfry:plugin@1.0.0`), the hub: every
//! host call is made in 1.0's terms ([`NotifierCalls`], [`RendererCalls`], [`AdapterCalls`]),
//! and each older contract's module (`since_v0_*.rs`) converts its values up into these. This
//! module also converts between 1.0's values and the engine's own types, so nothing outside
//! `plugins` sees a generated type.
//!
//! A 1.x minor version edits `wit/plugin@1` in place (additively, `wit/README.md`), and these
//! bindings follow it: a plugin built for an earlier 1.x still instantiates against them,
//! because wasmtime matches `@1.0.0` imports and exports to `@1.N.0` ones (semver-compatible
//! lookup; `tests/contract_versions.rs` proves it for wasmtime 48).

use crate::content::{Channel, Content, InAppAction, Recipient, RenderRequest};
use crate::plugins::contract::{
    Fallback, FeedbackEvent, FeedbackKind, Hold, NotifierDescription, OutgoingMessage,
    RecipientPlan, SendError, WebhookRejection, WebhookRequest,
};
use crate::plugins::state::PluginState;
use crate::plugins::workflow;
use crate::policy::Severity;
use std::future::Future;
use wasmtime::Store;

pub const VERSION: &str = "1.0.0";

mod bindings {
    pub mod notifier {
        wasmtime::component::bindgen!({
            world: "notifier",
            path: "../wit/plugin@1",
            exports: { default: async },
            // Reading assets is bounded per call; past the bound the call fails
            // (`output_too_large`) rather than answering `none`, which would read as "no such
            // file" to the guest.
            imports: {
                "belfry:plugin/assets.read": trappable,
                "belfry:plugin/assets.list": trappable,
            },
        });
    }
    pub mod renderer {
        wasmtime::component::bindgen!({
            world: "renderer",
            path: "../wit/plugin@1",
            exports: { default: async },
            with: {
                "belfry:plugin/types": super::notifier::belfry::plugin::types,
                "belfry:plugin/log": super::notifier::belfry::plugin::log,
                "belfry:plugin/config": super::notifier::belfry::plugin::config,
                "belfry:plugin/assets": super::notifier::belfry::plugin::assets,
            },
        });
    }
    pub mod adapter {
        wasmtime::component::bindgen!({
            world: "channel-adapter",
            path: "../wit/plugin@1",
            exports: { default: async },
            with: {
                "belfry:plugin/types": super::notifier::belfry::plugin::types,
                "belfry:plugin/log": super::notifier::belfry::plugin::log,
                "belfry:plugin/config": super::notifier::belfry::plugin::config,
            },
        });
    }
}

pub use bindings::adapter::{ChannelAdapter, ChannelAdapterPre};
pub use bindings::notifier::belfry::plugin::{
    assets as wit_assets, config as wit_config, log as wit_log, types as wit,
};
pub use bindings::notifier::{Notifier, NotifierPre};
pub use bindings::renderer::{Renderer, RendererPre};

pub use bindings::adapter::exports::belfry::plugin::delivery as wit_delivery;
pub use bindings::notifier::exports::belfry::plugin::notifications as wit_notifications;
pub use bindings::renderer::exports::belfry::plugin::rendering as wit_rendering;

type PlanResult<T> = wasmtime::Result<Result<T, wit_notifications::PlanError>>;

/// A notifier instance answering in 1.0's terms, whatever contract it was built against.
/// The outer error is the call failing (a trap); the inner one the notifier's own verdict.
/// (`payload` is a `&String` because that is what the generated calls take.)
#[allow(clippy::ptr_arg)]
pub trait NotifierCalls {
    fn describe(
        &self,
        store: &mut Store<PluginState>,
    ) -> impl Future<Output = wasmtime::Result<wit_notifications::Description>> + Send;
    fn recipients(
        &self,
        store: &mut Store<PluginState>,
        payload: &String,
    ) -> impl Future<Output = PlanResult<Vec<wit::Recipient>>> + Send;
    fn channels(
        &self,
        store: &mut Store<PluginState>,
        payload: &String,
        recipient: &wit::Recipient,
    ) -> impl Future<Output = PlanResult<wit_notifications::RecipientPlan>> + Send;
    fn build(
        &self,
        store: &mut Store<PluginState>,
        payload: &String,
        recipient: &wit::Recipient,
        channel: wit::Channel,
    ) -> impl Future<Output = PlanResult<wit::RenderRequest>> + Send;
}

/// A renderer instance answering in 1.0's terms.
pub trait RendererCalls {
    fn render(
        &self,
        store: &mut Store<PluginState>,
        request: &wit::RenderRequest,
    ) -> impl Future<Output = wasmtime::Result<Result<wit::Content, wit_rendering::RenderError>>> + Send;
}

/// A channel adapter instance answering in 1.0's terms.
pub trait AdapterCalls {
    fn send(
        &self,
        store: &mut Store<PluginState>,
        message: &wit_delivery::Message,
    ) -> impl Future<
        Output = wasmtime::Result<Result<wit_delivery::Receipt, wit_delivery::SendError>>,
    > + Send;
    fn handle_webhook(
        &self,
        store: &mut Store<PluginState>,
        request: &wit_delivery::WebhookRequest,
    ) -> impl Future<
        Output = wasmtime::Result<
            Result<Vec<wit_delivery::FeedbackEvent>, wit_delivery::WebhookError>,
        >,
    > + Send;
}

impl NotifierCalls for Notifier {
    async fn describe(
        &self,
        store: &mut Store<PluginState>,
    ) -> wasmtime::Result<wit_notifications::Description> {
        self.belfry_plugin_notifications()
            .call_describe(store)
            .await
    }
    async fn recipients(
        &self,
        store: &mut Store<PluginState>,
        payload: &String,
    ) -> PlanResult<Vec<wit::Recipient>> {
        self.belfry_plugin_notifications()
            .call_recipients(store, payload)
            .await
    }
    async fn channels(
        &self,
        store: &mut Store<PluginState>,
        payload: &String,
        recipient: &wit::Recipient,
    ) -> PlanResult<wit_notifications::RecipientPlan> {
        self.belfry_plugin_notifications()
            .call_channels(store, payload, recipient)
            .await
    }
    async fn build(
        &self,
        store: &mut Store<PluginState>,
        payload: &String,
        recipient: &wit::Recipient,
        channel: wit::Channel,
    ) -> PlanResult<wit::RenderRequest> {
        self.belfry_plugin_notifications()
            .call_build(store, payload, recipient, channel)
            .await
    }
}

impl RendererCalls for Renderer {
    async fn render(
        &self,
        store: &mut Store<PluginState>,
        request: &wit::RenderRequest,
    ) -> wasmtime::Result<Result<wit::Content, wit_rendering::RenderError>> {
        self.belfry_plugin_rendering()
            .call_render(store, request)
            .await
    }
}

impl AdapterCalls for ChannelAdapter {
    async fn send(
        &self,
        store: &mut Store<PluginState>,
        message: &wit_delivery::Message,
    ) -> wasmtime::Result<Result<wit_delivery::Receipt, wit_delivery::SendError>> {
        self.belfry_plugin_delivery()
            .call_send(store, message)
            .await
    }
    async fn handle_webhook(
        &self,
        store: &mut Store<PluginState>,
        request: &wit_delivery::WebhookRequest,
    ) -> wasmtime::Result<Result<Vec<wit_delivery::FeedbackEvent>, wit_delivery::WebhookError>>
    {
        self.belfry_plugin_delivery()
            .call_handle_webhook(store, request)
            .await
    }
}

// --- 1.0 values ⇄ the engine's types -------------------------------------------------------

pub fn channel_to_wit(c: Channel) -> wit::Channel {
    match c {
        Channel::Email => wit::Channel::Email,
        Channel::Sms => wit::Channel::Sms,
        Channel::Push => wit::Channel::Push,
        Channel::Chat => wit::Channel::Chat,
        Channel::InApp => wit::Channel::InApp,
        Channel::Webhook => wit::Channel::Webhook,
    }
}

pub fn channel_from_wit(c: wit::Channel) -> Channel {
    match c {
        wit::Channel::Email => Channel::Email,
        wit::Channel::Sms => Channel::Sms,
        wit::Channel::Push => Channel::Push,
        wit::Channel::Chat => Channel::Chat,
        wit::Channel::InApp => Channel::InApp,
        wit::Channel::Webhook => Channel::Webhook,
    }
}

pub fn recipient_to_wit(r: &Recipient) -> wit::Recipient {
    wit::Recipient {
        id: r.id.clone(),
        email: r.email.clone(),
        phone: r.phone.clone(),
        data: r.data.clone(),
    }
}

pub fn recipient_from_wit(r: wit::Recipient) -> Recipient {
    Recipient {
        id: r.id,
        email: r.email,
        phone: r.phone,
        data: r.data,
    }
}

pub fn render_request_to_wit(r: &RenderRequest) -> wit::RenderRequest {
    wit::RenderRequest {
        template: r.template.clone(),
        channel: channel_to_wit(r.channel),
        data: r.data.clone(),
        locale: r.locale.clone(),
    }
}

pub fn render_request_from_wit(r: wit::RenderRequest) -> RenderRequest {
    RenderRequest {
        template: r.template,
        channel: channel_from_wit(r.channel),
        data: r.data,
        locale: r.locale,
    }
}

pub fn content_from_wit(c: wit::Content) -> Content {
    match c {
        wit::Content::Email(e) => Content::Email {
            subject: e.subject,
            html: e.html,
            text: e.text,
        },
        wit::Content::Sms(s) => Content::Sms { text: s.text },
        wit::Content::Push(p) => Content::Push {
            title: p.title,
            body: p.body,
            data: p.data,
        },
        wit::Content::Chat(c) => Content::Chat {
            text: c.text,
            blocks: c.blocks,
        },
        wit::Content::InApp(i) => Content::InApp {
            headline: i.headline,
            body: i.body,
            primary_action: i.primary_action.map(|a| InAppAction {
                label: a.label,
                url: a.url,
            }),
        },
        wit::Content::Webhook(w) => Content::Webhook { body: w.body },
    }
}

pub fn content_to_wit(c: &Content) -> wit::Content {
    match c.clone() {
        Content::Email {
            subject,
            html,
            text,
        } => wit::Content::Email(wit::EmailContent {
            subject,
            html,
            text,
        }),
        Content::Sms { text } => wit::Content::Sms(wit::SmsContent { text }),
        Content::Push { title, body, data } => {
            wit::Content::Push(wit::PushContent { title, body, data })
        }
        Content::Chat { text, blocks } => wit::Content::Chat(wit::ChatContent { text, blocks }),
        Content::InApp {
            headline,
            body,
            primary_action,
        } => wit::Content::InApp(wit::InAppContent {
            headline,
            body,
            primary_action: primary_action.map(|a| wit::InAppAction {
                label: a.label,
                url: a.url,
            }),
        }),
        Content::Webhook { body } => wit::Content::Webhook(wit::WebhookContent { body }),
    }
}

pub fn severity_from_wit(s: wit_notifications::Severity) -> Severity {
    use wit_notifications::Severity as W;
    match s {
        W::Low => Severity::Low,
        W::Normal => Severity::Normal,
        W::High => Severity::High,
        W::Critical => Severity::Critical,
    }
}

pub fn description_from_wit(d: wit_notifications::Description) -> NotifierDescription {
    NotifierDescription {
        key: d.key,
        version: d.version,
        category: d.category,
        channels: d.channels.into_iter().map(channel_from_wit).collect(),
        description: d.description,
        severity: severity_from_wit(d.severity),
        fallbacks: d
            .fallbacks
            .into_iter()
            .map(|f| Fallback {
                channel: channel_from_wit(f.channel),
                after_ms: f.after_ms,
            })
            .collect(),
        fold_deferred: d.fold_deferred,
        workflow: d.workflow.map(workflow_from_wit),
    }
}

fn workflow_from_wit(w: wit_notifications::Workflow) -> workflow::Workflow {
    use wit_notifications::{StepOutcome as O, StepTarget as T};
    workflow::Workflow {
        key: w.key,
        version: w.version,
        steps: w
            .steps
            .into_iter()
            .map(|s| workflow::Step {
                key: s.key,
                channel: channel_from_wit(s.channel),
                wait: s.wait.map(|w| workflow::Wait {
                    after_ms: w.after_ms,
                    cancel_on: w.cancel_on,
                    resume_on: w.resume_on,
                }),
                on_outcome: s
                    .on_outcome
                    .into_iter()
                    .map(|b| workflow::Branch {
                        outcome: match b.outcome {
                            O::Delivered => workflow::StepOutcome::Delivered,
                            O::Suppressed => workflow::StepOutcome::Suppressed,
                            O::Failed => workflow::StepOutcome::Failed,
                            O::RetriesExhausted => workflow::StepOutcome::RetriesExhausted,
                            O::PermanentlyFailed => workflow::StepOutcome::PermanentlyFailed,
                            O::Bounced => workflow::StepOutcome::Bounced,
                        },
                        then: match b.then {
                            T::Goto(k) => workflow::Target::Goto(k),
                            T::Stop => workflow::Target::Stop,
                        },
                    })
                    .collect(),
            })
            .collect(),
    }
}

pub fn plan_from_wit(p: wit_notifications::RecipientPlan) -> RecipientPlan {
    RecipientPlan {
        channels: p.channels.into_iter().map(channel_from_wit).collect(),
        severity: p.severity.map(severity_from_wit),
        held: p
            .held
            .into_iter()
            .map(|h| Hold {
                channel: channel_from_wit(h.channel),
                digest_key: h.digest_key,
            })
            .collect(),
    }
}

/// A notifier's own error as the text a call error carries.
pub fn plan_error_message(e: wit_notifications::PlanError) -> String {
    match e {
        wit_notifications::PlanError::InvalidPayload(m) => format!("invalid payload: {m}"),
        wit_notifications::PlanError::Failed(m) => m,
    }
}

/// A renderer's own error as the text a call error carries.
pub fn render_error_message(e: wit_rendering::RenderError) -> String {
    match e {
        wit_rendering::RenderError::TemplateNotFound(m) => format!("template not found: {m}"),
        wit_rendering::RenderError::MissingVariable(m) => format!("missing variable: {m}"),
        wit_rendering::RenderError::Failed(m) => m,
    }
}

/// 1.0 defines no message metadata: it goes out empty.
pub fn message_to_wit(m: &OutgoingMessage) -> wit_delivery::Message {
    wit_delivery::Message {
        delivery_id: m.delivery_id.clone(),
        notification_id: m.notification_id.clone(),
        tenant: m.tenant.clone(),
        idempotency_key: m.idempotency_key.clone(),
        attempt: m.attempt,
        channel: channel_to_wit(m.channel),
        recipient: recipient_to_wit(&m.recipient),
        content: content_to_wit(&m.content),
        headers: m.headers.clone(),
        metadata: Vec::new(),
    }
}

/// The adapter's verdict. A receipt's metadata is dropped: 1.0 knows no key (`adapter.wit`).
pub fn send_result_from_wit(
    r: Result<wit_delivery::Receipt, wit_delivery::SendError>,
) -> Result<String, SendError> {
    use wit_delivery::SendError as W;
    r.map(|r| r.provider_message_id).map_err(|e| match e {
        W::Transient(message) => SendError::Transient { message },
        W::RateLimited(rl) => SendError::RateLimited {
            retry_after_ms: rl.retry_after_ms,
            message: rl.message,
        },
        W::Permanent(message) => SendError::Permanent { message },
    })
}

pub fn webhook_request_to_wit(r: &WebhookRequest) -> wit_delivery::WebhookRequest {
    wit_delivery::WebhookRequest {
        method: r.method.clone(),
        url: r.url.clone(),
        headers: r.headers.clone(),
        body: r.body.clone(),
        received_at_ms: r.received_at.timestamp_millis(),
    }
}

pub fn feedback_from_wit(
    r: Result<Vec<wit_delivery::FeedbackEvent>, wit_delivery::WebhookError>,
) -> Result<Vec<FeedbackEvent>, WebhookRejection> {
    use wit_delivery::{FeedbackKind as K, WebhookError as E};
    let events = r.map_err(|e| match e {
        E::Unauthorized(m) => WebhookRejection::Unauthorized(m),
        E::Malformed(m) => WebhookRejection::Malformed(m),
        E::Unsupported(m) => WebhookRejection::Unsupported(m),
    })?;
    Ok(events
        .into_iter()
        .map(|e| FeedbackEvent {
            kind: match e.kind {
                K::Accepted => FeedbackKind::Accepted,
                K::Delivered => FeedbackKind::Delivered,
                K::Deferred => FeedbackKind::Deferred,
                K::BouncedHard => FeedbackKind::BouncedHard,
                K::BouncedSoft => FeedbackKind::BouncedSoft,
                K::Complained => FeedbackKind::Complained,
                K::Rejected => FeedbackKind::Rejected,
                K::Failed => FeedbackKind::Failed,
                K::Opened => FeedbackKind::Opened,
                K::Clicked => FeedbackKind::Clicked,
                K::Unsubscribed => FeedbackKind::Unsubscribed,
            },
            provider_event_id: e.provider_event_id,
            provider_message_id: e.provider_message_id,
            // A provider's time more than ten years off is not believed (the time it was
            // received stands in): stored as text, a year past 9999 would sort first.
            occurred_at: e
                .occurred_at_ms
                .and_then(chrono::DateTime::from_timestamp_millis)
                .filter(|at| {
                    crate::time_bounds::instant("occurred_at", *at, chrono::Utc::now()).is_ok()
                }),
            reason: e.reason,
        })
        .collect())
}
