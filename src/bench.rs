//! `belfry bench plugins`: what a sandboxed render costs next to the same render done
//! natively, measured in one run on this machine.
//!
//! Three ways to render the `welcome` e-mail (subject, html, text) for the same data:
//! - **fresh**: the `templates` plugin on a fresh instance per call ([`Reuse::Fresh`]);
//! - **reused**: the same plugin on a warm instance kept for one tenant ([`Reuse::Tenant`],
//!   the path trigger and dispatch take);
//! - **native**: minijinja in this process, reading the same templates (the welcome notifier's
//!   package assets, in memory, as the plugin is handed them) and parsing them per call;
//! - **native, cached**: minijinja with one environment that keeps its parsed templates (a
//!   floor: the 1.0 `templates` renderer parses per call even on a warm instance, so that one
//!   notifier's templates never serve another's request).
//!
//! Each plugin mode is compared with its native twin. Calls run one after another on one
//! task, so the figures are per core.

use anyhow::{Context, Result};
use belfry::host::content::{Channel, Content, Recipient, RenderRequest};
use belfry::host::plugins::assets::Assets;
use belfry::host::plugins::{self, PluginKind, PluginRuntime, Reuse, RuntimeConfig};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Measured {
    name: &'static str,
    per_call: Vec<Duration>,
    total: Duration,
}

impl Measured {
    fn calls_per_sec(&self) -> f64 {
        self.per_call.len() as f64 / self.total.as_secs_f64()
    }
    fn percentile_us(&self, p: f64) -> f64 {
        let mut v: Vec<Duration> = self.per_call.clone();
        v.sort();
        let i = ((v.len() as f64 - 1.0) * p).round() as usize;
        v[i].as_secs_f64() * 1e6
    }
    fn mean_us(&self) -> f64 {
        self.total.as_secs_f64() * 1e6 / self.per_call.len() as f64
    }
}

async fn measure<F>(name: &'static str, iterations: u32, mut call: F) -> Result<Measured>
where
    F: AsyncFnMut() -> Result<()>,
{
    for _ in 0..(iterations / 10).max(10) {
        call().await?;
    }
    let mut per_call = Vec::with_capacity(iterations as usize);
    let start = Instant::now();
    for _ in 0..iterations {
        let t = Instant::now();
        call().await?;
        per_call.push(t.elapsed());
    }
    Ok(Measured {
        name,
        per_call,
        total: start.elapsed(),
    })
}

/// A native minijinja environment loading from a notifier's package assets
/// (`templates/<template>/<channel>/<part>.j2`, what the renderer reads through `assets`),
/// configured like the plugin's (strict undefined variables, one trailing newline trimmed).
fn native_env(assets: &Arc<Assets>) -> minijinja::Environment<'static> {
    let mut env = minijinja::Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_keep_trailing_newline(true);
    env.set_auto_escape_callback(|name| {
        if name.ends_with("email/html.j2") {
            minijinja::AutoEscape::Html
        } else {
            minijinja::AutoEscape::None
        }
    });
    let assets = assets.clone();
    env.set_loader(move |name| {
        let Some(bytes) = assets.read(&format!("templates/{name}")) else {
            return Ok(None);
        };
        String::from_utf8(bytes.to_vec()).map(Some).map_err(|e| {
            minijinja::Error::new(minijinja::ErrorKind::InvalidOperation, e.to_string())
        })
    });
    env
}

