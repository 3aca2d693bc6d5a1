//! What a policy decision is: the checkpoint it was taken at, its outcome, and the record of
//! each rule looked at (the `policy.checked` trace's reason and detail).

use super::Reason;
use crate::store;
use chrono::{DateTime, Utc};
use serde::Serialize;
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

impl Outcome {
    /// Never sent, for a policy [`Reason`].
    pub fn suppressed(reason: Reason) -> Outcome {
        Outcome::Suppress {
            reason: reason.as_str(),
        }
    }

    /// Not before `until`, for a policy [`Reason`].
    pub fn deferred(reason: Reason, until: DateTime<Utc>) -> Outcome {
        Outcome::Defer {
            reason: reason.as_str(),
            until,
        }
    }
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
