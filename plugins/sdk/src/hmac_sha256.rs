//! Plain HMAC-SHA256 webhook signatures, as many providers and in-house senders use them: a
//! hex (or base64) digest of the body, or of `"{timestamp}.{body}"` when the sender also
//! signs a timestamp to stop replays.
//!
//! Pure functions over `hmac`, `sha2` and `base64`; comparisons are constant-time
//! (`Mac::verify_slice`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The lowercase hex HMAC-SHA256 of `message` under `secret`.
pub fn sign_hex(secret: &[u8], message: &[u8]) -> String {
    hex(&mac(secret, &[message]).finalize().into_bytes())
}

/// The base64 HMAC-SHA256 of `message` under `secret`.
pub fn sign_base64(secret: &[u8], message: &[u8]) -> String {
    STANDARD.encode(mac(secret, &[message]).finalize().into_bytes())
}

/// The lowercase hex HMAC-SHA256 of `"{timestamp}.{body}"`.
pub fn sign_timestamped(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    let timestamp = timestamp.to_string();
    hex(&mac(secret, &[timestamp.as_bytes(), b".", body])
        .finalize()
        .into_bytes())
}

/// Checks `signature` for `message`: hex (any case) or base64, with or without a
/// `sha256=` prefix (GitHub's form), compared in constant time.
pub fn verify(secret: &[u8], message: &[u8], signature: &str) -> Result<(), String> {
    verify_parts(secret, &[message], signature)
}

/// Checks a signature over `"{timestamp}.{body}"` and that `timestamp` (seconds) is within
/// `tolerance_secs` of `now_secs` either way (use the request's `received-at-ms / 1000`).
pub fn verify_timestamped(
    secret: &[u8],
    timestamp: i64,
    body: &[u8],
    signature: &str,
    now_secs: i64,
    tolerance_secs: i64,
) -> Result<(), String> {
    check_timestamp(timestamp, now_secs, tolerance_secs)?;
    let timestamp = timestamp.to_string();
    verify_parts(secret, &[timestamp.as_bytes(), b".", body], signature)
}

/// `Ok` when `timestamp` is within `tolerance_secs` of `now_secs` either way, else an error
/// saying how far off it is.
pub fn check_timestamp(timestamp: i64, now_secs: i64, tolerance_secs: i64) -> Result<(), String> {
    let age = now_secs.saturating_sub(timestamp);
    if age > tolerance_secs {
        return Err(format!(
            "the signature timestamp is {age} s old, more than the {tolerance_secs} s tolerance"
        ));
    }
    if age.saturating_neg() > tolerance_secs {
        return Err(format!(
            "the signature timestamp is {} s in the future, more than the {tolerance_secs} s tolerance",
            age.saturating_neg()
        ));
    }
    Ok(())
}

fn verify_parts(secret: &[u8], parts: &[&[u8]], signature: &str) -> Result<(), String> {
    if secret.is_empty() {
        return Err("the signing secret is empty".to_string());
    }
    let signature = signature.trim();
    let signature = signature.strip_prefix("sha256=").unwrap_or(signature);
    if signature.is_empty() {
        return Err("the signature is empty".to_string());
    }
    let decoded = unhex(signature).or_else(|| STANDARD.decode(signature).ok());
    let Some(decoded) = decoded else {
        return Err("the signature is neither hex nor base64".to_string());
    };
    mac(secret, parts)
        .verify_slice(&decoded)
        .map_err(|_| "the signature does not match the body".to_string())
}

fn mac(secret: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes a key of any size");
    for part in parts {
        mac.update(part);
    }
    mac
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Hex digits to bytes; `None` unless the text is an even number of hex digits. A digest is
/// 64 of them, so base64 (44 characters for 32 bytes) is never mistaken for hex.
fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_rfc_4231_test_case_2() {
        // RFC 4231, test case 2: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            sign_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verifies_hex_base64_and_prefixed_signatures() {
        let body = b"{\"a\":1}";
        let hex = sign_hex(b"k", body);
        assert_eq!(verify(b"k", body, &hex), Ok(()));
        assert_eq!(verify(b"k", body, &hex.to_uppercase()), Ok(()));
        assert_eq!(verify(b"k", body, &format!("sha256={hex}")), Ok(()));
        assert_eq!(verify(b"k", body, &sign_base64(b"k", body)), Ok(()));
        assert!(verify(b"k", b"{}", &hex).is_err());
        assert!(verify(b"other", body, &hex).is_err());
        assert!(verify(b"k", body, "").is_err());
        assert!(verify(b"k", body, "not a signature!").is_err());
        assert!(verify(b"", body, &hex).is_err());
    }

    #[test]
    fn timestamped_signatures_are_bounded_in_time() {
        let signature = sign_timestamped(b"k", 1_700_000_000, b"hi");
        assert_eq!(sign_hex(b"k", b"1700000000.hi"), signature);
        let check = |now| verify_timestamped(b"k", 1_700_000_000, b"hi", &signature, now, 300);
        assert_eq!(check(1_700_000_300), Ok(()));
        assert_eq!(check(1_699_999_700), Ok(()));
        assert!(check(1_700_000_301).unwrap_err().contains("old"));
        assert!(check(1_699_999_699).unwrap_err().contains("future"));
        assert!(
            verify_timestamped(b"k", 1_700_000_001, b"hi", &signature, 1_700_000_000, 300).is_err()
        );
    }
}
