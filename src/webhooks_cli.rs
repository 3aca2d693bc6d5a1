//! `belfry webhooks`: provider webhooks already received — replay one through its adapter,
//! purge old raw requests, list a tenant's orphans, show a delivery's feedback.

use anyhow::Result;
use belfry::host::Engine;
use clap::Subcommand;

#[derive(Subcommand)]
pub enum WebhooksCommand {
    /// Process a stored webhook request again through its adapter (as loaded now), checked
    /// against the time it was first received. Events already in the ledger write nothing.
    Replay {
        /// The receipt id a webhook answer (and the log) gives.
        id: String,
    },
    /// Delete raw webhook requests older than DAYS days (0–3653); the events read from them
    /// stay.
    Purge {
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u32).range(0..=3_653))]
        days: u32,
    },
    /// Events whose message no delivery has claimed yet.
    Orphans {
        #[arg(long, default_value = belfry::host::trigger::DEFAULT_TENANT)]
        tenant: String,
    },
    /// A delivery's feedback: its projection and events, in the order they happened.
    Feedback {
        delivery_id: String,
        #[arg(long, default_value = belfry::host::trigger::DEFAULT_TENANT)]
        tenant: String,
    },
}

pub async fn run(engine: &Engine, command: WebhooksCommand, json: bool) -> Result<()> {
    match command {
        WebhooksCommand::Replay { id } => {
            let received = engine.replay_webhook(&id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&received)?);
                return Ok(());
            }
            println!(
                "webhook {}: {} event(s)",
                received.receipt_id,
                received.events.len()
            );
            for e in &received.events {
                let what = match (&e.delivery_id, e.duplicate) {
                    (_, true) => "already recorded".to_string(),
                    (Some(d), false) => format!("recorded for delivery {d}"),
                    (None, false) => "recorded as an orphan".to_string(),
                };
                println!("  {} {}: {what}", e.provider_event_id, e.kind);
            }
        }
        WebhooksCommand::Purge { days } => {
            let n = engine.purge_webhook_receipts(days).await?;
            if json {
                println!("{}", serde_json::json!({ "purged": n }));
            } else {
                println!("purged {n} webhook request(s) older than {days} day(s)");
            }
        }
        WebhooksCommand::Orphans { tenant } => {
            let events = engine.feedback_orphans(&tenant).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&events)?);
                return Ok(());
            }
            if events.is_empty() {
                println!("no orphan feedback in tenant {tenant}");
            }
            for e in events {
                println!(
                    "{} {} {} message {} (received {})",
                    e.adapter, e.provider_event_id, e.kind, e.provider_message_id, e.received_at
                );
            }
        }
        WebhooksCommand::Feedback {
            delivery_id,
            tenant,
        } => {
            let (projection, events) = engine.delivery_feedback(&tenant, &delivery_id).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({ "projection": projection, "events": events })
                    )?
                );
                return Ok(());
            }
            match &projection {
                Some(p) => println!(
                    "delivery {delivery_id}: {} (last {} at {}){}",
                    p.status,
                    p.last_event,
                    p.last_event_at,
                    p.terminal
                        .map(|t| format!(", terminal {t}"))
                        .unwrap_or_default()
                ),
                None => println!("delivery {delivery_id}: no provider feedback yet"),
            }
            for e in events {
                println!(
                    "  {} {} {}{}",
                    e.occurred_at.as_deref().unwrap_or(&e.received_at),
                    e.kind,
                    e.provider_event_id,
                    e.reason.map(|r| format!(": {r}")).unwrap_or_default()
                );
            }
        }
    }
    Ok(())
}
