//! The `welcome` notifier (category `account`).
//!
//! Payload: `{"user": {"id": "...", "email": "...", "name": "..."}, "app_name": "..."}`;
//! only `user.id` is required. One recipient, the user; channels `email` (when the
//! user has an address) and `in-app` (always).

wit_bindgen::generate!({
    world: "notifier",
    path: "../../wit/plugin@0.1.0",
});

use belfry::plugin::types::{Channel, Recipient, RenderRequest};
use belfry_plugin_payload::{
    Object, name_from_recipient_data, optional_non_empty_string, optional_string, parse_object,
    required_object, required_string,
};
use exports::belfry::plugin::notifications::{Description, Guest, PlanError};
use serde_json::{Value, json};

const KEY: &str = "welcome";
const DEFAULT_APP_NAME: &str = "belfry";
/// What the templates call a user who gave no name ("Hi there,").
const DEFAULT_NAME: &str = "there";

struct Welcome;

impl Guest for Welcome {
    fn describe() -> Description {
        Description {
            key: KEY.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            category: "account".to_string(),
            channels: vec![Channel::Email, Channel::InApp],
            description: "Welcomes a new user by email and in the in-app inbox".to_string(),
        }
    }

    fn recipients(payload: String) -> Result<Vec<Recipient>, PlanError> {
        let payload = parse_object(&payload).map_err(PlanError::InvalidPayload)?;
        let user = User::from_payload(&payload).map_err(PlanError::InvalidPayload)?;
        Ok(vec![user.recipient()])
    }

    fn channels(payload: String, recipient: Recipient) -> Result<Vec<Channel>, PlanError> {
        parse_object(&payload).map_err(PlanError::InvalidPayload)?;
        let mut channels = Vec::with_capacity(2);
        if recipient.email.as_deref().is_some_and(|e| !e.is_empty()) {
            channels.push(Channel::Email);
        }
        channels.push(Channel::InApp);
        Ok(channels)
    }

    fn build(
        payload: String,
        recipient: Recipient,
        channel: Channel,
    ) -> Result<RenderRequest, PlanError> {
        let payload = parse_object(&payload).map_err(PlanError::InvalidPayload)?;
        let user = User::from_payload(&payload).map_err(PlanError::InvalidPayload)?;
        match channel {
            Channel::Email | Channel::InApp => {}
            other => {
                return Err(PlanError::Failed(format!(
                    "the welcome notifier does not use the {} channel",
                    channel_name(other)
                )));
            }
        }
        let email = recipient.email.clone().or(user.email.clone());
        if channel == Channel::Email && email.is_none() {
            return Err(PlanError::InvalidPayload(
                "missing field `user.email` (needed for the email channel)".to_string(),
            ));
        }
        let app_name = optional_string(&payload, "app_name", "app_name")
            .map_err(PlanError::InvalidPayload)?
            .unwrap_or_else(|| DEFAULT_APP_NAME.to_string());
        let name = user
            .name
            .clone()
            .or_else(|| name_from_recipient_data(recipient.data.as_deref()))
            .unwrap_or_else(|| DEFAULT_NAME.to_string());
        let data = json!({
            "name": name,
            "app_name": app_name,
            "user_id": recipient.id,
            "email": email,
            "user": payload.get("user").cloned().unwrap_or(Value::Null),
        });
        Ok(RenderRequest {
            template: KEY.to_string(),
            channel,
            data: data.to_string(),
            locale: None,
        })
    }
}

/// The fields of `payload.user` this notifier uses.
struct User {
    id: String,
    email: Option<String>,
    name: Option<String>,
}

impl User {
    fn from_payload(payload: &Object) -> Result<Self, String> {
        let user = required_object(payload, "user", "user")?;
        let id = required_string(user, "id", "user.id")?;
        let email = optional_non_empty_string(user, "email", "user.email")?;
        let name = optional_non_empty_string(user, "name", "user.name")?;
        Ok(User { id, email, name })
    }

    fn recipient(&self) -> Recipient {
        Recipient {
            id: self.id.clone(),
            email: self.email.clone(),
            phone: None,
            data: self
                .name
                .as_ref()
                .map(|name| json!({ "name": name }).to_string()),
        }
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

export!(Welcome);
