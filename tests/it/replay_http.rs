//! `POST /v1/plugins/replay` against a real `belfry serve`: recorded `welcome` events run
//! through a candidate package archive (the bundled `welcome` with its email subject edited),
//! answered with the report; the same build finds nothing; a tenant key is refused, and so
//! are a body that is no archive, a bad query and an adapter, each with a 4xx naming it.
//! Nothing is recorded or put in force by a replay.

use crate::common::serve_process::{Server, run_ok};
use belfry::host::plugins::package::Package;
use serde_json::{Value, json};

/// The bundled `welcome` as a package archive, its email subject template replaced by
/// `subject` when given.
pub(crate) fn welcome_archive(subject: Option<&str>) -> Vec<u8> {
    let bundled = belfry::BUNDLED
        .iter()
        .find(|b| b.name == "welcome")
        .expect("welcome is bundled");
    let assets = bundled.assets.iter().map(|(path, bytes)| {
        let bytes = match subject {
            Some(s) if *path == "templates/welcome/email/subject.j2" => s.as_bytes().to_vec(),
            _ => bytes.to_vec(),
        };
        (path.to_string(), bytes)
    });
    Package {
        manifest: bundled.manifest.to_string(),
        component: bundled.wasm.to_vec(),
        assets: belfry::host::plugins::assets::Assets::from_entries(assets).unwrap(),
    }
    .to_archive()
}

/// The bundled `log` adapter as a package archive.
fn log_archive() -> Vec<u8> {
    let bundled = belfry::BUNDLED.iter().find(|b| b.name == "log").unwrap();
    Package {
        manifest: bundled.manifest.to_string(),
        component: bundled.wasm.to_vec(),
        assets: Default::default(),
    }
    .to_archive()
}

