//! The `twilio` channel adapter: sends `sms` through Twilio's Messages API and turns Twilio's
//! status callbacks into delivery feedback.
//!
//! Config keys (resolved by the host):
//! - `account_sid` (required): the account (or subaccount) SID, `AC…`.
//! - `auth_token` (required): the account's auth token; it authenticates the API calls and is
//!   the key Twilio signs its callbacks with.
//! - `from` or `messaging_service_sid` (one required): the sender, a phone number in E.164 or
//!   a Messaging Service SID `MG…`; both are passed on when both are set, as Twilio allows.
//! - `api_base` (optional, default `https://api.twilio.com`): where the API lives; another
//!   authority must also be granted with the host's `allow_http` key.
//! - `status_callback` (optional): the URL Twilio posts status changes to (`StatusCallback`),
//!   normally belfry's public webhook URL for this adapter. Without it Twilio uses the
//!   Messaging Service's callback, if any.
//!
//! Every attempt of a delivery carries its idempotency key as `I-Twilio-Idempotency-Token`, so
//! a retry after a lost answer does not send the text twice; the receipt is the Message SID
//! (`SM…`), which the status callbacks name as `MessageSid`.

use belfry_plugin_sdk::adapter::{
    FeedbackEvent, FeedbackKind, Guest, Message, Receipt, SendError, WebhookError, WebhookRequest,
};
use belfry_plugin_sdk::http::{Request, Response};
use belfry_plugin_sdk::types::Content;
use belfry_plugin_sdk::{form, settings::Config};
use serde_json::Value;

const CONFIG: Config = Config::new("twilio");
const DEFAULT_API_BASE: &str = "https://api.twilio.com";

struct TwilioAdapter;

impl Guest for TwilioAdapter {
    fn send(message: Message) -> Result<Receipt, SendError> {
        let response = message_request(&CONFIG, &message)?.send()?;
        Ok(Receipt {
            provider_message_id: receipt_id(response)?,
            metadata: Vec::new(),
        })
    }

    fn handle_webhook(request: WebhookRequest) -> Result<Vec<FeedbackEvent>, WebhookError> {
        let auth_token = CONFIG.webhook_secret("auth_token")?;
        feedback(&auth_token, &request)
    }
}

/// The `POST /2010-04-01/Accounts/{sid}/Messages.json` request for one message.
fn message_request(config: &Config, message: &Message) -> Result<Request, SendError> {
    let Content::Sms(content) = &message.content else {
        return Err(config.wrong_content("sms"));
    };
    let to = message
        .recipient
        .phone
        .as_deref()
        .map(str::trim)
        .filter(|phone| !phone.is_empty())
        .ok_or_else(|| {
            SendError::Permanent(format!(
                "recipient `{}` has no phone number (recipient.phone): the twilio adapter needs one",
                message.recipient.id
            ))
        })?;
    let account_sid = config.required("account_sid")?;
    // It goes into the path: anything but a SID's letters and digits would change the URL.
    if !account_sid.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(SendError::Permanent(format!(
            "config key `account_sid` must be a Twilio account SID (AC…), got {account_sid:?}"
        )));
    }
    let auth_token = config.required("auth_token")?;
    let from = config.optional("from");
    let service = config.optional("messaging_service_sid");
    if from.is_none() && service.is_none() {
        return Err(SendError::Permanent(
            "missing config key `from` or `messaging_service_sid`: the twilio adapter needs a sender"
                .to_string(),
        ));
    }
    let status_callback = config.optional("status_callback");
    let target = config.endpoint(
        "api_base",
        DEFAULT_API_BASE,
        &format!("/2010-04-01/Accounts/{account_sid}/Messages.json"),
    )?;

    let mut form = vec![("To", to)];
    if let Some(from) = &from {
        form.push(("From", from));
    }
    if let Some(service) = &service {
        form.push(("MessagingServiceSid", service));
    }
    form.push(("Body", &content.text));
    if let Some(callback) = &status_callback {
        form.push(("StatusCallback", callback));
    }

    Ok(Request::post(target)
        .basic_auth(&account_sid, &auth_token)
        .header(
            "i-twilio-idempotency-token",
            message.idempotency_key.clone(),
        )
        .header(
            "user-agent",
            format!("belfry-twilio/{}", env!("CARGO_PKG_VERSION")),
        )
        .form(&form))
}

