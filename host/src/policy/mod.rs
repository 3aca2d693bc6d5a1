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

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Stable reason codes of policy outcomes (stored as delivery status reasons; do not rename).
pub mod reason {
    pub const ADDRESS_SUPPRESSED: &str = "address_suppressed";
    pub const RECIPIENT_SUPPRESSED: &str = "recipient_suppressed";
    pub const CHANNEL_DISABLED: &str = "channel_disabled";
    pub const CATEGORY_DISABLED: &str = "category_disabled";
    pub const NOTIFIER_DISABLED: &str = "notifier_disabled";
    pub const BELOW_SEVERITY: &str = "below_severity";
    pub const COOLDOWN: &str = "cooldown";
    pub const CAP_REACHED: &str = "cap_reached";
    pub const QUIET_HOURS: &str = "quiet_hours";
    /// A fallback delivery whose in-app item was read before it came due.
    pub const ALREADY_READ: &str = "already_read";
    /// A fallback delivery waiting to see whether the in-app item is read (a deferral).
    pub const FALLBACK_WAIT: &str = "fallback_wait";
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
