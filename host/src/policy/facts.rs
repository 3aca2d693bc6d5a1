//! Everything a policy decision reads, as plain data: the recipient's stored inputs, the
//! delivery it is about, and the counts of past deliveries. [`super::load`] fills them from the
//! database; [`super::rules::decide`] judges them without any I/O, so the rules can be tested
//! as a table of cases (`cases.rs`).

use super::Severity;
use super::decision::Checkpoint;
use super::inputs::{Settings, Suppression};
use crate::content::{Channel, Recipient};
use chrono::{DateTime, Utc};

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

/// One stored preference as the rules see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredPref {
    /// The recipient's own row (`false`: the tenant's `*` default).
    pub own: bool,
    pub scope: String,
    pub target: String,
    pub enabled: bool,
}

/// One recipient's policy inputs, read at one instant.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    pub prefs: Vec<StoredPref>,
    /// The recipient's own settings over the tenant's defaults.
    pub settings: Settings,
    /// The active suppressions of the recipient and of its addresses.
    pub suppressions: Vec<Suppression>,
}

impl Inputs {
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
    pub(super) fn preference(&self, scope: &str, target: &str) -> (bool, &'static str) {
        let find = |own: bool| {
            self.prefs
                .iter()
                .find(|p| p.own == own && p.scope == scope && p.target == target)
                .map(|p| p.enabled)
        };
        match (find(true), find(false)) {
            (Some(on), _) => (on, "recipient setting"),
            (None, Some(on)) => (on, "tenant default"),
            (None, None) => (true, "no setting"),
        }
    }
}

/// What the cooldown and cap rules count in the past. Read only when a decision reaches
/// those rules with one configured ([`super::rules::reads_history`]); otherwise left at its
/// default, which no rule looks at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct History {
    /// The latest other notification of this notifier to this recipient, created within the
    /// cooldown before this one, with a delivery pending, deferred or succeeded.
    pub repeat_of: Option<String>,
    /// Deliveries on this channel sent within the cap window, or in flight and planned before
    /// this one (not this notification's own).
    pub cap_used: i64,
}

/// Everything one decision reads.
#[derive(Clone, Debug)]
pub struct Facts<'a> {
    pub checkpoint: Checkpoint,
    pub inputs: &'a Inputs,
    pub subject: &'a Subject<'a>,
    pub history: History,
}
