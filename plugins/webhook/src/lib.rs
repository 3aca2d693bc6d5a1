//! The `webhook` channel adapter: POSTs every message as JSON to the operator's endpoint,
//! signed per the Standard Webhooks spec.
//!
//! Config keys (resolved by the host): `url` — the endpoint, `http://` or `https://`;
//! `secret` — the signing secret, `whsec_<base64>`. Its authority must be in the manifest's
//! `capabilities.http` allow-list, or the host refuses the request.

mod signature;

wit_bindgen::generate!({
    world: "channel-adapter",
    path: "../../wit/plugin@0.1.0",
});

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use belfry::plugin::config;
use belfry::plugin::types::{Channel, Content};
use exports::belfry::plugin::delivery::{
    FeedbackEvent, Guest, Message, RateLimit, Receipt, SendError, WebhookError, WebhookRequest,
};
use serde_json::{Value, json};
use wasi::http::outgoing_handler;
use wasi::http::types::{
    ErrorCode, Fields, IncomingResponse, Method, OutgoingBody, OutgoingRequest, RequestOptions,
    Scheme,
};
use wasi::io::streams::StreamError;

/// `Retry-After` when a 429 names none (or names an HTTP date).
const DEFAULT_RETRY_AFTER_SECS: u64 = 60;
/// How much of an error response's body goes into a permanent error, in bytes.
const EXCERPT_BYTES: usize = 200;
/// The largest write `blocking-write-and-flush` accepts.
const WRITE_CHUNK: usize = 4096;

struct WebhookAdapter;

impl Guest for WebhookAdapter {
    fn send(message: Message) -> Result<Receipt, SendError> {
        let url = config::get("url").ok_or_else(|| {
            SendError::Permanent(
                "missing config key `url`: the webhook adapter needs the endpoint URL".to_string(),
            )
        })?;
        let secret = config::get("secret").ok_or_else(|| {
            SendError::Permanent(
                "missing config key `secret`: the webhook adapter needs a `whsec_...` signing secret"
                    .to_string(),
            )
        })?;
        let target = Target::parse(&url).map_err(SendError::Permanent)?;

        let Content::Webhook(content) = &message.content else {
            return Err(SendError::Permanent(format!(
                "the webhook adapter cannot send {} content",
                content_kind(&message.content)
            )));
        };
        let data: Value = serde_json::from_str(&content.body).map_err(|err| {
            SendError::Permanent(format!("the webhook body is not valid JSON: {err}"))
        })?;
        let body = json!({
            "type": "belfry.notification",
            "delivery_id": message.delivery_id,
            "notification_id": message.notification_id,
            "tenant": message.tenant,
            "channel": channel_name(message.channel),
            "attempt": message.attempt,
            "recipient": {
                "id": message.recipient.id,
                "email": message.recipient.email,
                "phone": message.recipient.phone,
            },
            "data": data,
        })
        .to_string();

        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let signature = signature::sign(
            &secret,
            &message.idempotency_key,
            timestamp,
            body.as_bytes(),
        )
        .map_err(|err| SendError::Permanent(format!("config key `secret`: {err}")))?;

        let headers = [
            ("content-type", "application/json".to_string()),
            // A known length rather than chunked encoding: simpler for receivers to verify.
            ("content-length", body.len().to_string()),
            (
                "user-agent",
                format!("belfry-webhook/{}", env!("CARGO_PKG_VERSION")),
            ),
            ("webhook-id", message.idempotency_key.clone()),
            ("webhook-timestamp", timestamp.to_string()),
            ("webhook-signature", signature),
        ];
        let response = post(&target, &headers, body.as_bytes())?;
        response.into_result(&message.idempotency_key)
    }

    fn handle_webhook(_request: WebhookRequest) -> Result<Vec<FeedbackEvent>, WebhookError> {
        Err(WebhookError::Unsupported(
            "webhook adapter receives no provider callbacks".to_string(),
        ))
    }
}

