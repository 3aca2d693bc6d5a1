//! Nothing a caller sends can stop the engine: every duration, window, expiry, instant and
//! numeric flag from outside is bounded where it enters (the CLI's flags, environment and
//! belfry.toml, the HTTP bodies and queries), and a stored value out of range (a row written
//! before the bounds existed) fails its own delivery with an error naming it, never the
//! process with a panic. Run against the real `belfry` binary and a real HTTP server, on
//! SQLite and PostgreSQL where storage is involved.

use crate::common;

use crate::common::Backend;
use belfry::TriggerRequest;
use belfry::host::content::Channel;
use belfry::host::dispatch::WorkerConfig;
use belfry::host::policy::SettingsPatch;
use belfry::serve::ServeConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// Exit code of a Rust panic.
const PANICKED: i32 = 101;

fn belfry_on(database_url: &str, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_belfry"));
    cmd.args(args)
        .env("BELFRY_DATABASE_URL", database_url)
        .env(
            "BELFRY_CACHE_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("belfry-test-cache"),
        )
        .env_remove("BELFRY_PLUGINS")
        .env_remove("BELFRY_CONFIG")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    // A value taken as valid may start a server or a worker that never ends: that is a
    // failure too, said as such instead of a hung test.
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            child.kill().unwrap();
            panic!("belfry {} was still running after 60 s", args.join(" "));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

fn json_of(o: &Output) -> Value {
    assert!(o.status.success(), "{}", stderr(o));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stdout)))
}

/// A refusal: no panic, a failing exit, and stderr naming `names`.
#[track_caller]
fn refused(o: &Output, what: &str, names: &str) {
    let err = stderr(o);
    assert_ne!(o.status.code(), Some(PANICKED), "{what} panicked: {err}");
    assert!(!err.contains("panicked"), "{what} panicked: {err}");
    assert!(!o.status.success(), "{what} was accepted: {err}");
    assert!(
        err.contains(names),
        "{what}: the error does not name `{names}`: {err}"
    );
}

// ---- numeric flags: every one has its range, refused with a clear error ---------------------

