//! `belfry plugin test`: the conformance suite of a plugin's world, and the author's own cases.
//!
//! Every plugin, in any language, meets the same checks: the contract (its description, the
//! same input giving the same output, unknown payload fields tolerated, a bad payload a typed
//! error rather than a trap, its limits respected); an adapter also meets a fake provider on
//! 127.0.0.1 (2xx, 4xx, 429 with `Retry-After`, 5xx and a provider that never answers) and, when
//! it verifies webhooks, a tampered body, a wrong secret and a stale timestamp; then the
//! author's cases (`--cases DIR`, see `docs/plugins/authoring.md`), each compared with a diff.

use crate::global::{Global, runtime_config};
use crate::plugin_call::call;
use anyhow::{Context, Result, bail};
use belfry::host::plugins::{CallError, FailureReason, Plugin, PluginKind, PluginRuntime, Reuse};
use clap::Args;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Run the conformance suite of a plugin's world against a built plugin, then the author's
/// own cases: input JSON → expected output or expected error. Exits non-zero when any check
/// fails.
#[derive(Args)]
pub(crate) struct TestArgs {
    /// A package folder (manifest.toml, plugin.wasm, assets/), or a .wasm with NAME.toml beside.
    package: PathBuf,
    /// The cases folder: conformance.toml (config, fake provider, webhook sample) and
    /// cases/NAME/{input.json, expected.json | error.json}.
    #[arg(long)]
    cases: Option<PathBuf>,
}

/// `DIR/conformance.toml`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Conformance {
    /// Config values for every call; `{provider}` and `{provider_authority}` are replaced by
    /// the fake provider's base URL and its host:port.
    #[serde(default)]
    config: BTreeMap<String, String>,
    provider: Option<ProviderSpec>,
    webhook: Option<WebhookSpec>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProviderSpec {
    #[serde(default = "ok_status")]
    ok_status: u16,
    #[serde(default)]
    ok_body: String,
    #[serde(default)]
    ok_headers: Vec<(String, String)>,
}

fn ok_status() -> u16 {
    200
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookSpec {
    /// A validly signed request, the shape `plugin call … handle-webhook` takes.
    request: PathBuf,
    secret_config: String,
    secret: String,
    #[serde(default)]
    timestamped: bool,
}

/// One check's result.
#[derive(Serialize)]
struct Check {
    group: &'static str,
    name: String,
    /// `pass`, `fail` or `n/a`.
    result: &'static str,
    detail: String,
}

#[derive(Default)]
struct Report(Vec<Check>);

impl Report {
    fn add(&mut self, group: &'static str, name: impl Into<String>, ok: bool, detail: String) {
        self.0.push(Check {
            group,
            name: name.into(),
            result: if ok { "pass" } else { "fail" },
            detail,
        });
    }
    fn na(&mut self, group: &'static str, name: impl Into<String>, why: &str) {
        self.0.push(Check {
            group,
            name: name.into(),
            result: "n/a",
            detail: why.to_string(),
        });
    }
}

pub(crate) async fn run(g: &Global, args: TestArgs) -> Result<()> {
    let spec = match &args.cases {
        Some(dir) if dir.join("conformance.toml").exists() => {
            let path = dir.join("conformance.toml");
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            toml::from_str(&text).with_context(|| format!("{}", path.display()))?
        }
        Some(dir) if !dir.is_dir() => bail!("--cases {}: not a folder", dir.display()),
        _ => Conformance::default(),
    };
    let provider = FakeProvider::start().await?;
    let mut config = runtime_config(g)?;
    let runtime = PluginRuntime::new(config.clone())?;
    let name = runtime.load_path(&args.package).await?.name().to_string();
    let own = config.plugin_config.entry(name).or_default();
    for (k, v) in &spec.config {
        own.insert(k.clone(), provider.substitute(v));
    }
    let runtime = PluginRuntime::new(config.clone())?;
    let plugin = runtime.load_path(&args.package).await?;
    let cases = match &args.cases {
        Some(dir) => read_cases(dir)?,
        None => Vec::new(),
    };
    let mut report = Report::default();
    contract(&runtime, &plugin, &cases, &mut report).await?;
    if plugin.kind() == PluginKind::ChannelAdapter {
        provider_checks(&runtime, &plugin, &spec, &provider, &mut report).await?;
        match (&spec.webhook, &args.cases) {
            (Some(w), Some(dir)) => {
                webhook_checks(&config, &args.package, &plugin, w, dir, &mut report).await?
            }
            _ => report.na(
                "webhook",
                "verifier",
                "no [webhook] in conformance.toml: no signed sample to check against",
            ),
        }
    }
    for case in &cases {
        let got = call(&runtime, &plugin, &case.function, &case.input, Reuse::Fresh).await?;
        let (ok, detail) = case.judge(&got);
        report.add("cases", &case.name, ok, detail);
    }
    print(&plugin, &report, g.json)
}

fn print(plugin: &Plugin, report: &Report, json: bool) -> Result<()> {
    let failed = report.0.iter().filter(|c| c.result == "fail").count();
    let passed = report.0.iter().filter(|c| c.result == "pass").count();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "plugin": plugin.reference().to_string(),
                "passed": passed, "failed": failed, "checks": report.0,
            }))?
        );
    } else {
        println!("{} ({})", plugin.reference(), plugin.kind());
        for c in &report.0 {
            println!("  {:<4} {:<9} {}", c.result, c.group, c.name);
            if c.result != "pass" && !c.detail.is_empty() {
                for line in c.detail.lines() {
                    println!("         {line}");
                }
            }
        }
        println!("{passed} passed, {failed} failed");
    }
    if failed > 0 {
        bail!("{failed} check(s) failed");
    }
    Ok(())
}

