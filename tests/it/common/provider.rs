//! A fake provider API: a real HTTP server on 127.0.0.1 that records every request (any method,
//! any path) and answers each from a script of programmable answers (status, headers, body,
//! delay), then with its default. The adapters' tests talk to it as to Slack, ntfy, Resend or
//! Twilio; the hostile plugins' test counts what reaches it.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::Response;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long [`Provider::wait_for`] waits before it fails the test.
const WAIT: Duration = Duration::from_secs(30);

/// One answer: a status, headers (exactly these), a body, and how long to wait before
/// answering.
#[derive(Clone, Debug)]
pub struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
    delay: Duration,
}

impl Answer {
    /// `body` as `text/plain; charset=utf-8` (as axum sends a string), or no body at all.
    pub fn status(status: u16, body: &str) -> Answer {
        let answer = Answer {
            status,
            headers: Vec::new(),
            body: body.to_string(),
            delay: Duration::ZERO,
        };
        if body.is_empty() {
            answer
        } else {
            answer.header("content-type", "text/plain; charset=utf-8")
        }
    }

    /// `body` as `text/plain`.
    pub fn text(status: u16, body: &str) -> Answer {
        Answer::status(status, body).header("content-type", "text/plain")
    }

    pub fn json(status: u16, body: Value) -> Answer {
        Answer::status(status, &body.to_string()).header("content-type", "application/json")
    }

    /// Sets header `name`, replacing one of that name.
    pub fn header(mut self, name: &str, value: &str) -> Answer {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.to_string()));
        self
    }

    /// Answers only after `delay` (the request is recorded when it arrives).
    pub fn after(mut self, delay: Duration) -> Answer {
        self.delay = delay;
        self
    }
}

/// One request the server received.
#[derive(Clone, Debug)]
pub struct Request {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Request {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The answer when the script is empty, given the request and its number (the first is 1).
type Default = Box<dyn Fn(usize, &Request) -> Answer + Send + Sync>;

struct Inner {
    script: Mutex<VecDeque<Answer>>,
    default: Default,
    requests: Mutex<Vec<Request>>,
    /// The number of requests recorded, for those who wait for one.
    arrived: tokio::sync::watch::Sender<usize>,
}

#[derive(Clone)]
pub struct Provider {
    inner: Arc<Inner>,
    port: u16,
}

impl Provider {
    /// A server that answers `default` whenever its script is empty.
    pub async fn start(default: Answer) -> Provider {
        Provider::start_with(move |_, _| default.clone()).await
    }

    /// A provider API in the way of Resend's and Twilio's: answers each `POST` with a fresh
    /// message id (`{id_field: "PREFIX1"}`, then 2, …), any other method with 405.
    pub async fn issuing_ids(id_field: &'static str, prefix: &'static str) -> Provider {
        Provider::start_with(move |n, request| {
            if request.method == Method::POST {
                Answer::json(200, serde_json::json!({ id_field: format!("{prefix}{n}") }))
            } else {
                Answer::status(405, "")
            }
        })
        .await
    }

    /// A server whose default answer depends on the request and its number (the first is 1).
    pub async fn start_with(
        default: impl Fn(usize, &Request) -> Answer + Send + Sync + 'static,
    ) -> Provider {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let provider = Provider {
            inner: Arc::new(Inner {
                script: Mutex::default(),
                default: Box::new(default),
                requests: Mutex::default(),
                arrived: tokio::sync::watch::Sender::new(0),
            }),
            port: listener.local_addr().unwrap().port(),
        };
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(provider.clone());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        provider
    }

    /// Answers the next request not yet scripted with `answer`.
    pub fn then(&self, answer: Answer) -> &Self {
        self.inner.script.lock().unwrap().push_back(answer);
        self
    }

    pub fn requests(&self) -> Vec<Request> {
        self.inner.requests.lock().unwrap().clone()
    }

    pub fn calls(&self) -> usize {
        self.inner.requests.lock().unwrap().len()
    }

    /// Waits until `n` requests have arrived (failing the test after 30 s) and returns them.
    pub async fn wait_for(&self, n: usize) -> Vec<Request> {
        let mut arrived = self.inner.arrived.subscribe();
        tokio::time::timeout(WAIT, arrived.wait_for(|count| *count >= n))
            .await
            .unwrap_or_else(|_| panic!("{n} requests did not reach the provider within {WAIT:?}"))
            .unwrap();
        self.requests()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`, as a URL's authority and an `allow_http` grant name it.
    pub fn authority(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

async fn answer(
    State(provider): State<Provider>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let request = Request {
        method,
        path: uri.path().to_string(),
        headers,
        body,
    };
    let n = {
        let mut requests = provider.inner.requests.lock().unwrap();
        requests.push(request.clone());
        // Under the lock, so that the count only grows.
        provider.inner.arrived.send_replace(requests.len());
        requests.len()
    };
    let scripted = provider.inner.script.lock().unwrap().pop_front();
    let answer = scripted.unwrap_or_else(|| (provider.inner.default)(n, &request));
    if !answer.delay.is_zero() {
        tokio::time::sleep(answer.delay).await;
    }
    let mut response = Response::builder().status(StatusCode::from_u16(answer.status).unwrap());
    for (name, value) in &answer.headers {
        response = response.header(name, value);
    }
    response.body(Body::from(answer.body)).unwrap()
}
