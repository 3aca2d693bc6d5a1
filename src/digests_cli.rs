//! `belfry digests rules upsert|get|list|match`: digest rules from the command line; `belfry
//! digests buckets|bucket|emit`: the buckets held deliveries wait in, and emitting one for
//! hosts that drive flushing themselves. Values are parsed here only as far as their syntax;
//! the engine validates them and names the field.

use anyhow::{Result, bail};
use belfry::host::content::Channel;
use belfry::host::digests::rules::{self, Upserted};
use belfry::host::digests::{
    Bucket, BucketFilter, DigestRule, Emission, GroupBy, Lookup, RuleFilter, RuleSpec, Window,
};
use belfry::host::digests::{buckets, cadence};
use belfry::host::store::Db;
use belfry::host::trigger::DEFAULT_TENANT;
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum DigestsCommand {
    /// Digest rules: which held deliveries collapse into one message, grouped how, per window.
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
    /// Digest buckets, newest first: the held deliveries of one recipient, channel, rule,
    /// group and window.
    Buckets {
        #[arg(long)]
        recipient: Option<String>,
        /// open, emitted or empty.
        #[arg(long)]
        status: Option<String>,
        /// 1–1000.
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(i64).range(1..=1_000))]
        limit: i64,
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
    /// A recipient's own digest cadence per category, replacing the window of the rule that
    /// takes their held deliveries.
    Cadence {
        #[command(subcommand)]
        command: CadenceCommand,
    },
    /// One bucket.
    Bucket {
        id: String,
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
    /// Emit a bucket now if it is due (its window has ended, or it is full): one digest
    /// delivery, sent by the next worker. Emitting again names the same digest delivery;
    /// emitting early says when the bucket is due and changes nothing.
    Emit {
        bucket: String,
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
}

#[derive(Subcommand)]
pub enum CadenceCommand {
    /// instant (never held), hourly, daily (--at HH:MM) or weekly (--day mon --at HH:MM), in the
    /// recipient's time zone.
    Set {
        recipient: String,
        category: String,
        cadence: String,
        #[arg(long)]
        at: Option<String>,
        #[arg(long)]
        day: Option<String>,
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
    /// A recipient's cadences.
    List {
        recipient: String,
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
    /// Back to the rules' windows for a category.
    Clear {
        recipient: String,
        category: String,
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
}

#[derive(Subcommand)]
pub enum RulesCommand {
    /// Publish a rule version (the same content again changes nothing; different content under
    /// a published version is refused: publish a new version).
    Upsert(UpsertArgs),
    /// One rule: its highest version, or --version N.
    Get {
        key: String,
        #[arg(long)]
        version: Option<i64>,
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
    /// Rules by key and version, filtered by exact matches (`--category ''` finds rules that
    /// match any category).
    List {
        #[arg(long)]
        key: Option<String>,
        #[arg(long)]
        channel: Option<Channel>,
        #[arg(long)]
        notifier: Option<String>,
        #[arg(long)]
        category: Option<String>,
        #[arg(long)]
        digest_key: Option<String>,
        #[arg(long)]
        group_by: Option<String>,
        /// Only each key's highest version (the one lookups use).
        #[arg(long)]
        latest: bool,
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
    /// The rule that would take a held delivery with these attributes, and why.
    Match {
        #[arg(long)]
        channel: Channel,
        #[arg(long)]
        notifier: Option<String>,
        #[arg(long)]
        category: Option<String>,
        #[arg(long)]
        digest_key: Option<String>,
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
}

#[derive(Args)]
pub struct UpsertArgs {
    #[arg(long)]
    key: String,
    #[arg(long)]
    version: i64,
    #[arg(long)]
    channel: Channel,
    /// Match only this notifier key.
    #[arg(long)]
    notifier: Option<String>,
    /// Match only this category.
    #[arg(long)]
    category: Option<String>,
    /// Match only deliveries held with this digest key.
    #[arg(long)]
    digest_key: Option<String>,
    /// notifier, category or digest_key.
    #[arg(long)]
    group_by: String,
    /// A fixed window: 15m, 1h, 1d (aligned to the Unix epoch, UTC).
    #[arg(long, conflicts_with_all = ["daily_at", "zone"], required_unless_present = "daily_at")]
    every: Option<String>,
    /// A window from one local time of day to the next: HH:MM, with --zone.
    #[arg(long, requires = "zone")]
    daily_at: Option<String>,
    /// The IANA time zone of --daily-at.
    #[arg(long)]
    zone: Option<String>,
    /// Close a bucket early when it holds this many items.
    #[arg(long)]
    max_items: Option<i64>,
    /// Send the first item of each window at once; digest the rest.
    #[arg(long)]
    first_now: bool,
    #[arg(long, default_value = DEFAULT_TENANT)]
    tenant: String,
}

pub async fn run(db: &Db, command: DigestsCommand, json: bool) -> Result<()> {
    match command {
        DigestsCommand::Rules { command } => rules_command(db, command, json).await,
        DigestsCommand::Buckets {
            recipient,
            status,
            limit,
            tenant,
        } => list_buckets(db, recipient, status, limit, &tenant, json).await,
        DigestsCommand::Cadence { command } => cadence_command(db, command, json).await,
        DigestsCommand::Bucket { id, tenant } => {
            let bucket = buckets::get(db, &tenant, &id).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&bucket)?);
            } else {
                print_bucket(&bucket);
            }
            Ok(())
        }
        DigestsCommand::Emit { bucket, tenant } => emit(db, &bucket, &tenant, json).await,
    }
}

async fn list_buckets(
    db: &Db,
    recipient: Option<String>,
    status: Option<String>,
    limit: i64,
    tenant: &str,
    json: bool,
) -> Result<()> {
    let filter = BucketFilter {
        recipient_id: recipient,
        status,
    };
    let found = buckets::list(db, tenant, &filter, limit.clamp(1, 1000)).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&found)?);
    } else if found.is_empty() {
        println!("no digest buckets match in tenant {tenant}");
    } else {
        found.iter().for_each(print_bucket);
    }
    Ok(())
}

async fn cadence_command(db: &Db, command: CadenceCommand, json: bool) -> Result<()> {
    match command {
        CadenceCommand::Set {
            recipient,
            category,
            cadence: kind,
            at,
            day,
            tenant,
        } => {
            let at = at
                .map(|a| crate::policy_cli::minute("--at", &a))
                .transpose()?;
            let c = cadence::Cadence::parse(&kind, at, day.as_deref())?;
            let set = cadence::set(db, &tenant, &recipient, &category, c).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&set)?);
            } else {
                println!("{recipient}: {category} digests {}", describe_cadence(&c));
            }
        }
        CadenceCommand::List { recipient, tenant } => {
            let found = cadence::list(db, &tenant, &recipient).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&found)?);
            } else if found.is_empty() {
                println!("{recipient} has no cadence of their own: the rules' windows apply");
            } else {
                for s in &found {
                    println!("{}  {}", s.category, describe_cadence(&s.cadence));
                }
            }
        }
        CadenceCommand::Clear {
            recipient,
            category,
            tenant,
        } => {
            let cleared = cadence::clear(db, &tenant, &recipient, &category).await?;
            if json {
                println!("{}", serde_json::json!({ "cleared": cleared }));
            } else if cleared {
                println!("cleared: {recipient}'s {category} digests follow the rules' windows");
            } else {
                println!("{recipient} had no cadence for {category}; nothing changed");
            }
        }
    }
    Ok(())
}

