//! `belfry prefs`, `belfry settings` and `belfry suppressions`: the policy inputs from the
//! command line. Values are parsed here only as far as their syntax; the engine validates them
//! and names the field it rejects.

use anyhow::{Result, bail};
use belfry::host::content::Channel;
use belfry::host::policy::inputs;
use belfry::host::policy::{
    Cap, PrefScope, Settings, SettingsPatch, SuppressionReason, SuppressionTarget,
};
use belfry::host::policy::{Severity, TENANT_DEFAULT};
use belfry::host::store::Db;
use belfry::host::trigger::DEFAULT_TENANT;
use clap::{Args, Subcommand};

#[derive(Args, Clone)]
pub struct Who {
    /// The recipient id; `*` for the tenant's defaults, which a recipient's own values override.
    #[arg(long)]
    pub recipient: String,
    #[arg(long, default_value = DEFAULT_TENANT)]
    pub tenant: String,
}

#[derive(Subcommand)]
pub enum PrefsCommand {
    /// The preferences stored for a recipient (or the tenant's defaults); anything not listed
    /// is enabled.
    Get(Who),
    /// Enable, disable or clear one preference.
    Set {
        #[command(flatten)]
        who: Who,
        /// A channel (email, sms, push, chat, in-app, webhook); with --notifier, that notifier
        /// on that channel only.
        #[arg(long)]
        channel: Option<Channel>,
        #[arg(long, conflicts_with_all = ["notifier"])]
        category: Option<String>,
        #[arg(long)]
        notifier: Option<String>,
        #[arg(long, conflicts_with_all = ["disabled", "clear"])]
        enabled: bool,
        #[arg(long, conflicts_with_all = ["clear"])]
        disabled: bool,
        /// Remove the setting: the tenant default (or enabled) applies again.
        #[arg(long)]
        clear: bool,
    },
}

#[derive(Subcommand)]
pub enum SettingsCommand {
    /// A recipient's own settings and what applies to them over the tenant's defaults.
    Get(Who),
    /// Change settings; everything is checked before anything is written.
    Set(SettingsSet),
}

#[derive(Args)]
pub struct SettingsSet {
    #[command(flatten)]
    who: Who,
    /// IANA time zone, e.g. Europe/London.
    #[arg(long)]
    time_zone: Option<String>,
    /// Quiet hours' first minute (local, inclusive): minutes of the day 0..1439 or HH:MM.
    #[arg(long, requires = "quiet_end")]
    quiet_start: Option<String>,
    /// Quiet hours' last minute (local, inclusive): 06:59 means quiet until 07:00.
    #[arg(long, requires = "quiet_start")]
    quiet_end: Option<String>,
    /// Remove quiet hours.
    #[arg(long, conflicts_with_all = ["quiet_start", "quiet_end"])]
    no_quiet_hours: bool,
    /// Suppress notifications below this severity (low, normal, high, critical).
    #[arg(long)]
    severity_floor: Option<Severity>,
    #[arg(long, conflicts_with = "severity_floor")]
    no_severity_floor: bool,
    /// At most MAX deliveries on CHANNEL within WINDOW (e.g. email=3/1h); repeatable.
    #[arg(long, value_name = "CHANNEL=MAX/WINDOW")]
    cap: Vec<String>,
    /// Remove the cap of a channel; repeatable.
    #[arg(long, value_name = "CHANNEL")]
    no_cap: Vec<Channel>,
    /// No repeat of NOTIFIER within DURATION (e.g. order-shipped=10m; `*` for every
    /// notifier without its own); repeatable.
    #[arg(long, value_name = "NOTIFIER=DURATION")]
    cooldown: Vec<String>,
    /// Remove a notifier's cooldown; repeatable.
    #[arg(long, value_name = "NOTIFIER")]
    no_cooldown: Vec<String>,
}

