//! The `resend` channel adapter: sends `email` through Resend's API (`POST /emails`) and turns
//! Resend's webhooks into delivery feedback.
//!
//! Config keys (resolved by the host):
//! - `api_key` (required to send): a Resend API key, sent as `Authorization: Bearer …`.
//! - `from` (required to send): the sender, `Acme <no-reply@acme.test>`, on a domain verified
//!   at Resend.
//! - `reply_to` (optional): a `Reply-To` address.
//! - `api_base` (optional, default `https://api.resend.com`): where the API lives; another
//!   authority must also be granted with the host's `allow_http` key.
//! - `webhook_secret` (required for webhooks): the endpoint's signing secret, `whsec_…`.
//!
//! Every attempt of a delivery carries its idempotency key as `Idempotency-Key`, so Resend
//! sends a message once however often a lost answer makes the host retry; the receipt is the
//! email id Resend returns, which its webhooks name as `data.email_id`.
//!
//! Resend signs webhooks with Svix (Standard Webhooks), so a callback is verified against the
//! host's receive time before its body is read; the Svix message id is the event id the host
//! deduplicates on.

use belfry_plugin_sdk::adapter::{
    FeedbackEvent, FeedbackKind, Guest, Message, Receipt, SendError, WebhookError, WebhookRequest,
};
use belfry_plugin_sdk::http::{Request, Response};
use belfry_plugin_sdk::settings::Config;
use belfry_plugin_sdk::types::Content;
use serde_json::{Map, Value, json};

const CONFIG: Config = Config::new("resend");
const DEFAULT_API_BASE: &str = "https://api.resend.com";

struct ResendAdapter;

impl Guest for ResendAdapter {
    fn send(message: Message) -> Result<Receipt, SendError> {
        let response = email_request(&CONFIG, &message)?.send()?;
        Ok(Receipt {
            provider_message_id: receipt_id(response)?,
            metadata: Vec::new(),
        })
    }

    fn handle_webhook(request: WebhookRequest) -> Result<Vec<FeedbackEvent>, WebhookError> {
        let secret = CONFIG.webhook_secret("webhook_secret")?;
        feedback(&secret, &request)
    }
}

/// The `POST /emails` request for one message.
fn email_request(config: &Config, message: &Message) -> Result<Request, SendError> {
    let Content::Email(content) = &message.content else {
        return Err(config.wrong_content("email"));
    };
    let to = message
        .recipient
        .email
        .as_deref()
        .map(str::trim)
        .filter(|email| !email.is_empty())
        .ok_or_else(|| {
            SendError::Permanent(format!(
                "recipient `{}` has no email address (recipient.email): the resend adapter needs one",
                message.recipient.id
            ))
        })?;
    if content.html.is_none() && content.text.is_none() {
        // Resend would refuse it with a 422; no attempt can fix it.
        return Err(SendError::Permanent(
            "the email content has neither an html nor a text body".to_string(),
        ));
    }
    let api_key = config.required("api_key")?;
    let from = config.required("from")?;
    let target = config.endpoint("api_base", DEFAULT_API_BASE, "/emails")?;

    let mut body = Map::new();
    body.insert("from".into(), from.into());
    body.insert("to".into(), json!([to]));
    body.insert("subject".into(), content.subject.clone().into());
    if let Some(html) = &content.html {
        body.insert("html".into(), html.clone().into());
    }
    if let Some(text) = &content.text {
        body.insert("text".into(), text.clone().into());
    }
    if let Some(reply_to) = config.optional("reply_to") {
        body.insert("reply_to".into(), reply_to.into());
    }
    // The host's required headers (one-click unsubscribe): Resend puts them on the message.
    if !message.headers.is_empty() {
        let headers: Map<String, Value> = message
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), Value::String(value.clone())))
            .collect();
        body.insert("headers".into(), Value::Object(headers));
    }

    Ok(Request::post(target)
        .bearer(&api_key)
        .header("idempotency-key", message.idempotency_key.clone())
        .header(
            "user-agent",
            format!("belfry-resend/{}", env!("CARGO_PKG_VERSION")),
        )
        .json(&Value::Object(body)))
}

