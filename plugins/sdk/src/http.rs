//! Outgoing HTTP over `wasi:http/outgoing-handler`, and what a provider's answer means for a
//! retry.
//!
//! Every request carries a `content-length` (a body is never sent chunked: simple servers
//! read a chunked body as empty), waits at most its [`Timeouts`], and reads at most
//! [`MAX_BODY_BYTES`] of the response. [`Response::check`] maps the status onto the
//! contract's `send-error`: 2xx is success, 429 is `rate-limited` (after `Retry-After`), 408
//! and 5xx are `transient`, every other status `permanent`.
//!
//! The host gates every request by the plugin manifest's `capabilities.http`: a denied
//! authority (or one resolving to a prohibited address) is a [`SendError::Permanent`] saying
//! the host denied it, every other transport error a [`SendError::Transient`]. Redirects are not
//! followed.

use std::borrow::Cow;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingResponse, Method as WasiMethod, OutgoingBody, OutgoingRequest,
    RequestOptions, Scheme,
};
use wasi::io::streams::StreamError;

use crate::adapter::{RateLimit, SendError};

/// `Retry-After` when a 429 names none (or names an HTTP date).
pub const DEFAULT_RETRY_AFTER_SECS: u64 = 60;
/// How much of an error response's body goes into a failure's message, in bytes.
pub const EXCERPT_BYTES: usize = 200;
/// How much of a response body is read; the rest is left unread.
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// The largest write `blocking-write-and-flush` accepts.
const WRITE_CHUNK: usize = 4096;

/// How long a request waits, per phase; a phase that runs out is a transient failure. The
/// host's own plugin call limit (`limits.timeout_ms` in the manifest) still bounds the whole
/// call, so keep these below it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Until the connection is open.
    pub connect: Duration,
    /// From the request sent to the response's first byte.
    pub first_byte: Duration,
    /// Between two chunks of the response.
    pub between_bytes: Duration,
}

impl Default for Timeouts {
    /// 10 s to connect, 30 s to the first byte, 30 s between bytes.
    fn default() -> Self {
        Timeouts {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(30),
            between_bytes: Duration::from_secs(30),
        }
    }
}

impl Timeouts {
    /// `total` for every phase.
    pub fn all(total: Duration) -> Self {
        Timeouts {
            connect: total,
            first_byte: total,
            between_bytes: total,
        }
    }
}

/// Where a URL points, split the way `wasi:http` wants it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    https: bool,
    authority: String,
    path_with_query: String,
}

impl Target {
    /// Parses an `http://` or `https://` URL; user info and the fragment are refused and
    /// dropped respectively, an empty path is `/`.
    pub fn parse(url: &str) -> Result<Self, String> {
        let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
        let (https, rest) = if lower.starts_with("https://") {
            (true, &url[8..])
        } else if lower.starts_with("http://") {
            (false, &url[7..])
        } else {
            return Err(format!("must be an http:// or https:// URL, got {url:?}"));
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if authority.is_empty() || authority.contains('@') {
            return Err(format!("must name a host (and no user info), got {url:?}"));
        }
        let path_with_query = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        Ok(Target {
            https,
            authority: authority.to_string(),
            path_with_query,
        })
    }

    /// `host[:port]`, as in the URL.
    pub fn authority(&self) -> &str {
        &self.authority
    }

    /// The path and query, starting with `/`.
    pub fn path_with_query(&self) -> &str {
        &self.path_with_query
    }

    pub fn is_https(&self) -> bool {
        self.https
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Post,
    Put,
    Patch,
    Delete,
}

impl Method {
    fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

/// One outgoing request, built up and then [sent](Request::send).
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    target: Target,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeouts: Timeouts,
    max_body_bytes: usize,
}

impl Request {
    pub fn new(method: Method, target: Target) -> Self {
        Request {
            method,
            target,
            headers: Vec::new(),
            body: Vec::new(),
            timeouts: Timeouts::default(),
            max_body_bytes: MAX_BODY_BYTES,
        }
    }

    pub fn get(target: Target) -> Self {
        Request::new(Method::Get, target)
    }

    /// Replaces the [default timeouts](Timeouts::default).
    pub fn timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Reads at most `bytes` of the response body (default [`MAX_BODY_BYTES`]); the rest is
    /// left unread.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body_bytes = bytes;
        self
    }

    pub fn post(target: Target) -> Self {
        Request::new(Method::Post, target)
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_ascii_lowercase(), value.into()));
        self
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    /// `Authorization: Basic base64(<user>:<password>)`.
    pub fn basic_auth(self, user: &str, password: &str) -> Self {
        let credentials = STANDARD.encode(format!("{user}:{password}"));
        self.header("authorization", format!("Basic {credentials}"))
    }

