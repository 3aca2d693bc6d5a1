//! Helpers for a plugin's unit tests on the host target
//! (`cargo test -p NAME --target x86_64-unknown-linux-gnu`): messages and recipients to
//! send, provider webhooks signed as the provider would sign them, and a configuration that
//! stands in for the host's.
//!
//! Nothing here calls the host, so none of it may be used in a plugin's non-test code path
//! that runs inside belfry (it would not be wrong, only pointless).

use std::cell::RefCell;

use crate::adapter::{Message, WebhookRequest};
use crate::types::{
    ChatContent, Content, EmailContent, PushContent, Recipient, SmsContent, WebhookContent,
};
use crate::{form, hmac_sha256, standard_webhooks, twilio};

/// A recipient with only an id.
pub fn recipient(id: &str) -> Recipient {
    Recipient {
        id: id.to_string(),
        email: None,
        phone: None,
        data: None,
    }
}

/// A first attempt of delivery `d1` to recipient `u1` (with an email address and a phone
/// number), on `content`'s channel, idempotency key `idem-1`, tenant `acme`. Change any field
/// before use: they are all public.
pub fn message(content: Content) -> Message {
    Message {
        delivery_id: "d1".to_string(),
        notification_id: "n1".to_string(),
        tenant: "acme".to_string(),
        idempotency_key: "idem-1".to_string(),
        attempt: 1,
        channel: content.channel(),
        recipient: Recipient {
            id: "u1".to_string(),
            email: Some("ann@example.com".to_string()),
            phone: Some("+15555550100".to_string()),
            data: None,
        },
        content,
        headers: Vec::new(),
        metadata: Vec::new(),
    }
}

pub fn email(subject: &str, text: Option<&str>, html: Option<&str>) -> Content {
    Content::Email(EmailContent {
        subject: subject.to_string(),
        text: text.map(str::to_string),
        html: html.map(str::to_string),
    })
}

pub fn sms(text: &str) -> Content {
    Content::Sms(SmsContent {
        text: text.to_string(),
    })
}

pub fn push(title: &str, body: &str) -> Content {
    Content::Push(PushContent {
        title: title.to_string(),
        body: body.to_string(),
        data: None,
    })
}

pub fn chat(text: &str) -> Content {
    Content::Chat(ChatContent {
        text: text.to_string(),
        blocks: None,
    })
}

/// Webhook content with `body` (JSON text) as the body.
pub fn webhook(body: &str) -> Content {
    Content::Webhook(WebhookContent {
        body: body.to_string(),
    })
}

/// A `POST` to `https://belfry.example/v1/webhooks/acme/test` with `headers` and `body`,
/// received at `received_at_ms`.
pub fn webhook_request(
    headers: &[(&str, &str)],
    body: &[u8],
    received_at_ms: i64,
) -> WebhookRequest {
    WebhookRequest {
        method: "POST".to_string(),
        url: "https://belfry.example/v1/webhooks/acme/test".to_string(),
        headers: headers
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect(),
        body: body.to_vec(),
        received_at_ms,
    }
}

/// A webhook signed per Standard Webhooks with `secret` (`whsec_…`) as message `msg_id` at
/// `timestamp_secs`, received at `received_at_ms`.
///
/// # Panics
/// When `secret` is not a valid Standard Webhooks secret (a test's own mistake).
pub fn standard_webhook(
    secret: &str,
    msg_id: &str,
    timestamp_secs: i64,
    body: &[u8],
    received_at_ms: i64,
) -> WebhookRequest {
    let signature = standard_webhooks::sign(secret, msg_id, timestamp_secs, body)
        .expect("a valid whsec_ secret");
    let timestamp = timestamp_secs.to_string();
    webhook_request(
        &[
            ("content-type", "application/json"),
            ("webhook-id", msg_id),
            ("webhook-timestamp", &timestamp),
            ("webhook-signature", &signature),
        ],
        body,
        received_at_ms,
    )
}

/// A webhook with a hex HMAC-SHA256 in `signature_header`: of the body, or, with
/// `timestamp = Some((header, secs))`, of `"{secs}.{body}"` with `secs` in that header.
pub fn hmac_webhook(
    secret: &[u8],
    signature_header: &str,
    timestamp: Option<(&str, i64)>,
    body: &[u8],
    received_at_ms: i64,
) -> WebhookRequest {
    match timestamp {
        None => {
            let signature = hmac_sha256::sign_hex(secret, body);
            webhook_request(&[(signature_header, &signature)], body, received_at_ms)
        }
        Some((timestamp_header, secs)) => {
            let signature = hmac_sha256::sign_timestamped(secret, secs, body);
            let secs = secs.to_string();
            webhook_request(
                &[(signature_header, &signature), (timestamp_header, &secs)],
                body,
                received_at_ms,
            )
        }
    }
}

/// A Twilio status callback to `url` with form parameters `params`, signed with
/// `auth_token` as Twilio signs it.
pub fn twilio_webhook(
    auth_token: &str,
    url: &str,
    params: &[(&str, &str)],
    received_at_ms: i64,
) -> WebhookRequest {
    let body = form::encode(params);
    let decoded: Vec<(String, String)> = params
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_string()))
        .collect();
    let signature = twilio::sign(auth_token, url, &decoded);
    let mut request = webhook_request(
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            (twilio::SIGNATURE_HEADER, &signature),
        ],
        body.as_bytes(),
        received_at_ms,
    );
    request.url = url.to_string();
    request
}

thread_local! {
    static CONFIG: RefCell<Vec<(String, String)>> = const { RefCell::new(Vec::new()) };
}

/// Sets this thread's test configuration, read by [`config_source`]:
/// `Config::with_source("resend", testing::config_source)` then sees exactly these keys.
pub fn set_config(pairs: &[(&str, &str)]) {
    CONFIG.with(|config| {
        *config.borrow_mut() = pairs
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect();
    });
}

/// The value [`set_config`] gave `key` on this thread, like the host's `config.get`.
pub fn config_source(key: &str) -> Option<String> {
    CONFIG.with(|config| {
        config
            .borrow()
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.clone())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Channel;
    use crate::settings::Config;

    #[test]
    fn messages_take_their_channel_from_the_content() {
        let message = message(sms("hi"));
        assert_eq!(message.channel, Channel::Sms);
        assert_eq!(message.attempt, 1);
    }

    #[test]
    fn test_config_stands_in_for_the_host() {
        set_config(&[("api_key", " k ")]);
        let config = Config::with_source("resend", config_source);
        assert_eq!(config.required("api_key"), Ok("k".to_string()));
        assert_eq!(config.optional("from"), None);
    }

    #[test]
    fn signed_webhooks_verify() {
        let request = standard_webhook("whsec_dGVzdA==", "m1", 100, b"{}", 100_000);
        let at = crate::webhooks::received_at_secs(&request);
        assert_eq!(
            standard_webhooks::verify("whsec_dGVzdA==", &request.headers, &request.body, at, 300),
            Ok("m1".to_string())
        );
    }
}
