//! `belfry demo`: the whole lifecycle with nothing configured — a fresh SQLite database, the
//! bundled plugins, and a local receiver for the webhook adapter that verifies signatures.

use crate::output;
use anyhow::{Context, Result, bail};
use base64::Engine as _;
use belfry::host::deliveries::DeliveryRecord;
use belfry::host::digests::Bucket;
use belfry::receiver::Receiver;
use belfry::{Engine, EngineConfig, TriggerRequest};
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// What the demo's steps left: each delivery by its event, the step log, and the deliveries
/// worth explaining.
struct Ran {
    rows: Vec<(String, DeliveryRecord)>,
    log: Vec<serde_json::Value>,
    invalid_delivery: Option<String>,
    deferred_delivery: Option<String>,
}

pub async fn run(cache_dir: &Option<PathBuf>, database: Option<PathBuf>, json: bool) -> Result<()> {
    let tmp = tempfile::Builder::new().prefix("belfry-demo-").tempdir()?;
    let db_path = match database {
        Some(path) => {
            if path.exists() {
                bail!(
                    "{} already exists; the demo starts from a fresh database (remove it or pick another path)",
                    path.display()
                );
            }
            path
        }
        None => tmp.path().join("demo.db"),
    };
    let database_url = format!("sqlite://{}", db_path.display());
    let (engine, receiver) = open(cache_dir, &database_url).await?;
    if !json {
        print_header(&engine, &database_url, &receiver);
    }
    set_up_policy(&engine, json).await?;
    let mut ran = run_steps(&engine, &steps(), json).await?;
    let digests = settle(&engine, &mut ran.rows).await?;
    let temporary = tmp.path().starts_with(std::env::temp_dir()) && db_path.starts_with(tmp.path());
    report(
        &engine,
        &receiver,
        &database_url,
        ran,
        &digests,
        temporary,
        json,
    )
    .await
}

/// The engine on a fresh database, its webhook adapter pointed at a local receiver that checks
/// signatures.
async fn open(cache_dir: &Option<PathBuf>, database_url: &str) -> Result<(Engine, Receiver)> {
    let secret = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 24]>())
    );
    let receiver = Receiver::start(&secret)
        .await
        .context("starting the local webhook receiver")?;
    let mut plugin_config = belfry::host::plugins::PluginConfig::new();
    plugin_config.insert(
        "webhook".into(),
        BTreeMap::from([
            ("url".into(), receiver.url()),
            ("secret".into(), secret.clone()),
        ]),
    );
    let engine = Engine::open(EngineConfig {
        database_url: database_url.to_string(),
        bundled: belfry::BUNDLED,
        cache_dir: cache_dir.clone(),
        plugin_config,
        ..Default::default()
    })
    .await?;
    Ok((engine, receiver))
}

