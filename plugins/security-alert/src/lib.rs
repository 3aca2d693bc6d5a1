//! The `security-alert` notifier (category `security`, severity `critical`).
//!
//! Payload:
//! `{"user": {"id": "...", "email": "...", "phone": "..."}, "what": "...", "at": "..."}`.
//! `user.id` and `what` (what happened, as a phrase: "a new sign-in from Firefox on Linux")
//! are required; the user needs an `email`, a `phone` or both; `at` (when it happened, any
//! string, for example an RFC 3339 time) is optional.
//!
//! One recipient, the user; channels `email` if they have an address and `sms` if they have a
//! phone number. Being `critical`, the alert bypasses preferences, quiet hours and caps.

use belfry_plugin_sdk::notifier::{Description, Guest, PlanError, RecipientPlan, Severity};
use belfry_plugin_sdk::payload::{
    Object, PayloadError, optional_non_empty_string, parse_object, required_object, required_string,
};
use belfry_plugin_sdk::types::{Channel, Recipient, RenderRequest};
use serde_json::json;

const KEY: &str = "security-alert";
/// What the templates call the user: the payload carries no name.
const DEFAULT_NAME: &str = "there";

struct SecurityAlert;

impl Guest for SecurityAlert {
    fn describe() -> Description {
        Description {
            key: KEY.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            category: "security".to_string(),
            channels: vec![Channel::Email, Channel::Sms],
            description: "Alerts a user to security-relevant activity on their account".to_string(),
            severity: Severity::Critical,
            fallbacks: Vec::new(),
            fold_deferred: false,
            workflow: None,
        }
    }

    fn recipients(payload: String) -> Result<Vec<Recipient>, PlanError> {
        let alert = Alert::parse(&payload)?;
        Ok(vec![alert.user.recipient()])
    }

    fn channels(payload: String, recipient: Recipient) -> Result<RecipientPlan, PlanError> {
        Alert::parse(&payload)?;
        let mut channels = Vec::with_capacity(2);
        if recipient.email.as_deref().is_some_and(|e| !e.is_empty()) {
            channels.push(Channel::Email);
        }
        if recipient.phone.as_deref().is_some_and(|p| !p.is_empty()) {
            channels.push(Channel::Sms);
        }
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
        let alert = Alert::parse(&payload)?;
        let user = &alert.user;
        let has_email = recipient.email.as_deref().is_some_and(|e| !e.is_empty())
            || (user.id == recipient.id && user.email.is_some());
        let has_phone = recipient.phone.as_deref().is_some_and(|p| !p.is_empty())
            || (user.id == recipient.id && user.phone.is_some());
        match channel {
            Channel::Email if !has_email => {
                return Err(PlanError::InvalidPayload(
                    "missing field `user.email` (needed for the email channel)".to_string(),
                ));
            }
            Channel::Sms if !has_phone => {
                return Err(PlanError::InvalidPayload(
                    "missing field `user.phone` (needed for the sms channel)".to_string(),
                ));
            }
            Channel::Email | Channel::Sms => {}
            other => {
                return Err(PlanError::Failed(format!(
                    "the security-alert notifier does not use the {} channel",
                    other.as_str()
                )));
            }
        }
        let data = json!({
            "what": alert.what,
            "at": alert.at,
            "name": DEFAULT_NAME,
        });
        Ok(RenderRequest {
            template: KEY.to_string(),
            channel,
            data: data.to_string(),
            locale: None,
        })
    }
}

struct Alert {
    user: User,
    what: String,
    at: Option<String>,
}

/// The fields of `payload.user` this notifier uses.
struct User {
    id: String,
    email: Option<String>,
    phone: Option<String>,
}

impl Alert {
    fn parse(payload: &str) -> Result<Self, PayloadError> {
        let payload = parse_object(payload)?;
        let user = User::from_payload(&payload)?;
        let what = required_string(&payload, "what", "what")?;
        let at = optional_non_empty_string(&payload, "at", "at")?;
        Ok(Alert { user, what, at })
    }
}

impl User {
    fn from_payload(payload: &Object) -> Result<Self, PayloadError> {
        let user = required_object(payload, "user", "user")?;
        let id = required_string(user, "id", "user.id")?;
        let email = optional_non_empty_string(user, "email", "user.email")?;
        let phone = optional_non_empty_string(user, "phone", "user.phone")?;
        if email.is_none() && phone.is_none() {
            return Err(PayloadError::new(
                "missing field `user.email` or `user.phone` (the alert needs at least one)",
            ));
        }
        Ok(User { id, email, phone })
    }

    fn recipient(&self) -> Recipient {
        Recipient {
            id: self.id.clone(),
            email: self.email.clone(),
            phone: self.phone.clone(),
            data: None,
        }
    }
}

belfry_plugin_sdk::export_notifier!(SecurityAlert);