/// A failure that is not the plugin's own verdict: a trap, a limit, a denied capability.
fn untyped(e: &CallError) -> bool {
    e.reason != FailureReason::PluginError
}

fn limit_hit(e: &CallError) -> bool {
    matches!(
        e.reason,
        FailureReason::Timeout | FailureReason::MemoryLimit | FailureReason::OutputTooLarge
    )
}

/// The contract every plugin of a world meets.
async fn contract(
    runtime: &PluginRuntime,
    plugin: &Plugin,
    cases: &[Case],
    report: &mut Report,
) -> Result<()> {
    let mut limits_ok = true;
    let mut limit_detail = String::new();
    let mut note = |r: &Result<Value, CallError>| {
        if let Err(e) = r
            && limit_hit(e)
        {
            limits_ok = false;
            limit_detail = e.to_string();
        }
    };
    if plugin.kind() == PluginKind::Notifier {
        let d = runtime.describe(plugin).await;
        let detail = match &d {
            Ok(d) => d.validate().err().unwrap_or_default(),
            Err(e) => e.to_string(),
        };
        report.add("contract", "a valid description", detail.is_empty(), detail);
    }
    // The author's first case of each function is the sample: called twice, and for a
    // payload, again with a field no notifier knows.
    let mut seen = Vec::new();
    for case in cases.iter().filter(|c| c.function != "describe") {
        if seen.contains(&case.function) {
            continue;
        }
        seen.push(case.function.clone());
        let a = call(runtime, plugin, &case.function, &case.input, Reuse::Fresh).await?;
        let b = call(runtime, plugin, &case.function, &case.input, Reuse::Fresh).await?;
        note(&a);
        let same = show(&a) == show(&b);
        report.add(
            "contract",
            format!("same input, same output ({})", case.function),
            same,
            if same {
                String::new()
            } else {
                diff(&show(&a), &show(&b))
            },
        );
        if let Some(Value::Object(payload)) = case.input.get("payload") {
            let mut input = case.input.clone();
            let mut more = payload.clone();
            more.insert("belfry_conformance_unknown".into(), json!({"x": 1}));
            input["payload"] = Value::Object(more);
            let c = call(runtime, plugin, &case.function, &input, Reuse::Fresh).await?;
            note(&c);
            let ok = a.is_ok() == c.is_ok();
            report.add(
                "contract",
                format!("unknown payload fields tolerated ({})", case.function),
                ok,
                if ok {
                    String::new()
                } else {
                    format!("with an unknown field: {}", show(&c))
                },
            );
        }
    }
    if seen.is_empty() && plugin.kind() != PluginKind::ChannelAdapter {
        report.na(
            "contract",
            "same input, same output",
            "no author cases (--cases DIR with cases/NAME/input.json) to take a sample input from",
        );
    }
    for (what, input) in bad_inputs(plugin.kind()) {
        let function = input["function"].as_str().unwrap_or_default().to_string();
        let r = call(runtime, plugin, &function, &input["input"], Reuse::Fresh).await?;
        note(&r);
        let (ok, detail) = match &r {
            Err(e) if untyped(e) => (false, format!("not a typed error: {e}")),
            _ => (true, String::new()),
        };
        report.add(
            "contract",
            format!("{what}: a typed error, not a trap"),
            ok,
            detail,
        );
    }
    report.add("contract", "limits respected", limits_ok, limit_detail);
    Ok(())
}

