//! The `ntfy` channel adapter: publishes `push` messages to an ntfy topic with ntfy's JSON
//! publishing API (a POST of `{"topic", "title", "message", …}` to the server's root URL).
//!
//! Config keys (resolved by the host):
//! - `server`: the server's base URL, default `https://ntfy.sh`. A self-hosted server must
//!   also be granted with `allow_http` (`ntfy.example.com:443`).
//! - `topic`: the topic for recipients that name none of their own.
//! - `token`: optional access token, sent as `Authorization: Bearer …`.
//!
//! A recipient's topic is the string `ntfy_topic` in its data, else `topic`; with neither the
//! send fails permanently. Topics are what ntfy accepts: 1 to 64 of `A-Z a-z 0-9 - _`.
//!
//! From the push content's data (a JSON object), `click` (a URL string), `tags` (an array of
//! strings) and `priority` (1 to 5) are passed on; other keys are ignored.
//!
//! ntfy answers 200 with the published message as JSON; its `id` is the receipt. Errors are
//! JSON too (`{"code":40301,"http":403,"error":"forbidden"}`), named in the failure: 429 is
//! rate-limited, 408 and 5xx transient, other 4xx permanent. ntfy has no idempotency key, so
//! a retry after a lost answer may publish twice. It sends no callbacks: `handle-webhook` is
//! unsupported.

use belfry_plugin_sdk::adapter::{
    FeedbackEvent, Guest, Message, Receipt, SendError, WebhookError, WebhookRequest,
};
use belfry_plugin_sdk::http::{Request, Response};
use belfry_plugin_sdk::settings::Config;
use belfry_plugin_sdk::types::Content;
use serde_json::{Map, Value};

const CONFIG: Config = Config::new("ntfy");
const DEFAULT_SERVER: &str = "https://ntfy.sh";

struct NtfyAdapter;

impl Guest for NtfyAdapter {
    fn send(message: Message) -> Result<Receipt, SendError> {
        let Content::Push(content) = &message.content else {
            return Err(CONFIG.wrong_content("push"));
        };
        let topic = topic_for(
            message.recipient.data.as_deref(),
            CONFIG.optional("topic").as_deref(),
        )?;
        let target = CONFIG.endpoint("server", DEFAULT_SERVER, "")?;
        let body = payload(
            &topic,
            &content.title,
            &content.body,
            content.data.as_deref(),
        )?;
        let mut request = Request::post(target)
            .header(
                "user-agent",
                format!("belfry-ntfy/{}", env!("CARGO_PKG_VERSION")),
            )
            .json(&body);
        if let Some(token) = CONFIG.optional("token") {
            request = request.bearer(&token);
        }
        let response = request.send()?;
        let id = receipt(response)?;
        Ok(Receipt {
            provider_message_id: id,
            metadata: Vec::new(),
        })
    }

    fn handle_webhook(_request: WebhookRequest) -> Result<Vec<FeedbackEvent>, WebhookError> {
        Err(CONFIG.no_webhooks())
    }
}

belfry_plugin_sdk::export_adapter!(NtfyAdapter);

/// The recipient's own topic (`ntfy_topic` in its data), else the configured default.
fn topic_for(recipient_data: Option<&str>, default: Option<&str>) -> Result<String, SendError> {
    let own = recipient_data
        .and_then(|data| serde_json::from_str::<Value>(data).ok())
        .and_then(|data| {
            data.get("ntfy_topic")
                .and_then(Value::as_str)
                .map(|topic| topic.trim().to_string())
        })
        .filter(|topic| !topic.is_empty());
    let (topic, source) = match (own, default) {
        (Some(topic), _) => (topic, "the recipient's `ntfy_topic`"),
        (None, Some(topic)) => (topic.to_string(), "config key `topic`"),
        (None, None) => {
            return Err(SendError::Permanent(
                "no ntfy topic: the recipient's data has no `ntfy_topic` and config key `topic` is not set"
                    .to_string(),
            ));
        }
    };
    let valid = (1..=64).contains(&topic.len())
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !valid {
        return Err(SendError::Permanent(format!(
            "{source} {topic:?} is not an ntfy topic (1 to 64 of A-Z, a-z, 0-9, - and _)"
        )));
    }
    Ok(topic)
}

