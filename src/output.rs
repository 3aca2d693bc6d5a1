//! Human-readable output of the CLI commands (the `--json` forms are serde's).

use anyhow::Result;
use belfry::TriggerOutcome;
use belfry::host::deliveries::DeliveryRecord;
use belfry::host::plugins::{Plugin, PluginKind, Registry, RendererChoice};

/// An error's message and then each cause that adds something: a cause whose text the
/// message before it already ends with (an error that shows its source in its own message,
/// as sqlx's and std's do) is left out, so nothing is said twice.
pub fn causes(e: &anyhow::Error) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string().replace('\n', " ");
        let said = out
            .last()
            .is_some_and(|last| last == &text || last.ends_with(&format!(": {text}")));
        if !said && !text.is_empty() {
            out.push(text);
        }
    }
    out
}

/// A failed command's error on stderr: one line `error: MESSAGE: CAUSE: …`, or under `--json`
/// one JSON object `{"error": MESSAGE, "causes": [CAUSE, …]}` (stdout carries only results,
/// so a script reading it never mistakes an error for one).
pub fn print_error(e: &anyhow::Error, json: bool) {
    let mut causes = causes(e);
    let message = if causes.is_empty() {
        "unknown error".to_string()
    } else {
        causes.remove(0)
    };
    if json {
        eprintln!(
            "{}",
            serde_json::json!({ "error": message, "causes": causes })
        );
    } else {
        let mut line = format!("error: {message}");
        for c in &causes {
            line.push_str(": ");
            line.push_str(c);
        }
        eprintln!("{line}");
    }
}

pub fn print_outcome(outcome: &TriggerOutcome) {
    println!(
        "event {}{}",
        outcome.event_id,
        if outcome.duplicate {
            " (duplicate: nothing new was written)"
        } else {
            ""
        }
    );
    for n in &outcome.notifications {
        println!("  notification {} -> {}", n.id, n.recipient_id);
        for d in &n.deliveries {
            println!(
                "    delivery {} {:<8} {}{}",
                d.id,
                d.channel,
                d.status,
                d.status_reason
                    .as_ref()
                    .map(|r| format!(" ({r})"))
                    .unwrap_or_default()
            );
        }
    }
}

/// A fixed-width table of deliveries.
pub fn print_deliveries(rows: &[(String, DeliveryRecord)]) {
    println!(
        "{:<36} {:<10} {:<8} {:<10} {:<20} {:<22} EVENT",
        "DELIVERY", "RECIPIENT", "CHANNEL", "STATUS", "REASON", "SENT BY"
    );
    for (label, d) in rows {
        println!(
            "{:<36} {:<10} {:<8} {:<10} {:<20} {:<22} {}",
            id_label(&d.id),
            d.recipient_id,
            d.channel,
            d.status,
            d.status_reason.as_deref().unwrap_or("-"),
            d.sent_by
                .as_deref()
                .map(|s| s.split('#').next().unwrap_or(s))
                .unwrap_or(if d.channel == "in-app" {
                    "host inbox"
                } else {
                    "-"
                }),
            label
        );
    }
}

/// An id as tables show it: whole, so that it can be pasted into `explain`, `cancel` and the
/// rest. (A shortened form would have to be a prefix those commands accept, and the start of a
/// UUIDv7 is its creation time, which ids made in the same run share.)
pub fn id_label(id: &str) -> String {
    id.to_string()
}

/// The plugins in force, then those that could not be loaded, with why; then the effective
/// routes (which adapter serves each channel, and why) and each notifier's renderer.
pub fn print_plugins(registry: &Registry, json: bool) -> Result<()> {
    let plugins = registry.plugins();
    let broken = registry.broken();
    let renderers = registry.renderer_choices();
    if json {
        return print_plugins_json(registry, &renderers);
    }
    println!(
        "{:<16} {:<9} {:<16} {:<6} {:<14} {:<30} ORIGIN",
        "NAME", "VERSION", "KIND", "WIT", "HASH", "SERVES"
    );
    for p in plugins {
        let serves = serves(registry, &renderers, p);
        println!(
            "{:<16} {:<9} {:<16} {:<6} {:<14} {:<30} {}",
            p.name(),
            p.reference().version,
            // `as_str`: the kind's Display ignores width.
            p.kind().as_str(),
            p.manifest().wit,
            &p.reference().hash[..12],
            serves,
            p.origin()
        );
    }
    for b in broken {
        println!("{:<16} BROKEN: {} ({})", b.name, b.reason, b.path.display());
    }
    println!();
    println!("{:<9} {:<16} {:<9} WHY", "CHANNEL", "ADAPTER", "REASON");
    for r in registry.routes() {
        println!(
            "{:<9} {:<16} {:<9} {}",
            r.channel.as_str(),
            r.adapter,
            r.reason.as_str(),
            r.explain()
        );
    }
    if !renderers.is_empty() {
        println!();
        println!("{:<20} {:<16} WHY", "NOTIFIER", "RENDERER");
        for c in &renderers {
            let why = match &c.problem {
                Some(problem) => problem.clone(),
                None => c.reason.as_str().to_string(),
            };
            println!(
                "{:<20} {:<16} {}",
                c.notifier,
                c.renderer.as_deref().unwrap_or("-"),
                why
            );
        }
    }
    Ok(())
}

