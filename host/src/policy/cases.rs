//! Rule precedence as a table: each row gives the facts a decision reads (stored inputs,
//! the delivery, counts of past deliveries) and what [`rules::decide`] must conclude — the
//! outcome and the rule that decided. Every rule appears, alone and against each rule it
//! outranks or is outranked by; `tests/policy.rs` checks the same rules end to end (loading,
//! counting, traces) on both backends.

use super::Severity::{self, *};
use super::decision::{Checkpoint, Decision, Outcome};
use super::facts::{Facts, History, Inputs, StoredPref, Subject};
use super::inputs::{Cap, Suppression};
use super::rules;
use crate::content::Channel::{self, *};
use crate::content::Recipient;
use chrono::{DateTime, TimeZone, Utc};

/// One fact of a case, applied over the default (an email of `order-shipped`, category
/// `orders`, severity normal, to `u-1` with an email address and a phone number, planned
/// now, nothing stored).
#[derive(Clone, Copy, Debug)]
enum Given {
    /// The channel of the delivery.
    Via(Channel),
    Sev(Severity),
    /// Decided at send time (the default is plan time).
    AtSend,
    /// A fallback waiting on the in-app delivery `in-1`: read (true) or not.
    Fallback {
        read: bool,
    },
    /// Which addresses `u-1` has.
    NoAddresses,
    /// A suppression of an address as stored (normalised).
    SuppressedAddress(&'static str),
    SuppressedRecipient(&'static str, Channel),
    /// A preference: the recipient's own (true) or the tenant's default.
    Pref {
        own: bool,
        scope: &'static str,
        target: &'static str,
        on: bool,
    },
    Floor(Severity),
    Cooldown(&'static str, u64),
    Capped(Channel, u32, u64),
    /// Quiet hours (local minutes, both inclusive) and the zone.
    Quiet(u16, u16, &'static str),
    /// The delivery is scheduled this many minutes from now.
    SendIn(i64),
    /// Counted: another notification within the cooldown.
    Repeat,
    /// Counted: deliveries sent or in flight within the cap window.
    Used(i64),
}

/// What the decision must be.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Allowed after looking at every rule (rule 0 included at send time for a fallback).
    Allowed,
    /// Allowed by the critical bypass after the suppression rule.
    Bypassed,
    /// Suppressed by `rule` with `reason`.
    Suppressed(&'static str, &'static str),
    /// Deferred by quiet hours until this time.
    Deferred(&'static str),
    /// A stored span out of range fails the decision.
    OutOfRange,
}

use Expect::*;
use Given::*;

const fn own(scope: &'static str, target: &'static str, on: bool) -> Given {
    Pref {
        own: true,
        scope,
        target,
        on,
    }
}

const fn tenant(scope: &'static str, target: &'static str, on: bool) -> Given {
    Pref {
        own: false,
        scope,
        target,
        on,
    }
}

const ADDRESS: &str = "u-1@example.com";
const PHONE: &str = "+15550100000";
/// Longer than any span the bounds admit (ten years), as a row written by hand might hold.
const TOO_LONG: u64 = 400_000_000;
const NIGHT: Given = Quiet(0, 23 * 60, "Asia/Kolkata");

/// (name, facts, expected decision). Now is 2026-11-23 16:18 UTC (21:48 in Kolkata).
#[rustfmt::skip]
const CASES: &[(&str, &[Given], Expect)] = &[
    // Nothing stored: every rule passes.
    ("nothing stored", &[], Allowed),
    ("nothing stored, in-app", &[Via(InApp)], Allowed),
    ("nothing stored, low severity", &[Sev(Low)], Allowed),

    // 0. Fallback already read: first of all, even before suppressions and for critical.
    ("fallback read", &[AtSend, Fallback { read: true }], Suppressed("fallback", "already_read")),
    ("fallback unread goes on", &[AtSend, Fallback { read: false }], Allowed),
    ("fallback read is not judged at plan time", &[Fallback { read: true }], Allowed),
    ("fallback read beats address suppression", &[AtSend, Fallback { read: true }, SuppressedAddress(ADDRESS)], Suppressed("fallback", "already_read")),
    ("fallback read beats critical", &[AtSend, Fallback { read: true }, Sev(Critical)], Suppressed("fallback", "already_read")),
    ("fallback unread, then suppression", &[AtSend, Fallback { read: false }, SuppressedAddress(ADDRESS)], Suppressed("suppression", "address_suppressed")),
    ("fallback unread, then quiet hours", &[AtSend, Fallback { read: false }, NIGHT], Deferred("2026-11-23T17:31:00.000Z")),

    // 1. Suppressions: by address on the channel that sends to it, or the recipient on one channel.
    ("email address suppressed", &[SuppressedAddress(ADDRESS)], Suppressed("suppression", "address_suppressed")),
    ("phone suppressed, on sms", &[Via(Sms), SuppressedAddress(PHONE)], Suppressed("suppression", "address_suppressed")),
    ("phone suppressed, email goes", &[SuppressedAddress(PHONE)], Allowed),
    ("email suppressed, sms goes", &[Via(Sms), SuppressedAddress(ADDRESS)], Allowed),
    ("email suppressed, webhook has no address", &[Via(Webhook), SuppressedAddress(ADDRESS)], Allowed),
    ("no address, nothing to suppress", &[NoAddresses, SuppressedAddress(ADDRESS)], Allowed),
    ("recipient suppressed on email", &[SuppressedRecipient("u-1", Email)], Suppressed("suppression", "recipient_suppressed")),
    ("recipient suppressed on sms, email goes", &[SuppressedRecipient("u-1", Sms)], Allowed),
    ("another recipient suppressed", &[SuppressedRecipient("u-2", Email)], Allowed),
    ("address before recipient", &[SuppressedRecipient("u-1", Email), SuppressedAddress(ADDRESS)], Suppressed("suppression", "address_suppressed")),
    ("suppression beats channel preference", &[SuppressedAddress(ADDRESS), own("channel", "email", false)], Suppressed("suppression", "address_suppressed")),
    ("suppression beats quiet hours", &[SuppressedRecipient("u-1", Email), NIGHT], Suppressed("suppression", "recipient_suppressed")),
    ("suppression beats cap", &[SuppressedAddress(ADDRESS), Capped(Email, 1, 3600), Used(5)], Suppressed("suppression", "address_suppressed")),

    // Critical: past suppressions, bypasses everything else.
    ("critical, address suppressed", &[Sev(Critical), SuppressedAddress(ADDRESS)], Suppressed("suppression", "address_suppressed")),
    ("critical, recipient suppressed", &[Sev(Critical), SuppressedRecipient("u-1", Email)], Suppressed("suppression", "recipient_suppressed")),
    ("critical, nothing stored", &[Sev(Critical)], Bypassed),
    ("critical bypasses channel off", &[Sev(Critical), own("channel", "email", false)], Bypassed),
    ("critical bypasses category off", &[Sev(Critical), tenant("category", "orders", false)], Bypassed),
    ("critical bypasses notifier off", &[Sev(Critical), own("notifier", "order-shipped", false)], Bypassed),
    ("critical bypasses floor", &[Sev(Critical), Floor(Critical)], Bypassed),
    ("critical bypasses cooldown", &[Sev(Critical), Cooldown("*", 600), Repeat], Bypassed),
    ("critical bypasses cap", &[Sev(Critical), Capped(Email, 1, 3600), Used(1)], Bypassed),
    ("critical bypasses quiet hours", &[Sev(Critical), NIGHT], Bypassed),
    ("critical bypasses out-of-range cooldown", &[Sev(Critical), Cooldown("*", TOO_LONG)], Bypassed),

    // 2. Channel preference: the recipient's own over the tenant's default.
    ("channel off", &[own("channel", "email", false)], Suppressed("channel", "channel_disabled")),
    ("channel off by tenant default", &[tenant("channel", "email", false)], Suppressed("channel", "channel_disabled")),
    ("own channel on over tenant off", &[tenant("channel", "email", false), own("channel", "email", true)], Allowed),
    ("own channel off over tenant on", &[tenant("channel", "email", true), own("channel", "email", false)], Suppressed("channel", "channel_disabled")),
    ("another channel off", &[own("channel", "sms", false)], Allowed),
    ("channel before category", &[own("category", "orders", false), own("channel", "email", false)], Suppressed("channel", "channel_disabled")),

    // 3. Category preference.
    ("category off", &[own("category", "orders", false)], Suppressed("category", "category_disabled")),
    ("category off by tenant default", &[tenant("category", "orders", false)], Suppressed("category", "category_disabled")),
    ("own category on over tenant off", &[tenant("category", "orders", false), own("category", "orders", true)], Allowed),
    ("another category off", &[own("category", "billing", false)], Allowed),
    ("category before notifier", &[own("notifier", "order-shipped", false), own("category", "orders", false)], Suppressed("category", "category_disabled")),

    // 4. Notifier, then the notifier on this channel: either off suppresses.
    ("notifier off", &[own("notifier", "order-shipped", false)], Suppressed("notifier", "notifier_disabled")),
    ("notifier off by tenant default", &[tenant("notifier", "order-shipped", false)], Suppressed("notifier", "notifier_disabled")),
    ("notifier on email off", &[own("notifier_channel", "order-shipped/email", false)], Suppressed("notifier on channel", "notifier_disabled")),
    ("notifier on sms off, email goes", &[own("notifier_channel", "order-shipped/sms", false)], Allowed),
    ("notifier on sms off, sms stops", &[Via(Sms), own("notifier_channel", "order-shipped/sms", false)], Suppressed("notifier on channel", "notifier_disabled")),
    ("notifier on channel on does not undo notifier off", &[own("notifier", "order-shipped", false), own("notifier_channel", "order-shipped/email", true)], Suppressed("notifier", "notifier_disabled")),
    ("channel on does not undo notifier on channel off", &[own("channel", "email", true), own("notifier_channel", "order-shipped/email", false)], Suppressed("notifier on channel", "notifier_disabled")),
    ("another notifier off", &[own("notifier", "welcome", false)], Allowed),
    ("notifier before floor", &[Sev(Low), Floor(High), own("notifier", "order-shipped", false)], Suppressed("notifier", "notifier_disabled")),

    // 5. Severity floor.
    ("below floor", &[Sev(Low), Floor(Normal)], Suppressed("severity", "below_severity")),
    ("at floor", &[Floor(Normal)], Allowed),
    ("above floor", &[Sev(High), Floor(Normal)], Allowed),
    ("high below critical floor", &[Sev(High), Floor(Critical)], Suppressed("severity", "below_severity")),
    ("floor before cooldown", &[Sev(Low), Floor(Normal), Cooldown("*", 600), Repeat], Suppressed("severity", "below_severity")),
    ("floor before out-of-range cooldown", &[Sev(Low), Floor(Normal), Cooldown("*", TOO_LONG)], Suppressed("severity", "below_severity")),

    // 6. Cooldown: the notifier's own, else `*`.
    ("repeat within cooldown", &[Cooldown("order-shipped", 600), Repeat], Suppressed("cooldown", "cooldown")),
    ("no repeat within cooldown", &[Cooldown("order-shipped", 600)], Allowed),
    ("repeat within the `*` cooldown", &[Cooldown("*", 600), Repeat], Suppressed("cooldown", "cooldown")),
    ("another notifier's cooldown", &[Cooldown("welcome", 600), Repeat], Allowed),
    ("cooldown before cap", &[Cooldown("*", 600), Repeat, Capped(Email, 1, 3600), Used(1)], Suppressed("cooldown", "cooldown")),
    ("cooldown before out-of-range cap", &[Cooldown("*", 600), Repeat, Capped(Email, 1, TOO_LONG)], Suppressed("cooldown", "cooldown")),
    ("cooldown before quiet hours", &[Cooldown("*", 600), Repeat, NIGHT], Suppressed("cooldown", "cooldown")),
    ("cooldown out of range", &[Cooldown("order-shipped", TOO_LONG)], OutOfRange),
    ("channel off before out-of-range cooldown", &[own("channel", "email", false), Cooldown("*", TOO_LONG)], Suppressed("channel", "channel_disabled")),

    // 7. Cap per channel.
    ("cap reached", &[Capped(Email, 2, 3600), Used(2)], Suppressed("cap", "cap_reached")),
    ("cap exceeded", &[Capped(Email, 2, 3600), Used(7)], Suppressed("cap", "cap_reached")),
    ("under the cap", &[Capped(Email, 2, 3600), Used(1)], Allowed),
    ("cap on another channel", &[Capped(Sms, 1, 3600), Used(1)], Allowed),
    ("cap on sms, sent on sms", &[Via(Sms), Capped(Sms, 1, 3600), Used(1)], Suppressed("cap", "cap_reached")),
    ("no repeat, then cap", &[Cooldown("*", 600), Capped(Email, 1, 3600), Used(1)], Suppressed("cap", "cap_reached")),
    ("cap before quiet hours", &[Capped(Email, 1, 3600), Used(1), NIGHT], Suppressed("cap", "cap_reached")),
    ("cap window out of range", &[Capped(Email, 1, TOO_LONG)], OutOfRange),
    ("category off before out-of-range cap", &[own("category", "orders", false), Capped(Email, 1, TOO_LONG)], Suppressed("category", "category_disabled")),

    // 8. Quiet hours defer (the only deferral), in the recipient's zone, at the send time.
    ("inside quiet hours", &[NIGHT], Deferred("2026-11-23T17:31:00.000Z")),
    ("outside quiet hours", &[Quiet(22 * 60, 6 * 60 + 59, "Asia/Kolkata")], Allowed),
    ("inside quiet hours across midnight", &[Quiet(21 * 60, 6 * 60 + 59, "Asia/Kolkata")], Deferred("2026-11-24T01:30:00.000Z")),
    ("quiet hours read in UTC without a zone", &[Quiet(16 * 60, 16 * 60 + 29, "UTC")], Deferred("2026-11-23T16:30:00.000Z")),
    ("scheduled after quiet hours", &[NIGHT, SendIn(90)], Allowed),
    ("scheduled into quiet hours", &[Quiet(17 * 60, 17 * 60 + 59, "UTC"), SendIn(60)], Deferred("2026-11-23T18:00:00.000Z")),
    ("a past send time is judged now", &[NIGHT, SendIn(-600)], Deferred("2026-11-23T17:31:00.000Z")),
    ("channel off before quiet hours", &[NIGHT, own("channel", "email", false)], Suppressed("channel", "channel_disabled")),
    ("floor before quiet hours", &[NIGHT, Sev(Low), Floor(Normal)], Suppressed("severity", "below_severity")),
    ("quiet hours at send time", &[AtSend, NIGHT], Deferred("2026-11-23T17:31:00.000Z")),
    ("high severity still waits", &[Sev(High), NIGHT], Deferred("2026-11-23T17:31:00.000Z")),
];

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 23, 16, 18, 0).unwrap()
}

fn suppression(address: Option<&str>, recipient: Option<(&str, Channel)>) -> Suppression {
    Suppression {
        id: "s-1".into(),
        tenant: "t".into(),
        address: address.map(str::to_string),
        recipient_id: recipient.map(|r| r.0.to_string()),
        channel: recipient.map(|r| r.1.as_str().to_string()),
        reason: "bounce".into(),
        note: None,
        expires_at: None,
        created_at: "2026-11-01T00:00:00.000Z".into(),
    }
}

/// A case's facts, gathered before they are borrowed by [`Facts`].
struct World {
    recipient: Recipient,
    inputs: Inputs,
    history: History,
    checkpoint: Checkpoint,
    channel: Channel,
    severity: Severity,
    send_at: DateTime<Utc>,
    fallback: Option<bool>,
}

impl World {
    fn of(given: &[Given]) -> World {
        let mut w = World {
            recipient: Recipient {
                id: "u-1".into(),
                email: Some("U-1@Example.com".into()),
                phone: Some("+1 (555) 010-0000".into()),
                data: None,
            },
            inputs: Inputs::default(),
            history: History::default(),
            checkpoint: Checkpoint::Plan,
            channel: Email,
            severity: Normal,
            send_at: now(),
            fallback: None,
        };
        for g in given {
            w.apply(*g);
        }
        w
    }

    fn apply(&mut self, g: Given) {
        let settings = &mut self.inputs.settings;
        match g {
            Via(c) => self.channel = c,
            Sev(s) => self.severity = s,
            AtSend => self.checkpoint = Checkpoint::Send,
            Fallback { read } => self.fallback = Some(read),
            NoAddresses => (self.recipient.email, self.recipient.phone) = (None, None),
            SuppressedAddress(a) => self.inputs.suppressions.push(suppression(Some(a), None)),
            SuppressedRecipient(r, c) => {
                self.inputs
                    .suppressions
                    .push(suppression(None, Some((r, c))));
            }
            Pref {
                own,
                scope,
                target,
                on,
            } => self.inputs.prefs.push(StoredPref {
                own,
                scope: scope.into(),
                target: target.into(),
                enabled: on,
            }),
            Floor(s) => settings.severity_floor = Some(s),
            Cooldown(n, secs) => {
                settings.cooldowns.insert(n.into(), secs);
            }
            Capped(c, max, window_secs) => {
                settings.caps.insert(c, Cap { max, window_secs });
            }
            Quiet(start, end, zone) => {
                (settings.quiet_start, settings.quiet_end) = (Some(start), Some(end));
                settings.time_zone = Some(zone.into());
            }
            SendIn(minutes) => self.send_at = now() + chrono::TimeDelta::minutes(minutes),
            Repeat => self.history.repeat_of = Some("n-0".into()),
            Used(n) => self.history.cap_used = n,
        }
    }

    fn subject(&self) -> Subject<'_> {
        let read_at = Utc.with_ymd_and_hms(2026, 11, 23, 16, 2, 10).unwrap();
        Subject {
            tenant: "t",
            recipient: &self.recipient,
            notifier_key: "order-shipped",
            category: "orders",
            channel: self.channel,
            severity: self.severity,
            notification_id: "n-9",
            notification_created_at: now(),
            delivery_id: "d-9",
            send_at: self.send_at,
            fallback_of: self.fallback.map(|read| ("in-1", read.then_some(read_at))),
        }
    }

    fn decide(&self) -> Result<Decision, rules::StoredOutOfRange> {
        let subject = self.subject();
        let facts = self.facts(&subject);
        rules::decide(&facts, now())
    }

    fn facts<'a>(&'a self, subject: &'a Subject<'a>) -> Facts<'a> {
        Facts {
            checkpoint: self.checkpoint,
            inputs: &self.inputs,
            subject,
            history: self.history.clone(),
        }
    }
}