/// ntfy's JSON publishing body.
fn payload(topic: &str, title: &str, body: &str, data: Option<&str>) -> Result<Value, SendError> {
    let mut out = Map::new();
    out.insert("topic".into(), Value::String(topic.to_string()));
    if !title.is_empty() {
        out.insert("title".into(), Value::String(title.to_string()));
    }
    out.insert("message".into(), Value::String(body.to_string()));
    let data = match data {
        None => Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            Ok(Value::Null) => Map::new(),
            Ok(_) => {
                return Err(SendError::Permanent(
                    "push data must be a JSON object".to_string(),
                ));
            }
            Err(err) => {
                return Err(SendError::Permanent(format!(
                    "push data is not valid JSON: {err}"
                )));
            }
        },
    };
    if let Some(click) = data.get("click").and_then(Value::as_str) {
        out.insert("click".into(), Value::String(click.to_string()));
    }
    if let Some(Value::Array(tags)) = data.get("tags") {
        let tags: Vec<Value> = tags
            .iter()
            .filter(|tag| tag.as_str().is_some_and(|t| !t.is_empty()))
            .cloned()
            .collect();
        if !tags.is_empty() {
            out.insert("tags".into(), Value::Array(tags));
        }
    }
    if let Some(priority) = data.get("priority").and_then(Value::as_u64)
        && (1..=5).contains(&priority)
    {
        out.insert("priority".into(), Value::from(priority));
    }
    Ok(Value::Object(out))
}

/// The published message's `id`, or the failure ntfy's answer means.
fn receipt(response: Response) -> Result<String, SendError> {
    let response = response.check_with("ntfy", error_detail)?;
    response.json_string("ntfy", "id")
}

/// ntfy's error body, `{"code":40301,"http":403,"error":"forbidden"}`, as
/// `ntfy error 40301: forbidden`; any other body as its excerpt.
fn error_detail(response: &Response) -> String {
    let json = response.json();
    let error = json.as_ref().and_then(|body| body.get("error")?.as_str());
    match (
        error,
        json.as_ref().and_then(|body| body.get("code")?.as_u64()),
    ) {
        (Some(error), Some(code)) => format!("ntfy error {code}: {error}"),
        (Some(error), None) => error.to_string(),
        _ => response.excerpt(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use belfry_plugin_sdk::adapter::RateLimit;
    use serde_json::json;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response::from_parts(status, headers, body)
    }

    #[test]
    fn the_recipient_topic_wins_over_the_default() {
        assert_eq!(
            topic_for(Some(r#"{"ntfy_topic":"zoe-phone"}"#), Some("all")).unwrap(),
            "zoe-phone"
        );
        assert_eq!(
            topic_for(Some(r#"{"name":"Zoe"}"#), Some("all")).unwrap(),
            "all"
        );
        assert_eq!(topic_for(None, Some("all")).unwrap(), "all");
        assert!(matches!(
            topic_for(None, None),
            Err(SendError::Permanent(m)) if m.contains("no ntfy topic")
        ));
        assert!(matches!(
            topic_for(Some(r#"{"ntfy_topic":"a/b"}"#), None),
            Err(SendError::Permanent(m)) if m.contains("`ntfy_topic`")
        ));
        assert!(topic_for(None, Some(&"x".repeat(65))).is_err());
    }

    #[test]
    fn the_payload_is_ntfys_json_publish_body() {
        assert_eq!(
            payload("t", "Title", "Body", None).unwrap(),
            json!({"topic": "t", "title": "Title", "message": "Body"})
        );
        let data =
            r#"{"click":"https://x.example/1","tags":["warning",""],"priority":4,"other":1}"#;
        assert_eq!(
            payload("t", "", "Body", Some(data)).unwrap(),
            json!({"topic": "t", "message": "Body", "click": "https://x.example/1",
                   "tags": ["warning"], "priority": 4})
        );
        assert!(payload("t", "", "b", Some("[1]")).is_err());
        assert!(payload("t", "", "b", Some("{")).is_err());
        let ignored = payload("t", "", "b", Some(r#"{"priority":9}"#)).unwrap();
        assert!(ignored.get("priority").is_none());
    }

    #[test]
    fn ntfy_answers_map_onto_receipts_and_retry_semantics() {
        let ok = r#"{"id":"sPs71M8A2T","time":1700000000,"expires":1700043200,"event":"message","topic":"t","message":"b"}"#;
        assert_eq!(receipt(response(200, &[], ok)).unwrap(), "sPs71M8A2T");
        assert!(matches!(
            receipt(response(200, &[], "{}")),
            Err(SendError::Permanent(m)) if m.contains("`id`")
        ));
        assert_eq!(
            receipt(response(
                403,
                &[],
                r#"{"code":40301,"http":403,"error":"forbidden","link":"https://ntfy.sh/docs/publish/#authentication"}"#
            )),
            Err(SendError::Permanent(
                "ntfy answered 403: ntfy error 40301: forbidden".to_string()
            ))
        );
        assert_eq!(
            receipt(response(
                429,
                &[("retry-after", "12")],
                r#"{"code":42901,"http":429,"error":"limit reached: too many requests"}"#
            )),
            Err(SendError::RateLimited(RateLimit {
                retry_after_ms: 12_000,
                message:
                    "ntfy answered 429 Too Many Requests: ntfy error 42901: limit reached: too many requests"
                        .to_string()
            }))
        );
        assert_eq!(
            receipt(response(502, &[], "Bad Gateway")),
            Err(SendError::Transient(
                "ntfy answered 502: Bad Gateway".to_string()
            ))
        );
    }
}