#[derive(Subcommand)]
pub enum SuppressionsCommand {
    /// Never send to an address (on any channel), or to a recipient on one channel.
    Add {
        #[arg(long, conflicts_with_all = ["recipient", "channel"], required_unless_present = "recipient")]
        address: Option<String>,
        #[arg(long, requires = "channel")]
        recipient: Option<String>,
        #[arg(long, requires = "recipient")]
        channel: Option<Channel>,
        /// bounce, complaint, manual or unsubscribe.
        #[arg(long)]
        reason: String,
        #[arg(long)]
        note: Option<String>,
        /// When it stops applying: an RFC 3339 time or a delay (90s, 15m, 2h, 30d).
        #[arg(long)]
        expires: Option<String>,
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
    /// The tenant's active suppressions, newest first.
    List {
        /// Include expired ones.
        #[arg(long)]
        all: bool,
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
    /// Remove a suppression by id.
    Remove {
        id: String,
        #[arg(long, default_value = DEFAULT_TENANT)]
        tenant: String,
    },
}

pub async fn prefs(db: &Db, command: PrefsCommand, json: bool) -> Result<()> {
    match command {
        PrefsCommand::Get(who) => {
            let prefs = inputs::preferences(db, &who.tenant, &who.recipient).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&prefs)?);
            } else if prefs.is_empty() {
                println!(
                    "{}: no preferences stored (everything enabled)",
                    label(&who)
                );
            } else {
                println!("{}:", label(&who));
                for p in prefs {
                    println!(
                        "  {:<17} {:<30} {}",
                        p.scope,
                        p.target,
                        if p.enabled { "enabled" } else { "disabled" }
                    );
                }
            }
            Ok(())
        }
        PrefsCommand::Set {
            who,
            channel,
            category,
            notifier,
            enabled,
            disabled,
            clear,
        } => {
            let scope = match (notifier, category, channel) {
                (Some(n), None, Some(c)) => PrefScope::NotifierChannel(n, c),
                (Some(n), None, None) => PrefScope::Notifier(n),
                (None, Some(c), None) => PrefScope::Category(c),
                (None, None, Some(c)) => PrefScope::Channel(c),
                _ => bail!(
                    "say what the preference is about: --channel, --category, --notifier, or --notifier with --channel"
                ),
            };
            let value = match (enabled, disabled, clear) {
                (true, false, false) => Some(true),
                (false, true, false) => Some(false),
                (false, false, true) => None,
                _ => bail!("say one of --enabled, --disabled or --clear"),
            };
            inputs::set_preference(db, &who.tenant, &who.recipient, &scope, value).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"tenant": who.tenant, "recipient_id": who.recipient,
                        "scope": scope.scope(), "target": scope.target(), "enabled": value})
                );
            } else {
                let said = match value {
                    Some(true) => "enabled",
                    Some(false) => "disabled",
                    None => "cleared",
                };
                println!("{}: {scope} {said}", label(&who));
            }
            Ok(())
        }
    }
}

pub async fn settings(db: &Db, command: SettingsCommand, json: bool) -> Result<()> {
    match command {
        SettingsCommand::Get(who) => {
            let (own, effective) = (
                inputs::settings(db, &who.tenant, &who.recipient).await?,
                inputs::effective_settings(db, &who.tenant, &who.recipient).await?,
            );
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"own": own, "effective": effective})
                    )?
                );
            } else {
                println!("{} (effective, over the tenant's defaults):", label(&who));
                print_settings(&effective);
            }
            Ok(())
        }
        SettingsCommand::Set(a) => {
            let mut patch = SettingsPatch {
                time_zone: a.time_zone.map(Some),
                severity_floor: if a.no_severity_floor {
                    Some(None)
                } else {
                    a.severity_floor.map(Some)
                },
                ..Default::default()
            };
            if a.no_quiet_hours {
                patch.quiet_hours = Some(None);
            } else if let (Some(s), Some(e)) = (&a.quiet_start, &a.quiet_end) {
                patch.quiet_hours = Some(Some((
                    minute("--quiet-start", s)?,
                    minute("--quiet-end", e)?,
                )));
            }
            for c in &a.cap {
                let Some((channel, rest)) = c.split_once('=') else {
                    bail!("--cap `{c}`: expected CHANNEL=MAX/WINDOW, e.g. email=3/1h");
                };
                let Some((max, window)) = rest.split_once('/') else {
                    bail!("--cap `{c}`: expected CHANNEL=MAX/WINDOW, e.g. email=3/1h");
                };
                let channel: Channel = channel
                    .parse()
                    .map_err(|e| anyhow::anyhow!("--cap `{c}`: {e}"))?;
                let max: i64 = max
                    .parse()
                    .map_err(|_| anyhow::anyhow!("--cap `{c}`: MAX must be a whole number"))?;
                let cap = Cap::new(max, crate::durations::duration_secs("--cap", window)?)?;
                patch.caps.push((channel, Some(cap)));
            }
            patch.caps.extend(a.no_cap.iter().map(|c| (*c, None)));
            for c in &a.cooldown {
                let Some((notifier, d)) = c.split_once('=') else {
                    bail!("--cooldown `{c}`: expected NOTIFIER=DURATION, e.g. order-shipped=10m");
                };
                patch.cooldowns.push((
                    notifier.to_string(),
                    Some(crate::durations::duration_secs("--cooldown", d)?),
                ));
            }
            patch
                .cooldowns
                .extend(a.no_cooldown.iter().map(|n| (n.clone(), None)));
            if patch.is_empty() {
                bail!("nothing to change: give at least one setting (see --help)");
            }
            let stored = inputs::set_settings(db, &a.who.tenant, &a.who.recipient, &patch).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&stored)?);
            } else {
                println!("{} (own settings, stored):", label(&a.who));
                print_settings(&stored);
            }
            Ok(())
        }
    }
}

