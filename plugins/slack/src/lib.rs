//! The `slack` channel adapter: posts `chat` messages to a Slack incoming webhook.
//!
//! Config keys (resolved by the host): `webhook_url` (required), the incoming webhook's URL,
//! `https://hooks.slack.com/services/T…/B…/…`. Its authority must be granted: the manifest
//! grants `hooks.slack.com:443`; operators add others with `allow_http`.
//!
//! The request is Slack's documented payload, `{"text": …, "blocks": […]}`, `blocks` only when
//! the rendered content has them. Slack answers `200 ok`; its errors are plain-text bodies
//! (`invalid_payload`, `no_text`, `channel_not_found`, `no_service`, `action_prohibited`, …)
//! with 400, 403, 404 or 410, which are permanent and named in the error; 429 is rate-limited
//! (with its `Retry-After`), 408 and 5xx transient.
//!
//! Slack returns no message id and has no idempotency key, so the receipt is
//! `slack:{idempotency_key}`: stable for every attempt of a delivery, and unique per delivery.
//! A retry after a lost answer may post the message twice; Slack offers no way to prevent it.
//! Slack sends no delivery callbacks: `handle-webhook` is unsupported.

use belfry_plugin_sdk::adapter::{
    FeedbackEvent, Guest, Message, Receipt, SendError, WebhookError, WebhookRequest,
};
use belfry_plugin_sdk::http::{Request, Response, Target};
use belfry_plugin_sdk::settings::Config;
use belfry_plugin_sdk::types::Content;
use serde_json::{Map, Value};

const CONFIG: Config = Config::new("slack");

struct SlackAdapter;

impl Guest for SlackAdapter {
    fn send(message: Message) -> Result<Receipt, SendError> {
        let Content::Chat(content) = &message.content else {
            return Err(CONFIG.wrong_content("chat"));
        };
        let target = webhook_target(&CONFIG.required("webhook_url")?)?;
        let body = payload(&content.text, content.blocks.as_deref())?;
        let response = Request::post(target)
            .header(
                "user-agent",
                format!("belfry-slack/{}", env!("CARGO_PKG_VERSION")),
            )
            .json(&body)
            .send()?;
        check(response)?;
        Ok(Receipt {
            provider_message_id: receipt_id(&message.idempotency_key),
            metadata: Vec::new(),
        })
    }

    fn handle_webhook(_request: WebhookRequest) -> Result<Vec<FeedbackEvent>, WebhookError> {
        Err(CONFIG.no_webhooks())
    }
}

belfry_plugin_sdk::export_adapter!(SlackAdapter);

/// The configured incoming-webhook URL, split for `wasi:http`.
fn webhook_target(url: &str) -> Result<Target, SendError> {
    Target::parse(url)
        .map_err(|err| SendError::Permanent(format!("config key `webhook_url`: {err}")))
}

/// Slack's incoming-webhook payload: `text` always (it is the notification's fallback when
/// there are blocks), `blocks` when the content has a JSON array of them.
fn payload(text: &str, blocks: Option<&str>) -> Result<Value, SendError> {
    let mut body = Map::new();
    body.insert("text".to_string(), Value::String(text.to_string()));
    if let Some(blocks) = blocks {
        match serde_json::from_str::<Value>(blocks) {
            Ok(Value::Array(items)) if items.is_empty() => {}
            Ok(Value::Array(items)) => {
                body.insert("blocks".to_string(), Value::Array(items));
            }
            Ok(_) => {
                return Err(SendError::Permanent(
                    "chat blocks must be a JSON array of Slack Block Kit blocks".to_string(),
                ));
            }
            Err(err) => {
                return Err(SendError::Permanent(format!(
                    "chat blocks are not valid JSON: {err}"
                )));
            }
        }
    }
    Ok(Value::Object(body))
}

/// Slack's answer: any 2xx is accepted (it says `ok`); its error bodies are one word, such as
/// `invalid_payload`, which the failure names.
fn check(response: Response) -> Result<(), SendError> {
    response.check("slack").map(|_| ())
}

/// Slack returns no id for a webhook post: the delivery's idempotency key stands in, stable
/// across attempts.
fn receipt_id(idempotency_key: &str) -> String {
    format!("slack:{idempotency_key}")
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
    fn the_payload_carries_text_and_parsed_blocks() {
        assert_eq!(payload("hi", None).unwrap(), json!({"text": "hi"}));
        let blocks = r#"[{"type":"section","text":{"type":"mrkdwn","text":"*hi*"}}]"#;
        assert_eq!(
            payload("hi", Some(blocks)).unwrap(),
            json!({"text": "hi", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]})
        );
        assert_eq!(payload("hi", Some("[]")).unwrap(), json!({"text": "hi"}));
        assert!(matches!(
            payload("hi", Some(r#"{"type":"section"}"#)),
            Err(SendError::Permanent(m)) if m.contains("JSON array")
        ));
        assert!(matches!(
            payload("hi", Some("[")),
            Err(SendError::Permanent(m)) if m.contains("not valid JSON")
        ));
    }

    #[test]
    fn slack_answers_map_onto_retry_semantics() {
        assert_eq!(check(response(200, &[], "ok")), Ok(()));
        for (status, body) in [
            (400, "invalid_payload"),
            (400, "no_text"),
            (403, "action_prohibited"),
            (404, "channel_not_found"),
            (410, "channel_is_archived"),
        ] {
            assert_eq!(
                check(response(status, &[], body)),
                Err(SendError::Permanent(format!(
                    "slack answered {status}: {body}"
                )))
            );
        }
        assert_eq!(
            check(response(429, &[("retry-after", "30")], "rate_limited")),
            Err(SendError::RateLimited(RateLimit {
                retry_after_ms: 30_000,
                message: "slack answered 429 Too Many Requests: rate_limited".to_string()
            }))
        );
        assert!(matches!(
            check(response(503, &[], "service_unavailable")),
            Err(SendError::Transient(m)) if m.contains("503")
        ));
        assert!(matches!(
            check(response(302, &[], "")),
            Err(SendError::Permanent(m)) if m.contains("redirects")
        ));
    }

    #[test]
    fn targets_and_receipts() {
        let target = webhook_target("https://hooks.slack.com/services/T0/B0/x").unwrap();
        assert_eq!(target.authority(), "hooks.slack.com");
        assert_eq!(target.path_with_query(), "/services/T0/B0/x");
        assert!(matches!(
            webhook_target("hooks.slack.com/services/x"),
            Err(SendError::Permanent(m)) if m.contains("`webhook_url`")
        ));
        assert_eq!(receipt_id("belfry-1"), "slack:belfry-1");
    }
}