/// Inputs a plugin must refuse with its own error (or take), never by trapping.
fn bad_inputs(kind: PluginKind) -> Vec<(&'static str, Value)> {
    let r = json!({"id": "conformance"});
    match kind {
        PluginKind::Notifier => vec![
            (
                "payload a string",
                json!({"function": "recipients", "input": {"payload": "not an object"}}),
            ),
            (
                "payload an array",
                json!({"function": "recipients", "input": {"payload": [1, 2]}}),
            ),
            (
                "payload null",
                json!({"function": "recipients", "input": {"payload": null}}),
            ),
            (
                "payload empty",
                json!({"function": "build", "input": {"payload": {}, "recipient": r, "channel": "email"}}),
            ),
        ],
        PluginKind::Renderer => vec![
            (
                "an unknown template",
                json!({"function": "render", "input": {"template": "belfry-conformance-none", "channel": "email", "data": {}}}),
            ),
            (
                "data without variables",
                json!({"function": "render", "input": {"template": "welcome", "channel": "sms", "data": {}}}),
            ),
        ],
        PluginKind::ChannelAdapter => vec![(
            "a recipient with no address",
            json!({"function": "send", "input": {"recipient": r, "content": {"channel": "webhook", "body": "{}"}}}),
        )],
    }
}

/// A result as the text compared and shown.
fn show(r: &Result<Value, CallError>) -> Value {
    match r {
        Ok(v) => v.clone(),
        Err(e) => json!({"call_failed": {"reason": e.reason.as_str(), "message": e.message}}),
    }
}

/// Sample content for an adapter's first channel, and a recipient reachable on it.
fn sample_send(plugin: &Plugin) -> Value {
    let channel = plugin
        .manifest()
        .channels
        .first()
        .map_or("email", |c| c.as_str());
    let content = match channel {
        "sms" => json!({"channel": "sms", "text": "Your code is 1234"}),
        "push" => json!({"channel": "push", "title": "Hello", "body": "Hi there", "data": null}),
        "chat" => json!({"channel": "chat", "text": "Hello", "blocks": null}),
        "webhook" => json!({"channel": "webhook", "body": "{\"hello\":\"world\"}"}),
        "in-app" => {
            json!({"channel": "in-app", "headline": "Hello", "body": "Hi", "primary_action": null})
        }
        _ => json!({"channel": "email", "subject": "Hello", "text": "Hi there", "html": null}),
    };
    json!({
        "recipient": {"id": "conformance", "email": "someone@example.com", "phone": "+15555550100",
                      "data": {"ntfy_topic": "conformance"}},
        "content": content,
    })
}

