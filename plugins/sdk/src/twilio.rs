//! Twilio's request validation (`X-Twilio-Signature`), which signs its status callbacks.
//!
//! Twilio signs the URL it called, not the body bytes: base64(HMAC-SHA1(auth token, the full
//! URL followed by every POST parameter's name and value, sorted by name)). So the callback's
//! form must be decoded to check it, and the URL must be the one Twilio saw (the host hands
//! adapters the public URL for this reason). Twilio's callbacks carry no timestamp; replays
//! are the host's to drop, by event id.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The header Twilio puts its signature in.
pub const SIGNATURE_HEADER: &str = "X-Twilio-Signature";

/// The `X-Twilio-Signature` value for a request to `url` with POST parameters `params`
/// (decoded, in any order).
pub fn sign(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    STANDARD.encode(keyed(auth_token, url, params).finalize().into_bytes())
}

/// Checks `signature` (the header's value) for a request to `url` with POST parameters
/// `params`, comparing in constant time.
///
/// Twilio's own libraries also accept the URL with its default port added or removed
/// (`https://h/x` and `https://h:443/x`), because what Twilio signs depends on how the URL
/// was configured while proxies and hosts normalise the port away; so does this.
pub fn verify(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    signature: &str,
) -> Result<(), String> {
    if auth_token.is_empty() {
        return Err("the twilio auth token is empty".to_string());
    }
    let signature = signature.trim();
    if signature.is_empty() {
        return Err(format!("the {SIGNATURE_HEADER} header is empty"));
    }
    let Ok(signature) = STANDARD.decode(signature) else {
        return Err(format!("the {SIGNATURE_HEADER} header is not base64"));
    };
    let mut urls = vec![url.to_string()];
    urls.extend(toggle_default_port(url));
    if urls.iter().any(|candidate| {
        keyed(auth_token, candidate, params)
            .verify_slice(&signature)
            .is_ok()
    }) {
        Ok(())
    } else {
        Err(format!(
            "the {SIGNATURE_HEADER} header does not match the URL and parameters"
        ))
    }
}

/// HMAC-SHA1 keyed with the auth token over the URL and the sorted parameters.
fn keyed(auth_token: &str, url: &str, params: &[(String, String)]) -> Hmac<Sha1> {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    // By name, as Twilio sorts; by value within a repeated name, as its libraries do.
    sorted.sort();
    let mut mac =
        Hmac::<Sha1>::new_from_slice(auth_token.as_bytes()).expect("HMAC takes a key of any size");
    mac.update(url.as_bytes());
    for (name, value) in sorted {
        mac.update(name.as_bytes());
        mac.update(value.as_bytes());
    }
    mac
}

/// `url` with its scheme's default port removed when present, or added when absent; `None`
/// for a URL that is neither http(s) nor has a default port to toggle.
fn toggle_default_port(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return None,
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    // A port follows the last `:` after any IPv6 literal's closing bracket.
    let host_start = authority.rfind(['@', ']']).map_or(0, |at| at + 1);
    let authority = match authority[host_start..].rfind(':') {
        Some(colon) => {
            let colon = host_start + colon;
            if &authority[colon + 1..] != default_port {
                return None;
            }
            authority[..colon].to_string()
        }
        None => format!("{authority}:{default_port}"),
    };
    Some(format!("{scheme}://{authority}{tail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect()
    }

    const DOCS_URL: &str = "https://mycompany.com/myapp.php?foo=1&bar=2";

    /// The worked example in Twilio's webhook security docs (auth token `12345`), in the two
    /// versions the docs have printed; each signature checked with Python's `hmac` too:
    /// `base64(hmac.new(b"12345", url + "".join(k + p[k] for k in sorted(p)), sha1))`.
    fn docs_params(caller: &str) -> Vec<(String, String)> {
        // Out of order on purpose: the signature sorts them.
        pairs(&[
            ("To", "+18005551212"),
            ("Digits", "1234"),
            ("From", caller),
            ("CallSid", "CA1234567890ABCDE"),
            ("Caller", caller),
        ])
    }

    #[test]
    fn matches_twilios_documented_vectors() {
        let current = docs_params("+14158675310");
        assert_eq!(
            sign("12345", DOCS_URL, &current),
            "GvWf1cFY/Q7PnoempGyD5oXAezc="
        );
        assert_eq!(
            verify("12345", DOCS_URL, &current, "GvWf1cFY/Q7PnoempGyD5oXAezc="),
            Ok(())
        );
        let older = docs_params("+12349013030");
        assert_eq!(
            sign("12345", DOCS_URL, &older),
            "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
        );
        assert_eq!(
            verify("12345", DOCS_URL, &older, " 0/KCTR6DLpKmkAf8muzZqo1nDgQ= "),
            Ok(())
        );
    }

    #[test]
    fn rejects_tampering_and_wrong_keys() {
        let params = docs_params("+14158675310");
        let good = "GvWf1cFY/Q7PnoempGyD5oXAezc=";
        let mut tampered = params.clone();
        tampered[1].1 = "9999".to_string();
        assert!(verify("12345", DOCS_URL, &tampered, good).is_err());
        assert!(verify("12345", "https://mycompany.com/myapp.php", &params, good).is_err());
        assert!(verify("54321", DOCS_URL, &params, good).is_err());
        assert!(verify("12345", DOCS_URL, &params, "GvWf1cFY/Q7PnoempGyD5oXAezd=").is_err());
        assert!(verify("12345", DOCS_URL, &params, "not base64!").is_err());
        assert!(verify("12345", DOCS_URL, &params, "").is_err());
        assert!(verify("", DOCS_URL, &params, good).is_err());
        let mut extra = params.clone();
        extra.push(("Extra".to_string(), String::new()));
        // An empty parameter still adds its name to what is signed.
        assert!(verify("12345", DOCS_URL, &extra, good).is_err());
    }

    #[test]
    fn accepts_the_url_with_or_without_its_default_port() {
        let params = pairs(&[("MessageSid", "SM1"), ("MessageStatus", "delivered")]);
        let signature = sign("tok", "https://hooks.example.com/x?y=1", &params);
        assert!(
            verify(
                "tok",
                "https://hooks.example.com:443/x?y=1",
                &params,
                &signature
            )
            .is_ok()
        );
        let signature = sign("tok", "http://127.0.0.1:80/cb", &params);
        assert!(verify("tok", "http://127.0.0.1/cb", &params, &signature).is_ok());
        // Another port is another URL.
        let signature = sign("tok", "https://hooks.example.com/x", &params);
        assert!(
            verify(
                "tok",
                "https://hooks.example.com:8443/x",
                &params,
                &signature
            )
            .is_err()
        );
    }

    #[test]
    fn toggles_only_default_ports() {
        assert_eq!(
            toggle_default_port("https://h/x").as_deref(),
            Some("https://h:443/x")
        );
        assert_eq!(
            toggle_default_port("https://h:443?q").as_deref(),
            Some("https://h?q")
        );
        assert_eq!(
            toggle_default_port("http://[::1]:80/").as_deref(),
            Some("http://[::1]/")
        );
        assert_eq!(
            toggle_default_port("http://[::1]/").as_deref(),
            Some("http://[::1]:80/")
        );
        assert_eq!(toggle_default_port("https://h:8443/x"), None);
        assert_eq!(toggle_default_port("ftp://h/x"), None);
        assert_eq!(toggle_default_port("not a url"), None);
    }
}
