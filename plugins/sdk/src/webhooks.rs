//! A provider's webhook, checked: the signature schemes of [`crate::standard_webhooks`],
//! [`crate::hmac_sha256`] and [`crate::twilio`] applied to a `webhook-request`, with the
//! timestamp judged against the host's `received-at-ms` (not the guest's clock) and every
//! failure a `webhook-error::unauthorized` naming the provider.

use crate::adapter::{WebhookError, WebhookRequest};
use crate::{form, hmac_sha256, standard_webhooks, twilio};

/// Tolerance for a signed webhook's timestamp, either way from when the host received it.
pub const WEBHOOK_TOLERANCE_SECS: i64 = 5 * 60;

/// The first value of header `name` (any case) in `headers`.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    standard_webhooks::header(headers, name)
}

/// When the host received the request, in seconds since the Unix epoch.
pub fn received_at_secs(request: &WebhookRequest) -> i64 {
    request.received_at_ms.div_euclid(1000)
}

/// Verifies a Standard Webhooks (or Svix) signature over the raw body; returns the message id
/// (`webhook-id`), which is unique per message and so a good `provider-event-id`. `who`
/// names the sender in errors ("resend webhook: no signature matches the body").
pub fn verify_standard_webhook(
    who: &str,
    secret: &str,
    request: &WebhookRequest,
) -> Result<String, WebhookError> {
    standard_webhooks::verify(
        secret,
        &request.headers,
        &request.body,
        received_at_secs(request),
        WEBHOOK_TOLERANCE_SECS,
    )
    .map_err(|err| WebhookError::Unauthorized(format!("{who}: {err}")))
}

/// Verifies a plain HMAC-SHA256 of the raw body in header `signature_header` (hex or
/// base64, optionally `sha256=`-prefixed).
pub fn verify_hmac_sha256(
    who: &str,
    secret: &[u8],
    signature_header: &str,
    request: &WebhookRequest,
) -> Result<(), WebhookError> {
    let signature = header(&request.headers, signature_header).ok_or_else(|| {
        WebhookError::Unauthorized(format!("{who}: missing the {signature_header} header"))
    })?;
    hmac_sha256::verify(secret, &request.body, signature)
        .map_err(|err| WebhookError::Unauthorized(format!("{who}: {err}")))
}

/// Verifies an HMAC-SHA256 of `"{timestamp}.{body}"`, the timestamp (seconds) read from
/// header `timestamp_header` and within [`WEBHOOK_TOLERANCE_SECS`] of `received-at-ms`.
pub fn verify_hmac_sha256_timestamped(
    who: &str,
    secret: &[u8],
    signature_header: &str,
    timestamp_header: &str,
    request: &WebhookRequest,
) -> Result<(), WebhookError> {
    let unauthorized = |err: String| WebhookError::Unauthorized(format!("{who}: {err}"));
    let signature = header(&request.headers, signature_header)
        .ok_or_else(|| unauthorized(format!("missing the {signature_header} header")))?;
    let timestamp = header(&request.headers, timestamp_header)
        .ok_or_else(|| unauthorized(format!("missing the {timestamp_header} header")))?;
    let timestamp: i64 = timestamp.trim().parse().map_err(|_| {
        unauthorized(format!(
            "the {timestamp_header} header {timestamp:?} is not a number of seconds"
        ))
    })?;
    hmac_sha256::verify_timestamped(
        secret,
        timestamp,
        &request.body,
        signature,
        received_at_secs(request),
        WEBHOOK_TOLERANCE_SECS,
    )
    .map_err(unauthorized)
}

/// Verifies Twilio's `X-Twilio-Signature` over the URL and the form parameters; returns the
/// decoded parameters, read only after the signature matched.
pub fn verify_twilio(
    auth_token: &str,
    request: &WebhookRequest,
) -> Result<Vec<(String, String)>, WebhookError> {
    let signature = header(&request.headers, twilio::SIGNATURE_HEADER).ok_or_else(|| {
        WebhookError::Unauthorized("twilio callback has no X-Twilio-Signature header".to_string())
    })?;
    // Twilio signs the decoded parameters, so decoding comes first; nothing in them is read
    // until the signature over all of them has matched.
    let params = form::decode(&request.body);
    twilio::verify(auth_token, &request.url, &params, signature)
        .map_err(|err| WebhookError::Unauthorized(format!("twilio callback: {err}")))?;
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn standard_webhooks_are_checked_against_received_at() {
        let at_ms = 1_700_000_000_000;
        let request =
            testing::standard_webhook(SECRET, "msg_1", at_ms / 1000, br#"{"type":"x"}"#, at_ms);
        assert_eq!(
            verify_standard_webhook("resend webhook", SECRET, &request),
            Ok("msg_1".to_string())
        );
        let late = WebhookRequest {
            received_at_ms: at_ms + 301_000,
            ..request.clone()
        };
        let Err(WebhookError::Unauthorized(message)) =
            verify_standard_webhook("resend webhook", SECRET, &late)
        else {
            panic!("a late webhook is unauthorized");
        };
        assert!(message.starts_with("resend webhook: "), "{message}");
        assert!(message.contains("old"), "{message}");
        let mut tampered = request;
        tampered.body = br#"{"type":"y"}"#.to_vec();
        assert!(verify_standard_webhook("resend webhook", SECRET, &tampered).is_err());
    }

    #[test]
    fn hmac_webhooks_need_the_header_and_the_right_digest() {
        let request = testing::hmac_webhook(b"k", "X-Signature", None, b"{}", 1_000);
        assert_eq!(
            verify_hmac_sha256("acme", b"k", "x-signature", &request),
            Ok(())
        );
        assert!(verify_hmac_sha256("acme", b"other", "x-signature", &request).is_err());
        let Err(WebhookError::Unauthorized(message)) =
            verify_hmac_sha256("acme", b"k", "x-other", &request)
        else {
            panic!("a missing header is unauthorized");
        };
        assert_eq!(message, "acme: missing the x-other header");
    }

    #[test]
    fn timestamped_hmac_webhooks_are_bounded_in_time() {
        let now_ms = 1_700_000_000_000;
        let request = testing::hmac_webhook(
            b"k",
            "x-signature",
            Some(("x-timestamp", now_ms / 1000 - 10)),
            b"{}",
            now_ms,
        );
        let check = |request: &WebhookRequest| {
            verify_hmac_sha256_timestamped("acme", b"k", "x-signature", "x-timestamp", request)
        };
        assert_eq!(check(&request), Ok(()));
        let late = WebhookRequest {
            received_at_ms: now_ms + 600_000,
            ..request
        };
        assert!(matches!(check(&late), Err(WebhookError::Unauthorized(m)) if m.contains("old")));
    }

    #[test]
    fn twilio_callbacks_are_verified_before_they_are_read() {
        let url = "https://example.com/v1/webhooks/acme/twilio";
        let params = [("MessageSid", "SM1"), ("MessageStatus", "delivered")];
        let request = testing::twilio_webhook("tok", url, &params, 0);
        let decoded = verify_twilio("tok", &request).unwrap();
        assert_eq!(form::value(&decoded, "MessageSid"), Some("SM1"));
        assert!(matches!(
            verify_twilio("other", &request),
            Err(WebhookError::Unauthorized(m)) if m.starts_with("twilio callback: ")
        ));
    }
}