async fn emit(db: &Db, bucket: &str, tenant: &str, json: bool) -> Result<()> {
    let emission = buckets::emit(db, tenant, bucket).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&emission)?);
        return Ok(());
    }
    match emission {
        Emission::Emitted {
            digest_delivery_id,
            items,
            ..
        } => println!(
            "emitted {items} item(s) as digest delivery {digest_delivery_id}; a worker sends it"
        ),
        Emission::AlreadyEmitted {
            status,
            digest_delivery_id: Some(id),
            ..
        } => println!("already {status}, as digest delivery {id}; nothing changed"),
        Emission::AlreadyEmitted { status, .. } => {
            println!("already closed ({status}, nothing to send); nothing changed")
        }
        Emission::Empty { .. } => {
            println!("closed empty: its only item was sent at once (first now)")
        }
        Emission::NotDue { window_end, .. } => {
            bail!(
                "bucket {bucket} is not due: its window ends at {window_end} and it is not full; nothing changed"
            )
        }
    }
    Ok(())
}

async fn rules_command(db: &Db, command: RulesCommand, json: bool) -> Result<()> {
    match command {
        RulesCommand::Upsert(a) => {
            let window = match (&a.every, &a.daily_at, &a.zone) {
                (Some(every), _, _) => {
                    let secs = crate::durations::duration_secs("--every", every)?;
                    if secs % 60 != 0 {
                        bail!("--every `{every}`: a window is a whole number of minutes");
                    }
                    Window::fixed(secs / 60)?
                }
                (None, Some(at), Some(zone)) => {
                    Window::boundary(crate::policy_cli::minute("--daily-at", at)?, zone)?
                }
                _ => bail!("give --every DURATION, or --daily-at HH:MM with --zone"),
            };
            let spec = RuleSpec {
                key: a.key,
                version: a.version,
                channel: a.channel,
                notifier_key: a.notifier,
                category: a.category,
                digest_key: a.digest_key,
                group_by: a.group_by.parse()?,
                window,
                max_items: a.max_items,
                first_now: a.first_now,
            };
            let (rule, upserted) = rules::upsert(db, &a.tenant, &spec).await?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"rule": rule, "upserted": upserted})
                    )?
                );
            } else {
                let said = match upserted {
                    Upserted::Created => "published",
                    Upserted::Unchanged => "already published with this content; nothing changed",
                };
                println!("{said}");
                print_rule(&rule);
            }
        }
        RulesCommand::Get {
            key,
            version,
            tenant,
        } => {
            let rule = rules::get(db, &tenant, &key, version).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rule)?);
            } else {
                print_rule(&rule);
            }
        }
        RulesCommand::List {
            key,
            channel,
            notifier,
            category,
            digest_key,
            group_by,
            latest,
            tenant,
        } => {
            let filter = RuleFilter {
                key,
                channel,
                notifier_key: notifier,
                category,
                digest_key,
                group_by: group_by.map(|g| g.parse::<GroupBy>()).transpose()?,
                latest_only: latest,
            };
            let found = rules::list(db, &tenant, &filter).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&found)?);
            } else if found.is_empty() {
                println!("no digest rules match in tenant {tenant}");
            } else {
                for rule in &found {
                    print_rule(rule);
                }
            }
        }
        RulesCommand::Match {
            channel,
            notifier,
            category,
            digest_key,
            tenant,
        } => {
            let lookup = Lookup {
                channel,
                notifier_key: notifier.as_deref(),
                category: category.as_deref(),
                digest_key: digest_key.as_deref(),
            };
            let found = rules::find_matching(db, &tenant, &lookup).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&found)?);
            } else {
                match found {
                    Some(rule) => print_rule(&rule),
                    None => println!(
                        "no digest rule matches; a held delivery would be sent on its own (no_digest_rule)"
                    ),
                }
            }
        }
    }
    Ok(())
}