async fn replay(server: &Server, key: &str, query: &str, body: Vec<u8>) -> (u16, Value) {
    let res = server
        .http
        .post(format!("{}/v1/plugins/replay{query}", server.base))
        .bearer_auth(key)
        .header("content-type", "application/octet-stream")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_a_candidate_archive_for_an_admin_and_refuses_bad_input() {
    let root = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", root.path().join("replay.db").display());
    let server = Server::start(&db, None, root.path(), &[], &[]).await;
    let out = run_ok(
        &db,
        None,
        &[
            "--json", "keys", "create", "--tenant", "acme", "--name", "t",
        ],
    );
    let tenant_key = serde_json::from_slice::<Value>(&out.stdout).unwrap()["secret"]
        .as_str()
        .unwrap()
        .to_string();
    for (id, email) in [("ana", Some("ana@example.com")), ("bo", None)] {
        let mut user = json!({"id": id});
        if let Some(e) = email {
            user["email"] = json!(e);
        }
        let res = server
            .http
            .post(format!("{}/v1/events", server.base))
            .bearer_auth(&tenant_key)
            .json(&json!({"notifier": "welcome", "payload": {"user": user, "app_name": "Acme"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 201, "{}", res.text().await.unwrap());
    }
    let (_, plugins_before) = server.get("/v1/plugins").await;

    // The same build: two events, nothing changed.
    let (s, same) = replay(&server, &server.admin, "", welcome_archive(None)).await;
    assert_eq!(s, 200, "{same}");
    assert_eq!(
        (&same["events"], &same["changed"], &same["candidate_errors"]),
        (&json!(2), &json!(0), &json!(0)),
        "{same}"
    );

    // An edited subject: only ana's email differs (bo has no address, so no email).
    let candidate = welcome_archive(Some("Hello from {{ app_name }}"));
    let (s, report) = replay(&server, &server.admin, "?since=24h&limit=10", candidate).await;
    assert_eq!(s, 200, "{report}");
    assert_eq!(
        (&report["events"], &report["changed"]),
        (&json!(2), &json!(1))
    );
    assert!(
        report["candidate"]
            .as_str()
            .unwrap()
            .starts_with("welcome@0.1.0#"),
        "{report}"
    );
    let diff = &report["differences"][0];
    assert_eq!(diff["tenant"], "acme");
    let change = &diff["changes"][0];
    assert_eq!(
        (&change["what"], &change["channel"], &change["recipient"]),
        (&json!("content"), &json!("email"), &json!("ana")),
        "{diff}"
    );
    assert_eq!(change["before"]["subject"], "Welcome to Acme");
    assert_eq!(change["after"]["subject"], "Hello from Acme");

    // Filters reach the replay: another tenant has no events.
    let (s, none) = replay(
        &server,
        &server.admin,
        "?tenant=globex",
        welcome_archive(Some("x")),
    )
    .await;
    assert_eq!((s, &none["events"]), (200, &json!(0)), "{none}");

    // A tenant key: 403 before anything is read.
    let (s, body) = replay(&server, &tenant_key, "", welcome_archive(None)).await;
    assert_eq!((s, &body["error"]["code"]), (403, &json!("admin_only")));

    // Not an archive, an empty body: 422 naming the archive.
    for garbage in [b"not a package".to_vec(), Vec::new()] {
        let (s, body) = replay(&server, &server.admin, "", garbage).await;
        assert_eq!(s, 422, "{body}");
        assert_eq!(body["error"]["code"], "package_rejected");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("package archive"),
            "{body}"
        );
    }
    // A bad manifest: 422 saying the plugin does not load.
    let bad = Package {
        manifest: "name = \"welcome\"\nkind = \"notifier\"\n".into(),
        component: b"\0asm".to_vec(),
        assets: Default::default(),
    }
    .to_archive();
    let (s, body) = replay(&server, &server.admin, "", bad).await;
    assert_eq!(
        (s, &body["error"]["code"]),
        (422, &json!("plugin_rejected"))
    );

    // An adapter: nothing to compare, said by the engine.
    let (s, body) = replay(&server, &server.admin, "", log_archive()).await;
    assert_eq!((s, &body["error"]["code"]), (422, &json!("replay_refused")));
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("channel adapter"),
        "{body}"
    );

    // A bad query: 400 naming the parameter.
    for (query, field) in [
        ("?since=yesterday", "since"),
        ("?since=0h", "since"),
        ("?limit=0", "limit"),
        ("?limit=100001", "limit"),
    ] {
        let (s, body) = replay(&server, &server.admin, query, welcome_archive(None)).await;
        assert_eq!(
            (s, &body["error"]["field"]),
            (400, &json!(field)),
            "{query}"
        );
    }
    let (s, _) = replay(&server, &server.admin, "?limit=many", welcome_archive(None)).await;
    assert_eq!(s, 400);
    let (s, body) = replay(
        &server,
        &server.admin,
        "?tenant=no%20such",
        welcome_archive(None),
    )
    .await;
    assert!((400..500).contains(&s), "{s} {body}");
    // A time works as well as a duration, within ten years of now.
    let (s, body) = replay(
        &server,
        &server.admin,
        "?since=1999-01-01T00:00:00Z",
        welcome_archive(None),
    )
    .await;
    assert_eq!(
        (s, &body["error"]["field"]),
        (400, &json!("since")),
        "{body}"
    );
    let an_hour_ago = (chrono::Utc::now() - chrono::TimeDelta::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (s, body) = replay(
        &server,
        &server.admin,
        &format!("?since={an_hour_ago}"),
        welcome_archive(None),
    )
    .await;
    assert_eq!((s, &body["events"]), (200, &json!(2)), "{body}");
    let (s, _) = replay(&server, &server.admin, "?what=1", welcome_archive(None)).await;
    assert_eq!(s, 400);

    // Nothing was put in force or recorded.
    let (_, plugins_after) = server.get("/v1/plugins").await;
    assert_eq!(plugins_before["plugins"], plugins_after["plugins"]);
    let events: Value = server
        .http
        .get(format!("{}/v1/events", server.base))
        .bearer_auth(&tenant_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        events["events"].as_array().map(Vec::len),
        Some(2),
        "{events}"
    );
}
