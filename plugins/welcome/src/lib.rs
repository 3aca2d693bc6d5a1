//! The `welcome` notifier (category `account`).
//!
//! Payload: `{"user": {"id": "...", "email": "...", "name": "...", "locale": "de-AT"},
//! "app_name": "..."}`; only `user.id` is required. `user.locale` (a BCP 47 tag) picks the
//! translation of the templates in this package (`assets/templates/welcome/`). One recipient, the user; channels `email` (when the
//! user has an address) and `in-app` (always).

use belfry_plugin_sdk::notifier::{Description, Guest, PlanError, RecipientPlan, Severity};
use belfry_plugin_sdk::payload::{
    Object, PayloadError, name_from_recipient_data, optional_non_empty_string, optional_string,
    parse_object, required_object, required_string,
};
use belfry_plugin_sdk::types::{Channel, Recipient, RenderRequest};
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
            severity: Severity::Normal,
            fallbacks: Vec::new(),
            fold_deferred: false,
            workflow: None,
        }
    }

    fn recipients(payload: String) -> Result<Vec<Recipient>, PlanError> {
        let payload = parse_object(&payload)?;
        let user = User::from_payload(&payload)?;
        Ok(vec![user.recipient()])
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
        let payload = parse_object(&payload)?;
        let user = User::from_payload(&payload)?;
        match channel {
            Channel::Email | Channel::InApp => {}
            other => {
                return Err(PlanError::Failed(format!(
                    "the welcome notifier does not use the {} channel",
                    other.as_str()
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
            locale: user.locale,
        })
    }
}

/// The fields of `payload.user` this notifier uses.
struct User {
    id: String,
    email: Option<String>,
    name: Option<String>,
    locale: Option<String>,
}

impl User {
    fn from_payload(payload: &Object) -> Result<Self, PayloadError> {
        let user = required_object(payload, "user", "user")?;
        let id = required_string(user, "id", "user.id")?;
        let email = optional_non_empty_string(user, "email", "user.email")?;
        let name = optional_non_empty_string(user, "name", "user.name")?;
        let locale = optional_non_empty_string(user, "locale", "user.locale")?;
        Ok(User {
            id,
            email,
            name,
            locale,
        })
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

belfry_plugin_sdk::export_notifier!(Welcome);
