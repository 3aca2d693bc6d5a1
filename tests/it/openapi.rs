//! The OpenAPI document of `belfry serve`: it covers every `/v1` route the server answers, and
//! schemathesis (from PyPI, installed by `tests/openapi/setup.sh` into a venv) fuzzes the
//! server against it: no 5xx, no status, content type or body the document does not describe.
//!
//! The fuzz runs only with `BELFRY_TEST_OPENAPI=1` (which `.ci/run` sets); without it the test
//! checks the document alone and says the fuzz was skipped. `BELFRY_OPENAPI_REPORT=DIR` keeps
//! schemathesis' JUnit report there.

use crate::common::{Backend, world};
use belfry::serve::ServeConfig;
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// What the server routes under `/v1`, as (method, path): each must be in the document.
const ROUTES: &[(&str, &str)] = &[
    ("post", "/v1/events"),
    ("post", "/v1/events/preview"),
    ("get", "/v1/events"),
    ("get", "/v1/events/{id}"),
    ("get", "/v1/notifications/{id}"),
    ("get", "/v1/deliveries"),
    ("get", "/v1/deliveries/{id}"),
    ("get", "/v1/deliveries/{id}/explain"),
    ("post", "/v1/deliveries/{id}/cancel"),
    ("get", "/v1/recipients/{id}/preferences"),
    ("put", "/v1/recipients/{id}/preferences"),
    ("get", "/v1/recipients/{id}/settings"),
    ("patch", "/v1/recipients/{id}/settings"),
    ("get", "/v1/suppressions"),
    ("post", "/v1/suppressions"),
    ("delete", "/v1/suppressions/{id}"),
    ("post", "/v1/signals"),
    ("get", "/v1/plugins"),
    ("post", "/v1/plugins"),
    ("post", "/v1/plugins/replay"),
    ("post", "/v1/inbox/tokens"),
    ("get", "/v1/inbox"),
    ("get", "/v1/inbox/counts"),
    ("get", "/v1/inbox/stream"),
    ("post", "/v1/inbox/read-all"),
    ("post", "/v1/inbox/items/{id}/{action}"),
    ("get", "/v1/tenants"),
    ("post", "/v1/tenants"),
    ("get", "/v1/keys"),
    ("post", "/v1/keys"),
    ("post", "/v1/keys/{id}/revoke"),
    ("get", "/v1/deliveries/{id}/feedback"),
    ("post", "/v1/webhooks/{tenant}/{adapter}"),
    ("post", "/v1/unsubscribe/{token}"),
    ("get", "/v1/unsubscribe/{token}"),
    ("get", "/v1/endpoints"),
    ("post", "/v1/endpoints"),
    ("get", "/v1/endpoints/{id}"),
    ("delete", "/v1/endpoints/{id}"),
    ("get", "/v1/endpoints/{id}/secret"),
    ("get", "/v1/endpoints/{id}/messages"),
    ("post", "/v1/endpoints/{id}/enable"),
    ("post", "/v1/endpoints/{id}/disable"),
    ("post", "/v1/endpoints/{id}/recover"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_document_describes_the_api_and_survives_fuzzing() {
    let w = world(Backend::Sqlite).await;
    let server = belfry::serve::start(
        w.engine.clone(),
        ServeConfig {
            listen: "127.0.0.1:0".parse().unwrap(),
            workers: None,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let base = format!("http://{}", server.addr);
    let doc: Value = reqwest::get(format!("{base}/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    for (method, path) in ROUTES {
        assert!(
            doc["paths"][path][method].is_object(),
            "the document lacks {method} {path}"
        );
    }
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .map(|p| p.as_object().unwrap().len())
        .sum();
    assert_eq!(documented, ROUTES.len(), "a documented route is not served");

    if std::env::var("BELFRY_TEST_OPENAPI").as_deref() != Ok("1") {
        eprintln!("SKIPPED: BELFRY_TEST_OPENAPI is not 1, so schemathesis did not fuzz the API");
        server.shutdown().await.unwrap();
        return;
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openapi");
    let setup = std::process::Command::new("bash")
        .arg(here.join("setup.sh"))
        .status()
        .expect("running tests/openapi/setup.sh");
    assert!(setup.success(), "tests/openapi/setup.sh failed: {setup}");

    // Fuzz with a tenant key: tenant routes answer for real; operator routes 403 and inbox
    // routes 401 (the key is not an inbox token), both documented. Some data first, so ids
    // and pages are not all empty.
    let (_, key) = w.engine.create_key(Some("default"), "fuzz").await.unwrap();
    for i in 0..3 {
        let o = w
            .engine
            .trigger(&belfry::TriggerRequest::new(
                "welcome",
                serde_json::json!({"user": {"id": format!("u{i}"), "email": "a@example.com"}}),
            ))
            .await
            .unwrap();
        w.engine.dispatch_event(&o.event_id).await.unwrap();
    }
    let mut st = tokio::process::Command::new(here.join(".venv/bin/st"));
    st.arg("run")
        .arg(format!("{base}/openapi.json"))
        .args(["--header", &format!("Authorization: Bearer {key}")])
        .args([
            "--checks",
            "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
        ])
        .args(["--max-examples", "25", "--seed", "7", "--workers", "1"])
        .args(["--phases", "examples,coverage,fuzzing"])
        // The stream never ends by itself; its answers are checked in tests/it/http.rs.
        .args(["--exclude-path", "/v1/inbox/stream"])
        .args(["--request-timeout", "10"])
        .kill_on_drop(true);
    if let Ok(dir) = std::env::var("BELFRY_OPENAPI_REPORT") {
        st.args(["--report", "junit", "--report-dir", &dir]);
    }
    let out = tokio::time::timeout(Duration::from_secs(600), st.output())
        .await
        .expect("schemathesis did not finish within 10 minutes")
        .expect("running schemathesis");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "schemathesis found problems ({}):\n{stdout}\n{stderr}",
        out.status
    );
    println!("{stdout}");
    server.shutdown().await.unwrap();
}
