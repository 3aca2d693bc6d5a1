//! Human-readable output of the CLI commands (the `--json` forms are serde's).

use anyhow::Result;
use belfry::TriggerOutcome;
use belfry::host::plugins::{Plugin, PluginKind};
use belfry::host::traces::DeliveryRecord;

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
        "{:<14} {:<10} {:<8} {:<10} {:<20} {:<22} EVENT",
        "DELIVERY", "RECIPIENT", "CHANNEL", "STATUS", "REASON", "SENT BY"
    );
    for (label, d) in rows {
        println!(
            "{:<14} {:<10} {:<8} {:<10} {:<20} {:<22} {}",
            short(&d.id),
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

/// The last 12 characters of a UUIDv7: the random part, unique enough to read.
pub fn short(id: &str) -> String {
    format!("…{}", &id[id.len().saturating_sub(12)..])
}

pub fn print_plugins(plugins: &[Plugin], json: bool) -> Result<()> {
    if json {
        let list: Vec<_> = plugins
            .iter()
            .map(|p| {
                serde_json::json!({
                    "name": p.name(),
                    "version": p.reference().version,
                    "hash": p.reference().hash,
                    "kind": p.kind(),
                    "wit": p.manifest().wit,
                    "origin": p.origin(),
                    "notifier": p.description(),
                    "channels": p.manifest().channels,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    println!(
        "{:<16} {:<9} {:<16} {:<6} {:<14} {:<30} ORIGIN",
        "NAME", "VERSION", "KIND", "WIT", "HASH", "SERVES"
    );
    for p in plugins {
        let serves = match p.kind() {
            PluginKind::Notifier => p
                .description()
                .map(|d| format!("key {} ({})", d.key, d.category))
                .unwrap_or_default(),
            PluginKind::ChannelAdapter => p
                .manifest()
                .channels
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            PluginKind::Renderer => "templates".into(),
        };
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
    Ok(())
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
        }
    }
    Ok(())
}
