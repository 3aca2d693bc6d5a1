//! `belfry plugin call`: one function of a plugin, with its output, logs and resource use.
//!
//! The input is a JSON object naming the function's arguments (`docs/plugins/authoring.md`
//! lists them); the call runs on a fresh instance, bounded by the plugin's own limits, as the
//! engine would run it.

use crate::global::{Global, runtime_config};
use anyhow::{Context, Result, anyhow, bail};
use belfry::host::content::{Channel, Content, Recipient, RenderRequest};
use belfry::host::plugins::{
    CallError, Observation, OutgoingMessage, Plugin, PluginKind, PluginRuntime, Reuse,
    WebhookRequest,
};
use clap::Args;
use serde::Deserialize;
use serde_json::{Value, json};
use std::path::PathBuf;

/// Call one function of a plugin and show its output, its log lines, the time it took and
/// the most memory it used. Notifier: describe, recipients, channels, build; renderer:
/// render; channel adapter: send, handle-webhook. Exits non-zero when the call fails or the
/// plugin answers with its own error.
#[derive(Args)]
pub(crate) struct CallArgs {
    /// A package folder (manifest.toml, plugin.wasm, assets/), or a .wasm with NAME.toml beside.
    package: PathBuf,
    /// The function, as the contract names it (e.g. `build`, `handle-webhook`).
    function: String,
    /// The arguments, a JSON object (`@FILE` reads it from a file). Notifier: {"payload"},
    /// plus {"recipient"} for channels, plus {"channel"} for build. Renderer: the render
    /// request {"template", "channel", "data", "locale"}. Adapter send: {"recipient",
    /// "content"}; handle-webhook: {"method", "url", "headers", "body", "received_at_ms"}.
    #[arg(long, default_value = "{}")]
    input: String,
    /// A config value for the plugin during this call, KEY=VALUE (repeatable): what an
    /// operator would set for it.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    config: Vec<String>,
}

const NOTIFIER: &[&str] = &["describe", "recipients", "channels", "build"];
const RENDERER: &[&str] = &["render"];
const ADAPTER: &[&str] = &["send", "handle-webhook"];

pub(crate) async fn run(g: &Global, args: CallArgs) -> Result<()> {
    let input = read_input(&args.input)?;
    let mut config = runtime_config(g)?;
    let runtime = PluginRuntime::new(config.clone())?;
    let plugin = runtime.load_path(&args.package).await?;
    if !args.config.is_empty() {
        // The plugin's name is known only once loaded: load it again under a runtime that
        // gives it these values.
        let own = config
            .plugin_config
            .entry(plugin.name().to_string())
            .or_default();
        for pair in &args.config {
            let (k, v) = pair
                .split_once('=')
                .ok_or_else(|| anyhow!("--config {pair}: expected KEY=VALUE"))?;
            own.insert(k.to_string(), v.to_string());
        }
    }
    let runtime = PluginRuntime::new(config)?;
    let plugin = runtime.load_path(&args.package).await?;
    let known = match plugin.kind() {
        PluginKind::Notifier => NOTIFIER,
        PluginKind::Renderer => RENDERER,
        PluginKind::ChannelAdapter => ADAPTER,
    };
    if !known.contains(&args.function.as_str()) {
        bail!(
            "a {} has no function `{}`; its functions: {}",
            plugin.kind(),
            args.function,
            known.join(", ")
        );
    }
    let watch = Observation::default();
    let started = std::time::Instant::now();
    let result = call(
        &runtime,
        &plugin,
        &args.function,
        &input,
        Reuse::Observed(&watch),
    )
    .await?;
    let elapsed = started.elapsed();
    let seen = watch.seen();
    let (output, failed) = match result {
        Ok(v) => {
            let own_error = v.get("error").is_some();
            (json!({"output": v}), own_error)
        }
        Err(e) => (
            json!({"error": {"reason": e.reason.as_str(), "message": e.to_string()}}),
            true,
        ),
    };
    if g.json {
        let mut report = output;
        report["plugin"] = json!(plugin.reference().to_string());
        report["function"] = json!(args.function);
        report["elapsed_ms"] = json!(elapsed.as_secs_f64() * 1000.0);
        report["peak_memory_bytes"] = json!(seen.peak_memory_bytes);
        report["logs"] = serde_json::to_value(&seen.logs)?;
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{} `{}`", plugin.reference(), args.function);
        match (output.get("output"), output.get("error")) {
            (Some(v), _) => println!("{}", serde_json::to_string_pretty(v)?),
            (_, Some(e)) => println!("call failed ({}): {}", e["reason"], e["message"]),
            _ => {}
        }
        for line in &seen.logs {
            println!("log {:<5} {}", line.level, line.message);
        }
        println!(
            "time {:.1} ms, peak memory {:.1} MiB ({} bytes)",
            elapsed.as_secs_f64() * 1000.0,
            seen.peak_memory_bytes as f64 / (1024.0 * 1024.0),
            seen.peak_memory_bytes
        );
    }
    if failed {
        bail!("`{}` did not succeed", args.function);
    }
    Ok(())
}

