//! Channels and their content contracts.
//!
//! Plugins speak WIT types; the engine speaks these. Every rendered message is checked against
//! its channel's contract here, before any adapter sees it, so a template mistake fails one
//! delivery with `content_invalid` and a field name instead of reaching a provider.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// The channels belfry validates and delivers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "kebab-case")]
pub enum Channel {
    Email,
    Sms,
    Push,
    Chat,
    InApp,
    Webhook,
}

impl Channel {
    pub const ALL: [Channel; 6] = [
        Channel::Email,
        Channel::Sms,
        Channel::Push,
        Channel::Chat,
        Channel::InApp,
        Channel::Webhook,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
            Channel::Push => "push",
            Channel::Chat => "chat",
            Channel::InApp => "in-app",
            Channel::Webhook => "webhook",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown channel `{0}` (expected one of email, sms, push, chat, in-app, webhook)")]
pub struct UnknownChannel(pub String);

impl FromStr for Channel {
    type Err = UnknownChannel;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Channel::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownChannel(s.to_string()))
    }
}

/// One addressee of a notification, as a notifier plugin described it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    /// JSON object text, passed through to templates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<String>,
}

/// What a notifier asks the renderer to produce.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenderRequest {
    pub template: String,
    pub channel: Channel,
    /// JSON object text.
    pub data: String,
    pub locale: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InAppAction {
    pub label: String,
    pub url: String,
}

/// Rendered content, one shape per channel. JSON-valued fields stay text until validation
/// parses them, so an invalid one can be reported with its field name.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "channel", rename_all = "kebab-case")]
pub enum Content {
    Email {
        subject: String,
        html: Option<String>,
        text: Option<String>,
    },
    Sms {
        text: String,
    },
    Push {
        title: String,
        body: String,
        data: Option<String>,
    },
    Chat {
        text: String,
        blocks: Option<String>,
    },
    InApp {
        headline: String,
        body: String,
        primary_action: Option<InAppAction>,
    },
    Webhook {
        body: String,
    },
}

/// Limits of the channel contracts. Each number is the provider-side limit most providers
/// share, so content that passes here is not rejected for size downstream.
pub mod limits {
    /// RFC 5322 line length limit; a subject is one header line.
    pub const EMAIL_SUBJECT_MAX: usize = 998;
    /// Ten concatenated SMS segments; Twilio's own ceiling is 1600 characters.
    pub const SMS_TEXT_MAX: usize = 1600;
    /// APNs caps the whole payload at 4 KiB; title and body share it.
    pub const PUSH_TEXT_MAX: usize = 4096;
    /// Slack truncates message text past 40 000 characters.
    pub const CHAT_TEXT_MAX: usize = 40_000;
    pub const IN_APP_HEADLINE_MAX: usize = 200;
    pub const IN_APP_BODY_MAX: usize = 10_000;
}

/// A content contract violation; `field` is `channel.field`, for example `email.subject`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("content_invalid: {field} {problem}")]
pub struct ContentInvalid {
    pub field: String,
    pub problem: String,
}

impl Content {
    pub fn channel(&self) -> Channel {
        match self {
            Content::Email { .. } => Channel::Email,
            Content::Sms { .. } => Channel::Sms,
            Content::Push { .. } => Channel::Push,
            Content::Chat { .. } => Channel::Chat,
            Content::InApp { .. } => Channel::InApp,
            Content::Webhook { .. } => Channel::Webhook,
        }
    }

    /// One line that stands for this content in a digest: the email subject, the push title,
    /// the in-app headline, the text of an SMS or chat message (first line, at most 200
    /// characters), or a webhook's JSON body shortened the same way.
    pub fn summary(&self) -> String {
        let line = match self {
            Content::Email { subject, .. } => subject,
            Content::Push { title, .. } => title,
            Content::InApp { headline, .. } => headline,
            Content::Sms { text } | Content::Chat { text, .. } => text,
            Content::Webhook { body } => body,
        };
        let first = line.lines().next().unwrap_or_default().trim();
        match first.char_indices().nth(200) {
            Some((cut, _)) => format!("{}…", &first[..cut]),
            None => first.to_string(),
        }
    }

    /// Approximate size in bytes, used to bound what a plugin may return.
    pub fn approx_size(&self) -> usize {
        let opt = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        match self {
            Content::Email {
                subject,
                html,
                text,
            } => subject.len() + opt(html) + opt(text),
            Content::Sms { text } => text.len(),
            Content::Push { title, body, data } => title.len() + body.len() + opt(data),
            Content::Chat { text, blocks } => text.len() + opt(blocks),
            Content::InApp {
                headline,
                body,
                primary_action,
            } => {
                headline.len()
                    + body.len()
                    + primary_action
                        .as_ref()
                        .map_or(0, |a| a.label.len() + a.url.len())
            }
            Content::Webhook { body } => body.len(),
        }
    }

