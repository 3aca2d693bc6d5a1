//! A local webhook receiver on 127.0.0.1: it verifies every request's Standard Webhooks
//! signature with the `standardwebhooks` crate, drops repeats by `webhook-id`, and records
//! what it saw. `belfry demo` sends to it; tests use it as the far end of the webhook adapter.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::post;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// One request as received.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Received {
    pub webhook_id: Option<String>,
    pub verified: bool,
    /// True when a request with the same `webhook-id` was already accepted.
    pub repeat: bool,
    pub body: serde_json::Value,
}

/// How the receiver answers, to exercise the adapter's outcome mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Ok,
    Status(u16),
    /// 429 with `Retry-After: N` seconds.
    RateLimited(u64),
}

#[derive(Clone)]
struct Shared {
    secret: String,
    received: Arc<Mutex<Vec<Received>>>,
    answer: Arc<Mutex<Answer>>,
}

/// A running receiver; stops when dropped.
pub struct Receiver {
    pub addr: SocketAddr,
    shared: Shared,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl Receiver {
    /// Starts on 127.0.0.1 on a free port; `secret` is the `whsec_…` signing secret.
    pub async fn start(secret: &str) -> std::io::Result<Receiver> {
        let shared = Shared {
            secret: secret.to_string(),
            received: Default::default(),
            answer: Arc::new(Mutex::new(Answer::Ok)),
        };
        let app = axum::Router::new()
            .route("/hooks", post(receive))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        Ok(Receiver {
            addr,
            shared,
            _shutdown: tx,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    pub fn answer_with(&self, answer: Answer) {
        *self.shared.answer.lock().unwrap() = answer;
    }
}

async fn receive(
    State(shared): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    let verified = standardwebhooks::Webhook::new(&shared.secret)
        .map(|wh| wh.verify(&body, &headers).is_ok())
        .unwrap_or(false);
    let webhook_id = headers
        .get("webhook-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let answer = *shared.answer.lock().unwrap();
    let mut received = shared.received.lock().unwrap();
    let repeat = webhook_id.is_some()
        && received
            .iter()
            .any(|r| r.verified && !r.repeat && r.webhook_id == webhook_id);
    received.push(Received {
        webhook_id: webhook_id.clone(),
        verified,
        repeat,
        body: serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
    });
    let n = received.len();
    drop(received);
    if !verified {
        return (StatusCode::UNAUTHORIZED, HeaderMap::new(), "bad signature").into_response();
    }
    match answer {
        Answer::Ok => {
            let mut h = HeaderMap::new();
            h.insert("x-message-id", format!("rcv-{n}").parse().unwrap());
            (StatusCode::OK, h, "ok").into_response()
        }
        Answer::Status(code) => (
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            HeaderMap::new(),
            "answering as told",
        )
            .into_response(),
        Answer::RateLimited(secs) => {
            let mut h = HeaderMap::new();
            h.insert("retry-after", secs.to_string().parse().unwrap());
            (StatusCode::TOO_MANY_REQUESTS, h, "slow down").into_response()
        }
    }
}
