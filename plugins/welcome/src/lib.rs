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
use exports::belfry::plugin::notifications::{Description, Guest, PlanError};
use serde_json::{Map, Value, json};

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
        let payload = parse(&payload)?;
        let user = User::from_payload(&payload)?;
        Ok(vec![user.recipient()])
    }

    fn channels(payload: String, recipient: Recipient) -> Result<Vec<Channel>, PlanError> {
        parse(&payload)?;
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
        let payload = parse(&payload)?;
        let user = User::from_payload(&payload)?;
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
        let app_name = optional_string(&payload, "app_name", "app_name")?
            .unwrap_or_else(|| DEFAULT_APP_NAME.to_string());
        let name = user
            .name
            .clone()
            .or_else(|| name_from_recipient_data(&recipient))
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
    fn from_payload(payload: &Map<String, Value>) -> Result<Self, PlanError> {
        let user = match payload.get("user") {
            None | Some(Value::Null) => return Err(missing("user")),
            Some(Value::Object(user)) => user,
            Some(_) => return Err(wrong_type("user", "an object")),
        };
        let id = optional_string(user, "id", "user.id")?.ok_or_else(|| missing("user.id"))?;
        if id.is_empty() {
            return Err(PlanError::InvalidPayload(
                "field `user.id` must not be empty".to_string(),
            ));
        }
        let email = optional_string(user, "email", "user.email")?.filter(|e| !e.is_empty());
        let name = optional_string(user, "name", "user.name")?.filter(|n| !n.is_empty());
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

fn parse(payload: &str) -> Result<Map<String, Value>, PlanError> {
    match serde_json::from_str::<Value>(payload) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(PlanError::InvalidPayload(
            "the payload must be a JSON object".to_string(),
        )),
        Err(err) => Err(PlanError::InvalidPayload(format!(
            "the payload is not valid JSON: {err}"
        ))),
    }
}

/// `object[key]` as a string; absent or null is `None`, any other type an error naming `path`.
fn optional_string(
    object: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<String>, PlanError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(wrong_type(path, "a string")),
    }
}

fn name_from_recipient_data(recipient: &Recipient) -> Option<String> {
    let data: Value = serde_json::from_str(recipient.data.as_deref()?).ok()?;
    data.get("name")?
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_string)
}

fn missing(path: &str) -> PlanError {
    PlanError::InvalidPayload(format!("missing field `{path}`"))
}

fn wrong_type(path: &str, expected: &str) -> PlanError {
    PlanError::InvalidPayload(format!("field `{path}` must be {expected}"))
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