/// The email id of a successful send, or the failure Resend's answer means.
fn receipt_id(response: Response) -> Result<String, SendError> {
    // A 409 `concurrent_idempotent_requests` means an earlier attempt with this key is still
    // in flight at Resend: retrying later returns that attempt's result, so it is transient.
    if response.status == 409
        && error_name(&response).as_deref() == Some("concurrent_idempotent_requests")
    {
        return Err(SendError::Transient(format!(
            "resend answered 409: {}",
            error_detail(&response)
        )));
    }
    let response = response.check_with("resend", error_detail)?;
    response
        .json()
        .as_ref()
        .and_then(|body| body.get("id"))
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            SendError::Permanent(format!(
                "resend answered {} with no id in its body: {}",
                response.status,
                response.excerpt()
            ))
        })
}

/// Resend's error bodies are `{"statusCode":422,"name":"validation_error","message":"…"}`:
/// `name: message` says what went wrong; anything else is quoted as it came.
fn error_detail(response: &Response) -> String {
    let message = response.json().and_then(|body| {
        body.get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
    });
    match (error_name(response), message) {
        (Some(name), Some(message)) => {
            belfry_plugin_sdk::http::excerpt(&format!("{name}: {message}"))
        }
        (None, Some(message)) => belfry_plugin_sdk::http::excerpt(&message),
        _ => response.excerpt(),
    }
}

fn error_name(response: &Response) -> Option<String> {
    response.json()?.get("name")?.as_str().map(str::to_string)
}

/// The feedback in one verified webhook: one event for a mapped type, none for the rest.
fn feedback(secret: &str, request: &WebhookRequest) -> Result<Vec<FeedbackEvent>, WebhookError> {
    let event_id =
        belfry_plugin_sdk::webhooks::verify_standard_webhook("resend webhook", secret, request)?;

    let body: Value = serde_json::from_slice(&request.body).map_err(|err| {
        WebhookError::Malformed(format!("resend webhook body is not JSON: {err}"))
    })?;
    let event_type = body.get("type").and_then(Value::as_str).ok_or_else(|| {
        WebhookError::Malformed("resend webhook has no string `type`".to_string())
    })?;
    let data = body.get("data").unwrap_or(&Value::Null);
    let Some(kind) = kind(event_type, data) else {
        return Ok(Vec::new());
    };
    let email_id = data
        .get("email_id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| {
            WebhookError::Malformed(format!(
                "resend `{event_type}` webhook has no string `data.email_id`"
            ))
        })?;
    Ok(vec![FeedbackEvent {
        kind,
        provider_event_id: event_id,
        provider_message_id: email_id.to_string(),
        occurred_at_ms: body
            .get("created_at")
            .and_then(Value::as_str)
            .and_then(belfry_plugin_sdk::time::rfc3339_ms),
        reason: reason(kind, data),
    }])
}

/// What a Resend event type means for the message; `None` for types that say nothing about
/// a delivery (`email.scheduled`, `email.received`, `contact.*`, `domain.*`, …).
fn kind(event_type: &str, data: &Value) -> Option<FeedbackKind> {
    Some(match event_type {
        "email.sent" => FeedbackKind::Accepted,
        "email.delivered" => FeedbackKind::Delivered,
        "email.delivery_delayed" => FeedbackKind::Deferred,
        // Only a `Permanent` bounce condemns the address; `Transient` and `Undetermined` may
        // clear up.
        "email.bounced" if text(data, &["bounce", "type"]) == Some("Permanent") => {
            FeedbackKind::BouncedHard
        }
        "email.bounced" => FeedbackKind::BouncedSoft,
        "email.complained" => FeedbackKind::Complained,
        "email.opened" => FeedbackKind::Opened,
        "email.clicked" => FeedbackKind::Clicked,
        "email.failed" => FeedbackKind::Failed,
        _ => return None,
    })
}