/// `plugin list --json`: each plugin in force with its routes or renderer, then the broken.
fn print_plugins_json(registry: &Registry, renderers: &[RendererChoice]) -> Result<()> {
    let plugins = registry.plugins();
    let broken = registry.broken();
    let renderer_of = |p: &Plugin| renderers.iter().find(|c| c.notifier == p.name());
    let list: Vec<_> = plugins
        .iter()
        .map(|p| {
            let mut v = serde_json::json!({
                "name": p.name(),
                "status": "loaded",
                "version": p.reference().version,
                "hash": p.reference().hash,
                "kind": p.kind(),
                "wit": p.manifest().wit,
                "origin": p.origin(),
                "notifier": p.description(),
                "channels": p.manifest().channels,
            });
            match p.kind() {
                // The channels it serves now, why, and what it took them from.
                PluginKind::ChannelAdapter => {
                    v["routes"] = serde_json::json!(
                        registry
                            .routes()
                            .filter(|r| r.adapter == p.name())
                            .collect::<Vec<_>>()
                    );
                }
                PluginKind::Notifier => {
                    v["renderer"] = serde_json::json!(renderer_of(p));
                }
                PluginKind::Renderer => {
                    v["default_renderer"] = serde_json::json!(
                        registry.default_renderer().map(|(n, _)| n) == Some(p.name())
                    );
                }
            }
            v
        })
        .chain(broken.iter().map(|b| {
            serde_json::json!({
                "name": b.name,
                "status": "broken",
                "path": b.path,
                "reason": b.reason,
            })
        }))
        .collect();
    println!("{}", serde_json::to_string_pretty(&list)?);
    Ok(())
}

/// What a plugin serves, as the SERVES column says it.
fn serves(registry: &Registry, renderers: &[RendererChoice], p: &Plugin) -> String {
    let renderer_of = |p: &Plugin| renderers.iter().find(|c| c.notifier == p.name());
    match p.kind() {
        PluginKind::Notifier => {
            let key = p
                .description()
                .map(|d| format!("key {} ({})", d.key, d.category))
                .unwrap_or_default();
            match renderer_of(p).and_then(|c| c.renderer.clone()) {
                Some(r) => format!("{key} via {r}"),
                None => format!("{key}, NO RENDERER"),
            }
        }
        // Each listed channel, and whether this adapter serves it now.
        PluginKind::ChannelAdapter => p
            .manifest()
            .channels
            .iter()
            .map(|c| match registry.route(*c) {
                Some(r) if r.adapter == p.name() => c.as_str().to_string(),
                Some(r) => format!("{c} (not serving: {})", r.adapter),
                None => format!("{c} (not routed)"),
            })
            .collect::<Vec<_>>()
            .join(", "),
        PluginKind::Renderer => match registry.default_renderer() {
            Some((name, why)) if name == p.name() => format!("templates (default: {why})"),
            _ => "templates".into(),
        },
    }
}

pub fn print_check(p: &Plugin, json: bool) -> Result<()> {
    let m = p.manifest();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "ok": true,
                "plugin": p.reference(),
                "manifest": m,
                "describe": p.description(),
            }))?
        );
        return Ok(());
    }
    println!(
        "ok: {} is a valid {} for belfry:plugin@{}",
        p.reference(),
        m.kind,
        m.wit
    );
    if let Some(d) = p.description() {
        println!(
            "describe: key {} version {} category {} channels [{}]{}",
            d.key,
            d.version,
            d.category,
            d.channels
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            if d.description.is_empty() {
                String::new()
            } else {
                format!(" - {}", d.description)
            }
        );
        println!("severity: {} unless the trigger names one", d.severity);
        for f in &d.fallbacks {
            println!(
                "fallback: {} only if the in-app item is unread after {} ms",
                f.channel, f.after_ms
            );
        }
    }
    if !m.channels.is_empty() {
        println!(
            "serves: {}",
            m.channels
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    println!("granted:");
    if m.http.is_empty() && m.files.is_empty() {
        println!("  nothing (no files, no environment, no network)");
    }
    for h in &m.http {
        println!("  outgoing HTTP to {h}");
    }
    for f in &m.files {
        println!(
            "  read-only directory {} at {}",
            f.source.display(),
            f.guest
        );
    }
    println!(
        "limits: memory {} MiB, time {} ms, output {} KiB",
        m.limits.memory_bytes >> 20,
        m.limits.timeout_ms,
        m.limits.output_bytes >> 10
    );
    Ok(())
}

/// Where a delivery stands after a cancel or a deferral.
pub fn print_dispatched(d: &belfry::host::dispatch::Dispatched, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(d)?);
        return Ok(());
    }
    print!("delivery {} is {}", d.delivery_id, d.status);
    if let Some(reason) = &d.reason {
        print!(" ({reason})");
    }
    if let Some(at) = &d.retry_at {
        print!(" until {at}");
    }
    println!();
    Ok(())
}