fn print_header(engine: &Engine, database_url: &str, receiver: &Receiver) {
    println!("belfry demo");
    println!("  database: {database_url}");
    println!(
        "  webhook receiver: {} (verifies Standard Webhooks signatures)",
        receiver.url()
    );
    println!(
        "  plugins: {}",
        engine
            .plugins()
            .iter()
            .map(|p| p.reference().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!();
}

/// Alan's quiet hours, Grace's suppressed phone, and the `threads` digest rule.
async fn set_up_policy(engine: &Engine, json: bool) -> Result<()> {
    // Policy: Alan keeps quiet hours in Tokyo around this very moment (so the demo shows a
    // deferral), and Grace's phone number is suppressed after a complaint.
    let tokyo = chrono::Utc::now().with_timezone(&chrono_tz::Asia::Tokyo);
    let minute = i64::from(chrono::Timelike::hour(&tokyo) * 60 + chrono::Timelike::minute(&tokyo));
    let quiet = ((minute + 1380) % 1440, (minute + 59) % 1440);
    engine
        .set_settings(
            "default",
            "alan",
            &belfry::host::policy::SettingsPatch {
                time_zone: Some(Some("Asia/Tokyo".into())),
                quiet_hours: Some(Some(quiet)),
                ..Default::default()
            },
        )
        .await?;
    engine
        .add_suppression(
            "default",
            &belfry::host::policy::SuppressionTarget::Address("+1 555 555 0100".into()),
            belfry::host::policy::SuppressionReason::Complaint,
            Some("replied STOP"),
            None,
        )
        .await?;
    // Digests: comments on a thread collapse into one email, closed early at three items (an
    // hourly window would otherwise keep the demo waiting until the hour ends).
    let threads = belfry::host::digests::RuleSpec {
        key: "threads".into(),
        version: 1,
        channel: belfry::host::content::Channel::Email,
        notifier_key: Some("comment".into()),
        category: None,
        digest_key: None,
        group_by: belfry::host::digests::GroupBy::DigestKey,
        window: belfry::host::digests::Window::fixed(60)?,
        max_items: Some(3),
        first_now: false,
    };
    engine.upsert_digest_rule("default", &threads).await?;
    if !json {
        let hm = |m: i64| format!("{:02}:{:02}", m / 60, m % 60);
        println!(
            "policy: alan's quiet hours are {}–{} in Asia/Tokyo (now {}); grace's phone +15555550100 is suppressed (complaint)",
            hm(quiet.0),
            hm(quiet.1),
            tokyo.format("%H:%M")
        );
        println!(
            "digests: rule `threads` holds comment emails per thread for an hour, or until 3 items"
        );
        println!();
    }
    Ok(())
}

/// The triggers the demo sends, each with what it shows.
fn steps() -> Vec<(&'static str, TriggerRequest)> {
    let order = json!({
        "order_id": "1042",
        "carrier": "DHL",
        "tracking_url": "https://track.example.com/1042",
        "customers": [
            {"id": "grace", "name": "Grace Hopper", "email": "grace@example.com", "phone": "+15555550100"},
            {"id": "alan", "name": "Alan Turing", "email": "alan@example.com"},
            {"id": "grace", "name": "Grace Hopper", "email": "grace@example.com", "phone": "+15555550100"}
        ]
    });
    vec![
        (
            "welcome Ada",
            TriggerRequest::new(
                "welcome",
                json!({"user": {"id": "ada", "name": "Ada Lovelace", "email": "ada@example.com"}}),
            )
            .idempotency_key("signup-ada"),
        ),
        (
            "order 1042 shipped (grace listed twice)",
            TriggerRequest::new("order-shipped", order.clone()).idempotency_key("order-1042"),
        ),
        (
            "order 1042 shipped, sent again",
            TriggerRequest::new("order-shipped", order).idempotency_key("order-1042"),
        ),
        (
            "order 1043: a line break in the order id",
            TriggerRequest::new(
                "order-shipped",
                json!({
                    "order_id": "1043\r\nBcc: everyone@example.com",
                    "carrier": "UPS",
                    "tracking_url": "https://track.example.com/1043",
                    "customer": {"id": "linus", "name": "Linus", "email": "linus@example.com"}
                }),
            )
            .idempotency_key("order-1043"),
        ),
        (
            "Ada mentioned in the Q3 plan (the email only if the in-app item is unread in 15 min)",
            TriggerRequest::new(
                "mention",
                json!({"author": "Grace", "document": "Q3 plan", "url": "https://app.example.com/d/42",
                       "mentioned": {"id": "ada", "name": "Ada Lovelace", "email": "ada@example.com"}}),
            )
            .idempotency_key("mention-ada-q3"),
        ),
        (
            "security alert for Alan in his quiet hours (critical: sent anyway)",
            TriggerRequest::new(
                "security-alert",
                json!({"user": {"id": "alan", "email": "alan@example.com"},
                       "what": "a new sign-in from Firefox on Linux"}),
            )
            .idempotency_key("alert-alan-1"),
        ),
        (
            "Grace comments on the Q3 plan thread Ada follows (email held for digest)",
            comment("Grace", "Looks good to me"),
        ),
        (
            "Alan comments on the same thread",
            comment("Alan", "Can we move the launch?"),
        ),
        (
            "Linus comments too: the third item closes the digest",
            comment("Linus", "Ship it"),
        ),
        (
            "welcome without a user id",
            TriggerRequest::new("welcome", json!({"user": {"email": "nobody@example.com"}})),
        ),
    ]
}

/// Triggers and dispatches each step, printing a line per step.
async fn run_steps(engine: &Engine, steps: &[(&str, TriggerRequest)], json: bool) -> Result<Ran> {
    let mut rows = Vec::new();
    let mut log = Vec::new();
    let mut invalid_delivery = None;
    let mut deferred_delivery = None;
    for (label, req) in steps {
        match engine.trigger(req).await {
            Ok(outcome) => {
                if outcome.duplicate {
                    log.push(
                        json!({"step": label, "event_id": outcome.event_id, "duplicate": true}),
                    );
                    if !json {
                        println!(
                            "- {label}: duplicate of event {}, nothing written",
                            output::id_label(&outcome.event_id)
                        );
                    }
                    continue;
                }
                engine.dispatch_event(&outcome.event_id).await?;
                let outcome = engine.event(&outcome.event_id).await?;
                let count: usize = outcome
                    .notifications
                    .iter()
                    .map(|n| n.deliveries.len())
                    .sum();
                if !json {
                    println!(
                        "- {label}: event {}, {} notification(s), {count} {}",
                        output::id_label(&outcome.event_id),
                        outcome.notifications.len(),
                        if count == 1 { "delivery" } else { "deliveries" }
                    );
                }
                log.push(json!({"step": label, "event_id": outcome.event_id, "duplicate": false}));
                for n in outcome.notifications {
                    for d in n.deliveries {
                        match d.status_reason.as_deref() {
                            Some("content_invalid") => invalid_delivery = Some(d.id.clone()),
                            Some("quiet_hours") => deferred_delivery = Some(d.id.clone()),
                            _ => {}
                        }
                        rows.push((output::id_label(&outcome.event_id), d));
                    }
                }
            }
            Err(e) => {
                log.push(json!({"step": label, "rejected": e.to_string()}));
                if !json {
                    println!("- {label}: rejected, nothing stored: {e}");
                }
            }
        }
    }
    Ok(Ran {
        rows,
        log,
        invalid_delivery,
        deferred_delivery,
    })
}

/// Sends what is still pending (the digest), brings every row up to date, and adds the digest
/// deliveries; returns the emitted digests.
async fn settle(engine: &Engine, rows: &mut Vec<(String, DeliveryRecord)>) -> Result<Vec<Bucket>> {
    // The digest is a delivery of its own (of a new event): send it, then show every delivery
    // as it ended, the held emails included.
    engine.dispatch_pending().await?;
    for (_, d) in rows.iter_mut() {
        if let Some(now) = engine.delivery(&d.id).await? {
            *d = now;
        }
    }
    let digests = engine
        .digest_buckets(
            "default",
            &belfry::host::digests::BucketFilter {
                recipient_id: Some("ada".into()),
                status: Some("emitted".into()),
            },
            10,
        )
        .await?;
    for b in &digests {
        if let Some(id) = &b.digest_delivery_id
            && let Some(d) = engine.delivery(id).await?
        {
            rows.push((output::id_label(&d.event_id), d));
        }
    }
    Ok(digests)
}

/// The table of deliveries, what the receiver verified, and where to look next.
async fn report(
    engine: &Engine,
    receiver: &Receiver,
    database_url: &str,
    ran: Ran,
    digests: &[Bucket],
    temporary: bool,
    json: bool,
) -> Result<()> {
    let Ran {
        rows,
        log,
        invalid_delivery,
        deferred_delivery,
    } = ran;
    let received = receiver.received();
    let verified = received.iter().filter(|r| r.verified).count();
    let explanation = match &invalid_delivery {
        Some(id) => Some(engine.explain(id).await?),
        None => None,
    };
    if json {
        let deliveries: Vec<_> = rows.iter().map(|(_, d)| d).collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "database_url": database_url,
                "steps": log,
                "deliveries": deliveries,
                "webhooks_received": received.len(),
                "webhooks_verified": verified,
                "explanation": explanation,
            }))?
        );
        return Ok(());
    }
    println!();
    output::print_deliveries(&rows);
    println!();
    println!(
        "webhook receiver: {} request(s), {verified} with a valid Standard Webhooks signature",
        received.len()
    );
    if let Some(e) = explanation {
        println!();
        println!("Why did a delivery fail? `belfry explain {}`:", e.id);
        print!("{e}");
    }
    if let Some(b) = digests.first() {
        println!();
        println!(
            "Three comment emails went out as one digest: `belfry digests bucket {}`, `belfry explain {}`.",
            b.id,
            b.digest_delivery_id.as_deref().unwrap_or_default()
        );
    }
    if let Some(id) = deferred_delivery {
        println!();
        println!(
            "Why is a delivery waiting? `belfry explain {id}` shows its policy check, rule by rule."
        );
    }
    if temporary {
        println!();
        println!("(the demo database was temporary; pass --database PATH to keep it)");
    }
    Ok(())
}

/// A comment by `author` on the thread Ada follows.
fn comment(author: &str, text: &str) -> TriggerRequest {
    TriggerRequest::new(
        "comment",
        json!({"thread": {"id": "q3-plan", "title": "Q3 plan"}, "author": {"name": author},
               "text": text,
               "followers": [{"id": "ada", "name": "Ada Lovelace", "email": "ada@example.com"}]}),
    )
}
