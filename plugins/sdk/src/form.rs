//! `application/x-www-form-urlencoded` bodies: what Twilio's API takes and its status
//! callbacks send.

/// The pairs encoded in order, `a=1&b=x+y`.
pub fn encode(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// Every pair of a form body, decoded, in the order sent.
pub fn decode(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

/// The first value of `name` in decoded pairs.
pub fn value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_decodes_round_trip() {
        let body = encode(&[("To", "+15555550100"), ("Body", "Hi & bye = 1+1")]);
        assert_eq!(body, "To=%2B15555550100&Body=Hi+%26+bye+%3D+1%2B1");
        let pairs = decode(body.as_bytes());
        assert_eq!(value(&pairs, "Body"), Some("Hi & bye = 1+1"));
        assert_eq!(value(&pairs, "From"), None);
    }
}