/// The rules looked at when nothing decides, in order.
const EVERY_RULE: [&str; 8] = [
    "suppression",
    "channel",
    "category",
    "notifier",
    "notifier on channel",
    "severity",
    "cooldown",
    "cap",
];

/// What is wrong with `got` for `expect`, if anything.
fn mismatch(expect: Expect, got: &Result<Decision, rules::StoredOutOfRange>) -> Option<String> {
    let d = match (expect, got) {
        (OutOfRange, Err(_)) => return None,
        (_, Err(e)) => return Some(format!("failed: {e}")),
        (_, Ok(d)) => d,
    };
    let rules: Vec<&str> = d.checks.iter().map(|c| c.rule).collect();
    let last = d.checks.last().map(|c| (c.rule, c.result.as_str()));
    let fine = match expect {
        OutOfRange => false,
        Allowed => {
            let from = usize::from(rules.first() == Some(&"fallback"));
            d.outcome == Outcome::Allow
                && rules.len() == from + 9
                && rules[from..from + 8] == EVERY_RULE
                && rules.get(from + 8) == Some(&"quiet hours")
                && d.checks.iter().all(|c| c.result == "pass")
        }
        Bypassed => {
            d.outcome == Outcome::Allow
                && last.is_some_and(|l| l.1 == "bypassed (critical)")
                && rules.ends_with(&[
                    "suppression",
                    "preferences, severity, cooldown, cap, quiet hours",
                ])
        }
        Suppressed(rule, reason) => {
            d.outcome == (Outcome::Suppress { reason }) && last == Some((rule, reason))
        }
        Deferred(until) => {
            matches!(d.outcome, Outcome::Defer { reason: "quiet_hours", until: u }
                if crate::store::time_text(u) == until)
                && last == Some(("quiet hours", "quiet_hours"))
                && rules.len() >= 9
        }
    };
    // Every rule before the one that decided passed.
    let earlier_pass = d.checks.iter().rev().skip(1).all(|c| c.result == "pass");
    (!fine || !earlier_pass).then(|| format!("{d}"))
}

