//! Reading a notifier's JSON payload, with errors that name the field: "missing field
//! `user.id`", "field `user` must be an object", "field `customers` must not be empty".
//!
//! Every helper takes the object, the key, and the path to name in an error (`customers[2].id`).
//! A [`PayloadError`] converts into `PlanError::InvalidPayload` with `?`, which the host
//! reports as `invalid_payload` with the message. The first-party notifiers' tests assert
//! several of these messages, so a change to one is a change to what every notifier returns.

use serde_json::{Map, Value};

/// A JSON object: the payload, or a record in it.
pub type Object = Map<String, Value>;

/// What is wrong with a payload, in words that name the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadError(pub String);

impl PayloadError {
    pub fn new(message: impl Into<String>) -> Self {
        PayloadError(message.into())
    }

    pub fn message(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for PayloadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PayloadError {}

impl From<PayloadError> for crate::notifier::PlanError {
    fn from(err: PayloadError) -> Self {
        crate::notifier::PlanError::InvalidPayload(err.0)
    }
}

/// Parses `payload`, which must be a JSON object.
pub fn parse_object(payload: &str) -> Result<Object, PayloadError> {
    match serde_json::from_str::<Value>(payload) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(PayloadError::new("the payload must be a JSON object")),
        Err(err) => Err(PayloadError(format!(
            "the payload is not valid JSON: {err}"
        ))),
    }
}

/// `value` as an object, or an error naming `path`.
pub fn as_object<'a>(value: &'a Value, path: &str) -> Result<&'a Object, PayloadError> {
    match value {
        Value::Object(object) => Ok(object),
        _ => Err(wrong_type(path, "an object")),
    }
}

/// `object[key]` as an object; absent, null or any other type is an error naming `path`.
pub fn required_object<'a>(
    object: &'a Object,
    key: &str,
    path: &str,
) -> Result<&'a Object, PayloadError> {
    match object.get(key) {
        None | Some(Value::Null) => Err(missing(path)),
        Some(value) => as_object(value, path),
    }
}

/// `object[key]` as a string; absent or null is `None`, any other type an error naming `path`.
pub fn optional_string(
    object: &Object,
    key: &str,
    path: &str,
) -> Result<Option<String>, PayloadError> {
    match object.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(wrong_type(path, "a string")),
    }
}

/// Like [`optional_string`], but an empty string is `None` too.
pub fn optional_non_empty_string(
    object: &Object,
    key: &str,
    path: &str,
) -> Result<Option<String>, PayloadError> {
    Ok(optional_string(object, key, path)?.filter(|s| !s.is_empty()))
}

/// `object[key]` as a non-empty string, or an error naming `path`.
pub fn required_string(object: &Object, key: &str, path: &str) -> Result<String, PayloadError> {
    match optional_string(object, key, path)? {
        None => Err(missing(path)),
        Some(s) if s.is_empty() => Err(empty(path)),
        Some(s) => Ok(s),
    }
}

/// `object[key]` as an absolute http(s) URL (see [`is_http_url`]); absent, null or empty is
/// `None`, anything else an error naming `path`.
pub fn optional_http_url(
    object: &Object,
    key: &str,
    path: &str,
) -> Result<Option<String>, PayloadError> {
    let url = optional_non_empty_string(object, key, path)?;
    match url {
        Some(url) if !is_http_url(&url) => Err(wrong_type(path, "an absolute http(s) URL")),
        url => Ok(url),
    }
}

/// Whether `url` is an absolute `http://` or `https://` URL with a host.
pub fn is_http_url(url: &str) -> bool {
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return false;
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host_and_port = authority.rsplit('@').next().unwrap_or("");
    let host = match host_and_port.strip_prefix('[') {
        // An IPv6 literal, `[::1]:8080`.
        Some(literal) => literal.split(']').next().unwrap_or(""),
        None => host_and_port.split(':').next().unwrap_or(""),
    };
    !host.is_empty()
}