pub async fn suppressions(db: &Db, command: SuppressionsCommand, json: bool) -> Result<()> {
    match command {
        SuppressionsCommand::Add {
            address,
            recipient,
            channel,
            reason,
            note,
            expires,
            tenant,
        } => {
            let target = match (address, recipient, channel) {
                (Some(a), None, None) => SuppressionTarget::Address(a),
                (None, Some(id), Some(channel)) => SuppressionTarget::Recipient { id, channel },
                _ => bail!("give --address, or --recipient with --channel"),
            };
            let reason: SuppressionReason = reason.parse()?;
            let expires = expires
                .map(|e| crate::durations::parse_when("--expires", &e))
                .transpose()?;
            let s = inputs::add_suppression(db, &tenant, &target, reason, note.as_deref(), expires)
                .await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                println!("{}", s.describe());
            }
            Ok(())
        }
        SuppressionsCommand::List { all, tenant } => {
            let list = inputs::suppressions(db, &tenant, all).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if list.is_empty() {
                println!("tenant {tenant}: no suppressions");
            } else {
                for s in list {
                    println!("{}", s.describe());
                }
            }
            Ok(())
        }
        SuppressionsCommand::Remove { id, tenant } => {
            inputs::remove_suppression(db, &tenant, &id).await?;
            if json {
                println!("{}", serde_json::json!({"removed": id, "tenant": tenant}));
            } else {
                println!("suppression {id} removed");
            }
            Ok(())
        }
    }
}

fn label(who: &Who) -> String {
    if who.recipient == TENANT_DEFAULT {
        format!("tenant {} defaults", who.tenant)
    } else {
        format!("recipient {} (tenant {})", who.recipient, who.tenant)
    }
}

fn print_settings(s: &Settings) {
    println!(
        "  time zone       {}",
        s.time_zone.as_deref().unwrap_or("UTC (default)")
    );
    match (s.quiet_start, s.quiet_end) {
        (Some(a), Some(b)) => println!(
            "  quiet hours     {:02}:{:02}–{:02}:{:02} (inclusive)",
            a / 60,
            a % 60,
            b / 60,
            b % 60
        ),
        _ => println!("  quiet hours     none"),
    }
    println!(
        "  severity floor  {}",
        s.severity_floor.map(|f| f.as_str()).unwrap_or("none")
    );
    if s.caps.is_empty() {
        println!("  caps            none");
    }
    for (c, cap) in &s.caps {
        println!(
            "  cap             {c}: {} per {} s",
            cap.max, cap.window_secs
        );
    }
    if s.cooldowns.is_empty() {
        println!("  cooldowns       none");
    }
    for (n, secs) in &s.cooldowns {
        println!("  cooldown        {n}: {secs} s");
    }
}

/// A minute of the day as given: `1320` or `22:00`. Range checks are the engine's.
pub(crate) fn minute(flag: &str, text: &str) -> Result<i64> {
    if let Some((h, m)) = text.split_once(':') {
        let (h, m): (i64, i64) = match (h.parse(), m.parse()) {
            (Ok(h), Ok(m)) if (0..24).contains(&h) && (0..60).contains(&m) => (h, m),
            _ => bail!("{flag} `{text}`: expected HH:MM from 00:00 to 23:59"),
        };
        return Ok(h * 60 + m);
    }
    text.parse()
        .map_err(|_| anyhow::anyhow!("{flag} `{text}`: expected a minute of the day or HH:MM"))
}