/// The Message SID of a successful send, or the failure Twilio's answer means.
fn receipt_id(response: Response) -> Result<String, SendError> {
    let response = response.check_with("twilio", error_detail)?;
    response
        .json()
        .as_ref()
        .and_then(|body| body.get("sid"))
        .and_then(Value::as_str)
        .filter(|sid| !sid.is_empty())
        .map(str::to_string)
        .ok_or_else(|| {
            SendError::Permanent(format!(
                "twilio answered {} with no sid in its body: {}",
                response.status,
                response.excerpt()
            ))
        })
}

/// Twilio's error bodies are `{"code":21211,"message":"…","more_info":"…","status":400}`; the
/// code is what Twilio's docs index errors by.
fn error_detail(response: &Response) -> String {
    let Some(body) = response.json() else {
        return response.excerpt();
    };
    let message = body.get("message").and_then(Value::as_str);
    match (body.get("code").and_then(Value::as_i64), message) {
        (Some(code), Some(message)) => {
            belfry_plugin_sdk::http::excerpt(&format!("twilio error {code}: {message}"))
        }
        (Some(code), None) => format!("twilio error {code}"),
        (None, Some(message)) => belfry_plugin_sdk::http::excerpt(message),
        (None, None) => response.excerpt(),
    }
}

/// The feedback in one status callback, verified first.
fn feedback(
    auth_token: &str,
    request: &WebhookRequest,
) -> Result<Vec<FeedbackEvent>, WebhookError> {
    if !request.method.eq_ignore_ascii_case("POST") {
        return Err(WebhookError::Malformed(format!(
            "twilio status callbacks are POSTs, got {}",
            request.method
        )));
    }
    // Verified over the URL and every decoded parameter; nothing in them is read before.
    let params = belfry_plugin_sdk::webhooks::verify_twilio(auth_token, request)?;

    let field = |name: &str| {
        form::value(&params, name)
            .map(str::trim)
            .filter(|value| !value.is_empty())
    };
    let message_sid = field("MessageSid")
        .ok_or_else(|| WebhookError::Malformed("twilio callback has no MessageSid".to_string()))?;
    // `SmsStatus` is the older name Twilio still sends alongside `MessageStatus`.
    let Some(status) = field("MessageStatus").or_else(|| field("SmsStatus")) else {
        return Ok(Vec::new());
    };
    let error_code = field("ErrorCode");
    let Some(kind) = kind(status, error_code) else {
        return Ok(Vec::new());
    };
    // Twilio posts each status of a message once (a retried POST repeats the same fields), so
    // the SID, the status and its error code identify the event: the host drops repeats by
    // it, which is also all the replay protection an unsigned-timestamp scheme allows.
    let provider_event_id = match error_code {
        Some(code) => format!("{message_sid}:{status}:{code}"),
        None => format!("{message_sid}:{status}"),
    };
    let reason = match (error_code, field("ErrorMessage")) {
        (Some(code), Some(message)) => Some(format!("error {code}: {message}")),
        (Some(code), None) => Some(format!("error {code}")),
        (None, Some(message)) => Some(message.to_string()),
        (None, None) => None,
    };
    Ok(vec![FeedbackEvent {
        kind,
        provider_event_id,
        provider_message_id: message_sid.to_string(),
        // Status callbacks carry no time of their own.
        occurred_at_ms: None,
        reason,
    }])
}

/// What a `MessageStatus` (and, for `undelivered`, its `ErrorCode`) means for the message;
/// `None` for statuses that say nothing about delivery (`scheduled`, `canceled`, `receiving`,
/// `received`, and any Twilio adds).
fn kind(status: &str, error_code: Option<&str>) -> Option<FeedbackKind> {
    Some(match status {
        "accepted" | "queued" | "sending" | "sent" => FeedbackKind::Accepted,
        "delivered" => FeedbackKind::Delivered,
        "read" => FeedbackKind::Opened,
        "failed" => FeedbackKind::Failed,
        "undelivered" => match error_code {
            // The recipient replied STOP: Twilio blocks every later message to them.
            Some("21610") => FeedbackKind::Unsubscribed,
            // Handset unreachable (off, out of coverage), or an unknown carrier error: may
            // work later.
            Some("30003" | "30008") => FeedbackKind::BouncedSoft,
            // Blocked, unknown handset, landline or unreachable carrier: this number will not
            // take SMS.
            Some("30004" | "30005" | "30006") => FeedbackKind::BouncedHard,
            // Carrier filtering: the content was refused, not the number.
            Some("30007") => FeedbackKind::Rejected,
            _ => FeedbackKind::Failed,
        },
        _ => return None,
    })
}