/// Every numeric flag of every command, at values outside its documented range: zero (where
/// the minimum is above it), negative, one past the maximum, and past any integer type.
#[test]
fn every_numeric_flag_refuses_values_outside_its_range() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("flags.db").display());
    const HUGE: &str = "99999999999999999999999";
    // (command before the flag, flag, values outside its range)
    let table: &[(&[&str], &str, &[&str])] = &[
        (
            &["queue"],
            "--endpoint-disable-after",
            &["0", "-1", "10001", HUGE],
        ),
        (
            &["queue"],
            "--endpoint-timeout-secs",
            &["0", "-1", "301", HUGE],
        ),
        (&["queue"], "--plugin-reuse", &["-1", "1000001", HUGE]),
        (&["worker"], "--concurrency", &["0", "-1", "1025", HUGE]),
        (
            &["worker"],
            "--lease-secs",
            &["0", "-1", "0.5", "86401", "NaN", "inf", "1e309", HUGE],
        ),
        (&["worker"], "--grace-secs", &["-1", "3601", "NaN", HUGE]),
        (&["worker"], "--poll-ms", &["0", "9", "-1", "60001", HUGE]),
        (&["worker"], "--max-attempts", &["0", "-1", "101", HUGE]),
        (
            &["worker"],
            "--retry-base-secs",
            &["0", "-1", "86401", "NaN", HUGE],
        ),
        (
            &["worker"],
            "--retry-max-secs",
            &["0", "-1", "86401", "inf", HUGE],
        ),
        (
            &["serve"],
            "--inbox-poll-ms",
            &["0", "9", "-1", "60001", HUGE],
        ),
        (
            &["serve"],
            "--max-body-bytes",
            &["0", "1023", "-1", "1073741825", HUGE],
        ),
        (
            &["serve"],
            "--max-plugin-bytes",
            &["0", "-1", "1073741825", HUGE],
        ),
        (&["serve"], "--rate-limit-per-sec", &["-1", "1000001", HUGE]),
        (&["serve"], "--rate-limit-burst", &["-1", "1000001", HUGE]),
        (
            &["serve"],
            "--webhook-retention-days",
            &["-1", "3654", "4294967295", HUGE],
        ),
        (&["serve"], "--lease-secs", &["0", HUGE]),
        (&["serve"], "--poll-ms", &["0", HUGE]),
        (&["serve"], "--concurrency", &["0", HUGE]),
        (&["serve"], "--retry-base-secs", &["0", HUGE]),
        (
            &["bench", "plugins"],
            "--iterations",
            &["0", "-1", "1000001", HUGE],
        ),
        (
            &["bench", "dispatch"],
            "--size",
            &["0", "-1", "1000001", HUGE],
        ),
        (
            &["bench", "trigger"],
            "--repetitions",
            &["0", "-1", "1001", HUGE],
        ),
        (&["bench", "digests"], "--size", &["0", HUGE]),
        (
            &["bench", "dispatch"],
            "--backlog",
            &["-1", "10000001", HUGE],
        ),
        (
            &["webhooks", "purge"],
            "--days",
            &["-1", "3654", "4294967295", HUGE],
        ),
        (
            &["endpoints", "messages", "x"],
            "--limit",
            &["0", "-1", "1001", HUGE],
        ),
        (
            &["digests", "buckets"],
            "--limit",
            &["0", "-1", "1001", HUGE],
        ),
    ];
    for (command, flag, values) in table {
        for value in *values {
            let mut args: Vec<&str> = command.to_vec();
            let joined = format!("{flag}={value}");
            args.push(&joined);
            let o = belfry_on(&url, &args, &[]);
            refused(&o, &args.join(" "), flag);
            // A usage error: nothing ran.
            assert_eq!(
                o.status.code(),
                Some(2),
                "{}: {}",
                args.join(" "),
                stderr(&o)
            );
        }
    }
    // The same ranges hold for the environment and for belfry.toml, which feed the same flags.
    let o = belfry_on(&url, &["worker"], &[("BELFRY_WORKER_POLL_MS", "0")]);
    refused(&o, "BELFRY_WORKER_POLL_MS=0", "--poll-ms");
    let o = belfry_on(&url, &["worker"], &[("BELFRY_WORKER_LEASE_SECS", "0")]);
    refused(&o, "BELFRY_WORKER_LEASE_SECS=0", "--lease-secs");
    let config = dir.path().join("belfry.toml");
    std::fs::write(&config, "inbox_poll_ms = 0\n").unwrap();
    let o = belfry_on(&url, &["--config", config.to_str().unwrap(), "serve"], &[]);
    refused(&o, "inbox_poll_ms = 0 in belfry.toml", "--inbox-poll-ms");
    std::fs::write(&config, "[retry]\nbase_secs = 0\n").unwrap();
    let o = belfry_on(&url, &["--config", config.to_str().unwrap(), "worker"], &[]);
    refused(
        &o,
        "[retry] base_secs = 0 in belfry.toml",
        "--retry-base-secs",
    );
    // A base over the maximum is still refused, by the retry policy.
    let o = belfry_on(
        &url,
        &[
            "worker",
            "--retry-base-secs",
            "60",
            "--retry-max-secs",
            "30",
        ],
        &[],
    );
    refused(&o, "a retry base over the maximum", "shorter than base");
}

// ---- durations and instants from the CLI ----------------------------------------------------