    /// Checks this content against the contract of `expected` (the delivery's channel).
    pub fn validate(&self, expected: Channel) -> Result<(), ContentInvalid> {
        let bad = |field: &str, problem: String| ContentInvalid {
            field: field.to_string(),
            problem,
        };
        if self.channel() != expected {
            return Err(bad(
                &format!("{expected}.channel"),
                format!("is {} content, expected {expected}", self.channel()),
            ));
        }
        match self {
            Content::Email {
                subject,
                html,
                text,
            } => {
                required("email.subject", subject, limits::EMAIL_SUBJECT_MAX)?;
                if subject.contains(['\r', '\n']) {
                    return Err(bad(
                        "email.subject",
                        "contains a line break (header injection)".into(),
                    ));
                }
                let has = |s: &Option<String>| s.as_ref().is_some_and(|s| !s.trim().is_empty());
                if !has(html) && !has(text) {
                    return Err(bad("email.text", "is empty and so is email.html".into()));
                }
            }
            Content::Sms { text } => required("sms.text", text, limits::SMS_TEXT_MAX)?,
            Content::Push { title, body, data } => {
                required("push.title", title, limits::PUSH_TEXT_MAX)?;
                if title.chars().count() + body.chars().count() > limits::PUSH_TEXT_MAX {
                    return Err(bad(
                        "push.body",
                        format!(
                            "with the title exceeds {} characters",
                            limits::PUSH_TEXT_MAX
                        ),
                    ));
                }
                json_of_kind("push.data", data.as_deref(), JsonKind::Object)?;
            }
            Content::Chat { text, blocks } => {
                required("chat.text", text, limits::CHAT_TEXT_MAX)?;
                json_of_kind("chat.blocks", blocks.as_deref(), JsonKind::Array)?;
            }
            Content::InApp {
                headline,
                body,
                primary_action,
            } => {
                required("in-app.headline", headline, limits::IN_APP_HEADLINE_MAX)?;
                if body.chars().count() > limits::IN_APP_BODY_MAX {
                    return Err(bad(
                        "in-app.body",
                        format!("exceeds {} characters", limits::IN_APP_BODY_MAX),
                    ));
                }
                if let Some(action) = primary_action {
                    required("in-app.primary_action.label", &action.label, 100)?;
                    absolute_http_url("in-app.primary_action.url", &action.url)?;
                }
            }
            Content::Webhook { body } => {
                json_of_kind("webhook.body", Some(body), JsonKind::Any)?;
            }
        }
        Ok(())
    }
}

fn required(field: &str, value: &str, max_chars: usize) -> Result<(), ContentInvalid> {
    if value.trim().is_empty() {
        return Err(ContentInvalid {
            field: field.into(),
            problem: "is empty".into(),
        });
    }
    let n = value.chars().count();
    if n > max_chars {
        return Err(ContentInvalid {
            field: field.into(),
            problem: format!("is {n} characters, the limit is {max_chars}"),
        });
    }
    Ok(())
}

enum JsonKind {
    Object,
    Array,
    Any,
}

fn json_of_kind(field: &str, value: Option<&str>, kind: JsonKind) -> Result<(), ContentInvalid> {
    let Some(text) = value else { return Ok(()) };
    let parsed: serde_json::Value = serde_json::from_str(text).map_err(|e| ContentInvalid {
        field: field.into(),
        problem: format!("is not valid JSON: {e}"),
    })?;
    let ok = match kind {
        JsonKind::Object => parsed.is_object(),
        JsonKind::Array => parsed.is_array(),
        JsonKind::Any => true,
    };
    if !ok {
        let want = if matches!(kind, JsonKind::Object) {
            "an object"
        } else {
            "an array"
        };
        return Err(ContentInvalid {
            field: field.into(),
            problem: format!("must be a JSON {want}"),
        });
    }
    Ok(())
}

fn absolute_http_url(field: &str, value: &str) -> Result<(), ContentInvalid> {
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
        Ok(u) => Err(ContentInvalid {
            field: field.into(),
            problem: format!("must be an http(s) URL, got scheme `{}`", u.scheme()),
        }),
        Err(e) => Err(ContentInvalid {
            field: field.into(),
            problem: format!("is not an absolute URL: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_subject_with_line_break_is_rejected_naming_the_field() {
        let c = Content::Email {
            subject: "Order 1\r\nBcc: x@y".into(),
            html: None,
            text: Some("hi".into()),
        };
        let err = c.validate(Channel::Email).unwrap_err();
        assert_eq!(err.field, "email.subject");
        assert!(
            err.to_string()
                .starts_with("content_invalid: email.subject")
        );
    }

    #[test]
    fn each_channel_checks_its_own_fields() {
        let long = "x".repeat(limits::SMS_TEXT_MAX + 1);
        assert_eq!(
            Content::Sms { text: long }
                .validate(Channel::Sms)
                .unwrap_err()
                .field,
            "sms.text"
        );
        let push = Content::Push {
            title: "t".into(),
            body: "b".into(),
            data: Some("[1]".into()),
        };
        assert_eq!(push.validate(Channel::Push).unwrap_err().field, "push.data");
        let chat = Content::Chat {
            text: "t".into(),
            blocks: Some("{".into()),
        };
        assert_eq!(
            chat.validate(Channel::Chat).unwrap_err().field,
            "chat.blocks"
        );
        let in_app = Content::InApp {
            headline: "h".into(),
            body: "b".into(),
            primary_action: Some(InAppAction {
                label: "Open".into(),
                url: "javascript:alert(1)".into(),
            }),
        };
        assert_eq!(
            in_app.validate(Channel::InApp).unwrap_err().field,
            "in-app.primary_action.url"
        );
        let hook = Content::Webhook {
            body: "not json".into(),
        };
        assert_eq!(
            hook.validate(Channel::Webhook).unwrap_err().field,
            "webhook.body"
        );
        let sms = Content::Sms { text: "hi".into() };
        assert_eq!(
            sms.validate(Channel::Email).unwrap_err().field,
            "email.channel"
        );
        assert!(sms.validate(Channel::Sms).is_ok());
    }

    #[test]
    fn channel_names_round_trip() {
        for c in Channel::ALL {
            assert_eq!(c.as_str().parse::<Channel>().unwrap(), c);
        }
        assert!("fax".parse::<Channel>().is_err());
    }
}