    /// `value` as the body, `Content-Type: application/json`.
    pub fn json(self, value: &Value) -> Self {
        self.body("application/json", value.to_string().into_bytes())
    }

    /// `pairs` as an `application/x-www-form-urlencoded` body.
    pub fn form(self, pairs: &[(&str, &str)]) -> Self {
        self.body(
            "application/x-www-form-urlencoded",
            crate::form::encode(pairs).into_bytes(),
        )
    }

    pub fn body(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.body = body;
        self.header("content-type", content_type)
    }

    pub fn target(&self) -> &Target {
        &self.target
    }

    /// The headers as they will be sent (names lowercased, `content-length` added by `send`).
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    pub fn body_bytes(&self) -> &[u8] {
        &self.body
    }

    /// The headers exactly as [`send`](Self::send) hands them to the host: the request's own,
    /// then `content-length` with the body's length unless one was set. A known length rather
    /// than chunked encoding is what every provider expects, and what a plain server reads.
    pub fn wire_headers(&self) -> Vec<(String, Vec<u8>)> {
        let mut entries: Vec<(String, Vec<u8>)> = self
            .headers
            .iter()
            .map(|(name, value)| (name.clone(), value.as_bytes().to_vec()))
            .collect();
        if !self
            .headers
            .iter()
            .any(|(name, _)| name == "content-length")
        {
            entries.push((
                "content-length".to_string(),
                self.body.len().to_string().into_bytes(),
            ));
        }
        entries
    }

    /// Sends the request and reads the response: status, headers and up to
    /// [`MAX_BODY_BYTES`] of body. Any status is an `Ok`; see [`Response::check`].
    pub fn send(&self) -> Result<Response, SendError> {
        let entries = self.wire_headers();
        let fields = Fields::from_list(&entries)
            .map_err(|err| SendError::Permanent(format!("invalid request header: {err:?}")))?;
        let request = OutgoingRequest::new(fields);
        let invalid = |what: &str| SendError::Permanent(format!("invalid request {what}"));
        let method = match self.method {
            Method::Get => WasiMethod::Get,
            Method::Post => WasiMethod::Post,
            Method::Put => WasiMethod::Put,
            Method::Patch => WasiMethod::Patch,
            Method::Delete => WasiMethod::Delete,
        };
        let scheme = if self.target.https {
            Scheme::Https
        } else {
            Scheme::Http
        };
        request
            .set_method(&method)
            .map_err(|()| invalid("method"))?;
        request
            .set_scheme(Some(&scheme))
            .map_err(|()| invalid("scheme"))?;
        request
            .set_authority(Some(&self.target.authority))
            .map_err(|()| invalid("authority"))?;
        request
            .set_path_with_query(Some(&self.target.path_with_query))
            .map_err(|()| invalid("path"))?;
        let outgoing_body = request
            .body()
            .map_err(|()| SendError::Transient("cannot open the request body".to_string()))?;

        let options = RequestOptions::new();
        // Best effort: a host that does not support a timeout says so, and keeps its own.
        let _ = options.set_connect_timeout(Some(nanos(self.timeouts.connect)));
        let _ = options.set_first_byte_timeout(Some(nanos(self.timeouts.first_byte)));
        let _ = options.set_between_bytes_timeout(Some(nanos(self.timeouts.between_bytes)));

        let future = outgoing_handler::handle(request, Some(options))
            .map_err(|code| self.transport_failure(code))?;

        // Stream the body after `handle`, so a body larger than the host's buffer cannot stall.
        let finished = write_body(&outgoing_body, &self.body).and_then(|()| {
            OutgoingBody::finish(outgoing_body, None)
                .map_err(|code| format!("finishing the request body failed: {code}"))
        });

        let response = loop {
            match future.get() {
                Some(Ok(Ok(response))) => break response,
                Some(Ok(Err(code))) => return Err(self.transport_failure(code)),
                Some(Err(())) => {
                    return Err(SendError::Transient(
                        "the response was already taken".to_string(),
                    ));
                }
                None => future.subscribe().block(),
            }
        };
        if let Err(err) = finished {
            return Err(SendError::Transient(format!(
                "{} to {}: {err}",
                self.method.as_str(),
                self.target.authority
            )));
        }
        Ok(read_response(&response, self.max_body_bytes))
    }

