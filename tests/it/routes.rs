//! Routes you can see: which adapter sends each channel, and why (`default`, `declared`,
//! `route`), and which renderer each notifier uses — the same in `belfry plugin list` (text and
//! `--json`), `GET /v1/plugins` and the console, and told in the log when an adapter takes a
//! channel over, whether it came from the plugin directory or an upload.
//!
//! Before, loading a `discord` adapter declaring `chat` silently took chat from `log`, while
//! all three views still showed `log` serving chat (they listed each adapter's manifest
//! channels, not the routes in force).

use crate::common::serve_process::{
    Server, bundled, log_adapter_as, run_ok, text, write_file_plugin,
};
use serde_json::Value;
use std::path::Path;
use std::time::Duration;

/// A plugin directory: `discord` (the log component) declaring chat, a second renderer
/// `fancy` (the templates component), and `welcome` asking for `fancy` in its manifest.
fn plugins_dir(root: &Path) -> std::path::PathBuf {
    let dir = root.join("plugins");
    let (wasm, manifest) = log_adapter_as("discord", "0.1.0", "[\"chat\"]");
    write_file_plugin(&dir, "discord", &wasm, &manifest);
    let (wasm, manifest) = bundled("templates");
    let fancy = manifest.replace("name = \"templates\"", "name = \"fancy\"");
    assert_ne!(fancy, manifest);
    write_file_plugin(&dir, "fancy", wasm, &fancy);
    let (wasm, manifest) = bundled("welcome");
    let welcome = format!("{manifest}\nrenderer = \"fancy\"\n");
    write_file_plugin(&dir, "welcome", wasm, &welcome);
    dir
}

/// The route of `channel` in a list of routes (`/v1/plugins`' `routes`).
fn route<'a>(routes: &'a Value, channel: &str) -> &'a Value {
    routes
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["channel"] == channel)
        .unwrap_or_else(|| panic!("no route for {channel} in {routes}"))
}

fn replaced(route: &Value) -> Vec<(String, String)> {
    route["replaced"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["adapter"].as_str().unwrap().to_string(),
                d["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn entry<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no plugin {name} in {list}"))
}

