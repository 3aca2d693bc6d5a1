//! The shared fake provider server (`common::provider`) answers as scripted — status, headers,
//! body, delay — then with its default, and records what it was sent, so that the tests which
//! rely on it test the engine and not the fake.

use crate::common::provider::{Answer, Provider};
use serde_json::json;
use std::time::{Duration, Instant};

#[tokio::test]
async fn answers_as_scripted_then_by_default_and_records_every_request() {
    let provider = Provider::start(Answer::json(500, json!({"error": "default"}))).await;
    provider
        .then(Answer::text(200, "ok"))
        .then(Answer::status(429, "slow down").header("retry-after", "7"))
        .then(Answer::status(204, "").after(Duration::from_millis(300)));
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://{}{path}", provider.authority());

    let ok = client.post(url("/a")).body("one").send().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["content-type"], "text/plain");
    assert_eq!(ok.text().await.unwrap(), "ok");

    let limited = client.get(url("/b?x=1")).send().await.unwrap();
    assert_eq!(limited.status(), 429);
    assert_eq!(limited.headers()["retry-after"], "7");
    assert_eq!(
        limited.headers()["content-type"],
        "text/plain; charset=utf-8"
    );

    let started = Instant::now();
    let slow = client.put(url("/c")).send().await.unwrap();
    assert_eq!(slow.status(), 204);
    assert!(slow.headers().get("content-type").is_none());
    assert!(started.elapsed() >= Duration::from_millis(300));

    let fallback = client
        .post(url("/d"))
        .json(&json!({"n": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(fallback.status(), 500);
    assert_eq!(fallback.headers()["content-type"], "application/json");
    assert_eq!(
        fallback.json::<serde_json::Value>().await.unwrap(),
        json!({"error": "default"})
    );

    let seen = provider.wait_for(4).await;
    assert_eq!(provider.calls(), 4);
    let summary: Vec<(&str, &str)> = seen
        .iter()
        .map(|r| (r.method.as_str(), r.path.as_str()))
        .collect();
    assert_eq!(
        summary,
        [("POST", "/a"), ("GET", "/b"), ("PUT", "/c"), ("POST", "/d")]
    );
    assert_eq!(&seen[0].body[..], b"one");
    assert_eq!(seen[3].json(), json!({"n": 4}));
    assert_eq!(seen[3].header("content-type"), Some("application/json"));
}

#[tokio::test]
async fn issuing_ids_makes_up_a_fresh_id_per_post() {
    let provider = Provider::issuing_ids("sid", "SM").await;
    let client = reqwest::Client::new();
    let url = format!("http://{}/x", provider.authority());
    for n in 1..=2 {
        let body: serde_json::Value = client
            .post(&url)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body, json!({"sid": format!("SM{n}")}));
    }
    assert_eq!(client.get(&url).send().await.unwrap().status(), 405);
}