/// Renders the request's e-mail fields natively with `env`.
fn render_native(
    env: &minijinja::Environment<'static>,
    request: &RenderRequest,
) -> Result<Content> {
    let data: serde_json::Value = serde_json::from_str(&request.data)?;
    let base = format!("{}/{}", request.template, request.channel.as_str());
    let field = |name: &str| -> Result<Option<String>> {
        let template = match env.get_template(&format!("{base}/{name}.j2")) {
            Ok(t) => t,
            Err(e) if e.kind() == minijinja::ErrorKind::TemplateNotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let out = template.render(&data)?;
        Ok(Some(out.strip_suffix('\n').unwrap_or(&out).to_string()))
    };
    Ok(Content::Email {
        subject: field("subject")?.context("subject template")?,
        html: field("html")?,
        text: field("text")?,
    })
}

pub async fn plugins(iterations: u32, json: bool) -> Result<()> {
    let iterations = iterations.max(10);
    let runtime = PluginRuntime::new(RuntimeConfig {
        cache_dir: belfry::config::default_cache_dir(),
        ..Default::default()
    })?;
    let loaded = plugins::load_all(&runtime, belfry::BUNDLED, None)
        .await?
        .plugins;
    let renderer = loaded
        .iter()
        .find(|p| p.kind() == PluginKind::Renderer)
        .context("no bundled renderer")?;
    let welcome = loaded
        .iter()
        .find(|p| p.description().is_some_and(|d| d.key == "welcome"))
        .context("no bundled welcome notifier")?;
    // The templates are the welcome notifier's package assets, which the renderer is handed.
    let templates = welcome.assets().clone();

    // The request the production path renders: what the welcome notifier builds.
    let payload = r#"{"user": {"id": "ada", "name": "Ada Lovelace", "email": "ada@example.com"}}"#;
    let recipient = Recipient {
        id: "ada".into(),
        email: Some("ada@example.com".into()),
        phone: None,
        data: None,
    };
    let request = runtime
        .build(welcome, payload, &recipient, Channel::Email, Reuse::Fresh)
        .await?;

    // All three must produce the same content, or the comparison means nothing.
    let from_plugin = runtime
        .render(renderer, &request, welcome.assets(), Reuse::Fresh)
        .await?;
    let cached_env = native_env(&templates);
    let native = render_native(&cached_env, &request)?;
    anyhow::ensure!(
        from_plugin == native,
        "native and plugin renders differ:\n{from_plugin:?}\n{native:?}"
    );

    let fresh = measure("fresh instance", iterations, async || {
        runtime
            .render(renderer, &request, welcome.assets(), Reuse::Fresh)
            .await?;
        Ok(())
    })
    .await?;
    // The floor under any fresh call: instantiate a small notifier and call `describe`.
    let floor = measure("fresh, no work", iterations, async || {
        runtime.describe(welcome).await?;
        Ok(())
    })
    .await?;
    let reused = measure("reused instance", iterations, async || {
        runtime
            .render(renderer, &request, welcome.assets(), Reuse::Tenant("bench"))
            .await?;
        Ok(())
    })
    .await?;
    let native_m = measure("native", iterations, async || {
        render_native(&native_env(&templates), &request)?;
        Ok(())
    })
    .await?;
    let native_cached = measure("native, cached", iterations, async || {
        render_native(&cached_env, &request)?;
        Ok(())
    })
    .await?;

    // Each plugin mode next to the native run doing the same work.
    let rows = [
        (&floor, None),
        (&fresh, Some(native_m.mean_us())),
        (&reused, Some(native_cached.mean_us())),
        (&native_m, Some(native_m.mean_us())),
        (&native_cached, Some(native_cached.mean_us())),
    ];
    print_render(&rows, renderer, iterations, json)
}

/// The render table: each mode, and its ratio to the native run doing the same work.
fn print_render(
    rows: &[(&Measured, Option<f64>)],
    renderer: &plugins::Plugin,
    iterations: u32,
    json: bool,
) -> Result<()> {
    if json {
        let out: Vec<_> = rows
            .iter()
            .map(|(m, base)| {
                serde_json::json!({
                    "mode": m.name,
                    "calls": m.per_call.len(),
                    "calls_per_sec": m.calls_per_sec(),
                    "mean_us": m.mean_us(),
                    "p50_us": m.percentile_us(0.5),
                    "p99_us": m.percentile_us(0.99),
                    "vs_native_twin": base.map(|b| m.mean_us() / b),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "render `welcome` e-mail with {} ({} calls each, one task)",
        renderer.reference(),
        iterations
    );
    println!(
        "{:<18} {:>11} {:>10} {:>10} {:>10} {:>10}",
        "mode", "calls/s", "mean µs", "p50 µs", "p99 µs", "vs native"
    );
    for &(m, base) in rows {
        let ratio = base.map_or("-".to_string(), |b| format!("{:.2}×", m.mean_us() / b));
        println!(
            "{:<18} {:>11.0} {:>10.1} {:>10.1} {:>10.1} {:>10}",
            m.name,
            m.calls_per_sec(),
            m.mean_us(),
            m.percentile_us(0.5),
            m.percentile_us(0.99),
            ratio
        );
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// One row per plugin language: the same kind of call in Rust, JavaScript and Python.
// ---------------------------------------------------------------------------------------------

/// A plugin and the call measured on it, for the per-language rows.
struct LanguageCase {
    language: &'static str,
    plugin: &'static str,
    call: &'static str,
    /// Where the plugin comes from when it is not loaded, for the row that says so.
    source: &'static str,
}

const LANGUAGE_CASES: &[LanguageCase] = &[
    LanguageCase {
        language: "Rust",
        plugin: "welcome",
        call: "recipients",
        source: "bundled",
    },
    LanguageCase {
        language: "JavaScript",
        plugin: "invoice-due",
        call: "recipients",
        source: "examples/plugins/js-notifier (belfry-build-js … --package DIR/invoice-due)",
    },
    LanguageCase {
        language: "Rust",
        plugin: "resend",
        call: "send",
        source: "bundled",
    },
    LanguageCase {
        language: "Python",
        plugin: "mailrelay",
        call: "send",
        source: "examples/plugins/python-adapter (belfry-build-py … --package DIR/mailrelay)",
    },
];

/// Measured figures of one language row.
struct LanguageRow {
    case: &'static LanguageCase,
    reference: String,
    component_mib: Option<f64>,
    fresh: Measured,
    warm: Measured,
    /// Resident memory added per warm instance kept (MiB), over [`MEMORY_INSTANCES`].
    mib_per_instance: f64,
}

/// Warm instances kept at once to measure memory per instance (well under the warm pool's
/// 64 idle instances).
const MEMORY_INSTANCES: usize = 16;

/// This process's resident set in bytes (Linux `/proc/self/statm`; 0 elsewhere).
fn resident_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4096)
}

/// A provider API on 127.0.0.1 answering every POST with `{"id": …}`: what `resend` and
/// `mailrelay` read as a successful send. Returns its port.
async fn bench_provider() -> Result<u16> {
    use std::sync::atomic::{AtomicU64, Ordering};
    let n = std::sync::Arc::new(AtomicU64::new(0));
    let app = axum::Router::new().fallback(axum::routing::post(move |_body: axum::body::Bytes| {
        let id = n.fetch_add(1, Ordering::Relaxed);
        async move { axum::Json(serde_json::json!({ "id": format!("bench_{id}") })) }
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(port)
}

/// `belfry bench plugins`, per language: fresh and warm calls per second and resident memory
/// per warm instance of a Rust, a JavaScript and a Python plugin. Notifiers are compared on
/// `recipients` (welcome in Rust, invoice-due in JavaScript), adapters on `send` to a server on
/// 127.0.0.1 (resend in Rust, mailrelay in Python). The JavaScript and Python plugins are the
/// examples, built with their SDKs into the `--plugins` directory; without them their rows say
/// how to build them.
pub async fn languages(iterations: u32, plugins_dir: Option<&Path>, json: bool) -> Result<()> {
    let iterations = iterations.max(10);
    let runtime = language_runtime().await?;
    let loaded = plugins::load_all(&runtime, belfry::BUNDLED, plugins_dir).await?;

    let notifier_payload = |name: &str| -> &'static str {
        if name == "invoice-due" {
            r#"{"invoice_id":"INV-1","amount_cents":12050,"currency":"EUR","due_date":"2026-12-31","pay_url":"https://pay.example.com/INV-1","customers":[{"id":"ada","name":"Ada","email":"ada@example.com"}]}"#
        } else {
            r#"{"user": {"id": "ada", "name": "Ada Lovelace", "email": "ada@example.com"}}"#
        }
    };
    let message = bench_message();

    let mut rows = Vec::new();
    let mut missing = Vec::new();
    for case in LANGUAGE_CASES {
        let Some(plugin) = loaded.plugins.iter().find(|p| p.name() == case.plugin) else {
            missing.push(case);
            continue;
        };
        let call = async |reuse: Reuse<'_>| -> Result<()> {
            if case.call == "send" {
                runtime
                    .send(plugin, &message, reuse)
                    .await?
                    .map_err(|e| anyhow::anyhow!("{} send refused: {e:?}", case.plugin))?;
            } else {
                runtime
                    .recipients(plugin, notifier_payload(case.plugin), reuse)
                    .await?;
            }
            Ok(())
        };
        call(Reuse::Fresh).await.with_context(|| {
            format!("{} {} on {}", case.language, case.call, plugin.reference())
        })?;
        // Memory first, before many fresh calls have left pool slots resident.
        let before = resident_bytes();
        for i in 0..MEMORY_INSTANCES {
            let tenant = format!("bench-mem-{i}");
            call(Reuse::Tenant(&tenant)).await?;
        }
        let mib_per_instance = resident_bytes().saturating_sub(before) as f64
            / MEMORY_INSTANCES as f64
            / (1 << 20) as f64;
        let fresh = measure("fresh", iterations, async || call(Reuse::Fresh).await).await?;
        let warm = measure("warm", iterations, async || {
            call(Reuse::Tenant("bench")).await
        })
        .await?;
        let component_mib = plugin_component_size(plugin).map(|b| b as f64 / (1 << 20) as f64);
        rows.push(LanguageRow {
            case,
            reference: plugin.reference().to_string(),
            component_mib,
            fresh,
            warm,
            mib_per_instance,
        });
    }

    print_languages(&rows, &missing, iterations, json)
}

/// The per-language table, and a row for each example that was not loaded.
fn print_languages(
    rows: &[LanguageRow],
    missing: &[&LanguageCase],
    iterations: u32,
    json: bool,
) -> Result<()> {
    if json {
        let out: Vec<_> = rows
            .iter()
            .map(|r| {
                serde_json::json!({
                    "language": r.case.language,
                    "plugin": r.reference,
                    "call": r.case.call,
                    "component_mib": r.component_mib,
                    "fresh_calls_per_sec": r.fresh.calls_per_sec(),
                    "fresh_p50_us": r.fresh.percentile_us(0.5),
                    "warm_calls_per_sec": r.warm.calls_per_sec(),
                    "warm_p50_us": r.warm.percentile_us(0.5),
                    "resident_mib_per_warm_instance": r.mib_per_instance,
                })
            })
            .chain(missing.iter().map(|c| {
                serde_json::json!({
                    "language": c.language, "plugin": c.plugin, "call": c.call,
                    "skipped": format!("not loaded: build {} and pass --plugins DIR", c.source),
                })
            }))
            .collect();
        // One line, after the render table's JSON: `jq -s` reads both.
        println!("{}", serde_json::json!({ "languages": out }));
        return Ok(());
    }
    println!();
    println!(
        "per language ({iterations} calls each, one task; memory: resident set added per warm instance, {MEMORY_INSTANCES} kept)"
    );
    println!(
        "{:<11} {:<30} {:<10} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "language", "plugin", "call", "MiB", "fresh/s", "p50 µs", "warm/s", "p50 µs", "MiB/inst"
    );
    for r in rows {
        println!(
            "{:<11} {:<30} {:<10} {:>8} {:>9.0} {:>9.1} {:>9.0} {:>9.1} {:>9.2}",
            r.case.language,
            r.reference,
            r.case.call,
            r.component_mib.map_or("-".into(), |m| format!("{m:.1}")),
            r.fresh.calls_per_sec(),
            r.fresh.percentile_us(0.5),
            r.warm.calls_per_sec(),
            r.warm.percentile_us(0.5),
            r.mib_per_instance
        );
    }
    for c in missing {
        println!(
            "{:<11} {:<30} {:<10} not loaded: build {} and pass --plugins DIR",
            c.language, c.plugin, c.call, c.source
        );
    }
    Ok(())
}

/// The plugin runtime of the language rows: `resend` and `mailrelay` send to a provider on
/// 127.0.0.1 that accepts everything.
async fn language_runtime() -> Result<PluginRuntime> {
    let port = bench_provider().await?;
    let api_base = format!("http://127.0.0.1:{port}");
    let allow = format!("127.0.0.1:{port}");
    let mut plugin_config = plugins::PluginConfig::new();
    for (name, key) in [("resend", "api_key"), ("mailrelay", "api_key")] {
        plugin_config.insert(
            name.into(),
            std::collections::BTreeMap::from([
                (key.to_string(), "bench-key".to_string()),
                ("from".into(), "Bench <bench@example.com>".into()),
                ("api_base".into(), api_base.clone()),
                ("allow_http".into(), allow.clone()),
            ]),
        );
    }
    let runtime = PluginRuntime::new(RuntimeConfig {
        cache_dir: belfry::config::default_cache_dir(),
        plugin_config,
        ..Default::default()
    })?;
    Ok(runtime)
}

/// The message the adapters of the language rows send.
fn bench_message() -> plugins::OutgoingMessage {
    plugins::OutgoingMessage {
        delivery_id: "bench-delivery".into(),
        notification_id: "bench-notification".into(),
        tenant: "bench".into(),
        idempotency_key: "belfry-bench".into(),
        attempt: 1,
        channel: Channel::Email,
        recipient: Recipient {
            id: "ada".into(),
            email: Some("ada@example.com".into()),
            phone: None,
            data: None,
        },
        content: Content::Email {
            subject: "Invoice INV-1 is due".into(),
            html: Some("<p>Invoice <strong>INV-1</strong> is due.</p>".into()),
            text: Some("Invoice INV-1 is due.".into()),
        },
        headers: vec![],
    }
}

/// The size of a plugin's component: the bundled bytes, or the file it came from (`origin` is
/// its path, or its package folder).
fn plugin_component_size(plugin: &plugins::Plugin) -> Option<u64> {
    let origin = Path::new(plugin.origin());
    let file = if origin.is_dir() {
        origin.join("plugin.wasm")
    } else {
        origin.to_path_buf()
    };
    std::fs::metadata(file).ok().map(|m| m.len()).or_else(|| {
        belfry::BUNDLED
            .iter()
            .find(|b| b.name == plugin.name())
            .map(|b| b.wasm.len() as u64)
    })
}
