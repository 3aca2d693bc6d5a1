//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>), which Svix (and so
//! Resend) use too.
//!
//! Pure functions over `hmac`, `sha2` and `base64` only — no WIT bindings, no WASI, nothing
//! else from this crate — so the host's tests can include this file natively
//! (`#[path = "../plugins/sdk/src/standard_webhooks.rs"] mod signature;` in
//! `tests/it/signature.rs`) and check it against the spec's vectors and reference library.
//! [`crate::webhooks`] applies it to a `webhook-request`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The `webhook-signature` header value for one message: `v1,<base64 HMAC-SHA256>` over
/// `"{msg_id}.{timestamp}.{body}"`, keyed with the base64-decoded part of `secret` after its
/// `whsec_` prefix (a secret without the prefix is taken as base64 as it is).
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
    let mac = keyed(secret, msg_id, timestamp, body)?;
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

/// Verifies a received message: the `webhook-id`, `webhook-timestamp` and `webhook-signature`
/// headers (or Svix's `svix-id`, `svix-timestamp` and `svix-signature`; names in any case).
/// The timestamp must be within `tolerance_secs` of `now_secs` either way; the signature
/// header is a space-separated list of `<version>,<base64>` entries, and any one `v1` entry
/// matching (compared in constant time) is enough. Returns the message id.
pub fn verify(
    secret: &str,
    headers: &[(String, String)],
    body: &[u8],
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<String, String> {
    let either = |name: &str| {
        header(headers, &format!("webhook-{name}"))
            .or_else(|| header(headers, &format!("svix-{name}")))
            .ok_or_else(|| format!("missing the webhook-{name} (or svix-{name}) header"))
    };
    let msg_id = either("id")?;
    let timestamp = either("timestamp")?;
    let signatures = either("signature")?;

    let timestamp: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| format!("the webhook timestamp {timestamp:?} is not a number of seconds"))?;
    let age = now_secs.saturating_sub(timestamp);
    if age > tolerance_secs {
        return Err(format!(
            "the webhook timestamp is {age} s old, more than the {tolerance_secs} s tolerance"
        ));
    }
    if -age > tolerance_secs {
        return Err(format!(
            "the webhook timestamp is {} s in the future, more than the {tolerance_secs} s tolerance",
            -age
        ));
    }

    let mac = keyed(secret, msg_id, timestamp, body)?;
    let mut candidates = 0;
    for entry in signatures.split_whitespace() {
        let Some(("v1", encoded)) = entry.split_once(',') else {
            continue;
        };
        candidates += 1;
        let Ok(signature) = STANDARD.decode(encoded) else {
            continue;
        };
        if mac.clone().verify_slice(&signature).is_ok() {
            return Ok(msg_id.to_string());
        }
    }
    if candidates == 0 {
        Err("the signature header has no v1 signature".to_string())
    } else {
        Err("no signature matches the body".to_string())
    }
}

/// The first value of header `name` in `headers`, compared case-insensitively.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(candidate, _)| candidate.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// HMAC-SHA256 keyed with the secret, over the signed content.
fn keyed(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Result<Hmac<Sha256>, String> {
    let encoded = secret
        .trim()
        .strip_prefix("whsec_")
        .unwrap_or(secret.trim());
    let key = STANDARD
        .decode(encoded)
        .map_err(|err| format!("the webhook secret is not valid base64 after `whsec_`: {err}"))?;
    if key.is_empty() {
        return Err("the webhook secret is empty".to_string());
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&key)
        .map_err(|err| format!("the webhook secret cannot key HMAC-SHA256: {err}"))?;
    mac.update(msg_id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(mac)
}

#[cfg(test)]
mod tests {
    use super::{header, sign, verify};

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const TS: i64 = 1614265330;
    const BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SIGNATURE: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn headers(prefix: &str, signature: &str) -> Vec<(String, String)> {
        vec![
            (format!("{prefix}-Id"), ID.to_string()),
            (format!("{prefix}-Timestamp"), TS.to_string()),
            (format!("{prefix}-Signature"), signature.to_string()),
        ]
    }

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        assert_eq!(sign(SECRET, ID, TS, BODY).as_deref(), Ok(SIGNATURE));
    }

    #[test]
    fn rejects_a_secret_that_is_not_base64() {
        assert!(sign("whsec_not base64!", "msg", 1, b"{}").is_err());
        assert!(sign("whsec_", "msg", 1, b"{}").is_err());
    }

    #[test]
    fn verifies_webhook_and_svix_headers_in_any_case() {
        assert_eq!(
            verify(SECRET, &headers("Webhook", SIGNATURE), BODY, TS, 300).as_deref(),
            Ok(ID)
        );
        assert_eq!(
            verify(SECRET, &headers("SVIX", SIGNATURE), BODY, TS + 10, 300).as_deref(),
            Ok(ID)
        );
    }

    #[test]
    fn any_one_of_several_signatures_may_match() {
        let list = format!("v1,AAAA v2,xyz v1a,abc {SIGNATURE} v1,not-base64!");
        assert!(verify(SECRET, &headers("webhook", &list), BODY, TS, 300).is_ok());
    }

    #[test]
    fn rejects_bad_signatures_and_bodies() {
        let wrong = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA=";
        assert!(verify(SECRET, &headers("webhook", wrong), BODY, TS, 300).is_err());
        assert!(verify(SECRET, &headers("webhook", SIGNATURE), b"{}", TS, 300).is_err());
        let other = "whsec_dGVzdA==";
        assert!(verify(other, &headers("webhook", SIGNATURE), BODY, TS, 300).is_err());
        let err = verify(SECRET, &headers("webhook", "v2,abc"), BODY, TS, 300).unwrap_err();
        assert!(err.contains("no v1 signature"), "{err}");
    }

    #[test]
    fn rejects_missing_headers() {
        let mut partial = headers("webhook", SIGNATURE);
        partial.remove(2);
        let err = verify(SECRET, &partial, BODY, TS, 300).unwrap_err();
        assert!(err.contains("webhook-signature"), "{err}");
        let mut bad_ts = headers("webhook", SIGNATURE);
        bad_ts[1].1 = "soon".to_string();
        assert!(verify(SECRET, &bad_ts, BODY, TS, 300).is_err());
    }

    #[test]
    fn rejects_expired_and_future_timestamps() {
        let h = headers("webhook", SIGNATURE);
        assert!(verify(SECRET, &h, BODY, TS + 300, 300).is_ok());
        assert!(verify(SECRET, &h, BODY, TS - 300, 300).is_ok());
        let old = verify(SECRET, &h, BODY, TS + 301, 300).unwrap_err();
        assert!(old.contains("old"), "{old}");
        let future = verify(SECRET, &h, BODY, TS - 301, 300).unwrap_err();
        assert!(future.contains("future"), "{future}");
    }

    #[test]
    fn signs_what_it_verifies() {
        let signature = sign(SECRET, "msg_1", 1_700_000_000, b"hello").unwrap();
        let h = vec![
            ("webhook-id".to_string(), "msg_1".to_string()),
            ("webhook-timestamp".to_string(), "1700000000".to_string()),
            ("webhook-signature".to_string(), signature),
        ];
        assert!(verify(SECRET, &h, b"hello", 1_700_000_000, 300).is_ok());
        assert_eq!(header(&h, "WEBHOOK-ID"), Some("msg_1"));
        assert_eq!(header(&h, "other"), None);
    }
}