/// The adapter against the fake provider: each answer mapped to the outcome the engine acts on.
async fn provider_checks(
    runtime: &PluginRuntime,
    plugin: &Plugin,
    spec: &Conformance,
    provider: &FakeProvider,
    report: &mut Report,
) -> Result<()> {
    let Some(ok) = &spec.provider else {
        report.na(
            "provider",
            "2xx, 4xx, 429, 5xx, timeout",
            "no [provider] in conformance.toml: the suite does not know how to point it at a provider",
        );
        return Ok(());
    };
    let input = sample_send(plugin);
    let hold = std::time::Duration::from_millis(plugin.manifest().limits.timeout_ms + 1_000);
    let modes = [
        (
            "2xx: sent, with the provider's id",
            Mode::Answer(ok.ok_status, ok.ok_headers.clone(), ok.ok_body.clone()),
        ),
        (
            "400: a permanent failure",
            Mode::Answer(400, vec![], r#"{"message":"bad request"}"#.into()),
        ),
        (
            "429 with Retry-After: rate-limited for 7 s",
            Mode::Answer(
                429,
                vec![("retry-after".into(), "7".into())],
                r#"{"message":"slow down"}"#.into(),
            ),
        ),
        (
            "503: a transient failure",
            Mode::Answer(503, vec![], r#"{"message":"unavailable"}"#.into()),
        ),
        (
            "no answer: transient or the call's timeout (both retried)",
            Mode::Hang(hold),
        ),
    ];
    for (name, mode) in modes {
        provider.set(mode);
        let r = call(runtime, plugin, "send", &input, Reuse::Fresh).await?;
        let v = show(&r);
        let ok = match name.split(':').next().unwrap_or_default() {
            "2xx" => v["ok"]["provider_message_id"]
                .as_str()
                .is_some_and(|id| !id.is_empty()),
            "400" => v["error"]["kind"] == "permanent",
            "429 with Retry-After" => {
                v["error"]["kind"] == "rate_limited" && v["error"]["retry_after_ms"] == 7000
            }
            "503" => v["error"]["kind"] == "transient",
            _ => v["error"]["kind"] == "transient" || v["call_failed"]["reason"] == "timeout",
        };
        let detail = if ok {
            String::new()
        } else {
            format!("got {v}; requests seen: {}", provider.seen())
        };
        report.add("provider", name, ok, detail);
    }
    Ok(())
}

/// The webhook verifier: the signed sample accepted; a tampered body, a wrong secret and a
/// stale timestamp refused as unauthorized.
async fn webhook_checks(
    config: &belfry::host::plugins::RuntimeConfig,
    package: &Path,
    plugin: &Plugin,
    w: &WebhookSpec,
    dir: &Path,
    report: &mut Report,
) -> Result<()> {
    let path = dir.join(&w.request);
    let request: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("{}: not JSON", path.display()))?;
    let with_secret = async |secret: &str| -> Result<(PluginRuntime, Plugin)> {
        let mut config = config.clone();
        config
            .plugin_config
            .entry(plugin.name().to_string())
            .or_default()
            .insert(w.secret_config.clone(), secret.to_string());
        let runtime = PluginRuntime::new(config)?;
        let plugin = runtime.load_path(package).await?;
        Ok((runtime, plugin))
    };
    let (runtime, right) = with_secret(&w.secret).await?;
    let verdict =
        async |runtime: &PluginRuntime, plugin: &Plugin, input: &Value| -> Result<Value> {
            Ok(show(
                &call(runtime, plugin, "handle-webhook", input, Reuse::Fresh).await?,
            ))
        };
    let v = verdict(&runtime, &right, &request).await?;
    report.add(
        "webhook",
        "a validly signed request is accepted",
        v.get("ok").is_some(),
        format!("got {v}"),
    );
    let mut tampered = request.clone();
    let body = request["body"].as_str().unwrap_or_default();
    tampered["body"] = json!(format!("{body} "));
    let v = verdict(&runtime, &right, &tampered).await?;
    report.add(
        "webhook",
        "a tampered body is refused",
        v["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("unauthorized")),
        format!("got {v}"),
    );
    let (wrong_rt, wrong) = with_secret(&format!("{}x", w.secret)).await?;
    let v = verdict(&wrong_rt, &wrong, &request).await?;
    report.add(
        "webhook",
        "a wrong secret is refused",
        v["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("unauthorized")),
        format!("got {v}"),
    );
    if w.timestamped {
        let mut stale = request.clone();
        let at = request["received_at_ms"].as_i64().unwrap_or_default();
        stale["received_at_ms"] = json!(at + 10 * 60 * 1000);
        let v = verdict(&runtime, &right, &stale).await?;
        report.add(
            "webhook",
            "a stale timestamp is refused",
            v["error"]
                .as_str()
                .is_some_and(|e| e.starts_with("unauthorized")),
            format!("got {v}"),
        );
    } else {
        report.na(
            "webhook",
            "a stale timestamp is refused",
            "the scheme signs no timestamp (timestamped = false)",
        );
    }
    Ok(())
}

/// One author case.
struct Case {
    name: String,
    function: String,
    input: Value,
    expect: Expect,
}

enum Expect {
    Output(Value),
    Error {
        reason: String,
        contains: Option<String>,
    },
}

impl Case {
    fn judge(&self, got: &Result<Value, CallError>) -> (bool, String) {
        match (&self.expect, got) {
            (Expect::Output(want), Ok(v)) if v == want => (true, String::new()),
            (Expect::Output(want), _) => (false, diff(want, &show(got))),
            (Expect::Error { reason, contains }, Err(e)) => {
                let ok = e.reason.as_str() == reason
                    && contains
                        .as_ref()
                        .is_none_or(|c| e.message.contains(c.as_str()));
                (
                    ok,
                    format!("expected {reason} containing {contains:?}, got {e}"),
                )
            }
            (Expect::Error { reason, .. }, Ok(v)) => {
                (false, format!("expected a {reason} error, got output {v}"))
            }
        }
    }
}

fn read_cases(dir: &Path) -> Result<Vec<Case>> {
    let root = dir.join("cases");
    if !root.is_dir() {
        return Ok(Vec::new());
    }
    let mut names: Vec<PathBuf> = std::fs::read_dir(&root)
        .with_context(|| format!("reading {}", root.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    names.sort();
    let read = |p: PathBuf| -> Result<Value> {
        let text =
            std::fs::read_to_string(&p).with_context(|| format!("reading {}", p.display()))?;
        serde_json::from_str(&text).with_context(|| format!("{}: not JSON", p.display()))
    };
    let mut cases = Vec::new();
    for case in names {
        let name = case
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let input = read(case.join("input.json"))?;
        let Some(function) = input["function"].as_str().map(str::to_string) else {
            bail!("{}: input.json needs a \"function\"", case.display());
        };
        let expect = if case.join("expected.json").exists() {
            Expect::Output(read(case.join("expected.json"))?)
        } else if case.join("error.json").exists() {
            let e = read(case.join("error.json"))?;
            Expect::Error {
                reason: e["reason"].as_str().unwrap_or("plugin_error").to_string(),
                contains: e["contains"].as_str().map(str::to_string),
            }
        } else {
            bail!("{}: needs expected.json or error.json", case.display());
        };
        cases.push(Case {
            name,
            function,
            input: input["input"].clone(),
            expect,
        });
    }
    Ok(cases)
}

/// Every leaf where `want` and `got` differ, one line each: `path: expected … got …`.
fn diff(want: &Value, got: &Value) -> String {
    let mut lines = Vec::new();
    diff_at("$", want, got, &mut lines);
    lines.join("\n")
}

fn diff_at(path: &str, want: &Value, got: &Value, out: &mut Vec<String>) {
    match (want, got) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for k in keys {
                let (x, y) = (
                    a.get(k).unwrap_or(&Value::Null),
                    b.get(k).unwrap_or(&Value::Null),
                );
                diff_at(&format!("{path}.{k}"), x, y, out);
            }
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff_at(&format!("{path}[{i}]"), x, y, out);
            }
        }
        _ if want != got => out.push(format!("{path}: expected {want}, got {got}")),
        _ => {}
    }
}

/// How the fake provider answers the next requests.
#[derive(Clone)]
enum Mode {
    Answer(u16, Vec<(String, String)>, String),
    /// Holds the request this long without answering.
    Hang(std::time::Duration),
}

/// A provider on 127.0.0.1 answering every request as told.
struct FakeProvider {
    addr: std::net::SocketAddr,
    mode: Arc<Mutex<Mode>>,
    requests: Arc<Mutex<usize>>,
}

impl FakeProvider {
    async fn start() -> Result<FakeProvider> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let mode = Arc::new(Mutex::new(Mode::Answer(200, vec![], "{}".into())));
        let requests = Arc::new(Mutex::new(0));
        let (m, r) = (mode.clone(), requests.clone());
        // The body is read before answering: an answer sent while the adapter is still writing
        // closes the connection under it.
        let app = axum::Router::new().fallback(move |_body: axum::body::Bytes| {
            let (m, r) = (m.clone(), r.clone());
            async move {
                if let Ok(mut n) = r.lock() {
                    *n += 1;
                }
                let mode =
                    m.lock()
                        .map(|m| m.clone())
                        .unwrap_or(Mode::Answer(500, vec![], String::new()));
                match mode {
                    Mode::Answer(status, headers, body) => answer(status, headers, body),
                    Mode::Hang(d) => {
                        tokio::time::sleep(d).await;
                        answer(504, vec![], String::new())
                    }
                }
            }
        });
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(FakeProvider {
            addr,
            mode,
            requests,
        })
    }

    fn set(&self, mode: Mode) {
        if let Ok(mut m) = self.mode.lock() {
            *m = mode;
        }
    }

    fn seen(&self) -> usize {
        self.requests.lock().map(|n| *n).unwrap_or_default()
    }

    fn substitute(&self, value: &str) -> String {
        value
            .replace("{provider}", &format!("http://{}", self.addr))
            .replace("{provider_authority}", &self.addr.to_string())
    }
}

fn answer(status: u16, headers: Vec<(String, String)>, body: String) -> axum::response::Response {
    let mut b = axum::response::Response::builder()
        .status(status)
        .header("content-type", "application/json");
    for (k, v) in headers {
        b = b.header(k, v);
    }
    b.body(axum::body::Body::from(body))
        .unwrap_or_else(|_| axum::response::Response::new(axum::body::Body::empty()))
}
