//! Plugins live everywhere: an upload on one node is in force on every node sharing the
//! database within a second (PostgreSQL: NOTIFY/LISTEN; SQLite: polling), `--plugins DIR
//! --watch` loads changed packages without a restart (a change that fails keeps the previous
//! build in force, reported broken), and work planned on the old build finishes on it.
//!
//! The waits are bounded polls of a few seconds, never timed assertions: the issue's "within a
//! second" is the design (NOTIFY, or a 500 ms poll), and the observed lag is printed.

use crate::common;

use crate::common::Backend;
use crate::common::serve_process::{Server, bundled, log_adapter_as, write_file_plugin};
use belfry::host::plugins::live::LiveConfig;
use belfry::{Engine, TriggerRequest};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Polls `check` every 50 ms until it holds; panics with `what` after `bound`. Returns how long
/// it took.
async fn eventually<F, Fut>(bound: Duration, what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    loop {
        match check().await {
            Ok(()) => return start.elapsed(),
            Err(last) if start.elapsed() >= bound => {
                panic!("{what}: not within {bound:?}; last: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}

/// The version `/v1/plugins` of `server` reports for plugin `name`.
async fn version_on(server: &Server, name: &str) -> Result<String, String> {
    let (status, body) = server.get("/v1/plugins").await;
    if status != 200 {
        return Err(format!("{status} {body}"));
    }
    body["plugins"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .and_then(|p| p["version"].as_str())
        .map(str::to_string)
        .ok_or_else(|| format!("no plugin {name}: {body}"))
}

fn chat_route(body: &Value) -> Option<&Value> {
    body["routes"]
        .as_array()?
        .iter()
        .find(|r| r["channel"] == "chat")
}

/// Two `belfry serve` processes on one database: an adapter uploaded on A is served by B.
async fn an_upload_on_one_node_is_live_on_the_other(b: Backend) {
    let db = common::test_db(b).await;
    let a = Server::start(&db.url, None, db.dir.path(), &[], &["--no-workers"]).await;
    let bnode = Server::start(&db.url, None, db.dir.path(), &[], &["--no-workers"]).await;
    assert_eq!(version_on(&bnode, "log").await.unwrap(), "0.1.0");

    let (wasm, manifest) =
        log_adapter_as("log", "0.9.0", "[\"email\", \"sms\", \"push\", \"chat\"]");
    let (status, body) = a.upload(&manifest, &wasm).await;
    assert_eq!(status, 201, "{body}");
    let lag = eventually(Duration::from_secs(5), "B serves log 0.9.0", || async {
        match version_on(&bnode, "log").await? {
            v if v == "0.9.0" => Ok(()),
            v => Err(format!("log {v}")),
        }
    })
    .await;
    eprintln!("{b:?}: the upload on A was in force on B after {lag:?}");

    // A new adapter declaring chat, uploaded on B: A serves it, and its log says it took
    // chat over.
    let (wasm, manifest) = log_adapter_as("pager", "0.1.0", "[\"chat\"]");
    let (status, body) = bnode.upload(&manifest, &wasm).await;
    assert_eq!(status, 201, "{body}");
    eventually(Duration::from_secs(5), "A routes chat to pager", || async {
        let (_, body) = a.get("/v1/plugins").await;
        match chat_route(&body) {
            Some(r) if r["adapter"] == "pager" && r["reason"] == "declared" => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let said = "chat: pager replaces log (declared by pager, loaded later)";
    eventually(Duration::from_secs(5), "A logs the takeover", || async {
        if a.log().contains(said) {
            Ok(())
        } else {
            Err(a.log())
        }
    })
    .await;
}

/// `--plugins DIR --watch`: a changed package is loaded; a change that does not load is
/// reported broken and the previous build stays in force; a new package folder is loaded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_loads_changed_packages() {
    let db = common::test_db(Backend::Sqlite).await;
    let dir = db.dir.path().join("plugins");
    let (wasm, manifest) = log_adapter_as("discord", "0.1.0", "[\"chat\"]");
    write_file_plugin(&dir, "discord", &wasm, &manifest);
    let server = Server::start(
        &db.url,
        Some(&dir),
        db.dir.path(),
        &["--watch"],
        &["--no-workers"],
    )
    .await;
    assert_eq!(version_on(&server, "discord").await.unwrap(), "0.1.0");

    // A new version of the manifest.
    let (_, manifest) = log_adapter_as("discord", "0.2.0", "[\"chat\"]");
    std::fs::write(dir.join("discord.toml"), &manifest).unwrap();
    let lag = eventually(Duration::from_secs(5), "discord 0.2.0 in force", || async {
        match version_on(&server, "discord").await? {
            v if v == "0.2.0" => Ok(()),
            v => Err(format!("discord {v}")),
        }
    })
    .await;
    eprintln!("the changed package was in force after {lag:?}");

    // A broken change: reported, and 0.2.0 stays in force.
    std::fs::write(dir.join("discord.wasm"), b"not a component").unwrap();
    eventually(
        Duration::from_secs(5),
        "discord reported broken",
        || async {
            let (_, body) = server.get("/v1/plugins").await;
            let broken = body["broken"].as_array().cloned().unwrap_or_default();
            match broken.iter().find(|b| b["name"] == "discord") {
                Some(b)
                    if b["reason"]
                        .as_str()
                        .unwrap_or("")
                        .contains("stays in force") =>
                {
                    Ok(())
                }
                _ => Err(body.to_string()),
            }
        },
    )
    .await;
    assert_eq!(version_on(&server, "discord").await.unwrap(), "0.2.0");
    let (_, body) = server.get("/v1/plugins").await;
    assert_eq!(chat_route(&body).unwrap()["adapter"], "discord", "{body}");

    // Repaired, and a package folder added beside it.
    std::fs::write(dir.join("discord.wasm"), &wasm).unwrap();
    let package = dir.join("pager");
    std::fs::create_dir_all(&package).unwrap();
    let (_, pager) = log_adapter_as("pager", "0.3.0", "[\"chat\"]");
    std::fs::write(package.join("plugin.wasm"), &wasm).unwrap();
    std::fs::write(package.join("manifest.toml"), &pager).unwrap();
    eventually(
        Duration::from_secs(5),
        "pager loaded, nothing broken",
        || async {
            let (_, body) = server.get("/v1/plugins").await;
            let broken = body["broken"].as_array().map_or(0, |b| b.len());
            match chat_route(&body) {
                // `pager/` sorts after `discord.wasm`: loaded later, it takes chat.
                Some(r) if r["adapter"] == "pager" && broken == 0 => Ok(()),
                _ => Err(body.to_string()),
            }
        },
    )
    .await;
    assert_eq!(version_on(&server, "pager").await.unwrap(), "0.3.0");
    assert!(
        server.log().contains("chat: pager replaces discord"),
        "{}",
        server.log()
    );

    // Removed: chat goes back to discord.
    std::fs::remove_dir_all(&package).unwrap();
    eventually(Duration::from_secs(5), "chat back to discord", || async {
        let (_, body) = server.get("/v1/plugins").await;
        match chat_route(&body) {
            Some(r) if r["adapter"] == "discord" => Ok(()),
            _ => Err(body.to_string()),
        }
    })
    .await;
}

// ---- work in flight keeps its builds ------------------------------------------------------

async fn live_engine(db: &common::TestDb, receiver: &belfry::receiver::Receiver) -> Engine {
    let mut config = common::config_for(&db.url, &receiver.url());
    config.live = Some(LiveConfig::default());
    Engine::open(config).await.unwrap()
}

/// Moves a waiting run's wait end, and its wake job, to a second ago.
async fn end_wait(e: &Engine, run_id: &str) {
    let past = belfry::host::store::time_text(chrono::Utc::now() - chrono::Duration::seconds(1));
    sqlx::query("UPDATE workflow_runs SET wait_until = $1 WHERE id = $2")
        .bind(&past)
        .bind(run_id)
        .execute(e.db())
        .await
        .unwrap();
    sqlx::query("UPDATE jobs SET run_at = $1 WHERE kind = 'workflow_wake' AND subject_id = $2")
        .bind(&past)
        .bind(run_id)
        .execute(e.db())
        .await
        .unwrap();
}

/// A task-assigned run (in-app now, email after an hour) started on `e` and dispatched to its
/// wait: its notification id and run id.
async fn waiting_run(e: &Engine, user: &str) -> (String, String) {
    let req = TriggerRequest::new(
        "task-assigned",
        json!({
            "task": {"id": "T-1", "title": "Pinned", "url": "https://tasks.example/T-1"},
            "assignee": {"id": user, "email": format!("{user}@example.com"), "name": "Ada"},
            "assigned_by": {"name": "Grace"},
        }),
    );
    let o = e.trigger(&req).await.unwrap();
    let n = o.notifications[0].id.clone();
    e.dispatch_pending().await.unwrap();
    let r = e.workflow_run(&n).await.unwrap().unwrap();
    assert_eq!(r.status, "waiting", "{r:?}");
    (n, r.id)
}

/// Who sent the notification's email.
async fn email_sent_by(e: &Engine, n: &str) -> (String, String) {
    let x = e.explain(n).await.unwrap();
    let d = x.deliveries.iter().find(|d| d.channel == "email").unwrap();
    (d.status.clone(), d.sent_by.clone().unwrap_or_default())
}

/// A run planned on node A with `log` 0.1.0 still sends with it after `log` 0.9.0 uploaded on
/// node B is in force on A; a run started on A afterwards uses 0.9.0.
async fn work_planned_on_the_old_build_finishes_on_it(b: Backend) {
    let db = common::test_db(b).await;
    let receiver = belfry::receiver::Receiver::start(common::SECRET)
        .await
        .unwrap();
    let a = live_engine(&db, &receiver).await;
    let node_b = live_engine(&db, &receiver).await;
    let (old_n, old_run) = waiting_run(&a, "u1").await;

    let (wasm, manifest) = bundled("log");
    let v9 = manifest.replace("version = \"0.1.0\"", "version = \"0.9.0\"");
    assert_ne!(v9, manifest);
    node_b.load_plugin(wasm, &v9, "test").await.unwrap();
    let lag = eventually(Duration::from_secs(5), "A has log 0.9.0", || async {
        let r = a.registry();
        match r.plugins().iter().find(|p| p.name() == "log") {
            Some(p) if p.manifest().version == "0.9.0" => Ok(()),
            other => Err(format!("{:?}", other.map(|p| p.reference().to_string()))),
        }
    })
    .await;
    eprintln!("{b:?}: B's upload was in force on A after {lag:?}");

    let (new_n, new_run) = waiting_run(&a, "u2").await;
    end_wait(&a, &old_run).await;
    end_wait(&a, &new_run).await;
    a.dispatch_pending().await.unwrap();
    let (status, sent) = email_sent_by(&a, &old_n).await;
    assert_eq!(status, "succeeded");
    assert!(sent.starts_with("log@0.1.0"), "{sent}");
    let (status, sent) = email_sent_by(&a, &new_n).await;
    assert_eq!(status, "succeeded");
    assert!(sent.starts_with("log@0.9.0"), "{sent}");
}

on_both_backends!(
    an_upload_on_one_node_is_live_on_the_other,
    work_planned_on_the_old_build_finishes_on_it,
);
