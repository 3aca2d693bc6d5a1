//! The `webhook` channel adapter: POSTs every message as JSON to the operator's endpoint,
//! signed per the Standard Webhooks spec.
//!
//! Config keys (resolved by the host): `url` — the endpoint, `http://` or `https://`;
//! `secret` — the signing secret, `whsec_<base64>`. Its authority must be in the manifest's
//! `capabilities.http` allow-list, or the host refuses the request.

use std::time::{SystemTime, UNIX_EPOCH};

use belfry_plugin_sdk::adapter::{
    FeedbackEvent, Guest, Message, Receipt, SendError, WebhookError, WebhookRequest,
};
use belfry_plugin_sdk::http::{Request, Response, Target};
use belfry_plugin_sdk::settings::Config;
use belfry_plugin_sdk::standard_webhooks;
use belfry_plugin_sdk::types::Content;
use serde_json::{Value, json};

const CONFIG: Config = Config::new("webhook");

struct WebhookAdapter;

impl Guest for WebhookAdapter {
    fn send(message: Message) -> Result<Receipt, SendError> {
        let url = CONFIG.required("url")?;
        let secret = CONFIG.required("secret")?;
        let target = Target::parse(&url)
            .map_err(|err| SendError::Permanent(format!("config key `url` {err}")))?;

        let Content::Webhook(content) = &message.content else {
            return Err(SendError::Permanent(format!(
                "the webhook adapter cannot send {} content",
                message.content.channel()
            )));
        };
        let data: Value = serde_json::from_str(&content.body).map_err(|err| {
            SendError::Permanent(format!("the webhook body is not valid JSON: {err}"))
        })?;
        let body = json!({
            "type": "belfry.notification",
            "delivery_id": message.delivery_id,
            "notification_id": message.notification_id,
            "tenant": message.tenant,
            "channel": message.channel.as_str(),
            "attempt": message.attempt,
            "recipient": {
                "id": message.recipient.id,
                "email": message.recipient.email,
                "phone": message.recipient.phone,
            },
            "data": data,
        })
        .to_string();

        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let signature = standard_webhooks::sign(
            &secret,
            &message.idempotency_key,
            timestamp,
            body.as_bytes(),
        )
        .map_err(|err| SendError::Permanent(format!("config key `secret`: {err}")))?;

        // The SDK sends a `content-length`, never a chunked body: receivers verify the
        // signature over exactly these bytes.
        let response = Request::post(target)
            .body("application/json", body.into_bytes())
            .header(
                "user-agent",
                format!("belfry-webhook/{}", env!("CARGO_PKG_VERSION")),
            )
            .header("webhook-id", message.idempotency_key.clone())
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .send()?;
        receipt(response, &message.idempotency_key)
    }

    fn handle_webhook(_request: WebhookRequest) -> Result<Vec<FeedbackEvent>, WebhookError> {
        Err(WebhookError::Unsupported(
            "webhook adapter receives no provider callbacks".to_string(),
        ))
    }
}

/// The receipt for a 2xx: the endpoint's `X-Message-Id` when it names one, else the
/// idempotency key (stable across attempts); any other status is the error it means.
fn receipt(response: Response, idempotency_key: &str) -> Result<Receipt, SendError> {
    let response = response.check("the endpoint")?;
    Ok(Receipt {
        provider_message_id: response
            .header("x-message-id")
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .unwrap_or(idempotency_key)
            .to_string(),
        metadata: Vec::new(),
    })
}

belfry_plugin_sdk::export_adapter!(WebhookAdapter);

#[cfg(test)]
mod tests {
    use super::*;
    use belfry_plugin_sdk::adapter::RateLimit;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response::from_parts(status, headers, body)
    }

    #[test]
    fn the_receipt_is_the_endpoints_message_id_or_the_key() {
        let ok = receipt(response(200, &[("x-message-id", " m-7 ")], ""), "idem-1").unwrap();
        assert_eq!(ok.provider_message_id, "m-7");
        let ok = receipt(response(204, &[], ""), "idem-1").unwrap();
        assert_eq!(ok.provider_message_id, "idem-1");
    }

    #[test]
    fn statuses_map_onto_send_errors() {
        assert_eq!(
            receipt(response(429, &[("retry-after", "5")], "slow"), "k"),
            Err(SendError::RateLimited(RateLimit {
                retry_after_ms: 5000,
                message: "the endpoint answered 429 Too Many Requests: slow".to_string(),
            }))
        );
        assert_eq!(
            receipt(response(503, &[], ""), "k"),
            Err(SendError::Transient(
                "the endpoint answered 503".to_string()
            ))
        );
        assert_eq!(
            receipt(response(410, &[], "gone"), "k"),
            Err(SendError::Permanent(
                "the endpoint answered 410: gone".to_string()
            ))
        );
    }
}