    fn transport_failure(&self, code: ErrorCode) -> SendError {
        let authority = &self.target.authority;
        match code {
            ErrorCode::HttpRequestDenied => SendError::Permanent(format!(
                "outgoing HTTP to {authority} denied by the host: not in the plugin's allow-list"
            )),
            // The host's gate refuses an allowed name that resolves to an internal address:
            // a configuration problem no retry fixes.
            ErrorCode::DestinationIpProhibited => SendError::Permanent(format!(
                "outgoing HTTP to {authority} denied by the host: it resolves to a prohibited address"
            )),
            other => SendError::Transient(format!(
                "{} to {authority} failed: {other}",
                self.method.as_str()
            )),
        }
    }
}

fn nanos(duration: Duration) -> u64 {
    duration.as_nanos() as u64
}

fn write_body(outgoing_body: &OutgoingBody, body: &[u8]) -> Result<(), String> {
    let stream = outgoing_body
        .write()
        .map_err(|()| "cannot open the request body stream".to_string())?;
    for chunk in body.chunks(WRITE_CHUNK) {
        stream
            .blocking_write_and_flush(chunk)
            .map_err(|err| format!("writing the request body failed: {}", stream_error(&err)))?;
    }
    Ok(())
}

fn read_response(response: &IncomingResponse, max_body_bytes: usize) -> Response {
    let status = response.status();
    let headers = response
        .headers()
        .entries()
        .into_iter()
        .filter_map(|(name, value)| {
            let value = String::from_utf8(value).ok()?;
            Some((name.to_ascii_lowercase(), value.trim().to_string()))
        })
        .collect();
    let mut body = Vec::new();
    // The stream is a child of the body: it is dropped first (bindings drop in reverse).
    if let Ok(incoming) = response.consume()
        && let Ok(stream) = incoming.stream()
    {
        while body.len() < max_body_bytes {
            match stream.blocking_read((max_body_bytes - body.len()) as u64) {
                Ok(chunk) => body.extend_from_slice(&chunk),
                Err(_) => break,
            }
        }
    }
    Response {
        status,
        headers,
        body,
    }
}

fn stream_error(err: &StreamError) -> String {
    match err {
        StreamError::Closed => "stream closed".to_string(),
        StreamError::LastOperationFailed(io) => io.to_debug_string(),
    }
}

/// A provider's answer: status, headers (names lowercased) and the start of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// At most [`MAX_BODY_BYTES`] (or the request's [`Request::max_body_bytes`]).
    pub body: Vec<u8>,
}