/// What a trigger would do, per recipient and channel, with every rule the policy looked at.
pub fn print_dry_run(plan: &belfry::host::trigger::DryRun, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(plan)?);
        return Ok(());
    }
    if let Some(existing) = &plan.duplicate_of {
        println!("dry run: a duplicate of event {existing}; a trigger would write nothing");
        return Ok(());
    }
    println!("dry run of {} (nothing written):", plan.notifier);
    for r in &plan.recipients {
        println!("  recipient {}", r.recipient_id);
        for c in &r.channels {
            let why = match &c.decision.outcome {
                belfry::host::policy::Outcome::Allow => match (c.wait_reason, &c.wait_until) {
                    (Some(reason), Some(until)) => format!(" ({reason} until {until})"),
                    _ => String::new(),
                },
                belfry::host::policy::Outcome::Suppress { reason } => format!(" ({reason})"),
                belfry::host::policy::Outcome::Defer { reason, until } => format!(
                    " ({reason} until {})",
                    belfry::host::store::time_text(*until)
                ),
            };
            println!("    {:<8} would {}{why}", c.channel.as_str(), c.would);
            if let Some(digest) = &c.digest {
                println!("      {:<14} {digest}", "digest");
            }
            for check in &c.decision.checks {
                println!(
                    "      {:<14} {} → {}",
                    check.rule, check.inputs, check.result
                );
            }
            print_rendered(c);
        }
    }
    Ok(())
}

/// A previewed channel's content, field by field, each value on lines of its own so that a
/// multi-line body reads as it would arrive.
fn print_rendered(c: &belfry::host::trigger::DryRunChannel) {
    use belfry::host::content::Content;
    if let Some(e) = &c.render_error {
        println!(
            "      {:<14} {:?} failed ({}): {}",
            "render", e.step, e.reason, e.message
        );
    }
    let Some(r) = &c.rendered else { return };
    println!(
        "      {:<14} template {} by {}",
        "rendered", r.request.template, r.rendered_by
    );
    let fields: Vec<(&str, Option<&str>)> = match &r.content {
        Content::Email {
            subject,
            html,
            text,
        } => vec![
            ("subject", Some(subject.as_str())),
            ("text", text.as_deref()),
            ("html", html.as_deref()),
        ],
        Content::Sms { text } => vec![("text", Some(text.as_str()))],
        Content::Push { title, body, data } => vec![
            ("title", Some(title.as_str())),
            ("body", Some(body.as_str())),
            ("data", data.as_deref()),
        ],
        Content::Chat { text, blocks } => {
            vec![("text", Some(text.as_str())), ("blocks", blocks.as_deref())]
        }
        Content::InApp {
            headline,
            body,
            primary_action,
        } => vec![
            ("headline", Some(headline.as_str())),
            ("body", Some(body.as_str())),
            ("action", primary_action.as_ref().map(|a| a.url.as_str())),
        ],
        Content::Webhook { body } => vec![("body", Some(body.as_str()))],
    };
    for (name, value) in fields {
        let Some(value) = value else { continue };
        println!("        {name}:");
        for line in value.lines() {
            println!("          {line}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::causes;

    /// An error that shows its source in its own message and also reports it as its source,
    /// as sqlx's `Io` and many others do.
    #[derive(Debug)]
    struct Echoing(std::io::Error);

    impl std::fmt::Display for Echoing {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "error communicating with database: {}", self.0)
        }
    }

    impl std::error::Error for Echoing {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[test]
    fn each_cause_is_said_once() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let e = anyhow::Error::new(Echoing(refused)).context("opening the database");
        assert_eq!(
            causes(&e),
            [
                "opening the database",
                "error communicating with database: refused"
            ]
        );
        // A cause that adds something is kept.
        let e = anyhow::Error::new(std::io::Error::other("disk full")).context("writing");
        assert_eq!(causes(&e), ["writing", "disk full"]);
    }
}
