//! The `log` channel adapter: "delivers" a message by writing one line describing it to
//! the host's log (info level). Useful for development and demos; it needs no capabilities.

wit_bindgen::generate!({
    world: "channel-adapter",
    path: "../../wit/plugin@0.1.0",
});

use belfry::plugin::log::{Level, log};
use belfry::plugin::types::{Channel, Content};
use exports::belfry::plugin::delivery::{
    FeedbackEvent, Guest, Message, Receipt, SendError, WebhookError, WebhookRequest,
};

/// Longest excerpt of a message's text written to the log, in characters.
const EXCERPT_CHARS: usize = 200;

struct LogAdapter;

impl Guest for LogAdapter {
    fn send(message: Message) -> Result<Receipt, SendError> {
        let address = match message.channel {
            Channel::Email => message.recipient.email.as_deref(),
            Channel::Sms => message.recipient.phone.as_deref(),
            _ => None,
        }
        .unwrap_or(&message.recipient.id);
        let summary = match &message.content {
            Content::Email(email) => format!("subject={:?}", excerpt(&email.subject)),
            Content::Sms(sms) => format!("text={:?}", excerpt(&sms.text)),
            Content::Push(push) => format!(
                "title={:?} body={:?}",
                excerpt(&push.title),
                excerpt(&push.body)
            ),
            Content::Chat(chat) => format!("text={:?}", excerpt(&chat.text)),
            Content::InApp(in_app) => format!(
                "headline={:?} body={:?}",
                excerpt(&in_app.headline),
                excerpt(&in_app.body)
            ),
            Content::Webhook(webhook) => format!("body={:?}", excerpt(&webhook.body)),
        };
        log(
            Level::Info,
            &format!(
                "{} to {address} (recipient {}, delivery {}, attempt {}): {summary}",
                channel_name(message.channel),
                message.recipient.id,
                message.delivery_id,
                message.attempt,
            ),
        );
        Ok(Receipt {
            provider_message_id: format!("log-{}", message.idempotency_key),
        })
    }

    fn handle_webhook(_request: WebhookRequest) -> Result<Vec<FeedbackEvent>, WebhookError> {
        Err(WebhookError::Unsupported(
            "log adapter receives no provider callbacks".to_string(),
        ))
    }
}

fn excerpt(text: &str) -> String {
    match text.char_indices().nth(EXCERPT_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text.to_string(),
    }
}

fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Email => "email",
        Channel::Sms => "sms",
        Channel::Push => "push",
        Channel::Chat => "chat",
        Channel::InApp => "in-app",
        Channel::Webhook => "webhook",
    }
}

export!(LogAdapter);