async fn the_cli_refuses_durations_and_instants_out_of_range(b: Backend) {
    let db = common::test_db(b).await;
    let run = |args: &[&str]| belfry_on(&db.url, args, &[]);
    let data = r#"{"user": {"id": "q", "email": "q@example.com"}}"#;
    let planned = json_of(&run(&[
        "trigger",
        "welcome",
        "--data",
        data,
        "--no-dispatch",
        "--json",
    ]));
    let id = planned["notifications"][0]["deliveries"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    for until in [
        "300000000000h",
        "9223372036854775807s",
        "99999999999999999999s",
        "99999999999d",
        "3654d",
        "+12026-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "1900-01-01T00:00:00Z",
    ] {
        let o = run(&["defer", &id, "--until", until, "--reason", "x"]);
        refused(&o, &format!("defer --until {until}"), "--until");
    }
    for expires in [
        "99999999999d",
        "9223372036854775807s",
        "300000000000h",
        "+12026-01-01T00:00:00Z",
    ] {
        let o = run(&[
            "suppressions",
            "add",
            "--address",
            "a@example.com",
            "--reason",
            "manual",
            "--expires",
            expires,
        ]);
        refused(
            &o,
            &format!("suppressions add --expires {expires}"),
            "--expires",
        );
    }
    for (flag, value, names) in [
        ("--cooldown", "welcome=9223372036854775807s", "cooldown"),
        ("--cooldown", "welcome=99999999999999999999s", "--cooldown"),
        ("--cooldown", "welcome=300000000000h", "cooldown"),
        ("--cooldown", "welcome=0s", "cooldown"),
        ("--cooldown", "welcome=-5m", "cooldown"),
        ("--cap", "email=3/9223372036854775807s", "cap.window"),
        ("--cap", "email=3/99999999999d", "cap.window"),
        ("--cap", "email=3/99999999999999999999d", "--cap"),
        ("--cap", "email=3/0s", "cap.window"),
        ("--cap", "email=0/1h", "cap.max"),
        ("--cap", "email=4294967296/1h", "cap.max"),
    ] {
        let o = run(&["settings", "set", "--recipient", "*", flag, value]);
        refused(&o, &format!("settings set {flag} {value}"), names);
    }
    // Nothing was stored, and nothing moved.
    let s = json_of(&run(&["settings", "get", "--recipient", "*", "--json"]));
    assert_eq!(s["own"]["caps"], json!({}), "{s}");
    assert_eq!(s["own"]["cooldowns"], json!({}), "{s}");
    let list = json_of(&run(&["suppressions", "list", "--all", "--json"]));
    assert_eq!(list, json!([]));
    let q = json_of(&run(&["queue", "--json"]));
    assert_eq!(
        (q["available"].as_i64(), q["deferred"].as_i64()),
        (Some(2), Some(0))
    );

    // The bound is ten years: just inside it is fine.
    let d = json_of(&run(&[
        "defer", &id, "--until", "3650d", "--reason", "later", "--json",
    ]));
    assert_eq!(d["status"], "deferred");
    let o = json_of(&run(&[
        "settings",
        "set",
        "--recipient",
        "*",
        "--cooldown",
        "welcome=3650d",
        "--cap",
        "email=3/3650d",
        "--json",
    ]));
    assert_eq!(o["cooldowns"]["welcome"], 3650 * 86_400);
    // And a trigger with those (the arithmetic at its extreme) decides without trouble.
    let o = run(&["trigger", "welcome", "--data", data, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

// ---- an old bad row: an error for its deliveries, never a panic -----------------------------

async fn an_old_bad_settings_row_is_an_error_not_a_panic(b: Backend) {
    let w = common::world(b).await;
    let e = &w.engine;
    let welcome = |id: &str| {
        TriggerRequest::new(
            "welcome",
            json!({"user": {"id": id, "email": format!("{id}@example.com")}}),
        )
    };
    // Planned while the settings were fine; sent after they went bad.
    let planned = e.trigger(&welcome("u1")).await.unwrap();

    // What the API and the CLI took before they were bounded, written as they stored it.
    sqlx::query(
        "INSERT INTO recipient_settings (tenant, recipient_id, caps, cooldowns, updated_at)
         VALUES ($1, '*', $2, $3, $4)",
    )
    .bind("default")
    .bind(r#"{"email":{"max":3,"window_secs":9223372036854775807}}"#)
    .bind(r#"{"welcome":9223372036854775807}"#)
    .bind("2026-01-01T00:00:00.000Z")
    .execute(e.db())
    .await
    .unwrap();

    // Trigger: an error naming the stored value, not a panic.
    let err = e.trigger(&welcome("u2")).await.unwrap_err().to_string();
    assert!(
        err.contains("out of range") && err.contains("cooldown") && err.contains("settings set"),
        "{err}"
    );

    // Dispatch of what was planned before: its deliveries fail with the reason recorded.
    match e.dispatch_event(&planned.event_id).await {
        Err(err) => assert!(err.to_string().contains("out of range"), "{err}"),
        Ok(_) => {
            for n in &planned.notifications {
                for d in &n.deliveries {
                    let (status, reason, detail): (String, Option<String>, Option<String>) =
                        sqlx::query_as(
                            "SELECT status, status_reason, status_detail FROM deliveries WHERE id = $1",
                        )
                        .bind(&d.id)
                        .fetch_one(e.db())
                        .await
                        .unwrap();
                    let jobs: Vec<(Option<String>, Option<String>)> =
                        sqlx::query_as("SELECT reason, last_error FROM jobs WHERE subject_id = $1")
                            .bind(&d.id)
                            .fetch_all(e.db())
                            .await
                            .unwrap();
                    let explained = e.explain(&d.id).await.unwrap().to_string();
                    let said = format!("{reason:?} {detail:?} {jobs:?} {explained}");
                    assert_ne!(status, "succeeded", "{said}");
                    assert!(said.contains("out of range"), "{said}");
                    assert!(!said.contains("panicked"), "{said}");
                }
            }
        }
    }

    // Another tenant is untouched.
    let other = e.trigger(&welcome("u1").tenant("other")).await.unwrap();
    e.dispatch_event(&other.event_id).await.unwrap();
    let other = e.event(&other.event_id).await.unwrap();
    for d in other.notifications.iter().flat_map(|n| &n.deliveries) {
        assert_eq!(d.status, "succeeded", "{d:?}");
    }

    // The bad row can be put right through the ordinary API, and sending resumes.
    let repair = SettingsPatch {
        cooldowns: vec![("welcome".into(), None)],
        caps: vec![(Channel::Email, None)],
        ..Default::default()
    };
    e.set_settings("default", "*", &repair).await.unwrap();
    let again = e.trigger(&welcome("u3")).await.unwrap();
    e.dispatch_event(&again.event_id).await.unwrap();
}

// ---- a worker with the shortest poll, due jobs in the future --------------------------------

async fn a_worker_polling_faster_than_its_nap_does_not_panic(b: Backend) {
    let w = common::world(b).await;
    let e = &w.engine;
    let planned = e
        .trigger(&TriggerRequest::new(
            "welcome",
            json!({"user": {"id": "p", "email": "p@example.com"}}),
        ))
        .await
        .unwrap();
    // A job due later makes the worker compute its nap (at most the poll) towards it.
    let id = &planned.notifications[0].deliveries[0].id;
    e.defer(id, chrono::Utc::now() + chrono::Duration::hours(1), "later")
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let worker = {
        let e = e.clone();
        tokio::spawn(async move {
            let config = WorkerConfig {
                poll: Duration::from_millis(1),
                ..Default::default()
            };
            e.run_worker(config, stopped).await
        })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.send(true).unwrap();
    let report = worker.await.expect("the worker must not panic");
    assert_eq!(report.errors, 0, "{report:?}");
}

// ---- HTTP: durations, instants and numbers in bodies and queries ----------------------------

async fn http_refuses_out_of_range_values_with_a_4xx_naming_the_field(b: Backend) {
    let w = common::world(b).await;
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
    let (_, key) = w.engine.create_key(Some("acme"), "test").await.unwrap();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let send = |method: reqwest::Method, path: String, body: Option<Value>, bearer: String| {
        let r = http
            .request(method, format!("{base}{path}"))
            .bearer_auth(bearer);
        let r = match body {
            Some(b) => r.json(&b),
            None => r,
        };
        async move {
            let res = r.send().await.unwrap_or_else(|e| panic!("no answer: {e}"));
            let status = res.status();
            let text = res.text().await.unwrap();
            (status, text)
        }
    };
    #[track_caller]
    fn refused(what: &str, (status, text): &(StatusCode, String), names: &str) {
        assert!(status.is_client_error(), "{what}: {status} {text}");
        let body: Value = serde_json::from_str(text).unwrap_or_else(|_| json!({}));
        let said = format!("{} {}", body["error"]["field"], body["error"]["message"]);
        assert!(
            said.contains(names),
            "{what}: does not name `{names}`: {text}"
        );
    }

    const I64_MAX: i64 = i64::MAX;
    let too_long = belfry::host::time_bounds::MAX_SPAN_SECS + 1;
    let settings = [
        (
            json!({"caps": {"email": {"max": 3, "window_secs": I64_MAX}}}),
            "cap.window",
        ),
        (
            json!({"caps": {"email": {"max": 3, "window_secs": too_long}}}),
            "cap.window",
        ),
        (
            json!({"caps": {"email": {"max": 3, "window_secs": 0}}}),
            "cap.window",
        ),
        (
            json!({"caps": {"email": {"max": 3, "window_secs": -1}}}),
            "cap.window",
        ),
        (
            json!({"caps": {"email": {"max": 3, "window_secs": u64::MAX}}}),
            "window_secs",
        ),
        (
            json!({"caps": {"email": {"max": 3, "window_secs": 1e300}}}),
            "window_secs",
        ),
        (
            json!({"caps": {"email": {"max": 0, "window_secs": 60}}}),
            "cap.max",
        ),
        (
            json!({"caps": {"email": {"max": I64_MAX, "window_secs": 60}}}),
            "cap.max",
        ),
        (
            json!({"cooldowns": {"welcome": I64_MAX}}),
            "cooldowns.welcome",
        ),
        (
            json!({"cooldowns": {"welcome": too_long}}),
            "cooldowns.welcome",
        ),
        (json!({"cooldowns": {"welcome": 0}}), "cooldowns.welcome"),
        (json!({"cooldowns": {"welcome": -5}}), "cooldowns.welcome"),
        (json!({"cooldowns": {"welcome": u64::MAX}}), "cooldowns"),
        (
            json!({"quiet_hours": {"start": "99999999999:00", "end": "07:00"}}),
            "quiet_hours.start",
        ),
    ];
    for recipient in ["*", "u1"] {
        for (body, names) in &settings {
            let got = send(
                reqwest::Method::PATCH,
                format!("/v1/recipients/{}/settings", recipient.replace('*', "%2A")),
                Some(body.clone()),
                key.clone(),
            )
            .await;
            refused(&format!("PATCH settings {body}"), &got, names);
        }
    }
    for expires in [
        "+12026-01-01T00:00:00Z",
        "9999-12-31T23:59:59Z",
        "+262143-12-31T23:59:59Z",
        "-0001-01-01T00:00:00Z",
        "1970-01-01T00:00:00Z",
    ] {
        let got = send(
            reqwest::Method::POST,
            "/v1/suppressions".into(),
            Some(json!({"address": "a@example.com", "expires_at": expires})),
            key.clone(),
        )
        .await;
        refused(
            &format!("suppression expires_at {expires}"),
            &got,
            "expires_at",
        );
    }
    for ttl in [
        json!(0),
        json!(-1),
        json!(I64_MAX),
        json!(u64::MAX),
        json!(1e300),
    ] {
        let got = send(
            reqwest::Method::POST,
            "/v1/inbox/tokens".into(),
            Some(json!({"recipient_id": "u1", "ttl_secs": ttl})),
            key.clone(),
        )
        .await;
        refused(&format!("inbox token ttl_secs {ttl}"), &got, "ttl_secs");
    }
    let token = {
        let (status, text) = send(
            reqwest::Method::POST,
            "/v1/inbox/tokens".into(),
            Some(json!({"recipient_id": "u1"})),
            key.clone(),
        )
        .await;
        assert_eq!(status, StatusCode::CREATED, "{text}");
        serde_json::from_str::<Value>(&text).unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string()
    };
    for limit in ["0", "-1", "1001", "99999999999999999999999", "1e3", "x"] {
        for path in ["/v1/events", "/v1/deliveries"] {
            let got = send(
                reqwest::Method::GET,
                format!("{path}?limit={limit}"),
                None,
                key.clone(),
            )
            .await;
            refused(&format!("{path}?limit={limit}"), &got, "limit");
        }
        let got = send(
            reqwest::Method::GET,
            format!("/v1/inbox?limit={limit}&token={token}"),
            None,
            token.clone(),
        )
        .await;
        refused(&format!("/v1/inbox?limit={limit}"), &got, "limit");
    }

    // Nothing was stored, and the tenant still sends.
    let (status, text) = send(
        reqwest::Method::GET,
        "/v1/recipients/%2A/settings".into(),
        None,
        key.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let s: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        (&s["own"]["caps"], &s["own"]["cooldowns"]),
        (&json!({}), &json!({}))
    );
    assert!(
        w.engine
            .suppressions("acme", true)
            .await
            .unwrap()
            .is_empty()
    );
    let (status, text) = send(
        reqwest::Method::POST,
        "/v1/events".into(),
        Some(json!({"notifier": "welcome", "payload": {"user": {"id": "u1", "email": "u1@example.com"}}})),
        key.clone(),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");

    // An old bad row of the tenant's defaults: a trigger gets an answer saying so (it used to
    // close the connection with none), and the server goes on answering.
    sqlx::query(
        "INSERT INTO recipient_settings (tenant, recipient_id, caps, cooldowns, updated_at)
         VALUES ('acme', '*', '{}', $1, '2026-01-01T00:00:00.000Z')
         ON CONFLICT (tenant, recipient_id) DO UPDATE SET cooldowns = excluded.cooldowns",
    )
    .bind(r#"{"welcome":9223372036854775807}"#)
    .execute(w.engine.db())
    .await
    .unwrap();
    let (status, text) = send(
        reqwest::Method::POST,
        "/v1/events".into(),
        Some(json!({"notifier": "welcome", "payload": {"user": {"id": "u2", "email": "u2@example.com"}}})),
        key.clone(),
    )
    .await;
    // The tenant's own data stops it, so the answer is theirs to act on (409, saying what to
    // set again), not a server fault.
    assert_eq!(status, StatusCode::CONFLICT, "{text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        body["error"]["code"], "stored_settings_out_of_range",
        "{text}"
    );
    assert!(text.contains("settings set"), "{text}");
    let healthz = http.get(format!("{base}/healthz")).send().await.unwrap();
    assert_eq!(healthz.status(), StatusCode::OK);
    server.shutdown().await.unwrap();
}

// ---- a closed stdout ends a command quietly --------------------------------------------------

#[test]
fn a_closed_stdout_ends_output_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("pipe.db").display());
    let planned = json_of(&belfry_on(
        &url,
        &[
            "trigger",
            "welcome",
            "--data",
            r#"{"user": {"id": "q", "email": "q@example.com"}}"#,
            "--json",
        ],
        &[],
    ));
    let id = planned["notifications"][0]["deliveries"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    for args in [
        vec!["explain", id.as_str(), "--json"],
        vec!["explain", id.as_str()],
        vec!["plugin", "list", "--json"],
        vec!["queue"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_belfry"))
            .args(&args)
            .env("BELFRY_DATABASE_URL", &url)
            .env(
                "BELFRY_CACHE_DIR",
                Path::new(env!("CARGO_TARGET_TMPDIR")).join("belfry-test-cache"),
            )
            .env_remove("BELFRY_PLUGINS")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // `| head -0`: the reader is gone before the first line.
        drop(child.stdout.take());
        let o = child.wait_with_output().unwrap();
        let err = stderr(&o);
        assert_ne!(o.status.code(), Some(PANICKED), "{args:?}: {err}");
        assert!(
            err.is_empty(),
            "{args:?} said something on a closed pipe: {err}"
        );
    }
}

on_both_backends!(
    the_cli_refuses_durations_and_instants_out_of_range,
    an_old_bad_settings_row_is_an_error_not_a_panic,
    a_worker_polling_faster_than_its_nap_does_not_panic,
    http_refuses_out_of_range_values_with_a_4xx_naming_the_field,
);
