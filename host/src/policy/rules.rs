//! The policy rules, in a fixed order where the first that fails decides:
//!
//! 0. at send time, for a fallback delivery: was the in-app item already read? (`already_read`);
//! 1. suppression list (an address or the recipient on this channel) — even for critical;
//! 2. channel preference; 3. category preference; 4. notifier preferences (the notifier, then
//!    the notifier on this channel); 5. severity floor; 6. cooldown per (recipient, notifier);
//! 7. cap per channel; 8. quiet hours, which defer rather than suppress.
//!
//! Rules 2–8 do not apply to a critical notification; the record says they were bypassed.
//!
//! [`decide`] is a pure function of [`Facts`]: no I/O, no clock. The counts behind rules 6 and
//! 7 are read beforehand, and only when [`reads_history`] says a decision will look at them.

use super::decision::{Checkpoint, Decision, Outcome, RuleCheck};
use super::facts::{Facts, Subject};
use super::inputs::{self, Cap};
use super::{Reason, Severity};
use crate::content::Channel;
use crate::{store, time_bounds};
use chrono::{DateTime, Utc};

/// A span read from stored settings that is out of range: a row written before the bound
/// existed, or by hand. It fails this delivery's decision (naming the value), never the
/// process with a panic.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{problem}")]
pub struct StoredOutOfRange {
    pub problem: String,
}

impl From<time_bounds::BoundsError> for StoredOutOfRange {
    fn from(e: time_bounds::BoundsError) -> Self {
        StoredOutOfRange {
            problem: e.to_string(),
        }
    }
}

const PASS: &str = "pass";

/// The decision for one delivery, from what was read for it.
pub fn decide(f: &Facts<'_>, now: DateTime<Utc>) -> Result<Decision, StoredOutOfRange> {
    let mut checks = Vec::new();
    let outcome = match stored_rules(f, &mut checks) {
        Some(decided) => decided,
        None => match counted_rules(f, now, &mut checks)? {
            Some(decided) => decided,
            None => quiet_hours(f, now, &mut checks),
        },
    };
    Ok(Decision {
        checkpoint: f.checkpoint,
        outcome,
        checks,
    })
}

/// Whether [`decide`] will look at the counts of past deliveries: rules 0–5 decide nothing
/// (a critical notification bypasses the rest) and a cooldown or a cap applies.
pub fn reads_history(f: &Facts<'_>) -> bool {
    let settings = &f.inputs.settings;
    let configured = settings.cooldown_for(f.subject.notifier_key).is_some()
        || settings.caps.contains_key(&f.subject.channel);
    configured && stored_rules(f, &mut Vec::new()).is_none()
}

/// Where the cooldown's window starts: its length before the notification was created.
pub fn cooldown_since(s: &Subject<'_>, secs: u64) -> Result<DateTime<Utc>, StoredOutOfRange> {
    let secs = stored_span(&format!("cooldown for `{}`", s.notifier_key), secs)?;
    Ok(time_bounds::before(
        "cooldown",
        s.notification_created_at,
        secs,
    )?)
}

