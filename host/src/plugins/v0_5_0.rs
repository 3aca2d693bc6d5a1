//! Bindings for `belfry:plugin@0.5.0`, which changes only the channel-adapter world: a message
//! carries the headers the host requires (one-click unsubscribe), and a webhook request
//! carries the absolute URL the provider called and the host's receive time.
//!
//! As in [`super::v0_4_0`], its `types` interface is 0.1.0's, reused through bindgen's `with`,
//! and its `log` and `config` imports are linked under their own versioned names and answered
//! by the same host code.

use super::v0_1_0;
use crate::feedback::{FeedbackEvent, FeedbackKind, WebhookRejection, WebhookRequest};
use crate::plugins::OutgoingMessage;

pub const VERSION: &str = "0.5.0";

mod bindings {
    wasmtime::component::bindgen!({
        world: "channel-adapter",
        path: "../wit/plugin@0.5.0",
        exports: { default: async },
        with: {
            "belfry:plugin/types": crate::plugins::v0_1_0::wit,
        },
    });
}

pub use bindings::belfry::plugin::{config as wit_config, log as wit_log};
pub use bindings::exports::belfry::plugin::delivery as wit_delivery;
pub use bindings::{ChannelAdapter, ChannelAdapterPre};

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

pub fn message_to_wit(m: &OutgoingMessage) -> wit_delivery::Message {
    wit_delivery::Message {
        delivery_id: m.delivery_id.clone(),
        notification_id: m.notification_id.clone(),
        tenant: m.tenant.clone(),
        idempotency_key: m.idempotency_key.clone(),
        attempt: m.attempt,
        channel: v0_1_0::channel_to_wit(m.channel),
        recipient: v0_1_0::recipient_to_wit(&m.recipient),
        content: v0_1_0::content_to_wit(&m.content),
        headers: m.headers.clone(),
    }
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
