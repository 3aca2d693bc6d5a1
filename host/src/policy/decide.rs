//! The policy decision for one delivery, in a fixed order where the first failure wins:
//!
//! 0. at send time, for a fallback delivery: was the in-app item already read? (`already_read`);
//! 1. suppression list (an address or the recipient on this channel) — even for critical;
//! 2. channel preference; 3. category preference; 4. notifier preferences (the notifier, then
//!    the notifier on this channel); 5. severity floor; 6. cooldown per (recipient, notifier);
//! 7. cap per channel; 8. quiet hours, which defer rather than suppress.
//!
//! Rules 2–8 do not apply to a critical notification; the record says they were bypassed.
//! The inputs are read in one query for many recipients ([`Inputs::load_many`]); cooldowns and caps,
//! which count past deliveries, query only when one is configured.

use super::inputs::{self, Settings, Suppression, TENANT_DEFAULT};
use super::{Severity, reason};
use crate::content::{Channel, Recipient};
use crate::store::{self, Conn, StoreError};
use crate::time_bounds;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::Row;
use std::collections::HashMap;
use std::fmt;

/// When a decision is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Checkpoint {
    /// Inside the trigger transaction, before the delivery exists.
    Plan,
    /// When a worker is about to send, re-reading every input.
    Send,
}

impl Checkpoint {
    pub fn as_str(self) -> &'static str {
        match self {
            Checkpoint::Plan => "plan",
            Checkpoint::Send => "send",
        }
    }
}

/// What the policy decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Allow,
    /// Never sent; the reason code says why.
    Suppress {
        reason: &'static str,
    },
    /// Not before `until` (the end of quiet hours in the recipient's zone).
    Defer {
        reason: &'static str,
        until: DateTime<Utc>,
    },
}

/// One rule looked at: the inputs it used and what it concluded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuleCheck {
    pub rule: &'static str,
    pub inputs: String,
    /// `pass`, `bypassed (critical)`, or the reason code that decided.
    pub result: String,
}

/// A decision with its record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Decision {
    pub checkpoint: Checkpoint,
    #[serde(flatten)]
    pub outcome: Outcome,
    pub checks: Vec<RuleCheck>,
}

impl Decision {
    /// The stable code stored as the trace's reason: `allowed` or the deciding reason.
    pub fn code(&self) -> &'static str {
        match self.outcome {
            Outcome::Allow => "allowed",
            Outcome::Suppress { reason } | Outcome::Defer { reason, .. } => reason,
        }
    }

    /// The inputs of the rule that decided (the last one looked at), for a status detail.
    pub fn why(&self) -> &str {
        self.checks.last().map_or("", |c| c.inputs.as_str())
    }
}

impl fmt::Display for Decision {
    /// The checkpoint, then each rule as `rule [inputs] → result`, separated by `; ` (which
    /// `explain` turns into one line per rule; inputs never contain it).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} checkpoint: ", self.checkpoint.as_str())?;
        let parts: Vec<String> = self
            .checks
            .iter()
            .map(|c| format!("{} [{}] → {}", c.rule, c.inputs, c.result))
            .collect();
        write!(f, "{}", parts.join("; "))?;
        if let Outcome::Defer { until, .. } = &self.outcome {
            write!(f, "; deferred until {}", store::time_text(*until))?;
        }
        Ok(())
    }
}

/// The delivery a decision is about.
#[derive(Clone, Debug)]
pub struct Subject<'a> {
    pub tenant: &'a str,
    pub recipient: &'a Recipient,
    pub notifier_key: &'a str,
    pub category: &'a str,
    pub channel: Channel,
    pub severity: Severity,
    pub notification_id: &'a str,
    pub notification_created_at: DateTime<Utc>,
    pub delivery_id: &'a str,
    /// When the delivery would go out: now, or a later scheduled time.
    pub send_at: DateTime<Utc>,
    /// For a fallback delivery at send time: the in-app delivery it waits on, and when its
    /// inbox item was read (`None`: unread or not in the inbox).
    pub fallback_of: Option<(&'a str, Option<DateTime<Utc>>)>,
}

/// One recipient's policy inputs, read at one instant.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// (recipient or `*`, scope, target, enabled)
    prefs: Vec<(bool, String, String, bool)>,
    settings: Settings,
    suppressions: Vec<Suppression>,
}

