//! Standard Webhooks signatures (<https://www.standardwebhooks.com/>).
//!
//! Pure functions over `hmac`, `sha2` and `base64` only — no WIT bindings, no WASI — so the
//! host's tests can include this file natively and check it against the spec's vectors.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The `webhook-signature` header value for one message: `v1,<base64 HMAC-SHA256>` over
/// `"{msg_id}.{timestamp}.{body}"`, keyed with the base64-decoded part of `secret` after its
/// `whsec_` prefix (a secret without the prefix is taken as base64 as it is).
pub fn sign(secret: &str, msg_id: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
    let encoded = secret.strip_prefix("whsec_").unwrap_or(secret);
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
    Ok(format!(
        "v1,{}",
        STANDARD.encode(mac.finalize().into_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::sign;

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        let signature = sign(
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(
            signature.as_deref(),
            Ok("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn rejects_a_secret_that_is_not_base64() {
        assert!(sign("whsec_not base64!", "msg", 1, b"{}").is_err());
        assert!(sign("whsec_", "msg", 1, b"{}").is_err());
    }
}
