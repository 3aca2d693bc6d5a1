//! `belfry plugin call`: one function of a plugin, its output, logs, time and peak memory.

use crate::common::serve_process::{bundled, write_file_plugin};
use serde_json::{Value, json};
use std::path::Path;
use std::process::{Command, Output};

fn call(dir: &Path, name: &str, function: &str, input: &Value) -> Output {
    let (wasm, manifest) = bundled(name);
    write_file_plugin(dir, name, wasm, manifest);
    Command::new(env!("CARGO_BIN_EXE_belfry"))
        .env(
            "BELFRY_DATABASE_URL",
            format!("sqlite://{}", dir.join("x.db").display()),
        )
        .env_remove("BELFRY_PLUGINS")
        .env_remove("RUST_LOG")
        .args(["--json", "plugin", "call"])
        .arg(dir.join(format!("{name}.wasm")))
        .args([function, "--input", &input.to_string()])
        .output()
        .unwrap()
}

fn report(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|_| {
        panic!(
            "not JSON: {} / {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        )
    })
}

#[test]
fn a_notifier_is_described_and_builds_with_its_memory_measured() {
    let dir = tempfile::tempdir().unwrap();
    let o = call(dir.path(), "welcome", "describe", &json!({}));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = report(&o);
    assert_eq!(r["output"]["key"], "welcome", "{r}");
    assert!(
        r["peak_memory_bytes"].as_u64().is_some_and(|b| b > 0),
        "{r}"
    );
    assert!(r["elapsed_ms"].as_f64().is_some(), "{r}");

    let user = json!({"id": "ada", "name": "Ada", "email": "ada@example.com"});
    let o = call(
        dir.path(),
        "welcome",
        "build",
        &json!({"payload": {"user": user, "app_name": "Acme"}, "recipient": {"id": "ada", "email": "ada@example.com"}, "channel": "email"}),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = report(&o);
    assert_eq!(r["output"]["channel"], "email", "{r}");
    assert!(r["output"]["template"].as_str().is_some(), "{r}");
}

#[test]
fn a_bad_payload_is_the_plugins_typed_error_and_fails_the_command() {
    let dir = tempfile::tempdir().unwrap();
    let o = call(
        dir.path(),
        "welcome",
        "recipients",
        &json!({"payload": {"nothing": 1}}),
    );
    assert!(!o.status.success());
    let r = report(&o);
    assert_eq!(r["error"]["reason"], "plugin_error", "{r}");
}

#[test]
fn an_adapters_log_lines_are_shown() {
    let dir = tempfile::tempdir().unwrap();
    let o = call(
        dir.path(),
        "log",
        "send",
        &json!({"recipient": {"id": "ada", "email": "ada@example.com"},
                "content": {"channel": "email", "subject": "Hello there", "text": "Hi", "html": null}}),
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = report(&o);
    assert_eq!(
        r["output"]["ok"]["provider_message_id"], "log-call-1",
        "{r}"
    );
    let logs = r["logs"].as_array().unwrap();
    assert!(
        logs.iter().any(|l| l["level"] == "info" && l["message"].as_str().unwrap().contains("Hello there")),
        "{r}"
    );
}

#[test]
fn an_unknown_function_or_input_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let o = call(dir.path(), "welcome", "send", &json!({}));
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("describe, recipients, channels, build"),
        "{err}"
    );
    let o = call(
        dir.path(),
        "welcome",
        "build",
        &json!({"payload": {}, "recipient": {"id": "a"}, "channel": "fax"}),
    );
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("`channel`"), "{err}");
}