impl Inputs {
    /// Everything that decides for `recipient` in one round trip: preferences and settings
    /// (own and the tenant's defaults) and the active suppressions of its addresses.
    pub async fn load(
        conn: &mut Conn,
        tenant: &str,
        recipient: &Recipient,
        now: DateTime<Utc>,
    ) -> Result<Inputs, StoreError> {
        let mut all = Inputs::load_many(conn, tenant, &[recipient], now).await?;
        Ok(all.remove(&recipient.id).unwrap_or_default())
    }

    /// The inputs of many recipients of one tenant, by recipient id, in one query per
    /// [`LOAD_CHUNK`] recipients: a bulk trigger reads its policy in a statement or two, not
    /// one per recipient.
    pub async fn load_many(
        conn: &mut Conn,
        tenant: &str,
        recipients: &[&Recipient],
        now: DateTime<Utc>,
    ) -> Result<HashMap<String, Inputs>, StoreError> {
        let mut out: HashMap<String, Inputs> = HashMap::with_capacity(recipients.len());
        for chunk in recipients.chunks(LOAD_CHUNK) {
            load_chunk(conn, tenant, chunk, now, &mut out).await?;
        }
        Ok(out)
    }

    /// The recipient's time zone (their own, else the tenant default, else UTC).
    pub fn zone(&self) -> chrono_tz::Tz {
        self.settings.zone()
    }

    /// Whether deciding for this recipient counts past deliveries (a cap or a cooldown).
    pub fn counts_history(&self) -> bool {
        !self.settings.caps.is_empty() || !self.settings.cooldowns.is_empty()
    }

    /// The preference for (scope, target): the recipient's own, else the tenant's default,
    /// else enabled. Returns it with where it came from.
    fn preference(&self, scope: &str, target: &str) -> (bool, &'static str) {
        let find = |own: bool| {
            self.prefs
                .iter()
                .find(|(o, s, t, _)| *o == own && s == scope && t == target)
                .map(|p| p.3)
        };
        match (find(true), find(false)) {
            (Some(on), _) => (on, "recipient setting"),
            (None, Some(on)) => (on, "tenant default"),
            (None, None) => (true, "no setting"),
        }
    }
}

/// Recipients per loading query; with two addresses each that is 1,500 bind parameters, far
/// below SQLite's and PostgreSQL's limits.
pub const LOAD_CHUNK: usize = 500;

fn addresses_of(r: &Recipient) -> impl Iterator<Item = String> + '_ {
    [&r.email, &r.phone]
        .into_iter()
        .flatten()
        .map(|a| inputs::normalise_address(a))
}

