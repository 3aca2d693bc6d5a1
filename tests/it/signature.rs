//! The webhook adapter's signing code, compiled natively, against the Standard Webhooks
//! reference vector (the same file is compiled into the WASM adapter).

#[path = "../../plugins/sdk/src/standard_webhooks.rs"]
mod standard_webhooks;

#[test]
fn standard_webhooks_reference_vector() {
    let sig = standard_webhooks::sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        br#"{"test": 2432232314}"#,
    )
    .unwrap();
    assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

#[test]
fn the_reference_library_accepts_our_signature() {
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let body = br#"{"hello": "world"}"#;
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let sig = standard_webhooks::sign(secret, "msg_1", ts, body).unwrap();
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("webhook-id", "msg_1".parse().unwrap());
    headers.insert("webhook-timestamp", ts.to_string().parse().unwrap());
    headers.insert("webhook-signature", sig.parse().unwrap());
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(body, &headers)
        .unwrap();
    assert!(standard_webhooks::sign("whsec_!!!", "m", 1, b"").is_err());
}
