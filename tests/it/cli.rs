//! The `belfry` binary as a user runs it.

use crate::common;

use crate::common::Backend;
use std::path::Path;
use std::process::{Command, Output};

fn belfry(dir: &Path, args: &[&str]) -> Output {
    belfry_on(&format!("sqlite://{}", dir.join("cli.db").display()), args)
}

fn belfry_on(database_url: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_belfry"))
        .args(args)
        .env("BELFRY_DATABASE_URL", database_url)
        .env(
            "BELFRY_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("belfry-test-cache"),
        )
        .env_remove("BELFRY_PLUGINS")
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

#[test]
fn demo_runs_the_whole_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let o = belfry(dir.path(), &["demo", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let deliveries = v["deliveries"].as_array().unwrap();
    assert!(deliveries.len() >= 8);
    let status = |s: &str| deliveries.iter().filter(|d| d["status"] == s).count();
    assert_eq!(status("failed"), 1, "one delivery fails validation");
    // Alan's quiet hours defer his email and webhook (not his critical security alert); Grace's
    // suppressed phone stops her sms; Ada's mention email waits to see if she reads it in-app.
    assert_eq!(status("deferred"), 3, "{v}");
    assert_eq!(status("suppressed"), 1, "{v}");
    // Three comment emails were held and went out inside one digest email.
    assert_eq!(status("digested"), 3, "{v}");
    assert_eq!(status("succeeded"), deliveries.len() - 8);
    let digest = deliveries
        .iter()
        .find(|d| {
            d["planned_by"]
                .as_str()
                .unwrap()
                .starts_with("belfry digests")
        })
        .unwrap();
    assert_eq!(
        (&digest["channel"], &digest["status"]),
        (&"email".into(), &"succeeded".into())
    );
    let reason = |r: &str| {
        deliveries
            .iter()
            .filter(|d| d["status_reason"] == r)
            .count()
    };
    assert_eq!(
        (
            reason("quiet_hours"),
            reason("address_suppressed"),
            reason("fallback_wait")
        ),
        (2, 1, 1)
    );
    assert!(v["webhooks_received"].as_u64().unwrap() >= 2);
    assert_eq!(v["webhooks_received"], v["webhooks_verified"]);
    let steps = v["steps"].as_array().unwrap();
    assert!(steps.iter().any(|s| s["duplicate"] == true));
    assert!(steps.iter().any(|s| s["rejected"].is_string()));
    assert_eq!(
        v["explanation"]["deliveries"][0]["status_reason"],
        "content_invalid"
    );

    // The readable form prints a table and an explanation.
    let o = belfry(dir.path(), &["demo"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("DELIVERY") && out.contains("content_invalid") && out.contains("timeline:"),
        "{out}"
    );
}

#[test]
fn trigger_then_explain_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let o = belfry(dir.path(), &["migrate"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let data = r#"{"user": {"id": "cli", "name": "Cli", "email": "cli@example.com"}}"#;
    let args = [
        "trigger",
        "welcome",
        "--data",
        data,
        "--idempotency-key",
        "k",
        "--json",
    ];
    let o = belfry(dir.path(), &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let first: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(first["duplicate"], false);
    let deliveries = first["notifications"][0]["deliveries"].as_array().unwrap();
    assert_eq!(deliveries.len(), 2);
    assert!(
        deliveries.iter().all(|d| d["status"] == "succeeded"),
        "{first}"
    );

    let o = belfry(dir.path(), &args);
    let again: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(again["duplicate"], true);
    assert_eq!(again["event_id"], first["event_id"]);

    let id = deliveries[0]["id"].as_str().unwrap();
    let o = belfry(dir.path(), &["explain", id]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(&format!("delivery {id}")) && out.contains("welcome@0.1.0#"),
        "{out}"
    );
    let o = belfry(
        dir.path(),
        &["explain", first["event_id"].as_str().unwrap(), "--json"],
    );
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["subject"], "event");
}

#[test]
fn bad_input_is_one_line_on_stderr_and_a_non_zero_exit() {
    let dir = tempfile::tempdir().unwrap();
    for (args, needle) in [
        (
            vec!["trigger", "welcome", "--data", "{not json"],
            "not valid JSON",
        ),
        (
            vec!["trigger", "nobody", "--data", "{}"],
            "unknown notifier `nobody`",
        ),
        (
            vec!["trigger", "welcome", "--data", r#"{"user": {}}"#],
            "user.id",
        ),
        (vec!["explain", "no-such-id"], "no-such-id"),
        (
            vec!["plugin", "check", "/no/such/plugin.wasm"],
            "/no/such/plugin",
        ),
        (vec!["--database-url", "mysql://x", "migrate"], "mysql://x"),
        (
            vec!["webhooks", "replay", "no-such-receipt"],
            "webhook receipt `no-such-receipt` not found",
        ),
        (
            vec!["--route", "email", "webhooks", "orphans"],
            "write CHANNEL=ADAPTER",
        ),
        (
            vec!["--route", "fax=resend", "webhooks", "orphans"],
            "`fax` is not a channel",
        ),
        (
            vec!["--route", "email=nosuch", "webhooks", "orphans"],
            "no channel-adapter plugin named `nosuch`",
        ),
    ] {
        let o = belfry(dir.path(), &args);
        assert!(!o.status.success(), "{args:?} succeeded");
        let err = stderr(&o);
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: {err}");
        assert!(
            err.starts_with("error: ") && err.contains(needle),
            "{args:?}: {err}"
        );
    }
    // Routing email to a bundled provider adapter is accepted; nothing is waiting yet.
    let o = belfry(
        dir.path(),
        &[
            "--route",
            "email=resend",
            "webhooks",
            "orphans",
            "--tenant",
            "acme",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("no orphan feedback in tenant acme"),
        "{}",
        stdout(&o)
    );
    // The database written by nothing above holds no event.
    let o = belfry(
        dir.path(),
        &[
            "trigger",
            "welcome",
            "--data",
            r#"{"user": {"id": "ok"}}"#,
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn plugin_list_and_check() {
    let dir = tempfile::tempdir().unwrap();
    let o = belfry(dir.path(), &["plugin", "list", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "comment",
            "deploy-finished",
            "log",
            "mention",
            "ntfy",
            "order-shipped",
            "resend",
            "security-alert",
            "slack",
            "smtp",
            "task-assigned",
            "templates",
            "twilio",
            "webhook",
            "welcome"
        ]
    );
    // Every first-party plugin is built for contract 1.0 (the 0.x contracts are loaded side by
    // side in tests/it/contract_versions.rs, from fixtures).
    for p in v.as_array().unwrap() {
        assert_eq!(p["wit"], "1.0.0", "{p}");
    }

    let fixture = Path::new(belfry::FIXTURE_PLUGINS_DIR).join("forbidden-host.wasm");
    let o = belfry(dir.path(), &["plugin", "check", fixture.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("channel-adapter")
            && out.contains("outgoing HTTP to allowed.example.invalid:443"),
        "{out}"
    );

    // A plugins directory adds to (and may override) the bundled plugins.
    let plugins = dir.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    for ext in ["wasm", "toml"] {
        std::fs::copy(
            Path::new(belfry::FIXTURE_PLUGINS_DIR).join(format!("panic.{ext}")),
            plugins.join(format!("panic.{ext}")),
        )
        .unwrap();
    }
    let o = belfry(
        dir.path(),
        &["--plugins", plugins.to_str().unwrap(), "plugin", "list"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("panic"), "{}", stdout(&o));
}

fn json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", stderr(o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

async fn deferring_and_cancelling_through_the_cli(b: Backend) {
    let db = common::test_db(b).await;
    let run = |args: &[&str]| belfry_on(&db.url, args);
    let data = r#"{"user": {"id": "q", "email": "q@example.com"}}"#;
    let planned = json(&run(&[
        "trigger",
        "welcome",
        "--data",
        data,
        "--no-dispatch",
        "--json",
    ]));
    let ids: Vec<&str> = planned["notifications"][0]["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(json(&run(&["queue", "--json"]))["available"], 2);

    let d = json(&run(&[
        "defer",
        ids[0],
        "--until",
        "1h",
        "--reason",
        "maintenance",
        "--json",
    ]));
    assert_eq!(
        (d["status"].as_str(), d["reason"].as_str()),
        (Some("deferred"), Some("maintenance"))
    );
    let d = json(&run(&["cancel", ids[1], "--json"]));
    assert_eq!(d["status"], "cancelled");
    let q = json(&run(&["queue", "--json"]));
    assert_eq!(
        (q["available"].as_i64(), q["deferred"].as_i64()),
        (Some(0), Some(1))
    );
    let out = stdout(&run(&["explain", ids[0]]));
    assert!(
        out.contains("delivery.deferred") && out.contains("maintenance"),
        "{out}"
    );

    // Refusals name what was wrong.
    let o = run(&["cancel", ids[1]]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("is cancelled"), "{}", stderr(&o));
    let o = run(&["defer", ids[0], "--until", "soon", "--reason", "x"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--until `soon`"), "{}", stderr(&o));
}

on_both_backends!(deferring_and_cancelling_through_the_cli);

#[test]
fn policy_inputs_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let o = belfry(dir.path(), args);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        stdout(&o)
    };
    run(&[
        "prefs",
        "set",
        "--recipient",
        "u-1",
        "--channel",
        "email",
        "--disabled",
    ]);
    run(&[
        "prefs",
        "set",
        "--recipient",
        "*",
        "--tenant",
        "acme",
        "--category",
        "orders",
        "--disabled",
    ]);
    let prefs: serde_json::Value =
        serde_json::from_str(&run(&["prefs", "get", "--recipient", "u-1", "--json"])).unwrap();
    assert_eq!(
        prefs,
        serde_json::json!([{"recipient_id": "u-1", "scope": "channel", "target": "email",
                            "enabled": false, "updated_at": prefs[0]["updated_at"]}])
    );
    // Tenant-scoped: acme's default is not the default tenant's.
    let acme = run(&["prefs", "get", "--recipient", "*", "--tenant", "acme"]);
    assert!(
        acme.contains("category") && acme.contains("orders") && acme.contains("disabled"),
        "{acme}"
    );
    let none = run(&["prefs", "get", "--recipient", "*"]);
    assert!(none.contains("no preferences stored"), "{none}");

    let out = run(&[
        "settings",
        "set",
        "--recipient",
        "u-1",
        "--time-zone",
        "Asia/Kolkata",
        "--quiet-start",
        "22:00",
        "--quiet-end",
        "06:59",
        "--cap",
        "sms=3/1h",
        "--cooldown",
        "order-shipped=10m",
        "--severity-floor",
        "high",
        "--json",
    ]);
    let stored: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(stored["time_zone"], "Asia/Kolkata");
    assert_eq!(stored["quiet_start"], 1320);
    assert_eq!(stored["quiet_end"], 419);
    assert_eq!(
        stored["caps"]["sms"],
        serde_json::json!({"max": 3, "window_secs": 3600})
    );
    assert_eq!(stored["cooldowns"]["order-shipped"], 600);
    assert_eq!(stored["severity_floor"], "high");

    // Bad values: a non-zero exit, the field named, and nothing changed.
    for (args, needle) in [
        (vec!["--time-zone", "Mars/Olympus"], "time_zone"),
        (
            vec!["--quiet-start", "1440", "--quiet-end", "60"],
            "quiet_hours.start",
        ),
        (vec!["--cap", "sms=0/1h"], "cap.max"),
        (vec!["--cap", "sms=-2/1h"], "cap.max"),
    ] {
        let mut all = vec!["settings", "set", "--recipient", "u-1"];
        all.extend(args.iter());
        let o = belfry(dir.path(), &all);
        assert!(!o.status.success(), "{all:?} succeeded");
        assert!(stderr(&o).contains(needle), "{all:?}: {}", stderr(&o));
    }
    let got: serde_json::Value =
        serde_json::from_str(&run(&["settings", "get", "--recipient", "u-1", "--json"])).unwrap();
    assert_eq!(got["own"], stored);

    let added: serde_json::Value = serde_json::from_str(&run(&[
        "suppressions",
        "add",
        "--address",
        "Bounced@Example.com",
        "--reason",
        "bounce",
        "--expires",
        "30d",
        "--json",
    ]))
    .unwrap();
    assert_eq!(added["address"], "bounced@example.com");
    let o = belfry(
        dir.path(),
        &[
            "suppressions",
            "add",
            "--address",
            "x@example.com",
            "--reason",
            "spite",
        ],
    );
    assert!(
        !o.status.success() && stderr(&o).contains("reason"),
        "{}",
        stderr(&o)
    );
    let list = run(&["suppressions", "list"]);
    assert!(
        list.contains("address bounced@example.com suppressed (bounce until"),
        "{list}"
    );
    run(&["suppressions", "remove", added["id"].as_str().unwrap()]);
    assert!(run(&["suppressions", "list"]).contains("no suppressions"));

    // A dry run shows the decision and writes nothing.
    let data = r#"{"order_id": "o1", "carrier": "c", "tracking_url": "https://t.example.com",
                   "customer": {"id": "u-1", "email": "u-1@example.com"}}"#;
    let out = run(&["trigger", "order-shipped", "--data", data, "--dry-run"]);
    assert!(
        out.contains("email    would suppress (channel_disabled)"),
        "{out}"
    );
    assert!(
        out.contains("webhook  would suppress (below_severity)"),
        "{out}"
    );
    let out = run(&[
        "trigger",
        "order-shipped",
        "--data",
        data,
        "--dry-run",
        "--severity",
        "critical",
    ]);
    assert!(out.contains("webhook  would send"), "{out}");
    assert!(out.contains("bypassed (critical)"), "{out}");
    let q: serde_json::Value = serde_json::from_str(&run(&["queue", "--json"])).unwrap();
    assert_eq!(q["available"], 0, "a dry run enqueues nothing");
}

/// `belfry inbox`: list a recipient's items and mark one read; the read is what a fallback
/// channel looks at (its own tests are in `tests/it/policy.rs`).
#[test]
fn inbox_list_and_read_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = r#"{"author": "Ada", "document": "Q3 plan", "mentioned": {"id": "u-1", "email": "u-1@example.com"}}"#;
    let o = belfry(
        dir.path(),
        &["trigger", "mention", "--data", data, "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let planned: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let ds = planned["notifications"][0]["deliveries"]
        .as_array()
        .unwrap();
    let status: Vec<(&str, &str)> = ds
        .iter()
        .map(|d| {
            (
                d["channel"].as_str().unwrap(),
                d["status_reason"]
                    .as_str()
                    .unwrap_or(d["status"].as_str().unwrap()),
            )
        })
        .collect();
    assert_eq!(
        status,
        [("email", "fallback_wait"), ("in-app", "succeeded")]
    );

    let o = belfry(
        dir.path(),
        &["inbox", "list", "--recipient", "u-1", "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let items: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(items.as_array().unwrap().len(), 1);
    assert_eq!(items[0]["headline"], "Ada mentioned you in Q3 plan");
    assert_eq!(items[0]["read_at"], serde_json::Value::Null);
    let item = items[0]["id"].as_str().unwrap();

    let o = belfry(dir.path(), &["inbox", "read", item, "--recipient", "u-1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("read 20"), "{}", stdout(&o));

    // Another recipient cannot read it: the error names what was not found.
    let o = belfry(dir.path(), &["inbox", "read", item, "--recipient", "u-2"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(&format!(
            "recipient `u-2` of tenant `default` has no inbox item `{item}`"
        )),
        "{}",
        stderr(&o)
    );
}

/// `belfry digests rules`: publish, republish unchanged, refuse a change to a published
/// version, get, list and match (the precedence itself is tested in `tests/it/digests.rs`).
#[test]
fn digest_rules_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let upsert = |extra: &[&str]| {
        let mut args = vec![
            "digests",
            "rules",
            "upsert",
            "--key",
            "orders",
            "--channel",
            "email",
            "--category",
            "orders",
            "--group-by",
            "category",
        ];
        args.extend_from_slice(extra);
        belfry(dir.path(), &args)
    };
    let o = upsert(&["--version", "1", "--every", "1h"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("published"), "{}", stdout(&o));
    let o = upsert(&["--version", "1", "--every", "1h"]);
    assert!(
        stdout(&o).starts_with("already published"),
        "{}",
        stdout(&o)
    );
    let o = upsert(&["--version", "1", "--every", "30m"]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("cannot change (window)"),
        "{}",
        stderr(&o)
    );
    let o = upsert(&[
        "--version",
        "2",
        "--daily-at",
        "09:00",
        "--zone",
        "Europe/London",
        "--first-now",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = upsert(&[
        "--version",
        "3",
        "--daily-at",
        "09:00",
        "--zone",
        "Mars/Base",
    ]);
    assert!(stderr(&o).contains("window.zone"), "{}", stderr(&o));

    let o = belfry(dir.path(), &["digests", "rules", "get", "orders", "--json"]);
    let rule: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (rule["version"].as_i64(), rule["first_now"].as_bool()),
        (Some(2), Some(true))
    );
    let o = belfry(dir.path(), &["digests", "rules", "list", "--json"]);
    let all: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 2);

    let o = belfry(
        dir.path(),
        &[
            "digests",
            "rules",
            "match",
            "--channel",
            "email",
            "--category",
            "orders",
        ],
    );
    assert!(stdout(&o).contains("orders v2 on email"), "{}", stdout(&o));
    let o = belfry(
        dir.path(),
        &[
            "digests",
            "rules",
            "match",
            "--channel",
            "email",
            "--category",
            "billing",
        ],
    );
    assert!(
        stdout(&o).contains("no digest rule matches"),
        "{}",
        stdout(&o)
    );
}

/// `belfry digests buckets|bucket|emit`: a held comment email waits in its bucket; emitting
/// before the window ends is refused and changes nothing; once the window has ended (moved
/// into the past in the database, rather than waiting an hour) `emit` makes one digest
/// delivery and a second `emit` names the same one.
#[test]
fn digest_buckets_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let o = belfry(
        dir.path(),
        &[
            "digests",
            "rules",
            "upsert",
            "--key",
            "threads",
            "--version",
            "1",
            "--channel",
            "email",
            "--notifier",
            "comment",
            "--group-by",
            "digest_key",
            "--every",
            "1h",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let data = r#"{"thread": {"id": "42", "title": "Q3 plan"}, "author": {"name": "Ada"},
                   "text": "Looks good", "followers": [{"id": "u1", "email": "u1@example.com"}]}"#;
    let o = belfry(
        dir.path(),
        &["trigger", "comment", "--data", data, "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let o = belfry(
        dir.path(),
        &["digests", "buckets", "--status", "open", "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let buckets = v.as_array().unwrap();
    assert_eq!(buckets.len(), 1, "{v}");
    assert_eq!(buckets[0]["group_value"], "thread:42");
    assert_eq!(buckets[0]["items"], 1);
    let id = buckets[0]["id"].as_str().unwrap().to_string();

    let o = belfry(dir.path(), &["digests", "emit", &id]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("is not due"), "{}", stderr(&o));

    let db = dir.path().join("cli.db");
    let past = "2000-01-01T00:00:00.000Z";
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let pool = belfry::host::store::open(&format!("sqlite://{}", db.display()))
            .await
            .unwrap();
        sqlx::query("UPDATE digest_buckets SET window_end = $1 WHERE id = $2")
            .bind(past)
            .bind(&id)
            .execute(&pool)
            .await
            .unwrap();
    });
    let o = belfry(dir.path(), &["digests", "emit", &id]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("emitted 1 item(s)"),
        "{}",
        stdout(&o)
    );
    let o = belfry(dir.path(), &["digests", "emit", &id, "--json"]);
    let again: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(again["outcome"], "already_emitted", "{again}");
    let o = belfry(dir.path(), &["digests", "bucket", &id]);
    let out = stdout(&o);
    assert!(
        out.contains("emitted for u1 on email (rule threads v1, group thread:42)")
            && out.contains(again["digest_delivery_id"].as_str().unwrap()),
        "{out}"
    );
}

#[test]
fn a_workflow_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let data = r#"{"task": {"id": "T-1", "title": "Review"}, "assigned_by": {"name": "Grace"},
                   "assignee": {"id": "u1", "email": "u1@example.com"}}"#;
    let o = belfry(
        dir.path(),
        &["trigger", "task-assigned", "--data", data, "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let notification = v["notifications"][0]["id"].as_str().unwrap().to_string();
    let o = belfry(dir.path(), &["run", &notification, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let run: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(run["status"], "waiting", "{run}");
    assert_eq!(run["step_key"], "email");

    // Another actor's signal moves nothing; the assignee's escalation ends the wait.
    let o = belfry(dir.path(), &["signal", "u2", "task.escalate"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("moved 0 run(s)"));
    let o = belfry(dir.path(), &["signal", "u1", "task.escalate", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(out["runs"][0]["effect"], "resumed", "{out}");
    let o = belfry(dir.path(), &["run", &notification]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("signal_received"), "{text}");
    assert!(text.contains("running"), "{text}");

    let o = belfry(dir.path(), &["signal", "u1", "x", "--payload", "[1]"]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("payload"), "{}", stderr(&o));
}

#[test]
fn endpoints_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| belfry(dir.path(), args);
    // Loopback is refused unless the operator allows it, and the error says how.
    let o = run(&[
        "endpoints",
        "add",
        "http://127.0.0.1:9/hook",
        "--events",
        "delivery.*",
    ]);
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("loopback") && e.contains("endpoint_allow_networks"),
        "{e}"
    );
    let o = run(&[
        "endpoints",
        "add",
        "https://hooks.example.com/x",
        "--events",
        "delivery.sentt",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("`delivery.sentt`"), "{}", stderr(&o));
    let o = run(&[
        "--endpoint-allow-networks",
        "10.0.0.0/33",
        "endpoints",
        "list",
    ]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("10.0.0.0/33"), "{}", stderr(&o));

    let o = run(&[
        "--endpoint-allow-networks",
        "127.0.0.1",
        "--json",
        "endpoints",
        "add",
        "http://127.0.0.1:9/hook",
        "--events",
        "delivery.*",
        "--events",
        "inbox.read",
        "--tenant",
        "acme",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let created = json(&o);
    let id = created["id"].as_str().unwrap().to_string();
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    assert_eq!(
        created["events"],
        serde_json::json!(["delivery.*", "inbox.read"])
    );

    let o = run(&["--json", "endpoints", "list", "--tenant", "acme"]);
    assert_eq!(json(&o).as_array().unwrap().len(), 1);
    let o = run(&["endpoints", "list"]);
    assert!(
        stdout(&o).contains("no endpoints"),
        "the default tenant has none"
    );
    let o = run(&["endpoints", "secret", &id]);
    assert_eq!(stdout(&o).trim(), created["secret"].as_str().unwrap());
    let o = run(&["endpoints", "disable", &id]);
    assert!(stdout(&o).contains("disabled by hand"), "{}", stdout(&o));
    let o = run(&["--json", "endpoints", "enable", &id]);
    assert_eq!(json(&o)["enabled"], true);
    let o = run(&["endpoints", "messages", &id]);
    assert!(stdout(&o).contains("no messages"), "{}", stdout(&o));
    let o = run(&["endpoints", "events"]);
    assert!(stdout(&o).lines().any(|l| l == "delivery.bounced"));

    // `belfry trigger` runs its event to the end, lifecycle webhooks included: a one-shot
    // endpoint on 127.0.0.1 (answering 204) receives the signed `delivery.sent`.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = std::thread::spawn(move || {
        use std::io::{Read, Write};
        let (mut conn, _) = listener.accept().unwrap();
        conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .unwrap();
        let mut request = Vec::new();
        let mut buf = [0u8; 4096];
        // Headers, then as much body as content-length says.
        loop {
            let n = conn.read(&mut buf).unwrap();
            request.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&request).to_string();
            if let Some((head, body)) = text.split_once("\r\n\r\n") {
                let length = head
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if body.len() >= length || n == 0 {
                    break;
                }
            }
        }
        conn.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
            .unwrap();
        String::from_utf8_lossy(&request).to_string()
    });
    let local = format!("http://127.0.0.1:{port}/hook");
    let o = run(&[
        "--endpoint-allow-networks",
        "127.0.0.1",
        "--json",
        "endpoints",
        "add",
        &local,
        "--events",
        "delivery.sent",
        "--tenant",
        "acme",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let local_id = json(&o)["id"].as_str().unwrap().to_string();
    let o = run(&[
        "--endpoint-allow-networks",
        "127.0.0.1",
        "trigger",
        "welcome",
        "--tenant",
        "acme",
        "--data",
        r#"{"user": {"id": "u1"}}"#,
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let request = received.join().unwrap();
    assert!(request.starts_with("POST /hook HTTP/1.1"), "{request}");
    assert!(
        request
            .to_ascii_lowercase()
            .contains("webhook-signature: v1,"),
        "{request}"
    );
    assert!(request.contains(r#""type":"delivery.sent""#), "{request}");
    let o = run(&["endpoints", "messages", &local_id]);
    assert!(
        stdout(&o).contains("delivery.sent delivered, 1 try"),
        "{}",
        stdout(&o)
    );

    let o = run(&["endpoints", "remove", &id]);
    assert!(o.status.success());
    let o = run(&["endpoints", "get", &id]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("no endpoint has the id"),
        "{}",
        stderr(&o)
    );
}
