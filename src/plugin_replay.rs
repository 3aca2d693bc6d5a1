//! `belfry plugin replay`: recorded events through a candidate plugin and the build that ran,
//! and what differs. Nothing is written or sent.

use crate::durations;
use crate::global::{Global, engine_config};
use anyhow::{Context, Result, bail};
use belfry::Engine;
use belfry::host::replay::{self, Change, ReplayOptions, ReplayReport, What};
use clap::Args;
use serde_json::Value;
use std::path::PathBuf;

/// Run the events the database recorded through PACKAGE (a candidate build) and through the
/// build that planned them, and print what differs: recipients, channels, severity, holds,
/// workflow, and the rendered content of each delivery. Nothing is written or sent. A notifier
/// replays the events of its key; a renderer those of the notifiers that render with a
/// renderer of its name. Exit code: 0, or 1 with --fail-on-change when any event changed or
/// the candidate failed on one (for CI gates).
#[derive(Args)]
pub(crate) struct ReplayArgs {
    /// A package folder (manifest.toml, plugin.wasm, assets/), or a plugin's .wasm with its
    /// manifest NAME.toml beside it.
    package: PathBuf,
    /// Only events recorded this long ago or later: 90m, 24h, 7d.
    #[arg(long)]
    since: Option<String>,
    /// Only this tenant's events.
    #[arg(long)]
    tenant: Option<String>,
    /// The most events to replay, newest first; 1–100000.
    #[arg(long, default_value_t = replay::DEFAULT_LIMIT,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=replay::MAX_LIMIT as u64))]
    limit: usize,
    /// Exit with 1 when any event changed or the candidate failed on one.
    #[arg(long)]
    fail_on_change: bool,
}

pub(crate) async fn run(g: &Global, args: ReplayArgs) -> Result<()> {
    let since = match &args.since {
        None => None,
        Some(text) => {
            let secs = durations::duration_secs("--since", text)?;
            if secs <= 0 {
                bail!("--since `{text}`: expected a positive duration like 90m, 24h or 7d");
            }
            Some(belfry::host::time_bounds::before(
                "--since",
                belfry::host::store::now(),
                secs,
            )?)
        }
    };
    if !args.package.is_dir() && args.package.extension().is_none_or(|e| e != "wasm") {
        bail!(
            "{}: expected a package folder, or a .wasm file with its manifest .toml beside it",
            args.package.display()
        );
    }
    // Replay reads recorded events: a database that does not exist has none, and opening it
    // would create one.
    belfry::host::store::require_existing(&g.database_url)?;
    let engine = Engine::open(engine_config(g)?).await?;
    let candidate = engine
        .load_candidate_path(&args.package)
        .await
        .with_context(|| format!("loading {}", args.package.display()))?;
    let options = ReplayOptions {
        since,
        tenant: args.tenant.clone(),
        limit: args.limit,
    };
    let report = engine.replay(&candidate, &options).await?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render(&report));
    }
    if args.fail_on_change && (report.changed > 0 || report.candidate_errors > 0) {
        use std::io::Write;
        std::io::stdout().flush()?;
        std::process::exit(1);
    }
    Ok(())
}

/// The report as text: one block per changed event, then the notes and the summary line.
pub(crate) fn render(report: &ReplayReport) -> String {
    let mut out = String::new();
    for d in &report.differences {
        out.push_str(&format!(
            "event {} (tenant {}, baseline {})\n",
            d.event_id, d.tenant, d.baseline
        ));
        for c in &d.changes {
            out.push_str(&change_lines(c));
        }
        out.push('\n');
    }
    for note in &report.notes {
        out.push_str(&format!("note: {note}\n"));
    }
    out.push_str(&format!(
        "{}: {} events, {} changed, {} errors in the candidate ({} in the baseline)\n",
        report.candidate,
        report.events,
        report.changed,
        report.candidate_errors,
        report.baseline_errors
    ));
    out
}

fn change_lines(c: &Change) -> String {
    let mut at = Vec::new();
    if let Some(r) = &c.recipient {
        at.push(format!("recipient {r}"));
    }
    if let Some(ch) = &c.channel {
        at.push(ch.clone());
    }
    let at = if at.is_empty() {
        String::new()
    } else {
        format!(" [{}]", at.join(", "))
    };
    let what = serde_json::to_value(c.what)
        .ok()
        .and_then(|v| v.as_str().map(String::from))
        .unwrap_or_default();
    match (c.what, &c.before, &c.after) {
        // Content is shown field by field: only the fields that differ.
        (What::Content, Value::Object(b), Value::Object(a)) => {
            let mut s = format!("  content{at}:\n");
            let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
            keys.sort();
            keys.dedup();
            for k in keys {
                let (x, y) = (
                    b.get(k).unwrap_or(&Value::Null),
                    a.get(k).unwrap_or(&Value::Null),
                );
                if x != y {
                    s.push_str(&format!("    {k}: {} → {}\n", short(x), short(y)));
                }
            }
            s
        }
        _ => format!("  {what}{at}: {} → {}\n", short(&c.before), short(&c.after)),
    }
}

/// A value on one line, long text cut (the JSON report has it whole).
fn short(v: &Value) -> String {
    const MAX: usize = 200;
    let text = v.to_string();
    match text.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}
