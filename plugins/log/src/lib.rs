//! The `log` channel adapter: "delivers" a message by writing one line describing it to
//! the host's log (info level). Useful for development and demos; it needs no capabilities.

use belfry_plugin_sdk::adapter::{
    FeedbackEvent, Guest, Message, Receipt, SendError, WebhookError, WebhookRequest,
};
use belfry_plugin_sdk::log::info;
use belfry_plugin_sdk::{Channel, Content};

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
        info(&format!(
            "{} to {address} (recipient {}, delivery {}, attempt {}): {summary}",
            message.channel, message.recipient.id, message.delivery_id, message.attempt,
        ));
        Ok(Receipt {
            provider_message_id: format!("log-{}", message.idempotency_key),
            metadata: Vec::new(),
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

belfry_plugin_sdk::export_adapter!(LogAdapter);