/// The detail Resend gives for a bounce (its sub-type and message), a click (the link) or a
/// failure (its reason).
fn reason(kind: FeedbackKind, data: &Value) -> Option<String> {
    match kind {
        FeedbackKind::BouncedHard | FeedbackKind::BouncedSoft => {
            match (
                text(data, &["bounce", "subType"]),
                text(data, &["bounce", "message"]),
            ) {
                (Some(sub_type), Some(message)) => Some(format!("{sub_type}: {message}")),
                (Some(only), None) | (None, Some(only)) => Some(only.to_string()),
                (None, None) => None,
            }
        }
        FeedbackKind::Clicked => text(data, &["click", "link"]).map(str::to_string),
        FeedbackKind::Failed => text(data, &["failed", "reason"]).map(str::to_string),
        _ => None,
    }
}

/// The non-empty string at `path` under `value`.
fn text<'a>(value: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(value, |value, key| value.get(key))?
        .as_str()
        .map(str::trim)
        .filter(|text| !text.is_empty())
}

belfry_plugin_sdk::export_adapter!(ResendAdapter);

#[cfg(test)]
mod tests {
    use super::*;
    use belfry_plugin_sdk::adapter::RateLimit;
    use belfry_plugin_sdk::types::{Channel, EmailContent, SmsContent};

    fn full(key: &str) -> Option<String> {
        match key {
            "api_key" => Some("re_test".to_string()),
            "from" => Some("Acme <no-reply@acme.test>".to_string()),
            "reply_to" => Some("help@acme.test".to_string()),
            "api_base" => Some("http://127.0.0.1:8025/".to_string()),
            _ => None,
        }
    }

    fn minimal(key: &str) -> Option<String> {
        match key {
            "api_key" => Some("re_test".to_string()),
            "from" => Some("no-reply@acme.test".to_string()),
            _ => None,
        }
    }

    fn no_from(key: &str) -> Option<String> {
        (key == "api_key").then(|| "re_test".to_string())
    }

    fn message(content: Content, email: Option<&str>) -> Message {
        // The SDK's test message (delivery `d1`, key `idem-1`, tenant `acme`), on this
        // adapter's channel, to a recipient `u1` with only the given address.
        let mut message = belfry_plugin_sdk::testing::message(content);
        message.channel = Channel::Email;
        message.recipient = belfry_plugin_sdk::testing::recipient("u1");
        message.recipient.email = email.map(str::to_string);
        message
    }

    fn email(html: Option<&str>, text: Option<&str>) -> Content {
        Content::Email(EmailContent {
            subject: "Hello".to_string(),
            html: html.map(str::to_string),
            text: text.map(str::to_string),
        })
    }

    fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
        belfry_plugin_sdk::webhooks::header(request.headers(), name)
    }

    fn body(request: &Request) -> Value {
        serde_json::from_slice(request.body_bytes()).unwrap()
    }

    #[test]
    fn builds_the_emails_request() {
        let mut message = message(
            email(Some("<p>Hi</p>"), Some("Hi")),
            Some("ann@example.test"),
        );
        message.headers = vec![
            (
                "List-Unsubscribe".to_string(),
                "<https://belfry.test/u/1>".to_string(),
            ),
            (
                "List-Unsubscribe-Post".to_string(),
                "List-Unsubscribe=One-Click".to_string(),
            ),
        ];
        let request = email_request(&Config::with_source("resend", full), &message).unwrap();
        assert_eq!(request.target().authority(), "127.0.0.1:8025");
        assert_eq!(request.target().path_with_query(), "/emails");
        assert_eq!(header(&request, "Authorization"), Some("Bearer re_test"));
        assert_eq!(header(&request, "Idempotency-Key"), Some("idem-1"));
        assert_eq!(header(&request, "Content-Type"), Some("application/json"));
        assert_eq!(header(&request, "User-Agent"), Some("belfry-resend/0.1.0"));
        assert_eq!(
            body(&request),
            json!({
                "from": "Acme <no-reply@acme.test>",
                "to": ["ann@example.test"],
                "subject": "Hello",
                "html": "<p>Hi</p>",
                "text": "Hi",
                "reply_to": "help@acme.test",
                "headers": {
                    "List-Unsubscribe": "<https://belfry.test/u/1>",
                    "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
                },
            })
        );
    }

    #[test]
    fn omits_what_is_not_there() {
        let message = message(email(None, Some("Hi")), Some("ann@example.test"));
        let request = email_request(&Config::with_source("resend", minimal), &message).unwrap();
        assert_eq!(request.target().authority(), "api.resend.com");
        assert!(request.target().is_https());
        assert_eq!(
            body(&request),
            json!({
                "from": "no-reply@acme.test",
                "to": ["ann@example.test"],
                "subject": "Hello",
                "text": "Hi",
            })
        );
    }

    #[test]
    fn refuses_what_cannot_be_sent() {
        let config = Config::with_source("resend", minimal);
        let sms = Content::Sms(SmsContent {
            text: "hi".to_string(),
        });
        let permanent = |result: Result<Request, SendError>| match result {
            Err(SendError::Permanent(message)) => message,
            other => panic!("expected a permanent failure, got {other:?}"),
        };
        assert!(
            permanent(email_request(&config, &message(sms, Some("a@b.test")))).contains("email")
        );
        let no_email = permanent(email_request(
            &config,
            &message(email(None, Some("x")), None),
        ));
        assert!(no_email.contains("recipient.email"), "{no_email}");
        assert!(no_email.contains("`u1`"), "{no_email}");
        let empty = permanent(email_request(
            &config,
            &message(email(None, None), Some("a@b.test")),
        ));
        assert!(empty.contains("neither"), "{empty}");
        let missing = permanent(email_request(
            &Config::with_source("resend", no_from),
            &message(email(None, Some("x")), Some("a@b.test")),
        ));
        assert!(missing.contains("`from`"), "{missing}");
    }

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response::from_parts(status, headers, body)
    }

    #[test]
    fn maps_resend_answers() {
        assert_eq!(
            receipt_id(response(
                200,
                &[],
                r#"{"id":"4ef9a417-02e9-4d39-ad75-9611e0fcc33c"}"#
            )),
            Ok("4ef9a417-02e9-4d39-ad75-9611e0fcc33c".to_string())
        );
        assert_eq!(
            receipt_id(response(201, &[], r#"{"id":"e1"}"#)),
            Ok("e1".to_string())
        );
        assert!(matches!(
            receipt_id(response(200, &[], "{}")),
            Err(SendError::Permanent(m)) if m.contains("no id")
        ));
        assert_eq!(
            receipt_id(response(
                429,
                &[("retry-after", "2")],
                r#"{"name":"rate_limit_exceeded","message":"Too many requests"}"#
            )),
            Err(SendError::RateLimited(RateLimit {
                retry_after_ms: 2000,
                message:
                    "resend answered 429 Too Many Requests: rate_limit_exceeded: Too many requests"
                        .to_string()
            }))
        );
        assert!(matches!(
            receipt_id(response(429, &[], "")),
            Err(SendError::RateLimited(RateLimit {
                retry_after_ms: 60_000,
                ..
            }))
        ));
        assert!(matches!(
            receipt_id(response(500, &[], "oops")),
            Err(SendError::Transient(_))
        ));
        assert!(matches!(
            receipt_id(response(408, &[], "")),
            Err(SendError::Transient(_))
        ));
        assert_eq!(
            receipt_id(response(
                422,
                &[],
                r#"{"statusCode":422,"name":"validation_error","message":"Invalid `to` field."}"#
            )),
            Err(SendError::Permanent(
                "resend answered 422: validation_error: Invalid `to` field.".to_string()
            ))
        );
        assert_eq!(
            receipt_id(response(403, &[], "forbidden")),
            Err(SendError::Permanent(
                "resend answered 403: forbidden".to_string()
            ))
        );
        assert!(matches!(
            receipt_id(response(
                409,
                &[],
                r#"{"name":"concurrent_idempotent_requests","message":"busy"}"#
            )),
            Err(SendError::Transient(_))
        ));
        assert!(matches!(
            receipt_id(response(
                409,
                &[],
                r#"{"name":"invalid_idempotent_request","message":"x"}"#
            )),
            Err(SendError::Permanent(_))
        ));
    }

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    /// 2026-12-02T10:00:00Z.
    const NOW_SECS: i64 = 1_796_205_600;

    fn webhook(prefix: &str, body: &str, signed_at: i64, received_at_secs: i64) -> WebhookRequest {
        let signature =
            belfry_plugin_sdk::standard_webhooks::sign(SECRET, "msg_1", signed_at, body.as_bytes())
                .unwrap();
        WebhookRequest {
            method: "POST".to_string(),
            url: "https://belfry.test/webhooks/resend".to_string(),
            headers: vec![
                (format!("{prefix}-id"), "msg_1".to_string()),
                (format!("{prefix}-timestamp"), signed_at.to_string()),
                (format!("{prefix}-signature"), signature),
                ("content-type".to_string(), "application/json".to_string()),
            ],
            body: body.as_bytes().to_vec(),
            received_at_ms: received_at_secs * 1000 + 250,
        }
    }

    fn event(event_type: &str, data: Value) -> String {
        json!({
            "type": event_type,
            "created_at": "2026-12-02T10:00:00.123Z",
            "data": data,
        })
        .to_string()
    }

    fn one(body: &str) -> FeedbackEvent {
        let mut events = feedback(SECRET, &webhook("svix", body, NOW_SECS, NOW_SECS)).unwrap();
        assert_eq!(events.len(), 1, "{body}");
        events.remove(0)
    }

    #[test]
    fn maps_a_delivered_event() {
        let event = one(&event(
            "email.delivered",
            json!({"email_id": "e1", "created_at": "2026-12-02T09:59:58.000000+00:00"}),
        ));
        assert_eq!(event.kind, FeedbackKind::Delivered);
        assert_eq!(event.provider_event_id, "msg_1");
        assert_eq!(event.provider_message_id, "e1");
        assert_eq!(event.occurred_at_ms, Some(NOW_SECS * 1000 + 123));
        assert_eq!(event.reason, None);
    }

    #[test]
    fn maps_every_email_event_type() {
        for (event_type, kind) in [
            ("email.sent", FeedbackKind::Accepted),
            ("email.delivered", FeedbackKind::Delivered),
            ("email.delivery_delayed", FeedbackKind::Deferred),
            ("email.complained", FeedbackKind::Complained),
            ("email.opened", FeedbackKind::Opened),
            ("email.clicked", FeedbackKind::Clicked),
            ("email.failed", FeedbackKind::Failed),
            ("email.bounced", FeedbackKind::BouncedSoft),
        ] {
            assert_eq!(
                one(&event(event_type, json!({"email_id": "e1"}))).kind,
                kind
            );
        }
        for ignored in [
            "email.scheduled",
            "email.received",
            "contact.created",
            "domain.updated",
        ] {
            let body = event(ignored, json!({"id": "c1"}));
            let events = feedback(SECRET, &webhook("svix", &body, NOW_SECS, NOW_SECS)).unwrap();
            assert!(events.is_empty(), "{ignored}");
        }
    }

    #[test]
    fn bounces_are_hard_only_when_permanent() {
        let hard = one(&event(
            "email.bounced",
            json!({"email_id": "e1", "bounce": {
                "type": "Permanent", "subType": "Suppressed",
                "message": "The recipient is on the suppression list."
            }}),
        ));
        assert_eq!(hard.kind, FeedbackKind::BouncedHard);
        assert_eq!(
            hard.reason.as_deref(),
            Some("Suppressed: The recipient is on the suppression list.")
        );
        for soft_type in ["Transient", "Undetermined"] {
            let soft = one(&event(
                "email.bounced",
                json!({"email_id": "e1", "bounce": {"type": soft_type, "subType": "MailboxFull"}}),
            ));
            assert_eq!(soft.kind, FeedbackKind::BouncedSoft);
            assert_eq!(soft.reason.as_deref(), Some("MailboxFull"));
        }
    }

    #[test]
    fn reasons_carry_links_and_failures() {
        let click = one(&event(
            "email.clicked",
            json!({"email_id": "e1", "click": {"link": "https://acme.test/x", "ipAddress": "1.2.3.4"}}),
        ));
        assert_eq!(click.reason.as_deref(), Some("https://acme.test/x"));
        let failed = one(&event(
            "email.failed",
            json!({"email_id": "e1", "failed": {"reason": "reached_daily_quota"}}),
        ));
        assert_eq!(failed.reason.as_deref(), Some("reached_daily_quota"));
    }

    #[test]
    fn accepts_standard_webhooks_header_names() {
        let body = event("email.opened", json!({"email_id": "e1"}));
        let events = feedback(SECRET, &webhook("Webhook", &body, NOW_SECS, NOW_SECS)).unwrap();
        assert_eq!(events[0].kind, FeedbackKind::Opened);
        assert_eq!(events[0].provider_event_id, "msg_1");
    }

    #[test]
    fn refuses_unverified_webhooks_before_reading_them() {
        let unauthorized = |request: &WebhookRequest| match feedback(SECRET, request) {
            Err(WebhookError::Unauthorized(message)) => message,
            other => panic!("expected unauthorized, got {other:?}"),
        };
        // Not JSON at all, but the signature is checked first.
        let mut tampered = webhook("svix", "not json", NOW_SECS, NOW_SECS);
        tampered.body = b"not json!".to_vec();
        unauthorized(&tampered);
        let old = unauthorized(&webhook("svix", "{}", NOW_SECS - 301, NOW_SECS));
        assert!(old.contains("old"), "{old}");
        let future = unauthorized(&webhook("svix", "{}", NOW_SECS + 301, NOW_SECS));
        assert!(future.contains("future"), "{future}");
        // At the tolerance's edge it verifies (and then "{}" is malformed, not unauthorized).
        assert!(matches!(
            feedback(SECRET, &webhook("svix", "{}", NOW_SECS - 300, NOW_SECS)),
            Err(WebhookError::Malformed(_))
        ));
        let mut unsigned = webhook("svix", "{}", NOW_SECS, NOW_SECS);
        unsigned
            .headers
            .retain(|(name, _)| name != "svix-signature");
        unauthorized(&unsigned);
        let other_secret = webhook("svix", "{}", NOW_SECS, NOW_SECS);
        assert!(matches!(
            feedback("whsec_dGVzdA==", &other_secret),
            Err(WebhookError::Unauthorized(_))
        ));
    }

    #[test]
    fn refuses_malformed_bodies_once_verified() {
        for body in [
            "not json".to_string(),
            "{}".to_string(),
            r#"{"type": 3}"#.to_string(),
            event("email.delivered", json!({})),
            event("email.delivered", json!({"email_id": ""})),
        ] {
            assert!(
                matches!(
                    feedback(SECRET, &webhook("svix", &body, NOW_SECS, NOW_SECS)),
                    Err(WebhookError::Malformed(_))
                ),
                "{body}"
            );
        }
        // An unreadable time is a missing one, not a malformed event.
        let body =
            json!({"type": "email.sent", "created_at": "yesterday", "data": {"email_id": "e1"}});
        assert_eq!(one(&body.to_string()).occurred_at_ms, None);
    }
}