impl Response {
    /// A response made by hand: what the adapters' unit tests classify without a network.
    pub fn from_parts(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
        }
    }

    /// The first value of header `name` (any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        crate::standard_webhooks::header(&self.headers, name)
    }

    pub fn text(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// The body parsed as JSON, when it is.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The body on one line, at most [`EXCERPT_BYTES`] bytes.
    pub fn excerpt(&self) -> String {
        excerpt(&self.text())
    }

    pub fn verdict(&self) -> Verdict {
        classify(self.status, self.header("retry-after"))
    }

    /// `Ok(self)` on a 2xx, else the failure its status means; `who` names the other side in
    /// the message ("resend answered 422: ..."), which carries the body's [excerpt](Self::excerpt).
    pub fn check(self, who: &str) -> Result<Response, SendError> {
        self.check_with(who, Response::excerpt)
    }

    /// Like [`check`](Self::check), with `detail` saying what the body means.
    pub fn check_with(
        self,
        who: &str,
        detail: impl FnOnce(&Response) -> String,
    ) -> Result<Response, SendError> {
        let verdict = self.verdict();
        if verdict == Verdict::Success {
            return Ok(self);
        }
        let detail = detail(&self);
        let tail = if detail.is_empty() {
            String::new()
        } else {
            format!(": {detail}")
        };
        let status = self.status;
        Err(match verdict {
            Verdict::Success => unreachable!("handled above"),
            Verdict::RateLimited { retry_after_secs } => SendError::RateLimited(RateLimit {
                retry_after_ms: retry_after_secs.saturating_mul(1000),
                message: format!("{who} answered 429 Too Many Requests{tail}"),
            }),
            Verdict::Transient => SendError::Transient(format!("{who} answered {status}{tail}")),
            Verdict::Permanent if (300..400).contains(&status) => SendError::Permanent(format!(
                "{who} answered {status} (redirects are not followed){tail}"
            )),
            Verdict::Permanent => SendError::Permanent(format!("{who} answered {status}{tail}")),
        })
    }

    /// The string field `field` of a JSON body, e.g. the provider's message id in a 2xx; its
    /// absence is permanent (the provider is not speaking the API the adapter knows).
    pub fn json_string(&self, who: &str, field: &str) -> Result<String, SendError> {
        self.json()
            .as_ref()
            .and_then(|body| body.get(field))
            .and_then(Value::as_str)
            .filter(|value| !value.is_empty())
            .map(str::to_string)
            .ok_or_else(|| {
                SendError::Permanent(format!(
                    "{who} answered {} without a string `{field}` in its JSON body: {}",
                    self.status,
                    self.excerpt()
                ))
            })
    }
}

/// What a status code means for the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// 2xx.
    Success,
    /// 429, with its `Retry-After` in seconds ([`DEFAULT_RETRY_AFTER_SECS`] when absent or
    /// not a number of seconds).
    RateLimited { retry_after_secs: u64 },
    /// 408 and 5xx.
    Transient,
    /// Every other status: other 4xx, and 1xx/3xx (redirects are not followed).
    Permanent,
}

pub fn classify(status: u16, retry_after: Option<&str>) -> Verdict {
    match status {
        200..=299 => Verdict::Success,
        429 => Verdict::RateLimited {
            retry_after_secs: retry_after
                .and_then(|value| value.trim().parse::<u64>().ok())
                .unwrap_or(DEFAULT_RETRY_AFTER_SECS),
        },
        408 | 500..=599 => Verdict::Transient,
        _ => Verdict::Permanent,
    }
}