#[test]
fn every_case_decides_as_its_row_says() {
    let mut wrong = Vec::new();
    for (name, given, expect) in CASES {
        let got = World::of(given).decide();
        if let Some(problem) = mismatch(*expect, &got) {
            wrong.push(format!("{name}: expected {expect:?}, got {problem}"));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases wrong:\n{}",
        wrong.len(),
        CASES.len(),
        wrong.join("\n")
    );
}

#[test]
fn case_names_are_unique() {
    let mut names: Vec<&str> = CASES.iter().map(|c| c.0).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), CASES.len());
}

/// Each rule made to fail on its own, in precedence order: (facts, rule, reason).
const FAILING: [(&[Given], &str, &str); 11] = [
    (
        &[AtSend, Fallback { read: true }],
        "fallback",
        "already_read",
    ),
    (
        &[SuppressedAddress(ADDRESS)],
        "suppression",
        "address_suppressed",
    ),
    (
        &[SuppressedRecipient("u-1", Email)],
        "suppression",
        "recipient_suppressed",
    ),
    (
        &[own("channel", "email", false)],
        "channel",
        "channel_disabled",
    ),
    (
        &[own("category", "orders", false)],
        "category",
        "category_disabled",
    ),
    (
        &[own("notifier", "order-shipped", false)],
        "notifier",
        "notifier_disabled",
    ),
    (
        &[own("notifier_channel", "order-shipped/email", false)],
        "notifier on channel",
        "notifier_disabled",
    ),
    (&[Sev(Low), Floor(Normal)], "severity", "below_severity"),
    (&[Cooldown("*", 600), Repeat], "cooldown", "cooldown"),
    (&[Capped(Email, 1, 3600), Used(1)], "cap", "cap_reached"),
    (&[NIGHT], "quiet hours", "quiet_hours"),
];

