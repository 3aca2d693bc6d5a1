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

wit_bindgen::generate!({
    world: "notifier",
    path: "../../wit/plugin@0.2.0",
});

use belfry::plugin::types::{Channel, Recipient, RenderRequest};
use exports::belfry::plugin::notifications::{
    Description, Fallback, Guest, PlanError, RecipientPlan, Severity,
};
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
                    channel_name(other)
                )));
            }
        }
        let name = entry
            .and_then(|m| m.name.clone())
            .or_else(|| name_from_recipient_data(&recipient))
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
    fn parse(payload: &str) -> Result<Self, PlanError> {
        let payload = match serde_json::from_str::<Value>(payload) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                return Err(PlanError::InvalidPayload(
                    "the payload must be a JSON object".to_string(),
                ));
            }
            Err(err) => {
                return Err(PlanError::InvalidPayload(format!(
                    "the payload is not valid JSON: {err}"
                )));
            }
        };
        let author = required_string(&payload, "author", "author")?;
        let document = required_string(&payload, "document", "document")?;
        let url = optional_string(&payload, "url", "url")?.filter(|u| !u.is_empty());
        if let Some(url) = &url
            && !is_http_url(url)
        {
            return Err(wrong_type("url", "an absolute http(s) URL"));
        }
        let mentioned = match payload.get("mentioned") {
            None | Some(Value::Null) => {
                return Err(PlanError::InvalidPayload(
                    "missing field `mentioned`".to_string(),
                ));
            }
            Some(single @ Value::Object(_)) => {
                vec![Mentioned::parse(single, "mentioned".to_string())?]
            }
            Some(Value::Array(list)) => {
                if list.is_empty() {
                    return Err(PlanError::InvalidPayload(
                        "field `mentioned` must not be empty".to_string(),
                    ));
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
    fn parse(value: &Value, path: String) -> Result<Self, PlanError> {
        let Value::Object(object) = value else {
            return Err(wrong_type(&path, "an object"));
        };
        let id = required_string(object, "id", &format!("{path}.id"))?;
        let email =
            optional_string(object, "email", &format!("{path}.email"))?.filter(|s| !s.is_empty());
        let name =
            optional_string(object, "name", &format!("{path}.name"))?.filter(|s| !s.is_empty());
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

/// Whether `url` is an absolute `http://` or `https://` URL with a host.
fn is_http_url(url: &str) -> bool {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return false;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_and_port = authority.rsplit('@').next().unwrap_or("");
    let host = match host_and_port.strip_prefix('[') {
        // An IPv6 literal, `[::1]:8080`.
        Some(literal) => literal.split(']').next().unwrap_or(""),
        None => host_and_port.split(':').next().unwrap_or(""),
    };
    !host.is_empty()
}

/// `object[key]` as a non-empty string, or an error naming `path`.
fn required_string(
    object: &Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<String, PlanError> {
    match optional_string(object, key, path)? {
        None => Err(PlanError::InvalidPayload(format!("missing field `{path}`"))),
        Some(s) if s.is_empty() => Err(PlanError::InvalidPayload(format!(
            "field `{path}` must not be empty"
        ))),
        Some(s) => Ok(s),
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

export!(MentionNotifier);