const TAKEOVER: &str = "chat: discord replaces log (declared by discord, loaded later)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_taken_over_shows_the_same_in_every_view_and_says_why() {
    let root = tempfile::tempdir().unwrap();
    let dir = plugins_dir(root.path());
    let db = format!("sqlite://{}", root.path().join("routes.db").display());

    // ---- belfry plugin list --json ----
    let out = run_ok(&db, Some(&dir), &["--json", "plugin", "list"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let discord = entry(&list, "discord");
    let chat = route(&discord["routes"], "chat");
    assert_eq!(chat["adapter"], "discord", "{discord}");
    assert_eq!(chat["reason"], "declared", "{chat}");
    assert_eq!(replaced(chat), [("log".into(), "default".into())]);
    let log = entry(&list, "log");
    let log_serves: Vec<&str> = log["routes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["channel"].as_str().unwrap())
        .collect();
    assert!(
        !log_serves.contains(&"chat"),
        "log still serves chat: {log}"
    );
    assert!(log_serves.contains(&"email"), "{log}");
    assert_eq!(route(&log["routes"], "email")["reason"], "default");
    // Renderers per notifier: welcome names fancy; the others get the default, templates.
    assert_eq!(entry(&list, "welcome")["renderer"]["renderer"], "fancy");
    assert_eq!(entry(&list, "welcome")["renderer"]["reason"], "manifest");
    assert_eq!(entry(&list, "comment")["renderer"]["renderer"], "templates");
    assert_eq!(entry(&list, "comment")["renderer"]["reason"], "templates");

    // ---- belfry plugin list (text) ----
    let out = run_ok(&db, Some(&dir), &["plugin", "list"]);
    let table = text(&out.stdout);
    assert!(table.contains(TAKEOVER), "{table}");
    let log_line = table.lines().find(|l| l.starts_with("log ")).unwrap();
    assert!(
        log_line.contains("chat (not serving: discord)"),
        "{log_line}"
    );
    let welcome_line = table.lines().find(|l| l.starts_with("welcome ")).unwrap();
    assert!(welcome_line.contains("via fancy"), "{welcome_line}");

    // ---- the operator's --route wins, and says what it replaced ----
    let out = run_ok(
        &db,
        Some(&dir),
        &["--json", "--route", "chat=log", "plugin", "list"],
    );
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let chat = route(&entry(&list, "log")["routes"], "chat");
    assert_eq!(chat["reason"], "route");
    assert_eq!(replaced(chat), [("discord".into(), "declared".into())]);
    // --renderer changes the default, not a notifier's own choice.
    let out = run_ok(
        &db,
        Some(&dir),
        &["--json", "--renderer", "fancy", "plugin", "list"],
    );
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(entry(&list, "comment")["renderer"]["renderer"], "fancy");
    assert_eq!(entry(&list, "comment")["renderer"]["reason"], "operator");
    assert_eq!(entry(&list, "welcome")["renderer"]["reason"], "manifest");

    // ---- GET /v1/plugins, and the log of `belfry serve` ----
    let server = Server::start(&db, Some(&dir), root.path(), &[], &["--no-workers"]).await;
    let (status, body) = server.get("/v1/plugins").await;
    assert_eq!(status, 200, "{body}");
    let chat = route(&body["routes"], "chat");
    assert_eq!(chat["adapter"], "discord", "{body}");
    assert_eq!(chat["reason"], "declared");
    assert_eq!(replaced(chat), [("log".into(), "default".into())]);
    assert_eq!(route(&body["routes"], "email")["adapter"], "log");
    let welcome = body["renderers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["notifier"] == "welcome")
        .unwrap();
    assert_eq!(welcome["renderer"], "fancy", "{welcome}");
    assert_eq!(welcome["reason"], "manifest");
    assert!(
        server.log().contains(TAKEOVER),
        "the takeover was not logged: {}",
        server.log()
    );

    // ---- the console draws the routes and renderers from the same answer ----
    let console = server
        .http
        .get(format!("{}/", server.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        console.contains("body.routes") && console.contains("body.renderers"),
        "the console ignores the routes"
    );

    // ---- an upload taking chat over says so too ----
    let (wasm, manifest) = log_adapter_as("pager", "0.1.0", "[\"chat\"]");
    let (status, body) = server.upload(&manifest, &wasm).await;
    assert_eq!(status, 201, "{body}");
    let (_, body) = server.get("/v1/plugins").await;
    let chat = route(&body["routes"], "chat");
    assert_eq!(chat["adapter"], "pager", "{body}");
    assert_eq!(chat["reason"], "declared");
    assert_eq!(
        replaced(chat),
        [
            ("log".into(), "default".into()),
            ("discord".into(), "declared".into())
        ]
    );
    // The warning is written as the registry is replaced, before the upload answers; a
    // short bounded wait covers the log file's buffering only.
    let said = "chat: pager replaces discord (declared by pager, loaded later)";
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !server.log().contains(said) && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(server.log().contains(said), "{}", server.log());
    // `plugin list` on the same database shows the upload in force, as the server does.
    let out = run_ok(&db, Some(&dir), &["--json", "plugin", "list"]);
    let list: Value = serde_json::from_slice(&out.stdout).unwrap();
    let chat = route(&entry(&list, "pager")["routes"], "chat");
    assert_eq!(chat["adapter"], "pager", "{list}");
    assert_eq!(chat["reason"], "declared");

    // ---- a notifier naming a renderer that is not loaded is refused at upload ----
    let (wasm, manifest) = bundled("comment");
    let orphan = format!("{manifest}\nrenderer = \"nowhere\"\n");
    let (status, body) = server.upload(&orphan, wasm).await;
    assert_eq!(status, 409, "{body}");
    let message = body.to_string();
    assert!(message.contains("nowhere"), "{message}");

    // ---- in a real browser, when the suite runs one ----
    console_in_chromium(&server).await;
}

/// `tests/browser/routes.mjs` against the server: the console's routes table shows pager
/// serving chat, declared, having replaced log and discord; welcome renders with fancy.
async fn console_in_chromium(server: &Server) {
    if std::env::var("BELFRY_TEST_BROWSER").as_deref() != Ok("1") {
        eprintln!("SKIPPED: BELFRY_TEST_BROWSER is not 1, so the console was not drawn");
        return;
    }
    let here = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    let setup = std::process::Command::new("bash")
        .arg(here.join("setup.sh"))
        .status()
        .unwrap();
    assert!(setup.success(), "tests/browser/setup.sh failed: {setup}");
    let mut node = tokio::process::Command::new("node");
    node.arg(here.join("routes.mjs"))
        .env("BELFRY_URL", &server.base)
        .env("BELFRY_KEY", &server.admin)
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(120), node.output())
        .await
        .expect("the browser scenario did not finish within 120 s")
        .unwrap();
    assert!(
        out.status.success() && text(&out.stdout).contains("routes browser test passed"),
        "the browser scenario failed ({}):\n{}\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}
