//! Policy: what a recipient said yes or no to, when they may be disturbed, how often, and
//! which addresses must never be sent to.
//!
//! - [`inputs`]: preferences, recipient settings and suppressions — validated, stored per
//!   tenant, with `*` rows as the tenant's defaults;
//! - [`decide`]: the decision, taken at plan time (inside the trigger transaction) and again
//!   at send time (re-reading every input): [`load`] reads what it needs into [`facts`], and
//!   [`rules`] judge them without I/O, in one fixed order where the first failure wins
//!   ([`decision`] is what comes out);
//! - [`quiet_hours`]: the local-time maths of quiet hours, DST included.
//!
//! Every decision is recorded as a trace (`policy.checked`) naming the checkpoint, each rule
//! looked at, the inputs it used and the outcome; `explain` shows them in order.

#[cfg(test)]
mod cases;
pub mod decide;
pub mod decision;
pub mod facts;
pub mod inputs;
pub mod load;
pub mod quiet_hours;
pub mod rules;

pub use decide::{Checkpoint, Decision, Outcome, RuleCheck};
pub use inputs::{
    Cap, PolicyError, PrefScope, Preference, Settings, SettingsPatch, Suppression,
    SuppressionReason, SuppressionTarget, TENANT_DEFAULT,
};
pub(crate) use inputs::{add_suppression_in, set_preference_in};

use crate::vocabulary::stored_vocabulary;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

stored_vocabulary! {
    /// Why policy suppressed or deferred a delivery: stored as the delivery's status reason
    /// and as the `policy.checked` trace's reason, so these strings never change.
    Reason ("policy reason") {
        AddressSuppressed => "address_suppressed",
        RecipientSuppressed => "recipient_suppressed",
        ChannelDisabled => "channel_disabled",
        CategoryDisabled => "category_disabled",
        NotifierDisabled => "notifier_disabled",
        BelowSeverity => "below_severity",
        Cooldown => "cooldown",
        CapReached => "cap_reached",
        QuietHours => "quiet_hours",
        /// A fallback delivery whose in-app item was read before it came due.
        AlreadyRead => "already_read",
        /// A fallback delivery waiting to see whether the in-app item is read (a deferral).
        FallbackWait => "fallback_wait",
    }
}

/// The [`Reason`]s as plain strings, for callers that store or compare them as text.
pub mod reason {
    use super::Reason;

    pub const ADDRESS_SUPPRESSED: &str = Reason::AddressSuppressed.as_str();
    pub const RECIPIENT_SUPPRESSED: &str = Reason::RecipientSuppressed.as_str();
    pub const CHANNEL_DISABLED: &str = Reason::ChannelDisabled.as_str();
    pub const CATEGORY_DISABLED: &str = Reason::CategoryDisabled.as_str();
    pub const NOTIFIER_DISABLED: &str = Reason::NotifierDisabled.as_str();
    pub const BELOW_SEVERITY: &str = Reason::BelowSeverity.as_str();
    pub const COOLDOWN: &str = Reason::Cooldown.as_str();
    pub const CAP_REACHED: &str = Reason::CapReached.as_str();
    pub const QUIET_HOURS: &str = Reason::QuietHours.as_str();
    pub const ALREADY_READ: &str = Reason::AlreadyRead.as_str();
    pub const FALLBACK_WAIT: &str = Reason::FallbackWait.as_str();
}

/// How much a notification matters. `critical` bypasses preferences, the severity floor,
/// cooldowns, caps and quiet hours — never a suppression of the address.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Low,
    #[default]
    Normal,
    High,
    Critical,
}

impl Severity {
    pub const ALL: [Severity; 4] = [
        Severity::Low,
        Severity::Normal,
        Severity::High,
        Severity::Critical,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Normal => "normal",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("unknown severity `{0}` (expected low, normal, high or critical)")]
pub struct UnknownSeverity(pub String);

impl FromStr for Severity {
    type Err = UnknownSeverity;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Severity::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| UnknownSeverity(s.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_round_trips_and_keeps_its_stored_string() {
        crate::vocabulary::check_round_trips(Reason::ALL);
        let stored = [
            (reason::ADDRESS_SUPPRESSED, "address_suppressed"),
            (reason::RECIPIENT_SUPPRESSED, "recipient_suppressed"),
            (reason::CHANNEL_DISABLED, "channel_disabled"),
            (reason::CATEGORY_DISABLED, "category_disabled"),
            (reason::NOTIFIER_DISABLED, "notifier_disabled"),
            (reason::BELOW_SEVERITY, "below_severity"),
            (reason::COOLDOWN, "cooldown"),
            (reason::CAP_REACHED, "cap_reached"),
            (reason::QUIET_HOURS, "quiet_hours"),
            (reason::ALREADY_READ, "already_read"),
            (reason::FALLBACK_WAIT, "fallback_wait"),
        ];
        assert_eq!(stored.len(), Reason::ALL.len());
        for (code, text) in stored {
            assert_eq!(code, text);
        }
        assert!(Reason::parse("allowed").is_err());
    }
}
