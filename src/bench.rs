//! `belfry bench plugins`: what a sandboxed render costs next to the same render done
//! natively, measured in one run on this machine.
//!
//! Three ways to render the `welcome` e-mail (subject, html, text) for the same data:
//! - **fresh**: the `templates` plugin on a fresh instance per call ([`Reuse::Fresh`]);
//! - **reused**: the same plugin on a warm instance kept for one tenant ([`Reuse::Tenant`],
//!   the path trigger and dispatch take);
//! - **native**: minijinja in this process, reading and parsing the same template files per
//!   call (the same work as a fresh instance);
//! - **native, cached**: minijinja with one environment that keeps its parsed templates (the
//!   same work as a reused instance, whose guest caches them too).
//!
//! Each plugin mode is compared with its native twin. Calls run one after another on one
//! task, so the figures are per core.

use anyhow::{Context, Result};
use belfry::host::content::{Channel, Content, Recipient, RenderRequest};
use belfry::host::plugins::{self, PluginKind, PluginRuntime, Reuse, RuntimeConfig};
use std::path::Path;
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

/// A native minijinja environment loading from the templates directory, configured like the
/// plugin's (strict undefined variables, one trailing newline trimmed).
fn native_env(dir: &Path) -> minijinja::Environment<'static> {
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
    let dir = dir.to_path_buf();
    env.set_loader(move |name| match std::fs::read_to_string(dir.join(name)) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(minijinja::Error::new(
            minijinja::ErrorKind::InvalidOperation,
            e.to_string(),
        )),
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
    let template_dir = renderer
        .manifest()
        .files
        .first()
        .context("the templates plugin has no granted directory")?
        .source
        .clone();

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
    let cached_env = native_env(&template_dir);
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
        render_native(&native_env(&template_dir), &request)?;
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
    for (m, base) in rows {
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