/// Where a URL points, split the way `wasi:http` wants it.
struct Target {
    scheme: Scheme,
    authority: String,
    path_with_query: String,
}

impl Target {
    fn parse(url: &str) -> Result<Self, String> {
        let lower = url.get(..8).unwrap_or(url).to_ascii_lowercase();
        let (scheme, rest) = if lower.starts_with("https://") {
            (Scheme::Https, &url[8..])
        } else if lower.starts_with("http://") {
            (Scheme::Http, &url[7..])
        } else {
            return Err(format!(
                "config key `url` must be an http:// or https:// URL, got {url:?}"
            ));
        };
        let rest = rest.split('#').next().unwrap_or_default();
        let end = rest.find(['/', '?']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if authority.is_empty() || authority.contains('@') {
            return Err(format!(
                "config key `url` must name a host (and no user info), got {url:?}"
            ));
        }
        let path_with_query = match path {
            "" => "/".to_string(),
            p if p.starts_with('?') => format!("/{p}"),
            p => p.to_string(),
        };
        Ok(Target {
            scheme,
            authority: authority.to_string(),
            path_with_query,
        })
    }
}

/// What came back from the endpoint.
struct Response {
    status: u16,
    message_id: Option<String>,
    retry_after: Option<String>,
    excerpt: String,
}

impl Response {
    fn into_result(self, idempotency_key: &str) -> Result<Receipt, SendError> {
        let status = self.status;
        match status {
            200..=299 => Ok(Receipt {
                provider_message_id: self
                    .message_id
                    .filter(|id| !id.is_empty())
                    .unwrap_or_else(|| idempotency_key.to_string()),
            }),
            429 => {
                let secs = self
                    .retry_after
                    .as_deref()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(DEFAULT_RETRY_AFTER_SECS);
                Err(SendError::RateLimited(RateLimit {
                    retry_after_ms: secs.saturating_mul(1000),
                    message: format!("the endpoint answered 429 Too Many Requests{}", self.tail()),
                }))
            }
            408 | 500..=599 => Err(SendError::Transient(format!(
                "the endpoint answered {status}{}",
                self.tail()
            ))),
            400..=499 => Err(SendError::Permanent(format!(
                "the endpoint answered {status}{}",
                self.tail()
            ))),
            _ => Err(SendError::Permanent(format!(
                "the endpoint answered {status} (redirects are not followed){}",
                self.tail()
            ))),
        }
    }

    fn tail(&self) -> String {
        if self.excerpt.is_empty() {
            String::new()
        } else {
            format!(": {}", self.excerpt)
        }
    }
}

/// POSTs `body` and waits for the response head (and the start of an error body).
fn post(target: &Target, headers: &[(&str, String)], body: &[u8]) -> Result<Response, SendError> {
    let entries: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
        .collect();
    let fields = Fields::from_list(&entries)
        .map_err(|err| SendError::Permanent(format!("invalid request header: {err:?}")))?;
    let request = OutgoingRequest::new(fields);
    let invalid = |what: &str| SendError::Permanent(format!("invalid request {what}"));
    request
        .set_method(&Method::Post)
        .map_err(|()| invalid("method"))?;
    request
        .set_scheme(Some(&target.scheme))
        .map_err(|()| invalid("scheme"))?;
    request
        .set_authority(Some(&target.authority))
        .map_err(|()| invalid("authority"))?;
    request
        .set_path_with_query(Some(&target.path_with_query))
        .map_err(|()| invalid("path"))?;
    let outgoing_body = request
        .body()
        .map_err(|()| SendError::Transient("cannot open the request body".to_string()))?;

    let options = RequestOptions::new();
    // Best effort: a host that does not support a timeout says so, and keeps its own.
    let _ = options.set_connect_timeout(Some(Duration::from_secs(10).as_nanos() as u64));
    let _ = options.set_first_byte_timeout(Some(Duration::from_secs(30).as_nanos() as u64));
    let _ = options.set_between_bytes_timeout(Some(Duration::from_secs(30).as_nanos() as u64));

    let future = outgoing_handler::handle(request, Some(options))
        .map_err(|code| transport_error(target, code))?;

    // Stream the body after `handle`, so a body larger than the host's buffer cannot stall.
    let written = write_body(&outgoing_body, body);
    let finished = written.and_then(|()| {
        OutgoingBody::finish(outgoing_body, None)
            .map_err(|code| format!("finishing the request body failed: {code}"))
    });

    let response = loop {
        match future.get() {
            Some(Ok(Ok(response))) => break response,
            Some(Ok(Err(code))) => return Err(transport_error(target, code)),
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
            "POST to {}: {err}",
            target.authority
        )));
    }
    Ok(read_response(&response))
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