/// Where the cap's sliding window starts: its length before now.
pub fn cap_since(
    channel: Channel,
    cap: &Cap,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, StoredOutOfRange> {
    let secs = stored_span(&format!("cap window on {channel}"), cap.window_secs)?;
    Ok(time_bounds::before("cap window", now, secs)?)
}

/// A span read from stored settings, checked as it would be on the way in.
fn stored_span(what: &str, secs: u64) -> Result<i64, StoredOutOfRange> {
    Ok(time_bounds::span_secs(what, secs, 1)?)
}

fn check(checks: &mut Vec<RuleCheck>, rule: &'static str, inputs: String, result: &str) {
    checks.push(RuleCheck {
        rule,
        inputs,
        result: result.to_string(),
    });
}

fn suppress(
    checks: &mut Vec<RuleCheck>,
    rule: &'static str,
    inputs: String,
    code: Reason,
) -> Outcome {
    check(checks, rule, inputs, code.as_str());
    Outcome::suppressed(code)
}

/// Rules 0–5, which read only the stored inputs: the outcome, if one of them decides.
fn stored_rules(f: &Facts<'_>, checks: &mut Vec<RuleCheck>) -> Option<Outcome> {
    if let Some(decided) = fallback(f, checks).or_else(|| suppression(f, checks)) {
        return Some(decided);
    }
    if f.subject.severity == Severity::Critical {
        check(
            checks,
            "preferences, severity, cooldown, cap, quiet hours",
            "severity critical".into(),
            "bypassed (critical)",
        );
        return Some(Outcome::Allow);
    }
    preferences(f, checks).or_else(|| severity_floor(f, checks))
}

/// Rule 0: A fallback is for a recipient who did not read the in-app item; one who did is done.
/// Nothing else can make it worth sending, so this comes before everything, critical too.
fn fallback(f: &Facts<'_>, checks: &mut Vec<RuleCheck>) -> Option<Outcome> {
    let (Checkpoint::Send, Some((in_app, read_at))) = (f.checkpoint, f.subject.fallback_of) else {
        return None;
    };
    match read_at {
        Some(at) => Some(suppress(
            checks,
            "fallback",
            format!("in-app delivery {in_app} read at {}", store::time_text(at)),
            Reason::AlreadyRead,
        )),
        None => {
            check(
                checks,
                "fallback",
                format!("in-app delivery {in_app} not read"),
                PASS,
            );
            None
        }
    }
}

/// Rule 1: Suppressions: nothing overrides them, not even critical. The address comes first.
fn suppression(f: &Facts<'_>, checks: &mut Vec<RuleCheck>) -> Option<Outcome> {
    let s = f.subject;
    let address = match s.channel {
        Channel::Email => s.recipient.email.as_deref(),
        Channel::Sms => s.recipient.phone.as_deref(),
        _ => None,
    }
    .map(inputs::normalise_address);
    let active = &f.inputs.suppressions;
    let by_address = address.as_ref().and_then(|a| {
        active
            .iter()
            .find(|x| x.address.as_deref() == Some(a.as_str()))
    });
    if let Some(x) = by_address {
        return Some(suppress(
            checks,
            "suppression",
            x.describe(),
            Reason::AddressSuppressed,
        ));
    }
    let by_recipient = active.iter().find(|x| {
        x.recipient_id.as_deref() == Some(s.recipient.id.as_str())
            && x.channel.as_deref() == Some(s.channel.as_str())
    });
    if let Some(x) = by_recipient {
        return Some(suppress(
            checks,
            "suppression",
            x.describe(),
            Reason::RecipientSuppressed,
        ));
    }
    let address = address
        .map(|a| format!("address {a}, "))
        .unwrap_or_default();
    check(
        checks,
        "suppression",
        format!(
            "none active for {address}recipient {} on {}",
            s.recipient.id, s.channel
        ),
        PASS,
    );
    None
}

/// 2–4. Preferences, most general first; each one disabled suppresses, so a narrower
/// preference never re-enables what a broader one turned off.
fn preferences(f: &Facts<'_>, checks: &mut Vec<RuleCheck>) -> Option<Outcome> {
    let s = f.subject;
    let notifier_channel = format!("{}/{}", s.notifier_key, s.channel.as_str());
    let prefs = [
        (
            "channel",
            "channel",
            s.channel.as_str(),
            Reason::ChannelDisabled,
        ),
        ("category", "category", s.category, Reason::CategoryDisabled),
        (
            "notifier",
            "notifier",
            s.notifier_key,
            Reason::NotifierDisabled,
        ),
        (
            "notifier on channel",
            "notifier_channel",
            notifier_channel.as_str(),
            Reason::NotifierDisabled,
        ),
    ];
    for (rule, scope, target, code) in prefs {
        let (on, from) = f.inputs.preference(scope, target);
        let said = format!(
            "{target}: {} ({from})",
            if on { "enabled" } else { "disabled" }
        );
        if !on {
            return Some(suppress(checks, rule, said, code));
        }
        check(checks, rule, said, PASS);
    }
    None
}

/// Rule 5: Severity floor.
fn severity_floor(f: &Facts<'_>, checks: &mut Vec<RuleCheck>) -> Option<Outcome> {
    let severity = f.subject.severity;
    match f.inputs.settings.severity_floor {
        Some(floor) if severity < floor => Some(suppress(
            checks,
            "severity",
            format!("{severity} below floor {floor}"),
            Reason::BelowSeverity,
        )),
        Some(floor) => {
            let said = format!("{severity} at or above floor {floor}");
            check(checks, "severity", said, PASS);
            None
        }
        None => {
            check(checks, "severity", format!("{severity}, no floor"), PASS);
            None
        }
    }
}

/// Rules 6 and 7, which read the counts of past deliveries.
fn counted_rules(
    f: &Facts<'_>,
    now: DateTime<Utc>,
    checks: &mut Vec<RuleCheck>,
) -> Result<Option<Outcome>, StoredOutOfRange> {
    match cooldown(f, checks)? {
        Some(decided) => Ok(Some(decided)),
        None => cap(f, now, checks),
    }
}

/// Rule 6: Cooldown: an earlier notification of this notifier to this recipient that is still
/// going out (or went out) inside the cooldown makes this one a repeat.
fn cooldown(
    f: &Facts<'_>,
    checks: &mut Vec<RuleCheck>,
) -> Result<Option<Outcome>, StoredOutOfRange> {
    let s = f.subject;
    let Some(secs) = f.inputs.settings.cooldown_for(s.notifier_key) else {
        check(checks, "cooldown", "none set".into(), PASS);
        return Ok(None);
    };
    cooldown_since(s, secs)?;
    let window = format!("{} for {secs} s", s.notifier_key);
    if let Some(previous) = &f.history.repeat_of {
        let said = format!("{window}, notification {previous} came within it");
        return Ok(Some(suppress(checks, "cooldown", said, Reason::Cooldown)));
    }
    check(
        checks,
        "cooldown",
        format!("{window}, none other within it"),
        PASS,
    );
    Ok(None)
}

/// Rule 7: Cap: deliveries on this channel sent inside the window, or in flight and planned
/// before this one (not this notification's own).
fn cap(
    f: &Facts<'_>,
    now: DateTime<Utc>,
    checks: &mut Vec<RuleCheck>,
) -> Result<Option<Outcome>, StoredOutOfRange> {
    let channel = f.subject.channel;
    let Some(cap) = f.inputs.settings.caps.get(&channel) else {
        check(checks, "cap", format!("none set for {channel}"), PASS);
        return Ok(None);
    };
    cap_since(channel, cap, now)?;
    let used = f.history.cap_used;
    let said = format!(
        "{used} sent or in flight on {channel} in the last {} s, cap {}",
        cap.window_secs, cap.max
    );
    if used >= i64::from(cap.max) {
        return Ok(Some(suppress(checks, "cap", said, Reason::CapReached)));
    }
    check(checks, "cap", said, PASS);
    Ok(None)
}

/// Rule 8: Quiet hours, read at the time the delivery would go out.
fn quiet_hours(f: &Facts<'_>, now: DateTime<Utc>, checks: &mut Vec<RuleCheck>) -> Outcome {
    let settings = &f.inputs.settings;
    let Some(quiet) = settings.quiet_hours() else {
        check(checks, "quiet hours", "none set".into(), PASS);
        return Outcome::Allow;
    };
    let zone = settings.zone();
    let at = f.subject.send_at.max(now);
    let said = format!(
        "{}–{} in {zone}, local time {}",
        minute_text(quiet.start_minute),
        minute_text(quiet.end_minute),
        at.with_timezone(&zone).format("%Y-%m-%d %H:%M %Z")
    );
    match quiet.next_eligible(zone, at) {
        Some(until) => {
            check(checks, "quiet hours", said, Reason::QuietHours.as_str());
            Outcome::deferred(Reason::QuietHours, until)
        }
        None => {
            check(checks, "quiet hours", said, PASS);
            Outcome::Allow
        }
    }
}

/// `HH:MM` of a minute of the day; quiet hours' end is the whole minute, so 06:59 means
/// until 07:00.
fn minute_text(m: u16) -> String {
    format!("{:02}:{:02}", m / 60, m % 60)
}