/// The non-empty `name` in a recipient's `data` (a JSON object, as the notifiers write it),
/// if there is one; data that is absent or not JSON has none.
pub fn name_from_recipient_data(data: Option<&str>) -> Option<String> {
    let data: Value = serde_json::from_str(data?).ok()?;
    data.get("name")?
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_string)
}

/// "missing field `path`".
pub fn missing(path: &str) -> PayloadError {
    PayloadError(format!("missing field `{path}`"))
}

/// "field `path` must not be empty".
pub fn empty(path: &str) -> PayloadError {
    PayloadError(format!("field `{path}` must not be empty"))
}

/// "field `path` must be `expected`", for example `wrong_type("user", "an object")`.
pub fn wrong_type(path: &str, expected: &str) -> PayloadError {
    PayloadError(format!("field `{path}` must be {expected}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Object {
        match value {
            Value::Object(object) => object,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn parse_object_accepts_only_objects() {
        assert_eq!(parse_object(r#"{"a": 1}"#), Ok(object(json!({"a": 1}))));
        for payload in ["[1, 2]", "\"user\"", "3", "null", "true"] {
            assert_eq!(
                parse_object(payload),
                Err(PayloadError::new("the payload must be a JSON object")),
                "{payload}"
            );
        }
        assert_eq!(
            parse_object("{bad"),
            Err(PayloadError::new(
                "the payload is not valid JSON: key must be a string at line 1 column 2"
            ))
        );
        assert_eq!(
            parse_object(""),
            Err(PayloadError::new(
                "the payload is not valid JSON: EOF while parsing a value at line 1 column 0"
            ))
        );
    }

    #[test]
    fn as_object_names_the_path() {
        let value = json!({"id": "u1"});
        assert_eq!(as_object(&value, "customer"), Ok(&object(value.clone())));
        assert_eq!(
            as_object(&json!(3), "customers[2]"),
            Err(PayloadError::new("field `customers[2]` must be an object"))
        );
        assert_eq!(
            as_object(&Value::Null, "mentioned[0]"),
            Err(PayloadError::new("field `mentioned[0]` must be an object"))
        );
    }

    #[test]
    fn required_object_wants_an_object() {
        let payload = object(json!({"user": {"id": "u1"}, "null": null, "list": [], "text": "u"}));
        assert_eq!(
            required_object(&payload, "user", "user"),
            Ok(&object(json!({"id": "u1"})))
        );
        assert_eq!(
            required_object(&payload, "absent", "user"),
            Err(PayloadError::new("missing field `user`"))
        );
        assert_eq!(
            required_object(&payload, "null", "user"),
            Err(PayloadError::new("missing field `user`"))
        );
        for key in ["list", "text"] {
            assert_eq!(
                required_object(&payload, key, "user"),
                Err(PayloadError::new("field `user` must be an object"))
            );
        }
    }

    #[test]
    fn optional_string_allows_absent_and_null() {
        let user = object(json!({"name": "Ann", "empty": "", "null": null, "id": 7}));
        assert_eq!(
            optional_string(&user, "name", "user.name"),
            Ok(Some("Ann".to_string()))
        );
        assert_eq!(
            optional_string(&user, "empty", "user.empty"),
            Ok(Some(String::new()))
        );
        assert_eq!(optional_string(&user, "null", "user.null"), Ok(None));
        assert_eq!(optional_string(&user, "absent", "user.absent"), Ok(None));
        assert_eq!(
            optional_string(&user, "id", "user.id"),
            Err(PayloadError::new("field `user.id` must be a string"))
        );
    }

    #[test]
    fn optional_non_empty_string_drops_empty_strings() {
        let user = object(json!({"email": "a@b.c", "phone": "", "name": false}));
        assert_eq!(
            optional_non_empty_string(&user, "email", "user.email"),
            Ok(Some("a@b.c".to_string()))
        );
        assert_eq!(
            optional_non_empty_string(&user, "phone", "user.phone"),
            Ok(None)
        );
        assert_eq!(optional_non_empty_string(&user, "at", "at"), Ok(None));
        assert_eq!(
            optional_non_empty_string(&user, "name", "customers[1].name"),
            Err(PayloadError::new(
                "field `customers[1].name` must be a string"
            ))
        );
    }

    #[test]
    fn required_string_wants_a_non_empty_string() {
        let user = object(json!({"id": "u1", "empty": "", "null": null, "list": ["u1"]}));
        assert_eq!(
            required_string(&user, "id", "user.id"),
            Ok("u1".to_string())
        );
        assert_eq!(
            required_string(&user, "absent", "user.id"),
            Err(PayloadError::new("missing field `user.id`"))
        );
        assert_eq!(
            required_string(&user, "null", "user.id"),
            Err(PayloadError::new("missing field `user.id`"))
        );
        assert_eq!(
            required_string(&user, "empty", "user.id"),
            Err(PayloadError::new("field `user.id` must not be empty"))
        );
        assert_eq!(
            required_string(&user, "list", "user.id"),
            Err(PayloadError::new("field `user.id` must be a string"))
        );
    }

    #[test]
    fn optional_http_url_checks_the_url() {
        let payload = object(json!({
            "ok": "https://example.com/doc",
            "empty": "",
            "null": null,
            "ftp": "ftp://example.com",
            "number": 3,
        }));
        assert_eq!(
            optional_http_url(&payload, "ok", "url"),
            Ok(Some("https://example.com/doc".to_string()))
        );
        assert_eq!(optional_http_url(&payload, "empty", "url"), Ok(None));
        assert_eq!(optional_http_url(&payload, "null", "url"), Ok(None));
        assert_eq!(optional_http_url(&payload, "absent", "url"), Ok(None));
        assert_eq!(
            optional_http_url(&payload, "ftp", "url"),
            Err(PayloadError::new(
                "field `url` must be an absolute http(s) URL"
            ))
        );
        assert_eq!(
            optional_http_url(&payload, "number", "url"),
            Err(PayloadError::new("field `url` must be a string"))
        );
    }

    #[test]
    fn is_http_url_wants_a_scheme_and_a_host() {
        for url in [
            "http://example.com",
            "https://example.com/a/b?c=d#e",
            "HTTPS://EXAMPLE.COM",
            "http://localhost:8080",
            "https://user:pass@example.com/",
            "http://[::1]:8080/x",
            "http://h?q",
        ] {
            assert!(is_http_url(url), "{url}");
        }
        for url in [
            "",
            "example.com",
            "/relative/path",
            "ftp://example.com",
            "mailto:a@b.c",
            "https://",
            "https:///path",
            "http://:8080",
            "http://user@",
            "http://[]:80",
            "https://exa mple.com",
            "https://example.com/\n",
            " https://example.com",
        ] {
            assert!(!is_http_url(url), "{url:?}");
        }
    }

    #[test]
    fn name_from_recipient_data_reads_a_non_empty_name() {
        assert_eq!(
            name_from_recipient_data(Some(r#"{"name": "Ann", "urgent": true}"#)),
            Some("Ann".to_string())
        );
        assert_eq!(name_from_recipient_data(None), None);
        assert_eq!(name_from_recipient_data(Some("not json")), None);
        assert_eq!(name_from_recipient_data(Some(r#"{"name": ""}"#)), None);
        assert_eq!(name_from_recipient_data(Some(r#"{"name": 5}"#)), None);
        assert_eq!(name_from_recipient_data(Some(r#"{"urgent": false}"#)), None);
        assert_eq!(name_from_recipient_data(Some(r#"["Ann"]"#)), None);
    }

    #[test]
    fn messages() {
        assert_eq!(missing("user.id").message(), "missing field `user.id`");
        assert_eq!(
            empty("customers").to_string(),
            "field `customers` must not be empty"
        );
        assert_eq!(
            wrong_type("mentioned[1].urgent", "a boolean").message(),
            "field `mentioned[1].urgent` must be a boolean"
        );
        assert_eq!(
            crate::notifier::PlanError::from(missing("user")),
            crate::notifier::PlanError::InvalidPayload("missing field `user`".to_string())
        );
    }
}