fn read_response(response: &IncomingResponse) -> Response {
    let status = response.status();
    let (message_id, retry_after) = {
        let headers = response.headers();
        (
            header(&headers, "x-message-id"),
            header(&headers, "retry-after"),
        )
    };
    let excerpt = if (200..300).contains(&status) {
        String::new()
    } else {
        read_excerpt(response)
    };
    Response {
        status,
        message_id,
        retry_after,
        excerpt,
    }
}

fn header(headers: &Fields, name: &str) -> Option<String> {
    let values = headers.get(name);
    let first = values.first()?;
    String::from_utf8(first.clone())
        .ok()
        .map(|v| v.trim().to_string())
}

/// The first [`EXCERPT_BYTES`] of the response body, as text on one line.
fn read_excerpt(response: &IncomingResponse) -> String {
    let Ok(body) = response.consume() else {
        return String::new();
    };
    let mut bytes = Vec::new();
    if let Ok(stream) = body.stream() {
        while bytes.len() < EXCERPT_BYTES {
            match stream.blocking_read((EXCERPT_BYTES - bytes.len()) as u64) {
                Ok(chunk) => bytes.extend_from_slice(&chunk),
                Err(_) => break,
            }
        }
    }
    drop(body);
    let text = String::from_utf8_lossy(&bytes);
    let mut excerpt: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    excerpt.truncate(excerpt.trim_end().len());
    if bytes.len() >= EXCERPT_BYTES {
        excerpt.push('…');
    }
    excerpt
}

fn transport_error(target: &Target, code: ErrorCode) -> SendError {
    match code {
        ErrorCode::HttpRequestDenied => SendError::Permanent(format!(
            "outgoing HTTP to {} denied by the host: not in the plugin's allow-list",
            target.authority
        )),
        // The host's gate refuses an allowed name that resolves to an internal address:
        // a configuration problem no retry fixes.
        ErrorCode::DestinationIpProhibited => SendError::Permanent(format!(
            "outgoing HTTP to {} denied by the host: it resolves to a prohibited address",
            target.authority
        )),
        other => SendError::Transient(format!("POST to {} failed: {other}", target.authority)),
    }
}

fn stream_error(err: &StreamError) -> String {
    match err {
        StreamError::Closed => "stream closed".to_string(),
        StreamError::LastOperationFailed(io) => io.to_debug_string(),
    }
}

fn channel_name(channel: Channel) -> &'static str {
    match channel {
        Channel::Email => "email",
        Channel::Sms => "sms",
        Channel::Push => "push",
        Channel::Chat => "chat",
        Channel::InApp => "in-app",
        Channel::Webhook => "webhook",
    }
}

fn content_kind(content: &Content) -> &'static str {
    match content {
        Content::Email(_) => "email",
        Content::Sms(_) => "sms",
        Content::Push(_) => "push",
        Content::Chat(_) => "chat",
        Content::InApp(_) => "in-app",
        Content::Webhook(_) => "webhook",
    }
}

export!(WebhookAdapter);
