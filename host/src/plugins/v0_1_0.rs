//! Bindings for `belfry:plugin@0.1.0` and the conversions between its types and the engine's.
//!
//! One module per WIT version the host supports (Zed's extension host pattern): when 0.2.0
//! arrives it gets its own module doing the work, and this one converts and delegates.
//! Nothing outside `plugins` sees a generated type.

use crate::content::{Channel, Content, InAppAction, Recipient, RenderRequest};

pub const VERSION: &str = "0.1.0";

mod bindings {
    pub mod notifier {
        wasmtime::component::bindgen!({
            world: "notifier",
            path: "../wit/plugin@0.1.0",
            exports: { default: async },
        });
    }
    pub mod renderer {
        wasmtime::component::bindgen!({
            world: "renderer",
            path: "../wit/plugin@0.1.0",
            exports: { default: async },
            with: {
                "belfry:plugin/types": super::notifier::belfry::plugin::types,
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
                "belfry:plugin/types": super::notifier::belfry::plugin::types,
                "belfry:plugin/log": super::notifier::belfry::plugin::log,
                "belfry:plugin/config": super::notifier::belfry::plugin::config,
            },
        });
    }
}

pub use bindings::adapter::{ChannelAdapter, ChannelAdapterPre};
pub use bindings::notifier::belfry::plugin::{config as wit_config, log as wit_log, types as wit};
pub use bindings::notifier::{Notifier, NotifierPre};
pub use bindings::renderer::{Renderer, RendererPre};

pub use bindings::adapter::exports::belfry::plugin::delivery as wit_delivery;
pub use bindings::notifier::exports::belfry::plugin::notifications as wit_notifications;
pub use bindings::renderer::exports::belfry::plugin::rendering as wit_rendering;

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

/// A 0.1.0 notifier's description: `normal` severity, no fallbacks, nothing folded.
pub fn description_from_wit(
    d: wit_notifications::Description,
) -> crate::plugins::NotifierDescription {
    crate::plugins::NotifierDescription {
        key: d.key,
        version: d.version,
        category: d.category,
        channels: d.channels.into_iter().map(channel_from_wit).collect(),
        description: d.description,
        severity: crate::policy::Severity::Normal,
        fallbacks: Vec::new(),
        fold_deferred: false,
        workflow: None,
    }
}

/// A 0.1.0 adapter's webhook answer in 0.5.0's terms (the records only gained fields in
/// 0.5.0), so one conversion into the engine's types serves both versions.
pub fn feedback_to_v0_5_0(
    r: Result<Vec<wit_delivery::FeedbackEvent>, wit_delivery::WebhookError>,
) -> Result<
    Vec<super::v0_5_0::wit_delivery::FeedbackEvent>,
    super::v0_5_0::wit_delivery::WebhookError,
> {
    use super::v0_5_0::wit_delivery as new;
    use wit_delivery::{FeedbackKind as K, WebhookError as E};
    let events = r.map_err(|e| match e {
        E::Unauthorized(m) => new::WebhookError::Unauthorized(m),
        E::Malformed(m) => new::WebhookError::Malformed(m),
        E::Unsupported(m) => new::WebhookError::Unsupported(m),
    })?;
    Ok(events
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
        .collect())
}