belfry_plugin_sdk::export_adapter!(TwilioAdapter);

#[cfg(test)]
mod tests {
    use super::*;
    use belfry_plugin_sdk::adapter::RateLimit;
    use belfry_plugin_sdk::types::{Channel, EmailContent, SmsContent};

    fn full(key: &str) -> Option<String> {
        match key {
            "account_sid" => Some("AC123".to_string()),
            "auth_token" => Some("tok".to_string()),
            "from" => Some("+15005550006".to_string()),
            "status_callback" => Some("https://belfry.test/webhooks/twilio".to_string()),
            "api_base" => Some("http://127.0.0.1:8026".to_string()),
            _ => None,
        }
    }

    fn service(key: &str) -> Option<String> {
        match key {
            "account_sid" => Some("AC123".to_string()),
            "auth_token" => Some("tok".to_string()),
            "messaging_service_sid" => Some("MG9".to_string()),
            _ => None,
        }
    }

    fn no_sender(key: &str) -> Option<String> {
        match key {
            "account_sid" => Some("AC123".to_string()),
            "auth_token" => Some("tok".to_string()),
            _ => None,
        }
    }

    fn bad_sid(key: &str) -> Option<String> {
        match key {
            "account_sid" => Some("AC1/../x".to_string()),
            other => full(other),
        }
    }

    fn message(content: Content, phone: Option<&str>) -> Message {
        // The SDK's test message (delivery `d1`, key `idem-1`, tenant `acme`), on this
        // adapter's channel, to a recipient `u1` with only the given address.
        let mut message = belfry_plugin_sdk::testing::message(content);
        message.channel = Channel::Sms;
        message.recipient = belfry_plugin_sdk::testing::recipient("u1");
        message.recipient.phone = phone.map(str::to_string);
        message
    }

    fn sms(text: &str) -> Content {
        Content::Sms(SmsContent {
            text: text.to_string(),
        })
    }

    fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
        belfry_plugin_sdk::webhooks::header(request.headers(), name)
    }

    #[test]
    fn builds_the_messages_request() {
        let request = message_request(
            &Config::with_source("twilio", full),
            &message(sms("Code: 1234 & more"), Some("+15558675310")),
        )
        .unwrap();
        assert_eq!(request.target().authority(), "127.0.0.1:8026");
        assert_eq!(
            request.target().path_with_query(),
            "/2010-04-01/Accounts/AC123/Messages.json"
        );
        // base64("AC123:tok")
        assert_eq!(
            header(&request, "Authorization"),
            Some("Basic QUMxMjM6dG9r")
        );
        assert_eq!(
            header(&request, "I-Twilio-Idempotency-Token"),
            Some("idem-1")
        );
        assert_eq!(
            header(&request, "Content-Type"),
            Some("application/x-www-form-urlencoded")
        );
        assert_eq!(header(&request, "User-Agent"), Some("belfry-twilio/0.1.0"));
        assert_eq!(
            form::decode(request.body_bytes()),
            [
                ("To", "+15558675310"),
                ("From", "+15005550006"),
                ("Body", "Code: 1234 & more"),
                ("StatusCallback", "https://belfry.test/webhooks/twilio"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );
    }

    #[test]
    fn sends_through_a_messaging_service() {
        let request = message_request(
            &Config::with_source("twilio", service),
            &message(sms("hi"), Some("+15558675310")),
        )
        .unwrap();
        assert_eq!(request.target().authority(), "api.twilio.com");
        assert!(request.target().is_https());
        assert_eq!(
            String::from_utf8_lossy(request.body_bytes()),
            "To=%2B15558675310&MessagingServiceSid=MG9&Body=hi"
        );
    }

    #[test]
    fn refuses_what_cannot_be_sent() {
        let permanent = |config: fn(&str) -> Option<String>, message: Message| match message_request(
            &Config::with_source("twilio", config),
            &message,
        ) {
            Err(SendError::Permanent(text)) => text,
            other => panic!("expected a permanent failure, got {other:?}"),
        };
        let email = Content::Email(EmailContent {
            subject: "s".to_string(),
            html: None,
            text: Some("t".to_string()),
        });
        assert!(permanent(full, message(email, Some("+1555"))).contains("sms"));
        let no_phone = permanent(full, message(sms("hi"), None));
        assert!(no_phone.contains("recipient.phone"), "{no_phone}");
        let no_sender = permanent(no_sender, message(sms("hi"), Some("+1555")));
        assert!(no_sender.contains("`from`"), "{no_sender}");
        assert!(no_sender.contains("`messaging_service_sid`"), "{no_sender}");
        let sid = permanent(bad_sid, message(sms("hi"), Some("+1555")));
        assert!(sid.contains("`account_sid`"), "{sid}");
    }

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response::from_parts(status, headers, body)
    }

    #[test]
    fn maps_twilio_answers() {
        assert_eq!(
            receipt_id(response(201, &[], r#"{"sid":"SM1","status":"queued"}"#)),
            Ok("SM1".to_string())
        );
        assert!(matches!(
            receipt_id(response(201, &[], r#"{"status":"queued"}"#)),
            Err(SendError::Permanent(m)) if m.contains("no sid")
        ));
        assert_eq!(
            receipt_id(response(
                400,
                &[],
                r#"{"code":21211,"message":"The 'To' number is not a valid phone number.","more_info":"https://www.twilio.com/docs/errors/21211","status":400}"#
            )),
            Err(SendError::Permanent(
                "twilio answered 400: twilio error 21211: The 'To' number is not a valid phone number."
                    .to_string()
            ))
        );
        assert_eq!(
            receipt_id(response(
                429,
                &[("retry-after", "5")],
                r#"{"code":20429,"message":"Too Many Requests"}"#
            )),
            Err(SendError::RateLimited(RateLimit {
                retry_after_ms: 5000,
                message:
                    "twilio answered 429 Too Many Requests: twilio error 20429: Too Many Requests"
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
            receipt_id(response(503, &[], "")),
            Err(SendError::Transient(_))
        ));
        assert!(matches!(
            receipt_id(response(408, &[], "")),
            Err(SendError::Transient(_))
        ));
        assert!(matches!(
            receipt_id(response(401, &[], r#"{"code":20003,"message":"Authenticate"}"#)),
            Err(SendError::Permanent(m)) if m.contains("twilio error 20003: Authenticate")
        ));
    }

    const TOKEN: &str = "tok";
    const URL: &str = "https://belfry.test/webhooks/twilio?tenant=acme";

    fn callback(fields: &[(&str, &str)]) -> WebhookRequest {
        let pairs: Vec<(String, String)> = fields
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let signature = belfry_plugin_sdk::twilio::sign(TOKEN, URL, &pairs);
        WebhookRequest {
            method: "POST".to_string(),
            url: URL.to_string(),
            headers: vec![
                (
                    "content-type".to_string(),
                    "application/x-www-form-urlencoded".to_string(),
                ),
                ("x-twilio-signature".to_string(), signature),
            ],
            body: form::encode(fields).into_bytes(),
            received_at_ms: 1_796_205_600_000,
        }
    }

    fn one(fields: &[(&str, &str)]) -> FeedbackEvent {
        let mut events = feedback(TOKEN, &callback(fields)).unwrap();
        assert_eq!(events.len(), 1, "{fields:?}");
        events.remove(0)
    }

    #[test]
    fn maps_a_delivered_callback() {
        let event = one(&[
            ("SmsSid", "SM1"),
            ("SmsStatus", "delivered"),
            ("MessageStatus", "delivered"),
            ("To", "+15558675310"),
            ("MessageSid", "SM1"),
            ("AccountSid", "AC123"),
            ("From", "+15005550006"),
            ("ApiVersion", "2010-04-01"),
        ]);
        assert_eq!(event.kind, FeedbackKind::Delivered);
        assert_eq!(event.provider_event_id, "SM1:delivered");
        assert_eq!(event.provider_message_id, "SM1");
        assert_eq!(event.occurred_at_ms, None);
        assert_eq!(event.reason, None);
    }

    #[test]
    fn maps_every_status() {
        for (status, kind) in [
            ("accepted", FeedbackKind::Accepted),
            ("queued", FeedbackKind::Accepted),
            ("sending", FeedbackKind::Accepted),
            ("sent", FeedbackKind::Accepted),
            ("delivered", FeedbackKind::Delivered),
            ("read", FeedbackKind::Opened),
            ("failed", FeedbackKind::Failed),
            ("undelivered", FeedbackKind::Failed),
        ] {
            let event = one(&[("MessageSid", "SM1"), ("MessageStatus", status)]);
            assert_eq!(event.kind, kind, "{status}");
        }
        for (code, kind) in [
            ("21610", FeedbackKind::Unsubscribed),
            ("30003", FeedbackKind::BouncedSoft),
            ("30008", FeedbackKind::BouncedSoft),
            ("30004", FeedbackKind::BouncedHard),
            ("30005", FeedbackKind::BouncedHard),
            ("30006", FeedbackKind::BouncedHard),
            ("30007", FeedbackKind::Rejected),
            ("30001", FeedbackKind::Failed),
        ] {
            let event = one(&[
                ("MessageSid", "SM1"),
                ("MessageStatus", "undelivered"),
                ("ErrorCode", code),
            ]);
            assert_eq!(event.kind, kind, "{code}");
            assert_eq!(event.provider_event_id, format!("SM1:undelivered:{code}"));
            assert_eq!(event.reason, Some(format!("error {code}")));
        }
        for ignored in [
            "scheduled",
            "canceled",
            "receiving",
            "received",
            "new-status",
        ] {
            let events = feedback(
                TOKEN,
                &callback(&[("MessageSid", "SM1"), ("MessageStatus", ignored)]),
            )
            .unwrap();
            assert!(events.is_empty(), "{ignored}");
        }
        assert!(
            feedback(TOKEN, &callback(&[("MessageSid", "SM1")]))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn reasons_name_the_error() {
        let event = one(&[
            ("MessageSid", "SM1"),
            ("MessageStatus", "failed"),
            ("ErrorCode", "30002"),
            ("ErrorMessage", "Account suspended"),
        ]);
        assert_eq!(event.kind, FeedbackKind::Failed);
        assert_eq!(
            event.reason.as_deref(),
            Some("error 30002: Account suspended")
        );
        assert_eq!(event.provider_event_id, "SM1:failed:30002");
    }

    #[test]
    fn refuses_unverified_callbacks() {
        let unauthorized = |request: &WebhookRequest| {
            assert!(
                matches!(feedback(TOKEN, request), Err(WebhookError::Unauthorized(_))),
                "{request:?}"
            );
        };
        let good = callback(&[("MessageSid", "SM1"), ("MessageStatus", "delivered")]);
        let mut unsigned = good.clone();
        unsigned
            .headers
            .retain(|(name, _)| name != "x-twilio-signature");
        unauthorized(&unsigned);
        let mut tampered = good.clone();
        tampered.body = b"MessageSid=SM2&MessageStatus=delivered".to_vec();
        unauthorized(&tampered);
        let mut elsewhere = good.clone();
        elsewhere.url = "https://belfry.test/webhooks/twilio".to_string();
        unauthorized(&elsewhere);
        assert!(matches!(
            feedback("other", &good),
            Err(WebhookError::Unauthorized(_))
        ));
        // Unsigned garbage is unauthorized, not malformed: nothing is read before the check.
        let mut garbage = unsigned.clone();
        garbage.body = b"%%%".to_vec();
        unauthorized(&garbage);
    }

    #[test]
    fn refuses_malformed_callbacks_once_verified() {
        assert!(matches!(
            feedback(TOKEN, &callback(&[("MessageStatus", "delivered")])),
            Err(WebhookError::Malformed(m)) if m.contains("MessageSid")
        ));
        let mut get = callback(&[("MessageSid", "SM1"), ("MessageStatus", "delivered")]);
        get.method = "GET".to_string();
        assert!(matches!(
            feedback(TOKEN, &get),
            Err(WebhookError::Malformed(_))
        ));
    }
}
