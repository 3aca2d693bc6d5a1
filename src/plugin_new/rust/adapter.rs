//! The `__NAME__` channel adapter. This starting point "delivers" a message by writing a line
//! to the host's log; replace `send` with a call to your provider (`belfry_plugin_sdk::http`,
//! with the provider's host under `[capabilities] http` in manifest.toml).

use belfry_plugin_sdk::adapter::{
    FeedbackEvent, Guest, Message, Receipt, SendError, WebhookError, WebhookRequest,
};
use belfry_plugin_sdk::log::info;
use belfry_plugin_sdk::{Channel, Content};

struct Plugin;

impl Guest for Plugin {
    fn send(message: Message) -> Result<Receipt, SendError> {
        let address = match message.channel {
            Channel::Email => message.recipient.email.as_deref(),
            Channel::Sms => message.recipient.phone.as_deref(),
            other => {
                return Err(SendError::Permanent(format!(
                    "__NAME__ does not send {}",
                    other.as_str()
                )));
            }
        };
        // A recipient without an address for the channel can never be delivered to: permanent.
        let Some(address) = address.filter(|a| !a.is_empty()) else {
            return Err(SendError::Permanent(format!(
                "recipient {} has no address for {}",
                message.recipient.id,
                message.channel.as_str()
            )));
        };
        let summary = match &message.content {
            Content::Email(email) => format!("subject={:?}", email.subject),
            Content::Sms(sms) => format!("text={:?}", sms.text),
            _ => String::new(),
        };
        info(&format!(
            "__NAME__: {} to {address} (delivery {}): {summary}",
            message.channel.as_str(),
            message.delivery_id
        ));
        Ok(Receipt {
            provider_message_id: format!("__NAME__-{}", message.idempotency_key),
            metadata: Vec::new(),
        })
    }

    fn handle_webhook(_request: WebhookRequest) -> Result<Vec<FeedbackEvent>, WebhookError> {
        Err(WebhookError::Unsupported(
            "__NAME__ receives no provider callbacks".to_string(),
        ))
    }
}

belfry_plugin_sdk::export_adapter!(Plugin);