fn read_input(text: &str) -> Result<Value> {
    let text = match text.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?,
        None => text.to_string(),
    };
    let v: Value = serde_json::from_str(&text).context("--input is not valid JSON")?;
    if !v.is_object() {
        bail!("--input must be a JSON object of the function's arguments");
    }
    Ok(v)
}

/// One field of the input, as the type the function takes, or an error naming it.
fn field<T: for<'de> Deserialize<'de>>(input: &Value, name: &str) -> Result<T> {
    let v = input.get(name).cloned().unwrap_or(Value::Null);
    serde_json::from_value(v).with_context(|| format!("--input field `{name}`"))
}

/// The payload as the contract carries it: JSON text (any JSON, as a trigger's would be).
fn payload(input: &Value) -> Result<String> {
    match input.get("payload") {
        Some(v) => Ok(v.to_string()),
        None => bail!("--input field `payload` is missing"),
    }
}

/// A recipient as JSON, its `data` given as an object (the contract carries it as text).
fn recipient(input: &Value) -> Result<Recipient> {
    let mut r = input
        .get("recipient")
        .cloned()
        .ok_or_else(|| anyhow!("--input field `recipient` is missing"))?;
    if let Some(data) = r.get_mut("data").filter(|d| !d.is_string() && !d.is_null()) {
        *data = Value::String(data.to_string());
    }
    serde_json::from_value(r).context("--input field `recipient`")
}

/// Calls `function`; `Ok(Err)` is the call failing (trap, timeout, limit, the plugin's own
/// plan or render error), `Ok(Ok)` what it returned (an adapter's own refusal included, as
/// `{"error": …}`).
pub(crate) async fn call(
    runtime: &PluginRuntime,
    plugin: &Plugin,
    function: &str,
    input: &Value,
    reuse: Reuse<'_>,
) -> Result<Result<Value, CallError>> {
    Ok(match function {
        "describe" => runtime.describe_with(plugin, reuse).await.map(|d| json!(d)),
        "recipients" => runtime
            .recipients(plugin, &payload(input)?, reuse)
            .await
            .map(|r| json!(r)),
        "channels" => runtime
            .channels(plugin, &payload(input)?, &recipient(input)?, reuse)
            .await
            .map(|p| json!({"channels": p.channels, "severity": p.severity, "held": p.held})),
        "build" => {
            let channel: Channel = field(input, "channel")?;
            runtime
                .build(plugin, &payload(input)?, &recipient(input)?, channel, reuse)
                .await
                .map(|r| json!(r))
        }
        "render" => {
            let mut request = input.clone();
            if let Some(data) = request.get_mut("data").filter(|d| !d.is_string()) {
                *data = Value::String(data.to_string());
            }
            let request: RenderRequest =
                serde_json::from_value(request).context("--input (a render request)")?;
            runtime
                .render(plugin, &request, plugin.assets(), reuse)
                .await
                .map(|c| json!(c))
        }
        "send" => {
            let content: Content = field(input, "content")?;
            let message = OutgoingMessage {
                delivery_id: "dlv_call".into(),
                notification_id: "ntf_call".into(),
                tenant: "default".into(),
                idempotency_key: "call-1".into(),
                attempt: 1,
                channel: content.channel(),
                recipient: recipient(input)?,
                content,
                headers: Vec::new(),
            };
            runtime
                .send(plugin, &message, reuse)
                .await
                .map(|r| match r {
                    Ok(id) => json!({"ok": {"provider_message_id": id}}),
                    Err(e) => json!({"error": e}),
                })
        }
        "handle-webhook" => {
            let body: String = field(input, "body")?;
            let received_at = match input.get("received_at_ms") {
                Some(v) => {
                    let ms: i64 = serde_json::from_value(v.clone())
                        .context("--input field `received_at_ms`")?;
                    chrono::DateTime::from_timestamp_millis(ms)
                        .ok_or_else(|| anyhow!("--input field `received_at_ms` is out of range"))?
                }
                None => chrono::Utc::now(),
            };
            let request = WebhookRequest {
                method: field::<Option<String>>(input, "method")?.unwrap_or("POST".into()),
                url: field(input, "url")?,
                headers: field::<Option<Vec<(String, String)>>>(input, "headers")?
                    .unwrap_or_default(),
                body: body.into_bytes(),
                received_at,
            };
            runtime
                .handle_webhook_with(plugin, &request, reuse)
                .await
                .map(|r| match r {
                    Ok(events) => json!({"ok": events}),
                    Err(e) => json!({"error": e.to_string()}),
                })
        }
        other => bail!("no function `{other}`"),
    })
}
