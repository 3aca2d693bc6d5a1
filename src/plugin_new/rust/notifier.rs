//! The `__NAME__` notifier. Payload: `{"user": {"id": "...", "email": "...", "name": "..."}}`;
//! only `user.id` is required. Channels: `email` (when the user has an address) and `in-app`.
//! The templates are in this package (`assets/templates/__NAME__/`), rendered by the host's
//! default renderer.

use belfry_plugin_sdk::notifier::{Description, Guest, PlanError, RecipientPlan, Severity};
use belfry_plugin_sdk::payload::{
    Object, PayloadError, optional_non_empty_string, parse_object, required_object, required_string,
};
use belfry_plugin_sdk::types::{Channel, Recipient, RenderRequest};
use serde_json::json;

const KEY: &str = "__NAME__";

struct Plugin;

impl Guest for Plugin {
    fn describe() -> Description {
        Description {
            key: KEY.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            category: "general".to_string(),
            channels: vec![Channel::Email, Channel::InApp],
            description: "__NAME__: describe what this notification is about".to_string(),
            severity: Severity::Normal,
            fallbacks: Vec::new(),
            fold_deferred: false,
            workflow: None,
        }
    }

    fn recipients(payload: String) -> Result<Vec<Recipient>, PlanError> {
        let user = User::from_payload(&parse_object(&payload)?)?;
        Ok(vec![Recipient {
            id: user.id,
            email: user.email,
            phone: None,
            data: user.name.map(|name| json!({ "name": name }).to_string()),
        }])
    }

    fn channels(payload: String, recipient: Recipient) -> Result<RecipientPlan, PlanError> {
        parse_object(&payload)?;
        let mut channels = Vec::with_capacity(2);
        if recipient.email.as_deref().is_some_and(|e| !e.is_empty()) {
            channels.push(Channel::Email);
        }
        channels.push(Channel::InApp);
        Ok(RecipientPlan {
            channels,
            severity: None,
            held: Vec::new(),
        })
    }

    fn build(
        payload: String,
        recipient: Recipient,
        channel: Channel,
    ) -> Result<RenderRequest, PlanError> {
        let user = User::from_payload(&parse_object(&payload)?)?;
        if !matches!(channel, Channel::Email | Channel::InApp) {
            return Err(PlanError::Failed(format!(
                "{KEY} does not use the {} channel",
                channel.as_str()
            )));
        }
        let data = json!({
            "name": user.name.unwrap_or_else(|| "there".to_string()),
            "user_id": recipient.id,
        });
        Ok(RenderRequest {
            template: KEY.to_string(),
            channel,
            data: data.to_string(),
            locale: None,
        })
    }
}

struct User {
    id: String,
    email: Option<String>,
    name: Option<String>,
}

impl User {
    fn from_payload(payload: &Object) -> Result<Self, PayloadError> {
        let user = required_object(payload, "user", "user")?;
        Ok(User {
            id: required_string(user, "id", "user.id")?,
            email: optional_non_empty_string(user, "email", "user.email")?,
            name: optional_non_empty_string(user, "name", "user.name")?,
        })
    }
}

belfry_plugin_sdk::export_notifier!(Plugin);
