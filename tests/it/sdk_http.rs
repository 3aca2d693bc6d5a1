//! The Rust guest SDK's HTTP client, through the host's real `wasi:http`, seen on the wire.
//!
//! The bundled `webhook` adapter (built on `belfry-plugin-sdk`) posts to a plain TCP server on
//! 127.0.0.1 that keeps the raw request: the request must carry a `content-length` matching its
//! body and no chunked transfer encoding (raw `wasi:http` without a length streams the body
//! chunked, which simple servers read as empty), and its Standard Webhooks signature must
//! verify with the reference library over exactly those bytes.

use crate::common::{Backend, SECRET, world_with};
use belfry::host::content::{Channel, Content, Recipient};
use belfry::host::plugins::{OutgoingMessage, Reuse};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The raw request one connection to `listener` sends (head and body as the client framed
/// them), after answering it 200 with `x-message-id: m-1`.
async fn one_raw_request(listener: tokio::net::TcpListener) -> (String, Vec<u8>) {
    let (mut conn, _) = listener.accept().await.unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let (head, body_start) = loop {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(
            n > 0,
            "the connection closed before the request's head ended"
        );
        raw.extend_from_slice(&buf[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            break (String::from_utf8(raw[..end].to_vec()).unwrap(), end + 4);
        }
    };
    let header = |name: &str| {
        head.lines().skip(1).find_map(|line| {
            let (n, v) = line.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    };
    // Read the body as the client framed it: by its length, or chunked up to the last chunk.
    let done = |raw: &[u8]| match header("content-length") {
        Some(length) => raw.len() - body_start >= length.parse::<usize>().unwrap(),
        None => raw.ends_with(b"0\r\n\r\n"),
    };
    while !done(&raw) {
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "the connection closed before the body ended");
        raw.extend_from_slice(&buf[..n]);
    }
    conn.write_all(
        b"HTTP/1.1 200 OK\r\nx-message-id: m-1\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    (head, raw[body_start..].to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sdk_sends_a_content_length_and_a_body_that_verifies() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let server = tokio::spawn(one_raw_request(listener));
    let w = world_with(Backend::Sqlite, |c| {
        c.plugin_config.insert(
            "webhook".into(),
            BTreeMap::from([
                ("url".into(), url.clone()),
                ("secret".into(), SECRET.to_string()),
            ]),
        );
    })
    .await;
    let adapter = w
        .engine
        .registry()
        .adapter_for(Channel::Webhook)
        .cloned()
        .expect("the bundled webhook adapter serves webhook");
    let message = OutgoingMessage {
        delivery_id: "dlv-1".into(),
        notification_id: "ntf-1".into(),
        tenant: "default".into(),
        idempotency_key: "belfry-dlv-1".into(),
        attempt: 1,
        channel: Channel::Webhook,
        recipient: Recipient {
            id: "u1".into(),
            email: None,
            phone: None,
            data: None,
        },
        // Bigger than one 4 KiB write, so the body goes out in several pieces.
        content: Content::Webhook {
            body: serde_json::json!({ "order_id": "A-1", "note": "x".repeat(10_000) }).to_string(),
        },
        headers: Vec::new(),
    };
    let receipt = tokio::time::timeout(
        Duration::from_secs(30),
        w.engine.runtime().send(&adapter, &message, Reuse::Fresh),
    )
    .await
    .expect("the adapter answers within 30 s")
    .expect("the call itself succeeds");
    assert_eq!(receipt, Ok("m-1".to_string()));

    let (head, body) = tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("the server saw the request")
        .unwrap();
    assert!(head.starts_with("POST /hook HTTP/1.1\r\n"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(
        !lower.contains("transfer-encoding"),
        "the body must not be chunked:\n{head}"
    );
    assert!(
        lower.contains(&format!("\r\ncontent-length: {}\r\n", body.len()))
            || lower.ends_with(&format!("\r\ncontent-length: {}", body.len())),
        "content-length must say the body's {} bytes:\n{head}",
        body.len()
    );
    let envelope: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(envelope["data"]["order_id"], "A-1");

    let mut headers = axum::http::HeaderMap::new();
    for line in head.lines().skip(1) {
        let (name, value) = line.split_once(':').unwrap();
        headers.insert(
            axum::http::HeaderName::from_bytes(name.trim().as_bytes()).unwrap(),
            value.trim().parse().unwrap(),
        );
    }
    assert_eq!(headers["webhook-id"], "belfry-dlv-1");
    standardwebhooks::Webhook::new(SECRET)
        .unwrap()
        .verify(&body, &headers)
        .expect("the signature verifies over the bytes received");
}
