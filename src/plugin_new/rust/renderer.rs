//! The `__NAME__` renderer: a deliberately small one. It reads the calling notifier's package
//! assets `templates/<template>/<channel>/<part>.txt` and replaces each `{{ key }}` with the
//! string (or number) `key` of the request's data. Channels: `email` (`subject`*, `text`),
//! `sms` (`text`*), `in-app` (`headline`*, `body`*). A missing required part is
//! `template-not-found`; a `{{ key }}` the data lacks is `missing-variable`.

use belfry_plugin_sdk::renderer::{Guest, RenderError};
use belfry_plugin_sdk::types::{EmailContent, InAppContent, SmsContent};
use belfry_plugin_sdk::{Channel, Content, RenderRequest, assets};
use serde_json::{Map, Value};

struct Plugin;

impl Guest for Plugin {
    fn render(request: RenderRequest) -> Result<Content, RenderError> {
        let data: Map<String, Value> = match serde_json::from_str(&request.data) {
            Ok(Value::Object(map)) => map,
            _ => return Err(RenderError::Failed("data is not a JSON object".to_string())),
        };
        let part = |name: &str| -> Result<Option<String>, RenderError> {
            let path = format!(
                "templates/{}/{}/{name}.txt",
                request.template,
                request.channel.as_str()
            );
            match assets::read(&path) {
                None => Ok(None),
                Some(bytes) => {
                    let text = String::from_utf8(bytes)
                        .map_err(|_| RenderError::Failed(format!("{path} is not UTF-8")))?;
                    fill(&text, &data).map(Some)
                }
            }
        };
        let required = |name: &str| -> Result<String, RenderError> {
            part(name)?.ok_or_else(|| {
                RenderError::TemplateNotFound(format!(
                    "templates/{}/{}/{name}.txt",
                    request.template,
                    request.channel.as_str()
                ))
            })
        };
        match request.channel {
            Channel::Email => Ok(Content::Email(EmailContent {
                subject: required("subject")?,
                html: None,
                text: part("text")?,
            })),
            Channel::Sms => Ok(Content::Sms(SmsContent {
                text: required("text")?,
            })),
            Channel::InApp => Ok(Content::InApp(InAppContent {
                headline: required("headline")?,
                body: required("body")?,
                primary_action: None,
            })),
            other => Err(RenderError::TemplateNotFound(format!(
                "__NAME__ renders no {} content",
                other.as_str()
            ))),
        }
    }
}

/// `text` with every `{{ key }}` replaced by `data[key]`.
fn fill(text: &str, data: &Map<String, Value>) -> Result<String, RenderError> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            return Err(RenderError::Failed("a `{{` without its `}}`".to_string()));
        };
        let key = after[..end].trim();
        match data.get(key) {
            Some(Value::String(s)) => out.push_str(s),
            Some(Value::Number(n)) => out.push_str(&n.to_string()),
            Some(Value::Bool(b)) => out.push_str(&b.to_string()),
            _ => return Err(RenderError::MissingVariable(key.to_string())),
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out.trim_end_matches('\n').to_string())
}

belfry_plugin_sdk::export_renderer!(Plugin);
