//! One-shot commands on events and deliveries: migrate, trigger, cancel, defer, queue,
//! signal, run, explain.

use crate::global::{Global, engine_config};
use crate::{durations, ids, output};
use anyhow::{Context, Result};
use belfry::{Engine, TriggerRequest};
use clap::Args;

// The options of `belfry trigger` (its help text is the `Trigger` command's).
#[derive(Args)]
pub(crate) struct TriggerArgs {
    /// The notifier key, e.g. `welcome`.
    pub(crate) notifier: String,
    /// The event payload, a JSON object.
    #[arg(long)]
    pub(crate) data: String,
    #[arg(long, default_value = belfry::host::trigger::DEFAULT_TENANT)]
    pub(crate) tenant: String,
    /// Repeating a trigger with the same key writes nothing and returns the original ids.
    #[arg(long)]
    pub(crate) idempotency_key: Option<String>,
    /// Only plan: leave the deliveries pending.
    #[arg(long)]
    pub(crate) no_dispatch: bool,
    /// Plan and run the plan-time policy, print what would happen and why, write nothing.
    #[arg(long, conflicts_with = "no_dispatch")]
    pub(crate) dry_run: bool,
    /// With --dry-run: also build, render and validate each delivery's content, and print it
    /// (calls the notifier and the renderer; still writes and sends nothing).
    #[arg(long, requires = "dry_run")]
    pub(crate) render: bool,
    /// low, normal, high or critical (critical bypasses preferences, cooldowns, caps and
    /// quiet hours, never a suppression). Default: the notifier's declared severity.
    #[arg(long)]
    pub(crate) severity: Option<belfry::host::policy::Severity>,
}

/// `belfry migrate`.
pub(crate) async fn migrate(g: &Global) -> Result<()> {
    belfry::host::store::open(&g.database_url)
        .await
        .context("migrating")?;
    if g.json {
        println!(
            "{}",
            serde_json::json!({"migrated": true, "database_url": g.database_url})
        );
    } else {
        println!("database {} is up to date", g.database_url);
    }
    Ok(())
}

/// `belfry trigger`: trigger, then (unless told not to) dispatch the event's deliveries.
pub(crate) async fn trigger(g: &Global, args: TriggerArgs) -> Result<()> {
    let TriggerArgs {
        notifier,
        data,
        tenant,
        idempotency_key,
        no_dispatch,
        dry_run,
        render,
        severity,
    } = args;
    let payload: serde_json::Value = serde_json::from_str(&data)
        .with_context(|| format!("--data is not valid JSON ({data})"))?;
    let engine = Engine::open(engine_config(g)?).await?;
    let mut req = TriggerRequest::new(notifier, payload).tenant(tenant);
    req.severity = severity;
    if let Some(k) = idempotency_key {
        req = req.idempotency_key(k);
    }
    if dry_run {
        let plan = if render {
            engine.preview(&req).await?
        } else {
            engine.dry_run(&req).await?
        };
        return output::print_dry_run(&plan, g.json);
    }
    let mut outcome = engine.trigger(&req).await?;
    if !no_dispatch && !outcome.duplicate {
        engine.dispatch_event(&outcome.event_id).await?;
        outcome = belfry::TriggerOutcome {
            duplicate: outcome.duplicate,
            ..engine.event(&outcome.event_id).await?
        };
    }
    if g.json {
        println!("{}", serde_json::to_string_pretty(&outcome)?);
    } else {
        output::print_outcome(&outcome);
    }
    Ok(())
}

/// `belfry cancel`.
pub(crate) async fn cancel(g: &Global, delivery_id: String, reason: String) -> Result<()> {
    let db = belfry::host::store::open(&g.database_url).await?;
    let delivery_id = ids::resolve(&db, &delivery_id, &[ids::DELIVERY]).await?;
    let d = belfry::host::dispatch::executor::cancel(&db, &delivery_id, &reason).await?;
    output::print_dispatched(&d, g.json)
}

/// `belfry defer`.
pub(crate) async fn defer(
    g: &Global,
    delivery_id: String,
    until: String,
    reason: String,
) -> Result<()> {
    let until = durations::parse_when("--until", &until)?;
    let db = belfry::host::store::open(&g.database_url).await?;
    let delivery_id = ids::resolve(&db, &delivery_id, &[ids::DELIVERY]).await?;
    let d = belfry::host::dispatch::executor::defer(&db, &delivery_id, until, &reason).await?;
    output::print_dispatched(&d, g.json)
}

/// `belfry queue`: jobs by state.
pub(crate) async fn queue(g: &Global) -> Result<()> {
    let db = belfry::host::store::open(&g.database_url).await?;
    let stats = belfry::host::jobs::stats(&db).await?;
    if g.json {
        println!("{}", serde_json::to_string(&stats)?);
    } else {
        println!(
            "available {}  deferred {}  retrying {}  running {}",
            stats.available, stats.deferred, stats.retrying, stats.running
        );
    }
    Ok(())
}

/// `belfry signal`.
pub(crate) async fn signal(
    g: &Global,
    actor: String,
    name: String,
    tenant: String,
    payload: String,
) -> Result<()> {
    let db = belfry::host::store::open(&g.database_url).await?;
    let payload: serde_json::Value =
        serde_json::from_str(&payload).context("--payload is not JSON")?;
    let out =
        belfry::host::workflows::signals::signal(&db, &tenant, &actor, &name, &payload).await?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        println!("signal {} `{name}` moved {} run(s)", out.id, out.runs.len());
        for r in &out.runs {
            println!(
                "  run {} (notification {}) before step {}: {:?}",
                r.run_id, r.notification_id, r.step_key, r.effect
            );
        }
    }
    Ok(())
}

/// `belfry run`: a workflow run and its transitions.
pub(crate) async fn workflow_run(g: &Global, id: String) -> Result<()> {
    let db = belfry::host::store::open(&g.database_url).await?;
    let id = ids::resolve(&db, &id, &[ids::RUN, ids::NOTIFICATION, ids::DELIVERY]).await?;
    let run = belfry::host::workflows::runs::record(&db, &id)
        .await?
        .with_context(|| {
            format!("no workflow run, notification or step delivery has the id `{id}`")
        })?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&run)?);
    } else {
        print!("{run}");
    }
    Ok(())
}

/// `belfry explain`.
pub(crate) async fn explain(g: &Global, id: String) -> Result<()> {
    let db = belfry::host::store::open(&g.database_url).await?;
    let kinds = [ids::EVENT, ids::NOTIFICATION, ids::DELIVERY, ids::RUN];
    let id = ids::resolve(&db, &id, &kinds).await?;
    let explanation = belfry::host::explain::explain(&db, &id).await?;
    if g.json {
        println!("{}", serde_json::to_string_pretty(&explanation)?);
    } else {
        print!("{explanation}");
    }
    Ok(())
}