/// Whatever pair of rules fails, the earlier one decides; and a critical notification is
/// stopped only by the first three (a read fallback, a suppressed address or recipient).
#[test]
fn of_any_two_failing_rules_the_earlier_decides() {
    let mut wrong = Vec::new();
    for (i, (first, rule, reason)) in FAILING.iter().enumerate() {
        let alone = World::of(first).decide().unwrap();
        if alone.checks.last().map(|c| (c.rule, c.result.as_str())) != Some((*rule, *reason)) {
            wrong.push(format!("{rule} alone: {alone}"));
        }
        for (later, _, _) in &FAILING[i + 1..] {
            let both: Vec<Given> = first.iter().chain(later.iter()).copied().collect();
            let d = World::of(&both).decide().unwrap();
            if d.checks.last().map(|c| (c.rule, c.result.as_str())) != Some((*rule, *reason)) {
                wrong.push(format!("{rule} with {later:?}: {d}"));
            }
        }
        let critical: Vec<Given> = first.iter().copied().chain([Sev(Critical)]).collect();
        let d = World::of(&critical).decide().unwrap();
        let expected = if i < 3 {
            *reason
        } else {
            "bypassed (critical)"
        };
        if d.checks.last().map(|c| c.result.as_str()) != Some(expected) {
            wrong.push(format!("{rule} for critical: {d}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The counts are read only when the decision will look at them: rules 0–5 pass (not critical)
/// and a cooldown or a cap applies to this delivery.
#[test]
fn history_is_read_only_when_a_counting_rule_is_reached() {
    let reads = |given: &[Given]| {
        let w = World::of(given);
        let subject = w.subject();
        rules::reads_history(&w.facts(&subject))
    };
    assert!(reads(&[Cooldown("*", 600)]));
    assert!(reads(&[Cooldown("order-shipped", 600)]));
    assert!(reads(&[Capped(Email, 1, 3600)]));
    assert!(
        reads(&[Cooldown("*", TOO_LONG)]),
        "the rule itself reports the range"
    );
    assert!(!reads(&[]));
    assert!(!reads(&[NIGHT, Floor(Low)]));
    assert!(!reads(&[Cooldown("welcome", 600), Capped(Sms, 1, 3600)]));
    assert!(!reads(&[Capped(Email, 1, 3600), Sev(Critical)]));
    assert!(!reads(&[
        Capped(Email, 1, 3600),
        own("category", "orders", false)
    ]));
    assert!(!reads(&[
        Capped(Email, 1, 3600),
        SuppressedAddress(ADDRESS)
    ]));
    assert!(!reads(&[Capped(Email, 1, 3600), Sev(Low), Floor(High)]));
    assert!(!reads(&[
        Capped(Email, 1, 3600),
        AtSend,
        Fallback { read: true }
    ]));
}

/// The detail strings, exactly as `policy.checked` stores them and `explain` shows them.
#[test]
fn the_record_names_each_rule_its_inputs_and_result() {
    let text = |given: &[Given]| format!("{}", World::of(given).decide().unwrap());
    assert_eq!(
        text(&[own("category", "orders", false)]),
        "plan checkpoint: suppression [none active for address u-1@example.com, recipient u-1 on email] → pass; \
         channel [email: enabled (no setting)] → pass; \
         category [orders: disabled (recipient setting)] → category_disabled"
    );
    assert_eq!(
        text(&[
            NIGHT,
            Floor(Normal),
            Cooldown("*", 600),
            Capped(Email, 3, 3600),
            Used(2),
            tenant("channel", "email", true)
        ]),
        "plan checkpoint: suppression [none active for address u-1@example.com, recipient u-1 on email] → pass; \
         channel [email: enabled (tenant default)] → pass; \
         category [orders: enabled (no setting)] → pass; \
         notifier [order-shipped: enabled (no setting)] → pass; \
         notifier on channel [order-shipped/email: enabled (no setting)] → pass; \
         severity [normal at or above floor normal] → pass; \
         cooldown [order-shipped for 600 s, none other within it] → pass; \
         cap [2 sent or in flight on email in the last 3600 s, cap 3] → pass; \
         quiet hours [00:00–23:00 in Asia/Kolkata, local time 2026-11-23 21:48 IST] → quiet_hours; \
         deferred until 2026-11-23T17:31:00.000Z"
    );
    assert_eq!(
        text(&[Via(Webhook), Sev(Low)]),
        "plan checkpoint: suppression [none active for recipient u-1 on webhook] → pass; \
         channel [webhook: enabled (no setting)] → pass; \
         category [orders: enabled (no setting)] → pass; \
         notifier [order-shipped: enabled (no setting)] → pass; \
         notifier on channel [order-shipped/webhook: enabled (no setting)] → pass; \
         severity [low, no floor] → pass; cooldown [none set] → pass; \
         cap [none set for webhook] → pass; quiet hours [none set] → pass"
    );
    assert_eq!(
        text(&[Sev(Low), Floor(High)]).rsplit("; ").next().unwrap(),
        "severity [low below floor high] → below_severity"
    );
    assert_eq!(
        text(&[Cooldown("*", 600), Repeat])
            .rsplit("; ")
            .next()
            .unwrap(),
        "cooldown [order-shipped for 600 s, notification n-0 came within it] → cooldown"
    );
    assert_eq!(
        text(&[Capped(Email, 2, 3600), Used(2)])
            .rsplit("; ")
            .next()
            .unwrap(),
        "cap [2 sent or in flight on email in the last 3600 s, cap 2] → cap_reached"
    );
    assert_eq!(
        text(&[Sev(Critical), Via(Sms)]),
        "plan checkpoint: suppression [none active for address +15550100000, recipient u-1 on sms] → pass; \
         preferences, severity, cooldown, cap, quiet hours [severity critical] → bypassed (critical)"
    );
    assert_eq!(
        text(&[AtSend, Fallback { read: true }]),
        "send checkpoint: fallback [in-app delivery in-1 read at 2026-11-23T16:02:10.000Z] → already_read"
    );
    assert!(text(&[AtSend, Fallback { read: false }]).starts_with(
        "send checkpoint: fallback [in-app delivery in-1 not read] → pass; suppression ["
    ));
    let suppressed = text(&[SuppressedRecipient("u-1", Email)]);
    assert_eq!(
        suppressed,
        "plan checkpoint: suppression [recipient u-1 on email suppressed (bounce, s-1)] → recipient_suppressed"
    );
}

/// A span out of range names itself, as it would have been refused on the way in.
#[test]
fn an_out_of_range_span_names_the_value() {
    let problem = |given: &[Given]| World::of(given).decide().unwrap_err().problem;
    assert_eq!(
        problem(&[Cooldown("order-shipped", TOO_LONG)]),
        "cooldown for `order-shipped` must be between 1 and 315619200 seconds (ten years), got 400000000"
    );
    assert_eq!(
        problem(&[Capped(Email, 1, TOO_LONG)]),
        "cap window on email must be between 1 and 315619200 seconds (ten years), got 400000000"
    );
}