fn print_rule(r: &DigestRule) {
    let s = &r.spec;
    let any = |v: &Option<String>| v.clone().unwrap_or_else(|| "any".into());
    println!(
        "{} v{} on {} (tenant {})",
        s.key, s.version, s.channel, r.tenant
    );
    println!(
        "  matches   notifier {}, category {}, digest key {}",
        any(&s.notifier_key),
        any(&s.category),
        any(&s.digest_key)
    );
    println!("  groups by {}", s.group_by);
    println!("  window    {}", s.window.describe());
    if let Some(n) = s.max_items {
        println!("  closes    early at {n} items");
    }
    if s.first_now {
        println!("  first     item of a window sent at once");
    }
}

fn print_bucket(b: &Bucket) {
    println!(
        "{} {} for {} on {} (rule {} v{}{})",
        b.id,
        b.status,
        b.recipient_id,
        b.channel,
        b.rule_key,
        b.rule_version,
        if b.group_value.is_empty() {
            String::new()
        } else {
            format!(", group {}", b.group_value)
        }
    );
    println!("  window    [{}, {})", b.window_start, b.window_end);
    println!("  items     {}", b.items);
    if let Some(first) = &b.first_delivery_id {
        println!("  first     {first} (sent at once)");
    }
    if let Some(d) = &b.digest_delivery_id {
        println!("  digest    {d}");
    }
    if let (Some(by), Some(at)) = (&b.closed_by, &b.closed_at) {
        println!("  closed    at {at} by {}", by.replace('_', " "));
    }
}

fn describe_cadence(c: &cadence::Cadence) -> String {
    let clock = |m: u16| format!("{:02}:{:02}", m / 60, m % 60);
    match c {
        cadence::Cadence::Instant => "instant: never held".into(),
        cadence::Cadence::Hourly => "hourly, on the hour".into(),
        cadence::Cadence::Daily { at_minute } => {
            format!("daily at {} (their time zone)", clock(*at_minute))
        }
        cadence::Cadence::Weekly { weekday, at_minute } => {
            format!(
                "weekly on {weekday} at {} (their time zone)",
                clock(*at_minute)
            )
        }
    }
}
