//! The `mention` notifier (category `activity`, severity `normal`).
//!
//! Payload:
//! `{"author": "...", "document": "...", "url": "https://...", "mentioned": [{...}, ...]}`,
//! or the same with `mentioned` a single object; each mentioned person is
//! `{"id": "...", "email": "...", "name": "...", "urgent": true}`. `author`, `document` and
//! every `id` are required (non-empty strings); `url` is optional and, when given, an
//! absolute http(s) URL; `email`, `name` and `urgent` (a boolean) are optional.
//!
//! One recipient per mentioned person, with `{"name": ..., "urgent": ...}` as its data.
//! Channels per recipient: `in-app` always, `email` if it has an address. The email is a
//! fallback: the host sends it only if the in-app item is still unread 15 minutes later.
//! A person marked `"urgent": true` gets the notification at severity `critical`.

use belfry_plugin_sdk::notifier::{
    Description, Fallback, Guest, PlanError, RecipientPlan, Severity,
};
use belfry_plugin_sdk::payload::{
    PayloadError, as_object, empty, missing, name_from_recipient_data, optional_http_url,
    optional_non_empty_string, parse_object, required_string, wrong_type,
};
use belfry_plugin_sdk::types::{Channel, Recipient, RenderRequest};
use serde_json::{Map, Value, json};

const KEY: &str = "mention";
/// What the templates call a person who gave no name ("Hi there,").
const DEFAULT_NAME: &str = "there";
/// The email goes out only if the in-app item is still unread this long after planning.
const EMAIL_FALLBACK_AFTER_MS: u64 = 15 * 60 * 1000;

struct MentionNotifier;

impl Guest for MentionNotifier {
    fn describe() -> Description {
        Description {
            key: KEY.to_string(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            category: "activity".to_string(),
            channels: vec![Channel::Email, Channel::InApp],
            description: "Tells people they were mentioned in a document: in-app, then by email \
                          if still unread after 15 minutes"
                .to_string(),
            severity: Severity::Normal,
            fallbacks: vec![Fallback {
                channel: Channel::Email,
                after_ms: EMAIL_FALLBACK_AFTER_MS,
            }],
            fold_deferred: false,
            workflow: None,
        }
    }

    fn recipients(payload: String) -> Result<Vec<Recipient>, PlanError> {
        let mention = Mention::parse(&payload)?;
        Ok(mention.mentioned.iter().map(Mentioned::recipient).collect())
    }

    fn channels(payload: String, recipient: Recipient) -> Result<RecipientPlan, PlanError> {
        let mention = Mention::parse(&payload)?;
        let mut channels = Vec::with_capacity(2);
        channels.push(Channel::InApp);
        if recipient.email.as_deref().is_some_and(|e| !e.is_empty()) {
            channels.push(Channel::Email);
        }
        let urgent = mention
            .mentioned
            .iter()
            .any(|m| m.id == recipient.id && m.urgent);
        Ok(RecipientPlan {
            channels,
            severity: urgent.then_some(Severity::Critical),
            held: Vec::new(),
        })
    }

    fn build(
        payload: String,
        recipient: Recipient,
        channel: Channel,
    ) -> Result<RenderRequest, PlanError> {
        let mention = Mention::parse(&payload)?;
        let entry = mention.mentioned.iter().find(|m| m.id == recipient.id);
        match channel {
            Channel::InApp => {}
            Channel::Email => {
                let has_email = recipient.email.as_deref().is_some_and(|e| !e.is_empty())
                    || entry.is_some_and(|m| m.email.is_some());
                if !has_email {
                    let path = entry.map_or("mentioned", |m| m.path.as_str());
                    return Err(PlanError::InvalidPayload(format!(
                        "missing field `{path}.email` (needed for the email channel)"
                    )));
                }
            }
            other => {
                return Err(PlanError::Failed(format!(
                    "the mention notifier does not use the {} channel",
                    other.as_str()
                )));
            }
        }
        let name = entry
            .and_then(|m| m.name.clone())
            .or_else(|| name_from_recipient_data(recipient.data.as_deref()))
            .unwrap_or_else(|| DEFAULT_NAME.to_string());
        let data = json!({
            "author": mention.author,
            "document": mention.document,
            "url": mention.url,
            "name": name,
        });
        Ok(RenderRequest {
            template: KEY.to_string(),
            channel,
            data: data.to_string(),
            locale: None,
        })
    }
}

struct Mention {
    author: String,
    document: String,
    url: Option<String>,
    mentioned: Vec<Mentioned>,
}

/// One entry of `payload.mentioned`.
struct Mentioned {
    /// Where it is in the payload, for error messages: `mentioned` or `mentioned[2]`.
    path: String,
    id: String,
    email: Option<String>,
    name: Option<String>,
    urgent: bool,
}

impl Mention {
    fn parse(payload: &str) -> Result<Self, PayloadError> {
        let payload = parse_object(payload)?;
        let author = required_string(&payload, "author", "author")?;
        let document = required_string(&payload, "document", "document")?;
        let url = optional_http_url(&payload, "url", "url")?;
        let mentioned = match payload.get("mentioned") {
            None | Some(Value::Null) => return Err(missing("mentioned")),
            Some(single @ Value::Object(_)) => {
                vec![Mentioned::parse(single, "mentioned".to_string())?]
            }
            Some(Value::Array(list)) => {
                if list.is_empty() {
                    return Err(empty("mentioned"));
                }
                list.iter()
                    .enumerate()
                    .map(|(i, m)| Mentioned::parse(m, format!("mentioned[{i}]")))
                    .collect::<Result<Vec<_>, _>>()?
            }
            Some(_) => {
                return Err(wrong_type("mentioned", "an object or an array of objects"));
            }
        };
        Ok(Mention {
            author,
            document,
            url,
            mentioned,
        })
    }
}

impl Mentioned {
    fn parse(value: &Value, path: String) -> Result<Self, PayloadError> {
        let object = as_object(value, &path)?;
        let id = required_string(object, "id", &format!("{path}.id"))?;
        let email = optional_non_empty_string(object, "email", &format!("{path}.email"))?;
        let name = optional_non_empty_string(object, "name", &format!("{path}.name"))?;
        let urgent = match object.get("urgent") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(urgent)) => *urgent,
            Some(_) => return Err(wrong_type(&format!("{path}.urgent"), "a boolean")),
        };
        Ok(Mentioned {
            path,
            id,
            email,
            name,
            urgent,
        })
    }

    fn recipient(&self) -> Recipient {
        let mut data = Map::new();
        if let Some(name) = &self.name {
            data.insert("name".to_string(), Value::String(name.clone()));
        }
        data.insert("urgent".to_string(), Value::Bool(self.urgent));
        Recipient {
            id: self.id.clone(),
            email: self.email.clone(),
            phone: None,
            data: Some(Value::Object(data).to_string()),
        }
    }
}

belfry_plugin_sdk::export_notifier!(MentionNotifier);
