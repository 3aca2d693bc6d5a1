//! Preview: `belfry trigger --dry-run --render` and `POST /v1/events/preview` show the content
//! each delivery would carry, rendered and validated, writing and sending nothing; a sent
//! delivery's record carries the content it was rendered to.

use crate::common::serve_process::{Server, run_ok};
use serde_json::{Value, json};
use std::process::Command;

fn trigger(database_url: &str, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_belfry"))
        .env("BELFRY_DATABASE_URL", database_url)
        .env_remove("BELFRY_PLUGINS")
        .env_remove("RUST_LOG")
        .args(args)
        .output()
        .unwrap()
}

async fn rows(database_url: &str) -> Vec<i64> {
    let db = belfry::host::store::open(database_url).await.unwrap();
    let mut out = Vec::new();
    for table in ["events", "notifications", "deliveries", "traces", "jobs"] {
        let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&db)
            .await
            .unwrap();
        out.push(n);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_render_shows_content_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("preview.db").display());
    run_ok(&db, None, &["migrate"]);
    let before = rows(&db).await;

    let data = json!({"user": {"id": "ada", "name": "Ada", "email": "ada@example.com"}, "app_name": "Acme"});
    let o = trigger(
        &db,
        &[
            "--json",
            "trigger",
            "welcome",
            "--data",
            &data.to_string(),
            "--dry-run",
            "--render",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    let channels = plan["recipients"][0]["channels"]
        .as_array()
        .unwrap()
        .clone();
    let email = channels
        .iter()
        .find(|c| c["channel"] == "email")
        .expect("an email channel");
    let content = &email["rendered"]["content"];
    assert_eq!(content["channel"], "email", "{email}");
    assert!(
        content["subject"].as_str().is_some_and(|s| !s.is_empty()),
        "{email}"
    );
    assert!(
        email["rendered"]["rendered_by"]
            .as_str()
            .is_some_and(|r| r.starts_with("templates@")),
        "{email}"
    );
    // The same in text: the subject printed under the channel.
    let o = trigger(
        &db,
        &[
            "trigger",
            "welcome",
            "--data",
            &data.to_string(),
            "--dry-run",
            "--render",
        ],
    );
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("subject:"), "{text}");
    assert!(
        text.contains(content["subject"].as_str().unwrap()),
        "{text}"
    );
    assert_eq!(rows(&db).await, before, "a preview wrote rows");

    // Content the channel's contract refuses is shown as the validation failure it would be.
    let injected = json!({
        "order_id": "1043\r\nBcc: everyone@example.com",
        "carrier": "UPS",
        "tracking_url": "https://track.example.com/1043",
        "customer": {"id": "linus", "name": "Linus", "email": "linus@example.com"}
    });
    let o = trigger(
        &db,
        &[
            "--json",
            "trigger",
            "order-shipped",
            "--data",
            &injected.to_string(),
            "--dry-run",
            "--render",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let plan: Value = serde_json::from_slice(&o.stdout).unwrap();
    let email = plan["recipients"][0]["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == "email")
        .cloned()
        .expect("an email channel");
    assert_eq!(email["render_error"]["step"], "validate", "{email}");
    assert_eq!(
        email["render_error"]["reason"], "content_invalid",
        "{email}"
    );
    assert!(email.get("rendered").is_none(), "{email}");
    assert_eq!(rows(&db).await, before, "a preview wrote rows");

    // --render means nothing without --dry-run: refused, naming it.
    let o = trigger(
        &db,
        &[
            "trigger",
            "welcome",
            "--data",
            &data.to_string(),
            "--render",
        ],
    );
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("--dry-run"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

async fn post(server: &Server, key: &str, path: &str, body: &Value) -> reqwest::Response {
    server
        .http
        .post(format!("{}{path}", server.base))
        .bearer_auth(key)
        .json(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preview_over_http_and_a_sent_delivery_carries_its_content() {
    let root = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", root.path().join("preview-http.db").display());
    let server = Server::start(&db, None, root.path(), &[], &[]).await;
    let out = run_ok(
        &db,
        None,
        &[
            "--json", "keys", "create", "--tenant", "acme", "--name", "t",
        ],
    );
    let key = serde_json::from_slice::<Value>(&out.stdout).unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    let body = json!({"notifier": "welcome", "payload": {"user": {"id": "ana", "email": "ana@example.com"}, "app_name": "Acme"}});
    let before = rows(&db).await;
    let res = post(&server, &key, "/v1/events/preview", &body).await;
    assert_eq!(res.status().as_u16(), 200);
    let preview: Value = res.json().await.unwrap();
    let email = preview["recipients"][0]["channels"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["channel"] == "email")
        .cloned()
        .expect("an email channel");
    let subject = email["rendered"]["content"]["subject"]
        .as_str()
        .expect("a rendered subject")
        .to_string();
    assert_eq!(rows(&db).await, before, "a preview wrote rows");

    // A payload that is not an object is a 422 naming it, as for a trigger.
    let res = post(
        &server,
        &key,
        "/v1/events/preview",
        &json!({"notifier": "welcome", "payload": [1]}),
    )
    .await;
    assert_eq!(res.status().as_u16(), 422);

    // Triggered for real and sent by the server's workers: the delivery's record carries the
    // content it was rendered to, the same subject the preview showed.
    let res = post(&server, &key, "/v1/events", &body).await;
    assert_eq!(res.status().as_u16(), 201);
    let outcome: Value = res.json().await.unwrap();
    let delivery = outcome["notifications"][0]["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["channel"] == "email")
        .cloned()
        .expect("an email delivery");
    let id = delivery["id"].as_str().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let res = server
            .http
            .get(format!("{}/v1/deliveries/{id}", server.base))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap();
        let record: Value = res.json().await.unwrap();
        if record["content"].is_object() {
            assert_eq!(record["content"]["subject"], json!(subject), "{record}");
            assert!(record["rendered_by"].as_str().is_some(), "{record}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never rendered: {record} {}",
            server.log()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}