async fn load_chunk(
    conn: &mut Conn,
    tenant: &str,
    recipients: &[&Recipient],
    now: DateTime<Utc>,
    out: &mut HashMap<String, Inputs>,
) -> Result<(), StoreError> {
    let ids: Vec<&str> = recipients.iter().map(|r| r.id.as_str()).collect();
    let addresses: Vec<String> = recipients.iter().flat_map(|r| addresses_of(r)).collect();
    // $1 tenant, $2 now, then the ids, then the addresses.
    let list = |from: usize, n: usize| {
        (from..from + n)
            .map(|i| format!("${i}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let id_list = list(3, ids.len());
    // A suppression names an address or a recipient, never both: a branch for each, so each
    // is a lookup in its own index (under one OR, SQLite read every suppression of the tenant).
    let supp = "SELECT 'supp', id, address, recipient_id, channel, reason, note, expires_at,
                created_at, CAST(NULL AS BIGINT), CAST(NULL AS BIGINT)
         FROM suppressions";
    let by_address = if addresses.is_empty() {
        String::new()
    } else {
        format!(
            " UNION ALL {supp} WHERE tenant = $1 AND address IN ({})
               AND (expires_at IS NULL OR expires_at > $2)",
            list(3 + ids.len(), addresses.len())
        )
    };
    // Columns are typed by CAST so both backends agree on the union's types.
    let sql = format!(
        "SELECT 'pref' AS src, recipient_id AS who, scope AS a, target AS b,
                CAST(NULL AS TEXT) AS c, CAST(NULL AS TEXT) AS d, CAST(NULL AS TEXT) AS e,
                CAST(NULL AS TEXT) AS f, CAST(NULL AS TEXT) AS g,
                enabled AS n1, CAST(NULL AS BIGINT) AS n2
         FROM preferences WHERE tenant = $1 AND recipient_id IN ('*', {id_list})
         UNION ALL
         SELECT 'settings', recipient_id, time_zone, severity_floor, caps, cooldowns, updated_at,
                CAST(NULL AS TEXT), CAST(NULL AS TEXT), quiet_start, quiet_end
         FROM recipient_settings WHERE tenant = $1 AND recipient_id IN ('*', {id_list})
         UNION ALL
         {supp} WHERE tenant = $1 AND recipient_id IN ({id_list})
           AND (expires_at IS NULL OR expires_at > $2){by_address}"
    );
    let mut q = sqlx::query(&sql).bind(tenant).bind(store::time_text(now));
    for id in &ids {
        q = q.bind(*id);
    }
    for a in &addresses {
        q = q.bind(a.as_str());
    }
    let rows = q.fetch_all(&mut *conn).await?;

    let mut prefs = Vec::new();
    let mut settings: HashMap<String, Settings> = HashMap::new();
    let mut suppressions = Vec::new();
    for r in &rows {
        let src: String = r.get("src");
        let who: String = r.get("who");
        match src.as_str() {
            "pref" => prefs.push((
                who,
                r.get::<String, _>("a"),
                r.get::<String, _>("b"),
                r.get::<Option<i64>, _>("n1").unwrap_or(1) != 0,
            )),
            "settings" => {
                let s = inputs::settings_from_columns(
                    r.get("a"),
                    r.get("n1"),
                    r.get("n2"),
                    r.get("b"),
                    r.get("c"),
                    r.get("d"),
                    r.get("e"),
                )?;
                settings.insert(who, s);
            }
            _ => suppressions.push(Suppression {
                id: who,
                tenant: tenant.to_string(),
                address: r.get("a"),
                recipient_id: r.get("b"),
                channel: r.get("c"),
                reason: r.get::<Option<String>, _>("d").unwrap_or_default(),
                note: r.get("e"),
                expires_at: r.get("f"),
                created_at: r.get::<Option<String>, _>("g").unwrap_or_default(),
            }),
        }
    }
    let defaults = settings.get(TENANT_DEFAULT).cloned().unwrap_or_default();
    for r in recipients {
        let mine: Vec<String> = addresses_of(r).collect();
        out.insert(
            r.id.clone(),
            Inputs {
                prefs: prefs
                    .iter()
                    .filter(|p| p.0 == r.id || p.0 == TENANT_DEFAULT)
                    .map(|p| (p.0 != TENANT_DEFAULT, p.1.clone(), p.2.clone(), p.3))
                    .collect(),
                settings: settings
                    .get(&r.id)
                    .cloned()
                    .unwrap_or_default()
                    .over(&defaults),
                suppressions: suppressions
                    .iter()
                    .filter(|x| {
                        x.recipient_id.as_deref() == Some(r.id.as_str())
                            || x.address.as_ref().is_some_and(|a| mine.contains(a))
                    })
                    .cloned()
                    .collect(),
            },
        );
    }
    Ok(())
}

/// Decides for one delivery. Reads the past (cooldown, cap) through `conn`, which may be the
/// trigger's transaction, so deliveries planned earlier in it count.
#[tracing::instrument(skip_all, fields(checkpoint = checkpoint.as_str(), channel = %s.channel, recipient = %s.recipient.id))]
pub async fn decide(
    conn: &mut Conn,
    checkpoint: Checkpoint,
    inputs: &Inputs,
    s: &Subject<'_>,
    now: DateTime<Utc>,
) -> Result<Decision, StoreError> {
    let mut checks = Vec::new();
    let outcome = evaluate(conn, checkpoint, inputs, s, now, &mut checks).await?;
    let decision = Decision {
        checkpoint,
        outcome,
        checks,
    };
    tracing::debug!(outcome = decision.code(), "policy decided");
    Ok(decision)
}

async fn evaluate(
    conn: &mut Conn,
    checkpoint: Checkpoint,
    inputs: &Inputs,
    s: &Subject<'_>,
    now: DateTime<Utc>,
    checks: &mut Vec<RuleCheck>,
) -> Result<Outcome, StoreError> {
    let mut check = |rule, inputs: String, result: &str| {
        checks.push(RuleCheck {
            rule,
            inputs,
            result: result.to_string(),
        })
    };
    let suppress = |reason| Outcome::Suppress { reason };

    // 0. A fallback is for a recipient who did not read the in-app item; one who did is done.
    // Nothing else can make it worth sending, so this comes before everything, critical too.
    if let (Checkpoint::Send, Some((in_app, read_at))) = (checkpoint, s.fallback_of) {
        match read_at {
            Some(at) => {
                check(
                    "fallback",
                    format!("in-app delivery {in_app} read at {}", store::time_text(at)),
                    reason::ALREADY_READ,
                );
                return Ok(suppress(reason::ALREADY_READ));
            }
            None => check(
                "fallback",
                format!("in-app delivery {in_app} not read"),
                "pass",
            ),
        }
    }

    // 1. Suppressions: nothing overrides them, not even critical.
    let address = match s.channel {
        Channel::Email => s.recipient.email.as_deref(),
        Channel::Sms => s.recipient.phone.as_deref(),
        _ => None,
    }
    .map(inputs::normalise_address);
    let by_address = address.as_ref().and_then(|a| {
        inputs
            .suppressions
            .iter()
            .find(|x| x.address.as_deref() == Some(a.as_str()))
    });
    let by_recipient = inputs.suppressions.iter().find(|x| {
        x.recipient_id.as_deref() == Some(s.recipient.id.as_str())
            && x.channel.as_deref() == Some(s.channel.as_str())
    });
    let looked_at = format!(
        "{}recipient {} on {}",
        address
            .as_ref()
            .map(|a| format!("address {a}, "))
            .unwrap_or_default(),
        s.recipient.id,
        s.channel
    );
    if let Some(x) = by_address {
        check("suppression", x.describe(), reason::ADDRESS_SUPPRESSED);
        return Ok(suppress(reason::ADDRESS_SUPPRESSED));
    }
    if let Some(x) = by_recipient {
        check("suppression", x.describe(), reason::RECIPIENT_SUPPRESSED);
        return Ok(suppress(reason::RECIPIENT_SUPPRESSED));
    }
    check(
        "suppression",
        format!("none active for {looked_at}"),
        "pass",
    );

    if s.severity == Severity::Critical {
        check(
            "preferences, severity, cooldown, cap, quiet hours",
            "severity critical".into(),
            "bypassed (critical)",
        );
        return Ok(Outcome::Allow);
    }

    // 2–4. Preferences, most general first.
    let notifier_channel = format!("{}/{}", s.notifier_key, s.channel.as_str());
    let prefs = [
        (
            "channel",
            "channel",
            s.channel.as_str().to_string(),
            reason::CHANNEL_DISABLED,
        ),
        (
            "category",
            "category",
            s.category.to_string(),
            reason::CATEGORY_DISABLED,
        ),
        (
            "notifier",
            "notifier",
            s.notifier_key.to_string(),
            reason::NOTIFIER_DISABLED,
        ),
        (
            "notifier on channel",
            "notifier_channel",
            notifier_channel,
            reason::NOTIFIER_DISABLED,
        ),
    ];
    for (rule, scope, target, code) in prefs {
        let (on, from) = inputs.preference(scope, &target);
        let said = format!(
            "{target}: {} ({from})",
            if on { "enabled" } else { "disabled" }
        );
        if !on {
            check(rule, said, code);
            return Ok(suppress(code));
        }
        check(rule, said, "pass");
    }

    // 5. Severity floor.
    let settings = &inputs.settings;
    match settings.severity_floor {
        Some(floor) if s.severity < floor => {
            check(
                "severity",
                format!("{} below floor {floor}", s.severity),
                reason::BELOW_SEVERITY,
            );
            return Ok(suppress(reason::BELOW_SEVERITY));
        }
        Some(floor) => check(
            "severity",
            format!("{} at or above floor {floor}", s.severity),
            "pass",
        ),
        None => check("severity", format!("{}, no floor", s.severity), "pass"),
    }

    // Which other deliveries came "before" this one. At plan time: every one already
    // written, since planning is serialised per recipient (SQLite's writer lock, PostgreSQL's
    // advisory lock) while ids were drawn before it. At send time: only those planned before it
    // (by time-ordered id), so two deliveries that both passed planning cannot stop each other.
    let before = match checkpoint {
        Checkpoint::Plan => "<>",
        Checkpoint::Send => "<",
    };

    // 6. Cooldown: an earlier notification of this notifier to this recipient that is
    // still going out (or went out) inside the cooldown makes this one a repeat.
    match settings.cooldown_for(s.notifier_key) {
        Some(secs) => {
            let since = stored_span(s, &format!("cooldown for `{}`", s.notifier_key), secs)
                .and_then(|secs| {
                    time_bounds::before("cooldown", s.notification_created_at, secs)
                        .map_err(|e| stored_error(s, &e.to_string()))
                })?;
            let earlier: Option<String> = sqlx::query_scalar(&format!(
                "SELECT n.id FROM notifications n JOIN events e ON e.id = n.event_id
                 WHERE n.tenant = $1 AND n.recipient_id = $2 AND e.notifier_key = $3
                   AND n.id {before} $4 AND n.created_at >= $5
                   AND EXISTS (SELECT 1 FROM deliveries d WHERE d.notification_id = n.id
                               AND d.status IN ('pending', 'deferred', 'succeeded'))
                 ORDER BY n.id DESC LIMIT 1"
            ))
            .bind(s.tenant)
            .bind(&s.recipient.id)
            .bind(s.notifier_key)
            .bind(s.notification_id)
            .bind(store::time_text(since))
            .fetch_optional(&mut *conn)
            .await?;
            let window = format!("{} for {secs} s", s.notifier_key);
            if let Some(previous) = earlier {
                check(
                    "cooldown",
                    format!("{window}, notification {previous} came within it"),
                    reason::COOLDOWN,
                );
                return Ok(suppress(reason::COOLDOWN));
            }
            check(
                "cooldown",
                format!("{window}, none other within it"),
                "pass",
            );
        }
        None => check("cooldown", "none set".into(), "pass"),
    }

    // 7. Cap: deliveries on this channel sent inside the window, or in flight and planned
    // before this one (not this notification's own).
    match settings.caps.get(&s.channel) {
        Some(cap) => {
            let since = stored_span(s, &format!("cap window on {}", s.channel), cap.window_secs)
                .and_then(|secs| {
                    time_bounds::before("cap window", now, secs)
                        .map_err(|e| stored_error(s, &e.to_string()))
                })?;
            let used: i64 = sqlx::query_scalar(&format!(
                "SELECT COUNT(*) FROM deliveries d JOIN notifications n ON n.id = d.notification_id
                 WHERE n.tenant = $1 AND n.recipient_id = $2 AND d.channel = $3
                   AND d.notification_id <> $4
                   AND ((d.status = 'succeeded' AND d.sent_at >= $5)
                        OR (d.status = 'pending' AND d.id {before} $6))"
            ))
            .bind(s.tenant)
            .bind(&s.recipient.id)
            .bind(s.channel.as_str())
            .bind(s.notification_id)
            .bind(store::time_text(since))
            .bind(s.delivery_id)
            .fetch_one(&mut *conn)
            .await?;
            let said = format!(
                "{used} sent or in flight on {} in the last {} s, cap {}",
                s.channel, cap.window_secs, cap.max
            );
            if used >= i64::from(cap.max) {
                check("cap", said, reason::CAP_REACHED);
                return Ok(suppress(reason::CAP_REACHED));
            }
            check("cap", said, "pass");
        }
        None => check("cap", format!("none set for {}", s.channel), "pass"),
    }

    // 8. Quiet hours, read at the time the delivery would go out.
    let zone = settings.zone();
    match settings.quiet_hours() {
        Some(quiet) => {
            let at = s.send_at.max(now);
            let said = format!(
                "{}–{} in {zone}, local time {}",
                minute_text(quiet.start_minute),
                minute_text(quiet.end_minute),
                at.with_timezone(&zone).format("%Y-%m-%d %H:%M %Z")
            );
            if let Some(until) = quiet.next_eligible(zone, at) {
                check("quiet hours", said, reason::QUIET_HOURS);
                return Ok(Outcome::Defer {
                    reason: reason::QUIET_HOURS,
                    until,
                });
            }
            check("quiet hours", said, "pass");
        }
        None => check("quiet hours", "none set".into(), "pass"),
    }
    Ok(Outcome::Allow)
}

/// A span read from stored settings, checked as it would be on the way in: a row written
/// before the bound existed (or by hand) fails this delivery's decision with an error
/// naming it, never the process with a panic.
fn stored_span(s: &Subject<'_>, what: &str, secs: u64) -> Result<i64, StoreError> {
    time_bounds::span_secs(what, secs, 1).map_err(|e| stored_error(s, &e.to_string()))
}

fn stored_error(s: &Subject<'_>, problem: &str) -> StoreError {
    tracing::warn!(tenant = s.tenant, recipient = %s.recipient.id, problem, "stored policy settings out of range");
    StoreError::OutOfRange(format!(
        "the policy settings stored for recipient `{}` of tenant `{}` (or its `*` defaults) are out of range: {problem}; set them again (`belfry settings set` or PATCH /v1/recipients/{{id}}/settings)",
        s.recipient.id, s.tenant
    ))
}

/// `HH:MM` of a minute of the day; quiet hours' end is the whole minute, so 06:59 means
/// until 07:00.
fn minute_text(m: u16) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}