/// `text` on one line (control characters as spaces), cut to at most [`EXCERPT_BYTES`] bytes
/// on a character boundary, `…` marking a cut.
pub fn excerpt(text: &str) -> String {
    let line: String = text
        .trim()
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if line.len() <= EXCERPT_BYTES {
        return line;
    }
    let ellipsis = '…';
    let mut end = EXCERPT_BYTES - ellipsis.len_utf8();
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = line[..end].trim_end().to_string();
    cut.push(ellipsis);
    cut
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response::from_parts(status, headers, body)
    }

    #[test]
    fn targets_split_urls() {
        let t =
            Target::parse("HTTPS://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json").unwrap();
        assert!(t.is_https());
        assert_eq!(t.authority(), "api.twilio.com");
        assert_eq!(
            t.path_with_query(),
            "/2010-04-01/Accounts/AC1/Messages.json"
        );
        let t = Target::parse("http://127.0.0.1:9/?a=b#frag").unwrap();
        assert!(!t.is_https());
        assert_eq!(t.authority(), "127.0.0.1:9");
        assert_eq!(t.path_with_query(), "/?a=b");
        assert_eq!(
            Target::parse("http://h?x=1").unwrap().path_with_query(),
            "/?x=1"
        );
        assert_eq!(Target::parse("http://h").unwrap().path_with_query(), "/");
        assert!(Target::parse("ftp://h/").is_err());
        assert!(Target::parse("https://user:pw@h/").is_err());
        assert!(Target::parse("https:///path").is_err());
    }

    #[test]
    fn statuses_classify_per_the_contract() {
        assert_eq!(classify(200, None), Verdict::Success);
        assert_eq!(classify(204, None), Verdict::Success);
        assert_eq!(
            classify(429, Some(" 7 ")),
            Verdict::RateLimited {
                retry_after_secs: 7
            }
        );
        assert_eq!(
            classify(429, Some("Wed, 21 Oct 2015 07:28:00 GMT")),
            Verdict::RateLimited {
                retry_after_secs: 60
            }
        );
        assert_eq!(
            classify(429, None),
            Verdict::RateLimited {
                retry_after_secs: 60
            }
        );
        assert_eq!(classify(408, None), Verdict::Transient);
        assert_eq!(classify(500, None), Verdict::Transient);
        assert_eq!(classify(503, None), Verdict::Transient);
        assert_eq!(classify(400, None), Verdict::Permanent);
        assert_eq!(classify(404, None), Verdict::Permanent);
        assert_eq!(classify(301, None), Verdict::Permanent);
    }

    #[test]
    fn check_builds_failures_with_an_excerpt() {
        assert!(response(201, &[], "{}").check("resend").is_ok());
        assert_eq!(
            response(429, &[("retry-after", "3")], "slow down").check("slack"),
            Err(SendError::RateLimited(RateLimit {
                retry_after_ms: 3000,
                message: "slack answered 429 Too Many Requests: slow down".to_string()
            }))
        );
        assert_eq!(
            response(502, &[], "").check("ntfy"),
            Err(SendError::Transient("ntfy answered 502".to_string()))
        );
        assert_eq!(
            response(404, &[], "channel_not_found\n").check("slack"),
            Err(SendError::Permanent(
                "slack answered 404: channel_not_found".to_string()
            ))
        );
        assert_eq!(
            response(302, &[], "").check("the endpoint"),
            Err(SendError::Permanent(
                "the endpoint answered 302 (redirects are not followed)".to_string()
            ))
        );
        assert_eq!(
            response(400, &[], "x").check_with("twilio", |_| "twilio error 21211: bad".into()),
            Err(SendError::Permanent(
                "twilio answered 400: twilio error 21211: bad".to_string()
            ))
        );
    }

    #[test]
    fn excerpts_are_bounded_and_on_one_line() {
        assert_eq!(excerpt("a\r\nb\tc"), "a  b c");
        let long = "é".repeat(300);
        let cut = excerpt(&long);
        assert!(cut.len() <= EXCERPT_BYTES, "{}", cut.len());
        assert!(cut.ends_with('…'));
        assert_eq!(excerpt(&"x".repeat(200)).len(), 200);
    }

    #[test]
    fn json_fields_read_the_receipt() {
        let ok = response(200, &[], r#"{"id":"49a3999c-0ce1-4ea6-ab68-afcd6dc2e794"}"#);
        assert_eq!(
            ok.json_string("resend", "id").unwrap(),
            "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794"
        );
        assert!(matches!(
            response(200, &[], "ok").json_string("resend", "id"),
            Err(SendError::Permanent(m)) if m.contains("`id`")
        ));
    }

    #[test]
    fn requests_carry_auth_and_bodies() {
        let target = Target::parse("https://api.twilio.com/x").unwrap();
        let request = Request::post(target)
            .basic_auth("AC1", "tok")
            .form(&[("To", "+1 555"), ("Body", "a&b")])
            .header("I-Twilio-Idempotency-Token", "k");
        assert_eq!(
            request.headers(),
            [
                (
                    "authorization".to_string(),
                    "Basic QUMxOnRvaw==".to_string()
                ),
                (
                    "content-type".to_string(),
                    "application/x-www-form-urlencoded".to_string()
                ),
                ("i-twilio-idempotency-token".to_string(), "k".to_string()),
            ]
        );
        assert_eq!(request.body_bytes(), b"To=%2B1+555&Body=a%26b");
    }

    #[test]
    fn every_request_says_its_content_length() {
        let target = Target::parse("http://127.0.0.1:9/hook").unwrap();
        let request = Request::post(target.clone()).json(&serde_json::json!({"a": "é"}));
        let wire = request.wire_headers();
        assert_eq!(
            wire.last(),
            Some(&("content-length".to_string(), b"10".to_vec())),
            "{wire:?}"
        );
        let empty = Request::get(target.clone()).wire_headers();
        assert_eq!(empty, [("content-length".to_string(), b"0".to_vec())]);
        let own = Request::post(target)
            .header("Content-Length", "3")
            .body("text/plain", b"abc".to_vec())
            .wire_headers();
        assert_eq!(
            own.iter().filter(|(n, _)| n == "content-length").count(),
            1,
            "{own:?}"
        );
    }
}
